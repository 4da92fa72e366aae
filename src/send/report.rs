//! What `signal send` says at the end: each fate counted, with the first few lines it befell.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use delivery::{Fate, Settled};

/// How long a destination may stay silent — no answer at all while attempts fail — before
/// `signal send` stops instead of waiting out the retry window.
pub(super) const UNREACHABLE_AFTER: Duration = Duration::from_secs(20);

/// Why sending stopped before the end of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    Interrupted,
    /// Nothing has answered since sending began, and attempts keep failing: waiting out the retry
    /// window would only delay the same verdict.
    Unreachable {
        why: String,
    },
    /// MoEngage refused the credentials (401/403): the rest would only be refused too.
    Paused {
        code: String,
    },
}

/// How the summary names a fate that is not a delivery: `401 MissingAttributeError`,
/// `connection error, still failing when the retry window closed`.
pub(super) fn failure_name(fate: &Fate) -> String {
    let what = match fate.code.as_str() {
        "connection" => "connection error".to_owned(),
        "timeout" => "no answer within the timeout".to_owned(),
        // Refused by the size guard before any request.
        "413" if fate.status.is_none() => "not sent: over the size limit".to_owned(),
        code => match &fate.error_type {
            Some(kind) => format!("{code} {kind}"),
            None => code.to_owned(),
        },
    };
    let retried = if fate.gave_up { ", still failing when the retry window closed" } else { "" };
    format!("{what}{retried}")
}

/// Events with the same fate, and the first few of their line numbers.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) count: u64,
    pub(super) detail: Option<String>,
    pub(super) hint: Option<String>,
    pub(super) lines: Vec<u64>,
}

pub(super) const LINES_SHOWN: usize = 5;

impl Group {
    /// Counts line `number`, keeping the lowest few in order: events finish out of order.
    pub(super) fn add(&mut self, number: u64) {
        self.count += 1;
        let at = self.lines.partition_point(|&line| line < number);
        if at < LINES_SHOWN {
            self.lines.insert(at, number);
            self.lines.truncate(LINES_SHOWN);
        }
    }
}

/// The tally of a run, printed at the end.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) total: Option<u64>,
    /// (outcome order, outcome, what) → the events.
    pub(super) groups: BTreeMap<(u8, &'static str, String), Group>,
    pub(super) warnings: BTreeMap<&'static str, Group>,
    pub(super) delivered: u64,
    pub(super) failed: u64,
    pub(super) dropped: u64,
    /// Lines that are not events (`invalid_event`): the input needs fixing.
    pub(super) invalid: u64,
    pub(super) interrupted: u64,
    pub(super) not_sent: u64,
    pub(super) last_line: u64,
    pub(super) stopped: Option<Stop>,
    pub(super) elapsed: Duration,
}

impl Report {
    pub(super) fn new(total: Option<u64>) -> Self {
        Report {
            total,
            groups: BTreeMap::new(),
            warnings: BTreeMap::new(),
            delivered: 0,
            failed: 0,
            dropped: 0,
            invalid: 0,
            interrupted: 0,
            not_sent: 0,
            last_line: 0,
            stopped: None,
            elapsed: Duration::ZERO,
        }
    }

    pub(super) fn settled(&self) -> u64 {
        self.delivered + self.failed + self.dropped + self.interrupted
    }

    /// Records what became of the event on line `number`.
    pub(super) fn record(&mut self, fate: &Fate, number: u64) {
        let (order, outcome, what, detail) = match fate.state {
            Settled::Delivered => {
                self.delivered += 1;
                (0, "delivered", fate.code.clone(), None)
            }
            Settled::Failed | Settled::Paused => {
                self.failed += 1;
                (1, "failed", failure_name(fate), fate.said.clone())
            }
            Settled::Dropped => {
                self.dropped += 1;
                if fate.code == blueprint::DropCode::InvalidEvent.as_str() {
                    self.invalid += 1;
                }
                (2, "dropped", fate.code.clone(), fate.said.clone())
            }
        };
        let hint = match (fate.code.as_str(), &fate.hint) {
            ("timeout", Some(hint)) => Some(format!("{hint} Raise --timeout if it is only slow.")),
            (_, hint) => hint.clone(),
        };
        self.add(order, outcome, what, detail, hint, number);
    }

    /// Records an event that was in flight when sending was interrupted: it may have arrived.
    pub(super) fn record_interrupted(&mut self, number: u64) {
        self.interrupted += 1;
        let what = "in flight when interrupted; it may have arrived".to_owned();
        self.add(3, "interrupted", what, None, None, number);
    }

