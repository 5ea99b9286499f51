//! Braze's `/messages/send` for the webhook channel: a webhook object sent now to listed users, a
//! segment or a Connected Audience. Every recipient's send is written to the outbox (personalised
//! with the recipient's attributes) before the engine makes any request.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Map, Value};

use crate::outbox::{NewSend, SourceKind};
use crate::webhook::{Body, Method, WebhookMessage};
use crate::{DomainError, DomainResult, ProfileId, WorkspaceId};

/// At most this many listed recipients per request, as in Braze.
pub const MAX_LISTED_RECIPIENTS: usize = 50;
/// Segment members are written to the outbox this many at a time.
const PAGE: u64 = 1000;

/// The outcome of a send request.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// Identifies this send in the Activity log and in `{{campaign.${dispatch_id}}}`.
    pub dispatch_id: String,
    pub recipients: usize,
    /// Listed external ids that matched no user (nothing is sent to them).
    pub unknown_recipients: Vec<String>,
}

fn bad(field: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::invalid(field, message)
}

/// Reads Braze's `messages.webhook` object: `url`, `request_method`, `request_headers`, `body`.
pub fn webhook_from_braze(messages: Option<&Value>) -> DomainResult<WebhookMessage> {
    let webhook = messages.and_then(|m| m.get("webhook")).ok_or_else(|| {
        bad(
            "messages",
            "No message to send: give a messages.webhook object",
        )
    })?;
    let object = webhook
        .as_object()
        .ok_or_else(|| bad("messages.webhook", "must be an object"))?;
    let url = object
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("messages.webhook.url", "is required"))?;
    let method = match object.get("request_method") {
        None | Some(Value::Null) => Method::Post,
        Some(Value::String(m)) => Method::parse(m).map_err(|_| {
            bad(
                "messages.webhook.request_method",
                "must be GET, POST, PUT, PATCH or DELETE",
            )
        })?,
        Some(_) => return Err(bad("messages.webhook.request_method", "must be a string")),
    };
    let headers = match object.get("request_headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Ok((k.clone(), other.to_string())),
            })
            .collect::<DomainResult<Vec<_>>>()?,
        Some(_) => {
            return Err(bad(
                "messages.webhook.request_headers",
                "must be an object of header names to values",
            ));
        }
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Body::None,
        Some(Value::String(text)) => Body::Raw { text: text.clone() },
        Some(other @ (Value::Object(_) | Value::Array(_))) => Body::Raw {
            text: other.to_string(),
        },
        Some(_) => return Err(bad("messages.webhook.body", "must be a string")),
    };
    let message = WebhookMessage {
        method,
        url: url.to_string(),
        headers,
        body,
    };
    message.compile()?;
    Ok(message)
}

/// Who a send goes to.
pub enum Audience {
    /// Listed users (external ids), optionally narrowed to those matching a filter.
    Listed {
        external_ids: Vec<String>,
        within: Option<crate::segment::Filter>,
    },
    /// Every user matching a filter (a segment or a Connected Audience).
    Broadcast(crate::segment::Filter),
}

/// Sends `message` now to `audience`, tracked under `source_id` (the dispatch id unless a
/// campaign id is given).
/// All recipients are written in one transaction: a failure (or a client giving up) leaves
/// nothing queued, so a retried request cannot reach anyone twice.
pub async fn send_now<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    workspace: &WorkspaceId,
    message: &WebhookMessage,
    audience: Audience,
    now: DateTime<Utc>,
) -> DomainResult<Dispatch> {
    let txn = db.begin().await?;
    let dispatch = queue_sends(&txn, workspace, message, audience, now).await?;
    txn.commit().await?;
    Ok(dispatch)
}

async fn queue_sends(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    message: &WebhookMessage,
    audience: Audience,
    now: DateTime<Utc>,
) -> DomainResult<Dispatch> {
    let dispatch_id = uuid::Uuid::new_v4().simple().to_string();
    let mut campaign = Map::new();
    campaign.insert("dispatch_id".into(), Value::String(dispatch_id.clone()));
    campaign.insert("name".into(), Value::String("API send".into()));
    let send_for = |profile: &crate::entity::profile::Model| {
        let mut context = crate::profile::render_context(profile);
        context.campaign = campaign.clone();
        NewSend {
            workspace_id: workspace.clone(),
            source_kind: SourceKind::Api,
            source_id: Some(dispatch_id.clone()),
            source_name: Some("messages/send".into()),
            recipient: profile.external_id.clone(),
            message: message.clone(),
            context,
            due_at: None,
            tracking: crate::outbox::Tracking {
                dispatch_id: Some(dispatch_id.clone()),
                ..Default::default()
            },
        }
    };
    let mut recipients = 0;
    let mut unknown = Vec::new();
    match audience {
        Audience::Listed {
            external_ids,
            within,
        } => {
            if external_ids.len() > MAX_LISTED_RECIPIENTS {
                return Err(bad(
                    "external_user_ids",
                    "The max number of external_ids and aliases per request was exceeded (50)",
                ));
            }
            let mut sends = Vec::new();
            for external_id in external_ids {
                match crate::profile::find_by_external_id(db, workspace, &external_id).await? {
                    Some(profile) => sends.push((profile, external_id)),
                    None => unknown.push(external_id),
                }
            }
            if let Some(filter) = within {
                // Each listed user is checked against the filter with one indexed count.
                let mut kept = Vec::new();
                for (profile, id) in sends {
                    let this_user = crate::segment::Filter::And {
                        filters: vec![
                            filter.clone(),
                            crate::segment::Filter::Attribute {
                                name: "external_id".into(),
                                custom: false,
                                comparison: crate::segment::Comparison::Equals,
                                value: Value::String(id.clone()),
                            },
                        ],
                    };
                    if crate::segment::count(db, workspace, &this_user, now).await? > 0 {
                        kept.push((profile, id));
                    }
                }
                sends = kept;
            }
            recipients = sends.len();
            let sends = sends.iter().map(|(p, _)| send_for(p)).collect();
            crate::outbox::enqueue(db, sends, now).await?;
        }
        Audience::Broadcast(filter) => {
            let mut after: Option<ProfileId> = None;
            loop {
                let page =
                    crate::segment::members(db, workspace, &filter, now, PAGE, after.as_ref())
                        .await?;
                let Some(last) = page.last() else { break };
                after = Some(ProfileId::from_db(last.id.clone()));
                recipients += page.len();
                crate::outbox::enqueue(db, page.iter().map(send_for).collect(), now).await?;
                if (page.len() as u64) < PAGE {
                    break;
                }
            }
        }
    }
    Ok(Dispatch {
        dispatch_id,
        recipients,
        unknown_recipients: unknown,
    })
}
