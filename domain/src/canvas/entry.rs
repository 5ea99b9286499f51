//! How users enter a Canvas: `/canvas/trigger/send` (API, also when scheduled), tracked events
//! (action-based), and the occurrences of a scheduled entry. Entry checks the entry audience,
//! re-entry and entry limits, assigns the sticky path variant (or control), and writes the journey
//! row and its `entered` step event in the caller's transaction. A journey is due at once, except
//! one entered in users' local time (a scheduled entry, or a scheduled API trigger, with
//! `in_local_time`): it enters ahead and its first step waits for the wall time in the user's
//! zone. Tracked events also move users waiting in Action Paths and apply exit criteria.
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

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    Set, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::journey::{Outcome, StoredState, event, insert_events, status, step_event, variant_key};
use super::model::{Canvas, CanvasStatus, Definition, Entry, JourneyState};
use crate::campaign::{
    Assignment, ID_CHUNK, ListedRecipient, Pages, Schedule, all_of, assign, audience_filter,
    check_recipients, check_size, is_member, listed_members, local_time_date, lock_for_write,
    push_condition, trigger_matches,
};
use crate::claim::{
    self, Occurrence, OccurrenceTable, Page, Tally, status as occurrence_status, to_millis, usable,
};
use crate::entity::{canvas as canvas_row, canvas_journey, canvas_occurrence, profile};
use crate::profile::{EventKind, InboxItem};
use crate::segment::Filter;
use crate::{CanvasId, DomainError, DomainResult, JourneyId, WorkspaceId};

/// One listed recipient of `/canvas/trigger/send`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasRecipient {
    pub external_user_id: String,
    /// Merged over the call's `context` for this user.
    #[serde(default)]
    pub context: Map<String, Json>,
    #[serde(default = "crate::campaign::yes")]
    pub send_to_existing_only: bool,
    /// Braze user attributes applied before entry.
    #[serde(default)]
    pub attributes: Option<Map<String, Json>>,
}

impl ListedRecipient for CanvasRecipient {
    const PROPERTIES_FIELD: &'static str = "recipients.context";

    fn external_user_id(&self) -> &str {
        &self.external_user_id
    }

    fn properties(&self) -> &Map<String, Json> {
        &self.context
    }

    fn into_properties(self) -> Map<String, Json> {
        self.context
    }

    fn send_to_existing_only(&self) -> bool {
        self.send_to_existing_only
    }

