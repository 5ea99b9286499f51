//! A campaign: a webhook campaign built in the dashboard or an API campaign.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub description: String,
    /// JSON array of strings.
    pub tags: String,
    /// `webhook` or `api`.
    pub kind: String,
    /// `scheduled`, `action` or `api`.
    pub delivery_type: String,
    /// The custom event name an action-based campaign listens to (`purchase` for purchases).
    pub trigger_event: Option<String>,
    /// `draft`, `scheduled`, `active`, `stopped` or `archived`.
    pub status: String,
    /// JSON of `campaign::Definition`.
    pub definition: String,
    /// Bumped on every change, so concurrent edits are detected.
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub launched_at: Option<DateTimeUtc>,
    pub stopped_at: Option<DateTimeUtc>,
    pub archived_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
