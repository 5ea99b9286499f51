//! `/canvas/trigger/schedule/*` in users' local time, on a freshly migrated database (SQLite
//! always, PostgreSQL too when TEST_DATABASE_URL is set): the schedule is claimed when its wall
//! time first comes somewhere (UTC+14), every recipient enters then with the schedule's context,
//! and each journey's first Message waits for the wall time in the user's zone (theirs, else the
//! Canvas's), or runs at once where it has passed. Entry rules apply as for any entry, and a
//! schedule enters no one twice. Time is always the `now` each call is given.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::campaign::{self, ScheduledKind};
use domain::canvas::{
    self, Canvas, CanvasInput, CanvasRecipient, CanvasSettings, CanvasTarget, CanvasTriggerRequest,
    CanvasVariant, Definition, Entry, ExitCriteria, Step, StepId, StepKind,
};
use domain::entity::{canvas_journey, webhook_send};
use domain::template::RenderContext;
use domain::webhook::{self, Body, Method, Rendered, WebhookMessage};
use domain::{ScheduleId, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Map, json};

mod common;

use common::{field_of, now, plan_is, props, track};

/// An API-triggered Canvas whose only step is a webhook naming the user and the entry's coupon;
/// users without a time zone of their own read wall times in Paris (UTC+1 in November).
fn coupon_canvas() -> Definition {
    Definition {
        entry: Entry::Api,
        audience: Default::default(),
        exit: ExitCriteria::default(),
        settings: CanvasSettings {
            time_zone: Some("Europe/Paris".into()),
            ..CanvasSettings::default()
        },
        variants: vec![CanvasVariant {
            id: None,
            name: "Main".into(),
            percent: 100,
            first_step: Some(StepId("hello".into())),
        }],
        control_percent: 0,
        conversions: Vec::new(),
        steps: vec![Step {
            id: StepId("hello".into()),
            name: "Coupon".into(),
            kind: StepKind::Message {
                message: WebhookMessage {
                    method: Method::Post,
                    url: "https://hooks.example.com/hello".into(),
                    headers: Vec::new(),
                    body: Body::Raw {
                        text: "{{${user_id}}} {{canvas_entry_properties.${coupon}}}".into(),
                    },
                },
                next: None,
            },
        }],
    }
}

async fn launched(db: &DatabaseConnection, ws: &WorkspaceId, definition: Definition) -> Canvas {
    let input = CanvasInput {
        name: "Coupons".into(),
        description: String::new(),
        tags: Vec::new(),
        definition,
    };
    let draft = canvas::create_canvas(db, ws, input, now()).await.unwrap();
    canvas::launch_canvas(db, ws, &draft.id, now())
        .await
        .unwrap()
}

/// Users in Tokyo (UTC+9), Bogotá (UTC−5) and one without a zone (the Canvas's: Paris), all on
/// the `pro` plan, and one `free` user in Tokyo.
async fn zoned_users(db: &DatabaseConnection, ws: &WorkspaceId) {
    track(
        db,
        ws,
        json!({"attributes": [
            {"external_id": "tokyo", "time_zone": "Asia/Tokyo", "plan": "pro"},
            {"external_id": "bogota", "time_zone": "America/Bogota", "plan": "pro"},
            {"external_id": "paris", "plan": "pro"},
            {"external_id": "free", "time_zone": "Asia/Tokyo", "plan": "free"},
        ]}),
        now(),
    )
    .await;
}

fn recipient(id: &str) -> CanvasRecipient {
    CanvasRecipient {
        external_user_id: id.into(),
        context: Map::new(),
        send_to_existing_only: true,
        attributes: None,
    }
}

fn entry(canvas: &Canvas, target: CanvasTarget, coupon: &str) -> ScheduledKind {
    ScheduledKind::CanvasTrigger {
        canvas_id: canvas.id.clone(),
        request: CanvasTriggerRequest {
            target,
            context: props(json!({ "coupon": coupon })),
        },
    }
}

async fn run(db: &DatabaseConnection, at: DateTime<Utc>) -> usize {
    campaign::run_due_scheduled(db, at, 10).await.unwrap()
}

