//! Segments through the public API: profiles seeded with `/users/track`, filters compiled to SQL
//! and evaluated by the database, with the same expected members on SQLite and on PostgreSQL (when
//! TEST_DATABASE_URL is set).
//!
//! Regular expressions on SQLite need the REGEXP function registered on the connection
//! (sqlx-sqlite's `regexp` feature plus `with_regexp()`); where the test database lacks it, the
//! regex cases are skipped on SQLite only, with a note on stderr.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::profile;
use domain::segment::{self, Filter};
use domain::{DomainError, ProfileId, WorkspaceId};
use migrations::testing::test_databases;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
}

fn ago(d: Duration) -> String {
    (now() - d).to_rfc3339()
}

async fn track(db: &DatabaseConnection, ws: &WorkspaceId, body: Value) {
    let outcome = profile::track(db, ws, &body, now()).await.unwrap();
    assert!(outcome.errors.is_empty(), "{outcome:?}");
}

fn filter(value: Value) -> Filter {
    serde_json::from_value(value).unwrap()
}

fn custom(name: &str, comparison: &str, value: Value) -> Filter {
    filter(
        json!({"kind": "attribute", "name": name, "custom": true, "comparison": comparison, "value": value}),
    )
}

fn standard(name: &str, comparison: &str, value: Value) -> Filter {
    filter(json!({"kind": "attribute", "name": name, "comparison": comparison, "value": value}))
}

fn and(filters: Vec<Filter>) -> Filter {
    Filter::And { filters }
}

fn or(filters: Vec<Filter>) -> Filter {
    Filter::Or { filters }
}

fn event(name: &str, comparison: &str, count: u32, days: Option<u32>) -> Filter {
    filter(
        json!({"kind": "event", "name": name, "comparison": comparison, "count": count, "days": days}),
    )
}

fn purchase(product: Option<&str>, comparison: &str, count: u32, days: Option<u32>) -> Filter {
    filter(json!({
        "kind": "purchase", "product_id": product, "comparison": comparison, "count": count, "days": days,
    }))
}

/// The external ids of every member, checked against `count` on the way.
async fn members(db: &DatabaseConnection, ws: &WorkspaceId, filter: &Filter) -> BTreeSet<String> {
    let rows = segment::members(db, ws, filter, now(), 10_000, None)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {filter:?}: {e}", db.get_database_backend()));
    let count = segment::count(db, ws, filter, now()).await.unwrap();
    assert_eq!(
        count,
        rows.len() as u64,
        "count and members differ for {filter:?}"
    );
    rows.into_iter()
        .map(|p| p.external_id.unwrap_or(p.id))
        .collect()
}

async fn expect(db: &DatabaseConnection, ws: &WorkspaceId, filter: Filter, expected: &[&str]) {
    let got = members(db, ws, &filter).await;
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        got,
        want,
        "{:?}: {}",
        db.get_database_backend(),
        serde_json::to_string(&filter).unwrap()
    );
}

/// Whether regex conditions can run on this database (always on PostgreSQL).
async fn regex_available(db: &DatabaseConnection) -> bool {
    if db.get_database_backend() == DbBackend::Postgres {
        return true;
    }
    let ok = db.execute_unprepared("SELECT 'a' REGEXP 'a'").await.is_ok();
    if !ok {
        eprintln!("SQLite has no REGEXP function on this connection: regex cases skipped");
    }
    ok
}

