//! The entity graph in the engine (`[graph]`): shared-attribute clusters, confirmed labels, dense
//! blocks over a window with findings, expiry, snapshot/restore, determinism, and graph features read
//! by rules and models.

use argus_engine::{Config, Engine, Finding};
use argus_model::ensemble::{Compare, Ensemble, Link, Missing, Node};
use std::path::Path;
use std::sync::Arc;

const GRAPH: &str = r#"
[graph]
window = "2d"
refresh_every = "1h"
rebuild_every = "1d"
max_share = 5
min_cluster = 4

[[graph.links]]
field = "device"
events = ["account.register", "coupon.claim", "item.click", "order.create"]

[[graph.links]]
field = "device"
events = ["account.login"]
filter = [{ field = "success", op = "==", value = true }]

[[graph.links]]
field = "payout_account"

[[graph.confirmed]]
event = "fraud.confirmed"
field = "subject"

[[graph.blocks]]
name = "clicks"
events = ["item.click"]
column = "item"
window = "10m"
refresh_every = "10m"
repeats = "once"
min_density = 2.0
min_rows = 5
min_fill = 0.8
batch = 4
"#;

/// A text field on reviews and its near-duplicate declaration `review`.
const REVIEW_TEXT: &str = r#"
[[event_types]]
name = "review.create"
[event_types.fields]
text = { type = "string" }

[[text.duplicates]]
name = "review"
events = ["review.create"]
field = "text"
window = "1d"
threshold = 0.6
"#;

const H: i64 = 3_600_000;
const T0: i64 = 1_780_000_000_000;

fn config(extra: &str) -> Result<Config, String> {
    Config::from_str(&format!("{GRAPH}\n{extra}"), Path::new(".")).map_err(|e| e.to_string())
}

struct Run {
    engine: Engine,
    n: u64,
    findings: Vec<Finding>,
}

impl Run {
    fn new(cfg: Config) -> Run {
        Run {
            engine: Engine::new(cfg),
            n: 0,
            findings: Vec::new(),
        }
    }

    /// Processes one event; returns the named features.
    fn ev(
        &mut self,
        ty: &str,
        actor: &str,
        t: i64,
        data: serde_json::Value,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.n += 1;
        let ev = self.engine.decoder().decode_json(&serde_json::json!({"id": format!("e{}", self.n), "type": ty, "time": t, "actor": actor, "data": data})).unwrap();
        let fs = self.engine.features().clone();
        let p = self.engine.process(&ev).unwrap();
        self.findings.extend(p.findings);
        let out = p.features;
        fs.readable(ev.ty as usize)
            .into_iter()
            .filter(|&i| fs.features[i].name.starts_with("graph_"))
            .map(|i| {
                (
                    fs.features[i].name.clone(),
                    argus_policy::policy::to_json(&argus_policy::policy::to_val(&out[i])),
                )
            })
            .collect()
    }
}

fn int(m: &serde_json::Map<String, serde_json::Value>, k: &str) -> i64 {
    m[k].as_i64()
        .unwrap_or_else(|| panic!("{k}: {:?}", m.get(k)))
}

fn num(m: &serde_json::Map<String, serde_json::Value>, k: &str) -> f64 {
    m[k].as_f64()
        .unwrap_or_else(|| panic!("{k}: {:?}", m.get(k)))
}

#[test]
fn accounts_sharing_devices_are_one_cluster_hubs_and_failed_logins_do_not_link() {
    let mut r = Run::new(config("").unwrap());
    // Five accounts log in on one device: one cluster of five (read on the fifth's own event).
    let mut last = serde_json::Map::new();
    for i in 0..5 {
        last = r.ev(
            "account.login",
            &format!("u{i}"),
            T0 + i * 1000,
            serde_json::json!({"success": true, "device": "d-ring"}),
        );
    }
    assert_eq!(int(&last, "graph_cluster_size"), 5);
    assert!((num(&last, "graph_cluster_accounts_per_value") - 5.0).abs() < 1e-12);
    assert!((num(&last, "graph_cluster_accounts_per_device") - 5.0).abs() < 1e-12);
    assert!(
        last["graph_cluster_accounts_per_payout_account"].is_null(),
        "no payout account seen: no ratio"
    );
    // A sixth sharer exceeds max_share = 5: the device links no more accounts.
    let m = r.ev(
        "account.login",
        "u5",
        T0 + 5000,
        serde_json::json!({"success": true, "device": "d-ring"}),
    );
    assert_eq!(int(&m, "graph_cluster_size"), 1);
    // A stranger's failed logins from the ring's device link nobody.
    let m = r.ev(
        "account.login",
        "stranger",
        T0 + 10_000,
        serde_json::json!({"success": false, "device": "d-ring"}),
    );
    assert_eq!(int(&m, "graph_cluster_size"), 1);
    // Payout accounts link too: another account joins through the ring's payout account.
    r.ev(
        "payout.request",
        "u0",
        T0 + 11_000,
        serde_json::json!({"payout_account": "pa1", "amount": "10.00"}),
    );
    let m = r.ev(
        "payout.request",
        "u7",
        T0 + 12_000,
        serde_json::json!({"payout_account": "pa1", "amount": "10.00"}),
    );
    assert_eq!(int(&m, "graph_cluster_size"), 6);
    // Six accounts; one device, one payout account; u5's own device is not in the cluster.
    assert!((num(&m, "graph_cluster_accounts_per_device") - 6.0).abs() < 1e-12);
    assert!((num(&m, "graph_cluster_accounts_per_payout_account") - 6.0).abs() < 1e-12);
    assert!(
        (num(&m, "graph_cluster_accounts_per_value") - 3.0).abs() < 1e-12,
        "{m:?}"
    );
    // The hourly refresh reports the cluster of six, with its shared values.
    r.ev(
        "account.login",
        "u9",
        T0 + 2 * H,
        serde_json::json!({"success": true, "device": "d9"}),
    );
    let clusters: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.detector == "cluster")
        .collect();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0].accounts, ["u0", "u1", "u2", "u3", "u4", "u7"]);
    // Its shared values: the payout account; the device is over max_share, no longer a link.
    assert_eq!(clusters[0].objects, ["payout_account:pa1"]);
    // The device is shared by 6 > max_share accounts: after the daily rebuild it is a hub and links
    // nobody; the payout account still ties u0 and u7.
    let m = r.ev(
        "account.login",
        "u7",
        T0 + 25 * H,
        serde_json::json!({"success": true, "device": "d-own"}),
    );
    assert_eq!(int(&m, "graph_cluster_size"), 2);
    let m = r.ev(
        "account.login",
        "u1",
        T0 + 25 * H + 1,
        serde_json::json!({"success": true, "device": "d-own1"}),
    );
    assert_eq!(int(&m, "graph_cluster_size"), 1);
}

