//! Braze's campaign endpoints: `POST /campaigns/trigger/send`, `/campaigns/trigger/schedule/*`,
//! `POST /sends/id/create`, and the exports `GET /campaigns/list`, `/campaigns/details`,
//! `/campaigns/data_series` and `/sends/data_series`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use chrono::{DateTime, Duration, Utc};
use domain::campaign::{
    self, Bucket, Campaign, CampaignFilter, CampaignStatus, Delivery, ScheduledKind,
    TriggerRecipient, TriggerRequest, TriggerTarget,
};
use domain::{CampaignId, WorkspaceId};
use serde_json::{Map, Value, json};

use super::messages::{
    TriggerTargetBody, braze_error, campaign_id, listed_recipient, opt_str, schedule_answer,
    schedule_id, schedule_object, send_tag, trigger_target,
};
use super::users::json_body;
use super::{ApiCaller, ApiError};
use crate::AppState;

/// Largest `trigger_properties` object, serialized, as in Braze.
const MAX_TRIGGER_PROPERTIES: usize = 50 * 1024;

fn object(value: Option<&Value>, field: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(ApiError::bad_request(format!("{field}: must be an object"))),
    }
}

fn required_campaign(body: &Value) -> Result<CampaignId, ApiError> {
    let id = opt_str(body, "campaign_id")?.ok_or_else(|| ApiError::BadRequest {
        message: "Invalid Campaign ID".into(),
        errors: vec!["campaign_id: is required".into()],
    })?;
    campaign_id(id)
}

/// Reads the body of `/campaigns/trigger/send` (and of its schedule variants).
fn trigger_request(body: &Value) -> Result<TriggerRequest, ApiError> {
    let trigger_properties = object(body.get("trigger_properties"), "trigger_properties")?;
    if serde_json::to_string(&trigger_properties).map_or(0, |s| s.len()) > MAX_TRIGGER_PROPERTIES {
        return Err(ApiError::bad_request(
            "trigger_properties: must be at most 50 KB",
        ));
    }
    let target = match trigger_target(body, "the campaign's whole audience")? {
        TriggerTargetBody::Broadcast(audience) => TriggerTarget::Broadcast { audience },
        TriggerTargetBody::Recipients(items) => TriggerTarget::Recipients {
            recipients: items
                .iter()
                .enumerate()
                .map(|(i, item)| trigger_recipient(i, item))
                .collect::<Result<_, _>>()?,
        },
    };
    Ok(TriggerRequest {
        target,
        trigger_properties,
        send_tag: send_tag(body)?,
    })
}

fn trigger_recipient(i: usize, item: &Value) -> Result<TriggerRecipient, ApiError> {
    let listed = listed_recipient(i, item)?;
    Ok(TriggerRecipient {
        external_user_id: listed.external_user_id,
        trigger_properties: object(
            item.get("trigger_properties"),
            &format!("recipients[{i}].trigger_properties"),
        )?,
        send_to_existing_only: listed.send_to_existing_only,
        attributes: listed.attributes,
    })
}

/// `POST /campaigns/trigger/send` (`campaigns.trigger.send`): sends an API-triggered campaign to
/// up to 50 listed recipients, each with their own `trigger_properties` and `attributes`, or to
/// its whole audience with `broadcast: true`.
pub async fn trigger_send(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.trigger.send")?;
    let body = json_body(&bytes)?;
    let id = required_campaign(&body)?;
    let request = trigger_request(&body)?;
    let outcome = campaign::trigger_campaign(
        &state.db,
        &caller.key.workspace_id,
        &id,
        request,
        state.clock.now(),
    )
    .await
    .map_err(braze_error)?;
    state.engine.notify_one();
    let mut answer = json!({ "message": "success", "dispatch_id": outcome.dispatch_id });
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
    Ok(Json(answer))
}

/// `POST /campaigns/trigger/schedule/create` (`campaigns.trigger.schedule.create`).
pub async fn trigger_schedule_create(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.trigger.schedule.create")?;
    let body = json_body(&bytes)?;
    let id = required_campaign(&body)?;
    let request = trigger_request(&body)?;
    let (time, local) = schedule_object(&body)?;
    let scheduled = campaign::create_scheduled(
        &state.db,
        &caller.key.workspace_id,
        ScheduledKind::CampaignTrigger {
            campaign_id: id,
            request,
        },
        time,
        local,
        state.clock.now(),
    )
    .await
    .map_err(braze_error)?;
    Ok(schedule_answer(&scheduled))
}

