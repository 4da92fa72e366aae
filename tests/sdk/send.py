"""Sends one user's calls to `signal serve` with an official Python SDK, as a backend would.

Usage: send.py segment|rudderstack COLLECTOR_URL WRITE_KEY USER_PREFIX

Each SDK sends, for users PREFIX-anon (before sign-up) and PREFIX-1: an identify with traits, a
track without traits, a page and a track of the anonymous user; prints a JSON line and waits for a
line on stdin; then sends an alias of the anonymous user and a group call, and prints a JSON line
with the calls that failed (the SDKs retry, then report through on_error).
"""

import json
import sys

sdk, collector, write_key, prefix = sys.argv[1:5]
failures = []


def on_error(error, items):
    failures.append(str(error))


if sdk == "segment":
    import segment.analytics as client

    client.write_key = write_key
    client.host = collector
else:
    import rudderstack.analytics as client

    client.write_key = write_key
    client.dataPlaneUrl = collector
client.on_error = on_error
client.max_retries = 3
client.sync_mode = False

user = f"{prefix}-1"
anonymous = f"{prefix}-anon"
client.identify(
    user,
    {"email": f"{prefix}@example.com", "phone": "+447700900123", "firstName": "Jane", "lastName": "Doe", "plan": "pro"},
)
client.track(user, "Product Viewed", {"product_id": "P-1", "price": 12.5})
client.page(user, "Docs", "Getting started", {"url": "https://shop.example/docs"})
client.track(anonymous, "Products Searched", {"query": "hats"})
client.flush()
# The merge waits until the anonymous user's event is delivered: a merge moves only what MoEngage
# already has.
print(json.dumps({"sdk": sdk, "sent": "calls before the alias"}), flush=True)
sys.stdin.readline()
client.alias(anonymous, user)
client.group(user, "org-7", {"name": "Acme"})
client.flush()
client.shutdown()
print(json.dumps({"sdk": sdk, "failures": failures}), flush=True)
