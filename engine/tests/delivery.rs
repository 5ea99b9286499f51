//! The dispatcher against a real local receiver, on SQLite and (with TEST_DATABASE_URL) PostgreSQL:
//! which attempts happen and when (injected clock), what is refused, and that a crash loses nothing.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::campaign::{AudienceSpec, Bucket};
use domain::canvas::{
    self, Canvas, CanvasInput, CanvasSettings, CanvasTarget, CanvasTriggerRequest, CanvasVariant,
    Definition, Entry, ExitCriteria, Step, StepId, StepKind,
};
use domain::entity::webhook_send;
use domain::outbox::{self, NewSend, SourceKind};
use domain::template::RenderContext;
use domain::webhook::{Body, Method, WebhookMessage};
use domain::{Clock, ManualClock, SendId, WorkspaceId, profile};
use engine::{
    AddressPolicy, DeliverySettings, DispatchSettings, Dispatcher, RetryPolicy, WebhookClient,
};
use migrations::testing::{durable_test_databases, test_databases};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Map, json};

/// What the receiver answers next.
#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    Slow(Duration),
}

#[derive(Clone, Debug)]
struct Received {
    signature: String,
    timestamp: i64,
    webhook_id: String,
    user_agent: String,
    content_type: String,
    body: String,
    has_timestamp: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Reply>>>,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> (Self, SocketAddr) {
        let receiver = Receiver::default();
        let app = Router::new().fallback(receive).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn answer(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    receiver.log.lock().unwrap().push(Received {
        signature: header("webhook-signature"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        webhook_id: header("webhook-id"),
        user_agent: header("user-agent"),
        content_type: header("content-type"),
        body,
        has_timestamp: headers.contains_key("webhook-timestamp"),
    });
    let reply = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => (StatusCode::from_u16(code).unwrap(), "reply body").into_response(),
        Reply::RetryAfter(code, secs) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK.into_response()
        }
    }
}

/// A listener that accepts connections and drops them at once (a connection reset).
async fn resetting_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    addr
}

fn settings(allow_loopback: bool) -> DeliverySettings {
    let allowed = if allow_loopback {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    } else {
        vec![]
    };
    DeliverySettings {
        concurrency: 16,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(400),
        addresses: AddressPolicy::new(allowed),
        allowed_ports: vec![],
    }
}

fn dispatcher(
    db: &DatabaseConnection,
    clock: &ManualClock,
    delivery: DeliverySettings,
    tweak: impl FnOnce(&mut DispatchSettings),
) -> Arc<Dispatcher> {
    let mut dispatch = DispatchSettings {
        concurrency: 16,
        ..DispatchSettings::default()
    };
    tweak(&mut dispatch);
    Arc::new(Dispatcher::new(
        db.clone(),
        WebhookClient::new(&delivery),
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        Arc::new(clock.clone()),
        dispatch,
    ))
}

fn workspace() -> WorkspaceId {
    WorkspaceId::generate()
}

fn message(url: String) -> WebhookMessage {
    WebhookMessage {
        method: Method::Post,
        url,
        headers: vec![("X-Test".into(), "yes".into())],
        body: Body::Pairs {
            pairs: vec![("hello".into(), "{{${first_name}}}".into())],
        },
    }
}

async fn enqueue(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    url: String,
    count: usize,
    now: chrono::DateTime<Utc>,
) -> Vec<SendId> {
    let sends = (0..count)
        .map(|_| NewSend {
            workspace_id: ws.clone(),
            source_kind: SourceKind::Test,
            source_id: None,
            source_name: None,
            recipient: None,
            message: message(url.clone()),
            context: RenderContext::new().with_user_attribute("first_name", "Ada"),
            due_at: None,
            tracking: Default::default(),
        })
        .collect();
    outbox::enqueue(db, sends, now).await.unwrap()
}

async fn send_row(db: &DatabaseConnection, ws: &WorkspaceId, id: &SendId) -> webhook_send::Model {
    outbox::find_send(db, ws, id).await.unwrap()
}

/// Whole milliseconds, as PostgreSQL keeps microseconds and SQLite text keeps what it is given.
fn clock() -> ManualClock {
    use chrono::SubsecRound;
    ManualClock::new(Utc::now().trunc_subsecs(3))
}

