//! The Signal event as the interpreter reads it: borrowed from the input line, parsed only as deep
//! as a blueprint needs, with the camelCase names of Segment- and RudderStack-style SDKs accepted.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A string borrowed from the input when it has no escapes.
#[derive(Deserialize)]
struct BorrowedStr<'a>(#[serde(borrow)] Cow<'a, str>);

/// The JSON kind of a raw value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// Of a raw value.
    pub fn of(raw: &RawValue) -> JsonKind {
        match raw.get().trim_start().as_bytes().first() {
            Some(b'"') => JsonKind::String,
            Some(b'{') => JsonKind::Object,
            Some(b'[') => JsonKind::Array,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'n') | None => JsonKind::Null,
            Some(_) => JsonKind::Number,
        }
    }

    /// How error messages name it.
    pub fn name(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        }
    }
}

/// Decodes a raw JSON string, borrowing when it has no escapes.
pub fn decode_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<BorrowedStr<'_>>(raw.get()).ok().map(|s| s.0)
}

/// An object's members in input order, values left unparsed. Later duplicates win on lookup, as in
/// every JSON parser users compare with.
#[derive(Debug, Default)]
pub struct RawObject<'a> {
    /// Members: (name, whether the name was a camelCase alias, value).
    pub members: Vec<(Cow<'a, str>, bool, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Parses a raw value that must be an object.
    pub fn parse(raw: &'a RawValue) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw.get())
    }

    /// The value of member `name`; a canonical spelling beats a camelCase alias.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        let mut alias = None;
        for (key, was_alias, value) in self.members.iter().rev() {
            if key == name {
                if !was_alias {
                    return Some(value);
                }
                alias.get_or_insert(*value);
            }
        }
        alias
    }

    /// Renames camelCase members to their snake_case names (`userId` → `user_id`), remembering that
    /// they were aliases.
    pub fn normalise(&mut self, aliases: &[(&str, &'static str)]) {
        for (key, was_alias, _) in &mut self.members {
            if let Some((_, canonical)) = aliases.iter().find(|(alias, _)| key == alias) {
                *key = Cow::Borrowed(canonical);
                *was_alias = true;
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ObjectVisitor<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<BorrowedStr<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key.0, false, value));
                }
                Ok(RawObject { members })
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// An array's items, left unparsed.
pub struct RawArray<'a>(pub Vec<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for RawArray<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArrayVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ArrayVisitor<'a> {
            type Value = RawArray<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8));
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(RawArray(items))
            }
        }
        deserializer.deserialize_seq(ArrayVisitor(std::marker::PhantomData))
    }
}

/// What kind of call an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    /// `track`: a named event.
    Track,
    /// `page`: a page view, matched in blueprints as `page`.
    Page,
    /// `identify`: traits of a user, matched as `identify`.
    Identify,
}

/// Why an input line is not a usable event (drop code `invalid_event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent(pub String);

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const TOP_LEVEL_ALIASES: &[(&str, &str)] =
    &[("userId", "user_id"), ("anonymousId", "anonymous_id"), ("messageId", "message_id")];
const CONTEXT_ALIASES: &[(&str, &str)] = &[("userAgent", "user_agent")];
const TRAIT_ALIASES: &[(&str, &str)] = &[("firstName", "first_name"), ("lastName", "last_name")];

/// A Signal event, borrowed from its JSON text.
#[derive(Debug)]
pub struct Event<'a> {
    /// The kind of call.
    pub call: CallType,
    /// The name blueprints match on: the `event` of a track call, `page`, or `identify`.
    pub name: Cow<'a, str>,
    /// Top-level members, camelCase names normalised.
    pub top: RawObject<'a>,
    /// `properties`, empty when absent.
    pub properties: RawObject<'a>,
    /// `traits`, or Segment's `context.traits` when there is no top-level `traits`.
    pub traits: RawObject<'a>,
    /// `context`, empty when absent.
    pub context: RawObject<'a>,
    /// `timestamp`, parsed.
    pub timestamp: Option<jiff::Timestamp>,
}

