//! Campaigns in the dashboard: the plain types the builder, the list and the report exchange with
//! the browser (strings where people type, so a half-typed number is kept and rejected by the
//! server with the field it belongs to), and the server functions behind them. Each server
//! function checks the caller's membership and role first: Viewers read, Marketers and Admins edit,
//! launch, stop and archive.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

use crate::webhooks::MessageDraft;

#[cfg(feature = "ssr")]
use crate::ssr::{authorize, ctx, fail, when};
#[cfg(feature = "ssr")]
use domain::{CampaignId, Capability};

/// One row of the campaign list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRow {
    pub id: String,
    pub name: String,
    /// `webhook` or `api`.
    pub kind: String,
    /// `scheduled`, `action` or `api`.
    pub delivery: String,
    pub status: String,
    pub tags: Vec<String>,
    pub updated: String,
    pub next_send: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignsView {
    pub rows: Vec<CampaignRow>,
    /// Every tag used in the workspace, for the filter.
    pub tags: Vec<String>,
    /// Whether the workspace has any campaign at all (archived included), to tell "none yet"
    /// from "none match".
    pub any: bool,
    pub can_build: bool,
}

/// A recent failed send on the workspace home.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRow {
    pub send_id: String,
    pub at: String,
    pub recipient: Option<String>,
    pub source: Option<String>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

/// The workspace's last seven days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewView {
    pub active_campaigns: u64,
    pub sends: u64,
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
    pub latest_errors: Vec<ErrorRow>,
}

/// A condition on a triggering event's property.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyFilterDraft {
    pub property: String,
    /// `equals`, `not_equal`, `greater_than`, `less_than`, `exists`, `does_not_exist`, `contains`.
    pub comparison: String,
    /// As typed; numbers and `true`/`false` are sent typed.
    pub value: String,
}

/// A trigger, exception or conversion event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDraft {
    /// `custom_event` or `purchase`.
    pub kind: String,
    /// The custom event's name, or the product id of a purchase (empty: any product).
    pub name: String,
    pub filters: Vec<PropertyFilterDraft>,
}

impl Default for TriggerDraft {
    fn default() -> Self {
        Self {
            kind: "custom_event".into(),
            name: String::new(),
            filters: Vec::new(),
        }
    }
}

/// A message variant: its webhook is `None` in API campaigns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantDraft {
    /// The `message_variation_id`, once saved.
    pub id: Option<String>,
    pub name: String,
    pub percent: String,
    pub message: Option<MessageDraft>,
}

/// How the campaign is delivered. Only the fields of the chosen `kind` (and `schedule`) matter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDraft {
    /// `scheduled`, `action` or `api`.
    pub kind: String,
    /// `at_launch`, `once`, `daily`, `weekly` or `monthly`.
    pub schedule: String,
    /// `YYYY-MM-DD`.
    pub starts_on: String,
    /// `HH:MM`.
    pub time: String,
    pub every: String,
    /// `mon` … `sun`.
    pub days: Vec<String>,
    pub month_day: String,
    pub ends_on: String,
    pub time_zone: String,
    pub in_local_time: bool,
    pub trigger: TriggerDraft,
    pub delay: String,
    /// `seconds`, `minutes`, `hours`, `days` or `weeks`.
    pub delay_unit: String,
    pub exceptions: Vec<TriggerDraft>,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    pub starts_at: String,
    pub ends_at: String,
}

impl Default for DeliveryDraft {
    fn default() -> Self {
        Self {
            kind: "scheduled".into(),
            schedule: "at_launch".into(),
            starts_on: String::new(),
            time: "09:00".into(),
            every: "1".into(),
            days: Vec::new(),
            month_day: "1".into(),
            ends_on: String::new(),
            time_zone: String::new(),
            in_local_time: false,
            trigger: TriggerDraft::default(),
            delay: "0".into(),
            delay_unit: "minutes".into(),
            exceptions: Vec::new(),
            starts_at: String::new(),
            ends_at: String::new(),
        }
    }
}

/// A conversion event and its window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionDraft {
    pub trigger: TriggerDraft,
    pub window: String,
    /// `hours` or `days`.
    pub window_unit: String,
}

/// Delivery controls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsDraft {
    /// Empty: as fast as the engine goes.
    pub rate_per_minute: String,
    /// Empty: no cap.
    pub max_recipients: String,
    pub reeligible: bool,
    pub reeligible_after: String,
    /// `minutes`, `hours` or `days`.
    pub reeligible_unit: String,
    pub frequency_capped: bool,
    pub quiet_hours: bool,
    /// `HH:MM`.
    pub quiet_start: String,
    pub quiet_end: String,
    pub quiet_send_later: bool,
}

impl Default for SettingsDraft {
    fn default() -> Self {
        Self {
            rate_per_minute: String::new(),
            max_recipients: String::new(),
            reeligible: false,
            reeligible_after: "1".into(),
            reeligible_unit: "days".into(),
            frequency_capped: true,
            quiet_hours: false,
            quiet_start: "22:00".into(),
            quiet_end: "08:00".into(),
            quiet_send_later: true,
        }
    }
}

/// A campaign as the builder edits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignDraft {
    pub name: String,
    pub description: String,
    /// Comma-separated.
    pub tags: String,
    /// `webhook` or `api`.
    pub kind: String,
    pub variants: Vec<VariantDraft>,
    pub control_percent: String,
    pub delivery: DeliveryDraft,
    pub segment_ids: Vec<String>,
    /// An extra audience filter set over the management API; kept as it is.
    pub audience_filter: Option<serde_json::Value>,
    pub conversions: Vec<ConversionDraft>,
    pub settings: SettingsDraft,
}

