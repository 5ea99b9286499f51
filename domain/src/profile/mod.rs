//! Audience data: user profiles (standard and custom attributes, aliases), their events and
//! purchases, the event catalogue, and the Braze-compatible `/users/*` services over them.

mod identity;
mod inbox;
mod track;

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Map, Value as Json, json};

use crate::entity::{event_catalog, profile, profile_alias, profile_event, profile_purchase};
use crate::template::RenderContext;
use crate::{DomainError, DomainResult, ProfileId, WorkspaceId};

pub use identity::{delete_users, identify, new_aliases};
pub use inbox::{InboxItem, InboxKey, claim_inbox, mark_handled};
pub use track::{
    CATALOG_REFRESH_SECS, CatalogMemory, PreparedTrack, TrackItemError, TrackOutcome,
    prepare_track, track, track_many,
};

/// Most identifiers one `/users/delete`, `/users/identify`, `/users/alias/new` or
/// `/users/export/ids` request may carry.
pub const MAX_USERS_PER_REQUEST: usize = 50;
/// How many events and purchases [`find`] returns, newest first.
pub const TIMELINE_LENGTH: u64 = 100;

/// A Braze user alias.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserAlias {
    pub alias_label: String,
    pub alias_name: String,
}

impl UserAlias {
    /// Reads `{"alias_name": ..., "alias_label": ...}`; both must be non-empty strings.
    pub fn from_json(value: &Json) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("user_alias must be an object with alias_name and alias_label")?;
        let part = |key: &str| -> Result<String, String> {
            match obj.get(key).and_then(Json::as_str).map(str::trim) {
                Some(text) if !text.is_empty() && text.chars().count() <= 255 => {
                    Ok(text.to_owned())
                }
                _ => Err(format!(
                    "user_alias.{key} must be a string of 1 to 255 characters"
                )),
            }
        };
        Ok(Self {
            alias_name: part("alias_name")?,
            alias_label: part("alias_label")?,
        })
    }

    pub fn to_json(&self) -> Json {
        json!({"alias_name": self.alias_name, "alias_label": self.alias_label})
    }
}

/// Whether a catalogue entry or inbox row is a custom event or a purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Event,
    Purchase,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Event => "event",
            EventKind::Purchase => "purchase",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "event" => Some(EventKind::Event),
            "purchase" => Some(EventKind::Purchase),
            _ => None,
        }
    }
}

/// One row of a user search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileSummary {
    pub id: ProfileId,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A custom event as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub id: String,
    pub name: String,
    pub time: DateTime<Utc>,
    pub properties: Map<String, Json>,
}

/// A purchase as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct PurchaseRecord {
    pub id: String,
    pub product_id: String,
    pub currency: String,
    pub price: f64,
    pub quantity: i32,
    pub time: DateTime<Utc>,
    pub properties: Map<String, Json>,
}

/// Everything the profile page shows about one user.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileView {
    pub id: ProfileId,
    /// The row itself: standard attributes, times, and custom attributes as JSON text.
    pub profile: profile::Model,
    /// Standard attributes that are set, in display order, under Braze's field names.
    pub attributes: Vec<(&'static str, String)>,
    /// Custom attributes, parsed.
    pub custom_attributes: Map<String, Json>,
    pub aliases: Vec<UserAlias>,
    /// The last [`TIMELINE_LENGTH`] events, newest first.
    pub events: Vec<EventRecord>,
    /// The last [`TIMELINE_LENGTH`] purchases, newest first.
    pub purchases: Vec<PurchaseRecord>,
}

/// One event name (or product id) the workspace has seen, with the property keys seen with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    pub kind: EventKind,
    pub name: String,
    pub property_keys: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The profile's id as a typed id.
pub fn profile_id(model: &profile::Model) -> ProfileId {
    ProfileId::from_db(model.id.clone())
}

/// A profile's custom attributes, parsed (an unreadable column reads as none).
pub fn custom_attributes(model: &profile::Model) -> Map<String, Json> {
    parse_object(&model.custom_attributes)
}

