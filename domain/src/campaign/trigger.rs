//! API-triggered sends (`/campaigns/trigger/send`) and action-based campaigns fired by tracked
//! events (read from the event inbox), with delays and exception events. What trigger calls and
//! tracked events share with Canvas entries is here too: the listed recipients' checks and
//! attributes, and whether an event is the one a trigger names.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::audience::{ID_CHUNK, Pages, audience_filter, in_audience, is_member};
use super::dispatch::{DispatchOutcome, Extras, queue_campaign_sends};
use super::model::{Campaign, CampaignKind, CampaignStatus, Delivery, PropertyFilter, Trigger};
use crate::claim::usable;
use crate::entity::{campaign as campaign_entity, campaign_receipt, profile, webhook_send};
use crate::outbox::{SourceKind, status as send_status};
use crate::profile::{EventKind, InboxItem};
use crate::segment::Filter;
use crate::{CampaignId, DomainError, DomainResult, WorkspaceId};

/// One listed recipient of a trigger call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecipient {
    pub external_user_id: String,
    /// Merged over the call's `trigger_properties` for this user.
    #[serde(default)]
    pub trigger_properties: Map<String, Json>,
    /// `false` creates the user from `attributes` when missing.
    #[serde(default = "yes")]
    pub send_to_existing_only: bool,
    /// Braze user attributes applied before the send.
    #[serde(default)]
    pub attributes: Option<Map<String, Json>>,
}

/// `send_to_existing_only`'s default, as in Braze.
pub(crate) fn yes() -> bool {
    true
}

/// Who a trigger call reaches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerTarget {
    /// At most 50 listed users (only those in the campaign's audience receive it).
    Recipients { recipients: Vec<TriggerRecipient> },
    /// The campaign's whole audience, optionally narrowed by a Connected Audience filter.
    Broadcast {
        #[serde(default)]
        audience: Option<crate::segment::Filter>,
    },
}

/// A `/campaigns/trigger/send` call (or a scheduled one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    pub target: TriggerTarget,
    #[serde(default)]
    pub trigger_properties: Map<String, Json>,
    #[serde(default)]
    pub send_tag: Option<String>,
}

/// Most listed recipients of one trigger call, as in Braze.
const MAX_RECIPIENTS: usize = 50;
/// Largest properties object (`trigger_properties`, `context`; serialized JSON), as in Braze.
const MAX_PROPERTIES_BYTES: usize = 50 * 1024;
/// How long a claimed inbox row stays ours.
const EVENT_LEASE: Duration = Duration::from_secs(60);

fn invalid_campaign(detail: Option<&str>) -> DomainError {
    match detail {
        None => DomainError::invalid("campaign_id", "Invalid Campaign ID"),
        Some(why) => DomainError::invalid("campaign_id", format!("Invalid Campaign ID: {why}")),
    }
}

fn json_size(map: &Map<String, Json>) -> usize {
    serde_json::to_string(map).map_or(usize::MAX, |text| text.len())
}

/// Checks that a trigger call's properties (`field`) are at most 50 KB of JSON.
pub(crate) fn check_size(field: &'static str, properties: &Map<String, Json>) -> DomainResult<()> {
    if json_size(properties) > MAX_PROPERTIES_BYTES {
        return Err(DomainError::invalid(field, "must be at most 50 KB of JSON"));
    }
    Ok(())
}

/// One listed recipient of a trigger call: a campaign's or a Canvas's.
pub(crate) trait ListedRecipient {
    /// The field of the recipient's own properties in errors (`recipients.context`, say).
    const PROPERTIES_FIELD: &'static str;
    fn external_user_id(&self) -> &str;
    fn properties(&self) -> &Map<String, Json>;
    fn into_properties(self) -> Map<String, Json>;
    fn send_to_existing_only(&self) -> bool;
    fn attributes(&self) -> Option<&Map<String, Json>>;
}

impl ListedRecipient for TriggerRecipient {
    const PROPERTIES_FIELD: &'static str = "recipients.trigger_properties";

    fn external_user_id(&self) -> &str {
        &self.external_user_id
    }

    fn properties(&self) -> &Map<String, Json> {
        &self.trigger_properties
    }

    fn into_properties(self) -> Map<String, Json> {
        self.trigger_properties
    }

    fn send_to_existing_only(&self) -> bool {
        self.send_to_existing_only
    }

    fn attributes(&self) -> Option<&Map<String, Json>> {
        self.attributes.as_ref()
    }
}

