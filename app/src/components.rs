//! Small building blocks shared by pages.

use leptos::prelude::*;

use crate::api::error_text;

/// A form's error message, announced to screen readers.
#[component]
pub fn FormError(#[prop(into)] message: Signal<Option<String>>) -> impl IntoView {
    move || {
        message
            .get()
            .map(|m| view! { <p class="form-error" role="alert">{m}</p> })
    }
}

/// The error of an action's last run, if it failed.
pub fn last_error<T, V>(value: V) -> Signal<Option<String>>
where
    T: 'static,
    V: Get<Value = Option<Result<T, ServerFnError>>> + Send + Sync + 'static,
{
    Signal::derive(move || value.get().and_then(|r| r.err()).map(|e| error_text(&e)))
}

/// A page-level error panel.
#[component]
pub fn ErrorPanel(error: ServerFnError) -> impl IntoView {
    view! {
        <div class="panel error-panel" role="alert">
            <h2>"Something is not right"</h2>
            <p>{error_text(&error)}</p>
            <p><a href="/">"Back to the start"</a></p>
        </div>
    }
}

/// What a list shows when it has nothing yet.
#[component]
pub fn EmptyState(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="empty-state">
            <h3>{title}</h3>
            <div class="empty-body">{children()}</div>
        </div>
    }
}

/// A "Loading…" line for Suspense fallbacks.
#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" aria-busy="true">"Loading…"</p> }
}

/// A human label for a role name.
pub fn role_label(role: &str) -> &'static str {
    match role {
        "admin" => "Admin",
        "marketer" => "Marketer",
        _ => "Viewer",
    }
}

/// The role picker used by member and invite forms.
#[component]
pub fn RoleSelect(
    name: &'static str,
    #[prop(optional)] selected: Option<String>,
    #[prop(optional)] id: Option<&'static str>,
) -> impl IntoView {
    let selected = selected.unwrap_or_else(|| "marketer".into());
    view! {
        <select name=name id=id>
            {["admin", "marketer", "viewer"]
                .into_iter()
                .map(|r| view! { <option value=r selected=selected == r>{role_label(r)}</option> })
                .collect_view()}
        </select>
    }
}
