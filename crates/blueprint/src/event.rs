//! The Signal event as the interpreter reads it: borrowed from the input line, scanned once, with
//! the camelCase names of Segment- and RudderStack-style SDKs accepted.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use crate::scan::{self, Member};
pub use crate::scan::{JsonKind, Raw};

/// An object's members in input order, values left as spans. Later duplicates win on lookup, as in
/// every JSON parser users compare with.
#[derive(Debug, Clone, Default)]
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
            if scan::same_name(key, name) {
                if !self.aliases.contains(&index) {
                    return Some(*value);
                }
                alias.get_or_insert(*value);
            }
        }
        alias
    }

    /// These members with `over`'s laid on top, name by name: a member of `over` replaces one of
    /// the same (normalised) name, unless its value is `null`, which hides nothing.
    pub fn overlaid(mut self, over: RawObject<'a>) -> RawObject<'a> {
        if over.members.is_empty() {
            return self;
        }
        if self.members.is_empty() {
            return over;
        }
        let mut kept: Vec<(Cow<'a, str>, Raw<'a>, bool)> = Vec::with_capacity(self.members.len() + over.members.len());
        for (index, (name, value)) in self.members.drain(..).enumerate() {
            let replaced = over.members.iter().any(|(key, raw)| *key == name && raw.kind() != JsonKind::Null);
            if !replaced {
                kept.push((name, value, self.aliases.contains(&index)));
            }
        }
        for (index, (name, value)) in over.members.into_iter().enumerate() {
            if value.kind() == JsonKind::Null && kept.iter().any(|(key, _, _)| *key == name) {
                continue;
            }
            kept.push((name, value, over.aliases.contains(&index)));
        }
        let aliases = kept.iter().enumerate().filter(|(_, (_, _, alias))| *alias).map(|(index, _)| index).collect();
        RawObject { members: kept.into_iter().map(|(name, value, _)| (name, value)).collect(), aliases }
    }

    /// The name member `index` was written with: its camelCase spelling when it was renamed.
    fn written_name(&self, index: usize, aliases: &[(&'static str, &'static str)]) -> &str {
        let name = self.members.get(index).map_or("", |(name, _)| name.as_ref());
        if !self.aliases.contains(&index) {
            return name;
        }
        aliases.iter().find(|(_, canonical)| *canonical == name).map_or(name, |(alias, _)| alias)
    }

    /// Renames camelCase members to their snake_case names (`userId` → `user_id`), remembering that
    /// they were aliases.
    pub fn normalise(&mut self, aliases: &[(&str, &'static str)]) {
        // The aliases' lengths, one bit each (63 and longer share the last): most names have none
        // of them, and are passed at once.
        let length_bit = |name: &str| 1u64 << name.len().min(63);
        let lengths = aliases.iter().fold(0, |lengths, (alias, _)| lengths | length_bit(alias));
        for (index, (key, _)) in self.members.iter_mut().enumerate() {
            if length_bit(key) & lengths == 0 {
                continue;
            }
            if let Some((_, canonical)) = aliases.iter().find(|(alias, _)| scan::same_name(key, alias)) {
                *key = Cow::Borrowed(canonical);
                self.aliases.push(index);
            }
        }
    }
}

fn into_object<'a>(member: Member<'a>, name: &'static str) -> Result<RawObject<'a>, InvalidEvent> {
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

impl CallType {
    /// The call type as written in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Track => "track",
            CallType::Page => "page",
            CallType::Screen => "screen",
            CallType::Identify => "identify",
            CallType::Alias => "alias",
            CallType::Group => "group",
        }
    }
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

/// Why an input line is not a usable event: the collector's 400, the interpreter's drop code
/// `invalid_event`, with the same words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent {
    /// The top-level field at fault, by its snake_case name; `None` when the event as a whole is.
    pub field: Option<&'static str>,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl InvalidEvent {
    fn whole(message: impl Into<String>) -> Self {
        InvalidEvent { field: None, message: message.into() }
    }

    fn at(field: &'static str, message: impl Into<String>) -> Self {
        InvalidEvent { field: Some(field), message: message.into() }
    }
}

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidEvent {}

/// The times an SDK stamped on an event, each parsed when present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StampedTimes {
    /// `timestamp`.
    pub timestamp: Option<jiff::Timestamp>,
    /// `original_timestamp` (`originalTimestamp`): the SDK's clock when the event happened.
    pub original_timestamp: Option<jiff::Timestamp>,
    /// `sent_at` (`sentAt`): the SDK's clock when it sent the event.
    pub sent_at: Option<jiff::Timestamp>,
}

