#!/usr/bin/env bash
# What applying MoEngage's data tracking policy costs: instructions per event (valgrind's callgrind,
# the same count on a busy or idle machine) of signal map over the Retail corpus, for this build and
# for a build of BASE (default: the commit before the policy came in), counted in the same run.
#   checks   a workspace with object data: values, names, arrays and attribute counts checked
#   flatten  a workspace without object data (the default): also the products flattened into arrays
# Usage: bash bench/keeps.sh [BASE]        (needs valgrind, python3 and git)
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=${1:-8e46465}
corpus=bench/corpus/order-completed.ndjson
[ -f "$corpus" ] || python3 bench/make_corpus.py
base_dir=$(mktemp -d)
trap 'git worktree remove --force "$base_dir" >/dev/null 2>&1 || true; rm -rf "$base_dir"' EXIT
git worktree add -q --detach "$base_dir" "$base_rev"
cargo build --release -q -p blueprint --example map_corpus
(cd "$base_dir" && CARGO_TARGET_DIR="$PWD/../$(basename "$base_dir")-target" cargo build --release -q -p blueprint --example map_corpus)
base_binary="$base_dir/../$(basename "$base_dir")-target/release/examples/map_corpus"
. bench/callgrind.sh
before=$(instructions "$base_binary" map "$corpus" "$base_dir/blueprints/moengage/retail.yaml")
checks=$(instructions target/release/examples/map_corpus map-objects "$corpus")
flatten=$(instructions target/release/examples/map_corpus map "$corpus")
rm -rf "$base_dir/../$(basename "$base_dir")-target"
python3 - "$(wc -l < "$corpus")" "$before" "$checks" "$flatten" "$base_rev" <<'PY'
import sys
events, before, checks, flatten = (int(x) for x in sys.argv[1:5])
print(f"before ({sys.argv[5]}), products passed as they are: {before / events:8.0f} instructions per event")
print(f"checks (object data on):                    {checks / events:8.0f}  ratio {checks / before:.3f}")
print(f"checks and flattening (object data off):    {flatten / events:8.0f}  ratio {flatten / before:.3f}")
PY
