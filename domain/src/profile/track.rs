//! `/users/track`: attributes, then events, then purchases, each item validated on its own (valid
//! items are kept when others fail), all written in one transaction with set-based statements.
//!
//! A call is checked and parsed first ([`prepare_track`], no database), then written. Several
//! prepared calls can be written together in one transaction ([`track_many`]): the server merges
//! concurrent `/users/track` requests that way, so one commit (one fsync, one write lock) serves
//! many requests. Calls in one batch behave exactly as if they ran one after the other in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::sea_query::{Alias, OnConflict, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, Iden, QueryFilter, QuerySelect,
    RuntimeErr, Set, TransactionTrait,
};
use serde_json::{Map, Number, Value as Json, json};

use super::{EventKind, UserAlias, alias_rows, lock_for_write, to_millis};
use crate::campaign::Listened;
use crate::entity::{
    event_catalog, event_inbox, profile, profile_alias, profile_event, profile_purchase,
};
use crate::{DomainError, DomainResult, ProfileId, WorkspaceId, validate};

/// Most items of each kind one request may carry.
pub const MAX_ITEMS: usize = 75;
/// Most elements an array attribute keeps; adding more drops the oldest.
pub const MAX_ARRAY_LENGTH: usize = 25;
/// Longest event name, product id, property name or string property value.
pub const MAX_NAME_LENGTH: usize = 255;
/// Largest serialized `properties` object.
pub const MAX_PROPERTIES_BYTES: usize = 100 * 1024;

/// What a `/users/track` call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackOutcome {
    pub attributes_processed: usize,
    pub events_processed: usize,
    pub purchases_processed: usize,
    /// One entry per rejected item; the other items were kept.
    pub errors: Vec<TrackItemError>,
}

/// Why one item of a `/users/track` call was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackItemError {
    /// `attributes`, `events` or `purchases`.
    pub input_array: &'static str,
    /// The item's position in its array.
    pub index: usize,
    pub message: String,
}

impl TrackItemError {
    /// Braze's shape: `{"type": message, "input_array": ..., "index": n}`.
    pub fn to_json(&self) -> Json {
        json!({"type": self.message, "input_array": self.input_array, "index": self.index})
    }
}

/// How an item names its user.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UserRef {
    External(String),
    Braze(String),
    Alias(UserAlias),
    Email(String),
    Phone(String),
}

/// Reads the identifier: `external_id`, then `braze_id`, then `user_alias`, then `email`, then
/// `phone` (so email wins over phone).
fn user_ref(item: &Map<String, Json>) -> Result<UserRef, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match item.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!("{key} must be a non-empty string")),
        }
    };
    if let Some(id) = text("external_id")? {
        if id.chars().count() > 512 {
            return Err("external_id must be at most 512 characters".into());
        }
        return Ok(UserRef::External(id));
    }
    if let Some(id) = text("braze_id")? {
        return Ok(UserRef::Braze(id));
    }
    if let Some(alias) = item.get("user_alias").filter(|v| !v.is_null()) {
        return UserAlias::from_json(alias).map(UserRef::Alias);
    }
    if let Some(email) = text("email")? {
        return validate::email("email", &email)
            .map(UserRef::Email)
            .map_err(|_| "email is not an email address".to_owned());
    }
    if let Some(phone) = text("phone")? {
        return Ok(UserRef::Phone(phone));
    }
    Err(
        "must identify the user with one of external_id, user_alias, braze_id, email or phone"
            .into(),
    )
}

/// A profile being worked on in this call.
struct Slot {
    model: profile::Model,
    custom: Map<String, Json>,
    /// Not in the database yet.
    new: bool,
    /// Changed since it was read.
    dirty: bool,
}

/// The profiles this call touches, with the indexes that find them.
struct Working {
    ws: String,
    now: DateTime<Utc>,
    slots: Vec<Slot>,
    by_id: HashMap<String, usize>,
    by_external: HashMap<String, usize>,
    by_alias: HashMap<UserAlias, usize>,
    by_email: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
    new_aliases: Vec<profile_alias::ActiveModel>,
    /// Profiles are read with their identifiers only: no item of the batch changes one, so the
    /// events' profile ids are all it needs. A profile read that way must never be written back.
    identities_only: bool,
}

enum Resolved {
    Found(usize),
    NotFound,
}

impl Working {
    fn new(ws: &WorkspaceId, now: DateTime<Utc>, identities_only: bool) -> Self {
        Self {
            ws: ws.to_string(),
            now,
            slots: Vec::new(),
            by_id: HashMap::new(),
            by_external: HashMap::new(),
            by_alias: HashMap::new(),
            by_email: HashMap::new(),
            by_phone: HashMap::new(),
            new_aliases: Vec::new(),
            identities_only,
        }
    }

    /// Adds a profile read from the database (once) and returns its slot.
    fn add_loaded(&mut self, model: profile::Model) -> usize {
        if let Some(&index) = self.by_id.get(&model.id) {
            return index;
        }
        let index = self.slots.len();
        self.by_id.insert(model.id.clone(), index);
        if let Some(external_id) = &model.external_id {
            self.by_external.insert(external_id.clone(), index);
        }
        self.slots.push(Slot {
            custom: if self.identities_only {
                Map::new()
            } else {
                super::custom_attributes(&model)
            },
            model,
            new: false,
            dirty: false,
        });
        index
    }

    fn create(&mut self) -> usize {
        let index = self.slots.len();
        let model = identity_model((
            self.ws.clone(),
            ProfileId::generate().into_string(),
            None,
            None,
            None,
            self.now,
            self.now,
        ));
        self.by_id.insert(model.id.clone(), index);
        self.slots.push(Slot {
            model,
            custom: Map::new(),
            new: true,
            dirty: true,
        });
        index
    }

    /// Finds the user an item names, creating it when `create` allows (never for a `braze_id`).
    fn resolve(&mut self, user: &UserRef, create: bool) -> Resolved {
        let found = match user {
            UserRef::External(id) => self.by_external.get(id),
            UserRef::Braze(id) => self.by_id.get(id),
            UserRef::Alias(alias) => self.by_alias.get(alias),
            UserRef::Email(email) => self.by_email.get(email),
            UserRef::Phone(phone) => self.by_phone.get(phone),
        };
        if let Some(&index) = found {
            return Resolved::Found(index);
        }
        if !create || matches!(user, UserRef::Braze(_)) {
            return Resolved::NotFound;
        }
        let index = self.create();
        let model = &mut self.slots[index].model;
        match user {
            UserRef::External(id) => {
                model.external_id = Some(id.clone());
                self.by_external.insert(id.clone(), index);
            }
            UserRef::Alias(alias) => {
                self.new_aliases.push(profile_alias::ActiveModel {
                    workspace_id: Set(self.ws.clone()),
                    alias_label: Set(alias.alias_label.clone()),
                    alias_name: Set(alias.alias_name.clone()),
                    profile_id: Set(model.id.clone()),
                });
                self.by_alias.insert(alias.clone(), index);
            }
            UserRef::Email(email) => {
                model.email = Some(email.clone());
                self.by_email.insert(email.clone(), index);
            }
            UserRef::Phone(phone) => {
                model.phone = Some(phone.clone());
                self.by_phone.insert(phone.clone(), index);
            }
            UserRef::Braze(_) => unreachable!("braze ids are never created"),
        }
        Resolved::Found(index)
    }

