//! Fixed-window request counters kept in the database, so every Herald process on one database
//! shares one limit per bucket (an API key, or a client address for unauthenticated calls).
//! [`hit`] writes once per request; [`RateLimiter`] counts in memory and writes in batches, for
//! hot paths such as the REST API.

use std::collections::HashMap;

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
    let hits = add_hits(db, bucket, start, 1).await?;
    let hits = hits.max(0) as u64;
    Ok(RateDecision {
        limit,
        remaining: limit.saturating_sub(hits),
        reset_at: start + window,
        allowed: hits <= limit,
    })
}

/// Adds `count` hits to the bucket's counter for the window starting at `start` and returns the
/// counter's new value.
async fn add_hits(
    db: &impl ConnectionTrait,
    bucket: &str,
    start: i64,
    count: u64,
) -> DomainResult<i64> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let insert = Query::insert()
        .into_table(rate_window::Entity)
        .columns([
            rate_window::Column::Bucket,
            rate_window::Column::WindowStart,
            rate_window::Column::Hits,
        ])
        .values_panic([bucket.into(), start.into(), count.into()])
        .on_conflict(
            OnConflict::columns([
                rate_window::Column::Bucket,
                rate_window::Column::WindowStart,
            ])
            .value(
                rate_window::Column::Hits,
                Expr::col((rate_window::Entity, rate_window::Column::Hits)).add(count),
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
        None => count,
    };
    if hits == count {
        // The first hits of a new window: forget this bucket's older windows.
        rate_window::Entity::delete_many()
            .filter(rate_window::Column::Bucket.eq(bucket))
            .filter(rate_window::Column::WindowStart.lt(start))
            .exec(db)
            .await?;
    }
    Ok(hits)
}

/// The largest share of a bucket's remaining allowance (1/16) one process counts in memory
/// before writing it to the database.
const UNWRITTEN_SHARE: u64 = 16;
/// Counts kept in memory are written at least this often while requests keep coming.
const WRITE_EVERY_SECS: i64 = 1;
/// Buckets kept in memory before those of past windows are dropped.
const MEMORY_BUCKETS: usize = 4_096;

/// The same fixed-window counters as [`hit`], counted in this process's memory and written to the
/// database in batches rather than once per request.
///
/// A bucket's first request in a window reads (and adds to) the shared counter, as [`hit`] does.
/// Later requests are counted here and the count is written when it reaches 1/16 of the
/// allowance left (so every request is written once fewer than 16 remain), or after a second.
/// With one process the decisions are exactly those of [`hit`]. With `P` processes on one
/// database, each one has at most `max(1, remaining / 16)` requests per bucket that the others
/// have not seen yet, so a bucket admits at most `(P - 1) / 16` of its limit more than the limit
/// (e.g. 10% over with three processes), never unboundedly more. Counts not yet written when a
/// process stops are lost, which only ever errs towards admitting.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: std::sync::Mutex<HashMap<String, BucketCount>>,
}

#[derive(Clone, Copy, Debug)]
struct BucketCount {
    window_start: i64,
    window_end: i64,
    /// The database's count as last read back (it includes everything this process wrote).
    shared: u64,
    /// Counted here and being written.
    writing: u64,
    /// Counted here and not written yet.
    unwritten: u64,
    /// Whether the database's count for this window was read at all.
    known: bool,
    last_write: DateTime<Utc>,
}

impl BucketCount {
    fn count(&self) -> u64 {
        self.shared
            .saturating_add(self.writing)
            .saturating_add(self.unwritten)
    }
}

