//! The compiler: blueprint files (with what they extend) → a [`Blueprint`], or every diagnostic at
//! once. Checks, in order: YAML well-formedness, duplicate keys, the JSON Schema (the same one
//! editors use), then what a schema cannot say (JSONPath syntax, the `moe_` prefix, `customer_id`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics, did_you_mean};
use crate::model::{BlueprintFile, EventMapping, SourceSpec, ValueSource};
use crate::path::{self, FieldPath};
use crate::yaml::{self, Position, SpanIndex, YamlProblemKind, escape_pointer_segment};
use crate::{Blueprint, CompiledEvent, CompiledSource, Origin, RESERVED_PREFIX};

/// The event key that maps every event not listed by name.
pub const CATCH_ALL: &str = "*";

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // The schema is generated from our own types; failing to build it is a bug in this crate,
        // caught by every test.
        #[allow(clippy::expect_used)]
        jsonschema::draft202012::new(schema()).expect("the generated blueprint schema is valid")
    })
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(crate::model::blueprint_schema)
}

/// Compiles the blueprint at `path`, named in diagnostics as the caller wrote it.
pub fn compile_file(path: &Path) -> Result<Blueprint, Diagnostics> {
    let mut compiler = Compiler::default();
    let display = path.display().to_string();
    let chain = compiler.load(path.to_path_buf(), display, &mut Vec::new());
    compiler.finish(chain)
}

/// Compiles blueprint text, as if read from a file named `name` (which `extends` resolves against).
pub fn compile_str(name: &str, text: &str) -> Result<Blueprint, Diagnostics> {
    let mut compiler = Compiler::default();
    let chain = compiler.load_text(PathBuf::from(name), name.to_owned(), text, &mut Vec::new());
    compiler.finish(chain)
}

/// One file's contribution, compiled, before merging with what it extends.
#[derive(Default)]
struct Layer {
    platform: Option<String>,
    customer_id: Option<CompiledSource>,
    user_identifiers: BTreeMap<String, CompiledSource>,
    user_attributes: BTreeMap<String, CompiledSource>,
    events: BTreeMap<String, CompiledEvent>,
}

#[derive(Default)]
struct Compiler {
    diagnostics: Vec<Diagnostic>,
    /// What to report, and where in the named file, if nothing provides a `customer_id`.
    missing_customer_id: Option<Diagnostic>,
    files: Vec<String>,
}

/// The file being checked: its name, text and spans, so that a pointer becomes a diagnostic.
struct FileContext<'a> {
    name: &'a str,
    text: &'a str,
    spans: &'a SpanIndex,
}

impl FileContext<'_> {
    fn at(
        &self,
        position: Position,
        kind: DiagnosticKind,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.name.to_owned(),
            position,
            kind,
            message,
            hint,
            source_line: self.text.lines().nth(position.line.saturating_sub(1)).map(str::to_owned),
        }
    }
    fn value(
        &self,
        pointer: &str,
        kind: DiagnosticKind,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        self.at(self.spans.value(pointer), kind, message, hint)
    }
    fn key(&self, pointer: &str, kind: DiagnosticKind, message: String, hint: Option<String>) -> Diagnostic {
        self.at(self.spans.key(pointer), kind, message, hint)
    }
}

