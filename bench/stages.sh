#!/usr/bin/env bash
# The scaling model of BENCHMARKS.md ("Where replay's time goes"): per-event costs of each stage of
# `argus replay`, from the summary's `stages` (wall-clock seconds per thread, kept by Engine::run), and
# what they predict for more cores.
#
#   bench/stages.sh          # handbook (gzipped CSV → CSV table) and bench40 (NDJSON), P = 1 and P = cores
#
# Builds nothing: uses target/release/argus and target/release/examples/gen_events
# (cargo build --release -p argus_cli -p argus_engine --examples).
# Model: the coordinating thread (read + decode, admit, conclude, deliver) is serial; the partitions
# divide their work by P. With enough cores for both, a batch pipeline runs at the pace of the slower
# side: events/s ≈ 1 / max(serial, partitions / P), plus the partition hop (the coordinating thread's
# wait). The figures are per-thread wall times: on 2 cores the threads share the CPUs, so the P = 1
# run (two busy threads on two cores) gives the cleanest per-stage costs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/bench
DATA=${ARGUS_DATA_DIR:-../shared/data}/fraud-handbook/transactions.csv.gz
mkdir -p "$OUT"
[ -x target/release/argus ] || { echo "build first: cargo build --release -p argus_cli" >&2; exit 1; }
[ -s "$OUT/bench40.ndjson" ] || ./target/release/examples/gen_events 1000000 42 > "$OUT/bench40.ndjson"
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), argus $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
run() { # name config input P extra…
  local name=$1 cfg=$2 input=$3 p=$4; shift 4
  ARGUS_PARTITIONS=$p ./target/release/argus replay -q --config "$cfg" --input "$input" --summary "$OUT/stages-$name-p$p.json" "$@" 2>/dev/null
}
for p in 1 "$(nproc)"; do
  [ -f "$DATA" ] && run handbook examples/handbook/argus.toml "$DATA" "$p" --out-csv "$OUT/stages-handbook.csv"
  run bench40 examples/bench40/argus.toml "$OUT/bench40.ndjson" "$p" --out-csv "$OUT/stages-bench40.csv"
done
python3 - "$OUT" "$(nproc)" <<'PY'
import json, os, sys
out, cores = sys.argv[1], int(sys.argv[2])
for name in ("handbook", "bench40"):
    for p in sorted({1, cores}):
        f = f"{out}/stages-{name}-p{p}.json"
        if not os.path.exists(f):
            continue
        d = json.load(open(f))
        s, n = d["stages"], d["stages"]["events"]
        us = lambda x: x / n * 1e6
        serial = s["decode"] + s["admit"] + s["conclude"] + s["deliver"]
        parts = s["partitions"]
        print(f"== {name}, P = {p}: {n:,} events in {d['seconds']:.2f} s ({n / d['seconds']:,.0f} events/s)")
        print(f"  coordinating thread, µs/event: read+decode {us(s['decode']):.2f}, admit {us(s['admit']):.2f}, "
              f"conclude {us(s['conclude']):.2f}, deliver (tables) {us(s['deliver']):.2f}, "
              f"waiting for partitions {us(s['wait']):.2f}  → serial {us(serial):.2f}")
        print(f"  partition threads, µs/event each: {', '.join(f'{us(x):.2f}' for x in parts)}  → all partitions {us(sum(parts)):.2f}")
        if p == 1:
            ser, par = us(serial), us(sum(parts))
            for c in (2, 16, 64):
                pp = max(1, c - 1)
                eps = 1e6 / max(ser, par / pp)
                print(f"  model, {c:2d} cores (P = {pp}): {eps:,.0f} events/s, bound by "
                      f"{'the serial thread' if ser >= par / pp else 'the partitions'}")
PY
