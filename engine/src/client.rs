//! The one shared HTTP client that sends webhooks: redirects are not followed, timeouts come from
//! the settings, and every address a URL leads to passes the [`AddressPolicy`] — literal IPs before
//! the request, DNS names when they are resolved at connect time (so DNS rebinding cannot slip a
//! private address in after a check).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::webhook::{Method, RenderedRequest};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::retry::{AttemptResult, parse_retry_after};
use crate::{AddressPolicy, DeliverySettings, Refusal};

/// Response bodies are kept up to this many bytes.
pub const MAX_BODY_BYTES: usize = 4096;
const MAX_KEPT_HEADERS: usize = 16;
const MAX_HEADER_VALUE: usize = 256;

/// What one attempt produced.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub result: AttemptResult,
    pub status: Option<u16>,
    /// A subset of the response headers (no cookies), values cut at 256 characters.
    pub headers: Vec<(String, String)>,
    /// The start of the response body (at most 4 KiB, cut at a character boundary).
    pub body: String,
    /// Short machine-readable kind when no response came back: `timeout`, `connect`,
    /// `refused_address`, `refused_port`, `invalid_url`, `request`, `body`.
    pub error_kind: Option<&'static str>,
    pub error: Option<String>,
    pub duration: Duration,
    pub retry_after: Option<Duration>,
}

impl Exchange {
    fn failed(
        result: AttemptResult,
        kind: &'static str,
        error: String,
        duration: Duration,
    ) -> Self {
        Self {
            result,
            status: None,
            headers: Vec::new(),
            body: String::new(),
            error_kind: Some(kind),
            error: Some(error),
            duration,
            retry_after: None,
        }
    }
}

/// Marks a connection refused by the address policy, so it is told apart from network failures.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedAddress(String);

/// Resolves with the system resolver, then drops every address the policy refuses.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(refusal) => {
                        refusals.push(refusal);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusals
                    .first()
                    .map(Refusal::to_string)
                    .unwrap_or_else(|| "no address".into());
                let error: Box<dyn std::error::Error + Send + Sync> = Box::new(RefusedAddress(
                    format!("{host} resolves to a refused address: {why}"),
                ));
                return Err(error);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends rendered webhook requests.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    allowed_ports: Arc<Vec<u16>>,
}

impl WebhookClient {
    pub fn new(settings: &DeliverySettings) -> Self {
        let policy = Arc::new(settings.addresses.clone());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .pool_max_idle_per_host(settings.concurrency.max(1))
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()
            .expect("the HTTP client settings are valid");
        Self {
            http,
            policy,
            allowed_ports: Arc::new(settings.allowed_ports.clone()),
        }
    }

    /// Checks a URL before any connection: scheme, port, and the address when it is a literal IP.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, (&'static str, String)> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ("invalid_url", format!("the URL is not valid: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err((
                "invalid_url",
                "the URL must start with http:// or https://".into(),
            ));
        }
        let literal: Option<IpAddr> = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(("invalid_url", "the URL has no host".into())),
        };
        if let Some(ip) = literal {
            self.policy
                .check(ip)
                .map_err(|r| ("refused_address", format!("refused: {r}")))?;
        }
        let port = parsed.port_or_known_default().unwrap_or(0);
        let allowlisted_ip = literal.is_some_and(|ip| self.policy.is_allowlisted(ip));
        if !matches!(port, 80 | 443) && !self.allowed_ports.contains(&port) && !allowlisted_ip {
            return Err((
                "refused_port",
                format!("refused: port {port} is not allowed (only 80 and 443)"),
            ));
        }
        Ok(parsed)
    }

    /// Performs one attempt; never fails, every outcome is described in the [`Exchange`].
    pub async fn send(
        &self,
        request: &RenderedRequest,
        extra_headers: &[(String, String)],
        now_epoch: i64,
    ) -> Exchange {
        match self.check_url(&request.url) {
            Ok(url) => {
                self.send_checked(url, request, extra_headers, now_epoch)
                    .await
            }
            Err((kind, message)) => Self::refused(kind, message),
        }
    }

    /// The attempt that [`WebhookClient::check_url`] refused before any connection.
    pub fn refused(kind: &'static str, message: String) -> Exchange {
        Exchange::failed(AttemptResult::Permanent, kind, message, Duration::ZERO)
    }

    /// [`WebhookClient::send`] to a URL that [`WebhookClient::check_url`] already passed (the
    /// dispatcher checks it first to learn the host, and does not parse it twice).
    pub async fn send_checked(
        &self,
        url: reqwest::Url,
        request: &RenderedRequest,
        extra_headers: &[(String, String)],
        now_epoch: i64,
    ) -> Exchange {
        let started = Instant::now();
        let mut headers = HeaderMap::new();
        for (name, value) in request.headers.iter().chain(extra_headers) {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => {
                    let message = format!("the header “{name}” has an invalid name or value");
                    return Exchange::failed(
                        AttemptResult::Permanent,
                        "request",
                        message,
                        started.elapsed(),
                    );
                }
            }
        }
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.http.request(method, url).headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return classify(&error, started.elapsed()),
        };
        let status = response.status().as_u16();
        let kept: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != reqwest::header::SET_COOKIE)
            .take(MAX_KEPT_HEADERS)
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                (
                    name.to_string(),
                    value.chars().take(MAX_HEADER_VALUE).collect(),
                )
            })
            .collect();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now_epoch));
        let mut body = Vec::new();
        let mut body_error = None;
        while body.len() < MAX_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    body_error = Some(error.to_string());
                    break;
                }
            }
        }
        body.truncate(MAX_BODY_BYTES);
        let body = String::from_utf8_lossy(&body).into_owned();
        Exchange {
            result: AttemptResult::Status(status),
            status: Some(status),
            headers: kept,
            body,
            error_kind: body_error.as_ref().map(|_| "body"),
            error: body_error,
            duration: started.elapsed(),
            retry_after,
        }
    }
}

/// Sorts a transport error into timeout, refused address or unreachable host.
fn classify(error: &reqwest::Error, duration: Duration) -> Exchange {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<RefusedAddress>() {
            return Exchange::failed(
                AttemptResult::Permanent,
                "refused_address",
                refused.0.clone(),
                duration,
            );
        }
        source = current.source();
    }
    let detail = error_chain(error);
    if error.is_timeout() {
        Exchange::failed(
            AttemptResult::Timeout,
            "timeout",
            format!("no response in time: {detail}"),
            duration,
        )
    } else if error.is_connect() {
        Exchange::failed(
            AttemptResult::Unreachable,
            "connect",
            format!("could not connect: {detail}"),
            duration,
        )
    } else {
        // Resets and other failures mid-request: the host is reachable but flaky; retry like a 5xx.
        Exchange::failed(
            AttemptResult::Timeout,
            "request",
            format!("request failed: {detail}"),
            duration,
        )
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(current) = source {
        let text = current.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = current.source();
    }
    parts.join(": ")
}
