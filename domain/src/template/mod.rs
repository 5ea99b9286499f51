//! Braze-flavoured Liquid for everything a marketer types into a webhook (URL, headers, body):
//! parsed once when saved, rendered once per recipient.
//!
//! On top of Shopify's standard tags and filters, templates understand Braze's `${…}` references
//! (`{{${first_name}}}`, `{{custom_attribute.${plan}}}`, `{{event_properties.${sku}}}`,
//! `{{api_trigger_properties.${k}}}`, `{{canvas_entry_properties.${k}}}` / `{{context.${k}}}`,
//! `{{campaign.${dispatch_id}}}`, `{{canvas.${name}}}`, …), Braze's filters (see
//! [`FILTERS`]) and `{% abort_message('why') %}`. Anything missing renders as an empty string.
//!
//! # JSON bodies
//!
//! Text interpolated into a JSON body must be escaped, or a recipient whose name contains a quote
//! breaks the request. Put the value inside the string literal and pipe it through `json_escape`:
//!
//! ```text
//! {"name": "{{${first_name} | json_escape}}", "note": "{{custom_attribute.${note} | json_escape}}"}
//! ```
//!
//! `json_escape` escapes quotes, backslashes, newlines and other control characters exactly as a
//! JSON encoder would, so the body stays valid JSON for any value. [`Template::render_json`]
//! renders and then checks the result parses, for callers that must not send broken JSON.

mod context;
mod filters;
mod runtime;
mod syntax;
mod tags;

use std::fmt;
use std::sync::OnceLock;

use liquid_core::{Language, ParseBlock, ParseFilter, ParseTag, Renderable};
use liquid_lib::stdlib;

use crate::DomainError;

pub use context::RenderContext;
pub use runtime::{MAX_LOOP_ITERATIONS, MAX_OUTPUT_BYTES};

/// The longest template text accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

/// The filters Herald adds to (or, for `default`, changes from) Shopify's standard set.
pub const FILTERS: &[&str] = &[
    "default",
    "json_escape",
    "json_parse",
    "as_json_string",
    "url_escape",
    "url_param_escape",
    "md5",
    "sha1",
    "sha2",
    "base64_encode",
    "hmac_sha1_hex",
    "hmac_sha1_base64",
    "hmac_sha256_hex",
    "hmac_sha256_base64",
    "hmac_sha512",
    "property_accessor",
    "number_with_delimiter",
];

/// A line and column (both from 1, columns in characters) in the text the marketer typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`.
    fn of(text: &str, offset: usize) -> Self {
        let before = &text[..floor_char_boundary(text, offset)];
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// The byte offset of this position in `text` (clamped to the text).
    fn offset_in(self, text: &str) -> usize {
        let mut line_start = 0;
        for _ in 1..self.line {
            match text[line_start..].find('\n') {
                Some(at) => line_start += at + 1,
                None => return text.len(),
            }
        }
        text[line_start..]
            .char_indices()
            .nth(self.column.saturating_sub(1))
            .map_or(text.len(), |(at, _)| line_start + at)
    }
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Why a template could not be parsed or rendered. Every variant names the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The text is not valid Liquid; `position` is where, when it can be told.
    Syntax {
        field: &'static str,
        position: Option<Position>,
        message: String,
    },
    /// Rendering failed, e.g. a filter was given a value it cannot work with.
    Render {
        field: &'static str,
        message: String,
    },
    /// The output (or a value assigned on the way) outgrew [`MAX_OUTPUT_BYTES`].
    OutputTooLarge { field: &'static str, limit: usize },
    /// Loops ran more than [`MAX_LOOP_ITERATIONS`] times in one render.
    TooManyIterations { field: &'static str, limit: usize },
    /// [`Template::render_json`] produced text that is not JSON.
    InvalidJson {
        field: &'static str,
        message: String,
    },
}

impl TemplateError {
    /// The input field the template came from.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Syntax { field, .. }
            | Self::Render { field, .. }
            | Self::OutputTooLarge { field, .. }
            | Self::TooManyIterations { field, .. }
            | Self::InvalidJson { field, .. } => field,
        }
    }

    /// What went wrong, without the field name.
    pub fn message(&self) -> String {
        match self {
            Self::Syntax {
                position: Some(Position { line, column }),
                message,
                ..
            } => format!("line {line}, column {column}: {message}"),
            Self::Syntax {
                position: None,
                message,
                ..
            }
            | Self::Render { message, .. } => message.clone(),
            Self::OutputTooLarge { limit, .. } => format!(
                "the rendered text would be larger than {} KiB",
                limit / 1024
            ),
            Self::TooManyIterations { limit, .. } => {
                format!("loops would run more than {limit} times")
            }
            Self::InvalidJson { message, .. } => {
                format!("the rendered text is not valid JSON: {message}")
            }
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field(), self.message())
    }
}

