//! The Canvas lifecycle and analytics through the public API, on SQLite and on PostgreSQL (when
//! TEST_DATABASE_URL is set): the launch checks (each rule failing the way it should), drafts,
//! launch freezing version 1, live edits freezing the next version, optimistic versioning,
//! pause/resume/stop/archive, scheduled entries' occurrences, lists, duplicates, and figures
//! read back from hand-made journeys, step events and outbox rows.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::campaign::{AudienceSpec, Bucket, PropertyFilter, Recurrence, Schedule, Trigger};
use domain::canvas::{
    self, ActionPath, AudiencePath, Canvas, CanvasFilter, CanvasInput, CanvasSettings,
    CanvasStatus, CanvasVariant, ContextVariable, Definition, DelaySpec, Entry, EntryLimit,
    ExitCriteria, ExperimentPath, LimitPeriod, Problem, Step, StepId, StepKind,
};
use domain::entity::{
    canvas as canvas_entity, canvas_journey, canvas_occurrence, canvas_step_event, canvas_version,
    webhook_send,
};
use domain::outbox::{self, NewSend, SourceKind, Tracking};
use domain::segment::{self, Comparison, Filter};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{CanvasId, DomainError, ProfileId, SegmentId, SendId, VariantId, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Map, json};

mod common;

use common::{field_of, now};

fn id(text: &str) -> StepId {
    StepId(text.into())
}

fn next(text: &str) -> Option<StepId> {
    Some(id(text))
}

fn message(url: &str) -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: url.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Raw {
            text: r#"{"user": "{{${user_id}}}", "plan": "{{context.${plan}}}"}"#.into(),
        },
    }
}

fn step(step_id: &str, name: &str, kind: StepKind) -> Step {
    Step {
        id: id(step_id),
        name: name.into(),
        kind,
    }
}

fn send(step_id: &str, then: Option<StepId>) -> Step {
    step(
        step_id,
        &format!("Send {step_id}"),
        StepKind::Message {
            message: message("https://hooks.example.com/in"),
            next: then,
        },
    )
}

fn wait(step_id: &str, seconds: u64, then: Option<StepId>) -> Step {
    step(
        step_id,
        "Wait",
        StepKind::Delay {
            delay: DelaySpec::For { seconds },
            next: then,
        },
    )
}

fn has_name() -> Filter {
    Filter::Attribute {
        name: "first_name".into(),
        custom: false,
        comparison: Comparison::Exists,
        value: serde_json::Value::Null,
    }
}

fn event(name: &str) -> Trigger {
    Trigger::CustomEvent {
        name: name.into(),
        property_filters: vec![],
    }
}

fn variant(name: &str, percent: u8, first: &str) -> CanvasVariant {
    CanvasVariant {
        id: None,
        name: name.into(),
        percent,
        first_step: next(first),
    }
}

/// An API-triggered Canvas with no problems: welcome → wait → split (yes → follow-up; no → an
/// Exit step).
fn definition() -> Definition {
    Definition {
        entry: Entry::Api,
        audience: AudienceSpec::default(),
        exit: ExitCriteria::default(),
        settings: CanvasSettings::default(),
        variants: vec![variant("Main", 100, "welcome")],
        control_percent: 0,
        conversions: Vec::new(),
        steps: vec![
            send("welcome", next("wait")),
            wait("wait", 86_400, next("split")),
            step(
                "split",
                "Has a name?",
                StepKind::DecisionSplit {
                    segment_ids: vec![],
                    filter: Some(has_name()),
                    yes: next("follow-up"),
                    no: next("done"),
                },
            ),
            send("follow-up", None),
            step("done", "The end", StepKind::Exit),
        ],
    }
}

fn input(name: &str) -> CanvasInput {
    CanvasInput {
        name: name.into(),
        description: "Onboarding journey".into(),
        tags: vec!["onboarding".into()],
        definition: definition(),
    }
}

fn scheduled_daily(starts_on: NaiveDate, hour: u32) -> Entry {
    Entry::Scheduled {
        schedule: Schedule::At {
            starts_on,
            time: NaiveTime::from_hms_opt(hour, 0, 0).unwrap(),
            recurrence: Recurrence::Daily { every: 1 },
            ends_on: None,
            time_zone: "UTC".into(),
            in_local_time: false,
        },
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

/// The one problem of `definition`, which must have exactly one.
fn only_problem(definition: &Definition) -> Problem {
    let found = canvas::problems(definition);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    found.into_iter().next().unwrap()
}

async fn create(db: &DatabaseConnection, ws: &WorkspaceId, input: CanvasInput) -> Canvas {
    canvas::create_canvas(db, ws, input, now()).await.unwrap()
}

async fn launched(db: &DatabaseConnection, ws: &WorkspaceId, input: CanvasInput) -> Canvas {
    let created = create(db, ws, input).await;
    canvas::launch_canvas(db, ws, &created.id, now())
        .await
        .unwrap()
}

/// The frozen definition of a version, read from its row.
async fn frozen(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    id: &CanvasId,
    version: i32,
) -> Option<Definition> {
    canvas_version::Entity::find_by_id((ws.to_string(), id.to_string(), version))
        .one(db)
        .await
        .unwrap()
        .map(|row| serde_json::from_str(&row.definition).unwrap())
}

/// The Canvas's occurrences as (due time, status), by due time.
async fn occurrences(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    id: &CanvasId,
) -> Vec<(DateTime<Utc>, String)> {
    canvas_occurrence::Entity::find()
        .filter(canvas_occurrence::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_occurrence::Column::CanvasId.eq(id.as_str()))
        .order_by_asc(canvas_occurrence::Column::DueAt)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.due_at, o.status))
        .collect()
}

