//! The campaign lifecycle and analytics through the public API, on SQLite and on PostgreSQL (when
//! TEST_DATABASE_URL is set): validation naming fields, stable variant ids, optimistic
//! versioning, launch/stop/archive, lists, send ids, frequency-capping rules, and figures read
//! back from hand-made outbox rows.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::campaign::{
    self, AudienceSpec, Bucket, CampaignFilter, CampaignInput, CampaignKind, CampaignStatus,
    CapRule, Conversion, Delivery, Recurrence, Schedule, Settings, Trigger, Variant,
};
use domain::entity::{campaign as campaign_entity, campaign_receipt, webhook_send};
use domain::outbox::{self, NewSend, SourceKind, Tracking};
use domain::segment::{self, Filter};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{CampaignId, DomainError, SendId, VariantId, WorkspaceId, profile};
use migrations::testing::test_databases;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

mod common;

use common::{field_of, now, track as track_at};

fn message(url: &str) -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: url.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Raw {
            text: r#"{"user": "{{${user_id}}}"}"#.into(),
        },
    }
}

fn variant(name: &str, percent: u8) -> Variant {
    Variant {
        id: None,
        name: name.into(),
        percent,
        message: Some(message("https://hooks.example.com/in")),
    }
}

fn action(event: &str) -> Delivery {
    Delivery::Action {
        trigger: Trigger::CustomEvent {
            name: event.into(),
            property_filters: vec![],
        },
        delay_seconds: 0,
        exceptions: vec![],
        starts_at: None,
        ends_at: None,
    }
}

/// A valid action-based webhook campaign with one variant.
fn webhook_input(name: &str) -> CampaignInput {
    CampaignInput {
        name: name.into(),
        description: "Welcome new users".into(),
        tags: vec!["onboarding".into()],
        kind: CampaignKind::Webhook,
        variants: vec![variant("Main", 100)],
        control_percent: 0,
        delivery: action("signed_up"),
        audience: AudienceSpec::default(),
        conversions: vec![],
        settings: Settings::default(),
    }
}

fn api_input(name: &str) -> CampaignInput {
    CampaignInput {
        kind: CampaignKind::Api,
        variants: vec![Variant {
            message: None,
            ..variant("Webhook", 100)
        }],
        delivery: Delivery::Api,
        tags: vec!["transactional".into()],
        ..webhook_input(name)
    }
}

async fn track(db: &DatabaseConnection, ws: &WorkspaceId, body: Value) {
    track_at(db, ws, body, now()).await;
}

/// Queues `n` sends of `campaign` (variant `variant`) to `recipient-0..n`, created at `at`.
async fn queue(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    variant: Option<&VariantId>,
    n: usize,
    tag: Option<&str>,
    at: DateTime<Utc>,
) -> Vec<SendId> {
    let sends = (0..n)
        .map(|i| NewSend {
            workspace_id: ws.clone(),
            source_kind: SourceKind::Campaign,
            source_id: Some(campaign.to_string()),
            source_name: Some("Welcome".into()),
            recipient: Some(format!("user-{i}")),
            message: message("https://hooks.example.com/in"),
            context: Default::default(),
            due_at: None,
            tracking: Tracking {
                variant_id: variant.map(|v| v.to_string()),
                dispatch_id: Some("dispatch-1".into()),
                send_tag: tag.map(str::to_owned),
            },
        })
        .collect();
    outbox::enqueue(db, sends, at).await.unwrap()
}

/// Rewrites a send as the engine would after its attempts.
async fn settle(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    id: &SendId,
    status: &str,
    attempts: i32,
    code: Option<i32>,
) {
    webhook_send::Entity::update_many()
        .col_expr(webhook_send::Column::Status, Expr::value(status))
        .col_expr(webhook_send::Column::Attempts, Expr::value(attempts))
        .col_expr(webhook_send::Column::LastStatusCode, Expr::value(code))
        .col_expr(
            webhook_send::Column::CompletedAt,
            Expr::value((status != "pending").then(now)),
        )
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Id.eq(id.as_str()))
        .exec(db)
        .await
        .unwrap();
}

async fn send_status(db: &DatabaseConnection, ws: &WorkspaceId, id: &SendId) -> String {
    outbox::find_send(db, ws, id).await.unwrap().status
}