impl std::error::Error for TemplateError {}

impl From<TemplateError> for DomainError {
    fn from(error: TemplateError) -> Self {
        DomainError::invalid(error.field(), error.message())
    }
}

/// How a render ended when nothing went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderOutcome {
    /// The text to send.
    Rendered(String),
    /// `{% abort_message %}` ran: send nothing. Text rendered before it is discarded.
    Aborted { reason: Option<String> },
}

impl RenderOutcome {
    /// The rendered text, unless the render was aborted.
    pub fn rendered(&self) -> Option<&str> {
        match self {
            Self::Rendered(text) => Some(text),
            Self::Aborted { .. } => None,
        }
    }

    /// Whether `{% abort_message %}` stopped the render.
    pub fn is_aborted(&self) -> bool {
        matches!(self, Self::Aborted { .. })
    }
}

/// A parsed template, ready to render for any number of recipients (it is `Send + Sync`).
pub struct Template {
    field: &'static str,
    source: String,
    compiled: liquid_core::Template,
    /// The output when the text has no tag or output markup at all (a fixed URL, a header value,
    /// a body field such as `"benchmark"`): it is the same for every recipient, so it is worked
    /// out once when parsed and the template engine is not run per send.
    literal: Option<String>,
    /// The path when the whole text is one reference with no filter, such as `{{${first_name}}}`
    /// (a body field of its own, most often): looked up directly instead of run by the engine.
    reference: Option<Reference>,
}

/// A lone `{{ root.name… }}` (see [`lone_reference`]).
struct Reference {
    /// One of the reserved roots.
    root: &'static str,
    /// The names after the root.
    names: Vec<String>,
}

impl Reference {
    /// Whether a name is one the engine gives a meaning of its own on lists, text and objects
    /// (`size`, `first`, `last`): then the engine's lookup is used, not the JSON's.
    fn augmented(&self) -> bool {
        self.names
            .iter()
            .any(|name| matches!(name.as_str(), "size" | "first" | "last"))
    }

    /// The whole path as the template engine spells it, for [`liquid_core::model::try_find`].
    fn path(&self) -> Vec<liquid_core::model::ScalarCow<'_>> {
        std::iter::once(self.root)
            .chain(self.names.iter().map(String::as_str))
            .map(liquid_core::model::ScalarCow::new)
            .collect()
    }
}

/// One recipient's values, converted for the template engine at most once however many templates
/// of a message (URL, each header, each body field) render with them, and not at all when every
/// one of them is literal text.
pub struct Recipient<'a> {
    context: &'a RenderContext,
    globals: std::cell::OnceCell<liquid_core::Object>,
}

impl<'a> Recipient<'a> {
    pub fn new(context: &'a RenderContext) -> Self {
        Self {
            context,
            globals: std::cell::OnceCell::new(),
        }
    }