async fn names(db: &DatabaseConnection, ws: &WorkspaceId, filter: CanvasFilter) -> Vec<String> {
    canvas::list_canvases(db, ws, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Problems (pure)

#[test]
fn a_complete_definition_has_no_problems_even_with_a_last_step_without_next_and_a_past_delay_date()
{
    let mut d = definition();
    assert_eq!(canvas::problems(&d), vec![]);
    // A step's plain `next` left empty ends the journey after it (the last step's), and a Delay
    // until a date already past only makes users exit when they reach it.
    d.steps.push(step(
        "late",
        "",
        StepKind::Delay {
            delay: DelaySpec::Until {
                at: at(2020, 1, 1, 0, 0),
            },
            next: None,
        },
    ));
    d.steps[3] = send("follow-up", next("late"));
    assert_eq!(canvas::problems(&d), vec![]);
    // A variant with no first step is empty: its users finish at once.
    d.variants = vec![variant("Main", 50, "welcome"), {
        let mut empty = variant("Empty", 50, "welcome");
        empty.first_step = None;
        empty
    }];
    assert_eq!(canvas::problems(&d), vec![]);
}

#[test]
fn an_empty_branch_is_a_problem_of_its_step_until_it_gets_a_step_or_an_exit() {
    // The split's No branch left empty: the Exit step is unreachable too.
    let mut d = definition();
    if let StepKind::DecisionSplit { no, .. } = &mut d.steps[2].kind {
        *no = None;
    }
    let found = canvas::problems(&d);
    assert_eq!(fields(&found), ["steps[2].no", "steps[4]"]);
    assert_eq!(found[0].step_id, Some(id("split")));
    assert_eq!(
        found[0].message,
        "the No branch is empty: add a step to it, or an Exit step to end the journey there"
    );
    // Both branches empty, the Exit step removed.
    d.steps.pop();
    if let StepKind::DecisionSplit { yes, .. } = &mut d.steps[2].kind {
        *yes = None;
    }
    d.steps.pop();
    assert_eq!(
        fields(&canvas::problems(&d)),
        ["steps[2].yes", "steps[2].no"]
    );

    // Audience and Action Paths: each path and Everyone Else.
    let with = |kind: StepKind| {
        let mut d = definition();
        d.steps[2].kind = kind;
        d
    };
    let group = |name: &str, then: Option<StepId>| AudiencePath {
        name: name.into(),
        filter: has_name(),
        next: then,
    };
    let audience = with(StepKind::AudiencePaths {
        paths: vec![group("Named", next("follow-up")), group("Others", None)],
        everyone_else: None,
    });
    let found = canvas::problems(&audience);
    assert_eq!(
        fields(&found),
        [
            "steps[2].paths[1].next",
            "steps[2].everyone_else",
            "steps[4]"
        ]
    );
    assert!(
        found[0].message.starts_with("the path “Others” is empty"),
        "{}",
        found[0].message
    );
    assert!(
        found[1]
            .message
            .starts_with("the Everyone Else path is empty"),
        "{}",
        found[1].message
    );
    let audience = with(StepKind::AudiencePaths {
        paths: vec![
            group("Named", next("follow-up")),
            group("Others", next("done")),
        ],
        everyone_else: next("done"),
    });
    assert_eq!(canvas::problems(&audience), vec![]);

    let bought = |then: Option<StepId>| ActionPath {
        name: "Bought".into(),
        trigger: Trigger::Purchase { product_id: None },
        next: then,
    };
    let action = with(StepKind::ActionPaths {
        window_seconds: 3600,
        paths: vec![bought(None)],
        everyone_else: next("follow-up"),
    });
    assert_eq!(
        fields(&canvas::problems(&action)),
        ["steps[2].paths[0].next", "steps[4]"]
    );
    let action = with(StepKind::ActionPaths {
        window_seconds: 3600,
        paths: vec![bought(next("follow-up"))],
        everyone_else: None,
    });
    assert_eq!(
        fields(&canvas::problems(&action)),
        ["steps[2].everyone_else", "steps[4]"]
    );

    // Experiment paths; the control group is no branch (it ends the journey).
    let experiment = |then: Option<StepId>| {
        with(StepKind::Experiment {
            paths: vec![
                ExperimentPath {
                    name: "A".into(),
                    percent: 40,
                    next: next("follow-up"),
                },
                ExperimentPath {
                    name: "B".into(),
                    percent: 40,
                    next: then,
                },
            ],
            control_percent: 20,
        })
    };
    assert_eq!(
        fields(&canvas::problems(&experiment(None))),
        ["steps[2].paths[1].next", "steps[4]"]
    );
    assert_eq!(canvas::problems(&experiment(next("done"))), vec![]);
}

#[test]
fn a_branch_naming_a_missing_step_is_a_problem_of_that_branch() {
    let mut d = definition();
    d.steps[0] = send("welcome", next("nowhere"));
    let found = canvas::problems(&d);
    // `wait` and what follows it can no longer be reached either.
    assert_eq!(
        fields(&found),
        [
            "steps[0].next",
            "steps[1]",
            "steps[2]",
            "steps[3]",
            "steps[4]"
        ]
    );
    assert_eq!(found[0].step_id, Some(id("welcome")));
    assert!(found[0].message.contains("nowhere"), "{}", found[0].message);

    let mut d = definition();
    d.steps[2].kind = StepKind::DecisionSplit {
        segment_ids: vec![],
        filter: Some(has_name()),
        yes: next("follow-up"),
        no: next("missing"),
    };
    d.steps[3] = send("follow-up", next("done"));
    assert_eq!(only_problem(&d).field, "steps[2].no");

    let mut d = definition();
    d.variants[0].first_step = next("missing");
    let found = canvas::problems(&d);
    assert_eq!(found[0].field, "variants[0].first_step");
    assert_eq!(found[0].step_id, None);
}

#[test]
fn a_branch_leading_back_to_an_earlier_step_is_a_cycle() {
    let mut d = definition();
    // follow-up → welcome closes welcome → wait → split → follow-up → welcome.
    d.steps[3] = send("follow-up", next("welcome"));
    let problem = only_problem(&d);
    assert_eq!(problem.field, "steps[3].next");
    assert_eq!(problem.step_id, Some(id("follow-up")));
    assert!(
        problem
            .message
            .contains("welcome → wait → split → follow-up → welcome"),
        "{}",
        problem.message
    );

    // A step leading to itself.
    let mut d = definition();
    d.steps[3] = send("follow-up", next("follow-up"));
    let problem = only_problem(&d);
    assert_eq!(problem.field, "steps[3].next");
    assert!(
        problem.message.contains("follow-up → follow-up"),
        "{}",
        problem.message
    );

    // Two paths joining again is not a cycle.
    let mut d = definition();
    d.steps[2].kind = StepKind::DecisionSplit {
        segment_ids: vec![],
        filter: Some(has_name()),
        yes: next("follow-up"),
        no: next("follow-up"),
    };
    d.steps[3] = send("follow-up", next("done"));
    assert_eq!(canvas::problems(&d), vec![]);
}

#[test]
fn a_step_no_variant_leads_to_is_unreachable() {
    let mut d = definition();
    d.steps.push(send("orphan", next("follow-up")));
    let problem = only_problem(&d);
    assert_eq!(problem.field, "steps[5]");
    assert_eq!(problem.step_id, Some(id("orphan")));
    assert!(
        problem.message.contains("unreachable"),
        "{}",
        problem.message
    );

    // Reachable from a second variant only: fine.
    d.variants = vec![variant("A", 50, "welcome"), variant("B", 50, "orphan")];
    assert_eq!(canvas::problems(&d), vec![]);
}

#[test]
fn a_message_step_whose_webhook_does_not_compile_names_the_part() {
    let mut d = definition();
    let mut bad = message("https://hooks.example.com/in");
    bad.body = Body::Raw {
        text: "{{ ${first_name} | foo }}".into(),
    };
    d.steps[3].kind = StepKind::Message {
        message: bad,
        next: None,
    };
    let problem = only_problem(&d);
    assert_eq!(problem.field, "steps[3].message.body");
    assert_eq!(problem.step_id, Some(id("follow-up")));

    let mut d = definition();
    d.steps[0].kind = StepKind::Message {
        message: message("ftp://example.com"),
        next: next("wait"),
    };
    assert_eq!(only_problem(&d).field, "steps[0].message.url");
}

#[test]
fn percentages_must_add_up_for_variants_and_experiments() {
    let mut d = definition();
    d.variants[0].percent = 90;
    assert_eq!(only_problem(&d).field, "variants");
    d.control_percent = 10;
    assert_eq!(canvas::problems(&d), vec![]);
    d.control_percent = 150;
    assert_eq!(
        fields(&canvas::problems(&d)),
        ["control_percent", "variants"]
    );

    let mut d = definition();
    d.variants.clear();
    let found = canvas::problems(&d);
    assert_eq!(found[0].field, "variants");
    assert!(
        found
            .iter()
            .all(|p| p.field == "variants" || p.field.starts_with("steps["))
    );

    let experiment = |percents: &[u8], control: u8| {
        let mut d = definition();
        d.steps[3] = step(
            "follow-up",
            "Test",
            StepKind::Experiment {
                paths: percents
                    .iter()
                    .enumerate()
                    .map(|(i, p)| ExperimentPath {
                        name: format!("Path {i}"),
                        percent: *p,
                        next: next("done"),
                    })
                    .collect(),
                control_percent: control,
            },
        );
        d
    };
    assert_eq!(canvas::problems(&experiment(&[40, 40], 20)), vec![]);
    assert_eq!(
        only_problem(&experiment(&[40, 40], 0)).field,
        "steps[3].paths"
    );
    assert_eq!(only_problem(&experiment(&[], 100)).field, "steps[3].paths");
    assert_eq!(
        only_problem(&experiment(&[20, 20, 20, 20, 20], 0)).field,
        "steps[3].paths"
    );
}

#[test]
fn limits_on_steps_paths_and_variables_are_enforced() {
    // 201 steps in a chain.
    let mut d = definition();
    d.steps = (0..201)
        .map(|i| {
            let then = (i < 200).then(|| id(&format!("s{}", i + 1)));
            wait(&format!("s{i}"), 60, then)
        })
        .collect();
    d.variants[0].first_step = next("s0");
    assert_eq!(only_problem(&d).field, "steps");
    d.steps.truncate(200);
    d.steps[199] = wait("s199", 60, None);
    assert_eq!(canvas::problems(&d), vec![]);

    let audience_paths = |n: usize| {
        let mut d = definition();
        d.steps[2] = step(
            "split",
            "Paths",
            StepKind::AudiencePaths {
                paths: (0..n)
                    .map(|i| AudiencePath {
                        name: format!("Group {i}"),
                        filter: has_name(),
                        next: next("follow-up"),
                    })
                    .collect(),
                everyone_else: next("done"),
            },
        );
        d
    };
    assert_eq!(canvas::problems(&audience_paths(7)), vec![]);
    assert_eq!(only_problem(&audience_paths(8)).field, "steps[2].paths");

    let context = |n: usize| {
        let mut d = definition();
        d.steps[3] = step(
            "follow-up",
            "Remember",
            StepKind::Context {
                variables: (0..n)
                    .map(|i| ContextVariable {
                        name: format!("v{i}"),
                        value_type: "string".into(),
                        value: "{{${first_name}}}".into(),
                    })
                    .collect(),
                next: None,
            },
        );
        d
    };
    assert_eq!(canvas::problems(&context(10)), vec![]);
    assert_eq!(only_problem(&context(11)).field, "steps[3].variables");
    let mut d = context(2);
    if let StepKind::Context { variables, .. } = &mut d.steps[3].kind {
        variables[1].name = "v0".into();
        variables[0].value = "{{ ${first_name} | foo }}".into();
        variables[0].value_type = "colour".into();
    }
    assert_eq!(
        fields(&canvas::problems(&d)),
        [
            "steps[3].variables[0].value_type",
            "steps[3].variables[0].value",
            "steps[3].variables[1].name"
        ]
    );

    // Delays: 1 second to 2 years.
    let mut d = definition();
    d.steps[1] = wait("wait", 0, next("split"));
    assert_eq!(only_problem(&d).field, "steps[1].delay.seconds");
    d.steps[1] = wait("wait", 3 * 365 * 86_400, next("split"));
    assert_eq!(only_problem(&d).field, "steps[1].delay.seconds");
}

#[test]
fn an_unknown_time_zone_is_a_problem_of_the_settings_or_the_schedule() {
    let mut d = definition();
    d.settings.time_zone = Some("Mars/Olympus".into());
    let problem = only_problem(&d);
    assert_eq!(problem.field, "settings.time_zone");
    assert!(problem.message.contains("Mars/Olympus"));
    d.settings.time_zone = Some("Europe/Paris".into());
    assert_eq!(canvas::problems(&d), vec![]);

    let mut d = definition();
    d.entry = scheduled_daily(date(2026, 12, 1), 10);
    assert_eq!(canvas::problems(&d), vec![]);
    if let Entry::Scheduled {
        schedule: Schedule::At { time_zone, .. },
    } = &mut d.entry
    {
        *time_zone = "Nowhere/City".into();
    }
    assert_eq!(only_problem(&d).field, "entry.schedule.time_zone");
}

#[test]
fn action_paths_wait_between_a_second_and_31_days_for_at_least_one_named_path() {
    let action_paths = |window_seconds: u64, paths: Vec<ActionPath>| {
        let mut d = definition();
        d.steps[2] = step(
            "split",
            "Did they buy?",
            StepKind::ActionPaths {
                window_seconds,
                paths,
                everyone_else: next("done"),
            },
        );
        d
    };
    let bought = || ActionPath {
        name: "Bought".into(),
        trigger: Trigger::Purchase { product_id: None },
        next: next("follow-up"),
    };
    assert_eq!(
        canvas::problems(&action_paths(86_400, vec![bought()])),
        vec![]
    );
    assert_eq!(
        only_problem(&action_paths(0, vec![bought()])).field,
        "steps[2].window_seconds"
    );
    assert_eq!(
        only_problem(&action_paths(32 * 86_400, vec![bought()])).field,
        "steps[2].window_seconds"
    );
    // Without paths, follow-up is unreachable too.
    assert_eq!(
        fields(&canvas::problems(&action_paths(31 * 86_400, vec![]))),
        ["steps[2].paths", "steps[3]"]
    );
    let unnamed = ActionPath {
        name: " ".into(),
        trigger: event(""),
        next: next("done"),
    };
    assert_eq!(
        fields(&canvas::problems(&action_paths(
            60,
            vec![bought(), unnamed]
        ))),
        ["steps[2].paths[1].name", "steps[2].paths[1].trigger.name"]
    );
    let twice = action_paths(60, vec![bought(), bought()]);
    assert_eq!(only_problem(&twice).field, "steps[2].paths[1].name");
}

#[test]
fn entry_exit_and_settings_problems_name_their_fields() {
    let mut d = definition();
    d.entry = Entry::Action {
        trigger: event("  "),
        starts_at: None,
        ends_at: None,
    };
    assert_eq!(only_problem(&d).field, "entry.trigger.name");
    d.entry = Entry::Action {
        trigger: Trigger::CustomEvent {
            name: "signed_up".into(),
            property_filters: vec![PropertyFilter {
                property: "plan".into(),
                comparison: "resembles".into(),
                value: json!("pro"),
            }],
        },
        starts_at: Some(now()),
        ends_at: Some(now() - Duration::days(1)),
    };
    assert_eq!(
        fields(&canvas::problems(&d)),
        [
            "entry.trigger.property_filters[0].comparison",
            "entry.ends_at"
        ]
    );

    let mut d = definition();
    d.exit = ExitCriteria {
        events: vec![event("unsubscribed"), event("")],
        segment_ids: vec![],
        filter: Some(Filter::And {
            filters: vec![Filter::RandomBucket { min: 10, max: 5 }],
        }),
    };
    assert_eq!(
        fields(&canvas::problems(&d)),
        ["exit.events[1].name", "exit.filter"]
    );

    let mut d = definition();
    d.settings = CanvasSettings {
        rate_per_minute: Some(0),
        reentry_after_seconds: Some(1000 * 86_400),
        entry_limit: Some(EntryLimit {
            max: 0,
            per: LimitPeriod::Day,
        }),
        time_zone: None,
    };
    assert_eq!(
        fields(&canvas::problems(&d)),
        [
            "settings.rate_per_minute",
            "settings.reentry_after_seconds",
            "settings.entry_limit.max"
        ]
    );
}

#[test]
fn step_ids_are_well_formed_and_unique_and_splits_decide_on_something() {
    let mut d = definition();
    d.steps[3] = send("Follow Up!", None);
    d.steps[2].kind = StepKind::DecisionSplit {
        segment_ids: vec![],
        filter: Some(has_name()),
        yes: next("Follow Up!"),
        no: next("done"),
    };
    assert_eq!(only_problem(&d).field, "steps[3].id");

    let mut d = definition();
    d.steps.push(send("welcome", None));
    let problem = only_problem(&d);
    assert_eq!(problem.field, "steps[5].id");
    assert!(problem.message.contains("already"), "{}", problem.message);

    let mut d = definition();
    d.steps[2].kind = StepKind::DecisionSplit {
        segment_ids: vec![],
        filter: None,
        yes: next("follow-up"),
        no: next("done"),
    };
    assert_eq!(only_problem(&d).field, "steps[2].filter");
    d.steps[2].kind = StepKind::DecisionSplit {
        segment_ids: vec![SegmentId::generate()],
        filter: None,
        yes: next("follow-up"),
        no: next("done"),
    };
    assert_eq!(canvas::problems(&d), vec![]);

    let mut d = definition();
    let mut attributes = Map::new();
    attributes.insert("plan".into(), json!("{{ ${first_name} | foo }}"));
    attributes.insert("external_id".into(), json!("x"));
    d.steps[3].kind = StepKind::UserUpdate {
        attributes,
        next: None,
    };
    assert_eq!(
        fields(&canvas::problems(&d)),
        ["steps[3].attributes", "steps[3].attributes"]
    );
}

// ---------------------------------------------------------------------------------------------
// Store

#[tokio::test]
async fn a_created_canvas_reads_back_as_a_draft_with_variant_ids_and_indexed_columns() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut wanted = input("  Onboarding  ");
        wanted.definition.variants = vec![variant("", 60, "welcome"), variant("B", 40, "wait")];
        let kept = VariantId::generate();
        wanted.definition.variants[1].id = Some(kept.clone());
        let created = create(&db, &ws, wanted.clone()).await;
        assert_eq!(created.name, "Onboarding");
        assert_eq!(created.status, CanvasStatus::Draft);
        assert_eq!(created.version, 1);
        assert_eq!(created.live_version, None);
        assert_eq!(created.created_at, now());
        assert_eq!(created.launched_at, None);
        assert_eq!(created.tags, ["onboarding"]);
        let variants = &created.draft.variants;
        assert_eq!(variants[0].name, "Variant 1");
        assert!(variants[0].id.is_some());
        assert_eq!(variants[1].id.as_ref(), Some(&kept));
        assert_eq!(created.draft.steps, wanted.definition.steps);

        let found = canvas::find_canvas(&db, &ws, &created.id).await.unwrap();
        assert_eq!(found, created);

        let row = canvas_entity::Entity::find_by_id((ws.to_string(), created.id.to_string()))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.entry_type, "api");
        assert_eq!(row.trigger_event, None);

        let mut action = input("Bought");
        action.definition.entry = Entry::Action {
            trigger: Trigger::Purchase {
                product_id: Some("book".into()),
            },
            starts_at: None,
            ends_at: None,
        };
        let bought = create(&db, &ws, action).await;
        let mut action = input("Signed up");
        action.definition.entry = Entry::Action {
            trigger: event("signed_up"),
            starts_at: None,
            ends_at: None,
        };
        let signed = create(&db, &ws, action).await;
        for (canvas, trigger) in [(&bought, "purchase"), (&signed, "signed_up")] {
            let row = canvas_entity::Entity::find_by_id((ws.to_string(), canvas.id.to_string()))
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.entry_type, "action");
            assert_eq!(row.trigger_event.as_deref(), Some(trigger));
        }

        let other = WorkspaceId::generate();
        assert!(matches!(
            canvas::find_canvas(&db, &other, &created.id).await,
            Err(DomainError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn a_draft_may_hold_problems_but_not_a_bad_name_or_tags() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut broken = input("Broken");
        broken.definition.steps[0] = send("welcome", next("nowhere"));
        broken.definition.variants[0].percent = 10;
        let saved = create(&db, &ws, broken).await;
        assert_eq!(saved.status, CanvasStatus::Draft);
        assert!(!canvas::problems(&saved.draft).is_empty());

        let cases = [
            (
                "name",
                CanvasInput {
                    name: "   ".into(),
                    ..input("x")
                },
            ),
            (
                "name",
                CanvasInput {
                    name: "n".repeat(201),
                    ..input("x")
                },
            ),
            (
                "tags",
                CanvasInput {
                    tags: (0..21).map(|i| format!("t{i}")).collect(),
                    ..input("x")
                },
            ),
            (
                "tags",
                CanvasInput {
                    tags: vec![" ".into()],
                    ..input("x")
                },
            ),
            (
                "description",
                CanvasInput {
                    description: "d".repeat(2001),
                    ..input("x")
                },
            ),
        ];
        for (field, bad) in cases {
            assert_eq!(
                field_of(canvas::create_canvas(&db, &ws, bad, now()).await),
                field
            );
        }
        assert_eq!(names(&db, &ws, CanvasFilter::default()).await, ["Broken"]);
    }
}

#[tokio::test]
async fn launch_refuses_a_canvas_with_problems_naming_the_first_problems_field() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut broken = input("Broken");
        broken.definition.steps[1] = wait("wait", 60, next("nowhere"));
        let created = create(&db, &ws, broken).await;
        let refused = canvas::launch_canvas(&db, &ws, &created.id, now()).await;
        let Err(DomainError::Invalid { field, message }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert_eq!(field, "steps");
        assert!(message.contains("steps[1].next"), "{message}");
        assert!(message.contains("nowhere"), "{message}");
        // Nothing changed.
        let after = canvas::find_canvas(&db, &ws, &created.id).await.unwrap();
        assert_eq!(after, created);
        assert_eq!(frozen(&db, &ws, &created.id, 1).await, None);

        let mut zone = input("Zone");
        zone.definition.settings.time_zone = Some("Mars/Olympus".into());
        let created = create(&db, &ws, zone).await;
        assert_eq!(
            field_of(canvas::launch_canvas(&db, &ws, &created.id, now()).await),
            "settings.time_zone"
        );

        // An empty branch blocks launch, and the refusal says what to do about it.
        let mut open_ended = input("Open ended");
        open_ended.definition.steps.pop();
        if let StepKind::DecisionSplit { no, .. } = &mut open_ended.definition.steps[2].kind {
            *no = None;
        }
        let created = create(&db, &ws, open_ended).await;
        let refused = canvas::launch_canvas(&db, &ws, &created.id, now()).await;
        let Err(DomainError::Invalid { field, message }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert_eq!(field, "steps");
        assert_eq!(
            message,
            "step “split”, steps[2].no: the No branch is empty: add a step to it, or an Exit \
             step to end the journey there"
        );
        assert_eq!(frozen(&db, &ws, &created.id, 1).await, None);

        // A one-off schedule already past has no entry time left.
        let mut past = input("Past");
        past.definition.entry = Entry::Scheduled {
            schedule: Schedule::At {
                starts_on: date(2026, 11, 1),
                time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                recurrence: Recurrence::Once,
                ends_on: None,
                time_zone: "UTC".into(),
                in_local_time: false,
            },
        };
        let created = create(&db, &ws, past).await;
        assert_eq!(
            field_of(canvas::launch_canvas(&db, &ws, &created.id, now()).await),
            "entry.schedule"
        );
    }
}

#[tokio::test]
async fn segments_must_exist_and_not_be_archived_to_launch() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let everyone = Filter::And { filters: vec![] };
        let kept = segment::create(&db, &ws, "All", "", &everyone, now())
            .await
            .unwrap();
        let gone = segment::create(&db, &ws, "Old", "", &everyone, now())
            .await
            .unwrap();
        segment::archive(&db, &ws, &gone.id, now()).await.unwrap();
        let unknown = SegmentId::generate();

        let mut d = definition();
        d.audience.segment_ids = vec![kept.id.clone()];
        d.exit.segment_ids = vec![kept.id.clone()];
        d.steps[2].kind = StepKind::DecisionSplit {
            segment_ids: vec![kept.id.clone()],
            filter: None,
            yes: next("follow-up"),
            no: next("done"),
        };
        assert_eq!(
            canvas::check_definition(&db, &ws, &d).await.unwrap(),
            vec![]
        );

        d.audience.segment_ids = vec![gone.id.clone()];
        d.exit.segment_ids = vec![unknown.clone()];
        d.steps[2].kind = StepKind::DecisionSplit {
            segment_ids: vec![kept.id.clone(), gone.id.clone()],
            filter: None,
            yes: next("follow-up"),
            no: next("done"),
        };
        let found = canvas::check_definition(&db, &ws, &d).await.unwrap();
        assert_eq!(
            fields(&found),
            [
                "audience.segment_ids",
                "exit.segment_ids",
                "steps[2].segment_ids"
            ]
        );
        assert!(
            found[0].message.contains("archived"),
            "{}",
            found[0].message
        );
        assert!(found[1].message.contains(unknown.as_str()));
        assert_eq!(found[2].step_id, Some(id("split")));

        let created = create(
            &db,
            &ws,
            CanvasInput {
                definition: d,
                ..input("Segments")
            },
        )
        .await;
        assert_eq!(
            field_of(canvas::launch_canvas(&db, &ws, &created.id, now()).await),
            "audience.segment_ids"
        );
    }
}

