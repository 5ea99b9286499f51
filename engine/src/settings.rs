//! Delivery settings chosen by the operator (see `herald --help`).

use std::time::Duration;

use crate::AddressPolicy;

/// How the engine sends webhooks.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Requests in flight at once per process.
    pub concurrency: usize,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, response included.
    pub request_timeout: Duration,
    /// Which destinations are reachable.
    pub addresses: AddressPolicy,
    /// Ports allowed besides 80 and 443 (allowlisted private addresses may use any port).
    pub allowed_ports: Vec<u16>,
}
