//! `signal test` as integrators use it, with nothing but the binary: the shipped presets' own cases;
//! extending Retail with three cases (one left empty, one wrong), reading the failure, `--update`,
//! and a clean run; test files with mistakes reported as `FILE:LINE:COL`; a broken blueprint
//! reported before any case runs; JUnit for CI.

use std::path::Path;
use std::process::{Command, Output};

fn signal(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signal")).args(args).current_dir(dir).env("NO_COLOR", "1").output().expect("signal runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A folder with Retail and its base copied in, and `shop.yaml` extending Retail with one more event.
fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints/moengage");
    for preset in ["base.yaml", "retail.yaml"] {
        std::fs::copy(presets.join(preset), dir.path().join(preset)).expect("copy a preset");
    }
    std::fs::write(
        dir.path().join("shop.yaml"),
        "description: Our shop.\nextends: retail.yaml\nevents:\n  Wishlist Viewed: {}\n",
    )
    .expect("write the blueprint");
    dir
}

const THREE_CASES: &str = r#"# Our mapping cases.
cases:
  # Right: passes as it is.
  - name: a wishlist view goes to MoEngage
    event: {type: track, event: Wishlist Viewed, user_id: u_1, properties: {items: 3}}
    expect:
      body:
        type: event
        customer_id: u_1
        actions:
          - action: Wishlist Viewed
            platform: web
            attributes: {items: 3}

  # Wrong on purpose: the order's value is MoEngage's `value`, 89.99.
  - name: an order keeps its value
    event: {type: track, event: Order Completed, user_id: u_2, properties: {order_id: ORD-7, revenue: 89.99}}
    expect:
      body:
        type: event
        customer_id: u_2
        actions:
          - action: Order Completed
            platform: web
            attributes: {order_id: ORD-7, value: 98.99}

  # Left empty: `signal test --update` writes it.
  - name: a sign-up
    event: {type: track, event: Signed Up, user_id: u_3, traits: {email: u3@example.com}}
"#;

#[test]
fn the_shipped_presets_pass_their_own_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = signal(root, &["test", "blueprints/"]);
    let said = stdout(&output);
    assert!(output.status.success(), "{said}{}", stderr(&output));
    let last = said.lines().last().unwrap_or_default();
    let passed: usize = last.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= 12 && last.ends_with(" passed, 0 failed"), "{said}");
    // The document's example is among them, as its body.
    let retail = std::fs::read_to_string(root.join("blueprints/moengage/retail.tests.yaml")).expect("retail cases");
    assert!(retail.contains("name: the document's Order Completed") && retail.contains("u_mb: \"+447700900123\""));
}

#[test]
fn extend_retail_write_three_cases_read_the_failure_update_and_pass() {
    let dir = shop();
    std::fs::write(dir.path().join("shop.tests.yaml"), THREE_CASES).expect("write the cases");

    let first = signal(dir.path(), &["test"]);
    let said = stdout(&first);
    assert_eq!(first.status.code(), Some(1), "{said}{}", stderr(&first));
    assert!(said.contains("FAIL shop.tests.yaml:16:5: an order keeps its value"), "{said}");
    assert!(said.contains("  - actions[0].attributes.value: 98.99\n  + actions[0].attributes.value: 89.99"), "{said}");
    assert!(said.contains("NEW  shop.tests.yaml:28:5: a sign-up"), "{said}");
    assert!(
        said.lines().any(|line| line.starts_with("  +") && line.ends_with(" u_em: u3@example.com")),
        "what --update would write is shown: {said}"
    );
    assert!(said.ends_with("1 passed, 2 failed (1 with no expectation: `signal test --update` writes them)\n"), "{said}");

    let updated = signal(dir.path(), &["test", "--update", "shop.yaml"]);
    let said = stdout(&updated);
    assert!(updated.status.success(), "{said}{}", stderr(&updated));
    assert!(said.contains("written shop.tests.yaml:16:5: an order keeps its value (changed)"), "{said}");
    assert!(said.contains("written shop.tests.yaml:28:5: a sign-up (new)"), "{said}");
    assert!(said.ends_with("3 passed, 0 failed\n"), "{said}");

    let file = std::fs::read_to_string(dir.path().join("shop.tests.yaml")).expect("read");
    for comment in ["# Our mapping cases.", "# Right: passes as it is.", "# Left empty: `signal test --update` writes it."] {
        assert!(file.contains(comment), "comments are kept: {file}");
    }
    assert!(file.contains("              value: 89.99"), "{file}");
    assert!(file.contains("    expect:\n      body:\n        type: event\n        customer_id: u_3\n"), "{file}");
    let first_case = &file[..file.find("# Wrong on purpose").expect("the second case")];
    assert_eq!(first_case, &THREE_CASES[..THREE_CASES.find("# Wrong on purpose").expect("the second case")], "the passing case is untouched");

    let again = signal(dir.path(), &["test"]);
    assert!(again.status.success(), "{}", stdout(&again));
    assert_eq!(stdout(&again), "3 passed, 0 failed\n");
}

