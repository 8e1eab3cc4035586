#!/usr/bin/env bash
# Replay throughput and memory figures quoted in BENCHMARKS.md, with the pandas reference side by side.
#
#   bench/replay.sh            # everything (about 5 minutes on 2 cores; pandas alone takes ~70 s)
#   RUNS=5 bench/replay.sh     # more repetitions per figure (the median is reported)
#   SKIP_PANDAS=1 bench/replay.sh
#
# One core: every figure is a single-threaded process. Medians, because these machines are noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DATA=${ARGUS_DATA_DIR:-../shared/data}/fraud-handbook/transactions.csv.gz
OUT=target/bench
mkdir -p "$OUT"

echo "== machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
git rev-parse --short HEAD 2>/dev/null || true

echo "== build (release)"
cargo build --release -q -p argus_cli -p argus_engine --examples --bin argus

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
replay_eps() { # config input [extra args…] → events/s of each run, one per line
  local cfg=$1 input=$2; shift 2
  for _ in $(seq "$RUNS"); do
    ./target/release/argus replay -q --config "$cfg" --input "$input" --summary "$OUT/summary-$(basename "$cfg" .toml).json" "$@" 2>/dev/null
    python3 -c "import json;print(json.load(open('$OUT/summary-$(basename "$cfg" .toml).json'))['events_per_sec'])"
  done
}

if [ -f "$DATA" ]; then
  echo "== handbook: 1,754,155 transactions, 15 features, end to end (gunzip + CSV + validate + features)"
  zcat "$DATA" > "$OUT/transactions.csv"
  hb_gz=$(replay_eps examples/handbook/argus.toml "$DATA" | median)
  hb_csv=$(replay_eps examples/handbook/argus.toml "$OUT/transactions.csv" | median)
  hb_table=$(replay_eps examples/handbook/argus.toml "$OUT/transactions.csv" --out-csv "$OUT/handbook-argus.csv" | median)
  hb_bucket=$(replay_eps examples/handbook/argus-bucketed.toml "$OUT/transactions.csv" | median)
  printf '  %-58s %12.0f events/s\n' "argus replay, .csv.gz input, no table" "$hb_gz" \
    "argus replay, .csv input, no table" "$hb_csv" \
    "argus replay, .csv input, writing the CSV feature table" "$hb_table" \
    "argus replay, .csv input, bucketed windows" "$hb_bucket"
  python3 - "$OUT/summary-argus.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for e in d["state"]["entities"]:
    print(f"  state (exact windows, end of input): key {e['key']}: {e['keys']} keys, {e['bytes']/e['keys']:.0f} B/key, {e['series']} series, {e['features']} features")
PY
  if [ -z "${SKIP_PANDAS:-}" ] && python3 -c "import pandas" 2>/dev/null; then
    echo "== pandas reference (bench/handbook_pandas.py: groupby + time-based rolling, the handbook's way)"
    python3 bench/handbook_pandas.py --output "$OUT/handbook-pandas.csv" | tee "$OUT/pandas.json"
    pd_eps=$(python3 -c "import json;print(json.load(open('$OUT/pandas.json'))['events_per_sec'])")
    printf '  %-58s %12.0f events/s\n' "pandas, feature computation only (no I/O)" "$pd_eps"
    python3 -c "print(f'  argus (.csv.gz, end to end) / pandas (compute only): {$hb_gz/$pd_eps:.1f}x')"
    echo "== agreement of the two tables"
    python3 bench/compare_handbook.py "$OUT/handbook-argus.csv" "$OUT/handbook-pandas.csv"
  else
    echo "(pandas not installed or SKIP_PANDAS set: pip install -r bench/requirements.txt)"
  fi
else
  echo "SKIPPED handbook figures: $DATA not found"
fi

echo "== 40 features over 6 entity kinds, 1,000,000 generated events, end to end (NDJSON parse + validate + pseudonymize + features)"
./target/release/examples/gen_events 1000000 42 > "$OUT/bench40.ndjson"
b40=$(replay_eps examples/bench40/argus.toml "$OUT/bench40.ndjson" | median)
printf '  %-58s %12.0f events/s\n' "argus replay, bench40" "$b40"

echo "== memory per key (examples/memory.rs)"
./target/release/examples/memory

echo "== engine only, events decoded beforehand (divan; cargo bench -p argus_engine)"
cargo bench -q -p argus_engine --bench replay 2>/dev/null | grep -E "replay|─|Kitem"