    fn globals(&self) -> &liquid_core::Object {
        self.globals.get_or_init(|| self.context.to_globals())
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("field", &self.field)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `source`, the text of the input named `field` (used in every error).
    pub fn parse(field: &'static str, source: &str) -> Result<Self, TemplateError> {
        if source.len() > MAX_SOURCE_BYTES {
            let message = format!("is longer than {} KiB", MAX_SOURCE_BYTES / 1024);
            return Err(TemplateError::Syntax {
                field,
                position: None,
                message,
            });
        }
        let translated = syntax::translate(source).map_err(|error| TemplateError::Syntax {
            field,
            position: Some(Position::of(source, error.offset)),
            message: error.message,
        })?;
        let elements =
            liquid_core::parser::parse(&translated.text, language()).map_err(|error| {
                let (position, message) = describe_parse_error(&error, source, &translated);
                TemplateError::Syntax {
                    field,
                    position,
                    message,
                }
            })?;
        let mut template = Self {
            field,
            source: source.to_owned(),
            compiled: liquid_core::Template::new(elements),
            literal: None,
            reference: lone_reference(&translated.text),
        };
        if !translated.text.contains("{{") && !translated.text.contains("{%") {
            // Rendered by the engine itself (with no values), so the literal is exactly what a
            // render per recipient would give.
            let empty = RenderContext::new();
            if let Ok(RenderOutcome::Rendered(text)) = template.render(&empty) {
                template.literal = Some(text);
            }
        }
        Ok(template)
    }

    /// The input field this template came from.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The text as the marketer typed it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders for one recipient. Missing values render empty; `{% abort_message %}` is an
    /// outcome, not an error.
    pub fn render(&self, context: &RenderContext) -> Result<RenderOutcome, TemplateError> {
        self.render_for(&Recipient::new(context))
    }

    /// Like [`Template::render`], with the recipient's values converted once for all the
    /// templates of a message.
    pub fn render_for(&self, recipient: &Recipient<'_>) -> Result<RenderOutcome, TemplateError> {
        if let Some(text) = &self.literal {
            return Ok(RenderOutcome::Rendered(text.clone()));
        }
        if let Some(reference) = &self.reference {
            // What the engine's output would write: the value found, rendered, or nothing when
            // the path leads nowhere. Anything too long takes the engine's path to its error.
            // Plain names are read from the recipient's JSON, without building the globals.
            use liquid_core::model::{ObjectView, ValueView};
            let text = if reference.augmented() {
                let found =
                    liquid_core::model::try_find(recipient.globals().as_value(), &reference.path());
                found.map_or_else(String::new, |value| value.render().to_string())
            } else {
                recipient
                    .context
                    .find(reference.root, &reference.names)
                    .map_or_else(String::new, |json| {
                        context::value_of(json).render().to_string()
                    })
            };
            if text.len() <= MAX_OUTPUT_BYTES {
                return Ok(RenderOutcome::Rendered(text));
            }
        }
        let field = self.field;
        let root = runtime::RootRuntime::new(recipient.globals());
        let mut writer = runtime::CappedWriter::default();
        let result = self.compiled.render_to(&mut writer, &root);
        let signals = root.take_signals();
        if let Some(reason) = signals.aborted {
            return Ok(RenderOutcome::Aborted { reason });
        }
        if writer.overflowed || signals.limit == Some(runtime::LimitHit::Output) {
            return Err(TemplateError::OutputTooLarge {
                field,
                limit: MAX_OUTPUT_BYTES,
            });
        }
        if signals.limit == Some(runtime::LimitHit::Iterations) {
            return Err(TemplateError::TooManyIterations {
                field,
                limit: MAX_LOOP_ITERATIONS,
            });
        }
        result.map_err(|error| TemplateError::Render {
            field,
            message: describe_render_error(&error),
        })?;
        // Every input and filter output is a Rust string, so the bytes are UTF-8.
        let text = String::from_utf8(writer.buffer).map_err(|_| TemplateError::Render {
            field,
            message: "produced text that is not UTF-8".into(),
        })?;
        Ok(RenderOutcome::Rendered(text))
    }

    /// Like [`Template::render`], and then checks that the text is valid JSON, for bodies sent as
    /// `application/json`.
    pub fn render_json(&self, context: &RenderContext) -> Result<RenderOutcome, TemplateError> {
        let outcome = self.render(context)?;
        if let RenderOutcome::Rendered(text) = &outcome {
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|error| {
                TemplateError::InvalidJson {
                    field: self.field,
                    message: error.to_string(),
                }
            })?;
        }
        Ok(outcome)
    }
}

/// The path of a text that is exactly `{{ root.name… }}` under one of the reserved roots the
/// `${…}` rewriting targets, with plain names only (no index, no filter, no whitespace control).
/// Under a reserved root the path can be neither a keyword (`true`, `empty`) nor an assigned
/// variable, so a direct lookup finds what the engine would.
fn lone_reference(text: &str) -> Option<Reference> {
    let inner = text
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim_matches(' ');
    let mut segments = inner.split('.');
    let first = segments.next()?;
    let root = *syntax::ROOTS.iter().find(|root| **root == first)?;
    let names: Vec<String> = segments
        .map(|segment| syntax::is_plain_name(segment).then(|| segment.to_owned()))
        .collect::<Option<_>>()?;
    (!names.is_empty()).then_some(Reference { root, names })
}

