//! Versions, approvals, scheduled activation, rollback, snoozes, pauses and backtest records on
//! SQLite and (when `ARGUS_TEST_POSTGRES` names a server) PostgreSQL; the guard; diffs and edits.

use argus_lifecycle::*;

async fn urls(dir: &std::path::Path, test: &str) -> Vec<String> {
    let mut v = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.join("lifecycle.db").display()
    )];
    if let Some(url) = argus_store::test_database(&format!("argus_lifecycle_{test}")).await {
        v.push(url);
    }
    v
}

const A: &str = r#"[policy]
checkpoint = "order.create"

[[rules]]
name = "big"
when = "event.amount > 500.0"
action = "review"
reason = "big"
"#;

fn files(text: &str) -> Files {
    [("orders.toml".to_string(), text.to_string())].into()
}

fn new<'a>(author: &'a str, f: &'a Files, needs: &'a [String]) -> NewVersion<'a> {
    NewVersion {
        author,
        message: "change",
        files: f,
        parent: None,
        origin: "console",
        needs_approval: needs,
    }
}

#[tokio::test]
async fn versions_approvals_schedules_and_rollback() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "versions").await {
        let s = Store::open(&url).await.unwrap();
        let f1 = files(A);
        // A first version needing no approval goes live at once.
        let v1 = s.create(&new("ana", &f1, &[]), 1_000).await.unwrap();
        assert_eq!((v1.status.as_str(), v1.label.as_str()), (DRAFT, "v1"));
        let v1 = s.activate(v1.id, "ana", None, None, 1_100).await.unwrap();
        assert_eq!(v1.status, ACTIVE);
        // A change that blocks in enforce mode needs someone else's approval.
        let f2 = files(&A.replace("\"review\"", "\"block\""));
        let reasons = ApprovalPolicy::default().reasons(&diff(&f1, &f2));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        let v2 = s.create(&new("ana", &f2, &reasons), 2_000).await.unwrap();
        assert_eq!(v2.needs_approval, reasons);
        let e = s
            .activate(v2.id, "ana", None, None, 2_100)
            .await
            .unwrap_err();
        assert!(matches!(e, LifecycleError::Forbidden(_)), "{e}");
        // The author cannot approve it.
        let e = s
            .review(v2.id, "ana", true, "lgtm", 2_200)
            .await
            .unwrap_err();
        assert!(matches!(e, LifecycleError::Forbidden(_)), "{e}");
        let v2 = s
            .review(v2.id, "bob", true, "checked the backtest", 2_300)
            .await
            .unwrap();
        assert_eq!(v2.status, APPROVED);
        assert_eq!(s.reviews(v2.id).await.unwrap()[0].reviewer, "bob");
        // Scheduled: nothing happens before its time, then it becomes active and v1 retires.
        let v2 = s
            .activate(v2.id, "ana", Some(10_000), None, 2_400)
            .await
            .unwrap();
        assert_eq!(
            (v2.status.as_str(), v2.activate_at),
            (SCHEDULED, Some(10_000))
        );
        assert!(s.activate_due(9_999).await.unwrap().is_none());
        assert_eq!(s.active().await.unwrap().unwrap().id, v1.id);
        let now = s.activate_due(10_000).await.unwrap().unwrap();
        assert_eq!((now.id, now.status.as_str()), (v2.id, ACTIVE));
        assert_eq!(s.get(v1.id).await.unwrap().status, RETIRED);
        // A retired version is not activated again: a rollback makes a new version with its files.
        assert!(matches!(
            s.activate(v1.id, "bob", None, None, 11_000).await,
            Err(LifecycleError::Conflict(_))
        ));
        let v3 = s
            .rollback(v1.id, "bob", "too many blocks", 11_000)
            .await
            .unwrap();
        assert_eq!(
            (v3.status.as_str(), v3.origin.as_str()),
            (ACTIVE, "rollback")
        );
        assert_eq!(v3.files, v1.files.clone());
        assert_eq!(v3.parent, Some(v2.id));
        assert_eq!(v3.digest, v1.digest);
        // A version never active cannot be rolled back to.
        let v4 = s.create(&new("ana", &f2, &reasons), 12_000).await.unwrap();
        assert!(matches!(
            s.rollback(v4.id, "bob", "x", 12_100).await,
            Err(LifecycleError::Conflict(_))
        ));
        // The emergency path goes live without approval, and says so.
        let v4 = s
            .activate(v4.id, "ana", None, Some("chargebacks spiking now"), 12_200)
            .await
            .unwrap();
        assert_eq!(v4.emergency.as_deref(), Some("chargebacks spiking now"));
        assert_eq!(v4.status, ACTIVE);
        // Rejection stops a version.
        let v5 = s.create(&new("ana", &f2, &reasons), 13_000).await.unwrap();
        let v5 = s.review(v5.id, "bob", false, "no", 13_100).await.unwrap();
        assert_eq!(v5.status, REJECTED);
        assert!(s.activate(v5.id, "ana", None, None, 13_200).await.is_err());
        // Two schedules due at once: the later one runs; the earlier never ran, so it is retired
        // without an activation time and cannot be rolled back to.
        let a = s.create(&new("ana", &f1, &[]), 14_000).await.unwrap();
        let b = s.create(&new("ana", &f1, &[]), 14_001).await.unwrap();
        s.activate(a.id, "ana", Some(20_000), None, 14_100)
            .await
            .unwrap();
        s.activate(b.id, "ana", Some(21_000), None, 14_100)
            .await
            .unwrap();
        let now = s.activate_due(30_000).await.unwrap().unwrap();
        assert_eq!(now.id, b.id);
        let a = s.get(a.id).await.unwrap();
        assert_eq!((a.status.as_str(), a.activated_at), (RETIRED, None));
        assert!(matches!(
            s.rollback(a.id, "bob", "x", 31_000).await,
            Err(LifecycleError::Conflict(_))
        ));
        assert_eq!(s.active().await.unwrap().unwrap().id, b.id);
        // History, newest first, and the record of who did what.
        let list = s.list(None, 10).await.unwrap();
        assert_eq!(
            list.iter().map(|v| v.id).collect::<Vec<_>>(),
            [7, 6, 5, 4, 3, 2, 1]
        );
        assert!(list[0].files.is_none());
        let what: Vec<String> = s
            .events(Some(v2.id), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.what)
            .collect();
        assert_eq!(what, ["activated", "scheduled", "approved", "created"]);
    }
}