/// Five users covering every type of custom attribute, values of the wrong type, missing values,
/// standard attributes, events and purchases.
async fn seed(db: &DatabaseConnection, ws: &WorkspaceId) {
    track(
        db,
        ws,
        json!({"attributes": [
            {
                "external_id": "ada", "first_name": "Ada", "email": "Ada@Example.com",
                "country": "FR", "time_zone": "Europe/Paris", "dob": "1990-12-10",
                "plan": "pro", "age": 36, "vip": true, "signed_up": "2026-11-25T10:00:00Z",
                "tags": ["beta", "early"], "address": {"city": "Paris"},
            },
            {
                "external_id": "bob", "first_name": "Bob", "email": "bob@test.org",
                "time_zone": "Europe/London", "dob": "2005-01-01",
                "plan": "free", "age": 17, "vip": false, "signed_up": "2026-10-01T02:00:00+02:00",
                "tags": ["beta"], "address": {"city": "London"},
            },
            {
                "external_id": "cy", "first_name": "Cyrille", "time_zone": "America/New_York",
                "plan": "Pro", "age": 36.5, "signed_up": "2027-01-01", "tags": [1, 2],
            },
            {"external_id": "dee"},
            {
                "external_id": "eve", "first_name": "Eve",
                "plan": 5, "age": "36", "vip": "true", "signed_up": "2026-13-45T00:00:00Z",
                "tags": "beta", "address": "Paris",
            },
        ]}),
    )
    .await;
    let checkout =
        |who: &str, at: String| json!({"external_id": who, "name": "checkout", "time": at});
    track(
        db,
        ws,
        json!({"events": [
            checkout("ada", ago(Duration::days(1))),
            checkout("ada", ago(Duration::days(10))),
            checkout("bob", ago(Duration::days(10))),
            checkout("cy", ago(Duration::days(2))),
            checkout("cy", ago(Duration::days(3))),
            checkout("cy", ago(Duration::days(4))),
            checkout("eve", ago(Duration::days(7) - Duration::hours(1))),
            {"external_id": "dee", "name": "browse", "time": ago(Duration::days(1))},
        ]}),
    )
    .await;
    let buy = |who: &str, product: &str, quantity: u32, at: String| {
        json!({"external_id": who, "product_id": product, "currency": "EUR", "price": 9.5,
               "quantity": quantity, "time": at})
    };
    track(
        db,
        ws,
        json!({"purchases": [
            buy("ada", "book", 1, ago(Duration::days(1))),
            buy("ada", "pen", 3, ago(Duration::days(20))),
            buy("bob", "book", 2, ago(Duration::days(2))),
        ]}),
    )
    .await;
}

