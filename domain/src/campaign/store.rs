//! The campaign lifecycle: create, edit, duplicate, launch, stop, resume, archive; the workspace's
//! frequency-capping rules and Braze send ids.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::model::{
    AudienceSpec, Campaign, CampaignFilter, CampaignInput, CampaignKind, CampaignStatus,
    Definition, Delivery, Recurrence, Schedule, Settings, Trigger, Variant,
};
use crate::entity::{
    campaign, campaign_occurrence, campaign_send_tag, frequency_cap_rule, webhook_send,
};
use crate::outbox::{SourceKind, status as send_status};
use crate::{CampaignId, DomainError, DomainResult, VariantId, WorkspaceId, validate};

/// A frequency-capping rule: at most `max_sends` webhooks per user in `window_seconds`
/// (≤ 30 days), counting only campaigns tagged `tag` when one is given. At most 10 per workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapRule {
    /// Empty when creating.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tag: Option<String>,
    pub max_sends: u32,
    pub window_seconds: u64,
}

const MAX_NAME_LENGTH: usize = 200;
const MAX_DESCRIPTION_LENGTH: usize = 2000;
const MAX_TAGS: usize = 20;
const MAX_TAG_LENGTH: usize = 100;
const MAX_VARIANTS: usize = 8;
const MAX_VARIANT_NAME_LENGTH: usize = 100;
const MAX_CONVERSIONS: usize = 4;
const DAY: u64 = 86_400;
/// Braze's conversion deadline.
const MAX_CONVERSION_WINDOW_SECONDS: u64 = 30 * DAY;
/// Braze's longest re-eligibility window.
const MAX_REELIGIBLE_AFTER_SECONDS: u64 = 720 * DAY;
/// `campaign.trigger_event` and the tracked event names are at most this long.
const MAX_EVENT_NAME_LENGTH: usize = 255;
const PROPERTY_COMPARISONS: [&str; 7] = [
    "equals",
    "not_equal",
    "greater_than",
    "less_than",
    "exists",
    "does_not_exist",
    "contains",
];
const MAX_SEND_TAG_LENGTH: usize = 64;
/// Braze's `/sends/id/create` allowance.
const MAX_SEND_TAGS_PER_DAY: u64 = 100;
const MAX_CAP_RULES: u64 = 10;
const MIN_CAP_WINDOW_SECONDS: u64 = 60;
const MAX_CAP_WINDOW_SECONDS: u64 = 30 * DAY;
/// What `campaign.trigger_event` holds for purchase-triggered campaigns.
const PURCHASE_TRIGGER: &str = "purchase";

/// `DomainError` fields are `&'static str`, so the per-index paths are spelled out once here
/// (there are at most [`MAX_VARIANTS`] variants and [`MAX_CONVERSIONS`] conversions).
macro_rules! indexed {
    ($prefix:literal, $suffix:literal) => {
        [
            concat!($prefix, "[0]", $suffix),
            concat!($prefix, "[1]", $suffix),
            concat!($prefix, "[2]", $suffix),
            concat!($prefix, "[3]", $suffix),
            concat!($prefix, "[4]", $suffix),
            concat!($prefix, "[5]", $suffix),
            concat!($prefix, "[6]", $suffix),
            concat!($prefix, "[7]", $suffix),
        ]
    };
}

type Fields = [&'static str; 8];
const VARIANT_NAME: Fields = indexed!("variants", ".name");
const VARIANT_PERCENT: Fields = indexed!("variants", ".percent");
const VARIANT_MESSAGE: Fields = indexed!("variants", ".message");
const VARIANT_MESSAGE_URL: Fields = indexed!("variants", ".message.url");
const VARIANT_MESSAGE_METHOD: Fields = indexed!("variants", ".message.method");
const VARIANT_MESSAGE_HEADERS: Fields = indexed!("variants", ".message.headers");
const VARIANT_MESSAGE_BODY: Fields = indexed!("variants", ".message.body");
const CONVERSION_TRIGGER: Fields = indexed!("conversions", ".trigger");
const CONVERSION_WINDOW: Fields = indexed!("conversions", ".window_seconds");

fn at(fields: &Fields, index: usize) -> &'static str {
    fields[index.min(fields.len() - 1)]
}

/// Saves a new campaign as a draft. Variants get ids; validation errors name the field
/// (`variants[0].message.url`, `delivery.schedule.time_zone`, ...).
pub async fn create_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    input: CampaignInput,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let input = checked(input, &[])?;
    check_audience(db, ws, &input.audience).await?;
    insert(db, ws, input, now).await
}

