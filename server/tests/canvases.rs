//! Canvases over HTTP: the management API creates and launches them, `/canvas/trigger/send`
//! enters users with their context, and the running engine delivers the Message steps.

mod common;

use std::time::Duration;

use common::{TestApp, next_webhook as next, receiver, spawn_app_with};
use domain::Clock;
use migrations::testing::test_databases;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.api(key, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value) {
    app.api(key, reqwest::Method::GET, path, None).await
}

const ALL: &[&str] = &[
    "herald.manage",
    "users.track",
    "canvas.trigger.send",
    "canvas.list",
    "canvas.details",
    "canvas.data_series",
];

async fn app_with_key() -> Vec<(TestApp, String)> {
    let mut apps = Vec::new();
    for db in test_databases().await {
        let app = spawn_app_with(db, |c| {
            c.allow_private_cidrs = vec!["127.0.0.0/8".parse().unwrap()]
        })
        .await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app.api_key(&ws, ALL, "").await;
        apps.push((app, key));
    }
    apps
}

fn api_canvas(url: &str) -> Value {
    json!({
        "name": "Coupons",
        "definition": {
            "entry": { "type": "api" },
            "variants": [{ "name": "Main", "percent": 100, "first_step": "hello" }],
            "steps": [{
                "id": "hello",
                "name": "Coupon webhook",
                "type": "message",
                "message": {
                    "method": "POST",
                    "url": url,
                    "headers": [["Content-Type", "application/json"]],
                    "body": { "kind": "raw", "text": "{\"to\": \"{{${first_name}}}\", \"coupon\": \"{{context.${coupon}}}\", \"shop\": \"{{canvas_entry_properties.${shop}}}\"}" }
                }
            }]
        }
    })
}

async fn launched(app: &TestApp, key: &str, definition: Value) -> String {
    let (status, created) = post(app, key, "/v1/canvases", definition).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["canvas"]["id"].as_str().unwrap().to_string();
    let (status, answer) = post(app, key, &format!("/v1/canvases/{id}/launch"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["canvas"]["status"], "active");
    id
}

#[tokio::test]
async fn canvas_trigger_send_enters_users_with_their_context_and_the_message_step_renders_it() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        let (status, answer) = post(
            &app,
            &key,
            "/users/track",
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada"}, {"external_id": "u2", "first_name": "Bob"}]}),
        )
        .await;
        assert!(status.is_success(), "{answer}");
        let id = launched(&app, &key, api_canvas(&url)).await;

        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({
                "canvas_id": id,
                "context": { "shop": "Paris" },
                "recipients": [
                    { "external_user_id": "u1", "context": { "coupon": "AAA" } },
                    { "external_user_id": "u2", "canvas_entry_properties": { "coupon": "BBB", "shop": "Lyon" } }
                ]
            }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["message"], "success");
        let mut bodies = vec![next(&mut rx).await, next(&mut rx).await];
        bodies.sort_by_key(|b| b["to"].as_str().unwrap_or_default().to_string());
        assert_eq!(
            bodies,
            vec![
                json!({"to": "Ada", "coupon": "AAA", "shop": "Paris"}),
                json!({"to": "Bob", "coupon": "BBB", "shop": "Lyon"}),
            ]
        );

        let (status, details) = get(&app, &key, &format!("/canvas/details?canvas_id={id}")).await;
        assert_eq!(status, StatusCode::OK, "{details}");
        assert_eq!(details["schedule_type"], "api_triggered");
        assert_eq!(details["steps"][0]["id"], "hello");
        let (_, listed) = get(&app, &key, "/canvas/list").await;
        assert_eq!(listed["canvases"][0]["id"], id);
        let (status, series) = get(
            &app,
            &key,
            &format!("/canvas/data_series?canvas_id={id}&length=7"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{series}");
        assert_eq!(series["data"]["totals"]["entries"], 2);
    }
}

#[tokio::test]
async fn a_paused_canvas_accepts_the_trigger_with_a_notice_and_sends_nothing() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        post(
            &app,
            &key,
            "/users/track",
            json!({"attributes": [{"external_id": "u1"}]}),
        )
        .await;
        let id = launched(&app, &key, api_canvas(&url)).await;
        let (status, answer) =
            post(&app, &key, &format!("/v1/canvases/{id}/pause"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({ "canvas_id": id, "recipients": [{ "external_user_id": "u1" }] }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert!(
            answer["notice"].as_str().unwrap().contains("paused"),
            "{answer}"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), rx.recv())
                .await
                .is_err()
        );

        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({ "canvas_id": "nope", "broadcast": true }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["message"], "Invalid Canvas ID");
    }
}

