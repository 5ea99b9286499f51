//! The Canvas lifecycle: create, edit (a new frozen version when live), launch, pause, resume,
//! stop, archive, duplicate; and the checks that block a launch.
//!
//! A draft may hold problems (the builder saves as it goes); [`problems`] lists them and launch
//! refuses while there are any. Launching freezes the draft as version 1; every later edit of a
//! launched Canvas must be free of problems and is frozen as the next version, which new entries
//! use while users already inside finish on the version they entered.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde_json::Value as Json;

use super::model::{
    Canvas, CanvasFilter, CanvasInput, CanvasStatus, CanvasVariant, Definition, DelaySpec, Entry,
    ExitCriteria, Problem, Step, StepId, StepKind,
};
use crate::campaign::{Recurrence, Schedule, Trigger};
use crate::entity::{canvas, canvas_occurrence, canvas_version};
use crate::segment::Filter;
use crate::template::Template;
use crate::{CanvasId, DomainError, DomainResult, SegmentId, VariantId, WorkspaceId, validate};

const MAX_NAME_LENGTH: usize = 200;
const MAX_DESCRIPTION_LENGTH: usize = 2000;
const MAX_TAGS: usize = 20;
const MAX_TAG_LENGTH: usize = 100;
const MAX_VARIANTS: usize = 8;
const MAX_VARIANT_NAME_LENGTH: usize = 100;
/// Braze's limit.
const MAX_STEPS: usize = 200;
/// `canvas_journey.step_id` and `canvas_step_event.step_id` hold at most this many characters.
const MAX_STEP_ID_LENGTH: usize = 36;
const MAX_STEP_NAME_LENGTH: usize = 100;
/// Audience Paths: up to 8 groups in Braze, the last being "Everyone Else".
const MAX_AUDIENCE_PATHS: usize = 7;
const MAX_ACTION_PATHS: usize = 8;
const MAX_EXPERIMENT_PATHS: usize = 4;
/// `canvas_step_event.branch` holds at most this many characters.
const MAX_PATH_NAME_LENGTH: usize = 100;
const MAX_CONTEXT_VARIABLES: usize = 10;
const MAX_CONTEXT_NAME_LENGTH: usize = 100;
const CONTEXT_TYPES: [&str; 5] = ["string", "number", "boolean", "time", "object"];
const DAY: u64 = 86_400;
/// Braze's extended delays.
const MAX_DELAY_SECONDS: u64 = 2 * 365 * DAY;
const MAX_ACTION_WINDOW_SECONDS: u64 = 31 * DAY;
/// Braze's User Update JSON composer limit.
const MAX_USER_UPDATE_CHARS: usize = 65_536;
/// As for campaigns' re-eligibility.
const MAX_REENTRY_SECONDS: u64 = 720 * DAY;
/// As for campaigns (Braze's limit).
const MAX_CONVERSIONS: usize = 4;
/// As for campaigns (Braze's conversion deadline).
const MAX_CONVERSION_WINDOW_SECONDS: u64 = 30 * DAY;
/// `canvas.trigger_event` holds at most this many characters.
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
/// What `canvas.trigger_event` holds for purchase-triggered Canvases.
const PURCHASE_TRIGGER: &str = "purchase";
/// Identify a user in `/users/track`; a User Update step always updates the journey's user.
const IDENTIFYING_ATTRIBUTES: [&str; 3] = ["external_id", "user_alias", "braze_id"];

/// Occurrence statuses as stored.
mod occurrence {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const CANCELLED: &str = "cancelled";
}

/// How far back an occurrence still counts as due "now" when replanning: one that came due a
/// moment ago and was not claimed yet is kept rather than skipped (as for campaigns).
const REPLAN_GRACE: TimeDelta = TimeDelta::seconds(1);

/// The fields a launch error can name (`DomainError` fields are `&'static str`); a problem's
/// path is mapped to the longest of these it starts with, the full path going in the message.
const ERROR_FIELDS: [&str; 26] = [
    "entry",
    "entry.trigger",
    "entry.trigger.name",
    "entry.trigger.product_id",
    "entry.trigger.property_filters",
    "entry.ends_at",
    "entry.schedule",
    "entry.schedule.time_zone",
    "entry.schedule.ends_on",
    "entry.schedule.recurrence.days",
    "entry.schedule.recurrence.day",
    "entry.schedule.recurrence.every",
    "audience.filter",
    "audience.segment_ids",
    "exit.events",
    "exit.filter",
    "exit.segment_ids",
    "settings.time_zone",
    "settings.rate_per_minute",
    "settings.reentry_after_seconds",
    "settings.entry_limit.max",
    "conversions",
    "variants",
    "control_percent",
    "steps",
    "definition",
];

/// Problems of a definition that need no database: at least one variant and percentages adding
/// up to 100; unique, well-formed step ids; every `next`/branch names an existing step; no empty
/// branches (a Decision Split's `yes` or `no`, an Audience or Action Paths path or
/// `everyone_else`, an Experiment path, without a step); no cycles (journeys are trees/DAGs); no
/// unreachable steps; Message steps with a webhook that compiles
/// (Liquid, URL); Delay within two years; Action Paths window 1 s..31 days with at least one path;
/// Experiment percentages adding up to 100; at most 7 audience paths, 4 experiment paths,
/// 10 context variables, 200 steps; an entry trigger with an event name; a valid time zone; at
/// most 4 conversion events, each naming its event (or a non-empty product) with a window of
/// 1 second to 30 days.
///
/// Problems come in the builder's order: conversion events, entry, audience, exit criteria, send
/// settings, variants, then steps. An empty branch is a problem shown on its step (the marketer
/// adds a step to it, or an Exit step to end the journey there explicitly), but a step's plain
/// `next` left empty is not: the journey ends after that step, as in Braze. Nor is a variant
/// without a first step (its users finish at once) or a Delay until a date already past (the user
/// exits when reaching it).
pub fn problems(definition: &Definition) -> Vec<Problem> {
    let mut found = Found::default();
    check_conversions(definition, &mut found);
    check_entry(&definition.entry, &mut found);
    if let Some(filter) = &definition.audience.filter {
        check_filter(filter, None, "audience.filter".into(), &mut found);
    }
    check_exit(&definition.exit, &mut found);
    check_settings(definition, &mut found);
    let graph = Graph::new(&definition.steps);
    check_variants(definition, &graph, &mut found);
    check_steps(&definition.steps, &graph, &mut found);
    check_cycles(definition, &graph, &mut found);
    check_reachable(definition, &graph, &mut found);
    found.0
}

/// [`problems`], plus the checks that need the database (segments exist and are not archived).
pub async fn check_definition(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    definition: &Definition,
) -> DomainResult<Vec<Problem>> {
    let mut found = Found(problems(definition));
    let mut segments = SegmentCheck::default();
    for id in &definition.audience.segment_ids {
        if let Some(message) = segments.problem(db, ws, id).await? {
            found.add(None, "audience.segment_ids", message);
        }
    }
    for id in &definition.exit.segment_ids {
        if let Some(message) = segments.problem(db, ws, id).await? {
            found.add(None, "exit.segment_ids", message);
        }
    }
    for (i, step) in definition.steps.iter().enumerate() {
        if let StepKind::DecisionSplit { segment_ids, .. } = &step.kind {
            for id in segment_ids {
                if let Some(message) = segments.problem(db, ws, id).await? {
                    found.add(Some(&step.id), format!("steps[{i}].segment_ids"), message);
                }
            }
        }
    }
    Ok(found.0)
}

