#!/usr/bin/env bash
# Backtest speed (P3.4's target: at least P3.1's replay speed minus 20 %). A server's log of about a
# million events is built by posting them to `argus serve` (fsync never: the log is what is measured
# here, not the disk), the server is stopped, and then, RUNS times each:
#   - `argus backtest` replays its log with a draft beside the running policies;
#   - `argus replay` replays the same events (the same engine path; the backtest decides every event
#     twice and reads the log's stored events instead of parsing a file).
# Premises checked: every posted event was accepted once; the backtest read exactly that many
# events; replayed from the log, the running policies decide every event as it was decided live
# (point in time: `live_drift` is 0); the diff file has one line per changed decision.
#
#   bench/backtest.sh                  # WORLD=sim: a simulated world (USERS=10000, DAYS=8), the
#                                      # starter configuration and pack; the draft lowers
#                                      # order_velocity's bar from 10 to 3 orders a day
#   WORLD=handbook bench/backtest.sh   # the Fraud Detection Handbook's 1,754,155 transactions (the
#                                      # P3.1 workload), examples/handbook with its policies; the
#                                      # draft lowers large_amount's bar from 220 to 150; replay is
#                                      # also run on the CSV without policies, as P3.1 measured it
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORLD=${WORLD:-sim}
USERS=${USERS:-10000}
DAYS=${DAYS:-8}
PORT=${PORT:-7993}
OUT=target/bench/backtest-$WORLD
rm -rf "$OUT"; mkdir -p "$OUT/draft"
echo "== machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD)"
cargo build --release -q -p argus_cli --bin argus
A=./target/release/argus
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

