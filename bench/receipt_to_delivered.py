#!/usr/bin/env python3
"""Receipt -> delivered latency: events sent one at a time, spaced; each event's time from receipt
to its recorded delivery (the Event Debugger's `received_at` and `finished_at`), as percentiles. On
SQLite, one node; on PostgreSQL, two nodes sharing one database, the second started once the first
holds the workspace's lease, and every event sent to the second: each must be delivered by the
other node. A local `signal sandbox` is MoEngage, answering at once.

Usage: python3 bench/receipt_to_delivered.py SIGNAL_BINARY sqlite|postgres [EVENTS] [SPACING_MS]
(postgres: starts a throwaway cluster with tests/postgres, as root or the cluster's owner)
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

KEY = "latency-data-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def post(url, key, body):
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    token = __import__("base64").b64encode(f"{key}:".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def millis(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def main():
    binary, engine = os.path.abspath(sys.argv[1]), sys.argv[2]
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    spacing = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)  # the cluster runs as another user
    processes = []
    cluster = None
    try:
        sandbox_port = free_port()
        processes.append(subprocess.Popen(
            [binary, "sandbox", "--listen", f"127.0.0.1:{sandbox_port}", "--workspace", f"WS1:{KEY}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if engine == "postgres":
            cluster = os.path.join(work, "cluster")
            os.mkdir(cluster)
            url = subprocess.check_output(["bash", "tests/postgres", "start", cluster], text=True).strip()
            storage = f"storage:\n  postgres:\n    url: {url}/postgres\n"
            nodes = 2
        else:
            storage = "storage:\n  sqlite: signal.db\n"
            nodes = 1
        config = os.path.join(work, "signal.yaml")
        with open(config, "w") as file:
            file.write(storage + "sources:\n  site:\n    write_key: lat-key\n"
                       "integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: " + KEY +
                       "\n    data_center: \"01\"\n    endpoint: http://127.0.0.1:" + str(sandbox_port) +
                       "\npipelines:\n  web:\n    source: site\n    integration: shop\n    preset: retail\n")
        collectors, admins = [], []
        for _ in range(nodes):
            collector, admin = free_port(), free_port()
            processes.append(subprocess.Popen(
                [binary, "serve", "--config", config, "--listen", f"127.0.0.1:{collector}",
                 "--admin-listen", f"127.0.0.1:{admin}"],
                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            collectors.append(f"http://127.0.0.1:{collector}")
            admins.append(f"http://127.0.0.1:{admin}")
            wait_for(f"http://127.0.0.1:{admin}/readyz")
            time.sleep(2)  # the first node holds the lease before the second starts
        for n in range(events):
            body = json.dumps({"type": "track", "event": "Signed Up", "user_id": f"u{n}", "message_id": f"lat-{n}"})
            post(f"{collectors[-1]}/v1/track", "lat-key", body)
            time.sleep(spacing / 1000)
        end = time.time() + 60
        while True:
            listed = get_json(f"{admins[0]}/api/events?limit=1000&state=delivered")["events"]
            if len(listed) >= events or time.time() > end:
                break
            time.sleep(0.5)
        latencies = []
        for summary in listed:
            detail = get_json(f"{admins[0]}/api/events/{summary['id']}")
            latencies.append(millis(detail["finished_at"]) - millis(detail["received_at"]))
        latencies.sort()
        pick = lambda share: latencies[min(len(latencies) - 1, int(share * len(latencies)))]
        print(f"{engine}, {nodes} node(s), {len(latencies)} of {events} delivered: "
              f"p50 {pick(0.50):.0f} ms, p90 {pick(0.90):.0f} ms, p99 {pick(0.99):.0f} ms, max {latencies[-1]:.0f} ms")
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if cluster:
            subprocess.run(["bash", "tests/postgres", "stop", cluster], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
