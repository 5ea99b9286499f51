//! Canvas entry and the journey engine on a freshly migrated database (SQLite always, PostgreSQL
//! too when TEST_DATABASE_URL is set): API, action-based (custom event or purchase, within
//! starts_at/ends_at) and scheduled entries with their context, entry audiences by filter or
//! segment, whole-path variants and the control group, every kind of step (messages, including
//! one whose Liquid aborts; delays for a duration, until a date, until a weekday in the user's
//! zone; Decision Splits on filters or segments; Audience, Action and Experiment Paths; user
//! updates; context; Exit), exit criteria (events, filters, segments), re-entry and entry limits,
//! the Canvas's shared rate limit, live edits, crashes, events that cannot be applied (handled
//! again later) and concurrent engines. Time is always the `now` each call is given.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use domain::campaign::{self, AudienceSpec, Bucket, PropertyFilter, Recurrence, Schedule, Trigger};
use domain::canvas::{
    self, ActionPath, AudiencePath, Canvas, CanvasInput, CanvasRecipient, CanvasSettings,
    CanvasTarget, CanvasTriggerRequest, CanvasVariant, ContextVariable, Definition, DelaySpec,
    Entry, EntryLimit, ExitCriteria, ExperimentPath, LimitPeriod, Step, StepId, StepKind,
};
use domain::entity::{canvas_journey, canvas_occurrence, canvas_step_event, webhook_send};
use domain::profile;
use domain::segment::{self, Comparison, Filter};
use domain::template::RenderContext;
use domain::webhook::{self, Body, Method, Rendered, WebhookMessage};
use domain::{DomainError, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::{Map, Value, json};

mod common;

use common::{break_outbox_at, field_of, now, plan_is, props, repair_outbox, track, users};

fn next(id: &str) -> Option<StepId> {
    Some(StepId(id.into()))
}

/// A webhook whose body is `text` (Liquid), posted to a URL naming the step.
fn hook(name: &str, text: &str) -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: format!("https://hooks.example.com/{name}"),
        headers: Vec::new(),
        body: Body::Raw { text: text.into() },
    }
}

fn step(id: &str, kind: StepKind) -> Step {
    Step {
        id: StepId(id.into()),
        name: format!("Step {id}"),
        kind,
    }
}

fn send(id: &str, text: &str, then: Option<StepId>) -> Step {
    step(
        id,
        StepKind::Message {
            message: hook(id, text),
            next: then,
        },
    )
}

fn delay(id: &str, seconds: u64, then: Option<StepId>) -> Step {
    step(
        id,
        StepKind::Delay {
            delay: DelaySpec::For { seconds },
            next: then,
        },
    )
}

fn custom_event(name: &str) -> Trigger {
    Trigger::CustomEvent {
        name: name.into(),
        property_filters: Vec::new(),
    }
}

fn definition(entry: Entry, first: &str, steps: Vec<Step>) -> Definition {
    Definition {
        entry,
        audience: AudienceSpec::default(),
        exit: ExitCriteria::default(),
        settings: CanvasSettings::default(),
        variants: vec![CanvasVariant {
            id: None,
            name: "Main".into(),
            percent: 100,
            first_step: next(first),
        }],
        control_percent: 0,
        conversions: Vec::new(),
        steps,
    }
}

/// "signup → welcome webhook → delay 1 minute → decision split plan = pro → webhook A / B".
fn onboarding(entry: Entry) -> Definition {
    definition(
        entry,
        "welcome",
        vec![
            send("welcome", "welcome {{${user_id}}}", next("wait")),
            delay("wait", 60, next("split")),
            step(
                "split",
                StepKind::DecisionSplit {
                    segment_ids: Vec::new(),
                    filter: Some(plan_is("pro")),
                    yes: next("a"),
                    no: next("b"),
                },
            ),
            send("a", "pro {{${user_id}}}", None),
            send("b", "free {{${user_id}}}", None),
        ],
    )
}

async fn launched(db: &DatabaseConnection, ws: &WorkspaceId, definition: Definition) -> Canvas {
    let input = CanvasInput {
        name: "Onboarding".into(),
        description: String::new(),
        tags: Vec::new(),
        definition,
    };
    let draft = canvas::create_canvas(db, ws, input, now()).await.unwrap();
    let problems = canvas::problems(&draft.draft);
    assert!(problems.is_empty(), "{problems:?}");
    canvas::launch_canvas(db, ws, &draft.id, now())
        .await
        .unwrap()
}

async fn perform(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    user: &str,
    name: &str,
    properties: Value,
    at: DateTime<Utc>,
) {
    let body = json!({"events": [{
        "external_id": user, "name": name, "time": at.to_rfc3339(), "properties": properties,
    }]});
    track(db, ws, body, at).await;
}

fn recipient(id: &str, context: Value) -> CanvasRecipient {
    CanvasRecipient {
        external_user_id: id.into(),
        context: props(context),
        send_to_existing_only: true,
        attributes: None,
    }
}

fn listed(ids: &[&str]) -> CanvasTriggerRequest {
    CanvasTriggerRequest {
        target: CanvasTarget::Recipients {
            recipients: ids.iter().map(|id| recipient(id, json!({}))).collect(),
        },
        context: Map::new(),
    }
}

fn broadcast() -> CanvasTriggerRequest {
    CanvasTriggerRequest {
        target: CanvasTarget::Broadcast { audience: None },
        context: Map::new(),
    }
}

async fn enter(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &Canvas,
    request: CanvasTriggerRequest,
    at: DateTime<Utc>,
) -> canvas::EntryOutcome {
    canvas::trigger_canvas(db, ws, &canvas.id, request, at)
        .await
        .unwrap()
}

async fn advance(db: &DatabaseConnection, at: DateTime<Utc>) -> usize {
    canvas::advance_due(db, at, 1000).await.unwrap()
}