#[tokio::test]
async fn a_send_is_delivered_once_with_its_id_timestamp_and_rendered_body() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 1, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});
        assert_eq!(d.tick().await.unwrap(), 1);
        assert_eq!(d.tick().await.unwrap(), 0, "nothing is sent twice");

        let got = receiver.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].webhook_id, ids[0].to_string());
        assert!(got[0].user_agent.starts_with("Herald/"));
        assert!(got[0].has_timestamp);
        assert_eq!(got[0].content_type, "application/json");
        assert_eq!(got[0].body, r#"{"hello":"Ada"}"#);
        let row = send_row(&db, &ws, &ids[0]).await;
        assert_eq!(row.status, "delivered");
        assert_eq!(row.attempts, 1);
        let attempts = outbox::attempts_of(&db, &ws, &ids[0]).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status_code, Some(200));
        assert_eq!(attempts[0].response_body, "reply body");
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_they_succeed() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer([Reply::Status(500), Reply::Status(503), Reply::Status(200)]);
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 1, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});

        let first = clock.now();
        assert_eq!(d.tick().await.unwrap(), 1);
        let row = send_row(&db, &ws, &ids[0]).await;
        assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
        assert_eq!(row.next_attempt_at, first + chrono::Duration::seconds(60));
        assert_eq!(d.tick().await.unwrap(), 0, "not due before the backoff");

        clock.advance(chrono::Duration::seconds(60));
        assert_eq!(d.tick().await.unwrap(), 1);
        let row = send_row(&db, &ws, &ids[0]).await;
        assert_eq!(
            row.next_attempt_at,
            clock.now() + chrono::Duration::seconds(120)
        );

        clock.advance(chrono::Duration::seconds(120));
        assert_eq!(d.tick().await.unwrap(), 1);
        let row = send_row(&db, &ws, &ids[0]).await;
        assert_eq!((row.status.as_str(), row.attempts), ("delivered", 3));
        let outcomes: Vec<String> = outbox::attempts_of(&db, &ws, &ids[0])
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.outcome)
            .collect();
        assert_eq!(outcomes, ["retry", "retry", "delivered"]);
        let seen: HashSet<String> = receiver
            .received()
            .into_iter()
            .map(|r| r.webhook_id)
            .collect();
        assert_eq!(seen.len(), 1, "every retry carries the same webhook-id");
    }
}

#[tokio::test]
async fn client_errors_are_final_and_can_be_resent_by_hand() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer([Reply::Status(400), Reply::Status(410)]);
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 2, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});
        assert_eq!(d.tick().await.unwrap(), 2);
        clock.advance(chrono::Duration::hours(2));
        assert_eq!(d.tick().await.unwrap(), 0, "a 400 or 410 is not retried");
        for id in &ids {
            let row = send_row(&db, &ws, id).await;
            assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
        }

        let since = clock.now() - chrono::Duration::days(1);
        assert_eq!(
            outbox::resend_failed(&db, &ws, None, Some(since), clock.now())
                .await
                .unwrap(),
            2
        );
        assert_eq!(d.tick().await.unwrap(), 2);
        for id in &ids {
            let row = send_row(&db, &ws, id).await;
            assert_eq!((row.status.as_str(), row.attempts), ("delivered", 2));
        }
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer([Reply::RetryAfter(429, 7)]);
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 1, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});
        let started = clock.now();
        d.tick().await.unwrap();
        let row = send_row(&db, &ws, &ids[0]).await;
        assert_eq!(row.next_attempt_at, started + chrono::Duration::seconds(7));
        assert_eq!(row.last_status_code, Some(429));
    }
}

#[tokio::test]
async fn timeouts_and_connection_resets_are_retried() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer([Reply::Slow(Duration::from_secs(3))]);
        let reset = resetting_listener().await;
        let clock = clock();
        let ws = workspace();
        let slow = enqueue(&db, &ws, format!("http://{addr}/slow"), 1, clock.now()).await;
        let broken = enqueue(&db, &ws, format!("http://{reset}/reset"), 1, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});
        assert_eq!(d.tick().await.unwrap(), 2);
        for (id, kinds) in [
            (&slow[0], &["timeout"][..]),
            (&broken[0], &["request", "connect"][..]),
        ] {
            let row = send_row(&db, &ws, id).await;
            assert_eq!(row.status, "pending", "{kinds:?} is retried");
            let attempt = &outbox::attempts_of(&db, &ws, id).await.unwrap()[0];
            let kind = attempt.error_kind.clone().unwrap_or_default();
            assert!(
                kinds.contains(&kind.as_str()),
                "{kind}: {:?}",
                attempt.error
            );
        }
    }
}

