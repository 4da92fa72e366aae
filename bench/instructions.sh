#!/usr/bin/env bash
# Instructions per event for signal map's work and for the bare serde_json::Value round trip, counted
# by valgrind (callgrind) over the second pass of the corpus: the same count on a busy or idle machine.
# Usage: bash bench/instructions.sh     (needs valgrind and python3)
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
python3 - "$events" "$baseline" "$mapped" <<'PY'
import sys
events, baseline, mapped = (int(x) for x in sys.argv[1:])
per = lambda total: total / events
print(f"serde_json Value round trip: {per(baseline):8.0f} instructions per event")
print(f"signal map (Retail):         {per(mapped):8.0f} instructions per event")
print(f"ratio map / round trip:      {mapped / baseline:8.2f}")
PY
