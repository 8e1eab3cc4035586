//! The partition invariant on the engine's two entry points: `Engine::process` (one event at a time:
//! the server, `argus test`) and `Engine::run` (batches, the partitions on worker threads: replay) give
//! the same feature vectors, refusals and state for any partition count, on a stream built to reach
//! every corner: late events within the allowed lateness, duplicates, delayed labels, lifetime state
//! that goes idle past `idle_ttl` (and must restart), exact, bucketed and lifetime series, keys
//! that leave memory, the entity graph (a global stage: in `run` on a worker of its own) with its
//! cluster features and findings, the semi-supervised signals with neighbour aggregates (a stage
//! that reads the features: in `run` on the coordinating thread) and the text stage.

use argus_engine::{Config, Engine, ProcessError, Processed, Source};
use argus_event::{Decoder, Event, Value};
use serde_json::json;
use std::path::Path;

const CONFIG: &str = r#"
[entities]
kinds = ["terminal"]

[[event_types]]
name = "payment.attempt"
[event_types.fields]
terminal = { type = "id", entity = "terminal" }
fraud = { type = "int", label = { name = "fraud", delay = "2h" } }
note = { type = "string" }

[settings]
allowed_lateness = "10m"
idle_ttl = "6h"

[[features]]
name = "user_payments_1h"
kind = "count"
events = ["payment.attempt"]
key = ["actor"]
window = "1h"

[[features]]
name = "user_amount_3h_bucketed"
kind = "sum"
events = ["payment.attempt"]
key = ["actor"]
value = "amount"
window = "3h"
mode = "bucketed"
buckets = 6

[[features]]
name = "user_age"
kind = "age"
events = ["payment.attempt"]
key = ["actor"]

[[features]]
name = "user_since_last"
kind = "since_last"
events = ["payment.attempt"]
key = ["actor"]

[[features]]
name = "user_last_terminal"
kind = "last_value"
events = ["payment.attempt"]
key = ["actor"]
value = "terminal"

[[features]]
name = "terminal_frauds_1d"
kind = "sum"
events = ["label.fraud"]
key = ["terminal"]
value = "value"
window = "1d"

[[features]]
name = "terminal_users_2h"
kind = "distinct"
events = ["payment.attempt"]
key = ["terminal"]
value = "actor"
window = "2h"

[[features]]
name = "user_terminal_payments_30m"
kind = "count"
events = ["payment.attempt"]
key = ["actor", "terminal"]
window = "30m"

[[features]]
name = "fraud_share"
kind = "ratio"
numerator = "terminal_frauds_1d"
denominator = "terminal_users_2h"

[graph]
window = "1d"
refresh_every = "1h"
rebuild_every = "6h"
max_share = 60
min_cluster = 3

[[graph.links]]
field = "terminal"

# Similarity edges: accounts whose notes are near-duplicates are linked.
[[graph.links]]
text = "note"

[[graph.confirmed]]
event = "label.fraud"
field = "terminal"

[graph.propagation]
events = ["payment.attempt"]
column = "terminal"
attribute = "amount"
scale = 100
half_life = "1d"
max_neighbors = 16

[[graph.propagation.aggregates]]
feature = "user_payments_1h"
above = 2

[[text.duplicates]]
name = "note"
events = ["payment.attempt"]
field = "note"
window = "3h"
threshold = 0.5

[[text.hashed]]
name = "note"
events = ["payment.attempt"]
field = "note"
buckets = 8
"#;

fn engine(partitions: usize) -> Engine {
    engine_with(partitions, CONFIG)
}

fn engine_with(partitions: usize, config: &str) -> Engine {
    let cfg = format!("[engine]\npartitions = {partitions}\n{config}");
    Engine::new(Config::from_str(&cfg, Path::new(".")).expect("test config is valid"))
}