/// Saves a new Canvas as a draft (problems are allowed in a draft; only the name and basic
/// shape are enforced: a name, ≤ 20 tags, a definition that parses).
pub async fn create_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    input: CanvasInput,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let input = normalised(input)?;
    let mut row = canvas::Model {
        workspace_id: ws.to_string(),
        id: CanvasId::generate().into_string(),
        name: String::new(),
        description: String::new(),
        tags: String::new(),
        entry_type: String::new(),
        trigger_event: None,
        status: CanvasStatus::Draft.as_str().into(),
        draft: String::new(),
        live_version: None,
        version: 1,
        created_at: now,
        updated_at: now,
        launched_at: None,
        stopped_at: None,
        archived_at: None,
    };
    apply(&mut row, &input)?;
    canvas::Entity::insert(canvas::ActiveModel::from(row.clone()).reset_all())
        .exec_without_returning(db)
        .await?;
    decode(row)
}

/// Saves the builder's definition. For a launched Canvas (active, paused or stopped) the
/// definition must have no problems and is frozen as a new version that new entries use; users
/// inside finish on the version they entered. Conflict on `version` when `expected_version`
/// differs.
///
/// An edit that leaves the definition as it is (a new name, say) freezes no version. When the
/// entry of a launched Canvas changes, its pending scheduled occurrences are replanned.
pub async fn update_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    input: CanvasInput,
    expected_version: Option<i32>,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let input = normalised(input)?;
    let txn = db.begin().await?;
    let row = find_row(&txn, ws, id).await?;
    if expected_version.is_some_and(|v| v != row.version) {
        return Err(version_conflict());
    }
    let current = decode(row.clone())?;
    if current.status == CanvasStatus::Archived {
        return Err(DomainError::invalid(
            "status",
            "an archived Canvas can't be edited; unarchive it first",
        ));
    }
    let mut next = row.clone();
    apply(&mut next, &input)?;
    next.updated_at = now;
    let mut frozen = None;
    if let Some(live) = current.live_version
        && input.definition != current.draft
    {
        let found = check_definition(&txn, ws, &input.definition).await?;
        if let Some(error) = refusal(&found) {
            return Err(error);
        }
        let version = live + 1;
        next.live_version = Some(version);
        frozen = Some(version);
    }
    let saved = write(&txn, next, row.version).await?;
    if let Some(version) = frozen {
        insert_version(&txn, ws, id, version, &input.definition, now).await?;
        if input.definition.entry != current.draft.entry {
            let launched_at = current.launched_at.unwrap_or(now);
            replan(&txn, ws, id, &input.definition.entry, launched_at, now).await?;
        }
    }
    txn.commit().await?;
    decode(saved)
}

pub async fn find_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
) -> DomainResult<Canvas> {
    decode(find_row(db, ws, id).await?)
}

/// Newest first. Archived Canvases are left out unless asked for (or `status` is `archived`).
pub async fn list_canvases(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &CanvasFilter,
) -> DomainResult<Vec<Canvas>> {
    let mut select = canvas::Entity::find().filter(canvas::Column::WorkspaceId.eq(ws.as_str()));
    match filter.status {
        Some(status) => select = select.filter(canvas::Column::Status.eq(status.as_str())),
        None if !filter.include_archived => {
            select = select.filter(canvas::Column::Status.ne(CanvasStatus::Archived.as_str()));
        }
        None => {}
    }
    let rows = select
        .order_by_desc(canvas::Column::CreatedAt)
        .order_by_desc(canvas::Column::Id)
        .all(db)
        .await?;
    // Tags are JSON text, which the two databases query differently; a workspace has few
    // enough Canvases to match them here.
    let tag = filter
        .tag
        .as_deref()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    let mut canvases = Vec::with_capacity(rows.len());
    for row in rows {
        let canvas = decode(row)?;
        if let Some(tag) = &tag
            && !canvas.tags.iter().any(|t| t.to_lowercase() == *tag)
        {
            continue;
        }
        canvases.push(canvas);
    }
    Ok(canvases)
}

/// The next scheduled entry of each active Canvas due by `until`, soonest first, for
/// `/messages/scheduled_broadcasts`. Paused and stopped Canvases let no one in, so their pending
/// entries are not listed until they are resumed.
pub async fn scheduled_entries(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    until: DateTime<Utc>,
) -> DomainResult<Vec<(Canvas, DateTime<Utc>)>> {
    let mut next: HashMap<String, DateTime<Utc>> = HashMap::new();
    for pending in canvas_occurrence::Entity::find()
        .filter(canvas_occurrence::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_occurrence::Column::Status.eq(occurrence::PENDING))
        .filter(canvas_occurrence::Column::DueAt.lte(until))
        .all(db)
        .await?
    {
        next.entry(pending.canvas_id)
            .and_modify(|due| *due = (*due).min(pending.due_at))
            .or_insert(pending.due_at);
    }
    if next.is_empty() {
        return Ok(Vec::new());
    }
    let active = CanvasFilter {
        status: Some(CanvasStatus::Active),
        ..CanvasFilter::default()
    };
    let mut entries: Vec<(Canvas, DateTime<Utc>)> = list_canvases(db, ws, &active)
        .await?
        .into_iter()
        .filter_map(|canvas| {
            let due = next.get(canvas.id.as_str()).copied()?;
            Some((canvas, due))
        })
        .collect();
    entries.sort_by_key(|(_, due)| *due);
    Ok(entries)
}

/// A draft copy named "Copy of …" (never launched, new variant ids).
pub async fn duplicate_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let original = decode(find_row(db, ws, id).await?)?;
    let mut definition = original.draft;
    for variant in &mut definition.variants {
        variant.id = None;
    }
    let input = CanvasInput {
        name: format!("Copy of {}", original.name)
            .chars()
            .take(MAX_NAME_LENGTH)
            .collect(),
        description: original.description,
        tags: original.tags,
        definition,
    };
    create_canvas(db, ws, input, now).await
}

/// Launches a draft: refuses with the first problem (`DomainError::invalid` naming its field)
/// when there are any; freezes version 1; a scheduled entry gets its first occurrence.
///
/// The error's field is the problem's path when it is a fixed one (`settings.time_zone`), else
/// the section it belongs to (`steps`, `variants`, ...), the full path leading the message. A
/// schedule with no entry time left is refused on `entry.schedule`.
pub async fn launch_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let txn = db.begin().await?;
    let row = find_row(&txn, ws, id).await?;
    let current = decode(row.clone())?;
    if current.status != CanvasStatus::Draft || current.live_version.is_some() {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only a draft can be launched; this Canvas is {}",
                current.status.as_str()
            ),
        ));
    }
    let found = check_definition(&txn, ws, &current.draft).await?;
    if let Some(error) = refusal(&found) {
        return Err(error);
    }
    if let Entry::Scheduled { schedule } = &current.draft.entry
        && next_entry(schedule, now - REPLAN_GRACE, now)?.is_none()
    {
        return Err(DomainError::invalid(
            "entry.schedule",
            "has no entry time after now: move the start date or the time later",
        ));
    }
    let mut definition = current.draft;
    // Saves assign ids already; a row written by other means still gets sticky variants.
    assign_variant_ids(&mut definition.variants);
    let mut next = row.clone();
    next.draft = to_json(&definition)?;
    next.status = CanvasStatus::Active.as_str().into();
    next.live_version = Some(1);
    next.launched_at = Some(now);
    next.stopped_at = None;
    next.updated_at = now;
    let saved = write(&txn, next, row.version).await?;
    insert_version(&txn, ws, id, 1, &definition, now).await?;
    replan(&txn, ws, id, &definition.entry, now, now).await?;
    txn.commit().await?;
    decode(saved)
}

