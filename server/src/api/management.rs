//! Herald's own management endpoints under `/api/v1`: the workspace, its API keys, and every
//! campaign operation of the dashboard (on the same domain services), described by
//! `/api/openapi.json`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Duration, Utc};
use domain::CampaignId;
use domain::campaign::{self, Bucket, CampaignFilter, CampaignInput, CampaignStatus, CapRule};
use domain::canvas;
use serde_json::{Value, json};

use super::{ApiCaller, ApiError};
use crate::AppState;

fn workspace_json(caller: &ApiCaller) -> Value {
    json!({
        "id": caller.workspace.id,
        "name": caller.workspace.name,
        "created_at": caller.workspace.created_at.to_rfc3339(),
    })
}

/// `GET /api/v1/workspace`: the key's workspace and what the key may do. Any valid key may ask.
pub async fn current_workspace(caller: ApiCaller) -> Json<Value> {
    Json(json!({
        "message": "success",
        "workspace": workspace_json(&caller),
        "api_key": {
            "id": caller.key.id,
            "name": caller.key.name,
            "identifier": caller.key.prefix,
            "permissions": caller.key.permissions,
            "ip_allowlist": caller.key.ip_allowlist.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        },
    }))
}

/// `GET /api/v1/workspaces/{id}` (`herald.manage`): a key only ever reaches its own workspace.
pub async fn workspace_by_id(
    caller: ApiCaller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("herald.manage")?;
    if workspace_id != caller.workspace.id {
        return Err(ApiError::Forbidden(
            "Access Denied: this API key belongs to another workspace".into(),
        ));
    }
    Ok(Json(
        json!({ "message": "success", "workspace": workspace_json(&caller) }),
    ))
}

/// `GET /api/v1/api_keys` (`herald.manage`): the workspace's keys, never their secrets.
pub async fn api_keys(
    caller: ApiCaller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    caller.require("herald.manage")?;
    let keys = domain::api_key::list_api_keys(&state.db, &caller.key.workspace_id).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "identifier": k.prefix,
                "permissions": k.permissions,
                "created_at": k.created_at.to_rfc3339(),
                "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()),
                "revoked_at": k.revoked_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    Ok(Json(json!({ "message": "success", "api_keys": keys })))
}

// ---- Campaigns: every operation of the dashboard's campaign pages, on the same domain services.

fn manage(caller: &ApiCaller) -> Result<domain::WorkspaceId, ApiError> {
    caller.require("herald.manage")?;
    Ok(caller.key.workspace_id.clone())
}

fn parse_campaign_id(id: &str) -> Result<CampaignId, ApiError> {
    CampaignId::parse(id).map_err(|_| ApiError::NotFound)
}

/// Reads a JSON body into `T`, answering a 400 that says what does not fit.
fn typed_body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<(T, Value), ApiError> {
    let value = super::users::json_body(bytes)?;
    let typed = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    Ok((typed, value))
}

fn campaign_json(c: &campaign::Campaign) -> Value {
    json!({ "message": "success", "campaign": c })
}

/// `GET /api/v1/campaigns?status=&tag=&delivery_type=&include_archived=` (`herald.manage`).
pub async fn campaigns_list(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(CampaignStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status: must be draft, scheduled, active, stopped or archived")
        })?),
    };
    let delivery_type = match query.get("delivery_type").map(String::as_str) {
        None => None,
        Some(t @ ("scheduled" | "action" | "api")) => Some(t.to_string()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "delivery_type: must be scheduled, action or api",
            ));
        }
    };
    let filter = CampaignFilter {
        status,
        tag: query.get("tag").cloned(),
        delivery_type,
        include_archived: query.get("include_archived").is_some_and(|v| v == "true"),
    };
    let campaigns = campaign::list_campaigns(&state.db, &ws, &filter).await?;
    Ok(Json(
        json!({ "message": "success", "campaigns": campaigns }),
    ))
}

/// `POST /api/v1/campaigns` (`herald.manage`): a new draft from a campaign definition.
pub async fn campaigns_create(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let ws = manage(&caller)?;
    let (input, _) = typed_body::<CampaignInput>(&bytes)?;
    let created = campaign::create_campaign(&state.db, &ws, input, state.clock.now()).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(campaign_json(&created)),
    ))
}

