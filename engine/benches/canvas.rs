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

use chrono::{DateTime, TimeDelta, Utc};
use domain::campaign::AudienceSpec;
use domain::canvas::{
    self, CanvasInput, CanvasSettings, CanvasTarget, CanvasTriggerRequest, CanvasVariant,
    Definition, DelaySpec, Entry, ExitCriteria, Step, StepId, StepKind,
};
use domain::entity::{canvas_journey, webhook_send};
use domain::segment::{Comparison, Filter};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{Clock, WorkspaceId};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use support::{Engine, Scratch, env, peak_rss_mib, seed};

mod support;

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
    support::main(run);
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
        conversions: Vec::new(),
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
    let scratch = Scratch::open("canvas").await;
    let db = &scratch.db;
    let ws = WorkspaceId::generate();
    seed(db, &ws, users, "users").await;

    let clock = Arc::new(JumpClock::default());
    let input = CanvasInput {
        name: "Benchmark".into(),
        description: String::new(),
        tags: Vec::new(),
        definition: definition(sink),
    };
    let created = canvas::create_canvas(db, &ws, input, clock.now())
        .await
        .expect("create the Canvas");
    let live = canvas::launch_canvas(db, &ws, &created.id, clock.now())
        .await
        .expect("launch the Canvas");

    let (engine, stats) = Engine::start(&scratch, clock.clone()).await;

    let started = Instant::now();
    let request = CanvasTriggerRequest {
        target: CanvasTarget::Broadcast { audience: None },
        context: json!({"source": "bench"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let outcome = canvas::trigger_canvas(db, &ws, &live.id, request, clock.now())
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
            .count(db)
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
                .count(db)
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
    engine.stop().await;

    let delivered = webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Status.eq("delivered"))
        .count(db)
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
        peak_rss_mib(),
        durability = scratch.durability,
    );
    scratch.remove();
}
