//! Canvases over HTTP: the management API creates and launches them, `/canvas/trigger/send`
//! enters users with their context, and the running engine delivers the Message steps.

mod common;

use std::time::Duration;

use chrono::Timelike;
use common::{TestApp, next_webhook as next, receiver, spawn_app_with};
use domain::Clock;
use migrations::testing::test_databases;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

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
    "canvas.trigger.schedule.create",
    "canvas.trigger.schedule.update",
    "canvas.trigger.schedule.delete",
    "messages.schedule_broadcasts",
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

async fn put(app: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.api(key, reqwest::Method::PUT, path, Some(body)).await
}

async fn track(app: &TestApp, key: &str, body: Value) {
    let (status, answer) = post(app, key, "/users/track", body).await;
    assert!(status.is_success(), "{answer}");
}

/// A webhook to `url` whose JSON body is `body` (Liquid).
fn webhook(url: &str, body: &str) -> Value {
    json!({
        "method": "POST",
        "url": url,
        "headers": [["Content-Type", "application/json"]],
        "body": { "kind": "raw", "text": body }
    })
}

/// A local receiver that hands the test each request's path with its body, so a test can tell
/// which step's URL a webhook went to; returns its base URL (no path) and the stream.
async fn path_receiver() -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    use axum::extract::State;
    use axum::http::Uri;
    type Sender = mpsc::UnboundedSender<(String, Value)>;
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .fallback(
            |State(tx): State<Sender>, uri: Uri, body: String| async move {
                let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
                let _ = tx.send((uri.path().to_string(), body));
                "ok"
            },
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

/// The next `n` requests to a [`path_receiver`], sorted by their body's `user`.
async fn arrivals_by_user(
    rx: &mut mpsc::UnboundedReceiver<(String, Value)>,
    n: usize,
) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let arrival = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a webhook arrives")
            .unwrap();
        got.push(arrival);
    }
    got.sort_by_key(|(_, body)| body["user"].as_str().unwrap_or_default().to_string());
    got
}

/// Fails if anything more reaches the receiver within 1.5 s.
async fn nothing_arrives<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await {
        panic!("nothing more should arrive, but {extra:?} did");
    }
}