async fn names(db: &DatabaseConnection, ws: &WorkspaceId, filter: CampaignFilter) -> Vec<String> {
    campaign::list_campaigns(db, ws, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

async fn set_recipient(db: &DatabaseConnection, id: &SendId, recipient: &str) {
    webhook_send::Entity::update_many()
        .col_expr(webhook_send::Column::Recipient, Expr::value(recipient))
        .filter(webhook_send::Column::Id.eq(id.as_str()))
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_created_campaign_reads_back_as_a_draft_with_variant_ids_and_indexed_columns() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut input = webhook_input("  Welcome  ");
        input.variants = vec![variant("A", 40), variant("B", 40)];
        input.control_percent = 20;
        input.conversions = vec![Conversion {
            trigger: Trigger::Purchase { product_id: None },
            window_seconds: 3 * 86_400,
        }];
        input.settings.reeligible_after_seconds = Some(86_400);
        let created = campaign::create_campaign(&db, &ws, input.clone(), now())
            .await
            .unwrap();
        assert_eq!(created.name, "Welcome");
        assert_eq!(created.status, CampaignStatus::Draft);
        assert_eq!(created.version, 1);
        assert_eq!(created.created_at, now());
        assert!(created.launched_at.is_none());
        assert!(created.variants.iter().all(|v| v.id.is_some()));
        assert_ne!(created.variants[0].id, created.variants[1].id);
        assert_eq!(created.control_percent, 20);
        assert_eq!(created.delivery, input.delivery);
        assert_eq!(created.conversions, input.conversions);
        assert_eq!(created.settings, input.settings);

        let found = campaign::find_campaign(&db, &ws, &created.id)
            .await
            .unwrap();
        assert_eq!(found, created);

        let row = campaign_entity::Entity::find_by_id((ws.to_string(), created.id.to_string()))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.delivery_type, "action");
        assert_eq!(row.trigger_event.as_deref(), Some("signed_up"));
        assert_eq!(row.kind, "webhook");
        let tags: Vec<String> = serde_json::from_str(&row.tags).unwrap();
        assert_eq!(tags, ["onboarding"]);

        let purchase = campaign::create_campaign(
            &db,
            &ws,
            CampaignInput {
                delivery: Delivery::Action {
                    trigger: Trigger::Purchase {
                        product_id: Some("book".into()),
                    },
                    delay_seconds: 0,
                    exceptions: vec![],
                    starts_at: None,
                    ends_at: None,
                },
                ..webhook_input("Bought")
            },
            now(),
        )
        .await
        .unwrap();
        let row = campaign_entity::Entity::find_by_id((ws.to_string(), purchase.id.to_string()))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.trigger_event.as_deref(), Some("purchase"));

        let other = WorkspaceId::generate();
        assert!(matches!(
            campaign::find_campaign(&db, &other, &created.id).await,
            Err(DomainError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn invalid_campaigns_are_refused_with_the_offending_field_named() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let base = webhook_input("Welcome");
        let mut cases: Vec<(&str, CampaignInput)> = Vec::new();

        cases.push((
            "name",
            CampaignInput {
                name: "   ".into(),
                ..base.clone()
            },
        ));
        cases.push((
            "name",
            CampaignInput {
                name: "x".repeat(201),
                ..base.clone()
            },
        ));
        cases.push((
            "tags",
            CampaignInput {
                tags: (0..21).map(|i| format!("t{i}")).collect(),
                ..base.clone()
            },
        ));
        cases.push((
            "tags",
            CampaignInput {
                tags: vec!["y".repeat(101)],
                ..base.clone()
            },
        ));
        cases.push((
            "variants",
            CampaignInput {
                variants: vec![],
                ..base.clone()
            },
        ));
        cases.push((
            "variants",
            CampaignInput {
                variants: (0..9).map(|_| variant("V", 10)).collect(),
                ..base.clone()
            },
        ));
        cases.push((
            "variants[1].percent",
            CampaignInput {
                variants: vec![variant("A", 0), variant("B", 101)],
                ..base.clone()
            },
        ));
        cases.push((
            "control_percent",
            CampaignInput {
                variants: vec![variant("A", 50), variant("B", 40)],
                ..base.clone()
            },
        ));
        let mut bad_url = base.clone();
        bad_url.variants[0].message = Some(message("ftp://example.com"));
        cases.push(("variants[0].message.url", bad_url));
        let mut bad_liquid = base.clone();
        bad_liquid.variants = vec![variant("A", 50), variant("B", 50)];
        bad_liquid.variants[1].message.as_mut().unwrap().body = Body::Raw {
            text: "{% if %}".into(),
        };
        cases.push(("variants[1].message.body", bad_liquid));
        let mut no_message = base.clone();
        no_message.variants[0].message = None;
        cases.push(("variants[0].message", no_message));
        let mut api_with_message = api_input("API");
        api_with_message.variants[0].message = Some(message("https://example.com"));
        cases.push(("variants[0].message", api_with_message));
        cases.push((
            "delivery",
            CampaignInput {
                delivery: action("signed_up"),
                ..api_input("API")
            },
        ));
        cases.push((
            "delivery.trigger.name",
            CampaignInput {
                delivery: action("  "),
                ..base.clone()
            },
        ));
        cases.push((
            "delivery.exceptions",
            CampaignInput {
                delivery: Delivery::Action {
                    trigger: Trigger::Purchase { product_id: None },
                    delay_seconds: 0,
                    exceptions: vec![Trigger::Purchase { product_id: None }],
                    starts_at: None,
                    ends_at: None,
                },
                ..base.clone()
            },
        ));
        cases.push((
            "delivery.ends_at",
            CampaignInput {
                delivery: Delivery::Action {
                    trigger: Trigger::Purchase { product_id: None },
                    delay_seconds: 60,
                    exceptions: vec![],
                    starts_at: Some(now()),
                    ends_at: Some(now() - Duration::hours(1)),
                },
                ..base.clone()
            },
        ));
        cases.push((
            "delivery.schedule.time_zone",
            CampaignInput {
                delivery: Delivery::Scheduled {
                    schedule: Schedule::At {
                        starts_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                        time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                        recurrence: Recurrence::Once,
                        ends_on: None,
                        time_zone: " ".into(),
                        in_local_time: false,
                    },
                },
                ..base.clone()
            },
        ));
        cases.push((
            "conversions",
            CampaignInput {
                conversions: (0..5)
                    .map(|_| Conversion {
                        trigger: Trigger::Purchase { product_id: None },
                        window_seconds: 60,
                    })
                    .collect(),
                ..base.clone()
            },
        ));
        cases.push((
            "conversions[0].window_seconds",
            CampaignInput {
                conversions: vec![Conversion {
                    trigger: Trigger::Purchase { product_id: None },
                    window_seconds: 31 * 86_400,
                }],
                ..base.clone()
            },
        ));
        cases.push((
            "settings.reeligible_after_seconds",
            CampaignInput {
                settings: Settings {
                    reeligible_after_seconds: Some(721 * 86_400),
                    ..Settings::default()
                },
                ..base.clone()
            },
        ));
        cases.push((
            "settings.rate_per_minute",
            CampaignInput {
                settings: Settings {
                    rate_per_minute: Some(0),
                    ..Settings::default()
                },
                ..base.clone()
            },
        ));
        cases.push((
            "audience.segment_ids",
            CampaignInput {
                audience: AudienceSpec {
                    segment_ids: vec![domain::SegmentId::generate()],
                    filter: None,
                },
                ..base.clone()
            },
        ));

        for (field, input) in cases {
            let result = campaign::create_campaign(&db, &ws, input.clone(), now()).await;
            assert_eq!(field_of(result), field, "{input:?}");
        }
        assert!(
            campaign::list_campaigns(&db, &ws, &CampaignFilter::default())
                .await
                .unwrap()
                .is_empty(),
            "nothing invalid was saved"
        );
        // The same checks guard updates.
        let saved = campaign::create_campaign(&db, &ws, base.clone(), now())
            .await
            .unwrap();
        let result = campaign::update_campaign(
            &db,
            &ws,
            &saved.id,
            CampaignInput {
                control_percent: 10,
                ..base.clone()
            },
            None,
            now(),
        )
        .await;
        assert_eq!(field_of(result), "control_percent");
    }
}

#[tokio::test]
async fn variants_keep_their_ids_across_updates_and_new_ones_get_fresh_ids() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut input = webhook_input("Split");
        input.variants = vec![variant("A", 50), variant("B", 50)];
        let created = campaign::create_campaign(&db, &ws, input, now())
            .await
            .unwrap();
        let a = created.variants[0].id.clone().unwrap();
        let b = created.variants[1].id.clone().unwrap();

        // A is kept and renamed, B is dropped, C is new, and a made-up id is not trusted.
        let mut edit = webhook_input("Split");
        edit.variants = vec![
            Variant {
                id: Some(a.clone()),
                ..variant("A renamed", 40)
            },
            variant("C", 30),
            Variant {
                id: Some(VariantId::generate()),
                ..variant("D", 30)
            },
        ];
        let made_up = edit.variants[2].id.clone();
        let updated = campaign::update_campaign(
            &db,
            &ws,
            &created.id,
            edit,
            None,
            now() + Duration::hours(1),
        )
        .await
        .unwrap();
        assert_eq!(updated.variants[0].id.as_ref(), Some(&a));
        assert_eq!(updated.variants[0].name, "A renamed");
        let c = updated.variants[1].id.clone().unwrap();
        assert!(c != a && c != b);
        assert!(updated.variants[2].id.is_some());
        assert_ne!(updated.variants[2].id, made_up);
        assert_eq!(updated.version, 2);
        assert_eq!(updated.updated_at, now() + Duration::hours(1));
        assert_eq!(updated.created_at, now());

        let found = campaign::find_campaign(&db, &ws, &created.id)
            .await
            .unwrap();
        assert_eq!(found.variants, updated.variants);
    }
}

