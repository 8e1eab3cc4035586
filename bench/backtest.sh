#!/usr/bin/env bash
# Backtest speed (P3.4's target: at least P3.1's replay speed minus 20 %). A simulated world of about
# 1,000,000 events is posted to `argus serve` (the starter configuration and policy pack, fsync
# never: the log is what is measured here, not the disk), the server is stopped, and
#   - `argus backtest` replays its log with a draft (the starter pack with one rule's threshold
#     lowered) beside the running pack, RUNS times;
#   - `argus replay` replays the same events from the NDJSON file with the starter pack, RUNS times
#     (the same engine path; the backtest decides every event twice and reads the log's records).
# Premises checked: every posted event was accepted once; the backtest read exactly that many
# events; the running pack's own backtest changes no decision (point-in-time replay of the log).
#
#   bench/backtest.sh              # RUNS=3; about 4 minutes on 2 cores after the release build
#   USERS=3000 DAYS=7 bench/backtest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
USERS=${USERS:-10000}
DAYS=${DAYS:-8}
PORT=${PORT:-7993}
OUT=target/bench/backtest
rm -rf "$OUT"; mkdir -p "$OUT"
echo "== machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD)"
cargo build --release -q -p argus_cli --bin argus
A=./target/release/argus
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

"$A" simulate --seed 5 --users "$USERS" --days "$DAYS" -o "$OUT/world.ndjson" 2>/dev/null
N=$(wc -l <"$OUT/world.ndjson")
echo "== world: $N events ($USERS users, $DAYS days)"

cat >"$OUT/argus.toml" <<TOML
include = ["$PWD/examples/starter/argus.toml"]
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
"$A" serve --config "$OUT/argus.toml" --policies policies --data-dir "$OUT/data" --listen 127.0.0.1:$PORT >"$OUT/serve.out" 2>"$OUT/serve.err" &
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

# The draft: the starter pack with the order velocity rule's bar lowered from 10 to 3 orders a day.
mkdir -p "$OUT/draft"; cp -r policies/* "$OUT/draft/"
sed -i 's/features.user_orders_24h >= 10/features.user_orders_24h >= 3/' "$OUT/draft/marketplace_integrity.toml"
grep -q 'user_orders_24h >= 3' "$OUT/draft/marketplace_integrity.toml" || { echo "the draft's edit did not apply" >&2; exit 1; }

"$A" backtest --config "$OUT/argus.toml" --data-dir "$OUT/data" --control policies --policies policies >"$OUT/self.json"
python3 - "$OUT/self.json" "$ACC" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert s["events"] == n, f"premise failed: the backtest read {s['events']} events, the log holds {n}"
assert s["changed"] == 0, f"premise failed: the running pack's own backtest changed {s['changed']} decisions"
print(f"== premise: the running pack's own backtest read {s['events']} events and changed 0 decisions")
PY
bt=()
for r in $(seq "$RUNS"); do
  "$A" backtest --config "$OUT/argus.toml" --data-dir "$OUT/data" --control policies --policies "$OUT/draft" --out "$OUT/changes.ndjson" >"$OUT/bt.json"
  eps=$(python3 -c "import json;print(round(json.load(open('$OUT/bt.json'))['events_per_second']))")
  echo "backtest run $r: $eps events/s"
  bt+=("$eps")
done
python3 - "$OUT/bt.json" "$OUT/changes.ndjson" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
lines = sum(1 for _ in open(sys.argv[2]))
assert lines == s["changed"], f"premise failed: {lines} diff lines for {s['changed']} changes"
print(f"draft: {s['changed']} decisions change ({s['transitions']}); honest users with added friction: "
      f"{s['friction']['honest_users_added']}; candidate actions {s['candidate']['actions']}")
PY
rp=()
for r in $(seq "$RUNS"); do
  "$A" replay -q --config "$OUT/argus.toml" --policies policies --input "$OUT/world.ndjson" --summary "$OUT/replay.json" 2>/dev/null
  eps=$(python3 -c "import json;print(round(json.load(open('$OUT/replay.json'))['events_per_sec']))")
  echo "replay run $r: $eps events/s"
  rp+=("$eps")
done
mb=$(printf '%s\n' "${bt[@]}" | median); mr=$(printf '%s\n' "${rp[@]}" | median)
python3 -c "print(f'median: backtest {float($mb):,.0f} events/s, replay of the same events {float($mr):,.0f} events/s; backtest/replay = {float($mb)/float($mr):.2f}')"