impl<'a> Event<'a> {
    /// Parses and checks one event.
    pub fn parse(text: &'a str) -> Result<Event<'a>, InvalidEvent> {
        check_depth(text)?;
        let mut top: RawObject<'a> = match serde_json::from_str(text) {
            Ok(top) => top,
            Err(error) if error.is_data() => {
                return Err(InvalidEvent("the event is not a JSON object".into()));
            }
            Err(error) => return Err(InvalidEvent(format!("malformed JSON: {error}"))),
        };
        top.normalise(TOP_LEVEL_ALIASES);

        let string_field = |name: &str| -> Result<Option<Cow<'a, str>>, InvalidEvent> {
            match top.get(name) {
                None => Ok(None),
                Some(raw) => match JsonKind::of(raw) {
                    JsonKind::Null => Ok(None),
                    JsonKind::String => Ok(decode_str(raw)),
                    other => Err(wrong_type(name, "a string", other)),
                },
            }
        };
        let call = match string_field("type")?.as_deref() {
            Some("track") => CallType::Track,
            Some("page") => CallType::Page,
            Some("identify") => CallType::Identify,
            None if top.get("event").is_some() => CallType::Track,
            None => return Err(InvalidEvent("`type` is missing: use track, page or identify".into())),
            Some(other) => {
                return Err(InvalidEvent(format!(
                    "`type` is `{other}`: Signal accepts track, page and identify"
                )));
            }
        };
        let name = match call {
            CallType::Track => match string_field("event")? {
                Some(name) if !name.is_empty() => name,
                _ => return Err(InvalidEvent("a track call needs an `event` name".into())),
            },
            CallType::Page => Cow::Borrowed("page"),
            CallType::Identify => Cow::Borrowed("identify"),
        };
        for field in ["name", "message_id", "timestamp"] {
            string_field(field)?;
        }
        for field in ["user_id", "anonymous_id"] {
            if let Some(raw) = top.get(field) {
                let kind = JsonKind::of(raw);
                if !matches!(kind, JsonKind::String | JsonKind::Number | JsonKind::Null) {
                    return Err(wrong_type(field, "a string or a number", kind));
                }
            }
        }
        let timestamp = match string_field("timestamp")? {
            None => None,
            Some(text) => Some(text.parse::<jiff::Timestamp>().map_err(|_| {
                InvalidEvent(format!(
                    "`timestamp` is `{text}`, not an RFC 3339 time such as 2026-11-28T10:15:00Z"
                ))
            })?),
        };
        let object_field = |name: &str| -> Result<RawObject<'a>, InvalidEvent> {
            match top.get(name) {
                None => Ok(RawObject::default()),
                Some(raw) => match JsonKind::of(raw) {
                    JsonKind::Null => Ok(RawObject::default()),
                    JsonKind::Object => {
                        RawObject::parse(raw).map_err(|error| InvalidEvent(format!("`{name}`: {error}")))
                    }
                    other => Err(wrong_type(name, "an object", other)),
                },
            }
        };
        let properties = object_field("properties")?;
        let mut context = object_field("context")?;
        context.normalise(CONTEXT_ALIASES);
        let mut traits = match top.get("traits") {
            Some(_) => object_field("traits")?,
            None => match context.get("traits") {
                Some(raw) if JsonKind::of(raw) == JsonKind::Object => RawObject::parse(raw)
                    .map_err(|error| InvalidEvent(format!("`context.traits`: {error}")))?,
                _ => RawObject::default(),
            },
        };
        traits.normalise(TRAIT_ALIASES);
        Ok(Event { call, name, top, properties, traits, context, timestamp })
    }

    /// A top-level field, by its snake_case name.
    pub fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.top.get(name)
    }

    /// An object field's members, when the path's root is one of the parsed objects.
    pub fn object(&self, name: &str) -> Option<&RawObject<'a>> {
        match name {
            "properties" => Some(&self.properties),
            "traits" => Some(&self.traits),
            "context" => Some(&self.context),
            _ => None,
        }
    }

    /// A string member of `context`.
    pub fn context_str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.context.get(name).filter(|raw| JsonKind::of(raw) == JsonKind::String).and_then(decode_str)
    }
}

