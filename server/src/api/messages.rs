//! Braze's messaging endpoints for the webhook channel: `POST /messages/send`, the
//! `/messages/schedule/*` family and `GET /messages/scheduled_broadcasts`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use domain::campaign::{self, ScheduledKind, ScheduledSend};
use domain::messaging::{self, Audience};
use domain::segment::Filter;
use domain::webhook::WebhookMessage;
use domain::{CampaignId, DomainError, ScheduleId, VariantId, WorkspaceId};
use serde_json::{Map, Value, json};

use super::users::json_body;
use super::{ApiCaller, ApiError};
use crate::AppState;

/// Turns a domain error into Braze's fatal error for the fields Braze names specially.
pub(super) fn braze_error(error: DomainError) -> ApiError {
    let special = match error.field() {
        Some("campaign_id") => Some("Invalid Campaign ID"),
        Some("messages.webhook.message_variation_id") => Some("Invalid Message Variant"),
        Some("recipients" | "external_user_ids") if error.to_string().contains("max number") => {
            Some("The max number of external_ids and aliases per request was exceeded")
        }
        _ => None,
    };
    match (special, &error) {
        (Some(message), DomainError::Invalid { .. }) => ApiError::BadRequest {
            message: message.into(),
            errors: vec![error.to_string()],
        },
        _ => error.into(),
    }
}

/// An optional string field.
pub(super) fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::bad_request(format!("{field}: must be a string"))),
    }
}

/// An optional boolean field (default `false`).
pub(super) fn flag(body: &Value, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!(
            "{field}: must be true or false"
        ))),
    }
}

/// A campaign id typed by a caller; an unparseable one is Braze's "Invalid Campaign ID".
pub(super) fn campaign_id(text: &str) -> Result<CampaignId, ApiError> {
    CampaignId::parse(text).map_err(|_| ApiError::BadRequest {
        message: "Invalid Campaign ID".into(),
        errors: vec![format!("campaign_id: no campaign has the id “{text}”")],
    })
}

/// A Braze `send_id`: ASCII, at most 64 characters.
pub(super) fn send_tag(body: &Value) -> Result<Option<String>, ApiError> {
    let Some(tag) = opt_str(body, "send_id")? else {
        return Ok(None);
    };
    if tag.is_empty() || tag.len() > 64 || !tag.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "send_id: must be 1 to 64 printable ASCII characters",
        ));
    }
    Ok(Some(tag.to_string()))
}

/// Who a messaging request reaches, as written in the request.
pub(super) struct Recipients {
    pub external_ids: Vec<String>,
    pub filter: Option<Filter>,
}

impl Recipients {
    /// Reads `external_user_ids`, `user_aliases`, `segment_id`, `audience` and `broadcast`.
    pub async fn read(body: &Value, state: &AppState, ws: &WorkspaceId) -> Result<Self, ApiError> {
        if body
            .get("user_aliases")
            .is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(ApiError::bad_request(
                "user_aliases: sending to aliases is not supported yet; use external_user_ids",
            ));
        }
        let external_ids: Vec<String> = match body.get("external_user_ids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|id| {
                    id.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::bad_request("external_user_ids: must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "external_user_ids: must be an array of strings",
                ));
            }
        };
        if external_ids.len() > messaging::MAX_LISTED_RECIPIENTS {
            return Err(ApiError::BadRequest {
                message: "The max number of external_ids and aliases per request was exceeded"
                    .into(),
                errors: vec!["external_user_ids: at most 50 per request".into()],
            });
        }
        let mut filters = Vec::new();
        if let Some(segment_id) = opt_str(body, "segment_id")? {
            let id = domain::SegmentId::parse(segment_id)
                .map_err(|_| ApiError::bad_request("segment_id: no segment has this id"))?;
            let segment = domain::segment::find(&state.db, ws, &id)
                .await
                .map_err(|_| ApiError::bad_request("segment_id: no segment has this id"))?;
            filters.push(segment.filter);
        }
        if let Some(audience) = body.get("audience").filter(|a| !a.is_null()) {
            filters.push(domain::segment::from_connected_audience(audience)?);
        }
        let filter = match filters.len() {
            0 => None,
            1 => filters.pop(),
            _ => Some(Filter::And { filters }),
        };
        let broadcast = flag(body, "broadcast")?;
        match (external_ids.is_empty(), &filter, broadcast) {
            (true, None, _) => Err(ApiError::BadRequest {
                message: "No Recipients".into(),
                errors: vec![
                    "give external_user_ids, or a segment_id or audience with broadcast: true"
                        .into(),
                ],
            }),
            (false, _, true) => Err(ApiError::bad_request(
                "broadcast: cannot be true when external_user_ids are listed",
            )),
            (true, Some(_), false) => Err(ApiError::bad_request(
                "broadcast: must be true to send to a whole segment or audience",
            )),
            _ => Ok(Self {
                external_ids,
                filter,
            }),
        }
    }

    pub fn into_audience(self) -> Audience {
        if self.external_ids.is_empty() {
            Audience::Broadcast(self.filter.unwrap_or(Filter::And {
                filters: Vec::new(),
            }))
        } else {
            Audience::Listed {
                external_ids: self.external_ids,
                within: self.filter,
            }
        }
    }
}

