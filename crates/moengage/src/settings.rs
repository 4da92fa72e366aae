//! MoEngage as a kind of destination: an integration's settings as written in the configuration
//! (`type: moengage`, the default), their schema, and the destination they build; and the
//! `MOENGAGE_*` environment variables that stand in for a configuration file.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use sender::{Built, DestinationKind, SettingError};

use crate::{ApiKey, Credentials, DataCenter, EVENTS_PER_MINUTE, MoEngageDestination, is_endpoint_base};

/// A MoEngage workspace: the three values of the document's "Configure in Signal".
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoEngageSettings {
    /// The Workspace ID (MoEngage: Settings → Account → APIs).
    #[schemars(length(min = 1))]
    pub workspace_id: String,

    /// The Data API key, from the Data tile. Write `${MOENGAGE_DATA_API_KEY}` and set the variable:
    /// the key then never sits in the file.
    #[schemars(length(min = 1))]
    pub data_api_key: String,

    /// The data center: `01`–`06` or `101`, the number in your dashboard URL.
    pub data_center: DataCenterValue,

    /// Events per minute for this workspace, at most MoEngage's 30,000 (the default). Lower it to
    /// leave room for other senders to the same workspace.
    #[schemars(range(min = 1, max = 30000))]
    pub events_per_minute: Option<u32>,

    /// Send to this base URL instead of MoEngage, e.g. `http://127.0.0.1:8088` for a
    /// `signal sandbox`.
    pub endpoint: Option<String>,

    /// Whether the workspace has MoEngage's object data type (early access, enabled per account on
    /// request). Default: `false`, as on most accounts, where MoEngage rejects object values: nested
    /// objects are then sent as one attribute per field (`address_city`) and an array of objects as
    /// one array per field (`products` → `products_sku: ["SKU-1", "SKU-2"]`, or the names the
    /// blueprint's `object_arrays` gives). `true`: objects are sent as they are.
    pub object_data: Option<bool>,
}

/// A data center as written: text (`"01"`) or a number (`1`, `101`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DataCenterValue {
    /// As text, e.g. `"01"`.
    Text(String),
    /// As a number, e.g. `1`.
    Number(u32),
}

impl DataCenterValue {
    /// The value as text, as MoEngage writes it.
    pub fn as_text(&self) -> String {
        match self {
            DataCenterValue::Text(text) => text.clone(),
            DataCenterValue::Number(number) => number.to_string(),
        }
    }
}

/// The MoEngage kind of destination, for the registry of destinations.
#[derive(Debug, Clone, Copy, Default)]
pub struct MoEngage;

impl DestinationKind for MoEngage {
    fn name(&self) -> &'static str {
        "moengage"
    }

    fn settings_schema(&self) -> serde_json::Value {
        schemars::schema_for!(MoEngageSettings).to_value()
    }

    fn build(&self, settings: &serde_json::Value) -> Result<Built, Vec<SettingError>> {
        let settings: MoEngageSettings = serde_json::from_value(settings.clone()).map_err(|error| {
            vec![SettingError {
                field: "",
                message: format!("the MoEngage settings cannot be read: {error}"),
                hint: "see docs/reference/configuration.md".into(),
            }]
        })?;
        let mut errors = Vec::new();
        let data_center = match settings.data_center.as_text().parse::<DataCenter>() {
            Ok(data_center) => Some(data_center),
            Err(error) => {
                errors.push(SettingError { field: "data_center", message: error.message(), hint: error.hint() });
                None
            }
        };
        if let Some(endpoint) = &settings.endpoint
            && !is_endpoint_base(endpoint)
        {
            errors.push(SettingError {
                field: "endpoint",
                message: format!("`{endpoint}` is not an http:// or https:// URL"),
                hint: "leave `endpoint` out to send to MoEngage, or write e.g. http://127.0.0.1:8088 for a sandbox"
                    .into(),
            });
        }
        // The credentials are checked once the data center is known: they need it.
        let Some(data_center) = data_center else { return Err(errors) };
        match Credentials::new(settings.workspace_id, ApiKey::new(settings.data_api_key), data_center) {
            Err(error) => {
                errors.push(SettingError { field: error.field(), message: error.message(), hint: error.hint().into() });
                Err(errors)
            }
            Ok(_) if !errors.is_empty() => Err(errors),
            Ok(credentials) => {
                let per_minute = settings.events_per_minute.unwrap_or(EVENTS_PER_MINUTE);
                let destination = MoEngageDestination::new(credentials, settings.endpoint.as_deref(), per_minute);
                Ok(Built { destination: Arc::new(destination), keeps_objects: settings.object_data.unwrap_or(false) })
            }
        }
    }
}

