//! Canvas conversion events on a freshly migrated database (SQLite always, PostgreSQL too when
//! TEST_DATABASE_URL is set): the launch checks of the conversion events, and the conversions the
//! analytics count per Canvas, per step and over time. Time comes from a manual clock that the
//! tests move; nothing sleeps.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::campaign::{Bucket, Conversion, Trigger};
use domain::canvas::{
    self, Canvas, CanvasInput, CanvasRecipient, CanvasSettings, CanvasStats, CanvasTarget,
    CanvasTriggerRequest, CanvasVariant, ConversionPoint, Definition, DelaySpec, Entry,
    ExitCriteria, Step, StepId, StepKind,
};
use domain::clock::{Clock, ManualClock};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{DomainError, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::DatabaseConnection;
use serde_json::{Map, json};

mod common;

use common::{field_of, now, track, users};

const DAY: u64 = 86_400;

fn next(id: &str) -> Option<StepId> {
    Some(StepId(id.into()))
}

fn send(id: &str, then: Option<StepId>) -> Step {
    Step {
        id: StepId(id.into()),
        name: format!("Step {id}"),
        kind: StepKind::Message {
            message: WebhookMessage {
                method: Method::Post,
                url: format!("https://hooks.example.com/{id}"),
                headers: Vec::new(),
                body: Body::Raw {
                    text: "{{${user_id}}}".into(),
                },
            },
            next: then,
        },
    }
}

fn wait(id: &str, seconds: u64, then: Option<StepId>) -> Step {
    Step {
        id: StepId(id.into()),
        name: format!("Step {id}"),
        kind: StepKind::Delay {
            delay: DelaySpec::For { seconds },
            next: then,
        },
    }
}

fn custom_event(name: &str) -> Trigger {
    Trigger::CustomEvent {
        name: name.into(),
        property_filters: Vec::new(),
    }
}

fn purchase(product: Option<&str>) -> Trigger {
    Trigger::Purchase {
        product_id: product.map(str::to_owned),
    }
}

fn conversion(trigger: Trigger, window_seconds: u64) -> Conversion {
    Conversion {
        trigger,
        window_seconds,
    }
}

/// An API-triggered Canvas starting at `first`.
fn definition(conversions: Vec<Conversion>, first: &str, steps: Vec<Step>) -> Definition {
    Definition {
        entry: Entry::Api,
        audience: Default::default(),
        exit: ExitCriteria::default(),
        settings: CanvasSettings::default(),
        variants: vec![CanvasVariant {
            id: None,
            name: "Main".into(),
            percent: 100,
            first_step: next(first),
        }],
        control_percent: 0,
        conversions,
        steps,
    }
}

fn input(definition: Definition) -> CanvasInput {
    CanvasInput {
        name: "Upgrade nudge".into(),
        description: String::new(),
        tags: Vec::new(),
        definition,
    }
}

async fn launched(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    definition: Definition,
    at: DateTime<Utc>,
) -> Canvas {
    let draft = canvas::create_canvas(db, ws, input(definition), at)
        .await
        .unwrap();
    canvas::launch_canvas(db, ws, &draft.id, at).await.unwrap()
}

/// Enters the listed users at the clock's time and runs their journeys as far as they go.
async fn enter(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &Canvas,
    ids: &[&str],
    clock: &ManualClock,
) {
    let request = CanvasTriggerRequest {
        target: CanvasTarget::Recipients {
            recipients: ids
                .iter()
                .map(|id| CanvasRecipient {
                    external_user_id: (*id).into(),
                    context: Map::new(),
                    send_to_existing_only: true,
                    attributes: None,
                })
                .collect(),
        },
        context: Map::new(),
    };
    canvas::trigger_canvas(db, ws, &canvas.id, request, clock.now())
        .await
        .unwrap();
    advance(db, clock).await;
}

async fn advance(db: &DatabaseConnection, clock: &ManualClock) {
    canvas::advance_due(db, clock.now(), 1000).await.unwrap();
}

/// `user` performs the custom event `name` at the clock's time.
async fn perform(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    user: &str,
    name: &str,
    clock: &ManualClock,
) {
    let at = clock.now();
    let body = json!({"events": [{"external_id": user, "name": name, "time": at.to_rfc3339()}]});
    track(db, ws, body, at).await;
}

/// `user` buys `product` at the clock's time.
async fn buy(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    user: &str,
    product: &str,
    clock: &ManualClock,
) {
    let at = clock.now();
    let body = json!({"purchases": [{
        "external_id": user, "product_id": product, "currency": "EUR", "price": 9.5,
        "time": at.to_rfc3339(),
    }]});
    track(db, ws, body, at).await;
}

async fn stats(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &Canvas,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
) -> CanvasStats {
    canvas::canvas_stats(db, ws, &canvas.id, since, until, bucket)
        .await
        .unwrap()
}

/// Each step's `converted`, in the definition's order.
fn converted(stats: &CanvasStats) -> Vec<(&str, u64)> {
    stats
        .steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.converted))
        .collect()
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

