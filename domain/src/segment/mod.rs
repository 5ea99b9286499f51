//! Segments: saved audiences defined by a filter (nested AND/OR groups of conditions on
//! attributes, events, purchases, a random bucket and the time zone), counted and listed by the
//! database through the filter compiled to SQL.

mod compile;
mod connected_audience;
mod filter;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set, Statement,
};

use crate::entity::{profile, segment};
use crate::{DomainError, DomainResult, ProfileId, SegmentId, WorkspaceId, validate};

pub use compile::{compile, random_bucket};
pub use connected_audience::from_connected_audience;
pub use filter::{
    Comparison, CountComparison, Filter, MAX_BUCKET, MAX_CONDITIONS, MAX_DEPTH, MAX_TEXT_LENGTH,
    STANDARD_ATTRIBUTES,
};

/// Longest segment name.
pub const MAX_NAME_LENGTH: usize = 100;
/// Longest segment description.
pub const MAX_DESCRIPTION_LENGTH: usize = 1000;

/// A saved segment with its filter decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub id: SegmentId,
    pub name: String,
    pub description: String,
    pub filter: Filter,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

fn decode(model: segment::Model) -> DomainResult<Segment> {
    let filter = serde_json::from_str(&model.filter)
        .map_err(|e| DomainError::invalid("filter", format!("stored filter unreadable: {e}")))?;
    Ok(Segment {
        id: SegmentId::from_db(model.id),
        name: model.name,
        description: model.description,
        filter,
        created_at: model.created_at,
        updated_at: model.updated_at,
        archived_at: model.archived_at,
    })
}

/// Checks what a segment is saved with; returns the trimmed name and description and the filter
/// as JSON.
fn checked(
    name: &str,
    description: &str,
    filter: &Filter,
) -> DomainResult<(String, String, String)> {
    let name = validate::name("name", name, MAX_NAME_LENGTH)?;
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_LENGTH {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LENGTH} characters"),
        ));
    }
    filter.validate()?;
    let json = serde_json::to_string(filter).expect("filters serialize");
    Ok((name, description.to_owned(), json))
}

/// Saves a new segment.
pub async fn create(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    name: &str,
    description: &str,
    filter: &Filter,
    now: DateTime<Utc>,
) -> DomainResult<Segment> {
    let (name, description, json) = checked(name, description, filter)?;
    let model = segment::ActiveModel {
        workspace_id: Set(ws.to_string()),
        id: Set(SegmentId::generate().into_string()),
        name: Set(name),
        description: Set(description),
        filter: Set(json),
        created_at: Set(now),
        updated_at: Set(now),
        archived_at: Set(None),
    }
    .insert(db)
    .await?;
    decode(model)
}

/// Changes a segment's name, description and filter.
pub async fn update(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &SegmentId,
    name: &str,
    description: &str,
    filter: &Filter,
    now: DateTime<Utc>,
) -> DomainResult<Segment> {
    let (name, description, json) = checked(name, description, filter)?;
    let mut row = find_row(db, ws, id).await?.into_active_model();
    row.name = Set(name);
    row.description = Set(description);
    row.filter = Set(json);
    row.updated_at = Set(now);
    decode(row.update(db).await?)
}

/// Archives a segment: it leaves the lists (and Braze's `/segments/list`) but stays readable.
pub async fn archive(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &SegmentId,
    now: DateTime<Utc>,
) -> DomainResult<Segment> {
    set_archived(db, ws, id, Some(now), now).await
}

/// Brings an archived segment back.
pub async fn unarchive(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &SegmentId,
    now: DateTime<Utc>,
) -> DomainResult<Segment> {
    set_archived(db, ws, id, None, now).await
}

async fn set_archived(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &SegmentId,
    archived_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DomainResult<Segment> {
    let mut row = find_row(db, ws, id).await?.into_active_model();
    row.archived_at = Set(archived_at);
    row.updated_at = Set(now);
    decode(row.update(db).await?)
}

/// The workspace's segments by name; archived ones only when asked, after the others.
pub async fn list(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    include_archived: bool,
) -> DomainResult<Vec<Segment>> {
    let mut select = segment::Entity::find().filter(segment::Column::WorkspaceId.eq(ws.as_str()));
    if !include_archived {
        select = select.filter(segment::Column::ArchivedAt.is_null());
    }
    let rows = select
        .order_by_asc(segment::Column::Name)
        .order_by_asc(segment::Column::Id)
        .all(db)
        .await?;
    let mut segments = rows
        .into_iter()
        .map(decode)
        .collect::<DomainResult<Vec<_>>>()?;
    segments.sort_by_key(|s| s.archived_at.is_some());
    Ok(segments)
}

/// One segment of the workspace (archived or not).
pub async fn find(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &SegmentId,
) -> DomainResult<Segment> {
    decode(find_row(db, ws, id).await?)
}

async fn find_row(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &SegmentId,
) -> DomainResult<segment::Model> {
    segment::Entity::find_by_id((ws.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("segment"))
}

/// How many profiles of the workspace match `filter` at `now` (the live size while editing).
pub async fn count(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &Filter,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let backend = db.get_database_backend();
    let mut sql = compile::Sql::new(backend);
    sql.text
        .push_str("SELECT COUNT(*) AS n FROM profile p WHERE ");
    compile::compile_into(&mut sql, filter, ws, now)?;
    let row = db
        .query_one(Statement::from_sql_and_values(
            backend, sql.text, sql.values,
        ))
        .await
        .map_err(|e| explain(backend, filter, e))?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Up to `limit` matching profiles ordered by id, starting after `after_id`: page through a
/// segment of any size (for sending, or a member list) by passing the last id of each page.
pub async fn members(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &Filter,
    now: DateTime<Utc>,
    limit: u64,
    after_id: Option<&ProfileId>,
) -> DomainResult<Vec<profile::Model>> {
    let backend = db.get_database_backend();
    let mut sql = compile::Sql::new(backend);
    sql.text.push_str("SELECT p.* FROM profile p WHERE ");
    compile::compile_into(&mut sql, filter, ws, now)?;
    if let Some(after) = after_id {
        sql.text.push_str(" AND p.id > ");
        sql.bind(after.as_str());
    }
    sql.text.push_str(" ORDER BY p.id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    profile::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend, sql.text, sql.values,
        ))
        .all(db)
        .await
        .map_err(|e| explain(backend, filter, e))
}

/// A clearer error when SQLite has no `REGEXP` function for a regex condition.
fn explain(backend: DbBackend, filter: &Filter, error: DbErr) -> DomainError {
    if backend == DbBackend::Sqlite
        && filter.uses_regex()
        && error.to_string().to_ascii_lowercase().contains("regexp")
    {
        return DomainError::invalid(
            "filter",
            "regular expressions need SQLite's REGEXP function, which this server's database \
             connection does not register",
        );
    }
    DomainError::Db(error)
}
