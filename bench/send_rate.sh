#!/usr/bin/env bash
# `signal send` at MoEngage's limit, end to end: a file of N Order Completed events (default 30,000,
# one minute's worth) sent by the release binary to a `signal sandbox` enforcing 30,000 events per
# minute. Prints send's summary (its rate), the sandbox's stats (any 429s) and send's CPU time.
# Usage: bash bench/send_rate.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-30000}
cargo build --release -q
work=$(mktemp -d)
trap 'kill "$sandbox" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$events" > "$work/events.ndjson" <<'PY'
import json, sys
for n in range(int(sys.argv[1])):
    print(json.dumps({"type": "track", "event": "Order Completed", "user_id": f"u_{n % 500}",
                      "traits": {"email": f"user{n % 500}@example.com", "phone": "07700 900123"},
                      "context": {"locale": "en-GB"},
                      "properties": {"order_id": f"ORD-{n}", "revenue": 89.99, "currency": "GBP"}}))
PY

target/release/signal sandbox --listen 127.0.0.1:0 --workspace WS1:bench-key > "$work/sandbox.out" &
sandbox=$!
for _ in $(seq 50); do grep -q listening "$work/sandbox.out" 2>/dev/null && break; sleep 0.1; done
base=$(head -1 "$work/sandbox.out" | awk '{print $NF}')

MOENGAGE_WORKSPACE_ID=WS1 MOENGAGE_DATA_API_KEY=bench-key /usr/bin/env time -f 'send CPU: %U s user, %S s system, %e s wall' \
  target/release/signal send --blueprint blueprints/moengage/retail.yaml --events "$work/events.ndjson" --endpoint "$base"
echo "sandbox stats: $(curl -s "$base/sandbox/stats")"
