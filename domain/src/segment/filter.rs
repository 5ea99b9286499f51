//! The segment filter language (nested AND/OR groups of conditions) and its validation.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::DomainError;

/// Deepest nesting of groups: the root group is level 1.
pub const MAX_DEPTH: usize = 5;
/// Most conditions (leaves) one filter may hold.
pub const MAX_CONDITIONS: usize = 50;
/// Largest random bucket (buckets are `0..=MAX_BUCKET`, as in Braze).
pub const MAX_BUCKET: u32 = 9999;
/// Longest attribute name, event name, product id, string value or pattern.
pub const MAX_TEXT_LENGTH: usize = 255;

/// Standard attributes a filter may name, each with its `profile` column.
pub const STANDARD_ATTRIBUTES: &[(&str, &str)] = &[
    ("external_id", "external_id"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("email", "email"),
    ("phone", "phone"),
    ("gender", "gender"),
    ("date_of_birth", "date_of_birth"),
    ("dob", "date_of_birth"),
    ("country", "country"),
    ("home_city", "home_city"),
    ("language", "language"),
    ("time_zone", "time_zone"),
];

/// Who is in a segment: a tree of AND/OR groups over conditions on a profile.
///
/// Serialized with a `kind` tag: `{"kind": "and", "filters": [...]}`,
/// `{"kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Filter {
    /// Every filter matches (an empty group at the root matches every profile).
    And { filters: Vec<Filter> },
    /// At least one filter matches (an empty group at the root matches every profile).
    Or { filters: Vec<Filter> },
    /// A standard attribute (first_name, last_name, email, phone, gender, date_of_birth, country,
    /// home_city, language, time_zone, external_id) or a custom attribute (`custom: true`; `name`
    /// may be a dotted path into nested objects).
    Attribute {
        name: String,
        #[serde(default)]
        custom: bool,
        comparison: Comparison,
        #[serde(default)]
        value: Json,
    },
    /// Performed custom event `name` at least / at most / exactly `count` times within the last
    /// `days` days (`None` = ever).
    Event {
        name: String,
        comparison: CountComparison,
        count: u32,
        days: Option<u32>,
    },
    /// Purchased `product_id` (`None` = any product) at least / at most / exactly `count` times
    /// within the last `days` days; a purchase of quantity n counts n times.
    Purchase {
        product_id: Option<String>,
        comparison: CountComparison,
        count: u32,
        days: Option<u32>,
    },
    /// A random bucket `0..=9999` derived from the profile id (stable): `min..=max`.
    RandomBucket { min: u32, max: u32 },
    /// The profile's time zone is one of these IANA names.
    TimeZone { zones: Vec<String> },
}

/// How an attribute is compared with the filter's value (Braze's set, snake_case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Same string, number or boolean (strings case-sensitive).
    Equals,
    /// Not the same value; profiles without the attribute match too.
    #[serde(alias = "does_not_equal")]
    NotEqual,
    /// A string matching the pattern, case-insensitively.
    MatchesRegex,
    /// Not a string matching the pattern; profiles without the attribute match too.
    DoesNotMatchRegex,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
    GreaterThanOrEqualTo,
    LessThanOrEqualTo,
    IsTrue,
    IsFalse,
    /// An array holding the value.
    IncludesValue,
    /// Not an array holding the value; profiles without the attribute match too.
    DoesNotIncludeValue,
    /// A time (or date) strictly after the value (ISO 8601).
    After,
    /// A time (or date) strictly before the value (ISO 8601).
    Before,
    /// A time earlier than `value` days before now.
    #[serde(alias = "greater_than_x_days_ago")]
    MoreThanXDaysAgo,
    /// A time within the last `value` days (and not in the future).
    LessThanXDaysAgo,
    /// A time later than `value` days from now.
    #[serde(alias = "greater_than_x_days_in_the_future")]
    MoreThanXDaysInTheFuture,
    /// A time between now and `value` days from now.
    LessThanXDaysInTheFuture,
    /// A string containing the value, case-insensitively.
    Contains,
    /// Not a string containing the value; profiles without the attribute match too.
    DoesNotContain,
}

