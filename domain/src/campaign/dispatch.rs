//! Turns a campaign into outbox rows: the audience paged from the database, each user's sticky
//! variant (or the control group), re-eligibility, frequency caps, quiet hours and local time;
//! receipts are written in the same transaction as the sends.
//!
//! Firing a scheduled occurrence never reaches a user twice: the occurrence row is unique per
//! campaign and due time, it is claimed under a lease, and each page of the audience is written
//! in one transaction together with the occurrence's cursor (the last profile id written), on the
//! condition that the lease is still the one this process took (see [`crate::claim`]). A process
//! that dies mid-dispatch leaves the cursor at the last committed page; whoever claims the
//! occurrence after the lease runs out resumes after it, and a process that lost its lease writes
//! nothing more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    Set, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::audience::Pages;
// `store` reads the audience filter from here.
pub(super) use super::audience::audience_filter;
use super::model::{
    Campaign, CampaignKind, CampaignStatus, Delivery, QuietHours, Schedule, Variant,
};
use super::schedule;
use super::split::{Assignment, assign};
use crate::claim::{
    self, Occurrence, OccurrenceTable, Tally, status as occurrence_status, to_millis,
};
use crate::entity::{
    campaign as campaign_row, campaign_occurrence, campaign_receipt, frequency_cap_rule, profile,
    webhook_send,
};
use crate::messaging::{Audience, MAX_LISTED_RECIPIENTS};
use crate::outbox::{NewSend, SourceKind, Tracking};
use crate::webhook::WebhookMessage;
use crate::{CampaignId, DomainError, DomainResult, VariantId, WorkspaceId};

/// Rows per receipt upsert, well under both databases' bind-parameter limits.
const RECEIPT_CHUNK: usize = 500;

/// What one dispatch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchOutcome {
    pub dispatch_id: String,
    /// Sends written to the outbox.
    pub queued: u64,
    /// Users held out in the control group.
    pub control: u64,
    /// Users skipped: not re-eligible yet, frequency-capped, or in quiet hours with abort.
    pub skipped: u64,
    /// Listed external ids that matched no user.
    pub unknown_recipients: Vec<String>,
}

impl OccurrenceTable for campaign_occurrence::Entity {
    const OWNER: &'static str = "campaign";
    const FIRING: &'static str = "IN ('scheduled', 'active')";
    const WORKSPACE_ID: Self::Column = campaign_occurrence::Column::WorkspaceId;
    const ID: Self::Column = campaign_occurrence::Column::Id;
    const OWNER_ID: Self::Column = campaign_occurrence::Column::CampaignId;
    const STATUS: Self::Column = campaign_occurrence::Column::Status;
    const LEASE_UNTIL: Self::Column = campaign_occurrence::Column::LeaseUntil;
    const COMPLETED_AT: Self::Column = campaign_occurrence::Column::CompletedAt;
    const DISPATCH_ID: Option<Self::Column> = Some(campaign_occurrence::Column::DispatchId);
    const CURSOR: Self::Column = campaign_occurrence::Column::Cursor;
    const COUNT: Self::Column = campaign_occurrence::Column::Recipients;

    /// Whether the campaign may send right now: `scheduled` or `active`.
    async fn may_fire(
        db: &impl ConnectionTrait,
        occurrence: &Occurrence<Self>,
    ) -> DomainResult<bool> {
        let status: Option<String> = campaign_row::Entity::find()
            .select_only()
            .column(campaign_row::Column::Status)
            .filter(campaign_row::Column::WorkspaceId.eq(occurrence.ws.as_str()))
            .filter(campaign_row::Column::Id.eq(occurrence.owner.as_str()))
            .into_tuple()
            .one(db)
            .await?;
        Ok(matches!(status.as_deref(), Some("scheduled" | "active")))
    }
}

/// Fires the due occurrences of scheduled campaigns (claimed under a lease, so several processes
/// share the work and a crashed dispatch resumes from its cursor), plans each campaign's next
/// occurrence, and returns how many occurrences finished.
///
/// Occurrences of campaigns that are not `scheduled` or `active` are not claimed: a stopped
/// campaign's occurrence waits, pending, until the campaign is resumed (see
/// [`super::replan`]). One occurrence failing does not hold up the others; the first error is
/// returned after all were tried, and the failed occurrence is taken up again, from its cursor,
/// when its lease runs out.
///
/// Leases are measured from `now` plus the time this call has been running, so a long dispatch
/// keeps renewing its lease while `now` stays the one instant its sends are stamped with.
pub async fn run_due_occurrences<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    run_due_occurrences_reading(db, db, now, limit).await
}

