//! The case store on SQLite (the embedded default) and on PostgreSQL, the same suite on both:
//! deduplication by subject, the timeline, the queue order, claims that never give one case to two
//! people and that time out, verdicts, and migrations applied once.
//!
//! PostgreSQL: `ARGUS_TEST_POSTGRES` names a server's URL (a role that may create databases; `.ci/run`
//! starts Debian's PostgreSQL and sets it). Each test gets a database of its own. Without the variable
//! the PostgreSQL half is left out with a message, or fails when `ARGUS_REQUIRE_DATA` is set (CI).

use argus_cases::{CaseError, Placement, Status, Store, Subject, Trigger};
use serde_json::json;

fn user(id: &str) -> Subject {
    Subject {
        kind: "user".into(),
        id: id.into(),
    }
}

fn decision(event: &str, score: i64) -> Trigger {
    Trigger {
        source: "decision".into(),
        reference: event.into(),
        body: json!({"action": "review", "score": score, "fired": ["coupon_ring"]}),
    }
}

fn place(priority: i64) -> Placement {
    Placement {
        inbox: "coupons".into(),
        priority,
        sla_ms: 3_600_000,
        assign_to: vec![],
        cap: 5,
    }
}

/// The databases every test runs on: a SQLite file in `dir`, and a fresh PostgreSQL database named
/// after `test` when a server is given.
async fn urls(dir: &std::path::Path, test: &str) -> Vec<String> {
    let mut v = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.join("cases.db").display()
    )];
    if let Some(url) = argus_store::test_database(&format!("argus_cases_{test}")).await {
        v.push(url);
    }
    v
}

async fn open(url: &str) -> Store {
    Store::open(url).await.expect("the store opens")
}

#[tokio::test]
async fn a_subject_has_one_open_case_whose_timeline_collects_its_triggers() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "a_subject0").await {
        a_subject_has_one_open_case_whose_timeline_collects_its_triggers_on(&url).await;
    }
}

async fn a_subject_has_one_open_case_whose_timeline_collects_its_triggers_on(url: &str) {
    let s = open(url).await;
    let a = s
        .open_or_join(&user("u1"), &decision("e1", 60), &place(10), 1_000)
        .await
        .unwrap();
    let b = s
        .open_or_join(&user("u1"), &decision("e2", 80), &place(30), 2_000)
        .await
        .unwrap();
    assert_eq!(a.id, b.id, "one open case per subject");
    assert_eq!((b.triggers, b.priority, b.status), (2, 30, Status::Open));
    assert_eq!(b.sla_due, 1_000 + 3_600_000, "the earlier SLA is kept");
    let t = s.timeline(&b.id).await.unwrap();
    assert_eq!(
        t.iter()
            .map(|e| (e.kind.as_str(), e.actor.as_str()))
            .collect::<Vec<_>>(),
        [("decision", "e1"), ("decision", "e2")]
    );
    assert_eq!(t[1].body["score"], 80);
    // Another subject gets its own case; once resolved, a new trigger opens a new case.
    let other = s
        .open_or_join(&user("u2"), &decision("e3", 50), &place(5), 3_000)
        .await
        .unwrap();
    assert_ne!(other.id, b.id);
    let claimed = s
        .claim_next("coupons", "ana", 4_000, 60_000, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, b.id, "the higher priority first");
    s.resolve(
        &b.id,
        "ana",
        "confirmed_fraud",
        &json!({"ban": true}),
        &[],
        5_000,
    )
    .await
    .unwrap();
    let again = s
        .open_or_join(&user("u1"), &decision("e4", 90), &place(10), 6_000)
        .await
        .unwrap();
    assert_ne!(
        again.id, b.id,
        "a resolved case is not reopened by a new trigger"
    );
    assert_eq!(again.triggers, 1);
    let old = s.get(&b.id).await.unwrap();
    assert_eq!(
        (old.status, old.disposition.as_deref()),
        (Status::Resolved, Some("confirmed_fraud"))
    );
    let t = s.timeline(&b.id).await.unwrap();
    assert_eq!(
        t.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["decision", "decision", "claim", "verdict"]
    );
    assert_eq!(t[3].body["details"]["ban"], true);
}

#[tokio::test]
async fn the_queue_is_most_urgent_first_and_a_claim_is_exclusive_until_it_times_out() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "the_queue1").await {
        the_queue_is_most_urgent_first_and_a_claim_is_exclusive_until_it_times_out_on(&url).await;
    }
}