async fn sends(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<webhook_send::Model> {
    webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(webhook_send::Column::CreatedAt)
        .order_by_asc(webhook_send::Column::Recipient)
        .all(db)
        .await
        .unwrap()
}

/// (recipient, step) of every send, in order.
fn who_got_what(sends: &[webhook_send::Model]) -> Vec<(String, String)> {
    sends
        .iter()
        .map(|s| {
            (
                s.recipient.clone().unwrap_or_default(),
                s.variant_id.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The body the dispatcher will send.
fn body(send: &webhook_send::Model) -> String {
    let message: WebhookMessage = serde_json::from_str(&send.message).unwrap();
    let context: RenderContext = serde_json::from_str(&send.context).unwrap();
    match webhook::render(&message, &context).unwrap() {
        Rendered::Request(request) => request.body.unwrap_or_default(),
        Rendered::Aborted(_) => "<aborted>".into(),
    }
}

async fn journeys(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<canvas_journey::Model> {
    canvas_journey::Entity::find()
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(canvas_journey::Column::EnteredAt)
        .order_by_asc(canvas_journey::Column::ProfileId)
        .all(db)
        .await
        .unwrap()
}

async fn external_id_of(db: &DatabaseConnection, ws: &WorkspaceId, profile_id: &str) -> String {
    domain::entity::profile::Entity::find_by_id((ws.to_string(), profile_id.to_owned()))
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .external_id
        .unwrap()
}

/// Each user's journey statuses, by external id.
async fn statuses(db: &DatabaseConnection, ws: &WorkspaceId) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for journey in journeys(db, ws).await {
        let user = external_id_of(db, ws, &journey.profile_id).await;
        out.entry(user).or_default().push(journey.status);
    }
    out
}

async fn step_events(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<canvas_step_event::Model> {
    canvas_step_event::Entity::find()
        .filter(canvas_step_event::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(canvas_step_event::Column::At)
        .all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_api_entry_renders_its_context_into_the_queued_send_with_each_recipients_own_over_the_calls()
 {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "free")]).await;
        let text = "{{canvas_entry_properties.${order}}} {{context.${shop}}} \
                    {{canvas.${name}}} {{canvas.${variant_name}}} {{campaign.${dispatch_id}}}";
        let canvas = launched(
            &db,
            &ws,
            definition(Entry::Api, "hello", vec![send("hello", text, None)]),
        )
        .await;
        let request = CanvasTriggerRequest {
            target: CanvasTarget::Recipients {
                recipients: vec![
                    recipient("u1", json!({"order": "A-1"})),
                    recipient("u2", json!({"shop": "Lyon"})),
                    recipient("nobody", json!({})),
                ],
            },
            context: props(json!({"order": "default", "shop": "Paris"})),
        };
        let outcome = enter(&db, &ws, &canvas, request, now()).await;
        assert_eq!(outcome.entered, 2);
        assert_eq!(outcome.unknown_recipients, ["nobody"]);
        assert!(outcome.notice.is_none());
        assert!(!outcome.dispatch_id.is_empty());
        // Entered, due at once; nothing is sent before the engine runs.
        assert!(sends(&db, &ws).await.is_empty());
        assert_eq!(advance(&db, now()).await, 2);

        let sends = sends(&db, &ws).await;
        let journeys = journeys(&db, &ws).await;
        assert_eq!(sends.len(), 2);
        for send in &sends {
            let user = send.recipient.clone().unwrap();
            let profile = profile::find_by_external_id(&db, &ws, &user)
                .await
                .unwrap()
                .unwrap();
            let journey = journeys
                .iter()
                .find(|j| j.profile_id == profile.id)
                .unwrap();
            let expected = match user.as_str() {
                "u1" => format!("A-1 Paris Onboarding Main {}", journey.id),
                _ => format!("default Lyon Onboarding Main {}", journey.id),
            };
            assert_eq!(body(send), expected);
            assert_eq!(send.source_kind, "canvas");
            assert_eq!(send.source_id.as_deref(), Some(canvas.id.as_str()));
            assert_eq!(send.source_name.as_deref(), Some("Onboarding"));
            assert_eq!(send.variant_id.as_deref(), Some("hello"));
            assert_eq!(send.dispatch_id.as_deref(), Some(journey.id.as_str()));
            assert_eq!(send.next_attempt_at, now());
        }
        // The journeys ended there, and their entry properties went with them.
        for journey in &journeys {
            assert_eq!(journey.status, "finished");
            assert_eq!(journey.finished_at, Some(now()));
            let state: Value = serde_json::from_str(&journey.state).unwrap();
            assert_eq!(state["context"], json!({}), "{state}");
        }
        let kinds: Vec<(Option<String>, String)> = step_events(&db, &ws)
            .await
            .into_iter()
            .map(|e| (e.step_id, e.kind))
            .collect();
        for expected in [
            (None, "entered"),
            (Some("hello".to_owned()), "entered"),
            (Some("hello".to_owned()), "sent"),
            (Some("hello".to_owned()), "finished"),
        ] {
            let n = kinds
                .iter()
                .filter(|(s, k)| *s == expected.0 && k == expected.1)
                .count();
            assert_eq!(n, 2, "{expected:?}");
        }
    }
}

#[tokio::test]
async fn a_paused_or_archived_canvas_accepts_the_call_with_a_notice_and_enters_no_one() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro")]).await;
        let canvas = launched(&db, &ws, onboarding(Entry::Api)).await;
        canvas::pause_canvas(&db, &ws, &canvas.id, now())
            .await
            .unwrap();
        let outcome = enter(&db, &ws, &canvas, listed(&["u1"]), now()).await;
        assert_eq!(outcome.entered, 0);
        assert_eq!(
            outcome.notice.as_deref(),
            Some(
                "The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect."
            )
        );
        canvas::archive_canvas(&db, &ws, &canvas.id, now())
            .await
            .unwrap();
        let outcome = enter(&db, &ws, &canvas, broadcast(), now()).await;
        assert_eq!(outcome.entered, 0);
        assert_eq!(
            outcome.notice.as_deref(),
            Some(
                "The Canvas is archived. Unarchive the Canvas to ensure trigger requests will take effect."
            )
        );
        assert!(journeys(&db, &ws).await.is_empty());
        assert_eq!(advance(&db, now()).await, 0);
        assert!(sends(&db, &ws).await.is_empty());
    }
}

#[tokio::test]
async fn a_trigger_call_is_refused_for_a_canvas_it_cannot_enter_or_too_many_recipients() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro")]).await;
        let invalid = |result: Result<canvas::EntryOutcome, DomainError>| {
            let error = result.unwrap_err();
            assert_eq!(error.field(), Some("canvas_id"), "{error}");
            assert!(error.to_string().contains("Invalid Canvas ID"), "{error}");
        };
        // Unknown, a draft, and an action-based Canvas.
        invalid(
            canvas::trigger_canvas(
                &db,
                &ws,
                &domain::CanvasId::generate(),
                listed(&["u1"]),
                now(),
            )
            .await,
        );
        let input = CanvasInput {
            name: "Draft".into(),
            description: String::new(),
            tags: Vec::new(),
            definition: onboarding(Entry::Api),
        };
        let draft = canvas::create_canvas(&db, &ws, input, now()).await.unwrap();
        invalid(canvas::trigger_canvas(&db, &ws, &draft.id, listed(&["u1"]), now()).await);
        let action = launched(
            &db,
            &ws,
            onboarding(Entry::Action {
                trigger: custom_event("signup"),
                starts_at: None,
                ends_at: None,
            }),
        )
        .await;
        invalid(canvas::trigger_canvas(&db, &ws, &action.id, listed(&["u1"]), now()).await);

        let api = launched(&db, &ws, onboarding(Entry::Api)).await;
        let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let error = canvas::trigger_canvas(&db, &ws, &api.id, listed(&many), now())
            .await
            .unwrap_err();
        assert_eq!(error.field(), Some("recipients"));
        assert!(error.to_string().contains("(50)"), "{error}");
        let mut big = listed(&["u1"]);
        big.context = props(json!({"blob": "x".repeat(51 * 1024)}));
        let error = canvas::trigger_canvas(&db, &ws, &api.id, big, now())
            .await
            .unwrap_err();
        assert_eq!(error.field(), Some("context"));
        assert!(journeys(&db, &ws).await.is_empty());
    }
}

#[tokio::test]
async fn attributes_of_a_trigger_call_apply_before_entry_and_may_create_the_user() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let mut definition = onboarding(Entry::Api);
        // Only pro users may enter: u1 becomes one in the same call.
        definition.audience.filter = Some(plan_is("pro"));
        let canvas = launched(&db, &ws, definition).await;
        let request = CanvasTriggerRequest {
            target: CanvasTarget::Recipients {
                recipients: vec![
                    CanvasRecipient {
                        attributes: Some(props(json!({"plan": "pro"}))),
                        ..recipient("u1", json!({}))
                    },
                    CanvasRecipient {
                        send_to_existing_only: false,
                        attributes: Some(props(json!({"plan": "pro"}))),
                        ..recipient("new", json!({}))
                    },
                ],
            },
            context: Map::new(),
        };
        let outcome = enter(&db, &ws, &canvas, request, now()).await;
        assert_eq!(outcome.entered, 2);
        assert_eq!(outcome.skipped, 0);
    }
}

#[tokio::test]
async fn a_tracked_event_enters_the_user_into_an_action_based_canvas_with_its_properties() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro"), ("u3", "pro")]).await;
        let trigger = Trigger::CustomEvent {
            name: "signup".into(),
            property_filters: vec![PropertyFilter {
                property: "source".into(),
                comparison: "equals".into(),
                value: json!("ads"),
            }],
        };
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Action {
                    trigger,
                    starts_at: None,
                    ends_at: None,
                },
                "hello",
                vec![send(
                    "hello",
                    "{{context.${source}}}/{{context.${ref}}}",
                    None,
                )],
            ),
        )
        .await;
        let at = now() + Duration::minutes(5);
        perform(
            &db,
            &ws,
            "u1",
            "signup",
            json!({"source": "ads", "ref": 7}),
            at,
        )
        .await;
        perform(&db, &ws, "u2", "signup", json!({"source": "mail"}), at).await;
        // Before the launch: does not qualify.
        perform(
            &db,
            &ws,
            "u3",
            "signup",
            json!({"source": "ads"}),
            now() - Duration::hours(1),
        )
        .await;
        assert_eq!(campaign::handle_events(&db, at, 100).await.unwrap(), 3);
        let journeys = journeys(&db, &ws).await;
        assert_eq!(journeys.len(), 1);
        assert_eq!(
            external_id_of(&db, &ws, &journeys[0].profile_id).await,
            "u1"
        );
        assert_eq!(journeys[0].canvas_id, canvas.id.as_str());
        assert_eq!(advance(&db, at).await, 1);
        let sends = sends(&db, &ws).await;
        assert_eq!(who_got_what(&sends), [("u1".into(), "hello".into())]);
        assert_eq!(body(&sends[0]), "ads/7");
        // Handled events are not handed over again.
        assert_eq!(campaign::handle_events(&db, at, 100).await.unwrap(), 0);
        assert_eq!(self::journeys(&db, &ws).await.len(), 1);
    }
}

