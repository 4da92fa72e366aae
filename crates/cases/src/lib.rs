//! Snapshot tests of blueprint mappings, for integrators: the `*.tests.yaml` files beside their
//! blueprints, each case an event and what the blueprint must make of it.
//!
//! [`load`] reads and checks a test file (every mistake at once, as `FILE:LINE:COL`), [`Suite::run`]
//! maps each case's events through the blueprint with the interpreter `signal map` uses, at a fixed
//! receipt time, and judges the results; [`Suite::updated`] writes the results of cases that have
//! no expectation (or no longer match) back into the file's text, leaving the rest as it was.

pub mod compare;
pub mod model;
pub mod render;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use blueprint::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
use blueprint::files::{FileAccess, RefusalKind};
use blueprint::schema_check::{FileContext, SchemaCheck, Vocabulary};
use blueprint::yaml::{self, Position, SpanIndex};
use blueprint::{DropCode, Mapper, PhoneRegion};
use serde_json::Value;

use crate::compare::{Difference, IgnorePath};
use crate::model::{CaseFile, Expectation, LineExpectation};
use crate::render::Ordered;

pub use model::tests_schema;

/// What test files are called: `shop.yaml`'s are in `shop.tests.yaml`.
pub const SUFFIX: &str = ".tests.yaml";

/// The receipt time of every event when a file does not give one.
pub const DEFAULT_RECEIVED_AT: &str = "2030-01-01T00:00:00Z";

/// A checked test file, ready to run.
#[derive(Debug)]
pub struct Suite {
    /// The file, as the user named it.
    pub file: String,
    /// Its text, as read.
    pub text: String,
    /// The blueprint it tests.
    pub blueprint: PathBuf,
    /// Where its blueprint, and what that extends, may be read from.
    access: FileAccess,
    spans: SpanIndex,
    received_at: jiff::Timestamp,
    default_region: Option<PhoneRegion>,
    object_data: bool,
    enabled: Option<Vec<String>>,
    cases: Vec<Case>,
}

/// A checked case.
#[derive(Debug)]
struct Case {
    index: usize,
    name: String,
    position: Position,
    inputs: Vec<String>,
    from_file: bool,
    ignore: Vec<IgnorePath>,
    expect: Option<Expect>,
}

#[derive(Debug, Clone)]
enum Expect {
    Body(Value),
    Contains(Value),
    Dropped(String),
    Each(Vec<LineExpect>),
}

#[derive(Debug, Clone)]
enum LineExpect {
    Body(Value),
    Dropped(String),
}

/// What one input became.
#[derive(Debug, Clone)]
enum Produced {
    /// The body as written (for `--update`, in its own member order) and as a value (to compare).
    Body { value: Value, text: String },
    Dropped { code: String, reason: String },
}

/// How a case fared.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// As expected.
    Passed,
    /// Not as expected: what differs, line by line.
    Failed(Vec<ReportLine>),
    /// No expectation yet: what came out.
    New(Vec<ReportLine>),
}

/// A line of a report, with what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    /// Expected (`-`), produced (`+`) or said (` `).
    pub mark: Mark,
    /// The text.
    pub text: String,
}

/// What a [`ReportLine`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// What the case expected.
    Expected,
    /// What the blueprint produced.
    Produced,
    /// An explanation, or a proposal.
    Said,
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Its name.
    pub name: String,
    /// Where it is in its file.
    pub position: Position,
    /// How it fared.
    pub verdict: Verdict,
    /// The expectation `--update` would write (as YAML under the case): for a case that did not
    /// pass and whose expectation it may write.
    proposal: Option<Ordered>,
    index: usize,
}

impl CaseResult {
    /// Whether `--update` writes this case's expectation: it did not pass, and is not a `contains`.
    pub fn can_update(&self) -> bool {
        self.proposal.is_some()
    }
}

fn said(text: impl Into<String>) -> ReportLine {
    ReportLine { mark: Mark::Said, text: text.into() }
}

static WORDS: Vocabulary = Vocabulary {
    whole: "the test file",
    reference: "see \"Test: `signal test`\" in docs/guides/blueprints.md",
    place: describe_place,
    type_hint: |_, _, _| None,
    pattern: |_| None,
    choice: |_| None,
};

