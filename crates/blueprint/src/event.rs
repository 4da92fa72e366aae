//! The Signal event as the interpreter reads it: borrowed from the input line, scanned once, with
//! the camelCase names of Segment- and RudderStack-style SDKs accepted.

use std::borrow::Cow;
use std::fmt;

use crate::scan::{self, Member};
pub use crate::scan::{JsonKind, Raw};

/// An object's members in input order, values left as spans. Later duplicates win on lookup, as in
/// every JSON parser users compare with.
#[derive(Debug, Default)]
pub struct RawObject<'a> {
    /// Members: (name, value).
    pub members: Vec<(Cow<'a, str>, Raw<'a>)>,
    /// Indices of members whose names were camelCase aliases; usually none.
    aliases: Vec<usize>,
}

impl<'a> RawObject<'a> {
    fn from_members(members: Vec<(Cow<'a, str>, Raw<'a>)>) -> Self {
        RawObject { members, aliases: Vec::new() }
    }

    /// The members of a raw object value.
    pub fn parse(raw: Raw<'a>) -> Result<Self, scan::ScanError> {
        raw.members().map(RawObject::from_members)
    }

    /// The value of member `name`; a canonical spelling beats a camelCase alias.
    pub fn get(&self, name: &str) -> Option<Raw<'a>> {
        let mut alias = None;
        for (index, (key, value)) in self.members.iter().enumerate().rev() {
            if key == name {
                if !self.aliases.contains(&index) {
                    return Some(*value);
                }
                alias.get_or_insert(*value);
            }
        }
        alias
    }

    /// Renames camelCase members to their snake_case names (`userId` → `user_id`), remembering that
    /// they were aliases.
    pub fn normalise(&mut self, aliases: &[(&str, &'static str)]) {
        for (index, (key, _)) in self.members.iter_mut().enumerate() {
            if let Some((_, canonical)) = aliases.iter().find(|(alias, _)| key == alias) {
                *key = Cow::Borrowed(canonical);
                self.aliases.push(index);
            }
        }
    }
}

fn into_object<'a>(member: Member<'a>, name: &str) -> Result<RawObject<'a>, InvalidEvent> {
    match member {
        Member::Absent | Member::Other(JsonKind::Null) => Ok(RawObject::default()),
        Member::Object(members) => Ok(RawObject::from_members(members)),
        Member::Other(kind) => Err(wrong_type(name, "an object", kind)),
    }
}

/// What kind of call an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    /// `track`: a named event.
    Track,
    /// `page`: a page view, matched in blueprints as `page`.
    Page,
    /// `screen`: a screen view in an app, matched in blueprints as `screen`.
    Screen,
    /// `identify`: traits of a user, matched as `identify`.
    Identify,
    /// `alias`: `previous_id` becomes `user_id`.
    Alias,
    /// `group`: a user joins a group (an account, a company).
    Group,
}

/// The call types, as written in `type`.
const CALL_TYPES: &[(&str, CallType)] = &[
    ("track", CallType::Track),
    ("page", CallType::Page),
    ("screen", CallType::Screen),
    ("identify", CallType::Identify),
    ("alias", CallType::Alias),
    ("group", CallType::Group),
];

/// Why an input line is not a usable event (drop code `invalid_event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent(pub String);

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const TOP_LEVEL_ALIASES: &[(&str, &str)] = &[
    ("userId", "user_id"),
    ("anonymousId", "anonymous_id"),
    ("messageId", "message_id"),
    ("previousId", "previous_id"),
    ("originalTimestamp", "original_timestamp"),
    ("sentAt", "sent_at"),
];
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
    /// When it happened: `timestamp`, else the SDK's `originalTimestamp`, parsed.
    pub timestamp: Option<jiff::Timestamp>,
}

