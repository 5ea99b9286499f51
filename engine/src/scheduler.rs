//! The scheduler: once a second, fires the due occurrences of scheduled campaigns, carries out the
//! sends scheduled over the REST API, and hands tracked events to action-based campaigns. Every
//! duty claims its work in the database under a lease, so any number of processes may run a
//! scheduler over one database; nothing is kept in memory between ticks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::{Clock, DomainResult};
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

/// Campaign occurrences claimed per tick (each may write many pages of sends).
const OCCURRENCES_PER_TICK: usize = 10;
/// REST-scheduled sends claimed per tick.
const SCHEDULED_PER_TICK: usize = 50;
/// Tracked events claimed per tick.
const EVENTS_PER_TICK: usize = 500;

/// Drives the time-based and event-based campaign work of this process.
pub struct Scheduler {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    /// The dispatcher's waker ([`crate::Dispatcher::waker`]): poked when a tick queued sends, so
    /// they go out without waiting for the dispatcher's next poll.
    wake: Arc<Notify>,
    period: Duration,
}

impl Scheduler {
    /// A scheduler ticking every second.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Self {
        Self {
            db,
            clock,
            wake,
            period: Duration::from_secs(1),
        }
    }

    /// Ticks every `period` instead (tests, or an operator's setting).
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_millis(10));
        self
    }

    /// Does one round of every duty at the clock's `now`: due occurrences, due REST schedules,
    /// then waiting events. Returns how many items finished. A failing duty does not stop the
    /// others: each failure is logged here, and the first one is returned after all ran.
    pub async fn tick(&self) -> DomainResult<usize> {
        let now = self.clock.now();
        let results = [
            (
                "campaign occurrences",
                domain::campaign::run_due_occurrences(&self.db, now, OCCURRENCES_PER_TICK).await,
            ),
            (
                "scheduled sends",
                domain::campaign::run_due_scheduled(&self.db, now, SCHEDULED_PER_TICK).await,
            ),
            (
                "campaign triggers",
                domain::campaign::handle_events(&self.db, now, EVENTS_PER_TICK).await,
            ),
        ];
        let mut finished = 0;
        let mut first_error = None;
        for (duty, result) in results {
            match result {
                Ok(n) => finished += n,
                Err(error) => {
                    tracing::warn!(duty, %error, "scheduler duty failed; it is retried");
                    first_error.get_or_insert(error);
                }
            }
        }
        // A failed duty may still have committed some pages of sends before it stopped.
        if finished > 0 || first_error.is_some() {
            self.wake.notify_one();
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(finished),
        }
    }

    /// Ticks until `shutdown` resolves: every period, or straight again while the previous tick
    /// found work (a backlog is worked off without waiting). Errors are logged by [`tick`] and
    /// never end the loop. Shutdown is noticed between ticks; a tick in progress finishes first
    /// (and a process killed mid-tick loses nothing: the work is leased and resumes elsewhere).
    ///
    /// [`tick`]: Scheduler::tick
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut interval = tokio::time::interval(self.period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut busy = false;
        loop {
            if busy {
                // Still give shutdown a chance between back-to-back ticks.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::task::yield_now() => {}
                }
            } else {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = interval.tick() => {}
                }
            }
            busy = matches!(self.tick().await, Ok(n) if n > 0);
        }
        tracing::info!("scheduler stopped");
    }
}