/// [`run_due_occurrences`], reading the audience pages, receipts and frequency-cap counts through
/// `reads`: on SQLite, a second connection to the same file (see `engine::open_reader`), so these
/// reads go on while the one writing connection claims, records or commits a page, instead of
/// queueing behind it. Everything written still goes through `db`. The reads were already made
/// outside the page's transaction, so a reader sees nothing staler than before: what was committed
/// when it reads.
pub async fn run_due_occurrences_reading<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    reads: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    let started = Instant::now();
    let mut tally = Tally::default();
    for occurrence in claim::claim::<campaign_occurrence::Entity>(db, now, limit).await? {
        tally.add(fire(db, reads, occurrence, now, started).await);
    }
    tally.result()
}

/// Where a user's wall times are read: their own zone, else `fallback`.
fn user_zone(user: &profile::Model, fallback: Tz) -> Tz {
    user.time_zone
        .as_deref()
        .and_then(|zone| zone.trim().parse::<Tz>().ok())
        .unwrap_or(fallback)
}

/// The zone used for users without one: the schedule's (the company time zone), else UTC.
fn campaign_zone(campaign: &Campaign) -> Tz {
    match &campaign.delivery {
        Delivery::Scheduled {
            schedule: Schedule::At { time_zone, .. },
        } => schedule::parse_zone(time_zone).unwrap_or(Tz::UTC),
        _ => Tz::UTC,
    }
}

/// Runs one claimed occurrence to its end (or until it cannot go on). `true` when it finished.
async fn fire<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    reads: &impl ConnectionTrait,
    mut occurrence: Occurrence<campaign_occurrence::Entity>,
    now: DateTime<Utc>,
    started: Instant,
) -> DomainResult<bool> {
    let ws = occurrence.ws.clone();
    let id = CampaignId::from_db(occurrence.owner.clone());
    // A campaign gone or archived (or no longer scheduled) cancels the occurrence; a draft or
    // stopped one leaves it pending until it sends again.
    let campaign = match super::store::find_campaign(db, &ws, &id).await {
        Ok(campaign) => campaign,
        Err(DomainError::NotFound(_)) => {
            return occurrence
                .let_go(db, occurrence_status::CANCELLED, now)
                .await;
        }
        Err(error) => return Err(error),
    };
    let schedule = match (&campaign.delivery, campaign.status) {
        (_, CampaignStatus::Archived) | (Delivery::Action { .. } | Delivery::Api, _) => {
            return occurrence
                .let_go(db, occurrence_status::CANCELLED, now)
                .await;
        }
        (_, CampaignStatus::Draft | CampaignStatus::Stopped) => {
            return occurrence.let_go(db, occurrence_status::PENDING, now).await;
        }
        (Delivery::Scheduled { schedule }, _) => schedule,
    };
    let filter = audience_filter(db, &ws, &campaign.audience).await?;
    let fallback = campaign_zone(&campaign);
    // Local time: every user's send is due at the schedule's wall time on the occurrence's date
    // in their own zone.
    let local: Option<(NaiveDate, NaiveTime)> = match schedule {
        Schedule::At {
            in_local_time: true,
            time,
            ..
        } => Some((schedule::local_time_date(occurrence.due_at), *time)),
        _ => None,
    };
    let max = campaign.settings.max_recipients;
    let dispatch_id = occurrence.dispatch_id.clone().unwrap_or_default();
    let mut pages = Pages::new(&ws, &filter, now, occurrence.cursor.clone());
    // Each page is read and planned (receipts, caps, rows) through `reads` before its transaction
    // begins, so the transaction holds the writing connection only for the writes.
    while let Some(page) = occurrence.read_page(reads, &mut pages, max).await? {
        let users = page
            .into_iter()
            .map(|user| {
                let not_before = local.and_then(|(date, time)| {
                    let due =
                        schedule::local_to_utc(user_zone(&user, fallback), date.and_time(time));
                    // A wall time already past (the dispatch ran late) sends at once.
                    (due > now).then_some(due)
                });
                let extras = Extras {
                    not_before,
                    ..Extras::default()
                };
                (user, extras)
            })
            .collect();
        let sent_so_far = u64::try_from(occurrence.count).unwrap_or(0);
        let room = max.map(|max| max.saturating_sub(sent_so_far));
        let planned =
            plan_sends(reads, &ws, &campaign, &dispatch_id, users, None, now, room).await?;
        let Some(txn) = occurrence.begin_page(db, now, started).await? else {
            return Ok(false);
        };
        let outcome = planned.write(&txn).await?;
        occurrence.save_page(txn, &pages, outcome.queued).await?;
    }
    let txn = db.begin().await?;
    if !occurrence.finish(&txn, now).await? {
        return Ok(false);
    }
    // A scheduled campaign turns active when it first sends (a system change: no new version).
    campaign_row::Entity::update_many()
        .col_expr(
            campaign_row::Column::Status,
            Expr::value(CampaignStatus::Active.as_str()),
        )
        .filter(campaign_row::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign_row::Column::Id.eq(campaign.id.as_str()))
        .filter(campaign_row::Column::Status.eq(CampaignStatus::Scheduled.as_str()))
        .exec(&txn)
        .await?;
    super::schedule::replan(&txn, &ws, &campaign, now).await?;
    txn.commit().await?;
    Ok(true)
}

