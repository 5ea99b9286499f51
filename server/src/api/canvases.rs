//! Braze's Canvas endpoints: `POST /canvas/trigger/send`, `/canvas/trigger/schedule/*`, and the
//! exports `GET /canvas/list`, `/canvas/details` and `/canvas/data_series`.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use domain::campaign::{self, Bucket, Conversion, ScheduledKind, Trigger};
use domain::canvas::{
    self, Canvas, CanvasFilter, CanvasRecipient, CanvasStatus, CanvasTarget, CanvasTriggerRequest,
    Entry,
};
use domain::{CanvasId, WorkspaceId};
use serde_json::{Map, Value, json};

use super::messages::{
    TriggerTargetBody, braze_error, listed_recipient, opt_str, schedule_answer, schedule_id,
    schedule_object, trigger_target,
};
use super::users::json_body;
use super::{ApiCaller, ApiError};
use crate::AppState;

/// Largest `context` object, serialized, as in Braze.
const MAX_CONTEXT: usize = 50 * 1024;

fn invalid_canvas(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        message: "Invalid Canvas ID".into(),
        errors: vec![detail.into()],
    }
}

fn canvas_id(text: &str) -> Result<CanvasId, ApiError> {
    CanvasId::parse(text)
        .map_err(|_| invalid_canvas(format!("canvas_id: no Canvas has the id “{text}”")))
}

fn required_canvas(body: &Value) -> Result<CanvasId, ApiError> {
    let id = opt_str(body, "canvas_id")?.ok_or_else(|| invalid_canvas("canvas_id: is required"))?;
    canvas_id(id)
}

/// `context`, or its older name `canvas_entry_properties`; both at once must agree on neither
/// being given twice.
fn context(value: &Value, at: &str) -> Result<Map<String, Value>, ApiError> {
    let read = |field: &str| -> Result<Option<Map<String, Value>>, ApiError> {
        match value.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(_) => Err(ApiError::bad_request(format!(
                "{at}{field}: must be an object"
            ))),
        }
    };
    match (read("context")?, read("canvas_entry_properties")?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "{at}context: give context or canvas_entry_properties, not both"
        ))),
        (Some(map), None) | (None, Some(map)) => Ok(map),
        (None, None) => Ok(Map::new()),
    }
}

/// Reads the body of `/canvas/trigger/send` (and of its schedule variants).
fn trigger_request(body: &Value) -> Result<CanvasTriggerRequest, ApiError> {
    let context = context(body, "")?;
    if serde_json::to_string(&context).map_or(0, |s| s.len()) > MAX_CONTEXT {
        return Err(ApiError::bad_request("context: must be at most 50 KB"));
    }
    let target = match trigger_target(body, "the Canvas's whole entry audience")? {
        TriggerTargetBody::Broadcast(audience) => CanvasTarget::Broadcast { audience },
        TriggerTargetBody::Recipients(items) => CanvasTarget::Recipients {
            recipients: items
                .iter()
                .enumerate()
                .map(|(i, item)| recipient(i, item))
                .collect::<Result<_, _>>()?,
        },
    };
    Ok(CanvasTriggerRequest { target, context })
}

fn recipient(i: usize, item: &Value) -> Result<CanvasRecipient, ApiError> {
    let listed = listed_recipient(i, item)?;
    Ok(CanvasRecipient {
        external_user_id: listed.external_user_id,
        context: context(item, &format!("recipients[{i}]."))?,
        send_to_existing_only: listed.send_to_existing_only,
        attributes: listed.attributes,
    })
}

fn canvas_error(error: domain::DomainError) -> ApiError {
    if error.field() == Some("canvas_id") {
        invalid_canvas(error.to_string())
    } else {
        braze_error(error)
    }
}

