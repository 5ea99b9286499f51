//! The outbox: one row per webhook send, written before any request is made.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_send")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `test`, `api`, `campaign` or `canvas`.
    pub source_kind: String,
    pub source_id: Option<String>,
    pub source_name: Option<String>,
    /// The recipient's external id, when the send is for a user.
    pub recipient: Option<String>,
    /// The webhook as composed (JSON of `webhook::WebhookMessage`), templates unrendered.
    pub message: String,
    /// The personalization values (JSON), rendered into the message at the first attempt.
    pub context: String,
    /// The rendered request (JSON of `webhook::RenderedRequest`), fixed at the first attempt so
    /// every retry sends the same bytes.
    pub request: Option<String>,
    pub host: Option<String>,
    /// `pending`, `delivered`, `failed` or `aborted`.
    pub status: String,
    /// 0 for sends awaiting their first attempt, 1 for retries (claimed from separate lanes).
    pub lane: i16,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub first_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// The source's delivery-speed limit (messages per minute), if it has one.
    pub rate_per_minute: Option<i32>,
    /// The campaign variant (Braze's `message_variation_id`) the send was made from.
    pub variant_id: Option<String>,
    /// The transmission it belongs to (one launch, one occurrence, one trigger call).
    pub dispatch_id: Option<String>,
    /// The caller's Braze `send_id`, for `/sends/data_series`.
    pub send_tag: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
