//! Audience data through the public API, item by item against Braze's documented behaviour, on a
//! freshly migrated database: SQLite always, PostgreSQL too when TEST_DATABASE_URL is set.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::campaign::{self, CampaignInput, CampaignKind, Delivery, Settings, Trigger, Variant};
use domain::entity::profile as profile_entity;
use domain::profile::{self, EventKind, InboxKey, TrackOutcome, UserAlias};
use domain::template::{RenderOutcome, Template};
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{DomainError, ProfileId, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
}

fn ws() -> WorkspaceId {
    WorkspaceId::generate()
}

async fn track(db: &DatabaseConnection, ws: &WorkspaceId, body: Value) -> TrackOutcome {
    profile::track(db, ws, &body, now()).await.unwrap()
}

async fn user(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    external_id: &str,
) -> profile_entity::Model {
    profile::find_by_external_id(db, ws, external_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no user {external_id}"))
}

async fn custom(db: &DatabaseConnection, ws: &WorkspaceId, external_id: &str) -> Value {
    Value::Object(profile::custom_attributes(&user(db, ws, external_id).await))
}

async fn view(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    external_id: &str,
) -> profile::ProfileView {
    let model = user(db, ws, external_id).await;
    profile::find(db, ws, &profile::profile_id(&model))
        .await
        .unwrap()
}

async fn count<E: EntityTrait>(db: &DatabaseConnection) -> u64
where
    E::Model: Sync,
{
    E::find().count(db).await.unwrap()
}

fn errors(outcome: &TrackOutcome) -> Vec<(&'static str, usize)> {
    outcome
        .errors
        .iter()
        .map(|e| (e.input_array, e.index))
        .collect()
}

fn event(external_id: &str, name: &str) -> Value {
    json!({"external_id": external_id, "name": name, "time": "2026-11-28T08:00:00Z"})
}

#[tokio::test]
async fn attributes_create_a_user_with_standard_and_custom_attributes_of_every_type() {
    for db in test_databases().await {
        let ws = ws();
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{
                "external_id": "u1",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "Ada@Example.com",
                "phone": "+33612345678",
                "dob": "1815-12-10",
                "gender": "F",
                "country": "GB",
                "home_city": "London",
                "language": "en",
                "time_zone": "Europe/London",
                "plan": "pro",
                "visits": 3,
                "score": 4.5,
                "vip": true,
                "signed_up_at": "2026-01-02T03:04:05Z",
                "tags": ["a", "b", "a"],
                "address": {"city": "London", "zip": {"code": "W1"}},
            }]}),
        )
        .await;
        assert_eq!(outcome.attributes_processed, 1, "{outcome:?}");
        assert!(outcome.errors.is_empty());
        let u = user(&db, &ws, "u1").await;
        assert_eq!(u.first_name.as_deref(), Some("Ada"));
        assert_eq!(u.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(u.email.as_deref(), Some("ada@example.com"));
        assert_eq!(u.phone.as_deref(), Some("+33612345678"));
        assert_eq!(u.date_of_birth.as_deref(), Some("1815-12-10"));
        assert_eq!(u.gender.as_deref(), Some("F"));
        assert_eq!(u.country.as_deref(), Some("GB"));
        assert_eq!(u.home_city.as_deref(), Some("London"));
        assert_eq!(u.language.as_deref(), Some("en"));
        assert_eq!(u.time_zone.as_deref(), Some("Europe/London"));
        assert_eq!(
            custom(&db, &ws, "u1").await,
            json!({
                "plan": "pro",
                "visits": 3,
                "score": 4.5,
                "vip": true,
                "signed_up_at": "2026-01-02T03:04:05Z",
                "tags": ["a", "b"],
                "address": {"city": "London", "zip": {"code": "W1"}},
            })
        );
    }
}

#[tokio::test]
async fn attributes_not_sent_are_untouched_and_null_removes_an_attribute() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada", "plan": "pro", "seats": 2}]}),
        )
        .await;
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "last_name": "L", "first_name": null, "plan": null}]}),
        )
        .await;
        assert_eq!(outcome.attributes_processed, 1);
        let u = user(&db, &ws, "u1").await;
        assert_eq!(u.first_name, None);
        assert_eq!(u.last_name.as_deref(), Some("L"));
        assert_eq!(custom(&db, &ws, "u1").await, json!({"seats": 2}));
    }
}

#[tokio::test]
async fn inc_increments_a_numeric_custom_attribute_and_a_missing_one_counts_from_zero() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "logins": {"inc": 2}, "plan": "pro"}]}),
        )
        .await;
        track(&db, &ws, json!({"attributes": [{"external_id": "u1", "logins": {"inc": 3}, "credit": {"inc": 1.5}}]})).await;
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "logins": {"inc": -1}}]}),
        )
        .await;
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "plan": {"inc": 1}}]}),
        )
        .await;
        assert_eq!(outcome.attributes_processed, 0);
        assert_eq!(errors(&outcome), vec![("attributes", 0)]);
        assert_eq!(
            custom(&db, &ws, "u1").await,
            json!({"logins": 4, "credit": 1.5, "plan": "pro"})
        );
    }
}

#[tokio::test]
async fn add_and_remove_edit_an_array_without_duplicates_keeping_the_newest_25() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "tags": ["a", "b"]}]}),
        )
        .await;
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "tags": {"add": ["b", "c"], "remove": ["a"]}}]}),
        )
        .await;
        assert_eq!(custom(&db, &ws, "u1").await, json!({"tags": ["b", "c"]}));
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "fresh": {"add": [1, 1, 2]}}]}),
        )
        .await;
        assert_eq!(custom(&db, &ws, "u1").await["fresh"], json!([1, 2]));

        let many: Vec<i64> = (0..30).collect();
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "nums": {"add": many}}]}),
        )
        .await;
        let expected: Vec<i64> = (5..30).collect();
        assert_eq!(custom(&db, &ws, "u1").await["nums"], json!(expected));
        let set: Vec<i64> = (0..27).collect();
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "set": set}]}),
        )
        .await;
        let expected: Vec<i64> = (2..27).collect();
        assert_eq!(custom(&db, &ws, "u1").await["set"], json!(expected));

        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "tags": {"add": "x"}}, {"external_id": "u1", "fresh": 7}, {"external_id": "u1", "fresh": {"add": [3]}}]}),
        )
        .await;
        assert_eq!(errors(&outcome), vec![("attributes", 0), ("attributes", 2)]);
        assert_eq!(outcome.attributes_processed, 1);
        assert_eq!(custom(&db, &ws, "u1").await["fresh"], json!(7));
    }
}

