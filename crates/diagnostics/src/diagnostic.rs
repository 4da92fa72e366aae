//! Compiler diagnostics: what is wrong, where (`FILE:LINE:COL`), and how to fix it.

use std::fmt;

use crate::yaml::Position;

/// The kinds of error the compiler reports. The code (`error[CODE]`) is stable: scripts and editors
/// may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiagnosticKind {
    /// The file could not be read.
    Io,
    /// A file was refused without being read: it resolves outside the folders the command may
    /// read, is not a regular file, or is too large.
    FileRefused,
    /// The text is not well-formed YAML.
    YamlSyntax,
    /// A key appears twice in one mapping.
    DuplicateKey,
    /// An event is mapped twice in one file.
    DuplicateEvent,
    /// A key that the blueprint language does not have.
    UnknownKey,
    /// A value of the wrong type or shape, or a required key missing.
    Schema,
    /// A `transform` the interpreter does not know.
    UnknownTransform,
    /// A field path that is not valid JSONPath, or that starts outside the Signal event.
    InvalidPath,
    /// An action or attribute name beginning with MoEngage's reserved `moe_` prefix.
    ReservedPrefix,
    /// No `customer_id` mapping in the blueprint or anything it extends.
    MissingCustomerId,
    /// `extends` names a file that cannot be read.
    ExtendsNotFound,
    /// `extends` leads back to a file already being extended.
    ExtendsCycle,
    /// Configuration: `${NAME}` names an environment variable that is not set.
    EnvVarMissing,
    /// Configuration: a name that refers to nothing, such as a pipeline's unknown source.
    UnknownName,
    /// Configuration: a value of the right type that cannot be used, such as a data center that
    /// does not exist or an address that does not parse.
    InvalidValue,
    /// An action name holds a `.`, which MoEngage turns into a space (a warning).
    PeriodInName,
}

impl DiagnosticKind {
    /// Every kind, in documentation order.
    pub const ALL: [DiagnosticKind; 17] = [
        DiagnosticKind::Io,
        DiagnosticKind::FileRefused,
        DiagnosticKind::YamlSyntax,
        DiagnosticKind::DuplicateKey,
        DiagnosticKind::DuplicateEvent,
        DiagnosticKind::UnknownKey,
        DiagnosticKind::Schema,
        DiagnosticKind::UnknownTransform,
        DiagnosticKind::InvalidPath,
        DiagnosticKind::ReservedPrefix,
        DiagnosticKind::MissingCustomerId,
        DiagnosticKind::ExtendsNotFound,
        DiagnosticKind::ExtendsCycle,
        DiagnosticKind::EnvVarMissing,
        DiagnosticKind::UnknownName,
        DiagnosticKind::InvalidValue,
        DiagnosticKind::PeriodInName,
    ];

    /// The stable code printed in `error[CODE]`.
    pub fn code(self) -> &'static str {
        match self {
            DiagnosticKind::Io => "io",
            DiagnosticKind::FileRefused => "file_refused",
            DiagnosticKind::YamlSyntax => "yaml_syntax",
            DiagnosticKind::DuplicateKey => "duplicate_key",
            DiagnosticKind::DuplicateEvent => "duplicate_event",
            DiagnosticKind::UnknownKey => "unknown_key",
            DiagnosticKind::Schema => "schema",
            DiagnosticKind::UnknownTransform => "unknown_transform",
            DiagnosticKind::InvalidPath => "invalid_path",
            DiagnosticKind::ReservedPrefix => "reserved_prefix",
            DiagnosticKind::MissingCustomerId => "missing_customer_id",
            DiagnosticKind::ExtendsNotFound => "extends_not_found",
            DiagnosticKind::ExtendsCycle => "extends_cycle",
            DiagnosticKind::EnvVarMissing => "env_var_missing",
            DiagnosticKind::UnknownName => "unknown_name",
            DiagnosticKind::InvalidValue => "invalid_value",
            DiagnosticKind::PeriodInName => "period_in_name",
        }
    }

    /// What this kind of error is, in words that quote nothing of the file.
    pub fn summary(self) -> &'static str {
        match self {
            DiagnosticKind::Io => "the file cannot be read",
            DiagnosticKind::FileRefused => "a file was refused without being read",
            DiagnosticKind::YamlSyntax => "the text is not well-formed YAML here",
            DiagnosticKind::DuplicateKey => "a key appears twice in one mapping",
            DiagnosticKind::DuplicateEvent => "an event is mapped twice",
            DiagnosticKind::UnknownKey => "a key the file does not take",
            DiagnosticKind::Schema => "a value of the wrong type or shape",
            DiagnosticKind::UnknownTransform => "a transform that does not exist",
            DiagnosticKind::InvalidPath => "a field path that is not valid",
            DiagnosticKind::ReservedPrefix => "a name that begins with moe_",
            DiagnosticKind::MissingCustomerId => "no customer_id mapping",
            DiagnosticKind::ExtendsNotFound => "extends names a file that does not exist",
            DiagnosticKind::ExtendsCycle => "extends leads back to a file already being extended",
            DiagnosticKind::EnvVarMissing => "an environment variable that is not set",
            DiagnosticKind::UnknownName => "a name that refers to nothing",
            DiagnosticKind::InvalidValue => "a value that cannot be used",
            DiagnosticKind::PeriodInName => "an action name with a `.`",
        }
    }

    /// Whether it is a warning, which does not stop a file from being used, rather than an error.
    pub fn is_warning(self) -> bool {
        matches!(self, DiagnosticKind::PeriodInName)
    }
}