/// Replaces a campaign's definition. Allowed in every status but archived; sends already queued
/// keep the content they were queued with. A launched scheduled campaign is replanned. When
/// `expected_version` is given and differs, fails with a conflict on `version`.
pub async fn update_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    input: CampaignInput,
    expected_version: Option<i32>,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let txn = db.begin().await?;
    let row = find_row(&txn, ws, id).await?;
    if expected_version.is_some_and(|v| v != row.version) {
        return Err(version_conflict());
    }
    let current = decode(row.clone())?;
    if current.status == CampaignStatus::Archived {
        return Err(DomainError::invalid(
            "status",
            "an archived campaign can't be edited; unarchive it first",
        ));
    }
    if input.kind != current.kind && current.launched_at.is_some() {
        return Err(DomainError::invalid(
            "kind",
            "can't change between webhook and API campaign once launched",
        ));
    }
    let existing: Vec<VariantId> = current
        .variants
        .iter()
        .filter_map(|v| v.id.clone())
        .collect();
    let input = checked(input, &existing)?;
    check_audience(&txn, ws, &input.audience).await?;
    let running = matches!(
        current.status,
        CampaignStatus::Scheduled | CampaignStatus::Active
    );
    if running {
        // A running campaign's zone is checked now: it is replanned straight away.
        if let Delivery::Scheduled {
            schedule: schedule @ Schedule::At { .. },
        } = &input.delivery
        {
            next_send(schedule, now, current.launched_at.unwrap_or(now))?;
        }
    }
    let mut next = row.clone();
    apply(&mut next, &input)?;
    next.updated_at = now;
    let waits_for_schedule = matches!(
        input.delivery,
        Delivery::Scheduled {
            schedule: Schedule::At { .. }
        }
    );
    if current.status == CampaignStatus::Scheduled && !waits_for_schedule {
        // Nothing to wait for any more: it now sends on triggers (or at once).
        next.status = CampaignStatus::Active.as_str().into();
    }
    let saved = write(&txn, next, row.version).await?;
    let mut campaign = decode(saved)?;
    if running {
        // Also cancels the planned occurrences of a campaign no longer scheduled.
        campaign.next_send_at = super::schedule::replan(&txn, ws, &campaign, now).await?;
    }
    txn.commit().await?;
    Ok(campaign)
}

pub async fn find_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
) -> DomainResult<Campaign> {
    let mut campaign = decode(find_row(db, ws, id).await?)?;
    if is_running(campaign.status) {
        campaign.next_send_at = campaign_occurrence::Entity::find()
            .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
            .filter(campaign_occurrence::Column::CampaignId.eq(id.as_str()))
            .filter(campaign_occurrence::Column::Status.eq("pending"))
            .order_by_asc(campaign_occurrence::Column::DueAt)
            .one(db)
            .await?
            .map(|o| o.due_at);
    }
    Ok(campaign)
}

/// Newest first.
pub async fn list_campaigns(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &CampaignFilter,
) -> DomainResult<Vec<Campaign>> {
    let mut select = campaign::Entity::find().filter(campaign::Column::WorkspaceId.eq(ws.as_str()));
    match filter.status {
        Some(status) => select = select.filter(campaign::Column::Status.eq(status.as_str())),
        None if !filter.include_archived => {
            select = select.filter(campaign::Column::Status.ne(CampaignStatus::Archived.as_str()));
        }
        None => {}
    }
    if let Some(delivery_type) = &filter.delivery_type {
        select = select.filter(campaign::Column::DeliveryType.eq(delivery_type.as_str()));
    }
    let rows = select
        .order_by_desc(campaign::Column::CreatedAt)
        .order_by_desc(campaign::Column::Id)
        .all(db)
        .await?;
    // Tags are JSON text, which the two databases query differently; a workspace has few
    // enough campaigns to match them here.
    let tag = filter
        .tag
        .as_deref()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    let mut campaigns = Vec::with_capacity(rows.len());
    for row in rows {
        let campaign = decode(row)?;
        if let Some(tag) = &tag
            && !campaign.tags.iter().any(|t| t.to_lowercase() == *tag)
        {
            continue;
        }
        campaigns.push(campaign);
    }
    if campaigns.iter().any(|c| is_running(c.status)) {
        let mut next: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for occurrence in campaign_occurrence::Entity::find()
            .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
            .filter(campaign_occurrence::Column::Status.eq("pending"))
            .all(db)
            .await?
        {
            next.entry(occurrence.campaign_id)
                .and_modify(|due| *due = (*due).min(occurrence.due_at))
                .or_insert(occurrence.due_at);
        }
        for campaign in campaigns.iter_mut().filter(|c| is_running(c.status)) {
            campaign.next_send_at = next.get(campaign.id.as_str()).copied();
        }
    }
    Ok(campaigns)
}