async fn the_queue_is_most_urgent_first_and_a_claim_is_exclusive_until_it_times_out_on(url: &str) {
    let s = open(url).await;
    for (i, p) in [(1, 5), (2, 50), (3, 50), (4, 1)] {
        s.open_or_join(
            &user(&format!("u{i}")),
            &decision(&format!("e{i}"), p),
            &place(p),
            i * 10,
        )
        .await
        .unwrap();
    }
    let list = s
        .list(Some("coupons"), Some(Status::Open), 10)
        .await
        .unwrap();
    assert_eq!(
        list.iter()
            .map(|c| c.subject.id.as_str())
            .collect::<Vec<_>>(),
        ["u2", "u3", "u1", "u4"],
        "priority, then the earlier SLA"
    );
    let a = s
        .claim_next("coupons", "ana", 100, 1_000, 100)
        .await
        .unwrap()
        .unwrap();
    let b = s
        .claim_next("coupons", "bo", 100, 1_000, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.subject.id.as_str(), b.subject.id.as_str()), ("u2", "u3"));
    assert_eq!(a.lock_owner.as_deref(), Some("ana"));
    // Another user can neither resolve nor release a case someone holds.
    let e = s
        .resolve(&a.id, "bo", "legitimate", &json!({}), &[], 200)
        .await
        .unwrap_err();
    assert!(
        matches!(e, CaseError::Conflict(ref m) if m.contains("claimed by `ana`")),
        "{e}"
    );
    assert!(matches!(
        s.release(&a.id, "bo", 200).await,
        Err(CaseError::Conflict(_))
    ));
    // Ana's lock times out: the case goes to the next claimant, and Ana can no longer resolve it.
    let c = s
        .claim_next("coupons", "cy", 1_200, 1_000, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.id, a.id,
        "an expired lock frees the case (most urgent first)"
    );
    assert!(matches!(
        s.resolve(&a.id, "ana", "legitimate", &json!({}), &[], 1_300)
            .await,
        Err(CaseError::Conflict(_))
    ));
    // Released cases come back; resolved ones do not.
    s.release(&c.id, "cy", 1_300).await.unwrap();
    let again = s
        .claim_next("coupons", "dee", 1_400, 1_000, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, a.id);
    s.resolve(&again.id, "dee", "legitimate", &json!({}), &[], 1_500)
        .await
        .unwrap();
    let left: Vec<String> = s
        .list(Some("coupons"), None, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.status != Status::Resolved)
        .map(|c| c.subject.id)
        .collect();
    assert_eq!(left, ["u3", "u1", "u4"]);
    // Bad requests are refused, not stored.
    assert!(matches!(
        s.note(&b.id, "bo", "  ", 1_600).await,
        Err(CaseError::Invalid(_))
    ));
    assert!(matches!(s.get("nope").await, Err(CaseError::NotFound(_))));
    assert!(matches!(
        s.claim_next("coupons", "", 1_600, 1_000, 100).await,
        Err(CaseError::Invalid(_))
    ));
}

#[tokio::test]
async fn concurrent_claimants_never_share_a_case() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "concurrent_claimants2").await {
        concurrent_claimants_never_share_a_case_on(&url).await;
    }
}

async fn concurrent_claimants_never_share_a_case_on(url: &str) {
    let s = open(url).await;
    for i in 0..20 {
        s.open_or_join(
            &user(&format!("u{i}")),
            &decision(&format!("e{i}"), 10),
            &place(i),
            i,
        )
        .await
        .unwrap();
    }
    // 8 analysts ask for cases at once until the inbox is empty.
    let mut tasks = Vec::new();
    for a in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = s
                .claim_next("coupons", &format!("analyst{a}"), 1_000, 60_000, 100)
                .await
                .unwrap()
            {
                got.push(c.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (20, 20), "every case claimed exactly once");
}

#[tokio::test]
async fn migrations_apply_once_and_the_data_survives_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "migrations_apply3").await {
        migrations_apply_once_and_the_data_survives_a_reopen_on(&url).await;
    }
}

async fn migrations_apply_once_and_the_data_survives_a_reopen_on(url: &str) {
    let s = open(url).await;
    let c = s
        .open_or_join(&user("u1"), &decision("e1", 60), &place(10), 1_000)
        .await
        .unwrap();
    s.note(&c.id, "ana", "same device as u7", 2_000)
        .await
        .unwrap();
    drop(s);
    let s = open(url).await;
    let t = s.timeline(&c.id).await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].body["text"], "same device as u7");
    // An in-memory store works too (tests, tools).
    let m = Store::open("sqlite::memory:").await.unwrap();
    assert!(m.list(None, None, 10).await.unwrap().is_empty());
}

