//! Campaigns over HTTP, as other systems use them: the management API creates and launches them
//! from a script, Braze's endpoints trigger and track them, and the running engine delivers to a
//! local receiver.

mod common;

use std::time::Duration;

use common::{TestApp, next_webhook as next, receiver, spawn_app_with};
use domain::Clock;
use migrations::testing::test_databases;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

async fn arrivals(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        bodies.push(next(rx).await);
    }
    bodies
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.api(key, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value) {
    app.api(key, reqwest::Method::GET, path, None).await
}

const ALL: &[&str] = &[
    "herald.manage",
    "users.track",
    "messages.send",
    "messages.schedule.create",
    "messages.schedule.update",
    "messages.schedule.delete",
    "messages.schedule_broadcasts",
    "campaigns.trigger.send",
    "campaigns.list",
    "campaigns.details",
    "campaigns.data_series",
    "sends.id.create",
    "sends.data_series",
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

async fn track(app: &TestApp, key: &str, body: Value) {
    let (status, answer) = post(app, key, "/users/track", body).await;
    assert!(status.is_success(), "{answer}");
}

fn message(url: &str, body: &str) -> Value {
    json!({
        "method": "POST",
        "url": url,
        "headers": [["Content-Type", "application/json"]],
        "body": { "kind": "raw", "text": body },
    })
}

/// Creates and launches a campaign through the management API; returns it.
async fn launched(app: &TestApp, key: &str, definition: Value) -> Value {
    let (status, created) = post(app, key, "/v1/campaigns", definition).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["campaign"]["id"].as_str().unwrap().to_string();
    let (status, launched) = post(app, key, &format!("/v1/campaigns/{id}/launch"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{launched}");
    launched["campaign"].clone()
}

#[tokio::test]
async fn a_script_creates_an_api_triggered_campaign_and_triggers_three_users_with_their_own_properties()
 {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [
                {"external_id": "u1", "first_name": "Ada"},
                {"external_id": "u2", "first_name": "Bob"}
            ]}),
        )
        .await;
        let campaign = launched(
            &app,
            &key,
            json!({
                "name": "Order shipped",
                "kind": "webhook",
                "variants": [{ "name": "Main", "percent": 100, "message": message(
                    &url,
                    "{\"name\": \"{{${first_name}}}\", \"order\": \"{{api_trigger_properties.${order}}}\", \"shop\": \"{{api_trigger_properties.${shop}}}\", \"plan\": \"{{custom_attribute.${plan} | default: 'none'}}\"}",
                ) }],
                "delivery": { "type": "api" },
                "settings": { "reeligible_after_seconds": 0 }
            }),
        )
        .await;
        assert_eq!(campaign["status"], "active");
        let id = campaign["id"].as_str().unwrap();

        let (status, answer) = post(
            &app,
            &key,
            "/campaigns/trigger/send",
            json!({
                "campaign_id": id,
                "trigger_properties": { "shop": "Paris" },
                "recipients": [
                    { "external_user_id": "u1", "trigger_properties": { "order": "A-1" } },
                    { "external_user_id": "u2", "trigger_properties": { "order": "B-2", "shop": "Lyon" },
                      "attributes": { "plan": "gold" } },
                    { "external_user_id": "u3", "send_to_existing_only": false,
                      "attributes": { "first_name": "Cy" }, "trigger_properties": { "order": "C-3" } }
                ]
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["dispatch_id"].is_string());
        let mut bodies = arrivals(&mut rx, 3).await;
        bodies.sort_by_key(|b| b["order"].as_str().unwrap_or_default().to_string());
        assert_eq!(
            bodies,
            vec![
                json!({"name": "Ada", "order": "A-1", "shop": "Paris", "plan": "none"}),
                json!({"name": "Bob", "order": "B-2", "shop": "Lyon", "plan": "gold"}),
                json!({"name": "Cy", "order": "C-3", "shop": "Paris", "plan": "none"}),
            ]
        );

        let (status, details) =
            get(&app, &key, &format!("/campaigns/details?campaign_id={id}")).await;
        assert_eq!(status, StatusCode::OK, "{details}");
        assert_eq!(details["schedule_type"], "api_triggered");
        assert_eq!(details["enabled"], true);
        let (_, listed) = get(&app, &key, "/campaigns/list").await;
        assert_eq!(listed["campaigns"][0]["id"], id);

        // Braze's errors for bad calls.
        let (status, answer) = post(
            &app,
            &key,
            "/campaigns/trigger/send",
            json!({ "campaign_id": "not-a-campaign", "broadcast": true }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["message"], "Invalid Campaign ID");
        let too_many: Vec<Value> = (0..51)
            .map(|i| json!({ "external_user_id": format!("u{i}") }))
            .collect();
        let (status, answer) = post(
            &app,
            &key,
            "/campaigns/trigger/send",
            json!({ "campaign_id": id, "recipients": too_many }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["message"].as_str().unwrap().contains("max number"),
            "{answer}"
        );
        let (status, answer) = post(
            &app,
            &key,
            "/campaigns/trigger/send",
            json!({ "campaign_id": id, "recipients": [{"external_user_id": "u1"}], "broadcast": true }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer["errors"][0].as_str().unwrap().contains("broadcast"));
    }
}

#[tokio::test]
async fn messages_send_with_an_api_campaign_reaches_the_receiver_and_counts_under_the_campaign() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada"}]}),
        )
        .await;
        let campaign = launched(
            &app,
            &key,
            json!({
                "name": "Receipts",
                "kind": "api",
                "variants": [{ "name": "Webhook", "percent": 100 }],
                "delivery": { "type": "api" }
            }),
        )
        .await;
        let id = campaign["id"].as_str().unwrap().to_string();
        let variant = campaign["variants"][0]["id"].as_str().unwrap().to_string();
        let webhook = |variant: Option<&str>| {
            let mut w = json!({
                "url": url,
                "request_method": "POST",
                "body": "{\"hi\": \"{{${first_name}}}\", \"campaign\": \"{{campaign.${api_id}}}\"}"
            });
            if let Some(v) = variant {
                w["message_variation_id"] = v.into();
            }
            json!({ "webhook": w })
        };
        let (status, answer) = post(
            &app,
            &key,
            "/messages/send",
            json!({ "campaign_id": id, "external_user_ids": ["u1"], "messages": webhook(Some(&variant)) }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(next(&mut rx).await, json!({"hi": "Ada", "campaign": id}));

        let (status, answer) = post(
            &app,
            &key,
            "/messages/send",
            json!({ "campaign_id": id, "external_user_ids": ["u1"], "messages": webhook(None) }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["message"], "Message Variant Unspecified");
        let (status, answer) = post(
            &app,
            &key,
            "/messages/send",
            json!({ "campaign_id": id, "external_user_ids": ["u1"],
                    "messages": webhook(Some("00000000-0000-4000-8000-000000000000")) }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["message"], "Invalid Message Variant", "{answer}");

        // The send counts under the campaign, for the dashboard and for Braze's data series.
        let mut delivered = 0;
        for _ in 0..100 {
            let (_, stats) = get(&app, &key, &format!("/v1/campaigns/{id}/stats")).await;
            delivered = stats["stats"]["total"]["delivered"].as_u64().unwrap_or(0);
            if delivered == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(delivered, 1);
        let (status, series) = get(
            &app,
            &key,
            &format!("/campaigns/data_series?campaign_id={id}&length=7"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{series}");
        assert_eq!(series["totals"]["sent"], 1);
    }
}

#[tokio::test]
async fn an_action_based_campaign_fires_when_users_track_records_its_event() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        launched(
            &app,
            &key,
            json!({
                "name": "Welcome",
                "kind": "webhook",
                "variants": [{ "name": "Main", "percent": 100, "message": message(
                    &url,
                    "{\"user\": \"{{${user_id}}}\", \"plan\": \"{{event_properties.${plan}}}\"}",
                ) }],
                "delivery": { "type": "action", "trigger": { "kind": "custom_event", "name": "signed_up" } }
            }),
        )
        .await;
        track(
            &app,
            &key,
            json!({"events": [
                {"external_id": "u9", "name": "browsed", "time": chrono::Utc::now().to_rfc3339()},
                {"external_id": "u9", "name": "signed_up", "time": chrono::Utc::now().to_rfc3339(),
                 "properties": {"plan": "pro"}}
            ]}),
        )
        .await;
        assert_eq!(next(&mut rx).await, json!({"user": "u9", "plan": "pro"}));
        // Only the one event triggers it: nothing else arrives.
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), rx.recv())
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_scheduled_campaign_sent_at_launch_reaches_every_member_of_its_segment() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [
                {"external_id": "a", "first_name": "Ann", "plan": "pro"},
                {"external_id": "b", "first_name": "Ben", "plan": "pro"},
                {"external_id": "c", "first_name": "Cat", "plan": "free"}
            ]}),
        )
        .await;
        let campaign = launched(
            &app,
            &key,
            json!({
                "name": "Pro newsletter",
                "kind": "webhook",
                "variants": [{ "name": "Main", "percent": 100, "message": message(&url, "{\"hello\": \"{{${first_name}}}\"}") }],
                "delivery": { "type": "scheduled", "schedule": { "kind": "at_launch" } },
                "audience": { "filter": { "kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro" } }
            }),
        )
        .await;
        let mut bodies = arrivals(&mut rx, 2).await;
        bodies.sort_by_key(|b| b["hello"].as_str().unwrap_or_default().to_string());
        assert_eq!(
            bodies,
            vec![json!({"hello": "Ann"}), json!({"hello": "Ben"})]
        );
        let id = campaign["id"].as_str().unwrap();
        let mut progress = Value::Null;
        for _ in 0..100 {
            progress = get(&app, &key, &format!("/v1/campaigns/{id}/progress"))
                .await
                .1;
            if progress["progress"]["delivered"] == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(progress["progress"]["delivered"], 2, "{progress}");
        assert_eq!(progress["progress"]["queued"], 0);
    }
}

#[tokio::test]
async fn scheduled_messages_are_listed_changed_cancelled_and_sent_when_due() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada"}]}),
        )
        .await;
        let now = app.clock.now();
        let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
        let webhook = |text: &str| json!({ "webhook": { "url": url, "request_method": "POST", "body": text } });
        let (status, created) = post(
            &app,
            &key,
            "/messages/schedule/create",
            json!({ "external_user_ids": ["u1"], "schedule": { "time": at(30) }, "messages": webhook("first") }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let schedule_id = created["schedule_id"].as_str().unwrap().to_string();
        let (_, other) = post(
            &app,
            &key,
            "/messages/schedule/create",
            json!({ "external_user_ids": ["u1"], "schedule": { "time": at(40) }, "messages": webhook("never") }),
        )
        .await;

        let (status, listed) = get(
            &app,
            &key,
            &format!(
                "/messages/scheduled_broadcasts?end_time={}",
                urlencode(&at(60))
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["scheduled_broadcasts"].as_array().unwrap().len(), 2);

        let (status, answer) = post(
            &app,
            &key,
            "/messages/schedule/update",
            json!({ "schedule_id": schedule_id, "messages": webhook("changed") }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, answer) = post(
            &app,
            &key,
            "/messages/schedule/delete",
            json!({ "schedule_id": other["schedule_id"] }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        let (status, answer) = post(
            &app,
            &key,
            "/messages/schedule/create",
            json!({ "external_user_ids": ["u1"], "schedule": { "time": at(-5) }, "messages": webhook("late") }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

        app.clock.advance(chrono::Duration::minutes(45));
        assert_eq!(next(&mut rx).await, Value::String("changed".into()));
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), rx.recv())
                .await
                .is_err(),
            "the cancelled schedule sends nothing"
        );
    }
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn the_management_api_needs_its_permission_and_is_described_by_openapi() {
    for (app, _) in app_with_key().await {
        let (_, ws) = app.account_with_workspace("bo@example.com", "B").await;
        let narrow = app.api_key(&ws, &["messages.send"], "").await;
        let (status, _) = get(&app, &narrow, "/v1/campaigns").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = get(&app, &narrow, "/v1/canvases").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, answer) = post(
            &app,
            &app.api_key(&ws, &["herald.manage"], "").await,
            "/v1/campaigns",
            json!({ "name": "", "kind": "webhook", "delivery": { "type": "api" } }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["errors"][0].as_str().unwrap().starts_with("name"),
            "{answer}"
        );

        let response = app
            .client
            .get(format!("{}/api/openapi.json", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value = response.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/v1/campaigns",
            "/v1/campaigns/{id}/{action}",
            "/campaigns/trigger/send",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is described");
        }
        // The Canvas endpoints, each operation with the permission it needs.
        for (path, method, permission) in [
            ("/v1/canvases", "get", "herald.manage"),
            ("/v1/canvases", "post", "herald.manage"),
            ("/v1/canvases/{id}", "get", "herald.manage"),
            ("/v1/canvases/{id}", "put", "herald.manage"),
            ("/v1/canvases/{id}/{action}", "post", "herald.manage"),
            ("/v1/canvases/{id}/stats", "get", "herald.manage"),
            ("/canvas/trigger/send", "post", "canvas.trigger.send"),
            (
                "/canvas/trigger/schedule/create",
                "post",
                "canvas.trigger.schedule.create",
            ),
            (
                "/canvas/trigger/schedule/update",
                "post",
                "canvas.trigger.schedule.update",
            ),
            (
                "/canvas/trigger/schedule/delete",
                "post",
                "canvas.trigger.schedule.delete",
            ),
            ("/canvas/list", "get", "canvas.list"),
            ("/canvas/details", "get", "canvas.details"),
            ("/canvas/data_series", "get", "canvas.data_series"),
        ] {
            let operation = &doc["paths"][path][method];
            assert!(
                operation["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&format!("`{permission}`"))),
                "{method} {path} is described with its permission: {operation}"
            );
        }
        let actions =
            &doc["paths"]["/v1/canvases/{id}/{action}"]["post"]["parameters"][1]["schema"]["enum"];
        for action in [
            "launch",
            "pause",
            "resume",
            "stop",
            "archive",
            "unarchive",
            "duplicate",
        ] {
            assert!(
                actions.as_array().unwrap().contains(&json!(action)),
                "{action} is described: {actions}"
            );
        }
        for schema in ["Canvas", "CanvasInput"] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "{schema} is described"
            );
        }
    }
}
