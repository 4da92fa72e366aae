#!/usr/bin/env bash
# Instructions per event for signal map's work and for the bare serde_json::Value round trip, counted
# by valgrind (callgrind) over the second pass of the corpus: the same count on a busy or idle machine.
# With --node, also Segment's mapping-kit on Node.js: its steady state is the difference between a
# run of 3 rounds and a run of 1 round over the first 2,000 events (so start-up and JIT warm-up cancel
# out); this takes a few minutes under valgrind.
# Usage: bash bench/instructions.sh [--node]     (needs valgrind and python3; node and npm for --node)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=bench/corpus/order-completed.ndjson
[ -f "$corpus" ] || python3 bench/make_corpus.py
cargo build --release -q -p blueprint --example map_corpus
binary=target/release/examples/map_corpus
events=$(wc -l < "$corpus")
count() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='map_corpus::measured_pass' \
    --callgrind-out-file="$out" "$binary" "$@" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
  rm -f "$out"
}
baseline=$(count baseline "$corpus")
mapped=$(count map "$corpus")
node_per_event=0
if [ "${1:-}" = "--node" ]; then
  if [ ! -d bench/node-mapper/node_modules ]; then
    (cd bench/node-mapper && npm ci --no-audit --no-fund --silent)
  fi
  small=$(mktemp)
  head -n 2000 "$corpus" > "$small"
  node_total() {
    valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file=/dev/null \
      node bench/node-mapper/bench.cjs "$small" "$1" 2>&1 | awk '/refs:/ { gsub(",", "", $NF); print $NF }'
  }
  one=$(node_total 1)
  three=$(node_total 3)
  node_per_event=$(( (three - one) / (2 * 2000) ))
  rm -f "$small"
fi

python3 - "$events" "$baseline" "$mapped" "$node_per_event" <<'PY'
import sys
events, baseline, mapped, node = (int(x) for x in sys.argv[1:])
per = lambda total: total / events
print(f"serde_json Value round trip: {per(baseline):8.0f} instructions per event")
print(f"signal map (Retail):         {per(mapped):8.0f} instructions per event")
print(f"ratio map / round trip:      {mapped / baseline:8.2f}")
if node:
    print(f"Node.js mapping-kit:         {node:8.0f} instructions per event (steady state)")
    print(f"mapping-kit / signal map:    {node / per(mapped):8.1f} x")
PY
