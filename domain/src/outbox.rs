//! The outbox: sends are written here before any request is made, and read back for the Activity
//! log. The engine's dispatcher claims from it; people re-send failed sends from it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Set, Statement,
};
use serde::{Deserialize, Serialize};

use crate::entity::{webhook_attempt, webhook_send};
use crate::template::RenderContext;
use crate::webhook::WebhookMessage;
use crate::{DomainError, DomainResult, SendId, WorkspaceId};

/// Where a send comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A test send from the composer.
    Test,
    /// The messaging API (`/messages/send`, API campaigns).
    Api,
    Campaign,
    Canvas,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Test => "test",
            SourceKind::Api => "api",
            SourceKind::Campaign => "campaign",
            SourceKind::Canvas => "canvas",
        }
    }
}

/// Send statuses as stored.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
    pub const ABORTED: &str = "aborted";
}

/// A send to persist.
#[derive(Clone, Debug)]
pub struct NewSend {
    pub workspace_id: WorkspaceId,
    pub source_kind: SourceKind,
    pub source_id: Option<String>,
    pub source_name: Option<String>,
    pub recipient: Option<String>,
    pub message: WebhookMessage,
    pub context: RenderContext,
    /// When the first attempt is due; `None` means at once. Local-time schedules and delayed
    /// triggers queue sends ahead of time.
    pub due_at: Option<DateTime<Utc>>,
    /// Campaign tracking; all `None` outside campaigns.
    pub tracking: Tracking,
}

/// What a send belongs to, for campaign analytics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracking {
    /// The campaign variant (`message_variation_id`).
    pub variant_id: Option<String>,
    /// The transmission (`dispatch_id`).
    pub dispatch_id: Option<String>,
    /// The caller's Braze `send_id`.
    pub send_tag: Option<String>,
}

/// Rows per INSERT statement, well under SQLite's and PostgreSQL's bind-parameter limits.
const INSERT_CHUNK: usize = 500;

/// Persists sends, due now. The caller wraps this in its transaction when the sends must appear
/// together with other rows (a campaign launch, say).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    sends: Vec<NewSend>,
    now: DateTime<Utc>,
) -> DomainResult<Vec<SendId>> {
    enqueue_limited(db, sends, None, now).await
}

/// Like [`enqueue`], for a source with a delivery-speed limit: the engine sends at most
/// `rate_per_minute` of the source's sends (same kind and id) per minute, whatever the backlog.
pub async fn enqueue_limited(
    db: &impl ConnectionTrait,
    sends: Vec<NewSend>,
    rate_per_minute: Option<u32>,
    now: DateTime<Utc>,
) -> DomainResult<Vec<SendId>> {
    prepare_sends(db.get_database_backend(), sends, rate_per_minute, now)?
        .execute(db)
        .await
}

/// Sends turned into INSERT statements, ready to run: [`prepare_sends`] does the work that needs
/// no database (ids, JSON, SQL text), so a caller can do it before it opens a transaction and hold
/// the connection (SQLite has one) only while the rows are written.
#[derive(Debug, Default)]
pub struct PreparedSends {
    statements: Vec<Statement>,
    ids: Vec<SendId>,
}

impl PreparedSends {
    /// Writes the sends (in the caller's transaction, if any).
    pub async fn execute(self, db: &impl ConnectionTrait) -> DomainResult<Vec<SendId>> {
        for statement in self.statements {
            db.execute(statement).await?;
        }
        Ok(self.ids)
    }
}

