//! Field paths, parsed once when a blueprint is compiled. A plain member path (`$.traits.email`,
//! `$.properties.products[0]`) becomes a list of steps walked directly; only paths with wildcards,
//! slices, filters or descendants keep a `jsonpath-rust` query for the event.

use std::fmt;

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;

use crate::diagnostic::did_you_mean;

/// The top-level fields of a Signal event that a path may start from.
pub const EVENT_FIELDS: [&str; 11] = [
    "type",
    "event",
    "name",
    "message_id",
    "user_id",
    "anonymous_id",
    "timestamp",
    "properties",
    "traits",
    "context",
    "channel",
];

/// One step of a direct path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(Box<str>),
    /// An array element; negative counts from the end.
    Index(i64),
}

/// A compiled field path.
#[derive(Debug, Clone)]
pub enum FieldPath {
    /// Walked step by step over the event, without building anything.
    Direct {
        /// The top-level event field (one of [`EVENT_FIELDS`]).
        root: Box<str>,
        /// Steps below it.
        steps: Box<[Step]>,
        /// The path as written.
        text: Box<str>,
    },
    /// Evaluated by `jsonpath-rust` over the event; yields a list of the matches.
    Query {
        /// The parsed query.
        query: Box<JpQuery>,
        /// The path as written.
        text: Box<str>,
    },
}

impl FieldPath {
    /// The trait a path such as `$.traits.email` reads, when it reads one whole trait directly.
    pub fn trait_name(&self) -> Option<&str> {
        match self {
            FieldPath::Direct { root, steps, .. } if &**root == "traits" => match &steps[..] {
                [Step::Key(name)] => Some(name),
                _ => None,
            },
            _ => None,
        }
    }

    /// The path as the blueprint wrote it.
    pub fn text(&self) -> &str {
        match self {
            FieldPath::Direct { text, .. } | FieldPath::Query { text, .. } => text,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Parses and checks a path.
pub fn compile(text: &str) -> Result<FieldPath, PathError> {
    if !text.starts_with('$') {
        let first = text.split(['.', '[']).next().unwrap_or_default();
        let hint = if EVENT_FIELDS.contains(&first) {
            format!("write `$.{text}`, or `{{value: {text}}}` for a constant")
        } else {
            format!(
                "write `$.properties.{text}` for an event property, or `{{value: {text}}}` for a constant"
            )
        };
        return Err(PathError {
            message: format!("`{text}` is not a field path: paths start with `$`"),
            hint,
        });
    }
    let query = parse_json_path(text).map_err(|error| PathError {
        message: format!("`{text}` is not valid JSONPath: {}", explain_parse_error(&error.to_string())),
        hint: "write members as `$.properties.order_id`, names with spaces as `$.properties['order id']`, list items as `[0]` or `[*]`".into(),
    })?;
    let Some(first) = query.segments.first() else {
        return Err(PathError {
            message: "`$` alone names the whole event, not a field".into(),
            hint: "name a field, such as `$.properties.order_id` or `$.traits.email`".into(),
        });
    };
    if let Segment::Selector(Selector::Name(root)) = first
        && !EVENT_FIELDS.contains(&root.as_str())
    {
        let hint = match did_you_mean(root, EVENT_FIELDS) {
            Some(close) => format!("did you mean `{close}`? a Signal event has: {}", EVENT_FIELDS.join(", ")),
            None => format!("a Signal event has: {}", EVENT_FIELDS.join(", ")),
        };
        return Err(PathError {
            message: format!("`{text}` starts at `{root}`, which is not a field of a Signal event"),
            hint,
        });
    }
    let mut steps = Vec::with_capacity(query.segments.len());
    for segment in &query.segments {
        match segment {
            Segment::Selector(Selector::Name(name)) => steps.push(Step::Key(name.as_str().into())),
            Segment::Selector(Selector::Index(index)) => steps.push(Step::Index(*index)),
            _ => {
                return Ok(FieldPath::Query { query: Box::new(query), text: text.into() });
            }
        }
    }
    let Some(Step::Key(root)) = steps.first().cloned() else {
        return Ok(FieldPath::Query { query: Box::new(query), text: text.into() });
    };
    Ok(FieldPath::Direct { root, steps: steps.split_off(1).into_boxed_slice(), text: text.into() })
}

/// Turns the parser's multi-line report (`--> 1:14`, `= expected selector`) into one clause.
fn explain_parse_error(report: &str) -> String {
    let column = report
        .split("--> ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|line_col| line_col.split(':').nth(1))
        .map(str::to_owned);
    let expected = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("= expected "))
        .map(|rules| rules.replace('_', " ").replace("ALPHA", "a letter"));
    match (expected, column) {
        (Some(expected), Some(column)) => format!("expected {expected} at character {column}"),
        (None, Some(column)) => format!("unexpected text at character {column}"),
        (Some(expected), None) => format!("expected {expected}"),
        (None, None) => report.lines().next().unwrap_or(report).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_direct() {
        let path = compile("$.context.page['url']").expect("valid");
        let FieldPath::Direct { root, steps, .. } = path else { panic!("expected direct") };
        assert_eq!(&*root, "context");
        assert_eq!(&*steps, &[Step::Key("page".into()), Step::Key("url".into())]);
        let path = compile("$.properties.products[-1].sku").expect("valid");
        assert!(matches!(path, FieldPath::Direct { ref steps, .. } if steps[1] == Step::Index(-1)));
    }

    #[test]
    fn wildcards_and_filters_are_queries() {
        assert!(matches!(compile("$.properties.products[*].sku"), Ok(FieldPath::Query { .. })));
        assert!(matches!(compile("$.properties.products[?@.price > 10]"), Ok(FieldPath::Query { .. })));
        assert!(matches!(compile("$..email"), Ok(FieldPath::Query { .. })));
    }

    #[test]
    fn bad_paths_say_why() {
        let error = compile("$.properties[").expect_err("unclosed");
        assert_eq!(error.message, "`$.properties[` is not valid JSONPath: expected selector at character 14");
        let error = compile("$.trait.email").expect_err("unknown root");
        assert!(error.hint.contains("did you mean `traits`"), "{}", error.hint);
        assert!(compile("traits.email").expect_err("no $").message.contains("start with `$`"));
        assert!(compile("$").is_err());
        // The parser reads a member name up to the next `.` or `[`, spaces included.
        let parsed = compile("$.properties.order id").expect("lenient member name");
        assert!(
            matches!(parsed, FieldPath::Direct { ref steps, .. } if steps[..] == [Step::Key("order id".into())])
        );
    }
}
