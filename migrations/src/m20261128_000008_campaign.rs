//! Campaigns: their definitions, the occurrences of scheduled ones, who received what (for
//! re-eligibility and sticky variants), scheduled API sends, Braze send ids and the workspace's
//! frequency-capping rules.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000008_campaign"
    }
}

#[derive(DeriveIden)]
enum Campaign {
    Table,
    WorkspaceId,
    Id,
    Name,
    Description,
    Tags,
    Kind,
    DeliveryType,
    TriggerEvent,
    Status,
    Definition,
    Version,
    CreatedAt,
    UpdatedAt,
    LaunchedAt,
    StoppedAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
enum CampaignOccurrence {
    Table,
    WorkspaceId,
    Id,
    CampaignId,
    DueAt,
    Status,
    LeaseUntil,
    DispatchId,
    Cursor,
    Recipients,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum CampaignReceipt {
    Table,
    WorkspaceId,
    CampaignId,
    ProfileId,
    VariantId,
    FirstReceivedAt,
    LastReceivedAt,
    Receipts,
}

#[derive(DeriveIden)]
enum ScheduledMessage {
    Table,
    WorkspaceId,
    Id,
    CampaignId,
    Kind,
    Payload,
    SendAt,
    InLocalTime,
    Status,
    LeaseUntil,
    DispatchId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CampaignSendTag {
    Table,
    WorkspaceId,
    CampaignId,
    SendTag,
    CreatedAt,
}

#[derive(DeriveIden)]
enum FrequencyCapRule {
    Table,
    WorkspaceId,
    Id,
    Tag,
    MaxSends,
    WindowSeconds,
    CreatedAt,
}

fn id(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string_len(36).not_null().to_owned()
}

fn time(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaign::Table)
                    .col(id(Campaign::WorkspaceId))
                    .col(id(Campaign::Id))
                    .col(ColumnDef::new(Campaign::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Campaign::Description).text().not_null())
                    // JSON array of strings.
                    .col(ColumnDef::new(Campaign::Tags).text().not_null())
                    // `webhook` or `api`.
                    .col(ColumnDef::new(Campaign::Kind).string_len(16).not_null())
                    // `scheduled`, `action` or `api`.
                    .col(
                        ColumnDef::new(Campaign::DeliveryType)
                            .string_len(16)
                            .not_null(),
                    )
                    // The custom event name (or `purchase`) an action-based campaign listens to.
                    .col(
                        ColumnDef::new(Campaign::TriggerEvent)
                            .string_len(255)
                            .null(),
                    )
                    .col(ColumnDef::new(Campaign::Status).string_len(16).not_null())
                    // JSON of the variants, delivery, audience, conversions and settings.
                    .col(ColumnDef::new(Campaign::Definition).text().not_null())
                    .col(ColumnDef::new(Campaign::Version).integer().not_null())
                    .col(time(Campaign::CreatedAt).not_null())
                    .col(time(Campaign::UpdatedAt).not_null())
                    .col(time(Campaign::LaunchedAt).null())
                    .col(time(Campaign::StoppedAt).null())
                    .col(time(Campaign::ArchivedAt).null())
                    .primary_key(Index::create().col(Campaign::WorkspaceId).col(Campaign::Id))
                    .to_owned(),
            )
            .await?;
        // Action-based campaigns are looked up by the event that arrived.
        manager
            .create_index(
                Index::create()
                    .name("campaign_by_trigger")
                    .table(Campaign::Table)
                    .col(Campaign::WorkspaceId)
                    .col(Campaign::TriggerEvent)
                    .col(Campaign::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CampaignOccurrence::Table)
                    .col(id(CampaignOccurrence::WorkspaceId))
                    .col(id(CampaignOccurrence::Id))
                    .col(id(CampaignOccurrence::CampaignId))
                    .col(time(CampaignOccurrence::DueAt).not_null())
                    // `pending`, `running`, `done` or `cancelled`.
                    .col(
                        ColumnDef::new(CampaignOccurrence::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(CampaignOccurrence::LeaseUntil).null())
                    .col(
                        ColumnDef::new(CampaignOccurrence::DispatchId)
                            .string_len(64)
                            .not_null(),
                    )
                    // The last profile id written to the outbox, so a crashed dispatch resumes.
                    .col(
                        ColumnDef::new(CampaignOccurrence::Cursor)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(CampaignOccurrence::Recipients)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(CampaignOccurrence::CreatedAt).not_null())
                    .col(time(CampaignOccurrence::CompletedAt).null())
                    .primary_key(
                        Index::create()
                            .col(CampaignOccurrence::WorkspaceId)
                            .col(CampaignOccurrence::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One occurrence per campaign and due time, whichever process computes it.
        manager
            .create_index(
                Index::create()
                    .name("campaign_occurrence_once")
                    .table(CampaignOccurrence::Table)
                    .col(CampaignOccurrence::WorkspaceId)
                    .col(CampaignOccurrence::CampaignId)
                    .col(CampaignOccurrence::DueAt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("campaign_occurrence_due")
                    .table(CampaignOccurrence::Table)
                    .col(CampaignOccurrence::Status)
                    .col(CampaignOccurrence::DueAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CampaignReceipt::Table)
                    .col(id(CampaignReceipt::WorkspaceId))
                    .col(id(CampaignReceipt::CampaignId))
                    .col(id(CampaignReceipt::ProfileId))
                    .col(
                        ColumnDef::new(CampaignReceipt::VariantId)
                            .string_len(36)
                            .null(),
                    )
                    .col(time(CampaignReceipt::FirstReceivedAt).not_null())
                    .col(time(CampaignReceipt::LastReceivedAt).not_null())
                    .col(
                        ColumnDef::new(CampaignReceipt::Receipts)
                            .integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(CampaignReceipt::WorkspaceId)
                            .col(CampaignReceipt::CampaignId)
                            .col(CampaignReceipt::ProfileId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScheduledMessage::Table)
                    .col(id(ScheduledMessage::WorkspaceId))
                    .col(id(ScheduledMessage::Id))
                    .col(
                        ColumnDef::new(ScheduledMessage::CampaignId)
                            .string_len(36)
                            .null(),
                    )
                    // `messages` (from /messages/schedule/create) or `campaign_trigger`.
                    .col(
                        ColumnDef::new(ScheduledMessage::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ScheduledMessage::Payload).text().not_null())
                    .col(time(ScheduledMessage::SendAt).not_null())
                    .col(
                        ColumnDef::new(ScheduledMessage::InLocalTime)
                            .boolean()
                            .not_null(),
                    )
                    // `pending`, `running`, `done` or `cancelled`.
                    .col(
                        ColumnDef::new(ScheduledMessage::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(ScheduledMessage::LeaseUntil).null())
                    .col(
                        ColumnDef::new(ScheduledMessage::DispatchId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(time(ScheduledMessage::CreatedAt).not_null())
                    .col(time(ScheduledMessage::UpdatedAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(ScheduledMessage::WorkspaceId)
                            .col(ScheduledMessage::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scheduled_message_due")
                    .table(ScheduledMessage::Table)
                    .col(ScheduledMessage::Status)
                    .col(ScheduledMessage::SendAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CampaignSendTag::Table)
                    .col(id(CampaignSendTag::WorkspaceId))
                    .col(id(CampaignSendTag::CampaignId))
                    .col(
                        ColumnDef::new(CampaignSendTag::SendTag)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(time(CampaignSendTag::CreatedAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(CampaignSendTag::WorkspaceId)
                            .col(CampaignSendTag::CampaignId)
                            .col(CampaignSendTag::SendTag),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FrequencyCapRule::Table)
                    .col(id(FrequencyCapRule::WorkspaceId))
                    .col(id(FrequencyCapRule::Id))
                    // Only sends of campaigns with this tag count; `NULL` counts every webhook.
                    .col(ColumnDef::new(FrequencyCapRule::Tag).string_len(100).null())
                    .col(
                        ColumnDef::new(FrequencyCapRule::MaxSends)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FrequencyCapRule::WindowSeconds)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(FrequencyCapRule::CreatedAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(FrequencyCapRule::WorkspaceId)
                            .col(FrequencyCapRule::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FrequencyCapRule::Table.into_iden(),
            CampaignSendTag::Table.into_iden(),
            ScheduledMessage::Table.into_iden(),
            CampaignReceipt::Table.into_iden(),
            CampaignOccurrence::Table.into_iden(),
            Campaign::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