    /// Reads every profile the call's items name, a few queries for the whole batch (only the
    /// columns that identify them when [`Working::identities_only`]).
    async fn load(&mut self, db: &impl ConnectionTrait, refs: &[&UserRef]) -> DomainResult<()> {
        let mut external = BTreeSet::new();
        let mut braze = BTreeSet::new();
        let mut aliases = BTreeSet::new();
        let mut emails = BTreeSet::new();
        let mut phones = BTreeSet::new();
        for user in refs {
            match user {
                UserRef::External(id) => external.insert(id.clone()),
                UserRef::Braze(id) => braze.insert(id.clone()),
                UserRef::Alias(alias) => aliases.insert(alias.clone()),
                UserRef::Email(email) => emails.insert(email.clone()),
                UserRef::Phone(phone) => phones.insert(phone.clone()),
            };
        }
        let ws = profile::Column::WorkspaceId.eq(self.ws.as_str());
        let mut by_id: Vec<String> = braze.into_iter().collect();
        let alias_list: Vec<UserAlias> = aliases.into_iter().collect();
        let alias_found =
            alias_rows(db, &WorkspaceId::from_db(self.ws.clone()), &alias_list).await?;
        by_id.extend(alias_found.iter().map(|a| a.profile_id.clone()));
        let mut any = Condition::any();
        let mut any_used = false;
        if !external.is_empty() {
            any = any.add(profile::Column::ExternalId.is_in(external));
            any_used = true;
        }
        if !by_id.is_empty() {
            any = any.add(profile::Column::Id.is_in(by_id));
            any_used = true;
        }
        if !emails.is_empty() {
            any = any.add(profile::Column::Email.is_in(emails.iter().cloned()));
            any_used = true;
        }
        if !phones.is_empty() {
            any = any.add(profile::Column::Phone.is_in(phones.iter().cloned()));
            any_used = true;
        }
        if !any_used {
            return Ok(());
        }
        let query = profile::Entity::find().filter(ws).filter(any);
        let mut rows = if !self.identities_only {
            query.all(db).await?
        } else {
            use profile::Column as C;
            let ids: Vec<IdentityRow> = query
                .select_only()
                .columns([
                    C::WorkspaceId,
                    C::Id,
                    C::ExternalId,
                    C::Email,
                    C::Phone,
                    C::CreatedAt,
                    C::UpdatedAt,
                ])
                .into_tuple()
                .all(db)
                .await?;
            ids.into_iter().map(identity_model).collect()
        };
        // Oldest update first, so that for a shared email or phone the most recently updated
        // profile is the one left in the index. Sorted here, not in SQL: an ORDER BY lets
        // PostgreSQL walk the workspace's whole `updated_at` index instead of looking the
        // identifiers up.
        rows.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        for row in rows {
            let email = row.email.clone().filter(|e| emails.contains(e));
            let phone = row.phone.clone().filter(|p| phones.contains(p));
            let index = self.add_loaded(row);
            if let Some(email) = email {
                self.by_email.insert(email, index);
            }
            if let Some(phone) = phone {
                self.by_phone.insert(phone, index);
            }
        }
        for alias in alias_found {
            if let Some(&index) = self.by_id.get(&alias.profile_id) {
                self.by_alias.insert(
                    UserAlias {
                        alias_label: alias.alias_label,
                        alias_name: alias.alias_name,
                    },
                    index,
                );
            }
        }
        Ok(())
    }

    /// Writes new and changed profiles, and new aliases.
    async fn save(self, db: &impl ConnectionTrait) -> DomainResult<()> {
        let mut slots: Vec<Slot> = self
            .slots
            .into_iter()
            .filter(|slot| slot.new || slot.dirty)
            .collect();
        if self.identities_only && slots.iter().any(|slot| !slot.new) {
            // Writing it would blank every attribute that was not read.
            return Err(DomainError::Db(DbErr::Custom(
                "a profile read without its attributes was changed".into(),
            )));
        }
        // Every writer inserts in the same order, so two processes creating the same new users
        // wait for each other on the unique index instead of deadlocking.
        slots.sort_by(|a, b| {
            (
                &a.model.external_id,
                &a.model.email,
                &a.model.phone,
                &a.model.id,
            )
                .cmp(&(
                    &b.model.external_id,
                    &b.model.email,
                    &b.model.phone,
                    &b.model.id,
                ))
        });
        let rows: Vec<profile::ActiveModel> = slots
            .into_iter()
            .map(|slot| {
                let mut model = slot.model;
                model.custom_attributes = Json::Object(slot.custom).to_string();
                profile::ActiveModel {
                    workspace_id: Set(model.workspace_id),
                    id: Set(model.id),
                    external_id: Set(model.external_id),
                    email: Set(model.email),
                    phone: Set(model.phone),
                    first_name: Set(model.first_name),
                    last_name: Set(model.last_name),
                    gender: Set(model.gender),
                    date_of_birth: Set(model.date_of_birth),
                    country: Set(model.country),
                    home_city: Set(model.home_city),
                    language: Set(model.language),
                    time_zone: Set(model.time_zone),
                    custom_attributes: Set(model.custom_attributes),
                    created_at: Set(model.created_at),
                    updated_at: Set(model.updated_at),
                }
            })
            .collect();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            use profile::Column as C;
            let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_STATEMENT / 2).collect();
            profile::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([C::WorkspaceId, C::Id])
                        .update_columns([
                            C::Email,
                            C::Phone,
                            C::FirstName,
                            C::LastName,
                            C::Gender,
                            C::DateOfBirth,
                            C::Country,
                            C::HomeCity,
                            C::Language,
                            C::TimeZone,
                            C::CustomAttributes,
                            C::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        if !self.new_aliases.is_empty() {
            profile_alias::Entity::insert_many(self.new_aliases)
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }
}

/// The columns that identify a profile: workspace, id, external id, email, phone, created and
/// updated.
type IdentityRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// A profile known by its identifiers only (or a new one); every other attribute reads as unset.
fn identity_model(row: IdentityRow) -> profile::Model {
    let (workspace_id, id, external_id, email, phone, created_at, updated_at) = row;
    profile::Model {
        workspace_id,
        id,
        external_id,
        email,
        phone,
        first_name: None,
        last_name: None,
        gender: None,
        date_of_birth: None,
        country: None,
        home_city: None,
        language: None,
        time_zone: None,
        custom_attributes: "{}".into(),
        created_at,
        updated_at,
    }
}

/// The standard attributes, by their `/users/track` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standard {
    FirstName,
    LastName,
    Email,
    Phone,
    Dob,
    Gender,
    Country,
    HomeCity,
    Language,
    TimeZone,
}

impl Standard {
    fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "first_name" => Standard::FirstName,
            "last_name" => Standard::LastName,
            "email" => Standard::Email,
            "phone" => Standard::Phone,
            "dob" => Standard::Dob,
            "gender" => Standard::Gender,
            "country" => Standard::Country,
            "home_city" => Standard::HomeCity,
            "language" => Standard::Language,
            "time_zone" => Standard::TimeZone,
            _ => return None,
        })
    }

    fn field(self, model: &mut profile::Model) -> &mut Option<String> {
        match self {
            Standard::FirstName => &mut model.first_name,
            Standard::LastName => &mut model.last_name,
            Standard::Email => &mut model.email,
            Standard::Phone => &mut model.phone,
            Standard::Dob => &mut model.date_of_birth,
            Standard::Gender => &mut model.gender,
            Standard::Country => &mut model.country,
            Standard::HomeCity => &mut model.home_city,
            Standard::Language => &mut model.language,
            Standard::TimeZone => &mut model.time_zone,
        }
    }

    /// Checks and normalizes a value (`None` clears the attribute).
    fn value(self, key: &str, value: &Json) -> Result<Option<String>, String> {
        let text = match value {
            Json::Null => return Ok(None),
            Json::String(s) => s.trim(),
            _ => return Err(format!("{key} must be a string or null")),
        };
        if text.is_empty() {
            return Ok(None);
        }
        if text.chars().count() > MAX_NAME_LENGTH {
            return Err(format!(
                "{key} must be at most {MAX_NAME_LENGTH} characters"
            ));
        }
        match self {
            Standard::Email => validate::email("email", text)
                .map(Some)
                .map_err(|_| "email is not an email address".to_owned()),
            Standard::Dob => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|date| Some(date.format("%Y-%m-%d").to_string()))
                .map_err(|_| "dob must be a date as YYYY-MM-DD".to_owned()),
            Standard::Gender => {
                let code = match text.to_ascii_lowercase().as_str() {
                    "m" | "male" => "M",
                    "f" | "female" => "F",
                    "o" | "other" => "O",
                    "n" | "not_applicable" => "N",
                    "p" | "prefer_not_to_say" => "P",
                    _ => return Err("gender must be one of M, F, O, N or P".to_owned()),
                };
                Ok(Some(code.to_owned()))
            }
            _ => Ok(Some(text.to_owned())),
        }
    }
}

