//! System settings (Harbor's `/configurations`): stored in the database so every node
//! agrees, seeded from the configuration file at first start, read through a cache
//! that is refreshed every few seconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_meta::{AuditEntry, MetaError, SettingsStore};
use serde_json::Value;

/// How long a node may serve settings another node changed.
const REFRESH: Duration = Duration::from_secs(2);

/// The settings Berth uses, with their Harbor names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSettings {
    /// `auth_mode`: only `db_auth` for now.
    pub auth_mode: String,
    /// `self_registration`: anyone may sign up.
    pub self_registration: bool,
    /// `project_creation_restriction`: `everyone` or `adminonly`.
    pub project_creation_restriction: String,
    /// `token_expiration`: registry token lifetime in minutes.
    pub token_expiration: i64,
    /// `robot_token_duration`: default robot lifetime in days.
    pub robot_token_duration: i64,
    /// `robot_name_prefix`: what robot names start with (`robot$`).
    pub robot_name_prefix: String,
    /// `storage_per_project`: the storage limit, in bytes, new projects get unless they
    /// are created with one (`-1`: no limit).
    pub storage_per_project: i64,
}

impl Default for SystemSettings {
    /// Harbor's defaults.
    fn default() -> Self {
        SystemSettings {
            auth_mode: "db_auth".into(),
            self_registration: false,
            project_creation_restriction: "everyone".into(),
            token_expiration: 30,
            robot_token_duration: 30,
            robot_name_prefix: "robot$".into(),
            storage_per_project: berth_meta::UNLIMITED,
        }
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SettingsError {
    /// A key is unknown, read-only or has a value of the wrong type or range.
    #[error("{0}")]
    Invalid(String),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl SystemSettings {
    /// The settings as Harbor's key → JSON value pairs.
    pub fn to_values(&self) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("auth_mode".into(), Value::from(self.auth_mode.clone())),
            (
                "self_registration".into(),
                Value::from(self.self_registration),
            ),
            (
                "project_creation_restriction".into(),
                Value::from(self.project_creation_restriction.clone()),
            ),
            (
                "token_expiration".into(),
                Value::from(self.token_expiration),
            ),
            (
                "robot_token_duration".into(),
                Value::from(self.robot_token_duration),
            ),
            (
                "robot_name_prefix".into(),
                Value::from(self.robot_name_prefix.clone()),
            ),
            (
                "storage_per_project".into(),
                Value::from(self.storage_per_project),
            ),
        ])
    }

    /// Applies one key's value, checking its type and range.
    pub fn apply(&mut self, key: &str, value: &Value) -> Result<(), SettingsError> {
        let invalid = |why: &str| SettingsError::Invalid(format!("{key}: {why}"));
        let positive = |v: &Value, max: i64| -> Result<i64, SettingsError> {
            v.as_i64()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| invalid(&format!("expected an integer from 1 to {max}")))
        };
        match key {
            "auth_mode" => {
                if value.as_str() != Some("db_auth") {
                    return Err(invalid("only db_auth is supported"));
                }
            }
            "self_registration" => {
                self.self_registration = value
                    .as_bool()
                    .ok_or_else(|| invalid("expected a boolean"))?;
            }
            "project_creation_restriction" => match value.as_str() {
                Some(v @ ("everyone" | "adminonly")) => {
                    self.project_creation_restriction = v.to_owned();
                }
                _ => return Err(invalid("expected \"everyone\" or \"adminonly\"")),
            },
            // A year of minutes; ten years of days.
            "token_expiration" => self.token_expiration = positive(value, 525_600)?,
            "robot_token_duration" => self.robot_token_duration = positive(value, 3_650)?,
            "robot_name_prefix" => match value.as_str() {
                Some(p) if !p.is_empty() && p.len() <= 32 && !p.contains(char::is_whitespace) => {
                    self.robot_name_prefix = p.to_owned();
                }
                _ => return Err(invalid("expected a non-empty prefix without spaces")),
            },
            "storage_per_project" => match value.as_i64() {
                Some(n) if n == berth_meta::UNLIMITED || n > 0 => self.storage_per_project = n,
                _ => {
                    return Err(invalid(
                        "expected -1 (no limit) or a positive number of bytes",
                    ));
                }
            },
            _ => {
                return Err(SettingsError::Invalid(format!(
                    "unknown or read-only setting {key:?}"
                )));
            }
        }
        Ok(())
    }

    fn from_stored(stored: &BTreeMap<String, String>) -> Self {
        let mut settings = SystemSettings::default();
        for (key, text) in stored {
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                // A value that no longer validates keeps the default.
                let _ = settings.apply(key, &value);
            }
        }
        settings
    }
}

/// The settings service.
pub struct Settings {
    store: Arc<dyn SettingsStore>,
    cached: Mutex<(Arc<SystemSettings>, Option<Instant>)>,
}

impl Settings {
    /// Settings over `store`, read from it on first use.
    pub fn new(store: Arc<dyn SettingsStore>) -> Self {
        Settings {
            store,
            cached: Mutex::new((Arc::new(SystemSettings::default()), None)),
        }
    }

    /// Stores `initial` where the store has no value yet (first start).
    pub async fn seed(&self, initial: &SystemSettings) -> Result<(), MetaError> {
        let seed = initial
            .to_values()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        self.store.init_settings(&seed).await?;
        self.reload().await.map(drop)
    }

    /// The current settings (at most a couple of seconds old).
    pub async fn current(&self) -> Result<Arc<SystemSettings>, MetaError> {
        {
            let cached = self.cached.lock().expect("settings lock");
            if cached.1.is_some_and(|at| at.elapsed() < REFRESH) {
                return Ok(cached.0.clone());
            }
        }
        self.reload().await
    }

    /// Makes the next [`Settings::current`] read the store (after another node changed
    /// the settings).
    pub fn expire(&self) {
        self.cached.lock().expect("settings lock").1 = None;
    }

    async fn reload(&self) -> Result<Arc<SystemSettings>, MetaError> {
        let current = Arc::new(SystemSettings::from_stored(&self.store.settings().await?));
        *self.cached.lock().expect("settings lock") = (current.clone(), Some(Instant::now()));
        Ok(current)
    }

    /// Validates and stores the given keys; nothing is stored if any is refused.
    pub async fn update(
        &self,
        values: &BTreeMap<String, Value>,
        audit: &AuditEntry,
    ) -> Result<(), SettingsError> {
        let mut next = (*self.current().await?).clone();
        for (key, value) in values {
            next.apply(key, value)?;
        }
        let stored = values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        self.store.put_settings(&stored, audit).await?;
        self.reload().await?;
        Ok(())
    }
}
