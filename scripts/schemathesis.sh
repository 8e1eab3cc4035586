#!/usr/bin/env bash
# Property-based tests of `argus serve` against its own OpenAPI document (the one it serves at
# /openapi.json, crates/argus_server/src/openapi.json), with schemathesis
# (https://schemathesis.readthedocs.io; the version is pinned in scripts/requirements-ci.txt).
#
#   scripts/schemathesis.sh [ARGUS_BINARY]      # default: target/debug/argus (CI builds debug for the tests)
#
# Starts the server on a fresh temporary data directory and a free port, with the load benchmark's
# configuration and the starter policies and `fsync = never` (nothing here needs durability), waits
# for /readyz, runs every operation of the document with a bounded number of examples and a fixed seed,
# then stops the server. Fails on any 5xx, any answer whose status, content type, headers or body the
# document does not describe, if the server does not start, or if schemathesis is not installed.
#
# Environment (all optional):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 700: about 8,000 requests,
#                              1.5 to 2.5 minutes on 2 cores)
#   SCHEMATHESIS_SEED          seed (default 20261126); a failure reproduces with the same seed
#   SCHEMATHESIS_WORKERS       concurrent workers (default 1: with more, hypothesis calls ast.parse from
#                              several threads, which CPython before 3.11.8/3.12.1 can fail with
#                              "SystemError: AST constructor recursion depth mismatch", cpython#106905)
#   SCHEMATHESIS_TIME_LIMIT    hard limit on the schemathesis run, in seconds (default 840); past it, the run fails
#   SCHEMATHESIS_CHECKS        schemathesis checks, comma-separated (default: not_a_server_error,
#                              status_code_conformance, content_type_conformance,
#                              response_headers_conformance, response_schema_conformance)
#   SCHEMATHESIS_SCHEMA        test against this file instead of the served /openapi.json (for
#                              editing the document without rebuilding the server, which embeds it)
#   SCHEMATHESIS_REPORT_DIR    also write a JUnit report there
set -euo pipefail
cd "$(dirname "$0")/.."

argus=${1:-target/debug/argus}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-700}
seed=${SCHEMATHESIS_SEED:-20261126}
workers=${SCHEMATHESIS_WORKERS:-1}
time_limit=${SCHEMATHESIS_TIME_LIMIT:-840}
checks=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}
pinned=$(sed -n 's/^schemathesis==\([^ ]*\).*/\1/p' scripts/requirements-ci.txt)

# Not installed is a failure, not a skip: CI installs scripts/requirements-ci.txt first.
have=$(schemathesis --version 2>/dev/null | sed -n 's/.*version \([^ ]*\).*/\1/p') || true
if [ -z "$have" ]; then
  echo "error: schemathesis is not installed (or does not run): python3 -m pip install -r scripts/requirements-ci.txt" >&2
  exit 1
fi
if [ "$have" != "$pinned" ]; then
  echo "warning: schemathesis $have is installed; scripts/requirements-ci.txt pins $pinned" >&2
fi
if [ ! -x "$argus" ]; then
  echo "error: $argus is not an executable; build it first (cargo build)" >&2
  exit 1
fi

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    # A graceful stop syncs the log and writes a snapshot; give it a moment, then insist.
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Port 0: the system picks a free port, and the server prints the address it bound.
: >"$tmp/stdout"
ARGUS_FSYNC=never "$argus" serve --config bench/serve/argus.toml --policies policies \
  --data-dir "$tmp/data" --listen 127.0.0.1:0 >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!

