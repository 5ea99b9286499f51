//! The frame of every workspace page: header with the workspace switcher and account, the section
//! navigation, and the page itself.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::components::{Outlet, Redirect, A};
use leptos_router::hooks::{use_location, use_params_map};

use crate::api::{needs_sign_in, get_workspace_shell, SignOut, WorkspaceShell};
use crate::components::{role_label, ErrorPanel, Loading};

/// The current workspace id from the URL.
pub fn use_ws() -> Signal<String> {
    let params = use_params_map();
    Signal::derive(move || params.read().get("ws").unwrap_or_default())
}

#[component]
pub fn WorkspaceLayout() -> impl IntoView {
    let ws = use_ws();
    let shell = Resource::new(move || ws.get(), get_workspace_shell);
    let location = use_location();
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match shell.await {
                    Ok(shell) => view! { <Frame shell/> }.into_any(),
                    Err(e) if needs_sign_in(&e) => {
                        let next = location.pathname.get_untracked();
                        view! { <Redirect path=format!("/login?next={next}")/> }.into_any()
                    }
                    Err(e) => view! { <main class="centered"><ErrorPanel error=e/></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Frame(shell: WorkspaceShell) -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let current = shell.current.clone();
    let base = format!("/w/{}", current.id);
    let others: Vec<_> = shell.me.workspaces.iter().filter(|w| w.id != current.id).cloned().collect();
    let nav = [
        ("campaigns", "Campaigns"),
        ("canvases", "Canvases"),
        ("segments", "Segments"),
        ("users", "Users"),
        ("templates", "Templates"),
        ("activity", "Activity"),
        ("settings", "Settings"),
    ];
    view! {
        <div class="app">
            <header class="topbar">
                <a class="brand" href="/">"Herald"</a>
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
            </header>
            <div class="body">
                <nav class="sidenav" aria-label="Sections">
                    {nav
                        .into_iter()
                        .map(|(path, label)| view! { <A href=format!("{base}/{path}")>{label}</A> })
                        .collect_view()}
                </nav>
                <main class="content">
                    {current.archived.then(|| view! {
                        <p class="notice">"This workspace is archived: it is read-only and its API keys are refused. An admin can restore it in Settings."</p>
                    })}
                    <Outlet/>
                </main>
            </div>
        </div>
    }
}