/// The webhook of a messaging request and, for API campaigns, its variant.
struct Content {
    message: WebhookMessage,
    campaign: Option<(CampaignId, VariantId)>,
}

fn content(body: &Value) -> Result<Content, ApiError> {
    let message = messaging::webhook_from_braze(body.get("messages"))?;
    let campaign = match opt_str(body, "campaign_id")? {
        None => None,
        Some(id) => {
            let id = campaign_id(id)?;
            let variant = body
                .pointer("/messages/webhook/message_variation_id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::BadRequest {
                    message: "Message Variant Unspecified".into(),
                    errors: vec![
                        "messages.webhook.message_variation_id: is required with a campaign_id"
                            .into(),
                    ],
                })?;
            let variant = VariantId::parse(variant).map_err(|_| ApiError::BadRequest {
                message: "Invalid Message Variant".into(),
                errors: vec![format!(
                    "messages.webhook.message_variation_id: “{variant}” is not a variant of this campaign"
                )],
            })?;
            Some((id, variant))
        }
    };
    Ok(Content { message, campaign })
}

fn unknown_errors(unknown: &[String]) -> Vec<Value> {
    unknown
        .iter()
        .map(|id| {
            Value::String(format!(
                "external_user_ids: no user has the external id “{id}”"
            ))
        })
        .collect()
}

/// `POST /messages/send` (`messages.send`): a `messages.webhook` object sent now to
/// `external_user_ids`, a `segment_id` or an `audience` (with `broadcast: true`), tracked under an
/// API campaign when `campaign_id` is given.
pub async fn send(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("messages.send")?;
    let body = json_body(&bytes)?;
    let workspace = caller.key.workspace_id.clone();
    let now = state.clock.now();
    let content = content(&body)?;
    let tag = send_tag(&body)?;
    let audience = Recipients::read(&body, &state, &workspace)
        .await?
        .into_audience();
    let (dispatch_id, unknown) = match content.campaign {
        Some((campaign, variant)) => {
            let outcome = campaign::send_api_campaign(
                &state.db,
                &workspace,
                &campaign,
                &variant,
                &content.message,
                audience,
                tag,
                now,
            )
            .await
            .map_err(braze_error)?;
            (outcome.dispatch_id, outcome.unknown_recipients)
        }
        None => {
            if tag.is_some() {
                return Err(ApiError::bad_request(
                    "send_id: only sends tracked under a campaign_id can carry a send_id",
                ));
            }
            let dispatch =
                messaging::send_now(&state.db, &workspace, &content.message, audience, now).await?;
            (dispatch.dispatch_id, dispatch.unknown_recipients)
        }
    };
    state.engine.notify_one();
    let mut answer = json!({ "message": "success", "dispatch_id": dispatch_id });
    if !unknown.is_empty() {
        answer["errors"] = unknown_errors(&unknown).into();
    }
    Ok(Json(answer))
}