#[tokio::test]
async fn signup_welcome_delay_and_split_send_each_user_the_right_webhooks_at_the_right_times() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "free"), ("u3", "pro")]).await;
        launched(
            &db,
            &ws,
            onboarding(Entry::Action {
                trigger: custom_event("signup"),
                starts_at: None,
                ends_at: None,
            }),
        )
        .await;
        let t0 = now() + Duration::minutes(1);
        for user in ["u1", "u2", "u3"] {
            perform(&db, &ws, user, "signup", json!({}), t0).await;
        }
        assert_eq!(campaign::handle_events(&db, t0, 100).await.unwrap(), 3);
        assert_eq!(advance(&db, t0).await, 3);
        let first = sends(&db, &ws).await;
        assert_eq!(
            who_got_what(&first),
            [
                ("u1".into(), "welcome".into()),
                ("u2".into(), "welcome".into()),
                ("u3".into(), "welcome".into()),
            ]
        );
        assert!(first.iter().all(|s| s.created_at == t0));
        assert_eq!(body(&first[1]), "welcome u2");

        // Everyone waits a minute: nothing is due before.
        assert_eq!(advance(&db, t0 + Duration::seconds(59)).await, 0);
        assert_eq!(sends(&db, &ws).await.len(), 3);
        let t1 = t0 + Duration::seconds(60);
        assert_eq!(advance(&db, t1).await, 3);
        let all = sends(&db, &ws).await;
        let later: Vec<_> = all.iter().filter(|s| s.created_at == t1).cloned().collect();
        assert_eq!(
            who_got_what(&later),
            [
                ("u1".into(), "a".into()),
                ("u2".into(), "b".into()),
                ("u3".into(), "a".into()),
            ]
        );
        assert_eq!(body(&later[0]), "pro u1");
        assert_eq!(body(&later[1]), "free u2");
        assert_eq!(all.len(), 6);
        // Done: nothing more, ever.
        assert_eq!(advance(&db, t1 + Duration::days(30)).await, 0);
        assert_eq!(sends(&db, &ws).await.len(), 6);
        let statuses = statuses(&db, &ws).await;
        assert!(
            statuses.values().all(|s| s == &["finished"]),
            "{statuses:?}"
        );
        let branches: BTreeSet<(String, String)> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "branch")
            .map(|e| (e.profile_id, e.branch.unwrap()))
            .collect();
        assert_eq!(branches.len(), 3);
        assert_eq!(
            branches.iter().filter(|(_, b)| b == "yes").count(),
            2,
            "{branches:?}"
        );
    }
}

#[tokio::test]
async fn a_journey_whose_advance_dies_midway_is_taken_up_after_its_lease_and_repeats_nothing() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "free"), ("u3", "pro")]).await;
        let canvas = launched(&db, &ws, onboarding(Entry::Api)).await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2", "u3"]), now()).await;
        assert_eq!(advance(&db, now()).await, 3);

        // u2's advance past the delay dies when it writes webhook B.
        break_outbox_at(&db, "u2").await;
        let t1 = now() + Duration::seconds(60);
        let crashed = canvas::advance_due(&db, t1, 1000).await;
        assert!(crashed.is_err(), "{crashed:?}");
        repair_outbox(&db).await;
        let statuses_now = statuses(&db, &ws).await;
        assert_eq!(statuses_now["u1"], ["finished"]);
        assert_eq!(statuses_now["u2"], ["active"], "rolled back whole");
        assert_eq!(statuses_now["u3"], ["finished"]);
        // Its lease still holds.
        assert_eq!(advance(&db, t1 + Duration::seconds(30)).await, 0);
        // Once it has run out, the journey runs from where it stood, once.
        assert_eq!(advance(&db, t1 + Duration::seconds(61)).await, 1);
        assert_eq!(advance(&db, t1 + Duration::minutes(10)).await, 0);
        let mut got: Vec<(String, String)> = who_got_what(&sends(&db, &ws).await);
        got.sort();
        assert_eq!(
            got,
            [
                ("u1".into(), "a".into()),
                ("u1".into(), "welcome".into()),
                ("u2".into(), "b".into()),
                ("u2".into(), "welcome".into()),
                ("u3".into(), "a".into()),
                ("u3".into(), "welcome".into()),
            ]
        );
        let u2_branches = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "branch" && e.branch.as_deref() == Some("no"))
            .count();
        assert_eq!(u2_branches, 1);
    }
}

/// One engine advancing in small batches until it finds nothing due; how many it advanced.
async fn drain(db: &DatabaseConnection, at: DateTime<Utc>) -> usize {
    let mut total = 0;
    loop {
        match canvas::advance_due(db, at, 7).await.unwrap() {
            0 => return total,
            n => total += n,
        }
    }
}

#[tokio::test]
async fn two_engines_advancing_at_once_never_send_twice() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let plans: Vec<(String, &str)> = (0..300)
            .map(|i| (format!("u{i:03}"), if i % 2 == 0 { "pro" } else { "free" }))
            .collect();
        let plans: Vec<(&str, &str)> = plans.iter().map(|(u, p)| (u.as_str(), *p)).collect();
        for chunk in plans.chunks(75) {
            users(&db, &ws, chunk).await;
        }
        let canvas = launched(&db, &ws, onboarding(Entry::Api)).await;
        let outcome = enter(&db, &ws, &canvas, broadcast(), now()).await;
        assert_eq!(outcome.entered, 300);
        for at in [now(), now() + Duration::seconds(60)] {
            // Small claims, so both engines keep coming back for more while the other works.
            let (a, b) = tokio::join!(drain(&db, at), drain(&db, at));
            assert_eq!(a + b, 300, "every journey advanced once ({a} + {b})");
            if db.get_database_backend() == DbBackend::Postgres {
                // Two connections really at work at once (SQLite's test database has one).
                assert!(
                    a > 0 && b > 0,
                    "both engines advanced journeys: {a} and {b}"
                );
            }
        }
        let sends = sends(&db, &ws).await;
        assert_eq!(sends.len(), 600);
        let distinct: BTreeSet<(String, String)> = who_got_what(&sends).into_iter().collect();
        assert_eq!(distinct.len(), 600, "one send per step per user");
        assert_eq!(distinct.iter().filter(|(_, step)| step == "a").count(), 150);
        assert!(
            statuses(&db, &ws)
                .await
                .values()
                .all(|s| s == &["finished"])
        );
    }
}

#[tokio::test]
async fn users_in_flight_finish_on_the_version_they_entered_after_a_live_edit() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro")]).await;
        let two_steps = |tag: &str| {
            definition(
                Entry::Api,
                "first",
                vec![
                    send("first", &format!("{tag} first"), next("wait")),
                    delay("wait", 60, next("second")),
                    send("second", &format!("{tag} second"), None),
                ],
            )
        };
        let canvas = launched(&db, &ws, two_steps("v1")).await;
        enter(&db, &ws, &canvas, listed(&["u1"]), now()).await;
        assert_eq!(advance(&db, now()).await, 1);

        let mut edited = two_steps("v2");
        edited.variants = canvas.draft.variants.clone();
        let input = CanvasInput {
            name: canvas.name.clone(),
            description: String::new(),
            tags: Vec::new(),
            definition: edited,
        };
        let t1 = now() + Duration::seconds(10);
        let edited = canvas::update_canvas(&db, &ws, &canvas.id, input, None, t1)
            .await
            .unwrap();
        assert_eq!(edited.live_version, Some(2));
        enter(&db, &ws, &canvas, listed(&["u2"]), t1).await;
        assert_eq!(advance(&db, t1).await, 1);
        assert_eq!(advance(&db, now() + Duration::seconds(80)).await, 2);

        let bodies: Vec<(String, String)> = sends(&db, &ws)
            .await
            .iter()
            .map(|s| (s.recipient.clone().unwrap(), body(s)))
            .collect();
        assert_eq!(
            bodies,
            [
                ("u1".into(), "v1 first".into()),
                ("u2".into(), "v2 first".into()),
                ("u1".into(), "v1 second".into()),
                ("u2".into(), "v2 second".into()),
            ]
        );
        let versions: Vec<i32> = journeys(&db, &ws).await.iter().map(|j| j.version).collect();
        assert_eq!(versions, [1, 2]);
    }
}

fn action_paths(window_seconds: u64) -> Definition {
    definition(
        Entry::Api,
        "wait-for-upgrade",
        vec![
            step(
                "wait-for-upgrade",
                StepKind::ActionPaths {
                    window_seconds,
                    paths: vec![ActionPath {
                        name: "Upgraded".into(),
                        trigger: custom_event("upgrade"),
                        next: next("thanks"),
                    }],
                    everyone_else: next("reminder"),
                },
            ),
            send("thanks", "thanks for {{event_properties.${plan}}}", None),
            send("reminder", "still {{event_properties.${plan}}}?", None),
        ],
    )
}