impl Compiler {
    /// Loads `path` and everything it extends; returns the layers, base first.
    fn load(&mut self, path: PathBuf, display: String, stack: &mut Vec<PathBuf>) -> Vec<Layer> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                self.diagnostics.push(Diagnostic {
                    file: display,
                    position: Position { line: 1, column: 1, len: 1 },
                    kind: DiagnosticKind::Io,
                    message: format!("cannot read the blueprint: {error}"),
                    hint: Some("check the path and that the file is readable".into()),
                    source_line: None,
                });
                return Vec::new();
            }
        };
        self.load_text(path, display, &text, stack)
    }

    fn load_text(
        &mut self,
        path: PathBuf,
        display: String,
        text: &str,
        stack: &mut Vec<PathBuf>,
    ) -> Vec<Layer> {
        self.files.push(display.clone());
        let document = match yaml::parse(text) {
            Ok(document) => document,
            Err(problem) => {
                let context = FileContext { name: &display, text, spans: &SpanIndex::default() };
                self.diagnostics.push(context.at(
                    problem.position,
                    DiagnosticKind::YamlSyntax,
                    problem.message,
                    problem.hint,
                ));
                return Vec::new();
            }
        };
        let context = FileContext { name: &display, text, spans: &document.spans };
        if self.missing_customer_id.is_none() {
            self.missing_customer_id = Some(context.key(
                "/identity",
                DiagnosticKind::MissingCustomerId,
                "no `customer_id` mapping: MoEngage refuses events without one".into(),
                Some("add `identity: {customer_id: $.user_id}`, or `extends: base.yaml` for the shared identity mapping".into()),
            ));
        }
        for (pointer, problem) in &document.duplicates {
            let kind = match (pointer.as_str(), problem.kind) {
                ("/events", YamlProblemKind::DuplicateKey { .. }) => DiagnosticKind::DuplicateEvent,
                _ => DiagnosticKind::DuplicateKey,
            };
            let message = if kind == DiagnosticKind::DuplicateEvent {
                problem.message.replace("is defined twice in the same mapping", "is mapped twice")
            } else {
                problem.message.clone()
            };
            self.diagnostics.push(context.at(problem.position, kind, message, problem.hint.clone()));
        }

        let mut value = match document.value {
            Value::Null => Value::Object(Default::default()),
            value => value,
        };
        let mut broken = Vec::new();
        for error in validator().iter_errors(&value) {
            broken.extend(self.schema_error(&context, &error));
        }
        let file: Option<BlueprintFile> =
            prune(&mut value, broken).and_then(|()| serde_json::from_value(value).ok());
        let Some(file) = file else {
            return Vec::new();
        };

        let mut layers = Vec::new();
        if let Some(extends) = &file.extends {
            layers = self.extends(&context, &path, extends, stack);
        }
        layers.push(self.layer(&context, &file));
        layers
    }

    fn extends(
        &mut self,
        context: &FileContext<'_>,
        path: &Path,
        extends: &str,
        stack: &mut Vec<PathBuf>,
    ) -> Vec<Layer> {
        let base = path.parent().unwrap_or(Path::new("")).join(extends);
        let display = normalise(&Path::new(context.name).parent().unwrap_or(Path::new("")).join(extends));
        let identity = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
        let self_identity = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if identity == self_identity || stack.contains(&identity) {
            self.diagnostics.push(context.value(
                "/extends",
                DiagnosticKind::ExtendsCycle,
                format!("`extends: {extends}` leads back to a blueprint that is already being extended"),
                Some("a blueprint may extend a base, but the base must not extend it again; remove one `extends`".into()),
            ));
            return Vec::new();
        }
        if !base.is_file() {
            self.diagnostics.push(
                context.value(
                    "/extends",
                    DiagnosticKind::ExtendsNotFound,
                    format!("`extends: {extends}` names `{display}`, which does not exist"),
                    Some(
                        "the path is relative to this file, e.g. `extends: base.yaml` for a file beside it"
                            .into(),
                    ),
                ),
            );
            return Vec::new();
        }
        stack.push(self_identity);
        let layers = self.load(base, display, stack);
        stack.pop();
        layers
    }

    /// Translates a schema error to diagnostics; returns the pointers to prune before typing.
    fn schema_error(&mut self, context: &FileContext<'_>, error: &ValidationError<'_>) -> Vec<String> {
        let pointer = error.instance_path().as_str().to_owned();
        let field = &last_segment(&pointer);
        let schema_path = error.schema_path().as_str();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = pointer_parent(schema_path);
                let allowed: Vec<&str> = schema()
                    .pointer(parent)
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|properties| properties.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let place = describe_schema(parent);
                let mut pruned = Vec::new();
                for key in unexpected {
                    let child = format!("{pointer}/{}", escape_pointer_segment(key));
                    let suggestion = did_you_mean(key, allowed.iter().copied())
                        .map(|close| format!("did you mean `{close}`? "))
                        .unwrap_or_default();
                    self.diagnostics.push(context.key(
                        &child,
                        DiagnosticKind::UnknownKey,
                        format!("unknown key `{key}` in {place}"),
                        Some(format!("{suggestion}{place} takes: {}", allowed.join(", "))),
                    ));
                    pruned.push(child);
                }
                pruned
            }
            ValidationErrorKind::Type { .. } => {
                let expected = schema()
                    .pointer(schema_path)
                    .map(describe_types)
                    .unwrap_or_else(|| "another type".into());
                self.type_error(context, &pointer, field, &expected, error.instance());
                vec![pointer]
            }
            ValidationErrorKind::Pattern { .. } => {
                let text = error.instance().as_str().unwrap_or_default();
                let problem = path::compile(text).err().unwrap_or_else(|| path::PathError {
                    message: format!("`{text}` does not match the expected form"),
                    hint: "see the blueprint reference".into(),
                });
                self.diagnostics.push(context.value(
                    &pointer,
                    DiagnosticKind::InvalidPath,
                    problem.message,
                    Some(problem.hint),
                ));
                vec![pointer]
            }
            ValidationErrorKind::MinLength { .. } => {
                self.diagnostics.push(context.value(
                    &pointer,
                    DiagnosticKind::Schema,
                    format!("{} must not be empty", name_of(field)),
                    Some("write a name, or remove the key to use the default".into()),
                ));
                vec![pointer]
            }
            ValidationErrorKind::OneOfNotValid { context: branches }
            | ValidationErrorKind::AnyOf { context: branches } => {
                let options: Vec<String> = branches
                    .iter()
                    .flatten()
                    .filter_map(|branch_error| match branch_error.kind() {
                        ValidationErrorKind::Constant { expected_value } => {
                            expected_value.as_str().map(str::to_owned)
                        }
                        _ => None,
                    })
                    .collect();
                let found = error.instance();
                if !options.is_empty() && options.len() == branches.len() {
                    let shown = found.as_str().map_or_else(|| describe_value(found), |s| format!("`{s}`"));
                    let suggestion = found
                        .as_str()
                        .and_then(|s| did_you_mean(s, options.iter().map(String::as_str)))
                        .map(|close| format!("did you mean `{close}`? "))
                        .unwrap_or_default();
                    let (kind, what) = if field == "transform" {
                        (DiagnosticKind::UnknownTransform, "transform".to_owned())
                    } else {
                        (DiagnosticKind::Schema, format!("value for {}", name_of(field)))
                    };
                    self.diagnostics.push(context.value(
                        &pointer,
                        kind,
                        format!("unknown {what} {shown}"),
                        Some(format!("{suggestion}use one of: {}", options.join(", "))),
                    ));
                    vec![pointer]
                } else if let Some(expected) = only_type_errors(branches, &pointer) {
                    self.type_error(context, &pointer, field, &expected, found);
                    vec![pointer]
                } else if let Some(branch) = likely_branch(branches, &pointer) {
                    // An optional field is `anyOf: [its type, null]`; report the real branch's errors.
                    branch.iter().flat_map(|inner| self.schema_error(context, inner)).collect()
                } else {
                    self.diagnostics.push(context.value(
                        &pointer,
                        DiagnosticKind::Schema,
                        format!("{}: {error}", name_of(field)),
                        Some("see the blueprint reference in the README".into()),
                    ));
                    vec![pointer]
                }
            }
            _ => {
                self.diagnostics.push(context.value(
                    &pointer,
                    DiagnosticKind::Schema,
                    format!("{}: {error}", name_of(field)),
                    Some("see the blueprint reference in the README".into()),
                ));
                vec![pointer]
            }
        }
    }

    fn type_error(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        field: &str,
        expected: &str,
        found: &Value,
    ) {
        self.diagnostics.push(context.value(
            pointer,
            DiagnosticKind::Schema,
            format!("{} must be {expected}, found {}", name_of(field), describe_value(found)),
            Some(type_hint(field, expected)),
        ));
    }

    /// Compiles one file's content: paths, constants, and the checks a schema cannot express.
    fn layer(&mut self, context: &FileContext<'_>, file: &BlueprintFile) -> Layer {
        let mut layer = Layer { platform: file.platform.clone(), ..Layer::default() };
        if let Some(identity) = &file.identity {
            if let Some(source) = &identity.customer_id {
                layer.customer_id = self.source(context, "/identity/customer_id", source);
            }
            for (group, entries, target) in [
                ("user_identifiers", &identity.user_identifiers, &mut layer.user_identifiers),
                ("attributes", &identity.attributes, &mut layer.user_attributes),
            ] {
                for (name, source) in entries.iter().flatten() {
                    let pointer = format!("/identity/{group}/{}", escape_pointer_segment(name));
                    self.check_reserved(context, &pointer, name, "attribute");
                    if let Some(compiled) = self.source(context, &pointer, source) {
                        target.insert(name.clone(), compiled);
                    }
                }
            }
        }
        for (name, mapping) in file.events.iter().flatten() {
            let pointer = format!("/events/{}", escape_pointer_segment(name));
            if let Some(event) = self.event(context, &pointer, name, mapping) {
                layer.events.insert(name.clone(), event);
            }
        }
        layer
    }

    fn event(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        name: &str,
        mapping: &EventMapping,
    ) -> Option<CompiledEvent> {
        match &mapping.action {
            Some(action) => self.check_reserved(context, &format!("{pointer}/action"), action, "action"),
            None if name != CATCH_ALL && name.starts_with(RESERVED_PREFIX) => {
                self.diagnostics.push(context.key(
                    pointer,
                    DiagnosticKind::ReservedPrefix,
                    format!("the action name `{name}` begins with `{RESERVED_PREFIX}`, which MoEngage reserves"),
                    Some("MoEngage may drop such events: add `action:` with a name that does not begin with `moe_`".into()),
                ));
            }
            None => {}
        }
        let mut rename = Vec::new();
        for (from, to) in mapping.rename.iter().flatten() {
            self.check_reserved(
                context,
                &format!("{pointer}/rename/{}", escape_pointer_segment(from)),
                to,
                "attribute",
            );
            rename.push((from.clone().into_boxed_str(), to.clone().into_boxed_str()));
        }
        let mut attributes = Vec::new();
        for (attribute, source) in mapping.attributes.iter().flatten() {
            let attribute_pointer = format!("{pointer}/attributes/{}", escape_pointer_segment(attribute));
            self.check_reserved(context, &attribute_pointer, attribute, "attribute");
            if let Some(compiled) = self.source(context, &attribute_pointer, source) {
                attributes.push((attribute.clone().into_boxed_str(), compiled));
            }
        }
        Some(CompiledEvent {
            action: mapping.action.clone().map(String::into_boxed_str),
            platform: mapping.platform.clone().map(String::into_boxed_str),
            pass_through: mapping.pass_through.unwrap_or(true),
            rename,
            exclude: mapping.exclude.iter().flatten().map(|s| s.clone().into_boxed_str()).collect(),
            attributes,
        })
    }

    fn check_reserved(&mut self, context: &FileContext<'_>, pointer: &str, name: &str, what: &str) {
        if name.starts_with(RESERVED_PREFIX) {
            let at_key = what == "attribute" && !pointer.contains("/rename/");
            let message =
                format!("the {what} name `{name}` begins with `{RESERVED_PREFIX}`, which MoEngage reserves");
            let hint = Some(format!(
                "MoEngage may drop events that use it: rename the {what} without the `moe_` prefix"
            ));
            let diagnostic = if at_key {
                context.key(pointer, DiagnosticKind::ReservedPrefix, message, hint)
            } else {
                context.value(pointer, DiagnosticKind::ReservedPrefix, message, hint)
            };
            self.diagnostics.push(diagnostic);
        }
    }

    fn source(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        source: &ValueSource,
    ) -> Option<CompiledSource> {
        let spec = match source {
            ValueSource::Path(text) => {
                return self.path(context, pointer, text).map(|path| CompiledSource {
                    origin: Origin::Path(path),
                    transform: None,
                    default: None,
                });
            }
            ValueSource::Spec(spec) => spec,
        };
        let SourceSpec { path, value, transform, default } = spec;
        let origin = match (path, value) {
            (Some(text), None) => Origin::Path(self.path(context, &format!("{pointer}/path"), text)?),
            (None, Some(constant)) => Origin::Constant(raw(constant)?),
            (Some(_), Some(_)) => {
                self.diagnostics.push(context.value(
                    pointer,
                    DiagnosticKind::Schema,
                    "a value source has both `path` and `value`".into(),
                    Some("keep `path` to read the event, or `value` for a constant; use `default` for a fallback".into()),
                ));
                return None;
            }
            (None, None) => {
                self.diagnostics.push(context.value(
                    pointer,
                    DiagnosticKind::Schema,
                    "a value source needs `path` or `value`".into(),
                    Some("e.g. `{path: $.traits.phone, transform: e164}` or `{value: web}`".into()),
                ));
                return None;
            }
        };
        Some(CompiledSource { origin, transform: *transform, default: default.as_ref().and_then(raw) })
    }

    fn path(&mut self, context: &FileContext<'_>, pointer: &str, text: &str) -> Option<FieldPath> {
        match path::compile(text) {
            Ok(path) => Some(path),
            Err(problem) => {
                self.diagnostics.push(context.value(
                    pointer,
                    DiagnosticKind::InvalidPath,
                    problem.message,
                    Some(problem.hint),
                ));
                None
            }
        }
    }

    fn finish(mut self, layers: Vec<Layer>) -> Result<Blueprint, Diagnostics> {
        let mut merged = Layer::default();
        for layer in layers {
            merged.platform = layer.platform.or(merged.platform);
            merged.customer_id = layer.customer_id.or(merged.customer_id);
            merged.user_identifiers.extend(layer.user_identifiers);
            merged.user_attributes.extend(layer.user_attributes);
            merged.events.extend(layer.events);
        }
        if merged.customer_id.is_none()
            && self.diagnostics.is_empty()
            && let Some(diagnostic) = self.missing_customer_id.take()
        {
            self.diagnostics.push(diagnostic);
        }
        if !self.diagnostics.is_empty() {
            let order: HashMap<&str, usize> =
                self.files.iter().enumerate().map(|(i, f)| (f.as_str(), i)).collect();
            self.diagnostics.sort_by(|a, b| {
                let file_a = order.get(a.file.as_str()).copied().unwrap_or(usize::MAX);
                let file_b = order.get(b.file.as_str()).copied().unwrap_or(usize::MAX);
                (file_a, a.position, a.kind).cmp(&(file_b, b.position, b.kind))
            });
            self.diagnostics
                .dedup_by(|a, b| a.file == b.file && a.position == b.position && a.message == b.message);
            return Err(Diagnostics(self.diagnostics));
        }
        let Some(customer_id) = merged.customer_id else {
            return Err(Diagnostics(Vec::new()));
        };
        let platform: Box<str> = merged.platform.unwrap_or_else(|| "web".into()).into_boxed_str();
        let mut events = merged.events;
        let catch_all = events.remove(CATCH_ALL);
        Ok(Blueprint {
            files: self.files,
            platform,
            customer_id,
            user_identifiers: merged
                .user_identifiers
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            user_attributes: merged
                .user_attributes
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            events: events.into_iter().map(|(k, v)| (k.into_boxed_str(), v)).collect(),
            catch_all,
        })
    }
}

