//! Rewrites Braze's `${…}` personalization references into plain Liquid paths, remembering where
//! every rewritten piece came from so parse errors can point at what the marketer typed.

/// Where the standard attributes (`{{${first_name}}}`) live in the render globals.
pub(super) const USER_ROOT: &str = "__user";
/// Where `custom_attribute.${…}` lives.
pub(super) const CUSTOM_ATTRIBUTE_ROOT: &str = "__custom_attribute";
/// Where `event_properties.${…}` lives.
pub(super) const EVENT_PROPERTIES_ROOT: &str = "__event_properties";
/// Where `api_trigger_properties.${…}` lives.
pub(super) const API_TRIGGER_PROPERTIES_ROOT: &str = "__api_trigger_properties";
/// Where `canvas_entry_properties.${…}` and its alias `context.${…}` live.
pub(super) const CANVAS_ENTRY_PROPERTIES_ROOT: &str = "__canvas_entry_properties";
/// Where `campaign.${…}` lives.
pub(super) const CAMPAIGN_ROOT: &str = "__campaign";
/// Where `canvas.${…}` lives.
pub(super) const CANVAS_ROOT: &str = "__canvas";

/// Every reserved root, the user's first.
pub(super) const ROOTS: [&str; 7] = [
    USER_ROOT,
    CUSTOM_ATTRIBUTE_ROOT,
    EVENT_PROPERTIES_ROOT,
    API_TRIGGER_PROPERTIES_ROOT,
    CANVAS_ENTRY_PROPERTIES_ROOT,
    CAMPAIGN_ROOT,
    CANVAS_ROOT,
];

/// Whether Liquid accepts `segment` as a bare name in a path (`.name`): a letter or `_`, then
/// letters, digits and `_`.
pub(super) fn is_plain_name(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The global that a Braze namespace in front of `${…}` stands for. Reserved names (with a
/// leading `__`) keep a marketer's own `{% assign campaign = … %}` from hiding Braze's data.
fn namespace_root(namespace: &str) -> Option<&'static str> {
    Some(match namespace {
        "custom_attribute" | "custom_attributes" => CUSTOM_ATTRIBUTE_ROOT,
        "event_properties" => EVENT_PROPERTIES_ROOT,
        "api_trigger_properties" => API_TRIGGER_PROPERTIES_ROOT,
        "canvas_entry_properties" | "context" => CANVAS_ENTRY_PROPERTIES_ROOT,
        "campaign" => CAMPAIGN_ROOT,
        "canvas" => CANVAS_ROOT,
        _ => return None,
    })
}

/// A problem found while rewriting, at a byte offset of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// One rewritten span: `translated` bytes of output replaced `original` bytes of input.
#[derive(Debug, Clone, Copy)]
struct Rewrite {
    translated_start: usize,
    translated_end: usize,
    original_start: usize,
    original_end: usize,
}

/// Liquid text the `liquid` crate can parse, plus the way back to the original positions.
#[derive(Debug, Clone)]
pub(super) struct Translated {
    pub text: String,
    rewrites: Vec<Rewrite>,
}

impl Translated {
    /// The byte offset in the original text that produced byte `offset` of the translation.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shifted = offset;
        for rewrite in &self.rewrites {
            if offset < rewrite.translated_start {
                break;
            }
            if offset < rewrite.translated_end {
                return rewrite.original_start;
            }
            shifted = rewrite.original_end + (offset - rewrite.translated_end);
        }
        shifted
    }
}

/// Rewrites every `${…}` inside `{{ … }}` and `{% … %}` (never in plain text or string literals),
/// and turns `{% abort_message('why') %}` into the tag form the parser accepts.
pub(super) fn translate(source: &str) -> Result<Translated, SyntaxError> {
    let mut out = Translator {
        source,
        pos: 0,
        text: String::with_capacity(source.len() + 32),
        rewrites: Vec::new(),
    };
    out.run()?;
    Ok(Translated {
        text: out.text,
        rewrites: out.rewrites,
    })
}

struct Translator<'s> {
    source: &'s str,
    pos: usize,
    text: String,
    rewrites: Vec<Rewrite>,
}