/// Standard attributes that are set, under Braze's `/users/track` names.
pub fn standard_attributes(model: &profile::Model) -> Vec<(&'static str, String)> {
    [
        ("external_id", &model.external_id),
        ("first_name", &model.first_name),
        ("last_name", &model.last_name),
        ("email", &model.email),
        ("phone", &model.phone),
        ("dob", &model.date_of_birth),
        ("gender", &model.gender),
        ("country", &model.country),
        ("home_city", &model.home_city),
        ("language", &model.language),
        ("time_zone", &model.time_zone),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
    .collect()
}

/// Searches users by external id (exact or prefix), email (prefix, case-insensitive) or braze id
/// (exact); an empty query lists the most recently updated users.
pub async fn search(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    query: &str,
    limit: u64,
) -> DomainResult<Vec<ProfileSummary>> {
    let query = query.trim();
    let mut select = profile::Entity::find().filter(profile::Column::WorkspaceId.eq(ws.as_str()));
    if !query.is_empty() {
        let mut any = Condition::any()
            .add(profile::Column::ExternalId.eq(query))
            .add(Expr::col(profile::Column::ExternalId).like(prefix_pattern(query)))
            .add(Expr::col(profile::Column::Email).like(prefix_pattern(&query.to_lowercase())));
        if let Ok(id) = ProfileId::parse(query) {
            any = any.add(profile::Column::Id.eq(id.as_str()));
        }
        select = select.filter(any);
    }
    let rows = select
        .order_by_desc(profile::Column::UpdatedAt)
        .order_by_asc(profile::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ProfileSummary {
            id: ProfileId::from_db(row.id),
            external_id: row.external_id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            updated_at: row.updated_at,
        })
        .collect())
}

/// `text%` with LIKE's wildcards escaped.
fn prefix_pattern(text: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('\\')
}

/// One user with aliases and the latest events and purchases.
pub async fn find(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &ProfileId,
) -> DomainResult<ProfileView> {
    let profile = profile::Entity::find_by_id((ws.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound("user"))?;
    let aliases = profile_alias::Entity::find()
        .filter(profile_alias::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_alias::Column::ProfileId.eq(id.as_str()))
        .order_by_asc(profile_alias::Column::AliasLabel)
        .order_by_asc(profile_alias::Column::AliasName)
        .all(db)
        .await?
        .into_iter()
        .map(|a| UserAlias {
            alias_label: a.alias_label,
            alias_name: a.alias_name,
        })
        .collect();
    let events = profile_event::Entity::find()
        .filter(profile_event::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_event::Column::ProfileId.eq(id.as_str()))
        .order_by_desc(profile_event::Column::Time)
        .order_by_desc(profile_event::Column::CreatedAt)
        .limit(TIMELINE_LENGTH)
        .all(db)
        .await?
        .into_iter()
        .map(|e| EventRecord {
            properties: parse_object(&e.properties),
            id: e.id,
            name: e.name,
            time: e.time,
        })
        .collect();
    let purchases = profile_purchase::Entity::find()
        .filter(profile_purchase::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile_purchase::Column::ProfileId.eq(id.as_str()))
        .order_by_desc(profile_purchase::Column::Time)
        .order_by_desc(profile_purchase::Column::CreatedAt)
        .limit(TIMELINE_LENGTH)
        .all(db)
        .await?
        .into_iter()
        .map(|p| PurchaseRecord {
            properties: parse_object(&p.properties),
            id: p.id,
            product_id: p.product_id,
            currency: p.currency,
            price: p.price,
            quantity: p.quantity,
            time: p.time,
        })
        .collect();
    Ok(ProfileView {
        id: id.clone(),
        attributes: standard_attributes(&profile),
        custom_attributes: custom_attributes(&profile),
        profile,
        aliases,
        events,
        purchases,
    })
}

/// The user with this external id, if any.
pub async fn find_by_external_id(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    external_id: &str,
) -> DomainResult<Option<profile::Model>> {
    Ok(profile::Entity::find()
        .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
        .filter(profile::Column::ExternalId.eq(external_id))
        .one(db)
        .await?)
}

/// What a Liquid template sees of this user: standard attributes under Braze's names
/// (`first_name`, `email_address` and `email`, `user_id`, `braze_id`, `phone_number`, `city`, …)
/// and the custom attributes.
pub fn render_context(profile: &profile::Model) -> RenderContext {
    let mut context = RenderContext::new().with_user_attribute("braze_id", profile.id.clone());
    for (names, value) in [
        (&["user_id", "external_id"][..], &profile.external_id),
        (&["first_name"][..], &profile.first_name),
        (&["last_name"][..], &profile.last_name),
        (&["email_address", "email"][..], &profile.email),
        (&["phone_number"][..], &profile.phone),
        (&["country"][..], &profile.country),
        (&["city"][..], &profile.home_city),
        (&["language"][..], &profile.language),
        (&["time_zone"][..], &profile.time_zone),
        (&["date_of_birth"][..], &profile.date_of_birth),
        (&["gender"][..], &profile.gender),
    ] {
        if let Some(value) = value {
            for name in names {
                context
                    .user
                    .insert((*name).to_owned(), Json::from(value.clone()));
            }
        }
    }
    context.custom_attributes = custom_attributes(profile);
    context
}

/// The workspace's event names and product ids with their property keys, events first, each kind
/// sorted by name. `/events/list` wants the names of kind [`EventKind::Event`].
pub async fn event_catalog(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
) -> DomainResult<Vec<CatalogEntry>> {
    let rows = event_catalog::Entity::find()
        .filter(event_catalog::Column::WorkspaceId.eq(ws.as_str()))
        .order_by_asc(event_catalog::Column::Kind)
        .order_by_asc(event_catalog::Column::Name)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            Some(CatalogEntry {
                kind: EventKind::parse(&row.kind)?,
                property_keys: serde_json::from_str(&row.property_keys).unwrap_or_default(),
                name: row.name,
                first_seen: row.first_seen,
                last_seen: row.last_seen,
            })
        })
        .collect())
}