/// `/messages/send` with a `campaign_id`: `message` sent now to `audience`, tracked under the
/// API campaign's `variant` (which must belong to it: "Invalid Message Variant"). All users are
/// eligible, as in Braze.
///
/// The campaign must be an active API campaign. No re-eligibility, frequency cap, quiet hours or
/// variant split applies; a user listed twice is sent once. Receipts are written (the variant,
/// when) so analytics see the recipients. Everything is written in one transaction.
#[allow(clippy::too_many_arguments)]
pub async fn send_api_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    variant: &VariantId,
    message: &WebhookMessage,
    audience: Audience,
    send_tag: Option<String>,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    let invalid_campaign = || DomainError::invalid("campaign_id", "Invalid Campaign ID");
    let campaign = match super::store::find_campaign(db, ws, campaign).await {
        Ok(campaign) => campaign,
        Err(DomainError::NotFound(_)) => return Err(invalid_campaign()),
        Err(error) => return Err(error),
    };
    if campaign.kind != CampaignKind::Api || campaign.status != CampaignStatus::Active {
        return Err(invalid_campaign());
    }
    let Some(variant) = campaign
        .variants
        .iter()
        .find(|v| v.id.as_ref() == Some(variant))
    else {
        return Err(DomainError::invalid(
            "messages.webhook.message_variation_id",
            "Invalid Message Variant",
        ));
    };
    let dispatch_id = uuid::Uuid::new_v4().simple().to_string();
    let mut outcome = DispatchOutcome {
        dispatch_id: dispatch_id.clone(),
        ..DispatchOutcome::default()
    };
    let txn = db.begin().await?;
    // These users' sends and receipts.
    let variant_id = variant.id.as_ref().map(ToString::to_string);
    let write = |users: &[profile::Model]| {
        let sends: Vec<NewSend> = users
            .iter()
            .map(|user| NewSend {
                workspace_id: ws.clone(),
                source_kind: SourceKind::Campaign,
                source_id: Some(campaign.id.to_string()),
                source_name: Some(campaign.name.clone()),
                recipient: user.external_id.clone(),
                message: message.clone(),
                context: render_context(user, &campaign, &dispatch_id, variant, &Extras::default()),
                due_at: None,
                tracking: Tracking {
                    variant_id: variant_id.clone(),
                    dispatch_id: Some(dispatch_id.clone()),
                    send_tag: send_tag.clone(),
                },
            })
            .collect();
        let receipts: Vec<(String, Option<String>)> = users
            .iter()
            .map(|user| (user.id.clone(), variant_id.clone()))
            .collect();
        (sends, receipts)
    };
    match audience {
        Audience::Listed {
            external_ids,
            within,
        } => {
            if external_ids.len() > MAX_LISTED_RECIPIENTS {
                return Err(DomainError::invalid(
                    "external_user_ids",
                    "The max number of external_ids and aliases per request was exceeded (50)",
                ));
            }
            let mut users = Vec::new();
            let mut seen = HashSet::new();
            for external_id in external_ids {
                if !seen.insert(external_id.clone()) {
                    continue;
                }
                match crate::profile::find_by_external_id(&txn, ws, &external_id).await? {
                    Some(user) => users.push(user),
                    None => outcome.unknown_recipients.push(external_id),
                }
            }
            if let Some(filter) = within {
                // Each listed user is checked against the filter with one indexed count.
                let mut kept = Vec::new();
                for user in users {
                    let this_user = crate::segment::Filter::And {
                        filters: vec![
                            filter.clone(),
                            crate::segment::Filter::Attribute {
                                name: "external_id".into(),
                                custom: false,
                                comparison: crate::segment::Comparison::Equals,
                                value: Json::String(user.external_id.clone().unwrap_or_default()),
                            },
                        ],
                    };
                    if crate::segment::count(&txn, ws, &this_user, now).await? > 0 {
                        kept.push(user);
                    }
                }
                users = kept;
            }
            outcome.queued = users.len() as u64;
            let (sends, receipts) = write(&users);
            crate::outbox::enqueue_limited(&txn, sends, campaign.settings.rate_per_minute, now)
                .await?;
            upsert_receipts(&txn, ws, &campaign.id, receipts, now).await?;
        }
        Audience::Broadcast(filter) => {
            let mut pages = Pages::new(ws, &filter, now, None);
            while let Some(page) = pages.next(&txn).await? {
                outcome.queued += page.len() as u64;
                let (sends, receipts) = write(&page);
                crate::outbox::enqueue_limited(&txn, sends, campaign.settings.rate_per_minute, now)
                    .await?;
                upsert_receipts(&txn, ws, &campaign.id, receipts, now).await?;
            }
        }
    }
    txn.commit().await?;
    Ok(outcome)
}