/// The Canvas's analytics from the management API.
async fn stats(app: &TestApp, key: &str, id: &str) -> Value {
    let (status, answer) = get(app, key, &format!("/v1/canvases/{id}/stats")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["stats"].clone()
}

async fn entries(app: &TestApp, key: &str, id: &str) -> u64 {
    stats(app, key, id).await["entries"].as_u64().unwrap()
}

/// How many journeys entered `step` (0 before any did).
async fn step_entered(app: &TestApp, key: &str, id: &str, step: &str) -> u64 {
    let stats = stats(app, key, id).await;
    stats["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == step)
        .map_or(0, |s| s["entered"].as_u64().unwrap())
}

/// Waits (up to 20 s) until `n` journeys have entered `step`.
async fn until_step_entered(app: &TestApp, key: &str, id: &str, step: &str, n: u64) {
    for _ in 0..400 {
        if step_entered(app, key, id, step).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} journeys never entered step {step}");
}

/// “Message welcome → Delay 60 s → Decision Split plan = pro → Message A / Message B”, entered
/// when a user performs the custom event `signup`. Every message goes to its own path of `base`.
fn onboarding(base: &str) -> Value {
    json!({
        "name": "Onboarding",
        "definition": {
            "entry": { "type": "action", "trigger": { "kind": "custom_event", "name": "signup" } },
            "variants": [{ "name": "Main", "percent": 100, "first_step": "welcome" }],
            "steps": [
                {
                    "id": "welcome",
                    "name": "Welcome",
                    "type": "message",
                    "message": webhook(&format!("{base}/welcome"), r#"{"step": "welcome", "user": "{{${user_id}}}", "name": "{{${first_name}}}", "source": "{{canvas_entry_properties.${source}}}"}"#),
                    "next": "wait"
                },
                {
                    "id": "wait",
                    "name": "One minute",
                    "type": "delay",
                    "delay": { "kind": "for", "seconds": 60 },
                    "next": "split"
                },
                {
                    "id": "split",
                    "name": "Plan is pro",
                    "type": "decision_split",
                    "filter": { "kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro" },
                    "yes": "a",
                    "no": "b"
                },
                {
                    "id": "a",
                    "name": "Message A",
                    "type": "message",
                    "message": webhook(&format!("{base}/a"), r#"{"step": "a", "user": "{{${user_id}}}", "plan": "{{custom_attribute.${plan}}}"}"#)
                },
                {
                    "id": "b",
                    "name": "Message B",
                    "type": "message",
                    "message": webhook(&format!("{base}/b"), r#"{"step": "b", "version": 1, "user": "{{${user_id}}}", "plan": "{{custom_attribute.${plan}}}"}"#)
                }
            ]
        }
    })
}

/// Tracks, in one `/users/track` call, each user's name and plan and their `signup` event (with
/// a `source` property), at the test clock's time.
async fn sign_up(app: &TestApp, key: &str, users: &[(&str, &str, &str)]) {
    let time = app.clock.now().to_rfc3339();
    let attributes: Vec<Value> = users
        .iter()
        .map(|(id, name, plan)| json!({ "external_id": id, "first_name": name, "plan": plan }))
        .collect();
    let events: Vec<Value> = users
        .iter()
        .map(|(id, _, _)| {
            json!({ "external_id": id, "name": "signup", "time": time, "properties": { "source": format!("ad-{id}") } })
        })
        .collect();
    track(
        app,
        key,
        json!({ "attributes": attributes, "events": events }),
    )
    .await;
}

fn welcome(user: &str, name: &str) -> (String, Value) {
    (
        "/welcome".into(),
        json!({ "step": "welcome", "user": user, "name": name, "source": format!("ad-{user}") }),
    )
}

#[tokio::test]
async fn an_action_based_canvas_welcomes_waits_a_minute_splits_on_plan_and_keeps_users_in_flight_on_their_version()
 {
    for (app, key) in app_with_key().await {
        let (base, mut rx) = path_receiver().await;
        let id = launched(&app, &key, onboarding(&base)).await;

        sign_up(&app, &key, &[("ada", "Ada", "pro"), ("bob", "Bob", "free")]).await;
        assert_eq!(
            arrivals_by_user(&mut rx, 2).await,
            vec![welcome("ada", "Ada"), welcome("bob", "Bob")]
        );
        until_step_entered(&app, &key, &id, "wait", 2).await;

        // 59 seconds on, nobody has left the Delay: the engine pass that sends a new user's
        // welcome at that time would have moved them on as well.
        app.clock.advance(chrono::Duration::seconds(59));
        sign_up(&app, &key, &[("cyd", "Cyd", "free")]).await;
        assert_eq!(
            arrivals_by_user(&mut rx, 1).await,
            vec![welcome("cyd", "Cyd")]
        );
        for step in ["split", "a", "b"] {
            assert_eq!(step_entered(&app, &key, &id, step).await, 0, "{step}");
        }

        // At 60 seconds each user gets exactly the message of their plan.
        app.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            arrivals_by_user(&mut rx, 2).await,
            vec![
                (
                    "/a".into(),
                    json!({ "step": "a", "user": "ada", "plan": "pro" })
                ),
                (
                    "/b".into(),
                    json!({ "step": "b", "version": 1, "user": "bob", "plan": "free" })
                ),
            ]
        );

        // A live edit of Message B while Cyd sits in the Delay: a new version for new entries.
        let (_, found) = get(&app, &key, &format!("/v1/canvases/{id}")).await;
        assert_eq!(found["canvas"]["live_version"], 1, "{found}");
        let mut definition = found["canvas"]["draft"].clone();
        let b = definition["steps"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|s| s["id"] == "b")
            .unwrap();
        b["message"] = webhook(
            &format!("{base}/b-v2"),
            r#"{"step": "b", "version": 2, "user": "{{${user_id}}}", "plan": "{{custom_attribute.${plan}}}"}"#,
        );
        let edit = json!({
            "name": "Onboarding",
            "definition": definition,
            "version": found["canvas"]["version"],
        });
        let (status, saved) = put(&app, &key, &format!("/v1/canvases/{id}"), edit.clone()).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["canvas"]["live_version"], 2, "{saved}");
        assert_eq!(saved["canvas"]["status"], "active");
        // The same edit again carries a version that is no longer the Canvas's.
        let (status, stale) = put(&app, &key, &format!("/v1/canvases/{id}"), edit).await;
        assert_eq!(status, StatusCode::CONFLICT, "{stale}");
        assert!(
            stale["errors"][0].as_str().unwrap().starts_with("version:"),
            "{stale}"
        );
        let (_, found) = get(&app, &key, &format!("/v1/canvases/{id}")).await;
        assert_eq!(found["canvas"]["version"], saved["canvas"]["version"]);
        assert_eq!(found["canvas"]["live_version"], 2);

        // Dee signs up after the edit; when the minute is up Cyd gets the old B, Dee the new.
        sign_up(&app, &key, &[("dee", "Dee", "free")]).await;
        assert_eq!(
            arrivals_by_user(&mut rx, 1).await,
            vec![welcome("dee", "Dee")]
        );
        app.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(
            arrivals_by_user(&mut rx, 2).await,
            vec![
                (
                    "/b".into(),
                    json!({ "step": "b", "version": 1, "user": "cyd", "plan": "free" })
                ),
                (
                    "/b-v2".into(),
                    json!({ "step": "b", "version": 2, "user": "dee", "plan": "free" })
                ),
            ]
        );
        nothing_arrives(&mut rx).await;
        assert_eq!(step_entered(&app, &key, &id, "a").await, 1);
        assert_eq!(step_entered(&app, &key, &id, "b").await, 3);
    }
}

#[tokio::test]
async fn a_canvas_is_stopped_archived_unarchived_resumed_and_duplicated_over_the_management_api() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [{"external_id": "u1", "first_name": "Ada"}]}),
        )
        .await;
        let id = launched(&app, &key, api_canvas(&url)).await;
        let act = |action: &'static str| {
            let (app, key, id) = (&app, &key, &id);
            async move { post(app, key, &format!("/v1/canvases/{id}/{action}"), json!({})).await }
        };
        let trigger = |coupon: &'static str| {
            let (app, key, id) = (&app, &key, &id);
            async move {
                post(
                    app,
                    key,
                    "/canvas/trigger/send",
                    json!({
                        "canvas_id": id,
                        "recipients": [{ "external_user_id": "u1", "context": { "coupon": coupon } }]
                    }),
                )
                .await
            }
        };

        let (status, stopped) = act("stop").await;
        assert_eq!(status, StatusCode::OK, "{stopped}");
        assert_eq!(stopped["canvas"]["status"], "stopped");
        assert!(stopped["canvas"]["stopped_at"].is_string(), "{stopped}");
        let (status, answer) = trigger("WHILE-STOPPED").await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert!(
            answer["notice"].as_str().unwrap().contains("stopped"),
            "{answer}"
        );

        let (status, archived) = act("archive").await;
        assert_eq!(status, StatusCode::OK, "{archived}");
        assert_eq!(archived["canvas"]["status"], "archived");
        let (status, answer) = trigger("WHILE-ARCHIVED").await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["message"], "success");
        assert!(
            answer["notice"].as_str().unwrap().contains("archived"),
            "{answer}"
        );
        let (_, listed) = get(&app, &key, "/v1/canvases").await;
        assert_eq!(listed["canvases"].as_array().unwrap().len(), 0, "{listed}");
        let (_, listed) = get(&app, &key, "/v1/canvases?include_archived=true").await;
        assert_eq!(listed["canvases"][0]["id"], id.as_str(), "{listed}");
        let (status, answer) =
            put(&app, &key, &format!("/v1/canvases/{id}"), api_canvas(&url)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

        let (status, unarchived) = act("unarchive").await;
        assert_eq!(status, StatusCode::OK, "{unarchived}");
        assert_eq!(unarchived["canvas"]["status"], "stopped");
        let (status, answer) = act("unarchive").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let (status, resumed) = act("resume").await;
        assert_eq!(status, StatusCode::OK, "{resumed}");
        assert_eq!(resumed["canvas"]["status"], "active");

        // A user enters once: had a call made while stopped or archived let Ada in, this one
        // would be skipped and the webhook would carry the earlier coupon.
        let (status, answer) = trigger("LIVE").await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert!(answer.get("notice").is_none(), "{answer}");
        assert_eq!(next(&mut rx).await["coupon"], "LIVE");
        assert_eq!(entries(&app, &key, &id).await, 1);

        let (status, copy) = act("duplicate").await;
        assert_eq!(status, StatusCode::OK, "{copy}");
        let copy = &copy["canvas"];
        assert_ne!(copy["id"], id.as_str());
        assert_eq!(copy["name"], "Copy of Coupons");
        assert_eq!(copy["status"], "draft");
        assert!(copy["live_version"].is_null(), "{copy}");
        assert_eq!(copy["draft"]["steps"][0]["id"], "hello");
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({ "canvas_id": copy["id"], "recipients": [{ "external_user_id": "u1" }] }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["message"], "Invalid Canvas ID");
        let (status, _) = act("explode").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        nothing_arrives(&mut rx).await;
    }
}