impl Translator<'_> {
    fn rest(&self) -> &str {
        &self.source[self.pos..]
    }

    /// Copies `len` bytes of the original unchanged.
    fn copy(&mut self, len: usize) {
        let end = self.pos + len;
        self.text.push_str(&self.source[self.pos..end]);
        self.pos = end;
    }

    fn run(&mut self) -> Result<(), SyntaxError> {
        while self.pos < self.source.len() {
            let rest = self.rest();
            let output = rest.find("{{").map(|at| (at, false));
            let tag = rest.find("{%").map(|at| (at, true));
            match output.into_iter().chain(tag).min() {
                None => self.copy(rest.len()),
                Some((start, is_tag)) => {
                    self.copy(start + 2);
                    let tag_name = self.region(is_tag)?;
                    if tag_name.as_deref() == Some("raw") {
                        self.copy_raw_body();
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies a `{% raw %}` body untouched: `${…}` inside it is text the marketer wants as is.
    fn copy_raw_body(&mut self) {
        let rest = self.rest();
        let mut search = 0;
        while let Some(found) = rest[search..].find("{%") {
            let at = search + found;
            let inner = rest[at + 2..].trim_start_matches('-').trim_start();
            if inner.starts_with("endraw") {
                self.copy(at);
                return;
            }
            search = at + 2;
        }
        self.copy(rest.len());
    }

    /// Handles the inside of one `{{ … }}` or `{% … %}` (the opening braces already copied), up
    /// to and including the closing braces. Returns the tag's name for `{% … %}`.
    fn region(&mut self, is_tag: bool) -> Result<Option<String>, SyntaxError> {
        let close = if is_tag { "%}" } else { "}}" };
        let mut tag_name = None;
        let mut closing_paren = None;
        if is_tag {
            let rest = self.rest();
            let lead = rest.len() - rest.trim_start_matches('-').trim_start().len();
            self.copy(lead);
            let name_len = self
                .rest()
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = self.rest()[..name_len].to_owned();
            self.copy(name_len);
            if name == "abort_message" {
                closing_paren = self.abort_message_arguments(close);
            }
            tag_name = Some(name);
        }
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Ok(tag_name);
            }
            if rest.starts_with(close) {
                self.copy(2);
                return Ok(tag_name);
            }
            if closing_paren == Some(self.pos) {
                self.text.push(' ');
                self.pos += 1;
                continue;
            }
            match rest.as_bytes()[0] {
                quote @ (b'\'' | b'"') => {
                    let len = rest[1..]
                        .find(quote as char)
                        .map_or(rest.len(), |end| end + 2);
                    self.copy(len);
                }
                b'$' if rest.as_bytes().get(1) == Some(&b'{') => self.reference()?,
                _ => {
                    let len = rest.chars().next().map_or(1, char::len_utf8);
                    self.copy(len);
                }
            }
        }
    }

    /// Braze writes the reason in parentheses; Liquid tags take bare arguments. Replacing each
    /// parenthesis with a space keeps every later position where it was. Replaces the opening one
    /// and returns where the closing one is, so what lies between is still rewritten.
    fn abort_message_arguments(&mut self, close: &str) -> Option<usize> {
        let rest = self.rest();
        let spaces = rest.len() - rest.trim_start().len();
        if !rest[spaces..].starts_with('(') {
            return None;
        }
        self.copy(spaces);
        self.text.push(' ');
        self.pos += 1;
        let rest = self.rest();
        let end = rest.find(close).unwrap_or(rest.len());
        let mut in_quote: Option<char> = None;
        let mut closing = None;
        for (at, c) in rest[..end].char_indices() {
            match (in_quote, c) {
                (Some(q), c) if c == q => in_quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => in_quote = Some(c),
                (None, ')') => closing = Some(at),
                _ => {}
            }
        }
        closing.map(|at| self.pos + at)
    }

    /// Rewrites one `${…}` (the cursor is on the `$`), folding a Braze namespace written in front
    /// of it (`custom_attribute.`) into the reserved root.
    fn reference(&mut self) -> Result<(), SyntaxError> {
        let dollar = self.pos;
        let body_start = dollar + 2;
        let rest = &self.source[body_start..];
        let Some(len) = rest.find(['}', '\n', '{']) else {
            return Err(SyntaxError {
                offset: dollar,
                message: "\"${\" is never closed with \"}\"".into(),
            });
        };
        if rest.as_bytes()[len] != b'}' {
            return Err(SyntaxError {
                offset: dollar,
                message: "\"${\" is never closed with \"}\"".into(),
            });
        }
        let name = rest[..len].trim();
        let body_end = body_start + len + 1;
        if name.is_empty() {
            return Err(SyntaxError {
                offset: dollar,
                message: "\"${}\" names no attribute".into(),
            });
        }
        let segments: Vec<&str> = name.split('.').map(str::trim).collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(SyntaxError {
                offset: dollar,
                message: format!("\"${{{name}}}\" has an empty part"),
            });
        }
        let mut path = String::new();
        for segment in &segments {
            push_segment(&mut path, segment).map_err(|message| SyntaxError {
                offset: dollar,
                message,
            })?;
        }

        let (root, consumed) = match trailing_namespace(&self.text) {
            Trailing::Namespace(namespace) => match namespace_root(namespace) {
                Some(root) => (root.to_owned(), namespace.len() + 1),
                // An unknown namespace (a loop variable, `subscribed_state`, …) keeps its name.
                None => (namespace.to_owned(), namespace.len() + 1),
            },
            Trailing::Dot => (String::new(), 1),
            Trailing::Nothing => (USER_ROOT.to_owned(), 0),
        };
        self.text.truncate(self.text.len() - consumed);
        let translated_start = self.text.len();
        self.text.push_str(&root);
        self.text.push_str(&path);
        self.rewrites.push(Rewrite {
            translated_start,
            translated_end: self.text.len(),
            original_start: dollar - consumed,
            original_end: body_end,
        });
        self.pos = body_end;
        Ok(())
    }
}

/// What the Liquid written just before a `${` says about it.
enum Trailing<'t> {
    /// `namespace.` with the namespace starting a path: `custom_attribute.${…}`.
    Namespace(&'t str),
    /// A `.` continuing a longer path: `custom_attribute.${address}.${city}`.
    Dot,
    /// A bare `${first_name}`.
    Nothing,
}

fn trailing_namespace(text: &str) -> Trailing<'_> {
    let Some(before_dot) = text.strip_suffix('.') else {
        return Trailing::Nothing;
    };
    let ident_len = before_dot
        .bytes()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (head, ident) = before_dot.split_at(before_dot.len() - ident_len);
    // `a.b.${c}` continues the path `a.b`; only a name that starts a path is a namespace.
    let starts_path = !matches!(head.bytes().last(), Some(b'.' | b']'));
    let is_identifier = ident
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !ident.is_empty() && starts_path && is_identifier {
        Trailing::Namespace(ident)
    } else {
        Trailing::Dot
    }
}