/// One change an attributes object asks for.
#[derive(Clone, Debug)]
enum Op {
    Standard(Standard, Option<String>),
    Set(String, Json),
    Unset(String),
    Inc(String, Number),
    Array {
        key: String,
        add: Vec<Json>,
        remove: Vec<Json>,
    },
}

/// Keys of an attributes object that are not attributes.
const CONTROL_KEYS: &[&str] = &[
    "external_id",
    "user_alias",
    "braze_id",
    "_update_existing_only",
    "push_token_import",
];

fn attribute_ops(item: &Map<String, Json>, user: &UserRef) -> Result<Vec<Op>, String> {
    let mut ops = Vec::with_capacity(item.len());
    for (key, value) in item {
        if CONTROL_KEYS.contains(&key.as_str()) {
            continue;
        }
        // The identifier is not also an update.
        if (key == "email" && matches!(user, UserRef::Email(_)))
            || (key == "phone" && matches!(user, UserRef::Phone(_)))
        {
            continue;
        }
        if let Some(standard) = Standard::parse(key) {
            ops.push(Op::Standard(standard, standard.value(key, value)?));
            continue;
        }
        if key.is_empty() || key.chars().count() > MAX_NAME_LENGTH {
            return Err(format!(
                "custom attribute names must be 1 to {MAX_NAME_LENGTH} characters"
            ));
        }
        if key.starts_with('$') {
            return Err(format!("custom attribute {key} must not start with $"));
        }
        ops.push(custom_op(key, value)?);
    }
    Ok(ops)
}

fn custom_op(key: &str, value: &Json) -> Result<Op, String> {
    let key = key.to_owned();
    Ok(match value {
        Json::Null => Op::Unset(key),
        Json::Object(obj) if obj.len() == 1 && obj.contains_key("inc") => match &obj["inc"] {
            Json::Number(n) => Op::Inc(key, n.clone()),
            _ => return Err(format!("{key}: inc must be a number")),
        },
        Json::Object(obj) if !obj.is_empty() && obj.keys().all(|k| k == "add" || k == "remove") => {
            let list = |name: &str| -> Result<Vec<Json>, String> {
                match obj.get(name) {
                    None => Ok(Vec::new()),
                    Some(Json::Array(items)) => Ok(items.clone()),
                    Some(_) => Err(format!("{key}: {name} must be an array")),
                }
            };
            Op::Array {
                add: list("add")?,
                remove: list("remove")?,
                key,
            }
        }
        Json::Array(items) => Op::Set(key, Json::Array(cap_array(dedupe(items.clone())))),
        other => Op::Set(key, other.clone()),
    })
}

fn dedupe(items: Vec<Json>) -> Vec<Json> {
    let mut out: Vec<Json> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Keeps the newest [`MAX_ARRAY_LENGTH`] elements (the last ones).
fn cap_array(mut items: Vec<Json>) -> Vec<Json> {
    if items.len() > MAX_ARRAY_LENGTH {
        items.drain(..items.len() - MAX_ARRAY_LENGTH);
    }
    items
}

/// Applies the changes of one item to a copy of the profile, so a failing item changes nothing.
fn apply(slot: &Slot, ops: &[Op]) -> Result<(profile::Model, Map<String, Json>), String> {
    let mut model = slot.model.clone();
    let mut custom = slot.custom.clone();
    for op in ops.iter().cloned() {
        match op {
            Op::Standard(standard, value) => *standard.field(&mut model) = value,
            Op::Set(key, value) => {
                custom.insert(key, value);
            }
            Op::Unset(key) => {
                custom.remove(&key);
            }
            Op::Inc(key, by) => {
                let sum = match custom.get(&key) {
                    None | Some(Json::Null) => by,
                    Some(Json::Number(current)) => add_numbers(current, &by)
                        .ok_or_else(|| format!("{key}: the increment overflows"))?,
                    Some(_) => {
                        return Err(format!("{key} is not a number and cannot be incremented"));
                    }
                };
                custom.insert(key, Json::Number(sum));
            }
            Op::Array { key, add, remove } => {
                let mut items = match custom.get(&key) {
                    None | Some(Json::Null) => Vec::new(),
                    Some(Json::Array(items)) => items.clone(),
                    Some(_) => return Err(format!("{key} is not an array")),
                };
                for value in add {
                    if !items.contains(&value) {
                        items.push(value);
                    }
                }
                items.retain(|item| !remove.contains(item));
                custom.insert(key, Json::Array(cap_array(items)));
            }
        }
    }
    Ok((model, custom))
}

fn add_numbers(a: &Number, b: &Number) -> Option<Number> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.checked_add(y).map(Number::from);
    }
    Number::from_f64(a.as_f64()? + b.as_f64()?)
}

