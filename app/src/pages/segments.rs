//! Segments: the list with live sizes, and the builder — nested AND/OR groups of attribute, event,
//! purchase, random-bucket and time-zone conditions, with a live estimated size while editing.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::components::{EmptyState, ErrorPanel, FormError, Loading, last_error};
use crate::pages::layout::use_ws;
use crate::segments::{
    ArchiveSegment, EstimateSegment, FilterDraft, SaveSegment, SegmentDetails, get_segment,
    list_segments,
};

#[component]
pub fn SegmentsPage() -> impl IntoView {
    let ws = use_ws();
    let archive = ServerAction::<ArchiveSegment>::new();
    let segments = Resource::new(
        move || (ws.get(), archive.version().get()),
        |(ws, _)| list_segments(ws),
    );
    view! {
        <Title text="Segments"/>
        <div class="page-head">
            <h1>"Segments"</h1>
            <a class="button primary" href=move || format!("/w/{}/segments/new", ws.get())>"New segment"</a>
        </div>
        <FormError message=last_error(archive.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match segments.await {
                    Ok(data) => data,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                if data.segments.is_empty() {
                    return view! {
                        <EmptyState title="No segments yet">
                            <p>"A segment is an audience defined by attributes, custom events and purchases; its size is counted live."</p>
                        </EmptyState>
                    }.into_any();
                }
                let ws_id = ws.get_untracked();
                view! {
                    <table class="table card" id="segments-table">
                        <thead><tr><th>"Name"</th><th>"Users"</th><th>"Updated"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                        <tbody>
                            {data.segments.into_iter().map(|s| {
                                let (ws_a, id_a) = (ws_id.clone(), s.id.clone());
                                view! {
                                    <tr class:revoked=s.archived>
                                        <td>
                                            <a href=format!("/w/{ws_id}/segments/{}", s.id)>{s.name.clone()}</a>
                                            {s.archived.then(|| view! { <span class="badge muted">"archived"</span> })}
                                            <div class="hint">{s.description.clone()}</div>
                                        </td>
                                        <td class="size">{s.size}</td>
                                        <td>{s.updated.clone()}</td>
                                        <td class="actions">
                                            {(data.can_build && !s.archived).then(|| view! {
                                                <ActionForm action=archive attr:class="inline">
                                                    <input type="hidden" name="ws" value=ws_a/>
                                                    <input type="hidden" name="id" value=id_a/>
                                                    <button type="submit" class="link">"Archive"</button>
                                                </ActionForm>
                                            })}
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

#[component]
pub fn SegmentEditorPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let details = Resource::new(move || (ws.get(), id()), |(ws, id)| get_segment(ws, id));
    view! {
        <Title text="Segment"/>
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

const COMPARISONS: [(&str, &str); 20] = [
    ("equals", "equals"),
    ("not_equal", "does not equal"),
    ("contains", "contains"),
    ("does_not_contain", "does not contain"),
    ("matches_regex", "matches regex"),
    ("does_not_match_regex", "does not match regex"),
    ("exists", "exists"),
    ("does_not_exist", "does not exist"),
    ("greater_than", "greater than"),
    ("less_than", "less than"),
    ("greater_than_or_equal_to", "at least"),
    ("less_than_or_equal_to", "at most"),
    ("is_true", "is true"),
    ("is_false", "is false"),
    ("includes_value", "includes value"),
    ("does_not_include_value", "does not include value"),
    ("after", "after (date)"),
    ("before", "before (date)"),
    ("more_than_x_days_ago", "more than N days ago"),
    ("less_than_x_days_ago", "less than N days ago"),
];

const COUNT_COMPARISONS: [(&str, &str); 3] = [
    ("at_least", "at least"),
    ("at_most", "at most"),
    ("exactly", "exactly"),
];

fn takes_no_value(comparison: &str) -> bool {
    matches!(
        comparison,
        "exists" | "does_not_exist" | "is_true" | "is_false"
    )
}

/// The typed value for a comparison: numbers where numbers are compared, text otherwise.
fn typed_value(comparison: &str, text: &str) -> serde_json::Value {
    let numeric = matches!(
        comparison,
        "greater_than"
            | "less_than"
            | "greater_than_or_equal_to"
            | "less_than_or_equal_to"
            | "more_than_x_days_ago"
            | "less_than_x_days_ago"
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

fn node_at<'a>(root: &'a mut FilterDraft, path: &[usize]) -> Option<&'a mut FilterDraft> {
    let mut node = root;
    for &index in path {
        node = match node {
            FilterDraft::And { filters } | FilterDraft::Or { filters } => filters.get_mut(index)?,
            _ => return None,
        };
    }
    Some(node)
}

fn edit(tree: RwSignal<FilterDraft>, path: &[usize], change: impl FnOnce(&mut FilterDraft)) {
    tree.update(|root| {
        if let Some(node) = node_at(root, path) {
            change(node);
        }
    });
}

fn remove(tree: RwSignal<FilterDraft>, path: &[usize]) {
    if let Some((last, parent)) = path.split_last() {
        edit(tree, parent, |node| {
            if let FilterDraft::And { filters } | FilterDraft::Or { filters } = node
                && *last < filters.len()
            {
                filters.remove(*last);
            }
        });
    }
}

fn opt_number(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

fn remove_button(tree: RwSignal<FilterDraft>, path: Vec<usize>, readonly: bool) -> impl IntoView {
    (!readonly).then(|| {
        view! { <button type="button" class="small" title="Remove" on:click=move |_| remove(tree, &path)>"✕"</button> }
    })
}

fn render_node(
    tree: RwSignal<FilterDraft>,
    node: FilterDraft,
    path: Vec<usize>,
    readonly: bool,
) -> AnyView {
    match node {
        FilterDraft::And { filters } | FilterDraft::Or { filters } => {
            let is_and = matches!(
                tree.with_untracked(|root| {
                    let mut root = root.clone();
                    node_at(&mut root, &path).cloned()
                }),
                Some(FilterDraft::And { .. })
            );
            let children = filters
                .into_iter()
                .enumerate()
                .map(|(i, child)| {
                    let mut child_path = path.clone();
                    child_path.push(i);
                    render_node(tree, child, child_path, readonly)
                })
                .collect_view();
            let (p1, p2) = (path.clone(), path.clone());
            let add = move |node: FilterDraft| {
                let path = p2.clone();
                move |_| {
                    let node = node.clone();
                    edit(tree, &path, move |group| {
                        if let FilterDraft::And { filters } | FilterDraft::Or { filters } = group {
                            filters.push(node);
                        }
                    })
                }
            };
            let attribute = FilterDraft::Attribute {
                name: "first_name".into(),
                custom: false,
                comparison: "equals".into(),
                value: serde_json::Value::String(String::new()),
            };
            let custom = FilterDraft::Attribute {
                name: String::new(),
                custom: true,
                comparison: "equals".into(),
                value: serde_json::Value::String(String::new()),
            };
            let event = FilterDraft::Event {
                name: String::new(),
                comparison: "at_least".into(),
                count: 1,
                days: Some(30),
            };
            let purchase = FilterDraft::Purchase {
                product_id: None,
                comparison: "at_least".into(),
                count: 1,
                days: None,
            };
            let bucket = FilterDraft::RandomBucket { min: 0, max: 4999 };
            let zone = FilterDraft::TimeZone { zones: Vec::new() };
            let group = FilterDraft::Or {
                filters: Vec::new(),
            };
            let nested = !path.is_empty();
            view! {
                <div class="seg-group" class:nested=nested>
                    <div class="seg-group-head">
                        <select aria-label="Group logic" disabled=readonly on:change=move |ev| {
                            let and = event_target_value(&ev) == "and";
                            edit(tree, &p1, |node| {
                                let filters = match node {
                                    FilterDraft::And { filters } | FilterDraft::Or { filters } => std::mem::take(filters),
                                    _ => return,
                                };
                                *node = if and { FilterDraft::And { filters } } else { FilterDraft::Or { filters } };
                            });
                        }>
                            <option value="and" selected=is_and>"Users matching ALL of"</option>
                            <option value="or" selected=!is_and>"Users matching ANY of"</option>
                        </select>
                        {nested.then(|| remove_button(tree, path.clone(), readonly))}
                    </div>
                    <div class="seg-children">{children}</div>
                    {(!readonly).then(|| view! {
                        <div class="seg-add">
                            <button type="button" class="small" on:click=add(attribute)>"+ Attribute"</button>
                            <button type="button" class="small" on:click=add(custom)>"+ Custom attribute"</button>
                            <button type="button" class="small" on:click=add(event)>"+ Custom event"</button>
                            <button type="button" class="small" on:click=add(purchase)>"+ Purchase"</button>
                            <button type="button" class="small" on:click=add(bucket)>"+ Random bucket"</button>
                            <button type="button" class="small" on:click=add(zone)>"+ Time zone"</button>
                            <button type="button" class="small" on:click=add(group)>"+ Group"</button>
                        </div>
                    })}
                </div>
            }
            .into_any()
        }
        FilterDraft::Attribute {
            name,
            custom,
            comparison,
            value,
        } => {
            let (pn, pc, pv) = (path.clone(), path.clone(), path.clone());
            let name_field = if custom {
                view! {
                    <input type="text" class="seg-name" aria-label="Custom attribute" placeholder="custom attribute (a.b for nested)"
                        value=name readonly=readonly on:change=move |ev| {
                            let typed = event_target_value(&ev);
                            edit(tree, &pn, |n| if let FilterDraft::Attribute { name, .. } = n { *name = typed.trim().to_string() });
                        }/>
                }
                .into_any()
            } else {
                view! {
                    <select aria-label="Attribute" disabled=readonly on:change=move |ev| {
                        let picked = event_target_value(&ev);
                        edit(tree, &pn, |n| if let FilterDraft::Attribute { name, .. } = n { *name = picked });
                    }>
                        {STANDARD_ATTRIBUTES.into_iter().map(|a| view! { <option value=a selected=a == name>{a}</option> }).collect_view()}
                    </select>
                }
                .into_any()
            };
            let needs_value = !takes_no_value(&comparison);
            let current = comparison.clone();
            view! {
                <div class="seg-condition">
                    <span class="seg-kind">{if custom { "Custom attribute" } else { "Attribute" }}</span>
                    {name_field}
                    <select aria-label="Comparison" disabled=readonly on:change=move |ev| {
                        let picked = event_target_value(&ev);
                        edit(tree, &pc, |n| if let FilterDraft::Attribute { comparison, value, .. } = n {
                            *value = typed_value(&picked, &value_text(value));
                            *comparison = picked;
                        });
                    }>
                        {COMPARISONS.into_iter().map(|(c, label)| view! { <option value=c selected=c == current>{label}</option> }).collect_view()}
                    </select>
                    {needs_value.then(|| view! {
                        <input type="text" aria-label="Value" value=value_text(&value) readonly=readonly on:change=move |ev| {
                            let typed = event_target_value(&ev);
                            edit(tree, &pv, |n| if let FilterDraft::Attribute { comparison, value, .. } = n {
                                *value = typed_value(comparison, &typed);
                            });
                        }/>
                    })}
                    {remove_button(tree, path, readonly)}
                </div>
            }
            .into_any()
        }
        FilterDraft::Event {
            name,
            comparison,
            count,
            days,
        } => count_condition(
            tree,
            path,
            readonly,
            "Performed event",
            Some(name),
            comparison,
            count,
            days,
            true,
        ),
        FilterDraft::Purchase {
            product_id,
            comparison,
            count,
            days,
        } => count_condition(
            tree,
            path,
            readonly,
            "Purchased",
            product_id,
            comparison,
            count,
            days,
            false,
        ),
        FilterDraft::RandomBucket { min, max } => {
            let (p1, p2) = (path.clone(), path.clone());
            view! {
                <div class="seg-condition">
                    <span class="seg-kind">"Random bucket"</span>
                    <input type="number" min="0" max="9999" aria-label="From bucket" value=min readonly=readonly on:change=move |ev| {
                        let typed = opt_number(&event_target_value(&ev)).unwrap_or(0);
                        edit(tree, &p1, |n| if let FilterDraft::RandomBucket { min, .. } = n { *min = typed });
                    }/>
                    <span>"to"</span>
                    <input type="number" min="0" max="9999" aria-label="To bucket" value=max readonly=readonly on:change=move |ev| {
                        let typed = opt_number(&event_target_value(&ev)).unwrap_or(9999);
                        edit(tree, &p2, |n| if let FilterDraft::RandomBucket { max, .. } = n { *max = typed });
                    }/>
                    <span class="hint">"of 0–9999 (stable per user)"</span>
                    {remove_button(tree, path, readonly)}
                </div>
            }
            .into_any()
        }
        FilterDraft::TimeZone { zones } => {
            let p1 = path.clone();
            view! {
                <div class="seg-condition">
                    <span class="seg-kind">"Time zone is one of"</span>
                    <input type="text" aria-label="Time zones" placeholder="Europe/Paris, America/New_York"
                        value=zones.join(", ") readonly=readonly on:change=move |ev| {
                            let typed: Vec<String> = event_target_value(&ev).split(',').map(|z| z.trim().to_string()).filter(|z| !z.is_empty()).collect();
                            edit(tree, &p1, |n| if let FilterDraft::TimeZone { zones } = n { *zones = typed });
                        }/>
                    {remove_button(tree, path, readonly)}
                </div>
            }
            .into_any()
        }
    }
}

/// Edits the comparison, count, days and name (event name or product id) of a count condition.
type CountChange<'a> = dyn Fn(&mut String, &mut u32, &mut Option<u32>, &mut Option<String>) + 'a;

#[allow(clippy::too_many_arguments)]
fn count_condition(
    tree: RwSignal<FilterDraft>,
    path: Vec<usize>,
    readonly: bool,
    label: &'static str,
    name: Option<String>,
    comparison: String,
    count: u32,
    days: Option<u32>,
    is_event: bool,
) -> AnyView {
    let (pn, pc, pk, pd) = (path.clone(), path.clone(), path.clone(), path.clone());
    let set = move |path: &[usize], change: &CountChange<'_>| {
        edit(tree, path, |n| match n {
            FilterDraft::Event {
                name,
                comparison,
                count,
                days,
            } => {
                let mut named = Some(name.clone());
                change(comparison, count, days, &mut named);
                *name = named.unwrap_or_default();
            }
            FilterDraft::Purchase {
                product_id,
                comparison,
                count,
                days,
            } => change(comparison, count, days, product_id),
            _ => {}
        });
    };
    let placeholder = if is_event {
        "event name"
    } else {
        "any product (or a product id)"
    };
    view! {
        <div class="seg-condition">
            <span class="seg-kind">{label}</span>
            <input type="text" aria-label=if is_event { "Event name" } else { "Product id" } placeholder=placeholder
                value=name.unwrap_or_default() readonly=readonly on:change=move |ev| {
                    let typed = event_target_value(&ev).trim().to_string();
                    set(&pn, &|_, _, _, name| *name = Some(typed.clone()).filter(|t| !t.is_empty()));
                }/>
            <select aria-label="How often" disabled=readonly on:change=move |ev| {
                let picked = event_target_value(&ev);
                set(&pc, &|comparison, _, _, _| *comparison = picked.clone());
            }>
                {COUNT_COMPARISONS.into_iter().map(|(c, l)| view! { <option value=c selected=c == comparison>{l}</option> }).collect_view()}
            </select>
            <input type="number" min="0" aria-label="Times" value=count readonly=readonly on:change=move |ev| {
                let typed = opt_number(&event_target_value(&ev)).unwrap_or(0);
                set(&pk, &|_, count, _, _| *count = typed);
            }/>
            <span>"time(s) in the last"</span>
            <input type="number" min="1" aria-label="Days" placeholder="ever" value=days.map(|d| d.to_string()).unwrap_or_default()
                readonly=readonly on:change=move |ev| {
                    let typed = opt_number(&event_target_value(&ev));
                    set(&pd, &|_, _, days, _| *days = typed);
                }/>
            <span>"days"</span>
            {remove_button(tree, path, readonly)}
        </div>
    }
    .into_any()
}

#[component]
fn Builder(details: SegmentDetails) -> impl IntoView {
    let ws = use_ws();
    let readonly = !details.can_build;
    let tree = RwSignal::new(details.filter.clone());
    let name = RwSignal::new(details.name.clone());
    let description = RwSignal::new(details.description.clone());
    let segment_id = StoredValue::new(details.id.clone());
    let save = ServerAction::<SaveSegment>::new();
    let estimate = ServerAction::<EstimateSegment>::new();
    // Live size: count again shortly after the last change to the conditions.
    let edits = StoredValue::new(0u64);
    Effect::new(move |_| {
        tree.track();
        let generation = edits.get_value() + 1;
        edits.set_value(generation);
        set_timeout(
            move || {
                if edits.try_get_value() == Some(generation) {
                    estimate.dispatch(EstimateSegment {
                        ws: ws.get_untracked(),
                        filter: tree.get_untracked(),
                    });
                }
            },
            std::time::Duration::from_millis(400),
        );
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get()
            && segment_id.get_value().is_none()
        {
            segment_id.set_value(Some(saved.clone()));
            navigate(
                &format!("/w/{}/segments/{saved}", ws.get_untracked()),
                Default::default(),
            );
        }
    });
    view! {
        <div class="page-head">
            <h1>{if details.id.is_some() { "Edit segment" } else { "New segment" }}</h1>
            <A href=move || format!("/w/{}/segments", ws.get())>"All segments"</A>
        </div>
        <div class="editor-grid">
            <section class="card">
                <label for="segment-name" class="field-label">"Name"</label>
                <input id="segment-name" type="text" maxlength="100" placeholder="Pro users who checked out this week"
                    prop:value=name readonly=readonly on:input=move |ev| name.set(event_target_value(&ev))/>
                <label for="segment-description" class="field-label">"Description"</label>
                <input id="segment-description" type="text" maxlength="500" prop:value=description readonly=readonly
                    on:input=move |ev| description.set(event_target_value(&ev))/>
                <h2 class="seg-title">"Conditions"</h2>
                <div id="segment-filter">{move || render_node(tree, tree.get(), Vec::new(), readonly)}</div>
                <FormError message=last_error(save.value())/>
                {(!readonly).then(|| view! {
                    <div class="actions-row">
                        <button type="button" class="primary" id="save-segment" disabled=move || save.pending().get() on:click=move |_| {
                            save.dispatch(SaveSegment {
                                ws: ws.get_untracked(),
                                id: segment_id.get_value(),
                                name: name.get_untracked(),
                                description: description.get_untracked(),
                                filter: tree.get_untracked(),
                            });
                        }>"Save segment"</button>
                        <Show when=move || matches!(save.value().get(), Some(Ok(_)))><span class="saved" role="status">"Saved"</span></Show>
                    </div>
                })}
            </section>
            <section class="card" id="segment-estimate">
                <h2>"Estimated size"</h2>
                <FormError message=last_error(estimate.value())/>
                {move || match estimate.value().get() {
                    Some(Ok(e)) => view! {
                        <p class="big-number" id="segment-size">{e.size}</p>
                        <p class="hint">"users match right now"</p>
                        {(!e.sample.is_empty()).then(|| view! {
                            <h3>"Some of them"</h3>
                            <ul class="sample">{e.sample.into_iter().map(|m| view! { <li><code>{m}</code></li> }).collect_view()}</ul>
                        })}
                    }.into_any(),
                    _ => view! { <p class="loading">"Counting…"</p> }.into_any(),
                }}
            </section>
        </div>
    }
}
