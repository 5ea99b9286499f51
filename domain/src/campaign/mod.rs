//! Campaigns: webhook campaigns composed in the dashboard and API campaigns whose content arrives
//! over HTTP. `model` holds the shapes, `store` the lifecycle (create, edit, launch, stop,
//! archive), `schedule` the calendar maths, `dispatch` turning a campaign into outbox rows
//! (audience, variants, re-eligibility, frequency caps, local time), `trigger` the API-triggered
//! and action-based entries, `scheduled` the sends scheduled over the REST API, and `stats` the
//! analytics and live progress. Canvases share `audience` (audience filters and paging),
//! `split` (sticky variant splits) and parts of `trigger` (listed recipients, trigger matching).

mod audience;
mod dispatch;
mod model;
mod schedule;
mod scheduled;
mod split;
mod stats;
mod store;
mod trigger;

pub use dispatch::{
    DispatchOutcome, run_due_occurrences, run_due_occurrences_reading, send_api_campaign,
};
pub use model::*;
pub use schedule::{next_occurrence, replan};
pub use scheduled::{
    ScheduledKind, ScheduledSend, cancel_scheduled, create_scheduled, find_scheduled,
    list_scheduled, run_due_scheduled, update_scheduled,
};
pub use stats::{RecentError, WorkspaceOverview, campaign_stats, progress, workspace_overview};
pub use store::{
    CapRule, archive_campaign, create_campaign, create_cap_rule, create_send_tag, delete_cap_rule,
    duplicate_campaign, estimate_reach, find_campaign, launch_campaign, list_campaigns,
    list_cap_rules, resume_campaign, stop_campaign, unarchive_campaign, update_campaign,
};
pub use trigger::{
    Listened, TriggerRecipient, TriggerRequest, TriggerTarget, handle_events, listened,
    trigger_campaign,
};

// Shared with Canvases.
pub(crate) use audience::{
    ID_CHUNK, Pages, all_of, audience_filter, filter_of, is_member, push_condition,
};
pub(crate) use schedule::local_time_date;
pub(crate) use split::{Assignment, assign};
pub(crate) use trigger::{
    ListedRecipient, check_recipients, check_size, listed_members, lock_for_write, trigger_matches,
    yes,
};