fn describe_place(schema_pointer: &str) -> String {
    match schema_pointer.rsplit('/').next().unwrap_or_default() {
        "" => "the test file".into(),
        "Case" => "a case".into(),
        "Expectation" => "`expect`".into(),
        "LineExpectation" => "an item of `each`".into(),
        other => format!("`{other}`"),
    }
}

fn schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(tests_schema)
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // Generated from our own types: a failure is a bug in this crate, caught by every test.
        #[allow(clippy::expect_used)]
        jsonschema::draft202012::new(schema()).expect("the generated test file schema is valid")
    })
}

/// The test files `paths` name: a test file itself, a blueprint (its `NAME.tests.yaml`), or a
/// folder (every `*.tests.yaml` under it). Each problem is said in a line.
/// A file found in a folder is taken only if `access` allows it (a symlink out of the tree is a
/// problem, named); folders reached through symlinks are not entered.
pub fn discover(paths: &[PathBuf], access: &FileAccess) -> Result<Vec<PathBuf>, Vec<String>> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let shown = path.display();
        if path.is_dir() {
            let mut under = Vec::new();
            walk(path, &mut under);
            let listed = under.len();
            for file in under {
                match access.check(&file) {
                    Ok(_) => found.push(file),
                    Err(refusal) => problems.push(format!("{refusal} ({})", refusal.hint())),
                }
            }
            if listed == 0 {
                problems.push(format!(
                    "{shown}: no test files under it (a blueprint's cases go beside it, e.g. shop.yaml's in shop{SUFFIX})"
                ));
            }
        } else if path.to_string_lossy().ends_with(SUFFIX) {
            // Anything there is taken, to be refused by name when read if it is not a regular file.
            if path.exists() {
                found.push(path.clone());
            } else {
                problems.push(format!("{shown}: no such file"));
            }
        } else if path.is_file() {
            let beside = tests_beside(path);
            if beside.is_file() {
                found.push(beside);
            } else {
                problems.push(format!(
                    "{shown} has no test file: write its cases in {} (see \"Test: `signal test`\" in docs/guides/blueprints.md)",
                    beside.display()
                ));
            }
        } else {
            problems.push(format!("{shown}: no such file or folder"));
        }
    }
    // `./shop.tests.yaml` reads better as `shop.tests.yaml`.
    let mut found: Vec<PathBuf> =
        found.into_iter().map(|path| path.strip_prefix(".").map(Path::to_path_buf).unwrap_or(path)).collect();
    found.sort();
    found.dedup();
    if problems.is_empty() { Ok(found) } else { Err(problems) }
}

/// `shop.yaml` → `shop.tests.yaml`.
fn tests_beside(blueprint: &Path) -> PathBuf {
    let stem = blueprint.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    blueprint.with_file_name(format!("{stem}{SUFFIX}"))
}

fn walk(folder: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        // A symlinked folder may lead out of the tree, or back into it for ever.
        if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
            // Tools' folders hold no one's blueprints.
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                walk(&path, found);
            }
        } else if name.ends_with(SUFFIX) {
            found.push(path);
        }
    }
}

/// Reads and checks the test file at `path`, named in diagnostics as the caller wrote it; it and
/// the files it names are read only where `access` allows.
pub fn load(path: &Path, access: &FileAccess) -> Result<Suite, Diagnostics> {
    let file = path.display().to_string();
    let text = access
        .read(path)
        .map_err(|refusal| Diagnostics(vec![refusal.diagnostic(file.clone(), "test file", refusal.hint())]))?;
    check(&file, text, path.parent().unwrap_or(Path::new("")), access)
}

