//! How users enter a Canvas: `/canvas/trigger/send` (API), tracked events (action-based), and the
//! occurrences of a scheduled entry. Entry checks the entry audience, re-entry and entry limits,
//! assigns the sticky path variant (or control), and writes the journey row (due at once) and its
//! `entered` step event in the caller's transaction. Tracked events also move users waiting in
//! Action Paths and apply exit criteria.
//!
//! Entry rules, whatever the way in:
//! - Only users in the entry audience (segments AND filter) enter; it is checked before anything
//!   else (Braze's order: audience, then trigger).
//! - Re-entry (`settings.reentry_after_seconds`): `None`, a user enters once (any earlier journey
//!   of theirs in the Canvas, finished or not, control included, keeps them out); `Some(s)`, again
//!   once `s` seconds have passed since their last entry; `Some(0)`, every time, even while inside.
//! - Entry limit (`settings.entry_limit`): at most `max` journeys entered per UTC day or over the
//!   Canvas's lifetime; users past it are skipped. On PostgreSQL the Canvas row is locked while
//!   entering, so concurrent entries neither break the limit nor enter a user twice.
//! - The path variant is locked at first entry: a user keeps the variant of their last journey
//!   while it still takes a share (control stays control while there is one), else a stable hash
//!   of the Canvas id and the profile id picks it. The control group gets a journey row written
//!   already `finished` (no variant, no step) with an `entered` event whose branch is `control`:
//!   it is an entry for re-entry, limits and analytics, and it never sends. Other entries' events
//!   carry the variant's name as their branch.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    Set, Statement, TransactionTrait, Value,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::journey::{
    Outcome, StoredState, all_of, audience_of, bucket, event, in_audience, insert_events,
    push_condition, status, step_event, to_millis, variant_key,
};
use super::model::{Canvas, CanvasStatus, CanvasVariant, Definition, Entry, JourneyState};
use crate::campaign::{PropertyFilter, Schedule, Trigger};
use crate::entity::{canvas as canvas_row, canvas_journey, canvas_occurrence, profile};
use crate::profile::{EventKind, InboxItem};
use crate::{CanvasId, DomainError, DomainResult, JourneyId, ProfileId, WorkspaceId};

/// One listed recipient of `/canvas/trigger/send`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasRecipient {
    pub external_user_id: String,
    /// Merged over the call's `context` for this user.
    #[serde(default)]
    pub context: Map<String, Json>,
    #[serde(default = "yes")]
    pub send_to_existing_only: bool,
    /// Braze user attributes applied before entry.
    #[serde(default)]
    pub attributes: Option<Map<String, Json>>,
}

fn yes() -> bool {
    true
}

/// Who a trigger call enters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CanvasTarget {
    /// At most 50 listed users (only those in the entry audience enter).
    Recipients { recipients: Vec<CanvasRecipient> },
    /// The whole entry audience, optionally narrowed by a Connected Audience filter.
    Broadcast {
        #[serde(default)]
        audience: Option<crate::segment::Filter>,
    },
}

/// A `/canvas/trigger/send` call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasTriggerRequest {
    pub target: CanvasTarget,
    /// `context` (or its older name `canvas_entry_properties`), ≤ 50 KB.
    #[serde(default)]
    pub context: Map<String, Json>,
}

/// What an entry call did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryOutcome {
    pub dispatch_id: String,
    pub entered: u64,
    /// Not in the entry audience, not re-eligible, over the entry limit, or in the control group.
    pub skipped: u64,
    pub unknown_recipients: Vec<String>,
    /// Braze's notice when the Canvas is paused or archived (nothing entered).
    pub notice: Option<String>,
}

/// Most listed recipients of one trigger call, as in Braze.
const MAX_RECIPIENTS: usize = 50;
/// Largest `context` object (serialized JSON), as in Braze.
const MAX_CONTEXT_BYTES: usize = 50 * 1024;
/// Audience members entered per page.
const PAGE: u64 = 1000;
/// Ids per `IN (…)` list.
const ID_CHUNK: usize = 500;
/// How long a claimed occurrence is held; every page renews it.
const OCCURRENCE_LEASE: TimeDelta = TimeDelta::seconds(60);
/// How far ahead of the wall time a local-time occurrence fires: 24 hours before the earliest
/// zone (UTC+14) reaches it (the campaigns' rule, see `campaign::next_occurrence`).
const LOCAL_TIME_LEAD: TimeDelta = TimeDelta::hours(14 + 24);

/// Braze's notices for trigger calls that enter no one.
const PAUSED_NOTICE: &str =
    "The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect.";
const STOPPED_NOTICE: &str =
    "The Canvas is stopped. Resume the Canvas to ensure trigger requests will take effect.";
const ARCHIVED_NOTICE: &str =
    "The Canvas is archived. Unarchive the Canvas to ensure trigger requests will take effect.";

/// Occurrence statuses as stored.
mod occurrence_status {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const CANCELLED: &str = "cancelled";
}

fn invalid_canvas(detail: Option<&str>) -> DomainError {
    match detail {
        None => DomainError::invalid("canvas_id", "Invalid Canvas ID"),
        Some(why) => DomainError::invalid("canvas_id", format!("Invalid Canvas ID: {why}")),
    }
}

fn json_size(map: &Map<String, Json>) -> usize {
    serde_json::to_string(map).map_or(usize::MAX, |text| text.len())
}