fn ring(members: &[&str]) -> (Subject, Vec<String>, Trigger) {
    (
        Subject {
            kind: "ring".into(),
            id: format!("cluster:{}", members[0]),
        },
        members.iter().map(|m| m.to_string()).collect(),
        Trigger {
            source: "finding".into(),
            // Findings are numbered in the order found: a grown ring is a new finding.
            reference: format!("f-{}", members.len()),
            body: json!({"accounts": members}),
        },
    )
}

#[tokio::test]
async fn rings_pages_caps_escalation_and_assignment() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "rings_pages4").await {
        rings_pages_caps_escalation_and_assignment_on(&url).await;
    }
}

async fn rings_pages_caps_escalation_and_assignment_on(url: &str) {
    let s = open(url).await;
    // A ring case names its members; a decision about a member joins it instead of opening a case.
    let (subj, members, t) = ring(&["u1", "u2", "u3"]);
    let r = s
        .open_or_join_with(&subj, &members, &t, &place(10), 100)
        .await
        .unwrap();
    let joined = s
        .intake_decision(&user("u2"), &decision("e9", 50), &place(0), 200)
        .await
        .unwrap();
    assert_eq!((joined.id.as_str(), joined.triggers), (r.id.as_str(), 2));
    let (subj2, members2, t2) = ring(&["u1", "u2", "u3", "u4"]);
    let grown = s
        .open_or_join_with(&subj2, &members2, &t2, &place(10), 300)
        .await
        .unwrap();
    assert_eq!(grown.id, r.id, "the same ring found again joins its case");
    assert_eq!(s.members(&r.id).await.unwrap(), ["u1", "u2", "u3", "u4"]);
    let own = s
        .intake_decision(&user("u9"), &decision("e10", 50), &place(0), 300)
        .await
        .unwrap();
    assert_eq!(own.subject, user("u9"));
    assert_eq!(s.cases_of("u4", 10).await.unwrap()[0].id, r.id);

    // Keyset pages walk the queue order without gaps or repeats.
    for i in 0..23 {
        s.open_or_join(
            &user(&format!("p{i}")),
            &decision(&format!("p{i}"), 1),
            &place(i % 3),
            1_000 + i,
        )
        .await
        .unwrap();
    }
    let all = s.list(Some("coupons"), None, 100).await.unwrap();
    let mut paged = Vec::new();
    let mut after: Option<argus_cases::Cursor> = None;
    loop {
        let f = argus_cases::Filter {
            inbox: Some("coupons".into()),
            ..Default::default()
        };
        let (page, next) = s.page(&f, after.as_ref(), 7).await.unwrap();
        paged.extend(page.into_iter().map(|c| c.id));
        match next {
            Some(c) => after = Some(argus_cases::Cursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    assert_eq!(paged, all.iter().map(|c| c.id.clone()).collect::<Vec<_>>());
    let f = argus_cases::Filter {
        subject: Some("u3".into()),
        ..Default::default()
    };
    assert_eq!(s.page(&f, None, 10).await.unwrap().0[0].id, r.id);

    // The per-user cap.
    s.claim_next("coupons", "ana", 2_000, 60_000, 2)
        .await
        .unwrap()
        .unwrap();
    s.claim_next("coupons", "ana", 2_000, 60_000, 2)
        .await
        .unwrap()
        .unwrap();
    let e = s
        .claim_next("coupons", "ana", 2_000, 60_000, 2)
        .await
        .unwrap_err();
    assert!(
        matches!(e, CaseError::Conflict(ref m) if m.contains("cap is 2")),
        "{e}"
    );

    // Escalation, by hand and past the SLA.
    let routing = argus_cases::Routing::compile(
        &toml::from_str(
            "[[inboxes]]\nname = \"coupons\"\nsla = \"1s\"\nescalate_to = \"senior\"\n[[inboxes]]\nname = \"senior\"\n[[routes]]\ninbox = \"coupons\"",
        )
        .unwrap(),
    )
    .unwrap();
    let moved = s.escalate_overdue(&routing, 10_000_000).await.unwrap();
    assert!(moved >= 20, "overdue open cases move: {moved}");
    let senior = s.list(Some("senior"), None, 100).await.unwrap();
    assert_eq!(senior.len(), moved);
    let t = s.timeline(&senior[0].id).await.unwrap();
    assert_eq!(t.last().unwrap().kind, "escalate");
    assert_eq!(t.last().unwrap().body["reason"], "past its SLA");

    // Auto-assignment: the user with the fewest assigned cases, below the cap.
    let mut p = place(0);
    p.assign_to = vec!["cy".into(), "dee".into()];
    p.cap = 1;
    let a1 = s
        .open_or_join(&user("z1"), &decision("z1", 1), &p, 3_000)
        .await
        .unwrap();
    let a2 = s
        .open_or_join(&user("z2"), &decision("z2", 1), &p, 3_000)
        .await
        .unwrap();
    let a3 = s
        .open_or_join(&user("z3"), &decision("z3", 1), &p, 3_000)
        .await
        .unwrap();
    assert_eq!(
        (a1.assignee.as_deref(), a2.assignee.as_deref(), a3.assignee),
        (Some("cy"), Some("dee"), None)
    );
    // An assigned case is left to its assignee; cy gets theirs first.
    let got = s
        .claim_next("coupons", "cy", 3_000, 60_000, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, a1.id);

    // Reopen; tags.
    s.resolve(&got.id, "cy", "legitimate", &json!({}), &[], 3_100)
        .await
        .unwrap();
    let re = s
        .reopen(&got.id, "cy", "new evidence", 1_000, 3_200)
        .await
        .unwrap();
    assert_eq!(re.status, Status::Open);
    let tagged = s
        .tag(&re.id, "cy", &["vip".into(), "vip".into()], 3_300)
        .await
        .unwrap();
    assert_eq!(tagged.tags, ["vip"]);
}

#[tokio::test]
async fn verdict_actions_outbox_jobs_and_users() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "verdict_actions5").await {
        verdict_actions_outbox_jobs_and_users_on(&url).await;
    }
}

async fn verdict_actions_outbox_jobs_and_users_on(url: &str) {
    use argus_cases::{ActionStatus, NewAction};
    let s = open(url).await;
    let c = s
        .open_or_join(&user("u1"), &decision("e1", 60), &place(1), 0)
        .await
        .unwrap();
    s.claim(&c.id, "ana", 10, 60_000, 5).await.unwrap();
    assert!(matches!(
        s.claim(&c.id, "bo", 20, 60_000, 5).await,
        Err(CaseError::Conflict(_))
    ));
    let label = NewAction {
        kind: "label".into(),
        target: "fraud.confirmed".into(),
        body: json!({"subject": "u1"}),
        key: format!("{}:label:u1", c.id),
        subject: Some("u1".into()),
    };
    let hook = NewAction {
        kind: "webhook".into(),
        target: "shop".into(),
        body: json!({"case": c.id}),
        key: format!("{}:webhook:shop", c.id),
        subject: None,
    };
    // The same key twice is one action.
    s.resolve(
        &c.id,
        "ana",
        "confirmed_fraud",
        &json!({}),
        &[label.clone(), hook.clone(), label.clone()],
        30,
    )
    .await
    .unwrap();
    let due = s.due_actions(30, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(due
        .iter()
        .all(|a| a.case_id.as_deref() == Some(c.id.as_str())));
    let h = due.iter().find(|a| a.kind == "webhook").unwrap();
    s.action_attempted(&h.id, Err(("503".into(), Some(1_000))), 40)
        .await
        .unwrap();
    assert_eq!(
        s.due_actions(999, 10).await.unwrap().len(),
        1,
        "backing off"
    );
    s.action_attempted(&h.id, Err(("503".into(), None)), 1_000)
        .await
        .unwrap();
    let failed = s
        .actions(Some(ActionStatus::Failed), None, None, 10)
        .await
        .unwrap();
    assert_eq!((failed.len(), failed[0].attempts), (1, 2));
    assert!(matches!(
        s.retry_action(&due.iter().find(|a| a.kind == "label").unwrap().id, 1_000)
            .await,
        Err(CaseError::Conflict(_))
    ));
    s.retry_action(&h.id, 1_100).await.unwrap();
    s.action_attempted(&h.id, Ok(()), 1_200).await.unwrap();
    assert_eq!(s.action(&h.id).await.unwrap().status, ActionStatus::Done);
    let labels = s.labels_of("u1", 10).await.unwrap();
    assert_eq!(
        labels.iter().map(|a| a.target.as_str()).collect::<Vec<_>>(),
        ["fraud.confirmed"]
    );

    // A bulk job: its actions and progress.
    let acts: Vec<NewAction> = (0..5)
        .map(|i| NewAction {
            kind: "list".into(),
            target: "banned_users".into(),
            body: json!({"value": format!("m{i}")}),
            key: format!("job1:list:m{i}"),
            subject: Some(format!("m{i}")),
        })
        .collect();
    let j = s
        .start_job(
            "job1",
            "bo",
            "ring ban",
            "ban",
            &json!({"case": c.id}),
            &acts,
            &[],
            2_000,
        )
        .await
        .unwrap();
    assert_eq!((j.total, j.done), (5, 0));
    for a in s
        .actions(None, None, Some("job1"), 10)
        .await
        .unwrap()
        .iter()
        .take(3)
    {
        s.action_attempted(&a.id, Ok(()), 2_100).await.unwrap();
    }
    assert_eq!(s.job("job1").await.unwrap().done, 3);
    assert!(matches!(
        s.start_job("job2", "bo", " ", "ban", &json!({}), &[], &[], 2_000)
            .await,
        Err(CaseError::Invalid(_))
    ));

    // Users and sessions.
    assert!(matches!(
        s.set_user("ana", "analyst", "short", 0).await,
        Err(CaseError::Invalid(_))
    ));
    s.set_user("ana", "investigator", "correct horse battery", 0)
        .await
        .unwrap();
    assert!(matches!(
        s.login("ana", "wrong password!!", 60_000, 10).await,
        Err(CaseError::Unauthorized(_))
    ));
    assert!(matches!(
        s.login("nobody", "correct horse battery", 60_000, 10).await,
        Err(CaseError::Unauthorized(_))
    ));
    let (token, sess) = s
        .login("ana", "correct horse battery", 60_000, 10)
        .await
        .unwrap();
    assert_eq!(
        (sess.user.as_str(), sess.role.as_str()),
        ("ana", "investigator")
    );
    let got = s.session(&token, 20).await.unwrap().unwrap();
    assert_eq!(got.csrf, sess.csrf);
    assert!(
        s.session(&token, 60_011).await.unwrap().is_none(),
        "expired"
    );
    assert!(s.session("forged", 20).await.unwrap().is_none());
    // A new password ends the sessions.
    s.set_user("ana", "analyst", "another long password", 30)
        .await
        .unwrap();
    assert!(s.session(&token, 40).await.unwrap().is_none());
    s.logout(&token).await.unwrap();
    assert_eq!(
        s.users().await.unwrap(),
        [("ana".into(), "analyst".into(), false)]
    );
}

#[tokio::test]
async fn intake_takes_each_trigger_once_and_rings_stay_one_case() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "intake_once6").await {
        intake_takes_each_trigger_once_and_rings_stay_one_case_on(&url).await;
    }
}

