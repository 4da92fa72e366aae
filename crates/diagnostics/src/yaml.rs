//! YAML with positions: a document becomes a `serde_json::Value` plus an index from JSON Pointer to
//! the line and column of each key and value, so that schema errors (which speak in pointers) and
//! semantic errors can both be reported where the integrator typed the mistake.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// A position in a source file: 1-based line and 1-based column, both counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters (not bytes), so non-ASCII text before it counts once per char.
    pub column: usize,
    /// Length of the marked text in characters, at least 1 when something is marked.
    pub len: usize,
}

impl Position {
    fn from_span(span: Span) -> Self {
        let len = if span.end.line() == span.start.line() {
            span.end.col().saturating_sub(span.start.col())
        } else {
            1
        };
        Position { line: span.start.line(), column: span.start.col() + 1, len: len.max(1) }
    }
}

/// Where the parts of a document sit in the file.
#[derive(Debug, Default)]
pub struct SpanIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl SpanIndex {
    /// Position of the value at `pointer`, or of its nearest ancestor that has one.
    pub fn value(&self, pointer: &str) -> Position {
        let mut pointer = pointer;
        loop {
            if let Some(position) = self.values.get(pointer) {
                return *position;
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => return Position { line: 1, column: 1, len: 1 },
            }
        }
    }

    /// Position of the key that holds the value at `pointer`; the value's position for array items.
    pub fn key(&self, pointer: &str) -> Position {
        self.keys.get(pointer).copied().unwrap_or_else(|| self.value(pointer))
    }

    /// The last line on which a key or a value at or under `pointer` starts: where the text of
    /// that part of the document ends, for a tool that rewrites it (a block scalar's later lines
    /// are not counted).
    pub fn last_line_under(&self, pointer: &str) -> Option<usize> {
        let under = format!("{pointer}/");
        self.values
            .iter()
            .chain(self.keys.iter())
            .filter(|(at, _)| at.as_str() == pointer || at.starts_with(&under))
            .map(|(_, position)| position.line)
            .max()
    }
}

/// A problem found while reading YAML, before any schema is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlProblem {
    /// Where.
    pub position: Position,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// What kind of problem.
    pub kind: YamlProblemKind,
}

/// The kinds of problem the YAML layer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlProblemKind {
    /// The text is not well-formed YAML; nothing after this point could be read.
    Syntax,
    /// The same key appears twice in one mapping; the pointer names the mapping.
    DuplicateKey {
        /// The first occurrence of the key.
        first: Position,
    },
}

/// A parsed document.
#[derive(Debug)]
pub struct Document {
    /// The content, as JSON.
    pub value: Value,
    /// Positions of keys and values.
    pub spans: SpanIndex,
    /// Duplicate keys, each with the pointer of the mapping it appears in.
    pub duplicates: Vec<(String, YamlProblem)>,
}

/// The most nodes aliases may add to a document, so that an alias bomb is an error rather than an
/// out-of-memory. Nodes written out are not counted: the text's size bounds them (a test file with
/// tens of thousands of cases is fine).
const MAX_ALIAS_NODES: usize = 100_000;
/// The deepest nesting accepted; deeper documents are refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Escapes one JSON Pointer segment (RFC 6901).
pub fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Parses one YAML document. An empty file is an empty mapping's absence: `Value::Null`.
pub fn parse(text: &str) -> Result<Document, YamlProblem> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        alias_nodes: 0,
        spans: SpanIndex::default(),
        duplicates: Vec::new(),
        last_position: Position { line: 1, column: 1, len: 1 },
    };
    builder.document()
}

struct Builder<'input> {
    parser: Parser<'input, saphyr_parser::StrInput<'input>>,
    anchors: HashMap<usize, Value>,
    alias_nodes: usize,
    spans: SpanIndex,
    duplicates: Vec<(String, YamlProblem)>,
    last_position: Position,
}

