//! Server-only glue for server functions: the shared context, the signed-in account, and the one
//! mapping from domain errors to HTTP statuses and messages.

use std::sync::Arc;

use domain::entity::account;
use domain::workspace::Access;
use domain::{AccountId, Capability, Clock, DomainError, WorkspaceId};
use http::StatusCode;
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use sea_orm::DatabaseConnection;
use tower_sessions::Session;

/// What the server provides to every server function and page render.
#[derive(Clone)]
pub struct ServerContext {
    pub db: DatabaseConnection,
    /// For large reads that need no transaction (segment sizes, reach estimates): a read-only
    /// connection of its own on a SQLite file, so they do not hold up the writing one; else `db`.
    pub reads: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    /// Public base URL without a trailing slash, for links shown to people.
    pub public_url: String,
    /// Wakes the delivery engine after sends are enqueued.
    pub engine: Arc<tokio::sync::Notify>,
}

/// The session key holding the signed-in account's id.
pub const SESSION_ACCOUNT: &str = "account_id";

/// The message server functions fail with when nobody is signed in; pages redirect on it.
pub const SIGN_IN_REQUIRED: &str = "sign in required";

pub fn ctx() -> Result<ServerContext, ServerFnError> {
    use_context::<ServerContext>().ok_or_else(|| ServerFnError::new("server context is missing"))
}

pub async fn session() -> Result<Session, ServerFnError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|e| ServerFnError::new(format!("session: {e}")))
}

fn set_status(status: StatusCode) {
    if let Some(response) = use_context::<ResponseOptions>() {
        response.set_status(status);
    }
}

/// Turns a domain error into the server function error people see, with a fitting HTTP status.
pub fn fail(error: DomainError) -> ServerFnError {
    let status = match &error {
        DomainError::Invalid { .. } => StatusCode::BAD_REQUEST,
        DomainError::Conflict { .. } => StatusCode::CONFLICT,
        DomainError::NotFound(_) => StatusCode::NOT_FOUND,
        DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
        DomainError::BadCredentials => StatusCode::UNAUTHORIZED,
        DomainError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        DomainError::Db(e) => {
            tracing_error(e);
            set_status(StatusCode::INTERNAL_SERVER_ERROR);
            return ServerFnError::new("something went wrong on the server; try again");
        }
    };
    set_status(status);
    ServerFnError::new(error.to_string())
}

fn tracing_error(error: &sea_orm::DbErr) {
    leptos::logging::error!("database error: {error}");
}

/// Any other server-side failure (sessions, for instance).
pub fn internal(error: impl std::fmt::Display) -> ServerFnError {
    leptos::logging::error!("server function failed: {error}");
    set_status(StatusCode::INTERNAL_SERVER_ERROR);
    ServerFnError::new("something went wrong on the server; try again")
}

/// The signed-in account, if any. A session pointing at a deleted account counts as signed out.
pub async fn current_account() -> Result<Option<account::Model>, ServerFnError> {
    let session = session().await?;
    let Some(id) = session
        .get::<String>(SESSION_ACCOUNT)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let ctx = ctx()?;
    match domain::account::find_account(&ctx.db, &AccountId::from_db(id)).await {
        Ok(account) => Ok(Some(account)),
        Err(DomainError::NotFound(_)) => Ok(None),
        Err(e) => Err(fail(e)),
    }
}

/// The signed-in account, or a 401 "sign in required".
pub async fn require_account() -> Result<account::Model, ServerFnError> {
    match current_account().await? {
        Some(account) => Ok(account),
        None => {
            set_status(StatusCode::UNAUTHORIZED);
            Err(ServerFnError::new(SIGN_IN_REQUIRED))
        }
    }
}

/// The signed-in account and its access to workspace `ws` for `capability`; every server function
/// touching a workspace starts here.
pub async fn authorize(
    ws: &str,
    capability: Capability,
) -> Result<(account::Model, Access), ServerFnError> {
    let account = require_account().await?;
    let ctx = ctx()?;
    let workspace = WorkspaceId::parse(ws).map_err(fail)?;
    let access = domain::workspace::authorize(
        &ctx.db,
        &AccountId::from_db(account.id.clone()),
        &workspace,
        capability,
    )
    .await
    .map_err(fail)?;
    Ok((account, access))
}

/// Signs `account` in on this session under a fresh session id (against session fixation).
pub async fn start_session(account: &account::Model) -> Result<(), ServerFnError> {
    let session = session().await?;
    session.cycle_id().await.map_err(internal)?;
    session
        .insert(SESSION_ACCOUNT, account.id.clone())
        .await
        .map_err(internal)?;
    Ok(())
}

/// Formats a time for tables.
pub fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}
