//! Dashboard sessions live in Herald's own database, whichever backend it is, so they survive
//! restarts and are shared by every process.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The session store over sea-orm's own connection pool.
#[derive(Clone, Debug)]
pub enum DbSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DbSessionStore {
    /// Opens the store on `db` and creates its table if needed. On PostgreSQL the table goes into the
    /// connection's current schema, next to Herald's other tables.
    pub async fn open(
        db: &DatabaseConnection,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        match db.get_database_backend() {
            DbBackend::Postgres => {
                let row = db
                    .query_one(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT current_schema() AS s",
                    ))
                    .await?
                    .ok_or("no current schema")?;
                let schema: String = row.try_get("", "s")?;
                let store = PostgresStore::new(db.get_postgres_connection_pool().clone())
                    .with_schema_name(schema)?
                    .with_table_name("tower_session")?;
                store.migrate().await?;
                Ok(Self::Postgres(store))
            }
            _ => {
                let store = SqliteStore::new(db.get_sqlite_connection_pool().clone());
                store.migrate().await?;
                Ok(Self::Sqlite(store))
            }
        }
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.create(record).await,
            Self::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.save(record).await,
            Self::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(s) => s.load(id).await,
            Self::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete(id).await,
            Self::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete_expired().await,
            Self::Postgres(s) => s.delete_expired().await,
        }
    }
}