/// The top-level members read a level deeper.
const OBJECTS: [&str; 3] = ["properties", "traits", "context"];

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
    /// `context.traits` overlaid by the top-level `traits`, name by name (a `null` hides nothing).
    pub traits: RawObject<'a>,
    /// `context`, empty when absent.
    pub context: RawObject<'a>,
    /// When it happened: `timestamp`, else the SDK's `originalTimestamp`, parsed.
    pub timestamp: Option<jiff::Timestamp>,
    /// Each time the SDK stamped.
    pub stamped: StampedTimes,
    /// `properties`, `traits` and `context` as written.
    spans: [Option<Raw<'a>>; 3],
    /// Whether [`Event::traits`] are the members of `traits` as written: none from `context.traits`,
    /// none renamed.
    traits_as_sent: bool,
    /// The members of the object items of their arrays, as the scan found them.
    item_members: Vec<scan::ItemMember<'a>>,
}

impl<'a> Event<'a> {
    /// The members of the object items of arrays in `properties`, `traits` and `context`, for
    /// [`Raw::item_members`].
    pub fn item_members(&self) -> &[scan::ItemMember<'a>] {
        &self.item_members
    }

    /// Scans and checks one event.
    pub fn parse(text: &'a str) -> Result<Event<'a>, InvalidEvent> {
        Event::read(text, None)
    }

    /// Scans and checks one event that came to an endpoint implying its call type (the
    /// collector's `/v1/page`): an event without `type` is of that type.
    pub fn read(text: &'a str, implied: Option<CallType>) -> Result<Event<'a>, InvalidEvent> {
        let scanned = scan::top_level(text, OBJECTS).map_err(|error| {
            if error.message.starts_with("the event is") {
                InvalidEvent::whole(error.message)
            } else {
                InvalidEvent::whole(format!("malformed JSON: {error}"))
            }
        })?;
        let unreadable = scanned.unreadable;
        let mut top = RawObject::from_members(scanned.members);
        top.normalise(TOP_LEVEL_ALIASES);
        let [properties, traits, context] = scanned.objects;

        let string_field = |name: &'static str| -> Result<Option<Cow<'a, str>>, InvalidEvent> {
            match top.get(name) {
                None => Ok(None),
                Some(raw) => match raw.kind() {
                    JsonKind::Null => Ok(None),
                    JsonKind::String => raw.as_str().map(Some).ok_or_else(|| {
                        InvalidEvent::at(name, format!("`{name}` is not valid text (it holds a lone UTF-16 surrogate)"))
                    }),
                    other => Err(wrong_type(name, "a string", other)),
                },
            }
        };
        let call = match string_field("type")?.as_deref() {
            Some(kind) => match CALL_TYPES.iter().find(|(name, _)| scan::same_name(name, kind)) {
                Some((_, call)) => *call,
                None => {
                    return Err(InvalidEvent::at(
                        "type",
                        format!("`type` is `{kind}`: Signal accepts track, page, screen, identify, alias and group"),
                    ));
                }
            },
            None => match implied {
                Some(call) => call,
                None if top.get("event").is_some() => CallType::Track,
                None => return Err(InvalidEvent::at("type", "`type` is missing: use track, page or identify")),
            },
        };
        let name = match call {
            CallType::Track => match string_field("event")? {
                Some(name) if !name.is_empty() => name,
                _ => return Err(InvalidEvent::at("event", "a track call needs an `event` name")),
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
                // An id becomes MoEngage's customer_id, which cannot hold a NUL.
                if kind == JsonKind::String && raw.as_str().is_some_and(|id| id.contains('\0')) {
                    return Err(InvalidEvent::at(field, format!("`{field}` holds a NUL character (\\u0000), which MoEngage refuses in an id")));
                }
            }
        }
        let mut times = [None; 3];
        for (slot, field) in times.iter_mut().zip(["timestamp", "original_timestamp", "sent_at"]) {
            if let Some(text) = string_field(field)? {
                *slot = Some(parse_time(&text).ok_or_else(|| {
                    InvalidEvent::at(
                        field,
                        format!("`{field}` is `{text}`, not an RFC 3339 time such as 2026-11-28T10:15:00Z"),
                    )
                })?);
            }
        }
        let [timestamp, original_timestamp, sent_at] = times;
        let stamped = StampedTimes { timestamp, original_timestamp, sent_at };
        let timestamp = timestamp.or(original_timestamp);
        // After the fields' own checks, which name the field when it is one of theirs.
        if let Some(unreadable) = unreadable {
            return Err(InvalidEvent::whole(unreadable.message().to_owned()));
        }
        let properties = into_object(properties, "properties")?;
        let mut context = into_object(context, "context")?;
        context.normalise(CONTEXT_ALIASES);
        // SDKs put traits in either place, some in both (RudderStack copies them into
        // `context.traits`; some send an empty or null top-level `traits` beside them).
        let mut context_traits = match context.get("traits") {
            Some(raw) if raw.kind() == JsonKind::Object => RawObject::parse(raw)
                .map_err(|error| InvalidEvent::at("context", format!("`context.traits`: {error}")))?,
            _ => RawObject::default(),
        };
        context_traits.normalise(TRAIT_ALIASES);
        let mut traits = into_object(traits, "traits")?;
        traits.normalise(TRAIT_ALIASES);
        let traits_as_sent = context_traits.members.is_empty() && traits.aliases.is_empty();
        let traits = context_traits.overlaid(traits);
        Ok(Event {
            call,
            name,
            top,
            properties,
            traits,
            context,
            timestamp,
            stamped,
            spans: scanned.spans,
            traits_as_sent,
            item_members: scanned.item_members,
        })
    }

    /// Writes the event back as compact JSON, each member as it was written (camelCase names
    /// kept), without the members named in `leave_out` (by either spelling), and then `add`: name
    /// and JSON text.
    pub fn write(&self, leave_out: &[&str], add: &[(&str, &str)], out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, name: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_str(out, name);
            out.push(b':');
        };
        for (index, (name, value)) in self.top.members.iter().enumerate() {
            let written = self.top.written_name(index, TOP_LEVEL_ALIASES);
            if leave_out.iter().any(|left| *left == name || *left == written) {
                continue;
            }
            member(out, written);
            value.write_compact(out);
        }
        for (name, span) in OBJECTS.iter().zip(&self.spans) {
            if let Some(span) = span
                && !leave_out.contains(name)
            {
                member(out, name);
                span.write_compact(out);
            }
        }
        for (name, json) in add {
            member(out, name);
            out.extend_from_slice(json.as_bytes());
        }
        out.push(b'}');
    }

    /// The text of `traits` as written, when the event's traits are exactly its members (none from
    /// `context.traits`, none renamed): what a remembered text can be compared with as it is.
    pub(crate) fn traits_text(&self) -> Option<&'a str> {
        self.traits_as_sent.then(|| self.spans[1].map(|raw| raw.get())).flatten()
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

/// Appends `time` exactly as its `Display` writes it (`2026-11-27T10:00:00.044Z`: UTC, the
/// fraction only when there is one, without trailing zeros).
// Written here for the years 1970 to 9999, the times of events: the formatter's generic machinery
// cost more than the rest of an event's envelope.
pub(crate) fn write_time(out: &mut Vec<u8>, time: jiff::Timestamp) {
    const END_OF_9999: i64 = 253_402_300_800;
    let (seconds, nanos) = (time.as_second(), time.subsec_nanosecond());
    let (Ok(seconds), Ok(nanos)) = (u64::try_from(seconds), u32::try_from(nanos)) else {
        let _ = write!(out, "{time}");
        return;
    };
    if seconds >= END_OF_9999.unsigned_abs() {
        let _ = write!(out, "{time}");
        return;
    }
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Days since 1970-01-01 to the civil date, through 400-year eras that begin on March 1st.
    let shifted = days + 719_468;
    let (era, of_era) = (shifted / 146_097, shifted % 146_097);
    let year_of_era = (of_era - of_era / 1_460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    // Constant divisors throughout: each becomes a multiplication.
    let two = |value: u64| [b'0' + digit(value / 10), b'0' + digit(value % 10)];
    let [y1, y2] = two(year / 100);
    let [y3, y4] = two(year % 100);
    let [mo1, mo2] = two(month);
    let [d1, d2] = two(day);
    let [h1, h2] = two(of_day / 3_600);
    let [mi1, mi2] = two(of_day / 60 % 60);
    let [s1, s2] = two(of_day % 60);
    out.extend_from_slice(&[y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2]);
    if nanos > 0 {
        let mut fraction = [b'0'; 9];
        let mut rest = nanos;
        for place in fraction.iter_mut().rev() {
            *place = b'0' + digit(u64::from(rest % 10));
            rest /= 10;
        }
        let shown = fraction.iter().rposition(|&byte| byte != b'0').map_or(0, |last| last + 1);
        out.push(b'.');
        out.extend_from_slice(fraction.get(..shown).unwrap_or_default());
    }
    out.push(b'Z');
}

/// A number below 10 as a byte to add to `b'0'`.
fn digit(value: u64) -> u8 {
    u8::try_from(value % 10).unwrap_or(0)
}

/// An RFC 3339 time, any that the RFC allows: more than nine fraction digits are cut to
/// nanoseconds, and an instant past what a timestamp holds (the last hours of year 9999 with their
/// offset) becomes the last one it holds — a time in the future, which the interpreter treats as
/// such.
pub fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    if let Some(time) = plain_utc_time(text) {
        return Some(time);
    }
    if let Ok(time) = text.parse::<jiff::Timestamp>() {
        return Some(time);
    }
    let (civil, offset_seconds) = match text.strip_suffix(['Z', 'z']) {
        Some(civil) => (civil, 0),
        None => {
            let split = text.len().checked_sub(6).filter(|at| text.is_char_boundary(*at))?;
            let (civil, offset) = text.split_at(split);
            let offset = offset.as_bytes();
            let sign = match offset.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let digit = |at: usize| offset.get(at).filter(|b| b.is_ascii_digit()).map(|b| i32::from(b - b'0'));
            if offset.get(3) != Some(&b':') {
                return None;
            }
            let hours = digit(1)? * 10 + digit(2)?;
            let minutes = digit(4)? * 10 + digit(5)?;
            (civil, sign * (hours * 3600 + minutes * 60))
        }
    };
    let civil = match civil.split_once('.') {
        Some((whole, fraction)) if fraction.len() > 9 && fraction.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{whole}.{}", &fraction[..9])
        }
        _ => civil.to_owned(),
    };
    let datetime: jiff::civil::DateTime = civil.parse().ok()?;
    let offset = jiff::tz::Offset::from_seconds(offset_seconds).ok()?;
    match offset.to_timestamp(datetime) {
        Ok(time) => Some(time),
        Err(_) if datetime.year() > 0 => Some(jiff::Timestamp::MAX),
        Err(_) => Some(jiff::Timestamp::MIN),
    }
}

/// The time SDKs write, `2026-11-27T10:00:00.044Z` (UTC, up to nine fraction digits), read
/// without the general parser; `None` for any other text, valid or not, which the parser reads.
// The general parser's generic machinery cost more than the rest of an event's checks.
fn plain_utc_time(text: &str) -> Option<jiff::Timestamp> {
    let bytes = text.as_bytes();
    let (civil, fraction) = match bytes {
        [civil @ .., b'Z'] if civil.len() == 19 => (civil, &[][..]),
        [civil @ .., b'Z'] if civil.len() > 20 && civil.len() <= 29 && civil.get(19) == Some(&b'.') => {
            civil.split_at(19)
        }
        _ => return None,
    };
    let &[y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2] = civil else {
        return None;
    };
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u64, |value, &digit| digit.is_ascii_digit().then(|| value * 10 + u64::from(digit - b'0')))
    };
    let year = number(&[y1, y2, y3, y4])?;
    let (month, day) = (number(&[mo1, mo2])?, number(&[d1, d2])?);
    let (hour, minute, second) = (number(&[h1, h2])?, number(&[mi1, mi2])?, number(&[s1, s2])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if year < 1970 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [_, digits @ ..] => number(digits)? * 10u64.pow(u32::try_from(9 - digits.len()).ok()?),
    };
    // Days since 1970-01-01 from the civil date, through 400-year eras that begin on March 1st.
    let (year_from_march, month_from_march) = if month > 2 { (year, month - 3) } else { (year - 1, month + 9) };
    let (era, year_of_era) = (year_from_march / 400, year_from_march % 400);
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    jiff::Timestamp::new(i64::try_from(seconds).ok()?, i32::try_from(nanos).ok()?).ok()
}

