//! Every setting of a Herald process, read once at start-up from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

/// Herald: self-hosted campaign and Canvas orchestration for the webhook channel.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard, the REST API and the delivery engine (the default).
    Serve,
    /// Run the delivery engine only, for extra worker processes on a shared PostgreSQL.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Bootstrap and automation commands.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make it the owner account (what first-run set-up creates).
        #[arg(long)]
        owner: bool,
    },
    /// Create a workspace with an existing account as its admin; prints the workspace id.
    CreateWorkspace {
        #[arg(long)]
        name: String,
        /// Email of the account that becomes the workspace's admin.
        #[arg(long)]
        admin_email: String,
    },
    /// Create a REST API key and print its secret (shown once).
    CreateApiKey {
        /// Workspace name or id.
        #[arg(long)]
        workspace: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "automation")]
        name: String,
        /// A permission (Braze's names, e.g. users.track, or herald.manage); repeat for more.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Client addresses or CIDRs allowed to use the key; repeat for more. None: any address.
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
    },
}

/// Settings shared by every subcommand.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Database: `sqlite://path?mode=rwc` (embedded) or `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/herald.db?mode=rwc",
        global = true
    )]
    pub database_url: String,

    /// SQLite only: `full` makes every commit durable even on power loss; `normal` (with WAL) keeps
    /// every commit across process crashes but may lose the last ones on power loss, and is several
    /// times faster for write-heavy loads such as `/users/track` (see BENCHMARKS.md).
    #[arg(long, env = "HERALD_SQLITE_SYNCHRONOUS", default_value = "full", value_parser = ["full", "normal"], global = true)]
    pub sqlite_synchronous: String,

    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "HERALD_BIND",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub bind: SocketAddr,

    /// The URL people and systems reach Herald at; used for invite links and origin checks.
    #[arg(
        long,
        env = "HERALD_PUBLIC_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub public_url: String,

    /// Mark session cookies `Secure` (turn on when served over HTTPS).
    #[arg(
        long,
        env = "HERALD_SECURE_COOKIES",
        default_value_t = false,
        global = true
    )]
    pub secure_cookies: bool,

    /// Private networks webhooks may reach (comma-separated CIDRs, e.g. 127.0.0.0/8). Empty: none.
    #[arg(
        long,
        env = "HERALD_ALLOW_PRIVATE_CIDRS",
        value_delimiter = ',',
        global = true
    )]
    pub allow_private_cidrs: Vec<IpNet>,

    /// Ports webhooks may use besides 80 and 443 (comma-separated). Allowlisted private networks
    /// may use any port.
    #[arg(long, env = "HERALD_ALLOW_PORTS", value_delimiter = ',', global = true)]
    pub allow_ports: Vec<u16>,

    /// Webhook requests in flight at once per process.
    #[arg(
        long,
        env = "HERALD_DELIVERY_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    pub delivery_concurrency: usize,

    /// Seconds allowed to connect to a webhook destination.
    #[arg(
        long,
        env = "HERALD_CONNECT_TIMEOUT_SECS",
        default_value_t = 5,
        global = true
    )]
    pub connect_timeout_secs: u64,

    /// Seconds allowed for a whole webhook request, response included.
    #[arg(
        long,
        env = "HERALD_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,

    /// Webhook requests in flight at once per destination host, per process.
    #[arg(
        long,
        env = "HERALD_PER_HOST_CONCURRENCY",
        default_value_t = 32,
        global = true
    )]
    pub per_host_concurrency: usize,

    /// Attempts per send when the destination answers with a retryable error (408, 429, 5xx) or
    /// times out.
    #[arg(
        long,
        env = "HERALD_RETRY_MAX_ATTEMPTS",
        default_value_t = 5,
        global = true
    )]
    pub retry_max_attempts: u32,

    /// Seconds before the first retry; each further retry waits twice as long (with ±20% jitter).
    #[arg(
        long,
        env = "HERALD_RETRY_BASE_DELAY_SECS",
        default_value_t = 60,
        global = true
    )]
    pub retry_base_delay_secs: u64,

    /// Seconds after the first attempt past which no retry is scheduled.
    #[arg(
        long,
        env = "HERALD_RETRY_WINDOW_SECS",
        default_value_t = 1800,
        global = true
    )]
    pub retry_window_secs: u64,

    /// While a host cannot be reached at all, retries continue for this many seconds.
    #[arg(
        long,
        env = "HERALD_RETRY_UNREACHABLE_WINDOW_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub retry_unreachable_window_secs: u64,

    /// Failed attempts to one host within a minute that pause the host (Braze: 3,000).
    #[arg(
        long,
        env = "HERALD_HOST_PAUSE_FAILURES",
        default_value_t = 3000,
        global = true
    )]
    pub host_pause_failures: i64,

    /// Seconds a failing host stays paused.
    #[arg(
        long,
        env = "HERALD_HOST_PAUSE_SECS",
        default_value_t = 300,
        global = true
    )]
    pub host_pause_secs: u64,

    /// REST requests allowed per API key per window (Braze's shared default: 250,000 an hour).
    #[arg(
        long,
        env = "HERALD_API_RATE_LIMIT",
        default_value_t = 250_000,
        global = true
    )]
    pub api_rate_limit: u64,

    /// Length of the REST rate-limit window in seconds.
    #[arg(
        long,
        env = "HERALD_API_RATE_WINDOW_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub api_rate_window_secs: u64,

    /// Log filter, e.g. `info` or `herald=debug,sqlx=warn`.
    #[arg(long, env = "HERALD_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Directory of the built dashboard assets (JavaScript, WebAssembly, CSS).
    #[arg(
        long,
        env = "HERALD_SITE_ROOT",
        default_value = "target/site",
        global = true
    )]
    pub site_root: PathBuf,
}

impl Config {
    /// How webhooks are sent.
    pub fn delivery(&self) -> engine::DeliverySettings {
        engine::DeliverySettings {
            concurrency: self.delivery_concurrency.max(1),
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout_secs.max(1)),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs.max(1)),
            addresses: engine::AddressPolicy::new(self.allow_private_cidrs.clone()),
            allowed_ports: self.allow_ports.clone(),
        }
    }

    /// When sends are retried.
    pub fn retry(&self) -> engine::RetryPolicy {
        use std::time::Duration;
        engine::RetryPolicy {
            max_attempts: self.retry_max_attempts.max(1),
            base_delay: Duration::from_secs(self.retry_base_delay_secs),
            give_up_after: Duration::from_secs(self.retry_window_secs),
            unreachable_give_up_after: Duration::from_secs(self.retry_unreachable_window_secs),
            ..engine::RetryPolicy::default()
        }
    }

    /// How the dispatcher paces itself.
    pub fn dispatch(&self) -> engine::DispatchSettings {
        engine::DispatchSettings {
            // A claim must outlast a slow request with room to spare, or it could be claimed twice.
            lease: std::time::Duration::from_secs(120.max(4 * self.request_timeout_secs)),
            concurrency: self.delivery_concurrency.max(1),
            per_host_concurrency: self.per_host_concurrency.max(1),
            host_failure_threshold: self.host_pause_failures.max(1),
            host_pause: std::time::Duration::from_secs(self.host_pause_secs),
            ..engine::DispatchSettings::default()
        }
    }

    /// The public URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.trim_end_matches('/').to_string()
    }
}

impl Default for Config {
    fn default() -> Self {
        Cli::parse_from(["herald"]).config
    }
}
