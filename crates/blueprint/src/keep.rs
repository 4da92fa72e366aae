//! What MoEngage keeps of a request it answers 200 for (its data tracking policy), applied before
//! sending so that what is sent is what is kept: objects flattened for workspaces without object
//! data, long values, names and arrays cut as MoEngage would cut them, what it would ignore left
//! out. Each change is a warning with its code; a 200 would hide it.

use std::borrow::Cow;

use moengage::{MAX_ARRAY_ITEMS, MAX_ATTRIBUTES, MAX_NAME_CHARS, MAX_VALUE_CHARS, is_url};

use crate::event::{JsonKind, Raw, write_str};
use crate::scan::{ItemMember, ItemSummary};
use crate::found::{Found, built_string};
use crate::warning::{Warning, WarningCode};

/// The longest JSON text of a string that is surely within MoEngage's limit: escapes only lengthen
/// the text, so a string whose JSON (quotes included) is no longer has at most 512 characters.
const SURELY_KEPT_STRING_JSON: usize = MAX_VALUE_CHARS + 2;

/// The first `limit` characters of `text`, when it has more.
fn cut_chars(text: &str, limit: usize) -> Option<&str> {
    // A text of at most `limit` bytes has at most `limit` characters: most names and values stop here.
    if text.len() <= limit {
        return None;
    }
    text.char_indices().nth(limit).map(|(at, _)| &text[..at])
}

/// A long name as a warning shows it: its start.
fn shown(name: &str) -> Cow<'_, str> {
    match cut_chars(name, 40) {
        Some(start) => Cow::Owned(format!("{start}…")),
        None => Cow::Borrowed(name),
    }
}

/// The action name MoEngage stores: a `.` becomes a space, and a name over 200 characters is cut.
pub(crate) fn kept_action<'a>(action: &'a str, warnings: &mut Vec<Warning>) -> Cow<'a, str> {
    let mut kept = Cow::Borrowed(action);
    if action.contains('.') {
        let spaced = action.replace('.', " ");
        warnings.push(Warning {
            code: WarningCode::PeriodInName,
            message: format!(
                "the action name `{}` has a `.`, which MoEngage turns into a space: sent as `{}`",
                shown(action),
                shown(&spaced)
            ),
        });
        kept = Cow::Owned(spaced);
    }
    kept_name(kept, "action", warnings)
}

/// `name` cut to MoEngage's 200 characters, with a warning when it was.
// Inlined for the common case, a name of at most 200 bytes, which is kept as it is.
#[inline(always)]
pub(crate) fn kept_name<'n>(name: Cow<'n, str>, what: &str, warnings: &mut Vec<Warning>) -> Cow<'n, str> {
    if name.len() <= MAX_NAME_CHARS {
        return name;
    }
    cut_name(name, what, warnings)
}

#[inline(never)]
fn cut_name<'n>(name: Cow<'n, str>, what: &str, warnings: &mut Vec<Warning>) -> Cow<'n, str> {
    let Some(cut) = cut_chars(&name, MAX_NAME_CHARS) else { return name };
    warnings.push(Warning {
        code: WarningCode::NameTruncated,
        message: format!(
            "the {what} name `{}` has {} characters; MoEngage keeps {MAX_NAME_CHARS}: sent cut to {MAX_NAME_CHARS}",
            shown(&name),
            name.chars().count()
        ),
    });
    Cow::Owned(cut.to_owned())
}

/// A value as MoEngage keeps it, or `None` where it would ignore it: strings over 512 characters
/// cut (URLs that long left out, as MoEngage refuses them), arrays of one kind of value and at
/// most 50 elements. `name` is the attribute's, for warnings.
pub(crate) fn kept_value<'x>(name: &str, found: Found<'x>, warnings: &mut Vec<Warning>) -> Option<Found<'x>> {
    match found.kind() {
        JsonKind::String => kept_string(name, found, warnings),
        JsonKind::Array => kept_array(name, found, warnings),
        _ => Some(found),
    }
}

/// A string cut to MoEngage's limit, a URL over it refused, or `None`.
enum LongString {
    Url(usize),
    Cut(String, usize),
}

