//! The Braze filters Herald adds to Shopify's standard ones: escaping for JSON and URLs, hashes and
//! HMAC signatures, JSON parsing, hash access, number formatting, and Braze's `default`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fmt;

use hmac::digest::KeyInit;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};
use liquid_core::error::{Error, Result};
use liquid_core::model::{Value, ValueView};
use liquid_core::parser::{FilterArguments, FilterParametersReflection, ParameterReflection};
use liquid_core::{
    Display_filter, Expression, Filter, FilterParameters, FilterReflection, FromFilterParameters,
    ParseFilter, Runtime,
};
use sha2::Digest;

/// A filter that takes no argument and maps the input's text to new text.
macro_rules! text_filter {
    ($parser:ident, $filter:ident, $name:literal, $description:literal, $apply:expr) => {
        #[derive(Clone, ParseFilter, FilterReflection)]
        #[filter(name = $name, description = $description, parsed($filter))]
        pub(super) struct $parser;

        #[derive(Debug, Default, Display_filter)]
        #[name = $name]
        struct $filter;

        impl Filter for $filter {
            fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
                let apply: fn(&str) -> String = $apply;
                Ok(Value::scalar(apply(input.to_kstr().as_str())))
            }
        }
    };
}

#[derive(Debug, FilterParameters)]
struct KeyArgs {
    #[parameter(description = "The secret key to sign with.", arg_type = "str")]
    key: Expression,
}

fn hmac_bytes<D: Digest + BlockSizeUser>(key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    let mut mac = <SimpleHmac<D> as KeyInit>::new_from_slice(key)
        .map_err(|_| Error::with_msg("the HMAC key is not usable"))?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// One of the HMAC filters: `{{ text | hmac_sha256_hex: key }}` and its siblings differ only in
/// the digest and the output encoding, so one parser type serves them all.
#[derive(Clone, Copy, Debug)]
pub(super) struct HmacParser {
    name: &'static str,
    description: &'static str,
    sign: fn(&[u8], &[u8]) -> Result<String>,
}

/// `hmac_sha1_hex`, `hmac_sha1_base64`, `hmac_sha256_hex`, `hmac_sha256_base64` and `hmac_sha512`.
pub(super) const HMAC_FILTERS: [HmacParser; 5] = [
    HmacParser {
        name: "hmac_sha1_hex",
        description: "HMAC-SHA1 of the text with the given key, in hex.",
        sign: |key, text| Ok(hex::encode(hmac_bytes::<sha1::Sha1>(key, text)?)),
    },
    HmacParser {
        name: "hmac_sha1_base64",
        description: "HMAC-SHA1 of the text with the given key, in Base64.",
        sign: |key, text| Ok(BASE64.encode(hmac_bytes::<sha1::Sha1>(key, text)?)),
    },
    HmacParser {
        name: "hmac_sha256_hex",
        description: "HMAC-SHA256 of the text with the given key, in hex.",
        sign: |key, text| Ok(hex::encode(hmac_bytes::<sha2::Sha256>(key, text)?)),
    },
    HmacParser {
        name: "hmac_sha256_base64",
        description: "HMAC-SHA256 of the text with the given key, in Base64.",
        sign: |key, text| Ok(BASE64.encode(hmac_bytes::<sha2::Sha256>(key, text)?)),
    },
    HmacParser {
        name: "hmac_sha512",
        description: "HMAC-SHA512 of the text with the given key, in hex.",
        sign: |key, text| Ok(hex::encode(hmac_bytes::<sha2::Sha512>(key, text)?)),
    },
];

impl FilterReflection for HmacParser {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        <KeyArgs as FilterParametersReflection>::positional_parameters()
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        <KeyArgs as FilterParametersReflection>::keyword_parameters()
    }
}

impl ParseFilter for HmacParser {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(HmacFilter {
            parser: *self,
            args: KeyArgs::from_args(arguments)?,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct HmacFilter {
    parser: HmacParser,
    args: KeyArgs,
}

impl fmt::Display for HmacFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parser.name, self.args)
    }
}

impl Filter for HmacFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        Ok(Value::scalar((self.parser.sign)(
            args.key.as_bytes(),
            input.to_kstr().as_bytes(),
        )?))
    }
}

/// The string's content as it must appear between the quotes of a JSON string literal.
pub(super) fn json_string_content(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Percent-encodes every byte of `text` except those `keep` allows.
fn percent_encode(text: &str, keep: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

/// A whole URL keeps its structure (`:/?&=` …); only what may not appear in one is escaped.
fn is_url_safe(byte: u8) -> bool {
    is_unreserved(byte) || b"!*'();/?:@&=+$,[]".contains(&byte)
}

text_filter!(
    JsonEscape,
    JsonEscapeFilter,
    "json_escape",
    "Escapes text for use inside a JSON string literal.",
    json_string_content
);
text_filter!(
    UrlEscape,
    UrlEscapeFilter,
    "url_escape",
    "Percent-encodes what may not appear in a URL.",
    |text| percent_encode(text, is_url_safe)
);
text_filter!(
    UrlParamEscape,
    UrlParamEscapeFilter,
    "url_param_escape",
    "Percent-encodes everything but unreserved characters, for a URL query value.",
    |text| percent_encode(text, is_unreserved)
);
text_filter!(
    Md5,
    Md5Filter,
    "md5",
    "The MD5 digest of the text, in hex.",
    |text| hex::encode(md5::Md5::digest(text))
);
text_filter!(
    Sha1,
    Sha1Filter,
    "sha1",
    "The SHA-1 digest of the text, in hex.",
    |text| hex::encode(sha1::Sha1::digest(text))
);
text_filter!(
    Sha2,
    Sha2Filter,
    "sha2",
    "The SHA-256 digest of the text, in hex.",
    |text| hex::encode(sha2::Sha256::digest(text))
);
text_filter!(
    Base64Encode,
    Base64EncodeFilter,
    "base64_encode",
    "The text in standard Base64.",
    |text| BASE64.encode(text)
);

/// Braze's `default`: replaces nil, `false`, and empty strings, arrays and hashes, but not a
/// string of spaces (that is a value the marketer may want).
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "default",
    description = "The argument when the input is nil, false or empty.",
    parameters(DefaultArgs),
    parsed(DefaultFilter)
)]
pub(super) struct Default;

