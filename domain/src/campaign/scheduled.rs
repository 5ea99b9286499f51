//! Sends scheduled over the REST API: `/messages/schedule/*`, `/campaigns/trigger/schedule/*`
//! and `/canvas/trigger/schedule/*`, listed by `/messages/scheduled_broadcasts`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::audience::{PAGE, Pages, in_audience};
use super::model::{CampaignKind, CampaignStatus};
use super::trigger::{
    LocalTime, TriggerRequest, api_triggered_campaign, check_request, trigger_in,
};
use crate::claim::to_millis;
use crate::entity::{profile, scheduled_message, webhook_send};
use crate::messaging::Audience;
use crate::outbox::{NewSend, SourceKind, Tracking, status as send_status};
use crate::segment::Filter;
use crate::webhook::WebhookMessage;
use crate::{CampaignId, DomainError, DomainResult, ScheduleId, VariantId, WorkspaceId};

/// What a schedule carries out when its time comes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduledKind {
    /// `/messages/schedule/create`: a webhook to a listed audience or a broadcast filter.
    Messages {
        message: WebhookMessage,
        #[serde(default)]
        external_ids: Vec<String>,
        /// A segment or Connected Audience filter (`None` with listed users means no filter).
        #[serde(default)]
        filter: Option<crate::segment::Filter>,
        #[serde(default)]
        campaign_id: Option<CampaignId>,
        #[serde(default)]
        variant_id: Option<VariantId>,
        #[serde(default)]
        send_tag: Option<String>,
    },
    /// `/campaigns/trigger/schedule/create`.
    CampaignTrigger {
        campaign_id: CampaignId,
        request: TriggerRequest,
    },
    /// `/canvas/trigger/schedule/create`: users enter the Canvas at `send_at` (UTC); with
    /// `in_local_time`, they enter when the schedule is claimed (14 hours early) and each journey's
    /// first step waits for the wall time in the user's zone (see [`run_due_scheduled`]).
    CanvasTrigger {
        canvas_id: crate::CanvasId,
        request: crate::canvas::CanvasTriggerRequest,
    },
}

/// A send as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledSend {
    pub schedule_id: ScheduleId,
    pub dispatch_id: String,
    pub kind: ScheduledKind,
    /// With `in_local_time`, a wall time (read in each user's zone) stored as UTC.
    pub send_at: DateTime<Utc>,
    pub in_local_time: bool,
    /// `pending`, `running`, `done`, `cancelled` or `failed` (it could not be carried out: its
    /// campaign was stopped or archived meanwhile, say).
    pub status: String,
}

mod status {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const CANCELLED: &str = "cancelled";
    pub const FAILED: &str = "failed";
}

const KIND_MESSAGES: &str = "messages";
const KIND_CAMPAIGN_TRIGGER: &str = "campaign_trigger";
const KIND_CANVAS_TRIGGER: &str = "canvas_trigger";
/// Time zones run from UTC−12 to UTC+14: a local time falls at most 14 hours before its UTC
/// reading (Pacific/Kiritimati) and at most 12 hours after it (Etc/GMT+12).
const EARLIEST_ZONE: TimeDelta = TimeDelta::hours(14);
const LATEST_ZONE: TimeDelta = TimeDelta::hours(12);
/// How long a claimed schedule stays with the process carrying it out.
const LEASE: TimeDelta = TimeDelta::minutes(5);

/// `send_at` must still be ahead: for a local-time send, in at least one time zone, i.e. until
/// 12 hours after its UTC reading (Braze: "in_local_time true but time already passed" in all
/// zones is an error).
fn check_time(send_at: DateTime<Utc>, in_local_time: bool, now: DateTime<Utc>) -> DomainResult<()> {
    let last_moment = if in_local_time {
        send_at + LATEST_ZONE
    } else {
        send_at
    };
    if last_moment <= now {
        return Err(DomainError::invalid(
            "schedule.time",
            "the time has already passed",
        ));
    }
    Ok(())
}