/// Checks test file text named `file`, whose relative paths start at `base`, reading the files it
/// names only where `access` allows.
pub fn check(file: &str, text: String, base: &Path, access: &FileAccess) -> Result<Suite, Diagnostics> {
    let mut diagnostics = Vec::new();
    let document = match yaml::parse(&text) {
        Ok(document) => document,
        Err(problem) => {
            let spans = SpanIndex::default();
            let context = FileContext { name: file, text: &text, spans: &spans };
            return Err(Diagnostics(vec![context.at(
                problem.position,
                DiagnosticKind::YamlSyntax,
                problem.message,
                problem.hint,
            )]));
        }
    };
    let yaml::Document { mut value, spans, duplicates } = document;
    let context = FileContext { name: file, text: &text, spans: &spans };
    for (_, problem) in &duplicates {
        diagnostics.push(context.at(
            problem.position,
            DiagnosticKind::DuplicateKey,
            problem.message.clone(),
            problem.hint.clone(),
        ));
    }
    let check = SchemaCheck { schema: schema(), vocabulary: &WORDS };
    let mut refused = Vec::new();
    for error in validator().iter_errors(&value) {
        refused.extend(check.translate(&context, &error, &mut diagnostics));
    }
    let parsed: Option<CaseFile> = blueprint::schema_check::prune(&mut value, refused.clone())
        .and_then(|()| serde_json::from_value(value).ok());
    let Some(parsed) = parsed else {
        if diagnostics.is_empty() {
            diagnostics.push(context.at(
                Position { line: 1, column: 1, len: 1 },
                DiagnosticKind::Schema,
                "the test file cannot be read as one: it needs `cases`, a list".into(),
                Some(WORDS.reference.into()),
            ));
        }
        return Err(sorted(diagnostics));
    };
    let mut invalid = |pointer: &str, kind: DiagnosticKind, message: String, hint: &str| {
        diagnostics.push(context.value(pointer, kind, message, Some(hint.to_owned())));
    };

    let blueprint = blueprint_path(&parsed, file, base, access, &mut invalid);
    let received_at = received_at(&parsed, &mut invalid);
    let default_region = default_region(&parsed, &mut invalid);
    let mut cases = Vec::new();
    for (index, case) in parsed.cases.iter().enumerate() {
        let at = format!("/cases/{index}");
        let inputs = case_inputs(case, &at, base, access, &mut invalid);
        let ignore = ignore_paths(case, &at, &mut invalid);
        let from_file = case.events.is_some();
        let expect = case.expect.as_ref().and_then(|expectation| {
            expectation_of(expectation, from_file, &format!("{at}/expect"), &mut invalid)
        });
        if let Some((inputs, from_file)) = inputs {
            cases.push(Case {
                index,
                name: case.name.clone(),
                position: spans.key(&format!("{at}/name")),
                inputs,
                from_file,
                ignore,
                expect,
            });
        }
    }
    if !diagnostics.is_empty() {
        return Err(sorted(diagnostics));
    }
    Ok(Suite {
        file: file.to_owned(),
        text,
        blueprint,
        access: access.clone(),
        spans,
        received_at,
        default_region,
        object_data: parsed.object_data.unwrap_or(false),
        enabled: parsed.enabled_events,
        cases,
    })
}

fn sorted(mut diagnostics: Vec<Diagnostic>) -> Diagnostics {
    diagnostics.sort_by(|a, b| (a.position, a.kind).cmp(&(b.position, b.kind)));
    diagnostics.dedup_by(|a, b| a.position == b.position && a.message == b.message);
    Diagnostics(diagnostics)
}

fn drop_code(code: &str, pointer: &str, invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str)) -> bool {
    if DropCode::ALL.iter().any(|known| known.as_str() == code) {
        return true;
    }
    let names: Vec<&str> = DropCode::ALL.iter().map(|known| known.as_str()).collect();
    let close = blueprint::diagnostic::did_you_mean(code, names.iter().copied())
        .map(|close| format!("did you mean `{close}`? "))
        .unwrap_or_default();
    invalid(
        pointer,
        DiagnosticKind::InvalidValue,
        format!("`{code}` is not a drop code"),
        &format!("{close}the drop codes are {}", names.join(", ")),
    );
    false
}

