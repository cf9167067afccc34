//! Configuration: defaults, then `berth.toml`, then `BERTH_*` environment variables,
//! then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `berth serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Threads serving requests; 0 (the default) means one per CPU core. Nodes sharing
    /// a machine do better with their share of its cores.
    pub worker_threads: usize,
    /// Directory holding the database and blobs unless they are placed elsewhere.
    pub data_dir: PathBuf,
    /// Metadata database.
    pub database: DatabaseConfig,
    /// Blob storage.
    pub storage: StorageConfig,
    /// TLS; plain HTTP when no certificate is set.
    pub tls: TlsConfig,
    /// Limits and lifetimes.
    pub limits: LimitsConfig,
    /// How long a connection may wait on its client.
    pub timeouts: TimeoutsConfig,
    /// Checks on pushed manifests.
    pub validation: ValidationConfig,
    /// Logging.
    pub log: LogConfig,
    /// The first administrator's password, used once, when the database has no
    /// administrator yet (`BERTH_ADMIN_PASSWORD`). Without it a password is generated
    /// and printed once. Never printed back.
    #[serde(skip_serializing)]
    pub admin_password: Option<String>,
    /// The URL clients reach Berth at, e.g. `https://registry.example.com` (the token
    /// realm and links); by default each request's own scheme and host.
    pub external_url: Option<String>,
    /// Authentication and registry tokens.
    pub auth: AuthConfig,
    /// First values of the system settings (Harbor's `/configurations`); afterwards
    /// they live in the database and are changed through the API.
    pub settings: SettingsConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Background jobs.
    pub jobs: JobsConfig,
    /// Garbage collection.
    pub gc: GcConfig,
}

/// Garbage collection (`berth gc`, and collections run by the API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// How long a blob may stay unreferenced before a collection deletes it: the time a
    /// client has between uploading a blob and pushing the manifest that references it,
    /// as a duration such as `"1h"` or `"30m"`.
    #[serde(with = "human_duration")]
    pub grace_period: Duration,
    /// Blobs a collection deletes at once.
    pub workers: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            grace_period: Duration::from_secs(3600),
            workers: 4,
        }
    }
}

/// A duration written as text (`"1h"`, `"90s"`, `"1h 30m"`).
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Background jobs: how this node runs its share of the cluster's job queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs this node runs at once (at least one).
    pub workers: usize,
    /// Seconds a claimed job is held without a heartbeat: the jobs of a node that died
    /// are taken over this long after its last heartbeat (heartbeats come every third).
    pub lease_secs: u64,
    /// How often (seconds) schedules and the queue are looked at.
    pub poll_secs: u64,
    /// Seconds running jobs get to finish at shutdown before they are given back to the
    /// queue.
    pub shutdown_grace_secs: u64,
    /// Days ended jobs are kept.
    pub history_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 2,
            lease_secs: 60,
            poll_secs: 1,
            shutdown_grace_secs: 10,
            history_days: 14,
        }
    }
}

impl JobsConfig {
    /// The runner's settings.
    pub fn runner(&self) -> berth_app::jobs::RunnerConfig {
        berth_app::jobs::RunnerConfig {
            workers: self.workers.max(1),
            lease: seconds(self.lease_secs.max(1)),
            poll: seconds(self.poll_secs.max(1)),
            shutdown_grace: seconds(self.shutdown_grace_secs),
        }
    }

    /// How long ended jobs are kept.
    pub fn history(&self) -> Duration {
        seconds(self.history_days.saturating_mul(86_400))
    }
}

/// The audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record every manifest pull too (changes are always recorded).
    pub log_pulls: bool,
    /// Days audit entries are kept (0: forever).
    pub retention_days: u64,
}

impl AuditConfig {
    /// How long entries are kept, if not forever.
    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| seconds(self.retention_days.saturating_mul(86_400)))
    }
}

/// Authentication and registry tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `secure` (the default: accounts, projects and permissions apply to `/v2/`) or
    /// `open` (every `/v2/` request is allowed, as a bare Distribution registry does;
    /// the Harbor API still needs an administrator).
    pub mode: AuthMode,
    /// PEM private key signing registry tokens: P-256 (ES256) or RSA (RS256). Default:
    /// `<data_dir>/token_signing_key.pem`, generated (P-256) at first start.
    pub token_key: Option<PathBuf>,
    /// The `iss` of registry tokens.
    pub token_issuer: String,
    /// The service name of the token challenge (and the tokens' audience).
    pub service: String,
    /// A read-only htpasswd file (bcrypt) of extra users.
    pub htpasswd: Option<PathBuf>,
    /// argon2id memory cost in KiB.
    pub hash_memory_kib: u32,
    /// argon2id passes.
    pub hash_iterations: u32,
}