    pub(super) fn add(
        &mut self,
        order: u8,
        outcome: &'static str,
        what: String,
        detail: Option<String>,
        hint: Option<String>,
        number: u64,
    ) {
        self.last_line = self.last_line.max(number);
        self.groups
            .entry((order, outcome, what))
            .or_insert_with(|| Group { count: 0, detail, hint, lines: Vec::new() })
            .add(number);
    }

    pub(super) fn warn(&mut self, code: &'static str, message: &str, number: u64) {
        self.warnings
            .entry(code)
            .or_insert_with(|| Group {
                count: 0,
                detail: Some(message.to_owned()),
                hint: None,
                lines: Vec::new(),
            })
            .add(number);
    }

    pub(super) fn exit_code(&self) -> ExitCode {
        match self.stopped {
            Some(Stop::Interrupted) => ExitCode::from(130),
            _ if self.failed > 0 || self.not_sent > 0 || self.invalid > 0 || self.stopped.is_some() => {
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        }
    }

    pub(super) fn summary(&self, target: &str, unsent: Option<&Path>) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 { (self.delivered as f64 / seconds).round() as u64 } else { 0 };
        let _ = writeln!(
            out,
            "{} of {} events delivered to {target} in {seconds:.1} s ({}/s)",
            thousands(self.delivered),
            thousands(self.settled() + self.not_sent),
            thousands(rate),
        );
        let row = |out: &mut String, outcome: &str, what: &str, group: &Group| {
            let _ = writeln!(out, "  {outcome:<11} {:>9}  {what}", thousands(group.count));
            let indent = " ".repeat(25);
            if let Some(detail) = &group.detail {
                let _ = writeln!(out, "{indent}{detail}");
            }
            if let Some(hint) = &group.hint {
                let _ = writeln!(out, "{indent}likely cause: {hint}");
            }
            if outcome != "delivered" {
                let mut shown: Vec<String> = group.lines.iter().map(u64::to_string).collect();
                if group.count > group.lines.len() as u64 {
                    shown.push("…".into());
                }
                let _ = writeln!(
                    out,
                    "{indent}line{} {}",
                    if group.count == 1 { "" } else { "s" },
                    shown.join(", ")
                );
            }
        };
        for ((_, outcome, what), group) in &self.groups {
            row(&mut out, outcome, what, group);
        }
        if self.not_sent > 0 || (self.stopped.is_some() && self.total.is_none()) {
            let why = match &self.stopped {
                Some(Stop::Interrupted) => "interrupted (Ctrl-C) before these were sent".to_owned(),
                Some(Stop::Paused { code }) => format!(
                    "sending paused after MoEngage answered {code}: fix the Workspace ID or Data API key, then send these again"
                ),
                Some(Stop::Unreachable { why }) => format!(
                    "stopped: nothing answered in {} s ({why}); check --endpoint or the data center, then send these again",
                    UNREACHABLE_AFTER.as_secs()
                ),
                None => String::new(),
            };
            let _ = writeln!(out, "  {:<11} {:>9}  {why}", "not sent", thousands(self.not_sent));
            if self.total.is_none() {
                let _ = writeln!(
                    out,
                    "{}standard input was not read past line {}",
                    " ".repeat(25),
                    self.last_line
                );
            }
        }
        // Stopped with nothing left unread: the reason still belongs in the summary.
        if let Some(Stop::Unreachable { why }) = &self.stopped
            && self.not_sent == 0
        {
            let _ = writeln!(
                out,
                "  stopped: nothing answered in {} s ({why}); check --endpoint or the data center",
                UNREACHABLE_AFTER.as_secs()
            );
        }
        for (code, group) in &self.warnings {
            row(&mut out, "warning", code, group);
        }
        let undelivered = self.failed + self.interrupted + self.not_sent;
        if undelivered > 0 {
            match unsent {
                Some(path) => {
                    let _ = writeln!(
                        out,
                        "the {} events not delivered are in {}: fix the cause, then send that file with --events",
                        thousands(undelivered),
                        path.display()
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "add --unsent FILE to keep the events not delivered in a file you can send again"
                    );
                }
            }
        }
        out
    }
}

/// `1234567` → `1,234,567`.
pub(super) fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shows_its_lowest_lines_in_order() {
        let mut group = Group { count: 0, detail: None, hint: None, lines: Vec::new() };
        for line in [9, 3, 7, 1, 12, 5, 2] {
            group.add(line);
        }
        assert_eq!((group.count, group.lines.as_slice()), (7, &[1, 2, 3, 5, 7][..]));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