#[tokio::test]
async fn an_update_from_a_stale_version_is_a_conflict_on_version() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = campaign::create_campaign(&db, &ws, webhook_input("Welcome"), now())
            .await
            .unwrap();
        let first = campaign::update_campaign(
            &db,
            &ws,
            &created.id,
            webhook_input("Welcome v2"),
            Some(created.version),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(first.version, created.version + 1);
        let stale = campaign::update_campaign(
            &db,
            &ws,
            &created.id,
            webhook_input("Welcome v3"),
            Some(created.version),
            now(),
        )
        .await;
        assert!(
            matches!(
                &stale,
                Err(DomainError::Conflict {
                    field: "version",
                    ..
                })
            ),
            "{stale:?}"
        );
        let found = campaign::find_campaign(&db, &ws, &created.id)
            .await
            .unwrap();
        assert_eq!(found.name, "Welcome v2");
        // Without an expected version, the last write wins.
        let forced = campaign::update_campaign(
            &db,
            &ws,
            &created.id,
            webhook_input("Welcome v4"),
            None,
            now(),
        )
        .await
        .unwrap();
        assert_eq!(forced.version, 3);
    }
}

#[tokio::test]
async fn action_and_api_campaigns_launch_active_and_only_once() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = campaign::create_campaign(&db, &ws, webhook_input("Welcome"), now())
            .await
            .unwrap();
        let later = now() + Duration::minutes(5);
        let launched = campaign::launch_campaign(&db, &ws, &created.id, later)
            .await
            .unwrap();
        assert_eq!(launched.status, CampaignStatus::Active);
        assert_eq!(launched.launched_at, Some(later));
        assert!(launched.version > created.version);
        let again = campaign::launch_campaign(&db, &ws, &created.id, later).await;
        assert_eq!(field_of(again), "status");

        let api = campaign::create_campaign(&db, &ws, api_input("Receipts"), now())
            .await
            .unwrap();
        let api = campaign::launch_campaign(&db, &ws, &api.id, later)
            .await
            .unwrap();
        assert_eq!(api.status, CampaignStatus::Active);
        assert_eq!(
            campaign::find_campaign(&db, &ws, &api.id)
                .await
                .unwrap()
                .status,
            CampaignStatus::Active
        );
    }
}

#[tokio::test]
async fn a_campaign_whose_audience_segment_was_archived_can_not_launch() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let everyone = Filter::And { filters: vec![] };
        let seg = segment::create(&db, &ws, "All", "", &everyone, now())
            .await
            .unwrap();
        let created = campaign::create_campaign(
            &db,
            &ws,
            CampaignInput {
                audience: AudienceSpec {
                    segment_ids: vec![seg.id.clone()],
                    filter: None,
                },
                ..webhook_input("Welcome")
            },
            now(),
        )
        .await
        .unwrap();
        segment::archive(&db, &ws, &seg.id, now()).await.unwrap();
        let result = campaign::launch_campaign(&db, &ws, &created.id, now()).await;
        assert_eq!(field_of(result), "audience.segment_ids");
        assert_eq!(
            campaign::find_campaign(&db, &ws, &created.id)
                .await
                .unwrap()
                .status,
            CampaignStatus::Draft
        );
    }
}