#[test]
fn confirmed_labels_give_the_cluster_a_fraud_rate() {
    let mut r = Run::new(config("").unwrap());
    for i in 0..4 {
        r.ev(
            "account.login",
            &format!("u{i}"),
            T0 + i * 1000,
            serde_json::json!({"success": true, "device": "d1"}),
        );
    }
    r.ev(
        "fraud.confirmed",
        "analyst",
        T0 + 5000,
        serde_json::json!({"subject_kind": "user", "subject": "u1"}),
    );
    let m = r.ev(
        "account.login",
        "u3",
        T0 + 6000,
        serde_json::json!({"success": true, "device": "d1"}),
    );
    assert_eq!(int(&m, "graph_cluster_confirmed"), 1);
    assert!((num(&m, "graph_cluster_fraud_rate") - 0.25).abs() < 1e-12);
}

/// Twelve accounts click the same three items within a minute (lockstep) among 200 honest users
/// browsing at random: the block is found, its accounts carry its density, findings name them, and
/// the honest users are in none.
fn lockstep_world(r: &mut Run) {
    let mut s = 11u64;
    let mut rnd = |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n
    };
    for k in 0..400 {
        let u = format!("h{}", rnd(200));
        r.ev(
            "item.click",
            &u,
            T0 + k * 1500,
            serde_json::json!({"item": format!("i{}", rnd(300)), "device": format!("dev-{u}")}),
        );
    }
    for (j, item) in ["t1", "t2", "t3"].iter().enumerate() {
        for a in 0..12 {
            r.ev(
                "item.click",
                &format!("farm{a}"),
                T0 + 300_000 + (j as i64 * 12 + a) * 1000,
                serde_json::json!({"item": item, "device": format!("fd{a}")}),
            );
        }
    }
}

#[test]
fn a_lockstep_block_is_found_marks_its_accounts_and_is_reported() {
    let mut r = Run::new(config("").unwrap());
    lockstep_world(&mut r);
    // The farm's next click reads the incremental densest set, as of the last full batch of 4 new
    // pairs: at least 9 of the 12 × 3 (density 27 / 12).
    let m = r.ev(
        "item.click",
        "farm0",
        T0 + 340_000,
        serde_json::json!({"item": "t1", "device": "fd0"}),
    );
    assert!(num(&m, "graph_clicks_density") >= 2.25 - 1e-9, "{m:?}");
    assert!(
        (9..=12).contains(&int(&m, "graph_clicks_block_accounts")),
        "{m:?}"
    );
    let m = r.ev(
        "item.click",
        "h3",
        T0 + 341_000,
        serde_json::json!({"item": "i1", "device": "dev-h3"}),
    );
    assert_eq!(num(&m, "graph_clicks_density"), 0.0);
    // The ten-minute refresh re-peels the window and reports the block.
    r.ev(
        "item.click",
        "h4",
        T0 + 700_000,
        serde_json::json!({"item": "i2", "device": "dev-h4"}),
    );
    let blocks: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.detector == "block:clicks")
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].accounts.len(), 12);
    assert!(blocks[0].accounts.iter().all(|a| a.starts_with("farm")));
    assert_eq!(blocks[0].objects.len(), 3);
    // Burst scores are features of the edge's own event.
    assert!(m.contains_key("graph_clicks_burst"));
    // After the window, the edges expired: nobody is in a block any more.
    let m = r.ev(
        "item.click",
        "farm0",
        T0 + 2 * H,
        serde_json::json!({"item": "t9", "device": "fd0"}),
    );
    assert_eq!(num(&m, "graph_clicks_density"), 0.0);
}

