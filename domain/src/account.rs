//! Accounts: creation (including the first-run owner), sign-in with throttling.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::entity::{account, sign_in_failure, workspace};
use crate::{AccountId, DomainError, DomainResult, validate};

/// Failed sign-ins allowed per email within [`THROTTLE_WINDOW_MINUTES`].
pub const MAX_FAILED_SIGN_INS: u64 = 5;
/// How long failed sign-ins count against an email.
pub const THROTTLE_WINDOW_MINUTES: i64 = 15;

pub fn account_id(model: &account::Model) -> AccountId {
    AccountId::from_db(model.id.clone())
}

/// Whether any account exists yet (the dashboard offers first-run set-up when none does).
pub async fn has_accounts(db: &impl ConnectionTrait) -> DomainResult<bool> {
    Ok(account::Entity::find().count(db).await? > 0)
}

pub async fn find_account(
    db: &impl ConnectionTrait,
    id: &AccountId,
) -> DomainResult<account::Model> {
    account::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("account"))
}

pub async fn find_account_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> DomainResult<Option<account::Model>> {
    let email = email.trim().to_lowercase();
    Ok(account::Entity::find()
        .filter(account::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// Creates an account after checking the email and password.
pub async fn create_account(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    is_owner: bool,
    now: DateTime<Utc>,
) -> DomainResult<account::Model> {
    let email = validate::email("email", email)?;
    validate::password("password", password)?;
    if find_account_by_email(db, &email).await?.is_some() {
        return Err(DomainError::conflict(
            "email",
            "an account with this email already exists",
        ));
    }
    let model = account::ActiveModel {
        id: Set(AccountId::generate().into_string()),
        email: Set(email),
        password_hash: Set(crate::secret::hash_password(password)),
        is_owner: Set(is_owner),
        created_at: Set(now),
    };
    Ok(model.insert(db).await?)
}

/// First run: creates the owner account and its first workspace, all or nothing. Refused once any
/// account exists.
pub async fn create_owner<C>(
    db: &C,
    email: &str,
    password: &str,
    workspace_name: &str,
    now: DateTime<Utc>,
) -> DomainResult<(account::Model, workspace::Model)>
where
    C: ConnectionTrait + TransactionTrait,
{
    let workspace_name = validate::name("workspace_name", workspace_name, 100)?;
    let txn = db.begin().await?;
    if has_accounts(&txn).await? {
        return Err(DomainError::Forbidden(
            "Herald already has an owner; sign in instead".into(),
        ));
    }
    let owner = create_account(&txn, email, password, true, now).await?;
    let workspace =
        crate::workspace::create_workspace(&txn, &account_id(&owner), &workspace_name, now).await?;
    txn.commit().await?;
    Ok((owner, workspace))
}

/// Checks an email and password. After [`MAX_FAILED_SIGN_INS`] failures within the window the email
/// is refused until the oldest of them ages out, whatever the password.
pub async fn sign_in(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    now: DateTime<Utc>,
) -> DomainResult<account::Model> {
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return Err(DomainError::invalid("email", "is required"));
    }
    if password.is_empty() {
        return Err(DomainError::invalid("password", "is required"));
    }
    let since = now - Duration::minutes(THROTTLE_WINDOW_MINUTES);
    let recent = sign_in_failure::Entity::find()
        .filter(sign_in_failure::Column::Email.eq(&email))
        .filter(sign_in_failure::Column::FailedAt.gt(since))
        .order_by_desc(sign_in_failure::Column::FailedAt)
        .limit(MAX_FAILED_SIGN_INS)
        .all(db)
        .await?;
    if recent.len() as u64 >= MAX_FAILED_SIGN_INS {
        let oldest = recent.last().map(|f| f.failed_at).unwrap_or(now);
        let until = oldest + Duration::minutes(THROTTLE_WINDOW_MINUTES);
        let retry_after_secs = (until - now).num_seconds().max(1) as u64;
        return Err(DomainError::Throttled { retry_after_secs });
    }
    let found = find_account_by_email(db, &email).await?;
    let ok = match &found {
        Some(account) => crate::secret::verify_password(password, &account.password_hash),
        None => {
            // Spend the same time as a real check so response times do not reveal which emails exist.
            let _ = crate::secret::verify_password(password, DUMMY_HASH);
            false
        }
    };
    match found {
        Some(account) if ok => {
            sign_in_failure::Entity::delete_many()
                .filter(sign_in_failure::Column::Email.eq(&email))
                .exec(db)
                .await?;
            Ok(account)
        }
        _ => {
            sign_in_failure::ActiveModel {
                email: Set(email),
                failed_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?;
            sign_in_failure::Entity::delete_many()
                .filter(sign_in_failure::Column::FailedAt.lt(since))
                .exec(db)
                .await?;
            Err(DomainError::BadCredentials)
        }
    }
}

/// An argon2id hash of a random password, verified against when the email is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$N0Ww5xE2iLqX9pQ8pXbH2f6g0ZK8W3d3nqQe1X7fK4s";
