//! What a Canvas is made of, as the builder, the management API and the journey engine exchange
//! it. `Definition` is what `canvas.draft` and `canvas_version.definition` hold (JSON); every type
//! here serializes to the JSON the management API documents.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::campaign::{AudienceSpec, Conversion, Schedule, Trigger};
use crate::segment::Filter;
use crate::webhook::WebhookMessage;
use crate::{CanvasId, JourneyId, SegmentId, VariantId};

/// Names a step within a Canvas (chosen by the builder: 1–36 characters of `a-z`, `0-9`, `-`, `_`;
/// unique in the Canvas, stable across versions so analytics follow a step).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(pub String);

impl StepId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `draft`, `active`, `paused` (no entries, journeys hold where they are), `stopped` (no
/// entries; journeys exit at their next step) and `archived`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanvasStatus {
    Draft,
    Active,
    Paused,
    Stopped,
    Archived,
}

impl CanvasStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(Self::Draft),
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            "stopped" => Some(Self::Stopped),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// How users enter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// The entry audience enters at the schedule's times.
    Scheduled { schedule: Schedule },
    /// A user enters when they perform the trigger between `starts_at` and `ends_at`; the
    /// event's properties become the entry properties.
    Action {
        trigger: Trigger,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ends_at: Option<DateTime<Utc>>,
    },
    /// `/canvas/trigger/send`; its `context` becomes the entry properties.
    Api,
}

impl Entry {
    /// `scheduled`, `action` or `api`, as stored in `canvas.entry_type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Scheduled { .. } => "scheduled",
            Self::Action { .. } => "action",
            Self::Api => "api",
        }
    }
}

/// At most `max` entries per UTC day, or over the Canvas's lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryLimit {
    pub max: u64,
    pub per: LimitPeriod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPeriod {
    Day,
    Lifetime,
}

/// Exit criteria: a user performing one of `events`, or no longer in every segment of
/// `segment_ids` (or matching `filter`), exits at their next step boundary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitCriteria {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Trigger>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_ids: Vec<SegmentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

/// A whole-path variant: users in it start at `first_step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasVariant {
    /// Stable across edits; empty when creating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<VariantId>,
    pub name: String,
    pub percent: u8,
    /// `None`: the variant is empty (its users finish at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_step: Option<StepId>,
}

/// How long a Delay step holds a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DelaySpec {
    /// A duration (at most two years).
    For { seconds: u64 },
    /// Until an instant; a user reaching it afterwards exits (Braze's rule for passed dates).
    Until { at: DateTime<Utc> },
    /// Until the next `weekday` at `time` in the user's time zone (else the Canvas zone, else
    /// UTC); today counts if the time is still ahead.
    Weekday { weekday: Weekday, time: NaiveTime },
}

/// One branch of Audience Paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudiencePath {
    pub name: String,
    pub filter: Filter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<StepId>,
}

/// One branch of Action Paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionPath {
    pub name: String,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<StepId>,
}

/// One branch of Experiment Paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentPath {
    pub name: String,
    pub percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<StepId>,
}

/// A Context step variable: `value` is Liquid rendered when the user passes the step; the result
/// is read as `{{context.${name}}}` (and `canvas_entry_properties`) by later steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextVariable {
    pub name: String,
    /// `string`, `number`, `boolean`, `time` or `object` (JSON).
    #[serde(default = "string_type")]
    pub value_type: String,
    pub value: String,
}

fn string_type() -> String {
    "string".into()
}

/// What a step does. `next: None` ends the journey after the step. A branch (a Decision Split's
/// `yes`/`no`, a path's `next`, `everyone_else`) must lead to a step for the Canvas to launch (an
/// Exit step ends the journey there explicitly); the engine ends the journey on one that is empty
/// anyway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    /// Sends a webhook (queued in the outbox in the same transaction as the move on).
    Message {
        message: WebhookMessage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<StepId>,
    },
    Delay {
        delay: DelaySpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<StepId>,
    },
    /// Users matching `filter` (and in every segment of `segment_ids`) go to `yes`, others to
    /// `no`.
    DecisionSplit {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        segment_ids: Vec<SegmentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<Filter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        yes: Option<StepId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no: Option<StepId>,
    },
    /// The first matching path wins (at most 7), else `everyone_else`.
    AudiencePaths {
        paths: Vec<AudiencePath>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        everyone_else: Option<StepId>,
    },
    /// Waits up to `window_seconds` (≤ 31 days) for the first of the paths' triggers; its
    /// properties become `event_properties` for later steps. Otherwise `everyone_else`.
    ActionPaths {
        window_seconds: u64,
        paths: Vec<ActionPath>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        everyone_else: Option<StepId>,
    },
    /// A sticky random split (at most 4 paths) plus an optional control that ends the journey.
    Experiment {
        paths: Vec<ExperimentPath>,
        #[serde(default)]
        control_percent: u8,
    },
    /// Applies a Braze attributes object (Liquid allowed in string values) to the user, through
    /// the same rules as `/users/track`.
    UserUpdate {
        attributes: Map<String, Json>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<StepId>,
    },
    /// Sets up to 10 context variables.
    Context {
        variables: Vec<ContextVariable>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<StepId>,
    },
    Exit,
}

