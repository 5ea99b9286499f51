//! The workspace's library of webhook templates.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000004_webhook_template"
    }
}

#[derive(DeriveIden)]
enum WebhookTemplate {
    Table,
    WorkspaceId,
    Id,
    Name,
    Message,
    CreatedAt,
    UpdatedAt,
    ArchivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookTemplate::Table)
                    .col(
                        ColumnDef::new(WebhookTemplate::WorkspaceId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookTemplate::Id)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookTemplate::Name)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookTemplate::Message).text().not_null())
                    .col(
                        ColumnDef::new(WebhookTemplate::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookTemplate::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookTemplate::ArchivedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(WebhookTemplate::WorkspaceId)
                            .col(WebhookTemplate::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookTemplate::Table).to_owned())
            .await
    }
}