/// Per-user additions of one dispatch.
#[derive(Clone, Debug, Default)]
pub(super) struct Extras {
    /// `{{api_trigger_properties.${…}}}`.
    pub api_trigger_properties: serde_json::Map<String, serde_json::Value>,
    /// `{{event_properties.${…}}}` of the triggering event.
    pub event_properties: serde_json::Map<String, serde_json::Value>,
    /// Earliest first attempt (an action-based delay); local time and quiet hours may push it
    /// later.
    pub not_before: Option<DateTime<Utc>>,
}

/// What a send's templates see: the user, `{{campaign.${…}}}`, and the dispatch's extras.
fn render_context(
    user: &profile::Model,
    campaign: &Campaign,
    dispatch_id: &str,
    variant: &Variant,
    extras: &Extras,
) -> crate::template::RenderContext {
    let mut context = crate::profile::render_context(user);
    let mut fields = Map::new();
    fields.insert("name".into(), Json::String(campaign.name.clone()));
    fields.insert("api_id".into(), Json::String(campaign.id.to_string()));
    fields.insert("dispatch_id".into(), Json::String(dispatch_id.to_owned()));
    fields.insert("message_name".into(), Json::String(variant.name.clone()));
    if let Some(id) = &variant.id {
        fields.insert("message_api_id".into(), Json::String(id.to_string()));
    }
    context.campaign = fields;
    context.api_trigger_properties = extras.api_trigger_properties.clone();
    context.event_properties = extras.event_properties.clone();
    context
}

/// Whether a user with this receipt may receive the campaign again at `now`.
fn reeligible(
    settings: &super::model::Settings,
    receipt: Option<&campaign_receipt::Model>,
    now: DateTime<Utc>,
) -> bool {
    let Some(receipt) = receipt else { return true };
    match settings.reeligible_after_seconds {
        None => false,
        Some(seconds) => {
            let wait = TimeDelta::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
            receipt.last_received_at + wait <= now
        }
    }
}

/// When quiet hours hold a send planned for `at` in `zone`: the end of the quiet period, if `at`
/// falls inside one. A period whose start is after its end runs over midnight; equal start and
/// end means no quiet hours.
fn quiet_until(quiet: &QuietHours, zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if quiet.start == quiet.end {
        return None;
    }
    let local = at.with_timezone(&zone).naive_local();
    let (time, date) = (local.time(), local.date());
    let ends_on = if quiet.start < quiet.end {
        (quiet.start <= time && time < quiet.end).then_some(date)
    } else if time >= quiet.start {
        date.succ_opt()
    } else if time < quiet.end {
        Some(date)
    } else {
        None
    }?;
    Some(schedule::local_to_utc(zone, ends_on.and_time(quiet.end)))
}