#[test]
fn ignore_contains_and_files_of_events() {
    let dir = shop();
    std::fs::write(
        dir.path().join("events.ndjson"),
        "{\"type\":\"track\",\"event\":\"Wishlist Viewed\",\"user_id\":\"u_1\",\"timestamp\":\"2026-01-02T03:04:05Z\"}\n{\"type\":\"track\",\"event\":\"Unknown\",\"user_id\":\"u_1\"}\n",
    )
    .expect("events");
    let cases = r#"cases:
  - name: the time may differ
    event: {type: track, event: Wishlist Viewed, user_id: u_1, timestamp: "2026-01-02T03:04:05Z"}
    ignore:
      - actions[*].current_time
    expect:
      body: {type: event, customer_id: u_1, actions: [{action: Wishlist Viewed, platform: web, attributes: {}, current_time: "2099-01-01T00:00:00Z"}]}
  - name: only the customer matters
    event: {type: track, event: Wishlist Viewed, user_id: u_1, properties: {a: 1, b: 2}}
    expect:
      contains: {customer_id: u_9}
  - name: two lines
    events: events.ndjson
"#;
    std::fs::write(dir.path().join("shop.tests.yaml"), cases).expect("write");
    let output = signal(dir.path(), &["test", "--update"]);
    let said = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(!said.contains("the time may differ"), "ignored paths do not count: {said}");
    assert!(said.contains("FAIL shop.tests.yaml:8:5: only the customer matters"), "{said}");
    assert!(said.contains("  - customer_id: \"u_9\"\n  + customer_id: \"u_1\""), "{said}");
    assert!(said.contains("--update leaves it as it is"), "{said}");
    assert!(said.ends_with("2 passed, 1 failed\n"), "{said}");
    let file = std::fs::read_to_string(dir.path().join("shop.tests.yaml")).expect("read");
    assert!(file.contains("      contains: {customer_id: u_9}"), "a subset is not rewritten: {file}");
    assert!(file.contains("    expect:\n      each:\n        - body:\n") && file.contains("        - dropped: not_in_blueprint"), "{file}");
    assert!(file.contains("current_time: \"2026-01-02T03:04:05Z\""), "the receipt time is fixed, the event's time kept: {file}");
}

