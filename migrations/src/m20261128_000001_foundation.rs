//! Accounts, workspaces, memberships, invitations, REST API keys, sign-in throttling and the REST
//! rate-limit counters.
//!
//! Tenant-owned tables lead their primary key with `workspace_id` so the schema can later be
//! distributed by workspace.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000001_foundation"
    }
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
    Email,
    PasswordHash,
    IsOwner,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Workspace {
    Table,
    Id,
    Name,
    CreatedAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
enum Membership {
    Table,
    WorkspaceId,
    AccountId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invite {
    Table,
    WorkspaceId,
    Id,
    Email,
    Role,
    TokenHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
}

#[derive(DeriveIden)]
enum ApiKey {
    Table,
    WorkspaceId,
    Id,
    Name,
    Prefix,
    SecretHash,
    Permissions,
    IpAllowlist,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SignInFailure {
    Table,
    Id,
    Email,
    FailedAt,
}

#[derive(DeriveIden)]
enum RateWindow {
    Table,
    Bucket,
    WindowStart,
    Hits,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string_len(36).not_null().to_owned()
}

fn at(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn at_opt(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Account::Table)
                    .col(id(Account::Id).primary_key())
                    .col(
                        ColumnDef::new(Account::Email)
                            .string_len(254)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Account::PasswordHash).text().not_null())
                    .col(
                        ColumnDef::new(Account::IsOwner)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(at(Account::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Workspace::Table)
                    .col(id(Workspace::Id).primary_key())
                    .col(ColumnDef::new(Workspace::Name).string_len(100).not_null())
                    .col(at(Workspace::CreatedAt))
                    .col(at_opt(Workspace::ArchivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Membership::Table)
                    .col(id(Membership::WorkspaceId))
                    .col(id(Membership::AccountId))
                    .col(ColumnDef::new(Membership::Role).string_len(16).not_null())
                    .col(at(Membership::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Membership::WorkspaceId)
                            .col(Membership::AccountId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Membership::Table, Membership::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Membership::Table, Membership::AccountId)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("membership_by_account")
                    .table(Membership::Table)
                    .col(Membership::AccountId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Invite::Table)
                    .col(id(Invite::WorkspaceId))
                    .col(id(Invite::Id))
                    .col(ColumnDef::new(Invite::Email).string_len(254).not_null())
                    .col(ColumnDef::new(Invite::Role).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Invite::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(id(Invite::CreatedBy))
                    .col(at(Invite::CreatedAt))
                    .col(at(Invite::ExpiresAt))
                    .col(at_opt(Invite::AcceptedAt))
                    .primary_key(Index::create().col(Invite::WorkspaceId).col(Invite::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invite::Table, Invite::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKey::Table)
                    .col(id(ApiKey::WorkspaceId))
                    .col(id(ApiKey::Id))
                    .col(ColumnDef::new(ApiKey::Name).string_len(100).not_null())
                    .col(ColumnDef::new(ApiKey::Prefix).string_len(16).not_null())
                    .col(
                        ColumnDef::new(ApiKey::SecretHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiKey::Permissions).text().not_null())
                    .col(ColumnDef::new(ApiKey::IpAllowlist).text().not_null())
                    .col(ColumnDef::new(ApiKey::CreatedBy).string_len(36).null())
                    .col(at(ApiKey::CreatedAt))
                    .col(at_opt(ApiKey::LastUsedAt))
                    .col(at_opt(ApiKey::RevokedAt))
                    .primary_key(Index::create().col(ApiKey::WorkspaceId).col(ApiKey::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKey::Table, ApiKey::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignInFailure::Table)
                    .col(
                        ColumnDef::new(SignInFailure::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SignInFailure::Email)
                            .string_len(254)
                            .not_null(),
                    )
                    .col(at(SignInFailure::FailedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sign_in_failure_by_email")
                    .table(SignInFailure::Table)
                    .col(SignInFailure::Email)
                    .col(SignInFailure::FailedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RateWindow::Table)
                    .col(ColumnDef::new(RateWindow::Bucket).string_len(80).not_null())
                    .col(
                        ColumnDef::new(RateWindow::WindowStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RateWindow::Hits).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(RateWindow::Bucket)
                            .col(RateWindow::WindowStart),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RateWindow::Table.into_iden(),
            SignInFailure::Table.into_iden(),
            ApiKey::Table.into_iden(),
            Invite::Table.into_iden(),
            Membership::Table.into_iden(),
            Workspace::Table.into_iden(),
            Account::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