/// A draft copy named "Copy of …", with new variant ids.
pub async fn duplicate_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let original = decode(find_row(db, ws, id).await?)?;
    let mut input = input_of(&original);
    input.name = format!("Copy of {}", original.name)
        .chars()
        .take(MAX_NAME_LENGTH)
        .collect();
    for variant in &mut input.variants {
        variant.id = None;
    }
    // The audience's segments are not checked again: the copy is a draft, checked when edited
    // or launched.
    let input = checked(input, &[])?;
    insert(db, ws, input, now).await
}

/// Checks the campaign is complete (a message per variant of a webhook campaign, percentages
/// adding up, a schedule in the future, ...) and launches it: scheduled campaigns get their
/// first occurrence (status `scheduled`, or `active` when sending at launch), action-based and
/// API ones turn `active`.
pub async fn launch_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let txn = db.begin().await?;
    let mut row = find_row(&txn, ws, id).await?;
    let current = decode(row.clone())?;
    let launchable = current.status == CampaignStatus::Draft
        || (current.status == CampaignStatus::Stopped && current.launched_at.is_none());
    if !launchable {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only a draft can be launched; this campaign is {}",
                current.status.as_str()
            ),
        ));
    }
    let existing: Vec<VariantId> = current
        .variants
        .iter()
        .filter_map(|v| v.id.clone())
        .collect();
    checked(input_of(&current), &existing)?;
    check_audience(&txn, ws, &current.audience).await?;
    let status = match &current.delivery {
        Delivery::Scheduled {
            schedule: Schedule::AtLaunch,
        } => CampaignStatus::Active,
        Delivery::Scheduled { schedule } => {
            if next_send(schedule, now, now)?.is_none() {
                return Err(DomainError::invalid(
                    "delivery.schedule",
                    "has no send time after now: move the start date or the time later",
                ));
            }
            CampaignStatus::Scheduled
        }
        Delivery::Action { .. } | Delivery::Api => CampaignStatus::Active,
    };
    let expected = row.version;
    row.status = status.as_str().into();
    row.launched_at = Some(now);
    row.stopped_at = None;
    row.updated_at = now;
    let mut campaign = decode(write(&txn, row, expected).await?)?;
    if matches!(campaign.delivery, Delivery::Scheduled { .. }) {
        campaign.next_send_at = super::schedule::replan(&txn, ws, &campaign, now).await?;
    }
    txn.commit().await?;
    Ok(campaign)
}

/// Stops a campaign: nothing new is sent; pending occurrences stay but do not fire, and queued
/// sends that have not been attempted are aborted.
pub async fn stop_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let txn = db.begin().await?;
    let row = find_row(&txn, ws, id).await?;
    if !is_running(status_of(&row)?) {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only a running campaign can be stopped; this campaign is {}",
                row.status
            ),
        ));
    }
    let saved = stop_row(&txn, ws, row, now).await?;
    txn.commit().await?;
    decode(saved)
}

/// Resumes a stopped campaign; a scheduled one is replanned from `now`.
pub async fn resume_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let txn = db.begin().await?;
    let mut row = find_row(&txn, ws, id).await?;
    let current = decode(row.clone())?;
    if current.status != CampaignStatus::Stopped || current.launched_at.is_none() {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only a stopped campaign can be resumed; this campaign is {}",
                if current.status == CampaignStatus::Stopped {
                    "a draft that was never launched"
                } else {
                    current.status.as_str()
                }
            ),
        ));
    }
    let status = match &current.delivery {
        Delivery::Scheduled {
            schedule: schedule @ Schedule::At { .. },
        } => {
            next_send(schedule, now, current.launched_at.unwrap_or(now))?;
            // `scheduled` until it first sends, as at launch.
            let has_sent = campaign_occurrence::Entity::find()
                .filter(campaign_occurrence::Column::WorkspaceId.eq(ws.as_str()))
                .filter(campaign_occurrence::Column::CampaignId.eq(id.as_str()))
                .filter(campaign_occurrence::Column::Status.is_in(["running", "done"]))
                .count(&txn)
                .await?
                > 0;
            if has_sent {
                CampaignStatus::Active
            } else {
                CampaignStatus::Scheduled
            }
        }
        _ => CampaignStatus::Active,
    };
    let expected = row.version;
    row.status = status.as_str().into();
    row.updated_at = now;
    let mut campaign = decode(write(&txn, row, expected).await?)?;
    if matches!(campaign.delivery, Delivery::Scheduled { .. }) {
        campaign.next_send_at = super::schedule::replan(&txn, ws, &campaign, now).await?;
    }
    txn.commit().await?;
    Ok(campaign)
}