impl CampaignDraft {
    /// A new campaign of `kind` (`webhook` or `api`): one variant taking everyone.
    pub fn new(kind: &str) -> Self {
        let api = kind == "api";
        Self {
            name: String::new(),
            description: String::new(),
            tags: String::new(),
            kind: if api { "api" } else { "webhook" }.into(),
            variants: vec![VariantDraft {
                id: None,
                name: "Variant 1".into(),
                percent: "100".into(),
                message: (!api).then(MessageDraft::default),
            }],
            control_percent: "0".into(),
            delivery: DeliveryDraft {
                kind: if api { "api" } else { "scheduled" }.into(),
                ..DeliveryDraft::default()
            },
            segment_ids: Vec::new(),
            audience_filter: None,
            conversions: Vec::new(),
            settings: SettingsDraft::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentOption {
    pub id: String,
    pub name: String,
    pub archived: bool,
}

/// What the builder opens with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignDetails {
    /// `None` for a campaign not saved yet.
    pub id: Option<String>,
    pub version: Option<i32>,
    pub status: String,
    pub draft: CampaignDraft,
    pub can_build: bool,
    pub launched: Option<String>,
    pub next_send: Option<String>,
    pub updated: Option<String>,
    pub segments: Vec<SegmentOption>,
    /// Custom event names seen in the workspace.
    pub events: Vec<String>,
    /// Product ids seen in purchases.
    pub products: Vec<String>,
    /// Herald's public base URL, for the API examples.
    pub base_url: String,
}

/// A rejected value and the field it belongs to (`variants[0].message.url`, `delivery.schedule.time`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCampaign {
    pub id: String,
    pub version: i32,
    pub status: String,
    /// The variants' ids, in order.
    pub variant_ids: Vec<String>,
}

/// The result of saving (and maybe launching): what was saved, and what was rejected. A launch
/// refused after a successful save has both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveOutcome {
    pub saved: Option<SavedCampaign>,
    pub error: Option<FieldError>,
}

/// A campaign's name and state, for the report page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub delivery: String,
    pub status: String,
    pub launched: Option<String>,
    pub next_send: Option<String>,
    pub can_build: bool,
}

/// Live progress of a campaign's sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressView {
    pub queued: u64,
    pub retrying: u64,
    pub delivered: u64,
    pub failed: u64,
    pub aborted: u64,
    pub remaining_to_queue: Option<u64>,
    /// An occurrence is writing its recipients' sends to the outbox right now.
    pub dispatching: bool,
    /// Something is still to happen soon: sends queued or retrying, recipients still being
    /// written, or an occurrence due now. The page polls while this holds.
    pub busy: bool,
    pub status: String,
}

impl ProgressView {
    pub fn total(&self) -> u64 {
        self.queued + self.retrying + self.delivered + self.failed + self.aborted
    }
}

/// Figures for one variant, or the whole campaign.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantStatsRow {
    pub variant_id: Option<String>,
    pub name: String,
    pub sends: u64,
    pub delivered: u64,
    pub errors_client: u64,
    pub errors_server: u64,
    pub errors_network: u64,
    pub aborted: u64,
    pub retries: u64,
    pub unique_recipients: u64,
    pub conversions: u64,
}

/// One bucket of the report chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesBar {
    pub label: String,
    pub sends: u64,
    pub delivered: u64,
    pub errors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportView {
    pub total: VariantStatsRow,
    pub variants: Vec<VariantStatsRow>,
    pub control_recipients: u64,
    pub control_conversions: u64,
    pub series: Vec<SeriesBar>,
    /// "Sends per hour (last 24 hours, UTC)" and the like.
    pub series_title: String,
}

// ---------------------------------------------------------------------------------------------
// Server side: drafts to domain values and back.

#[cfg(feature = "ssr")]
pub(crate) mod convert {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
    use domain::campaign::{
        AudienceSpec, Campaign, CampaignInput, CampaignKind, Conversion, Delivery, PropertyFilter,
        QuietHours, Recurrence, Schedule, Settings, Trigger, Variant,
    };
    use domain::{DomainError, SegmentId, VariantId};

    use super::*;

    pub(crate) type Checked<T> = Result<T, FieldError>;

    fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A domain rejection as a field error; other failures stay errors.
    pub fn field_error(error: DomainError) -> Result<FieldError, DomainError> {
        match error {
            DomainError::Invalid { field, message } | DomainError::Conflict { field, message } => {
                Ok(bad(field, message))
            }
            other => Err(other),
        }
    }

    pub(crate) fn number<T: std::str::FromStr>(
        text: &str,
        field: String,
        what: &str,
    ) -> Checked<T> {
        text.trim().parse().map_err(|_| bad(field, what))
    }

