//! Signal's MoEngage blueprints: the YAML model and its JSON Schema, the compiler (with
//! `FILE:LINE:COL` diagnostics) and the interpreter that turns one Signal event into one MoEngage
//! Track Event request body, or one drop code.
//!
//! Pure: no I/O but reading blueprint files.

mod attributes;
pub mod compile;
pub mod event;
mod found;
pub mod interpret;
mod keep;
pub mod memory;
pub mod model;
pub mod path;
pub mod phone;
pub mod scan;
pub mod warning;

// The YAML and diagnostics toolkit is shared with the configuration; blueprints' own modules and
// callers reach it by the names it had when it lived here.
pub use diagnostics::{diagnostic, files, schema_check, yaml};

use std::collections::HashMap;

pub use compile::{PRESETS, compile_file, compile_file_within, compile_preset, compile_str};
pub use diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
pub use interpret::{Asks, Drop, DropCode, Login, Mapped, Mapper, Outcome, Written, user_text};
pub use moengage::RequestKind;
pub use warning::{Warning, WarningCode};
pub use memory::{RunMemory, TraitMemory};
pub use model::{Transform, blueprint_schema};
pub use phone::{PhoneNormaliser, PhoneRegion};

/// MoEngage reserves names that begin with this prefix.
pub const RESERVED_PREFIX: &str = "moe_";

/// The largest request body MoEngage accepts: 128 KB.
pub use moengage::MAX_BODY_BYTES;

/// A compiled blueprint: paths parsed, constants serialised, `extends` merged. Immutable and cheap to
/// share between workers.
#[derive(Debug)]
pub struct Blueprint {
    files: Vec<String>,
    /// What the compiler noticed that does not stop the blueprint from working.
    warnings: Vec<Diagnostic>,
    platform: CompiledSource,
    /// What an app's calls add: `app_version` on the action, `device_id` at the root.
    app: CompiledApp,
    customer_id: CompiledSource,
    user_identifiers: Vec<(Box<str>, CompiledSource)>,
    user_attributes: Vec<(Box<str>, CompiledSource)>,
    events: HashMap<Box<str>, CompiledEvent>,
    catch_all: Option<CompiledEvent>,
    /// How identify calls update profiles; `None`: they are not sent.
    customer: Option<CompiledCustomer>,
    /// How calls register their device; `None`: they do not.
    device: Option<CompiledDevice>,
    /// Whether alias calls merge users.
    merge: bool,
    /// Whether a login merges the anonymous customer it was before.
    merge_anonymous: bool,
}

impl Blueprint {
    /// The files it was compiled from, the named one first.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// What the compiler noticed that does not stop the blueprint from working, such as an action
    /// name MoEngage will change; each shown as `FILE:LINE:COL: warning[CODE]: ...`.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The Signal event names it maps, sorted.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.events.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// Whether identify calls update profiles through MoEngage's customer API.
    pub fn updates_customers(&self) -> bool {
        self.customer.is_some()
    }

    /// Whether alias calls merge users through MoEngage's merge API.
    pub fn merges_users(&self) -> bool {
        self.merge
    }

    /// Whether a login merges the anonymous customer it was before (see [`Mapper::login_of`]).
    pub fn merges_anonymous(&self) -> bool {
        self.merge_anonymous
    }

    /// Whether calls named `name` (`identify`, `Application Opened`) register their device.
    pub fn registers_device_on(&self, name: &str) -> bool {
        // Asked of every call, and the list is short: compared in place, not through `memcmp`.
        self.device.as_ref().is_some_and(|device| device.on.iter().any(|on| crate::scan::same_name(on, name)))
    }

    /// Whether it maps every event it does not name (`"*"`).
    pub fn maps_every_event(&self) -> bool {
        self.catch_all.is_some()
    }

    /// Whether it maps `event` (by name or through `"*"`).
    pub fn maps(&self, event: &str) -> bool {
        self.events.contains_key(event) || self.catch_all.is_some()
    }

    /// The MoEngage action `event` becomes, when mapped.
    pub fn action_for<'a>(&'a self, event: &'a str) -> Option<&'a str> {
        let mapping = self.events.get(event).or(self.catch_all.as_ref())?;
        Some(mapping.action.as_deref().unwrap_or(event))
    }
}

/// How one event becomes an action.
#[derive(Debug)]
pub(crate) struct CompiledEvent {
    action: Option<Box<str>>,
    platform: Option<CompiledSource>,
    pass_through: bool,
    // Lists rather than hash sets: a handful of names, compared against every property.
    rename: Vec<(Box<str>, Box<str>)>,
    exclude: Vec<Box<str>>,
    attributes: Vec<(Box<str>, CompiledSource)>,
    /// Attribute name → the (field, name sent) pairs taken from its array of objects.
    object_arrays: Vec<(Box<str>, Vec<(Box<str>, Box<str>)>)>,
}

/// How an identify call becomes a customer update.
#[derive(Debug)]
pub(crate) struct CompiledCustomer {
    attributes: Vec<(Box<str>, CompiledSource)>,
    pass_through: bool,
    /// Traits not passed through: excluded, or read by one of `attributes`. Sorted.
    not_passed: Vec<Box<str>>,
}

/// How a call registers its device.
#[derive(Debug)]
pub(crate) struct CompiledDevice {
    /// The names of the calls that register it, sorted.
    on: Vec<Box<str>>,
    device_id: Option<CompiledSource>,
    attributes: Vec<(Box<str>, CompiledSource)>,
}

/// Where a value comes from, compiled.
#[derive(Debug)]
pub(crate) struct CompiledSource {
    origin: Origin,
    transform: Option<Transform>,
    /// Compact JSON text.
    default: Option<Box<str>>,
}

#[derive(Debug)]
pub(crate) enum Origin {
    /// Tried in order: the first that finds a value gives it (most sources have one).
    Paths(Box<[path::FieldPath]>),
    /// Compact JSON text.
    Constant(Box<str>),
}

/// What an app's calls add to their request, when their platform is an app's.
#[derive(Debug, Default)]
pub(crate) struct CompiledApp {
    app_version: Option<CompiledSource>,
    device_id: Option<CompiledSource>,
}
