//! `signal test`: the mapping cases beside blueprints (`shop.tests.yaml` beside `shop.yaml`), run
//! through the same interpreter as `signal map`; `--update` writes the results of cases that have
//! no expectation, or no longer match, into their files for review.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use blueprint::diagnostic::printable;
use blueprint::files::FileAccess;
use cases::{CaseResult, Mark, Suite, Verdict};

/// Options of `signal test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Test files (`*.tests.yaml`), blueprints (their `NAME.tests.yaml` is run), or folders (every
    /// `*.tests.yaml` under them). Default: the current folder.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Write the result of each case that has no expectation, or no longer matches, into its file
    /// (the rest of the file is left as it is), and list what was written.
    #[arg(long)]
    update: bool,
    /// Read files that resolve outside the current folder and the paths given (a test file's
    /// `blueprint` and `events`, a blueprint's `extends`, symlinks). Off by default: a test file
    /// from a pull request must not make CI print a file such as `/proc/self/environ`.
    #[arg(long)]
    allow_outside: bool,
    /// `text` for people; `junit` (XML on standard output) for CI systems.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// How results are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Failures with their differences, and a count.
    Text,
    /// JUnit XML, one test case per case.
    Junit,
}

struct Colours {
    on: bool,
}

impl Colours {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on { format!("\u{1b}[{code}m{text}\u{1b}[0m") } else { text.to_owned() }
    }
}

pub fn run(args: &TestArgs) -> ExitCode {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
    let access = FileAccess::for_command_line(&paths, args.allow_outside);
    let files = match cases::discover(&paths, &access) {
        Ok(files) => files,
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    // Every test file and blueprint is checked before any case runs: a broken one is reported
    // first, all at once.
    let mut suites = Vec::new();
    let mut broken = false;
    for file in &files {
        match cases::load(file, &access) {
            Ok(suite) => match suite.compile() {
                Ok(compiled) => suites.push((suite, compiled)),
                Err(diagnostics) => {
                    eprintln!("{diagnostics}");
                    broken = true;
                }
            },
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                broken = true;
            }
        }
    }
    if broken {
        eprintln!("no case ran: fix the files above first");
        return ExitCode::FAILURE;
    }
    let colours = Colours { on: args.format == Format::Text && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() };
    let mut runs: Vec<(Suite, Vec<CaseResult>)> =
        suites.into_iter().map(|(suite, compiled)| { let results = suite.run(compiled); (suite, results) }).collect();

    let mut written = Vec::new();
    if args.update {
        for (suite, results) in &mut runs {
            let Some((text, cases)) = suite.updated(results) else { continue };
            // The rewritten file must read back as a test file; a case written in flow style
            // (`- {name: ..., event: ...}`) has no line of its own to write under.
            let base = std::path::Path::new(&suite.file).parent().unwrap_or(std::path::Path::new(""));
            if let Err(diagnostics) = cases::check(&suite.file, text.clone(), base, &access) {
                eprintln!(
                    "error: {} was not updated: written in, it would not read back ({}); write `expect:` under each case by hand, in block style",
                    printable(&suite.file),
                    diagnostics.iter().next().map_or_else(String::new, |first| first.headline())
                );
                return ExitCode::FAILURE;
            }
            if let Err(error) = std::fs::write(&suite.file, &text) {
                eprintln!("error: cannot write {}: {error}", printable(&suite.file));
                return ExitCode::FAILURE;
            }
            for case in cases {
                let kind = if matches!(case.verdict, Verdict::New(_)) { "new" } else { "changed" };
                written.push(format!(
                    "{}:{}:{}: {} ({kind})",
                    printable(&suite.file),
                    case.position.line,
                    case.position.column,
                    printable(&case.name)
                ));
            }
            // Written results pass: they are what came out.
            for result in results.iter_mut().filter(|result| result.can_update()) {
                result.verdict = Verdict::Passed;
            }
        }
    }

    let (mut passed, mut failed, mut new) = (0usize, 0usize, 0usize);
    for (_, results) in &runs {
        for result in results {
            match result.verdict {
                Verdict::Passed => passed += 1,
                Verdict::Failed(_) => failed += 1,
                Verdict::New(_) => {
                    failed += 1;
                    new += 1;
                }
            }
        }
    }
    match args.format {
        Format::Text => {
            let mut out = String::new();
            for (suite, results) in &runs {
                for result in results {
                    report(&mut out, suite, result, &colours);
                }
            }
            for line in &written {
                let _ = writeln!(out, "{} {line}", colours.paint("33", "written"));
            }
            if !written.is_empty() {
                let _ = writeln!(out, "review the changes (e.g. `git diff`) before committing them");
            }
            let new_note = if new > 0 { format!(" ({new} with no expectation: `signal test --update` writes them)") } else { String::new() };
            let _ = writeln!(out, "{passed} passed, {failed} failed{new_note}");
            print!("{out}");
        }
        Format::Junit => print!("{}", junit(&runs)),
    }
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn report(out: &mut String, suite: &Suite, result: &CaseResult, colours: &Colours) {
    let (label, lines) = match &result.verdict {
        Verdict::Passed => return,
        Verdict::Failed(lines) => (colours.paint("31;1", "FAIL"), lines),
        Verdict::New(lines) => (colours.paint("33;1", "NEW "), lines),
    };
    // A file's or a case's name is the file's text: on one short line, so that it cannot forge a
    // line of its own (a CI log's `::error`).
    let _ = writeln!(
        out,
        "{label} {}:{}:{}: {}",
        printable(&suite.file),
        result.position.line,
        result.position.column,
        printable(&result.name)
    );
    for line in lines {
        let text = match line.mark {
            Mark::Expected => colours.paint("31", &format!("  - {}", line.text)),
            Mark::Produced => colours.paint("32", &format!("  + {}", line.text)),
            Mark::Said => format!("    {}", line.text),
        };
        let _ = writeln!(out, "{text}");
    }
    if matches!(result.verdict, Verdict::Failed(_)) && !result.can_update() {
        let _ = writeln!(out, "    (a `contains` case is yours to edit: --update leaves it as it is)");
    }
}

fn xml(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            // XML 1.0 cannot hold other control characters, even as references: written as escapes.
            c if c.is_control() && c != '\n' && c != '\t' => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn junit(runs: &[(Suite, Vec<CaseResult>)]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"signal test\">\n");
    for (suite, results) in runs {
        let failures = results.iter().filter(|result| !matches!(result.verdict, Verdict::Passed)).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            xml(&printable(&suite.file)),
            results.len()
        );
        for result in results {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\"",
                xml(&printable(&suite.file)),
                xml(&printable(&result.name)),
                xml(&printable(&suite.file)),
                result.position.line
            );
            let lines = match &result.verdict {
                Verdict::Passed => {
                    out.push_str("/>\n");
                    continue;
                }
                Verdict::Failed(lines) => ("the result differs from the expectation", lines),
                Verdict::New(lines) => ("no expectation yet: run `signal test --update`", lines),
            };
            let detail: Vec<String> = lines
                .1
                .iter()
                .map(|line| match line.mark {
                    Mark::Expected => format!("- {}", line.text),
                    Mark::Produced => format!("+ {}", line.text),
                    Mark::Said => line.text.clone(),
                })
                .collect();
            let _ = write!(
                out,
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                xml(lines.0),
                xml(&detail.join("\n"))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
