//! A user profile of a workspace: standard attributes as columns, custom attributes as JSON.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "profile")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    /// Braze's `braze_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Braze's `external_id`; unique per workspace, absent for alias-only and email-only users.
    pub external_id: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `M`, `F`, `O`, `N` or `P`.
    pub gender: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    pub country: Option<String>,
    pub home_city: Option<String>,
    pub language: Option<String>,
    pub time_zone: Option<String>,
    /// A JSON object of custom attributes.
    pub custom_attributes: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
