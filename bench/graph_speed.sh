#!/usr/bin/env bash
# Ring detection's speed figures in one run, on the same inputs (BENCHMARKS.md, "Ring detection"):
#   1. static peel (log weighting) on wiki-Vote and on a generated 2 M-edge bipartite graph (the
#      generator of bench/fraudar_compare.py), timed inside `argus rings` (parsing excluded);
#   2. incremental insertion on wiki-Vote, 90 % initial graph and 10 % stream, with the check against
#      a static re-peel (examples/incremental.rs);
#   3. the burst score on the DARPA stream (bench/burst.sh).
# About 2 minutes; needs python3 with numpy for the generated graph.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ARGUS_DATA_DIR:-../shared/data}/graphs
OUT=target/bench
mkdir -p "$OUT"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
cargo build --release -q -p argus_cli --bin argus
cargo build --release -q -p argus_graph --example incremental --example darpa
[ -f "$OUT/bipartite-2m.csv" ] || python3 - "$OUT/bipartite-2m.csv" <<'PY'
import sys, numpy as np
# 2,000,000 distinct edges between 200,000 rows and 100,000 long-tailed columns (as fraudar_compare.py).
rng = np.random.default_rng(1)
rows = rng.integers(0, 200_000, 3_000_000); cols = (rng.zipf(1.5, 3_000_000) * 7919 + rng.integers(0, 100_000, 3_000_000) // 50) % 100_000
keys = np.unique(rows.astype(np.int64) * 100_000 + cols)
keys = rng.permutation(keys)[:2_000_000]
np.savetxt(sys.argv[1], np.stack([keys // 100_000, keys % 100_000], axis=1), fmt="%d", delimiter=",")
PY
echo "== 1. static peel, log weighting (best of 3)"
for g in "$DATA/wiki-vote.txt" "$OUT/bipartite-2m.csv"; do
  for _ in 1 2 3; do ./target/release/argus rings --edges "$g" --weighting log; done | python3 -c "
import json, sys
runs = [json.loads(l) for l in sys.stdin]
best = max(runs, key=lambda r: r['edges_per_second'])
print(f\"  {sys.argv[1]:<40} {best['edges']:>9} edges  {best['seconds']:.3f} s  {best['edges_per_second'] / 1e6:.2f} M edges/s\")" "$(basename "$g")"
done
echo "== 2. incremental peeling on wiki-Vote (90 % initial, 10 % one edge at a time)"
./target/release/examples/incremental "$DATA/wiki-vote.txt" | sed 's/^/  /'
echo "== 3. burst score on DARPA"
bench/burst.sh | sed 's/^/  /'