/// A step of the Canvas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: StepId,
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// Send settings shared by the Canvas's steps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasSettings {
    /// Messages per minute across the Canvas's Message steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// `None`: a user enters once. `Some(s)`: again `s` seconds after their last entry (0: even
    /// while still inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reentry_after_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_limit: Option<EntryLimit>,
    /// The zone for Delay-until-weekday and schedules when a user has none (IANA; default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Everything of a Canvas the builder edits: what create and update take, what a version freezes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub entry: Entry,
    #[serde(default)]
    pub audience: AudienceSpec,
    #[serde(default)]
    pub exit: ExitCriteria,
    #[serde(default)]
    pub settings: CanvasSettings,
    /// At least one variant; percentages plus `control_percent` add up to 100.
    pub variants: Vec<CanvasVariant>,
    #[serde(default)]
    pub control_percent: u8,
    /// Conversion events (at most 4, each with a window of 1 second to 30 days); the first is
    /// primary. A journey converts when its user performs the primary conversion event after
    /// entering the Canvas and at most `window_seconds` after that entry; the analytics count it
    /// once per journey however often the event is performed, and credit every step the journey
    /// entered before the event (see [`StepStats::converted`]). Property filters of a custom-event
    /// conversion are kept but not applied, as for campaigns.
    #[serde(default)]
    pub conversions: Vec<Conversion>,
    /// At most 200.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// What create and update take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub definition: Definition,
}

/// A stored Canvas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Canvas {
    pub id: CanvasId,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub status: CanvasStatus,
    /// What the builder shows (may differ from the live version after an edit is saved).
    pub draft: Definition,
    /// The version new entries use; `None` before the first launch.
    pub live_version: Option<i32>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// A problem in a definition that blocks launch, tied to a step when it is about one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<StepId>,
    /// The field path, e.g. `steps[2].message.url` or `variants`.
    pub field: String,
    pub message: String,
}

/// Which Canvases a list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasFilter {
    pub status: Option<CanvasStatus>,
    pub tag: Option<String>,
    pub include_archived: bool,
}

/// What a journey carries between steps (`canvas_journey.state`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JourneyState {
    /// `{{canvas_entry_properties.${…}}}`, also `{{context.${…}}}`; Context steps add to it.
    #[serde(default)]
    pub context: Map<String, Json>,
    /// `{{event_properties.${…}}}` from the event that moved the user along an Action Path.
    #[serde(default)]
    pub event_properties: Map<String, Json>,
}

/// Per-step figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStats {
    pub step_id: StepId,
    pub entered: u64,
    /// Message steps: sends queued; delivered/errors come from the outbox.
    pub sent: u64,
    pub delivered: u64,
    pub errors: u64,
    pub aborted: u64,
    pub exited: u64,
    /// Journeys that entered the step in the period and whose user then performed the primary
    /// conversion event: at or after entering the step, and within the conversion window counted
    /// from entering the Canvas (so a journey counted here is a converted journey of the Canvas,
    /// counted in [`CanvasStats::conversions`] of the period it entered in). Each such journey
    /// counts once per step, however often the event is performed, and every step it went
    /// through before converting is credited, not only the last one (Braze's step view credits
    /// the most recent step received): the figures of the steps of one path can add up to more
    /// than the Canvas's conversions. 0 when the Canvas has no conversion event.
    pub converted: u64,
    /// Users per branch taken (splits and paths).
    pub branches: Vec<(String, u64)>,
}

/// Analytics of one Canvas over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasStats {
    pub entries: u64,
    pub in_progress: u64,
    pub finished: u64,
    pub exited: u64,
    /// Journeys entered in the period whose user performed the primary conversion event within
    /// its window after entering (control-group journeys included, as in `entries`); each counts
    /// once. 0 when the Canvas has no conversion event.
    pub conversions: u64,
    pub steps: Vec<StepStats>,
    /// (bucket start, entries, sends) per day or hour.
    pub series: Vec<(DateTime<Utc>, u64, u64)>,
    /// Conversions per day or hour, only buckets with some, oldest first.
    pub conversion_series: Vec<ConversionPoint>,
}

/// Conversions in one time bucket, counted two ways as in Braze's `data_series`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionPoint {
    pub time: DateTime<Utc>,
    /// Journeys whose first qualifying conversion event happened in the bucket (and in the
    /// period), whenever they entered.
    pub conversions: u64,
    /// Journeys entered in the bucket that converted (their sum is [`CanvasStats::conversions`]).
    pub conversions_by_entry_time: u64,
}

/// One step of one user's journey, for the profile page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyStep {
    pub canvas_id: CanvasId,
    pub canvas_name: String,
    pub journey_id: JourneyId,
    pub version: i32,
    pub step_id: Option<StepId>,
    pub step_name: String,
    pub kind: String,
    pub branch: Option<String>,
    pub at: DateTime<Utc>,
}
