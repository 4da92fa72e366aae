//! Maps an NDJSON corpus twice (a warm-up pass, then a measured pass), as `signal map` would, or does
//! the bare `serde_json::Value` round trip of the same corpus. `bench/instructions.sh` counts the
//! measured pass's instructions under valgrind, which, unlike time, does not vary with the machine's
//! load.
//!
//! `cargo run --release -p blueprint --example map_corpus -- (map|map-objects|map-remember|map-serve|baseline) CORPUS [BLUEPRINT]`
//!
//! `map` maps for a workspace without MoEngage's object data type (the default: objects are
//! flattened), `map-objects` for one with it (objects pass; only the limits are checked),
//! `map-remember` as `map` with each user's traits remembered, as `signal map` does; `map-serve`
//! as `map` plus what `signal serve`'s worker asks of each delivered event (whether it registers a
//! device, whether it is a login to merge).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use blueprint::{Mapper, PhoneRegion};

/// One event's work: a line in, its output appended to the sink.
type Work = dyn Fn(&str, &mut Vec<u8>);

#[inline(never)]
fn warm_up_pass(work: &Work, lines: &[&str]) -> usize {
    pass(work, lines)
}

/// Distinct from the warm-up (it times itself), so that the two are never folded into one function
/// and valgrind can count this one alone.
#[inline(never)]
fn measured_pass(work: &Work, lines: &[&str]) -> std::time::Duration {
    let started = std::time::Instant::now();
    std::hint::black_box(pass(work, lines));
    started.elapsed()
}

#[inline(never)]
fn pass(work: &Work, lines: &[&str]) -> usize {
    let mut sink = Vec::with_capacity(1 << 20);
    for line in lines {
        work(line, &mut sink);
        sink.push(b'\n');
        if sink.len() > 1 << 20 {
            sink.clear();
        }
    }
    sink.len()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: map_corpus (map|map-objects|map-remember|map-serve|baseline) CORPUS [BLUEPRINT]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(corpus) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot read {corpus}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let blueprint_path = args.get(3).map_or("blueprints/moengage/retail.yaml", String::as_str);
    let work: Box<Work> = match mode.as_str() {
        "baseline" => Box::new(|line, sink| {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                let _ = serde_json::to_writer(&mut *sink, &value);
            }
        }),
        "map" | "map-objects" | "map-remember" | "map-serve" => {
            let compiled = match blueprint::compile_file(Path::new(blueprint_path)) {
                Ok(compiled) => compiled,
                Err(diagnostics) => {
                    eprintln!("{diagnostics}");
                    return ExitCode::FAILURE;
                }
            };
            let mut mapper = Mapper::new(Arc::new(compiled))
                .with_default_region(PhoneRegion::parse("GB"))
                .with_object_data(mode == "map-objects");
            if mode == "map-remember" {
                mapper = mapper.with_memory(Arc::new(blueprint::RunMemory::default()));
            }
            mapper.warm_up();
            let serving = mode == "map-serve";
            // One receipt time for every event and every run, after the corpora's own times: the
            // instructions counted do not depend on the clock.
            let received_at: jiff::Timestamp = match "2026-12-01T00:00:00Z".parse() {
                Ok(time) => time,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            let body = std::cell::RefCell::new(Vec::new());
            let warnings = std::cell::RefCell::new(Vec::new());
            Box::new(move |line, sink| {
                let (mut body, mut warnings) = (body.borrow_mut(), warnings.borrow_mut());
                warnings.clear();
                let mut asks = blueprint::Asks::default();
                let asking = serving.then_some(&mut asks);
                match mapper.map_asking(line, received_at, &mut body, &mut warnings, asking) {
                    Ok(_) => {
                        sink.extend_from_slice(&body);
                        std::hint::black_box(&asks);
                    }
                    Err(drop) => sink.extend_from_slice(drop.to_json().as_bytes()),
                }
            })
        }
        other => {
            eprintln!("unknown mode {other}: use map, map-objects, map-remember, map-serve or baseline");
            return ExitCode::from(2);
        }
    };
    warm_up_pass(&*work, &lines);
    let elapsed = measured_pass(&*work, &lines);
    let micros = elapsed.as_secs_f64() * 1e6 / lines.len().max(1) as f64;
    println!("{mode}: {} events, {micros:.2} µs per event", lines.len());
    ExitCode::SUCCESS
}
