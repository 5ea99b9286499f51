//! The catalogue of event names and product ids a workspace has seen, with their property keys.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_catalog")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    /// `event` or `purchase`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// The event name, or the product id of a purchase.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// A JSON array of property names, sorted and de-duplicated.
    pub property_keys: String,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