/// Who `/v2/` lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Accounts and permissions apply.
    Secure,
    /// Every registry request is allowed.
    Open,
}

/// First values of the system settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsConfig {
    /// Anyone may sign up.
    pub self_registration: bool,
    /// `everyone` or `adminonly`.
    pub project_creation_restriction: String,
    /// Registry token lifetime in minutes.
    pub token_expiration: i64,
    /// Default robot lifetime in days.
    pub robot_token_duration: i64,
    /// What robot names start with.
    pub robot_name_prefix: String,
    /// Storage limit in bytes of new projects created without one (`-1`: no limit).
    pub storage_per_project: i64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Secure,
            token_key: None,
            token_issuer: "berth-token-issuer".into(),
            service: "berth-registry".into(),
            htpasswd: None,
            hash_memory_kib: 19 * 1024,
            hash_iterations: 2,
        }
    }
}

impl Default for SettingsConfig {
    fn default() -> Self {
        let harbor = berth_app::identity::SystemSettings::default();
        SettingsConfig {
            self_registration: harbor.self_registration,
            project_creation_restriction: harbor.project_creation_restriction,
            token_expiration: harbor.token_expiration,
            robot_token_duration: harbor.robot_token_duration,
            robot_name_prefix: harbor.robot_name_prefix,
            storage_per_project: harbor.storage_per_project,
        }
    }
}

impl SettingsConfig {
    /// The settings stored at first start.
    pub fn initial(&self) -> berth_app::identity::SystemSettings {
        berth_app::identity::SystemSettings {
            auth_mode: "db_auth".into(),
            self_registration: self.self_registration,
            project_creation_restriction: self.project_creation_restriction.clone(),
            token_expiration: self.token_expiration,
            robot_token_duration: self.robot_token_duration,
            robot_name_prefix: self.robot_name_prefix.clone(),
            storage_per_project: self.storage_per_project,
        }
    }
}

/// Where metadata lives: an SQLite file, or a PostgreSQL database when `url` is set.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// SQLite database file (default: `<data_dir>/berth.db`); unused with `url`.
    pub path: Option<PathBuf>,
    /// `postgres://user:password@host:port/database?…`: metadata lives in that
    /// PostgreSQL database, which every node of a cluster shares. Shown with its
    /// password hidden.
    #[serde(serialize_with = "crate::database::serialize_url")]
    pub url: Option<String>,
    /// Most connections a node opens to PostgreSQL.
    pub pool_size: u32,
    /// Seconds a PostgreSQL statement may run, lock waits included, and a transaction
    /// may stay idle (0: no limit).
    pub statement_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: None,
            url: None,
            pool_size: 16,
            statement_timeout_secs: 30,
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    /// Shows the URL with its password hidden.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(crate::database::redacted))
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_secs", &self.statement_timeout_secs)
            .finish()
    }
}

/// Where blob bytes live: a local directory, or a bucket of an object store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Which store holds the blobs.
    pub kind: StorageKind,
    /// Root directory of the filesystem store (default: `<data_dir>/storage`).
    pub path: Option<PathBuf>,
    /// The bucket (S3, GCS).
    pub bucket: Option<String>,
    /// The service URL without the bucket (S3; Azure: an emulator or sovereign cloud).
    pub endpoint: Option<String>,
    /// The region requests are signed for (S3).
    pub region: Option<String>,
    /// The access key id (S3; default: `AWS_ACCESS_KEY_ID`, then the machine's role).
    pub access_key_id: Option<String>,
    /// The secret access key (S3). Never printed back.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<Secret>,
    /// A file holding the secret access key (S3).
    pub secret_access_key_file: Option<PathBuf>,
    /// Name the bucket in the URL path rather than the host name (S3: MinIO, Garage,
    /// Ceph and most self-hosted services need it).
    pub path_style: bool,
    /// The storage account (Azure).
    pub account: Option<String>,
    /// The container (Azure).
    pub container: Option<String>,
    /// The account's access key (Azure). Never printed back.
    #[serde(skip_serializing)]
    pub access_key: Option<Secret>,
    /// A file holding the account's access key (Azure).
    pub access_key_file: Option<PathBuf>,
    /// A service-account key file (GCS; default: the machine's service account).
    pub service_account_file: Option<PathBuf>,
    /// A key prefix for everything Berth writes in the bucket.
    pub prefix: Option<String>,
    /// Answer blob GETs with `307` to a presigned URL of the object store.
    pub redirect: bool,
    /// How long a presigned URL stays valid, in seconds.
    pub redirect_expiry_secs: u64,
}

