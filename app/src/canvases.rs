//! Canvases in the dashboard: the plain types the list, the builder (flow diagram included), the
//! report and the profile page exchange with the browser (strings where people type, so a
//! half-typed number is kept and rejected by the server with the field it belongs to), the editing
//! rules of the flow (insert a step on an edge, delete one), and the server functions behind them.
//! Each server function checks the caller's membership and role first: Viewers read, Marketers and
//! Admins edit, launch, pause, stop and archive.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

use crate::campaigns::{ConversionDraft, FieldError, SegmentOption, TriggerDraft};
use crate::segments::FilterDraft;
use crate::webhooks::MessageDraft;

#[cfg(feature = "ssr")]
use crate::ssr::{authorize, ctx, fail, when};
#[cfg(feature = "ssr")]
use domain::{CanvasId, Capability};

/// One row of the Canvas list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasRow {
    pub id: String,
    pub name: String,
    /// `scheduled`, `action` or `api`.
    pub entry: String,
    pub status: String,
    pub tags: Vec<String>,
    pub updated: String,
    pub launched: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasesView {
    pub rows: Vec<CanvasRow>,
    /// Every tag used in the workspace, for the filter.
    pub tags: Vec<String>,
    /// Whether the workspace has any Canvas at all (archived included).
    pub any: bool,
    pub can_build: bool,
}

/// How users enter. Only the fields of the chosen `kind` matter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryDraft {
    /// `scheduled`, `action` or `api`.
    pub kind: String,
    /// `at_launch`, `once`, `daily`, `weekly` or `monthly`.
    pub schedule: String,
    /// `YYYY-MM-DD`.
    pub starts_on: String,
    /// `HH:MM`.
    pub time: String,
    pub every: String,
    /// `mon` … `sun`.
    pub days: Vec<String>,
    pub month_day: String,
    pub ends_on: String,
    pub time_zone: String,
    pub in_local_time: bool,
    pub trigger: TriggerDraft,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    pub starts_at: String,
    pub ends_at: String,
}

impl Default for EntryDraft {
    fn default() -> Self {
        Self {
            kind: "scheduled".into(),
            schedule: "at_launch".into(),
            starts_on: String::new(),
            time: "09:00".into(),
            every: "1".into(),
            days: Vec::new(),
            month_day: "1".into(),
            ends_on: String::new(),
            time_zone: String::new(),
            in_local_time: false,
            trigger: TriggerDraft::default(),
            starts_at: String::new(),
            ends_at: String::new(),
        }
    }
}

/// Exit criteria.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitDraft {
    pub events: Vec<TriggerDraft>,
    pub segment_ids: Vec<String>,
    /// A filter set over the management API; kept as it is.
    pub filter: Option<serde_json::Value>,
}

/// Send and entry settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasSettingsDraft {
    /// Empty: as fast as the engine goes.
    pub rate_per_minute: String,
    pub reentry: bool,
    pub reentry_after: String,
    /// `minutes`, `hours` or `days`.
    pub reentry_unit: String,
    /// Empty: no limit.
    pub entry_limit: String,
    /// `day` or `lifetime`.
    pub entry_limit_per: String,
    /// Empty: UTC.
    pub time_zone: String,
}

impl Default for CanvasSettingsDraft {
    fn default() -> Self {
        Self {
            rate_per_minute: String::new(),
            reentry: false,
            reentry_after: "1".into(),
            reentry_unit: "days".into(),
            entry_limit: String::new(),
            entry_limit_per: "day".into(),
            time_zone: String::new(),
        }
    }
}

/// A whole-path variant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathVariantDraft {
    /// Given when saved.
    pub id: Option<String>,
    pub name: String,
    pub percent: String,
    pub first_step: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AudiencePathDraft {
    pub name: String,
    pub filter: FilterDraft,
    pub next: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionPathDraft {
    pub name: String,
    pub trigger: TriggerDraft,
    pub next: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentPathDraft {
    pub name: String,
    pub percent: String,
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextVariableDraft {
    pub name: String,
    /// `string`, `number`, `boolean`, `time` or `object`.
    pub value_type: String,
    /// Liquid.
    pub value: String,
}

impl Default for ContextVariableDraft {
    fn default() -> Self {
        Self {
            name: String::new(),
            value_type: "string".into(),
            value: String::new(),
        }
    }
}

/// What a step does, as the side panel edits it. Pointers (`next`, `yes`, paths' `next`) name
/// other steps by id; `None` ends the journey there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKindDraft {
    Message {
        message: MessageDraft,
        next: Option<String>,
    },
    Delay {
        /// `for`, `until` or `weekday`.
        mode: String,
        amount: String,
        /// `minutes`, `hours`, `days` or `weeks` (and `seconds` for definitions made elsewhere).
        unit: String,
        /// `YYYY-MM-DDTHH:MM`, UTC.
        at: String,
        /// `mon` … `sun`.
        weekday: String,
        /// `HH:MM`.
        time: String,
        next: Option<String>,
    },
    DecisionSplit {
        segment_ids: Vec<String>,
        filter: FilterDraft,
        yes: Option<String>,
        no: Option<String>,
    },
    AudiencePaths {
        paths: Vec<AudiencePathDraft>,
        everyone_else: Option<String>,
    },
    ActionPaths {
        window: String,
        /// `minutes`, `hours` or `days`.
        window_unit: String,
        paths: Vec<ActionPathDraft>,
        everyone_else: Option<String>,
    },
    Experiment {
        paths: Vec<ExperimentPathDraft>,
        control_percent: String,
    },
    UserUpdate {
        /// Attribute name and value as typed (numbers, true/false and JSON are sent typed).
        attributes: Vec<(String, String)>,
        next: Option<String>,
    },
    Context {
        variables: Vec<ContextVariableDraft>,
        next: Option<String>,
    },
    #[default]
    Exit,
}

/// The step types, as the "+" menu offers them: (type, label).
pub const STEP_TYPES: [(&str, &str); 9] = [
    ("message", "Message"),
    ("delay", "Delay"),
    ("decision_split", "Decision Split"),
    ("audience_paths", "Audience Paths"),
    ("action_paths", "Action Paths"),
    ("experiment", "Experiment Paths"),
    ("user_update", "User Update"),
    ("context", "Context"),
    ("exit", "Exit"),
];

/// One way out of a step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Branch {
    Next,
    Yes,
    No,
    Path(usize),
    EveryoneElse,
}

/// A place that points at a step: a variant's first step or one way out of a step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Slot {
    Variant(usize),
    Step(String, Branch),
}

impl Slot {
    /// A stable text key, for element ids and list keys.
    pub fn key(&self) -> String {
        match self {
            Slot::Variant(i) => format!("variant-{i}"),
            Slot::Step(id, Branch::Next) => format!("next-{id}"),
            Slot::Step(id, Branch::Yes) => format!("yes-{id}"),
            Slot::Step(id, Branch::No) => format!("no-{id}"),
            Slot::Step(id, Branch::Path(i)) => format!("path-{i}-{id}"),
            Slot::Step(id, Branch::EveryoneElse) => format!("else-{id}"),
        }
    }
}

impl StepKindDraft {
    /// A new step of `type_name` with sensible starting values.
    pub fn new_of(type_name: &str) -> Option<Self> {
        let filter = FilterDraft::And {
            filters: Vec::new(),
        };
        Some(match type_name {
            "message" => Self::Message {
                message: MessageDraft::default(),
                next: None,
            },
            "delay" => Self::Delay {
                mode: "for".into(),
                amount: "1".into(),
                unit: "days".into(),
                at: String::new(),
                weekday: "mon".into(),
                time: "09:00".into(),
                next: None,
            },
            "decision_split" => Self::DecisionSplit {
                segment_ids: Vec::new(),
                filter,
                yes: None,
                no: None,
            },
            "audience_paths" => Self::AudiencePaths {
                paths: vec![AudiencePathDraft {
                    name: "Path 1".into(),
                    filter,
                    next: None,
                }],
                everyone_else: None,
            },
            "action_paths" => Self::ActionPaths {
                window: "1".into(),
                window_unit: "days".into(),
                paths: vec![ActionPathDraft {
                    name: "Path 1".into(),
                    trigger: TriggerDraft::default(),
                    next: None,
                }],
                everyone_else: None,
            },
            "experiment" => Self::Experiment {
                paths: vec![
                    ExperimentPathDraft {
                        name: "Path 1".into(),
                        percent: "50".into(),
                        next: None,
                    },
                    ExperimentPathDraft {
                        name: "Path 2".into(),
                        percent: "50".into(),
                        next: None,
                    },
                ],
                control_percent: "0".into(),
            },
            "user_update" => Self::UserUpdate {
                attributes: vec![(String::new(), String::new())],
                next: None,
            },
            "context" => Self::Context {
                variables: vec![ContextVariableDraft::default()],
                next: None,
            },
            "exit" => Self::Exit,
            _ => return None,
        })
    }

