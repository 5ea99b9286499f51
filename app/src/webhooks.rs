//! Server functions and shared types for webhooks: the template library, previews and test sends,
//! the Activity log, and workspace signing settings.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::ssr::{authorize, ctx, fail, when};
#[cfg(feature = "ssr")]
use domain::{Capability, SendId, TemplateId};

/// A webhook as the composer edits it (plain strings, so the browser needs no domain types).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDraft {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// `pairs`, `raw` or `none`.
    pub body_mode: String,
    pub pairs: Vec<(String, String)>,
    pub raw: String,
}

impl Default for MessageDraft {
    fn default() -> Self {
        Self {
            method: "POST".into(),
            url: "https://".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body_mode: "pairs".into(),
            pairs: vec![("user_id".into(), "{{${user_id}}}".into())],
            raw: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRow {
    pub id: String,
    pub name: String,
    pub method: String,
    pub url: String,
    pub updated: String,
    pub archived: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatesView {
    pub templates: Vec<TemplateRow>,
    pub can_build: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDetails {
    pub id: Option<String>,
    pub name: String,
    pub draft: MessageDraft,
    pub can_build: bool,
}

/// A rendered request as the preview shows it (secret header values masked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewResult {
    /// Set when `abort_message` ran: the reason, or an empty string.
    pub aborted: Option<String>,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRow {
    pub id: String,
    pub created: String,
    pub source: String,
    pub recipient: Option<String>,
    pub host: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedHost {
    pub host: String,
    pub until: String,
    pub failures: i64,
}

/// One hour of the Activity chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBar {
    /// `HH:00` (UTC).
    pub label: String,
    pub delivered: i64,
    pub failed: i64,
    /// Pending and aborted sends.
    pub other: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityView {
    /// Sends created in each of the last 24 hours, oldest first.
    pub hours: Vec<HourBar>,
    pub sends: Vec<SendRow>,
    pub paused_hosts: Vec<PausedHost>,
    pub can_build: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub number: i32,
    pub started: String,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub outcome: String,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendDetails {
    pub send: SendRow,
    pub source_name: Option<String>,
    /// The request as sent (or as it will be sent), secret header values masked.
    pub request: Option<PreviewResult>,
    pub next_attempt: Option<String>,
    pub attempts: Vec<AttemptRow>,
    pub can_retry: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningView {
    pub enabled: bool,
    /// The full secret, for admins only.
    pub secret: Option<String>,
    pub masked: String,
    pub previous_until: Option<String>,
    pub can_manage: bool,
}

#[cfg(feature = "ssr")]
pub(crate) fn to_message(
    draft: &MessageDraft,
) -> Result<domain::webhook::WebhookMessage, domain::DomainError> {
    use domain::webhook::{Body, Method, WebhookMessage};
    let keep = |rows: &[(String, String)]| -> Vec<(String, String)> {
        rows.iter()
            .filter(|(k, v)| !k.trim().is_empty() || !v.trim().is_empty())
            .map(|(k, v)| (k.trim().to_string(), v.clone()))
            .collect()
    };
    let body = match draft.body_mode.as_str() {
        "pairs" => Body::Pairs {
            pairs: keep(&draft.pairs),
        },
        "raw" => Body::Raw {
            text: draft.raw.clone(),
        },
        "none" => Body::None,
        _ => {
            return Err(domain::DomainError::invalid(
                "body",
                "choose key/value pairs, raw text or no body",
            ));
        }
    };
    Ok(WebhookMessage {
        method: Method::parse(&draft.method)?,
        url: draft.url.trim().to_string(),
        headers: keep(&draft.headers),
        body,
    })
}

#[cfg(feature = "ssr")]
pub(crate) fn to_draft(message: &domain::webhook::WebhookMessage) -> MessageDraft {
    use domain::webhook::Body;
    let (body_mode, pairs, raw) = match &message.body {
        Body::None => ("none", Vec::new(), String::new()),
        Body::Pairs { pairs } => ("pairs", pairs.clone(), String::new()),
        Body::Raw { text } => ("raw", Vec::new(), text.clone()),
    };
    MessageDraft {
        method: message.method.as_str().into(),
        url: message.url.clone(),
        headers: message.headers.clone(),
        body_mode: body_mode.into(),
        pairs,
        raw,
    }
}

#[cfg(feature = "ssr")]
fn parse_context(text: &str) -> Result<domain::template::RenderContext, domain::DomainError> {
    if text.trim().is_empty() {
        return Ok(domain::template::RenderContext::new());
    }
    serde_json::from_str(text).map_err(|e| {
        domain::DomainError::invalid(
            "test_data",
            format!("must be a JSON object like {{\"user\": {{\"first_name\": \"Ada\"}}}}: {e}"),
        )
    })
}

#[cfg(feature = "ssr")]
fn shown(request: &domain::webhook::RenderedRequest) -> PreviewResult {
    PreviewResult {
        aborted: None,
        method: request.method.as_str().into(),
        url: request.url.clone(),
        headers: request
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), domain::webhook::masked_header_value(k, v)))
            .collect(),
        body: request.body.clone(),
    }
}

#[cfg(feature = "ssr")]
pub(crate) fn send_row(model: &domain::entity::webhook_send::Model) -> SendRow {
    SendRow {
        id: model.id.clone(),
        created: when(model.created_at),
        source: match &model.source_name {
            Some(name) => format!("{} · {name}", model.source_kind),
            None => model.source_kind.clone(),
        },
        recipient: model.recipient.clone(),
        host: model.host.clone(),
        status: model.status.clone(),
        attempts: model.attempts,
        last_status: model.last_status_code,
        last_error: model.last_error.clone(),
    }
}

#[server(prefix = "/srv", endpoint = "templates")]
pub async fn list_templates(ws: String) -> Result<TemplatesView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let templates = domain::webhook_template::list(&ctx.db, &access.workspace_id())
        .await
        .map_err(fail)?;
    Ok(TemplatesView {
        templates: templates
            .into_iter()
            .map(|t| TemplateRow {
                id: t.id.into_string(),
                name: t.name,
                method: t.message.method.as_str().into(),
                url: t.message.url,
                updated: when(t.updated_at),
                archived: t.archived_at.is_some(),
            })
            .collect(),
        can_build: access.role.allows(Capability::Build),
    })
}

#[server(prefix = "/srv", endpoint = "template")]
pub async fn get_template(
    ws: String,
    id: Option<String>,
) -> Result<TemplateDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let can_build = access.role.allows(Capability::Build);
    let Some(id) = id.filter(|id| id != "new") else {
        return Ok(TemplateDetails {
            id: None,
            name: String::new(),
            draft: MessageDraft::default(),
            can_build,
        });
    };
    let ctx = ctx()?;
    let id = TemplateId::parse(&id).map_err(fail)?;
    let template = domain::webhook_template::find(&ctx.db, &access.workspace_id(), &id)
        .await
        .map_err(fail)?;
    Ok(TemplateDetails {
        id: Some(template.id.into_string()),
        name: template.name,
        draft: to_draft(&template.message),
        can_build,
    })
}

/// Saves a template; returns its id (new templates get one).
#[server(prefix = "/srv", endpoint = "save_template", input = Json)]
pub async fn save_template(
    ws: String,
    id: Option<String>,
    name: String,
    draft: MessageDraft,
) -> Result<String, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let id = id
        .map(|id| TemplateId::parse(&id))
        .transpose()
        .map_err(fail)?;
    let message = to_message(&draft).map_err(fail)?;
    let saved = domain::webhook_template::save(
        &ctx.db,
        &access.workspace_id(),
        id.as_ref(),
        &name,
        &message,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    Ok(saved.id.into_string())
}

#[server(prefix = "/srv", endpoint = "duplicate_template")]
pub async fn duplicate_template(ws: String, id: String) -> Result<String, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let id = TemplateId::parse(&id).map_err(fail)?;
    let copy =
        domain::webhook_template::duplicate(&ctx.db, &access.workspace_id(), &id, ctx.clock.now())
            .await
            .map_err(fail)?;
    Ok(copy.id.into_string())
}

#[server(prefix = "/srv", endpoint = "set_template_archived")]
pub async fn set_template_archived(
    ws: String,
    id: String,
    archived: bool,
) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let id = TemplateId::parse(&id).map_err(fail)?;
    domain::webhook_template::set_archived(
        &ctx.db,
        &access.workspace_id(),
        &id,
        archived,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    Ok(())
}

/// Renders a draft with hand-typed test data, without sending anything.
#[server(prefix = "/srv", endpoint = "preview_webhook", input = Json)]
pub async fn preview_webhook(
    ws: String,
    draft: MessageDraft,
    test_data: String,
) -> Result<PreviewResult, ServerFnError> {
    authorize(&ws, Capability::Read).await?;
    let message = to_message(&draft).map_err(fail)?;
    let context = parse_context(&test_data).map_err(fail)?;
    match domain::webhook::render(&message, &context).map_err(fail)? {
        domain::webhook::Rendered::Request(request) => Ok(shown(&request)),
        domain::webhook::Rendered::Aborted(reason) => Ok(PreviewResult {
            aborted: Some(reason.unwrap_or_default()),
            method: message.method.as_str().into(),
            url: String::new(),
            headers: Vec::new(),
            body: None,
        }),
    }
}

/// Sends a draft for real through the engine (persisted first, like every send); returns the send
/// id to follow in the Activity log.
#[server(prefix = "/srv", endpoint = "send_test_webhook", input = Json)]
pub async fn send_test_webhook(
    ws: String,
    draft: MessageDraft,
    test_data: String,
) -> Result<String, ServerFnError> {
    let (account, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let message = to_message(&draft).map_err(fail)?;
    message.compile().map_err(fail)?;
    let context = parse_context(&test_data).map_err(fail)?;
    let send = domain::outbox::NewSend {
        workspace_id: access.workspace_id(),
        source_kind: domain::outbox::SourceKind::Test,
        source_id: None,
        source_name: Some(format!("by {}", account.email)),
        recipient: None,
        message,
        context,
        due_at: None,
        tracking: Default::default(),
    };
    let ids = domain::outbox::enqueue(&ctx.db, vec![send], ctx.clock.now())
        .await
        .map_err(fail)?;
    ctx.engine.notify_one();
    Ok(ids[0].to_string())
}

#[server(prefix = "/srv", endpoint = "activity")]
pub async fn get_activity(
    ws: String,
    #[server(default)] status: String,
    #[server(default)] source: String,
    #[server(default)] source_id: String,
    #[server(default)] host: String,
    #[server(default)] hours: String,
) -> Result<ActivityView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let now = ctx.clock.now();
    let nonempty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    // At most ten years back, so the subtraction cannot overflow.
    let hours: Option<i64> = nonempty(hours)
        .and_then(|h| h.parse().ok())
        .map(|h: i64| h.clamp(0, 87_600));
    let filter = domain::outbox::SendFilter {
        status: nonempty(status),
        source_kind: nonempty(source),
        source_id: nonempty(source_id),
        host: nonempty(host),
        recipient: None,
        since: hours.map(|h| now - chrono::Duration::hours(h)),
        limit: 200,
    };
    let sends = domain::outbox::list_sends(&ctx.db, &access.workspace_id(), &filter)
        .await
        .map_err(fail)?;
    let paused = domain::outbox::paused_hosts(&ctx.db, &access.workspace_id(), now)
        .await
        .map_err(fail)?;
    let since = {
        use chrono::{DurationRound, TimeDelta};
        now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) - TimeDelta::hours(23)
    };
    let counts = domain::outbox::hourly_counts(&ctx.db, &access.workspace_id(), since)
        .await
        .map_err(fail)?;
    let hours = (0..24)
        .map(|i| {
            let start = since + chrono::TimeDelta::hours(i);
            let key = start.format("%Y-%m-%d %H").to_string();
            let count = |wanted: &dyn Fn(&str) -> bool| -> i64 {
                counts
                    .iter()
                    .filter(|(h, status, _)| *h == key && wanted(status))
                    .map(|(_, _, n)| n)
                    .sum()
            };
            HourBar {
                label: start.format("%H:00").to_string(),
                delivered: count(&|s| s == "delivered"),
                failed: count(&|s| s == "failed"),
                other: count(&|s| s != "delivered" && s != "failed"),
            }
        })
        .collect();
    Ok(ActivityView {
        hours,
        sends: sends.iter().map(send_row).collect(),
        paused_hosts: paused
            .into_iter()
            .map(|h| PausedHost {
                host: h.host,
                until: h.paused_until.map(when).unwrap_or_default(),
                failures: h.failures,
            })
            .collect(),
        can_build: access.role.allows(Capability::Build),
    })
}

#[server(prefix = "/srv", endpoint = "send_details")]
pub async fn get_send_details(ws: String, id: String) -> Result<SendDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let id = SendId::parse(&id).map_err(fail)?;
    let workspace = access.workspace_id();
    let send = domain::outbox::find_send(&ctx.db, &workspace, &id)
        .await
        .map_err(fail)?;
    let attempts = domain::outbox::attempts_of(&ctx.db, &workspace, &id)
        .await
        .map_err(fail)?;
    let request = send
        .request
        .as_deref()
        .and_then(|r| serde_json::from_str::<domain::webhook::RenderedRequest>(r).ok())
        .map(|r| shown(&r));
    Ok(SendDetails {
        can_retry: send.status == "failed" && access.role.allows(Capability::Build),
        next_attempt: (send.status == "pending").then(|| when(send.next_attempt_at)),
        source_name: send.source_name.clone(),
        send: send_row(&send),
        request,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptRow {
                number: a.number,
                started: when(a.started_at),
                duration_ms: a.duration_ms,
                status_code: a.status_code,
                error: a.error,
                outcome: a.outcome,
                response_headers: serde_json::from_str(&a.response_headers).unwrap_or_default(),
                response_body: a.response_body,
            })
            .collect(),
    })
}

