//! Sections whose objects arrive with later work (Canvases). Until then each says plainly what it
//! will hold; none pretends to have data. Campaigns live in `pages::campaigns`.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::EmptyState;

#[component]
fn Section(title: &'static str, empty: &'static str, body: &'static str) -> impl IntoView {
    view! {
        <Title text=title/>
        <div class="page-head"><h1>{title}</h1></div>
        <EmptyState title=empty>
            <p>{body}</p>
            <p class="hint">"This part of Herald is not built yet."</p>
        </EmptyState>
    }
}

#[component]
pub fn CanvasesPage() -> impl IntoView {
    view! { <Section title="Canvases" empty="No Canvases yet"
    body="Multi-step journeys with delays, splits and Message steps will be listed here."/> }
}