/// Checks what a schedule carries out (as far as it can be known ahead) and returns the
/// campaign it belongs to. An API campaign's message without a variant gets the campaign's
/// first one.
async fn check_kind(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    kind: &mut ScheduledKind,
) -> DomainResult<Option<CampaignId>> {
    match kind {
        ScheduledKind::Messages {
            message,
            external_ids,
            filter,
            campaign_id,
            variant_id,
            ..
        } => {
            message.compile()?;
            if external_ids.len() > crate::messaging::MAX_LISTED_RECIPIENTS {
                return Err(DomainError::invalid(
                    "external_user_ids",
                    "The max number of external_ids and aliases per request was exceeded (50)",
                ));
            }
            for id in external_ids.iter_mut() {
                *id = id.trim().to_owned();
                if id.is_empty() {
                    return Err(DomainError::invalid(
                        "external_user_ids",
                        "every external id must be a non-empty string",
                    ));
                }
            }
            match filter {
                Some(filter) => filter.validate()?,
                None if external_ids.is_empty() => {
                    return Err(DomainError::invalid(
                        "external_user_ids",
                        "name the recipients: external_user_ids, a segment or an audience",
                    ));
                }
                None => {}
            }
            let Some(campaign_id) = campaign_id else {
                if variant_id.is_some() {
                    return Err(DomainError::invalid(
                        "campaign_id",
                        "is required with a message_variation_id",
                    ));
                }
                return Ok(None);
            };
            let campaign = match super::store::find_campaign(db, ws, campaign_id).await {
                Ok(campaign) => campaign,
                Err(DomainError::NotFound(_)) => {
                    return Err(DomainError::invalid("campaign_id", "Invalid Campaign ID"));
                }
                Err(other) => return Err(other),
            };
            if campaign.kind != CampaignKind::Api || campaign.status == CampaignStatus::Archived {
                return Err(DomainError::invalid(
                    "campaign_id",
                    "Invalid Campaign ID: not an active API campaign",
                ));
            }
            let variants: Vec<&VariantId> = campaign
                .variants
                .iter()
                .filter_map(|v| v.id.as_ref())
                .collect();
            match variant_id {
                Some(variant) if !variants.contains(&&*variant) => {
                    return Err(DomainError::invalid(
                        "message_variation_id",
                        "Invalid Message Variant",
                    ));
                }
                Some(_) => {}
                None => match variants.first() {
                    Some(first) => *variant_id = Some((*first).clone()),
                    None => {
                        return Err(DomainError::invalid(
                            "message_variation_id",
                            "the campaign has no message variation",
                        ));
                    }
                },
            }
            Ok(Some(campaign_id.clone()))
        }
        ScheduledKind::CampaignTrigger {
            campaign_id,
            request,
        } => {
            check_request(request)?;
            api_triggered_campaign(db, ws, campaign_id).await?;
            Ok(Some(campaign_id.clone()))
        }
        ScheduledKind::CanvasTrigger { canvas_id, .. } => {
            let canvas = crate::canvas::find_canvas(db, ws, canvas_id)
                .await
                .map_err(|_| DomainError::invalid("canvas_id", "Invalid Canvas ID"))?;
            if !matches!(canvas.draft.entry, crate::canvas::Entry::Api)
                || canvas.live_version.is_none()
            {
                return Err(DomainError::invalid(
                    "canvas_id",
                    "Invalid Canvas ID: not a launched API-triggered Canvas",
                ));
            }
            Ok(None)
        }
    }
}

fn kind_name(kind: &ScheduledKind) -> &'static str {
    match kind {
        ScheduledKind::Messages { .. } => KIND_MESSAGES,
        ScheduledKind::CampaignTrigger { .. } => KIND_CAMPAIGN_TRIGGER,
        ScheduledKind::CanvasTrigger { .. } => KIND_CANVAS_TRIGGER,
    }
}

fn payload(kind: &ScheduledKind) -> DomainResult<String> {
    serde_json::to_string(kind)
        .map_err(|e| DomainError::invalid("schedule", format!("cannot be stored: {e}")))
}

fn decode(row: scheduled_message::Model) -> DomainResult<ScheduledSend> {
    let kind = serde_json::from_str(&row.payload).map_err(|e| {
        DomainError::invalid("schedule", format!("stored schedule unreadable: {e}"))
    })?;
    Ok(ScheduledSend {
        schedule_id: ScheduleId::from_db(row.id),
        dispatch_id: row.dispatch_id,
        kind,
        send_at: row.send_at,
        in_local_time: row.in_local_time,
        status: row.status,
    })
}

