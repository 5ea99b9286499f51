//! The `herald` binary's library: configuration, start-up, sessions, the REST API and the Leptos
//! routes. `main.rs` only parses the command line and calls in here; tests start the same app.

pub mod api;
pub mod cli;
pub mod config;
pub mod csrf;
pub mod session_store;
pub mod startup;

pub use config::{Cli, Command, Config};
pub use startup::{AppState, RunningServer, connect, start};