/// Checks a trigger call's list of recipients: 1 to 50 distinct non-empty ids, properties of at
/// most 50 KB each, and `attributes` wherever `send_to_existing_only` is false.
pub(crate) fn check_recipients<R: ListedRecipient>(recipients: &[R]) -> DomainResult<()> {
    if recipients.is_empty() {
        return Err(DomainError::invalid(
            "recipients",
            "list at least one recipient, or send a broadcast",
        ));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(DomainError::invalid(
            "recipients",
            "The max number of external_ids and aliases per request was exceeded (50)",
        ));
    }
    let mut seen = HashSet::new();
    for (index, recipient) in recipients.iter().enumerate() {
        let id = recipient.external_user_id().trim();
        if id.is_empty() {
            return Err(DomainError::invalid(
                "recipients.external_user_id",
                format!("recipient {index}: must be a non-empty string"),
            ));
        }
        // The same user twice would be sent (or entered) twice by one call.
        if !seen.insert(id) {
            return Err(DomainError::invalid(
                "recipients.external_user_id",
                format!("\u{201c}{id}\u{201d} is listed more than once"),
            ));
        }
        if json_size(recipient.properties()) > MAX_PROPERTIES_BYTES {
            return Err(DomainError::invalid(
                R::PROPERTIES_FIELD,
                format!("recipient {index} (\u{201c}{id}\u{201d}): must be at most 50 KB of JSON"),
            ));
        }
        // Braze: `false` requires `attributes`, whether or not the user exists.
        if !recipient.send_to_existing_only() && recipient.attributes().is_none() {
            return Err(DomainError::invalid(
                "recipients.attributes",
                format!(
                    "recipient {index} (\u{201c}{id}\u{201d}): required when \
                     send_to_existing_only is false"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks what a trigger call carries before anything is read: sizes, the recipient list and the
/// broadcast filter. Also run when a trigger is scheduled.
pub(super) fn check_request(request: &TriggerRequest) -> DomainResult<()> {
    check_size("trigger_properties", &request.trigger_properties)?;
    match &request.target {
        TriggerTarget::Recipients { recipients } => check_recipients(recipients),
        TriggerTarget::Broadcast { audience } => audience.as_ref().map_or(Ok(()), Filter::validate),
    }
}

/// Checks the campaign is an API-triggered webhook campaign ("Invalid Campaign ID" otherwise),
/// whatever its status.
pub(super) async fn api_triggered_campaign(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    id: &CampaignId,
) -> DomainResult<Campaign> {
    let campaign = match super::store::find_campaign(db, ws, id).await {
        Ok(campaign) => campaign,
        Err(DomainError::NotFound(_)) => return Err(invalid_campaign(None)),
        Err(other) => return Err(other),
    };
    if campaign.kind != CampaignKind::Webhook || campaign.delivery != Delivery::Api {
        return Err(invalid_campaign(Some(
            "the campaign is not an API-triggered webhook campaign",
        )));
    }
    if campaign.status == CampaignStatus::Archived {
        return Err(invalid_campaign(Some("the campaign is archived")));
    }
    Ok(campaign)
}

/// A send time read in each user's own time zone (`/…/schedule/create` with `in_local_time`).
#[derive(Clone, Copy, Debug)]
pub(super) struct LocalTime {
    /// The wall time, the same in every zone.
    pub wall: NaiveDateTime,
    /// When the time was set: users for whom it had already passed then get nothing, as in
    /// Braze.
    pub set_at: DateTime<Utc>,
}

impl LocalTime {
    /// The instant the wall time falls on in `zone` (an IANA name); users without a readable
    /// zone use UTC, since a workspace has no company time zone. A time skipped by a DST change
    /// moves on by an hour; a repeated one takes its first occurrence.
    pub fn instant(&self, zone: Option<&str>) -> DateTime<Utc> {
        let tz: Tz = zone
            .and_then(|name| name.trim().parse().ok())
            .unwrap_or(Tz::UTC);
        let at = |wall: NaiveDateTime| match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            LocalResult::None => None,
        };
        at(self.wall)
            .or_else(|| at(self.wall + TimeDelta::hours(1)))
            .unwrap_or_else(|| self.wall.and_utc())
    }

    /// When this user's send is due, or `None` when their time had passed when it was set.
    pub fn due_for(&self, zone: Option<&str>) -> Option<DateTime<Utc>> {
        let instant = self.instant(zone);
        (instant > self.set_at).then_some(instant)
    }
}

/// `audience AND extra`. The audience is a root group that may be empty (everyone), and an
/// empty group may not be nested, so the extra condition joins it rather than wrapping it.
fn narrowed(audience: Filter, extra: Filter) -> Filter {
    match audience {
        Filter::And { mut filters } => {
            filters.push(extra);
            Filter::And { filters }
        }
        other => Filter::And {
            filters: vec![other, extra],
        },
    }
}

/// Adds one part of a dispatch to the total.
fn absorb(total: &mut DispatchOutcome, part: DispatchOutcome) {
    total.queued += part.queued;
    total.control += part.control;
    total.skipped += part.skipped;
    total.unknown_recipients.extend(part.unknown_recipients);
}

/// On SQLite, takes the write lock before the first read (`no_op`: an UPDATE that changes
/// nothing) so a concurrent writer waits (busy timeout) instead of failing when this transaction
/// upgrades from reading to writing.
pub(crate) async fn lock_for_write(db: &impl ConnectionTrait, no_op: &str) -> DomainResult<()> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared(no_op).await?;
    }
    Ok(())
}

/// The no-op UPDATE that takes SQLite's write lock for campaign triggers and tracked events.
const LOCK_EVENTS: &str = "UPDATE event_catalog SET kind = kind WHERE 0";

/// The workspace's users with these external ids, by external id.
async fn profiles_by_external_id(
    db: &impl ConnectionTrait,
    ws: &WorkspaceId,
    ids: &[String],
) -> DomainResult<HashMap<String, profile::Model>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ID_CHUNK) {
        let rows = profile::Entity::find()
            .filter(profile::Column::WorkspaceId.eq(ws.as_str()))
            .filter(profile::Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
            .all(db)
            .await?;
        for row in rows {
            if let Some(external_id) = row.external_id.clone() {
                found.insert(external_id, row);
            }
        }
    }
    Ok(found)
}

/// The users a trigger call lists, in the caller's transaction. Their attributes are applied
/// first, in one `/users/track` call (Braze applies them before the send or entry, so the
/// audience and the message see them); `send_to_existing_only` users who do not exist are
/// neither created nor reached. Ids that match no user then go to `unknown`. Returns the users
/// in `audience` with their own properties, and how many users found are outside it.
pub(crate) async fn listed_members<C, R>(
    txn: &C,
    ws: &WorkspaceId,
    recipients: Vec<R>,
    audience: &Filter,
    now: DateTime<Utc>,
    unknown: &mut Vec<String>,
) -> DomainResult<(Vec<(profile::Model, Map<String, Json>)>, u64)>
where
    C: ConnectionTrait + TransactionTrait,
    R: ListedRecipient,
{
    let ids: Vec<String> = recipients
        .iter()
        .map(|r| r.external_user_id().trim().to_owned())
        .collect();
    let mut users = profiles_by_external_id(txn, ws, &ids).await?;
    let mut items = Vec::new();
    let mut owners = Vec::new();
    for (index, (recipient, id)) in recipients.iter().zip(&ids).enumerate() {
        if !users.contains_key(id) && recipient.send_to_existing_only() {
            continue;
        }
        if let Some(attributes) = recipient.attributes() {
            let mut item = attributes.clone();
            item.insert("external_id".into(), Json::String(id.clone()));
            item.insert(
                "_update_existing_only".into(),
                Json::Bool(recipient.send_to_existing_only()),
            );
            items.push(Json::Object(item));
            owners.push(index);
        }
    }
    if !items.is_empty() {
        // `track` opens its own transaction: inside ours it is a savepoint.
        let tracked = crate::profile::track(txn, ws, &json!({ "attributes": items }), now).await?;
        if let Some(error) = tracked.errors.first() {
            let index = owners.get(error.index).copied().unwrap_or_default();
            let id = ids.get(index).map_or("", String::as_str);
            return Err(DomainError::invalid(
                "recipients.attributes",
                format!(
                    "recipient {index} (\u{201c}{id}\u{201d}): {}",
                    error.message
                ),
            ));
        }
        users = profiles_by_external_id(txn, ws, &ids).await?;
    }
    let mut listed = Vec::new();
    for (recipient, id) in recipients.into_iter().zip(ids) {
        match users.remove(&id) {
            Some(user) => listed.push((user, recipient.into_properties())),
            None => unknown.push(id),
        }
    }
    let profile_ids: Vec<String> = listed.iter().map(|(u, _)| u.id.clone()).collect();
    let members = in_audience(txn, ws, audience, &profile_ids, now).await?;
    let found = listed.len();
    listed.retain(|(user, _)| members.contains(&user.id));
    let outside = (found - listed.len()) as u64;
    Ok((listed, outside))
}

/// Sends an API-triggered campaign. The campaign must be an active API-triggered webhook
/// campaign ("Invalid Campaign ID" otherwise); attributes are applied and users created first,
/// then each eligible user's send is queued with its `api_trigger_properties`, all in one
/// transaction.
pub async fn trigger_campaign<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ws: &WorkspaceId,
    campaign: &CampaignId,
    request: TriggerRequest,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    check_request(&request)?;
    let dispatch_id = uuid::Uuid::new_v4().simple().to_string();
    let txn = db.begin().await?;
    let outcome = trigger_in(&txn, ws, campaign, request, dispatch_id, None, now).await?;
    txn.commit().await?;
    Ok(outcome)
}

/// [`trigger_campaign`] inside the caller's transaction, under a given dispatch id and, for a
/// trigger scheduled in local time, with each user's send held until their local time.
pub(super) async fn trigger_in<C: ConnectionTrait + TransactionTrait>(
    txn: &C,
    ws: &WorkspaceId,
    campaign_id: &CampaignId,
    request: TriggerRequest,
    dispatch_id: String,
    local: Option<LocalTime>,
    now: DateTime<Utc>,
) -> DomainResult<DispatchOutcome> {
    check_request(&request)?;
    lock_for_write(txn, LOCK_EVENTS).await?;
    let campaign = api_triggered_campaign(txn, ws, campaign_id).await?;
    match campaign.status {
        CampaignStatus::Active => {}
        CampaignStatus::Stopped => return Err(invalid_campaign(Some("the campaign is stopped"))),
        _ => {
            return Err(invalid_campaign(Some("the campaign has not been launched")));
        }
    }
    let audience = audience_filter(txn, ws, &campaign.audience).await?;
    let mut outcome = DispatchOutcome {
        dispatch_id: dispatch_id.clone(),
        ..DispatchOutcome::default()
    };
    let TriggerRequest {
        target,
        trigger_properties,
        send_tag,
    } = request;
    // A user's send with these properties; `None` leaves the user out (their local time had
    // passed when the trigger was scheduled).
    let extras = |user: &profile::Model, properties| -> Option<Extras> {
        let not_before = match &local {
            None => None,
            Some(local) => Some(local.due_for(user.time_zone.as_deref())?),
        };
        Some(Extras {
            api_trigger_properties: properties,
            event_properties: Map::new(),
            not_before,
        })
    };
    match target {
        TriggerTarget::Recipients { recipients } => {
            // Only users in the campaign's audience receive it.
            let (listed, _) = listed_members(
                txn,
                ws,
                recipients,
                &audience,
                now,
                &mut outcome.unknown_recipients,
            )
            .await?;
            let mut batch = Vec::new();
            for (user, own) in listed {
                // The recipient's own properties win over the call's.
                let mut properties = trigger_properties.clone();
                properties.extend(own);
                match extras(&user, properties) {
                    Some(extras) => batch.push((user, extras)),
                    None => outcome.skipped += 1,
                }
            }
            let part = queue_campaign_sends(txn, ws, &campaign, &dispatch_id, batch, send_tag, now)
                .await?;
            absorb(&mut outcome, part);
        }
        TriggerTarget::Broadcast { audience: extra } => {
            let filter = match extra {
                Some(extra) => narrowed(audience, extra),
                None => audience,
            };
            let max = campaign.settings.max_recipients;
            let mut pages = Pages::new(ws, &filter, now, None);
            while let Some(page) = pages.next(txn).await? {
                let mut batch = Vec::with_capacity(page.len());
                for user in page {
                    match extras(&user, trigger_properties.clone()) {
                        Some(extras) => batch.push((user, extras)),
                        None => outcome.skipped += 1,
                    }
                }
                // `max_recipients` counts the whole dispatch, across pages.
                if let Some(max) = max {
                    let room = max.saturating_sub(outcome.queued);
                    batch.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                }
                if !batch.is_empty() {
                    let part = queue_campaign_sends(
                        txn,
                        ws,
                        &campaign,
                        &dispatch_id,
                        batch,
                        send_tag.clone(),
                        now,
                    )
                    .await?;
                    absorb(&mut outcome, part);
                }
                if max.is_some_and(|max| outcome.queued >= max) {
                    break;
                }
            }
        }
    }
    Ok(outcome)
}

/// Claims up to `limit` tracked events from the inbox, fires the active action-based campaigns
/// they trigger (after each campaign's delay) and cancels delayed sends their exception events
/// name, hands each event to the Canvases ([`crate::canvas::on_event`]: entries, Action Paths,
/// exit criteria), then marks the events handled. Returns how many events were handled.
///
/// Each event is handled in one transaction with its `mark_handled`: a crash before the commit
/// leaves nothing behind and the event is claimed again once its lease (60 s) runs out; after
/// the commit nothing repeats. A process slower than the lease may see its events handled a
/// second time by another: delivery is at least once.
pub async fn handle_events<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: usize,
) -> DomainResult<usize> {
    let items = crate::profile::claim_inbox(db, limit, EVENT_LEASE, now).await?;
    let mut by_workspace: BTreeMap<String, Vec<InboxItem>> = BTreeMap::new();
    for item in items {
        by_workspace
            .entry(item.key.workspace_id.to_string())
            .or_default()
            .push(item);
    }
    let mut handled = 0;
    for (ws, items) in by_workspace {
        let ws = WorkspaceId::from_db(ws);
        // The workspace's action-based campaigns, read once per batch.
        let mut listeners = Listeners::load(db, &ws).await?;
        let listened = listeners.listened(canvases_listen(db, &ws).await?);
        // Events nothing reacts to (left from before a listener stopped, say) are handled in one
        // statement; the others in groups below.
        let (items, ignored): (Vec<InboxItem>, Vec<InboxItem>) = items
            .into_iter()
            .partition(|item| listened.covers(item.kind, &item.name));
        if !ignored.is_empty() {
            let keys: Vec<_> = ignored.iter().map(|item| item.key.clone()).collect();
            crate::profile::mark_handled(db, &keys, now).await?;
            handled += ignored.len();
        }
        let canvases = listened == Listened::Everything;
        // Events are handled in groups under one transaction (one commit, one disk sync on
        // SQLite, per group), marked handled together at its end. A crash or an error before the
        // group's commit rolls the whole group back; its events are claimed again when their
        // lease runs out, so each is still acted on exactly once.
        for group in items.chunks(EVENT_GROUP) {
            let txn = db.begin().await?;
            lock_for_write(&txn, LOCK_EVENTS).await?;
            for item in group {
                handle_event(&txn, &ws, &mut listeners, item, now).await?;
                // Canvases read the same inbox, in the same transaction: an event is handed to
                // both once, and a crash before the commit repeats it for both.
                if canvases {
                    crate::canvas::on_event(&txn, item, now).await?;
                }
            }
            let keys: Vec<_> = group.iter().map(|item| item.key.clone()).collect();
            crate::profile::mark_handled(&txn, &keys, now).await?;
            txn.commit().await?;
            handled += group.len();
        }
    }
    Ok(handled)
}