#[tokio::test]
async fn launch_freezes_version_one_and_only_a_draft_launches() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = create(&db, &ws, input("Onboarding")).await;
        let later = now() + Duration::hours(1);
        let live = canvas::launch_canvas(&db, &ws, &created.id, later)
            .await
            .unwrap();
        assert_eq!(live.status, CanvasStatus::Active);
        assert_eq!(live.live_version, Some(1));
        assert_eq!(live.launched_at, Some(later));
        assert_eq!(live.version, created.version + 1);
        assert_eq!(live.draft, created.draft);
        assert_eq!(
            frozen(&db, &ws, &created.id, 1).await,
            Some(created.draft.clone())
        );
        assert_eq!(
            canvas::find_canvas(&db, &ws, &created.id).await.unwrap(),
            live
        );
        // An API entry has no occurrences.
        assert_eq!(occurrences(&db, &ws, &created.id).await, vec![]);

        assert_eq!(
            field_of(canvas::launch_canvas(&db, &ws, &created.id, later).await),
            "status"
        );
        assert_eq!(frozen(&db, &ws, &created.id, 2).await, None);
    }
}

#[tokio::test]
async fn a_scheduled_entry_gets_its_first_occurrence_at_launch() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut daily = input("Daily");
        daily.definition.entry = scheduled_daily(date(2026, 11, 28), 10);
        let live = launched(&db, &ws, daily).await;
        assert_eq!(
            occurrences(&db, &ws, &live.id).await,
            [(at(2026, 11, 28, 10, 0), "pending".to_string())]
        );

        let mut now_entry = input("At launch");
        now_entry.definition.entry = Entry::Scheduled {
            schedule: Schedule::AtLaunch,
        };
        let live = launched(&db, &ws, now_entry).await;
        assert_eq!(
            occurrences(&db, &ws, &live.id).await,
            [(now(), "pending".to_string())]
        );
    }
}

