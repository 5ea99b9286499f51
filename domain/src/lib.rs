//! Herald's business rules: entities, validated values and the services that the dashboard's server
//! functions, the REST API and the engine share. No web framework lives here.

pub mod account;
pub mod api_key;
pub mod campaign;
pub mod canvas;
mod claim;
pub mod clock;
pub mod entity;
pub mod error;
pub mod id;
pub mod invite;
pub mod messaging;
pub mod outbox;
pub mod profile;
pub mod rate_limit;
mod report;
pub mod role;
pub mod secret;
pub mod segment;
pub mod signing;
pub mod template;
pub mod validate;
pub mod webhook;
pub mod webhook_template;
pub mod workspace;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DomainError, DomainResult};
pub use id::{
    AccountId, ApiKeyId, CampaignId, CanvasId, InviteId, JourneyId, ProfileId, ScheduleId,
    SegmentId, SendId, TemplateId, VariantId, WorkspaceId,
};
pub use role::{Capability, Role};
