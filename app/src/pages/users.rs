//! Users: search by external id or email, each profile with its attributes, event and purchase
//! timeline, the messages it received and its Canvas journeys; and the catalogue of tracked events.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::audience::{get_user, search_users};
use crate::canvases::get_user_journeys;
use crate::components::{EmptyState, ErrorPanel, Loading};
use crate::pages::activity::StatusBadge;
use crate::pages::canvases::UserJourneys;
use crate::pages::layout::use_ws;

#[component]
pub fn UsersPage() -> impl IntoView {
    let ws = use_ws();
    let query = RwSignal::new(String::new());
    let typed = RwSignal::new(String::new());
    let users = Resource::new(
        move || (ws.get(), query.get()),
        |(ws, query)| search_users(ws, query),
    );
    view! {
        <Title text="Users"/>
        <div class="page-head"><h1>"Users"</h1></div>
        <form class="row-form card search-form" on:submit=move |ev| {
            ev.prevent_default();
            query.set(typed.get_untracked());
        }>
            <label for="user-search" class="sr-only">"Search users"</label>
            <input id="user-search" type="search" placeholder="external_id or email"
                prop:value=typed on:input=move |ev| typed.set(event_target_value(&ev))/>
            <button type="submit">"Search"</button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let data = match users.await {
                    Ok(data) => data,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let ws_id = ws.get_untracked();
                let list = if data.users.is_empty() {
                    view! {
                        <EmptyState title="No users found">
                            <p>"Profiles are created and updated through the Braze-compatible " <code>"POST /api/users/track"</code> " with a key holding " <code>"users.track"</code> ":"</p>
                            <pre class="body">{r#"curl -X POST http://127.0.0.1:3000/api/users/track \
    -H "Authorization: Bearer $HERALD_KEY" -H "Content-Type: application/json" \
  -d '{"attributes":[{"external_id":"user-1","first_name":"Ada","plan":"pro"}],
       "events":[{"external_id":"user-1","name":"checkout","time":"2026-11-28T10:00:00Z"}]}'"#}</pre>
                        </EmptyState>
                    }.into_any()
                } else {
                    view! {
                        <table class="table card" id="users-table">
                            <thead><tr><th>"External id"</th><th>"Email"</th><th>"Name"</th><th>"Updated"</th></tr></thead>
                            <tbody>
                                {data.users.into_iter().map(|u| view! {
                                    <tr>
                                        <td><a href=format!("/w/{ws_id}/users/{}", u.id)>{u.external_id.clone().unwrap_or_else(|| "(no external id)".into())}</a></td>
                                        <td>{u.email.clone().unwrap_or_default()}</td>
                                        <td>{u.name.clone()}</td>
                                        <td>{u.updated.clone()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                };
                view! {
                    {list}
                    <section class="card" id="event-catalog">
                        <h2>"Tracked events and products"</h2>
                        {if data.catalog.is_empty() {
                            view! { <p class="hint">"No custom event or purchase has been tracked yet."</p> }.into_any()
                        } else {
                            view! {
                                <table class="table">
                                    <thead><tr><th>"Kind"</th><th>"Name"</th><th>"Property keys"</th><th>"Last seen"</th></tr></thead>
                                    <tbody>
                                        {data.catalog.into_iter().map(|c| view! {
                                            <tr>
                                                <td>{c.kind}</td>
                                                <td><code>{c.name}</code></td>
                                                <td class="chips">{c.property_keys.into_iter().map(|k| view! { <code class="chip">{k}</code> }).collect_view()}</td>
                                                <td>{c.last_seen}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    </section>
                }.into_any()
            })}
        </Transition>
    }
}

#[component]
pub fn UserPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let user = Resource::new(move || (ws.get(), id()), |(ws, id)| get_user(ws, id));
    let journeys = Resource::new(
        move || (ws.get(), id()),
        |(ws, id)| get_user_journeys(ws, id),
    );
    view! {
        <Title text="User"/>
        <div class="page-head">
            <h1>"User"</h1>
            <A href=move || format!("/w/{}/users", ws.get())>"All users"</A>
        </div>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let u = match user.await {
                    Ok(u) => u,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let ws_id = ws.get_untracked();
                view! {
                    <div class="grid-2">
                        <section class="card" id="user-attributes">
                            <h2>{u.external_id.clone().unwrap_or_else(|| "Anonymous profile".into())}</h2>
                            <dl class="facts">
                                <dt>"Herald id"</dt><dd><code>{u.id.clone()}</code></dd>
                                {u.attributes.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
                                {(!u.aliases.is_empty()).then(|| view! { <dt>"Aliases"</dt><dd>{u.aliases.join(", ")}</dd> })}
                            </dl>
                        </section>
                        <section class="card">
                            <h2>"Custom attributes"</h2>
                            <pre class="body" id="custom-attributes">{u.custom_attributes.clone()}</pre>
                        </section>
                    </div>
                    <section class="card" id="user-timeline">
                        <h2>"Events and purchases"</h2>
                        {if u.timeline.is_empty() {
                            view! { <p class="hint">"Nothing tracked for this user yet."</p> }.into_any()
                        } else {
                            view! {
                                <table class="table">
                                    <thead><tr><th>"Time"</th><th>"Kind"</th><th>"Name"</th><th>"Details"</th></tr></thead>
                                    <tbody>
                                        {u.timeline.into_iter().map(|t| view! {
                                            <tr><td>{t.time}</td><td>{t.kind}</td><td><code>{t.name}</code></td><td><code>{t.details}</code></td></tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    </section>
                    <section class="card" id="user-messages">
                        <h2>"Messages received"</h2>
                        {if u.messages.is_empty() {
                            view! { <p class="hint">"No webhook has been sent for this user yet."</p> }.into_any()
                        } else {
                            view! {
                                <table class="table">
                                    <thead><tr><th>"Created"</th><th>"Source"</th><th>"Status"</th><th>"Last result"</th></tr></thead>
                                    <tbody>
                                        {u.messages.into_iter().map(|s| view! {
                                            <tr>
                                                <td><a href=format!("/w/{ws_id}/activity/{}", s.id)>{s.created.clone()}</a></td>
                                                <td>{s.source.clone()}</td>
                                                <td><StatusBadge status=s.status.clone()/></td>
                                                <td>{s.last_status.map(|c| format!("HTTP {c}")).or(s.last_error.clone()).unwrap_or_default()}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    </section>
                }.into_any()
            })}
        </Transition>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match journeys.await {
                    Ok(rows) => view! { <UserJourneys rows ws=ws.get_untracked()/> }.into_any(),
                    Err(e) => view! {
                        <section class="card" id="user-journeys">
                            <h2>"Canvas journeys"</h2>
                            <p class="form-error">{crate::api::error_text(&e)}</p>
                        </section>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