#[tokio::test]
async fn editing_a_live_canvas_freezes_the_next_version_and_keeps_the_earlier_one() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let live = launched(&db, &ws, input("Onboarding")).await;
        let v1 = live.draft.clone();
        let later = now() + Duration::days(1);

        let mut edit = input("Onboarding");
        edit.definition = v1.clone();
        edit.definition.steps[1] = wait("wait", 2 * 86_400, next("split"));
        let v2 = canvas::update_canvas(&db, &ws, &live.id, edit.clone(), Some(live.version), later)
            .await
            .unwrap();
        assert_eq!(v2.live_version, Some(2));
        assert_eq!(v2.status, CanvasStatus::Active);
        assert_eq!(v2.version, live.version + 1);
        assert_eq!(v2.updated_at, later);
        assert_eq!(v2.draft, edit.definition);
        // Variant ids survive the edit, so users keep their variant.
        assert_eq!(v2.draft.variants[0].id, v1.variants[0].id);
        assert_eq!(frozen(&db, &ws, &live.id, 1).await, Some(v1.clone()));
        assert_eq!(
            frozen(&db, &ws, &live.id, 2).await,
            Some(edit.definition.clone())
        );

        // A new name alone freezes nothing.
        let renamed = canvas::update_canvas(
            &db,
            &ws,
            &live.id,
            CanvasInput {
                name: "Welcome journey".into(),
                definition: v2.draft.clone(),
                ..edit.clone()
            },
            None,
            later,
        )
        .await
        .unwrap();
        assert_eq!(renamed.name, "Welcome journey");
        assert_eq!(renamed.live_version, Some(2));
        assert_eq!(frozen(&db, &ws, &live.id, 3).await, None);

        // An edit with problems is refused and changes nothing.
        let mut broken = edit.clone();
        broken.definition.steps[3] = send("follow-up", next("welcome"));
        let Err(DomainError::Invalid { field, message }) =
            canvas::update_canvas(&db, &ws, &live.id, broken, None, later).await
        else {
            panic!("a live edit with a cycle must be refused");
        };
        assert_eq!(field, "steps");
        assert!(message.contains("steps[3].next"), "{message}");
        assert_eq!(
            canvas::find_canvas(&db, &ws, &live.id).await.unwrap(),
            renamed
        );
        assert_eq!(frozen(&db, &ws, &live.id, 3).await, None);

        // A draft's edits freeze nothing.
        let draft = create(&db, &ws, input("Draft")).await;
        let mut broken = input("Draft");
        broken.definition.steps.clear();
        let saved = canvas::update_canvas(&db, &ws, &draft.id, broken, None, later)
            .await
            .unwrap();
        assert_eq!(saved.live_version, None);
        assert!(saved.draft.steps.is_empty());
        assert_eq!(frozen(&db, &ws, &draft.id, 1).await, None);
    }
}

