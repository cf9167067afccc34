//! The stores a [`TestRegistry`](crate::TestRegistry) runs on, chosen by
//! `BERTH_TEST_BACKENDS`: the embedded default (SQLite + the filesystem store) in the
//! registry's temporary directory, or the scale-out pair (a throw-away PostgreSQL
//! database + the object-store adapter on a throw-away S3 server).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_blob::{BlobStore, FsBlobStore};
use berth_blob_object::{
    Backend, MIN_PART_SIZE, ObjectBlobStore, S3Settings, Secret, StoreOptions,
};
use berth_meta::Metadata;
use berth_meta_postgres::{PgConfig, PgMetaStore};
use berth_meta_sqlite::SqliteMetaStore;
use berth_testkit_postgres::TempDatabase;
use berth_testkit_s3::S3Server;

/// The environment variable that selects the backends: unset, empty or
/// `sqlite+filesystem` for the default, `postgres+s3` for the scale-out pair.
pub const BACKENDS_VARIABLE: &str = "BERTH_TEST_BACKENDS";

/// The largest blob the object store of a `postgres+s3` registry copies on the S3
/// server: a larger one is streamed through the process when it is published, retired
/// or restored, so that tests take that path with a few MiB rather than 5 GiB.
pub const OBJECT_COPY_LIMIT: u64 = 2 << 20;

/// Connections each registry opens at most on PostgreSQL: the default `pool_size`.
const POOL_SIZE: u32 = 16;

/// Which stores test registries run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    /// SQLite and the filesystem blob store, both in the registry's directory (the
    /// embedded default).
    SqliteFilesystem,
    /// A database of its own on the PostgreSQL server of `berth_testkit_postgres`, and a
    /// bucket on an S3 server of its own (`s3s-fs`) through the object-store adapter.
    PostgresS3,
}

impl Backends {
    /// The backends `BERTH_TEST_BACKENDS` names; an unknown name is a panic, so that a
    /// typo never runs the suite on the default backends unnoticed.
    pub fn selected() -> Self {
        let value = std::env::var(BACKENDS_VARIABLE).unwrap_or_default();
        Self::parse(&value).unwrap_or_else(|| {
            panic!(
                "{BACKENDS_VARIABLE}={value:?}: expected {} or {}",
                Backends::SqliteFilesystem.name(),
                Backends::PostgresS3.name()
            )
        })
    }

    /// The backends a value of `BERTH_TEST_BACKENDS` names.
    fn parse(value: &str) -> Option<Self> {
        match value {
            "" | "sqlite+filesystem" => Some(Backends::SqliteFilesystem),
            "postgres+s3" => Some(Backends::PostgresS3),
            _ => None,
        }
    }

    /// The name `BERTH_TEST_BACKENDS` gives these backends.
    pub fn name(self) -> &'static str {
        match self {
            Backends::SqliteFilesystem => "sqlite+filesystem",
            Backends::PostgresS3 => "postgres+s3",
        }
    }

    /// Opens the stores, keeping SQLite's and the filesystem store's files under `dir`.
    /// Called within a Tokio runtime (the PostgreSQL pool belongs to it).
    pub(crate) fn open(self, dir: &Path) -> Stores {
        match self {
            Backends::SqliteFilesystem => Stores {
                meta: Arc::new(
                    SqliteMetaStore::open(dir.join("berth.db")).expect("metadata store"),
                ),
                blobs: Arc::new(FsBlobStore::open(dir.join("storage")).expect("blob store")),
                scale_out: None,
            },
            Backends::PostgresS3 => {
                let (database, config) = migrated_database();
                let s3 = S3Server::start().unwrap_or_else(|| {
                    panic!("{BACKENDS_VARIABLE}=postgres+s3 needs an S3 test server (s3s-fs)")
                });
                Stores {
                    meta: Arc::new(PgMetaStore::connect_lazy(&config).expect("metadata store")),
                    blobs: Arc::new(object_store_on(&s3)),
                    scale_out: Some(ScaleOutServers { database, s3 }),
                }
            }
        }
    }
}

/// The stores of one registry, and the servers that must outlive them.
pub(crate) struct Stores {
    /// Every metadata store trait.
    pub(crate) meta: Arc<dyn Metadata>,
    /// The blob store.
    pub(crate) blobs: Arc<dyn BlobStore>,
    /// The database and S3 server of the scale-out backends.
    pub(crate) scale_out: Option<ScaleOutServers>,
}

/// A throw-away database and S3 server, dropped (and removed) with their registry.
pub(crate) struct ScaleOutServers {
    database: TempDatabase,
    s3: S3Server,
}

impl ScaleOutServers {
    /// The URL of the registry's database.
    pub(crate) fn database_url(&self) -> &str {
        self.database.url()
    }

    /// Where the S3 server keeps the bucket's objects, one file per object.
    pub(crate) fn bucket_dir(&self) -> std::path::PathBuf {
        self.s3.bucket_dir()
    }
}

/// A new, migrated database and how to reach it. Both are done on a thread of their own
/// with a runtime of its own: the caller's runtime may be a current-thread one that is
/// busy calling this, and the connections used here belong to this runtime only.
fn migrated_database() -> (TempDatabase, PgConfig) {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime to create the test database");
        runtime.block_on(async {
            let database = TempDatabase::create().await.unwrap_or_else(|| {
                panic!("{BACKENDS_VARIABLE}=postgres+s3 needs a PostgreSQL server")
            });
            let config = PgConfig {
                url: database.url().to_owned(),
                pool_size: POOL_SIZE,
                statement_timeout: Duration::from_secs(30),
            };
            PgMetaStore::migrate(&config)
                .await
                .expect("migrating the test database");
            (database, config)
        })
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The object-store adapter on `server`'s bucket, with parts as small as S3 allows so
/// that tests cross part boundaries with little data, and copies past
/// [`OBJECT_COPY_LIMIT`] streamed.
fn object_store_on(server: &S3Server) -> ObjectBlobStore {
    let backend = Backend::S3(S3Settings {
        endpoint: Some(server.endpoint().to_owned()),
        region: Some(berth_testkit_s3::REGION.to_owned()),
        bucket: server.bucket().to_owned(),
        access_key_id: Some(server.access_key_id().to_owned()),
        secret_access_key: Some(Secret::new(server.secret_access_key())),
        path_style: true,
    });
    let options = StoreOptions {
        part_size: MIN_PART_SIZE,
        copy_limit: OBJECT_COPY_LIMIT,
        ..StoreOptions::default()
    };
    ObjectBlobStore::open(&backend, options).expect("blob store")
}

#[cfg(test)]
mod tests {
    use super::Backends;

    #[test]
    fn the_variable_names_one_of_two_pairs_and_defaults_to_the_embedded_one() {
        assert_eq!(Backends::parse(""), Some(Backends::SqliteFilesystem));
        for backends in [Backends::SqliteFilesystem, Backends::PostgresS3] {
            assert_eq!(Backends::parse(backends.name()), Some(backends));
        }
        assert_eq!(Backends::parse("postgres"), None, "a typo is refused");
    }
}