    /// `message`, `delay`, … as in [`STEP_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::Delay { .. } => "delay",
            Self::DecisionSplit { .. } => "decision_split",
            Self::AudiencePaths { .. } => "audience_paths",
            Self::ActionPaths { .. } => "action_paths",
            Self::Experiment { .. } => "experiment",
            Self::UserUpdate { .. } => "user_update",
            Self::Context { .. } => "context",
            Self::Exit => "exit",
        }
    }

    pub fn label(&self) -> &'static str {
        type_label(self.type_name())
    }

    /// The ways out, with their labels, in the order the diagram draws them.
    pub fn branches(&self) -> Vec<(Branch, String)> {
        match self {
            Self::Message { .. }
            | Self::Delay { .. }
            | Self::UserUpdate { .. }
            | Self::Context { .. } => vec![(Branch::Next, String::new())],
            Self::DecisionSplit { .. } => {
                vec![(Branch::Yes, "Yes".into()), (Branch::No, "No".into())]
            }
            Self::AudiencePaths { paths, .. } => paths
                .iter()
                .enumerate()
                .map(|(i, p)| (Branch::Path(i), path_name(&p.name, i)))
                .chain([(Branch::EveryoneElse, "Everyone else".into())])
                .collect(),
            Self::ActionPaths { paths, .. } => paths
                .iter()
                .enumerate()
                .map(|(i, p)| (Branch::Path(i), path_name(&p.name, i)))
                .chain([(Branch::EveryoneElse, "Everyone else (timeout)".into())])
                .collect(),
            Self::Experiment { paths, .. } => paths
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        Branch::Path(i),
                        format!("{} · {}%", path_name(&p.name, i), p.percent.trim()),
                    )
                })
                .collect(),
            Self::Exit => Vec::new(),
        }
    }

    /// Where `branch` points.
    pub fn target(&self, branch: &Branch) -> Option<String> {
        let mut copy = self.clone();
        copy.target_mut(branch).and_then(|t| t.clone())
    }

    fn target_mut(&mut self, branch: &Branch) -> Option<&mut Option<String>> {
        match (self, branch) {
            (
                Self::Message { next, .. }
                | Self::Delay { next, .. }
                | Self::UserUpdate { next, .. }
                | Self::Context { next, .. },
                Branch::Next,
            ) => Some(next),
            (Self::DecisionSplit { yes, .. }, Branch::Yes) => Some(yes),
            (Self::DecisionSplit { no, .. }, Branch::No) => Some(no),
            (Self::AudiencePaths { paths, .. }, Branch::Path(i)) => {
                paths.get_mut(*i).map(|p| &mut p.next)
            }
            (Self::ActionPaths { paths, .. }, Branch::Path(i)) => {
                paths.get_mut(*i).map(|p| &mut p.next)
            }
            (Self::Experiment { paths, .. }, Branch::Path(i)) => {
                paths.get_mut(*i).map(|p| &mut p.next)
            }
            (
                Self::AudiencePaths { everyone_else, .. } | Self::ActionPaths { everyone_else, .. },
                Branch::EveryoneElse,
            ) => Some(everyone_else),
            _ => None,
        }
    }

    /// Every step this one points at.
    pub fn targets(&self) -> Vec<String> {
        self.branches()
            .iter()
            .filter_map(|(b, _)| self.target(b))
            .collect()
    }

    /// `Some(next)` for steps with a single way on (Message, Delay, User Update, Context).
    fn single_next(&self) -> Option<Option<String>> {
        match self {
            Self::Message { next, .. }
            | Self::Delay { next, .. }
            | Self::UserUpdate { next, .. }
            | Self::Context { next, .. } => Some(next.clone()),
            _ => None,
        }
    }
}

fn path_name(name: &str, index: usize) -> String {
    if name.trim().is_empty() {
        format!("Path {}", index + 1)
    } else {
        name.trim().to_string()
    }
}

/// The label of a step type.
pub fn type_label(type_name: &str) -> &'static str {
    STEP_TYPES
        .iter()
        .find(|(t, _)| *t == type_name)
        .map(|(_, l)| *l)
        .unwrap_or("Step")
}

/// One step of the flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepDraft {
    /// 1–36 characters of `a-z`, `0-9`, `-`, `_`; the builder makes 8 hex characters.
    pub id: String,
    pub name: String,
    pub kind: StepKindDraft,
}

impl StepDraft {
    /// The name, or the type when it has none.
    pub fn title(&self) -> String {
        if self.name.trim().is_empty() {
            self.kind.label().to_string()
        } else {
            self.name.trim().to_string()
        }
    }
}

/// A Canvas as the builder edits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasDraft {
    pub name: String,
    pub description: String,
    /// Comma-separated.
    pub tags: String,
    pub entry: EntryDraft,
    /// The entry audience: users in every one of these segments (none: everyone).
    pub segment_ids: Vec<String>,
    /// An entry audience filter set over the management API; kept as it is.
    pub audience_filter: Option<serde_json::Value>,
    pub exit: ExitDraft,
    pub settings: CanvasSettingsDraft,
    pub variants: Vec<PathVariantDraft>,
    pub control_percent: String,
    /// Conversion events (at most 4); the first is primary.
    pub conversions: Vec<ConversionDraft>,
    pub steps: Vec<StepDraft>,
}

impl Default for CanvasDraft {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            tags: String::new(),
            entry: EntryDraft::default(),
            segment_ids: Vec::new(),
            audience_filter: None,
            exit: ExitDraft::default(),
            settings: CanvasSettingsDraft::default(),
            variants: vec![PathVariantDraft {
                id: None,
                name: "Variant 1".into(),
                percent: "100".into(),
                first_step: None,
            }],
            control_percent: "0".into(),
            conversions: Vec::new(),
            steps: Vec::new(),
        }
    }
}

impl CanvasDraft {
    pub fn step(&self, id: &str) -> Option<&StepDraft> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Where `slot` points.
    pub fn target(&self, slot: &Slot) -> Option<String> {
        match slot {
            Slot::Variant(i) => self.variants.get(*i).and_then(|v| v.first_step.clone()),
            Slot::Step(id, branch) => self.step(id).and_then(|s| s.kind.target(branch)),
        }
    }

    /// Points `slot` at `target`.
    pub fn set_target(&mut self, slot: &Slot, target: Option<String>) {
        match slot {
            Slot::Variant(i) => {
                if let Some(v) = self.variants.get_mut(*i) {
                    v.first_step = target;
                }
            }
            Slot::Step(id, branch) => {
                if let Some(pointer) = self
                    .steps
                    .iter_mut()
                    .find(|s| s.id == *id)
                    .and_then(|s| s.kind.target_mut(branch))
                {
                    *pointer = target;
                }
            }
        }
    }

    /// Every slot, with its target.
    fn slots(&self) -> Vec<(Slot, Option<String>)> {
        let variants =
            (0..self.variants.len()).map(|i| (Slot::Variant(i), self.target(&Slot::Variant(i))));
        let steps = self.steps.iter().flat_map(|s| {
            s.kind
                .branches()
                .into_iter()
                .map(|(b, _)| {
                    let target = s.kind.target(&b);
                    (Slot::Step(s.id.clone(), b), target)
                })
                .collect::<Vec<_>>()
        });
        variants.chain(steps).collect()
    }

    /// The ids of the steps some variant leads to.
    pub fn reachable(&self) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = self
            .variants
            .iter()
            .filter_map(|v| v.first_step.clone())
            .collect();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(step) = self.step(&id) {
                todo.extend(step.kind.targets());
            }
        }
        seen
    }

    /// Inserts a new step of `type_name` with id `id` at `slot`: the slot's old target becomes the
    /// new step's first way on (Yes, the first path). An Exit only fits at the end of a branch.
    /// Returns whether the step was inserted.
    pub fn insert_step(&mut self, slot: &Slot, type_name: &str, id: String) -> bool {
        let Some(mut kind) = StepKindDraft::new_of(type_name) else {
            return false;
        };
        if self.step(&id).is_some() {
            return false;
        }
        let old = self.target(slot);
        match kind.branches().first() {
            Some((first, _)) => {
                if let Some(pointer) = kind.target_mut(&first.clone()) {
                    *pointer = old;
                }
            }
            None if old.is_some() => return false,
            None => {}
        }
        self.steps.push(StepDraft {
            id: id.clone(),
            name: String::new(),
            kind,
        });
        self.set_target(slot, Some(id));
        true
    }

    /// Deletes a step. A step with a single way on hands its next step to whatever pointed at it;
    /// otherwise those branches end there, and the steps only it led to go with it.
    pub fn delete_step(&mut self, id: &str) {
        let Some(step) = self.step(id).cloned() else {
            return;
        };
        let before = self.reachable();
        let replacement = step.kind.single_next().flatten();
        for (slot, target) in self.slots() {
            if target.as_deref() == Some(id) {
                self.set_target(&slot, replacement.clone());
            }
        }
        self.steps.retain(|s| s.id != id);
        let after = self.reachable();
        self.steps
            .retain(|s| !before.contains(&s.id) || after.contains(&s.id));
    }
}

/// A problem that blocks launch, tied to a step when it is about one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemView {
    pub step_id: Option<String>,
    pub field: String,
    pub message: String,
}

/// A field error of the helpers shared with the campaign builder, as a problem of no step.
impl From<FieldError> for ProblemView {
    fn from(error: FieldError) -> Self {
        Self {
            step_id: None,
            field: error.field,
            message: error.message,
        }
    }
}

/// What the builder opens with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasDetails {
    /// `None` for a Canvas not saved yet.
    pub id: Option<String>,
    pub version: Option<i32>,
    pub live_version: Option<i32>,
    pub status: String,
    pub draft: CanvasDraft,
    pub can_build: bool,
    pub launched: Option<String>,
    pub updated: Option<String>,
    pub segments: Vec<SegmentOption>,
    /// Custom event names seen in the workspace.
    pub events: Vec<String>,
    /// Product ids seen in purchases.
    pub products: Vec<String>,
    /// Herald's public base URL, for the API example.
    pub base_url: String,
    /// The last 30 days, for launched Canvases.
    pub report: Option<CanvasReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCanvas {
    pub id: String,
    pub version: i32,
    pub live_version: Option<i32>,
    pub status: String,
    /// The variants' ids, in order.
    pub variant_ids: Vec<String>,
}

/// The result of saving (and maybe launching): what was saved, and what was rejected. A launch
/// refused after a successful save has both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasSaveOutcome {
    pub saved: Option<SavedCanvas>,
    pub error: Option<FieldError>,
}

/// A Canvas's name and state, for the report page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasSummary {
    pub id: String,
    pub name: String,
    pub entry: String,
    pub status: String,
    pub launched: Option<String>,
    pub live_version: Option<i32>,
    pub can_build: bool,
}

/// One step's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatsView {
    pub step_id: String,
    pub name: String,
    /// The step type (`message`, …), empty for a step no longer in the draft.
    pub kind: String,
    pub entered: u64,
    pub sent: u64,
    pub delivered: u64,
    pub errors: u64,
    pub aborted: u64,
    pub exited: u64,
    /// Journeys that performed the primary conversion event after entering the step.
    pub converted: u64,
    pub branches: Vec<(String, u64)>,
}

/// One bucket of the report chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasSeriesPoint {
    pub label: String,
    pub entries: u64,
    pub sends: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasReport {
    pub entries: u64,
    pub in_progress: u64,
    pub finished: u64,
    pub exited: u64,
    pub sends: u64,
    pub delivered: u64,
    pub errors: u64,
    /// Journeys entered in the period that performed the primary conversion event in its window.
    pub conversions: u64,
    /// The primary conversion event as people read it (“upgrade within 3 days”); `None` when the
    /// Canvas has none, and then no conversion figure is shown.
    pub primary_conversion: Option<String>,
    pub series: Vec<CanvasSeriesPoint>,
    pub series_title: String,
    /// In the order of the flow.
    pub steps: Vec<StepStatsView>,
}

