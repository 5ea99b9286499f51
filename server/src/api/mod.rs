//! The REST API under `/api`: Braze-compatible endpoints (added by later work) and Herald's
//! management endpoints under `/api/v1`. Every request passes [`gate`]: the bearer key is checked,
//! the caller's requests are counted, and every response carries the rate-limit headers.

mod error;
mod gate;
mod management;
mod messages;
mod segments;
mod users;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;
pub use gate::ApiCaller;

use crate::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/workspace", get(management::current_workspace))
        .route(
            "/v1/workspaces/{workspace_id}",
            get(management::workspace_by_id),
        )
        .route("/v1/api_keys", get(management::api_keys))
        .route("/users/track", post(users::track))
        .route("/users/delete", post(users::delete))
        .route("/users/identify", post(users::identify))
        .route("/users/alias/new", post(users::new_alias))
        .route("/users/export/ids", post(users::export_ids))
        .route("/events/list", get(users::events_list))
        .route("/messages/send", post(messages::send))
        .route("/segments/list", get(segments::list))
        .route("/segments/details", get(segments::details))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(state, gate::gate))
}
