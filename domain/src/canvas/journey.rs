//! The journey engine: claims journeys whose time has come (leased, `SKIP LOCKED` on PostgreSQL)
//! and runs each through its steps until it must wait (a Delay, Action Paths) or ends. Every
//! transition is atomic and conditional on the journey's `seq` and lease (a savepoint of its
//! own inside a transaction shared by a group of journeys), and a Message step's send is written
//! with the move past it, so a crash repeats nothing and loses no one.
//!
//! How one journey is advanced: its savepoint first bumps `seq` on the condition that `seq` and
//! the lease are still the ones claimed (this takes the row lock on PostgreSQL and the write lock
//! on SQLite for the rest of the transaction), then runs steps, writing sends and step events,
//! then saves where the journey stands. A process that dies before the group's commit leaves the
//! journey as it was, claimed until its lease (60 s) runs out; whoever claims it next runs the same steps
//! again and nothing of the first try remains. A process that lost its lease (or a tracked event
//! that moved the journey meanwhile) fails the first update and writes nothing.
//!
//! Step events (`canvas_step_event`), the source of step analytics:
//! - `entered` with no step: the user entered the Canvas (its branch names the variant, or is
//!   `control` for the control group, whose journey is written already finished);
//! - `entered` at a step: the journey reached the step (once per pass, not again when an Action
//!   Paths wait ends);
//! - `sent` (a Message step queued its send), `branch` (a split or path taken, the branch named:
//!   `yes`, `no`, a path's name, `Everyone Else`, `control`), `aborted` (a User Update step whose
//!   Liquid aborted or whose attributes were refused), `exited` (exit criteria, a stopped or
//!   archived Canvas, a Delay until a date already past, a deleted user) and `finished` (the
//!   journey reached an Exit step or a step without a next one).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Days, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Set, Statement,
    TransactionTrait, Value,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::model::{
    Canvas, CanvasStatus, ContextVariable, Definition, DelaySpec, JourneyState, Step, StepId,
    StepKind,
};
use crate::campaign::{Assignment, assign, filter_of, is_member};
use crate::claim::{LEASE, Tally, to_millis, usable};
use crate::entity::{canvas as canvas_row, canvas_journey, canvas_step_event, profile};
use crate::outbox::{NewSend, SourceKind, Tracking};
use crate::segment::Filter;
use crate::template::{RenderContext, RenderOutcome, Template};
use crate::{CanvasId, DomainResult, SegmentId, WorkspaceId};

/// Steps one journey runs per advance at most: the store refuses cycles, this guards the engine
/// against one anyway (the journey goes on at the next advance).
const MAX_STEPS_PER_ADVANCE: usize = 50;
/// Rows per multi-row INSERT, well under both databases' bind-parameter limits.
const INSERT_CHUNK: usize = 500;
/// The longest branch name `canvas_step_event.branch` holds.
const MAX_BRANCH_CHARS: usize = 100;
/// What the branch of users who took no Audience or Action path is called, as in Braze.
const EVERYONE_ELSE: &str = "Everyone Else";

/// Journey statuses as stored.
pub(super) mod status {
    pub const ACTIVE: &str = "active";
    pub const WAITING: &str = "waiting";
    pub const FINISHED: &str = "finished";
    pub const EXITED: &str = "exited";
}

/// Step event kinds as stored.
pub(super) mod event {
    pub const ENTERED: &str = "entered";
    pub const SENT: &str = "sent";
    pub const ABORTED: &str = "aborted";
    pub const EXITED: &str = "exited";
    pub const FINISHED: &str = "finished";
    pub const BRANCH: &str = "branch";
}