#[tokio::test]
async fn stopping_aborts_unattempted_sends_but_leaves_delivered_and_retrying_ones() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = campaign::create_campaign(&db, &ws, webhook_input("Welcome"), now())
            .await
            .unwrap();
        let other = campaign::create_campaign(&db, &ws, webhook_input("Other"), now())
            .await
            .unwrap();
        campaign::launch_campaign(&db, &ws, &created.id, now())
            .await
            .unwrap();
        let variant = created.variants[0].id.clone();
        let sends = queue(&db, &ws, &created.id, variant.as_ref(), 4, None, now()).await;
        settle(&db, &ws, &sends[1], "delivered", 1, Some(200)).await;
        settle(&db, &ws, &sends[2], "pending", 1, Some(503)).await;
        let others = queue(&db, &ws, &other.id, None, 1, None, now()).await;

        let at = now() + Duration::minutes(1);
        let stopped = campaign::stop_campaign(&db, &ws, &created.id, at)
            .await
            .unwrap();
        assert_eq!(stopped.status, CampaignStatus::Stopped);
        assert_eq!(stopped.stopped_at, Some(at));

        let aborted = outbox::find_send(&db, &ws, &sends[0]).await.unwrap();
        assert_eq!(aborted.status, "aborted");
        assert_eq!(aborted.last_error.as_deref(), Some("campaign stopped"));
        assert_eq!(aborted.completed_at, Some(at));
        assert_eq!(send_status(&db, &ws, &sends[3]).await, "aborted");
        assert_eq!(send_status(&db, &ws, &sends[1]).await, "delivered");
        assert_eq!(send_status(&db, &ws, &sends[2]).await, "pending");
        assert_eq!(send_status(&db, &ws, &others[0]).await, "pending");

        let again = campaign::stop_campaign(&db, &ws, &created.id, at).await;
        assert_eq!(field_of(again), "status");
        let resumed = campaign::resume_campaign(&db, &ws, &created.id, at)
            .await
            .unwrap();
        assert_eq!(resumed.status, CampaignStatus::Active);
        // A stopped campaign that ran once is not a draft: it resumes, it doesn't relaunch.
        campaign::stop_campaign(&db, &ws, &created.id, at)
            .await
            .unwrap();
        let relaunch = campaign::launch_campaign(&db, &ws, &created.id, at).await;
        assert_eq!(field_of(relaunch), "status");
    }
}

#[tokio::test]
async fn archiving_stops_a_running_campaign_and_unarchiving_restores_stopped_or_draft() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let draft = campaign::create_campaign(&db, &ws, webhook_input("Draft"), now())
            .await
            .unwrap();
        let archived = campaign::archive_campaign(&db, &ws, &draft.id, now())
            .await
            .unwrap();
        assert_eq!(archived.status, CampaignStatus::Archived);
        assert_eq!(archived.archived_at, Some(now()));
        let edit =
            campaign::update_campaign(&db, &ws, &draft.id, webhook_input("Edited"), None, now())
                .await;
        assert_eq!(field_of(edit), "status");
        let back = campaign::unarchive_campaign(&db, &ws, &draft.id, now())
            .await
            .unwrap();
        assert_eq!(back.status, CampaignStatus::Draft);
        assert!(back.archived_at.is_none());
        let twice = campaign::unarchive_campaign(&db, &ws, &draft.id, now()).await;
        assert_eq!(field_of(twice), "status");

        let running = campaign::create_campaign(&db, &ws, webhook_input("Running"), now())
            .await
            .unwrap();
        campaign::launch_campaign(&db, &ws, &running.id, now())
            .await
            .unwrap();
        let sends = queue(&db, &ws, &running.id, None, 1, None, now()).await;
        let at = now() + Duration::hours(1);
        let archived = campaign::archive_campaign(&db, &ws, &running.id, at)
            .await
            .unwrap();
        assert_eq!(archived.status, CampaignStatus::Archived);
        assert_eq!(archived.stopped_at, Some(at));
        assert_eq!(send_status(&db, &ws, &sends[0]).await, "aborted");
        let back = campaign::unarchive_campaign(&db, &ws, &running.id, at)
            .await
            .unwrap();
        assert_eq!(back.status, CampaignStatus::Stopped);
        assert!(back.launched_at.is_some());
    }
}

#[tokio::test]
async fn lists_are_newest_first_and_filter_by_status_tag_and_delivery_type() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        campaign::create_campaign(&db, &ws, webhook_input("Welcome"), now())
            .await
            .unwrap();
        let mut tagged = webhook_input("Promo");
        tagged.tags = vec!["Marketing".into(), "promo".into()];
        let promo = campaign::create_campaign(&db, &ws, tagged, now() + Duration::minutes(1))
            .await
            .unwrap();
        campaign::create_campaign(
            &db,
            &ws,
            api_input("Receipts"),
            now() + Duration::minutes(2),
        )
        .await
        .unwrap();
        let old =
            campaign::create_campaign(&db, &ws, webhook_input("Old"), now() + Duration::minutes(3))
                .await
                .unwrap();
        campaign::archive_campaign(&db, &ws, &old.id, now())
            .await
            .unwrap();
        campaign::launch_campaign(&db, &ws, &promo.id, now())
            .await
            .unwrap();
        campaign::create_campaign(
            &db,
            &WorkspaceId::generate(),
            webhook_input("Elsewhere"),
            now(),
        )
        .await
        .unwrap();

        assert_eq!(
            names(&db, &ws, CampaignFilter::default()).await,
            ["Receipts", "Promo", "Welcome"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    include_archived: true,
                    ..Default::default()
                }
            )
            .await,
            ["Old", "Receipts", "Promo", "Welcome"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    status: Some(CampaignStatus::Archived),
                    ..Default::default()
                }
            )
            .await,
            ["Old"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    status: Some(CampaignStatus::Active),
                    ..Default::default()
                }
            )
            .await,
            ["Promo"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    tag: Some("marketing".into()),
                    ..Default::default()
                }
            )
            .await,
            ["Promo"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    tag: Some("onboarding".into()),
                    ..Default::default()
                }
            )
            .await,
            ["Welcome"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    delivery_type: Some("api".into()),
                    ..Default::default()
                }
            )
            .await,
            ["Receipts"]
        );
        assert_eq!(
            names(
                &db,
                &ws,
                CampaignFilter {
                    delivery_type: Some("action".into()),
                    status: Some(CampaignStatus::Draft),
                    ..Default::default()
                }
            )
            .await,
            ["Welcome"]
        );
    }
}