/// Every field `/users/export/ids` can return, in the order it returns them.
const EXPORT_FIELDS: &[&str] = &[
    "external_id",
    "user_aliases",
    "braze_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "dob",
    "gender",
    "country",
    "home_city",
    "language",
    "time_zone",
    "created_at",
    "custom_attributes",
    "custom_events",
    "purchases",
];

/// `/users/export/ids`: the users named by `external_ids`, `user_aliases`, `braze_id`,
/// `email_address` or `phone`, with the fields listed in `fields_to_export` (all when absent;
/// names Herald does not keep are ignored). Unknown external ids are listed in `invalid_user_ids`.
pub async fn export_ids(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    body: &Json,
) -> DomainResult<Json> {
    let obj = body
        .as_object()
        .ok_or_else(|| DomainError::invalid("body", "must be a JSON object"))?;
    let external_ids = string_list(obj, "external_ids")?;
    let aliases = match obj.get("user_aliases") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(UserAlias::from_json)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| DomainError::invalid("user_aliases", m))?,
        Some(_) => return Err(DomainError::invalid("user_aliases", "must be an array")),
    };
    if external_ids.len() + aliases.len() > MAX_USERS_PER_REQUEST {
        return Err(DomainError::invalid(
            "external_ids",
            format!("at most {MAX_USERS_PER_REQUEST} external_ids and user_aliases per request"),
        ));
    }
    let single = |key: &'static str| -> DomainResult<Option<String>> {
        match obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(DomainError::invalid(key, "must be a non-empty string")),
        }
    };
    let braze_id = single("braze_id")?;
    let email = single("email_address")?.map(|e| e.to_lowercase());
    let phone = single("phone")?;
    let fields: Vec<&str> = match obj.get("fields_to_export") {
        None | Some(Json::Null) => EXPORT_FIELDS.to_vec(),
        Some(Json::Array(items)) => {
            let mut wanted = Vec::new();
            for item in items {
                let name = item.as_str().ok_or_else(|| {
                    DomainError::invalid("fields_to_export", "must be an array of field names")
                })?;
                wanted.push(name);
            }
            EXPORT_FIELDS
                .iter()
                .copied()
                .filter(|f| wanted.contains(f))
                .collect()
        }
        Some(_) => {
            return Err(DomainError::invalid(
                "fields_to_export",
                "must be an array of field names",
            ));
        }
    };
    if external_ids.is_empty()
        && aliases.is_empty()
        && braze_id.is_none()
        && email.is_none()
        && phone.is_none()
    {
        return Err(DomainError::invalid(
            "external_ids",
            "name users by external_ids, user_aliases, braze_id, email_address or phone",
        ));
    }

    let mut profiles: Vec<profile::Model> = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    let ws_filter = profile::Column::WorkspaceId.eq(ws.as_str());
    if !external_ids.is_empty() {
        let found = profile::Entity::find()
            .filter(ws_filter.clone())
            .filter(profile::Column::ExternalId.is_in(external_ids.clone()))
            .all(db)
            .await?;
        for external_id in &external_ids {
            match found
                .iter()
                .find(|p| p.external_id.as_deref() == Some(external_id))
            {
                Some(p) => profiles.push(p.clone()),
                None => invalid.push(external_id.clone()),
            }
        }
    }
    let mut ids: Vec<String> = Vec::new();
    if !aliases.is_empty() {
        ids.extend(
            alias_rows(db, ws, &aliases)
                .await?
                .into_iter()
                .map(|a| a.profile_id),
        );
    }
    if let Some(braze_id) = &braze_id {
        ids.push(braze_id.clone());
    }
    if !ids.is_empty() {
        let found = profile::Entity::find()
            .filter(ws_filter.clone())
            .filter(profile::Column::Id.is_in(ids))
            .all(db)
            .await?;
        if let Some(braze_id) = &braze_id
            && !found.iter().any(|p| &p.id == braze_id)
        {
            invalid.push(braze_id.clone());
        }
        profiles.extend(found);
    }
    for (column, value) in [
        (profile::Column::Email, &email),
        (profile::Column::Phone, &phone),
    ] {
        if let Some(value) = value {
            profiles.extend(
                profile::Entity::find()
                    .filter(ws_filter.clone())
                    .filter(column.eq(value.as_str()))
                    .order_by_desc(profile::Column::UpdatedAt)
                    .all(db)
                    .await?,
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    profiles.retain(|p| seen.insert(p.id.clone()));
    let ids: Vec<String> = profiles.iter().map(|p| p.id.clone()).collect();

    let mut alias_map: HashMap<String, Vec<Json>> = HashMap::new();
    if fields.contains(&"user_aliases") && !ids.is_empty() {
        for row in profile_alias::Entity::find()
            .filter(profile_alias::Column::WorkspaceId.eq(ws.as_str()))
            .filter(profile_alias::Column::ProfileId.is_in(ids.clone()))
            .order_by_asc(profile_alias::Column::AliasLabel)
            .order_by_asc(profile_alias::Column::AliasName)
            .all(db)
            .await?
        {
            alias_map.entry(row.profile_id).or_default().push(json!({
                "alias_name": row.alias_name,
                "alias_label": row.alias_label,
            }));
        }
    }
    let events = if fields.contains(&"custom_events") && !ids.is_empty() {
        event_summaries(db, ws, &ids, EventKind::Event).await?
    } else {
        HashMap::new()
    };
    let purchases = if fields.contains(&"purchases") && !ids.is_empty() {
        event_summaries(db, ws, &ids, EventKind::Purchase).await?
    } else {
        HashMap::new()
    };

    let users: Vec<Json> = profiles
        .iter()
        .map(|p| {
            let mut user = Map::new();
            for field in &fields {
                let value = match *field {
                    "external_id" => opt(&p.external_id),
                    "user_aliases" => {
                        Json::Array(alias_map.get(&p.id).cloned().unwrap_or_default())
                    }
                    "braze_id" => Json::from(p.id.clone()),
                    "first_name" => opt(&p.first_name),
                    "last_name" => opt(&p.last_name),
                    "email" => opt(&p.email),
                    "phone" => opt(&p.phone),
                    "dob" => opt(&p.date_of_birth),
                    "gender" => opt(&p.gender),
                    "country" => opt(&p.country),
                    "home_city" => opt(&p.home_city),
                    "language" => opt(&p.language),
                    "time_zone" => opt(&p.time_zone),
                    "created_at" => Json::from(iso(p.created_at)),
                    "custom_attributes" => Json::Object(custom_attributes(p)),
                    "custom_events" => Json::Array(events.get(&p.id).cloned().unwrap_or_default()),
                    "purchases" => Json::Array(purchases.get(&p.id).cloned().unwrap_or_default()),
                    _ => continue,
                };
                // Braze leaves unset fields out of the export.
                if !value.is_null() {
                    user.insert((*field).to_owned(), value);
                }
            }
            Json::Object(user)
        })
        .collect();
    Ok(json!({"users": users, "invalid_user_ids": invalid, "message": "success"}))
}

fn opt(value: &Option<String>) -> Json {
    value.clone().map(Json::from).unwrap_or(Json::Null)
}

/// `(profile_id, name, first, last, count)`.
type SummaryRow = (String, String, DateTime<Utc>, DateTime<Utc>, i64);

/// Per profile, `[{name, first, last, count}]` over its events or purchases.
async fn event_summaries(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    ids: &[String],
    kind: EventKind,
) -> DomainResult<HashMap<String, Vec<Json>>> {
    let rows: Vec<SummaryRow> = match kind {
        EventKind::Event => {
            profile_event::Entity::find()
                .select_only()
                .column(profile_event::Column::ProfileId)
                .column(profile_event::Column::Name)
                .column_as(Expr::col(profile_event::Column::Time).min(), "first")
                .column_as(Expr::col(profile_event::Column::Time).max(), "last")
                .column_as(Expr::col(profile_event::Column::Id).count(), "count")
                .filter(profile_event::Column::WorkspaceId.eq(ws.as_str()))
                .filter(profile_event::Column::ProfileId.is_in(ids.to_vec()))
                .group_by(profile_event::Column::ProfileId)
                .group_by(profile_event::Column::Name)
                .order_by_asc(profile_event::Column::Name)
                .into_tuple()
                .all(db)
                .await?
        }
        EventKind::Purchase => {
            profile_purchase::Entity::find()
                .select_only()
                .column(profile_purchase::Column::ProfileId)
                .column(profile_purchase::Column::ProductId)
                .column_as(Expr::col(profile_purchase::Column::Time).min(), "first")
                .column_as(Expr::col(profile_purchase::Column::Time).max(), "last")
                .column_as(Expr::col(profile_purchase::Column::Id).count(), "count")
                .filter(profile_purchase::Column::WorkspaceId.eq(ws.as_str()))
                .filter(profile_purchase::Column::ProfileId.is_in(ids.to_vec()))
                .group_by(profile_purchase::Column::ProfileId)
                .group_by(profile_purchase::Column::ProductId)
                .order_by_asc(profile_purchase::Column::ProductId)
                .into_tuple()
                .all(db)
                .await?
        }
    };
    let mut out: HashMap<String, Vec<Json>> = HashMap::new();
    for (profile_id, name, first, last, count) in rows {
        out.entry(profile_id).or_default().push(json!({
            "name": name,
            "first": iso(first),
            "last": iso(last),
            "count": count,
        }));
    }
    Ok(out)
}

/// The alias rows among `aliases` that exist in the workspace.
async fn alias_rows(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    aliases: &[UserAlias],
) -> DomainResult<Vec<profile_alias::Model>> {
    if aliases.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = Condition::any();
    for alias in aliases {
        any = any.add(
            Condition::all()
                .add(profile_alias::Column::AliasLabel.eq(alias.alias_label.as_str()))
                .add(profile_alias::Column::AliasName.eq(alias.alias_name.as_str())),
        );
    }
    Ok(profile_alias::Entity::find()
        .filter(profile_alias::Column::WorkspaceId.eq(ws.as_str()))
        .filter(any)
        .all(db)
        .await?)
}

/// A list of strings under `key` (absent = empty).
fn string_list(obj: &Map<String, Json>, key: &'static str) -> DomainResult<Vec<String>> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item.as_str().map(str::trim) {
                Some(text) if !text.is_empty() => Ok(text.to_owned()),
                _ => Err(DomainError::invalid(
                    key,
                    "must be an array of non-empty strings",
                )),
            })
            .collect(),
        Some(_) => Err(DomainError::invalid(key, "must be an array")),
    }
}

fn parse_object(text: &str) -> Map<String, Json> {
    serde_json::from_str(text).unwrap_or_default()
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Times are kept to the millisecond so both databases give back what was written.
fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

/// On SQLite, takes the write lock before the transaction's first read, so a concurrent writer
/// makes this one wait (busy timeout) instead of failing when it upgrades from reading to writing.
async fn lock_for_write(txn: &impl ConnectionTrait) -> DomainResult<()> {
    if txn.get_database_backend() == DbBackend::Sqlite {
        txn.execute_unprepared("UPDATE event_catalog SET kind = kind WHERE 0")
            .await?;
    }
    Ok(())
}