#[tokio::test]
async fn invalid_standard_attributes_are_item_errors_that_change_nothing_of_that_item() {
    for db in test_databases().await {
        let ws = ws();
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "u1", "first_name": "Ada", "gender": "X"},
                {"external_id": "u1", "dob": "10/12/1815"},
                {"external_id": "u1", "email": "not an email"},
                {"external_id": "u1", "$secret": 1},
                {"external_id": "u1", "first_name": 12},
                {"external_id": "u1", "gender": "female", "dob": "1815-12-10"},
            ]}),
        )
        .await;
        assert_eq!(
            errors(&outcome),
            vec![
                ("attributes", 0),
                ("attributes", 1),
                ("attributes", 2),
                ("attributes", 3),
                ("attributes", 4)
            ]
        );
        assert!(
            outcome.errors[0].message.contains("gender"),
            "{:?}",
            outcome.errors
        );
        assert!(outcome.errors[1].message.contains("dob"));
        assert_eq!(outcome.attributes_processed, 1);
        let u = user(&db, &ws, "u1").await;
        assert_eq!(u.first_name, None, "a failed item changes nothing");
        assert_eq!(u.gender.as_deref(), Some("F"));
        assert_eq!(u.date_of_birth.as_deref(), Some("1815-12-10"));
    }
}

#[tokio::test]
async fn update_existing_only_never_creates_a_user_and_is_the_default_for_aliases() {
    for db in test_databases().await {
        let ws = ws();
        let alias = json!({"alias_name": "a-1", "alias_label": "crm"});
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "ghost", "_update_existing_only": true, "plan": "pro"},
                {"user_alias": alias, "plan": "pro"},
                {"external_id": "real", "plan": "pro", "_update_existing_only": false},
            ]}),
        )
        .await;
        assert_eq!(errors(&outcome), vec![("attributes", 0), ("attributes", 1)]);
        assert_eq!(outcome.errors[0].message, "user not found");
        assert_eq!(outcome.attributes_processed, 1);
        assert!(
            profile::find_by_external_id(&db, &ws, "ghost")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);

        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"user_alias": alias, "_update_existing_only": false, "plan": "free"}]}),
        )
        .await;
        assert_eq!(outcome.attributes_processed, 1);
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"user_alias": alias, "seats": 3}]}),
        )
        .await;
        assert_eq!(
            outcome.attributes_processed, 1,
            "an existing alias is updated"
        );
        let found = profile::search(&db, &ws, "", 10).await.unwrap();
        assert_eq!(found.len(), 2);
        let alias_only = found.iter().find(|p| p.external_id.is_none()).unwrap();
        let view = profile::find(&db, &ws, &alias_only.id).await.unwrap();
        assert_eq!(
            view.custom_attributes,
            json!({"plan": "free", "seats": 3})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(
            view.aliases,
            vec![UserAlias {
                alias_label: "crm".into(),
                alias_name: "a-1".into()
            }]
        );
    }
}

#[tokio::test]
async fn a_braze_id_names_an_existing_user_and_an_unknown_one_is_an_item_error() {
    for db in test_databases().await {
        let ws = ws();
        track(&db, &ws, json!({"attributes": [{"external_id": "u1"}]})).await;
        let braze_id = user(&db, &ws, "u1").await.id;
        let outcome = track(
            &db,
            &ws,
            json!({
                "attributes": [
                    {"braze_id": ProfileId::generate().to_string(), "plan": "x"},
                    {"braze_id": braze_id, "plan": "pro"},
                ],
                "events": [{"braze_id": ProfileId::generate().to_string(), "name": "e", "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        assert_eq!(errors(&outcome), vec![("attributes", 0), ("events", 0)]);
        assert_eq!(outcome.errors[0].message, "braze_id not found");
        assert_eq!(custom(&db, &ws, "u1").await, json!({"plan": "pro"}));
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
    }
}

#[tokio::test]
async fn an_email_identifies_a_user_and_wins_over_a_phone() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "u1", "email": "ada@example.com", "phone": "+1555"},
                {"external_id": "u2", "phone": "+1666"},
            ]}),
        )
        .await;
        let outcome = track(
            &db,
            &ws,
            json!({
                "attributes": [{"email": "ADA@example.com", "phone": "+1666", "plan": "pro"}],
                "events": [{"phone": "+1666", "name": "called", "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        assert!(outcome.errors.is_empty(), "{outcome:?}");
        let u1 = user(&db, &ws, "u1").await;
        assert_eq!(custom(&db, &ws, "u1").await, json!({"plan": "pro"}));
        assert_eq!(
            u1.phone.as_deref(),
            Some("+1666"),
            "phone was an attribute here"
        );
        assert_eq!(custom(&db, &ws, "u2").await, json!({}));
        // The event by phone goes to the most recently updated user with that phone: u1 now.
        assert_eq!(view(&db, &ws, "u1").await.events.len(), 1);

        // An unknown email creates an email-only user.
        track(
            &db,
            &ws,
            json!({"attributes": [{"email": "new@example.com", "plan": "free"}]}),
        )
        .await;
        let found = profile::search(&db, &ws, "new@", 10).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].external_id, None);
        assert_eq!(found[0].email.as_deref(), Some("new@example.com"));
    }
}

#[tokio::test]
async fn an_item_without_any_identifier_is_an_item_error() {
    for db in test_databases().await {
        let ws = ws();
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"plan": "x"}, 7], "events": [{"name": "e", "time": "2026-11-28T08:00:00Z"}]}),
        )
        .await;
        assert_eq!(
            errors(&outcome),
            vec![("attributes", 0), ("attributes", 1), ("events", 0)]
        );
        assert_eq!(count::<profile_entity::Entity>(&db).await, 0);
    }
}

