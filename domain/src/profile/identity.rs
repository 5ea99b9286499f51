//! `/users/delete`, `/users/identify` and `/users/alias/new`: removing users, merging alias-only
//! users into identified ones, and naming users with aliases.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
    TransactionTrait,
};
use serde_json::{Map, Value as Json};

use super::{
    MAX_USERS_PER_REQUEST, UserAlias, alias_rows, custom_attributes, lock_for_write, string_list,
};
use crate::entity::{event_inbox, profile, profile_alias, profile_event, profile_purchase};
use crate::{DomainError, DomainResult, ProfileId, WorkspaceId, validate};

const DELETE_KINDS: &[&str] = &[
    "external_ids",
    "user_aliases",
    "braze_ids",
    "email_addresses",
    "phone_numbers",
];

fn body_object(body: &Json) -> DomainResult<&Map<String, Json>> {
    body.as_object()
        .ok_or_else(|| DomainError::invalid("body", "must be a JSON object"))
}

fn array<'a>(obj: &'a Map<String, Json>, field: &'static str) -> DomainResult<&'a [Json]> {
    let items = match obj.get(field) {
        None | Some(Json::Null) => return Ok(&[]),
        Some(Json::Array(items)) => items,
        Some(_) => return Err(DomainError::invalid(field, "must be an array")),
    };
    if items.len() > MAX_USERS_PER_REQUEST {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_USERS_PER_REQUEST} per request"),
        ));
    }
    Ok(items)
}

/// `/users/delete`: deletes up to 50 users named by one kind of identifier (`external_ids`,
/// `user_aliases`, `braze_ids`, `email_addresses` or `phone_numbers`) with their aliases, events,
/// purchases and pending inbox rows, and returns how many were deleted. An email or phone shared
/// by several users deletes none of them unless `prioritization` (`identified`, `unidentified`,
/// `most_recently_updated`, applied in order) singles one out.
pub async fn delete_users<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    body: &Json,
) -> Result<u64, DomainError> {
    let obj = body_object(body)?;
    let present: Vec<&'static str> = DELETE_KINDS
        .iter()
        .copied()
        .filter(|kind| obj.get(*kind).is_some_and(|v| !v.is_null()))
        .collect();
    let kind = match present.as_slice() {
        [kind] => *kind,
        [] => {
            return Err(DomainError::invalid(
                "external_ids",
                "name users by one of external_ids, user_aliases, braze_ids, email_addresses or phone_numbers",
            ));
        }
        [_, second, ..] => {
            return Err(DomainError::invalid(
                second,
                "name users by only one kind of identifier per request",
            ));
        }
    };
    let items = array(obj, kind)?;
    let txn = db.begin().await?;
    lock_for_write(&txn).await?;
    let ws_col = profile::Column::WorkspaceId.eq(ws.as_str());
    let ids: Vec<String> = match kind {
        "external_ids" | "braze_ids" => {
            let values = string_list(obj, kind)?;
            let column = if kind == "external_ids" {
                profile::Column::ExternalId
            } else {
                profile::Column::Id
            };
            if values.is_empty() {
                Vec::new()
            } else {
                profile::Entity::find()
                    .filter(ws_col)
                    .filter(column.is_in(values))
                    .all(&txn)
                    .await?
                    .into_iter()
                    .map(|p| p.id)
                    .collect()
            }
        }
        "user_aliases" => {
            let aliases = items
                .iter()
                .map(UserAlias::from_json)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| DomainError::invalid("user_aliases", m))?;
            alias_rows(&txn, ws, &aliases)
                .await?
                .into_iter()
                .map(|a| a.profile_id)
                .collect()
        }
        "email_addresses" => {
            let mut wanted = Vec::new();
            for item in items {
                let (email, prioritization) = match item {
                    Json::String(email) => (email.as_str(), Vec::new()),
                    Json::Object(o) => {
                        let email = o.get("email").and_then(Json::as_str).ok_or_else(|| {
                            DomainError::invalid("email_addresses", "each needs an email")
                        })?;
                        let prioritization = prioritization_of(o, "email_addresses")?;
                        (email, prioritization)
                    }
                    _ => {
                        return Err(DomainError::invalid(
                            "email_addresses",
                            "each must be an email or {email, prioritization}",
                        ));
                    }
                };
                wanted.push((email.trim().to_lowercase(), prioritization));
            }
            let emails: Vec<String> = wanted.iter().map(|(e, _)| e.clone()).collect();
            let found = by_column(&txn, ws, profile::Column::Email, emails).await?;
            wanted
                .iter()
                .filter_map(|(email, prio)| {
                    let candidates = found.get(email).cloned().unwrap_or_default();
                    prioritize(candidates, prio)
                })
                .collect()
        }
        _ => {
            let phones = string_list(obj, "phone_numbers")?;
            let found = by_column(&txn, ws, profile::Column::Phone, phones.clone()).await?;
            phones
                .iter()
                .filter_map(|phone| prioritize(found.get(phone).cloned().unwrap_or_default(), &[]))
                .collect()
        }
    };
    let deleted = delete_profiles(&txn, ws, ids).await?;
    txn.commit().await?;
    Ok(deleted)
}