#[tokio::test]
async fn a_stale_version_is_a_conflict() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = create(&db, &ws, input("Onboarding")).await;
        let first = canvas::update_canvas(
            &db,
            &ws,
            &created.id,
            input("First"),
            Some(created.version),
            now(),
        )
        .await
        .unwrap();
        let second = canvas::update_canvas(
            &db,
            &ws,
            &created.id,
            input("Second"),
            Some(created.version),
            now(),
        )
        .await;
        assert!(
            matches!(
                second,
                Err(DomainError::Conflict {
                    field: "version",
                    ..
                })
            ),
            "{second:?}"
        );
        assert_eq!(
            canvas::find_canvas(&db, &ws, &created.id)
                .await
                .unwrap()
                .name,
            first.name
        );
        assert!(matches!(
            canvas::update_canvas(&db, &ws, &CanvasId::generate(), input("x"), None, now()).await,
            Err(DomainError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn the_lifecycle_moves_through_pause_resume_stop_archive_and_refuses_the_rest() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let t = |minutes: i64| now() + Duration::minutes(minutes);
        let draft = create(&db, &ws, input("Onboarding")).await;
        let id = draft.id.clone();
        // A draft can't be paused, resumed, stopped or unarchived.
        assert_eq!(
            field_of(canvas::pause_canvas(&db, &ws, &id, t(1)).await),
            "status"
        );
        assert_eq!(
            field_of(canvas::resume_canvas(&db, &ws, &id, t(1)).await),
            "status"
        );
        assert_eq!(
            field_of(canvas::stop_canvas(&db, &ws, &id, t(1)).await),
            "status"
        );
        assert_eq!(
            field_of(canvas::unarchive_canvas(&db, &ws, &id, t(1)).await),
            "status"
        );

        canvas::launch_canvas(&db, &ws, &id, t(1)).await.unwrap();
        let paused = canvas::pause_canvas(&db, &ws, &id, t(2)).await.unwrap();
        assert_eq!(paused.status, CanvasStatus::Paused);
        assert_eq!(
            field_of(canvas::pause_canvas(&db, &ws, &id, t(3)).await),
            "status"
        );
        let resumed = canvas::resume_canvas(&db, &ws, &id, t(3)).await.unwrap();
        assert_eq!(resumed.status, CanvasStatus::Active);
        assert_eq!(
            field_of(canvas::resume_canvas(&db, &ws, &id, t(4)).await),
            "status"
        );

        let stopped = canvas::stop_canvas(&db, &ws, &id, t(4)).await.unwrap();
        assert_eq!(stopped.status, CanvasStatus::Stopped);
        assert_eq!(stopped.stopped_at, Some(t(4)));
        assert_eq!(
            field_of(canvas::stop_canvas(&db, &ws, &id, t(5)).await),
            "status"
        );
        assert_eq!(
            field_of(canvas::pause_canvas(&db, &ws, &id, t(5)).await),
            "status"
        );
        assert_eq!(
            field_of(canvas::launch_canvas(&db, &ws, &id, t(5)).await),
            "status"
        );
        let resumed = canvas::resume_canvas(&db, &ws, &id, t(5)).await.unwrap();
        assert_eq!(resumed.status, CanvasStatus::Active);
        assert_eq!(resumed.stopped_at, None);
        assert_eq!(resumed.live_version, Some(1));

        // Archiving a running Canvas stops it.
        let archived = canvas::archive_canvas(&db, &ws, &id, t(6)).await.unwrap();
        assert_eq!(archived.status, CanvasStatus::Archived);
        assert_eq!(archived.archived_at, Some(t(6)));
        assert_eq!(archived.stopped_at, Some(t(6)));
        let again = canvas::archive_canvas(&db, &ws, &id, t(7)).await.unwrap();
        assert_eq!(again, archived);
        assert_eq!(
            field_of(canvas::resume_canvas(&db, &ws, &id, t(7)).await),
            "status"
        );
        assert_eq!(
            field_of(canvas::update_canvas(&db, &ws, &id, input("x"), None, t(7)).await),
            "status"
        );
        let back = canvas::unarchive_canvas(&db, &ws, &id, t(8)).await.unwrap();
        assert_eq!(back.status, CanvasStatus::Stopped);
        assert_eq!(back.archived_at, None);

        // A never-launched Canvas comes back a draft.
        let other = create(&db, &ws, input("Other")).await;
        canvas::archive_canvas(&db, &ws, &other.id, t(1))
            .await
            .unwrap();
        let back = canvas::unarchive_canvas(&db, &ws, &other.id, t(2))
            .await
            .unwrap();
        assert_eq!(back.status, CanvasStatus::Draft);
        assert_eq!(back.stopped_at, None);
        assert_eq!(
            canvas::launch_canvas(&db, &ws, &other.id, t(3))
                .await
                .unwrap()
                .status,
            CanvasStatus::Active
        );
    }
}

#[tokio::test]
async fn a_changed_schedule_is_replanned_and_a_resume_skips_entry_times_that_passed() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut daily = input("Daily");
        daily.definition.entry = scheduled_daily(date(2026, 11, 28), 10);
        let live = launched(&db, &ws, daily.clone()).await;
        assert_eq!(
            occurrences(&db, &ws, &live.id).await,
            [(at(2026, 11, 28, 10, 0), "pending".to_string())]
        );

        // Another step changed, the schedule did not: the occurrence stays as it is.
        let mut edit = daily.clone();
        edit.definition.variants = live.draft.variants.clone();
        edit.definition.steps[1] = wait("wait", 3_600, next("split"));
        canvas::update_canvas(&db, &ws, &live.id, edit.clone(), None, now())
            .await
            .unwrap();
        assert_eq!(occurrences(&db, &ws, &live.id).await.len(), 1);

        // Now at 18:00 instead.
        edit.definition.entry = scheduled_daily(date(2026, 11, 28), 18);
        let moved = canvas::update_canvas(&db, &ws, &live.id, edit.clone(), None, now())
            .await
            .unwrap();
        assert_eq!(moved.live_version, Some(3));
        assert_eq!(
            occurrences(&db, &ws, &live.id).await,
            [
                (at(2026, 11, 28, 10, 0), "cancelled".to_string()),
                (at(2026, 11, 28, 18, 0), "pending".to_string())
            ]
        );

        // Stopped, its occurrence stays pending (entry checks the status).
        canvas::stop_canvas(&db, &ws, &live.id, now() + Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(
            occurrences(&db, &ws, &live.id).await[1],
            (at(2026, 11, 28, 18, 0), "pending".to_string())
        );
        // Resumed two days later: the 18:00 entries that passed are skipped.
        canvas::resume_canvas(&db, &ws, &live.id, at(2026, 11, 30, 12, 0))
            .await
            .unwrap();
        assert_eq!(
            occurrences(&db, &ws, &live.id).await,
            [
                (at(2026, 11, 28, 10, 0), "cancelled".to_string()),
                (at(2026, 11, 28, 18, 0), "cancelled".to_string()),
                (at(2026, 11, 30, 18, 0), "pending".to_string())
            ]
        );

        // No longer scheduled: nothing stays pending.
        edit.definition.entry = Entry::Api;
        canvas::update_canvas(&db, &ws, &live.id, edit, None, at(2026, 11, 30, 13, 0))
            .await
            .unwrap();
        assert!(
            occurrences(&db, &ws, &live.id)
                .await
                .iter()
                .all(|(_, status)| status == "cancelled")
        );
    }
}

