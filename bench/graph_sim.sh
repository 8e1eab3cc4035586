#!/usr/bin/env bash
# The entity graph on the simulated marketplace (BENCHMARKS.md, "Ring detection on the simulator"): the
# catch report of the starter pack alone, then with `[graph]` (examples/simulator/graph.toml) and the
# graph rules (examples/simulator/graph-policies) on top, on the default world (seed 1, 20,000 users,
# 30 days) and with camouflage 0.8; then what the findings named. About 4 minutes on 2 cores.
#
#   bench/graph_sim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/bench
mkdir -p "$OUT"
git rev-parse --short HEAD 2>/dev/null || true
cargo build --release -q -p argus_cli --bin argus
A=./target/release/argus
run() { # name extra-args…
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$A" simulate --report --catch-json "$OUT/graph-$name.json" "$@" >"$OUT/graph-$name.txt" 2>/dev/null
  end=$(date +%s.%N)
  python3 -c "print(f'  {\"$name\":<22} {$end-$start:6.1f} s')"
}
echo "== runs (simulate + replay in one process)"
for camo in default 0.8; do
  c=(); [ "$camo" = default ] || c=(--camouflage "$camo")
  run "rules-$camo" "${c[@]}"
  run "graph-$camo" "${c[@]}" --config examples/simulator/graph.toml --policies policies --policies examples/simulator/graph-policies --findings "$OUT/graph-findings-$camo.ndjson"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for camo in ["default", "0.8"]:
    r = json.load(open(f"{out}/graph-rules-{camo}.json"))
    g = json.load(open(f"{out}/graph-graph-{camo}.json"))
    print(f"== camouflage {camo}: account recall, rules alone → with the graph")
    sr = {s["scenario"]: s for s in r["scenarios"]}
    for s in g["scenarios"]:
        a = sr.get(s["scenario"], {})
        pct = lambda x: "-" if x is None else f"{100*x:5.1f} %"
        print(f"  {s['scenario']:<18} {s['accounts']:>5} accounts  {pct(a.get('account_recall'))} → {pct(s['account_recall'])}")
    pf = lambda f: f"{100*f['rate']:.2f} % ({f['users_with_friction']} of {f['honest_users']})"
    print(f"  honest friction    {pf(r['friction'])} → {pf(g['friction'])}")
    f = g.get("findings")
    if f:
        print("  findings:")
        for d in f["detectors"]:
            print(f"    {d['detector']:<16} {d['findings']:>5} findings, {d['accounts']:>6} accounts named: {d['attack_accounts']:>5} attack, {d['honest_accounts']:>5} honest")
        named = ", ".join(f"{s} {c}/{n}" for s, n, c in f["scenarios"])
        print(f"    attack accounts named: {named}")
        print(f"    honest users named: {f['honest_in_findings']} of {f['honest_users']} ({100*f['honest_in_findings']/max(1,f['honest_users']):.2f} %)")
PY
