//! Every shipped preset applied by `signal map` to a fixture event for each event it maps and for
//! each way an event is dropped, snapshotted input beside output, so that a change to a preset or the
//! interpreter shows up as a reviewable diff.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const EVENTS: &str = include_str!("fixtures/events.ndjson");
const RECEIVED_AT: &str = "2026-11-28T12:00:00Z";

struct Run {
    stdout: String,
    stderr: String,
}

fn signal_map(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
        .arg("map")
        .args(args)
        .args(["--received-at", RECEIVED_AT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("signal runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write events");
    let output = child.wait_with_output().expect("signal finishes");
    assert!(output.status.success(), "signal map failed: {}", String::from_utf8_lossy(&output.stderr));
    Run {
        stdout: String::from_utf8(output.stdout).expect("utf8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf8 stderr"),
    }
}

/// Each input line, then exactly what came out for it.
fn side_by_side(input: &str, run: &Run) -> String {
    let inputs: Vec<&str> = input.lines().collect();
    let outputs: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(inputs.len(), outputs.len(), "one output line per input line");
    let mut text = String::new();
    for (number, (event, output)) in inputs.iter().zip(&outputs).enumerate() {
        assert!(serde_json::from_str::<Value>(output).is_ok(), "line {} is not JSON: {output}", number + 1);
        text.push_str(&format!("── line {} ──\nin:  {event}\nout: {output}\n", number + 1));
    }
    if !run.stderr.is_empty() {
        text.push_str(&format!("── stderr ──\n{}", run.stderr));
    }
    text
}

#[test]
fn retail_preset() {
    let run = signal_map(&["--blueprint", "blueprints/moengage/retail.yaml"], EVENTS);
    insta::assert_snapshot!(side_by_side(EVENTS, &run));
}

#[test]
fn b2b_saas_preset() {
    let run = signal_map(&["--blueprint", "blueprints/moengage/b2b-saas.yaml"], EVENTS);
    insta::assert_snapshot!(side_by_side(EVENTS, &run));
}

#[test]
fn retail_preset_with_enabled_events_and_default_region() {
    let args = [
        "--blueprint",
        "blueprints/moengage/retail.yaml",
        "--enable",
        "Order Completed",
        "--enable",
        "Signed Up",
        "--default-region",
        "US",
    ];
    let run = signal_map(&args, EVENTS);
    insta::assert_snapshot!(side_by_side(EVENTS, &run));
}

#[test]
fn reserved_prefix_and_oversized_events_are_dropped() {
    // Within every one of MoEngage's limits (six arrays of 50 strings of 500 characters), and still
    // over 128 KB.
    let notes: serde_json::Map<String, Value> =
        (0..6).map(|n| (format!("notes_{n}"), Value::from(vec!["n".repeat(500); 50]))).collect();
    let oversized = serde_json::json!({"type": "track", "event": "Order Completed", "user_id": "u1", "properties": notes});
    let input = format!("{{\"type\":\"track\",\"event\":\"moe_sync\",\"user_id\":\"u1\"}}\n{oversized}\n");
    let run = signal_map(&["--blueprint", "crates/blueprint/tests/fixtures/valid/everything.yaml"], &input);
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["dropped"]["code"], "reserved_prefix");
    assert_eq!(lines[1]["dropped"]["code"], "payload_too_large");
    assert!(run.stderr.is_empty(), "nothing was cut: {}", run.stderr);
    insta::assert_json_snapshot!(lines);
}

#[test]
fn the_default_region_decides_a_national_number_without_a_locale() {
    let line = |phone: &str| {
        format!(r#"{{"type":"track","event":"Signed Up","user_id":"u1","traits":{{"phone":"{phone}"}}}}"#) + "\n"
    };
    let mobile = |run: &Run| -> Option<String> {
        let body: Value = serde_json::from_str(run.stdout.trim()).expect("one mapped line");
        body["user_identifiers"]["u_mb"].as_str().map(str::to_owned)
    };
    let retail = ["--blueprint", "blueprints/moengage/retail.yaml"];
    let uk = line("07700 900123");
    assert_eq!(mobile(&signal_map(&[&retail[..], &["--default-region", "GB"]].concat(), &uk)).as_deref(), Some("+447700900123"));
    let without = signal_map(&retail, &uk);
    assert_eq!(mobile(&without), None, "no region, no number: {}", without.stdout);
    assert!(without.stderr.contains("warning[invalid_phone]"), "{}", without.stderr);
    let us = line("(415) 555-2671");
    assert_eq!(mobile(&signal_map(&[&retail[..], &["--default-region", "US"]].concat(), &us)).as_deref(), Some("+14155552671"));
}
