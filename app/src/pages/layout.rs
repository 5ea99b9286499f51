//! The frame of every workspace page: header with the workspace switcher and account, the section
//! navigation, and the page itself.
//!
//! The routed page (`<Outlet/>`) sits outside any `<Suspense>` on purpose: a page created inside a
//! suspended closure is rendered twice on the server, so its resources would not line up with the
//! browser's during hydration.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::components::{A, Outlet, Redirect};
use leptos_router::hooks::{use_location, use_params_map};

use crate::api::{SignOut, WorkspaceShell, error_text, get_workspace_shell, needs_sign_in};
use crate::components::role_label;

/// The current workspace id from the URL.
pub fn use_ws() -> Signal<String> {
    let params = use_params_map();
    Signal::derive(move || params.read().get("ws").unwrap_or_default())
}

const SECTIONS: [(&str, &str); 7] = [
    ("campaigns", "Campaigns"),
    ("canvases", "Canvases"),
    ("segments", "Segments"),
    ("users", "Users"),
    ("templates", "Templates"),
    ("activity", "Activity"),
    ("settings", "Settings"),
];

#[component]
pub fn WorkspaceLayout() -> impl IntoView {
    let ws = use_ws();
    let shell = Resource::new(move || ws.get(), get_workspace_shell);
    let location = use_location();
    view! {
        <div class="app">
            <header class="topbar">
                <a class="brand" href="/">"Herald"</a>
                <Suspense fallback=|| view! { <span class="loading">"…"</span> }>
                    {move || Suspend::new(async move {
                        match shell.await {
                            Ok(shell) => view! { <HeaderParts shell/> }.into_any(),
                            Err(e) if needs_sign_in(&e) => {
                                let next = location.pathname.get_untracked();
                                view! { <Redirect path=format!("/login?next={next}")/> }.into_any()
                            }
                            Err(e) => view! { <span class="form-error">{error_text(&e)}</span> }.into_any(),
                        }
                    })}
                </Suspense>
            </header>
            <div class="body">
                <nav class="sidenav" aria-label="Sections">
                    {SECTIONS
                        .into_iter()
                        .map(|(path, label)| view! { <A href=move || format!("/w/{}/{path}", ws.get())>{label}</A> })
                        .collect_view()}
                </nav>
                <main class="content">
                    <Suspense>
                        {move || Suspend::new(async move {
                            shell.await.ok().filter(|s| s.current.archived).map(|_| view! {
                                <p class="notice">"This workspace is archived: it is read-only and its API keys are refused. An admin can restore it in Settings."</p>
                            })
                        })}
                    </Suspense>
                    <Outlet/>
                </main>
            </div>
        </div>
    }
}

#[component]
fn HeaderParts(shell: WorkspaceShell) -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let current = shell.current.clone();
    let others: Vec<_> = shell
        .me
        .workspaces
        .iter()
        .filter(|w| w.id != current.id)
        .cloned()
        .collect();
    view! {
        <details class="switcher" id="workspace-switcher">
            <summary>
                <span class="switcher-label">"Workspace"</span>
                <span class="switcher-current">{current.name.clone()}</span>
                {current.archived.then(|| view! { <span class="badge muted">"archived"</span> })}
            </summary>
            <ul class="switcher-menu">
                {others
                    .into_iter()
                    .map(|w| view! {
                        <li>
                            <a href=format!("/w/{}", w.id) rel="external">
                                {w.name.clone()}
                                {w.archived.then(|| view! { <span class="badge muted">"archived"</span> })}
                            </a>
                        </li>
                    })
                    .collect_view()}
                <li class="switcher-new"><a href="/workspaces/new">"+ New workspace"</a></li>
            </ul>
        </details>
        <div class="spacer"></div>
        <span class="whoami" title="Your role in this workspace">
            {shell.me.email.clone()} " · " {role_label(&current.role)}
        </span>
        <ActionForm action=sign_out attr:class="inline">
            <button type="submit" class="link">"Sign out"</button>
        </ActionForm>
    }
}