#[tokio::test]
async fn an_event_within_the_window_takes_its_action_path_and_the_others_go_on_after_the_window() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "free")]).await;
        // An upgrade before entering does not count.
        perform(
            &db,
            &ws,
            "u2",
            "upgrade",
            json!({"plan": "old"}),
            now() - Duration::minutes(1),
        )
        .await;
        // Nothing listened yet, so it was stored without an inbox row.
        assert_eq!(campaign::handle_events(&db, now(), 100).await.unwrap(), 0);
        let canvas = launched(&db, &ws, action_paths(3600)).await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        assert_eq!(statuses(&db, &ws).await["u1"], ["waiting"]);

        let t1 = now() + Duration::minutes(10);
        perform(&db, &ws, "u1", "upgrade", json!({"plan": "pro"}), t1).await;
        assert_eq!(campaign::handle_events(&db, t1, 100).await.unwrap(), 1);
        assert_eq!(statuses(&db, &ws).await["u1"], ["active"]);
        assert_eq!(advance(&db, t1).await, 1);
        let sends_now = sends(&db, &ws).await;
        assert_eq!(who_got_what(&sends_now), [("u1".into(), "thanks".into())]);
        assert_eq!(body(&sends_now[0]), "thanks for pro");

        // u2 goes on to everyone else when the hour is over, without event properties.
        assert_eq!(advance(&db, now() + Duration::minutes(59)).await, 0);
        assert_eq!(advance(&db, now() + Duration::minutes(60)).await, 1);
        let all = sends(&db, &ws).await;
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[1].recipient.as_deref(), body(&all[1]).as_str()),
            (Some("u2"), "still ?")
        );
        // An upgrade after the window moves no one.
        perform(
            &db,
            &ws,
            "u2",
            "upgrade",
            json!({"plan": "pro"}),
            now() + Duration::hours(2),
        )
        .await;
        campaign::handle_events(&db, now() + Duration::hours(2), 100)
            .await
            .unwrap();
        assert_eq!(advance(&db, now() + Duration::hours(2)).await, 0);
        assert_eq!(sends(&db, &ws).await.len(), 2);
        let branches: Vec<String> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "branch")
            .map(|e| e.branch.unwrap())
            .collect();
        assert_eq!(branches, ["Upgraded", "Everyone Else"]);
    }
}

#[tokio::test]
async fn an_experiment_sends_each_user_down_the_same_path_on_every_entry() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let ids: Vec<String> = (0..40).map(|i| format!("u{i:02}")).collect();
        let plans: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "pro")).collect();
        users(&db, &ws, &plans).await;
        let mut definition = definition(
            Entry::Api,
            "test",
            vec![
                step(
                    "test",
                    StepKind::Experiment {
                        paths: vec![
                            ExperimentPath {
                                name: "Left".into(),
                                percent: 50,
                                next: next("left"),
                            },
                            ExperimentPath {
                                name: "Right".into(),
                                percent: 50,
                                next: next("right"),
                            },
                        ],
                        control_percent: 0,
                    },
                ),
                send("left", "left", None),
                send("right", "right", None),
            ],
        );
        definition.settings.reentry_after_seconds = Some(0);
        let canvas = launched(&db, &ws, definition).await;
        for round in 0..2 {
            let at = now() + Duration::minutes(round);
            let outcome = enter(&db, &ws, &canvas, broadcast(), at).await;
            assert_eq!(outcome.entered, 40);
            assert_eq!(advance(&db, at).await, 40);
        }
        let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for send in sends(&db, &ws).await {
            paths
                .entry(send.recipient.unwrap())
                .or_default()
                .insert(send.variant_id.unwrap());
        }
        assert_eq!(paths.len(), 40);
        assert!(paths.values().all(|p| p.len() == 1), "{paths:?}");
        let left = paths.values().filter(|p| p.contains("left")).count();
        assert!((8..=32).contains(&left), "{left} of 40 went left");
    }
}

#[tokio::test]
async fn a_user_update_step_applies_rendered_attributes_that_later_steps_see() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "update",
                vec![
                    step(
                        "update",
                        StepKind::UserUpdate {
                            attributes: props(
                                json!({"plan": "{{context.${new_plan}}}", "visits": 3}),
                            ),
                            next: next("tell"),
                        },
                    ),
                    send(
                        "tell",
                        "{{custom_attribute.${plan}}} {{custom_attribute.${visits}}}",
                        None,
                    ),
                ],
            ),
        )
        .await;
        let mut request = listed(&["u1"]);
        request.context = props(json!({"new_plan": "gold"}));
        enter(&db, &ws, &canvas, request, now()).await;
        assert_eq!(advance(&db, now()).await, 1);
        let user = profile::find_by_external_id(&db, &ws, "u1")
            .await
            .unwrap()
            .unwrap();
        let attributes: Value = serde_json::from_str(&user.custom_attributes).unwrap();
        assert_eq!(attributes["plan"], json!("gold"));
        assert_eq!(attributes["visits"], json!(3));
        assert_eq!(body(&sends(&db, &ws).await[0]), "gold 3");
    }
}

#[tokio::test]
async fn a_context_step_sets_a_typed_variable_that_later_steps_use() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro")]).await;
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "compute",
                vec![
                    step(
                        "compute",
                        StepKind::Context {
                            variables: vec![ContextVariable {
                                name: "discount".into(),
                                value_type: "number".into(),
                                value: "{{context.${base} | times: 10}}".into(),
                            }],
                            next: next("wait"),
                        },
                    ),
                    delay("wait", 60, next("offer")),
                    send(
                        "offer",
                        "{{context.${discount} | plus: 1}} {{canvas_entry_properties.${discount}}}",
                        None,
                    ),
                ],
            ),
        )
        .await;
        let mut request = listed(&["u1"]);
        request.context = props(json!({"base": 5}));
        enter(&db, &ws, &canvas, request, now()).await;
        assert_eq!(advance(&db, now()).await, 1);
        let waiting = &journeys(&db, &ws).await[0];
        let state: Value = serde_json::from_str(&waiting.state).unwrap();
        assert_eq!(state["context"]["discount"], json!(50));
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 1);
        assert_eq!(body(&sends(&db, &ws).await[0]), "51 50");
    }
}

#[tokio::test]
async fn an_exit_event_takes_the_user_out_at_the_end_of_the_current_step() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro")]).await;
        let mut definition = onboarding(Entry::Api);
        definition.exit.events = vec![custom_event("unsubscribe")];
        let canvas = launched(&db, &ws, definition).await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        let t1 = now() + Duration::seconds(10);
        perform(&db, &ws, "u1", "unsubscribe", json!({}), t1).await;
        assert_eq!(campaign::handle_events(&db, t1, 100).await.unwrap(), 1);
        // Still in the delay until it ends.
        assert_eq!(statuses(&db, &ws).await["u1"], ["active"]);
        assert_eq!(advance(&db, t1).await, 0);
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 2);
        let statuses = statuses(&db, &ws).await;
        assert_eq!(statuses["u1"], ["exited"]);
        assert_eq!(statuses["u2"], ["finished"]);
        assert_eq!(
            who_got_what(&sends(&db, &ws).await),
            [
                ("u1".into(), "welcome".into()),
                ("u2".into(), "welcome".into()),
                ("u2".into(), "a".into()),
            ]
        );
        let exited: Vec<Option<String>> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "exited")
            .map(|e| e.step_id)
            .collect();
        assert_eq!(exited, [Some("split".to_owned())]);
    }
}

#[tokio::test]
async fn users_leaving_the_exit_audience_exit_at_their_next_step() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro")]).await;
        let mut definition = onboarding(Entry::Api);
        // Users stay while they are pro.
        definition.exit.filter = Some(plan_is("pro"));
        let canvas = launched(&db, &ws, definition).await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        users(&db, &ws, &[("u2", "free")]).await;
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 2);
        let statuses = statuses(&db, &ws).await;
        assert_eq!(statuses["u1"], ["finished"]);
        assert_eq!(statuses["u2"], ["exited"]);
        assert_eq!(sends(&db, &ws).await.len(), 3);
    }
}

#[tokio::test]
async fn re_entry_and_entry_limits_decide_who_enters_again() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro"), ("u3", "pro")]).await;
        // Once only (the default).
        let once = launched(&db, &ws, onboarding(Entry::Api)).await;
        assert_eq!(
            enter(&db, &ws, &once, listed(&["u1"]), now()).await.entered,
            1
        );
        let again = enter(
            &db,
            &ws,
            &once,
            listed(&["u1"]),
            now() + Duration::days(400),
        )
        .await;
        assert_eq!((again.entered, again.skipped), (0, 1));

        // Again after an hour.
        let mut hourly = onboarding(Entry::Api);
        hourly.settings.reentry_after_seconds = Some(3600);
        let hourly = launched(&db, &ws, hourly).await;
        let at = |minutes| now() + Duration::minutes(minutes);
        assert_eq!(
            enter(&db, &ws, &hourly, listed(&["u1"]), at(0))
                .await
                .entered,
            1
        );
        assert_eq!(
            enter(&db, &ws, &hourly, listed(&["u1"]), at(59))
                .await
                .entered,
            0
        );
        assert_eq!(
            enter(&db, &ws, &hourly, listed(&["u1"]), at(60))
                .await
                .entered,
            1
        );

        // Two a day, whoever they are.
        let mut limited = onboarding(Entry::Api);
        limited.settings.reentry_after_seconds = Some(0);
        limited.settings.entry_limit = Some(EntryLimit {
            max: 2,
            per: LimitPeriod::Day,
        });
        let limited = launched(&db, &ws, limited).await;
        let first = enter(&db, &ws, &limited, listed(&["u1", "u2", "u3"]), now()).await;
        assert_eq!((first.entered, first.skipped), (2, 1));
        let later = enter(
            &db,
            &ws,
            &limited,
            listed(&["u3"]),
            now() + Duration::hours(2),
        )
        .await;
        assert_eq!(later.entered, 0);
        let tomorrow = now() + Duration::days(1);
        let next_day = enter(&db, &ws, &limited, listed(&["u3", "u1", "u2"]), tomorrow).await;
        assert_eq!((next_day.entered, next_day.skipped), (2, 1));

        // At most three for the lifetime, re-entries included.
        let mut lifetime = onboarding(Entry::Api);
        lifetime.settings.reentry_after_seconds = Some(0);
        lifetime.settings.entry_limit = Some(EntryLimit {
            max: 3,
            per: LimitPeriod::Lifetime,
        });
        let lifetime = launched(&db, &ws, lifetime).await;
        assert_eq!(
            enter(&db, &ws, &lifetime, listed(&["u1", "u2"]), now())
                .await
                .entered,
            2
        );
        assert_eq!(
            enter(
                &db,
                &ws,
                &lifetime,
                listed(&["u1", "u2"]),
                now() + Duration::days(9)
            )
            .await
            .entered,
            1
        );
    }
}

