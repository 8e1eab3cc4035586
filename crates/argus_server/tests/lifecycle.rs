//! Safe rule change end to end on a running server (console mode), on SQLite and PostgreSQL: the
//! files seed version 1; live diagnostics; a draft, its backtest over the server's own log (the
//! running version's own backtest changes nothing: point-in-time replay), approval by another
//! person only, activation, rollback, scheduled activation, a snooze and its expiry, a rollout with
//! stable arms and fallback, and the guard pausing a broken rule with a case for its owner.
//!
//! PostgreSQL: `ARGUS_TEST_POSTGRES` (see crates/argus_cases/tests/store.rs); required in CI.

use argus_server::settings::{ApiKey, PolicySource, Role};
use argus_server::Server;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

use crate::common;
use common::*;

const IVY: &str = "investigator-key-0123456789";

async fn req(s: &Server, method: &str, uri: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let r = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"));
    let b = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let resp = s.router.clone().oneshot(r.body(b).unwrap()).await.unwrap();
    let st = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (st, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    argus_event::time::format_rfc3339(ms)
}

fn order(id: &str, actor: &str, amount: &str, coupon: Option<&str>) -> Value {
    let mut data =
        json!({"order": id, "amount": amount, "currency": "EUR", "seller": "s1", "item": "i1"});
    if let Some(c) = coupon {
        data["coupon"] = c.into();
    }
    json!({"id": id, "type": "order.create", "time": now_rfc3339(), "actor": actor, "data": data})
}

async fn decide(s: &Server, o: Value) -> Value {
    let (st, v) = req(s, "POST", "/v1/events", INGEST, o).await;
    assert_eq!(st, 200, "{v}");
    v["decision"].clone()
}

async fn running(s: &Server) -> (String, serde_json::Map<String, Value>) {
    let (st, v) = req(s, "GET", "/v1/policies/running", ANALYST, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    (
        v["policy_version"].as_str().unwrap().to_string(),
        v["files"].as_object().unwrap().clone(),
    )
}

/// The running files with `extra` appended to the orders' policy.
fn with_rules(files: &serde_json::Map<String, Value>, extra: &str) -> Value {
    let mut f = files.clone();
    let t = f["marketplace_integrity.toml"]
        .as_str()
        .unwrap()
        .to_string();
    f.insert(
        "marketplace_integrity.toml".into(),
        format!("{t}\n{extra}").into(),
    );
    Value::Object(f)
}

const BIG: &str = r#"[[rules]]
name = "big_order_block"
when = "event.amount > 2000.0"
action = "block"
score = 100
reason = "very large order"
"#;

async fn backtest(s: &Server, version: i64) -> Value {
    let (st, v) = req(
        s,
        "POST",
        "/v1/backtests",
        ANALYST,
        json!({"version": version}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_i64().unwrap();
    until("the backtest finishes", || async {
        let (_, b) = req(
            s,
            "GET",
            &format!("/v1/backtests/{id}"),
            ANALYST,
            Value::Null,
        )
        .await;
        (b["status"] != "running").then_some(b)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_rule_change_on_sqlite_and_postgres() {
    let d = tempfile::tempdir().unwrap();
    scenario(d.path(), None).await;
    if let Some(url) = argus_store::test_database("argus_server_lifecycle").await {
        let d2 = tempfile::tempdir().unwrap();
        scenario(d2.path(), Some(url)).await;
    }
}

async fn scenario(dir: &std::path::Path, database: Option<String>) {
    let mut settings = settings(dir);
    if let Some(u) = &database {
        settings.cases = argus_server::settings::cases(
            &toml::from_str(&format!("database = \"{u}\"\n")).unwrap(),
            |_| None,
        )
        .unwrap();
    }
    settings.lifecycle.source = PolicySource::Console;
    settings.api_keys.push(ApiKey {
        name: "ivy".into(),
        role: Role::preset("investigator").unwrap().into(),
        key: IVY.into(),
    });
    let s = Server::start(
        settings,
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .expect("server starts");

    // The files seed version 1, installed before any event is decided.
    until("version 1 is installed", || async {
        let (st, v) = req(&s, "GET", "/v1/versions", ANALYST, Value::Null).await;
        (st == 200 && v["running"].as_str().is_some_and(|r| r.starts_with("v1+"))).then_some(())
    })
    .await;
    let (v1, files) = running(&s).await;
    assert!(files.contains_key("lists/banned_users.toml"));
    for i in 0..12 {
        let amount = if i % 3 == 0 { "2500.00" } else { "40.00" };
        let d = decide(&s, order(&format!("h{i}"), &format!("hu{i}"), amount, None)).await;
        assert_eq!(d["policy_version"], v1.as_str());
    }

    // Live diagnostics: located, with a code and a did-you-mean.
    let broken = with_rules(&files, &BIG.replace("event.amount", "event.amont"));
    let (st, v) = req(
        &s,
        "POST",
        "/v1/policies/check",
        ANALYST,
        json!({"files": broken}),
    )
    .await;
    assert_eq!(
        (st, v["ok"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    let p = &v["problems"][0];
    assert_eq!(
        (p["code"].as_str(), p["rule"].as_str()),
        (Some("unknown_name"), Some("big_order_block"))
    );
    assert!(p["hint"].as_str().unwrap().contains("event.amount"));
    assert!(p["line"].as_u64().unwrap() > 1 && p["column"].as_u64().unwrap() > 1);
    let (st, v) = req(
        &s,
        "POST",
        "/v1/versions",
        ANALYST,
        json!({"message": "x", "files": broken}),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_policies"))
    );

    // A draft that blocks needs another person's approval.
    let (st, v2) = req(
        &s,
        "POST",
        "/v1/versions",
        ANALYST,
        json!({"message": "block very large orders", "files": with_rules(&files, BIG)}),
    )
    .await;
    assert_eq!(st, 200, "{v2}");
    let id2 = v2["id"].as_i64().unwrap();
    assert_eq!(v2["status"], "draft");
    assert!(!v2["needs_approval"].as_array().unwrap().is_empty());
    let (_, diff) = req(
        &s,
        "GET",
        &format!("/v1/versions/{id2}/diff"),
        ANALYST,
        Value::Null,
    )
    .await;
    assert_eq!(diff["diff"]["rules"][0]["rule"], "big_order_block");
    assert!(diff["diff"]["files"][0]["diff"]
        .as_str()
        .unwrap()
        .contains("+name = \"big_order_block\""));

    // Backtests on the server's own history: the running version changes nothing; the draft
    // blocks the large orders, with the rule and the value it read.
    let b1 = backtest(&s, 1).await;
    assert_eq!(b1["status"], "done", "{b1}");
    assert_eq!(b1["summary"]["events"], 12);
    assert_eq!(b1["summary"]["changed"], 0, "{b1}");
    // The premise that matters: the running version, replayed, decides as it did live.
    assert_eq!(b1["summary"]["live_drift"], 0, "{b1}");
    let b2 = backtest(&s, id2).await;
    assert_eq!(b2["summary"]["changed"], 4, "{b2}");
    let (_, ch) = req(
        &s,
        "GET",
        &format!("/v1/backtests/{}/changes", b2["id"]),
        ANALYST,
        Value::Null,
    )
    .await;
    let c = &ch["changes"][0];
    assert_eq!(
        (c["event_id"].as_str(), c["to"].as_str()),
        (Some("h0"), Some("block"))
    );
    assert_eq!(c["added"][0]["rule"], "big_order_block");
    assert_eq!(c["added"][0]["reads"][0], json!(["event.amount", 2500.0]));
    assert_eq!(b2["summary"]["friction"]["honest_users_added"], 4);

    // Approval: not the analyst's role; not by the author; activation waits for it.
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id2}/activate"),
        IVY,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id2}/approve"),
        ANALYST,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id2}/approve"),
        IVY,
        json!({"comment": "backtest looks right"}),
    )
    .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{v}"
    );
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id2}/activate"),
        IVY,
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let d = decide(&s, order("a1", "au1", "2500.00", None)).await;
    assert_eq!(d["action"], "block");
    assert!(d["policy_version"]
        .as_str()
        .unwrap()
        .starts_with(&format!("v{id2}+")));
    // A reload (lookups, configuration) keeps the store's version: the files on disk do not come back.
    let (st, v) = req(&s, "POST", "/v1/admin/reload", ADMIN, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    assert!(running(&s).await.0.starts_with(&format!("v{id2}+")), "{v}");

    // One-step rollback: a new version with version 1's files.
    let (st, v) = req(
        &s,
        "POST",
        "/v1/versions/1/rollback",
        IVY,
        json!({"reason": "too strict"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id3 = v["version"]["id"].as_i64().unwrap();
    let d = decide(&s, order("a2", "au2", "2500.00", None)).await;
    assert_ne!(d["action"], "block");
    assert!(d["policy_version"]
        .as_str()
        .unwrap()
        .starts_with(&format!("v{id3}+")));
    assert_eq!(
        d["policy_version"].as_str().unwrap().split('+').nth(1),
        v1.split('+').nth(1),
        "the same files, the same fingerprint"
    );

    // The author cannot approve their own change; scheduled activation happens at its time.
    let (_, v4) = req(
        &s,
        "POST",
        "/v1/versions",
        IVY,
        json!({"message": "again, on schedule", "files": with_rules(&files, BIG)}),
    )
    .await;
    let id4 = v4["id"].as_i64().unwrap();
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id4}/approve"),
        IVY,
        json!({}),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_allowed"))
    );
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id4}/approve"),
        ADMIN,
        json!({}),
    )
    .await;
    assert_eq!(st, 200);
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1_500;
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id4}/activate"),
        IVY,
        json!({"at": argus_event::time::format_rfc3339(at)}),
    )
    .await;
    assert_eq!(
        (st, v["version"]["status"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{v}"
    );
    assert!(running(&s).await.0.starts_with(&format!("v{id3}+")));
    until("the scheduled version is active", || async {
        running(&s)
            .await
            .0
            .starts_with(&format!("v{id4}+"))
            .then_some(())
    })
    .await;

    // A snooze skips the rule for one account until its time.
    let until_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 2_000;
    let (st, z) = req(
        &s,
        "POST",
        "/v1/snoozes",
        ANALYST,
        json!({"rule": "big_order_block", "kind": "user", "value": "vip",
        "until": argus_event::time::format_rfc3339(until_ms), "reason": "known buyer, wholesale"}),
    )
    .await;
    assert_eq!(st, 200, "{z}");
    let d = decide(&s, order("z1", "vip", "2500.00", None)).await;
    assert_eq!(d["snoozed"], json!(["big_order_block"]));
    assert_ne!(d["action"], "block");
    assert_eq!(
        decide(&s, order("z2", "other", "2500.00", None)).await["action"],
        "block"
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let d = decide(&s, order("z3", "vip", "2500.00", None)).await;
    assert_eq!(d["action"], "block", "expired: {d}");

    // A snooze from a case verdict: the rule skips the account the verdict cleared.
    let (st, c) = req(
        &s,
        "POST",
        "/v1/cases",
        ANALYST,
        json!({"subject": {"kind": "user", "id": "wholesale1"}, "note": "flagged twice"}),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/cases/{cid}/claim"),
        ANALYST,
        Value::Null,
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/cases/{cid}/verdict"),
        ANALYST,
        json!({"disposition": "legitimate",
        "reason": "a wholesale buyer", "snooze": {"rules": ["big_order_block"], "ttl": "30d"}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["snoozes"][0]["case_id"].as_str(), Some(cid.as_str()));
    let d = decide(&s, order("w1", "wholesale1", "2500.00", None)).await;
    assert_eq!(d["snoozed"], json!(["big_order_block"]), "{d}");
    // A verdict whose snooze names an unknown rule is refused before anything is stored.
    let (_, before) = req(&s, "GET", "/v1/snoozes", ANALYST, Value::Null).await;
    let (_, c2) = req(
        &s,
        "POST",
        "/v1/cases",
        ANALYST,
        json!({"subject": {"kind": "user", "id": "wholesale2"}}),
    )
    .await;
    let cid2 = c2["id"].as_str().unwrap().to_string();
    req(
        &s,
        "POST",
        &format!("/v1/cases/{cid2}/claim"),
        ANALYST,
        Value::Null,
    )
    .await;
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/cases/{cid2}/verdict"),
        ANALYST,
        json!({"disposition": "legitimate",
        "snooze": {"rules": ["big_order_block", "no_such_rule"], "ttl": "30d"}}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, after) = req(&s, "GET", "/v1/snoozes", ANALYST, Value::Null).await;
    assert_eq!(
        before["snoozes"].as_array().unwrap().len(),
        after["snoozes"].as_array().unwrap().len()
    );

    // A rollout: each actor on one arm, the control when the candidate's rule errs.
    let coupon_rule = "[[rules]]\nname = \"coupon_x\"\nwhen = \"event.coupon == 'X'\"\naction = \"block\"\nreason = \"coupon X\"\n";
    let (_, v5) = req(
        &s,
        "POST",
        "/v1/versions",
        ANALYST,
        json!({"message": "coupon X", "files": with_rules(&files, coupon_rule)}),
    )
    .await;
    let id5 = v5["id"].as_i64().unwrap();
    let (st, _) = req(
        &s,
        "POST",
        "/v1/rollout",
        IVY,
        json!({"version": id5, "percent": 50}),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a rollout needs the approval too"
    );
    let (st, _) = req(
        &s,
        "POST",
        "/v1/rollout",
        IVY,
        json!({"version": 1, "percent": 50}),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a retired version is not rolled out"
    );
    req(
        &s,
        "POST",
        &format!("/v1/versions/{id5}/approve"),
        IVY,
        json!({}),
    )
    .await;
    let (st, v) = req(
        &s,
        "POST",
        "/v1/rollout",
        IVY,
        json!({"version": id5, "percent": 50}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mut arms = std::collections::HashMap::new();
    for i in 0..40 {
        let actor = format!("r{i}");
        let a = decide(&s, order(&format!("ro{i}a"), &actor, "30.00", Some("Y"))).await;
        let b = decide(&s, order(&format!("ro{i}b"), &actor, "30.00", Some("Y"))).await;
        assert_eq!(a["arm"], b["arm"], "one actor, one arm");
        arms.insert(actor, a["arm"].as_str().unwrap().to_string());
        // No coupon: the candidate's rule errs, so the control decides.
        let c = decide(
            &s,
            order(&format!("ro{i}c"), &format!("r{i}"), "30.00", None),
        )
        .await;
        assert_eq!(c["arm"], "control");
    }
    assert!(arms.values().any(|a| a == "candidate") && arms.values().any(|a| a == "control"));
    let (_, live) = req(&s, "GET", "/v1/rollout", ANALYST, Value::Null).await;
    assert!(
        live["live"]["arms"]["candidate"]["decisions"]
            .as_u64()
            .unwrap()
            > 0,
        "{live}"
    );
    assert!(
        live["live"]["arms"]["control"]["fallbacks"]
            .as_u64()
            .unwrap()
            > 0,
        "{live}"
    );
    let (st, _) = req(&s, "POST", "/v1/rollout/stop", IVY, Value::Null).await;
    assert_eq!(st, 200);
    assert!(decide(&s, order("after", "r0", "30.00", Some("Y")))
        .await
        .get("arm")
        .is_none());

    // The guard: a broken rule (every order blocked) deployed on the emergency path is paused after
    // min_hits blocks, with a case for its owner; only a person resumes it.
    let broken_rule = "[[rules]]\nname = \"broken_every_order\"\nwhen = \"event.amount > 0.0\"\naction = \"block\"\nreason = \"oops\"\nowner = \"ivy\"\n";
    let (_, v6) = req(
        &s,
        "POST",
        "/v1/versions",
        IVY,
        json!({"message": "hotfix", "files": with_rules(&files, broken_rule)}),
    )
    .await;
    let id6 = v6["id"].as_i64().unwrap();
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id6}/activate"),
        IVY,
        json!({"emergency": "x"}),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "the emergency path is for admins"
    );
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/versions/{id6}/activate"),
        ADMIN,
        json!({"emergency": "card testing wave"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"]["emergency"], "card testing wave");
    let mut blocked = 0;
    let mut paused_at = None;
    for i in 0..60 {
        let d = decide(
            &s,
            order(&format!("g{i}"), &format!("gu{i}"), "25.00", None),
        )
        .await;
        if d["action"] == "block" {
            blocked += 1;
        }
        if d["paused"] == json!(["broken_every_order"]) {
            assert!(d["policy_version"]
                .as_str()
                .unwrap()
                .ends_with("~paused:broken_every_order"));
            paused_at = Some(i);
            break;
        }
    }
    assert_eq!(
        (blocked, paused_at),
        (20, Some(20)),
        "paused after min_hits = 20 blocks"
    );
    let pause = until("the pause is recorded", || async {
        let (_, g) = req(&s, "GET", "/v1/guard", ANALYST, Value::Null).await;
        g["pauses"].as_array().and_then(|p| p.first().cloned())
    })
    .await;
    assert_eq!(
        (pause["rule"].as_str(), pause["cause"].as_str()),
        (Some("broken_every_order"), Some("hit_rate"))
    );
    assert!(pause["case_id"].is_string(), "{pause}");
    let (_, cases) = req(&s, "GET", "/v1/cases?inbox=rules", ANALYST, Value::Null).await;
    let case = &cases["cases"][0];
    assert_eq!(
        (
            case["subject"]["kind"].as_str(),
            case["subject"]["id"].as_str()
        ),
        (Some("rule"), Some("broken_every_order"))
    );
    assert_eq!(case["assignee"], "ivy");
    let resp = s
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&text)
            .contains("argus_guard_pauses_total{rule=\"broken_every_order\"}"),
        "the pause is counted in /metrics"
    );
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/guard/pauses/{}/resume", pause["id"]),
        ANALYST,
        json!({"reason": "fixed"}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "resuming needs an investigator");
    let (st, _) = req(
        &s,
        "POST",
        &format!("/v1/guard/pauses/{}/resume", pause["id"]),
        IVY,
        json!({"reason": "condition fixed upstream"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        decide(&s, order("g-after", "gz", "25.00", None)).await["action"],
        "block"
    );

    // The history says who did what.
    let (_, h) = req(&s, "GET", "/v1/lifecycle/history", ANALYST, Value::Null).await;
    let what: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    for w in [
        "created",
        "approved",
        "activated",
        "scheduled",
        "snoozed",
        "paused",
        "resumed",
        "rollout_started",
        "rollout_stopped",
    ] {
        assert!(what.contains(&w), "{w} missing from {what:?}");
    }
    s.shutdown().await;
}

/// Models are versioned too: a version records `models.lock`, and a restart with another model file
/// records a version of the same policies with the new lock (console mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_other_models_is_a_new_version() {
    let d = tempfile::tempdir().unwrap();
    let ex = d.path().join("examples");
    copy_dir(&repo().join("examples/starter"), &ex.join("starter"));
    copy_dir(&repo().join("examples/simulator"), &ex.join("simulator"));
    let conf = ex.join("simulator/argus.toml");
    let data = d.path().join("data");
    let start = || {
        let mut settings = settings(&data);
        settings.lifecycle.source = PolicySource::Console;
        Server::start(settings, loader(conf.clone(), repo().join("policies"))).expect("starts")
    };
    let s = start();
    until("version 1 is installed", || async {
        let (_, v) = req(&s, "GET", "/v1/versions", ANALYST, Value::Null).await;
        v["running"]
            .as_str()
            .is_some_and(|r| r.starts_with("v1+"))
            .then_some(())
    })
    .await;
    let (_, v) = req(&s, "GET", "/v1/versions/1", ANALYST, Value::Null).await;
    let lock = v["version"]["files"]["models.lock"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lock.starts_with("order_fraud "), "{lock}");
    s.shutdown().await;
    // The same model, another file (one more newline): another digest.
    let model = ex.join("simulator/models/order_fraud.json");
    let mut text = std::fs::read_to_string(&model).unwrap();
    text.push('\n');
    std::fs::write(&model, text).unwrap();
    let s = start();
    until("version 2 records the new models", || async {
        let (_, v) = req(&s, "GET", "/v1/versions", ANALYST, Value::Null).await;
        v["running"]
            .as_str()
            .is_some_and(|r| r.starts_with("v2+"))
            .then_some(())
    })
    .await;
    let (_, v) = req(
        &s,
        "GET",
        "/v1/versions/2/diff?against=1",
        ANALYST,
        Value::Null,
    )
    .await;
    let files = v["diff"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{v}");
    assert_eq!(files[0]["file"], "models.lock");
    assert!(v["diff"]["rules"].as_array().unwrap().is_empty());
    let (_, v) = req(&s, "GET", "/v1/versions/2", ANALYST, Value::Null).await;
    assert_eq!(v["version"]["origin"], "config");
    s.shutdown().await;
}

/// The guard's state is the log's: a pause holds across a restart, and so does a person's resume
/// (it is a log record), whatever the store says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_and_a_resume_survive_restarts() {
    let d = tempfile::tempdir().unwrap();
    let pol = d.path().join("policies");
    copy_dir(&repo().join("policies"), &pol);
    std::fs::write(
        pol.join("zz_broken.toml"),
        "[policy]\ncheckpoint = \"order.create\"\n\n[[rules]]\nname = \"broken\"\nwhen = \"event.amount > 0.0\"\naction = \"block\"\nreason = \"oops\"\n",
    )
    .unwrap();
    let data = d.path().join("data");
    let start = || {
        let mut settings = settings(&data);
        settings.api_keys.push(ApiKey {
            name: "ivy".into(),
            role: Role::preset("investigator").unwrap().into(),
            key: IVY.into(),
        });
        Server::start(
            settings,
            loader(repo().join("examples/starter/argus.toml"), pol.clone()),
        )
        .expect("starts")
    };
    let paused = |d: &Value| d["paused"] == json!(["broken"]);
    let s = start();
    let mut n = 0;
    loop {
        let d = decide(
            &s,
            order(&format!("b{n}"), &format!("bu{n}"), "30.00", None),
        )
        .await;
        n += 1;
        if paused(&d) {
            break;
        }
        assert!(n < 100, "never paused");
    }
    assert_eq!(n, 21, "paused after 20 blocks");
    s.shutdown().await;

    // After a restart the rule is still paused: the guard's state is rebuilt from the log.
    let s = start();
    let d = decide(&s, order("after1", "x1", "30.00", None)).await;
    assert!(paused(&d), "{d}");
    let pause = until("the pause is recorded", || async {
        let (_, g) = req(&s, "GET", "/v1/guard", ANALYST, Value::Null).await;
        g["pauses"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["resumed_at"].is_null()).cloned())
    })
    .await;
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/guard/pauses/{}/resume", pause["id"]),
        IVY,
        json!({"reason": "fixed"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        decide(&s, order("after2", "x2", "30.00", None)).await["action"],
        "block"
    );
    s.shutdown().await;

    // The resume is in the log: after another restart the rule is enforced.
    let s = start();
    let d = decide(&s, order("after3", "x3", "30.00", None)).await;
    assert_eq!(d["action"], "block", "{d}");
    assert!(!paused(&d));
    s.shutdown().await;
}

/// The guard's state is kept in each snapshot: a server started from another server's snapshot
/// alone (as a cluster node joining from the shared snapshot, whose log begins after it) pauses a
/// broken rule at the same event as the server that wrote it, not 20 hits of its own later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_from_another_servers_snapshot_pauses_where_that_server_does() {
    let d = tempfile::tempdir().unwrap();
    let pol = d.path().join("policies");
    copy_dir(&repo().join("policies"), &pol);
    std::fs::write(
        pol.join("zz_broken.toml"),
        "[policy]\ncheckpoint = \"order.create\"\n\n[[rules]]\nname = \"broken\"\nwhen = \"event.amount > 0.0\"\naction = \"block\"\nreason = \"oops\"\n",
    )
    .unwrap();
    let start = |data: &std::path::Path| {
        Server::start(
            settings(data),
            loader(repo().join("examples/starter/argus.toml"), pol.clone()),
        )
        .expect("starts")
    };
    let paused = |d: &Value| d["paused"] == json!(["broken"]);
    // Server A sees 15 of the 20 hits the rule needs to trip, then stops (its final snapshot).
    let a_dir = d.path().join("a");
    let a = start(&a_dir);
    for n in 0..15 {
        let o = order(&format!("b{n}"), &format!("bu{n}"), "30.00", None);
        assert!(!paused(&decide(&a, o).await));
    }
    a.shutdown().await;
    let newest = std::fs::read_dir(a_dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .max()
        .unwrap();
    // Server B has that snapshot and nothing else.
    let b_dir = d.path().join("b");
    argus_server::cluster::start_from_snapshot(&b_dir, &std::fs::read(&newest).unwrap()).unwrap();
    let (a, b) = (start(&a_dir), start(&b_dir));
    // The same orders to both: both pause the rule at the 21st hit.
    let mut paused_at = Vec::new();
    for s in [&a, &b] {
        let mut n = 15;
        loop {
            let o = order(&format!("b{n}"), &format!("bu{n}"), "30.00", None);
            let d = decide(s, o).await;
            n += 1;
            if paused(&d) {
                break;
            }
            assert!(n < 100, "never paused");
        }
        paused_at.push(n);
    }
    assert_eq!(paused_at, [21, 21], "A, then B");
    a.shutdown().await;
    b.shutdown().await;
}
