//! The scheduler: once a second, fires the due occurrences of scheduled campaigns, carries out the
//! sends scheduled over the REST API, hands tracked events to action-based campaigns and
//! Canvases, lets the audiences of scheduled Canvases in, and moves Canvas journeys along. Every
//! duty claims its work in the database under a lease, so any number of processes may run a
//! scheduler over one database; nothing is kept in memory between ticks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::{Clock, DomainResult};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

/// Campaign occurrences claimed per tick (each may write many pages of sends).
const OCCURRENCES_PER_TICK: usize = 10;
/// REST-scheduled sends claimed per tick.
const SCHEDULED_PER_TICK: usize = 50;
/// Tracked events claimed per tick.
const EVENTS_PER_TICK: usize = 500;
/// Scheduled Canvas entries claimed per tick (each may enter many pages of users).
const CANVAS_OCCURRENCES_PER_TICK: usize = 10;
/// Canvas journeys advanced per tick (one short transaction each).
const JOURNEYS_PER_TICK: usize = 1000;

/// The duties of a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Duty {
    CampaignOccurrences,
    ScheduledSends,
    /// Tracked events, for action-based campaigns and Canvases alike.
    Events,
    CanvasOccurrences,
    CanvasJourneys,
}

impl Duty {
    /// In the order a tick runs them.
    const ALL: [Duty; 5] = [
        Duty::CampaignOccurrences,
        Duty::ScheduledSends,
        Duty::Events,
        Duty::CanvasOccurrences,
        Duty::CanvasJourneys,
    ];

    /// The name logs and [`SchedulerStats::duty`] use.
    fn name(self) -> &'static str {
        match self {
            Duty::CampaignOccurrences => "campaign occurrences",
            Duty::ScheduledSends => "scheduled sends",
            Duty::Events => "campaign triggers",
            Duty::CanvasOccurrences => "canvas occurrences",
            Duty::CanvasJourneys => "canvas journeys",
        }
    }
}

/// What each duty has done since the scheduler started: items finished and time spent, for
/// operators and benchmarks (read with [`Scheduler::stats`]).
#[derive(Debug, Default)]
pub struct SchedulerStats {
    duties: [DutyStats; Duty::ALL.len()],
}

#[derive(Debug, Default)]
struct DutyStats {
    items: AtomicU64,
    busy_nanos: AtomicU64,
}

impl SchedulerStats {
    /// Items a duty finished and the wall time it spent, by duty name (`campaign occurrences`,
    /// `scheduled sends`, `campaign triggers`, `canvas occurrences`, `canvas journeys`); `None`
    /// for an unknown name.
    pub fn duty(&self, name: &str) -> Option<(u64, Duration)> {
        let index = Duty::ALL.iter().position(|d| d.name() == name)?;
        let stats = &self.duties[index];
        Some((
            stats.items.load(Ordering::Relaxed),
            Duration::from_nanos(stats.busy_nanos.load(Ordering::Relaxed)),
        ))
    }

