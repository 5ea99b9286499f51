//! Leased claims, shared by the campaign and Canvas runners: rows are claimed with a short
//! conditional UPDATE that sets a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), and every later
//! write is conditional on that lease, so several processes share the work and one that lost its
//! lease writes nothing more.
//!
//! Scheduled occurrences (`campaign_occurrence`, `canvas_occurrence`) are fired page by page: each
//! page of the audience is written in one transaction together with the occurrence's cursor (the
//! last profile id done) and count, on the condition that the lease is still this process's. A
//! process that dies mid-way leaves the cursor at the last committed page; whoever claims the
//! occurrence after the lease runs out resumes after it.
//!
//! A batch of claimed rows is run one after the other: one failing does not hold up the others
//! ([`Tally`]), and only database errors stop it ([`usable`]).

use std::marker::PhantomData;
use std::time::Instant;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, IdenStatic,
    QueryFilter, Statement, TransactionTrait, UpdateMany, Value,
};

use crate::campaign::Pages;
use crate::entity::profile;
use crate::{DomainError, DomainResult, WorkspaceId};

/// How long a claim is held; an occurrence renews it with every page.
pub(crate) const LEASE: TimeDelta = TimeDelta::seconds(60);

/// Occurrence statuses as stored.
pub(crate) mod status {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const CANCELLED: &str = "cancelled";
}

/// Times are kept to the millisecond so both databases give back what was written (conditional
/// updates compare leases, and unique indexes due times, for equality).
pub(crate) fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

/// The lease to take or renew now: `LEASE` past the caller's `now` plus the time spent since
/// `started`, so a long run keeps renewing its lease while `now` stays the one instant its writes
/// are stamped with.
fn lease_until(now: DateTime<Utc>, started: Instant) -> DateTime<Utc> {
    let elapsed = TimeDelta::from_std(started.elapsed()).unwrap_or(TimeDelta::zero());
    to_millis(now + elapsed + LEASE)
}

/// Only database errors stop a batch: any other error (an archived segment, a definition that no
/// longer reads) makes the thing unusable, `None`, so it is passed over rather than holding up the
/// rest (and, for events, the inbox).
pub(crate) fn usable<T>(result: DomainResult<T>) -> DomainResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(DomainError::Db(error)) => Err(DomainError::Db(error)),
        Err(_) => Ok(None),
    }
}

/// What a batch of claimed items came to: how many finished, and the first error. One item
/// failing does not hold up the others: it stays claimed until its lease runs out, and the first
/// error is returned after all were tried.
#[derive(Default)]
pub(crate) struct Tally {
    finished: usize,
    first_error: Option<DomainError>,
}

impl Tally {
    /// Counts one item's result (`true`: it finished).
    pub fn add(&mut self, result: DomainResult<bool>) {
        match result {
            Ok(true) => self.finished += 1,
            Ok(false) => {}
            Err(error) => {
                self.first_error.get_or_insert(error);
            }
        }
    }

    /// How many finished, or the first error.
    pub fn result(self) -> DomainResult<usize> {
        self.first_error.map_or(Ok(self.finished), Err)
    }
}

/// A table of scheduled occurrences: unique per owner (a campaign, a Canvas) and due time,
/// `pending`, `running` (under a lease), `done` or `cancelled`, with a cursor and a count.
pub(crate) trait OccurrenceTable: EntityTrait {
    /// The owner's table; its `status` must satisfy [`Self::FIRING`] for an occurrence to fire.
    const OWNER: &'static str;
    /// The SQL condition on the owner's status (`c.status …`).
    const FIRING: &'static str;
    const WORKSPACE_ID: Self::Column;
    const ID: Self::Column;
    /// The owner's id.
    const OWNER_ID: Self::Column;
    const STATUS: Self::Column;
    const LEASE_UNTIL: Self::Column;
    const COMPLETED_AT: Self::Column;
    /// The dispatch id the occurrence's sends carry, when it has one of its own.
    const DISPATCH_ID: Option<Self::Column>;
    const CURSOR: Self::Column;
    /// Whom the occurrence reached so far (queued, entered).
    const COUNT: Self::Column;

    /// Whether the owner may fire now (read inside each page's transaction, so an owner stopped
    /// mid-way gets no further page).
    async fn may_fire(
        db: &impl ConnectionTrait,
        occurrence: &Occurrence<Self>,
    ) -> DomainResult<bool>;
}

