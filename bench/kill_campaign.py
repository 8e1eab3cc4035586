#!/usr/bin/env python3
"""A long SIGKILL campaign against `argus serve`: load, kill, restart, check that nothing acknowledged was lost.

    python3 bench/kill_campaign.py                                  # target/release/argus, 20 rounds of ~3 s
    python3 bench/kill_campaign.py --binary target/debug/argus --rounds 3 --seconds-per-round 2
    python3 bench/kill_campaign.py --rounds 200 --snapshot-every 20000 --keep

A script run by hand (not a CI test); Python 3 standard library only. Run it from the repository root.

It starts `BINARY serve --config bench/serve/argus.toml --policies policies --data-dir D --listen
127.0.0.1:PORT` and waits for `/readyz`. Each round, `--threads` client threads send, for a random time
around `--seconds-per-round`:

- single events (`POST /v1/events`) of the five starter checkpoints, timed now (UTC);
- batches (`POST /v1/events/batch`, JSON arrays of 10-50 events), some holding ids already
  acknowledged and ids repeated inside the batch;
- deliberate duplicates: acknowledged ids sent again (with another body and time): the answer must be
  `duplicate` with the original decision;
- list changes: PUT and DELETE of items of `blocked_devices`, on values each thread owns.

An answer is an acknowledgement when it is a 200 with status `accepted` or `duplicate` (a batch item:
`http_status` 200); a list change when it is a 200 (a DELETE's `404 unknown_item` confirms that the item
is absent). `503 overloaded` is not applied (dropped); `503 timeout`, `shutting_down`, a connection error
or a kill leave the request in doubt: it may or may not be in the log.

Mid-load, the server gets SIGKILL. It is restarted on the same data directory, and then:

1. the list items: every value touched must be in the state of its last acknowledged change (or one of
   the in-doubt changes after it);
2. EVERY event acknowledged so far: `GET /v1/decisions/{id}` must find it (404 = lost), with the
   decision it was acknowledged with (and the same `seq`). This grows with the campaign (pipelined,
   15,000-20,000 lookups/s against the debug build on 2 cores); `--check new` looks up those acknowledged
   since the last check and 5,000 older ones;
3. the in-doubt events: each is looked up, then resent as a client would; the answer must be
   `duplicate` (with the logged decision) when it was in the log and `accepted` when it was not;
4. the number of events in the decision index (`/v1/admin/status`) must be the number of ids known
   to be in the log;
5. a sample of acknowledged ids resent must answer `duplicate` with the original decision.

At the end, the state digest is read live (`GET /v1/admin/digest`, or `state_digest` of
`/v1/admin/status` where that route answers 404); the server is stopped with SIGTERM, restarted (from
its final snapshot), checked once more and the digest read again; stopped again, its `snapshots/`
folder deleted, and restarted, so that it rebuilds the state by replaying the whole log: the three
digests (and engine sequence numbers) must be equal, and the replayed server passes the checks above
too. With `--sigterm-every K`, every K-th round ends with SIGTERM under load instead (a graceful stop
must exit 0, and lose nothing either).

The summary lines start with `kill-campaign:`. The exit status is 1 on any loss or mismatch, 2 when
the server could not be started or stopped.

Settings passed through the environment (ARGUS_*, which override `[server]` in the configuration):
`--retention` (default 3650d: bench/serve/argus.toml keeps closed log segments for 1 minute after a
snapshot covers them, after which their decisions are gone by design, which would read as losses);
`--snapshot-every` (ARGUS_SNAPSHOT_EVERY_EVENTS, default: the configuration's) to have snapshots taken,
and killed, during the campaign; `--fsync` (ARGUS_FSYNC, default: the configuration's, `always`);
`--max-indexed` (ARGUS_MAX_INDEXED_EVENTS, default 10^9, for the same reason as the retention);
`--env KEY=VALUE` for any other (ARGUS_QUEUE_DEPTH=2 ARGUS_REQUEST_TIMEOUT=30ms exercises the 503s).
Server logs go to a `logs/` folder next to the temporary data directory, kept on failure or `--keep`.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

LIST = "blocked_devices"
VALUES_PER_THREAD = 8
DUP_SAMPLE_AFTER_RESTART = 200
EXAMPLES = 5
OLD_SAMPLE = 5000
PIPELINE = 64


def now_rfc3339():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def digest(decision):
    """A short digest of a decision (canonical JSON), so that millions of acknowledgements fit in memory."""
    return hashlib.blake2b(json.dumps(decision, sort_keys=True, separators=(",", ":")).encode(), digest_size=8).digest()


def card(rng):
    """A 16-digit test card number with a valid Luhn check digit (the decoder checks it)."""
    body = "4111" + "".join(str(rng.randrange(10)) for _ in range(11))
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:  # doubled: every second digit from the right, the check digit not counted
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits = body + str((10 - total % 10) % 10)
    return " ".join(digits[i:i + 4] for i in range(0, 16, 4))


def q(s):
    return urllib.parse.quote(s, safe="")


class ConnError(Exception):
    pass


class Client:
    """One keep-alive HTTP/1.1 connection; `ConnError` when the server is gone or the connection broke.

    A connection idle for more than IDLE_REOPEN seconds is replaced before the next request: the server
    closes idle keep-alive connections (`server.header_timeout`, 10 s by default), and a request sent on
    a connection the server is closing would be lost with no way to tell it from a kill."""

    IDLE_REOPEN = 2.0

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.last = 0.0

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def call(self, method, path, body=None):
        if self.conn is not None and time.monotonic() - self.last > self.IDLE_REOPEN:
            self.close()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            headers = {}
            data = None
            if body is not None:
                data = body.encode() if isinstance(body, str) else body
                headers["Content-Type"] = "application/json"
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
            status = resp.status
            self.last = time.monotonic()
            if resp.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise ConnError("%s: %s" % (type(e).__name__, e)) from None
        try:
            j = json.loads(raw) if raw else None
        except ValueError:
            j = None
        return status, j


def get_pipelined(port, paths, timeout=60.0):
    """GETs on one fresh connection, all written before the answers are read (HTTP/1.1 pipelining,
    which spares Python a round trip per lookup): [(status, json)] in order. `ConnError` on any
    trouble (the caller then falls back to one request at a time)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        raise ConnError("%s: %s" % (type(e).__name__, e)) from None
    try:
        s.sendall("".join("GET %s HTTP/1.1\r\nHost: argus\r\n\r\n" % p for p in paths).encode())
        f = s.makefile("rb")
        out = []
        for _ in paths:
            status = int(f.readline().split(None, 2)[1])
            length = None
            while True:
                h = f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"transfer-encoding":
                    raise ValueError("chunked answer")
            if length is None:
                raise ValueError("no Content-Length")
            body = f.read(length)
            if len(body) != length:
                raise ValueError("short body")
            out.append((status, json.loads(body) if body else None))
        return out
    except (OSError, ValueError, IndexError) as e:
        raise ConnError("pipelined GET: %s: %s" % (type(e).__name__, e)) from None
    finally:
        s.close()