    fn record(&self, index: usize, items: usize, spent: Duration) {
        let stats = &self.duties[index];
        stats.items.fetch_add(items as u64, Ordering::Relaxed);
        stats.busy_nanos.fetch_add(
            u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Rows a SQLite connection's thread hands back before it waits for the task reading them
/// (sqlx's default is 50). `/users/track` reads a batch's profiles inside its write transaction, a
/// few hundred rows; with 50 the connection's thread stopped several times per query waiting for
/// the task to take them. With 1,024 that lookup took a quarter less time and ingestion gained
/// about 10% (BENCHMARKS.md, issue 4). The buffer bounds memory per query, not per result.
pub const SQLITE_ROW_BUFFER: usize = 1024;

/// Page size of the SQLite databases Herald creates (SQLite's default is 4,096 bytes). SQLite
/// appends every page a commit changed to the WAL with its own write calls, and `/users/track`
/// changes a page of the events-by-profile index per profile it touches: with 16 KiB pages a
/// commit makes a quarter of the calls, and ingestion gained about 18% (46k to 55k events/s;
/// 8 KiB gave 53k, 32 KiB 53k, 64 KiB 50k, 2 KiB and 1 KiB were slower; BENCHMARKS.md, issue 4).
/// It takes effect only when the file is created; an existing database keeps its page size.
pub const SQLITE_PAGE_SIZE: u32 = 16_384;

/// What every SQLite connection Herald opens carries, whatever else it sets: the REGEXP function
/// segments' `matches_regex` needs, the row buffer ([`SQLITE_ROW_BUFFER`]) and, for a file not
/// created yet, the page size ([`SQLITE_PAGE_SIZE`]).
pub fn sqlite_settings(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .with_regexp()
        .row_buffer_size(SQLITE_ROW_BUFFER)
        .page_size(SQLITE_PAGE_SIZE)
}

/// A connection for the scheduler's large reads (audience pages, receipts), beside `db`, the
/// connection everything is written through.
///
/// sea-orm gives a SQLite database a single connection, so a campaign page waiting to read its
/// next thousand users used to queue behind the dispatcher's claims and records (and their
/// commits) on it, and the other way round. In WAL mode readers do not block the writer, so for a
/// SQLite file this opens a second pool on the very file `db` has open (asked of `db` itself, so
/// the two can never be different databases), refusing writes (`query_only`), with Herald's
/// settings ([`sqlite_settings`]: the REGEXP function segments need among them). An in-memory SQLite database cannot be shared that way, and
/// PostgreSQL's pool already has several connections: for those the reader is `db` itself.
pub async fn open_reader(db: &DatabaseConnection) -> Result<DatabaseConnection, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(db.clone());
    }
    // The first row is the main database; its file is empty when it lives in memory.
    let file: String = db
        .query_one(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA database_list",
        ))
        .await?
        .map(|row| row.try_get("", "file"))
        .transpose()?
        .unwrap_or_default();
    if file.is_empty() {
        return Ok(db.clone());
    }
    let mut options = ConnectOptions::new("sqlite://reader");
    options
        .max_connections(2)
        .min_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            sqlite_settings(o.filename(&file)).pragma("query_only", "ON")
        });
    Database::connect(options).await
}

/// Drives the time-based and event-based campaign work of this process.
pub struct Scheduler {
    db: DatabaseConnection,
    /// Where campaign occurrences read their audience pages ([`open_reader`]); `db` unless set.
    reads: DatabaseConnection,
    clock: Arc<dyn Clock>,
    /// The dispatcher's waker ([`crate::Dispatcher::waker`]): poked when a tick queued sends, so
    /// they go out without waiting for the dispatcher's next poll.
    wake: Arc<Notify>,
    period: Duration,
    stats: Arc<SchedulerStats>,
}

impl Scheduler {
    /// A scheduler ticking every second.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Self {
        Self {
            reads: db.clone(),
            db,
            clock,
            wake,
            period: Duration::from_secs(1),
            stats: Arc::default(),
        }
    }

    /// What the duties have done so far; the handle stays valid after [`Scheduler::run`] takes
    /// the scheduler.
    pub fn stats(&self) -> Arc<SchedulerStats> {
        self.stats.clone()
    }

    /// Reads campaign audiences through `reads` (see [`open_reader`]) instead of `db`.
    pub fn with_reader(mut self, reads: DatabaseConnection) -> Self {
        self.reads = reads;
        self
    }

    /// Ticks every `period` instead (tests, or an operator's setting).
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_millis(10));
        self
    }

    /// Does one round of every duty at the clock's `now`: due campaign occurrences, due REST
    /// schedules, waiting events (campaigns and Canvases), due Canvas entries, then due Canvas
    /// journeys (last, so users who entered this tick take their first steps at once). Returns
    /// how many items finished. A failing duty does not stop the others: each failure is logged
    /// here, and the first one is returned after all ran.
    pub async fn tick(&self) -> DomainResult<usize> {
        let now = self.clock.now();
        let db = &self.db;
        let mut results = Vec::with_capacity(Duty::ALL.len());
        for (index, duty) in Duty::ALL.into_iter().enumerate() {
            let started = Instant::now();
            let result = match duty {
                Duty::CampaignOccurrences => {
                    domain::campaign::run_due_occurrences_reading(
                        db,
                        &self.reads,
                        now,
                        OCCURRENCES_PER_TICK,
                    )
                    .await
                }
                Duty::ScheduledSends => {
                    domain::campaign::run_due_scheduled(db, now, SCHEDULED_PER_TICK).await
                }
                Duty::Events => domain::campaign::handle_events(db, now, EVENTS_PER_TICK).await,
                Duty::CanvasOccurrences => {
                    domain::canvas::run_due_canvas_occurrences(db, now, CANVAS_OCCURRENCES_PER_TICK)
                        .await
                }
                Duty::CanvasJourneys => {
                    domain::canvas::advance_due(db, now, JOURNEYS_PER_TICK).await
                }
            };
            self.stats
                .record(index, *result.as_ref().unwrap_or(&0), started.elapsed());
            results.push((duty.name(), result));
        }
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