#[tokio::test]
async fn duplicating_makes_a_draft_copy_with_new_variant_ids() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut input = webhook_input("Welcome");
        input.variants = vec![variant("A", 50), variant("B", 50)];
        let original = campaign::create_campaign(&db, &ws, input, now())
            .await
            .unwrap();
        campaign::launch_campaign(&db, &ws, &original.id, now())
            .await
            .unwrap();
        let at = now() + Duration::days(1);
        let copy = campaign::duplicate_campaign(&db, &ws, &original.id, at)
            .await
            .unwrap();
        assert_ne!(copy.id, original.id);
        assert_eq!(copy.name, "Copy of Welcome");
        assert_eq!(copy.status, CampaignStatus::Draft);
        assert_eq!(copy.version, 1);
        assert_eq!(copy.created_at, at);
        assert!(copy.launched_at.is_none());
        assert_eq!(copy.delivery, original.delivery);
        assert_eq!(copy.tags, original.tags);
        assert_eq!(copy.variants.len(), 2);
        for (new, old) in copy.variants.iter().zip(&original.variants) {
            assert_eq!(new.name, old.name);
            assert_eq!(new.message, old.message);
            assert!(new.id.is_some());
            assert_ne!(new.id, old.id);
        }
        // A 200-character name still fits once prefixed.
        let long = campaign::create_campaign(&db, &ws, webhook_input(&"n".repeat(200)), now())
            .await
            .unwrap();
        let copy = campaign::duplicate_campaign(&db, &ws, &long.id, at)
            .await
            .unwrap();
        assert_eq!(copy.name.chars().count(), 200);
        assert!(copy.name.starts_with("Copy of n"));
    }
}

#[tokio::test]
async fn reach_is_estimated_from_the_segments_and_the_extra_filter() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "ada", "plan": "pro", "country": "FR"},
                {"external_id": "bob", "plan": "pro", "country": "GB"},
                {"external_id": "cy", "plan": "free", "country": "FR"},
            ]}),
        )
        .await;
        let pro: Filter = serde_json::from_value(json!({
            "kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro"
        }))
        .unwrap();
        let seg = segment::create(&db, &ws, "Pro", "", &pro, now())
            .await
            .unwrap();
        let everyone = AudienceSpec::default();
        assert_eq!(
            campaign::estimate_reach(&db, &ws, &everyone, now())
                .await
                .unwrap(),
            3
        );
        let pros = AudienceSpec {
            segment_ids: vec![seg.id.clone()],
            filter: None,
        };
        assert_eq!(
            campaign::estimate_reach(&db, &ws, &pros, now())
                .await
                .unwrap(),
            2
        );
        let french_pros = AudienceSpec {
            segment_ids: vec![seg.id.clone()],
            filter: Some(
                serde_json::from_value(json!({
                    "kind": "attribute", "name": "country", "comparison": "equals", "value": "FR"
                }))
                .unwrap(),
            ),
        };
        assert_eq!(
            campaign::estimate_reach(&db, &ws, &french_pros, now())
                .await
                .unwrap(),
            1
        );
        // A segment of everyone (an empty group) combines with others without error.
        let all = segment::create(
            &db,
            &ws,
            "Everyone",
            "",
            &serde_json::from_value(json!({"kind": "and", "filters": []})).unwrap(),
            now(),
        )
        .await
        .unwrap();
        let everyone_and_pros = AudienceSpec {
            segment_ids: vec![all.id.clone(), seg.id.clone()],
            filter: None,
        };
        assert_eq!(
            campaign::estimate_reach(&db, &ws, &everyone_and_pros, now())
                .await
                .unwrap(),
            2
        );
        let unknown = AudienceSpec {
            segment_ids: vec![domain::SegmentId::generate()],
            filter: None,
        };
        assert_eq!(
            field_of(campaign::estimate_reach(&db, &ws, &unknown, now()).await),
            "audience.segment_ids"
        );
    }
}