/// Events handled per transaction.
const EVENT_GROUP: usize = 64;

/// Whether any Canvas of the workspace may react to an event (an entry trigger, a journey waiting
/// in Action Paths, exit criteria): one that has launched and is not archived.
async fn canvases_listen(db: &impl ConnectionTrait, ws: &WorkspaceId) -> DomainResult<bool> {
    use crate::entity::canvas as canvas_entity;
    use sea_orm::PaginatorTrait;
    let live = canvas_entity::Entity::find()
        .filter(canvas_entity::Column::WorkspaceId.eq(ws.as_str()))
        .filter(canvas_entity::Column::Status.is_in(["active", "paused", "stopped"]))
        .count(db)
        .await?;
    Ok(live > 0)
}

/// Which tracked events anything in a workspace may act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listened {
    /// A Canvas is live: its entries, Action Paths and exit criteria (in any of its versions)
    /// may name any event.
    Everything,
    /// Only the triggers and exception events of the active action-based campaigns, as
    /// `(kind, name)`; a purchase trigger without a product is `(Purchase, None)`. Empty when
    /// nothing listens.
    Only(HashSet<(EventKind, Option<String>)>),
}

impl Listened {
    /// Whether an event (or a purchase of product `name`) may be acted on.
    pub fn covers(&self, kind: EventKind, name: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Only(keys) => {
                keys.contains(&(kind, Some(name.to_string())))
                    || (kind == EventKind::Purchase && keys.contains(&(kind, None)))
            }
        }
    }
}

