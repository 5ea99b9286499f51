//! The delivery engine's tables: the outbox of webhook sends, one row per attempt, and per-host
//! circuit-breaker state.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000002_delivery"
    }
}

#[derive(DeriveIden)]
enum WebhookSend {
    Table,
    WorkspaceId,
    Id,
    SourceKind,
    SourceId,
    SourceName,
    Recipient,
    Message,
    Context,
    Request,
    Host,
    Status,
    Lane,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    FirstAttemptAt,
    CreatedAt,
    CompletedAt,
    LastStatusCode,
    LastError,
    RatePerMinute,
}

#[derive(DeriveIden)]
enum WebhookAttempt {
    Table,
    WorkspaceId,
    SendId,
    Number,
    StartedAt,
    DurationMs,
    StatusCode,
    ErrorKind,
    Error,
    ResponseHeaders,
    ResponseBody,
    Outcome,
}

#[derive(DeriveIden)]
enum HostState {
    Table,
    Host,
    WindowStart,
    Failures,
    PausedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let ts = |c: WebhookSend| ColumnDef::new(c).timestamp_with_time_zone().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(WebhookSend::Table)
                    .col(
                        ColumnDef::new(WebhookSend::WorkspaceId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookSend::Id).string_len(36).not_null())
                    .col(
                        ColumnDef::new(WebhookSend::SourceKind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookSend::SourceId).string_len(36).null())
                    .col(
                        ColumnDef::new(WebhookSend::SourceName)
                            .string_len(200)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookSend::Recipient)
                            .string_len(254)
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookSend::Message).text().not_null())
                    .col(ColumnDef::new(WebhookSend::Context).text().not_null())
                    .col(ColumnDef::new(WebhookSend::Request).text().null())
                    .col(ColumnDef::new(WebhookSend::Host).string_len(255).null())
                    .col(
                        ColumnDef::new(WebhookSend::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookSend::Lane)
                            .small_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WebhookSend::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts(WebhookSend::NextAttemptAt).not_null())
                    .col(ts(WebhookSend::LeaseUntil).null())
                    .col(ts(WebhookSend::FirstAttemptAt).null())
                    .col(ts(WebhookSend::CreatedAt).not_null())
                    .col(ts(WebhookSend::CompletedAt).null())
                    .col(ColumnDef::new(WebhookSend::LastStatusCode).integer().null())
                    .col(ColumnDef::new(WebhookSend::LastError).text().null())
                    .col(ColumnDef::new(WebhookSend::RatePerMinute).integer().null())
                    .primary_key(
                        Index::create()
                            .col(WebhookSend::WorkspaceId)
                            .col(WebhookSend::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The dispatcher claims due pending sends in time order, first attempts and retries from
        // separate lanes so a backlog of retries never starves new sends.
        manager
            .create_index(
                Index::create()
                    .name("webhook_send_due")
                    .table(WebhookSend::Table)
                    .col(WebhookSend::Status)
                    .col(WebhookSend::Lane)
                    .col(WebhookSend::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_send_by_workspace_time")
                    .table(WebhookSend::Table)
                    .col(WebhookSend::WorkspaceId)
                    .col(WebhookSend::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempt::Table)
                    .col(
                        ColumnDef::new(WebhookAttempt::WorkspaceId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookAttempt::SendId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookAttempt::Number).integer().not_null())
                    .col(
                        ColumnDef::new(WebhookAttempt::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookAttempt::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookAttempt::StatusCode).integer().null())
                    .col(
                        ColumnDef::new(WebhookAttempt::ErrorKind)
                            .string_len(32)
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookAttempt::Error).text().null())
                    .col(
                        ColumnDef::new(WebhookAttempt::ResponseHeaders)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookAttempt::ResponseBody)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookAttempt::Outcome)
                            .string_len(16)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(WebhookAttempt::WorkspaceId)
                            .col(WebhookAttempt::SendId)
                            .col(WebhookAttempt::Number),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HostState::Table)
                    .col(
                        ColumnDef::new(HostState::Host)
                            .string_len(255)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(HostState::WindowStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(HostState::Failures).big_integer().not_null())
                    .col(
                        ColumnDef::new(HostState::PausedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            HostState::Table.into_iden(),
            WebhookAttempt::Table.into_iden(),
            WebhookSend::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
