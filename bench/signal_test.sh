#!/usr/bin/env bash
# `signal test` over N cases (default 1,000), each an Order Completed event with its expected body
# written by `--update`, against `signal map` of the same N events in the same run (the work of
# mapping alone): wall time of each, best of five, and their ratio.
# Usage: bash bench/signal_test.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-1000}
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp blueprints/moengage/base.yaml blueprints/moengage/retail.yaml "$work/"

python3 - "$cases" "$work" <<'PY'
import json, sys
count, work = int(sys.argv[1]), sys.argv[2]
events = [{"type": "track", "event": "Order Completed", "user_id": f"u_{n % 500}",
           "traits": {"email": f"user{n % 500}@example.com", "phone": "07700 900123"},
           "context": {"locale": "en-GB", "timezone": "Europe/London"}, "timestamp": "2026-11-01T10:00:00Z",
           "properties": {"order_id": f"ORD-{n}", "revenue": 89.99, "currency": "GBP",
                          "products": [{"sku": f"SKU-{n}", "price": 29.99, "quantity": 3}]}} for n in range(count)]
with open(f"{work}/events.ndjson", "w") as out:
    for event in events:
        out.write(json.dumps(event) + "\n")
with open(f"{work}/retail.tests.yaml", "w") as out:
    out.write("received_at: 2026-11-28T12:00:00Z\ncases:\n")
    for n, event in enumerate(events):
        out.write(f"  - name: order {n}\n    event: {json.dumps(event)}\n")
PY

target/release/signal test --update "$work/retail.tests.yaml" > /dev/null
best() {
  local best=999999
  for _ in 1 2 3 4 5; do
    local start end ms
    start=$(date +%s%N)
    "$@" > /dev/null
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    (( ms < best )) && best=$ms
  done
  echo "$best"
}
test_ms=$(best target/release/signal test "$work/retail.tests.yaml")
map_ms=$(best target/release/signal map --blueprint "$work/retail.yaml" --events "$work/events.ndjson" --received-at 2026-11-28T12:00:00Z)
echo "signal test, $cases cases (checked, mapped, compared): ${test_ms} ms (best of 5)"
echo "signal map, the same $cases events:                 ${map_ms} ms (best of 5)"
python3 -c "print(f'ratio test / map: {$test_ms / max($map_ms, 1):.1f}')"
