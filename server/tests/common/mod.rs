//! Starts Herald on port 0 over a fresh database and speaks HTTP to it like a browser or a REST
//! client would.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::Utc;
use domain::{AccountId, ManualClock, Role, WorkspaceId};
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use reqwest::{Response, StatusCode};
use sea_orm::DatabaseConnection;
use server::Config;

pub struct TestApp {
    pub base: String,
    pub db: DatabaseConnection,
    pub clock: ManualClock,
    pub client: reqwest::Client,
    handle: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

pub async fn spawn_app(db: DatabaseConnection) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

pub async fn spawn_app_with(db: DatabaseConnection, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().unwrap();
    let mut config = Config {
        bind: addr,
        public_url: format!("http://{addr}"),
        ..Config::default()
    };
    tweak(&mut config);
    let clock = ManualClock::new(Utc::now());
    let running = server::start(db.clone(), config, Arc::new(clock.clone()), listener)
        .await
        .expect("start herald");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        base: format!("http://{addr}"),
        db,
        clock,
        client,
        handle: running.handle,
    }
}

/// The `herald_session` cookie a response set, as a `name=value` pair.
pub fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("herald_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

impl TestApp {
    /// Calls a server function the way a form does.
    pub async fn call(
        &self,
        endpoint: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> Response {
        self.call_with(endpoint, cookie, form, HeaderMap::new())
            .await
    }

    pub async fn call_with(
        &self,
        endpoint: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        headers: HeaderMap,
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}/srv/{endpoint}", self.base))
            .headers(headers)
            .form(form);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.expect("request")
    }

    /// Signs in and returns the session cookie.
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let response = self
            .call("sign_in", None, &[("email", email), ("password", password)])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "sign-in of {email} failed"
        );
        session_cookie(&response).expect("a session cookie")
    }

    pub async fn api_get(&self, path: &str, key: Option<&str>) -> Response {
        let mut request = self.client.get(format!("{}/api{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("request")
    }

    /// An account with a workspace it administers, made directly in the database.
    pub async fn account_with_workspace(
        &self,
        email: &str,
        workspace: &str,
    ) -> (AccountId, WorkspaceId) {
        let now = Utc::now();
        let account = domain::account::create_account(&self.db, email, "password-123", false, now)
            .await
            .unwrap();
        let account_id = AccountId::from_db(account.id);
        let ws =
            domain::workspace::create_workspace_atomically(&self.db, &account_id, workspace, now)
                .await
                .unwrap();
        (account_id, WorkspaceId::from_db(ws.id))
    }

    pub async fn add_member(&self, workspace: &WorkspaceId, email: &str, role: Role) {
        let now = Utc::now();
        domain::account::create_account(&self.db, email, "password-123", false, now)
            .await
            .unwrap();
        domain::workspace::add_member(&self.db, workspace, email, role, now)
            .await
            .unwrap();
    }

    pub async fn api_key(
        &self,
        workspace: &WorkspaceId,
        permissions: &[&str],
        allow: &str,
    ) -> String {
        let permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        domain::api_key::create_api_key(
            &self.db,
            workspace,
            None,
            "test",
            &permissions,
            allow,
            Utc::now(),
        )
        .await
        .unwrap()
        .secret
    }
}

/// A local webhook receiver that hands every request body to the test as it arrives; returns its
/// URL and the stream of bodies.
pub async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use axum::extract::State;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new()
        .fallback(
            |State(tx): State<tokio::sync::mpsc::UnboundedSender<String>>, body: String| async move {
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

/// The next webhook body (as JSON when it is JSON), or a failure after 20 s.
pub async fn next_webhook(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> serde_json::Value {
    let body = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
        .await
        .expect("a webhook arrives")
        .unwrap();
    serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body))
}

impl TestApp {
    /// Calls `/api{path}` with a key; returns the status and the JSON answer.
    pub async fn api(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}/api{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }
}
