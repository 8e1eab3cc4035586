//! Safe change at run time: rollout buckets and fallback, snoozes and their expiry, paused rules,
//! and located problems for the editor.

use argus_event::{Decoder, Event, Pseudonymizer, Schema};
use argus_features::FeatureSet;
use argus_policy::{
    bucket, load_checked, load_sources, Action, Overrides, PolicySet, Rollout, Snooze,
};
use std::sync::Arc;

fn set(policy: &str) -> PolicySet {
    let schema = Schema::builtin();
    let fs = FeatureSet::from_toml(&schema, "").unwrap();
    load_sources(
        &vec![("p.toml".into(), policy.into())],
        &vec![],
        &schema,
        &fs,
        &Pseudonymizer::new(b"t"),
    )
    .unwrap()
    .policies
}

fn order(actor: &str, amount: &str, device: Option<&str>, time: i64) -> Event {
    let schema = Schema::builtin();
    let d = Decoder::new(Arc::new(schema), Pseudonymizer::new(b"t"));
    let mut data = serde_json::json!({"order": "o", "amount": amount});
    if let Some(dv) = device {
        data["device"] = dv.into();
    }
    d.decode_json(
        &serde_json::json!({"id": format!("o-{actor}-{time}"), "type": "order.create",
        "time": time, "actor": actor, "data": data}),
    )
    .unwrap()
}

const CONTROL: &str = r#"
[policy]
checkpoint = "order.create"
version = "c"

[[rules]]
name = "big"
when = "event.amount > 500.0"
action = "review"
reason = "big order"
"#;

const CANDIDATE: &str = r#"
[policy]
checkpoint = "order.create"
version = "k"

[[rules]]
name = "big"
when = "event.amount > 100.0"
action = "block"
reason = "big order, lower bar"

[[rules]]
name = "coupon_named"
when = "event.coupon == 'X'"
action = "block"
reason = "reads a field orders may lack"
"#;

#[test]
fn buckets_are_stable_and_near_the_share() {
    for a in ["u1", "u2", "someone"] {
        assert_eq!(bucket("r1", a), bucket("r1", a));
        assert!(bucket("r1", a) < 10_000);
    }
    let inside = (0..20_000)
        .filter(|i| bucket("r1", &format!("u{i}")) < 2_500)
        .count();
    // 25 % of 20,000, within a few standard deviations (±61).
    assert!((4_700..5_300).contains(&inside), "{inside}");
    // A new salt draws the share afresh.
    let moved = (0..1_000)
        .filter(|i| {
            let a = format!("u{i}");
            (bucket("r1", &a) < 5_000) != (bucket("r2", &a) < 5_000)
        })
        .count();
    assert!(moved > 300, "{moved}");
}

#[test]
fn a_rollout_gives_each_actor_one_arm_and_falls_back_when_the_candidate_errs() {
    let schema = Schema::builtin();
    let mut control = set(CONTROL);
    control.rollout = Some(Rollout {
        candidate: Arc::new(set(CANDIDATE)),
        basis_points: 5_000,
        salt: "r1".into(),
    });
    let mut seen = (0, 0, 0);
    for i in 0..200 {
        let actor = format!("u{i}");
        let ours = bucket("r1", &actor) < 5_000;
        // Every event of one actor gets the same arm.
        for t in 0..3 {
            let ev = order(&actor, "200", None, 1_000 + t);
            let d = control.decide(&schema, &ev, &[]).unwrap();
            // `event.coupon` is absent: the candidate's second rule errs, so the control decides.
            assert_eq!(d.arm, Some("control"));
            assert_eq!(d.fallback, ours, "{actor}");
            assert_eq!(d.action, Action::Allow);
            // The comparison still records what the candidate would have answered.
            assert_eq!(d.other_action, Some(Action::Block));
            let ev = {
                let schema = Schema::builtin();
                let dec = Decoder::new(Arc::new(schema), Pseudonymizer::new(b"t"));
                dec.decode_json(&serde_json::json!({"id": format!("x-{i}-{t}"), "type": "order.create",
                    "time": 2_000 + t, "actor": actor, "data": {"order": "o", "amount": "200", "coupon": "Y"}}))
                .unwrap()
            };
            let d = control.decide(&schema, &ev, &[]).unwrap();
            assert!(!d.fallback);
            if ours {
                assert_eq!(d.arm, Some("candidate"));
                assert_eq!(d.action, Action::Block);
                assert_eq!(d.other_action, Some(Action::Allow));
                assert!(d.policy_version.starts_with("k+"), "{}", d.policy_version);
                seen.0 += 1;
            } else {
                assert_eq!(d.arm, Some("control"));
                assert_eq!(d.action, Action::Allow);
                assert_eq!(d.other_action, Some(Action::Block));
                assert!(d.policy_version.starts_with("c+"));
                seen.1 += 1;
            }
            seen.2 += 1;
        }
    }
    assert!(seen.0 > 0 && seen.1 > 0, "{seen:?}");
}

