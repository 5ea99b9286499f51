//! Failure counts per destination host, and the pause a failing host is put under.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "host_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub host: String,
    /// Start of the current one-minute failure window, epoch seconds.
    pub window_start: i64,
    pub failures: i64,
    pub paused_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