#[test]
fn mistakes_in_a_test_file_are_reported_at_their_place_all_at_once() {
    let dir = shop();
    let cases = r#"recieved_at: 2030-01-01T00:00:00Z
cases:
  - name: a typo in a drop code
    event: {type: track, event: Nope, user_id: u_1}
    expect: {dropped: not_in_bluprint}
  - name: no input
    expect: {dropped: not_in_blueprint}
  - name: a bad path
    event: {type: track, event: Nope, user_id: u_1}
    ignore:
      - "actions[x]"
  - name: two expectations
    event: {type: track, event: Nope, user_id: u_1}
    expect: {dropped: not_in_blueprint, contains: {}}
"#;
    std::fs::write(dir.path().join("shop.tests.yaml"), cases).expect("write");
    let output = signal(dir.path(), &["test"]);
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty(), "no case ran");
    for expected in [
        "shop.tests.yaml:1:1: error[unknown_key]: unknown key `recieved_at`",
        "did you mean `received_at`?",
        "shop.tests.yaml:5:23: error[invalid_value]: `not_in_bluprint` is not a drop code",
        "did you mean `not_in_blueprint`?",
        "shop.tests.yaml:6:5: error[invalid_value]: case `no input` has no input",
        "shop.tests.yaml:11:9: error[invalid_path]",
        "shop.tests.yaml:14:13: error[invalid_value]: `expect` has 2 of",
        "no case ran: fix the files above first",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in:\n{said}");
    }
    let validated = signal(dir.path(), &["validate", "shop.tests.yaml"]);
    assert_eq!(validated.status.code(), Some(1));
    assert!(stdout(&validated).contains("shop.tests.yaml:5:23"), "{}", stdout(&validated));
}

