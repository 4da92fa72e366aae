//! The interpreter: a compiled blueprint applied to one event gives the MoEngage request body, or
//! exactly one drop code. Values that pass through unchanged are copied from the input text rather
//! than rebuilt, which is why mapping costs less than a plain `serde_json::Value` round trip.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use crate::event::{CallType, Event, JsonKind, Raw, RawObject, write_str, zone_offset_seconds};
use crate::path::{FieldPath, Step};
use crate::phone::{PhoneNormaliser, PhoneRegion};
use crate::found::{Found, built_string};
use crate::attributes::{AttributeWriter, Priority};
use crate::keep;
pub use crate::warning::{Warning, WarningCode};
use crate::memory::{TraitMemory, object_json, remembered_json};
use crate::{Blueprint, CompiledEvent, CompiledSource, MAX_BODY_BYTES, Origin, RESERVED_PREFIX, Transform};
use moengage::RequestKind;

/// Why an event was not delivered. Each dropped event has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropCode {
    /// The event name has no mapping in the blueprint ("dropped before delivery").
    NotInBlueprint,
    /// Mapped by the blueprint, but not among the pipeline's enabled events.
    NotEnabled,
    /// No `customer_id` (MoEngage would answer 400).
    MissingCustomerId,
    /// The mapped action name begins with `moe_`.
    ReservedPrefix,
    /// The request body would exceed 128 KB (131,072 bytes).
    PayloadTooLarge,
    /// Not a JSON object, or a field of the wrong type.
    InvalidEvent,
    /// A call type the destination has no API for (`group`).
    UnsupportedType,
}

impl DropCode {
    /// Every code, in documentation order.
    pub const ALL: [DropCode; 7] = [
        DropCode::NotInBlueprint,
        DropCode::NotEnabled,
        DropCode::MissingCustomerId,
        DropCode::ReservedPrefix,
        DropCode::PayloadTooLarge,
        DropCode::InvalidEvent,
        DropCode::UnsupportedType,
    ];

    /// The stable code, as in `{"dropped":{"code":...}}`, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropCode::NotInBlueprint => "not_in_blueprint",
            DropCode::NotEnabled => "not_enabled",
            DropCode::MissingCustomerId => "missing_customer_id",
            DropCode::ReservedPrefix => "reserved_prefix",
            DropCode::PayloadTooLarge => "payload_too_large",
            DropCode::InvalidEvent => "invalid_event",
            DropCode::UnsupportedType => "unsupported_type",
        }
    }
}

impl fmt::Display for DropCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dropped event: its code and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drop {
    /// The code.
    pub code: DropCode,
    /// Why, for people.
    pub reason: String,
}

impl Drop {
    fn new(code: DropCode, reason: impl Into<String>) -> Self {
        Drop { code, reason: reason.into() }
    }

    /// `{"dropped":{"code":"...","reason":"..."}}`, as `signal map` prints it.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64 + self.reason.len());
        out.extend_from_slice(b"{\"dropped\":{\"code\":\"");
        out.extend_from_slice(self.code.as_str().as_bytes());
        out.extend_from_slice(b"\",\"reason\":");
        write_str(&mut out, &self.reason);
        out.extend_from_slice(b"}}");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What a call was mapped to, its body written to the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The MoEngage API the body is for: the sender sends it there, and never reads the body to
    /// find out.
    pub kind: RequestKind,
    /// The MoEngage action name of an event; `identify` or `alias` for a profile or a merge.
    pub action: String,
}

/// A mapped event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The MoEngage API the body is for.
    pub kind: RequestKind,
    /// The MoEngage action name.
    pub action: String,
    /// The request body: compact JSON, at most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
    /// What was left out.
    pub warnings: Vec<Warning>,
}

/// The fate of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// To be delivered.
    Mapped(Mapped),
    /// Not to be delivered, and why.
    Dropped(Drop),
}

/// A blueprint with a pipeline's settings: the enabled events and the default phone region.
#[derive(Debug)]
pub struct Mapper {
    blueprint: Arc<Blueprint>,
    enabled: Option<HashSet<String>>,
    default_region: Option<PhoneRegion>,
    phones: PhoneNormaliser,
    object_data: bool,
    memory: Option<Arc<dyn TraitMemory>>,
}

impl Mapper {
    /// Maps with every event of the blueprint enabled and no default region.
    pub fn new(blueprint: Arc<Blueprint>) -> Self {
        Mapper {
            blueprint,
            enabled: None,
            default_region: None,
            phones: PhoneNormaliser::default(),
            object_data: false,
            memory: None,
        }
    }

