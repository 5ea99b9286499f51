//! The Canvas benchmark: every profile of a workspace (100,000 by default) enters a four-step
//! Canvas (welcome webhook → delay 60 s → decision split `plan = pro` → webhook A / webhook B)
//! through a `/canvas/trigger/send` broadcast, on a SQLite file; this process's scheduler moves
//! the journeys and its dispatcher delivers to a local sink. Reports the time until every journey
//! finished and every send was delivered, and what the journey engine costs per advance.
//!
//! The delay is not waited out in real time: the engine's clock is the system clock plus an
//! offset, and once every journey sits in the delay the offset jumps 60 s ahead, so the journeys
//! come due at once (as they would a minute later) and the figures measure the engine, not the
//! minute. The "after the delay" time starts at that jump.
//!
//! `cargo bench -p engine --bench canvas`. Knobs (environment, optional): `HERALD_BENCH_USERS`
//! (100000), `HERALD_BENCH_CONCURRENCY` (512), `HERALD_BENCH_PER_HOST` (512), `HERALD_BENCH_BATCH`
//! (1024), `HERALD_BENCH_SYNCHRONOUS` (`full` or `normal`; `full`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use domain::campaign::AudienceSpec;
use domain::canvas::{
    self, CanvasInput, CanvasSettings, CanvasTarget, CanvasTriggerRequest, CanvasVariant,
    Definition, DelaySpec, Entry, ExitCriteria, Step, StepId, StepKind,
};
use domain::entity::{canvas_journey, profile, webhook_send};
use domain::segment::{Comparison, Filter};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{Clock, WorkspaceId};
use engine::scheduler::Scheduler;
use engine::{
    AddressPolicy, DeliverySettings, DispatchSettings, Dispatcher, RetryPolicy, WebhookClient,
};
use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteSynchronous;
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use serde_json::json;

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

/// The system clock plus an offset that only grows: time runs as usual, and the benchmark can
/// skip ahead past a delay.
#[derive(Default)]
struct JumpClock {
    offset_ms: AtomicI64,
}

impl JumpClock {
    fn jump(&self, by: TimeDelta) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for JumpClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
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

fn step(id: &str, kind: StepKind) -> Step {
    Step {
        id: StepId(id.into()),
        name: id.into(),
        kind,
    }
}

fn message(sink: std::net::SocketAddr, path: &str) -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: format!("http://{sink}/{path}"),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Raw {
            text: r#"{"hello": "{{${first_name}}}", "user": "{{${user_id}}}", "source": "{{context.${source}}}"}"#.into(),
        },
    }
}

/// welcome → delay 60 s → split `plan = pro` → A / B.
fn definition(sink: std::net::SocketAddr) -> Definition {
    let next = |id: &str| Some(StepId(id.into()));
    Definition {
        entry: Entry::Api,
        audience: AudienceSpec::default(),
        exit: ExitCriteria::default(),
        settings: CanvasSettings::default(),
        variants: vec![CanvasVariant {
            id: None,
            name: "Main".into(),
            percent: 100,
            first_step: next("welcome"),
        }],
        control_percent: 0,
        steps: vec![
            step(
                "welcome",
                StepKind::Message {
                    message: message(sink, "welcome"),
                    next: next("wait"),
                },
            ),
            step(
                "wait",
                StepKind::Delay {
                    delay: DelaySpec::For { seconds: 60 },
                    next: next("split"),
                },
            ),
            step(
                "split",
                StepKind::DecisionSplit {
                    segment_ids: Vec::new(),
                    filter: Some(Filter::Attribute {
                        name: "plan".into(),
                        custom: true,
                        comparison: Comparison::Equals,
                        value: json!("pro"),
                    }),
                    yes: next("a"),
                    no: next("b"),
                },
            ),
            step(
                "a",
                StepKind::Message {
                    message: message(sink, "a"),
                    next: None,
                },
            ),
            step(
                "b",
                StepKind::Message {
                    message: message(sink, "b"),
                    next: None,
                },
            ),
        ],
    }
}