#[test]
fn links_expire_and_memory_is_given_back() {
    let mut r = Run::new(config("").unwrap());
    for i in 0..200 {
        r.ev(
            "account.login",
            &format!("u{i}"),
            T0 + i * 1000,
            serde_json::json!({"success": true, "device": format!("d{}", i / 2)}),
        );
    }
    assert_eq!(r.engine.graph_size().unwrap().1, 200);
    // Three days later (window 2 d), the daily rebuild drops every old link and account.
    let m = r.ev(
        "account.login",
        "u0",
        T0 + 3 * 24 * H,
        serde_json::json!({"success": true, "device": "d-new"}),
    );
    assert_eq!(int(&m, "graph_cluster_size"), 1);
    let (accounts, links, _) = r.engine.graph_size().unwrap();
    assert_eq!((accounts, links), (1, 1));
}

#[test]
fn snapshot_and_restore_continue_exactly_and_runs_are_deterministic() {
    let cfg = config("").unwrap();
    let mut a = Run::new(cfg.clone());
    lockstep_world(&mut a);
    // Snapshot mid-stream (with pending edges in the incremental peel's batch), restore, continue both.
    let mut b = Run {
        engine: Engine::restore(cfg.clone(), &a.engine.snapshot()).unwrap(),
        n: a.n,
        findings: Vec::new(),
    };
    assert_eq!(a.engine.state_digest(), b.engine.state_digest());
    a.findings.clear();
    for k in 0..50 {
        let t = T0 + 400_000 + k * 20_000;
        let d = serde_json::json!({"item": format!("t{}", k % 3), "device": "x"});
        let fa = a.ev("item.click", &format!("farm{}", k % 12), t, d.clone());
        let fb = b.ev("item.click", &format!("farm{}", k % 12), t, d);
        assert_eq!(fa, fb, "event {k}");
    }
    assert_eq!(a.findings, b.findings);
    assert_eq!(a.engine.state_digest(), b.engine.state_digest());
    // Another engine on the same events: the same state.
    let mut c = Run::new(cfg.clone());
    lockstep_world(&mut c);
    let mut d = Run::new(cfg);
    lockstep_world(&mut d);
    assert_eq!(c.engine.state_digest(), d.engine.state_digest());
    assert_eq!(
        c.engine.snapshot(),
        d.engine.snapshot(),
        "same events, same snapshot bytes"
    );
    assert_eq!(c.findings, d.findings);
    // A snapshot under another [graph] is refused.
    let other = Config::from_str(
        &GRAPH.replace("max_share = 5", "max_share = 6"),
        Path::new("."),
    )
    .unwrap();
    let err = Engine::restore(other, &c.engine.snapshot()).err().unwrap();
    assert!(err.to_string().contains("[graph]"), "{err}");
    // The graph is a stage with a section of its own: a snapshot with it does not restore where no
    // graph is declared, and one without it does not restore where one is.
    let plain = Config::from_str("", Path::new(".")).unwrap();
    let err = Engine::restore(plain.clone(), &c.engine.snapshot())
        .err()
        .unwrap();
    assert!(
        matches!(&err, argus_engine::SnapshotError::Incompatible(m) if m.contains("`graph` stage")),
        "{err}"
    );
    let without = Engine::new(plain).snapshot();
    let err = Engine::restore(config("").unwrap(), &without)
        .err()
        .unwrap();
    assert!(
        matches!(&err, argus_engine::SnapshotError::Incompatible(m) if m.contains("no state for the `graph` stage")),
        "{err}"
    );
}

#[test]
fn rules_and_models_read_graph_features() {
    let dir = tempfile::tempdir().unwrap();
    // A one-split model on the cluster size: risky from 4 accounts on.
    let split = Node {
        feature: 0,
        threshold: 3.5,
        left: 1,
        right: 2,
        default_left: true,
        missing: Missing::Default,
        value: 0.0,
        cover: 1.0,
    };
    let mut e = Ensemble {
        features: vec!["graph_cluster_size".into()],
        base: 0.0,
        link: Link::Logistic { scale: 1.0 },
        compare: Compare::LessEqual,
        trees: vec![vec![split, Node::leaf(-3.0, 1.0), Node::leaf(3.0, 1.0)]],
    };
    e.fill_expected_values();
    let file = serde_json::json!({
        "format": argus_model::file::FORMAT, "name": "ring", "version": "t1",
        "training": {"checkpoint": "coupon.claim", "label": "fraud", "label_delay": "0ms", "window_start": "", "window_end": "",
                     "deploy_from": "", "rows": 0, "positives": 0, "validation_rows": 0, "data_hash": "", "params": {},
                     "best_iteration": 1, "seconds": 0.0},
        "metrics": {}, "model": e});
    std::fs::write(dir.path().join("ring.json"), file.to_string()).unwrap();
    let cfg = Config::from_str(&format!("{GRAPH}\n[[models]]\nname = \"ring\"\nevent = \"coupon.claim\"\npath = \"ring.json\"\n"), dir.path()).unwrap();
    let policy = r#"
[policy]
checkpoint = "coupon.claim"
version = "v1"

[[rules]]
name = "ring_claim"
when = "features.graph_cluster_size >= 4"
action = "review"
score = 40
reason = "one of four or more linked accounts"
"#;
    let loaded = argus_policy::load_sources(
        &vec![("p.toml".into(), policy.into())],
        &Default::default(),
        &cfg.schema,
        &cfg.features,
        &cfg.pseudonymizer,
    )
    .unwrap();
    let mut r = Run::new(cfg);
    r.engine.set_policies(Arc::new(loaded.policies));
    let decoder = r.engine.decoder().clone();
    let mut decide = |i: i64| {
        let ev = decoder
            .decode_json(&serde_json::json!({"id": format!("c{i}"), "type": "coupon.claim", "time": T0 + i * 1000, "actor": format!("u{i}"), "data": {"coupon": "WELCOME", "device": "shared"}}))
            .unwrap();
        r.engine.process(&ev).unwrap().decision.unwrap()
    };
    let d = decide(1);
    assert_eq!(d.action, argus_policy::Action::Allow);
    assert!(d.models[0].score < 0.1);
    decide(2);
    decide(3);
    let d = decide(4);
    assert_eq!(d.action, argus_policy::Action::Review);
    assert_eq!(d.fired[0].rule, "ring_claim");
    assert!(d.models[0].score > 0.9);
    assert_eq!(d.models[0].reasons[0].feature, "graph_cluster_size");
}