#[tokio::test]
async fn send_ids_are_ascii_at_most_64_characters_and_100_a_day_per_workspace() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = campaign::create_campaign(&db, &ws, webhook_input("Welcome"), now())
            .await
            .unwrap();
        let generated = campaign::create_send_tag(&db, &ws, &created.id, None, now())
            .await
            .unwrap();
        assert_eq!(generated.len(), 32);
        assert!(generated.chars().all(|c| c.is_ascii_hexdigit()));
        let chosen =
            campaign::create_send_tag(&db, &ws, &created.id, Some("black-friday".into()), now())
                .await
                .unwrap();
        assert_eq!(chosen, "black-friday");
        for bad in ["", "   ", "caf\u{e9}", "tab\there", &"x".repeat(65)] {
            let result =
                campaign::create_send_tag(&db, &ws, &created.id, Some(bad.to_owned()), now()).await;
            assert_eq!(field_of(result), "send_id", "{bad:?}");
        }
        assert!(matches!(
            campaign::create_send_tag(&db, &ws, &CampaignId::generate(), None, now()).await,
            Err(DomainError::NotFound(_))
        ));

        // Two made so far today: 98 more fit, the 101st does not, an existing pair still does.
        for i in 0..98 {
            campaign::create_send_tag(&db, &ws, &created.id, Some(format!("tag-{i}")), now())
                .await
                .unwrap();
        }
        let over =
            campaign::create_send_tag(&db, &ws, &created.id, Some("one-too-many".into()), now())
                .await;
        assert_eq!(field_of(over), "send_id");
        assert_eq!(
            campaign::create_send_tag(&db, &ws, &created.id, Some("black-friday".into()), now())
                .await
                .unwrap(),
            "black-friday"
        );
        // Another workspace has its own allowance, and tomorrow is a new day.
        let other = WorkspaceId::generate();
        let theirs = campaign::create_campaign(&db, &other, webhook_input("Theirs"), now())
            .await
            .unwrap();
        campaign::create_send_tag(&db, &other, &theirs.id, None, now())
            .await
            .unwrap();
        let tomorrow = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
        campaign::create_send_tag(&db, &ws, &created.id, Some("one-too-many".into()), tomorrow)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn frequency_capping_rules_are_checked_and_limited_to_ten() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let rule = |max_sends, window_seconds, tag: Option<&str>| CapRule {
            id: String::new(),
            tag: tag.map(str::to_owned),
            max_sends,
            window_seconds,
        };
        for (bad, field) in [
            (rule(0, 3600, None), "max_sends"),
            (rule(1, 59, None), "window_seconds"),
            (rule(1, 30 * 86_400 + 1, None), "window_seconds"),
            (rule(1, 3600, Some(&"t".repeat(101))), "tag"),
        ] {
            assert_eq!(
                field_of(campaign::create_cap_rule(&db, &ws, bad, now()).await),
                field
            );
        }
        let first = campaign::create_cap_rule(&db, &ws, rule(3, 86_400, Some(" promo ")), now())
            .await
            .unwrap();
        assert!(!first.id.is_empty());
        assert_eq!(first.tag.as_deref(), Some("promo"));
        let blank_tag = campaign::create_cap_rule(&db, &ws, rule(1, 60, Some("  ")), now())
            .await
            .unwrap();
        assert_eq!(blank_tag.tag, None);
        for i in 0..8 {
            campaign::create_cap_rule(
                &db,
                &ws,
                rule(1, 3600, None),
                now() + Duration::seconds(i + 1),
            )
            .await
            .unwrap();
        }
        let eleventh = campaign::create_cap_rule(&db, &ws, rule(1, 3600, None), now()).await;
        assert!(matches!(eleventh, Err(DomainError::Invalid { .. })));
        let rules = campaign::list_cap_rules(&db, &ws).await.unwrap();
        assert_eq!(rules.len(), 10);
        assert!(rules.contains(&first));
        assert!(
            campaign::list_cap_rules(&db, &WorkspaceId::generate())
                .await
                .unwrap()
                .is_empty()
        );

        campaign::delete_cap_rule(&db, &ws, &first.id)
            .await
            .unwrap();
        assert_eq!(campaign::list_cap_rules(&db, &ws).await.unwrap().len(), 9);
        assert!(matches!(
            campaign::delete_cap_rule(&db, &ws, &first.id).await,
            Err(DomainError::NotFound(_))
        ));
        campaign::create_cap_rule(&db, &ws, rule(1, 3600, None), now())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn progress_counts_the_campaigns_sends_by_state() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let created = campaign::create_campaign(&db, &ws, webhook_input("Welcome"), now())
            .await
            .unwrap();
        let sends = queue(&db, &ws, &created.id, None, 7, None, now()).await;
        settle(&db, &ws, &sends[0], "delivered", 1, Some(200)).await;
        settle(&db, &ws, &sends[1], "delivered", 2, Some(200)).await;
        settle(&db, &ws, &sends[2], "failed", 3, Some(500)).await;
        settle(&db, &ws, &sends[3], "pending", 1, Some(503)).await;
        settle(&db, &ws, &sends[4], "aborted", 0, None).await;
        // Another dispatch of the same campaign.
        let sends = queue(&db, &ws, &created.id, None, 1, None, now()).await;
        webhook_send::Entity::update_many()
            .col_expr(webhook_send::Column::DispatchId, Expr::value("dispatch-2"))
            .filter(webhook_send::Column::Id.eq(sends[0].as_str()))
            .exec(&db)
            .await
            .unwrap();

        let all = campaign::progress(&db, &ws, &created.id, None)
            .await
            .unwrap();
        assert_eq!(
            (
                all.queued,
                all.retrying,
                all.delivered,
                all.failed,
                all.aborted
            ),
            (3, 1, 2, 1, 1)
        );
        assert_eq!(all.remaining_to_queue, None);
        let second = campaign::progress(&db, &ws, &created.id, Some("dispatch-2"))
            .await
            .unwrap();
        assert_eq!((second.queued, second.delivered), (1, 0));
        let other = campaign::progress(&db, &ws, &CampaignId::generate(), None)
            .await
            .unwrap();
        assert_eq!(other, Default::default());
    }
}