#[tokio::test]
async fn internal_destinations_are_refused_without_an_allowlist() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        let clock = clock();
        let ws = workspace();
        let urls = [
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "http://10.0.0.1/".to_string(),
            format!("http://localhost:{}/hook", addr.port()),
            format!("http://[::ffff:127.0.0.1]:{}/hook", addr.port()),
            "http://example.com:22/".to_string(),
        ];
        let mut ids = Vec::new();
        for url in urls {
            ids.push(enqueue(&db, &ws, url, 1, clock.now()).await.remove(0));
        }
        let d = dispatcher(&db, &clock, settings(false), |_| {});
        assert_eq!(d.tick().await.unwrap(), ids.len());
        for id in &ids {
            let row = send_row(&db, &ws, id).await;
            assert_eq!(row.status, "failed", "{:?}", row.last_error);
            let error = row.last_error.unwrap_or_default();
            assert!(error.contains("refused"), "{error}");
        }
        assert!(
            receiver.received().is_empty(),
            "no request reached the receiver"
        );
    }
}

#[tokio::test]
async fn a_failing_host_is_paused_and_its_sends_wait() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer([Reply::Status(500), Reply::Status(500), Reply::Status(500)]);
        let clock = clock();
        let ws = workspace();
        enqueue(&db, &ws, format!("http://{addr}/hook"), 3, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |s| {
            s.host_failure_threshold = 3;
            s.host_pause = Duration::from_secs(600);
        });
        assert_eq!(d.tick().await.unwrap(), 3);
        let waiting = enqueue(&db, &ws, format!("http://{addr}/hook"), 1, clock.now()).await;
        assert_eq!(d.tick().await.unwrap(), 1);
        let row = send_row(&db, &ws, &waiting[0]).await;
        assert_eq!(row.attempts, 0, "no attempt while the host is paused");
        assert_eq!(
            row.next_attempt_at,
            clock.now() + chrono::Duration::seconds(600)
        );
        assert_eq!(receiver.received().len(), 3);
        let paused = domain::entity::host_state::Entity::find()
            .all(&db)
            .await
            .unwrap();
        assert_eq!(paused.len(), 1);
        assert!(paused[0].paused_until.is_some());

        // Another process on the same database spares the host too.
        let other = dispatcher(&db, &clock, settings(true), |_| {});
        let elsewhere = enqueue(&db, &ws, format!("http://{addr}/hook"), 1, clock.now()).await;
        assert_eq!(other.tick().await.unwrap(), 1);
        assert_eq!(send_row(&db, &ws, &elsewhere[0]).await.attempts, 0);
        assert_eq!(receiver.received().len(), 3);
    }
}

#[tokio::test]
async fn a_crash_mid_batch_loses_nothing_and_duplicates_keep_their_id() {
    for db in durable_test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer((0..40).map(|_| Reply::Slow(Duration::from_millis(30))));
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 40, clock.now()).await;

        let first = dispatcher(&db, &clock, settings(true), |s| s.concurrency = 4);
        let running = tokio::spawn(first.clone().run(std::future::pending()));
        while receiver.received().len() < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        running.abort();
        let _ = running.await;

        // The crashed process's leases run out; a new process picks everything up.
        clock.advance(chrono::Duration::seconds(121));
        let second = dispatcher(&db, &clock, settings(true), |_| {});
        while second.tick().await.unwrap() > 0 {}

        for id in &ids {
            assert_eq!(send_row(&db, &ws, id).await.status, "delivered");
        }
        let expected: HashSet<String> = ids.iter().map(|id| id.to_string()).collect();
        let seen: Vec<String> = receiver
            .received()
            .into_iter()
            .map(|r| r.webhook_id)
            .collect();
        let distinct: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(
            distinct, expected,
            "every send arrived, and only sends we made"
        );
        assert!(seen.len() >= ids.len());
    }
}

