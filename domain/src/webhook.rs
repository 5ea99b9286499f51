//! A webhook as a marketer composes it, its validation, and the request it renders to.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::template::{Recipient, RenderContext, RenderOutcome, Template};

/// The HTTP methods a webhook may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    pub fn parse(text: &str) -> Result<Method, DomainError> {
        match text.trim().to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            "PUT" => Ok(Method::Put),
            "PATCH" => Ok(Method::Patch),
            "DELETE" => Ok(Method::Delete),
            _ => Err(DomainError::invalid(
                "method",
                "must be GET, POST, PUT, PATCH or DELETE",
            )),
        }
    }
}

/// A request body: JSON key/value pairs (values are templates) or raw text (any format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    None,
    Pairs { pairs: Vec<(String, String)> },
    Raw { text: String },
}

/// A webhook as composed: every text field may hold Liquid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    pub method: Method,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default = "no_body")]
    pub body: Body,
}

fn no_body() -> Body {
    Body::None
}

/// The request on the wire, after rendering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Header names that carry secrets: their values are masked wherever a request is shown or logged.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || ["token", "secret", "key", "password", "signature", "auth"]
            .iter()
            .any(|w| name.contains(w))
}

/// The value to show for a header: secrets keep only a short hint.
pub fn masked_header_value(name: &str, value: &str) -> String {
    if !is_secret_header(name) {
        return value.to_string();
    }
    let visible: String = value.chars().take(4).collect();
    if value.chars().count() > 8 {
        format!("{visible}••••••")
    } else {
        "••••••".to_string()
    }
}

/// Whether `name` is a valid HTTP header name (an RFC 9110 token).
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The Content-Type for a raw body when the headers do not give one, as Braze infers it.
pub fn infer_content_type(body: &str) -> &'static str {
    let trimmed = body.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(body).is_ok()
    {
        "application/json"
    } else if trimmed.starts_with('<') {
        "application/xml"
    } else if !trimmed.is_empty() && !trimmed.contains(char::is_whitespace) && trimmed.contains('=')
    {
        "application/x-www-form-urlencoded"
    } else {
        "text/plain"
    }
}

/// Headers per webhook, at most.
pub const MAX_HEADERS: usize = 50;

/// What rendering a message for one recipient gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rendered {
    Request(RenderedRequest),
    /// `{% abort_message %}` ran, with its reason if it gave one.
    Aborted(Option<String>),
}

enum CompiledBody {
    None,
    Pairs(Vec<(String, Template)>),
    Raw(Template),
}

/// A message whose templates are all parsed: compile once, render per recipient.
pub struct CompiledMessage {
    method: Method,
    url: Template,
    headers: Vec<(String, Template)>,
    body: CompiledBody,
}

impl std::fmt::Debug for CompiledMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledMessage")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Checks a URL as typed: it must be http(s) and, where no Liquid is involved, a valid URL.
fn check_url_text(url: &str) -> Result<(), DomainError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(DomainError::invalid("url", "is required"));
    }
    let lower = url.to_ascii_lowercase();
    let dynamic_start = url.starts_with("{{") || url.starts_with("{%");
    if !dynamic_start && !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err(DomainError::invalid(
            "url",
            "must start with http:// or https://",
        ));
    }
    if !url.contains("{{") && !url.contains("{%") {
        let host_ok = url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
            .is_some_and(|authority| {
                !authority.is_empty() && !authority.contains(char::is_whitespace)
            });
        if !host_ok {
            return Err(DomainError::invalid("url", "has no valid host"));
        }
    }
    Ok(())
}

/// Checks a rendered URL: absolute http(s) with a host.
fn check_rendered_url(url: &str) -> Result<(), DomainError> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(rest)
            if !rest
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default()
                .is_empty() =>
        {
            Ok(())
        }
        _ => Err(DomainError::invalid(
            "url",
            format!("rendered to “{url}”, which is not an http(s) URL"),
        )),
    }
}