/// Reads an event or purchase time (ISO 8601; a date alone means midnight UTC); a future time is
/// clamped to now.
fn parse_time(value: Option<&Json>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = match value {
        Some(Json::String(s)) => s.trim(),
        None | Some(Json::Null) => return Err("time is required".into()),
        Some(_) => return Err("time must be an ISO 8601 string".into()),
    };
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .map(|t| t.and_utc())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| format!("time {text:?} is not an ISO 8601 time"))?;
    Ok(to_millis(parsed.min(now)))
}

/// Event or purchase properties as stored (a JSON object's text) with their keys.
#[derive(Clone, Debug)]
struct Properties {
    text: String,
    keys: Vec<String>,
}

/// Checks event or purchase properties.
fn parse_properties(value: Option<&Json>) -> Result<Properties, String> {
    let props = match value {
        None | Some(Json::Null) => {
            return Ok(Properties {
                text: "{}".into(),
                keys: Vec::new(),
            });
        }
        Some(Json::Object(props)) => props,
        Some(_) => return Err("properties must be an object".into()),
    };
    for (key, value) in props {
        if key.is_empty() || key.chars().count() > MAX_NAME_LENGTH {
            return Err(format!(
                "property names must be 1 to {MAX_NAME_LENGTH} characters"
            ));
        }
        if key.starts_with('$') {
            return Err(format!("property name {key} must not start with $"));
        }
        if key == "time" || key == "event_name" {
            return Err(format!("property name {key} is reserved"));
        }
        if let Json::String(s) = value
            && s.chars().count() > MAX_NAME_LENGTH
        {
            return Err(format!(
                "property {key} must be at most {MAX_NAME_LENGTH} characters"
            ));
        }
    }
    // Serialized once: the size check and the stored text are the same string.
    let text = serde_json::to_string(props).map_err(|e| format!("properties: {e}"))?;
    if text.len() > MAX_PROPERTIES_BYTES {
        return Err("properties must be at most 100 KB".into());
    }
    Ok(Properties {
        text,
        keys: props.keys().cloned().collect(),
    })
}

fn name_field(item: &Map<String, Json>, key: &str) -> Result<String, String> {
    match item.get(key).and_then(Json::as_str).map(str::trim) {
        Some(name) if !name.is_empty() && name.chars().count() <= MAX_NAME_LENGTH => {
            Ok(name.to_owned())
        }
        _ => Err(format!(
            "{key} is required: a string of 1 to {MAX_NAME_LENGTH} characters"
        )),
    }
}

#[derive(Clone, Debug)]
struct ParsedEvent {
    name: String,
    time: DateTime<Utc>,
    properties: Properties,
}

fn parse_event(item: &Map<String, Json>, now: DateTime<Utc>) -> Result<ParsedEvent, String> {
    Ok(ParsedEvent {
        name: name_field(item, "name")?,
        time: parse_time(item.get("time"), now)?,
        properties: parse_properties(item.get("properties"))?,
    })
}

#[derive(Clone, Debug)]
struct ParsedPurchase {
    product_id: String,
    currency: String,
    price: f64,
    quantity: i32,
    time: DateTime<Utc>,
    properties: Properties,
}

fn parse_purchase(item: &Map<String, Json>, now: DateTime<Utc>) -> Result<ParsedPurchase, String> {
    let product_id = name_field(item, "product_id")?;
    let currency = match item.get("currency").and_then(Json::as_str).map(str::trim) {
        Some(c) if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        _ => return Err("currency must be a three-letter ISO 4217 code".into()),
    };
    let price = match item.get("price").and_then(Json::as_f64) {
        Some(price) if price.is_finite() => price,
        _ => return Err("price is required and must be a number".into()),
    };
    let quantity = match item.get("quantity") {
        None | Some(Json::Null) => 1,
        Some(q) => match q.as_i64() {
            Some(q @ 1..=100) => q as i32,
            _ => return Err("quantity must be a whole number from 1 to 100".into()),
        },
    };
    Ok(ParsedPurchase {
        product_id,
        currency,
        price,
        quantity,
        time: parse_time(item.get("time"), now)?,
        properties: parse_properties(item.get("properties"))?,
    })
}

/// The items of one array of the request, each an object with its identifier read (or the reason
/// it could not be).
type Items<'a> = Vec<Result<(&'a Map<String, Json>, UserRef), String>>;

fn items<'a>(body: &'a Map<String, Json>, field: &'static str) -> DomainResult<Items<'a>> {
    let list = match body.get(field) {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(list)) => list,
        Some(_) => return Err(DomainError::invalid(field, "must be an array")),
    };
    if list.len() > MAX_ITEMS {
        return Err(DomainError::invalid(
            field,
            format!("Max Input Length Exceeded: at most {MAX_ITEMS} {field} per request"),
        ));
    }
    Ok(list
        .iter()
        .map(|item| {
            let obj = item
                .as_object()
                .ok_or_else(|| format!("each of {field} must be an object"))?;
            Ok((obj, user_ref(obj)?))
        })
        .collect())
}

/// Property keys seen per catalogue entry in one batch (ordered, so every writer upserts the
/// catalogue rows in the same order).
type CatalogSeen = BTreeMap<(EventKind, String), BTreeSet<String>>;

/// Most bound values one insert statement carries (SQLite allows 32,766, PostgreSQL 65,535).
const ROWS_PER_STATEMENT: usize = 1_000;

/// A `/users/track` body checked and parsed item by item, owning all it needs: ready to be
/// written alone ([`track`]) or with other calls in one transaction ([`track_many`]). Preparing
/// needs no database, so servers do it on the request's own task.
#[derive(Clone, Debug)]
pub struct PreparedTrack {
    ws: WorkspaceId,
    now: DateTime<Utc>,
    attributes: Vec<Result<AttributeItem, String>>,
    events: Vec<Result<EventItem, String>>,
    purchases: Vec<Result<PurchaseItem, String>>,
}

#[derive(Clone, Debug)]
struct AttributeItem {
    user: UserRef,
    update_only: bool,
    ops: Vec<Op>,
}

#[derive(Clone, Debug)]
struct EventItem {
    user: UserRef,
    /// Also the id of its inbox row.
    id: String,
    event: ParsedEvent,
}

#[derive(Clone, Debug)]
struct PurchaseItem {
    user: UserRef,
    id: String,
    purchase: ParsedPurchase,
}

