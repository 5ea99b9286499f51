//! Campaign analytics and live progress, read from the outbox, its attempts, the receipts and the
//! tracked events; and the workspace home page's totals.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

use super::model::{Bucket, CampaignStats, Progress};
use crate::{CampaignId, DomainResult, WorkspaceId};

/// Live progress of a campaign's sends; of one dispatch when `dispatch_id` is given.
pub async fn progress(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    dispatch_id: Option<&str>,
) -> DomainResult<Progress> {
    todo!()
}

/// Per-variant figures and a time series of sends created in `[since, until)`; `send_tag` narrows
/// to one Braze `send_id`.
pub async fn campaign_stats(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
    send_tag: Option<&str>,
) -> DomainResult<CampaignStats> {
    todo!()
}

/// The workspace home page: totals over a period and the latest failed sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceOverview {
    pub active_campaigns: u64,
    pub sends: u64,
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
    /// (send id, when, recipient, source name, status code, error), newest first.
    pub latest_errors: Vec<RecentError>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentError {
    pub send_id: String,
    pub at: DateTime<Utc>,
    pub recipient: Option<String>,
    pub source_name: Option<String>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

pub async fn workspace_overview(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<WorkspaceOverview> {
    todo!()
}
