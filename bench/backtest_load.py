#!/usr/bin/env python3
"""Posts an NDJSON file of events to `argus serve` in batches (POST /v1/events/batch, one keep-alive
connection) and checks the premise of bench/backtest.sh: every event accepted once, none refused.

    bench/backtest_load.py URL INGEST_KEY FILE [BATCH]
Prints `accepted N` on success."""
import http.client, json, sys, urllib.parse

url, key, path = sys.argv[1], sys.argv[2], sys.argv[3]
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
accepted = duplicates = rejected = 0
buf = []

def send():
    global accepted, duplicates, rejected
    body = "\n".join(buf).encode()
    conn.request("POST", "/v1/events/batch", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"batch refused: {r.status} {data[:300]!r}")
    v = json.loads(data)
    accepted += v["accepted"]
    duplicates += v["duplicates"]
    rejected += v["rejected"]
    buf.clear()

with open(path) as f:
    for line in f:
        buf.append(line.rstrip("\n"))
        if len(buf) >= batch:
            send()
if buf:
    send()
if duplicates or rejected:
    sys.exit(f"premise failed: {duplicates} duplicates and {rejected} refused of {accepted + duplicates + rejected} events")
print(f"accepted {accepted}")
