//! Authentication, IP allowlists and rate limiting for every `/api` request, and the in-memory
//! state of one server's REST API (rate counts, the `/users/track` writer).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::api_key::{ApiKey, KeyRejection};
use domain::entity::workspace;

use super::ApiError;
use super::users::TrackWriter;
use crate::{AppState, Config};

/// What one server's REST API keeps in memory. Each server (and each test server in one process)
/// has its own: counts and writers belong to one database.
pub(crate) struct ApiRuntime {
    /// Request counts per key or address, written to the database in batches.
    pub limiter: domain::rate_limit::RateLimiter,
    /// Writes `/users/track` calls, several per transaction.
    pub tracker: TrackWriter,
}

/// The REST API runtime of the server `state` belongs to, created on first use.
///
/// Runtimes are found by the server's `Arc<Config>` (one per server, shared by every clone of its
/// `AppState`) and dropped once that server is gone. A field of `AppState` would be simpler; this
/// keeps the REST API's plumbing inside the API module.
pub(crate) fn runtime(state: &AppState) -> Arc<ApiRuntime> {
    type Runtimes = Vec<(Weak<Config>, Arc<ApiRuntime>)>;
    static RUNTIMES: Mutex<Runtimes> = Mutex::new(Vec::new());
    let mut runtimes = RUNTIMES.lock().unwrap_or_else(PoisonError::into_inner);
    // Dead servers first, so that a new Config at a reused address never finds their runtime.
    runtimes.retain(|(config, _)| config.strong_count() > 0);
    let config = Arc::as_ptr(&state.config);
    if let Some((_, runtime)) = runtimes.iter().find(|(c, _)| c.as_ptr() == config) {
        return runtime.clone();
    }
    let runtime = Arc::new(ApiRuntime {
        limiter: domain::rate_limit::RateLimiter::default(),
        tracker: TrackWriter::start(state.db.clone()),
    });
    runtimes.push((Arc::downgrade(&state.config), runtime.clone()));
    runtime
}

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
        Some(secret) => domain::api_key::authenticate_cached(&state.db, secret, now)
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
    let decision = match runtime(&state)
        .limiter
        .hit(
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