/// A claimed occurrence of table `T`, as this process last wrote it.
pub(crate) struct Occurrence<T> {
    pub ws: WorkspaceId,
    pub id: String,
    /// The campaign's or the Canvas's id.
    pub owner: String,
    pub due_at: DateTime<Utc>,
    pub dispatch_id: Option<String>,
    pub cursor: Option<String>,
    pub count: i64,
    /// The lease this process holds; every write to the row is conditional on it.
    pub lease: DateTime<Utc>,
    table: PhantomData<T>,
}

/// Claims up to `limit` due occurrences of owners that may fire: pending ones, and running ones
/// whose process let the lease run out. Earliest first.
pub(crate) async fn claim<T: OccurrenceTable>(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<Vec<Occurrence<T>>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let lease = to_millis(now + LEASE);
    let backend = db.get_database_backend();
    let entity = T::default();
    let table = entity.table_name();
    let choose = format!(
        "SELECT o.workspace_id, o.id FROM {table} o \
         WHERE o.due_at <= {{now}} \
           AND ((o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until <= {{now}})) \
             OR (o.status = 'running' AND o.lease_until <= {{now}})) \
           AND EXISTS (SELECT 1 FROM {owner} c WHERE c.workspace_id = o.workspace_id \
             AND c.id = o.{owner_id} AND c.status {firing}) \
         ORDER BY o.due_at LIMIT {{limit}}",
        owner = T::OWNER,
        owner_id = T::OWNER_ID.as_str(),
        firing = T::FIRING,
    );
    let dispatch_id = T::DISPATCH_ID.map_or(String::new(), |c| format!("{}, ", c.as_str()));
    let returning = format!(
        "RETURNING workspace_id, id, {}, due_at, {dispatch_id}cursor, {}",
        T::OWNER_ID.as_str(),
        T::COUNT.as_str()
    );
    let (sql, values): (String, Vec<Value>) = match backend {
        DbBackend::Postgres => (
            format!(
                "UPDATE {table} SET status = 'running', lease_until = $1 \
                 WHERE (workspace_id, id) IN ({} FOR UPDATE OF o SKIP LOCKED) {returning}",
                choose.replace("{now}", "$2").replace("{limit}", "$3")
            ),
            vec![lease.into(), now.into(), (limit as i64).into()],
        ),
        _ => (
            format!(
                "UPDATE {table} SET status = 'running', lease_until = ? \
                 WHERE (workspace_id, id) IN ({}) {returning}",
                choose.replace("{now}", "?").replace("{limit}", "?")
            ),
            // SQLite numbers `?` in order of appearance: the lease, `now` three times, the limit.
            vec![
                lease.into(),
                now.into(),
                now.into(),
                now.into(),
                (limit as i64).into(),
            ],
        ),
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        claimed.push(Occurrence {
            ws: WorkspaceId::from_db(row.try_get("", "workspace_id")?),
            id: row.try_get("", "id")?,
            owner: row.try_get("", T::OWNER_ID.as_str())?,
            due_at: row.try_get("", "due_at")?,
            dispatch_id: match T::DISPATCH_ID {
                Some(column) => Some(row.try_get("", column.as_str())?),
                None => None,
            },
            cursor: row.try_get("", "cursor")?,
            count: row.try_get("", T::COUNT.as_str())?,
            lease,
            table: PhantomData,
        });
    }
    claimed.sort_by_key(|o| o.due_at);
    Ok(claimed)
}

/// What [`Occurrence::next_page`] found.
pub(crate) enum Page {
    /// A page of members to write in this transaction.
    Members(DatabaseTransaction, Vec<profile::Model>),
    /// No more members (or the count reached its maximum): the occurrence may finish.
    Done,
    /// The lease was lost or the owner stopped: the occurrence did not finish.
    Lost,
}

impl<T: OccurrenceTable> Occurrence<T> {
    /// The occurrence row, only while this process still holds it.
    fn held(&self) -> UpdateMany<T> {
        T::update_many()
            .filter(T::WORKSPACE_ID.eq(self.ws.as_str()))
            .filter(T::ID.eq(self.id.as_str()))
            .filter(T::STATUS.eq(status::RUNNING))
            .filter(T::LEASE_UNTIL.eq(self.lease))
    }

