//! One-time invite links: an admin invites an email with a role; the link's holder joins, creating
//! an account when the email has none. Only the token's SHA-256 is stored.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use crate::entity::{account, invite, workspace};
use crate::{AccountId, DomainError, DomainResult, InviteId, Role, WorkspaceId, validate};

/// How long an invite link stays valid.
pub const INVITE_VALID_DAYS: i64 = 7;

/// A freshly created invite with its token, which is shown once and never stored.
#[derive(Clone, Debug)]
pub struct NewInvite {
    pub invite: invite::Model,
    pub token: String,
}

/// What a person opening an invite link is told.
#[derive(Clone, Debug)]
pub struct OpenInvite {
    pub invite: invite::Model,
    pub workspace: workspace::Model,
    pub existing_account: Option<account::Model>,
}

pub async fn create_invite(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    by: &AccountId,
    email: &str,
    role: Role,
    now: DateTime<Utc>,
) -> DomainResult<NewInvite> {
    let email = validate::email("email", email)?;
    if let Some(account) = crate::account::find_account_by_email(db, &email).await? {
        let id = AccountId::from_db(account.id);
        if crate::workspace::role_in(db, &id, workspace)
            .await?
            .is_some()
        {
            return Err(DomainError::conflict(
                "email",
                "is already a member of this workspace",
            ));
        }
    }
    let token = crate::secret::random_token(32);
    let invite = invite::ActiveModel {
        workspace_id: Set(workspace.to_string()),
        id: Set(InviteId::generate().into_string()),
        email: Set(email),
        role: Set(role.as_str().into()),
        token_hash: Set(crate::secret::sha256_hex(&token)),
        created_by: Set(by.to_string()),
        created_at: Set(now),
        expires_at: Set(now + Duration::days(INVITE_VALID_DAYS)),
        accepted_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewInvite { invite, token })
}

/// Invites not yet accepted nor expired, newest first.
pub async fn list_pending(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> DomainResult<Vec<invite::Model>> {
    Ok(invite::Entity::find()
        .filter(invite::Column::WorkspaceId.eq(workspace.as_str()))
        .filter(invite::Column::AcceptedAt.is_null())
        .filter(invite::Column::ExpiresAt.gt(now))
        .order_by_desc(invite::Column::CreatedAt)
        .all(db)
        .await?)
}

pub async fn revoke_invite(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &InviteId,
) -> DomainResult<()> {
    let result = invite::Entity::delete_by_id((workspace.to_string(), id.to_string()))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(DomainError::NotFound("invite"));
    }
    Ok(())
}

/// Looks up a usable invite by its token.
pub async fn open_invite(
    db: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> DomainResult<OpenInvite> {
    let invite = invite::Entity::find()
        .filter(invite::Column::TokenHash.eq(crate::secret::sha256_hex(token.trim())))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("invite"))?;
    if invite.accepted_at.is_some() {
        return Err(DomainError::Forbidden(
            "this invite link has already been used".into(),
        ));
    }
    if invite.expires_at <= now {
        return Err(DomainError::Forbidden(
            "this invite link has expired; ask for a new one".into(),
        ));
    }
    let workspace =
        crate::workspace::find_workspace(db, &WorkspaceId::from_db(invite.workspace_id.clone()))
            .await?;
    let existing_account = crate::account::find_account_by_email(db, &invite.email).await?;
    Ok(OpenInvite {
        invite,
        workspace,
        existing_account,
    })
}

/// Accepts an invite. `signed_in` is the account of the person holding the link, if signed in; with
/// none, `new_password` creates the invited email's account. The invite is spent in the same
/// transaction as the membership is created, so a link works exactly once.
pub async fn accept_invite<C>(
    db: &C,
    token: &str,
    signed_in: Option<&AccountId>,
    new_password: Option<&str>,
    now: DateTime<Utc>,
) -> DomainResult<(account::Model, WorkspaceId)>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    let open = open_invite(&txn, token, now).await?;
    let account = match (signed_in, &open.existing_account) {
        (Some(me), Some(existing)) if me.as_str() == existing.id => existing.clone(),
        (Some(_), _) => {
            return Err(DomainError::Forbidden(format!(
                "this invite is for {}; sign in as that account to accept it",
                open.invite.email
            )));
        }
        (None, Some(_)) => {
            return Err(DomainError::Forbidden(format!(
                "{} already has an account; sign in to accept this invite",
                open.invite.email
            )));
        }
        (None, None) => {
            let password = new_password.unwrap_or_default();
            crate::account::create_account(&txn, &open.invite.email, password, false, now).await?
        }
    };
    let workspace = WorkspaceId::from_db(open.invite.workspace_id.clone());
    let role = Role::parse(&open.invite.role)?;
    crate::workspace::insert_membership(
        &txn,
        &workspace,
        &AccountId::from_db(account.id.clone()),
        role,
        now,
    )
    .await?;
    let mut spent = open.invite.into_active_model();
    spent.accepted_at = Set(Some(now));
    spent.update(&txn).await?;
    txn.commit().await?;
    Ok((account, workspace))
}