async fn advance(db: &DatabaseConnection, at: DateTime<Utc>) -> usize {
    canvas::advance_due(db, at, 1000).await.unwrap()
}

async fn journeys(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<canvas_journey::Model> {
    canvas_journey::Entity::find()
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(canvas_journey::Column::WakeAt)
        .all(db)
        .await
        .unwrap()
}

/// The rendered body of every send, in the order they were queued, with the time each is due.
async fn sent(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<(String, DateTime<Utc>)> {
    webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(webhook_send::Column::CreatedAt)
        .order_by_asc(webhook_send::Column::Recipient)
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|send| {
            let message: WebhookMessage = serde_json::from_str(&send.message).unwrap();
            let context: RenderContext = serde_json::from_str(&send.context).unwrap();
            let body = match webhook::render(&message, &context).unwrap() {
                Rendered::Request(request) => request.body.unwrap_or_default(),
                Rendered::Aborted(_) => "<aborted>".into(),
            };
            (body, send.next_attempt_at)
        })
        .collect()
}

async fn status_of(db: &DatabaseConnection, ws: &WorkspaceId, id: &ScheduleId) -> String {
    campaign::find_scheduled(db, ws, id).await.unwrap().status
}

#[tokio::test]
async fn a_local_time_canvas_schedule_sends_each_users_first_message_at_the_wall_time_in_their_zone()
 {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        zoned_users(&db, &ws).await;
        let mut definition = coupon_canvas();
        // Re-entry at any time: only the schedule itself keeps a user from entering twice.
        definition.settings.reentry_after_seconds = Some(0);
        let canvas = launched(&db, &ws, definition).await;
        // 2026-11-29 at 10:00 wherever the user is, to three listed users.
        let wall = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let target = CanvasTarget::Recipients {
            recipients: vec![recipient("tokyo"), recipient("bogota"), recipient("paris")],
        };
        let scheduled = campaign::create_scheduled(
            &db,
            &ws,
            entry(&canvas, target, "WINTER"),
            wall,
            true,
            now(),
        )
        .await
        .unwrap();
        assert!(scheduled.in_local_time);

        // Claimed when 10:00 first comes somewhere (UTC+14), not before; two runners at once
        // carry it out once.
        let first_zone = wall - Duration::hours(14);
        assert_eq!(run(&db, first_zone - Duration::minutes(1)).await, 0);
        assert!(journeys(&db, &ws).await.is_empty());
        let (a, b) = tokio::join!(
            campaign::run_due_scheduled(&db, first_zone, 10),
            campaign::run_due_scheduled(&db, first_zone, 10)
        );
        assert_eq!(a.unwrap() + b.unwrap(), 1);
        assert_eq!(status_of(&db, &ws, &scheduled.schedule_id).await, "done");

        // Everyone entered then; each first step waits for 10:00 in the user's zone.
        let tokyo = Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap();
        let paris = Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap();
        let bogota = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let entered = journeys(&db, &ws).await;
        assert_eq!(
            entered
                .iter()
                .map(|j| (j.status.as_str(), j.entered_at, j.wake_at))
                .collect::<Vec<_>>(),
            [
                ("active", first_zone, Some(tokyo)),
                ("active", first_zone, Some(paris)),
                ("active", first_zone, Some(bogota)),
            ]
        );
        assert_eq!(advance(&db, first_zone).await, 0);
        assert!(sent(&db, &ws).await.is_empty());

        let mut expected = Vec::new();
        for (user, due) in [("tokyo", tokyo), ("paris", paris), ("bogota", bogota)] {
            // Nothing a second before; the schedule is not carried out again.
            assert_eq!(advance(&db, due - Duration::seconds(1)).await, 0, "{user}");
            assert_eq!(sent(&db, &ws).await, expected, "{user}");
            assert_eq!(run(&db, due).await, 0);
            assert_eq!(advance(&db, due).await, 1, "{user}");
            expected.push((format!("{user} WINTER"), due));
            assert_eq!(sent(&db, &ws).await, expected, "{user}");
        }
        // A day later: still one journey each, all finished, and nothing more to send.
        let later = wall + Duration::days(1);
        assert_eq!(run(&db, later).await, 0);
        assert_eq!(advance(&db, later).await, 0);
        let journeys = journeys(&db, &ws).await;
        assert_eq!(journeys.len(), 3);
        assert!(journeys.iter().all(|j| j.status == "finished"));
        assert_eq!(sent(&db, &ws).await, expected);
    }
}