    /// Gives the occurrence up: `pending` (it fires when its owner may fire again) or
    /// `cancelled`. `false`: the occurrence did not finish.
    pub async fn let_go(
        &self,
        db: &impl ConnectionTrait,
        to: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<bool> {
        let completed = (to == status::CANCELLED).then(|| to_millis(now));
        self.held()
            .col_expr(T::STATUS, Expr::value(to))
            .col_expr(T::LEASE_UNTIL, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(T::COMPLETED_AT, Expr::value(completed))
            .exec(db)
            .await?;
        Ok(false)
    }

    /// The next page of `pages` (which start at the occurrence's cursor), in a transaction of its
    /// own: the page is read first, then the transaction begins with [`Occurrence::begin_page`].
    /// Done once the count reaches `max`.
    pub async fn next_page<C: ConnectionTrait + TransactionTrait>(
        &mut self,
        db: &C,
        pages: &mut Pages<'_>,
        max: Option<u64>,
        now: DateTime<Utc>,
        started: Instant,
    ) -> DomainResult<Page> {
        let Some(members) = self.read_page(db, pages, max).await? else {
            return Ok(Page::Done);
        };
        match self.begin_page(db, now, started).await? {
            Some(txn) => Ok(Page::Members(txn, members)),
            None => Ok(Page::Lost),
        }
    }

    /// The next page of members, read outside any transaction; `None` once they ran out or the
    /// count reached `max`. Reading ahead of the page's transaction is safe: the page is written
    /// only if [`Occurrence::begin_page`] then finds the lease still this process's, and while it
    /// is, nobody else moves the cursor the page was read from.
    pub async fn read_page(
        &self,
        db: &impl ConnectionTrait,
        pages: &mut Pages<'_>,
        max: Option<u64>,
    ) -> DomainResult<Option<Vec<profile::Model>>> {
        if pages.done() || max.is_some_and(|max| u64::try_from(self.count).unwrap_or(0) >= max) {
            return Ok(None);
        }
        pages.next(db).await
    }

    /// Begins a page's transaction: renews the lease and checks that the owner may still fire
    /// (else the occurrence is let go, `pending`). `None`: the page must not be written.
    pub async fn begin_page(
        &mut self,
        db: &impl TransactionTrait,
        now: DateTime<Utc>,
        started: Instant,
    ) -> DomainResult<Option<DatabaseTransaction>> {
        let txn = db.begin().await?;
        // The lease is renewed first: on PostgreSQL the UPDATE locks the row until this page
        // commits, on SQLite it takes the write lock; either way no other process moves the
        // cursor meanwhile.
        let renewed = lease_until(now, started);
        let held_still = self
            .held()
            .col_expr(T::LEASE_UNTIL, Expr::value(renewed))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !held_still {
            // Another process took over after our lease ran out: it goes on from the cursor.
            return Ok(None);
        }
        self.lease = renewed;
        if !T::may_fire(&txn, self).await? {
            self.let_go(&txn, status::PENDING, now).await?;
            txn.commit().await?;
            return Ok(None);
        }
        Ok(Some(txn))
    }

    /// Saves the cursor (where `pages` stand) and the count (`reached` more) after a page, in its
    /// transaction, and commits it.
    pub async fn save_page(
        &mut self,
        txn: DatabaseTransaction,
        pages: &Pages<'_>,
        reached: u64,
    ) -> DomainResult<()> {
        self.count += i64::try_from(reached).unwrap_or(i64::MAX);
        self.cursor = pages.after().map(str::to_owned);
        self.held()
            .col_expr(T::CURSOR, Expr::value(self.cursor.clone()))
            .col_expr(T::COUNT, Expr::value(self.count))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Marks the occurrence `done`, in the caller's transaction; `false` when this process no
    /// longer holds it.
    pub async fn finish(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> DomainResult<bool> {
        Ok(self
            .held()
            .col_expr(T::STATUS, Expr::value(status::DONE))
            .col_expr(T::COMPLETED_AT, Expr::value(to_millis(now)))
            .col_expr(T::LEASE_UNTIL, Expr::value(Option::<DateTime<Utc>>::None))
            .exec(db)
            .await?
            .rows_affected
            == 1)
    }
}