    pub(crate) fn optional<T: std::str::FromStr>(
        text: &str,
        field: &str,
        what: &str,
    ) -> Checked<Option<T>> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            number(text, field.to_string(), what).map(Some)
        }
    }

    pub(crate) fn seconds_per(unit: &str) -> u64 {
        match unit {
            "weeks" => 604_800,
            "days" => 86_400,
            "hours" => 3_600,
            "minutes" => 60,
            _ => 1,
        }
    }

    /// Seconds as an amount in the largest of `units` that divides them.
    pub(crate) fn split_seconds(seconds: u64, units: &[&str]) -> (String, String) {
        for unit in units {
            let size = seconds_per(unit);
            if seconds.is_multiple_of(size) || *unit == units[units.len() - 1] {
                return ((seconds / size).to_string(), unit.to_string());
            }
        }
        (seconds.to_string(), "seconds".into())
    }

    pub(crate) fn date(text: &str, field: &str) -> Checked<NaiveDate> {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| bad(field, "choose a date"))
    }

    pub(crate) fn time(text: &str, field: &str) -> Checked<NaiveTime> {
        let text = text.trim();
        NaiveTime::parse_from_str(text, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
            .map_err(|_| bad(field, "choose a time of day (HH:MM)"))
    }

    pub(crate) fn instant(text: &str, field: &str) -> Checked<Option<DateTime<Utc>>> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
            .map(|t| Some(t.and_utc()))
            .map_err(|_| bad(field, "choose a date and time"))
    }

    const WEEKDAYS: [(&str, Weekday); 7] = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];

    /// A property value typed as people mean it: numbers and booleans as such, text otherwise.
    fn typed_value(comparison: &str, text: &str) -> serde_json::Value {
        if matches!(comparison, "exists" | "does_not_exist") {
            return serde_json::Value::Null;
        }
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i64>() {
            return serde_json::json!(number);
        }
        if let Ok(number) = trimmed.parse::<f64>()
            && number.is_finite()
        {
            return serde_json::json!(number);
        }
        match trimmed {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            _ => serde_json::Value::String(text.to_string()),
        }
    }

    pub(crate) fn value_text(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn trigger(draft: &TriggerDraft, field: &str) -> Checked<Trigger> {
        match draft.kind.as_str() {
            "custom_event" => Ok(Trigger::CustomEvent {
                name: draft.name.trim().to_string(),
                property_filters: draft
                    .filters
                    .iter()
                    .filter(|f| !f.property.trim().is_empty())
                    .map(|f| PropertyFilter {
                        property: f.property.trim().to_string(),
                        comparison: f.comparison.clone(),
                        value: typed_value(&f.comparison, &f.value),
                    })
                    .collect(),
            }),
            "purchase" => Ok(Trigger::Purchase {
                product_id: Some(draft.name.trim().to_string()).filter(|p| !p.is_empty()),
            }),
            _ => Err(bad(
                format!("{field}.kind"),
                "choose a custom event or a purchase",
            )),
        }
    }

    pub(crate) fn trigger_draft(trigger: &Trigger) -> TriggerDraft {
        match trigger {
            Trigger::CustomEvent {
                name,
                property_filters,
            } => TriggerDraft {
                kind: "custom_event".into(),
                name: name.clone(),
                filters: property_filters
                    .iter()
                    .map(|f| PropertyFilterDraft {
                        property: f.property.clone(),
                        comparison: f.comparison.clone(),
                        value: value_text(&f.value),
                    })
                    .collect(),
            },
            Trigger::Purchase { product_id } => TriggerDraft {
                kind: "purchase".into(),
                name: product_id.clone().unwrap_or_default(),
                filters: Vec::new(),
            },
        }
    }

    fn delivery(draft: &DeliveryDraft) -> Checked<Delivery> {
        match draft.kind.as_str() {
            "api" => Ok(Delivery::Api),
            "scheduled" => {
                let schedule = if draft.schedule == "at_launch" {
                    Schedule::AtLaunch
                } else {
                    let every = || -> Checked<u16> {
                        number(
                            &draft.every,
                            "delivery.schedule.recurrence.every".into(),
                            "a whole number of at least 1",
                        )
                    };
                    let recurrence = match draft.schedule.as_str() {
                        "once" => Recurrence::Once,
                        "daily" => Recurrence::Daily { every: every()? },
                        "weekly" => Recurrence::Weekly {
                            every: every()?,
                            days: WEEKDAYS
                                .iter()
                                .filter(|(name, _)| draft.days.iter().any(|d| d == name))
                                .map(|(_, day)| *day)
                                .collect(),
                        },
                        "monthly" => Recurrence::Monthly {
                            every: every()?,
                            day: number(
                                &draft.month_day,
                                "delivery.schedule.recurrence.day".into(),
                                "a day of the month from 1 to 31",
                            )?,
                        },
                        _ => {
                            return Err(bad("delivery.schedule", "choose when the campaign sends"));
                        }
                    };
                    let ends_on = if draft.ends_on.trim().is_empty() {
                        None
                    } else {
                        Some(date(&draft.ends_on, "delivery.schedule.ends_on")?)
                    };
                    Schedule::At {
                        starts_on: date(&draft.starts_on, "delivery.schedule.starts_on")?,
                        time: time(&draft.time, "delivery.schedule.time")?,
                        recurrence,
                        ends_on,
                        time_zone: draft.time_zone.trim().to_string(),
                        in_local_time: draft.in_local_time,
                    }
                };
                Ok(Delivery::Scheduled { schedule })
            }
            "action" => {
                let delay: u64 = number(
                    &draft.delay,
                    "delivery.delay_seconds".into(),
                    "a whole number (0 for no delay)",
                )?;
                Ok(Delivery::Action {
                    trigger: trigger(&draft.trigger, "delivery.trigger")?,
                    delay_seconds: delay.saturating_mul(seconds_per(&draft.delay_unit)),
                    exceptions: draft
                        .exceptions
                        .iter()
                        .enumerate()
                        .map(|(i, e)| trigger(e, &format!("delivery.exceptions[{i}]")))
                        .collect::<Checked<_>>()?,
                    starts_at: instant(&draft.starts_at, "delivery.starts_at")?,
                    ends_at: instant(&draft.ends_at, "delivery.ends_at")?,
                })
            }
            _ => Err(bad("delivery", "choose how the campaign is delivered")),
        }
    }

    fn delivery_draft(delivery: &Delivery) -> DeliveryDraft {
        let mut draft = DeliveryDraft {
            kind: delivery.type_name().into(),
            ..DeliveryDraft::default()
        };
        match delivery {
            Delivery::Api => {}
            Delivery::Scheduled { schedule } => match schedule {
                Schedule::AtLaunch => draft.schedule = "at_launch".into(),
                Schedule::At {
                    starts_on,
                    time,
                    recurrence,
                    ends_on,
                    time_zone,
                    in_local_time,
                } => {
                    draft.starts_on = starts_on.format("%Y-%m-%d").to_string();
                    draft.time = time.format("%H:%M").to_string();
                    draft.ends_on = ends_on
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_default();
                    draft.time_zone = time_zone.clone();
                    draft.in_local_time = *in_local_time;
                    match recurrence {
                        Recurrence::Once => draft.schedule = "once".into(),
                        Recurrence::Daily { every } => {
                            draft.schedule = "daily".into();
                            draft.every = every.to_string();
                        }
                        Recurrence::Weekly { every, days } => {
                            draft.schedule = "weekly".into();
                            draft.every = every.to_string();
                            draft.days = WEEKDAYS
                                .iter()
                                .filter(|(_, d)| days.contains(d))
                                .map(|(name, _)| name.to_string())
                                .collect();
                        }
                        Recurrence::Monthly { every, day } => {
                            draft.schedule = "monthly".into();
                            draft.every = every.to_string();
                            draft.month_day = day.to_string();
                        }
                    }
                }
            },
            Delivery::Action {
                trigger,
                delay_seconds,
                exceptions,
                starts_at,
                ends_at,
            } => {
                draft.trigger = trigger_draft(trigger);
                (draft.delay, draft.delay_unit) = split_seconds(
                    *delay_seconds,
                    &["weeks", "days", "hours", "minutes", "seconds"],
                );
                draft.exceptions = exceptions.iter().map(trigger_draft).collect();
                let local = |t: &Option<DateTime<Utc>>| {
                    t.map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
                        .unwrap_or_default()
                };
                draft.starts_at = local(starts_at);
                draft.ends_at = local(ends_at);
            }
        }
        draft
    }

    fn settings(draft: &SettingsDraft) -> Checked<Settings> {
        let reeligible_after_seconds = if draft.reeligible {
            let amount: u64 = number(
                &draft.reeligible_after,
                "settings.reeligible_after_seconds".into(),
                "a whole number (0: every time)",
            )?;
            Some(amount.saturating_mul(seconds_per(&draft.reeligible_unit)))
        } else {
            None
        };
        let quiet_hours = if draft.quiet_hours {
            Some(QuietHours {
                start: time(&draft.quiet_start, "settings.quiet_hours.start")?,
                end: time(&draft.quiet_end, "settings.quiet_hours.end")?,
                send_later: draft.quiet_send_later,
            })
        } else {
            None
        };
        Ok(Settings {
            rate_per_minute: optional(
                &draft.rate_per_minute,
                "settings.rate_per_minute",
                "a whole number of messages per minute, or empty for no limit",
            )?,
            reeligible_after_seconds,
            frequency_capped: draft.frequency_capped,
            quiet_hours,
            max_recipients: optional(
                &draft.max_recipients,
                "settings.max_recipients",
                "a whole number, or empty for no cap",
            )?,
        })
    }

    fn settings_draft(settings: &Settings) -> SettingsDraft {
        let mut draft = SettingsDraft {
            rate_per_minute: settings
                .rate_per_minute
                .map(|r| r.to_string())
                .unwrap_or_default(),
            max_recipients: settings
                .max_recipients
                .map(|r| r.to_string())
                .unwrap_or_default(),
            frequency_capped: settings.frequency_capped,
            ..SettingsDraft::default()
        };
        if let Some(seconds) = settings.reeligible_after_seconds {
            draft.reeligible = true;
            (draft.reeligible_after, draft.reeligible_unit) =
                split_seconds(seconds, &["days", "hours", "minutes"]);
        }
        if let Some(quiet) = &settings.quiet_hours {
            draft.quiet_hours = true;
            draft.quiet_start = quiet.start.format("%H:%M").to_string();
            draft.quiet_end = quiet.end.format("%H:%M").to_string();
            draft.quiet_send_later = quiet.send_later;
        }
        draft
    }

    /// The builder's draft as the store takes it; the first value that cannot be read is named.
    /// The conversion events as typed (up to the store to check how many and how long).
    pub(crate) fn conversion_inputs(drafts: &[ConversionDraft]) -> Checked<Vec<Conversion>> {
        drafts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let amount: u64 = number(
                    &c.window,
                    format!("conversions[{i}].window_seconds"),
                    "a whole number",
                )?;
                Ok(Conversion {
                    trigger: trigger(&c.trigger, &format!("conversions[{i}].trigger"))?,
                    window_seconds: amount.saturating_mul(seconds_per(&c.window_unit)),
                })
            })
            .collect()
    }

    /// Stored conversion events as the form shows them, windows in the largest of `units`.
    pub(crate) fn conversion_drafts(
        conversions: &[Conversion],
        units: &[&str],
    ) -> Vec<ConversionDraft> {
        conversions
            .iter()
            .map(|c| {
                let (window, window_unit) = split_seconds(c.window_seconds, units);
                ConversionDraft {
                    trigger: trigger_draft(&c.trigger),
                    window,
                    window_unit,
                }
            })
            .collect()
    }

    pub fn to_input(draft: &CampaignDraft) -> Checked<CampaignInput> {
        let kind = CampaignKind::parse(&draft.kind)
            .ok_or_else(|| bad("kind", "choose a webhook campaign or an API campaign"))?;
        let variants = draft
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = match v.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
                    Some(id) => Some(VariantId::parse(id).map_err(|_| {
                        bad(format!("variants[{i}]"), "this variant's id is not valid")
                    })?),
                    None => None,
                };
                let message = match (kind, &v.message) {
                    (CampaignKind::Webhook, Some(message)) => Some(
                        crate::webhooks::to_message(message).map_err(|e| match field_error(e) {
                            Ok(f) => bad(format!("variants[{i}].message.{}", f.field), f.message),
                            Err(e) => bad(format!("variants[{i}].message"), e.to_string()),
                        })?,
                    ),
                    _ => None,
                };
                Ok(Variant {
                    id,
                    name: v.name.trim().to_string(),
                    percent: number(
                        &v.percent,
                        format!("variants[{i}].percent"),
                        "a whole number from 0 to 100",
                    )?,
                    message,
                })
            })
            .collect::<Checked<Vec<_>>>()?;
        let segment_ids = draft
            .segment_ids
            .iter()
            .map(|id| {
                SegmentId::parse(id)
                    .map_err(|_| bad("audience.segment_ids", "one of the segments does not exist"))
            })
            .collect::<Checked<Vec<_>>>()?;
        let filter = match &draft.audience_filter {
            Some(value) => Some(
                serde_json::from_value(value.clone())
                    .map_err(|e| bad("audience.filter", e.to_string()))?,
            ),
            None => None,
        };
        let conversions = conversion_inputs(&draft.conversions)?;
        Ok(CampaignInput {
            name: draft.name.trim().to_string(),
            description: draft.description.trim().to_string(),
            tags: draft
                .tags
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            kind,
            variants,
            control_percent: number(
                &draft.control_percent,
                "control_percent".into(),
                "a whole number from 0 to 100",
            )?,
            delivery: match kind {
                CampaignKind::Api => Delivery::Api,
                CampaignKind::Webhook => delivery(&draft.delivery)?,
            },
            audience: AudienceSpec {
                segment_ids,
                filter,
            },
            conversions,
            settings: settings(&draft.settings)?,
        })
    }

    /// A stored campaign as the builder edits it.
    pub fn to_draft(campaign: &Campaign) -> CampaignDraft {
        CampaignDraft {
            name: campaign.name.clone(),
            description: campaign.description.clone(),
            tags: campaign.tags.join(", "),
            kind: campaign.kind.as_str().into(),
            variants: campaign
                .variants
                .iter()
                .map(|v| VariantDraft {
                    id: v.id.as_ref().map(|id| id.to_string()),
                    name: v.name.clone(),
                    percent: v.percent.to_string(),
                    message: match campaign.kind {
                        CampaignKind::Webhook => Some(
                            v.message
                                .as_ref()
                                .map(crate::webhooks::to_draft)
                                .unwrap_or_default(),
                        ),
                        CampaignKind::Api => None,
                    },
                })
                .collect(),
            control_percent: campaign.control_percent.to_string(),
            delivery: delivery_draft(&campaign.delivery),
            segment_ids: campaign
                .audience
                .segment_ids
                .iter()
                .map(|s| s.to_string())
                .collect(),
            audience_filter: campaign
                .audience
                .filter
                .as_ref()
                .and_then(|f| serde_json::to_value(f).ok()),
            conversions: conversion_drafts(&campaign.conversions, &["days", "hours"]),
            settings: settings_draft(&campaign.settings),
        }
    }

    pub fn saved(campaign: &Campaign) -> SavedCampaign {
        SavedCampaign {
            id: campaign.id.to_string(),
            version: campaign.version,
            status: campaign.status.as_str().into(),
            variant_ids: campaign
                .variants
                .iter()
                .map(|v| v.id.as_ref().map(|id| id.to_string()).unwrap_or_default())
                .collect(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn full_draft() -> CampaignDraft {
            let mut draft = CampaignDraft::new("webhook");
            draft.name = "Welcome".into();
            draft.tags = "onboarding, emea".into();
            draft.delivery = DeliveryDraft {
                kind: "scheduled".into(),
                schedule: "weekly".into(),
                starts_on: "2026-12-01".into(),
                time: "09:30".into(),
                every: "2".into(),
                days: vec!["mon".into(), "fri".into()],
                ends_on: "2027-01-31".into(),
                time_zone: "Europe/Paris".into(),
                in_local_time: true,
                ..DeliveryDraft::default()
            };
            draft.settings = SettingsDraft {
                rate_per_minute: "600".into(),
                reeligible: true,
                reeligible_after: "3".into(),
                reeligible_unit: "hours".into(),
                quiet_hours: true,
                ..SettingsDraft::default()
            };
            draft.conversions = vec![ConversionDraft {
                trigger: TriggerDraft {
                    kind: "custom_event".into(),
                    name: "checkout".into(),
                    filters: Vec::new(),
                },
                window: "3".into(),
                window_unit: "days".into(),
            }];
            draft
        }

        #[test]
        fn a_draft_survives_the_trip_to_the_store_and_back() {
            let draft = full_draft();
            let input = to_input(&draft).expect("valid draft");
            assert_eq!(input.settings.reeligible_after_seconds, Some(3 * 3600));
            assert_eq!(input.conversions[0].window_seconds, 3 * 86_400);
            let json = serde_json::to_value(&input).expect("serializes");
            assert_eq!(
                json["delivery"]["schedule"]["recurrence"]["days"],
                serde_json::json!(["Mon", "Fri"])
            );
            let campaign = Campaign {
                id: domain::CampaignId::generate(),
                name: input.name,
                description: input.description,
                tags: input.tags,
                kind: input.kind,
                status: domain::campaign::CampaignStatus::Draft,
                variants: input.variants,
                control_percent: input.control_percent,
                delivery: input.delivery,
                audience: input.audience,
                conversions: input.conversions,
                settings: input.settings,
                version: 1,
                created_at: Utc::now(),
                updated_at: Utc::now(),
                launched_at: None,
                stopped_at: None,
                archived_at: None,
                next_send_at: None,
            };
            let back = to_draft(&campaign);
            assert_eq!(back.delivery, draft.delivery);
            assert_eq!(back.settings, draft.settings);
            assert_eq!(back.conversions, draft.conversions);
            assert_eq!(back.tags, "onboarding, emea");
        }

        #[test]
        fn an_unreadable_number_names_its_field() {
            let mut draft = full_draft();
            draft.variants[0].percent = "lots".into();
            assert_eq!(to_input(&draft).unwrap_err().field, "variants[0].percent");
            let mut draft = full_draft();
            draft.delivery.time = "9h".into();
            assert_eq!(
                to_input(&draft).unwrap_err().field,
                "delivery.schedule.time"
            );
            let mut draft = full_draft();
            draft.variants[0].message.as_mut().unwrap().body_mode = "xml".into();
            assert_eq!(
                to_input(&draft).unwrap_err().field,
                "variants[0].message.body"
            );
        }

        #[test]
        fn an_api_campaign_has_no_messages_and_api_delivery() {
            let mut draft = CampaignDraft::new("api");
            draft.delivery.kind = "scheduled".into();
            let input = to_input(&draft).expect("valid draft");
            assert_eq!(input.delivery, Delivery::Api);
            assert!(input.variants[0].message.is_none());
        }

        #[test]
        fn property_values_are_typed_as_meant() {
            assert_eq!(typed_value("equals", "42"), serde_json::json!(42));
            assert_eq!(typed_value("greater_than", "9.5"), serde_json::json!(9.5));
            assert_eq!(typed_value("equals", "true"), serde_json::json!(true));
            assert_eq!(typed_value("equals", "gold"), serde_json::json!("gold"));
            assert_eq!(typed_value("exists", "x"), serde_json::Value::Null);
        }
    }
}

#[cfg(feature = "ssr")]
fn nonempty(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

#[cfg(feature = "ssr")]
fn row(campaign: &domain::campaign::Campaign) -> CampaignRow {
    CampaignRow {
        id: campaign.id.to_string(),
        name: campaign.name.clone(),
        kind: campaign.kind.as_str().into(),
        delivery: campaign.delivery.type_name().into(),
        status: campaign.status.as_str().into(),
        tags: campaign.tags.clone(),
        updated: when(campaign.updated_at),
        next_send: campaign.next_send_at.map(when),
    }
}

/// The campaigns matching the list's filters (GET query values; empty means any).
#[server(prefix = "/srv", endpoint = "campaigns")]
pub async fn list_campaigns(
    ws: String,
    #[server(default)] status: String,
    #[server(default)] tag: String,
    #[server(default)] delivery: String,
) -> Result<CampaignsView, ServerFnError> {
    use domain::campaign::{CampaignFilter, CampaignStatus};
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let status = nonempty(&status);
    let filter = CampaignFilter {
        status: status.as_deref().and_then(CampaignStatus::parse),
        tag: nonempty(&tag),
        delivery_type: nonempty(&delivery),
        include_archived: status.as_deref() == Some("archived"),
    };
    let matching = domain::campaign::list_campaigns(&ctx.db, &workspace, &filter)
        .await
        .map_err(fail)?;
    let all = domain::campaign::list_campaigns(
        &ctx.db,
        &workspace,
        &CampaignFilter {
            include_archived: true,
            ..CampaignFilter::default()
        },
    )
    .await
    .map_err(fail)?;
    let mut tags: Vec<String> = all.iter().flat_map(|c| c.tags.iter().cloned()).collect();
    tags.sort();
    tags.dedup();
    Ok(CampaignsView {
        rows: matching.iter().map(row).collect(),
        tags,
        any: !all.is_empty(),
        can_build: access.role.allows(Capability::Build),
    })
}

/// The workspace's totals and latest failures over the last seven days.
#[server(prefix = "/srv", endpoint = "campaign_overview")]
pub async fn get_overview(ws: String) -> Result<OverviewView, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let now = ctx.clock.now();
    let overview = domain::campaign::workspace_overview(
        &ctx.db,
        &access.workspace_id(),
        now - chrono::Duration::days(7),
        now,
    )
    .await
    .map_err(fail)?;
    Ok(OverviewView {
        active_campaigns: overview.active_campaigns,
        sends: overview.sends,
        delivered: overview.delivered,
        failed: overview.failed,
        pending: overview.pending,
        latest_errors: overview
            .latest_errors
            .into_iter()
            .take(5)
            .map(|e| ErrorRow {
                send_id: e.send_id,
                at: when(e.at),
                recipient: e.recipient,
                source: e.source_name,
                status_code: e.status_code,
                error: e.error,
            })
            .collect(),
    })
}

/// The builder's data: the campaign (or a new one of `kind` when `id` is `new`), the segments to
/// pick from and the event names seen in the workspace.
#[server(prefix = "/srv", endpoint = "campaign")]
pub async fn get_campaign(
    ws: String,
    id: String,
    #[server(default)] kind: String,
) -> Result<CampaignDetails, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let segments = domain::segment::list(&ctx.db, &workspace, true)
        .await
        .map_err(fail)?;
    let catalog = domain::profile::event_catalog(&ctx.db, &workspace)
        .await
        .map_err(fail)?;
    let names = |wanted: domain::profile::EventKind| -> Vec<String> {
        catalog
            .iter()
            .filter(|e| e.kind == wanted)
            .map(|e| e.name.clone())
            .collect()
    };
    let mut details = CampaignDetails {
        id: None,
        version: None,
        status: "draft".into(),
        draft: CampaignDraft::new(&kind),
        can_build: access.role.allows(Capability::Build),
        launched: None,
        next_send: None,
        updated: None,
        segments: Vec::new(),
        events: names(domain::profile::EventKind::Event),
        products: names(domain::profile::EventKind::Purchase),
        base_url: ctx.public_url.clone(),
    };
    if id != "new" {
        let id = CampaignId::parse(&id).map_err(fail)?;
        let campaign = domain::campaign::find_campaign(&ctx.db, &workspace, &id)
            .await
            .map_err(fail)?;
        details.id = Some(campaign.id.to_string());
        details.version = Some(campaign.version);
        details.status = campaign.status.as_str().into();
        details.draft = convert::to_draft(&campaign);
        details.launched = campaign.launched_at.map(when);
        details.next_send = campaign.next_send_at.map(when);
        details.updated = Some(when(campaign.updated_at));
    }
    // Archived segments only show when the campaign still uses them.
    details.segments = segments
        .into_iter()
        .filter(|s| {
            s.archived_at.is_none() || details.draft.segment_ids.contains(&s.id.to_string())
        })
        .map(|s| SegmentOption {
            id: s.id.to_string(),
            name: s.name,
            archived: s.archived_at.is_some(),
        })
        .collect();
    Ok(details)
}