/// What `canvas_journey.state` holds: the contract's [`JourneyState`] (its keys at the top level
/// of the JSON) plus the engine's own bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct StoredState {
    #[serde(flatten)]
    pub journey: JourneyState,
    /// An exit-criteria event was tracked: the journey exits at its next step boundary.
    #[serde(default, skip_serializing_if = "is_false")]
    pub exit_requested: bool,
    /// When the journey began waiting in Action Paths: only events from then on move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<DateTime<Utc>>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl StoredState {
    /// Reads a stored state; an unreadable one starts empty rather than stalling the journey.
    pub fn read(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn write(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A `canvas_step_event` row.
#[allow(clippy::too_many_arguments)]
pub(super) fn step_event(
    ws: &WorkspaceId,
    canvas: &str,
    version: i32,
    journey: &str,
    profile_id: &str,
    step: Option<&str>,
    kind: &str,
    branch: Option<&str>,
    at: DateTime<Utc>,
) -> canvas_step_event::ActiveModel {
    canvas_step_event::ActiveModel {
        workspace_id: Set(ws.to_string()),
        id: Set(uuid::Uuid::new_v4().to_string()),
        canvas_id: Set(canvas.to_owned()),
        version: Set(version),
        journey_id: Set(journey.to_owned()),
        profile_id: Set(profile_id.to_owned()),
        step_id: Set(step.map(str::to_owned)),
        kind: Set(kind.to_owned()),
        branch: Set(branch.map(|b| b.chars().take(MAX_BRANCH_CHARS).collect())),
        at: Set(to_millis(at)),
    }
}

/// Writes step events in chunks.
pub(super) async fn insert_events(
    db: &impl ConnectionTrait,
    mut rows: Vec<canvas_step_event::ActiveModel>,
) -> DomainResult<()> {
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(INSERT_CHUNK));
        canvas_step_event::Entity::insert_many(std::mem::replace(&mut rows, rest))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The instant a wall time happens in `zone`: a wall time skipped by a DST change moves on by an
/// hour, a repeated one takes its first occurrence.
pub(super) fn local_to_utc(zone: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    zone.from_local_datetime(&wall)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(wall + TimeDelta::hours(1)))
                .earliest()
        })
        .map_or_else(|| wall.and_utc(), |at| at.with_timezone(&Utc))
}

/// The zone a user's wall times are read in: theirs, else the Canvas's, else UTC.
pub(super) fn zone_of(user: &profile::Model, definition: &Definition) -> Tz {
    let parse = |name: &Option<String>| name.as_deref().and_then(|n| n.trim().parse::<Tz>().ok());
    parse(&user.time_zone)
        .or_else(|| parse(&definition.settings.time_zone))
        .unwrap_or(Tz::UTC)
}

/// When a Delay step releases a user who reaches it at `now`: `None` when its date has passed
/// (the user exits, as in Braze).
fn delay_until(delay: &DelaySpec, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match delay {
        DelaySpec::For { seconds } => {
            let seconds = i64::try_from(*seconds).unwrap_or(i64::MAX / 1000);
            Some(now + TimeDelta::try_seconds(seconds).unwrap_or(TimeDelta::MAX))
        }
        DelaySpec::Until { at } => (*at > now).then_some(*at),
        DelaySpec::Weekday { weekday, time } => {
            let today = now.with_timezone(&zone).date_naive();
            // Today counts while the time is still ahead; otherwise the next such weekday.
            (0..=7u64)
                .filter_map(|ahead| today.checked_add_days(Days::new(ahead)))
                .filter(|date| date.weekday() == *weekday)
                .map(|date| local_to_utc(zone, date.and_time(*time)))
                .find(|at| *at > now)
        }
    }
}

/// A journey as claimed.
struct Claimed {
    row: canvas_journey::Model,
    /// The lease this process holds.
    lease: DateTime<Utc>,
}

/// Claims up to `limit` journeys in `status` due by `now` whose lease is free, of Canvases that
/// are not paused (a paused Canvas holds its journeys where they are), earliest first.
async fn claim(
    db: &impl ConnectionTrait,
    journey_status: &str,
    now: DateTime<Utc>,
    lease: DateTime<Utc>,
    limit: usize,
) -> DomainResult<Vec<Claimed>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let choose = "SELECT j.workspace_id, j.id FROM canvas_journey j \
         WHERE j.status = {status} AND j.wake_at <= {now} \
           AND (j.lease_until IS NULL OR j.lease_until <= {now}) \
           AND NOT EXISTS (SELECT 1 FROM canvas c WHERE c.workspace_id = j.workspace_id \
             AND c.id = j.canvas_id AND c.status = 'paused') \
         ORDER BY j.wake_at LIMIT {limit}";
    let returning = "RETURNING workspace_id, id, canvas_id, version, profile_id, variant_id, \
         step_id, status, wake_at, lease_until, seq, state, entered_at, updated_at, finished_at";
    let (sql, values): (String, Vec<Value>) = match backend {
        DbBackend::Postgres => (
            format!(
                "UPDATE canvas_journey SET lease_until = $1 \
                 WHERE (workspace_id, id) IN ({} FOR UPDATE OF j SKIP LOCKED) {returning}",
                choose
                    .replace("{status}", "$2")
                    .replace("{now}", "$3")
                    .replace("{limit}", "$4")
            ),
            vec![
                lease.into(),
                journey_status.into(),
                now.into(),
                (limit as i64).into(),
            ],
        ),
        _ => (
            format!(
                "UPDATE canvas_journey SET lease_until = ? \
                 WHERE (workspace_id, id) IN ({choose_sqlite}) {returning}",
                choose_sqlite = choose
                    .replace("{status}", "?")
                    .replace("{now}", "?")
                    .replace("{limit}", "?")
            ),
            // SQLite numbers `?` in order of appearance: the lease, the status, `now` twice, the
            // limit.
            vec![
                lease.into(),
                journey_status.into(),
                now.into(),
                now.into(),
                (limit as i64).into(),
            ],
        ),
    };
    let rows = canvas_journey::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    let mut claimed: Vec<Claimed> = rows.into_iter().map(|row| Claimed { row, lease }).collect();
    claimed.sort_by_key(|c| c.row.wake_at);
    Ok(claimed)
}

