//! The Activity log: recent sends with filters, each send's request and attempts, re-sends, and
//! paused hosts.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::{EmptyState, ErrorPanel, FormError, Loading, last_error};
use crate::pages::layout::use_ws;
use crate::pages::templates::RequestView;
use crate::webhooks::{AttemptRow, HourBar, Resend, get_activity, get_send_details};

/// Sends per hour over the last day, stacked by outcome (an SVG, so it reads without JavaScript).
#[component]
fn HourlyChart(hours: Vec<HourBar>) -> impl IntoView {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 140.0;
    const TOP: f64 = 10.0;
    let peak = hours
        .iter()
        .map(|h| h.delivered + h.failed + h.other)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = WIDTH / hours.len().max(1) as f64;
    let scale = (HEIGHT - TOP) / peak;
    let totals = (
        hours.iter().map(|h| h.delivered).sum::<i64>(),
        hours.iter().map(|h| h.failed).sum::<i64>(),
        hours.iter().map(|h| h.other).sum::<i64>(),
    );
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let x = i as f64 * slot + slot * 0.15;
            let w = slot * 0.7;
            let mut y = HEIGHT;
            let mut part = |count: i64, class: &'static str| {
                let height = count as f64 * scale;
                y -= height;
                view! { <rect x=x y=y width=w height=height class=class/> }
            };
            let delivered = part(h.delivered, "bar-ok");
            let failed = part(h.failed, "bar-bad");
            let other = part(h.other, "bar-other");
            let label = (i % 6 == 0)
                .then(|| view! { <text x=x y=HEIGHT + 14.0 class="axis">{h.label.clone()}</text> });
            let title = format!(
                "{}: {} delivered, {} failed, {} pending or aborted",
                h.label, h.delivered, h.failed, h.other
            );
            view! { <g><title>{title}</title>{delivered}{failed}{other}{label}</g> }
        })
        .collect_view();
    view! {
        <section class="card chart-card" id="activity-chart">
            <div class="chart-head">
                <h2>"Sends per hour (last 24 hours, UTC)"</h2>
                <p class="legend">
                    <span class="dot ok"></span>{totals.0} " delivered "
                    <span class="dot bad"></span>{totals.1} " failed "
                    <span class="dot other"></span>{totals.2} " pending or aborted"
                </p>
            </div>
            <svg viewBox=format!("0 0 {WIDTH} {}", HEIGHT + 18.0) class="chart" role="img"
                aria-label=format!("Sends per hour: {} delivered, {} failed, {} pending or aborted", totals.0, totals.1, totals.2)>
                <line x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT class="baseline"/>
                {bars}
            </svg>
        </section>
    }
}

/// A coloured status label.
#[component]
pub fn StatusBadge(status: String) -> impl IntoView {
    let class = match status.as_str() {
        "delivered" => "badge ok",
        "failed" => "badge bad",
        "aborted" => "badge muted",
        _ => "badge",
    };
    view! { <span class=class>{status}</span> }
}

/// One attempt: outcome, timing, and the response.
#[component]
pub fn AttemptView(attempt: AttemptRow) -> impl IntoView {
    let status = match (attempt.status_code, &attempt.error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(error)) => error.clone(),
        (None, None) => "no response".into(),
    };
    view! {
        <div class="attempt">
            <p class="attempt-head">
                <strong>"Attempt " {attempt.number}</strong> " · " {attempt.started} " · " {attempt.duration_ms} " ms · "
                <span class="attempt-status">{status}</span> " · " <StatusBadge status=attempt.outcome/>
            </p>
            {(!attempt.response_headers.is_empty()).then(|| view! {
                <details>
                    <summary>"Response headers"</summary>
                    <table class="table headers"><tbody>
                        {attempt.response_headers.into_iter().map(|(k, v)| view! { <tr><td><code>{k}</code></td><td><code>{v}</code></td></tr> }).collect_view()}
                    </tbody></table>
                </details>
            })}
            {(!attempt.response_body.is_empty()).then(|| view! { <pre class="body response-body">{attempt.response_body}</pre> })}
        </div>
    }
}