impl CanvasReport {
    pub fn step(&self, id: &str) -> Option<&StepStatsView> {
        self.steps.iter().find(|s| s.step_id == id)
    }
}

/// `part` of `whole` as a percentage with one decimal (`25.0%`), or `–` when `whole` is 0.
pub fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// A conversion event as people read it: “performs “upgrade” within 3 days”.
pub fn describe_conversion(conversion: &ConversionDraft) -> String {
    let what = match (
        conversion.trigger.kind.as_str(),
        conversion.trigger.name.trim(),
    ) {
        ("purchase", "") => "makes any purchase".to_string(),
        ("purchase", product) => format!("buys “{product}”"),
        (_, "") => "performs a custom event (not named yet)".to_string(),
        (_, name) => format!("performs “{name}”"),
    };
    let amount = conversion.window.trim();
    let unit = if amount == "1" {
        conversion.window_unit.trim_end_matches('s')
    } else {
        conversion.window_unit.as_str()
    };
    format!("{what} within {amount} {unit}")
}

/// One step of a user's journeys, for the profile page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyRow {
    pub canvas_id: String,
    pub canvas_name: String,
    pub version: i32,
    pub step: String,
    pub what: String,
    pub at: String,
}

/// How a journey step event reads on the profile page.
pub fn journey_event_label(kind: &str, branch: Option<&str>) -> String {
    match (kind, branch) {
        ("entered", Some(variant)) if !variant.is_empty() => format!("Entered ({variant})"),
        ("entered", _) => "Entered".into(),
        ("sent", _) => "Message sent".into(),
        ("aborted", _) => "Message aborted".into(),
        ("exited", _) => "Exited the Canvas".into(),
        ("finished", _) => "Finished the journey".into(),
        ("converted", _) => "Converted".into(),
        ("branch", Some(b)) => format!("Took the path “{b}”"),
        (other, Some(b)) => format!("{other} ({b})"),
        (other, None) => other.to_string(),
    }
}

/// Whether a branch name from the analytics is the diagram's branch `label` (names are compared
/// loosely: `yes`/`Yes`, `everyone_else`/`Everyone else`).
pub fn same_branch(stat: &str, label: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let label = label.split(" · ").next().unwrap_or(label);
    let label = label.trim_end_matches(" (timeout)");
    norm(stat) == norm(label)
}

// ---------------------------------------------------------------------------------------------
// Server side: drafts to domain values and back.

#[cfg(feature = "ssr")]
mod convert {
    use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
    use domain::campaign::{AudienceSpec, Recurrence, Schedule, Trigger};
    use domain::canvas::{
        ActionPath, AudiencePath, Canvas, CanvasInput, CanvasSettings, CanvasVariant,
        ContextVariable, Definition, DelaySpec, Entry, EntryLimit, ExitCriteria, ExperimentPath,
        LimitPeriod, Step, StepId, StepKind,
    };
    use domain::segment::Filter;
    use domain::{DomainError, SegmentId, VariantId};
    use serde_json::{Map, Value as JsonValue};

    use super::*;
    use crate::campaigns::convert::{
        self as shared, seconds_per, split_seconds, trigger_draft, value_text,
    };

    type Checked<T> = Result<T, ProblemView>;

    // The parsers shared with the campaign builder, their errors as problems.
    fn number<T: std::str::FromStr>(text: &str, field: String, what: &str) -> Checked<T> {
        Ok(shared::number(text, field, what)?)
    }

    fn optional<T: std::str::FromStr>(text: &str, field: &str, what: &str) -> Checked<Option<T>> {
        Ok(shared::optional(text, field, what)?)
    }

    fn date(text: &str, field: &str) -> Checked<NaiveDate> {
        Ok(shared::date(text, field)?)
    }

    fn time(text: &str, field: &str) -> Checked<NaiveTime> {
        Ok(shared::time(text, field)?)
    }

    fn instant(text: &str, field: &str) -> Checked<Option<DateTime<Utc>>> {
        Ok(shared::instant(text, field)?)
    }

    fn trigger(draft: &TriggerDraft, field: &str) -> Checked<Trigger> {
        Ok(shared::trigger(draft, field)?)
    }

    fn bad(field: impl Into<String>, message: impl Into<String>) -> ProblemView {
        ProblemView {
            step_id: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A domain rejection as a field error; other failures stay errors.
    pub fn field_error(error: DomainError) -> Result<FieldError, DomainError> {
        match error {
            DomainError::Invalid { field, message } | DomainError::Conflict { field, message } => {
                Ok(FieldError {
                    field: field.into(),
                    message,
                })
            }
            other => Err(other),
        }
    }

    pub fn as_field_error(problem: ProblemView) -> FieldError {
        FieldError {
            field: problem.field,
            message: problem.message,
        }
    }

    pub fn problem(problem: domain::canvas::Problem) -> ProblemView {
        ProblemView {
            step_id: problem.step_id.map(|s| s.0),
            field: problem.field,
            message: problem.message,
        }
    }

    fn instant_text(at: &Option<DateTime<Utc>>) -> String {
        at.map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default()
    }

    const WEEKDAYS: [(&str, Weekday); 7] = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];

    fn weekday_name(day: Weekday) -> String {
        WEEKDAYS
            .iter()
            .find(|(_, d)| *d == day)
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| "mon".into())
    }

    /// Numbers, `true`/`false`, `null` and JSON objects or arrays typed; anything else text.
    fn typed(text: &str) -> JsonValue {
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i64>() {
            return serde_json::json!(number);
        }
        if let Ok(number) = trimmed.parse::<f64>()
            && number.is_finite()
        {
            return serde_json::json!(number);
        }
        match trimmed {
            "true" => return JsonValue::Bool(true),
            "false" => return JsonValue::Bool(false),
            "null" => return JsonValue::Null,
            _ => {}
        }
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(json) = serde_json::from_str::<JsonValue>(trimmed)
        {
            return json;
        }
        JsonValue::String(text.to_string())
    }

    fn schedule(draft: &EntryDraft) -> Checked<Schedule> {
        if draft.schedule == "at_launch" {
            return Ok(Schedule::AtLaunch);
        }
        let every = || -> Checked<u16> {
            number(
                &draft.every,
                "entry.schedule.recurrence.every".into(),
                "a whole number of at least 1",
            )
        };
        let recurrence = match draft.schedule.as_str() {
            "once" => Recurrence::Once,
            "daily" => Recurrence::Daily { every: every()? },
            "weekly" => Recurrence::Weekly {
                every: every()?,
                days: WEEKDAYS
                    .iter()
                    .filter(|(name, _)| draft.days.iter().any(|d| d == name))
                    .map(|(_, day)| *day)
                    .collect(),
            },
            "monthly" => Recurrence::Monthly {
                every: every()?,
                day: number(
                    &draft.month_day,
                    "entry.schedule.recurrence.day".into(),
                    "a day of the month from 1 to 31",
                )?,
            },
            _ => return Err(bad("entry.schedule", "choose when users enter")),
        };
        let ends_on = if draft.ends_on.trim().is_empty() {
            None
        } else {
            Some(date(&draft.ends_on, "entry.schedule.ends_on")?)
        };
        Ok(Schedule::At {
            starts_on: date(&draft.starts_on, "entry.schedule.starts_on")?,
            time: time(&draft.time, "entry.schedule.time")?,
            recurrence,
            ends_on,
            time_zone: draft.time_zone.trim().to_string(),
            in_local_time: draft.in_local_time,
        })
    }

    fn entry(draft: &EntryDraft) -> Checked<Entry> {
        match draft.kind.as_str() {
            "api" => Ok(Entry::Api),
            "scheduled" => Ok(Entry::Scheduled {
                schedule: schedule(draft)?,
            }),
            "action" => Ok(Entry::Action {
                trigger: trigger(&draft.trigger, "entry.trigger")?,
                starts_at: instant(&draft.starts_at, "entry.starts_at")?,
                ends_at: instant(&draft.ends_at, "entry.ends_at")?,
            }),
            _ => Err(bad("entry", "choose how users enter")),
        }
    }

    fn entry_draft(entry: &Entry) -> EntryDraft {
        let mut draft = EntryDraft {
            kind: entry.type_name().into(),
            ..EntryDraft::default()
        };
        match entry {
            Entry::Api => {}
            Entry::Scheduled { schedule } => match schedule {
                Schedule::AtLaunch => draft.schedule = "at_launch".into(),
                Schedule::At {
                    starts_on,
                    time,
                    recurrence,
                    ends_on,
                    time_zone,
                    in_local_time,
                } => {
                    draft.starts_on = starts_on.format("%Y-%m-%d").to_string();
                    draft.time = time.format("%H:%M").to_string();
                    draft.ends_on = ends_on
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_default();
                    draft.time_zone = time_zone.clone();
                    draft.in_local_time = *in_local_time;
                    match recurrence {
                        Recurrence::Once => draft.schedule = "once".into(),
                        Recurrence::Daily { every } => {
                            draft.schedule = "daily".into();
                            draft.every = every.to_string();
                        }
                        Recurrence::Weekly { every, days } => {
                            draft.schedule = "weekly".into();
                            draft.every = every.to_string();
                            draft.days = days.iter().map(|d| weekday_name(*d)).collect();
                        }
                        Recurrence::Monthly { every, day } => {
                            draft.schedule = "monthly".into();
                            draft.every = every.to_string();
                            draft.month_day = day.to_string();
                        }
                    }
                }
            },
            Entry::Action {
                trigger,
                starts_at,
                ends_at,
            } => {
                draft.trigger = trigger_draft(trigger);
                draft.starts_at = instant_text(starts_at);
                draft.ends_at = instant_text(ends_at);
            }
        }
        draft
    }

    fn segment_ids(ids: &[String], field: &str) -> Checked<Vec<SegmentId>> {
        ids.iter()
            .map(|id| {
                SegmentId::parse(id).map_err(|_| bad(field, "one of the segments does not exist"))
            })
            .collect()
    }

