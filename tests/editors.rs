//! The blueprint schema as editors and CI jobs use it: the YAML language server (the one VS Code's
//! YAML extension, Neovim and Helix run; npm packages pinned in tests/editors/package-lock.json)
//! and check-jsonschema (the command-line validator, pinned in tests/editors/requirements.txt and
//! installed from PyPI into a virtual environment by this file). Both run on the same fixtures as
//! the compiler's own tests: they refuse what the schema can tell, on the lines `signal validate`
//! names, in words a person reads.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// Invalid fixtures that only the compiler can tell, because they need other files or JSONPath's
/// grammar: the schema accepts them.
const ONLY_THE_COMPILER_TELLS: [&str; 4] =
    ["extends-cycle.yaml", "extends-missing.yaml", "invalid-jsonpath.yaml", "missing-customer-id.yaml"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> PathBuf {
    root().join("schemas/blueprint.schema.json")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a fixtures folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .filter(|path| !path.to_string_lossy().ends_with(".tests.yaml"))
        .collect();
    files.sort();
    files
}

fn valid_blueprints() -> Vec<PathBuf> {
    let mut files = yaml_files(&root().join("crates/blueprint/tests/fixtures/valid"));
    files.extend(yaml_files(&root().join("blueprints/moengage")));
    files
}

fn invalid_blueprints() -> Vec<PathBuf> {
    yaml_files(&root().join("crates/blueprint/tests/fixtures/invalid"))
}

fn name(path: &Path) -> &str {
    path.file_name().and_then(|name| name.to_str()).unwrap_or_default()
}

fn check_jsonschema() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let python = common::python_with("editors-venv", "tests/editors/requirements.txt");
        python.with_file_name("check-jsonschema")
    })
}

/// The folder with the language server's driver, once its npm packages are installed.
fn language_server() -> &'static Path {
    static KIT: OnceLock<PathBuf> = OnceLock::new();
    KIT.get_or_init(|| {
        let dir = root().join("tests/editors");
        if !dir.join("node_modules/yaml-language-server/package.json").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("npm runs (Node.js is needed; `bash tests/run` installs it)");
            assert!(status.success(), "npm ci in tests/editors failed");
        }
        dir
    })
}

#[derive(Debug)]
struct EditorDiagnostic {
    line: u64,
    message: String,
}

/// What the language server shows for `file`, as an editor would.
fn editor_diagnostics(file: &Path) -> Vec<EditorDiagnostic> {
    let output = Command::new("node")
        .current_dir(language_server())
        .arg("editor.cjs")
        .arg("validate")
        .arg(schema())
        .arg(file)
        .output()
        .expect("node runs");
    assert!(output.status.success(), "editor.cjs failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let found: Value = serde_json::from_str(line).expect("a JSON line");
            EditorDiagnostic {
                line: found["line"].as_u64().expect("a line"),
                message: found["message"].as_str().expect("a message").to_owned(),
            }
        })
        .collect()
}

/// The lines of `file` that `signal validate` reports errors on.
fn compiler_lines(file: &Path) -> BTreeSet<u64> {
    let output = Command::new(env!("CARGO_BIN_EXE_signal")).arg("validate").arg(file).output().expect("signal runs");
    assert!(!output.status.success(), "{} is an invalid fixture, but signal validate accepted it", file.display());
    let prefix = format!("{}:", file.display());
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&output.stdout).lines())
        .filter_map(|line| line.strip_prefix(&prefix)?.split(':').next()?.parse().ok())
        .collect()
}

#[test]
fn check_jsonschema_accepts_the_presets_and_refuses_what_the_schema_can_tell() {
    let tool = check_jsonschema();
    let valid = Command::new(tool)
        .arg("--schemafile")
        .arg(schema())
        .args(valid_blueprints())
        .output()
        .expect("check-jsonschema runs");
    assert!(
        valid.status.success(),
        "the presets and valid fixtures are refused:\n{}{}",
        String::from_utf8_lossy(&valid.stdout),
        String::from_utf8_lossy(&valid.stderr)
    );
    for file in invalid_blueprints() {
        let checked =
            Command::new(tool).arg("--schemafile").arg(schema()).arg(&file).output().expect("check-jsonschema runs");
        let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
        if ONLY_THE_COMPILER_TELLS.contains(&name(&file)) {
            assert!(checked.status.success(), "{}: listed as one only the compiler tells, yet refused:\n{said}", name(&file));
        } else {
            assert!(!checked.status.success(), "{}: check-jsonschema accepted it:\n{said}", name(&file));
        }
    }
}

