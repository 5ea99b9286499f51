//! The audience benchmark (issue 4): `/users/track` ingestion over real HTTP with full 75-event
//! batches from several concurrent clients, and a segment count over 1,000,000 profiles.
//!
//! `cargo bench -p server --bench audience`. Knobs (environment, all optional):
//! `HERALD_BENCH_CLIENTS` (4), `HERALD_BENCH_REQUESTS` (2000 requests of 75 events),
//! `HERALD_BENCH_PROFILES` (1000000), `HERALD_BENCH_BACKENDS` (`sqlite,sqlite-normal,postgres`),
//! `TEST_DATABASE_URL` (PostgreSQL runs only when set), `HERALD_BENCH_LOG` (a log filter such as
//! `warn`), `HERALD_BENCH_LISTENER` (an event name: launch an action-based campaign triggered by
//! it first. The clients send `checkout` (a third of the events) and `page_view`; only events
//! some campaign names get an inbox row and are handled while the clients run. Unset, nothing
//! listens and `/users/track` writes no inbox rows).
//! Each backend runs in a process of its own. Figures go in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use domain::entity::{profile, profile_event};
use domain::segment::Filter;
use domain::{AccountId, SystemClock, WorkspaceId};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Set, TransactionTrait,
};
use serde_json::json;
use server::Config;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A fresh database: a SQLite file in a temp dir (WAL, as `herald serve` opens it), or a new
/// PostgreSQL schema.
async fn database(backend: &str, dir: &std::path::Path) -> Option<(DatabaseConnection, Config)> {
    let mut config = Config::default();
    match backend {
        "sqlite" | "sqlite-normal" => {
            if backend == "sqlite-normal" {
                config.sqlite_synchronous = "normal".into();
            }
            config.database_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
            let db = server::connect(&config).await.expect("open SQLite");
            Some((db, config))
        }
        "postgres" => {
            let url = migrations::testing::postgres_url()?;
            config.database_url = url.clone();
            Some((migrations::testing::fresh_postgres(&url).await, config))
        }
        other => panic!("unknown backend {other}"),
    }
}

async fn ingestion(backend: &str, dir: &std::path::Path) {
    let Some((db, mut config)) = database(backend, dir).await else {
        return;
    };
    let clients: usize = env("HERALD_BENCH_CLIENTS", 4);
    let requests: usize = env("HERALD_BENCH_REQUESTS", 2000);
    config.api_rate_limit = u64::MAX / 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = server::start(db.clone(), config, Arc::new(SystemClock), listener)
        .await
        .expect("start herald");
    let now = Utc::now();
    let account =
        domain::account::create_account(&db, "bench@example.com", "bench-password", false, now)
            .await
            .unwrap();
    let ws = domain::workspace::create_workspace_atomically(
        &db,
        &AccountId::from_db(account.id),
        "bench",
        now,
    )
    .await
    .unwrap();
    let key = domain::api_key::create_api_key(
        &db,
        &WorkspaceId::from_db(ws.id.clone()),
        None,
        "bench",
        &["users.track".to_string()],
        "",
        now,
    )
    .await
    .unwrap()
    .secret;
    let ws = WorkspaceId::from_db(ws.id);
    if let Ok(event) = std::env::var("HERALD_BENCH_LISTENER") {
        launch_listener(&db, &ws, &event).await;
    }

    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/users/track");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        tasks.spawn(async move {
            let mut events = 0usize;
            let mut r = client;
            while r < requests {
                let time = Utc::now().to_rfc3339();
                let batch: Vec<_> = (0..75)
                    .map(|i| {
                        json!({
                            "external_id": format!("user-{}", (r * 75 + i) % 10_000),
                            "name": if i % 3 == 0 { "checkout" } else { "page_view" },
                            "time": time,
                            "properties": {"path": "/pricing", "value": i}
                        })
                    })
                    .collect();
                let body = json!({ "events": batch }).to_string();
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                let status = response.status();
                if !status.is_success() {
                    let text = response.text().await.unwrap_or_default();
                    panic!("status {status}: {text}");
                }
                let answer: serde_json::Value = response.json().await.unwrap();
                events += answer["events_processed"].as_u64().unwrap_or(0) as usize;
                r += clients;
            }
            events
        });
    }
    let mut events = 0;
    while let Some(done) = tasks.join_next().await {
        events += done.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "ingestion [{backend}]: {events} events in {requests} requests of 75 from {clients} clients: {:.2} s, {:.0} events/s, {:.0} requests/s, peak RSS {:.0} MiB",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        peak_rss_mib()
    );
    // Events the engine has not yet handed to their listeners when the clients finished.
    let inbox = domain::entity::event_inbox::Entity::find()
        .count(&db)
        .await
        .unwrap();
    let waiting = domain::entity::event_inbox::Entity::find()
        .filter(domain::entity::event_inbox::Column::HandledAt.is_null())
        .count(&db)
        .await
        .unwrap();
    println!(
        "ingestion [{backend}]: inbox rows written {inbox}, still unhandled at the end {waiting}"
    );
    running.handle.abort();
}