/// An item's `prioritization`: an ordered list of `identified`, `unidentified` and
/// `most_recently_updated` (none when absent).
fn prioritization_of(item: &Map<String, Json>, field: &'static str) -> DomainResult<Vec<String>> {
    match item.get("prioritization") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(p)) => p
            .iter()
            .map(|v| match v.as_str() {
                Some(s @ ("identified" | "unidentified" | "most_recently_updated")) => {
                    Ok(s.to_owned())
                }
                _ => Err(DomainError::invalid(
                    field,
                    "prioritization takes identified, unidentified and most_recently_updated",
                )),
            })
            .collect(),
        Some(_) => Err(DomainError::invalid(
            field,
            "prioritization must be an array",
        )),
    }
}

/// Profiles whose `column` is one of `values`, grouped by that value.
async fn by_column(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    column: profile::Column,
    values: Vec<String>,
) -> DomainResult<HashMap<String, Vec<profile::Model>>> {
    let mut out: HashMap<String, Vec<profile::Model>> = HashMap::new();
    if values.is_empty() {
        return Ok(out);
    }
    for row in profile::Entity::find()
        .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
        .filter(column.is_in(values))
        .all(db)
        .await?
    {
        let key = match column {
            profile::Column::Email => row.email.clone(),
            _ => row.phone.clone(),
        };
        if let Some(key) = key {
            out.entry(key).or_default().push(row);
        }
    }
    Ok(out)
}

/// The one profile `prioritization` picks among those sharing an email, or none when it is
/// ambiguous.
fn prioritize(mut candidates: Vec<profile::Model>, prioritization: &[String]) -> Option<String> {
    if candidates.len() > 1 {
        for rule in prioritization {
            match rule.as_str() {
                "identified" => candidates.retain(|p| p.external_id.is_some()),
                "unidentified" => candidates.retain(|p| p.external_id.is_none()),
                _ => {
                    let latest = candidates.iter().map(|p| p.updated_at).max()?;
                    candidates.retain(|p| p.updated_at == latest);
                }
            }
            if candidates.len() <= 1 {
                break;
            }
        }
    }
    match candidates.as_slice() {
        [only] => Some(only.id.clone()),
        _ => None,
    }
}

/// Deletes profiles with everything that belongs to them.
async fn delete_profiles(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    ids: Vec<String>,
) -> DomainResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    profile_event::Entity::delete_many()
        .filter(profile_event::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_event::Column::ProfileId.is_in(ids.clone()))
        .exec(db)
        .await?;
    profile_purchase::Entity::delete_many()
        .filter(profile_purchase::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_purchase::Column::ProfileId.is_in(ids.clone()))
        .exec(db)
        .await?;
    event_inbox::Entity::delete_many()
        .filter(event_inbox::Column::WorkspaceId.eq(ws.as_str()))
        .filter(event_inbox::Column::ProfileId.is_in(ids.clone()))
        .filter(event_inbox::Column::HandledAt.is_null())
        .exec(db)
        .await?;
    profile_alias::Entity::delete_many()
        .filter(profile_alias::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_alias::Column::ProfileId.is_in(ids.clone()))
        .exec(db)
        .await?;
    let result = profile::Entity::delete_many()
        .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

