//! Braze's user-data endpoints: `/users/track`, `/users/delete`, `/users/identify`,
//! `/users/alias/new`, `/users/export/ids`, and `/events/list`. Shapes and limits follow Braze;
//! the rules live in `domain::profile`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use domain::profile::{CatalogMemory, PreparedTrack, TrackOutcome};
use domain::{DomainError, DomainResult, WorkspaceId};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{ApiCaller, ApiError};
use crate::AppState;

/// The largest request body accepted (75 attributes, events and purchases fit easily).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Parses a JSON body, answering Braze-style 400s that say what is wrong with it.
pub(super) fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(format!(
            "the request body is larger than {} MiB",
            MAX_BODY_BYTES / 1024 / 1024
        )));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

fn workspace(caller: &ApiCaller) -> WorkspaceId {
    caller.key.workspace_id.clone()
}

/// `POST /users/track` (`users.track`).
pub async fn track(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("users.track")?;
    let body = json_body(&bytes)?;
    // Checked here, on the request's own task; written by the server's track writer.
    let call = domain::profile::prepare_track(&workspace(&caller), &body, state.clock.now())?;
    let outcome = super::gate::runtime(&state).tracker.track(call).await?;
    let mut answer = json!({
        "message": "success",
        "attributes_processed": outcome.attributes_processed,
        "events_processed": outcome.events_processed,
        "purchases_processed": outcome.purchases_processed,
    });
    if !outcome.errors.is_empty() {
        answer["errors"] = outcome.errors.iter().map(|e| e.to_json()).collect();
    }
    Ok(Json(answer))
}

/// `POST /users/delete` (`users.delete`).
pub async fn delete(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("users.delete")?;
    let body = json_body(&bytes)?;
    let deleted = domain::profile::delete_users(&state.db, &workspace(&caller), &body).await?;
    Ok(Json(json!({ "message": "success", "deleted": deleted })))
}

/// `POST /users/identify` (`users.identify`).
pub async fn identify(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("users.identify")?;
    let body = json_body(&bytes)?;
    let processed =
        domain::profile::identify(&state.db, &workspace(&caller), &body, state.clock.now()).await?;
    Ok(Json(
        json!({ "message": "success", "aliases_processed": processed }),
    ))
}

/// `POST /users/alias/new` (`users.alias.new`).
pub async fn new_alias(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("users.alias.new")?;
    let body = json_body(&bytes)?;
    let processed =
        domain::profile::new_aliases(&state.db, &workspace(&caller), &body, state.clock.now())
            .await?;
    Ok(Json(
        json!({ "message": "success", "aliases_processed": processed }),
    ))
}

/// `POST /users/export/ids` (`users.export.ids`).
pub async fn export_ids(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("users.export.ids")?;
    let body = json_body(&bytes)?;
    Ok(Json(
        domain::profile::export_ids(&state.db, &workspace(&caller), &body).await?,
    ))
}

/// `GET /events/list` (`events.list`): custom event names, 250 per page as in Braze.
pub async fn events_list(
    caller: ApiCaller,
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("events.list")?;
    let page: usize = match query.get("page") {
        None => 0,
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::bad_request("page: must be a whole number"))?,
    };
    let catalog = domain::profile::event_catalog(&state.db, &workspace(&caller)).await?;
    let names: Vec<String> = catalog
        .into_iter()
        .filter(|entry| matches!(entry.kind, domain::profile::EventKind::Event))
        .map(|entry| entry.name)
        .skip(page * 250)
        .take(250)
        .collect();
    Ok(Json(json!({ "message": "success", "events": names })))
}

/// Most items (attributes, events and purchases) one write transaction takes from waiting calls.
const BATCH_ITEMS: usize = 3_000;
/// Calls waiting for the writer before new ones wait to be queued.
const QUEUE_LENGTH: usize = 1_024;

/// Writes `/users/track` calls for one server: one task takes every call waiting and writes them
/// in one transaction ([`domain::profile::track_many`]), then answers each. Under load, one commit
/// (one fsync, one hold of SQLite's write lock) serves many requests and writers in this process
/// never contend with each other; a lone call is written at once, without waiting for company.
pub(crate) struct TrackWriter {
    calls: mpsc::Sender<Waiting>,
}

struct Waiting {
    call: PreparedTrack,
    answer: oneshot::Sender<DomainResult<TrackOutcome>>,
}

impl TrackWriter {
    /// Starts the writer task; it ends when the writer is dropped.
    pub(crate) fn start(db: DatabaseConnection) -> Self {
        let (calls, waiting) = mpsc::channel(QUEUE_LENGTH);
        tokio::spawn(write_batches(db, waiting));
        Self { calls }
    }

    /// Queues a call and waits for its outcome.
    pub(crate) async fn track(&self, call: PreparedTrack) -> DomainResult<TrackOutcome> {
        let (answer, outcome) = oneshot::channel();
        self.calls
            .send(Waiting { call, answer })
            .await
            .map_err(|_| writer_gone())?;
        outcome.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> DomainError {
    DomainError::Db(DbErr::Custom("the /users/track writer stopped".into()))
}

async fn write_batches(db: DatabaseConnection, mut waiting: mpsc::Receiver<Waiting>) {
    let memory = Arc::new(CatalogMemory::default());
    while let Some(first) = waiting.recv().await {
        let mut items = first.call.item_count();
        let mut batch = vec![first];
        while items < BATCH_ITEMS {
            match waiting.try_recv() {
                Ok(next) => {
                    items += next.call.item_count();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (calls, answers): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|w| (w.call, w.answer)).unzip();
        // On its own task, so that a panic fails this batch's calls and not the writer.
        let (db, memory) = (db.clone(), memory.clone());
        let written =
            tokio::spawn(async move { domain::profile::track_many(&db, &calls, &memory).await })
                .await;
        match written {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    // A caller that went away no longer needs its answer.
                    let _ = answer.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "a /users/track batch failed");
                for answer in answers {
                    let _ = answer.send(Err(writer_gone()));
                }
            }
        }
    }
}