    /// Remembers each user's traits in `memory` and fills the identity fields of later events that
    /// carry none from it (`$.traits.email` with no email on the event).
    pub fn with_memory(mut self, memory: Arc<dyn TraitMemory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Whether the workspace keeps object values (MoEngage's object data type). Without it (the
    /// default, as on most accounts) objects and arrays of objects are flattened before sending.
    pub fn with_object_data(mut self, object_data: bool) -> Self {
        self.object_data = object_data;
        self
    }

    /// Only these events are delivered; the other mapped ones are dropped with `not_enabled`.
    pub fn with_enabled(mut self, events: impl IntoIterator<Item = String>) -> Self {
        self.enabled = Some(events.into_iter().collect());
        self
    }

    /// The region for national phone numbers when the event's locale names none.
    pub fn with_default_region(mut self, region: Option<PhoneRegion>) -> Self {
        self.default_region = region;
        self
    }

    /// The blueprint.
    pub fn blueprint(&self) -> &Blueprint {
        &self.blueprint
    }

    /// Loads phone metadata now rather than on the first event.
    pub fn warm_up(&self) {
        let regions: Vec<PhoneRegion> = self.default_region.into_iter().collect();
        self.phones.warm_up(&regions);
    }

    /// Maps one event (a JSON object as text). `received_at` is when Signal received it: future
    /// timestamps are clamped to it.
    pub fn map(&self, line: &str, received_at: Timestamp) -> Outcome {
        let mut body = Vec::with_capacity(line.len() + 128);
        let mut warnings = Vec::new();
        match self.map_into(line, received_at, &mut body, &mut warnings) {
            Ok(Written { kind, action }) => Outcome::Mapped(Mapped { kind, action, body, warnings }),
            Err(drop) => Outcome::Dropped(drop),
        }
    }

    /// Like [`Mapper::map`], writing the body into `out` (cleared first) so a caller can reuse the
    /// buffer. Returns the API the body is for and the action name.
    pub fn map_into(
        &self,
        line: &str,
        received_at: Timestamp,
        out: &mut Vec<u8>,
        warnings: &mut Vec<Warning>,
    ) -> Result<Written, Drop> {
        self.map_asking(line, received_at, out, warnings, None)
    }

    /// Like [`Mapper::map_into`], also saying in `asks` what the call asks for once it is
    /// delivered — a device registration, the merge of a login — read from the event as it is
    /// mapped rather than read again.
    pub fn map_asking(
        &self,
        line: &str,
        received_at: Timestamp,
        out: &mut Vec<u8>,
        warnings: &mut Vec<Warning>,
        asks: Option<&mut Asks>,
    ) -> Result<Written, Drop> {
        out.clear();
        let event = Event::parse(line).map_err(|invalid| Drop::new(DropCode::InvalidEvent, invalid.message))?;
        if let Some(asks) = asks {
            asks.registers_device = self.asks_device(&event);
            asks.login = self.blueprint.merge_anonymous.then(|| login(&event)).flatten();
        }
        match event.call {
            CallType::Group => {
                return Err(Drop::new(
                    DropCode::UnsupportedType,
                    "group calls have no MoEngage API: MoEngage's events and profiles belong to users, not groups",
                ));
            }
            CallType::Alias => {
                return self.map_alias(&event, line, out, warnings).map(|action| Written { kind: RequestKind::Merge, action });
            }
            _ => {}
        }
        let recalled = self.remember(&event);
        if event.call == CallType::Identify {
            return self
                .map_identify(&event, line, out, warnings)
                .map(|action| Written { kind: RequestKind::Customer, action });
        }
        let name: &str = &event.name;
        let blueprint = &*self.blueprint;
        let (mapping, by_name) = match blueprint.events.get(name) {
            Some(mapping) => (mapping, true),
            None => match &blueprint.catch_all {
                Some(mapping) => (mapping, false),
                None => {
                    return Err(Drop::new(
                        DropCode::NotInBlueprint,
                        format!("`{name}` has no mapping in the blueprint, so it is dropped before delivery"),
                    ));
                }
            },
        };
        self.check_enabled(name, by_name)?;
        let action = mapping.action.as_deref().unwrap_or(name);
        if action.starts_with(RESERVED_PREFIX) {
            return Err(Drop::new(
                DropCode::ReservedPrefix,
                format!("the action `{action}` begins with `moe_`, which MoEngage reserves"),
            ));
        }
        let action = keep::kept_action(action, warnings);

        let mut state = EventState::new(&event, line, self);
        state.recalled = recalled.as_deref();
        let customer_id = state.customer_id(warnings)?;
        let platform = state.platform(mapping.platform.as_ref().unwrap_or(&blueprint.platform), warnings);
        // An app's version and device mean something only on an app's call: a web page's
        // `context.app` is often its SDK's own.
        let from_app = matches!(platform.json(), "\"ANDROID\"" | "\"iOS\"");

        out.extend_from_slice(b"{\"type\":\"event\",\"customer_id\":");
        out.extend_from_slice(customer_id.as_bytes());
        if from_app && let Some(device_id) = blueprint.app.device_id.as_ref().and_then(|source| state.resolve_text(source, warnings)) {
            out.extend_from_slice(b",\"device_id\":");
            write_str(out, &device_id);
        }
        state.write_group(out, b",\"user_identifiers\":{", &blueprint.user_identifiers, warnings);
        state.write_user_attributes(out, &blueprint.user_attributes, warnings);
        out.extend_from_slice(b",\"actions\":[{\"action\":");
        write_str(out, &action);
        out.extend_from_slice(b",\"platform\":");
        platform.write(out);
        if from_app && let Some(version) = blueprint.app.app_version.as_ref().and_then(|source| state.resolve_text(source, warnings)) {
            out.extend_from_slice(b",\"app_version\":");
            write_str(out, &version);
        }
        out.extend_from_slice(b",\"attributes\":{");
        state.write_action_attributes(out, mapping, warnings);
        out.push(b'}');
        let event_time = match event.timestamp {
            Some(timestamp) if timestamp > received_at => {
                warnings.push(Warning {
                    code: WarningCode::FutureTimestamp,
                    message: format!(
                        "timestamp {timestamp} is in the future; sent as {received_at}, when Signal received it"
                    ),
                });
                Some(received_at)
            }
            other => other,
        };
        if let Some(time) = event_time {
            out.extend_from_slice(b",\"current_time\":\"");
            crate::event::write_time(out, time);
            out.push(b'"');
        }
        if let Some(zone) = event.context_str("timezone") {
            match zone_offset_seconds(&zone, event_time.unwrap_or(received_at)) {
                Some(seconds) => {
                    out.extend_from_slice(b",\"user_timezone_offset\":");
                    write_offset(out, seconds);
                }
                None => warnings.push(Warning {
                    code: WarningCode::InvalidTimezone,
                    message: format!(
                        "context.timezone `{zone}` is neither an IANA time zone nor an offset such as GMT+0530; no user_timezone_offset sent"
                    ),
                }),
            }
        }
        out.extend_from_slice(b"}]}");
        within_body_limit(out)?;
        Ok(Written { kind: RequestKind::Event, action: action.into_owned() })
    }

    /// Who a call is, for the automatic merge at login, when the blueprint merges anonymous
    /// customers and the call carries an `anonymous_id`: that id, and its `user_id` when it has one
    /// (a login, when the two differ). A call without a `user_id` is delivered under the anonymous
    /// id.
    pub fn login_of(&self, line: &str) -> Option<Login> {
        if !self.blueprint.merge_anonymous {
            return None;
        }
        login(&Event::parse(line).ok()?)
    }

    /// The merge a login asked for (`line` is the login's call):
    /// `{"merge_data":[{"merged_user":<anonymous_id>,"retained_user":<user_id>}]}`, into `out`: a
    /// request for MoEngage's merge API.
    pub fn map_automatic_merge_into(&self, line: &str, out: &mut Vec<u8>) -> Result<RequestKind, Drop> {
        out.clear();
        let login = self.login_of(line);
        let Some(Login { anonymous_id, user_id: Some(user_id) }) = login else {
            return Err(Drop::new(
                DropCode::InvalidEvent,
                "an automatic merge needs a call with both `user_id` and `anonymous_id`, and a blueprint that merges anonymous customers",
            ));
        };
        out.extend_from_slice(b"{\"merge_data\":[{\"merged_user\":");
        write_str(out, &anonymous_id);
        out.extend_from_slice(b",\"retained_user\":");
        write_str(out, &user_id);
        out.extend_from_slice(b"}]}");
        Ok(RequestKind::Merge)
    }

    /// Whether the call `line` registers its device, besides what it sends itself: the blueprint
    /// registers devices on calls of its name, and it carries `context.device.token` and
    /// `context.device.type`.
    pub fn registers_device(&self, line: &str) -> bool {
        Event::parse(line).is_ok_and(|event| self.asks_device(&event))
    }

    /// The rule of [`Mapper::registers_device`], on an event already read.
    fn asks_device(&self, event: &Event<'_>) -> bool {
        self.blueprint.registers_device_on(&event.name) && device_of(event).is_some()
    }

    /// The device registration of the call `line` (one [`Mapper::registers_device`] accepts):
    /// `{"type":"device","customer_id":...,"device_id":...,"attributes":{...}}`, written into
    /// `out` (cleared first): a request for MoEngage's device API.
    pub fn map_device_into(&self, line: &str, out: &mut Vec<u8>, warnings: &mut Vec<Warning>) -> Result<RequestKind, Drop> {
        out.clear();
        let event = Event::parse(line).map_err(|invalid| Drop::new(DropCode::InvalidEvent, invalid.message))?;
        let Some(device) = &self.blueprint.device else {
            return Err(Drop::new(
                DropCode::NotInBlueprint,
                "devices are registered through the blueprint's `device:` section, which this blueprint does not have",
            ));
        };
        if device_of(&event).is_none() {
            return Err(Drop::new(
                DropCode::InvalidEvent,
                "a device registration needs the call's `context.device.token` and `context.device.type`",
            ));
        }
        // Read, never written: the call that asked for this registration remembered its traits
        // when it was delivered, and a later call may have changed them since.
        let recalled = self.memory.as_ref().zip(user_key(&event)).and_then(|(memory, user)| memory.recall(&user));
        let mut state = EventState::new(&event, line, self);
        state.recalled = recalled.as_deref();
        let customer_id = state.customer_id(warnings)?;
        out.extend_from_slice(b"{\"type\":\"device\",\"customer_id\":");
        out.extend_from_slice(customer_id.as_bytes());
        if let Some(device_id) = device.device_id.as_ref().and_then(|source| state.resolve_text(source, warnings)) {
            out.extend_from_slice(b",\"device_id\":");
            write_str(out, &device_id);
        }
        out.extend_from_slice(b",\"attributes\":{");
        let mut attributes = AttributeWriter::new(out, device.attributes.len());
        for (name, source) in &device.attributes {
            if let Some(found) = state.resolve(source, warnings) {
                state.insert_kept(&mut attributes, &[], Cow::Borrowed(&**name), found, Priority::Declared, warnings);
            }
        }
        attributes.finish(warnings);
        out.extend_from_slice(b"}}");
        within_body_limit(out)?;
        Ok(RequestKind::Device)
    }

    /// Whether mapping an event of this call type and name (as recorded at intake; `None` when
    /// not known), whose text is `line`, may read or write remembered traits: if not, a store need
    /// not be asked for its user's. An event carries traits in a member named `traits`; one whose
    /// text never says `traits` has none to remember, and one this mapper drops by its name
    /// needs none recalled.
    pub fn may_use_remembered(&self, call_type: Option<&str>, event: Option<&str>, line: &str) -> bool {
        if self.memory.is_none() {
            return false;
        }
        if memchr::memmem::find(line.as_bytes(), b"traits").is_some() {
            return true;
        }
        match (call_type, event) {
            (Some("group"), _) => false,
            (Some("track" | "page" | "screen"), Some(name)) => match self.blueprint.events.get(name) {
                Some(_) => self.check_enabled(name, true).is_ok(),
                None => self.blueprint.catch_all.is_some() && self.check_enabled(name, false).is_ok(),
            },
            _ => true,
        }
    }

    /// Lays the event's traits on what is remembered of its user; returns what was remembered
    /// before, for the identity fields the event does not carry.
    fn remember(&self, event: &Event<'_>) -> Option<Arc<str>> {
        let memory = self.memory.as_ref()?;
        let user = user_key(event)?;
        let recalled = memory.recall(&user);
        if event.traits.members.is_empty() {
            return recalled;
        }
        let traits: Arc<str> = match &recalled {
            // What most events of a user carry: exactly the traits remembered, so nothing is new.
            Some(old) if event.traits_text() == Some(&**old) => return recalled,
            Some(old) => {
                let known = RawObject::parse(Raw::trusted(old)).unwrap_or_default();
                // Most events repeat what is known: then nothing is written.
                let news = event.traits.members.iter().any(|(name, value)| {
                    value.kind() != JsonKind::Null && known.get(name).is_none_or(|was| was.get() != value.get())
                });
                if !news {
                    return recalled;
                }
                remembered_json(&known.overlaid(event.traits.clone())).into()
            }
            None => remembered_json(&event.traits).into(),
        };
        if recalled.as_deref() != Some(&*traits) {
            memory.remember(&user, traits);
        }
        recalled
    }

    /// Drops an event the pipeline does not enable. `by_name`: the blueprint maps it by name
    /// rather than through `"*"`.
    fn check_enabled(&self, name: &str, by_name: bool) -> Result<(), Drop> {
        match &self.enabled {
            Some(enabled)
                if !(enabled.contains(name) || (!by_name && enabled.contains(crate::compile::CATCH_ALL))) =>
            {
                Err(Drop::new(
                    DropCode::NotEnabled,
                    format!("`{name}` is mapped by the blueprint but not enabled in this pipeline"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// An identify call as a MoEngage customer update:
    /// `{"type":"customer","customer_id":...,"attributes":{...}}`.
    fn map_identify(
        &self,
        event: &Event<'_>,
        line: &str,
        out: &mut Vec<u8>,
        warnings: &mut Vec<Warning>,
    ) -> Result<String, Drop> {
        let Some(customer) = &self.blueprint.customer else {
            return Err(Drop::new(
                DropCode::NotInBlueprint,
                "identify calls update profiles through the blueprint's `customer:` section, which this blueprint does not have; the call is dropped before delivery",
            ));
        };
        self.check_enabled("identify", true)?;
        let state = EventState::new(event, line, self);
        let customer_id = state.customer_id(warnings)?;
        out.extend_from_slice(b"{\"type\":\"customer\",\"customer_id\":");
        out.extend_from_slice(customer_id.as_bytes());
        out.extend_from_slice(b",\"attributes\":{");
        let mut attributes = AttributeWriter::new(out, event.traits.members.len() + customer.attributes.len());
        if customer.pass_through {
            for (name, value) in &event.traits.members {
                if customer.not_passed.binary_search_by(|passed| (**passed).cmp(name)).is_ok() {
                    continue;
                }
                if name.starts_with(RESERVED_PREFIX) {
                    warnings.push(reserved_attribute(name));
                    continue;
                }
                let name = Cow::Borrowed(name.as_ref());
                state.insert_kept(&mut attributes, &[], name, Found::Raw(*value), Priority::PassedThrough, warnings);
            }
        }
        for (name, source) in &customer.attributes {
            if let Some(found) = state.resolve(source, warnings) {
                let name = Cow::Borrowed(&**name);
                state.insert_kept(&mut attributes, &[], name, found, Priority::Declared, warnings);
            }
        }
        attributes.finish(warnings);
        out.extend_from_slice(b"}}");
        within_body_limit(out)?;
        Ok("identify".to_owned())
    }

    /// An alias call as a MoEngage merge:
    /// `{"merge_data":[{"merged_user":previous_id,"retained_user":customer_id}]}`.
    fn map_alias(
        &self,
        event: &Event<'_>,
        line: &str,
        out: &mut Vec<u8>,
        warnings: &mut Vec<Warning>,
    ) -> Result<String, Drop> {
        if !self.blueprint.merge {
            return Err(Drop::new(
                DropCode::NotInBlueprint,
                "alias calls merge two users, which this blueprint does not do (it has no `merge: true`); the call is dropped before delivery",
            ));
        }
        self.check_enabled("alias", true)?;
        if let (Some(memory), Some(merged), Some(retained)) =
            (&self.memory, event.field("previous_id").and_then(user_text), user_key(event))
            && merged != retained
        {
            memory.merge(&merged, &retained);
        }
        let state = EventState::new(event, line, self);
        let retained = state.customer_id(warnings)?;
        let merged = event.field("previous_id").map(Found::Raw).and_then(|found| customer_id_text(&found));
        let Some(merged) = merged else {
            return Err(Drop::new(
                DropCode::InvalidEvent,
                "an alias call needs `previous_id` (`previousId`): the user merged into `user_id`",
            ));
        };
        if merged == retained {
            return Err(Drop::new(
                DropCode::InvalidEvent,
                format!("`previous_id` and the customer_id are the same user, {merged}: there is nothing to merge"),
            ));
        }
        out.extend_from_slice(b"{\"merge_data\":[{\"merged_user\":");
        out.extend_from_slice(merged.as_bytes());
        out.extend_from_slice(b",\"retained_user\":");
        out.extend_from_slice(retained.as_bytes());
        out.extend_from_slice(b"}]}");
        within_body_limit(out)?;
        Ok("alias".to_owned())
    }
}

/// What a call asks for once it is delivered (see [`Mapper::map_asking`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asks {
    /// It carries a push token the blueprint registers as a device.
    pub registers_device: bool,
    /// Who it is, when the blueprint merges anonymous customers at login.
    pub login: Option<Login>,
}

fn login(event: &Event<'_>) -> Option<Login> {
    // An alias merges explicitly, through the blueprint's `merge`.
    if event.call == CallType::Alias {
        return None;
    }
    let anonymous_id = event.field("anonymous_id").and_then(user_text).filter(|id| !id.is_empty())?;
    let user_id = event.field("user_id").and_then(user_text).filter(|id| !id.is_empty() && *id != anonymous_id);
    Some(Login { anonymous_id, user_id })
}

/// Who a call is, for the automatic merge at login (see [`Mapper::login_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Its `anonymous_id`.
    pub anonymous_id: String,
    /// Its `user_id`, when it has one other than the anonymous id.
    pub user_id: Option<String>,
}

/// The push token and device type a call carries, when it carries both as text.
fn device_of<'a>(event: &Event<'a>) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
    let device = RawObject::parse(event.context.get("device")?).ok()?;
    let text = |name: &str| device.get(name).and_then(|raw| raw.as_str()).filter(|text| !text.is_empty());
    Some((text("token")?, text("type")?))
}

/// Whose traits an event carries: its `user_id`, as text.
fn user_key<'a>(event: &Event<'a>) -> Option<Cow<'a, str>> {
    event.field("user_id").and_then(user_text_borrowed)
}

/// A user id as text: a string as it is, a number as written. The collector labels stored events
/// with it, so that the users a store is asked for are the ones the interpreter remembers.
pub fn user_text(raw: Raw<'_>) -> Option<String> {
    user_text_borrowed(raw).map(Cow::into_owned)
}

/// [`user_text`], borrowed from the event where it can be.
fn user_text_borrowed(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    match raw.kind() {
        JsonKind::String => raw.as_str().filter(|text| !text.is_empty()),
        JsonKind::Number => Some(Cow::Borrowed(raw.get().trim())),
        _ => None,
    }
}

/// Appends a zone's offset in seconds (within a day either way), as decimal digits.
// Not through the formatter, whose generic machinery costs more than the digits.
fn write_offset(out: &mut Vec<u8>, seconds: i32) {
    if seconds < 0 {
        out.push(b'-');
    }
    let mut value = seconds.unsigned_abs();
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + u8::try_from(value % 10).unwrap_or(0);
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Drops a body over MoEngage's 128 KB.
fn within_body_limit(out: &mut Vec<u8>) -> Result<(), Drop> {
    if out.len() <= MAX_BODY_BYTES {
        return Ok(());
    }
    let size = out.len();
    out.clear();
    Err(Drop::new(
        DropCode::PayloadTooLarge,
        format!("the MoEngage request would be {size} bytes; MoEngage accepts at most {MAX_BODY_BYTES} (128 KB)"),
    ))
}

/// A customer id as JSON string text: strings as they are, numbers quoted.
fn customer_id_text<'x>(found: &Found<'x>) -> Option<Cow<'x, str>> {
    match found.kind() {
        // A string value from the event is compact JSON text already.
        JsonKind::String if let Found::Raw(raw) = found => (raw.get().len() > 2).then_some(Cow::Borrowed(raw.get())),
        JsonKind::String => {
            let mut out = Vec::with_capacity(found.json().len());
            found.write(&mut out);
            // Written from text, so it is text: checked rather than copied.
            (out.len() > 2).then(|| String::from_utf8(out).ok().map(Cow::Owned)).flatten()
        }
        JsonKind::Number => Some(Cow::Owned(format!("\"{}\"", found.json().trim()))),
        _ => None,
    }
}

fn source_text(source: &CompiledSource) -> String {
    match &source.origin {
        Origin::Paths(paths) => paths.iter().map(FieldPath::text).collect::<Vec<_>>().join(" or "),
        Origin::Constant(json) => json.to_string(),
    }
}

/// MoEngage's name for a device type or an SDK's channel: `android` → `ANDROID`; `ios`, `ipados`,
/// `tvos`, `watchos` → `iOS`; anything else → `web`. RudderStack's channels (`android-sdk`) count.
fn platform_name(text: &str) -> &'static str {
    let text = text.trim();
    let family = text.split(['-', '_', ' ']).next().unwrap_or_default();
    if family.eq_ignore_ascii_case("android") {
        "\"ANDROID\""
    } else if ["ios", "ipados", "tvos", "watchos"].iter().any(|name| family.eq_ignore_ascii_case(name)) {
        "\"iOS\""
    } else {
        "\"web\""
    }
}

