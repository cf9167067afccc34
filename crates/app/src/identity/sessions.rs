//! Browser sessions (Harbor's `/c/login`): a random session id in an HttpOnly cookie
//! and a CSRF token that unsafe requests must echo. Only hashes of both are stored.

use std::net::IpAddr;
use std::sync::Arc;

use berth_meta::{MetaError, SessionStore, StoredSession};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use super::authenticate::{AuthError, Authenticator};
use super::caller::Account;
use crate::Clock;

/// How long a session lasts.
const LIFETIME_MS: i64 = 60 * 60 * 1000;

/// A new session's secrets, for the cookies; shown to the client only.
/// Not `Debug`: it holds the session's secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The session id (the cookie's value).
    pub id: String,
    /// The CSRF token unsafe requests must send in `X-Harbor-CSRF-Token`.
    pub csrf: String,
    /// Its lifetime in seconds.
    pub max_age_secs: i64,
}

/// A session found from its cookie.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// Who is logged in.
    pub account: Arc<Account>,
    csrf_hash: String,
}

impl ActiveSession {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        hash(token)
            .as_bytes()
            .ct_eq(self.csrf_hash.as_bytes())
            .into()
    }
}

/// The session service.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    authenticator: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
}

fn hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Sessions over `store`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        authenticator: Arc<Authenticator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Sessions {
            store,
            authenticator,
            clock,
        }
    }

    /// Checks the credentials and opens a session.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(Arc<Account>, NewSession), AuthError> {
        let account = self.authenticator.login(name, password, client).await?;
        let (id, csrf) = (random_token(), random_token());
        self.store
            .create_session(&StoredSession {
                id_hash: hash(&id),
                username: account.name.clone(),
                csrf_hash: hash(&csrf),
                expires_at: self.clock.now_ms() + LIFETIME_MS,
            })
            .await?;
        let session = NewSession {
            id,
            csrf,
            max_age_secs: LIFETIME_MS / 1000,
        };
        Ok((account, session))
    }

    /// The session a cookie names, while it lasts and its account may log in.
    pub async fn resolve(&self, id: &str) -> Result<Option<ActiveSession>, MetaError> {
        let Some(stored) = self.store.session(&hash(id), self.clock.now_ms()).await? else {
            return Ok(None);
        };
        Ok(self
            .authenticator
            .account(&stored.username)
            .await?
            .map(|account| ActiveSession {
                account,
                csrf_hash: stored.csrf_hash,
            }))
    }

    /// Ends a session.
    pub async fn logout(&self, id: &str) -> Result<(), MetaError> {
        self.store.end_session(&hash(id)).await.map(drop)
    }
}