#[test]
fn bad_graph_declarations_are_reported() {
    let err = |text: &str| {
        Config::from_str(text, Path::new("."))
            .unwrap_err()
            .to_string()
    };
    let e = err("[graph]\nwindow = \"soon\"\n[[graph.links]]\nfield = \"devize\"\n[[graph.blocks]]\nname = \"b\"\nevents = [\"item.clik\"]\ncolumn = \"item\"\nweighting = \"cubic\"\n");
    for want in [
        "graph.window: invalid duration `soon`",
        "no account event type has a field `devize`",
        "unknown event type `item.clik`",
        "weighting: `cubic`",
    ] {
        assert!(e.contains(want), "{want} not in {e}");
    }
    let e = err("[graph]\n[[graph.blocks]]\nname = \"b\"\nevents = [\"order.create\"]\ncolumn = \"sellr\"\nrepeats = \"twice\"\n");
    assert!(
        e.contains("has no field `sellr`") && e.contains("repeats: `twice`"),
        "{e}"
    );
    let e = err("[graph]\n[[graph.links]]\nfield = \"device\"\nevents = [\"account.login\"]\nfilter = [{ field = \"nope\", op = \"==\", value = false }]\n");
    assert!(e.contains("has no field `nope`"), "{e}");
    let e = err("[graph]\n[[graph.links]]\nfield = \"device\"\nevents = [\"account.login\"]\nfilter = [{ field = \"success\", op = \"==\", value = \"false\" }]\n");
    assert!(e.contains("does not fit"), "{e}");
    let e = err("[graph]\nmax_shares = 3\n");
    assert!(e.contains("max_shares"), "{e}");
}

/// A buyer × seller graph weighted by order amount: the block's density is in money per node, and the
/// block's fraud rate counts its confirmed accounts.
#[test]
fn amount_weighted_blocks_and_their_fraud_rate() {
    let cfg = Config::from_str(
        r#"
[graph]
[[graph.confirmed]]
event = "fraud.confirmed"
field = "subject"

[[graph.blocks]]
name = "orders"
events = ["order.create"]
column = "seller"
weight = "amount"
window = "7d"
min_density = 5.0
min_rows = 3
batch = 1
"#,
        Path::new("."),
    )
    .unwrap();
    let mut r = Run::new(cfg);
    r.ev(
        "fraud.confirmed",
        "analyst",
        T0,
        serde_json::json!({"subject_kind": "user", "subject": "b0"}),
    );
    // Honest: 30 buyers, one 10.00 order each at 30 sellers.
    for i in 0..30 {
        r.ev("order.create", &format!("h{i}"), T0 + 1000 + i, serde_json::json!({"order": format!("ho{i}"), "seller": format!("s{i}"), "amount": "10.00"}));
    }
    // Four buyers, three 10.00 orders each from one seller: 120.00 over 5 nodes.
    let mut last = serde_json::Map::new();
    for k in 0..3 {
        for b in 0..4 {
            last = r.ev("order.create", &format!("b{b}"), T0 + 10_000 + k * 100 + b, serde_json::json!({"order": format!("o{k}{b}"), "seller": "ring-seller", "amount": "10.00"}));
        }
    }
    assert!(
        (num(&last, "graph_orders_density") - 24.0).abs() < 1e-9,
        "{last:?}"
    );
    assert_eq!(int(&last, "graph_orders_block_accounts"), 4);
    assert!((num(&last, "graph_orders_fraud_rate") - 0.25).abs() < 1e-12);
    let m = r.ev(
        "order.create",
        "h1",
        T0 + 20_000,
        serde_json::json!({"order": "x", "seller": "s1", "amount": "10.00"}),
    );
    assert_eq!(num(&m, "graph_orders_density"), 0.0);
    // A weight field that is not a number, or with repeats once, is refused.
    let err = |extra: &str| {
        Config::from_str(&format!("[graph]\n[[graph.blocks]]\nname = \"o\"\nevents = [\"order.create\"]\ncolumn = \"seller\"\n{extra}"), Path::new(".")).unwrap_err().to_string()
    };
    assert!(err("weight = \"currency\"").contains("is not a number"));
    assert!(err("weight = \"amount\"\nrepeats = \"once\"").contains("cannot also weigh"));
}