addr=
for _ in $(seq 1 600); do
  addr=$(sed -n 's/^argus: listening on \([0-9.:]*\)$/\1/p' "$tmp/stdout")
  [ -n "$addr" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "error: the server exited before listening:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "error: the server did not listen within 60 s:" >&2
  cat "$tmp/stderr" >&2
  exit 1
fi
base="http://$addr"

ready() {
  python3 - "$base/readyz" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
for i in $(seq 1 300); do
  ready && break
  if [ "$i" = 300 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "error: $base/readyz did not answer 200 within 60 s:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  sleep 0.2
done

# Realistic values, so that the tests get past "unknown type/list/kind" and exercise decoding, the
# rules and the answers' schemas: the starter events are sent first, and schemathesis draws event
# types, actors, entity kinds and ids, list names and values, decision ids and times from dictionaries
# of real ones part of the time (and generates the rest), per schemathesis.toml below.
if ! "$argus" schema --json --config bench/serve/argus.toml >"$tmp/schema.json" 2>"$tmp/schema.err"; then
  cat "$tmp/schema.err" >&2
  exit 1
fi
python3 - "$base" "$tmp" <<'PY'
import glob, json, sys, tomllib, urllib.request

base, tmp = sys.argv[1], sys.argv[2]
events = open("examples/starter/events.ndjson", "rb").read()
req = urllib.request.Request(f"{base}/v1/events/batch", data=events, method="POST", headers={"Content-Type": "application/x-ndjson"})
with urllib.request.urlopen(req, timeout=30) as r:
    batch = json.load(r)
if batch["accepted"] == 0:
    sys.exit(f"error: the starter events were not accepted: {json.dumps(batch)[:2000]}")
event_ids = [x["id"] for x in batch["results"] if x.get("status") == "accepted"]

schema = json.load(open(f"{tmp}/schema.json"))
types = [t["type"] for t in schema if not t["internal"]]
# The default `server.label_types` (bench/serve/argus.toml keeps them).
label_types = [t for t in ("chargeback", "fraud.confirmed", "legit.confirmed") if t in types]
kinds = sorted({f["entity"] for t in schema for f in t["fields"] if f["entity"]})
lists, list_values = [], []
for path in sorted(glob.glob("policies/lists/*.toml")):
    doc = tomllib.load(open(path, "rb"))
    lists.append(doc["list"]["name"])
    list_values += [i["value"] for i in doc.get("items", [])]
actors, entity_ids = set(), set()
for line in events.decode().splitlines():
    if not line.strip():
        continue
    e = json.loads(line)
    actors.add(str(e["actor"]))
    entity_ids.add(str(e["actor"]))
    entity_ids.update(v for v in (e.get("data") or {}).values() if isinstance(v, str) and v.strip())
entity_ids.update(list_values)

def values(xs):
    return "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in sorted(xs)) + "]"

def bind(**keys):
    return "{ " + ", ".join(f'"{k}" = {{ dictionary = "{d}", probability = {p} }}' for k, (d, p) in keys.items()) + " }"

times = ["2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123+01:00", "2026-11-21", 1763632800000]
toml = f"""
[cache]
enabled = false

[dictionaries.event_types]
values = {values(types)}
[dictionaries.label_types]
values = {values(label_types)}
[dictionaries.actors]
values = {values(actors)}
[dictionaries.times]
values = {json.dumps(times)}
[dictionaries.event_ids]
values = {values(event_ids)}
[dictionaries.entity_kinds]
values = {values(kinds)}
[dictionaries.entity_ids]
values = {values(entity_ids)}
[dictionaries.lists]
values = {values(lists)}
[dictionaries.list_values]
values = {values(list_values)}
[dictionaries.durations]
values = ["30d", "1h", "1d12h", "90s"]

[[operations]]
include-operation-id = "postEvent"
parameters = {bind(**{"body.type": ("event_types", 0.8), "body.actor": ("actors", 0.5), "body.time": ("times", 0.5)})}

[[operations]]
include-operation-id = "postLabel"
parameters = {bind(**{"body.type": ("label_types", 0.8), "body.actor": ("actors", 0.5), "body.time": ("times", 0.5)})}

[[operations]]
include-operation-id = "postEventBatch"
parameters = {bind(**{"body.[*].type": ("event_types", 0.8), "body.[*].actor": ("actors", 0.5), "body.[*].time": ("times", 0.5)})}

[[operations]]
include-operation-id = "getDecision"
parameters = {bind(**{"path.id": ("event_ids", 0.7)})}

[[operations]]
include-operation-id = "getEntity"
parameters = {bind(**{"path.kind": ("entity_kinds", 0.8), "path.id": ("entity_ids", 0.6)})}

[[operations]]
include-operation-id = "getList"
parameters = {bind(**{"path.name": ("lists", 0.8)})}

[[operations]]
include-operation-id = ["putListItem", "deleteListItem"]
parameters = {bind(**{"path.name": ("lists", 0.8), "path.value": ("list_values", 0.3), "body.ttl": ("durations", 0.3)})}
"""
open(f"{tmp}/schemathesis.toml", "w").write(toml)
PY

if [ -n "${SCHEMATHESIS_SCHEMA:-}" ]; then
  location=(--url "$base" "$(realpath "$SCHEMATHESIS_SCHEMA")")
else
  location=("$base/openapi.json")
  # The server embeds the document at build time: say so when it serves another one than the file.
  if ! python3 - "$base/openapi.json" crates/argus_server/src/openapi.json <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    served = json.load(r)
sys.exit(0 if served == json.load(open(sys.argv[2], encoding="utf-8")) else 1)
PY
  then
    echo "warning: $argus serves another openapi.json than crates/argus_server/src/openapi.json; rebuild it" >&2
  fi
fi

report=()
if [ -n "${SCHEMATHESIS_REPORT_DIR:-}" ]; then
  mkdir -p "$SCHEMATHESIS_REPORT_DIR"
  report=(--report junit --report-dir "$(realpath "$SCHEMATHESIS_REPORT_DIR")")
fi

echo "schemathesis $have against $argus at $base: $max_examples examples per operation and phase, seed $seed"
status=0
# From the temporary directory: schemathesis and hypothesis keep their state in the working directory.
(cd "$tmp" && timeout --kill-after=10 "$time_limit" schemathesis --no-color --config-file "$tmp/schemathesis.toml" run "${location[@]}" \
  --checks "$checks" \
  --phases examples,coverage,fuzzing \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers "$workers" \
  --generation-database none \
  --request-timeout 10 \
  --suppress-health-check all \
  "${report[@]}") || status=$?

# What the run exercised: the server's own count of answers per route and status.
python3 - "$base/metrics" <<'PY' || true
import re, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    text = r.read().decode()
rows = re.findall(r'^argus_http_requests_total\{route="([^"]*)",method="([^"]*)",status="([^"]*)"\} (\d+)', text, re.M)
by, probes = {}, 0
for route, method, st, n in rows:
    if st == "405":
        probes += int(n)  # schemathesis trying the methods a path does not have
    else:
        by.setdefault((route, method), []).append(f"{st}: {n}")
print("answers by route and status:")
for (route, method), counts in sorted(by.items()):
    print(f"  {method:6} {route:34} " + ", ".join(sorted(counts)))
print(f"  and {probes} answers 405 to methods a route does not have")
PY

if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "error: schemathesis did not finish within $time_limit s" >&2
fi
if ! kill -0 "$pid" 2>/dev/null; then
  echo "error: the server died during the run:" >&2
  cat "$tmp/stderr" >&2
  status=1
fi
exit "$status"
