//! Server functions (all under `/srv`, away from the Braze-compatible `/api`) and the plain types
//! they exchange with the browser. Each is thin: check the caller, call the domain, map the result.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::ssr::{authorize, ctx, fail, internal, require_account, start_session, when};
#[cfg(feature = "ssr")]
use domain::{AccountId, Capability, Role};

/// A workspace as the switcher lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSummary {
    pub id: String,
    pub name: String,
    pub role: String,
    pub archived: bool,
}

/// The signed-in person and their workspaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub email: String,
    pub workspaces: Vec<WorkspaceSummary>,
}

/// Where `/` should send a visitor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Landing {
    FirstRun,
    SignIn,
    NoWorkspace,
    Workspace(String),
}

/// What the workspace layout needs: who is signed in, their workspaces, and the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceShell {
    pub me: Me,
    pub current: WorkspaceSummary,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceDetails {
    pub id: String,
    pub name: String,
    pub created: String,
    pub archived: Option<String>,
    pub can_administer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub account_id: String,
    pub email: String,
    pub role: String,
    pub since: String,
    pub is_me: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub expires: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    pub members: Vec<MemberRow>,
    pub invites: Vec<InviteRow>,
    pub can_manage: bool,
}

/// A new invite with its one-time link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedInvite {
    pub email: String,
    pub role: String,
    pub link: String,
}

/// What someone opening an invite link sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    pub workspace_name: String,
    pub email: String,
    pub role: String,
    pub has_account: bool,
    pub signed_in_as: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub permissions: Vec<String>,
    pub ip_allowlist: Vec<String>,
    pub created: String,
    pub last_used: Option<String>,
    pub revoked: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeysView {
    pub keys: Vec<ApiKeyRow>,
    pub can_manage: bool,
    /// Every permission a key can be given.
    pub all_permissions: Vec<String>,
}

/// A key just created: the secret is in here and nowhere else, ever again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub name: String,
    pub secret: String,
}

/// The message of a server function error, without the framework's prefix.
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Whether an error means "nobody is signed in".
pub fn needs_sign_in(error: &ServerFnError) -> bool {
    matches!(error, ServerFnError::ServerError(m) if m == "sign in required")
}

#[cfg(feature = "ssr")]
fn summary(workspace: &domain::entity::workspace::Model, role: Role) -> WorkspaceSummary {
    WorkspaceSummary {
        id: workspace.id.clone(),
        name: workspace.name.clone(),
        role: role.as_str().to_string(),
        archived: workspace.archived_at.is_some(),
    }
}

#[cfg(feature = "ssr")]
async fn me_of(account: &domain::entity::account::Model) -> Result<Me, ServerFnError> {
    let ctx = ctx()?;
    let workspaces =
        domain::workspace::workspaces_of(&ctx.db, &AccountId::from_db(account.id.clone()))
            .await
            .map_err(fail)?;
    Ok(Me {
        email: account.email.clone(),
        workspaces: workspaces
            .iter()
            .map(|(w, role)| summary(w, *role))
            .collect(),
    })
}

/// Only same-site relative paths are followed after sign-in (no open redirects).
#[cfg(feature = "ssr")]
fn safe_next(next: Option<String>, fallback: String) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => fallback,
    }
}

#[server(prefix = "/srv", endpoint = "landing")]
pub async fn get_landing() -> Result<Landing, ServerFnError> {
    let ctx = ctx()?;
    if !domain::account::has_accounts(&ctx.db).await.map_err(fail)? {
        return Ok(Landing::FirstRun);
    }
    let Some(account) = crate::ssr::current_account().await? else {
        return Ok(Landing::SignIn);
    };
    let me = me_of(&account).await?;
    Ok(match me.workspaces.iter().find(|w| !w.archived) {
        Some(w) => Landing::Workspace(w.id.clone()),
        None => Landing::NoWorkspace,
    })
}

