#!/usr/bin/env bash
# What remembering traits costs the mapping: instructions per event (valgrind's callgrind, the same
# count on a busy or idle machine) of the Retail corpus mapped with and without a trait memory, by
# the same build in the same run. Users repeat as in the corpus (500 of them, each event with
# traits): every event looks up its user and compares its traits with the remembered ones.
# Usage: bash bench/traits.sh        (needs valgrind and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=bench/corpus/order-completed.ndjson
[ -f "$corpus" ] || python3 bench/make_corpus.py
cargo build --release -q -p blueprint --example map_corpus
. bench/callgrind.sh
without=$(instructions target/release/examples/map_corpus map "$corpus")
with=$(instructions target/release/examples/map_corpus map-remember "$corpus")
python3 - "$(wc -l < "$corpus")" "$without" "$with" <<'PY'
import sys
events, without, with_memory = (int(x) for x in sys.argv[1:4])
print(f"without remembered traits: {without / events:8.0f} instructions per event")
print(f"with remembered traits:    {with_memory / events:8.0f}  ratio {with_memory / without:.3f}")
PY
