//! API-triggered sends (`/campaigns/trigger/send`) and action-based campaigns fired by tracked
//! events (read from the event inbox), with delays and exception events.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::dispatch::DispatchOutcome;
use crate::{CampaignId, DomainResult, WorkspaceId};

/// One listed recipient of a trigger call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecipient {
    pub external_user_id: String,
    /// Merged over the call's `trigger_properties` for this user.
    #[serde(default)]
    pub trigger_properties: Map<String, Json>,
    /// `false` creates the user from `attributes` when missing.
    #[serde(default = "yes")]
    pub send_to_existing_only: bool,
    /// Braze user attributes applied before the send.
    #[serde(default)]
    pub attributes: Option<Map<String, Json>>,
}

fn yes() -> bool {
    true
}

/// Who a trigger call reaches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerTarget {
    /// At most 50 listed users (only those in the campaign's audience receive it).
    Recipients { recipients: Vec<TriggerRecipient> },
    /// The campaign's whole audience, optionally narrowed by a Connected Audience filter.
    Broadcast {
        #[serde(default)]
        audience: Option<crate::segment::Filter>,
    },
}

/// A `/campaigns/trigger/send` call (or a scheduled one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    pub target: TriggerTarget,
    #[serde(default)]
    pub trigger_properties: Map<String, Json>,
    #[serde(default)]
    pub send_tag: Option<String>,
}

/// Sends an API-triggered campaign. The campaign must be an active API-triggered webhook
/// campaign ("Invalid Campaign ID" otherwise); attributes are applied and users created first,
/// then each eligible user's send is queued with its `api_trigger_properties`, all in one
/// transaction.
pub async fn trigger_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    request: TriggerRequest,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    todo!()
}

/// Claims up to `limit` tracked events from the inbox, fires the active action-based campaigns
/// they trigger (after each campaign's delay) and cancels delayed sends their exception events
/// name, then marks the events handled. Returns how many events were handled.
pub async fn handle_events<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    todo!()
}
