//! What a send belongs to beyond its source: the campaign variant, the dispatch (one launch, one
//! trigger call) and the caller's Braze `send_id`, so campaign analytics read one indexed table.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000007_send_tracking"
    }
}

#[derive(DeriveIden)]
enum WebhookSend {
    Table,
    WorkspaceId,
    Recipient,
    SourceKind,
    SourceId,
    CreatedAt,
    VariantId,
    DispatchId,
    SendTag,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            WebhookSend::VariantId,
            WebhookSend::DispatchId,
            WebhookSend::SendTag,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookSend::Table)
                        .add_column(ColumnDef::new(column).string_len(64).null())
                        .to_owned(),
                )
                .await?;
        }
        // Frequency caps count a user's recent sends.
        manager
            .create_index(
                Index::create()
                    .name("webhook_send_by_recipient")
                    .table(WebhookSend::Table)
                    .col(WebhookSend::WorkspaceId)
                    .col(WebhookSend::Recipient)
                    .col(WebhookSend::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Campaign analytics and live progress read a source's sends by time.
        manager
            .create_index(
                Index::create()
                    .name("webhook_send_by_source")
                    .table(WebhookSend::Table)
                    .col(WebhookSend::WorkspaceId)
                    .col(WebhookSend::SourceKind)
                    .col(WebhookSend::SourceId)
                    .col(WebhookSend::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("webhook_send_by_recipient")
                    .table(WebhookSend::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("webhook_send_by_source")
                    .table(WebhookSend::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            WebhookSend::SendTag,
            WebhookSend::DispatchId,
            WebhookSend::VariantId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookSend::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
