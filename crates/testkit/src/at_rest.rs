//! What a [`TestRegistry`]'s stores keep at rest, whatever the backends, for tests that
//! look for what must (not) be there.

use std::path::{Path, PathBuf};

use sqlx::{Connection, PgConnection, Row};

use crate::TestRegistry;

/// One part of what the metadata store keeps, as bytes to search.
pub struct StoredPart {
    /// A file of the SQLite database, or a table of the PostgreSQL one.
    pub name: String,
    /// The file's bytes; a table's rows as text, `bytea` columns escaped (printable
    /// ASCII as is).
    pub bytes: Vec<u8>,
}

impl TestRegistry {
    /// Everything the metadata store keeps: the SQLite database's files (the database
    /// and its journal), or each table of the PostgreSQL database.
    pub async fn metadata_at_rest(&self) -> Vec<StoredPart> {
        match &self.scale_out {
            Some(servers) => tables_as_text(servers.database_url()).await,
            None => std::fs::read_dir(self.dir.path())
                .expect("the data directory")
                .map(|entry| entry.expect("a directory entry").path())
                .filter(|path| path.is_file())
                .map(|path| StoredPart {
                    name: path.display().to_string(),
                    bytes: std::fs::read(&path).expect("a database file"),
                })
                .collect(),
        }
    }

    /// The path of every file the blob store keeps at rest, relative to its root: the
    /// filesystem store's files, or the files the S3 server keeps its objects in (one
    /// per object, named by its key).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let root = self.blob_root();
        let mut files = Vec::new();
        files_under(&root, &root, &mut files);
        files
    }

    /// The directory [`TestRegistry::blob_files`] are relative to: the filesystem
    /// store's root, or the S3 server's directory of the bucket.
    pub fn blob_root(&self) -> PathBuf {
        match &self.scale_out {
            Some(servers) => servers.bucket_dir(),
            None => self.dir.path().join("storage"),
        }
    }
}

/// Appends the files under `dir`, relative to `root`, to `files`.
fn files_under(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files_under(root, &path, files);
        } else {
            files.push(path.strip_prefix(root).expect("under the root").to_owned());
        }
    }
}

/// Each table of the database at `url`, its rows as text.
async fn tables_as_text(url: &str) -> Vec<StoredPart> {
    let mut conn = PgConnection::connect(url).await.expect("the test database");
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text
         FROM information_schema.columns WHERE table_schema = 'public'
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the database's columns");
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for row in columns {
        let (table, column, kind): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let text = if kind == "bytea" {
            format!("encode(\"{column}\", 'escape')")
        } else {
            format!("\"{column}\"::text")
        };
        match tables.last_mut() {
            Some((name, texts)) if *name == table => texts.push(text),
            _ => tables.push((table, vec![text])),
        }
    }
    let mut parts = Vec::new();
    for (table, texts) in tables {
        let sql = format!(
            "SELECT concat_ws(' ', {}) FROM \"{table}\"",
            texts.join(", ")
        );
        let rows: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("reading {table}: {e}"));
        parts.push(StoredPart {
            name: format!("table {table}"),
            bytes: rows.join("\n").into_bytes(),
        });
    }
    let _ = conn.close().await;
    parts
}
