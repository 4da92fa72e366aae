#!/usr/bin/env bash
# The mapping benchmark and its comparisons, in one run:
#   1. criterion: signal map's work (Retail preset; without the phone mapping; with every phone new
#      to the cache) against a bare serde_json::Value round trip of the same corpus;
#   2. five alternating rounds of signal map, Segment's mapping-kit on Node.js and the serde_json
#      round trip, each round's ratios computed from runs seconds apart, so that a busy shared machine
#      slows all three alike. The medians of the ratios are the figures to quote.
# Usage: bash bench/compare.sh        (needs python3, node and npm; the first run builds and installs)
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=bench/corpus/order-completed.ndjson
[ -f "$corpus" ] || python3 bench/make_corpus.py
if [ ! -d bench/node-mapper/node_modules ]; then
  (cd bench/node-mapper && npm ci --no-audit --no-fund --silent)
fi

cargo bench -p blueprint --bench map -- --noplot

cargo build --release -q -p blueprint --example map_corpus
rounds=()
for round in 1 2 3 4 5; do
  signal=$(target/release/examples/map_corpus map "$corpus")
  node=$(node bench/node-mapper/bench.cjs "$corpus" 3)
  baseline=$(target/release/examples/map_corpus baseline "$corpus")
  echo "round $round: $signal | $node | $baseline"
  rounds+=("$signal|$node|$baseline")
done

python3 - "$corpus" "${rounds[@]}" <<'PY'
import json, re, statistics, sys
corpus, rounds = sys.argv[1], sys.argv[2:]
events = sum(1 for _ in open(corpus))
def criterion(name):
    with open(f"target/criterion/order_completed_1_5kb/{name}/new/estimates.json") as f:
        return events / (json.load(f)["mean"]["point_estimate"] / 1e9)
baseline = criterion("serde_json_value_round_trip")
print(f"\ncriterion, {events} events of ~1.5 KB      events/s   time vs round trip")
for label, name in [
    ("serde_json Value round trip", "serde_json_value_round_trip"),
    ("signal map, Retail", "signal_map_retail"),
    ("signal map, Retail without phone mapping", "signal_map_retail_without_phone"),
    ("signal map, Retail, every phone uncached", "signal_map_retail_uncached_phones"),
]:
    rate = criterion(name)
    print(f"  {label:42} {rate:9.0f}   {baseline / rate:6.2f}")
signal_rates, node_rates, vs_node, vs_baseline = [], [], [], []
for line in rounds:
    signal_part, node_part, baseline_part = line.split("|")
    signal = 1e6 / float(re.search(r"([\d.]+) µs", signal_part).group(1))
    round_trip = 1e6 / float(re.search(r"([\d.]+) µs", baseline_part).group(1))
    node = float(re.search(r"median (\d+)", node_part).group(1))
    signal_rates.append(signal); node_rates.append(node)
    vs_node.append(signal / node); vs_baseline.append(round_trip / signal)
print(f"\nalternating rounds (median of {len(rounds)})")
print(f"  signal map, Retail:            {statistics.median(signal_rates):9.0f} events/s")
print(f"  Node.js mapping-kit:           {statistics.median(node_rates):9.0f} events/s")
print(f"  signal map / mapping-kit:      {statistics.median(vs_node):9.1f} x   (rounds: {', '.join(f'{r:.1f}' for r in vs_node)})")
print(f"  signal map time / round trip:  {statistics.median(vs_baseline):9.2f}     (rounds: {', '.join(f'{r:.2f}' for r in vs_baseline)})")
PY