/// `GET /api/v1/campaigns/{id}` (`herald.manage`).
pub async fn campaigns_get(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let found = campaign::find_campaign(&state.db, &ws, &parse_campaign_id(&id)?).await?;
    Ok(Json(campaign_json(&found)))
}

/// `PUT /api/v1/campaigns/{id}` (`herald.manage`): replaces the definition; a `version` in the
/// body makes the change conditional on nobody having edited it since.
pub async fn campaigns_update(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let (input, raw) = typed_body::<CampaignInput>(&bytes)?;
    let version = match raw.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| ApiError::bad_request("version: must be a whole number"))?,
        ),
    };
    let updated = campaign::update_campaign(
        &state.db,
        &ws,
        &parse_campaign_id(&id)?,
        input,
        version,
        state.clock.now(),
    )
    .await?;
    Ok(Json(campaign_json(&updated)))
}

/// `POST /api/v1/campaigns/{id}/{action}` (`herald.manage`): `launch`, `stop`, `resume`,
/// `archive`, `unarchive` or `duplicate`.
pub async fn campaigns_action(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let id = parse_campaign_id(&id)?;
    let now = state.clock.now();
    let db = &state.db;
    let result = match action.as_str() {
        "launch" => campaign::launch_campaign(db, &ws, &id, now).await?,
        "stop" => campaign::stop_campaign(db, &ws, &id, now).await?,
        "resume" => campaign::resume_campaign(db, &ws, &id, now).await?,
        "archive" => campaign::archive_campaign(db, &ws, &id, now).await?,
        "unarchive" => campaign::unarchive_campaign(db, &ws, &id, now).await?,
        "duplicate" => campaign::duplicate_campaign(db, &ws, &id, now).await?,
        _ => return Err(ApiError::NotFound),
    };
    state.engine.notify_one();
    Ok(Json(campaign_json(&result)))
}

/// `GET /api/v1/campaigns/{id}/stats?since=&until=&bucket=hour|day` (`herald.manage`): per
/// variant figures and a time series; the last 7 days by default.
pub async fn campaigns_stats(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let id = parse_campaign_id(&id)?;
    let (since, until, bucket) = stats_period(&query, state.clock.now())?;
    campaign::find_campaign(&state.db, &ws, &id).await?;
    let stats = campaign::campaign_stats(&state.db, &ws, &id, since, until, bucket, None).await?;
    Ok(Json(json!({ "message": "success", "stats": stats })))
}

/// `GET /api/v1/campaigns/{id}/progress?dispatch_id=` (`herald.manage`): live send progress.
pub async fn campaigns_progress(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let id = parse_campaign_id(&id)?;
    campaign::find_campaign(&state.db, &ws, &id).await?;
    let progress = campaign::progress(
        &state.db,
        &ws,
        &id,
        query.get("dispatch_id").map(String::as_str),
    )
    .await?;
    Ok(Json(json!({ "message": "success", "progress": progress })))
}

/// `since`, `until` (ISO 8601; by default the 7 days up to a second from now, so sends made this
/// very instant count) and `bucket` (`hour` or `day`).
fn stats_period(
    query: &std::collections::HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, Bucket), ApiError> {
    let time = |field: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        query
            .get(field)
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_request(format!("{field}: must be an ISO 8601 time"))
                    })
            })
            .transpose()
    };
    let until = time("until")?.unwrap_or(now + Duration::seconds(1));
    let since = time("since")?.unwrap_or(until - Duration::days(7));
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    let bucket = match query.get("bucket").map(String::as_str) {
        None | Some("day") => Bucket::Day,
        Some("hour") => Bucket::Hour,
        Some(_) => return Err(ApiError::bad_request("bucket: must be hour or day")),
    };
    Ok((since, until, bucket))
}

/// `GET /api/v1/frequency_caps` (`herald.manage`).
pub async fn caps_list(
    caller: ApiCaller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let rules = campaign::list_cap_rules(&state.db, &ws).await?;
    Ok(Json(json!({ "message": "success", "rules": rules })))
}

/// `POST /api/v1/frequency_caps` (`herald.manage`).
pub async fn caps_create(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let ws = manage(&caller)?;
    let (rule, _) = typed_body::<CapRule>(&bytes)?;
    let rule = campaign::create_cap_rule(&state.db, &ws, rule, state.clock.now()).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "message": "success", "rule": rule })),
    ))
}

