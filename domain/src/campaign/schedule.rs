//! Calendar maths for scheduled campaigns (pure functions, tested beside them) and planning their
//! occurrences in the database.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::model::{Campaign, Schedule};
use crate::{DomainResult, WorkspaceId};

/// The first instant strictly after `after` at which `schedule` fires (for `in_local_time`, the
/// instant its sends must be queued: 24 hours before the wall time first comes anywhere on
/// Earth), or `None` when it has ended. `AtLaunch` fires at `launched_at` only.
pub fn next_occurrence(
    schedule: &Schedule,
    after: DateTime<Utc>,
    launched_at: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    todo!()
}

/// Makes the campaign's pending occurrences match its schedule from `now`: cancels pending ones
/// that no longer apply and inserts the next one (unique per campaign and due time, so two
/// processes planning at once make one row). Returns when it next sends.
pub async fn replan(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    todo!()
}