/// Which events anything in the workspace may act on now: action-based campaigns' triggers and
/// exception events, and every event while a Canvas is live. `/users/track` asks this inside its
/// write transaction and writes inbox rows only for those events, so an event is handed to the
/// listeners that existed when it was recorded (on SQLite the write lock is held while asking,
/// so a launch commits wholly before or after; on PostgreSQL a launch committing at that very
/// moment may miss the events recorded with it). Conversions are counted from stored events and
/// need no inbox row.
pub async fn listened(db: &impl ConnectionTrait, ws: &WorkspaceId) -> DomainResult<Listened> {
    if canvases_listen(db, ws).await? {
        return Ok(Listened::Everything);
    }
    Ok(Listeners::load(db, ws).await?.listened(false))
}

/// A workspace's active action-based campaigns, with their audience filters once computed.
struct Listeners {
    campaigns: Vec<Campaign>,
    /// By campaign id; `None` when the audience cannot be evaluated (an archived segment, say).
    audiences: HashMap<String, Option<Filter>>,
}

impl Listeners {
    async fn load(db: &impl ConnectionTrait, ws: &WorkspaceId) -> DomainResult<Self> {
        let rows = campaign_entity::Entity::find()
            .filter(campaign_entity::Column::WorkspaceId.eq(ws.as_str()))
            .filter(campaign_entity::Column::DeliveryType.eq("action"))
            .filter(campaign_entity::Column::Status.eq(CampaignStatus::Active.as_str()))
            .all(db)
            .await?;
        // A row that no longer decodes cannot be acted on; skipping it keeps the other
        // campaigns (and the inbox) moving.
        let campaigns = rows
            .into_iter()
            .filter_map(|row| super::store::decode(row).ok())
            .collect();
        Ok(Self {
            campaigns,
            audiences: HashMap::new(),
        })
    }