impl<'a> Event<'a> {
    /// Scans and checks one event.
    pub fn parse(text: &'a str) -> Result<Event<'a>, InvalidEvent> {
        let scanned = scan::top_level(text, ["properties", "traits", "context"]).map_err(|error| {
            if error.message.starts_with("the event is") {
                InvalidEvent(error.message.to_owned())
            } else {
                InvalidEvent(format!("malformed JSON: {error}"))
            }
        })?;
        let mut top = RawObject::from_members(scanned.members);
        top.normalise(TOP_LEVEL_ALIASES);
        let [properties, traits, context] = scanned.objects;

        let string_field = |name: &str| -> Result<Option<Cow<'a, str>>, InvalidEvent> {
            match top.get(name) {
                None => Ok(None),
                Some(raw) => match raw.kind() {
                    JsonKind::Null => Ok(None),
                    JsonKind::String => Ok(raw.as_str()),
                    other => Err(wrong_type(name, "a string", other)),
                },
            }
        };
        let call = match string_field("type")?.as_deref() {
            Some(kind) => match CALL_TYPES.iter().find(|(name, _)| *name == kind) {
                Some((_, call)) => *call,
                None => {
                    return Err(InvalidEvent(format!(
                        "`type` is `{kind}`: Signal accepts track, page, screen, identify, alias and group"
                    )));
                }
            },
            None if top.get("event").is_some() => CallType::Track,
            None => return Err(InvalidEvent("`type` is missing: use track, page or identify".into())),
        };
        let name = match call {
            CallType::Track => match string_field("event")? {
                Some(name) if !name.is_empty() => name,
                _ => return Err(InvalidEvent("a track call needs an `event` name".into())),
            },
            CallType::Page => Cow::Borrowed("page"),
            CallType::Screen => Cow::Borrowed("screen"),
            CallType::Identify => Cow::Borrowed("identify"),
            CallType::Alias => Cow::Borrowed("alias"),
            CallType::Group => Cow::Borrowed("group"),
        };
        for field in ["name", "message_id"] {
            string_field(field)?;
        }
        for field in ["user_id", "anonymous_id", "previous_id"] {
            if let Some(raw) = top.get(field) {
                let kind = raw.kind();
                if !matches!(kind, JsonKind::String | JsonKind::Number | JsonKind::Null) {
                    return Err(wrong_type(field, "a string or a number", kind));
                }
            }
        }
        let mut times = [None; 3];
        for (slot, field) in times.iter_mut().zip(["timestamp", "original_timestamp", "sent_at"]) {
            if let Some(text) = string_field(field)? {
                *slot = Some(text.parse::<jiff::Timestamp>().map_err(|_| {
                    InvalidEvent(format!(
                        "`{field}` is `{text}`, not an RFC 3339 time such as 2026-11-28T10:15:00Z"
                    ))
                })?);
            }
        }
        let [timestamp, original_timestamp, _] = times;
        let timestamp = timestamp.or(original_timestamp);
        let properties = into_object(properties, "properties")?;
        let mut context = into_object(context, "context")?;
        context.normalise(CONTEXT_ALIASES);
        let mut traits = match traits {
            Member::Absent => match context.get("traits") {
                Some(raw) if raw.kind() == JsonKind::Object => RawObject::parse(raw)
                    .map_err(|error| InvalidEvent(format!("`context.traits`: {error}")))?,
                _ => RawObject::default(),
            },
            present => into_object(present, "traits")?,
        };
        traits.normalise(TRAIT_ALIASES);
        Ok(Event { call, name, top, properties, traits, context, timestamp })
    }

    /// A top-level field, by its snake_case name; `properties`, `traits` and `context` are read
    /// through [`Event::object`] instead.
    pub fn field(&self, name: &str) -> Option<Raw<'a>> {
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
        self.context.get(name).and_then(|raw| raw.as_str())
    }
}

/// A `context.timezone`: an IANA name (`Europe/London`), or a fixed offset from UTC as RudderStack's
/// SDK sends it (`GMT+0000`, `GMT-0530`; also `UTC+05:30`, `GMT+1`).
pub fn time_zone(text: &str) -> Option<jiff::tz::TimeZone> {
    if let Ok(zone) = jiff::tz::TimeZone::get(text) {
        return Some(zone);
    }
    let rest = text.strip_prefix("GMT").or_else(|| text.strip_prefix("UTC"))?;
    if rest.is_empty() {
        return Some(jiff::tz::TimeZone::UTC);
    }
    let (sign, digits) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((hours, minutes)) => (hours, minutes),
        None if digits.len() == 4 => digits.split_at(2),
        None if (1..=2).contains(&digits.len()) => (digits, "0"),
        None => return None,
    };
    let all_digits = |part: &str| !part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 14 || minutes > 59 {
        return None;
    }
    let offset = jiff::tz::Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()?;
    Some(jiff::tz::TimeZone::fixed(offset))
}

fn wrong_type(field: &str, expected: &str, found: JsonKind) -> InvalidEvent {
    InvalidEvent(format!("`{field}` must be {expected}, found {}", found.name()))
}

/// Writes `text` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
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
        assert_eq!(event.field("user_id").map(|r| r.get()), Some(r#""u1""#));
        assert_eq!(event.traits.get("first_name").map(|r| r.get()), Some(r#""Jane""#));
        assert_eq!(event.context_str("user_agent").as_deref(), Some("x"));
    }

    #[test]
    fn snake_case_wins_over_camel_case() {
        let event = Event::parse(r#"{"event":"x","user_id":"snake","userId":"camel"}"#).expect("valid");
        assert_eq!(event.field("user_id").map(|r| r.get()), Some(r#""snake""#));
    }

    #[test]
    fn wrong_types_are_named() {
        let error = Event::parse(r#"{"type":"track","event":"x","properties":[1]}"#).expect_err("array");
        assert_eq!(error.0, "`properties` must be an object, found an array");
        let error = Event::parse(r#"{"type":"track","event":"x","user_id":true}"#).expect_err("bool");
        assert_eq!(error.0, "`user_id` must be a string or a number, found a boolean");
        assert_eq!(Event::parse("[1]").expect_err("array").0, "the event is an array, not an object");
        assert!(Event::parse("{").expect_err("truncated").0.contains("malformed JSON"));
        assert!(Event::parse(r#"{"event":"x","timestamp":"yesterday"}"#).is_err());
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(serde_json::from_str::<String>(&text).expect("json"), "a\"b\\c\nd\u{1}é");
    }
}