/// Which store holds the blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local directory (`storage.path`).
    Filesystem,
    /// Amazon S3 or an S3-compatible service (MinIO, Garage, Ceph RGW, Aliyun OSS, ...).
    S3,
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcs,
}

/// A secret setting: `Debug` never shows it, and it is never serialized.
pub type Secret = berth_blob_object::Secret;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Filesystem,
            path: None,
            bucket: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            path_style: false,
            account: None,
            container: None,
            access_key: None,
            access_key_file: None,
            service_account_file: None,
            prefix: None,
            redirect: false,
            redirect_expiry_secs: 60,
        }
    }
}

/// TLS settings (rustls).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// Limits and lifetimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes (0: no limit).
    pub max_blob_bytes: u64,
    /// Upload sessions idle this long (seconds) are purged.
    pub upload_max_age_secs: u64,
    /// How often (seconds) stale uploads are looked for.
    pub upload_purge_interval_secs: u64,
    /// Term (seconds) of a node's claim on an upload session it writes: the longest a
    /// session stays blocked after its node dies.
    pub upload_lease_secs: u64,
    /// Largest `n` a listing honours; larger pages are clamped.
    pub max_page: u32,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Most upload sessions open at once in the whole registry.
    pub max_upload_sessions: u64,
    /// Most upload sessions open at once in one repository.
    pub max_upload_sessions_per_repository: u64,
    /// Most bytes held by open upload sessions together (0: no limit).
    pub max_open_upload_bytes: u64,
    /// Most upload bodies streaming at once (each holds up to 3 MiB of write buffers on
    /// the filesystem store, up to three 8 MiB parts on an object store).
    pub max_upload_bodies: usize,
    /// Most upload and manifest bodies one client address streams at once (0: no
    /// limit). Behind a proxy every client has the proxy's address: raise it or set 0.
    pub max_upload_bodies_per_client: usize,
    /// Seconds a request waits for a limit on work in progress (upload bodies, buffered
    /// bytes) before it gets `429`.
    pub overload_wait_secs: u64,
    /// Most client connections open at once; further clients wait to be accepted.
    pub max_connections: usize,
    /// Most bytes buffered request and response bodies (manifests, listings) may hold.
    pub max_buffered_bytes: u64,
    /// Most descriptors on one page of the referrers API.
    pub max_referrers: u32,
    /// Percent of a project's storage limit at which a push writes a `quota_warning`
    /// audit entry (once each time usage reaches it).
    pub quota_warning_percent: u8,
}

/// How long a connection may wait on its client, in seconds. The defaults leave a
/// docker, podman or containerd client on a slow link far inside every bound.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// From the first byte of a request to the end of its header section.
    pub header_read_secs: u64,
    /// An open connection with no request in progress.
    pub idle_secs: u64,
    /// The window over which a request body must send `body_min_bytes_per_sec` (and at
    /// least one byte), counting only time the handler waits for it.
    pub body_idle_secs: u64,
    /// Bytes a second a request body must send on average over `body_idle_secs`.
    pub body_min_bytes_per_sec: u64,
    /// A response the client does not read.
    pub send_secs: u64,
}

/// Checks on pushed manifests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Regular expressions of the external URLs a descriptor may carry (foreign layers,
    /// which then need not be pushed); a URL must match one. Empty: no URLs are accepted.
    pub foreign_layer_urls_allow: Vec<String>,
    /// Regular expressions of URLs refused even when an allow pattern matches.
    pub foreign_layer_urls_deny: Vec<String>,
}

impl ValidationConfig {
    /// The compiled URL policy.
    pub fn foreign_urls(&self) -> Result<berth_app::ForeignUrlPolicy, berth_app::PatternError> {
        berth_app::ForeignUrlPolicy::new(
            &self.foreign_layer_urls_allow,
            &self.foreign_layer_urls_deny,
        )
    }
}

