//! The Canvas lifecycle: create, edit (a new frozen version when live), launch, pause, resume,
//! stop, archive, duplicate; and the checks that block a launch.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};

use super::model::{Canvas, CanvasFilter, CanvasInput, Definition, Problem};
use crate::{CanvasId, DomainResult, WorkspaceId};

/// Problems of a definition that need no database: at least one variant and percentages adding
/// up to 100; unique, well-formed step ids; every `next`/branch names an existing step; no cycles
/// (journeys are trees/DAGs); no unreachable steps; Message steps with a webhook that compiles
/// (Liquid, URL); Delay within two years; Action Paths window 1 s..31 days with at least one path;
/// Experiment percentages adding up to 100; at most 7 audience paths, 4 experiment paths,
/// 10 context variables, 200 steps; an entry trigger with an event name; a valid time zone.
pub fn problems(definition: &Definition) -> Vec<Problem> {
    todo!()
}

/// [`problems`], plus the checks that need the database (segments exist and are not archived).
pub async fn check_definition(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    definition: &Definition,
) -> DomainResult<Vec<Problem>> {
    todo!()
}

/// Saves a new Canvas as a draft (problems are allowed in a draft; only the name and basic
/// shape are enforced: a name, ≤ 20 tags, a definition that parses).
pub async fn create_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    input: CanvasInput,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Saves the builder's definition. For a launched Canvas (active, paused or stopped) the
/// definition must have no problems and is frozen as a new version that new entries use; users
/// inside finish on the version they entered. Conflict on `version` when `expected_version`
/// differs.
pub async fn update_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    input: CanvasInput,
    expected_version: Option<i32>,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

pub async fn find_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
) -> DomainResult<Canvas> {
    todo!()
}

/// Newest first.
pub async fn list_canvases(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &CanvasFilter,
) -> DomainResult<Vec<Canvas>> {
    todo!()
}

/// A draft copy named "Copy of …" (never launched, new variant ids).
pub async fn duplicate_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Launches a draft: refuses with the first problem (`DomainError::invalid` naming its field)
/// when there are any; freezes version 1; a scheduled entry gets its first occurrence.
pub async fn launch_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Active → paused: no one enters; journeys hold where they are until resumed.
pub async fn pause_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Paused or stopped → active.
pub async fn resume_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Active or paused → stopped: no one enters; journeys exit at their next step.
pub async fn stop_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

pub async fn archive_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Back to stopped (or draft if it never launched).
pub async fn unarchive_canvas(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    now: DateTime<Utc>,
) -> DomainResult<Canvas> {
    todo!()
}

/// Reads a stored row.
pub(super) fn decode(model: crate::entity::canvas::Model) -> DomainResult<Canvas> {
    todo!()
}

/// The frozen definition of one version.
pub(super) async fn version_definition(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    version: i32,
) -> DomainResult<Definition> {
    todo!()
}
