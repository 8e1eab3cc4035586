#!/usr/bin/env bash
# Load benchmark of `argus serve` over loopback with wrk (Debian's `wrk`): checkpoint events with
# unique ids from bench/serve/events.lua, the starter policy pack, fsync on every group commit.
#
#   bench/serve.sh                 # saturation and ~10k/s latency, 30 s each, plus the HTTP floor
#   LONG=600 bench/serve.sh        # and a 10-minute run at ~10k/s sampling the server's RSS
#   DEFAULTS=1 LONG=600 bench/serve.sh   # the same on `argus serve`'s defaults (no --config)
#   CASES=off bench/serve.sh       # with [cases] enabled = false (bench/serve/argus-nocases.toml)
#   CASES=none bench/serve.sh      # with a case route that takes none of its decisions
#   CASES=noguard bench/serve.sh   # the same with the blast-radius guard off
#   SAT_ONLY=1 bench/serve.sh      # warm-up and saturation only (bench/cases_overhead.sh)
#   ARGUS=/path/to/argus bench/serve.sh   # another build (e.g. an older commit)
#
# Prints the lines BENCHMARKS.md quotes. wrk and the server share this machine's cores.
# After each events run it checks the premise: every request wrk counted was a new event that the
# server accepted (no duplicate ids); it stops with an error when not.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
LONG=${LONG:-0}
PORT=${PORT:-7991}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
# ARGUS: the binary to run (default: this tree's release build).
if [ -z "${ARGUS:-}" ]; then cargo build --release -q -p argus_cli; ARGUS=target/release/argus; fi
DATA=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
if [ "${DEFAULTS:-0}" = 1 ]; then
  SETUP=()   # the embedded starter configuration and policy pack, every [server]/[engine] default
else
  SETUP=(--config bench/serve/argus.toml --policies policies)
fi
if [ "${CASES:-on}" = off ]; then
  SETUP=(--config bench/serve/argus-nocases.toml --policies policies)
elif [ "${CASES:-on}" = none ]; then
  SETUP=(--config bench/serve/argus-cases-none.toml --policies policies)
elif [ "${CASES:-on}" = noguard ]; then
  SETUP=(--config bench/serve/argus-cases-none-noguard.toml --policies policies)
fi
"$ARGUS" serve "${SETUP[@]}" --data-dir "$DATA" --listen 127.0.0.1:$PORT >"$DATA.out" 2>"$DATA.err" &
PID=$!
for _ in $(seq 50); do grep -q listening "$DATA.out" 2>/dev/null && break; sleep 0.2; done
URL=http://127.0.0.1:$PORT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "binary: $ARGUS  commit: $(git rev-parse --short HEAD)  fsync: always (default)  config: $([ "${DEFAULTS:-0}" = 1 ] && echo 'defaults (no --config)' || echo "${SETUP[1]}")"

# The server's event outcomes so far, from /metrics: "ACCEPTED DUPLICATES", each summed over the event
# types of argus_events_total{outcome="accepted"|"duplicate"}. (The status's counters.duplicates counts
# only the duplicates the engine refuses, not those the server's decision index answers first.)
counts() {
  curl -sf "$URL/metrics" | python3 -c '
import sys
a = d = 0
for line in sys.stdin:
    if line.startswith("argus_events_total{"):
        v = int(float(line.split()[-1]))
        if "outcome=\"accepted\"" in line: a += v
        elif "outcome=\"duplicate\"" in line: d += v
print(a, d)' || true
}
read_counts() {
  read -r ACC DUP <<<"$(counts)" || true
  [[ "${ACC:-}" =~ ^[0-9]+$ && "${DUP:-}" =~ ^[0-9]+$ ]] || { echo "cannot read argus_events_total from $URL/metrics" >&2; exit 1; }
}
read_counts
# check NAME WRK_OUTPUT CONNECTIONS: compares wrk's `requests N` with the increase of the server's
# accepted count since the last check, and fails when any duplicate was answered or they differ.
check() {
  local acc0=$ACC dup0=$DUP req accepted dups diff
  sleep 1 # the requests in flight when wrk stopped are answered (and counted) before the next run
  read_counts
  req=$(awk '/^requests /{print $2}' "$2")
  [[ "$req" =~ ^[0-9]+$ ]] || { echo "$1: no \`requests N\` line in wrk's output" >&2; exit 1; }
  accepted=$((ACC - acc0)) dups=$((DUP - dup0))
  diff=$((accepted > req ? accepted - req : req - accepted))
  echo "check $1: wrk requests $req, server accepted $accepted, duplicates $dups"
  # wrk counts a request when its response arrives: those still in flight when it stops (at most one
  # per connection) were accepted by the server but not counted by wrk. So allow a difference of up to
  # the connection count, no more.
  if [ "$dups" -ne 0 ] || [ "$diff" -gt "$3" ]; then
    echo "FAILED $1: the server must accept every request as a new event (accepted $accepted vs wrk requests $req, allowed difference $3; duplicates $dups); the figures above are not valid" >&2
    exit 1
  fi
}