/// Log level and format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `warn`, `berth_api=debug,info`, ...
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:5000".parse().expect("valid address"),
            worker_threads: 0,
            data_dir: PathBuf::from("./berth-data"),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            timeouts: TimeoutsConfig::default(),
            validation: ValidationConfig::default(),
            log: LogConfig::default(),
            admin_password: None,
            external_url: None,
            auth: AuthConfig::default(),
            settings: SettingsConfig::default(),
            audit: AuditConfig::default(),
            jobs: JobsConfig::default(),
            gc: GcConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 64 << 30,
            upload_max_age_secs: 3600,
            upload_purge_interval_secs: 300,
            upload_lease_secs: 30,
            max_page: 10_000,
            shutdown_grace_secs: 30,
            max_upload_sessions: 4096,
            max_upload_sessions_per_repository: 256,
            max_open_upload_bytes: 64 << 30,
            max_upload_bodies: 256,
            max_upload_bodies_per_client: 64,
            overload_wait_secs: 5,
            max_connections: 2048,
            max_buffered_bytes: 1 << 30,
            max_referrers: 1000,
            quota_warning_percent: 85,
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            header_read_secs: 30,
            idle_secs: 90,
            body_idle_secs: 60,
            body_min_bytes_per_sec: 500,
            send_secs: 60,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `BERTH_*` variables that configure Berth's test suite (which PostgreSQL server its
/// tests use, and whether they may skip without one), not Berth: CI sets them for every
/// process, the `berth` binaries the tests start included.
const TEST_VARIABLES: &[&str] = &["test_postgres", "require_postgres", "require_s3"];

impl Config {
    /// Loads defaults, then the file (if any), then `BERTH_*` variables. Nested keys use
    /// a double underscore: `BERTH_LOG__LEVEL=debug`, `BERTH_TLS__CERT=/etc/berth/cert.pem`.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    path.display()
                ))));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(Env::prefixed("BERTH_").ignore(TEST_VARIABLES).split("__"))
            .extract()
            .map_err(Box::new)?;
        // Patterns are compiled here so a bad one stops the start with a clear message.
        config.validation.foreign_urls().map_err(|e| {
            Box::new(figment::Error::from(format!(
                "validation.foreign_layer_urls: {e}"
            )))
        })?;
        crate::database::Location::of(&config).map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(config)
    }

    /// The SQLite database file (when no PostgreSQL URL is set).
    pub fn database_path(&self) -> PathBuf {
        self.database
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("berth.db"))
    }

    /// The token signing key file.
    pub fn token_key_path(&self) -> PathBuf {
        self.auth
            .token_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("token_signing_key.pem"))
    }

    /// The blob store root.
    pub fn storage_path(&self) -> PathBuf {
        self.storage
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("storage"))
    }

    /// How the listener treats connections, from this configuration.
    pub fn listener_limits(&self) -> crate::serve::ListenerLimits {
        let t = &self.timeouts;
        crate::serve::ListenerLimits {
            max_connections: self.limits.max_connections.max(1),
            timeouts: crate::connection::Timeouts {
                header_read: seconds(t.header_read_secs),
                idle: seconds(t.idle_secs),
                body_idle: seconds(t.body_idle_secs),
                body_min_rate: t.body_min_bytes_per_sec,
                send: seconds(t.send_secs),
            },
            grace: seconds(self.limits.shutdown_grace_secs),
        }
    }

    /// How often stale uploads are looked for (at least every second).
    pub fn upload_purge_interval(&self) -> Duration {
        seconds(self.limits.upload_purge_interval_secs.max(1))
    }

    /// The registry limits derived from this configuration, with the key that seals its
    /// upload URLs.
    pub fn registry_config(
        &self,
        upload_url_key: berth_app::UploadUrlKey,
    ) -> berth_app::RegistryConfig {
        let l = &self.limits;
        berth_app::RegistryConfig {
            max_manifest_bytes: l.max_manifest_bytes,
            max_blob_bytes: if l.max_blob_bytes == 0 {
                u64::MAX
            } else {
                l.max_blob_bytes
            },
            upload_max_age: seconds(l.upload_max_age_secs),
            upload_lease: seconds(l.upload_lease_secs.max(1)),
            default_page: l.max_page,
            max_page: l.max_page,
            max_upload_sessions: l.max_upload_sessions,
            max_upload_sessions_per_repository: l.max_upload_sessions_per_repository,
            max_open_upload_bytes: l.max_open_upload_bytes,
            max_upload_bodies: l.max_upload_bodies,
            max_upload_bodies_per_client: l.max_upload_bodies_per_client,
            overload_wait: seconds(l.overload_wait_secs),
            max_buffered_bytes: l.max_buffered_bytes,
            max_referrers: l.max_referrers,
            foreign_urls: self
                .validation
                .foreign_urls()
                .expect("URL patterns are checked when the configuration is loaded"),
            audit_pulls: self.audit.log_pulls,
            quota_warning_percent: l.quota_warning_percent.clamp(1, 100),
            upload_url_key,
        }
    }
}

