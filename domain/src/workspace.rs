//! Workspaces, memberships and the authorization check every caller goes through.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::entity::{account, membership, workspace};
use crate::{AccountId, Capability, DomainError, DomainResult, Role, WorkspaceId, validate};

/// The caller's standing in one workspace, proven by [`authorize`].
#[derive(Clone, Debug)]
pub struct Access {
    pub workspace: workspace::Model,
    pub role: Role,
}

impl Access {
    pub fn workspace_id(&self) -> WorkspaceId {
        WorkspaceId::from_db(self.workspace.id.clone())
    }
}

/// One row of a member list.
#[derive(Clone, Debug)]
pub struct Member {
    pub account_id: AccountId,
    pub email: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

fn role_of(row: &membership::Model) -> Role {
    Role::parse(&row.role).unwrap_or(Role::Viewer)
}

/// Creates a workspace with `creator` as its admin.
pub async fn create_workspace(
    db: &impl ConnectionTrait,
    creator: &AccountId,
    name: &str,
    now: DateTime<Utc>,
) -> DomainResult<workspace::Model> {
    let name = validate::name("name", name, 100)?;
    let workspace = workspace::ActiveModel {
        id: Set(WorkspaceId::generate().into_string()),
        name: Set(name),
        created_at: Set(now),
        archived_at: Set(None),
    }
    .insert(db)
    .await?;
    membership::ActiveModel {
        workspace_id: Set(workspace.id.clone()),
        account_id: Set(creator.to_string()),
        role: Set(Role::Admin.as_str().into()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(workspace)
}

/// Creates a workspace and its first admin in one transaction.
pub async fn create_workspace_atomically<C>(
    db: &C,
    creator: &AccountId,
    name: &str,
    now: DateTime<Utc>,
) -> DomainResult<workspace::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    let workspace = create_workspace(&txn, creator, name, now).await?;
    txn.commit().await?;
    Ok(workspace)
}

pub async fn find_workspace(
    db: &impl ConnectionTrait,
    id: &WorkspaceId,
) -> DomainResult<workspace::Model> {
    workspace::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("workspace"))
}

/// The one active workspace with this name; names are not unique, so several is an error.
pub async fn find_workspace_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> DomainResult<workspace::Model> {
    let mut found = workspace::Entity::find()
        .filter(workspace::Column::Name.eq(name.trim()))
        .filter(workspace::Column::ArchivedAt.is_null())
        .all(db)
        .await?;
    match found.len() {
        0 => Err(DomainError::NotFound("workspace")),
        1 => Ok(found.remove(0)),
        n => Err(DomainError::invalid(
            "workspace",
            format!("{n} active workspaces have this name; use the id"),
        )),
    }
}

/// The account's role in the workspace, if it is a member.
pub async fn role_in(
    db: &impl ConnectionTrait,
    account: &AccountId,
    workspace: &WorkspaceId,
) -> DomainResult<Option<Role>> {
    Ok(
        membership::Entity::find_by_id((workspace.to_string(), account.to_string()))
            .one(db)
            .await?
            .map(|m| role_of(&m)),
    )
}

/// Checks that `account` may do `capability` in `workspace`. A non-member gets `NotFound`, the same
/// answer as for a workspace that does not exist, so nothing leaks across workspaces. An archived
/// workspace is read-only except for its admins' settings.
pub async fn authorize(
    db: &impl ConnectionTrait,
    account: &AccountId,
    workspace_id: &WorkspaceId,
    capability: Capability,
) -> DomainResult<Access> {
    let role = role_in(db, account, workspace_id)
        .await?
        .ok_or(DomainError::NotFound("workspace"))?;
    let workspace = find_workspace(db, workspace_id).await?;
    if !role.allows(capability) {
        let needed = match capability {
            Capability::Administer => "an Admin",
            _ => "an Admin or a Marketer",
        };
        return Err(DomainError::Forbidden(format!(
            "only {needed} of this workspace can do this; you are a {}",
            role.label()
        )));
    }
    if capability == Capability::Build && workspace.archived_at.is_some() {
        return Err(DomainError::Forbidden(
            "this workspace is archived; restore it first".into(),
        ));
    }
    Ok(Access { workspace, role })
}

/// The account's workspaces with its role in each, archived ones last, then by name.
pub async fn workspaces_of(
    db: &impl ConnectionTrait,
    account: &AccountId,
) -> DomainResult<Vec<(workspace::Model, Role)>> {
    let memberships = membership::Entity::find()
        .filter(membership::Column::AccountId.eq(account.as_str()))
        .all(db)
        .await?;
    let ids: Vec<String> = memberships.iter().map(|m| m.workspace_id.clone()).collect();
    let workspaces = workspace::Entity::find()
        .filter(workspace::Column::Id.is_in(ids))
        .order_by_asc(workspace::Column::Name)
        .all(db)
        .await?;
    let mut out: Vec<_> = workspaces
        .into_iter()
        .filter_map(|w| {
            let role = memberships
                .iter()
                .find(|m| m.workspace_id == w.id)
                .map(role_of)?;
            Some((w, role))
        })
        .collect();
    out.sort_by_key(|(w, _)| w.archived_at.is_some());
    Ok(out)
}

pub async fn rename_workspace(
    db: &impl ConnectionTrait,
    access: &Access,
    name: &str,
) -> DomainResult<workspace::Model> {
    let name = validate::name("name", name, 100)?;
    let mut model = access.workspace.clone().into_active_model();
    model.name = Set(name);
    let renamed = model.update(db).await?;
    // Cached API-key checks carry the workspace: this process sees the change at once.
    crate::api_key::forget_cached_workspace(&WorkspaceId::from_db(renamed.id.clone()));
    Ok(renamed)
}

/// Archives (or restores) a workspace. Archived workspaces leave the switcher, refuse changes and
/// their API keys stop working.
pub async fn set_archived(
    db: &impl ConnectionTrait,
    access: &Access,
    archived: bool,
    now: DateTime<Utc>,
) -> DomainResult<workspace::Model> {
    let mut model = access.workspace.clone().into_active_model();
    model.archived_at = Set(archived.then_some(now));
    let changed = model.update(db).await?;
    // An archived workspace's keys stop working at once in this process (other processes follow
    // within the key cache's few seconds).
    crate::api_key::forget_cached_workspace(&WorkspaceId::from_db(changed.id.clone()));
    Ok(changed)
}

pub async fn list_members(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
) -> DomainResult<Vec<Member>> {
    let rows = membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace.as_str()))
        .order_by_asc(membership::Column::CreatedAt)
        .all(db)
        .await?;
    let ids: Vec<String> = rows.iter().map(|m| m.account_id.clone()).collect();
    let accounts = account::Entity::find()
        .filter(account::Column::Id.is_in(ids))
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|m| {
            let account = accounts.iter().find(|a| a.id == m.account_id)?;
            Some(Member {
                account_id: AccountId::from_db(m.account_id.clone()),
                email: account.email.clone(),
                role: role_of(m),
                since: m.created_at,
            })
        })
        .collect())
}

