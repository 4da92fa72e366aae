//! MoEngage's Track Event (Data Import), customer and merge APIs as Signal needs them: data centres,
//! credentials (the Data API key held in a type that never prints), the endpoints, and what each
//! response means — whether it is delivered, worth retrying, or permanent, with the integration
//! document's likely cause.
//!
//! No I/O: the sender (destination-agnostic) asks this crate how to build a request and how to read
//! the answer.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
pub use sender::{Classification, Disposition};

mod settings;
pub use settings::{
    DataCenterValue, ENVIRONMENT_VARIABLES, EnvironmentError, MoEngage, MoEngageSettings, credentials_from_environment,
};

/// The largest request body MoEngage accepts: 128 KB.
pub const MAX_BODY_BYTES: usize = 131_072;

/// MoEngage's rate limit per workspace.
pub const EVENTS_PER_MINUTE: u32 = 30_000;

/// What MoEngage keeps of a request it answers 200 for (its data tracking policy): a string value
/// is cut to this many characters, and a URL longer than this is not kept at all.
pub const MAX_VALUE_CHARS: usize = 512;

/// Event (action) and attribute names are cut to this many characters.
pub const MAX_NAME_CHARS: usize = 200;

/// An array attribute keeps at most this many elements, all of one kind.
pub const MAX_ARRAY_ITEMS: usize = 50;

/// At most this many attributes of one event are kept.
pub const MAX_ATTRIBUTES: usize = 100;

/// Whether a string value is a URL, which MoEngage refuses rather than cuts when it is too long.
pub fn is_url(text: &str) -> bool {
    let head = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    head.starts_with("http://") || head.starts_with("https://")
}

/// The data centres, as written in the dashboard URL (`dashboard-01.moengage.com` → `01`).
pub const DATA_CENTERS: [&str; 7] = ["01", "02", "03", "04", "05", "06", "101"];

/// A MoEngage data centre (cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataCenter(&'static str);

impl DataCenter {
    /// The data centre as written in URLs: `01`…`06` or `101`.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::str::FromStr for DataCenter {
    type Err = DataCenterError;

    /// Accepts `01`…`06` and `101`, and the same without a leading zero (`1` → `01`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let padded = if trimmed.len() == 1 { format!("0{trimmed}") } else { trimmed.to_owned() };
        DATA_CENTERS
            .iter()
            .find(|dc| **dc == padded)
            .map(|dc| DataCenter(dc))
            .ok_or_else(|| DataCenterError { given: text.to_owned() })
    }
}

impl fmt::Display for DataCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A data centre that MoEngage does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterError {
    /// What was given.
    pub given: String,
}

impl DataCenterError {
    /// What is wrong.
    pub fn message(&self) -> String {
        format!("`{}` is not a MoEngage data center", self.given)
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        format!(
            "use one of {} (the cluster number in your dashboard URL, e.g. dashboard-01.moengage.com → 01)",
            DATA_CENTERS.join(", ")
        )
    }
}

impl fmt::Display for DataCenterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message(), self.hint())
    }
}

impl std::error::Error for DataCenterError {}

/// The Data API key. It is only ever shown redacted: `Debug` and `Display` print `[redacted]`.
pub type ApiKey = secret::Secret;

/// Why credentials were refused before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsError {
    /// The workspace id is empty or has characters that cannot be in a URL path segment.
    WorkspaceId(String),
    /// The key is empty.
    EmptyApiKey,
}

impl CredentialsError {
    /// The setting at fault, as written in the configuration.
    pub fn field(&self) -> &'static str {
        match self {
            CredentialsError::WorkspaceId(_) => "workspace_id",
            CredentialsError::EmptyApiKey => "data_api_key",
        }
    }

    /// What is wrong.
    pub fn message(&self) -> String {
        match self {
            CredentialsError::WorkspaceId(id) if id.is_empty() => "the Workspace ID is empty".into(),
            CredentialsError::WorkspaceId(id) => format!("the Workspace ID `{id}` has spaces or `/`, `?`, `#`"),
            CredentialsError::EmptyApiKey => "the Data API key is empty".into(),
        }
    }

    /// How to fix it.
    pub fn hint(&self) -> &'static str {
        match self {
            CredentialsError::WorkspaceId(_) => "copy it from MoEngage: Settings → Account → APIs → Workspace ID",
            CredentialsError::EmptyApiKey => "copy it from MoEngage: Settings → Account → APIs, the Data tile",
        }
    }
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message(), self.hint())
    }
}

impl std::error::Error for CredentialsError {}

