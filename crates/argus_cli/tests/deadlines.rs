//! Deadlines and degraded decisions (P3.6), with a stage made slow or failing on purpose
//! (`ARGUS_FAULTS`): the decision arrives without waiting for the stage, says which stage it went
//! without, the rules read that, a fail-closed stage gives the configured action, a backtest over the
//! log decides the degraded decisions alike (no drift), and a full queue answers degraded decisions
//! when configured to.

use crate::common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn order(id: &str, actor: &str) -> String {
    json!({"id": id, "type": "order.create", "time": "2026-12-01T10:00:00Z", "actor": actor,
           "data": {"order": format!("o-{id}"), "seller": "s1", "item": "i1", "item_count": 1,
                    "amount": "20.00", "currency": "EUR", "card": card(3), "device": "d1", "ip": "81.2.0.1"}})
    .to_string()
}

/// The simulator's configuration (the order model) with `deadlines`, the starter policies, the
/// model's policy, and a rule that reads `degraded`.
fn setup(dir: &Path, deadlines: &str) -> (PathBuf, Vec<PathBuf>) {
    let conf = dir.join("argus.toml");
    std::fs::write(
        &conf,
        format!(
            "include = [\"{}\"]\n[server]\nfsync = \"never\"\n[[server.api_keys]]\nname = \"loader\"\nrole = \"ingest\"\nkey = \"{INGEST}\"\n[[server.api_keys]]\nname = \"ops\"\nrole = \"admin\"\nkey = \"{ADMIN}\"\n{deadlines}",
            repo().join("examples/simulator/argus.toml").display()
        ),
    )
    .unwrap();
    let extra = dir.join("degraded-policies");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("degraded.toml"),
        r#"[policy]
checkpoint = "order.create"
version = "t1"
[[rules]]
name = "order_model_missing"
when = "'models' in degraded"
action = "challenge"
reason = "The order model did not answer in time: ask for more"
"#,
    )
    .unwrap();
    let policies = vec![
        repo().join("policies"),
        repo().join("examples/simulator/policies"),
        extra,
    ];
    (conf, policies)
}

fn post(addr: &str, body: &str) -> (u16, Value, Duration) {
    let t = Instant::now();
    let (s, v) = http(addr, "POST", "/v1/events", INGEST, body, "application/json");
    (s, v, t.elapsed())
}

#[test]
fn a_late_model_is_left_out_within_the_budget_and_the_rules_see_it() {
    let d = tempfile::tempdir().unwrap();
    let (conf, policies) = setup(
        d.path(),
        "[deadlines]\nbudget = \"100ms\"\n[deadlines.stages.models]\nshare = 0.5\n",
    );
    let data = d.path().join("data");
    {
        let (_s, addr) = serve_env(
            &conf,
            &policies,
            &data,
            &[("ARGUS_FAULTS", "models=slow:3s")],
        );
        for i in 0..3 {
            let (s, v, took) = post(&addr, &order(&format!("late{i}"), &format!("u{i}")));
            assert_eq!(s, 200, "{v}");
            let dec = &v["decision"];
            eprintln!(
                "late model: answered in {:.1} ms (eval_us {}), budget 100 ms, the model would take 3,000 ms",
                took.as_secs_f64() * 1e3,
                dec["eval_us"]
            );
            // The answer did not wait for the model: it came before the model could have finished.
            assert!(took < Duration::from_secs(3), "{took:?}");
            assert!(dec["eval_us"].as_f64().unwrap() < 3e6, "{dec}");
            assert_eq!(dec["degraded"], json!([["models", "late"]]), "{dec}");
            assert!(dec.get("models").is_none(), "no score: {dec}");
            // Fail-open: the rules decided without the model, and one of them read `degraded`.
            assert_eq!(dec["action"], "challenge", "{dec}");
            let fired: Vec<&str> = dec["fired"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["rule"].as_str().unwrap())
                .collect();
            assert!(fired.contains(&"order_model_missing"), "{fired:?}");
        }
        let (s, text) = metrics(&addr);
        assert_eq!(s, 200);
        assert!(
            text.lines()
                .any(|l| l.starts_with("argus_degraded_decisions_total{stage=\"models\"} 3")),
            "{text}"
        );
    }
    // The same server without the fault: the model answers, nothing is degraded.
    {
        let (_s, addr) = serve_env(&conf, &policies, &data, &[]);
        let (s, v, _) = post(&addr, &order("ontime", "u9"));
        assert_eq!(s, 200, "{v}");
        assert!(v["decision"].get("degraded").is_none(), "{v}");
        assert_eq!(v["decision"]["models"][0]["name"], "order_fraud", "{v}");
    }
    // A backtest of the same policies over the log decides the degraded decisions without the
    // model too: no drift from what was decided live.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argus"));
    cmd.args(["backtest", "--config"]).arg(&conf);
    for p in &policies {
        cmd.arg("--policies").arg(p);
        cmd.arg("--control").arg(p);
    }
    let out = cmd.arg("--data-dir").arg(&data).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["live_drift"], 0, "{summary:#}");
    assert_eq!(summary["events"], 4, "{summary:#}");
}