impl PreparedTrack {
    /// The workspace the call writes to.
    pub fn workspace(&self) -> &WorkspaceId {
        &self.ws
    }

    /// How many items the call carries (valid or not), to size batches.
    pub fn item_count(&self) -> usize {
        self.attributes.len() + self.events.len() + self.purchases.len()
    }

    /// The users the valid items name.
    fn users(&self) -> impl Iterator<Item = &UserRef> {
        let attributes = self.attributes.iter().flatten().map(|a| &a.user);
        let events = self.events.iter().flatten().map(|e| &e.user);
        let purchases = self.purchases.iter().flatten().map(|p| &p.user);
        attributes.chain(events).chain(purchases)
    }

    /// The outcome of a call none of whose items can be written: only its item errors.
    fn errors_only(&self) -> TrackOutcome {
        let mut outcome = TrackOutcome::default();
        let errors = item_errors("attributes", &self.attributes)
            .chain(item_errors("events", &self.events))
            .chain(item_errors("purchases", &self.purchases));
        outcome.errors.extend(errors);
        outcome
    }
}

fn item_errors<'a, T>(
    input_array: &'static str,
    items: &'a [Result<T, String>],
) -> impl Iterator<Item = TrackItemError> + 'a {
    items.iter().enumerate().filter_map(move |(index, item)| {
        item.as_ref().err().map(|message| TrackItemError {
            input_array,
            index,
            message: message.clone(),
        })
    })
}

/// A time-ordered (version 7) UUID for an event or purchase: rows of one batch land next to each
/// other at the end of the primary-key index instead of on random pages all over it.
fn event_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random.as_bytes()[6..]);
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

/// Checks a `/users/track` body without touching the database. Request-level problems (not an
/// object, an array of the wrong type, more than 75 items of a kind) are errors; a bad item is
/// kept as that item's error, reported when the call is written.
pub fn prepare_track(
    ws: &WorkspaceId,
    body: &Json,
    now: DateTime<Utc>,
) -> DomainResult<PreparedTrack> {
    let body = body
        .as_object()
        .ok_or_else(|| DomainError::invalid("body", "must be a JSON object"))?;
    let attributes = items(body, "attributes")?;
    let events = items(body, "events")?;
    let purchases = items(body, "purchases")?;
    let attributes = attributes
        .into_iter()
        .map(|item| {
            let (obj, user) = item?;
            let update_only = match obj.get("_update_existing_only") {
                None | Some(Json::Null) => matches!(user, UserRef::Alias(_)),
                Some(Json::Bool(b)) => *b,
                Some(_) => return Err("_update_existing_only must be true or false".into()),
            };
            let ops = attribute_ops(obj, &user)?;
            Ok(AttributeItem {
                user,
                update_only,
                ops,
            })
        })
        .collect();
    let events = events
        .into_iter()
        .map(|item| {
            let (obj, user) = item?;
            Ok(EventItem {
                event: parse_event(obj, now)?,
                user,
                id: event_id(now),
            })
        })
        .collect();
    let purchases = purchases
        .into_iter()
        .map(|item| {
            let (obj, user) = item?;
            Ok(PurchaseItem {
                purchase: parse_purchase(obj, now)?,
                user,
                id: event_id(now),
            })
        })
        .collect();
    Ok(PreparedTrack {
        ws: ws.clone(),
        now,
        attributes,
        events,
        purchases,
    })
}

/// `/users/track`: records attributes, then events, then purchases. Request-level problems (not an
/// object, an array of the wrong type, more than 75 items of a kind) are fatal and write nothing;
/// a bad item is reported in `errors` with its index while the others are kept. Everything is
/// written in one transaction, events and purchases together with their `event_inbox` rows.
pub async fn track<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    body: &Json,
    now: DateTime<Utc>,
) -> Result<TrackOutcome, DomainError> {
    let call = prepare_track(ws, body, now)?;
    // A lone call remembers nothing: its catalogue rows are always written.
    let memory = CatalogMemory::default();
    let mut outcomes = write_retrying(db, std::slice::from_ref(&call), &memory).await?;
    Ok(outcomes.pop().unwrap_or_default())
}

/// Writes several prepared calls in one transaction, as if they ran one after the other in order
/// (a user created by an earlier call is found by a later one), and answers each call on its own.
/// When the shared transaction fails for a reason other than a lost race, each call is tried
/// again alone, so one call's failure is never another's. `memory` spares catalogue writes for
/// names this writer upserted lately; keep one per database for the writer's lifetime.
pub async fn track_many<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    calls: &[PreparedTrack],
    memory: &CatalogMemory,
) -> Vec<DomainResult<TrackOutcome>> {
    match write_retrying(db, calls, memory).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if calls.len() == 1 => vec![Err(error)],
        Err(_) => {
            let mut answers = Vec::with_capacity(calls.len());
            for call in calls {
                let answer = write_retrying(db, std::slice::from_ref(call), memory)
                    .await
                    .map(|mut outcomes| outcomes.pop().unwrap_or_default());
                answers.push(answer);
            }
            answers
        }
    }
}

/// Two writers may both create the same new user (the loser's transaction hits the unique index)
/// or, on PostgreSQL, deadlock or fail to serialize; the loser rolls back whole and runs again,
/// then finds the user and succeeds.
async fn write_retrying<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    calls: &[PreparedTrack],
    memory: &CatalogMemory,
) -> DomainResult<Vec<TrackOutcome>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write(db, calls, memory).await {
            Err(DomainError::Db(error)) if attempt < 4 && lost_race(&error) => continue,
            other => return other,
        }
    }
}

/// Whether a failed write lost a race with another writer and may simply run again.
fn lost_race(error: &DbErr) -> bool {
    if matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) {
        return true;
    }
    let runtime = match error {
        DbErr::Exec(e) | DbErr::Query(e) | DbErr::Conn(e) => e,
        _ => return false,
    };
    match runtime {
        RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(e)) => matches!(
            e.code().as_deref(),
            // PostgreSQL: deadlock detected, serialization failure.
            Some("40P01" | "40001")
            // SQLite: busy (the busy timeout ran out), busy snapshot.
            | Some("5" | "517")
        ),
        _ => false,
    }
}

/// Everything one batch inserts besides profiles.
#[derive(Default)]
struct Rows {
    events: Vec<Vec<SimpleExpr>>,
    purchases: Vec<Vec<SimpleExpr>>,
    inbox: Vec<Vec<SimpleExpr>>,
}

