//! The dispatcher: claims due sends from the outbox under a lease, renders them on their first
//! attempt, sends them, and records every attempt. Claims are short conditional UPDATEs (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL) committed before any HTTP call, so several processes
//! never hold the same send at once; a send whose lease runs out (its process died) is claimed
//! again, which makes delivery at-least-once with a stable `webhook-id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::Clock;
use domain::entity::host_state;
use domain::outbox::status;
use domain::signing::SigningKeys;
use domain::template::RenderContext;
use domain::webhook::{CompiledMessage, Rendered, RenderedRequest, WebhookMessage};
use rand::Rng;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    Set, Statement, TransactionTrait, Value,
};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::client::{Exchange, WebhookClient};
use crate::retry::{AttemptResult, Decision, RetryPolicy};

/// How the dispatcher paces itself.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Sends claimed per query.
    pub batch_size: usize,
    /// How long a claim holds a send; a process that dies loses its claims after this.
    pub lease: Duration,
    /// Requests in flight at once in this process.
    pub concurrency: usize,
    /// Requests in flight at once per destination host in this process.
    pub per_host_concurrency: usize,
    /// How often to look for due sends when nothing signals new work.
    pub poll_interval: Duration,
    /// Failures within one minute that pause a host (Braze: 3,000).
    pub host_failure_threshold: i64,
    /// How long a failing host is paused.
    pub host_pause: Duration,
    /// Of each batch, the share of claims reserved for first attempts when retries also wait.
    pub first_attempt_share: f64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            lease: Duration::from_secs(120),
            concurrency: 64,
            per_host_concurrency: 32,
            poll_interval: Duration::from_millis(250),
            host_failure_threshold: 3000,
            host_pause: Duration::from_secs(300),
            first_attempt_share: 0.75,
        }
    }
}

/// A send this process holds a lease on.
#[derive(Clone, Debug)]
struct Claimed {
    workspace_id: String,
    id: String,
    source_kind: String,
    source_id: Option<String>,
    rate_per_minute: Option<i32>,
    /// Shared by the sends of one claim that carry the same message (a campaign's all do).
    message: Arc<str>,
    context: String,
    request: Option<String>,
    attempts: i32,
    first_attempt_at: Option<DateTime<Utc>>,
    lease_until: DateTime<Utc>,
    /// SQLite's rowid of the send, so recording finds the row without a primary-key search.
    rowid: Option<i64>,
}

/// What to write back for one claimed send.
#[derive(Debug)]
struct Outcome {
    workspace_id: String,
    id: String,
    lease_until: DateTime<Utc>,
    rowid: Option<i64>,
    attempt: Option<AttemptRow>,
    status: &'static str,
    lane: i16,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    request: Option<String>,
    host: Option<String>,
    first_attempt_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    /// Whether this attempt counts towards pausing its host.
    host_failure: bool,
}

/// The attempt row of an outcome (its send's key is the outcome's).
#[derive(Debug)]
struct AttemptRow {
    number: i32,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    status_code: Option<i32>,
    error_kind: Option<&'static str>,
    error: Option<String>,
    response_headers: String,
    response_body: String,
    outcome: &'static str,
}

/// Per-host limits of this process: a concurrency cap, and failure counting for pauses.
#[derive(Default)]
struct Hosts {
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    failures: Mutex<HashMap<String, (i64, i64)>>,
    paused: Mutex<HashMap<String, DateTime<Utc>>>,
    /// When pauses recorded by other processes were last read from `host_state`.
    paused_read_at: Mutex<Option<std::time::Instant>>,
}

/// How often pauses set by other processes are picked up.
const PAUSE_REFRESH: Duration = Duration::from_secs(5);

/// Signing keys per workspace, re-read every few seconds so enabling or rotating takes effect
/// quickly without a query per send.
const SIGNING_CACHE_TTL: Duration = Duration::from_secs(5);

type SigningCache = Mutex<HashMap<String, (std::time::Instant, Option<SigningKeys>)>>;

/// Compiled messages kept at most: a campaign's sends all carry the same message, so parsing its
/// Liquid once instead of per send takes most of the rendering cost away.
const TEMPLATE_CACHE_ENTRIES: usize = 256;
/// And at most this many bytes of stored message text as keys, whatever their count.
const TEMPLATE_CACHE_BYTES: usize = 4 << 20;

/// Compiled messages by their stored JSON, with the total size of the keys.
#[derive(Default)]
struct TemplateCache {
    compiled: HashMap<String, Arc<CompiledMessage>>,
    key_bytes: usize,
    /// The message last looked up, found again by pointer without hashing its text.
    last: Option<(Arc<str>, Arc<CompiledMessage>)>,
}

/// Outcomes (and attempt rows) written per statement at most: 14 (11) parameters a row stays far
/// below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const RECORD_CHUNK: usize = 512;

/// Outcomes recorded per transaction at most.
const RECORD_BATCH: usize = 1024;

/// How long the recorder waits for more outcomes before writing a batch that is not full.
const RECORD_GATHER: Duration = Duration::from_millis(10);

/// Above this many rows, statements grow in steps of this many rows instead of doubling.
const RECORD_STEP: usize = 64;

/// A claimed send from a row the claim returned.
fn claimed_from(row: &sea_orm::QueryResult, lease_until: DateTime<Utc>) -> Result<Claimed, DbErr> {
    Ok(Claimed {
        workspace_id: row.try_get("", "workspace_id")?,
        id: row.try_get("", "id")?,
        source_kind: row.try_get("", "source_kind")?,
        source_id: row.try_get("", "source_id")?,
        rate_per_minute: row.try_get("", "rate_per_minute")?,
        message: row.try_get::<String>("", "message")?.into(),
        context: row.try_get("", "context")?,
        request: row.try_get("", "request")?,
        attempts: row.try_get("", "attempts")?,
        first_attempt_at: row.try_get("", "first_attempt_at")?,
        lease_until,
        rowid: None,
    })
}

/// Sends webhooks from the outbox.
pub struct Dispatcher {
    signing: SigningCache,
    templates: Mutex<TemplateCache>,
    /// The URL last checked and its parsed form: a campaign's sends mostly go to one URL.
    last_url: Mutex<Option<(String, reqwest::Url)>>,
    db: DatabaseConnection,
    client: WebhookClient,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
    hosts: Hosts,
    wake: Arc<Notify>,
}