/// A seeded storm of arbitrary events — every account type, shared and hub values, confirmations,
/// out-of-order and late times, huge and negative amounts, missing fields — through a graph with
/// short windows: nothing panics, memory stays bounded by the windows, and a snapshot restores to the
/// same state.
#[test]
fn arbitrary_streams_never_panic_and_restore() {
    let cfg = Config::from_str(
        r#"
[graph]
window = "1h"
refresh_every = "1m"
rebuild_every = "5m"
max_share = 3
min_cluster = 2
[[graph.links]]
field = "device"
[[graph.links]]
field = "payout_account"
[[graph.confirmed]]
event = "fraud.confirmed"
field = "subject"
[[graph.blocks]]
name = "orders"
events = ["order.create"]
column = "seller"
weight = "amount"
window = "10m"
min_density = 0.1
min_rows = 1
batch = 2
[[graph.blocks]]
name = "clicks"
events = ["item.click", "review.create"]
column = "item"
repeats = "once"
window = "2m"
weighting = "log"
min_density = 0.1
min_rows = 1
"#,
        Path::new("."),
    )
    .unwrap();
    let mut e = Engine::new(cfg.clone());
    let decoder = e.decoder().clone();
    let mut s = 99u64;
    let mut rnd = |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n.max(1)
    };
    let mut t = T0;
    let mut found = 0usize;
    for i in 0..20_000 {
        t += rnd(20_000) as i64 - 2_000; // mostly forward, sometimes back
        let actor = format!("u{}", rnd(300));
        let amount = ["0.00", "-5.00", "1.99", "99999999999.99", "12.50"][rnd(5) as usize];
        let doc = match rnd(6) {
            0 => {
                serde_json::json!({"id": format!("e{i}"), "type": "account.login", "time": t, "actor": actor, "data": {"success": rnd(2) == 0, "device": format!("d{}", rnd(40))}})
            }
            1 => {
                serde_json::json!({"id": format!("e{i}"), "type": "order.create", "time": t, "actor": actor, "data": {"order": format!("o{i}"), "seller": format!("s{}", rnd(20)), "amount": amount, "device": format!("d{}", rnd(400))}})
            }
            2 => {
                serde_json::json!({"id": format!("e{i}"), "type": "item.click", "time": t, "actor": actor, "data": {"item": format!("i{}", rnd(30))}})
            }
            3 => {
                serde_json::json!({"id": format!("e{i}"), "type": "payout.request", "time": t, "actor": actor, "data": {"payout_account": format!("p{}", rnd(10)), "amount": amount}})
            }
            4 => {
                serde_json::json!({"id": format!("e{i}"), "type": "fraud.confirmed", "time": t, "actor": "analyst", "data": {"subject": format!("u{}", rnd(400))}})
            }
            _ => {
                serde_json::json!({"id": format!("e{}", rnd(i + 1)), "type": "order.create", "time": t, "actor": actor, "data": {"order": "dup"}})
            }
        };
        if let Ok(ev) = decoder.decode_json(&doc) {
            if let Ok(p) = e.process(&ev) {
                found += p.findings.len();
            }
        }
    }
    assert!(found > 0, "the storm produced findings");
    let (accounts, links, edges) = e.graph_size().unwrap();
    assert!(
        accounts <= 1000 && links <= 2000 && edges <= 5000,
        "bounded: {accounts} accounts, {links} links, {edges} edges"
    );
    let r = Engine::restore(cfg, &e.snapshot()).unwrap();
    assert_eq!(r.state_digest(), e.state_digest());
}

/// Edges still waiting in a batch when their window passes are not put back by the re-peel; and the
/// burst score counts ticks from the stream's first edge (a first edge scores 0, whatever the date).
#[test]
fn expired_pending_edges_stay_out_and_bursts_count_from_the_first_tick() {
    let cfg = Config::from_str(
        r#"
[graph]
[[graph.blocks]]
name = "orders"
events = ["order.create"]
column = "seller"
window = "10m"
refresh_every = "1h"
min_density = 0.5
min_rows = 2
batch = 16
"#,
        Path::new("."),
    )
    .unwrap();
    let mut r = Run::new(cfg);
    let first = r.ev(
        "order.create",
        "u0",
        T0,
        serde_json::json!({"order": "o0", "seller": "s1", "amount": "5.00"}),
    );
    assert_eq!(
        num(&first, "graph_orders_burst"),
        0.0,
        "a first edge is no burst"
    );
    for (k, u) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
        for s in ["s1", "s2"] {
            r.ev(
                "order.create",
                u,
                T0 + 60_000 * (k as i64 + 1),
                serde_json::json!({"order": format!("o{u}{s}"), "seller": s, "amount": "5.00"}),
            );
        }
    }
    // An hour later every edge has expired, the pending batch included: nobody is in a block.
    let m = r.ev(
        "order.create",
        "u1",
        T0 + 3_600_000,
        serde_json::json!({"order": "late", "seller": "s9", "amount": "5.00"}),
    );
    assert_eq!(num(&m, "graph_orders_density"), 0.0, "{m:?}");
    // And a restored engine agrees with this one.
    let restored = Engine::restore(r.engine.config.clone(), &r.engine.snapshot()).unwrap();
    assert_eq!(restored.state_digest(), r.engine.state_digest());
}

