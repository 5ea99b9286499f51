//! Herald's runtime. This first slice holds what the delivery engine's configuration is checked
//! against today: the outbound address policy (SSRF guard) and the delivery settings. The outbox,
//! dispatcher and retry policy arrive with the delivery-engine issue.

pub mod address;
pub mod settings;

pub use address::{AddressPolicy, Refusal};
pub use settings::DeliverySettings;