impl Comparison {
    /// The serialized name, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Equals => "equals",
            Comparison::NotEqual => "not_equal",
            Comparison::MatchesRegex => "matches_regex",
            Comparison::DoesNotMatchRegex => "does_not_match_regex",
            Comparison::Exists => "exists",
            Comparison::DoesNotExist => "does_not_exist",
            Comparison::GreaterThan => "greater_than",
            Comparison::LessThan => "less_than",
            Comparison::GreaterThanOrEqualTo => "greater_than_or_equal_to",
            Comparison::LessThanOrEqualTo => "less_than_or_equal_to",
            Comparison::IsTrue => "is_true",
            Comparison::IsFalse => "is_false",
            Comparison::IncludesValue => "includes_value",
            Comparison::DoesNotIncludeValue => "does_not_include_value",
            Comparison::After => "after",
            Comparison::Before => "before",
            Comparison::MoreThanXDaysAgo => "more_than_x_days_ago",
            Comparison::LessThanXDaysAgo => "less_than_x_days_ago",
            Comparison::MoreThanXDaysInTheFuture => "more_than_x_days_in_the_future",
            Comparison::LessThanXDaysInTheFuture => "less_than_x_days_in_the_future",
            Comparison::Contains => "contains",
            Comparison::DoesNotContain => "does_not_contain",
        }
    }

    /// Whether the comparison is the negation of another, so that profiles without the attribute
    /// (or with one of another type) match it, as Braze's "does not equal" does.
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            Comparison::NotEqual
                | Comparison::DoesNotMatchRegex
                | Comparison::DoesNotIncludeValue
                | Comparison::DoesNotContain
        )
    }
}

/// How a count of events or purchases is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountComparison {
    AtLeast,
    AtMost,
    Exactly,
}

impl CountComparison {
    pub(crate) fn operator(self) -> &'static str {
        match self {
            CountComparison::AtLeast => ">=",
            CountComparison::AtMost => "<=",
            CountComparison::Exactly => "=",
        }
    }
}

/// The value of an attribute condition, checked against its comparison.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    None,
    Text(String),
    Integer(i64),
    Real(f64),
    Bool(bool),
    Time(DateTime<Utc>),
    Days(f64),
}

/// What a condition on an attribute reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    /// A `profile` column.
    Column(&'static str),
    /// A path into `profile.custom_attributes`.
    Custom(Vec<String>),
}

