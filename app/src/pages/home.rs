//! `/`: sends each visitor where they belong; and the new-workspace page.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::api::{CreateWorkspace, Landing, get_landing, get_me, needs_sign_in};
use crate::components::{ErrorPanel, FormError, Loading, last_error};

#[component]
pub fn HomePage() -> impl IntoView {
    let state = Resource::new(|| (), |_| get_landing());
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match state.await {
                    Ok(Landing::FirstRun) => view! { <Redirect path="/setup"/> }.into_any(),
                    Ok(Landing::SignIn) => view! { <Redirect path="/login"/> }.into_any(),
                    Ok(Landing::Workspace(id)) => view! { <Redirect path=format!("/w/{id}")/> }.into_any(),
                    Ok(Landing::NoWorkspace) => view! { <Redirect path="/workspaces/new"/> }.into_any(),
                    Err(e) => view! { <main class="centered"><ErrorPanel error=e/></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn NewWorkspacePage() -> impl IntoView {
    let create = ServerAction::<CreateWorkspace>::new();
    let me = Resource::new(|| (), |_| get_me());
    let form = move || {
        view! {
                <div class="panel auth-panel">
                    <h1>"Create a workspace"</h1>
                    <p class="lead">"A workspace holds its own users, campaigns, Canvases, members and API keys. You become its admin."</p>
                    <ActionForm action=create attr:class="stack" attr:id="new-workspace-form">
                        <FormError message=last_error(create.value())/>
                        <label for="new-workspace-name">"Name"</label>
                        <input id="new-workspace-name" type="text" name="name" required maxlength="100" placeholder="Staging"/>
                        <button type="submit" class="primary" disabled=move || create.pending().get()>"Create workspace"</button>
                    </ActionForm>
                    <p class="hint"><a href="/">"Cancel"</a></p>
                </div>
        }
    };
    view! {
        <Title text="New workspace"/>
        <main class="centered">
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(_) => form().into_any(),
                        Err(e) if needs_sign_in(&e) => view! { <Redirect path="/login?next=/workspaces/new"/> }.into_any(),
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}
