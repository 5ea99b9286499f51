//! Braze's Connected Audience object (the `audience` of `/campaigns/trigger/send` and
//! `/canvas/trigger/send`) translated into a segment [`Filter`], refusing what Herald cannot
//! evaluate rather than ignoring it.

use serde_json::{Map, Value as Json};

use super::filter::{Comparison, Filter, MAX_CONDITIONS, MAX_DEPTH};
use crate::DomainError;

/// The field every error names.
const FIELD: &str = "audience";

/// Translates a Connected Audience (`{"AND": [...]}`, `{"OR": [...]}` or one filter, nested at
/// will) into a [`Filter`] and validates it.
///
/// Only `custom_attribute` filters are evaluated, with Braze's comparison names:
///
/// | Braze `comparison`                  | Herald [`Comparison`]                             |
/// | ----------------------------------- | ------------------------------------------------- |
/// | `equals`                            | `Equals` (string, number or boolean)              |
/// | `not_equal`, `does_not_equal`       | `NotEqual`                                        |
/// | `matches_regex`                     | `MatchesRegex`                                    |
/// | `does_not_match_regex`              | `DoesNotMatchRegex`                               |
/// | `greater_than`, `less_than`         | `GreaterThan`, `LessThan`                         |
/// | `greater_than_or_equal_to`          | `GreaterThanOrEqualTo`                            |
/// | `less_than_or_equal_to`             | `LessThanOrEqualTo`                               |
/// | `includes_value`                    | `IncludesValue`                                   |
/// | `does_not_include_value`            | `DoesNotIncludeValue`                             |
/// | `after`, `before`                   | `After`, `Before` (ISO 8601)                      |
/// | `less_than_x_days_ago`              | `LessThanXDaysAgo`                                |
/// | `greater_than_x_days_ago`           | `MoreThanXDaysAgo`                                |
/// | `less_than_x_days_in_the_future`    | `LessThanXDaysInTheFuture`                        |
/// | `greater_than_x_days_in_the_future` | `MoreThanXDaysInTheFuture`                        |
/// | `exists` (value `true` or absent)   | `Exists`; with value `false`: `DoesNotExist`      |
/// | `does_not_exist` (`true` or absent) | `DoesNotExist`; with value `false`: `Exists`      |
///
/// Every other filter (`push_subscription_status`, `email_subscription_status`,
/// `last_used_app`, `interacted_with_campaign`, ...) fails with
/// `audience: <path>: <name> is not supported by Herald`, where `<path>` is `audience` at the root
/// or the position in Braze's terms, such as `AND[1].OR[0]`. Empty `AND`/`OR` groups are refused
/// too: an audience that silently matched every user would send to everyone.
pub fn from_connected_audience(value: &Json) -> Result<Filter, DomainError> {
    let filter = translate(value, FIELD, 1)?;
    if conditions(&filter) > MAX_CONDITIONS {
        return Err(invalid(
            FIELD,
            format!("an audience has at most {MAX_CONDITIONS} custom_attribute filters"),
        ));
    }
    filter
        .validate()
        .map_err(|e| DomainError::invalid(FIELD, without_field(e)))?;
    Ok(filter)
}

fn conditions(filter: &Filter) -> usize {
    match filter {
        Filter::And { filters } | Filter::Or { filters } => filters.iter().map(conditions).sum(),
        _ => 1,
    }
}

fn invalid(path: &str, message: impl std::fmt::Display) -> DomainError {
    DomainError::invalid(FIELD, format!("{path}: {message}"))
}

/// The message of an `Invalid` error, without its field.
fn without_field(error: DomainError) -> String {
    match error {
        DomainError::Invalid { message, .. } => message,
        other => other.to_string(),
    }
}

fn child(path: &str, key: &str, index: usize) -> String {
    if path == FIELD {
        format!("{key}[{index}]")
    } else {
        format!("{path}.{key}[{index}]")
    }
}