#[tokio::test]
async fn two_dispatchers_on_one_database_never_send_the_same_attempt_twice() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 120, clock.now()).await;
        let a = dispatcher(&db, &clock, settings(true), |s| s.batch_size = 16);
        let b = dispatcher(&db, &clock, settings(true), |s| s.batch_size = 16);
        let (ra, rb) = (a.clone(), b.clone());
        let one = tokio::spawn(async move { while ra.tick().await.unwrap() > 0 {} });
        let two = tokio::spawn(async move { while rb.tick().await.unwrap() > 0 {} });
        one.await.unwrap();
        two.await.unwrap();
        let seen: Vec<String> = receiver
            .received()
            .into_iter()
            .map(|r| r.webhook_id)
            .collect();
        assert_eq!(seen.len(), ids.len(), "each send went out exactly once");
        let distinct: HashSet<String> = seen.into_iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}

#[tokio::test]
async fn signed_workspaces_send_a_standard_webhooks_signature_with_every_active_secret() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        let clock = clock();
        let ws = workspace();
        let before = domain::signing::set_enabled(&db, &ws, true, clock.now())
            .await
            .unwrap();
        let rotated = domain::signing::rotate(&db, &ws, clock.now())
            .await
            .unwrap();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 1, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});
        d.tick().await.unwrap();
        let got = &receiver.received()[0];
        let expected = [&rotated.secret, &before.secret]
            .iter()
            .map(|secret| {
                domain::signing::sign(secret, &ids[0].to_string(), got.timestamp, &got.body)
                    .unwrap()
            })
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(got.signature, expected);

        let unsigned = workspace();
        enqueue(
            &db,
            &unsigned,
            format!("http://{addr}/hook"),
            1,
            clock.now(),
        )
        .await;
        d.tick().await.unwrap();
        assert_eq!(
            receiver.received()[1].signature,
            "",
            "no signature unless the workspace turns it on"
        );
    }
}

#[tokio::test]
async fn a_rate_limited_source_sends_at_most_its_allowance_per_minute() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        // The start of a minute, so the limiter's window is predictable.
        let start = Utc::now().timestamp() / 60 * 60 + 60;
        let clock = ManualClock::new(chrono::DateTime::from_timestamp(start, 0).unwrap());
        let ws = workspace();
        let sends = (0..5)
            .map(|_| NewSend {
                workspace_id: ws.clone(),
                source_kind: SourceKind::Campaign,
                source_id: Some("campaign-1".into()),
                source_name: None,
                recipient: None,
                message: message(format!("http://{addr}/hook")),
                context: RenderContext::new(),
                due_at: None,
                tracking: Default::default(),
            })
            .collect();
        let ids = outbox::enqueue_limited(&db, sends, Some(2), clock.now())
            .await
            .unwrap();
        let other = enqueue(&db, &ws, format!("http://{addr}/other"), 1, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});

        d.tick().await.unwrap();
        assert_eq!(
            receiver.received().len(),
            3,
            "two of the campaign's sends, and the unlimited one"
        );
        assert_eq!(send_row(&db, &ws, &other[0]).await.status, "delivered");
        assert_eq!(
            d.tick().await.unwrap(),
            0,
            "the rest waits for the next minute"
        );
        let next_minute = clock.now() + chrono::Duration::seconds(60);
        let waiting: Vec<_> = {
            let mut rows = Vec::new();
            for id in &ids {
                rows.push(send_row(&db, &ws, id).await);
            }
            rows.into_iter().filter(|r| r.status == "pending").collect()
        };
        assert_eq!(waiting.len(), 3);
        assert!(
            waiting
                .iter()
                .all(|r| r.next_attempt_at == next_minute && r.attempts == 0)
        );

        clock.advance(chrono::Duration::seconds(60));
        d.tick().await.unwrap();
        assert_eq!(receiver.received().len(), 5);
        clock.advance(chrono::Duration::seconds(60));
        d.tick().await.unwrap();
        assert_eq!(receiver.received().len(), 6);
        for id in &ids {
            assert_eq!(send_row(&db, &ws, id).await.status, "delivered");
        }
    }
}

#[tokio::test]
async fn client_errors_never_pause_a_host_that_other_workspaces_share() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer([Reply::Status(404), Reply::Status(404), Reply::Status(404)]);
        let clock = clock();
        let ws = workspace();
        enqueue(&db, &ws, format!("http://{addr}/hook"), 3, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |s| {
            s.host_failure_threshold = 3
        });
        assert_eq!(d.tick().await.unwrap(), 3);
        let other = enqueue(
            &db,
            &workspace(),
            format!("http://{addr}/hook"),
            1,
            clock.now(),
        )
        .await;
        d.tick().await.unwrap();
        assert_eq!(receiver.received().len(), 4, "the host was not paused");
        assert_eq!(
            send_row(&db, &receiver_ws(&db, &other[0]).await, &other[0])
                .await
                .status,
            "delivered"
        );
    }
}