#[tokio::test]
async fn snoozes_expire_and_pauses_and_backtests_are_recorded() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "snoozes").await {
        let s = Store::open(&url).await.unwrap();
        assert!(s
            .snooze("big", "user", "u1", 500, "r", "ana", None, 1_000)
            .await
            .is_err());
        let z = s
            .snooze(
                "big",
                "user",
                "u1",
                5_000,
                "known good buyer",
                "ana",
                Some("c-1"),
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(s.snoozes(4_999, false).await.unwrap().len(), 1);
        assert!(s.snoozes(5_000, false).await.unwrap().is_empty());
        s.unsnooze(z.id, "bob", 2_000).await.unwrap();
        assert!(s.snoozes(2_001, false).await.unwrap().is_empty());
        assert_eq!(s.snoozes(2_001, true).await.unwrap().len(), 1);
        // The guard's pause, resumed only by a person with a reason.
        let t = Trip {
            rule: "big".into(),
            checkpoint: "order.create".into(),
            cause: Cause::HitRate,
            window_hits: 30,
            window_events: 31,
            window_blocks: 30,
            rate: 0.97,
            baseline: 0.05,
            events_seen: 31,
            actors: 25,
            paused_from: 32,
        };
        let p = s.pause(&t, None, 3_000).await.unwrap();
        assert_eq!(s.pauses(true).await.unwrap().len(), 1);
        assert!(s.resume(p.id, "bob", " ", 3_100).await.is_err());
        s.resume(p.id, "bob", "fixed the condition", 3_100)
            .await
            .unwrap();
        assert!(s.pauses(true).await.unwrap().is_empty());
        assert!(matches!(
            s.resume(p.id, "bob", "again", 3_200).await,
            Err(LifecycleError::Conflict(_))
        ));
        // Backtests keep their summary and changed decisions in order.
        let b = s.backtest_start(1, "ana", 4_000).await.unwrap();
        let changes: Vec<serde_json::Value> =
            (0..3).map(|i| serde_json::json!({"event": i})).collect();
        s.backtest_finish(b, &serde_json::json!({"events": 10}), &changes, 4_100)
            .await
            .unwrap();
        let bt = s.backtest(b).await.unwrap();
        assert_eq!(
            (bt.status.as_str(), bt.summary["events"].as_i64()),
            ("done", Some(10))
        );
        assert_eq!(s.backtest_changes(b, 1, 10).await.unwrap(), changes[1..]);
        // One rollout at a time.
        let r = s.rollout_start(2, 1_000, "ana", 5_000).await.unwrap();
        assert_eq!(r.salt, format!("rollout-{}", r.id));
        assert!(s.rollout_start(2, 1_000, "ana", 5_001).await.is_err());
        s.rollout_end("bob", "stopped", serde_json::json!({}), 5_002)
            .await
            .unwrap();
        assert!(s.rollout_active().await.unwrap().is_none());
    }
}

