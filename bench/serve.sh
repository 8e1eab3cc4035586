#!/usr/bin/env bash
# Load benchmark of `argus serve` over loopback with wrk (Debian's `wrk`): checkpoint events with
# unique ids from bench/serve/events.lua, the starter policy pack, fsync on every group commit.
#
#   bench/serve.sh                 # saturation and ~10k/s latency, 30 s each, plus the HTTP floor
#   LONG=600 bench/serve.sh        # and a 10-minute run at ~10k/s sampling the server's RSS
#
# Prints the lines BENCHMARKS.md quotes. wrk and the server share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
LONG=${LONG:-0}
PORT=${PORT:-7991}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p argus_cli
DATA=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
target/release/argus serve --config bench/serve/argus.toml --policies policies --data-dir "$DATA" --listen 127.0.0.1:$PORT >"$DATA.out" 2>"$DATA.err" &
PID=$!
for _ in $(seq 50); do grep -q listening "$DATA.out" 2>/dev/null && break; sleep 0.2; done
URL=http://127.0.0.1:$PORT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "commit: $(git rev-parse --short HEAD)  fsync: always (default)"

echo "== warm-up (10 s, fills the entity population)"
RUN=warm wrk -t2 -c128 -d10s -s bench/serve/events.lua $URL | tail -2

echo "== saturation: wrk -t2 -c128, ${DURATION}s"
RUN=sat wrk -t2 -c128 -d${DURATION}s -s bench/serve/events.lua $URL | tail -2

echo "== paced near 10,000/s: wrk -t2 -c32, 2 ms pause per connection, ${DURATION}s"
PAUSE_MS=2 RUN=paced wrk -t2 -c32 -d${DURATION}s -s bench/serve/events.lua $URL | tail -2

echo "== HTTP floor: GET /healthz paced the same way (no engine, no log)"
cat > "$DATA.pace.lua" <<'LUA'
function delay() return 2 end
function done(s, latency, r)
  io.write(string.format("requests %d rps %.0f\nlatency_ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n", s.requests, s.requests / (s.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
LUA
wrk -t2 -c32 -d${DURATION}s -s "$DATA.pace.lua" $URL/healthz | tail -2

curl -s $URL/metrics | grep -E '^argus_(log_fsyncs_total|snapshot_pause_seconds_(sum|count)|snapshots_total)' || true
echo "core groups (handling one batch of queued requests) by duration, cumulative:"
curl -s $URL/metrics | grep -E '^argus_core_group_seconds_bucket\{le="(0.001|0.01|0.05|0.1|\+Inf)"\}' || true

if [ "$LONG" -gt 0 ]; then
  echo "== ${LONG}s paced near 10,000/s; every 30 s: server RSS, feature state (the engine's own count of"
  echo "   its windows' bytes), feature keys, events in the decision index (MiB / counts)"
  PAUSE_MS=2 RUN=long wrk -t2 -c32 -d${LONG}s -s bench/serve/events.lua $URL > "$DATA.long" &
  WRK=$!
  for i in $(seq 0 30 "$LONG"); do
    ST=$(curl -s $URL/v1/admin/status)
    printf "t=%4ds rss_mib=%s feature_state_mib=%s keys=%s indexed_events=%s\n" "$i" "$(( $(ps -o rss= -p $PID) / 1024 ))" \
      "$(echo "$ST" | python3 -c 'import json,sys; print(json.load(sys.stdin)["feature_state_bytes"] >> 20)')" \
      "$(echo "$ST" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])')" \
      "$(echo "$ST" | python3 -c 'import json,sys; print(json.load(sys.stdin)["indexed_events"])')"
    sleep 30
  done
  wait $WRK
  tail -2 "$DATA.long"
  curl -s $URL/metrics | grep -E '^argus_(snapshot_pause_seconds_(sum|count)|snapshots_total|log_segments)' || true
fi
