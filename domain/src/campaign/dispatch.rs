//! Turns a campaign into outbox rows: the audience paged from the database, each user's sticky
//! variant (or the control group), re-eligibility, frequency caps, quiet hours and local time;
//! receipts are written in the same transaction as the sends.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::messaging::Audience;
use crate::webhook::WebhookMessage;
use crate::{CampaignId, DomainResult, VariantId, WorkspaceId};

/// What one dispatch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchOutcome {
    pub dispatch_id: String,
    /// Sends written to the outbox.
    pub queued: u64,
    /// Users held out in the control group.
    pub control: u64,
    /// Users skipped: not re-eligible yet, frequency-capped, or in quiet hours with abort.
    pub skipped: u64,
    /// Listed external ids that matched no user.
    pub unknown_recipients: Vec<String>,
}

/// Fires the due occurrences of scheduled campaigns (claimed under a lease, so several processes
/// share the work and a crashed dispatch resumes from its cursor), plans each campaign's next
/// occurrence, and returns how many occurrences finished.
pub async fn run_due_occurrences<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    todo!()
}

/// `/messages/send` with a `campaign_id`: `message` sent now to `audience`, tracked under the
/// API campaign's `variant` (which must belong to it: "Invalid Message Variant"). All users are
/// eligible, as in Braze.
pub async fn send_api_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    variant: &VariantId,
    message: &WebhookMessage,
    audience: Audience,
    send_tag: Option<String>,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    todo!()
}

/// Per-user additions of one dispatch.
#[derive(Clone, Debug, Default)]
pub(super) struct Extras {
    /// `{{api_trigger_properties.${…}}}`.
    pub api_trigger_properties: serde_json::Map<String, serde_json::Value>,
    /// `{{event_properties.${…}}}` of the triggering event.
    pub event_properties: serde_json::Map<String, serde_json::Value>,
    /// Earliest first attempt (an action-based delay); local time and quiet hours may push it
    /// later.
    pub not_before: Option<DateTime<Utc>>,
}

/// Queues `campaign`'s sends for `users` under `dispatch_id`, in the caller's transaction: picks
/// each user's sticky variant (or the control group), skips users not re-eligible yet or
/// frequency-capped (unless the campaign ignores caps), applies quiet hours and local time,
/// writes the sends (source `campaign`, the campaign's rate limit) and the receipts.
pub(super) async fn queue_campaign_sends(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &super::model::Campaign,
    dispatch_id: &str,
    users: Vec<(crate::entity::profile::Model, Extras)>,
    send_tag: Option<String>,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    todo!()
}

/// The filter a campaign audience stands for: every listed segment's filter AND the extra
/// filter; everyone when both are empty. Unknown or archived segments are an error on
/// `audience.segment_ids`.
pub(super) async fn audience_filter(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    audience: &super::model::AudienceSpec,
) -> DomainResult<crate::segment::Filter> {
    let mut filters = Vec::new();
    for id in &audience.segment_ids {
        let segment = crate::segment::find(db, ws, id).await.map_err(|e| match e {
            crate::DomainError::NotFound(_) => crate::DomainError::invalid(
                "audience.segment_ids",
                format!("no segment {id} in this workspace"),
            ),
            other => other,
        })?;
        if segment.archived_at.is_some() {
            return Err(crate::DomainError::invalid(
                "audience.segment_ids",
                format!("segment \u{201c}{}\u{201d} is archived", segment.name),
            ));
        }
        filters.push(segment.filter);
    }
    if let Some(extra) = &audience.filter {
        filters.push(extra.clone());
    }
    Ok(crate::segment::Filter::And { filters })
}
