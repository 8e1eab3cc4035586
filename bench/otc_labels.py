"""Precision of the first dense blocks on Bitcoin-OTC's real labels (REV2: -1 = fraudster, 1 = benign):
`argus rings` over the rater x ratee matrix; for each of the first K blocks, the share of fraudsters among
the block's labelled users (as raters or ratees), with plain and log weighting.
With time as a third mode (rater x ratee x period, `argus rings --time-column 4 --bucket B`, M-Zoom's greedy
peel), the same for periods of a day and of a week.
Usage: python3 bench/otc_labels.py [K]"""
import json, os, subprocess, sys
DATA = os.environ.get("ARGUS_DATA_DIR", "../shared/data") + "/graphs"
K = int(sys.argv[1]) if len(sys.argv) > 1 else 5
labels = {}
for line in open(f"{DATA}/bitcoin-otc-labels.csv"):
    t = line.strip().split(",")
    if len(t) >= 2 and t[1].lstrip("-").isdigit():
        labels[t[0]] = int(t[1])
print(f"labelled users: {sum(v == -1 for v in labels.values())} fraudsters, {sum(v == 1 for v in labels.values())} benign")
runs = [(w, ["--weighting", w]) for w in ["plain", "log"]] + [(f"time {b}", ["--time-column", "4", "--bucket", b]) for b in ["1d", "7d"]]
for w, args in runs:
    out = json.loads(subprocess.run(["./target/release/argus", "rings", "--edges", f"{DATA}/bitcoin-otc.csv", *args, "--blocks", str(K)],
                                    capture_output=True, text=True, check=True).stdout)
    for i, b in enumerate(out["blocks"]):
        users = set(b["rows"]) | set(b["cols"])
        lab = [labels[u] for u in users if u in labels]
        fraud = sum(1 for v in lab if v == -1)
        prec = fraud / len(lab) if lab else float("nan")
        shape = f"{len(b['rows'])} raters x {len(b['cols'])} ratees"
        if "periods" in b:
            shape += f" x {len(b['periods'])} periods, mass {b['mass']:.0f}"
        print(f"  {w:<8} block {i + 1}: {shape}, density {b['density']:.3f}; labelled users {len(lab)}, fraudsters {fraud}, precision {prec:.3f}")