#[tokio::test]
async fn the_control_group_enters_without_a_journey_to_run_and_stays_control() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let ids: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
        let plans: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "pro")).collect();
        users(&db, &ws, &plans).await;
        let mut definition = onboarding(Entry::Api);
        definition.variants[0].percent = 50;
        definition.control_percent = 50;
        definition.settings.reentry_after_seconds = Some(0);
        let canvas = launched(&db, &ws, definition).await;
        let first = enter(&db, &ws, &canvas, broadcast(), now()).await;
        assert_eq!(first.entered + first.skipped, 60);
        assert!((10..=50).contains(&first.entered), "{first:?}");
        let second = enter(&db, &ws, &canvas, broadcast(), now() + Duration::hours(1)).await;
        assert_eq!(second.entered, first.entered, "variants are locked");
        advance(&db, now() + Duration::hours(1)).await;
        let sends = sends(&db, &ws).await;
        assert_eq!(sends.len() as u64, 2 * first.entered);
        let controls = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "entered" && e.branch.as_deref() == Some("control"))
            .count() as u64;
        assert_eq!(controls, 2 * first.skipped);
    }
}

#[tokio::test]
async fn a_paused_canvas_holds_its_journeys_and_a_stopped_one_lets_them_exit() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro")]).await;
        let canvas = launched(&db, &ws, onboarding(Entry::Api)).await;
        enter(&db, &ws, &canvas, listed(&["u1"]), now()).await;
        canvas::pause_canvas(&db, &ws, &canvas.id, now())
            .await
            .unwrap();
        assert_eq!(advance(&db, now()).await, 0);
        assert!(sends(&db, &ws).await.is_empty());
        canvas::resume_canvas(&db, &ws, &canvas.id, now())
            .await
            .unwrap();
        assert_eq!(advance(&db, now()).await, 1);
        assert_eq!(sends(&db, &ws).await.len(), 1);
        canvas::stop_canvas(&db, &ws, &canvas.id, now())
            .await
            .unwrap();
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 1);
        assert_eq!(statuses(&db, &ws).await["u1"], ["exited"]);
        assert_eq!(sends(&db, &ws).await.len(), 1);
    }
}

#[tokio::test]
async fn a_scheduled_entry_lets_its_audience_in_once_per_occurrence() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "free"), ("u3", "pro")]).await;
        let schedule = Schedule::At {
            starts_on: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            recurrence: Recurrence::Daily { every: 1 },
            ends_on: None,
            time_zone: "UTC".into(),
            in_local_time: false,
        };
        let mut definition = onboarding(Entry::Scheduled { schedule });
        definition.audience.filter = Some(plan_is("pro"));
        definition.settings.reentry_after_seconds = Some(0);
        launched(&db, &ws, definition).await;
        let first = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let run = |at| canvas::run_due_canvas_occurrences(&db, at, 10);
        assert_eq!(run(first - Duration::seconds(1)).await.unwrap(), 0);
        assert!(journeys(&db, &ws).await.is_empty());
        let (a, b) = tokio::join!(run(first), run(first));
        assert_eq!(a.unwrap() + b.unwrap(), 1);
        assert_eq!(run(first + Duration::hours(1)).await.unwrap(), 0);
        let entered = journeys(&db, &ws).await;
        assert_eq!(entered.len(), 2);
        assert_eq!(
            statuses(&db, &ws).await.keys().cloned().collect::<Vec<_>>(),
            ["u1", "u3"]
        );
        let occurrences = canvas_occurrence::Entity::find()
            .filter(canvas_occurrence::Column::WorkspaceId.eq(ws.as_str()))
            .order_by_asc(canvas_occurrence::Column::DueAt)
            .all(&db)
            .await
            .unwrap();
        assert_eq!(occurrences.len(), 2);
        assert_eq!(
            (occurrences[0].status.as_str(), occurrences[0].entered),
            ("done", 2)
        );
        assert_eq!(
            (occurrences[1].status.as_str(), occurrences[1].due_at),
            ("pending", first + Duration::days(1))
        );
        // The next day, once more.
        assert_eq!(run(first + Duration::days(1)).await.unwrap(), 1);
        assert_eq!(journeys(&db, &ws).await.len(), 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Events that cannot be applied, and the rest of the steps and entry rules through the engine

/// Makes every update of a journey row change nothing (a trigger skipping the row), as if the
/// engine moved the journey on again each time an event tried to change it.
async fn freeze_journeys(db: &DatabaseConnection) {
    let statements = match db.get_database_backend() {
        DbBackend::Postgres => vec![
            "CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             RETURN NULL; END $$",
            "CREATE TRIGGER frozen BEFORE UPDATE ON canvas_journey FOR EACH ROW \
             EXECUTE FUNCTION skip_row()",
        ],
        _ => vec![
            "CREATE TRIGGER frozen BEFORE UPDATE ON canvas_journey \
             BEGIN SELECT RAISE(IGNORE); END",
        ],
    };
    for sql in statements {
        db.execute_unprepared(sql).await.unwrap();
    }
}

/// Undoes [`freeze_journeys`].
async fn thaw_journeys(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => "DROP TRIGGER frozen ON canvas_journey",
        _ => "DROP TRIGGER frozen",
    };
    db.execute_unprepared(sql).await.unwrap();
}

/// The one journey's stored state.
async fn state_of(db: &DatabaseConnection, ws: &WorkspaceId) -> Value {
    let all = journeys(db, ws).await;
    assert_eq!(all.len(), 1);
    serde_json::from_str(&all[0].state).unwrap()
}

#[tokio::test]
async fn an_exit_event_that_cannot_be_applied_fails_and_is_applied_when_handled_again() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro")]).await;
        let mut definition = definition(
            Entry::Api,
            "welcome",
            vec![
                send("welcome", "hi", next("wait")),
                delay("wait", 3600, next("bye")),
                send("bye", "bye", None),
            ],
        );
        definition.exit.events = vec![custom_event("unsubscribe")];
        let canvas = launched(&db, &ws, definition).await;
        enter(&db, &ws, &canvas, listed(&["u1"]), now()).await;
        assert_eq!(advance(&db, now()).await, 1);

        // The journey moves under every try to mark it: the event fails rather than being lost.
        let t1 = now() + Duration::seconds(10);
        perform(&db, &ws, "u1", "unsubscribe", json!({}), t1).await;
        freeze_journeys(&db).await;
        let failed = campaign::handle_events(&db, t1, 100).await;
        thaw_journeys(&db).await;
        assert_eq!(field_of(failed), "journey");
        assert_eq!(state_of(&db, &ws).await.get("exit_requested"), None);
        // Still claimed until its lease runs out, then handled again.
        let t2 = t1 + Duration::seconds(30);
        assert_eq!(campaign::handle_events(&db, t2, 100).await.unwrap(), 0);
        let t3 = t1 + Duration::seconds(61);
        assert_eq!(campaign::handle_events(&db, t3, 100).await.unwrap(), 1);
        assert_eq!(state_of(&db, &ws).await["exit_requested"], json!(true));

        assert_eq!(advance(&db, now() + Duration::hours(1)).await, 1);
        assert_eq!(statuses(&db, &ws).await["u1"], ["exited"]);
        assert_eq!(
            who_got_what(&sends(&db, &ws).await),
            [("u1".into(), "welcome".into())]
        );
    }
}