/// The blueprint a test file tests: the one it names, or the one named after it
/// (`shop.tests.yaml` tests `shop.yaml`).
fn blueprint_path(
    parsed: &CaseFile,
    file: &str,
    base: &Path,
    access: &FileAccess,
    invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str),
) -> PathBuf {
    let blueprint = match &parsed.blueprint {
        Some(named) => base.join(named),
        None => match file.strip_suffix(SUFFIX) {
            Some(_) => {
                let name = Path::new(file).file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
                base.join(format!("{}.yaml", name.trim_end_matches(SUFFIX)))
            }
            None => {
                invalid(
                    "",
                    DiagnosticKind::InvalidValue,
                    format!("this file is not named NAME{SUFFIX}, so it does not say which blueprint it tests"),
                    "add `blueprint: shop.yaml` (relative to this file), or name it after its blueprint",
                );
                PathBuf::new()
            }
        },
    };
    if parsed.blueprint.is_some()
        && let Err(refusal) = access.check(&blueprint)
        && !refusal.is_not_found()
    {
        invalid("/blueprint", DiagnosticKind::FileRefused, refusal.to_string(), refusal.hint());
    }
    blueprint
}

/// When the file's events are taken to have been received.
fn received_at(parsed: &CaseFile, invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str)) -> jiff::Timestamp {
    match parsed.received_at.as_deref() {
        None => DEFAULT_RECEIVED_AT.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        Some(text) => blueprint::event::parse_time(text).unwrap_or_else(|| {
            invalid(
                "/received_at",
                DiagnosticKind::InvalidValue,
                format!("`{text}` is not an RFC 3339 time"),
                "write e.g. 2030-01-01T00:00:00Z",
            );
            jiff::Timestamp::UNIX_EPOCH
        }),
    }
}

fn default_region(parsed: &CaseFile, invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str)) -> Option<PhoneRegion> {
    parsed.default_region.as_deref().and_then(|code| {
        let region = PhoneRegion::parse(code);
        if region.is_none() {
            invalid(
                "/default_region",
                DiagnosticKind::InvalidValue,
                format!("`{code}` is not a region code"),
                "use an ISO 3166 two-letter code such as GB or US",
            );
        }
        region
    })
}

/// A case's input lines, and whether they came from a file; `None` when it has none to run.
fn case_inputs(
    case: &model::Case,
    at: &str,
    base: &Path,
    access: &FileAccess,
    invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str),
) -> Option<(Vec<String>, bool)> {
    match (&case.event, &case.events) {
        (Some(event), None) => Some((vec![event.to_string()], false)),
        (None, Some(named)) => match access.read(&base.join(named)) {
            Ok(lines) => {
                let lines: Vec<String> = lines.lines().filter(|line| !line.trim().is_empty()).map(str::to_owned).collect();
                if lines.is_empty() {
                    invalid(
                        &format!("{at}/events"),
                        DiagnosticKind::InvalidValue,
                        format!("`{named}` has no events"),
                        "write one JSON event per line",
                    );
                }
                Some((lines, true))
            }
            Err(refusal) => {
                match &refusal.kind {
                    RefusalKind::Io(error) => invalid(
                        &format!("{at}/events"),
                        DiagnosticKind::Io,
                        format!("cannot read `{named}`: {error}"),
                        "the path is relative to this test file",
                    ),
                    _ => invalid(&format!("{at}/events"), DiagnosticKind::FileRefused, refusal.to_string(), refusal.hint()),
                }
                None
            }
        },
        (Some(_), Some(_)) => {
            invalid(
                &format!("{at}/events"),
                DiagnosticKind::InvalidValue,
                "a case has `event` or `events`, not both".into(),
                "split it into two cases",
            );
            None
        }
        (None, None) => {
            invalid(
                at,
                DiagnosticKind::InvalidValue,
                format!("case `{}` has no input", case.name),
                "give `event: {...}` (one event) or `events: FILE.ndjson` (one per line)",
            );
            None
        }
    }
}

/// A case's `ignore` paths, each parsed once.
fn ignore_paths(case: &model::Case, at: &str, invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str)) -> Vec<IgnorePath> {
    let mut ignore = Vec::new();
    for (position, path) in case.ignore.iter().flatten().enumerate() {
        match IgnorePath::parse(path) {
            Ok(parsed) => ignore.push(parsed),
            Err(problem) => invalid(
                &format!("{at}/ignore/{position}"),
                DiagnosticKind::InvalidPath,
                problem,
                "write a path such as `actions[0].current_time`, with `*` for any member or element",
            ),
        }
    }
    ignore
}