/// What one advance reads once per batch: Canvases, frozen definitions and compiled filters.
#[derive(Default)]
struct BatchCache {
    canvases: HashMap<(String, String), Option<Arc<Canvas>>>,
    definitions: HashMap<(String, String, i32), Option<Arc<Definition>>>,
    /// By (workspace, Canvas, version, step or `exit`); `None` when it cannot be evaluated (an
    /// archived segment, say).
    filters: HashMap<(String, String, i32, String), Option<Arc<Filter>>>,
}

impl BatchCache {
    async fn canvas(
        &mut self,
        db: &impl ConnectionTrait,
        row: &canvas_journey::Model,
    ) -> DomainResult<Option<Arc<Canvas>>> {
        let key = (row.workspace_id.clone(), row.canvas_id.clone());
        if let Some(found) = self.canvases.get(&key) {
            return Ok(found.clone());
        }
        let ws = WorkspaceId::from_db(row.workspace_id.clone());
        let id = CanvasId::from_db(row.canvas_id.clone());
        let found = usable(super::store::find_canvas(db, &ws, &id).await)?.map(Arc::new);
        self.canvases.insert(key, found.clone());
        Ok(found)
    }

    async fn definition(
        &mut self,
        db: &impl ConnectionTrait,
        row: &canvas_journey::Model,
    ) -> DomainResult<Option<Arc<Definition>>> {
        let key = (row.workspace_id.clone(), row.canvas_id.clone(), row.version);
        if let Some(found) = self.definitions.get(&key) {
            return Ok(found.clone());
        }
        let ws = WorkspaceId::from_db(row.workspace_id.clone());
        let id = CanvasId::from_db(row.canvas_id.clone());
        let found = usable(super::store::version_definition(db, &ws, &id, row.version).await)?
            .map(Arc::new);
        self.definitions.insert(key, found.clone());
        Ok(found)
    }

    /// The filter of a split step or of the exit criteria (`key` = the step id, or `exit`).
    async fn filter(
        &mut self,
        db: &impl ConnectionTrait,
        row: &canvas_journey::Model,
        key: &str,
        segment_ids: &[SegmentId],
        extra: Option<&Filter>,
    ) -> DomainResult<Option<Arc<Filter>>> {
        let cache_key = (
            row.workspace_id.clone(),
            row.canvas_id.clone(),
            row.version,
            key.to_owned(),
        );
        if let Some(found) = self.filters.get(&cache_key) {
            return Ok(found.clone());
        }
        let ws = WorkspaceId::from_db(row.workspace_id.clone());
        let found =
            usable(filter_of(db, &ws, "segment_ids", segment_ids, extra).await)?.map(Arc::new);
        self.filters.insert(cache_key, found.clone());
        Ok(found)
    }
}

/// Advances up to `limit` due journeys (`active` with `wake_at <= now`, and `waiting` whose Action
/// Paths window ran out); returns how many were advanced.
///
/// One journey failing (a database error) does not hold up the others: it is left claimed and
/// taken up again once its lease runs out, and the first error is returned after all were tried.
pub async fn advance_due<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    let lease = to_millis(now + LEASE);
    let mut claimed = claim(db, status::ACTIVE, now, lease, limit).await?;
    let room = limit.saturating_sub(claimed.len());
    claimed.extend(claim(db, status::WAITING, now, lease, room).await?);
    let mut cache = BatchCache::default();
    let mut tally = Tally::default();
    let mut claimed = claimed.into_iter().peekable();
    while claimed.peek().is_some() {
        // Journeys are advanced in groups under one transaction, each journey in a savepoint of
        // its own: a failing journey rolls back alone, and the group pays for one commit (one
        // disk sync on SQLite) instead of one per journey. A crash before the commit rolls the
        // whole group back; its journeys are claimed again when their lease runs out.
        let group = db.begin().await?;
        for journey in claimed.by_ref().take(GROUP) {
            // A batch that ran longer than the lease may have lost its later journeys to
            // another process: their conditional updates fail and they are skipped.
            tally.add(advance_one(&group, &mut cache, journey, now).await);
        }
        group.commit().await?;
    }
    tally.result()
}

