//! Audience data: user profiles with their aliases, tracked events and purchases, the catalogue of
//! event names and property keys, and the inbox that hands tracked events to their listeners.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000005_audience"
    }
}

#[derive(DeriveIden)]
enum Profile {
    Table,
    WorkspaceId,
    Id,
    ExternalId,
    Email,
    Phone,
    FirstName,
    LastName,
    Gender,
    DateOfBirth,
    Country,
    HomeCity,
    Language,
    TimeZone,
    CustomAttributes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProfileAlias {
    Table,
    WorkspaceId,
    AliasLabel,
    AliasName,
    ProfileId,
}

#[derive(DeriveIden)]
enum ProfileEvent {
    Table,
    WorkspaceId,
    Id,
    ProfileId,
    Name,
    Time,
    Properties,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProfilePurchase {
    Table,
    WorkspaceId,
    Id,
    ProfileId,
    ProductId,
    Currency,
    Price,
    Quantity,
    Time,
    Properties,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EventCatalog {
    Table,
    WorkspaceId,
    Kind,
    Name,
    PropertyKeys,
    FirstSeen,
    LastSeen,
}

#[derive(DeriveIden)]
enum EventInbox {
    Table,
    WorkspaceId,
    Id,
    Kind,
    ProfileId,
    Name,
    Time,
    Properties,
    CreatedAt,
    ClaimedUntil,
    HandledAt,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string_len(36).not_null().to_owned()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().null().to_owned()
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Profile::Table)
                    .col(id(Profile::WorkspaceId))
                    .col(id(Profile::Id))
                    .col(ColumnDef::new(Profile::ExternalId).string_len(255).null())
                    .col(text(Profile::Email))
                    .col(text(Profile::Phone))
                    .col(text(Profile::FirstName))
                    .col(text(Profile::LastName))
                    .col(text(Profile::Gender))
                    .col(text(Profile::DateOfBirth))
                    .col(text(Profile::Country))
                    .col(text(Profile::HomeCity))
                    .col(text(Profile::Language))
                    .col(text(Profile::TimeZone))
                    .col(ColumnDef::new(Profile::CustomAttributes).text().not_null())
                    .col(ts(Profile::CreatedAt).not_null())
                    .col(ts(Profile::UpdatedAt).not_null())
                    .primary_key(Index::create().col(Profile::WorkspaceId).col(Profile::Id))
                    .to_owned(),
            )
            .await?;
        // Several NULL external ids (alias-only, email-only users) are allowed by both databases.
        manager
            .create_index(
                Index::create()
                    .name("profile_external_id")
                    .table(Profile::Table)
                    .col(Profile::WorkspaceId)
                    .col(Profile::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_email")
                    .table(Profile::Table)
                    .col(Profile::WorkspaceId)
                    .col(Profile::Email)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_phone")
                    .table(Profile::Table)
                    .col(Profile::WorkspaceId)
                    .col(Profile::Phone)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_updated_at")
                    .table(Profile::Table)
                    .col(Profile::WorkspaceId)
                    .col(Profile::UpdatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProfileAlias::Table)
                    .col(id(ProfileAlias::WorkspaceId))
                    .col(
                        ColumnDef::new(ProfileAlias::AliasLabel)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProfileAlias::AliasName)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(id(ProfileAlias::ProfileId))
                    .primary_key(
                        Index::create()
                            .col(ProfileAlias::WorkspaceId)
                            .col(ProfileAlias::AliasLabel)
                            .col(ProfileAlias::AliasName),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_alias_profile")
                    .table(ProfileAlias::Table)
                    .col(ProfileAlias::WorkspaceId)
                    .col(ProfileAlias::ProfileId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProfileEvent::Table)
                    .col(id(ProfileEvent::WorkspaceId))
                    .col(id(ProfileEvent::Id))
                    .col(id(ProfileEvent::ProfileId))
                    .col(
                        ColumnDef::new(ProfileEvent::Name)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ts(ProfileEvent::Time).not_null())
                    .col(ColumnDef::new(ProfileEvent::Properties).text().not_null())
                    .col(ts(ProfileEvent::CreatedAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(ProfileEvent::WorkspaceId)
                            .col(ProfileEvent::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_event_by_profile")
                    .table(ProfileEvent::Table)
                    .col(ProfileEvent::WorkspaceId)
                    .col(ProfileEvent::ProfileId)
                    .col(ProfileEvent::Time)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_event_by_name")
                    .table(ProfileEvent::Table)
                    .col(ProfileEvent::WorkspaceId)
                    .col(ProfileEvent::Name)
                    .col(ProfileEvent::Time)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProfilePurchase::Table)
                    .col(id(ProfilePurchase::WorkspaceId))
                    .col(id(ProfilePurchase::Id))
                    .col(id(ProfilePurchase::ProfileId))
                    .col(
                        ColumnDef::new(ProfilePurchase::ProductId)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProfilePurchase::Currency)
                            .string_len(3)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ProfilePurchase::Price).double().not_null())
                    .col(
                        ColumnDef::new(ProfilePurchase::Quantity)
                            .integer()
                            .not_null(),
                    )
                    .col(ts(ProfilePurchase::Time).not_null())
                    .col(
                        ColumnDef::new(ProfilePurchase::Properties)
                            .text()
                            .not_null(),
                    )
                    .col(ts(ProfilePurchase::CreatedAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(ProfilePurchase::WorkspaceId)
                            .col(ProfilePurchase::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("profile_purchase_by_profile")
                    .table(ProfilePurchase::Table)
                    .col(ProfilePurchase::WorkspaceId)
                    .col(ProfilePurchase::ProfileId)
                    .col(ProfilePurchase::Time)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EventCatalog::Table)
                    .col(id(EventCatalog::WorkspaceId))
                    .col(ColumnDef::new(EventCatalog::Kind).string_len(16).not_null())
                    .col(
                        ColumnDef::new(EventCatalog::Name)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EventCatalog::PropertyKeys).text().not_null())
                    .col(ts(EventCatalog::FirstSeen).not_null())
                    .col(ts(EventCatalog::LastSeen).not_null())
                    .primary_key(
                        Index::create()
                            .col(EventCatalog::WorkspaceId)
                            .col(EventCatalog::Kind)
                            .col(EventCatalog::Name),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EventInbox::Table)
                    .col(id(EventInbox::WorkspaceId))
                    .col(id(EventInbox::Id))
                    .col(ColumnDef::new(EventInbox::Kind).string_len(16).not_null())
                    .col(id(EventInbox::ProfileId))
                    .col(ColumnDef::new(EventInbox::Name).string_len(255).not_null())
                    .col(ts(EventInbox::Time).not_null())
                    .col(ColumnDef::new(EventInbox::Properties).text().not_null())
                    .col(ts(EventInbox::CreatedAt).not_null())
                    .col(ts(EventInbox::ClaimedUntil).null())
                    .col(ts(EventInbox::HandledAt).null())
                    .primary_key(
                        Index::create()
                            .col(EventInbox::WorkspaceId)
                            .col(EventInbox::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Listeners claim unhandled rows oldest first.
        manager
            .create_index(
                Index::create()
                    .name("event_inbox_pending")
                    .table(EventInbox::Table)
                    .col(EventInbox::HandledAt)
                    .col(EventInbox::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("event_inbox_by_profile")
                    .table(EventInbox::Table)
                    .col(EventInbox::WorkspaceId)
                    .col(EventInbox::ProfileId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EventInbox::Table.into_iden(),
            EventCatalog::Table.into_iden(),
            ProfilePurchase::Table.into_iden(),
            ProfileEvent::Table.into_iden(),
            ProfileAlias::Table.into_iden(),
            Profile::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
