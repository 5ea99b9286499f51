//! API-triggered campaigns, action-based campaigns fired from the event inbox, and sends scheduled
//! over the REST API, on a freshly migrated database: SQLite always, PostgreSQL too when
//! TEST_DATABASE_URL is set.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::campaign::{
    self, AudienceSpec, Campaign, CampaignInput, CampaignKind, Delivery, PropertyFilter,
    ScheduledKind, Settings, Trigger, TriggerRecipient, TriggerRequest, TriggerTarget, Variant,
};
use domain::entity::{campaign_receipt, event_inbox, scheduled_message, webhook_send};
use domain::profile;
use domain::segment::{Comparison, Filter};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{DomainError, ScheduleId, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Map, Value, json};

mod common;

use common::{context, launched, now, props, track, users};

fn message() -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url: "https://hooks.example.com/orders".into(),
        headers: Vec::new(),
        body: Body::Raw {
            text: "{{api_trigger_properties.${order}}} {{event_properties.${sku}}}".into(),
        },
    }
}

fn input(delivery: Delivery, audience: AudienceSpec, settings: Settings) -> CampaignInput {
    CampaignInput {
        name: "Order updates".into(),
        description: String::new(),
        tags: Vec::new(),
        kind: CampaignKind::Webhook,
        variants: vec![Variant {
            id: None,
            name: "Variant 1".into(),
            percent: 100,
            message: Some(message()),
        }],
        control_percent: 0,
        delivery,
        audience,
        conversions: Vec::new(),
        settings,
    }
}

/// An active API-triggered campaign that a user may receive every time.
async fn api_triggered(db: &DatabaseConnection, ws: &WorkspaceId) -> Campaign {
    let settings = Settings {
        reeligible_after_seconds: Some(0),
        frequency_capped: false,
        ..Settings::default()
    };
    launched(
        db,
        ws,
        input(Delivery::Api, AudienceSpec::default(), settings),
        now(),
    )
    .await
}

fn recipient(id: &str, properties: Value) -> TriggerRecipient {
    TriggerRecipient {
        external_user_id: id.into(),
        trigger_properties: props(properties),
        send_to_existing_only: true,
        attributes: None,
    }
}

fn listed(recipients: Vec<TriggerRecipient>, properties: Value) -> TriggerRequest {
    TriggerRequest {
        target: TriggerTarget::Recipients { recipients },
        trigger_properties: props(properties),
        send_tag: None,
    }
}

async fn sends(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<webhook_send::Model> {
    webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(webhook_send::Column::Recipient)
        .order_by_asc(webhook_send::Column::CreatedAt)
        .all(db)
        .await
        .unwrap()
}

fn recipients_of(sends: &[webhook_send::Model]) -> Vec<String> {
    sends
        .iter()
        .map(|s| s.recipient.clone().unwrap_or_default())
        .collect()
}

fn field_of(error: &DomainError) -> Option<&'static str> {
    error.field()
}

#[tokio::test]
async fn a_trigger_queues_one_send_per_recipient_with_the_call_properties_under_their_own() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "pro"), ("u3", "pro")]).await;
        let campaign = api_triggered(&db, &ws).await;
        let request = listed(
            vec![
                recipient("u1", json!({"order": "A-1"})),
                recipient("u2", json!({"order": "A-2", "shop": "Lyon"})),
                recipient("u3", json!({})),
            ],
            json!({"order": "default", "shop": "Paris"}),
        );
        let outcome = campaign::trigger_campaign(&db, &ws, &campaign.id, request, now())
            .await
            .unwrap();
        assert_eq!(outcome.queued, 3);
        assert!(outcome.unknown_recipients.is_empty());
        assert!(!outcome.dispatch_id.is_empty());

        let sends = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sends), ["u1", "u2", "u3"]);
        let properties: Vec<Value> = sends
            .iter()
            .map(|s| context(s)["api_trigger_properties"].clone())
            .collect();
        assert_eq!(
            properties,
            [
                json!({"order": "A-1", "shop": "Paris"}),
                json!({"order": "A-2", "shop": "Lyon"}),
                json!({"order": "default", "shop": "Paris"}),
            ]
        );
        // One dispatch id for the whole call.
        assert!(
            sends
                .iter()
                .all(|s| s.dispatch_id.as_deref() == Some(outcome.dispatch_id.as_str()))
        );
    }
}

