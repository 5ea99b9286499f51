//! One HTTP attempt of a send, with what came back.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempt")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub send_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub number: i32,
    pub started_at: DateTimeUtc,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    /// `timeout`, `connect`, `refused_address`, `render`, `body`, … when no status came back.
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// JSON object of a subset of the response headers.
    pub response_headers: String,
    /// The response body, cut at 4 KiB.
    pub response_body: String,
    /// `delivered`, `retry`, `failed` or `aborted`.
    pub outcome: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
