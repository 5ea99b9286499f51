//! The scheduler loop over a real database (SQLite, and PostgreSQL with TEST_DATABASE_URL): a tick
//! fires due campaigns at the injected clock's time and wakes the dispatcher; the loop stops on
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use domain::campaign::{
    self, AudienceSpec, CampaignInput, CampaignKind, Delivery, Recurrence, Schedule, Settings,
    Variant,
};
use domain::entity::webhook_send;
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{ManualClock, WorkspaceId};
use engine::scheduler::Scheduler;
use migrations::testing::test_databases;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tokio::sync::Notify;

fn daily_campaign() -> CampaignInput {
    CampaignInput {
        name: "Morning digest".into(),
        description: String::new(),
        tags: Vec::new(),
        kind: CampaignKind::Webhook,
        variants: vec![Variant {
            id: None,
            name: "Only".into(),
            percent: 100,
            message: Some(WebhookMessage {
                method: Method::Post,
                url: "https://hooks.example.com/digest".into(),
                headers: Vec::new(),
                body: Body::Raw {
                    text: "{{${first_name}}}".into(),
                },
            }),
        }],
        control_percent: 0,
        delivery: Delivery::Scheduled {
            schedule: Schedule::At {
                starts_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                time: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
                recurrence: Recurrence::Daily { every: 1 },
                ends_on: None,
                time_zone: "Europe/Paris".into(),
                in_local_time: false,
            },
        },
        audience: AudienceSpec::default(),
        conversions: Vec::new(),
        settings: Settings {
            reeligible_after_seconds: Some(0),
            ..Settings::default()
        },
    }
}

/// Whether `notify` holds a wake-up (without waiting for one).
async fn woken(notify: &Notify) -> bool {
    tokio::time::timeout(Duration::ZERO, notify.notified())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_tick_fires_what_is_due_at_the_clocks_time_and_wakes_the_dispatcher() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let launch = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
        let users = json!({"attributes": [
            {"external_id": "ada", "first_name": "Ada"},
            {"external_id": "bob", "first_name": "Bob"},
        ]});
        domain::profile::track(&db, &ws, &users, launch)
            .await
            .unwrap();
        let draft = campaign::create_campaign(&db, &ws, daily_campaign(), launch)
            .await
            .unwrap();
        campaign::launch_campaign(&db, &ws, &draft.id, launch)
            .await
            .unwrap();

        let clock = ManualClock::new(launch);
        let wake = Arc::new(Notify::new());
        let scheduler = Scheduler::new(db.clone(), Arc::new(clock.clone()), wake.clone());
        let sends = || {
            webhook_send::Entity::find()
                .filter(webhook_send::Column::SourceId.eq(draft.id.as_str()))
                .count(&db)
        };

        assert_eq!(scheduler.tick().await.unwrap(), 0);
        assert_eq!(sends().await.unwrap(), 0);
        assert!(!woken(&wake).await, "nothing queued, nobody woken");

        // 07:00 in Paris on 1 December is 06:00 UTC.
        clock.advance(Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap() - launch);
        assert_eq!(scheduler.tick().await.unwrap(), 1);
        assert_eq!(sends().await.unwrap(), 2);
        assert!(woken(&wake).await);
        assert_eq!(scheduler.tick().await.unwrap(), 0);

        clock.advance(chrono::Duration::days(1));
        assert_eq!(scheduler.tick().await.unwrap(), 1);
        assert_eq!(sends().await.unwrap(), 4);
    }
}

#[tokio::test]
async fn the_loop_stops_when_shutdown_resolves() {
    let db = migrations::testing::fresh_sqlite().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap());
    let scheduler = Scheduler::new(db, Arc::new(clock), Arc::new(Notify::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    stop.send(()).unwrap();
    running.await.unwrap();
}
