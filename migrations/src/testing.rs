//! Fresh, fully migrated databases for tests: an in-memory SQLite always, and a PostgreSQL schema of
//! its own per call when `TEST_DATABASE_URL` is set, so tests never see each other's rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm_migration::sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::{Migrator, MigratorTrait};

/// A migrated in-memory SQLite database. One connection, so every query sees the same memory.
pub async fn fresh_sqlite() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        // Segments' matches_regex needs SQLite's REGEXP function.
        .map_sqlx_sqlite_opts(|o| o.with_regexp());
    let db = Database::connect(options)
        .await
        .expect("open in-memory SQLite");
    Migrator::up(&db, None).await.expect("migrate SQLite");
    db
}

/// A migrated SQLite database in a file of its own, for tests that abort a task mid-query: sqlx
/// closes a connection whose query was cancelled, and an in-memory database goes with it, where a
/// file survives, as it does when a real process crashes.
pub async fn fresh_sqlite_file() -> DatabaseConnection {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join("herald-tests");
    std::fs::create_dir_all(&dir).expect("create the test database directory");
    let path = dir.join(format!(
        "{}-{}.db",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .max_connections(4)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| o.with_regexp());
    let db = Database::connect(options)
        .await
        .expect("open the SQLite test file");
    Migrator::up(&db, None).await.expect("migrate SQLite");
    db
}

/// A new, migrated schema in the PostgreSQL database at `url`.
pub async fn fresh_postgres(url: &str) -> DatabaseConnection {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin = Database::connect(url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .expect("create test schema");
    admin.close().await.ok();
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(5)
        .set_schema_search_path(schema)
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .expect("connect to the test schema");
    Migrator::up(&db, None).await.expect("migrate PostgreSQL");
    db
}

/// Every database the integration tests should run on: SQLite, plus PostgreSQL when
/// `TEST_DATABASE_URL` is set.
pub async fn test_databases() -> Vec<DatabaseConnection> {
    let mut dbs = vec![fresh_sqlite().await];
    if let Some(url) = postgres_url() {
        dbs.push(fresh_postgres(&url).await);
    }
    dbs
}

/// Like [`test_databases`], with SQLite in a file, for tests that simulate a crash.
pub async fn durable_test_databases() -> Vec<DatabaseConnection> {
    let mut dbs = vec![fresh_sqlite_file().await];
    if let Some(url) = postgres_url() {
        dbs.push(fresh_postgres(&url).await);
    }
    dbs
}

/// `TEST_DATABASE_URL`, when set and not empty.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}