/// One attempt at writing `calls` in one transaction.
async fn write<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    calls: &[PreparedTrack],
    memory: &CatalogMemory,
) -> DomainResult<Vec<TrackOutcome>> {
    let mut outcomes: Vec<TrackOutcome> = calls.iter().map(|_| TrackOutcome::default()).collect();
    // Calls that name nobody write nothing; the others are grouped by workspace, in order.
    let mut groups: Vec<(&WorkspaceId, Vec<usize>)> = Vec::new();
    for (index, call) in calls.iter().enumerate() {
        if call.users().next().is_none() {
            outcomes[index] = call.errors_only();
            continue;
        }
        match groups.iter_mut().find(|(ws, _)| *ws == &call.ws) {
            Some((_, members)) => members.push(index),
            None => groups.push((&call.ws, vec![index])),
        }
    }
    if groups.is_empty() {
        return Ok(outcomes);
    }

    let txn = db.begin().await?;
    lock_for_write(&txn).await?;
    let mut rows = Rows::default();
    let mut catalogs = Vec::with_capacity(groups.len());
    for (ws, members) in groups {
        let latest = members
            .iter()
            .map(|&i| calls[i].now)
            .max()
            .unwrap_or_else(Utc::now);
        let attributes = members.iter().any(|&i| !calls[i].attributes.is_empty());
        let mut work = Working::new(ws, latest, !attributes);
        let users: Vec<&UserRef> = members.iter().flat_map(|&i| calls[i].users()).collect();
        work.load(&txn, &users).await?;
        let mut catalog = CatalogSeen::new();
        // Inbox rows only for events something may act on; asked under the write lock.
        let any_events = members
            .iter()
            .any(|&i| !calls[i].events.is_empty() || !calls[i].purchases.is_empty());
        let to_inbox = if any_events {
            crate::campaign::listened(&txn, ws).await?
        } else {
            Listened::Only(Default::default())
        };
        for &index in &members {
            outcomes[index] =
                write_call(&mut work, &calls[index], &mut rows, &mut catalog, &to_inbox);
        }
        work.save(&txn).await?;
        catalogs.push((ws, catalog, latest));
    }
    insert_rows(&txn, EVENT_COLUMNS, "profile_event", rows.events).await?;
    insert_rows(&txn, PURCHASE_COLUMNS, "profile_purchase", rows.purchases).await?;
    insert_rows(&txn, INBOX_COLUMNS, "event_inbox", rows.inbox).await?;
    // Last, so that on PostgreSQL the catalogue rows every writer touches stay locked briefly.
    let mut written = Vec::new();
    for (ws, mut catalog, latest) in catalogs {
        memory.forget_known(ws, &mut catalog, latest);
        written.extend(save_catalog(&txn, ws, catalog, latest).await?);
    }
    txn.commit().await?;
    memory.remember(written);
    Ok(outcomes)
}

/// Runs one call's items against the batch's profiles, collecting the rows to insert, with an
/// inbox row for each event and purchase that `to_inbox` covers.
fn write_call(
    work: &mut Working,
    call: &PreparedTrack,
    rows: &mut Rows,
    catalog: &mut CatalogSeen,
    to_inbox: &Listened,
) -> TrackOutcome {
    let mut outcome = TrackOutcome::default();
    let now = call.now;
    work.now = now;
    for (index, item) in call.attributes.iter().enumerate() {
        match item
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|item| track_attributes(work, item))
        {
            Ok(()) => outcome.attributes_processed += 1,
            Err(message) => outcome.errors.push(TrackItemError {
                input_array: "attributes",
                index,
                message,
            }),
        }
    }
    let ws = work.ws.clone();
    for (index, item) in call.events.iter().enumerate() {
        let result = item.as_ref().map_err(Clone::clone).and_then(|item| {
            let profile_id = found(work, &item.user)?;
            let event = &item.event;
            catalog
                .entry((EventKind::Event, event.name.clone()))
                .or_default()
                .extend(event.properties.keys.iter().cloned());
            if to_inbox.covers(EventKind::Event, &event.name) {
                rows.inbox.push(inbox_row(
                    &ws,
                    &item.id,
                    EventKind::Event,
                    &profile_id,
                    &event.name,
                    event.time,
                    &event.properties.text,
                    now,
                ));
            }
            rows.events.push(vec![
                ws.clone().into(),
                item.id.clone().into(),
                profile_id.into(),
                event.name.clone().into(),
                event.time.into(),
                event.properties.text.clone().into(),
                now.into(),
            ]);
            Ok(())
        });
        match result {
            Ok(()) => outcome.events_processed += 1,
            Err(message) => outcome.errors.push(TrackItemError {
                input_array: "events",
                index,
                message,
            }),
        }
    }
    for (index, item) in call.purchases.iter().enumerate() {
        let result = item.as_ref().map_err(Clone::clone).and_then(|item| {
            let profile_id = found(work, &item.user)?;
            let purchase = &item.purchase;
            catalog
                .entry((EventKind::Purchase, purchase.product_id.clone()))
                .or_default()
                .extend(purchase.properties.keys.iter().cloned());
            if to_inbox.covers(EventKind::Purchase, &purchase.product_id) {
                rows.inbox.push(inbox_row(
                    &ws,
                    &item.id,
                    EventKind::Purchase,
                    &profile_id,
                    &purchase.product_id,
                    purchase.time,
                    &purchase.properties.text,
                    now,
                ));
            }
            rows.purchases.push(vec![
                ws.clone().into(),
                item.id.clone().into(),
                profile_id.into(),
                purchase.product_id.clone().into(),
                purchase.currency.clone().into(),
                purchase.price.into(),
                purchase.quantity.into(),
                purchase.time.into(),
                purchase.properties.text.clone().into(),
                now.into(),
            ]);
            Ok(())
        });
        match result {
            Ok(()) => outcome.purchases_processed += 1,
            Err(message) => outcome.errors.push(TrackItemError {
                input_array: "purchases",
                index,
                message,
            }),
        }
    }
    outcome
}

const EVENT_COLUMNS: &[profile_event::Column] = &[
    profile_event::Column::WorkspaceId,
    profile_event::Column::Id,
    profile_event::Column::ProfileId,
    profile_event::Column::Name,
    profile_event::Column::Time,
    profile_event::Column::Properties,
    profile_event::Column::CreatedAt,
];

const PURCHASE_COLUMNS: &[profile_purchase::Column] = &[
    profile_purchase::Column::WorkspaceId,
    profile_purchase::Column::Id,
    profile_purchase::Column::ProfileId,
    profile_purchase::Column::ProductId,
    profile_purchase::Column::Currency,
    profile_purchase::Column::Price,
    profile_purchase::Column::Quantity,
    profile_purchase::Column::Time,
    profile_purchase::Column::Properties,
    profile_purchase::Column::CreatedAt,
];

const INBOX_COLUMNS: &[event_inbox::Column] = &[
    event_inbox::Column::WorkspaceId,
    event_inbox::Column::Id,
    event_inbox::Column::Kind,
    event_inbox::Column::ProfileId,
    event_inbox::Column::Name,
    event_inbox::Column::Time,
    event_inbox::Column::Properties,
    event_inbox::Column::CreatedAt,
];

