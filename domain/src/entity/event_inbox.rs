//! The durable hand-off of tracked events and purchases to their listeners, written in the same
//! transaction as the event itself (only for events something listens to:
//! `campaign::listened`) and claimed under a lease.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    /// The id of the `profile_event` or `profile_purchase` row it announces.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `event` or `purchase`.
    pub kind: String,
    pub profile_id: String,
    /// The event name, or the product id of a purchase.
    pub name: String,
    pub time: DateTimeUtc,
    /// A JSON object.
    pub properties: String,
    pub created_at: DateTimeUtc,
    pub claimed_until: Option<DateTimeUtc>,
    pub handled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