fn long_string(raw: Raw<'_>) -> Option<LongString> {
    if raw.get().len() <= SURELY_KEPT_STRING_JSON {
        return None;
    }
    let text = raw.as_str()?;
    let cut = cut_chars(&text, MAX_VALUE_CHARS)?;
    let characters = text.chars().count();
    Some(if is_url(&text) { LongString::Url(characters) } else { LongString::Cut(cut.to_owned(), characters) })
}

fn kept_string<'x>(name: &str, found: Found<'x>, warnings: &mut Vec<Warning>) -> Option<Found<'x>> {
    match long_string(found.raw()) {
        None => Some(found),
        Some(LongString::Url(characters)) => {
            warnings.push(Warning {
                code: WarningCode::UrlTooLong,
                message: format!(
                    "`{}` is a URL of {characters} characters; MoEngage refuses URLs over {MAX_VALUE_CHARS}: left out",
                    shown(name)
                ),
            });
            None
        }
        Some(LongString::Cut(cut, characters)) => {
            warnings.push(Warning {
                code: WarningCode::ValueTruncated,
                message: format!(
                    "`{}` has {characters} characters; MoEngage keeps {MAX_VALUE_CHARS}: sent cut to {MAX_VALUE_CHARS}",
                    shown(name)
                ),
            });
            Some(built_string(&cut))
        }
    }
}

fn kind_names(kinds: u8) -> String {
    let names: Vec<&str> = [JsonKind::Bool, JsonKind::Number, JsonKind::String, JsonKind::Array, JsonKind::Object]
        .into_iter()
        .filter(|kind| kinds & kind.bit() != 0)
        .map(JsonKind::name)
        .collect();
    names.join(" and ")
}

/// The kinds of an array's items, one bit each: from its scan when it has one.
fn item_kinds(raw: Raw<'_>) -> u8 {
    match raw.item_summary() {
        Some(summary) => summary.kinds,
        None => raw.items().unwrap_or_default().iter().fold(0, |kinds, item| kinds | item.kind().bit()),
    }
}

/// Whether items so summed up are kept as they are.
fn kept_whole(summary: ItemSummary) -> bool {
    summary.kinds.count_ones() <= 1
        && summary.kinds & (JsonKind::Null.bit() | JsonKind::Array.bit()) == 0
        && summary.count as usize <= MAX_ARRAY_ITEMS
        && summary.longest_string as usize <= SURELY_KEPT_STRING_JSON
}

fn mixed(name: &str, kinds: u8) -> Warning {
    let holds = if kinds & !JsonKind::Null.bit() == JsonKind::Array.bit() { "arrays".to_owned() } else { kind_names(kinds) };
    Warning {
        code: WarningCode::MixedArray,
        message: format!("`{}` holds {holds}; MoEngage keeps arrays of one kind of value only: left out", shown(name)),
    }
}

fn kept_array<'x>(name: &str, found: Found<'x>, warnings: &mut Vec<Warning>) -> Option<Found<'x>> {
    let raw = found.raw();
    if raw.item_summary().is_some_and(kept_whole) {
        return Some(found);
    }
    let Ok(items) = raw.items() else { return Some(found) };
    kept_items(name, items.iter(), warnings).map(Found::Built)
}

