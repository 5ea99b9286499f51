//! The journey engine: claims journeys whose time has come (leased, `SKIP LOCKED` on PostgreSQL)
//! and runs each through its steps until it must wait (a Delay, Action Paths) or ends. Every
//! transition is one transaction conditional on the journey's `seq` and lease, and a Message
//! step's send is written in the same transaction as the move past it, so a crash repeats
//! nothing and loses no one.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::DomainResult;

/// Advances up to `limit` due journeys (`active` with `wake_at <= now`, and `waiting` whose Action
/// Paths window ran out); returns how many were advanced.
pub async fn advance_due<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    todo!()
}