/// The deepest nesting accepted in an event, as in `serde_json`'s own limit: deeper input is refused
/// rather than passed through to MoEngage.
pub const MAX_EVENT_DEPTH: usize = 128;

fn check_depth(text: &str) -> Result<(), InvalidEvent> {
    let bytes = text.as_bytes();
    // Cheap and vectorised: with no more openers than the limit, the depth cannot exceed it.
    if bytes.iter().filter(|&&b| b == b'[' || b == b'{').count() <= MAX_EVENT_DEPTH {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_EVENT_DEPTH {
                    return Err(InvalidEvent(format!(
                        "the event is nested deeper than {MAX_EVENT_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn wrong_type(field: &str, expected: &str, found: JsonKind) -> InvalidEvent {
    InvalidEvent(format!("`{field}` must be {expected}, found {}", found.name()))
}

/// Copies a raw JSON value to `out` without the white space outside strings.
pub fn write_compact(out: &mut Vec<u8>, raw: &RawValue) {
    let bytes = raw.get().as_bytes();
    if !matches!(bytes.first(), Some(b'{' | b'['))
        || !bytes.iter().any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
            if byte == b'"' {
                in_string = true;
            }
            out.push(byte);
        }
    }
}

/// Writes `text` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..index]);
                out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
                start = index + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        out.extend_from_slice(escape);
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_sdk_payloads_are_normalised() {
        let event = Event::parse(
            r#"{"type":"track","event":"Signed Up","userId":"u1","messageId":"m1",
               "context":{"traits":{"email":"a@b.c","firstName":"Jane"},"userAgent":"x"}}"#,
        )
        .expect("valid");
        assert_eq!(event.field("user_id").map(RawValue::get), Some(r#""u1""#));
        assert_eq!(event.traits.get("first_name").map(RawValue::get), Some(r#""Jane""#));
        assert_eq!(event.context_str("user_agent").as_deref(), Some("x"));
    }

    #[test]
    fn snake_case_wins_over_camel_case() {
        let event = Event::parse(r#"{"event":"x","user_id":"snake","userId":"camel"}"#).expect("valid");
        assert_eq!(event.field("user_id").map(RawValue::get), Some(r#""snake""#));
    }

    #[test]
    fn wrong_types_are_named() {
        let error = Event::parse(r#"{"type":"track","event":"x","properties":[1]}"#).expect_err("array");
        assert_eq!(error.0, "`properties` must be an object, found an array");
        let error = Event::parse(r#"{"type":"track","event":"x","user_id":true}"#).expect_err("bool");
        assert_eq!(error.0, "`user_id` must be a string or a number, found a boolean");
        assert!(Event::parse("[1]").expect_err("array").0.contains("not a JSON object"));
        assert!(Event::parse("{").expect_err("truncated").0.contains("malformed JSON"));
        assert!(Event::parse(r#"{"event":"x","timestamp":"yesterday"}"#).is_err());
    }

    #[test]
    fn compact_copy_keeps_spaces_inside_strings() {
        let object: RawObject<'_> =
            serde_json::from_str(r#"{"a": { "b" : [1, "x y\" z" ] } }"#).expect("valid");
        let mut out = Vec::new();
        write_compact(&mut out, object.get("a").expect("a"));
        assert_eq!(String::from_utf8(out).expect("utf8"), r#"{"b":[1,"x y\" z"]}"#);
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(serde_json::from_str::<String>(&text).expect("json"), "a\"b\\c\nd\u{1}é");
    }
}