impl Filter {
    /// Checks the whole tree; an error names the offending field by its path, as in
    /// `filter: filters[1].value: must be a number for greater_than`.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut conditions = 0;
        self.check("", 1, &mut conditions, true)
            .map_err(|(path, message)| {
                let path = if path.is_empty() { "filter" } else { &path };
                DomainError::invalid("filter", format!("{path}: {message}"))
            })
    }

    /// Whether a `matches_regex` or `does_not_match_regex` condition is anywhere in the tree.
    pub fn uses_regex(&self) -> bool {
        match self {
            Filter::And { filters } | Filter::Or { filters } => {
                filters.iter().any(Filter::uses_regex)
            }
            Filter::Attribute { comparison, .. } => matches!(
                comparison,
                Comparison::MatchesRegex | Comparison::DoesNotMatchRegex
            ),
            _ => false,
        }
    }

    fn check(
        &self,
        path: &str,
        depth: usize,
        conditions: &mut usize,
        root: bool,
    ) -> Result<(), (String, String)> {
        let at = |field: &str| join(path, field);
        match self {
            Filter::And { filters } | Filter::Or { filters } => {
                if depth > MAX_DEPTH {
                    return Err((
                        at("filters"),
                        format!("groups nest at most {MAX_DEPTH} deep"),
                    ));
                }
                if filters.is_empty() && !root {
                    return Err((at("filters"), "a group needs at least one filter".into()));
                }
                for (index, filter) in filters.iter().enumerate() {
                    filter.check(
                        &join(path, &format!("filters[{index}]")),
                        depth + 1,
                        conditions,
                        false,
                    )?;
                }
                Ok(())
            }
            leaf => {
                *conditions += 1;
                if *conditions > MAX_CONDITIONS {
                    return Err((
                        if path.is_empty() {
                            "filter".into()
                        } else {
                            path.into()
                        },
                        format!("a segment has at most {MAX_CONDITIONS} conditions"),
                    ));
                }
                leaf.check_leaf(path)
            }
        }
    }

    fn check_leaf(&self, path: &str) -> Result<(), (String, String)> {
        let at = |field: &str| join(path, field);
        match self {
            Filter::Attribute {
                name,
                custom,
                comparison,
                value,
            } => {
                target(name, *custom).map_err(|m| (at("name"), m))?;
                operand(name, *custom, *comparison, value).map_err(|(f, m)| (at(f), m))?;
                Ok(())
            }
            Filter::Event { name, days, .. } => {
                text_field(name).map_err(|m| (at("name"), m))?;
                check_days(*days).map_err(|m| (at("days"), m))
            }
            Filter::Purchase {
                product_id, days, ..
            } => {
                if let Some(product_id) = product_id {
                    text_field(product_id).map_err(|m| (at("product_id"), m))?;
                }
                check_days(*days).map_err(|m| (at("days"), m))
            }
            Filter::RandomBucket { min, max } => {
                if *max > MAX_BUCKET {
                    Err((at("max"), format!("must be at most {MAX_BUCKET}")))
                } else if min > max {
                    Err((at("min"), "must not be greater than max".into()))
                } else {
                    Ok(())
                }
            }
            Filter::TimeZone { zones } => {
                if zones.is_empty() {
                    return Err((at("zones"), "name at least one time zone".into()));
                }
                for (index, zone) in zones.iter().enumerate() {
                    let plausible = !zone.trim().is_empty()
                        && zone.len() <= 64
                        && zone
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
                    if !plausible {
                        return Err((
                            at(&format!("zones[{index}]")),
                            "must be an IANA time zone name such as Europe/Paris".into(),
                        ));
                    }
                }
                Ok(())
            }
            Filter::And { .. } | Filter::Or { .. } => Ok(()),
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn text_field(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err("is required".into())
    } else if text.chars().count() > MAX_TEXT_LENGTH {
        Err(format!("must be at most {MAX_TEXT_LENGTH} characters"))
    } else {
        Ok(())
    }
}

fn check_days(days: Option<u32>) -> Result<(), String> {
    match days {
        Some(0) => Err("must be at least 1 (leave it out for ever)".into()),
        Some(d) if d > 36_500 => Err("must be at most 36500".into()),
        _ => Ok(()),
    }
}

/// Where an attribute condition reads its value.
pub(crate) fn target(name: &str, custom: bool) -> Result<Target, String> {
    if !custom {
        return STANDARD_ATTRIBUTES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, column)| Target::Column(column))
            .ok_or_else(|| {
                format!("{name:?} is not a standard attribute (set custom: true for a custom one)")
            });
    }
    text_field(name)?;
    let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
    if parts.iter().any(|p| p.is_empty() || p.contains('"')) {
        return Err("must be an attribute name, or a dotted path of names, without quotes".into());
    }
    Ok(Target::Custom(parts))
}

/// Which comparisons apply to a standard attribute (all are text; the date of birth is a date).
fn standard_allows(column: &str, comparison: Comparison) -> bool {
    use Comparison::*;
    match comparison {
        Equals | NotEqual | MatchesRegex | DoesNotMatchRegex | Exists | DoesNotExist | Contains
        | DoesNotContain => true,
        After | Before => column == "date_of_birth",
        _ => false,
    }
}

