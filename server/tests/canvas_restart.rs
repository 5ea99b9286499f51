//! Issue 6's acceptance with the real `herald` binary: a Canvas “welcome → Delay 1 hour → Decision
//! Split plan = pro → A / B” is triggered over REST, the server is killed (SIGKILL, a crash) while
//! every journey sits in the Delay, the hour passes while it is down, and the restarted server
//! loses nobody and sends nothing twice. Runs on a SQLite file, and on PostgreSQL (a fresh schema
//! the child processes reach through the URL's `options`) when `TEST_DATABASE_URL` is set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use domain::entity::{canvas_journey, webhook_send};
use migrations::testing::{fresh_postgres, postgres_url};
use reqwest::StatusCode;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, Statement,
};
use serde_json::{Value, json};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// Generous bounds for the waits: on a quiet machine each takes a second or two.
const START_LIMIT: Duration = Duration::from_secs(60);
const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// The Delay step's length.
const DELAY_SECS: i64 = 3600;

/// The users the Canvas is triggered for: external id, plan (none for one of them), and the shop
/// their context names (`None`: the trigger's shared context, `Paris`).
const USERS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("ada", Some("pro"), None),
    ("bob", Some("free"), None),
    ("cyd", Some("pro"), Some("Lyon")),
    ("dee", Some("trial"), None),
    ("eve", Some("pro"), None),
    ("fay", Some("free"), Some("Lyon")),
    ("gus", None, None),
];

fn is_pro(plan: Option<&str>) -> bool {
    plan == Some("pro")
}

/// Fails the test, naming what was awaited and how things stood, once its limit has passed.
struct Deadline {
    until: Instant,
    limit: Duration,
}

impl Deadline {
    fn after(limit: Duration) -> Self {
        Self {
            until: Instant::now() + limit,
            limit,
        }
    }

