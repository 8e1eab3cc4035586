#!/usr/bin/env bash
# The edge-burst score (MIDAS-R) on the DARPA 1998 stream: throughput and ROC AUC, quoted in
# BENCHMARKS.md. Reference on this machine kind (../shared/data/README.md): MIDAS-R (C++) 0.59 s for
# 4.55 M edges, AUC 0.949.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ARGUS_DATA_DIR:-../shared/data}/graphs/darpa-edges.zip
mkdir -p target/bench
[ -f target/bench/darpa.csv ] || python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); open('target/bench/darpa.csv','wb').write(z.read(z.namelist()[0]))" "$DATA"
cargo run --release -q -p argus_graph --example darpa -- target/bench/darpa.csv
# Sensitivity to the decay factor (chosen here on the same data: optimistic, not a default).
./target/release/examples/darpa target/bench/darpa.csv 2 1024 0.7
