//! REST API keys: created with a name, Braze permission names and an optional IP allowlist; the
//! secret is shown once and stored as its SHA-256; keys are revoked, never edited (as in Braze).
//! The REST API authenticates through a short-lived in-process cache ([`authenticate_cached`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};

use crate::entity::{api_key, workspace};
use crate::{AccountId, ApiKeyId, DomainError, DomainResult, WorkspaceId, validate};

/// Every permission a key can hold: Braze's names for the endpoints Herald serves or will serve,
/// plus `herald.manage` for the management API.
pub const PERMISSIONS: &[&str] = &[
    "users.track",
    "users.delete",
    "users.alias.new",
    "users.identify",
    "users.export.ids",
    "messages.send",
    "messages.schedule.create",
    "messages.schedule.update",
    "messages.schedule.delete",
    "messages.schedule_broadcasts",
    "campaigns.trigger.send",
    "campaigns.trigger.schedule.create",
    "campaigns.trigger.schedule.update",
    "campaigns.trigger.schedule.delete",
    "campaigns.list",
    "campaigns.details",
    "campaigns.data_series",
    "sends.data_series",
    "sends.id.create",
    "canvas.trigger.send",
    "canvas.trigger.schedule.create",
    "canvas.trigger.schedule.update",
    "canvas.trigger.schedule.delete",
    "canvas.list",
    "canvas.details",
    "canvas.data_series",
    "segments.list",
    "segments.details",
    "events.list",
    "herald.manage",
];

/// Prefix of every secret, so a leaked key is recognisable (and greppable by secret scanners).
pub const SECRET_PREFIX: &str = "hrld_";
/// Last-used time is written at most this often per key, to keep the hot path write-light.
const LAST_USED_RESOLUTION_SECS: i64 = 60;
/// How long [`authenticate_cached`] trusts a key it read without reading it again: the longest a
/// revocation made by another process, an archived workspace or a renamed one can go unnoticed.
/// A revocation made by this process takes effect at once.
pub const KEY_CACHE_SECS: u64 = 5;
/// Most keys the cache holds; past that it starts afresh.
const KEY_CACHE_ENTRIES: usize = 10_000;

/// A key as callers see it: permissions and allowlist parsed.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub prefix: String,
    pub permissions: Vec<String>,
    pub ip_allowlist: Vec<IpNet>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    fn from_model(model: api_key::Model) -> Self {
        Self {
            id: ApiKeyId::from_db(model.id),
            workspace_id: WorkspaceId::from_db(model.workspace_id),
            name: model.name,
            prefix: model.prefix,
            permissions: serde_json::from_str(&model.permissions).unwrap_or_default(),
            ip_allowlist: serde_json::from_str(&model.ip_allowlist).unwrap_or_default(),
            created_at: model.created_at,
            last_used_at: model.last_used_at,
            revoked_at: model.revoked_at,
        }
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Whether a request from `ip` may use this key (an empty allowlist allows any address).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.ip_allowlist.is_empty() || self.ip_allowlist.iter().any(|net| net.contains(&ip))
    }
}

/// A key just created, with the secret that is shown once.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Why a presented key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyRejection {
    #[error("Invalid API key")]
    Unknown,
    #[error("This API key has been revoked")]
    Revoked,
    #[error("The workspace of this API key is archived")]
    WorkspaceArchived,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Parses an allowlist typed as CIDRs or single addresses separated by commas, spaces or newlines.