#[test]
fn the_guard_pauses_a_rule_whose_rate_jumps_and_caps_the_block_rate() {
    let cfg = GuardConfig::default();
    // A rule that fires on 2 % of events, learned over 10,000 events, never trips.
    let mut g = Guard::new(cfg.clone());
    for i in 0..10_000u32 {
        let fired: &[(&str, bool)] = if i % 50 == 0 {
            &[("steady", true)]
        } else {
            &[]
        };
        assert!(
            g.observe("order.create", i as u128, !fired.is_empty(), fired)
                .is_empty(),
            "{i}"
        );
    }
    assert!((g.baseline("order.create", "steady") - 0.02).abs() < 0.005);
    // Then it fires on every event: it trips after min_hits more hits, once.
    let mut tripped = None;
    for i in 0..200u32 {
        let t = g.observe("order.create", i as u128, true, &[("steady", true)]);
        if !t.is_empty() {
            tripped = Some((i, t));
            break;
        }
    }
    let (at, t) = tripped.expect("tripped");
    // The window's rate passes 5 × 2 % after about 80 more hits (1,000 events' window).
    assert!(at < 100, "{at}");
    assert_eq!((t[0].rule.as_str(), t[0].cause), ("steady", Cause::HitRate));
    assert!(g
        .observe("order.create", 7, true, &[("steady", true)])
        .is_empty());
    // A brand-new broken rule is judged against the prior, over the events since it first fired:
    // paused after min_hits events, however many events the window held before.
    let mut g = Guard::new(cfg.clone());
    for _ in 0..5_000 {
        g.observe("payment.attempt", 0, false, &[]);
    }
    let n = (1..=100u32)
        .find(|&i| {
            !g.observe("payment.attempt", i as u128, true, &[("broken", true)])
                .is_empty()
        })
        .unwrap();
    assert_eq!(n, cfg.min_hits);
    // Resumed, and still broken: it trips again after min_hits more hits.
    g.resume("broken");
    let again = (1..=100u32)
        .find(|&i| {
            !g.observe(
                "payment.attempt",
                1_000 + i as u128,
                true,
                &[("broken", true)],
            )
            .is_empty()
        })
        .unwrap();
    assert_eq!(again, cfg.min_hits);
    // The same burst from a few accounts (an attack the rule is right to catch) does not trip it:
    // its last hits come from fewer than min_actors actors.
    let mut g = Guard::new(cfg.clone());
    for i in 0..200u32 {
        let t = g.observe(
            "payment.attempt",
            (i % 3) as u128,
            true,
            &[("card_testing", true)],
        );
        assert!(t.is_empty(), "{t:?}");
    }
    // The block-rate cap: rules each below their own trip point, together over the cap.
    let mut g = Guard::new(GuardConfig {
        multiple: 100.0,
        ..cfg
    });
    let mut cap = None;
    for i in 0..1_000u32 {
        let fired: &[(&str, bool)] = match i % 3 {
            0 => &[("a", true)],
            1 => &[("b", true), ("a", false)],
            _ => &[],
        };
        let t = g.observe("order.create", i as u128, !fired.is_empty(), fired);
        if let Some(t) = t.into_iter().next() {
            cap = Some(t);
            break;
        }
    }
    let t = cap.expect("the cap tripped");
    assert_eq!(t.cause, Cause::BlockRate);
    assert!(t.rate > 0.5);
    // One rule at a time: the window still holds the paused rule's blocks, so the cap waits for it
    // to roll over before it judges the checkpoint again (the other rule is not paused next event).
    for _ in 0..500 {
        let t = g.observe("order.create", 3, true, &[("b", true)]);
        assert!(t.iter().all(|t| t.cause != Cause::BlockRate), "{t:?}");
    }
    g.resume(&t.rule);
}