#[tokio::test]
async fn an_action_path_event_that_cannot_be_applied_fails_and_moves_the_user_when_handled_again() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let canvas = launched(&db, &ws, action_paths(3600)).await;
        enter(&db, &ws, &canvas, listed(&["u1"]), now()).await;
        assert_eq!(advance(&db, now()).await, 1);
        assert_eq!(statuses(&db, &ws).await["u1"], ["waiting"]);

        let t1 = now() + Duration::minutes(10);
        perform(&db, &ws, "u1", "upgrade", json!({"plan": "pro"}), t1).await;
        freeze_journeys(&db).await;
        let failed = campaign::handle_events(&db, t1, 100).await;
        thaw_journeys(&db).await;
        assert_eq!(field_of(failed), "journey");
        assert_eq!(statuses(&db, &ws).await["u1"], ["waiting"]);
        let t2 = t1 + Duration::seconds(61);
        assert_eq!(campaign::handle_events(&db, t2, 100).await.unwrap(), 1);
        assert_eq!(statuses(&db, &ws).await["u1"], ["active"]);
        assert_eq!(advance(&db, t2).await, 1);
        let sent = sends(&db, &ws).await;
        assert_eq!(who_got_what(&sent), [("u1".into(), "thanks".into())]);
        assert_eq!(body(&sent[0]), "thanks for pro");
        // The window's end later finds nothing left to do.
        assert_eq!(advance(&db, now() + Duration::hours(2)).await, 0);
        assert_eq!(sends(&db, &ws).await.len(), 1);
    }
}

fn has_name() -> Filter {
    Filter::Attribute {
        name: "first_name".into(),
        custom: false,
        comparison: Comparison::Exists,
        value: Value::Null,
    }
}

/// Users by external id with their attributes.
async fn people(db: &DatabaseConnection, ws: &WorkspaceId, attributes: Value) {
    track(db, ws, json!({ "attributes": attributes }), now()).await;
}

/// The branches taken at `step`, as the analytics count them over the day around `now`.
async fn branch_counts(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &Canvas,
    step: &str,
) -> Vec<(String, u64)> {
    let stats = canvas::canvas_stats(
        db,
        ws,
        &canvas.id,
        now() - Duration::days(1),
        now() + Duration::days(30),
        Bucket::Day,
    )
    .await
    .unwrap();
    stats
        .steps
        .into_iter()
        .find(|s| s.step_id.as_str() == step)
        .unwrap()
        .branches
}

/// Each user's sends as (user, step), sorted.
fn sorted(sends: &[webhook_send::Model]) -> Vec<(String, String)> {
    let mut got = who_got_what(sends);
    got.sort();
    got
}

fn pair(user: &str, step: &str) -> (String, String) {
    (user.into(), step.into())
}

#[tokio::test]
async fn audience_paths_send_each_user_down_the_first_path_they_match_when_they_reach_it() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        people(
            &db,
            &ws,
            json!([
                {"external_id": "u1", "plan": "pro", "first_name": "Ada"},
                {"external_id": "u2", "plan": "free", "first_name": "Bob"},
                {"external_id": "u3", "plan": "free"},
                {"external_id": "u4", "plan": "free"},
            ]),
        )
        .await;
        let group = |name: &str, filter: Filter, then: &str| AudiencePath {
            name: name.into(),
            filter,
            next: next(then),
        };
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "wait",
                vec![
                    delay("wait", 60, next("groups")),
                    step(
                        "groups",
                        StepKind::AudiencePaths {
                            paths: vec![
                                group("Pro", plan_is("pro"), "pro"),
                                group("Named", has_name(), "named"),
                            ],
                            everyone_else: next("rest"),
                        },
                    ),
                    send("pro", "pro {{${user_id}}}", None),
                    send("named", "named {{${user_id}}}", None),
                    send("rest", "rest {{${user_id}}}", None),
                ],
            ),
        )
        .await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2", "u3", "u4"]), now()).await;
        assert_eq!(advance(&db, now()).await, 4);
        // The groups are evaluated when the user reaches them: u4 upgrades during the delay.
        users(&db, &ws, &[("u4", "pro")]).await;
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 4);
        let sent = sends(&db, &ws).await;
        assert_eq!(
            sorted(&sent),
            [
                pair("u1", "pro"),
                pair("u2", "named"),
                pair("u3", "rest"),
                pair("u4", "pro")
            ]
        );
        let u2 = sent
            .iter()
            .find(|s| s.recipient.as_deref() == Some("u2"))
            .unwrap();
        assert_eq!(body(u2), "named u2");
        assert_eq!(
            branch_counts(&db, &ws, &canvas, "groups").await,
            [
                ("Pro".to_string(), 2),
                ("Named".to_string(), 1),
                ("Everyone Else".to_string(), 1)
            ]
        );
        assert!(
            statuses(&db, &ws)
                .await
                .values()
                .all(|s| s == &["finished"])
        );
    }
}

#[tokio::test]
async fn abort_message_in_a_message_step_moves_the_user_on_to_the_next_message() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "free")]).await;
        let aborting = "{% if custom_attribute.${plan} == 'free' %}{% abort_message('free plan') \
                        %}{% endif %}offer {{${user_id}}}";
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "offer",
                vec![
                    send("offer", aborting, next("follow-up")),
                    send("follow-up", "follow-up {{${user_id}}}", None),
                ],
            ),
        )
        .await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        // Both sends are queued and the user goes on: the abort happens when the dispatcher
        // renders the send (engine/tests/delivery.rs follows it to the end).
        let sent = sends(&db, &ws).await;
        let bodies: BTreeSet<(String, String)> = sent
            .iter()
            .map(|s| (s.recipient.clone().unwrap(), body(s)))
            .collect();
        assert_eq!(
            bodies,
            BTreeSet::from([
                pair("u1", "offer u1"),
                pair("u1", "follow-up u1"),
                pair("u2", "<aborted>"),
                pair("u2", "follow-up u2"),
            ])
        );
        assert_eq!(statuses(&db, &ws).await["u2"], ["finished"]);
        let u2 = profile::find_by_external_id(&db, &ws, "u2")
            .await
            .unwrap()
            .unwrap();
        let u2_steps: Vec<(Option<String>, String)> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.profile_id == u2.id && e.step_id.is_some())
            .map(|e| (e.step_id, e.kind))
            .collect();
        for expected in [
            ("offer", "entered"),
            ("offer", "sent"),
            ("follow-up", "entered"),
            ("follow-up", "sent"),
            ("follow-up", "finished"),
        ] {
            assert!(
                u2_steps.contains(&(Some(expected.0.to_owned()), expected.1.to_owned())),
                "{expected:?} in {u2_steps:?}"
            );
        }
    }
}

#[tokio::test]
async fn each_whole_path_variant_sends_its_users_down_its_own_path_and_keeps_them_there() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let ids: Vec<String> = (0..40).map(|i| format!("u{i:02}")).collect();
        let plans: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "pro")).collect();
        users(&db, &ws, &plans).await;
        let mut definition = definition(
            Entry::Api,
            "a",
            vec![
                send("a", "{{canvas.${variant_name}}}", None),
                send("b", "{{canvas.${variant_name}}}", None),
            ],
        );
        definition.variants = vec![
            CanvasVariant {
                id: None,
                name: "Short".into(),
                percent: 50,
                first_step: next("a"),
            },
            CanvasVariant {
                id: None,
                name: "Long".into(),
                percent: 50,
                first_step: next("b"),
            },
        ];
        definition.settings.reentry_after_seconds = Some(0);
        let canvas = launched(&db, &ws, definition).await;
        for round in 0..2 {
            let at = now() + Duration::minutes(round);
            assert_eq!(enter(&db, &ws, &canvas, broadcast(), at).await.entered, 40);
            assert_eq!(advance(&db, at).await, 40);
        }
        let mut paths: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for send in sends(&db, &ws).await {
            let text = body(&send);
            paths
                .entry(send.recipient.unwrap())
                .or_default()
                .insert((send.variant_id.unwrap(), text));
        }
        assert_eq!(paths.len(), 40);
        // One path per user over both entries, and its messages name the variant.
        for (user, got) in &paths {
            assert_eq!(got.len(), 1, "{user}: {got:?}");
            let (step, text) = got.iter().next().unwrap();
            let expected = if step == "a" { "Short" } else { "Long" };
            assert_eq!(text, expected, "{user}");
        }
        let short = paths
            .values()
            .filter(|p| p.iter().any(|(step, _)| step == "a"))
            .count();
        assert!((8..=32).contains(&short), "{short} of 40 took Short");
        // Entries name their variant.
        let entered: BTreeMap<String, usize> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "entered" && e.step_id.is_none())
            .fold(BTreeMap::new(), |mut counts, e| {
                *counts.entry(e.branch.unwrap()).or_default() += 1;
                counts
            });
        assert_eq!(entered["Short"], 2 * short);
        assert_eq!(entered["Long"], 2 * (40 - short));
    }
}

