//! Campaigns: the list (with the workspace's last seven days on top), the builder in five steps
//! (Compose, Delivery, Audience, Settings, Review and launch) and the report with live progress.
//!
//! The builder keeps every field in its own signal, so switching steps, adding a variant or a
//! failed save never loses what was typed; the server names the rejected field and the builder
//! shows the message next to it.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::NavigateOptions;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::api::error_text;
use crate::audience::UserTestData;
use crate::campaigns::{
    CampaignAction, CampaignDetails, CampaignDraft, CampaignSummary, ConversionDraft,
    DeliveryDraft, EstimateCampaignReach, FieldError, OverviewView, ProgressView,
    PropertyFilterDraft, ReportView, SaveCampaign, SaveOutcome, SegmentOption, SeriesBar,
    SettingsDraft, TriggerDraft, VariantDraft, VariantStatsRow, get_campaign,
    get_campaign_progress, get_campaign_report, get_campaign_summary, get_overview, list_campaigns,
};
use crate::components::{EmptyState, ErrorPanel, FormError, Loading, last_error};
use crate::pages::composer::{Composer, ComposerState};
use crate::pages::layout::use_ws;
use crate::pages::templates::RequestView;
use crate::webhooks::PreviewWebhook;

// ---------------------------------------------------------------------------------------------
// Labels shared by the pages.

fn status_label(status: &str) -> &'static str {
    match status {
        "draft" => "Draft",
        "scheduled" => "Scheduled",
        "active" => "Active",
        "stopped" => "Stopped",
        "archived" => "Archived",
        _ => "Unknown",
    }
}

/// A campaign status as a coloured label.
#[component]
fn CampaignStatus(#[prop(into)] status: String) -> impl IntoView {
    let class = match status.as_str() {
        "active" => "badge ok campaign-status",
        "stopped" => "badge warn campaign-status",
        "draft" | "archived" => "badge muted campaign-status",
        _ => "badge campaign-status",
    };
    view! { <span class=class data-status=status.clone()>{status_label(&status)}</span> }
}

fn kind_label(kind: &str) -> &'static str {
    if kind == "api" { "API" } else { "Webhook" }
}

fn delivery_label(delivery: &str) -> &'static str {
    match delivery {
        "scheduled" => "Scheduled",
        "action" => "Action-based",
        _ => "API-triggered",
    }
}

const STATUS_FILTERS: [(&str, &str); 6] = [
    ("", "Any status (not archived)"),
    ("draft", "Draft"),
    ("scheduled", "Scheduled"),
    ("active", "Active"),
    ("stopped", "Stopped"),
    ("archived", "Archived"),
];

const DELIVERY_FILTERS: [(&str, &str); 4] = [
    ("", "Any delivery"),
    ("scheduled", "Scheduled"),
    ("action", "Action-based"),
    ("api", "API-triggered"),
];

