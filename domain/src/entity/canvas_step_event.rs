//! What happened to a journey at a step: the source of step analytics and a user's journey view.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "canvas_step_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub canvas_id: String,
    pub version: i32,
    pub journey_id: String,
    pub profile_id: String,
    pub step_id: Option<String>,
    /// `entered`, `sent`, `aborted`, `exited`, `finished`, `converted` or `branch`.
    pub kind: String,
    /// The branch taken, for splits and paths.
    pub branch: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