async fn find_row(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ScheduleId,
) -> DomainResult<scheduled_message::Model> {
    scheduled_message::Entity::find_by_id((ws.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("schedule"))
}

/// Why a schedule that is not pending can no longer change.
fn not_pending(row: &scheduled_message::Model) -> DomainError {
    let why = match row.status.as_str() {
        status::RUNNING => "is being sent",
        status::CANCELLED => "was cancelled",
        _ => "was already sent",
    };
    DomainError::invalid(
        "schedule_id",
        format!("the scheduled send {why}: it was already sent or cancelled"),
    )
}

/// One schedule, in any status.
pub async fn find_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ScheduleId,
) -> DomainResult<ScheduledSend> {
    decode(find_row(db, ws, id).await?)
}

/// Schedules a send. `send_at` must be in the future (for `in_local_time`, still ahead in some
/// time zone).
pub async fn create_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    kind: ScheduledKind,
    send_at: DateTime<Utc>,
    in_local_time: bool,
    now: DateTime<Utc>,
) -> DomainResult<ScheduledSend> {
    let mut kind = kind;
    check_time(send_at, in_local_time, now)?;
    let campaign_id = check_kind(db, ws, &mut kind).await?;
    let row = scheduled_message::ActiveModel {
        workspace_id: Set(ws.to_string()),
        id: Set(ScheduleId::generate().into_string()),
        campaign_id: Set(campaign_id.map(CampaignId::into_string)),
        kind: Set(kind_name(&kind).to_owned()),
        payload: Set(payload(&kind)?),
        send_at: Set(to_millis(send_at)),
        in_local_time: Set(in_local_time),
        status: Set(status::PENDING.to_owned()),
        lease_until: Set(None),
        dispatch_id: Set(uuid::Uuid::new_v4().simple().to_string()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    decode(row)
}

/// Changes the time and/or the content of a pending schedule. The content keeps its kind (a
/// message stays a message; a campaign trigger stays a trigger of the same campaign).
pub async fn update_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ScheduleId,
    kind: Option<ScheduledKind>,
    send_at: Option<(DateTime<Utc>, bool)>,
    now: DateTime<Utc>,
) -> DomainResult<ScheduledSend> {
    let row = find_row(db, ws, id).await?;
    if row.status != status::PENDING {
        return Err(not_pending(&row));
    }
    let mut update = scheduled_message::Entity::update_many()
        .col_expr(scheduled_message::Column::UpdatedAt, Expr::value(now));
    if let Some((send_at, in_local_time)) = send_at {
        check_time(send_at, in_local_time, now)?;
        update = update
            .col_expr(
                scheduled_message::Column::SendAt,
                Expr::value(to_millis(send_at)),
            )
            .col_expr(
                scheduled_message::Column::InLocalTime,
                Expr::value(in_local_time),
            );
    }
    if let Some(mut kind) = kind {
        if kind_name(&kind) != row.kind {
            return Err(DomainError::invalid(
                "schedule_id",
                format!("is a {} schedule; its kind cannot change", row.kind),
            ));
        }
        let campaign_id = check_kind(db, ws, &mut kind).await?;
        if matches!(kind, ScheduledKind::CampaignTrigger { .. })
            && campaign_id.as_ref().map(CampaignId::as_str) != row.campaign_id.as_deref()
        {
            return Err(DomainError::invalid(
                "campaign_id",
                "does not match the scheduled trigger's campaign",
            ));
        }
        update = update
            .col_expr(
                scheduled_message::Column::Payload,
                Expr::value(payload(&kind)?),
            )
            .col_expr(
                scheduled_message::Column::CampaignId,
                Expr::value(campaign_id.map(CampaignId::into_string)),
            );
    }
    // Only while still pending: a runner may have claimed it since it was read.
    let changed = update
        .filter(scheduled_message::Column::WorkspaceId.eq(ws.as_str()))
        .filter(scheduled_message::Column::Id.eq(id.as_str()))
        .filter(scheduled_message::Column::Status.eq(status::PENDING))
        .exec(db)
        .await?
        .rows_affected;
    let row = find_row(db, ws, id).await?;
    if changed == 0 {
        return Err(not_pending(&row));
    }
    decode(row)
}

/// Cancels a pending schedule. Cancelling a cancelled one again changes nothing; one already
/// sent (or being sent) cannot be cancelled.
pub async fn cancel_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ScheduleId,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let row = find_row(db, ws, id).await?;
    match row.status.as_str() {
        status::CANCELLED => return Ok(()),
        status::PENDING => {}
        _ => return Err(not_pending(&row)),
    }
    let changed = scheduled_message::Entity::update_many()
        .col_expr(
            scheduled_message::Column::Status,
            Expr::value(status::CANCELLED),
        )
        .col_expr(scheduled_message::Column::UpdatedAt, Expr::value(now))
        .filter(scheduled_message::Column::WorkspaceId.eq(ws.as_str()))
        .filter(scheduled_message::Column::Id.eq(id.as_str()))
        .filter(scheduled_message::Column::Status.eq(status::PENDING))
        .exec(db)
        .await?
        .rows_affected;
    if changed == 0 {
        return Err(not_pending(&find_row(db, ws, id).await?));
    }
    Ok(())
}

