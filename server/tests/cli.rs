//! The `herald` binary from a shell: `--help` documents every setting, and the admin commands
//! bootstrap an install whose key then authenticates.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald(db_url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(HERALD)
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("HERALD_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herald");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "herald failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let help = stdout(&Command::new(HERALD).arg("--help").output().unwrap());
    for needle in [
        "DATABASE_URL",
        "sqlite://data/herald.db?mode=rwc",
        "HERALD_BIND",
        "HERALD_PUBLIC_URL",
        "HERALD_SECURE_COOKIES",
        "HERALD_ALLOW_PRIVATE_CIDRS",
        "HERALD_DELIVERY_CONCURRENCY",
        "HERALD_CONNECT_TIMEOUT_SECS",
        "HERALD_REQUEST_TIMEOUT_SECS",
        "HERALD_ALLOW_PORTS",
        "HERALD_PER_HOST_CONCURRENCY",
        "HERALD_RETRY_MAX_ATTEMPTS",
        "HERALD_RETRY_BASE_DELAY_SECS",
        "HERALD_RETRY_WINDOW_SECS",
        "HERALD_RETRY_UNREACHABLE_WINDOW_SECS",
        "HERALD_HOST_PAUSE_FAILURES",
        "HERALD_HOST_PAUSE_SECS",
        "HERALD_API_RATE_LIMIT",
        "HERALD_API_RATE_WINDOW_SECS",
        "HERALD_LOG",
        "HERALD_SQLITE_SYNCHRONOUS",
        "serve",
        "worker",
        "migrate",
        "admin",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[tokio::test]
async fn admin_commands_bootstrap_an_install_whose_key_works() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nested").join("herald.db");
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}?mode=rwc", path.display());

    let created = herald(
        &url,
        &[
            "admin",
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
            "--owner",
        ],
        "s3cret-password\n",
    );
    assert!(stdout(&created).contains("ops@example.com"));
    let short = herald(
        &url,
        &[
            "admin",
            "create-user",
            "--email",
            "x@example.com",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("password: must be at least 8 characters")
    );

    let workspace = stdout(&herald(
        &url,
        &[
            "admin",
            "create-workspace",
            "--name",
            "Ops",
            "--admin-email",
            "ops@example.com",
        ],
        "",
    ));
    let secret = stdout(&herald(
        &url,
        &[
            "admin",
            "create-api-key",
            "--workspace",
            "Ops",
            "--permission",
            "users.track",
            "--permission",
            "herald.manage",
        ],
        "",
    ));
    assert!(secret.starts_with("hrld_"));
    let bad = herald(
        &url,
        &[
            "admin",
            "create-api-key",
            "--workspace",
            "Nope",
            "--permission",
            "users.track",
        ],
        "",
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--workspace"));

    let db = sea_orm::Database::connect(&url).await.unwrap();
    let (key, ws) = domain::api_key::authenticate(&db, &secret, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(ws.id, workspace);
    assert!(key.has_permission("herald.manage"));
    db.close().await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// One value of a PRAGMA, as text.
async fn pragma(db: &sea_orm::DatabaseConnection, name: &str) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("PRAGMA {name}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0)
        .map(|n| n.to_string())
        .or_else(|_| row.try_get_by_index::<String>(0))
        .unwrap()
}

#[tokio::test]
async fn a_new_sqlite_file_gets_large_pages_and_wal_while_an_existing_file_keeps_its_pages() {
    use migrations::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let dir = std::env::temp_dir().join(format!("herald-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.join(name).display());
    let config = |name: &str| server::Config {
        database_url: url(name),
        ..Default::default()
    };

    let db = server::connect(&config("new.db")).await.unwrap();
    migrations::Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        pragma(&db, "page_size").await,
        engine::scheduler::SQLITE_PAGE_SIZE.to_string()
    );
    assert_eq!(pragma(&db, "journal_mode").await, "wal");
    db.close().await.unwrap();

    // A file made before the change (SQLite's default pages) is opened as it is, and written.
    std::fs::create_dir_all(&dir).unwrap();
    let old = sea_orm::Database::connect(url("old.db")).await.unwrap();
    old.execute_unprepared("CREATE TABLE t (x INTEGER)")
        .await
        .unwrap();
    assert_eq!(pragma(&old, "page_size").await, "4096");
    old.close().await.unwrap();
    let db = server::connect(&config("old.db")).await.unwrap();
    db.execute_unprepared("INSERT INTO t (x) VALUES (1)")
        .await
        .unwrap();
    assert_eq!(pragma(&db, "page_size").await, "4096");
    assert_eq!(pragma(&db, "journal_mode").await, "wal");
    let _ = std::fs::remove_dir_all(&dir);
}
