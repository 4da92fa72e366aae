//! An object of attributes written straight into a request body as they are found: one member per
//! name, in the order names are first seen, the first 100 MoEngage keeps.
//!
//! A name seen again is rare; only then is the body edited in place. Everything else is written
//! once, where it ends up, with no list of values built first.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};

use moengage::MAX_ATTRIBUTES;

use crate::event::write_str;
use crate::keep;
use crate::warning::Warning;

/// Which source wins when two give an attribute of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    PassedThrough,
    Renamed,
    Declared,
}

/// Where one written member is in the body: its name's opening quote, its value's first byte, and
/// the byte after its value.
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: usize,
    value: usize,
    end: usize,
    priority: Priority,
}

/// Up to this many attributes a name is looked for by a linear search; past it, by its hash.
const LINEAR_LOOKUP_LIMIT: usize = 24;

/// The members of one attributes object, written into `out` after whatever it holds (the caller
/// writes the braces). For a repeated name the higher priority wins, and among equals the later
/// (as JSON parsers treat duplicate keys); the member keeps the place its name was first seen at.
pub(crate) struct AttributeWriter<'o> {
    out: &'o mut Vec<u8>,
    entries: Vec<Entry>,
    /// One bit per name seen, from its length and edges (see [`name_bit`]): a name whose bit is
    /// clear is new without a search, as most are.
    present: u64,
    /// Past [`LINEAR_LOOKUP_LIMIT`] entries: the first entry of each hash of a written name.
    index: Option<HashMap<u64, usize>>,
    /// Names past MoEngage's 100, in the order they were first seen: left out, and warned about.
    left_out: Vec<String>,
    /// The same names, to know a repeat of one at once however many there are.
    left_out_names: HashSet<String>,
}

/// A name's bit in [`AttributeWriter::present`].
fn name_bit(name: &str) -> u64 {
    1 << crate::scan::name_slot(name)
}

fn hash_of(written_name: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    written_name.hash(&mut hasher);
    hasher.finish()
}

impl<'o> AttributeWriter<'o> {
    /// A writer for about `capacity` attributes.
    pub(crate) fn new(out: &'o mut Vec<u8>, capacity: usize) -> Self {
        AttributeWriter {
            out,
            entries: Vec::with_capacity(capacity),
            present: 0,
            index: None,
            left_out: Vec::new(),
            left_out_names: HashSet::new(),
        }
    }

    /// Whether no attribute has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds attribute `name` (a name MoEngage keeps as it is) of `priority`, its value JSON text
    /// that `value` appends, called only when the value is written.
    pub(crate) fn insert(&mut self, name: &str, priority: Priority, value: impl FnOnce(&mut Vec<u8>)) {
        let mark = self.out.len();
        if !self.entries.is_empty() {
            self.out.push(b',');
        }
        let name_at = self.out.len();
        write_str(self.out, name);
        let name_end = self.out.len();
        let bit = name_bit(name);
        if self.present & bit != 0 {
            if let Some(position) = self.written(name_at, name_end) {
                self.replace(position, mark, priority, value);
                return;
            }
            if self.left_out_names.contains(name) {
                self.out.truncate(mark);
                return;
            }
        }
        self.present |= bit;
        if self.entries.len() >= MAX_ATTRIBUTES {
            self.left_out.push(name.to_owned());
            self.left_out_names.insert(name.to_owned());
            self.out.truncate(mark);
            return;
        }
        self.out.push(b':');
        let value_at = self.out.len();
        value(self.out);
        let entry = Entry { name: name_at, value: value_at, end: self.out.len(), priority };
        if let Some(index) = &mut self.index {
            index.entry(hash_of(&self.out[name_at..name_end])).or_insert(self.entries.len());
        }
        self.entries.push(entry);
        if self.index.is_none() && self.entries.len() > LINEAR_LOOKUP_LIMIT {
            let out = &*self.out;
            let mut index = HashMap::with_capacity(self.entries.len() * 2);
            for (position, entry) in self.entries.iter().enumerate() {
                let written = out.get(entry.name..entry.value - 1).unwrap_or_default();
                index.entry(hash_of(written)).or_insert(position);
            }
            self.index = Some(index);
        }
    }

