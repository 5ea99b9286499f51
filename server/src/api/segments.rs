//! Braze's segment export endpoints: `GET /segments/list` and `GET /segments/details`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::{ApiCaller, ApiError};
use crate::AppState;

/// `GET /segments/list` (`segments.list`): 100 per page, by creation time, archived ones left out.
pub async fn list(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("segments.list")?;
    let page: usize = match query.get("page") {
        None => 0,
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::bad_request("page: must be a whole number"))?,
    };
    let descending = match query.get("sort_direction").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad_request("sort_direction: must be asc or desc")),
    };
    let mut segments = domain::segment::list(&state.db, &caller.key.workspace_id, false).await?;
    segments.sort_by_key(|s| s.created_at);
    if descending {
        segments.reverse();
    }
    let page: Vec<Value> = segments
        .into_iter()
        .skip(page * 100)
        .take(100)
        .map(|s| json!({ "id": s.id, "name": s.name, "analytics_tracking_enabled": false, "tags": [] }))
        .collect();
    Ok(Json(json!({ "message": "success", "segments": page })))
}

/// `GET /segments/details?segment_id=…` (`segments.details`).
pub async fn details(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("segments.details")?;
    let id = query
        .get("segment_id")
        .ok_or_else(|| ApiError::bad_request("segment_id: is required"))?;
    let id = domain::SegmentId::parse(id)
        .map_err(|_| ApiError::bad_request("segment_id: no segment has this id"))?;
    let segment = domain::segment::find(&state.db, &caller.key.workspace_id, &id)
        .await
        .map_err(|_| ApiError::bad_request("segment_id: no segment has this id"))?;
    let size = domain::segment::count(
        &state.reads,
        &caller.key.workspace_id,
        &segment.filter,
        state.clock.now(),
    )
    .await?;
    Ok(Json(json!({
        "message": "success",
        "name": segment.name,
        "description": segment.description,
        "text_description": serde_json::to_string(&segment.filter).unwrap_or_default(),
        "created_at": segment.created_at.to_rfc3339(),
        "updated_at": segment.updated_at.to_rfc3339(),
        "size": size,
        "tags": [],
        "teams": [],
    })))
}