/// Saves the builder's draft (creating the campaign when `id` is `None`), then launches it when
/// `launch` is set. Rejected values come back as a [`FieldError`] naming the field.
#[server(prefix = "/srv", endpoint = "save_campaign", input = Json)]
pub async fn save_campaign(
    ws: String,
    id: Option<String>,
    version: Option<i32>,
    draft: CampaignDraft,
    launch: bool,
) -> Result<SaveOutcome, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let rejected = |error: domain::DomainError| convert::field_error(error).map_err(fail);
    let input = match convert::to_input(&draft) {
        Ok(input) => input,
        Err(error) => {
            return Ok(SaveOutcome {
                saved: None,
                error: Some(error),
            });
        }
    };
    let stored = match &id {
        Some(id) => {
            let id = CampaignId::parse(id).map_err(fail)?;
            domain::campaign::update_campaign(&ctx.db, &workspace, &id, input, version, now).await
        }
        None => domain::campaign::create_campaign(&ctx.db, &workspace, input, now).await,
    };
    let campaign = match stored {
        Ok(campaign) => campaign,
        Err(error) => {
            return Ok(SaveOutcome {
                saved: None,
                error: Some(rejected(error)?),
            });
        }
    };
    if !launch {
        return Ok(SaveOutcome {
            saved: Some(convert::saved(&campaign)),
            error: None,
        });
    }
    match domain::campaign::launch_campaign(&ctx.db, &workspace, &campaign.id, now).await {
        Ok(launched) => {
            ctx.engine.notify_one();
            Ok(SaveOutcome {
                saved: Some(convert::saved(&launched)),
                error: None,
            })
        }
        Err(error) => Ok(SaveOutcome {
            saved: Some(convert::saved(&campaign)),
            error: Some(rejected(error)?),
        }),
    }
}

