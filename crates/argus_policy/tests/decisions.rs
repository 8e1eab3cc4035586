//! Decisions: precedence, shadow mode, value lists with expiry, explanations, determinism, load checks.

use argus_event::{Decoder, Event, Pseudonymizer, Schema, Value};
use argus_features::FeatureSet;
use argus_policy::{load_sources, Action, Loaded};
use std::sync::Arc;

const FEATURES: &str = r#"
[[features]]
name = "user_orders_1h"
kind = "count"
events = ["order.create"]
window = "1h"

[[features]]
name = "seller_orders_1h"
kind = "count"
events = ["order.create"]
key = ["seller"]
window = "1h"
"#;

fn load(policy: &str, lists: &[(&str, &str)]) -> Result<(Loaded, Schema, FeatureSet), Vec<String>> {
    let schema = Schema::builtin();
    let fs = FeatureSet::from_toml(&schema, FEATURES).unwrap();
    let lists = lists
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    load_sources(
        &vec![("p.toml".into(), policy.into())],
        &lists,
        &schema,
        &fs,
        &Pseudonymizer::new(b"t"),
    )
    .map(|l| (l, schema, fs))
    .map_err(|e| e.0)
}

fn order(schema: &Schema, amount: &str, device: &str, time: i64) -> Event {
    let d = Decoder::new(Arc::new(schema.clone()), Pseudonymizer::new(b"t"));
    d.decode_json(&serde_json::json!({"id": format!("o-{time}"), "type": "order.create", "time": time, "actor": "u1",
        "data": {"order": "o", "amount": amount, "device": device}}))
    .unwrap()
}

const POLICY: &str = r#"
[policy]
checkpoint = "order.create"
version = "v1"
thresholds = { review = 50, block = 100 }

[[rules]]
name = "big"
when = "event.amount > 500.0"
action = "challenge"
score = 30
reason = "big order"

[[rules]]
name = "huge"
when = "event.amount > 900.0"
action = "challenge"
score = 30
reason = "huge order"

[[rules]]
name = "fast"
when = "features.user_orders_1h >= 3"
action = "block"
score = 10
reason = "many orders"

[[rules]]
name = "watch_device"
when = "event.device in @watched"
action = "block"
score = 100
reason = "watched device"
mode = "shadow"

[[rules]]
name = "vip"
when = "event.device in @vips"
action = "allow"
reason = "vip device"
"#;

const LISTS: &[(&str, &str)] = &[
    ("watched.toml", "[list]\nname = \"watched\"\nkind = \"watch\"\n[[items]]\nvalue = \"d-bad\"\nreason = \"x\"\n"),
    ("vips.toml", "[list]\nname = \"vips\"\nkind = \"allow\"\n[[items]]\nvalue = \"d-vip\"\nreason = \"y\"\nexpires = \"2026-01-01T00:00:00Z\"\n"),
];

