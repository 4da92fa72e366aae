//! The documents are part of the product: their examples must compile, the references must cover
//! every key of the blueprint and configuration schemas, every code the program can print and every
//! option of every command, and every relative link between them must lead to a file and a heading
//! that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const README: &str = include_str!("../README.md");
/// The blueprint language, then the diagnostic, warning and drop codes.
const BLUEPRINT_REFERENCE: &str = include_str!("../docs/reference/blueprint.md");
const CONFIGURATION_REFERENCE: &str = include_str!("../docs/reference/configuration.md");
/// A section per command, each with its options table.
const CLI_REFERENCE: &str = include_str!("../docs/reference/cli.md");
const BLUEPRINTS_GUIDE: &str = include_str!("../docs/guides/blueprints.md");
const SITES_AND_APPS_GUIDE: &str = include_str!("../docs/guides/sites-and-apps.md");

fn code_blocks(document: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    document.split(&fence).skip(1).filter_map(|rest| rest.split("```").next()).map(str::to_owned).collect()
}

/// The text of the section `heading` opens, up to the next heading of level 2 (or the end).
fn section<'d>(document: &'d str, heading: &str) -> &'d str {
    let rest = document.split(heading).nth(1).unwrap_or_else(|| panic!("a section `{heading}`"));
    rest.split("\n## ").next().unwrap_or(rest)
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
    // The language itself: the code tables that follow it do not count.
    let reference = BLUEPRINT_REFERENCE
        .split("# Blueprint language reference")
        .nth(1)
        .and_then(|rest| rest.split("\n## Diagnostic codes").next())
        .expect("reference section");
    let mut keys = BTreeSet::new();
    schema_keys(&blueprint::blueprint_schema(), &mut keys);
    assert!(keys.len() >= 15, "{keys:?}");
    for key in keys {
        assert!(
            reference.contains(&format!("| `{key}` |")),
            "docs/reference/blueprint.md lacks a row for `{key}`"
        );
    }
    for transform in blueprint::Transform::NAMES {
        assert!(
            reference.contains(&format!("`{transform}`")),
            "docs/reference/blueprint.md lacks transform `{transform}`"
        );
    }
}

#[test]
fn every_diagnostic_and_drop_code_is_in_a_table() {
    let diagnostics = section(BLUEPRINT_REFERENCE, "\n## Diagnostic codes");
    for kind in blueprint::DiagnosticKind::ALL {
        assert!(
            diagnostics.contains(&format!("| `{}` |", kind.code())),
            "docs/reference/blueprint.md's diagnostic codes lack `{}`",
            kind.code()
        );
    }
    let drops = section(BLUEPRINT_REFERENCE, "\n## Drop codes");
    for code in blueprint::DropCode::ALL {
        assert!(
            drops.contains(&format!("| `{}` |", code.as_str())),
            "docs/reference/blueprint.md's drop codes lack `{code}`"
        );
    }
    let warnings = section(BLUEPRINT_REFERENCE, "\n## Warning codes");
    for code in blueprint::WarningCode::ALL {
        assert!(
            warnings.contains(&format!("| `{}` |", code.as_str())),
            "docs/reference/blueprint.md's warning codes lack `{}`",
            code.as_str()
        );
    }
}

#[test]
fn every_blueprint_example_compiles() {
    let documents = [
        ("README.md", README),
        ("docs/guides/blueprints.md", BLUEPRINTS_GUIDE),
        ("docs/guides/sites-and-apps.md", SITES_AND_APPS_GUIDE),
        ("docs/reference/blueprint.md", BLUEPRINT_REFERENCE),
    ];
    let examples: Vec<(&str, String)> = documents
        .into_iter()
        .flat_map(|(name, document)| {
            code_blocks(document, "yaml").into_iter().map(move |block| (name, block))
        })
        .filter(|(_, block)| {
            block.starts_with("# yaml-language-server: $schema=../../schemas/blueprint.schema.json")
        })
        .filter(|(_, block)| block.lines().count() > 1)
        .collect();
    assert!(examples.len() >= 6, "found {} blueprint examples", examples.len());
    for (name, example) in examples {
        // Named as if beside the presets, which is where the guides tell people to put them.
        if let Err(diagnostics) = blueprint::compile_str("blueprints/moengage/readme-example.yaml", &example)
        {
            panic!("an example in {name} does not compile:\n{example}\n{diagnostics}");
        }
    }
}

#[test]
fn the_preview_shown_is_what_signal_map_prints() {
    let shown =
        code_blocks(README, "json").into_iter().find(|b| b.contains("ORD-1001")).expect("preview block");
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
    // Sections of docs/reference/cli.md.
    let tables = [
        ("send", "## `signal send`"),
        ("sandbox", "## `signal sandbox`"),
        ("events", "## `signal events`"),
        ("serve", "## `signal serve`"),
        ("map", "## `signal map`"),
        ("test", "## `signal test`"),
        ("validate", "## `signal validate`"),
        ("replay", "## `signal replay`"),
    ];
    // Every command `signal --help` lists that takes options has its table here.
    let help =
        std::process::Command::new(env!("CARGO_BIN_EXE_signal")).arg("--help").output().expect("signal runs");
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
            "`signal {command}` takes options: give it an options table in docs/reference/cli.md and name it here"
        );
    }
    for (command, section) in tables {
        let text = CLI_REFERENCE.split(section).nth(1).expect("section").split("\n## ").next().expect("body");
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
            assert!(
                text.contains(&format!("| `{flag}")),
                "docs/reference/cli.md's `signal {command}` table lacks {flag}"
            );
        }
    }
}

