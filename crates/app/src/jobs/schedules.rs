//! The schedules a node keeps in the store, and firing those that are due.

use berth_meta::{JobSpec, JobStore, MetaError, Period, Schedule};

/// A schedule a node wants, before it is stored.
pub(super) struct Wanted {
    pub name: String,
    pub spec: JobSpec,
    pub period: Period,
}

/// The schedules a node wants, applied to the store when it starts.
#[derive(Default)]
pub(super) struct Plan {
    /// Put, keeping a stored next fire time when the period is unchanged.
    pub wanted: Vec<Wanted>,
    /// Deleted: work this node's configuration turned off.
    pub retired: Vec<String>,
}

impl Plan {
    /// Puts the wanted schedules (a new one first due as its period says from `now`: at
    /// once on an interval, at the first matching time for a cron) and deletes the
    /// retired.
    pub async fn apply(&self, store: &dyn JobStore, now: i64) -> Result<(), MetaError> {
        for wanted in &self.wanted {
            let schedule = Schedule {
                name: wanted.name.clone(),
                spec: wanted.spec.clone(),
                period: wanted.period.clone(),
                next_fire: wanted.period.first_fire(now),
            };
            store.put_schedule(&schedule).await?;
        }
        for name in &self.retired {
            store.delete_schedule(name).await?;
        }
        Ok(())
    }
}

/// Fires every schedule due at `now`; another node firing one first is no failure.
pub(super) async fn fire_due(store: &dyn JobStore, now: i64) -> Result<(), MetaError> {
    for schedule in store.schedules().await? {
        if schedule.next_fire > now {
            continue;
        }
        let next = schedule.period.next_after(schedule.next_fire, now);
        if let Some(job) = store
            .fire_schedule(&schedule.name, schedule.next_fire, next, now)
            .await?
        {
            tracing::debug!(schedule = %schedule.name, job, "fired a schedule");
        }
    }
    Ok(())
}
