//! Herald over HTTP: sessions, origin checks, workspace isolation, API keys and rate limits. Every
//! test runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.

mod common;

use common::{session_cookie, spawn_app, spawn_app_with};
use domain::Role;
use migrations::testing::test_databases;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness_answer() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let health = app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let ready = app
            .client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(ready.headers()["x-frame-options"], "DENY");
        assert_eq!(ready.headers()["referrer-policy"], "same-origin");
    }
}

#[tokio::test]
async fn the_owner_is_created_once_and_signed_in_with_a_safe_cookie() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let form = [
            ("email", "owner@example.com"),
            ("password", "long enough"),
            ("workspace_name", "Acme"),
        ];
        let created = app.call("create_owner", None, &form).await;
        assert_eq!(created.status(), StatusCode::OK);
        let set_cookie = created
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
        let cookie = session_cookie(&created).unwrap();
        let me: Value = app
            .call("me", Some(&cookie), &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], "owner@example.com");
        assert_eq!(me["workspaces"][0]["name"], "Acme");

        let again = app.call("create_owner", None, &form).await;
        assert_eq!(again.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn signing_in_cycles_the_session_id_and_signing_out_ends_the_session() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        app.account_with_workspace("ada@example.com", "A").await;
        let first = app.sign_in("ada@example.com", "password-123").await;
        let again = app
            .call(
                "sign_in",
                Some(&first),
                &[("email", "ada@example.com"), ("password", "password-123")],
            )
            .await;
        let second = session_cookie(&again).expect("a new cookie");
        assert_ne!(first, second, "the session id changes at sign-in");
        assert_eq!(
            app.call("me", Some(&first), &[]).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.call("me", Some(&second), &[]).await.status(),
            StatusCode::OK
        );
        app.call("sign_out", Some(&second), &[]).await;
        assert_eq!(
            app.call("me", Some(&second), &[]).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_then_throttled() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        app.account_with_workspace("ada@example.com", "A").await;
        let wrong = [("email", "ada@example.com"), ("password", "wrong-password")];
        for _ in 0..domain::account::MAX_FAILED_SIGN_INS {
            let response = app.call("sign_in", None, &wrong).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("wrong email or password")
            );
        }
        let right = [("email", "ada@example.com"), ("password", "password-123")];
        let throttled = app.call("sign_in", None, &right).await;
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            throttled
                .text()
                .await
                .unwrap()
                .contains("too many failed sign-ins")
        );
    }
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    for db in test_databases().await {
        let app = spawn_app(db.clone()).await;
        app.account_with_workspace("ada@example.com", "A").await;
        let cookie = app.sign_in("ada@example.com", "password-123").await;
        drop(app);
        let restarted = spawn_app(db).await;
        assert_eq!(
            restarted.call("me", Some(&cookie), &[]).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn cross_origin_form_posts_are_refused() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        app.account_with_workspace("ada@example.com", "A").await;
        let form = [("email", "ada@example.com"), ("password", "password-123")];
        for (name, value) in [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            let response = app.call_with("sign_in", None, &form, headers).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        }
        let mut same = HeaderMap::new();
        same.insert("origin", HeaderValue::from_str(&app.base).unwrap());
        assert_eq!(
            app.call_with("sign_in", None, &form, same).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_member_of_one_workspace_sees_nothing_of_another() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, a) = app.account_with_workspace("ada@example.com", "A").await;
        let (_, b) = app.account_with_workspace("bob@example.com", "B").await;
        let ada = app.sign_in("ada@example.com", "password-123").await;
        for endpoint in [
            "members",
            "api_keys",
            "workspace_details",
            "workspace_shell",
        ] {
            let theirs = app.call(endpoint, Some(&ada), &[("ws", b.as_str())]).await;
            assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "{endpoint}");
            assert!(theirs.text().await.unwrap().contains("workspace not found"));
            let mine = app.call(endpoint, Some(&ada), &[("ws", a.as_str())]).await;
            assert_eq!(mine.status(), StatusCode::OK, "{endpoint}");
        }
        let key = app
            .call(
                "create_api_key",
                Some(&ada),
                &[
                    ("ws", b.as_str()),
                    ("name", "x"),
                    ("permissions[]", "users.track"),
                ],
            )
            .await;
        assert_eq!(key.status(), StatusCode::NOT_FOUND);
        let nobody = app.call("members", None, &[("ws", a.as_str())]).await;
        assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn roles_are_enforced_by_the_server() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        app.add_member(&ws, "vic@example.com", Role::Viewer).await;
        let vic = app.sign_in("vic@example.com", "password-123").await;
        let create = [
            ("ws", ws.as_str()),
            ("name", "x"),
            ("permissions[]", "users.track"),
        ];
        let refused = app.call("create_api_key", Some(&vic), &create).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.text().await.unwrap().contains("only an Admin"));
        let rename = app
            .call(
                "rename_workspace",
                Some(&vic),
                &[("ws", ws.as_str()), ("name", "Mine")],
            )
            .await;
        assert_eq!(rename.status(), StatusCode::FORBIDDEN);
        let read = app
            .call("members", Some(&vic), &[("ws", ws.as_str())])
            .await;
        assert_eq!(read.status(), StatusCode::OK);
        let view: Value = read.json().await.unwrap();
        assert_eq!(view["can_manage"], false);
        assert_eq!(view["invites"], Value::Array(vec![]));
    }
}

