//! Throw-away PostgreSQL databases for tests: each [`TempDatabase`] is created on the
//! server named by `BERTH_TEST_POSTGRES` (default: the local server, user `postgres`)
//! and dropped when the value is dropped.
//!
//! Where no server answers, [`TempDatabase::create`] returns `None` and says so on
//! stderr, so that the suite runs on a machine without PostgreSQL; with
//! `BERTH_REQUIRE_POSTGRES=1` (set by CI) it panics instead, so that CI never passes
//! by skipping.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

/// The administrative URL used when `BERTH_TEST_POSTGRES` is not set.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for as long as this value.
pub struct TempDatabase {
    server: PgConnectOptions,
    name: String,
    url: String,
}

impl TempDatabase {
    /// Creates an empty database with a random name, or `None` (after saying why) when
    /// no server answers and `BERTH_REQUIRE_POSTGRES` is not set.
    pub async fn create() -> Option<TempDatabase> {
        let server_url =
            std::env::var("BERTH_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER_URL.into());
        let server: PgConnectOptions = server_url
            .parse()
            .unwrap_or_else(|e| panic!("BERTH_TEST_POSTGRES={server_url:?}: {e}"));
        let mut admin = match server.connect().await {
            Ok(c) => c,
            Err(e) if !required() => {
                eprintln!(
                    "SKIPPED: no PostgreSQL at {server_url} ({e}); set BERTH_TEST_POSTGRES to \
                     run the PostgreSQL tests"
                );
                return None;
            }
            Err(e) => panic!("BERTH_REQUIRE_POSTGRES is set but {server_url} refused: {e}"),
        };
        let name = format!("berth_test_{:016x}", rand::random::<u64>());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = admin.close().await;
        let url = url_of(&server_url, &name);
        Some(TempDatabase { server, name, url })
    }

    /// The URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Dropped from a thread of its own: the value may be dropped inside a runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut admin: PgConnection = server.connect().await?;
                admin.execute(sql.as_str()).await?;
                admin.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

fn required() -> bool {
    std::env::var("BERTH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// `server_url` with its database path replaced by `database`.
fn url_of(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut url = format!("{}/{database}", &base[..authority_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::url_of;

    #[test]
    fn the_database_replaces_the_path_and_keeps_the_query() {
        assert_eq!(
            url_of("postgres://u@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5432/t1?sslmode=disable"
        );
        assert_eq!(url_of("postgres://u@h", "t1"), "postgres://u@h/t1");
    }
}