#[test]
fn precedence_scores_shadow_and_lists() {
    let (l, schema, _) = load(POLICY, LISTS).unwrap();
    let p = &l.policies;
    let feats = |n: i64| vec![Value::Int(n), Value::Int(0)];
    // Below every rule.
    let d = p
        .decide(&schema, &order(&schema, "10", "d1", 0), &feats(1))
        .unwrap();
    assert_eq!(
        (d.action, d.decided_by, d.score),
        (Action::Allow, "default", 0)
    );
    // One challenge rule.
    let d = p
        .decide(&schema, &order(&schema, "600", "d1", 0), &feats(1))
        .unwrap();
    assert_eq!((d.action, d.decided_by), (Action::Challenge, "rule_action"));
    assert_eq!(
        d.fired[0].reads,
        vec![("event.amount".to_string(), serde_json::json!(600.0))]
    );
    // Two challenge rules: 60 points reach the review threshold.
    let d = p
        .decide(&schema, &order(&schema, "950", "d1", 0), &feats(1))
        .unwrap();
    assert_eq!(
        (d.action, d.decided_by, d.score),
        (Action::Review, "score_threshold", 60)
    );
    // The most severe enforced action wins.
    let d = p
        .decide(&schema, &order(&schema, "10", "d1", 0), &feats(3))
        .unwrap();
    assert_eq!(d.action, Action::Block);
    // A shadow rule is recorded and changes nothing.
    let d = p
        .decide(&schema, &order(&schema, "10", "d-bad", 0), &feats(1))
        .unwrap();
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.shadow.len(), 1);
    assert_eq!(d.shadow[0].rule, "watch_device");
    // An allow rule decides first… until its list item expires (judged at event time).
    let d = p
        .decide(&schema, &order(&schema, "950", "d-vip", 1_000), &feats(5))
        .unwrap();
    assert_eq!((d.action, d.decided_by), (Action::Allow, "allow_rule"));
    let after = argus_event::time::parse_datetime("2026-01-01T00:00:00Z").unwrap();
    let d = p
        .decide(&schema, &order(&schema, "950", "d-vip", after), &feats(5))
        .unwrap();
    assert_eq!(d.action, Action::Block);
    // Same input, same decision.
    let a = p
        .decide(&schema, &order(&schema, "950", "d1", 7), &feats(2))
        .unwrap();
    let b = p
        .decide(&schema, &order(&schema, "950", "d1", 7), &feats(2))
        .unwrap();
    assert_eq!(a, b);
    assert!(a.policy_version.starts_with("v1+"));
}

#[test]
fn an_absent_field_is_recorded_not_fired() {
    let (l, schema, _) = load(
        "[policy]\ncheckpoint = \"order.create\"\n[[rules]]\nname = \"cc\"\nwhen = \"event.currency == 'EUR'\"\naction = \"review\"\nreason = \"r\"\n",
        &[],
    )
    .unwrap();
    let d = l
        .policies
        .decide(&schema, &order(&schema, "10", "d1", 0), &[Value::Int(1)])
        .unwrap();
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.errors.len(), 1);
    assert!(
        d.errors[0].error.contains("event.currency"),
        "{:?}",
        d.errors
    );
}

#[test]
fn load_reports_every_problem_with_its_rule() {
    let bad = r#"
[policy]
checkpoint = "order.create"

[[rules]]
name = "a"
when = "event.amont > 1"
action = "review"
reason = "r"

[[rules]]
name = "a"
when = "features.user_order_1h > 1"
action = "deny"
reason = "r"

[[rules]]
name = "c"
when = "false"
action = "review"
reason = "r"
mode = "loud"

[[rules]]
name = "d"
when = "true"
action = "block"
reason = "always"

[[rules]]
name = "e"
when = "event.amount > 1.0"
action = "review"
reason = "r"
"#;
    let errs = load(bad, &[]).err().unwrap();
    let all = errs.join("\n");
    for want in [
        "did you mean `event.amount`",
        "rule named `a` already exists",
        "did you mean `features.user_orders_1h`",
        "action `deny` is not",
        "mode `loud`",
        "always false",
        "rule `d` before it always blocks",
    ] {
        assert!(all.contains(want), "missing `{want}` in:\n{all}");
    }
    let checkpoint = load("[policy]\ncheckpoint = \"order.creat\"\n", &[])
        .err()
        .unwrap();
    assert!(
        checkpoint[0].contains("did you mean `order.create`"),
        "{checkpoint:?}"
    );
}

#[test]
fn a_feature_not_computed_for_a_checkpoint_is_explained() {
    // Keyed by actor: readable on logins too.
    assert!(load("[policy]\ncheckpoint = \"account.login\"\n[[rules]]\nname = \"x\"\nwhen = \"features.user_orders_1h > 1\"\naction = \"review\"\nreason = \"r\"\n", &[]).is_ok());
    // Keyed by seller: logins have no seller, so the feature is never computed there.
    let errs = load("[policy]\ncheckpoint = \"account.login\"\n[[rules]]\nname = \"x\"\nwhen = \"features.seller_orders_1h > 1\"\naction = \"review\"\nreason = \"r\"\n", &[]).err().unwrap();
    assert!(
        errs[0].contains("never computed for `account.login`"),
        "{errs:?}"
    );
}