/// Checks what a trigger call carries before anything is read.
fn check_request(request: &CanvasTriggerRequest) -> DomainResult<()> {
    if json_size(&request.context) > MAX_CONTEXT_BYTES {
        return Err(DomainError::invalid(
            "context",
            "must be at most 50 KB of JSON",
        ));
    }
    match &request.target {
        CanvasTarget::Recipients { recipients } => {
            if recipients.is_empty() {
                return Err(DomainError::invalid(
                    "recipients",
                    "list at least one recipient, or send a broadcast",
                ));
            }
            if recipients.len() > MAX_RECIPIENTS {
                return Err(DomainError::invalid(
                    "recipients",
                    "The max number of external_ids and aliases per request was exceeded (50)",
                ));
            }
            let mut seen = HashSet::new();
            for (index, recipient) in recipients.iter().enumerate() {
                let id = recipient.external_user_id.trim();
                if id.is_empty() {
                    return Err(DomainError::invalid(
                        "recipients.external_user_id",
                        format!("recipient {index}: must be a non-empty string"),
                    ));
                }
                // The same user twice in one call would enter twice.
                if !seen.insert(id) {
                    return Err(DomainError::invalid(
                        "recipients.external_user_id",
                        format!("\u{201c}{id}\u{201d} is listed more than once"),
                    ));
                }
                if json_size(&recipient.context) > MAX_CONTEXT_BYTES {
                    return Err(DomainError::invalid(
                        "recipients.context",
                        format!(
                            "recipient {index} (\u{201c}{id}\u{201d}): must be at most 50 KB of JSON"
                        ),
                    ));
                }
                // Braze: `false` requires `attributes`, whether or not the user exists.
                if !recipient.send_to_existing_only && recipient.attributes.is_none() {
                    return Err(DomainError::invalid(
                        "recipients.attributes",
                        format!(
                            "recipient {index} (\u{201c}{id}\u{201d}): required when \
                             send_to_existing_only is false"
                        ),
                    ));
                }
            }
        }
        CanvasTarget::Broadcast { audience } => {
            if let Some(filter) = audience {
                filter.validate()?;
            }
        }
    }
    Ok(())
}

/// On SQLite, takes the write lock before the first read so a concurrent writer waits (busy
/// timeout) instead of failing when this transaction upgrades from reading to writing.
async fn lock_for_write(db: &impl ConnectionTrait) -> DomainResult<()> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("UPDATE canvas SET version = version WHERE 0")
            .await?;
    }
    Ok(())
}

/// The workspace's users with these external ids, by external id.
async fn profiles_by_external_id(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    ids: &[String],
) -> DomainResult<HashMap<String, profile::Model>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ID_CHUNK) {
        let rows = profile::Entity::find()
            .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
            .filter(profile::Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
            .all(db)
            .await?;
        for row in rows {
            if let Some(external_id) = row.external_id.clone() {
                found.insert(external_id, row);
            }
        }
    }
    Ok(found)
}

/// `/canvas/trigger/send`: in one transaction, applies attributes (creating users when
/// `send_to_existing_only` is false), then enters the eligible users with their context. The
/// Canvas must be an API-triggered Canvas that was launched (`canvas_id` error otherwise); when it
/// is paused or archived the call succeeds with a notice and enters no one (Braze).
///
/// A stopped Canvas answers like a paused one (with its own notice). Listed users who are not in
/// the entry audience, not re-eligible, over the entry limit or in the control group count as
/// `skipped`; listed ids matching no user (and not created) are `unknown_recipients`.
pub async fn trigger_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    request: CanvasTriggerRequest,
    now: DateTime<Utc>,
) -> DomainResult<EntryOutcome> {
    check_request(&request)?;
    let txn = db.begin().await?;
    lock_for_write(&txn).await?;
    let canvas = match super::store::find_canvas(&txn, ws, id).await {
        Ok(canvas) => canvas,
        Err(DomainError::NotFound(_)) => return Err(invalid_canvas(None)),
        Err(other) => return Err(other),
    };
    let version = match (canvas.status, canvas.live_version) {
        (CanvasStatus::Draft, _) | (_, None) => {
            return Err(invalid_canvas(Some("the Canvas has not been launched")));
        }
        (_, Some(version)) => version,
    };
    let definition = super::store::version_definition(&txn, ws, id, version).await?;
    if definition.entry != Entry::Api {
        return Err(invalid_canvas(Some("the Canvas is not API-triggered")));
    }
    let mut outcome = EntryOutcome {
        dispatch_id: uuid::Uuid::new_v4().simple().to_string(),
        ..EntryOutcome::default()
    };
    let notice = match canvas.status {
        CanvasStatus::Paused => Some(PAUSED_NOTICE),
        CanvasStatus::Stopped => Some(STOPPED_NOTICE),
        CanvasStatus::Archived => Some(ARCHIVED_NOTICE),
        CanvasStatus::Active | CanvasStatus::Draft => None,
    };
    if let Some(notice) = notice {
        // Nothing is written, attributes included: the call takes no effect.
        outcome.notice = Some(notice.to_owned());
        return Ok(outcome);
    }
    let audience = audience_of(&txn, ws, &definition.audience).await?;
    let CanvasTriggerRequest { target, context } = request;
    match target {
        CanvasTarget::Recipients { recipients } => {
            let ids: Vec<String> = recipients
                .iter()
                .map(|r| r.external_user_id.trim().to_owned())
                .collect();
            let mut users = profiles_by_external_id(&txn, ws, &ids).await?;
            apply_attributes(&txn, ws, &recipients, &ids, &mut users, now).await?;
            let mut listed = Vec::new();
            for (recipient, id) in recipients.into_iter().zip(ids) {
                match users.remove(&id) {
                    Some(user) => listed.push((user, recipient.context)),
                    None => outcome.unknown_recipients.push(id),
                }
            }
            let profile_ids: Vec<String> = listed.iter().map(|(u, _)| u.id.clone()).collect();
            let members = in_audience(&txn, ws, &audience, &profile_ids, now).await?;
            let mut entrants = Vec::with_capacity(listed.len());
            for (user, own) in listed {
                if !members.contains(&user.id) {
                    outcome.skipped += 1;
                    continue;
                }
                // The recipient's own context wins over the call's.
                let mut merged = context.clone();
                merged.extend(own);
                entrants.push(Entrant {
                    user,
                    context: merged,
                    wake_at: None,
                });
            }
            let done = enter(&txn, ws, &canvas, version, &definition, entrants, now).await?;
            outcome.entered += done.entered;
            outcome.skipped += done.skipped;
        }
        CanvasTarget::Broadcast { audience: extra } => {
            let mut filters = Vec::new();
            push_condition(&mut filters, audience);
            if let Some(extra) = extra {
                push_condition(&mut filters, extra);
            }
            let filter = all_of(filters);
            let mut after: Option<ProfileId> = None;
            loop {
                let page =
                    crate::segment::members(&txn, ws, &filter, now, PAGE, after.as_ref()).await?;
                let Some(last) = page.last() else { break };
                after = Some(ProfileId::from_db(last.id.clone()));
                let full = page.len() as u64 == PAGE;
                let entrants = page
                    .into_iter()
                    .map(|user| Entrant {
                        user,
                        context: context.clone(),
                        wake_at: None,
                    })
                    .collect();
                let done = enter(&txn, ws, &canvas, version, &definition, entrants, now).await?;
                outcome.entered += done.entered;
                outcome.skipped += done.skipped;
                if !full {
                    break;
                }
            }
        }
    }
    txn.commit().await?;
    Ok(outcome)
}

