//! How users enter a Canvas: `/canvas/trigger/send` (API), tracked events (action-based), and the
//! occurrences of a scheduled entry. Entry checks the entry audience, re-entry and entry limits,
//! assigns the sticky path variant (or control), and writes the journey row (due at once) and its
//! `entered` step event in the caller's transaction. Tracked events also move users waiting in
//! Action Paths and apply exit criteria.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::profile::InboxItem;
use crate::{CanvasId, DomainResult, WorkspaceId};

/// One listed recipient of `/canvas/trigger/send`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasRecipient {
    pub external_user_id: String,
    /// Merged over the call's `context` for this user.
    #[serde(default)]
    pub context: Map<String, Json>,
    #[serde(default = "yes")]
    pub send_to_existing_only: bool,
    /// Braze user attributes applied before entry.
    #[serde(default)]
    pub attributes: Option<Map<String, Json>>,
}

fn yes() -> bool {
    true
}

/// Who a trigger call enters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CanvasTarget {
    /// At most 50 listed users (only those in the entry audience enter).
    Recipients { recipients: Vec<CanvasRecipient> },
    /// The whole entry audience, optionally narrowed by a Connected Audience filter.
    Broadcast {
        #[serde(default)]
        audience: Option<crate::segment::Filter>,
    },
}

/// A `/canvas/trigger/send` call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasTriggerRequest {
    pub target: CanvasTarget,
    /// `context` (or its older name `canvas_entry_properties`), ≤ 50 KB.
    #[serde(default)]
    pub context: Map<String, Json>,
}

/// What an entry call did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryOutcome {
    pub dispatch_id: String,
    pub entered: u64,
    /// Not in the entry audience, not re-eligible, over the entry limit, or in the control group.
    pub skipped: u64,
    pub unknown_recipients: Vec<String>,
    /// Braze's notice when the Canvas is paused or archived (nothing entered).
    pub notice: Option<String>,
}

/// `/canvas/trigger/send`: in one transaction, applies attributes (creating users when
/// `send_to_existing_only` is false), then enters the eligible users with their context. The
/// Canvas must be an API-triggered Canvas that was launched (`canvas_id` error otherwise); when it
/// is paused or archived the call succeeds with a notice and enters no one (Braze).
pub async fn trigger_canvas<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    id: &CanvasId,
    request: CanvasTriggerRequest,
    now: DateTime<Utc>,
) -> DomainResult<EntryOutcome> {
    todo!()
}

/// Handles one tracked event for Canvases, inside the caller's transaction (the event inbox
/// handler calls it for every event): enters the user into active action-based Canvases it
/// triggers (its properties become the entry context), moves the user's journeys waiting in
/// Action Paths whose path it matches (its properties become `event_properties`), and marks the
/// user's journeys in Canvases whose exit criteria name it to exit at their next step.
pub async fn on_event(
    db: &impl ConnectionTrait,
    item: &InboxItem,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    todo!()
}

/// Fires due occurrences of scheduled entries (leased, paged with a saved cursor, never twice),
/// then plans the next. Returns how many occurrences finished.
pub async fn run_due_canvas_occurrences<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    todo!()
}