pub fn parse_ip_allowlist(text: &str) -> DomainResult<Vec<IpNet>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    DomainError::invalid(
                        "ip_allowlist",
                        format!("“{part}” is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

/// Checks permission names against [`PERMISSIONS`], dropping duplicates.
pub fn parse_permissions(names: &[String]) -> DomainResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !PERMISSIONS.contains(&name) {
            return Err(DomainError::invalid(
                "permissions",
                format!("“{name}” is not a known permission"),
            ));
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err(DomainError::invalid(
            "permissions",
            "choose at least one permission",
        ));
    }
    Ok(out)
}

pub async fn create_api_key(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    created_by: Option<&AccountId>,
    name: &str,
    permissions: &[String],
    ip_allowlist: &str,
    now: DateTime<Utc>,
) -> DomainResult<NewApiKey> {
    let name = validate::name("name", name, 100)?;
    let permissions = parse_permissions(permissions)?;
    let ip_allowlist = parse_ip_allowlist(ip_allowlist)?;
    let secret = format!("{SECRET_PREFIX}{}", crate::secret::random_token(40));
    let model = api_key::ActiveModel {
        workspace_id: Set(workspace.to_string()),
        id: Set(ApiKeyId::generate().into_string()),
        name: Set(name),
        prefix: Set(secret[..SECRET_PREFIX.len() + 6].to_string()),
        secret_hash: Set(crate::secret::sha256_hex(&secret)),
        permissions: Set(serde_json::to_string(&permissions).expect("strings serialize")),
        ip_allowlist: Set(serde_json::to_string(&ip_allowlist).expect("networks serialize")),
        created_by: Set(created_by.map(|a| a.to_string())),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewApiKey {
        key: ApiKey::from_model(model),
        secret,
    })
}

/// The workspace's keys, revoked ones last, newest first.
pub async fn list_api_keys(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
) -> DomainResult<Vec<ApiKey>> {
    let mut keys: Vec<ApiKey> = api_key::Entity::find()
        .filter(api_key::Column::WorkspaceId.eq(workspace.as_str()))
        .order_by_desc(api_key::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(ApiKey::from_model)
        .collect();
    keys.sort_by_key(|k| k.revoked_at.is_some());
    Ok(keys)
}

pub async fn revoke_api_key(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    id: &ApiKeyId,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let model = api_key::Entity::find_by_id((workspace.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("API key"))?;
    if model.revoked_at.is_none() {
        let mut active = model.into_active_model();
        active.revoked_at = Set(Some(now));
        active.update(db).await?;
    }
    forget_cached(|key, _| &key.id == id);
    Ok(())
}

/// A key [`authenticate_cached`] read lately, by the SHA-256 of its secret.
struct CachedKey {
    key: ApiKey,
    workspace: workspace::Model,
    read_at: Instant,
}

static KEY_CACHE: LazyLock<Mutex<HashMap<String, CachedKey>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn key_cache() -> MutexGuard<'static, HashMap<String, CachedKey>> {
    // A cache poisoned by a panic elsewhere is still a valid cache (entries are inserted whole).
    KEY_CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn forget_cached(matches: impl Fn(&ApiKey, &workspace::Model) -> bool) {
    key_cache().retain(|_, cached| !matches(&cached.key, &cached.workspace));
}

/// Makes [`authenticate_cached`] read this workspace's keys again on their next use: call it after
/// archiving, restoring or renaming the workspace.
pub fn forget_cached_workspace(workspace: &WorkspaceId) {
    forget_cached(|_, ws| ws.id == workspace.as_str());
}

/// [`authenticate`], trusting a successful answer for [`KEY_CACHE_SECS`] (wall-clock time, not
/// the injected clock: it bounds staleness, it is not business time). Refusals are never cached,
/// so a key created a moment ago works at once; revocations by this process take effect at once
/// ([`revoke_api_key`] clears the key), those by others within [`KEY_CACHE_SECS`]. The last-used
/// time is written by the reads that refresh the cache, so it stays within a minute.
pub async fn authenticate_cached(
    db: &impl ConnectionTrait,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(ApiKey, workspace::Model), KeyRejection> {
    let secret = secret.trim();
    if !secret.starts_with(SECRET_PREFIX) {
        return Err(KeyRejection::Unknown);
    }
    let hash = crate::secret::sha256_hex(secret);
    let fresh_for = StdDuration::from_secs(KEY_CACHE_SECS);
    if let Some(cached) = key_cache().get(&hash)
        && cached.read_at.elapsed() < fresh_for
    {
        return Ok((cached.key.clone(), cached.workspace.clone()));
    }
    let read_at = Instant::now();
    let (key, workspace) = authenticate_hash(db, &hash, now).await?;
    let mut cache = key_cache();
    if cache.len() >= KEY_CACHE_ENTRIES {
        cache.retain(|_, cached| cached.read_at.elapsed() < fresh_for);
        if cache.len() >= KEY_CACHE_ENTRIES {
            cache.clear();
        }
    }
    cache.insert(
        hash,
        CachedKey {
            key: key.clone(),
            workspace: workspace.clone(),
            read_at,
        },
    );
    Ok((key, workspace))
}

/// Finds the key a REST caller presented and notes that it was used.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(ApiKey, workspace::Model), KeyRejection> {
    let secret = secret.trim();
    if !secret.starts_with(SECRET_PREFIX) {
        return Err(KeyRejection::Unknown);
    }
    authenticate_hash(db, &crate::secret::sha256_hex(secret), now).await
}

async fn authenticate_hash(
    db: &impl ConnectionTrait,
    secret_hash: &str,
    now: DateTime<Utc>,
) -> Result<(ApiKey, workspace::Model), KeyRejection> {
    let model = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(secret_hash))
        .one(db)
        .await?
        .ok_or(KeyRejection::Unknown)?;
    if model.revoked_at.is_some() {
        return Err(KeyRejection::Revoked);
    }
    let workspace = workspace::Entity::find_by_id(model.workspace_id.as_str())
        .one(db)
        .await?
        .ok_or(KeyRejection::Unknown)?;
    if workspace.archived_at.is_some() {
        return Err(KeyRejection::WorkspaceArchived);
    }
    let stale = model
        .last_used_at
        .is_none_or(|at| now - at >= Duration::seconds(LAST_USED_RESOLUTION_SECS));
    let mut key = ApiKey::from_model(model.clone());
    if stale {
        let mut active = model.into_active_model();
        active.last_used_at = Set(Some(now));
        active.update(db).await?;
        key.last_used_at = Some(now);
    }
    Ok((key, workspace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_accept_cidrs_and_bare_addresses_and_name_the_bad_part() {
        let nets = parse_ip_allowlist("10.0.0.0/8, 192.168.1.7\n2001:db8::/32").unwrap();
        assert_eq!(nets.len(), 3);
        let err = parse_ip_allowlist("10.0.0.0/8, nope").unwrap_err();
        assert_eq!(err.field(), Some("ip_allowlist"));
        assert!(err.to_string().contains("nope"));
        assert!(parse_ip_allowlist("  ").unwrap().is_empty());
    }

    #[test]
    fn permissions_must_be_known_and_at_least_one() {
        let ok = parse_permissions(&["users.track".into(), "users.track".into()]).unwrap();
        assert_eq!(ok, vec!["users.track".to_string()]);
        assert!(parse_permissions(&[]).is_err());
        assert!(
            parse_permissions(&["users.hack".into()])
                .unwrap_err()
                .to_string()
                .contains("users.hack")
        );
    }
}
