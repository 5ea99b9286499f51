//! One firing of a scheduled campaign; unique per campaign and due time.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign_occurrence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub campaign_id: String,
    pub due_at: DateTimeUtc,
    /// `pending`, `running`, `done` or `cancelled`.
    pub status: String,
    pub lease_until: Option<DateTimeUtc>,
    pub dispatch_id: String,
    /// The last profile id written to the outbox, so a crashed dispatch resumes after it.
    pub cursor: Option<String>,
    pub recipients: i64,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