#[tokio::test]
async fn attributes_are_applied_before_the_send_and_may_create_the_user() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let campaign = api_triggered(&db, &ws).await;
        let request = listed(
            vec![
                TriggerRecipient {
                    attributes: Some(props(json!({"plan": "pro"}))),
                    ..recipient("u1", json!({}))
                },
                TriggerRecipient {
                    send_to_existing_only: false,
                    attributes: Some(props(json!({"first_name": "Ada"}))),
                    ..recipient("new-user", json!({}))
                },
            ],
            json!({}),
        );
        let outcome = campaign::trigger_campaign(&db, &ws, &campaign.id, request, now())
            .await
            .unwrap();
        assert_eq!(outcome.queued, 2);

        let sends = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sends), ["new-user", "u1"]);
        assert_eq!(context(&sends[0])["user"]["first_name"], json!("Ada"));
        assert_eq!(
            context(&sends[1])["custom_attributes"]["plan"],
            json!("pro")
        );
        let created = profile::find_by_external_id(&db, &ws, "new-user")
            .await
            .unwrap();
        assert_eq!(created.unwrap().first_name.as_deref(), Some("Ada"));
    }
}

#[tokio::test]
async fn unknown_users_are_reported_and_not_created_when_sending_to_existing_users_only() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let campaign = api_triggered(&db, &ws).await;
        let request = listed(
            vec![
                recipient("u1", json!({})),
                TriggerRecipient {
                    attributes: Some(props(json!({"plan": "pro"}))),
                    ..recipient("ghost", json!({}))
                },
            ],
            json!({}),
        );
        let outcome = campaign::trigger_campaign(&db, &ws, &campaign.id, request, now())
            .await
            .unwrap();
        assert_eq!(outcome.queued, 1);
        assert_eq!(outcome.unknown_recipients, ["ghost"]);
        assert!(
            profile::find_by_external_id(&db, &ws, "ghost")
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn malformed_trigger_calls_are_rejected_naming_the_field_and_change_nothing() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let campaign = api_triggered(&db, &ws).await;

        let many = (0..51)
            .map(|i| recipient(&format!("u{i}"), json!({})))
            .collect();
        let error =
            campaign::trigger_campaign(&db, &ws, &campaign.id, listed(many, json!({})), now())
                .await
                .unwrap_err();
        assert_eq!(field_of(&error), Some("recipients"));
        assert!(error.to_string().contains("(50)"), "{error}");

        let creating_without_attributes = TriggerRecipient {
            send_to_existing_only: false,
            ..recipient("u2", json!({}))
        };
        let error = campaign::trigger_campaign(
            &db,
            &ws,
            &campaign.id,
            listed(vec![creating_without_attributes], json!({})),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(&error), Some("recipients.attributes"));

        let big = json!({"blob": "x".repeat(51 * 1024)});
        let error = campaign::trigger_campaign(
            &db,
            &ws,
            &campaign.id,
            listed(vec![recipient("u1", json!({}))], big),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(&error), Some("trigger_properties"));

        // An attribute rejected by /users/track rolls the whole call back, users created by the
        // same call included.
        let creating = TriggerRecipient {
            send_to_existing_only: false,
            attributes: Some(props(json!({"first_name": "Ada"}))),
            ..recipient("u8", json!({}))
        };
        let bad_attribute = TriggerRecipient {
            send_to_existing_only: false,
            attributes: Some(props(json!({"email": "not an email"}))),
            ..recipient("u9", json!({}))
        };
        let error = campaign::trigger_campaign(
            &db,
            &ws,
            &campaign.id,
            listed(
                vec![recipient("u1", json!({})), creating, bad_attribute],
                json!({}),
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(&error), Some("recipients.attributes"), "{error}");
        assert!(sends(&db, &ws).await.is_empty());
        for id in ["u8", "u9"] {
            assert!(
                profile::find_by_external_id(&db, &ws, id)
                    .await
                    .unwrap()
                    .is_none(),
                "{id}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_draft_stopped_and_non_api_campaigns_are_an_invalid_campaign_id() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let request = || listed(vec![recipient("u1", json!({}))], json!({}));

        let unknown = domain::CampaignId::generate();
        let error = campaign::trigger_campaign(&db, &ws, &unknown, request(), now())
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("campaign_id"));
        assert!(error.to_string().contains("Invalid Campaign ID"));

        let draft = campaign::create_campaign(
            &db,
            &ws,
            input(Delivery::Api, AudienceSpec::default(), Settings::default()),
            now(),
        )
        .await
        .unwrap();
        let error = campaign::trigger_campaign(&db, &ws, &draft.id, request(), now())
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("campaign_id"));

        let stopped = api_triggered(&db, &ws).await;
        campaign::stop_campaign(&db, &ws, &stopped.id, now())
            .await
            .unwrap();
        let error = campaign::trigger_campaign(&db, &ws, &stopped.id, request(), now())
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("campaign_id"));
        assert!(error.to_string().contains("Invalid Campaign ID"));
        assert!(error.to_string().contains("stopped"), "{error}");

        let action = launched(
            &db,
            &ws,
            input(
                action_delivery(0, Vec::new()),
                AudienceSpec::default(),
                Settings::default(),
            ),
            now(),
        )
        .await;
        let error = campaign::trigger_campaign(&db, &ws, &action.id, request(), now())
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("campaign_id"));

        // Another workspace's campaign is unknown here.
        let other = WorkspaceId::generate();
        let theirs = api_triggered(&db, &other).await;
        let error = campaign::trigger_campaign(&db, &ws, &theirs.id, request(), now())
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("campaign_id"));
        assert!(sends(&db, &ws).await.is_empty());
    }
}

