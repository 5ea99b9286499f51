//! Webhook signatures per the Standard Webhooks specification: `webhook-signature` carries
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each active secret, space-separated. A
//! rotation keeps the previous secret signing for [`ROTATION_OVERLAP_HOURS`] so receivers can
//! switch without dropping messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Set};
use sha2::Sha256;

use crate::entity::workspace_signing;
use crate::{DomainResult, WorkspaceId};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;
const SECRET_PREFIX: &str = "whsec_";

/// A new random secret, `whsec_` + base64 of 24 bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// One `v1,…` signature of a message with `secret` (a `whsec_` secret or bare base64).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The secrets that sign right now: the current one, and the previous one during its overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeys {
    pub secrets: Vec<String>,
}

impl SigningKeys {
    /// The `webhook-signature` header value.
    pub fn header(&self, id: &str, timestamp: i64, body: &str) -> String {
        self.secrets
            .iter()
            .filter_map(|s| sign(s, id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The workspace's signing settings, created (disabled) on first use.
pub async fn settings(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> DomainResult<workspace_signing::Model> {
    if let Some(row) = workspace_signing::Entity::find_by_id(workspace.as_str())
        .one(db)
        .await?
    {
        return Ok(row);
    }
    let row = workspace_signing::ActiveModel {
        workspace_id: Set(workspace.to_string()),
        enabled: Set(false),
        secret: Set(generate_secret()),
        previous_secret: Set(None),
        previous_until: Set(None),
        rotated_at: Set(now),
    };
    Ok(row.insert(db).await?)
}

/// The keys to sign this workspace's webhooks with, or `None` when signing is off.
pub async fn active_keys(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> DomainResult<Option<SigningKeys>> {
    let Some(row) = workspace_signing::Entity::find_by_id(workspace.as_str())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(keys_of(&row, now))
}

/// The keys of a settings row at `now`.
pub fn keys_of(row: &workspace_signing::Model, now: DateTime<Utc>) -> Option<SigningKeys> {
    if !row.enabled {
        return None;
    }
    let mut secrets = vec![row.secret.clone()];
    if let (Some(previous), Some(until)) = (&row.previous_secret, row.previous_until)
        && until > now
    {
        secrets.push(previous.clone());
    }
    Some(SigningKeys { secrets })
}

/// Turns signing on or off.
pub async fn set_enabled(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    enabled: bool,
    now: DateTime<Utc>,
) -> DomainResult<workspace_signing::Model> {
    let mut row = settings(db, workspace, now).await?.into_active_model();
    row.enabled = Set(enabled);
    Ok(row.update(db).await?)
}

/// Replaces the secret; the old one keeps signing for [`ROTATION_OVERLAP_HOURS`].
pub async fn rotate(
    db: &impl ConnectionTrait,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> DomainResult<workspace_signing::Model> {
    let current = settings(db, workspace, now).await?;
    let previous = current.secret.clone();
    let mut row = current.into_active_model();
    row.previous_secret = Set(Some(previous));
    row.previous_until = Set(Some(now + Duration::hours(ROTATION_OVERLAP_HOURS)));
    row.secret = Set(generate_secret());
    row.rotated_at = Set(now);
    Ok(row.update(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // The example from the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_prefixed_and_decode_to_24_bytes() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 24);
    }

    #[test]
    fn during_a_rotation_both_secrets_sign() {
        let now = Utc::now();
        let row = workspace_signing::Model {
            workspace_id: "w".into(),
            enabled: true,
            secret: generate_secret(),
            previous_secret: Some(generate_secret()),
            previous_until: Some(now + Duration::hours(1)),
            rotated_at: now,
        };
        let keys = keys_of(&row, now).unwrap();
        assert_eq!(keys.header("id", 1, "{}").split(' ').count(), 2);
        assert_eq!(
            keys_of(&row, now + Duration::hours(2))
                .unwrap()
                .secrets
                .len(),
            1
        );
        assert!(
            keys_of(
                &workspace_signing::Model {
                    enabled: false,
                    ..row
                },
                now
            )
            .is_none()
        );
    }
}