    /// The entry whose name is written as `out[name_at..name_end]` is, if any.
    fn written(&self, name_at: usize, name_end: usize) -> Option<usize> {
        let out = &*self.out;
        let written = out.get(name_at..name_end)?;
        // Written names are equal exactly when the names are: escaping is one-to-one.
        let same = |entry: &Entry| out.get(entry.name..entry.value - 1).is_some_and(|name| crate::scan::same_bytes(name, written));
        let Some(index) = &self.index else { return self.entries.iter().position(same) };
        // Every written name's hash is in the index: a hash not there is a new name.
        match index.get(&hash_of(written)) {
            None => None,
            Some(&position) if self.entries.get(position).is_some_and(same) => Some(position),
            // A hash two names share: the other one's entry, searched for.
            Some(_) => self.entries.iter().position(same),
        }
    }

    /// A name seen before, at entry `position`, written again from `mark` on: its value replaces
    /// the entry's when `priority` is at least the entry's, and the repeat is taken back.
    #[cold]
    fn replace(&mut self, position: usize, mark: usize, priority: Priority, value: impl FnOnce(&mut Vec<u8>)) {
        self.out.truncate(mark);
        let Some(entry) = self.entries.get(position).copied() else { return };
        if priority < entry.priority {
            return;
        }
        let mut written = Vec::new();
        value(&mut written);
        self.out.splice(entry.value..entry.end, written.iter().copied());
        let end = entry.value + written.len();
        if let Some(replaced) = self.entries.get_mut(position) {
            replaced.end = end;
            replaced.priority = priority;
        }
        let later = self.entries.iter_mut().skip(position + 1);
        if end > entry.end {
            let grown = end - entry.end;
            later.for_each(|entry| (entry.name, entry.value, entry.end) = (entry.name + grown, entry.value + grown, entry.end + grown));
        } else if end < entry.end {
            let shrunk = entry.end - end;
            later.for_each(|entry| (entry.name, entry.value, entry.end) = (entry.name - shrunk, entry.value - shrunk, entry.end - shrunk));
        }
    }

    /// Ends the object: the warning for attributes past MoEngage's 100, if any were left out.
    pub(crate) fn finish(self, warnings: &mut Vec<Warning>) {
        if !self.left_out.is_empty() {
            let names: Vec<&str> = self.left_out.iter().map(String::as_str).collect();
            warnings.push(keep::too_many(&names));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_one_value_per_name_as_a_plain_list_would() {
        let priorities = [Priority::PassedThrough, Priority::Renamed, Priority::Declared];
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Few distinct names of like lengths and edges, many inserted twice or more: past the
        // linear search's limit and below it, and past MoEngage's 100. Values of every length, so
        // that a replaced value moves the members after it either way.
        for count in [5, 20, 24, 25, 60, 130, 1500] {
            let names: Vec<String> = (0..count).map(|n| format!("a{}{}\"é", "x".repeat(n % 3), n)).collect();
            let mut out = b"{\"before\":1,\"attributes\":{".to_vec();
            let mut writer = AttributeWriter::new(&mut out, 4);
            let mut model: Vec<(String, String, Priority)> = Vec::new();
            for step in 0..count * 3 {
                let name = &names[usize::try_from(next() % u64::try_from(count).unwrap_or(1)).unwrap_or(0)];
                let priority = priorities[usize::try_from(next() % 3).unwrap_or(0)];
                let value = "7".repeat(usize::try_from(next() % 6).unwrap_or(0) + 1) + &step.to_string();
                writer.insert(name, priority, |out| out.extend_from_slice(value.as_bytes()));
                match model.iter_mut().find(|(known, _, _)| known == name) {
                    Some(entry) if priority >= entry.2 => (entry.1, entry.2) = (value, priority),
                    Some(_) => {}
                    None => model.push((name.clone(), value, priority)),
                }
            }
            let mut warnings = Vec::new();
            writer.finish(&mut warnings);
            out.push(b'}');
            let mut expected = b"{\"before\":1,\"attributes\":{".to_vec();
            for (at, (name, value, _)) in model.iter().take(MAX_ATTRIBUTES).enumerate() {
                if at > 0 {
                    expected.push(b',');
                }
                write_str(&mut expected, name);
                expected.push(b':');
                expected.extend_from_slice(value.as_bytes());
            }
            expected.push(b'}');
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected), "{count} names");
            assert_eq!(warnings.len(), usize::from(model.len() > MAX_ATTRIBUTES), "{count} names");
        }
    }
}