/// The three MoEngage APIs Signal sends to. One account limit covers them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// The Track Event API: `{"type":"event",...}`.
    Event,
    /// The customer API, which updates a profile: `{"type":"customer",...}`.
    Customer,
    /// The merge API, which merges one user into another: `{"merge_data":[...]}`.
    Merge,
    /// The device API, which registers a user's device and its push token: `{"type":"device",...}`.
    Device,
}

impl RequestKind {
    /// Every kind.
    pub const ALL: [RequestKind; 4] = [RequestKind::Event, RequestKind::Customer, RequestKind::Merge, RequestKind::Device];

    /// The sender's name for this API.
    pub fn api(self) -> sender::Api {
        sender::Api::named(match self {
            RequestKind::Event => "event",
            RequestKind::Customer => "customer",
            RequestKind::Merge => "merge",
            RequestKind::Device => "device",
        })
    }

    /// The kind the sender's `api` names; `None` for a name that is not MoEngage's.
    pub fn of_api(api: sender::Api) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|kind| kind.api() == api)
    }

    /// A request of this kind with `body`.
    pub fn request(self, body: Vec<u8>) -> sender::Request {
        sender::Request { api: self.api(), body }
    }
}

/// What Signal needs to send to one MoEngage workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    workspace_id: String,
    api_key: ApiKey,
    data_center: DataCenter,
}

impl Credentials {
    /// Checks and holds the three values of the document's "Configure in Signal".
    pub fn new(
        workspace_id: impl Into<String>,
        api_key: ApiKey,
        data_center: DataCenter,
    ) -> Result<Self, CredentialsError> {
        let workspace_id = workspace_id.into().trim().to_owned();
        if workspace_id.is_empty()
            || workspace_id.chars().any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '%'))
        {
            return Err(CredentialsError::WorkspaceId(workspace_id));
        }
        if api_key.expose().trim().is_empty() {
            return Err(CredentialsError::EmptyApiKey);
        }
        Ok(Credentials { workspace_id, api_key, data_center })
    }

    /// The workspace id (not secret: it is in every URL).
    pub fn workspace_id(&self) -> &str {
        &self.workspace_id
    }

    /// The data centre.
    pub fn data_center(&self) -> DataCenter {
        self.data_center
    }

    /// `https://api-{dc}.moengage.com/v1/event/{workspace_id}`.
    pub fn endpoint(&self) -> String {
        format!("https://api-{}.moengage.com/v1/event/{}", self.data_center, self.workspace_id)
    }

    /// The same path under another base URL, such as a `signal sandbox`.
    pub fn endpoint_at(&self, base: &str) -> String {
        format!("{}/v1/event/{}", base.trim_end_matches('/'), self.workspace_id)
    }

    /// The base URL of the workspace's data centre: `https://api-{dc}.moengage.com`.
    fn data_center_base(&self) -> String {
        format!("https://api-{}.moengage.com", self.data_center)
    }

    /// Where a request of this kind goes, under `base` (a sandbox, a proxy) or the data centre's
    /// host: `/v1/event/{workspace_id}`, `/v1/customer/{workspace_id}`,
    /// `/v1/customer/merge?app_id={workspace_id}`.
    pub fn url(&self, kind: RequestKind, base: Option<&str>) -> String {
        let base = base.map_or_else(|| self.data_center_base(), |base| base.trim_end_matches('/').to_owned());
        let workspace = &self.workspace_id;
        match kind {
            RequestKind::Event => format!("{base}/v1/event/{workspace}"),
            RequestKind::Customer => format!("{base}/v1/customer/{workspace}"),
            RequestKind::Merge => format!("{base}/v1/customer/merge?app_id={workspace}"),
            RequestKind::Device => format!("{base}/v1/device/{workspace}"),
        }
    }

    /// The `Authorization` header value: `Basic base64(workspace_id:api_key)`.
    pub fn authorization(&self) -> String {
        let pair = format!("{}:{}", self.workspace_id, self.api_key.expose());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// A URL without the `user:password@` it may carry, for showing.
fn without_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Both only fail for URLs that cannot have credentials, which this one has.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Whether `text` can stand in for MoEngage's base URL (a `signal sandbox`, a proxy): an
/// `http://` or `https://` URL with a host.
pub fn is_endpoint_base(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

/// The error body MoEngage sends: `{"status":"fail","error":{"message","type","request_id"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// What MoEngage said.
    #[serde(default)]
    pub message: String,
    /// The error type, e.g. `MissingAttributeError`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// MoEngage's id for the request, to quote to their support.
    #[serde(default)]
    pub request_id: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

/// The likely cause of a connection error: the host for a wrong data centre does not answer.
pub const CONNECTION_ERROR_HINT: &str =
    "Wrong data center — confirm the cluster number from your dashboard URL.";

/// The likely cause of an answer with this status, per the troubleshooting table.
pub fn likely_cause(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Missing customer_id, or malformed attributes.",
        401 => {
            "Wrong Workspace ID or Data API key, or the wrong key type (use the Data tile key, not a campaign/report key)."
        }
        403 => "Account suspended or blocked.",
        404 => CONNECTION_ERROR_HINT,
        413 => "Event exceeds 128 KB — reduce array/attribute size.",
        415 => "The request was not sent as Content-Type: application/json.",
        429 => "Over 30,000 events/minute; Signal retries with backoff.",
        500..=599 => "MoEngage could not process the request just now; Signal retries with backoff.",
        _ => return None,
    })
}