    fn kept_filter(value: &Option<JsonValue>, field: &str) -> Checked<Option<Filter>> {
        value
            .as_ref()
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| bad(field, e.to_string())))
            .transpose()
    }

    fn filter(draft: &FilterDraft, field: &str) -> Checked<Filter> {
        let json = serde_json::to_value(draft).map_err(|e| bad(field, e.to_string()))?;
        serde_json::from_value(json).map_err(|e| bad(field, e.to_string()))
    }

    /// An empty "all of" group means no filter.
    fn optional_filter(draft: &FilterDraft, field: &str) -> Checked<Option<Filter>> {
        match draft {
            FilterDraft::And { filters } if filters.is_empty() => Ok(None),
            other => filter(other, field).map(Some),
        }
    }

    fn filter_draft(filter: &Filter) -> FilterDraft {
        serde_json::to_value(filter)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    fn step_id(text: &Option<String>) -> Option<StepId> {
        text.as_ref()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| StepId(t.to_string()))
    }

    fn step_text(id: &Option<StepId>) -> Option<String> {
        id.as_ref().map(|s| s.0.clone())
    }

    fn step(draft: &StepDraft, index: usize) -> Checked<Step> {
        let at = |field: &str| format!("steps[{index}].{field}");
        let tie = |problem: ProblemView| ProblemView {
            step_id: Some(draft.id.clone()),
            ..problem
        };
        let kind = match &draft.kind {
            StepKindDraft::Message { message, next } => StepKind::Message {
                message: crate::webhooks::to_message(message)
                    .map_err(|e| match field_error(e) {
                        Ok(f) => bad(at(&format!("message.{}", f.field)), f.message),
                        Err(e) => bad(at("message"), e.to_string()),
                    })
                    .map_err(tie)?,
                next: step_id(next),
            },
            StepKindDraft::Delay {
                mode,
                amount,
                unit,
                at: until,
                weekday,
                time: clock,
                next,
            } => {
                let delay = match mode.as_str() {
                    "for" => {
                        let amount: u64 =
                            number(amount, at("delay.seconds"), "a whole number").map_err(tie)?;
                        DelaySpec::For {
                            seconds: amount.saturating_mul(seconds_per(unit)),
                        }
                    }
                    "until" => DelaySpec::Until {
                        at: instant(until, &at("delay.at"))
                            .map_err(tie)?
                            .ok_or_else(|| tie(bad(at("delay.at"), "choose a date and time")))?,
                    },
                    "weekday" => DelaySpec::Weekday {
                        weekday: WEEKDAYS
                            .iter()
                            .find(|(n, _)| n == weekday)
                            .map(|(_, d)| *d)
                            .ok_or_else(|| {
                                tie(bad(at("delay.weekday"), "choose a day of the week"))
                            })?,
                        time: time(clock, &at("delay.time")).map_err(tie)?,
                    },
                    _ => return Err(tie(bad(at("delay"), "choose how long users wait"))),
                };
                StepKind::Delay {
                    delay,
                    next: step_id(next),
                }
            }
            StepKindDraft::DecisionSplit {
                segment_ids: ids,
                filter: f,
                yes,
                no,
            } => StepKind::DecisionSplit {
                segment_ids: segment_ids(ids, &at("segment_ids")).map_err(tie)?,
                filter: optional_filter(f, &at("filter")).map_err(tie)?,
                yes: step_id(yes),
                no: step_id(no),
            },
            StepKindDraft::AudiencePaths {
                paths,
                everyone_else,
            } => StepKind::AudiencePaths {
                paths: paths
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        Ok(AudiencePath {
                            name: p.name.trim().to_string(),
                            filter: filter(&p.filter, &at(&format!("paths[{i}].filter")))?,
                            next: step_id(&p.next),
                        })
                    })
                    .collect::<Checked<_>>()
                    .map_err(tie)?,
                everyone_else: step_id(everyone_else),
            },
            StepKindDraft::ActionPaths {
                window,
                window_unit,
                paths,
                everyone_else,
            } => {
                let amount: u64 =
                    number(window, at("window_seconds"), "a whole number").map_err(tie)?;
                StepKind::ActionPaths {
                    window_seconds: amount.saturating_mul(seconds_per(window_unit)),
                    paths: paths
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            Ok(ActionPath {
                                name: p.name.trim().to_string(),
                                trigger: trigger(&p.trigger, &at(&format!("paths[{i}].trigger")))?,
                                next: step_id(&p.next),
                            })
                        })
                        .collect::<Checked<_>>()
                        .map_err(tie)?,
                    everyone_else: step_id(everyone_else),
                }
            }
            StepKindDraft::Experiment {
                paths,
                control_percent,
            } => StepKind::Experiment {
                paths: paths
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        Ok(ExperimentPath {
                            name: p.name.trim().to_string(),
                            percent: number(
                                &p.percent,
                                at(&format!("paths[{i}].percent")),
                                "a whole number from 0 to 100",
                            )?,
                            next: step_id(&p.next),
                        })
                    })
                    .collect::<Checked<_>>()
                    .map_err(tie)?,
                control_percent: number(
                    control_percent,
                    at("control_percent"),
                    "a whole number from 0 to 100",
                )
                .map_err(tie)?,
            },
            StepKindDraft::UserUpdate { attributes, next } => {
                let mut map = Map::new();
                for (key, value) in attributes {
                    if key.trim().is_empty() && value.trim().is_empty() {
                        continue;
                    }
                    if key.trim().is_empty() {
                        return Err(tie(bad(at("attributes"), "name every attribute you set")));
                    }
                    map.insert(key.trim().to_string(), typed(value));
                }
                StepKind::UserUpdate {
                    attributes: map,
                    next: step_id(next),
                }
            }
            StepKindDraft::Context { variables, next } => StepKind::Context {
                variables: variables
                    .iter()
                    .filter(|v| !v.name.trim().is_empty() || !v.value.trim().is_empty())
                    .map(|v| ContextVariable {
                        name: v.name.trim().to_string(),
                        value_type: v.value_type.clone(),
                        value: v.value.clone(),
                    })
                    .collect(),
                next: step_id(next),
            },
            StepKindDraft::Exit => StepKind::Exit,
        };
        Ok(Step {
            id: StepId(draft.id.trim().to_string()),
            name: draft.name.trim().to_string(),
            kind,
        })
    }

    fn step_draft(step: &Step) -> StepDraft {
        let kind = match &step.kind {
            StepKind::Message { message, next } => StepKindDraft::Message {
                message: crate::webhooks::to_draft(message),
                next: step_text(next),
            },
            StepKind::Delay { delay, next } => {
                let mut draft = StepKindDraft::new_of("delay").unwrap_or_default();
                if let StepKindDraft::Delay {
                    mode,
                    amount,
                    unit,
                    at,
                    weekday,
                    time,
                    next: pointer,
                } = &mut draft
                {
                    match delay {
                        DelaySpec::For { seconds } => {
                            *mode = "for".into();
                            (*amount, *unit) = split_seconds(
                                *seconds,
                                &["weeks", "days", "hours", "minutes", "seconds"],
                            );
                        }
                        DelaySpec::Until { at: until } => {
                            *mode = "until".into();
                            *at = instant_text(&Some(*until));
                        }
                        DelaySpec::Weekday {
                            weekday: day,
                            time: clock,
                        } => {
                            *mode = "weekday".into();
                            *weekday = weekday_name(*day);
                            *time = clock.format("%H:%M").to_string();
                        }
                    }
                    *pointer = step_text(next);
                }
                draft
            }
            StepKind::DecisionSplit {
                segment_ids,
                filter,
                yes,
                no,
            } => StepKindDraft::DecisionSplit {
                segment_ids: segment_ids.iter().map(|s| s.to_string()).collect(),
                filter: filter.as_ref().map(filter_draft).unwrap_or_default(),
                yes: step_text(yes),
                no: step_text(no),
            },
            StepKind::AudiencePaths {
                paths,
                everyone_else,
            } => StepKindDraft::AudiencePaths {
                paths: paths
                    .iter()
                    .map(|p| AudiencePathDraft {
                        name: p.name.clone(),
                        filter: filter_draft(&p.filter),
                        next: step_text(&p.next),
                    })
                    .collect(),
                everyone_else: step_text(everyone_else),
            },
            StepKind::ActionPaths {
                window_seconds,
                paths,
                everyone_else,
            } => {
                let (window, window_unit) =
                    split_seconds(*window_seconds, &["days", "hours", "minutes", "seconds"]);
                StepKindDraft::ActionPaths {
                    window,
                    window_unit,
                    paths: paths
                        .iter()
                        .map(|p| ActionPathDraft {
                            name: p.name.clone(),
                            trigger: trigger_draft(&p.trigger),
                            next: step_text(&p.next),
                        })
                        .collect(),
                    everyone_else: step_text(everyone_else),
                }
            }
            StepKind::Experiment {
                paths,
                control_percent,
            } => StepKindDraft::Experiment {
                paths: paths
                    .iter()
                    .map(|p| ExperimentPathDraft {
                        name: p.name.clone(),
                        percent: p.percent.to_string(),
                        next: step_text(&p.next),
                    })
                    .collect(),
                control_percent: control_percent.to_string(),
            },
            StepKind::UserUpdate { attributes, next } => StepKindDraft::UserUpdate {
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect(),
                next: step_text(next),
            },
            StepKind::Context { variables, next } => StepKindDraft::Context {
                variables: variables
                    .iter()
                    .map(|v| ContextVariableDraft {
                        name: v.name.clone(),
                        value_type: v.value_type.clone(),
                        value: v.value.clone(),
                    })
                    .collect(),
                next: step_text(next),
            },
            StepKind::Exit => StepKindDraft::Exit,
        };
        StepDraft {
            id: step.id.0.clone(),
            name: step.name.clone(),
            kind,
        }
    }

    fn settings(draft: &CanvasSettingsDraft) -> Checked<CanvasSettings> {
        let reentry_after_seconds = if draft.reentry {
            let amount: u64 = number(
                &draft.reentry_after,
                "settings.reentry_after_seconds".into(),
                "a whole number (0: even while still inside)",
            )?;
            Some(amount.saturating_mul(seconds_per(&draft.reentry_unit)))
        } else {
            None
        };
        let entry_limit = optional::<u64>(
            &draft.entry_limit,
            "settings.entry_limit.max",
            "a whole number, or empty for no limit",
        )?
        .map(|max| EntryLimit {
            max,
            per: if draft.entry_limit_per == "lifetime" {
                LimitPeriod::Lifetime
            } else {
                LimitPeriod::Day
            },
        });
        Ok(CanvasSettings {
            rate_per_minute: optional(
                &draft.rate_per_minute,
                "settings.rate_per_minute",
                "a whole number of messages per minute, or empty for no limit",
            )?,
            reentry_after_seconds,
            entry_limit,
            time_zone: Some(draft.time_zone.trim().to_string()).filter(|z| !z.is_empty()),
        })
    }

    fn settings_draft(settings: &CanvasSettings) -> CanvasSettingsDraft {
        let mut draft = CanvasSettingsDraft {
            rate_per_minute: settings
                .rate_per_minute
                .map(|r| r.to_string())
                .unwrap_or_default(),
            time_zone: settings.time_zone.clone().unwrap_or_default(),
            ..CanvasSettingsDraft::default()
        };
        if let Some(seconds) = settings.reentry_after_seconds {
            draft.reentry = true;
            (draft.reentry_after, draft.reentry_unit) =
                split_seconds(seconds, &["days", "hours", "minutes"]);
        }
        if let Some(limit) = &settings.entry_limit {
            draft.entry_limit = limit.max.to_string();
            draft.entry_limit_per = match limit.per {
                LimitPeriod::Day => "day".into(),
                LimitPeriod::Lifetime => "lifetime".into(),
            };
        }
        draft
    }

    /// The builder's draft as a definition; the first value that cannot be read is named.
    pub fn to_definition(draft: &CanvasDraft) -> Checked<Definition> {
        let variants = draft
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = match v.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
                    Some(id) => Some(VariantId::parse(id).map_err(|_| {
                        bad(format!("variants[{i}]"), "this variant's id is not valid")
                    })?),
                    None => None,
                };
                Ok(CanvasVariant {
                    id,
                    name: v.name.trim().to_string(),
                    percent: number(
                        &v.percent,
                        format!("variants[{i}].percent"),
                        "a whole number from 0 to 100",
                    )?,
                    first_step: step_id(&v.first_step),
                })
            })
            .collect::<Checked<Vec<_>>>()?;
        Ok(Definition {
            entry: entry(&draft.entry)?,
            audience: AudienceSpec {
                segment_ids: segment_ids(&draft.segment_ids, "audience.segment_ids")?,
                filter: kept_filter(&draft.audience_filter, "audience.filter")?,
            },
            exit: ExitCriteria {
                events: draft
                    .exit
                    .events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| trigger(e, &format!("exit.events[{i}]")))
                    .collect::<Checked<_>>()?,
                segment_ids: segment_ids(&draft.exit.segment_ids, "exit.segment_ids")?,
                filter: kept_filter(&draft.exit.filter, "exit.filter")?,
            },
            settings: settings(&draft.settings)?,
            variants,
            control_percent: number(
                &draft.control_percent,
                "control_percent".into(),
                "a whole number from 0 to 100",
            )?,
            conversions: shared::conversion_inputs(&draft.conversions)?,
            steps: draft
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| step(s, i))
                .collect::<Checked<_>>()?,
        })
    }

    pub fn to_input(draft: &CanvasDraft) -> Checked<CanvasInput> {
        Ok(CanvasInput {
            name: draft.name.trim().to_string(),
            description: draft.description.trim().to_string(),
            tags: draft
                .tags
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            definition: to_definition(draft)?,
        })
    }

    pub fn to_draft(canvas: &Canvas) -> CanvasDraft {
        let d = &canvas.draft;
        CanvasDraft {
            name: canvas.name.clone(),
            description: canvas.description.clone(),
            tags: canvas.tags.join(", "),
            entry: entry_draft(&d.entry),
            segment_ids: d
                .audience
                .segment_ids
                .iter()
                .map(|s| s.to_string())
                .collect(),
            audience_filter: d
                .audience
                .filter
                .as_ref()
                .and_then(|f| serde_json::to_value(f).ok()),
            exit: ExitDraft {
                events: d.exit.events.iter().map(trigger_draft).collect(),
                segment_ids: d.exit.segment_ids.iter().map(|s| s.to_string()).collect(),
                filter: d
                    .exit
                    .filter
                    .as_ref()
                    .and_then(|f| serde_json::to_value(f).ok()),
            },
            settings: settings_draft(&d.settings),
            variants: d
                .variants
                .iter()
                .map(|v| PathVariantDraft {
                    id: v.id.as_ref().map(|id| id.to_string()),
                    name: v.name.clone(),
                    percent: v.percent.to_string(),
                    first_step: step_text(&v.first_step),
                })
                .collect(),
            control_percent: d.control_percent.to_string(),
            conversions: shared::conversion_drafts(&d.conversions, &["days", "hours", "minutes"]),
            steps: d.steps.iter().map(step_draft).collect(),
        }
    }

    pub fn saved(canvas: &Canvas) -> SavedCanvas {
        SavedCanvas {
            id: canvas.id.to_string(),
            version: canvas.version,
            live_version: canvas.live_version,
            status: canvas.status.as_str().into(),
            variant_ids: canvas
                .draft
                .variants
                .iter()
                .map(|v| v.id.as_ref().map(|id| id.to_string()).unwrap_or_default())
                .collect(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::campaigns::PropertyFilterDraft;

        fn flow() -> CanvasDraft {
            let mut draft = CanvasDraft {
                name: "Onboarding".into(),
                tags: "welcome, emea".into(),
                ..CanvasDraft::default()
            };
            draft.entry.kind = "action".into();
            draft.entry.trigger.name = "signup".into();
            assert!(draft.insert_step(&Slot::Variant(0), "message", "aaaa0001".into()));
            assert!(draft.insert_step(
                &Slot::Step("aaaa0001".into(), Branch::Next),
                "delay",
                "aaaa0002".into()
            ));
            assert!(draft.insert_step(
                &Slot::Step("aaaa0002".into(), Branch::Next),
                "decision_split",
                "aaaa0003".into()
            ));
            assert!(draft.insert_step(
                &Slot::Step("aaaa0003".into(), Branch::Yes),
                "message",
                "aaaa0004".into()
            ));
            assert!(draft.insert_step(
                &Slot::Step("aaaa0003".into(), Branch::No),
                "user_update",
                "aaaa0005".into()
            ));
            for step in &mut draft.steps {
                match &mut step.kind {
                    StepKindDraft::Delay { amount, unit, .. } => {
                        *amount = "90".into();
                        *unit = "minutes".into();
                    }
                    StepKindDraft::DecisionSplit { filter, .. } => {
                        *filter = FilterDraft::And {
                            filters: vec![FilterDraft::Attribute {
                                name: "plan".into(),
                                custom: true,
                                comparison: "equals".into(),
                                value: "pro".into(),
                            }],
                        }
                    }
                    StepKindDraft::UserUpdate { attributes, .. } => {
                        *attributes = vec![
                            ("visits".into(), "3".into()),
                            ("tier".into(), "gold".into()),
                        ];
                    }
                    _ => {}
                }
            }
            draft.conversions = vec![
                ConversionDraft {
                    trigger: TriggerDraft {
                        kind: "custom_event".into(),
                        name: "upgrade".into(),
                        filters: Vec::new(),
                    },
                    window: "3".into(),
                    window_unit: "days".into(),
                },
                ConversionDraft {
                    trigger: TriggerDraft {
                        kind: "purchase".into(),
                        name: String::new(),
                        filters: Vec::new(),
                    },
                    window: "90".into(),
                    window_unit: "minutes".into(),
                },
            ];
            draft
        }

        #[test]
        fn a_flow_survives_the_trip_to_the_store_and_back() {
            let draft = flow();
            let input = to_input(&draft).expect("valid draft");
            assert_eq!(input.tags, vec!["welcome", "emea"]);
            let delay = &input.definition.steps[1];
            assert_eq!(
                delay.kind,
                StepKind::Delay {
                    delay: DelaySpec::For { seconds: 5400 },
                    next: Some(StepId("aaaa0003".into())),
                }
            );
            let json = serde_json::to_value(&input.definition).expect("serializes");
            assert_eq!(json["steps"][2]["type"], "decision_split");
            assert_eq!(json["steps"][2]["filter"]["filters"][0]["value"], "pro");
            assert_eq!(json["steps"][4]["attributes"]["visits"], 3);
            let canvas = Canvas {
                id: domain::CanvasId::generate(),
                name: input.name,
                description: input.description,
                tags: input.tags,
                status: domain::canvas::CanvasStatus::Draft,
                draft: input.definition,
                live_version: None,
                version: 1,
                created_at: Utc::now(),
                updated_at: Utc::now(),
                launched_at: None,
                stopped_at: None,
                archived_at: None,
            };
            let back = to_draft(&canvas);
            // Attributes come back in the order a serde_json Map keeps: by name, unless the
            // workspace turns on serde_json's `preserve_order` (then as typed).
            let mut expected = draft.steps.clone();
            if let StepKindDraft::UserUpdate { attributes, .. } = &mut expected[4].kind {
                let kept: Map<String, JsonValue> = attributes
                    .iter()
                    .map(|(name, value)| (name.clone(), JsonValue::String(value.clone())))
                    .collect();
                *attributes = kept
                    .into_iter()
                    .map(|(name, value)| (name, value_text(&value)))
                    .collect();
            }
            assert_eq!(back.steps, expected);
            assert_eq!(back.entry, draft.entry);
            assert_eq!(back.variants, draft.variants);
            assert_eq!(back.conversions, draft.conversions);
        }

        #[test]
        fn conversion_windows_are_read_in_their_unit_and_named_when_unreadable() {
            let draft = flow();
            let definition = to_definition(&draft).expect("valid draft");
            assert_eq!(definition.conversions[0].window_seconds, 3 * 86_400);
            assert_eq!(
                definition.conversions[1].trigger,
                Trigger::Purchase { product_id: None }
            );
            assert_eq!(definition.conversions[1].window_seconds, 90 * 60);
            let mut draft = flow();
            draft.conversions[1].window = "soon".into();
            let problem = to_input(&draft).unwrap_err();
            assert_eq!(problem.field, "conversions[1].window_seconds");
            assert_eq!(
                describe_conversion(&draft.conversions[0]),
                "performs “upgrade” within 3 days"
            );
        }

        #[test]
        fn an_unreadable_value_names_its_step_and_field() {
            let mut draft = flow();
            if let StepKindDraft::Delay { amount, .. } = &mut draft.steps[1].kind {
                *amount = "soon".into();
            }
            let problem = to_input(&draft).unwrap_err();
            assert_eq!(problem.step_id.as_deref(), Some("aaaa0002"));
            assert_eq!(problem.field, "steps[1].delay.seconds");
        }

        /// `draft` as the store keeps it (its definition written as JSON and read back, as
        /// `canvas.draft` holds it) and as the builder opens it again.
        fn round_trip(draft: &CanvasDraft) -> CanvasDraft {
            let input = to_input(draft).expect("valid draft");
            let stored = serde_json::to_string(&input.definition).expect("serializes");
            let canvas = Canvas {
                id: domain::CanvasId::generate(),
                name: input.name,
                description: input.description,
                tags: input.tags,
                status: domain::canvas::CanvasStatus::Draft,
                draft: serde_json::from_str(&stored).expect("reads back"),
                live_version: None,
                version: 1,
                created_at: Utc::now(),
                updated_at: Utc::now(),
                launched_at: None,
                stopped_at: None,
                archived_at: None,
            };
            to_draft(&canvas)
        }

        fn custom_event(name: &str, filters: Vec<PropertyFilterDraft>) -> TriggerDraft {
            TriggerDraft {
                kind: "custom_event".into(),
                name: name.into(),
                filters,
            }
        }

        fn purchase(product: &str) -> TriggerDraft {
            TriggerDraft {
                kind: "purchase".into(),
                name: product.into(),
                filters: Vec::new(),
            }
        }

        fn plan_is(plan: &str) -> FilterDraft {
            FilterDraft::And {
                filters: vec![FilterDraft::Attribute {
                    name: "plan".into(),
                    custom: true,
                    comparison: "equals".into(),
                    value: plan.into(),
                }],
            }
        }

        fn step_of(id: &str, name: &str, kind: StepKindDraft) -> StepDraft {
            StepDraft {
                id: id.into(),
                name: name.into(),
                kind,
            }
        }

        fn next(id: &str) -> Option<String> {
            Some(id.into())
        }

        /// A Canvas using every step kind and every setting, written as the builder writes it.
        fn everything() -> CanvasDraft {
            let (first, second) = (VariantId::generate(), VariantId::generate());
            let exit_filter = serde_json::to_value(filter(&plan_is("churned"), "exit").unwrap())
                .expect("serializes");
            let audience_filter =
                serde_json::to_value(filter(&plan_is("pro"), "audience").unwrap())
                    .expect("serializes");
            let delay =
                |mode: &str, at: &str, weekday: &str, time: &str, to: &str| StepKindDraft::Delay {
                    mode: mode.into(),
                    amount: "1".into(),
                    unit: "days".into(),
                    at: at.into(),
                    weekday: weekday.into(),
                    time: time.into(),
                    next: next(to),
                };
            CanvasDraft {
                name: "Everything".into(),
                description: "Every step kind".into(),
                tags: "a, b".into(),
                entry: EntryDraft {
                    kind: "action".into(),
                    trigger: custom_event(
                        "signup",
                        vec![PropertyFilterDraft {
                            property: "source".into(),
                            comparison: "equals".into(),
                            value: "ads".into(),
                        }],
                    ),
                    starts_at: "2030-01-01T08:00".into(),
                    ends_at: "2030-02-01T20:30".into(),
                    ..EntryDraft::default()
                },
                segment_ids: vec![SegmentId::generate().to_string()],
                audience_filter: Some(audience_filter),
                exit: ExitDraft {
                    events: vec![
                        custom_event(
                            "unsubscribe",
                            vec![PropertyFilterDraft {
                                property: "count".into(),
                                comparison: "greater_than".into(),
                                value: "3".into(),
                            }],
                        ),
                        purchase("sku-1"),
                        purchase(""),
                    ],
                    segment_ids: vec![SegmentId::generate().to_string()],
                    filter: Some(exit_filter),
                },
                settings: CanvasSettingsDraft {
                    rate_per_minute: "120".into(),
                    reentry: true,
                    reentry_after: "6".into(),
                    reentry_unit: "hours".into(),
                    entry_limit: "1000".into(),
                    entry_limit_per: "lifetime".into(),
                    time_zone: "America/New_York".into(),
                },
                variants: vec![
                    PathVariantDraft {
                        id: Some(first.to_string()),
                        name: "Long path".into(),
                        percent: "45".into(),
                        first_step: next("until"),
                    },
                    PathVariantDraft {
                        id: Some(second.to_string()),
                        name: "Short path".into(),
                        percent: "45".into(),
                        first_step: next("bye"),
                    },
                ],
                control_percent: "10".into(),
                conversions: vec![ConversionDraft {
                    trigger: purchase("sku-2"),
                    window: "12".into(),
                    window_unit: "hours".into(),
                }],
                steps: vec![
                    step_of(
                        "until",
                        "New year",
                        delay("until", "2031-01-01T09:30", "mon", "09:00", "weekday"),
                    ),
                    step_of(
                        "weekday",
                        "Next Wednesday",
                        delay("weekday", "", "wed", "18:30", "audience"),
                    ),
                    step_of(
                        "audience",
                        "By plan",
                        StepKindDraft::AudiencePaths {
                            paths: vec![
                                AudiencePathDraft {
                                    name: "Pro".into(),
                                    filter: plan_is("pro"),
                                    next: next("action"),
                                },
                                AudiencePathDraft {
                                    name: "Free".into(),
                                    filter: FilterDraft::Or {
                                        filters: vec![
                                            FilterDraft::Attribute {
                                                name: "plan".into(),
                                                custom: true,
                                                comparison: "equals".into(),
                                                value: "free".into(),
                                            },
                                            FilterDraft::Attribute {
                                                name: "age".into(),
                                                custom: true,
                                                comparison: "greater_than".into(),
                                                value: serde_json::json!(30),
                                            },
                                        ],
                                    },
                                    next: next("experiment"),
                                },
                            ],
                            everyone_else: next("bye"),
                        },
                    ),
                    step_of(
                        "action",
                        "What they do",
                        StepKindDraft::ActionPaths {
                            window: "2".into(),
                            window_unit: "hours".into(),
                            paths: vec![
                                ActionPathDraft {
                                    name: "Clicked".into(),
                                    trigger: custom_event(
                                        "click",
                                        vec![PropertyFilterDraft {
                                            property: "button".into(),
                                            comparison: "equals".into(),
                                            value: "buy".into(),
                                        }],
                                    ),
                                    next: next("context"),
                                },
                                ActionPathDraft {
                                    name: "Bought".into(),
                                    trigger: purchase("sku-1"),
                                    next: next("bye"),
                                },
                            ],
                            everyone_else: next("bye"),
                        },
                    ),
                    step_of(
                        "experiment",
                        "Test",
                        StepKindDraft::Experiment {
                            paths: vec![
                                ExperimentPathDraft {
                                    name: "A".into(),
                                    percent: "40".into(),
                                    next: next("update"),
                                },
                                ExperimentPathDraft {
                                    name: "B".into(),
                                    percent: "40".into(),
                                    next: next("bye"),
                                },
                            ],
                            control_percent: "20".into(),
                        },
                    ),
                    step_of(
                        "context",
                        "Remember",
                        StepKindDraft::Context {
                            variables: vec![
                                ContextVariableDraft {
                                    name: "coupon".into(),
                                    value_type: "string".into(),
                                    value: "SAVE{{${user_id}}}".into(),
                                },
                                ContextVariableDraft {
                                    name: "score".into(),
                                    value_type: "number".into(),
                                    value: "{{event_properties.${score}}}".into(),
                                },
                            ],
                            next: next("bye"),
                        },
                    ),
                    step_of(
                        "update",
                        "Tag",
                        StepKindDraft::UserUpdate {
                            // In name order: a serde_json Map keeps no other (see the first test).
                            attributes: vec![
                                ("tier".into(), "gold".into()),
                                ("tried".into(), "true".into()),
                            ],
                            next: next("bye"),
                        },
                    ),
                    step_of("bye", "Done", StepKindDraft::Exit),
                ],
            }
        }

        #[test]
        fn every_step_kind_and_setting_survives_the_trip_to_the_store_and_back() {
            let draft = everything();
            let back = round_trip(&draft);
            for (back, sent) in back.steps.iter().zip(&draft.steps) {
                assert_eq!(back, sent, "step {}", sent.id);
            }
            assert_eq!(back.steps.len(), draft.steps.len());
            assert_eq!(back.entry, draft.entry);
            assert_eq!(back.exit, draft.exit);
            assert_eq!(back.settings, draft.settings);
            assert_eq!(back.variants, draft.variants);
            assert_eq!(back.control_percent, "10");
            assert_eq!(back, draft);

            // And as the domain reads it.
            let definition = to_definition(&draft).expect("valid draft");
            assert_eq!(
                definition.steps[0].kind,
                StepKind::Delay {
                    delay: DelaySpec::Until {
                        at: "2031-01-01T09:30:00Z".parse().unwrap(),
                    },
                    next: Some(StepId("weekday".into())),
                }
            );
            assert_eq!(
                definition.steps[1].kind,
                StepKind::Delay {
                    delay: DelaySpec::Weekday {
                        weekday: Weekday::Wed,
                        time: NaiveTime::from_hms_opt(18, 30, 0).unwrap(),
                    },
                    next: Some(StepId("audience".into())),
                }
            );
            assert!(matches!(
                &definition.steps[3].kind,
                StepKind::ActionPaths { window_seconds: 7_200, paths, .. } if paths.len() == 2
            ));
            assert_eq!(
                definition.settings,
                CanvasSettings {
                    rate_per_minute: Some(120),
                    reentry_after_seconds: Some(6 * 3_600),
                    entry_limit: Some(EntryLimit {
                        max: 1000,
                        per: LimitPeriod::Lifetime,
                    }),
                    time_zone: Some("America/New_York".into()),
                }
            );
            assert_eq!(definition.control_percent, 10);
            assert_eq!(
                definition.variants[1].first_step,
                Some(StepId("bye".into()))
            );
            assert_eq!(
                definition.exit.events[1],
                Trigger::Purchase {
                    product_id: Some("sku-1".into())
                }
            );
            let update = serde_json::to_value(&definition.steps[6]).expect("serializes");
            assert_eq!(update["attributes"]["tried"], true);
        }

        #[test]
        fn every_kind_of_scheduled_entry_survives_the_trip_to_the_store_and_back() {
            let dated = |schedule: &str| EntryDraft {
                kind: "scheduled".into(),
                schedule: schedule.into(),
                starts_on: "2030-03-01".into(),
                time: "07:45".into(),
                ends_on: "2030-12-31".into(),
                time_zone: "Europe/Paris".into(),
                in_local_time: true,
                ..EntryDraft::default()
            };
            let entries = [
                EntryDraft {
                    kind: "scheduled".into(),
                    schedule: "at_launch".into(),
                    ..EntryDraft::default()
                },
                EntryDraft {
                    ends_on: String::new(),
                    in_local_time: false,
                    ..dated("once")
                },
                EntryDraft {
                    every: "3".into(),
                    ..dated("daily")
                },
                EntryDraft {
                    every: "2".into(),
                    days: vec!["mon".into(), "fri".into(), "sun".into()],
                    ..dated("weekly")
                },
                EntryDraft {
                    every: "1".into(),
                    month_day: "15".into(),
                    ..dated("monthly")
                },
                EntryDraft {
                    kind: "api".into(),
                    ..EntryDraft::default()
                },
            ];
            for entry in entries {
                let draft = CanvasDraft {
                    name: "Scheduled".into(),
                    entry: entry.clone(),
                    ..CanvasDraft::default()
                };
                assert_eq!(round_trip(&draft).entry, entry, "{}", entry.schedule);
            }
            let draft = CanvasDraft {
                entry: EntryDraft {
                    every: "2".into(),
                    days: vec!["tue".into(), "thu".into()],
                    ..dated("weekly")
                },
                ..CanvasDraft::default()
            };
            let definition = to_definition(&draft).expect("valid draft");
            assert_eq!(
                definition.entry,
                Entry::Scheduled {
                    schedule: Schedule::At {
                        starts_on: NaiveDate::from_ymd_opt(2030, 3, 1).unwrap(),
                        time: NaiveTime::from_hms_opt(7, 45, 0).unwrap(),
                        recurrence: Recurrence::Weekly {
                            every: 2,
                            days: vec![Weekday::Tue, Weekday::Thu],
                        },
                        ends_on: NaiveDate::from_ymd_opt(2030, 12, 31),
                        time_zone: "Europe/Paris".into(),
                        in_local_time: true,
                    }
                }
            );
        }

        #[test]
        fn settings_left_empty_or_off_come_back_as_the_defaults() {
            let draft = CanvasDraft {
                name: "Plain".into(),
                settings: CanvasSettingsDraft {
                    reentry: true,
                    reentry_after: "0".into(),
                    reentry_unit: "minutes".into(),
                    entry_limit: "5".into(),
                    entry_limit_per: "day".into(),
                    ..CanvasSettingsDraft::default()
                },
                ..CanvasDraft::default()
            };
            let definition = to_definition(&draft).expect("valid draft");
            assert_eq!(definition.settings.reentry_after_seconds, Some(0));
            assert_eq!(definition.settings.rate_per_minute, None);
            assert_eq!(definition.settings.time_zone, None);
            let back = round_trip(&draft).settings;
            assert!(back.reentry);
            assert_eq!(back.reentry_after, "0");
            assert_eq!(back.entry_limit, "5");
            assert_eq!(back.entry_limit_per, "day");
            assert_eq!(
                round_trip(&CanvasDraft::default()).settings,
                CanvasSettingsDraft::default()
            );
        }
    }
}

#[cfg(feature = "ssr")]
fn nonempty(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

#[cfg(feature = "ssr")]
fn row(canvas: &domain::canvas::Canvas) -> CanvasRow {
    CanvasRow {
        id: canvas.id.to_string(),
        name: canvas.name.clone(),
        entry: canvas.draft.entry.type_name().into(),
        status: canvas.status.as_str().into(),
        tags: canvas.tags.clone(),
        updated: when(canvas.updated_at),
        launched: canvas.launched_at.is_some(),
    }
}

/// The Canvases matching the list's filters (GET query values; empty means any).
#[server(prefix = "/srv", endpoint = "canvases")]
pub async fn list_canvases(
    ws: String,
    #[server(default)] status: String,
    #[server(default)] tag: String,
) -> Result<CanvasesView, ServerFnError> {
    use domain::canvas::{CanvasFilter, CanvasStatus};
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let status = nonempty(&status);
    let filter = CanvasFilter {
        status: status.as_deref().and_then(CanvasStatus::parse),
        tag: nonempty(&tag),
        include_archived: status.as_deref() == Some("archived"),
    };
    let matching = domain::canvas::list_canvases(&ctx.db, &workspace, &filter)
        .await
        .map_err(fail)?;
    let all = domain::canvas::list_canvases(
        &ctx.db,
        &workspace,
        &CanvasFilter {
            include_archived: true,
            ..CanvasFilter::default()
        },
    )
    .await
    .map_err(fail)?;
    let mut tags: Vec<String> = all.iter().flat_map(|c| c.tags.iter().cloned()).collect();
    tags.sort();
    tags.dedup();
    Ok(CanvasesView {
        rows: matching.iter().map(row).collect(),
        tags,
        any: !all.is_empty(),
        can_build: access.role.allows(Capability::Build),
    })
}

/// Duplicate, pause, resume, stop, archive or unarchive a Canvas (the list's row actions).
#[server(prefix = "/srv", endpoint = "canvas_action")]
pub async fn canvas_action(ws: String, id: String, action: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let id = CanvasId::parse(&id).map_err(fail)?;
    let db = &ctx.db;
    match action.as_str() {
        "duplicate" => domain::canvas::duplicate_canvas(db, &workspace, &id, now).await,
        "pause" => domain::canvas::pause_canvas(db, &workspace, &id, now).await,
        "resume" => {
            let resumed = domain::canvas::resume_canvas(db, &workspace, &id, now).await;
            ctx.engine.notify_one();
            resumed
        }
        "stop" => domain::canvas::stop_canvas(db, &workspace, &id, now).await,
        "archive" => domain::canvas::archive_canvas(db, &workspace, &id, now).await,
        "unarchive" => domain::canvas::unarchive_canvas(db, &workspace, &id, now).await,
        _ => Err(domain::DomainError::invalid(
            "action",
            "choose duplicate, pause, resume, stop, archive or unarchive",
        )),
    }
    .map_err(fail)?;
    Ok(())
}

/// Figures of one Canvas over `period` (`24h` by hour, `7d` or `30d` by day), its steps in the
/// order of `draft`'s flow.
#[cfg(feature = "ssr")]
async fn report(
    db: &sea_orm::DatabaseConnection,
    workspace: &domain::WorkspaceId,
    canvas: &domain::canvas::Canvas,
    period: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CanvasReport, ServerFnError> {
    use chrono::{DurationRound, TimeDelta};
    use domain::campaign::Bucket;
    let (bucket, step, count, title) = match period {
        "24h" => (
            Bucket::Hour,
            TimeDelta::hours(1),
            24,
            "per hour (last 24 hours, UTC)",
        ),
        "7d" => (
            Bucket::Day,
            TimeDelta::days(1),
            7,
            "per day (last 7 days, UTC)",
        ),
        _ => (
            Bucket::Day,
            TimeDelta::days(1),
            30,
            "per day (last 30 days, UTC)",
        ),
    };
    let since = now.duration_trunc(step).unwrap_or(now) - step * (count - 1);
    let stats = domain::canvas::canvas_stats(
        db,
        workspace,
        &canvas.id,
        since,
        now + TimeDelta::seconds(1),
        bucket,
    )
    .await
    .map_err(fail)?;
    let series = (0..count)
        .map(|i| {
            let start = since + step * i;
            let (entries, sends) = stats
                .series
                .iter()
                .filter(|(at, ..)| at.duration_trunc(step).unwrap_or(*at) == start)
                .fold((0, 0), |(e, s), (_, entries, sends)| {
                    (e + entries, s + sends)
                });
            CanvasSeriesPoint {
                label: match bucket {
                    Bucket::Hour => start.format("%H:00").to_string(),
                    Bucket::Day => start.format("%m-%d").to_string(),
                },
                entries,
                sends,
            }
        })
        .collect();
    let draft = convert::to_draft(canvas);
    // The flow's order: depth first from each variant, then steps only older versions had.
    let mut order: Vec<String> = Vec::new();
    let mut todo: Vec<String> = draft
        .variants
        .iter()
        .rev()
        .filter_map(|v| v.first_step.clone())
        .collect();
    while let Some(id) = todo.pop() {
        if order.contains(&id) {
            continue;
        }
        if let Some(step) = draft.step(&id) {
            todo.extend(step.kind.targets().into_iter().rev());
        }
        order.push(id);
    }
    let mut steps: Vec<StepStatsView> = stats
        .steps
        .iter()
        .map(|s| {
            let known = draft.step(s.step_id.as_str());
            StepStatsView {
                step_id: s.step_id.to_string(),
                name: known
                    .map(|k| k.title())
                    .unwrap_or_else(|| s.step_id.to_string()),
                kind: known
                    .map(|k| k.kind.type_name().to_string())
                    .unwrap_or_default(),
                entered: s.entered,
                sent: s.sent,
                delivered: s.delivered,
                errors: s.errors,
                aborted: s.aborted,
                exited: s.exited,
                converted: s.converted,
                branches: s.branches.clone(),
            }
        })
        .collect();
    for id in &order {
        if !steps.iter().any(|s| s.step_id == *id)
            && let Some(step) = draft.step(id)
        {
            steps.push(StepStatsView {
                step_id: id.clone(),
                name: step.title(),
                kind: step.kind.type_name().into(),
                ..StepStatsView::default()
            });
        }
    }
    steps.sort_by_key(|s| {
        order
            .iter()
            .position(|id| *id == s.step_id)
            .unwrap_or(usize::MAX)
    });
    Ok(CanvasReport {
        entries: stats.entries,
        in_progress: stats.in_progress,
        finished: stats.finished,
        exited: stats.exited,
        sends: stats.steps.iter().map(|s| s.sent).sum(),
        delivered: stats.steps.iter().map(|s| s.delivered).sum(),
        errors: stats.steps.iter().map(|s| s.errors).sum(),
        conversions: stats.conversions,
        primary_conversion: draft.conversions.first().map(describe_conversion),
        series,
        series_title: format!("Entries and sends {title}"),
        steps,
    })
}

/// The builder's data: the Canvas (or a new one when `id` is `new`), the segments to pick from,
/// the event names seen in the workspace, and the last 30 days' figures once launched.
#[server(prefix = "/srv", endpoint = "canvas")]
pub async fn get_canvas(ws: String, id: String) -> Result<CanvasDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let segments = domain::segment::list(&ctx.db, &workspace, true)
        .await
        .map_err(fail)?;
    let catalog = domain::profile::event_catalog(&ctx.db, &workspace)
        .await
        .map_err(fail)?;
    let names = |wanted: domain::profile::EventKind| -> Vec<String> {
        catalog
            .iter()
            .filter(|e| e.kind == wanted)
            .map(|e| e.name.clone())
            .collect()
    };
    let mut details = CanvasDetails {
        id: None,
        version: None,
        live_version: None,
        status: "draft".into(),
        draft: CanvasDraft::default(),
        can_build: access.role.allows(Capability::Build),
        launched: None,
        updated: None,
        segments: Vec::new(),
        events: names(domain::profile::EventKind::Event),
        products: names(domain::profile::EventKind::Purchase),
        base_url: ctx.public_url.clone(),
        report: None,
    };
    if id != "new" {
        let id = CanvasId::parse(&id).map_err(fail)?;
        let canvas = domain::canvas::find_canvas(&ctx.db, &workspace, &id)
            .await
            .map_err(fail)?;
        details.id = Some(canvas.id.to_string());
        details.version = Some(canvas.version);
        details.live_version = canvas.live_version;
        details.status = canvas.status.as_str().into();
        details.draft = convert::to_draft(&canvas);
        details.launched = canvas.launched_at.map(when);
        details.updated = Some(when(canvas.updated_at));
        if canvas.launched_at.is_some() {
            details.report =
                Some(report(&ctx.db, &workspace, &canvas, "30d", ctx.clock.now()).await?);
        }
    }
    // Archived segments only show when the Canvas still uses them.
    let mut used: BTreeSet<String> = BTreeSet::new();
    used.extend(details.draft.segment_ids.iter().cloned());
    used.extend(details.draft.exit.segment_ids.iter().cloned());
    for step in &details.draft.steps {
        if let StepKindDraft::DecisionSplit { segment_ids, .. } = &step.kind {
            used.extend(segment_ids.iter().cloned());
        }
    }
    details.segments = segments
        .into_iter()
        .filter(|s| s.archived_at.is_none() || used.contains(&s.id.to_string()))
        .map(|s| SegmentOption {
            id: s.id.to_string(),
            name: s.name,
            archived: s.archived_at.is_some(),
        })
        .collect();
    Ok(details)
}

/// What blocks a launch of the draft as it stands: a value that cannot be read, or the
/// definition's problems (segments checked against the database).
#[server(prefix = "/srv", endpoint = "check_canvas", input = Json)]
pub async fn check_canvas(
    ws: String,
    draft: CanvasDraft,
) -> Result<Vec<ProblemView>, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let definition = match convert::to_definition(&draft) {
        Ok(definition) => definition,
        Err(problem) => return Ok(vec![problem]),
    };
    let problems = domain::canvas::check_definition(&ctx.db, &access.workspace_id(), &definition)
        .await
        .map_err(fail)?;
    let mut problems: Vec<ProblemView> = problems.into_iter().map(convert::problem).collect();
    if draft.name.trim().is_empty() {
        problems.insert(
            0,
            ProblemView {
                step_id: None,
                field: "name".into(),
                message: "give the Canvas a name".into(),
            },
        );
    }
    Ok(problems)
}

/// Saves the builder's draft (creating the Canvas when `id` is `None`), then launches it when
/// `launch` is set. Rejected values come back as a [`FieldError`] naming the field. Saving a
/// launched Canvas freezes a new version.
#[server(prefix = "/srv", endpoint = "save_canvas", input = Json)]
pub async fn save_canvas(
    ws: String,
    id: Option<String>,
    version: Option<i32>,
    draft: CanvasDraft,
    launch: bool,
) -> Result<CanvasSaveOutcome, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let rejected = |error: domain::DomainError| convert::field_error(error).map_err(fail);
    let input = match convert::to_input(&draft) {
        Ok(input) => input,
        Err(problem) => {
            return Ok(CanvasSaveOutcome {
                saved: None,
                error: Some(convert::as_field_error(problem)),
            });
        }
    };
    let stored = match &id {
        Some(id) => {
            let id = CanvasId::parse(id).map_err(fail)?;
            domain::canvas::update_canvas(&ctx.db, &workspace, &id, input, version, now).await
        }
        None => domain::canvas::create_canvas(&ctx.db, &workspace, input, now).await,
    };
    let canvas = match stored {
        Ok(canvas) => canvas,
        Err(error) => {
            return Ok(CanvasSaveOutcome {
                saved: None,
                error: Some(rejected(error)?),
            });
        }
    };
    if !launch {
        return Ok(CanvasSaveOutcome {
            saved: Some(convert::saved(&canvas)),
            error: None,
        });
    }
    match domain::canvas::launch_canvas(&ctx.db, &workspace, &canvas.id, now).await {
        Ok(launched) => {
            ctx.engine.notify_one();
            Ok(CanvasSaveOutcome {
                saved: Some(convert::saved(&launched)),
                error: None,
            })
        }
        Err(error) => Ok(CanvasSaveOutcome {
            saved: Some(convert::saved(&canvas)),
            error: Some(rejected(error)?),
        }),
    }
}