    /// What these campaigns (and, when `canvases` is true, live Canvases) react to.
    fn listened(&self, canvases: bool) -> Listened {
        if canvases {
            return Listened::Everything;
        }
        let keys = self
            .campaigns
            .iter()
            .flat_map(reacts_to)
            .map(|trigger| match trigger {
                Trigger::CustomEvent { name, .. } => (EventKind::Event, Some(name.clone())),
                Trigger::Purchase { product_id } => (EventKind::Purchase, product_id.clone()),
            })
            .collect();
        Listened::Only(keys)
    }

    async fn audience(
        &mut self,
        db: &impl ConnectionTrait,
        ws: &WorkspaceId,
        index: usize,
    ) -> DomainResult<Option<Filter>> {
        let campaign = &self.campaigns[index];
        let key = campaign.id.to_string();
        if let Some(cached) = self.audiences.get(&key) {
            return Ok(cached.clone());
        }
        let filter = usable(audience_filter(db, ws, &campaign.audience).await)?;
        self.audiences.insert(key, filter.clone());
        Ok(filter)
    }
}

async fn handle_event<C: ConnectionTrait + TransactionTrait>(
    txn: &C,
    ws: &WorkspaceId,
    listeners: &mut Listeners,
    item: &InboxItem,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    // An event no campaign names (it reached the inbox for a Canvas) needs no reads.
    let named = |campaign: &Campaign| reacts_to(campaign).any(|t| trigger_matches(t, item));
    if !listeners.campaigns.iter().any(named) {
        return Ok(());
    }
    // A user deleted since the event was tracked gets nothing.
    let Some(user) = profile::Entity::find_by_id((ws.to_string(), item.profile_id.to_string()))
        .one(txn)
        .await?
    else {
        return Ok(());
    };

    // Exceptions first, so a campaign whose trigger is also its exception keeps the send this
    // very event queues.
    for campaign in &listeners.campaigns {
        let Delivery::Action { exceptions, .. } = &campaign.delivery else {
            continue;
        };
        if exceptions
            .iter()
            .any(|exception| trigger_matches(exception, item))
        {
            abort_delayed_sends(txn, ws, campaign, &user, item, now).await?;
        }
    }

    for index in 0..listeners.campaigns.len() {
        let Some(not_before) = fires(&listeners.campaigns[index], item) else {
            continue;
        };
        let Some(filter) = listeners.audience(txn, ws, index).await? else {
            continue;
        };
        let campaign = &listeners.campaigns[index];
        // An audience the database cannot evaluate skips the campaign rather than holding the
        // inbox; database errors still stop the batch (the event is claimed again later).
        if usable(is_member(txn, ws, &filter, &user.id, now).await)? != Some(true) {
            continue;
        }
        let extras = Extras {
            api_trigger_properties: Map::new(),
            event_properties: item.properties.clone(),
            not_before,
        };
        // Braze gives action-based sends a dispatch id per user and campaign.
        let dispatch_id = uuid::Uuid::new_v4().simple().to_string();
        // A campaign that cannot be queued (a rejected setting) must not hold the event, and
        // with it the inbox, forever: its part is rolled back and the others go on.
        let savepoint = txn.begin().await?;
        let batch = vec![(user.clone(), extras)];
        let queued =
            queue_campaign_sends(&savepoint, ws, campaign, &dispatch_id, batch, None, now).await;
        match usable(queued)? {
            Some(_) => savepoint.commit().await?,
            None => savepoint.rollback().await?,
        }
    }
    Ok(())
}

