//! Braze's `POST /messages/send` for the webhook channel.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use domain::messaging::{self, Audience};
use domain::segment::Filter;
use serde_json::{Value, json};

use super::users::json_body;
use super::{ApiCaller, ApiError};
use crate::AppState;

/// `POST /messages/send` (`messages.send`): a `messages.webhook` object sent now to
/// `external_user_ids`, a `segment_id` or an `audience` (with `broadcast: true`).
pub async fn send(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("messages.send")?;
    let body = json_body(&bytes)?;
    let workspace = caller.key.workspace_id.clone();
    let now = state.clock.now();
    if body.get("campaign_id").is_some_and(|c| !c.is_null()) {
        return Err(ApiError::BadRequest {
            message: "Invalid Campaign ID".into(),
            errors: vec!["campaign_id: no API campaign has this id".into()],
        });
    }
    if body
        .get("user_aliases")
        .is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(ApiError::bad_request(
            "user_aliases: sending to aliases is not supported yet; use external_user_ids",
        ));
    }
    let message = messaging::webhook_from_braze(body.get("messages"))?;
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
    let mut filters = Vec::new();
    if let Some(segment_id) = body.get("segment_id").and_then(Value::as_str) {
        let id = domain::SegmentId::parse(segment_id)
            .map_err(|_| ApiError::bad_request("segment_id: no segment has this id"))?;
        let segment = domain::segment::find(&state.db, &workspace, &id)
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
    let broadcast = body
        .get("broadcast")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let audience = match (external_ids.is_empty(), filter, broadcast) {
        (true, None, _) => {
            return Err(ApiError::BadRequest {
                message: "No Recipients".into(),
                errors: vec![
                    "give external_user_ids, or a segment_id or audience with broadcast: true"
                        .into(),
                ],
            });
        }
        (false, _, true) => {
            return Err(ApiError::bad_request(
                "broadcast: cannot be true when external_user_ids are listed",
            ));
        }
        (true, Some(_), false) => {
            return Err(ApiError::bad_request(
                "broadcast: must be true to send to a whole segment or audience",
            ));
        }
        (true, Some(filter), true) => Audience::Broadcast(filter),
        (false, within, false) => Audience::Listed {
            external_ids,
            within,
        },
    };
    let dispatch = messaging::send_now(&state.db, &workspace, &message, audience, now).await?;
    state.engine.notify_one();
    let mut answer = json!({ "message": "success", "dispatch_id": dispatch.dispatch_id });
    if !dispatch.unknown_recipients.is_empty() {
        answer["errors"] = dispatch
            .unknown_recipients
            .iter()
            .map(|id| {
                Value::String(format!(
                    "external_user_ids: no user has the external id “{id}”"
                ))
            })
            .collect();
    }
    Ok(Json(answer))
}