#[tokio::test]
async fn the_canvas_endpoints_answer_403_without_their_permission() {
    for (app, key) in app_with_key().await {
        let (url, _rx) = receiver().await;
        let id = launched(&app, &key, api_canvas(&url)).await;
        let (_, me) = get(&app, &key, "/v1/workspace").await;
        let ws = domain::WorkspaceId::from_db(me["workspace"]["id"].as_str().unwrap().to_string());
        // A key for the Braze exports only.
        let narrow = app.api_key(&ws, &["canvas.list"], "").await;
        let (status, listed) = get(&app, &narrow, "/canvas/list").await;
        assert_eq!(status, StatusCode::OK, "{listed}");

        let trigger = json!({ "canvas_id": id, "broadcast": true });
        let schedule = json!({ "canvas_id": id, "broadcast": true, "schedule": { "time": (app.clock.now() + chrono::Duration::hours(1)).to_rfc3339() } });
        let calls: Vec<(reqwest::Method, String, Option<Value>, &str)> = vec![
            (
                reqwest::Method::GET,
                "/v1/canvases".into(),
                None,
                "herald.manage",
            ),
            (
                reqwest::Method::POST,
                "/v1/canvases".into(),
                Some(api_canvas(&url)),
                "herald.manage",
            ),
            (
                reqwest::Method::GET,
                format!("/v1/canvases/{id}"),
                None,
                "herald.manage",
            ),
            (
                reqwest::Method::PUT,
                format!("/v1/canvases/{id}"),
                Some(api_canvas(&url)),
                "herald.manage",
            ),
            (
                reqwest::Method::GET,
                format!("/v1/canvases/{id}/stats"),
                None,
                "herald.manage",
            ),
            (
                reqwest::Method::POST,
                "/canvas/trigger/send".into(),
                Some(trigger),
                "canvas.trigger.send",
            ),
            (
                reqwest::Method::POST,
                "/canvas/trigger/schedule/create".into(),
                Some(schedule),
                "canvas.trigger.schedule.create",
            ),
            (
                reqwest::Method::POST,
                "/canvas/trigger/schedule/update".into(),
                Some(json!({})),
                "canvas.trigger.schedule.update",
            ),
            (
                reqwest::Method::POST,
                "/canvas/trigger/schedule/delete".into(),
                Some(json!({})),
                "canvas.trigger.schedule.delete",
            ),
            (
                reqwest::Method::GET,
                format!("/canvas/details?canvas_id={id}"),
                None,
                "canvas.details",
            ),
            (
                reqwest::Method::GET,
                format!("/canvas/data_series?canvas_id={id}&length=7"),
                None,
                "canvas.data_series",
            ),
        ];
        let calls = calls
            .into_iter()
            .chain(["stop", "pause", "archive", "duplicate"].map(|action| {
                (
                    reqwest::Method::POST,
                    format!("/v1/canvases/{id}/{action}"),
                    Some(json!({})),
                    "herald.manage",
                )
            }));
        for (method, path, body, permission) in calls {
            let (status, answer) = app.api(&narrow, method.clone(), &path, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(permission),
                "{method} {path}: {answer}"
            );
        }
        // Nothing was changed or entered by the refused calls.
        let (_, found) = get(&app, &key, &format!("/v1/canvases/{id}")).await;
        assert_eq!(found["canvas"]["status"], "active");
        let (_, listed) = get(&app, &key, "/v1/canvases?include_archived=true").await;
        assert_eq!(listed["canvases"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(entries(&app, &key, &id).await, 0);
    }
}

/// An API-triggered Canvas whose entry audience is the users with plan `pro`.
fn pro_only(url: &str) -> Value {
    json!({
        "name": "Pro perks",
        "definition": {
            "entry": { "type": "api" },
            "audience": { "filter": { "kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro" } },
            "variants": [{ "name": "Main", "percent": 100, "first_step": "perk" }],
            "steps": [{
                "id": "perk",
                "name": "Perk webhook",
                "type": "message",
                "message": webhook(url, r#"{"to": "{{${first_name}}}", "plan": "{{custom_attribute.${plan}}}", "shop": "{{context.${shop}}}"}"#)
            }]
        }
    })
}

#[tokio::test]
async fn canvas_trigger_send_broadcasts_to_the_entry_audience_and_applies_recipient_attributes_before_entry()
 {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [
                {"external_id": "ada", "first_name": "Ada", "plan": "pro"},
                {"external_id": "bob", "first_name": "Bob", "plan": "free"},
                {"external_id": "cyd", "first_name": "Cyd", "plan": "pro"},
                {"external_id": "dan", "first_name": "Dan", "plan": "free"},
                {"external_id": "fay", "first_name": "Fay", "plan": "free"}
            ]}),
        )
        .await;
        let id = launched(&app, &key, pro_only(&url)).await;
        let by_name = |mut bodies: Vec<Value>| {
            bodies.sort_by_key(|b| b["to"].as_str().unwrap_or_default().to_string());
            bodies
        };

        // broadcast: true enters the whole entry audience (the pro users), with the context.
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({ "canvas_id": id, "broadcast": true, "context": { "shop": "Paris" } }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(entries(&app, &key, &id).await, 2);
        assert_eq!(
            by_name(vec![next(&mut rx).await, next(&mut rx).await]),
            vec![
                json!({"to": "Ada", "plan": "pro", "shop": "Paris"}),
                json!({"to": "Cyd", "plan": "pro", "shop": "Paris"}),
            ]
        );

        // Listed recipients' attributes are applied before the entry audience is checked: Dan
        // turns pro and enters under his new name, Eve is created and enters, Fay (free) does
        // not.
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({
                "canvas_id": id,
                "context": { "shop": "Lyon" },
                "recipients": [
                    { "external_user_id": "dan", "attributes": { "plan": "pro", "first_name": "Daniel" } },
                    { "external_user_id": "eve", "send_to_existing_only": false,
                      "attributes": { "plan": "pro", "first_name": "Eve" } },
                    { "external_user_id": "fay" }
                ]
            }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(entries(&app, &key, &id).await, 4);
        assert_eq!(
            by_name(vec![next(&mut rx).await, next(&mut rx).await]),
            vec![
                json!({"to": "Daniel", "plan": "pro", "shop": "Lyon"}),
                json!({"to": "Eve", "plan": "pro", "shop": "Lyon"}),
            ]
        );

        // Braze's limit of 50 listed recipients, and no recipients with broadcast.
        let too_many: Vec<Value> = (0..51)
            .map(|i| json!({ "external_user_id": format!("u{i}") }))
            .collect();
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({ "canvas_id": id, "recipients": too_many }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            answer["message"],
            "The max number of external_ids and aliases per request was exceeded"
        );
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/send",
            json!({ "canvas_id": id, "broadcast": true, "recipients": [{ "external_user_id": "bob" }] }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["errors"][0].as_str().unwrap().contains("broadcast"),
            "{answer}"
        );
        assert_eq!(entries(&app, &key, &id).await, 4);
        nothing_arrives(&mut rx).await;
    }
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// The schedule ids `/messages/scheduled_broadcasts` lists up to `until`, soonest first, after
/// checking each is a Canvas trigger of `canvas` whose `in_local_time` is `local`.
async fn listed_schedules(
    app: &TestApp,
    key: &str,
    until: chrono::DateTime<chrono::Utc>,
    canvas: &str,
    local: bool,
) -> Vec<String> {
    scheduled_broadcasts(app, key, until)
        .await
        .iter()
        .map(|item| {
            assert_eq!(item["type"], "canvas_trigger", "{item}");
            assert_eq!(item["canvas_api_identifier"], canvas, "{item}");
            assert_eq!(item["in_local_time"], local, "{item}");
            item["schedule_id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn canvas_trigger_schedules_are_created_changed_and_cancelled() {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [
                {"external_id": "u1", "first_name": "Ada"},
                {"external_id": "u2", "first_name": "Bob"},
                {"external_id": "u3", "first_name": "Cyd"}
            ]}),
        )
        .await;
        let id = launched(&app, &key, api_canvas(&url)).await;
        let now = app.clock.now();
        let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
        let entry = |user: &str, coupon: &str, minutes: i64| {
            json!({
                "canvas_id": id,
                "recipients": [{ "external_user_id": user, "context": { "coupon": coupon } }],
                "schedule": { "time": at(minutes) }
            })
        };
        let mut ids = Vec::new();
        for (user, coupon, minutes) in [
            ("u1", "FIRST", 30),
            ("u2", "NEVER", 40),
            ("u3", "EARLY", 44),
        ] {
            let (status, created) = post(
                &app,
                &key,
                "/canvas/trigger/schedule/create",
                entry(user, coupon, minutes),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{created}");
            assert!(created["dispatch_id"].is_string(), "{created}");
            ids.push(created["schedule_id"].as_str().unwrap().to_string());
        }
        let until = now + chrono::Duration::hours(1);
        assert_eq!(listed_schedules(&app, &key, until, &id, false).await, ids);

        // Ada's entry moves to 50 minutes, with a new coupon; Bob's is cancelled.
        let mut change = entry("u1", "CHANGED", 50);
        change["schedule_id"] = ids[0].clone().into();
        let (status, answer) = post(&app, &key, "/canvas/trigger/schedule/update", change).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["schedule_id"], ids[0].as_str());
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/schedule/update",
            json!({ "schedule_id": ids[0] }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        for _ in 0..2 {
            // Cancelling twice is fine.
            let (status, answer) = post(
                &app,
                &key,
                "/canvas/trigger/schedule/delete",
                json!({ "schedule_id": ids[1] }),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/schedule/update",
            json!({ "schedule_id": ids[1], "schedule": { "time": at(55) } }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            listed_schedules(&app, &key, until, &id, false).await,
            vec![ids[2].clone(), ids[0].clone()]
        );
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/schedule/create",
            entry("u1", "LATE", -5),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

        // At 45 minutes only Cyd's entry is due; the pass that carries it out would have
        // carried out Ada's old time and Bob's cancelled one as well.
        app.clock.advance(chrono::Duration::minutes(45));
        let arrived = next(&mut rx).await;
        assert_eq!(
            (&arrived["to"], &arrived["coupon"]),
            (&json!("Cyd"), &json!("EARLY"))
        );
        assert_eq!(entries(&app, &key, &id).await, 1);

        app.clock.advance(chrono::Duration::minutes(10));
        let arrived = next(&mut rx).await;
        assert_eq!(
            (&arrived["to"], &arrived["coupon"]),
            (&json!("Ada"), &json!("CHANGED"))
        );
        assert_eq!(entries(&app, &key, &id).await, 2);
        assert!(
            listed_schedules(&app, &key, until, &id, false)
                .await
                .is_empty()
        );
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/schedule/delete",
            json!({ "schedule_id": ids[0] }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["errors"][0]
                .as_str()
                .unwrap()
                .contains("already sent"),
            "{answer}"
        );
        nothing_arrives(&mut rx).await;
    }
}

/// Waits (up to 20 s) until the Canvas counts `n` entries.
async fn until_entries(app: &TestApp, key: &str, id: &str, n: u64) {
    for _ in 0..400 {
        if entries(app, key, id).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Canvas never counted {n} entries");
}

#[tokio::test]
async fn canvas_trigger_schedules_in_local_time_send_each_user_the_first_step_at_their_own_wall_time()
 {
    for (app, key) in app_with_key().await {
        let (url, mut rx) = receiver().await;
        track(
            &app,
            &key,
            json!({"attributes": [
                {"external_id": "u1", "first_name": "Ada", "time_zone": "Asia/Tokyo"},
                {"external_id": "u2", "first_name": "Bob", "time_zone": "America/Bogota"},
                {"external_id": "u3", "first_name": "Cyd"}
            ]}),
        )
        .await;
        // Users without a zone read wall times in the Canvas's: Kolkata, UTC+5:30 (none of these
        // zones has summer time).
        let mut definition = api_canvas(&url);
        definition["definition"]["settings"] = json!({ "time_zone": "Asia/Kolkata" });
        let id = launched(&app, &key, definition).await;
        let now = app.clock.now();
        // A wall time 20 hours ahead when read as UTC, given without an offset (Braze).
        let wall = (now + chrono::Duration::hours(20)).naive_utc();
        let wall_text = wall.format("%Y-%m-%dT%H:%M:%S").to_string();
        let wall = wall.and_utc().with_nanosecond(0).unwrap();
        let recipient = |user: &str, coupon: &str| json!({ "external_user_id": user, "context": { "coupon": coupon } });
        let (status, created) = post(
            &app,
            &key,
            "/canvas/trigger/schedule/create",
            json!({
                "canvas_id": id,
                "recipients": [recipient("u1", "ADA"), recipient("u2", "BOB"), recipient("u3", "CYD")],
                "canvas_entry_properties": { "shop": "Lyon" },
                "schedule": { "time": wall_text, "in_local_time": true }
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let schedule_id = created["schedule_id"].as_str().unwrap().to_string();
        // Changing it keeps it in local time.
        let (status, answer) = post(
            &app,
            &key,
            "/canvas/trigger/schedule/update",
            json!({ "schedule_id": schedule_id, "schedule": { "time": wall_text, "in_local_time": true } }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let until = now + chrono::Duration::days(1);
        assert_eq!(
            listed_schedules(&app, &key, until, &id, true).await,
            vec![schedule_id.clone()]
        );

        // Each user's wall time in UTC, as an offset from the clock's start.
        let at = |utc: chrono::DateTime<chrono::Utc>| utc - now;
        let first_zone = at(wall - chrono::Duration::hours(14));
        let tokyo = at(wall - chrono::Duration::hours(9));
        let kolkata = at(wall - chrono::Duration::minutes(330));
        let bogota = at(wall + chrono::Duration::hours(5));
        let minute = chrono::Duration::minutes(1);
        let mut elapsed = chrono::Duration::zero();
        let mut advance_to = |to: chrono::Duration| {
            app.clock.advance(to - elapsed);
            elapsed = to;
        };

        // Before the wall time comes anywhere, no one enters.
        advance_to(first_zone - minute);
        nothing_arrives(&mut rx).await;
        assert_eq!(entries(&app, &key, &id).await, 0);
        // When it comes in the first zone (UTC+14), all three enter, and nothing is sent yet.
        advance_to(first_zone);
        until_entries(&app, &key, &id, 3).await;
        nothing_arrives(&mut rx).await;

        for (due, name, coupon) in [
            (tokyo, "Ada", "ADA"),
            (kolkata, "Cyd", "CYD"),
            (bogota, "Bob", "BOB"),
        ] {
            advance_to(due - minute);
            nothing_arrives(&mut rx).await;
            advance_to(due);
            let arrived = next(&mut rx).await;
            assert_eq!(
                (&arrived["to"], &arrived["coupon"], &arrived["shop"]),
                (&json!(name), &json!(coupon), &json!("Lyon")),
                "{arrived}"
            );
        }
        nothing_arrives(&mut rx).await;
        assert_eq!(entries(&app, &key, &id).await, 3);
        assert!(
            listed_schedules(&app, &key, until, &id, true)
                .await
                .is_empty()
        );
    }
}

/// What `/messages/scheduled_broadcasts` lists up to `until`.
async fn scheduled_broadcasts(
    app: &TestApp,
    key: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let (status, listed) = get(
        app,
        key,
        &format!(
            "/messages/scheduled_broadcasts?end_time={}",
            urlencode(&until.to_rfc3339())
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["scheduled_broadcasts"].as_array().unwrap().clone()
}

/// The Canvas items `/messages/scheduled_broadcasts` lists up to `until`.
async fn listed_canvases(
    app: &TestApp,
    key: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    scheduled_broadcasts(app, key, until)
        .await
        .into_iter()
        .filter(|item| item["type"] == "Canvas")
        .collect()
}

#[tokio::test]
async fn a_scheduled_canvas_lists_its_next_entry_among_the_scheduled_broadcasts_while_active() {
    for (app, key) in app_with_key().await {
        let now = app.clock.now();
        let starts_on = (now + chrono::Duration::days(1)).date_naive();
        let mut definition = api_canvas("https://hooks.example.com/coupon");
        definition["tags"] = json!(["winter"]);
        definition["definition"]["entry"] = json!({
            "type": "scheduled",
            "schedule": {
                "kind": "at",
                "starts_on": starts_on.to_string(),
                "time": "09:00:00",
                "recurrence": { "kind": "daily", "every": 1 },
                "time_zone": "UTC"
            }
        });
        let id = launched(&app, &key, definition).await;
        let due = starts_on
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc()
            .to_rfc3339();

        let listed = listed_canvases(&app, &key, now + chrono::Duration::days(3)).await;
        assert_eq!(
            listed.len(),
            1,
            "one item per Canvas, its next entry: {listed:?}"
        );
        assert_eq!(listed[0]["canvas_api_identifier"], id.as_str());
        assert_eq!(listed[0]["name"], "Coupons");
        assert_eq!(listed[0]["time"], due.as_str());
        assert_eq!(listed[0]["tags"], json!(["winter"]));
        assert!(
            listed_canvases(&app, &key, now + chrono::Duration::hours(1))
                .await
                .is_empty(),
            "not due by then"
        );

        let (status, answer) =
            post(&app, &key, &format!("/v1/canvases/{id}/pause"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(
            listed_canvases(&app, &key, now + chrono::Duration::days(3))
                .await
                .is_empty(),
            "a paused Canvas lets no one in"
        );
    }
}