/// `[graph.propagation]`: buyer → seller orders as interactions, fraud and legitimate labels as seeds.
const PROPAGATION: &str = r#"
[graph.propagation]
events = ["order.create"]
column = "seller"
attribute = "amount"
scale = 100
half_life = "30d"
max_neighbors = 8
legit = [{ event = "legit.confirmed", field = "subject" }]
"#;

/// The semi-supervised signals in the engine: zero before any label (a label known later never
/// reaches an earlier event), the fraud share and the propagated score once a seller is confirmed
/// fraudulent, the peer's score on the interaction itself, a legitimate seed pulling the score down;
/// the same after a snapshot and restore; and a declaration's mistakes reported.
#[test]
fn semi_supervised_signals_follow_the_labels_as_they_arrive() {
    let order = |seller: &str, n: u32| serde_json::json!({"order": format!("o{n}"), "seller": seller, "item": "i1", "item_count": 1, "amount": "50.00", "currency": "EUR"});
    let mut r = Run::new(config(PROPAGATION).unwrap());
    let f = r.ev("order.create", "b1", T0, order("s1", 1));
    assert_eq!(num(&f, "graph_fraud_share"), 0.0);
    assert_eq!(num(&f, "graph_label_score"), 0.0);
    assert_eq!(num(&f, "graph_peer_label_score"), 0.0);
    r.ev("order.create", "b2", T0 + 1, order("s1", 2));
    r.ev("order.create", "b3", T0 + 2, order("s2", 3));
    // s1 is confirmed fraudulent (the label event's own actor is the reviewer).
    r.ev(
        "fraud.confirmed",
        "ops",
        T0 + H,
        serde_json::json!({"subject_kind": "user", "subject": "s1"}),
    );
    let f = r.ev("order.create", "b1", T0 + 2 * H, order("s3", 4));
    assert!(num(&f, "graph_fraud_share") > 0.4, "{f:?}");
    assert!(num(&f, "graph_label_score") > 0.0, "{f:?}");
    assert_eq!(int(&f, "graph_labelled_neighbors"), 1);
    // s3 is two hops from s1, through b1: suspected, less than b1.
    let (b1, s3) = (
        num(&f, "graph_label_score"),
        num(&f, "graph_peer_label_score"),
    );
    assert!(s3 > 0.0 && s3 < b1, "{f:?}");
    let f = r.ev("order.create", "b3", T0 + 2 * H + 1, order("s1", 5));
    assert_eq!(num(&f, "graph_peer_label_score"), 1.0, "{f:?}");
    assert!(num(&f, "graph_fraud_share") > 0.0);
    // A legitimate seller pulls its buyer's score down.
    r.ev(
        "legit.confirmed",
        "ops",
        T0 + 3 * H,
        serde_json::json!({"subject_kind": "user", "subject": "s2"}),
    );
    let f = r.ev("order.create", "b4", T0 + 4 * H, order("s2", 6));
    assert!(num(&f, "graph_label_score") < 0.0, "{f:?}");
    assert_eq!(num(&f, "graph_fraud_share"), 0.0);

    // The same after a snapshot and restore.
    let bytes = r.engine.snapshot();
    let digest = r.engine.state_digest();
    let mut back = Run::new(config(PROPAGATION).unwrap());
    back.engine = Engine::restore(config(PROPAGATION).unwrap(), &bytes).unwrap();
    back.n = r.n;
    assert_eq!(back.engine.state_digest(), digest);
    let a = r.ev("order.create", "b5", T0 + 5 * H, order("s1", 7));
    let b = back.ev("order.create", "b5", T0 + 5 * H, order("s1", 7));
    assert_eq!(a, b);

    // Mistakes in the declaration are reported, each.
    let e = config(
        "[graph.propagation]\nevents = [\"order.create\", \"ordr.create\"]\ncolumn = \"sellr\"\nattribute = \"currency\"\nmax_neighbors = 0\n",
    )
    .unwrap_err();
    for m in [
        "unknown event type `ordr.create`",
        "has no field `sellr`",
        "`currency` is not a number",
        "max_neighbors: 1 to 128",
    ] {
        assert!(e.contains(m), "{m} in {e}");
    }
}

