//! The campaign benchmark: a scheduled campaign sent at launch to every profile of a workspace
//! (1,000,000 by default) on a SQLite file, delivered by this process's scheduler and dispatcher to
//! a local sink. Reports the time from launch to the last delivery and the peak RSS. See
//! BENCHMARKS.md for the figures.
//!
//! `cargo bench -p engine --bench campaign`. Knobs (environment, optional):
//! `HERALD_BENCH_PROFILES` (1000000), `HERALD_BENCH_CONCURRENCY` (512), `HERALD_BENCH_PER_HOST`
//! (512), `HERALD_BENCH_BATCH` (1024), `HERALD_BENCH_SYNCHRONOUS` (`full` or `normal`; `full`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use chrono::Utc;
use domain::campaign::{
    self, CampaignInput, CampaignKind, Delivery, Schedule, Settings, Variant,
};
use domain::entity::profile;
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{SystemClock, WorkspaceId};
use engine::scheduler::Scheduler;
use engine::{
    AddressPolicy, DeliverySettings, DispatchSettings, Dispatcher, RetryPolicy, WebhookClient,
};
use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteSynchronous;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set,
    TransactionTrait,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peak resident set of this process, from /proc (0 where unavailable).
fn peak_rss_mib() -> f64 {
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

fn main() {
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
    runtime.block_on(run(sink_addr, received));
}

async fn run(sink: std::net::SocketAddr, received: Arc<AtomicUsize>) {
    let profiles = env("HERALD_BENCH_PROFILES", 1_000_000);
    let concurrency = env("HERALD_BENCH_CONCURRENCY", 512);
    let per_host = env("HERALD_BENCH_PER_HOST", 512);
    let batch = env("HERALD_BENCH_BATCH", 1024);
    let (synchronous, durability) = match std::env::var("HERALD_BENCH_SYNCHRONOUS").as_deref() {
        Ok("normal") => (SqliteSynchronous::Normal, "normal"),
        _ => (SqliteSynchronous::Full, "full"),
    };
    let dir = std::env::temp_dir().join(format!("herald-campaign-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("herald.db");
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| o.with_regexp().synchronous(synchronous));
    let db = Database::connect(options).await.expect("open SQLite");
    db.execute_unprepared("PRAGMA journal_mode=WAL")
        .await
        .expect("WAL");
    Migrator::up(&db, None).await.expect("migrate");

    let ws = WorkspaceId::generate();
    let seeding = Instant::now();
    seed(&db, &ws, profiles).await;
    eprintln!(
        "seeded {profiles} profiles in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let message = WebhookMessage {
        method: Method::Post,
        url: format!("http://{sink}/hook"),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Raw {
            text: r#"{"hello": "{{${first_name}}}", "user": "{{${user_id}}}", "plan": "{{custom_attribute.${plan}}}"}"#.into(),
        },
    };
    let input = CampaignInput {
        name: "Benchmark".into(),
        description: String::new(),
        tags: Vec::new(),
        kind: CampaignKind::Webhook,
        variants: vec![Variant {
            id: None,
            name: "Main".into(),
            percent: 100,
            message: Some(message),
        }],
        control_percent: 0,
        delivery: Delivery::Scheduled {
            schedule: Schedule::AtLaunch,
        },
        audience: Default::default(),
        conversions: Vec::new(),
        settings: Settings::default(),
    };
    let created = campaign::create_campaign(&db, &ws, input, Utc::now())
        .await
        .expect("create the campaign");

    let clock = Arc::new(SystemClock);
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
            batch_size: batch,
            concurrency,
            per_host_concurrency: per_host,
            ..DispatchSettings::default()
        },
    ));
    let scheduler = Scheduler::new(db.clone(), clock, dispatcher.waker())
        .with_period(Duration::from_millis(100));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let dispatching = tokio::spawn(dispatcher.clone().run(stopped(stop_rx.clone())));
    let scheduling = tokio::spawn(scheduler.run(stopped(stop_rx)));

    let launched = Instant::now();
    campaign::launch_campaign(&db, &ws, &created.id, Utc::now())
        .await
        .expect("launch");
    let mut queued_at = None;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = received.load(Ordering::Relaxed);
        if queued_at.is_none() {
            let progress = campaign::progress(&db, &ws, &created.id, None)
                .await
                .expect("progress");
            let written = progress.queued
                + progress.retrying
                + progress.delivered
                + progress.failed
                + progress.aborted;
            if written as usize >= profiles {
                queued_at = Some(launched.elapsed());
            }
        }
        if done >= profiles {
            break;
        }
        if launched.elapsed() > Duration::from_secs(1800) {
            eprintln!("giving up after 30 minutes with {done} delivered");
            break;
        }
    }
    let received_all = launched.elapsed();
    // Let the dispatcher record the last outcomes before the figures are read back.
    let _ = stop_tx.send(true);
    let _ = dispatching.await;
    let _ = scheduling.await;
    let progress = campaign::progress(&db, &ws, &created.id, None)
        .await
        .expect("progress");
    println!(
        "campaign [sqlite-{durability}]: {profiles} profiles, launch to last delivery {:.1} s ({:.0} deliveries/s), all queued after {:.1} s; recorded delivered {} failed {} pending {}; peak RSS {:.0} MiB",
        received_all.as_secs_f64(),
        profiles as f64 / received_all.as_secs_f64(),
        queued_at.unwrap_or_default().as_secs_f64(),
        progress.delivered,
        progress.failed,
        progress.queued + progress.retrying,
        peak_rss_mib()
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inserts `n` profiles (`user-<i>`, a first name, a custom `plan`) in one transaction.
async fn seed(db: &DatabaseConnection, ws: &WorkspaceId, n: usize) {
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
}
