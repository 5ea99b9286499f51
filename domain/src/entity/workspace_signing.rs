//! A workspace's webhook signing secret. It must be readable to sign, so it is stored as is and
//! masked wherever it is shown.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workspace_signing")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    pub enabled: bool,
    /// `whsec_` followed by base64 of 24 random bytes.
    pub secret: String,
    /// The secret before the last rotation, still used to sign until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTimeUtc>,
    pub rotated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
