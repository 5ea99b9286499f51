//! One user's pass through a Canvas (an entry); the journey engine advances it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "canvas_journey")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub canvas_id: String,
    pub version: i32,
    pub profile_id: String,
    /// The path variant; `None` for the control group.
    pub variant_id: Option<String>,
    /// The step the user is at.
    pub step_id: Option<String>,
    /// `active`, `waiting`, `finished` or `exited`.
    pub status: String,
    pub wake_at: Option<DateTimeUtc>,
    pub lease_until: Option<DateTimeUtc>,
    /// Bumped on every transition.
    pub seq: i32,
    /// JSON of `canvas::JourneyState`.
    pub state: String,
    pub entered_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
