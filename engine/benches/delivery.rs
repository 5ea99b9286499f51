//! The delivery benchmark: how many webhooks per second the engine delivers end to end (outbox row
//! → claim → render → POST → recorded attempt), next to how many POSTs per second its HTTP client
//! alone makes to the same local sink. See BENCHMARKS.md for the figures and how to read them.
//!
//! `cargo bench -p engine --bench delivery`. Knobs (environment, all optional):
//! `HERALD_BENCH_SENDS` (100000), `HERALD_BENCH_CONCURRENCY` (1024), `HERALD_BENCH_PER_HOST`
//! (64), `HERALD_BENCH_BATCH` (1024), `HERALD_BENCH_SINK_THREADS` (1), `HERALD_BENCH_BACKENDS`
//! (`sqlite,sqlite-normal,postgres`), `TEST_DATABASE_URL` (PostgreSQL runs only when set),
//! `HERALD_BENCH_SQLITE_CACHE_MIB` (unset: SQLite's default page cache of 2 MiB, as `herald serve`
//! opens it; set: `PRAGMA cache_size` of that many MiB, to see what a larger cache would give),
//! `HERALD_BENCH_ORDERED_IDS` (unset; `1`: before dispatching, renumber the enqueued sends with ids
//! that grow in enqueue order, to see what time-ordered send ids would give instead of random
//! UUIDs: a what-if, not how Herald writes ids).
//! `HERALD_BENCH_PAGE_SIZE` (unset: `herald serve`'s page size for new files, 16384).
//! Engine warnings (failed claims or records) are printed; `RUST_LOG` can ask for more.
//!
//! The sink runs in a child process (this same binary, re-executed with `HERALD_BENCH_SINK_CHILD`)
//! so its memory and allocator stay out of the figures, and its CPU time is read apart.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::outbox::{self, NewSend, SourceKind};
use domain::template::RenderContext;
use domain::webhook::{self, Body, Method, Rendered, RenderedRequest, WebhookMessage};
use domain::{SendId, SystemClock, WorkspaceId};
use engine::{
    AddressPolicy, DeliverySettings, DispatchSettings, Dispatcher, RetryPolicy, WebhookClient,
};
use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteSynchronous;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait,
};
use tokio::task::JoinSet;

/// Set in the environment of the child process that serves as the sink.
const SINK_CHILD: &str = "HERALD_BENCH_SINK_CHILD";
/// Sends per enqueue transaction, like a campaign launch writing its audience in slices.
const ENQUEUE_SLICE: usize = 10_000;
/// How often the end-of-run watcher looks for a pending send.
const WATCH_EVERY: Duration = Duration::from_millis(20);
/// A run that has not delivered everything by then is broken (sends failing and waiting for
/// retries, say); stop and let the final counts say what happened.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

fn main() {
    if std::env::var_os(SINK_CHILD).is_some() {
        sink::serve();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bench = Bench::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench.run());
}

/// What to run, read once from the environment.
#[derive(Clone, Debug)]
struct Bench {
    sends: usize,
    concurrency: usize,
    per_host: usize,
    batch: usize,
    sink_threads: usize,
    backends: Vec<Backend>,
    /// SQLite page cache in MiB when set; SQLite's default otherwise.
    sqlite_cache_mib: Option<usize>,
    /// Renumber the sends with ids in enqueue order before dispatching (a what-if).
    ordered_ids: bool,
}

#[derive(Clone, Debug)]
enum Backend {
    /// A fresh SQLite file in WAL mode; `normal` sets `synchronous=NORMAL` on every connection.
    Sqlite {
        normal: bool,
    },
    Postgres {
        url: String,
    },
}

impl Backend {
    fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite { normal: false } => "SQLite (WAL, synchronous=FULL)",
            Backend::Sqlite { normal: true } => "SQLite (WAL, synchronous=NORMAL)",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {text:?}")),
        _ => default,
    }
}

