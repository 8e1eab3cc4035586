#!/usr/bin/env bash
# Argus, Polars and DuckDB side by side on the handbook data: the same 15 features from the raw gzipped CSV
# to the feature table, each timed as a whole process (start-up, gunzip, CSV parse, features, CSV write).
#
#   bench/handbook_peers.sh              # 3 rounds (about 1 minute on 2 idle cores, plus the checks)
#   RUNS=5 bench/handbook_peers.sh
#
# Builds nothing: uses target/release/argus (cargo build --release -p argus_cli). Needs the Python packages
# of bench/requirements.txt (polars, duckdb; pandas for bench/compare_handbook.py).
# Rounds rotate the order of the four processes, so that drift in machine load touches all of them.
# Argus runs twice: with one feature partition (`argus-p1`: one partition thread beside the thread that
# decodes, admits and writes) and with one partition per core (`argus`, the default). Polars and DuckDB
# use every core (their default). Medians are reported, with the issue's targets beside them.
# Premise check: after the last round each peer's table must equal Argus's within 1e-9 in every feature
# (bench/compare_handbook.py), with the same feature columns and no missing values; otherwise it exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DATA=${ARGUS_DATA_DIR:-../shared/data}/fraud-handbook/transactions.csv.gz
OUT=target/bench
ARGUS=target/release/argus
CONFIG=examples/handbook/argus.toml
mkdir -p "$OUT"

die() { echo "FAILED: $*" >&2; exit 1; }
[ -f "$DATA" ] || die "$DATA not found"
[ -x "$ARGUS" ] || die "$ARGUS not found: cargo build --release -p argus_cli"
python3 -c "import polars, duckdb, pandas" 2>/dev/null || die "pip install -r bench/requirements.txt"

echo "== machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "argus $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' (uncommitted changes)'), $(python3 -c 'import sys, polars, duckdb; print(f"python {sys.version.split()[0]}, polars {polars.__version__}, duckdb {duckdb.__version__}")')"

declare -A CMD=(
  [argus]="env ARGUS_PARTITIONS=$(nproc) $ARGUS replay -q --config $CONFIG --input $DATA --out-csv $OUT/handbook-argus.csv"
  [argus-p1]="env ARGUS_PARTITIONS=1 $ARGUS replay -q --config $CONFIG --input $DATA --out-csv $OUT/handbook-argus-p1.csv"
  [polars]="python3 bench/handbook_polars.py --input $DATA --output $OUT/handbook-polars.csv"
  [duckdb]="python3 bench/handbook_duckdb.py --input $DATA --output $OUT/handbook-duckdb.csv"
)
TOOLS=(argus argus-p1 polars duckdb)
declare -A TIMES=()

echo "== $RUNS rounds, whole-process wall time (s); each writes its 1,754,155-row feature table"
for r in $(seq "$RUNS"); do
  line="  round $r:"
  for i in 0 1 2 3; do
    tool=${TOOLS[$(( (i + r - 1) % 4 ))]}
    start=$(date +%s.%N)
    ${CMD[$tool]} > "$OUT/peers-$tool.log" 2>&1 || { cat "$OUT/peers-$tool.log" >&2; die "$tool exited non-zero"; }
    end=$(date +%s.%N)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
    TIMES[$tool]+="$secs "
    line+="  $tool $secs"
  done
  echo "$line"
done

echo "== premise: every peer's table equals Argus's within 1e-9 per feature"
ok=1
for peer in polars duckdb; do
  echo "-- $peer vs argus"
  # Same feature columns, and no empty or NaN cell, before the numeric comparison (which skips NaN).
  python3 - "$OUT/handbook-argus.csv" "$OUT/handbook-$peer.csv" <<'PY' || ok=0
import sys
import polars as pl
a = pl.read_csv(sys.argv[1], infer_schema_length=None)
p = pl.read_csv(sys.argv[2], infer_schema_length=None)
fa = [c for c in a.columns if c not in ("event_id", "event_time", "event_type")]
fp = [c for c in p.columns if c != "transaction_id"]
bad = []
if sorted(fa) != sorted(fp):
    bad.append(f"feature columns differ: only in argus {sorted(set(fa) - set(fp))}, only in peer {sorted(set(fp) - set(fa))}")
if len(fa) != 15:
    bad.append(f"argus table has {len(fa)} feature columns, not 15")
for name, df, cols in (("argus", a, fa), ("peer", p, fp)):
    for c in cols:
        n = df[c].null_count() + (df[c].is_nan().sum() if df[c].dtype.is_float() else 0)
        if n:
            bad.append(f"{name} {c}: {n} missing/NaN values")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"{len(fp)} feature columns, same names, no missing values")
PY
  python3 bench/compare_handbook.py "$OUT/handbook-argus.csv" "$OUT/handbook-$peer.csv" || ok=0
done
[ "$ok" = 1 ] || die "a peer's feature table differs from Argus's (tables in $OUT/handbook-{argus,polars,duckdb}.csv)"
echo "tables match: polars and duckdb agree with argus within 1e-9 on all 15 features"

cmp -s "$OUT/handbook-argus.csv" "$OUT/handbook-argus-p1.csv" || die "argus with 1 and $(nproc) partitions wrote different tables"
echo "argus with 1 and $(nproc) partitions wrote byte-identical tables"

echo "== result: median of $RUNS whole-process wall times ($(nproc) cores)"
rows=$(( $(wc -l < "$OUT/handbook-argus.csv") - 1 ))
python3 - "$rows" "$(nproc)" "${TIMES[argus]}" "${TIMES[argus-p1]}" "${TIMES[polars]}" "${TIMES[duckdb]}" <<'PY'
import statistics, sys
rows, cores = int(sys.argv[1]), int(sys.argv[2])
names = ("argus", "argus-p1", "polars", "duckdb")
med = {k: statistics.median(float(x) for x in v.split()) for k, v in zip(names, sys.argv[3:])}
for k, v in zip(names, sys.argv[3:]):
    print(f"  {k:9s} {med[k]:7.2f} s  {rows / med[k]:10,.0f} events/s   (runs: {v.strip()})")
for peer in ("polars", "duckdb"):
    r = med["argus"] / med[peer]
    print(f"  wall time argus/{peer}: {r:.2f}  ({'Argus faster' if r < 1 else 'Argus slower'}: "
          f"{peer} takes {med[peer] / med['argus']:.2f}x Argus's time)")
def verdict(ok):
    return "met" if ok else "MISSED"
eps, eps1 = rows / med["argus"], rows / med["argus-p1"]
scale = med["argus-p1"] / med["argus"]
print("== P3.1 targets")
print(f"  argus wall time <= 1/3 of polars's: {med['argus'] / med['polars']:.2f} of it   {verdict(med['argus'] <= med['polars'] / 3)}")
print(f"  >= 1,000,000 events/s on {cores} cores: {eps:,.0f}   {verdict(eps >= 1e6)}")
print(f"  >= 600,000 events/s with P = 1: {eps1:,.0f}   {verdict(eps1 >= 6e5)}")
print(f"  scaling P = 1 -> {cores}: {scale:.2f}x (target >= 1.8x)   {verdict(scale >= 1.8)}")
PY
