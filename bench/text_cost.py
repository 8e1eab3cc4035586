"""The text stage's cost (P4.1): the same simulated world (with review text) replayed under
examples/simulator/text.toml (its [text] stage on: two near-duplicate declarations and 64 hashed
n-gram features) and under the same declarations without [text], three times each; medians of the
replay's own events per second, and the difference per review.

Usage: python3 bench/text_cost.py [seed] [days] [users]   (builds nothing: target/release/argus)"""
import json, os, statistics, subprocess, sys, tempfile

SEED, DAYS, USERS = (int(a) for a in (sys.argv[1:] + ["3", "28", "20000"][len(sys.argv) - 1:])[:3])
A = "./target/release/argus"
with tempfile.TemporaryDirectory() as d:
    ev = os.path.join(d, "w.ndjson")
    subprocess.run([A, "simulate", "--text", "--labels", "--seed", str(SEED), "--days", str(DAYS), "--users", str(USERS),
                    "--camouflage", "0.5", "-o", ev], check=True, capture_output=True)
    text = open("examples/simulator/text.toml").read()
    off = text[: text.index("[[text.")].replace('include = ["labels.toml"]',
                                                 f'include = ["{os.path.abspath("examples/simulator/labels.toml")}"]')
    off_path = os.path.join(d, "off.toml")
    open(off_path, "w").write(off)
    reviews = sum(1 for line in open(ev) if '"type":"review.create"' in line)
    events = sum(1 for _ in open(ev))
    res = {}
    for name, cfg in [("with [text]", "examples/simulator/text.toml"), ("without", off_path)]:
        secs = []
        for _ in range(3):
            s = os.path.join(d, "s.json")
            subprocess.run([A, "replay", "-q", "--config", cfg, "--input", ev, "--summary", s], check=True, capture_output=True)
            j = json.load(open(s))
            assert j["accepted"] > 0 and not j.get("refused"), j.get("refused")
            secs.append(j["accepted"] / j["events_per_sec"])
        res[name] = statistics.median(secs)
        print(f"{name}: median {res[name]:.3f} s for {events} events ({events / res[name]:,.0f} events/s), runs {[round(x, 3) for x in secs]}")
    delta = res["with [text]"] - res["without"]
    print(f"{reviews} reviews: {delta * 1e6 / reviews:.1f} µs more per review ({delta * 1e6 / events:.2f} µs per event on average)")
