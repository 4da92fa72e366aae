#!/usr/bin/env bash
# The instruction guard, run by tests/run: instructions per event of signal map's work on a fixed
# corpus (bench/guard/order-completed-1000.ndjson.gz, 1,000 events of bench/make_corpus.py), counted
# by valgrind in the test build that `cargo test` leaves (nothing compiled again), for each mapping in
# bench/guard/baselines. Exits 1 when one costs more than 5% over its baseline, naming it. Instruction
# counts do not move with the machine's load, so this cannot fail on a busy machine; raising a
# baseline is a commit that says why in BENCHMARKS.md ("The instruction guard").
# Usage: bash bench/guard.sh [MAP_CORPUS_BINARY]        (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/debug/examples/map_corpus}
limit_percent=5
if [ ! -x "$binary" ]; then
  echo "instruction guard: $binary is missing: run cargo test (or cargo build -p blueprint --example map_corpus) first" >&2
  exit 2
fi
source bench/callgrind.sh
corpus=$(mktemp)
trap 'rm -f "$corpus"' EXIT
gunzip -c bench/guard/order-completed-1000.ndjson.gz > "$corpus"
events=$(wc -l < "$corpus")
status=0
while read -r mode baseline _; do
  case "$mode" in ''|'#'*) continue ;; esac
  total=$(instructions "$binary" "$mode" "$corpus")
  if [ -z "$total" ]; then
    echo "instruction guard: valgrind could not count $mode (is valgrind installed?)" >&2
    exit 2
  fi
  per_event=$(( total / events ))
  verdict=$(awk -v now="$per_event" -v base="$baseline" -v limit="$limit_percent" -v mode="$mode" 'BEGIN {
    change = (now - base) * 100 / base
    line = sprintf("%s: %d instructions per event, baseline %d (%+.1f%%, limit +%d%%)", mode, now, base, change, limit)
    if (change > limit) { print "FAIL " line; exit }
    if (change < -2 * limit) { print "LOWER " line; exit }
    print "OK " line
  }')
  case "$verdict" in
    FAIL*)
      echo "instruction guard FAILED: ${verdict#FAIL } — the mapping got slower: make it cheaper, or raise the baseline in bench/guard/baselines in a commit that says why in BENCHMARKS.md" >&2
      status=1 ;;
    LOWER*) echo "instruction guard: ${verdict#LOWER } — cheaper than its baseline: lower it in bench/guard/baselines so the guard stays tight" ;;
    *) echo "instruction guard: ${verdict#OK }" ;;
  esac
done < bench/guard/baselines
exit "$status"