#[tokio::test]
async fn forms_report_the_field_that_is_wrong() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, ws) = app.account_with_workspace("ada@example.com", "A").await;
        let ada = app.sign_in("ada@example.com", "password-123").await;
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
        let cases: [Case; 4] = [
            (
                "create_api_key",
                vec![("ws", ws.as_str()), ("name", "k")],
                "permissions: choose at least one",
            ),
            (
                "create_api_key",
                vec![
                    ("ws", ws.as_str()),
                    ("name", "k"),
                    ("permissions[]", "users.track"),
                    ("ip_allowlist", "10.0.0.0/33"),
                ],
                "ip_allowlist:",
            ),
            (
                "create_invite",
                vec![
                    ("ws", ws.as_str()),
                    ("email", "not-an-email"),
                    ("role", "viewer"),
                ],
                "email: is not an email",
            ),
            (
                "add_member",
                vec![
                    ("ws", ws.as_str()),
                    ("email", "x@example.com"),
                    ("role", "owner"),
                ],
                "role: must be",
            ),
        ];
        for (endpoint, form, expected) in cases {
            let response = app.call(endpoint, Some(&ada), &form).await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{endpoint} {form:?}"
            );
            let text = response.text().await.unwrap();
            assert!(text.contains(expected), "{endpoint}: {text}");
        }
    }
}

#[tokio::test]
async fn rest_calls_need_a_valid_key_with_the_right_permission() {
    for db in test_databases().await {
        let app = spawn_app(db).await;
        let (_, a) = app.account_with_workspace("ada@example.com", "A").await;
        let (_, b) = app.account_with_workspace("bob@example.com", "B").await;

        let missing = app.api_get("/v1/workspace", None).await;
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        let body: Value = missing.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Missing API key")
        );
        let unknown = app
            .api_get("/v1/workspace", Some("hrld_not-a-real-key"))
            .await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            unknown.json::<Value>().await.unwrap()["message"],
            "Invalid API key"
        );

        let tracker = app.api_key(&a, &["users.track"], "").await;
        let described: Value = app
            .api_get("/v1/workspace", Some(&tracker))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(described["workspace"]["name"], "A");
        assert_eq!(
            described["api_key"]["permissions"],
            serde_json::json!(["users.track"])
        );
        let denied = app.api_get("/v1/api_keys", Some(&tracker)).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert!(
            denied.json::<Value>().await.unwrap()["message"]
                .as_str()
                .unwrap()
                .contains("herald.manage")
        );

        let manager = app.api_key(&a, &["herald.manage"], "").await;
        let listed: Value = app
            .api_get("/v1/api_keys", Some(&manager))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["api_keys"].as_array().unwrap().len(), 2);
        assert!(
            !listed.to_string().contains(&manager[5..]),
            "secrets are never listed"
        );
        let own = app
            .api_get(&format!("/v1/workspaces/{a}"), Some(&manager))
            .await;
        assert_eq!(own.status(), StatusCode::OK);
        let other = app
            .api_get(&format!("/v1/workspaces/{b}"), Some(&manager))
            .await;
        assert_eq!(other.status(), StatusCode::FORBIDDEN);

        let elsewhere = app.api_key(&a, &["herald.manage"], "203.0.113.0/24").await;
        let blocked = app.api_get("/v1/workspace", Some(&elsewhere)).await;
        assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
        assert!(
            blocked.json::<Value>().await.unwrap()["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1")
        );
        let local = app
            .api_key(&a, &["herald.manage"], "127.0.0.0/8, ::1")
            .await;
        assert_eq!(
            app.api_get("/v1/workspace", Some(&local)).await.status(),
            StatusCode::OK
        );

        let nowhere = app.api_get("/v1/nothing-here", Some(&manager)).await;
        assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            nowhere.json::<Value>().await.unwrap()["message"],
            "Not Found"
        );

        let ada = app.sign_in("ada@example.com", "password-123").await;
        let keys: Value = app
            .call("api_keys", Some(&ada), &[("ws", a.as_str())])
            .await
            .json()
            .await
            .unwrap();
        let manager_id = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| {
                manager.starts_with(k["prefix"].as_str().unwrap()) && k["last_used"].is_string()
            })
            .map(|k| k["id"].as_str().unwrap().to_string())
            .expect("the manager key, with its last use recorded");
        let revoked = app
            .call(
                "revoke_api_key",
                Some(&ada),
                &[("ws", a.as_str()), ("key_id", &manager_id)],
            )
            .await;
        assert_eq!(revoked.status(), StatusCode::OK);
        assert_eq!(
            app.api_get("/v1/workspace", Some(&manager)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn every_rest_response_carries_rate_limit_headers_and_429_past_the_limit() {
    for db in test_databases().await {
        let app = spawn_app_with(db, |config| {
            config.api_rate_limit = 3;
            config.api_rate_window_secs = 60;
        })
        .await;
        let (_, a) = app.account_with_workspace("ada@example.com", "A").await;
        let key = app.api_key(&a, &["users.track"], "").await;
        for remaining in ["2", "1", "0"] {
            let response = app.api_get("/v1/workspace", Some(&key)).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["x-ratelimit-limit"], "3");
            assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
            assert!(response.headers().contains_key("x-ratelimit-reset"));
        }
        let limited = app.api_get("/v1/workspace", Some(&key)).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers().contains_key("retry-after"));
        assert_eq!(
            limited.json::<Value>().await.unwrap()["message"],
            "Rate Limited"
        );

        // Unauthenticated calls are counted per address and carry the headers too.
        let anonymous = app.api_get("/v1/workspace", None).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(anonymous.headers()["x-ratelimit-remaining"], "2");

        app.clock.advance(chrono::Duration::seconds(60));
        let fresh = app.api_get("/v1/workspace", Some(&key)).await;
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()["x-ratelimit-remaining"], "2");
    }
}