    fn attributes(&self) -> Option<&Map<String, Json>> {
        self.attributes.as_ref()
    }
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

/// The no-op UPDATE that takes SQLite's write lock for a trigger call.
const LOCK_CANVAS: &str = "UPDATE canvas SET version = version WHERE 0";

/// Braze's notices for trigger calls that enter no one.
const PAUSED_NOTICE: &str =
    "The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect.";
const STOPPED_NOTICE: &str =
    "The Canvas is stopped. Resume the Canvas to ensure trigger requests will take effect.";
const ARCHIVED_NOTICE: &str =
    "The Canvas is archived. Unarchive the Canvas to ensure trigger requests will take effect.";

fn invalid_canvas(detail: Option<&str>) -> DomainError {
    match detail {
        None => DomainError::invalid("canvas_id", "Invalid Canvas ID"),
        Some(why) => DomainError::invalid("canvas_id", format!("Invalid Canvas ID: {why}")),
    }
}

/// Checks what a trigger call carries before anything is read.
fn check_request(request: &CanvasTriggerRequest) -> DomainResult<()> {
    check_size("context", &request.context)?;
    match &request.target {
        CanvasTarget::Recipients { recipients } => check_recipients(recipients),
        CanvasTarget::Broadcast { audience } => audience.as_ref().map_or(Ok(()), Filter::validate),
    }
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
    trigger(db, ws, id, request, None, now).await
}

impl CanvasTriggerRequest {
    /// Carries out this request scheduled in users' local time (`/canvas/trigger/schedule/create`
    /// with `in_local_time`), as [`trigger_canvas`] does, except that every journey waits for its
    /// first step until the wall time `wall` in the user's zone (theirs, else the Canvas's, else
    /// UTC), or takes it at once when that time has already passed. The users enter now: the
    /// entry audience, re-entry and the entry limit are applied now, as for any entry, and a user
    /// may exit (exit criteria) before the first step.
    pub async fn trigger_in_local_time<C: ConnectionTrait + TransactionTrait>(
        self,
        db: &C,
        ws: &WorkspaceId,
        id: &CanvasId,
        wall: NaiveDateTime,
        now: DateTime<Utc>,
    ) -> DomainResult<EntryOutcome> {
        trigger(db, ws, id, self, Some(wall), now).await
    }
}

/// [`trigger_canvas`], with each journey's first step due at `local` (a wall time) in the user's
/// zone when it is given.
async fn trigger<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    request: CanvasTriggerRequest,
    local: Option<NaiveDateTime>,
    now: DateTime<Utc>,
) -> DomainResult<EntryOutcome> {
    check_request(&request)?;
    let txn = db.begin().await?;
    lock_for_write(&txn, LOCK_CANVAS).await?;
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
    let audience = audience_filter(&txn, ws, &definition.audience).await?;
    // In local time, the first step waits for the wall time in the user's zone (`enter` keeps it
    // from being earlier than now).
    let first_step_at = |user: &profile::Model| {
        local.map(|wall| {
            super::journey::local_to_utc(super::journey::zone_of(user, &definition), wall)
        })
    };
    let CanvasTriggerRequest { target, context } = request;
    match target {
        CanvasTarget::Recipients { recipients } => {
            let (listed, outside) = listed_members(
                &txn,
                ws,
                recipients,
                &audience,
                now,
                &mut outcome.unknown_recipients,
            )
            .await?;
            outcome.skipped += outside;
            let entrants = listed
                .into_iter()
                .map(|(user, own)| {
                    // The recipient's own context wins over the call's.
                    let mut merged = context.clone();
                    merged.extend(own);
                    Entrant {
                        wake_at: first_step_at(&user),
                        user,
                        context: merged,
                    }
                })
                .collect();
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
            let mut pages = Pages::new(ws, &filter, now, None);
            while let Some(page) = pages.next(&txn).await? {
                let entrants = page
                    .into_iter()
                    .map(|user| Entrant {
                        wake_at: first_step_at(&user),
                        user,
                        context: context.clone(),
                    })
                    .collect();
                let done = enter(&txn, ws, &canvas, version, &definition, entrants, now).await?;
                outcome.entered += done.entered;
                outcome.skipped += done.skipped;
            }
        }
    }
    txn.commit().await?;
    Ok(outcome)
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
            &definition.variants,
            |v| v.percent,
            definition.control_percent,
            previous.map(|(_, variant)| variant.as_deref()),
            |v, previous| variant_key(v).as_deref() == Some(previous),
            &[canvas.id.as_str(), &user.id],
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
/// holding the inbox; database errors are returned (the event is handled again later), and so is
/// a conflict when a journey kept moving through every try to mark or move it, so an exit or a
/// path taken is never dropped.
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
            let definition = super::store::version_definition(db, ws, &id, journey.version).await;
            definitions.insert(key.clone(), usable(definition)?);
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
        let definition = super::store::version_definition(db, ws, &canvas.id, version).await;
        let Some(definition) = usable(definition)? else {
            continue;
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
        let Some(audience) = usable(audience_filter(db, ws, &definition.audience).await)? else {
            continue;
        };
        if usable(is_member(db, ws, &audience, &user.id, now).await)? != Some(true) {
            continue;
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

/// The error once a journey kept moving through [`CHANGE_ATTEMPTS`] tries: the event is not
/// lost, it fails its inbox transaction and is handled again once its lease runs out.
fn kept_moving(id: &str) -> DomainError {
    DomainError::conflict(
        "journey",
        format!(
            "journey {id} moved on {CHANGE_ATTEMPTS} times while an event was applied to it; \
             the event will be handled again"
        ),
    )
}

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

/// Marks a journey to exit at its next step boundary; a conflict error when the journey kept
/// moving meanwhile (see [`kept_moving`]).
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
    Err(kept_moving(id))
}

/// Moves a journey waiting in Action Paths along the first path whose trigger `item` matches; a
/// conflict error when the journey kept moving meanwhile (see [`kept_moving`]).
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
        let at_step = |kind, branch| {
            let (canvas, profile) = (&journey.canvas_id, &journey.profile_id);
            let step = Some(step.id.as_str());
            step_event(
                ws,
                canvas,
                journey.version,
                &journey.id,
                profile,
                step,
                kind,
                branch,
                now,
            )
        };
        let mut events = vec![at_step(event::BRANCH, Some(&path.name))];
        if next.is_none() {
            events.push(at_step(event::FINISHED, None));
        }
        insert_events(db, events).await?;
        return Ok(());
    }
    Err(kept_moving(id))
}

