//! Canvases: the list, the builder in six tabs (Basics, Entry, Audience, Settings, Build, Summary
//! and launch) whose Build tab is the flow diagram, the report, and the "Canvas journeys" section of
//! a user's profile.
//!
//! The builder keeps the whole Canvas in one signal and every field edits its part of it through
//! a [`Lens`], so the diagram, the problems and the summary always show what is typed. The diagram
//! is an auto-laid-out tree (no free dragging): step cards absolutely placed over SVG edges, with a
//! "+" on every edge and at every empty branch end, and a side panel editing the clicked step.

use std::collections::BTreeSet;

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::NavigateOptions;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::api::error_text;
use crate::campaigns::{
    ConversionDraft, EstimateCampaignReach, FieldError, PropertyFilterDraft, SegmentOption,
    TriggerDraft,
};
use crate::canvases::{
    ActionPathDraft, AudiencePathDraft, CanvasAction, CanvasDetails, CanvasDraft, CanvasReport,
    CanvasSaveOutcome, CanvasSeriesPoint, CanvasSummary, CheckCanvas, ContextVariableDraft,
    ExperimentPathDraft, JourneyRow, PathVariantDraft, ProblemView, STEP_TYPES, SaveCanvas, Slot,
    StepDraft, StepKindDraft, StepStatsView, describe_conversion, get_canvas, get_canvas_report,
    get_canvas_summary, list_canvases, rate, same_branch, type_label,
};
use crate::components::{EmptyState, ErrorPanel, FormError, Loading, last_error};
use crate::pages::composer::{Composer, ComposerState};
use crate::pages::layout::use_ws;
use crate::pages::templates::RequestView;
use crate::segments::FilterDraft;
use crate::webhooks::{MessageDraft, PreviewWebhook};

// ---------------------------------------------------------------------------------------------
// A lens: one part of the draft, read reactively and written back whole.

/// Reads a part of a larger value and writes it back into it. Copy, so closures take it freely.
struct Lens<T: Send + Sync + 'static> {
    get: Signal<T>,
    put: Callback<T>,
}

impl<T: Send + Sync + 'static> Clone for Lens<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Lens<T> {}

impl<T: Clone + Send + Sync + 'static> Lens<T> {
    fn root(signal: RwSignal<T>) -> Self {
        Self {
            get: signal.into(),
            put: Callback::new(move |value| signal.set(value)),
        }
    }

    fn get(self) -> T {
        self.get.get()
    }

    fn get_untracked(self) -> T {
        self.get.get_untracked()
    }

    fn with<R>(self, f: impl FnOnce(&T) -> R) -> R {
        self.get.with(f)
    }

    fn set(self, value: T) {
        self.put.run(value)
    }

    fn update(self, change: impl FnOnce(&mut T)) {
        let mut value = self.get_untracked();
        change(&mut value);
        self.set(value);
    }

    fn map<U: Clone + Send + Sync + 'static>(
        self,
        read: impl Fn(&T) -> U + Send + Sync + 'static,
        write: impl Fn(&mut T, U) + Send + Sync + 'static,
    ) -> Lens<U> {
        Lens {
            get: Signal::derive(move || self.get.with(|t| read(t))),
            put: Callback::new(move |u| self.update(|t| write(t, u))),
        }
    }
}

impl<T: Clone + Default + Send + Sync + 'static> Lens<Vec<T>> {
    /// Item `i` (the default once it is gone: a row being removed may still be read once).
    fn item(self, i: usize) -> Lens<T> {
        self.map(
            move |list| list.get(i).cloned().unwrap_or_default(),
            move |list, value| {
                if let Some(slot) = list.get_mut(i) {
                    *slot = value;
                }
            },
        )
    }

    fn len(self) -> usize {
        self.with(|l| l.len())
    }
}

/// A lens onto `field` of the `variant` of a step kind.
macro_rules! kind_field {
    ($lens:expr, $variant:ident, $field:ident, $ty:ty) => {
        $lens.map(
            |k| match k {
                StepKindDraft::$variant { $field, .. } => $field.clone(),
                _ => <$ty>::default(),
            },
            |k, v| {
                if let StepKindDraft::$variant { $field, .. } = k {
                    *$field = v;
                }
            },
        )
    };
}

/// A lens onto a field of a struct.
macro_rules! field {
    ($lens:expr, $field:ident) => {
        $lens.map(|t| t.$field.clone(), |t, v| t.$field = v)
    };
}

// ---------------------------------------------------------------------------------------------
// Labels shared by the pages.

fn status_label(status: &str) -> &'static str {
    match status {
        "draft" => "Draft",
        "active" => "Active",
        "paused" => "Paused",
        "stopped" => "Stopped",
        "archived" => "Archived",
        _ => "Unknown",
    }
}

#[component]
fn CanvasStatus(#[prop(into)] status: String) -> impl IntoView {
    let class = match status.as_str() {
        "active" => "badge ok canvas-status",
        "paused" | "stopped" => "badge warn canvas-status",
        "draft" | "archived" => "badge muted canvas-status",
        _ => "badge canvas-status",
    };
    view! { <span class=class data-status=status.clone()>{status_label(&status)}</span> }
}

fn entry_label(entry: &str) -> &'static str {
    match entry {
        "scheduled" => "Scheduled",
        "action" => "Action-based",
        _ => "API-triggered",
    }
}

const STATUS_FILTERS: [(&str, &str); 6] = [
    ("", "Any status (not archived)"),
    ("draft", "Draft"),
    ("active", "Active"),
    ("paused", "Paused"),
    ("stopped", "Stopped"),
    ("archived", "Archived"),
];

/// Row and header actions that fit a status: (action, label).
fn actions_for(status: &str) -> Vec<(&'static str, &'static str)> {
    let mut actions = vec![("duplicate", "Duplicate")];
    match status {
        "active" => actions.extend([("pause", "Pause"), ("stop", "Stop")]),
        "paused" => actions.extend([("resume", "Resume"), ("stop", "Stop")]),
        "stopped" => actions.push(("resume", "Resume")),
        _ => {}
    }
    actions.push(if status == "archived" {
        ("unarchive", "Unarchive")
    } else {
        ("archive", "Archive")
    });
    actions
}

/// Forms posting one Canvas action each (they work without JavaScript too).
fn action_forms(
    action: ServerAction<CanvasAction>,
    ws: String,
    id: String,
    status: &str,
) -> impl IntoView {
    let forms = actions_for(status)
        .into_iter()
        .map(|(what, label)| {
            let (ws, id) = (ws.clone(), id.clone());
            let class = if matches!(what, "archive" | "stop") {
                "link danger"
            } else {
                "link"
            };
            view! {
                <ActionForm action=action attr:class="inline">
                    <input type="hidden" name="ws" value=ws/>
                    <input type="hidden" name="id" value=id/>
                    <input type="hidden" name="action" value=what/>
                    <button type="submit" class=class>{label}</button>
                </ActionForm>
            }
        })
        .collect_view();
    view! { <span class="row-actions">{forms}</span> }
}

// ---------------------------------------------------------------------------------------------
// The list.

