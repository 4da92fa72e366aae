//! A kind of destination, as the configuration names it (`type: moengage`): the schema of its
//! settings, and how settings become a [`Destination`]. The configuration knows destinations only
//! through this trait; each destination's crate implements it and one registry lists them.

use std::sync::Arc;

use crate::Destination;

/// A setting a destination refused, in words the configuration reports at the setting's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting, a key of the integration (`data_center`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// A kind of destination that integrations can name.
pub trait DestinationKind: Send + Sync {
    /// The name written as an integration's `type`, e.g. `moengage`.
    fn name(&self) -> &'static str;

    /// The JSON Schema of an integration's settings (every key but `type`), as a whole schema
    /// document: its `$defs` are merged into the configuration schema's. Its descriptions are what
    /// editors show.
    fn settings_schema(&self) -> serde_json::Value;

    /// The destination for settings that passed the schema (`${NAME}`s already replaced), or every
    /// setting that cannot be used.
    fn build(&self, settings: &serde_json::Value) -> Result<Built, Vec<SettingError>>;
}

/// What an integration's settings build: where its requests go, and what its mapping must know of
/// the destination. The mapping's settings stay out of [`Destination`], which only sends.
#[derive(Debug, Clone)]
pub struct Built {
    /// Where and how requests are sent.
    pub destination: Arc<dyn Destination>,
    /// Whether attribute values may be objects and arrays of objects (MoEngage's `object_data`).
    /// When not, the blueprint flattens them into values the destination keeps.
    pub keeps_objects: bool,
}