/// The events an action-based campaign reacts to: its trigger and its exception events (none for
/// other campaigns).
fn reacts_to(campaign: &Campaign) -> impl Iterator<Item = &Trigger> {
    let (trigger, exceptions) = match &campaign.delivery {
        Delivery::Action {
            trigger,
            exceptions,
            ..
        } => (Some(trigger), exceptions.as_slice()),
        _ => (None, &[][..]),
    };
    trigger.into_iter().chain(exceptions)
}

/// Whether `item` fires an action-based campaign; `Some(not_before)` when it does (`None` inside:
/// no delay). Users who triggered before launch don't qualify; the trigger must fall in the
/// campaign's duration and, as in Braze, so must the send after the delay.
fn fires(campaign: &Campaign, item: &InboxItem) -> Option<Option<DateTime<Utc>>> {
    let Delivery::Action {
        trigger,
        delay_seconds,
        starts_at,
        ends_at,
        ..
    } = &campaign.delivery
    else {
        return None;
    };
    if !trigger_matches(trigger, item) {
        return None;
    }
    let delay = TimeDelta::try_seconds(i64::try_from(*delay_seconds).ok()?)?;
    let send_at = item.time.checked_add_signed(delay)?;
    // Event times are stored to the millisecond; the launch time is not.
    let launched = campaign
        .launched_at
        .is_some_and(|at| item.time >= at - TimeDelta::milliseconds(1));
    let started = starts_at.is_none_or(|at| item.time >= at);
    let not_ended = ends_at.is_none_or(|at| send_at <= at);
    (launched && started && not_ended).then_some((*delay_seconds > 0).then_some(send_at))
}