/// The users (by external id) whom a frequency-capping rule stops from receiving `campaign` now.
/// One grouped count per rule over the whole page; users without an external id cannot be
/// counted and are never capped.
async fn capped_recipients(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    recipients: &[String],
    now: DateTime<Utc>,
) -> DomainResult<HashSet<String>> {
    let mut capped = HashSet::new();
    if recipients.is_empty() {
        return Ok(capped);
    }
    let rules = frequency_cap_rule::Entity::find()
        .filter(frequency_cap_rule::Column::WorkspaceId.eq(ws.as_str()))
        .all(db)
        .await?;
    for rule in rules {
        let mut count = webhook_send::Entity::find()
            .select_only()
            .column(webhook_send::Column::Recipient)
            .column_as(webhook_send::Column::Id.count(), "n")
            .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
            .filter(webhook_send::Column::Recipient.is_in(recipients.iter().cloned()))
            .filter(
                webhook_send::Column::CreatedAt.gt(now - TimeDelta::seconds(rule.window_seconds)),
            )
            .filter(webhook_send::Column::CreatedAt.lte(now))
            .filter(webhook_send::Column::Status.ne(crate::outbox::status::ABORTED));
        match &rule.tag {
            // A tag rule caps only campaigns with the tag, and counts only their sends.
            Some(tag) => {
                if !campaign.tags.contains(tag) {
                    continue;
                }
                let tagged = tagged_campaigns(db, ws, tag).await?;
                count = count
                    .filter(webhook_send::Column::SourceKind.eq(SourceKind::Campaign.as_str()))
                    .filter(webhook_send::Column::SourceId.is_in(tagged));
            }
            None => {
                count = count.filter(webhook_send::Column::SourceKind.is_in([
                    SourceKind::Campaign.as_str(),
                    SourceKind::Canvas.as_str(),
                    SourceKind::Api.as_str(),
                ]));
            }
        }
        let counts: Vec<(Option<String>, i64)> = count
            .group_by(webhook_send::Column::Recipient)
            .into_tuple()
            .all(db)
            .await?;
        for (recipient, sends) in counts {
            if let Some(recipient) = recipient
                && sends >= i64::from(rule.max_sends)
            {
                capped.insert(recipient);
            }
        }
    }
    Ok(capped)
}

/// Ids of the workspace's campaigns tagged `tag`.
async fn tagged_campaigns(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    tag: &str,
) -> DomainResult<Vec<String>> {
    // LIKE narrows the rows; the tags are then read exactly (LIKE's wildcards and JSON escapes
    // could match too much).
    let rows: Vec<(String, String)> = campaign_row::Entity::find()
        .select_only()
        .column(campaign_row::Column::Id)
        .column(campaign_row::Column::Tags)
        .filter(campaign_row::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign_row::Column::Tags.contains(tag))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, tags)| {
            serde_json::from_str::<Vec<String>>(tags)
                .is_ok_and(|tags| tags.iter().any(|t| t == tag))
        })
        .map(|(id, _)| id)
        .collect())
}

/// Records who received the campaign (or was held out), when, and with which variant.
async fn upsert_receipts(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    receipts: Vec<(String, Option<String>)>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    for statement in prepare_receipts(db.get_database_backend(), ws, campaign, receipts, now) {
        db.execute(statement).await?;
    }
    Ok(())
}

/// The statements that record who received the campaign (or was held out), when, and with
/// which variant.
fn prepare_receipts(
    backend: DbBackend,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    receipts: Vec<(String, Option<String>)>,
    now: DateTime<Utc>,
) -> Vec<Statement> {
    // One row per user: a row may be upserted only once per statement on PostgreSQL.
    let receipts: BTreeMap<String, Option<String>> = receipts.into_iter().collect();
    let now = to_millis(now);
    let mut rows: Vec<campaign_receipt::ActiveModel> = receipts
        .into_iter()
        .map(|(profile_id, variant_id)| campaign_receipt::ActiveModel {
            workspace_id: Set(ws.to_string()),
            campaign_id: Set(campaign.to_string()),
            profile_id: Set(profile_id),
            variant_id: Set(variant_id),
            first_received_at: Set(now),
            last_received_at: Set(now),
            receipts: Set(1),
        })
        .collect();
    let mut statements = Vec::with_capacity(rows.len().div_ceil(RECEIPT_CHUNK));
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(RECEIPT_CHUNK));
        let on_conflict = OnConflict::columns([
            campaign_receipt::Column::WorkspaceId,
            campaign_receipt::Column::CampaignId,
            campaign_receipt::Column::ProfileId,
        ])
        .update_columns([
            campaign_receipt::Column::VariantId,
            campaign_receipt::Column::LastReceivedAt,
        ])
        .value(
            campaign_receipt::Column::Receipts,
            Expr::col((campaign_receipt::Entity, campaign_receipt::Column::Receipts)).add(1),
        )
        .to_owned();
        statements.push(
            campaign_receipt::Entity::insert_many(std::mem::replace(&mut rows, rest))
                .on_conflict(on_conflict)
                .build(backend),
        );
    }
    statements
}