/// Longest duration any setting may give: anything longer is as good as never, and
/// adding it to an instant must not overflow.
const LONGEST: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `secs` seconds, at most [`LONGEST`].
fn seconds(secs: u64) -> Duration {
    Duration::from_secs(secs).min(LONGEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_clamped_so_no_deadline_overflows() {
        let mut c = Config::default();
        c.timeouts.body_idle_secs = u64::MAX;
        c.limits.overload_wait_secs = u64::MAX;
        let body_idle = c.listener_limits().timeouts.body_idle;
        assert_eq!(body_idle, LONGEST);
        assert!(std::time::Instant::now().checked_add(body_idle).is_some());
        assert_eq!(
            c.registry_config(berth_app::UploadUrlKey::of_this_process())
                .overload_wait,
            LONGEST
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the error type.
    fn a_postgres_url_selects_postgresql_and_is_never_shown_with_its_password() {
        use crate::database::Location;
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(matches!(Location::of(&c), Ok(Location::Sqlite(_))));
            assert_eq!(
                (c.database.pool_size, c.database.statement_timeout_secs),
                (16, 30)
            );
            jail.set_env("BERTH_DATABASE__URL", "postgres://berth:s3cret@db/berth");
            jail.set_env("BERTH_DATABASE__POOL_SIZE", "40");
            jail.set_env("BERTH_DATABASE__STATEMENT_TIMEOUT_SECS", "5");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let Ok(Location::Postgres(pg)) = Location::of(&c) else {
                panic!("PostgreSQL is not selected");
            };
            assert_eq!(pg.url, "postgres://berth:s3cret@db/berth");
            assert_eq!(pg.pool_size, 40);
            assert_eq!(pg.statement_timeout, Duration::from_secs(5));
            let shown = toml::to_string(&c).unwrap() + &format!("{c:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("postgres://berth:***@db/berth"), "{shown}");
            jail.set_env("BERTH_DATABASE__URL", "mysql://berth:s3cret@db/berth");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains("database.url") && !err.contains("s3cret"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the error type.
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "berth.toml",
                "listen = \"127.0.0.1:6000\"\n[log]\nlevel = \"debug\"\n",
            )?;
            jail.set_env("BERTH_LOG__FORMAT", "json");
            jail.set_env("BERTH_REQUIRE_POSTGRES", "1");
            jail.set_env(
                "BERTH_TEST_POSTGRES",
                "postgres://postgres@127.0.0.1/postgres",
            );
            jail.set_env("BERTH_DATA_DIR", "/srv/berth");
            jail.set_env("BERTH_JOBS__LEASE_SECS", "30");
            let c = Config::load(Some(Path::new("berth.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 6000);
            assert_eq!(c.log.level, "debug");
            assert_eq!(c.log.format, LogFormat::Json);
            assert_eq!(c.database_path(), PathBuf::from("/srv/berth/berth.db"));
            assert_eq!(c.jobs.runner().lease, Duration::from_secs(30));
            assert_eq!(c.jobs.runner().workers, 2);
            jail.create_file("bad.toml", "listne = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            jail.create_file(
                "urls.toml",
                "[validation]\nforeign_layer_urls_allow = [\"^https://mcr\\\\.microsoft\\\\.com/\"]\n",
            )?;
            let c = Config::load(Some(Path::new("urls.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                c.validation.foreign_layer_urls_allow,
                [r"^https://mcr\.microsoft\.com/"]
            );
            c.registry_config(berth_app::UploadUrlKey::of_this_process());
            jail.create_file(
                "bad-url.toml",
                "[validation]\nforeign_layer_urls_deny = [\"(\"]\n",
            )?;
            let err = Config::load(Some(Path::new("bad-url.toml"))).unwrap_err();
            assert!(err.to_string().contains("foreign_layer_urls"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the error type.
    fn storage_secrets_are_never_shown() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "berth.toml",
                "[storage]\nkind = \"s3\"\nbucket = \"images\"\naccess_key = \"AzureKey0123456789\"\n",
            )?;
            jail.set_env("BERTH_STORAGE__SECRET_ACCESS_KEY", "S3Secret0123456789");
            // CI's switch for the S3 tests reaches the servers they start.
            jail.set_env("BERTH_REQUIRE_S3", "1");
            let c = Config::load(Some(Path::new("berth.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.storage.kind, StorageKind::S3);
            let secret = c.storage.secret_access_key.as_ref().map(|s| s.expose());
            assert_eq!(secret, Some("S3Secret0123456789"));
            let shown = format!("{c:?}\n{}", toml::to_string(&c).unwrap());
            for secret in ["S3Secret0123456789", "AzureKey0123456789"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            Ok(())
        });
    }
}