#[tokio::test]
async fn string_attributes_compare_exactly_and_negations_include_users_without_the_attribute() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(&db, &ws, custom("plan", "equals", json!("pro")), &["ada"]).await;
        expect(
            &db,
            &ws,
            custom("plan", "not_equal", json!("pro")),
            &["bob", "cy", "dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("plan", "contains", json!("PR")),
            &["ada", "cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("plan", "does_not_contain", json!("r")),
            &["dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("plan", "exists", json!(null)),
            &["ada", "bob", "cy", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("plan", "does_not_exist", json!(null)),
            &["dee"],
        )
        .await;
        expect(&db, &ws, custom("plan", "contains", json!("%")), &[]).await;
    }
}

#[tokio::test]
async fn regular_expressions_match_strings_ignoring_case() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        if !regex_available(&db).await {
            // Without the function, the caller gets a clear error rather than a database one.
            let err = segment::count(
                &db,
                &ws,
                &custom("plan", "matches_regex", json!("^pr")),
                now(),
            )
            .await
            .unwrap_err();
            assert_eq!(err.field(), Some("filter"), "{err}");
            assert!(err.to_string().contains("REGEXP"), "{err}");
            continue;
        }
        expect(
            &db,
            &ws,
            custom("plan", "matches_regex", json!("^pr")),
            &["ada", "cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("plan", "does_not_match_regex", json!("^pr")),
            &["bob", "dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("first_name", "matches_regex", json!("^(ada|bob)$")),
            &["ada", "bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("email", "does_not_match_regex", json!("example\\.com$")),
            &["bob", "cy", "dee", "eve"],
        )
        .await;
    }
}

#[tokio::test]
async fn number_attributes_compare_numerically_and_strings_holding_numbers_never_match() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(&db, &ws, custom("age", "equals", json!(36)), &["ada"]).await;
        expect(&db, &ws, custom("age", "equals", json!(36.5)), &["cy"]).await;
        expect(
            &db,
            &ws,
            custom("age", "not_equal", json!(36)),
            &["bob", "cy", "dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("age", "greater_than", json!(30)),
            &["ada", "cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("age", "less_than", json!(36.5)),
            &["ada", "bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("age", "greater_than_or_equal_to", json!(36.5)),
            &["cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("age", "less_than_or_equal_to", json!(17)),
            &["bob"],
        )
        .await;
        expect(&db, &ws, custom("age", "greater_than", json!(1e300)), &[]).await;
    }
}

#[tokio::test]
async fn boolean_attributes_match_only_real_booleans() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(&db, &ws, custom("vip", "is_true", json!(null)), &["ada"]).await;
        expect(&db, &ws, custom("vip", "is_false", json!(null)), &["bob"]).await;
        expect(&db, &ws, custom("vip", "equals", json!(true)), &["ada"]).await;
        expect(&db, &ws, custom("vip", "equals", json!(false)), &["bob"]).await;
        expect(
            &db,
            &ws,
            custom("vip", "does_not_equal", json!(true)),
            &["bob", "cy", "dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("vip", "exists", json!(null)),
            &["ada", "bob", "eve"],
        )
        .await;
    }
}

#[tokio::test]
async fn time_attributes_compare_as_instants_relative_to_the_injected_now() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            custom("signed_up", "after", json!("2026-11-01")),
            &["ada", "cy"],
        )
        .await;
        // Bob signed up at 2026-10-01T02:00:00+02:00, midnight UTC; comparisons are strict.
        expect(
            &db,
            &ws,
            custom("signed_up", "before", json!("2026-10-01T00:00:01Z")),
            &["bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "before", json!("2026-10-01T00:00:00Z")),
            &[],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "less_than_x_days_ago", json!(7)),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "more_than_x_days_ago", json!(30)),
            &["bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "greater_than_x_days_ago", json!(2)),
            &["ada", "bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "more_than_x_days_in_the_future", json!(7)),
            &["cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "less_than_x_days_in_the_future", json!(7)),
            &[],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("signed_up", "less_than_x_days_in_the_future", json!(40)),
            &["cy"],
        )
        .await;
        // Eve's "2026-13-45..." is no time: it matches nothing and breaks nothing.
        expect(
            &db,
            &ws,
            custom("signed_up", "exists", json!(null)),
            &["ada", "bob", "cy", "eve"],
        )
        .await;
    }
}

#[tokio::test]
async fn array_attributes_match_values_of_the_same_type() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            custom("tags", "includes_value", json!("beta")),
            &["ada", "bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("tags", "includes_value", json!("early")),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("tags", "includes_value", json!(2)),
            &["cy"],
        )
        .await;
        expect(&db, &ws, custom("tags", "includes_value", json!("2")), &[]).await;
        expect(
            &db,
            &ws,
            custom("tags", "does_not_include_value", json!("beta")),
            &["cy", "dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("tags", "exists", json!(null)),
            &["ada", "bob", "cy", "eve"],
        )
        .await;
    }
}

#[tokio::test]
async fn dotted_names_reach_into_nested_objects() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            custom("address.city", "equals", json!("Paris")),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            custom("address.city", "does_not_exist", json!(null)),
            &["cy", "dee", "eve"],
        )
        .await;
    }
}