/// Queues `campaign`'s sends for `users` under `dispatch_id`, in the caller's transaction: picks
/// each user's sticky variant (or the control group), skips users not re-eligible yet or
/// frequency-capped (unless the campaign ignores caps), applies quiet hours and local time,
/// writes the sends (source `campaign`, the campaign's rate limit) and the receipts.
pub(super) async fn queue_campaign_sends(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &super::model::Campaign,
    dispatch_id: &str,
    users: Vec<(crate::entity::profile::Model, Extras)>,
    send_tag: Option<String>,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    queue_sends(db, ws, campaign, dispatch_id, users, send_tag, now, None).await
}

/// [`queue_campaign_sends`], writing at most `max_sends` sends (the rest of the page is left
/// alone: the caller stops there).
#[allow(clippy::too_many_arguments)]
async fn queue_sends(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    dispatch_id: &str,
    users: Vec<(profile::Model, Extras)>,
    send_tag: Option<String>,
    now: DateTime<Utc>,
    max_sends: Option<u64>,
) -> DomainResult<DispatchOutcome> {
    plan_sends(
        db,
        ws,
        campaign,
        dispatch_id,
        users,
        send_tag,
        now,
        max_sends,
    )
    .await?
    .write(db)
    .await
}

/// A page of campaign sends decided and turned into statements, not written yet.
struct PlannedSends {
    outcome: DispatchOutcome,
    sends: crate::outbox::PreparedSends,
    receipts: Vec<Statement>,
}

impl PlannedSends {
    /// Writes the sends and the receipts (in the caller's transaction).
    async fn write(self, db: &impl ConnectionTrait) -> DomainResult<DispatchOutcome> {
        self.sends.execute(db).await?;
        for statement in self.receipts {
            db.execute(statement).await?;
        }
        Ok(self.outcome)
    }
}