impl Bench {
    fn from_env() -> Self {
        let concurrency = env_usize("HERALD_BENCH_CONCURRENCY", 1024).max(1);
        let postgres = migrations::testing::postgres_url();
        let wanted = std::env::var("HERALD_BENCH_BACKENDS")
            .unwrap_or_else(|_| "sqlite,sqlite-normal,postgres".into());
        let mut backends = Vec::new();
        for name in wanted.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "sqlite" => backends.push(Backend::Sqlite { normal: false }),
                "sqlite-normal" => backends.push(Backend::Sqlite { normal: true }),
                "postgres" => match &postgres {
                    Some(url) => backends.push(Backend::Postgres { url: url.clone() }),
                    None => eprintln!("TEST_DATABASE_URL is not set: skipping PostgreSQL"),
                },
                other => panic!("unknown backend {other:?} in HERALD_BENCH_BACKENDS"),
            }
        }
        Self {
            sends: env_usize("HERALD_BENCH_SENDS", 100_000).max(1),
            concurrency,
            per_host: env_usize("HERALD_BENCH_PER_HOST", 64).max(1),
            batch: env_usize("HERALD_BENCH_BATCH", 1024).max(1),
            sink_threads: env_usize("HERALD_BENCH_SINK_THREADS", 1).max(1),
            backends,
            sqlite_cache_mib: std::env::var("HERALD_BENCH_SQLITE_CACHE_MIB")
                .ok()
                .filter(|text| !text.trim().is_empty())
                .map(|_| env_usize("HERALD_BENCH_SQLITE_CACHE_MIB", 0)),
            ordered_ids: env_usize("HERALD_BENCH_ORDERED_IDS", 0) == 1,
        }
    }

    fn delivery(&self) -> DeliverySettings {
        DeliverySettings {
            concurrency: self.concurrency,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            addresses: AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("a CIDR")]),
            allowed_ports: Vec::new(),
        }
    }

    fn dispatch(&self) -> DispatchSettings {
        DispatchSettings {
            batch_size: self.batch,
            concurrency: self.concurrency,
            per_host_concurrency: self.per_host,
            ..DispatchSettings::default()
        }
    }

    /// Requests in flight towards the one sink: the engine is capped by both limits.
    fn in_flight(&self) -> usize {
        self.concurrency.min(self.per_host)
    }

    async fn run(self) {
        machine_report();
        let delivery = self.delivery();
        let dispatch = self.dispatch();
        println!("sends per run:      {}", self.sends);
        println!("{delivery:?}");
        println!("{dispatch:?}");
        println!(
            "raw client:         {} requests in flight (= min(concurrency, per_host_concurrency))",
            self.in_flight()
        );
        println!(
            "sink:               child process, {} tokio worker thread(s)",
            self.sink_threads
        );
        match self.sqlite_cache_mib {
            Some(mib) => println!("SQLite page cache:  {mib} MiB (PRAGMA cache_size)"),
            None => println!("SQLite page cache:  SQLite's default (2 MiB), as herald serve"),
        }
        if self.ordered_ids {
            println!("send ids:           renumbered in enqueue order before dispatch (what-if)");
        }
        println!();

        let sink = Sink::start(self.sink_threads);
        let url = format!("http://{}/hook", sink.addr);
        render_cost(&message(&url));

        // Each engine run is paired with a raw run just before it, so the ratio compares two
        // measurements taken under the same conditions on this shared machine.
        let mut peak = peak_rss_kib();
        let mut rows = Vec::new();
        for backend in self.backends.clone() {
            let raw = self.raw(&sink, &url).await;
            let engine = self.engine(&sink, &url, &backend).await;
            peak = peak.max(raw.peak_rss_kib).max(engine.peak_rss_kib);
            rows.push((backend.label(), raw, engine));
        }
        drop(sink);

        println!();
        println!(
            "| backend | sends | deliveries/s | raw client req/s | ratio | peak RSS (MiB) | enqueue rows/s | machine busy |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (label, raw, engine) in &rows {
            println!(
                "| {label} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.0} | {:.0}% |",
                engine.sends,
                engine.rate(),
                raw.rate(),
                engine.rate() / raw.rate(),
                mib(engine.peak_rss_kib),
                engine.sends as f64 / engine.enqueue.as_secs_f64(),
                100.0 * engine.usage.machine_busy,
            );
        }
        println!();
        println!(
            "peak RSS of the benchmark process over the whole run: {:.1} MiB (the sink not included)",
            mib(peak)
        );
    }

    /// (a) The same client, the same request shape and the same concurrency, without the engine.
    async fn raw(&self, sink: &Sink, url: &str) -> Phase {
        let client = WebhookClient::new(&self.delivery());
        let request = match webhook::render(&message(url), &context(0)).expect("renders") {
            Rendered::Request(request) => Arc::new(request),
            Rendered::Aborted(_) => unreachable!("the benchmark message never aborts"),
        };
        reset_peak_rss();
        let usage = Usage::start(sink);
        let next = Arc::new(AtomicUsize::new(0));
        let delivered = Arc::new(AtomicUsize::new(0));
        let sends = self.sends;
        let started = Instant::now();
        let mut workers = JoinSet::new();
        for _ in 0..self.in_flight() {
            let (client, request) = (client.clone(), request.clone());
            let (next, delivered) = (next.clone(), delivered.clone());
            workers.spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < sends {
                    if raw_post(&client, &request).await {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.expect("a raw client task");
        }
        let elapsed = started.elapsed();
        let phase = Phase {
            sends,
            elapsed,
            enqueue: Duration::ZERO,
            peak_rss_kib: peak_rss_kib(),
            usage: usage.finish(sink),
        };
        let ok = delivered.load(Ordering::Relaxed);
        assert_eq!(ok, sends, "every raw request got a 200");
        println!(
            "(a) raw client:     {sends} POSTs in {:.2} s = {:.0} req/s; peak RSS {:.1} MiB; {}",
            elapsed.as_secs_f64(),
            phase.rate(),
            mib(phase.peak_rss_kib),
            phase.usage.describe(elapsed),
        );
        phase
    }

    /// (b) Enqueue `sends` rows, then run the dispatcher until none is pending.
    async fn engine(&self, sink: &Sink, url: &str, backend: &Backend) -> Phase {
        let (db, cleanup) = open(backend, self.sqlite_cache_mib).await;
        reset_peak_rss();
        let workspace = WorkspaceId::generate();
        let template = message(url);
        let mut enqueue = Duration::ZERO;
        let mut written = 0;
        while written < self.sends {
            let count = ENQUEUE_SLICE.min(self.sends - written);
            let sends: Vec<NewSend> = (written..written + count)
                .map(|i| NewSend {
                    workspace_id: workspace.clone(),
                    source_kind: SourceKind::Campaign,
                    source_id: None,
                    source_name: Some("benchmark".into()),
                    recipient: Some(format!("user-{i}")),
                    message: template.clone(),
                    context: context(i),
                    due_at: None,
                    tracking: Default::default(),
                })
                .collect();
            let started = Instant::now();
            let txn = db.begin().await.expect("begin");
            outbox::enqueue(&txn, sends, Utc::now())
                .await
                .expect("enqueue");
            txn.commit().await.expect("commit");
            enqueue += started.elapsed();
            written += count;
        }
        println!(
            "(b) {}: enqueued {} sends in {:.2} s = {:.0} rows/s",
            backend.label(),
            self.sends,
            enqueue.as_secs_f64(),
            self.sends as f64 / enqueue.as_secs_f64()
        );

        if self.ordered_ids {
            renumber_in_order(&db).await;
        }
        let dispatcher = Arc::new(Dispatcher::new(
            db.clone(),
            WebhookClient::new(&self.delivery()),
            RetryPolicy::default(),
            Arc::new(SystemClock),
            self.dispatch(),
        ));
        let usage = Usage::start(sink);
        // The watcher is a task of its own: `run` polls its shutdown future only when a claim
        // comes back empty, so a shutdown future that queried the database itself would sit on
        // the (single SQLite) connection between polls and stall every claim.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Instant>();
        let watcher = {
            let db = db.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + GIVE_UP_AFTER;
                while any_pending(&db).await {
                    if Instant::now() > deadline {
                        eprintln!("sends still pending after {GIVE_UP_AFTER:?}: giving up");
                        break;
                    }
                    tokio::time::sleep(WATCH_EVERY).await;
                }
                let _ = done_tx.send(Instant::now());
            })
        };
        let finished: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
        let shutdown = {
            let finished = finished.clone();
            async move {
                if let Ok(at) = done_rx.await {
                    let _ = finished.set(at);
                }
            }
        };
        let started = Instant::now();
        // On a worker of the runtime, as `herald serve` and `herald worker` run it.
        tokio::spawn(dispatcher.clone().run(shutdown))
            .await
            .expect("the dispatcher's loop");
        watcher.await.expect("the watcher");
        let elapsed = finished.get().copied().unwrap_or_else(Instant::now) - started;
        let usage = usage.finish(sink);

        let delivered = count(
            &db,
            "SELECT COUNT(*) AS n FROM webhook_send WHERE status = 'delivered'",
        )
        .await;
        let attempts = count(&db, "SELECT COUNT(*) AS n FROM webhook_attempt").await;
        assert_eq!(delivered, self.sends as i64, "every send was delivered");
        assert_eq!(attempts, self.sends as i64, "one attempt per send");
        let phase = Phase {
            sends: self.sends,
            elapsed,
            enqueue,
            peak_rss_kib: peak_rss_kib(),
            usage,
        };
        println!(
            "    dispatched in {:.2} s = {:.0} deliveries/s; peak RSS {:.1} MiB; {}",
            elapsed.as_secs_f64(),
            phase.rate(),
            mib(phase.peak_rss_kib),
            phase.usage.describe(elapsed),
        );
        // CPU per delivery moves less than the rate when other work shares the machine.
        let per_send = |seconds: f64| 1e6 * seconds / self.sends as f64;
        let threads: Vec<String> = phase
            .usage
            .threads
            .iter()
            .map(|(name, seconds)| format!("{name} {:.1}", per_send(*seconds)))
            .collect();
        println!(
            "    CPU per delivery: {:.1} µs in the benchmark process ({}), {:.1} µs in the sink; \
             {:.0} bytes written per delivery (database files and sockets)",
            per_send(phase.usage.own),
            threads.join(", "),
            per_send(phase.usage.sink),
            phase.usage.written as f64 / self.sends as f64,
        );
        if let Backend::Sqlite { .. } = backend {
            let mode = pragma(&db, "journal_mode").await;
            let sync = pragma(&db, "synchronous").await;
            let cache = pragma(&db, "cache_size").await;
            println!(
                "    (checked: journal_mode={mode}, synchronous={sync} [1=NORMAL, 2=FULL], \
                 cache_size={cache} [negative: KiB])"
            );
        }
        cleanup.run(&db).await;
        db.close().await.ok();
        phase
    }
}