async fn intake_takes_each_trigger_once_and_rings_stay_one_case_on(url: &str) {
    let s = open(url).await;
    // The same decision twice (a retry after a crash before the intake cursor moved): once.
    let a = s
        .intake_decision(&user("u7"), &decision("e7", 10), &place(1), 100)
        .await
        .unwrap();
    let b = s
        .intake_decision(&user("u7"), &decision("e7", 10), &place(1), 200)
        .await
        .unwrap();
    assert_eq!((a.id.as_str(), b.triggers), (b.id.as_str(), 1));
    // A ring, the same finding again, then the ring grown by an account that sorts first.
    let finding = |id: &str, accounts: &[&str]| Trigger {
        source: "finding".into(),
        reference: id.into(),
        body: json!({"finding": {"accounts": accounts}}),
    };
    let m = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let r1 = s
        .intake_ring(
            "cluster",
            &m(&["u5", "u6"]),
            &finding("f-1", &["u5", "u6"]),
            &place(10),
            300,
        )
        .await
        .unwrap();
    assert_eq!(r1.subject.id, "cluster:u5");
    let again = s
        .intake_ring(
            "cluster",
            &m(&["u5", "u6"]),
            &finding("f-1", &["u5", "u6"]),
            &place(10),
            310,
        )
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.triggers),
        (r1.id.as_str(), 1),
        "the same finding once"
    );
    let grown = s
        .intake_ring(
            "cluster",
            &m(&["u0", "u5", "u6"]),
            &finding("f-2", &["u0", "u5", "u6"]),
            &place(10),
            400,
        )
        .await
        .unwrap();
    assert_eq!(
        grown.id, r1.id,
        "a ring grown by an account that sorts first stays one case"
    );
    assert_eq!(s.members(&r1.id).await.unwrap(), ["u0", "u5", "u6"]);
    // Another detector's ring over the same accounts is its own case.
    let block = s
        .intake_ring(
            "block:orders",
            &m(&["u5", "u9"]),
            &finding("f-3", &["u5", "u9"]),
            &place(10),
            400,
        )
        .await
        .unwrap();
    assert_ne!(block.id, r1.id);
    // Once the ring's case is resolved, a member's decision opens a case of its own.
    s.claim(&r1.id, "ana", 500, 60_000, 5).await.unwrap();
    s.resolve(&r1.id, "ana", "confirmed_fraud", &json!({}), &[], 600)
        .await
        .unwrap();
    let own = s
        .intake_decision(&user("u6"), &decision("e8", 10), &place(1), 700)
        .await
        .unwrap();
    assert_eq!(own.subject, user("u6"));
    // Reopened: unassigned, unlocked, with a new SLA, and claimable by anyone.
    let re = s
        .reopen(&r1.id, "bo", "chargebacks came in", 3_600_000, 800)
        .await
        .unwrap();
    assert_eq!(
        (re.assignee, re.lock_owner, re.sla_due),
        (None, None, 800 + 3_600_000)
    );
    assert!(matches!(
        s.reopen(&r1.id, "bo", "again", 1, 900).await,
        Err(CaseError::Conflict(_))
    ));
    // A bulk job leaves a case someone else holds alone.
    s.claim(&block.id, "cy", 1_000, 60_000, 5).await.unwrap();
    s.start_job(
        "job9",
        "dee",
        "wave",
        "resolve_legitimate",
        &json!({}),
        &[],
        &[
            (block.id.clone(), "legitimate".into()),
            (re.id.clone(), "legitimate".into()),
        ],
        1_100,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get(&block.id).await.unwrap().status,
        Status::InReview,
        "held by cy"
    );
    assert_eq!(s.get(&re.id).await.unwrap().status, Status::Resolved);
    assert_eq!(s.verdicts(&re.id).await.unwrap(), 2);
}