#[test]
fn the_configuration_reference_documents_every_key() {
    let reference = CONFIGURATION_REFERENCE
        .split("# Configuration reference")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("configuration reference section");
    let mut keys = BTreeSet::new();
    schema_keys(&config::config_schema(), &mut keys);
    assert!(keys.len() >= 25, "{keys:?}");
    for key in keys {
        assert!(
            reference.contains(&format!("| `{key}` |")),
            "docs/reference/configuration.md lacks a configuration row for `{key}`"
        );
    }
}

/// The documents whose links must resolve: the README, ARCHITECTURE.md, BENCHMARKS.md,
/// tests/README.md and every Markdown file under docs/.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "tests/README.md"]
        .iter()
        .map(|file| root.join(file))
        .collect();
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in
            std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines outside fenced code blocks: where headings and links are.
fn prose_lines(markdown: &str) -> Vec<&str> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        let trimmed = line.trim_start_matches(' ');
        match fence {
            Some(open) => {
                if trimmed.starts_with(open) {
                    fence = None;
                }
            }
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => lines.push(line),
        }
    }
    lines
}

/// `text` with each inline code span (`` `...` ``, ``` ``...`` ```) made a space, so that what it
/// quotes is not taken for a link.
fn without_code_spans(text: &str) -> String {
    let bytes = text.as_bytes();
    let run = |at: usize| bytes[at..].iter().take_while(|&&byte| byte == b'`').count();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'`' {
            let next = text[at..].find('`').map_or(bytes.len(), |offset| at + offset);
            out.push_str(&text[at..next]);
            at = next;
            continue;
        }
        let opening = run(at);
        // The span ends at the next run of exactly as many backticks; without one, they are text.
        let mut look = at + opening;
        let mut closing = None;
        while look < bytes.len() {
            if bytes[look] == b'`' {
                let length = run(look);
                if length == opening {
                    closing = Some(look);
                    break;
                }
                look += length;
            } else {
                look += 1;
            }
        }
        match closing {
            Some(close) => {
                out.push(' ');
                at = close + opening;
            }
            None => {
                out.push_str(&text[at..at + opening]);
                at += opening;
            }
        }
    }
    out
}

/// `[text](target)` made `text`, as a heading shows it.
fn link_texts(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|offset| open + offset) else { break };
        let Some(end) = rest[close..].find(')').map(|offset| close + offset) else { break };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The anchor GitHub gives a heading: lowercase, punctuation other than `-` and `_` removed, each
/// space a `-`.
fn slug(heading: &str) -> String {
    link_texts(heading)
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || matches!(*c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every heading's anchor; a heading repeated gets `-1`, `-2`, ... after the first, as on GitHub.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut made = BTreeSet::new();
    for line in prose_lines(markdown) {
        let level = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&level) || !line[level..].starts_with(' ') {
            continue;
        }
        let anchor = slug(line[level..].trim());
        let count = seen.entry(anchor.clone()).or_insert(0);
        made.insert(if *count == 0 { anchor } else { format!("{anchor}-{count}") });
        *count += 1;
    }
    made
}

/// The target of every inline link and image, outside code: `docs/x.md#y` of `[text](docs/x.md#y "title")`.
fn link_targets(markdown: &str) -> Vec<String> {
    let text = without_code_spans(&prose_lines(markdown).join("\n"));
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let target = match rest.strip_prefix('<') {
            Some(angled) => angled.split('>').next().unwrap_or_default(),
            None => rest.split(')').next().unwrap_or_default().split_whitespace().next().unwrap_or_default(),
        };
        targets.push(target.to_owned());
    }
    targets
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents(root) {
        let text = std::fs::read_to_string(&document)
            .unwrap_or_else(|error| panic!("{}: {error}", document.display()));
        let shown = document.strip_prefix(root).unwrap_or(&document).display().to_string();
        for target in link_targets(&text) {
            if ["http://", "https://", "mailto:"].iter().any(|scheme| target.starts_with(scheme)) {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                document.clone()
            } else {
                document.parent().expect("a document's folder").join(path)
            };
            if target.is_empty() || !file.exists() {
                broken.push(format!("{shown}: ({target}): no such file"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_some_and(|extension| extension == "md") {
                let headings = std::fs::read_to_string(&file).map(|text| anchors(&text)).unwrap_or_default();
                if !headings.contains(anchor) {
                    broken.push(format!("{shown}: ({target}): no heading has the anchor `#{anchor}`"));
                }
            }
        }
    }
    // A floor, so that a reader that finds no links fails.
    assert!(checked >= 100, "only {checked} relative links found");
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
}

#[test]
fn github_anchors_are_made_as_github_makes_them() {
    let markdown = "# Signal\n## Signal's tag (`signal.js`)\n```sh\n# not a heading\n```\n## 404 / connection error\n## Foo\n## Foo\n";
    let made = anchors(markdown);
    let expected: BTreeSet<String> =
        ["signal", "signals-tag-signaljs", "404--connection-error", "foo", "foo-1"]
            .iter()
            .map(|a| a.to_string())
            .collect();
    assert_eq!(made, expected);
    let links =
        link_targets("[a](b.md#c) `[d](e.md)` and ``[f](g.md)`` [h](<i j.md>)\n```\n[k](l.md)\n```\n");
    assert_eq!(links, ["b.md#c", "i j.md"]);
}