/// One POST as the engine would make it (the same headers), true when a 200 came back.
async fn raw_post(client: &WebhookClient, request: &RenderedRequest) -> bool {
    let now = Utc::now().timestamp();
    let headers = [
        ("webhook-id".to_string(), SendId::generate().to_string()),
        ("webhook-timestamp".to_string(), now.to_string()),
    ];
    client.send(request, &headers, now).await.status == Some(200)
}

/// The message every send uses: one static header and a JSON body with a little Liquid.
fn message(url: &str) -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: url.to_string(),
        headers: vec![("X-Campaign".into(), "benchmark".into())],
        body: Body::Pairs {
            pairs: vec![
                ("name".into(), "{{${first_name}}}".into()),
                ("user".into(), "{{${user_id}}}".into()),
                ("event".into(), "benchmark".into()),
            ],
        },
    }
}

/// Each recipient's own attributes, so every send renders to its own body.
fn context(i: usize) -> RenderContext {
    RenderContext::new()
        .with_user_attribute("first_name", format!("Ada {i}"))
        .with_user_attribute("user_id", format!("user-{i}"))
}

/// How long rendering costs per send, the way the dispatcher does it (decode the stored message
/// and context, parse the Liquid, render) and with the message compiled once.
fn render_cost(message: &WebhookMessage) {
    const ROUNDS: usize = 20_000;
    let stored_message = serde_json::to_string(message).expect("serializes");
    let contexts: Vec<String> = (0..ROUNDS)
        .map(|i| serde_json::to_string(&context(i)).expect("serializes"))
        .collect();
    let started = Instant::now();
    for stored_context in &contexts {
        let message: WebhookMessage = serde_json::from_str(&stored_message).expect("decodes");
        let context: RenderContext = serde_json::from_str(stored_context).expect("decodes");
        let rendered = webhook::render(&message, &context).expect("renders");
        let Rendered::Request(request) = rendered else {
            unreachable!("the benchmark message never aborts")
        };
        std::hint::black_box(serde_json::to_string(&request).expect("serializes"));
    }
    let per_send = started.elapsed() / ROUNDS as u32;
    let compiled = message.compile().expect("compiles");
    let started = Instant::now();
    for stored_context in &contexts {
        let context: RenderContext = serde_json::from_str(stored_context).expect("decodes");
        std::hint::black_box(compiled.render(&context).expect("renders"));
    }
    let compiled_per_send = started.elapsed() / ROUNDS as u32;
    println!(
        "render per send:    {:.1} µs as the dispatcher does it (decode, parse Liquid, render, \
         encode); {:.1} µs with the message compiled once",
        per_send.as_secs_f64() * 1e6,
        compiled_per_send.as_secs_f64() * 1e6
    );
}