/// First run: creates the owner account and the first workspace, then signs in.
#[server(prefix = "/srv", endpoint = "create_owner")]
pub async fn create_owner(
    email: String,
    password: String,
    workspace_name: String,
) -> Result<(), ServerFnError> {
    let ctx = ctx()?;
    let (owner, workspace) =
        domain::account::create_owner(&ctx.db, &email, &password, &workspace_name, ctx.clock.now())
            .await
            .map_err(fail)?;
    start_session(&owner).await?;
    leptos_axum::redirect(&format!("/w/{}", workspace.id));
    Ok(())
}

#[server(prefix = "/srv", endpoint = "sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    let ctx = ctx()?;
    let account = domain::account::sign_in(&ctx.db, &email, &password, ctx.clock.now())
        .await
        .map_err(fail)?;
    start_session(&account).await?;
    leptos_axum::redirect(&safe_next(next, "/".into()));
    Ok(())
}

#[server(prefix = "/srv", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let session = crate::ssr::session().await?;
    session.flush().await.map_err(internal)?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[server(prefix = "/srv", endpoint = "me")]
pub async fn get_me() -> Result<Me, ServerFnError> {
    let account = require_account().await?;
    me_of(&account).await
}

#[server(prefix = "/srv", endpoint = "workspace_shell")]
pub async fn get_workspace_shell(ws: String) -> Result<WorkspaceShell, ServerFnError> {
    let (account, access) = authorize(&ws, Capability::Read).await?;
    Ok(WorkspaceShell {
        me: me_of(&account).await?,
        current: summary(&access.workspace, access.role),
    })
}

#[server(prefix = "/srv", endpoint = "create_workspace")]
pub async fn create_workspace(name: String) -> Result<(), ServerFnError> {
    let account = require_account().await?;
    let ctx = ctx()?;
    let workspace = domain::workspace::create_workspace_atomically(
        &ctx.db,
        &AccountId::from_db(account.id),
        &name,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    leptos_axum::redirect(&format!("/w/{}", workspace.id));
    Ok(())
}

#[server(prefix = "/srv", endpoint = "workspace_details")]
pub async fn get_workspace_details(ws: String) -> Result<WorkspaceDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    Ok(WorkspaceDetails {
        id: access.workspace.id.clone(),
        name: access.workspace.name.clone(),
        created: when(access.workspace.created_at),
        archived: access.workspace.archived_at.map(when),
        can_administer: access.role.allows(Capability::Administer),
    })
}

#[server(prefix = "/srv", endpoint = "rename_workspace")]
pub async fn rename_workspace(ws: String, name: String) -> Result<String, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let renamed = domain::workspace::rename_workspace(&ctx.db, &access, &name)
        .await
        .map_err(fail)?;
    Ok(renamed.name)
}

#[server(prefix = "/srv", endpoint = "set_workspace_archived")]
pub async fn set_workspace_archived(ws: String, archived: bool) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    domain::workspace::set_archived(&ctx.db, &access, archived, ctx.clock.now())
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "members")]
pub async fn list_members(ws: String) -> Result<MembersView, ServerFnError> {
    let (account, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let id = access.workspace_id();
    let members = domain::workspace::list_members(&ctx.db, &id)
        .await
        .map_err(fail)?;
    let can_manage = access.role.allows(Capability::Administer);
    let invites = if can_manage {
        domain::invite::list_pending(&ctx.db, &id, ctx.clock.now())
            .await
            .map_err(fail)?
    } else {
        Vec::new()
    };
    Ok(MembersView {
        members: members
            .into_iter()
            .map(|m| MemberRow {
                is_me: m.account_id.as_str() == account.id,
                account_id: m.account_id.into_string(),
                email: m.email,
                role: m.role.as_str().into(),
                since: when(m.since),
            })
            .collect(),
        invites: invites
            .into_iter()
            .map(|i| InviteRow {
                id: i.id,
                email: i.email,
                role: i.role,
                expires: when(i.expires_at),
            })
            .collect(),
        can_manage,
    })
}

#[server(prefix = "/srv", endpoint = "add_member")]
pub async fn add_member(ws: String, email: String, role: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let role = Role::parse(&role).map_err(fail)?;
    domain::workspace::add_member(
        &ctx.db,
        &access.workspace_id(),
        &email,
        role,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "change_member_role")]
pub async fn change_member_role(
    ws: String,
    account_id: String,
    role: String,
) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let role = Role::parse(&role).map_err(fail)?;
    let member = AccountId::parse(&account_id).map_err(fail)?;
    domain::workspace::change_role(&ctx.db, &access.workspace_id(), &member, role)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "remove_member")]
