//! What the offline commands share: the identity over the server's database (SQLite in
//! WAL mode or PostgreSQL, both of which let them write while servers run), the operator
//! acting as a system administrator, and how they are given a password.

use std::io::Read;
use std::sync::Arc;

use anyhow::Context;
use berth_app::SystemClock;
use berth_app::identity::{Identity, check_policy, random_secret};
use berth_app::manage::{ManageError, Requester, Users};
use berth_meta::{FieldFilter, ListQuery, Match, User, UserField};

use super::DataArgs;
use crate::config::LogConfig;

/// Length of a generated password (as the first administrator's).
const GENERATED_LENGTH: usize = 20;

/// An open database and the operator who works on it.
pub struct Offline {
    /// Accounts and access over the database, bootstrapped.
    pub identity: Arc<Identity>,
    /// The operator: a system administrator named `cli:<login>` in the audit log.
    pub who: Requester,
}

impl Offline {
    /// The user named `name`, or a clear error.
    pub async fn user_named(&self, name: &str) -> anyhow::Result<User> {
        let query = ListQuery {
            filters: vec![FieldFilter {
                field: UserField::Username,
                matching: Match::Exact(name.to_owned()),
            }],
            ..ListQuery::default()
        };
        let found = Users::new(self.identity.clone())
            .list(&self.who, &query)
            .await?;
        found
            .items
            .into_iter()
            .find(|u| u.username == name)
            .ok_or_else(|| ManageError::NotFound(format!("no user is named {name:?}")).into())
    }
}

/// Loads the configuration, opens the database as `serve` does (bootstrapping a fresh
/// one) and runs `command` on it.
pub fn run(
    args: &DataArgs,
    command: impl AsyncFnOnce(Offline) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let config = args.load()?;
    // Only warnings: the output is the command's own.
    crate::telemetry::init(&LogConfig {
        level: "warn".into(),
        format: config.log.format,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let meta = crate::database::open(&config).await?;
        let identity = crate::identity::open(&config, meta, Arc::new(SystemClock)).await?;
        command(Offline {
            identity: Arc::new(identity),
            who: Requester::system(format!("cli:{}", operator())),
        })
        .await
    })
}

/// The login of whoever runs the command, for the audit log.
fn operator() -> String {
    use std::os::unix::fs::MetadataExt;
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid{}", m.uid()))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// How a command is given a password; without one, it generates one.
#[derive(clap::Args)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// Read the password from standard input (a trailing newline is dropped).
    #[arg(long)]
    password_stdin: bool,
    /// The password. Other local users may see it in the process list: prefer
    /// --password-stdin.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
}

/// A password a command sets.
pub enum Password {
    /// Given by the operator.
    Given(String),
    /// Generated; the operator must be shown it once.
    Generated(String),
}

impl PasswordArgs {
    /// The password given (checked against the password policy before anything is
    /// opened), or a generated one.
    pub fn password(&self) -> anyhow::Result<Password> {
        let given = if self.password_stdin {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
            let line = text.strip_suffix('\n').unwrap_or(&text);
            let line = line.strip_suffix('\r').unwrap_or(line);
            anyhow::ensure!(!line.is_empty(), "no password on standard input");
            Some(line.to_owned())
        } else {
            self.password.clone()
        };
        Ok(match given {
            Some(password) => {
                check_policy(&password)?;
                Password::Given(password)
            }
            None => Password::Generated(random_secret(GENERATED_LENGTH)),
        })
    }
}

impl Password {
    /// The password itself.
    pub fn secret(&self) -> &str {
        match self {
            Password::Given(p) | Password::Generated(p) => p,
        }
    }

    /// Shows a generated password, once (see [`show_secret`]).
    pub fn show_if_generated(&self, user: &str) {
        if let Password::Generated(password) = self {
            show_secret(&format!("The password of {user:?}"), password);
        }
    }
}

/// Shows a secret, once: alone on its line of standard output (so a script can capture
/// it), after a note naming `what` on standard error. Never logged.
pub fn show_secret(what: &str, secret: &str) {
    eprintln!("{what}, shown only this once:");
    println!("{secret}");
}
