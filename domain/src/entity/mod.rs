//! sea-orm entities: one module per table, plain data with no behaviour.

pub mod account;
pub mod api_key;
pub mod host_state;
pub mod invite;
pub mod membership;
pub mod rate_window;
pub mod sign_in_failure;
pub mod webhook_attempt;
pub mod webhook_send;
pub mod webhook_template;
pub mod workspace;
pub mod workspace_signing;