/// Duplicate, archive, unarchive, stop or resume a campaign (the list's row actions).
#[server(prefix = "/srv", endpoint = "campaign_action")]
pub async fn campaign_action(ws: String, id: String, action: String) -> Result<(), ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Build).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let now = ctx.clock.now();
    let id = CampaignId::parse(&id).map_err(fail)?;
    let db = &ctx.db;
    match action.as_str() {
        "duplicate" => domain::campaign::duplicate_campaign(db, &workspace, &id, now).await,
        "archive" => domain::campaign::archive_campaign(db, &workspace, &id, now).await,
        "unarchive" => domain::campaign::unarchive_campaign(db, &workspace, &id, now).await,
        "stop" => domain::campaign::stop_campaign(db, &workspace, &id, now).await,
        "resume" => {
            let resumed = domain::campaign::resume_campaign(db, &workspace, &id, now).await;
            ctx.engine.notify_one();
            resumed
        }
        _ => Err(domain::DomainError::invalid(
            "action",
            "choose duplicate, archive, unarchive, stop or resume",
        )),
    }
    .map_err(fail)?;
    Ok(())
}

/// How many users the picked segments (and the kept filter) reach now.
#[server(prefix = "/srv", endpoint = "campaign_reach", input = Json)]
pub async fn estimate_campaign_reach(
    ws: String,
    segment_ids: Vec<String>,
    filter: Option<serde_json::Value>,
) -> Result<u64, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let audience = domain::campaign::AudienceSpec {
        segment_ids: segment_ids
            .iter()
            .map(|id| domain::SegmentId::parse(id))
            .collect::<Result<_, _>>()
            .map_err(fail)?,
        filter: filter
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                fail(domain::DomainError::invalid(
                    "audience.filter",
                    e.to_string(),
                ))
            })?,
    };
    domain::campaign::estimate_reach(
        &ctx.reads,
        &access.workspace_id(),
        &audience,
        ctx.clock.now(),
    )
    .await
    .map_err(fail)
}

