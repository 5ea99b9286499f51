//! Refuses cross-origin state-changing requests to the dashboard (forms and server functions).
//! Browsers label every request with `Sec-Fetch-Site` or at least `Origin`; a POST that another
//! site triggers is refused before it reaches a handler. The Braze-compatible `/api` is exempt: it
//! authenticates with bearer keys, not cookies.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub async fn same_origin_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = request.uri().path();
    let rest_api = path == "/api" || path.starts_with("/api/");
    if safe || rest_api || is_same_origin(request.headers(), &state.config.public_base()) {
        return next.run(request).await;
    }
    (
        StatusCode::FORBIDDEN,
        "Cross-origin request refused: submit the form from Herald's own pages.",
    )
        .into_response()
}

fn is_same_origin(headers: &HeaderMap, public_base: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser (curl, tests, server-to-server): there is no ambient cookie to abuse.
        return true;
    };
    if origin.eq_ignore_ascii_case(public_base) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        assert!(is_same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            "http://h"
        ));
        assert!(!is_same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            "http://h"
        ));
        assert!(!is_same_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            "http://h"
        ));
    }

    #[test]
    fn origin_must_match_the_public_url_or_the_host() {
        let base = "http://127.0.0.1:3000";
        assert!(is_same_origin(
            &headers(&[("origin", "http://127.0.0.1:3000")]),
            base
        ));
        assert!(is_same_origin(
            &headers(&[
                ("origin", "http://10.0.0.5:3000"),
                ("host", "10.0.0.5:3000")
            ]),
            base
        ));
        assert!(!is_same_origin(
            &headers(&[
                ("origin", "https://evil.example"),
                ("host", "127.0.0.1:3000")
            ]),
            base
        ));
        assert!(is_same_origin(&headers(&[]), base));
    }
}
