//! The webhook composer: method, URL, headers, body as key/value pairs or raw text, with a Liquid
//! cheat-sheet. Used by the template editor (and later by campaign and Canvas message steps).

use leptos::prelude::*;

use crate::webhooks::MessageDraft;

/// One editable key/value row; its signals keep focus while typing in a list that changes.
#[derive(Clone, Copy)]
pub struct Row {
    id: usize,
    key: RwSignal<String>,
    value: RwSignal<String>,
}

/// Everything the composer edits.
#[derive(Clone, Copy)]
pub struct ComposerState {
    pub method: RwSignal<String>,
    pub url: RwSignal<String>,
    headers: RwSignal<Vec<Row>>,
    pub body_mode: RwSignal<String>,
    pairs: RwSignal<Vec<Row>>,
    pub raw: RwSignal<String>,
    next_id: StoredValue<usize>,
    /// The owner the state was made under: rows added later are created under it too, so they
    /// outlive the (possibly re-rendered or hidden) view whose button added them.
    owner: StoredValue<Option<Owner>>,
}

impl ComposerState {
    pub fn from_draft(draft: &MessageDraft) -> Self {
        let next_id = StoredValue::new(0usize);
        let rows = |list: &[(String, String)]| -> Vec<Row> {
            list.iter()
                .map(|(k, v)| {
                    let id = next_id.get_value();
                    next_id.set_value(id + 1);
                    Row {
                        id,
                        key: RwSignal::new(k.clone()),
                        value: RwSignal::new(v.clone()),
                    }
                })
                .collect()
        };
        Self {
            method: RwSignal::new(draft.method.clone()),
            url: RwSignal::new(draft.url.clone()),
            headers: RwSignal::new(rows(&draft.headers)),
            body_mode: RwSignal::new(draft.body_mode.clone()),
            pairs: RwSignal::new(rows(&draft.pairs)),
            raw: RwSignal::new(draft.raw.clone()),
            next_id,
            owner: StoredValue::new(Owner::current()),
        }
    }

    /// Subscribes the running effect to every field, so it re-runs on any edit.
    pub fn track(&self) {
        self.method.track();
        self.url.track();
        self.body_mode.track();
        self.raw.track();
        for rows in [self.headers, self.pairs] {
            for row in rows.get() {
                row.key.track();
                row.value.track();
            }
        }
    }

    /// The draft as typed so far.
    pub fn draft(&self) -> MessageDraft {
        let read = |rows: RwSignal<Vec<Row>>| -> Vec<(String, String)> {
            rows.get_untracked()
                .iter()
                .map(|r| (r.key.get_untracked(), r.value.get_untracked()))
                .collect()
        };
        MessageDraft {
            method: self.method.get_untracked(),
            url: self.url.get_untracked(),
            headers: read(self.headers),
            body_mode: self.body_mode.get_untracked(),
            pairs: read(self.pairs),
            raw: self.raw.get_untracked(),
        }
    }

    fn add_row(&self, rows: RwSignal<Vec<Row>>) {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        let make = || Row {
            id,
            key: RwSignal::new(String::new()),
            value: RwSignal::new(String::new()),
        };
        let row = match self.owner.get_value() {
            Some(owner) => owner.with(make),
            None => make(),
        };
        rows.update(|list| list.push(row));
    }
}

#[component]
fn RowsEditor(
    state: ComposerState,
    rows: RwSignal<Vec<Row>>,
    key_label: &'static str,
    value_label: &'static str,
    add_label: &'static str,
    id: &'static str,
    #[prop(optional)] readonly: bool,
) -> impl IntoView {
    view! {
        <div class="rows-editor" id=id>
            <For each=move || rows.get() key=|row| row.id let:row>
                <div class="kv-row">
                    <input type="text" aria-label=key_label placeholder=key_label prop:value=row.key readonly=readonly
                        on:input=move |ev| row.key.set(event_target_value(&ev))/>
                    <input type="text" aria-label=value_label placeholder=value_label prop:value=row.value readonly=readonly
                        on:input=move |ev| row.value.set(event_target_value(&ev))/>
                    {(!readonly).then(|| view! {
                        <button type="button" class="small" title="Remove"
                            on:click=move |_| rows.update(|list| list.retain(|r| r.id != row.id))>"✕"</button>
                    })}
                </div>
            </For>
            {(!readonly).then(|| view! {
                <button type="button" class="small" on:click=move |_| state.add_row(rows)>{add_label}</button>
            })}
        </div>
    }
}