/// Reads Braze's `schedule` object: `time` (ISO 8601; without an offset when `in_local_time`) and
/// `in_local_time`. `at_optimal_time` is refused: Herald has no send-time model.
pub(super) fn schedule_object(body: &Value) -> Result<(DateTime<Utc>, bool), ApiError> {
    let schedule = body
        .get("schedule")
        .filter(|s| s.is_object())
        .ok_or_else(|| ApiError::bad_request("schedule: an object with a time is required"))?;
    if flag(schedule, "at_optimal_time")? {
        return Err(ApiError::bad_request(
            "schedule.at_optimal_time: Intelligent Timing is not supported; give a time",
        ));
    }
    let in_local_time = flag(schedule, "in_local_time")?;
    let time = schedule
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("schedule.time: is required (ISO 8601)"))?;
    let parsed = DateTime::parse_from_rfc3339(time)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            // Local-time schedules name a wall time without an offset; read it as UTC wall time.
            NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M"))
                .map(|t| t.and_utc())
        })
        .map_err(|_| {
            ApiError::bad_request(format!(
                "schedule.time: “{time}” is not an ISO 8601 time such as 2026-12-01T09:30:00Z"
            ))
        })?;
    Ok((parsed, in_local_time))
}

pub(super) fn schedule_id(body: &Value) -> Result<ScheduleId, ApiError> {
    let id = opt_str(body, "schedule_id")?
        .ok_or_else(|| ApiError::bad_request("schedule_id: is required"))?;
    ScheduleId::parse(id)
        .map_err(|_| ApiError::bad_request(format!("schedule_id: no schedule has the id “{id}”")))
}

pub(super) fn schedule_answer(scheduled: &ScheduledSend) -> Json<Value> {
    Json(json!({
        "message": "success",
        "dispatch_id": scheduled.dispatch_id,
        "schedule_id": scheduled.schedule_id,
    }))
}

async fn scheduled_messages(
    body: &Value,
    state: &AppState,
    ws: &WorkspaceId,
) -> Result<ScheduledKind, ApiError> {
    let content = content(body)?;
    let recipients = Recipients::read(body, state, ws).await?;
    let (campaign_id, variant_id) = match content.campaign {
        Some((c, v)) => (Some(c), Some(v)),
        None => (None, None),
    };
    Ok(ScheduledKind::Messages {
        message: content.message,
        external_ids: recipients.external_ids,
        filter: recipients.filter,
        campaign_id,
        variant_id,
        send_tag: send_tag(body)?,
    })
}

/// `POST /messages/schedule/create` (`messages.schedule.create`).
pub async fn schedule_create(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("messages.schedule.create")?;
    let body = json_body(&bytes)?;
    let ws = caller.key.workspace_id.clone();
    let (time, local) = schedule_object(&body)?;
    let kind = scheduled_messages(&body, &state, &ws).await?;
    let scheduled =
        campaign::create_scheduled(&state.db, &ws, kind, time, local, state.clock.now())
            .await
            .map_err(braze_error)?;
    Ok(schedule_answer(&scheduled))
}