#[tokio::test]
async fn lists_are_newest_first_and_filter_by_status_tag_and_archive() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let t = |minutes: i64| now() + Duration::minutes(minutes);
        canvas::create_canvas(&db, &ws, input("First"), t(0))
            .await
            .unwrap();
        let second = canvas::create_canvas(
            &db,
            &ws,
            CanvasInput {
                tags: vec!["Promo".into()],
                ..input("Second")
            },
            t(1),
        )
        .await
        .unwrap();
        let third = canvas::create_canvas(&db, &ws, input("Third"), t(2))
            .await
            .unwrap();
        canvas::launch_canvas(&db, &ws, &second.id, t(3))
            .await
            .unwrap();
        canvas::archive_canvas(&db, &ws, &third.id, t(4))
            .await
            .unwrap();
        // Another workspace's Canvas never shows.
        canvas::create_canvas(&db, &WorkspaceId::generate(), input("Elsewhere"), t(5))
            .await
            .unwrap();

        assert_eq!(
            names(&db, &ws, CanvasFilter::default()).await,
            ["Second", "First"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CanvasFilter {
                    include_archived: true,
                    ..CanvasFilter::default()
                }
            )
            .await,
            ["Third", "Second", "First"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CanvasFilter {
                    status: Some(CanvasStatus::Archived),
                    ..CanvasFilter::default()
                }
            )
            .await,
            ["Third"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CanvasFilter {
                    status: Some(CanvasStatus::Active),
                    ..CanvasFilter::default()
                }
            )
            .await,
            ["Second"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CanvasFilter {
                    tag: Some(" promo ".into()),
                    ..CanvasFilter::default()
                }
            )
            .await,
            ["Second"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CanvasFilter {
                    tag: Some("onboarding".into()),
                    include_archived: true,
                    ..CanvasFilter::default()
                }
            )
            .await,
            ["Third", "First"]
        );
    }
}