#[component]
pub fn Composer(state: ComposerState, #[prop(optional)] readonly: bool) -> impl IntoView {
    view! {
        <div class="composer">
            <div class="request-line">
                <label for="composer-method" class="sr-only">"Method"</label>
                <select id="composer-method" disabled=readonly
                    on:change=move |ev| state.method.set(event_target_value(&ev))>
                    {["GET", "POST", "PUT", "PATCH", "DELETE"].into_iter().map(|m| view! {
                        <option value=m selected=move || state.method.get() == m>{m}</option>
                    }).collect_view()}
                </select>
                <label for="composer-url" class="sr-only">"Webhook URL"</label>
                <input id="composer-url" type="text" placeholder="https://example.com/hooks/{{${user_id}}}"
                    prop:value=state.url readonly=readonly on:input=move |ev| state.url.set(event_target_value(&ev))/>
            </div>
            <h3>"Request headers"</h3>
            <RowsEditor state rows=state.headers key_label="Header name" value_label="Header value"
                add_label="+ Add header" id="composer-headers" readonly/>
            <h3>"Request body"</h3>
            <div class="segmented" role="radiogroup" aria-label="Body">
                {[("pairs", "JSON key/value pairs"), ("raw", "Raw text"), ("none", "No body")].into_iter().map(|(mode, label)| view! {
                    <label class="check">
                        <input type="radio" name="body_mode" value=mode disabled=readonly
                            prop:checked=move || state.body_mode.get() == mode
                            on:change=move |_| state.body_mode.set(mode.to_string())/>
                        {label}
                    </label>
                }).collect_view()}
            </div>
            <Show when=move || state.body_mode.get() == "pairs">
                <RowsEditor state rows=state.pairs key_label="Key" value_label="Value (Liquid allowed)"
                    add_label="+ Add pair" id="composer-pairs" readonly/>
            </Show>
            <Show when=move || state.body_mode.get() == "raw">
                <label for="composer-raw" class="sr-only">"Raw body"</label>
                <textarea id="composer-raw" rows="8" class="code" readonly=readonly prop:value=state.raw
                    placeholder="{\"email\": \"{{${email_address} | json_escape}}\"}"
                    on:input=move |ev| state.raw.set(event_target_value(&ev))></textarea>
                <p class="hint">"Without a Content-Type header, it is inferred from the body (JSON, XML, form or plain text)."</p>
            </Show>
            <LiquidCheatSheet/>
        </div>
    }
}

#[component]
fn LiquidCheatSheet() -> impl IntoView {
    let rows: [(&str, &str); 12] = [
        (
            "{{${first_name}}}",
            "a standard attribute (also ${last_name}, ${email_address}, ${user_id}, ${country}, …)",
        ),
        (
            "{{custom_attribute.${plan}}}",
            "a custom attribute; nested: {{custom_attribute.${address}.city}}",
        ),
        (
            "{{event_properties.${amount}}}",
            "a property of the custom event that triggered the send",
        ),
        (
            "{{api_trigger_properties.${code}}}",
            "a trigger property of an API-triggered send",
        ),
        (
            "{{canvas_entry_properties.${x}}}",
            "a Canvas entry property (also {{context.${x}}})",
        ),
        (
            "{{campaign.${name}}}",
            "campaign name, api_id, dispatch_id; likewise canvas.${…}",
        ),
        (
            "{{${first_name} | default: 'there'}}",
            "a fallback for missing, empty or false values",
        ),
        (
            "{{${email_address} | json_escape}}",
            "safe inside a JSON string",
        ),
        (
            "{{${email_address} | url_param_escape}}",
            "safe inside a URL query",
        ),
        (
            "{{ 'body' | hmac_sha256_hex: 'key' }}",
            "also md5, sha1, sha2, base64_encode, hmac_sha256_base64",
        ),
        (
            "{% if ${country} == 'FR' %}…{% endif %}",
            "conditions, loops and assignments as in Shopify Liquid",
        ),
        (
            "{% abort_message('no email') %}",
            "skip this recipient; the reason is logged",
        ),
    ];
    view! {
        <details class="cheatsheet">
            <summary>"Liquid cheat-sheet"</summary>
            <table class="table">
                <tbody>
                    {rows.into_iter().map(|(code, what)| view! {
                        <tr><td><code>{code}</code></td><td>{what}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </details>
    }
}