/// `[[graph.propagation.aggregates]]`: a feature's latest value per account, aggregated over the
/// account's neighbours (here: the accounts a referrer brought in, and their orders of the day).
#[test]
fn features_aggregate_over_the_accounts_an_account_is_linked_to() {
    let cfg = config(
        r#"
[[features]]
name = "orders_1d"
kind = "count"
events = ["order.create"]
key = ["actor"]
window = "1d"

[graph.propagation]
events = ["account.register"]
column = "referrer"

[[graph.propagation.aggregates]]
feature = "orders_1d"
above = 1
"#,
    )
    .unwrap();
    let mut r = Run::new(cfg);
    let order = |n: u32| serde_json::json!({"order": format!("o{n}"), "seller": "s1", "item": "i1", "item_count": 1, "amount": "50.00", "currency": "EUR"});
    for (i, u) in ["u1", "u2", "u3"].iter().enumerate() {
        let f = r.ev(
            "account.register",
            u,
            T0 + i as i64,
            serde_json::json!({"email": format!("{u}@example.com"), "referrer": "r"}),
        );
        // Nobody the new account knows has ordered yet.
        assert_eq!(f["graph_nb_orders_1d_mean"], serde_json::Value::Null);
        assert_eq!(int(&f, "graph_nb_orders_1d_above"), 0);
    }
    for n in 0..3 {
        r.ev("order.create", "u1", T0 + H + n, order(n as u32));
    }
    r.ev("order.create", "u2", T0 + H + 5, order(9));
    // The referrer's own order: its neighbours u1 (3 orders), u2 (1) and u3 (0, as its
    // registration's vector said).
    let f = r.ev("order.create", "r", T0 + 2 * H, order(10));
    assert!((num(&f, "graph_nb_orders_1d_mean") - 4.0 / 3.0).abs() < 1e-12);
    assert_eq!(num(&f, "graph_nb_orders_1d_max"), 3.0);
    assert_eq!(int(&f, "graph_nb_orders_1d_above"), 1);
    // A referred account sees the referrer (its only neighbour) with 1 order.
    let f = r.ev("order.create", "u3", T0 + 2 * H + 1, order(11));
    assert_eq!(num(&f, "graph_nb_orders_1d_mean"), 1.0);

    let e = config(
        "[graph.propagation]\nevents = [\"account.register\"]\ncolumn = \"referrer\"\nlegit = [{ event = \"legit.confirmed\", field = \"subject\" }]\n[[graph.propagation.aggregates]]\nfeature = \"no_such\"\n",
    )
    .unwrap_err();
    assert!(e.contains("no feature `no_such`"), "{e}");
}