echo "== warm-up (10 s, fills the entity population)"
RUN=warm wrk -t2 -c128 -d10s -s bench/serve/events.lua $URL > "$DATA.wrk"
tail -2 "$DATA.wrk"
check warm "$DATA.wrk" 128

echo "== saturation: wrk -t2 -c128, ${DURATION}s"
RUN=sat wrk -t2 -c128 -d${DURATION}s -s bench/serve/events.lua $URL > "$DATA.wrk"
tail -2 "$DATA.wrk"
check sat "$DATA.wrk" 128
# Case intake during the run: review decisions and findings that opened or joined a case.
echo "cases: $(curl -s $URL/metrics | awk '/^argus_case_triggers_total/ { n += $2 } END { print n + 0 }') triggers, $(curl -s $URL/metrics | awk '/^argus_case_intake_dropped_total/ { n += $2 } END { print n + 0 }') dropped (intake queue full), $(curl -s $URL/v1/inboxes | python3 -c 'import json,sys
try: print(sum(i["open"] + i["in_review"] for i in json.load(sys.stdin)["inboxes"]))
except Exception: print("no")') open cases; review decisions: $(curl -s $URL/metrics | awk '/^argus_decisions_total\{.*action="review"/ { n += $2 } END { print n + 0 }')"
# The blast-radius guard (on with cases, unless the configuration turns it off): whether it ran, and
# the rules it watched (none while it is off).
echo "guard: $(curl -s $URL/v1/guard | python3 -c 'import json,sys
try:
    s = json.load(sys.stdin)["state"]; print("enabled %s, %d (checkpoint, rule) pairs watched" % (s["config"]["enabled"], len(s["learned"])))
except Exception: print("off (no case store)")')"
if [ "${SAT_ONLY:-0}" = 1 ]; then exit 0; fi

echo "== paced near 10,000/s: wrk -t2 -c32, 2 ms pause per connection, ${DURATION}s"
PAUSE_MS=2 RUN=paced wrk -t2 -c32 -d${DURATION}s -s bench/serve/events.lua $URL > "$DATA.wrk"
tail -2 "$DATA.wrk"
check paced "$DATA.wrk" 32

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
# The group histogram's cumulative buckets (seconds), as "le count" pairs on one line.
groups() { curl -s $URL/metrics | sed -n 's/^argus_core_group_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'; }
groups | awk '{ printf "  ≤ %s s: %s\n", $1, $2 }'
G0=$(groups)

if [ "$LONG" -gt 0 ]; then
  echo "== ${LONG}s paced near 10,000/s; every 30 s: server RSS (MiB), feature keys, events in the"
  echo "   decision index (\`-\` where the status does not report one)"
  read_counts
  PAUSE_MS=2 RUN=long wrk -t2 -c32 -d${LONG}s -s bench/serve/events.lua $URL > "$DATA.long" &
  WRK=$!
  # A field of the status answer, or `-` where it is missing (or the status did not answer).
  field() { echo "$ST" | python3 -c 'import json,sys
try: print(json.load(sys.stdin).get(sys.argv[1], "-"))
except (ValueError, AttributeError): print("-")' "$1"; }
  echo "   snapshot_mib: the newest snapshot file (the state, encoded); copy_mib: what the last snapshot"
  echo "   copy held in memory (argus_snapshot_copy_bytes)"
  for i in $(seq 0 30 "$LONG"); do
    RSS=$(ps -o rss= -p $PID || true)
    ST=$(curl -s $URL/v1/admin/status || true)
    SNAP=$(ls -t "$DATA"/snapshots/snap-*.bin 2>/dev/null | head -1)
    SNAP_MIB=$([ -n "$SNAP" ] && echo $(( $(stat -c %s "$SNAP") / 1048576 )) || echo -)
    COPY=$(curl -s $URL/metrics | sed -n 's/^argus_snapshot_copy_bytes \([0-9.e+]*\)$/\1/p')
    COPY_MIB=$([ -n "$COPY" ] && python3 -c "print(round(float('$COPY') / 1048576, 1))" || echo -)
    printf "t=%4ds rss_mib=%s keys=%s indexed_events=%s snapshot_mib=%s copy_mib=%s\n" "$i" "$([ -n "$RSS" ] && echo $((RSS / 1024)) || echo -)" \
      "$(field keys)" "$(field indexed_events)" "$SNAP_MIB" "$COPY_MIB"
    sleep 30
  done
  wait $WRK
  tail -2 "$DATA.long"
  check long "$DATA.long" 32
  curl -s $URL/metrics | grep -E '^argus_(snapshot_pause_seconds_(sum|count)|snapshots_total|log_segments)' || true
  echo "core groups during the ${LONG}s run only, by duration (buckets in seconds):"
  paste <(echo "$G0") <(groups) | awk '{ n = $4 - $2; printf "  ≤ %s s: %d\n", $1, n; if ($1 == "0.005") at5 = n; total = n } END { printf "  over 5 ms: %d of %d groups\n", total - at5, total }' 
fi