/// An active action-based campaign triggered by `event`: the workspace now listens to it.
async fn launch_listener(db: &DatabaseConnection, ws: &WorkspaceId, event: &str) {
    use domain::campaign::{
        self, CampaignInput, CampaignKind, Delivery, Settings, Trigger, Variant,
    };
    use domain::webhook::{Body, Method, WebhookMessage};
    let input = CampaignInput {
        name: "Welcome".into(),
        description: String::new(),
        tags: Vec::new(),
        kind: CampaignKind::Webhook,
        variants: vec![Variant {
            id: None,
            name: "Main".into(),
            percent: 100,
            message: Some(WebhookMessage {
                method: Method::Post,
                url: "http://127.0.0.1:9/hook".into(),
                headers: Vec::new(),
                body: Body::Raw {
                    text: "hello".into(),
                },
            }),
        }],
        control_percent: 0,
        delivery: Delivery::Action {
            trigger: Trigger::CustomEvent {
                name: event.into(),
                property_filters: Vec::new(),
            },
            delay_seconds: 0,
            exceptions: Vec::new(),
            starts_at: None,
            ends_at: None,
        },
        audience: Default::default(),
        conversions: Vec::new(),
        settings: Settings::default(),
    };
    let now = Utc::now();
    let created = campaign::create_campaign(db, ws, input, now)
        .await
        .expect("create the listening campaign");
    campaign::launch_campaign(db, ws, &created.id, now)
        .await
        .expect("launch the listening campaign");
}