pub async fn remove_member(ws: String, account_id: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let member = AccountId::parse(&account_id).map_err(fail)?;
    domain::workspace::remove_member(&ctx.db, &access.workspace_id(), &member)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "create_invite")]
pub async fn create_invite(
    ws: String,
    email: String,
    role: String,
) -> Result<CreatedInvite, ServerFnError> {
    let (account, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let role = Role::parse(&role).map_err(fail)?;
    let new = domain::invite::create_invite(
        &ctx.db,
        &access.workspace_id(),
        &AccountId::from_db(account.id),
        &email,
        role,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    Ok(CreatedInvite {
        email: new.invite.email,
        role: new.invite.role,
        link: format!("{}/invite/{}", ctx.public_url, new.token),
    })
}

#[server(prefix = "/srv", endpoint = "revoke_invite")]
pub async fn revoke_invite(ws: String, invite_id: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let id = domain::InviteId::parse(&invite_id).map_err(fail)?;
    domain::invite::revoke_invite(&ctx.db, &access.workspace_id(), &id)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "invite_info")]
pub async fn get_invite_info(token: String) -> Result<InviteInfo, ServerFnError> {
    let ctx = ctx()?;
    let open = domain::invite::open_invite(&ctx.db, &token, ctx.clock.now())
        .await
        .map_err(fail)?;
    let me = crate::ssr::current_account().await?;
    Ok(InviteInfo {
        workspace_name: open.workspace.name,
        email: open.invite.email,
        role: open.invite.role,
        has_account: open.existing_account.is_some(),
        signed_in_as: me.map(|a| a.email),
    })
}

/// Accepts an invite: as the signed-in account, or by creating the invited email's account.
#[server(prefix = "/srv", endpoint = "accept_invite")]
pub async fn accept_invite(token: String, password: Option<String>) -> Result<(), ServerFnError> {
    let ctx = ctx()?;
    let me = crate::ssr::current_account().await?;
    let me_id = me.as_ref().map(|a| AccountId::from_db(a.id.clone()));
    let (account, workspace) = domain::invite::accept_invite(
        &ctx.db,
        &token,
        me_id.as_ref(),
        password.as_deref(),
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    if me.is_none() {
        start_session(&account).await?;
    }
    leptos_axum::redirect(&format!("/w/{workspace}"));
    Ok(())
}

#[server(prefix = "/srv", endpoint = "api_keys")]
pub async fn list_api_keys(ws: String) -> Result<ApiKeysView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let can_manage = access.role.allows(Capability::Administer);
    let keys = domain::api_key::list_api_keys(&ctx.db, &access.workspace_id())
        .await
        .map_err(fail)?;
    Ok(ApiKeysView {
        keys: keys
            .into_iter()
            .map(|k| ApiKeyRow {
                id: k.id.into_string(),
                name: k.name,
                prefix: k.prefix,
                permissions: k.permissions,
                ip_allowlist: k.ip_allowlist.iter().map(|n| n.to_string()).collect(),
                created: when(k.created_at),
                last_used: k.last_used_at.map(when),
                revoked: k.revoked_at.map(when),
            })
            .collect(),
        can_manage,
        all_permissions: domain::api_key::PERMISSIONS
            .iter()
            .map(|p| p.to_string())
            .collect(),
    })
}

#[server(prefix = "/srv", endpoint = "create_api_key")]
pub async fn create_api_key(
    ws: String,
    name: String,
    #[server(default)] permissions: Vec<String>,
    #[server(default)] ip_allowlist: String,
) -> Result<CreatedApiKey, ServerFnError> {
    let (account, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let new = domain::api_key::create_api_key(
        &ctx.db,
        &access.workspace_id(),
        Some(&AccountId::from_db(account.id)),
        &name,
        &permissions,
        &ip_allowlist,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    Ok(CreatedApiKey {
        name: new.key.name,
        secret: new.secret,
    })
}

#[server(prefix = "/srv", endpoint = "revoke_api_key")]
pub async fn revoke_api_key(ws: String, key_id: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let id = domain::ApiKeyId::parse(&key_id).map_err(fail)?;
    domain::api_key::revoke_api_key(&ctx.db, &access.workspace_id(), &id, ctx.clock.now())
        .await
        .map_err(fail)?;
    Ok(())
}

/// One frequency-capping rule as the settings page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapRuleRow {
    pub id: String,
    /// "every webhook" or "campaigns tagged …".
    pub scope: String,
    pub max_sends: u32,
    pub window: String,
}

/// The workspace's frequency-capping rules and whether the caller may change them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapRulesView {
    pub rules: Vec<CapRuleRow>,
    pub can_administer: bool,
}

#[cfg(feature = "ssr")]
fn window_text(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds {
        s if s % 604_800 == 0 => plural(s / 604_800, "week"),
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s => plural(s / 60, "minute"),
    }
}

#[server(prefix = "/srv", endpoint = "cap_rules")]
pub async fn get_cap_rules(ws: String) -> Result<CapRulesView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let rules = domain::campaign::list_cap_rules(&ctx.db, &access.workspace_id())
        .await
        .map_err(fail)?;
    Ok(CapRulesView {
        rules: rules
            .into_iter()
            .map(|r| CapRuleRow {
                id: r.id,
                scope: match r.tag {
                    Some(tag) => format!("campaigns tagged “{tag}”"),
                    None => "every webhook".into(),
                },
                max_sends: r.max_sends,
                window: window_text(r.window_seconds),
            })
            .collect(),
        can_administer: access.role.allows(Capability::Administer),
    })
}