/// `POST /campaigns/trigger/schedule/update` (`campaigns.trigger.schedule.update`): a new
/// `schedule`, new recipients and properties, or both.
pub async fn trigger_schedule_update(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.trigger.schedule.update")?;
    let body = json_body(&bytes)?;
    let id = schedule_id(&body)?;
    let time = match body.get("schedule") {
        None | Some(Value::Null) => None,
        Some(_) => Some(schedule_object(&body)?),
    };
    let changes_target = ["recipients", "broadcast", "trigger_properties", "audience"]
        .iter()
        .any(|f| body.get(*f).is_some_and(|v| !v.is_null()));
    let kind = if changes_target {
        let campaign = required_campaign(&body)?;
        Some(ScheduledKind::CampaignTrigger {
            campaign_id: campaign,
            request: trigger_request(&body)?,
        })
    } else {
        None
    };
    if time.is_none() && kind.is_none() {
        return Err(ApiError::bad_request(
            "give a schedule, recipients or trigger_properties to change",
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
    .map_err(braze_error)?;
    Ok(schedule_answer(&scheduled))
}

/// `POST /campaigns/trigger/schedule/delete` (`campaigns.trigger.schedule.delete`).
pub async fn trigger_schedule_delete(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.trigger.schedule.delete")?;
    let body = json_body(&bytes)?;
    let id = schedule_id(&body)?;
    campaign::cancel_scheduled(&state.db, &caller.key.workspace_id, &id, state.clock.now())
        .await
        .map_err(braze_error)?;
    Ok(Json(json!({ "message": "success" })))
}

/// `POST /sends/id/create` (`sends.id.create`).
pub async fn create_send_id(
    caller: ApiCaller,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("sends.id.create")?;
    let body = json_body(&bytes)?;
    let id = required_campaign(&body)?;
    let tag = send_tag(&body)?;
    let ws = caller.key.workspace_id.clone();
    campaign::find_campaign(&state.db, &ws, &id)
        .await
        .map_err(|_| ApiError::BadRequest {
            message: "Invalid Campaign ID".into(),
            errors: vec!["campaign_id: no campaign has this id".into()],
        })?;
    let tag = campaign::create_send_tag(&state.db, &ws, &id, tag, state.clock.now())
        .await
        .map_err(braze_error)?;
    Ok(Json(json!({ "message": "success", "send_id": tag })))
}

fn page(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("page") {
        None => Ok(0),
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::bad_request("page: must be a whole number")),
    }
}

/// `GET /campaigns/list` (`campaigns.list`): 100 per page, oldest first unless
/// `sort_direction=desc`; archived ones only with `include_archived=true`.
pub async fn list(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.list")?;
    let page = page(&query)?;
    let include_archived = match query.get("include_archived").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "include_archived: must be true or false",
            ));
        }
    };
    let descending = match query.get("sort_direction").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad_request("sort_direction: must be asc or desc")),
    };
    let edited_after = match query.get("last_edit.time[gt]") {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request("last_edit.time[gt]: must be an ISO 8601 time")
                })?,
        ),
    };
    let filter = CampaignFilter {
        include_archived,
        ..Default::default()
    };
    let mut campaigns = campaign::list_campaigns(&state.db, &caller.key.workspace_id, &filter)
        .await?
        .into_iter()
        .filter(|c| edited_after.is_none_or(|t| c.updated_at > t))
        .collect::<Vec<_>>();
    campaigns.sort_by_key(|c| c.created_at);
    if descending {
        campaigns.reverse();
    }
    let campaigns: Vec<Value> = campaigns
        .into_iter()
        .skip(page * 100)
        .take(100)
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "is_api_campaign": c.kind == campaign::CampaignKind::Api,
                "tags": c.tags,
                "last_edited": c.updated_at.to_rfc3339(),
            })
        })
        .collect();
    Ok(Json(
        json!({ "message": "success", "campaigns": campaigns }),
    ))
}

async fn campaign_from_query(
    state: &AppState,
    ws: &WorkspaceId,
    query: &HashMap<String, String>,
) -> Result<Campaign, ApiError> {
    let id = query
        .get("campaign_id")
        .ok_or_else(|| ApiError::BadRequest {
            message: "Invalid Campaign ID".into(),
            errors: vec!["campaign_id: is required".into()],
        })?;
    let id = campaign_id(id)?;
    campaign::find_campaign(&state.db, ws, &id)
        .await
        .map_err(|e| match e {
            domain::DomainError::NotFound(_) => ApiError::BadRequest {
                message: "Invalid Campaign ID".into(),
                errors: vec!["campaign_id: no campaign has this id".into()],
            },
            other => other.into(),
        })
}

fn schedule_type(delivery: &Delivery) -> &'static str {
    match delivery {
        Delivery::Scheduled { .. } => "time_based",
        Delivery::Action { .. } => "action_based",
        Delivery::Api => "api_triggered",
    }
}

fn conversion_behaviors(c: &Campaign) -> Vec<Value> {
    c.conversions
        .iter()
        .map(|conversion| match &conversion.trigger {
            campaign::Trigger::CustomEvent { name, .. } => json!({
                "type": "Performs Custom Event",
                "custom_event_name": name,
                "window": conversion.window_seconds,
            }),
            campaign::Trigger::Purchase {
                product_id: Some(product),
            } => json!({
                "type": "Makes Specific Purchase",
                "product": product,
                "window": conversion.window_seconds,
            }),
            campaign::Trigger::Purchase { product_id: None } => json!({
                "type": "Makes Any Purchase",
                "window": conversion.window_seconds,
            }),
        })
        .collect()
}