/// Reads an answer, once and wholly: its verdict ("is this retryable?" — 2xx delivered; 408, 429
/// and 5xx retried; other statuses permanent), whether it refuses the integration itself (401,
/// 403: its events should wait rather than each fail in turn), the likely cause from the document's
/// troubleshooting table, and MoEngage's error body.
pub fn classify(status: u16, body: &[u8]) -> Classification {
    let verdict = match status {
        200..=299 => Disposition::Delivered,
        408 | 429 | 500..=599 => Disposition::Retry,
        _ => Disposition::Permanent,
    };
    let error = if verdict == Disposition::Delivered {
        None
    } else {
        serde_json::from_slice::<ErrorEnvelope>(body).ok().map(|envelope| envelope.error)
    };
    let (error_type, said) = match error {
        Some(error) => (Some(error.kind).filter(|kind| !kind.is_empty()), Some(error.message).filter(|m| !m.is_empty())),
        None => (None, None),
    };
    Classification {
        disposition: verdict,
        pause: matches!(status, 401 | 403),
        code: status.to_string(),
        hint: likely_cause(status).map(str::to_owned),
        error_type,
        said,
    }
}

/// MoEngage as a destination of the [`sender`]: where to send, with which credentials, and what
/// each answer means.
#[derive(Clone)]
pub struct MoEngageDestination {
    credentials: Credentials,
    /// The event API's URL.
    url: String,
    customer_url: String,
    merge_url: String,
    device_url: String,
    /// `url` as shown to people: without any `user:password@` a proxy's URL may carry.
    shown_url: String,
    /// The base URL that replaces MoEngage's host (a sandbox, a proxy), when one does; as shown.
    endpoint_base: Option<String>,
    rate_limit: sender::RateLimit,
}

impl MoEngageDestination {
    /// Sends to the workspace's data centre, or to `endpoint_base` (such as a `signal sandbox`)
    /// when given; at most `per_minute` events per minute (MoEngage allows 30,000).
    pub fn new(credentials: Credentials, endpoint_base: Option<&str>, per_minute: u32) -> Self {
        let url = credentials.url(RequestKind::Event, endpoint_base);
        let customer_url = credentials.url(RequestKind::Customer, endpoint_base);
        let merge_url = credentials.url(RequestKind::Merge, endpoint_base);
        let device_url = credentials.url(RequestKind::Device, endpoint_base);
        let rate_limit = sender::RateLimit::per_minute(per_minute.clamp(1, EVENTS_PER_MINUTE));
        let shown_url = without_userinfo(&url);
        MoEngageDestination {
            credentials,
            url,
            customer_url,
            merge_url,
            device_url,
            shown_url,
            endpoint_base: endpoint_base.map(without_userinfo),
            rate_limit,
        }
    }

    /// The same destination under another limit, such as a sandbox's scaled-down window in a test.
    pub fn with_rate_limit(mut self, rate_limit: sender::RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// The likely cause of getting no answer at all: a wrong data centre's host does not exist,
    /// but an endpoint given instead of MoEngage's host is simply not running or mistyped.
    fn unreachable_hint(&self) -> String {
        match &self.endpoint_base {
            None => CONNECTION_ERROR_HINT.to_owned(),
            Some(base) => format!(
                "Nothing answers at the endpoint {base}: check that it is running and that the address is right."
            ),
        }
    }
}

impl fmt::Debug for MoEngageDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL as shown: a proxy's `user:password@` stays out of every debug print.
        f.debug_struct("MoEngageDestination")
            .field("credentials", &self.credentials)
            .field("url", &self.shown_url)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

impl sender::Destination for MoEngageDestination {
    fn account(&self) -> &str {
        self.credentials.workspace_id()
    }

    fn rate_limit(&self) -> sender::RateLimit {
        self.rate_limit
    }

