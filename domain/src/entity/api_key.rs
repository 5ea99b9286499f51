//! A REST API key. The secret itself is never stored, only its SHA-256.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// The first characters of the secret, shown so people can tell keys apart.
    pub prefix: String,
    #[sea_orm(unique)]
    pub secret_hash: String,
    /// JSON array of permission names.
    pub permissions: String,
    /// JSON array of CIDRs; empty means any address.
    pub ip_allowlist: String,
    pub created_by: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