/// When every branch of an `anyOf`/`oneOf` refused the value's type, the types they wanted.
fn only_type_errors(branches: &[Vec<ValidationError<'static>>], pointer: &str) -> Option<String> {
    let mut wanted = Vec::new();
    for errors in branches {
        for error in errors {
            if !matches!(error.kind(), ValidationErrorKind::Type { .. })
                || error.instance_path().as_str() != pointer
            {
                return None;
            }
            let description =
                schema().pointer(error.schema_path().as_str()).map(describe_types).unwrap_or_default();
            if !description.is_empty() && !wanted.contains(&description) {
                wanted.push(description);
            }
        }
    }
    (!wanted.is_empty()).then(|| wanted.join(" or "))
}

/// The branch of an `anyOf`/`oneOf` the author most likely meant: the one whose errors are not just
/// "wrong type" at the value itself.
fn likely_branch<'e>(
    branches: &'e [Vec<ValidationError<'static>>],
    pointer: &str,
) -> Option<&'e [ValidationError<'static>]> {
    let meant: Vec<&Vec<ValidationError<'static>>> = branches
        .iter()
        .filter(|errors| {
            !errors.iter().all(|e| {
                matches!(e.kind(), ValidationErrorKind::Type { .. }) && e.instance_path().as_str() == pointer
            })
        })
        .collect();
    match meant.as_slice() {
        [only] => Some(only.as_slice()),
        _ => None,
    }
}