/// `POST /canvas/trigger/send` (`canvas.trigger.send`): enters up to 50 listed recipients (each
/// with their own `context` and `attributes`) or, with `broadcast: true`, the Canvas's whole
/// entry audience. Answers 201; a paused or archived Canvas accepts the call, enters no one and
/// says so in `notice`.
pub async fn trigger_send(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("canvas.trigger.send")?;
    let body = json_body(&bytes)?;
    let id = required_canvas(&body)?;
    let request = trigger_request(&body)?;
    let outcome = canvas::trigger_canvas(
        &state.db,
        &caller.key.workspace_id,
        &id,
        request,
        state.clock.now(),
    )
    .await
    .map_err(canvas_error)?;
    state.engine.notify_one();
    let mut answer = json!({ "message": "success", "dispatch_id": outcome.dispatch_id });
    if let Some(notice) = outcome.notice {
        answer["notice"] = notice.into();
    }
    if !outcome.unknown_recipients.is_empty() {
        answer["errors"] = outcome
            .unknown_recipients
            .iter()
            .map(|id| {
                Value::String(format!(
                    "recipients: no user has the external id “{id}” (send_to_existing_only is true)"
                ))
            })
            .collect();
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /canvas/trigger/schedule/create` (`canvas.trigger.schedule.create`): the entries happen
/// at `schedule.time` (UTC). With `schedule.in_local_time: true` the time is a wall time (no
/// offset) read in each user's zone (theirs, else the Canvas's, else UTC): the users enter when it
/// first comes anywhere (UTC+14) and each journey's first step waits for it in the user's zone,
/// or runs at once where it has passed; a time that has passed in every zone is a 400.
pub async fn trigger_schedule_create(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("canvas.trigger.schedule.create")?;
    let body = json_body(&bytes)?;
    let id = required_canvas(&body)?;
    let request = trigger_request(&body)?;
    let (time, local) = schedule_object(&body)?;
    let scheduled = campaign::create_scheduled(
        &state.db,
        &caller.key.workspace_id,
        ScheduledKind::CanvasTrigger {
            canvas_id: id,
            request,
        },
        time,
        local,
        state.clock.now(),
    )
    .await
    .map_err(canvas_error)?;
    Ok(schedule_answer(&scheduled))
}

/// `POST /canvas/trigger/schedule/update` (`canvas.trigger.schedule.update`): a new `schedule`
/// (UTC or, with `in_local_time`, a wall time as for create), new recipients or context, or both.
pub async fn trigger_schedule_update(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("canvas.trigger.schedule.update")?;
    let body = json_body(&bytes)?;
    let id = schedule_id(&body)?;
    let time = match body.get("schedule") {
        None | Some(Value::Null) => None,
        Some(_) => Some(schedule_object(&body)?),
    };
    let changes_target = [
        "recipients",
        "broadcast",
        "context",
        "canvas_entry_properties",
        "audience",
    ]
    .iter()
    .any(|f| body.get(*f).is_some_and(|v| !v.is_null()));
    let kind = if changes_target {
        Some(ScheduledKind::CanvasTrigger {
            canvas_id: required_canvas(&body)?,
            request: trigger_request(&body)?,
        })
    } else {
        None
    };
    if time.is_none() && kind.is_none() {
        return Err(ApiError::bad_request(
            "give a schedule, recipients or context to change",
        ));
    }
    let scheduled = campaign::update_scheduled(
        &state.db,
        &caller.key.workspace_id,
        &id,
        kind,
        time,
        state.clock.now(),
    )
    .await
    .map_err(canvas_error)?;
    Ok(schedule_answer(&scheduled))
}

/// `POST /canvas/trigger/schedule/delete` (`canvas.trigger.schedule.delete`).
pub async fn trigger_schedule_delete(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("canvas.trigger.schedule.delete")?;
    let body = json_body(&bytes)?;
    let id = schedule_id(&body)?;
    campaign::cancel_scheduled(&state.db, &caller.key.workspace_id, &id, state.clock.now())
        .await
        .map_err(canvas_error)?;
    Ok(Json(json!({ "message": "success" })))
}

/// `GET /canvas/list` (`canvas.list`): 100 per page, oldest first unless `sort_direction=desc`.
pub async fn list(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("canvas.list")?;
    let page: usize = match query.get("page") {
        None => 0,
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::bad_request("page: must be a whole number"))?,
    };
    let include_archived = query.get("include_archived").is_some_and(|v| v == "true");
    let descending = match query.get("sort_direction").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad_request("sort_direction: must be asc or desc")),
    };
    let filter = CanvasFilter {
        include_archived,
        ..Default::default()
    };
    let mut canvases = canvas::list_canvases(&state.db, &caller.key.workspace_id, &filter).await?;
    canvases.sort_by_key(|c| c.created_at);
    if descending {
        canvases.reverse();
    }
    let canvases: Vec<Value> = canvases
        .into_iter()
        .skip(page * 100)
        .take(100)
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "tags": c.tags,
                "last_edited": c.updated_at.to_rfc3339(),
            })
        })
        .collect();
    Ok(Json(json!({ "message": "success", "canvases": canvases })))
}

async fn canvas_from_query(
    state: &AppState,
    ws: &WorkspaceId,
    query: &HashMap<String, String>,
) -> Result<Canvas, ApiError> {
    let id = query
        .get("canvas_id")
        .ok_or_else(|| invalid_canvas("canvas_id: is required"))?;
    let id = canvas_id(id)?;
    canvas::find_canvas(&state.db, ws, &id)
        .await
        .map_err(|e| match e {
            domain::DomainError::NotFound(_) => invalid_canvas("canvas_id: no Canvas has this id"),
            other => other.into(),
        })
}

fn schedule_type(entry: &Entry) -> &'static str {
    match entry {
        Entry::Scheduled { .. } => "date",
        Entry::Action { .. } => "action_based",
        Entry::Api => "api_triggered",
    }
}

/// The conversion events in the shape of Braze's `conversion_behaviors` (as `/campaigns/details`
/// gives them); the first is primary.
fn conversion_behaviors(conversions: &[Conversion]) -> Vec<Value> {
    conversions
        .iter()
        .map(|conversion| match &conversion.trigger {
            Trigger::CustomEvent { name, .. } => json!({
                "type": "Performs Custom Event",
                "custom_event_name": name,
                "window": conversion.window_seconds,
            }),
            Trigger::Purchase {
                product_id: Some(product),
            } => json!({
                "type": "Makes Specific Purchase",
                "product": product,
                "window": conversion.window_seconds,
            }),
            Trigger::Purchase { product_id: None } => json!({
                "type": "Makes Any Purchase",
                "window": conversion.window_seconds,
            }),
        })
        .collect()
}

/// `GET /canvas/details?canvas_id=…` (`canvas.details`), in Braze's shape, with the conversion
/// events as `conversion_behaviors`.
pub async fn details(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("canvas.details")?;
    let c = canvas_from_query(&state, &caller.key.workspace_id, &query).await?;
    let variants: Vec<Value> = c
        .draft
        .variants
        .iter()
        .map(|v| json!({ "name": v.name, "id": v.id, "first_step_ids": v.first_step.iter().collect::<Vec<_>>() }))
        .collect();
    let steps: Vec<Value> = c
        .draft
        .steps
        .iter()
        .map(|s| {
            let kind = serde_json::to_value(&s.kind).unwrap_or(Value::Null);
            json!({
                "name": s.name,
                "id": s.id,
                "type": kind.get("type").cloned().unwrap_or(Value::Null),
                "channels": if kind.get("type") == Some(&json!("message")) { json!(["webhook"]) } else { json!([]) },
            })
        })
        .collect();
    Ok(Json(json!({
        "message": "success",
        "created_at": c.created_at.to_rfc3339(),
        "updated_at": c.updated_at.to_rfc3339(),
        "name": c.name,
        "description": c.description,
        "archived": c.status == CanvasStatus::Archived,
        "draft": c.status == CanvasStatus::Draft,
        "enabled": c.status == CanvasStatus::Active,
        "has_post_launch_draft": false,
        "schedule_type": schedule_type(&c.draft.entry),
        "first_entry": c.launched_at.map(|t| t.to_rfc3339()),
        "last_entry": Value::Null,
        "channels": ["webhook"],
        "variants": variants,
        "tags": c.tags,
        "teams": [],
        "steps": steps,
        "conversion_behaviors": conversion_behaviors(&c.draft.conversions),
        "live_version": c.live_version,
    })))
}

/// `GET /canvas/data_series?canvas_id=…&length=…` (`canvas.data_series`): per day (or hour),
/// `total_stats` with entries, sends and, as in Braze, `conversions` (journeys whose first
/// primary conversion event fell in the bucket) and `conversions_by_entry_time` (journeys entered
/// in the bucket that converted); the period's totals (`conversions` counting the journeys
/// entered in it that converted); and per-step totals, each step's `converted` counting the
/// journeys that converted after entering it.
pub async fn data_series(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("canvas.data_series")?;
    let ws = caller.key.workspace_id.clone();
    let c = canvas_from_query(&state, &ws, &query).await?;
    let length: i64 = query
        .get("length")
        .and_then(|l| l.parse().ok())
        .filter(|l| (1..=100).contains(l))
        .ok_or_else(|| ApiError::bad_request("length: must be a whole number from 1 to 100"))?;
    let end = match query.get("ending_at") {
        None => state.clock.now() + Duration::seconds(1),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::bad_request("ending_at: must be an ISO 8601 time"))?,
    };
    let bucket = match query.get("unit").map(String::as_str) {
        None | Some("day") => Bucket::Day,
        Some("hour") => Bucket::Hour,
        Some(_) => return Err(ApiError::bad_request("unit: must be day or hour")),
    };
    let since = match bucket {
        Bucket::Day => end - Duration::days(length),
        Bucket::Hour => end - Duration::hours(length),
    };
    let stats = canvas::canvas_stats(&state.db, &ws, &c.id, since, end, bucket).await?;
    // (entries, sends, conversions, conversions by entry time) per bucket.
    let mut buckets: BTreeMap<DateTime<Utc>, [u64; 4]> = BTreeMap::new();
    for (time, entries, sends) in &stats.series {
        let bucket = buckets.entry(*time).or_default();
        bucket[0] += entries;
        bucket[1] += sends;
    }
    for point in &stats.conversion_series {
        let bucket = buckets.entry(point.time).or_default();
        bucket[2] += point.conversions;
        bucket[3] += point.conversions_by_entry_time;
    }
    let series: Vec<Value> = buckets
        .into_iter()
        .map(|(time, [entries, sends, conversions, by_entry])| {
            json!({
                "time": time.to_rfc3339(),
                "total_stats": {
                    "entries": entries,
                    "sends": sends,
                    "conversions": conversions,
                    "conversions_by_entry_time": by_entry,
                },
            })
        })
        .collect();
    Ok(Json(json!({
        "message": "success",
        "data": {
            "name": c.name,
            "stats": series,
            "totals": {
                "entries": stats.entries,
                "in_progress": stats.in_progress,
                "finished": stats.finished,
                "exited": stats.exited,
                "conversions": stats.conversions,
            },
            "steps": stats.steps,
        },
    })))
}
