//! Braze's user-data endpoints: `/users/track`, `/users/delete`, `/users/identify`,
//! `/users/alias/new`, `/users/export/ids`, and `/events/list`. Shapes and limits follow Braze;
//! the rules live in `domain::profile`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use domain::WorkspaceId;
use serde_json::{Value, json};

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
    let outcome =
        domain::profile::track(&state.db, &workspace(&caller), &body, state.clock.now()).await?;
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