fn expectation_of(
    expectation: &Expectation,
    from_file: bool,
    at: &str,
    invalid: &mut impl FnMut(&str, DiagnosticKind, String, &str),
) -> Option<Expect> {
    let given = [
        expectation.body.is_some(),
        expectation.contains.is_some(),
        expectation.dropped.is_some(),
        expectation.each.is_some(),
    ]
    .iter()
    .filter(|given| **given)
    .count();
    if given != 1 {
        invalid(
            at,
            DiagnosticKind::InvalidValue,
            format!("`expect` has {given} of `body`, `contains`, `dropped` and `each`; it takes exactly one"),
            "or leave `expect` out and run `signal test --update` to have it written",
        );
        return None;
    }
    match (expectation, from_file) {
        (Expectation { each: Some(_), .. }, false) => {
            invalid(
                &format!("{at}/each"),
                DiagnosticKind::InvalidValue,
                "`each` is for a case with `events` (a file); this case has one `event`".into(),
                "use `body`, `contains` or `dropped`",
            );
            None
        }
        (Expectation { each: None, .. }, true) => {
            invalid(
                at,
                DiagnosticKind::InvalidValue,
                "a case with `events` (a file) expects `each`: one result per line".into(),
                "write `each: [{body: ...}, {dropped: CODE}, ...]`, or leave `expect` out and run `signal test --update`",
            );
            None
        }
        (Expectation { body: Some(body), .. }, _) => Some(Expect::Body(body.clone())),
        (Expectation { contains: Some(part), .. }, _) => Some(Expect::Contains(part.clone())),
        (Expectation { dropped: Some(code), .. }, _) => {
            drop_code(code, &format!("{at}/dropped"), invalid).then(|| Expect::Dropped(code.clone()))
        }
        (Expectation { each: Some(lines), .. }, _) => {
            let mut each = Vec::new();
            for (number, line) in lines.iter().enumerate() {
                let pointer = format!("{at}/each/{number}");
                match line {
                    LineExpectation { body: Some(body), dropped: None } => each.push(LineExpect::Body(body.clone())),
                    LineExpectation { body: None, dropped: Some(code) } => {
                        if drop_code(code, &format!("{pointer}/dropped"), invalid) {
                            each.push(LineExpect::Dropped(code.clone()));
                        }
                    }
                    _ => invalid(
                        &pointer,
                        DiagnosticKind::InvalidValue,
                        "each line's result is `body: ...` or `dropped: CODE`, one of them".into(),
                        "e.g. `- dropped: not_in_blueprint`",
                    ),
                }
            }
            (each.len() == lines.len()).then_some(Expect::Each(each))
        }
        _ => None,
    }
}

impl Suite {
    /// How many cases it has.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Compiles its blueprint; every diagnostic at once.
    pub fn compile(&self) -> Result<Arc<blueprint::Blueprint>, Diagnostics> {
        blueprint::compile_file_within(&self.blueprint, &self.access).map(Arc::new)
    }

    /// Runs every case through `compiled` (its blueprint, compiled), in order.
    pub fn run(&self, compiled: Arc<blueprint::Blueprint>) -> Vec<CaseResult> {
        // A case's events are mapped as `signal map` maps a file: traits remembered from one to the
        // next, and forgotten between cases.
        let memory = Arc::new(blueprint::RunMemory::default());
        let mut mapper = Mapper::new(compiled)
            .with_default_region(self.default_region)
            .with_object_data(self.object_data)
            .with_memory(memory.clone());
        if let Some(enabled) = &self.enabled {
            mapper = mapper.with_enabled(enabled.iter().cloned());
        }
        let (mut body, mut warnings) = (Vec::new(), Vec::new());
        self.cases
            .iter()
            .map(|case| {
                memory.clear();
                let produced: Vec<Produced> = case
                    .inputs
                    .iter()
                    .map(|input| {
                        warnings.clear();
                        match mapper.map_into(input, self.received_at, &mut body, &mut warnings) {
                            Ok(_) => {
                                let text = String::from_utf8_lossy(&body).into_owned();
                                let value = serde_json::from_str(&text).unwrap_or(Value::Null);
                                Produced::Body { value, text }
                            }
                            Err(drop) => Produced::Dropped { code: drop.code.as_str().to_owned(), reason: drop.reason },
                        }
                    })
                    .collect();
                judge(case, &produced)
            })
            .collect()
    }