#[tokio::test]
async fn a_canvas_with_problems_shows_them_and_cannot_launch() {
    for (app, key) in app_with_key().await {
        let broken = json!({
            "name": "Broken",
            "definition": {
                "entry": { "type": "api" },
                "variants": [{ "name": "Main", "percent": 100, "first_step": "a" }],
                "steps": [
                    { "id": "a", "type": "delay", "delay": { "kind": "for", "seconds": 60 }, "next": "missing" },
                    { "id": "orphan", "type": "exit" }
                ]
            }
        });
        let (status, created) = post(&app, &key, "/v1/canvases", broken).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["canvas"]["id"].as_str().unwrap();
        let (status, found) = get(&app, &key, &format!("/v1/canvases/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let problems = found["problems"].as_array().unwrap();
        assert!(problems.iter().any(|p| p["step_id"] == "a"), "{found}");
        assert!(problems.iter().any(|p| p["step_id"] == "orphan"), "{found}");
        let (status, answer) =
            post(&app, &key, &format!("/v1/canvases/{id}/launch"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
}

#[tokio::test]
async fn conversions_are_kept_with_the_definition_and_counted_per_canvas_and_per_step() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        let (status, answer) = post(
            &app,
            &key,
            "/users/track",
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada"}, {"external_id": "u2", "first_name": "Bob"}]}),
        )
        .await;
        assert!(status.is_success(), "{answer}");

        // Conversion events are checked at launch like the rest of the definition.
        let mut broken = api_canvas(&url);
        broken["definition"]["conversions"] = json!([
            { "trigger": { "kind": "custom_event", "name": "upgrade" }, "window_seconds": 0 }
        ]);
        let (status, created) = post(&app, &key, "/v1/canvases", broken).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let broken_id = created["canvas"]["id"].as_str().unwrap();
        let (_, found) = get(&app, &key, &format!("/v1/canvases/{broken_id}")).await;
        assert!(
            found["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["field"] == "conversions[0].window_seconds"),
            "{found}"
        );
        let (status, answer) = post(
            &app,
            &key,
            &format!("/v1/canvases/{broken_id}/launch"),
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

        let mut definition = api_canvas(&url);
        definition["definition"]["conversions"] = json!([
            { "trigger": { "kind": "custom_event", "name": "upgrade" }, "window_seconds": 86_400 },
            { "trigger": { "kind": "purchase" }, "window_seconds": 3_600 }
        ]);
        let id = launched(&app, &key, definition).await;
        let (_, found) = get(&app, &key, &format!("/v1/canvases/{id}")).await;
        assert_eq!(
            found["canvas"]["draft"]["conversions"][0]["trigger"]["name"],
            "upgrade"
        );
        let (_, details) = get(&app, &key, &format!("/canvas/details?canvas_id={id}")).await;
        assert_eq!(
            details["conversion_behaviors"],
            json!([
                { "type": "Performs Custom Event", "custom_event_name": "upgrade", "window": 86_400 },
                { "type": "Makes Any Purchase", "window": 3_600 }
            ])
        );

        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({
                "canvas_id": id,
                "recipients": [{ "external_user_id": "u1" }, { "external_user_id": "u2" }]
            }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        next(&mut rx).await;
        next(&mut rx).await;
        // An hour later Ada upgrades twice (one conversion); Bob only buys, which is not the
        // primary event.
        app.clock.advance(chrono::Duration::hours(1));
        let time = app.clock.now().to_rfc3339();
        let (status, answer) = post(
            &app,
            &key,
            "/users/track",
            json!({
                "events": [
                    { "external_id": "u1", "name": "upgrade", "time": time },
                    { "external_id": "u1", "name": "upgrade", "time": time }
                ],
                "purchases": [
                    { "external_id": "u2", "product_id": "socks", "currency": "EUR", "price": 3, "time": time }
                ]
            }),
        )
        .await;
        assert!(status.is_success(), "{answer}");
        assert_eq!(answer["events_processed"], 2, "{answer}");
        assert_eq!(answer["purchases_processed"], 1, "{answer}");

        let (status, series) = get(
            &app,
            &key,
            &format!("/canvas/data_series?canvas_id={id}&length=7"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{series}");
        let data = &series["data"];
        assert_eq!(data["totals"]["entries"], 2, "{series}");
        assert_eq!(data["totals"]["conversions"], 1, "{series}");
        let buckets = data["stats"].as_array().unwrap();
        let sum = |field: &str| -> u64 {
            buckets
                .iter()
                .map(|b| b["total_stats"][field].as_u64().unwrap())
                .sum()
        };
        assert_eq!(
            (
                sum("entries"),
                sum("conversions"),
                sum("conversions_by_entry_time")
            ),
            (2, 1, 1),
            "{series}"
        );
        assert_eq!(data["steps"][0]["step_id"], "hello");
        assert_eq!(data["steps"][0]["entered"], 2);
        assert_eq!(data["steps"][0]["converted"], 1, "{series}");

        let (status, stats) = get(&app, &key, &format!("/v1/canvases/{id}/stats")).await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        assert_eq!(stats["stats"]["conversions"], 1, "{stats}");
        assert_eq!(stats["stats"]["steps"][0]["converted"], 1, "{stats}");
    }
}