fn lease_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    // Leases are compared for equality when results are recorded; PostgreSQL keeps microseconds,
    // so keep milliseconds everywhere.
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        client: WebhookClient,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            signing: Mutex::new(HashMap::new()),
            templates: Mutex::new(TemplateCache::default()),
            last_url: Mutex::new(None),
            db,
            client,
            retry,
            clock,
            settings,
            hosts: Hosts::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Poke this after enqueueing so the dispatcher looks at once instead of at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claims up to `limit` due sends: at least `first_attempt_share` of them for first attempts
    /// when that many wait, the rest for retries, and whatever one lane leaves unused for the
    /// other. First attempts come first in the result.
    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, DbErr> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let lease_until = lease_precision(now + to_delta(self.settings.lease));
        let first_share = ((limit as f64) * self.settings.first_attempt_share).ceil() as usize;
        let retry_share = limit - first_share.clamp(1, limit);
        if self.db.get_database_backend() == DbBackend::Sqlite {
            return self
                .claim_sqlite(limit, retry_share, now, lease_until)
                .await;
        }
        // Retries are asked for first so that, when none is due (the usual case), first attempts
        // take the whole batch in a single statement instead of two.
        let txn = self.db.begin().await?;
        let mut retries = self
            .claim_lane(&txn, 1, retry_share, now, lease_until)
            .await?;
        let mut claimed = self
            .claim_lane(&txn, 0, limit - retries.len(), now, lease_until)
            .await?;
        if retries.len() == retry_share && claimed.len() + retries.len() < limit {
            // Few first attempts were waiting: give their room to retries.
            let more = self
                .claim_lane(
                    &txn,
                    1,
                    limit - claimed.len() - retries.len(),
                    now,
                    lease_until,
                )
                .await?;
            retries.extend(more);
        }
        txn.commit().await?;
        claimed.extend(retries);
        Ok(claimed)
    }

    /// [`Dispatcher::claim`] on SQLite, as one statement (so without `BEGIN` and `COMMIT` of its
    /// own: a single statement is atomic, and SQLite has one writer at a time anyway). Every turn
    /// on SQLite's one connection counts, because the recorder and the campaign pages wait for it.
    /// The candidates are ranked: retries up to their share, then first attempts, then the retries
    /// beyond the share; the first `limit` of them are leased. That is the PostgreSQL path's
    /// three statements in one.
    async fn claim_sqlite(
        &self,
        limit: usize,
        retry_share: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, DbErr> {
        // By rowid rather than by primary key: the rows come out of the due index with their
        // rowids, and looking each up in the primary-key index again would read a page of that
        // index per send once it outgrows the page cache.
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            const DUE: &str = "FROM webhook_send WHERE status = 'pending' AND lane = ?1 \
                AND next_attempt_at <= ?2 AND (lease_until IS NULL OR lease_until < ?2) \
                ORDER BY next_attempt_at, rowid";
            format!(
                "UPDATE webhook_send SET lease_until = ?5 WHERE rowid IN ( \
                   SELECT sid FROM ( \
                     SELECT * FROM (SELECT rowid AS sid, 0 AS rank, next_attempt_at AS due {retries} LIMIT ?3) \
                     UNION ALL SELECT * FROM (SELECT rowid, 1, next_attempt_at {firsts} LIMIT ?4) \
                     UNION ALL SELECT * FROM (SELECT rowid, 2, next_attempt_at {retries} LIMIT ?4 OFFSET ?3)) \
                   ORDER BY rank, due LIMIT ?4) \
                 RETURNING lane, rowid, workspace_id, id, source_kind, source_id, \
                   rate_per_minute, message, context, request, attempts, first_attempt_at",
                retries = DUE,
                firsts = DUE.replace("?1", "?6"),
            )
        });
        // Straight to the driver, like the record statements: the rows are read by position.
        let rows = sqlx::query(sql)
            .bind(1i16)
            .bind(now)
            .bind(retry_share as i64)
            .bind(limit as i64)
            .bind(lease_until)
            .bind(0i16)
            .fetch_all(self.db.get_sqlite_connection_pool())
            .await
            .map_err(driver_error)?;
        // Consecutive sends mostly carry the same message: they share one copy of it, which
        // also lets the template cache find its compiled form by pointer.
        let mut last_message: Option<Arc<str>> = None;
        let mut claimed = rows
            .iter()
            .map(|row| {
                use sqlx::Row;
                let lane: i16 = row.try_get(0)?;
                let text: &str = row.try_get(7)?;
                let message = match &last_message {
                    Some(last) if **last == *text => last.clone(),
                    _ => last_message.insert(Arc::from(text)).clone(),
                };
                Ok((
                    lane,
                    Claimed {
                        rowid: Some(row.try_get(1)?),
                        workspace_id: row.try_get(2)?,
                        id: row.try_get(3)?,
                        source_kind: row.try_get(4)?,
                        source_id: row.try_get(5)?,
                        rate_per_minute: row.try_get(6)?,
                        message,
                        context: row.try_get(8)?,
                        request: row.try_get(9)?,
                        attempts: row.try_get(10)?,
                        first_attempt_at: row.try_get(11)?,
                        lease_until,
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(driver_error)?;
        claimed.sort_by_key(|(lane, _)| *lane);
        Ok(claimed.into_iter().map(|(_, send)| send).collect())
    }

    /// Claims up to `limit` due sends of one lane (PostgreSQL), in the caller's transaction.
    async fn claim_lane(
        &self,
        db: &impl ConnectionTrait,
        lane: i16,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, DbErr> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = "UPDATE webhook_send SET lease_until = $1 WHERE (workspace_id, id) IN ( \
               SELECT workspace_id, id FROM webhook_send \
               WHERE status = 'pending' AND lane = $2 AND next_attempt_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING workspace_id, id, source_kind, source_id, rate_per_minute, message, context, request, \
               attempts, first_attempt_at";
        let values: Vec<Value> = vec![
            lease_until.into(),
            lane.into(),
            now.into(),
            (limit as i64).into(),
        ];
        let rows = db
            .query_all(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                values,
            ))
            .await?;
        rows.iter()
            .map(|row| claimed_from(row, lease_until))
            .collect()
    }

    /// One pass for tests and tools: claims what is due (up to a batch), sends it all, records it
    /// all, and returns how many sends it handled.
    pub async fn tick(self: &Arc<Self>) -> Result<usize, DbErr> {
        let claimed = self.claim(self.settings.batch_size).await?;
        let count = claimed.len();
        let mut set = JoinSet::new();
        for send in claimed {
            let this = self.clone();
            set.spawn(async move { this.execute(send).await });
        }
        let mut outcomes = Vec::with_capacity(count);
        while let Some(done) = set.join_next().await {
            outcomes.push(done.map_err(|e| DbErr::Custom(format!("send task failed: {e}")))?);
        }
        self.record(outcomes).await?;
        Ok(count)
    }

    /// Runs until `shutdown` resolves: claims while there is room, sends concurrently, and records
    /// results in batches. In-flight sends finish and are recorded before it returns.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (done_tx, mut done_rx) = mpsc::channel::<Outcome>(self.settings.concurrency.max(1) * 4);
        let recorder = {
            let this = self.clone();
            tokio::spawn(async move {
                while let Some(first) = done_rx.recv().await {
                    // Outcomes are gathered for a few milliseconds into one transaction: each
                    // commit writes every page it changed to the WAL again, and the sends of a
                    // claim share pages, so two records of 200 write most pages twice where one
                    // of 400 writes them once. A crash loses at most these milliseconds of
                    // results, whose sends go out again after their lease, as ever.
                    let mut batch = vec![first];
                    let until = tokio::time::Instant::now() + RECORD_GATHER;
                    while batch.len() < RECORD_BATCH {
                        match done_rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(mpsc::error::TryRecvError::Disconnected) => break,
                            Err(mpsc::error::TryRecvError::Empty) => {
                                match tokio::time::timeout_at(until, done_rx.recv()).await {
                                    Ok(Some(more)) => batch.push(more),
                                    Ok(None) | Err(_) => break,
                                }
                            }
                        }
                    }
                    let (count, started) = (batch.len(), std::time::Instant::now());
                    this.record_until_done(batch).await;
                    tracing::debug!(count, took = ?started.elapsed(), "recorded outcomes");
                }
            })
        };
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        // Shutdown is noticed on every turn of the loop, not only when the outbox is empty: under a
        // steady backlog the loop never idles.
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (stopping, wake) = (stopping.clone(), self.wake.clone());
            tokio::spawn(async move {
                shutdown.await;
                stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                wake.notify_one();
            });
        }
        let concurrency = self.settings.concurrency.max(1);
        let batch_size = self.settings.batch_size.max(1);
        // Claim once at least this much room is free, not as soon as one send finishes: under a
        // backlog that would claim one or two sends per statement (and, on SQLite, take turns on
        // the one connection with the recorder for each). Claiming at half keeps the other half
        // of the sends in flight while the next batch is claimed.
        let refill_at = (batch_size.min(concurrency) / 2).max(1);
        loop {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let free = permits.available_permits();
            if free < refill_at {
                tokio::select! {
                    () = self.wake.notified() => {}
                    room = permits.clone().acquire_many_owned(refill_at as u32) => drop(room),
                }
                continue;
            }
            let room = free.min(batch_size);
            let started = std::time::Instant::now();
            let claimed = match self.claim(room).await {
                Ok(claimed) => {
                    tracing::debug!(room, claimed = claimed.len(), took = ?started.elapsed(), "claimed sends");
                    claimed
                }
                Err(error) => {
                    tracing::warn!(%error, "claiming sends failed; retrying shortly");
                    Vec::new()
                }
            };
            // A claim that came back short took everything that is due: look again when woken or
            // at the next poll, not straight away.
            let drained = claimed.len() < room;
            for send in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let this = self.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let outcome = this.execute(send).await;
                    let _ = done.send(outcome).await;
                    drop(permit);
                });
            }
            if drained {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        }
        // Wait for in-flight sends, then let the recorder drain.
        let _ = permits
            .acquire_many(self.settings.concurrency.max(1) as u32)
            .await;
        drop(done_tx);
        let _ = recorder.await;
    }

    /// Records a batch, retrying on database errors: a result that is never written would only
    /// make the send go out again when its lease runs out.
    async fn record_until_done(&self, batch: Vec<Outcome>) {
        let mut pending = batch;
        let mut wait = Duration::from_millis(50);
        loop {
            match self.record_ref(&pending).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, count = pending.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    if wait >= Duration::from_secs(5) && pending.len() > 1 {
                        // Keep going one by one so a single bad row cannot block the others.
                        for outcome in pending.drain(..) {
                            if let Err(error) =
                                self.record_ref(std::slice::from_ref(&outcome)).await
                            {
                                tracing::error!(%error, send = %outcome.id, "could not record an attempt; the send will go out again after its lease");
                            }
                        }
                        return;
                    }
                }
            }
        }
    }

    async fn record(&self, outcomes: Vec<Outcome>) -> Result<(), DbErr> {
        self.record_ref(&outcomes).await
    }

    /// Writes attempts and send updates in one transaction, a few hundred rows per statement. A
    /// send whose lease was taken over by another process (ours ran out) is left alone; its
    /// attempt row is kept only if new.
    ///
    /// This is the busiest write in Herald, so it goes to the driver (sqlx) under sea-orm
    /// directly: the SQL text of each statement shape is built once per process, and the values
    /// are bound straight from the outcomes. Through sea-orm each value was boxed into a
    /// `Value`, the list cloned on execution and every text copied twice more (about a tenth of
    /// the dispatcher's CPU, measured in BENCHMARKS.md).
    async fn record_ref(&self, outcomes: &[Outcome]) -> Result<(), DbErr> {
        if outcomes.is_empty() {
            return Ok(());
        }
        // The statements are built before the transaction begins: on SQLite it holds the only
        // connection, which the claims and the campaign pages are waiting for.
        let backend = self.db.get_database_backend();
        let postgres = backend == DbBackend::Postgres;
        let attempts: Vec<(&Outcome, &AttemptRow)> = outcomes
            .iter()
            .filter_map(|o| o.attempt.as_ref().map(|a| (o, a)))
            .collect();
        let mut statements: Vec<(Arc<str>, Vec<Param<'_>>)> = Vec::new();
        for chunk in attempts.chunks(RECORD_CHUNK) {
            let rows = padded(chunk);
            let params = rows
                .iter()
                .flat_map(|&(o, a)| attempt_params(o, a))
                .collect();
            statements.push((record_sql(postgres, Shape::Attempts, rows.len()), params));
        }
        for chunk in outcomes.chunks(RECORD_CHUNK) {
            let rows = padded_size(chunk.len());
            let mut params = Vec::with_capacity(rows * (SEND_COLUMNS + 1));
            for o in chunk {
                params.extend(send_params(o));
                if !postgres {
                    params.push(Param::Big(o.rowid));
                }
            }
            // The padding rows have no key, so they match no send: a repeated row would write
            // its send a second time.
            for _ in chunk.len()..rows {
                params.extend(NO_SEND);
                if !postgres {
                    params.push(Param::Big(None));
                }
            }
            statements.push((record_sql(postgres, Shape::Sends, rows), params));
        }
        /// One transaction on a sqlx pool, every statement bound from its parameters.
        macro_rules! run_all {
            ($pool:expr) => {{
                let mut txn = $pool.begin().await.map_err(driver_error)?;
                for (sql, params) in &statements {
                    let mut query = sqlx::query(sql);
                    for param in params {
                        query = match *param {
                            Param::Text(value) => query.bind(value),
                            Param::Small(value) => query.bind(value),
                            Param::Int(value) => query.bind(value),
                            Param::Big(value) => query.bind(value),
                            Param::Time(value) => query.bind(value),
                        };
                    }
                    query.execute(&mut *txn).await.map_err(driver_error)?;
                }
                txn.commit().await.map_err(driver_error)?;
            }};
        }
        match backend {
            DbBackend::Sqlite => run_all!(self.db.get_sqlite_connection_pool()),
            DbBackend::Postgres => run_all!(self.db.get_postgres_connection_pool()),
            other => {
                return Err(DbErr::Custom(format!(
                    "recording attempts is not supported on {other:?}"
                )));
            }
        }
        self.note_host_failures(outcomes).await;
        Ok(())
    }

    /// Counts failures per host per minute; past the threshold the host is paused (and the pause
    /// written to `host_state` so the dashboard can show it).
    async fn note_host_failures(&self, outcomes: &[Outcome]) {
        let now = self.clock.now();
        let minute = now.timestamp() - now.timestamp().rem_euclid(60);
        let mut newly_paused = Vec::new();
        {
            let mut failures = self
                .hosts
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for o in outcomes.iter().filter(|o| o.host_failure) {
                let Some(host) = &o.host else { continue };
                let entry = failures.entry(host.clone()).or_insert((minute, 0));
                if entry.0 != minute {
                    *entry = (minute, 0);
                }
                entry.1 += 1;
                if entry.1 == self.settings.host_failure_threshold {
                    newly_paused.push((host.clone(), entry.1));
                }
            }
        }
        for (host, count) in newly_paused {
            let until = now + to_delta(self.settings.host_pause);
            tracing::warn!(%host, failures = count, %until, "pausing a failing host");
            self.hosts
                .paused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(host.clone(), until);
            let row = host_state::ActiveModel {
                host: Set(host),
                window_start: Set(minute),
                failures: Set(count),
                paused_until: Set(Some(until)),
            };
            let result = host_state::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(host_state::Column::Host)
                        .update_columns([
                            host_state::Column::WindowStart,
                            host_state::Column::Failures,
                            host_state::Column::PausedUntil,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await;
            if let Err(error) = result {
                tracing::warn!(%error, "could not record a host pause");
            }
        }
    }

    /// When the send's source has a rate limit and this minute's allowance is spent: the time the
    /// next minute starts. The rest of the source's backlog is deferred in one statement, so it is
    /// not claimed again and again within the minute.
    async fn over_rate_limit(&self, send: &Claimed, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (Some(limit), Some(source_id)) = (send.rate_per_minute, send.source_id.as_deref())
        else {
            return None;
        };
        let bucket = format!("source:{}:{source_id}", send.source_kind);
        let decision =
            match domain::rate_limit::hit(&self.db, &bucket, limit.max(1) as u64, 60, now).await {
                Ok(decision) => decision,
                Err(error) => {
                    tracing::warn!(%error, "could not check a source's rate limit; the send waits");
                    return Some(now + TimeDelta::seconds(5));
                }
            };
        if decision.allowed {
            return None;
        }
        let until =
            DateTime::from_timestamp(decision.reset_at, 0).unwrap_or(now + TimeDelta::minutes(1));
        if let Err(error) =
            domain::outbox::defer_source(&self.db, &send.source_kind, source_id, until, now).await
        {
            tracing::warn!(%error, "could not defer a rate-limited source");
        }
        Some(until)
    }

    async fn signing_keys(&self, workspace_id: &str) -> Result<Option<SigningKeys>, DbErr> {
        let fresh = |at: &std::time::Instant| at.elapsed() < SIGNING_CACHE_TTL;
        if let Some((at, keys)) = self
            .signing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(workspace_id)
            && fresh(at)
        {
            return Ok(keys.clone());
        }
        let workspace = domain::WorkspaceId::from_db(workspace_id.to_string());
        let keys = domain::signing::active_keys(&self.db, &workspace, self.clock.now())
            .await
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        self.signing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                workspace_id.to_string(),
                (std::time::Instant::now(), keys.clone()),
            );
        Ok(keys)
    }

    /// The pause this process put over `host`, if it is still running.
    async fn paused_until(&self, host: &str) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        self.refresh_pauses(now).await;
        let paused = self.hosts.paused.lock().unwrap_or_else(|p| p.into_inner());
        paused.get(host).copied().filter(|until| *until > now)
    }

    /// Every few seconds, adopts the pauses other processes wrote to `host_state`, so a failing
    /// host is spared by all of them.
    async fn refresh_pauses(&self, now: DateTime<Utc>) {
        {
            let mut read_at = self
                .hosts
                .paused_read_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if read_at.is_some_and(|at| at.elapsed() < PAUSE_REFRESH) {
                return;
            }
            *read_at = Some(std::time::Instant::now());
        }
        let rows = host_state::Entity::find()
            .filter(host_state::Column::PausedUntil.gt(now))
            .all(&self.db)
            .await;
        match rows {
            Ok(rows) => {
                let mut paused = self.hosts.paused.lock().unwrap_or_else(|p| p.into_inner());
                paused.retain(|_, until| *until > now);
                for row in rows {
                    if let Some(until) = row.paused_until {
                        let entry = paused.entry(row.host).or_insert(until);
                        *entry = (*entry).max(until);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not read host pauses"),
        }
    }

    fn host_slot(&self, host: &str) -> Arc<Semaphore> {
        let mut slots = self.hosts.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(host) {
            return slot.clone();
        }
        slots
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_host_concurrency.max(1))))
            .clone()
    }

    /// Renders (first attempt only), sends and decides what comes next for one claimed send.
    async fn execute(&self, mut send: Claimed) -> Outcome {
        let attempt_no = send.attempts + 1;
        let started_at = self.clock.now();
        let mut outcome = Outcome {
            // The key moves to the outcome: below, it is read from there.
            workspace_id: std::mem::take(&mut send.workspace_id),
            id: std::mem::take(&mut send.id),
            lease_until: send.lease_until,
            rowid: send.rowid,
            attempt: None,
            status: status::PENDING,
            lane: 1,
            attempts: send.attempts,
            next_attempt_at: started_at,
            request: None,
            host: None,
            first_attempt_at: send.first_attempt_at,
            completed_at: None,
            last_status_code: None,
            last_error: None,
            host_failure: false,
        };
        // The request is rendered once and kept, so every retry sends the same bytes.
        let request: RenderedRequest = match send.request.as_deref().map(serde_json::from_str) {
            Some(Ok(request)) => request,
            Some(Err(e)) => {
                return self.finish_without_request(
                    outcome,
                    attempt_no,
                    started_at,
                    "render",
                    format!("stored request unreadable: {e}"),
                );
            }
            None => match self.render(&send.message, &send.context) {
                Ok(Rendered::Request(request)) => {
                    outcome.request =
                        Some(serde_json::to_string(&request).expect("requests serialize"));
                    request
                }
                Ok(Rendered::Aborted(reason)) => {
                    outcome.status = status::ABORTED;
                    outcome.completed_at = Some(started_at);
                    outcome.last_error = Some(match reason {
                        Some(reason) => format!("aborted: {reason}"),
                        None => "aborted by abort_message".to_string(),
                    });
                    return outcome;
                }
                Err(message) => {
                    return self.finish_without_request(
                        outcome, attempt_no, started_at, "render", message,
                    );
                }
            },
        };
        if outcome.request.is_none() {
            outcome.request = send.request.clone();
        }
        // Checked (scheme, port, literal address) and parsed once: the host decides the pause and
        // the per-host slot, and the parsed URL goes to the client as it is.
        let url = match self.checked_url(&request.url) {
            Ok(url) => url,
            Err((kind, message)) => {
                outcome.host = reqwest::Url::parse(&request.url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string));
                let exchange = WebhookClient::refused(kind, message);
                return self.conclude(outcome, attempt_no, started_at, exchange);
            }
        };
        let host = url.host_str().map(str::to_string);
        outcome.host = host.clone();
        let paused = match host.as_deref() {
            Some(host) => self.paused_until(host).await,
            None => None,
        };
        if let Some(until) = paused {
            // Not an attempt: the send waits for the pause to end.
            outcome.next_attempt_at = until;
            outcome.lane = if send.attempts == 0 { 0 } else { 1 };
            return outcome;
        }
        if let Some(until) = self.over_rate_limit(&send, started_at).await {
            // Not an attempt: the source has used its messages for this minute.
            outcome.next_attempt_at = until;
            outcome.lane = if send.attempts == 0 { 0 } else { 1 };
            return outcome;
        }
        let keys = match self.signing_keys(&outcome.workspace_id).await {
            Ok(keys) => keys,
            Err(error) => {
                // Never send unsigned what should be signed: try again shortly, no attempt counted.
                tracing::warn!(%error, "could not read signing keys; the send waits");
                outcome.next_attempt_at = started_at + TimeDelta::seconds(5);
                outcome.lane = if send.attempts == 0 { 0 } else { 1 };
                return outcome;
            }
        };
        let slot = self.host_slot(host.as_deref().unwrap_or(""));
        let _permit = slot.acquire_owned().await.ok();
        // Waiting for a busy host may have eaten the lease: with less than half of it left, the
        // send could be claimed again while in flight, so give it back instead of sending.
        let now = self.clock.now();
        if send.lease_until - now < to_delta(self.settings.lease / 2) {
            outcome.next_attempt_at = now;
            outcome.lane = if send.attempts == 0 { 0 } else { 1 };
            return outcome;
        }
        let timestamp = started_at.timestamp();
        let mut headers = vec![
            ("webhook-id".to_string(), outcome.id.clone()),
            ("webhook-timestamp".to_string(), timestamp.to_string()),
        ];
        if let Some(keys) = keys {
            let body = request.body.as_deref().unwrap_or_default();
            headers.push((
                "webhook-signature".to_string(),
                keys.header(&outcome.id, timestamp, body),
            ));
        }
        let exchange = self
            .client
            .send_checked(url, &request, &headers, started_at.timestamp())
            .await;
        self.conclude(outcome, attempt_no, started_at, exchange)
    }

    /// [`WebhookClient::check_url`], remembering the last URL it passed: the check depends only on
    /// the text and this process's settings, so the same text passes the same way.
    fn checked_url(&self, url: &str) -> Result<reqwest::Url, (&'static str, String)> {
        if let Some((text, parsed)) = &*self.last_url.lock().unwrap_or_else(|p| p.into_inner())
            && text == url
        {
            return Ok(parsed.clone());
        }
        let parsed = self.client.check_url(url)?;
        *self.last_url.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((url.to_string(), parsed.clone()));
        Ok(parsed)
    }

    /// Renders a stored message with its stored context, compiling each distinct message once.
    fn render(&self, message: &Arc<str>, context: &str) -> Result<Rendered, String> {
        let compiled = self.compiled(message)?;
        let context: RenderContext =
            serde_json::from_str(context).map_err(|e| format!("stored context unreadable: {e}"))?;
        compiled.render(&context).map_err(|e| e.to_string())
    }

    /// The compiled form of a stored message, from the cache when this process has seen it.
    fn compiled(&self, message: &Arc<str>) -> Result<Arc<CompiledMessage>, String> {
        {
            let mut cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((text, found)) = &cache.last
                && Arc::ptr_eq(text, message)
            {
                return Ok(found.clone());
            }
            if let Some(found) = cache.compiled.get(&**message).cloned() {
                cache.last = Some((message.clone(), found.clone()));
                return Ok(found);
            }
        }
        let decoded: WebhookMessage =
            serde_json::from_str(message).map_err(|e| format!("stored message unreadable: {e}"))?;
        let compiled = Arc::new(decoded.compile().map_err(|e| e.to_string())?);
        let mut cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        if cache.compiled.len() >= TEMPLATE_CACHE_ENTRIES
            || cache.key_bytes + message.len() > TEMPLATE_CACHE_BYTES
        {
            // Bounded the simple way: start over. Refilling costs one compile per message in use.
            cache.compiled.clear();
            cache.key_bytes = 0;
        }
        cache.last = Some((message.clone(), compiled.clone()));
        if message.len() <= TEMPLATE_CACHE_BYTES
            && cache
                .compiled
                .insert(message.to_string(), compiled.clone())
                .is_none()
        {
            cache.key_bytes += message.len();
        }
        Ok(compiled)
    }

    fn finish_without_request(
        &self,
        outcome: Outcome,
        attempt_no: i32,
        started_at: DateTime<Utc>,
        kind: &'static str,
        message: String,
    ) -> Outcome {
        let exchange = Exchange {
            result: AttemptResult::Permanent,
            status: None,
            headers: Vec::new(),
            body: String::new(),
            error_kind: Some(kind),
            error: Some(message),
            duration: Duration::ZERO,
            retry_after: None,
        };
        self.conclude(outcome, attempt_no, started_at, exchange)
    }

    fn conclude(
        &self,
        mut outcome: Outcome,
        attempt_no: i32,
        started_at: DateTime<Utc>,
        exchange: Exchange,
    ) -> Outcome {
        let first = outcome.first_attempt_at.unwrap_or(started_at);
        outcome.first_attempt_at = Some(first);
        let since_first = (started_at - first).to_std().unwrap_or_default();
        let random: f64 = rand::thread_rng().r#gen();
        let decision = self.retry.decide(
            attempt_no as u32,
            exchange.result,
            since_first,
            exchange.retry_after,
            random,
        );
        let (label, status_text) = match decision {
            Decision::Delivered => ("delivered", status::DELIVERED),
            Decision::RetryAfter(_) => ("retry", status::PENDING),
            Decision::GiveUp => ("failed", status::FAILED),
        };
        outcome.attempts = attempt_no;
        outcome.status = status_text;
        outcome.last_status_code = exchange.status.map(i32::from);
        outcome.last_error = exchange.error.clone().or_else(|| {
            exchange
                .status
                .filter(|s| !(200..300).contains(s))
                .map(|s| format!("HTTP {s}"))
        });
        // Only failures that say the host itself is in trouble (5xx, 408, 429, timeouts, no
        // connection) count towards pausing it: a 4xx answer to one workspace's bad request must
        // not pause a host that every workspace shares.
        outcome.host_failure = match exchange.result {
            AttemptResult::Status(status) => crate::retry::is_retryable_status(status),
            AttemptResult::Timeout | AttemptResult::Unreachable => true,
            AttemptResult::Permanent => false,
        };
        match decision {
            Decision::RetryAfter(delay) => {
                outcome.lane = 1;
                outcome.next_attempt_at = started_at + to_delta(delay);
            }
            Decision::Delivered | Decision::GiveUp => outcome.completed_at = Some(started_at),
        }
        outcome.attempt = Some(AttemptRow {
            number: attempt_no,
            started_at,
            duration_ms: exchange.duration.as_millis().min(i64::MAX as u128) as i64,
            status_code: exchange.status.map(i32::from),
            error_kind: exchange.error_kind,
            error: exchange.error,
            response_headers: serde_json::to_string(&exchange.headers).expect("headers serialize"),
            response_body: exchange.body,
            outcome: label,
        });
        outcome
    }
}

