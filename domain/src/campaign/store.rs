//! The campaign lifecycle: create, edit, duplicate, launch, stop, resume, archive; the workspace's
//! frequency-capping rules and Braze send ids.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::model::{AudienceSpec, Campaign, CampaignFilter, CampaignInput};
use crate::{CampaignId, DomainResult, WorkspaceId};

/// A frequency-capping rule: at most `max_sends` webhooks per user in `window_seconds`
/// (≤ 30 days), counting only campaigns tagged `tag` when one is given. At most 10 per workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapRule {
    /// Empty when creating.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tag: Option<String>,
    pub max_sends: u32,
    pub window_seconds: u64,
}

/// Saves a new campaign as a draft. Variants get ids; validation errors name the field
/// (`variants[0].message.url`, `delivery.schedule.time_zone`, ...).
pub async fn create_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    input: CampaignInput,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// Replaces a campaign's definition. Allowed in every status but archived; sends already queued
/// keep the content they were queued with. A launched scheduled campaign is replanned. When
/// `expected_version` is given and differs, fails with a conflict on `version`.
pub async fn update_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    input: CampaignInput,
    expected_version: Option<i32>,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

pub async fn find_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
) -> DomainResult<Campaign> {
    todo!()
}

/// Newest first.
pub async fn list_campaigns(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &CampaignFilter,
) -> DomainResult<Vec<Campaign>> {
    todo!()
}

/// A draft copy named "Copy of …", with new variant ids.
pub async fn duplicate_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// Checks the campaign is complete (a message per variant of a webhook campaign, percentages
/// adding up, a schedule in the future, ...) and launches it: scheduled campaigns get their
/// first occurrence (status `scheduled`, or `active` when sending at launch), action-based and
/// API ones turn `active`.
pub async fn launch_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// Stops a campaign: nothing new is sent; pending occurrences stay but do not fire, and queued
/// sends that have not been attempted are aborted.
pub async fn stop_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// Resumes a stopped campaign; a scheduled one is replanned from `now`.
pub async fn resume_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// Archives a campaign (stopping it first when it runs).
pub async fn archive_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// Back to `stopped` (or `draft` if it never launched).
pub async fn unarchive_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    todo!()
}

/// How many users the audience reaches now (before re-eligibility and caps).
pub async fn estimate_reach(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    audience: &AudienceSpec,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    todo!()
}

/// Registers a Braze `send_id` for a campaign (`/sends/id/create`): ASCII, at most 64
/// characters; generated when `None`. At most 100 per workspace per day. Returns the send id.
pub async fn create_send_tag(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    send_tag: Option<String>,
    now: DateTime<Utc>,
) -> DomainResult<String> {
    todo!()
}

pub async fn list_cap_rules(db: &impl ConnectionTrait, ws: &WorkspaceId) -> DomainResult<Vec<CapRule>> {
    todo!()
}

pub async fn create_cap_rule(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    rule: CapRule,
    now: DateTime<Utc>,
) -> DomainResult<CapRule> {
    todo!()
}

pub async fn delete_cap_rule(db: &impl ConnectionTrait, ws: &WorkspaceId, id: &str) -> DomainResult<()> {
    todo!()
}

/// Reads a stored row into a [`Campaign`] (`next_send_at` is left `None`; [`find_campaign`]
/// fills it).
pub(super) fn decode(model: crate::entity::campaign::Model) -> DomainResult<Campaign> {
    todo!()
}
