//! A Canvas: a multi-step journey. The builder edits `draft`; launches freeze it as a version.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "canvas")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub description: String,
    /// JSON array of strings.
    pub tags: String,
    /// `scheduled`, `action` or `api`.
    pub entry_type: String,
    /// The custom event name (or `purchase`) an action-based Canvas enters on.
    pub trigger_event: Option<String>,
    /// `draft`, `active`, `paused`, `stopped` or `archived`.
    pub status: String,
    /// JSON of `canvas::Definition`.
    pub draft: String,
    /// The frozen version new entries use.
    pub live_version: Option<i32>,
    /// Bumped on every change, for optimistic locking.
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