/// The number of rows a statement of `rows` rows is padded to: a power of two up to
/// [`RECORD_STEP`], then a multiple of it up to [`RECORD_CHUNK`]. The statements prepared and
/// cached per connection stay fourteen shapes of each instead of one per batch size, and padding
/// adds at most 63 rows (powers of two all the way up would nearly double a batch of 260).
fn padded_size(rows: usize) -> usize {
    if rows <= RECORD_STEP {
        rows.next_power_of_two()
    } else {
        rows.div_ceil(RECORD_STEP) * RECORD_STEP
    }
}

/// The rows of one statement, padded to [`padded_size`] by repeating the last row, which changes
/// nothing in the attempt insert (it skips rows that exist).
fn padded<T: Copy>(rows: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(padded_size(rows.len()));
    out.extend_from_slice(rows);
    if let Some(last) = rows.last() {
        out.resize(padded_size(rows.len()), *last);
    }
    out
}

/// A value bound to a record statement, borrowed from the outcome it describes.
#[derive(Clone, Copy)]
enum Param<'a> {
    Text(Option<&'a str>),
    Small(i16),
    Int(Option<i32>),
    Big(Option<i64>),
    Time(Option<DateTime<Utc>>),
}

fn text_param(value: &Option<String>) -> Param<'_> {
    Param::Text(value.as_deref())
}