#[tokio::test]
async fn a_broadcast_reaches_the_campaign_audience_narrowed_by_the_connected_audience() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(
            &db,
            &ws,
            &[("u1", "pro"), ("u2", "pro"), ("u3", "free"), ("u4", "pro")],
        )
        .await;
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u4", "country": "FR"}]}),
            now(),
        )
        .await;
        let pro = Filter::Attribute {
            name: "plan".into(),
            custom: true,
            comparison: Comparison::Equals,
            value: json!("pro"),
        };
        let campaign = launched(
            &db,
            &ws,
            input(
                Delivery::Api,
                AudienceSpec {
                    segment_ids: Vec::new(),
                    filter: Some(pro),
                },
                Settings::default(),
            ),
            now(),
        )
        .await;

        let broadcast = TriggerRequest {
            target: TriggerTarget::Broadcast { audience: None },
            trigger_properties: props(json!({"order": "all"})),
            send_tag: None,
        };
        let outcome = campaign::trigger_campaign(&db, &ws, &campaign.id, broadcast, now())
            .await
            .unwrap();
        assert_eq!(outcome.queued, 3);
        assert_eq!(recipients_of(&sends(&db, &ws).await), ["u1", "u2", "u4"]);

        // Listed users outside the audience get nothing either.
        let outcome = campaign::trigger_campaign(
            &db,
            &ws,
            &campaign.id,
            listed(vec![recipient("u3", json!({}))], json!({})),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.queued, 0);
        assert!(outcome.unknown_recipients.is_empty());

        let other_ws = WorkspaceId::generate();
        users(&db, &other_ws, &[("u1", "pro"), ("u2", "pro")]).await;
        let again = api_triggered(&db, &other_ws).await;
        let narrowed = TriggerRequest {
            target: TriggerTarget::Broadcast {
                audience: Some(Filter::Attribute {
                    name: "plan".into(),
                    custom: true,
                    comparison: Comparison::Equals,
                    value: json!("pro"),
                }),
            },
            trigger_properties: Map::new(),
            send_tag: Some("black-friday".into()),
        };
        track(
            &db,
            &other_ws,
            json!({"attributes": [{"external_id": "u2", "plan": "free"}]}),
            now(),
        )
        .await;
        let outcome = campaign::trigger_campaign(&db, &other_ws, &again.id, narrowed, now())
            .await
            .unwrap();
        assert_eq!(outcome.queued, 1);
        let sent = sends(&db, &other_ws).await;
        assert_eq!(recipients_of(&sent), ["u1"]);
        assert_eq!(sent[0].send_tag.as_deref(), Some("black-friday"));
    }
}

#[tokio::test]
async fn a_second_trigger_respects_re_eligibility() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        // Default settings: a user receives the campaign once.
        let campaign = launched(
            &db,
            &ws,
            input(Delivery::Api, AudienceSpec::default(), Settings::default()),
            now(),
        )
        .await;
        let request = || listed(vec![recipient("u1", json!({}))], json!({}));
        let first = campaign::trigger_campaign(&db, &ws, &campaign.id, request(), now())
            .await
            .unwrap();
        assert_eq!(first.queued, 1);
        let second = campaign::trigger_campaign(
            &db,
            &ws,
            &campaign.id,
            request(),
            now() + Duration::hours(1),
        )
        .await
        .unwrap();
        assert_eq!(second.queued, 0);
        assert_eq!(second.skipped, 1);
        assert_ne!(first.dispatch_id, second.dispatch_id);
        assert_eq!(sends(&db, &ws).await.len(), 1);
    }
}