/// `POST /messages/schedule/update` (`messages.schedule.update`): a new `schedule`, new
/// `messages`, or both. New messages keep the schedule's recipients.
pub async fn schedule_update(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("messages.schedule.update")?;
    let body = json_body(&bytes)?;
    let ws = caller.key.workspace_id.clone();
    let id = schedule_id(&body)?;
    let time = match body.get("schedule") {
        None | Some(Value::Null) => None,
        Some(_) => Some(schedule_object(&body)?),
    };
    let kind = match body.get("messages") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let message = messaging::webhook_from_braze(body.get("messages"))?;
            let existing = campaign::find_scheduled(&state.db, &ws, &id)
                .await
                .map_err(|_| {
                    ApiError::bad_request(format!("schedule_id: no schedule has the id “{id}”"))
                })?;
            match existing.kind {
                ScheduledKind::Messages {
                    external_ids,
                    filter,
                    campaign_id,
                    variant_id,
                    send_tag,
                    ..
                } => Some(ScheduledKind::Messages {
                    message,
                    external_ids,
                    filter,
                    campaign_id,
                    variant_id,
                    send_tag,
                }),
                ScheduledKind::CampaignTrigger { .. } | ScheduledKind::CanvasTrigger { .. } => {
                    return Err(ApiError::bad_request(
                        "schedule_id: this schedule triggers a campaign or Canvas; update it with its trigger/schedule/update endpoint",
                    ));
                }
            }
        }
    };
    if time.is_none() && kind.is_none() {
        return Err(ApiError::bad_request(
            "give a schedule, messages, or both to change",
        ));
    }
    let scheduled = campaign::update_scheduled(&state.db, &ws, &id, kind, time, state.clock.now())
        .await
        .map_err(braze_error)?;
    Ok(schedule_answer(&scheduled))
}

/// `POST /messages/schedule/delete` (`messages.schedule.delete`).
pub async fn schedule_delete(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("messages.schedule.delete")?;
    let body = json_body(&bytes)?;
    let id = schedule_id(&body)?;
    campaign::cancel_scheduled(&state.db, &caller.key.workspace_id, &id, state.clock.now())
        .await
        .map_err(braze_error)?;
    Ok(Json(json!({ "message": "success" })))
}

/// `GET /messages/scheduled_broadcasts?end_time=…` (`messages.schedule_broadcasts`): pending
/// schedules, scheduled campaigns' next sends and scheduled Canvases' next entries up to
/// `end_time`, soonest first.
pub async fn scheduled_broadcasts(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("messages.schedule_broadcasts")?;
    let end = query
        .get("end_time")
        .ok_or_else(|| ApiError::bad_request("end_time: is required (ISO 8601)"))?;
    let end = DateTime::parse_from_rfc3339(end)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request("end_time: must be an ISO 8601 time"))?;
    let ws = caller.key.workspace_id.clone();
    let mut items: Vec<(DateTime<Utc>, Value)> = Vec::new();
    for scheduled in campaign::list_scheduled(&state.db, &ws, end).await? {
        let (name, kind, owner) = match &scheduled.kind {
            ScheduledKind::Messages { campaign_id, .. } => (
                "API send",
                "messages",
                json!({ "campaign_api_identifier": campaign_id }),
            ),
            ScheduledKind::CampaignTrigger { campaign_id, .. } => (
                "Triggered campaign",
                "campaign_trigger",
                json!({ "campaign_api_identifier": campaign_id }),
            ),
            ScheduledKind::CanvasTrigger { canvas_id, .. } => (
                "Triggered Canvas",
                "canvas_trigger",
                json!({ "canvas_api_identifier": canvas_id }),
            ),
        };
        let mut item = json!({
            "name": name,
            "type": kind,
            "schedule_id": scheduled.schedule_id,
            "send_id": Value::Null,
            "time": scheduled.send_at.to_rfc3339(),
            "in_local_time": scheduled.in_local_time,
        });
        if let (Some(item), Some(owner)) = (item.as_object_mut(), owner.as_object()) {
            item.extend(owner.clone());
        }
        items.push((scheduled.send_at, item));
    }
    // The list carries each running campaign's next send already.
    for found in campaign::list_campaigns(&state.db, &ws, &Default::default()).await? {
        if let Some(next) = found.next_send_at.filter(|t| *t <= end) {
            items.push((
                next,
                json!({
                    "name": found.name,
                    "type": "Campaign",
                    "campaign_api_identifier": found.id,
                    "time": next.to_rfc3339(),
                    "tags": found.tags,
                }),
            ));
        }
    }
    for (canvas, next) in domain::canvas::scheduled_entries(&state.db, &ws, end).await? {
        items.push((
            next,
            json!({
                "name": canvas.name,
                "type": "Canvas",
                "canvas_api_identifier": canvas.id,
                "time": next.to_rfc3339(),
                "tags": canvas.tags,
            }),
        ));
    }
    items.sort_by_key(|(t, _)| *t);
    Ok(Json(json!({
        "message": "success",
        "scheduled_broadcasts": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })))
}

