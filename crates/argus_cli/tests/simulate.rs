//! `argus simulate` end to end: the world to files and to stdout (same bytes), and the catch report
//! computed two ways — `argus replay --truth` over the files, and the one-command `argus simulate
//! --report` — which must agree exactly.

use std::process::Command;

fn argus(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "argus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn simulate_replay_and_report_agree() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let world = ["--seed", "3", "--users", "2000", "--days", "8"];
    let mut args = vec!["simulate"];
    args.extend(world);
    let events = p("w.ndjson");
    args.extend(["--out", &events]);
    argus(&args);
    let truth = std::fs::read_to_string(p("w.truth.ndjson")).unwrap();
    let file = std::fs::read(&events).unwrap();
    assert_eq!(
        truth.lines().count(),
        file.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );

    // Same world on stdout: the same bytes.
    let mut args = vec!["simulate"];
    args.extend(world);
    assert!(argus(&args).stdout == file);

    let (a_json, a_svg) = (p("a.json"), p("a.svg"));
    let out = argus(&[
        "replay",
        "-q",
        "--input",
        &events,
        "--truth",
        &p("w.truth.ndjson"),
        "--catch-json",
        &a_json,
        "--chart",
        &a_svg,
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("catch report")
            && table.contains("coupon_ring")
            && table.contains("honest users"),
        "{table}"
    );

    let (b_json, b_svg) = (p("b.json"), p("b.svg"));
    let mut args = vec!["simulate"];
    args.extend(world);
    args.extend(["--report", "--catch-json", &b_json, "--chart", &b_svg]);
    argus(&args);
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&a_json).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&b_json).unwrap()).unwrap();
    assert_eq!(
        a, b,
        "the file path and the one-command path give the same report"
    );

    // The report is consistent with itself.
    let scenarios = a["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 9, "every scenario measured");
    for s in scenarios {
        assert!(s["campaigns"].as_u64().unwrap() >= 1);
        assert!(s["accounts_caught"].as_u64() <= s["accounts"].as_u64());
        assert!(s["campaigns_detected"].as_u64() <= s["campaigns"].as_u64());
        assert!(s["events_caught"].as_u64() <= s["decided_events"].as_u64());
        assert!(s["money_blocked"].as_f64() <= s["money_at_risk"].as_f64());
    }
    let f = &a["friction"];
    assert!(f["honest_users"].as_u64().unwrap() > 1000);
    assert!(f["rate"].as_f64().unwrap() >= 0.0 && f["rate"].as_f64().unwrap() <= 1.0);
    assert_eq!(a["unmatched_truth_records"], 0);
    let svg = std::fs::read_to_string(&a_svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("coupon_ring"));
    assert_eq!(
        svg.matches("<polyline").count(),
        10,
        "nine scenarios and the friction curve"
    );

    // A truth file from another world is refused, not silently mis-joined.
    let mut args = vec!["simulate", "--seed", "4", "--users", "2000", "--days", "8"];
    let other = p("o.ndjson");
    args.extend(["--out", &other]);
    argus(&args);
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "replay",
            "-q",
            "--input",
            &events,
            "--truth",
            &p("o.truth.ndjson"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truth"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn simulate_refuses_bad_knobs() {
    for args in [
        vec!["simulate", "--camouflage", "2"],
        vec!["simulate", "--only", "nonsense"],
        vec!["simulate", "--days", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "nothing written on a refused configuration"
        );
    }
}

#[test]
fn a_model_scores_the_simulated_orders() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("w.ndjson").to_string_lossy().into_owned();
    argus(&[
        "simulate", "--seed", "5", "--users", "2000", "--days", "10", "--labels", "--out", &events,
    ]);
    let text = std::fs::read_to_string(&events).unwrap();
    let orders: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"order.create\""))
        .collect();
    assert!(
        !orders.is_empty()
            && orders
                .iter()
                .all(|l| l.contains("\"fraud\":0") || l.contains("\"fraud\":1")),
        "every order carries its label"
    );
    assert!(!text
        .lines()
        .filter(|l| !l.contains("\"order.create\""))
        .any(|l| l.contains("\"fraud\":")));

    let decisions = dir.path().join("d.ndjson").to_string_lossy().into_owned();
    let cfg = root
        .join("examples/simulator/argus.toml")
        .to_string_lossy()
        .into_owned();
    let (p1, p2) = (
        root.join("policies").to_string_lossy().into_owned(),
        root.join("examples/simulator/policies")
            .to_string_lossy()
            .into_owned(),
    );
    argus(&[
        "replay",
        "-q",
        "--config",
        &cfg,
        "--policies",
        &p1,
        "--policies",
        &p2,
        "--input",
        &events,
        "--decisions",
        &decisions,
    ]);
    let mut scored = 0;
    let mut fired = 0;
    for line in std::fs::read_to_string(&decisions).unwrap().lines() {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        if d["checkpoint"] == "order.create" {
            let m = &d["models"][0];
            assert_eq!(m["name"], "order_fraud");
            assert!((0.0..=1.0).contains(&m["score"].as_f64().unwrap()));
            assert!(m["reasons"].as_array().unwrap().len() <= 3);
            scored += 1;
            fired += usize::from(
                d["fired"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["rule"] == "order_model_abuse"),
            );
        } else {
            assert!(
                d.get("models").is_none(),
                "only the model's checkpoint is scored"
            );
        }
    }
    assert!(
        scored == orders.len() && fired > 0,
        "{scored} orders scored, {fired} flagged by the model"
    );
    // The two policy directories load together, and their tests pass.
    let out = argus(&[
        "test",
        "--config",
        &cfg,
        "--policies",
        &p1,
        "--policies",
        &p2,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy tests: 25 passed, 0 failed"));
}

/// The graph examples stay valid: the graph configuration with its model loads, the three policy
/// directories load together and their tests pass, and the graph-aware model scores orders reading
/// graph features.
#[test]
fn the_graph_examples_load_and_their_model_reads_graph_features() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let s = |p: &str| root.join(p).to_string_lossy().into_owned();
    let out = argus(&[
        "test",
        "--config",
        &s("examples/simulator/graph-model.toml"),
        "--policies",
        &s("policies"),
        "--policies",
        &s("examples/simulator/policies"),
        "--policies",
        &s("examples/simulator/graph-policies"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("passed, 0 failed"), "{text}");
    let model: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/simulator/models/order_fraud_graph.json"))
            .unwrap(),
    )
    .unwrap();
    let inputs: Vec<&str> = model["model"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        inputs.contains(&"graph_cluster_accounts_per_value")
            && inputs.contains(&"graph_orders_burst"),
        "{inputs:?}"
    );
}

/// Review text (`--text`, with `--labels`): every event of the world is accepted under
/// examples/simulator/text.toml, the world without `--text` is unchanged apart from the text and
/// review labels, and a naive ring's copies have near-duplicates by other accounts where honest
/// reviews (almost) never do.
#[test]
fn simulated_review_text_and_its_near_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = root.join("examples/simulator/text.toml");
    let world = [
        "--seed",
        "5",
        "--users",
        "4000",
        "--days",
        "10",
        "--camouflage",
        "0",
    ];
    let (plain, text) = (p("plain.ndjson"), p("text.ndjson"));
    let mut a = vec!["simulate", "--labels", "-o", &plain];
    a.extend(world);
    argus(&a);
    let mut a = vec!["simulate", "--labels", "--text", "-o", &text];
    a.extend(world);
    argus(&a);
    // The same events, reviews aside and listings added (the text draws nothing from the other
    // events' streams, and listings are numbered apart).
    let strip = |s: String| -> Vec<String> {
        s.lines()
            .filter(|l| !l.contains("\"type\":\"listing.create\""))
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                if v["type"] == "review.create" {
                    let d = v["data"].as_object_mut().unwrap();
                    d.remove("text");
                    d.remove("fraud");
                }
                v.to_string()
            })
            .collect()
    };
    let with_text = std::fs::read_to_string(&text).unwrap();
    assert!(with_text.contains("\"text\":\""));
    assert!(with_text.contains("{\"id\":\"l1\",\"type\":\"listing.create\""));
    assert_eq!(
        strip(std::fs::read_to_string(&plain).unwrap()),
        strip(with_text)
    );
    let (csv, summary) = (p("f.csv"), p("s.json"));
    argus(&[
        "replay",
        "-q",
        "--config",
        config.to_str().unwrap(),
        "--input",
        &text,
        "--out-csv",
        &csv,
        "--summary",
        &summary,
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["refused"].as_u64().unwrap_or(0), 0, "{s}");
    let [[honest, honest_dup], [ring, ring_dup]] = near_duplicates(
        &csv,
        &p("text.truth.ndjson"),
        "review.create",
        "text_review_similar_accounts",
    );
    assert!(
        ring > 10 && honest > 100,
        "{ring} ring, {honest} honest reviews"
    );
    assert!(
        ring_dup * 2 > ring,
        "{ring_dup} of {ring} ring reviews have near-duplicates"
    );
    assert!(
        honest_dup * 100 <= honest,
        "{honest_dup} of {honest} honest reviews have near-duplicates"
    );
    // Brushing sellers copy one listing kit: most of their listings have a near-duplicate by another
    // seller; honest listings (almost) never do. A world with more brushing campaigns (the one above
    // has one), the other attacks off.
    let listed = p("listed.ndjson");
    let mut a = vec![
        "simulate",
        "--labels",
        "--text",
        "--only",
        "brushing",
        "--attack-scale",
        "20",
        "-o",
        &listed,
    ];
    a.extend(world);
    argus(&a);
    let lcsv = p("l.csv");
    argus(&[
        "replay",
        "-q",
        "--config",
        config.to_str().unwrap(),
        "--input",
        &listed,
        "--out-csv",
        &lcsv,
    ]);
    let [[honest_l, honest_l_dup], [ring_l, ring_l_dup]] = near_duplicates(
        &lcsv,
        &p("listed.truth.ndjson"),
        "listing.create",
        "text_listing_similar_accounts",
    );
    assert!(
        ring_l >= 4 && honest_l > 100,
        "{ring_l} brushing, {honest_l} honest listings"
    );
    assert!(
        ring_l_dup * 2 > ring_l,
        "{ring_l_dup} of {ring_l} brushing listings have near-duplicates"
    );
    assert!(
        honest_l_dup * 100 <= honest_l,
        "{honest_l_dup} of {honest_l} honest listings have near-duplicates"
    );
    // The catch report in process finds the truth of every event, listings (`l<n>`) included.
    let policies = root.join("policies");
    let mut a = vec![
        "simulate",
        "--text",
        "--report",
        "--config",
        config.to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
    ];
    a.extend(world);
    let out = argus(&a);
    assert!(String::from_utf8_lossy(&out.stdout).contains("brushing"));
}

/// Events of `ty` in a replay's feature table, by the truth's scenario: `[honest, brushing]`, each
/// `[events, events whose `feature` (a count of other accounts) is above 0]`.
fn near_duplicates(csv: &str, truth: &str, ty: &str, feature: &str) -> [[usize; 2]; 2] {
    let brushing: std::collections::HashSet<String> = std::fs::read_to_string(truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["scenario"] == "brushing")
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let mut r = csv::Reader::from_path(csv).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let (id, t, f) = (col("event_id"), col("event_type"), col(feature));
    let mut out = [[0usize; 2]; 2];
    for rec in r.records() {
        let rec = rec.unwrap();
        if &rec[t] == ty {
            let row = &mut out[usize::from(brushing.contains(&rec[id]))];
            row[0] += 1;
            row[1] += usize::from(rec[f].parse::<i64>().unwrap_or(0) > 0);
        }
    }
    out
}
