//! Fixed-window request counters kept in the database, so every Herald process on one database
//! shares one limit per bucket (an API key, or a client address for unauthenticated calls).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::DomainResult;
use crate::entity::rate_window;

/// The outcome of counting one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub limit: u64,
    pub remaining: u64,
    /// When the current window ends, in UTC epoch seconds.
    pub reset_at: i64,
    pub allowed: bool,
}

/// Counts a request against `bucket` in a window of `window_secs` allowing `limit` requests.
pub async fn hit(
    db: &impl ConnectionTrait,
    bucket: &str,
    limit: u64,
    window_secs: u64,
    now: DateTime<Utc>,
) -> DomainResult<RateDecision> {
    let window = window_secs.max(1) as i64;
    let start = now.timestamp().div_euclid(window) * window;
    let insert = Query::insert()
        .into_table(rate_window::Entity)
        .columns([
            rate_window::Column::Bucket,
            rate_window::Column::WindowStart,
            rate_window::Column::Hits,
        ])
        .values_panic([bucket.into(), start.into(), 1i64.into()])
        .on_conflict(
            OnConflict::columns([
                rate_window::Column::Bucket,
                rate_window::Column::WindowStart,
            ])
            .value(
                rate_window::Column::Hits,
                Expr::col((rate_window::Entity, rate_window::Column::Hits)).add(1),
            )
            .to_owned(),
        )
        .returning_col(rate_window::Column::Hits)
        .to_owned();
    let row = db
        .query_one(db.get_database_backend().build(&insert))
        .await?;
    let hits: i64 = match row {
        Some(row) => row.try_get("", "hits")?,
        None => 1,
    };
    if hits == 1 {
        // First request of a new window: forget this bucket's older windows.
        rate_window::Entity::delete_many()
            .filter(rate_window::Column::Bucket.eq(bucket))
            .filter(rate_window::Column::WindowStart.lt(start))
            .exec(db)
            .await?;
    }
    let hits = hits.max(0) as u64;
    Ok(RateDecision {
        limit,
        remaining: limit.saturating_sub(hits),
        reset_at: start + window,
        allowed: hits <= limit,
    })
}
