//! What a blueprint's source finds in an event: a value's JSON text, borrowed from the event or
//! the blueprint, or built for it. The interpreter finds values; `keep` holds them to MoEngage's
//! limits; both use this, neither the other's.

use std::borrow::Cow;

use crate::event::{JsonKind, Raw, write_str};

/// A value found for a source: JSON text borrowed from the event or blueprint, or built for it.
pub(crate) enum Found<'x> {
    Raw(Raw<'x>),
    Built(String),
}

impl Found<'_> {
    /// The value's text, scanned as the event's own values are.
    pub(crate) fn raw(&self) -> Raw<'_> {
        match self {
            Found::Raw(raw) => *raw,
            Found::Built(text) => Raw::trusted(text),
        }
    }

    /// A value built as JSON text.
    pub(crate) fn built(json: Vec<u8>) -> Found<'static> {
        Found::Built(String::from_utf8(json).unwrap_or_default())
    }

    /// The same value, owning its text.
    pub(crate) fn into_owned(self) -> Found<'static> {
        match self {
            Found::Raw(raw) => {
                let mut out = Vec::with_capacity(raw.get().len());
                raw.write_compact(&mut out);
                Found::built(out)
            }
            Found::Built(text) => Found::Built(text),
        }
    }

    pub(crate) fn json(&self) -> &str {
        match self {
            Found::Raw(raw) => raw.get(),
            Found::Built(text) => text,
        }
    }

    pub(crate) fn kind(&self) -> JsonKind {
        match self {
            Found::Raw(raw) => raw.kind(),
            // Its first byte says: no need to look for escapes, as a whole `Raw` would.
            Found::Built(text) => crate::scan::kind_of(text),
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Found::Raw(raw) => raw.write_compact(out),
            Found::Built(text) => out.extend_from_slice(text.as_bytes()),
        }
    }

    pub(crate) fn as_text(&self) -> Option<Cow<'_, str>> {
        match self.kind() {
            JsonKind::String => Raw::trusted(self.json()).as_str(),
            JsonKind::Number | JsonKind::Bool => Some(Cow::Borrowed(self.json())),
            _ => None,
        }
    }
}

/// A string value, as JSON text.
pub(crate) fn built_string(text: &str) -> Found<'static> {
    // Most need no escape: written as text, they need no UTF-8 check after.
    if crate::scan::plain_prefix(text.as_bytes()) == text.len() {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        out.push_str(text);
        out.push('"');
        return Found::Built(out);
    }
    let mut out = Vec::with_capacity(text.len() + 2);
    write_str(&mut out, text);
    Found::built(out)
}
