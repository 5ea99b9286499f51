//! Per-workspace webhook signing secrets (Standard Webhooks), with the previous secret kept valid
//! for a while after a rotation.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000003_signing"
    }
}

#[derive(DeriveIden)]
enum WorkspaceSigning {
    Table,
    WorkspaceId,
    Enabled,
    Secret,
    PreviousSecret,
    PreviousUntil,
    RotatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WorkspaceSigning::Table)
                    .col(
                        ColumnDef::new(WorkspaceSigning::WorkspaceId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WorkspaceSigning::Enabled)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(WorkspaceSigning::Secret)
                            .string_len(80)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WorkspaceSigning::PreviousSecret)
                            .string_len(80)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WorkspaceSigning::PreviousUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WorkspaceSigning::RotatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WorkspaceSigning::Table).to_owned())
            .await
    }
}
