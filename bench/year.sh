#!/usr/bin/env bash
# Replay cost must not grow with time span × live keys (P3.1): the same 2,000,000 payments by 400,000
# users spread over a year and over a month, replayed by the same binary. Lifetime features keep the
# users' keys live for idle_ttl (90 days, set in its configuration), so the year carries hundreds of thousands of live keys.
# Before P3.1 an expiry sweep visited every live key once per day of event time (365 sweeps against 30).
#
#   bench/year.sh            # 3 alternating rounds (about 2 minutes on 2 cores, plus generation)
#   RUNS=5 bench/year.sh
#
# Builds nothing: uses target/release/argus (cargo build --release -p argus_cli). Needs numpy.
# Premise checks: all 2,000,000 rows accepted in both runs, and both end with at least 250,000 live user
# keys (the premise "many live keys").
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=target/bench
ARGUS=target/release/argus
CONFIG=bench/year/argus.toml
mkdir -p "$OUT"
die() { echo "FAILED: $*" >&2; exit 1; }
[ -x "$ARGUS" ] || die "$ARGUS not found: cargo build --release -p argus_cli"

echo "== machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "argus $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "== input"
[ -f "$OUT/year.csv" ] || python3 bench/gen_year.py --days 365 --out "$OUT/year.csv"
[ -f "$OUT/month.csv" ] || python3 bench/gen_year.py --days 30 --out "$OUT/month.csv"

declare -A TIMES=()
echo "== $RUNS rounds, whole-process wall time (s), features to a CSV table"
for r in $(seq "$RUNS"); do
  line="  round $r:"
  for span in $([ $((r % 2)) = 1 ] && echo "year month" || echo "month year"); do
    start=$(date +%s.%N)
    "$ARGUS" replay -q --config "$CONFIG" --input "$OUT/$span.csv" --out-csv "$OUT/$span-features.csv" \
      --summary "$OUT/$span-summary.json" 2> "$OUT/$span.log" || { cat "$OUT/$span.log" >&2; die "$span replay failed"; }
    end=$(date +%s.%N)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
    TIMES[$span]+="$secs "
    line+="  $span $secs"
  done
  echo "$line"
done

python3 - "$OUT" "${TIMES[year]}" "${TIMES[month]}" <<'PY'
import json, statistics, sys
out = sys.argv[1]
med = {}
for span, runs in zip(("year", "month"), sys.argv[2:]):
    s = json.load(open(f"{out}/{span}-summary.json"))
    users = next(e["keys"] for e in s["state"]["entities"] if e["key"] == ["actor"])
    if s["accepted"] != s["records"] or s["records"] != 2_000_000:
        sys.exit(f"FAILED: {span}: {s['accepted']} of {s['records']} accepted")
    if users < 250_000:
        sys.exit(f"FAILED: {span}: only {users} live user keys at the end")
    med[span] = statistics.median(float(x) for x in runs.split())
    print(f"  {span:5s} {med[span]:6.2f} s  {s['records'] / med[span]:10,.0f} events/s  "
          f"live keys at the end: {s['state']['keys']:,} ({users:,} users), "
          f"keys expired: {s['state']['stats']['keys_expired']:,}   (runs: {runs.strip()})")
r = med["year"] / med["month"]
print(f"== year / month wall time: {r:.2f} (target: within 20 %, i.e. <= 1.20)   {'met' if r <= 1.2 else 'MISSED'}")
PY
