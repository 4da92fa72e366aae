//! Checking a YAML document against a JSON Schema, with every error translated into a diagnostic
//! at its line and column: unknown keys with a "did you mean", wrong types in YAML's words, choices
//! listed. Blueprints and Signal's configuration share it; each brings its [`Vocabulary`].

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, DiagnosticKind, did_you_mean};
use crate::yaml::{Position, SpanIndex, escape_pointer_segment};

/// How a kind of document speaks of itself in messages.
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary {
    /// The document as a whole, e.g. "the blueprint".
    pub whole: &'static str,
    /// The hint when nothing more specific is known.
    pub reference: &'static str,
    /// How to name the object a schema location (`#/$defs/...`) describes, e.g. "an event mapping".
    pub place: fn(schema_pointer: &str) -> String,
    /// A hint for a value of the wrong type, by the value's pointer, the expected type in words and
    /// the value found.
    pub type_hint: fn(pointer: &str, expected: &str, found: &Value) -> Option<String>,
    /// The problem with text refused by a `pattern`: kind, message and hint.
    pub pattern: fn(text: &str) -> Option<(DiagnosticKind, String, String)>,
    /// Fields whose value is one of a fixed list: their diagnostic kind and what to call the value.
    pub choice: fn(field: &str) -> Option<(DiagnosticKind, &'static str)>,
}

/// A schema and the vocabulary to report its errors in.
#[derive(Debug, Clone, Copy)]
pub struct SchemaCheck<'a> {
    /// The JSON Schema the validator was built from.
    pub schema: &'a Value,
    /// How to word the errors.
    pub vocabulary: &'a Vocabulary,
}

/// The file being checked: its name, text and spans, so that a pointer becomes a diagnostic.
pub struct FileContext<'a> {
    /// The file's name, as shown.
    pub name: &'a str,
    /// Its text.
    pub text: &'a str,
    /// Where each value is.
    pub spans: &'a SpanIndex,
}

impl FileContext<'_> {
    /// A diagnostic at `position`.
    pub fn at(
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
    /// A diagnostic at the value `pointer` names.
    pub fn value(
        &self,
        pointer: &str,
        kind: DiagnosticKind,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        self.at(self.spans.value(pointer), kind, message, hint)
    }
    /// A diagnostic at the key of the value `pointer` names.
    pub fn key(
        &self,
        pointer: &str,
        kind: DiagnosticKind,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        self.at(self.spans.key(pointer), kind, message, hint)
    }
}

