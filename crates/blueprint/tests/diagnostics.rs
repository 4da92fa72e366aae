//! Every invalid blueprint under `fixtures/invalid/` (one file per case) is refused, and its whole
//! diagnostic report is snapshotted; every blueprint under `fixtures/valid/` compiles.

use std::path::Path;

fn relative(path: &Path) -> &Path {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path)
}

#[test]
fn invalid_blueprints_report_every_error_with_its_place() {
    insta::glob!("fixtures/invalid/*.yaml", |path| {
        let path = relative(path);
        let diagnostics = match blueprint::compile_file(path) {
            Ok(_) => panic!("{} compiled, but it is a fixture of an invalid blueprint", path.display()),
            Err(diagnostics) => diagnostics,
        };
        assert!(!diagnostics.is_empty());
        for diagnostic in diagnostics.iter() {
            assert!(diagnostic.position.line >= 1 && diagnostic.position.column >= 1, "{diagnostic}");
            assert!(diagnostic.hint.is_some(), "every diagnostic has a hint: {diagnostic}");
        }
        insta::assert_snapshot!(diagnostics.to_string());
    });
}

#[test]
fn valid_blueprints_compile() {
    insta::glob!("fixtures/valid/*.yaml", |path| {
        let path = relative(path);
        if let Err(diagnostics) = blueprint::compile_file(path) {
            panic!("{} should compile:\n{diagnostics}", path.display());
        }
    });
}

#[test]
fn shipped_presets_compile_and_map_the_documented_events() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage");
    let common = ["Application Installed", "Application Opened", "Logged In", "Signed Up", "page", "screen"];
    let retail = blueprint::compile_file(&root.join("retail.yaml")).expect("retail preset compiles");
    let mut expected: Vec<&str> = common
        .iter()
        .copied()
        .chain([
            "Products Searched",
            "Product Viewed",
            "Product Added",
            "Checkout Started",
            "Order Completed",
        ])
        .collect();
    expected.sort_unstable();
    assert_eq!(retail.event_names().collect::<Vec<_>>(), expected);
    let saas = blueprint::compile_file(&root.join("b2b-saas.yaml")).expect("B2B/SaaS preset compiles");
    let mut expected: Vec<&str> = common.iter().copied().chain(["Subscription Started"]).collect();
    expected.sort_unstable();
    assert_eq!(saas.event_names().collect::<Vec<_>>(), expected);
    for (preset, compiled) in [("retail", &retail), ("b2b-saas", &saas)] {
        assert_eq!(compiled.action_for("page"), Some("Page Viewed"), "{preset}");
        assert_eq!(compiled.action_for("screen"), Some("Screen Viewed"), "{preset}");
        assert!(compiled.updates_customers() && compiled.merges_users(), "{preset}: identify and alias are sent");
    }
}

#[test]
fn every_preset_starts_with_the_schema_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage");
    for entry in std::fs::read_dir(&root).expect("blueprints folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let first = text.lines().next().unwrap_or_default();
        // A preset's mapping cases (`retail.tests.yaml`) point at the schema of test files.
        let schema = if path.to_string_lossy().ends_with(".tests.yaml") {
            "blueprint-tests.schema.json"
        } else {
            "blueprint.schema.json"
        };
        assert_eq!(first, format!("# yaml-language-server: $schema=../../schemas/{schema}"), "{}", path.display());
        // The header's relative path must lead to the committed schema.
        assert!(root.join("../../schemas").join(schema).is_file());
    }
}
