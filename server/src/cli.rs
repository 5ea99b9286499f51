//! The `herald admin …` commands: bootstrap and automation from a shell.

use std::io::BufRead;

use domain::{AccountId, Clock, WorkspaceId};
use sea_orm::DatabaseConnection;

use crate::config::AdminCommand;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one admin command and returns what to print.
pub async fn run(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    command: AdminCommand,
) -> Result<String, BoxError> {
    let now = clock.now();
    match command {
        AdminCommand::CreateUser {
            email,
            password_stdin: _,
            owner,
        } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            let account = domain::account::create_account(db, &email, password, owner, now).await?;
            Ok(format!(
                "created account {} ({})",
                account.email, account.id
            ))
        }
        AdminCommand::CreateWorkspace { name, admin_email } => {
            let admin = domain::account::find_account_by_email(db, &admin_email)
                .await?
                .ok_or_else(|| format!("--admin-email: no account has the email {admin_email}"))?;
            let workspace = domain::workspace::create_workspace_atomically(
                db,
                &AccountId::from_db(admin.id),
                &name,
                now,
            )
            .await?;
            Ok(workspace.id)
        }
        AdminCommand::CreateApiKey {
            workspace,
            name,
            permissions,
            allow_ips,
        } => {
            let workspace = match WorkspaceId::parse(&workspace) {
                Ok(id) => domain::workspace::find_workspace(db, &id).await?,
                Err(_) => domain::workspace::find_workspace_by_name(db, &workspace)
                    .await
                    .map_err(|_| {
                        format!(
                            "--workspace: no active workspace is named or has the id “{workspace}”"
                        )
                    })?,
            };
            let new = domain::api_key::create_api_key(
                db,
                &WorkspaceId::from_db(workspace.id),
                None,
                &name,
                &permissions,
                &allow_ips.join(","),
                now,
            )
            .await?;
            Ok(new.secret)
        }
    }
}
