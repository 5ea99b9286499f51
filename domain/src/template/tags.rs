//! Herald's own tags: Braze's `{% abort_message %}`, and a `{% for %}` that counts its iterations
//! and never materialises a range, so `(1..1000000000)` cannot exhaust a worker.

use std::io::Write;

use liquid_core::error::{Error, Result, ResultLiquidExt};
use liquid_core::model::{Object, Value, ValueCow, ValueView};
use liquid_core::parser::{BlockElement, TryMatchToken};
use liquid_core::runtime::{Interrupt, InterruptRegister};
use liquid_core::{
    BlockReflection, Expression, Language, ParseBlock, ParseTag, Renderable, Runtime, TagBlock,
    TagReflection, TagTokenIter, Template,
};

use super::runtime::{LimitHit, LoopFrame, MAX_LOOP_ITERATIONS, Signals, hit_limit, stopped};

/// `{% abort_message %}` / `{% abort_message 'why' %}` (the parenthesised Braze form is rewritten
/// to this one before parsing).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct AbortMessageTag;

impl TagReflection for AbortMessageTag {
    fn tag(&self) -> &str {
        "abort_message"
    }

    fn description(&self) -> &str {
        "Stops rendering: the message is not sent, and the optional reason is recorded."
    }
}

impl ParseTag for AbortMessageTag {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        _options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let reason = match arguments.next() {
            Some(token) => Some(token.expect_value().into_result()?),
            None => None,
        };
        arguments.expect_nothing()?;
        Ok(Box::new(AbortMessage { reason }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct AbortMessage {
    reason: Option<Expression>,
}

impl Renderable for AbortMessage {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let reason = match &self.reason {
            Some(reason) => {
                let reason = reason.evaluate(runtime)?.to_kstr().into_owned();
                (!reason.trim().is_empty()).then(|| reason.to_string())
            }
            None => None,
        };
        runtime.registers().get_mut::<Signals>().aborted = Some(reason);
        // An error is the only way to unwind every enclosing block; `Template::render` recognises
        // it by the signal just set.
        Err(Error::with_msg("abort_message"))
    }
}

/// `{% for item in collection %}` / `{% for i in (a..b) %}` with `limit:`, `offset:`,
/// `reversed` and `{% else %}`, like Shopify's.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ForBlock;

impl BlockReflection for ForBlock {
    fn start_tag(&self) -> &str {
        "for"
    }

    fn end_tag(&self) -> &str {
        "endfor"
    }

    fn description(&self) -> &str {
        "Renders its body once per item of an array, hash or range, within Herald's loop budget."
    }
}

impl ParseBlock for ForBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut block: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let name = arguments
            .expect_next("a loop variable name expected")?
            .expect_identifier()
            .into_result()?;
        arguments
            .expect_next("\"in\" expected")?
            .expect_str("in")
            .into_result_custom_msg("\"in\" expected")?;
        let source = match arguments
            .expect_next("an array or a range expected")?
            .expect_value()
        {
            TryMatchToken::Matches(collection) => Source::Collection(collection),
            TryMatchToken::Fails(token) => match token.expect_range() {
                TryMatchToken::Matches((start, end)) => Source::Range(start, end),
                TryMatchToken::Fails(token) => return Err(token.raise_error()),
            },
        };

        let (mut limit, mut offset, mut reversed) = (None, None, false);
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "limit" => limit = Some(option_value(&mut arguments)?),
                "offset" => offset = Some(option_value(&mut arguments)?),
                "reversed" => reversed = true,
                _ => {
                    return Err(
                        token.raise_custom_error("\"limit\", \"offset\" or \"reversed\" expected")
                    );
                }
            }
        }
        arguments.expect_nothing()?;

        let mut body = Vec::new();
        let mut otherwise = None;
        while let Some(element) = block.next()? {
            match element {
                BlockElement::Tag(mut tag) if tag.name() == "else" => {
                    tag.tokens().expect_nothing()?;
                    otherwise = Some(Template::new(block.parse_all(options)?));
                    break;
                }
                BlockElement::Tag(tag) => body.push(tag.parse(&mut block, options)?),
                element => body.push(element.parse(&mut block, options)?),
            }
        }
        block.assert_empty();

        Ok(Box::new(For {
            name: name.to_owned(),
            source,
            limit,
            offset,
            reversed,
            body: Template::new(body),
            otherwise,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

/// The value after `limit` or `offset`, past its colon.
fn option_value(arguments: &mut TagTokenIter<'_>) -> Result<Expression> {
    arguments
        .expect_next("\":\" expected")?
        .expect_str(":")
        .into_result_custom_msg("\":\" expected")?;
    arguments
        .expect_next("a value expected")?
        .expect_value()
        .into_result()
}

#[derive(Debug)]
enum Source {
    Collection(Expression),
    Range(Expression, Expression),
}

#[derive(Debug)]
struct For {
    name: String,
    source: Source,
    limit: Option<Expression>,
    offset: Option<Expression>,
    reversed: bool,
    body: Template,
    otherwise: Option<Template>,
}

/// A whole number for a range bound or an option; nil (a missing attribute) counts as 0.
fn whole_number(expression: &Expression, runtime: &dyn Runtime, what: &str) -> Result<i64> {
    let value = expression.evaluate(runtime)?;
    if value.is_nil() {
        return Ok(0);
    }
    value
        .as_scalar()
        .and_then(|scalar| {
            scalar
                .to_integer()
                .or_else(|| scalar.to_float().map(|f| f as i64))
        })
        .ok_or_else(|| {
            Error::with_msg(format!(
                "{what} must be a whole number, not {}",
                value.source()
            ))
        })
}

impl Renderable for For {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let offset = match &self.offset {
            Some(offset) => usize::try_from(whole_number(offset, runtime, "offset")?).unwrap_or(0),
            None => 0,
        };
        let limit = match &self.limit {
            Some(limit) => {
                Some(usize::try_from(whole_number(limit, runtime, "limit")?).unwrap_or(0))
            }
            None => None,
        };

        // Either borrowed items of a collection, or the bounds of a range counted on the fly.
        let collection: ValueCow<'_>;
        let pairs: Vec<Value>;
        let mut items: Vec<&dyn ValueView> = Vec::new();
        let mut range_start = 0i64;
        let total = match &self.source {
            Source::Range(start, end) => {
                range_start = whole_number(start, runtime, "range start")?;
                let end = whole_number(end, runtime, "range end")?;
                usize::try_from(i128::from(end) - i128::from(range_start) + 1)
                    .unwrap_or(if end < range_start { 0 } else { usize::MAX })
            }
            Source::Collection(expression) => {
                collection = expression.evaluate(runtime)?;
                if let Some(array) = collection.as_array() {
                    items = array.values().collect();
                } else if let Some(object) = collection.as_object() {
                    // Iterating a hash yields [key, value] pairs, as in Shopify's Liquid.
                    pairs = object
                        .iter()
                        .map(|(key, value)| {
                            Value::Array(vec![Value::scalar(key.into_owned()), value.to_value()])
                        })
                        .collect();
                    items = pairs.iter().map(|pair| pair as &dyn ValueView).collect();
                } else if !collection.is_nil()
                    && !collection.is_state()
                    && !collection.to_kstr().is_empty()
                {
                    items = vec![collection.as_view()];
                }
                items.len()
            }
        };

        let first = offset.min(total);
        let last = match limit {
            Some(limit) => first.saturating_add(limit).min(total),
            None => total,
        };
        let length = last - first;
        if length == 0 {
            if let Some(otherwise) = &self.otherwise {
                otherwise.render_to(writer, runtime).trace("{% else %}")?;
            }
            return Ok(());
        }

        let parentloop = runtime
            .try_get(&[liquid_core::model::ScalarCow::new("forloop")])
            .map(|v| v.to_value());
        for step in 0..length {
            {
                let mut signals = runtime.registers().get_mut::<Signals>();
                signals.iterations += 1;
                if signals.iterations > MAX_LOOP_ITERATIONS {
                    drop(signals);
                    return Err(hit_limit(runtime, LimitHit::Iterations));
                }
            }
            if let Some(error) = stopped(runtime) {
                return Err(error);
            }
            let index = if self.reversed {
                last - 1 - step
            } else {
                first + step
            };
            let counted;
            let item: &dyn ValueView = match self.source {
                Source::Range(..) => {
                    counted = Value::scalar(range_start.saturating_add(index as i64));
                    &counted
                }
                Source::Collection(_) => items[index],
            };
            let scope = LoopFrame {
                parent: runtime,
                name: &self.name,
                item,
                forloop: forloop(step, length, parentloop.clone()),
            };
            self.body.render_to(writer, &scope)?;
            // `break` and `continue` leave an interrupt; only `break` ends the loop early.
            let interrupt = scope.registers().get_mut::<InterruptRegister>().reset();
            if interrupt == Some(Interrupt::Break) {
                break;
            }
        }
        Ok(())
    }
}

/// The `forloop` object of Shopify's Liquid.
fn forloop(step: usize, length: usize, parentloop: Option<Value>) -> Object {
    let (step, length) = (step as i64, length as i64);
    let mut forloop = Object::new();
    forloop.insert("length".into(), Value::scalar(length));
    forloop.insert("index".into(), Value::scalar(step + 1));
    forloop.insert("index0".into(), Value::scalar(step));
    forloop.insert("rindex".into(), Value::scalar(length - step));
    forloop.insert("rindex0".into(), Value::scalar(length - step - 1));
    forloop.insert("first".into(), Value::scalar(step == 0));
    forloop.insert("last".into(), Value::scalar(step == length - 1));
    forloop.insert("parentloop".into(), parentloop.unwrap_or(Value::Nil));
    forloop
}