case $WORLD in
  sim)
    "$A" simulate --seed 5 --users "$USERS" --days "$DAYS" -o "$OUT/world.ndjson" 2>/dev/null
    BASE="$PWD/examples/starter/argus.toml"
    POLICIES=policies
    cp -r policies/* "$OUT/draft/"
    sed -i 's/features.user_orders_24h >= 10/features.user_orders_24h >= 3/' "$OUT/draft/marketplace_integrity.toml"
    grep -q 'user_orders_24h >= 3' "$OUT/draft/marketplace_integrity.toml" || { echo "the draft's edit did not apply" >&2; exit 1; }
    echo "== world: $(wc -l <"$OUT/world.ndjson") events ($USERS users, $DAYS days)"
    ;;
  handbook)
    CSV=${ARGUS_DATA_DIR:-../shared/data}/fraud-handbook/transactions.csv.gz
    [ -f "$CSV" ] || { echo "$CSV not found" >&2; exit 1; }
    python3 bench/handbook_ndjson.py "$CSV" "$OUT/world.ndjson" >/dev/null
    BASE="$PWD/examples/handbook/argus.toml"
    POLICIES=examples/handbook/policies
    cp -r examples/handbook/policies/* "$OUT/draft/"
    sed -i 's/event.amount > 220.0/event.amount > 150.0/' "$OUT/draft/payments.toml"
    grep -q 'event.amount > 150.0' "$OUT/draft/payments.toml" || { echo "the draft's edit did not apply" >&2; exit 1; }
    echo "== world: $(wc -l <"$OUT/world.ndjson") handbook transactions"
    ;;
  *) echo "WORLD is sim or handbook" >&2; exit 1 ;;
esac
N=$(wc -l <"$OUT/world.ndjson")

cat >"$OUT/argus.toml" <<TOML
include = ["$BASE"]
[server]
fsync = "never"
max_batch = 1000
[[server.api_keys]]
name = "loader"
role = "ingest"
key = "ingest-key-0123456789"
[cases]
enabled = false
TOML
"$A" serve --config "$OUT/argus.toml" --policies "$POLICIES" --data-dir "$OUT/data" --listen 127.0.0.1:$PORT >"$OUT/serve.out" 2>"$OUT/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/serve.out" 2>/dev/null && break; sleep 0.2; done
t0=$(date +%s.%N)
ACC=$(python3 bench/backtest_load.py "http://127.0.0.1:$PORT" ingest-key-0123456789 "$OUT/world.ndjson" | awk '{print $2}')
t1=$(date +%s.%N)
kill -TERM $PID; wait $PID || true
trap - EXIT
echo "== logged: $ACC events accepted by the server ($(python3 -c "print(round($ACC/($t1-$t0)))") events/s over HTTP)"
[ "$ACC" -eq "$N" ] || { echo "premise failed: $N events posted, $ACC accepted" >&2; exit 1; }

"$A" backtest --config "$OUT/argus.toml" --data-dir "$OUT/data" --control "$POLICIES" --policies "$POLICIES" 2>/dev/null >"$OUT/self.json"
python3 - "$OUT/self.json" "$ACC" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert s["events"] == n, f"premise failed: the backtest read {s['events']} events, the log holds {n}"
assert s["changed"] == 0, f"premise failed: the running policies' own backtest changed {s['changed']} decisions"
assert s["live_drift"] == 0, f"premise failed: {s['live_drift']} decisions differ from those logged live, e.g. {s['live_drift_examples'][:5]}"
print(f"== premise: the running policies' own backtest read {s['events']} events and decided every one as it was decided live")
PY
bt=()
for r in $(seq "$RUNS"); do
  "$A" backtest --config "$OUT/argus.toml" --data-dir "$OUT/data" --control "$POLICIES" --policies "$OUT/draft" --out "$OUT/changes.ndjson" 2>/dev/null >"$OUT/bt.json"
  eps=$(python3 -c "import json;print(round(json.load(open('$OUT/bt.json'))['events_per_second']))")
  echo "backtest run $r: $eps events/s"
  bt+=("$eps")
done
python3 - "$OUT/bt.json" "$OUT/changes.ndjson" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
lines = sum(1 for _ in open(sys.argv[2]))
assert lines == s["changed"], f"premise failed: {lines} diff lines for {s['changed']} changes"
c, k = s["control"]["labelled"], s["candidate"]["labelled"]
print(f"draft: {s['changed']} decisions change ({s['transitions']}); honest users with added friction: "
      f"{s['friction']['honest_users_added']}; candidate actions {s['candidate']['actions']}")
if c["events"]:
    print(f"against labels: precision {c['precision']:.3f} → {k['precision']:.3f}, recall {c['recall']:.3f} → {k['recall']:.3f}, "
          f"money caught {c['money_caught']:.0f} → {k['money_caught']:.0f}")
PY
replay() { # label input [extra args…]
  local label=$1 input=$2; shift 2
  local v=()
  for r in $(seq "$RUNS"); do
    "$A" replay -q --config "$OUT/argus.toml" --input "$input" --summary "$OUT/replay.json" "$@" 2>/dev/null
    v+=("$(python3 -c "import json;print(round(json.load(open('$OUT/replay.json'))['events_per_sec']))")")
  done
  echo "replay ($label): ${v[*]} events/s" >&2
  printf '%s\n' "${v[@]}" | median
}
mr=$(replay "the same NDJSON, the same policies" "$OUT/world.ndjson" --policies "$POLICIES")
mb=$(printf '%s\n' "${bt[@]}" | median)
python3 -c "print(f'median: backtest {float($mb):,.0f} events/s, replay of the same events {float($mr):,.0f} events/s; backtest/replay = {float($mb)/float($mr):.2f}')"
if [ "$WORLD" = handbook ]; then
  zcat "$CSV" >"$OUT/transactions.csv"
  mc=$(replay "the CSV, features only: P3.1's workload" "$OUT/transactions.csv")
  mcp=$(replay "the CSV with the policies" "$OUT/transactions.csv" --policies "$POLICIES")
  python3 -c "print(f'median replay of the CSV: {float($mc):,.0f} events/s features only (P3.1), {float($mcp):,.0f} with the policies; backtest/replay(CSV, P3.1) = {float($mb)/float($mc):.2f}')"
fi