impl<'input> Builder<'input> {
    fn next(&mut self) -> Result<(Event<'input>, Span), YamlProblem> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => {
                self.last_position = Position::from_span(span);
                Ok((event, span))
            }
            Some(Err(error)) => {
                let marker = error.marker();
                Err(syntax(Position { line: marker.line(), column: marker.col() + 1, len: 1 }, error.info()))
            }
            None => Err(syntax(self.last_position, "unexpected end of input")),
        }
    }

    fn document(&mut self) -> Result<Document, YamlProblem> {
        let mut value = Value::Null;
        let mut documents = 0;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(YamlProblem {
                            position: Position::from_span(span),
                            message: "a blueprint file holds one YAML document, found a second `---`".into(),
                            hint: Some("split the documents into separate files".into()),
                            kind: YamlProblemKind::Syntax,
                        });
                    }
                    let (event, span) = self.next()?;
                    value = self.node(event, span, String::new(), 0)?;
                }
                Event::StreamEnd => break,
                _ => return Err(syntax(Position::from_span(span), "unexpected content")),
            }
        }
        Ok(Document {
            value,
            spans: std::mem::take(&mut self.spans),
            duplicates: std::mem::take(&mut self.duplicates),
        })
    }

    fn node(
        &mut self,
        event: Event<'input>,
        span: Span,
        pointer: String,
        depth: usize,
    ) -> Result<Value, YamlProblem> {
        if depth > MAX_DEPTH {
            return Err(syntax(Position::from_span(span), "nesting deeper than 64 levels"));
        }
        let position = Position::from_span(span);
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let as_string =
                    style != ScalarStyle::Plain || tag.as_ref().is_some_and(|tag| tag.suffix == "str");
                let value = if as_string { Value::String(text.into_owned()) } else { resolve_plain(&text) };
                (value, anchor)
            }
            Event::Alias(anchor) => {
                let value = self.anchors.get(&anchor).cloned().ok_or_else(|| {
                    syntax(position, "alias refers to an anchor that is not defined before it")
                })?;
                self.alias_nodes += count_values(&value);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(YamlProblem {
                        position,
                        message: format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        hint: Some("each alias (`*name`) repeats its anchor's whole content: write the content out, or repeat less".into()),
                        kind: YamlProblemKind::Syntax,
                    });
                }
                self.spans.values.insert(pointer, position);
                return Ok(value);
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    let child = format!("{pointer}/{}", items.len());
                    items.push(self.node(event, span, child, depth + 1)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (self.mapping(&pointer, depth)?, anchor),
            _ => return Err(syntax(position, "unexpected YAML event")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        self.spans.values.insert(pointer, position);
        Ok(value)
    }

    fn mapping(&mut self, pointer: &str, depth: usize) -> Result<Value, YamlProblem> {
        let mut map = Map::new();
        let mut merged: Vec<Map<String, Value>> = Vec::new();
        let mut first_seen: HashMap<String, Position> = HashMap::new();
        loop {
            let (event, key_span) = self.next()?;
            if event == Event::MappingEnd {
                break;
            }
            let key_position = Position::from_span(key_span);
            let key = match event {
                Event::Scalar(text, _, _, _) => text.into_owned(),
                _ => {
                    return Err(YamlProblem {
                        position: key_position,
                        message: "mapping keys must be plain text, not lists or mappings".into(),
                        hint: Some("write the key as a single word or quoted string".into()),
                        kind: YamlProblemKind::Syntax,
                    });
                }
            };
            let child = format!("{pointer}/{}", escape_pointer_segment(&key));
            let (event, span) = self.next()?;
            let value = self.node(event, span, child.clone(), depth + 1)?;
            if key == "<<" {
                match value {
                    Value::Object(source) => merged.push(source),
                    Value::Array(sources) => {
                        merged.extend(sources.into_iter().filter_map(|item| match item {
                            Value::Object(source) => Some(source),
                            _ => None,
                        }))
                    }
                    _ => {
                        return Err(YamlProblem {
                            position: key_position,
                            message: "a merge key `<<` takes a mapping or a list of mappings".into(),
                            hint: Some("write `<<: *anchor` where the anchor names a mapping".into()),
                            kind: YamlProblemKind::Syntax,
                        });
                    }
                }
                continue;
            }
            if let Some(first) = first_seen.get(&key) {
                self.duplicates.push((
                    pointer.to_owned(),
                    YamlProblem {
                        position: key_position,
                        message: format!("`{key}` is defined twice in the same mapping"),
                        hint: Some(format!(
                            "the first definition is at line {}; keep one of them",
                            first.line
                        )),
                        kind: YamlProblemKind::DuplicateKey { first: *first },
                    },
                ));
                continue;
            }
            first_seen.insert(key.clone(), key_position);
            self.spans.keys.insert(child, key_position);
            map.insert(key, value);
        }
        // Explicit keys win over merged ones, and earlier merge sources over later ones (YAML merge).
        for source in merged {
            for (key, value) in source {
                map.entry(key).or_insert(value);
            }
        }
        Ok(Value::Object(map))
    }
}