/// Applies the listed recipients' attributes in one `/users/track` call (a savepoint of the
/// caller's transaction) before anyone enters, so the entry audience and the first step see them;
/// `send_to_existing_only` users who do not exist are neither created nor entered. Reads the
/// users again afterwards.
async fn apply_attributes<C: ConnectionTrait + TransactionTrait>(
    txn: &C,
    ws: &WorkspaceId,
    recipients: &[CanvasRecipient],
    ids: &[String],
    users: &mut HashMap<String, profile::Model>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut items = Vec::new();
    let mut owners = Vec::new();
    for (index, (recipient, id)) in recipients.iter().zip(ids).enumerate() {
        if !users.contains_key(id) && recipient.send_to_existing_only {
            continue;
        }
        if let Some(attributes) = &recipient.attributes {
            let mut item = attributes.clone();
            item.insert("external_id".into(), Json::String(id.clone()));
            item.insert(
                "_update_existing_only".into(),
                Json::Bool(recipient.send_to_existing_only),
            );
            items.push(Json::Object(item));
            owners.push(index);
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    let tracked = crate::profile::track(txn, ws, &json!({ "attributes": items }), now).await?;
    if let Some(error) = tracked.errors.first() {
        let index = owners.get(error.index).copied().unwrap_or_default();
        let id = ids.get(index).map_or("", String::as_str);
        return Err(DomainError::invalid(
            "recipients.attributes",
            format!(
                "recipient {index} (\u{201c}{id}\u{201d}): {}",
                error.message
            ),
        ));
    }
    *users = profiles_by_external_id(txn, ws, ids).await?;
    Ok(())
}

/// A user about to enter, with their entry properties.
pub(super) struct Entrant {
    pub user: profile::Model,
    pub context: Map<String, Json>,
    /// When the journey's first step runs (a local-time schedule); `None`: at once.
    pub wake_at: Option<DateTime<Utc>>,
}

/// What [`enter`] did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Entered {
    pub entered: u64,
    pub skipped: u64,
}

/// Where a user falls in the Canvas's variant split.
enum Assignment<'a> {
    Variant(&'a CanvasVariant),
    Control,
}

/// The user's variant (see the module doc); `None` when nothing takes a share.
fn assign<'a>(
    canvas: &CanvasId,
    definition: &'a Definition,
    profile_id: &str,
    previous: Option<&Option<String>>,
) -> Option<Assignment<'a>> {
    match previous {
        Some(Some(key)) => {
            if let Some(variant) = definition
                .variants
                .iter()
                .find(|v| v.percent > 0 && variant_key(v).as_ref() == Some(key))
            {
                return Some(Assignment::Variant(variant));
            }
        }
        Some(None) if definition.control_percent > 0 => return Some(Assignment::Control),
        _ => {}
    }
    let total = definition
        .variants
        .iter()
        .map(|v| u64::from(v.percent))
        .sum::<u64>()
        + u64::from(definition.control_percent);
    if total == 0 {
        return None;
    }
    let point = bucket(&[canvas.as_str(), profile_id], total);
    let mut edge = 0;
    for variant in &definition.variants {
        edge += u64::from(variant.percent);
        if point < edge {
            return Some(Assignment::Variant(variant));
        }
    }
    Some(Assignment::Control)
}