/// What one timed phase measured.
#[derive(Clone, Debug)]
struct Phase {
    sends: usize,
    elapsed: Duration,
    enqueue: Duration,
    peak_rss_kib: u64,
    usage: UsageDelta,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.sends as f64 / self.elapsed.as_secs_f64()
    }
}

/// Whether any send still waits (or is in flight): one index probe, cheap at any table size.
async fn any_pending(db: &DatabaseConnection) -> bool {
    let backend = db.get_database_backend();
    let sql = "SELECT 1 AS one FROM webhook_send WHERE status = 'pending' LIMIT 1";
    match db.query_one(Statement::from_string(backend, sql)).await {
        Ok(row) => row.is_some(),
        Err(error) => {
            eprintln!("watcher query failed: {error}");
            true
        }
    }
}

/// Gives every send an id that sorts in enqueue order (shaped like a UUID, 36 characters), as
/// time-ordered ids (UUIDv7) would: then sends and their attempts are appended to the end of
/// their primary-key indexes instead of being scattered through them. Not timed.
async fn renumber_in_order(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE webhook_send AS s SET id = lpad(r.n::text, 8, '0') || '-0000-7000-8000-' \
               || lpad(r.n::text, 12, '0') \
             FROM (SELECT workspace_id, id, row_number() OVER (ORDER BY created_at, id) AS n \
                   FROM webhook_send) AS r \
             WHERE s.workspace_id = r.workspace_id AND s.id = r.id"
        }
        _ => "UPDATE webhook_send SET id = printf('%08d-0000-7000-8000-%012d', rowid, rowid)",
    };
    db.execute_unprepared(sql)
        .await
        .expect("renumber the sends");
    // Leave no trace of the rewrite for the timed phase: its dead rows (PostgreSQL) or its
    // pages in the write-ahead log (SQLite).
    let tidy = match backend {
        sea_orm::DbBackend::Postgres => "VACUUM ANALYZE webhook_send",
        _ => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    db.execute_unprepared(tidy)
        .await
        .expect("tidy up after renumbering");
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let backend = db.get_database_backend();
    let row = db
        .query_one(Statement::from_string(backend, sql))
        .await
        .expect("count query")
        .expect("one row");
    row.try_get("", "n").expect("a count")
}

