//! The `signal` command line as DESIGN.md's table defines it: exit codes, where output goes, and the
//! committed schema matching what the program prints.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn signal(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("signal runs");
    let mut input = child.stdin.take().expect("stdin");
    // A command that exits before reading (an invalid blueprint) closes the pipe; that is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("signal finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const DOCUMENT_EVENT: &str = r#"{"type":"track","event":"Order Completed","user_id":"u_8842","traits":{"email":"jane@example.com","phone":"+447700900123"},"properties":{"order_id":"ORD-1001","revenue":89.99,"currency":"GBP","coupon":"WELCOME10"}}"#;

#[test]
fn committed_blueprint_schema_matches_signal_schema_blueprint() {
    let output = signal(&["schema", "blueprint"], b"");
    assert!(output.status.success());
    let committed = std::fs::read_to_string("schemas/blueprint.schema.json").expect("committed schema");
    assert_eq!(
        text(&output.stdout),
        committed,
        "schemas/blueprint.schema.json is stale: run `cargo run -- schema blueprint > schemas/blueprint.schema.json`"
    );
}

#[test]
fn map_prints_the_documents_payload_for_the_documents_event() {
    let output = signal(
        &["map", "--blueprint", "blueprints/moengage/retail.yaml"],
        format!("{DOCUMENT_EVENT}\n").as_bytes(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    let expected = serde_json::json!({
        "type": "event",
        "customer_id": "u_8842",
        "user_identifiers": {"u_em": "jane@example.com", "u_mb": "+447700900123"},
        "actions": [{"action": "Order Completed", "platform": "web",
                     "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}}]
    });
    assert_eq!(body, expected);
    assert!(output.stderr.is_empty(), "no warnings: {}", text(&output.stderr));
}

#[test]
fn map_writes_one_line_per_input_line_whatever_the_input() {
    let mut input = Vec::new();
    input.extend_from_slice(DOCUMENT_EVENT.as_bytes());
    input.extend_from_slice(b"\r\n\n{\"broken\": \n\xff\xfe not utf-8\n");
    input.extend_from_slice(DOCUMENT_EVENT.as_bytes());
    let output = signal(&["map", "--blueprint", "blueprints/moengage/retail.yaml"], &input);
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> =
        text(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["customer_id"], "u_8842");
    for line in &lines[1..4] {
        assert_eq!(line["dropped"]["code"], "invalid_event", "{line}");
    }
    assert_eq!(lines[4]["customer_id"], "u_8842", "the last line has no newline and is still mapped");
}

#[test]
fn map_reads_events_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, format!("{DOCUMENT_EVENT}\n{DOCUMENT_EVENT}\n")).expect("write");
    let output = signal(
        &[
            "map",
            "--blueprint",
            "blueprints/moengage/retail.yaml",
            "--events",
            events.to_str().expect("utf8 path"),
        ],
        b"",
    );
    assert!(output.status.success());
    assert_eq!(text(&output.stdout).lines().count(), 2);
    let missing =
        signal(&["map", "--blueprint", "blueprints/moengage/retail.yaml", "--events", "no/such.ndjson"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot read events from no/such.ndjson"));
}

#[test]
fn map_with_an_invalid_blueprint_prints_its_diagnostics_and_exits_1() {
    let fixture = "crates/blueprint/tests/fixtures/invalid/unknown-key.yaml";
    let output = signal(&["map", "--blueprint", fixture], format!("{DOCUMENT_EVENT}\n").as_bytes());
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no events are mapped");
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{fixture}:6:5: error[unknown_key]: unknown key `renames`")),
        "{stderr}"
    );
}

#[test]
fn map_refuses_an_unknown_default_region() {
    let output =
        signal(&["map", "--blueprint", "blueprints/moengage/retail.yaml", "--default-region", "XX"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--default-region `XX` is not a region code"));
}

#[test]
fn map_warns_when_enabling_an_event_the_blueprint_does_not_map() {
    let output = signal(
        &["map", "--blueprint", "blueprints/moengage/retail.yaml", "--enable", "Order Complete"],
        format!("{DOCUMENT_EVENT}\n").as_bytes(),
    );
    assert!(output.status.success());
    assert!(
        text(&output.stderr).contains("--enable `Order Complete`: the blueprint does not map this event")
    );
    assert!(text(&output.stdout).contains(r#""code":"not_enabled""#));
}

#[test]
fn validate_accepts_the_presets() {
    let output = signal(
        &[
            "validate",
            "blueprints/moengage/retail.yaml",
            "blueprints/moengage/b2b-saas.yaml",
            "blueprints/moengage/base.yaml",
        ],
        b"",
    );
    assert!(output.status.success(), "{}", text(&output.stdout));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("blueprints/moengage/retail.yaml: ok (11 events:"), "{stdout}");
    assert!(stdout.contains("blueprints/moengage/b2b-saas.yaml: ok (7 events:"), "{stdout}");
}

#[test]
fn validate_reports_every_file_and_every_error_then_exits_1() {
    let output = signal(
        &[
            "validate",
            "blueprints/moengage/retail.yaml",
            "crates/blueprint/tests/fixtures/invalid/unknown-key.yaml",
            "crates/blueprint/tests/fixtures/invalid/reserved-prefix.yaml",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let headlines: Vec<&str> = stdout.lines().filter(|line| line.contains(": error[")).collect();
    assert_eq!(headlines.len(), 9, "{stdout}");
    for headline in headlines {
        let mut parts = headline.splitn(4, ':');
        let (file, line, column) = (parts.next(), parts.next(), parts.next());
        assert!(file.is_some_and(|f| f.ends_with(".yaml")), "{headline}");
        assert!(line.and_then(|l| l.parse::<usize>().ok()).is_some(), "{headline}");
        assert!(column.and_then(|c| c.parse::<usize>().ok()).is_some(), "{headline}");
    }
}

#[test]
fn validate_names_an_unreadable_file() {
    let output = signal(&["validate", "no/such/blueprint.yaml"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).starts_with("no/such/blueprint.yaml:1:1: error[io]: cannot read the blueprint")
    );
}

#[test]
fn committed_config_schema_matches_signal_schema_config() {
    let output = signal(&["schema", "config"], b"");
    assert!(output.status.success());
    let committed = std::fs::read_to_string("schemas/config.schema.json").expect("committed schema");
    assert_eq!(
        text(&output.stdout),
        committed,
        "regenerate: signal schema config > schemas/config.schema.json"
    );
}

#[test]
fn validate_checks_a_configuration_with_the_environment_it_would_run_with() {
    let run = |env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_signal"))
            .args(["validate", "signal.example.yaml"])
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("signal runs")
    };
    let unset = run(&[]);
    assert_eq!(unset.status.code(), Some(1));
    let report = text(&unset.stdout);
    assert!(report.contains("signal.example.yaml:17:19: error[env_var_missing]"), "{report}");
    assert!(report.ends_with("4 errors\n"), "{report}");

    let set = run(&[
        ("SIGNAL_WEB_WRITE_KEY", "wk"),
        ("MOENGAGE_WORKSPACE_ID", "WS123"),
        ("MOENGAGE_DATA_API_KEY", "secret-key-value"),
        ("MOENGAGE_DATA_CENTER", "01"),
    ]);
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stdout));
    assert_eq!(
        text(&set.stdout),
        "signal.example.yaml: ok (configuration: 1 sources, 1 integrations, 1 pipelines)\n"
    );
}

#[test]
fn validate_says_what_a_catch_all_blueprint_maps() {
    let dir = tempfile::tempdir().expect("dir");
    let every = dir.path().join("every.yaml");
    std::fs::write(&every, "identity: {customer_id: $.user_id}\nevents:\n  \"*\": {}\n").expect("write");
    let one = dir.path().join("one.yaml");
    std::fs::write(&one, "identity: {customer_id: $.user_id}\nevents:\n  Signed Up: {}\n  \"*\": {}\n").expect("write");
    let output = signal(&["validate", &every.display().to_string(), &one.display().to_string()], b"");
    let said = text(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("every.yaml: ok (every event, through \"*\")"), "not \"0 events\": {said}");
    assert!(said.contains("one.yaml: ok (1 event: Signed Up, and every other through \"*\")"), "{said}");
}