/// Per-event state shared by the lookups of one mapping.
struct EventState<'x> {
    event: &'x Event<'x>,
    /// The user's traits remembered from earlier events, as compact JSON.
    recalled: Option<&'x str>,
    remembered: OnceCell<Option<RawObject<'x>>>,
    line: &'x str,
    whole: OnceCell<Option<Value>>,
    region: OnceCell<Option<PhoneRegion>>,
    mapper: &'x Mapper,
}

impl<'x> EventState<'x> {
    fn new(event: &'x Event<'x>, line: &'x str, mapper: &'x Mapper) -> Self {
        EventState {
            event,
            recalled: None,
            remembered: OnceCell::new(),
            line,
            whole: OnceCell::new(),
            region: OnceCell::new(),
            mapper,
        }
    }

    /// The blueprint's `customer_id` as JSON string text, or the drop of an event without one.
    fn customer_id(&self, warnings: &mut Vec<Warning>) -> Result<Cow<'x, str>, Drop> {
        let source = &self.mapper.blueprint.customer_id;
        self.resolve(source, warnings).and_then(|found| customer_id_text(&found)).ok_or_else(|| {
            Drop::new(
                DropCode::MissingCustomerId,
                format!(
                    "no customer_id: `{}` is missing or empty, and MoEngage refuses events without one",
                    source_text(source)
                ),
            )
        })
    }

    fn resolve(&self, source: &'x CompiledSource, warnings: &mut Vec<Warning>) -> Option<Found<'x>> {
        self.resolve_from(source, false, warnings)
    }

    /// Resolves an identity field: a trait the event does not carry is taken from the traits
    /// remembered for its user.
    fn resolve_identity(&self, source: &'x CompiledSource, warnings: &mut Vec<Warning>) -> Option<Found<'x>> {
        self.resolve_from(source, true, warnings)
    }

    /// A value as text, for a field MoEngage takes as a string (`app_version`, `device_id`): a
    /// string, or a number as written.
    fn resolve_text(&self, source: &'x CompiledSource, warnings: &mut Vec<Warning>) -> Option<Cow<'x, str>> {
        let found = self.resolve(source, warnings)?;
        match found.kind() {
            JsonKind::String => found.as_text().map(|text| Cow::<str>::Owned(text.into_owned())).filter(|text| !text.is_empty()),
            JsonKind::Number => Some(Cow::Owned(found.json().trim().to_owned())),
            _ => None,
        }
    }

    /// The action's platform, as JSON text.
    fn platform(&self, source: &'x CompiledSource, warnings: &mut Vec<Warning>) -> Found<'x> {
        match self.resolve(source, warnings) {
            Some(found) if found.kind() == JsonKind::String => found,
            Some(found) => found.as_text().map_or(Found::Raw(Raw::trusted("\"web\"")), |text| built_string(&text)),
            None => Found::Raw(Raw::trusted("\"web\"")),
        }
    }

    fn resolve_from(
        &self,
        source: &'x CompiledSource,
        identity: bool,
        warnings: &mut Vec<Warning>,
    ) -> Option<Found<'x>> {
        let mut found = None;
        let mut recalled = false;
        match &source.origin {
            Origin::Constant(json) => found = Some(Found::Raw(Raw::trusted(json))),
            Origin::Paths(paths) => {
                for path in paths.iter() {
                    found = match path {
                        FieldPath::Direct { root, steps, .. } => walk(self.event, root, steps),
                        FieldPath::Query { query, .. } => self.query(query),
                    }
                    .filter(|found| found.kind() != JsonKind::Null);
                    if found.is_none()
                        && identity
                        && let FieldPath::Direct { root, steps, .. } = path
                        && &**root == "traits"
                        && let Some(remembered) = self.remembered()
                    {
                        found = walk_object(remembered, steps).filter(|found| found.kind() != JsonKind::Null);
                        recalled = found.is_some();
                    }
                    if found.is_some() {
                        break;
                    }
                }
            }
        }
        let transformed = match (found, source.transform) {
            // A remembered value that cannot be used is left out quietly: it was warned about on the
            // event that brought it, not on every later event of its user.
            (Some(found), Some(transform)) if recalled => self.transform(found, transform, source, &mut Vec::new()),
            (Some(found), Some(transform)) => self.transform(found, transform, source, warnings),
            (found, _) => found,
        };
        transformed.or_else(|| source.default.as_deref().map(|json| Found::Raw(Raw::trusted(json))))
    }

    fn remembered(&self) -> Option<&RawObject<'x>> {
        self.remembered
            .get_or_init(|| self.recalled.and_then(|text| RawObject::parse(Raw::trusted(text)).ok()))
            .as_ref()
    }

    fn query(&self, query: &jsonpath_rust::parser::model::JpQuery) -> Option<Found<'x>> {
        let whole = self.whole.get_or_init(|| normalised_value(self.line)).as_ref()?;
        let matches = jsonpath_rust::query::js_path_process(query, whole).ok()?;
        if matches.is_empty() {
            return None;
        }
        let values: Vec<&Value> = matches.into_iter().map(|m| m.val).collect();
        serde_json::to_string(&values).ok().map(Found::Built)
    }

    fn transform(
        &self,
        found: Found<'x>,
        transform: Transform,
        source: &CompiledSource,
        warnings: &mut Vec<Warning>,
    ) -> Option<Found<'x>> {
        match transform {
            Transform::E164 => {
                let text = found.as_text()?;
                match self.mapper.phones.normalise(&text, self.region()) {
                    Some(e164) => Some(built_string(&e164)),
                    None => {
                        let region = self.region().map_or_else(
                            || "no region (no +CC, context.locale or default region)".to_owned(),
                            |r| format!("region {}", r.code()),
                        );
                        warnings.push(Warning {
                            code: WarningCode::InvalidPhone,
                            message: format!(
                                "`{}` = {} is not a phone number that can be written in E.164 ({region}); left out",
                                source_text(source),
                                found.json()
                            ),
                        });
                        None
                    }
                }
            }
            Transform::String => match found.kind() {
                JsonKind::Number | JsonKind::Bool => Some(built_string(found.json().trim())),
                _ => Some(found),
            },
            Transform::Platform => {
                let text = found.as_text()?;
                Some(Found::Raw(Raw::trusted(platform_name(&text))))
            }
            Transform::Lowercase | Transform::Trim => {
                if found.kind() != JsonKind::String {
                    return Some(found);
                }
                let text = found.as_text()?;
                let changed =
                    if transform == Transform::Trim { text.trim().to_owned() } else { text.to_lowercase() };
                Some(built_string(&changed))
            }
        }
    }

    fn region(&self) -> Option<PhoneRegion> {
        *self.region.get_or_init(|| {
            self.event
                .context_str("locale")
                .and_then(|locale| PhoneRegion::from_locale(&locale))
                .or(self.mapper.default_region)
        })
    }

    /// Writes `prefix` and the group's members and `}`, or nothing when none has a value.
    fn write_group(
        &self,
        out: &mut Vec<u8>,
        prefix: &[u8],
        members: &'x [(Box<str>, CompiledSource)],
        warnings: &mut Vec<Warning>,
    ) {
        let start = out.len();
        out.extend_from_slice(prefix);
        let mut written = 0;
        for (name, source) in members {
            if let Some(found) = self.resolve_identity(source, warnings) {
                if written > 0 {
                    out.push(b',');
                }
                write_str(out, name);
                out.push(b':');
                found.write(out);
                written += 1;
            }
        }
        if written == 0 {
            out.truncate(start);
        } else {
            out.push(b'}');
        }
    }

    /// Writes the root user `attributes`, held to what MoEngage keeps as action attributes are, or
    /// nothing when none has a value.
    fn write_user_attributes(
        &self,
        out: &mut Vec<u8>,
        members: &'x [(Box<str>, CompiledSource)],
        warnings: &mut Vec<Warning>,
    ) {
        let start = out.len();
        out.extend_from_slice(b",\"attributes\":{");
        let mut attributes = AttributeWriter::new(out, members.len());
        for (name, source) in members {
            if let Some(found) = self.resolve_identity(source, warnings) {
                self.insert_kept(&mut attributes, &[], Cow::Borrowed(name), found, Priority::Declared, warnings);
            }
        }
        let empty = attributes.is_empty();
        attributes.finish(warnings);
        if empty {
            out.truncate(start);
        } else {
            out.push(b'}');
        }
    }

    fn write_action_attributes(
        &self,
        out: &mut Vec<u8>,
        mapping: &'x CompiledEvent,
        warnings: &mut Vec<Warning>,
    ) {
        // An array of objects the blueprint takes fields from becomes one attribute per field.
        let taken: usize = mapping.object_arrays.iter().map(|(_, fields)| fields.len()).sum();
        let mut attributes =
            AttributeWriter::new(out, self.event.properties.members.len() + mapping.attributes.len() + taken);
        for (key, value) in &self.event.properties.members {
            if mapping.exclude.iter().any(|excluded| crate::scan::same_name(excluded, key)) {
                continue;
            }
            let renamed = mapping.rename.iter().find(|(from, _)| crate::scan::same_name(from, key));
            let (name, priority) = match renamed {
                Some((_, to)) => (Cow::Borrowed(&**to), Priority::Renamed),
                None if mapping.pass_through => (Cow::Borrowed(&**key), Priority::PassedThrough),
                None => continue,
            };
            if name.starts_with(RESERVED_PREFIX) {
                warnings.push(reserved_attribute(&name));
                continue;
            }
            self.insert_kept(&mut attributes, &mapping.object_arrays, name, Found::Raw(*value), priority, warnings);
        }
        for (name, source) in &mapping.attributes {
            if let Some(found) = self.resolve(source, warnings) {
                let name = Cow::Borrowed(&**name);
                self.insert_kept(&mut attributes, &mapping.object_arrays, name, found, Priority::Declared, warnings);
            }
        }
        attributes.finish(warnings);
    }

    /// Adds an attribute as MoEngage keeps it: flattened for a workspace without object data, its
    /// name and value held to MoEngage's limits, or left out with a warning. `object_arrays`: the
    /// fields the blueprint takes from arrays of objects, by attribute.
    fn insert_kept(
        &self,
        attributes: &mut AttributeWriter<'_>,
        object_arrays: &'x [(Box<str>, Vec<(Box<str>, Box<str>)>)],
        name: Cow<'x, str>,
        found: Found<'x>,
        priority: Priority,
        warnings: &mut Vec<Warning>,
    ) {
        if !self.mapper.object_data {
            match keep::shape(&found) {
                keep::Shape::Plain => {}
                keep::Shape::Mixed => {
                    warnings.push(keep::mixed_warning(&name, &found));
                    return;
                }
                keep::Shape::Nested => {
                    let taken = object_arrays.iter().find(|(array, _)| crate::scan::same_name(array, &name)).map(|(_, taken)| &taken[..]);
                    if let (Found::Raw(raw), Some(taken)) = (&found, taken)
                        && let Some(listed) = raw.item_members(self.event.item_members())
                        && let Some(plain) = keep::PlainTaking::of(listed, taken)
                    {
                        for field in plain.fields() {
                            let Some((_, sent)) = taken.get(field) else { continue };
                            if sent.starts_with(RESERVED_PREFIX) {
                                warnings.push(reserved_attribute(sent));
                                continue;
                            }
                            let name = keep::kept_name(Cow::Borrowed(&**sent), "attribute", warnings);
                            attributes.insert(&name, priority, |out| plain.write(field, listed, out));
                        }
                        return;
                    }
                    let leaves: Vec<(Cow<'x, str>, Found<'x>)> = match &found {
                        Found::Raw(raw) => keep::flattened(&name, *raw, self.event.item_members(), taken, warnings),
                        Found::Built(text) => keep::flattened(&name, Raw::trusted(text), &[], taken, warnings)
                            .into_iter()
                            .map(|(leaf, value)| (leaf, value.into_owned()))
                            .collect(),
                    };
                    for (leaf, value) in leaves {
                        if leaf.starts_with(RESERVED_PREFIX) {
                            warnings.push(reserved_attribute(&leaf));
                            continue;
                        }
                        let leaf = keep::kept_name(leaf, "attribute", warnings);
                        attributes.insert(&leaf, priority, |out| value.write(out));
                    }
                    return;
                }
            }
        }
        let name = keep::kept_name(name, "attribute", warnings);
        if let Some(found) = keep::kept_value(&name, found, warnings) {
            attributes.insert(&name, priority, |out| found.write(out));
        }
    }
}