#[tokio::test]
async fn a_duplicate_is_a_never_launched_draft_with_new_variant_ids() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let live = launched(&db, &ws, input("Onboarding")).await;
        let later = now() + Duration::hours(2);
        let copy = canvas::duplicate_canvas(&db, &ws, &live.id, later)
            .await
            .unwrap();
        assert_ne!(copy.id, live.id);
        assert_eq!(copy.name, "Copy of Onboarding");
        assert_eq!(copy.status, CanvasStatus::Draft);
        assert_eq!(copy.live_version, None);
        assert_eq!(copy.launched_at, None);
        assert_eq!(copy.created_at, later);
        assert_eq!(copy.tags, live.tags);
        assert_eq!(copy.description, live.description);
        assert_eq!(copy.draft.steps, live.draft.steps);
        assert!(copy.draft.variants[0].id.is_some());
        assert_ne!(copy.draft.variants[0].id, live.draft.variants[0].id);
        assert_eq!(frozen(&db, &ws, &copy.id, 1).await, None);

        let long = create(&db, &ws, input(&"n".repeat(200))).await;
        let copy = canvas::duplicate_canvas(&db, &ws, &long.id, later)
            .await
            .unwrap();
        assert_eq!(copy.name.chars().count(), 200);
        assert!(copy.name.starts_with("Copy of "));
    }
}

// ---------------------------------------------------------------------------------------------
// Analytics

/// Writes a journey row as the entry helper would.
async fn journey(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &CanvasId,
    profile: &ProfileId,
    status: &str,
    entered_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    canvas_journey::ActiveModel::from(canvas_journey::Model {
        workspace_id: ws.to_string(),
        id: id.clone(),
        canvas_id: canvas.to_string(),
        version: 1,
        profile_id: profile.to_string(),
        variant_id: None,
        step_id: None,
        status: status.into(),
        wake_at: None,
        lease_until: None,
        seq: 0,
        state: "{}".into(),
        entered_at,
        updated_at: finished_at.unwrap_or(entered_at),
        finished_at,
    })
    .reset_all()
    .insert(db)
    .await
    .unwrap();
    id
}

/// Writes a step event as the journey engine would.
#[allow(clippy::too_many_arguments)]
async fn step_event(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &CanvasId,
    version: i32,
    journey: &str,
    profile: &ProfileId,
    step: Option<&str>,
    kind: &str,
    branch: Option<&str>,
    at: DateTime<Utc>,
) {
    canvas_step_event::ActiveModel::from(canvas_step_event::Model {
        workspace_id: ws.to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        canvas_id: canvas.to_string(),
        version,
        journey_id: journey.into(),
        profile_id: profile.to_string(),
        step_id: step.map(str::to_owned),
        kind: kind.into(),
        branch: branch.map(str::to_owned),
        at,
    })
    .reset_all()
    .insert(db)
    .await
    .unwrap();
}

/// Queues a Message step's send as the journey engine tags it.
async fn step_send(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    canvas: &CanvasId,
    step: &str,
    journey: &str,
    at: DateTime<Utc>,
) -> SendId {
    let send = NewSend {
        workspace_id: ws.clone(),
        source_kind: SourceKind::Canvas,
        source_id: Some(canvas.to_string()),
        source_name: Some("Onboarding".into()),
        recipient: Some("user-1".into()),
        message: message("https://hooks.example.com/in"),
        context: Default::default(),
        due_at: None,
        tracking: Tracking {
            variant_id: Some(step.into()),
            dispatch_id: Some(journey.into()),
            send_tag: None,
        },
    };
    outbox::enqueue(db, vec![send], at).await.unwrap().remove(0)
}

