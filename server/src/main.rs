//! `herald`: the one binary. See `herald --help`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use domain::SystemClock;
use server::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = async {
        let db = server::connect(&config).await?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                let listener = tokio::net::TcpListener::bind(config.bind)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
                let public = config.public_base();
                let running = server::start(db, config, Arc::new(SystemClock), listener).await?;
                tracing::info!(
                    "Herald is listening on http://{} (public URL {public})",
                    running.addr
                );
                running.handle.await??;
            }
            Command::Worker => {
                tracing::info!("delivery worker started");
                server::startup::run_worker(db, config, Arc::new(SystemClock)).await?;
            }
            Command::Migrate => {
                use migrations::MigratorTrait;
                migrations::Migrator::up(&db, None).await?;
                println!("migrations applied");
            }
            Command::Admin(command) => {
                use migrations::MigratorTrait;
                migrations::Migrator::up(&db, None).await?;
                println!("{}", server::cli::run(&db, &SystemClock, command).await?);
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error}");
            ExitCode::FAILURE
        }
    }
}
