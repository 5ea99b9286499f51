//! Herald's runtime: the dispatcher that sends webhooks from the outbox, the retry policy, the
//! shared HTTP client and the outbound address policy (SSRF guard).

pub mod address;
pub mod client;
pub mod dispatch;
pub mod retry;
pub mod scheduler;
pub mod settings;

pub use address::{AddressPolicy, Refusal};
pub use client::WebhookClient;
pub use dispatch::{DispatchSettings, Dispatcher};
pub use retry::RetryPolicy;
pub use settings::DeliverySettings;