impl RateLimiter {
    /// Counts a request against `bucket` in a window of `window_secs` allowing `limit` requests,
    /// as [`hit`] does, writing to `db` only now and then (see the type's documentation).
    pub async fn hit(
        &self,
        db: &impl ConnectionTrait,
        bucket: &str,
        limit: u64,
        window_secs: u64,
        now: DateTime<Utc>,
    ) -> DomainResult<RateDecision> {
        let window = window_secs.max(1) as i64;
        let start = now.timestamp().div_euclid(window) * window;
        let decision = |count: u64| RateDecision {
            limit,
            remaining: limit.saturating_sub(count),
            reset_at: start + window,
            allowed: count <= limit,
        };
        let to_write = {
            let mut buckets = self.lock();
            if buckets.len() >= MEMORY_BUCKETS {
                let second = now.timestamp();
                buckets.retain(|_, count| count.window_end > second);
            }
            let count = buckets
                .entry(bucket.to_owned())
                .or_insert_with(|| fresh(start, window, now));
            if count.window_start != start {
                *count = fresh(start, window, now);
            }
            count.unwritten += 1;
            let share = (limit.saturating_sub(count.count()) / UNWRITTEN_SHARE).max(1);
            let due = !count.known
                || count.unwritten >= share
                || (now - count.last_write).num_seconds() >= WRITE_EVERY_SECS;
            if !due {
                return Ok(decision(count.count()));
            }
            let delta = count.unwritten;
            count.unwritten = 0;
            count.writing += delta;
            count.last_write = now;
            delta
        };
        let written = add_hits(db, bucket, start, to_write).await;
        let mut buckets = self.lock();
        let count = buckets
            .entry(bucket.to_owned())
            .or_insert_with(|| fresh(start, window, now));
        if count.window_start != start {
            // The window moved on while writing: this request still belongs to its own.
            return written.map(|hits| decision(hits.max(0) as u64));
        }
        count.writing = count.writing.saturating_sub(to_write);
        match written {
            Ok(hits) => {
                count.shared = count.shared.max(hits.max(0) as u64);
                count.known = true;
                Ok(decision(count.count()))
            }
            Err(error) => {
                // Counted again with the next write.
                count.unwritten += to_write;
                Err(error)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BucketCount>> {
        // Counts stay consistent under a panic elsewhere (each update is a few assignments).
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn fresh(start: i64, window: i64, now: DateTime<Utc>) -> BucketCount {
    BucketCount {
        window_start: start,
        window_end: start + window,
        shared: 0,
        writing: 0,
        unwritten: 0,
        known: false,
        last_write: now,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use migrations::testing::test_databases;

    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap() + chrono::Duration::seconds(second)
    }

    async fn stored_hits(db: &impl ConnectionTrait, bucket: &str) -> i64 {
        rate_window::Entity::find()
            .filter(rate_window::Column::Bucket.eq(bucket))
            .all(db)
            .await
            .unwrap()
            .iter()
            .map(|w| w.hits)
            .sum()
    }

    #[tokio::test]
    async fn a_small_limit_is_counted_exactly_and_shared_with_other_processes() {
        for db in test_databases().await {
            let (this, other) = (RateLimiter::default(), RateLimiter::default());
            let mut remaining = Vec::new();
            for _ in 0..3 {
                let decision = this.hit(&db, "key:a", 5, 60, at(1)).await.unwrap();
                assert!(decision.allowed);
                remaining.push(decision.remaining);
            }
            assert_eq!(remaining, [4, 3, 2]);
            // Another process sees this one's requests (and this one sees the other's).
            assert_eq!(
                other
                    .hit(&db, "key:a", 5, 60, at(2))
                    .await
                    .unwrap()
                    .remaining,
                1
            );
            let last = this.hit(&db, "key:a", 5, 60, at(3)).await.unwrap();
            assert_eq!((last.allowed, last.remaining), (true, 0));
            let refused = this.hit(&db, "key:a", 5, 60, at(4)).await.unwrap();
            assert!(!refused.allowed);
            assert_eq!(refused.reset_at, at(60).timestamp());
            // A new window starts afresh.
            let fresh = this.hit(&db, "key:a", 5, 60, at(61)).await.unwrap();
            assert_eq!((fresh.allowed, fresh.remaining), (true, 4));
        }
    }

    #[tokio::test]
    async fn a_large_limit_is_counted_in_memory_and_written_now_and_then() {
        for db in test_databases().await {
            let limiter = RateLimiter::default();
            for _ in 0..100 {
                let decision = limiter
                    .hit(&db, "key:b", 1_000_000, 60, at(1))
                    .await
                    .unwrap();
                assert!(decision.allowed);
            }
            let decision = limiter
                .hit(&db, "key:b", 1_000_000, 60, at(1))
                .await
                .unwrap();
            assert_eq!(decision.remaining, 1_000_000 - 101);
            // Only the window's first request was written so far...
            assert_eq!(stored_hits(&db, "key:b").await, 1);
            // ...and a second later the rest is.
            limiter
                .hit(&db, "key:b", 1_000_000, 60, at(2))
                .await
                .unwrap();
            assert_eq!(stored_hits(&db, "key:b").await, 102);
        }
    }
}
