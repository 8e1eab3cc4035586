//! Models in the decision path: `[[models]]` loads a model file, matches its inputs to features, and
//! every decision of its event type carries the score and reasons; rules read `model.<name>`.

use argus_engine::{Config, Engine};
use argus_model::ensemble::{Compare, Ensemble, Link, Missing, Node};
use std::path::Path;
use std::sync::Arc;

const FEATURES: &str = r#"
[[features]]
name = "user_orders_24h"
kind = "count"
events = ["order.create"]
key = ["actor"]
window = "24h"

[[features]]
name = "user_refunds_30d"
kind = "count"
events = ["refund.request"]
key = ["actor"]
window = "30d"

[[features]]
name = "amount"
kind = "field"
value = "amount"
"#;

/// Risky when the account ordered 3+ times today (margin +2), else by amount; a missing amount goes
/// the high-risk way.
fn model() -> Ensemble {
    let split = |f, t, l, r, dl| Node {
        feature: f,
        threshold: t,
        left: l,
        right: r,
        default_left: dl,
        missing: Missing::Default,
        value: 0.0,
        cover: 1.0,
    };
    let mut e = Ensemble {
        features: vec!["user_orders_24h".into(), "amount".into()],
        base: -1.0,
        link: Link::Logistic { scale: 1.0 },
        compare: Compare::LessEqual,
        trees: vec![vec![
            split(0, 2.5, 1, 2, true),
            split(1, 100.0, 3, 4, false),
            Node::leaf(2.0, 1.0),
            Node::leaf(-1.0, 3.0),
            Node::leaf(1.0, 1.0),
        ]],
    };
    e.fill_expected_values();
    e
}

fn setup(dir: &Path, extra: &str) -> Result<Config, String> {
    // An Argus model file: the ensemble with its provenance.
    let file = serde_json::json!({
        "format": argus_model::file::FORMAT, "name": "order_risk", "version": "t1",
        "training": {"checkpoint": "order.create", "label": "fraud", "label_delay": "0ms", "window_start": "", "window_end": "",
                     "deploy_from": "", "rows": 0, "positives": 0, "validation_rows": 0, "data_hash": "", "params": {},
                     "best_iteration": 1, "seconds": 0.0},
        "metrics": {}, "model": model()});
    std::fs::write(dir.join("m.json"), file.to_string()).unwrap();
    Config::from_str(&format!("{FEATURES}\n{extra}"), dir).map_err(|e| e.to_string())
}

const POLICY: &str = r#"
[policy]
checkpoint = "order.create"
version = "v1"

[[rules]]
name = "risky_model"
when = "model.order_risk >= 0.7"
action = "review"
score = 50
reason = "The order model says risky"
"#;

#[test]
fn decisions_carry_model_scores_reasons_and_rules_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "[[models]]\nname = \"order_risk\"\nevent = \"order.create\"\npath = \"m.json\"\nreasons = 2\n").unwrap();
    assert_eq!(cfg.models.len(), 1);
    let loaded = argus_policy::load_sources(
        &vec![("p.toml".into(), POLICY.into())],
        &Default::default(),
        &cfg.schema,
        &cfg.features,
        &cfg.pseudonymizer,
    )
    .unwrap();
    let mut engine = Engine::new(cfg);
    engine.set_policies(Arc::new(loaded.policies));
    let decoder = engine.decoder().clone();
    let mut decide = |i: i64, amount: Option<&str>| {
        let mut data = serde_json::json!({"order": format!("o{i}")});
        data["amount"] = serde_json::json!(amount.unwrap_or("1.00"));
        let ev = decoder.decode_json(&serde_json::json!({"id": format!("e{i}"), "type": "order.create", "time": 1_000_000 + i * 1000, "actor": "u1", "data": data})).unwrap();
        engine.process(&ev).unwrap().decision.unwrap()
    };
    // First order, small: orders_24h = 1 ≤ 2.5, amount ≤ 100 ⇒ margin −2.
    let d = decide(1, Some("20.00"));
    let m = &d.models[0];
    assert_eq!((m.name.as_str(), m.version.as_str()), ("order_risk", "t1"));
    assert!((m.score - 1.0 / (1.0 + 2f64.exp())).abs() < 1e-12);
    assert!(m.reasons.is_empty(), "nothing pushed this score up");
    assert_eq!(d.action, argus_policy::Action::Allow);
    // Second order, large: margin 0 ⇒ 0.5, the amount is the reason.
    let d = decide(2, Some("500.00"));
    assert!((d.models[0].score - 0.5).abs() < 1e-12);
    assert_eq!(d.models[0].reasons[0].feature, "amount");
    assert_eq!(d.models[0].reasons[0].value, Some(500.0));
    // Third order of the day: margin +1 ⇒ 0.73 ≥ 0.7, the rule fires on the model's score.
    let d = decide(3, Some("1.00"));
    assert!(d.models[0].score > 0.7);
    assert_eq!(d.action, argus_policy::Action::Review);
    assert_eq!(d.fired[0].rule, "risky_model");
    assert_eq!(d.models[0].reasons[0].feature, "user_orders_24h");
    // The decision serializes with its models.
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["models"][0]["name"], "order_risk");
}

#[test]
fn bad_model_declarations_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let err = |extra: &str| setup(dir.path(), extra).unwrap_err();
    assert!(
        err("[[models]]\nname = \"x\"\nevent = \"order.creat\"\npath = \"m.json\"\n")
            .contains("unknown event type")
    );
    assert!(
        err("[[models]]\nname = \"x\"\nevent = \"order.create\"\npath = \"nope.json\"\n")
            .contains("cannot read")
    );
    assert!(
        err("[[models]]\nname = \"Bad Name\"\nevent = \"order.create\"\npath = \"m.json\"\n")
            .contains("lower-case")
    );
    // Inputs must be features computed on the event type.
    let e = err("[[models]]\nname = \"x\"\nevent = \"account.login\"\npath = \"m.json\"\n");
    assert!(
        e.contains("input `amount` is not a number computed on `account.login`"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"format\": \"argus-gbdt/1\"}",
    )
    .unwrap();
    assert!(
        err("[[models]]\nname = \"x\"\nevent = \"order.create\"\npath = \"bad.json\"\n")
            .contains("bad.json")
    );
    let twice = "[[models]]\nname = \"x\"\nevent = \"order.create\"\npath = \"m.json\"\n";
    assert!(err(&format!("{twice}{twice}")).contains("declared twice"));
}