fn metrics(addr: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[test]
fn a_failing_model_that_fails_closed_gives_the_configured_action() {
    let d = tempfile::tempdir().unwrap();
    let (conf, policies) = setup(
        d.path(),
        "[deadlines]\nbudget = \"200ms\"\n[deadlines.checkpoints.\"order.create\"]\nclosed_action = \"block\"\n[deadlines.stages.models]\nfail = \"closed\"\n",
    );
    let (_s, addr) = serve_env(
        &conf,
        &policies,
        &d.path().join("data"),
        &[("ARGUS_FAULTS", "models=fail")],
    );
    let (s, v, _) = post(&addr, &order("f1", "u1"));
    assert_eq!(s, 200, "{v}");
    let dec = &v["decision"];
    assert_eq!(dec["degraded"], json!([["models", "failed"]]), "{dec}");
    assert_eq!(dec["action"], "block", "{dec}");
    assert_eq!(dec["decided_by"], "degraded", "{dec}");
    // Recorded like any decision.
    let (s, v) = http(
        &addr,
        "GET",
        "/v1/decisions/f1",
        ADMIN,
        "",
        "application/json",
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"]["action"], "block", "{v}");
}

#[test]
fn a_full_queue_answers_degraded_decisions_when_configured_to() {
    let d = tempfile::tempdir().unwrap();
    // No budget: the slow model holds the core thread (inline), so the queue of 1 fills.
    let (conf, policies) = setup(
        d.path(),
        "[deadlines]\noverload = \"degrade\"\noverload_action = \"review\"\n",
    );
    let (_s, addr) = serve_env(
        &conf,
        &policies,
        &d.path().join("data"),
        &[
            ("ARGUS_FAULTS", "models=slow:700ms"),
            ("ARGUS_QUEUE_DEPTH", "1"),
        ],
    );
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || post(&addr, &order(&format!("q{i}"), &format!("u{i}"))))
        })
        .collect();
    let answers: Vec<(u16, Value, Duration)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let degraded: Vec<&Value> = answers
        .iter()
        .filter(|(_, v, _)| v["status"] == "degraded")
        .map(|(_, v, _)| v)
        .collect();
    for (s, v, _) in &answers {
        assert_eq!(*s, 200, "never 503 when overload degrades: {v}");
    }
    assert!(
        !degraded.is_empty(),
        "the queue of 1 overflowed: {answers:?}"
    );
    for v in &degraded {
        let dec = &v["decision"];
        assert_eq!(dec["action"], "review", "{dec}");
        assert_eq!(dec["degraded"], json!([["queue", "overloaded"]]), "{dec}");
        assert_eq!(dec["recorded"], false);
        // Not recorded: the decision is not in the log, and a retry may be decided for real. (The
        // lookup goes through the same queue of 1: while the slow events drain it may be refused
        // as overloaded, 503, and is asked again.)
        let id = v["id"].as_str().unwrap();
        let t = std::time::Instant::now();
        let s = loop {
            let (s, _) = http(
                &addr,
                "GET",
                &format!("/v1/decisions/{id}"),
                ADMIN,
                "",
                "application/json",
            );
            if s != 503 || t.elapsed() > Duration::from_secs(30) {
                break s;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(s, 404, "{id}");
    }
}