def error_code(j):
    if isinstance(j, dict) and isinstance(j.get("error"), dict):
        return j["error"].get("code")
    return None


class Stats:
    """Counters and a few examples of each anomaly, shared by every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.n = {}
        self.examples = {}

    def add(self, key, k=1):
        with self.lock:
            self.n[key] = self.n.get(key, 0) + k

    def bad(self, key, example):
        with self.lock:
            self.n[key] = self.n.get(key, 0) + 1
            ex = self.examples.setdefault(key, [])
            if len(ex) < EXAMPLES:
                ex.append(example)

    def get(self, key):
        return self.n.get(key, 0)


class Campaign:
    """What the clients know: acknowledged events and list changes, and what is in doubt."""

    def __init__(self, run):
        self.run = run
        self.lock = threading.Lock()
        # id -> (seq or None, decision digest)
        self.acked = {}
        self.acked_ids = []
        # id -> event body (sent, not acknowledged, maybe logged)
        self.doubt = {}
        # list value -> {"state": None | (reason, expires), "doubt": [None | (reason, "?")]}
        self.items = {}
        self.list_acked = 0
        self.checked_upto = 0
        self.baseline = 0  # events already in the log of a --data-dir given
        self.lost = set()

    def ack(self, eid, seq, dig):
        with self.lock:
            if eid not in self.acked:
                self.acked[eid] = (seq, dig)
                self.acked_ids.append(eid)
            self.doubt.pop(eid, None)

    def sample_acked(self, rng, k=1):
        with self.lock:
            n = len(self.acked_ids)
            if n == 0:
                return []
            picks = [self.acked_ids[rng.randrange(n)] for _ in range(k)]
            return [(i, self.acked[i]) for i in picks]


class EventMaker:
    def __init__(self, run, rnd, tid, list_values, rng):
        self.prefix = "%s-r%d-t%d-" % (run, rnd, tid)
        self.n = 0
        self.rng = rng
        self.list_values = list_values

    def new_id(self):
        self.n += 1
        return self.prefix + str(self.n)

    def body(self, eid):
        r = self.rng
        u = "u%d" % r.randrange(3000)
        d = r.choice(self.list_values) if r.random() < 0.05 else "d%d" % r.randrange(2000)
        ip = "10.%d.%d.%d" % (r.randrange(8), r.randrange(64), r.randrange(64))
        k = r.randrange(5)
        if k == 0:
            ty, data = "account.login", {"success": r.random() < 0.8, "device": d, "ip": ip, "country": "GB"}
        elif k == 1:
            ty, data = "account.register", {"email": "%s@example.com" % u, "device": d, "ip": ip, "country": "GB"}
        elif k == 2:
            ty, data = "coupon.claim", {"coupon": "WELCOME10", "campaign": "new-user", "value": "10.00", "currency": "EUR", "device": d, "ip": ip}
        elif k == 3:
            ty, data = "order.create", {
                "order": "o-" + eid, "seller": "s%d" % r.randrange(500), "item": "i%d" % r.randrange(5000), "item_count": 1,
                "amount": "%d.50" % (5 + r.randrange(400)), "currency": "EUR", "card": card(r),
                "device": d, "ip": ip}
        else:
            ty, data = "payment.attempt", {
                "order": "o-" + eid, "amount": "%d.00" % (5 + r.randrange(400)), "currency": "EUR",
                "card": card(r), "card_country": "GB", "device": d, "ip": ip}
        return json.dumps({"id": eid, "type": ty, "time": now_rfc3339(), "actor": u, "data": data}, separators=(",", ":"))


def refused(stats, status, j, where):
    """Classifies a non-200 answer: 'drop' (not applied), 'doubt' (maybe applied) or 'bad' (unexpected)."""
    code = error_code(j)
    if status == 503 and code == "overloaded":
        stats.add("overloaded")
        return "drop"
    if status == 503 and code in ("timeout", "shutting_down"):
        stats.add(code)
        return "doubt"
    if status == 503 and code == "log_unavailable":
        stats.bad("log_unavailable", where)
        return "doubt"
    stats.bad("unexpected_answer", "%s: %s %s" % (where, status, json.dumps(j)[:300]))
    return "bad"


class Worker(threading.Thread):
    def __init__(self, camp, stats, port, rnd, tid, seed, stop, killed):
        super().__init__(daemon=True)
        self.camp, self.stats, self.rnd, self.tid = camp, stats, rnd, tid
        self.client = Client(port)
        self.rng = random.Random(seed)
        self.stop, self.killed = stop, killed
        self.values = ["kc-%s-t%d-v%d" % (camp.run, tid, k) for k in range(VALUES_PER_THREAD)]
        self.ev = EventMaker(camp.run, rnd, tid, self.values, self.rng)
        self.changes = 0

    def run(self):
        try:
            while not self.stop.is_set():
                try:
                    x = self.rng.random()
                    if x < 0.40:
                        self.single()
                    elif x < 0.65:
                        self.batch()
                    elif x < 0.80:
                        self.duplicate()
                    else:
                        self.list_change()
                except ConnError as e:
                    if self.killed.is_set() or self.stop.is_set():
                        break
                    self.stats.bad("connection_error_while_up", "round %d thread %d: %s" % (self.rnd, self.tid, e))
                    time.sleep(0.05)
        finally:
            self.client.close()

    def backoff(self):
        time.sleep(self.rng.uniform(0.05, 0.3))

    def post_events(self, bodies):
        """Marks bodies in doubt before sending, so that a kill between the send and the answer is counted."""
        with self.camp.lock:
            for eid, b in bodies:
                self.camp.doubt[eid] = b

    def undoubt(self, ids):
        with self.camp.lock:
            for eid in ids:
                self.camp.doubt.pop(eid, None)

    def single(self):
        eid = self.ev.new_id()
        body = self.ev.body(eid)
        self.post_events([(eid, body)])
        self.stats.add("sent_events")
        try:
            status, j = self.client.call("POST", "/v1/events", body)
        except ConnError:
            self.stats.add("in_doubt_connection")
            raise
        if status == 200 and isinstance(j, dict) and j.get("status") in ("accepted", "duplicate"):
            if j.get("id") != eid:
                self.stats.bad("wrong_id_in_answer", "%s answered for %s" % (j.get("id"), eid))
            if j["status"] == "duplicate":
                self.stats.bad("fresh_id_answered_duplicate", "%s: %s" % (eid, json.dumps(j)[:300]))
            self.camp.ack(eid, j.get("seq"), digest(j.get("decision")))
            self.stats.add("acked_" + j["status"])
            return
        what = refused(self.stats, status, j, "POST /v1/events " + eid)
        if what != "doubt":
            self.undoubt([eid])
        if what == "drop":
            self.backoff()

    def batch(self):
        n = self.rng.randint(10, 50)
        items = []  # (id, body, expected): expected None = fresh, bytes = digest of the known decision, "repeat" = id earlier in this batch
        fresh = []
        for _ in range(n):
            eid = self.ev.new_id()
            b = self.ev.body(eid)
            items.append((eid, b, None))
            fresh.append((eid, b))
        if self.rng.random() < 0.3:
            for eid, (seq, dig) in self.camp.sample_acked(self.rng, self.rng.randint(1, 3)):
                items.insert(self.rng.randrange(len(items) + 1), (eid, self.ev.body(eid), dig))
        if self.rng.random() < 0.2:
            i = self.rng.randrange(len(fresh))
            eid = fresh[i][0]
            pos = next(k for k, it in enumerate(items) if it[0] == eid)
            items.insert(self.rng.randint(pos + 1, len(items)), (eid, self.ev.body(eid), "repeat"))
        self.post_events(fresh)
        self.stats.add("sent_events", len(fresh))
        self.stats.add("sent_batches")
        body = "[" + ",".join(b for _, b, _ in items) + "]"
        try:
            status, j = self.client.call("POST", "/v1/events/batch", body)
        except ConnError:
            self.stats.add("in_doubt_connection", len(fresh))
            raise
        if status != 200:
            what = refused(self.stats, status, j, "POST /v1/events/batch (%d items)" % len(items))
            if what != "doubt":
                self.undoubt(e for e, _ in fresh)
            if what == "drop":
                self.backoff()
            return
        results = j.get("results") if isinstance(j, dict) else None
        if not isinstance(results, list) or len(results) != len(items):
            self.stats.bad("bad_batch_answer", json.dumps(j)[:300])
            return
        first = {}
        for i, ((eid, _, expected), r) in enumerate(zip(items, results)):
            if r.get("index") != i:
                self.stats.bad("bad_batch_answer", "item %d has index %s" % (i, r.get("index")))
            ok = r.get("http_status") == 200 and r.get("status") in ("accepted", "duplicate")
            if not ok:
                what = refused(self.stats, r.get("http_status"), r, "batch item %d %s" % (i, eid))
                if expected is None and what != "doubt":
                    self.undoubt([eid])
                continue
            if r.get("id") != eid:
                self.stats.bad("wrong_id_in_answer", "batch item %d: %s answered for %s" % (i, r.get("id"), eid))
            dig = digest(r.get("decision"))
            if expected == "repeat" and eid not in first:
                expected = None  # its first occurrence was refused: this one is the first to count
            if expected is None:
                if r["status"] == "duplicate":
                    self.stats.bad("fresh_id_answered_duplicate", "batch item %d %s: %s" % (i, eid, json.dumps(r)[:300]))
                self.camp.ack(eid, r.get("seq"), dig)
                first[eid] = dig
                self.stats.add("acked_" + r["status"])
            else:
                want = first.get(eid) if expected == "repeat" else expected
                self.stats.add("duplicate_checks")
                if r["status"] != "duplicate" or (want is not None and dig != want):
                    self.stats.bad("duplicate_mismatch", "batch item %d %s (%s): %s" % (i, eid, "repeat in batch" if expected == "repeat" else "acknowledged before", json.dumps(r)[:300]))

    def duplicate(self):
        picks = self.camp.sample_acked(self.rng)
        if not picks:
            return self.single()
        eid, (seq, dig) = picks[0]
        status, j = self.client.call("POST", "/v1/events", self.ev.body(eid))
        if status == 200 and isinstance(j, dict):
            self.stats.add("duplicate_checks")
            if j.get("status") != "duplicate" or digest(j.get("decision")) != dig:
                self.stats.bad("duplicate_mismatch", "resent %s: %s" % (eid, json.dumps(j)[:300]))
            return
        if refused(self.stats, status, j, "resend " + eid) == "drop":
            self.backoff()

    def list_change(self):
        v = self.rng.choice(self.values)
        with self.camp.lock:
            it = self.camp.items.setdefault(v, {"state": None, "doubt": []})
        path = "/v1/lists/%s/items/%s" % (LIST, q(v))
        present = it["state"] is not None or it["doubt"]
        if present and self.rng.random() < 0.5:
            try:
                status, j = self.client.call("DELETE", path)
            except ConnError:
                it["doubt"].append(None)
                raise
            if status == 200 and isinstance(j, dict) and j.get("removed") is True:
                it["state"], it["doubt"] = None, []
                self.count_change()
            elif status == 404 and error_code(j) == "unknown_item":
                it["state"], it["doubt"] = None, []
                self.stats.add("delete_absent")
            elif refused(self.stats, status, j, "DELETE " + path) == "doubt":
                it["doubt"].append(None)
            else:
                self.backoff()
            return
        self.changes += 1
        reason = "kill campaign %s t%d change %d" % (self.camp.run, self.tid, self.changes)
        b = {"reason": reason}
        if self.rng.random() < 0.8:
            b["ttl"] = "1d"
        try:
            status, j = self.client.call("PUT", path, json.dumps(b))
        except ConnError:
            it["doubt"].append((reason, "?"))
            raise
        if status == 200 and isinstance(j, dict) and j.get("value") == v:
            it["state"], it["doubt"] = (reason, j.get("expires")), []
            if ("ttl" in b) != (j.get("expires") is not None):
                self.stats.bad("list_answer_mismatch", "PUT %s %s: %s" % (v, b, json.dumps(j)))
            self.count_change()
        elif refused(self.stats, status, j, "PUT " + path) == "doubt":
            it["doubt"].append((reason, "?"))
        else:
            self.backoff()

    def count_change(self):
        with self.camp.lock:
            self.camp.list_acked += 1


class StartFailed(Exception):
    pass


ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECOVERED = re.compile(r"argus: recovered from .* \(snapshot at record (\d+), (\d+) log records replayed, (\d+) events indexed\) in (\d+) ms")


class Server:
    def __init__(self, a, data_dir, log_dir, env):
        self.a, self.data_dir, self.log_dir, self.env = a, data_dir, log_dir, env
        self.proc = None
        self.starts = 0
        self.err_path = None

    def cmd(self):
        return [self.a.binary, "serve", "--config", self.a.config, "--policies", self.a.policies,
                "--data-dir", self.data_dir, "--listen", "127.0.0.1:%d" % self.a.port]

    def start(self, label):
        """Starts the server and waits for /readyz: {'recovery_ms', 'ready_ms', 'snapshot_seq', 'replayed', 'indexed', 'torn'}."""
        for attempt in range(10):
            self.starts += 1
            self.err_path = os.path.join(self.log_dir, "serve-%03d-%s.stderr" % (self.starts, label))
            out = open(os.path.join(self.log_dir, "serve-%03d-%s.stdout" % (self.starts, label)), "wb")
            err = open(self.err_path, "wb")
            t0 = time.monotonic()
            self.proc = subprocess.Popen(self.cmd(), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env)
            out.close()
            err.close()
            c = Client(self.a.port, timeout=5)
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    text = self.stderr()
                    if "in use" in text and attempt < 9:
                        time.sleep(0.5)
                        break
                    raise StartFailed("%s exited with %s before it was ready; stderr (%s):\n%s" % (label, rc, self.err_path, text[-3000:]))
                if time.monotonic() - t0 > self.a.ready_timeout:
                    self.kill()
                    raise StartFailed("%s: not ready after %d s; stderr (%s):\n%s" % (label, self.a.ready_timeout, self.err_path, self.stderr()[-3000:]))
                try:
                    status, _ = c.call("GET", "/readyz")
                    if status == 200:
                        c.close()
                        ready_ms = (time.monotonic() - t0) * 1000
                        m = RECOVERED.search(self.stderr())
                        text = self.stderr()
                        return {
                            "ready_ms": ready_ms,
                            "recovery_ms": int(m.group(4)) if m else None,
                            "snapshot_seq": int(m.group(1)) if m else None,
                            "replayed": int(m.group(2)) if m else None,
                            "indexed": int(m.group(3)) if m else None,
                            "torn": text.count("cutting a torn record"),
                            "warnings": [l for l in text.splitlines() if (" WARN " in l or " ERROR " in l or "panicked" in l) and "no API keys" not in l],
                        }
                except ConnError:
                    pass
                time.sleep(0.02)
        raise StartFailed("%s: the address stayed in use" % label)

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return ANSI.sub("", f.read().decode("utf-8", "replace"))
        except OSError:
            return ""

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout):
        """SIGTERM; the exit status (None: did not stop within `timeout`, then killed)."""
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def parallel(port, nthreads, items, fn):
    """Runs fn(client, item) over items on nthreads threads, each with its own connection."""
    items = list(items)
    idx = [0]
    lock = threading.Lock()
    errors = []

    def loop():
        c = Client(port)
        try:
            while True:
                with lock:
                    i = idx[0]
                    idx[0] += 1
                if i >= len(items):
                    return
                for attempt in range(5):
                    try:
                        fn(c, items[i])
                        break
                    except ConnError as e:
                        if attempt == 4:
                            errors.append(str(e))
                        time.sleep(0.2)
        finally:
            c.close()

    ts = [threading.Thread(target=loop, daemon=True) for _ in range(max(1, nthreads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def call_retry(c, stats, method, path, body=None, tries=50):
    """A read or a resend after restart (idempotent): retried on overload, timeout or a broken
    connection (it must get a real answer)."""
    for attempt in range(tries):
        try:
            status, j = c.call(method, path, body)
        except ConnError:
            if attempt >= 4:
                raise
            stats.add("verify_retries")
            time.sleep(0.2)
            continue
        if status == 503 and error_code(j) in ("overloaded", "timeout"):
            stats.add("verify_retries")
            time.sleep(0.2)
            continue
        return status, j
    return status, j


def verify(a, camp, stats, label):
    """Checks the restarted server against what the clients know. Returns a dict of this check's numbers."""
    t0 = time.monotonic()
    port = a.port
    out = {"lost": 0, "decision_mismatch": 0, "list_mismatch": 0, "doubt_in_log": 0, "doubt_not_in_log": 0, "dup_mismatch": 0}
    c = Client(port)

    # 1. List items.
    status, j = call_retry(c, stats, "GET", "/v1/lists/%s" % LIST)
    if status != 200:
        stats.bad("list_mismatch", "%s: GET /v1/lists/%s: %s %s" % (label, LIST, status, j))
        out["list_mismatch"] += 1
    else:
        have = {it["value"]: it for it in j.get("items", [])}
        with camp.lock:
            touched = list(camp.items.items())
        for v, it in touched:
            got = have.get(v)
            actual = None if got is None else (got.get("reason"), got.get("expires"))
            allowed = [it["state"]] + it["doubt"]
            match = any(
                (s is None and actual is None) or (s is not None and actual is not None and s[0] == actual[0] and (s[1] == "?" or s[1] == actual[1]))
                for s in allowed)
            if not match:
                out["list_mismatch"] += 1
                stats.bad("list_mismatch", "%s: %s is %s, last acknowledged %s, in doubt %s" % (label, v, actual, it["state"], it["doubt"]))
            if got is not None and got.get("expired"):
                stats.bad("list_mismatch", "%s: %s expired: %s" % (label, v, got))
                out["list_mismatch"] += 1
            it["state"], it["doubt"] = actual, []

    # 2. Every acknowledged event (with --check new: those acknowledged since the last check, and a
    #    sample of the older ones).
    with camp.lock:
        ids = list(camp.acked_ids)
        acked = camp.acked  # no client is running
    if a.check == "new":
        old = ids[:camp.checked_upto]
        ids = ids[camp.checked_upto:] + random.Random(len(ids)).sample(old, min(OLD_SAMPLE, len(old)))
        camp.checked_upto = len(acked)
    lost = []
    lock = threading.Lock()

    def check(cl, eid, answer=None):
        status, j = answer if answer is not None else call_retry(cl, stats, "GET", "/v1/decisions/" + q(eid))
        if status == 503 and error_code(j) in ("overloaded", "timeout"):
            stats.add("verify_retries")
            status, j = call_retry(cl, stats, "GET", "/v1/decisions/" + q(eid))
        if status == 404 and error_code(j) == "unknown_event":
            with lock:
                lost.append(eid)
            return
        if status != 200 or not isinstance(j, dict):
            stats.bad("decision_mismatch", "%s: GET %s: %s %s" % (label, eid, status, json.dumps(j)[:200]))
            with lock:
                out["decision_mismatch"] += 1
            return
        seq, dig = acked[eid]
        if digest(j.get("decision")) != dig or (seq is not None and j.get("seq") != seq):
            stats.bad("decision_mismatch", "%s: %s acknowledged with seq %s, now %s" % (label, eid, seq, json.dumps(j)[:300]))
            with lock:
                out["decision_mismatch"] += 1

    def check_chunk(cl, chunk):
        try:
            answers = get_pipelined(port, ["/v1/decisions/" + q(eid) for eid in chunk])
        except ConnError:
            stats.add("pipeline_fallbacks")
            answers = [None] * len(chunk)
        for eid, ans in zip(chunk, answers):
            check(cl, eid, ans)

    chunks = [ids[i:i + PIPELINE] for i in range(0, len(ids), PIPELINE)]
    errs = parallel(port, a.verify_threads, chunks, check_chunk)
    for e in errs:
        stats.bad("verify_connection_error", "%s: %s" % (label, e))
    for eid in lost:
        if eid not in camp.lost:  # counted once, however many checks miss it
            camp.lost.add(eid)
            stats.bad("lost", "%s: %s (acknowledged, seq %s)" % (label, eid, acked[eid][0]))
    out["lost"] = len(lost)
    out["checked"] = len(ids)

    # 3. In-doubt events: looked up, then resent as a client would.
    with camp.lock:
        doubts = list(camp.doubt.items())

    def resolve(cl, item):
        eid, body = item
        status, j = call_retry(cl, stats, "GET", "/v1/decisions/" + q(eid))
        in_log = status == 200
        logged = digest(j.get("decision")) if in_log else None
        status2, j2 = call_retry(cl, stats, "POST", "/v1/events", body)
        ok = status2 == 200 and isinstance(j2, dict)
        if ok and in_log and j2.get("status") == "duplicate" and digest(j2.get("decision")) == logged:
            with lock:
                out["doubt_in_log"] += 1
        elif ok and not in_log and j2.get("status") == "accepted":
            with lock:
                out["doubt_not_in_log"] += 1
        elif status2 == 422 and error_code(j2) == "too_late":
            stats.add("doubt_too_late")
            if in_log:
                stats.bad("duplicate_mismatch", "%s: in-doubt %s is in the log but its resend answered too_late" % (label, eid))
                with lock:
                    out["dup_mismatch"] += 1
            with camp.lock:
                camp.doubt.pop(eid, None)
            return
        else:
            stats.bad("duplicate_mismatch", "%s: in-doubt %s (%s in the log) resent: %s %s" % (label, eid, "" if in_log else "not", status2, json.dumps(j2)[:300]))
            with lock:
                out["dup_mismatch"] += 1
        if ok and j2.get("status") in ("accepted", "duplicate"):
            camp.ack(eid, j2.get("seq") if j2.get("status") == "accepted" else (j.get("seq") if in_log else None), digest(j2.get("decision")))

    errs = parallel(port, a.verify_threads, doubts, resolve)
    for e in errs:
        stats.bad("verify_connection_error", "%s: %s" % (label, e))
    stats.add("doubt_in_log", out["doubt_in_log"])
    stats.add("doubt_not_in_log", out["doubt_not_in_log"])

    # 4. The decision index holds exactly the events known to be in the log.
    status, j = call_retry(c, stats, "GET", "/v1/admin/status")
    with camp.lock:
        known = camp.baseline + len(camp.acked) + len(camp.doubt)  # doubts left: resend refused (too_late) or failed
        left = len(camp.doubt)
    if status == 200 and isinstance(j, dict):
        out["status"] = j
        if j.get("log_first_seq", 1) <= 1 and not left and j.get("indexed_events") != known:
            stats.bad("index_count_mismatch", "%s: indexed_events %s, events known to be in the log %d" % (label, j.get("indexed_events"), known))
        if j.get("failed"):
            stats.bad("server_failed", "%s: %s" % (label, j.get("failed")))
    else:
        stats.bad("unexpected_answer", "%s: GET /v1/admin/status: %s %s" % (label, status, j))

    # 5. A sample of acknowledged ids, resent: duplicate, with the original decision.
    rng = random.Random(len(ids))
    sample = camp.sample_acked(rng, min(DUP_SAMPLE_AFTER_RESTART, len(ids)))
    maker = EventMaker(camp.run, 0, 0, ["d0"], rng)
    bodies = [(eid, dig, maker.body(eid)) for eid, (seq, dig) in sample]

    def resend(cl, item):
        eid, dig, body = item
        status, j = call_retry(cl, stats, "POST", "/v1/events", body)
        stats.add("duplicate_checks")
        if status != 200 or not isinstance(j, dict) or j.get("status") != "duplicate" or digest(j.get("decision")) != dig:
            stats.bad("duplicate_mismatch", "%s: resent %s after restart: %s %s" % (label, eid, status, json.dumps(j)[:300]))
            with lock:
                out["dup_mismatch"] += 1

    errs = parallel(port, a.verify_threads, bodies, resend)
    for e in errs:
        stats.bad("verify_connection_error", "%s: %s" % (label, e))
    c.close()
    out["seconds"] = time.monotonic() - t0
    return out