/// What a record statement writes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Shape {
    /// `INSERT (OR IGNORE) INTO webhook_attempt …`
    Attempts,
    /// `UPDATE webhook_send … FROM (VALUES …)`
    Sends,
}

const ATTEMPT_COLUMNS: usize = 11;
const SEND_COLUMNS: usize = 13;

/// The values of one attempt row, in the order of [`record_sql`]'s insert.
fn attempt_params<'a>(o: &'a Outcome, a: &'a AttemptRow) -> [Param<'a>; ATTEMPT_COLUMNS] {
    [
        Param::Text(Some(&o.workspace_id)),
        Param::Text(Some(&o.id)),
        Param::Int(Some(a.number)),
        Param::Time(Some(a.started_at)),
        Param::Big(Some(a.duration_ms)),
        Param::Int(a.status_code),
        Param::Text(a.error_kind),
        text_param(&a.error),
        Param::Text(Some(&a.response_headers)),
        Param::Text(Some(&a.response_body)),
        Param::Text(Some(a.outcome)),
    ]
}

/// The values of one send update, in the order of [`record_sql`]'s `VALUES` columns (SQLite adds
/// the rowid after them).
fn send_params<'a>(o: &'a Outcome) -> [Param<'a>; SEND_COLUMNS] {
    [
        Param::Text(Some(&o.workspace_id)),
        Param::Text(Some(&o.id)),
        Param::Time(Some(o.lease_until)),
        Param::Text(Some(o.status)),
        Param::Small(o.lane),
        Param::Int(Some(o.attempts)),
        Param::Time(Some(o.next_attempt_at)),
        Param::Time(o.first_attempt_at),
        Param::Time(o.completed_at),
        Param::Int(o.last_status_code),
        text_param(&o.last_error),
        text_param(&o.request),
        text_param(&o.host),
    ]
}