/// Everything of [`queue_sends`] but the writes: reads the users' receipts and frequency-cap
/// counts, decides who gets which variant when, and prepares the rows. A scheduled occurrence
/// runs this before it opens the page's transaction, so that on SQLite the single connection is
/// held only while the rows are written, not while they are computed.
#[allow(clippy::too_many_arguments)]
async fn plan_sends(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    dispatch_id: &str,
    users: Vec<(profile::Model, Extras)>,
    send_tag: Option<String>,
    now: DateTime<Utc>,
    max_sends: Option<u64>,
) -> DomainResult<PlannedSends> {
    let mut outcome = DispatchOutcome {
        dispatch_id: dispatch_id.to_owned(),
        ..DispatchOutcome::default()
    };
    if users.is_empty() {
        return Ok(PlannedSends {
            outcome,
            sends: Default::default(),
            receipts: Vec::new(),
        });
    }
    let ids: Vec<String> = users.iter().map(|(user, _)| user.id.clone()).collect();
    let receipts: HashMap<String, campaign_receipt::Model> = campaign_receipt::Entity::find()
        .filter(campaign_receipt::Column::WorkspaceId.eq(ws.as_str()))
        .filter(campaign_receipt::Column::CampaignId.eq(campaign.id.as_str()))
        .filter(campaign_receipt::Column::ProfileId.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.profile_id.clone(), r))
        .collect();
    // Eligibility and the split first, so caps are counted only for users who would get a send.
    let mut chosen = Vec::with_capacity(users.len());
    for (user, extras) in users {
        let receipt = receipts.get(&user.id);
        if !reeligible(&campaign.settings, receipt, now) {
            outcome.skipped += 1;
            continue;
        }
        // The variant of the user's last receipt sticks while it takes a share.
        let assignment = assign(
            &campaign.variants,
            |v| v.percent,
            campaign.control_percent,
            receipt.map(|r| r.variant_id.as_deref()),
            |v, previous| v.id.as_ref().is_some_and(|id| id.as_str() == previous),
            &[campaign.id.as_str(), &user.id],
        );
        match assignment {
            Some(assignment) => chosen.push((user, extras, assignment)),
            None => outcome.skipped += 1,
        }
    }
    let capped = if campaign.settings.frequency_capped {
        let recipients: Vec<String> = chosen
            .iter()
            .filter(|(_, _, a)| matches!(a, Assignment::Variant(_)))
            .filter_map(|(user, _, _)| user.external_id.clone())
            .collect();
        capped_recipients(db, ws, campaign, &recipients, now).await?
    } else {
        HashSet::new()
    };
    let fallback = campaign_zone(campaign);
    let mut sends = Vec::new();
    let mut written = Vec::new();
    for (user, extras, assignment) in chosen {
        let variant = match assignment {
            Assignment::Control => {
                outcome.control += 1;
                written.push((user.id.clone(), None));
                continue;
            }
            Assignment::Variant(variant) => variant,
        };
        if max_sends.is_some_and(|max| outcome.queued >= max) {
            break;
        }
        let Some(message) = &variant.message else {
            outcome.skipped += 1;
            continue;
        };
        if user
            .external_id
            .as_ref()
            .is_some_and(|id| capped.contains(id))
        {
            outcome.skipped += 1;
            continue;
        }
        let mut due_at = extras.not_before.filter(|at| *at > now);
        if let Some(quiet) = &campaign.settings.quiet_hours
            && let Some(end) = quiet_until(quiet, user_zone(&user, fallback), due_at.unwrap_or(now))
        {
            if !quiet.send_later {
                outcome.skipped += 1;
                continue;
            }
            due_at = Some(end);
        }
        sends.push(NewSend {
            workspace_id: ws.clone(),
            source_kind: SourceKind::Campaign,
            source_id: Some(campaign.id.to_string()),
            source_name: Some(campaign.name.clone()),
            recipient: user.external_id.clone(),
            message: message.clone(),
            context: render_context(&user, campaign, dispatch_id, variant, &extras),
            due_at,
            tracking: Tracking {
                variant_id: variant.id.as_ref().map(ToString::to_string),
                dispatch_id: Some(dispatch_id.to_owned()),
                send_tag: send_tag.clone(),
            },
        });
        written.push((
            user.id.clone(),
            variant.id.as_ref().map(ToString::to_string),
        ));
        outcome.queued += 1;
    }
    let backend = db.get_database_backend();
    Ok(PlannedSends {
        outcome,
        sends: crate::outbox::prepare_sends(
            backend,
            sends,
            campaign.settings.rate_per_minute,
            now,
        )?,
        receipts: prepare_receipts(backend, ws, &campaign.id, written, now),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeZone};

    use super::*;

    fn quiet(start: (u32, u32), end: (u32, u32), send_later: bool) -> QuietHours {
        QuietHours {
            start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
            end: NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
            send_later,
        }
    }

    #[test]
    fn quiet_hours_over_midnight_end_the_next_morning_in_the_users_zone() {
        let q = quiet((22, 0), (8, 0), true);
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // 23:30 in Paris (22:30 UTC in winter) is quiet until 08:00 Paris the next day.
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 22, 30, 0).unwrap();
        assert_eq!(
            quiet_until(&q, paris, at),
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 7, 0, 0).unwrap())
        );
        // 06:00 Paris is quiet until 08:00 the same day; noon is not quiet.
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 5, 0, 0).unwrap();
        assert_eq!(
            quiet_until(&q, paris, at),
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 7, 0, 0).unwrap())
        );
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 11, 0, 0).unwrap();
        assert_eq!(quiet_until(&q, paris, at), None);
        // A daytime window, and an empty one.
        let q = quiet((12, 0), (14, 0), false);
        assert!(quiet_until(&q, Tz::UTC, at.with_timezone(&Utc) + TimeDelta::hours(1)).is_some());
        assert_eq!(
            quiet_until(&quiet((9, 0), (9, 0), false), Tz::UTC, at),
            None
        );
    }
}