fn raw(value: &Value) -> Option<Box<str>> {
    serde_json::to_string(value).ok().map(String::into_boxed_str)
}

/// Removes the values the schema refused, deepest first, so the rest can still be typed and checked.
/// `None` when the document as a whole is unusable.
fn prune(value: &mut Value, mut pointers: Vec<String>) -> Option<()> {
    pointers.sort_by(|a, b| b.cmp(a));
    pointers.dedup();
    for pointer in pointers {
        let cut = pointer.rfind('/')?;
        let (parent, segment) = (&pointer[..cut], unescape(&pointer[cut + 1..]));
        match value.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.remove(&segment);
            }
            Some(Value::Array(items)) => {
                if let Ok(index) = segment.parse::<usize>()
                    && index < items.len()
                {
                    items.remove(index);
                }
            }
            _ => {}
        }
    }
    Some(())
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

fn last_segment(pointer: &str) -> String {
    pointer.rsplit('/').next().map(unescape).unwrap_or_default()
}

fn name_of(field: &str) -> String {
    if field.is_empty() { "the blueprint".into() } else { format!("`{field}`") }
}

/// Lexically removes `.` and `a/..` so that `extends` targets are named as a person would.
fn normalise(path: &Path) -> String {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect::<PathBuf>().display().to_string()
}