#[tokio::test]
async fn standard_attributes_are_compared_on_their_columns() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            standard("first_name", "equals", json!("Ada")),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("first_name", "not_equal", json!("Ada")),
            &["bob", "cy", "dee", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("first_name", "contains", json!("E")),
            &["cy", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("first_name", "does_not_contain", json!("e")),
            &["ada", "bob", "dee"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("first_name", "exists", json!(null)),
            &["ada", "bob", "cy", "eve"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("first_name", "does_not_exist", json!(null)),
            &["dee"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("email", "equals", json!("ADA@example.com")),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("country", "equals", json!("FR")),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("external_id", "equals", json!("cy")),
            &["cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("date_of_birth", "before", json!("2000-01-01")),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            standard("dob", "after", json!("2000-01-01")),
            &["bob"],
        )
        .await;
    }
}

#[tokio::test]
async fn nested_and_or_groups_combine_conditions() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            or(vec![
                and(vec![
                    custom("plan", "equals", json!("pro")),
                    custom("age", "greater_than", json!(30)),
                ]),
                and(vec![
                    custom("plan", "equals", json!("free")),
                    custom("vip", "is_false", json!(null)),
                ]),
            ]),
            &["ada", "bob"],
        )
        .await;
        expect(
            &db,
            &ws,
            and(vec![
                or(vec![
                    filter(json!({"kind": "time_zone", "zones": ["Europe/Paris"]})),
                    filter(json!({"kind": "time_zone", "zones": ["America/New_York"]})),
                ]),
                or(vec![
                    custom("age", "less_than", json!(20)),
                    custom("age", "greater_than", json!(36)),
                ]),
            ]),
            &["cy"],
        )
        .await;
        expect(&db, &ws, and(vec![]), &["ada", "bob", "cy", "dee", "eve"]).await;
        expect(&db, &ws, or(vec![]), &["ada", "bob", "cy", "dee", "eve"]).await;
    }
}

#[tokio::test]
async fn plan_equals_pro_and_checkout_in_the_last_seven_days_ignores_older_checkouts() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        track(
            &db,
            &ws,
            json!({"attributes": [
                {"external_id": "recent", "plan": "pro"},
                {"external_id": "old", "plan": "pro"},
                {"external_id": "free", "plan": "free"},
                {"external_id": "idle", "plan": "pro"},
            ],
            "events": [
                {"external_id": "recent", "name": "checkout", "time": ago(Duration::days(6))},
                {"external_id": "recent", "name": "checkout", "time": ago(Duration::days(30))},
                {"external_id": "old", "name": "checkout", "time": ago(Duration::days(8))},
                {"external_id": "free", "name": "checkout", "time": ago(Duration::hours(1))},
                {"external_id": "idle", "name": "browse", "time": ago(Duration::hours(1))},
            ]}),
        )
        .await;
        let acceptance = and(vec![
            custom("plan", "equals", json!("pro")),
            event("checkout", "at_least", 1, Some(7)),
        ]);
        expect(&db, &ws, acceptance.clone(), &["recent"]).await;
        // A week later, the recent checkout is old too.
        let later = now() + Duration::days(7);
        assert_eq!(
            segment::count(&db, &ws, &acceptance, later).await.unwrap(),
            0
        );
    }
}

#[tokio::test]
async fn event_counts_compare_at_least_at_most_and_exactly_within_the_window() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            event("checkout", "at_most", 1, Some(7)),
            &["ada", "bob", "dee", "eve"],
        )
        .await;
        expect(&db, &ws, event("checkout", "exactly", 3, Some(7)), &["cy"]).await;
        expect(&db, &ws, event("checkout", "exactly", 0, None), &["dee"]).await;
        expect(
            &db,
            &ws,
            event("checkout", "at_least", 2, None),
            &["ada", "cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            event("checkout", "at_least", 1, Some(7)),
            &["ada", "cy", "eve"],
        )
        .await;
        expect(&db, &ws, event("browse", "at_least", 1, None), &["dee"]).await;
    }
}

#[tokio::test]
async fn purchases_count_quantities_per_product_or_for_any_product() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            purchase(Some("book"), "at_least", 2, None),
            &["bob"],
        )
        .await;
        expect(&db, &ws, purchase(None, "at_least", 4, None), &["ada"]).await;
        expect(
            &db,
            &ws,
            purchase(None, "at_least", 1, Some(7)),
            &["ada", "bob"],
        )
        .await;
        expect(&db, &ws, purchase(Some("pen"), "at_least", 1, Some(7)), &[]).await;
        expect(
            &db,
            &ws,
            purchase(Some("pen"), "exactly", 3, None),
            &["ada"],
        )
        .await;
        expect(
            &db,
            &ws,
            purchase(None, "at_most", 0, None),
            &["cy", "dee", "eve"],
        )
        .await;
    }
}