    /// The file's text with the expectations of `results` that can be written — cases with none,
    /// and cases that failed — written in, everything else as it was; `None` when there is
    /// nothing to write. Returns the cases written too.
    pub fn updated<'a>(&self, results: &'a [CaseResult]) -> Option<(String, Vec<&'a CaseResult>)> {
        let mut lines: Vec<String> = self.text.lines().map(str::to_owned).collect();
        let mut written = Vec::new();
        // From the bottom up, so that line numbers above stay true.
        let mut edits: Vec<(usize, usize, Vec<String>, &CaseResult)> = Vec::new();
        for result in results {
            let Some(proposal) = &result.proposal else { continue };
            let case_at = format!("/cases/{}", result.index);
            let expect_at = format!("{case_at}/expect");
            let indent = self.spans.key(&format!("{case_at}/name")).column.saturating_sub(1);
            let mut block = String::new();
            Ordered::Members(vec![("expect".into(), proposal.clone())]).write_block(indent, &mut block);
            let new_lines: Vec<String> = block.lines().map(str::to_owned).collect();
            let has_expect = self.spans.last_line_under(&expect_at).is_some()
                && self.cases.iter().any(|case| case.index == result.index && case.expect.is_some());
            if has_expect {
                let first = self.spans.key(&expect_at).line;
                let last = self.spans.last_line_under(&expect_at).unwrap_or(first);
                edits.push((first, last, new_lines, result));
            } else {
                let after = self.spans.last_line_under(&case_at).unwrap_or(result.position.line);
                edits.push((after + 1, after, new_lines, result));
            }
        }
        if edits.is_empty() {
            return None;
        }
        edits.sort_by(|a, b| b.0.cmp(&a.0));
        for (first, last, new_lines, result) in edits {
            // Lines are counted from 1; `first > last` inserts before `first`.
            let start = first.saturating_sub(1).min(lines.len());
            let end = last.min(lines.len()).max(start);
            lines.splice(start..end, new_lines);
            written.push(result);
        }
        written.reverse();
        let mut text = lines.join("\n");
        if self.text.ends_with('\n') || !text.is_empty() {
            text.push('\n');
        }
        Some((text, written))
    }
}

/// The expectation `--update` writes for what was produced.
fn proposal(case: &Case, produced: &[Produced]) -> Option<Ordered> {
    let one = |result: &Produced| match result {
        Produced::Body { value, text } => {
            ("body".to_owned(), Ordered::parse(text).unwrap_or_else(|| Ordered::from_value(value)))
        }
        Produced::Dropped { code, .. } => ("dropped".to_owned(), Ordered::Text(code.clone())),
    };
    if case.from_file {
        let each = produced.iter().map(|result| Ordered::Members(vec![one(result)])).collect();
        return Some(Ordered::Members(vec![("each".into(), Ordered::List(each))]));
    }
    match (&case.expect, produced.first()) {
        // A subset is the integrator's own choice of what matters: never widened to the whole.
        (Some(Expect::Contains(_)), _) => None,
        (_, Some(result)) => Some(Ordered::Members(vec![one(result)])),
        (_, None) => None,
    }
}

fn shown(value: &Value) -> String {
    value.to_string()
}

