//! The database schema, one migration per change, applied by `herald migrate` and at start-up.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_foundation;
mod m20261128_000002_delivery;
mod m20261128_000003_signing;
mod m20261128_000004_webhook_template;
mod m20261128_000005_audience;
mod m20261128_000006_segment;
mod m20261128_000007_send_tracking;
mod m20261128_000008_campaign;
mod m20261128_000009_canvas;
pub mod testing;

/// Every schema change in the order it was made.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_foundation::Migration),
            Box::new(m20261128_000002_delivery::Migration),
            Box::new(m20261128_000003_signing::Migration),
            Box::new(m20261128_000004_webhook_template::Migration),
            Box::new(m20261128_000005_audience::Migration),
            Box::new(m20261128_000006_segment::Migration),
            Box::new(m20261128_000007_send_tracking::Migration),
            Box::new(m20261128_000008_campaign::Migration),
            Box::new(m20261128_000009_canvas::Migration),
        ]
    }
}
