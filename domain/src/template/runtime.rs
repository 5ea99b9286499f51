//! The state of one render: variable lookup that treats anything missing as nil, the limits that
//! keep a bad template from hogging a worker, and the signals custom tags leave for the caller.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

use liquid_core::error::{Error, Result};
use liquid_core::model::{
    KString, KStringCow, KStringRef, Object, ObjectView, ScalarCow, Value, ValueCow, ValueView,
    try_find,
};
use liquid_core::runtime::{PartialStore, Registers, Renderable, Runtime};

/// The largest output (and the largest assigned or captured value) one render may produce.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// The most `{% for %}` iterations one render may run, counting nested loops.
pub const MAX_LOOP_ITERATIONS: usize = 10_000;

/// A bound that stopped a render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LimitHit {
    Output,
    Iterations,
}

/// What custom tags and limits report back to [`super::Template::render`]. It lives in the
/// render's registers because errors are the only way to unwind a liquid render, and the caller
/// has to tell an abort or a limit apart from a genuine failure.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// `Some(reason)` once `{% abort_message %}` ran; the reason itself is optional.
    pub aborted: Option<Option<String>>,
    pub limit: Option<LimitHit>,
    pub iterations: usize,
}

/// Records that a bound was hit and returns the error that unwinds the render.
pub(super) fn hit_limit(runtime: &dyn Runtime, limit: LimitHit) -> Error {
    runtime.registers().get_mut::<Signals>().limit = Some(limit);
    Error::with_msg("render limit reached")
}

/// The error a loop returns to stop early once a bound was hit somewhere it could not report one
/// (an oversized `assign` can only be recorded, not raised).
pub(super) fn stopped(runtime: &dyn Runtime) -> Option<Error> {
    let signals = runtime.registers().get_mut::<Signals>();
    (signals.limit.is_some() || signals.aborted.is_some())
        .then(|| Error::with_msg("render stopped"))
}

fn nil<'a>() -> ValueCow<'a> {
    ValueCow::Owned(Value::Nil)
}

/// Herald renders have no partials: templates are self-contained so they can be checked on save.
#[derive(Debug)]
struct NoPartials;

impl PartialStore for NoPartials {
    fn contains(&self, _name: &str) -> bool {
        false
    }

    fn names(&self) -> Vec<&str> {
        Vec::new()
    }

    fn try_get(&self, _name: &str) -> Option<Arc<dyn Renderable>> {
        None
    }

    fn get(&self, name: &str) -> Result<Arc<dyn Renderable>> {
        Err(Error::with_msg("partials are not supported").context("requested", name.to_owned()))
    }
}

/// The bottom of the runtime stack. Unlike the crate's own, a path that leads nowhere is nil
/// rather than an error, because a recipient without an attribute must still get a message.
pub(super) struct RootRuntime<'g> {
    globals: &'g Object,
    assigned: RefCell<Object>,
    indexes: RefCell<Object>,
    registers: Registers,
}

impl<'g> RootRuntime<'g> {
    pub fn new(globals: &'g Object) -> Self {
        Self {
            globals,
            assigned: RefCell::default(),
            indexes: RefCell::default(),
            registers: Registers::default(),
        }
    }

    /// Takes what tags reported during the render.
    pub fn take_signals(&self) -> Signals {
        std::mem::take(&mut *self.registers.get_mut::<Signals>())
    }
}

impl Runtime for RootRuntime<'_> {
    fn partials(&self) -> &dyn PartialStore {
        &NoPartials
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        None
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        let mut roots: BTreeSet<KStringCow<'_>> = ObjectView::keys(self.globals).collect();
        roots.extend(
            self.assigned
                .borrow()
                .keys()
                .map(|key| KStringCow::from_string(key.to_string())),
        );
        roots
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        let key = path.first()?.to_kstr();
        let assigned = self.assigned.borrow();
        if assigned.contains_key(key.as_str()) {
            // Assigned values sit behind a RefCell, so they are handed out as copies.
            return try_find(assigned.as_value(), path)
                .map(|value| ValueCow::Owned(value.into_owned()));
        }
        drop(assigned);
        try_find(self.globals.as_value(), path)
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> Result<ValueCow<'_>> {
        Ok(self.try_get(path).unwrap_or_else(nil))
    }

    fn set_global(&self, name: KString, value: Value) -> Option<Value> {
        // `{% assign s = s | append: s %}` in a loop doubles a string each time: cap what can be
        // stored as well as what is written out.
        let mut budget = MAX_OUTPUT_BYTES;
        if !fits(&value, &mut budget) {
            self.registers.get_mut::<Signals>().limit = Some(LimitHit::Output);
            return self.assigned.borrow_mut().insert(name, Value::Nil);
        }
        self.assigned.borrow_mut().insert(name, value)
    }

    fn set_index(&self, name: KString, value: Value) -> Option<Value> {
        self.indexes.borrow_mut().insert(name, value)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.indexes
            .borrow()
            .get(name)
            .map(|value| ValueCow::Owned(value.to_value()))
    }

    fn registers(&self) -> &Registers {
        &self.registers
    }
}

/// Whether `value` renders within `budget` bytes (roughly: containers count their contents).
fn fits(value: &dyn ValueView, budget: &mut usize) -> bool {
    if let Some(array) = value.as_array() {
        array.values().all(|item| fits(item, budget))
    } else if let Some(object) = value.as_object() {
        object
            .iter()
            .all(|(key, item)| spend(budget, key.len()) && fits(item, budget))
    } else {
        spend(budget, value.to_kstr().len())
    }
}

fn spend(budget: &mut usize, bytes: usize) -> bool {
    match budget.checked_sub(bytes) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    }
}

/// The scope of one `{% for %}` iteration: the loop variable and `forloop`, over the parent.
/// Like the root, a missing key under the loop variable is nil, not an error.
pub(super) struct LoopFrame<'p> {
    pub parent: &'p dyn Runtime,
    pub name: &'p str,
    pub item: &'p dyn ValueView,
    pub forloop: Object,
}

impl LoopFrame<'_> {
    fn local(&self, key: &str) -> Option<&dyn ValueView> {
        if key == self.name {
            Some(self.item)
        } else if key == "forloop" {
            Some(self.forloop.as_value())
        } else {
            None
        }
    }
}

impl Runtime for LoopFrame<'_> {
    fn partials(&self) -> &dyn PartialStore {
        self.parent.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        self.parent.name()
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        let mut roots = self.parent.roots();
        roots.insert(KStringCow::from_ref(self.name));
        roots.insert(KStringCow::from_static("forloop"));
        roots
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        let key = path.first()?.to_kstr();
        match self.local(key.as_str()) {
            Some(value) => try_find(value, &path[1..]),
            None => self.parent.try_get(path),
        }
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> Result<ValueCow<'_>> {
        let Some(first) = path.first() else {
            return Ok(nil());
        };
        match self.local(first.to_kstr().as_str()) {
            Some(value) => Ok(try_find(value, &path[1..]).unwrap_or_else(nil)),
            None => self.parent.get(path),
        }
    }

    fn set_global(&self, name: KString, value: Value) -> Option<Value> {
        self.parent.set_global(name, value)
    }

    fn set_index(&self, name: KString, value: Value) -> Option<Value> {
        self.parent.set_index(name, value)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.parent.get_index(name)
    }

    fn registers(&self) -> &Registers {
        self.parent.registers()
    }
}

/// Collects the output and refuses to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Debug, Default)]
pub(super) struct CappedWriter {
    pub buffer: Vec<u8>,
    pub overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + bytes.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("render output limit reached"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
