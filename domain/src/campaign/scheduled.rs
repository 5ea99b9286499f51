//! Sends scheduled over the REST API: `/messages/schedule/*` and
//! `/campaigns/trigger/schedule/*`, listed by `/messages/scheduled_broadcasts`.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::trigger::TriggerRequest;
use crate::webhook::WebhookMessage;
use crate::{CampaignId, DomainResult, ScheduleId, VariantId, WorkspaceId};

/// What a schedule carries out when its time comes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduledKind {
    /// `/messages/schedule/create`: a webhook to a listed audience or a broadcast filter.
    Messages {
        message: WebhookMessage,
        #[serde(default)]
        external_ids: Vec<String>,
        /// A segment or Connected Audience filter (`None` with listed users means no filter).
        #[serde(default)]
        filter: Option<crate::segment::Filter>,
        #[serde(default)]
        campaign_id: Option<CampaignId>,
        #[serde(default)]
        variant_id: Option<VariantId>,
        #[serde(default)]
        send_tag: Option<String>,
    },
    /// `/campaigns/trigger/schedule/create`.
    CampaignTrigger {
        campaign_id: CampaignId,
        request: TriggerRequest,
    },
}

/// A scheduled send as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledSend {
    pub schedule_id: ScheduleId,
    pub dispatch_id: String,
    pub kind: ScheduledKind,
    pub send_at: DateTime<Utc>,
    pub in_local_time: bool,
    /// `pending`, `running`, `done` or `cancelled`.
    pub status: String,
}

/// Schedules a send. `send_at` must be in the future (for `in_local_time`, still ahead in some
/// time zone).
pub async fn create_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    kind: ScheduledKind,
    send_at: DateTime<Utc>,
    in_local_time: bool,
    now: DateTime<Utc>,
) -> DomainResult<ScheduledSend> {
    todo!()
}

/// Changes the time and/or the content of a pending schedule.
pub async fn update_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ScheduleId,
    kind: Option<ScheduledKind>,
    send_at: Option<(DateTime<Utc>, bool)>,
    now: DateTime<Utc>,
) -> DomainResult<ScheduledSend> {
    todo!()
}

/// Cancels a pending schedule.
pub async fn cancel_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ScheduleId,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    todo!()
}

/// Pending schedules due before `until`, soonest first.
pub async fn list_scheduled(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    until: DateTime<Utc>,
) -> DomainResult<Vec<ScheduledSend>> {
    todo!()
}

/// Carries out due schedules (claimed under a lease); returns how many finished.
pub async fn run_due_scheduled<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    todo!()
}