/// Enters users (already checked against the entry audience) into version `version` of
/// `canvas`, in the caller's transaction: re-entry, the entry limit and the variant split apply
/// (see the module doc); journeys are written due at once (or at their `wake_at`) with an
/// `entered` event each.
pub(super) async fn enter(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    canvas: &Canvas,
    version: i32,
    definition: &Definition,
    entrants: Vec<Entrant>,
    now: DateTime<Utc>,
) -> DomainResult<Entered> {
    let mut done = Entered::default();
    if entrants.is_empty() {
        return Ok(done);
    }
    let settings = &definition.settings;
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres
        && (settings.reentry_after_seconds != Some(0) || settings.entry_limit.is_some())
    {
        // Serializes entries into this Canvas until the caller commits (SQLite writers are
        // serialized already).
        db.query_one(Statement::from_sql_and_values(
            backend,
            "SELECT id FROM canvas WHERE workspace_id = $1 AND id = $2 FOR UPDATE",
            [ws.as_str().into(), canvas.id.as_str().into()],
        ))
        .await?;
    }
    let now = to_millis(now);

    // Each user's last entry and its variant (`None` inside: control).
    let ids: Vec<String> = entrants.iter().map(|e| e.user.id.clone()).collect();
    let mut last: HashMap<String, (DateTime<Utc>, Option<String>)> = HashMap::new();
    for chunk in ids.chunks(ID_CHUNK) {
        let rows: Vec<(String, Option<String>, DateTime<Utc>)> = canvas_journey::Entity::find()
            .select_only()
            .column(canvas_journey::Column::ProfileId)
            .column(canvas_journey::Column::VariantId)
            .column(canvas_journey::Column::EnteredAt)
            .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
            .filter(canvas_journey::Column::CanvasId.eq(canvas.id.as_str()))
            .filter(canvas_journey::Column::ProfileId.is_in(chunk.iter().map(String::as_str)))
            .into_tuple()
            .all(db)
            .await?;
        for (profile_id, variant, entered_at) in rows {
            let slot = last
                .entry(profile_id)
                .or_insert((entered_at, variant.clone()));
            if entered_at > slot.0 {
                *slot = (entered_at, variant);
            }
        }
    }

    let mut room = match &settings.entry_limit {
        None => u64::MAX,
        Some(limit) => {
            let mut count = canvas_journey::Entity::find()
                .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
                .filter(canvas_journey::Column::CanvasId.eq(canvas.id.as_str()));
            if limit.per == super::model::LimitPeriod::Day {
                let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
                count = count.filter(canvas_journey::Column::EnteredAt.gte(midnight));
            }
            limit.max.saturating_sub(count.count(db).await?)
        }
    };

    let mut journeys = Vec::new();
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    for entrant in entrants {
        let user = entrant.user;
        let previous = last.get(&user.id);
        let eligible = seen.insert(user.id.clone())
            && match (previous, settings.reentry_after_seconds) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some((at, _)), Some(seconds)) => {
                    let wait =
                        TimeDelta::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
                    *at + wait <= now
                }
            };
        if !eligible || room == 0 {
            done.skipped += 1;
            continue;
        }
        let Some(assignment) = assign(
            &canvas.id,
            definition,
            &user.id,
            previous.map(|(_, variant)| variant),
        ) else {
            done.skipped += 1;
            continue;
        };
        room -= 1;
        let journey_id = JourneyId::generate().into_string();
        let (variant_id, step_id, state, branch, entered) = match assignment {
            Assignment::Control => (None, None, None, "control".to_owned(), false),
            Assignment::Variant(variant) => (
                variant_key(variant),
                variant.first_step.as_ref().map(ToString::to_string),
                Some(StoredState {
                    journey: JourneyState {
                        context: entrant.context,
                        event_properties: Map::new(),
                    },
                    ..StoredState::default()
                }),
                variant.name.clone(),
                true,
            ),
        };
        journeys.push(canvas_journey::ActiveModel {
            workspace_id: Set(ws.to_string()),
            id: Set(journey_id.clone()),
            canvas_id: Set(canvas.id.to_string()),
            version: Set(version),
            profile_id: Set(user.id.clone()),
            variant_id: Set(variant_id),
            step_id: Set(step_id),
            status: Set(if entered {
                status::ACTIVE
            } else {
                status::FINISHED
            }
            .to_owned()),
            wake_at: Set(entered.then(|| to_millis(entrant.wake_at.unwrap_or(now).max(now)))),
            lease_until: Set(None),
            seq: Set(0),
            state: Set(state.unwrap_or_default().write()),
            entered_at: Set(now),
            updated_at: Set(now),
            finished_at: Set((!entered).then_some(now)),
        });
        events.push(step_event(
            ws,
            canvas.id.as_str(),
            version,
            &journey_id,
            &user.id,
            None,
            event::ENTERED,
            Some(&branch),
            now,
        ));
        if entered {
            done.entered += 1;
        } else {
            done.skipped += 1;
        }
    }
    while !journeys.is_empty() {
        let rest = journeys.split_off(journeys.len().min(ID_CHUNK));
        canvas_journey::Entity::insert_many(std::mem::replace(&mut journeys, rest))
            .exec_without_returning(db)
            .await?;
    }
    insert_events(db, events).await?;
    Ok(done)
}