#[tokio::test]
async fn the_control_group_of_an_experiment_ends_its_journey_at_the_experiment() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let ids: Vec<String> = (0..40).map(|i| format!("u{i:02}")).collect();
        let plans: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "pro")).collect();
        users(&db, &ws, &plans).await;
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "test",
                vec![
                    step(
                        "test",
                        StepKind::Experiment {
                            paths: vec![ExperimentPath {
                                name: "Treated".into(),
                                percent: 50,
                                next: next("treat"),
                            }],
                            control_percent: 50,
                        },
                    ),
                    send("treat", "treat", next("later")),
                    delay("later", 60, next("again")),
                    send("again", "again", None),
                ],
            ),
        )
        .await;
        assert_eq!(
            enter(&db, &ws, &canvas, broadcast(), now()).await.entered,
            40
        );
        assert_eq!(advance(&db, now()).await, 40);
        let treated = sends(&db, &ws).await.len();
        assert!((8..=32).contains(&treated), "{treated} of 40 treated");
        let journeys = journeys(&db, &ws).await;
        let control: Vec<_> = journeys.iter().filter(|j| j.status == "finished").collect();
        assert_eq!(control.len(), 40 - treated);
        assert!(control.iter().all(|j| j.step_id.as_deref() == Some("test")));
        // The treated go on; the control group never sends.
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, treated);
        assert_eq!(sends(&db, &ws).await.len(), 2 * treated);
        assert_eq!(
            branch_counts(&db, &ws, &canvas, "test").await,
            [
                ("Treated".to_string(), treated as u64),
                ("control".to_string(), (40 - treated) as u64)
            ]
        );
        let finished_at_test = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "finished" && e.step_id.as_deref() == Some("test"))
            .count();
        assert_eq!(finished_at_test, 40 - treated);
    }
}

#[tokio::test]
async fn segments_choose_who_enters_and_which_way_a_decision_split_sends_them() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        people(
            &db,
            &ws,
            json!([
                {"external_id": "u1", "plan": "pro", "first_name": "Ada"},
                {"external_id": "u2", "plan": "free", "first_name": "Bob"},
                {"external_id": "u3", "plan": "pro"},
            ]),
        )
        .await;
        let pros = segment::create(&db, &ws, "Pros", "", &plan_is("pro"), now())
            .await
            .unwrap();
        let named = segment::create(&db, &ws, "Named", "", &has_name(), now())
            .await
            .unwrap();
        let mut definition = definition(
            Entry::Api,
            "split",
            vec![
                step(
                    "split",
                    StepKind::DecisionSplit {
                        segment_ids: vec![pros.id.clone()],
                        filter: None,
                        yes: next("a"),
                        no: next("b"),
                    },
                ),
                send("a", "a", None),
                send("b", "b", None),
            ],
        );
        definition.audience.segment_ids = vec![named.id.clone()];
        let canvas = launched(&db, &ws, definition).await;
        let outcome = enter(&db, &ws, &canvas, listed(&["u1", "u2", "u3"]), now()).await;
        assert_eq!((outcome.entered, outcome.skipped), (2, 1));
        assert_eq!(advance(&db, now()).await, 2);
        assert_eq!(
            sorted(&sends(&db, &ws).await),
            [pair("u1", "a"), pair("u2", "b")]
        );
        assert_eq!(
            branch_counts(&db, &ws, &canvas, "split").await,
            [("yes".to_string(), 1), ("no".to_string(), 1)]
        );
    }
}

#[tokio::test]
async fn users_leaving_an_exit_segment_exit_at_their_next_step() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro")]).await;
        let pros = segment::create(&db, &ws, "Pros", "", &plan_is("pro"), now())
            .await
            .unwrap();
        let mut definition = onboarding(Entry::Api);
        definition.exit.segment_ids = vec![pros.id.clone()];
        let canvas = launched(&db, &ws, definition).await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        users(&db, &ws, &[("u2", "free")]).await;
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 2);
        let statuses = statuses(&db, &ws).await;
        assert_eq!(statuses["u1"], ["finished"]);
        assert_eq!(statuses["u2"], ["exited"]);
        assert_eq!(
            sorted(&sends(&db, &ws).await),
            [
                pair("u1", "a"),
                pair("u1", "welcome"),
                pair("u2", "welcome")
            ]
        );
        let exited: Vec<Option<String>> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "exited")
            .map(|e| e.step_id)
            .collect();
        assert_eq!(exited, [Some("split".to_owned())]);
    }
}

#[tokio::test]
async fn a_delay_until_a_date_holds_users_until_then_and_lets_later_arrivals_exit() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro")]).await;
        let until = now() + Duration::days(2);
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "before",
                vec![
                    send("before", "before", next("until")),
                    step(
                        "until",
                        StepKind::Delay {
                            delay: DelaySpec::Until { at: until },
                            next: next("after"),
                        },
                    ),
                    send("after", "after", None),
                ],
            ),
        )
        .await;
        enter(&db, &ws, &canvas, listed(&["u1"]), now()).await;
        assert_eq!(advance(&db, now()).await, 1);
        assert_eq!(journeys(&db, &ws).await[0].wake_at, Some(until));
        assert_eq!(advance(&db, until - Duration::seconds(1)).await, 0);
        assert_eq!(advance(&db, until).await, 1);
        assert_eq!(
            sorted(&sends(&db, &ws).await),
            [pair("u1", "after"), pair("u1", "before")]
        );

        // u2 reaches the Delay after its date: out, at that step.
        let late = until + Duration::hours(1);
        enter(&db, &ws, &canvas, listed(&["u2"]), late).await;
        assert_eq!(advance(&db, late).await, 1);
        assert_eq!(statuses(&db, &ws).await["u2"], ["exited"]);
        let u2_sends: Vec<_> = sorted(&sends(&db, &ws).await)
            .into_iter()
            .filter(|(user, _)| user == "u2")
            .collect();
        assert_eq!(u2_sends, [pair("u2", "before")]);
        let exited: Vec<Option<String>> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.kind == "exited")
            .map(|e| e.step_id)
            .collect();
        assert_eq!(exited, [Some("until".to_owned())]);
    }
}

#[tokio::test]
async fn a_delay_until_a_weekday_waits_for_that_time_in_the_users_zone_else_the_canvass() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        people(
            &db,
            &ws,
            json!([
                {"external_id": "ny", "plan": "pro", "time_zone": "America/New_York"},
                {"external_id": "plain", "plan": "pro"},
            ]),
        )
        .await;
        let mut definition = definition(
            Entry::Api,
            "monday",
            vec![
                step(
                    "monday",
                    StepKind::Delay {
                        delay: DelaySpec::Weekday {
                            weekday: Weekday::Mon,
                            time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                        },
                        next: next("hello"),
                    },
                ),
                send("hello", "hello", None),
            ],
        );
        definition.settings.time_zone = Some("Asia/Tokyo".into());
        let canvas = launched(&db, &ws, definition).await;
        // Saturday 28 November 2026, 09:00 UTC.
        enter(&db, &ws, &canvas, listed(&["ny", "plain"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        // Monday 09:00 in Tokyo (the Canvas's zone) and in New York (EST).
        let tokyo = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        let new_york = Utc.with_ymd_and_hms(2026, 11, 30, 14, 0, 0).unwrap();
        let mut wakes = Vec::new();
        for journey in journeys(&db, &ws).await {
            let user = external_id_of(&db, &ws, &journey.profile_id).await;
            wakes.push((user, journey.wake_at));
        }
        wakes.sort();
        assert_eq!(
            wakes,
            [
                ("ny".to_string(), Some(new_york)),
                ("plain".to_string(), Some(tokyo))
            ]
        );
        assert_eq!(advance(&db, tokyo - Duration::seconds(1)).await, 0);
        assert_eq!(advance(&db, tokyo).await, 1);
        assert_eq!(
            who_got_what(&sends(&db, &ws).await),
            [pair("plain", "hello")]
        );
        assert_eq!(advance(&db, new_york - Duration::seconds(1)).await, 0);
        assert_eq!(advance(&db, new_york).await, 1);
        assert_eq!(sends(&db, &ws).await.len(), 2);
    }
}

#[tokio::test]
async fn an_exit_step_ends_the_journey_where_it_stands() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "free")]).await;
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "split",
                vec![
                    step(
                        "split",
                        StepKind::DecisionSplit {
                            segment_ids: Vec::new(),
                            filter: Some(plan_is("pro")),
                            yes: next("a"),
                            no: next("stop"),
                        },
                    ),
                    send("a", "a", None),
                    step("stop", StepKind::Exit),
                ],
            ),
        )
        .await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2"]), now()).await;
        assert_eq!(advance(&db, now()).await, 2);
        assert_eq!(who_got_what(&sends(&db, &ws).await), [pair("u1", "a")]);
        let u2 = profile::find_by_external_id(&db, &ws, "u2")
            .await
            .unwrap()
            .unwrap();
        let journey = journeys(&db, &ws)
            .await
            .into_iter()
            .find(|j| j.profile_id == u2.id)
            .unwrap();
        assert_eq!(
            (journey.status.as_str(), journey.step_id.as_deref()),
            ("finished", Some("stop"))
        );
        assert_eq!(journey.finished_at, Some(now()));
        let mut at_stop: Vec<String> = step_events(&db, &ws)
            .await
            .into_iter()
            .filter(|e| e.step_id.as_deref() == Some("stop"))
            .map(|e| e.kind)
            .collect();
        // Written at the same instant: their order is not the point.
        at_stop.sort();
        assert_eq!(at_stop, ["entered", "finished"]);
        assert_eq!(advance(&db, now() + Duration::days(1)).await, 0);
    }
}