#[derive(Debug, FilterParameters)]
struct DefaultArgs {
    #[parameter(description = "The value to use instead.")]
    fallback: Expression,
}

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "default"]
struct DefaultFilter {
    #[parameters]
    args: DefaultArgs,
}

/// Whether Braze's `default` replaces this value.
pub(super) fn is_defaultable(value: &dyn ValueView) -> bool {
    if value.is_nil() {
        true
    } else if let Some(array) = value.as_array() {
        array.size() == 0
    } else if let Some(object) = value.as_object() {
        object.size() == 0
    } else if let Some(scalar) = value.as_scalar() {
        scalar.to_bool() == Some(false)
            || (scalar.to_bool().is_none() && scalar.to_kstr().is_empty())
    } else {
        // `empty` and `blank` literals.
        value.is_state()
    }
}

impl Filter for DefaultFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        Ok(if is_defaultable(input) {
            args.fallback.to_value()
        } else {
            input.to_value()
        })
    }
}

/// `json_parse`: JSON text to a value the template can index with dots.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "json_parse",
    description = "Parses JSON text into an object or array; invalid JSON is nil.",
    parsed(JsonParseFilter)
)]
pub(super) struct JsonParse;

#[derive(Debug, Default, Display_filter)]
#[name = "json_parse"]
struct JsonParseFilter;

impl Filter for JsonParseFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        // Invalid JSON (often a missing attribute) is nil, like every other missing value.
        match serde_json::from_str::<serde_json::Value>(input.to_kstr().as_str()) {
            Ok(json) => liquid_core::to_value(&json),
            Err(_) => Ok(Value::Nil),
        }
    }
}

/// `as_json_string`: any value as JSON text.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "as_json_string",
    description = "The value as JSON text.",
    parsed(AsJsonStringFilter)
)]
pub(super) struct AsJsonString;

#[derive(Debug, Default, Display_filter)]
#[name = "as_json_string"]
struct AsJsonStringFilter;

impl Filter for AsJsonStringFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        let json = serde_json::to_string(&input.to_value())
            .map_err(|error| Error::with_msg(format!("cannot write JSON: {error}")))?;
        Ok(Value::scalar(json))
    }
}

/// `property_accessor`: `{{ hash | property_accessor: key }}`, for keys held in variables.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "property_accessor",
    description = "The hash's value under the given key.",
    parameters(PropertyArgs),
    parsed(PropertyAccessorFilter)
)]
pub(super) struct PropertyAccessor;

#[derive(Debug, FilterParameters)]
struct PropertyArgs {
    #[parameter(description = "The key to look up.")]
    key: Expression,
}

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "property_accessor"]
struct PropertyAccessorFilter {
    #[parameters]
    args: PropertyArgs,
}

impl Filter for PropertyAccessorFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let found = if let Some(object) = input.as_object() {
            object
                .get(args.key.to_kstr().as_str())
                .map(ValueView::to_value)
        } else if let Some(array) = input.as_array() {
            args.key
                .as_scalar()
                .and_then(|key| key.to_integer())
                .and_then(|index| array.get(index))
                .map(ValueView::to_value)
        } else {
            None
        };
        Ok(found.unwrap_or(Value::Nil))
    }
}

/// `number_with_delimiter`: 1234567 → `1,234,567` (decimals kept as they are).
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "number_with_delimiter",
    description = "Groups the whole part of a number in thousands with commas.",
    parsed(NumberWithDelimiterFilter)
)]
pub(super) struct NumberWithDelimiter;

#[derive(Debug, Default, Display_filter)]
#[name = "number_with_delimiter"]
struct NumberWithDelimiterFilter;

impl Filter for NumberWithDelimiterFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        Ok(Value::scalar(with_delimiter(input.to_kstr().trim())))
    }
}

/// Inserts commas into the whole part of a decimal number; anything else comes back unchanged.
pub(super) fn with_delimiter(number: &str) -> String {
    let (sign, unsigned) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let is_number = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !is_number {
        return number.to_owned();
    }
    let mut grouped = String::with_capacity(number.len() + whole.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_group_the_whole_part_only() {
        assert_eq!(with_delimiter("1234567"), "1,234,567");
        assert_eq!(with_delimiter("-1234.5678"), "-1,234.5678");
        assert_eq!(with_delimiter("123"), "123");
        assert_eq!(with_delimiter("1000"), "1,000");
        assert_eq!(with_delimiter("abc"), "abc");
    }

    #[test]
    fn url_param_escape_leaves_only_unreserved_characters() {
        assert_eq!(
            percent_encode("a b&c=d/é~", is_unreserved),
            "a%20b%26c%3Dd%2F%C3%A9~"
        );
        assert_eq!(
            percent_encode("https://x.test/a b?q=1#f", is_url_safe),
            "https://x.test/a%20b?q=1%23f"
        );
    }

    #[test]
    fn json_string_content_has_no_surrounding_quotes() {
        assert_eq!(
            json_string_content("say \"hi\"\\\n"),
            "say \\\"hi\\\"\\\\\\n"
        );
    }
}
