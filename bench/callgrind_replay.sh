#!/usr/bin/env bash
# Instructions per event of `argus replay` on the handbook's first 100,000 transactions, counted by
# valgrind's callgrind: repeatable for the same binary and input whatever else the machine is doing
# (wall times on this VM move by ±20 %). Prints the total and the ten costliest functions.
#
#   bench/callgrind_replay.sh            # P = 1 (one partition thread beside the main thread)
#
# Builds nothing: uses target/release/argus (cargo build --release -p argus_cli). Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ARGUS_DATA_DIR:-../shared/data}/fraud-handbook/transactions.csv.gz
OUT=target/bench
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }
[ -x target/release/argus ] || { echo "build first: cargo build --release -p argus_cli" >&2; exit 1; }
[ -s "$OUT/hb100k.csv" ] || { zcat "$DATA" | head -100001 > "$OUT/hb100k.csv" || true; }
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(($(wc -l < "$OUT/hb100k.csv") - 1)) events"
ARGUS_PARTITIONS=1 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
  target/release/argus replay -q --config examples/handbook/argus.toml --input "$OUT/hb100k.csv" \
  --out-csv "$OUT/hb100k-features.csv" 2>&1 | grep -E "refs" | sed 's/^==[0-9]*== *//'
callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | grep -E '^ *[0-9,]+ +\(' | sed -n 2,11p | cut -c1-150