#[tokio::test]
async fn random_buckets_are_stable_and_the_same_as_computed_in_rust() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let attributes: Vec<Value> = (0..40)
            .map(|i| json!({"external_id": format!("u{i:02}")}))
            .collect();
        track(&db, &ws, json!({ "attributes": attributes })).await;
        let everyone = segment::members(&db, &ws, &and(vec![]), now(), 1000, None)
            .await
            .unwrap();
        assert_eq!(everyone.len(), 40);
        for p in &everyone {
            let bucket = segment::random_bucket(&ProfileId::from_db(p.id.clone()));
            assert!(bucket <= 9999);
            let only = Filter::RandomBucket {
                min: bucket,
                max: bucket,
            };
            let found = segment::members(&db, &ws, &only, now(), 1000, None)
                .await
                .unwrap();
            assert!(
                found.iter().any(|f| f.id == p.id),
                "{:?}: {} not in its bucket {bucket}",
                db.get_database_backend(),
                p.id
            );
        }
        let low = Filter::RandomBucket { min: 0, max: 4999 };
        let want: BTreeSet<String> = everyone
            .iter()
            .filter(|p| segment::random_bucket(&ProfileId::from_db(p.id.clone())) <= 4999)
            .map(|p| p.external_id.clone().unwrap())
            .collect();
        assert_eq!(members(&db, &ws, &low).await, want);
        let high = Filter::RandomBucket {
            min: 5000,
            max: 9999,
        };
        let full = Filter::RandomBucket { min: 0, max: 9999 };
        let (l, h, f) = (
            segment::count(&db, &ws, &low, now()).await.unwrap(),
            segment::count(&db, &ws, &high, now()).await.unwrap(),
            segment::count(&db, &ws, &full, now()).await.unwrap(),
        );
        assert_eq!((l + h, f), (40, 40));
        // Stable: asking again gives the same members.
        assert_eq!(members(&db, &ws, &low).await, want);
    }
}

#[tokio::test]
async fn time_zone_filters_match_any_of_the_named_zones() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        expect(
            &db,
            &ws,
            filter(json!({"kind": "time_zone", "zones": ["Europe/Paris", "America/New_York"]})),
            &["ada", "cy"],
        )
        .await;
        expect(
            &db,
            &ws,
            filter(json!({"kind": "time_zone", "zones": ["Asia/Tokyo"]})),
            &[],
        )
        .await;
    }
}

fn message(result: Result<(), DomainError>) -> String {
    let err = result.expect_err("the filter should be rejected");
    assert_eq!(err.field(), Some("filter"));
    err.to_string()
}

#[test]
fn validation_errors_name_the_path_of_the_offending_field() {
    let msg = message(
        and(vec![
            custom("plan", "equals", json!("pro")),
            custom("age", "greater_than", json!("abc")),
        ])
        .validate(),
    );
    assert!(
        msg.contains("filters[1].value: must be a number for greater_than"),
        "{msg}"
    );
    let msg = message(
        and(vec![or(vec![
            custom("plan", "equals", json!("pro")),
            event("", "at_least", 1, None),
        ])])
        .validate(),
    );
    assert!(
        msg.contains("filters[0].filters[1].name: is required"),
        "{msg}"
    );
    let msg = message(custom("plan", "matches_regex", json!("(")).validate());
    assert!(
        msg.contains("value: is not a valid regular expression"),
        "{msg}"
    );
    let msg = message(standard("plan", "equals", json!("pro")).validate());
    assert!(
        msg.contains("name: \"plan\" is not a standard attribute"),
        "{msg}"
    );
    let msg = message(standard("first_name", "greater_than", json!(3)).validate());
    assert!(
        msg.contains("comparison: greater_than does not apply"),
        "{msg}"
    );
    let msg = message(custom("signed_up", "after", json!("soon")).validate());
    assert!(
        msg.contains("value: must be an ISO 8601 date or time"),
        "{msg}"
    );
    let msg = message(
        or(vec![Filter::RandomBucket {
            min: 0,
            max: 10_000,
        }])
        .validate(),
    );
    assert!(
        msg.contains("filters[0].max: must be at most 9999"),
        "{msg}"
    );
    let msg = message(and(vec![and(vec![])]).validate());
    assert!(
        msg.contains("filters[0].filters: a group needs at least one filter"),
        "{msg}"
    );
    let msg = message(filter(json!({"kind": "time_zone", "zones": []})).validate());
    assert!(msg.contains("zones: name at least one time zone"), "{msg}");
}

