"""Reads budget_probe.py's answers, checks its premises, and asks a node for each id's recorded
decision: prints what the client saw (latency percentiles, degraded answers) beside what the cluster
recorded (every order once, with its full decision).

    python3 bench/budget_check.py answers.json CHECK_URL BUDGET_MS
"""
import json
import statistics
import sys
import time
import urllib.error
import urllib.request

answers = json.load(open(sys.argv[1]))["answers"]
check, budget = sys.argv[2], float(sys.argv[3])
ids = [a["id"] for a in answers]
assert len(ids) == len(set(ids)), "the probe sent an id twice"
bad = [a for a in answers if a["code"] != 200 or a["status"] not in ("accepted", "degraded")]
assert not bad, f"answers that are neither accepted nor degraded: {bad[:5]}"
late = [a for a in answers if a["status"] == "degraded"]
assert all(a["pending"] for a in late), "a degraded answer that is not pending"


def recorded(eid):
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{check}/v1/decisions/{eid}", timeout=30) as r:
                return json.loads(r.read())["decision"]
        except urllib.error.HTTPError as e:
            if e.code not in (404, 503):
                raise
        time.sleep(0.1)
    sys.exit(f"{eid} was never recorded")


decisions = {a["id"]: recorded(a["id"]) for a in answers}
assert all(d is not None and "degraded" not in d for d in decisions.values()), "a recorded decision is degraded"
ms = sorted(a["ms"] for a in answers)
q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
differs = sum(1 for a in late if decisions[a["id"]]["action"] != a["action"])
print(f"budget {budget:.0f} ms: {len(answers)} orders through a survivor from the kill on; answered in "
      f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {ms[-1]:.1f} ms; {len(late)} degraded (pending), "
      f"{len(answers) - len(late)} decided in time; every one recorded with its full decision "
      f"afterwards ({differs} of the degraded answers' actions differ from the recorded one)")