#[component]
pub fn ActivityPage() -> impl IntoView {
    let ws = use_ws();
    // `?source=campaign&source_id=…` (from a campaign's or Canvas's report) narrows to its sends.
    let query = use_query_map();
    let from_query = |key: &str| query.with_untracked(|q| q.get(key).unwrap_or_default());
    let status = RwSignal::new(String::new());
    let source = RwSignal::new(from_query("source"));
    let source_id = RwSignal::new(from_query("source_id"));
    let host = RwSignal::new(String::new());
    let hours = RwSignal::new("24".to_string());
    let refresh = RwSignal::new(0u32);
    let resend = ServerAction::<Resend>::new();
    let activity = Resource::new(
        move || {
            (
                ws.get(),
                status.get(),
                source.get(),
                source_id.get(),
                host.get(),
                hours.get(),
                refresh.get(),
                resend.version().get(),
            )
        },
        |(ws, status, source, source_id, host, hours, ..)| {
            get_activity(ws, status, source, source_id, host, hours)
        },
    );
    let select = |label: &'static str,
                  id: &'static str,
                  signal: RwSignal<String>,
                  options: &'static [(&'static str, &'static str)]| {
        view! {
            <label for=id>{label}</label>
            <select id=id on:change=move |ev| signal.set(event_target_value(&ev))>
                {options.iter().map(|(value, text)| view! { <option value=*value selected=move || signal.get() == *value>{*text}</option> }).collect_view()}
            </select>
        }
    };
    view! {
        <Title text="Activity"/>
        <div class="page-head">
            <h1>"Activity"</h1>
            <button type="button" on:click=move |_| refresh.update(|r| *r += 1)>"Refresh"</button>
        </div>
        <div class="filters card">
            {select("Status", "filter-status", status, &[("", "Any"), ("pending", "Pending"), ("delivered", "Delivered"), ("failed", "Failed"), ("aborted", "Aborted")])}
            {select("Source", "filter-source", source, &[("", "Any"), ("test", "Test sends"), ("api", "API"), ("campaign", "Campaigns"), ("canvas", "Canvases")])}
            {move || (!source_id.get().is_empty()).then(|| view! {
                <span class="chip" id="filter-source-id">
                    "Only one " {move || if source.get() == "canvas" { "Canvas" } else { "campaign" }}
                    <button type="button" class="link" on:click=move |_| source_id.set(String::new())>"show all"</button>
                </span>
            })}
            {select("Period", "filter-period", hours, &[("1", "Last hour"), ("24", "Last 24 hours"), ("168", "Last 7 days"), ("", "All time")])}
            <label for="filter-host">"Destination host"</label>
            <input id="filter-host" type="text" placeholder="api.example.com" on:change=move |ev| host.set(event_target_value(&ev))/>
        </div>
        <FormError message=last_error(resend.value())/>
        {move || resend.value().get().and_then(|r| r.ok()).map(|n| view! { <p class="callout success" role="status">{format!("{n} send(s) queued again.")}</p> })}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match activity.await {
                    Ok(data) => data,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let ws_id = ws.get_untracked();
                let ws_retry = ws_id.clone();
                view! {
                    <HourlyChart hours=data.hours.clone()/>
                    {(!data.paused_hosts.is_empty()).then(|| view! {
                        <section class="card notice-card" id="paused-hosts">
                            <h2>"Paused hosts"</h2>
                            <p class="hint">"These hosts failed too often; their sends wait until the pause ends."</p>
                            <ul>{data.paused_hosts.iter().map(|h| view! { <li><code>{h.host.clone()}</code> " until " {h.until.clone()} " (" {h.failures} " failures in a minute)"</li> }).collect_view()}</ul>
                        </section>
                    })}
                    {data.can_build.then(|| view! {
                        <ActionForm action=resend attr:class="row-form retry-all">
                            <input type="hidden" name="ws" value=ws_retry/>
                            <label for="retry-hours">"Retry all failed sends of the last"</label>
                            <select id="retry-hours" name="hours">
                                <option value="1">"hour"</option>
                                <option value="24" selected>"24 hours"</option>
                                <option value="168">"7 days"</option>
                            </select>
                            <button type="submit">"Retry failed"</button>
                        </ActionForm>
                    })}
                    {if data.sends.is_empty() {
                        view! {
                            <EmptyState title="No sends match">
                                <p>"Every webhook Herald sends appears here with each attempt. Send a test from a template to see one."</p>
                            </EmptyState>
                        }.into_any()
                    } else {
                        view! {
                            <table class="table card" id="sends-table">
                                <thead><tr><th>"Created"</th><th>"Source"</th><th>"Host"</th><th>"Status"</th><th>"Attempts"</th><th>"Last result"</th></tr></thead>
                                <tbody>
                                    {data.sends.into_iter().map(|s| view! {
                                        <tr>
                                            <td><a href=format!("/w/{ws_id}/activity/{}", s.id)>{s.created.clone()}</a></td>
                                            <td>{s.source.clone()}</td>
                                            <td><code>{s.host.clone().unwrap_or_default()}</code></td>
                                            <td><StatusBadge status=s.status.clone()/></td>
                                            <td>{s.attempts}</td>
                                            <td>{match (s.last_status, s.last_error.clone()) {
                                                (Some(code), _) => format!("HTTP {code}"),
                                                (None, Some(e)) => e,
                                                (None, None) => String::new(),
                                            }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }}
                }.into_any()
            })}
        </Transition>
    }
}

#[component]
pub fn SendPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let id = move || params.read().get("send").unwrap_or_default();
    let resend = ServerAction::<Resend>::new();
    let refresh = RwSignal::new(0u32);
    let details = Resource::new(
        move || (ws.get(), id(), resend.version().get(), refresh.get()),
        |(ws, id, ..)| get_send_details(ws, id),
    );
    view! {
        <Title text="Send"/>
        <div class="page-head">
            <h1>"Send"</h1>
            <A href=move || format!("/w/{}/activity", ws.get())>"All activity"</A>
        </div>
        <FormError message=last_error(resend.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let d = match details.await {
                    Ok(d) => d,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let (ws_id, send_id) = (ws.get_untracked(), d.send.id.clone());
                view! {
                    <section class="card">
                        <dl class="facts">
                            <dt>"Send id"</dt><dd><code>{d.send.id.clone()}</code> <span class="hint">"(the webhook-id header)"</span></dd>
                            <dt>"Status"</dt><dd id="send-status"><StatusBadge status=d.send.status.clone()/></dd>
                            <dt>"Source"</dt><dd>{d.send.source.clone()}</dd>
                            <dt>"Created"</dt><dd>{d.send.created.clone()}</dd>
                            <dt>"Attempts"</dt><dd>{d.send.attempts}</dd>
                            {d.next_attempt.clone().map(|at| view! { <dt>"Next attempt"</dt><dd>{at}</dd> })}
                            {d.send.last_error.clone().map(|e| view! { <dt>"Last error"</dt><dd>{e}</dd> })}
                        </dl>
                        <div class="actions-row">
                            <button type="button" on:click=move |_| refresh.update(|r| *r += 1)>"Refresh"</button>
                            {d.can_retry.then(|| view! {
                                <ActionForm action=resend attr:class="inline">
                                    <input type="hidden" name="ws" value=ws_id/>
                                    <input type="hidden" name="id" value=send_id/>
                                    <button type="submit" class="primary">"Send again"</button>
                                </ActionForm>
                            })}
                        </div>
                    </section>
                    <section class="card">
                        <h2>"Request"</h2>
                        {match d.request.clone() {
                            Some(request) => view! { <RequestView request/> }.into_any(),
                            None => view! { <p class="hint">"Rendered at the first attempt."</p> }.into_any(),
                        }}
                    </section>
                    <section class="card" id="attempts">
                        <h2>"Attempts"</h2>
                        {if d.attempts.is_empty() {
                            view! { <p class="hint">"No attempt yet."</p> }.into_any()
                        } else {
                            d.attempts.into_iter().map(|a| view! { <AttemptView attempt=a/> }).collect_view().into_any()
                        }}
                    </section>
                }.into_any()
            })}
        </Transition>
    }
}