#[tokio::test]
async fn events_for_an_unknown_external_id_create_the_user_and_are_never_deduplicated() {
    for db in test_databases().await {
        let ws = ws();
        let outcome = track(
            &db,
            &ws,
            json!({"events": [
                {"external_id": "u1", "name": "checkout", "time": "2026-11-28T08:00:00Z", "properties": {"sku": "A", "qty": 2, "meta": {"x": [1]}}},
                {"external_id": "u1", "name": "checkout", "time": "2026-11-28T08:00:00Z", "properties": {"sku": "A", "qty": 2, "meta": {"x": [1]}}},
                {"external_id": "u1", "name": "later", "time": "2030-01-01T00:00:00+02:00"},
            ]}),
        )
        .await;
        assert_eq!(outcome.events_processed, 3, "{outcome:?}");
        let v = view(&db, &ws, "u1").await;
        assert_eq!(v.events.len(), 3);
        // Newest first; a future time is clamped to now.
        assert_eq!(v.events[0].name, "later");
        assert_eq!(v.events[0].time, now());
        assert_eq!(
            v.events[1].time,
            Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap()
        );
        assert_eq!(v.events[1].properties["meta"], json!({"x": [1]}));
    }
}

#[tokio::test]
async fn invalid_events_are_reported_with_their_index_while_valid_ones_are_kept() {
    for db in test_databases().await {
        let ws = ws();
        let long = "x".repeat(256);
        let outcome = track(
            &db,
            &ws,
            json!({"events": [
                event("u1", "ok-0"),
                {"external_id": "u1", "time": "2026-11-28T08:00:00Z"},
                {"external_id": "u1", "name": "no-time"},
                {"external_id": "u1", "name": "bad-time", "time": "yesterday"},
                {"external_id": "u1", "name": "e", "time": "2026-11-28T08:00:00Z", "properties": {"time": 1}},
                {"external_id": "u1", "name": "e", "time": "2026-11-28T08:00:00Z", "properties": {"event_name": "x"}},
                {"external_id": "u1", "name": "e", "time": "2026-11-28T08:00:00Z", "properties": {"$x": 1}},
                {"external_id": "u1", "name": "e", "time": "2026-11-28T08:00:00Z", "properties": {"s": long}},
                {"external_id": "u1", "name": "e", "time": "2026-11-28T08:00:00Z", "properties": [1]},
                {"external_id": "u1", "name": long, "time": "2026-11-28T08:00:00Z"},
                event("u1", "ok-10"),
            ]}),
        )
        .await;
        assert_eq!(outcome.events_processed, 2);
        assert_eq!(
            errors(&outcome),
            (1..10).map(|i| ("events", i)).collect::<Vec<_>>()
        );
        assert!(
            outcome.errors[3].message.contains("reserved"),
            "{:?}",
            outcome.errors[3]
        );
        assert_eq!(
            outcome.errors[0].to_json(),
            json!({"type": outcome.errors[0].message, "input_array": "events", "index": 1})
        );
        let names: Vec<String> = view(&db, &ws, "u1")
            .await
            .events
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"ok-0".to_string()) && names.contains(&"ok-10".to_string()));
    }
}

#[tokio::test]
async fn purchases_are_validated_item_by_item_and_stored_with_a_default_quantity_of_one() {
    for db in test_databases().await {
        let ws = ws();
        let p = |extra: Value| {
            let mut base = json!({"external_id": "u1", "product_id": "sku-1", "currency": "usd", "price": 9.99, "time": "2026-11-28T07:00:00Z"});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    base.as_object_mut().unwrap().remove(k);
                } else {
                    base[k] = v.clone();
                }
            }
            base
        };
        let outcome = track(
            &db,
            &ws,
            json!({"purchases": [
                p(json!({})),
                p(json!({"currency": "EURO"})),
                p(json!({"price": "9.99"})),
                p(json!({"quantity": 101})),
                p(json!({"quantity": 0})),
                p(json!({"product_id": null})),
                p(json!({"time": null})),
                p(json!({"quantity": 3, "product_id": "sku-2", "properties": {"color": "red"}})),
            ]}),
        )
        .await;
        assert_eq!(outcome.purchases_processed, 2);
        assert_eq!(
            errors(&outcome),
            (1..7).map(|i| ("purchases", i)).collect::<Vec<_>>()
        );
        let v = view(&db, &ws, "u1").await;
        assert_eq!(v.purchases.len(), 2);
        let first = v
            .purchases
            .iter()
            .find(|p| p.product_id == "sku-1")
            .unwrap();
        assert_eq!(first.quantity, 1);
        assert_eq!(first.currency, "USD");
        assert_eq!(first.price, 9.99);
        let second = v
            .purchases
            .iter()
            .find(|p| p.product_id == "sku-2")
            .unwrap();
        assert_eq!(second.quantity, 3);
        assert_eq!(second.properties["color"], json!("red"));
    }
}