    /// Waits one poll interval, or fails with `state()` when the time is up.
    async fn wait(&self, what: &str, state: impl FnOnce() -> String) {
        if Instant::now() >= self.until {
            panic!(
                "gave up after {:?} waiting until {what}; {}",
                self.limit,
                state()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A database both the test and the `herald` processes open, with a directory for the SQLite
/// file (if any) and the processes' logs. A passing run removes the directory; a failing one
/// leaves it for a look at the logs.
struct Store {
    label: &'static str,
    /// What the child processes get as `DATABASE_URL`.
    url: String,
    dir: PathBuf,
}

fn scratch_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir()
        .join("herald-canvas-restart")
        .join(format!(
            "{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

impl Store {
    /// A SQLite file in a scratch directory; the first admin command creates and migrates it.
    fn sqlite() -> Self {
        let dir = scratch_dir("sqlite");
        Self {
            label: "SQLite",
            url: format!("sqlite://{}?mode=rwc", dir.join("herald.db").display()),
            dir,
        }
    }

    /// A fresh, migrated schema of `TEST_DATABASE_URL`, which the child processes reach through a
    /// `search_path` in the URL's `options` (sqlx passes it to the server as `-c search_path=…`),
    /// since `DATABASE_URL` is the only way to hand them a database.
    async fn postgres(url: &str) -> (Self, DatabaseConnection) {
        let db = fresh_postgres(url).await;
        let schema: String = db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_schema() AS schema",
            ))
            .await
            .expect("read the test schema")
            .expect("a current schema")
            .try_get("", "schema")
            .expect("the schema's name");
        let separator = if url.contains('?') { '&' } else { '?' };
        let store = Self {
            label: "PostgreSQL",
            url: format!("{url}{separator}options=-c%20search_path%3D{schema}"),
            dir: scratch_dir("postgres"),
        };
        (store, db)
    }

    /// The test's own connection (SQLite: once the admin commands have created the file).
    async fn connect(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.url.clone());
        options.max_connections(2).sqlx_logging(false);
        Database::connect(options)
            .await
            .expect("open the test's connection")
    }
}

/// A `herald` command on the store's database, logging to `log`.
fn herald(store: &Store, log: &Path) -> Command {
    let log = File::create(log).expect("create a log file");
    let mut command = Command::new(HERALD);
    command
        .env("DATABASE_URL", &store.url)
        .env("HERALD_LOG", "info,sqlx=warn")
        // The receiver listens on loopback, which webhooks may only reach when allowlisted.
        .env("HERALD_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8")
        // Plain logs, quoted in failure messages.
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(log.try_clone().expect("share the log file")))
        .stderr(Stdio::from(log));
    command
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    format!(
        "last lines of {}:\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}

/// Runs `herald admin …` and returns what it printed.
fn admin(store: &Store, args: &[&str], stdin: &str) -> String {
    let log = store.dir.join("admin.log");
    let mut child = herald(store, &log)
        .arg("admin")
        .args(args)
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("run herald admin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("herald admin finishes");
    assert!(
        output.status.success(),
        "herald admin {args:?} failed on {}; {}",
        store.label,
        log_tail(&log)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .trim()
        .to_string()
}

/// A running `herald serve`; killed when dropped, so a failing test leaves no process behind.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `herald serve` on a free port and waits until it answers HTTP. The port is found by
    /// binding port 0 and letting it go; should another process take it meanwhile, the server
    /// exits saying so and is started again on another port.
    async fn start(store: &Store, name: &str, client: &reqwest::Client) -> Self {
        for attempt in 1..=3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let base = format!("http://127.0.0.1:{port}");
            let log = store.dir.join(format!("{name}-{attempt}.log"));
            let child = herald(store, &log)
                .arg("serve")
                .env("HERALD_BIND", format!("127.0.0.1:{port}"))
                .env("HERALD_PUBLIC_URL", &base)
                .spawn()
                .expect("start herald serve");
            let mut server = Self { child, base, log };
            let deadline = Deadline::after(START_LIMIT);
            loop {
                if let Some(status) = server.child.try_wait().expect("poll herald serve") {
                    let tail = log_tail(&server.log);
                    if attempt < 3 && tail.contains("cannot listen") {
                        break;
                    }
                    panic!("herald serve ({name}) exited with {status}; {tail}");
                }
                let health = client.get(format!("{}/healthz", server.base)).send().await;
                if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                    return server;
                }
                deadline
                    .wait(&format!("herald serve ({name}) answers HTTP"), || {
                        log_tail(&server.log)
                    })
                    .await;
            }
        }
        panic!("herald serve ({name}) found no free port in three tries");
    }

    /// Kills the process outright (SIGKILL on Unix): no graceful shutdown, no last commit.
    fn crash(mut self) {
        self.child.kill().expect("kill herald serve");
        let status = self.child.wait().expect("reap herald serve");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "herald was killed, not stopped");
        }
        #[cfg(not(unix))]
        assert!(!status.success());
    }

    async fn api(
        &self,
        client: &reqwest::Client,
        key: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = client
            .post(format!("{}/api{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("call the REST API");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    /// The last path segment: the step that sent it.
    step: String,
    webhook_id: String,
    body: Value,
}

/// Everything the local receiver got, in arrival order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Delivery>>>);

impl Received {
    fn all(&self) -> Vec<Delivery> {
        self.0.lock().expect("receiver lock").clone()
    }
}

/// A local webhook receiver answering 200 to everything and recording the path, the
/// `webhook-id` header and the body of each request; returns its base URL.
async fn receiver() -> (String, Received) {
    use axum::extract::State;
    use axum::http::{HeaderMap, Uri};
    let received = Received::default();
    let app = axum::Router::new()
        .fallback(
            |State(received): State<Received>, uri: Uri, headers: HeaderMap, body: String| async move {
                let delivery = Delivery {
                    step: uri.path().rsplit('/').next().unwrap_or_default().to_string(),
                    webhook_id: headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
                };
                received.0.lock().expect("receiver lock").push(delivery);
                "ok"
            },
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), received)
}

/// A webhook to `{receiver}/{step}` whose JSON body is `body` (Liquid).
fn webhook(receiver: &str, step: &str, body: &str) -> Value {
    json!({
        "method": "POST",
        "url": format!("{receiver}/{step}"),
        "headers": [["Content-Type", "application/json"]],
        "body": { "kind": "raw", "text": body }
    })
}

/// “Message welcome → Delay 1 hour → Decision Split plan = pro → Message A / Message B”, entered
/// over the API, every message personalised with the user and their entry context.
fn onboarding(receiver: &str) -> Value {
    json!({
        "name": "Onboarding across a crash",
        "definition": {
            "entry": { "type": "api" },
            "variants": [{ "name": "Main", "percent": 100, "first_step": "welcome" }],
            "steps": [
                {
                    "id": "welcome",
                    "name": "Welcome",
                    "type": "message",
                    "message": webhook(receiver, "welcome", r#"{"step": "welcome", "user": "{{${user_id}}}", "coupon": "{{context.${coupon}}}", "shop": "{{canvas_entry_properties.${shop}}}"}"#),
                    "next": "wait"
                },
                {
                    "id": "wait",
                    "name": "One hour",
                    "type": "delay",
                    "delay": { "kind": "for", "seconds": DELAY_SECS },
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
                    "message": webhook(receiver, "a", r#"{"step": "a", "user": "{{${user_id}}}", "plan": "{{custom_attribute.${plan}}}", "coupon": "{{context.${coupon}}}"}"#)
                },
                {
                    "id": "b",
                    "name": "Message B",
                    "type": "message",
                    "message": webhook(receiver, "b", r#"{"step": "b", "user": "{{${user_id}}}", "plan": "{{custom_attribute.${plan} | default: 'none'}}", "shop": "{{context.${shop}}}"}"#)
                }
            ]
        }
    })
}

fn shop_of(shop: Option<&str>) -> &str {
    shop.unwrap_or("Paris")
}

/// What each user must receive, by (user, step).
fn expected() -> BTreeMap<(String, String), Value> {
    let mut expected = BTreeMap::new();
    for &(user, plan, shop) in USERS {
        let coupon = format!("C-{user}");
        expected.insert(
            (user.to_string(), "welcome".to_string()),
            json!({"step": "welcome", "user": user, "coupon": coupon, "shop": shop_of(shop)}),
        );
        let (step, body) = if is_pro(plan) {
            (
                "a",
                json!({"step": "a", "user": user, "plan": "pro", "coupon": coupon}),
            )
        } else {
            (
                "b",
                json!({"step": "b", "user": user, "plan": plan.unwrap_or("none"), "shop": shop_of(shop)}),
            )
        };
        expected.insert((user.to_string(), step.to_string()), body);
    }
    expected
}

async fn journeys(db: &DatabaseConnection, ws: &str) -> Vec<canvas_journey::Model> {
    canvas_journey::Entity::find()
        .filter(canvas_journey::Column::WorkspaceId.eq(ws))
        .all(db)
        .await
        .expect("read the journeys")
}

async fn sends(db: &DatabaseConnection, ws: &str) -> Vec<webhook_send::Model> {
    webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws))
        .all(db)
        .await
        .expect("read the outbox")
}

fn journey_summary(journeys: &[canvas_journey::Model]) -> String {
    let rows: Vec<String> = journeys
        .iter()
        .map(|j| {
            format!(
                "{} at {:?} wake {:?} lease {:?}",
                j.status, j.step_id, j.wake_at, j.lease_until
            )
        })
        .collect();
    format!("journeys: [{}]", rows.join("; "))
}

fn send_summary(sends: &[webhook_send::Model]) -> String {
    let rows: Vec<String> = sends
        .iter()
        .map(|s| {
            format!(
                "{:?} {} after {} attempt(s) {:?}",
                s.recipient, s.status, s.attempts, s.last_error
            )
        })
        .collect();
    format!("outbox: [{}]", rows.join("; "))
}

fn delivery_summary(deliveries: &[Delivery]) -> String {
    let rows: Vec<String> = deliveries
        .iter()
        .map(|d| format!("{} {} {}", d.step, d.webhook_id, d.body))
        .collect();
    format!("received: [{}]", rows.join("; "))
}

/// The whole scenario on one database. `db` is the test's own connection (opened here for
/// SQLite, whose file the first admin command creates).
async fn crash_during_the_delay(store: Store, db: Option<DatabaseConnection>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let users = USERS.len();

    // Bootstrap the install from a shell, as an operator would.
    admin(
        &store,
        &[
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
            "--owner",
        ],
        "s3cret-password\n",
    );
    let ws = admin(
        &store,
        &[
            "create-workspace",
            "--name",
            "Ops",
            "--admin-email",
            "ops@example.com",
        ],
        "",
    );
    let key = admin(
        &store,
        &[
            "create-api-key",
            "--workspace",
            "Ops",
            "--permission",
            "herald.manage",
            "--permission",
            "users.track",
            "--permission",
            "canvas.trigger.send",
        ],
        "",
    );
    let db = match db {
        Some(db) => db,
        None => store.connect().await,
    };

    let (hooks, received) = receiver().await;
    let first = Server::start(&store, "first", &client).await;

    let attributes: Vec<Value> = USERS
        .iter()
        .map(|&(user, plan, _)| match plan {
            Some(plan) => json!({ "external_id": user, "plan": plan }),
            None => json!({ "external_id": user }),
        })
        .collect();
    let (status, answer) = first
        .api(
            &client,
            &key,
            "/users/track",
            json!({ "attributes": attributes }),
        )
        .await;
    assert!(
        status.is_success(),
        "{}: /users/track: {answer}",
        store.label
    );

    let (status, created) = first
        .api(&client, &key, "/v1/canvases", onboarding(&hooks))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{}: {created}", store.label);
    let canvas_id = created["canvas"]["id"]
        .as_str()
        .expect("the Canvas's id")
        .to_string();
    let (status, launched) = first
        .api(
            &client,
            &key,
            &format!("/v1/canvases/{canvas_id}/launch"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}: {launched}", store.label);
    assert_eq!(launched["canvas"]["status"], "active");

    // Each recipient brings their coupon; the shop comes from the trigger's shared context unless
    // the recipient overrides it (some through the older name, `canvas_entry_properties`).
    let recipients: Vec<Value> = USERS
        .iter()
        .enumerate()
        .map(|(i, &(user, _, shop))| {
            let mut context = json!({ "coupon": format!("C-{user}") });
            if let Some(shop) = shop {
                context["shop"] = shop.into();
            }
            let name = if i % 2 == 0 {
                "context"
            } else {
                "canvas_entry_properties"
            };
            let mut recipient = json!({ "external_user_id": user });
            recipient[name] = context;
            recipient
        })
        .collect();
    let (status, answer) = first
        .api(
            &client,
            &key,
            "/canvas/trigger/send",
            json!({
                "canvas_id": canvas_id,
                "context": { "shop": "Paris" },
                "recipients": recipients
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{}: {answer}", store.label);
    assert!(answer.get("errors").is_none(), "{}: {answer}", store.label);

    // Every welcome arrives and is recorded as delivered, and every journey waits in the Delay
    // (its next step is the split, due about an hour from now).
    let deadline = Deadline::after(WAIT_LIMIT);
    loop {
        let deliveries = received.all();
        let sent = sends(&db, &ws).await;
        let waiting = journeys(&db, &ws).await;
        let soon = Utc::now() + TimeDelta::seconds(DELAY_SECS - 600);
        let all_delivered = sent.len() == users && sent.iter().all(|s| s.status == "delivered");
        let all_delayed = waiting.len() == users
            && waiting.iter().all(|j| {
                j.status == "active"
                    && j.step_id.as_deref() == Some("split")
                    && j.wake_at.is_some_and(|at| at > soon)
            });
        if deliveries.len() >= users && all_delivered && all_delayed {
            break;
        }
        deadline
            .wait(
                &format!(
                    "{users} welcomes are delivered and the journeys wait in the Delay on {}",
                    store.label
                ),
                || {
                    format!(
                        "{}\n{}\n{}\n{}",
                        delivery_summary(&deliveries),
                        send_summary(&sent),
                        journey_summary(&waiting),
                        log_tail(&first.log)
                    )
                },
            )
            .await;
    }

    first.crash();
    let before_crash = received.all();
    assert_eq!(
        before_crash.len(),
        users,
        "{}: only the welcomes went out before the crash; {}",
        store.label,
        delivery_summary(&before_crash)
    );
    assert!(
        before_crash.iter().all(|d| d.step == "welcome"),
        "{}: the Delay held everyone back; {}",
        store.label,
        delivery_summary(&before_crash)
    );

    // While the server is down, the hour passes: moving each journey's wake-up time back by the
    // Delay's length stands for the hour elapsing in the real world (the binary runs on the
    // system clock, so this is how the test skips the hour without waiting for it).
    for journey in journeys(&db, &ws).await {
        let wake_at = journey
            .wake_at
            .expect("a delayed journey has a wake-up time");
        let due = wake_at - TimeDelta::seconds(DELAY_SECS);
        assert!(due <= Utc::now(), "{}: {due} is not past", store.label);
        let moved = canvas_journey::Entity::update_many()
            .col_expr(canvas_journey::Column::WakeAt, Expr::value(Some(due)))
            .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
            .filter(canvas_journey::Column::Id.eq(journey.id.as_str()))
            .filter(canvas_journey::Column::Seq.eq(journey.seq))
            .exec(&db)
            .await
            .expect("move the wake-up time");
        assert_eq!(
            moved.rows_affected, 1,
            "{}: nobody else moved it",
            store.label
        );
    }

    let second = Server::start(&store, "second", &client).await;

    // Everyone is advanced past the split and their A or B is delivered; nothing is left pending
    // in the outbox and no journey is unfinished, so nothing more can be sent.
    let deadline = Deadline::after(WAIT_LIMIT);
    loop {
        let deliveries = received.all();
        let sent = sends(&db, &ws).await;
        let ended = journeys(&db, &ws).await;
        let settled = sent.len() == 2 * users
            && sent.iter().all(|s| s.status == "delivered")
            && ended.len() == users
            && ended.iter().all(|j| j.status == "finished");
        if deliveries.len() >= 2 * users && settled {
            break;
        }
        deadline
            .wait(
                &format!(
                    "every user's A or B is delivered after the restart on {}",
                    store.label
                ),
                || {
                    format!(
                        "{}\n{}\n{}\n{}",
                        delivery_summary(&deliveries),
                        send_summary(&sent),
                        journey_summary(&ended),
                        log_tail(&second.log)
                    )
                },
            )
            .await;
    }
    // Two more scheduler periods (it ticks every second): a journey run again or a send claimed
    // again would show up here.
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        let deliveries = received.all();
        assert_eq!(
            deliveries.len(),
            2 * users,
            "{}: nothing more arrives once everything is delivered; {}",
            store.label,
            delivery_summary(&deliveries)
        );
        tokio::time::sleep(POLL).await;
    }

    // Exactly the right webhooks, each once, each personalised.
    let deliveries = received.all();
    let mut by_user_and_step: HashMap<(String, String), Vec<&Delivery>> = HashMap::new();
    for delivery in &deliveries {
        let user = delivery.body["user"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        by_user_and_step
            .entry((user, delivery.step.clone()))
            .or_default()
            .push(delivery);
    }
    let expected = expected();
    for ((user, step), body) in &expected {
        let got = by_user_and_step
            .get(&(user.clone(), step.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(
            got.len(),
            1,
            "{}: {user} gets exactly one {step}; {}",
            store.label,
            delivery_summary(&deliveries)
        );
        assert_eq!(&got[0].body, body, "{}: {user}'s {step}", store.label);
    }
    let unexpected: Vec<_> = by_user_and_step
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}: nobody gets the other branch's message: {unexpected:?}",
        store.label
    );

    // Each delivery is a send of its own: a retried send would repeat its webhook-id, a second
    // send for the same user and step would bring a new one; neither happened.
    let ids: HashSet<&str> = deliveries.iter().map(|d| d.webhook_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        deliveries.len(),
        "{}: every webhook-id arrives once; {}",
        store.label,
        delivery_summary(&deliveries)
    );
    let sent = sends(&db, &ws).await;
    let outbox: HashSet<&str> = sent.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids, outbox,
        "{}: each webhook-id is an outbox send",
        store.label
    );
    assert!(
        sent.iter()
            .all(|s| s.status == "delivered" && s.attempts == 1),
        "{}: one attempt per send; {}",
        store.label,
        send_summary(&sent)
    );

    drop(second);
    db.close().await.ok();
    std::fs::remove_dir_all(&store.dir).ok();
}

#[tokio::test]
async fn on_sqlite_a_crash_during_a_canvas_delay_loses_nobody_and_sends_nothing_twice() {
    crash_during_the_delay(Store::sqlite(), None).await;
}

#[tokio::test]
async fn on_postgres_a_crash_during_a_canvas_delay_loses_nobody_and_sends_nothing_twice() {
    let Some(url) = postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set: the PostgreSQL run is skipped");
        return;
    };
    let (store, db) = Store::postgres(&url).await;
    crash_during_the_delay(store, Some(db)).await;
}
