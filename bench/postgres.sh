#!/usr/bin/env bash
# The PostgreSQL engine's benchmarks on a throwaway cluster (tests/postgres): durable ingest against
# SQLite's in the same run, then three nodes at a workspace limit of 6,000/min for 2 minutes.
#   bash bench/postgres.sh [INGEST_SECONDS] [NODES_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=$(mktemp -d)
trap 'bash tests/postgres stop "$cluster"; rm -rf "$cluster"' EXIT
SIGNAL_BENCH_POSTGRES=$(bash tests/postgres start "$cluster")
export SIGNAL_BENCH_POSTGRES
cargo bench --bench serve -- postgres "${1:-10}"
cargo bench --bench serve -- nodes "${2:-120}"