/// `[text]`: near-duplicate texts by distinct accounts within the window (the same account's copies,
/// and texts too short, do not count; the window expires them), hashed word n-grams, the same after
/// a snapshot and restore, and a declaration's mistakes.
#[test]
fn near_duplicate_texts_and_hashed_ngrams() {
    let text_cfg = &format!(
        "{REVIEW_TEXT}\n[[text.hashed]]\nname = \"review\"\nevents = [\"review.create\"]\nfield = \"text\"\nbuckets = 16\n"
    );
    let cfg = Config::from_str(text_cfg, Path::new(".")).unwrap();
    let mut r = Run::new(cfg);
    let review =
        |t: &str| serde_json::json!({"item": "i1", "seller": "s1", "rating": 5, "text": t});
    let spam = "Amazing quality phone case exceeded all my expectations fast shipping and the seller is very professional";
    let text_features = |r: &mut Run, actor: &str, t: i64, text: &str| {
        r.n += 1;
        let ev = r.engine.decoder().decode_json(&serde_json::json!({"id": format!("t{}", r.n), "type": "review.create", "time": t, "actor": actor, "data": review(text)})).unwrap();
        let fs = r.engine.features().clone();
        let p = r.engine.process(&ev).unwrap();
        let get = |n: &str| {
            p.features[fs
                .index_of(n)
                .unwrap_or_else(|| panic!("{n} not in {:?}", fs.names().collect::<Vec<_>>()))]
            .clone()
        };
        let hashed: f64 = (0..16)
            .map(|b| get(&format!("text_review_h{b}")).as_f64().unwrap())
            .sum();
        (
            get("text_review_similar_accounts"),
            get("text_review_max_similarity").as_f64().unwrap(),
            hashed,
        )
    };
    use argus_event::Value;
    let (n, sim, h) = text_features(&mut r, "a1", T0, spam);
    assert_eq!((n, sim), (Value::Int(0), 0.0));
    assert!((h - 1.0).abs() < 1e-9, "the buckets' shares sum to 1: {h}");
    // The same account again: not another account.
    assert_eq!(text_features(&mut r, "a1", T0 + 1, spam).0, Value::Int(0));
    // Two other accounts, one with a small change.
    assert_eq!(text_features(&mut r, "a2", T0 + 2, spam).0, Value::Int(1));
    let (n, sim, _) = text_features(&mut r, "a3", T0 + 3, &format!("{spam}!! Highly recommend"));
    assert_eq!(n, Value::Int(2));
    assert!(sim > 0.6 && sim < 1.0, "{sim}");
    // An unrelated text, and a too-short one.
    let other =
        "The zipper broke after two days and the seller never answered my messages about it";
    assert_eq!(text_features(&mut r, "a4", T0 + 4, other).0, Value::Int(0));
    assert_eq!(
        text_features(&mut r, "a5", T0 + 5, "great product").0,
        Value::Int(0)
    );
    // The same state after a snapshot and restore; then the window has passed.
    let bytes = r.engine.snapshot();
    let mut back = Run::new(Config::from_str(text_cfg, Path::new(".")).unwrap());
    back.engine =
        Engine::restore(Config::from_str(text_cfg, Path::new(".")).unwrap(), &bytes).unwrap();
    back.n = r.n;
    assert_eq!(back.engine.state_digest(), r.engine.state_digest());
    assert_eq!(
        text_features(&mut r, "a6", T0 + 10, spam),
        text_features(&mut back, "a6", T0 + 10, spam)
    );
    assert_eq!(
        text_features(&mut r, "a7", T0 + 2 * 24 * H, spam).0,
        Value::Int(0)
    );

    let e = Config::from_str(
        "[[text.duplicates]]\nname = \"Bad Name\"\nevents = [\"review.create\"]\nfield = \"text\"\nthreshold = 2\nshingle_words = 9\n",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    for m in [
        "name: lower-case",
        "has no field `text`",
        "threshold: in (0, 1]",
        "shingle_words: 1 to 5",
    ] {
        assert!(e.contains(m), "{m} in {e}");
    }
}

/// `[[graph.links]] text = "…"`: similarity edges. Accounts that post near-same texts share the
/// text's group and become one cluster, which carries their confirmed labels like any other; an
/// unrelated text starts a group of its own; the groups survive a snapshot; and a text link's
/// mistakes are reported.
#[test]
fn near_duplicate_texts_link_their_accounts_in_the_graph() {
    let text = &format!("{REVIEW_TEXT}\n[[graph.links]]\ntext = \"review\"\n");
    let mut r = Run::new(config(text).unwrap());
    let spam = "Amazing quality phone case exceeded all my expectations fast shipping and the seller is very professional";
    let other =
        "The zipper broke after two days and the seller never answered my messages about it";
    let review =
        |t: &str| serde_json::json!({"item": "i1", "seller": "s1", "rating": 5, "text": t});
    let fs = r.engine.features().clone();
    let g = fs.index_of("text_review_group").unwrap();
    let post = |r: &mut Run, actor: &str, t: i64, text: &str| {
        r.n += 1;
        let ev = r.engine.decoder().decode_json(&serde_json::json!({"id": format!("t{}", r.n), "type": "review.create", "time": t, "actor": actor, "data": review(text)})).unwrap();
        let p = r.engine.process(&ev).unwrap();
        let named = |n: &str| p.features[fs.index_of(n).unwrap()].clone();
        (
            p.features[g].clone(),
            named("graph_cluster_size"),
            named("graph_cluster_confirmed"),
            named("graph_cluster_accounts_per_text_review"),
            named("graph_cluster_accounts_per_value"),
        )
    };
    use argus_event::Value;
    let (g1, size, _, _, _) = post(&mut r, "a1", T0, spam);
    assert!(matches!(g1, Value::Str(_)), "{g1:?}");
    assert_eq!(size, Value::Int(1));
    let (g2, size, _, per, _) = post(&mut r, "a2", T0 + 1, spam);
    assert_eq!(
        (g2, size, per),
        (g1.clone(), Value::Int(2), Value::Float(2.0))
    );
    // A near-same text joins the group too.
    let (g3, size, _, _, per_value) =
        post(&mut r, "a3", T0 + 2, &format!("{spam}!! Highly recommend"));
    assert_eq!((g3, size), (g1.clone(), Value::Int(3)));
    // A text group is not a linking value: a cluster joined by texts alone has its size there.
    assert_eq!(per_value, Value::Float(3.0));
    // An unrelated text: a group of its own, a cluster of one.
    let (g4, size, _, _, _) = post(&mut r, "a4", T0 + 3, other);
    assert!(matches!(&g4, Value::Str(_)) && g4 != g1, "{g4:?}");
    assert_eq!(size, Value::Int(1));
    // A text too short to compare has no group and links nobody.
    let (g5, size, _, _, _) = post(&mut r, "a5", T0 + 4, "great product");
    assert_eq!((g5, size), (Value::Null, Value::Int(1)));
    // A confirmed label on one member counts for the whole cluster.
    r.ev(
        "fraud.confirmed",
        "reviewer",
        T0 + 5,
        serde_json::json!({"subject": "a1", "subject_kind": "user"}),
    );
    let (_, size, confirmed, _, _) = post(&mut r, "a2", T0 + 6, spam);
    assert_eq!((size, confirmed), (Value::Int(3), Value::Int(1)));
    // The same after a snapshot and restore.
    let bytes = r.engine.snapshot();
    let mut back = Run::new(config(text).unwrap());
    back.engine = Engine::restore(config(text).unwrap(), &bytes).unwrap();
    back.n = r.n;
    assert_eq!(back.engine.state_digest(), r.engine.state_digest());
    assert_eq!(
        post(&mut r, "a6", T0 + 7, spam),
        post(&mut back, "a6", T0 + 7, spam)
    );

    for (extra, want) in [
        (
            "[[graph.links]]\ntext = \"reviews\"\n",
            "text: no [[text.duplicates]] named `reviews`, did you mean `review`?",
        ),
        (
            "[[graph.links]]\ntext = \"review\"\nfield = \"device\"\n",
            "name exactly one of `field` and `text`",
        ),
        (
            "[[graph.links]]\ntext = \"review\"\nevents = [\"review.create\"]\n",
            "no `events` or `filter`",
        ),
        (
            "[[graph.links]]\ntext = \"review\"\n",
            "text `review` is linked twice",
        ),
    ] {
        let e = config(&format!("{text}{extra}")).unwrap_err();
        assert!(e.contains(want), "{want} in {e}");
    }
    // A [text] that does not compile says why, and the link does not add a misleading error.
    let e = config(&text.replace("threshold = 0.6", "threshold = 2")).unwrap_err();
    assert!(
        e.contains("threshold: in (0, 1]") && !e.contains("no [[text.duplicates]]"),
        "{e}"
    );
}
