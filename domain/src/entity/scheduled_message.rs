//! A send scheduled over the REST API (`/messages/schedule/*`, `/campaigns/trigger/schedule/*`).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scheduled_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    /// Braze's `schedule_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub campaign_id: Option<String>,
    /// `messages` or `campaign_trigger`.
    pub kind: String,
    /// JSON of the request to carry out.
    pub payload: String,
    pub send_at: DateTimeUtc,
    pub in_local_time: bool,
    /// `pending`, `running`, `done` or `cancelled`.
    pub status: String,
    pub lease_until: Option<DateTimeUtc>,
    pub dispatch_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