#[test]
fn check_jsonschema_refuses_a_value_source_with_both_or_neither_and_moe_names() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("both.yaml", "events:\n  Signed Up:\n    attributes:\n      plan: {path: $.properties.plan, value: free}\n", "'free' is not of type 'null'"),
        ("neither.yaml", "events:\n  Signed Up:\n    attributes:\n      plan: {default: free}\n", "'path' is a required property"),
        ("action.yaml", "events:\n  Signed Up: {action: moe_signup}\n", "does not match"),
        ("attribute.yaml", "customer:\n  attributes:\n    moe_tier: $.traits.tier\n", "does not match"),
        ("event.yaml", "events:\n  moe_internal: {}\n", "'action' is a required property"),
    ];
    for (file, text, said) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write");
        let checked =
            Command::new(check_jsonschema()).arg("--schemafile").arg(schema()).arg(&path).output().expect("runs");
        let output = String::from_utf8_lossy(&checked.stdout);
        assert!(!checked.status.success(), "{file} accepted:\n{output}");
        assert!(output.contains(said), "{file}: expected {said:?} in:\n{output}");
    }
    let fine = dir.path().join("fine.yaml");
    let text = "events:\n  moe_internal: {action: Internal}\n  Signed Up:\n    attributes:\n      plan: {path: $.properties.plan, default: free}\n      channel: {value: web}\n      moe: $.properties.moe\n";
    std::fs::write(&fine, text).expect("write");
    let checked = Command::new(check_jsonschema()).arg("--schemafile").arg(schema()).arg(&fine).output().expect("runs");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
}

#[test]
fn the_yaml_language_server_shows_each_error_on_the_compilers_line_in_words() {
    let schema_text = std::fs::read_to_string(schema()).expect("the schema");
    let schema_value: Value = serde_json::from_str(&schema_text).expect("JSON");
    let type_names: Vec<String> =
        schema_value["$defs"].as_object().expect("$defs").keys().cloned().collect();
    for file in valid_blueprints() {
        let found = editor_diagnostics(&file);
        assert!(found.is_empty(), "{}: {found:?}", file.display());
    }
    for file in invalid_blueprints() {
        let found = editor_diagnostics(&file);
        // An editor shows nothing on a file with no content yet; check-jsonschema refuses it.
        if ONLY_THE_COMPILER_TELLS.contains(&name(&file)) || name(&file) == "empty.yaml" {
            continue;
        }
        assert!(!found.is_empty(), "{}: the editor shows nothing", name(&file));
        let compiler = compiler_lines(&file);
        for diagnostic in &found {
            assert!(
                compiler.contains(&diagnostic.line),
                "{}: the editor shows line {} ({}), signal validate names lines {compiler:?}",
                name(&file),
                diagnostic.line,
                diagnostic.message
            );
            for type_name in &type_names {
                assert!(!diagnostic.message.contains(type_name.as_str()), "{}: {}", name(&file), diagnostic.message);
            }
            assert!(
                !diagnostic.message.contains("pattern") && !diagnostic.message.contains('^'),
                "{}: a regular expression shown: {}",
                name(&file),
                diagnostic.message
            );
        }
    }
    let messages = |fixture: &str| -> String {
        let file = root().join("crates/blueprint/tests/fixtures/invalid").join(fixture);
        editor_diagnostics(&file).into_iter().map(|d| d.message).collect::<Vec<_>>().join("\n")
    };
    let reserved = messages("reserved-prefix.yaml");
    assert_eq!(reserved.matches("MoEngage reserves names that begin with `moe_`").count(), 6, "{reserved}");
    assert!(reserved.contains("An event whose name begins with `moe_` needs an `action`"), "{reserved}");
    let shape = messages("value-source-shape.yaml");
    assert!(shape.contains("takes `path` (read the event) or `value` (a constant), not both"), "{shape}");
    assert!(shape.contains("needs `path` or `value`"), "{shape}");
    assert!(messages("unknown-event-field.yaml").contains("A path begins with `$`"));
    assert!(messages("bare-event.yaml").contains("Expected \"Event mapping\""));
}

#[test]
fn hovers_show_each_fields_documentation_as_markdown() {
    let retail = root().join("blueprints/moengage/retail.yaml");
    let text = std::fs::read_to_string(&retail).expect("retail preset");
    let (index, line) = text.lines().enumerate().find(|(_, line)| line.trim() == "rename:").expect("a rename key");
    let column = line.find("rename").expect("the key") + 1;
    let output = Command::new("node")
        .current_dir(language_server())
        .arg("editor.cjs")
        .arg("hover")
        .arg(schema())
        .arg(&retail)
        .arg((index + 1).to_string())
        .arg(column.to_string())
        .output()
        .expect("node runs");
    let hover = String::from_utf8_lossy(&output.stdout);
    assert!(hover.contains("#### Event mapping"), "the title as a heading: {hover}");
    assert!(hover.contains("Properties sent under another attribute name: `{revenue: value}`"), "{hover}");
}
