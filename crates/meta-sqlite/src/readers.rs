//! A pool of read-only connections, used inline by async callers for short queries.

use std::path::PathBuf;
use std::sync::Mutex;

use berth_meta::MetaError;
use rusqlite::{Connection, OpenFlags};

use crate::db_err;

/// Idle connections kept for reuse; more are opened under load and dropped after.
const MAX_IDLE: usize = 16;

pub struct Readers {
    path: PathBuf,
    /// Idle connections; a caller takes one for the duration of a query.
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> Result<Connection, MetaError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA mmap_size = 268435456;")
            .map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `f` on an idle connection.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, MetaError> {
        let pooled = self.idle.lock().expect("reader pool lock").pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&conn).map_err(db_err);
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }
}
