//! Accounts and access over the metadata database, set up the same way for `serve` and
//! for the offline commands.

use std::sync::Arc;

use berth_app::identity::{
    Bootstrap, FIRST_ADMIN, HashCost, Htpasswd, Identity, IdentityConfig, IdentityStores,
};
use berth_meta::Metadata;

use crate::config::{AuthMode, Config};

/// Sets up accounts and access over the metadata store, and bootstraps it (roles,
/// settings, the first administrator, whose generated password is shown once on the
/// terminal).
pub async fn open(
    config: &Config,
    meta: Arc<dyn Metadata>,
    clock: Arc<dyn berth_app::Clock>,
) -> anyhow::Result<Identity> {
    let htpasswd = config
        .auth
        .htpasswd
        .as_deref()
        .map(Htpasswd::load)
        .transpose()?;
    let identity = Identity::new(
        IdentityStores {
            users: meta.clone(),
            projects: meta.clone(),
            robots: meta.clone(),
            settings: meta.clone(),
            audit: meta.clone(),
            artifacts: meta.clone(),
            labels: meta.clone(),
            sessions: meta,
        },
        IdentityConfig {
            open: config.auth.mode == AuthMode::Open,
            hash_cost: HashCost {
                memory_kib: config.auth.hash_memory_kib,
                iterations: config.auth.hash_iterations,
                parallelism: 1,
            },
            admin_password: config.admin_password.clone(),
            htpasswd,
            signing_key_pem: crate::signing_key::load_or_generate(&config.token_key_path())?,
            issuer: config.auth.token_issuer.clone(),
            service: config.auth.service.clone(),
            initial_settings: config.settings.initial(),
        },
        clock,
    )?;
    match identity.bootstrap().await? {
        Bootstrap::AdminCreatedWithPassword(password) => {
            // Shown once, on the terminal, never in the logs.
            eprintln!(
                "\n  Berth created the administrator {FIRST_ADMIN:?} with the password:\n\n      \
                 {password}\n\n  It is shown only this once. Log in and change it, or set \
                 BERTH_ADMIN_PASSWORD\n  before the first start. `berth admin reset-password` \
                 sets a new one.\n"
            );
        }
        Bootstrap::AdminCreated => tracing::info!("created the administrator {FIRST_ADMIN:?}"),
        Bootstrap::AdminExisted => {}
    }
    Ok(identity)
}
