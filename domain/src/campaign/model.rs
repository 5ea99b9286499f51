//! What a campaign is made of, as the builder, the management API and the store exchange it. Every
//! type here serializes to the JSON the management API documents; `Definition` is what the
//! `campaign.definition` column holds.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::segment::Filter;
use crate::webhook::WebhookMessage;
use crate::{CampaignId, SegmentId, VariantId};

/// A webhook campaign (content composed in the dashboard) or an API campaign (content arrives
/// with each `/messages/send` call; the campaign only tracks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    Webhook,
    Api,
}

impl CampaignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "webhook" => Some(Self::Webhook),
            "api" => Some(Self::Api),
            _ => None,
        }
    }
}

/// Braze's statuses. `Scheduled` is a launched scheduled campaign whose first occurrence has not
/// come yet; it turns `Active` when it first sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Active,
    Stopped,
    Archived,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Stopped => "stopped",
            Self::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(Self::Draft),
            "scheduled" => Some(Self::Scheduled),
            "active" => Some(Self::Active),
            "stopped" => Some(Self::Stopped),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// One message variant. Percentages of all variants plus the control group add up to 100.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Stable across edits; given out as `message_variation_id`. Empty in a create request
    /// (the store assigns one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<VariantId>,
    pub name: String,
    pub percent: u8,
    /// The webhook; `None` in API campaigns (the content comes with each call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<WebhookMessage>,
}

/// How a scheduled campaign repeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recurrence {
    /// Once, at `Schedule::starts_on` and `Schedule::time`.
    Once,
    /// Every `every` days.
    Daily { every: u16 },
    /// On the chosen weekdays, every `every` weeks.
    Weekly { every: u16, days: Vec<Weekday> },
    /// On this day of every `every` months (a month without the day is skipped).
    Monthly { every: u16, day: u8 },
}

/// When a scheduled campaign sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// As soon as it is launched.
    AtLaunch,
    /// At a time of day, once or repeating, from `starts_on` to `ends_on` (inclusive).
    At {
        starts_on: NaiveDate,
        time: NaiveTime,
        recurrence: Recurrence,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ends_on: Option<NaiveDate>,
        /// The IANA zone the time is read in (the company time zone), e.g. `Europe/Paris`.
        time_zone: String,
        /// Send at `time` in each user's own zone (users without one use `time_zone`). Sends are
        /// queued 24 hours ahead, as in Braze.
        #[serde(default)]
        in_local_time: bool,
    },
}

/// What makes an action-based campaign send, or cancels a delayed send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A custom event, optionally only when its properties match.
    CustomEvent {
        name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        property_filters: Vec<PropertyFilter>,
    },
    /// A purchase, of one product or any.
    Purchase {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        product_id: Option<String>,
    },
}

/// A condition on a triggering event's property: `comparison` is one of `equals`, `not_equal`,
/// `greater_than`, `less_than`, `exists`, `does_not_exist`, `contains`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PropertyFilter {
    pub property: String,
    pub comparison: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// How a campaign is delivered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delivery {
    Scheduled {
        schedule: Schedule,
    },
    /// Action-based: sends when a user performs the trigger, after `delay_seconds`, unless the
    /// user performs an exception event first; only for triggers between `starts_at` and
    /// `ends_at`.
    Action {
        trigger: Trigger,
        #[serde(default)]
        delay_seconds: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exceptions: Vec<Trigger>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ends_at: Option<DateTime<Utc>>,
    },
    /// API-triggered: sends on `/campaigns/trigger/send`; also the delivery of API campaigns.
    Api,
}

impl Delivery {
    /// `scheduled`, `action` or `api`, as stored in `campaign.delivery_type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Scheduled { .. } => "scheduled",
            Self::Action { .. } => "action",
            Self::Api => "api",
        }
    }
}

/// Who a campaign may reach: members of every listed segment (AND) who also match `filter`.
/// Both empty means every user of the workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AudienceSpec {
    #[serde(default)]
    pub segment_ids: Vec<SegmentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

/// A conversion event: a user converts when they perform it within `window_seconds` of
/// receiving the campaign. The first one is primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    pub trigger: Trigger,
    pub window_seconds: u64,
}

