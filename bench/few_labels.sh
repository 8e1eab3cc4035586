#!/usr/bin/env bash
# Few labels on the Fraud Detection Handbook's transactions (P4.1): the same training week and test
# week (handbook protocol) for
#   - the supervised GBDT on every label;
#   - HBOS, the unsupervised anomaly score (`argus train --method hbos`: no label used);
#   - the GBDT on a tenth and on a twentieth of the positive labels (`--keep-positives`);
#   - positive-unlabelled training on the same few positives (`--method pu`).
# Prints one row per model: test rows, positives, AUC, AP, P@100, CP@100, and the estimated
# labelling rate for PU.
#   bench/few_labels.sh [train-from, default 2018-08-15]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ARGUS_DATA_DIR:-../shared/data}/fraud-handbook/transactions.csv.gz
OUT=target/bench/few_labels
FROM=${1:-2018-08-15}
mkdir -p "$OUT"
cargo build --release -q -p argus_cli --bin argus
A=./target/release/argus
echo "== $(nproc) cores, argus $(git rev-parse --short HEAD 2>/dev/null || echo '?'); training week from $FROM, handbook protocol"
run() { # name args…
  local name=$1; shift
  "$A" train --protocol handbook --no-refit --config examples/handbook/argus-model.toml --input "$DATA" \
    --train-from "$FROM" --learning-rate 0.05 --max-depth 4 --out "$OUT/$name.model.json" \
    --report-json "$OUT/$name.json" "$@" >/dev/null 2>&1
  python3 - "$OUT/$name.json" "$OUT/$name.model.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["test"]; m = json.load(open(sys.argv[2]))
rate = m["metrics"].get("pu_label_rate")
print(f"| {sys.argv[3]} | {m['training']['positives']} | {r['rows']} | {r['positives']} | {r['auc']:.4f} | {r['average_precision']:.4f} | {r['precision_at_k']:.2f} | {r['card_precision_at_k']:.3f} | {'' if rate is None else f'{rate:.4f}'} |")
PY
}
echo "| model | training positives | test rows | test positives | AUC | AP | P@100 | CP@100 | PU labelling rate |"
echo "|---|---|---|---|---|---|---|---|---|"
run gbdt-all
run hbos --method hbos
run gbdt-10pct --keep-positives 0.1
run pu-10pct --method pu --keep-positives 0.1
run gbdt-5pct --keep-positives 0.05
run pu-5pct --method pu --keep-positives 0.05
