//! Canvases: their definitions and frozen versions, one journey per user entry, the step history
//! (analytics and a user's journey), and the occurrences of scheduled entries.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000009_canvas"
    }
}

#[derive(DeriveIden)]
enum Canvas {
    Table,
    WorkspaceId,
    Id,
    Name,
    Description,
    Tags,
    EntryType,
    TriggerEvent,
    Status,
    Draft,
    LiveVersion,
    Version,
    CreatedAt,
    UpdatedAt,
    LaunchedAt,
    StoppedAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
enum CanvasVersion {
    Table,
    WorkspaceId,
    CanvasId,
    Version,
    Definition,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CanvasJourney {
    Table,
    WorkspaceId,
    Id,
    CanvasId,
    Version,
    ProfileId,
    VariantId,
    StepId,
    Status,
    WakeAt,
    LeaseUntil,
    Seq,
    State,
    EnteredAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum CanvasStepEvent {
    Table,
    WorkspaceId,
    Id,
    CanvasId,
    Version,
    JourneyId,
    ProfileId,
    StepId,
    Kind,
    Branch,
    At,
}

#[derive(DeriveIden)]
enum CanvasOccurrence {
    Table,
    WorkspaceId,
    Id,
    CanvasId,
    DueAt,
    Status,
    LeaseUntil,
    Cursor,
    Entered,
    CreatedAt,
    CompletedAt,
}

fn id(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string_len(36).not_null().to_owned()
}

fn time(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().to_owned()
}

fn index(name: &str, table: impl IntoIden, columns: Vec<DynIden>) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table.into_iden());
    for column in columns {
        index.col(column);
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Canvas::Table)
                    .col(id(Canvas::WorkspaceId))
                    .col(id(Canvas::Id))
                    .col(ColumnDef::new(Canvas::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Canvas::Description).text().not_null())
                    .col(ColumnDef::new(Canvas::Tags).text().not_null())
                    // `scheduled`, `action` or `api`.
                    .col(ColumnDef::new(Canvas::EntryType).string_len(16).not_null())
                    .col(ColumnDef::new(Canvas::TriggerEvent).string_len(255).null())
                    // `draft`, `active`, `paused`, `stopped` or `archived`.
                    .col(ColumnDef::new(Canvas::Status).string_len(16).not_null())
                    // JSON of `canvas::Definition`: what the builder edits.
                    .col(ColumnDef::new(Canvas::Draft).text().not_null())
                    // The version new entries use; `NULL` before the first launch.
                    .col(ColumnDef::new(Canvas::LiveVersion).integer().null())
                    .col(ColumnDef::new(Canvas::Version).integer().not_null())
                    .col(time(Canvas::CreatedAt).not_null())
                    .col(time(Canvas::UpdatedAt).not_null())
                    .col(time(Canvas::LaunchedAt).null())
                    .col(time(Canvas::StoppedAt).null())
                    .col(time(Canvas::ArchivedAt).null())
                    .primary_key(Index::create().col(Canvas::WorkspaceId).col(Canvas::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "canvas_by_trigger",
                Canvas::Table,
                vec![
                    Canvas::WorkspaceId.into_iden(),
                    Canvas::TriggerEvent.into_iden(),
                    Canvas::Status.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CanvasVersion::Table)
                    .col(id(CanvasVersion::WorkspaceId))
                    .col(id(CanvasVersion::CanvasId))
                    .col(ColumnDef::new(CanvasVersion::Version).integer().not_null())
                    // JSON of `canvas::Definition`, frozen.
                    .col(ColumnDef::new(CanvasVersion::Definition).text().not_null())
                    .col(time(CanvasVersion::CreatedAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(CanvasVersion::WorkspaceId)
                            .col(CanvasVersion::CanvasId)
                            .col(CanvasVersion::Version),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CanvasJourney::Table)
                    .col(id(CanvasJourney::WorkspaceId))
                    .col(id(CanvasJourney::Id))
                    .col(id(CanvasJourney::CanvasId))
                    .col(ColumnDef::new(CanvasJourney::Version).integer().not_null())
                    .col(id(CanvasJourney::ProfileId))
                    // The path variant; `NULL` for the control group.
                    .col(
                        ColumnDef::new(CanvasJourney::VariantId)
                            .string_len(36)
                            .null(),
                    )
                    // The step the user is at (waiting in, or about to run).
                    .col(ColumnDef::new(CanvasJourney::StepId).string_len(36).null())
                    // `active` (runs at wake_at), `waiting` (Action Paths: an event or the
                    // timeout at wake_at), `finished`, `exited`.
                    .col(
                        ColumnDef::new(CanvasJourney::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(CanvasJourney::WakeAt).null())
                    .col(time(CanvasJourney::LeaseUntil).null())
                    // Bumped on every transition, so a transition applies once.
                    .col(ColumnDef::new(CanvasJourney::Seq).integer().not_null())
                    // JSON: entry properties, context variables, event properties.
                    .col(ColumnDef::new(CanvasJourney::State).text().not_null())
                    .col(time(CanvasJourney::EnteredAt).not_null())
                    .col(time(CanvasJourney::UpdatedAt).not_null())
                    .col(time(CanvasJourney::FinishedAt).null())
                    .primary_key(
                        Index::create()
                            .col(CanvasJourney::WorkspaceId)
                            .col(CanvasJourney::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "canvas_journey_due",
                CanvasJourney::Table,
                vec![
                    CanvasJourney::Status.into_iden(),
                    CanvasJourney::WakeAt.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "canvas_journey_by_user",
                CanvasJourney::Table,
                vec![
                    CanvasJourney::WorkspaceId.into_iden(),
                    CanvasJourney::ProfileId.into_iden(),
                    CanvasJourney::CanvasId.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "canvas_journey_by_canvas",
                CanvasJourney::Table,
                vec![
                    CanvasJourney::WorkspaceId.into_iden(),
                    CanvasJourney::CanvasId.into_iden(),
                    CanvasJourney::Status.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CanvasStepEvent::Table)
                    .col(id(CanvasStepEvent::WorkspaceId))
                    .col(id(CanvasStepEvent::Id))
                    .col(id(CanvasStepEvent::CanvasId))
                    .col(
                        ColumnDef::new(CanvasStepEvent::Version)
                            .integer()
                            .not_null(),
                    )
                    .col(id(CanvasStepEvent::JourneyId))
                    .col(id(CanvasStepEvent::ProfileId))
                    .col(
                        ColumnDef::new(CanvasStepEvent::StepId)
                            .string_len(36)
                            .null(),
                    )
                    // `entered`, `sent`, `aborted`, `exited`, `finished`, `converted`, `branch`.
                    .col(
                        ColumnDef::new(CanvasStepEvent::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CanvasStepEvent::Branch)
                            .string_len(100)
                            .null(),
                    )
                    .col(time(CanvasStepEvent::At).not_null())
                    .primary_key(
                        Index::create()
                            .col(CanvasStepEvent::WorkspaceId)
                            .col(CanvasStepEvent::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "canvas_step_event_by_step",
                CanvasStepEvent::Table,
                vec![
                    CanvasStepEvent::WorkspaceId.into_iden(),
                    CanvasStepEvent::CanvasId.into_iden(),
                    CanvasStepEvent::At.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "canvas_step_event_by_user",
                CanvasStepEvent::Table,
                vec![
                    CanvasStepEvent::WorkspaceId.into_iden(),
                    CanvasStepEvent::ProfileId.into_iden(),
                    CanvasStepEvent::At.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CanvasOccurrence::Table)
                    .col(id(CanvasOccurrence::WorkspaceId))
                    .col(id(CanvasOccurrence::Id))
                    .col(id(CanvasOccurrence::CanvasId))
                    .col(time(CanvasOccurrence::DueAt).not_null())
                    .col(
                        ColumnDef::new(CanvasOccurrence::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(CanvasOccurrence::LeaseUntil).null())
                    .col(
                        ColumnDef::new(CanvasOccurrence::Cursor)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(CanvasOccurrence::Entered)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(CanvasOccurrence::CreatedAt).not_null())
                    .col(time(CanvasOccurrence::CompletedAt).null())
                    .primary_key(
                        Index::create()
                            .col(CanvasOccurrence::WorkspaceId)
                            .col(CanvasOccurrence::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "canvas_occurrence_once",
                    CanvasOccurrence::Table,
                    vec![
                        CanvasOccurrence::WorkspaceId.into_iden(),
                        CanvasOccurrence::CanvasId.into_iden(),
                        CanvasOccurrence::DueAt.into_iden(),
                    ],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "canvas_occurrence_due",
                CanvasOccurrence::Table,
                vec![
                    CanvasOccurrence::Status.into_iden(),
                    CanvasOccurrence::DueAt.into_iden(),
                ],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CanvasOccurrence::Table.into_iden(),
            CanvasStepEvent::Table.into_iden(),
            CanvasJourney::Table.into_iden(),
            CanvasVersion::Table.into_iden(),
            Canvas::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
