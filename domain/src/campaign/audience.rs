//! Audiences, shared by campaigns and Canvases: the one filter that segments AND an extra filter
//! stand for, which listed profiles match it now, and paging through its members.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::model::AudienceSpec;
use crate::entity::profile;
use crate::segment::Filter;
use crate::{DomainError, DomainResult, ProfileId, SegmentId, WorkspaceId};

/// Audience members are read and written this many at a time.
pub(crate) const PAGE: u64 = 1000;
/// Ids per `IN (…)` list.
pub(crate) const ID_CHUNK: usize = 500;

/// The filter an audience stands for: every listed segment's filter AND the extra filter;
/// everyone when both are empty. Unknown or archived segments are an error on
/// `audience.segment_ids`.
pub(crate) async fn audience_filter(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    audience: &AudienceSpec,
) -> DomainResult<Filter> {
    filter_of(
        db,
        ws,
        "audience.segment_ids",
        &audience.segment_ids,
        audience.filter.as_ref(),
    )
    .await
}

/// [`audience_filter`] of any segments and extra filter, its errors on `field`.
pub(crate) async fn filter_of(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    field: &'static str,
    segment_ids: &[SegmentId],
    extra: Option<&Filter>,
) -> DomainResult<Filter> {
    let mut filters = Vec::new();
    for id in segment_ids {
        let segment = crate::segment::find(db, ws, id)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => {
                    DomainError::invalid(field, format!("no segment {id} in this workspace"))
                }
                other => other,
            })?;
        if segment.archived_at.is_some() {
            return Err(DomainError::invalid(
                field,
                format!("segment \u{201c}{}\u{201d} is archived", segment.name),
            ));
        }
        push_condition(&mut filters, segment.filter);
    }
    if let Some(extra) = extra {
        push_condition(&mut filters, extra.clone());
    }
    Ok(all_of(filters))
}

/// `filters` joined with AND as one root filter.
pub(crate) fn all_of(mut filters: Vec<Filter>) -> Filter {
    match filters.len() {
        1 => filters.remove(0),
        _ => Filter::And { filters },
    }
}

/// Adds one condition to an AND: an empty group (a segment of everyone) adds nothing, and an
/// AND's members join directly, so combining segments never nests an empty group (which
/// validation refuses) nor deepens the tree past its limit.
pub(crate) fn push_condition(filters: &mut Vec<Filter>, filter: Filter) {
    match filter {
        Filter::And { filters: inner } => {
            for f in inner {
                push_condition(filters, f);
            }
        }
        Filter::Or { filters: inner } if inner.is_empty() => {}
        other => filters.push(other),
    }
}

/// Which of these profiles (by id) match `filter` now: one query per 500 ids, the filter compiled
/// to SQL and narrowed to the ids.
pub(crate) async fn in_audience(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &Filter,
    profile_ids: &[String],
    now: DateTime<Utc>,
) -> DomainResult<HashSet<String>> {
    let backend = db.get_database_backend();
    let mut members = HashSet::new();
    for chunk in profile_ids.chunks(ID_CHUNK) {
        let (condition, mut values) = crate::segment::compile(filter, backend, ws, now)?;
        let mut sql = format!("SELECT p.id AS id FROM profile p WHERE ({condition}) AND p.id IN (");
        for (index, id) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push_str(", ");
            }
            values.push(Value::from(id.as_str()));
            // The compiled condition numbers its PostgreSQL placeholders from 1; ours follow.
            match backend {
                DbBackend::Postgres => sql.push_str(&format!("${}", values.len())),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
        let rows = db
            .query_all(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for row in rows {
            members.insert(row.try_get::<String>("", "id")?);
        }
    }
    Ok(members)
}

/// Whether one profile matches `filter` now (one indexed query).
pub(crate) async fn is_member(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    filter: &Filter,
    profile_id: &str,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    let members = in_audience(db, ws, filter, &[profile_id.to_owned()], now).await?;
    Ok(!members.is_empty())
}

/// The members of a filter now, a page of [`PAGE`] at a time in profile id order, each read
/// with the connection (or transaction) given.
pub(crate) struct Pages<'a> {
    ws: &'a WorkspaceId,
    filter: &'a Filter,
    now: DateTime<Utc>,
    /// The last profile id read.
    after: Option<String>,
    /// A page came back short (or empty): there is no next one.
    done: bool,
}

impl<'a> Pages<'a> {
    /// The pages of `filter`'s members after profile id `after` (from the first when `None`).
    pub fn new(
        ws: &'a WorkspaceId,
        filter: &'a Filter,
        now: DateTime<Utc>,
        after: Option<String>,
    ) -> Self {
        Self {
            ws,
            filter,
            now,
            after,
            done: false,
        }
    }

    /// The next page, `None` once the members ran out.
    pub async fn next(
        &mut self,
        db: &impl ConnectionTrait,
    ) -> DomainResult<Option<Vec<profile::Model>>> {
        if self.done {
            return Ok(None);
        }
        let after = self.after.clone().map(ProfileId::from_db);
        let page =
            crate::segment::members(db, self.ws, self.filter, self.now, PAGE, after.as_ref())
                .await?;
        let Some(last) = page.last() else {
            self.done = true;
            return Ok(None);
        };
        self.after = Some(last.id.clone());
        self.done = page.len() as u64 != PAGE;
        Ok(Some(page))
    }

    /// Whether the members ran out.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The last profile id read.
    pub fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }
}
