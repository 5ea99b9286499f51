//! Braze's `/messages/send` with a webhook object, delivered by the running engine to a local
//! receiver.

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use common::{TestApp, spawn_app_with};
use migrations::testing::test_databases;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A local webhook receiver that hands every request body to the test as it arrives.
async fn receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let app = Router::new()
        .fallback(
            |State(tx): State<mpsc::UnboundedSender<String>>, body: String| async move {
                let _ = tx.send(body);
                "ok"
            },
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> Value {
    let body = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a webhook arrives")
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

async fn post(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}/api/messages/send", app.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn webhook(url: &str) -> Value {
    json!({ "webhook": {
        "url": url,
        "request_method": "POST",
        "request_headers": { "Content-Type": "application/json" },
        "body": "{\"hello\": \"{{${first_name} | default: 'friend'}}\", \"dispatch\": \"{{campaign.${dispatch_id}}}\"}"
    }})
}

#[tokio::test]
async fn messages_send_personalises_a_webhook_for_each_listed_user() {
    for db in test_databases().await {
        let app = spawn_app_with(db, |c| {
            c.allow_private_cidrs = vec!["127.0.0.0/8".parse().unwrap()]
        })
        .await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app
            .api_key(&ws, &["messages.send", "users.track"], "")
            .await;
        let (url, mut arrivals) = receiver().await;
        let track = json!({"attributes": [
            {"external_id": "u1", "first_name": "Ada"},
            {"external_id": "u2", "first_name": "Bob"}
        ]});
        app.client
            .post(format!("{}/api/users/track", app.base))
            .bearer_auth(&key)
            .json(&track)
            .send()
            .await
            .unwrap();

        let (status, answer) = post(
            &app,
            &key,
            json!({"external_user_ids": ["u1", "u2", "ghost"], "messages": webhook(&url)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let dispatch = answer["dispatch_id"].as_str().unwrap().to_string();
        assert!(answer["errors"][0].as_str().unwrap().contains("ghost"));
        let mut greeted = [next(&mut arrivals).await, next(&mut arrivals).await];
        greeted.sort_by_key(|b| b["hello"].as_str().unwrap().to_string());
        assert_eq!(greeted[0], json!({"hello": "Ada", "dispatch": dispatch}));
        assert_eq!(greeted[1], json!({"hello": "Bob", "dispatch": dispatch}));
    }
}

#[tokio::test]
async fn messages_send_broadcasts_to_a_segment_only_when_asked_to() {
    for db in test_databases().await {
        let app = spawn_app_with(db, |c| {
            c.allow_private_cidrs = vec!["127.0.0.0/8".parse().unwrap()]
        })
        .await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app
            .api_key(&ws, &["messages.send", "users.track"], "")
            .await;
        let (url, mut arrivals) = receiver().await;
        let track = json!({"attributes": [
            {"external_id": "p1", "first_name": "Pro", "plan": "pro"},
            {"external_id": "f1", "first_name": "Free", "plan": "free"}
        ]});
        app.client
            .post(format!("{}/api/users/track", app.base))
            .bearer_auth(&key)
            .json(&track)
            .send()
            .await
            .unwrap();
        let filter: domain::segment::Filter = serde_json::from_value(
            json!({"kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro"}),
        )
        .unwrap();
        let segment = domain::segment::create(&app.db, &ws, "Pro", "", &filter, chrono::Utc::now())
            .await
            .unwrap();

        let (status, answer) = post(
            &app,
            &key,
            json!({"segment_id": segment.id, "messages": webhook(&url)}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer.to_string().contains("broadcast"), "{answer}");

        let (status, _) = post(
            &app,
            &key,
            json!({"segment_id": segment.id, "broadcast": true, "messages": webhook(&url)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(next(&mut arrivals).await["hello"], "Pro");

        let audience = json!({"AND": [{"custom_attribute": {"custom_attribute_name": "plan", "comparison": "equals", "value": "free"}}]});
        let (status, _) = post(
            &app,
            &key,
            json!({"audience": audience, "broadcast": true, "messages": webhook(&url)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(next(&mut arrivals).await["hello"], "Free");
        assert!(
            arrivals.try_recv().is_err(),
            "nobody else was sent anything"
        );
    }
}

#[tokio::test]
async fn messages_send_answers_brazes_errors() {
    for db in test_databases().await {
        let app = spawn_app_with(db, |_| {}).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app.api_key(&ws, &["messages.send"], "").await;
        let other = app.api_key(&ws, &["users.track"], "").await;
        let url = "https://example.com/hook";

        let (status, answer) = post(&app, &key, json!({"external_user_ids": ["u1"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer.to_string().contains("No message to send"),
            "{answer}"
        );
        let (status, answer) = post(&app, &key, json!({"messages": webhook(url)})).await;
        assert_eq!(
            (status, answer["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("No Recipients"))
        );
        let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
        let (status, answer) = post(
            &app,
            &key,
            json!({"external_user_ids": many, "messages": webhook(url)}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer.to_string().contains("max number of external_ids"),
            "{answer}"
        );
        let (status, answer) = post(
            &app,
            &key,
            json!({"external_user_ids": ["u1"], "messages": {"webhook": {"url": "ftp://x"}}}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer.to_string().contains("url"), "{answer}");
        let (status, _) = post(
            &app,
            &other,
            json!({"external_user_ids": ["u1"], "messages": webhook(url)}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