/// `GET /campaigns/details?campaign_id=…` (`campaigns.details`), in Braze's shape.
pub async fn details(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.details")?;
    let c = campaign_from_query(&state, &caller.key.workspace_id, &query).await?;
    let mut messages = Map::new();
    for variant in &c.variants {
        let Some(id) = &variant.id else { continue };
        let mut entry = json!({ "channel": "webhook", "name": variant.name });
        if let Some(message) = &variant.message {
            entry["url"] = message.url.clone().into();
            entry["request_method"] = message.method.as_str().into();
        }
        messages.insert(id.to_string(), entry);
    }
    Ok(Json(json!({
        "message": "success",
        "created_at": c.created_at.to_rfc3339(),
        "updated_at": c.updated_at.to_rfc3339(),
        "archived": c.status == CampaignStatus::Archived,
        "draft": c.status == CampaignStatus::Draft,
        "enabled": matches!(c.status, CampaignStatus::Active | CampaignStatus::Scheduled),
        "has_post_launch_draft": false,
        "name": c.name,
        "description": c.description,
        "schedule_type": schedule_type(&c.delivery),
        "channels": ["webhook"],
        "first_sent": c.launched_at.map(|t| t.to_rfc3339()),
        "last_sent": Value::Null,
        "tags": c.tags,
        "teams": [],
        "messages": messages,
        "conversion_behaviors": conversion_behaviors(&c),
    })))
}

/// `length` days ending at `ending_at` (default now), as the data-series endpoints take them.
fn period(
    query: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, Bucket), ApiError> {
    let length: i64 = query
        .get("length")
        .ok_or_else(|| ApiError::bad_request("length: is required (1 to 100)"))?
        .parse()
        .ok()
        .filter(|l| (1..=100).contains(l))
        .ok_or_else(|| ApiError::bad_request("length: must be a whole number from 1 to 100"))?;
    let end = match query.get("ending_at") {
        // A second ahead, so sends made this very instant count.
        None => now + Duration::seconds(1),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::bad_request("ending_at: must be an ISO 8601 time"))?,
    };
    let bucket = match query.get("unit").map(String::as_str) {
        None | Some("day") => Bucket::Day,
        Some("hour") => Bucket::Hour,
        Some(_) => return Err(ApiError::bad_request("unit: must be day or hour")),
    };
    let span = match bucket {
        Bucket::Day => Duration::days(length),
        Bucket::Hour => Duration::hours(length),
    };
    Ok((end - span, end, bucket))
}

/// Groups a campaign's series by bucket time, in Braze's data-series shape.
fn data_series(stats: &campaign::CampaignStats) -> Vec<Value> {
    let mut by_time: std::collections::BTreeMap<DateTime<Utc>, Vec<&campaign::SeriesPoint>> =
        Default::default();
    for point in &stats.series {
        by_time.entry(point.time).or_default().push(point);
    }
    by_time
        .into_iter()
        .map(|(time, points)| {
            let webhook: Vec<Value> = points
                .iter()
                .map(|p| {
                    json!({
                        "variation_api_id": p.variant_id,
                        "sent": p.sends,
                        "delivered": p.delivered,
                        "errors": p.errors,
                    })
                })
                .collect();
            json!({
                "time": time.to_rfc3339(),
                "messages": { "webhook": webhook },
            })
        })
        .collect()
}

/// `GET /campaigns/data_series?campaign_id=…&length=…` (`campaigns.data_series`).
pub async fn campaign_data_series(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("campaigns.data_series")?;
    let ws = caller.key.workspace_id.clone();
    let c = campaign_from_query(&state, &ws, &query).await?;
    let (since, until, bucket) = period(&query, state.clock.now())?;
    let stats = campaign::campaign_stats(&state.db, &ws, &c.id, since, until, bucket, None).await?;
    Ok(Json(json!({
        "message": "success",
        "data": data_series(&stats),
        "totals": totals(&stats),
    })))
}

fn totals(stats: &campaign::CampaignStats) -> Value {
    json!({
        "sent": stats.total.sends,
        "delivered": stats.total.delivered,
        "errors": stats.total.errors_client + stats.total.errors_server + stats.total.errors_network,
        "unique_recipients": stats.total.unique_recipients,
        "conversions": stats.total.conversions,
    })
}

/// `GET /sends/data_series?campaign_id=…&send_id=…&length=…` (`sends.data_series`).
pub async fn send_data_series(
    caller: ApiCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("sends.data_series")?;
    let ws = caller.key.workspace_id.clone();
    let c = campaign_from_query(&state, &ws, &query).await?;
    let tag = query
        .get("send_id")
        .ok_or_else(|| ApiError::bad_request("send_id: is required"))?;
    let (since, until, bucket) = period(&query, state.clock.now())?;
    let stats =
        campaign::campaign_stats(&state.db, &ws, &c.id, since, until, bucket, Some(tag)).await?;
    Ok(Json(json!({
        "message": "success",
        "data": data_series(&stats),
        "totals": totals(&stats),
    })))
}