#[tokio::test]
async fn a_local_time_canvas_broadcast_enters_the_audience_and_sends_at_once_where_the_time_has_passed()
 {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        zoned_users(&db, &ws).await;
        let mut definition = coupon_canvas();
        definition.audience.filter = Some(plan_is("pro"));
        // A user enters once.
        definition.settings.reentry_after_seconds = None;
        let canvas = launched(&db, &ws, definition).await;
        // Paris entered an hour ago, at once (not in local time).
        let an_hour_ago = now() - Duration::hours(1);
        let listed = CanvasTriggerRequest {
            target: CanvasTarget::Recipients {
                recipients: vec![recipient("paris")],
            },
            context: props(json!({ "coupon": "EARLIER" })),
        };
        let outcome = canvas::trigger_canvas(&db, &ws, &canvas.id, listed, an_hour_ago)
            .await
            .unwrap();
        assert_eq!(outcome.entered, 1);
        assert_eq!(advance(&db, an_hour_ago).await, 1);

        // A wall time that has passed everywhere is refused.
        let broadcast = || CanvasTarget::Broadcast { audience: None };
        let everywhere = now().naive_utc() - Duration::hours(13);
        let refused = campaign::create_scheduled(
            &db,
            &ws,
            entry(&canvas, broadcast(), "LATE"),
            everywhere.and_utc(),
            true,
            now(),
        )
        .await;
        assert_eq!(field_of(refused), "schedule.time");

        // Scheduled at 12:00 UTC, then moved to 12:00 in each user's zone: it is already 18:00
        // in Tokyo, 10:00 in Paris and 04:00 in Bogotá.
        let wall = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let scheduled = campaign::create_scheduled(
            &db,
            &ws,
            entry(&canvas, broadcast(), "NOON"),
            wall,
            false,
            now(),
        )
        .await
        .unwrap();
        let moved = campaign::update_scheduled(
            &db,
            &ws,
            &scheduled.schedule_id,
            None,
            Some((wall, true)),
            now(),
        )
        .await
        .unwrap();
        assert!(moved.in_local_time);

        // Due at once (noon has come in the first zone); Tokyo's first step runs now.
        assert_eq!(run(&db, now()).await, 1);
        assert_eq!(run(&db, now()).await, 0);
        let entered = journeys(&db, &ws).await;
        // Paris's earlier journey (finished), then the two who entered now: the free user is
        // outside the entry audience, and Paris may not enter again.
        assert_eq!(entered.len(), 3);
        assert_eq!(advance(&db, now()).await, 1);
        let paris_noon = Utc.with_ymd_and_hms(2026, 11, 28, 11, 0, 0).unwrap();
        let bogota_noon = Utc.with_ymd_and_hms(2026, 11, 28, 17, 0, 0).unwrap();
        let mut expected = vec![
            ("paris EARLIER".to_owned(), an_hour_ago),
            ("tokyo NOON".to_owned(), now()),
        ];
        assert_eq!(sent(&db, &ws).await, expected);

        // Paris's noon passes with nothing for Paris; Bogotá's first step waits for its noon.
        assert_eq!(advance(&db, paris_noon).await, 0);
        assert_eq!(advance(&db, bogota_noon - Duration::seconds(1)).await, 0);
        assert_eq!(sent(&db, &ws).await, expected);
        assert_eq!(run(&db, bogota_noon).await, 0);
        assert_eq!(advance(&db, bogota_noon).await, 1);
        expected.push(("bogota NOON".to_owned(), bogota_noon));
        assert_eq!(sent(&db, &ws).await, expected);
        assert_eq!(journeys(&db, &ws).await.len(), 3);
    }
}