/// Multi-row inserts of `rows` (values in `columns` order), as few statements as the bind limits
/// allow.
async fn insert_rows<Col: Iden + Copy + 'static>(
    db: &impl ConnectionTrait,
    columns: &[Col],
    table: &str,
    rows: Vec<Vec<SimpleExpr>>,
) -> DomainResult<()> {
    let per_statement = (ROWS_PER_STATEMENT * 10 / columns.len().max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(table))
            .columns(columns.iter().copied());
        for row in rows.by_ref().take(per_statement) {
            insert.values_panic(row);
        }
        db.execute(db.get_database_backend().build(&insert)).await?;
    }
    Ok(())
}

/// The profile an event or purchase belongs to, created when unknown (except by `braze_id`).
fn found(work: &mut Working, user: &UserRef) -> Result<String, String> {
    match work.resolve(user, true) {
        Resolved::Found(index) => Ok(work.slots[index].model.id.clone()),
        Resolved::NotFound => Err("braze_id not found".into()),
    }
}

fn track_attributes(work: &mut Working, item: &AttributeItem) -> Result<(), String> {
    let user = &item.user;
    let index = match work.resolve(user, !item.update_only) {
        Resolved::Found(index) => index,
        Resolved::NotFound if matches!(user, UserRef::Braze(_)) => {
            return Err("braze_id not found".into());
        }
        Resolved::NotFound => return Err("user not found".into()),
    };
    let (model, custom) = apply(&work.slots[index], &item.ops)?;
    let slot = &mut work.slots[index];
    if model != slot.model || custom != slot.custom {
        let email_changed = model.email != slot.model.email;
        let phone_changed = model.phone != slot.model.phone;
        slot.model = model;
        slot.custom = custom;
        slot.model.updated_at = work.now;
        slot.dirty = true;
        // The profile just updated is now the most recently updated one with that email/phone.
        if email_changed && let Some(email) = slot.model.email.clone() {
            work.by_email.insert(email, index);
        }
        if phone_changed && let Some(phone) = slot.model.phone.clone() {
            work.by_phone.insert(phone, index);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn inbox_row(
    ws: &str,
    id: &str,
    kind: EventKind,
    profile_id: &str,
    name: &str,
    time: DateTime<Utc>,
    properties: &str,
    now: DateTime<Utc>,
) -> Vec<SimpleExpr> {
    vec![
        ws.into(),
        id.into(),
        kind.as_str().into(),
        profile_id.into(),
        name.into(),
        time.into(),
        properties.into(),
        now.into(),
    ]
}

/// What a writer remembers of the catalogue rows it upserted lately, so that a batch whose event
/// names and property keys are all known skips the catalogue: a read and an upsert of rows every
/// writer shares (on PostgreSQL, a row lock held until commit). `last_seen` is therefore kept to
/// [`CATALOG_REFRESH_SECS`], per process. Keep one per database.
#[derive(Debug, Default)]
pub struct CatalogMemory {
    known: Mutex<HashMap<CatalogKey, CatalogWrite>>,
}

/// The property keys a catalogue row was written with, and when.
type CatalogWrite = (BTreeSet<String>, DateTime<Utc>);

/// `(workspace, kind, name)`.
type CatalogKey = (String, EventKind, String);

/// How stale a catalogue row's `last_seen` may get before a batch that saw it writes it again.
pub const CATALOG_REFRESH_SECS: i64 = 60;
/// Most entries a [`CatalogMemory`] keeps; past that it starts afresh.
const CATALOG_MEMORY_ENTRIES: usize = 100_000;

impl CatalogMemory {
    /// Drops from `seen` the entries written less than [`CATALOG_REFRESH_SECS`] ago with at least
    /// these property keys.
    fn forget_known(&self, ws: &WorkspaceId, seen: &mut CatalogSeen, now: DateTime<Utc>) {
        let Ok(known) = self.known.lock() else {
            return;
        };
        seen.retain(|(kind, name), keys| {
            let key = (ws.to_string(), *kind, name.clone());
            !known.get(&key).is_some_and(|(known_keys, written)| {
                (now - *written).num_seconds() < CATALOG_REFRESH_SECS && keys.is_subset(known_keys)
            })
        });
    }

    /// Notes rows just committed.
    fn remember(&self, written: Vec<(CatalogKey, BTreeSet<String>, DateTime<Utc>)>) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if known.len() + written.len() > CATALOG_MEMORY_ENTRIES {
            known.clear();
        }
        for (key, keys, at) in written {
            known.insert(key, (keys, at));
        }
    }
}

/// One upsert for all the names a batch saw, merging property keys with those already known.
/// Returns the rows as written.
async fn save_catalog(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    mut seen: CatalogSeen,
    now: DateTime<Utc>,
) -> DomainResult<Vec<(CatalogKey, BTreeSet<String>, DateTime<Utc>)>> {
    if seen.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = Condition::any();
    for (kind, name) in seen.keys() {
        any = any.add(
            Condition::all()
                .add(event_catalog::Column::Kind.eq(kind.as_str()))
                .add(event_catalog::Column::Name.eq(name.as_str())),
        );
    }
    let existing = event_catalog::Entity::find()
        .filter(event_catalog::Column::WorkspaceId.eq(ws.as_str()))
        .filter(any)
        .all(db)
        .await?;
    for row in existing {
        if let (Some(kind), Ok(keys)) = (
            EventKind::parse(&row.kind),
            serde_json::from_str::<Vec<String>>(&row.property_keys),
        ) && let Some(set) = seen.get_mut(&(kind, row.name))
        {
            set.extend(keys);
        }
    }
    let written = seen
        .iter()
        .map(|((kind, name), keys)| ((ws.to_string(), *kind, name.clone()), keys.clone(), now))
        .collect();
    let rows: Vec<event_catalog::ActiveModel> = seen
        .into_iter()
        .map(|((kind, name), keys)| event_catalog::ActiveModel {
            workspace_id: Set(ws.to_string()),
            kind: Set(kind.as_str().to_owned()),
            name: Set(name),
            property_keys: Set(Json::from(keys.into_iter().collect::<Vec<_>>()).to_string()),
            first_seen: Set(now),
            last_seen: Set(now),
        })
        .collect();
    use event_catalog::Column as C;
    event_catalog::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([C::WorkspaceId, C::Kind, C::Name])
                .update_columns([C::PropertyKeys, C::LastSeen])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use migrations::testing::test_databases;
    use sea_orm::PaginatorTrait;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn calls_written_together_behave_as_if_written_one_after_the_other() {
        for db in test_databases().await {
            let (a, b) = (WorkspaceId::generate(), WorkspaceId::generate());
            let memory = CatalogMemory::default();
            let calls = [
                json!({"attributes": [{"external_id": "ada", "visits": {"inc": 1}}]}),
                json!({
                    "attributes": [{"external_id": "ada", "visits": {"inc": 2}}],
                    "events": [
                        {"external_id": "ada", "name": "checkout", "time": "2026-11-28T08:00:00Z"},
                        {"braze_id": "nobody", "name": "checkout", "time": "2026-11-28T08:00:00Z"}
                    ]
                }),
                json!({"events": [{"name": "no user"}]}),
                json!({"events": [{"external_id": "ada", "name": "elsewhere", "time": "2026-11-28"}]}),
            ];
            let prepared: Vec<PreparedTrack> = calls
                .iter()
                .enumerate()
                .map(|(i, body)| prepare_track(if i == 3 { &b } else { &a }, body, now()).unwrap())
                .collect();
            let outcomes: Vec<TrackOutcome> = track_many(&db, &prepared, &memory)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(outcomes[0].attributes_processed, 1);
            assert_eq!(
                (
                    outcomes[1].attributes_processed,
                    outcomes[1].events_processed
                ),
                (1, 1)
            );
            assert_eq!(outcomes[1].errors.len(), 1);
            assert_eq!(outcomes[1].errors[0].index, 1);
            assert_eq!(outcomes[2].events_processed, 0);
            assert_eq!(outcomes[2].errors[0].input_array, "events");
            assert_eq!(outcomes[3].events_processed, 1);

            // One Ada per workspace, created by the first call and incremented by the second.
            let ada = super::super::find_by_external_id(&db, &a, "ada")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(super::super::custom_attributes(&ada)["visits"], json!(3));
            assert!(
                super::super::find_by_external_id(&db, &b, "ada")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert_eq!(profile::Entity::find().count(&db).await.unwrap(), 2);
            assert_eq!(profile_event::Entity::find().count(&db).await.unwrap(), 2);
            // Nothing listens in either workspace: no inbox rows.
            assert_eq!(event_inbox::Entity::find().count(&db).await.unwrap(), 0);
            let catalog = super::super::event_catalog(&db, &b).await.unwrap();
            assert_eq!(catalog.len(), 1);
            assert_eq!(catalog[0].name, "elsewhere");
        }
    }

    #[tokio::test]
    async fn a_batch_of_events_only_finds_profiles_by_any_identifier_and_leaves_their_attributes_alone()
     {
        for db in test_databases().await {
            let ws = WorkspaceId::generate();
            let memory = CatalogMemory::default();
            let setup = json!({"attributes": [
                {"external_id": "ada", "first_name": "Ada", "email": "ada@example.com",
                 "plan": "pro", "visits": {"inc": 4}},
                {"user_alias": {"alias_name": "anon-1", "alias_label": "web"},
                 "_update_existing_only": false, "city": "Paris"}
            ]});
            track(&db, &ws, &setup, now()).await.unwrap();
            let before = profile::Entity::find().all(&db).await.unwrap();

            // Events only, in two calls written together: known users by external id, email and
            // alias, and a new one.
            let calls = [
                json!({"events": [
                    {"external_id": "ada", "name": "checkout", "time": "2026-11-28T08:00:00Z"},
                    {"email": "ada@example.com", "name": "open", "time": "2026-11-28T08:01:00Z"}
                ]}),
                json!({"events": [
                    {"user_alias": {"alias_name": "anon-1", "alias_label": "web"},
                     "name": "open", "time": "2026-11-28T08:02:00Z"},
                    {"external_id": "grace", "name": "signup", "time": "2026-11-28T08:03:00Z"}
                ]}),
            ];
            let prepared: Vec<PreparedTrack> = calls
                .iter()
                .map(|body| prepare_track(&ws, body, now()).unwrap())
                .collect();
            for outcome in track_many(&db, &prepared, &memory).await {
                let outcome = outcome.unwrap();
                assert_eq!((outcome.events_processed, outcome.errors.len()), (2, 0));
            }

            // The known profiles are exactly as they were; one new profile for Grace.
            let after = profile::Entity::find().all(&db).await.unwrap();
            assert_eq!(after.len(), before.len() + 1);
            for profile in &before {
                assert!(after.contains(profile), "{profile:?} changed");
            }
            let events_of = |profile: &profile::Model| {
                profile_event::Entity::find()
                    .filter(profile_event::Column::ProfileId.eq(profile.id.as_str()))
                    .count(&db)
            };
            let ada = before
                .iter()
                .find(|p| p.external_id.as_deref() == Some("ada"))
                .unwrap();
            let ada_events = events_of(ada).await.unwrap();
            assert_eq!(ada_events, 2, "by external id and by email");
            let anon = before.iter().find(|p| p.external_id.is_none()).unwrap();
            let anon_events = events_of(anon).await.unwrap();
            assert_eq!(anon_events, 1, "by alias");
            assert_eq!(super::super::custom_attributes(ada)["visits"], json!(4));
        }
    }

    #[tokio::test]
    async fn a_call_that_fails_in_the_database_fails_alone() {
        for db in test_databases().await {
            let ws = WorkspaceId::generate();
            let memory = CatalogMemory::default();
            let good = prepare_track(
                &ws,
                &json!({"events": [{"external_id": "ada", "name": "ok", "time": "2026-11-28"}]}),
                now(),
            )
            .unwrap();
            // A second call carrying the same event id cannot be stored: the batch fails, then
            // each call is written alone and only the second one fails.
            let mut duplicate = good.clone();
            duplicate.events[0].as_mut().unwrap().user = UserRef::External("bob".into());
            let answers = track_many(&db, &[good, duplicate], &memory).await;
            assert!(answers[0].is_ok());
            assert!(answers[1].is_err());
            assert_eq!(profile_event::Entity::find().count(&db).await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn catalogue_rows_written_lately_are_not_written_again_unless_a_key_is_new() {
        for db in test_databases().await {
            let ws = WorkspaceId::generate();
            let memory = CatalogMemory::default();
            let call = |props: Json, at: DateTime<Utc>| {
                prepare_track(
                    &ws,
                    &json!({"events": [{"external_id": "ada", "name": "view", "time": "2026-11-28", "properties": props}]}),
                    at,
                )
                .unwrap()
            };
            let last_seen = || async {
                event_catalog::Entity::find()
                    .one(&db)
                    .await
                    .unwrap()
                    .map(|row| (row.last_seen, row.property_keys))
                    .unwrap()
            };
            track_many(&db, &[call(json!({"a": 1}), now())], &memory).await;
            let later = now() + chrono::Duration::seconds(10);
            track_many(&db, &[call(json!({"a": 2}), later)], &memory).await;
            assert_eq!(last_seen().await, (now(), r#"["a"]"#.to_string()));
            track_many(&db, &[call(json!({"b": 2}), later)], &memory).await;
            assert_eq!(last_seen().await, (later, r#"["a","b"]"#.to_string()));
            let much_later = now() + chrono::Duration::seconds(CATALOG_REFRESH_SECS + 10);
            track_many(&db, &[call(json!({"a": 3}), much_later)], &memory).await;
            assert_eq!(last_seen().await.0, much_later);
        }
    }
}