async fn receiver_ws(db: &DatabaseConnection, id: &SendId) -> WorkspaceId {
    use sea_orm::{ColumnTrait, QueryFilter};
    let row = webhook_send::Entity::find()
        .filter(webhook_send::Column::Id.eq(id.as_str()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    WorkspaceId::from_db(row.workspace_id)
}

#[tokio::test]
async fn shutdown_stops_claiming_under_a_backlog_and_records_what_was_in_flight() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        receiver.answer((0..200).map(|_| Reply::Slow(Duration::from_millis(20))));
        let clock = clock();
        let ws = workspace();
        let ids = enqueue(&db, &ws, format!("http://{addr}/hook"), 200, clock.now()).await;
        let d = dispatcher(&db, &clock, settings(true), |s| {
            s.concurrency = 4;
            s.batch_size = 4;
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(d.clone().run(async move {
            let _ = stopped.await;
        }));
        while receiver.received().len() < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("run returns promptly")
            .unwrap();
        let mut delivered = 0;
        for id in &ids {
            let row = send_row(&db, &ws, id).await;
            if row.status == "delivered" {
                delivered += 1;
                assert_eq!(outbox::attempts_of(&db, &ws, id).await.unwrap().len(), 1);
            }
        }
        assert!(
            (10..200).contains(&delivered),
            "{delivered} delivered before stopping"
        );
        assert_eq!(
            receiver.received().len(),
            delivered,
            "every request that went out was recorded"
        );
    }
}

/// A Message step of a Canvas posting `text` (Liquid) to `url`.
fn canvas_message(id: &str, url: String, text: &str, next: Option<&str>) -> Step {
    Step {
        id: StepId(id.into()),
        name: id.into(),
        kind: StepKind::Message {
            message: WebhookMessage {
                method: Method::Post,
                url,
                headers: vec![],
                body: Body::Raw { text: text.into() },
            },
            next: next.map(|n| StepId(n.into())),
        },
    }
}

/// An API-triggered Canvas of `steps` (the first one first) sharing `rate_per_minute`, launched
/// at `now` and entered by `users` (external id, plan), whose journeys the engine then runs as
/// far as they go at `now`.
async fn entered_canvas(
    db: &DatabaseConnection,
    ws: &WorkspaceId,
    steps: Vec<Step>,
    rate_per_minute: Option<u32>,
    users: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Canvas {
    let attributes: Vec<_> = users
        .iter()
        .map(|(id, plan)| json!({"external_id": id, "plan": plan}))
        .collect();
    let tracked = profile::track(db, ws, &json!({ "attributes": attributes }), now)
        .await
        .unwrap();
    assert!(tracked.errors.is_empty(), "{:?}", tracked.errors);
    let definition = Definition {
        entry: Entry::Api,
        audience: AudienceSpec::default(),
        exit: ExitCriteria::default(),
        settings: CanvasSettings {
            rate_per_minute,
            ..CanvasSettings::default()
        },
        variants: vec![CanvasVariant {
            id: None,
            name: "Main".into(),
            percent: 100,
            first_step: Some(steps[0].id.clone()),
        }],
        control_percent: 0,
        conversions: vec![],
        steps,
    };
    let input = CanvasInput {
        name: "Journey".into(),
        description: String::new(),
        tags: vec![],
        definition,
    };
    let draft = canvas::create_canvas(db, ws, input, now).await.unwrap();
    let live = canvas::launch_canvas(db, ws, &draft.id, now).await.unwrap();
    let everyone = CanvasTriggerRequest {
        target: CanvasTarget::Broadcast { audience: None },
        context: Map::new(),
    };
    let entered = canvas::trigger_canvas(db, ws, &live.id, everyone, now)
        .await
        .unwrap();
    assert_eq!(entered.entered as usize, users.len());
    assert_eq!(
        canvas::advance_due(db, now, 100).await.unwrap(),
        users.len()
    );
    live
}

async fn workspace_sends(db: &DatabaseConnection, ws: &WorkspaceId) -> Vec<webhook_send::Model> {
    webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_canvas_message_whose_liquid_aborts_is_aborted_without_a_request_and_the_user_moves_on() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        let clock = clock();
        let now = clock.now();
        let ws = workspace();
        let url = |step: &str| format!("http://{addr}/{step}");
        let aborting = "{% if custom_attribute.${plan} == 'free' %}{% abort_message('free plan') \
                        %}{% endif %}offer {{${user_id}}}";
        let canvas = entered_canvas(
            &db,
            &ws,
            vec![
                canvas_message("offer", url("offer"), aborting, Some("follow-up")),
                canvas_message(
                    "follow-up",
                    url("follow-up"),
                    "follow-up {{${user_id}}}",
                    None,
                ),
            ],
            None,
            &[("u1", "pro"), ("u2", "free")],
            now,
        )
        .await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});
        assert_eq!(d.tick().await.unwrap(), 4);
        assert_eq!(d.tick().await.unwrap(), 0);

        // The free user's offer never left; their follow-up did.
        let mut bodies: Vec<String> = receiver.received().into_iter().map(|r| r.body).collect();
        bodies.sort();
        assert_eq!(bodies, ["follow-up u1", "follow-up u2", "offer u1"]);
        let sends = workspace_sends(&db, &ws).await;
        let aborted: Vec<_> = sends.iter().filter(|s| s.status == "aborted").collect();
        assert_eq!(aborted.len(), 1);
        let aborted = aborted[0];
        assert_eq!(
            (aborted.recipient.as_deref(), aborted.variant_id.as_deref()),
            (Some("u2"), Some("offer"))
        );
        assert_eq!(aborted.last_error.as_deref(), Some("aborted: free plan"));
        let id = SendId::from_db(aborted.id.clone());
        assert!(outbox::attempts_of(&db, &ws, &id).await.unwrap().is_empty());
        assert_eq!(sends.iter().filter(|s| s.status == "delivered").count(), 3);

        // The analytics count the abort on the step, and the user going on.
        let stats = canvas::canvas_stats(
            &db,
            &ws,
            &canvas.id,
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(1),
            Bucket::Day,
        )
        .await
        .unwrap();
        let figures = |step: &str| {
            let s = stats
                .steps
                .iter()
                .find(|s| s.step_id.as_str() == step)
                .unwrap();
            (s.entered, s.sent, s.delivered, s.aborted, s.errors)
        };
        assert_eq!(figures("offer"), (2, 2, 1, 1, 0));
        assert_eq!(figures("follow-up"), (2, 2, 2, 0, 0));
        assert_eq!(stats.finished, 2);
    }
}