/// Journeys advanced per transaction.
const GROUP: usize = 64;

/// Where a journey stands after a move: its step, status and wake time.
pub(super) struct Outcome {
    pub step: Option<String>,
    pub status: &'static str,
    pub wake_at: Option<DateTime<Utc>>,
}

/// Everything one advance of one journey writes, gathered and then written together.
struct Run<'a> {
    ws: WorkspaceId,
    journey: &'a canvas_journey::Model,
    canvas: &'a Canvas,
    definition: &'a Definition,
    user: profile::Model,
    state: StoredState,
    events: Vec<canvas_step_event::ActiveModel>,
    sends: Vec<NewSend>,
    now: DateTime<Utc>,
}

impl Run<'_> {
    fn event(&mut self, step: Option<&str>, kind: &str, branch: Option<&str>) {
        self.events.push(step_event(
            &self.ws,
            &self.journey.canvas_id,
            self.journey.version,
            &self.journey.id,
            &self.journey.profile_id,
            step,
            kind,
            branch,
            self.now,
        ));
    }

    /// Takes the branch `name` of `step` (its event); returns the step it leads to.
    fn branch(&mut self, step: &str, name: &str, next: &Option<StepId>) -> Option<String> {
        self.event(Some(step), event::BRANCH, Some(name));
        next.as_ref().map(ToString::to_string)
    }

    /// Ends the journey at `step` (`finished` or `exited`).
    fn end(&mut self, step: Option<&str>, how: &'static str) -> Outcome {
        let kind = if how == status::EXITED {
            event::EXITED
        } else {
            event::FINISHED
        };
        self.event(step, kind, None);
        Outcome {
            step: step.map(str::to_owned),
            status: how,
            wake_at: None,
        }
    }

    /// What Liquid sees for this user at `step`: the profile, `{{canvas.${…}}}`, the dispatch
    /// (the journey) as `{{campaign.${dispatch_id}}}`, the entry properties and context
    /// variables, and the properties of the event that moved the user along an Action Path.
    fn render_context(&self, step: &Step) -> RenderContext {
        let mut context = crate::profile::render_context(&self.user);
        let variant = self.journey.variant_id.as_deref().and_then(|id| {
            self.definition
                .variants
                .iter()
                .find(|v| variant_key(v).as_deref() == Some(id))
        });
        let mut canvas = Map::new();
        canvas.insert("name".into(), json!(self.canvas.name));
        canvas.insert("api_id".into(), json!(self.canvas.id.as_str()));
        if let Some(variant) = variant {
            canvas.insert("variant_name".into(), json!(variant.name));
        }
        if let Some(id) = &self.journey.variant_id {
            canvas.insert("variant_api_id".into(), json!(id));
        }
        canvas.insert("step_name".into(), json!(step.name));
        canvas.insert("step_api_id".into(), json!(step.id.as_str()));
        context.canvas = canvas;
        let mut campaign = Map::new();
        campaign.insert("dispatch_id".into(), json!(self.journey.id));
        campaign.insert("message_name".into(), json!(step.name));
        campaign.insert("message_api_id".into(), json!(step.id.as_str()));
        context.campaign = campaign;
        context.canvas_entry_properties = self.state.journey.context.clone();
        context.event_properties = self.state.journey.event_properties.clone();
        context
    }
}

/// The id a variant is stored under in `canvas_journey.variant_id` (the store gives every
/// variant of a launched Canvas an id; the name stands in for one that has none).
pub(super) fn variant_key(variant: &super::model::CanvasVariant) -> Option<String> {
    Some(match &variant.id {
        Some(id) => id.to_string(),
        None => variant.name.chars().take(36).collect(),
    })
}