    fn max_body_bytes(&self) -> usize {
        MAX_BODY_BYTES
    }

    fn shown_as(&self) -> String {
        format!("workspace {} at {}", self.credentials.workspace_id(), self.shown_url)
    }

    fn request(&self, client: &reqwest::Client, api: sender::Api, body: bytes::Bytes) -> reqwest::RequestBuilder {
        // Requests are made for this destination by the mapper, which names only MoEngage's APIs.
        let url = match RequestKind::of_api(api).unwrap_or(RequestKind::Event) {
            RequestKind::Event => &self.url,
            RequestKind::Customer => &self.customer_url,
            RequestKind::Merge => &self.merge_url,
            RequestKind::Device => &self.device_url,
        };
        let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Ok(mut authorization) =
            reqwest::header::HeaderValue::from_str(&self.credentials.authorization())
        {
            // Keeps the key out of any debug print of the request.
            authorization.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        request.body(body)
    }

    fn classify(&self, response: &sender::Response) -> sender::Classification {
        use sender::{Classification, NoAnswer};
        match response {
            Ok(answer) => {
                let mut read = classify(answer.status, &answer.body);
                if let (404, Some(base)) = (answer.status, &self.endpoint_base) {
                    read.hint = Some(format!(
                        "The endpoint {base} answered 404: check that it is MoEngage's API or a `signal sandbox`."
                    ));
                }
                read
            }
            Err(NoAnswer::Timeout) => Classification {
                disposition: sender::Disposition::Retry,
                pause: false,
                code: "timeout".into(),
                hint: Some(format!(
                    "{} did not answer within the timeout; Signal retries with backoff until the retry window closes.",
                    self.endpoint_base.as_deref().unwrap_or("MoEngage")
                )),
                error_type: None,
                said: None,
            },
            Err(NoAnswer::Connection(text)) => Classification {
                disposition: sender::Disposition::Retry,
                pause: false,
                code: "connection".into(),
                hint: Some(self.unreachable_hint()),
                error_type: None,
                said: Some(text.clone()),
            },
            Err(NoAnswer::TooLarge { bytes, limit }) => Classification {
                disposition: sender::Disposition::Permanent,
                pause: false,
                code: "413".into(),
                hint: likely_cause(413).map(str::to_owned),
                error_type: None,
                said: Some(format!("the request body is {bytes} bytes; MoEngage accepts at most {limit}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials::new("WS123", ApiKey::new("s3cr3t-key"), "01".parse().expect("dc")).expect("valid")
    }

    #[test]
    fn data_centers_are_the_documented_ones() {
        for dc in DATA_CENTERS {
            assert_eq!(dc.parse::<DataCenter>().map(DataCenter::as_str), Ok(dc));
        }
        assert_eq!("3".parse::<DataCenter>().map(DataCenter::as_str), Ok("03"));
        for bad in ["07", "00", "100", "eu", ""] {
            let error = bad.parse::<DataCenter>().expect_err("invalid");
            assert!(error.to_string().contains("01, 02, 03, 04, 05, 06, 101"), "{error}");
        }
    }

    #[test]
    fn endpoint_and_basic_auth_follow_the_document() {
        let credentials = credentials();
        assert_eq!(credentials.endpoint(), "https://api-01.moengage.com/v1/event/WS123");
        assert_eq!(credentials.endpoint_at("http://127.0.0.1:8080/"), "http://127.0.0.1:8080/v1/event/WS123");
        assert_eq!(credentials.url(RequestKind::Event, None), credentials.endpoint());
        assert_eq!(credentials.url(RequestKind::Customer, None), "https://api-01.moengage.com/v1/customer/WS123");
        assert_eq!(
            credentials.url(RequestKind::Merge, Some("http://127.0.0.1:8080/")),
            "http://127.0.0.1:8080/v1/customer/merge?app_id=WS123"
        );
        // base64("WS123:s3cr3t-key")
        assert_eq!(credentials.authorization(), "Basic V1MxMjM6czNjcjN0LWtleQ==");
    }

    #[test]
    fn each_request_goes_to_the_api_it_was_made_for_with_the_same_auth() {
        sender::install_crypto_provider();
        let destination = MoEngageDestination::new(credentials(), Some("http://127.0.0.1:9/"), 10);
        let client = reqwest::Client::new();
        // One body for all: the API is the request's, never read from its body.
        let body = bytes::Bytes::from_static(br#"{"type":"event","customer_id":"u1","actions":[]}"#);
        for (kind, url) in [
            (RequestKind::Event, "http://127.0.0.1:9/v1/event/WS123"),
            (RequestKind::Customer, "http://127.0.0.1:9/v1/customer/WS123"),
            (RequestKind::Merge, "http://127.0.0.1:9/v1/customer/merge?app_id=WS123"),
            (RequestKind::Device, "http://127.0.0.1:9/v1/device/WS123"),
        ] {
            let request = sender::Destination::request(&destination, &client, kind.api(), body.clone())
                .build()
                .expect("a request");
            assert_eq!(request.url().as_str(), url);
            assert_eq!(
                request.headers().get(reqwest::header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
                Some("Basic V1MxMjM6czNjcjN0LWtleQ==")
            );
            assert_eq!(RequestKind::of_api(kind.api()), Some(kind));
        }
        assert_eq!(RequestKind::of_api(sender::Api::named("webhook")), None);
    }

    #[test]
    fn an_endpoint_base_is_an_http_url_with_a_host() {
        assert!(is_endpoint_base("http://127.0.0.1:8088"));
        assert!(is_endpoint_base("https://proxy.example/moengage"));
        for refused in ["ftp://example", "127.0.0.1:8088", "http://", ""] {
            assert!(!is_endpoint_base(refused), "{refused}");
        }
    }

    #[test]
    fn credentials_in_an_endpoint_never_show() {
        let destination = MoEngageDestination::new(credentials(), Some("https://user:token@proxy.example/me"), 10);
        let shown = sender::Destination::shown_as(&destination);
        assert_eq!(shown, "workspace WS123 at https://proxy.example/me/v1/event/WS123");
        assert!(!format!("{destination:?}").contains("token"), "{destination:?}");
        let refused = sender::Destination::classify(&destination, &Err(sender::NoAnswer::Timeout));
        assert!(refused.hint.is_some_and(|hint| hint.contains("proxy.example") && !hint.contains("token")));
    }

    #[test]
    fn the_key_never_prints() {
        let credentials = credentials();
        for text in [
            format!("{credentials:?}"),
            format!("{}", credentials.api_key),
            format!("{:?}", credentials.api_key),
        ] {
            assert!(!text.contains("s3cr3t"), "{text}");
        }
        assert!(format!("{credentials:?}").contains("WS123"));
    }

    #[test]
    fn bad_credentials_say_where_to_find_good_ones() {
        let dc = "02".parse().expect("dc");
        let error = Credentials::new("", ApiKey::new("k"), dc).expect_err("empty id");
        assert!(error.to_string().contains("Settings → Account → APIs"));
        assert!(Credentials::new("a/b", ApiKey::new("k"), dc).is_err());
        assert_eq!(Credentials::new("WS", ApiKey::new(" "), dc), Err(CredentialsError::EmptyApiKey));
    }

    #[test]
    fn every_troubleshooting_row_has_its_verdict_and_cause() {
        let cases = [
            (200, Disposition::Delivered, None, false),
            (400, Disposition::Permanent, Some("Missing customer_id"), false),
            (401, Disposition::Permanent, Some("Wrong Workspace ID or Data API key"), true),
            (403, Disposition::Permanent, Some("Account suspended or blocked"), true),
            (404, Disposition::Permanent, Some("Wrong data center"), false),
            (413, Disposition::Permanent, Some("Event exceeds 128 KB"), false),
            (415, Disposition::Permanent, Some("application/json"), false),
            (429, Disposition::Retry, Some("Over 30,000 events/minute"), false),
            (500, Disposition::Retry, Some("Signal retries"), false),
            (503, Disposition::Retry, Some("Signal retries"), false),
        ];
        for (status, verdict, hint, pauses) in cases {
            let classification = classify(status, b"");
            assert_eq!(classification.disposition, verdict, "{status}");
            assert_eq!(classification.pause, pauses, "{status}");
            match hint {
                Some(hint) => assert!(classification.hint.is_some_and(|h| h.contains(hint)), "{status}"),
                None => assert_eq!(classification.hint, None),
            }
        }
    }

    #[test]
    fn moengage_error_bodies_are_read_and_other_bodies_tolerated() {
        let body = br#"{"status":"fail","error":{"message":"customer_id is not found in the payload","type":"MissingAttributeError","request_id":"r-1"}}"#;
        let classification = classify(400, body);
        assert_eq!(classification.said.as_deref(), Some("customer_id is not found in the payload"));
        assert_eq!(classification.error_type.as_deref(), Some("MissingAttributeError"));
        assert_eq!(classify(502, b"<html>Bad Gateway</html>").said, None);
        assert_eq!(classify(502, b"<html>Bad Gateway</html>").disposition, Disposition::Retry);
    }
}