#[tokio::test]
async fn campaign_stats_split_errors_count_retries_recipients_conversions_and_buckets() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let mut input = webhook_input("Welcome");
        input.variants = vec![variant("A", 45), variant("B", 45)];
        input.control_percent = 10;
        input.conversions = vec![Conversion {
            trigger: Trigger::CustomEvent {
                name: "upgraded".into(),
                property_filters: vec![],
            },
            window_seconds: 3600,
        }];
        let created = campaign::create_campaign(&db, &ws, input, now())
            .await
            .unwrap();
        let a = created.variants[0].id.clone().unwrap();
        let b = created.variants[1].id.clone().unwrap();

        // Variant A at 09:00: delivered, delivered after a retry, a 404, a 429, a network error,
        // an abort and a pending one. Variant B at 10:30: two delivered.
        let sends_a = queue(&db, &ws, &created.id, Some(&a), 7, None, now()).await;
        settle(&db, &ws, &sends_a[0], "delivered", 1, Some(200)).await;
        settle(&db, &ws, &sends_a[1], "delivered", 2, Some(200)).await;
        settle(&db, &ws, &sends_a[2], "failed", 1, Some(404)).await;
        settle(&db, &ws, &sends_a[3], "failed", 4, Some(429)).await;
        settle(&db, &ws, &sends_a[4], "failed", 3, None).await;
        settle(&db, &ws, &sends_a[5], "aborted", 0, None).await;
        let later = now() + Duration::minutes(90);
        let sends_b = queue(&db, &ws, &created.id, Some(&b), 2, Some("bf"), later).await;
        settle(&db, &ws, &sends_b[0], "delivered", 1, Some(204)).await;
        settle(&db, &ws, &sends_b[1], "delivered", 1, Some(200)).await;
        // B went to user-2, and to user-1 who had been sent A too.
        set_recipient(&db, &sends_b[0], "user-2").await;
        set_recipient(&db, &sends_b[1], "user-1").await;
        // Out of the period: the day before.
        let before = queue(
            &db,
            &ws,
            &created.id,
            Some(&a),
            1,
            None,
            now() - Duration::days(1),
        )
        .await;
        settle(&db, &ws, &before[0], "delivered", 1, Some(200)).await;

        // Receipts: user-0 and user-1 got A, user-2 got B, user-3 and user-4 are in control.
        track(
            &db,
            &ws,
            json!({"attributes": (0..5).map(|i| json!({"external_id": format!("user-{i}")})).collect::<Vec<_>>()}),
        )
        .await;
        let mut profiles = Vec::new();
        for i in 0..5 {
            profiles.push(
                profile::find_by_external_id(&db, &ws, &format!("user-{i}"))
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
            );
        }
        let receipt = |i: usize, variant: Option<&VariantId>, at: DateTime<Utc>| {
            campaign_receipt::ActiveModel {
                workspace_id: sea_orm::Set(ws.to_string()),
                campaign_id: sea_orm::Set(created.id.to_string()),
                profile_id: sea_orm::Set(profiles[i].clone()),
                variant_id: sea_orm::Set(variant.map(|v| v.to_string())),
                first_received_at: sea_orm::Set(at),
                last_received_at: sea_orm::Set(at),
                receipts: sea_orm::Set(1),
            }
        };
        campaign_receipt::Entity::insert_many([
            receipt(0, Some(&a), now()),
            receipt(1, Some(&a), now()),
            receipt(2, Some(&b), later),
            receipt(3, None, now()),
            receipt(4, None, now()),
        ])
        .exec_without_returning(&db)
        .await
        .unwrap();
        // user-0 converts in time, user-1 too late, user-2 (B) in time, user-3 (control) in time,
        // user-4 performs another event.
        let event = |who: &str, name: &str, at: DateTime<Utc>| json!({"external_id": who, "name": name, "time": at.to_rfc3339()});
        track_at(
            &db,
            &ws,
            json!({"events": [
                event("user-0", "upgraded", now() + Duration::minutes(30)),
                event("user-1", "upgraded", now() + Duration::minutes(61)),
                event("user-2", "upgraded", later + Duration::minutes(59)),
                event("user-3", "upgraded", now() + Duration::minutes(1)),
                event("user-4", "browsed", now() + Duration::minutes(1)),
            ]}),
            now() + Duration::hours(3),
        )
        .await;

        let since = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
        let until = since + Duration::days(1);
        let stats =
            campaign::campaign_stats(&db, &ws, &created.id, since, until, Bucket::Hour, None)
                .await
                .unwrap();
        let va = &stats.variants[0];
        assert_eq!(va.variant_id.as_ref(), Some(&a));
        assert_eq!(va.name, "A");
        assert_eq!(va.sends, 7);
        assert_eq!(va.delivered, 2);
        assert_eq!(va.errors_client, 1);
        assert_eq!(va.errors_server, 1);
        assert_eq!(va.errors_network, 1);
        assert_eq!(va.aborted, 1);
        // 1 + 3 + 2 extra attempts on sends 1, 3 and 4.
        assert_eq!(va.retries, 6);
        // Errors count as sends, not as recipients (Braze): user-0 and user-1 were delivered.
        assert_eq!(va.unique_recipients, 2);
        assert_eq!(va.conversions, 1);
        let vb = &stats.variants[1];
        assert_eq!(vb.variant_id.as_ref(), Some(&b));
        assert_eq!((vb.sends, vb.delivered, vb.retries), (2, 2, 0));
        assert_eq!(vb.unique_recipients, 2);
        assert_eq!(vb.conversions, 1);
        assert_eq!(stats.total.variant_id, None);
        assert_eq!(stats.total.sends, 9);
        assert_eq!(stats.total.delivered, 4);
        assert_eq!(stats.total.retries, 6);
        // user-1 was sent both variants: user-0, user-1 and user-2.
        assert_eq!(stats.total.unique_recipients, 3);
        assert_eq!(stats.total.conversions, 2);
        assert_eq!(stats.control_recipients, 2);
        assert_eq!(stats.control_conversions, 1);

        let nine = now();
        let ten = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
        let points: Vec<_> = stats
            .series
            .iter()
            .map(|p| (p.time, p.variant_id.clone(), p.sends, p.delivered, p.errors))
            .collect();
        assert_eq!(
            points,
            [
                (nine, Some(a.clone()), 7, 2, 3),
                (ten, Some(b.clone()), 2, 2, 0)
            ]
        );
        let daily =
            campaign::campaign_stats(&db, &ws, &created.id, since, until, Bucket::Day, None)
                .await
                .unwrap();
        assert!(daily.series.iter().all(|p| p.time == since));
        assert_eq!(daily.series.iter().map(|p| p.sends).sum::<u64>(), 9);

        // Narrowed to the send id: B's two sends, and the receipts of user-2 (B, converted) and
        // user-1 (A, not converted).
        let tagged = campaign::campaign_stats(
            &db,
            &ws,
            &created.id,
            since,
            until,
            Bucket::Hour,
            Some("bf"),
        )
        .await
        .unwrap();
        assert_eq!(tagged.total.sends, 2);
        assert_eq!(tagged.variants[0].sends, 0);
        assert_eq!(tagged.total.conversions, 1);
        assert_eq!(tagged.variants[1].conversions, 1);
        assert_eq!(tagged.variants[0].conversions, 0);
        assert_eq!(tagged.control_recipients, 0);
    }
}