impl WebhookMessage {
    /// Validates the message and parses its templates. Errors name the field and, for Liquid, the
    /// line and column.
    pub fn compile(&self) -> Result<CompiledMessage, DomainError> {
        check_url_text(&self.url)?;
        let url = Template::parse("url", self.url.trim())?;
        if self.headers.len() > MAX_HEADERS {
            return Err(DomainError::invalid(
                "headers",
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let name = name.trim();
            if !valid_header_name(name) {
                return Err(DomainError::invalid(
                    "headers",
                    format!("“{name}” is not a valid header name"),
                ));
            }
            let template = Template::parse("headers", value)
                .map_err(|e| DomainError::invalid("headers", format!("{name}: {}", e.message())))?;
            headers.push((name.to_string(), template));
        }
        let body = match &self.body {
            Body::None => CompiledBody::None,
            Body::Raw { text } => CompiledBody::Raw(Template::parse("body", text)?),
            Body::Pairs { pairs } => {
                let mut compiled = Vec::with_capacity(pairs.len());
                for (key, value) in pairs {
                    let key = key.trim();
                    if key.is_empty() {
                        return Err(DomainError::invalid(
                            "body",
                            "every key/value pair needs a key",
                        ));
                    }
                    let template = Template::parse("body", value).map_err(|e| {
                        DomainError::invalid("body", format!("{key}: {}", e.message()))
                    })?;
                    compiled.push((key.to_string(), template));
                }
                CompiledBody::Pairs(compiled)
            }
        };
        Ok(CompiledMessage {
            method: self.method,
            url,
            headers,
            body,
        })
    }
}

fn rendered_text(outcome: RenderOutcome) -> Result<String, Option<String>> {
    match outcome {
        RenderOutcome::Rendered(text) => Ok(text),
        RenderOutcome::Aborted { reason } => Err(reason),
    }
}

impl CompiledMessage {
    /// Renders the request for one recipient.
    pub fn render(&self, context: &RenderContext) -> Result<Rendered, DomainError> {
        let recipient = Recipient::new(context);
        macro_rules! text {
            ($template:expr) => {
                match rendered_text($template.render_for(&recipient)?) {
                    Ok(text) => text,
                    Err(reason) => return Ok(Rendered::Aborted(reason)),
                }
            };
        }
        let url = text!(self.url).trim().to_string();
        check_rendered_url(&url)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            headers.push((name.clone(), text!(value).trim().to_string()));
        }
        let (body, inferred) = match &self.body {
            CompiledBody::None => (None, None),
            CompiledBody::Raw(template) => {
                let text = text!(template);
                let kind = infer_content_type(&text);
                (Some(text), Some(kind))
            }
            CompiledBody::Pairs(pairs) => {
                // Keys in order and a repeated key's last value, as a JSON object holds them,
                // without copying the keys into one first.
                let mut object = std::collections::BTreeMap::new();
                for (key, value) in pairs {
                    object.insert(key.as_str(), text!(value));
                }
                (
                    Some(serde_json::to_string(&object).expect("text always serializes")),
                    Some("application/json"),
                )
            }
        };
        if let Some(kind) = inferred
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".to_string(), kind.to_string()));
        }
        Ok(Rendered::Request(RenderedRequest {
            method: self.method,
            url,
            headers,
            body,
        }))
    }
}