#[test]
fn filters_are_limited_in_depth_and_in_conditions() {
    let mut deep = custom("plan", "exists", json!(null));
    for _ in 0..5 {
        deep = and(vec![deep]);
    }
    deep.validate().unwrap();
    let msg = message(and(vec![deep]).validate());
    assert!(msg.contains("groups nest at most 5 deep"), "{msg}");

    let fifty: Vec<Filter> = (0..50)
        .map(|i| custom(&format!("a{i}"), "exists", json!(null)))
        .collect();
    and(fifty.clone()).validate().unwrap();
    let mut fifty_one = fifty;
    fifty_one.push(custom("b", "exists", json!(null)));
    let msg = message(or(fifty_one).validate());
    assert!(
        msg.contains("filters[50]: a segment has at most 50 conditions"),
        "{msg}"
    );
}

#[tokio::test]
async fn counting_an_invalid_filter_fails_without_touching_the_database() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let err = segment::count(&db, &ws, &custom("age", "less_than", json!(true)), now())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("value: must be a number for less_than"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_segment_never_counts_another_workspaces_profiles() {
    for db in test_databases().await {
        let (a, b) = (WorkspaceId::generate(), WorkspaceId::generate());
        seed(&db, &a).await;
        seed(&db, &b).await;
        track(
            &db,
            &b,
            json!({"attributes": [{"external_id": "zed", "plan": "pro"}],
                   "events": [{"external_id": "zed", "name": "checkout", "time": ago(Duration::hours(2))}]}),
        )
        .await;
        let pro = custom("plan", "equals", json!("pro"));
        expect(&db, &a, pro.clone(), &["ada"]).await;
        expect(&db, &b, pro, &["ada", "zed"]).await;
        assert_eq!(
            segment::count(&db, &a, &and(vec![]), now()).await.unwrap(),
            5
        );
        expect(&db, &a, event("checkout", "at_least", 1, Some(1)), &["ada"]).await;

        let saved = segment::create(&db, &a, "Pros", "", &and(vec![]), now())
            .await
            .unwrap();
        assert!(matches!(
            segment::find(&db, &b, &saved.id).await,
            Err(DomainError::NotFound("segment"))
        ));
        assert!(segment::list(&db, &b, true).await.unwrap().is_empty());
        assert!(segment::archive(&db, &b, &saved.id, now()).await.is_err());
    }
}

#[tokio::test]
async fn members_page_through_the_segment_by_id() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        let everyone = and(vec![]);
        let mut seen = Vec::new();
        let mut after: Option<ProfileId> = None;
        loop {
            let page = segment::members(&db, &ws, &everyone, now(), 2, after.as_ref())
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            after = Some(ProfileId::from_db(page.last().unwrap().id.clone()));
            seen.extend(page.into_iter().map(|p| p.id));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted, "pages come in id order without repeats");
        assert_eq!(seen.len(), 5);
    }
}

