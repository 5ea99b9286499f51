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
use engine::scheduler::{Scheduler, open_reader};
use migrations::testing::test_databases;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
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

/// A campaign to 2,500 users (three pages) whose audience is a regular-expression segment, read
/// through a reader of its own on a SQLite file: every matching user gets exactly one send and one
/// receipt, the reader has SQLite's REGEXP function, and it refuses writes.
#[tokio::test]
async fn a_reader_of_its_own_reads_the_audience_while_the_writer_writes_the_sends() {
    let db = migrations::testing::fresh_sqlite_file().await;
    let reads = open_reader(&db).await.unwrap();
    let refused = reads
        .execute_unprepared("DELETE FROM webhook_send")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("readonly"), "{refused}");

    let ws = WorkspaceId::generate();
    let launch = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
    // Every other user is called Ann…; the segment keeps those.
    let users: Vec<serde_json::Value> = (0..2500)
        .map(|n| {
            let name = if n % 2 == 0 { "Ann" } else { "Bob" };
            json!({"external_id": format!("u{n}"), "first_name": format!("{name}{n}")})
        })
        .collect();
    for chunk in users.chunks(75) {
        domain::profile::track(&db, &ws, &json!({ "attributes": chunk }), launch)
            .await
            .unwrap();
    }
    let mut input = daily_campaign();
    input.delivery = Delivery::Scheduled {
        schedule: Schedule::AtLaunch,
    };
    input.settings = Settings::default();
    input.audience = AudienceSpec {
        segment_ids: Vec::new(),
        filter: Some(
            serde_json::from_value(json!({"kind": "attribute", "name": "first_name",
                "comparison": "matches_regex", "value": "^Ann"}))
            .unwrap(),
        ),
    };
    let draft = campaign::create_campaign(&db, &ws, input, launch)
        .await
        .unwrap();
    campaign::launch_campaign(&db, &ws, &draft.id, launch)
        .await
        .unwrap();

    let clock = ManualClock::new(launch);
    let scheduler =
        Scheduler::new(db.clone(), Arc::new(clock), Arc::new(Notify::new())).with_reader(reads);
    assert_eq!(scheduler.tick().await.unwrap(), 1);

    let recipients: Vec<Option<String>> = webhook_send::Entity::find()
        .filter(webhook_send::Column::SourceId.eq(draft.id.as_str()))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|send| send.recipient)
        .collect();
    let unique: std::collections::HashSet<_> = recipients.iter().cloned().collect();
    assert_eq!(recipients.len(), 1250);
    assert_eq!(unique.len(), 1250, "nobody is sent twice");
    assert!(
        recipients
            .iter()
            .flatten()
            .all(|r| r[1..].parse::<u32>().unwrap() % 2 == 0)
    );
    let receipts = domain::entity::campaign_receipt::Entity::find()
        .filter(domain::entity::campaign_receipt::Column::CampaignId.eq(draft.id.as_str()))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(receipts, 1250);
    assert_eq!(scheduler.tick().await.unwrap(), 0, "the occurrence is done");
}

/// Where a second connection would see another database (in-memory SQLite) or is not needed
/// (PostgreSQL's pool), the reader is the writing connection itself.
#[tokio::test]
async fn without_a_file_the_reader_is_the_writing_connection() {
    for db in test_databases().await {
        let reads = open_reader(&db).await.unwrap();
        let ws = WorkspaceId::generate();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
        domain::profile::track(
            &db,
            &ws,
            &json!({"attributes": [{"external_id": "ada"}]}),
            now,
        )
        .await
        .unwrap();
        let seen = domain::entity::profile::Entity::find()
            .filter(domain::entity::profile::Column::WorkspaceId.eq(ws.as_str()))
            .count(&reads)
            .await
            .unwrap();
        assert_eq!(
            seen, 1,
            "the reader sees the rows written through the writer"
        );
    }
}