/// Checks the value against the comparison and returns it typed. Errors name `value` or
/// `comparison`.
pub(crate) fn operand(
    name: &str,
    custom: bool,
    comparison: Comparison,
    value: &Json,
) -> Result<Operand, (&'static str, String)> {
    use Comparison::*;
    let op = comparison.as_str();
    if let Ok(Target::Column(column)) = target(name, custom)
        && !standard_allows(column, comparison)
    {
        return Err((
            "comparison",
            format!("{op} does not apply to the standard attribute {name}"),
        ));
    }
    let string = |what: &str| -> Result<String, (&'static str, String)> {
        match value {
            Json::String(s) if !s.is_empty() && s.chars().count() <= MAX_TEXT_LENGTH => {
                Ok(s.clone())
            }
            _ => Err((
                "value",
                format!("must be {what} of 1 to {MAX_TEXT_LENGTH} characters for {op}"),
            )),
        }
    };
    let scalar = || -> Result<Operand, (&'static str, String)> {
        match value {
            Json::String(_) => string("a string").map(Operand::Text),
            Json::Bool(b) if custom => Ok(Operand::Bool(*b)),
            Json::Number(n) if custom => Ok(number(n)),
            _ if custom => Err((
                "value",
                format!("must be a string, number or boolean for {op}"),
            )),
            _ => Err(("value", format!("must be a string for {op}"))),
        }
    };
    match comparison {
        Equals | NotEqual => scalar(),
        IncludesValue | DoesNotIncludeValue => scalar(),
        Exists | DoesNotExist | IsTrue | IsFalse => Ok(Operand::None),
        Contains | DoesNotContain => string("a string").map(Operand::Text),
        MatchesRegex | DoesNotMatchRegex => {
            let pattern = string("a regular expression")?;
            regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ("value", format!("is not a valid regular expression: {e}")))?;
            Ok(Operand::Text(pattern))
        }
        GreaterThan | LessThan | GreaterThanOrEqualTo | LessThanOrEqualTo => match value {
            Json::Number(n) => Ok(number(n)),
            _ => Err(("value", format!("must be a number for {op}"))),
        },
        After | Before => match value.as_str().and_then(parse_time) {
            Some(at) => Ok(Operand::Time(at)),
            None => Err((
                "value",
                format!("must be an ISO 8601 date or time for {op}"),
            )),
        },
        MoreThanXDaysAgo
        | LessThanXDaysAgo
        | MoreThanXDaysInTheFuture
        | LessThanXDaysInTheFuture => match value.as_f64() {
            Some(days) if (0.0..=36_500.0).contains(&days) => Ok(Operand::Days(days)),
            _ => Err((
                "value",
                format!("must be a number of days from 0 to 36500 for {op}"),
            )),
        },
    }
}

fn number(n: &serde_json::Number) -> Operand {
    match n.as_i64() {
        Some(i) => Operand::Integer(i),
        None => Operand::Real(n.as_f64().unwrap_or(0.0)),
    }
}

/// An ISO 8601 time; without an offset it is UTC, and a date alone is midnight UTC.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
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
        .ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_read_and_write_the_documented_json() {
        let filter: Filter = serde_json::from_value(json!({
            "kind": "and",
            "filters": [
                {"kind": "attribute", "name": "plan", "custom": true, "comparison": "equals", "value": "pro"},
                {"kind": "event", "name": "checkout", "comparison": "at_least", "count": 1, "days": 7},
                {"kind": "random_bucket", "min": 0, "max": 99},
                {"kind": "time_zone", "zones": ["Europe/Paris"]},
                {"kind": "purchase", "product_id": null, "comparison": "exactly", "count": 2, "days": null},
                {"kind": "attribute", "name": "email", "comparison": "exists"},
            ]
        }))
        .unwrap();
        filter.validate().unwrap();
        let back: Filter = serde_json::from_value(serde_json::to_value(&filter).unwrap()).unwrap();
        assert_eq!(back, filter);
    }

    #[test]
    fn braze_spellings_of_comparisons_are_accepted() {
        for (text, comparison) in [
            ("does_not_equal", Comparison::NotEqual),
            ("greater_than_x_days_ago", Comparison::MoreThanXDaysAgo),
            (
                "less_than_x_days_in_the_future",
                Comparison::LessThanXDaysInTheFuture,
            ),
        ] {
            let parsed: Comparison = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(parsed, comparison);
        }
    }

    #[test]
    fn times_without_an_offset_are_utc() {
        assert_eq!(
            parse_time("2026-11-20"),
            Some("2026-11-20T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_time("2026-11-20T10:00:00+01:00"),
            Some("2026-11-20T09:00:00Z".parse().unwrap())
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