/// One error in a blueprint, with its place and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it (or as `extends` resolved it).
    pub file: String,
    /// Where in the file.
    pub position: Position,
    /// What kind of error.
    pub kind: DiagnosticKind,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// The source line, for the excerpt under the message.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// The first line: `FILE:LINE:COL: error[CODE]: message`.
    pub fn headline(&self) -> String {
        format!(
            "{}:{}:{}: {}[{}]: {}",
            printable_path(&self.file),
            self.position.line,
            self.position.column,
            if self.kind.is_warning() { "warning" } else { "error" },
            self.kind.code(),
            printable(&self.message)
        )
    }
}

/// A file's name as the start of a line: [`printable`], and a name beginning with `::` (a CI log's
/// command, such as `::error`) written as `./::…`, the same file.
pub fn printable_path(file: &str) -> std::borrow::Cow<'_, str> {
    match printable(file) {
        shown if shown.starts_with("::") => std::borrow::Cow::Owned(format!("./{shown}")),
        shown => shown,
    }
}

/// The most characters of a message or hint printed: a key or path quoted whole could be
/// megabytes long.
pub const MESSAGE_CHARS: usize = 300;

/// `text` on one line and at most [`MESSAGE_CHARS`] long: control characters (a newline, an
/// escape) are written as escapes, so that what a file holds cannot begin a line of its own in a
/// terminal or a CI log (`::error ...`), and a cut end is marked with `…`.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let fits = text.len() <= MESSAGE_CHARS;
    if fits && !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len().min(MESSAGE_CHARS + 8));
    for (count, c) in text.chars().enumerate() {
        if count == MESSAGE_CHARS {
            shown.push('…');
            break;
        }
        match c {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if c.is_control() => shown.extend(c.escape_unicode()),
            c => shown.push(c),
        }
    }
    std::borrow::Cow::Owned(shown)
}

impl Diagnostic {
    /// The same place, kind and hint, with none of the file's text: its message becomes the kind's
    /// summary and the excerpt goes. For logs and answers a key in the file could reach (a
    /// mistyped key written as `data_api_key=SECRET` is quoted by its usual message).
    pub fn without_text(mut self) -> Diagnostic {
        self.message = format!("{} (its text is not repeated here)", self.kind.summary());
        self.source_line = None;
        self
    }
}

impl fmt::Display for Diagnostic {
    /// The headline, then an excerpt of the line with the place underlined, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        if let Some(line) = &self.source_line {
            let number = self.position.line.to_string();
            let gutter = " ".repeat(number.len());
            let (line, column) = excerpt(line, self.position.column);
            let available = line.chars().count().saturating_sub(column - 1).max(1);
            let underline = "^".repeat(self.position.len.clamp(1, available));
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{number} | {line}")?;
            writeln!(f, "{gutter} | {}{underline}", " ".repeat(column - 1))?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  = hint: {}", printable(hint))?;
        }
        Ok(())
    }
}