/// Compiles and renders in one go (previews, test sends).
pub fn render(message: &WebhookMessage, context: &RenderContext) -> Result<Rendered, DomainError> {
    message.compile()?.render(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_case_insensitively_and_name_the_field_otherwise() {
        assert_eq!(Method::parse("patch").unwrap(), Method::Patch);
        assert_eq!(Method::parse("TRACE").unwrap_err().field(), Some("method"));
    }

    #[test]
    fn secret_headers_are_masked() {
        assert_eq!(
            masked_header_value("Authorization", "Bearer abcdefghijk"),
            "Bear••••••"
        );
        assert_eq!(masked_header_value("X-Api-Key", "short"), "••••••");
        assert_eq!(
            masked_header_value("Content-Type", "application/json"),
            "application/json"
        );
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(valid_header_name("X-Request-Id"));
        assert!(!valid_header_name("X Request"));
        assert!(!valid_header_name(""));
        assert!(!valid_header_name("Bad:Name"));
    }

    fn message(url: &str, body: Body) -> WebhookMessage {
        WebhookMessage {
            method: Method::Post,
            url: url.into(),
            headers: vec![("X-Plan".into(), "{{custom_attribute.${plan}}}".into())],
            body,
        }
    }

    #[test]
    fn a_message_renders_url_headers_and_pairs_for_one_recipient() {
        let body = Body::Pairs {
            pairs: vec![
                ("name".into(), "{{${first_name}}}".into()),
                ("quote".into(), "say \"hi\"".into()),
            ],
        };
        let msg = message("https://example.com/u/{{${user_id}}}", body);
        let ctx = RenderContext::new()
            .with_user_attribute("first_name", "Ada")
            .with_user_attribute("user_id", "u-1")
            .with_custom_attribute("plan", "pro");
        let Rendered::Request(req) = render(&msg, &ctx).unwrap() else {
            panic!("aborted")
        };
        assert_eq!(req.url, "https://example.com/u/u-1");
        assert!(req.headers.contains(&("X-Plan".into(), "pro".into())));
        assert!(
            req.headers
                .contains(&("Content-Type".into(), "application/json".into()))
        );
        let body: serde_json::Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["name"], "Ada");
        assert_eq!(body["quote"], "say \"hi\"");
    }

    #[test]
    fn a_pairs_body_is_one_compact_object_with_sorted_keys_and_the_last_of_a_repeated_key() {
        let body = Body::Pairs {
            pairs: vec![
                ("b".into(), "2".into()),
                ("a".into(), "x \"q\" {{${first_name}}}".into()),
                ("b".into(), "3".into()),
            ],
        };
        let ctx = RenderContext::new().with_user_attribute("first_name", "Ada");
        let Rendered::Request(req) = render(&message("https://example.com/", body), &ctx).unwrap()
        else {
            panic!("aborted")
        };
        assert_eq!(req.body.as_deref(), Some(r#"{"a":"x \"q\" Ada","b":"3"}"#));
    }

    #[test]
    fn abort_message_anywhere_aborts_the_send() {
        let msg = message(
            "https://example.com",
            Body::Raw {
                text: "{% if ${first_name} == blank %}{% abort_message('no name') %}{% endif %}hi"
                    .into(),
            },
        );
        assert_eq!(
            render(&msg, &RenderContext::new()).unwrap(),
            Rendered::Aborted(Some("no name".into()))
        );
    }

    #[test]
    fn validation_names_the_field_and_the_position() {
        let bad_url = message("ftp://example.com", Body::None);
        assert_eq!(bad_url.compile().unwrap_err().field(), Some("url"));
        let bad_liquid = message(
            "https://example.com",
            Body::Raw {
                text: "ok\n{{ name | nope }}".into(),
            },
        );
        let err = bad_liquid.compile().unwrap_err();
        assert_eq!(err.field(), Some("body"));
        assert!(err.to_string().contains("line 2"), "{err}");
        let mut bad_header = message("https://example.com", Body::None);
        bad_header.headers.push(("Bad Header".into(), "x".into()));
        assert_eq!(bad_header.compile().unwrap_err().field(), Some("headers"));
        let empty = message("https://{{${nothing}}}", Body::None);
        assert_eq!(
            render(&empty, &RenderContext::new()).unwrap_err().field(),
            Some("url")
        );
    }

    #[test]
    fn raw_bodies_get_a_content_type_from_their_shape() {
        assert_eq!(infer_content_type(r#"{"a": 1}"#), "application/json");
        assert_eq!(infer_content_type("<a/>"), "application/xml");
        assert_eq!(
            infer_content_type("a=1&b=2"),
            "application/x-www-form-urlencoded"
        );
        assert_eq!(infer_content_type("hello there"), "text/plain");
    }
}