/// Archives a campaign (stopping it first when it runs).
pub async fn archive_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let txn = db.begin().await?;
    let mut row = find_row(&txn, ws, id).await?;
    let status = status_of(&row)?;
    if status == CampaignStatus::Archived {
        return decode(row);
    }
    if is_running(status) {
        row = stop_row(&txn, ws, row, now).await?;
    }
    let expected = row.version;
    row.status = CampaignStatus::Archived.as_str().into();
    row.archived_at = Some(now);
    row.updated_at = now;
    let saved = write(&txn, row, expected).await?;
    txn.commit().await?;
    decode(saved)
}

/// Back to `stopped` (or `draft` if it never launched).
pub async fn unarchive_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let mut row = find_row(db, ws, id).await?;
    if status_of(&row)? != CampaignStatus::Archived {
        return Err(DomainError::invalid(
            "status",
            format!("this campaign is {}, not archived", row.status),
        ));
    }
    let status = if row.launched_at.is_some() {
        CampaignStatus::Stopped
    } else {
        CampaignStatus::Draft
    };
    let expected = row.version;
    row.status = status.as_str().into();
    row.archived_at = None;
    row.updated_at = now;
    decode(write(db, row, expected).await?)
}

/// How many users the audience reaches now (before re-eligibility and caps).
pub async fn estimate_reach(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    audience: &AudienceSpec,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let filter = super::dispatch::audience_filter(db, ws, audience).await?;
    crate::segment::count(db, ws, &filter, now).await
}

/// Registers a Braze `send_id` for a campaign (`/sends/id/create`): ASCII, at most 64
/// characters; generated when `None`. At most 100 per workspace per day. Returns the send id.
pub async fn create_send_tag(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    send_tag: Option<String>,
    now: DateTime<Utc>,
) -> DomainResult<String> {
    let tag = match send_tag {
        Some(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Err(DomainError::invalid("send_id", "must not be empty"));
            }
            if text.len() > MAX_SEND_TAG_LENGTH {
                return Err(DomainError::invalid(
                    "send_id",
                    format!("must be at most {MAX_SEND_TAG_LENGTH} characters"),
                ));
            }
            if !text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                return Err(DomainError::invalid(
                    "send_id",
                    "must be printable ASCII characters only",
                ));
            }
            text.to_owned()
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    find_row(db, ws, campaign).await?;
    let key = (ws.to_string(), campaign.to_string(), tag.clone());
    if campaign_send_tag::Entity::find_by_id(key)
        .one(db)
        .await?
        .is_some()
    {
        return Ok(tag);
    }
    let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let today = campaign_send_tag::Entity::find()
        .filter(campaign_send_tag::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign_send_tag::Column::CreatedAt.gte(midnight))
        .count(db)
        .await?;
    if today >= MAX_SEND_TAGS_PER_DAY {
        return Err(DomainError::invalid(
            "send_id",
            format!(
                "at most {MAX_SEND_TAGS_PER_DAY} send ids can be created per workspace per day \
                 (UTC); try again tomorrow"
            ),
        ));
    }
    let row = campaign_send_tag::ActiveModel::from(campaign_send_tag::Model {
        workspace_id: ws.to_string(),
        campaign_id: campaign.to_string(),
        send_tag: tag.clone(),
        created_at: now,
    })
    .reset_all();
    match campaign_send_tag::Entity::insert(row)
        .exec_without_returning(db)
        .await
    {
        Ok(_) => Ok(tag),
        // Created by a concurrent call: the pair exists, which is all that was asked.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Ok(tag)
        }
        Err(e) => Err(e.into()),
    }
}

/// The workspace's frequency-capping rules, oldest first.
pub async fn list_cap_rules(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
) -> DomainResult<Vec<CapRule>> {
    let rows = frequency_cap_rule::Entity::find()
        .filter(frequency_cap_rule::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(frequency_cap_rule::Column::CreatedAt)
        .order_by_asc(frequency_cap_rule::Column::Id)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| CapRule {
            id: r.id,
            tag: r.tag,
            max_sends: u32::try_from(r.max_sends).unwrap_or(0),
            window_seconds: u64::try_from(r.window_seconds).unwrap_or(0),
        })
        .collect())
}

