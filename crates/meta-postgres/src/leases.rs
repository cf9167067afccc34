//! Connections lent for one statement at a time, and taken back without a round trip.
//!
//! sqlx's pool pings every connection as it is released (a `Sync` message, answered by
//! `ReadyForQuery`), so each statement run on a `PgPool` costs the server and this node
//! a second exchange, two more wake-ups on each side. The statements every push makes
//! run on these connections instead:
//! - a lease whose statement ran to its end gives its connection back as it is: the
//!   server has answered `ReadyForQuery`, so nothing is left to read;
//! - a lease dropped before that (its request cancelled mid-statement, or the statement
//!   failed) closes its connection, so no connection with an answer half read is lent
//!   again;
//! - a connection idle for longer than [`IDLE_TIMEOUT`], or open for longer than
//!   [`MAX_LIFETIME`], is closed instead of lent (sqlx's pool defaults), so that few
//!   lent connections are ones a server or a proxy between has since dropped. One it
//!   dropped meanwhile fails the one statement that finds it, as on the pool.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_meta::MetaError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::db_err;

/// An idle connection older than this is closed rather than lent.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A connection opened longer ago than this is closed rather than lent.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Longest a lease waits for one of the connections to be given back.
const LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// At most `size` connections, opened as they are first needed.
pub(crate) struct Connections {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
}

/// A connection given back, and since when.
pub(crate) struct Idle {
    connection: PgConnection,
    opened: Instant,
    since: Instant,
}

/// A connection lent until [`Lease::finish`] gives it back; dropped unfinished, it is
/// closed.
pub(crate) struct Lease<'a> {
    connection: Option<PgConnection>,
    opened: Instant,
    lender: &'a Connections,
    _permit: SemaphorePermit<'a>,
}

impl Connections {
    /// Connections opened with `options`, at most `size` (at least one) at a time.
    pub(crate) fn new(options: PgConnectOptions, size: u32) -> Self {
        Connections {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1) as usize),
        }
    }

    /// Lends the connection given back last, or opens one, once fewer than `size` are
    /// lent; waits at most 30 s for one.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, MetaError> {
        let permit = tokio::time::timeout(LEASE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| MetaError("timed out waiting for a database connection".into()))?
            .map_err(|_| MetaError("the database connections are closed".into()))?;
        let (connection, opened) = match self.fresh_idle(Instant::now()) {
            Some(idle) => (idle.connection, idle.opened),
            None => (
                self.options.connect().await.map_err(db_err)?,
                Instant::now(),
            ),
        };
        Ok(Lease {
            connection: Some(connection),
            opened,
            lender: self,
            _permit: permit,
        })
    }

    /// The idle connection given back last that is still fit to lend at `now`; those
    /// too old are closed on the way.
    pub(crate) fn fresh_idle(&self, now: Instant) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(candidate) = idle.pop() {
            if now.duration_since(candidate.since) < IDLE_TIMEOUT
                && now.duration_since(candidate.opened) < MAX_LIFETIME
            {
                return Some(candidate);
            }
        }
        None
    }
}

impl Lease<'_> {
    /// The lent connection.
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        self.connection
            .as_mut()
            .expect("a lease holds its connection until it ends")
    }

    /// Gives back a connection whose last statement ran to its end, to be lent again as
    /// it is.
    pub(crate) fn finish(mut self) {
        if let Some(connection) = self.connection.take() {
            self.lender
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Idle {
                    connection,
                    opened: self.opened,
                    since: Instant::now(),
                });
        }
    }
}