/// `DELETE /api/v1/frequency_caps/{id}` (`herald.manage`).
pub async fn caps_delete(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    campaign::delete_cap_rule(&state.db, &ws, &id).await?;
    Ok(Json(json!({ "message": "success" })))
}

// ---- Canvases: the same operations as the dashboard's Canvas pages.

fn parse_canvas_id(id: &str) -> Result<domain::CanvasId, ApiError> {
    domain::CanvasId::parse(id).map_err(|_| ApiError::NotFound)
}

fn canvas_json(c: &canvas::Canvas) -> Value {
    json!({ "message": "success", "canvas": c })
}

/// `GET /api/v1/canvases?status=&tag=&include_archived=` (`herald.manage`).
pub async fn canvases_list(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(canvas::CanvasStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status: must be draft, active, paused, stopped or archived")
        })?),
    };
    let filter = canvas::CanvasFilter {
        status,
        tag: query.get("tag").cloned(),
        include_archived: query.get("include_archived").is_some_and(|v| v == "true"),
    };
    let canvases = canvas::list_canvases(&state.db, &ws, &filter).await?;
    Ok(Json(json!({ "message": "success", "canvases": canvases })))
}

/// `POST /api/v1/canvases` (`herald.manage`): a new draft.
pub async fn canvases_create(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let ws = manage(&caller)?;
    let (input, _) = typed_body::<canvas::CanvasInput>(&bytes)?;
    let created = canvas::create_canvas(&state.db, &ws, input, state.clock.now()).await?;
    Ok((axum::http::StatusCode::CREATED, Json(canvas_json(&created))))
}

/// `GET /api/v1/canvases/{id}` (`herald.manage`), with the draft's launch problems.
pub async fn canvases_get(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let found = canvas::find_canvas(&state.db, &ws, &parse_canvas_id(&id)?).await?;
    let problems = canvas::check_definition(&state.db, &ws, &found.draft).await?;
    let mut answer = canvas_json(&found);
    answer["problems"] = serde_json::to_value(problems).unwrap_or_default();
    Ok(Json(answer))
}

/// `PUT /api/v1/canvases/{id}` (`herald.manage`): saves the definition; for a launched Canvas a
/// new version that new entries use (users inside stay on theirs). `version` in the body makes it
/// conditional.
pub async fn canvases_update(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let (input, raw) = typed_body::<canvas::CanvasInput>(&bytes)?;
    let version = match raw.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| ApiError::bad_request("version: must be a whole number"))?,
        ),
    };
    let updated = canvas::update_canvas(
        &state.db,
        &ws,
        &parse_canvas_id(&id)?,
        input,
        version,
        state.clock.now(),
    )
    .await?;
    Ok(Json(canvas_json(&updated)))
}

/// `POST /api/v1/canvases/{id}/{action}` (`herald.manage`): `launch`, `pause`, `resume`, `stop`,
/// `archive`, `unarchive` or `duplicate`.
pub async fn canvases_action(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let id = parse_canvas_id(&id)?;
    let now = state.clock.now();
    let db = &state.db;
    let result = match action.as_str() {
        "launch" => canvas::launch_canvas(db, &ws, &id, now).await?,
        "pause" => canvas::pause_canvas(db, &ws, &id, now).await?,
        "resume" => canvas::resume_canvas(db, &ws, &id, now).await?,
        "stop" => canvas::stop_canvas(db, &ws, &id, now).await?,
        "archive" => canvas::archive_canvas(db, &ws, &id, now).await?,
        "unarchive" => canvas::unarchive_canvas(db, &ws, &id, now).await?,
        "duplicate" => canvas::duplicate_canvas(db, &ws, &id, now).await?,
        _ => return Err(ApiError::NotFound),
    };
    state.engine.notify_one();
    Ok(Json(canvas_json(&result)))
}

/// `GET /api/v1/canvases/{id}/stats?since=&until=&bucket=` (`herald.manage`).
pub async fn canvases_stats(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ws = manage(&caller)?;
    let id = parse_canvas_id(&id)?;
    let (since, until, bucket) = stats_period(&query, state.clock.now())?;
    canvas::find_canvas(&state.db, &ws, &id).await?;
    let stats = canvas::canvas_stats(&state.db, &ws, &id, since, until, bucket).await?;
    Ok(Json(json!({ "message": "success", "stats": stats })))
}
