//! Herald's dashboard: routes, pages and the server functions behind them. Rendered on the server
//! (readable without JavaScript) and hydrated in the browser by the `frontend` crate.

pub mod api;
pub mod audience;
pub mod campaigns;
pub mod canvases;
pub mod components;
pub mod pages;
pub mod segments;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod webhooks;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::pages::{
    activity::{ActivityPage, SendPage},
    auth::{SetupPage, SignInPage},
    campaigns::{CampaignPage, CampaignReportPage, CampaignsPage},
    canvases::{CanvasPage, CanvasReportPage, CanvasesPage},
    home::{HomePage, NewWorkspacePage},
    invite::InvitePage,
    layout::WorkspaceLayout,
    segments::{SegmentEditorPage, SegmentsPage},
    settings::{ApiKeysPage, GeneralSettingsPage, MembersPage},
    templates::{TemplateEditorPage, TemplatesPage},
    users::{UserPage, UsersPage},
};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="data:,"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Pages wait for their data before the first byte (SsrMode::Async) so redirects and error
    // statuses reach the browser as real HTTP responses and every page reads fine without JS.
    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title formatter=|page: String| if page.is_empty() { "Herald".to_string() } else { format!("{page} · Herald") }/>
        <Router>
            <Routes fallback=|| view! { <pages::NotFound/> }>
                <Route path=path!("") view=HomePage ssr=SsrMode::Async/>
                <Route path=path!("setup") view=SetupPage ssr=SsrMode::Async/>
                <Route path=path!("login") view=SignInPage ssr=SsrMode::Async/>
                <Route path=path!("workspaces/new") view=NewWorkspacePage ssr=SsrMode::Async/>
                <Route path=path!("invite/:token") view=InvitePage ssr=SsrMode::Async/>
                <ParentRoute path=path!("w/:ws") view=WorkspaceLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=CampaignsPage/>
                    <Route path=path!("campaigns") view=CampaignsPage/>
                    <Route path=path!("campaigns/:id") view=CampaignPage/>
                    <Route path=path!("campaigns/:id/report") view=CampaignReportPage/>
                    <Route path=path!("canvases") view=CanvasesPage/>
                    <Route path=path!("canvases/:id") view=CanvasPage/>
                    <Route path=path!("canvases/:id/report") view=CanvasReportPage/>
                    <Route path=path!("segments") view=SegmentsPage/>
                    <Route path=path!("segments/:id") view=SegmentEditorPage/>
                    <Route path=path!("users") view=UsersPage/>
                    <Route path=path!("users/:id") view=UserPage/>
                    <Route path=path!("templates") view=TemplatesPage/>
                    <Route path=path!("templates/:id") view=TemplateEditorPage/>
                    <Route path=path!("activity") view=ActivityPage/>
                    <Route path=path!("activity/:send") view=SendPage/>
                    <Route path=path!("settings") view=GeneralSettingsPage/>
                    <Route path=path!("settings/members") view=MembersPage/>
                    <Route path=path!("settings/api-keys") view=ApiKeysPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