#[tokio::test]
async fn segments_are_created_edited_listed_archived_and_restored() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let pro = custom("plan", "equals", json!("pro"));
        let created = segment::create(&db, &ws, "  Pro users ", "Paying", &pro, now())
            .await
            .unwrap();
        assert_eq!(created.name, "Pro users");
        assert_eq!(created.description, "Paying");
        assert_eq!(created.filter, pro);
        assert_eq!(segment::find(&db, &ws, &created.id).await.unwrap(), created);

        let other = segment::create(&db, &ws, "All", "", &and(vec![]), now())
            .await
            .unwrap();
        let later = now() + Duration::minutes(5);
        let recent = and(vec![pro.clone(), event("checkout", "at_least", 1, Some(7))]);
        let updated = segment::update(&db, &ws, &created.id, "Recent pros", "", &recent, later)
            .await
            .unwrap();
        assert_eq!(updated.filter, recent);
        assert_eq!(updated.updated_at, later);
        assert_eq!(updated.created_at, now());

        let names = |list: Vec<segment::Segment>| -> Vec<String> {
            list.into_iter().map(|s| s.name).collect()
        };
        assert_eq!(
            names(segment::list(&db, &ws, false).await.unwrap()),
            ["All", "Recent pros"]
        );
        let archived = segment::archive(&db, &ws, &other.id, later).await.unwrap();
        assert_eq!(archived.archived_at, Some(later));
        assert_eq!(
            names(segment::list(&db, &ws, false).await.unwrap()),
            ["Recent pros"]
        );
        assert_eq!(
            names(segment::list(&db, &ws, true).await.unwrap()),
            ["Recent pros", "All"]
        );
        segment::unarchive(&db, &ws, &other.id, later)
            .await
            .unwrap();
        assert_eq!(segment::list(&db, &ws, false).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn saving_a_segment_checks_its_name_and_filter() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        let ok = and(vec![]);
        let err = segment::create(&db, &ws, " ", "", &ok, now())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("name"));
        let long = "x".repeat(101);
        let err = segment::create(&db, &ws, &long, "", &ok, now())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("name"));
        segment::create(&db, &ws, &"x".repeat(100), "", &ok, now())
            .await
            .unwrap();
        let bad = and(vec![custom("age", "greater_than", json!("old"))]);
        let err = segment::create(&db, &ws, "Bad", "", &bad, now())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("filter"));
        assert!(err.to_string().contains("filters[0].value"), "{err}");
        assert_eq!(segment::list(&db, &ws, true).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_braze_connected_audience_counts_the_profiles_it_names() {
    for db in test_databases().await {
        let ws = WorkspaceId::generate();
        seed(&db, &ws).await;
        let ca = |name: &str, comparison: &str, value: Value| {
            json!({"custom_attribute": {
                "custom_attribute_name": name, "comparison": comparison, "value": value,
            }})
        };
        let count = |audience: Value| {
            let db = &db;
            let ws = &ws;
            async move {
                let filter = segment::from_connected_audience(&audience).unwrap();
                let n = segment::count(db, ws, &filter, now()).await.unwrap();
                (n, members(db, ws, &filter).await)
            }
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

        // (plan is "pro" or age > 30) and signed up less than 7 days ago: ada only (cy signed
        // up in the future, bob too long ago).
        let (n, who) = count(json!({"AND": [
            {"OR": [ca("plan", "equals", json!("pro")), ca("age", "greater_than", json!(30))]},
            ca("signed_up", "less_than_x_days_ago", json!(7)),
        ]}))
        .await;
        assert_eq!((n, who), (1, names(&["ada"])));

        let (n, who) = count(ca("signed_up", "greater_than_x_days_ago", json!(30))).await;
        assert_eq!((n, who), (1, names(&["bob"])));
        let (n, who) = count(ca("vip", "does_not_equal", json!(true))).await;
        assert_eq!((n, who), (4, names(&["bob", "cy", "dee", "eve"])));
        let (n, who) = count(ca("tags", "includes_value", json!("beta"))).await;
        assert_eq!((n, who), (2, names(&["ada", "bob"])));
        let (n, who) = count(ca("plan", "exists", json!(false))).await;
        assert_eq!((n, who), (1, names(&["dee"])));

        let err = segment::from_connected_audience(&json!({"AND": [
            ca("plan", "equals", json!("pro")),
            {"email_subscription_status": {"comparison": "is", "value": "opted_in"}},
        ]}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "audience: AND[1]: email_subscription_status is not supported by Herald"
        );
    }
}
