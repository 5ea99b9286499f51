//! One firing of a scheduled Canvas entry; unique per Canvas and due time.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "canvas_occurrence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub canvas_id: String,
    pub due_at: DateTimeUtc,
    /// `pending`, `running`, `done` or `cancelled`.
    pub status: String,
    pub lease_until: Option<DateTimeUtc>,
    /// The last profile id entered, so a crashed run resumes after it.
    pub cursor: Option<String>,
    pub entered: i64,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