#[server(prefix = "/srv", endpoint = "campaign_summary")]
pub async fn get_campaign_summary(
    ws: String,
    id: String,
) -> Result<CampaignSummary, ServerFnError> {
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let id = CampaignId::parse(&id).map_err(fail)?;
    let campaign = domain::campaign::find_campaign(&ctx.db, &access.workspace_id(), &id)
        .await
        .map_err(fail)?;
    Ok(CampaignSummary {
        id: campaign.id.to_string(),
        name: campaign.name,
        kind: campaign.kind.as_str().into(),
        delivery: campaign.delivery.type_name().into(),
        status: campaign.status.as_str().into(),
        launched: campaign.launched_at.map(when),
        next_send: campaign.next_send_at.map(when),
        can_build: access.role.allows(Capability::Build),
    })
}

/// Live progress of every send of the campaign.
#[server(prefix = "/srv", endpoint = "campaign_progress")]
pub async fn get_campaign_progress(ws: String, id: String) -> Result<ProgressView, ServerFnError> {
    use domain::campaign::CampaignStatus;
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let workspace = access.workspace_id();
    let id = CampaignId::parse(&id).map_err(fail)?;
    let campaign = domain::campaign::find_campaign(&ctx.db, &workspace, &id)
        .await
        .map_err(fail)?;
    let progress = domain::campaign::progress(&ctx.db, &workspace, &id, None)
        .await
        .map_err(fail)?;
    let running = matches!(
        campaign.status,
        CampaignStatus::Scheduled | CampaignStatus::Active
    );
    // An occurrence due now (or in the next minute) is about to write its sends: keep watching.
    let due_soon = running
        && campaign
            .next_send_at
            .is_some_and(|at| at <= ctx.clock.now() + chrono::Duration::minutes(1));
    // The domain does not know how many recipients a running occurrence has left, only that it
    // runs; between two of its batches nothing may be queued, yet more is coming.
    let dispatching = {
        use domain::entity::campaign_occurrence as occurrence;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        running
            && occurrence::Entity::find()
                .filter(occurrence::Column::WorkspaceId.eq(workspace.as_str()))
                .filter(occurrence::Column::CampaignId.eq(id.as_str()))
                .filter(occurrence::Column::Status.eq("running"))
                .count(&ctx.db)
                .await
                .map_err(|e| fail(e.into()))?
                > 0
    };
    let busy = progress.queued + progress.retrying > 0
        || progress.remaining_to_queue.is_some_and(|n| n > 0)
        || dispatching
        || due_soon;
    Ok(ProgressView {
        queued: progress.queued,
        retrying: progress.retrying,
        delivered: progress.delivered,
        failed: progress.failed,
        aborted: progress.aborted,
        remaining_to_queue: progress.remaining_to_queue,
        dispatching,
        busy,
        status: campaign.status.as_str().into(),
    })
}