/// The variables that give `signal serve` a MoEngage workspace without a configuration file.
pub const ENVIRONMENT_VARIABLES: [&str; 3] = ["MOENGAGE_WORKSPACE_ID", "MOENGAGE_DATA_API_KEY", "MOENGAGE_DATA_CENTER"];

/// Why the `MOENGAGE_*` variables give no workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentError {
    /// Some are set and these are not.
    Missing(Vec<&'static str>),
    /// A value cannot be used: the variable, and why.
    Invalid(&'static str, String),
}

impl std::fmt::Display for EnvironmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvironmentError::Missing(missing) => write!(
                f,
                "{} not set: set all three MoEngage variables to deliver to MoEngage, or none to use the built-in sandbox",
                missing.join(", ")
            ),
            EnvironmentError::Invalid(variable, why) => write!(f, "{variable}: {why}"),
        }
    }
}

impl std::error::Error for EnvironmentError {}

/// The workspace the `MOENGAGE_*` variables name, read through `lookup`: `None` when none is set;
/// an error, saying which, when only some are set or a value cannot be used.
pub fn credentials_from_environment(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, EnvironmentError> {
    let values = ENVIRONMENT_VARIABLES.map(|name| lookup(name).filter(|value| !value.trim().is_empty()));
    match values {
        [Some(workspace_id), Some(api_key), Some(data_center)] => {
            let data_center: DataCenter = data_center
                .parse()
                .map_err(|error: crate::DataCenterError| EnvironmentError::Invalid("MOENGAGE_DATA_CENTER", error.to_string()))?;
            Credentials::new(workspace_id, ApiKey::new(api_key), data_center).map(Some).map_err(|error| {
                let variable = match error {
                    crate::CredentialsError::WorkspaceId(_) => "MOENGAGE_WORKSPACE_ID",
                    crate::CredentialsError::EmptyApiKey => "MOENGAGE_DATA_API_KEY",
                };
                EnvironmentError::Invalid(variable, error.to_string())
            })
        }
        [None, None, None] => Ok(None),
        partial => {
            let missing: Vec<&str> = ENVIRONMENT_VARIABLES
                .into_iter()
                .zip(partial)
                .filter(|(_, value)| value.is_none())
                .map(|(name, _)| name)
                .collect();
            Err(EnvironmentError::Missing(missing))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Arc<dyn sender::Destination>, Vec<SettingError>> {
        MoEngage.build(&json).map(|built| built.destination)
    }

    #[test]
    fn settings_build_the_destination_or_name_each_bad_setting() {
        let built = settings(serde_json::json!({"workspace_id": "WS1", "data_api_key": "k", "data_center": 1}))
            .expect("valid settings");
        assert_eq!(built.shown_as(), "workspace WS1 at https://api-01.moengage.com/v1/event/WS1");
        let errors = settings(serde_json::json!({
            "workspace_id": "WS1", "data_api_key": "k", "data_center": "07", "endpoint": "ftp://x"
        }))
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|error| error.field).collect();
        assert_eq!(fields, ["data_center", "endpoint"]);
        assert_eq!(errors[0].message, "`07` is not a MoEngage data center");
        let errors = settings(serde_json::json!({"workspace_id": "a b", "data_api_key": "k", "data_center": "02"}))
            .err()
            .unwrap_or_default();
        assert_eq!(errors.first().map(|error| error.field), Some("workspace_id"));
    }

    #[test]
    fn the_environment_gives_all_three_values_or_none() {
        let lookup = |values: &'static [(&'static str, &'static str)]| {
            move |name: &str| values.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
        };
        assert_eq!(credentials_from_environment(&lookup(&[])), Ok(None));
        let all = lookup(&[("MOENGAGE_WORKSPACE_ID", "WS"), ("MOENGAGE_DATA_API_KEY", "k"), ("MOENGAGE_DATA_CENTER", "3")]);
        let credentials = credentials_from_environment(&all).expect("valid").expect("set");
        assert_eq!((credentials.workspace_id(), credentials.data_center().as_str()), ("WS", "03"));
        let partial =
            credentials_from_environment(&lookup(&[("MOENGAGE_WORKSPACE_ID", "WS")])).expect_err("partial").to_string();
        assert!(partial.starts_with("MOENGAGE_DATA_API_KEY, MOENGAGE_DATA_CENTER not set"), "{partial}");
    }
}