#[server(prefix = "/srv", endpoint = "canvas_summary")]
pub async fn get_canvas_summary(ws: String, id: String) -> Result<CanvasSummary, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let id = CanvasId::parse(&id).map_err(fail)?;
    let canvas = domain::canvas::find_canvas(&ctx.db, &access.workspace_id(), &id)
        .await
        .map_err(fail)?;
    Ok(CanvasSummary {
        id: canvas.id.to_string(),
        name: canvas.name,
        entry: canvas.draft.entry.type_name().into(),
        status: canvas.status.as_str().into(),
        launched: canvas.launched_at.map(when),
        live_version: canvas.live_version,
        can_build: access.role.allows(Capability::Build),
    })
}

/// Totals, a time series and per-step figures over `period` (`24h`, `7d` or `30d`, the default).
#[server(prefix = "/srv", endpoint = "canvas_report")]
pub async fn get_canvas_report(
    ws: String,
    id: String,
    #[server(default)] period: String,
) -> Result<CanvasReport, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let id = CanvasId::parse(&id).map_err(fail)?;
    let canvas = domain::canvas::find_canvas(&ctx.db, &workspace, &id)
        .await
        .map_err(fail)?;
    report(&ctx.db, &workspace, &canvas, &period, ctx.clock.now()).await
}