/// The most characters of a line an excerpt quotes: enough to see a mistake in context, never a
/// whole minified file or a secret that happens to share the line.
pub const EXCERPT_CHARS: usize = 200;

/// At most [`EXCERPT_CHARS`] of `line` around the 1-based `column`, tabs as spaces, and the
/// column within what is quoted. Cut ends are marked with `…`.
fn excerpt(line: &str, column: usize) -> (String, usize) {
    // One character each, so that the underline stays under its place.
    let chars: Vec<char> = line
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect();
    if chars.len() <= EXCERPT_CHARS {
        return (chars.into_iter().collect(), column.max(1));
    }
    let at = column.max(1) - 1;
    let start = at.saturating_sub(EXCERPT_CHARS / 4).min(chars.len().saturating_sub(EXCERPT_CHARS));
    let end = (start + EXCERPT_CHARS).min(chars.len());
    let mut quoted = String::new();
    if start > 0 {
        quoted.push('…');
    }
    quoted.extend(&chars[start..end]);
    if end < chars.len() {
        quoted.push('…');
    }
    (quoted, at - start + 1 + usize::from(start > 0))
}

/// Every diagnostic of one compilation, in file and line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            write!(f, "{diagnostic}")?;
        }
        let count = self.0.len();
        write!(f, "{count} error{}", if count == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&word_lower, &candidate.to_lowercase()), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.chars().count() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_quoting_the_file_stays_on_one_short_line() {
        let diagnostic = Diagnostic {
            file: "a.yaml".into(),
            position: Position { line: 1, column: 1, len: 1 },
            kind: DiagnosticKind::UnknownKey,
            message: format!("unknown key `x\n::error file=ci.yml::pwned\u{1b}[2J{}` in a mapping", "k".repeat(1_000_000)),
            hint: Some("did you mean\n::warning::`y`?".into()),
            source_line: Some("x\u{1b}[2J: 1".into()),
        };
        let shown = diagnostic.to_string();
        assert!(shown.lines().all(|line| !line.starts_with("::")), "{shown}");
        assert!(shown.starts_with("a.yaml:1:1: error[unknown_key]: unknown key `x\\n::error file=ci.yml::pwned\\u{1b}[2Jkkk"), "{shown}");
        assert!(!shown.contains('\u{1b}'));
        assert!(shown.len() < 2 * (MESSAGE_CHARS + EXCERPT_CHARS), "{} bytes", shown.len());
        assert!(shown.lines().next().is_some_and(|headline| headline.ends_with('…')));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("renames", ["rename", "action"]), Some("rename"));
        assert_eq!(did_you_mean("trait", ["traits", "context"]), Some("traits"));
        assert_eq!(did_you_mean("zzz", ["rename", "action"]), None);
    }

    #[test]
    fn excerpt_underlines_the_place() {
        let diagnostic = Diagnostic {
            file: "a.yaml".into(),
            position: Position { line: 3, column: 5, len: 7 },
            kind: DiagnosticKind::UnknownKey,
            message: "unknown key `renames`".into(),
            hint: Some("did you mean `rename`?".into()),
            source_line: Some("    renames:".into()),
        };
        assert_eq!(
            diagnostic.to_string(),
            "a.yaml:3:5: error[unknown_key]: unknown key `renames`\n  |\n3 |     renames:\n  |     ^^^^^^^\n  = hint: did you mean `rename`?\n"
        );
    }

    #[test]
    fn a_long_line_is_quoted_only_around_the_place() {
        let line = format!("{}SECRET_AT_START x: 1 {}", "a".repeat(5_000), "b".repeat(5_000));
        let column = 5_000 + 17;
        let diagnostic = Diagnostic {
            file: "a.yaml".into(),
            position: Position { line: 1, column, len: 1 },
            kind: DiagnosticKind::UnknownKey,
            message: "unknown key `x`".into(),
            hint: None,
            source_line: Some(line),
        };
        let shown = diagnostic.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert!(shown.starts_with(&format!("a.yaml:1:{column}:")), "{shown}");
        assert!(lines[2].chars().count() <= EXCERPT_CHARS + 8, "{}", lines[2].len());
        let quoted = lines[2].trim_start_matches("1 | ");
        let caret = lines[3].find('^').expect("a caret") - "  | ".len();
        assert_eq!(quoted.chars().nth(caret), Some('x'), "{shown}");
    }
}