/// A guard restored from its saved state goes on exactly as the uninterrupted one: the same trips at
/// the same events, and the same state after (what a snapshot keeps, so that a restarted server or
/// a cluster node started from another node's snapshot watches on from the same point).
#[test]
fn a_guard_restored_from_its_state_trips_where_the_uninterrupted_one_does() {
    let cfg = GuardConfig::default();
    // Two checkpoints; a steady rule, a rule that breaks later, and a rule already paused.
    let feed = |g: &mut Guard, i: u32| -> Vec<Trip> {
        let mut t = Vec::new();
        let fired: Vec<(&str, bool)> = [
            i.is_multiple_of(40).then_some(("steady", true)),
            (i > 7_000 && i.is_multiple_of(2)).then_some(("breaks", true)),
            (i < 300).then_some(("early", true)),
        ]
        .into_iter()
        .flatten()
        .collect();
        t.extend(g.observe("order.create", (i % 97) as u128, !fired.is_empty(), &fired));
        t.extend(g.observe(
            "payment.attempt",
            (i % 13) as u128,
            i.is_multiple_of(9),
            &[],
        ));
        t
    };
    let mut whole = Guard::new(cfg.clone());
    let mut first = Guard::new(cfg.clone());
    for i in 0..6_000 {
        let a = feed(&mut whole, i);
        assert_eq!(a, feed(&mut first, i), "{i}");
    }
    assert!(
        whole.tripped().any(|t| t.rule == "early"),
        "a rule is paused before the save"
    );
    // Saved and read back as bytes, as a snapshot does; the encoding does not depend on map order.
    let saved = serde_json::to_vec(&first.state()).unwrap();
    assert_eq!(saved, serde_json::to_vec(&whole.state()).unwrap());
    let state: GuardState = serde_json::from_slice(&saved).unwrap();
    // Learned under other settings, the state is not used.
    let other = GuardConfig {
        window: 500,
        ..cfg.clone()
    };
    assert!(Guard::from_state(&other, state.clone()).is_none());
    let mut restored = Guard::from_state(&cfg, state).unwrap();
    assert_eq!(restored, whole);
    let mut trips = 0;
    for i in 6_000..12_000 {
        let a = feed(&mut whole, i);
        trips += a.len();
        assert_eq!(a, feed(&mut restored, i), "{i}");
    }
    assert!(trips > 0, "the broken rule trips after the restore");
    assert_eq!(restored, whole);
}

#[test]
fn diffs_are_readable_and_modes_are_edited_in_place() {
    let f1 = files(A);
    let text = set_rule_mode(A, "big", "shadow").unwrap();
    assert!(text.contains("mode = \"shadow\"\n"), "{text}");
    let again = set_rule_mode(&text, "big", "enforce").unwrap();
    assert_eq!(again.matches("mode =").count(), 1);
    assert!(set_rule_mode(A, "nope", "shadow").is_none());
    let d = diff(&f1, &files(&text));
    assert_eq!(d.files.len(), 1);
    assert!(
        d.files[0].diff.contains("+mode = \"shadow\""),
        "{}",
        d.files[0].diff
    );
    assert_eq!(d.rules[0].fields, ["mode"]);
    // Into shadow needs nobody; a new enforced block rule does; per-checkpoint settings apply.
    let p = ApprovalPolicy::default();
    assert!(p.reasons(&d).is_empty());
    let blocky = A.replace("\"review\"", "\"block\"");
    assert_eq!(p.reasons(&diff(&Files::new(), &files(&blocky))).len(), 1);
    let strict = ApprovalPolicy {
        actions: vec![],
        checkpoints: [("order.create".to_string(), vec!["review".to_string()])].into(),
    };
    assert_eq!(strict.reasons(&diff(&Files::new(), &f1)).len(), 1);
    assert!(strict
        .reasons(&diff(&Files::new(), &files(&blocky)))
        .is_empty());
}

/// `pause_after`: a tripped rule is paused from that many decisions (every checkpoint's) after the
/// one that tripped it; at the default 1, from the next one. Until then it is not watched, and
/// `paused` does not name it; the pause starts at exactly one decision (`pause_starts`).
#[test]
fn a_trip_pauses_its_rule_pause_after_decisions_later() {
    for lag in [1u64, 5, 40] {
        let mut g = Guard::new(GuardConfig {
            pause_after: lag,
            min_actors: 1,
            ..GuardConfig::default()
        });
        let mut tripped_at = None;
        let mut started = Vec::new();
        for i in 1..=200u64 {
            // Two checkpoints interleaved: the lag counts both.
            let t = if i % 2 == 0 {
                g.observe("order.create", 1, true, &[("broken", true)])
            } else {
                g.observe("item.click", 1, false, &[])
            };
            if let Some(t) = t.first() {
                assert_eq!(t.paused_from, i + lag, "lag {lag}");
                tripped_at = Some(i);
            }
            if g.pause_starts() {
                started.push(i + 1);
            }
            let paused: Vec<&str> = g.paused().collect();
            let due = tripped_at.is_some_and(|d| i + 1 >= d + lag);
            assert_eq!(paused == ["broken"], due, "lag {lag}, decision {i}");
        }
        let d = tripped_at.expect("the broken rule trips");
        assert_eq!(started, [d + lag], "lag {lag}: the pause starts once");
        assert_eq!(g.tripped().count(), 1);
    }
    assert!(!GuardConfig {
        pause_after: 0,
        ..GuardConfig::default()
    }
    .check()
    .is_empty());
}