/// [`CONFIG`] without the neighbour aggregates: no stage reads the keyed features, so
/// [`Engine::run`] runs the stages on a worker of their own (the graph reading the text stage's
/// groups there).
fn offloaded() -> String {
    let cut = "[[graph.propagation.aggregates]]\nfeature = \"user_payments_1h\"\nabove = 2\n";
    assert!(CONFIG.contains(cut));
    CONFIG.replace(cut, "")
}

/// A deterministic stream of JSON events: 400 users (some going quiet for hours), 40 terminals,
/// labels on some payments, late events and repeated ids.
fn stream() -> Vec<serde_json::Value> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut t = 1_767_225_600_000i64;
    let mut out = Vec::new();
    for i in 0..6_000u64 {
        // Mostly seconds apart; now and then a gap of hours, so lifetime state goes idle.
        t += if next(500) == 0 {
            7 * 3_600_000
        } else {
            next(20_000) as i64
        };
        let late = if next(20) == 0 {
            next(1_000_000) as i64
        } else {
            0
        };
        let id = if i > 10 && next(100) == 0 {
            format!("e{}", i - 1 - next(10))
        } else {
            format!("e{i}")
        };
        let mut data = json!({"amount": format!("{}.{:02}", next(300), next(100)),
            "terminal": format!("T{}", next(40)), "card": "4111 1111 1111 1111"});
        if next(8) == 0 {
            data["fraud"] = json!(next(2));
        }
        if next(5) == 0 {
            const NOTES: [&str; 4] = [
                "gift for my brother please wrap it nicely thanks",
                "gift for my brother please wrap it nicely thank you",
                "leave the parcel with the neighbour at number twelve",
                "urgent order for the office party on friday evening",
            ];
            data["note"] = json!(NOTES[next(4) as usize]);
        }
        out.push(json!({"id": id, "type": "payment.attempt",
            "time": argus_event::time::format_rfc3339(t - late),
            "actor": format!("u{}", next(400)), "data": data}));
    }
    out
}

/// Per event: its sequence number, feature vector and findings, or the refusal's code.
type Row = Result<(u64, Vec<Value>, String), String>;

fn by_process(partitions: usize, docs: &[serde_json::Value]) -> (Vec<Row>, Engine) {
    by_process_with(engine(partitions), docs)
}

fn by_process_with(mut e: Engine, docs: &[serde_json::Value]) -> (Vec<Row>, Engine) {
    let mut rows = Vec::new();
    for d in docs {
        let ev = e.decoder().decode_json(d).expect("valid event");
        rows.push(match e.process(&ev) {
            Ok(p) => Ok((p.seq, p.features.to_vec(), format!("{:?}", p.findings))),
            Err(err) => Err(err.code().to_string()),
        });
    }
    (rows, e)
}

struct Docs<'a> {
    docs: std::slice::Iter<'a, serde_json::Value>,
    rows: Vec<Row>,
}

impl Source for Docs<'_> {
    type Error = std::convert::Infallible;
    fn next(&mut self, decoder: &Decoder) -> Result<Option<Event>, Self::Error> {
        Ok(self
            .docs
            .next()
            .map(|d| decoder.decode_json(d).expect("valid event")))
    }
    fn refused(&mut self, _ev: &Event, e: ProcessError) -> Result<(), Self::Error> {
        self.rows.push(Err(e.code().to_string()));
        Ok(())
    }
    fn processed(&mut self, p: Processed<'_>) -> Result<(), Self::Error> {
        self.rows.push(Ok((
            p.seq,
            p.features.to_vec(),
            format!("{:?}", p.findings),
        )));
        Ok(())
    }
}

fn by_run(partitions: usize, docs: &[serde_json::Value]) -> (Vec<Row>, Engine) {
    by_run_with(engine(partitions), docs)
}

fn by_run_with(mut e: Engine, docs: &[serde_json::Value]) -> (Vec<Row>, Engine) {
    let mut src = Docs {
        docs: docs.iter(),
        rows: Vec::new(),
    };
    let Ok(_) = e.run(&mut src);
    (src.rows, e)
}

