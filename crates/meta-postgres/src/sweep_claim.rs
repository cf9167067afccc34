//! A sweep's claim while its bytes are retired: renewed as long as the retire moves
//! bytes, so that a long one (a blob streamed through the node) keeps the blob against
//! every other sweep however long it takes, and given up on once it has gone a quarter
//! of the lease without a renewal. The rest of the lease is then still ahead: the
//! margin for a retire that was given up on but still lands.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_meta::{SweepBytes, SweepFailed};
use berth_oci::Digest;
use tokio::time::Instant;

use crate::{PgMetaStore, db_err};

/// How a retire under a claim ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Retired {
    /// The retire finished, under the claim.
    Done,
    /// The claim was taken over (a completion revived the blob) while the retire ran:
    /// the retire was stopped, and may have moved the bytes.
    TakenOver,
    /// The claim went this long without a renewal (a retire that moves nothing, or a
    /// database out of reach): the retire was given up on, and may still land.
    GivenUp(Duration),
}

/// How many times per budget the claim is looked after.
const CHECKS_PER_BUDGET: u32 = 4;

impl PgMetaStore {
    /// Retires `digest`'s bytes under the claim `token`, held for `lease`: renewed while
    /// the retire moves bytes, the retire given up on once the claim went `lease / 4`
    /// without a renewal, or stopped once the claim is found taken over. An error is
    /// the retire's own.
    pub(crate) async fn retire_claimed(
        &self,
        digest: &Digest,
        token: &str,
        lease: Duration,
        bytes: &dyn SweepBytes,
    ) -> Result<Retired, SweepFailed> {
        let moved = AtomicU64::new(0);
        let count = |n: u64| {
            moved.fetch_add(n, Ordering::Relaxed);
        };
        tokio::select! {
            retired = bytes.retire(digest, token, &count) => retired.map(|()| Retired::Done),
            lost = self.keep_claim(digest, token, lease, &moved) => Ok(lost),
        }
    }

    /// Renews the claim each time the retire has moved bytes since the last renewal,
    /// looking every `lease / 16`; returns once the claim is no longer kept: taken over,
    /// or not renewed for `lease / 4` (a renewal still waiting then is given up on).
    async fn keep_claim(
        &self,
        digest: &Digest,
        token: &str,
        lease: Duration,
        moved: &AtomicU64,
    ) -> Retired {
        let budget = lease / 4;
        // The claim's deadline is at least a lease after this: it was set before.
        let (mut renewed_at, mut renewed_moved) = (Instant::now(), 0);
        loop {
            let next = Instant::now() + budget / CHECKS_PER_BUDGET;
            tokio::time::sleep_until(next.min(renewed_at + budget)).await;
            let now_moved = moved.load(Ordering::Relaxed);
            if now_moved > renewed_moved {
                let asked = Instant::now();
                // A renewal that waits (the row locked, a database out of reach) waits
                // only as long as the budget lasts: the retire goes on meanwhile.
                let renewal = self.renew_sweep(digest, token, lease);
                match tokio::time::timeout_at(renewed_at + budget, renewal).await {
                    Ok(Ok(true)) => (renewed_at, renewed_moved) = (asked, now_moved),
                    Ok(Ok(false)) => return Retired::TakenOver,
                    Ok(Err(e)) => {
                        tracing::warn!(%digest, error = %e, "could not renew a sweep's claim")
                    }
                    Err(_) => tracing::warn!(%digest, "a sweep's claim renewal did not answer"),
                }
            }
            if renewed_at.elapsed() >= budget {
                return Retired::GivenUp(budget);
            }
        }
    }

    /// Moves the claim's deadline a lease on from now, by the database's clock, if the
    /// claim is still `token`'s; returns whether it was.
    async fn renew_sweep(
        &self,
        digest: &Digest,
        token: &str,
        lease: Duration,
    ) -> Result<bool, berth_meta::MetaError> {
        let renewed = sqlx::query(
            "UPDATE blobs
             SET sweep_until = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3
             WHERE digest = $1 AND status = 'deleting' AND sweep_token = $2",
        )
        .bind(digest.as_str())
        .bind(token)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(renewed.rows_affected() == 1)
    }
}