async fn segment_count(backend: &str, dir: &std::path::Path) {
    let Some((db, _)) = database(backend, &dir.join("segment")).await else {
        return;
    };
    if backend.starts_with("sqlite") {
        migrations_up(&db).await;
    }
    let profiles: usize = env("HERALD_BENCH_PROFILES", 1_000_000);
    let ws = WorkspaceId::generate();
    let now = Utc::now();
    let seeding = Instant::now();
    let txn = db.begin().await.unwrap();
    let mut rows = Vec::with_capacity(500);
    let mut events = Vec::with_capacity(500);
    for i in 0..profiles {
        let id = uuid_like(i);
        let plan = ["pro", "free", "team"][i % 3];
        rows.push(profile::ActiveModel {
            workspace_id: Set(ws.to_string()),
            id: Set(id.clone()),
            external_id: Set(Some(format!("user-{i}"))),
            email: Set(Some(format!("user-{i}@example.com"))),
            phone: Set(None),
            first_name: Set(Some("Ada".into())),
            last_name: Set(None),
            gender: Set(None),
            date_of_birth: Set(None),
            country: Set(Some(["FR", "US", "DE", "JP"][i % 4].into())),
            home_city: Set(None),
            language: Set(None),
            time_zone: Set(None),
            custom_attributes: Set(json!({ "plan": plan, "visits": i % 50 }).to_string()),
            created_at: Set(now),
            updated_at: Set(now),
        });
        // One profile in five checked out, some of them long ago.
        if i % 5 == 0 {
            let days = if i % 10 == 0 { 2 } else { 30 };
            events.push(profile_event::ActiveModel {
                workspace_id: Set(ws.to_string()),
                id: Set(uuid_like(profiles + i)),
                profile_id: Set(id),
                name: Set("checkout".into()),
                time: Set(now - TimeDelta::days(days)),
                properties: Set("{}".into()),
                created_at: Set(now),
            });
        }
        if rows.len() == 500 {
            profile::Entity::insert_many(std::mem::take(&mut rows))
                .exec_without_returning(&txn)
                .await
                .unwrap();
        }
        if events.len() == 500 {
            profile_event::Entity::insert_many(std::mem::take(&mut events))
                .exec_without_returning(&txn)
                .await
                .unwrap();
        }
    }
    if !rows.is_empty() {
        profile::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    if !events.is_empty() {
        profile_event::Entity::insert_many(events)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    if backend == "postgres" {
        db.execute_unprepared("ANALYZE").await.unwrap();
    }
    let seeded = seeding.elapsed();

    let filter: Filter = serde_json::from_value(json!({
        "kind": "and",
        "filters": [
            {"kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro"},
            {"kind": "event", "name": "checkout", "comparison": "at_least", "count": 1, "days": 7}
        ]
    }))
    .expect("a valid filter");
    let mut timings = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        let started = Instant::now();
        size = domain::segment::count(&db, &ws, &filter, Utc::now())
            .await
            .unwrap();
        timings.push(started.elapsed());
    }
    timings.sort();
    let simple: Filter = serde_json::from_value(json!({"kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro"})).unwrap();
    let started = Instant::now();
    let pro = domain::segment::count(&db, &ws, &simple, Utc::now())
        .await
        .unwrap();
    let simple_time = started.elapsed();
    println!(
        "segment count [{backend}]: {profiles} profiles (seeded in {:.1} s); \"plan equals pro AND checkout at least once in 7 days\" = {size} users, median of 3 in {:.0} ms (min {:.0} ms); \"plan equals pro\" = {pro} in {:.0} ms; peak RSS {:.0} MiB",
        seeded.as_secs_f64(),
        ms(timings[1]),
        ms(timings[0]),
        ms(simple_time),
        peak_rss_mib()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn migrations_up(db: &DatabaseConnection) {
    use migrations::MigratorTrait;
    migrations::Migrator::up(db, None).await.expect("migrate");
}

/// A UUID-shaped id whose leading hex digits vary, as random ids' do.
fn uuid_like(i: usize) -> String {
    let mixed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        mixed >> 32,
        (mixed >> 16) & 0xffff,
        i & 0xfff,
        (i >> 12) & 0xfff,
        i
    )
}

fn main() {
    // `HERALD_BENCH_LOG=warn` (or any filter) shows the server's logs, e.g. why a request failed.
    if let Ok(filter) = std::env::var("HERALD_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let backends: String = env(
        "HERALD_BENCH_BACKENDS",
        "sqlite,sqlite-normal,postgres".to_string(),
    );
    let backends: Vec<&str> = backends.split(',').map(str::trim).collect();
    if backends.len() > 1 {
        // One process per backend: a server's engine and scheduler keep running after its run
        // (working off the event inbox, say) and would otherwise slow the next backend down.
        for backend in backends {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(std::env::args().skip(1))
                .env("HERALD_BENCH_BACKENDS", backend)
                .status()
                .expect("run the benchmark for one backend");
            assert!(status.success(), "the {backend} benchmark failed");
        }
        return;
    }
    runtime.block_on(async {
        for backend in backends {
            let dir = std::env::temp_dir().join(format!(
                "herald-audience-bench-{}-{backend}",
                std::process::id()
            ));
            std::fs::create_dir_all(dir.join("segment")).unwrap();
            ingestion(backend, &dir).await;
            // Durability settings do not change a read-only count.
            if backend != "sqlite-normal" {
                segment_count(backend, &dir).await;
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    });
}