#[test]
fn process_and_run_agree_for_every_partition_count() {
    let docs = stream();
    let (rows, reference) = by_process(1, &docs);
    // The premises: refusals of both kinds, released labels, idle lifetime state that restarted
    // (an age of 0 for a user seen before), and keys removed from memory.
    let refused = |code: &str| {
        rows.iter()
            .filter(|r| r.as_ref().err().map(String::as_str) == Some(code))
            .count()
    };
    assert!(refused("duplicate_event") > 10 && refused("too_late") > 10);
    assert!(reference.counters().labels_released > 100);
    assert!(reference.feature_state().stats().keys_expired > 100);
    let found = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(_, _, f)| f != "[]")
        .count();
    assert!(found > 0, "the graph reported no findings");
    let restarted = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(_, f, _)| f[2] == Value::Int(0))
        .count();
    assert!(
        restarted > 400,
        "lifetime state restarts after idle_ttl: {restarted}"
    );
    let digest = reference.state_digest();
    let snapshot = reference.snapshot();
    for p in [1, 2, 3, 4, 7] {
        for (how, (r, e)) in [("process", by_process(p, &docs)), ("run", by_run(p, &docs))] {
            assert!(r == rows, "{how} with P={p}: other answers");
            assert_eq!(e.state_digest(), digest, "{how} with P={p}: other state");
            assert!(
                e.snapshot() == snapshot,
                "{how} with P={p}: other snapshot bytes"
            );
        }
    }
}

#[test]
fn a_snapshot_restores_under_another_partition_count_and_continues_exactly() {
    let docs = stream();
    let (rows, whole) = by_process(1, &docs);
    let half = docs.len() / 2;
    let (_, first) = by_run(2, &docs[..half]);
    let cfg = format!("[engine]\npartitions = 5\n{CONFIG}");
    let mut e = Engine::restore(
        Config::from_str(&cfg, Path::new(".")).unwrap(),
        &first.snapshot(),
    )
    .expect("restores under another partition count");
    assert_eq!(e.feature_state().partitions(), 5);
    let mut src = Docs {
        docs: docs[half..].iter(),
        rows: Vec::new(),
    };
    let Ok(_) = e.run(&mut src);
    assert!(src.rows[..] == rows[half..]);
    assert_eq!(e.state_digest(), whole.state_digest());
}

/// The stages on a worker of their own (no stage reads the keyed features): the graph links the
/// text stage's near-duplicate groups there as it does in line, at every partition count.
#[test]
fn similarity_edges_agree_when_the_stages_run_on_their_worker() {
    let docs = stream();
    let cfg = offloaded();
    let (rows, reference) = by_process_with(engine_with(1, &cfg), &docs);
    let fs = reference.features().clone();
    let size = fs.index_of("graph_cluster_size").unwrap();
    let group = fs.index_of("text_note_group").unwrap();
    assert!(fs
        .index_of("graph_cluster_accounts_per_text_note")
        .is_some());
    // The premises: notes were grouped, and their groups joined accounts into clusters.
    let grouped = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(_, f, _)| matches!(f[group], Value::Str(_)))
        .count();
    assert!(grouped > 500, "{grouped} notes grouped");
    // The links made a difference: without the text link, some clusters are other sizes.
    let cut = "[[graph.links]]\ntext = \"note\"\n";
    assert!(cfg.contains(cut));
    let (plain, _) = by_process_with(engine_with(1, &cfg.replace(cut, "")), &docs);
    let fs_plain = {
        let cfg = format!("[engine]\npartitions = 1\n{}", cfg.replace(cut, ""));
        Config::from_str(&cfg, Path::new("."))
            .unwrap()
            .features
            .clone()
    };
    let size_plain = fs_plain.index_of("graph_cluster_size").unwrap();
    let differ = rows
        .iter()
        .zip(&plain)
        .filter(|(a, b)| match (a, b) {
            (Ok((_, f, _)), Ok((_, g, _))) => f[size] != g[size_plain],
            _ => false,
        })
        .count();
    assert!(
        differ > 100,
        "{differ} events' clusters changed by the text link"
    );
    for p in [1, 3] {
        let (r, e) = by_run_with(engine_with(p, &cfg), &docs);
        assert!(r == rows, "run with P={p}: other answers");
        assert_eq!(e.state_digest(), reference.state_digest());
    }
}