/// Prepares [`enqueue_limited`]'s rows for `backend` without touching the database.
pub fn prepare_sends(
    backend: DbBackend,
    sends: Vec<NewSend>,
    rate_per_minute: Option<u32>,
    now: DateTime<Utc>,
) -> DomainResult<PreparedSends> {
    if rate_per_minute == Some(0) {
        return Err(DomainError::invalid(
            "rate_limit",
            "must be at least 1 message per minute",
        ));
    }
    let rate = rate_per_minute.map(|r| i32::try_from(r).unwrap_or(i32::MAX));
    let mut prepared = PreparedSends {
        statements: Vec::with_capacity(sends.len().div_ceil(INSERT_CHUNK)),
        ids: Vec::with_capacity(sends.len()),
    };
    let mut rows = Vec::with_capacity(sends.len().min(INSERT_CHUNK));
    // The sends of one campaign page or trigger mostly carry the same message: it is serialized
    // once per run of equal messages, not once per send.
    let mut last_message: Option<(WebhookMessage, String)> = None;
    for send in sends {
        let id = SendId::generate();
        let message = match &last_message {
            Some((message, json)) if *message == send.message => json.clone(),
            _ => {
                let json = serde_json::to_string(&send.message).expect("messages serialize");
                last_message = Some((send.message, json.clone()));
                json
            }
        };
        rows.push(webhook_send::ActiveModel {
            workspace_id: Set(send.workspace_id.to_string()),
            id: Set(id.to_string()),
            source_kind: Set(send.source_kind.as_str().into()),
            source_id: Set(send.source_id),
            source_name: Set(send.source_name),
            recipient: Set(send.recipient),
            message: Set(message),
            context: Set(serde_json::to_string(&send.context).expect("contexts serialize")),
            request: Set(None),
            host: Set(None),
            status: Set(status::PENDING.into()),
            lane: Set(0),
            attempts: Set(0),
            next_attempt_at: Set(send.due_at.map_or(now, |due| due.max(now))),
            lease_until: Set(None),
            first_attempt_at: Set(None),
            created_at: Set(now),
            completed_at: Set(None),
            last_status_code: Set(None),
            last_error: Set(None),
            rate_per_minute: Set(rate),
            variant_id: Set(send.tracking.variant_id),
            dispatch_id: Set(send.tracking.dispatch_id),
            send_tag: Set(send.tracking.send_tag),
        });
        prepared.ids.push(id);
        if rows.len() == INSERT_CHUNK {
            prepared
                .statements
                .push(webhook_send::Entity::insert_many(std::mem::take(&mut rows)).build(backend));
        }
    }
    if !rows.is_empty() {
        prepared
            .statements
            .push(webhook_send::Entity::insert_many(rows).build(backend));
    }
    Ok(prepared)
}