async fn pragma(db: &DatabaseConnection, name: &str) -> String {
    let backend = db.get_database_backend();
    let sql = format!("PRAGMA {name}");
    let row = db
        .query_one(Statement::from_string(backend, sql))
        .await
        .expect("pragma")
        .expect("one row");
    row.try_get::<String>("", name)
        .or_else(|_| row.try_get::<i32>("", name).map(|n| n.to_string()))
        .unwrap_or_else(|e| format!("? ({e})"))
}

/// What to remove once a run is over.
enum Cleanup {
    Dir(PathBuf),
    Schema(String),
}

impl Cleanup {
    async fn run(self, db: &DatabaseConnection) {
        match self {
            Cleanup::Dir(dir) => {
                db.close_by_ref().await.ok();
                std::fs::remove_dir_all(&dir).ok();
            }
            Cleanup::Schema(schema) => {
                let sql = format!("DROP SCHEMA \"{schema}\" CASCADE");
                if let Err(error) = db.execute_unprepared(&sql).await {
                    eprintln!("could not drop the benchmark schema {schema}: {error}");
                }
            }
        }
    }
}

/// A fresh, migrated database for one run.
async fn open(backend: &Backend, sqlite_cache_mib: Option<usize>) -> (DatabaseConnection, Cleanup) {
    match backend {
        Backend::Sqlite { normal } => {
            let dir = std::env::temp_dir().join(format!(
                "herald-bench-{}-{}",
                std::process::id(),
                Utc::now().timestamp_micros()
            ));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            let db = open_sqlite(&dir.join("herald.db"), *normal, sqlite_cache_mib).await;
            (db, Cleanup::Dir(dir))
        }
        Backend::Postgres { url } => {
            let db = migrations::testing::fresh_postgres(url).await;
            let backend = db.get_database_backend();
            let row = db
                .query_one(Statement::from_string(
                    backend,
                    "SELECT current_schema() AS s",
                ))
                .await
                .expect("current schema")
                .expect("one row");
            let schema: String = row.try_get("", "s").expect("a schema name");
            (db, Cleanup::Schema(schema))
        }
    }
}