/// Three nodes of a sharded cluster, each holding a third of the partitions, exchanging their
/// shares event by event (`begin_shared` on every node, then `finish_shared` with the others'
/// shares), give the sequence numbers, vectors, refusals and findings of one engine holding every
/// partition — also after a partition changes hands mid-stream (its new holder rebuilds it from
/// the old holder's snapshot and the events since) and after a node restarts from its own snapshot.
/// Here a stage reads the keyed features, so every node runs the global stages.
#[test]
fn sharded_nodes_exchanging_shares_equal_one_engine() {
    let units = sharded_against_one_engine(CONFIG);
    assert_eq!(units, 6, "the stages are no unit of their own");
}

/// The same with global stages that read only the event: they are a unit of their own (unit 6 of
/// 6 partitions), held by one node — the stages' worker — which runs them and shares their
/// features and findings; the unit moves to another node with partition 0 mid-stream, and the
/// findings every node stores, the vectors and the stages' state equal one engine's.
#[test]
fn sharded_nodes_with_one_stages_worker_equal_one_engine() {
    let units = sharded_against_one_engine(&offloaded());
    assert_eq!(units, 7, "the stages are unit 6");
}

/// The body of the two tests above; the number of units the nodes placed.
fn sharded_against_one_engine(config: &str) -> usize {
    const P: usize = 6;
    let docs = stream();
    let (want, whole) = by_process_with(engine_with(P, config), &docs);
    let units = whole.units();
    // Which node holds each unit: unit u on node u % 3 (the stages, unit P, on node 0).
    let mut holder: Vec<usize> = (0..units).map(|u| u % 3).collect();
    let mut nodes: Vec<Engine> = (0..3)
        .map(|i| {
            let mut e = engine_with(P, config);
            for u in (0..units).filter(|u| holder[*u] != i) {
                e.release_partition(u);
            }
            e
        })
        .collect();
    let mut got: Vec<Vec<Row>> = vec![Vec::new(); 3];
    let mut snap_of_0: Option<(usize, Vec<u8>)> = None;
    let mut exchanged = 0usize;
    let mut shares: std::collections::HashMap<(u64, usize), Vec<Value>> = Default::default();
    let mut pending: Vec<Vec<Result<argus_engine::Begun, String>>> = vec![Vec::new(); 3];
    // The units moving from node 0 to node 1 at event 3,000: partition 0, and the stages.
    let moving: Vec<usize> = [0, P].into_iter().filter(|u| *u < units).collect();
    for (i, d) in docs.iter().enumerate() {
        if i == 2_000 {
            snap_of_0 = Some((i, nodes[0].snapshot()));
        }
        if i == 3_000 {
            // They move from node 0 to node 1: node 1 rebuilds them from node 0's snapshot and
            // the events since, as of this point.
            let (from, bytes) = snap_of_0.take().expect("taken at 2,000");
            let mut scratch = Engine::restore(nodes[0].config.clone(), &bytes).expect("restores");
            let held = scratch.units_held();
            assert!(moving.iter().all(|u| held[*u]) && !held[1]);
            for d in &docs[from..i] {
                let ev = scratch.decoder().decode_json(d).expect("valid event");
                let _ = scratch.apply(&ev);
            }
            for &u in &moving {
                nodes[1].adopt_partition(u, &mut scratch);
                nodes[0].release_partition(u);
                holder[u] = 1;
                assert!(nodes[1].units_held()[u] && !nodes[0].units_held()[u]);
            }
        }
        if i == 4_000 {
            // Nodes 1 and 2 restart from their own snapshots.
            for n in [1, 2] {
                let bytes = nodes[n].snapshot();
                nodes[n] = Engine::restore(nodes[n].config.clone(), &bytes).expect("restores");
                assert_eq!(
                    nodes[n].units_held(),
                    (0..units).map(|u| holder[u] == n).collect::<Vec<_>>()
                );
            }
        }
        let mut begun = Vec::new();
        for n in nodes.iter_mut() {
            let ev = n.decoder().decode_json(d).expect("valid event");
            begun.push(n.begin_shared(&ev).map_err(|e| e.code().to_string()));
        }
        let first_seq = begun[0].as_ref().ok().map(|b| b.seq);
        for b in begun.iter().flatten() {
            assert_eq!(Some(b.seq), first_seq, "the nodes agree on the sequence");
            for (p, s) in &b.shares {
                assert!(
                    shares.insert((b.seq, *p), s.clone()).is_none(),
                    "one holder per unit"
                );
            }
        }
        for (n, b) in begun.into_iter().enumerate() {
            pending[n].push(b);
        }
        // The nodes begin a few events before finishing them (as a node does with the entries
        // waiting in its queue); a snapshot, a handoff or a restart happens with nothing pending.
        let flush = (i + 1) % 7 == 0 || [1_999, 2_999, 3_999, docs.len() - 1].contains(&i);
        if !flush {
            continue;
        }
        for (n, node) in nodes.iter_mut().enumerate() {
            for b in pending[n].drain(..) {
                let row = match b {
                    Err(code) => Err(code),
                    Ok(b) => {
                        for p in &b.remote {
                            assert!(shares.contains_key(&(b.seq, *p)), "unit {p} has a holder");
                        }
                        exchanged += b.remote.len();
                        let seq = b.seq;
                        let p = node
                            .finish_shared(b, |p| shares.get(&(seq, p)).map(Vec::as_slice), true)
                            .expect("every share arrived");
                        Ok((p.seq, p.features.to_vec(), format!("{:?}", p.findings)))
                    }
                };
                got[n].push(row);
            }
        }
    }
    assert!(exchanged > 5_000, "the nodes exchanged shares: {exchanged}");
    let found = want
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.2 != "[]"))
        .count();
    assert!(found > 0, "the stream makes findings");
    for (n, rows) in got.iter().enumerate() {
        assert_eq!(rows.len(), want.len());
        for (i, (a, b)) in rows.iter().zip(&want).enumerate() {
            assert_eq!(a, b, "node {n}, event {i}");
        }
    }
    // The feature tables: every partition's keys and values on its holder equal the whole engine's,
    // and the rest of the state is the same on every node (the digests split by partition; they do
    // not depend on the partition count an engine runs with); the stages' state, when a unit, on
    // its holder.
    let (rest, parts) = whole.split_digest(P);
    assert_eq!(parts.len(), units);
    assert_eq!(
        by_process_with(engine_with(1, config), &docs)
            .1
            .split_digest(P),
        (rest, parts.clone())
    );
    let mut covered = vec![false; units];
    for (n, node) in nodes.iter().enumerate() {
        let (r, mine) = node.split_digest(P);
        assert_eq!(r, rest, "node {n}: the unkeyed state differs");
        for (q, d) in mine.iter().enumerate() {
            if let Some(d) = d {
                assert_eq!(Some(*d), parts[q], "node {n}, unit {q}");
                covered[q] = true;
            }
        }
    }
    assert_eq!(covered, vec![true; units], "every unit is held somewhere");
    // A node's digest of a partition differs once one of its keys does.
    let mut other = engine_with(P, config);
    let ev = other.decoder().decode_json(&docs[0]).expect("valid event");
    let _ = other.process(&ev);
    assert_ne!(other.split_digest(P).1, parts);
    units
}
