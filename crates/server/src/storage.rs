//! Opening the configured blob store: a local directory, or a bucket of an object store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_blob::{BlobStore, FsBlobStore};
use berth_blob_object::{
    AzureSettings, Backend, GcsSettings, ObjectBlobStore, S3Settings, StoreOptions,
};

use crate::config::{Config, Secret, StorageConfig, StorageKind};

/// Opens the blob store `config` names; an object store must answer a write and a read.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    let storage = &config.storage;
    let Some(backend) = backend(storage)? else {
        let store = FsBlobStore::open(config.storage_path()).context("opening the blob store")?;
        return Ok(Arc::new(store));
    };
    let options = StoreOptions {
        prefix: storage.prefix.clone(),
        redirect_expiry: storage
            .redirect
            .then(|| Duration::from_secs(storage.redirect_expiry_secs.max(1))),
        ..StoreOptions::default()
    };
    let store = ObjectBlobStore::open(&backend, options).context("opening the blob store")?;
    store
        .check()
        .await
        .with_context(|| format!("the blob store ({store:?}) does not answer"))?;
    tracing::info!(store = ?store, "blobs are kept in an object store");
    Ok(Arc::new(store))
}

/// The object store `storage` names, or `None` for the filesystem store.
fn backend(storage: &StorageConfig) -> anyhow::Result<Option<Backend>> {
    Ok(Some(match storage.kind {
        StorageKind::Filesystem => {
            let object_store_keys = [
                ("bucket", storage.bucket.is_some()),
                ("container", storage.container.is_some()),
                ("endpoint", storage.endpoint.is_some()),
                ("redirect", storage.redirect),
            ];
            if let Some((key, _)) = object_store_keys.iter().find(|(_, set)| *set) {
                bail!(
                    "storage.{key} is set but storage.kind is \"filesystem\": set storage.kind \
                     to \"s3\", \"azure\" or \"gcs\""
                );
            }
            return Ok(None);
        }
        StorageKind::S3 => Backend::S3(S3Settings {
            endpoint: storage.endpoint.clone(),
            region: storage.region.clone(),
            bucket: required(&storage.bucket, "bucket")?,
            access_key_id: storage.access_key_id.clone(),
            secret_access_key: secret(
                &storage.secret_access_key,
                &storage.secret_access_key_file,
                "secret_access_key",
            )?,
            path_style: storage.path_style,
        }),
        StorageKind::Azure => Backend::Azure(AzureSettings {
            account: required(&storage.account, "account")?,
            container: required(&storage.container, "container")?,
            access_key: secret(&storage.access_key, &storage.access_key_file, "access_key")?,
            endpoint: storage.endpoint.clone(),
        }),
        StorageKind::Gcs => Backend::Gcs(GcsSettings {
            bucket: required(&storage.bucket, "bucket")?,
            service_account_path: storage.service_account_file.clone(),
        }),
    }))
}

fn required(value: &Option<String>, key: &str) -> anyhow::Result<String> {
    match value {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => bail!("storage.{key} is required for this storage.kind"),
    }
}

/// A secret given in the configuration or in a file (its trailing newline dropped).
fn secret(
    value: &Option<Secret>,
    file: &Option<PathBuf>,
    key: &str,
) -> anyhow::Result<Option<Secret>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("set storage.{key} or storage.{key}_file, not both"),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading storage.{key}_file {}", path.display()))?;
            Ok(Some(Secret::new(text.trim_end())))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> StorageConfig {
        StorageConfig {
            kind: StorageKind::S3,
            bucket: Some("images".into()),
            ..StorageConfig::default()
        }
    }

    #[test]
    fn a_secret_comes_from_the_configuration_or_a_file_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let mut config = s3();
        config.secret_access_key_file = Some(file);
        let Some(Backend::S3(s)) = backend(&config).unwrap() else {
            panic!("an S3 backend");
        };
        assert_eq!(s.secret_access_key.unwrap().expose(), "from-the-file");
        config.secret_access_key = Some(Secret::new("inline"));
        let err = backend(&config).unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn each_kind_names_what_it_needs() {
        let mut config = s3();
        config.bucket = None;
        let err = backend(&config).unwrap_err().to_string();
        assert!(err.contains("storage.bucket"), "{err}");
        let azure = StorageConfig {
            kind: StorageKind::Azure,
            account: Some("acct".into()),
            ..StorageConfig::default()
        };
        let err = backend(&azure).unwrap_err().to_string();
        assert!(err.contains("storage.container"), "{err}");
        let forgotten_kind = StorageConfig {
            bucket: Some("images".into()),
            ..StorageConfig::default()
        };
        let err = backend(&forgotten_kind).unwrap_err().to_string();
        assert!(err.contains("storage.kind"), "{err}");
        assert!(backend(&StorageConfig::default()).unwrap().is_none());
    }
}
