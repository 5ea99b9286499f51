//! The webhook template library and the template editor, with preview and test sends.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::api::error_text;
use crate::audience::UserTestData;
use crate::components::{EmptyState, ErrorPanel, FormError, Loading, last_error};
use crate::pages::activity::{AttemptView, StatusBadge};
use crate::pages::composer::{Composer, ComposerState};
use crate::pages::layout::use_ws;
use crate::webhooks::{
    DuplicateTemplate, PreviewResult, PreviewWebhook, SaveTemplate, SendTestWebhook,
    SetTemplateArchived, TemplateDetails, get_send_details, get_template, list_templates,
};

#[component]
pub fn TemplatesPage() -> impl IntoView {
    let ws = use_ws();
    let duplicate = ServerAction::<DuplicateTemplate>::new();
    let archive = ServerAction::<SetTemplateArchived>::new();
    let templates = Resource::new(
        move || (ws.get(), duplicate.version().get(), archive.version().get()),
        |(ws, ..)| list_templates(ws),
    );
    view! {
        <Title text="Templates"/>
        <div class="page-head">
            <h1>"Webhook templates"</h1>
            <a class="button primary" href=move || format!("/w/{}/templates/new", ws.get())>"New template"</a>
        </div>
        <FormError message=last_error(duplicate.value())/>
        <FormError message=last_error(archive.value())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let view = match templates.await {
                    Ok(view) => view,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                if view.templates.is_empty() {
                    return view! {
                        <EmptyState title="No templates yet">
                            <p>"A template is a reusable webhook: method, URL, headers and a body personalised with Liquid. Campaigns copy it, so later edits never change what they send."</p>
                        </EmptyState>
                    }.into_any();
                }
                let ws_id = ws.get_untracked();
                view! {
                    <table class="table card" id="templates-table">
                        <thead><tr><th>"Name"</th><th>"Request"</th><th>"Updated"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                        <tbody>
                            {view.templates.into_iter().map(|t| {
                                let (ws_a, ws_b) = (ws_id.clone(), ws_id.clone());
                                let (id_a, id_b) = (t.id.clone(), t.id.clone());
                                view! {
                                    <tr class:revoked=t.archived>
                                        <td>
                                            <a href=format!("/w/{ws_id}/templates/{}", t.id)>{t.name.clone()}</a>
                                            {t.archived.then(|| view! { <span class="badge muted">"archived"</span> })}
                                        </td>
                                        <td><code>{t.method.clone()} " " {t.url.clone()}</code></td>
                                        <td>{t.updated.clone()}</td>
                                        <td class="actions">
                                            {view.can_build.then(|| view! {
                                                <ActionForm action=duplicate attr:class="inline">
                                                    <input type="hidden" name="ws" value=ws_a/>
                                                    <input type="hidden" name="id" value=id_a/>
                                                    <button type="submit" class="link">"Duplicate"</button>
                                                </ActionForm>
                                                " · "
                                                <ActionForm action=archive attr:class="inline">
                                                    <input type="hidden" name="ws" value=ws_b/>
                                                    <input type="hidden" name="id" value=id_b/>
                                                    <input type="hidden" name="archived" value=(!t.archived).to_string()/>
                                                    <button type="submit" class="link">{if t.archived { "Restore" } else { "Archive" }}</button>
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

const SAMPLE_TEST_DATA: &str = r#"{
  "user": {"user_id": "user-123", "first_name": "Ada", "email_address": "ada@example.com"},
  "custom_attributes": {"plan": "pro"},
  "event_properties": {},
  "api_trigger_properties": {}
}"#;

#[component]
pub fn TemplateEditorPage() -> impl IntoView {
    let ws = use_ws();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let details = Resource::new(
        move || (ws.get(), id()),
        |(ws, id)| get_template(ws, Some(id)),
    );
    view! {
        <Title text="Template"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match details.await {
                    Ok(details) => view! { <Editor details/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Editor(details: TemplateDetails) -> impl IntoView {
    let ws = use_ws();
    let state = ComposerState::from_draft(&details.draft);
    let name = RwSignal::new(details.name.clone());
    let template_id = StoredValue::new(details.id.clone());
    let test_data = RwSignal::new(SAMPLE_TEST_DATA.to_string());
    let save = ServerAction::<SaveTemplate>::new();
    let preview = ServerAction::<PreviewWebhook>::new();
    let send_test = ServerAction::<SendTestWebhook>::new();
    let preview_user = RwSignal::new(String::new());
    let load_user = ServerAction::<UserTestData>::new();
    Effect::new(move |_| {
        if let Some(Ok(data)) = load_user.value().get() {
            test_data.set(data);
        }
    });
    // Live preview: re-render shortly after the last edit of the message or the test data.
    let edits = StoredValue::new(0u64);
    Effect::new(move |_| {
        state.track();
        test_data.track();
        let generation = edits.get_value() + 1;
        edits.set_value(generation);
        set_timeout(
            move || {
                // The page may be gone by now (everything it owned is then disposed).
                if edits.try_get_value() == Some(generation) {
                    preview.dispatch(PreviewWebhook {
                        ws: ws.get_untracked(),
                        draft: state.draft(),
                        test_data: test_data.get_untracked(),
                    });
                }
            },
            std::time::Duration::from_millis(400),
        );
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get()
            && template_id.get_value().is_none()
        {
            template_id.set_value(Some(saved.clone()));
            navigate(
                &format!("/w/{}/templates/{saved}", ws.get_untracked()),
                Default::default(),
            );
        }
    });
    let saved_note = move || matches!(save.value().get(), Some(Ok(_))) && !save.pending().get();
    let readonly = !details.can_build;
    view! {
        <div class="page-head">
            <h1>{if details.id.is_some() { "Edit template" } else { "New template" }}</h1>
            <A href=move || format!("/w/{}/templates", ws.get())>"All templates"</A>
        </div>
        <div class="editor-grid">
            <section class="card">
                <label for="template-name" class="field-label">"Template name"</label>
                <input id="template-name" type="text" maxlength="100" placeholder="Order shipped → CRM"
                    prop:value=name readonly=readonly on:input=move |ev| name.set(event_target_value(&ev))/>
                <Composer state readonly/>
                <FormError message=last_error(save.value())/>
                {(!readonly).then(|| view! {
                    <div class="actions-row">
                        <button type="button" class="primary" id="save-template" disabled=move || save.pending().get()
                            on:click=move |_| {
                                save.dispatch(SaveTemplate {
                                    ws: ws.get_untracked(),
                                    id: template_id.get_value(),
                                    name: name.get_untracked(),
                                    draft: state.draft(),
                                });
                            }>
                            {move || if save.pending().get() { "Saving…" } else { "Save template" }}
                        </button>
                        <Show when=saved_note><span class="saved" role="status">"Saved"</span></Show>
                    </div>
                })}
            </section>
            <section class="card">
                <h2>"Preview and test"</h2>
                <form class="row-form" id="preview-as-user" on:submit=move |ev| {
                    ev.prevent_default();
                    load_user.dispatch(UserTestData { ws: ws.get_untracked(), external_id: preview_user.get_untracked() });
                }>
                    <label for="preview-user" class="sr-only">"Preview as user"</label>
                    <input id="preview-user" type="text" placeholder="Preview as user: external_id"
                        prop:value=preview_user on:input=move |ev| preview_user.set(event_target_value(&ev))/>
                    <button type="submit">"Use their data"</button>
                </form>
                <FormError message=last_error(load_user.value())/>
                <label for="test-data" class="field-label">"Test data"</label>
                <textarea id="test-data" rows="7" class="code" prop:value=test_data
                    on:input=move |ev| test_data.set(event_target_value(&ev))></textarea>
                <p class="hint">"Attributes and properties for one imaginary recipient: user, custom_attributes, event_properties, api_trigger_properties, canvas_entry_properties, campaign, canvas. The preview follows your edits."</p>
                <div class="actions-row">
                    <button type="button" id="preview-button" on:click=move |_| {
                        preview.dispatch(PreviewWebhook { ws: ws.get_untracked(), draft: state.draft(), test_data: test_data.get_untracked() });
                    }>"Preview"</button>
                    {(!readonly).then(|| view! {
                        <button type="button" id="send-test-button" disabled=move || send_test.pending().get() on:click=move |_| {
                            send_test.dispatch(SendTestWebhook { ws: ws.get_untracked(), draft: state.draft(), test_data: test_data.get_untracked() });
                        }>"Send test"</button>
                    })}
                </div>
                <FormError message=last_error(preview.value())/>
                {move || preview.value().get().and_then(|r| r.ok()).map(|p| view! { <RequestView request=p/> })}
                <FormError message=last_error(send_test.value())/>
                {move || send_test.value().get().and_then(|r| r.ok()).map(|id| view! { <TestSendResult send_id=id/> })}
            </section>
        </div>
    }
}

/// A rendered request: method, URL, headers and body.
#[component]
pub fn RequestView(request: PreviewResult) -> impl IntoView {
    if let Some(reason) = request.aborted {
        let reason = if reason.is_empty() {
            "no reason given".to_string()
        } else {
            reason
        };
        return view! { <p class="notice" id="preview-result">"This recipient would be skipped: abort_message (" {reason} ")."</p> }.into_any();
    }
    view! {
        <div class="request-view" id="preview-result">
            <p><code class="method">{request.method}</code> " " <code class="url">{request.url}</code></p>
            <table class="table headers">
                <tbody>
                    {request.headers.into_iter().map(|(k, v)| view! { <tr><td><code>{k}</code></td><td><code>{v}</code></td></tr> }).collect_view()}
                </tbody>
            </table>
            {request.body.map(|body| view! { <pre class="body">{body}</pre> })}
        </div>
    }
    .into_any()
}

/// Follows a test send until its first attempt is recorded, then shows the response.
#[component]
fn TestSendResult(send_id: String) -> impl IntoView {
    let ws = use_ws();
    let tick = RwSignal::new(0u32);
    let id = send_id.clone();
    let details = Resource::new(
        move || tick.get(),
        move |_| get_send_details(ws.get_untracked(), id.clone()),
    );
    Effect::new(move |_| {
        let waiting = match details.get() {
            Some(Ok(d)) => d.attempts.is_empty() && d.send.status == "pending",
            Some(Err(_)) => false,
            None => false,
        };
        if waiting && tick.get_untracked() < 60 {
            set_timeout(
                move || {
                    tick.try_update(|t| *t += 1);
                },
                std::time::Duration::from_millis(500),
            );
        }
    });
    view! {
        <div class="test-result" id="test-result">
            <Transition fallback=|| view! { <p class="loading">"Sending…"</p> }>
                {move || details.get().map(|result| match result {
                    Err(e) => view! { <p class="form-error">{error_text(&e)}</p> }.into_any(),
                    Ok(d) if d.attempts.is_empty() && d.send.status == "pending" => {
                        view! { <p class="loading" aria-busy="true">"Waiting for the first attempt…"</p> }.into_any()
                    }
                    Ok(d) => {
                        let link = format!("/w/{}/activity/{}", ws.get_untracked(), d.send.id);
                        view! {
                            <p>"Test send " <StatusBadge status=d.send.status.clone()/> " · " <a href=link>"open in Activity"</a></p>
                            {d.attempts.last().cloned().map(|a| view! { <AttemptView attempt=a/> })}
                            {(d.send.status == "aborted").then(|| view! { <p class="notice">{d.send.last_error.clone()}</p> })}
                        }.into_any()
                    }
                })}
            </Transition>
        </div>
    }
}