#[tokio::test]
async fn erasure_finds_a_card_or_a_phone_in_notes_however_it_was_typed() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "erasure_spelled").await {
        erasure_finds_a_card_or_a_phone_in_notes_however_it_was_typed_on(&url).await;
    }
}

/// An outside test: a note held `4000056655665556` and the erasure gave `4000-0566-5566-5556`;
/// the note kept it. Notes and bulk jobs' reasons spell numbers as people type them.
async fn erasure_finds_a_card_or_a_phone_in_notes_however_it_was_typed_on(url: &str) {
    let s = open(url).await;
    let c = s
        .open_or_join(&user("u1"), &decision("e1", 60), &place(10), 1_000)
        .await
        .unwrap();
    let notes = [
        "card 4000056655665556 declined",
        "same card as 4000 0566 5566 5556, called +1 (555) 010-4477",
        "order 14000056655665556 is another number",
    ];
    for (i, n) in notes.iter().enumerate() {
        s.note(&c.id, "ana", n, 2_000 + i as i64).await.unwrap();
    }
    s.start_job(
        "job-1",
        "ana",
        "cards 4000-0566-5566-5556 and phone 1 555 010 4477",
        "block",
        &json!({"rule": "r"}),
        &[],
        &[],
        3_000,
    )
    .await
    .unwrap();
    let changed = s
        .scrub(
            "tk_none",
            "ps_none",
            &["4000-0566-5566-5556".to_string()],
            &["4000056655665556".to_string(), "15550104477".to_string()],
        )
        .await
        .unwrap();
    // Three rows hold a spelling of one of them: the first two notes and the job.
    assert!(changed >= 3, "{changed}");
    let texts: Vec<String> = s
        .timeline(&c.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "note")
        .map(|e| e.body["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        [
            "card [erased] declined",
            "same card as [erased], called [erased]",
            "order 14000056655665556 is another number",
        ],
        "{url}"
    );
    assert_eq!(
        s.job("job-1").await.unwrap().reason,
        "cards [erased] and phone [erased]"
    );
}