/// Active → paused: no one enters; journeys hold where they are until resumed.
pub async fn pause_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let mut row = find_row(db, ws, id).await?;
    let status = status_of(&row)?;
    if status != CanvasStatus::Active {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only an active Canvas can be paused; this Canvas is {}",
                status.as_str()
            ),
        ));
    }
    let expected = row.version;
    row.status = CanvasStatus::Paused.as_str().into();
    row.updated_at = now;
    decode(write(db, row, expected).await?)
}

/// Paused or stopped → active.
///
/// A scheduled entry is replanned from `now`: occurrences that came due while it was not
/// active are skipped (Braze sends stopped messages on resume only if their time hasn't passed),
/// except a send-at-launch entry that never fired.
pub async fn resume_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let txn = db.begin().await?;
    let mut row = find_row(&txn, ws, id).await?;
    let current = decode(row.clone())?;
    let resumable = matches!(current.status, CanvasStatus::Paused | CanvasStatus::Stopped)
        && current.live_version.is_some();
    if !resumable {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only a paused or stopped Canvas can be resumed; this Canvas is {}",
                current.status.as_str()
            ),
        ));
    }
    let expected = row.version;
    row.status = CanvasStatus::Active.as_str().into();
    row.stopped_at = None;
    row.updated_at = now;
    let saved = write(&txn, row, expected).await?;
    let launched_at = current.launched_at.unwrap_or(now);
    replan(&txn, ws, id, &current.draft.entry, launched_at, now).await?;
    txn.commit().await?;
    decode(saved)
}

/// Active or paused → stopped: no one enters; journeys exit at their next step.
///
/// Pending occurrences of a scheduled entry stay but do not fire (entry checks the status); a
/// resume replans them.
pub async fn stop_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let mut row = find_row(db, ws, id).await?;
    let status = status_of(&row)?;
    if !matches!(status, CanvasStatus::Active | CanvasStatus::Paused) {
        return Err(DomainError::invalid(
            "status",
            format!(
                "only an active or paused Canvas can be stopped; this Canvas is {}",
                status.as_str()
            ),
        ));
    }
    let expected = row.version;
    row.status = CanvasStatus::Stopped.as_str().into();
    row.stopped_at = Some(now);
    row.updated_at = now;
    decode(write(db, row, expected).await?)
}

/// Archives a Canvas in any status; an active or paused one is stopped by it (`stopped_at` is
/// set). Archiving an archived Canvas changes nothing.
pub async fn archive_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let mut row = find_row(db, ws, id).await?;
    let status = status_of(&row)?;
    if status == CanvasStatus::Archived {
        return decode(row);
    }
    if matches!(status, CanvasStatus::Active | CanvasStatus::Paused) {
        row.stopped_at = Some(now);
    }
    let expected = row.version;
    row.status = CanvasStatus::Archived.as_str().into();
    row.archived_at = Some(now);
    row.updated_at = now;
    decode(write(db, row, expected).await?)
}

/// Back to stopped (or draft if it never launched).
pub async fn unarchive_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    let mut row = find_row(db, ws, id).await?;
    let status = status_of(&row)?;
    if status != CanvasStatus::Archived {
        return Err(DomainError::invalid(
            "status",
            format!("this Canvas is {}, not archived", status.as_str()),
        ));
    }
    let status = if row.live_version.is_some() {
        CanvasStatus::Stopped
    } else {
        CanvasStatus::Draft
    };
    let expected = row.version;
    row.status = status.as_str().into();
    row.archived_at = None;
    row.updated_at = now;
    decode(write(db, row, expected).await?)
}

/// Reads a stored row.
pub(super) fn decode(model: crate::entity::canvas::Model) -> DomainResult<Canvas> {
    let tags: Vec<String> =
        serde_json::from_str(&model.tags).map_err(|e| unreadable("tags", &e))?;
    let draft: Definition =
        serde_json::from_str(&model.draft).map_err(|e| unreadable("definition", &e))?;
    let status = status_of(&model)?;
    Ok(Canvas {
        id: CanvasId::from_db(model.id),
        name: model.name,
        description: model.description,
        tags,
        status,
        draft,
        live_version: model.live_version,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
        launched_at: model.launched_at,
        stopped_at: model.stopped_at,
        archived_at: model.archived_at,
    })
}

/// The frozen definition of one version.
pub(super) async fn version_definition(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    version: i32,
) -> DomainResult<Definition> {
    let row = canvas_version::Entity::find_by_id((ws.to_string(), id.to_string(), version))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("Canvas version"))?;
    serde_json::from_str(&row.definition).map_err(|e| unreadable("definition", &e))
}

// ---------------------------------------------------------------------------------------------
// Storage

fn unreadable(what: &str, error: &dyn std::fmt::Display) -> DomainError {
    DomainError::invalid("definition", format!("stored {what} unreadable: {error}"))
}

fn status_of(model: &canvas::Model) -> DomainResult<CanvasStatus> {
    CanvasStatus::parse(&model.status).ok_or_else(|| {
        DomainError::invalid(
            "status",
            format!("stored status “{}” unreadable", model.status),
        )
    })
}

fn version_conflict() -> DomainError {
    DomainError::conflict(
        "version",
        "the Canvas was changed by someone else; reload it",
    )
}

fn to_json<T: serde::Serialize>(value: &T) -> DomainResult<String> {
    serde_json::to_string(value)
        .map_err(|e| DomainError::invalid("definition", format!("can't be stored: {e}")))
}

async fn find_row(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
) -> DomainResult<canvas::Model> {
    canvas::Entity::find_by_id((ws.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("Canvas"))
}

/// Copies a normalised input into a row's columns.
fn apply(row: &mut canvas::Model, input: &CanvasInput) -> DomainResult<()> {
    row.name = input.name.clone();
    row.description = input.description.clone();
    row.tags = to_json(&input.tags)?;
    row.entry_type = input.definition.entry.type_name().into();
    row.trigger_event = match &input.definition.entry {
        // A draft may hold an event name too long for the column; it can't launch anyway.
        Entry::Action {
            trigger: Trigger::CustomEvent { name, .. },
            ..
        } if !name.trim().is_empty() && name.chars().count() <= MAX_EVENT_NAME_LENGTH => {
            Some(name.clone())
        }
        Entry::Action {
            trigger: Trigger::Purchase { .. },
            ..
        } => Some(PURCHASE_TRIGGER.into()),
        _ => None,
    };
    row.draft = to_json(&input.definition)?;
    Ok(())
}

/// Writes `row` (its version bumped) if the stored one still has `expected_version`; a
/// concurrent writer that got there first makes this a conflict rather than a lost update.
async fn write(
    db: &impl ConnectionTrait,
    mut row: canvas::Model,
    expected_version: i32,
) -> DomainResult<canvas::Model> {
    row.version = expected_version + 1;
    let result = canvas::Entity::update_many()
        .set(canvas::ActiveModel::from(row.clone()).reset_all())
        .filter(canvas::Column::WorkspaceId.eq(row.workspace_id.as_str()))
        .filter(canvas::Column::Id.eq(row.id.as_str()))
        .filter(canvas::Column::Version.eq(expected_version))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(version_conflict());
    }
    Ok(row)
}

