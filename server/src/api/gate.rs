//! Authentication, IP allowlists and rate limiting for every `/api` request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::api_key::{ApiKey, KeyRejection};
use domain::entity::workspace;

use super::ApiError;
use crate::AppState;

/// The authenticated caller of a REST endpoint.
#[derive(Clone, Debug)]
pub struct ApiCaller {
    pub key: ApiKey,
    pub workspace: workspace::Model,
}

impl ApiCaller {
    /// Fails with 403 unless the key holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.key.has_permission(permission) {
            Ok(())
        } else {
            Err(ApiError::missing_permission(permission))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiCaller>()
            .cloned()
            .ok_or(ApiError::Unauthorized("Missing API key".into()))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().trim_matches('"'))
        .filter(|t| !t.is_empty())
}

pub async fn gate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = state.clock.now();
    let auth = match bearer(request.headers()) {
        None => Err(ApiError::Unauthorized(
            "Missing API key: send it in the header “Authorization: Bearer YOUR-REST-API-KEY”"
                .into(),
        )),
        Some(secret) => domain::api_key::authenticate(&state.db, secret, now)
            .await
            .map_err(|r| match r {
                KeyRejection::Unknown => ApiError::Unauthorized("Invalid API key".into()),
                KeyRejection::Revoked => {
                    ApiError::Unauthorized("This API key has been revoked".into())
                }
                KeyRejection::WorkspaceArchived => ApiError::Forbidden(
                    "Forbidden: the workspace of this API key is archived".into(),
                ),
                KeyRejection::Db(e) => e.into(),
            }),
    };
    // Known keys are limited per key; anything else per client address, so guessing keys is
    // limited too.
    let bucket = match &auth {
        Ok((key, _)) => format!("key:{}", key.id),
        Err(_) => format!("ip:{}", peer.ip()),
    };
    let config = &state.config;
    let decision = match domain::rate_limit::hit(
        &state.db,
        &bucket,
        config.api_rate_limit,
        config.api_rate_window_secs,
        now,
    )
    .await
    {
        Ok(decision) => decision,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = if !decision.allowed {
        ApiError::RateLimited.into_response()
    } else {
        match auth {
            Err(error) => error.into_response(),
            Ok((key, _)) if !key.allows_ip(peer.ip()) => ApiError::Forbidden(format!(
                "Access Denied: requests from {} are not allowed for this API key",
                peer.ip()
            ))
            .into_response(),
            Ok((key, workspace)) => {
                request
                    .extensions_mut()
                    .insert(ApiCaller { key, workspace });
                next.run(request).await
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_at));
    if !decision.allowed {
        let wait = (decision.reset_at - now.timestamp()).max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_without_quotes() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "bearer \"hrld_abc\"".parse().unwrap(),
        );
        assert_eq!(bearer(&headers), Some("hrld_abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
