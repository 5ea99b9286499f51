//! First-run set-up and sign-in.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;

use crate::api::{CreateOwner, Landing, SignIn, get_landing};
use crate::components::{ErrorPanel, FormError, Loading, last_error};

/// Shown while no account exists: creates the owner and the first workspace.
#[component]
pub fn SetupPage() -> impl IntoView {
    let state = Resource::new(|| (), |_| get_landing());
    let create = ServerAction::<CreateOwner>::new();
    view! {
        <Title text="Set up Herald"/>
        <main class="centered">
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match state.await {
                        Ok(Landing::FirstRun) => view! {
                            <div class="panel auth-panel">
                                <h1 class="brand-title">"Welcome to Herald"</h1>
                                <p class="lead">"Create the owner account and your first workspace."</p>
                                <ActionForm action=create attr:class="stack" attr:id="setup-form">
                                    <FormError message=last_error(create.value())/>
                                    <label for="setup-email">"Email"</label>
                                    <input id="setup-email" type="email" name="email" required autocomplete="username"/>
                                    <label for="setup-password">"Password"</label>
                                    <input id="setup-password" type="password" name="password" required minlength="8" autocomplete="new-password"/>
                                    <p class="hint">"At least 8 characters."</p>
                                    <label for="setup-workspace">"Workspace name"</label>
                                    <input id="setup-workspace" type="text" name="workspace_name" required maxlength="100" placeholder="Production"/>
                                    <button type="submit" class="primary" disabled=move || create.pending().get()>
                                        {move || if create.pending().get() { "Creating…" } else { "Create owner account" }}
                                    </button>
                                </ActionForm>
                            </div>
                        }.into_any(),
                        Ok(_) => view! { <Redirect path="/login"/> }.into_any(),
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let state = Resource::new(|| (), |_| get_landing());
    let sign_in = ServerAction::<SignIn>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <Title text="Sign in"/>
        <main class="centered">
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match state.await {
                        Ok(Landing::FirstRun) => view! { <Redirect path="/setup"/> }.into_any(),
                        Ok(_) => view! {
                            <div class="panel auth-panel">
                                <h1 class="brand-title">"Sign in to Herald"</h1>
                                <ActionForm action=sign_in attr:class="stack" attr:id="sign-in-form">
                                    <FormError message=last_error(sign_in.value())/>
                                    <input type="hidden" name="next" value=next/>
                                    <label for="sign-in-email">"Email"</label>
                                    <input id="sign-in-email" type="email" name="email" required autocomplete="username"/>
                                    <label for="sign-in-password">"Password"</label>
                                    <input id="sign-in-password" type="password" name="password" required autocomplete="current-password"/>
                                    <button type="submit" class="primary" disabled=move || sign_in.pending().get()>
                                        {move || if sign_in.pending().get() { "Signing in…" } else { "Sign in" }}
                                    </button>
                                </ActionForm>
                            </div>
                        }.into_any(),
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}