fn new_profile(
    ws: &WorkspaceId,
    external_id: Option<String>,
    now: DateTime<Utc>,
) -> profile::ActiveModel {
    profile::ActiveModel {
        workspace_id: Set(ws.to_string()),
        id: Set(ProfileId::generate().into_string()),
        external_id: Set(external_id),
        email: Set(None),
        phone: Set(None),
        first_name: Set(None),
        last_name: Set(None),
        gender: Set(None),
        date_of_birth: Set(None),
        country: Set(None),
        home_city: Set(None),
        language: Set(None),
        time_zone: Set(None),
        custom_attributes: Set("{}".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn alias_row(ws: &WorkspaceId, alias: &UserAlias, profile_id: &str) -> profile_alias::ActiveModel {
    profile_alias::ActiveModel {
        workspace_id: Set(ws.to_string()),
        alias_label: Set(alias.alias_label.clone()),
        alias_name: Set(alias.alias_name.clone()),
        profile_id: Set(profile_id.to_owned()),
    }
}

fn external_id_of(item: &Map<String, Json>, field: &'static str) -> DomainResult<Option<String>> {
    match item.get("external_id") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(DomainError::invalid(
            field,
            "external_id must be a non-empty string",
        )),
    }
}

/// An email-only or phone-only user to identify: which column, which value, and how to choose
/// among several such users.
struct ContactItem {
    external_id: String,
    column: profile::Column,
    value: String,
    prioritization: Vec<String>,
}

/// The identify arrays, in the order they are processed, with what names each item.
const IDENTIFY_KINDS: &[&str] = &[
    "aliases_to_identify",
    "emails_to_identify",
    "phone_numbers_to_identify",
];

/// `/users/identify`: merges alias-only, email-only and phone-only users into identified ones.
///
/// - `aliases_to_identify[{external_id, user_alias}]`: merges each alias-only user into the user
///   with that external id (custom attributes merged with the identified user's values winning,
///   standard attributes it lacks filled in, events, purchases and aliases moved) and deletes it;
///   when no user has the external id, the alias-only user takes it. An alias that names nobody
///   is added to the identified user (created if need be). An alias that already belongs to a
///   different identified user is left alone.
/// - `emails_to_identify[{external_id, email, prioritization?}]` and
///   `phone_numbers_to_identify[{external_id, phone, prioritization?}]`: the email-only (or
///   phone-only) user, a user without an external id holding that email (or phone), is merged
///   the same way, or takes the external id when nobody has it. When several such users hold the
///   value, `prioritization` (`identified`, `unidentified`, `most_recently_updated`, applied in
///   order, as for [`delete_users`]) must single one out, or the item is skipped (as every
///   candidate is unidentified, `identified` singles out none: use `unidentified` or
///   `most_recently_updated`). An email or phone that no anonymous user holds creates nobody and
///   changes nothing.
///
/// At most [`MAX_USERS_PER_REQUEST`] items in all three arrays together, processed aliases, then
/// emails, then phones, in one transaction.
///
/// Returns how many items were processed (reported as Braze's `aliases_processed`, which thus
/// counts emails and phone numbers too): an item counts when its user was merged into the
/// identified one or given the external id, or already was that identified user (so a retried
/// request reports the same number). Skipped items (an alias of another identified user, an
/// ambiguous or unmatched email or phone) do not count.
pub async fn identify<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    body: &Json,
    now: DateTime<Utc>,
) -> Result<usize, DomainError> {
    const ALIASES: &str = "aliases_to_identify";
    const EMAILS: &str = "emails_to_identify";
    const PHONES: &str = "phone_numbers_to_identify";
    let obj = body_object(body)?;
    let mut total = 0;
    for field in IDENTIFY_KINDS {
        total += array(obj, field)?.len();
        if total > MAX_USERS_PER_REQUEST {
            return Err(DomainError::invalid(
                field,
                format!(
                    "at most {MAX_USERS_PER_REQUEST} aliases, emails and phone numbers per \
                     request, across {}",
                    IDENTIFY_KINDS.join(", ")
                ),
            ));
        }
    }
    if total == 0 {
        return Err(DomainError::invalid(
            ALIASES,
            "name at least one alias, email or phone number to identify",
        ));
    }
    let mut aliases = Vec::new();
    for item in array(obj, ALIASES)? {
        let item = item
            .as_object()
            .ok_or_else(|| DomainError::invalid(ALIASES, "each must be an object"))?;
        let external_id = external_id_of(item, ALIASES)?
            .ok_or_else(|| DomainError::invalid(ALIASES, "each needs an external_id"))?;
        let alias = UserAlias::from_json(item.get("user_alias").unwrap_or(&Json::Null))
            .map_err(|m| DomainError::invalid(ALIASES, m))?;
        aliases.push((external_id, alias));
    }
    let mut contacts = Vec::new();
    for (field, key, column) in [
        (EMAILS, "email", profile::Column::Email),
        (PHONES, "phone", profile::Column::Phone),
    ] {
        for item in array(obj, field)? {
            let item = item
                .as_object()
                .ok_or_else(|| DomainError::invalid(field, "each must be an object"))?;
            let external_id = external_id_of(item, field)?
                .ok_or_else(|| DomainError::invalid(field, "each needs an external_id"))?;
            let value = match item.get(key).and_then(Json::as_str).map(str::trim) {
                Some(text) if !text.is_empty() => text.to_owned(),
                _ => {
                    return Err(DomainError::invalid(
                        field,
                        format!("each needs a non-empty {key}"),
                    ));
                }
            };
            // Stored emails are lower case (as `/users/track` writes them).
            let value = if key == "email" {
                validate::email(field, &value)
                    .map_err(|_| DomainError::invalid(field, "email is not an email address"))?
            } else {
                value
            };
            contacts.push(ContactItem {
                external_id,
                column,
                value,
                prioritization: prioritization_of(item, field)?,
            });
        }
    }
    let txn = db.begin().await?;
    lock_for_write(&txn).await?;
    let mut processed = 0;
    for (external_id, alias) in aliases {
        if identify_alias(&txn, ws, external_id, alias, now).await? {
            processed += 1;
        }
    }
    for item in contacts {
        if identify_contact(&txn, ws, item, now).await? {
            processed += 1;
        }
    }
    txn.commit().await?;
    Ok(processed)
}

/// One `aliases_to_identify` item; whether it counts as processed.
async fn identify_alias(
    txn: &impl ConnectionTrait,
    ws: &WorkspaceId,
    external_id: String,
    alias: UserAlias,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    let alias_row_found = alias_rows(txn, ws, std::slice::from_ref(&alias))
        .await?
        .into_iter()
        .next();
    let identified = super::find_by_external_id(txn, ws, &external_id).await?;
    let Some(alias_found) = alias_row_found else {
        let target = match identified {
            Some(p) => p.id,
            None => {
                new_profile(ws, Some(external_id), now)
                    .insert(txn)
                    .await?
                    .id
            }
        };
        alias_row(ws, &alias, &target).insert(txn).await?;
        return Ok(true);
    };
    let aliased = profile::Entity::find_by_id((ws.to_string(), alias_found.profile_id.clone()))
        .one(txn)
        .await?;
    let Some(aliased) = aliased else {
        return Ok(false);
    };
    if let Some(existing) = &aliased.external_id {
        return Ok(*existing == external_id);
    }
    identify_anonymous(txn, ws, aliased, identified, external_id, now).await?;
    Ok(true)
}

/// One `emails_to_identify` or `phone_numbers_to_identify` item; whether it counts as processed.
async fn identify_contact(
    txn: &impl ConnectionTrait,
    ws: &WorkspaceId,
    item: ContactItem,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    let identified = super::find_by_external_id(txn, ws, &item.external_id).await?;
    let candidates = profile::Entity::find()
        .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
        .filter(item.column.eq(item.value.as_str()))
        .filter(profile::Column::ExternalId.is_null())
        .all(txn)
        .await?;
    if candidates.is_empty() {
        // Nothing left to merge: done already if the identified user holds the value.
        let holds = identified.is_some_and(|p| {
            let held = match item.column {
                profile::Column::Email => p.email,
                _ => p.phone,
            };
            held.as_deref() == Some(item.value.as_str())
        });
        return Ok(holds);
    }
    let Some(chosen) = prioritize(candidates.clone(), &item.prioritization) else {
        return Ok(false);
    };
    let Some(anonymous) = candidates.into_iter().find(|p| p.id == chosen) else {
        return Ok(false);
    };
    identify_anonymous(txn, ws, anonymous, identified, item.external_id, now).await?;
    Ok(true)
}

/// Merges an anonymous user into the identified one, or gives it the external id when there is
/// no identified user yet.
async fn identify_anonymous(
    txn: &impl ConnectionTrait,
    ws: &WorkspaceId,
    anonymous: profile::Model,
    identified: Option<profile::Model>,
    external_id: String,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    match identified {
        None => {
            let mut model = anonymous.into_active_model();
            model.external_id = Set(Some(external_id));
            model.updated_at = Set(now);
            model.update(txn).await?;
            Ok(())
        }
        Some(identified) => merge_into(txn, ws, anonymous, identified, now).await,
    }
}

/// Moves everything of `from` to `into` and deletes `from`.
async fn merge_into(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    from: profile::Model,
    into: profile::Model,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut custom = custom_attributes(&from);
    custom.extend(custom_attributes(&into));
    let fill = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let merged = profile::ActiveModel {
        workspace_id: Set(into.workspace_id.clone()),
        id: Set(into.id.clone()),
        external_id: Set(into.external_id.clone()),
        email: Set(fill(&into.email, &from.email)),
        phone: Set(fill(&into.phone, &from.phone)),
        first_name: Set(fill(&into.first_name, &from.first_name)),
        last_name: Set(fill(&into.last_name, &from.last_name)),
        gender: Set(fill(&into.gender, &from.gender)),
        date_of_birth: Set(fill(&into.date_of_birth, &from.date_of_birth)),
        country: Set(fill(&into.country, &from.country)),
        home_city: Set(fill(&into.home_city, &from.home_city)),
        language: Set(fill(&into.language, &from.language)),
        time_zone: Set(fill(&into.time_zone, &from.time_zone)),
        custom_attributes: Set(Json::Object(custom).to_string()),
        created_at: Set(into.created_at.min(from.created_at)),
        updated_at: Set(now),
    };
    merged.update(db).await?;
    let to = Expr::value(into.id.clone());
    profile_event::Entity::update_many()
        .col_expr(profile_event::Column::ProfileId, to.clone())
        .filter(profile_event::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_event::Column::ProfileId.eq(from.id.as_str()))
        .exec(db)
        .await?;
    profile_purchase::Entity::update_many()
        .col_expr(profile_purchase::Column::ProfileId, to.clone())
        .filter(profile_purchase::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_purchase::Column::ProfileId.eq(from.id.as_str()))
        .exec(db)
        .await?;
    event_inbox::Entity::update_many()
        .col_expr(event_inbox::Column::ProfileId, to.clone())
        .filter(event_inbox::Column::WorkspaceId.eq(ws.as_str()))
        .filter(event_inbox::Column::ProfileId.eq(from.id.as_str()))
        .exec(db)
        .await?;
    profile_alias::Entity::update_many()
        .col_expr(profile_alias::Column::ProfileId, to)
        .filter(profile_alias::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_alias::Column::ProfileId.eq(from.id.as_str()))
        .exec(db)
        .await?;
    profile::Entity::delete_by_id((ws.to_string(), from.id))
        .exec(db)
        .await?;
    Ok(())
}

/// `/users/alias/new` with `user_aliases[{external_id?, alias_name, alias_label}]`: adds each
/// alias to the user with that external id (created if unknown), or creates an alias-only user.
/// An alias that already exists is skipped and not counted. Returns how many were added.
pub async fn new_aliases<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    body: &Json,
    now: DateTime<Utc>,
) -> Result<usize, DomainError> {
    const FIELD: &str = "user_aliases";
    let obj = body_object(body)?;
    let items = array(obj, FIELD)?;
    if items.is_empty() {
        return Err(DomainError::invalid(FIELD, "name at least one alias"));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let map = item
            .as_object()
            .ok_or_else(|| DomainError::invalid(FIELD, "each must be an object"))?;
        let alias = UserAlias::from_json(item).map_err(|m| DomainError::invalid(FIELD, m))?;
        parsed.push((external_id_of(map, FIELD)?, alias));
    }
    let txn = db.begin().await?;
    lock_for_write(&txn).await?;
    let mut added = 0;
    for (external_id, alias) in parsed {
        if !alias_rows(&txn, ws, std::slice::from_ref(&alias))
            .await?
            .is_empty()
        {
            continue;
        }
        let target = match &external_id {
            Some(external_id) => super::find_by_external_id(&txn, ws, external_id).await?,
            None => None,
        };
        let target = match target {
            Some(p) => p.id,
            None => new_profile(ws, external_id, now).insert(&txn).await?.id,
        };
        alias_row(ws, &alias, &target).insert(&txn).await?;
        added += 1;
    }
    txn.commit().await?;
    Ok(added)
}