/// A row of the send update that matches no send (its key is NULL), typed like a real one.
const NO_SEND: [Param<'static>; SEND_COLUMNS] = [
    Param::Text(None),
    Param::Text(None),
    Param::Time(None),
    Param::Text(None),
    Param::Small(0),
    Param::Int(None),
    Param::Time(None),
    Param::Time(None),
    Param::Time(None),
    Param::Int(None),
    Param::Text(None),
    Param::Text(None),
    Param::Text(None),
];

fn driver_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error))
}

/// The SQL of a record statement for `rows` rows, built once per process for each shape (the
/// row counts are the few sizes of [`padded`]).
fn record_sql(postgres: bool, shape: Shape, rows: usize) -> Arc<str> {
    type Cache = Mutex<HashMap<(bool, Shape, usize), Arc<str>>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(sql) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(postgres, shape, rows))
    {
        return sql.clone();
    }
    let sql: Arc<str> = match shape {
        Shape::Attempts => insert_attempts_sql(postgres, rows),
        Shape::Sends => update_sends_sql(postgres, rows),
    }
    .into();
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((postgres, shape, rows), sql.clone());
    sql
}

/// `rows` parenthesised groups of `columns` placeholders: `($1, $2), ($3, $4)` on PostgreSQL
/// (each cast to its type when `types` are given), `(?, ?), (?, ?)` on SQLite.
fn placeholders(postgres: bool, rows: usize, columns: usize, types: Option<&[&str]>) -> String {
    let mut sql = String::with_capacity(rows * columns * 12);
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            if postgres {
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
                if let Some(types) = types {
                    sql.push_str("::");
                    sql.push_str(types[column]);
                }
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Attempt rows, skipping any that exist (a record retried after a lost commit acknowledgement).
///
/// On SQLite it is `INSERT OR IGNORE` (the rows never hold a NULL where the table refuses one, so
/// only the key can conflict, as with `ON CONFLICT DO NOTHING`): a statement that can abort
/// halfway through a transaction makes SQLite copy every page it changes to a statement journal
/// first (spilled to a temporary file past 64 KiB), and one that ignores conflicts cannot abort.
/// The send update is `UPDATE OR IGNORE` for the same reason.
fn insert_attempts_sql(postgres: bool, rows: usize) -> String {
    let columns = "webhook_attempt (workspace_id, send_id, number, started_at, duration_ms, \
         status_code, error_kind, error, response_headers, response_body, outcome)";
    let values = placeholders(postgres, rows, ATTEMPT_COLUMNS, None);
    if postgres {
        format!(
            "INSERT INTO {columns} VALUES {values} \
             ON CONFLICT (workspace_id, send_id, number) DO NOTHING"
        )
    } else {
        format!("INSERT OR IGNORE INTO {columns} VALUES {values}")
    }
}

/// One `UPDATE … FROM (VALUES …)` that writes every outcome to its send, each only while the send
/// still carries the lease it was claimed with. The request (and its host) is written only when
/// the outcome has one, so a send that never got one keeps what it had.
fn update_sends_sql(postgres: bool, rows: usize) -> String {
    if postgres {
        // Parameters in VALUES carry no type of their own: cast them, or PostgreSQL reads them as
        // text and cannot compare a lease or store a lane.
        const TYPES: [&str; SEND_COLUMNS] = [
            "text",
            "text",
            "timestamptz",
            "text",
            "smallint",
            "integer",
            "timestamptz",
            "timestamptz",
            "timestamptz",
            "integer",
            "text",
            "text",
            "text",
        ];
        format!(
            "UPDATE webhook_send SET status = v.status, lane = v.lane, attempts = v.attempts, \
             next_attempt_at = v.next_attempt_at, lease_until = NULL, \
             first_attempt_at = v.first_attempt_at, completed_at = v.completed_at, \
             last_status_code = v.last_status_code, last_error = v.last_error, \
             request = COALESCE(v.request, webhook_send.request), \
             host = CASE WHEN v.request IS NULL THEN webhook_send.host ELSE v.host END \
             FROM (VALUES {}) AS v(workspace_id, id, lease_until, status, lane, attempts, \
             next_attempt_at, first_attempt_at, completed_at, last_status_code, last_error, \
             request, host) \
             WHERE webhook_send.workspace_id = v.workspace_id AND webhook_send.id = v.id \
             AND webhook_send.lease_until = v.lease_until",
            placeholders(true, rows, SEND_COLUMNS, Some(&TYPES))
        )
    } else {
        // SQLite names the columns of a VALUES list column1, column2, … The rowid finds the row;
        // the key and the lease make sure it is still the send we claimed (a VACUUM may renumber
        // rowids: then nothing is written and the send goes out again after its lease, with the
        // same webhook-id).
        format!(
            "UPDATE OR IGNORE webhook_send SET status = v.column4, lane = v.column5, \
             attempts = v.column6, next_attempt_at = v.column7, lease_until = NULL, \
             first_attempt_at = v.column8, completed_at = v.column9, \
             last_status_code = v.column10, last_error = v.column11, \
             request = COALESCE(v.column12, webhook_send.request), \
             host = CASE WHEN v.column12 IS NULL THEN webhook_send.host ELSE v.column13 END \
             FROM (VALUES {}) AS v WHERE webhook_send.rowid = v.column14 \
             AND webhook_send.workspace_id = v.column1 AND webhook_send.id = v.column2 \
             AND webhook_send.lease_until = v.column3",
            placeholders(false, rows, SEND_COLUMNS + 1, None)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SubsecRound;
    use domain::ManualClock;
    use domain::entity::{webhook_attempt, webhook_send};
    use domain::outbox::{NewSend, SourceKind};
    use domain::webhook::{Body, Method};
    use domain::{SystemClock, WorkspaceId};
    use migrations::testing::test_databases;
    use sea_orm::sea_query::Expr;
    use sea_orm::{EntityTrait, PaginatorTrait};

    fn delivery(loopback: bool) -> crate::DeliverySettings {
        let allowed = if loopback {
            vec!["127.0.0.0/8".parse().unwrap()]
        } else {
            Vec::new()
        };
        crate::DeliverySettings {
            concurrency: 64,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            addresses: crate::AddressPolicy::new(allowed),
            allowed_ports: Vec::new(),
        }
    }

    /// A test send of a POST to `url`, due at once.
    fn test_send(ws: &WorkspaceId, url: String, body: Body, context: RenderContext) -> NewSend {
        NewSend {
            workspace_id: ws.clone(),
            source_kind: SourceKind::Test,
            source_id: None,
            source_name: None,
            recipient: None,
            message: WebhookMessage {
                method: Method::Post,
                url,
                headers: Vec::new(),
                body,
            },
            context,
            due_at: None,
            tracking: Default::default(),
        }
    }

    #[test]
    fn statements_come_in_a_few_sizes_and_keep_every_row() {
        let mut sizes = std::collections::BTreeSet::new();
        for n in 1..=RECORD_CHUNK {
            let rows: Vec<usize> = (0..n).collect();
            let out = padded(&rows);
            assert_eq!(&out[..n], &rows[..], "every row, in order");
            assert!(
                out[n..].iter().all(|row| *row == n - 1),
                "padding repeats the last row"
            );
            sizes.insert(out.len());
        }
        let sizes: Vec<usize> = sizes.into_iter().collect();
        assert_eq!(
            sizes,
            vec![
                1,
                2,
                4,
                8,
                16,
                32,
                64,
                128,
                192,
                256,
                320,
                384,
                448,
                RECORD_CHUNK
            ]
        );
    }

    #[test]
    fn a_message_is_compiled_once_and_the_cache_stays_bounded() {
        let dispatcher = Dispatcher::new(
            sea_orm::DatabaseConnection::Disconnected,
            WebhookClient::new(&delivery(false)),
            RetryPolicy::default(),
            Arc::new(SystemClock),
            DispatchSettings::default(),
        );
        let stored = |i: usize| {
            serde_json::to_string(&WebhookMessage {
                method: Method::Post,
                url: format!("https://example.com/{i}"),
                headers: Vec::new(),
                body: Body::None,
            })
            .unwrap()
        };
        let first = dispatcher.compiled(&stored(0).into()).unwrap();
        let again = dispatcher.compiled(&stored(0).into()).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second send reuses the compiled message"
        );
        for i in 0..TEMPLATE_CACHE_ENTRIES * 2 {
            dispatcher.compiled(&stored(i).into()).unwrap();
        }
        let cache = dispatcher.templates.lock().unwrap();
        assert!(cache.compiled.len() <= TEMPLATE_CACHE_ENTRIES);
        assert_eq!(
            cache.key_bytes,
            cache.compiled.keys().map(String::len).sum::<usize>()
        );
        drop(cache);
        assert!(
            dispatcher
                .compiled(&"{not json".into())
                .unwrap_err()
                .starts_with("stored message unreadable")
        );
    }

    /// Claims keep a share for first attempts while retries wait, and give whatever one lane
    /// leaves unused to the other; first attempts come first. Both databases, whose claims are
    /// written differently (one ranked statement on SQLite, one per lane on PostgreSQL).
    #[tokio::test]
    async fn claims_share_a_batch_between_first_attempts_and_retries() {
        for db in test_databases().await {
            let now = Utc::now().trunc_subsecs(3);
            let clock = ManualClock::new(now);
            let ws = WorkspaceId::generate();
            let dispatcher = Dispatcher::new(
                db.clone(),
                WebhookClient::new(&delivery(false)),
                RetryPolicy::default(),
                Arc::new(clock.clone()),
                DispatchSettings::default(),
            );
            // Queues `n` sends due a minute ago, in `lane`; returns their ids.
            let queue = |lane: i16, n: usize| {
                let db = db.clone();
                let ws = ws.clone();
                async move {
                    let sends = (0..n)
                        .map(|_| {
                            test_send(
                                &ws,
                                "https://example.com/hook".into(),
                                Body::None,
                                RenderContext::new(),
                            )
                        })
                        .collect();
                    let ids = domain::outbox::enqueue(&db, sends, now - TimeDelta::minutes(1))
                        .await
                        .unwrap();
                    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                    webhook_send::Entity::update_many()
                        .col_expr(webhook_send::Column::Lane, Expr::value(lane))
                        .filter(webhook_send::Column::Id.is_in(ids.clone()))
                        .exec(&db)
                        .await
                        .unwrap();
                    ids
                }
            };
            let lanes = |claimed: &[Claimed], retries: &[String]| -> Vec<char> {
                claimed
                    .iter()
                    .map(|c| if retries.contains(&c.id) { 'r' } else { 'f' })
                    .collect()
            };

            // Both lanes full: 6 first attempts (75% of 8, rounded up) and 2 retries.
            let retries = queue(1, 10).await;
            queue(0, 10).await;
            let claimed = dispatcher.claim(8).await.unwrap();
            assert_eq!(
                lanes(&claimed, &retries),
                "ffffffrr".chars().collect::<Vec<_>>()
            );
            // Only 4 first attempts left: retries take the rest of the batch.
            let claimed = dispatcher.claim(8).await.unwrap();
            assert_eq!(
                lanes(&claimed, &retries),
                "ffffrrrr".chars().collect::<Vec<_>>()
            );
            // Only retries left (4 of them): all of them, and nothing claimed twice.
            let claimed = dispatcher.claim(8).await.unwrap();
            assert_eq!(
                lanes(&claimed, &retries),
                "rrrr".chars().collect::<Vec<_>>()
            );
            assert!(dispatcher.claim(8).await.unwrap().is_empty(), "all leased");
            // A lease that ran out is claimed again.
            clock.advance(TimeDelta::seconds(121));
            assert_eq!(dispatcher.claim(100).await.unwrap().len(), 20);
        }
    }

    #[tokio::test]
    async fn a_claim_larger_than_one_statement_records_every_send_and_attempt() {
        for db in test_databases().await {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let app = axum::Router::new().fallback(|| async { "ok" });
                axum::serve(listener, app).await
            });
            let clock = ManualClock::new(Utc::now().trunc_subsecs(3));
            let ws = WorkspaceId::generate();
            let count = 2 * RECORD_CHUNK + 100;
            // Two messages, so the compiled-message cache serves more than one.
            let sends = (0..count)
                .map(|i| {
                    test_send(
                        &ws,
                        format!("http://{addr}/hook/{}", i % 2),
                        Body::Pairs {
                            pairs: vec![("n".into(), "{{${n}}}".into())],
                        },
                        RenderContext::new().with_user_attribute("n", i.to_string()),
                    )
                })
                .collect();
            domain::outbox::enqueue(&db, sends, clock.now())
                .await
                .unwrap();
            let dispatcher = Arc::new(Dispatcher::new(
                db.clone(),
                WebhookClient::new(&delivery(true)),
                RetryPolicy::default(),
                Arc::new(clock.clone()),
                DispatchSettings {
                    batch_size: count,
                    concurrency: 64,
                    per_host_concurrency: 64,
                    ..DispatchSettings::default()
                },
            ));
            assert_eq!(dispatcher.tick().await.unwrap(), count);
            assert_eq!(
                dispatcher.tick().await.unwrap(),
                0,
                "nothing is left pending"
            );
            let rows = webhook_send::Entity::find().all(&db).await.unwrap();
            assert_eq!(rows.len(), count);
            for row in rows {
                assert_eq!(row.status, "delivered");
                assert_eq!(row.attempts, 1);
                assert_eq!(row.lease_until, None);
                assert_eq!(row.host.as_deref(), Some("127.0.0.1"));
                // Each send rendered its own context into its own message.
                let request: RenderedRequest =
                    serde_json::from_str(row.request.as_deref().unwrap()).unwrap();
                let body: serde_json::Value =
                    serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
                let n: usize = body["n"].as_str().unwrap().parse().unwrap();
                assert!(request.url.ends_with(&format!("/hook/{}", n % 2)));
            }
            let attempts = webhook_attempt::Entity::find().count(&db).await.unwrap();
            assert_eq!(attempts as usize, count);
        }
    }
}