def read_digest(a, stats):
    c = Client(a.port)
    try:
        status, j = call_retry(c, stats, "GET", "/v1/admin/digest")
        if status == 404:
            status, j = call_retry(c, stats, "GET", "/v1/admin/status")
            route = "/v1/admin/status"
        else:
            route = "/v1/admin/digest"
        if status != 200 or not isinstance(j, dict):
            raise StartFailed("reading the digest: %s %s" % (status, j))
        return j.get("state_digest"), j.get("engine_seq"), route
    finally:
        c.close()


METRIC = re.compile(r'^argus_snapshots_total\{outcome="(\w+)"\} (\d+)', re.M)


def snapshot_metrics(a):
    """Background snapshots of this server's life so far, by outcome ({} when /metrics does not answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return {}
    finally:
        conn.close()
    return {k: int(v) for k, v in METRIC.findall(text)}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="target/release/argus")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seconds-per-round", type=float, default=3.0, help="mean load time before each kill (uniform in 0.3x..1.7x)")
    ap.add_argument("--threads", type=int, default=4, help="client threads sending load")
    ap.add_argument("--verify-threads", type=int, default=8)
    ap.add_argument("--check", choices=["all", "new"], default="all",
                    help="after each restart, look up every acknowledged id (all), or those acknowledged since the last check and %d older ones (new)" % OLD_SAMPLE)
    ap.add_argument("--data-dir", help="default: a fresh temporary directory (deleted after a passing run unless --keep)")
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--config", default="bench/serve/argus.toml")
    ap.add_argument("--policies", default="policies")
    ap.add_argument("--retention", default="3650d", help="ARGUS_RETENTION ('' = the configuration's)")
    ap.add_argument("--max-indexed", default="1000000000",
                    help="ARGUS_MAX_INDEXED_EVENTS ('' = the configuration's): the server forgets the decisions of older events by design, which would read as losses")
    ap.add_argument("--snapshot-every", type=int, help="ARGUS_SNAPSHOT_EVERY_EVENTS (default: the configuration's)")
    ap.add_argument("--fsync", help="ARGUS_FSYNC (default: the configuration's)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="another server setting, e.g. ARGUS_QUEUE_DEPTH=8 or ARGUS_REQUEST_TIMEOUT=50ms (repeatable)")
    ap.add_argument("--sigterm-every", type=int, default=0, metavar="K",
                    help="stop every K-th round with SIGTERM under load instead of SIGKILL (default: never)")
    ap.add_argument("--ready-timeout", type=float, default=600)
    ap.add_argument("--stop-timeout", type=float, default=300)
    ap.add_argument("--seed", type=int, help="random seed (default: random); the server's timing is not seeded")
    ap.add_argument("--keep", action="store_true", help="keep the data and log directory")
    a = ap.parse_args()

    if not os.path.exists(a.binary):
        sys.exit("no binary at %s (cargo build --release)" % a.binary)
    a.port = a.port or free_port()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    run = "kc%06x" % rng.randrange(1 << 24)
    work = tempfile.mkdtemp(prefix="argus-kill-")
    data_dir = a.data_dir or os.path.join(work, "data")
    log_dir = os.path.join(work, "logs")
    os.makedirs(log_dir)
    env = dict(os.environ)
    if a.retention:
        env["ARGUS_RETENTION"] = a.retention
    if a.max_indexed:
        env["ARGUS_MAX_INDEXED_EVENTS"] = a.max_indexed
    if a.snapshot_every:
        env["ARGUS_SNAPSHOT_EVERY_EVENTS"] = str(a.snapshot_every)
    if a.fsync:
        env["ARGUS_FSYNC"] = a.fsync
    for kv in a.env:
        k, sep, v = kv.partition("=")
        if not sep:
            sys.exit("--env wants KEY=VALUE, got %r" % kv)
        env[k] = v

    P = "kill-campaign:"
    print(P, "binary %s, rounds %d, threads %d, seconds per round %.1f, seed %d, run %s" % (a.binary, a.rounds, a.threads, a.seconds_per_round, seed, run))
    print(P, "data %s, server logs %s, port %d, env %s" % (data_dir, log_dir, a.port, " ".join("%s=%s" % (k, v) for k, v in env.items() if k.startswith("ARGUS_") and os.environ.get(k) != v) or "-"))
    sys.stdout.flush()

    t_start = time.monotonic()
    stats = Stats()
    camp = Campaign(run)
    server = Server(a, data_dir, log_dir, env)
    restarts = []  # (label, start info)
    rc = 0
    try:
        info = server.start("initial")
        restarts.append(("initial", info))
        camp.baseline = info["indexed"] or 0
        for rnd in range(1, a.rounds + 1):
            stop, killed = threading.Event(), threading.Event()
            workers = [Worker(camp, stats, a.port, rnd, t, rng.randrange(1 << 30), stop, killed) for t in range(a.threads)]
            n0 = len(camp.acked)
            for w in workers:
                w.start()
            load = rng.uniform(0.3, 1.7) * a.seconds_per_round
            time.sleep(load)
            snaps = snapshot_metrics(a)
            for k, v in snaps.items():
                stats.add("snapshots_" + k, v)
            killed.set()  # before the kill, so that no client counts the kill's connection errors as errors
            graceful = a.sigterm_every > 0 and rnd % a.sigterm_every == 0
            how = "SIGKILL"
            if graceful:
                t_stop = time.monotonic()
                code = server.stop(a.stop_timeout)
                how = "SIGTERM (exit %s in %.0f ms)" % (code, (time.monotonic() - t_stop) * 1000)
                if code != 0:
                    stats.bad("graceful_stop", "round %d: SIGTERM under load: exit status %s; stderr %s" % (rnd, code, server.err_path))
            else:
                os.kill(server.proc.pid, signal.SIGKILL)
                server.proc.wait()
            stop.set()
            for w in workers:
                w.join(60)
            stuck = sum(w.is_alive() for w in workers)
            if stuck:
                stats.bad("client_stuck", "round %d: %d client threads did not stop" % (rnd, stuck))
            acked_round = len(camp.acked) - n0
            info = server.start("round%d" % rnd)
            restarts.append(("round %d" % rnd if not graceful else "sigterm %d" % rnd, info))
            if graceful and info["replayed"]:
                print(P, "  note: %s log records replayed after a graceful stop (no final snapshot?)" % info["replayed"])
            chk = verify(a, camp, stats, "round %d" % rnd)
            print(P, "round %d: load %.1f s, %s, acknowledged %d (%.0f/s), snapshots this life %s, in doubt at the stop %d, recovered in %s ms (snapshot at %s, replayed %s, torn tails cut %d), ready in %.0f ms; checked %d: lost %d, decision mismatches %d, list mismatches %d, in doubt found in log %d / not %d (%.1f s)" % (
                rnd, load, how, acked_round, acked_round / load, " ".join("%s %d" % kv for kv in sorted(snaps.items())) or "0", chk["doubt_in_log"] + chk["doubt_not_in_log"], info["recovery_ms"], info["snapshot_seq"], info["replayed"], info["torn"], info["ready_ms"],
                chk["checked"], chk["lost"], chk["decision_mismatch"], chk["list_mismatch"], chk["doubt_in_log"], chk["doubt_not_in_log"], chk["seconds"]))
            for w in info["warnings"]:
                if "cutting a torn record" not in w:
                    print(P, "  server warning: %s" % w[:300])
            sys.stdout.flush()

        # The end: digests live, after a graceful restart (final snapshot), and after a full replay.
        d_live, seq_live, route = read_digest(a, stats)
        code = server.stop(a.stop_timeout)
        if code != 0:
            stats.bad("graceful_stop", "SIGTERM: exit status %s; stderr %s" % (code, server.err_path))
        info = server.start("graceful")
        restarts.append(("after SIGTERM", info))
        verify(a, camp, stats, "after SIGTERM")
        d_snap, seq_snap, _ = read_digest(a, stats)
        code = server.stop(a.stop_timeout)
        if code != 0:
            stats.bad("graceful_stop", "SIGTERM: exit status %s; stderr %s" % (code, server.err_path))
        snaps = os.path.join(data_dir, "snapshots")
        n_snaps = len(os.listdir(snaps)) if os.path.isdir(snaps) else 0
        shutil.rmtree(snaps, ignore_errors=True)
        info = server.start("replay")
        restarts.append(("full replay", info))
        d_replay, seq_replay, _ = read_digest(a, stats)
        verify(a, camp, stats, "after full replay")
        code = server.stop(a.stop_timeout)
        if code != 0:
            stats.bad("graceful_stop", "SIGTERM: exit status %s; stderr %s" % (code, server.err_path))
        digests_equal = d_live == d_snap == d_replay and seq_live == seq_snap == seq_replay
        if not digests_equal:
            stats.bad("digest_mismatch", "live %s (engine_seq %s), after SIGTERM %s (%s), full replay %s (%s)" % (d_live, seq_live, d_snap, seq_snap, d_replay, seq_replay))
    except StartFailed as e:
        print(P, "server failure: %s" % e)
        server.kill()
        rc = 2
        d_live = d_snap = d_replay = None
        digests_equal = False
        route = "-"
        n_snaps = 0
    except BaseException:
        server.kill()
        raise

    wall = time.monotonic() - t_start
    n = stats.n
    lost = stats.get("lost")
    kills = sum(1 for l, _ in restarts if l.startswith("round"))
    rec = [i["recovery_ms"] for l, i in restarts if l.startswith("round") and i["recovery_ms"] is not None]
    ready = [i["ready_ms"] for l, i in restarts if l.startswith("round")]
    print(P, "SUMMARY")
    print(P, "rounds %d, SIGKILLs %d, SIGTERMs under load %d, restarts %d, wall time %.1f s" % (
        a.rounds, kills, sum(1 for l, _ in restarts if l.startswith("sigterm")), len(restarts) - 1, wall))
    print(P, "acknowledged events %d (accepted %d, duplicate answers to fresh ids %d, in-doubt resends %d), batches sent %d, acknowledged list changes %d" % (
        len(camp.acked), stats.get("acked_accepted"), stats.get("fresh_id_answered_duplicate"), stats.get("doubt_in_log") + stats.get("doubt_not_in_log"), stats.get("sent_batches"), camp.list_acked))
    print(P, "lost %d (must be 0), decision mismatches %d, list mismatches %d, index count mismatches %d" % (lost, stats.get("decision_mismatch"), stats.get("list_mismatch"), stats.get("index_count_mismatch")))
    print(P, "duplicate checks %d, duplicate-answer mismatches %d" % (stats.get("duplicate_checks"), stats.get("duplicate_mismatch")))
    print(P, "in doubt at the stops %d: found in the log %d, not in the log %d, refused too_late on resend %d" % (
        stats.get("doubt_in_log") + stats.get("doubt_not_in_log") + stats.get("doubt_too_late"), stats.get("doubt_in_log"), stats.get("doubt_not_in_log"), stats.get("doubt_too_late")))
    print(P, "background snapshots before the stops: ok %d, restarted %d, failed %d" % (stats.get("snapshots_ok"), stats.get("snapshots_restarted"), stats.get("snapshots_failed")))
    print(P, "refusals under load: overloaded %d, timeout %d, shutting_down %d; unexpected answers %d, connection errors while up %d; check retries %d, pipeline fallbacks %d" % (
        stats.get("overloaded"), stats.get("timeout"), stats.get("shutting_down"), stats.get("unexpected_answer"), stats.get("connection_error_while_up"),
        stats.get("verify_retries"), stats.get("pipeline_fallbacks")))
    if rec:
        srt = sorted(rec)
        print(P, "recovery ms after SIGKILL: min %d, median %d, max %d; all: %s" % (srt[0], srt[len(srt) // 2], srt[-1], " ".join(str(x) for x in rec)))
        srt = sorted(ready)
        print(P, "restart to ready ms after SIGKILL: min %.0f, median %.0f, max %.0f" % (srt[0], srt[len(srt) // 2], srt[-1]))
    for l, i in restarts:
        if not l.startswith("round"):
            print(P, "recovery ms %s: %s (snapshot at record %s, %s log records replayed, %s events indexed)" % (l, i["recovery_ms"], i["snapshot_seq"], i["replayed"], i["indexed"]))
    print(P, "state digest (%s): live %s, after SIGTERM restart %s, after full replay (%d snapshots deleted) %s: %s" % (
        route, d_live, d_snap, n_snaps, d_replay, "equal" if digests_equal else "DIFFERENT"))
    failures = ["lost", "decision_mismatch", "list_mismatch", "index_count_mismatch", "duplicate_mismatch", "fresh_id_answered_duplicate",
                "wrong_id_in_answer", "bad_batch_answer", "unexpected_answer", "log_unavailable", "server_failed", "digest_mismatch",
                "graceful_stop", "list_answer_mismatch", "verify_connection_error", "client_stuck", "connection_error_while_up"]
    bad = [k for k in failures if n.get(k)]
    for k in bad:
        print(P, "FAIL %s: %d" % (k, n[k]))
        for ex in stats.examples.get(k, []):
            print(P, "    e.g. %s" % ex)
    if rc == 0 and bad:
        rc = 1
    print(P, "PASS" if rc == 0 else "FAIL", "(exit %d)" % rc)
    if rc == 0 and not a.keep and not a.data_dir:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(P, "kept %s" % work)
    sys.exit(rc)


if __name__ == "__main__":
    main()
