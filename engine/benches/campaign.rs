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

use chrono::Utc;
use domain::campaign::{self, CampaignInput, CampaignKind, Delivery, Schedule, Settings, Variant};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{SystemClock, WorkspaceId};
use support::{Engine, Scratch, env, peak_rss_mib, seed};

mod support;

fn main() {
    support::main(run);
}

async fn run(sink: std::net::SocketAddr, received: Arc<AtomicUsize>) {
    let profiles = env("HERALD_BENCH_PROFILES", 1_000_000);
    let scratch = Scratch::open("campaign").await;
    let db = &scratch.db;
    let ws = WorkspaceId::generate();
    seed(db, &ws, profiles, "profiles").await;

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
    let created = campaign::create_campaign(db, &ws, input, Utc::now())
        .await
        .expect("create the campaign");

    let (engine, _) = Engine::start(db, Arc::new(SystemClock));

    let launched = Instant::now();
    campaign::launch_campaign(db, &ws, &created.id, Utc::now())
        .await
        .expect("launch");
    let mut queued_at = None;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = received.load(Ordering::Relaxed);
        if queued_at.is_none() {
            let progress = campaign::progress(db, &ws, &created.id, None)
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
    engine.stop().await;
    let progress = campaign::progress(db, &ws, &created.id, None)
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
        peak_rss_mib(),
        durability = scratch.durability,
    );
    scratch.remove();
}