#[test]
fn a_snooze_skips_one_rule_for_one_entity_until_its_time() {
    let schema = Schema::builtin();
    let mut s = set(CONTROL);
    s.overrides = Arc::new(Overrides::new(
        vec![
            Snooze {
                rule: "big".into(),
                kind: "user".into(),
                value: "u1".into(),
                from: 0,
                until: 5_000,
            },
            Snooze {
                rule: "big".into(),
                kind: "device".into(),
                value: "d9".into(),
                from: 0,
                until: 5_000,
            },
        ],
        [],
    ));
    let d = s
        .decide(&schema, &order("u1", "900", None, 4_999), &[])
        .unwrap();
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.snoozed, vec!["big".to_string()]);
    // Expired at its time: the rule fires again.
    let d = s
        .decide(&schema, &order("u1", "900", None, 5_000), &[])
        .unwrap();
    assert_eq!(d.action, Action::Review);
    assert!(d.snoozed.is_empty());
    // Other entities are not snoozed; a snoozed device is, whoever uses it.
    let d = s
        .decide(&schema, &order("u2", "900", None, 1_000), &[])
        .unwrap();
    assert_eq!(d.action, Action::Review);
    let d = s
        .decide(&schema, &order("u2", "900", Some("d9"), 1_000), &[])
        .unwrap();
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.snoozed, vec!["big".to_string()]);
}

#[test]
fn a_paused_rule_fires_as_shadow_and_the_version_says_so() {
    let schema = Schema::builtin();
    let mut s = set(CONTROL);
    let base = s.version.clone();
    s.overrides = Arc::new(Overrides::new(vec![], ["big".to_string()]));
    let d = s
        .decide(&schema, &order("u1", "900", None, 1), &[])
        .unwrap();
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.paused, vec!["big".to_string()]);
    assert_eq!(d.shadow.len(), 1);
    assert_eq!(d.policy_version, format!("{base}~paused:big"));
}

#[test]
fn problems_are_located_in_the_file() {
    let text = "[policy]\ncheckpoint = \"order.create\"\n\n[[rules]]\nname = \"big\"\nwhen = \"event.amont > 5.0\"\naction = \"block\"\nreason = \"r\"\n";
    let ps = problems(text);
    assert_eq!(ps.len(), 1);
    let p = &ps[0];
    assert_eq!(p.code, "unknown_name");
    assert_eq!(p.rule.as_deref(), Some("big"));
    assert_eq!(p.line, Some(6));
    assert_eq!(p.column, Some(9));
    assert_eq!(&text[p.start.unwrap()..p.end.unwrap()], "event.amont");
    assert!(
        p.hint.as_deref().unwrap_or("").contains("event.amount"),
        "{p:?}"
    );
}

#[test]
fn a_file_that_is_not_toml_is_located_too() {
    let text = "[policy]\ncheckpoint = \"order.create\"\n\n[[rules]]\nname = \"big\nwhen = \"x\"\n";
    let ps = problems(text);
    assert_eq!(ps[0].code, "invalid_toml");
    assert_eq!(ps[0].file, "p.toml");
    assert_eq!(ps[0].line, Some(5), "{:?}", ps[0]);
    assert!(ps[0].start.is_some());
}

#[test]
fn a_problem_after_non_ascii_text_is_located_in_characters() {
    let line = "when = \"event.currency == 'é€' || event.amont > 5.0\"";
    let text = format!("[policy]\ncheckpoint = \"order.create\"\n\n[[rules]]\nname = \"big\"\n{line}\naction = \"block\"\nreason = \"r\"\n");
    let ps = problems(&text);
    let p = &ps[0];
    let want = line[..line.find("event.amont").unwrap()].chars().count() + 1;
    assert_eq!(
        (p.line, p.column, p.length),
        (Some(6), Some(want), Some(11)),
        "{p:?}"
    );
    assert_eq!(&text[p.start.unwrap()..p.end.unwrap()], "event.amont");
}

/// The problems `load_checked` finds in one policy file (it must not load).
fn problems(text: &str) -> Vec<argus_policy::Problem> {
    let schema = Schema::builtin();
    let fs = FeatureSet::from_toml(&schema, "").unwrap();
    match load_checked(
        &vec![("p.toml".into(), text.to_string())],
        &vec![],
        &schema,
        &fs,
        &Pseudonymizer::new(b"t"),
    ) {
        Err(ps) => ps,
        Ok(_) => panic!("loaded"),
    }
}
