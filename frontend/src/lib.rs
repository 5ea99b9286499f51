//! The browser entry point: hydrates the server-rendered dashboard.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker for the browser tests: interactions after this go through the hydrated app.
    let _ = js_sys::Reflect::set(&js_sys::global(), &"__heraldHydrated".into(), &true.into());
}