impl SchemaCheck<'_> {
    /// Translates one schema error into diagnostics; returns the pointers to prune before typing.
    ///
    /// A rule whose schema carries an `errorMessage` is there for editors, which cannot run the
    /// document's own checks: those checks report it, with a hint, so it is passed over here.
    pub fn translate(
        &self,
        context: &FileContext<'_>,
        error: &ValidationError<'_>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Vec<String> {
        let pointer = error.instance_path().as_str().to_owned();
        let field = &last_segment(&pointer);
        let schema_path = error.schema_path().as_str();
        if self.schema.pointer(pointer_parent(schema_path)).is_some_and(|rule| rule.get("errorMessage").is_some()) {
            return Vec::new();
        }
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = pointer_parent(schema_path);
                let allowed: Vec<&str> = self
                    .schema
                    .pointer(parent)
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|properties| properties.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let place = (self.vocabulary.place)(parent);
                let mut pruned = Vec::new();
                for key in unexpected {
                    let child = format!("{pointer}/{}", escape_pointer_segment(key));
                    let suggestion = did_you_mean(key, allowed.iter().copied())
                        .map(|close| format!("did you mean `{close}`? "))
                        .unwrap_or_default();
                    diagnostics.push(context.key(
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
                let expected = self
                    .schema
                    .pointer(schema_path)
                    .map(describe_types)
                    .unwrap_or_else(|| "another type".into());
                self.type_error(context, &pointer, &expected, error.instance(), diagnostics);
                vec![pointer]
            }
            ValidationErrorKind::Pattern { .. } => {
                let text = error.instance().as_str().unwrap_or_default();
                let (kind, message, hint) = (self.vocabulary.pattern)(text).unwrap_or_else(|| {
                    (
                        DiagnosticKind::Schema,
                        format!("`{text}` does not match the expected form"),
                        self.vocabulary.reference.to_owned(),
                    )
                });
                diagnostics.push(context.value(&pointer, kind, message, Some(hint)));
                vec![pointer]
            }
            ValidationErrorKind::Required { property } => {
                let property = property.as_str().unwrap_or_default();
                diagnostics.push(context.key(
                    &pointer,
                    DiagnosticKind::Schema,
                    format!("{} needs `{property}`", self.name_of(field)),
                    Some(format!("add `{property}:` to it; {}", self.vocabulary.reference)),
                ));
                vec![pointer]
            }
            ValidationErrorKind::MinLength { .. } => {
                diagnostics.push(context.value(
                    &pointer,
                    DiagnosticKind::Schema,
                    format!("{} must not be empty", self.name_of(field)),
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
                    let (kind, what) = match (self.vocabulary.choice)(field) {
                        Some((kind, what)) => (kind, what.to_owned()),
                        None => (DiagnosticKind::Schema, format!("value for {}", self.name_of(field))),
                    };
                    diagnostics.push(context.value(
                        &pointer,
                        kind,
                        format!("unknown {what} {shown}"),
                        Some(format!("{suggestion}use one of: {}", options.join(", "))),
                    ));
                    vec![pointer]
                } else if let Some(expected) = self.only_type_errors(branches, &pointer) {
                    self.type_error(context, &pointer, &expected, found, diagnostics);
                    vec![pointer]
                } else if let Some(branch) = likely_branch(branches, &pointer) {
                    // An optional field is `anyOf: [its type, null]`; report the real branch's errors.
                    branch.iter().flat_map(|inner| self.translate(context, inner, diagnostics)).collect()
                } else {
                    self.as_reported(context, pointer, field, error, diagnostics)
                }
            }
            _ => self.as_reported(context, pointer, field, error, diagnostics),
        }
    }

    fn type_error(
        &self,
        context: &FileContext<'_>,
        pointer: &str,
        expected: &str,
        found: &Value,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let field = &last_segment(pointer);
        diagnostics.push(
            context.value(
                pointer,
                DiagnosticKind::Schema,
                format!("{} must be {expected}, found {}", self.name_of(field), describe_value(found)),
                Some(
                    (self.vocabulary.type_hint)(pointer, expected, found)
                        .unwrap_or_else(|| self.vocabulary.reference.to_owned()),
                ),
            ),
        );
    }

    /// When every branch of an `anyOf`/`oneOf` refused the value's type, the types they wanted.
    fn only_type_errors(&self, branches: &[Vec<ValidationError<'static>>], pointer: &str) -> Option<String> {
        let mut wanted = Vec::new();
        for errors in branches {
            for error in errors {
                if !matches!(error.kind(), ValidationErrorKind::Type { .. })
                    || error.instance_path().as_str() != pointer
                {
                    return None;
                }
                let description =
                    self.schema.pointer(error.schema_path().as_str()).map(describe_types).unwrap_or_default();
                if !description.is_empty() && !wanted.contains(&description) {
                    wanted.push(description);
                }
            }
        }
        (!wanted.is_empty()).then(|| wanted.join(" or "))
    }

    /// The validator's own words, when nothing more specific can be said.
    fn as_reported(
        &self,
        context: &FileContext<'_>,
        pointer: String,
        field: &str,
        error: &ValidationError<'_>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Vec<String> {
        diagnostics.push(context.value(
            &pointer,
            DiagnosticKind::Schema,
            format!("{}: {error}", self.name_of(field)),
            Some(self.vocabulary.reference.into()),
        ));
        vec![pointer]
    }

    fn name_of(&self, field: &str) -> String {
        if field.is_empty() { self.vocabulary.whole.into() } else { format!("`{field}`") }
    }
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

/// Removes the values the schema refused, deepest first, so the rest can still be typed and checked.
/// `None` when the document as a whole is unusable.
pub fn prune(value: &mut Value, mut pointers: Vec<String>) -> Option<()> {
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

fn pointer_parent(pointer: &str) -> &str {
    pointer.rfind('/').map_or("", |cut| &pointer[..cut])
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
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.join(""),
    }
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