fn reserved_attribute(name: &str) -> Warning {
    Warning {
        code: WarningCode::ReservedAttribute,
        message: format!("attribute `{name}` removed: the `moe_` prefix is reserved by MoEngage"),
    }
}

/// Follows a direct path over the borrowed event.
fn walk<'x>(event: &Event<'x>, root: &str, steps: &[Step]) -> Option<Found<'x>> {
    match event.object(root) {
        Some(object) => walk_object(object, steps),
        None => walk_steps(event.field(root)?, steps),
    }
}

/// Follows a path's steps below a parsed object.
fn walk_object<'x>(object: &RawObject<'x>, steps: &[Step]) -> Option<Found<'x>> {
    match steps.split_first() {
        Some((Step::Key(key), rest)) => walk_steps(object.get(key)?, rest),
        Some((Step::Index(_), _)) => None,
        None => Some(Found::Built(object_json(object))),
    }
}

/// Follows steps below a value.
fn walk_steps<'x>(mut current: Raw<'x>, steps: &[Step]) -> Option<Found<'x>> {
    for step in steps {
        current = match step {
            Step::Key(key) => {
                if current.kind() != JsonKind::Object {
                    return None;
                }
                current.member(key)?
            }
            Step::Index(index) => {
                if current.kind() != JsonKind::Array {
                    return None;
                }
                let items = current.items().ok()?;
                let position = if *index < 0 {
                    items.len().checked_sub(usize::try_from(index.unsigned_abs()).ok()?)?
                } else {
                    usize::try_from(*index).ok()?
                };
                *items.get(position)?
            }
        };
    }
    Some(Found::Raw(current))
}