/// Row and header actions: (action, label) that fit a status.
fn actions_for(status: &str) -> Vec<(&'static str, &'static str)> {
    let mut actions = vec![("duplicate", "Duplicate")];
    match status {
        "scheduled" | "active" => actions.push(("stop", "Stop")),
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

/// Forms posting one campaign action each (they work without JavaScript too).
fn action_forms(
    action: ServerAction<CampaignAction>,
    ws: String,
    id: String,
    status: &str,
) -> impl IntoView {
    let forms = actions_for(status)
        .into_iter()
        .map(|(what, label)| {
            let (ws, id) = (ws.clone(), id.clone());
            let class = if what == "archive" || what == "stop" {
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

/// "New campaign": a webhook campaign (content composed here) or an API campaign.
#[component]
fn NewCampaignMenu(ws: Signal<String>) -> impl IntoView {
    view! {
        <details class="new-menu" id="new-campaign">
            <summary class="button primary">"New campaign"</summary>
            <ul class="new-menu-list">
                <li>
                    <a href=move || format!("/w/{}/campaigns/new?kind=webhook", ws.get())>
                        <strong>"Webhook campaign"</strong>
                        <span class="hint">"Compose the webhook here; send it on a schedule, on a user action or on an API trigger."</span>
                    </a>
                </li>
                <li>
                    <a href=move || format!("/w/{}/campaigns/new?kind=api", ws.get())>
                        <strong>"API campaign"</strong>
                        <span class="hint">"Your system sends the content with each /messages/send call; Herald tracks it."</span>
                    </a>
                </li>
            </ul>
        </details>
    }
}

/// The workspace's last seven days, above the list.
#[component]
fn OverviewStrip() -> impl IntoView {
    let ws = use_ws();
    let overview = Resource::new(move || ws.get(), get_overview);
    view! {
        <Transition>
            {move || Suspend::new(async move {
                overview.await.ok().map(|o| view! { <Overview overview=o/> })
            })}
        </Transition>
    }
}

#[component]
fn Overview(overview: OverviewView) -> impl IntoView {
    let ws = use_ws().get_untracked();
    let stat = |label: &'static str, value: u64, class: &'static str| {
        view! { <div class=format!("stat {class}")><span class="stat-value">{value}</span><span class="stat-label">{label}</span></div> }
    };
    view! {
        <section class="card overview" id="workspace-overview" aria-label="Last 7 days">
            <div class="stats">
                {stat("active campaigns", overview.active_campaigns, "")}
                {stat("sends (7 days)", overview.sends, "")}
                {stat("delivered", overview.delivered, "ok")}
                {stat("failed", overview.failed, "bad")}
                {stat("pending", overview.pending, "")}
            </div>
            {(!overview.latest_errors.is_empty()).then(|| view! {
                <details class="latest-errors">
                    <summary>"Latest errors"</summary>
                    <table class="table">
                        <tbody>
                            {overview.latest_errors.into_iter().map(|e| view! {
                                <tr>
                                    <td><a href=format!("/w/{ws}/activity/{}", e.send_id)>{e.at}</a></td>
                                    <td>{e.source.unwrap_or_default()}</td>
                                    <td>{e.recipient.unwrap_or_default()}</td>
                                    <td>{match (e.status_code, e.error) {
                                        (Some(code), _) => format!("HTTP {code}"),
                                        (None, Some(error)) => error,
                                        (None, None) => String::new(),
                                    }}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </details>
            })}
        </section>
    }
}

#[component]
pub fn CampaignsPage() -> impl IntoView {
    let ws = use_ws();
    let query = use_query_map();
    let param = move |key: &str| query.read().get(key).unwrap_or_default();
    let action = ServerAction::<CampaignAction>::new();
    let campaigns = Resource::new(
        move || {
            (
                ws.get(),
                param("status"),
                param("tag"),
                param("delivery"),
                action.version().get(),
            )
        },
        |(ws, status, tag, delivery, _)| list_campaigns(ws, status, tag, delivery),
    );
    view! {
        <Title text="Campaigns"/>
        <div class="page-head">
            <h1>"Campaigns"</h1>
            <NewCampaignMenu ws/>
        </div>
        <OverviewStrip/>
        <FormError message=last_error(action.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match campaigns.await {
                    Ok(data) => data,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let ws_id = ws.get_untracked();
                if !data.any {
                    return view! {
                        <EmptyState title="No campaigns yet">
                            <p>"A webhook campaign sends a personalised webhook to an audience: once, on a schedule, when users perform an event, or when your system triggers it over the API. An API campaign only tracks the webhooks your system sends through Herald."</p>
                            <p>
                                <a class="button primary" href=format!("/w/{ws_id}/campaigns/new?kind=webhook")>"Create a webhook campaign"</a>
                                " "
                                <a class="button" href=format!("/w/{ws_id}/campaigns/new?kind=api")>"Create an API campaign"</a>
                            </p>
                        </EmptyState>
                    }.into_any();
                }
                let (status, tag, delivery) = (param("status"), param("tag"), param("delivery"));
                let filters = view! {
                    <Form method="GET" action=format!("/w/{ws_id}/campaigns") attr:class="filters card" attr:id="campaign-filters">
                        <label for="filter-status">"Status"</label>
                        <select id="filter-status" name="status">
                            {STATUS_FILTERS.into_iter().map(|(v, l)| view! { <option value=v selected=status == v>{l}</option> }).collect_view()}
                        </select>
                        <label for="filter-tag">"Tag"</label>
                        <select id="filter-tag" name="tag">
                            <option value="" selected=tag.is_empty()>"Any tag"</option>
                            {data.tags.iter().map(|t| view! { <option value=t.clone() selected=tag == *t>{t.clone()}</option> }).collect_view()}
                        </select>
                        <label for="filter-delivery">"Delivery"</label>
                        <select id="filter-delivery" name="delivery">
                            {DELIVERY_FILTERS.into_iter().map(|(v, l)| view! { <option value=v selected=delivery == v>{l}</option> }).collect_view()}
                        </select>
                        <button type="submit">"Filter"</button>
                    </Form>
                };
                if data.rows.is_empty() {
                    return view! {
                        {filters}
                        <EmptyState title="No campaign matches these filters">
                            <p><a href=format!("/w/{ws_id}/campaigns")>"Show all campaigns"</a></p>
                        </EmptyState>
                    }.into_any();
                }
                view! {
                    {filters}
                    <table class="table card" id="campaigns-table">
                        <thead>
                            <tr>
                                <th>"Name"</th><th>"Type"</th><th>"Delivery"</th><th>"Status"</th>
                                <th>"Last edited"</th><th>"Next send"</th><th><span class="sr-only">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {data.rows.into_iter().map(|c| {
                                let launched = c.status != "draft";
                                view! {
                                    <tr class:revoked=c.status == "archived">
                                        <td>
                                            <a href=format!("/w/{ws_id}/campaigns/{}", c.id)>{c.name.clone()}</a>
                                            {(!c.tags.is_empty()).then(|| view! {
                                                <div class="chips">{c.tags.iter().map(|t| view! { <span class="chip">{t.clone()}</span> }).collect_view()}</div>
                                            })}
                                        </td>
                                        <td>{kind_label(&c.kind)}</td>
                                        <td>{delivery_label(&c.delivery)}</td>
                                        <td><CampaignStatus status=c.status.clone()/></td>
                                        <td>{c.updated.clone()}</td>
                                        <td>{c.next_send.clone().unwrap_or_else(|| "—".into())}</td>
                                        <td class="actions">
                                            {launched.then(|| view! { <a href=format!("/w/{ws_id}/campaigns/{}/report", c.id)>"Report"</a> " · " })}
                                            {data.can_build.then(|| action_forms(action, ws_id.clone(), c.id.clone(), &c.status))}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            })}
        </Transition>
    }
}

// ---------------------------------------------------------------------------------------------
// The builder's state: one signal per field.

/// Hands out keys for rows of editable lists, and creates rows under the builder's owner.
#[derive(Clone, Copy)]
struct Keys {
    next: StoredValue<usize>,
    owner: StoredValue<Option<Owner>>,
}

impl Keys {
    fn new() -> Self {
        Self {
            next: StoredValue::new(0),
            owner: StoredValue::new(Owner::current()),
        }
    }

    fn next(&self) -> usize {
        let key = self.next.get_value();
        self.next.set_value(key + 1);
        key
    }

    /// Runs `make` under the builder's owner: a row added by a click inside a `<Show>` would
    /// otherwise belong to the `<Show>` and lose its signals when it hides.
    fn keep<T>(&self, make: impl FnOnce() -> T) -> T {
        match self.owner.get_value() {
            Some(owner) => owner.with(make),
            None => make(),
        }
    }
}

#[derive(Clone, Copy)]
struct FilterRow {
    key: usize,
    property: RwSignal<String>,
    comparison: RwSignal<String>,
    value: RwSignal<String>,
}

#[derive(Clone, Copy)]
struct TriggerState {
    key: usize,
    kind: RwSignal<String>,
    name: RwSignal<String>,
    filters: RwSignal<Vec<FilterRow>>,
}

impl TriggerState {
    fn new(keys: Keys, draft: &TriggerDraft) -> Self {
        Self {
            key: keys.next(),
            kind: RwSignal::new(draft.kind.clone()),
            name: RwSignal::new(draft.name.clone()),
            filters: RwSignal::new(
                draft
                    .filters
                    .iter()
                    .map(|f| FilterRow {
                        key: keys.next(),
                        property: RwSignal::new(f.property.clone()),
                        comparison: RwSignal::new(f.comparison.clone()),
                        value: RwSignal::new(f.value.clone()),
                    })
                    .collect(),
            ),
        }
    }

    fn draft(&self) -> TriggerDraft {
        TriggerDraft {
            kind: self.kind.get_untracked(),
            name: self.name.get_untracked(),
            filters: self
                .filters
                .get_untracked()
                .iter()
                .map(|f| PropertyFilterDraft {
                    property: f.property.get_untracked(),
                    comparison: f.comparison.get_untracked(),
                    value: f.value.get_untracked(),
                })
                .collect(),
        }
    }

    /// "custom event “checkout”" / "a purchase of gold".
    fn describe(&self) -> String {
        let name = self.name.get();
        if self.kind.get() == "purchase" {
            if name.trim().is_empty() {
                "makes any purchase".into()
            } else {
                format!("purchases “{}”", name.trim())
            }
        } else {
            let filters = self.filters.get().len();
            let suffix = if filters > 0 {
                format!(" (with {filters} property filter(s))")
            } else {
                String::new()
            };
            format!("performs custom event “{}”{suffix}", name.trim())
        }
    }
}

#[derive(Clone, Copy)]
struct ConversionRow {
    key: usize,
    trigger: TriggerState,
    window: RwSignal<String>,
    unit: RwSignal<String>,
}

#[derive(Clone, Copy)]
struct VariantState {
    key: usize,
    id: RwSignal<Option<String>>,
    name: RwSignal<String>,
    percent: RwSignal<String>,
    composer: Option<ComposerState>,
}

#[derive(Clone, Copy)]
struct DeliveryState {
    kind: RwSignal<String>,
    schedule: RwSignal<String>,
    starts_on: RwSignal<String>,
    time: RwSignal<String>,
    every: RwSignal<String>,
    days: RwSignal<Vec<String>>,
    month_day: RwSignal<String>,
    ends_on: RwSignal<String>,
    time_zone: RwSignal<String>,
    in_local_time: RwSignal<bool>,
    trigger: TriggerState,
    delay: RwSignal<String>,
    delay_unit: RwSignal<String>,
    exceptions: RwSignal<Vec<TriggerState>>,
    starts_at: RwSignal<String>,
    ends_at: RwSignal<String>,
}

impl DeliveryState {
    fn new(keys: Keys, d: &DeliveryDraft) -> Self {
        Self {
            kind: RwSignal::new(d.kind.clone()),
            schedule: RwSignal::new(d.schedule.clone()),
            starts_on: RwSignal::new(d.starts_on.clone()),
            time: RwSignal::new(d.time.clone()),
            every: RwSignal::new(d.every.clone()),
            days: RwSignal::new(d.days.clone()),
            month_day: RwSignal::new(d.month_day.clone()),
            ends_on: RwSignal::new(d.ends_on.clone()),
            time_zone: RwSignal::new(d.time_zone.clone()),
            in_local_time: RwSignal::new(d.in_local_time),
            trigger: TriggerState::new(keys, &d.trigger),
            delay: RwSignal::new(d.delay.clone()),
            delay_unit: RwSignal::new(d.delay_unit.clone()),
            exceptions: RwSignal::new(
                d.exceptions
                    .iter()
                    .map(|e| TriggerState::new(keys, e))
                    .collect(),
            ),
            starts_at: RwSignal::new(d.starts_at.clone()),
            ends_at: RwSignal::new(d.ends_at.clone()),
        }
    }

    fn draft(&self) -> DeliveryDraft {
        DeliveryDraft {
            kind: self.kind.get_untracked(),
            schedule: self.schedule.get_untracked(),
            starts_on: self.starts_on.get_untracked(),
            time: self.time.get_untracked(),
            every: self.every.get_untracked(),
            days: self.days.get_untracked(),
            month_day: self.month_day.get_untracked(),
            ends_on: self.ends_on.get_untracked(),
            time_zone: self.time_zone.get_untracked(),
            in_local_time: self.in_local_time.get_untracked(),
            trigger: self.trigger.draft(),
            delay: self.delay.get_untracked(),
            delay_unit: self.delay_unit.get_untracked(),
            exceptions: self
                .exceptions
                .get_untracked()
                .iter()
                .map(|e| e.draft())
                .collect(),
            starts_at: self.starts_at.get_untracked(),
            ends_at: self.ends_at.get_untracked(),
        }
    }

    /// One sentence for the review step.
    fn describe(&self) -> String {
        match self.kind.get().as_str() {
            "api" => {
                "API-triggered: sends when your system calls /api/campaigns/trigger/send.".into()
            }
            "action" => {
                let delay = self.delay.get();
                let after = if delay.trim().is_empty() || delay.trim() == "0" {
                    "immediately".to_string()
                } else {
                    format!("after {} {}", delay.trim(), self.delay_unit.get())
                };
                let exceptions = self.exceptions.get().len();
                let unless = if exceptions > 0 {
                    format!(
                        ", unless the user performs one of {exceptions} exception event(s) first"
                    )
                } else {
                    String::new()
                };
                format!(
                    "Action-based: when a user {}, {after}{unless}.",
                    self.trigger.describe()
                )
            }
            _ => {
                let schedule = self.schedule.get();
                if schedule == "at_launch" {
                    return "Scheduled: as soon as it is launched.".into();
                }
                let every = self.every.get();
                let every = every.trim();
                let repeat = match schedule.as_str() {
                    "once" => format!("once on {}", self.starts_on.get()),
                    "daily" if every == "1" => "every day".into(),
                    "daily" => format!("every {every} days"),
                    "weekly" => {
                        let days = self.days.get().join(", ");
                        if every == "1" {
                            format!("every week on {days}")
                        } else {
                            format!("every {every} weeks on {days}")
                        }
                    }
                    _ => format!(
                        "on day {} of every {} month(s)",
                        self.month_day.get(),
                        every
                    ),
                };
                let zone = if self.in_local_time.get() {
                    "in each user's local time".to_string()
                } else {
                    self.time_zone.get()
                };
                let ends = self.ends_on.get();
                let window = if schedule == "once" {
                    String::new()
                } else if ends.is_empty() {
                    format!(", from {}", self.starts_on.get())
                } else {
                    format!(", from {} to {ends}", self.starts_on.get())
                };
                format!(
                    "Scheduled: {repeat} at {} ({zone}){window}.",
                    self.time.get()
                )
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SettingsState {
    rate_per_minute: RwSignal<String>,
    max_recipients: RwSignal<String>,
    reeligible: RwSignal<bool>,
    reeligible_after: RwSignal<String>,
    reeligible_unit: RwSignal<String>,
    frequency_capped: RwSignal<bool>,
    quiet_hours: RwSignal<bool>,
    quiet_start: RwSignal<String>,
    quiet_end: RwSignal<String>,
    quiet_send_later: RwSignal<bool>,
}

impl SettingsState {
    fn new(s: &SettingsDraft) -> Self {
        Self {
            rate_per_minute: RwSignal::new(s.rate_per_minute.clone()),
            max_recipients: RwSignal::new(s.max_recipients.clone()),
            reeligible: RwSignal::new(s.reeligible),
            reeligible_after: RwSignal::new(s.reeligible_after.clone()),
            reeligible_unit: RwSignal::new(s.reeligible_unit.clone()),
            frequency_capped: RwSignal::new(s.frequency_capped),
            quiet_hours: RwSignal::new(s.quiet_hours),
            quiet_start: RwSignal::new(s.quiet_start.clone()),
            quiet_end: RwSignal::new(s.quiet_end.clone()),
            quiet_send_later: RwSignal::new(s.quiet_send_later),
        }
    }

    fn draft(&self) -> SettingsDraft {
        SettingsDraft {
            rate_per_minute: self.rate_per_minute.get_untracked(),
            max_recipients: self.max_recipients.get_untracked(),
            reeligible: self.reeligible.get_untracked(),
            reeligible_after: self.reeligible_after.get_untracked(),
            reeligible_unit: self.reeligible_unit.get_untracked(),
            frequency_capped: self.frequency_capped.get_untracked(),
            quiet_hours: self.quiet_hours.get_untracked(),
            quiet_start: self.quiet_start.get_untracked(),
            quiet_end: self.quiet_end.get_untracked(),
            quiet_send_later: self.quiet_send_later.get_untracked(),
        }
    }
}

/// Everything the builder edits.
#[derive(Clone, Copy)]
struct CampaignState {
    keys: Keys,
    kind: StoredValue<String>,
    name: RwSignal<String>,
    description: RwSignal<String>,
    tags: RwSignal<String>,
    variants: RwSignal<Vec<VariantState>>,
    /// The key of the variant being edited.
    selected: RwSignal<usize>,
    control_percent: RwSignal<String>,
    delivery: DeliveryState,
    segment_ids: RwSignal<Vec<String>>,
    audience_filter: StoredValue<Option<serde_json::Value>>,
    conversions: RwSignal<Vec<ConversionRow>>,
    settings: SettingsState,
}

impl CampaignState {
    fn new(draft: &CampaignDraft) -> Self {
        let keys = Keys::new();
        let variants: Vec<VariantState> = draft
            .variants
            .iter()
            .map(|v| variant_state(keys, v))
            .collect();
        let first = variants.first().map(|v| v.key).unwrap_or_default();
        Self {
            keys,
            kind: StoredValue::new(draft.kind.clone()),
            name: RwSignal::new(draft.name.clone()),
            description: RwSignal::new(draft.description.clone()),
            tags: RwSignal::new(draft.tags.clone()),
            variants: RwSignal::new(variants),
            selected: RwSignal::new(first),
            control_percent: RwSignal::new(draft.control_percent.clone()),
            delivery: DeliveryState::new(keys, &draft.delivery),
            segment_ids: RwSignal::new(draft.segment_ids.clone()),
            audience_filter: StoredValue::new(draft.audience_filter.clone()),
            conversions: RwSignal::new(
                draft
                    .conversions
                    .iter()
                    .map(|c| conversion_row(keys, c))
                    .collect(),
            ),
            settings: SettingsState::new(&draft.settings),
        }
    }

    fn is_api(&self) -> bool {
        self.kind.with_value(|k| k == "api")
    }

    fn draft(&self) -> CampaignDraft {
        CampaignDraft {
            name: self.name.get_untracked(),
            description: self.description.get_untracked(),
            tags: self.tags.get_untracked(),
            kind: self.kind.get_value(),
            variants: self
                .variants
                .get_untracked()
                .iter()
                .map(|v| VariantDraft {
                    id: v.id.get_untracked(),
                    name: v.name.get_untracked(),
                    percent: v.percent.get_untracked(),
                    message: v.composer.map(|c| c.draft()),
                })
                .collect(),
            control_percent: self.control_percent.get_untracked(),
            delivery: self.delivery.draft(),
            segment_ids: self.segment_ids.get_untracked(),
            audience_filter: self.audience_filter.get_value(),
            conversions: self
                .conversions
                .get_untracked()
                .iter()
                .map(|c| ConversionDraft {
                    trigger: c.trigger.draft(),
                    window: c.window.get_untracked(),
                    window_unit: c.unit.get_untracked(),
                })
                .collect(),
            settings: self.settings.draft(),
        }
    }

    fn selected_variant(&self) -> Option<VariantState> {
        let key = self.selected.get();
        self.variants.with(|list| {
            list.iter()
                .find(|v| v.key == key)
                .or_else(|| list.first())
                .copied()
        })
    }

    /// The index of the variant being edited (error fields name variants by index).
    fn selected_index(&self) -> usize {
        let key = self.selected.get();
        self.variants
            .with(|list| list.iter().position(|v| v.key == key))
            .unwrap_or(0)
    }
}

fn variant_state(keys: Keys, draft: &VariantDraft) -> VariantState {
    VariantState {
        key: keys.next(),
        id: RwSignal::new(draft.id.clone()),
        name: RwSignal::new(draft.name.clone()),
        percent: RwSignal::new(draft.percent.clone()),
        composer: draft.message.as_ref().map(ComposerState::from_draft),
    }
}

fn conversion_row(keys: Keys, draft: &ConversionDraft) -> ConversionRow {
    ConversionRow {
        key: keys.next(),
        trigger: TriggerState::new(keys, &draft.trigger),
        window: RwSignal::new(draft.window.clone()),
        unit: RwSignal::new(draft.window_unit.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Small form pieces.

/// Whether an error about `field` belongs to the slot `slot` (the slot or anything inside it).
fn belongs(field: &str, slot: &str, exact: bool) -> bool {
    field == slot
        || (!exact
            && field
                .strip_prefix(slot)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('[')))
}

/// The message of a rejected value, next to its field.
#[component]
fn FieldMsg(
    errors: RwSignal<Option<FieldError>>,
    #[prop(into)] field: String,
    #[prop(optional)] exact: bool,
) -> impl IntoView {
    move || {
        errors
            .get()
            .filter(|e| belongs(&e.field, &field, exact))
            .map(|e| view! { <p class="field-error" data-field=e.field.clone()>{e.message}</p> })
    }
}

fn text_field(
    id: &'static str,
    kind: &'static str,
    signal: RwSignal<String>,
    readonly: bool,
    placeholder: &'static str,
) -> impl IntoView {
    view! {
        <input id=id type=kind placeholder=placeholder prop:value=signal readonly=readonly
            on:input=move |ev| signal.set(event_target_value(&ev))/>
    }
}

fn checkbox(
    id: &'static str,
    signal: RwSignal<bool>,
    readonly: bool,
    label: &'static str,
) -> impl IntoView {
    view! {
        <label class="check" for=id>
            <input id=id type="checkbox" prop:checked=signal disabled=readonly
                on:change=move |ev| signal.set(event_target_checked(&ev))/>
            {label}
        </label>
    }
}

fn select_field(
    id: Option<&'static str>,
    aria: &'static str,
    signal: RwSignal<String>,
    readonly: bool,
    options: &'static [(&'static str, &'static str)],
) -> impl IntoView {
    view! {
        <select id=id aria-label=aria disabled=readonly on:change=move |ev| signal.set(event_target_value(&ev))>
            {options.iter().map(|(value, label)| view! {
                <option value=*value selected=move || signal.get() == *value>{*label}</option>
            }).collect_view()}
        </select>
    }
}

fn copy_button(value: String) -> impl IntoView {
    view! {
        <button type="button" class="small copy" data-copy=value
            onclick="navigator.clipboard && navigator.clipboard.writeText(this.dataset.copy).then(() => { this.textContent = 'Copied'; })">
            "Copy"
        </button>
    }
}

const COMMON_TIME_ZONES: [&str; 24] = [
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Istanbul",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
];

const TRIGGER_KINDS: [(&str, &str); 2] = [
    ("custom_event", "Performs custom event"),
    ("purchase", "Makes a purchase"),
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

const DELAY_UNITS: [(&str, &str); 5] = [
    ("seconds", "seconds"),
    ("minutes", "minutes"),
    ("hours", "hours"),
    ("days", "days"),
    ("weeks", "weeks"),
];

const REELIGIBLE_UNITS: [(&str, &str); 3] =
    [("minutes", "minutes"), ("hours", "hours"), ("days", "days")];

const WINDOW_UNITS: [(&str, &str); 2] = [("hours", "hours"), ("days", "days")];

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

/// A trigger: custom event (with property filters when asked) or purchase.
#[component]
fn TriggerEditor(
    trigger: TriggerState,
    keys: Keys,
    readonly: bool,
    #[prop(optional)] with_filters: bool,
    #[prop(optional)] id: Option<&'static str>,
) -> impl IntoView {
    let is_purchase = move || trigger.kind.get() == "purchase";
    view! {
        <div class="trigger-editor">
            {select_field(id, "Trigger kind", trigger.kind, readonly, &TRIGGER_KINDS)}
            <input type="text" aria-label=move || if is_purchase() { "Product id" } else { "Event name" }
                id=id.map(|id| format!("{id}-name"))
                list=move || if is_purchase() { "campaign-products" } else { "campaign-events" }
                placeholder=move || if is_purchase() { "any product (or a product id)" } else { "event name" }
                prop:value=trigger.name readonly=readonly on:input=move |ev| trigger.name.set(event_target_value(&ev))/>
        </div>
        {with_filters.then(|| view! {
            <Show when=move || !is_purchase()>
                <div class="rows-editor property-filters">
                    <For each=move || trigger.filters.get() key=|f| f.key let:f>
                        <div class="seg-condition">
                            <span class="seg-kind">"where property"</span>
                            <input type="text" aria-label="Property" placeholder="property" prop:value=f.property readonly=readonly
                                on:input=move |ev| f.property.set(event_target_value(&ev))/>
                            {select_field(None, "Comparison", f.comparison, readonly, &PROPERTY_COMPARISONS)}
                            <Show when=move || !matches!(f.comparison.get().as_str(), "exists" | "does_not_exist")>
                                <input type="text" aria-label="Property value" placeholder="value" prop:value=f.value readonly=readonly
                                    on:input=move |ev| f.value.set(event_target_value(&ev))/>
                            </Show>
                            {(!readonly).then(|| view! {
                                <button type="button" class="small" title="Remove"
                                    on:click=move |_| trigger.filters.update(|l| l.retain(|r| r.key != f.key))>"✕"</button>
                            })}
                        </div>
                    </For>
                    {(!readonly).then(|| view! {
                        <button type="button" class="small" on:click=move |_| {
                            let row = keys.keep(|| FilterRow {
                                key: keys.next(),
                                property: RwSignal::new(String::new()),
                                comparison: RwSignal::new("equals".into()),
                                value: RwSignal::new(String::new()),
                            });
                            trigger.filters.update(|l| l.push(row));
                        }>"+ Property filter"</button>
                    })}
                    <p class="hint">"Numbers and true/false are compared as such; anything else as text."</p>
                </div>
            </Show>
        })}
    }
}

// ---------------------------------------------------------------------------------------------
// The builder.

const STEPS: [(&str, &str); 5] = [
    ("compose", "Compose"),
    ("delivery", "Delivery"),
    ("audience", "Audience"),
    ("settings", "Settings"),
    ("review", "Review and launch"),
];

/// The step where the field of an error is edited.
fn step_of(field: &str) -> &'static str {
    if field.starts_with("delivery") {
        "delivery"
    } else if field.starts_with("audience") {
        "audience"
    } else if field.starts_with("settings") || field.starts_with("conversions") {
        "settings"
    } else if field == "version" || field == "status" || field == "campaign" {
        "review"
    } else {
        "compose"
    }
}

/// Tabs between a campaign's builder and its report.
#[component]
fn CampaignTabs(ws: String, id: String, current: &'static str) -> impl IntoView {
    let build = format!("/w/{ws}/campaigns/{id}");
    let report = format!("{build}/report");
    view! {
        <nav class="tabs" aria-label="Campaign">
            <a href=build aria-current=(current == "build").then_some("page")>"Build"</a>
            <a href=report aria-current=(current == "report").then_some("page")>"Report"</a>
        </nav>
    }
}

#[component]
pub fn CampaignPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let kind = move || query.read().get("kind").unwrap_or_default();
    let details = Resource::new(
        move || (ws.get(), id(), kind()),
        |(ws, id, kind)| get_campaign(ws, id, kind),
    );
    view! {
        <Title text="Campaign"/>
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

#[cfg(feature = "hydrate")]
fn browser_time_zone() -> Option<String> {
    use leptos::web_sys::js_sys::{Array, Intl, Object, Reflect};
    let options = Intl::DateTimeFormat::new(&Array::new(), &Object::new()).resolved_options();
    Reflect::get(&options, &"timeZone".into()).ok()?.as_string()
}

const SAMPLE_TEST_DATA: &str = r#"{
  "user": {"user_id": "user-123", "first_name": "Ada", "email_address": "ada@example.com"},
  "custom_attributes": {"plan": "pro"},
  "event_properties": {},
  "api_trigger_properties": {}
}"#;

#[component]
fn Builder(details: CampaignDetails) -> impl IntoView {
    let ws = use_ws();
    let query = use_query_map();
    let state = CampaignState::new(&details.draft);
    let readonly = !details.can_build || details.status == "archived";
    let campaign_id = RwSignal::new(details.id.clone());
    let version = RwSignal::new(details.version);
    let status = RwSignal::new(details.status.clone());
    let errors = RwSignal::new(None::<FieldError>);
    let initial_step = query
        .read_untracked()
        .get("step")
        .filter(|s| STEPS.iter().any(|(k, _)| k == s))
        .unwrap_or_else(|| "compose".into());
    let step = RwSignal::new(initial_step);
    let save = ServerAction::<SaveCampaign>::new();
    let launch = ServerAction::<SaveCampaign>::new();
    let saved_once = RwSignal::new(false);
    let navigate = use_navigate();

    // The browser's own zone is the natural default for a schedule's time zone.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if state.delivery.time_zone.get_untracked().is_empty()
            && let Some(zone) = browser_time_zone()
        {
            state.delivery.time_zone.set(zone);
        }
    });

    let apply = move |outcome: &SaveOutcome| -> Option<String> {
        errors.set(outcome.error.clone());
        let saved = outcome.saved.as_ref()?;
        version.set(Some(saved.version));
        status.set(saved.status.clone());
        for (variant, id) in state
            .variants
            .get_untracked()
            .iter()
            .zip(saved.variant_ids.iter())
        {
            if !id.is_empty() {
                variant.id.set(Some(id.clone()));
            }
        }
        let first_save = campaign_id.get_untracked().is_none();
        campaign_id.set(Some(saved.id.clone()));
        first_save.then(|| saved.id.clone())
    };
    let nav = navigate.clone();
    Effect::new(move |_| {
        if let Some(Ok(outcome)) = save.value().get() {
            saved_once.set(outcome.error.is_none());
            if let Some(error) = &outcome.error {
                step.set(step_of(&error.field).to_string());
            }
            if let Some(new_id) = apply(&outcome) {
                nav(
                    &format!(
                        "/w/{}/campaigns/{new_id}?step={}",
                        ws.get_untracked(),
                        step.get_untracked()
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
            apply(&outcome);
            match (&outcome.error, &outcome.saved) {
                (None, Some(saved)) => navigate(
                    &format!("/w/{}/campaigns/{}/report", ws.get_untracked(), saved.id),
                    Default::default(),
                ),
                (Some(error), _) => {
                    // Launch refusals about the campaign as a whole stay on the review step.
                    let owner = step_of(&error.field);
                    if owner != "compose" || error.field.starts_with("variants") {
                        step.set(owner.to_string());
                    }
                }
                _ => {}
            }
        }
    });

    let dispatch = move |action: ServerAction<SaveCampaign>, launching: bool| {
        errors.set(None);
        saved_once.set(false);
        action.dispatch(SaveCampaign {
            ws: ws.get_untracked(),
            id: campaign_id.get_untracked(),
            version: version.get_untracked(),
            draft: state.draft(),
            launch: launching,
        });
    };
    let busy = Signal::derive(move || save.pending().get() || launch.pending().get());
    let save_bar = move |next: Option<(&'static str, &'static str)>| {
        view! {
            <div class="save-bar">
                <FormError message=Signal::derive(move || errors.get().map(|e| {
                    let step_name = STEPS.iter().find(|(k, _)| *k == step_of(&e.field)).map(|(_, l)| *l).unwrap_or("");
                    format!("{} — {} ({})", e.field, e.message, step_name)
                }))/>
                <FormError message=last_error(save.value())/>
                <div class="actions-row">
                    {(!readonly).then(|| view! {
                        <button type="button" class="save-draft" disabled=move || busy.get()
                            on:click=move |_| dispatch(save, false)>
                            {move || if save.pending().get() { "Saving…" } else if status.get() == "draft" { "Save draft" } else { "Save changes" }}
                        </button>
                    })}
                    {next.map(|(key, label)| view! {
                        <button type="button" class="link" on:click=move |_| step.set(key.to_string())>{label}</button>
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
    } else if state.is_api() {
        "New API campaign".into()
    } else {
        "New webhook campaign".into()
    };
    let live = matches!(details.status.as_str(), "scheduled" | "active" | "stopped");
    let ws_id = ws.get_untracked();
    view! {
        <div class="page-head">
            <div class="title-row">
                <h1 id="campaign-title">{title}</h1>
                {move || view! { <CampaignStatus status=status.get()/> }}
                <span class="badge muted">{kind_label(&details.draft.kind)}</span>
            </div>
            <a href=format!("/w/{ws_id}/campaigns")>"All campaigns"</a>
        </div>
        {details.id.clone().filter(|_| details.launched.is_some()).map(|id| view! { <CampaignTabs ws=ws_id.clone() id current="build"/> })}
        {live.then(|| view! {
            <p class="notice" id="live-edit-note">"This campaign has been launched. You can still edit it: sends already queued keep the content they were queued with; the changes apply to what is sent from now on."</p>
        })}
        {readonly.then(|| view! {
            <p class="notice">{if details.can_build { "Archived campaigns cannot be edited; unarchive it first." } else { "You can look, not edit: your role in this workspace is Viewer." }}</p>
        })}
        <datalist id="campaign-events">
            {details.events.iter().map(|e| view! { <option value=e.clone()></option> }).collect_view()}
        </datalist>
        <datalist id="campaign-products">
            {details.products.iter().map(|p| view! { <option value=p.clone()></option> }).collect_view()}
        </datalist>
        <datalist id="time-zones">
            {COMMON_TIME_ZONES.iter().map(|z| view! { <option value=*z></option> }).collect_view()}
        </datalist>
        <div class="steps" role="tablist" aria-label="Campaign steps">
            {STEPS.iter().enumerate().map(|(i, (key, label))| {
                let key = *key;
                view! {
                    <button type="button" role="tab" id=format!("step-{key}")
                        aria-selected=move || (step.get() == key).to_string()
                        class:has-error=move || errors.get().is_some_and(|e| step_of(&e.field) == key)
                        on:click=move |_| step.set(key.to_string())>
                        <span class="step-number">{i + 1}</span>{*label}
                    </button>
                }
            }).collect_view()}
        </div>

        <section class="step-panel" role="tabpanel" id="panel-compose" aria-labelledby="step-compose" hidden=move || step.get() != "compose">
            <ComposeStep state readonly errors ws campaign_id/>
            {save_bar(Some(("delivery", "Next: Delivery →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-delivery" aria-labelledby="step-delivery" hidden=move || step.get() != "delivery">
            <DeliveryStep state readonly errors campaign_id base_url=details.base_url.clone()/>
            {save_bar(Some(("audience", "Next: Audience →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-audience" aria-labelledby="step-audience" hidden=move || step.get() != "audience">
            <AudienceStep state readonly errors segments=details.segments.clone()/>
            {save_bar(Some(("settings", "Next: Settings →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-settings" aria-labelledby="step-settings" hidden=move || step.get() != "settings">
            <SettingsStep state readonly errors/>
            {save_bar(Some(("review", "Next: Review →")))}
        </section>
        <section class="step-panel" role="tabpanel" id="panel-review" aria-labelledby="step-review" hidden=move || step.get() != "review">
            <ReviewStep state segments=details.segments.clone() campaign_id base_url=details.base_url.clone()/>
            {save_bar(None)}
            {(!readonly).then(|| view! {
                <Show when=move || status.get() == "draft">
                    <div class="card launch-card">
                        <h2>"Launch"</h2>
                        <p class="hint">"Launching saves the campaign, checks it is complete, and starts it. You can stop it at any time."</p>
                        <FormError message=last_error(launch.value())/>
                        <button type="button" class="primary" id="launch-campaign" disabled=move || busy.get()
                            on:click=move |_| dispatch(launch, true)>
                            {move || if launch.pending().get() { "Launching…" } else { "Launch campaign" }}
                        </button>
                    </div>
                </Show>
            })}
        </section>
    }
}

#[component]
fn ComposeStep(
    state: CampaignState,
    readonly: bool,
    errors: RwSignal<Option<FieldError>>,
    ws: Signal<String>,
    campaign_id: RwSignal<Option<String>>,
) -> impl IntoView {
    let keys = state.keys;
    let percent_total = move || {
        let variants: u32 = state.variants.with(|l| {
            l.iter()
                .map(|v| v.percent.get().trim().parse::<u32>().unwrap_or(0))
                .sum()
        });
        variants
            + state
                .control_percent
                .get()
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
    };
    let add_variant = move |_| {
        let copy_from = state.selected_variant();
        let number = state.variants.with_untracked(|l| l.len()) + 1;
        let variant = keys.keep(|| VariantState {
            key: keys.next(),
            id: RwSignal::new(None),
            name: RwSignal::new(format!("Variant {number}")),
            percent: RwSignal::new("0".into()),
            // A new variant starts as a copy of the one on screen, as "Copy from Variant" does.
            composer: copy_from
                .and_then(|v| v.composer)
                .map(|c| ComposerState::from_draft(&c.draft())),
        });
        state.variants.update(|l| l.push(variant));
        state.selected.set(variant.key);
    };
    let remove_variant = move |_| {
        let key = state.selected.get_untracked();
        state.variants.update(|l| {
            if l.len() > 1 {
                l.retain(|v| v.key != key);
            }
        });
        if let Some(first) = state.variants.with_untracked(|l| l.first().map(|v| v.key)) {
            state.selected.set(first);
        }
    };
    view! {
        <section class="card">
            <h2>"Campaign"</h2>
            <div class="form-grid">
                <label for="campaign-name" class="field-label">"Campaign name"</label>
                <div>
                    {text_field("campaign-name", "text", state.name, readonly, "Welcome series")}
                    <FieldMsg errors field="name"/>
                </div>
                <label for="campaign-description" class="field-label">"Description"</label>
                <div>
                    {text_field("campaign-description", "text", state.description, readonly, "What it is for (optional)")}
                    <FieldMsg errors field="description"/>
                </div>
                <label for="campaign-tags" class="field-label">"Tags"</label>
                <div>
                    {text_field("campaign-tags", "text", state.tags, readonly, "onboarding, emea")}
                    <p class="hint">"Comma-separated; frequency-capping rules can count by tag."</p>
                    <FieldMsg errors field="tags"/>
                </div>
            </div>
        </section>
        <section class="card" id="variants">
            <h2>"Variants"</h2>
            <div class="variant-tabs" role="tablist" aria-label="Variants">
                <For each=move || state.variants.get() key=|v| v.key let:v>
                    <button type="button" role="tab" class="variant-tab"
                        aria-selected=move || (state.selected.get() == v.key).to_string()
                        on:click=move |_| state.selected.set(v.key)>
                        {move || v.name.get()} " · " {move || v.percent.get()} "%"
                    </button>
                </For>
                {(!readonly).then(|| view! { <button type="button" class="small" id="add-variant" on:click=add_variant>"+ Add variant"</button> })}
            </div>
            <div class="form-grid narrow">
                <label for="control-percent" class="field-label">"Control group"</label>
                <div>
                    <span class="with-unit">{text_field("control-percent", "number", state.control_percent, readonly, "0")}"%"</span>
                    <p class="hint">"Held out: receives nothing, still counted for conversions."</p>
                    <FieldMsg errors field="control_percent"/>
                </div>
            </div>
            <p class="hint" class:form-error=move || percent_total() != 100 id="percent-total">
                {move || format!("Variants and control group add up to {}% (they must add up to 100%).", percent_total())}
            </p>
            <FieldMsg errors field="variants" exact=true/>
            {move || state.selected_variant().map(|v| {
                let index = state.selected_index();
                view! {
                    <div class="variant-panel">
                        <div class="form-grid narrow">
                            <label for="variant-name" class="field-label">"Variant name"</label>
                            <div>
                                {text_field("variant-name", "text", v.name, readonly, "Variant 1")}
                                <FieldMsg errors field=format!("variants[{index}].name")/>
                            </div>
                            <label for="variant-percent" class="field-label">"Share of the audience"</label>
                            <div>
                                <span class="with-unit">{text_field("variant-percent", "number", v.percent, readonly, "100")}"%"</span>
                                <FieldMsg errors field=format!("variants[{index}].percent")/>
                                <FieldMsg errors field=format!("variants[{index}]") exact=true/>
                            </div>
                        </div>
                        {(!readonly).then(|| view! {
                            <Show when=move || state.variants.with(|l| l.len() > 1)>
                                <button type="button" class="link danger" on:click=remove_variant>"Remove this variant"</button>
                            </Show>
                        })}
                    </div>
                }
            })}
        </section>
        {move || {
            let variant = state.selected_variant()?;
            let index = state.selected_index();
            Some(match variant.composer {
                Some(composer) => view! {
                    <div class="editor-grid">
                        <section class="card">
                            <h2>"Webhook"</h2>
                            <Composer state=composer readonly/>
                            <FieldMsg errors field=format!("variants[{index}].message")/>
                        </section>
                        <VariantPreview composer ws/>
                    </div>
                }.into_any(),
                None => view! {
                    <section class="card">
                        <h2>"Content"</h2>
                        <p>"An API campaign has no content here: your system sends the webhook with each "<code>"/api/messages/send"</code>" call, naming this campaign and variant, and Herald tracks it."</p>
                        <p>"Variant id ("<code>"message_variation_id"</code>"): "
                            {move || match variant.id.get() {
                                Some(id) => view! { <code class="variant-id">{id.clone()}</code> " " {copy_button(id)} }.into_any(),
                                None => view! { <span class="hint">"given when the campaign is saved"</span> }.into_any(),
                            }}
                        </p>
                        {move || campaign_id.get().is_none().then(|| view! { <p class="hint">"Save the draft to get the ids."</p> })}
                    </section>
                }.into_any(),
            })
        }}
    }
}

/// A live preview of the variant on screen, with test data or a real user's data.
#[component]
fn VariantPreview(composer: ComposerState, ws: Signal<String>) -> impl IntoView {
    let test_data = RwSignal::new(SAMPLE_TEST_DATA.to_string());
    let preview = ServerAction::<PreviewWebhook>::new();
    let load_user = ServerAction::<UserTestData>::new();
    let preview_user = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(data)) = load_user.value().get() {
            test_data.set(data);
        }
    });
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
        <section class="card">
            <h2>"Preview"</h2>
            <form class="row-form" on:submit=move |ev| {
                ev.prevent_default();
                load_user.dispatch(UserTestData { ws: ws.get_untracked(), external_id: preview_user.get_untracked() });
            }>
                <label for="preview-user" class="sr-only">"Preview as user"</label>
                <input id="preview-user" type="text" placeholder="Preview as user: external_id"
                    prop:value=preview_user on:input=move |ev| preview_user.set(event_target_value(&ev))/>
                <button type="submit">"Use their data"</button>
            </form>
            <FormError message=last_error(load_user.value())/>
            <details class="test-data">
                <summary>"Test data"</summary>
                <textarea id="test-data" rows="7" class="code" aria-label="Test data" prop:value=test_data
                    on:input=move |ev| test_data.set(event_target_value(&ev))></textarea>
            </details>
            <FormError message=last_error(preview.value())/>
            {move || preview.value().get().and_then(|r| r.ok()).map(|p| view! { <RequestView request=p/> })}
        </section>
    }
}

/// `campaign_id`, variant ids and a curl example for API campaigns and API-triggered delivery.
#[component]
fn ApiUsage(
    state: CampaignState,
    campaign_id: RwSignal<Option<String>>,
    base_url: String,
) -> impl IntoView {
    let base = StoredValue::new(base_url);
    move || {
        let Some(id) = campaign_id.get() else {
            return view! { <p class="hint" id="api-usage">"Save the draft to get the campaign_id your system will use."</p> }.into_any();
        };
        let api = state.is_api();
        let variants = state.variants.get();
        let first_variant = variants
            .first()
            .and_then(|v| v.id.get())
            .unwrap_or_else(|| "MESSAGE_VARIATION_ID".into());
        let base = base.get_value();
        let curl = if api {
            format!(
                r#"curl -X POST {base}/api/messages/send \
  -H 'Authorization: Bearer YOUR-REST-API-KEY' \
  -H 'Content-Type: application/json' \
  -d '{{
    "campaign_id": "{id}",
    "external_user_ids": ["user-123"],
    "messages": {{
      "webhook": {{
        "url": "https://example.com/hooks/{{{{${{user_id}}}}}}",
        "request_method": "POST",
        "request_headers": {{"Content-Type": "application/json"}},
        "body": "{{\"hello\": \"{{{{${{first_name}}}}}}\"}}",
        "message_variation_id": "{first_variant}"
      }}
    }}
  }}'"#
            )
        } else {
            format!(
                r#"curl -X POST {base}/api/campaigns/trigger/send \
  -H 'Authorization: Bearer YOUR-REST-API-KEY' \
  -H 'Content-Type: application/json' \
  -d '{{
    "campaign_id": "{id}",
    "recipients": [
      {{"external_user_id": "user-123", "trigger_properties": {{"order_id": "A-1"}}}}
    ]
  }}'"#
            )
        };
        view! {
            <div id="api-usage">
                <dl class="facts">
                    <dt>"campaign_id"</dt>
                    <dd><code id="campaign-id">{id.clone()}</code> " " {copy_button(id.clone())}</dd>
                    {api.then(|| variants.iter().map(|v| {
                        let name = v.name.get();
                        let vid = v.id.get();
                        view! {
                            <dt>{format!("message_variation_id ({name})")}</dt>
                            <dd>{match vid {
                                Some(vid) => view! { <code class="variant-id">{vid.clone()}</code> " " {copy_button(vid)} }.into_any(),
                                None => view! { <span class="hint">"given when the campaign is saved"</span> }.into_any(),
                            }}</dd>
                        }
                    }).collect_view())}
                </dl>
                <h3>{if api { "Send through this campaign" } else { "Trigger this campaign" }}</h3>
                <pre class="body curl">{curl.clone()}</pre>
                {copy_button(curl)}
                {(!api).then(|| view! { <p class="hint">"Trigger properties are available in the webhook as {{api_trigger_properties.${order_id}}}. The campaign must be launched (active)."</p> })}
            </div>
        }
        .into_any()
    }
}

#[component]
fn DeliveryStep(
    state: CampaignState,
    readonly: bool,
    errors: RwSignal<Option<FieldError>>,
    campaign_id: RwSignal<Option<String>>,
    base_url: String,
) -> impl IntoView {
    if state.is_api() {
        return view! {
            <section class="card">
                <h2>"API campaign"</h2>
                <p>"An API campaign sends whenever your system calls "<code>"/api/messages/send"</code>" with its "<code>"campaign_id"</code>" and a variant's "<code>"message_variation_id"</code>". Launch it to accept sends."</p>
                <ApiUsage state campaign_id base_url/>
            </section>
        }
        .into_any();
    }
    let d = state.delivery;
    let keys = state.keys;
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
            "When your system calls /api/campaigns/trigger/send.",
        ),
    ];
    let schedule_is = move |wanted: &'static [&'static str]| {
        Signal::derive(move || wanted.contains(&d.schedule.get().as_str()))
    };
    let dated = schedule_is(&["once", "daily", "weekly", "monthly"]);
    let repeating = schedule_is(&["daily", "weekly", "monthly"]);
    let weekly = schedule_is(&["weekly"]);
    let monthly = schedule_is(&["monthly"]);
    let every_unit = move || match d.schedule.get().as_str() {
        "daily" => "day(s)",
        "weekly" => "week(s)",
        _ => "month(s)",
    };
    view! {
        <section class="card">
            <h2>"How it is delivered"</h2>
            <div class="choice-cards" role="radiogroup" aria-label="Delivery type">
                {kinds.into_iter().map(|(kind, label, hint)| view! {
                    <label class="choice" class:chosen=move || d.kind.get() == kind>
                        <input type="radio" name="delivery-kind" value=kind disabled=readonly
                            prop:checked=move || d.kind.get() == kind on:change=move |_| d.kind.set(kind.to_string())/>
                        <span><strong>{label}</strong><span class="hint">{hint}</span></span>
                    </label>
                }).collect_view()}
            </div>
            <FieldMsg errors field="delivery" exact=true/>
        </section>

        <Show when=move || d.kind.get() == "scheduled">
            <section class="card" id="delivery-scheduled">
                <h2>"Schedule"</h2>
                <div class="form-grid">
                    <label for="schedule-kind" class="field-label">"Send"</label>
                    <div>
                        {select_field(Some("schedule-kind"), "Send", d.schedule, readonly, &SCHEDULES)}
                        <FieldMsg errors field="delivery.schedule" exact=true/>
                        <FieldMsg errors field="delivery.schedule.recurrence" exact=true/>
                    </div>
                    <Show when=move || dated.get()>
                        <label for="schedule-starts-on" class="field-label">{move || if d.schedule.get() == "once" { "On" } else { "Starting on" }}</label>
                        <div>
                            {text_field("schedule-starts-on", "date", d.starts_on, readonly, "")}
                            <FieldMsg errors field="delivery.schedule.starts_on"/>
                        </div>
                        <label for="schedule-time" class="field-label">"At"</label>
                        <div>
                            {text_field("schedule-time", "time", d.time, readonly, "09:00")}
                            <FieldMsg errors field="delivery.schedule.time"/>
                        </div>
                    </Show>
                    <Show when=move || repeating.get()>
                        <label for="schedule-every" class="field-label">"Every"</label>
                        <div>
                            <span class="with-unit">{text_field("schedule-every", "number", d.every, readonly, "1")}{every_unit}</span>
                            <FieldMsg errors field="delivery.schedule.recurrence.every"/>
                        </div>
                    </Show>
                    <Show when=move || weekly.get()>
                        <span class="field-label">"On"</span>
                        <div>
                            <div class="weekdays" role="group" aria-label="Days of the week">
                                {WEEKDAYS.into_iter().map(|(key, label)| view! {
                                    <label class="check">
                                        <input type="checkbox" value=key disabled=readonly
                                            prop:checked=move || d.days.with(|l| l.iter().any(|x| x == key))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                d.days.update(|l| {
                                                    l.retain(|x| x != key);
                                                    if on { l.push(key.to_string()); }
                                                });
                                            }/>
                                        {label}
                                    </label>
                                }).collect_view()}
                            </div>
                            <FieldMsg errors field="delivery.schedule.recurrence.days"/>
                        </div>
                    </Show>
                    <Show when=move || monthly.get()>
                        <label for="schedule-month-day" class="field-label">"On day"</label>
                        <div>
                            {text_field("schedule-month-day", "number", d.month_day, readonly, "1")}
                            <p class="hint">"Months without this day are skipped."</p>
                            <FieldMsg errors field="delivery.schedule.recurrence.day"/>
                        </div>
                    </Show>
                    <Show when=move || repeating.get()>
                        <label for="schedule-ends-on" class="field-label">"Ending on"</label>
                        <div>
                            {text_field("schedule-ends-on", "date", d.ends_on, readonly, "")}
                            <p class="hint">"Optional; the last day included."</p>
                            <FieldMsg errors field="delivery.schedule.ends_on"/>
                        </div>
                    </Show>
                    <Show when=move || dated.get()>
                        <label for="schedule-time-zone" class="field-label">"Time zone"</label>
                        <div>
                            <input id="schedule-time-zone" type="text" list="time-zones" placeholder="Europe/Paris"
                                prop:value=d.time_zone readonly=readonly on:input=move |ev| d.time_zone.set(event_target_value(&ev))/>
                            <FieldMsg errors field="delivery.schedule.time_zone"/>
                            {checkbox("schedule-local-time", d.in_local_time, readonly, "Send at this time in each user's local time zone")}
                            <p class="hint">"Users without a time zone use the zone above. Local-time sends are queued 24 hours ahead."</p>
                            <FieldMsg errors field="delivery.schedule.in_local_time"/>
                        </div>
                    </Show>
                </div>
            </section>
        </Show>

        <Show when=move || d.kind.get() == "action">
            <section class="card" id="delivery-action">
                <h2>"Action"</h2>
                <div class="form-grid">
                    <label for="trigger" class="field-label">"When a user"</label>
                    <div>
                        <TriggerEditor trigger=d.trigger keys readonly with_filters=true id="trigger"/>
                        <p class="hint">"Users in the audience who do this after the campaign is launched."</p>
                        <FieldMsg errors field="delivery.trigger"/>
                    </div>
                    <label for="action-delay" class="field-label">"Delay"</label>
                    <div>
                        <span class="with-unit">
                            {text_field("action-delay", "number", d.delay, readonly, "0")}
                            {select_field(None, "Delay unit", d.delay_unit, readonly, &DELAY_UNITS)}
                        </span>
                        <p class="hint">"0 sends immediately."</p>
                        <FieldMsg errors field="delivery.delay_seconds"/>
                    </div>
                    <span class="field-label">"Exception events"</span>
                    <div class="rows-editor">
                        <For each=move || d.exceptions.get() key=|t| t.key let:t>
                            <div class="exception-row">
                                <TriggerEditor trigger=t keys readonly/>
                                {(!readonly).then(|| view! {
                                    <button type="button" class="small" title="Remove"
                                        on:click=move |_| d.exceptions.update(|l| l.retain(|x| x.key != t.key))>"✕"</button>
                                })}
                            </div>
                        </For>
                        {(!readonly).then(|| view! {
                            <button type="button" class="small" on:click=move |_| {
                                let row = keys.keep(|| TriggerState::new(keys, &TriggerDraft::default()));
                                d.exceptions.update(|l| l.push(row));
                            }>"+ Exception event"</button>
                        })}
                        <p class="hint">"With a delay: a user who does one of these before the send is due does not receive it."</p>
                        <FieldMsg errors field="delivery.exceptions"/>
                    </div>
                    <label for="action-starts-at" class="field-label">"Starts"</label>
                    <div>
                        {text_field("action-starts-at", "datetime-local", d.starts_at, readonly, "")}
                        <p class="hint">"UTC. Optional: triggers before this are ignored."</p>
                        <FieldMsg errors field="delivery.starts_at"/>
                    </div>
                    <label for="action-ends-at" class="field-label">"Ends"</label>
                    <div>
                        {text_field("action-ends-at", "datetime-local", d.ends_at, readonly, "")}
                        <p class="hint">"UTC. Optional."</p>
                        <FieldMsg errors field="delivery.ends_at"/>
                    </div>
                </div>
            </section>
        </Show>

        <Show when=move || d.kind.get() == "api">
            <section class="card" id="delivery-api">
                <h2>"API-triggered"</h2>
                <p>"The content lives here; your system decides when and to whom it goes, with per-call "<code>"trigger_properties"</code>"."</p>
                <ApiUsage state campaign_id base_url=base_url.clone()/>
            </section>
        </Show>
    }
    .into_any()
}

#[component]
fn AudienceStep(
    state: CampaignState,
    readonly: bool,
    errors: RwSignal<Option<FieldError>>,
    segments: Vec<SegmentOption>,
) -> impl IntoView {
    let ws = use_ws();
    let reach = ServerAction::<EstimateCampaignReach>::new();
    // Count again shortly after the last change of the chosen segments.
    let edits = StoredValue::new(0u64);
    Effect::new(move |_| {
        state.segment_ids.track();
        let generation = edits.get_value() + 1;
        edits.set_value(generation);
        set_timeout(
            move || {
                if edits.try_get_value() == Some(generation) {
                    reach.dispatch(EstimateCampaignReach {
                        ws: ws.get_untracked(),
                        segment_ids: state.segment_ids.get_untracked(),
                        filter: state.audience_filter.get_value(),
                    });
                }
            },
            std::time::Duration::from_millis(300),
        );
    });
    let has_filter = state.audience_filter.with_value(|f| f.is_some());
    let ws_id = ws.get_untracked();
    let none = segments.is_empty();
    view! {
        <div class="editor-grid">
            <section class="card">
                <h2>"Segments"</h2>
                <p class="hint">"Users must be in every chosen segment. With none chosen, the campaign reaches every user of the workspace."</p>
                {if none {
                    view! {
                        <p class="hint">"No segments yet. "<a href=format!("/w/{ws_id}/segments/new")>"Build a segment"</a>" to target part of your users."</p>
                    }.into_any()
                } else {
                    view! {
                        <fieldset class="segment-picker" id="segment-picker">
                            <legend class="sr-only">"Segments"</legend>
                            {segments.into_iter().map(|s| {
                                let id = s.id.clone();
                                let checked_id = s.id.clone();
                                view! {
                                    <label class="check">
                                        <input type="checkbox" value=s.id.clone() disabled=readonly
                                            prop:checked=move || state.segment_ids.with(|l| l.contains(&checked_id))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                let id = id.clone();
                                                state.segment_ids.update(|l| {
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
                    }.into_any()
                }}
                {has_filter.then(|| view! { <p class="notice">"This campaign also has an audience filter set over the management API; it is kept as it is."</p> })}
                <FieldMsg errors field="audience"/>
            </section>
            <section class="card" id="campaign-reach-card">
                <h2>"Estimated reach"</h2>
                <FormError message=last_error(reach.value())/>
                {move || match reach.value().get() {
                    Some(Ok(n)) => view! {
                        <p class="big-number" id="campaign-reach">{n}</p>
                        <p class="hint">"users right now, before re-eligibility, frequency caps and the control group"</p>
                    }.into_any(),
                    _ => view! { <p class="loading">"Counting…"</p> }.into_any(),
                }}
            </section>
        </div>
    }
}

#[component]
fn SettingsStep(
    state: CampaignState,
    readonly: bool,
    errors: RwSignal<Option<FieldError>>,
) -> impl IntoView {
    let s = state.settings;
    let keys = state.keys;
    let action_based = move || state.delivery.kind.get() == "action";
    view! {
        <section class="card">
            <h2>"Delivery controls"</h2>
            <div class="form-grid">
                <label for="settings-rate" class="field-label">"Rate limit"</label>
                <div>
                    <span class="with-unit">{text_field("settings-rate", "number", s.rate_per_minute, readonly, "no limit")}"messages per minute"</span>
                    <FieldMsg errors field="settings.rate_per_minute"/>
                </div>
                <label for="settings-max" class="field-label">"Recipient cap"</label>
                <div>
                    <span class="with-unit">{text_field("settings-max", "number", s.max_recipients, readonly, "no cap")}"users per send"</span>
                    <FieldMsg errors field="settings.max_recipients"/>
                </div>
                <span class="field-label">"Re-eligibility"</span>
                <div>
                    {checkbox("settings-reeligible", s.reeligible, readonly, "Users can receive this campaign again")}
                    <Show when=move || s.reeligible.get()>
                        <span class="with-unit">
                            "after"
                            {text_field("settings-reeligible-after", "number", s.reeligible_after, readonly, "1")}
                            {select_field(None, "Re-eligibility unit", s.reeligible_unit, readonly, &REELIGIBLE_UNITS)}
                        </span>
                    </Show>
                    <p class="hint">"Off: each user receives it once. 0: every time (transactional sends)."</p>
                    <FieldMsg errors field="settings.reeligible_after_seconds"/>
                </div>
                <span class="field-label">"Frequency capping"</span>
                <div>
                    {checkbox("settings-capped", s.frequency_capped, readonly, "Obey the workspace's frequency-capping rules")}
                    <FieldMsg errors field="settings.frequency_capped"/>
                </div>
                <span class="field-label">"Quiet hours"</span>
                <div>
                    {checkbox("settings-quiet", s.quiet_hours, readonly, "Hold sends during quiet hours (users' local time)")}
                    <Show when=move || s.quiet_hours.get()>
                        <span class="with-unit">
                            "from" {text_field("settings-quiet-start", "time", s.quiet_start, readonly, "22:00")}
                            "to" {text_field("settings-quiet-end", "time", s.quiet_end, readonly, "08:00")}
                        </span>
                        {checkbox("settings-quiet-later", s.quiet_send_later, readonly, "Send when quiet hours end (otherwise drop the send)")}
                    </Show>
                    <Show when=move || !action_based()>
                        <p class="hint">"Quiet hours matter most for action-based campaigns."</p>
                    </Show>
                    <FieldMsg errors field="settings.quiet_hours"/>
                </div>
            </div>
        </section>
        <section class="card" id="conversions">
            <h2>"Conversion events"</h2>
            <p class="hint">"A recipient converts by doing this within the window after receiving the campaign. The first one is primary. Up to 4."</p>
            <div class="rows-editor">
                <For each=move || state.conversions.get() key=|c| c.key let:c>
                    <div class="seg-condition conversion-row">
                        <TriggerEditor trigger=c.trigger keys readonly/>
                        <span>"within"</span>
                        <input type="number" aria-label="Window" min="1" prop:value=c.window readonly=readonly
                            on:input=move |ev| c.window.set(event_target_value(&ev))/>
                        {select_field(None, "Window unit", c.unit, readonly, &WINDOW_UNITS)}
                        {(!readonly).then(|| view! {
                            <button type="button" class="small" title="Remove"
                                on:click=move |_| state.conversions.update(|l| l.retain(|x| x.key != c.key))>"✕"</button>
                        })}
                    </div>
                </For>
                {(!readonly).then(|| view! {
                    <Show when=move || state.conversions.with(|l| l.len() < 4)>
                        <button type="button" class="small" on:click=move |_| {
                            let row = keys.keep(|| conversion_row(keys, &ConversionDraft {
                                trigger: TriggerDraft::default(),
                                window: "3".into(),
                                window_unit: "days".into(),
                            }));
                            state.conversions.update(|l| l.push(row));
                        }>"+ Conversion event"</button>
                    </Show>
                })}
            </div>
            <FieldMsg errors field="conversions"/>
        </section>
    }
}

#[component]
fn ReviewStep(
    state: CampaignState,
    segments: Vec<SegmentOption>,
    campaign_id: RwSignal<Option<String>>,
    base_url: String,
) -> impl IntoView {
    let segments = StoredValue::new(segments);
    let s = state.settings;
    let audience = move || {
        let ids = state.segment_ids.get();
        if ids.is_empty() {
            return "Every user of the workspace".to_string();
        }
        let names: Vec<String> = segments.with_value(|all| {
            ids.iter()
                .map(|id| {
                    all.iter()
                        .find(|s| s.id == *id)
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| id.clone())
                })
                .collect()
        });
        format!("Users in {}", names.join(" and "))
    };
    let controls = move || {
        let mut parts = Vec::new();
        let rate = s.rate_per_minute.get();
        parts.push(if rate.trim().is_empty() {
            "no rate limit".to_string()
        } else {
            format!("at most {} per minute", rate.trim())
        });
        parts.push(if s.reeligible.get() {
            format!(
                "re-eligible after {} {}",
                s.reeligible_after.get().trim(),
                s.reeligible_unit.get()
            )
        } else {
            "each user receives it once".into()
        });
        parts.push(if s.frequency_capped.get() {
            "frequency capping on".into()
        } else {
            "frequency capping off".into()
        });
        if s.quiet_hours.get() {
            parts.push(format!(
                "quiet hours {}–{}",
                s.quiet_start.get(),
                s.quiet_end.get()
            ));
        }
        parts.join(" · ")
    };
    view! {
        <section class="card" id="campaign-summary">
            <h2>"Summary"</h2>
            <dl class="facts">
                <dt>"Name"</dt><dd>{move || state.name.get()}</dd>
                <dt>"Type"</dt><dd>{if state.is_api() { "API campaign" } else { "Webhook campaign" }}</dd>
                <dt>"Variants"</dt>
                <dd>
                    {move || state.variants.get().iter().map(|v| {
                        let url = v.composer.map(|c| c.url.get()).unwrap_or_default();
                        format!("{} ({}%){}", v.name.get(), v.percent.get(), if url.is_empty() { String::new() } else { format!(" → {url}") })
                    }).collect::<Vec<_>>().join("; ")}
                    {move || {
                        let control = state.control_percent.get();
                        (control.trim() != "0" && !control.trim().is_empty()).then(|| format!("; control group {}%", control.trim()))
                    }}
                </dd>
                <dt>"Delivery"</dt><dd id="summary-delivery">{move || if state.is_api() { "Through /api/messages/send".to_string() } else { state.delivery.describe() }}</dd>
                <dt>"Audience"</dt><dd>{audience}</dd>
                <dt>"Controls"</dt><dd>{controls}</dd>
                <dt>"Conversions"</dt>
                <dd>{move || {
                    let list = state.conversions.get();
                    if list.is_empty() {
                        "none".to_string()
                    } else {
                        list.iter().map(|c| format!("{} within {} {}", c.trigger.describe(), c.window.get(), c.unit.get())).collect::<Vec<_>>().join("; ")
                    }
                }}</dd>
            </dl>
        </section>
        <Show when=move || state.is_api() || state.delivery.kind.get() == "api">
            <section class="card">
                <h2>"Using it from your system"</h2>
                <ApiUsage state campaign_id base_url=base_url.clone()/>
            </section>
        </Show>
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Queued / retrying / delivered / failed / aborted as one bar.
#[component]
fn ProgressBar(progress: ProgressView) -> impl IntoView {
    let total = progress.total();
    let state = if progress.busy {
        "busy"
    } else if total > 0 {
        "done"
    } else {
        "idle"
    };
    let parts = [
        ("delivered", "Delivered", progress.delivered, "ok"),
        ("failed", "Failed", progress.failed, "bad"),
        ("aborted", "Aborted", progress.aborted, "muted"),
        ("retrying", "Retrying", progress.retrying, "warn"),
        ("queued", "Queued", progress.queued, "queued"),
    ];
    let width = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let headline = match state {
        "busy" if total == 0 => "Preparing the sends…".to_string(),
        "busy" if progress.dispatching => format!(
            "Queueing recipients: {total} so far, {} finished. Refreshing every 2 seconds.",
            total - progress.queued - progress.retrying
        ),
        "busy" => format!(
            "Sending: {} of {} finished. Refreshing every 2 seconds.",
            total - progress.queued - progress.retrying,
            total
        ),
        "done" => format!("Done: all {total} sends finished."),
        _ if progress.status == "draft" => "Not launched yet.".to_string(),
        _ => "No sends yet.".to_string(),
    };
    view! {
        <section class="card" id="campaign-progress" data-state=state data-total=total>
            <h2>"Progress"</h2>
            <p class="progress-headline" role="status">{headline}</p>
            <div class="progress-bar" role="img"
                aria-label=format!("{} delivered, {} failed, {} aborted, {} retrying, {} queued", progress.delivered, progress.failed, progress.aborted, progress.retrying, progress.queued)>
                {parts.iter().filter(|p| p.2 > 0).map(|(_, label, n, class)| view! {
                    <span class=format!("progress-part {class}") style=format!("width: {:.2}%", width(*n)) title=format!("{label}: {n}")></span>
                }).collect_view()}
            </div>
            <p class="legend progress-legend">
                {parts.into_iter().map(|(key, label, n, class)| view! {
                    <span class=format!("dot {class}")></span>
                    <span id=format!("progress-{key}")>{n}</span>" "{label.to_lowercase()}" "
                }).collect_view()}
                {progress.remaining_to_queue.filter(|n| *n > 0).map(|n| view! { <span>{format!("· {n} still to queue")}</span> })}
            </p>
        </section>
    }
}

/// Sends, deliveries and errors per bucket (an SVG, readable without JavaScript).
#[component]
fn SeriesChart(title: String, bars: Vec<SeriesBar>) -> impl IntoView {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 140.0;
    const TOP: f64 = 10.0;
    let peak = bars.iter().map(|b| b.sends).max().unwrap_or(0).max(1) as f64;
    let slot = WIDTH / bars.len().max(1) as f64;
    let scale = (HEIGHT - TOP) / peak;
    let every = (bars.len() / 6).max(1);
    let totals = (
        bars.iter().map(|b| b.sends).sum::<u64>(),
        bars.iter().map(|b| b.delivered).sum::<u64>(),
        bars.iter().map(|b| b.errors).sum::<u64>(),
    );
    let drawn = bars
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let w = slot * 0.26;
            let x0 = i as f64 * slot + slot * 0.1;
            let bar = |k: f64, n: u64, class: &'static str| {
                let h = n as f64 * scale;
                view! { <rect x=x0 + k * w y=HEIGHT - h width=w height=h class=class/> }
            };
            let label = (i % every == 0)
                .then(|| view! { <text x=x0 y=HEIGHT + 14.0 class="axis">{b.label.clone()}</text> });
            let title = format!(
                "{}: {} sends, {} delivered, {} errors",
                b.label, b.sends, b.delivered, b.errors
            );
            view! {
                <g><title>{title}</title>{bar(0.0, b.sends, "bar-other")}{bar(1.0, b.delivered, "bar-ok")}{bar(2.0, b.errors, "bar-bad")}{label}</g>
            }
        })
        .collect_view();
    view! {
        <section class="card chart-card" id="campaign-chart">
            <div class="chart-head">
                <h2>{title}</h2>
                <p class="legend">
                    <span class="dot other"></span>{totals.0} " sends "
                    <span class="dot ok"></span>{totals.1} " delivered "
                    <span class="dot bad"></span>{totals.2} " errors"
                </p>
            </div>
            <svg viewBox=format!("0 0 {WIDTH} {}", HEIGHT + 18.0) class="chart" role="img"
                aria-label=format!("{} sends, {} delivered, {} errors", totals.0, totals.1, totals.2)>
                <line x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT class="baseline"/>
                {drawn}
            </svg>
        </section>
    }
}

fn stats_cells(row: &VariantStatsRow) -> impl IntoView + use<> {
    let rate = if row.sends == 0 {
        "—".to_string()
    } else {
        format!("{:.1}%", row.delivered as f64 * 100.0 / row.sends as f64)
    };
    view! {
        <td class="num">{row.sends}</td>
        <td class="num">{row.delivered}<span class="hint">" " {rate}</span></td>
        <td class="num">{row.errors_client}</td>
        <td class="num">{row.errors_server}</td>
        <td class="num">{row.errors_network}</td>
        <td class="num">{row.aborted}</td>
        <td class="num">{row.retries}</td>
        <td class="num">{row.unique_recipients}</td>
        <td class="num">{row.conversions}</td>
    }
}

#[component]
fn VariantTable(report: ReportView) -> impl IntoView {
    view! {
        <section class="card" id="variant-stats">
            <h2>"Variants"</h2>
            <table class="table">
                <thead>
                    <tr>
                        <th>"Variant"</th><th class="num">"Sends"</th><th class="num">"Delivered"</th>
                        <th class="num" title="Final 4xx answers">"4xx errors"</th>
                        <th class="num" title="5xx, 408 or 429 after every retry">"5xx errors"</th>
                        <th class="num" title="Timeouts, refused connections and addresses">"Network errors"</th>
                        <th class="num">"Aborted"</th><th class="num">"Retries"</th>
                        <th class="num">"Unique recipients"</th><th class="num">"Conversions"</th>
                    </tr>
                </thead>
                <tbody>
                    {report.variants.iter().map(|v| view! {
                        <tr><td>{v.name.clone()}</td>{stats_cells(v)}</tr>
                    }).collect_view()}
                    {(report.control_recipients > 0).then(|| view! {
                        <tr class="control-row">
                            <td>"Control group"</td>
                            <td class="num" colspan="7">{format!("{} held out", report.control_recipients)}</td>
                            <td class="num"></td>
                            <td class="num">{report.control_conversions}</td>
                        </tr>
                    })}
                </tbody>
                <tfoot>
                    <tr class="total-row"><td>"Total"</td>{stats_cells(&report.total)}</tr>
                </tfoot>
            </table>
        </section>
    }
}

#[component]
fn ReportHead(
    summary: CampaignSummary,
    action: ServerAction<CampaignAction>,
    ws: String,
) -> impl IntoView {
    let status = summary.status.clone();
    view! {
        <div class="page-head">
            <div class="title-row">
                <h1 id="campaign-title">{summary.name.clone()}</h1>
                <CampaignStatus status=summary.status.clone()/>
                <span class="badge muted">{kind_label(&summary.kind)}</span>
                <span class="badge muted">{delivery_label(&summary.delivery)}</span>
            </div>
            <a href=format!("/w/{ws}/campaigns")>"All campaigns"</a>
        </div>
        <CampaignTabs ws=ws.clone() id=summary.id.clone() current="report"/>
        <div class="report-meta">
            <p class="hint">
                {summary.launched.clone().map(|at| format!("Launched {at}")).unwrap_or_else(|| "Not launched yet".into())}
                {summary.next_send.clone().map(|at| format!(" · next send {at}"))}
            </p>
            {summary.can_build.then(|| view! {
                <div class="header-actions">{action_forms(action, ws.clone(), summary.id.clone(), &status)}</div>
            })}
        </div>
    }
}

#[component]
pub fn CampaignReportPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let period = move || query.read().get("period").unwrap_or_else(|| "24h".into());
    let action = ServerAction::<CampaignAction>::new();
    let tick = RwSignal::new(0u32);
    let progress = Resource::new(
        move || (ws.get(), id(), tick.get(), action.version().get()),
        |(ws, id, ..)| get_campaign_progress(ws, id),
    );
    // The header (status, next send) is read again when sending starts or ends.
    let refresh = RwSignal::new(0u32);
    Effect::new(move |before: Option<Option<bool>>| {
        let busy = progress.get().and_then(|p| p.ok()).map(|p| p.busy);
        if let (Some(Some(was)), Some(is)) = (before, busy)
            && was != is
        {
            refresh.update(|r| *r += 1);
        }
        busy
    });
    let summary = Resource::new(
        move || (ws.get(), id(), action.version().get(), refresh.get()),
        |(ws, id, ..)| get_campaign_summary(ws, id),
    );
    let report = Resource::new(
        move || (ws.get(), id(), period(), tick.get()),
        |(ws, id, period, _)| get_campaign_report(ws, id, period),
    );
    // Poll every 2 s while sends are queued or retrying (or an occurrence is due); idle otherwise.
    Effect::new(move |_| {
        let poll = move || {
            let busy = match progress.try_get_untracked().flatten() {
                Some(Ok(p)) => p.busy,
                Some(Err(_)) => false,
                None => false,
            };
            if busy {
                tick.try_update(|t| *t += 1);
            }
        };
        if let Ok(handle) = set_interval_with_handle(poll, std::time::Duration::from_secs(2)) {
            on_cleanup(move || handle.clear());
        }
    });
    let ws_id = move || ws.get();
    view! {
        <Title text="Campaign report"/>
        <FormError message=last_error(action.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match summary.await {
                    Ok(summary) => view! { <ReportHead summary action ws=ws.get_untracked()/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match progress.await {
                    Ok(p) => view! { <ProgressBar progress=p/> }.into_any(),
                    Err(e) => view! { <p class="form-error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
        <Form method="GET" action=move || format!("/w/{}/campaigns/{}/report", ws_id(), id()) attr:class="filters card" attr:id="report-period">
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
                        <SeriesChart title=r.series_title.clone() bars=r.series.clone()/>
                        <VariantTable report=r/>
                    }.into_any(),
                    Err(e) => view! { <p class="form-error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
        <p class="hint">
            "Each send, with its request and every attempt, is in the "
            <a id="campaign-activity" href=move || format!("/w/{}/activity?source=campaign&source_id={}", ws.get(), id())>"Activity log"</a>
            "."
        </p>
    }
}