#[component]
pub fn CanvasesPage() -> impl IntoView {
    let ws = use_ws();
    let query = use_query_map();
    let param = move |key: &str| query.read().get(key).unwrap_or_default();
    let action = ServerAction::<CanvasAction>::new();
    let canvases = Resource::new(
        move || {
            (
                ws.get(),
                param("status"),
                param("tag"),
                action.version().get(),
            )
        },
        |(ws, status, tag, _)| list_canvases(ws, status, tag),
    );
    view! {
        <Title text="Canvases"/>
        <div class="page-head">
            <h1>"Canvases"</h1>
            <a class="button primary" id="new-canvas" href=move || format!("/w/{}/canvases/new", ws.get())>"New Canvas"</a>
        </div>
        <FormError message=last_error(action.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match canvases.await {
                    Ok(data) => data,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let ws_id = ws.get_untracked();
                if !data.any {
                    return view! {
                        <EmptyState title="No Canvases yet">
                            <p>"A Canvas is a multi-step journey: users enter on a schedule, when they perform an event, or when your system triggers it over the API, then move through Messages, Delays, splits and paths."</p>
                            <p><a class="button primary" href=format!("/w/{ws_id}/canvases/new")>"Create a Canvas"</a></p>
                        </EmptyState>
                    }.into_any();
                }
                let (status, tag) = (param("status"), param("tag"));
                let filters = view! {
                    <Form method="GET" action=format!("/w/{ws_id}/canvases") attr:class="filters card" attr:id="canvas-filters">
                        <label for="filter-status">"Status"</label>
                        <select id="filter-status" name="status">
                            {STATUS_FILTERS.into_iter().map(|(v, l)| view! { <option value=v selected=status == v>{l}</option> }).collect_view()}
                        </select>
                        <label for="filter-tag">"Tag"</label>
                        <select id="filter-tag" name="tag">
                            <option value="" selected=tag.is_empty()>"Any tag"</option>
                            {data.tags.iter().map(|t| view! { <option value=t.clone() selected=tag == *t>{t.clone()}</option> }).collect_view()}
                        </select>
                        <button type="submit">"Filter"</button>
                    </Form>
                };
                if data.rows.is_empty() {
                    return view! {
                        {filters}
                        <EmptyState title="No Canvas matches these filters">
                            <p><a href=format!("/w/{ws_id}/canvases")>"Show all Canvases"</a></p>
                        </EmptyState>
                    }.into_any();
                }
                view! {
                    {filters}
                    <table class="table card" id="canvases-table">
                        <thead>
                            <tr>
                                <th>"Name"</th><th>"Entry"</th><th>"Status"</th><th>"Last edited"</th>
                                <th><span class="sr-only">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {data.rows.into_iter().map(|c| view! {
                                <tr class:revoked=c.status == "archived">
                                    <td>
                                        <a href=format!("/w/{ws_id}/canvases/{}", c.id)>{c.name.clone()}</a>
                                        {(!c.tags.is_empty()).then(|| view! {
                                            <div class="chips">{c.tags.iter().map(|t| view! { <span class="chip">{t.clone()}</span> }).collect_view()}</div>
                                        })}
                                    </td>
                                    <td>{entry_label(&c.entry)}</td>
                                    <td><CanvasStatus status=c.status.clone()/></td>
                                    <td>{c.updated.clone()}</td>
                                    <td class="actions">
                                        {c.launched.then(|| view! { <a href=format!("/w/{ws_id}/canvases/{}/report", c.id)>"Report"</a> " · " })}
                                        {data.can_build.then(|| action_forms(action, ws_id.clone(), c.id.clone(), &c.status))}
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            })}
        </Transition>
    }
}

// ---------------------------------------------------------------------------------------------
// The diagram's layout: a tidy tree, top to bottom. Each subtree is as wide as its children side
// by side (or one card), and a node sits centred over its children. Computed the same way on the
// server and in the browser, so the rendered diagram hydrates as it is.

const CARD_W: f64 = 220.0;
const CARD_H: f64 = 96.0;
const SMALL_W: f64 = 132.0;
const SMALL_H: f64 = 40.0;
const GAP_X: f64 = 24.0;
const ROW: f64 = 176.0;
const PAD: f64 = 24.0;

#[derive(Clone, Debug, PartialEq)]
enum NodeKind {
    Entry,
    Variant(usize),
    Control,
    Step(String),
    /// An empty branch end: a "+" to add the branch's first step.
    Empty(Slot),
    /// A step already drawn elsewhere (definitions made over the API may join branches).
    Link(String),
}

#[derive(Clone, Debug, PartialEq)]
struct PlacedNode {
    kind: NodeKind,
    /// Centre.
    x: f64,
    /// Top.
    y: f64,
    w: f64,
    h: f64,
    title: String,
    /// The step type, for steps.
    type_name: String,
    summary: String,
    /// Where an empty end hangs: "after “Welcome”", "on the Yes path of “Plan?”".
    place: String,
}

#[derive(Clone, Debug, PartialEq)]
struct PlacedEdge {
    key: String,
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    label: String,
    /// The step the edge leaves, for branch counts.
    from_step: Option<String>,
    /// Where a step inserted on this edge goes.
    insert: Option<Slot>,
    /// Words for the "+" button.
    place: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Layout {
    nodes: Vec<PlacedNode>,
    edges: Vec<PlacedEdge>,
    width: f64,
    height: f64,
}

struct Tree {
    node: PlacedNode,
    children: Vec<(Tree, String, Option<Slot>)>,
    width: f64,
}

fn leaf(kind: NodeKind, w: f64, h: f64) -> PlacedNode {
    PlacedNode {
        kind,
        x: 0.0,
        y: 0.0,
        w,
        h,
        title: String::new(),
        type_name: String::new(),
        summary: String::new(),
        place: String::new(),
    }
}

fn branch_place(parent: &str, label: &str) -> String {
    if label.is_empty() {
        format!("after “{parent}”")
    } else {
        let label = label.split(" · ").next().unwrap_or(label);
        format!("on the {label} path of “{parent}”")
    }
}

fn subtree(draft: &CanvasDraft, slot: Slot, place: String, seen: &mut BTreeSet<String>) -> Tree {
    let target = draft.target(&slot);
    let node = match target {
        None => {
            let mut node = leaf(NodeKind::Empty(slot), SMALL_W, SMALL_H);
            node.place = place;
            node
        }
        Some(id) if seen.contains(&id) || draft.step(&id).is_none() => {
            let mut node = leaf(NodeKind::Link(id.clone()), SMALL_W + 28.0, SMALL_H);
            node.title = draft
                .step(&id)
                .map(|s| s.title())
                .unwrap_or_else(|| format!("missing step {id}"));
            node
        }
        Some(id) => {
            seen.insert(id.clone());
            let step = draft.step(&id).cloned().unwrap_or_default();
            let title = step.title();
            let children = step
                .kind
                .branches()
                .into_iter()
                .map(|(branch, label)| {
                    let slot = Slot::Step(id.clone(), branch);
                    let place = branch_place(&title, &label);
                    (subtree(draft, slot.clone(), place, seen), label, Some(slot))
                })
                .collect();
            let mut node = leaf(NodeKind::Step(id), CARD_W, CARD_H);
            node.title = title;
            node.type_name = step.kind.type_name().into();
            node.summary = step_summary(&step);
            return measured(node, children);
        }
    };
    measured(node, Vec::new())
}

fn measured(node: PlacedNode, children: Vec<(Tree, String, Option<Slot>)>) -> Tree {
    let sum: f64 = children.iter().map(|(c, ..)| c.width).sum::<f64>()
        + GAP_X * children.len().saturating_sub(1) as f64;
    Tree {
        width: node.w.max(sum),
        node,
        children,
    }
}

fn place(tree: Tree, left: f64, depth: usize, out: &mut Layout) {
    let Tree {
        mut node,
        children,
        width,
    } = tree;
    node.x = left + width / 2.0;
    node.y = PAD + depth as f64 * ROW;
    let (x, bottom) = (node.x, node.y + node.h);
    let from_step = match &node.kind {
        NodeKind::Step(id) => Some(id.clone()),
        _ => None,
    };
    let parent_title = node.title.clone();
    out.height = out.height.max(node.y + node.h + PAD);
    out.nodes.push(node);
    let sum: f64 = children.iter().map(|(c, ..)| c.width).sum::<f64>()
        + GAP_X * children.len().saturating_sub(1) as f64;
    let mut cursor = left + (width - sum) / 2.0;
    for (child, label, slot) in children {
        let child_width = child.width;
        let cx = cursor + child_width / 2.0;
        let into_empty = matches!(child.node.kind, NodeKind::Empty(_));
        let key = match &slot {
            Some(slot) => slot.key(),
            None => format!("edge-{}", out.edges.len()),
        };
        out.edges.push(PlacedEdge {
            key,
            x1: x,
            y1: bottom,
            x2: cx,
            y2: PAD + (depth + 1) as f64 * ROW,
            place: branch_place(&parent_title, &label),
            label,
            from_step: from_step.clone(),
            insert: if into_empty { None } else { slot },
        });
        place(child, cursor, depth + 1, out);
        cursor += child_width + GAP_X;
    }
}

fn layout(draft: &CanvasDraft) -> Layout {
    let mut seen = BTreeSet::new();
    let control: u32 = draft.control_percent.trim().parse().unwrap_or(0);
    let children = if draft.variants.len() == 1 && control == 0 {
        vec![(
            subtree(draft, Slot::Variant(0), "at the start".into(), &mut seen),
            String::new(),
            Some(Slot::Variant(0)),
        )]
    } else {
        let mut list: Vec<(Tree, String, Option<Slot>)> = draft
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let name = if v.name.trim().is_empty() {
                    format!("Variant {}", i + 1)
                } else {
                    v.name.trim().to_string()
                };
                let mut head = leaf(NodeKind::Variant(i), SMALL_W + 28.0, SMALL_H);
                head.title = format!("{name} · {}%", v.percent.trim());
                let first = subtree(
                    draft,
                    Slot::Variant(i),
                    format!("at the start of {name}"),
                    &mut seen,
                );
                (
                    measured(head, vec![(first, String::new(), Some(Slot::Variant(i)))]),
                    String::new(),
                    None,
                )
            })
            .collect();
        if control > 0 {
            let mut node = leaf(NodeKind::Control, SMALL_W + 28.0, SMALL_H);
            node.title = format!("Control · {control}%");
            list.push((measured(node, Vec::new()), String::new(), None));
        }
        list
    };
    let mut entry = leaf(NodeKind::Entry, CARD_W, 56.0);
    entry.title = "Entry".into();
    entry.summary = entry_summary(draft);
    let tree = measured(entry, children);
    let mut out = Layout {
        width: tree.width + 2.0 * PAD,
        ..Layout::default()
    };
    place(tree, PAD, 0, &mut out);
    out
}

fn entry_summary(draft: &CanvasDraft) -> String {
    let e = &draft.entry;
    match e.kind.as_str() {
        "api" => "API-triggered (/canvas/trigger/send)".into(),
        "action" => {
            if e.trigger.kind == "purchase" {
                "When a user makes a purchase".into()
            } else if e.trigger.name.trim().is_empty() {
                "When a user performs a custom event".into()
            } else {
                format!("When a user performs “{}”", e.trigger.name.trim())
            }
        }
        _ if e.schedule == "at_launch" => "Scheduled: at launch".into(),
        _ => format!("Scheduled: {} at {}", e.schedule, e.time),
    }
}

fn plural(amount: &str, unit: &str) -> String {
    let unit = if amount.trim() == "1" {
        unit.trim_end_matches('s')
    } else {
        unit
    };
    format!("{} {unit}", amount.trim())
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

fn weekday_label(day: &str) -> &'static str {
    WEEKDAYS
        .iter()
        .find(|(k, _)| *k == day)
        .map(|(_, l)| *l)
        .unwrap_or("Mon")
}

fn comparison_label(comparison: &str) -> &str {
    COMPARISONS
        .iter()
        .find(|(c, _)| *c == comparison)
        .map(|(_, l)| *l)
        .unwrap_or(comparison)
}

fn describe_filter(filter: &FilterDraft) -> String {
    match filter {
        FilterDraft::And { filters } | FilterDraft::Or { filters } => {
            let joiner = if matches!(filter, FilterDraft::And { .. }) {
                " and "
            } else {
                " or "
            };
            filters
                .iter()
                .map(describe_filter)
                .collect::<Vec<_>>()
                .join(joiner)
        }
        FilterDraft::Attribute {
            name,
            comparison,
            value,
            ..
        } => {
            let value = match value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => format!(" {s}"),
                other => format!(" {other}"),
            };
            format!("{name} {}{value}", comparison_label(comparison))
        }
        FilterDraft::Event { name, .. } => format!("performed {name}"),
        FilterDraft::Purchase { product_id, .. } => match product_id {
            Some(p) => format!("purchased {p}"),
            None => "made a purchase".into(),
        },
        FilterDraft::RandomBucket { min, max } => format!("random bucket {min}–{max}"),
        FilterDraft::TimeZone { zones } => format!("time zone in {}", zones.join(", ")),
    }
}

fn step_summary(step: &StepDraft) -> String {
    match &step.kind {
        StepKindDraft::Message { message, .. } => {
            let url = message
                .url
                .trim()
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            short(&format!("{} {url}", message.method), 34)
        }
        StepKindDraft::Delay {
            mode,
            amount,
            unit,
            at,
            weekday,
            time,
            ..
        } => match mode.as_str() {
            "until" => format!("Until {} UTC", at.replace('T', " ")),
            "weekday" => format!("Until next {} at {time}", weekday_label(weekday)),
            _ => format!("Wait {}", plural(amount, unit)),
        },
        StepKindDraft::DecisionSplit {
            segment_ids,
            filter,
            ..
        } => {
            let mut parts = Vec::new();
            let described = describe_filter(filter);
            if !described.is_empty() {
                parts.push(described);
            }
            if !segment_ids.is_empty() {
                parts.push(format!("in {} segment(s)", segment_ids.len()));
            }
            if parts.is_empty() {
                "No condition yet".into()
            } else {
                short(&parts.join(" and "), 40)
            }
        }
        StepKindDraft::AudiencePaths { paths, .. } => {
            format!("{} path(s) + everyone else", paths.len())
        }
        StepKindDraft::ActionPaths {
            window,
            window_unit,
            paths,
            ..
        } => {
            let names: Vec<String> = paths
                .iter()
                .map(|p| {
                    if p.trigger.kind == "purchase" {
                        "purchase".to_string()
                    } else {
                        p.trigger.name.trim().to_string()
                    }
                })
                .collect();
            short(
                &format!(
                    "Within {}: {}",
                    plural(window, window_unit),
                    names.join(", ")
                ),
                40,
            )
        }
        StepKindDraft::Experiment {
            paths,
            control_percent,
        } => {
            let control = control_percent.trim();
            if control.is_empty() || control == "0" {
                format!("{} paths", paths.len())
            } else {
                format!("{} paths + control {control}%", paths.len())
            }
        }
        StepKindDraft::UserUpdate { attributes, .. } => {
            let keys: Vec<&str> = attributes
                .iter()
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty())
                .collect();
            if keys.is_empty() {
                "No attribute yet".into()
            } else {
                short(&format!("Sets {}", keys.join(", ")), 40)
            }
        }
        StepKindDraft::Context { variables, .. } => {
            let names: Vec<&str> = variables
                .iter()
                .map(|v| v.name.trim())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                "No variable yet".into()
            } else {
                short(&format!("Sets {}", names.join(", ")), 40)
            }
        }
        StepKindDraft::Exit => "Users leave the Canvas".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Small form pieces, bound to lenses.

const COMPARISONS: [(&str, &str); 16] = [
    ("equals", "equals"),
    ("not_equal", "does not equal"),
    ("contains", "contains"),
    ("does_not_contain", "does not contain"),
    ("exists", "exists"),
    ("does_not_exist", "does not exist"),
    ("greater_than", "greater than"),
    ("less_than", "less than"),
    ("greater_than_or_equal_to", "at least"),
    ("less_than_or_equal_to", "at most"),
    ("is_true", "is true"),
    ("is_false", "is false"),
    ("includes_value", "includes value"),
    ("matches_regex", "matches regex"),
    ("after", "after (date)"),
    ("before", "before (date)"),
];

const STANDARD_ATTRIBUTES: [&str; 11] = [
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "gender",
    "date_of_birth",
    "country",
    "home_city",
    "language",
    "time_zone",
];

const PROPERTY_COMPARISONS: [(&str, &str); 7] = [
    ("equals", "equals"),
    ("not_equal", "does not equal"),
    ("greater_than", "greater than"),
    ("less_than", "less than"),
    ("contains", "contains"),
    ("exists", "exists"),
    ("does_not_exist", "does not exist"),
];

const TRIGGER_KINDS: [(&str, &str); 2] = [
    ("custom_event", "Performs custom event"),
    ("purchase", "Makes a purchase"),
];

const DELAY_UNITS: [(&str, &str); 5] = [
    ("seconds", "seconds"),
    ("minutes", "minutes"),
    ("hours", "hours"),
    ("days", "days"),
    ("weeks", "weeks"),
];

const WINDOW_UNITS: [(&str, &str); 3] =
    [("minutes", "minutes"), ("hours", "hours"), ("days", "days")];

const SCHEDULES: [(&str, &str); 5] = [
    ("at_launch", "As soon as it is launched"),
    ("once", "Once, at a date and time"),
    ("daily", "Daily"),
    ("weekly", "Weekly"),
    ("monthly", "Monthly"),
];

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
];

const VALUE_TYPES: [(&str, &str); 5] = [
    ("string", "string"),
    ("number", "number"),
    ("boolean", "boolean"),
    ("time", "time"),
    ("object", "object (JSON)"),
];

const TIME_ZONES: [&str; 16] = [
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Amsterdam",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
];

fn text_input(
    id: Option<&'static str>,
    kind: &'static str,
    value: Lens<String>,
    readonly: bool,
    placeholder: &'static str,
    aria: &'static str,
) -> impl IntoView {
    view! {
        <input id=id type=kind placeholder=placeholder aria-label=aria prop:value=move || value.get() readonly=readonly
            on:input=move |ev| value.set(event_target_value(&ev))/>
    }
}

fn check_input(
    id: &'static str,
    value: Lens<bool>,
    readonly: bool,
    label: &'static str,
) -> impl IntoView {
    view! {
        <label class="check" for=id>
            <input id=id type="checkbox" prop:checked=move || value.get() disabled=readonly
                on:change=move |ev| value.set(event_target_checked(&ev))/>
            {label}
        </label>
    }
}

fn select_input(
    id: Option<&'static str>,
    aria: &'static str,
    value: Lens<String>,
    readonly: bool,
    options: &'static [(&'static str, &'static str)],
) -> impl IntoView {
    view! {
        <select id=id aria-label=aria disabled=readonly on:change=move |ev| value.set(event_target_value(&ev))>
            {options.iter().map(|(key, label)| view! {
                <option value=*key selected=move || value.get() == *key>{*label}</option>
            }).collect_view()}
        </select>
    }
}

fn remove_button(
    readonly: bool,
    title: &'static str,
    remove: impl Fn() + 'static,
) -> impl IntoView {
    (!readonly).then(|| {
        view! { <button type="button" class="small" title=title aria-label=title on:click=move |_| remove()>"✕"</button> }
    })
}

fn copy_button(value: String) -> impl IntoView {
    view! {
        <button type="button" class="small copy" data-copy=value
            onclick="navigator.clipboard && navigator.clipboard.writeText(this.dataset.copy).then(() => { this.textContent = 'Copied'; })">
            "Copy"
        </button>
    }
}

