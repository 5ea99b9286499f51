//! Typed ids. Rows store them as UUID text; signatures never take bare strings.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh id: a time-ordered UUID (version 7), so rows made together sit together at
            /// the end of their primary-key index instead of on random pages all over it.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Parses an id typed by a caller (URL segment, form field).
            pub fn parse(text: &str) -> Result<Self, DomainError> {
                uuid::Uuid::parse_str(text.trim())
                    .map(|id| Self(id.to_string()))
                    .map_err(|_| DomainError::NotFound($what))
            }

            /// Wraps an id read back from the database.
            pub fn from_db(text: String) -> Self {
                Self(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(/// An account (a person who signs in).
    AccountId, "account");
id_type!(/// A workspace (tenant).
    WorkspaceId, "workspace");
id_type!(/// A REST API key.
    ApiKeyId, "API key");
id_type!(/// A pending invitation.
    InviteId, "invite");
id_type!(/// One webhook send in the outbox; sent as `webhook-id` on every attempt.
    SendId, "send");
id_type!(/// A webhook template in the workspace's library.
    TemplateId, "template");
id_type!(/// A user profile; Braze calls it `braze_id`.
    ProfileId, "user");
id_type!(/// A saved segment (audience filter).
    SegmentId, "segment");
id_type!(/// A campaign (`campaign_id` in Braze's API).
    CampaignId, "campaign");
id_type!(/// A campaign's message variant (`message_variation_id` in Braze's API).
    VariantId, "message variation");
id_type!(/// A send scheduled over the REST API (`schedule_id`).
    ScheduleId, "schedule");
id_type!(/// A Canvas (`canvas_id` in Braze's API).
    CanvasId, "Canvas");
id_type!(/// One user's entry into a Canvas.
    JourneyId, "journey");
