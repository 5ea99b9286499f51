//! Who was sent a campaign, when and which variant: re-eligibility and sticky variants.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign_receipt")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub campaign_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub profile_id: String,
    /// `None` for the control group.
    pub variant_id: Option<String>,
    pub first_received_at: DateTimeUtc,
    pub last_received_at: DateTimeUtc,
    pub receipts: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
