//! Routed pages, one module per area.

pub mod activity;
pub mod auth;
pub mod campaigns;
pub mod canvases;
pub mod composer;
pub mod home;
pub mod invite;
pub mod layout;
pub mod sections;
pub mod segments;
pub mod settings;
pub mod templates;
pub mod users;

use leptos::prelude::*;
use leptos_meta::Title;

/// Any path the router does not know.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="centered">
            <div class="panel">
                <h1>"Page not found"</h1>
                <p>"Nothing lives at this address."</p>
                <p><a href="/">"Go to the dashboard"</a></p>
            </div>
        </main>
    }
}