/// Whether an error about `field` belongs to the slot `slot` (the slot or anything inside it).
fn belongs(field: &str, slot: &str) -> bool {
    field == slot
        || field
            .strip_prefix(slot)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The message of a rejected value, next to its field.
#[component]
fn FieldMsg(errors: RwSignal<Option<FieldError>>, #[prop(into)] field: String) -> impl IntoView {
    move || {
        errors
            .get()
            .filter(|e| belongs(&e.field, &field))
            .map(|e| view! { <p class="field-error" data-field=e.field.clone()>{e.message}</p> })
    }
}

/// A trigger: a custom event (with property filters when asked) or a purchase.
#[component]
fn TriggerEditor(
    trigger: Lens<TriggerDraft>,
    readonly: bool,
    #[prop(optional)] with_filters: bool,
    #[prop(optional)] id: Option<&'static str>,
) -> impl IntoView {
    let kind = field!(trigger, kind);
    let name = field!(trigger, name);
    let filters = field!(trigger, filters);
    let is_purchase = move || kind.get() == "purchase";
    view! {
        <div class="trigger-editor">
            {select_input(id, "Trigger kind", kind, readonly, &TRIGGER_KINDS)}
            <input type="text" aria-label=move || if is_purchase() { "Product id" } else { "Event name" }
                id=id.map(|id| format!("{id}-name"))
                list=move || if is_purchase() { "canvas-products" } else { "canvas-events" }
                placeholder=move || if is_purchase() { "any product (or a product id)" } else { "event name" }
                prop:value=move || name.get() readonly=readonly on:input=move |ev| name.set(event_target_value(&ev))/>
        </div>
        {with_filters.then(|| view! {
            <Show when=move || !is_purchase()>
                <div class="rows-editor property-filters">
                    <For each=move || 0..filters.len() key=|i| *i let:i>
                        {
                            let row = filters.item(i);
                            let property = field!(row, property);
                            let comparison = field!(row, comparison);
                            let value = field!(row, value);
                            view! {
                                <div class="seg-condition">
                                    <span class="seg-kind">"where property"</span>
                                    {text_input(None, "text", property, readonly, "property", "Property")}
                                    {select_input(None, "Comparison", comparison, readonly, &PROPERTY_COMPARISONS)}
                                    <Show when=move || !matches!(comparison.get().as_str(), "exists" | "does_not_exist")>
                                        {text_input(None, "text", value, readonly, "value", "Property value")}
                                    </Show>
                                    {remove_button(readonly, "Remove property filter", move || filters.update(|l| { if i < l.len() { l.remove(i); } }))}
                                </div>
                            }
                        }
                    </For>
                    {(!readonly).then(|| view! {
                        <button type="button" class="small" on:click=move |_| filters.update(|l| l.push(PropertyFilterDraft {
                            property: String::new(),
                            comparison: "equals".into(),
                            value: String::new(),
                        }))>"+ Property filter"</button>
                    })}
                </div>
            </Show>
        })}
    }
}

/// Checkboxes of the workspace's segments.
#[component]
fn SegmentPicker(
    chosen: Lens<Vec<String>>,
    segments: StoredValue<Vec<SegmentOption>>,
    readonly: bool,
    id: &'static str,
) -> impl IntoView {
    let ws = use_ws();
    if segments.with_value(|s| s.is_empty()) {
        return view! {
            <p class="hint" id=id>"No segments yet. "<a href=move || format!("/w/{}/segments/new", ws.get())>"Build a segment"</a>" to target part of your users."</p>
        }
        .into_any();
    }
    view! {
        <fieldset class="segment-picker" id=id>
            <legend class="sr-only">"Segments"</legend>
            {segments.get_value().into_iter().map(|s| {
                let (checked_id, change_id) = (s.id.clone(), s.id.clone());
                view! {
                    <label class="check">
                        <input type="checkbox" value=s.id.clone() disabled=readonly
                            prop:checked=move || chosen.with(|l| l.contains(&checked_id))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                let id = change_id.clone();
                                chosen.update(|l| {
                                    l.retain(|x| *x != id);
                                    if on { l.push(id); }
                                });
                            }/>
                        {s.name.clone()}
                        {s.archived.then(|| view! { <span class="badge muted">"archived"</span> })}
                    </label>
                }
            }).collect_view()}
        </fieldset>
    }
    .into_any()
}

fn takes_no_value(comparison: &str) -> bool {
    matches!(
        comparison,
        "exists" | "does_not_exist" | "is_true" | "is_false"
    )
}

/// The typed value for a comparison: numbers where numbers are compared, text otherwise (as the
/// segment builder does).
fn typed_value(comparison: &str, text: &str) -> serde_json::Value {
    let numeric = matches!(
        comparison,
        "greater_than" | "less_than" | "greater_than_or_equal_to" | "less_than_or_equal_to"
    );
    if takes_no_value(comparison) {
        serde_json::Value::Null
    } else if let (true, Ok(number)) = (numeric, text.trim().parse::<f64>()) {
        serde_json::json!(number)
    } else {
        serde_json::Value::String(text.to_string())
    }
}

fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn children_of(filter: &FilterDraft) -> Vec<FilterDraft> {
    match filter {
        FilterDraft::And { filters } | FilterDraft::Or { filters } => filters.clone(),
        other => vec![other.clone()],
    }
}

/// A filter as a list of conditions joined by "all of" or "any of": attribute conditions are
/// edited here; other conditions (made in the segment builder's vocabulary over the API) are
/// shown and can be removed.
#[component]
fn FilterEditor(filter: Lens<FilterDraft>, readonly: bool) -> impl IntoView {
    let any = filter.map(
        |f| matches!(f, FilterDraft::Or { .. }),
        |f, any| {
            let filters = children_of(f);
            *f = if any {
                FilterDraft::Or { filters }
            } else {
                FilterDraft::And { filters }
            };
        },
    );
    let conditions = filter.map(children_of, |f, filters| {
        *f = if matches!(f, FilterDraft::Or { .. }) {
            FilterDraft::Or { filters }
        } else {
            FilterDraft::And { filters }
        };
    });
    view! {
        <div class="filter-editor">
            <select aria-label="Match" disabled=readonly on:change=move |ev| any.set(event_target_value(&ev) == "any")>
                <option value="all" selected=move || !any.get()>"Users matching ALL of"</option>
                <option value="any" selected=move || any.get()>"Users matching ANY of"</option>
            </select>
            <div class="seg-children">
                // A row is made for one kind of condition: keyed by kind too, so a removal that
                // shifts another kind into its place makes a fresh row.
                <For
                    each=move || 0..conditions.len()
                    key=move |i| (*i, conditions.with(|l| matches!(l.get(*i), Some(FilterDraft::Attribute { .. }))))
                    let:i
                >
                    {condition_row(conditions, i, readonly)}
                </For>
            </div>
            {(!readonly).then(|| view! {
                <button type="button" class="small" on:click=move |_| conditions.update(|l| l.push(FilterDraft::Attribute {
                    name: String::new(),
                    custom: true,
                    comparison: "equals".into(),
                    value: serde_json::Value::String(String::new()),
                }))>"+ Condition"</button>
            })}
        </div>
    }
}

