//! What one recipient's render can see: their attributes and the properties of whatever triggered
//! the message, held as JSON so the engine and the composer preview can fill it from anywhere.

use liquid_core::model::{Object, Value};
use serde_json::{Map, Value as Json};

use super::syntax;

/// The data behind `${…}` references for one render. Every part is optional: whatever is absent
/// renders as an empty string.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RenderContext {
    /// Standard attributes: `first_name`, `last_name`, `email_address` (or `email`), `user_id`
    /// (the external id), `phone_number`, `country`, `city`, `language`, `time_zone`,
    /// `date_of_birth`, `gender`, …; read as `{{${first_name}}}`.
    pub user: Map<String, Json>,
    /// `{{custom_attribute.${name}}}`; values may nest.
    pub custom_attributes: Map<String, Json>,
    /// `{{event_properties.${name}}}`: the properties of the triggering event.
    pub event_properties: Map<String, Json>,
    /// `{{api_trigger_properties.${name}}}`: the `trigger_properties` of an API-triggered send.
    pub api_trigger_properties: Map<String, Json>,
    /// `{{canvas_entry_properties.${name}}}`, also read as `{{context.${name}}}`.
    pub canvas_entry_properties: Map<String, Json>,
    /// `{{campaign.${name}}}`: `name`, `api_id`, `dispatch_id`, `message_name`, `message_api_id`, ….
    pub campaign: Map<String, Json>,
    /// `{{canvas.${name}}}`: `name`, `api_id`, `variant_name`, `variant_api_id`, ….
    pub canvas: Map<String, Json>,
}

impl RenderContext {
    /// An empty context: every reference renders empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one standard attribute.
    pub fn with_user_attribute(mut self, name: impl Into<String>, value: impl Into<Json>) -> Self {
        self.user.insert(name.into(), value.into());
        self
    }

    /// Sets one custom attribute.
    pub fn with_custom_attribute(
        mut self,
        name: impl Into<String>,
        value: impl Into<Json>,
    ) -> Self {
        self.custom_attributes.insert(name.into(), value.into());
        self
    }

    /// Sets one property of the triggering event.
    pub fn with_event_property(mut self, name: impl Into<String>, value: impl Into<Json>) -> Self {
        self.event_properties.insert(name.into(), value.into());
        self
    }

    /// Sets one API trigger property.
    pub fn with_api_trigger_property(
        mut self,
        name: impl Into<String>,
        value: impl Into<Json>,
    ) -> Self {
        self.api_trigger_properties
            .insert(name.into(), value.into());
        self
    }

    /// Sets one Canvas entry property.
    pub fn with_canvas_entry_property(
        mut self,
        name: impl Into<String>,
        value: impl Into<Json>,
    ) -> Self {
        self.canvas_entry_properties
            .insert(name.into(), value.into());
        self
    }

    /// Sets one campaign (or Canvas step) attribute, such as `name` or `dispatch_id`.
    pub fn with_campaign(mut self, name: impl Into<String>, value: impl Into<Json>) -> Self {
        self.campaign.insert(name.into(), value.into());
        self
    }

    /// Sets one Canvas attribute, such as `name` or `api_id`.
    pub fn with_canvas(mut self, name: impl Into<String>, value: impl Into<Json>) -> Self {
        self.canvas.insert(name.into(), value.into());
        self
    }

    /// Each reserved root with the values under it, in the order of [`syntax::ROOTS`].
    fn roots(&self) -> [(&'static str, &Map<String, Json>); 7] {
        [
            (syntax::USER_ROOT, &self.user),
            (syntax::CUSTOM_ATTRIBUTE_ROOT, &self.custom_attributes),
            (syntax::EVENT_PROPERTIES_ROOT, &self.event_properties),
            (
                syntax::API_TRIGGER_PROPERTIES_ROOT,
                &self.api_trigger_properties,
            ),
            (
                syntax::CANVAS_ENTRY_PROPERTIES_ROOT,
                &self.canvas_entry_properties,
            ),
            (syntax::CAMPAIGN_ROOT, &self.campaign),
            (syntax::CANVAS_ROOT, &self.canvas),
        ]
    }

    /// The liquid globals for one render, under the reserved roots the `${…}` rewriting targets.
    pub(super) fn to_globals(&self) -> Object {
        let mut globals = Object::new();
        for (root, map) in self.roots() {
            let mut object = object_of(map);
            if root == syntax::USER_ROOT {
                for (a, b) in USER_ALIASES {
                    alias(&mut object, a, b);
                }
            }
            globals.insert(root.into(), Value::Object(object));
        }
        globals
    }

    /// The JSON at `names` under one of the reserved roots, found as in the globals (including
    /// the user's aliases); `None` when the path leads nowhere.
    pub(super) fn find(&self, root: &str, names: &[String]) -> Option<&Json> {
        let (first, rest) = names.split_first()?;
        let (_, map) = self.roots().into_iter().find(|(name, _)| *name == root)?;
        let mut value = map.get(first).or_else(|| {
            let other = USER_ALIASES
                .iter()
                .find_map(|&(a, b)| (first == a).then_some(b).or((first == b).then_some(a)))?;
            (root == syntax::USER_ROOT).then(|| map.get(other))?
        })?;
        for name in rest {
            value = value.as_object()?.get(name.as_str())?;
        }
        Some(value)
    }
}

/// Standard attributes known by two names: Braze says `email_address` where people (and our own
/// profile API) also say `email`, and `user_id` for the external id.
const USER_ALIASES: [(&str, &str); 2] = [("email_address", "email"), ("user_id", "external_id")];

/// Makes `a` and `b` name the same attribute when only one of them is set.
fn alias(map: &mut Object, a: &str, b: &str) {
    match (map.get(a), map.get(b)) {
        (Some(value), None) => {
            let value = value.clone();
            map.insert(b.to_owned().into(), value);
        }
        (None, Some(value)) => {
            let value = value.clone();
            map.insert(a.to_owned().into(), value);
        }
        _ => {}
    }
}

fn object_of(map: &Map<String, Json>) -> Object {
    map.iter()
        .map(|(key, value)| (key.clone().into(), value_of(value)))
        .collect()
}

/// A JSON value as the template engine sees it, converted directly (every JSON value has a liquid
/// counterpart). Integers beyond `i64` become floats rather than failing.
pub(super) fn value_of(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::scalar(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::scalar(i),
            None => Value::scalar(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::scalar(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(value_of).collect()),
        Json::Object(map) => Value::Object(object_of(map)),
    }
}