/// Opens SQLite the way `herald serve` does (`?mode=rwc`, Herald's settings, then WAL;
/// sea-orm keeps one connection for SQLite unless told otherwise), with `synchronous=NORMAL` and
/// a larger page cache on every connection if asked. `HERALD_BENCH_PAGE_SIZE` tries another page
/// size.
async fn open_sqlite(path: &Path, normal: bool, cache_mib: Option<usize>) -> DatabaseConnection {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let page_size = std::env::var("HERALD_BENCH_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(engine::scheduler::SQLITE_PAGE_SIZE);
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        // One closure: each call of `map_sqlx_sqlite_opts` replaces the one before.
        .map_sqlx_sqlite_opts(move |o| {
            let o = engine::scheduler::sqlite_settings(o)
                .page_size(page_size)
                .synchronous(if normal {
                    SqliteSynchronous::Normal
                } else {
                    SqliteSynchronous::Full
                });
            match cache_mib {
                // A negative cache_size is in KiB.
                Some(mib) => o.pragma("cache_size", format!("-{}", mib * 1024)),
                None => o,
            }
        });
    let db = Database::connect(options).await.expect("open SQLite");
    db.execute_unprepared("PRAGMA journal_mode=WAL")
        .await
        .expect("WAL");
    Migrator::up(&db, None).await.expect("migrate SQLite");
    db
}

/// The sink: a minimal axum server answering `200 ok` to anything, in a child process.
struct Sink {
    child: Child,
    addr: SocketAddr,
}

impl Sink {
    fn start(threads: usize) -> Self {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut child = Command::new(exe)
            .env(SINK_CHILD, "1")
            .env("HERALD_BENCH_SINK_THREADS", threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("sink stdout"))
            .read_line(&mut line)
            .expect("the sink's address");
        let addr = line.trim().parse().expect("the sink prints its address");
        Self { child, addr }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The sink exits when its stdin closes.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

mod sink {
    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::serve::ListenerExt;

    pub fn serve() {
        let threads = env_usize("HERALD_BENCH_SINK_THREADS", 1).max(1);
        let mut builder = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        };
        let runtime = builder.enable_all().build().expect("a tokio runtime");
        // Exit with the parent: it holds our stdin.
        std::thread::spawn(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0);
        });
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the sink");
            let addr = listener.local_addr().expect("the sink's address");
            let mut out = std::io::stdout();
            writeln!(out, "{addr}").expect("print the address");
            out.flush().expect("flush");
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let app = Router::new().fallback(reply);
            axum::serve(listener, app).await.expect("the sink serves");
        });
    }

    async fn reply(body: Bytes) -> &'static str {
        std::hint::black_box(body);
        "ok"
    }
}