/// Who a trigger call (`/campaigns/trigger/send`, `/canvas/trigger/send`) reaches, as read from
/// its `recipients`, `broadcast` and `audience` fields.
pub(super) enum TriggerTargetBody<'a> {
    /// Listed recipients (≤ 50), each still to be read with [`listed_recipient`].
    Recipients(&'a [Value]),
    /// The whole audience, optionally narrowed by a Connected Audience.
    Broadcast(Option<Filter>),
}

/// Reads the target of a trigger call; `whole` names what `broadcast` reaches, for the error.
pub(super) fn trigger_target<'a>(
    body: &'a Value,
    whole: &str,
) -> Result<TriggerTargetBody<'a>, ApiError> {
    let broadcast = flag(body, "broadcast")?;
    let recipients = match body.get("recipients") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items.as_slice()),
        Some(_) => return Err(ApiError::bad_request("recipients: must be an array")),
    };
    match (recipients, broadcast) {
        (Some(_), true) => Err(ApiError::bad_request(
            "broadcast: cannot be true when recipients are listed",
        )),
        (None, false) => Err(ApiError::BadRequest {
            message: "No Recipients".into(),
            errors: vec![format!(
                "give recipients, or broadcast: true to reach {whole}"
            )],
        }),
        (None, true) => Ok(TriggerTargetBody::Broadcast(
            match body.get("audience").filter(|a| !a.is_null()) {
                None => None,
                Some(a) => Some(domain::segment::from_connected_audience(a)?),
            },
        )),
        (Some(items), false) if items.len() > messaging::MAX_LISTED_RECIPIENTS => {
            Err(ApiError::BadRequest {
                message: "The max number of external_ids and aliases per request was exceeded"
                    .into(),
                errors: vec!["recipients: at most 50 per request".into()],
            })
        }
        (Some(items), false) => Ok(TriggerTargetBody::Recipients(items)),
    }
}

/// The fields every listed trigger recipient has, whatever it triggers.
pub(super) struct ListedRecipient {
    pub external_user_id: String,
    pub send_to_existing_only: bool,
    pub attributes: Option<Map<String, Value>>,
}

/// Reads `recipients[i]`: an `external_user_id` (aliases and email addresses are refused with a
/// clear error), `send_to_existing_only` (default true) and `attributes` (required when
/// `send_to_existing_only` is false).
pub(super) fn listed_recipient(i: usize, item: &Value) -> Result<ListedRecipient, ApiError> {
    let at = |field: &str| format!("recipients[{i}].{field}");
    if !item.is_object() {
        return Err(ApiError::bad_request(format!(
            "recipients[{i}]: must be an object"
        )));
    }
    for unsupported in ["user_alias", "email"] {
        if item.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "{}: not supported yet; use external_user_id",
                at(unsupported)
            )));
        }
    }
    let external_user_id = item
        .get("external_user_id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{}: is required (a string)",
                at("external_user_id")
            ))
        })?
        .to_string();
    let send_to_existing_only = match item.get("send_to_existing_only") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "{}: must be true or false",
                at("send_to_existing_only")
            )));
        }
    };
    let attributes = match item.get("attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "{}: must be an object of user attributes",
                at("attributes")
            )));
        }
    };
    if !send_to_existing_only && attributes.is_none() {
        return Err(ApiError::bad_request(format!(
            "{}: is required when send_to_existing_only is false",
            at("attributes")
        )));
    }
    Ok(ListedRecipient {
        external_user_id,
        send_to_existing_only,
        attributes,
    })
}