/// Per-variant figures and a chart over `period` (`24h` by hour, `7d` or `30d` by day).
#[server(prefix = "/srv", endpoint = "campaign_report")]
pub async fn get_campaign_report(
    ws: String,
    id: String,
    #[server(default)] period: String,
) -> Result<ReportView, ServerFnError> {
    use chrono::{DurationRound, TimeDelta};
    use domain::campaign::Bucket;
    let (_, access) = authorize(&ws, Capability::Read).await?;
    let ctx = ctx()?;
    let id = CampaignId::parse(&id).map_err(fail)?;
    let now = ctx.clock.now();
    let (bucket, step, count, title) = match period.as_str() {
        "7d" => (
            Bucket::Day,
            TimeDelta::days(1),
            7,
            "per day (last 7 days, UTC)",
        ),
        "30d" => (
            Bucket::Day,
            TimeDelta::days(1),
            30,
            "per day (last 30 days, UTC)",
        ),
        _ => (
            Bucket::Hour,
            TimeDelta::hours(1),
            24,
            "per hour (last 24 hours, UTC)",
        ),
    };
    let since = now.duration_trunc(step).unwrap_or(now) - step * (count - 1);
    let stats = domain::campaign::campaign_stats(
        &ctx.db,
        &access.workspace_id(),
        &id,
        since,
        now + TimeDelta::seconds(1),
        bucket,
        None,
    )
    .await
    .map_err(fail)?;
    let stats_row = |v: &domain::campaign::VariantStats| VariantStatsRow {
        variant_id: v.variant_id.as_ref().map(|id| id.to_string()),
        name: v.name.clone(),
        sends: v.sends,
        delivered: v.delivered,
        errors_client: v.errors_client,
        errors_server: v.errors_server,
        errors_network: v.errors_network,
        aborted: v.aborted,
        retries: v.retries,
        unique_recipients: v.unique_recipients,
        conversions: v.conversions,
    };
    // Every bucket of the period gets a bar, empty or not; variants are added up.
    let series = (0..count)
        .map(|i| {
            let start = since + step * i;
            let points = stats
                .series
                .iter()
                .filter(|p| p.time.duration_trunc(step).unwrap_or(p.time) == start);
            let (sends, delivered, errors) = points.fold((0, 0, 0), |(s, d, e), p| {
                (s + p.sends, d + p.delivered, e + p.errors)
            });
            SeriesBar {
                label: match bucket {
                    Bucket::Hour => start.format("%H:00").to_string(),
                    Bucket::Day => start.format("%m-%d").to_string(),
                },
                sends,
                delivered,
                errors,
            }
        })
        .collect();
    Ok(ReportView {
        total: stats_row(&stats.total),
        variants: stats.variants.iter().map(stats_row).collect(),
        control_recipients: stats.control_recipients,
        control_conversions: stats.control_conversions,
        series,
        series_title: format!("Sends {title}"),
    })
}