/// Handles one tracked event for Canvases, inside the caller's transaction (the event inbox
/// handler calls it for every event): enters the user into active action-based Canvases it
/// triggers (its properties become the entry context), moves the user's journeys waiting in
/// Action Paths whose path it matches (its properties become `event_properties`), and marks the
/// user's journeys in Canvases whose exit criteria name it to exit at their next step.
///
/// Exit criteria count only events at or after the journey's entry; Action Paths only events
/// from the start of the wait to the end of its window (a later one leaves the timeout to the
/// engine). A Canvas whose definition or audience cannot be read is passed over rather than
/// holding the inbox; database errors are returned (the event is handled again later).
pub async fn on_event(
    db: &impl ConnectionTrait,
    item: &InboxItem,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let ws = &item.key.workspace_id;
    // A user deleted since the event was tracked is in no journey any more.
    let Some(user) = profile::Entity::find_by_id((ws.to_string(), item.profile_id.to_string()))
        .one(db)
        .await?
    else {
        return Ok(());
    };

    // Journeys in flight: exit criteria, then Action Paths.
    let journeys = canvas_journey::Entity::find()
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_journey::Column::ProfileId.eq(user.id.as_str()))
        .filter(canvas_journey::Column::Status.is_in([status::ACTIVE, status::WAITING]))
        .all(db)
        .await?;
    let mut definitions: HashMap<(String, i32), Option<Definition>> = HashMap::new();
    for journey in journeys {
        let key = (journey.canvas_id.clone(), journey.version);
        if !definitions.contains_key(&key) {
            let id = CanvasId::from_db(journey.canvas_id.clone());
            let definition =
                match super::store::version_definition(db, ws, &id, journey.version).await {
                    Ok(definition) => Some(definition),
                    Err(DomainError::Db(error)) => return Err(DomainError::Db(error)),
                    Err(_) => None,
                };
            definitions.insert(key.clone(), definition);
        }
        let Some(Some(definition)) = definitions.get(&key) else {
            continue;
        };
        // Event times are stored to the millisecond; entry times too.
        if item.time >= journey.entered_at - TimeDelta::milliseconds(1)
            && definition
                .exit
                .events
                .iter()
                .any(|trigger| trigger_matches(trigger, item))
        {
            request_exit(db, ws, &journey.id, now).await?;
        }
        if journey.status == status::WAITING {
            take_action_path(db, ws, &journey.id, definition, item, now).await?;
        }
    }

    // Entries into action-based Canvases.
    let trigger_event = match item.kind {
        EventKind::Event => item.name.as_str(),
        EventKind::Purchase => "purchase",
    };
    let rows = canvas_row::Entity::find()
        .filter(canvas_row::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_row::Column::TriggerEvent.eq(trigger_event))
        .filter(canvas_row::Column::Status.eq(CanvasStatus::Active.as_str()))
        .filter(canvas_row::Column::EntryType.eq("action"))
        .all(db)
        .await?;
    for row in rows {
        let Ok(canvas) = super::store::decode(row) else {
            continue;
        };
        let Some(version) = canvas.live_version else {
            continue;
        };
        let definition = match super::store::version_definition(db, ws, &canvas.id, version).await {
            Ok(definition) => definition,
            Err(DomainError::Db(error)) => return Err(DomainError::Db(error)),
            Err(_) => continue,
        };
        let Entry::Action {
            trigger,
            starts_at,
            ends_at,
        } = &definition.entry
        else {
            continue;
        };
        // Users who triggered before launch don't qualify (event times are to the millisecond,
        // the launch time is not).
        let launched = canvas
            .launched_at
            .is_some_and(|at| item.time >= at - TimeDelta::milliseconds(1));
        let in_window =
            starts_at.is_none_or(|at| item.time >= at) && ends_at.is_none_or(|at| item.time <= at);
        if !launched || !in_window || !trigger_matches(trigger, item) {
            continue;
        }
        let audience = match audience_of(db, ws, &definition.audience).await {
            Ok(filter) => filter,
            Err(DomainError::Db(error)) => return Err(DomainError::Db(error)),
            Err(_) => continue,
        };
        match in_audience(db, ws, &audience, std::slice::from_ref(&user.id), now).await {
            Ok(members) if !members.is_empty() => {}
            Ok(_) => continue,
            Err(DomainError::Db(error)) => return Err(DomainError::Db(error)),
            Err(_) => continue,
        }
        let entrant = Entrant {
            user: user.clone(),
            context: item.properties.clone(),
            wake_at: None,
        };
        enter(db, ws, &canvas, version, &definition, vec![entrant], now).await?;
    }
    Ok(())
}

/// How often a change to a journey is tried again when the engine moved it meanwhile.
const CHANGE_ATTEMPTS: usize = 5;

/// Reads a journey that is still in flight.
async fn in_flight(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &str,
) -> DomainResult<Option<canvas_journey::Model>> {
    Ok(
        canvas_journey::Entity::find_by_id((ws.to_string(), id.to_owned()))
            .one(db)
            .await?
            .filter(|j| j.status == status::ACTIVE || j.status == status::WAITING),
    )
}