/// The user's latest journey steps across Canvases, newest first.
#[server(prefix = "/srv", endpoint = "user_journeys")]
pub async fn get_user_journeys(ws: String, id: String) -> Result<Vec<JourneyRow>, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let profile = domain::ProfileId::parse(&id).map_err(fail)?;
    let steps = domain::canvas::user_journeys(&ctx.db, &access.workspace_id(), &profile, 50)
        .await
        .map_err(fail)?;
    // Unnamed steps read as their type, from each Canvas's current draft (looked up once).
    let mut drafts: std::collections::HashMap<String, Option<CanvasDraft>> =
        std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(steps.len());
    for s in steps {
        let canvas_id = s.canvas_id.to_string();
        if !drafts.contains_key(&canvas_id) {
            let draft = domain::canvas::find_canvas(&ctx.db, &access.workspace_id(), &s.canvas_id)
                .await
                .ok()
                .map(|c| convert::to_draft(&c));
            drafts.insert(canvas_id.clone(), draft);
        }
        let step = match (&s.step_id, s.step_name.trim()) {
            (_, name) if !name.is_empty() => name.to_string(),
            (None, _) => "Entry".into(),
            (Some(id), _) => drafts
                .get(&canvas_id)
                .and_then(|d| d.as_ref())
                .and_then(|d| d.step(id.as_str()))
                .map(|step| step.title())
                .unwrap_or_else(|| id.to_string()),
        };
        rows.push(JourneyRow {
            canvas_id,
            canvas_name: s.canvas_name,
            version: s.version,
            step,
            what: journey_event_label(&s.kind, s.branch.as_deref()),
            at: when(s.at),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> CanvasDraft {
        let mut draft = CanvasDraft::default();
        assert!(draft.insert_step(&Slot::Variant(0), "message", "m1".into()));
        assert!(draft.insert_step(
            &Slot::Step("m1".into(), Branch::Next),
            "decision_split",
            "d1".into()
        ));
        assert!(draft.insert_step(
            &Slot::Step("d1".into(), Branch::Yes),
            "message",
            "yes1".into()
        ));
        assert!(draft.insert_step(
            &Slot::Step("d1".into(), Branch::No),
            "message",
            "no1".into()
        ));
        draft
    }

    #[test]
    fn a_step_inserted_on_an_edge_takes_the_old_target_as_its_next() {
        let mut draft = chain();
        assert!(draft.insert_step(&Slot::Step("m1".into(), Branch::Next), "delay", "w1".into()));
        assert_eq!(
            draft
                .target(&Slot::Step("m1".into(), Branch::Next))
                .as_deref(),
            Some("w1")
        );
        assert_eq!(
            draft
                .target(&Slot::Step("w1".into(), Branch::Next))
                .as_deref(),
            Some("d1")
        );
        // A split put in the middle keeps what followed on its Yes path.
        assert!(draft.insert_step(&Slot::Variant(0), "decision_split", "d0".into()));
        assert_eq!(
            draft
                .target(&Slot::Step("d0".into(), Branch::Yes))
                .as_deref(),
            Some("m1")
        );
        assert_eq!(draft.target(&Slot::Step("d0".into(), Branch::No)), None);
    }

    #[test]
    fn an_exit_only_goes_at_the_end_of_a_branch() {
        let mut draft = chain();
        assert!(!draft.insert_step(&Slot::Step("m1".into(), Branch::Next), "exit", "x1".into()));
        assert!(draft.insert_step(
            &Slot::Step("yes1".into(), Branch::Next),
            "exit",
            "x1".into()
        ));
        assert!(
            !draft.insert_step(&Slot::Step("no1".into(), Branch::Next), "exit", "x1".into()),
            "ids stay unique"
        );
    }

    #[test]
    fn deleting_a_step_reattaches_its_next_or_drops_the_branches_it_led_to() {
        let mut draft = chain();
        draft.delete_step("m1");
        assert_eq!(draft.target(&Slot::Variant(0)).as_deref(), Some("d1"));
        draft.delete_step("d1");
        assert_eq!(draft.target(&Slot::Variant(0)), None);
        assert!(draft.steps.is_empty(), "the split's branches went with it");
    }
}
