//! Braze's user-data endpoints over HTTP, as a Braze client library would call them.

mod common;

use common::spawn_app;
use migrations::testing::test_databases;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post(app: &common::TestApp, path: &str, key: &str, body: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}/api{path}", app.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn users_track_stores_attributes_events_and_purchases_and_reports_bad_items() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app
            .api_key(&ws, &["users.track", "users.export.ids", "events.list"], "")
            .await;
        let body = json!({
            "attributes": [
                {"external_id": "u1", "first_name": "Ada", "plan": "pro", "visits": {"inc": 2}},
                {"first_name": "nobody"}
            ],
            "events": [{"external_id": "u1", "name": "checkout", "time": "2026-11-28T09:00:00Z", "properties": {"total": 42}}],
            "purchases": [{"external_id": "u1", "product_id": "book", "currency": "EUR", "price": 12.5, "time": "2026-11-28T09:01:00Z"}]
        });
        let (status, answer) = post(&app, "/users/track", &key, &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["message"], "success");
        assert_eq!(answer["attributes_processed"], 1);
        assert_eq!(answer["events_processed"], 1);
        assert_eq!(answer["purchases_processed"], 1);
        assert_eq!(answer["errors"][0]["input_array"], "attributes");
        assert_eq!(answer["errors"][0]["index"], 1);

        let (status, exported) = post(
            &app,
            "/users/export/ids",
            &key,
            r#"{"external_ids":["u1"]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{exported}");
        let user = &exported["users"][0];
        assert_eq!(user["first_name"], "Ada");
        assert_eq!(user["custom_attributes"]["plan"], "pro");
        assert_eq!(user["custom_attributes"]["visits"], 2);

        let events: Value = app
            .api_get("/events/list", Some(&key))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(events["events"], json!(["checkout"]));
    }
}

#[tokio::test]
async fn malformed_or_oversized_requests_get_a_400_that_says_why() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app.api_key(&ws, &["users.track"], "").await;
        let (status, answer) = post(&app, "/users/track", &key, r#"{"attributes": [}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["errors"][0]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{answer}"
        );

        let many: Vec<Value> = (0..76)
            .map(|i| json!({"external_id": format!("u{i}"), "x": 1}))
            .collect();
        let (status, answer) = post(
            &app,
            "/users/track",
            &key,
            &json!({ "attributes": many }).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.to_string().contains("75"), "{answer}");
    }
}

#[tokio::test]
async fn user_endpoints_need_their_permission_and_stay_in_the_keys_workspace() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, a) = app.account_with_workspace("ada@example.com", "A").await;
        let (_, b) = app.account_with_workspace("bob@example.com", "B").await;
        let reader = app.api_key(&a, &["users.export.ids"], "").await;
        let (status, _) = post(&app, "/users/track", &reader, r#"{"attributes":[]}"#).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let tracker_b = app.api_key(&b, &["users.track", "users.delete"], "").await;
        let (status, _) = post(
            &app,
            "/users/track",
            &tracker_b,
            r#"{"attributes":[{"external_id":"shared","plan":"b-only"}]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, exported) = post(
            &app,
            "/users/export/ids",
            &reader,
            r#"{"external_ids":["shared"]}"#,
        )
        .await;
        assert_eq!(
            exported["users"],
            json!([]),
            "workspace A sees nothing of B's users: {exported}"
        );
        assert_eq!(exported["invalid_user_ids"], json!(["shared"]));

        let (status, deleted) = post(
            &app,
            "/users/delete",
            &tracker_b,
            r#"{"external_ids":["shared"]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(deleted["deleted"], 1);
    }
}

#[tokio::test]
async fn concurrent_calls_creating_the_same_new_users_all_succeed() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app
            .api_key(&ws, &["users.track", "users.export.ids"], "")
            .await;
        let body = json!({"events": (0..20).map(|i| json!({
            "external_id": format!("new-{i}"), "name": "signup", "time": "2026-11-28T09:00:00Z"
        })).collect::<Vec<_>>()})
        .to_string();
        let calls = (0..6).map(|_| post(&app, "/users/track", &key, &body));
        for (status, answer) in futures_join(calls).await {
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["events_processed"], 20);
        }
        let (_, exported) = post(
            &app,
            "/users/export/ids",
            &key,
            r#"{"external_ids":["new-0","new-19"]}"#,
        )
        .await;
        assert_eq!(exported["users"].as_array().unwrap().len(), 2);
    }
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut outputs = Vec::new();
    let handles: Vec<_> = futures.collect();
    // Poll them together so the requests really overlap.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, future) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => done[i] = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.extend(done.into_iter().map(|o| o.expect("every call finished")));
    outputs
}

/// `/segments/details` counts the segment's members, also on a SQLite file, where sizes are
/// counted through the server's read-only connection rather than the writing one: the count
/// sees what `/users/track` has just committed.
#[tokio::test]
async fn segment_details_count_what_was_just_tracked_also_through_the_reader_of_a_file() {
    let mut dbs = test_databases().await;
    dbs.push(migrations::testing::fresh_sqlite_file().await);
    for db in dbs {
        let app = spawn_app(db.clone()).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app
            .api_key(&ws, &["users.track", "segments.details"], "")
            .await;
        let filter: domain::segment::Filter = serde_json::from_value(json!({
            "kind": "attribute", "name": "plan", "custom": true,
            "comparison": "equals", "value": "pro"
        }))
        .unwrap();
        let segment =
            domain::segment::create(&db, &ws, "Pro users", "", &filter, chrono::Utc::now())
                .await
                .unwrap();
        let size = || async {
            let response = app
                .client
                .get(format!(
                    "{}/api/segments/details?segment_id={}",
                    app.base, segment.id
                ))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()["size"].clone()
        };
        assert_eq!(size().await, json!(0));
        let attributes: Vec<Value> = ["ann", "bob", "cyd"]
            .iter()
            .zip(["pro", "free", "pro"])
            .map(|(id, plan)| json!({"external_id": id, "plan": plan}))
            .collect();
        let body = json!({ "attributes": attributes }).to_string();
        let (status, answer) = post(&app, "/users/track", &key, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(size().await, json!(2));
    }
}