/// Adds a frequency-capping rule (at most 10 per workspace); `rule.id` is ignored.
pub async fn create_cap_rule(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    rule: CapRule,
    now: DateTime<Utc>,
) -> DomainResult<CapRule> {
    let max_sends = i32::try_from(rule.max_sends)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| DomainError::invalid("max_sends", "must be at least 1"))?;
    if !(MIN_CAP_WINDOW_SECONDS..=MAX_CAP_WINDOW_SECONDS).contains(&rule.window_seconds) {
        return Err(DomainError::invalid(
            "window_seconds",
            "must be between 1 minute and 30 days",
        ));
    }
    let tag = match rule.tag.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(tag) if tag.chars().count() > MAX_TAG_LENGTH => {
            return Err(DomainError::invalid(
                "tag",
                format!("must be at most {MAX_TAG_LENGTH} characters"),
            ));
        }
        Some(tag) => Some(tag.to_owned()),
    };
    let existing = frequency_cap_rule::Entity::find()
        .filter(frequency_cap_rule::Column::WorkspaceId.eq(ws.as_str()))
        .count(db)
        .await?;
    if existing >= MAX_CAP_RULES {
        return Err(DomainError::invalid(
            "rules",
            format!("a workspace has at most {MAX_CAP_RULES} frequency-capping rules"),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let row = frequency_cap_rule::ActiveModel::from(frequency_cap_rule::Model {
        workspace_id: ws.to_string(),
        id: id.clone(),
        tag: tag.clone(),
        max_sends,
        // Checked above: at most 30 days.
        window_seconds: i64::try_from(rule.window_seconds).unwrap_or(i64::MAX),
        created_at: now,
    })
    .reset_all();
    frequency_cap_rule::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(CapRule {
        id,
        tag,
        max_sends: rule.max_sends,
        window_seconds: rule.window_seconds,
    })
}

/// Removes a frequency-capping rule.
pub async fn delete_cap_rule(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &str,
) -> DomainResult<()> {
    let result = frequency_cap_rule::Entity::delete_many()
        .filter(frequency_cap_rule::Column::WorkspaceId.eq(ws.as_str()))
        .filter(frequency_cap_rule::Column::Id.eq(id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(DomainError::NotFound("frequency-capping rule"));
    }
    Ok(())
}

/// Reads a stored row into a [`Campaign`] (`next_send_at` is left `None`; [`find_campaign`]
/// fills it).
pub(super) fn decode(model: crate::entity::campaign::Model) -> DomainResult<Campaign> {
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        DomainError::invalid("definition", format!("stored {what} unreadable: {e}"))
    };
    let tags: Vec<String> =
        serde_json::from_str(&model.tags).map_err(|e| unreadable("tags", &e))?;
    let definition: Definition =
        serde_json::from_str(&model.definition).map_err(|e| unreadable("definition", &e))?;
    let kind = CampaignKind::parse(&model.kind).ok_or_else(|| unreadable("kind", &model.kind))?;
    let status = status_of(&model)?;
    Ok(Campaign {
        id: CampaignId::from_db(model.id),
        name: model.name,
        description: model.description,
        tags,
        kind,
        status,
        variants: definition.variants,
        control_percent: definition.control_percent,
        delivery: definition.delivery,
        audience: definition.audience,
        conversions: definition.conversions,
        settings: definition.settings,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
        launched_at: model.launched_at,
        stopped_at: model.stopped_at,
        archived_at: model.archived_at,
        next_send_at: None,
    })
}

fn status_of(model: &campaign::Model) -> DomainResult<CampaignStatus> {
    CampaignStatus::parse(&model.status).ok_or_else(|| {
        DomainError::invalid(
            "status",
            format!("stored status “{}” unreadable", model.status),
        )
    })
}

fn is_running(status: CampaignStatus) -> bool {
    matches!(status, CampaignStatus::Scheduled | CampaignStatus::Active)
}

fn version_conflict() -> DomainError {
    DomainError::conflict(
        "version",
        "the campaign was changed by someone else; reload it",
    )
}

/// What `create`/`update` would take to produce `campaign`.
fn input_of(campaign: &Campaign) -> CampaignInput {
    CampaignInput {
        name: campaign.name.clone(),
        description: campaign.description.clone(),
        tags: campaign.tags.clone(),
        kind: campaign.kind,
        variants: campaign.variants.clone(),
        control_percent: campaign.control_percent,
        delivery: campaign.delivery.clone(),
        audience: campaign.audience.clone(),
        conversions: campaign.conversions.clone(),
        settings: campaign.settings.clone(),
    }
}

async fn find_row(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
) -> DomainResult<campaign::Model> {
    campaign::Entity::find_by_id((ws.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("campaign"))
}

async fn insert(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    input: CampaignInput,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let mut row = campaign::Model {
        workspace_id: ws.to_string(),
        id: CampaignId::generate().into_string(),
        name: String::new(),
        description: String::new(),
        tags: String::new(),
        kind: String::new(),
        delivery_type: String::new(),
        trigger_event: None,
        status: CampaignStatus::Draft.as_str().into(),
        definition: String::new(),
        version: 1,
        created_at: now,
        updated_at: now,
        launched_at: None,
        stopped_at: None,
        archived_at: None,
    };
    apply(&mut row, &input)?;
    campaign::Entity::insert(campaign::ActiveModel::from(row.clone()).reset_all())
        .exec_without_returning(db)
        .await?;
    decode(row)
}

/// Copies a checked input into a row's columns.
fn apply(row: &mut campaign::Model, input: &CampaignInput) -> DomainResult<()> {
    let definition = Definition {
        variants: input.variants.clone(),
        control_percent: input.control_percent,
        delivery: input.delivery.clone(),
        audience: input.audience.clone(),
        conversions: input.conversions.clone(),
        settings: input.settings.clone(),
    };
    let unwritable =
        |e: serde_json::Error| DomainError::invalid("definition", format!("can't be stored: {e}"));
    row.name = input.name.clone();
    row.description = input.description.clone();
    row.tags = serde_json::to_string(&input.tags).map_err(unwritable)?;
    row.kind = input.kind.as_str().into();
    row.delivery_type = input.delivery.type_name().into();
    row.trigger_event = match &input.delivery {
        Delivery::Action {
            trigger: Trigger::CustomEvent { name, .. },
            ..
        } => Some(name.clone()),
        Delivery::Action {
            trigger: Trigger::Purchase { .. },
            ..
        } => Some(PURCHASE_TRIGGER.into()),
        _ => None,
    };
    row.definition = serde_json::to_string(&definition).map_err(unwritable)?;
    Ok(())
}

/// Writes `row` (its version bumped) if the stored one still has `expected_version`; a
/// concurrent writer that got there first makes this a conflict rather than a lost update.
async fn write(
    db: &impl ConnectionTrait,
    mut row: campaign::Model,
    expected_version: i32,
) -> DomainResult<campaign::Model> {
    row.version = expected_version + 1;
    let result = campaign::Entity::update_many()
        .set(campaign::ActiveModel::from(row.clone()).reset_all())
        .filter(campaign::Column::WorkspaceId.eq(row.workspace_id.as_str()))
        .filter(campaign::Column::Id.eq(row.id.as_str()))
        .filter(campaign::Column::Version.eq(expected_version))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(version_conflict());
    }
    Ok(row)
}

/// Marks a running campaign stopped and aborts its queued sends nobody has attempted (nor holds
/// right now), in the caller's transaction.
async fn stop_row(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    mut row: campaign::Model,
    now: DateTime<Utc>,
) -> DomainResult<campaign::Model> {
    let expected = row.version;
    row.status = CampaignStatus::Stopped.as_str().into();
    row.stopped_at = Some(now);
    row.updated_at = now;
    let row = write(db, row, expected).await?;
    webhook_send::Entity::update_many()
        .col_expr(
            webhook_send::Column::Status,
            Expr::value(send_status::ABORTED),
        )
        .col_expr(webhook_send::Column::CompletedAt, Expr::value(Some(now)))
        .col_expr(
            webhook_send::Column::LastError,
            Expr::value(Some("campaign stopped")),
        )
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::SourceKind.eq(SourceKind::Campaign.as_str()))
        .filter(webhook_send::Column::SourceId.eq(row.id.as_str()))
        .filter(webhook_send::Column::Status.eq(send_status::PENDING))
        .filter(webhook_send::Column::Attempts.eq(0))
        // A send under lease is being attempted right now; its outcome will be recorded.
        .filter(
            Condition::any()
                .add(webhook_send::Column::LeaseUntil.is_null())
                .add(webhook_send::Column::LeaseUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(row)
}

/// The schedule's next send after `after`, with its errors (an unknown time zone, say) named
/// under `delivery.schedule`.
fn next_send(
    schedule: &Schedule,
    after: DateTime<Utc>,
    launched_at: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    super::schedule::next_occurrence(schedule, after, launched_at).map_err(|e| match e {
        DomainError::Invalid { field, message } => {
            let field = if field.starts_with("delivery.schedule") {
                field
            } else if field.contains("time_zone") || field == "zone" {
                "delivery.schedule.time_zone"
            } else {
                "delivery.schedule"
            };
            DomainError::invalid(field, message)
        }
        other => other,
    })
}

/// The audience's segments exist and are not archived.
async fn check_audience(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    audience: &AudienceSpec,
) -> DomainResult<()> {
    if !audience.segment_ids.is_empty() {
        super::dispatch::audience_filter(db, ws, audience).await?;
    }
    Ok(())
}

/// Validates and normalizes an input (trimmed names and tags, variant ids assigned: an id in
/// `existing` is kept, any other is replaced by a new one). The same checks run on save and at
/// launch.
fn checked(mut input: CampaignInput, existing: &[VariantId]) -> DomainResult<CampaignInput> {
    input.name = validate::name("name", &input.name, MAX_NAME_LENGTH)?;
    input.description = input.description.trim().to_owned();
    if input.description.chars().count() > MAX_DESCRIPTION_LENGTH {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LENGTH} characters"),
        ));
    }
    input.tags = validate::tags(&input.tags, MAX_TAGS, MAX_TAG_LENGTH)?;
    check_variants(&mut input, existing)?;
    check_delivery(&input)?;
    check_conversions(&mut input)?;
    check_settings(&input.settings)?;
    if let Some(filter) = &input.audience.filter {
        filter
            .validate()
            .map_err(|e| DomainError::invalid("audience.filter", error_message(e)))?;
    }
    let mut seen = HashSet::new();
    input
        .audience
        .segment_ids
        .retain(|id| seen.insert(id.clone()));
    Ok(input)
}