async fn insert_version(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    version: i32,
    definition: &Definition,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let row = canvas_version::ActiveModel {
        workspace_id: Set(ws.to_string()),
        canvas_id: Set(id.to_string()),
        version: Set(version),
        definition: Set(to_json(definition)?),
        created_at: Set(now),
    };
    canvas_version::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Trims the name, description and tags, names unnamed variants, gives variants without a
/// (well-formed, unique) id a new one, and drops an empty time zone.
fn normalised(mut input: CanvasInput) -> DomainResult<CanvasInput> {
    input.name = validate::name("name", &input.name, MAX_NAME_LENGTH)?;
    input.description = input.description.trim().to_owned();
    if input.description.chars().count() > MAX_DESCRIPTION_LENGTH {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LENGTH} characters"),
        ));
    }
    input.tags = validate::tags(&input.tags, MAX_TAGS, MAX_TAG_LENGTH)?;
    let definition = &mut input.definition;
    for (i, variant) in definition.variants.iter_mut().enumerate() {
        let name = variant.name.trim();
        variant.name = if name.is_empty() {
            format!("Variant {}", i + 1)
        } else {
            name.to_owned()
        };
    }
    assign_variant_ids(&mut definition.variants);
    if definition
        .settings
        .time_zone
        .as_deref()
        .is_some_and(|z| z.trim().is_empty())
    {
        definition.settings.time_zone = None;
    }
    Ok(input)
}