/// Adds an existing account to the workspace.
pub async fn add_member(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    email: &str,
    role: Role,
    now: DateTime<Utc>,
) -> DomainResult<Member> {
    let email = validate::email("email", email)?;
    let account = crate::account::find_account_by_email(db, &email)
        .await?
        .ok_or_else(|| {
            DomainError::invalid(
                "email",
                "no account has this email; create an invite link instead",
            )
        })?;
    let account_id = AccountId::from_db(account.id.clone());
    insert_membership(db, workspace, &account_id, role, now).await?;
    Ok(Member {
        account_id,
        email: account.email,
        role,
        since: now,
    })
}

pub(crate) async fn insert_membership(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    account: &AccountId,
    role: Role,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    if role_in(db, account, workspace).await?.is_some() {
        return Err(DomainError::conflict(
            "email",
            "is already a member of this workspace",
        ));
    }
    membership::ActiveModel {
        workspace_id: Set(workspace.to_string()),
        account_id: Set(account.to_string()),
        role: Set(role.as_str().into()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Serialises membership changes of one workspace (PostgreSQL row lock; SQLite transactions are
/// serial already), so two admins demoting each other at once cannot both pass the last-admin check.
async fn lock_workspace(db: &impl ConnectionTrait, workspace: &WorkspaceId) -> DomainResult<()> {
    workspace::Entity::find_by_id(workspace.as_str())
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("workspace"))?;
    Ok(())
}

async fn admin_count(db: &impl ConnectionTrait, workspace: &WorkspaceId) -> DomainResult<u64> {
    Ok(membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace.as_str()))
        .filter(membership::Column::Role.eq(Role::Admin.as_str()))
        .count(db)
        .await?)
}

async fn find_membership(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    account: &AccountId,
) -> DomainResult<membership::Model> {
    membership::Entity::find_by_id((workspace.to_string(), account.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("member"))
}

/// Changes a member's role; the last admin cannot be demoted. Runs in a transaction so two admins
/// demoting each other at once cannot leave the workspace without one.
pub async fn change_role<C>(
    db: &C,
    workspace: &WorkspaceId,
    account: &AccountId,
    role: Role,
) -> DomainResult<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    lock_workspace(&txn, workspace).await?;
    let row = find_membership(&txn, workspace, account).await?;
    if role_of(&row) == Role::Admin
        && role != Role::Admin
        && admin_count(&txn, workspace).await? <= 1
    {
        return Err(DomainError::invalid(
            "role",
            "the last admin of a workspace must stay an admin",
        ));
    }
    let mut model = row.into_active_model();
    model.role = Set(role.as_str().into());
    model.update(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Removes a member; the last admin cannot be removed.
pub async fn remove_member<C>(
    db: &C,
    workspace: &WorkspaceId,
    account: &AccountId,
) -> DomainResult<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    lock_workspace(&txn, workspace).await?;
    let row = find_membership(&txn, workspace, account).await?;
    if role_of(&row) == Role::Admin && admin_count(&txn, workspace).await? <= 1 {
        return Err(DomainError::Forbidden(
            "the last admin of a workspace cannot be removed".into(),
        ));
    }
    membership::Entity::delete_by_id((row.workspace_id, row.account_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}