fn condition_row(conditions: Lens<Vec<FilterDraft>>, i: usize, readonly: bool) -> impl IntoView {
    let node = conditions.item(i);
    let remove = move || {
        conditions.update(|l| {
            if i < l.len() {
                l.remove(i);
            }
        })
    };
    let is_attribute = node.with(|n| matches!(n, FilterDraft::Attribute { .. }));
    if !is_attribute {
        return view! {
            <div class="seg-condition">
                <span class="seg-kind">"Condition"</span>
                <span>{move || describe_filter(&node.get())}</span>
                {remove_button(readonly, "Remove condition", remove)}
            </div>
        }
        .into_any();
    }
    let attr = |n: &FilterDraft| match n {
        FilterDraft::Attribute {
            name,
            custom,
            comparison,
            value,
        } => (name.clone(), *custom, comparison.clone(), value.clone()),
        _ => (
            String::new(),
            true,
            "equals".into(),
            serde_json::Value::Null,
        ),
    };
    let set_attr = |n: &mut FilterDraft, (name, custom, comparison, value)| {
        *n = FilterDraft::Attribute {
            name,
            custom,
            comparison,
            value,
        }
    };
    let parts = node.map(attr, set_attr);
    let custom = parts.map(
        |p| {
            if p.1 {
                "custom".to_string()
            } else {
                "standard".to_string()
            }
        },
        |p, v| p.1 = v == "custom",
    );
    let name = parts.map(|p| p.0.clone(), |p, v| p.0 = v.trim().to_string());
    let comparison = parts.map(
        |p| p.2.clone(),
        |p, v| {
            p.3 = typed_value(&v, &value_text(&p.3));
            p.2 = v;
        },
    );
    let value = parts.map(|p| value_text(&p.3), |p, v| p.3 = typed_value(&p.2, &v));
    view! {
        <div class="seg-condition">
            {select_input(None, "Attribute kind", custom, readonly, &[("custom", "Custom attribute"), ("standard", "Attribute")])}
            <input type="text" aria-label="Attribute name" placeholder="attribute (a.b for nested)"
                list=move || if custom.get() == "custom" { "" } else { "standard-attributes" }
                prop:value=move || name.get() readonly=readonly on:input=move |ev| name.set(event_target_value(&ev))/>
            <select aria-label="Comparison" disabled=readonly on:change=move |ev| comparison.set(event_target_value(&ev))>
                {COMPARISONS.iter().map(|(key, label)| view! {
                    <option value=*key selected=move || comparison.get() == *key>{*label}</option>
                }).collect_view()}
            </select>
            <Show when=move || !takes_no_value(&comparison.get())>
                {text_input(None, "text", value, readonly, "value", "Value")}
            </Show>
            {remove_button(readonly, "Remove condition", remove)}
        </div>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// The builder.

const TABS: [(&str, &str); 6] = [
    ("basics", "Basics"),
    ("entry", "Entry"),
    ("audience", "Audience"),
    ("settings", "Settings"),
    ("build", "Build"),
    ("summary", "Summary and launch"),
];

/// The tab where the field of an error is edited.
fn tab_of(field: &str) -> &'static str {
    if field.starts_with("entry") {
        "entry"
    } else if field.starts_with("audience") || field.starts_with("exit") {
        "audience"
    } else if field.starts_with("settings")
        || field.starts_with("variants")
        || field.starts_with("control_percent")
    {
        "settings"
    } else if field.starts_with("steps") {
        "build"
    } else if matches!(field, "name" | "description" | "tags") || field.starts_with("conversions") {
        "basics"
    } else {
        "summary"
    }
}

/// Tabs between a Canvas's builder and its report.
#[component]
fn CanvasTabs(ws: String, id: String, current: &'static str) -> impl IntoView {
    let build = format!("/w/{ws}/canvases/{id}");
    let report = format!("{build}/report");
    view! {
        <nav class="tabs" aria-label="Canvas">
            <a href=build aria-current=(current == "build").then_some("page")>"Build"</a>
            <a href=report aria-current=(current == "report").then_some("page")>"Report"</a>
        </nav>
    }
}

#[component]
pub fn CanvasPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let details = Resource::new(move || (ws.get(), id()), |(ws, id)| get_canvas(ws, id));
    view! {
        <Title text="Canvas"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match details.await {
                    Ok(details) => view! { <Builder details/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// What the builder's parts share.
#[derive(Clone, Copy)]
struct Ctx {
    draft: RwSignal<CanvasDraft>,
    root: Lens<CanvasDraft>,
    readonly: bool,
    errors: RwSignal<Option<FieldError>>,
    problems: RwSignal<Vec<ProblemView>>,
    /// Whether `problems` holds a check's answer yet.
    checked: RwSignal<bool>,
    /// The step whose side panel is open.
    selected: RwSignal<Option<String>>,
    /// The "+" whose menu is open, and where it is drawn.
    inserting: RwSignal<Option<(Slot, f64, f64)>>,
    tab: RwSignal<String>,
    segments: StoredValue<Vec<SegmentOption>>,
    report: StoredValue<Option<CanvasReport>>,
}

#[cfg(feature = "hydrate")]
fn random_hex() -> String {
    let n = (leptos::web_sys::js_sys::Math::random() * 4_294_967_296.0) as u64;
    format!("{:08x}", n & 0xffff_ffff)
}

#[cfg(not(feature = "hydrate"))]
fn random_hex() -> String {
    // Steps are only added by clicks in the browser; this keeps the server build total.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A short random step id, unused in `draft`.
fn new_step_id(draft: &CanvasDraft) -> String {
    loop {
        let id = random_hex();
        if draft.step(&id).is_none() {
            return id;
        }
    }
}

#[cfg(feature = "hydrate")]
fn browser_time_zone() -> Option<String> {
    use leptos::web_sys::js_sys::{Array, Intl, Object, Reflect};
    let options = Intl::DateTimeFormat::new(&Array::new(), &Object::new()).resolved_options();
    Reflect::get(&options, &"timeZone".into()).ok()?.as_string()
}

#[component]
fn Builder(details: CanvasDetails) -> impl IntoView {
    let ws = use_ws();
    let query = use_query_map();
    let draft = RwSignal::new(details.draft.clone());
    let readonly = !details.can_build || details.status == "archived";
    let initial_tab = query
        .read_untracked()
        .get("tab")
        .filter(|t| TABS.iter().any(|(k, _)| k == t))
        .unwrap_or_else(|| "basics".into());
    let ctx = Ctx {
        draft,
        root: Lens::root(draft),
        readonly,
        errors: RwSignal::new(None),
        problems: RwSignal::new(Vec::new()),
        checked: RwSignal::new(false),
        selected: RwSignal::new(None),
        inserting: RwSignal::new(None),
        tab: RwSignal::new(initial_tab),
        segments: StoredValue::new(details.segments.clone()),
        report: StoredValue::new(details.report.clone()),
    };
    let canvas_id = RwSignal::new(details.id.clone());
    let version = RwSignal::new(details.version);
    let live_version = RwSignal::new(details.live_version);
    let status = RwSignal::new(details.status.clone());
    let notice = RwSignal::new(None::<String>);
    let save = ServerAction::<SaveCanvas>::new();
    let launch = ServerAction::<SaveCanvas>::new();
    let check = ServerAction::<CheckCanvas>::new();
    let saved_once = RwSignal::new(false);
    let navigate = use_navigate();
    let tab = ctx.tab;

    // The browser's own zone is the natural default for a schedule's time zone.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if draft.with_untracked(|d| d.entry.time_zone.is_empty())
            && let Some(zone) = browser_time_zone()
        {
            draft.update(|d| d.entry.time_zone = zone);
        }
    });

    // What blocks a launch, checked again shortly after the last edit.
    let edits = StoredValue::new(0u64);
    Effect::new(move |_| {
        draft.track();
        let generation = edits.get_value() + 1;
        edits.set_value(generation);
        set_timeout(
            move || {
                if edits.try_get_value() == Some(generation) {
                    check.dispatch(CheckCanvas {
                        ws: ws.get_untracked(),
                        draft: draft.get_untracked(),
                    });
                }
            },
            std::time::Duration::from_millis(350),
        );
    });
    Effect::new(move |_| {
        if let Some(Ok(problems)) = check.value().get() {
            ctx.problems.set(problems);
            ctx.checked.set(true);
        }
    });
    // The check is current when no edit came after the last one sent.
    let checked = Signal::derive(move || {
        !check.pending().get()
            && check
                .value()
                .with(|v| v.as_ref().is_some_and(|r| r.is_ok()))
    });

    let apply = move |outcome: &CanvasSaveOutcome| -> Option<String> {
        ctx.errors.set(outcome.error.clone());
        let saved = outcome.saved.as_ref()?;
        version.set(Some(saved.version));
        live_version.set(saved.live_version);
        status.set(saved.status.clone());
        let ids = saved.variant_ids.clone();
        draft.update(|d| {
            for (variant, id) in d.variants.iter_mut().zip(ids.iter()) {
                if !id.is_empty() {
                    variant.id = Some(id.clone());
                }
            }
        });
        let first_save = canvas_id.get_untracked().is_none();
        canvas_id.set(Some(saved.id.clone()));
        first_save.then(|| saved.id.clone())
    };
    let nav = navigate.clone();
    Effect::new(move |_| {
        if let Some(Ok(outcome)) = save.value().get() {
            saved_once.set(outcome.error.is_none());
            if let Some(error) = &outcome.error {
                tab.set(tab_of(&error.field).to_string());
            }
            let launched = status.get_untracked() != "draft";
            if let (None, Some(saved)) = (&outcome.error, &outcome.saved)
                && launched
                && let Some(n) = saved.live_version
            {
                notice.set(Some(format!(
                    "Saved as version {n}; users already inside stay on their version."
                )));
            }
            if let Some(new_id) = apply(&outcome) {
                nav(
                    &format!(
                        "/w/{}/canvases/{new_id}?tab={}",
                        ws.get_untracked(),
                        tab.get_untracked()
                    ),
                    NavigateOptions {
                        replace: true,
                        ..Default::default()
                    },
                );
            }
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(outcome)) = launch.value().get() {
            let first_save = apply(&outcome);
            match (&outcome.error, &outcome.saved) {
                (None, Some(saved)) => {
                    notice.set(Some("Launched: users enter from now on.".into()));
                    if first_save.is_some() {
                        navigate(
                            &format!(
                                "/w/{}/canvases/{}?tab=summary",
                                ws.get_untracked(),
                                saved.id
                            ),
                            NavigateOptions {
                                replace: true,
                                ..Default::default()
                            },
                        );
                    }
                }
                (Some(error), _) => {
                    let owner = tab_of(&error.field);
                    if owner != "summary" {
                        tab.set(owner.to_string());
                    }
                }
                _ => {}
            }
        }
    });

    let dispatch = move |action: ServerAction<SaveCanvas>, launching: bool| {
        ctx.errors.set(None);
        saved_once.set(false);
        notice.set(None);
        action.dispatch(SaveCanvas {
            ws: ws.get_untracked(),
            id: canvas_id.get_untracked(),
            version: version.get_untracked(),
            draft: draft.get_untracked(),
            launch: launching,
        });
    };
    let busy = Signal::derive(move || save.pending().get() || launch.pending().get());
    let save_bar = move |next: Option<(&'static str, &'static str)>| {
        view! {
            <div class="save-bar">
                <FormError message=Signal::derive(move || ctx.errors.get().map(|e| {
                    let tab_name = TABS.iter().find(|(k, _)| *k == tab_of(&e.field)).map(|(_, l)| *l).unwrap_or("");
                    format!("{} — {} ({})", e.field, e.message, tab_name)
                }))/>
                <FormError message=last_error(save.value())/>
                <div class="actions-row">
                    {(!readonly).then(|| view! {
                        <button type="button" class="save-draft" disabled=move || busy.get()
                            on:click=move |_| dispatch(save, false)>
                            {move || if save.pending().get() { "Saving…" } else if status.get() == "draft" { "Save draft" } else { "Save as new version" }}
                        </button>
                    })}
                    {next.map(|(key, label)| view! {
                        <button type="button" class="link" on:click=move |_| tab.set(key.to_string())>{label}</button>
                    })}
                    <Show when=move || saved_once.get() && !save.pending().get()>
                        <span class="saved" role="status">"Saved"</span>
                    </Show>
                </div>
            </div>
        }
    };

    let title = if details.id.is_some() {
        details.draft.name.clone()
    } else {
        "New Canvas".into()
    };
    let ws_id = ws.get_untracked();
    let base_url = details.base_url.clone();
    view! {
        <div class="page-head">
            <div class="title-row">
                <h1 id="canvas-title">{title}</h1>
                {move || view! { <CanvasStatus status=status.get()/> }}
                {move || live_version.get().map(|v| view! { <span class="badge muted" id="canvas-version">{format!("version {v}")}</span> })}
            </div>
            <a href=format!("/w/{ws_id}/canvases")>"All Canvases"</a>
        </div>
        {details.id.clone().filter(|_| details.launched.is_some()).map(|id| view! { <CanvasTabs ws=ws_id.clone() id current="build"/> })}
        <Show when=move || status.get() != "draft" && status.get() != "archived">
            <p class="notice" id="live-edit-note">"This Canvas has been launched. Saving your changes freezes them as a new version for new entries; users already inside finish on the version they entered."</p>
        </Show>
        {readonly.then(|| view! {
            <p class="notice">{if details.can_build { "Archived Canvases cannot be edited; unarchive it first." } else { "You can look, not edit: your role in this workspace is Viewer." }}</p>
        })}
        {move || notice.get().map(|n| view! { <p class="callout success" id="canvas-notice" role="status">{n}</p> })}
        <datalist id="canvas-events">
            {details.events.iter().map(|e| view! { <option value=e.clone()></option> }).collect_view()}
        </datalist>
        <datalist id="canvas-products">
            {details.products.iter().map(|p| view! { <option value=p.clone()></option> }).collect_view()}
        </datalist>
        <datalist id="time-zones">
            {TIME_ZONES.iter().map(|z| view! { <option value=*z></option> }).collect_view()}
        </datalist>
        <datalist id="standard-attributes">
            {STANDARD_ATTRIBUTES.iter().map(|a| view! { <option value=*a></option> }).collect_view()}
        </datalist>
        <div class="steps" role="tablist" aria-label="Canvas steps">
            {TABS.iter().enumerate().map(|(i, (key, label))| {
                let key = *key;
                view! {
                    <button type="button" role="tab" id=format!("tab-{key}")
                        aria-selected=move || (tab.get() == key).to_string()
                        class:has-error=move || ctx.errors.get().is_some_and(|e| tab_of(&e.field) == key)
                        on:click=move |_| tab.set(key.to_string())>
                        <span class="step-number">{i + 1}</span>{*label}
                    </button>
                }
            }).collect_view()}
        </div>

        <section class="step-panel" role="tabpanel" id="panel-basics" aria-labelledby="tab-basics" hidden=move || tab.get() != "basics">
            <BasicsTab ctx/>
            {save_bar(Some(("entry", "Next: Entry →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-entry" aria-labelledby="tab-entry" hidden=move || tab.get() != "entry">
            <EntryTab ctx canvas_id base_url=base_url.clone()/>
            {save_bar(Some(("audience", "Next: Audience →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-audience" aria-labelledby="tab-audience" hidden=move || tab.get() != "audience">
            <AudienceTab ctx/>
            {save_bar(Some(("settings", "Next: Settings →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-settings" aria-labelledby="tab-settings" hidden=move || tab.get() != "settings">
            <SettingsTab ctx/>
            {save_bar(Some(("build", "Next: Build →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-build" aria-labelledby="tab-build" hidden=move || tab.get() != "build">
            <BuildTab ctx/>
            {save_bar(Some(("summary", "Next: Summary →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-summary" aria-labelledby="tab-summary" hidden=move || tab.get() != "summary">
            <SummaryTab ctx/>
            {save_bar(None)}
            {(!readonly).then(|| view! {
                <Show when=move || status.get() == "draft">
                    <div class="card launch-card">
                        <h2>"Launch"</h2>
                        <p class="hint">"Launching saves the Canvas, checks it is complete, and lets users enter. You can pause or stop it at any time."</p>
                        <Show when=move || !ctx.problems.with(|p| p.is_empty())>
                            <p class="hint" id="launch-blocked">"Fix the problems above to launch."</p>
                        </Show>
                        <FormError message=last_error(launch.value())/>
                        <button type="button" class="primary" id="launch-canvas"
                            disabled=move || busy.get() || !checked.get() || !ctx.problems.with(|p| p.is_empty())
                            on:click=move |_| dispatch(launch, true)>
                            {move || if launch.pending().get() { "Launching…" } else { "Launch Canvas" }}
                        </button>
                    </div>
                </Show>
            })}
        </section>
    }
}

#[component]
fn BasicsTab(ctx: Ctx) -> impl IntoView {
    let (readonly, errors) = (ctx.readonly, ctx.errors);
    view! {
        <section class="card">
            <h2>"Canvas"</h2>
            <div class="form-grid">
                <label for="canvas-name" class="field-label">"Canvas name"</label>
                <div>
                    {text_input(Some("canvas-name"), "text", field!(ctx.root, name), readonly, "Onboarding journey", "Canvas name")}
                    <FieldMsg errors field="name"/>
                </div>
                <label for="canvas-description" class="field-label">"Description"</label>
                <div>
                    {text_input(Some("canvas-description"), "text", field!(ctx.root, description), readonly, "What it is for (optional)", "Description")}
                    <FieldMsg errors field="description"/>
                </div>
                <label for="canvas-tags" class="field-label">"Tags"</label>
                <div>
                    {text_input(Some("canvas-tags"), "text", field!(ctx.root, tags), readonly, "onboarding, emea", "Tags")}
                    <p class="hint">"Comma-separated; the list filters by tag."</p>
                    <FieldMsg errors field="tags"/>
                </div>
            </div>
        </section>
        <ConversionEditor ctx/>
    }
}

/// The most conversion events a Canvas has (Braze's limit).
const MAX_CONVERSIONS: usize = 4;

/// Conversion event `i` of the list (a default one once it is gone: a row being removed may
/// still be read once).
fn conversion_at(list: Lens<Vec<ConversionDraft>>, i: usize) -> Lens<ConversionDraft> {
    list.map(
        move |l| l.get(i).cloned().unwrap_or_else(new_conversion),
        move |l, value| {
            if let Some(slot) = l.get_mut(i) {
                *slot = value;
            }
        },
    )
}

/// What “+ Conversion event” adds: a custom event to name, within 3 days (Braze's default).
fn new_conversion() -> ConversionDraft {
    ConversionDraft {
        trigger: TriggerDraft::default(),
        window: "3".into(),
        window_unit: "days".into(),
    }
}

/// The Canvas's conversion events, as the campaign builder edits a campaign's: up to 4, each a
/// custom event or a purchase within a window; the first is primary.
#[component]
fn ConversionEditor(ctx: Ctx) -> impl IntoView {
    let (readonly, errors) = (ctx.readonly, ctx.errors);
    let conversions = field!(ctx.root, conversions);
    view! {
        <section class="card" id="canvas-conversions">
            <h2>"Conversion events"</h2>
            <p class="hint">"A user converts by doing this within the window after entering the Canvas; each step they went through before it counts the conversion. The first one is primary: it is the one the analytics count. Up to 4."</p>
            <div class="rows-editor">
                <For each=move || 0..conversions.with(Vec::len) key=|i| *i let:i>
                    {
                        let row = conversion_at(conversions, i);
                        let window = field!(row, window);
                        let unit = field!(row, window_unit);
                        view! {
                            <div class="seg-condition conversion-row" data-index=i>
                                {(i == 0).then(|| view! { <span class="badge muted">"Primary"</span> })}
                                <TriggerEditor trigger=field!(row, trigger) readonly/>
                                <span>"within"</span>
                                <input type="number" aria-label="Window" min="1" prop:value=move || window.get() readonly=readonly
                                    on:input=move |ev| window.set(event_target_value(&ev))/>
                                {select_input(None, "Window unit", unit, readonly, &WINDOW_UNITS)}
                                {remove_button(readonly, "Remove conversion event", move || conversions.update(|l| { if i < l.len() { l.remove(i); } }))}
                            </div>
                        }
                    }
                </For>
                {(!readonly).then(|| view! {
                    <Show when=move || conversions.with(Vec::len) < MAX_CONVERSIONS>
                        <button type="button" class="small" id="add-conversion"
                            on:click=move |_| conversions.update(|l| l.push(new_conversion()))>"+ Conversion event"</button>
                    </Show>
                })}
            </div>
            <FieldMsg errors field="conversions"/>
        </section>
    }
}

#[component]
fn EntryTab(ctx: Ctx, canvas_id: RwSignal<Option<String>>, base_url: String) -> impl IntoView {
    let (readonly, errors) = (ctx.readonly, ctx.errors);
    let entry = field!(ctx.root, entry);
    let kind = field!(entry, kind);
    let schedule = field!(entry, schedule);
    let days = field!(entry, days);
    let schedule_is = move |wanted: &'static [&'static str]| {
        Signal::derive(move || wanted.contains(&schedule.get().as_str()))
    };
    let dated = schedule_is(&["once", "daily", "weekly", "monthly"]);
    let repeating = schedule_is(&["daily", "weekly", "monthly"]);
    let weekly = schedule_is(&["weekly"]);
    let monthly = schedule_is(&["monthly"]);
    let every_unit = move || match schedule.get().as_str() {
        "daily" => "day(s)",
        "weekly" => "week(s)",
        _ => "month(s)",
    };
    let kinds = [
        (
            "scheduled",
            "Scheduled",
            "At launch, once at a date and time, or repeating.",
        ),
        (
            "action",
            "Action-based",
            "When a user performs a custom event or a purchase.",
        ),
        (
            "api",
            "API-triggered",
            "When your system calls /api/canvas/trigger/send.",
        ),
    ];
    let base = StoredValue::new(base_url);
    view! {
        <section class="card">
            <h2>"How users enter"</h2>
            <div class="choice-cards" role="radiogroup" aria-label="Entry type">
                {kinds.into_iter().map(|(key, label, hint)| view! {
                    <label class="choice" class:chosen=move || kind.get() == key>
                        <input type="radio" name="entry-kind" value=key disabled=readonly
                            prop:checked=move || kind.get() == key on:change=move |_| kind.set(key.to_string())/>
                        <span><strong>{label}</strong><span class="hint">{hint}</span></span>
                    </label>
                }).collect_view()}
            </div>
            <FieldMsg errors field="entry"/>
        </section>

        <Show when=move || kind.get() == "scheduled">
            <section class="card" id="entry-scheduled">
                <h2>"Schedule"</h2>
                <div class="form-grid">
                    <label for="schedule-kind" class="field-label">"Users enter"</label>
                    <div>{select_input(Some("schedule-kind"), "Users enter", schedule, readonly, &SCHEDULES)}</div>
                    <Show when=move || dated.get()>
                        <label for="schedule-starts-on" class="field-label">{move || if schedule.get() == "once" { "On" } else { "Starting on" }}</label>
                        <div>{text_input(Some("schedule-starts-on"), "date", field!(entry, starts_on), readonly, "", "Starting on")}</div>
                        <label for="schedule-time" class="field-label">"At"</label>
                        <div>{text_input(Some("schedule-time"), "time", field!(entry, time), readonly, "09:00", "At")}</div>
                    </Show>
                    <Show when=move || repeating.get()>
                        <label for="schedule-every" class="field-label">"Every"</label>
                        <div><span class="with-unit">{text_input(Some("schedule-every"), "number", field!(entry, every), readonly, "1", "Every")}{every_unit}</span></div>
                    </Show>
                    <Show when=move || weekly.get()>
                        <span class="field-label">"On"</span>
                        <div class="weekdays" role="group" aria-label="Days of the week">
                            {WEEKDAYS.into_iter().map(|(key, label)| view! {
                                <label class="check">
                                    <input type="checkbox" value=key disabled=readonly
                                        prop:checked=move || days.with(|l| l.iter().any(|x| x == key))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            days.update(|l| {
                                                l.retain(|x| x != key);
                                                if on { l.push(key.to_string()); }
                                            });
                                        }/>
                                    {label}
                                </label>
                            }).collect_view()}
                        </div>
                    </Show>
                    <Show when=move || monthly.get()>
                        <label for="schedule-month-day" class="field-label">"On day"</label>
                        <div>{text_input(Some("schedule-month-day"), "number", field!(entry, month_day), readonly, "1", "On day")}</div>
                    </Show>
                    <Show when=move || repeating.get()>
                        <label for="schedule-ends-on" class="field-label">"Ending on"</label>
                        <div>
                            {text_input(Some("schedule-ends-on"), "date", field!(entry, ends_on), readonly, "", "Ending on")}
                            <p class="hint">"Optional; the last day included."</p>
                        </div>
                    </Show>
                    <Show when=move || dated.get()>
                        <label for="schedule-time-zone" class="field-label">"Time zone"</label>
                        <div>
                            <input id="schedule-time-zone" type="text" list="time-zones" placeholder="Europe/Paris"
                                prop:value=move || entry.with(|e| e.time_zone.clone()) readonly=readonly
                                on:input=move |ev| entry.update(|e| e.time_zone = event_target_value(&ev))/>
                            {check_input("schedule-local-time", field!(entry, in_local_time), readonly, "Enter users at this time in their own time zone")}
                        </div>
                    </Show>
                </div>
                <FieldMsg errors field="entry.schedule"/>
            </section>
        </Show>

        <Show when=move || kind.get() == "action">
            <section class="card" id="entry-action">
                <h2>"Entry trigger"</h2>
                <div class="form-grid">
                    <label for="entry-trigger" class="field-label">"When a user"</label>
                    <div>
                        <TriggerEditor trigger=field!(entry, trigger) readonly with_filters=true id="entry-trigger"/>
                        <p class="hint">"The event's properties become the entry properties: {{canvas_entry_properties.${x}}} or {{context.${x}}} in every step."</p>
                        <FieldMsg errors field="entry.trigger"/>
                    </div>
                    <label for="entry-starts-at" class="field-label">"Entry window starts"</label>
                    <div>
                        {text_input(Some("entry-starts-at"), "datetime-local", field!(entry, starts_at), readonly, "", "Entry window starts")}
                        <p class="hint">"UTC. Optional."</p>
                        <FieldMsg errors field="entry.starts_at"/>
                    </div>
                    <label for="entry-ends-at" class="field-label">"Entry window ends"</label>
                    <div>
                        {text_input(Some("entry-ends-at"), "datetime-local", field!(entry, ends_at), readonly, "", "Entry window ends")}
                        <p class="hint">"UTC. Optional."</p>
                        <FieldMsg errors field="entry.ends_at"/>
                    </div>
                </div>
            </section>
        </Show>

        <Show when=move || kind.get() == "api">
            <section class="card" id="entry-api">
                <h2>"API-triggered"</h2>
                <p>"Your system decides who enters and when, passing per-call "<code>"context"</code>" (entry properties) that every step can use."</p>
                {move || match canvas_id.get() {
                    None => view! { <p class="hint" id="api-usage">"Save the draft to get the canvas_id your system will use."</p> }.into_any(),
                    Some(id) => {
                        let curl = format!(
                            r#"curl -X POST {}/api/canvas/trigger/send \
    -H 'Authorization: Bearer YOUR-REST-API-KEY' \
    -H 'Content-Type: application/json' \
  -d '{{
    "canvas_id": "{id}",
    "context": {{"coupon": "WELCOME10"}},
    "recipients": [{{"external_user_id": "user-123"}}]
  }}'"#,
                            base.get_value()
                        );
                        view! {
                            <div id="api-usage">
                                <dl class="facts">
                                    <dt>"canvas_id"</dt>
                                    <dd><code id="canvas-id">{id.clone()}</code> " " {copy_button(id.clone())}</dd>
                                </dl>
                                <h3>"Trigger this Canvas"</h3>
                                <pre class="body curl">{curl.clone()}</pre>
                                {copy_button(curl)}
                                <p class="hint">"In the steps: {{context.${coupon}}} (or {{canvas_entry_properties.${coupon}}}). The key needs the canvas.trigger.send permission; the Canvas must be launched."</p>
                            </div>
                        }.into_any()
                    }
                }}
            </section>
        </Show>
    }
}

#[component]
fn AudienceTab(ctx: Ctx) -> impl IntoView {
    let ws = use_ws();
    let (readonly, errors) = (ctx.readonly, ctx.errors);
    let segment_ids = field!(ctx.root, segment_ids);
    let audience_filter = field!(ctx.root, audience_filter);
    let exit = field!(ctx.root, exit);
    let exit_events = field!(exit, events);
    let exit_segments = field!(exit, segment_ids);
    let reach = ServerAction::<EstimateCampaignReach>::new();
    // Count again shortly after the last change of the chosen segments.
    let edits = StoredValue::new(0u64);
    Effect::new(move |_| {
        segment_ids.get.track();
        let generation = edits.get_value() + 1;
        edits.set_value(generation);
        set_timeout(
            move || {
                if edits.try_get_value() == Some(generation) {
                    reach.dispatch(EstimateCampaignReach {
                        ws: ws.get_untracked(),
                        segment_ids: segment_ids.get_untracked(),
                        filter: audience_filter.get_untracked(),
                    });
                }
            },
            std::time::Duration::from_millis(300),
        );
    });
    view! {
        <div class="editor-grid">
            <section class="card">
                <h2>"Entry audience"</h2>
                <p class="hint">"Users must be in every chosen segment when they enter. With none chosen, anyone can enter."</p>
                <SegmentPicker chosen=segment_ids segments=ctx.segments readonly id="entry-segments"/>
                {move || audience_filter.with(|f| f.is_some()).then(|| view! { <p class="notice">"This Canvas also has an audience filter set over the management API; it is kept as it is."</p> })}
                <FieldMsg errors field="audience"/>
            </section>
            <section class="card" id="canvas-reach-card">
                <h2>"Estimated reach"</h2>
                <FormError message=last_error(reach.value())/>
                {move || match reach.value().get() {
                    Some(Ok(n)) => view! {
                        <p class="big-number" id="canvas-reach">{n}</p>
                        <p class="hint">"users in the entry audience right now"</p>
                    }.into_any(),
                    _ => view! { <p class="loading">"Counting…"</p> }.into_any(),
                }}
            </section>
        </div>
        <section class="card" id="exit-criteria">
            <h2>"Exit criteria"</h2>
            <p class="hint">"A user who performs one of these events, or leaves one of these segments, exits the Canvas when their current step ends."</p>
            <h3>"Exit events"</h3>
            <div class="rows-editor">
                <For each=move || 0..exit_events.len() key=|i| *i let:i>
                    <div class="exception-row">
                        <TriggerEditor trigger=exit_events.item(i) readonly/>
                        {remove_button(readonly, "Remove exit event", move || exit_events.update(|l| { if i < l.len() { l.remove(i); } }))}
                    </div>
                </For>
                {(!readonly).then(|| view! {
                    <button type="button" class="small" on:click=move |_| exit_events.update(|l| l.push(TriggerDraft::default()))>"+ Exit event"</button>
                })}
                <FieldMsg errors field="exit.events"/>
            </div>
            <h3 class="seg-title">"Exit when no longer in"</h3>
            <SegmentPicker chosen=exit_segments segments=ctx.segments readonly id="exit-segments"/>
            <FieldMsg errors field="exit.segment_ids"/>
        </section>
    }
}

#[component]
fn SettingsTab(ctx: Ctx) -> impl IntoView {
    let (readonly, errors) = (ctx.readonly, ctx.errors);
    let settings = field!(ctx.root, settings);
    let reentry = field!(settings, reentry);
    let variants = field!(ctx.root, variants);
    let control = field!(ctx.root, control_percent);
    let total = move || {
        variants.with(|l| {
            l.iter()
                .map(|v| v.percent.trim().parse::<u32>().unwrap_or(0))
                .sum::<u32>()
        }) + control.get().trim().parse::<u32>().unwrap_or(0)
    };
    view! {
        <section class="card">
            <h2>"Send settings"</h2>
            <div class="form-grid">
                <label for="settings-rate" class="field-label">"Rate limit"</label>
                <div>
                    <span class="with-unit">{text_input(Some("settings-rate"), "number", field!(settings, rate_per_minute), readonly, "no limit", "Rate limit")}"messages per minute, across the Canvas's Message steps"</span>
                    <FieldMsg errors field="settings.rate_per_minute"/>
                </div>
                <span class="field-label">"Re-entry"</span>
                <div>
                    {check_input("settings-reentry", reentry, readonly, "Users can enter again")}
                    <Show when=move || reentry.get()>
                        <span class="with-unit">
                            "after"
                            {text_input(Some("settings-reentry-after"), "number", field!(settings, reentry_after), readonly, "1", "Re-entry after")}
                            {select_input(None, "Re-entry unit", field!(settings, reentry_unit), readonly, &WINDOW_UNITS)}
                        </span>
                    </Show>
                    <p class="hint">"Off: each user enters once. 0: even while still inside."</p>
                    <FieldMsg errors field="settings.reentry_after_seconds"/>
                </div>
                <label for="settings-entry-limit" class="field-label">"Entry limit"</label>
                <div>
                    <span class="with-unit">
                        {text_input(Some("settings-entry-limit"), "number", field!(settings, entry_limit), readonly, "no limit", "Entry limit")}
                        "entries per"
                        {select_input(None, "Entry limit period", field!(settings, entry_limit_per), readonly, &[("day", "day (UTC)"), ("lifetime", "lifetime of the Canvas")])}
                    </span>
                    <FieldMsg errors field="settings.entry_limit"/>
                </div>
                <label for="settings-time-zone" class="field-label">"Time zone"</label>
                <div>
                    <input id="settings-time-zone" type="text" list="time-zones" placeholder="UTC"
                        prop:value=move || settings.with(|s| s.time_zone.clone()) readonly=readonly
                        on:input=move |ev| settings.update(|s| s.time_zone = event_target_value(&ev))/>
                    <p class="hint">"For Delay-until-weekday steps and schedules, when a user has no time zone of their own."</p>
                    <FieldMsg errors field="settings.time_zone"/>
                </div>
            </div>
        </section>
        <section class="card" id="canvas-variants">
            <h2>"Variants"</h2>
            <p class="hint">"Each variant is a whole path of its own; a user's variant is chosen at first entry and kept. The control group enters but gets no messages."</p>
            <div class="rows-editor">
                <For each=move || 0..variants.len() key=|i| *i let:i>
                    {
                        let variant = variants.item(i);
                        view! {
                            <div class="seg-condition variant-row">
                                {text_input(None, "text", field!(variant, name), readonly, "Variant name", "Variant name")}
                                <span class="with-unit">{text_input(None, "number", field!(variant, percent), readonly, "0", "Variant percent")}"%"</span>
                                <Show when=move || { variants.len() > 1 }>
                                    {remove_button(readonly, "Remove variant", move || ctx.root.update(|d| remove_variant(d, i)))}
                                </Show>
                            </div>
                        }
                    }
                </For>
                {(!readonly).then(|| view! {
                    <button type="button" class="small" on:click=move |_| variants.update(|l| {
                        let number = l.len() + 1;
                        l.push(PathVariantDraft {
                            id: None,
                            name: format!("Variant {number}"),
                            percent: "0".into(),
                            first_step: None,
                        });
                    })>"+ Variant"</button>
                })}
                <div class="seg-condition variant-row">
                    <label for="control-percent">"Control group"</label>
                    <span class="with-unit">{text_input(Some("control-percent"), "number", control, readonly, "0", "Control group percent")}"%"</span>
                </div>
                <p class="hint" class:field-error=move || total() != 100>{move || format!("Total: {}% (must be 100%)", total())}</p>
            </div>
            <FieldMsg errors field="variants"/>
            <FieldMsg errors field="control_percent"/>
        </section>
    }
}

/// Removes variant `i` and the steps only its path used.
fn remove_variant(draft: &mut CanvasDraft, i: usize) {
    if draft.variants.len() < 2 || i >= draft.variants.len() {
        return;
    }
    let before = draft.reachable();
    draft.variants.remove(i);
    let after = draft.reachable();
    draft
        .steps
        .retain(|s| !before.contains(&s.id) || after.contains(&s.id));
}

/// Removes path `index` of step `id` and the steps only that path led to.
fn remove_path(draft: &mut CanvasDraft, id: &str, index: usize) {
    let before = draft.reachable();
    if let Some(step) = draft.steps.iter_mut().find(|s| s.id == id) {
        match &mut step.kind {
            StepKindDraft::AudiencePaths { paths, .. } if index < paths.len() => {
                paths.remove(index);
            }
            StepKindDraft::ActionPaths { paths, .. } if index < paths.len() => {
                paths.remove(index);
            }
            StepKindDraft::Experiment { paths, .. } if index < paths.len() => {
                paths.remove(index);
            }
            _ => return,
        }
    }
    let after = draft.reachable();
    draft
        .steps
        .retain(|s| !before.contains(&s.id) || after.contains(&s.id));
}

/// The problems that block a launch; a click leads to the step or the tab concerned.
#[component]
fn ProblemList(ctx: Ctx, id: &'static str) -> impl IntoView {
    view! {
        <div id=id class="canvas-problems" aria-live="polite">
            {move || {
                let problems = ctx.problems.get();
                if !ctx.checked.get() {
                    return view! { <p class="loading">"Checking…"</p> }.into_any();
                }
                if problems.is_empty() {
                    return view! { <p class="hint ok-text no-problems">"No problems: ready to launch."</p> }.into_any();
                }
                let draft = ctx.draft.get();
                view! {
                    <ul class="problem-list">
                        {problems.into_iter().map(|p| {
                            let step = p.step_id.as_ref().and_then(|id| draft.step(id)).map(|s| s.title());
                            let step_id = p.step_id.clone();
                            let field = p.field.clone();
                            view! {
                                <li class="problem" data-step=p.step_id.clone().unwrap_or_default()>
                                    <button type="button" class="link" on:click=move |_| {
                                        match &step_id {
                                            Some(id) => {
                                                ctx.tab.set("build".into());
                                                ctx.selected.set(Some(id.clone()));
                                            }
                                            None => ctx.tab.set(tab_of(&field).to_string()),
                                        }
                                    }>
                                        {step.map(|s| format!("“{s}”: ")).unwrap_or_default()}
                                        {p.message.clone()}
                                    </button>
                                    <span class="hint">" "{p.field.clone()}</span>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </div>
    }
}

#[component]
fn BuildTab(ctx: Ctx) -> impl IntoView {
    let layout = Memo::new(move |_| ctx.draft.with(layout));
    let count = move || ctx.draft.with(|d| d.steps.len());
    let problem_count = move || ctx.problems.with(|p| p.len());
    view! {
        <div class="build-head">
            <p class="hint">
                {move || format!("{} step(s) · ", count())}
                {move || match (ctx.checked.get(), problem_count()) {
                    (false, _) => "checking…".to_string(),
                    (true, 0) => "no problems".to_string(),
                    (true, n) => format!("{n} problem(s) to fix before launch"),
                }}
                {move || ctx.report.with_value(|r| r.is_some()).then_some(" · figures of the last 30 days on each step")}
            </p>
        </div>
        <div class="canvas-build" class:with-panel=move || ctx.selected.get().is_some()>
            <div class="flow-scroll card" id="canvas-flow">
                <Diagram ctx layout/>
            </div>
            {move || ctx.selected.get().map(|id| view! { <StepPanel ctx id/> })}
        </div>
        <section class="card">
            <h2>"Problems"</h2>
            <ProblemList ctx id="build-problems"/>
        </section>
    }
}

/// The flow: SVG edges behind absolutely placed cards, "+" buttons and branch labels.
#[component]
fn Diagram(ctx: Ctx, layout: Memo<Layout>) -> impl IntoView {
    let readonly = ctx.readonly;
    let stats = ctx.report;
    let branch_count = move |edge: &PlacedEdge| -> Option<u64> {
        let from = edge.from_step.as_ref()?;
        if edge.label.is_empty() {
            return None;
        }
        stats.with_value(|r| {
            r.as_ref()?.step(from).and_then(|s| {
                s.branches
                    .iter()
                    .find(|(name, _)| same_branch(name, &edge.label))
                    .map(|(_, n)| *n)
            })
        })
    };
    view! {
        <div class="flow" style=move || {
            // An open menu near the bottom gets room below the last row.
            let menu_bottom = ctx.inserting.with(|m| m.as_ref().map(|(_, _, y)| y + 340.0)).unwrap_or(0.0);
            layout.with(|l| format!("width: {}px; height: {}px", l.width, l.height.max(menu_bottom)))
        }>
            <svg class="flow-edges" aria-hidden="true"
                width=move || layout.with(|l| l.width) height=move || layout.with(|l| l.height)>
                {move || layout.with(|l| l.edges.iter().map(|e| {
                    let mid = e.y1 + 18.0;
                    let d = format!("M {} {} V {} H {} V {}", e.x1, e.y1, mid, e.x2, e.y2);
                    view! { <path d=d class="flow-edge"/> }
                }).collect_view())}
            </svg>
            {move || layout.with(|l| l.edges.iter().map(|e| {
                let label = (!e.label.is_empty()).then(|| {
                    let text = match branch_count(e) {
                        Some(n) => format!("{} · {n}", e.label),
                        None => e.label.clone(),
                    };
                    view! {
                        <span class="edge-label" style=format!("left: {}px; top: {}px", e.x2, e.y1 + 22.0)>{text}</span>
                    }
                });
                let plus = e.insert.clone().filter(|_| !readonly).map(|slot| {
                    let (x, y) = if e.label.is_empty() {
                        (e.x2, (e.y1 + e.y2) / 2.0 - 11.0)
                    } else {
                        (e.x2, e.y2 - 30.0)
                    };
                    let key = slot.key();
                    let aria = format!("Add a step {}", e.place);
                    view! {
                        <button type="button" class="edge-add" data-slot=key aria-label=aria.clone() title=aria
                            style=format!("left: {x}px; top: {y}px")
                            on:click=move |_| ctx.inserting.set(Some((slot.clone(), x, y + 24.0)))>"+"</button>
                    }
                });
                view! { {label}{plus} }
            }).collect_view())}
            {move || layout.with(|l| l.nodes.iter().map(|n| node_view(ctx, n.clone())).collect_view())}
            <StepMenu ctx/>
        </div>
    }
}

fn node_view(ctx: Ctx, node: PlacedNode) -> AnyView {
    let style = format!(
        "left: {}px; top: {}px; width: {}px; height: {}px",
        node.x - node.w / 2.0,
        node.y,
        node.w,
        node.h
    );
    match node.kind {
        NodeKind::Entry => view! {
            <div class="flow-node entry-node" style=style id="flow-entry">
                <strong>"Entry"</strong>
                <span class="node-summary">{node.summary}</span>
            </div>
        }
        .into_any(),
        NodeKind::Variant(i) => view! {
            <div class="flow-node variant-node" style=style data-variant=i>{node.title}</div>
        }
        .into_any(),
        NodeKind::Control => view! {
            <div class="flow-node variant-node control-node" style=style title="Users in the control group enter, get no messages, and count for conversions.">{node.title}</div>
        }
        .into_any(),
        NodeKind::Link(id) => {
            let target = id.clone();
            view! {
                <button type="button" class="flow-node link-node" style=style
                    on:click=move |_| ctx.selected.set(Some(target.clone()))>
                    {format!("→ {}", node.title)}
                </button>
            }
            .into_any()
        }
        NodeKind::Empty(slot) => {
            if ctx.readonly {
                return view! { <div class="flow-node end-node" style=style>"End"</div> }.into_any();
            }
            let aria = format!("Add a step {}", node.place);
            let (x, y) = (node.x, node.y + node.h);
            let key = slot.key();
            view! {
                <button type="button" class="flow-node slot-add" style=style data-slot=key
                    aria-label=aria.clone() title=aria
                    on:click=move |_| ctx.inserting.set(Some((slot.clone(), x, y)))>
                    <span class="plus">"+"</span>" End"
                </button>
            }
            .into_any()
        }
        NodeKind::Step(id) => {
            let (select_id, selected_id, problem_id, stats_id) =
                (id.clone(), id.clone(), id.clone(), id.clone());
            let problems = move || {
                ctx.problems.with(|list| {
                    list.iter()
                        .filter(|p| p.step_id.as_deref() == Some(problem_id.as_str()))
                        .map(|p| p.message.clone())
                        .collect::<Vec<_>>()
                })
            };
            let stats = ctx
                .report
                .with_value(|r| r.as_ref().and_then(|r| r.step(&stats_id).cloned()));
            let conversions = ctx
                .report
                .with_value(|r| r.as_ref().is_some_and(|r| r.primary_conversion.is_some()));
            view! {
                <button type="button" class=format!("flow-node step-card kind-{}", node.type_name) style=style
                    data-step-id=id.clone() data-kind=node.type_name.clone()
                    aria-pressed=move || (ctx.selected.get().as_deref() == Some(selected_id.as_str())).to_string()
                    on:click=move |_| {
                        ctx.inserting.set(None);
                        ctx.selected.set(Some(select_id.clone()));
                    }>
                    <span class="card-type">{type_label(&node.type_name)}</span>
                    <span class="card-title">{node.title}</span>
                    <span class="node-summary">{node.summary}</span>
                    {stats.map(|s| view! { <span class="card-stats">{stats_line(&s, conversions)}</span> })}
                    {move || {
                        let list = problems();
                        (!list.is_empty()).then(|| {
                            let first = list[0].clone();
                            let all = list.join("\n");
                            view! {
                                <span class="problem-badge" title=all role="img" aria-label=format!("{} problem(s)", list.len())>{list.len()}</span>
                                <span class="card-problem">{first}</span>
                            }
                        })
                    }}
                </button>
            }
            .into_any()
        }
    }
}

/// A step card's figures; `conversions` when the Canvas has a conversion event.
fn stats_line(s: &StepStatsView, conversions: bool) -> String {
    let mut parts = vec![format!("{} entered", s.entered)];
    if s.kind == "message" {
        parts.push(format!("{} sent", s.sent));
        if s.errors > 0 {
            parts.push(format!("{} errors", s.errors));
        }
    }
    if s.exited > 0 {
        parts.push(format!("{} exited", s.exited));
    }
    if conversions {
        parts.push(format!("{} converted", s.converted));
    }
    parts.join(" · ")
}

/// The step types offered by a "+" (no Exit in the middle of a path).
#[component]
fn StepMenu(ctx: Ctx) -> impl IntoView {
    move || {
        let (slot, x, y) = ctx.inserting.get()?;
        let occupied = ctx.draft.with_untracked(|d| d.target(&slot).is_some());
        let items = STEP_TYPES
            .iter()
            .filter(|(t, _)| !(occupied && *t == "exit"))
            .map(|(type_name, label)| {
                let slot = slot.clone();
                let type_name = *type_name;
                view! {
                    <button type="button" role="menuitem" class="menu-item" data-type=type_name
                        on:click=move |_| {
                            let id = ctx.draft.with_untracked(new_step_id);
                            let mut inserted = false;
                            ctx.draft.update(|d| inserted = d.insert_step(&slot, type_name, id.clone()));
                            ctx.inserting.set(None);
                            if inserted {
                                ctx.selected.set(Some(id));
                            }
                        }>
                        {*label}
                    </button>
                }
            })
            .collect_view();
        Some(view! {
            <div class="step-menu" id="step-menu" role="menu" aria-label="Step type"
                style=format!("left: {x}px; top: {y}px")
                on:keydown=move |ev| if ev.key() == "Escape" { ctx.inserting.set(None) }>
                {items}
                <button type="button" class="menu-item cancel" on:click=move |_| ctx.inserting.set(None)>"Cancel"</button>
            </div>
        })
    }
}

/// The side panel editing one step.
#[component]
fn StepPanel(ctx: Ctx, id: String) -> impl IntoView {
    let readonly = ctx.readonly;
    let exists = ctx.draft.with_untracked(|d| d.step(&id).is_some());
    if !exists {
        return view! { <aside class="card step-panel-side" id="step-panel"><p class="hint">"This step no longer exists."</p></aside> }.into_any();
    }
    let (read_id, write_id) = (id.clone(), id.clone());
    let step = ctx.root.map(
        move |d| d.step(&read_id).cloned().unwrap_or_default(),
        move |d, s| {
            if let Some(slot) = d.steps.iter_mut().find(|x| x.id == write_id) {
                *slot = s;
            }
        },
    );
    let kind = field!(step, kind);
    let type_name = kind.with(|k| k.type_name());
    let (problem_id, delete_id) = (id.clone(), id.clone());
    let problems = move || {
        ctx.problems.with(|list| {
            list.iter()
                .filter(|p| p.step_id.as_deref() == Some(problem_id.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let stats = ctx
        .report
        .with_value(|r| r.as_ref().and_then(|r| r.step(&id).cloned()));
    let conversions = ctx
        .report
        .with_value(|r| r.as_ref().is_some_and(|r| r.primary_conversion.is_some()));
    let single_next = matches!(type_name, "message" | "delay" | "user_update" | "context");
    let editor = match type_name {
        "message" => view! { <MessageEditor kind readonly/> }.into_any(),
        "delay" => view! { <DelayEditor kind readonly/> }.into_any(),
        "decision_split" => view! { <SplitEditor ctx kind/> }.into_any(),
        "audience_paths" => view! { <AudiencePathsEditor ctx kind step_id=id.clone()/> }.into_any(),
        "action_paths" => view! { <ActionPathsEditor ctx kind step_id=id.clone()/> }.into_any(),
        "experiment" => view! { <ExperimentEditor ctx kind step_id=id.clone()/> }.into_any(),
        "user_update" => view! { <UserUpdateEditor kind readonly/> }.into_any(),
        "context" => view! { <ContextEditor kind readonly/> }.into_any(),
        _ => view! { <p>"Users who reach this step leave the Canvas."</p> }.into_any(),
    };
    view! {
        <aside class="card step-panel-side" id="step-panel" data-step-id=id.clone() aria-label="Step">
            <div class="panel-head">
                <h2>{type_label(type_name)}</h2>
                <button type="button" class="small" aria-label="Close the step panel" on:click=move |_| ctx.selected.set(None)>"✕"</button>
            </div>
            <label for="step-name" class="field-label">"Step name"</label>
            {text_input(Some("step-name"), "text", field!(step, name), readonly, type_label(type_name), "Step name")}
            <p class="hint">"Step id " <code>{id.clone()}</code></p>
            {move || {
                let list = problems();
                (!list.is_empty()).then(|| view! {
                    <ul class="problem-list step-problems">
                        {list.into_iter().map(|p| view! { <li class="problem">{p.message}<span class="hint">" "{p.field}</span></li> }).collect_view()}
                    </ul>
                })
            }}
            {stats.map(|s| view! {
                <dl class="facts step-stats">
                    <dt>"Entered"</dt><dd>{s.entered}</dd>
                    {(s.kind == "message").then(|| view! {
                        <dt>"Sent"</dt><dd>{s.sent}</dd>
                        <dt>"Delivered"</dt><dd>{s.delivered}</dd>
                        <dt>"Errors"</dt><dd>{s.errors}</dd>
                        <dt>"Aborted"</dt><dd>{s.aborted}</dd>
                    })}
                    <dt>"Exited"</dt><dd>{s.exited}</dd>
                    {conversions.then(|| view! {
                        <dt>"Converted"</dt>
                        <dd class="step-converted">{format!("{} ({} of entries)", s.converted, rate(s.converted, s.entered))}</dd>
                    })}
                    {s.branches.iter().map(|(name, n)| view! { <dt>{name.clone()}</dt><dd>{*n}</dd> }).collect_view()}
                </dl>
            })}
            <div class="step-editor">{editor}</div>
            {(!readonly).then(|| view! {
                <div class="panel-foot">
                    <button type="button" class="danger small" id="delete-step" on:click=move |_| {
                        ctx.selected.set(None);
                        ctx.draft.update(|d| d.delete_step(&delete_id));
                    }>"Delete step"</button>
                    <p class="hint">{if single_next {
                        "The step after it takes its place."
                    } else {
                        "Its branches, and the steps on them, go with it."
                    }}</p>
                </div>
            })}
        </aside>
    }
    .into_any()
}

#[component]
fn MessageEditor(kind: Lens<StepKindDraft>, readonly: bool) -> impl IntoView {
    let message = kind_field!(kind, Message, message, MessageDraft);
    let composer = ComposerState::from_draft(&message.get_untracked());
    // The composer keeps its own signals; every edit is copied into the draft.
    Effect::new(move |_| {
        composer.track();
        let typed = composer.draft();
        if message.get_untracked() != typed {
            message.set(typed);
        }
    });
    let ws = use_ws();
    let test_data = RwSignal::new(SAMPLE_TEST_DATA.to_string());
    let preview = ServerAction::<PreviewWebhook>::new();
    let edits = StoredValue::new(0u64);
    Effect::new(move |_| {
        composer.track();
        test_data.track();
        let generation = edits.get_value() + 1;
        edits.set_value(generation);
        set_timeout(
            move || {
                if edits.try_get_value() == Some(generation) {
                    preview.dispatch(PreviewWebhook {
                        ws: ws.get_untracked(),
                        draft: composer.draft(),
                        test_data: test_data.get_untracked(),
                    });
                }
            },
            std::time::Duration::from_millis(400),
        );
    });
    view! {
        <Composer state=composer readonly/>
        <p class="hint">"Entry properties: {{context.${coupon}}} or {{canvas_entry_properties.${coupon}}}; after Action Paths, {{event_properties.${x}}}."</p>
        <details class="test-data" id="message-preview">
            <summary>"Preview"</summary>
            <textarea rows="7" class="code" aria-label="Test data" prop:value=test_data
                on:input=move |ev| test_data.set(event_target_value(&ev))></textarea>
            <FormError message=last_error(preview.value())/>
            {move || preview.value().get().and_then(|r| r.ok()).map(|p| view! { <RequestView request=p/> })}
        </details>
    }
}

const SAMPLE_TEST_DATA: &str = r#"{
  "user": {"user_id": "user-123", "first_name": "Ada"},
  "custom_attributes": {"plan": "pro"},
  "canvas_entry_properties": {"coupon": "WELCOME10"},
  "event_properties": {}
}"#;

#[component]
fn DelayEditor(kind: Lens<StepKindDraft>, readonly: bool) -> impl IntoView {
    let mode = kind_field!(kind, Delay, mode, String);
    view! {
        <div class="segmented" role="radiogroup" aria-label="Delay">
            {[("for", "For a duration"), ("until", "Until a date and time"), ("weekday", "Until a day of the week")].into_iter().map(|(key, label)| view! {
                <label class="check">
                    <input type="radio" name="delay-mode" value=key disabled=readonly
                        prop:checked=move || mode.get() == key on:change=move |_| mode.set(key.to_string())/>
                    {label}
                </label>
            }).collect_view()}
        </div>
        <Show when=move || mode.get() == "for">
            <span class="with-unit">
                "Wait"
                {text_input(Some("delay-amount"), "number", kind_field!(kind, Delay, amount, String), readonly, "1", "Delay amount")}
                {select_input(Some("delay-unit"), "Delay unit", kind_field!(kind, Delay, unit, String), readonly, &DELAY_UNITS)}
            </span>
            <p class="hint">"Up to two years."</p>
        </Show>
        <Show when=move || mode.get() == "until">
            {text_input(Some("delay-at"), "datetime-local", kind_field!(kind, Delay, at, String), readonly, "", "Until (UTC)")}
            <p class="hint">"UTC. Users reaching the step after this moment exit the Canvas."</p>
        </Show>
        <Show when=move || mode.get() == "weekday">
            <span class="with-unit">
                "Until the next"
                {select_input(Some("delay-weekday"), "Day of the week", kind_field!(kind, Delay, weekday, String), readonly, &WEEKDAYS)}
                "at"
                {text_input(Some("delay-time"), "time", kind_field!(kind, Delay, time, String), readonly, "09:00", "Time of day")}
            </span>
            <p class="hint">"In the user's time zone (else the Canvas's); today counts if the time is still ahead."</p>
        </Show>
    }
}

#[component]
fn SplitEditor(ctx: Ctx, kind: Lens<StepKindDraft>) -> impl IntoView {
    let readonly = ctx.readonly;
    let filter = kind_field!(kind, DecisionSplit, filter, FilterDraft);
    let segments = kind_field!(kind, DecisionSplit, segment_ids, Vec<String>);
    view! {
        <p class="hint">"Users matching the conditions (and in every chosen segment) take the Yes path; the others take No."</p>
        <h3>"Conditions"</h3>
        <FilterEditor filter readonly/>
        <h3 class="seg-title">"In segments"</h3>
        <SegmentPicker chosen=segments segments=ctx.segments readonly id="split-segments"/>
    }
}

#[component]
fn AudiencePathsEditor(ctx: Ctx, kind: Lens<StepKindDraft>, step_id: String) -> impl IntoView {
    let readonly = ctx.readonly;
    let paths = kind_field!(kind, AudiencePaths, paths, Vec<AudiencePathDraft>);
    let id = StoredValue::new(step_id);
    view! {
        <p class="hint">"The first path whose conditions a user matches wins; the rest go to Everyone else. Up to 7 paths."</p>
        <For each=move || 0..paths.len() key=|i| *i let:i>
            {
                let path = paths.item(i);
                view! {
                    <div class="path-box">
                        <div class="path-head">
                            {text_input(None, "text", field!(path, name), readonly, "Path name", "Path name")}
                            <Show when=move || { paths.len() > 1 }>
                                {remove_button(readonly, "Remove path", move || ctx.draft.update(|d| remove_path(d, &id.get_value(), i)))}
                            </Show>
                        </div>
                        <FilterEditor filter=field!(path, filter) readonly/>
                    </div>
                }
            }
        </For>
        {(!readonly).then(|| view! {
            <Show when=move || { paths.len() < 7 }>
                <button type="button" class="small" on:click=move |_| paths.update(|l| {
                    let number = l.len() + 1;
                    l.push(AudiencePathDraft {
                        name: format!("Path {number}"),
                        filter: FilterDraft::And { filters: Vec::new() },
                        next: None,
                    });
                })>"+ Path"</button>
            </Show>
        })}
    }
}

#[component]
fn ActionPathsEditor(ctx: Ctx, kind: Lens<StepKindDraft>, step_id: String) -> impl IntoView {
    let readonly = ctx.readonly;
    let paths = kind_field!(kind, ActionPaths, paths, Vec<ActionPathDraft>);
    let id = StoredValue::new(step_id);
    view! {
        <p class="hint">"Users wait up to the window for the first of these actions; its properties become {{event_properties.${…}}} on that path. Those who do none go to Everyone else when the window ends."</p>
        <span class="with-unit">
            "Window"
            {text_input(Some("action-window"), "number", kind_field!(kind, ActionPaths, window, String), readonly, "1", "Window")}
            {select_input(None, "Window unit", kind_field!(kind, ActionPaths, window_unit, String), readonly, &WINDOW_UNITS)}
        </span>
        <p class="hint">"At most 31 days."</p>
        <For each=move || 0..paths.len() key=|i| *i let:i>
            {
                let path = paths.item(i);
                view! {
                    <div class="path-box">
                        <div class="path-head">
                            {text_input(None, "text", field!(path, name), readonly, "Path name", "Path name")}
                            <Show when=move || { paths.len() > 1 }>
                                {remove_button(readonly, "Remove path", move || ctx.draft.update(|d| remove_path(d, &id.get_value(), i)))}
                            </Show>
                        </div>
                        <TriggerEditor trigger=field!(path, trigger) readonly with_filters=true/>
                    </div>
                }
            }
        </For>
        {(!readonly).then(|| view! {
            <button type="button" class="small" on:click=move |_| paths.update(|l| {
                let number = l.len() + 1;
                l.push(ActionPathDraft {
                    name: format!("Path {number}"),
                    trigger: TriggerDraft::default(),
                    next: None,
                });
            })>"+ Path"</button>
        })}
    }
}

#[component]
fn ExperimentEditor(ctx: Ctx, kind: Lens<StepKindDraft>, step_id: String) -> impl IntoView {
    let readonly = ctx.readonly;
    let paths = kind_field!(kind, Experiment, paths, Vec<ExperimentPathDraft>);
    let control = kind_field!(kind, Experiment, control_percent, String);
    let id = StoredValue::new(step_id);
    let total = move || {
        paths.with(|l| {
            l.iter()
                .map(|p| p.percent.trim().parse::<u32>().unwrap_or(0))
                .sum::<u32>()
        }) + control.get().trim().parse::<u32>().unwrap_or(0)
    };
    view! {
        <p class="hint">"A random split that sticks to each user. Up to 4 paths plus a control group that leaves the Canvas."</p>
        <For each=move || 0..paths.len() key=|i| *i let:i>
            {
                let path = paths.item(i);
                view! {
                    <div class="seg-condition">
                        {text_input(None, "text", field!(path, name), readonly, "Path name", "Path name")}
                        <span class="with-unit">{text_input(None, "number", field!(path, percent), readonly, "0", "Path percent")}"%"</span>
                        <Show when=move || { paths.len() > 1 }>
                            {remove_button(readonly, "Remove path", move || ctx.draft.update(|d| remove_path(d, &id.get_value(), i)))}
                        </Show>
                    </div>
                }
            }
        </For>
        {(!readonly).then(|| view! {
            <Show when=move || { paths.len() < 4 }>
                <button type="button" class="small" on:click=move |_| paths.update(|l| {
                    let number = l.len() + 1;
                    l.push(ExperimentPathDraft { name: format!("Path {number}"), percent: "0".into(), next: None });
                })>"+ Path"</button>
            </Show>
        })}
        <div class="seg-condition">
            <span>"Control"</span>
            <span class="with-unit">{text_input(None, "number", control, readonly, "0", "Control percent")}"%"</span>
        </div>
        <p class="hint">{move || format!("Total: {}% (must be 100%)", total())}</p>
    }
}

#[component]
fn UserUpdateEditor(kind: Lens<StepKindDraft>, readonly: bool) -> impl IntoView {
    let rows = kind_field!(kind, UserUpdate, attributes, Vec<(String, String)>);
    view! {
        <p class="hint">"Sets attributes on the user, as /users/track does. Liquid is allowed; numbers, true/false and JSON are stored typed."</p>
        <div class="rows-editor" id="user-update-rows">
            <For each=move || 0..rows.len() key=|i| *i let:i>
                {
                    let row = rows.item(i);
                    let key = row.map(|r| r.0.clone(), |r, v| r.0 = v);
                    let value = row.map(|r| r.1.clone(), |r, v| r.1 = v);
                    view! {
                        <div class="kv-row">
                            {text_input(None, "text", key, readonly, "attribute", "Attribute")}
                            {text_input(None, "text", value, readonly, "value (Liquid allowed)", "Attribute value")}
                            {remove_button(readonly, "Remove attribute", move || rows.update(|l| { if i < l.len() { l.remove(i); } }))}
                        </div>
                    }
                }
            </For>
            {(!readonly).then(|| view! {
                <button type="button" class="small" on:click=move |_| rows.update(|l| l.push((String::new(), String::new())))>"+ Attribute"</button>
            })}
        </div>
    }
}

#[component]
fn ContextEditor(kind: Lens<StepKindDraft>, readonly: bool) -> impl IntoView {
    let variables = kind_field!(kind, Context, variables, Vec<ContextVariableDraft>);
    view! {
        <p class="hint">"Variables later steps read as {{context.${name}}}; each value is Liquid, rendered when the user passes. Up to 10."</p>
        <div class="rows-editor" id="context-rows">
            <For each=move || 0..variables.len() key=|i| *i let:i>
                {
                    let variable = variables.item(i);
                    view! {
                        <div class="seg-condition context-row">
                            {text_input(None, "text", field!(variable, name), readonly, "name", "Variable name")}
                            {select_input(None, "Variable type", field!(variable, value_type), readonly, &VALUE_TYPES)}
                            {text_input(None, "text", field!(variable, value), readonly, "value (Liquid)", "Variable value")}
                            {remove_button(readonly, "Remove variable", move || variables.update(|l| { if i < l.len() { l.remove(i); } }))}
                        </div>
                    }
                }
            </For>
            {(!readonly).then(|| view! {
                <Show when=move || { variables.len() < 10 }>
                    <button type="button" class="small" on:click=move |_| variables.update(|l| l.push(ContextVariableDraft::default()))>"+ Variable"</button>
                </Show>
            })}
        </div>
    }
}

#[component]
fn SummaryTab(ctx: Ctx) -> impl IntoView {
    let d = ctx.draft;
    let segment_names = move |ids: &[String]| -> String {
        ctx.segments.with_value(|all| {
            ids.iter()
                .map(|id| {
                    all.iter()
                        .find(|s| s.id == *id)
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| id.clone())
                })
                .collect::<Vec<_>>()
                .join(" and ")
        })
    };
    let audience = move || {
        d.with(|d| {
            if d.segment_ids.is_empty() {
                "Any user".to_string()
            } else {
                format!("Users in {}", segment_names(&d.segment_ids))
            }
        })
    };
    let exit = move || {
        d.with(|d| {
            let mut parts: Vec<String> = d
                .exit
                .events
                .iter()
                .map(|e| {
                    if e.kind == "purchase" {
                        "a purchase".to_string()
                    } else if e.name.trim().is_empty() {
                        "a custom event (not named yet)".to_string()
                    } else {
                        format!("“{}”", e.name.trim())
                    }
                })
                .collect();
            if !d.exit.segment_ids.is_empty() {
                parts.push(format!("leaving {}", segment_names(&d.exit.segment_ids)));
            }
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        })
    };
    let settings = move || {
        d.with(|d| {
            let s = &d.settings;
            let mut parts = Vec::new();
            parts.push(if s.rate_per_minute.trim().is_empty() {
                "no rate limit".to_string()
            } else {
                format!("at most {} messages per minute", s.rate_per_minute.trim())
            });
            parts.push(if s.reentry {
                format!(
                    "re-entry after {} {}",
                    s.reentry_after.trim(),
                    s.reentry_unit
                )
            } else {
                "each user enters once".into()
            });
            if !s.entry_limit.trim().is_empty() {
                parts.push(format!(
                    "at most {} entries per {}",
                    s.entry_limit.trim(),
                    s.entry_limit_per
                ));
            }
            if !s.time_zone.trim().is_empty() {
                parts.push(format!("time zone {}", s.time_zone.trim()));
            }
            parts.join(" · ")
        })
    };
    let variants = move || {
        d.with(|d| {
            let mut list: Vec<String> = d
                .variants
                .iter()
                .map(|v| format!("{} ({}%)", v.name.trim(), v.percent.trim()))
                .collect();
            let control = d.control_percent.trim();
            if !control.is_empty() && control != "0" {
                list.push(format!("control {control}%"));
            }
            list.join("; ")
        })
    };
    view! {
        <section class="card" id="canvas-summary">
            <h2>"Summary"</h2>
            <dl class="facts">
                <dt>"Name"</dt><dd>{move || d.with(|d| d.name.clone())}</dd>
                <dt>"Entry"</dt><dd id="summary-entry">{move || d.with(entry_summary)}</dd>
                <dt>"Entry audience"</dt><dd>{audience}</dd>
                <dt>"Exit criteria"</dt><dd>{exit}</dd>
                <dt>"Settings"</dt><dd>{settings}</dd>
                <dt>"Variants"</dt><dd>{variants}</dd>
                <dt>"Conversion events"</dt>
                <dd id="summary-conversions">{move || d.with(|d| {
                    if d.conversions.is_empty() {
                        "none".to_string()
                    } else {
                        d.conversions.iter().map(describe_conversion).collect::<Vec<_>>().join("; ")
                    }
                })}</dd>
                <dt>"Steps"</dt><dd id="summary-steps">{move || d.with(|d| d.steps.len())}</dd>
            </dl>
        </section>
        <section class="card">
            <h2>"Problems"</h2>
            <ProblemList ctx id="summary-problems"/>
        </section>
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Entries and sends per bucket (an SVG, readable without JavaScript).
#[component]
fn SeriesChart(title: String, points: Vec<CanvasSeriesPoint>) -> impl IntoView {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 140.0;
    const TOP: f64 = 10.0;
    let peak = points
        .iter()
        .map(|p| p.entries.max(p.sends))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = WIDTH / points.len().max(1) as f64;
    let scale = (HEIGHT - TOP) / peak;
    let every = (points.len() / 6).max(1);
    let totals = (
        points.iter().map(|p| p.entries).sum::<u64>(),
        points.iter().map(|p| p.sends).sum::<u64>(),
    );
    let drawn = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let w = slot * 0.38;
            let x0 = i as f64 * slot + slot * 0.1;
            let bar = |k: f64, n: u64, class: &'static str| {
                let h = n as f64 * scale;
                view! { <rect x=x0 + k * w y=HEIGHT - h width=w height=h class=class/> }
            };
            let label = (i % every == 0)
                .then(|| view! { <text x=x0 y=HEIGHT + 14.0 class="axis">{p.label.clone()}</text> });
            let title = format!("{}: {} entries, {} sends", p.label, p.entries, p.sends);
            view! {
                <g><title>{title}</title>{bar(0.0, p.entries, "bar-entries")}{bar(1.0, p.sends, "bar-ok")}{label}</g>
            }
        })
        .collect_view();
    view! {
        <section class="card chart-card" id="canvas-chart">
            <div class="chart-head">
                <h2>{title}</h2>
                <p class="legend">
                    <span class="dot entries"></span>{totals.0} " entries "
                    <span class="dot ok"></span>{totals.1} " sends"
                </p>
            </div>
            <svg viewBox=format!("0 0 {WIDTH} {}", HEIGHT + 18.0) class="chart" role="img"
                aria-label=format!("{} entries, {} sends", totals.0, totals.1)>
                <line x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT class="baseline"/>
                {drawn}
            </svg>
        </section>
    }
}

#[component]
fn ReportTotals(report: CanvasReport) -> impl IntoView {
    let stat = |label: &'static str, value: u64, class: &'static str, id: &'static str| {
        view! { <div class=format!("stat {class}")><span class="stat-value" id=id>{value}</span><span class="stat-label">{label}</span></div> }
    };
    view! {
        <section class="card overview" id="canvas-totals">
            <div class="stats">
                {stat("entries", report.entries, "", "total-entries")}
                {stat("in progress", report.in_progress, "", "total-in-progress")}
                {stat("finished", report.finished, "ok", "total-finished")}
                {stat("exited", report.exited, "", "total-exited")}
                {stat("sends", report.sends, "", "total-sends")}
                {stat("delivered", report.delivered, "ok", "total-delivered")}
                {stat("errors", report.errors, "bad", "total-errors")}
                {report.primary_conversion.is_some().then(|| view! {
                    {stat("conversions", report.conversions, "ok", "total-conversions")}
                    <div class="stat"><span class="stat-value" id="total-conversion-rate">{rate(report.conversions, report.entries)}</span><span class="stat-label">"conversion rate"</span></div>
                })}
            </div>
            {match &report.primary_conversion {
                Some(primary) => view! { <p class="hint" id="primary-conversion">{format!("Primary conversion event: {primary}, counted from entering the Canvas.")}</p> }.into_any(),
                None => view! { <p class="hint" id="primary-conversion">"No conversion event: add one in the builder's Basics to count conversions."</p> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn StepTable(report: CanvasReport) -> impl IntoView {
    let conversions = report.primary_conversion.is_some();
    view! {
        <section class="card" id="step-stats">
            <h2>"Steps"</h2>
            {if report.steps.is_empty() {
                view! { <p class="hint">"No step yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table">
                        <thead>
                            <tr>
                                <th>"Step"</th><th>"Type"</th><th class="num">"Entered"</th><th class="num">"Sent"</th>
                                <th class="num">"Delivered"</th><th class="num">"Errors"</th><th class="num">"Aborted"</th>
                                <th class="num">"Exited"</th>
                                {conversions.then(|| view! { <th class="num">"Converted"</th><th class="num">"Conversion rate"</th> })}
                                <th>"Branches"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {report.steps.iter().map(|s| view! {
                                <tr data-step-id=s.step_id.clone()>
                                    <td>{s.name.clone()}</td>
                                    <td>{if s.kind.is_empty() { "(older version)" } else { type_label(&s.kind) }}</td>
                                    <td class="num">{s.entered}</td>
                                    <td class="num">{s.sent}</td>
                                    <td class="num">{s.delivered}</td>
                                    <td class="num">{s.errors}</td>
                                    <td class="num">{s.aborted}</td>
                                    <td class="num">{s.exited}</td>
                                    {conversions.then(|| view! {
                                        <td class="num step-converted">{s.converted}</td>
                                        <td class="num">{rate(s.converted, s.entered)}</td>
                                    })}
                                    <td>{s.branches.iter().map(|(b, n)| format!("{b}: {n}")).collect::<Vec<_>>().join(", ")}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn ReportHead(
    summary: CanvasSummary,
    action: ServerAction<CanvasAction>,
    ws: String,
) -> impl IntoView {
    let status = summary.status.clone();
    view! {
        <div class="page-head">
            <div class="title-row">
                <h1 id="canvas-title">{summary.name.clone()}</h1>
                <CanvasStatus status=summary.status.clone()/>
                <span class="badge muted">{entry_label(&summary.entry)}</span>
                {summary.live_version.map(|v| view! { <span class="badge muted">{format!("version {v}")}</span> })}
            </div>
            <a href=format!("/w/{ws}/canvases")>"All Canvases"</a>
        </div>
        <CanvasTabs ws=ws.clone() id=summary.id.clone() current="report"/>
        <div class="report-meta">
            <p class="hint">{summary.launched.clone().map(|at| format!("Launched {at}")).unwrap_or_else(|| "Not launched yet".into())}</p>
            {summary.can_build.then(|| view! {
                <div class="header-actions">{action_forms(action, ws.clone(), summary.id.clone(), &status)}</div>
            })}
        </div>
    }
}

#[component]
pub fn CanvasReportPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let period = move || query.read().get("period").unwrap_or_else(|| "30d".into());
    let action = ServerAction::<CanvasAction>::new();
    let summary = Resource::new(
        move || (ws.get(), id(), action.version().get()),
        |(ws, id, _)| get_canvas_summary(ws, id),
    );
    let tick = RwSignal::new(0u32);
    let report = Resource::new(
        move || (ws.get(), id(), period(), tick.get()),
        |(ws, id, period, _)| get_canvas_report(ws, id, period),
    );
    // Figures move while users go through an active Canvas: read them again every 10 s.
    Effect::new(move |_| {
        let poll = move || {
            let active = matches!(
                summary.try_get_untracked().flatten(),
                Some(Ok(ref s)) if s.status == "active"
            );
            if active {
                tick.try_update(|t| *t += 1);
            }
        };
        if let Ok(handle) = set_interval_with_handle(poll, std::time::Duration::from_secs(10)) {
            on_cleanup(move || handle.clear());
        }
    });
    let ws_id = move || ws.get();
    view! {
        <Title text="Canvas report"/>
        <FormError message=last_error(action.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match summary.await {
                    Ok(summary) => view! { <ReportHead summary action ws=ws.get_untracked()/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
        <Form method="GET" action=move || format!("/w/{}/canvases/{}/report", ws_id(), id()) attr:class="filters card" attr:id="report-period">
            <label for="report-period-select">"Period"</label>
            <select id="report-period-select" name="period">
                {[("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")].into_iter().map(|(v, l)| view! {
                    <option value=v selected=move || period() == v>{l}</option>
                }).collect_view()}
            </select>
            <button type="submit">"Show"</button>
        </Form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => view! {
                        <ReportTotals report=r.clone()/>
                        <SeriesChart title=r.series_title.clone() points=r.series.clone()/>
                        <StepTable report=r/>
                    }.into_any(),
                    Err(e) => view! { <p class="form-error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
        <p class="hint">
            "Each send, with its request and every attempt, is in the "
            <a href=move || format!("/w/{}/activity", ws.get())>"Activity log"</a>"."
        </p>
    }
}

// ---------------------------------------------------------------------------------------------
// The profile page's section.

/// "Canvas journeys" on a user's profile: where the user went in each Canvas, newest first.
#[component]
pub fn UserJourneys(rows: Vec<JourneyRow>, ws: String) -> impl IntoView {
    view! {
        <section class="card" id="user-journeys">
            <h2>"Canvas journeys"</h2>
            {if rows.is_empty() {
                view! { <p class="hint">"This user has not entered any Canvas."</p> }.into_any()
            } else {
                view! {
                    <table class="table">
                        <thead><tr><th>"When"</th><th>"Canvas"</th><th>"Step"</th><th>"What happened"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr>
                                    <td>{r.at}</td>
                                    <td><a href=format!("/w/{ws}/canvases/{}", r.canvas_id)>{r.canvas_name}</a><span class="hint">{format!(" v{}", r.version)}</span></td>
                                    <td>{r.step}</td>
                                    <td>{r.what}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvases::Branch;

    fn flow() -> CanvasDraft {
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
            "a1".into()
        ));
        assert!(draft.insert_step(&Slot::Step("d1".into(), Branch::No), "message", "b1".into()));
        draft
    }

    fn node<'a>(layout: &'a Layout, kind: &NodeKind) -> &'a PlacedNode {
        layout
            .nodes
            .iter()
            .find(|n| n.kind == *kind)
            .expect("node drawn")
    }

    #[test]
    fn branches_sit_side_by_side_below_their_split() {
        let layout = layout(&flow());
        let split = node(&layout, &NodeKind::Step("d1".into()));
        let yes = node(&layout, &NodeKind::Step("a1".into()));
        let no = node(&layout, &NodeKind::Step("b1".into()));
        assert!(yes.y > split.y && no.y == yes.y);
        assert!(yes.x + CARD_W <= no.x + 0.001, "cards do not overlap");
        assert!(
            (split.x - (yes.x + no.x) / 2.0).abs() < 0.001,
            "the split is centred"
        );
        let labels: Vec<&str> = layout.edges.iter().map(|e| e.label.as_str()).collect();
        assert!(labels.contains(&"Yes") && labels.contains(&"No"));
        // Every branch end offers a "+".
        assert_eq!(
            layout
                .nodes
                .iter()
                .filter(|n| matches!(n.kind, NodeKind::Empty(_)))
                .count(),
            2
        );
        assert!(layout.width >= 2.0 * CARD_W + GAP_X);
    }

    #[test]
    fn a_step_reached_twice_is_drawn_once_and_linked() {
        let mut draft = flow();
        draft.set_target(&Slot::Step("b1".into(), Branch::Next), Some("a1".into()));
        let layout = layout(&draft);
        assert_eq!(
            layout
                .nodes
                .iter()
                .filter(|n| n.kind == NodeKind::Step("a1".into()))
                .count(),
            1
        );
        assert!(
            layout
                .nodes
                .iter()
                .any(|n| n.kind == NodeKind::Link("a1".into()))
        );
    }

    #[test]
    fn several_variants_each_get_a_column_under_the_entry() {
        let mut draft = flow();
        draft.variants.push(PathVariantDraft {
            name: "B".into(),
            percent: "40".into(),
            ..PathVariantDraft::default()
        });
        draft.control_percent = "10".into();
        let layout = layout(&draft);
        assert!(layout.nodes.iter().any(|n| n.kind == NodeKind::Variant(1)));
        assert!(layout.nodes.iter().any(|n| n.kind == NodeKind::Control));
        let empty_b = layout
            .nodes
            .iter()
            .find(|n| n.kind == NodeKind::Empty(Slot::Variant(1)))
            .expect("variant B starts empty");
        assert_eq!(empty_b.place, "at the start of B");
    }
}