async fn settle(db: &DatabaseConnection, ws: &WorkspaceId, id: &SendId, status: &str) {
    webhook_send::Entity::update_many()
        .col_expr(webhook_send::Column::Status, Expr::value(status))
        .col_expr(webhook_send::Column::Attempts, Expr::value(1))
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Id.eq(id.as_str()))
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn stats_count_journeys_steps_branches_and_sends_in_the_period() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let live = launched(&db, &ws, input("Onboarding")).await;
        let c = &live.id;
        let since = at(2026, 11, 28, 0, 0);
        let until = at(2026, 11, 30, 0, 0);
        let (ada, bob, cy, old) = (
            ProfileId::generate(),
            ProfileId::generate(),
            ProfileId::generate(),
            ProfileId::generate(),
        );
        let j_ada = journey(
            &db,
            &ws,
            c,
            &ada,
            "finished",
            at(2026, 11, 28, 9, 0),
            Some(at(2026, 11, 29, 9, 30)),
        )
        .await;
        let j_bob = journey(&db, &ws, c, &bob, "waiting", at(2026, 11, 28, 9, 20), None).await;
        let j_cy = journey(
            &db,
            &ws,
            c,
            &cy,
            "exited",
            at(2026, 11, 29, 14, 0),
            Some(at(2026, 11, 29, 15, 0)),
        )
        .await;
        // Entered before the period, still inside: in progress, not an entry.
        let j_old = journey(&db, &ws, c, &old, "active", at(2026, 11, 20, 8, 0), None).await;
        // Another Canvas's journey never counts.
        let other = launched(&db, &ws, input("Other")).await;
        journey(
            &db,
            &ws,
            &other.id,
            &ada,
            "active",
            at(2026, 11, 28, 9, 0),
            None,
        )
        .await;

        let ev = |j: &str, p: &ProfileId, step: &str, kind: &str, branch: Option<&str>, t| {
            (
                j.to_owned(),
                p.clone(),
                step.to_owned(),
                kind.to_owned(),
                branch.map(str::to_owned),
                t,
            )
        };
        let events = vec![
            ev(
                &j_ada,
                &ada,
                "welcome",
                "entered",
                None,
                at(2026, 11, 28, 9, 0),
            ),
            ev(
                &j_ada,
                &ada,
                "welcome",
                "sent",
                None,
                at(2026, 11, 28, 9, 0),
            ),
            ev(
                &j_ada,
                &ada,
                "wait",
                "entered",
                None,
                at(2026, 11, 28, 9, 0),
            ),
            ev(
                &j_ada,
                &ada,
                "split",
                "entered",
                None,
                at(2026, 11, 29, 9, 0),
            ),
            ev(
                &j_ada,
                &ada,
                "split",
                "branch",
                Some("yes"),
                at(2026, 11, 29, 9, 0),
            ),
            ev(
                &j_ada,
                &ada,
                "follow-up",
                "entered",
                None,
                at(2026, 11, 29, 9, 0),
            ),
            ev(
                &j_ada,
                &ada,
                "follow-up",
                "sent",
                None,
                at(2026, 11, 29, 9, 0),
            ),
            ev(
                &j_bob,
                &bob,
                "welcome",
                "entered",
                None,
                at(2026, 11, 28, 9, 20),
            ),
            ev(
                &j_bob,
                &bob,
                "welcome",
                "aborted",
                None,
                at(2026, 11, 28, 9, 20),
            ),
            ev(
                &j_cy,
                &cy,
                "welcome",
                "entered",
                None,
                at(2026, 11, 29, 14, 0),
            ),
            ev(&j_cy, &cy, "welcome", "sent", None, at(2026, 11, 29, 14, 0)),
            ev(
                &j_cy,
                &cy,
                "split",
                "branch",
                Some("no"),
                at(2026, 11, 29, 14, 30),
            ),
            ev(&j_cy, &cy, "split", "exited", None, at(2026, 11, 29, 15, 0)),
            // Before the period.
            ev(
                &j_old,
                &old,
                "welcome",
                "entered",
                None,
                at(2026, 11, 20, 8, 0),
            ),
            ev(
                &j_old,
                &old,
                "welcome",
                "sent",
                None,
                at(2026, 11, 20, 8, 0),
            ),
            // A step of an earlier version, gone from the definition.
            ev(
                &j_old,
                &old,
                "legacy",
                "entered",
                None,
                at(2026, 11, 28, 12, 0),
            ),
        ];
        for (j, p, step, kind, branch, t) in events {
            step_event(
                &db,
                &ws,
                c,
                1,
                &j,
                &p,
                Some(&step),
                &kind,
                branch.as_deref(),
                t,
            )
            .await;
        }
        let delivered = step_send(&db, &ws, c, "welcome", &j_ada, at(2026, 11, 28, 9, 0)).await;
        settle(&db, &ws, &delivered, "delivered").await;
        let failed = step_send(&db, &ws, c, "welcome", &j_cy, at(2026, 11, 29, 14, 0)).await;
        settle(&db, &ws, &failed, "failed").await;
        step_send(&db, &ws, c, "follow-up", &j_ada, at(2026, 11, 29, 9, 0)).await;
        // Aborted by `abort_message` when rendered.
        let aborted = step_send(&db, &ws, c, "follow-up", &j_cy, at(2026, 11, 29, 14, 0)).await;
        settle(&db, &ws, &aborted, "aborted").await;
        let early = step_send(&db, &ws, c, "welcome", &j_old, at(2026, 11, 20, 8, 0)).await;
        settle(&db, &ws, &early, "delivered").await;

        let stats = canvas::canvas_stats(&db, &ws, c, since, until, Bucket::Day)
            .await
            .unwrap();
        assert_eq!(stats.entries, 3);
        assert_eq!(stats.in_progress, 2);
        assert_eq!(stats.finished, 1);
        assert_eq!(stats.exited, 1);
        let steps: Vec<&str> = stats.steps.iter().map(|s| s.step_id.as_str()).collect();
        assert_eq!(
            steps,
            ["welcome", "wait", "split", "follow-up", "done", "legacy"]
        );
        let welcome = &stats.steps[0];
        assert_eq!(
            (
                welcome.entered,
                welcome.sent,
                welcome.aborted,
                welcome.delivered,
                welcome.errors
            ),
            (3, 2, 1, 1, 1)
        );
        let split = &stats.steps[2];
        assert_eq!(split.entered, 1);
        assert_eq!(split.exited, 1);
        assert_eq!(
            split.branches,
            [("yes".to_string(), 1), ("no".to_string(), 1)]
        );
        let follow_up = &stats.steps[3];
        assert_eq!(
            (
                follow_up.sent,
                follow_up.delivered,
                follow_up.errors,
                follow_up.aborted
            ),
            (1, 0, 0, 1)
        );
        assert_eq!(stats.steps[5].entered, 1);
        assert_eq!(
            stats.series,
            [
                (at(2026, 11, 28, 0, 0), 2, 1),
                (at(2026, 11, 29, 0, 0), 1, 2)
            ]
        );

        let hourly = canvas::canvas_stats(&db, &ws, c, since, until, Bucket::Hour)
            .await
            .unwrap();
        assert_eq!(
            hourly.series,
            [
                (at(2026, 11, 28, 9, 0), 2, 1),
                (at(2026, 11, 29, 9, 0), 0, 1),
                (at(2026, 11, 29, 14, 0), 1, 1)
            ]
        );

        // An empty period still lists every step, with nothing in it.
        let empty = canvas::canvas_stats(
            &db,
            &ws,
            c,
            at(2027, 1, 1, 0, 0),
            at(2027, 1, 2, 0, 0),
            Bucket::Day,
        )
        .await
        .unwrap();
        assert_eq!(empty.entries, 0);
        assert_eq!(empty.in_progress, 2);
        assert_eq!(empty.steps.len(), 5);
        assert!(
            empty
                .steps
                .iter()
                .all(|s| s.entered == 0 && s.branches.is_empty())
        );
        assert!(empty.series.is_empty());

        assert!(matches!(
            canvas::canvas_stats(&db, &ws, &CanvasId::generate(), since, until, Bucket::Day).await,
            Err(DomainError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn a_users_journeys_are_newest_first_with_canvas_and_step_names_of_their_version() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let live = launched(&db, &ws, input("Onboarding")).await;
        // Version 2 renames the welcome step.
        let mut edit = input("Onboarding");
        edit.definition = live.draft.clone();
        edit.definition.steps[0].name = "Hello there".into();
        canvas::update_canvas(&db, &ws, &live.id, edit, None, now())
            .await
            .unwrap();
        let promo = launched(&db, &ws, input("Promo")).await;

        let ada = ProfileId::generate();
        let bob = ProfileId::generate();
        let first = journey(
            &db,
            &ws,
            &live.id,
            &ada,
            "finished",
            at(2026, 11, 28, 9, 0),
            None,
        )
        .await;
        let second = journey(
            &db,
            &ws,
            &live.id,
            &ada,
            "active",
            at(2026, 11, 29, 9, 0),
            None,
        )
        .await;
        let third = journey(
            &db,
            &ws,
            &promo.id,
            &ada,
            "active",
            at(2026, 11, 29, 10, 0),
            None,
        )
        .await;
        step_event(
            &db,
            &ws,
            &live.id,
            1,
            &first,
            &ada,
            Some("welcome"),
            "entered",
            None,
            at(2026, 11, 28, 9, 0),
        )
        .await;
        step_event(
            &db,
            &ws,
            &live.id,
            1,
            &first,
            &ada,
            Some("split"),
            "branch",
            Some("yes"),
            at(2026, 11, 28, 9, 5),
        )
        .await;
        step_event(
            &db,
            &ws,
            &live.id,
            1,
            &first,
            &ada,
            None,
            "finished",
            None,
            at(2026, 11, 28, 9, 6),
        )
        .await;
        step_event(
            &db,
            &ws,
            &live.id,
            2,
            &second,
            &ada,
            Some("welcome"),
            "entered",
            None,
            at(2026, 11, 29, 9, 0),
        )
        .await;
        step_event(
            &db,
            &ws,
            &promo.id,
            1,
            &third,
            &ada,
            Some("wait"),
            "entered",
            None,
            at(2026, 11, 29, 10, 0),
        )
        .await;
        step_event(
            &db,
            &ws,
            &live.id,
            1,
            &first,
            &bob,
            Some("welcome"),
            "entered",
            None,
            at(2026, 11, 30, 9, 0),
        )
        .await;

        let steps = canvas::user_journeys(&db, &ws, &ada, 10).await.unwrap();
        let seen: Vec<(&str, Option<&str>, &str, &str, i32)> = steps
            .iter()
            .map(|s| {
                (
                    s.canvas_name.as_str(),
                    s.step_id.as_ref().map(StepId::as_str),
                    s.step_name.as_str(),
                    s.kind.as_str(),
                    s.version,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("Promo", Some("wait"), "Wait", "entered", 1),
                ("Onboarding", Some("welcome"), "Hello there", "entered", 2),
                ("Onboarding", None, "", "finished", 1),
                ("Onboarding", Some("split"), "Has a name?", "branch", 1),
                ("Onboarding", Some("welcome"), "Send welcome", "entered", 1),
            ]
        );
        assert_eq!(steps[0].canvas_id, promo.id);
        assert_eq!(steps[0].journey_id.as_str(), third);
        assert_eq!(steps[0].at, at(2026, 11, 29, 10, 0));
        assert_eq!(steps[3].branch.as_deref(), Some("yes"));

        let latest = canvas::user_journeys(&db, &ws, &ada, 2).await.unwrap();
        assert_eq!(latest, steps[..2]);
        assert!(
            canvas::user_journeys(&db, &WorkspaceId::generate(), &ada, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