fn action_delivery(delay_seconds: u64, exceptions: Vec<Trigger>) -> Delivery {
    Delivery::Action {
        trigger: Trigger::CustomEvent {
            name: "cart_abandoned".into(),
            property_filters: vec![PropertyFilter {
                property: "total".into(),
                comparison: "greater_than".into(),
                value: json!(50),
            }],
        },
        delay_seconds,
        exceptions,
        starts_at: None,
        ends_at: None,
    }
}

fn event(id: &str, name: &str, at: DateTime<Utc>, properties: Value) -> Value {
    json!({"events": [{
        "external_id": id,
        "name": name,
        "time": at.to_rfc3339(),
        "properties": properties,
    }]})
}

/// An active action-based campaign on `cart_abandoned` with `total > 50`, an hour's delay and
/// `purchase_completed` as exception, launched at `now()`.
async fn cart_campaign(db: &DatabaseConnection, ws: &WorkspaceId) -> Campaign {
    let exceptions = vec![Trigger::CustomEvent {
        name: "purchase_completed".into(),
        property_filters: Vec::new(),
    }];
    launched(
        db,
        ws,
        input(
            action_delivery(3600, exceptions),
            AudienceSpec::default(),
            Settings::default(),
        ),
        now(),
    )
    .await
}

async fn unhandled(db: &DatabaseConnection) -> usize {
    event_inbox::Entity::find()
        .filter(event_inbox::Column::HandledAt.is_null())
        .all(db)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_tracked_event_fires_an_action_based_campaign_after_its_delay() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let campaign = cart_campaign(&db, &ws).await;
        let at = now() + Duration::minutes(1);
        track(
            &db,
            &ws,
            event(
                "u1",
                "cart_abandoned",
                at,
                json!({"total": 80, "sku": "KB-1"}),
            ),
            at,
        )
        .await;

        let handled = campaign::handle_events(&db, at + Duration::seconds(5), 500)
            .await
            .unwrap();
        assert_eq!(handled, 1);
        let sent = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sent), ["u1"]);
        assert_eq!(sent[0].source_id.as_deref(), Some(campaign.id.as_str()));
        assert_eq!(
            context(&sent[0])["event_properties"],
            json!({"total": 80, "sku": "KB-1"})
        );
        assert_eq!(sent[0].next_attempt_at, at + Duration::hours(1));
        assert_eq!(sent[0].attempts, 0);

        // Handled events are not handled twice, even once their lease would have run out.
        assert_eq!(unhandled(&db).await, 0);
        let again = campaign::handle_events(&db, at + Duration::minutes(10), 500)
            .await
            .unwrap();
        assert_eq!(again, 0);
        assert_eq!(sends(&db, &ws).await.len(), 1);
    }
}

#[tokio::test]
async fn events_that_do_not_match_or_came_before_launch_fire_nothing_but_are_handled() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "free"), ("u3", "free")]).await;
        cart_campaign(&db, &ws).await;
        let at = now() + Duration::minutes(1);
        // Property filter mismatch, another event, and a trigger before the launch.
        track(
            &db,
            &ws,
            event("u1", "cart_abandoned", at, json!({"total": 20})),
            at,
        )
        .await;
        track(
            &db,
            &ws,
            event("u2", "cart_viewed", at, json!({"total": 80})),
            at,
        )
        .await;
        let before = now() - Duration::minutes(5);
        track(
            &db,
            &ws,
            event("u3", "cart_abandoned", before, json!({"total": 80})),
            at,
        )
        .await;

        // `cart_viewed` is nothing's trigger or exception: stored without an inbox row.
        let handled = campaign::handle_events(&db, at, 500).await.unwrap();
        assert_eq!(handled, 2);
        assert!(sends(&db, &ws).await.is_empty());
        assert_eq!(unhandled(&db).await, 0);
    }
}