/// Keeps the ids variants have (they make a user's variant sticky across versions) and gives
/// the others a new one; an id that is not a UUID or repeats an earlier variant's is replaced.
fn assign_variant_ids(variants: &mut [CanvasVariant]) {
    let mut used: HashSet<VariantId> = HashSet::new();
    for variant in variants {
        let id = match variant.id.take() {
            Some(id) if VariantId::parse(id.as_str()).is_ok() && !used.contains(&id) => id,
            _ => VariantId::generate(),
        };
        used.insert(id.clone());
        variant.id = Some(id);
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduled entries

/// Times are kept to the millisecond so both databases give back what was written (the unique
/// occurrence index compares them for equality).
fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

/// The schedule's next entry time after `after`, its errors named under `entry.schedule`.
fn next_entry(
    schedule: &Schedule,
    after: DateTime<Utc>,
    launched_at: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    crate::campaign::next_occurrence(schedule, after, launched_at).map_err(|e| match e {
        DomainError::Invalid { field, message } => DomainError::invalid(
            if field.contains("time_zone") {
                "entry.schedule.time_zone"
            } else {
                "entry.schedule"
            },
            message,
        ),
        other => other,
    })
}

/// Makes the Canvas's pending occurrences match its entry from `now`: cancels pending ones
/// that no longer apply and inserts the next (unique per Canvas and due time, so two processes
/// planning at once make one row; one cancelled earlier comes back). Returns when it next fires.
async fn replan(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    entry: &Entry,
    launched_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let next = match entry {
        Entry::Scheduled { schedule } => plan_next(db, ws, id, schedule, launched_at, now).await?,
        _ => None,
    };
    let mut stale = canvas_occurrence::Entity::update_many()
        .col_expr(
            canvas_occurrence::Column::Status,
            Expr::value(occurrence::CANCELLED),
        )
        .col_expr(
            canvas_occurrence::Column::CompletedAt,
            Expr::value(Some(to_millis(now))),
        )
        .filter(canvas_occurrence::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_occurrence::Column::CanvasId.eq(id.as_str()))
        .filter(canvas_occurrence::Column::Status.eq(occurrence::PENDING));
    if let Some(next) = next {
        stale = stale.filter(canvas_occurrence::Column::DueAt.ne(next));
    }
    stale.exec(db).await?;
    if let Some(next) = next {
        let row = canvas_occurrence::ActiveModel {
            workspace_id: Set(ws.to_string()),
            id: Set(uuid::Uuid::new_v4().to_string()),
            canvas_id: Set(id.to_string()),
            due_at: Set(next),
            status: Set(occurrence::PENDING.into()),
            lease_until: Set(None),
            cursor: Set(None),
            entered: Set(0),
            created_at: Set(to_millis(now)),
            completed_at: Set(None),
        };
        // A row already there is kept (planned by another process, or fired); one cancelled
        // earlier (the schedule changed and changed back) is pending again.
        let on_conflict = OnConflict::columns([
            canvas_occurrence::Column::WorkspaceId,
            canvas_occurrence::Column::CanvasId,
            canvas_occurrence::Column::DueAt,
        ])
        .value(
            canvas_occurrence::Column::Status,
            Expr::value(occurrence::PENDING),
        )
        .value(
            canvas_occurrence::Column::CompletedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .value(
            canvas_occurrence::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .action_and_where(
            Expr::col((canvas_occurrence::Entity, canvas_occurrence::Column::Status))
                .eq(occurrence::CANCELLED),
        )
        .to_owned();
        canvas_occurrence::Entity::insert(row)
            .on_conflict(on_conflict)
            .exec_without_returning(db)
            .await?;
    }
    Ok(next)
}

/// When the Canvas should next let its audience in, given the occurrences it already has.
async fn plan_next(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    schedule: &Schedule,
    launched_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let mine = || {
        canvas_occurrence::Entity::find()
            .filter(canvas_occurrence::Column::WorkspaceId.eq(ws.as_str()))
            .filter(canvas_occurrence::Column::CanvasId.eq(id.as_str()))
    };
    // The latest occurrence that fired (or is firing): the next one comes strictly after it.
    let fired = mine()
        .filter(canvas_occurrence::Column::Status.is_in([occurrence::DONE, occurrence::RUNNING]))
        .order_by_desc(canvas_occurrence::Column::DueAt)
        .one(db)
        .await?
        .map(|o| o.due_at);
    if let Schedule::AtLaunch = schedule {
        if fired.is_some() {
            return Ok(None);
        }
        // Not fired yet (stopped before it could, or switched to "at launch" by an edit):
        // keep the pending one, else enter now.
        let pending = mine()
            .filter(canvas_occurrence::Column::Status.eq(occurrence::PENDING))
            .order_by_asc(canvas_occurrence::Column::DueAt)
            .one(db)
            .await?;
        if let Some(pending) = pending {
            return Ok(Some(pending.due_at));
        }
        let launched_at = to_millis(launched_at);
        return Ok(Some(if launched_at > now - REPLAN_GRACE {
            launched_at
        } else {
            to_millis(now)
        }));
    }
    let after = fired.map_or(now - REPLAN_GRACE, |f| f.max(now - REPLAN_GRACE));
    next_entry(schedule, after, launched_at)
}

// ---------------------------------------------------------------------------------------------
// Launch checks

/// The problems found so far.
#[derive(Default)]
struct Found(Vec<Problem>);

impl Found {
    fn add(&mut self, step: Option<&StepId>, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            step_id: step.cloned(),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// The error refusing a launch (or a live edit) over `problems`, naming the first one.
fn refusal(problems: &[Problem]) -> Option<DomainError> {
    let first = problems.first()?;
    let field = error_field(&first.field);
    let mut message = if field == first.field {
        first.message.clone()
    } else {
        format!("{}: {}", first.field, first.message)
    };
    if let Some(step) = &first.step_id {
        message = format!("step “{step}”, {message}");
    }
    match problems.len() - 1 {
        0 => {}
        1 => message.push_str(" (and 1 more problem)"),
        more => message.push_str(&format!(" (and {more} more problems)")),
    }
    Some(DomainError::invalid(field, message))
}

/// The fixed field a problem's path comes under: the path itself when it is one of
/// [`ERROR_FIELDS`], else the longest of them it starts with (`steps[2].message.url` → `steps`),
/// else `definition`.
fn error_field(path: &str) -> &'static str {
    ERROR_FIELDS
        .iter()
        .filter(|field| {
            path == **field
                || path
                    .strip_prefix(**field)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
        .max_by_key(|field| field.len())
        .copied()
        .unwrap_or("definition")
}

/// The message of an `Invalid` error, or the whole error text.
fn error_message(error: DomainError) -> String {
    match error {
        DomainError::Invalid { message, .. } => message,
        other => other.to_string(),
    }
}

/// Remembers what each segment looked like, so one named twice is read once.
#[derive(Default)]
struct SegmentCheck(HashMap<SegmentId, Option<String>>);

impl SegmentCheck {
    /// Why the segment can't be used, if it can't.
    async fn problem(
        &mut self,
        db: &impl ConnectionTrait,
        ws: &WorkspaceId,
        id: &SegmentId,
    ) -> DomainResult<Option<String>> {
        if let Some(known) = self.0.get(id) {
            return Ok(known.clone());
        }
        let problem = match crate::segment::find(db, ws, id).await {
            Ok(segment) if segment.archived_at.is_some() => {
                Some(format!("segment “{}” is archived", segment.name))
            }
            Ok(_) => None,
            Err(DomainError::NotFound(_)) => Some(format!("no segment {id} in this workspace")),
            Err(other) => return Err(other),
        };
        self.0.insert(id.clone(), problem.clone());
        Ok(problem)
    }
}

fn check_entry(entry: &Entry, found: &mut Found) {
    match entry {
        Entry::Api => {}
        Entry::Scheduled { schedule } => check_schedule(schedule, found),
        Entry::Action {
            trigger,
            starts_at,
            ends_at,
        } => {
            check_trigger(trigger, None, "entry.trigger", found);
            if let (Some(start), Some(end)) = (starts_at, ends_at)
                && end <= start
            {
                found.add(None, "entry.ends_at", "must be after the start");
            }
        }
    }
}

/// The schedule's shape and zone; whether it still has a time to come is checked at launch.
fn check_schedule(schedule: &Schedule, found: &mut Found) {
    let Schedule::At {
        starts_on,
        recurrence,
        ends_on,
        time_zone,
        ..
    } = schedule
    else {
        return;
    };
    if time_zone.trim().is_empty() {
        found.add(None, "entry.schedule.time_zone", "is required");
    } else if time_zone.trim().parse::<Tz>().is_err() {
        found.add(
            None,
            "entry.schedule.time_zone",
            unknown_zone_message(time_zone),
        );
    }
    if ends_on.is_some_and(|end| end < *starts_on) {
        found.add(
            None,
            "entry.schedule.ends_on",
            "must not be before the start date",
        );
    }
    let every = match recurrence {
        Recurrence::Once => return,
        Recurrence::Daily { every } => *every,
        Recurrence::Weekly { every, days } => {
            if days.is_empty() {
                found.add(
                    None,
                    "entry.schedule.recurrence.days",
                    "choose at least one day",
                );
            }
            *every
        }
        Recurrence::Monthly { every, day } => {
            if !(1..=31).contains(day) {
                found.add(
                    None,
                    "entry.schedule.recurrence.day",
                    "must be between 1 and 31",
                );
            }
            *every
        }
    };
    if every == 0 {
        found.add(
            None,
            "entry.schedule.recurrence.every",
            "must be at least 1",
        );
    }
}

fn unknown_zone_message(name: &str) -> String {
    format!("unknown time zone “{name}”: use an IANA name such as Europe/Paris")
}

/// A trigger under `prefix` (`entry.trigger`, `exit.events[0]`, `steps[3].paths[1].trigger`).
fn check_trigger(trigger: &Trigger, step: Option<&StepId>, prefix: &str, found: &mut Found) {
    match trigger {
        Trigger::CustomEvent {
            name,
            property_filters,
        } => {
            if name.trim().is_empty() {
                found.add(step, format!("{prefix}.name"), "an event name is required");
            } else if name.chars().count() > MAX_EVENT_NAME_LENGTH {
                found.add(
                    step,
                    format!("{prefix}.name"),
                    format!("an event name is at most {MAX_EVENT_NAME_LENGTH} characters"),
                );
            }
            for (j, filter) in property_filters.iter().enumerate() {
                if filter.property.trim().is_empty() {
                    found.add(
                        step,
                        format!("{prefix}.property_filters[{j}].property"),
                        "every property filter names a property",
                    );
                }
                if !PROPERTY_COMPARISONS.contains(&filter.comparison.as_str()) {
                    found.add(
                        step,
                        format!("{prefix}.property_filters[{j}].comparison"),
                        format!(
                            "“{}” is not a comparison (use one of {})",
                            filter.comparison,
                            PROPERTY_COMPARISONS.join(", ")
                        ),
                    );
                }
            }
        }
        Trigger::Purchase { product_id } => match product_id {
            Some(product) if product.trim().is_empty() => found.add(
                step,
                format!("{prefix}.product_id"),
                "a product id can't be empty (leave it out for any purchase)",
            ),
            Some(product) if product.chars().count() > MAX_EVENT_NAME_LENGTH => found.add(
                step,
                format!("{prefix}.product_id"),
                format!("a product id is at most {MAX_EVENT_NAME_LENGTH} characters"),
            ),
            _ => {}
        },
    }
}

/// Conversion events, as campaigns check theirs: `conversions[1].trigger.name`,
/// `conversions[0].window_seconds`, or `conversions` for too many.
fn check_conversions(definition: &Definition, found: &mut Found) {
    if definition.conversions.len() > MAX_CONVERSIONS {
        found.add(
            None,
            "conversions",
            format!("at most {MAX_CONVERSIONS} conversion events"),
        );
    }
    for (i, conversion) in definition.conversions.iter().enumerate() {
        check_trigger(
            &conversion.trigger,
            None,
            &format!("conversions[{i}].trigger"),
            found,
        );
        if !(1..=MAX_CONVERSION_WINDOW_SECONDS).contains(&conversion.window_seconds) {
            found.add(
                None,
                format!("conversions[{i}].window_seconds"),
                "must be between 1 second and 30 days",
            );
        }
    }
}

fn check_filter(filter: &Filter, step: Option<&StepId>, field: String, found: &mut Found) {
    if let Err(e) = filter.validate() {
        found.add(step, field, error_message(e));
    }
}

fn check_exit(exit: &ExitCriteria, found: &mut Found) {
    for (j, event) in exit.events.iter().enumerate() {
        check_trigger(event, None, &format!("exit.events[{j}]"), found);
    }
    if let Some(filter) = &exit.filter {
        check_filter(filter, None, "exit.filter".into(), found);
    }
}

fn check_settings(definition: &Definition, found: &mut Found) {
    let settings = &definition.settings;
    if settings.rate_per_minute == Some(0) {
        found.add(
            None,
            "settings.rate_per_minute",
            "must be at least 1 message per minute",
        );
    }
    if settings
        .reentry_after_seconds
        .is_some_and(|s| s > MAX_REENTRY_SECONDS)
    {
        found.add(
            None,
            "settings.reentry_after_seconds",
            "must be at most 720 days",
        );
    }
    if settings.entry_limit.as_ref().is_some_and(|l| l.max == 0) {
        found.add(None, "settings.entry_limit.max", "must be at least 1");
    }
    if let Some(zone) = &settings.time_zone
        && zone.trim().parse::<Tz>().is_err()
    {
        found.add(None, "settings.time_zone", unknown_zone_message(zone));
    }
}

fn check_variants(definition: &Definition, graph: &Graph<'_>, found: &mut Found) {
    let variants = &definition.variants;
    if variants.is_empty() {
        found.add(None, "variants", "a Canvas needs at least one variant");
    } else if variants.len() > MAX_VARIANTS {
        found.add(
            None,
            "variants",
            format!("a Canvas has at most {MAX_VARIANTS} variants"),
        );
    }
    let mut ids = HashSet::new();
    let mut total = u32::from(definition.control_percent);
    for (i, variant) in variants.iter().enumerate() {
        let name = variant.name.trim();
        if name.is_empty() {
            found.add(None, format!("variants[{i}].name"), "is required");
        } else if name.chars().count() > MAX_VARIANT_NAME_LENGTH {
            found.add(
                None,
                format!("variants[{i}].name"),
                format!("must be at most {MAX_VARIANT_NAME_LENGTH} characters"),
            );
        }
        if let Some(id) = &variant.id
            && !ids.insert(id)
        {
            found.add(
                None,
                format!("variants[{i}].id"),
                "is the id of another variant",
            );
        }
        if variant.percent > 100 {
            found.add(
                None,
                format!("variants[{i}].percent"),
                "must be between 0 and 100",
            );
        }
        total += u32::from(variant.percent);
        if let Some(first) = &variant.first_step
            && graph.index(first).is_none()
        {
            found.add(
                None,
                format!("variants[{i}].first_step"),
                format!("names no step: there is no step “{first}”"),
            );
        }
    }
    if definition.control_percent > 100 {
        found.add(None, "control_percent", "must be between 0 and 100");
    }
    if !variants.is_empty() && total != 100 {
        found.add(
            None,
            "variants",
            format!(
                "the variants' percentages and the control group must add up to 100, not {total}"
            ),
        );
    }
}

/// The shape of every step and the steps its branches name.
fn check_steps(steps: &[Step], graph: &Graph<'_>, found: &mut Found) {
    if steps.len() > MAX_STEPS {
        found.add(
            None,
            "steps",
            format!(
                "a Canvas has at most {MAX_STEPS} steps, not {}",
                steps.len()
            ),
        );
    }
    for (i, step) in steps.iter().enumerate() {
        let at = |suffix: &str| format!("steps[{i}].{suffix}");
        let id = &step.id;
        if !well_formed_step_id(id.as_str()) {
            found.add(
                Some(id),
                at("id"),
                format!(
                    "“{id}” is not a step id: use 1 to {MAX_STEP_ID_LENGTH} characters of a-z, \
                     0-9, - and _"
                ),
            );
        } else if graph.index(id) != Some(i) {
            found.add(
                Some(id),
                at("id"),
                format!("another step is already called “{id}”"),
            );
        }
        if step.name.chars().count() > MAX_STEP_NAME_LENGTH {
            found.add(
                Some(id),
                at("name"),
                format!("must be at most {MAX_STEP_NAME_LENGTH} characters"),
            );
        } else if step.name.chars().any(char::is_control) {
            found.add(Some(id), at("name"), "must not contain control characters");
        }
        for (suffix, target) in branches(&step.kind) {
            if graph.index(target).is_none() {
                found.add(
                    Some(id),
                    at(&suffix),
                    format!("names no step: there is no step “{target}”"),
                );
            }
        }
        for (suffix, label) in empty_branches(&step.kind) {
            found.add(
                Some(id),
                at(&suffix),
                format!(
                    "{label} is empty: add a step to it, or an Exit step to end the journey there"
                ),
            );
        }
        check_step_kind(step, i, found);
    }
}

fn well_formed_step_id(id: &str) -> bool {
    (1..=MAX_STEP_ID_LENGTH).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// What is particular to each kind of step.
fn check_step_kind(step: &Step, i: usize, found: &mut Found) {
    let at = |suffix: &str| format!("steps[{i}].{suffix}");
    let id = Some(&step.id);
    match &step.kind {
        StepKind::Message { message, .. } => {
            if let Err(e) = message.compile() {
                let field = match e.field() {
                    Some(part @ ("url" | "method" | "headers" | "body")) => {
                        at(&format!("message.{part}"))
                    }
                    _ => at("message"),
                };
                found.add(id, field, error_message(e));
            }
        }
        StepKind::Delay { delay, .. } => match delay {
            DelaySpec::For { seconds } if !(1..=MAX_DELAY_SECONDS).contains(seconds) => {
                found.add(
                    id,
                    at("delay.seconds"),
                    "must be between 1 second and 2 years",
                );
            }
            // A date already past is fine: a user reaching it exits (Braze).
            DelaySpec::For { .. } | DelaySpec::Until { .. } | DelaySpec::Weekday { .. } => {}
        },
        StepKind::DecisionSplit {
            segment_ids,
            filter,
            ..
        } => match filter {
            Some(filter) => check_filter(filter, id, at("filter"), found),
            None if segment_ids.is_empty() => found.add(
                id,
                at("filter"),
                "a Decision Split needs a segment or a filter to decide on",
            ),
            None => {}
        },
        StepKind::AudiencePaths { paths, .. } => {
            check_path_count(paths.len(), MAX_AUDIENCE_PATHS, id, i, found);
            let names: Vec<&str> = paths.iter().map(|p| p.name.as_str()).collect();
            check_path_names(&names, id, i, found);
            for (j, path) in paths.iter().enumerate() {
                check_filter(&path.filter, id, at(&format!("paths[{j}].filter")), found);
            }
        }
        StepKind::ActionPaths {
            window_seconds,
            paths,
            ..
        } => {
            if !(1..=MAX_ACTION_WINDOW_SECONDS).contains(window_seconds) {
                found.add(
                    id,
                    at("window_seconds"),
                    "the evaluation window is between 1 second and 31 days",
                );
            }
            check_path_count(paths.len(), MAX_ACTION_PATHS, id, i, found);
            let names: Vec<&str> = paths.iter().map(|p| p.name.as_str()).collect();
            check_path_names(&names, id, i, found);
            for (j, path) in paths.iter().enumerate() {
                check_trigger(
                    &path.trigger,
                    id,
                    &at(&format!("paths[{j}].trigger")),
                    found,
                );
            }
        }
        StepKind::Experiment {
            paths,
            control_percent,
        } => {
            check_path_count(paths.len(), MAX_EXPERIMENT_PATHS, id, i, found);
            let names: Vec<&str> = paths.iter().map(|p| p.name.as_str()).collect();
            check_path_names(&names, id, i, found);
            let mut total = u32::from(*control_percent);
            for (j, path) in paths.iter().enumerate() {
                if path.percent > 100 {
                    found.add(
                        id,
                        at(&format!("paths[{j}].percent")),
                        "must be between 0 and 100",
                    );
                }
                total += u32::from(path.percent);
            }
            if *control_percent > 100 {
                found.add(id, at("control_percent"), "must be between 0 and 100");
            }
            if !paths.is_empty() && total != 100 {
                found.add(
                    id,
                    at("paths"),
                    format!(
                        "the paths' percentages and the control group must add up to 100, \
                         not {total}"
                    ),
                );
            }
        }
        StepKind::UserUpdate { attributes, .. } => {
            if attributes.is_empty() {
                found.add(id, at("attributes"), "add at least one attribute to update");
            }
            let size = serde_json::to_string(attributes).map_or(0, |s| s.chars().count());
            if size > MAX_USER_UPDATE_CHARS {
                found.add(
                    id,
                    at("attributes"),
                    format!("must be at most {MAX_USER_UPDATE_CHARS} characters of JSON"),
                );
            }
            for key in IDENTIFYING_ATTRIBUTES {
                if attributes.contains_key(key) {
                    found.add(
                        id,
                        at("attributes"),
                        format!("leave out “{key}”: the step updates the user in the journey"),
                    );
                }
            }
            for (key, value) in attributes {
                if let Some(message) = liquid_problem(value) {
                    found.add(id, at("attributes"), format!("{key}: {message}"));
                }
            }
        }
        StepKind::Context { variables, .. } => {
            if variables.len() > MAX_CONTEXT_VARIABLES {
                found.add(
                    id,
                    at("variables"),
                    format!("a Context step sets at most {MAX_CONTEXT_VARIABLES} variables"),
                );
            }
            let mut seen = HashSet::new();
            for (j, variable) in variables.iter().enumerate() {
                let name = variable.name.as_str();
                let field = at(&format!("variables[{j}].name"));
                if !well_formed_variable(name) {
                    found.add(
                        id,
                        field,
                        format!(
                            "“{name}” is not a variable name: use 1 to {MAX_CONTEXT_NAME_LENGTH} \
                             letters, digits and _, not starting with a digit"
                        ),
                    );
                } else if !seen.insert(name) {
                    found.add(id, field, format!("“{name}” is set twice in this step"));
                }
                if !CONTEXT_TYPES.contains(&variable.value_type.as_str()) {
                    found.add(
                        id,
                        at(&format!("variables[{j}].value_type")),
                        format!(
                            "“{}” is not a type (use one of {})",
                            variable.value_type,
                            CONTEXT_TYPES.join(", ")
                        ),
                    );
                }
                if let Err(e) = Template::parse("value", &variable.value) {
                    found.add(id, at(&format!("variables[{j}].value")), e.message());
                }
            }
        }
        StepKind::Exit => {}
    }
}

fn check_path_count(count: usize, max: usize, step: Option<&StepId>, i: usize, found: &mut Found) {
    if count == 0 {
        found.add(step, format!("steps[{i}].paths"), "add at least one path");
    } else if count > max {
        found.add(
            step,
            format!("steps[{i}].paths"),
            format!("at most {max} paths, not {count}"),
        );
    }
}

/// Path names label the branches in analytics: required, short, and distinct within the step.
fn check_path_names(names: &[&str], step: Option<&StepId>, i: usize, found: &mut Found) {
    let mut seen = HashSet::new();
    for (j, name) in names.iter().enumerate() {
        let field = format!("steps[{i}].paths[{j}].name");
        let name = name.trim();
        if name.is_empty() {
            found.add(step, field, "is required");
        } else if name.chars().count() > MAX_PATH_NAME_LENGTH {
            found.add(
                step,
                field,
                format!("must be at most {MAX_PATH_NAME_LENGTH} characters"),
            );
        } else if !seen.insert(name) {
            found.add(
                step,
                field,
                format!("another path of this step is called “{name}”"),
            );
        }
    }
}

fn well_formed_variable(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_CONTEXT_NAME_LENGTH
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first Liquid error among the strings of a JSON value, if any.
fn liquid_problem(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Template::parse("attributes", text)
            .err()
            .map(|e| e.message()),
        Json::Array(items) => items.iter().find_map(liquid_problem),
        Json::Object(map) => map.values().find_map(liquid_problem),
        _ => None,
    }
}

/// The steps a step's branches lead to, with their field (relative to the step).
fn branches(kind: &StepKind) -> Vec<(String, &StepId)> {
    fn push<'a>(out: &mut Vec<(String, &'a StepId)>, field: String, target: &'a Option<StepId>) {
        if let Some(target) = target {
            out.push((field, target));
        }
    }
    let mut out = Vec::new();
    let mut add = |field: String, target| push(&mut out, field, target);
    match kind {
        StepKind::Message { next, .. }
        | StepKind::Delay { next, .. }
        | StepKind::UserUpdate { next, .. }
        | StepKind::Context { next, .. } => add("next".into(), next),
        StepKind::DecisionSplit { yes, no, .. } => {
            add("yes".into(), yes);
            add("no".into(), no);
        }
        StepKind::AudiencePaths {
            paths,
            everyone_else,
        } => {
            for (j, path) in paths.iter().enumerate() {
                add(format!("paths[{j}].next"), &path.next);
            }
            add("everyone_else".into(), everyone_else);
        }
        StepKind::ActionPaths {
            paths,
            everyone_else,
            ..
        } => {
            for (j, path) in paths.iter().enumerate() {
                add(format!("paths[{j}].next"), &path.next);
            }
            add("everyone_else".into(), everyone_else);
        }
        StepKind::Experiment { paths, .. } => {
            for (j, path) in paths.iter().enumerate() {
                add(format!("paths[{j}].next"), &path.next);
            }
        }
        StepKind::Exit => {}
    }
    out
}

/// The branches of a split or paths step that lead nowhere, with their field (relative to the
/// step) and how the builder labels them. A step's plain `next` is not a branch: leaving it empty
/// ends the journey after the step.
fn empty_branches(kind: &StepKind) -> Vec<(String, String)> {
    /// The paths (name, next) without a step.
    fn empty_paths<'a>(
        paths: impl Iterator<Item = (&'a str, &'a Option<StepId>)>,
    ) -> Vec<(String, String)> {
        paths
            .enumerate()
            .filter(|(_, (_, next))| next.is_none())
            .map(|(j, (name, _))| {
                let label = match name.trim() {
                    "" => format!("path {}", j + 1),
                    name => format!("the path “{name}”"),
                };
                (format!("paths[{j}].next"), label)
            })
            .collect()
    }
    let everyone_else = |next: &Option<StepId>| {
        next.is_none().then(|| {
            (
                "everyone_else".to_owned(),
                "the Everyone Else path".to_owned(),
            )
        })
    };
    match kind {
        StepKind::DecisionSplit { yes, no, .. } => [
            yes.is_none()
                .then(|| ("yes".to_owned(), "the Yes branch".to_owned())),
            no.is_none()
                .then(|| ("no".to_owned(), "the No branch".to_owned())),
        ]
        .into_iter()
        .flatten()
        .collect(),
        StepKind::AudiencePaths {
            paths,
            everyone_else: rest,
        } => {
            let mut out = empty_paths(paths.iter().map(|p| (p.name.as_str(), &p.next)));
            out.extend(everyone_else(rest));
            out
        }
        StepKind::ActionPaths {
            paths,
            everyone_else: rest,
            ..
        } => {
            let mut out = empty_paths(paths.iter().map(|p| (p.name.as_str(), &p.next)));
            out.extend(everyone_else(rest));
            out
        }
        StepKind::Experiment { paths, .. } => {
            empty_paths(paths.iter().map(|p| (p.name.as_str(), &p.next)))
        }
        StepKind::Message { .. }
        | StepKind::Delay { .. }
        | StepKind::UserUpdate { .. }
        | StepKind::Context { .. }
        | StepKind::Exit => Vec::new(),
    }
}

/// The steps as a graph: each id's (first) index, and each step's branches to existing steps.
/// A step repeating an earlier id is left out (its id is the problem reported).
struct Graph<'a> {
    steps: &'a [Step],
    by_id: HashMap<&'a str, usize>,
    /// Per step: (field relative to the step, index of the step it leads to).
    edges: Vec<Vec<(String, usize)>>,
}

impl<'a> Graph<'a> {
    fn new(steps: &'a [Step]) -> Self {
        let mut by_id = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            by_id.entry(step.id.as_str()).or_insert(i);
        }
        let edges = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                if by_id.get(step.id.as_str()) != Some(&i) {
                    return Vec::new();
                }
                branches(&step.kind)
                    .into_iter()
                    .filter_map(|(field, target)| by_id.get(target.as_str()).map(|&t| (field, t)))
                    .collect()
            })
            .collect();
        Self {
            steps,
            by_id,
            edges,
        }
    }

    fn index(&self, id: &StepId) -> Option<usize> {
        self.by_id.get(id.as_str()).copied()
    }

    /// The steps the variants start at, in variant order.
    fn roots(&self, definition: &Definition) -> Vec<usize> {
        definition
            .variants
            .iter()
            .filter_map(|v| v.first_step.as_ref().and_then(|id| self.index(id)))
            .collect()
    }

    fn canonical(&self, i: usize) -> bool {
        self.by_id.get(self.steps[i].id.as_str()) == Some(&i)
    }
}

/// Reports every branch that leads back to a step on the way to it (a depth-first search from
/// the variants' first steps, then from every other step; iterative, so a huge definition
/// can't overflow the stack).
fn check_cycles(definition: &Definition, graph: &Graph<'_>, found: &mut Found) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = graph.steps.len();
    let mut mark = vec![Mark::New; n];
    let roots = graph
        .roots(definition)
        .into_iter()
        .chain((0..n).filter(|&i| graph.canonical(i)));
    for root in roots {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Open;
        // (step, how many of its branches were followed)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(top) = stack.last_mut() {
            let (step, followed) = *top;
            let Some((field, target)) = graph.edges[step].get(followed) else {
                mark[step] = Mark::Done;
                stack.pop();
                continue;
            };
            top.1 += 1;
            let target = *target;
            match mark[target] {
                Mark::New => {
                    mark[target] = Mark::Open;
                    stack.push((target, 0));
                }
                Mark::Open => {
                    let start = stack.iter().position(|(s, _)| *s == target).unwrap_or(0);
                    let mut path: Vec<&str> = stack[start..]
                        .iter()
                        .map(|(s, _)| graph.steps[*s].id.as_str())
                        .collect();
                    path.push(graph.steps[target].id.as_str());
                    found.add(
                        Some(&graph.steps[step].id),
                        format!("steps[{step}].{field}"),
                        format!(
                            "leads back to “{}” ({}): a journey can't pass the same step twice",
                            graph.steps[target].id,
                            path.join(" → ")
                        ),
                    );
                }
                Mark::Done => {}
            }
        }
    }
}