/// Adds a rule: at most `max_sends` webhooks per user in `amount` `unit`s (`minutes`, `hours`,
/// `days` or `weeks`), optionally only for campaigns tagged `tag`. Admins only.
#[server(prefix = "/srv", endpoint = "create_cap_rule")]
pub async fn create_cap_rule(
    ws: String,
    max_sends: String,
    amount: String,
    unit: String,
    #[server(default)] tag: String,
) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    let max_sends: u32 = max_sends
        .trim()
        .parse()
        .map_err(|_| ServerFnError::new("max_sends: must be a whole number of at least 1"))?;
    let amount: u64 = amount
        .trim()
        .parse()
        .map_err(|_| ServerFnError::new("window: must be a whole number"))?;
    let unit_seconds = match unit.as_str() {
        "minutes" => 60,
        "hours" => 3_600,
        "days" => 86_400,
        "weeks" => 604_800,
        _ => {
            return Err(ServerFnError::new(
                "window: choose minutes, hours, days or weeks",
            ));
        }
    };
    let tag = Some(tag.trim().to_string()).filter(|t| !t.is_empty());
    domain::campaign::create_cap_rule(
        &ctx.db,
        &access.workspace_id(),
        domain::campaign::CapRule {
            id: String::new(),
            tag,
            max_sends,
            window_seconds: amount.saturating_mul(unit_seconds),
        },
        ctx.clock.now(),
    )
    .await
    .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/srv", endpoint = "delete_cap_rule")]
pub async fn delete_cap_rule(ws: String, id: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Administer).await?;
    let ctx = ctx()?;
    domain::campaign::delete_cap_rule(&ctx.db, &access.workspace_id(), &id)
        .await
        .map_err(fail)?;
    Ok(())
}