#[tokio::test]
async fn a_journey_converts_once_within_its_window_and_every_step_entered_before_counts_it() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let clock = ManualClock::new(now());
        let t0 = clock.now();
        users(
            &db,
            &ws,
            &[
                ("ada", "free"),
                ("bob", "free"),
                ("cy", "free"),
                ("dan", "free"),
                ("eve", "free"),
            ],
        )
        .await;
        // welcome → wait a day → follow-up; converting means upgrading within 2 days.
        let c = launched(
            &db,
            &ws,
            definition(
                vec![conversion(custom_event("upgrade"), 2 * DAY)],
                "welcome",
                vec![
                    send("welcome", next("wait")),
                    wait("wait", DAY, next("follow-up")),
                    send("follow-up", None),
                ],
            ),
            t0,
        )
        .await;
        // Before entering: does not count.
        clock.advance(Duration::hours(-1));
        perform(&db, &ws, "dan", "upgrade", &clock).await;
        clock.advance(Duration::hours(1));
        enter(&db, &ws, &c, &["ada", "bob", "cy", "dan"], &clock).await;

        clock.advance(Duration::hours(1));
        perform(&db, &ws, "ada", "upgrade", &clock).await;
        // Another event, and a user who never entered: nothing.
        perform(&db, &ws, "bob", "browse", &clock).await;
        perform(&db, &ws, "eve", "upgrade", &clock).await;
        clock.advance(Duration::hours(1));
        perform(&db, &ws, "cy", "upgrade", &clock).await;

        // A day after entry everyone reaches the follow-up.
        clock.advance(Duration::hours(22));
        advance(&db, &clock).await;
        clock.advance(Duration::hours(1));
        // Ada upgrades again, after reaching the follow-up and still within her window.
        perform(&db, &ws, "ada", "upgrade", &clock).await;
        // Three days after entry: past the window.
        clock.advance(Duration::hours(47));
        perform(&db, &ws, "bob", "upgrade", &clock).await;

        let since = t0 - Duration::days(1);
        let until = t0 + Duration::days(4);
        let daily = stats(&db, &ws, &c, since, until, Bucket::Day).await;
        assert_eq!(daily.entries, 4);
        assert_eq!(daily.conversions, 2, "Ada once, however often, and Cy");
        let steps: Vec<(&str, u64)> = daily
            .steps
            .iter()
            .map(|s| (s.step_id.as_str(), s.entered))
            .collect();
        assert_eq!(steps, [("welcome", 4), ("wait", 4), ("follow-up", 4)]);
        // Cy converted before reaching the follow-up; Ada again after it.
        assert_eq!(
            converted(&daily),
            [("welcome", 2), ("wait", 2), ("follow-up", 1)]
        );
        assert_eq!(
            daily.conversion_series,
            [ConversionPoint {
                time: at(2026, 11, 28, 0),
                conversions: 2,
                conversions_by_entry_time: 2,
            }]
        );

        // By hour: both entered at 09:00; Ada first converted at 10:00, Cy at 11:00.
        let hourly = stats(&db, &ws, &c, since, until, Bucket::Hour).await;
        assert_eq!(
            hourly.conversion_series,
            [
                ConversionPoint {
                    time: at(2026, 11, 28, 9),
                    conversions: 0,
                    conversions_by_entry_time: 2,
                },
                ConversionPoint {
                    time: at(2026, 11, 28, 10),
                    conversions: 1,
                    conversions_by_entry_time: 0,
                },
                ConversionPoint {
                    time: at(2026, 11, 28, 11),
                    conversions: 1,
                    conversions_by_entry_time: 0,
                },
            ]
        );

        // A later period: no entries and no first conversion in it, but the follow-up was
        // entered in it and Ada converted after that.
        let later = stats(&db, &ws, &c, t0 + Duration::days(1), until, Bucket::Day).await;
        assert_eq!((later.entries, later.conversions), (0, 0));
        assert!(later.conversion_series.is_empty());
        assert_eq!(
            converted(&later),
            [("welcome", 0), ("wait", 0), ("follow-up", 1)]
        );
    }
}