/// Advances one claimed journey in one transaction. `true` when it moved.
async fn advance_one<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    cache: &mut BatchCache,
    claimed: Claimed,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    let journey = claimed.row;
    let ws = WorkspaceId::from_db(journey.workspace_id.clone());
    let canvas = cache.canvas(db, &journey).await?;
    let definition = cache.definition(db, &journey).await?;

    let txn = db.begin().await?;
    let locked = canvas_journey::Entity::update_many()
        .col_expr(
            canvas_journey::Column::Seq,
            Expr::col(canvas_journey::Column::Seq).add(1),
        )
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_journey::Column::Id.eq(journey.id.as_str()))
        .filter(canvas_journey::Column::Seq.eq(journey.seq))
        .filter(canvas_journey::Column::LeaseUntil.eq(claimed.lease))
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !locked {
        // Another process took it over, or an event moved it: it is theirs now.
        return Ok(false);
    }
    // The Canvas's status now, inside the transaction: a pause or stop since the claim counts.
    let canvas_status: Option<String> = canvas_row::Entity::find()
        .select_only()
        .column(canvas_row::Column::Status)
        .filter(canvas_row::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_row::Column::Id.eq(journey.canvas_id.as_str()))
        .into_tuple()
        .one(&txn)
        .await?;
    let canvas_status = canvas_status.as_deref().and_then(CanvasStatus::parse);
    if canvas_status == Some(CanvasStatus::Paused) {
        // Held where it is; the claim query leaves it alone until the Canvas is resumed.
        release(&txn, &ws, &journey.id).await?;
        txn.commit().await?;
        return Ok(false);
    }
    let user = profile::Entity::find_by_id((ws.to_string(), journey.profile_id.clone()))
        .one(&txn)
        .await?;
    let (Some(canvas), Some(definition), Some(user)) = (canvas, definition, user) else {
        // The Canvas, its version or the user is gone: nothing can run.
        let events = vec![step_event(
            &ws,
            &journey.canvas_id,
            journey.version,
            &journey.id,
            &journey.profile_id,
            journey.step_id.as_deref(),
            event::EXITED,
            None,
            now,
        )];
        let outcome = Outcome {
            step: journey.step_id.clone(),
            status: status::EXITED,
            wake_at: None,
        };
        save(&txn, &ws, &journey, &outcome, &StoredState::default(), now).await?;
        insert_events(&txn, events).await?;
        txn.commit().await?;
        return Ok(true);
    };
    let stopping = matches!(
        canvas_status,
        None | Some(CanvasStatus::Stopped | CanvasStatus::Archived)
    );
    let mut run = Run {
        ws: ws.clone(),
        journey: &journey,
        canvas: &canvas,
        definition: &definition,
        user,
        state: StoredState::read(&journey.state),
        events: Vec::new(),
        sends: Vec::new(),
        now,
    };
    let outcome = run_steps(&txn, cache, &mut run, stopping).await?;
    let Run {
        state,
        events,
        sends,
        ..
    } = run;
    let state = if matches!(outcome.status, status::FINISHED | status::EXITED) {
        // Entry properties are kept for the journey and deleted when it ends, as in Braze.
        StoredState::default()
    } else {
        state
    };
    crate::outbox::enqueue_limited(&txn, sends, definition.settings.rate_per_minute, now).await?;
    insert_events(&txn, events).await?;
    save(&txn, &ws, &journey, &outcome, &state, now).await?;
    txn.commit().await?;
    Ok(true)
}