#[tokio::test]
async fn an_exception_event_cancels_the_delayed_send_and_the_user_stays_eligible() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "free")]).await;
        let campaign = cart_campaign(&db, &ws).await;
        let at = now() + Duration::minutes(1);
        for id in ["u1", "u2"] {
            track(
                &db,
                &ws,
                event(id, "cart_abandoned", at, json!({"total": 80})),
                at,
            )
            .await;
        }
        campaign::handle_events(&db, at, 500).await.unwrap();
        assert_eq!(sends(&db, &ws).await.len(), 2);

        // u1 buys within the delay; u2 does not.
        let bought = at + Duration::minutes(20);
        track(
            &db,
            &ws,
            event("u1", "purchase_completed", bought, json!({})),
            bought,
        )
        .await;
        assert_eq!(campaign::handle_events(&db, bought, 500).await.unwrap(), 1);

        let sent = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sent), ["u1", "u2"]);
        assert_eq!(sent[0].status, "aborted");
        assert_eq!(
            sent[0].last_error.as_deref(),
            Some("exception event purchase_completed")
        );
        assert_eq!(sent[1].status, "pending");
        let receipts = campaign_receipt::Entity::find()
            .filter(campaign_receipt::Column::WorkspaceId.eq(ws.as_str()))
            .filter(campaign_receipt::Column::CampaignId.eq(campaign.id.as_str()))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(receipts.len(), 1, "u1's receipt is given back");

        // Without re-eligibility, u1 still receives the campaign on the next trigger.
        let later = at + Duration::hours(3);
        track(
            &db,
            &ws,
            event("u1", "cart_abandoned", later, json!({"total": 99})),
            later,
        )
        .await;
        campaign::handle_events(&db, later, 500).await.unwrap();
        let sent = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sent), ["u1", "u1", "u2"]);
        assert_eq!(sent[1].status, "pending");
        assert_eq!(sent[1].next_attempt_at, later + Duration::hours(1));
    }
}

#[tokio::test]
async fn a_purchase_fires_a_campaign_on_that_product_only() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "free")]).await;
        let delivery = Delivery::Action {
            trigger: Trigger::Purchase {
                product_id: Some("keyboard".into()),
            },
            delay_seconds: 0,
            exceptions: Vec::new(),
            starts_at: None,
            ends_at: None,
        };
        launched(
            &db,
            &ws,
            input(delivery, AudienceSpec::default(), Settings::default()),
            now(),
        )
        .await;
        let at = now() + Duration::minutes(1);
        for (id, product) in [("u1", "keyboard"), ("u2", "mouse")] {
            track(
                &db,
                &ws,
                json!({"purchases": [{
                    "external_id": id, "product_id": product, "currency": "EUR",
                    "price": 30.0, "time": at.to_rfc3339(), "properties": {"sku": product}
                }]}),
                at,
            )
            .await;
        }
        // Only the keyboard purchase reaches the inbox: no campaign names the mouse.
        assert_eq!(campaign::handle_events(&db, at, 500).await.unwrap(), 1);
        let sent = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sent), ["u1"]);
        assert_eq!(sent[0].next_attempt_at, at, "no delay: due at once");
        assert_eq!(
            context(&sent[0])["event_properties"]["sku"],
            json!("keyboard")
        );
    }
}

fn scheduled_message(ids: &[&str]) -> ScheduledKind {
    ScheduledKind::Messages {
        message: WebhookMessage {
            body: Body::Raw {
                text: "hello {{${first_name}}} {{campaign.${dispatch_id}}}".into(),
            },
            ..message()
        },
        external_ids: ids.iter().map(|s| s.to_string()).collect(),
        filter: None,
        campaign_id: None,
        variant_id: None,
        send_tag: None,
    }
}