pub async fn find_send(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &SendId,
) -> DomainResult<webhook_send::Model> {
    webhook_send::Entity::find_by_id((workspace.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("send"))
}

/// Holds back every pending send of one source until `until` (its rate limit is spent for the
/// current minute), except those another process holds right now.
pub async fn defer_source(
    db: &impl ConnectionTrait,
    source_kind: &str,
    source_id: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let result = webhook_send::Entity::update_many()
        .col_expr(webhook_send::Column::NextAttemptAt, Expr::value(until))
        .filter(webhook_send::Column::SourceKind.eq(source_kind))
        .filter(webhook_send::Column::SourceId.eq(source_id))
        .filter(webhook_send::Column::Status.eq(status::PENDING))
        .filter(webhook_send::Column::NextAttemptAt.lt(until))
        .filter(
            sea_orm::Condition::any()
                .add(webhook_send::Column::LeaseUntil.is_null())
                .add(webhook_send::Column::LeaseUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Filters of the Activity log.
#[derive(Clone, Debug, Default)]
pub struct SendFilter {
    pub status: Option<String>,
    pub source_kind: Option<String>,
    /// Only sends of this campaign or Canvas (with `source_kind`).
    pub source_id: Option<String>,
    pub host: Option<String>,
    /// Only sends to this recipient (external id).
    pub recipient: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: u64,
}

/// The workspace's sends, newest first.
pub async fn list_sends(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    filter: &SendFilter,
) -> DomainResult<Vec<webhook_send::Model>> {
    let mut query = webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(workspace.as_str()));
    if let Some(status) = &filter.status {
        query = query.filter(webhook_send::Column::Status.eq(status.as_str()));
    }
    if let Some(kind) = &filter.source_kind {
        query = query.filter(webhook_send::Column::SourceKind.eq(kind.as_str()));
    }
    if let Some(id) = &filter.source_id {
        query = query.filter(webhook_send::Column::SourceId.eq(id.as_str()));
    }
    if let Some(host) = &filter.host {
        query = query.filter(webhook_send::Column::Host.eq(host.as_str()));
    }
    if let Some(recipient) = &filter.recipient {
        query = query.filter(webhook_send::Column::Recipient.eq(recipient.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(webhook_send::Column::CreatedAt.gte(since));
    }
    Ok(query
        .order_by_desc(webhook_send::Column::CreatedAt)
        .limit(filter.limit.clamp(1, 500))
        .all(db)
        .await?)
}

/// Every attempt of one send, in order.
pub async fn attempts_of(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &SendId,
) -> DomainResult<Vec<webhook_attempt::Model>> {
    Ok(webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::WorkspaceId.eq(workspace.as_str()))
        .filter(webhook_attempt::Column::SendId.eq(id.as_str()))
        .order_by_asc(webhook_attempt::Column::Number)
        .all(db)
        .await?)
}

/// Puts failed sends back in line for a fresh series of attempts (same send id, so receivers can
/// still de-duplicate). `only` limits it to one send; otherwise every failed send created since
/// `since`. Returns how many were re-queued.
pub async fn resend_failed(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    only: Option<&SendId>,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let mut update = webhook_send::Entity::update_many()
        .col_expr(webhook_send::Column::Status, Expr::value(status::PENDING))
        .col_expr(webhook_send::Column::Lane, Expr::value(0i16))
        .col_expr(webhook_send::Column::NextAttemptAt, Expr::value(now))
        .col_expr(
            webhook_send::Column::FirstAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_send::Column::CompletedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_send::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_send::Column::WorkspaceId.eq(workspace.as_str()))
        .filter(webhook_send::Column::Status.eq(status::FAILED));
    if let Some(id) = only {
        update = update.filter(webhook_send::Column::Id.eq(id.as_str()));
    }
    if let Some(since) = since {
        update = update.filter(webhook_send::Column::CreatedAt.gte(since));
    }
    let result = update.exec(db).await?;
    if only.is_some() && result.rows_affected == 0 {
        return Err(DomainError::invalid(
            "send",
            "only failed sends can be re-sent",
        ));
    }
    Ok(result.rows_affected)
}

/// Hosts currently paused for failing too much, among those this workspace sends to (hosts are
/// shared across workspaces, so others' destinations are never shown).
pub async fn paused_hosts(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> DomainResult<Vec<crate::entity::host_state::Model>> {
    use crate::entity::host_state;
    let paused = host_state::Entity::find()
        .filter(host_state::Column::PausedUntil.gt(now))
        .order_by_asc(host_state::Column::Host)
        .all(db)
        .await?;
    if paused.is_empty() {
        return Ok(paused);
    }
    let hosts: Vec<String> = paused.iter().map(|h| h.host.clone()).collect();
    let mine: Vec<Option<String>> = webhook_send::Entity::find()
        .select_only()
        .column(webhook_send::Column::Host)
        .distinct()
        .filter(webhook_send::Column::WorkspaceId.eq(workspace.as_str()))
        .filter(webhook_send::Column::Host.is_in(hosts))
        .into_tuple()
        .all(db)
        .await?;
    Ok(paused
        .into_iter()
        .filter(|h| mine.iter().flatten().any(|m| *m == h.host))
        .collect())
}

/// Sends created per hour since `since`, by status, for the Activity chart: `(hour, status, count)`
/// with `hour` as `YYYY-MM-DD HH` (UTC).
pub async fn hourly_counts(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    since: DateTime<Utc>,
) -> DomainResult<Vec<(String, String, i64)>> {
    use sea_orm::{DbBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT to_char(date_trunc('hour', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24') AS hour, \
             status, COUNT(*)::bigint AS n FROM webhook_send \
             WHERE workspace_id = $1 AND created_at >= $2 GROUP BY 1, 2"
        }
        _ => {
            "SELECT strftime('%Y-%m-%d %H', created_at) AS hour, status, COUNT(*) AS n FROM webhook_send \
             WHERE workspace_id = ? AND created_at >= ? GROUP BY 1, 2"
        }
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(
            backend,
            sql,
            [workspace.as_str().into(), since.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get("", "hour")?,
                row.try_get("", "status")?,
                row.try_get("", "n")?,
            ))
        })
        .collect()
}
