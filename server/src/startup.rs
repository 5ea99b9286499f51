//! Opening the database, assembling the HTTP application and serving it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::ssr::ServerContext;
use app::{App, shell};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Router, middleware};
use domain::Clock;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::Config;
use crate::session_store::DbSessionStore;

/// Everything request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Where large reads that need no transaction go (segment sizes): on a SQLite file, a
    /// read-only connection of its own ([`engine::scheduler::open_reader`]), so counting a big
    /// audience does not hold up the one writing connection; otherwise `db`.
    pub reads: DatabaseConnection,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub leptos_options: LeptosOptions,
    /// Wakes the dispatcher when sends were just enqueued.
    pub engine: Arc<tokio::sync::Notify>,
}

/// The delivery engine for this process.
pub fn engine_for(
    db: &DatabaseConnection,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Arc<engine::Dispatcher> {
    Arc::new(engine::Dispatcher::new(
        db.clone(),
        engine::WebhookClient::new(&config.delivery()),
        config.retry(),
        clock,
        config.dispatch(),
    ))
}

/// The reading connection beside `db` ([`engine::scheduler::open_reader`]).
async fn reader_for(db: &DatabaseConnection) -> Result<DatabaseConnection, BoxError> {
    engine::scheduler::open_reader(db)
        .await
        .map_err(|e| format!("cannot open a reading connection to the database: {e}").into())
}

/// Runs the delivery engine and the campaign scheduler alone until the process is told to stop
/// (`herald worker`).
pub async fn run_worker(
    db: DatabaseConnection,
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<(), BoxError> {
    Migrator::up(&db, None)
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    let dispatcher = engine_for(&db, &config, clock.clone());
    let reads = reader_for(&db).await?;
    let scheduler =
        engine::scheduler::Scheduler::new(db.clone(), clock, dispatcher.waker()).with_reader(reads);
    // Each loop on a worker of the runtime (as `herald serve` runs them), not both polled by the
    // main thread's future: the dispatcher's loop then runs beside its send tasks.
    let dispatching = tokio::spawn(dispatcher.run(shutdown_signal()));
    let scheduling = tokio::spawn(scheduler.run(shutdown_signal()));
    let (dispatched, scheduled) = tokio::join!(dispatching, scheduling);
    dispatched.map_err(|e| format!("the delivery engine stopped: {e}"))?;
    scheduled.map_err(|e| format!("the scheduler stopped: {e}"))?;
    Ok(())
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the configured database (creating the SQLite file's directory if needed).
pub async fn connect(config: &Config) -> Result<DatabaseConnection, BoxError> {
    let url = config.database_url.as_str();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or_default();
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|_| path != ":memory:") {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "cannot create the database directory {}: {e}",
                    dir.display()
                )
            })?;
        }
    }
    let synchronous = match config.sqlite_synchronous.as_str() {
        "normal" => sea_orm::sqlx::sqlite::SqliteSynchronous::Normal,
        _ => sea_orm::sqlx::sqlite::SqliteSynchronous::Full,
    };
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        // Herald's SQLite settings, and the durability level, which is a setting. Both are
        // ignored on PostgreSQL.
        .map_sqlx_sqlite_opts(move |o| {
            engine::scheduler::sqlite_settings(o).synchronous(synchronous)
        });
    let db = Database::connect(options)
        .await
        .map_err(|e| format!("cannot open the database at {url}: {e}"))?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // WAL lets readers proceed while a writer commits; the setting is stored in the file.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

/// A server listening in the background (used by `serve` and by tests).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: JoinHandle<Result<(), std::io::Error>>,
}

/// Migrates the database, builds the app and serves it on `listener`.
pub async fn start(
    db: DatabaseConnection,
    config: Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> Result<RunningServer, BoxError> {
    Migrator::up(&db, None)
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    let store = DbSessionStore::open(&db).await?;
    tokio::spawn(
        store
            .clone()
            .continuously_delete_expired(Duration::from_secs(3600)),
    );

    let leptos_options = LeptosOptions::builder()
        .output_name("herald")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.bind)
        .build();
    let dispatcher = engine_for(&db, &config, clock.clone());
    tokio::spawn(dispatcher.clone().run(shutdown_signal()));
    // Campaign schedules, REST schedules and action-based triggers.
    let reads = reader_for(&db).await?;
    // Campaign pages and segment counts share one reading connection.
    let scheduler =
        engine::scheduler::Scheduler::new(db.clone(), clock.clone(), dispatcher.waker())
            .with_reader(reads.clone());
    tokio::spawn(scheduler.run(shutdown_signal()));
    let state = AppState {
        db,
        reads,
        config: Arc::new(config),
        clock,
        leptos_options,
        engine: dispatcher.waker(),
    };
    let app = router(state, store);
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
    });
    Ok(RunningServer { addr, handle })
}

fn router(state: AppState, store: DbSessionStore) -> Router {
    let context = ServerContext {
        db: state.db.clone(),
        reads: state.reads.clone(),
        clock: state.clock.clone(),
        public_url: state.config.public_base(),
        engine: state.engine.clone(),
    };
    let sessions = SessionManagerLayer::new(store)
        .with_name("herald_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::days(7),
        ));
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", get(crate::api::openapi))
        .nest("/api", crate::api::router(state.clone()))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(context.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::csrf::same_origin_only,
        ))
        .layer(middleware::map_response(security_headers))
        .layer(sessions)
        .with_state(state)
}

/// Headers every response carries: no framing by other sites (clickjacking), no MIME sniffing, and
/// no full URLs (invite tokens are in paths) in the Referer sent to other sites.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