#[tokio::test]
async fn schedules_are_created_listed_updated_and_cancelled_while_pending() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let soon = now() + Duration::hours(2);
        let later = now() + Duration::days(3);

        let error =
            campaign::create_scheduled(&db, &ws, scheduled_message(&["u1"]), now(), false, now())
                .await
                .unwrap_err();
        assert_eq!(field_of(&error), Some("schedule.time"));
        // In local time, a wall time passed in UTC is still ahead west of it.
        let local = campaign::create_scheduled(
            &db,
            &ws,
            scheduled_message(&["u1"]),
            now() - Duration::hours(3),
            true,
            now(),
        )
        .await
        .unwrap();
        assert!(local.in_local_time);
        let error = campaign::create_scheduled(
            &db,
            &ws,
            scheduled_message(&["u1"]),
            now() - Duration::hours(13),
            true,
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(&error), Some("schedule.time"));
        let error =
            campaign::create_scheduled(&db, &ws, scheduled_message(&[]), soon, false, now())
                .await
                .unwrap_err();
        assert_eq!(field_of(&error), Some("external_user_ids"));

        let first =
            campaign::create_scheduled(&db, &ws, scheduled_message(&["u1"]), later, false, now())
                .await
                .unwrap();
        let second =
            campaign::create_scheduled(&db, &ws, scheduled_message(&["u2"]), soon, false, now())
                .await
                .unwrap();
        assert_eq!(first.status, "pending");
        assert_ne!(first.dispatch_id, second.dispatch_id);

        let listed = campaign::list_scheduled(&db, &ws, now() + Duration::days(7))
            .await
            .unwrap();
        let ids: Vec<&ScheduleId> = listed.iter().map(|s| &s.schedule_id).collect();
        assert_eq!(
            ids,
            [&local.schedule_id, &second.schedule_id, &first.schedule_id]
        );
        let until_tomorrow = campaign::list_scheduled(&db, &ws, now() + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(until_tomorrow.len(), 2);
        assert!(
            campaign::list_scheduled(&db, &WorkspaceId::generate(), later)
                .await
                .unwrap()
                .is_empty()
        );

        // Move the later one before the other and change who it goes to.
        let moved = campaign::update_scheduled(
            &db,
            &ws,
            &first.schedule_id,
            Some(scheduled_message(&["u3"])),
            Some((now() + Duration::hours(1), false)),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(moved.send_at, now() + Duration::hours(1));
        assert_eq!(moved.kind, scheduled_message(&["u3"]));
        assert_eq!(moved.dispatch_id, first.dispatch_id);
        let error = campaign::update_scheduled(
            &db,
            &ws,
            &first.schedule_id,
            None,
            Some((now() - Duration::hours(1), false)),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(&error), Some("schedule.time"));

        campaign::cancel_scheduled(&db, &ws, &second.schedule_id, now())
            .await
            .unwrap();
        // Cancelling twice changes nothing; a cancelled one cannot be updated.
        campaign::cancel_scheduled(&db, &ws, &second.schedule_id, now())
            .await
            .unwrap();
        let error = campaign::update_scheduled(
            &db,
            &ws,
            &second.schedule_id,
            None,
            Some((later, false)),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(&error), Some("schedule_id"));
        let listed = campaign::list_scheduled(&db, &ws, later).await.unwrap();
        let ids: Vec<&ScheduleId> = listed.iter().map(|s| &s.schedule_id).collect();
        assert_eq!(ids, [&local.schedule_id, &first.schedule_id]);

        let unknown = ScheduleId::generate();
        assert!(matches!(
            campaign::cancel_scheduled(&db, &ws, &unknown, now()).await,
            Err(DomainError::NotFound("schedule"))
        ));
        assert!(matches!(
            campaign::update_scheduled(&db, &ws, &unknown, None, Some((later, false)), now()).await,
            Err(DomainError::NotFound("schedule"))
        ));
        // Another workspace cannot see it.
        assert!(matches!(
            campaign::cancel_scheduled(&db, &WorkspaceId::generate(), &first.schedule_id, now())
                .await,
            Err(DomainError::NotFound("schedule"))
        ));
    }
}

#[tokio::test]
async fn a_due_scheduled_message_is_carried_out_exactly_once_under_its_dispatch_id() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "pro")]).await;
        let due = now() + Duration::hours(1);
        let scheduled = campaign::create_scheduled(
            &db,
            &ws,
            scheduled_message(&["u1", "u2", "ghost"]),
            due,
            false,
            now(),
        )
        .await
        .unwrap();
        let not_yet = campaign::create_scheduled(
            &db,
            &ws,
            scheduled_message(&["u1"]),
            due + Duration::hours(1),
            false,
            now(),
        )
        .await
        .unwrap();

        assert_eq!(
            campaign::run_due_scheduled(&db, due - Duration::seconds(1), 10)
                .await
                .unwrap(),
            0
        );
        assert!(sends(&db, &ws).await.is_empty());
        assert_eq!(campaign::run_due_scheduled(&db, due, 10).await.unwrap(), 1);
        let sent = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sent), ["u1", "u2"]);
        for send in &sent {
            assert_eq!(
                send.dispatch_id.as_deref(),
                Some(scheduled.dispatch_id.as_str())
            );
            assert_eq!(
                context(send)["campaign"]["dispatch_id"],
                json!(scheduled.dispatch_id)
            );
        }
        // Nothing repeats, however often the runner comes back, and the lease's expiry does not
        // bring it back either.
        for later in [due, due + Duration::minutes(30)] {
            assert_eq!(
                campaign::run_due_scheduled(&db, later, 10).await.unwrap(),
                0
            );
        }
        assert_eq!(sends(&db, &ws).await.len(), 2);
        let row = scheduled_message::Entity::find_by_id((
            ws.to_string(),
            scheduled.schedule_id.to_string(),
        ))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
        assert_eq!(row.status, "done");
        assert!(row.lease_until.is_none());
        // Done: it is no longer listed, and cannot be cancelled.
        let listed = campaign::list_scheduled(&db, &ws, due + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].schedule_id, not_yet.schedule_id);
        let error = campaign::cancel_scheduled(&db, &ws, &scheduled.schedule_id, due)
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("schedule_id"));
    }
}

