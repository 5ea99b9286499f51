//! The REST API under `/api`: Braze-compatible endpoints (added by later work) and Herald's
//! management endpoints under `/api/v1`. Every request passes [`gate`]: the bearer key is checked,
//! the caller's requests are counted, and every response carries the rate-limit headers.

mod campaigns;
mod canvases;
mod error;
mod gate;
mod management;
mod messages;
mod openapi;
mod segments;
mod users;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;
pub use gate::ApiCaller;
pub use openapi::openapi;

use crate::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/workspace", get(management::current_workspace))
        .route(
            "/v1/workspaces/{workspace_id}",
            get(management::workspace_by_id),
        )
        .route("/v1/api_keys", get(management::api_keys))
        .route(
            "/v1/campaigns",
            get(management::campaigns_list).post(management::campaigns_create),
        )
        .route(
            "/v1/campaigns/{id}",
            get(management::campaigns_get).put(management::campaigns_update),
        )
        .route("/v1/campaigns/{id}/stats", get(management::campaigns_stats))
        .route(
            "/v1/campaigns/{id}/progress",
            get(management::campaigns_progress),
        )
        .route(
            "/v1/campaigns/{id}/{action}",
            post(management::campaigns_action),
        )
        .route(
            "/v1/canvases",
            get(management::canvases_list).post(management::canvases_create),
        )
        .route(
            "/v1/canvases/{id}",
            get(management::canvases_get).put(management::canvases_update),
        )
        .route("/v1/canvases/{id}/stats", get(management::canvases_stats))
        .route(
            "/v1/canvases/{id}/{action}",
            post(management::canvases_action),
        )
        .route(
            "/v1/frequency_caps",
            get(management::caps_list).post(management::caps_create),
        )
        .route(
            "/v1/frequency_caps/{id}",
            axum::routing::delete(management::caps_delete),
        )
        .route("/users/track", post(users::track))
        .route("/users/delete", post(users::delete))
        .route("/users/identify", post(users::identify))
        .route("/users/alias/new", post(users::new_alias))
        .route("/users/export/ids", post(users::export_ids))
        .route("/events/list", get(users::events_list))
        .route("/messages/send", post(messages::send))
        .route("/messages/schedule/create", post(messages::schedule_create))
        .route("/messages/schedule/update", post(messages::schedule_update))
        .route("/messages/schedule/delete", post(messages::schedule_delete))
        .route(
            "/messages/scheduled_broadcasts",
            get(messages::scheduled_broadcasts),
        )
        .route("/campaigns/trigger/send", post(campaigns::trigger_send))
        .route(
            "/campaigns/trigger/schedule/create",
            post(campaigns::trigger_schedule_create),
        )
        .route(
            "/campaigns/trigger/schedule/update",
            post(campaigns::trigger_schedule_update),
        )
        .route(
            "/campaigns/trigger/schedule/delete",
            post(campaigns::trigger_schedule_delete),
        )
        .route("/campaigns/list", get(campaigns::list))
        .route("/campaigns/details", get(campaigns::details))
        .route(
            "/campaigns/data_series",
            get(campaigns::campaign_data_series),
        )
        .route("/sends/id/create", post(campaigns::create_send_id))
        .route("/canvas/trigger/send", post(canvases::trigger_send))
        .route(
            "/canvas/trigger/schedule/create",
            post(canvases::trigger_schedule_create),
        )
        .route(
            "/canvas/trigger/schedule/update",
            post(canvases::trigger_schedule_update),
        )
        .route(
            "/canvas/trigger/schedule/delete",
            post(canvases::trigger_schedule_delete),
        )
        .route("/canvas/list", get(canvases::list))
        .route("/canvas/details", get(canvases::details))
        .route("/canvas/data_series", get(canvases::data_series))
        .route("/sends/data_series", get(campaigns::send_data_series))
        .route("/segments/list", get(segments::list))
        .route("/segments/details", get(segments::details))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(state, gate::gate))
}
