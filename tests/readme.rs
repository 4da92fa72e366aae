//! The README is part of the product: its examples must compile, its reference must cover every key
//! of the blueprint schema, and its tables every code the program can print.

use std::collections::BTreeSet;

use serde_json::Value;

const README: &str = include_str!("../README.md");

fn code_blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    README.split(&fence).skip(1).filter_map(|rest| rest.split("```").next()).map(str::to_owned).collect()
}

fn schema_keys(value: &Value, keys: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                keys.extend(properties.keys().cloned());
            }
            map.values().for_each(|child| schema_keys(child, keys));
        }
        Value::Array(items) => items.iter().for_each(|child| schema_keys(child, keys)),
        _ => {}
    }
}

#[test]
fn the_reference_documents_every_blueprint_key() {
    let reference = README.split("## Blueprint language reference").nth(1).expect("reference section");
    let mut keys = BTreeSet::new();
    schema_keys(&blueprint::blueprint_schema(), &mut keys);
    assert!(keys.len() >= 15, "{keys:?}");
    for key in keys {
        assert!(reference.contains(&format!("| `{key}` |")), "README reference lacks a row for `{key}`");
    }
    for transform in blueprint::Transform::NAMES {
        assert!(reference.contains(&format!("`{transform}`")), "README lacks transform `{transform}`");
    }
}

#[test]
fn every_diagnostic_and_drop_code_is_in_a_table() {
    for kind in blueprint::DiagnosticKind::ALL {
        assert!(
            README.contains(&format!("| `{}` |", kind.code())),
            "README lacks diagnostic `{}`",
            kind.code()
        );
    }
    for code in blueprint::DropCode::ALL {
        assert!(README.contains(&format!("| `{}` |", code.as_str())), "README lacks drop code `{code}`");
    }
    for code in blueprint::WarningCode::ALL {
        assert!(README.contains(&format!("| `{}` |", code.as_str())), "README lacks warning code `{}`", code.as_str());
    }
}

#[test]
fn every_blueprint_example_compiles() {
    let examples: Vec<String> = code_blocks("yaml")
        .into_iter()
        .filter(|block| {
            block.starts_with("# yaml-language-server: $schema=../../schemas/blueprint.schema.json")
        })
        .filter(|block| block.lines().count() > 1)
        .collect();
    assert!(examples.len() >= 4, "found {} blueprint examples", examples.len());
    for example in examples {
        // Named as if beside the presets, which is where the README tells people to put them.
        if let Err(diagnostics) = blueprint::compile_str("blueprints/moengage/readme-example.yaml", &example)
        {
            panic!("README example does not compile:\n{example}\n{diagnostics}");
        }
    }
}

#[test]
fn the_preview_shown_is_what_signal_map_prints() {
    let shown = code_blocks("json").into_iter().find(|b| b.contains("ORD-1001")).expect("preview block");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["map", "--blueprint", "blueprints/moengage/retail.yaml", "--events", "examples/events.ndjson"])
        .output()
        .expect("signal runs");
    assert!(output.status.success());
    let first = String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or_default().to_owned();
    assert_eq!(first, shown.trim());
}

/// The flags `signal COMMAND --help` lists, e.g. `--per-minute`.
fn flags_of(command: &str) -> Vec<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signal"))
        .args([command, "--help"])
        .output()
        .expect("signal runs");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    help.split_whitespace()
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| word.trim_end_matches([',', '.']).to_owned())
        .filter(|flag| !matches!(flag.as_str(), "--help" | "--version"))
        .collect()
}

#[test]
fn every_flag_of_every_command_is_in_its_options_table() {
    let tables = [
        ("send", "## Sending a file of events: `signal send`"),
        ("sandbox", "## A local MoEngage: `signal sandbox`"),
        ("events", "## The Event Debugger"),
        ("serve", "## Running the service: `signal serve`"),
        ("map", "### Preview"),
        ("test", "### Test: `signal test`"),
        ("validate", "### Validate"),
        ("replay", "## The Event Debugger"),
    ];
    // Every command `signal --help` lists that takes options has its table here.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_signal")).arg("--help").output().expect("signal runs");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .collect();
    assert!(commands.len() >= 9, "{commands:?}");
    for command in &commands {
        let has_options = !flags_of(command).is_empty();
        assert!(
            !has_options || tables.iter().any(|(name, _)| name == command),
            "`signal {command}` takes options: give it an options table in the README and name it here"
        );
    }
    for (command, section) in tables {
        let text = README.split(section).nth(1).expect("section").split("\n## ").next().expect("body");
        let text = text.split("\n### ").next().unwrap_or(text);
        let flags = flags_of(command);
        // A floor under the count, so that a help text that lists nothing fails.
        let least = match command {
            "send" | "sandbox" => 6,
            "test" => 2,
            "validate" => 1,
            _ => 4,
        };
        assert!(flags.len() >= least, "{flags:?}");
        for flag in flags {
            assert!(text.contains(&format!("| `{flag}")), "README's `signal {command}` table lacks {flag}");
        }
    }
}

#[test]
fn the_configuration_reference_documents_every_key() {
    let reference = README
        .split("## Configuration reference")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("configuration reference section");
    let mut keys = BTreeSet::new();
    schema_keys(&config::config_schema(), &mut keys);
    assert!(keys.len() >= 25, "{keys:?}");
    for key in keys {
        assert!(reference.contains(&format!("| `{key}` |")), "README lacks a configuration row for `{key}`");
    }
}
