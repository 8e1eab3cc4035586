#!/usr/bin/env bash
# The console's queries on a million cases (P3.3's target: case list and entity page p95 ≤ 100 ms), on
# SQLite and, when ARGUS_BENCH_POSTGRES names a server (a role that may create databases, e.g.
# postgres://argus:argus@127.0.0.1:5432/argus_test), on PostgreSQL in a fresh database
# `argus_bench_cases`.
#
#   bench/cases.sh [CASES] [SAMPLES]      # defaults: 1000000 cases, 200 samples per page
#
# Prints one JSON line per page and backend (p50/p95/max in ms); see
# crates/argus_cases/examples/bench_cases.rs for what each page runs and the premises it checks.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-1000000}
SAMPLES=${2:-200}
cargo build --release -q -p argus_cases --example bench_cases
BIN=target/release/examples/bench_cases
echo "machine: $(nproc) cores; commit $(git rev-parse --short HEAD)"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
"$BIN" "sqlite://$DIR/cases.db?mode=rwc" "$CASES" "$SAMPLES"
if [ -n "${ARGUS_BENCH_POSTGRES:-}" ]; then
  BASE=${ARGUS_BENCH_POSTGRES%/*}
  psql "$ARGUS_BENCH_POSTGRES" -qc "DROP DATABASE IF EXISTS argus_bench_cases" -c "CREATE DATABASE argus_bench_cases"
  "$BIN" "$BASE/argus_bench_cases" "$CASES" "$SAMPLES"
else
  echo "(PostgreSQL: set ARGUS_BENCH_POSTGRES to run it too)"
fi
