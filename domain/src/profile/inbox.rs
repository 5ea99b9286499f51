//! The event inbox: tracked events and purchases waiting for their listeners (action-based
//! campaigns, Canvas entries). Listeners claim rows under a lease with a conditional UPDATE (and
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL), act, then mark them handled; a row whose lease ran
//! out (its process died) is claimed again, so every event is handled at least once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, Value,
};
use serde_json::{Map, Value as Json};

use super::{EventKind, to_millis};
use crate::entity::event_inbox;
use crate::{DomainResult, ProfileId, WorkspaceId};

/// Names one inbox row (the same id as its event or purchase row).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboxKey {
    pub workspace_id: WorkspaceId,
    pub id: String,
}

/// A claimed inbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxItem {
    pub key: InboxKey,
    pub kind: EventKind,
    pub profile_id: ProfileId,
    /// The event name, or the product id of a purchase.
    pub name: String,
    pub time: DateTime<Utc>,
    pub properties: Map<String, Json>,
    /// The claim holds until then.
    pub claimed_until: DateTime<Utc>,
}

/// Claims up to `limit` unhandled rows whose lease is free, oldest first, for `lease`.
pub async fn claim_inbox(
    db: &impl ConnectionTrait,
    limit: usize,
    lease: Duration,
    now: DateTime<Utc>,
) -> DomainResult<Vec<InboxItem>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let until = to_millis(now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX));
    let backend = db.get_database_backend();
    let (sql, values): (&str, Vec<Value>) = match backend {
        DbBackend::Postgres => (
            "UPDATE event_inbox SET claimed_until = $1 WHERE (workspace_id, id) IN ( \
               SELECT workspace_id, id FROM event_inbox \
               WHERE handled_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $2) \
               ORDER BY created_at, time LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING workspace_id, id, kind, profile_id, name, time, properties",
            vec![until.into(), now.into(), (limit as i64).into()],
        ),
        _ => (
            "UPDATE event_inbox SET claimed_until = ? WHERE (workspace_id, id) IN ( \
               SELECT workspace_id, id FROM event_inbox \
               WHERE handled_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?) \
               ORDER BY created_at, time LIMIT ?) \
             RETURNING workspace_id, id, kind, profile_id, name, time, properties",
            vec![until.into(), now.into(), (limit as i64).into()],
        ),
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("", "kind")?;
        let properties: String = row.try_get("", "properties")?;
        items.push(InboxItem {
            key: InboxKey {
                workspace_id: WorkspaceId::from_db(row.try_get("", "workspace_id")?),
                id: row.try_get("", "id")?,
            },
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Event),
            profile_id: ProfileId::from_db(row.try_get("", "profile_id")?),
            name: row.try_get("", "name")?,
            time: row.try_get("", "time")?,
            properties: serde_json::from_str(&properties).unwrap_or_default(),
            claimed_until: until,
        });
    }
    items.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.key.id.cmp(&b.key.id)));
    Ok(items)
}

/// Marks rows handled: they are never claimed again. Returns how many rows changed.
pub async fn mark_handled(
    db: &impl ConnectionTrait,
    ids: &[InboxKey],
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let mut by_workspace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in ids {
        by_workspace
            .entry(key.workspace_id.as_str())
            .or_default()
            .push(key.id.as_str());
    }
    let mut changed = 0;
    for (ws, ids) in by_workspace {
        changed += event_inbox::Entity::update_many()
            .col_expr(event_inbox::Column::HandledAt, Expr::value(to_millis(now)))
            .col_expr(
                event_inbox::Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(event_inbox::Column::WorkspaceId.eq(ws))
            .filter(event_inbox::Column::Id.is_in(ids))
            .filter(event_inbox::Column::HandledAt.is_null())
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(changed)
}
