//! How far `signal send` has got: a bar on a terminal, a line every ten seconds anywhere else.

use std::io::{self, IsTerminal as _};
use std::time::Duration;

use tokio::time::Instant;

use super::report::{Report, thousands};

/// How far along, how fast, and how long to go: "1,200/5,000 events (24%), 490/s, ETA 8s".
pub(super) fn progress_line(settled: u64, total: Option<u64>, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { settled as f64 / seconds } else { 0.0 };
    match total {
        Some(total) => {
            let percent = settled.saturating_mul(100).checked_div(total).unwrap_or(100);
            let eta = if rate > 0.0 {
                let remaining = total.saturating_sub(settled) as f64 / rate;
                format!("ETA {}", short_duration(Duration::from_secs_f64(remaining.min(1e9))))
            } else {
                "ETA unknown".into()
            };
            format!(
                "{}/{} events ({percent}%), {}/s, {eta}",
                thousands(settled),
                thousands(total),
                thousands(rate.round() as u64)
            )
        }
        None => format!("{} events, {}/s", thousands(settled), thousands(rate.round() as u64)),
    }
}

/// `75 s` → `1m15s`.
pub(super) fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A bar on a terminal; on anything else (a log, CI) a plain line every ten seconds.
pub(super) struct Progress {
    pub(super) bar: Option<indicatif::ProgressBar>,
    pub(super) total: Option<u64>,
    pub(super) started: Instant,
    pub(super) last_line: Instant,
}

pub(super) const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub(super) fn new(total: Option<u64>) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if total.is_some() { "{bar:20} {msg}" } else { "{spinner} {msg}" };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        let now = Instant::now();
        Progress { bar, total, started: now, last_line: now }
    }

    pub(super) fn show(&mut self, report: &Report, in_flight: usize, sending: &sender::InProgress) {
        let elapsed = self.started.elapsed();
        let mut line = format!(
            "{}; {} delivered, {} failed, {} dropped, {in_flight} in flight",
            progress_line(report.settled(), self.total, elapsed),
            thousands(report.delivered),
            thousands(report.failed),
            thousands(report.dropped),
        );
        if sending.retrying > 0 {
            let why = sending.latest_failure.as_deref().unwrap_or("failing");
            line.push_str(&format!("; {} retrying: {why}", thousands(sending.retrying)));
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(report.settled());
                bar.set_message(line);
            }
            None if self.last_line.elapsed() >= PLAIN_PROGRESS_EVERY => {
                self.last_line = Instant::now();
                eprintln!("progress: {line}");
            }
            None => {}
        }
    }

    pub(super) fn finish(&self, _report: &Report) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_how_fast_and_how_long_to_go() {
        assert_eq!(
            progress_line(1_200, Some(5_000), Duration::from_secs(2)),
            "1,200/5,000 events (24%), 600/s, ETA 6s"
        );
        assert_eq!(
            progress_line(500, Some(60_500), Duration::from_secs(1)),
            "500/60,500 events (0%), 500/s, ETA 2m00s"
        );
        assert_eq!(progress_line(0, Some(10), Duration::ZERO), "0/10 events (0%), 0/s, ETA unknown");
        assert_eq!(progress_line(42, None, Duration::from_secs(2)), "42 events, 21/s");
        assert_eq!(short_duration(Duration::from_secs(7_500)), "2h05m");
    }
}