/// Writes a journey's new state (and, when it `moved`, its step, status and wake time) on the
/// condition that it is still at `seq`; frees its lease so the engine takes it up at once.
/// `false` when it moved meanwhile.
async fn change(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    journey: &canvas_journey::Model,
    state: &StoredState,
    moved: Option<Outcome>,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    let now = to_millis(now);
    let mut update = canvas_journey::Entity::update_many()
        .col_expr(canvas_journey::Column::State, Expr::value(state.write()))
        .col_expr(
            canvas_journey::Column::Seq,
            Expr::col(canvas_journey::Column::Seq).add(1),
        )
        .col_expr(
            canvas_journey::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(canvas_journey::Column::UpdatedAt, Expr::value(now));
    if let Some(moved) = moved {
        let ended = moved.status == status::FINISHED;
        update = update
            .col_expr(canvas_journey::Column::StepId, Expr::value(moved.step))
            .col_expr(canvas_journey::Column::Status, Expr::value(moved.status))
            .col_expr(canvas_journey::Column::WakeAt, Expr::value(moved.wake_at))
            .col_expr(
                canvas_journey::Column::FinishedAt,
                Expr::value(ended.then_some(now)),
            );
    }
    Ok(update
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_journey::Column::Id.eq(journey.id.as_str()))
        .filter(canvas_journey::Column::Seq.eq(journey.seq))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Marks a journey to exit at its next step boundary.
async fn request_exit(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    for _ in 0..CHANGE_ATTEMPTS {
        let Some(journey) = in_flight(db, ws, id).await? else {
            return Ok(());
        };
        let mut state = StoredState::read(&journey.state);
        if state.exit_requested {
            return Ok(());
        }
        state.exit_requested = true;
        if change(db, ws, &journey, &state, None, now).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Moves a journey waiting in Action Paths along the first path whose trigger `item` matches.
async fn take_action_path(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &str,
    definition: &Definition,
    item: &InboxItem,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    for _ in 0..CHANGE_ATTEMPTS {
        let Some(journey) = in_flight(db, ws, id).await? else {
            return Ok(());
        };
        if journey.status != status::WAITING {
            return Ok(());
        }
        let Some(step) = definition
            .steps
            .iter()
            .find(|s| Some(s.id.as_str()) == journey.step_id.as_deref())
        else {
            return Ok(());
        };
        let super::model::StepKind::ActionPaths { paths, .. } = &step.kind else {
            return Ok(());
        };
        let mut state = StoredState::read(&journey.state);
        let started = state.waiting_since.is_none_or(|since| item.time >= since);
        let open = journey.wake_at.is_none_or(|end| item.time <= end);
        let Some(path) = paths
            .iter()
            .find(|path| trigger_matches(&path.trigger, item))
            .filter(|_| started && open)
        else {
            return Ok(());
        };
        state.waiting_since = None;
        state.journey.event_properties = item.properties.clone();
        let next = path.next.as_ref().map(ToString::to_string);
        let (journey_status, wake_at) = match next {
            Some(_) => (status::ACTIVE, Some(to_millis(now))),
            None => (status::FINISHED, None),
        };
        if journey_status == status::FINISHED {
            state = StoredState::default();
        }
        let moved = Some(Outcome {
            step: next.clone().or_else(|| journey.step_id.clone()),
            status: journey_status,
            wake_at,
        });
        if !change(db, ws, &journey, &state, moved, now).await? {
            continue;
        }
        let mut events = vec![step_event(
            ws,
            &journey.canvas_id,
            journey.version,
            &journey.id,
            &journey.profile_id,
            Some(step.id.as_str()),
            event::BRANCH,
            Some(&path.name),
            now,
        )];
        if next.is_none() {
            events.push(step_event(
                ws,
                &journey.canvas_id,
                journey.version,
                &journey.id,
                &journey.profile_id,
                Some(step.id.as_str()),
                event::FINISHED,
                None,
                now,
            ));
        }
        insert_events(db, events).await?;
        return Ok(());
    }
    Ok(())
}

/// Whether an inbox item is the event (or purchase) a trigger names, property filters included
/// (the campaigns' rule, `campaign::trigger`, private to that module).
pub(super) fn trigger_matches(trigger: &Trigger, item: &InboxItem) -> bool {
    match trigger {
        Trigger::CustomEvent {
            name,
            property_filters,
        } => {
            item.kind == EventKind::Event
                && item.name == *name
                && property_filters
                    .iter()
                    .all(|filter| property_matches(filter, &item.properties))
        }
        Trigger::Purchase { product_id } => {
            item.kind == EventKind::Purchase
                && product_id
                    .as_ref()
                    .is_none_or(|product| *product == item.name)
        }
    }
}

/// A property by name, or by a dotted path into nested objects.
fn lookup<'a>(properties: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    if let Some(value) = properties.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = properties.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn as_time(value: &Json) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Numbers compare as numbers (`1` equals `1.0`), everything else as JSON.
fn same(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// Numbers order as numbers, ISO 8601 times as instants; nothing else orders.
fn order(a: &Json, b: &Json) -> Option<std::cmp::Ordering> {
    if a.is_number() && b.is_number() {
        return a.as_f64()?.partial_cmp(&b.as_f64()?);
    }
    Some(as_time(a)?.cmp(&as_time(b)?))
}

/// A property filter against an event's properties. A missing (or null) property matches only
/// `does_not_exist` and `not_equal`.
fn property_matches(filter: &PropertyFilter, properties: &Map<String, Json>) -> bool {
    use std::cmp::Ordering;
    let value = lookup(properties, &filter.property).filter(|v| !v.is_null());
    match filter.comparison.as_str() {
        "exists" => value.is_some(),
        "does_not_exist" => value.is_none(),
        "equals" => value.is_some_and(|v| same(v, &filter.value)),
        "not_equal" | "does_not_equal" => !value.is_some_and(|v| same(v, &filter.value)),
        "greater_than" => value.and_then(|v| order(v, &filter.value)) == Some(Ordering::Greater),
        "less_than" => value.and_then(|v| order(v, &filter.value)) == Some(Ordering::Less),
        "contains" => value.is_some_and(|v| match (v, &filter.value) {
            (Json::String(text), Json::String(part)) => {
                text.to_lowercase().contains(&part.to_lowercase())
            }
            (Json::Array(items), wanted) => items.iter().any(|item| same(item, wanted)),
            _ => false,
        }),
        _ => false,
    }
}

/// A claimed occurrence, as this process last wrote it.
struct Occurrence {
    ws: WorkspaceId,
    id: String,
    canvas_id: CanvasId,
    due_at: DateTime<Utc>,
    cursor: Option<String>,
    entered: i64,
    /// The lease this process holds; every write to the row is conditional on it.
    lease: DateTime<Utc>,
}

/// Fires due occurrences of scheduled entries (leased, paged with a saved cursor, never twice),
/// then plans the next. Returns how many occurrences finished.
///
/// Occurrences of Canvases that are not active wait, pending, until the Canvas is (a paused or
/// stopped Canvas lets no one in); those of Canvases gone, archived or no longer scheduled are
/// cancelled. Each page of the entry audience is entered in one transaction together with the
/// occurrence's cursor, on the condition that the lease is still this process's: a crashed run
/// resumes after the last committed page once its lease runs out. With `in_local_time`, the
/// occurrence fires 38 hours ahead (as the campaigns' do) and each journey's first step is due at
/// the schedule's wall time in the user's zone (else the Canvas's, else UTC).
pub async fn run_due_canvas_occurrences<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    let started = Instant::now();
    let claimed = claim_occurrences(db, now, limit).await?;
    let mut finished = 0;
    let mut first_error = None;
    for occurrence in claimed {
        match fire(db, occurrence, now, started).await {
            Ok(true) => finished += 1,
            Ok(false) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(finished),
    }
}

/// The lease to take or renew now: past the caller's `now` plus the time spent since.
fn lease_until(now: DateTime<Utc>, started: Instant) -> DateTime<Utc> {
    let elapsed = TimeDelta::from_std(started.elapsed()).unwrap_or(TimeDelta::zero());
    to_millis(now + elapsed + OCCURRENCE_LEASE)
}

/// Claims up to `limit` due occurrences of active Canvases: pending ones, and running ones whose
/// process let the lease run out.
async fn claim_occurrences(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<Vec<Occurrence>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let lease = to_millis(now + OCCURRENCE_LEASE);
    let backend = db.get_database_backend();
    let choose = "SELECT o.workspace_id, o.id FROM canvas_occurrence o \
         WHERE o.due_at <= {now} \
           AND ((o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until <= {now})) \
             OR (o.status = 'running' AND o.lease_until <= {now})) \
           AND EXISTS (SELECT 1 FROM canvas c WHERE c.workspace_id = o.workspace_id \
             AND c.id = o.canvas_id AND c.status = 'active') \
         ORDER BY o.due_at LIMIT {limit}";
    let returning = "RETURNING workspace_id, id, canvas_id, due_at, cursor, entered";
    let (sql, values): (String, Vec<Value>) = match backend {
        DbBackend::Postgres => (
            format!(
                "UPDATE canvas_occurrence SET status = 'running', lease_until = $1 \
                 WHERE (workspace_id, id) IN ({} FOR UPDATE OF o SKIP LOCKED) {returning}",
                choose.replace("{now}", "$2").replace("{limit}", "$3")
            ),
            vec![lease.into(), now.into(), (limit as i64).into()],
        ),
        _ => (
            format!(
                "UPDATE canvas_occurrence SET status = 'running', lease_until = ? \
                 WHERE (workspace_id, id) IN ({}) {returning}",
                choose.replace("{now}", "?").replace("{limit}", "?")
            ),
            // SQLite numbers `?` in order of appearance: the lease, `now` three times, the limit.
            vec![
                lease.into(),
                now.into(),
                now.into(),
                now.into(),
                (limit as i64).into(),
            ],
        ),
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        claimed.push(Occurrence {
            ws: WorkspaceId::from_db(row.try_get("", "workspace_id")?),
            id: row.try_get("", "id")?,
            canvas_id: CanvasId::from_db(row.try_get("", "canvas_id")?),
            due_at: row.try_get("", "due_at")?,
            cursor: row.try_get("", "cursor")?,
            entered: row.try_get("", "entered")?,
            lease,
        });
    }
    claimed.sort_by_key(|o| o.due_at);
    Ok(claimed)
}

/// The occurrence row, only while this process still holds it.
fn held(occurrence: &Occurrence) -> sea_orm::UpdateMany<canvas_occurrence::Entity> {
    canvas_occurrence::Entity::update_many()
        .filter(canvas_occurrence::Column::WorkspaceId.eq(occurrence.ws.as_str()))
        .filter(canvas_occurrence::Column::Id.eq(occurrence.id.as_str()))
        .filter(canvas_occurrence::Column::Status.eq(occurrence_status::RUNNING))
        .filter(canvas_occurrence::Column::LeaseUntil.eq(occurrence.lease))
}

/// Gives the occurrence up: `pending` (it fires when its Canvas is active again) or `cancelled`.
async fn let_go(
    db: &impl ConnectionTrait,
    occurrence: &Occurrence,
    status: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let completed = (status == occurrence_status::CANCELLED).then(|| to_millis(now));
    held(occurrence)
        .col_expr(canvas_occurrence::Column::Status, Expr::value(status))
        .col_expr(
            canvas_occurrence::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            canvas_occurrence::Column::CompletedAt,
            Expr::value(completed),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Whether the Canvas still lets users in (read inside each page's transaction).
async fn still_active(db: &impl ConnectionTrait, occurrence: &Occurrence) -> DomainResult<bool> {
    let status: Option<String> = canvas_row::Entity::find()
        .select_only()
        .column(canvas_row::Column::Status)
        .filter(canvas_row::Column::WorkspaceId.eq(occurrence.ws.as_str()))
        .filter(canvas_row::Column::Id.eq(occurrence.canvas_id.as_str()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(status.as_deref() == Some(CanvasStatus::Active.as_str()))
}

/// Runs one claimed occurrence to its end (or until it cannot go on). `true` when it finished.
async fn fire<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    mut occurrence: Occurrence,
    now: DateTime<Utc>,
    started: Instant,
) -> DomainResult<bool> {
    let canvas = match super::store::find_canvas(db, &occurrence.ws, &occurrence.canvas_id).await {
        Ok(canvas) => canvas,
        Err(DomainError::NotFound(_)) => {
            let_go(db, &occurrence, occurrence_status::CANCELLED, now).await?;
            return Ok(false);
        }
        Err(error) => return Err(error),
    };
    let version = match (canvas.status, canvas.live_version) {
        (CanvasStatus::Archived, _) | (_, None) => {
            let_go(db, &occurrence, occurrence_status::CANCELLED, now).await?;
            return Ok(false);
        }
        (CanvasStatus::Active, Some(version)) => version,
        (_, Some(_)) => {
            let_go(db, &occurrence, occurrence_status::PENDING, now).await?;
            return Ok(false);
        }
    };
    let definition =
        super::store::version_definition(db, &occurrence.ws, &canvas.id, version).await?;
    let Entry::Scheduled { schedule } = &definition.entry else {
        let_go(db, &occurrence, occurrence_status::CANCELLED, now).await?;
        return Ok(false);
    };
    let filter = audience_of(db, &occurrence.ws, &definition.audience).await?;
    // Local time: every user's first step is due at the schedule's wall time on the occurrence's
    // date in their own zone.
    let local: Option<(NaiveDate, NaiveTime)> = match schedule {
        Schedule::At {
            in_local_time: true,
            time,
            ..
        } => Some(((occurrence.due_at + LOCAL_TIME_LEAD).date_naive(), *time)),
        _ => None,
    };
    loop {
        let txn = db.begin().await?;
        // The lease is renewed first: it locks the row (PostgreSQL) or the database (SQLite)
        // until this page commits, so no one else moves the cursor meanwhile.
        let renewed = lease_until(now, started);
        let held_still = held(&occurrence)
            .col_expr(canvas_occurrence::Column::LeaseUntil, Expr::value(renewed))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !held_still {
            return Ok(false);
        }
        occurrence.lease = renewed;
        if !still_active(&txn, &occurrence).await? {
            let_go(&txn, &occurrence, occurrence_status::PENDING, now).await?;
            txn.commit().await?;
            return Ok(false);
        }
        let after = occurrence.cursor.clone().map(ProfileId::from_db);
        let page =
            crate::segment::members(&txn, &occurrence.ws, &filter, now, PAGE, after.as_ref())
                .await?;
        let Some(last) = page.last() else {
            txn.commit().await?;
            break;
        };
        let last_id = last.id.clone();
        let full = page.len() as u64 == PAGE;
        let entrants = page
            .into_iter()
            .map(|user| {
                let wake_at = local.map(|(date, time)| {
                    super::journey::local_to_utc(
                        super::journey::zone_of(&user, &definition),
                        date.and_time(time),
                    )
                });
                Entrant {
                    user,
                    context: Map::new(),
                    wake_at,
                }
            })
            .collect();
        let done = enter(
            &txn,
            &occurrence.ws,
            &canvas,
            version,
            &definition,
            entrants,
            now,
        )
        .await?;
        occurrence.entered += i64::try_from(done.entered).unwrap_or(i64::MAX);
        occurrence.cursor = Some(last_id);
        held(&occurrence)
            .col_expr(
                canvas_occurrence::Column::Cursor,
                Expr::value(occurrence.cursor.clone()),
            )
            .col_expr(
                canvas_occurrence::Column::Entered,
                Expr::value(occurrence.entered),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if !full {
            break;
        }
    }
    let txn = db.begin().await?;
    let finished = held(&occurrence)
        .col_expr(
            canvas_occurrence::Column::Status,
            Expr::value(occurrence_status::DONE),
        )
        .col_expr(
            canvas_occurrence::Column::CompletedAt,
            Expr::value(to_millis(now)),
        )
        .col_expr(
            canvas_occurrence::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !finished {
        return Ok(false);
    }
    // The next occurrence after this one (and after now: a run that came late does not fire the
    // missed ones in a burst).
    let launched_at = canvas.launched_at.unwrap_or(occurrence.due_at);
    let after = occurrence.due_at.max(now);
    if let Some(next) = crate::campaign::next_occurrence(schedule, after, launched_at)? {
        let row = canvas_occurrence::ActiveModel {
            workspace_id: Set(occurrence.ws.to_string()),
            id: Set(uuid::Uuid::new_v4().to_string()),
            canvas_id: Set(canvas.id.to_string()),
            due_at: Set(to_millis(next)),
            status: Set(occurrence_status::PENDING.into()),
            lease_until: Set(None),
            cursor: Set(None),
            entered: Set(0),
            created_at: Set(to_millis(now)),
            completed_at: Set(None),
        };
        // Unique per Canvas and due time: a second planner's row is kept as it is.
        canvas_occurrence::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    canvas_occurrence::Column::WorkspaceId,
                    canvas_occurrence::Column::CanvasId,
                    canvas_occurrence::Column::DueAt,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(true)
}