/// Appends one path segment as `.name` when Liquid accepts it bare, `[3]` for an index, and
/// `["odd name"]` otherwise (attribute names may hold spaces).
fn push_segment(path: &mut String, segment: &str) -> Result<(), String> {
    let bytes = segment.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        path.push('[');
        path.push_str(segment);
        path.push(']');
    } else if is_plain_name(segment) {
        path.push('.');
        path.push_str(segment);
    } else if !segment.contains('"') {
        path.push_str("[\"");
        path.push_str(segment);
        path.push_str("\"]");
    } else if !segment.contains('\'') {
        path.push_str("['");
        path.push_str(segment);
        path.push_str("']");
    } else {
        return Err(format!(
            "attribute name {segment:?} holds both kinds of quote"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(source: &str) -> String {
        translate(source).unwrap().text
    }

    #[test]
    fn a_bare_reference_becomes_a_standard_attribute() {
        assert_eq!(text("Hi {{${first_name}}}!"), "Hi {{__user.first_name}}!");
        assert_eq!(
            text("{{ ${first_name} | default: 'you' }}"),
            "{{ __user.first_name | default: 'you' }}"
        );
    }

    #[test]
    fn namespaces_fold_into_their_reserved_roots() {
        assert_eq!(
            text("{{custom_attribute.${plan}}}"),
            "{{__custom_attribute.plan}}"
        );
        assert_eq!(text("{{context.${k}}}"), "{{__canvas_entry_properties.k}}");
        assert_eq!(
            text("{{campaign.${dispatch_id}}}"),
            "{{__campaign.dispatch_id}}"
        );
    }

    #[test]
    fn nested_references_become_paths() {
        assert_eq!(
            text("{{custom_attribute.${address.city}}}"),
            "{{__custom_attribute.address.city}}"
        );
        assert_eq!(
            text("{{custom_attribute.${address}.city}}"),
            "{{__custom_attribute.address.city}}"
        );
        assert_eq!(
            text("{{custom_attribute.${address}.${city}}}"),
            "{{__custom_attribute.address.city}}"
        );
        assert_eq!(
            text("{{custom_attribute.${Favorite Color}}}"),
            "{{__custom_attribute[\"Favorite Color\"]}}"
        );
        assert_eq!(
            text("{{event_properties.${items.0}}}"),
            "{{__event_properties.items[0]}}"
        );
    }

    #[test]
    fn plain_text_and_string_literals_are_left_alone() {
        assert_eq!(
            text("cost: ${price} {{ 'a ${b}' }}"),
            "cost: ${price} {{ 'a ${b}' }}"
        );
        assert_eq!(
            text("{% raw %}{{${x}}}{% endraw %}"),
            "{% raw %}{{${x}}}{% endraw %}"
        );
    }

    #[test]
    fn abort_message_parentheses_become_spaces() {
        assert_eq!(
            text("{% abort_message('no (plan)') %}"),
            "{% abort_message 'no (plan)'  %}"
        );
        assert_eq!(text("{% abort_message() %}"), "{% abort_message   %}");
        assert_eq!(text("{%- abort_message -%}"), "{%- abort_message -%}");
        assert_eq!(
            text("{% abort_message(${first_name}) %}"),
            "{% abort_message __user.first_name  %}"
        );
    }

    #[test]
    fn positions_map_back_through_rewrites() {
        let translated = translate("{{custom_attribute.${plan}}} {{ x }}").unwrap();
        let x_in_translation = translated.text.find(" x ").unwrap() + 1;
        assert_eq!(
            translated.original_offset(x_in_translation),
            "{{custom_attribute.${plan}}} {{ ".len()
        );
        assert_eq!(translated.original_offset(3), 2);
    }

    #[test]
    fn an_unclosed_reference_is_an_error_at_its_dollar() {
        let error = translate("ab {{ ${first_name\n}}").unwrap_err();
        assert_eq!(error.offset, 6);
        let error = translate("{{ ${first_name").unwrap_err();
        assert_eq!(error.offset, 3);
    }
}