/// Pending schedules due before `until`, soonest first.
pub async fn list_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    until: DateTime<Utc>,
) -> DomainResult<Vec<ScheduledSend>> {
    scheduled_message::Entity::find()
        .filter(scheduled_message::Column::WorkspaceId.eq(ws.as_str()))
        .filter(scheduled_message::Column::Status.eq(status::PENDING))
        .filter(scheduled_message::Column::SendAt.lte(until))
        .order_by_asc(scheduled_message::Column::SendAt)
        .order_by_asc(scheduled_message::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// Carries out due schedules (claimed under a lease); returns how many finished (done, or
/// failed because they could no longer be carried out).
///
/// A schedule is due at `send_at`; one in local time 14 hours earlier, when `send_at` comes in
/// the first time zone. For messages and campaign triggers, each user's send then waits for
/// `send_at` in the user's own zone (UTC for users without one: a workspace has no company time
/// zone); users for whom that time had already passed when the schedule was set (created or last
/// updated) get nothing, as in Braze. For a Canvas trigger, every user enters then (entry
/// audience, re-entry and entry limit as for any entry, with the schedule's context) and their
/// journey's first step waits for `send_at` in their zone (theirs, else the Canvas's, else UTC);
/// it runs at once for users whose time has already passed.
///
/// Each schedule's sends and its `done` mark are written in one transaction, and the mark is
/// conditional on the lease still being ours: a runner that lost its lease (it was slower than
/// five minutes, and another process took the schedule over) rolls its sends back, so a
/// schedule is carried out exactly once. A schedule rejected when its time comes (its campaign
/// stopped or archived meanwhile, a segment archived) turns `failed`; its sends are rolled back.
pub async fn run_due_scheduled<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    if limit == 0 {
        return Ok(0);
    }
    let lease_until = to_millis(now + LEASE);
    let rows = claim_due(db, lease_until, limit, now).await?;
    let mut finished = 0;
    let mut first_error = None;
    for row in rows {
        let txn = db.begin().await?;
        match carry_out(&txn, &row, now).await {
            Ok(()) => {
                if finish(&txn, &row, status::DONE, lease_until, now).await? {
                    txn.commit().await?;
                    finished += 1;
                } else {
                    txn.rollback().await?;
                }
            }
            Err(DomainError::Db(error)) => {
                // Left `running`: claimed again when the lease runs out.
                txn.rollback().await?;
                first_error.get_or_insert(DomainError::Db(error));
            }
            Err(_rejected) => {
                txn.rollback().await?;
                if finish(db, &row, status::FAILED, lease_until, now).await? {
                    finished += 1;
                }
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(finished),
    }
}

/// Claims due pending schedules, and running ones whose lease ran out, for this process.
async fn claim_due(
    db: &impl ConnectionTrait,
    lease_until: DateTime<Utc>,
    limit: usize,
    now: DateTime<Utc>,
) -> DomainResult<Vec<scheduled_message::Model>> {
    let backend = db.get_database_backend();
    let (p, skip_locked) = match backend {
        DbBackend::Postgres => (["$1", "$2", "$3", "$4"], " FOR UPDATE SKIP LOCKED"),
        _ => (["?", "?", "?", "?"], ""),
    };
    let sql = format!(
        "UPDATE scheduled_message SET status = '{running}', lease_until = {lease} \
         WHERE (workspace_id, id) IN ( \
           SELECT workspace_id, id FROM scheduled_message \
           WHERE (status = '{pending}' \
                  AND ((NOT in_local_time AND send_at <= {now}) \
                       OR (in_local_time AND send_at <= {local_now}))) \
              OR (status = '{running}' AND lease_until <= {now}) \
           ORDER BY send_at LIMIT {limit}{skip_locked}) \
         RETURNING *",
        running = status::RUNNING,
        pending = status::PENDING,
        lease = p[0],
        now = p[1],
        local_now = p[2],
        limit = p[3],
    );
    // SQLite numbers `?` by position: `now` appears twice there.
    let values: Vec<Value> = match backend {
        DbBackend::Postgres => vec![
            lease_until.into(),
            now.into(),
            (now + EARLIEST_ZONE).into(),
            (limit as i64).into(),
        ],
        _ => vec![
            lease_until.into(),
            now.into(),
            (now + EARLIEST_ZONE).into(),
            now.into(),
            (limit as i64).into(),
        ],
    };
    let mut rows = scheduled_message::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    rows.sort_by(|a, b| a.send_at.cmp(&b.send_at).then_with(|| a.id.cmp(&b.id)));
    Ok(rows)
}

/// Marks a claimed schedule `done` or `failed` if the lease is still ours; `false` when it is
/// not (another process has taken the schedule over).
async fn finish(
    db: &impl ConnectionTrait,
    row: &scheduled_message::Model,
    outcome: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    let changed = scheduled_message::Entity::update_many()
        .col_expr(scheduled_message::Column::Status, Expr::value(outcome))
        .col_expr(
            scheduled_message::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(scheduled_message::Column::UpdatedAt, Expr::value(now))
        .filter(scheduled_message::Column::WorkspaceId.eq(row.workspace_id.as_str()))
        .filter(scheduled_message::Column::Id.eq(row.id.as_str()))
        .filter(scheduled_message::Column::Status.eq(status::RUNNING))
        .filter(scheduled_message::Column::LeaseUntil.eq(lease_until))
        .exec(db)
        .await?
        .rows_affected;
    Ok(changed == 1)
}

/// Writes a schedule's sends, in the caller's transaction.
async fn carry_out<C: ConnectionTrait + TransactionTrait>(
    txn: &C,
    row: &scheduled_message::Model,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let ws = WorkspaceId::from_db(row.workspace_id.clone());
    let kind: ScheduledKind = serde_json::from_str(&row.payload).map_err(|e| {
        DomainError::invalid("schedule", format!("stored schedule unreadable: {e}"))
    })?;
    let local = row.in_local_time.then(|| LocalTime {
        wall: row.send_at.naive_utc(),
        set_at: row.updated_at,
    });
    match kind {
        ScheduledKind::Messages {
            message,
            external_ids,
            filter,
            campaign_id: None,
            send_tag,
            ..
        } => {
            queue_messages(
                txn,
                &ws,
                &message,
                external_ids,
                filter,
                &row.dispatch_id,
                send_tag,
                local,
                now,
            )
            .await
        }
        ScheduledKind::Messages {
            message,
            external_ids,
            filter,
            campaign_id: Some(campaign_id),
            variant_id,
            send_tag,
        } => {
            let variant = variant_id.ok_or_else(|| {
                DomainError::invalid("message_variation_id", "Invalid Message Variant")
            })?;
            let audience = if external_ids.is_empty() {
                Audience::Broadcast(filter.unwrap_or(Filter::And {
                    filters: Vec::new(),
                }))
            } else {
                Audience::Listed {
                    external_ids,
                    within: filter,
                }
            };
            let outcome = super::dispatch::send_api_campaign(
                txn,
                &ws,
                &campaign_id,
                &variant,
                &message,
                audience,
                send_tag,
                now,
            )
            .await?;
            if let Some(local) = local {
                hold_until_local_time(txn, &ws, &outcome.dispatch_id, local, now).await?;
            }
            Ok(())
        }
        ScheduledKind::CampaignTrigger {
            campaign_id,
            request,
        } => trigger_in(
            txn,
            &ws,
            &campaign_id,
            request,
            row.dispatch_id.clone(),
            local,
            now,
        )
        .await
        .map(|_| ()),
        ScheduledKind::CanvasTrigger { canvas_id, request } => match local {
            None => crate::canvas::trigger_canvas(txn, &ws, &canvas_id, request, now).await,
            Some(local) => {
                request
                    .trigger_in_local_time(txn, &ws, &canvas_id, local.wall, now)
                    .await
            }
        }
        .map(|_| ()),
    }
}

/// `/messages/schedule/create` without a campaign: what `messaging::send_now` does, under the
/// dispatch id given out when the send was scheduled, with local time applied per user.
#[allow(clippy::too_many_arguments)]
async fn queue_messages(
    txn: &impl ConnectionTrait,
    ws: &WorkspaceId,
    message: &WebhookMessage,
    external_ids: Vec<String>,
    filter: Option<Filter>,
    dispatch_id: &str,
    send_tag: Option<String>,
    local: Option<LocalTime>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut campaign = Map::new();
    campaign.insert("dispatch_id".into(), Json::String(dispatch_id.to_owned()));
    campaign.insert("name".into(), Json::String("API send".into()));
    let send_for = |user: &profile::Model| -> Option<NewSend> {
        let due_at = match &local {
            None => None,
            Some(local) => Some(local.due_for(user.time_zone.as_deref())?),
        };
        let mut context = crate::profile::render_context(user);
        context.campaign = campaign.clone();
        Some(NewSend {
            workspace_id: ws.clone(),
            source_kind: SourceKind::Api,
            source_id: Some(dispatch_id.to_owned()),
            source_name: Some("messages/schedule".into()),
            recipient: user.external_id.clone(),
            message: message.clone(),
            context,
            due_at,
            tracking: Tracking {
                variant_id: None,
                dispatch_id: Some(dispatch_id.to_owned()),
                send_tag: send_tag.clone(),
            },
        })
    };
    if external_ids.is_empty() {
        let filter = filter.unwrap_or(Filter::And {
            filters: Vec::new(),
        });
        let mut pages = Pages::new(ws, &filter, now, None);
        while let Some(page) = pages.next(txn).await? {
            crate::outbox::enqueue(txn, page.iter().filter_map(send_for).collect(), now).await?;
        }
        return Ok(());
    }
    let users = profile::Entity::find()
        .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile::Column::ExternalId.is_in(external_ids.iter().map(String::as_str)))
        .all(txn)
        .await?;
    let users = match filter {
        None => users,
        Some(filter) => {
            let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
            let members = in_audience(txn, ws, &filter, &ids, now).await?;
            users
                .into_iter()
                .filter(|u| members.contains(&u.id))
                .collect()
        }
    };
    crate::outbox::enqueue(txn, users.iter().filter_map(send_for).collect(), now).await?;
    Ok(())
}

/// For an API campaign's message sent in local time: holds each send of the dispatch until the
/// recipient's local time (read from the time zone in its stored context), and aborts those
/// whose time had passed when the schedule was set.
async fn hold_until_local_time(
    txn: &impl ConnectionTrait,
    ws: &WorkspaceId,
    dispatch_id: &str,
    local: LocalTime,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut after = String::new();
    loop {
        let page = webhook_send::Entity::find()
            .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
            .filter(webhook_send::Column::DispatchId.eq(dispatch_id))
            .filter(webhook_send::Column::Status.eq(send_status::PENDING))
            .filter(webhook_send::Column::Id.gt(after.as_str()))
            .order_by_asc(webhook_send::Column::Id)
            .limit(PAGE)
            .all(txn)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        let full = page.len() as u64 == PAGE;
        let mut held: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
        let mut passed = Vec::new();
        for send in page {
            let context: Json = serde_json::from_str(&send.context).unwrap_or_default();
            let zone = context.pointer("/user/time_zone").and_then(Json::as_str);
            match local.due_for(zone) {
                Some(due) => held.entry(due.max(now)).or_default().push(send.id),
                None => passed.push(send.id),
            }
        }
        for (due, ids) in held {
            webhook_send::Entity::update_many()
                .col_expr(webhook_send::Column::NextAttemptAt, Expr::value(due))
                .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
                .filter(webhook_send::Column::Id.is_in(ids))
                .exec(txn)
                .await?;
        }
        if !passed.is_empty() {
            webhook_send::Entity::update_many()
                .col_expr(
                    webhook_send::Column::Status,
                    Expr::value(send_status::ABORTED),
                )
                .col_expr(
                    webhook_send::Column::LastError,
                    Expr::value("the local send time had passed when the send was scheduled"),
                )
                .col_expr(webhook_send::Column::CompletedAt, Expr::value(now))
                .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
                .filter(webhook_send::Column::Id.is_in(passed))
                .exec(txn)
                .await?;
        }
        if !full {
            break;
        }
    }
    Ok(())
}