#[test]
fn a_broken_blueprint_is_reported_before_any_case_runs() {
    let dir = shop();
    std::fs::write(dir.path().join("shop.yaml"), "extends: retail.yaml\nevents:\n  Wishlist Viewed:\n    rename: {a: }\n    colour: red\n").expect("break it");
    std::fs::write(dir.path().join("shop.tests.yaml"), THREE_CASES).expect("write the cases");
    let output = signal(dir.path(), &["test", "shop.tests.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(said.contains("shop.yaml:5:5: error[unknown_key]"), "{said}");
    assert!(said.contains("no case ran"), "{said}");
    assert!(stdout(&output).is_empty(), "no case ran");
    let missing = signal(dir.path(), &["test", "retail.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("retail.yaml has no test file: write its cases in retail.tests.yaml"), "{}", stderr(&missing));
}

#[test]
fn junit_for_ci_systems() {
    let dir = shop();
    std::fs::write(dir.path().join("shop.tests.yaml"), THREE_CASES).expect("write the cases");
    let output = signal(dir.path(), &["test", "--format", "junit"]);
    assert_eq!(output.status.code(), Some(1));
    let xml = stdout(&output);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"), "{xml}");
    assert!(xml.contains("<testsuite name=\"shop.tests.yaml\" tests=\"3\" failures=\"2\">"), "{xml}");
    assert!(xml.contains("name=\"a wishlist view goes to MoEngage\" file=\"shop.tests.yaml\" line=\"4\"/>"), "{xml}");
    assert!(xml.contains("<failure message=\"the result differs from the expectation\">- actions[0].attributes.value: 98.99\n+ actions[0].attributes.value: 89.99</failure>"), "{xml}");
    assert!(xml.contains("<failure message=\"no expectation yet: run `signal test --update`\">"), "{xml}");
}

#[test]
fn a_case_or_file_name_cannot_forge_a_line_of_a_ci_log() {
    let dir = shop();
    let long = "n".repeat(100_000);
    let cases = format!(
        "blueprint: shop.yaml\ncases:\n  - name: \"x\\n::error file=ci.yml::forged\\e[2J\"\n    event: {{type: track, event: Wishlist Viewed, user_id: u_1}}\n    expect:\n      contains: {{customer_id: someone_else}}\n  - name: {long}\n    event: {{type: track, event: Wishlist Viewed, user_id: u_1}}\n    expect:\n      contains: {{customer_id: someone_else}}\n"
    );
    // A file found by a folder walk is named by whoever wrote the pull request.
    std::fs::write(dir.path().join("::error file=ci.yml::named.tests.yaml"), &cases).expect("write the cases");
    for format in ["text", "junit"] {
        let output = signal(dir.path(), &["test", "--format", format]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let shown = format!("{}{}", stdout(&output), stderr(&output));
        assert!(shown.lines().all(|line| !line.trim_start().starts_with("::")), "{format}: {shown}");
        assert!(!shown.contains('\u{1b}') && !shown.contains("&#x1b;"), "{format}: {shown}");
        assert!(shown.contains("x\\n::error file=ci.yml::forged\\u{1b}[2J"), "{format}: {shown}");
        assert!(shown.len() < 20_000, "{format}: the long name is cut ({} bytes)", shown.len());
    }
    // A diagnostic begins its line with the file's name.
    std::fs::write(dir.path().join("::warning::broken.tests.yaml"), "cases: [").expect("write a broken file");
    let output = signal(dir.path(), &["test"]);
    let shown = stderr(&output);
    assert!(shown.contains("./::warning::broken.tests.yaml:2:1: error[yaml_syntax]"), "{shown}");
    assert!(shown.lines().all(|line| !line.starts_with("::")), "{shown}");
}

#[test]
fn the_schema_of_test_files_is_the_committed_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = signal(root, &["schema", "tests"]);
    let committed = std::fs::read_to_string(root.join("schemas/blueprint-tests.schema.json")).expect("committed schema");
    assert_eq!(stdout(&output), committed, "regenerate: signal schema tests > schemas/blueprint-tests.schema.json");
}

#[test]
fn the_readmes_example_test_file_is_a_valid_one() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guides/blueprints.md"))
        .expect("docs/guides/blueprints.md");
    let example = guide
        .split("```yaml\n")
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.starts_with("# yaml-language-server: $schema=../../schemas/blueprint-tests.schema.json"))
        .expect("the blueprints guide shows a test file");
    let dir = shop();
    std::fs::write(dir.path().join("shop.tests.yaml"), example).expect("write");
    std::fs::write(dir.path().join("last-week.ndjson"), "{\"type\":\"track\",\"event\":\"Signed Up\",\"user_id\":\"u_5\"}\n")
        .expect("write");
    let validated = signal(dir.path(), &["validate", "shop.tests.yaml"]);
    assert!(validated.status.success(), "{}{}", stdout(&validated), stderr(&validated));
    assert!(stdout(&validated).contains("ok (5 cases for"), "{}", stdout(&validated));
}

#[test]
fn update_never_writes_a_file_that_would_not_read_back() {
    let dir = shop();
    let flow = "cases:\n  - {name: a case in flow style, event: {type: track, event: Signed Up, user_id: u_1}}\n";
    std::fs::write(dir.path().join("shop.tests.yaml"), flow).expect("write");
    let output = signal(dir.path(), &["test", "--update"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("shop.tests.yaml was not updated"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(dir.path().join("shop.tests.yaml")).expect("read"), flow, "left as it was");
}

/// A file outside the project holding what a CI job must never print.
fn secret_elsewhere() -> (tempfile::TempDir, std::path::PathBuf) {
    let elsewhere = tempfile::tempdir().expect("dir");
    let secret = elsewhere.path().join("environ");
    std::fs::write(&secret, "DEPLOY_TOKEN: hunter2-secret\n\u{0}AWS_SECRET_ACCESS_KEY=hunter2-secret\n").expect("write");
    (elsewhere, secret)
}

fn assert_refused_unread(output: &Output, named: &str) {
    let said = format!("{}{}", stdout(output), stderr(output));
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(!said.contains("hunter2"), "a refused file was quoted:\n{said}");
    assert!(said.contains("file_refused") || said.contains("refused without being read"), "{said}");
    assert!(said.contains(named), "the refused file is named: {named}\n{said}");
    assert!(said.contains("--allow-outside"), "the way out is told:\n{said}");
}

#[test]
fn a_test_file_that_links_out_of_the_tree_is_refused_without_being_read() {
    let dir = shop();
    let (_elsewhere, secret) = secret_elsewhere();
    std::os::unix::fs::symlink(&secret, dir.path().join("shop.tests.yaml")).expect("symlink");
    // Found in a folder scan, and named on the command line: refused both ways.
    for args in [&["test"][..], &["test", "."], &["test", "shop.tests.yaml"], &["validate", "shop.tests.yaml"]] {
        let output = signal(dir.path(), args);
        assert_refused_unread(&output, "shop.tests.yaml");
    }
    // A test file's own symlink inside the tree is fine.
    std::fs::remove_file(dir.path().join("shop.tests.yaml")).expect("remove");
    std::fs::write(dir.path().join("cases.yaml"), THREE_CASES.replace("# Our mapping cases.", "blueprint: shop.yaml")).expect("write");
    std::os::unix::fs::symlink(dir.path().join("cases.yaml"), dir.path().join("shop.tests.yaml")).expect("symlink");
    let output = signal(dir.path(), &["test", "shop.tests.yaml"]);
    assert!(stdout(&output).contains("1 passed, 2 failed (1 with no expectation"), "{}{}", stdout(&output), stderr(&output));
}

#[test]
fn files_a_test_file_or_blueprint_names_outside_the_tree_are_refused_by_name() {
    let dir = shop();
    let (_elsewhere, secret) = secret_elsewhere();
    let secret = secret.display().to_string();
    // `blueprint:` names a file outside: refused at the key, not read.
    std::fs::write(dir.path().join("a.tests.yaml"), format!("blueprint: {secret}\ncases:\n  - name: x\n    event: {{type: track, event: E, user_id: u}}\n"))
        .expect("write");
    assert_refused_unread(&signal(dir.path(), &["test", "a.tests.yaml"]), &secret);
    assert_refused_unread(&signal(dir.path(), &["validate", "a.tests.yaml"]), &secret);
    std::fs::remove_file(dir.path().join("a.tests.yaml")).expect("remove");
    // `events:` names one outside.
    std::fs::write(
        dir.path().join("shop.tests.yaml"),
        format!("cases:\n  - name: from a file\n    events: {secret}\n    expect: {{each: []}}\n"),
    )
    .expect("write");
    assert_refused_unread(&signal(dir.path(), &["test"]), &secret);
    // A blueprint's `extends:` leads outside.
    std::fs::write(dir.path().join("shop.yaml"), format!("extends: {secret}\nevents:\n  Wishlist Viewed: {{}}\n")).expect("write");
    assert_refused_unread(&signal(dir.path(), &["validate", "shop.yaml"]), &secret);
    // `--allow-outside` is the rare way through: then the file is read (and, not being YAML
    // of a blueprint, reported as such).
    let output = signal(dir.path(), &["validate", "--allow-outside", "shop.yaml"]);
    assert!(!stdout(&output).contains("file_refused"), "{}", stdout(&output));
}

#[test]
fn a_fifo_or_a_folder_is_refused_at_once_not_waited_on() {
    let dir = shop();
    let fifo = dir.path().join("events.ndjson");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    std::fs::write(dir.path().join("shop.tests.yaml"), "cases:\n  - name: from a pipe\n    events: events.ndjson\n").expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["test"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("signal runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("signal test waited on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("events.ndjson` is refused without being read: it is not a regular file"), "{}", stderr(&output));
}

#[test]
fn a_file_of_many_cases_runs_and_a_long_line_is_quoted_in_part() {
    let dir = shop();
    let mut text = String::from("cases:\n");
    for case in 0..13_000 {
        text.push_str(&format!(
            "  - name: case {case}\n    event: {{type: track, event: Wishlist Viewed, user_id: u{case}}}\n    expect: {{dropped: not_in_blueprint}}\n"
        ));
    }
    std::fs::write(dir.path().join("shop.tests.yaml"), &text).expect("write");
    let output = signal(dir.path(), &["test"]);
    // Every case ran (and failed: the event is mapped): none was refused for the file's size.
    assert!(stdout(&output).contains("0 passed, 13000 failed"), "{}", stderr(&output));
    // A one-line file with a mistake far along it: the excerpt quotes ~200 characters, not the line.
    let line = format!("cases: [{}{{name: x, evnt: {{}}}}]\n", "{name: a, event: {type: track, event: E, user_id: u}}, ".repeat(2_000));
    std::fs::write(dir.path().join("shop.tests.yaml"), &line).expect("write");
    let output = signal(dir.path(), &["test"]);
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("evnt"), "{said}");
    let longest = said.lines().map(|line| line.chars().count()).max().unwrap_or(0);
    assert!(longest < 300, "an excerpt line of {longest} characters");
}
