//! Herald's own management endpoints under `/api/v1`.

use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

use super::{ApiCaller, ApiError};
use crate::AppState;

fn workspace_json(caller: &ApiCaller) -> Value {
    json!({
        "id": caller.workspace.id,
        "name": caller.workspace.name,
        "created_at": caller.workspace.created_at.to_rfc3339(),
    })
}

/// `GET /api/v1/workspace`: the key's workspace and what the key may do. Any valid key may ask.
pub async fn current_workspace(caller: ApiCaller) -> Json<Value> {
    Json(json!({
        "message": "success",
        "workspace": workspace_json(&caller),
        "api_key": {
            "id": caller.key.id,
            "name": caller.key.name,
            "identifier": caller.key.prefix,
            "permissions": caller.key.permissions,
            "ip_allowlist": caller.key.ip_allowlist.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        },
    }))
}

/// `GET /api/v1/workspaces/{id}` (`herald.manage`): a key only ever reaches its own workspace.
pub async fn workspace_by_id(
    caller: ApiCaller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("herald.manage")?;
    if workspace_id != caller.workspace.id {
        return Err(ApiError::Forbidden(
            "Access Denied: this API key belongs to another workspace".into(),
        ));
    }
    Ok(Json(
        json!({ "message": "success", "workspace": workspace_json(&caller) }),
    ))
}

/// `GET /api/v1/api_keys` (`herald.manage`): the workspace's keys, never their secrets.
pub async fn api_keys(
    caller: ApiCaller,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Value>, ApiError> {
    caller.require("herald.manage")?;
    let keys = domain::api_key::list_api_keys(&state.db, &caller.key.workspace_id).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "identifier": k.prefix,
                "permissions": k.permissions,
                "created_at": k.created_at.to_rfc3339(),
                "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()),
                "revoked_at": k.revoked_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    Ok(Json(json!({ "message": "success", "api_keys": keys })))
}