#[tokio::test]
async fn only_the_primary_conversion_counts_and_is_read_again_after_an_edit() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let clock = ManualClock::new(now());
        users(
            &db,
            &ws,
            &[("ada", "free"), ("bob", "free"), ("cy", "free")],
        )
        .await;
        let steps = vec![send("welcome", None)];
        let c = launched(
            &db,
            &ws,
            definition(
                vec![
                    conversion(purchase(Some("pro-plan")), DAY),
                    conversion(custom_event("upgrade"), DAY),
                ],
                "welcome",
                steps.clone(),
            ),
            clock.now(),
        )
        .await;
        enter(&db, &ws, &c, &["ada", "bob", "cy"], &clock).await;
        clock.advance(Duration::hours(1));
        buy(&db, &ws, "ada", "pro-plan", &clock).await;
        // The second conversion event is not the primary one.
        perform(&db, &ws, "bob", "upgrade", &clock).await;
        buy(&db, &ws, "cy", "socks", &clock).await;

        let (since, until) = (now() - Duration::days(1), now() + Duration::days(2));
        let figures = stats(&db, &ws, &c, since, until, Bucket::Day).await;
        assert_eq!(figures.conversions, 1);
        assert_eq!(converted(&figures), [("welcome", 1)]);

        // Any purchase as the primary event: the past is read under the new rule.
        let edit = input(definition(
            vec![conversion(purchase(None), DAY)],
            "welcome",
            steps,
        ));
        canvas::update_canvas(&db, &ws, &c.id, edit, None, clock.now())
            .await
            .unwrap();
        let figures = stats(&db, &ws, &c, since, until, Bucket::Day).await;
        assert_eq!(figures.conversions, 2);
        assert_eq!(converted(&figures), [("welcome", 2)]);

        // Without a conversion event nothing converts.
        let edit = input(definition(
            Vec::new(),
            "welcome",
            vec![send("welcome", None)],
        ));
        canvas::update_canvas(&db, &ws, &c.id, edit, None, clock.now())
            .await
            .unwrap();
        let figures = stats(&db, &ws, &c, since, until, Bucket::Day).await;
        assert_eq!(figures.conversions, 0);
        assert_eq!(converted(&figures), [("welcome", 0)]);
        assert!(figures.conversion_series.is_empty());
    }
}

#[tokio::test]
async fn conversion_events_are_checked_before_launch_and_name_their_field() {
    let mut bad = definition(
        vec![
            conversion(custom_event(" "), DAY),
            conversion(custom_event("upgrade"), 0),
            conversion(custom_event("upgrade"), 31 * DAY),
            conversion(purchase(Some("")), DAY),
            conversion(purchase(None), DAY),
        ],
        "welcome",
        vec![send("welcome", None)],
    );
    let fields: Vec<String> = canvas::problems(&bad)
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(
        fields,
        [
            "conversions",
            "conversions[0].trigger.name",
            "conversions[1].window_seconds",
            "conversions[2].window_seconds",
            "conversions[3].trigger.product_id",
        ]
    );
    bad.conversions.truncate(1);
    assert_eq!(
        canvas::problems(&bad)
            .into_iter()
            .map(|p| p.field)
            .collect::<Vec<_>>(),
        ["conversions[0].trigger.name"]
    );

    // A definition saved before conversion events existed reads with none.
    let mut stored = serde_json::to_value(definition(
        Vec::new(),
        "welcome",
        vec![send("welcome", None)],
    ))
    .unwrap();
    stored.as_object_mut().unwrap().remove("conversions");
    let read: Definition = serde_json::from_value(stored).unwrap();
    assert!(read.conversions.is_empty());

    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let draft = canvas::create_canvas(&db, &ws, input(bad.clone()), now())
            .await
            .unwrap();
        assert_eq!(
            draft.draft.conversions, bad.conversions,
            "a draft keeps them"
        );
        let refused = canvas::launch_canvas(&db, &ws, &draft.id, now()).await;
        assert_eq!(field_of(refused), "conversions");

        let good = definition(
            vec![conversion(custom_event("upgrade"), 3 * DAY)],
            "welcome",
            vec![send("welcome", None)],
        );
        let live = launched(&db, &ws, good.clone(), now()).await;
        assert_eq!(live.draft.conversions, good.conversions);
        // A live edit must be free of problems, conversion events included.
        let refused =
            canvas::update_canvas(&db, &ws, &live.id, input(bad.clone()), None, now()).await;
        assert!(matches!(refused, Err(DomainError::Invalid { .. })));
        assert_eq!(field_of(refused), "conversions");
    }
}