/// An array of these items as MoEngage keeps it, as JSON text: nulls left out, the first 50,
/// strings cut; `None` (with a warning) when they are not all of one kind of value.
fn kept_items<'r, 'v: 'r>(
    name: &str,
    items: impl Iterator<Item = &'r Raw<'v>> + Clone,
    warnings: &mut Vec<Warning>,
) -> Option<String> {
    let mut summary = ItemSummary::default();
    let mut length = 2;
    for item in items.clone() {
        summary.add(item);
        length += item.get().len() + 1;
    }
    let values = summary.kinds & !JsonKind::Null.bit();
    if values.count_ones() > 1 || values == JsonKind::Array.bit() {
        warnings.push(mixed(name, summary.kinds));
        return None;
    }
    // Built as text from text, so that it need not be checked as UTF-8 after.
    let (mut out, mut kept, mut cut, mut urls, mut count) = (String::with_capacity(length), 0usize, 0usize, 0usize, 0);
    out.push('[');
    for item in items.filter(|item| item.kind() != JsonKind::Null) {
        let long = if summary.longest_string as usize > SURELY_KEPT_STRING_JSON { long_string(*item) } else { None };
        if let Some(LongString::Url(_)) = long {
            urls += 1;
            continue;
        }
        count += 1;
        if kept == MAX_ARRAY_ITEMS {
            continue;
        }
        match long {
            Some(LongString::Cut(text, _)) => {
                cut += 1;
                if kept > 0 {
                    out.push(',');
                }
                let mut quoted = Vec::with_capacity(text.len() + 2);
                write_str(&mut quoted, &text);
                out.push_str(&String::from_utf8_lossy(&quoted));
            }
            _ => {
                if kept > 0 {
                    out.push(',');
                }
                item.push_compact(&mut out);
            }
        }
        kept += 1;
    }
    out.push(']');
    let name = shown(name);
    if count > MAX_ARRAY_ITEMS {
        warnings.push(Warning {
            code: WarningCode::ArrayTruncated,
            message: format!(
                "`{name}` has {count} elements; MoEngage keeps {MAX_ARRAY_ITEMS}: sent the first {MAX_ARRAY_ITEMS}"
            ),
        });
    }
    if cut > 0 {
        warnings.push(Warning {
            code: WarningCode::ValueTruncated,
            message: format!(
                "{cut} element(s) of `{name}` have over {MAX_VALUE_CHARS} characters; MoEngage keeps {MAX_VALUE_CHARS}: sent cut to {MAX_VALUE_CHARS}"
            ),
        });
    }
    if urls > 0 {
        warnings.push(Warning {
            code: WarningCode::UrlTooLong,
            message: format!(
                "{urls} element(s) of `{name}` are URLs over {MAX_VALUE_CHARS} characters, which MoEngage refuses: left out"
            ),
        });
    }
    // Only nulls, or URLs MoEngage refuses: nothing is left to send.
    (kept > 0 || summary.count == 0).then_some(out)
}

/// How a value must be sent to a workspace without object data.
pub(crate) enum Shape {
    /// As it is (a scalar, or an array of scalars).
    Plain,
    /// Flattened: an object, or an array of objects (or of arrays).
    Nested,
    /// Not at all: an array of objects and scalars together.
    Mixed,
}

pub(crate) fn shape(found: &Found<'_>) -> Shape {
    match found.kind() {
        JsonKind::Object => Shape::Nested,
        JsonKind::Array => {
            let kinds = item_kinds(found.raw());
            let containers = kinds & (JsonKind::Object.bit() | JsonKind::Array.bit());
            let scalars = kinds & !(containers | JsonKind::Null.bit());
            match (containers != 0, scalars != 0) {
                (false, _) => Shape::Plain,
                (true, false) => Shape::Nested,
                (true, true) => Shape::Mixed,
            }
        }
        _ => Shape::Plain,
    }
}

/// The warning for a value of [`Shape::Mixed`].
pub(crate) fn mixed_warning(name: &str, found: &Found<'_>) -> Warning {
    mixed(name, item_kinds(found.raw()))
}

/// A flattened attribute being gathered: its values are a list through [`Leaves::values`].
struct Leaf<'n> {
    name: Cow<'n, str>,
    /// Whether it is reached through an array, so sent as one.
    listed: bool,
    /// The array item its last value came from, when taken from an array of objects.
    item: Option<usize>,
    /// Where its first and last values are in [`Leaves::values`].
    first: usize,
    last: usize,
}

/// The attributes a flattening gathers, and every value they hold: one list for all, each value
/// linked to its leaf's next, rather than a list per attribute.
struct Leaves<'n, 't> {
    leaves: Vec<Leaf<'n>>,
    /// Each value, and where its leaf's next value is (`usize::MAX` after its last).
    values: Vec<(Raw<'t>, usize)>,
}

impl<'n, 't> Leaves<'n, 't> {
    /// Adds a scalar value to the leaf named `path` (`name` makes the name of a new one); the
    /// leaf's index.
    fn push(&mut self, path: &str, name: impl FnOnce() -> Cow<'n, str>, raw: Raw<'t>, listed: bool, item: Option<usize>) -> usize {
        match self.leaves.iter().position(|leaf| crate::scan::same_name(&leaf.name, path)) {
            Some(index) => {
                self.push_at(index, raw, listed, item);
                index
            }
            None => {
                let value = self.values.len();
                self.values.push((raw, usize::MAX));
                self.leaves.push(Leaf { name: name(), listed, item, first: value, last: value });
                self.leaves.len() - 1
            }
        }
    }