impl OccurrenceTable for canvas_occurrence::Entity {
    const OWNER: &'static str = "canvas";
    const FIRING: &'static str = "= 'active'";
    const WORKSPACE_ID: Self::Column = canvas_occurrence::Column::WorkspaceId;
    const ID: Self::Column = canvas_occurrence::Column::Id;
    const OWNER_ID: Self::Column = canvas_occurrence::Column::CanvasId;
    const STATUS: Self::Column = canvas_occurrence::Column::Status;
    const LEASE_UNTIL: Self::Column = canvas_occurrence::Column::LeaseUntil;
    const COMPLETED_AT: Self::Column = canvas_occurrence::Column::CompletedAt;
    const DISPATCH_ID: Option<Self::Column> = None;
    const CURSOR: Self::Column = canvas_occurrence::Column::Cursor;
    const COUNT: Self::Column = canvas_occurrence::Column::Entered;

    /// Whether the Canvas still lets users in: `active`.
    async fn may_fire(
        db: &impl ConnectionTrait,
        occurrence: &Occurrence<Self>,
    ) -> DomainResult<bool> {
        let status: Option<String> = canvas_row::Entity::find()
            .select_only()
            .column(canvas_row::Column::Status)
            .filter(canvas_row::Column::WorkspaceId.eq(occurrence.ws.as_str()))
            .filter(canvas_row::Column::Id.eq(occurrence.owner.as_str()))
            .into_tuple()
            .one(db)
            .await?;
        Ok(status.as_deref() == Some(CanvasStatus::Active.as_str()))
    }
}

/// Fires due occurrences of scheduled entries (leased, paged with a saved cursor, never twice:
/// see [`crate::claim`]), then plans the next. Returns how many occurrences finished.
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
    let mut tally = Tally::default();
    for occurrence in claim::claim::<canvas_occurrence::Entity>(db, now, limit).await? {
        tally.add(fire(db, occurrence, now, started).await);
    }
    tally.result()
}

/// Runs one claimed occurrence to its end (or until it cannot go on). `true` when it finished.
async fn fire<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    mut occurrence: Occurrence<canvas_occurrence::Entity>,
    now: DateTime<Utc>,
    started: Instant,
) -> DomainResult<bool> {
    let ws = occurrence.ws.clone();
    let id = CanvasId::from_db(occurrence.owner.clone());
    // A Canvas gone, archived or no longer scheduled cancels the occurrence; one paused or
    // stopped leaves it pending until it is active again.
    let canvas = match super::store::find_canvas(db, &ws, &id).await {
        Ok(canvas) => canvas,
        Err(DomainError::NotFound(_)) => {
            return occurrence
                .let_go(db, occurrence_status::CANCELLED, now)
                .await;
        }
        Err(error) => return Err(error),
    };
    let version = match (canvas.status, canvas.live_version) {
        (CanvasStatus::Archived, _) | (_, None) => {
            return occurrence
                .let_go(db, occurrence_status::CANCELLED, now)
                .await;
        }
        (CanvasStatus::Active, Some(version)) => version,
        (_, Some(_)) => return occurrence.let_go(db, occurrence_status::PENDING, now).await,
    };
    let definition = super::store::version_definition(db, &ws, &canvas.id, version).await?;
    let Entry::Scheduled { schedule } = &definition.entry else {
        return occurrence
            .let_go(db, occurrence_status::CANCELLED, now)
            .await;
    };
    let filter = audience_filter(db, &ws, &definition.audience).await?;
    // Local time: every user's first step is due at the schedule's wall time on the occurrence's
    // date in their own zone.
    let local: Option<(NaiveDate, NaiveTime)> = match schedule {
        Schedule::At {
            in_local_time: true,
            time,
            ..
        } => Some((local_time_date(occurrence.due_at), *time)),
        _ => None,
    };
    let mut pages = Pages::new(&ws, &filter, now, occurrence.cursor.clone());
    loop {
        let (txn, page) = match occurrence
            .next_page(db, &mut pages, None, now, started)
            .await?
        {
            Page::Members(txn, page) => (txn, page),
            Page::Done => break,
            Page::Lost => return Ok(false),
        };
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
        let done = enter(&txn, &ws, &canvas, version, &definition, entrants, now).await?;
        occurrence.save_page(txn, &pages, done.entered).await?;
    }
    let txn = db.begin().await?;
    if !occurrence.finish(&txn, now).await? {
        return Ok(false);
    }
    // The next occurrence after this one (and after now: a run that came late does not fire the
    // missed ones in a burst).
    let launched_at = canvas.launched_at.unwrap_or(occurrence.due_at);
    let after = occurrence.due_at.max(now);
    if let Some(next) = crate::campaign::next_occurrence(schedule, after, launched_at)? {
        let row = canvas_occurrence::ActiveModel {
            workspace_id: Set(ws.to_string()),
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