/// The event as a `Value` for JSONPath queries, with the same name normalisation as the borrowed
/// view, so a query sees `user_id` and `traits` as a direct path would.
fn normalised_value(line: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(line).ok()?;
    let object = value.as_object_mut()?;
    for (alias, canonical) in
        [("userId", "user_id"), ("anonymousId", "anonymous_id"), ("messageId", "message_id")]
    {
        if let Some(aliased) = object.remove(alias) {
            object.entry(canonical).or_insert(aliased);
        }
    }
    let normalised = |traits: Option<Value>| {
        let mut traits = match traits {
            Some(Value::Object(traits)) => traits,
            _ => serde_json::Map::new(),
        };
        for (alias, canonical) in [("firstName", "first_name"), ("lastName", "last_name")] {
            if let Some(aliased) = traits.remove(alias) {
                traits.entry(canonical).or_insert(aliased);
            }
        }
        traits
    };
    // Moved rather than copied, so that a descendant query (`$..email`) finds each value once.
    let mut traits =
        normalised(object.get_mut("context").and_then(Value::as_object_mut).and_then(|c| c.remove("traits")));
    for (name, value) in normalised(object.remove("traits")) {
        if !(value.is_null() && traits.contains_key(&name)) {
            traits.insert(name, value);
        }
    }
    if !traits.is_empty() {
        object.insert("traits".into(), Value::Object(traits));
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_written_as_decimal_numbers() {
        for seconds in [0, 1, -1, 9, 10, -10, 3_600, 19_800, -18_000, 45_900, -86_399, 86_400, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            write_offset(&mut out, seconds);
            assert_eq!(String::from_utf8(out).expect("text"), seconds.to_string());
        }
    }
}