fn translate(value: &Json, path: &str, depth: usize) -> Result<Filter, DomainError> {
    let (key, body) = match value
        .as_object()
        .map(Map::iter)
        .map(|mut i| (i.next(), i.next()))
    {
        Some((Some(entry), None)) => entry,
        _ => {
            return Err(invalid(
                path,
                "must be an object holding exactly one filter (AND, OR or custom_attribute)",
            ));
        }
    };
    match key.as_str() {
        "AND" | "OR" | "and" | "or" => {
            let name = key.to_ascii_uppercase();
            if depth > MAX_DEPTH {
                return Err(invalid(
                    path,
                    format!("AND and OR groups nest at most {MAX_DEPTH} deep"),
                ));
            }
            let items = match body {
                Json::Array(items) if !items.is_empty() => items,
                _ => {
                    return Err(invalid(
                        path,
                        format!("{name} must be a non-empty array of filters"),
                    ));
                }
            };
            let filters = items
                .iter()
                .enumerate()
                .map(|(index, item)| translate(item, &child(path, &name, index), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if name == "AND" {
                Filter::And { filters }
            } else {
                Filter::Or { filters }
            })
        }
        "custom_attribute" => custom_attribute(body, &format!("{path}.custom_attribute")),
        other => Err(invalid(path, format!("{other} is not supported by Herald"))),
    }
}

fn custom_attribute(body: &Json, path: &str) -> Result<Filter, DomainError> {
    let obj = body.as_object().ok_or_else(|| {
        invalid(
            path,
            "must be an object with custom_attribute_name, comparison and value",
        )
    })?;
    let name = match obj.get("custom_attribute_name") {
        Some(Json::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => {
            return Err(invalid(
                path,
                "custom_attribute_name must be a non-empty string",
            ));
        }
    };
    let text = obj
        .get("comparison")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(path, "comparison must be a string"))?;
    let value = obj.get("value").cloned().unwrap_or(Json::Null);
    let (comparison, value) = match text {
        "exists" | "does_not_exist" => {
            let wanted = match value {
                Json::Null => true,
                Json::Bool(b) => b,
                _ => {
                    return Err(invalid(
                        path,
                        format!("value must be true or false for {text}"),
                    ));
                }
            };
            let exists = wanted == (text == "exists");
            let comparison = if exists {
                Comparison::Exists
            } else {
                Comparison::DoesNotExist
            };
            (comparison, Json::Null)
        }
        _ => (
            braze_comparison(text).ok_or_else(|| {
                invalid(
                    path,
                    format!("comparison {text:?} is not a Connected Audience comparison"),
                )
            })?,
            value,
        ),
    };
    let filter = Filter::Attribute {
        name,
        custom: true,
        comparison,
        value,
    };
    // Checked here too so that the error names the place in the audience, in Braze's terms.
    filter.validate().map_err(|e| {
        let message = without_field(e);
        let message = message
            .strip_prefix("name: ")
            .map(|m| format!("custom_attribute_name: {m}"))
            .unwrap_or(message);
        invalid(path, message)
    })?;
    Ok(filter)
}

/// Braze's comparison names for custom attributes (exists and does_not_exist aside).
fn braze_comparison(text: &str) -> Option<Comparison> {
    use Comparison::*;
    Some(match text {
        "equals" => Equals,
        "not_equal" | "does_not_equal" => NotEqual,
        "matches_regex" => MatchesRegex,
        "does_not_match_regex" => DoesNotMatchRegex,
        "greater_than" => GreaterThan,
        "greater_than_or_equal_to" => GreaterThanOrEqualTo,
        "less_than" => LessThan,
        "less_than_or_equal_to" => LessThanOrEqualTo,
        "includes_value" => IncludesValue,
        "does_not_include_value" => DoesNotIncludeValue,
        "after" => After,
        "before" => Before,
        "less_than_x_days_ago" => LessThanXDaysAgo,
        "greater_than_x_days_ago" => MoreThanXDaysAgo,
        "less_than_x_days_in_the_future" => LessThanXDaysInTheFuture,
        "greater_than_x_days_in_the_future" => MoreThanXDaysInTheFuture,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attribute(name: &str, comparison: Comparison, value: Json) -> Filter {
        Filter::Attribute {
            name: name.into(),
            custom: true,
            comparison,
            value,
        }
    }

    fn ca(name: &str, comparison: &str, value: Json) -> Json {
        json!({"custom_attribute": {
            "custom_attribute_name": name, "comparison": comparison, "value": value,
        }})
    }

    fn message(value: Json) -> String {
        match from_connected_audience(&value).unwrap_err() {
            DomainError::Invalid { field, message } => {
                assert_eq!(field, "audience");
                message
            }
            other => panic!("not an Invalid error: {other:?}"),
        }
    }

    #[test]
    fn every_braze_comparison_maps_onto_a_herald_comparison() {
        use Comparison::*;
        for (braze, herald, value) in [
            ("equals", Equals, json!("blue")),
            ("equals", Equals, json!(3)),
            ("equals", Equals, json!(true)),
            ("not_equal", NotEqual, json!("blue")),
            ("does_not_equal", NotEqual, json!(false)),
            ("matches_regex", MatchesRegex, json!("^bl")),
            ("does_not_match_regex", DoesNotMatchRegex, json!("^bl")),
            ("greater_than", GreaterThan, json!(1)),
            ("greater_than_or_equal_to", GreaterThanOrEqualTo, json!(1.5)),
            ("less_than", LessThan, json!(1)),
            ("less_than_or_equal_to", LessThanOrEqualTo, json!(-2)),
            ("includes_value", IncludesValue, json!("red")),
            ("does_not_include_value", DoesNotIncludeValue, json!("red")),
            ("after", After, json!("2026-01-01T00:00:00Z")),
            ("before", Before, json!("2026-01-01")),
            ("less_than_x_days_ago", LessThanXDaysAgo, json!(7)),
            ("greater_than_x_days_ago", MoreThanXDaysAgo, json!(7)),
            (
                "less_than_x_days_in_the_future",
                LessThanXDaysInTheFuture,
                json!(3),
            ),
            (
                "greater_than_x_days_in_the_future",
                MoreThanXDaysInTheFuture,
                json!(3),
            ),
        ] {
            assert_eq!(
                from_connected_audience(&ca("eye_color", braze, value.clone())).unwrap(),
                attribute("eye_color", herald, value),
                "{braze}"
            );
        }
    }

    #[test]
    fn exists_and_does_not_exist_read_their_boolean_value() {
        use Comparison::*;
        for (braze, value, herald) in [
            ("exists", json!(true), Exists),
            ("exists", json!(false), DoesNotExist),
            ("exists", Json::Null, Exists),
            ("does_not_exist", json!(true), DoesNotExist),
            ("does_not_exist", json!(false), Exists),
        ] {
            assert_eq!(
                from_connected_audience(&ca("vip", braze, value.clone())).unwrap(),
                attribute("vip", herald, Json::Null),
                "{braze} {value}"
            );
        }
        let without_value =
            json!({"custom_attribute": {"custom_attribute_name": "vip", "comparison": "exists"}});
        assert_eq!(
            from_connected_audience(&without_value).unwrap(),
            attribute("vip", Exists, Json::Null)
        );
        assert_eq!(
            message(ca("vip", "exists", json!("yes"))),
            "audience.custom_attribute: value must be true or false for exists"
        );
    }

    #[test]
    fn and_and_or_groups_nest_into_filter_groups() {
        let audience = json!({"AND": [
            {"OR": [ca("plan", "equals", json!("pro")), ca("plan", "equals", json!("team"))]},
            ca("eye_color", "equals", json!("blue")),
        ]});
        assert_eq!(
            from_connected_audience(&audience).unwrap(),
            Filter::And {
                filters: vec![
                    Filter::Or {
                        filters: vec![
                            attribute("plan", Comparison::Equals, json!("pro")),
                            attribute("plan", Comparison::Equals, json!("team")),
                        ]
                    },
                    attribute("eye_color", Comparison::Equals, json!("blue")),
                ]
            }
        );
        // A single filter is an audience too.
        assert_eq!(
            from_connected_audience(&ca("age", "greater_than", json!(18))).unwrap(),
            attribute("age", Comparison::GreaterThan, json!(18))
        );
    }

    #[test]
    fn filters_herald_cannot_evaluate_are_refused_by_name() {
        for (name, body) in [
            (
                "push_subscription_status",
                json!({"comparison": "is", "value": "opted_in"}),
            ),
            (
                "email_subscription_status",
                json!({"comparison": "is_not", "value": "subscribed"}),
            ),
            (
                "last_used_app",
                json!({"comparison": "after", "value": "2026-01-01T00:00:00Z"}),
            ),
            (
                "interacted_with_campaign",
                json!({"campaign_id": "c", "comparison": "received"}),
            ),
        ] {
            let audience = json!({"AND": [
                ca("eye_color", "equals", json!("blue")),
                {"OR": [ca("plan", "equals", json!("pro")), {name: body.clone()}]},
            ]});
            assert_eq!(
                message(audience),
                format!("AND[1].OR[1]: {name} is not supported by Herald")
            );
            assert_eq!(
                message(json!({name: body})),
                format!("audience: {name} is not supported by Herald")
            );
        }
    }

    #[test]
    fn malformed_audiences_are_refused_with_their_place() {
        assert_eq!(
            message(json!({"AND": []})),
            "audience: AND must be a non-empty array of filters"
        );
        assert_eq!(
            message(json!({"OR": {"custom_attribute": {}}})),
            "audience: OR must be a non-empty array of filters"
        );
        assert!(message(json!({})).starts_with("audience: must be an object holding exactly one"));
        assert!(message(json!("AND")).starts_with("audience: must be an object"));
        assert!(
            message(
                json!({"AND": [ca("a", "equals", json!(1)), ca("b", "equals", json!(2))], "OR": []})
            )
            .starts_with("audience: must be an object holding exactly one")
        );
        assert_eq!(
            message(json!({"AND": [ca("plan", "contains", json!("pro"))]})),
            "AND[0].custom_attribute: comparison \"contains\" is not a Connected Audience comparison"
        );
        assert_eq!(
            message(json!({"AND": [ca("age", "greater_than", json!("18"))]})),
            "AND[0].custom_attribute: value: must be a number for greater_than"
        );
        assert_eq!(
            message(json!({"AND": [ca("last_seen", "after", json!("yesterday"))]})),
            "AND[0].custom_attribute: value: must be an ISO 8601 date or time for after"
        );
        assert_eq!(
            message(json!({"AND": [ca("a\"b", "equals", json!(1))]})),
            "AND[0].custom_attribute: custom_attribute_name: must be an attribute name, or a \
             dotted path of names, without quotes"
        );
        assert_eq!(
            message(
                json!({"custom_attribute": {"custom_attribute_name": "", "comparison": "equals", "value": 1}})
            ),
            "audience.custom_attribute: custom_attribute_name must be a non-empty string"
        );
        assert_eq!(
            message(json!({"custom_attribute": {"custom_attribute_name": "a", "value": 1}})),
            "audience.custom_attribute: comparison must be a string"
        );
    }

    #[test]
    fn lower_case_group_names_are_accepted() {
        assert_eq!(
            from_connected_audience(&json!({"or": [ca("a", "equals", json!(1))]})).unwrap(),
            Filter::Or {
                filters: vec![attribute("a", Comparison::Equals, json!(1))]
            }
        );
    }

    #[test]
    fn audiences_are_limited_in_depth_and_in_conditions() {
        let mut deep = ca("a", "equals", json!(1));
        for _ in 0..=MAX_DEPTH {
            deep = json!({"AND": [deep]});
        }
        assert!(message(deep).ends_with(&format!("groups nest at most {MAX_DEPTH} deep")));
        let many: Vec<Json> = (0..=MAX_CONDITIONS)
            .map(|i| ca(&format!("a{i}"), "equals", json!(i)))
            .collect();
        assert_eq!(
            message(json!({"OR": many})),
            "audience: an audience has at most 50 custom_attribute filters"
        );
    }
}
