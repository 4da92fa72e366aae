//! Counters and a latency histogram, written in Prometheus' text format for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the delivery latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    received: Labelled,
    duplicates: Labelled,
    invalid: Labelled,
    rejected: Labelled,
    dropped: Labelled,
    delivered: Labelled,
    failed: Labelled,
    retries: Labelled,
    paused: Labelled,
    warnings: Labelled,
    automatic_merges: Labelled,
    admin_shed: Labelled,
    latency: Histogram,
    queue_pending: AtomicU64,
    queue_claimed: AtomicU64,
    queue_paused: AtomicU64,
}

#[derive(Debug, Default)]
struct Labelled(Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>);

impl Labelled {
    fn add(&self, labels: Vec<(&'static str, String)>, count: u64) {
        let mut values = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *values.entry(labels).or_default() += count;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let values = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (labels, value) in values.iter() {
            let _ = writeln!(out, "{name}{} {value}", render_labels(labels));
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

fn render_labels(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// Admin connections closed to make room, or refused, when the admin listener was full: by
    /// reason (`evicted`: at rest the longest, closed for a newcomer; `refused`: every connection
    /// busy and the health reserve full).
    pub fn admin_shed(&self, reason: &'static str) {
        self.admin_shed.add(vec![("reason", reason.to_owned())], 1);
    }

    /// Events accepted from a source.
    pub fn received(&self, source: &str, count: u64) {
        self.received.add(vec![("source", source.to_owned())], count);
    }

    /// Events accepted but already seen (same `message_id` within the dedupe window).
    pub fn duplicates(&self, source: &str, count: u64) {
        self.duplicates.add(vec![("source", source.to_owned())], count);
    }

    /// Events of a batch refused one by one (listed in the answer's `rejected`), by source.
    pub fn invalid(&self, source: &str, count: u64) {
        if count > 0 {
            self.invalid.add(vec![("source", source.to_owned())], count);
        }
    }

    /// Requests refused, by the kind of path (`events`, `preflight`, `unknown`) and HTTP status.
    pub fn rejected(&self, path: &str, status: u16) {
        self.rejected.add(vec![("path", path.to_owned()), ("status", status.to_string())], 1);
    }

    /// `count` events dropped by a pipeline, with their code.
    pub fn dropped(&self, pipeline: &str, code: &str, count: u64) {
        if count > 0 {
            self.dropped.add(vec![("pipeline", pipeline.to_owned()), ("code", code.to_owned())], count);
        }
    }

    /// A warning about an event being sent: something changed or left out so that what is sent
    /// is what the destination keeps.
    pub fn warned(&self, pipeline: &str, code: &str) {
        self.warnings.add(vec![("pipeline", pipeline.to_owned()), ("code", code.to_owned())], 1);
    }

    /// A login's merge of the anonymous customer it was before, queued.
    pub fn automatic_merge(&self, pipeline: &str) {
        self.automatic_merges.add(vec![("pipeline", pipeline.to_owned())], 1);
    }

    /// An event delivered, `latency` after it was received.
    pub fn delivered(&self, pipeline: &str, latency: Duration) {
        self.delivered.add(vec![("pipeline", pipeline.to_owned())], 1);
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in self.latency.buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency.count.fetch_add(1, Ordering::Relaxed);
        self.latency
            .sum_micros
            .fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// An event failed, by status (`401`, `timeout`, `connection`, ...).
    pub fn failed(&self, pipeline: &str, status: &str) {
        self.failed.add(vec![("pipeline", pipeline.to_owned()), ("status", status.to_owned())], 1);
    }

    /// Attempts beyond the first.
    pub fn retries(&self, pipeline: &str, count: u64) {
        if count > 0 {
            self.retries.add(vec![("pipeline", pipeline.to_owned())], count);
        }
    }

    /// An event set aside because its integration is paused.
    pub fn paused(&self, integration: &str) {
        self.paused.add(vec![("integration", integration.to_owned())], 1);
    }

    /// The queue's depth.
    pub fn queue_depth(&self, depth: store::Depth) {
        self.queue_pending.store(depth.pending, Ordering::Relaxed);
        self.queue_claimed.store(depth.claimed, Ordering::Relaxed);
        self.queue_paused.store(depth.paused, Ordering::Relaxed);
    }

    /// Everything, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.received.write(&mut out, "signal_events_received_total", "Events accepted by the collector.");
        self.admin_shed.write(
            &mut out,
            "signal_admin_connections_shed_total",
            "Admin connections closed for a newcomer (evicted) or refused (refused) while the admin listener was full.",
        );
        self.duplicates.write(
            &mut out,
            "signal_events_duplicate_total",
            "Events accepted but not queued again (same message_id).",
        );
        self.invalid.write(
            &mut out,
            "signal_events_invalid_total",
            "Events of a batch refused one by one (the rest of the batch accepted).",
        );
        self.rejected.write(
            &mut out,
            "signal_requests_rejected_total",
            "Collector requests refused, by kind of path and HTTP status.",
        );
        self.dropped.write(
            &mut out,
            "signal_events_dropped_total",
            "Events not delivered on purpose, by drop code.",
        );
        self.delivered.write(&mut out, "signal_events_delivered_total", "Events their destination accepted.");
        self.failed.write(&mut out, "signal_events_failed_total", "Events that failed, by the last status.");
        self.retries.write(&mut out, "signal_delivery_retries_total", "Attempts beyond the first.");
        self.paused.write(
            &mut out,
            "signal_events_paused_total",
            "Events set aside while their integration is paused.",
        );
        self.warnings.write(
            &mut out,
            "signal_event_warnings_total",
            "Warnings on events sent, by code: a part cut to what the destination keeps, or left out.",
        );
        self.automatic_merges.write(
            &mut out,
            "signal_automatic_merges_total",
            "Anonymous customers merged into the user a login made them, queued, by pipeline.",
        );
        let _ = writeln!(
            out,
            "# HELP signal_queue_depth Events waiting, by state.\n# TYPE signal_queue_depth gauge"
        );
        for (state, value) in [
            ("pending", &self.queue_pending),
            ("claimed", &self.queue_claimed),
            ("paused", &self.queue_paused),
        ] {
            let _ =
                writeln!(out, "signal_queue_depth{{state=\"{state}\"}} {}", value.load(Ordering::Relaxed));
        }
        let name = "signal_delivery_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From receipt to the destination's answer, for delivered events.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.latency.buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Ordering::Relaxed));
        }
        let count = self.latency.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        out
    }
}
