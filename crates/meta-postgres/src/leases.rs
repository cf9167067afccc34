//! Connections lent for one statement at a time, and taken back without a round trip.
//!
//! sqlx's pool pings every connection as it is released (a `Sync` message, answered by
//! `ReadyForQuery`), so each statement run on a `PgPool` costs the server and this node
//! a second exchange, two more wake-ups on each side. The statements every push makes
//! run on these connections instead:
//! - a lease whose statement ran to its end, whatever it answered, gives its connection
//!   back as it is ([`Lease::finish`]): sqlx has read the answer up to the server's
//!   `ReadyForQuery`, or, after an error, reads that first with the next statement;
//! - a lease dropped before that (its request cancelled mid-statement, or the statement
//!   failed on the way) keeps its place among the connections until the server has
//!   answered what it was sent (a ping, as sqlx's pool makes, for at most the answer
//!   timeout: the statement timeout and some), and then closes its connection: no
//!   connection with an answer half read is lent again, and while the statement
//!   timeout ends statements, the server never runs more of them for these connections
//!   than their number;
//! - a connection idle for longer than [`IDLE_TIMEOUT`], or open for longer than
//!   [`MAX_LIFETIME`], is closed instead of lent (sqlx's pool defaults), so that few
//!   lent connections are ones a server or a proxy between has since dropped. One it
//!   dropped meanwhile fails the one statement that finds it, as on the pool;
//! - a lease waits for a connection at most its timeout, opening one included; a
//!   refused connection, a server starting up (57P03) or one out of connections (53300)
//!   is tried again until then, as the pool does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_meta::MetaError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::db_err;

/// An idle connection older than this is closed rather than lent.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A connection opened longer ago than this is closed rather than lent.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Longest a settled connection's closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two attempts to open a connection.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// At most `size` connections, opened as they are first needed.
pub(crate) struct Connections {
    options: PgConnectOptions,
    timeout: Duration,
    answer_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

/// A connection given back, and since when.
pub(crate) struct Idle {
    connection: PgConnection,
    opened: Instant,
    since: Instant,
}

/// A connection lent until [`Lease::finish`] gives it back; dropped unfinished, it is
/// settled and closed.
pub(crate) struct Lease<'a> {
    connection: Option<PgConnection>,
    opened: Instant,
    lender: &'a Connections,
    permit: Option<OwnedSemaphorePermit>,
}

impl Connections {
    /// Connections opened with `options`, at most `size` (at least one) at a time; a
    /// lease waits at most `timeout` for one, and one ended mid-statement waits at most
    /// `answer_timeout` for the server's answer.
    pub(crate) fn new(
        options: PgConnectOptions,
        size: u32,
        timeout: Duration,
        answer_timeout: Duration,
    ) -> Self {
        Connections {
            options,
            timeout,
            answer_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1) as usize)),
        }
    }

    /// Lends the connection given back last, or opens one, once fewer than `size` are
    /// lent or settling.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, MetaError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| MetaError("the database connections are closed".into()))?;
        let (connection, opened) = match self.fresh_idle(Instant::now()) {
            Some(idle) => (idle.connection, idle.opened),
            None => (self.connect(deadline).await?, Instant::now()),
        };
        Ok(Lease {
            connection: Some(connection),
            opened,
            lender: self,
            permit: Some(permit),
        })
    }

    /// Opens a connection by `deadline`, trying again after the failures a server
    /// restarting or full gives.
    async fn connect(&self, deadline: tokio::time::Instant) -> Result<PgConnection, MetaError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match tokio::time::timeout_at(deadline, self.options.connect()).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(connection)) => return Ok(connection),
                Ok(Err(e)) if !transient(&e) => return Err(db_err(e)),
                Ok(Err(_)) => {}
            }
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(timed_out());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
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

impl Drop for Lease<'_> {
    /// Settles and closes a connection whose lease ended before its statement did.
    fn drop(&mut self) {
        if let (Some(connection), Some(permit)) = (self.connection.take(), self.permit.take()) {
            settle(connection, permit, self.lender.answer_timeout);
        }
    }
}

/// Waits, in a task of its own, for the server to answer whatever `connection` was
/// sent (at most `answer_timeout`), then closes it and gives its place back.
fn settle(mut connection: PgConnection, permit: OwnedSemaphorePermit, answer_timeout: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        if let Ok(Ok(())) = tokio::time::timeout(answer_timeout, connection.ping()).await {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close()).await;
        }
        drop(permit);
    });
}

/// Whether a failure to connect may pass: nothing listens yet (a server restarting),
/// the server is starting up (57P03), or it has no connection to spare (53300).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// The error of a lease that found no connection in time.
fn timed_out() -> MetaError {
    MetaError("timed out waiting for a database connection".into())
}
