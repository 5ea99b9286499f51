//! What the campaign and Canvas benchmarks share: their knobs, a SQLite file database, profiles
//! seeded straight into it, an in-process sink that counts what it receives, this process's
//! dispatcher and scheduler, and the peak RSS.
//!
//! Knobs (environment, optional): `HERALD_BENCH_CONCURRENCY` (512), `HERALD_BENCH_PER_HOST`
//! (512), `HERALD_BENCH_BATCH` (1024), `HERALD_BENCH_SYNCHRONOUS` (`full` or `normal`; `full`),
//! `HERALD_BENCH_NO_READER=1` (the scheduler reads through the writing connection),
//! `HERALD_BENCH_PAGE_SIZE` (unset: `herald serve`'s page size for new files, 16384).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use chrono::Utc;
use domain::entity::profile;
use domain::{Clock, WorkspaceId};
use engine::scheduler::{Scheduler, SchedulerStats};
use engine::{
    AddressPolicy, DeliverySettings, DispatchSettings, Dispatcher, RetryPolicy, WebhookClient,
};
use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteSynchronous;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set,
    TransactionTrait,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A number from the environment, else `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peak resident set of this process, from /proc (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Logs warnings to stderr, starts the sink, and runs `bench` (given the sink's address and the
/// count of requests it received) on a multi-thread runtime.
pub fn main<F: Future<Output = ()>>(bench: impl FnOnce(SocketAddr, Arc<AtomicUsize>) -> F) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The sink gets a runtime of its own, on its own thread, like a separate receiver would.
    let received = Arc::new(AtomicUsize::new(0));
    let sink_addr = {
        let received = received.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a sink runtime");
            runtime.block_on(async move {
                let app = Router::new()
                    .fallback(
                        |State(n): State<Arc<AtomicUsize>>, _body: axum::body::Bytes| async move {
                            n.fetch_add(1, Ordering::Relaxed);
                            "ok"
                        },
                    )
                    .with_state(received);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the sink");
                tx.send(listener.local_addr().expect("sink address"))
                    .expect("report the sink address");
                axum::serve(listener, app).await.expect("serve the sink");
            });
        });
        rx.recv().expect("the sink starts")
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench(sink_addr, received));
}

/// A migrated SQLite file in a scratch directory of its own.
pub struct Scratch {
    pub db: DatabaseConnection,
    /// `full` or `normal`: SQLite's `synchronous` setting.
    pub durability: &'static str,
    dir: PathBuf,
}

impl Scratch {
    /// Opens `herald-<name>-bench-<pid>/herald.db` (WAL) in the temporary directory.
    pub async fn open(name: &str) -> Self {
        let (synchronous, durability) = match std::env::var("HERALD_BENCH_SYNCHRONOUS").as_deref() {
            Ok("normal") => (SqliteSynchronous::Normal, "normal"),
            _ => (SqliteSynchronous::Full, "full"),
        };
        let dir = std::env::temp_dir().join(format!("herald-{name}-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let path = dir.join("herald.db");
        let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        // As `herald serve` creates its file; `HERALD_BENCH_PAGE_SIZE` tries another page size.
        let page_size = std::env::var("HERALD_BENCH_PAGE_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(engine::scheduler::SQLITE_PAGE_SIZE);
        options.sqlx_logging(false).map_sqlx_sqlite_opts(move |o| {
            engine::scheduler::sqlite_settings(o)
                .synchronous(synchronous)
                .page_size(page_size)
        });
        let db = Database::connect(options).await.expect("open SQLite");
        db.execute_unprepared("PRAGMA journal_mode=WAL")
            .await
            .expect("WAL");
        Migrator::up(&db, None).await.expect("migrate");
        // Experiments only: schema changes to try before writing them as a migration.
        if let Ok(sql) = std::env::var("HERALD_BENCH_EXTRA_SQL") {
            for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                db.execute_unprepared(statement).await.expect("extra SQL");
            }
        }
        Self {
            db,
            durability,
            dir,
        }
    }

    /// Closes the database and removes the directory.
    pub fn remove(self) {
        drop(self.db);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Inserts `n` profiles (`user-<i>`, a first name, a custom `plan`: `pro` for every other one) in
/// one transaction, and says how long it took.
pub async fn seed(db: &DatabaseConnection, ws: &WorkspaceId, n: usize, what: &str) {
    let seeding = Instant::now();
    let now = Utc::now();
    let txn = db.begin().await.expect("begin");
    let mut rows = Vec::with_capacity(1000);
    for i in 0..n {
        rows.push(profile::ActiveModel {
            workspace_id: Set(ws.to_string()),
            id: Set(format!("00000000-0000-4000-8000-{i:012}")),
            external_id: Set(Some(format!("user-{i}"))),
            email: Set(None),
            phone: Set(None),
            first_name: Set(Some(["Ada", "Bob", "Cy", "Dee"][i % 4].into())),
            last_name: Set(None),
            gender: Set(None),
            date_of_birth: Set(None),
            country: Set(None),
            home_city: Set(None),
            language: Set(None),
            time_zone: Set(None),
            custom_attributes: Set(format!(r#"{{"plan":"{}"}}"#, ["pro", "free"][i % 2])),
            created_at: Set(now),
            updated_at: Set(now),
        });
        if rows.len() == 1000 {
            profile::Entity::insert_many(std::mem::take(&mut rows))
                .exec_without_returning(&txn)
                .await
                .expect("seed profiles");
        }
    }
    if !rows.is_empty() {
        profile::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .expect("seed profiles");
    }
    txn.commit().await.expect("commit the seed");
    eprintln!(
        "seeded {n} {what} in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
}

/// This process's dispatcher and scheduler, running until [`Engine::stop`].
pub struct Engine {
    stop: watch::Sender<bool>,
    dispatching: JoinHandle<()>,
    scheduling: JoinHandle<()>,
}

impl Engine {
    /// Starts the dispatcher (delivering to loopback, with the knobs' concurrency and batch) and
    /// the scheduler (every 100 ms), both on `clock`; also returns the scheduler's statistics.
    pub async fn start(scratch: &Scratch, clock: Arc<dyn Clock>) -> (Self, Arc<SchedulerStats>) {
        let db = &scratch.db;
        let concurrency = env("HERALD_BENCH_CONCURRENCY", 512);
        let dispatcher = Arc::new(Dispatcher::new(
            db.clone(),
            WebhookClient::new(&DeliverySettings {
                concurrency,
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(30),
                addresses: AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("a CIDR")]),
                allowed_ports: Vec::new(),
            }),
            RetryPolicy::default(),
            clock.clone(),
            DispatchSettings {
                batch_size: env("HERALD_BENCH_BATCH", 1024),
                concurrency,
                per_host_concurrency: env("HERALD_BENCH_PER_HOST", 512),
                ..DispatchSettings::default()
            },
        ));
        // `HERALD_BENCH_NO_READER=1`: the scheduler reads audiences through the writing
        // connection, as it did before it had a reader of its own.
        let reads = if std::env::var_os("HERALD_BENCH_NO_READER").is_some() {
            db.clone()
        } else {
            engine::scheduler::open_reader(db)
                .await
                .expect("open the reader")
        };
        let scheduler = Scheduler::new(db.clone(), clock, dispatcher.waker())
            .with_reader(reads)
            .with_period(Duration::from_millis(100));
        let stats = scheduler.stats();
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // `HERALD_BENCH_NO_DISPATCH=1` measures queueing alone: nothing is sent.
        let dispatching = if std::env::var_os("HERALD_BENCH_NO_DISPATCH").is_some() {
            tokio::spawn(stopped(stop_rx.clone()))
        } else {
            tokio::spawn(dispatcher.run(stopped(stop_rx.clone())))
        };
        let scheduling = tokio::spawn(scheduler.run(stopped(stop_rx)));
        let engine = Self {
            stop,
            dispatching,
            scheduling,
        };
        (engine, stats)
    }

    /// Stops both and waits for them, so the last outcomes are recorded.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.dispatching.await;
        let _ = self.scheduling.await;
    }
}