/// The tags, blocks and filters every template may use, built once per process.
fn language() -> &'static Language {
    static LANGUAGE: OnceLock<Language> = OnceLock::new();
    LANGUAGE.get_or_init(build_language)
}

fn build_language() -> Language {
    let mut language = Language::empty();
    // `include` and `render` are left out (templates have no partials), and `tablerow` too: it
    // builds HTML tables, which webhooks do not need, and its ranges would escape the loop budget.
    let tags: Vec<Box<dyn ParseTag>> = vec![
        Box::new(stdlib::AssignTag),
        Box::new(stdlib::BreakTag),
        Box::new(stdlib::ContinueTag),
        Box::new(stdlib::CycleTag),
        Box::new(stdlib::IncrementTag),
        Box::new(stdlib::DecrementTag),
        Box::new(tags::AbortMessageTag),
    ];
    for tag in tags {
        language
            .tags
            .register(tag.reflection().tag().to_owned(), tag);
    }
    let blocks: Vec<Box<dyn ParseBlock>> = vec![
        Box::new(stdlib::RawBlock),
        Box::new(stdlib::IfBlock),
        Box::new(stdlib::UnlessBlock),
        Box::new(stdlib::IfChangedBlock),
        Box::new(stdlib::CommentBlock),
        Box::new(stdlib::CaptureBlock),
        Box::new(stdlib::CaseBlock),
        Box::new(tags::ForBlock),
    ];
    for block in blocks {
        language
            .blocks
            .register(block.reflection().start_tag().to_owned(), block);
    }
    let filters: Vec<Box<dyn ParseFilter>> = vec![
        Box::new(stdlib::Abs),
        Box::new(stdlib::Append),
        Box::new(stdlib::AtLeast),
        Box::new(stdlib::AtMost),
        Box::new(stdlib::Capitalize),
        Box::new(stdlib::Ceil),
        Box::new(stdlib::Compact),
        Box::new(stdlib::Concat),
        Box::new(stdlib::Date),
        Box::new(stdlib::DividedBy),
        Box::new(stdlib::Downcase),
        Box::new(stdlib::Escape),
        Box::new(stdlib::EscapeOnce),
        Box::new(stdlib::First),
        Box::new(stdlib::Floor),
        Box::new(stdlib::Join),
        Box::new(stdlib::Last),
        Box::new(stdlib::Lstrip),
        Box::new(stdlib::Map),
        Box::new(stdlib::Minus),
        Box::new(stdlib::Modulo),
        Box::new(stdlib::NewlineToBr),
        Box::new(stdlib::Plus),
        Box::new(stdlib::Prepend),
        Box::new(stdlib::Remove),
        Box::new(stdlib::RemoveFirst),
        Box::new(stdlib::Replace),
        Box::new(stdlib::ReplaceFirst),
        Box::new(stdlib::Reverse),
        Box::new(stdlib::Round),
        Box::new(stdlib::Rstrip),
        Box::new(stdlib::Size),
        Box::new(stdlib::Slice),
        Box::new(stdlib::Sort),
        Box::new(stdlib::SortNatural),
        Box::new(stdlib::Split),
        Box::new(stdlib::Strip),
        Box::new(stdlib::StripHtml),
        Box::new(stdlib::StripNewlines),
        Box::new(stdlib::Times),
        Box::new(stdlib::Truncate),
        Box::new(stdlib::TruncateWords),
        Box::new(stdlib::Uniq),
        Box::new(stdlib::Upcase),
        Box::new(stdlib::UrlDecode),
        Box::new(stdlib::UrlEncode),
        Box::new(stdlib::Where),
        // Braze's own, and Braze's `default` in place of Shopify's.
        Box::new(filters::Default),
        Box::new(filters::JsonEscape),
        Box::new(filters::JsonParse),
        Box::new(filters::AsJsonString),
        Box::new(filters::UrlEscape),
        Box::new(filters::UrlParamEscape),
        Box::new(filters::Md5),
        Box::new(filters::Sha1),
        Box::new(filters::Sha2),
        Box::new(filters::Base64Encode),
        Box::new(filters::PropertyAccessor),
        Box::new(filters::NumberWithDelimiter),
    ];
    let hmac = filters::HMAC_FILTERS
        .iter()
        .map(|parser| Box::new(*parser) as Box<dyn ParseFilter>);
    for filter in filters.into_iter().chain(hmac) {
        language
            .filters
            .register(filter.reflection().name().to_owned(), filter);
    }
    language
}

