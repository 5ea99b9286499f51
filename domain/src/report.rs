//! Pieces the campaign and Canvas analytics share: raw SQL written once for both databases, and
//! time buckets labelled in SQL and read back in Rust.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::DomainResult;
use crate::campaign::Bucket;

/// Runs `sql` written with `?` placeholders, numbered `$1, $2, ...` for PostgreSQL.
pub(crate) async fn query(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> DomainResult<Vec<sea_orm::QueryResult>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(c);
                }
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    Ok(db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?)
}

/// A SQL count as a count (never negative).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The SQL that formats `column` (a time; on SQLite also a Julian day number) as its bucket's
/// label in UTC.
pub(crate) fn bucket_label(backend: DbBackend, bucket: Bucket, column: &str) -> String {
    match (backend, bucket) {
        (DbBackend::Postgres, Bucket::Hour) => {
            format!("to_char(date_trunc('hour', {column} AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24')")
        }
        (DbBackend::Postgres, Bucket::Day) => {
            format!("to_char(date_trunc('day', {column} AT TIME ZONE 'UTC'), 'YYYY-MM-DD')")
        }
        (_, Bucket::Hour) => format!("strftime('%Y-%m-%d %H', {column})"),
        (_, Bucket::Day) => format!("strftime('%Y-%m-%d', {column})"),
    }
}

/// Reads a bucket label (`2026-11-28 09` or `2026-11-28`) back as its start.
pub(crate) fn bucket_start(label: &str, bucket: Bucket) -> Option<DateTime<Utc>> {
    match bucket {
        Bucket::Hour => NaiveDateTime::parse_from_str(&format!("{label}:00"), "%Y-%m-%d %H:%M")
            .ok()
            .map(|t| t.and_utc()),
        Bucket::Day => NaiveDate::parse_from_str(label, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn bucket_labels_read_back_as_the_start_of_their_hour_or_day() {
        assert_eq!(
            bucket_start("2026-11-28 09", Bucket::Hour),
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap())
        );
        assert_eq!(
            bucket_start("2026-11-28", Bucket::Day),
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap())
        );
        assert_eq!(bucket_start("garbage", Bucket::Day), None);
    }
}