#[tokio::test]
async fn the_message_steps_of_a_canvas_share_its_rate_limit() {
    for db in test_databases().await {
        let (receiver, addr) = Receiver::start().await;
        // The start of a minute, so the limiter's window is predictable.
        let start = Utc::now().timestamp() / 60 * 60 + 60;
        let clock = ManualClock::new(chrono::DateTime::from_timestamp(start, 0).unwrap());
        let ws = workspace();
        let url = |step: &str| format!("http://{addr}/{step}");
        entered_canvas(
            &db,
            &ws,
            vec![
                canvas_message("one", url("one"), "one {{${user_id}}}", Some("two")),
                canvas_message("two", url("two"), "two {{${user_id}}}", None),
            ],
            Some(2),
            &[("u1", "pro"), ("u2", "pro")],
            clock.now(),
        )
        .await;
        let d = dispatcher(&db, &clock, settings(true), |_| {});

        // Four sends over two steps, two a minute between them (not two per step).
        d.tick().await.unwrap();
        assert_eq!(receiver.received().len(), 2);
        assert_eq!(
            d.tick().await.unwrap(),
            0,
            "the rest waits for the next minute"
        );
        let next_minute = clock.now() + chrono::Duration::seconds(60);
        let waiting: Vec<_> = workspace_sends(&db, &ws)
            .await
            .into_iter()
            .filter(|s| s.status == "pending")
            .collect();
        assert_eq!(waiting.len(), 2);
        assert!(waiting.iter().all(|s| s.next_attempt_at == next_minute));

        clock.advance(chrono::Duration::seconds(60));
        d.tick().await.unwrap();
        let mut bodies: Vec<String> = receiver.received().into_iter().map(|r| r.body).collect();
        bodies.sort();
        assert_eq!(bodies, ["one u1", "one u2", "two u1", "two u2"]);
    }
}
