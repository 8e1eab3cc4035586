"""Orders through one cluster node, one every PACE ms for SECONDS, each answer timed: run by
bench/cluster.sh (SH_BUDGET) from the moment it kills a sharded node, to show what a client of a
checkpoint with a `[deadlines]` budget sees while the survivors rebuild the dead node's partitions.

    python3 bench/budget_probe.py URL PREFIX SECONDS PACE_MS > answers.json

Prints one JSON object: the ids sent and, per answer, its status, action and latency. Its premises
(checked by `budget_check.py` afterwards): every id is unique, and every answer is 200 with status
`accepted` or `degraded`.
"""
import datetime
import json
import sys
import time
import urllib.error
import urllib.request

url, prefix, seconds, pace = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) / 1000
answers = []
t_end = time.time() + seconds
i = 0
while time.time() < t_end:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    eid = f"{prefix}-{i}"
    body = json.dumps({"id": eid, "type": "order.create", "time": now, "actor": f"bp{i % 500}",
                       "data": {"order": f"bpo-{eid}", "seller": "s1", "item": "i1", "item_count": 1,
                                "amount": "20.00", "currency": "EUR", "card": "4000000000000002",
                                "device": f"bd{i % 300}", "ip": "81.2.3.5"}}).encode()
    t = time.time()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/events", body, {"Content-Type": "application/json"}), timeout=60) as r:
            code, v = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        code, v = e.code, json.loads(e.read() or b"null")
    took = time.time() - t
    d = (v or {}).get("decision") or {}
    answers.append({"id": eid, "code": code, "status": (v or {}).get("status"), "action": d.get("action"),
                    "pending": d.get("pending", False), "ms": round(took * 1000, 2)})
    i += 1
    time.sleep(max(0.0, pace - took))
json.dump({"answers": answers}, sys.stdout)