fn count_values(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_values).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_values).sum::<usize>(),
        _ => 1,
    }
}

fn syntax(position: Position, info: &str) -> YamlProblem {
    YamlProblem {
        position,
        message: format!("invalid YAML: {info}"),
        hint: Some("check the indentation and quoting around this point".into()),
        kind: YamlProblemKind::Syntax,
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema. Booleans are only `true`/`false` (any case
/// form the spec lists), so a region code such as `NO` stays a string.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = resolve_int(text) {
        return Value::Number(number);
    }
    if looks_like_float(text)
        && let Ok(float) = text.parse::<f64>()
        && let Some(number) = Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

fn resolve_int(text: &str) -> Option<Number> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = text.strip_prefix("0o") {
        (octal, 8)
    } else {
        (text, 10)
    };
    let unsigned = digits.strip_prefix(['-', '+']).unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix != 10 && unsigned.len() != digits.len() {
        return None;
    }
    if let Ok(value) = i64::from_str_radix(digits, radix) {
        return Some(Number::from(value));
    }
    u64::from_str_radix(digits.trim_start_matches('+'), radix).ok().map(Number::from)
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut seen_exponent = false;
    let mut previous = ' ';
    for c in body.chars() {
        match c {
            '0'..='9' => seen_digit = true,
            '.' if !seen_dot && !seen_exponent => seen_dot = true,
            'e' | 'E' if seen_digit && !seen_exponent => seen_exponent = true,
            '+' | '-' if matches!(previous, 'e' | 'E') => {}
            _ => return false,
        }
        previous = c;
    }
    seen_digit && !matches!(previous, 'e' | 'E' | '+' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let document = parse("name: \"Café ☕\"\nnext: x\nüber: [1, ünïcode]\n").expect("valid");
        let position = document.spans.value("/über/1");
        assert_eq!((position.line, position.column), (3, 11));
        let key = document.spans.key("/next");
        assert_eq!((key.line, key.column, key.len), (2, 1, 4));
    }

    #[test]
    fn region_codes_and_yes_no_stay_strings() {
        let document = parse("a: NO\nb: yes\nc: off\nd: true\ne: 12\nf: 1.5\ng: ~\nh: '12'").expect("valid");
        assert_eq!(
            document.value,
            serde_json::json!({"a":"NO","b":"yes","c":"off","d":true,"e":12,"f":1.5,"g":null,"h":"12"})
        );
    }

    #[test]
    fn merge_keys_expand_and_explicit_keys_win() {
        let document = parse("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n").expect("valid");
        assert_eq!(document.value["child"], serde_json::json!({"x": 1, "y": 3}));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines() {
        let document = parse("a: 1\nb: 2\na: 3\n").expect("valid");
        assert_eq!(document.duplicates.len(), 1);
        let (pointer, problem) = &document.duplicates[0];
        assert_eq!(pointer, "");
        assert_eq!(problem.position.line, 3);
        assert_eq!(
            problem.kind,
            YamlProblemKind::DuplicateKey { first: Position { line: 1, column: 1, len: 1 } }
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 0..8 {
            let previous = if level == 0 { "a".to_owned() } else { format!("l{}", level - 1) };
            text.push_str(&format!("l{level}: &l{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"));
        }
        let problem = parse(&text).expect_err("bomb");
        assert!(problem.message.contains("aliases expand to more than 100000 nodes"), "{}", problem.message);
        assert!(!problem.hint.as_deref().unwrap_or_default().contains("indentation"));
    }

    #[test]
    fn a_long_document_written_out_is_not_an_alias_bomb() {
        let mut text = String::from("cases:\n");
        for case in 0..15_000 {
            text.push_str(&format!("  - name: case {case}\n    event: {{type: track, event: E, user_id: u{case}}}\n"));
        }
        let document = parse(&text).map_err(|problem| problem.message).expect("parses");
        assert_eq!(document.value["cases"].as_array().map(Vec::len), Some(15_000));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let problem = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert_eq!(problem.kind, YamlProblemKind::Syntax);
        assert!(problem.position.line >= 1);
    }
}