/// Quiet hours, in the user's local time (or the company zone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// `true`: send when quiet hours end; `false`: drop the send.
    #[serde(default)]
    pub send_later: bool,
}

/// Delivery controls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Messages per minute for the whole campaign; `None` means as fast as the engine goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// `None`: a user receives the campaign once. `Some(s)`: again after `s` seconds
    /// (`Some(0)`: every time, for transactional sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reeligible_after_seconds: Option<u64>,
    /// Obey the workspace's frequency-capping rules (on by default, as in Braze).
    #[serde(default = "yes")]
    pub frequency_capped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Stop after this many recipients per dispatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recipients: Option<u64>,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rate_per_minute: None,
            reeligible_after_seconds: None,
            frequency_capped: true,
            quiet_hours: None,
            max_recipients: None,
        }
    }
}

/// Everything of a campaign but its identity and lifecycle: what create and update take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub kind: CampaignKind,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Share of the audience held out as a control group (receives nothing, tracked for
    /// conversions).
    #[serde(default)]
    pub control_percent: u8,
    pub delivery: Delivery,
    #[serde(default)]
    pub audience: AudienceSpec,
    #[serde(default)]
    pub conversions: Vec<Conversion>,
    #[serde(default)]
    pub settings: Settings,
}

/// The part of a campaign stored as JSON in `campaign.definition`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub variants: Vec<Variant>,
    pub control_percent: u8,
    pub delivery: Delivery,
    pub audience: AudienceSpec,
    pub conversions: Vec<Conversion>,
    pub settings: Settings,
}

/// A stored campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub kind: CampaignKind,
    pub status: CampaignStatus,
    pub variants: Vec<Variant>,
    pub control_percent: u8,
    pub delivery: Delivery,
    pub audience: AudienceSpec,
    pub conversions: Vec<Conversion>,
    pub settings: Settings,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    /// When a scheduled campaign sends next, if it will.
    pub next_send_at: Option<DateTime<Utc>>,
}

/// Which campaigns a list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignFilter {
    pub status: Option<CampaignStatus>,
    pub tag: Option<String>,
    /// `scheduled`, `action` or `api` (see [`Delivery::type_name`]).
    pub delivery_type: Option<String>,
    /// Archived campaigns are left out unless asked for (or `status` is `archived`).
    pub include_archived: bool,
}

/// Live progress of a campaign's sends (all dispatches, or one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Written to the outbox, no attempt made yet.
    pub queued: u64,
    /// Failed at least once, another attempt is due.
    pub retrying: u64,
    /// Answered with a 2xx.
    pub delivered: u64,
    /// Gave up, or answered with a final error.
    pub failed: u64,
    /// Cancelled before sending (stop, exception event, Liquid `abort_message`).
    pub aborted: u64,
    /// Recipients a running dispatch has still to write to the outbox, when known.
    pub remaining_to_queue: Option<u64>,
}

/// Figures for one variant (or the whole campaign when `variant_id` is `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantStats {
    pub variant_id: Option<VariantId>,
    pub name: String,
    /// Sends written (Braze's "Sends"; errors included).
    pub sends: u64,
    /// Answered with a 2xx.
    pub delivered: u64,
    /// Final 4xx (other than 408/429).
    pub errors_client: u64,
    /// Final 5xx, 408 or 429 after every retry.
    pub errors_server: u64,
    /// Timeouts, refused connections, refused addresses.
    pub errors_network: u64,
    pub aborted: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    pub unique_recipients: u64,
    /// Recipients who performed the primary conversion event within its window.
    pub conversions: u64,
}

/// One bucket of a time series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub time: DateTime<Utc>,
    pub variant_id: Option<VariantId>,
    pub sends: u64,
    pub delivered: u64,
    pub errors: u64,
}

/// Analytics of one campaign over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStats {
    pub total: VariantStats,
    pub variants: Vec<VariantStats>,
    /// Recipients held out in the control group, and how many of them converted.
    pub control_recipients: u64,
    pub control_conversions: u64,
    pub series: Vec<SeriesPoint>,
}

/// Time-series bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Hour,
    Day,
}