async fn run(sink: std::net::SocketAddr, received: Arc<AtomicUsize>) {
    let users = env("HERALD_BENCH_USERS", 100_000);
    let concurrency = env("HERALD_BENCH_CONCURRENCY", 512);
    let per_host = env("HERALD_BENCH_PER_HOST", 512);
    let batch = env("HERALD_BENCH_BATCH", 1024);
    let (synchronous, durability) = match std::env::var("HERALD_BENCH_SYNCHRONOUS").as_deref() {
        Ok("normal") => (SqliteSynchronous::Normal, "normal"),
        _ => (SqliteSynchronous::Full, "full"),
    };
    let dir = std::env::temp_dir().join(format!("herald-canvas-bench-{}", std::process::id()));
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
    seed(&db, &ws, users).await;
    eprintln!(
        "seeded {users} users in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let clock = Arc::new(JumpClock::default());
    let input = CanvasInput {
        name: "Benchmark".into(),
        description: String::new(),
        tags: Vec::new(),
        definition: definition(sink),
    };
    let created = canvas::create_canvas(&db, &ws, input, clock.now())
        .await
        .expect("create the Canvas");
    let live = canvas::launch_canvas(&db, &ws, &created.id, clock.now())
        .await
        .expect("launch the Canvas");

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
    let scheduler = Scheduler::new(db.clone(), clock.clone(), dispatcher.waker())
        .with_period(Duration::from_millis(100));
    let stats = scheduler.stats();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let dispatching = tokio::spawn(dispatcher.clone().run(stopped(stop_rx.clone())));
    let scheduling = tokio::spawn(scheduler.run(stopped(stop_rx)));

    let started = Instant::now();
    let request = CanvasTriggerRequest {
        target: CanvasTarget::Broadcast { audience: None },
        context: json!({"source": "bench"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let outcome = canvas::trigger_canvas(&db, &ws, &live.id, request, clock.now())
        .await
        .expect("enter everyone");
    let entered_after = started.elapsed();
    assert_eq!(outcome.entered as usize, users, "{outcome:?}");

    let journeys = || {
        canvas_journey::Entity::find()
            .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
            .filter(canvas_journey::Column::CanvasId.eq(live.id.as_str()))
    };
    let deadline = Duration::from_secs(1800);
    // Phase 1: everyone sent the welcome and sits in the delay.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let in_delay = journeys()
            .filter(canvas_journey::Column::Status.eq("active"))
            .filter(canvas_journey::Column::StepId.eq("split"))
            .count(&db)
            .await
            .expect("count journeys");
        if in_delay as usize >= users || started.elapsed() > deadline {
            break;
        }
    }
    let delayed_after = started.elapsed();
    clock.jump(TimeDelta::seconds(60));
    let jumped = Instant::now();
    // Phase 2: everyone finished, every send delivered.
    let mut finished_after = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if finished_after.is_none() {
            let finished = journeys()
                .filter(canvas_journey::Column::Status.eq("finished"))
                .count(&db)
                .await
                .expect("count journeys");
            if finished as usize >= users {
                finished_after = Some(jumped.elapsed());
            }
        }
        let done = received.load(Ordering::Relaxed);
        if (finished_after.is_some() && done >= 2 * users) || started.elapsed() > deadline {
            if started.elapsed() > deadline {
                eprintln!("giving up after 30 minutes with {done} delivered");
            }
            break;
        }
    }
    let after_jump = jumped.elapsed();
    let _ = stop_tx.send(true);
    let _ = dispatching.await;
    let _ = scheduling.await;

    let delivered = webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Status.eq("delivered"))
        .count(&db)
        .await
        .expect("count sends");
    let (advanced, busy) = stats.duty("canvas journeys").unwrap_or_default();
    let per_advance = busy.as_secs_f64() * 1e6 / (advanced.max(1) as f64);
    // Without the skipped minute: entry, first steps, then everything after the jump.
    let working = delayed_after + after_jump;
    println!(
        "canvas [sqlite-{durability}]: {users} users, 4-step journey: broadcast entry {:.1} s, \
         all in the delay after {:.1} s, after the delay all finished in {:.1} s and delivered in \
         {:.1} s; {:.1} s in all without the skipped minute ({:.0} journeys/s, {:.0} deliveries/s); \
         engine {:.0} µs per journey advance ({advanced} advances, {:.0} µs per user); \
         delivered {delivered} of {}; peak RSS {:.0} MiB",
        entered_after.as_secs_f64(),
        delayed_after.as_secs_f64(),
        finished_after.unwrap_or_default().as_secs_f64(),
        after_jump.as_secs_f64(),
        working.as_secs_f64(),
        users as f64 / working.as_secs_f64(),
        (2 * users) as f64 / working.as_secs_f64(),
        per_advance,
        busy.as_secs_f64() * 1e6 / (users.max(1) as f64),
        2 * users,
        peak_rss_mib()
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inserts `n` profiles (`user-<i>`, a first name, a custom `plan`, pro for every other one) in
/// one transaction.
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