/// Re-sends one failed send, or every failed send of the last `hours` hours when `id` is empty.
/// Returns how many were re-queued.
#[server(prefix = "/srv", endpoint = "resend")]
pub async fn resend(
    ws: String,
    #[server(default)] id: String,
    #[server(default)] hours: String,
) -> Result<u64, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let now = ctx.clock.now();
    let workspace = access.workspace_id();
    let count = if id.trim().is_empty() {
        let hours: i64 = hours
            .trim()
            .parse()
            .map_err(|_| fail(domain::DomainError::invalid("hours", "choose a period")))?;
        let hours = hours.clamp(0, 87_600);
        domain::outbox::resend_failed(
            &ctx.db,
            &workspace,
            None,
            Some(now - chrono::Duration::hours(hours)),
            now,
        )
        .await
    } else {
        let id = SendId::parse(&id).map_err(fail)?;
        domain::outbox::resend_failed(&ctx.db, &workspace, Some(&id), None, now).await
    }
    .map_err(fail)?;
    ctx.engine.notify_one();
    Ok(count)
}

#[server(prefix = "/srv", endpoint = "signing")]
pub async fn get_signing(ws: String) -> Result<SigningView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let row = domain::signing::settings(&ctx.db, &access.workspace_id(), ctx.clock.now())
        .await
        .map_err(fail)?;
    let can_manage = access.role.allows(Capability::Administer);
    Ok(SigningView {
        enabled: row.enabled,
        masked: format!("{}••••••••", &row.secret[..row.secret.len().min(10)]),
        secret: can_manage.then(|| row.secret.clone()),
        previous_until: row
            .previous_until
            .filter(|u| *u > ctx.clock.now())
            .map(when),
        can_manage,
    })
}

#[server(prefix = "/srv", endpoint = "set_signing")]
pub async fn set_signing(ws: String, enabled: bool) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    domain::signing::set_enabled(&ctx.db, &access.workspace_id(), enabled, ctx.clock.now())
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "rotate_signing")]
pub async fn rotate_signing(ws: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    domain::signing::rotate(&ctx.db, &access.workspace_id(), ctx.clock.now())
        .await
        .map_err(fail)?;
    Ok(())
}
