//! `signal map`'s work — an NDJSON line in, a MoEngage request body out — against a bare
//! `serde_json::Value` parse and serialise of the same corpus, in the same run.
//!
//! The corpus comes from `bench/make_corpus.py` (run automatically when it is missing).
//! `cargo bench -p blueprint --bench map`; figures and ratios are in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use blueprint::{Mapper, PhoneRegion};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path: PathBuf = root.join("bench/corpus/order-completed.ndjson");
    if !path.is_file() {
        let status = std::process::Command::new("python3")
            .arg(root.join("bench/make_corpus.py"))
            .status()
            .expect("python3 runs bench/make_corpus.py");
        assert!(status.success(), "bench/make_corpus.py failed");
    }
    let text = std::fs::read_to_string(&path).expect("corpus readable");
    text.lines().map(str::to_owned).collect()
}

fn retail() -> Mapper {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage/retail.yaml");
    let mapper = Mapper::new(Arc::new(blueprint::compile_file(&path).expect("retail compiles")))
        .with_default_region(PhoneRegion::parse("GB"));
    mapper.warm_up();
    mapper
}

/// The retail preset without the phone mapping, to show what phone normalisation costs.
fn retail_without_phone() -> Mapper {
    let yaml = "identity:\n  customer_id: $.user_id\n  user_identifiers: {u_em: $.traits.email}\n  \
                attributes: {u_fn: $.traits.first_name, u_ln: $.traits.last_name}\n\
                events:\n  Order Completed: {rename: {revenue: value}}\n";
    Mapper::new(Arc::new(blueprint::compile_str("no-phone.yaml", yaml).expect("compiles")))
}

fn bench(c: &mut Criterion) {
    let lines = corpus();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut group = c.benchmark_group("order_completed_1_5kb");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(30);
    let mut sink: Vec<u8> = Vec::with_capacity(bytes * 2);

    group.bench_function("serde_json_value_round_trip", |b| {
        b.iter(|| {
            sink.clear();
            for line in &lines {
                let value: serde_json::Value = serde_json::from_str(line).expect("valid corpus");
                serde_json::to_writer(&mut sink, &value).expect("serialise");
                sink.push(b'\n');
            }
            sink.len()
        })
    });

    for (name, mapper) in
        [("signal_map_retail", retail()), ("signal_map_retail_without_phone", retail_without_phone())]
    {
        let mut body = Vec::with_capacity(4096);
        let mut warnings = Vec::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                sink.clear();
                for line in &lines {
                    warnings.clear();
                    let received_at = jiff::Timestamp::now();
                    match mapper.map_into(line, received_at, &mut body, &mut warnings) {
                        Ok(_) => sink.extend_from_slice(&body),
                        Err(drop) => sink.extend_from_slice(drop.to_json().as_bytes()),
                    }
                    sink.push(b'\n');
                }
                sink.len()
            })
        });
    }

    // Every line a phone the (fresh) cache has not seen: the worst case for normalisation.
    let unique_phones: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let start = line.find("\"phone\":\"").map_or(0, |at| at + 9);
            let end = line[start..].find('"').map_or(start, |len| start + len);
            format!("{}020 7{:03} {:04}{}", &line[..start], index / 10_000, index % 10_000, &line[end..])
        })
        .collect();
    group.bench_function("signal_map_retail_uncached_phones", |b| {
        b.iter_batched(
            retail,
            |mapper| {
                let mut body = Vec::with_capacity(4096);
                let mut warnings = Vec::new();
                let mut mapped = 0usize;
                for line in &unique_phones {
                    warnings.clear();
                    mapped += usize::from(
                        mapper.map_into(line, jiff::Timestamp::now(), &mut body, &mut warnings).is_ok(),
                    );
                }
                assert!(warnings.is_empty());
                mapped
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