fn pointer_parent(pointer: &str) -> &str {
    pointer.rfind('/').map_or("", |cut| &pointer[..cut])
}

/// How to name the object a schema location describes, for messages.
fn describe_schema(schema_pointer: &str) -> String {
    match schema_pointer.rsplit('/').next().unwrap_or_default() {
        "" => "the blueprint".into(),
        "IdentityMapping" => "`identity`".into(),
        "EventMapping" => "an event mapping".into(),
        "ValueSource" | "SourceSpec" => "a value source".into(),
        other => format!("`{other}`"),
    }
}

fn describe_types(types: &Value) -> String {
    let names: Vec<&str> = match types {
        Value::String(one) if one != "null" => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    let words: Vec<&str> = names
        .iter()
        .map(|name| match *name {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "text",
            "boolean" => "true or false",
            "integer" => "a whole number",
            "number" => "a number",
            _ => "a value",
        })
        .collect();
    words.join(" or ")
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn type_hint(field: &str, expected: &str) -> String {
    if expected == "text or a mapping" {
        return "a value is a path such as `$.properties.total`, or a mapping such as `{path: $.traits.phone, transform: e164}` or `{value: 12}`".into();
    }
    match field {
        "events" => "write each event as `Event Name: {action: ..., rename: {...}}`".into(),
        "rename" => "write renames as a mapping, e.g. `rename: {revenue: value}`".into(),
        "exclude" => "write exclusions as a list, e.g. `exclude: [internal_id]`".into(),
        "attributes" | "user_identifiers" => {
            "write attributes as a mapping of name to path, e.g. `url: $.context.page.url`".into()
        }
        "pass_through" => "write `pass_through: true` or `pass_through: false`".into(),
        _ => "see the blueprint reference in the README".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Transform;

    #[test]
    fn transform_names_match_the_schema() {
        let text = serde_json::to_string(schema()).expect("json");
        for name in Transform::NAMES {
            assert!(text.contains(&format!("\"{name}\"")), "{name} missing from schema");
        }
    }

    #[test]
    fn minimal_blueprint_compiles() {
        let blueprint =
            compile_str("inline.yaml", "identity:\n  customer_id: $.user_id\nevents:\n  Signed Up: {}\n")
                .expect("valid");
        assert_eq!(blueprint.event_names().collect::<Vec<_>>(), ["Signed Up"]);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = "identity:\n  customer_id: user_id\nevents:\n  Signed Up:\n    renames: {a: b}\n    action: moe_signup\n";
        let errors = compile_str("inline.yaml", text).expect_err("invalid");
        let codes: Vec<&str> = errors.iter().map(|d| d.kind.code()).collect();
        assert_eq!(codes, ["invalid_path", "unknown_key", "reserved_prefix"]);
    }
}