/// The message of an `Invalid` error, or the whole error text.
fn error_message(error: DomainError) -> String {
    match error {
        DomainError::Invalid { message, .. } => message,
        other => other.to_string(),
    }
}

fn check_variants(input: &mut CampaignInput, existing: &[VariantId]) -> DomainResult<()> {
    if input.variants.is_empty() || input.variants.len() > MAX_VARIANTS {
        return Err(DomainError::invalid(
            "variants",
            format!("a campaign has 1 to {MAX_VARIANTS} variants"),
        ));
    }
    let mut used: HashSet<VariantId> = HashSet::new();
    let mut total = u32::from(input.control_percent);
    for (i, variant) in input.variants.iter_mut().enumerate() {
        let name = variant.name.trim();
        variant.name = if name.is_empty() {
            format!("Variant {}", i + 1)
        } else {
            validate::name(at(&VARIANT_NAME, i), name, MAX_VARIANT_NAME_LENGTH)?
        };
        if variant.percent > 100 {
            return Err(DomainError::invalid(
                at(&VARIANT_PERCENT, i),
                "must be between 0 and 100",
            ));
        }
        total += u32::from(variant.percent);
        check_message(input.kind, variant, i)?;
        variant.id = match variant.id.take() {
            Some(id) if existing.contains(&id) && !used.contains(&id) => Some(id),
            _ => Some(VariantId::generate()),
        };
        if let Some(id) = &variant.id {
            used.insert(id.clone());
        }
    }
    if input.control_percent > 100 {
        return Err(DomainError::invalid(
            "control_percent",
            "must be between 0 and 100",
        ));
    }
    if total != 100 {
        return Err(DomainError::invalid(
            "control_percent",
            format!(
                "the variants' percentages and the control group must add up to 100, not {total}"
            ),
        ));
    }
    Ok(())
}