fn judge(case: &Case, produced: &[Produced]) -> CaseResult {
    // Made once for a case that has none: it is shown, and written by `--update`.
    let mut shown_proposal = None;
    let verdict = match &case.expect {
        None => {
            let proposal = shown_proposal.insert(proposal(case, produced));
            let mut lines = vec![said("no expectation yet; `signal test --update` writes what came out:")];
            let mut block = String::new();
            if let Some(proposal) = proposal {
                Ordered::Members(vec![("expect".into(), proposal.clone())]).write_block(2, &mut block);
            }
            lines.extend(block.lines().map(|line| ReportLine { mark: Mark::Produced, text: line.to_owned() }));
            Verdict::New(lines)
        }
        Some(Expect::Each(each)) => {
            let mut lines = Vec::new();
            if each.len() != produced.len() {
                lines.push(said(format!(
                    "the file has {} events and `each` {} results",
                    produced.len(),
                    each.len()
                )));
            }
            for (number, (expected, result)) in each.iter().zip(produced).enumerate() {
                let one = match expected {
                    LineExpect::Body(body) => compare_body(body, result, &case.ignore, false),
                    LineExpect::Dropped(code) => compare_drop(code, result),
                };
                if !one.is_empty() {
                    lines.push(said(format!("line {}:", number + 1)));
                    lines.extend(one);
                }
            }
            if lines.is_empty() { Verdict::Passed } else { Verdict::Failed(lines) }
        }
        Some(expected) => {
            let result = produced.first();
            let lines = match (expected, result) {
                (_, None) => vec![said("nothing came out")],
                (Expect::Body(body), Some(result)) => compare_body(body, result, &case.ignore, false),
                (Expect::Contains(part), Some(result)) => compare_body(part, result, &case.ignore, true),
                (Expect::Dropped(code), Some(result)) => compare_drop(code, result),
                (Expect::Each(_), Some(_)) => Vec::new(),
            };
            if lines.is_empty() { Verdict::Passed } else { Verdict::Failed(lines) }
        }
    };
    // Only what `--update` may write: a passing case keeps its expectation.
    let proposal = match (shown_proposal, &verdict) {
        (Some(proposal), _) => proposal,
        (None, Verdict::Passed) => None,
        (None, _) => proposal(case, produced),
    };
    CaseResult { name: case.name.clone(), position: case.position, verdict, proposal, index: case.index }
}

fn compare_drop(code: &str, result: &Produced) -> Vec<ReportLine> {
    match result {
        Produced::Dropped { code: dropped, .. } if dropped == code => Vec::new(),
        Produced::Dropped { code: dropped, reason } => vec![
            ReportLine { mark: Mark::Expected, text: format!("dropped: {code}") },
            ReportLine { mark: Mark::Produced, text: format!("dropped: {dropped} ({reason})") },
        ],
        Produced::Body { value, .. } => vec![
            ReportLine { mark: Mark::Expected, text: format!("dropped: {code}") },
            ReportLine { mark: Mark::Produced, text: format!("body: {}", shown(value)) },
        ],
    }
}

fn compare_body(expected: &Value, result: &Produced, ignore: &[IgnorePath], subset: bool) -> Vec<ReportLine> {
    let actual = match result {
        Produced::Body { value, .. } => value,
        Produced::Dropped { code, reason } => {
            return vec![
                ReportLine { mark: Mark::Expected, text: format!("body: {}", shown(expected)) },
                ReportLine { mark: Mark::Produced, text: format!("dropped: {code} ({reason})") },
            ];
        }
    };
    let (mut expected, mut actual) = (expected.clone(), actual.clone());
    for path in ignore {
        path.remove_from(&mut expected);
        path.remove_from(&mut actual);
    }
    compare::differences(&expected, &actual, subset).iter().flat_map(difference_lines).collect()
}

fn difference_lines(difference: &Difference) -> Vec<ReportLine> {
    let path = if difference.path.is_empty() { "(the body)".to_owned() } else { difference.path.clone() };
    let mut lines = Vec::new();
    match &difference.expected {
        Some(value) => lines.push(ReportLine { mark: Mark::Expected, text: format!("{path}: {}", shown(value)) }),
        None => lines.push(ReportLine { mark: Mark::Expected, text: format!("{path}: (absent)") }),
    }
    match &difference.actual {
        Some(value) => lines.push(ReportLine { mark: Mark::Produced, text: format!("{path}: {}", shown(value)) }),
        None => lines.push(ReportLine { mark: Mark::Produced, text: format!("{path}: (absent)") }),
    }
    lines
}