/// The parts of a liquid error's text: its message and the `key=value` context lines.
struct ErrorParts {
    message: String,
    context: Vec<(String, String)>,
}

impl ErrorParts {
    fn of(error: &liquid_core::Error) -> Self {
        // liquid errors only expose their text: "liquid: <message>", then traces whose context
        // lines are indented "key=value".
        let text = error.to_string();
        let text = text.strip_prefix("liquid: ").unwrap_or(&text);
        let mut message = Vec::new();
        let mut context = Vec::new();
        let mut in_message = true;
        for line in text.lines() {
            if line.starts_with("from: ") || line == "  with:" {
                in_message = false;
            } else if in_message {
                message.push(line);
            } else if let Some((key, value)) = line.trim_start().split_once('=') {
                context.push((key.to_owned(), value.to_owned()));
            }
        }
        Self {
            message: message.join("\n"),
            context,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parse error as a position in the marketer's text and a one-line message.
fn describe_parse_error(
    error: &liquid_core::Error,
    source: &str,
    translated: &syntax::Translated,
) -> (Option<Position>, String) {
    let parts = ErrorParts::of(error);
    if let Some(name) = parts.get("requested filter") {
        return (
            find_filter(source, name),
            format!("unknown filter \"{name}\""),
        );
    }
    // Errors found by the grammar carry pest's " --> line:column" and a "= message" line.
    let position = parts.message.lines().find_map(|line| {
        let (line, column) = line.trim_start().strip_prefix("--> ")?.split_once(':')?;
        Some(Position {
            line: line.trim().parse().ok()?,
            column: column.trim().parse().ok()?,
        })
    });
    let position = position.map(|at| {
        Position::of(
            source,
            translated.original_offset(at.offset_in(&translated.text)),
        )
    });
    let detail = parts
        .message
        .lines()
        .rev()
        .find_map(|line| line.trim_start().strip_prefix("= "))
        .unwrap_or(parts.message.lines().next().unwrap_or(""));
    let mut message = tidy(detail);
    if let Some(name) = parts
        .get("requested")
        .filter(|_| detail.starts_with("Unknown tag"))
    {
        message = format!("unknown tag \"{name}\"");
    } else if let Some(filter) = parts.get("filter") {
        message = format!("{message} in \"{}\"", filter.trim());
        let name = filter.trim().split([':', ' ']).next().unwrap_or("");
        return (position.or_else(|| find_filter(source, name)), message);
    }
    (position, message)
}

/// A render error's message, with the argument, cause and filter when the error names them.
fn describe_render_error(error: &liquid_core::Error) -> String {
    let parts = ErrorParts::of(error);
    let mut message = tidy(parts.message.lines().next().unwrap_or(""));
    if let Some(argument) = parts.get("argument") {
        message = format!("{message} \"{argument}\"");
    }
    if let Some(cause) = parts.get("cause") {
        message = format!("{message}: {}", tidy(cause));
    }
    match parts.get("filter") {
        Some(filter) => format!("{message} (in \"{}\")", filter.trim()),
        None => message,
    }
}

/// Lower-cases the first letter and drops a final full stop, to match Herald's messages.
fn tidy(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "invalid Liquid".to_owned(),
    }
}

/// Where `| name` first appears in the source, for errors the parser reports without a position.
fn find_filter(source: &str, name: &str) -> Option<Position> {
    if name.is_empty() {
        return None;
    }
    let mut search = 0;
    while let Some(found) = source[search..].find(name) {
        let at = search + found;
        search = at + name.len();
        let before = source[..at].trim_end();
        let after = source[at + name.len()..].chars().next();
        let whole_word = !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if whole_word && before.ends_with('|') {
            return Some(Position::of(source, at));
        }
    }
    None
}

#[cfg(test)]
mod tests;