/// Reports the steps no variant leads to.
fn check_reachable(definition: &Definition, graph: &Graph<'_>, found: &mut Found) {
    let n = graph.steps.len();
    let mut reached = vec![false; n];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for root in graph.roots(definition) {
        if !reached[root] {
            reached[root] = true;
            queue.push_back(root);
        }
    }
    while let Some(step) = queue.pop_front() {
        for (_, target) in &graph.edges[step] {
            if !reached[*target] {
                reached[*target] = true;
                queue.push_back(*target);
            }
        }
    }
    for (i, step) in graph.steps.iter().enumerate() {
        if !reached[i] && graph.canonical(i) {
            found.add(
                Some(&step.id),
                format!("steps[{i}]"),
                "is unreachable: no variant leads to it; connect it or remove it",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::AudienceSpec;
    use crate::canvas::model::CanvasSettings;
    use crate::webhook::{Body, Method, WebhookMessage};

    fn input() -> CanvasInput {
        CanvasInput {
            name: "Onboarding".into(),
            description: String::new(),
            tags: vec![],
            definition: Definition {
                entry: Entry::Api,
                audience: AudienceSpec::default(),
                exit: ExitCriteria::default(),
                settings: CanvasSettings::default(),
                variants: vec![CanvasVariant {
                    id: None,
                    name: "Main".into(),
                    percent: 100,
                    first_step: Some(StepId("welcome".into())),
                }],
                control_percent: 0,
                conversions: vec![],
                steps: vec![Step {
                    id: StepId("welcome".into()),
                    name: "Welcome".into(),
                    kind: StepKind::Message {
                        message: WebhookMessage {
                            method: Method::Post,
                            url: "https://hooks.example.com/in".into(),
                            headers: vec![],
                            body: Body::None,
                        },
                        next: None,
                    },
                }],
            },
        }
    }

    #[tokio::test]
    async fn every_frozen_version_stays_readable_after_live_edits() {
        for db in migrations::testing::test_databases().await {
            let ws = WorkspaceId::generate();
            let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 28, 9, 0, 0).unwrap();
            let created = create_canvas(&db, &ws, input(), t).await.unwrap();
            assert!(matches!(
                version_definition(&db, &ws, &created.id, 1).await,
                Err(DomainError::NotFound(_))
            ));
            let live = launch_canvas(&db, &ws, &created.id, t).await.unwrap();
            let mut edit = input();
            edit.definition = live.draft.clone();
            edit.definition.steps[0].name = "Hello".into();
            update_canvas(&db, &ws, &live.id, edit.clone(), None, t)
                .await
                .unwrap();
            let v1 = version_definition(&db, &ws, &live.id, 1).await.unwrap();
            let v2 = version_definition(&db, &ws, &live.id, 2).await.unwrap();
            assert_eq!(v1, live.draft);
            assert_eq!(v1.steps[0].name, "Welcome");
            assert_eq!(v2, edit.definition);
            assert!(matches!(
                version_definition(&db, &ws, &live.id, 3).await,
                Err(DomainError::NotFound(_))
            ));
            let other = WorkspaceId::generate();
            assert!(version_definition(&db, &other, &live.id, 1).await.is_err());
        }
    }

    #[test]
    fn problem_paths_map_to_the_longest_fixed_field_they_start_with() {
        assert_eq!(error_field("settings.time_zone"), "settings.time_zone");
        assert_eq!(error_field("steps[2].message.url"), "steps");
        assert_eq!(error_field("steps"), "steps");
        assert_eq!(error_field("variants[0].first_step"), "variants");
        assert_eq!(error_field("exit.events[1].name"), "exit.events");
        assert_eq!(
            error_field("entry.trigger.property_filters[0].comparison"),
            "entry.trigger.property_filters"
        );
        assert_eq!(error_field("entry.trigger.name"), "entry.trigger.name");
        // A prefix must end at a separator: `entry.schedule.ends_onward` is not `ends_on`.
        assert_eq!(error_field("entry.schedule.ends_onward"), "entry.schedule");
        assert_eq!(error_field("something.else"), "definition");
    }

    #[test]
    fn a_refusal_names_the_step_the_full_path_and_how_many_more_there_are() {
        let problems = vec![
            Problem {
                step_id: Some(StepId("welcome".into())),
                field: "steps[0].message.url".into(),
                message: "is required".into(),
            },
            Problem {
                step_id: None,
                field: "variants".into(),
                message: "x".into(),
            },
        ];
        let error = refusal(&problems).unwrap();
        assert_eq!(error.field(), Some("steps"));
        assert_eq!(
            error_message(error),
            "step “welcome”, steps[0].message.url: is required (and 1 more problem)"
        );
        assert!(refusal(&[]).is_none());
    }
}