/// The offset from UTC, in seconds, of the time zone `zone` (as [`time_zone`] reads it) at `at`;
/// `None` when it names none.
// Remembered per thread for the few zones last asked about, with how long the offset holds: the
// zone's lookup and its rules, evaluated for every event, cost as much as the rest of the
// envelope.
pub fn zone_offset_seconds(zone: &str, at: jiff::Timestamp) -> Option<i32> {
    /// A zone's offset, the same from `from` until its next transition.
    struct Held {
        zone: Box<str>,
        from: jiff::Timestamp,
        until: Option<jiff::Timestamp>,
        seconds: i32,
    }
    const ZONES: usize = 4;
    thread_local! {
        static HELD: std::cell::RefCell<(Vec<Held>, usize)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
    }
    let found = HELD.with_borrow(|(held, _)| {
        held.iter()
            .find(|held| scan::same_name(&held.zone, zone) && held.from <= at && held.until.is_none_or(|until| at < until))
            .map(|held| held.seconds)
    });
    if found.is_some() {
        return found;
    }
    let tz = time_zone(zone)?;
    let seconds = tz.to_offset(at).seconds();
    let until = tz.following(at).next().map(|transition| transition.timestamp());
    HELD.with_borrow_mut(|(held, next)| {
        let fresh = Held { zone: zone.into(), from: at, until, seconds };
        match held.iter().position(|held| scan::same_name(&held.zone, zone)) {
            Some(at) => held[at] = fresh,
            None if held.len() < ZONES => held.push(fresh),
            None => {
                *next = (*next + 1) % ZONES;
                if let Some(slot) = held.get_mut(*next) {
                    *slot = fresh;
                }
            }
        }
    });
    Some(seconds)
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
        // Checked as ASCII first: a split inside a multi-byte character would panic.
        None if digits.len() == 4 && digits.is_ascii() => digits.split_at(2),
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

fn wrong_type(field: &'static str, expected: &str, found: JsonKind) -> InvalidEvent {
    InvalidEvent::at(field, format!("`{field}` must be {expected}, found {}", found.name()))
}

/// Writes `text` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let plain = scan::plain_prefix(bytes);
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if plain == bytes.len() {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.extend_from_slice(&bytes[..plain]);
    let mut start = plain;
    for (index, &byte) in bytes.iter().enumerate().skip(plain) {
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
    fn plain_utc_times_are_read_as_the_parser_reads_them() {
        let mut texts: Vec<String> = [
            "2026-11-27T10:00:00.044Z", "2026-11-27T10:00:00Z", "1970-01-01T00:00:00Z", "2024-02-29T23:59:59.999999999Z",
            "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
            "2026-04-31T00:00:00Z", "2026-11-27T24:00:00Z", "2026-11-27T10:60:00Z", "2026-11-27T10:00:60Z", "2026-11-27T10:00:00.Z",
            "2026-11-27T10:00:00.1234567891Z", "2026-11-27t10:00:00z", "2026-11-27 10:00:00Z", "1969-12-31T23:59:59.5Z",
            "9999-12-30T21:59:59.999999999Z", "9999-12-31T23:59:59Z", "2026-11-27T10:00:00+01:00", "+2026-11-27T10:00:00Z",
            "2026-1a-27T10:00:00Z", "２026-11-27T10:00:00Z", "",
        ]
        .iter()
        .map(|text| (*text).to_owned())
        .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = usize::try_from(state % 10).unwrap_or(0);
            let fraction = if digits == 0 { String::new() } else { format!(".{}", &format!("{:09}", state % 1_000_000_000)[..digits]) };
            texts.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
                1960 + state % 8_100,
                (state >> 8) % 13,
                (state >> 16) % 32,
                (state >> 24) % 25,
                (state >> 32) % 61,
                (state >> 40) % 61
            ));
        }
        // Whatever the quick path reads, it reads as the parser does; the rest it leaves to it.
        let mut read = 0;
        for text in &texts {
            if let Some(quick) = plain_utc_time(text) {
                assert_eq!(Some(quick), text.parse::<jiff::Timestamp>().ok(), "{text}");
                read += 1;
            }
        }
        assert!(read > 5_000, "the quick path read {read} of {}", texts.len());
        assert!(plain_utc_time("2026-11-27T10:00:00.044Z").is_some(), "the common case is the quick one");
    }

    #[test]
    fn a_zones_offset_is_remembered_only_while_it_holds() {
        let zones = ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "GMT+0530", "UTC", "Europe/Paris"];
        let start: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().expect("a time");
        // Every 20 minutes over a year, and every second around one transition, zones interleaved
        // so that the four remembered are replaced as they go.
        let mut times: Vec<jiff::Timestamp> =
            (0..26_280).map(|step| start.checked_add(jiff::SignedDuration::from_secs(step * 1_200)).expect("in range")).collect();
        let transition: jiff::Timestamp = "2026-10-25T01:00:00Z".parse().expect("a time");
        times.extend((-5..5).map(|second| transition.checked_add(jiff::SignedDuration::from_secs(second)).expect("in range")));
        times.push(start);
        for (step, time) in times.iter().enumerate() {
            let zone = zones[step % zones.len()];
            let expected = time_zone(zone).map(|tz| tz.to_offset(*time).seconds());
            assert_eq!(zone_offset_seconds(zone, *time), expected, "{zone} at {time}");
        }
        for time in &times {
            assert_eq!(zone_offset_seconds("Europe/London", *time), time_zone("Europe/London").map(|tz| tz.to_offset(*time).seconds()));
        }
        assert_eq!(zone_offset_seconds("Mars/Olympus_Mons", start), None);
    }

    #[test]
    fn times_are_written_as_their_display_writes_them() {
        let mut times: Vec<jiff::Timestamp> = [
            "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000001Z", "1969-12-31T23:59:59.5Z",
            "2000-02-29T12:00:00.1Z", "2024-02-29T23:59:59.999999999Z", "2026-11-27T10:00:00.044Z",
            "2100-03-01T00:00:00Z", "9999-12-30T21:59:59.999999999Z", "0001-01-01T00:00:00Z", "-009999-01-03T00:00:00Z",
        ]
        .iter()
        .map(|text| text.parse().expect("a time"))
        .collect();
        // Every day of 400 years (a whole cycle of leap years), at varied times and fractions.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for day in 0..146_097i64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let seconds = (day + 10_957) * 86_400 + i64::try_from(state % 86_400).unwrap_or(0);
            let nanos = i32::try_from(state % 4 * (state >> 40) % 1_000_000_000).unwrap_or(0);
            times.push(jiff::Timestamp::new(seconds, nanos).expect("in range"));
        }
        for time in times {
            let mut written = Vec::new();
            write_time(&mut written, time);
            assert_eq!(String::from_utf8(written).expect("text"), time.to_string());
        }
    }

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
    fn top_level_traits_overlay_context_traits_name_by_name() {
        let read = |text: &str| {
            let event = Event::parse(text).expect("valid");
            let mut traits: Vec<(String, String)> = event
                .traits
                .members
                .iter()
                .map(|(name, _)| (name.to_string(), event.traits.get(name).map(|r| r.get().to_owned()).unwrap_or_default()))
                .collect();
            traits.sort();
            traits.dedup();
            traits
        };
        let pair = |name: &str, json: &str| (name.to_owned(), json.to_owned());
        let context = r#""context":{"traits":{"email":"a@b.c","phone":"+447700900123","firstName":"Jane"}}"#;
        for empty in ["{}", "null"] {
            let traits = read(&format!(r#"{{"event":"x",{context},"traits":{empty}}}"#));
            assert_eq!(traits, [pair("email", r#""a@b.c""#), pair("first_name", r#""Jane""#), pair("phone", r#""+447700900123""#)], "traits: {empty}");
        }
        let traits = read(&format!(r#"{{"event":"x",{context},"traits":{{"email":"new@b.c","first_name":"Janet","phone":null,"plan":"pro"}}}}"#));
        assert_eq!(
            traits,
            [pair("email", r#""new@b.c""#), pair("first_name", r#""Janet""#), pair("phone", r#""+447700900123""#), pair("plan", r#""pro""#)]
        );
        assert!(Event::parse(r#"{"event":"x","traits":[1]}"#).is_err());
    }

    #[test]
    fn snake_case_wins_over_camel_case() {
        let event = Event::parse(r#"{"event":"x","user_id":"snake","userId":"camel"}"#).expect("valid");
        assert_eq!(event.field("user_id").map(|r| r.get()), Some(r#""snake""#));
    }

    #[test]
    fn wrong_types_are_named() {
        let error = Event::parse(r#"{"type":"track","event":"x","properties":[1]}"#).expect_err("array");
        assert_eq!(error.message, "`properties` must be an object, found an array");
        let error = Event::parse(r#"{"type":"track","event":"x","user_id":true}"#).expect_err("bool");
        assert_eq!(error.message, "`user_id` must be a string or a number, found a boolean");
        assert_eq!(Event::parse("[1]").expect_err("array").message, "the event is an array, not an object");
        assert!(Event::parse("{").expect_err("truncated").message.contains("malformed JSON"));
        assert!(Event::parse(r#"{"event":"x","timestamp":"yesterday"}"#).is_err());
    }

    #[test]
    fn an_event_is_written_back_as_written_with_edits() {
        let text = r#"{ "userId": 18446744073709551617, "writeKey": "k", "event": "Buy",
            "properties": { "price": 1.10, "tags": ["a", "b"] }, "timestamp": "2026-01-01T00:00:00Z" }"#;
        let event = Event::read(text, Some(CallType::Track)).expect("valid");
        let mut out = Vec::new();
        event.write(&["writeKey", "timestamp"], &[("type", r#""track""#), ("timestamp", r#""x""#)], &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"userId":18446744073709551617,"event":"Buy","properties":{"price":1.10,"tags":["a","b"]},"type":"track","timestamp":"x"}"#
        );
        // Leaving out a canonical name leaves out its camelCase spelling too.
        let mut out = Vec::new();
        event.write(&["user_id", "write_key", "writeKey"], &[], &mut out);
        assert!(!String::from_utf8(out).expect("utf8").contains("userId"));
    }

    #[test]
    fn an_endpoint_implies_the_call_type_and_errors_name_their_field() {
        let event = Event::read(r#"{"name":"Home"}"#, Some(CallType::Page)).expect("a page");
        assert_eq!((event.call, event.name.as_ref()), (CallType::Page, "page"));
        let error = Event::read(r#"{"userId":"u"}"#, None).expect_err("no type");
        assert_eq!(error.field, Some("type"));
        let error = Event::read(r#"{"event":"x","sentAt":"soon"}"#, None).expect_err("bad time");
        assert_eq!(error.field, Some("sent_at"));
        assert_eq!(Event::read("[1]", None).expect_err("array").field, None);
    }

    #[test]
    fn odd_time_zones_and_undecodable_text_are_refused_without_a_panic() {
        for zone in ["GMT+aé1", "GMT+é", "UTC-ééé", "GMT+", "GMT+1:xx"] {
            assert!(time_zone(zone).is_none(), "{zone}");
        }
        let error = Event::read(r#"{"type":"\ud800","event":"x"}"#, Some(CallType::Track)).expect_err("a lone surrogate");
        assert_eq!(error.field, Some("type"));
        assert!(Event::read(r#"{"event":"x","timestamp":"\udc00"}"#, None).is_err());
    }

    #[test]
    fn every_rfc_3339_time_is_read() {
        let read = |text: &str| parse_time(text).map(|time| time.to_string());
        assert_eq!(read("2026-11-28T10:15:00Z").as_deref(), Some("2026-11-28T10:15:00Z"));
        assert_eq!(read("2026-11-28t10:15:00.5+01:00").as_deref(), Some("2026-11-28T09:15:00.5Z"));
        assert_eq!(read("2026-11-28T10:15:00.1234567891Z").as_deref(), Some("2026-11-28T10:15:00.123456789Z"));
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Some(jiff::Timestamp::MAX));
        assert_eq!(parse_time("9999-12-31T23:59:59.9999999999-05:00"), Some(jiff::Timestamp::MAX));
        for refused in ["yesterday", "2026-11-28", "2026-13-01T00:00:00Z", "2026-11-28T10:15:00+1:00", "é2026-11-28T10:15:00Z+00:00"] {
            assert_eq!(parse_time(refused), None, "{refused}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(serde_json::from_str::<String>(&text).expect("json"), "a\"b\\c\nd\u{1}é");
    }
}