#[tokio::test]
async fn a_scheduled_broadcast_in_local_time_waits_for_each_users_own_time() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "paris", "time_zone": "Europe/Paris"},
                {"external_id": "ny", "time_zone": "America/New_York"},
                {"external_id": "utc"},
            ]}),
            now(),
        )
        .await;
        // 2026-11-29 at 10:00 wherever the user is.
        let wall = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let kind = ScheduledKind::Messages {
            message: message(),
            external_ids: Vec::new(),
            filter: Some(Filter::And {
                filters: Vec::new(),
            }),
            campaign_id: None,
            variant_id: None,
            send_tag: None,
        };
        campaign::create_scheduled(&db, &ws, kind, wall, true, now())
            .await
            .unwrap();
        // Due when 10:00 first comes somewhere (UTC+14), not before.
        let first_zone = wall - Duration::hours(14);
        assert_eq!(
            campaign::run_due_scheduled(&db, first_zone - Duration::minutes(1), 10)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            campaign::run_due_scheduled(&db, first_zone, 10)
                .await
                .unwrap(),
            1
        );
        let sent = sends(&db, &ws).await;
        let due: Vec<(String, DateTime<Utc>)> = sent
            .iter()
            .map(|s| (s.recipient.clone().unwrap(), s.next_attempt_at))
            .collect();
        assert_eq!(
            due,
            [
                (
                    "ny".to_owned(),
                    Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap()
                ),
                (
                    "paris".to_owned(),
                    Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap()
                ),
                ("utc".to_owned(), wall),
            ]
        );
    }
}

#[tokio::test]
async fn a_scheduled_campaign_trigger_is_carried_out_once_and_fails_if_the_campaign_stopped() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let campaign = api_triggered(&db, &ws).await;
        let trigger = |order: &str| ScheduledKind::CampaignTrigger {
            campaign_id: campaign.id.clone(),
            request: listed(vec![recipient("u1", json!({}))], json!({ "order": order })),
        };
        let due = now() + Duration::hours(1);
        let first = campaign::create_scheduled(&db, &ws, trigger("A-1"), due, false, now())
            .await
            .unwrap();
        let second = campaign::create_scheduled(
            &db,
            &ws,
            trigger("A-2"),
            due + Duration::hours(1),
            false,
            now(),
        )
        .await
        .unwrap();

        // Only API-triggered campaigns can be scheduled.
        let unknown = ScheduledKind::CampaignTrigger {
            campaign_id: domain::CampaignId::generate(),
            request: listed(vec![recipient("u1", json!({}))], json!({})),
        };
        let error = campaign::create_scheduled(&db, &ws, unknown, due, false, now())
            .await
            .unwrap_err();
        assert_eq!(field_of(&error), Some("campaign_id"));

        assert_eq!(campaign::run_due_scheduled(&db, due, 10).await.unwrap(), 1);
        assert_eq!(campaign::run_due_scheduled(&db, due, 10).await.unwrap(), 0);
        let sent = sends(&db, &ws).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].dispatch_id.as_deref(),
            Some(first.dispatch_id.as_str())
        );
        assert_eq!(
            context(&sent[0])["api_trigger_properties"],
            json!({"order": "A-1"})
        );

        campaign::stop_campaign(&db, &ws, &campaign.id, due)
            .await
            .unwrap();
        let later = due + Duration::hours(1);
        assert_eq!(
            campaign::run_due_scheduled(&db, later, 10).await.unwrap(),
            1
        );
        let row =
            scheduled_message::Entity::find_by_id((ws.to_string(), second.schedule_id.to_string()))
                .one(&db)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(row.status, "failed");
        assert_eq!(sends(&db, &ws).await.len(), 1);
    }
}

