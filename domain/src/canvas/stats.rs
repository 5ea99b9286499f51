//! Canvas analytics (per step, per branch, over time) and one user's journeys, from the step
//! events, the journeys and the outbox.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::model::{CanvasStats, JourneyStep};
use crate::campaign::Bucket;
use crate::{CanvasId, DomainResult, ProfileId, WorkspaceId};

/// Figures for `[since, until)`.
pub async fn canvas_stats(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CanvasId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
) -> DomainResult<CanvasStats> {
    todo!()
}

/// The user's latest journey steps across Canvases, newest first.
pub async fn user_journeys(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    profile: &ProfileId,
    limit: u64,
) -> DomainResult<Vec<JourneyStep>> {
    todo!()
}
