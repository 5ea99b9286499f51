//! Segments (saved audience filters), and on PostgreSQL the lenient time parser that segment
//! conditions on time attributes use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000006_segment"
    }
}

#[derive(DeriveIden)]
enum Segment {
    Table,
    WorkspaceId,
    Id,
    Name,
    Description,
    Filter,
    CreatedAt,
    UpdatedAt,
    ArchivedAt,
}

/// Reads a custom attribute string as a time, or NULL when it is not one, so that one odd value
/// never makes a whole segment query fail (a plain cast raises an error). It accepts what SQLite's
/// `julianday` accepts: `YYYY-MM-DD`, optionally a time, optionally an offset; no offset means
/// UTC. Words PostgreSQL would read as times ('now', 'today') are refused, as SQLite's side does.
const TIMESTAMPTZ_FUNCTION: &str = r"
CREATE OR REPLACE FUNCTION herald_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF value !~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)?$' THEN
        RETURN NULL;
    END IF;
    IF value ~ '[T ]\d' AND value ~ '(Z|z|[+-]\d{2}(:?\d{2})?)$' THEN
        RETURN value::timestamptz;
    END IF;
    RETURN value::timestamp AT TIME ZONE 'UTC';
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Segment::Table)
                    .col(
                        ColumnDef::new(Segment::WorkspaceId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Segment::Id).string_len(36).not_null())
                    .col(ColumnDef::new(Segment::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Segment::Description).text().not_null())
                    .col(ColumnDef::new(Segment::Filter).text().not_null())
                    .col(
                        ColumnDef::new(Segment::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Segment::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Segment::ArchivedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(Index::create().col(Segment::WorkspaceId).col(Segment::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("segment_by_name")
                    .table(Segment::Table)
                    .col(Segment::WorkspaceId)
                    .col(Segment::Name)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(TIMESTAMPTZ_FUNCTION)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS herald_timestamptz(text)")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Segment::Table).to_owned())
            .await
    }
}