#[tokio::test]
async fn an_action_based_campaign_skips_users_outside_its_audience_or_its_duration() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free"), ("u2", "pro")]).await;
        let pro_only = AudienceSpec {
            segment_ids: Vec::new(),
            filter: Some(Filter::Attribute {
                name: "plan".into(),
                custom: true,
                comparison: Comparison::Equals,
                value: json!("pro"),
            }),
        };
        let audience_campaign = launched(
            &db,
            &ws,
            input(
                action_delivery(0, Vec::new()),
                pro_only,
                Settings::default(),
            ),
            now(),
        )
        .await;
        // Ends 30 minutes after launch, with an hour's delay: no send can fall inside it.
        let ending = Delivery::Action {
            trigger: Trigger::CustomEvent {
                name: "cart_abandoned".into(),
                property_filters: Vec::new(),
            },
            delay_seconds: 3600,
            exceptions: Vec::new(),
            starts_at: None,
            ends_at: Some(now() + Duration::minutes(30)),
        };
        launched(
            &db,
            &ws,
            input(ending, AudienceSpec::default(), Settings::default()),
            now(),
        )
        .await;
        let at = now() + Duration::minutes(1);
        for id in ["u1", "u2"] {
            track(
                &db,
                &ws,
                event(id, "cart_abandoned", at, json!({"total": 80})),
                at,
            )
            .await;
        }
        assert_eq!(campaign::handle_events(&db, at, 500).await.unwrap(), 2);
        let sent = sends(&db, &ws).await;
        assert_eq!(recipients_of(&sent), ["u2"]);
        assert_eq!(
            sent[0].source_id.as_deref(),
            Some(audience_campaign.id.as_str())
        );
    }
}

#[tokio::test]
async fn a_scheduled_api_campaign_message_in_local_time_is_tracked_and_held_per_user() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "paris", "time_zone": "Europe/Paris"},
                {"external_id": "kiritimati", "time_zone": "Pacific/Kiritimati"},
            ]}),
            now(),
        )
        .await;
        let api = CampaignInput {
            kind: CampaignKind::Api,
            variants: vec![Variant {
                id: None,
                name: "Webhook".into(),
                percent: 100,
                message: None,
            }],
            ..input(Delivery::Api, AudienceSpec::default(), Settings::default())
        };
        let campaign = launched(&db, &ws, api, now()).await;
        let variant = campaign.variants[0].id.clone().unwrap();
        // 20:00 local on the day: already past in Kiritimati (06:00 UTC) when scheduled at 09:00.
        let wall = Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap();
        let kind = ScheduledKind::Messages {
            message: message(),
            external_ids: vec!["paris".into(), "kiritimati".into()],
            filter: None,
            campaign_id: Some(campaign.id.clone()),
            variant_id: None,
            send_tag: None,
        };
        let scheduled = campaign::create_scheduled(&db, &ws, kind, wall, true, now())
            .await
            .unwrap();
        // The campaign's variant is filled in when none is named.
        let ScheduledKind::Messages { variant_id, .. } = &scheduled.kind else {
            panic!("a message schedule");
        };
        assert_eq!(variant_id.as_ref(), Some(&variant));

        assert_eq!(
            campaign::run_due_scheduled(&db, now(), 10).await.unwrap(),
            1
        );
        let sent = sends(&db, &ws).await;
        let seen: Vec<(String, String, DateTime<Utc>)> = sent
            .iter()
            .map(|s| {
                (
                    s.recipient.clone().unwrap(),
                    s.status.clone(),
                    s.next_attempt_at,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("kiritimati".to_owned(), "aborted".to_owned(), now()),
                (
                    "paris".to_owned(),
                    "pending".to_owned(),
                    Utc.with_ymd_and_hms(2026, 11, 28, 19, 0, 0).unwrap()
                ),
            ]
        );
        assert!(
            sent.iter()
                .all(|s| s.variant_id.as_deref() == Some(variant.as_str()))
        );
    }
}

#[tokio::test]
async fn events_recorded_for_a_campaign_stopped_before_they_are_handled_are_handled_without_a_send()
{
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        users(&db, &ws, &[("u1", "free")]).await;
        let campaign = cart_campaign(&db, &ws).await;
        let at = now() + Duration::minutes(1);
        track(
            &db,
            &ws,
            event("u1", "cart_abandoned", at, json!({"total": 80})),
            at,
        )
        .await;
        assert_eq!(
            unhandled(&db).await,
            1,
            "recorded while the campaign listened"
        );
        campaign::stop_campaign(&db, &ws, &campaign.id, at)
            .await
            .unwrap();

        assert_eq!(campaign::handle_events(&db, at, 500).await.unwrap(), 1);
        assert!(sends(&db, &ws).await.is_empty());
        assert_eq!(unhandled(&db).await, 0);
    }
}