/// `/users/track` of one purchase at `at`.
async fn buy(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    user: &str,
    product: &str,
    properties: Value,
    at: DateTime<Utc>,
) {
    let body = json!({"purchases": [{
        "external_id": user, "product_id": product, "currency": "EUR", "price": 30.0,
        "time": at.to_rfc3339(), "properties": properties,
    }]});
    track(db, ws, body, at).await;
}

#[tokio::test]
async fn a_purchase_enters_the_user_and_a_later_purchase_takes_its_action_path() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "free")]).await;
        let purchase = |product: &str| Trigger::Purchase {
            product_id: Some(product.into()),
        };
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Action {
                    trigger: purchase("keyboard"),
                    starts_at: None,
                    ends_at: None,
                },
                "thanks",
                vec![
                    send(
                        "thanks",
                        "thanks for the {{context.${colour}}} keyboard",
                        next("wait"),
                    ),
                    step(
                        "wait",
                        StepKind::ActionPaths {
                            window_seconds: 86_400,
                            paths: vec![ActionPath {
                                name: "Mouse".into(),
                                trigger: purchase("mouse"),
                                next: next("mouse"),
                            }],
                            everyone_else: next("nudge"),
                        },
                    ),
                    send("mouse", "a {{event_properties.${colour}}} mouse", None),
                    send("nudge", "a mouse?", None),
                ],
            ),
        )
        .await;
        let t0 = now() + Duration::minutes(1);
        buy(&db, &ws, "u1", "keyboard", json!({"colour": "black"}), t0).await;
        // Another product lets no one in.
        buy(&db, &ws, "u2", "mouse", json!({"colour": "red"}), t0).await;
        assert_eq!(campaign::handle_events(&db, t0, 100).await.unwrap(), 2);
        assert_eq!(statuses(&db, &ws).await.keys().collect::<Vec<_>>(), ["u1"]);
        assert_eq!(advance(&db, t0).await, 1);
        assert_eq!(statuses(&db, &ws).await["u1"], ["waiting"]);

        let t1 = t0 + Duration::hours(1);
        buy(&db, &ws, "u1", "mouse", json!({"colour": "white"}), t1).await;
        assert_eq!(campaign::handle_events(&db, t1, 100).await.unwrap(), 1);
        assert_eq!(advance(&db, t1).await, 1);
        let bodies: Vec<String> = sends(&db, &ws).await.iter().map(body).collect();
        assert_eq!(bodies, ["thanks for the black keyboard", "a white mouse"]);
        assert_eq!(
            branch_counts(&db, &ws, &canvas, "wait").await,
            [("Mouse".to_string(), 1)]
        );
        assert_eq!(statuses(&db, &ws).await["u1"], ["finished"]);
    }
}

#[tokio::test]
async fn the_first_event_matching_a_path_wins_and_the_first_path_it_matches_is_taken() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "free"), ("u3", "free")]).await;
        let path = |name: &str, trigger: Trigger, then: &str| ActionPath {
            name: name.into(),
            trigger,
            next: next(then),
        };
        let pro_upgrade = Trigger::CustomEvent {
            name: "upgrade".into(),
            property_filters: vec![PropertyFilter {
                property: "plan".into(),
                comparison: "equals".into(),
                value: json!("pro"),
            }],
        };
        let canvas = launched(
            &db,
            &ws,
            definition(
                Entry::Api,
                "wait",
                vec![
                    step(
                        "wait",
                        StepKind::ActionPaths {
                            window_seconds: 3600,
                            paths: vec![
                                path("Pro upgrade", pro_upgrade, "pro"),
                                path("Any upgrade", custom_event("upgrade"), "any"),
                                path("Cancelled", custom_event("cancel"), "bye"),
                            ],
                            everyone_else: next("late"),
                        },
                    ),
                    send("pro", "pro", None),
                    send("any", "any", None),
                    send("bye", "bye", None),
                    send("late", "late", None),
                ],
            ),
        )
        .await;
        enter(&db, &ws, &canvas, listed(&["u1", "u2", "u3"]), now()).await;
        assert_eq!(advance(&db, now()).await, 3);

        // u1's upgrade matches the first two paths: the first is taken.
        let t1 = now() + Duration::minutes(5);
        perform(&db, &ws, "u1", "upgrade", json!({"plan": "pro"}), t1).await;
        perform(&db, &ws, "u2", "cancel", json!({}), t1).await;
        assert_eq!(campaign::handle_events(&db, t1, 100).await.unwrap(), 2);
        // u2 cancelled first: a later upgrade, before the engine even ran, changes nothing.
        let t2 = t1 + Duration::minutes(1);
        perform(&db, &ws, "u2", "upgrade", json!({"plan": "pro"}), t2).await;
        assert_eq!(campaign::handle_events(&db, t2, 100).await.unwrap(), 1);
        assert_eq!(advance(&db, t2).await, 2);
        assert_eq!(
            sorted(&sends(&db, &ws).await),
            [pair("u1", "pro"), pair("u2", "bye")]
        );
        // u3 did nothing: Everyone Else once the window is over.
        assert_eq!(advance(&db, now() + Duration::hours(1)).await, 1);
        assert_eq!(
            sorted(&sends(&db, &ws).await),
            [pair("u1", "pro"), pair("u2", "bye"), pair("u3", "late")]
        );
        assert_eq!(
            branch_counts(&db, &ws, &canvas, "wait").await,
            [
                ("Pro upgrade".to_string(), 1),
                ("Cancelled".to_string(), 1),
                ("Everyone Else".to_string(), 1)
            ]
        );
    }
}

#[tokio::test]
async fn an_action_based_entry_only_counts_events_between_its_start_and_end() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro"), ("u3", "pro")]).await;
        let starts = now() + Duration::hours(1);
        let ends = now() + Duration::hours(2);
        launched(
            &db,
            &ws,
            definition(
                Entry::Action {
                    trigger: custom_event("signup"),
                    starts_at: Some(starts),
                    ends_at: Some(ends),
                },
                "hello",
                vec![send("hello", "hello", None)],
            ),
        )
        .await;
        for (user, at) in [
            ("u1", starts - Duration::minutes(1)),
            ("u2", starts + Duration::minutes(30)),
            ("u3", ends + Duration::minutes(1)),
        ] {
            perform(&db, &ws, user, "signup", json!({}), at).await;
        }
        let later = now() + Duration::hours(3);
        assert_eq!(campaign::handle_events(&db, later, 100).await.unwrap(), 3);
        assert_eq!(statuses(&db, &ws).await.keys().collect::<Vec<_>>(), ["u2"]);
        assert_eq!(advance(&db, later).await, 1);
        assert_eq!(who_got_what(&sends(&db, &ws).await), [pair("u2", "hello")]);
    }
}

#[tokio::test]
async fn every_send_of_a_canvas_carries_its_rate_limit_under_the_canvass_own_source() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "pro"), ("u2", "pro"), ("u3", "pro")]).await;
        let mut limited = definition(
            Entry::Api,
            "one",
            vec![
                send("one", "one", next("wait")),
                delay("wait", 60, next("two")),
                send("two", "two", None),
            ],
        );
        limited.settings.rate_per_minute = Some(2);
        let limited = launched(&db, &ws, limited).await;
        let free = launched(
            &db,
            &ws,
            definition(Entry::Api, "solo", vec![send("solo", "solo", None)]),
        )
        .await;
        enter(&db, &ws, &limited, listed(&["u1", "u2", "u3"]), now()).await;
        enter(&db, &ws, &free, listed(&["u1"]), now()).await;
        assert_eq!(advance(&db, now()).await, 4);
        assert_eq!(advance(&db, now() + Duration::seconds(60)).await, 3);
        let sent = sends(&db, &ws).await;
        assert_eq!(sent.len(), 7);
        let (mine, other): (Vec<_>, Vec<_>) = sent
            .iter()
            .partition(|s| s.source_id.as_deref() == Some(limited.id.as_str()));
        // Both Message steps' sends share the one limit of the Canvas (the dispatcher counts
        // them by source kind and id; engine/tests/delivery.rs shows it holding).
        let steps: BTreeSet<&str> = mine
            .iter()
            .filter_map(|s| s.variant_id.as_deref())
            .collect();
        assert_eq!(steps, BTreeSet::from(["one", "two"]));
        assert_eq!(mine.len(), 6);
        for send in &mine {
            assert_eq!(send.source_kind, "canvas");
            assert_eq!(send.rate_per_minute, Some(2), "{:?}", send.variant_id);
        }
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].source_id.as_deref(), Some(free.id.as_str()));
        assert_eq!(other[0].rate_per_minute, None);
    }
}
