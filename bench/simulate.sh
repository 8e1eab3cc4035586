#!/usr/bin/env bash
# Simulator figures quoted in BENCHMARKS.md: generation speed at 10 million events, and the catch
# report of the starter policy pack on the default 30-day world, then with camouflage turned up.
#
#   bench/simulate.sh              # everything (about 3 minutes on 2 cores)
#   RUNS=5 bench/simulate.sh       # more repetitions of the speed figure (the median is reported)
#   SKIP_SPEED=1 bench/simulate.sh # catch reports only
#
# Generation is one thread; the speed runs write to /dev/null so that the disk is not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=target/bench
mkdir -p "$OUT"
echo "== machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
git rev-parse --short HEAD 2>/dev/null || true
cargo build --release -q -p argus_cli --bin argus
A=./target/release/argus
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

if [ -z "${SKIP_SPEED:-}" ]; then
  echo "== generation: 100,000 honest users, 30 days + 14 warm-up, every scenario (≈10 M events)"
  gen() { # extra args… → events/s of each run
    for _ in $(seq "$RUNS"); do
      "$A" simulate --users 100000 --stats "$@" 2>"$OUT/sim-stats.json" >/dev/null
      python3 -c "import json;d=json.load(open('$OUT/sim-stats.json'));print(d['events_per_sec'])"
    done
  }
  ev=$(gen | median)
  both=$(gen --truth /dev/null | median)
  n=$(python3 -c "import json;print(json.load(open('$OUT/sim-stats.json'))['summary']['events'])")
  printf '  %-52s %12s events\n' "world size" "$n"
  printf '  %-52s %12.0f events/s\n' "events (NDJSON) to stdout" "$ev" "events and truth (two NDJSON streams)" "$both"
  start=$(date +%s.%N)
  "$A" simulate --users 100000 --out "$OUT/world-10m.ndjson" 2>/dev/null
  end=$(date +%s.%N)
  printf '  %-52s %12.0f events/s (%s MB events, %s MB truth)\n' "events and truth to files on this disk" \
    "$(python3 -c "print($n/($end-$start))")" "$(( $(stat -c %s "$OUT/world-10m.ndjson") / 1000000 ))" "$(( $(stat -c %s "$OUT/world-10m.truth.ndjson") / 1000000 ))"
  rm -f "$OUT/world-10m.ndjson" "$OUT/world-10m.truth.ndjson"
fi

report() { # name extra-args…
  local name=$1; shift
  echo "== catch report: starter pack, default world (seed 1, 20,000 users, 30 days) $*"
  "$A" simulate --report --catch-json "$OUT/catch-$name.json" --chart "$OUT/catch-$name.svg" "$@" 2>/dev/null | sed 's/^/  /'
}
report default
report camouflage-0.5 --camouflage 0.5
report camouflage-0.8 --camouflage 0.8
echo "(JSON and SVG charts in $OUT/catch-*.json, $OUT/catch-*.svg)"