    /// Adds a scalar value to the leaf at `index`.
    fn push_at(&mut self, index: usize, raw: Raw<'t>, listed: bool, item: Option<usize>) {
        let Some(leaf) = self.leaves.get_mut(index) else { return };
        // A repeated member of one object: the later wins, as JSON parsers read it.
        if (!listed && !leaf.listed) || (item.is_some() && leaf.item == item) {
            if let Some((last, _)) = self.values.get_mut(leaf.last) {
                *last = raw;
            }
        } else {
            leaf.listed = true;
            leaf.item = item;
            let value = self.values.len();
            self.values.push((raw, usize::MAX));
            if let Some((_, next)) = self.values.get_mut(leaf.last) {
                *next = value;
            }
            leaf.last = value;
        }
    }

    /// The values of `leaf`, in order.
    fn of<'l>(&'l self, leaf: &Leaf<'_>) -> impl Iterator<Item = &'l Raw<'t>> + Clone {
        let mut at = leaf.first;
        std::iter::from_fn(move || {
            let (raw, next) = self.values.get(at)?;
            at = *next;
            Some(raw)
        })
    }
}

/// Calls `member` with each member of each object item of the array `raw` (see
/// [`Raw::each_item_member`]): from the members its scan listed in `scanned` when it did, else by
/// walking its text.
fn each_item_member<'t>(raw: Raw<'t>, scanned: &[ItemMember<'t>], mut member: impl FnMut(usize, Option<&str>, Raw<'t>)) {
    match raw.item_members(scanned) {
        Some(listed) => {
            for listed in listed {
                member(listed.item as usize, Some(&listed.name), listed.value);
            }
        }
        None => raw.each_item_member(member),
    }
}

/// Collects the scalars under `raw` into leaves named by their path; `path` is restored after.
/// `item` is the array item the value belongs to (from `items`, a count unique within one
/// flattening), so that a member repeated within one item replaces its value.
fn gather<'t>(
    raw: Raw<'t>,
    scanned: &[ItemMember<'t>],
    path: &mut String,
    listed: bool,
    item: Option<usize>,
    items: &mut usize,
    leaves: &mut Leaves<'_, 't>,
) {
    match raw.kind() {
        JsonKind::Null => {}
        JsonKind::Object => {
            let base = path.len();
            for (key, value) in raw.members().unwrap_or_default() {
                path.push('_');
                path.push_str(&key);
                gather(value, scanned, path, listed, item, items, leaves);
                path.truncate(base);
            }
        }
        JsonKind::Array => {
            let base = path.len();
            let mut current: Option<(usize, usize)> = None;
            each_item_member(raw, scanned, |index, key, value| {
                let id = match current {
                    Some((seen, id)) if seen == index => id,
                    _ => {
                        let id = *items;
                        *items += 1;
                        current = Some((index, id));
                        id
                    }
                };
                if let Some(key) = key {
                    path.push('_');
                    path.push_str(key);
                }
                gather(value, scanned, path, true, Some(id), items, leaves);
                path.truncate(base);
            });
        }
        _ => {
            leaves.push(path, || Cow::Owned(path.clone()), raw, listed, item);
        }
    }
}

