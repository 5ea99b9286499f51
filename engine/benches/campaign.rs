//! The campaign benchmark: a scheduled campaign sent at launch to every profile of a workspace
//! (1,000,000 by default) on a SQLite file, delivered by this process's scheduler and dispatcher to
//! a local sink. Reports the time from launch to the last delivery and the peak RSS. See
//! BENCHMARKS.md for the figures.
//!
//! `cargo bench -p engine --bench campaign`. Knobs (environment, optional):
//! `HERALD_BENCH_PROFILES` (1000000), `HERALD_BENCH_CONCURRENCY` (512), `HERALD_BENCH_PER_HOST`
//! (512), `HERALD_BENCH_BATCH` (1024), `HERALD_BENCH_SYNCHRONOUS` (`full` or `normal`; `full`),
//! `HERALD_BENCH_NO_READER=1` (the scheduler reads through the writing connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::campaign::{self, CampaignInput, CampaignKind, Delivery, Schedule, Settings, Variant};
use domain::entity::campaign_occurrence;
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{SystemClock, WorkspaceId};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
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

    let (engine, _) = Engine::start(&scratch, Arc::new(SystemClock)).await;

    let launched = Instant::now();
    campaign::launch_campaign(db, &ws, &created.id, Utc::now())
        .await
        .expect("launch");
    let mut queued_at = None;
    let mut delivered_when_queued = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = received.load(Ordering::Relaxed);
        // Everything is queued when the launch's occurrence is done. Read by key: counting the
        // campaign's sends here would scan up to a million rows on the one SQLite connection the
        // engine writes through, every 50 ms, and slow down what is measured.
        if queued_at.is_none() {
            let finished = campaign_occurrence::Entity::find()
                .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
                .filter(campaign_occurrence::Column::CampaignId.eq(created.id.as_str()))
                .filter(campaign_occurrence::Column::Status.eq("done"))
                .one(db)
                .await
                .expect("read the occurrence");
            if finished.is_some() {
                queued_at = Some(launched.elapsed());
                delivered_when_queued = done;
            }
        }
        if done >= profiles
            || (queued_at.is_some() && std::env::var_os("HERALD_BENCH_NO_DISPATCH").is_some())
        {
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
        "campaign [sqlite-{durability}]: {profiles} profiles, launch to last delivery {:.1} s ({:.0} deliveries/s), all queued after {:.1} s ({delivered_when_queued} delivered by then); recorded delivered {} failed {} pending {}; peak RSS {:.0} MiB",
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