#[tokio::test]
async fn the_workspace_overview_counts_running_campaigns_sends_and_latest_failures() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let running = campaign::create_campaign(&db, &ws, webhook_input("Running"), now())
            .await
            .unwrap();
        campaign::launch_campaign(&db, &ws, &running.id, now())
            .await
            .unwrap();
        campaign::create_campaign(&db, &ws, webhook_input("Draft"), now())
            .await
            .unwrap();
        let sends = queue(&db, &ws, &running.id, None, 5, None, now()).await;
        settle(&db, &ws, &sends[0], "delivered", 1, Some(200)).await;
        settle(&db, &ws, &sends[1], "failed", 1, Some(410)).await;
        settle(&db, &ws, &sends[2], "failed", 3, Some(500)).await;
        webhook_send::Entity::update_many()
            .col_expr(
                webhook_send::Column::CompletedAt,
                Expr::value(Some(now() + Duration::minutes(5))),
            )
            .filter(webhook_send::Column::Id.eq(sends[2].as_str()))
            .exec(&db)
            .await
            .unwrap();
        // An old send, before the period but still pending.
        queue(
            &db,
            &ws,
            &running.id,
            None,
            1,
            None,
            now() - Duration::days(2),
        )
        .await;

        let overview = campaign::workspace_overview(
            &db,
            &ws,
            now() - Duration::days(1),
            now() + Duration::hours(1),
        )
        .await
        .unwrap();
        assert_eq!(overview.active_campaigns, 1);
        assert_eq!(overview.sends, 5);
        assert_eq!(overview.delivered, 1);
        assert_eq!(overview.failed, 2);
        assert_eq!(overview.pending, 3);
        let errors: Vec<_> = overview
            .latest_errors
            .iter()
            .map(|e| (e.send_id.clone(), e.status_code))
            .collect();
        assert_eq!(
            errors,
            [
                (sends[2].to_string(), Some(500)),
                (sends[1].to_string(), Some(410))
            ]
        );
        assert_eq!(
            overview.latest_errors[0].recipient.as_deref(),
            Some("user-2")
        );
        assert_eq!(
            overview.latest_errors[0].source_name.as_deref(),
            Some("Welcome")
        );
    }
}

/// Depends on `schedule::next_occurrence` and `schedule::replan` (another part of the campaign
/// feature): a scheduled campaign launches `scheduled` with its next send known, and one whose
/// only send time has passed does not launch.
#[tokio::test]
async fn a_scheduled_campaign_launches_scheduled_with_its_next_send_and_a_past_one_is_refused() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let at = |day: u32| Delivery::Scheduled {
            schedule: Schedule::At {
                starts_on: NaiveDate::from_ymd_opt(2026, 12, day).unwrap(),
                time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                recurrence: Recurrence::Once,
                ends_on: None,
                time_zone: "Europe/Paris".into(),
                in_local_time: false,
            },
        };
        let created = campaign::create_campaign(
            &db,
            &ws,
            CampaignInput {
                delivery: at(1),
                ..webhook_input("Newsletter")
            },
            now(),
        )
        .await
        .unwrap();
        let launched = campaign::launch_campaign(&db, &ws, &created.id, now())
            .await
            .unwrap();
        assert_eq!(launched.status, CampaignStatus::Scheduled);
        let expected = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        assert_eq!(launched.next_send_at, Some(expected));
        let found = campaign::find_campaign(&db, &ws, &created.id)
            .await
            .unwrap();
        assert_eq!(found.next_send_at, Some(expected));
        let listed = campaign::list_campaigns(&db, &ws, &CampaignFilter::default())
            .await
            .unwrap();
        assert_eq!(listed[0].next_send_at, Some(expected));
        let stopped = campaign::stop_campaign(&db, &ws, &created.id, now())
            .await
            .unwrap();
        assert_eq!(stopped.next_send_at, None);
        let resumed = campaign::resume_campaign(&db, &ws, &created.id, now())
            .await
            .unwrap();
        assert_eq!(resumed.status, CampaignStatus::Scheduled);
        assert_eq!(resumed.next_send_at, Some(expected));
        // Editing a running scheduled campaign replans it.
        let moved = campaign::update_campaign(
            &db,
            &ws,
            &created.id,
            CampaignInput {
                delivery: at(2),
                ..webhook_input("Newsletter")
            },
            Some(resumed.version),
            now(),
        )
        .await
        .unwrap();
        let day_after = expected + Duration::days(1);
        assert_eq!(moved.next_send_at, Some(day_after));
        assert_eq!(
            campaign::find_campaign(&db, &ws, &created.id)
                .await
                .unwrap()
                .next_send_at,
            Some(day_after)
        );
        // Turned action-based, it has nothing planned any more.
        let action_based = campaign::update_campaign(
            &db,
            &ws,
            &created.id,
            webhook_input("Newsletter"),
            None,
            now(),
        )
        .await
        .unwrap();
        assert_eq!(action_based.next_send_at, None);
        assert_eq!(action_based.status, CampaignStatus::Active);
        assert_eq!(
            campaign::find_campaign(&db, &ws, &created.id)
                .await
                .unwrap()
                .next_send_at,
            None
        );

        let past = campaign::create_campaign(
            &db,
            &ws,
            CampaignInput {
                delivery: at(1),
                ..webhook_input("Too late")
            },
            now(),
        )
        .await
        .unwrap();
        let result =
            campaign::launch_campaign(&db, &ws, &past.id, expected + Duration::hours(1)).await;
        assert_eq!(field_of(result), "delivery.schedule");

        let bad_zone = campaign::create_campaign(
            &db,
            &ws,
            CampaignInput {
                delivery: Delivery::Scheduled {
                    schedule: Schedule::At {
                        starts_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                        time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                        recurrence: Recurrence::Once,
                        ends_on: None,
                        time_zone: "Mars/Olympus".into(),
                        in_local_time: false,
                    },
                },
                ..webhook_input("Nowhere")
            },
            now(),
        )
        .await
        .unwrap();
        let result = campaign::launch_campaign(&db, &ws, &bad_zone.id, now()).await;
        assert_eq!(field_of(result), "delivery.schedule.time_zone");
    }
}