fn check_message(kind: CampaignKind, variant: &Variant, i: usize) -> DomainResult<()> {
    match (kind, &variant.message) {
        (CampaignKind::Webhook, None) => Err(DomainError::invalid(
            at(&VARIANT_MESSAGE, i),
            "every variant of a webhook campaign needs a webhook",
        )),
        (CampaignKind::Webhook, Some(message)) => message.compile().map(|_| ()).map_err(|e| {
            let field = match e.field() {
                Some("url") => at(&VARIANT_MESSAGE_URL, i),
                Some("method") => at(&VARIANT_MESSAGE_METHOD, i),
                Some("headers") => at(&VARIANT_MESSAGE_HEADERS, i),
                Some("body") => at(&VARIANT_MESSAGE_BODY, i),
                _ => at(&VARIANT_MESSAGE, i),
            };
            DomainError::invalid(field, error_message(e))
        }),
        (CampaignKind::Api, Some(_)) => Err(DomainError::invalid(
            at(&VARIANT_MESSAGE, i),
            "an API campaign's content comes with each API call; its variants have no webhook",
        )),
        (CampaignKind::Api, None) => Ok(()),
    }
}

fn check_delivery(input: &CampaignInput) -> DomainResult<()> {
    if input.kind == CampaignKind::Api && input.delivery != Delivery::Api {
        return Err(DomainError::invalid(
            "delivery",
            "an API campaign is delivered by API calls only",
        ));
    }
    match &input.delivery {
        Delivery::Api => Ok(()),
        Delivery::Scheduled { schedule } => check_schedule(schedule),
        Delivery::Action {
            trigger,
            delay_seconds,
            exceptions,
            starts_at,
            ends_at,
        } => {
            check_trigger(
                trigger,
                "delivery.trigger.name",
                "delivery.trigger.property_filters",
            )?;
            if !exceptions.is_empty() && *delay_seconds == 0 {
                return Err(DomainError::invalid(
                    "delivery.exceptions",
                    "exception events need a delay before sending",
                ));
            }
            for exception in exceptions {
                check_trigger(exception, "delivery.exceptions", "delivery.exceptions")?;
            }
            if let (Some(start), Some(end)) = (starts_at, ends_at)
                && end <= start
            {
                return Err(DomainError::invalid(
                    "delivery.ends_at",
                    "must be after the start",
                ));
            }
            Ok(())
        }
    }
}