/// Gives a claimed journey back untouched.
async fn release(db: &impl ConnectionTrait, ws: &WorkspaceId, id: &str) -> DomainResult<()> {
    canvas_journey::Entity::update_many()
        .col_expr(
            canvas_journey::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_journey::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Writes where the journey stands (the row is locked by this transaction).
async fn save(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    journey: &canvas_journey::Model,
    outcome: &Outcome,
    state: &StoredState,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let now = to_millis(now);
    let ended = matches!(outcome.status, status::FINISHED | status::EXITED);
    canvas_journey::Entity::update_many()
        .col_expr(
            canvas_journey::Column::StepId,
            Expr::value(outcome.step.clone()),
        )
        .col_expr(canvas_journey::Column::Status, Expr::value(outcome.status))
        .col_expr(
            canvas_journey::Column::WakeAt,
            Expr::value(outcome.wake_at.map(to_millis)),
        )
        .col_expr(
            canvas_journey::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(canvas_journey::Column::State, Expr::value(state.write()))
        .col_expr(canvas_journey::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            canvas_journey::Column::FinishedAt,
            Expr::value(ended.then_some(now)),
        )
        .filter(canvas_journey::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_journey::Column::Id.eq(journey.id.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Runs the journey's steps from where it stands until it must wait or ends.
async fn run_steps<C: ConnectionTrait + TransactionTrait>(
    txn: &C,
    cache: &mut BatchCache,
    run: &mut Run<'_>,
    stopping: bool,
) -> DomainResult<Outcome> {
    let journey = run.journey;
    let definition = run.definition;
    let now = run.now;
    let mut step_id = journey.step_id.clone();
    // A waiting journey claimed by the engine is one whose Action Paths window ran out: it is
    // already inside its step.
    let mut window_over = journey.status == status::WAITING;
    let exit = &definition.exit;
    let exit_filter = if exit.segment_ids.is_empty() && exit.filter.is_none() {
        None
    } else {
        cache
            .filter(
                txn,
                journey,
                "exit",
                &exit.segment_ids,
                exit.filter.as_ref(),
            )
            .await?
    };
    for ran in 0..=MAX_STEPS_PER_ADVANCE {
        // A step boundary: exit criteria and a stopped Canvas apply here.
        let here = step_id.as_deref();
        if run.state.exit_requested || stopping {
            return Ok(run.end(here, status::EXITED));
        }
        if let Some(filter) = &exit_filter
            && !is_member(txn, &run.ws, filter, &journey.profile_id, now).await?
        {
            return Ok(run.end(here, status::EXITED));
        }
        let Some(id) = step_id.clone() else {
            return Ok(run.end(None, status::FINISHED));
        };
        let Some(step) = definition.steps.iter().find(|s| s.id.as_str() == id) else {
            // A version always holds its own steps; a row naming another is not run.
            return Ok(run.end(Some(&id), status::EXITED));
        };
        if ran == MAX_STEPS_PER_ADVANCE {
            // Goes on at the next advance (step `id` has not run yet).
            return Ok(Outcome {
                step: Some(id),
                status: status::ACTIVE,
                wake_at: Some(now),
            });
        }
        if !window_over {
            run.event(Some(&id), event::ENTERED, None);
        }
        let next: Option<String> = match &step.kind {
            StepKind::Message { message, next } => {
                let context = run.render_context(step);
                run.sends.push(NewSend {
                    workspace_id: run.ws.clone(),
                    source_kind: SourceKind::Canvas,
                    source_id: Some(run.canvas.id.to_string()),
                    source_name: Some(run.canvas.name.clone()),
                    recipient: run.user.external_id.clone(),
                    message: message.clone(),
                    context,
                    due_at: None,
                    tracking: Tracking {
                        variant_id: Some(id.clone()),
                        dispatch_id: Some(journey.id.clone()),
                        send_tag: None,
                    },
                });
                // An `abort_message` is found when the dispatcher renders the send; the user has
                // moved on by then, as in Braze.
                run.event(Some(&id), event::SENT, None);
                next.as_ref().map(ToString::to_string)
            }
            StepKind::Delay { delay, next } => {
                let Some(next) = next else {
                    // A Delay as the last step ends the journey at once (Braze).
                    return Ok(run.end(Some(&id), status::FINISHED));
                };
                match delay_until(delay, zone_of(&run.user, definition), now) {
                    None => return Ok(run.end(Some(&id), status::EXITED)),
                    Some(at) if at > now => {
                        return Ok(Outcome {
                            step: Some(next.to_string()),
                            status: status::ACTIVE,
                            wake_at: Some(at),
                        });
                    }
                    Some(_) => Some(next.to_string()),
                }
            }
            StepKind::DecisionSplit {
                segment_ids,
                filter,
                yes,
                no,
            } => {
                let filter = cache
                    .filter(txn, journey, &id, segment_ids, filter.as_ref())
                    .await?;
                // A split whose segment cannot be evaluated (archived since launch) says no.
                let matched = match filter {
                    Some(filter) => {
                        is_member(txn, &run.ws, &filter, &journey.profile_id, now).await?
                    }
                    None => false,
                };
                let (branch, next) = if matched { ("yes", yes) } else { ("no", no) };
                run.branch(&id, branch, next)
            }
            StepKind::AudiencePaths {
                paths,
                everyone_else,
            } => {
                let mut taken = None;
                for (index, path) in paths.iter().enumerate() {
                    let key = format!("{id}#{index}");
                    let filter = cache
                        .filter(txn, journey, &key, &[], Some(&path.filter))
                        .await?;
                    if let Some(filter) = filter
                        && is_member(txn, &run.ws, &filter, &journey.profile_id, now).await?
                    {
                        taken = Some(path);
                        break;
                    }
                }
                match taken {
                    Some(path) => run.branch(&id, &path.name, &path.next),
                    None => run.branch(&id, EVERYONE_ELSE, everyone_else),
                }
            }
            StepKind::ActionPaths {
                window_seconds,
                everyone_else,
                ..
            } => {
                if !window_over {
                    // Waits for a path's event (see `entry::on_event`) or the window's end.
                    let window = i64::try_from(*window_seconds).unwrap_or(i64::MAX / 1000);
                    run.state.waiting_since = Some(to_millis(now));
                    return Ok(Outcome {
                        step: Some(id),
                        status: status::WAITING,
                        wake_at: Some(now + TimeDelta::try_seconds(window).unwrap_or(LEASE)),
                    });
                }
                run.state.waiting_since = None;
                // `event_properties` exist only on the paths an event chose.
                run.state.journey.event_properties.clear();
                run.branch(&id, EVERYONE_ELSE, everyone_else)
            }
            StepKind::Experiment {
                paths,
                control_percent,
            } => {
                // Sticky: the same user lands on the same path on every entry.
                let taken = assign(
                    paths,
                    |p| p.percent,
                    *control_percent,
                    None,
                    |_, _| false,
                    &[&journey.canvas_id, &id, &journey.profile_id],
                );
                match taken {
                    Some(Assignment::Variant(path)) => run.branch(&id, &path.name, &path.next),
                    _ => {
                        // The experiment's control group ends its journey here.
                        run.branch(&id, "control", &None);
                        return Ok(run.end(Some(&id), status::FINISHED));
                    }
                }
            }
            StepKind::UserUpdate { attributes, next } => {
                update_user(txn, run, step, attributes).await?;
                next.as_ref().map(ToString::to_string)
            }
            StepKind::Context { variables, next } => {
                let context = run.render_context(step);
                for variable in variables {
                    if let Some(value) = context_value(variable, &context) {
                        run.state
                            .journey
                            .context
                            .insert(variable.name.clone(), value);
                    }
                }
                next.as_ref().map(ToString::to_string)
            }
            StepKind::Exit => return Ok(run.end(Some(&id), status::FINISHED)),
        };
        window_over = false;
        match next {
            Some(next) => step_id = Some(next),
            None => return Ok(run.end(Some(&id), status::FINISHED)),
        }
    }
    // The loop returns on its last turn; kept for the compiler.
    Ok(Outcome {
        step: step_id,
        status: status::ACTIVE,
        wake_at: Some(now),
    })
}

/// Renders Liquid in `text` for this user; `None` when it aborted or does not render.
fn render_text(field: &'static str, text: &str, context: &RenderContext) -> Option<String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Some(text.to_owned());
    }
    match Template::parse(field, text).ok()?.render(context).ok()? {
        RenderOutcome::Rendered(text) => Some(text),
        RenderOutcome::Aborted { .. } => None,
    }
}

/// Renders every string inside a JSON value; `None` when one of them aborted or failed.
fn render_value(value: &Json, context: &RenderContext) -> Option<Json> {
    Some(match value {
        Json::String(text) => Json::String(render_text("attributes", text, context)?),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| render_value(item, context))
                .collect::<Option<_>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Some((k.clone(), render_value(v, context)?)))
                .collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}

/// A Context step variable's value: its Liquid rendered for this user and read as its type;
/// `None` (the variable is left as it was) when the render aborts or the text is not of the type.
fn context_value(variable: &ContextVariable, context: &RenderContext) -> Option<Json> {
    let text = render_text("variables.value", &variable.value, context)?;
    let trimmed = text.trim();
    match variable.value_type.as_str() {
        "number" => trimmed.parse::<i64>().map(Json::from).ok().or_else(|| {
            trimmed
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
        }),
        "boolean" => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Some(Json::Bool(true)),
            "false" => Some(Json::Bool(false)),
            _ => None,
        },
        // Times are kept as ISO 8601 in UTC, as segment filters and Liquid's `date` read them.
        "time" => DateTime::parse_from_rfc3339(trimmed)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
            .map(|t| Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
        "object" | "array" => serde_json::from_str(trimmed).ok(),
        _ => Some(Json::String(text)),
    }
}

/// A User Update step: the attributes (Liquid rendered for this user) applied through
/// `/users/track`'s rules, as a savepoint of the journey's transaction; the user is read again
/// so later steps see the update. An aborted render or refused attributes skip the update (an
/// `aborted` event) and the user goes on.
async fn update_user<C: ConnectionTrait + TransactionTrait>(
    txn: &C,
    run: &mut Run<'_>,
    step: &Step,
    attributes: &Map<String, Json>,
) -> DomainResult<()> {
    let context = run.render_context(step);
    let Some(Json::Object(mut item)) = render_value(&Json::Object(attributes.clone()), &context)
    else {
        run.event(Some(step.id.as_str()), event::ABORTED, None);
        return Ok(());
    };
    // The journey's user, whatever the attributes say; users without an external id are named
    // by their braze_id.
    for key in ["external_id", "braze_id", "user_alias", "email", "phone"] {
        item.remove(key);
    }
    match &run.user.external_id {
        Some(id) => item.insert("external_id".into(), json!(id)),
        None => item.insert("braze_id".into(), json!(run.user.id)),
    };
    item.insert("_update_existing_only".into(), Json::Bool(true));
    let body = json!({ "attributes": [Json::Object(item)] });
    let tracked = usable(crate::profile::track(txn, &run.ws, &body, run.now).await)?;
    if !tracked.is_some_and(|outcome| outcome.errors.is_empty()) {
        run.event(Some(step.id.as_str()), event::ABORTED, None);
        return Ok(());
    }
    if let Some(user) = profile::Entity::find_by_id((run.ws.to_string(), run.user.id.clone()))
        .one(txn)
        .await?
    {
        run.user = user;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, Weekday};

    use super::*;

    #[test]
    fn a_weekday_delay_counts_today_while_the_time_is_ahead_in_the_users_zone() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // Monday 30 November 2026, 08:00 in Paris (07:00 UTC).
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap();
        let delay = |weekday, h| DelaySpec::Weekday {
            weekday,
            time: NaiveTime::from_hms_opt(h, 0, 0).unwrap(),
        };
        assert_eq!(
            delay_until(&delay(Weekday::Mon, 9), paris, now),
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap())
        );
        // 07:00 Monday has passed: next Monday.
        assert_eq!(
            delay_until(&delay(Weekday::Mon, 7), paris, now),
            Some(Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap())
        );
        assert_eq!(
            delay_until(&delay(Weekday::Wed, 7), Tz::UTC, now),
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 7, 0, 0).unwrap())
        );
    }

    #[test]
    fn a_delay_until_a_past_date_has_no_end() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap();
        let past = DelaySpec::Until {
            at: now - TimeDelta::seconds(1),
        };
        assert_eq!(delay_until(&past, Tz::UTC, now), None);
        let ahead = DelaySpec::For { seconds: 60 };
        assert_eq!(
            delay_until(&ahead, Tz::UTC, now),
            Some(now + TimeDelta::seconds(60))
        );
    }

    #[test]
    fn context_variables_are_read_as_their_type() {
        let context = RenderContext::new().with_canvas_entry_property("n", 3);
        let variable = |value_type: &str, value: &str| ContextVariable {
            name: "v".into(),
            value_type: value_type.into(),
            value: value.into(),
        };
        assert_eq!(
            context_value(&variable("number", "{{context.${n}}}"), &context),
            Some(json!(3))
        );
        assert_eq!(
            context_value(&variable("number", "2.5"), &context),
            Some(json!(2.5))
        );
        assert_eq!(context_value(&variable("number", "many"), &context), None);
        assert_eq!(
            context_value(&variable("boolean", "TRUE"), &context),
            Some(json!(true))
        );
        assert_eq!(
            context_value(&variable("time", "2026-12-01"), &context),
            Some(json!("2026-12-01T00:00:00.000Z"))
        );
        assert_eq!(
            context_value(&variable("object", r#"{"a": [1]}"#), &context),
            Some(json!({"a": [1]}))
        );
        assert_eq!(
            context_value(&variable("string", "n={{context.${n}}}"), &context),
            Some(json!("n=3"))
        );
    }

    #[test]
    fn stored_state_keeps_the_contract_keys_at_the_top_level() {
        let mut state = StoredState::default();
        state.journey.context.insert("plan".into(), json!("pro"));
        state.exit_requested = true;
        let text = state.write();
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["context"]["plan"], json!("pro"));
        assert_eq!(json["exit_requested"], json!(true));
        let plain: JourneyState = serde_json::from_str(&text).unwrap();
        assert_eq!(plain.context["plan"], json!("pro"));
        assert_eq!(StoredState::read(&text), state);
    }
}
