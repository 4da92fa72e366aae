//! The configuration as operators write it: the shipped example loads, secrets come from the
//! environment and never print, and each broken file reports every error at once with its place.

use std::collections::HashMap;
use std::path::Path;

fn environment() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("SIGNAL_WEB_WRITE_KEY", "wk-s3cret-web"),
        ("MOENGAGE_WORKSPACE_ID", "WS123"),
        ("MOENGAGE_DATA_API_KEY", "dk-s3cret-data"),
        ("MOENGAGE_DATA_CENTER", "01"),
        ("WEB_KEY", "same-key"),
    ])
}

fn load(path: &Path) -> Result<config::Config, blueprint::Diagnostics> {
    let environment = environment();
    config::load_with(path, &|name| environment.get(name).map(|value| (*value).to_owned()))
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

#[test]
fn the_shipped_example_loads_with_its_variables_set() {
    let config = load(&repo("signal.example.yaml")).expect("valid");
    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.sources[0].write_key.expose(), "wk-s3cret-web");
    let destination = &config.integrations[0].destination;
    assert_eq!(destination.shown_as(), "workspace WS123 at https://api-01.moengage.com/v1/event/WS123");
    let pipeline = &config.pipelines[0];
    assert_eq!((pipeline.source.as_str(), pipeline.integration.as_str()), ("web", "moengage"));
    assert_eq!(pipeline.blueprint_name, "preset retail");
    assert_eq!(pipeline.enabled_events.as_ref().map(Vec::len), Some(8));
    let store::Storage::Sqlite(path) = &config.storage else { panic!("the default storage is an SQLite file") };
    assert!(path.ends_with("data/signal.db"), "{path:?}");
    assert_eq!(config.dedupe_window.as_secs(), 24 * 3600);

    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret"), "secrets never print: {printed}");
}

#[test]
fn the_example_without_its_variables_names_each_one() {
    let errors = config::load_with(&repo("signal.example.yaml"), &|_| None).expect_err("variables unset");
    let text = errors.to_string();
    for variable in
        ["SIGNAL_WEB_WRITE_KEY", "MOENGAGE_WORKSPACE_ID", "MOENGAGE_DATA_API_KEY", "MOENGAGE_DATA_CENTER"]
    {
        assert!(text.contains(&format!("the environment variable `{variable}` is not set")), "{text}");
    }
}

#[test]
fn broken_configurations_report_every_error_with_its_place() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> =
        std::fs::read_dir(&fixtures).expect("fixtures").flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 3);
    for file in files {
        let errors = load(&file).expect_err("invalid");
        let text = errors.to_string().replace(&fixtures.display().to_string(), "tests/fixtures/invalid");
        assert!(!text.contains("s3cret"), "{text}");
        let name = file.file_stem().and_then(|s| s.to_str()).expect("name").to_owned();
        if name == "unknown_keys_and_types" {
            // Schema errors do not hide the checks after them: the dangling name is reported too.
            for place in ["3:3: error[unknown_key]", "4:16: error[schema]", "12:18: error[unknown_name]", "13:13: error[schema]"] {
                assert!(text.contains(place), "{place} in:\n{text}");
            }
            assert!(text.ends_with("6 errors\n") || text.ends_with("6 errors"), "{text}");
        }
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn the_schema_file_is_the_generated_schema() {
    let committed =
        std::fs::read_to_string(repo("schemas/config.schema.json")).expect("schemas/config.schema.json");
    let generated = serde_json::to_string_pretty(&config::config_schema()).expect("json") + "\n";
    assert_eq!(
        committed, generated,
        "regenerate with `cargo run -- schema config > schemas/config.schema.json`"
    );
}

#[test]
fn configurations_are_told_from_blueprints() {
    assert!(config::looks_like_config(&std::fs::read_to_string(repo("signal.example.yaml")).expect("read")));
    let retail = std::fs::read_to_string(repo("blueprints/moengage/retail.yaml")).expect("read");
    assert!(!config::looks_like_config(&retail));
}

#[test]
fn an_integration_names_its_destination_type() {
    let check = |integration: &str| {
        let text = format!(
            "sources:\n  web:\n    write_key: k\nintegrations:\n  shop:\n{integration}\
             pipelines:\n  web:\n    source: web\n    integration: shop\n    preset: retail\n"
        );
        config::check("signal.yaml", &text, Path::new("."), &|_| None)
    };
    let settings = "    workspace_id: WS1\n    data_api_key: k\n    data_center: \"02\"\n";
    for typed in ["", "    type: moengage\n"] {
        let config = check(&format!("{typed}{settings}")).expect("valid");
        assert_eq!(
            config.integrations[0].destination.shown_as(),
            "workspace WS1 at https://api-02.moengage.com/v1/event/WS1"
        );
    }
    let errors = check(&format!("    type: webhook\n{settings}")).expect_err("an unknown type").to_string();
    assert!(errors.contains("signal.yaml:6:11: error[schema]: unknown destination type `webhook`"), "{errors}");
    assert!(errors.contains("use one of: moengage"), "{errors}");
    // A destination's own checks are reported at the setting, by the destination's words.
    let errors = check("    workspace_id: WS1\n    data_api_key: k\n    data_center: \"09\"\n")
        .expect_err("a bad data center")
        .to_string();
    assert!(errors.contains("signal.yaml:8:18: error[invalid_value]: `09` is not a MoEngage data center"), "{errors}");
}