/// CPU time (user + system) of a process, from `/proc/<pid>/stat` (clock ticks of 1/100 s).
fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy and total jiffies of the whole machine, from the first line of `/proc/stat`.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// CPU used during a phase by this process (and by each of its threads), the sink and the whole
/// machine.
struct Usage {
    own: f64,
    threads: HashMap<String, (String, f64)>,
    sink: f64,
    machine: (f64, f64),
    written: u64,
}

#[derive(Clone, Debug)]
struct UsageDelta {
    own: f64,
    /// CPU seconds per thread name (`tokio-rt-worker`, `sqlx-sqlite-worker-0`, ...), busiest first.
    threads: Vec<(String, f64)>,
    sink: f64,
    machine_busy: f64,
    /// Bytes this process handed to write calls (files and sockets: `wchar` of `/proc/self/io`).
    written: u64,
}

/// Bytes this process has passed to write calls so far (`wchar` in `/proc/self/io`).
fn bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of every thread of this process, by thread id: (name, seconds).
fn thread_cpu() -> HashMap<String, (String, f64)> {
    let mut threads = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for entry in entries.flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let path = format!("/proc/self/task/{tid}/stat");
        let name = std::fs::read_to_string(&path)
            .ok()
            .and_then(|stat| {
                let open = stat.find('(')?;
                let close = stat.rfind(')')?;
                Some(stat[open + 1..close].to_string())
            })
            .unwrap_or_default();
        threads.insert(tid, (name, cpu_seconds(&path)));
    }
    threads
}

impl Usage {
    fn start(sink: &Sink) -> Self {
        Self {
            own: cpu_seconds("/proc/self/stat"),
            threads: thread_cpu(),
            sink: sink.cpu_seconds(),
            machine: machine_jiffies(),
            written: bytes_written(),
        }
    }

    fn finish(self, sink: &Sink) -> UsageDelta {
        let (busy, total) = machine_jiffies();
        let (busy0, total0) = self.machine;
        let mut by_name: HashMap<String, f64> = HashMap::new();
        for (tid, (name, seconds)) in thread_cpu() {
            let before = self.threads.get(&tid).map_or(0.0, |(_, s)| *s);
            *by_name.entry(name).or_default() += seconds - before;
        }
        let mut threads: Vec<(String, f64)> = by_name
            .into_iter()
            .filter(|(_, seconds)| *seconds > 0.0)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        UsageDelta {
            own: cpu_seconds("/proc/self/stat") - self.own,
            threads,
            sink: sink.cpu_seconds() - self.sink,
            machine_busy: if total > total0 {
                (busy - busy0) / (total - total0)
            } else {
                0.0
            },
            written: bytes_written().saturating_sub(self.written),
        }
    }
}

impl UsageDelta {
    fn describe(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|(name, seconds)| format!("{name} {:.0}%", 100.0 * seconds / secs))
            .collect();
        format!(
            "CPU: bench {:.2} s ({:.0}% of a core: {}), sink {:.2} s ({:.0}%), machine {:.0}% busy",
            self.own,
            100.0 * self.own / secs,
            threads.join(", "),
            self.sink,
            100.0 * self.sink / secs,
            100.0 * self.machine_busy
        )
    }
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so each phase reports its own peak.
fn reset_peak_rss() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("could not reset the peak RSS; figures are peaks since start");
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn peak_rss_kib() -> u64 {
    status_field("VmHWM:")
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn machine_report() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("machine:            {cores} cores, MemTotal {mem}");
    println!("load average:       {}", load.trim());
}