#[tokio::test]
async fn items_are_processed_attributes_then_events_then_purchases_with_counts_per_kind() {
    for db in test_databases().await {
        let ws = ws();
        let outcome = track(
            &db,
            &ws,
            json!({
                "attributes": [{"external_id": "u1", "plan": "pro"}, {"external_id": "u2", "_update_existing_only": true}],
                "events": [event("u2", "e"), event("u1", "e")],
                "purchases": [{"external_id": "u3", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        // u2 did not exist when its attributes came (they are first), then its event created it.
        assert_eq!(outcome.attributes_processed, 1);
        assert_eq!(outcome.events_processed, 2);
        assert_eq!(outcome.purchases_processed, 1);
        assert_eq!(errors(&outcome), vec![("attributes", 1)]);
        for id in ["u1", "u2", "u3"] {
            user(&db, &ws, id).await;
        }
    }
}

#[tokio::test]
async fn more_than_75_items_of_a_kind_is_fatal_and_writes_nothing() {
    for db in test_databases().await {
        let ws = ws();
        for field in ["attributes", "events", "purchases"] {
            let items: Vec<Value> = (0..76).map(|i| event(&format!("u{i}"), "e")).collect();
            let mut body = json!({"attributes": [{"external_id": "keep"}]});
            body[field] = json!(items);
            let err = profile::track(&db, &ws, &body, now()).await.unwrap_err();
            match err {
                DomainError::Invalid { field: f, message } => {
                    assert_eq!(f, field);
                    assert!(
                        message.starts_with("Max Input Length Exceeded"),
                        "{message}"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(count::<profile_entity::Entity>(&db).await, 0);
        let items: Vec<Value> = (0..75).map(|i| event(&format!("u{i}"), "e")).collect();
        let outcome = track(&db, &ws, json!({"events": items})).await;
        assert_eq!(outcome.events_processed, 75);
        assert_eq!(count::<profile_entity::Entity>(&db).await, 75);
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_or_an_array_of_the_wrong_type_is_fatal() {
    for db in test_databases().await {
        let ws = ws();
        let err = profile::track(&db, &ws, &json!([1]), now())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("body"));
        let err = profile::track(
            &db,
            &ws,
            &json!({"attributes": [{"external_id": "u"}], "events": {"name": "e"}}),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.field(), Some("events"));
        let err = profile::track(&db, &ws, &json!({"purchases": "x"}), now())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("purchases"));
        assert_eq!(count::<profile_entity::Entity>(&db).await, 0);
    }
}

#[tokio::test]
async fn events_and_purchases_are_catalogued_with_sorted_merged_property_keys() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({
                "events": [
                    {"external_id": "u1", "name": "checkout", "time": "2026-11-28T08:00:00Z", "properties": {"sku": 1, "amount": 2}},
                    {"external_id": "u1", "name": "checkout", "time": "2026-11-28T08:00:00Z", "properties": {"coupon": "x"}},
                    event("u1", "app_open"),
                ],
                "purchases": [{"external_id": "u1", "product_id": "sku-9", "currency": "EUR", "price": 1, "time": "2026-11-28T08:00:00Z", "properties": {"size": "L"}}],
            }),
        )
        .await;
        track(
            &db,
            &ws,
            json!({"events": [{"external_id": "u2", "name": "checkout", "time": "2026-11-28T08:00:00Z", "properties": {"amount": 1, "zone": "eu"}}]}),
        )
        .await;
        let catalog = profile::event_catalog(&db, &ws).await.unwrap();
        let summary: Vec<(EventKind, &str, Vec<&str>)> = catalog
            .iter()
            .map(|c| {
                (
                    c.kind,
                    c.name.as_str(),
                    c.property_keys.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (EventKind::Event, "app_open", vec![]),
                (
                    EventKind::Event,
                    "checkout",
                    vec!["amount", "coupon", "sku", "zone"]
                ),
                (EventKind::Purchase, "sku-9", vec!["size"]),
            ]
        );
    }
}

/// Launches in `ws` an action-based campaign triggered by the first of `events`, with the others
/// and any purchase as exception events: the workspace now listens to exactly those.
async fn listening(db: &DatabaseConnection, ws: &WorkspaceId, events: &[&str]) {
    let custom = |name: &str| Trigger::CustomEvent {
        name: name.into(),
        property_filters: Vec::new(),
    };
    let mut exceptions: Vec<Trigger> = events[1..].iter().map(|name| custom(name)).collect();
    exceptions.push(Trigger::Purchase { product_id: None });
    let input = CampaignInput {
        name: "Listener".into(),
        description: String::new(),
        tags: Vec::new(),
        kind: CampaignKind::Webhook,
        variants: vec![Variant {
            id: None,
            name: "Main".into(),
            percent: 100,
            message: Some(WebhookMessage {
                method: Method::Post,
                url: "https://example.com/hook".into(),
                headers: Vec::new(),
                body: Body::Raw {
                    text: "hello".into(),
                },
            }),
        }],
        control_percent: 0,
        delivery: Delivery::Action {
            trigger: custom(events[0]),
            delay_seconds: 3600,
            exceptions,
            starts_at: None,
            ends_at: None,
        },
        audience: Default::default(),
        conversions: Vec::new(),
        settings: Settings::default(),
    };
    let draft = campaign::create_campaign(db, ws, input, now())
        .await
        .unwrap();
    campaign::launch_campaign(db, ws, &draft.id, now())
        .await
        .unwrap();
}

#[tokio::test]
async fn events_reach_the_inbox_only_when_something_listens_to_them() {
    for db in test_databases().await {
        let (quiet, busy) = (ws(), ws());
        listening(&db, &busy, &["checkout"]).await;
        for ws in [&quiet, &busy] {
            let outcome = track(
                &db,
                ws,
                json!({
                    "events": [event("u1", "checkout"), event("u1", "page_view")],
                    "purchases": [{"external_id": "u1", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:30:00Z"}],
                }),
            )
            .await;
            assert_eq!(
                (outcome.events_processed, outcome.purchases_processed),
                (2, 1)
            );
        }
        let claimed = profile::claim_inbox(&db, 10, StdDuration::from_secs(60), now())
            .await
            .unwrap();
        let names: Vec<(&str, &str)> = claimed
            .iter()
            .map(|item| (item.key.workspace_id.as_str(), item.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [(busy.as_str(), "checkout"), (busy.as_str(), "p")],
            "the trigger and the exception (any purchase), not page_view, nothing from the quiet workspace"
        );
        let stored = view(&db, &quiet, "u1").await;
        assert_eq!(
            (stored.events.len(), stored.purchases.len()),
            (2, 1),
            "events are stored whether or not anything listens"
        );

        // Once something listens, the next events are handed over; earlier ones are not.
        listening(&db, &quiet, &["page_view"]).await;
        track(
            &db,
            &quiet,
            json!({"events": [event("u1", "checkout"), event("u1", "page_view")]}),
        )
        .await;
        let claimed = profile::claim_inbox(&db, 10, StdDuration::from_secs(60), now())
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].key.workspace_id, quiet);
        assert_eq!(claimed[0].name, "page_view");
        assert_eq!(view(&db, &quiet, "u1").await.events.len(), 4);
    }
}

#[tokio::test]
async fn every_stored_event_and_purchase_is_handed_to_the_inbox() {
    for db in test_databases().await {
        let ws = ws();
        listening(&db, &ws, &["checkout"]).await;
        track(
            &db,
            &ws,
            json!({
                "events": [{"external_id": "u1", "name": "checkout", "time": "2026-11-28T08:00:00Z", "properties": {"sku": "A"}}, {"external_id": "u1", "name": ""}],
                "purchases": [{"external_id": "u1", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:30:00Z"}],
            }),
        )
        .await;
        let claimed = profile::claim_inbox(&db, 10, StdDuration::from_secs(60), now())
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2, "the invalid event is not handed over");
        let u1 = profile::profile_id(&user(&db, &ws, "u1").await);
        assert_eq!(claimed[0].kind, EventKind::Event);
        assert_eq!(claimed[0].name, "checkout");
        assert_eq!(claimed[0].profile_id, u1);
        assert_eq!(claimed[0].properties["sku"], json!("A"));
        assert_eq!(claimed[0].key.workspace_id, ws);
        assert_eq!(claimed[1].kind, EventKind::Purchase);
        assert_eq!(claimed[1].name, "p");
        let events = view(&db, &ws, "u1").await.events;
        assert_eq!(
            claimed[0].key.id, events[0].id,
            "the inbox row names its event"
        );
    }
}

#[tokio::test]
async fn a_claimed_inbox_row_is_not_claimed_again_until_its_lease_expires_and_never_after_it_is_handled()
 {
    for db in test_databases().await {
        let ws = ws();
        listening(&db, &ws, &["a", "b"]).await;
        track(
            &db,
            &ws,
            json!({"events": [event("u1", "a"), event("u2", "b")]}),
        )
        .await;
        let lease = StdDuration::from_secs(60);
        let first = profile::claim_inbox(&db, 1, lease, now()).await.unwrap();
        assert_eq!(first.len(), 1);
        let second = profile::claim_inbox(&db, 10, lease, now()).await.unwrap();
        assert_eq!(second.len(), 1, "only the unclaimed row");
        assert_ne!(first[0].key, second[0].key);
        assert!(
            profile::claim_inbox(&db, 10, lease, now() + Duration::seconds(59))
                .await
                .unwrap()
                .is_empty()
        );

        let keys: Vec<InboxKey> = vec![first[0].key.clone()];
        assert_eq!(
            profile::mark_handled(&db, &keys, now() + Duration::seconds(30))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            profile::mark_handled(&db, &keys, now() + Duration::seconds(31))
                .await
                .unwrap(),
            0
        );

        // After the lease only the unhandled row comes back.
        let again = profile::claim_inbox(&db, 10, lease, now() + Duration::seconds(61))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].key, second[0].key);
        profile::mark_handled(&db, &[again[0].key.clone()], now() + Duration::seconds(62))
            .await
            .unwrap();
        assert!(
            profile::claim_inbox(&db, 10, lease, now() + Duration::days(1))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn delete_users_removes_users_with_their_aliases_events_and_purchases() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({
                "attributes": [
                    {"external_id": "u1"}, {"external_id": "u2"}, {"external_id": "u3", "phone": "+1"},
                    {"user_alias": {"alias_name": "a", "alias_label": "l"}, "_update_existing_only": false},
                ],
                "events": [event("u1", "e"), event("u2", "e")],
                "purchases": [{"external_id": "u1", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        let deleted = profile::delete_users(&db, &ws, &json!({"external_ids": ["u1", "nobody"]}))
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        assert!(
            profile::find_by_external_id(&db, &ws, "u1")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(count::<domain::entity::profile_event::Entity>(&db).await, 1);
        assert_eq!(
            count::<domain::entity::profile_purchase::Entity>(&db).await,
            0
        );

        let u2 = user(&db, &ws, "u2").await.id;
        assert_eq!(
            profile::delete_users(&db, &ws, &json!({"braze_ids": [u2]}))
                .await
                .unwrap(),
            1
        );
        assert_eq!(count::<domain::entity::profile_event::Entity>(&db).await, 0);
        assert_eq!(
            profile::delete_users(
                &db,
                &ws,
                &json!({"user_aliases": [{"alias_name": "a", "alias_label": "l"}]})
            )
            .await
            .unwrap(),
            1
        );
        assert_eq!(count::<domain::entity::profile_alias::Entity>(&db).await, 0);
        assert_eq!(
            profile::delete_users(&db, &ws, &json!({"phone_numbers": ["+1"]}))
                .await
                .unwrap(),
            1
        );
        assert_eq!(count::<profile_entity::Entity>(&db).await, 0);

        let too_many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
        let err = profile::delete_users(&db, &ws, &json!({"external_ids": too_many}))
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("external_ids"));
        let err = profile::delete_users(
            &db,
            &ws,
            &json!({"external_ids": ["a"], "braze_ids": ["b"]}),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { .. }));
    }
}

#[tokio::test]
async fn deleting_by_a_shared_email_needs_a_prioritization_that_singles_one_user_out() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "u1", "email": "shared@example.com"},
                {"external_id": "u2", "email": "shared@example.com"},
            ]}),
        )
        .await;
        profile::track(
            &db,
            &ws,
            &json!({"attributes": [{"email": "other@example.com", "plan": "x"}]}),
            now(),
        )
        .await
        .unwrap();
        profile::delete_users(
            &db,
            &ws,
            &json!({"email_addresses": [{"email": "shared@example.com"}]}),
        )
        .await
        .map(|n| assert_eq!(n, 0, "ambiguous: nothing deleted"))
        .unwrap();
        // Make u2 the most recently updated.
        profile::track(
            &db,
            &ws,
            &json!({"attributes": [{"external_id": "u2", "plan": "y"}]}),
            now() + Duration::minutes(1),
        )
        .await
        .unwrap();
        let deleted = profile::delete_users(
            &db,
            &ws,
            &json!({"email_addresses": [
                {"email": "SHARED@example.com", "prioritization": ["identified", "most_recently_updated"]},
                {"email": "other@example.com", "prioritization": ["identified"]},
            ]}),
        )
        .await
        .unwrap();
        assert_eq!(deleted, 2, "u2 and the only user with the other email");
        assert!(
            profile::find_by_external_id(&db, &ws, "u2")
                .await
                .unwrap()
                .is_none()
        );
        user(&db, &ws, "u1").await;
    }
}

#[tokio::test]
async fn identify_merges_an_alias_only_user_into_the_identified_one_and_deletes_it() {
    for db in test_databases().await {
        let ws = ws();
        let alias = json!({"alias_name": "anon-1", "alias_label": "device"});
        track(
            &db,
            &ws,
            json!({
                "attributes": [
                    {"user_alias": alias, "_update_existing_only": false, "plan": "free", "color": "red", "first_name": "Anon", "country": "FR"},
                    {"external_id": "u1", "plan": "pro", "first_name": "Ada"},
                ],
                "events": [{"user_alias": alias, "name": "browsed", "time": "2026-11-28T08:00:00Z"}],
                "purchases": [{"user_alias": alias, "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        assert_eq!(count::<profile_entity::Entity>(&db).await, 2);
        let processed = profile::identify(
            &db,
            &ws,
            &json!({"aliases_to_identify": [{"external_id": "u1", "user_alias": alias}]}),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(processed, 1);
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
        let v = view(&db, &ws, "u1").await;
        assert_eq!(
            Value::Object(v.custom_attributes.clone()),
            json!({"plan": "pro", "color": "red"}),
            "the identified user wins conflicts"
        );
        assert_eq!(v.profile.first_name.as_deref(), Some("Ada"));
        assert_eq!(v.profile.country.as_deref(), Some("FR"));
        assert_eq!(v.events.len(), 1);
        assert_eq!(v.purchases.len(), 1);
        assert_eq!(v.aliases.len(), 1);
        // The alias now names the identified user.
        let outcome = track(
            &db,
            &ws,
            json!({"attributes": [{"user_alias": alias, "seats": 1}]}),
        )
        .await;
        assert_eq!(outcome.attributes_processed, 1);
        assert_eq!(custom(&db, &ws, "u1").await["seats"], json!(1));
    }
}

#[tokio::test]
async fn identify_gives_the_external_id_to_the_alias_only_user_when_nobody_has_it() {
    for db in test_databases().await {
        let ws = ws();
        let alias = json!({"alias_name": "anon-2", "alias_label": "device"});
        track(&db, &ws, json!({"attributes": [{"user_alias": alias, "_update_existing_only": false, "plan": "free"}]})).await;
        let processed = profile::identify(
            &db,
            &ws,
            &json!({"aliases_to_identify": [
                {"external_id": "u9", "user_alias": alias},
                {"external_id": "u10", "user_alias": {"alias_name": "fresh", "alias_label": "device"}},
            ]}),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(processed, 2);
        assert_eq!(custom(&db, &ws, "u9").await, json!({"plan": "free"}));
        assert_eq!(view(&db, &ws, "u10").await.aliases[0].alias_name, "fresh");
        let err = profile::identify(
            &db,
            &ws,
            &json!({"aliases_to_identify": [{"external_id": "x"}]}),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.field(), Some("aliases_to_identify"));
    }
}

/// Seeds an anonymous (alias-only) user holding `email` and `phone`, updated at `at`.
async fn anonymous(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    alias: &str,
    contact: Value,
    at: DateTime<Utc>,
) {
    let mut attributes = json!({
        "user_alias": {"alias_name": alias, "alias_label": "device"},
        "_update_existing_only": false,
        "plan": "free", "color": alias,
    });
    attributes
        .as_object_mut()
        .unwrap()
        .extend(contact.as_object().unwrap().clone());
    let outcome = profile::track(db, ws, &json!({"attributes": [attributes]}), at)
        .await
        .unwrap();
    assert!(outcome.errors.is_empty(), "{outcome:?}");
}

async fn identify(db: &DatabaseConnection, ws: &WorkspaceId, body: Value) -> usize {
    profile::identify(db, ws, &body, now()).await.unwrap()
}

#[tokio::test]
async fn identify_by_email_merges_the_email_only_user_into_the_identified_one() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({
                "attributes": [
                    {"email": "anon@example.com", "plan": "free", "color": "red", "first_name": "Anon", "country": "FR"},
                    {"external_id": "u1", "plan": "pro", "first_name": "Ada"},
                ],
                "events": [{"email": "anon@example.com", "name": "browsed", "time": "2026-11-28T08:00:00Z"}],
                "purchases": [{"email": "anon@example.com", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        let processed = identify(
            &db,
            &ws,
            json!({"emails_to_identify": [{"external_id": "u1", "email": "Anon@Example.com"}]}),
        )
        .await;
        assert_eq!(processed, 1);
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
        let v = view(&db, &ws, "u1").await;
        assert_eq!(
            Value::Object(v.custom_attributes.clone()),
            json!({"plan": "pro", "color": "red"}),
            "the identified user wins conflicts"
        );
        assert_eq!(v.profile.first_name.as_deref(), Some("Ada"));
        assert_eq!(v.profile.country.as_deref(), Some("FR"));
        assert_eq!(v.profile.email.as_deref(), Some("anon@example.com"));
        assert_eq!(v.events.len(), 1);
        assert_eq!(v.purchases.len(), 1);
        // Retrying finds nothing left to merge and reports the item as done.
        assert_eq!(
            identify(
                &db,
                &ws,
                json!({"emails_to_identify": [{"external_id": "u1", "email": "anon@example.com"}]}),
            )
            .await,
            1
        );
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
    }
}

#[tokio::test]
async fn identify_by_phone_merges_the_phone_only_user_with_its_aliases() {
    for db in test_databases().await {
        let ws = ws();
        anonymous(&db, &ws, "dev-1", json!({"phone": "+33600000001"}), now()).await;
        track(
            &db,
            &ws,
            json!({
                "attributes": [{"external_id": "u1", "plan": "pro"}],
                "events": [{"phone": "+33600000001", "name": "opened", "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        let processed = identify(
            &db,
            &ws,
            json!({"phone_numbers_to_identify": [{"external_id": "u1", "phone": " +33600000001 "}]}),
        )
        .await;
        assert_eq!(processed, 1);
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
        let v = view(&db, &ws, "u1").await;
        assert_eq!(
            Value::Object(v.custom_attributes.clone()),
            json!({"plan": "pro", "color": "dev-1"})
        );
        assert_eq!(v.profile.phone.as_deref(), Some("+33600000001"));
        assert_eq!(v.events.len(), 1);
        assert_eq!(v.aliases.len(), 1, "the alias moves to the identified user");
        assert_eq!(v.aliases[0].alias_name, "dev-1");
    }
}

#[tokio::test]
async fn identify_by_email_or_phone_gives_the_external_id_when_nobody_has_it() {
    for db in test_databases().await {
        let ws = ws();
        anonymous(&db, &ws, "a", json!({"email": "a@example.com"}), now()).await;
        anonymous(&db, &ws, "b", json!({"phone": "+15550001"}), now()).await;
        let processed = identify(
            &db,
            &ws,
            json!({
                "emails_to_identify": [
                    {"external_id": "ua", "email": "a@example.com"},
                    {"external_id": "nobody", "email": "missing@example.com"},
                ],
                "phone_numbers_to_identify": [{"external_id": "ub", "phone": "+15550001"}],
            }),
        )
        .await;
        assert_eq!(
            processed, 2,
            "an email no anonymous user holds is not processed"
        );
        assert_eq!(count::<profile_entity::Entity>(&db).await, 2);
        assert_eq!(
            user(&db, &ws, "ua").await.email.as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            user(&db, &ws, "ub").await.phone.as_deref(),
            Some("+15550001")
        );
        assert!(
            profile::find_by_external_id(&db, &ws, "nobody")
                .await
                .unwrap()
                .is_none(),
            "nobody is created"
        );
    }
}

#[tokio::test]
async fn several_email_only_users_need_a_prioritization_that_singles_one_out() {
    for db in test_databases().await {
        let ws = ws();
        anonymous(
            &db,
            &ws,
            "old",
            json!({"email": "shared@example.com"}),
            now(),
        )
        .await;
        anonymous(
            &db,
            &ws,
            "new",
            json!({"email": "shared@example.com"}),
            now() + Duration::minutes(1),
        )
        .await;
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "email": "shared@example.com"}]}),
        )
        .await;
        assert_eq!(count::<profile_entity::Entity>(&db).await, 3);
        let item = |prioritization: Value| {
            json!({"emails_to_identify": [
                {"external_id": "u1", "email": "shared@example.com", "prioritization": prioritization},
            ]})
        };
        for ambiguous in [json!(null), json!(["unidentified"]), json!(["identified"])] {
            assert_eq!(
                identify(&db, &ws, item(ambiguous.clone())).await,
                0,
                "{ambiguous} is ambiguous: skipped"
            );
        }
        assert_eq!(count::<profile_entity::Entity>(&db).await, 3);
        assert_eq!(
            identify(
                &db,
                &ws,
                item(json!(["unidentified", "most_recently_updated"]))
            )
            .await,
            1
        );
        assert_eq!(count::<profile_entity::Entity>(&db).await, 2);
        assert_eq!(custom(&db, &ws, "u1").await["color"], json!("new"));
        // The other one is now the only email-only user left: merged without prioritization.
        assert_eq!(identify(&db, &ws, item(json!(null))).await, 1);
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
        assert_eq!(view(&db, &ws, "u1").await.aliases.len(), 2);
    }
}

#[tokio::test]
async fn identify_counts_aliases_emails_and_phones_together_up_to_50_per_request() {
    for db in test_databases().await {
        let ws = ws();
        anonymous(&db, &ws, "a", json!({"email": "a@example.com"}), now()).await;
        anonymous(&db, &ws, "p", json!({"phone": "+1"}), now()).await;
        let processed = identify(
            &db,
            &ws,
            json!({
                "aliases_to_identify": [{"external_id": "u1", "user_alias": {"alias_name": "x", "alias_label": "l"}}],
                "emails_to_identify": [{"external_id": "u1", "email": "a@example.com"}],
                "phone_numbers_to_identify": [{"external_id": "u1", "phone": "+1"}],
            }),
        )
        .await;
        assert_eq!(processed, 3);
        assert_eq!(count::<profile_entity::Entity>(&db).await, 1);
        assert_eq!(view(&db, &ws, "u1").await.aliases.len(), 3);

        let aliases: Vec<Value> = (0..30)
            .map(|i| json!({"external_id": "u", "user_alias": {"alias_name": format!("n{i}"), "alias_label": "l"}}))
            .collect();
        let emails: Vec<Value> = (0..21)
            .map(|i| json!({"external_id": "u", "email": format!("e{i}@example.com")}))
            .collect();
        let err = profile::identify(
            &db,
            &ws,
            &json!({"aliases_to_identify": aliases, "emails_to_identify": emails}),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.field(), Some("emails_to_identify"));
        assert!(err.to_string().contains("at most 50"), "{err}");
        assert_eq!(
            count::<profile_entity::Entity>(&db).await,
            1,
            "nothing written"
        );

        for (body, field) in [
            (json!({}), "aliases_to_identify"),
            (
                json!({"emails_to_identify": [{"email": "a@example.com"}]}),
                "emails_to_identify",
            ),
            (
                json!({"emails_to_identify": [{"external_id": "u", "email": "not-an-email"}]}),
                "emails_to_identify",
            ),
            (
                json!({"phone_numbers_to_identify": [{"external_id": "u"}]}),
                "phone_numbers_to_identify",
            ),
            (
                json!({"phone_numbers_to_identify": [{"external_id": "u", "phone": "+1", "prioritization": ["newest"]}]}),
                "phone_numbers_to_identify",
            ),
            (
                json!({"emails_to_identify": "a@example.com"}),
                "emails_to_identify",
            ),
        ] {
            let err = profile::identify(&db, &ws, &body, now()).await.unwrap_err();
            assert_eq!(err.field(), Some(field), "{body}: {err}");
        }
    }
}

#[tokio::test]
async fn new_aliases_name_identified_users_or_create_alias_only_users() {
    for db in test_databases().await {
        let ws = ws();
        track(&db, &ws, json!({"attributes": [{"external_id": "u1"}]})).await;
        let added = profile::new_aliases(
            &db,
            &ws,
            &json!({"user_aliases": [
                {"external_id": "u1", "alias_name": "crm-1", "alias_label": "crm"},
                {"alias_name": "anon", "alias_label": "device"},
                {"alias_name": "crm-1", "alias_label": "crm"},
            ]}),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(added, 2, "an existing alias is skipped");
        assert_eq!(view(&db, &ws, "u1").await.aliases[0].alias_name, "crm-1");
        assert_eq!(count::<profile_entity::Entity>(&db).await, 2);
        let err = profile::new_aliases(
            &db,
            &ws,
            &json!({"user_aliases": [{"alias_name": "x"}]}),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.field(), Some("user_aliases"));
    }
}

#[tokio::test]
async fn export_ids_returns_the_requested_fields_and_lists_unknown_ids() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({
                "attributes": [{"external_id": "u1", "first_name": "Ada", "email": "ada@example.com", "plan": "pro"}],
                "events": [event("u1", "e"), {"external_id": "u1", "name": "e", "time": "2026-11-28T08:30:00Z"}],
                "purchases": [{"external_id": "u1", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-28T08:00:00Z"}],
            }),
        )
        .await;
        let out = profile::export_ids(
            &db,
            &ws,
            &json!({"external_ids": ["u1", "ghost"], "fields_to_export": ["first_name", "custom_attributes", "custom_events", "purchases", "external_id", "push_tokens"]}),
        )
        .await
        .unwrap();
        assert_eq!(out["message"], json!("success"));
        assert_eq!(out["invalid_user_ids"], json!(["ghost"]));
        assert_eq!(
            out["users"],
            json!([{
                "external_id": "u1",
                "first_name": "Ada",
                "custom_attributes": {"plan": "pro"},
                "custom_events": [{"name": "e", "first": "2026-11-28T08:00:00.000Z", "last": "2026-11-28T08:30:00.000Z", "count": 2}],
                "purchases": [{"name": "p", "first": "2026-11-28T08:00:00.000Z", "last": "2026-11-28T08:00:00.000Z", "count": 1}],
            }])
        );
        let all = profile::export_ids(&db, &ws, &json!({"email_address": "ADA@example.com"}))
            .await
            .unwrap();
        assert_eq!(all["users"][0]["email"], json!("ada@example.com"));
        assert!(all["users"][0]["braze_id"].is_string());
        let err = profile::export_ids(&db, &ws, &json!({"external_ids": "u1"}))
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("external_ids"));
    }
}

#[tokio::test]
async fn search_finds_users_by_external_id_or_email_prefix_and_lists_recent_ones_when_empty() {
    for db in test_databases().await {
        let ws = ws();
        profile::track(
            &db,
            &ws,
            &json!({"attributes": [{"external_id": "alice-1", "email": "alice@example.com"}]}),
            now(),
        )
        .await
        .unwrap();
        profile::track(
            &db,
            &ws,
            &json!({"attributes": [{"external_id": "bob_2", "email": "bob@example.com"}]}),
            now() + Duration::minutes(1),
        )
        .await
        .unwrap();
        let ids = |found: Vec<profile::ProfileSummary>| -> Vec<String> {
            found.into_iter().filter_map(|p| p.external_id).collect()
        };
        assert_eq!(
            ids(profile::search(&db, &ws, "", 10).await.unwrap()),
            vec!["bob_2", "alice-1"]
        );
        assert_eq!(
            ids(profile::search(&db, &ws, "", 1).await.unwrap()),
            vec!["bob_2"]
        );
        assert_eq!(
            ids(profile::search(&db, &ws, "alice-", 10).await.unwrap()),
            vec!["alice-1"]
        );
        assert_eq!(
            ids(profile::search(&db, &ws, "BOB@", 10).await.unwrap()),
            vec!["bob_2"]
        );
        assert!(
            profile::search(&db, &ws, "b%", 10)
                .await
                .unwrap()
                .is_empty(),
            "wildcards are literal"
        );
        assert!(
            profile::search(&db, &ws, "carol", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_users_render_context_personalizes_a_template() {
    for db in test_databases().await {
        let ws = ws();
        track(
            &db,
            &ws,
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada", "email": "ada@example.com", "home_city": "London", "plan": "pro", "address": {"zip": "W1"}}]}),
        )
        .await;
        let u = user(&db, &ws, "u1").await;
        let context = profile::render_context(&u);
        assert_eq!(context.user["braze_id"], json!(u.id));
        assert_eq!(context.user["email_address"], json!("ada@example.com"));
        let template = Template::parse(
            "body",
            "{{${first_name}}} {{${user_id}}} {{${email_address}}} {{${city}}} {{custom_attribute.${plan}}} {{custom_attribute.${address}.zip}} [{{${last_name}}}]",
        )
        .unwrap();
        match template.render(&context).unwrap() {
            RenderOutcome::Rendered(text) => {
                assert_eq!(text, "Ada u1 ada@example.com London pro W1 []")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn workspaces_never_see_or_change_each_others_users() {
    for db in test_databases().await {
        let (a, b) = (ws(), ws());
        let alias = json!({"alias_name": "shared", "alias_label": "l"});
        track(
            &db,
            &a,
            json!({
                "attributes": [{"external_id": "u1", "email": "u1@example.com", "plan": "a"}, {"user_alias": alias, "_update_existing_only": false}],
                "events": [event("u1", "only-in-a")],
            }),
        )
        .await;
        let a_user = user(&db, &a, "u1").await;
        // The same external id in B is a different user.
        let outcome = track(
            &db,
            &b,
            json!({
                "attributes": [
                    {"external_id": "u1", "plan": "b"},
                    {"braze_id": a_user.id, "plan": "stolen"},
                    {"user_alias": alias, "plan": "stolen"},
                ],
            }),
        )
        .await;
        assert_eq!(errors(&outcome), vec![("attributes", 1), ("attributes", 2)]);
        assert_eq!(custom(&db, &a, "u1").await, json!({"plan": "a"}));
        assert_eq!(custom(&db, &b, "u1").await, json!({"plan": "b"}));
        assert_ne!(user(&db, &b, "u1").await.id, a_user.id);

        assert!(
            profile::find(&db, &b, &profile::profile_id(&a_user))
                .await
                .is_err()
        );
        assert!(
            profile::search(&db, &b, "u1@", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(profile::event_catalog(&db, &b).await.unwrap().is_empty());
        assert!(view(&db, &b, "u1").await.events.is_empty());
        let out = profile::export_ids(&db, &b, &json!({"braze_id": a_user.id}))
            .await
            .unwrap();
        assert_eq!(out["users"], json!([]));
        assert_eq!(
            profile::delete_users(&db, &b, &json!({"braze_ids": [a_user.id]}))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            profile::delete_users(&db, &b, &json!({"user_aliases": [alias]}))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            profile::identify(
                &db,
                &b,
                &json!({"aliases_to_identify": [{"external_id": "u1", "user_alias": alias}]}),
                now()
            )
            .await
            .unwrap(),
            1,
            "in B the alias is new and is added to B's u1"
        );
        assert!(view(&db, &a, "u1").await.aliases.is_empty());
        assert_eq!(view(&db, &a, "u1").await.events.len(), 1);
        assert_eq!(profile::search(&db, &a, "", 10).await.unwrap().len(), 2);
    }
}