/// The parts of a schedule that need no calendar: the time zone itself is checked by
/// `schedule::next_occurrence` at launch.
fn check_schedule(schedule: &Schedule) -> DomainResult<()> {
    let Schedule::At {
        starts_on,
        recurrence,
        ends_on,
        time_zone,
        ..
    } = schedule
    else {
        return Ok(());
    };
    if time_zone.trim().is_empty() {
        return Err(DomainError::invalid(
            "delivery.schedule.time_zone",
            "is required",
        ));
    }
    if ends_on.is_some_and(|end| end < *starts_on) {
        return Err(DomainError::invalid(
            "delivery.schedule.ends_on",
            "must not be before the start date",
        ));
    }
    let every = match recurrence {
        Recurrence::Once => return Ok(()),
        Recurrence::Daily { every } => *every,
        Recurrence::Weekly { every, days } => {
            if days.is_empty() {
                return Err(DomainError::invalid(
                    "delivery.schedule.recurrence.days",
                    "choose at least one day",
                ));
            }
            *every
        }
        Recurrence::Monthly { every, day } => {
            if !(1..=31).contains(day) {
                return Err(DomainError::invalid(
                    "delivery.schedule.recurrence.day",
                    "must be between 1 and 31",
                ));
            }
            *every
        }
    };
    if every == 0 {
        return Err(DomainError::invalid(
            "delivery.schedule.recurrence.every",
            "must be at least 1",
        ));
    }
    Ok(())
}

fn check_trigger(
    trigger: &Trigger,
    name_field: &'static str,
    filters_field: &'static str,
) -> DomainResult<()> {
    match trigger {
        Trigger::CustomEvent {
            name,
            property_filters,
        } => {
            if name.trim().is_empty() {
                return Err(DomainError::invalid(
                    name_field,
                    "an event name is required",
                ));
            }
            if name.chars().count() > MAX_EVENT_NAME_LENGTH {
                return Err(DomainError::invalid(
                    name_field,
                    format!("an event name is at most {MAX_EVENT_NAME_LENGTH} characters"),
                ));
            }
            for filter in property_filters {
                if filter.property.trim().is_empty() {
                    return Err(DomainError::invalid(
                        filters_field,
                        "every property filter names a property",
                    ));
                }
                if !PROPERTY_COMPARISONS.contains(&filter.comparison.as_str()) {
                    return Err(DomainError::invalid(
                        filters_field,
                        format!(
                            "“{}” is not a comparison (use one of {})",
                            filter.comparison,
                            PROPERTY_COMPARISONS.join(", ")
                        ),
                    ));
                }
            }
            Ok(())
        }
        Trigger::Purchase { product_id } => match product_id {
            Some(product) if product.trim().is_empty() => Err(DomainError::invalid(
                name_field,
                "a product id can't be empty (leave it out for any purchase)",
            )),
            Some(product) if product.chars().count() > MAX_EVENT_NAME_LENGTH => {
                Err(DomainError::invalid(
                    name_field,
                    format!("a product id is at most {MAX_EVENT_NAME_LENGTH} characters"),
                ))
            }
            _ => Ok(()),
        },
    }
}

fn check_conversions(input: &mut CampaignInput) -> DomainResult<()> {
    if input.conversions.len() > MAX_CONVERSIONS {
        return Err(DomainError::invalid(
            "conversions",
            format!("at most {MAX_CONVERSIONS} conversion events"),
        ));
    }
    for (i, conversion) in input.conversions.iter().enumerate() {
        let field = at(&CONVERSION_TRIGGER, i);
        check_trigger(&conversion.trigger, field, field)?;
        if !(1..=MAX_CONVERSION_WINDOW_SECONDS).contains(&conversion.window_seconds) {
            return Err(DomainError::invalid(
                at(&CONVERSION_WINDOW, i),
                "must be between 1 second and 30 days",
            ));
        }
    }
    Ok(())
}

fn check_settings(settings: &Settings) -> DomainResult<()> {
    if settings.rate_per_minute == Some(0) {
        return Err(DomainError::invalid(
            "settings.rate_per_minute",
            "must be at least 1 message per minute",
        ));
    }
    if settings
        .reeligible_after_seconds
        .is_some_and(|s| s > MAX_REELIGIBLE_AFTER_SECONDS)
    {
        return Err(DomainError::invalid(
            "settings.reeligible_after_seconds",
            "must be at most 720 days",
        ));
    }
    if settings.max_recipients == Some(0) {
        return Err(DomainError::invalid(
            "settings.max_recipients",
            "must be at least 1",
        ));
    }
    if let Some(quiet) = &settings.quiet_hours
        && quiet.start == quiet.end
    {
        return Err(DomainError::invalid(
            "settings.quiet_hours",
            "start and end must differ",
        ));
    }
    Ok(())
}