/// The attributes a value of [`Shape::Nested`] becomes for a workspace without object data, each
/// held to MoEngage's limits: one per field, named by its path joined with `_` (`address_city`);
/// fields reached through an array become arrays, one per field (`products_sku: ["SKU-1",
/// "SKU-2"]`). `taken` lists the fields the blueprint takes from an array of objects, and the
/// names they are sent under. `scanned`: the event's [`ItemMember`]s, when `raw` is the event's.
pub(crate) fn flattened<'n, 't>(
    name: &str,
    raw: Raw<'t>,
    scanned: &[ItemMember<'t>],
    taken: Option<&'n [(Box<str>, Box<str>)]>,
    warnings: &mut Vec<Warning>,
) -> Vec<(Cow<'n, str>, Found<'t>)> {
    let mut leaves = Leaves {
        leaves: Vec::with_capacity(taken.map_or(8, <[_]>::len)),
        values: Vec::with_capacity(raw.item_members(scanned).map_or(16, <[_]>::len)),
    };
    let mut path = String::new();
    match (taken, raw.kind()) {
        (Some(taken), JsonKind::Array) => {
            // The leaf each taken field's scalars go to, once it has one: no name to compare.
            let mut slots = [usize::MAX; 16];
            each_item_member(raw, scanned, |index, key, value| {
                let Some(field) = key.and_then(|key| taken.iter().position(|(field, _)| crate::scan::same_name(field, key))) else {
                    return;
                };
                let sent = &*taken[field].1;
                match value.kind() {
                    JsonKind::Object | JsonKind::Array => {
                        path.clear();
                        path.push_str(sent);
                        let mut items = usize::MAX / 2;
                        gather(value, scanned, &mut path, true, Some(index), &mut items, &mut leaves);
                    }
                    JsonKind::Null => {}
                    _ => match slots.get(field).copied().filter(|slot| *slot != usize::MAX) {
                        Some(slot) => leaves.push_at(slot, value, true, Some(index)),
                        None => {
                            let slot = leaves.push(sent, || Cow::Borrowed(sent), value, true, Some(index));
                            if let Some(cached) = slots.get_mut(field) {
                                *cached = slot;
                            }
                        }
                    },
                }
            });
        }
        _ => {
            path.push_str(name);
            gather(raw, scanned, &mut path, false, None, &mut 0, &mut leaves);
        }
    }
    let mut kept = Vec::with_capacity(leaves.leaves.len());
    for leaf in &leaves.leaves {
        let value = if leaf.listed {
            kept_items(&leaf.name, leaves.of(leaf), warnings).map(Found::Built)
        } else {
            leaves.values.get(leaf.last).and_then(|(last, _)| kept_value(&leaf.name, Found::Raw(*last), warnings))
        };
        if let Some(value) = value {
            kept.push((leaf.name.clone(), value));
        }
    }
    kept
}

/// The most fields [`PlainTaking`] takes, and the most members it reads.
const PLAIN_FIELDS: usize = 16;
const PLAIN_MEMBERS: usize = 64;
/// No member, in [`PlainTaking`]'s chains.
const NO_MEMBER: u8 = u8::MAX;
/// A name slot of no taken field, and one of two or more.
const NO_FIELD: u8 = u8::MAX;
const SHARED_SLOT: u8 = u8::MAX - 1;

/// [`flattened`] for fields taken from an array of objects in the common case — each a scalar of
/// one kind, at most once per item, at most 50 of them, no string that MoEngage could cut — as
/// each field's chain through the listed members, for its array to be written straight into the
/// body.
// The general path gathers every value into linked leaves and reads each leaf twice, and builds
// each array as a text of its own; nearly every order's products need none of what that allows.
pub(crate) struct PlainTaking {
    /// Each field's first member, and after each member, the next of its field.
    first: [u8; PLAIN_FIELDS],
    next: [u8; PLAIN_MEMBERS],
    /// The fields found, in the order they were first found.
    order: [u8; PLAIN_FIELDS],
    found: usize,
}

impl PlainTaking {
    /// The chains of `taken`'s fields through `listed` (an array's members, as the scan listed
    /// them); `None` when anything else is met, for the general path to decide, warnings included.
    pub(crate) fn of(listed: &[ItemMember<'_>], taken: &[(Box<str>, Box<str>)]) -> Option<PlainTaking> {
        if taken.len() > PLAIN_FIELDS || listed.len() > PLAIN_MEMBERS {
            return None;
        }
        let mut plan = PlainTaking { first: [NO_MEMBER; PLAIN_FIELDS], next: [NO_MEMBER; PLAIN_MEMBERS], order: [0; PLAIN_FIELDS], found: 0 };
        let mut tail = [NO_MEMBER; PLAIN_FIELDS];
        let (mut count, mut kinds) = ([0usize; PLAIN_FIELDS], [0u8; PLAIN_FIELDS]);
        let mut last_item = [u32::MAX; PLAIN_FIELDS];
        // The field of each name slot: a member's name is compared with one field's at most.
        let mut by_slot = [NO_FIELD; 64];
        for (field, (name, _)) in taken.iter().enumerate() {
            if let Some(slot) = by_slot.get_mut(crate::scan::name_slot(name)) {
                *slot = if *slot == NO_FIELD { u8::try_from(field).ok()? } else { SHARED_SLOT };
            }
        }
        for (at, member) in listed.iter().enumerate() {
            let field = match by_slot.get(crate::scan::name_slot(&member.name)).copied() {
                None | Some(NO_FIELD) => continue,
                Some(SHARED_SLOT) => taken.iter().position(|(field, _)| crate::scan::same_name(field, &member.name)),
                Some(field) => {
                    let field = usize::from(field);
                    taken.get(field).is_some_and(|(name, _)| crate::scan::same_name(name, &member.name)).then_some(field)
                }
            };
            let Some(field) = field else { continue };
            let kind = member.value.kind();
            match kind {
                JsonKind::Null => continue,
                JsonKind::Object | JsonKind::Array => return None,
                JsonKind::String if member.value.get().len() > SURELY_KEPT_STRING_JSON => return None,
                _ => {}
            }
            let (Some(last), Some(counted)) = (last_item.get_mut(field), count.get_mut(field)) else { return None };
            // The same field twice in one item: the later value replaces the earlier.
            if *last == member.item {
                return None;
            }
            let (Ok(at), Ok(field_byte)) = (u8::try_from(at), u8::try_from(field)) else { return None };
            if *counted == 0 {
                *plan.order.get_mut(plan.found)? = field_byte;
                plan.found += 1;
            }
            *last = member.item;
            *counted += 1;
            *kinds.get_mut(field)? |= kind.bit();
            match tail.get(field).copied() {
                Some(NO_MEMBER) => *plan.first.get_mut(field)? = at,
                Some(before) => *plan.next.get_mut(usize::from(before))? = at,
                None => return None,
            }
            *tail.get_mut(field)? = at;
        }
        let order = plan.order.get(..plan.found)?;
        for (at, &field) in order.iter().enumerate() {
            let field = usize::from(field);
            if kinds.get(field)?.count_ones() > 1 || *count.get(field)? > MAX_ARRAY_ITEMS {
                return None;
            }
            // Two fields sent under one name share one attribute.
            let sent = &taken.get(field)?.1;
            if order.get(..at)?.iter().any(|&earlier| taken.get(usize::from(earlier)).is_some_and(|(_, other)| crate::scan::same_name(other, sent))) {
                return None;
            }
        }
        Some(plan)
    }

    /// The fields found, as indices into the `taken` the plan was made with, in the order they
    /// were first found: one attribute each.
    pub(crate) fn fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().take(self.found).map(|&field| usize::from(field))
    }

    /// Appends field `field`'s array: its values in the order of the items, as written.
    pub(crate) fn write(&self, field: usize, listed: &[ItemMember<'_>], out: &mut Vec<u8>) {
        out.push(b'[');
        let mut at = self.first.get(field).copied().unwrap_or(NO_MEMBER);
        let mut separator = false;
        while let Some(member) = listed.get(usize::from(at)) {
            if std::mem::replace(&mut separator, true) {
                out.push(b',');
            }
            out.extend_from_slice(member.value.get().as_bytes());
            at = self.next.get(usize::from(at)).copied().unwrap_or(NO_MEMBER);
        }
        out.push(b']');
    }
}

/// The warning for attributes past MoEngage's 100, which are left out.
pub(crate) fn too_many(names: &[&str]) -> Warning {
    let total = MAX_ATTRIBUTES + names.len();
    let listed: Vec<Cow<'_, str>> = names.iter().take(5).map(|name| shown(name)).collect();
    let more = if names.len() > 5 { format!(" and {} more", names.len() - 5) } else { String::new() };
    Warning {
        code: WarningCode::TooManyAttributes,
        message: format!(
            "{total} attributes; MoEngage keeps {MAX_ATTRIBUTES} per event: left out {}{more}",
            listed.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{Member, top_level};

    fn taken() -> Vec<(Box<str>, Box<str>)> {
        [("sku", "product_sku"), ("name", "product_name"), ("price", "product_price"), ("brand", "product_sku")]
            .into_iter()
            .map(|(field, sent)| (field.into(), sent.into()))
            .collect()
    }

    /// The attributes a flattening made (name and JSON text), and its warnings.
    type Flattening = (Vec<(String, String)>, Vec<Warning>);

    fn names_and_texts(kept: Vec<(Cow<'_, str>, Found<'_>)>) -> Vec<(String, String)> {
        kept.into_iter().map(|(name, found)| (name.into_owned(), found.json().to_owned())).collect()
    }

    /// Flattens `products` as the interpreter does (the quick path when it takes them, else the
    /// general one with the members its scan listed), and by walking its text: the attributes and
    /// warnings of each, and whether the quick path took them.
    fn both_ways(products: &str, taken: &[(Box<str>, Box<str>)]) -> ([Flattening; 2], bool) {
        let text = format!(r#"{{"properties":{{"products":{products}}}}}"#);
        let scanned = top_level(&text, ["properties"]).expect("valid");
        let Member::Object(members) = &scanned.objects[0] else { panic!("properties") };
        let raw = members[0].1;
        let plain = raw.item_members(&scanned.item_members).and_then(|listed| Some((PlainTaking::of(listed, taken)?, listed)));
        let quick = match &plain {
            Some((plain, listed)) => {
                let fields = plain.fields().map(|field| {
                    let mut array = Vec::new();
                    plain.write(field, listed, &mut array);
                    (taken[field].1.to_string(), String::from_utf8(array).expect("text"))
                });
                (fields.collect(), Vec::new())
            }
            None => {
                let mut warnings = Vec::new();
                let kept = flattened("products", raw, &scanned.item_members, Some(taken), &mut warnings);
                (names_and_texts(kept), warnings)
            }
        };
        let mut warnings = Vec::new();
        let walked = flattened("products", raw, &[], Some(taken), &mut warnings);
        ([quick, (names_and_texts(walked), warnings)], plain.is_some())
    }

    #[test]
    fn taken_fields_are_the_same_whether_read_quickly_or_by_walking_the_array() {
        let long = "x".repeat(600);
        let cases = [
            r#"[{"sku":"a","name":"n","price":1.5},{"sku":"b","name":"m","price":2}]"#.to_owned(),
            r#"[{"price":1,"sku":"a"},{"sku":"b"},{"name":"only"}]"#.to_owned(),
            r#"[{"sku":"a","sku":"b"},{"sku":"c"}]"#.to_owned(),
            r#"[{"sku":"a","price":null},{"sku":null,"price":3}]"#.to_owned(),
            r#"[{"sku":"a"},{"sku":5}]"#.to_owned(),
            r#"[{"sku":true},{"sku":false}]"#.to_owned(),
            r#"[{"sku":{"id":1}},{"sku":"b"}]"#.to_owned(),
            r#"[{"sku":[1,2]},{"sku":"b"}]"#.to_owned(),
            format!(r#"[{{"sku":"{long}"}},{{"sku":"b"}}]"#),
            format!(r#"[{{"sku":"https://example.com/{long}"}}]"#),
            format!("[{}]", vec![r#"{"sku":"a","price":1}"#; 60].join(",")),
            format!("[{}]", vec![r#"{"sku":"a","other":1}"#; 70].join(",")),
            r#"[{"sku":"a\"b\u00e9"},{"sku":"c"}]"#.to_owned(),
            r#"[{"brand":"x","sku":"a"},{"sku":"b","brand":"y"}]"#.to_owned(),
            r#"[{},{"x":1}]"#.to_owned(),
            "[]".to_owned(),
        ];
        let mut taken_quickly = 0;
        for case in &cases {
            let ([quick, walked], quickly) = both_ways(case, &taken());
            assert_eq!(quick, walked, "{case}");
            taken_quickly += usize::from(quickly);
        }
        // Without the field sent twice under one name, the quick path takes the common cases.
        let distinct: Vec<_> = taken().into_iter().take(3).collect();
        for case in &cases {
            let ([quick, walked], quickly) = both_ways(case, &distinct);
            assert_eq!(quick, walked, "{case}");
            taken_quickly += usize::from(quickly);
        }
        assert!(taken_quickly >= 8, "the quick path took {taken_quickly} cases");
        let ([(kept, warnings), _], quickly) = both_ways(&cases[0], &distinct);
        assert!(quickly && warnings.is_empty());
        assert_eq!(
            kept,
            [
                ("product_sku".to_owned(), r#"["a","b"]"#.to_owned()),
                ("product_name".to_owned(), r#"["n","m"]"#.to_owned()),
                ("product_price".to_owned(), "[1.5,2]".to_owned()),
            ]
        );
    }
}
