//! sea-orm entities: one module per table, plain data with no behaviour.

pub mod account;
pub mod api_key;
pub mod campaign;
pub mod campaign_occurrence;
pub mod campaign_receipt;
pub mod campaign_send_tag;
pub mod event_catalog;
pub mod event_inbox;
pub mod frequency_cap_rule;
pub mod host_state;
pub mod invite;
pub mod membership;
pub mod profile;
pub mod profile_alias;
pub mod profile_event;
pub mod profile_purchase;
pub mod rate_window;
pub mod scheduled_message;
pub mod segment;
pub mod sign_in_failure;
pub mod webhook_attempt;
pub mod webhook_send;
pub mod webhook_template;
pub mod workspace;
pub mod workspace_signing;
