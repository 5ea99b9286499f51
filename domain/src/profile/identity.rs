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
use crate::{DomainError, DomainResult, ProfileId, WorkspaceId};

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
                        let prioritization = match o.get("prioritization") {
                            None | Some(Json::Null) => Vec::new(),
                            Some(Json::Array(p)) => p
                                .iter()
                                .map(|v| match v.as_str() {
                                    Some(
                                        s @ ("identified"
                                        | "unidentified"
                                        | "most_recently_updated"),
                                    ) => Ok(s.to_owned()),
                                    _ => Err(DomainError::invalid(
                                        "email_addresses",
                                        "prioritization takes identified, unidentified and most_recently_updated",
                                    )),
                                })
                                .collect::<DomainResult<Vec<_>>>()?,
                            Some(_) => {
                                return Err(DomainError::invalid(
                                    "email_addresses",
                                    "prioritization must be an array",
                                ));
                            }
                        };
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

/// `/users/identify` with `aliases_to_identify[{external_id, user_alias}]`: merges each alias-only
/// user into the user with that external id (custom attributes merged with the identified user's
/// values winning, standard attributes it lacks filled in, events, purchases and aliases moved)
/// and deletes it; when no user has the external id, the alias-only user takes it. An alias that
/// names nobody is added to the identified user (created if need be). An alias that already
/// belongs to a different identified user is left alone and not counted. Returns
/// `aliases_processed`.
pub async fn identify<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    body: &Json,
    now: DateTime<Utc>,
) -> Result<usize, DomainError> {
    const FIELD: &str = "aliases_to_identify";
    let obj = body_object(body)?;
    let items = array(obj, FIELD)?;
    if items.is_empty() {
        return Err(DomainError::invalid(
            FIELD,
            "name at least one alias to identify",
        ));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let item = item
            .as_object()
            .ok_or_else(|| DomainError::invalid(FIELD, "each must be an object"))?;
        let external_id = external_id_of(item, FIELD)?
            .ok_or_else(|| DomainError::invalid(FIELD, "each needs an external_id"))?;
        let alias = UserAlias::from_json(item.get("user_alias").unwrap_or(&Json::Null))
            .map_err(|m| DomainError::invalid(FIELD, m))?;
        parsed.push((external_id, alias));
    }
    let txn = db.begin().await?;
    lock_for_write(&txn).await?;
    let mut processed = 0;
    for (external_id, alias) in parsed {
        let alias_row_found = alias_rows(&txn, ws, std::slice::from_ref(&alias))
            .await?
            .into_iter()
            .next();
        let identified = super::find_by_external_id(&txn, ws, &external_id).await?;
        let Some(alias_found) = alias_row_found else {
            let target = match identified {
                Some(p) => p.id,
                None => {
                    new_profile(ws, Some(external_id), now)
                        .insert(&txn)
                        .await?
                        .id
                }
            };
            alias_row(ws, &alias, &target).insert(&txn).await?;
            processed += 1;
            continue;
        };
        let aliased = profile::Entity::find_by_id((ws.to_string(), alias_found.profile_id.clone()))
            .one(&txn)
            .await?;
        let Some(aliased) = aliased else {
            continue;
        };
        if let Some(existing) = &aliased.external_id {
            if *existing == external_id {
                processed += 1;
            }
            continue;
        }
        match identified {
            None => {
                let mut model = aliased.into_active_model();
                model.external_id = Set(Some(external_id));
                model.updated_at = Set(now);
                model.update(&txn).await?;
            }
            Some(identified) => merge_into(&txn, ws, aliased, identified, now).await?,
        }
        processed += 1;
    }
    txn.commit().await?;
    Ok(processed)
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