/// Whether an inbox item is the event (or purchase) a trigger names, property filters included.
pub(crate) fn trigger_matches(trigger: &Trigger, item: &InboxItem) -> bool {
    match trigger {
        Trigger::CustomEvent {
            name,
            property_filters,
        } => {
            item.kind == EventKind::Event
                && item.name == *name
                && property_filters
                    .iter()
                    .all(|filter| property_matches(filter, &item.properties))
        }
        Trigger::Purchase { product_id } => {
            item.kind == EventKind::Purchase
                && product_id
                    .as_ref()
                    .is_none_or(|product| *product == item.name)
        }
    }
}

/// A property by name, or by a dotted path into nested objects.
fn lookup<'a>(properties: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    if let Some(value) = properties.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = properties.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn as_time(value: &Json) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Numbers compare as numbers (`1` equals `1.0`), everything else as JSON.
fn same(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// Numbers order as numbers, ISO 8601 times as instants; nothing else orders.
fn order(a: &Json, b: &Json) -> Option<Ordering> {
    if a.is_number() && b.is_number() {
        return a.as_f64()?.partial_cmp(&b.as_f64()?);
    }
    Some(as_time(a)?.cmp(&as_time(b)?))
}

/// A property filter against an event's properties. A missing (or null) property matches only
/// `does_not_exist` and `not_equal`, as the segment filters treat attributes.
fn property_matches(filter: &PropertyFilter, properties: &Map<String, Json>) -> bool {
    let value = lookup(properties, &filter.property).filter(|v| !v.is_null());
    match filter.comparison.as_str() {
        "exists" => value.is_some(),
        "does_not_exist" => value.is_none(),
        "equals" => value.is_some_and(|v| same(v, &filter.value)),
        "not_equal" | "does_not_equal" => !value.is_some_and(|v| same(v, &filter.value)),
        "greater_than" => value.and_then(|v| order(v, &filter.value)) == Some(Ordering::Greater),
        "less_than" => value.and_then(|v| order(v, &filter.value)) == Some(Ordering::Less),
        "contains" => value.is_some_and(|v| match (v, &filter.value) {
            // Case-insensitive, as the segment filters' `contains`.
            (Json::String(text), Json::String(part)) => {
                text.to_lowercase().contains(&part.to_lowercase())
            }
            (Json::Array(items), wanted) => items.iter().any(|item| same(item, wanted)),
            _ => false,
        }),
        _ => false,
    }
}

/// An exception event: aborts the user's sends of `campaign` still waiting for a delay that
/// ends after the event (pending, never attempted, not claimed), and gives back the receipts they
/// wrote so the user stays eligible, as in Braze.
///
/// The receipt row counts receipts but does not say which send wrote it: when it counts no more
/// than the aborted sends it is deleted; otherwise the count goes down by the aborted sends and
/// `last_received_at` stays as it is (the earlier receipt's time is not kept), so a campaign
/// with a re-eligibility window measures it from the aborted send.
async fn abort_delayed_sends(
    txn: &impl ConnectionTrait,
    ws: &WorkspaceId,
    campaign: &Campaign,
    user: &profile::Model,
    item: &InboxItem,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let unclaimed = Condition::any()
        .add(webhook_send::Column::LeaseUntil.is_null())
        .add(webhook_send::Column::LeaseUntil.lt(now));
    let mut select = webhook_send::Entity::find()
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::SourceKind.eq(SourceKind::Campaign.as_str()))
        .filter(webhook_send::Column::SourceId.eq(campaign.id.as_str()))
        .filter(webhook_send::Column::Status.eq(send_status::PENDING))
        .filter(webhook_send::Column::Attempts.eq(0))
        .filter(webhook_send::Column::NextAttemptAt.gt(item.time))
        .filter(unclaimed.clone());
    select = match &user.external_id {
        Some(external_id) => {
            select.filter(webhook_send::Column::Recipient.eq(external_id.as_str()))
        }
        None => select.filter(webhook_send::Column::Recipient.is_null()),
    };
    let rows = select.all(txn).await?;
    // Sends to users without an external id carry the user's braze_id in their context.
    let ids: Vec<String> = rows
        .into_iter()
        .filter(|row| {
            user.external_id.is_some()
                || serde_json::from_str::<Json>(&row.context)
                    .ok()
                    .is_some_and(|context| {
                        context.pointer("/user/braze_id").and_then(Json::as_str)
                            == Some(user.id.as_str())
                    })
        })
        .map(|row| row.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let name = match item.kind {
        EventKind::Event => item.name.clone(),
        EventKind::Purchase => format!("purchase {}", item.name),
    };
    let aborted = webhook_send::Entity::update_many()
        .col_expr(
            webhook_send::Column::Status,
            Expr::value(send_status::ABORTED),
        )
        .col_expr(
            webhook_send::Column::LastError,
            Expr::value(format!("exception event {name}")),
        )
        .col_expr(webhook_send::Column::CompletedAt, Expr::value(now))
        .filter(webhook_send::Column::WorkspaceId.eq(ws.as_str()))
        .filter(webhook_send::Column::Id.is_in(ids))
        .filter(webhook_send::Column::Status.eq(send_status::PENDING))
        .filter(webhook_send::Column::Attempts.eq(0))
        .filter(unclaimed)
        .exec(txn)
        .await?
        .rows_affected;
    if aborted == 0 {
        return Ok(());
    }
    let key = (ws.to_string(), campaign.id.to_string(), user.id.clone());
    if let Some(receipt) = campaign_receipt::Entity::find_by_id(key.clone())
        .one(txn)
        .await?
    {
        let remaining = i64::from(receipt.receipts) - i64::try_from(aborted).unwrap_or(i64::MAX);
        if remaining <= 0 {
            campaign_receipt::Entity::delete_by_id(key)
                .exec(txn)
                .await?;
        } else {
            campaign_receipt::Entity::update_many()
                .col_expr(
                    campaign_receipt::Column::Receipts,
                    Expr::value(i32::try_from(remaining).unwrap_or(i32::MAX)),
                )
                .filter(campaign_receipt::Column::WorkspaceId.eq(ws.as_str()))
                .filter(campaign_receipt::Column::CampaignId.eq(campaign.id.as_str()))
                .filter(campaign_receipt::Column::ProfileId.eq(user.id.as_str()))
                .exec(txn)
                .await?;
        }
    }
    Ok(())
}
