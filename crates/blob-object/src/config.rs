//! What the store is told: which object store holds the blobs, how to reach it, and how
//! the store uses it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Bytes in each full part of a multipart upload by default.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// The smallest part S3 and GCS accept, except for an upload's last part.
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The largest object S3 copies in one request (5 GiB), the default copy limit.
pub const DEFAULT_COPY_LIMIT: u64 = 5 << 30;

/// A secret setting (a key or password): `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that hands it to the backend.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which object store holds the blobs, and how to reach it.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Amazon S3 or an S3-compatible service (MinIO, Garage, Ceph RGW, Aliyun OSS, ...).
    S3(S3Settings),
    /// Azure Blob Storage.
    Azure(AzureSettings),
    /// Google Cloud Storage.
    Gcs(GcsSettings),
}

/// An S3 bucket. Unset credentials and region are taken from the `AWS_*` environment
/// variables, then from the instance's or container's role.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// The service URL without the bucket, e.g. `https://oss-cn-hangzhou.aliyuncs.com`
    /// or `http://127.0.0.1:3900`; default: AWS in `region`.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<Secret>,
    /// Name the bucket in the path (`<endpoint>/<bucket>/<key>`, as MinIO, Garage and Ceph
    /// expect) rather than in the host name (`<bucket>.<endpoint host>/<key>`).
    pub path_style: bool,
}

/// An Azure Blob Storage container. Unset credentials are taken from the `AZURE_*`
/// environment variables, then from the machine's managed identity.
#[derive(Debug, Clone, Default)]
pub struct AzureSettings {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// The account's access key.
    pub access_key: Option<Secret>,
    /// The service URL, for an emulator or a sovereign cloud; default: Azure's public
    /// endpoint of the account.
    pub endpoint: Option<String>,
}

/// A Google Cloud Storage bucket. Without a service-account file, credentials come from
/// the `GOOGLE_*` environment variables, then from the machine's service account.
#[derive(Debug, Clone, Default)]
pub struct GcsSettings {
    /// The bucket.
    pub bucket: String,
    /// A service-account key file (JSON).
    pub service_account_path: Option<PathBuf>,
}

/// How the store uses its backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A key prefix for everything the store writes, so several registries can share a
    /// bucket.
    pub prefix: Option<String>,
    /// Lifetime of presigned blob URLs; `None`: blobs are always served through Berth.
    pub redirect_expiry: Option<Duration>,
    /// Bytes in each full part of a multipart upload, at least [`MIN_PART_SIZE`]; an
    /// append holds at most three parts in memory.
    pub part_size: usize,
    /// The largest object one server-side copy moves ([`DEFAULT_COPY_LIMIT`], S3's); a
    /// larger one (a blob published, retired or restored) is streamed through this
    /// process into a multipart upload, holding at most three parts in memory. Lower it
    /// for a compatible server whose limit is lower, or in tests, to stream small blobs.
    pub copy_limit: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            prefix: None,
            redirect_expiry: None,
            part_size: DEFAULT_PART_SIZE,
            copy_limit: DEFAULT_COPY_LIMIT,
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend refused its settings.
    #[error("object store settings: {0}")]
    Backend(#[from] object_store::Error),
    /// The key prefix is not a valid object path.
    #[error("key prefix: {0}")]
    Prefix(#[from] object_store::path::Error),
    /// The HTTP client that streams parts could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The part size is below what S3 accepts.
    #[error("part size {0} is below the 5 MiB minimum")]
    PartSize(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let settings = S3Settings {
            bucket: "b".into(),
            secret_access_key: Some(Secret::new("wJalrXUtnFEMI")),
            ..S3Settings::default()
        };
        let shown = format!("{:?}", Backend::S3(settings));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
