//! The server's core with its feature partitions on worker threads (P3.1): a run of event requests
//! goes through the engine together (`Engine::run`, the replay path), and must answer exactly as the
//! same events sent one at a time (the one-thread path): the same statuses, sequence numbers and
//! decisions, the same findings and state digest, and the same state again after a restart from the
//! log alone.

use crate::common;
use common::*;

use argus_server::Server;
use axum::body::Body;
use serde_json::{json, Value};
use std::path::Path;

/// The starter's sample events in eight overlapping copies: each copy has its own ids and actors;
/// devices and IPs are shared between copies, so keys meet across copies and partitions. Every
/// 25th event is sent again later (a duplicate, some within one batch), and two events are too
/// late for `allowed_lateness`.
fn events() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("examples/starter/events.ndjson")).unwrap();
    let base: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut out = Vec::new();
    for (i, ev) in base.iter().enumerate() {
        for w in 0..8 {
            let mut e = ev.clone();
            e["id"] = json!(format!("{}-{w}", ev["id"].as_str().unwrap()));
            e["actor"] = json!(format!("{}-{w}", ev["actor"].as_str().unwrap()));
            if let Some(d) = e["data"]["device"].as_str() {
                e["data"]["device"] = json!(format!("{d}-{}", w % 3));
            }
            if let Some(em) = e["data"]["email"].as_str() {
                e["data"]["email"] = json!(format!("{w}.{em}"));
            }
            out.push(e.to_string());
            if (i * 8 + w) % 25 == 0 {
                let again = out[out.len() / 2].clone();
                out.push(again);
            }
        }
    }
    let mut late: Value = base[0].clone();
    late["id"] = json!("late-1");
    late["time"] = json!("2026-11-19T09:00:00Z");
    let n = out.len();
    out.insert(n - 10, late.to_string());
    late["id"] = json!("late-2");
    out.insert(n - 60, late.to_string());
    out
}

fn start(dir: &Path) -> Server {
    let cfg = dir.join("argus.toml");
    if !cfg.exists() {
        std::fs::write(
            &cfg,
            format!(
                "include = [{:?}]\n[engine]\npartitions = 3\n[graph]\nmin_cluster = 3\n\
                 [[graph.links]]\nfield = \"device\"\n",
                repo().join("examples/starter/argus.toml")
            ),
        )
        .unwrap();
    }
    let mut st = settings(&dir.join("data"));
    st.max_batch = 1000;
    // On any machine (`auto` uses them only with 5 or more cores).
    st.partition_workers = argus_server::settings::PartitionWorkers::Always;
    Server::start(st, loader(cfg, repo().join("policies"))).expect("server starts")
}

/// An answer without what may differ between two runs (the evaluation time).
fn comparable(mut v: Value) -> Value {
    if let Some(d) = v.get_mut("decision").and_then(Value::as_object_mut) {
        d.remove("eval_us");
    }
    v
}

/// `evs` sent in batches of `size`: each event's answer as one request would give it.
async fn in_batches(s: &Server, evs: &[String], size: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for chunk in evs.chunks(size) {
        let body = format!("[{}]", chunk.join(","));
        let (st, v) = call(s, "POST", "/v1/events/batch", Some(INGEST), body).await;
        assert_eq!(st, 200, "{v}");
        for r in v["results"].as_array().unwrap() {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.remove("index");
            o.remove("http_status");
            out.push(comparable(r));
        }
    }
    out
}

async fn state(s: &Server) -> (Value, Value) {
    let (_, d) = call(s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty()).await;
    let (_, f) = call(
        s,
        "GET",
        "/v1/findings?limit=1000",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    (
        json!([d["state_digest"], d["engine_seq"], d["log_last_seq"]]),
        f["findings"].clone(),
    )
}

#[tokio::test]
async fn batched_runs_answer_as_one_event_at_a_time() {
    let evs = events();
    assert!(evs.len() > 380, "{}", evs.len());

    // One event per request: the one-thread path.
    let a = tempfile::tempdir().unwrap();
    let sa = start(a.path());
    let mut one = Vec::new();
    for e in &evs {
        let (_, v) = call(&sa, "POST", "/v1/events", Some(INGEST), e.clone()).await;
        one.push(comparable(v));
    }
    let state_a = state(&sa).await;
    sa.shutdown().await;

    // The same events in batches of 40 (some larger than the run threshold, the last one smaller):
    // the partitions on worker threads.
    let b = tempfile::tempdir().unwrap();
    let sb = start(b.path());
    let batched = in_batches(&sb, &evs, 40).await;
    let state_b = state(&sb).await;
    let metrics = call(&sb, "GET", "/metrics", None, Body::empty()).await.1;
    sb.shutdown().await;

    assert_eq!(one.len(), batched.len());
    for (i, (x, y)) in one.iter().zip(&batched).enumerate() {
        assert_eq!(x, y, "event {i}: {}", evs[i]);
    }
    let statuses = |s: &str| one.iter().filter(|v| v["status"] == s).count();
    assert!(statuses("duplicate") >= 10, "{}", statuses("duplicate"));
    assert_eq!(
        one.iter()
            .filter(|v| v["error"]["code"] == "too_late")
            .count(),
        2
    );
    assert!(
        one.iter().any(|v| v["decision"]["action"] == "block")
            || one.iter().any(|v| v["decision"]["action"] == "review"),
        "the starter policies decided nothing but allow"
    );
    assert_eq!(state_a, state_b);
    assert!(
        !state_a.1.as_array().unwrap().is_empty(),
        "no findings to compare"
    );
    // The batched runs did go through the partition workers (all but the first batches, which
    // repeat an id of their own and are handled one at a time).
    let runs = metrics
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("argus_core_partition_wait_seconds_count"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(runs >= 7.0, "batched runs: {runs}");

    // Restarted from the log alone: the same state.
    std::fs::remove_dir_all(b.path().join("data/snapshots")).ok();
    let sb = start(b.path());
    assert_eq!(state(&sb).await, state_b);
    sb.shutdown().await;
}

/// Guard settings that trip on a rule firing on every event within a few events.
fn small_guard() -> argus_lifecycle::GuardConfig {
    argus_lifecycle::GuardConfig {
        window: 40,
        min_hits: 10,
        multiple: 2.0,
        learn_events: 1_000_000,
        max_block_rate: 1.0,
        min_actors: 3,
        ..Default::default()
    }
}

/// A server (partitions on workers) under `guard`, with the policies and a broken rule that
/// blocks every click (`broken_click`), on `dir` (the same files again on a restart).
fn guarded(dir: &Path, guard: argus_lifecycle::GuardConfig) -> Server {
    let policies = dir.join("policies");
    copy_dir(&repo().join("policies"), &policies);
    std::fs::write(
        policies.join("zz_broken.toml"),
        "[policy]\ncheckpoint = \"item.click\"\n\n[[rules]]\nname = \"broken_click\"\nwhen = \"features.user_clicks_10m >= 0\"\naction = \"block\"\nreason = \"a typo'd threshold\"\n",
    )
    .unwrap();
    let mut st = settings(&dir.join("data"));
    st.max_batch = 1000;
    st.partition_workers = argus_server::settings::PartitionWorkers::Always;
    st.lifecycle.guard = guard;
    let cfg = dir.join("argus.toml");
    std::fs::write(
        &cfg,
        format!(
            "include = [{:?}]\n[engine]\npartitions = 3\n",
            repo().join("examples/starter/argus.toml")
        ),
    )
    .unwrap();
    Server::start(st, loader(cfg, policies)).expect("server starts")
}

/// Clicks of six users, a second apart from `from`.
fn clicks(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            json!({"id": format!("c-{i:02}"), "type": "item.click",
                   "time": format!("2026-11-20T10:{:02}:{:02}Z", i / 60, i % 60),
                   "actor": format!("u{}", i % 6),
                   "data": {"item": "i1", "seller": "s1", "device": format!("d{}", i % 6), "ip": "81.2.0.1"}})
            .to_string()
        })
        .collect()
}

/// `GET /v1/guard`, once the lifecycle store (opened beside the server) answers.
async fn guard_view(s: &Server) -> Value {
    for _ in 0..100 {
        let (st, v) = call(s, "GET", "/v1/guard", Some(ADMIN), Body::empty()).await;
        if st == 200 {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the lifecycle store did not open");
}

/// `[lifecycle.guard] pause_after`: a rule that fires on every click trips the guard at its 10th
/// hit and is paused 15 decisions later. Sent in batches (runs decided ahead on the partition
/// workers), the pause starts inside a run other than the trip's, and that run's later events are
/// decided again under it:
/// the same decisions as one event at a time, the pause starting at the same event.
#[tokio::test]
async fn a_guard_pause_starting_inside_a_run_decides_the_rest_of_it_as_one_at_a_time() {
    let guard = argus_lifecycle::GuardConfig {
        pause_after: 15,
        ..small_guard()
    };
    let start_guarded = |dir: &Path| guarded(dir, guard.clone());
    let clicks = clicks(0, 60);
    let paused_at = |answers: &[Value]| -> Vec<bool> {
        answers
            .iter()
            .map(|v| {
                let fired = v["decision"]["fired"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|r| r["rule"] == "broken_click"));
                let paused = v["decision"]["paused"] == json!(["broken_click"]);
                assert!(fired != paused, "{v}");
                paused
            })
            .collect()
    };

    let a = tempfile::tempdir().unwrap();
    let sa = start_guarded(a.path());
    let mut one = Vec::new();
    for e in &clicks {
        let (st, v) = call(&sa, "POST", "/v1/events", Some(INGEST), e.clone()).await;
        assert_eq!(st, 200, "{v}");
        one.push(comparable(v));
    }
    let g = guard_view(&sa).await;
    sa.shutdown().await;
    let states = paused_at(&one);
    // The 10th hit (event 9) trips it; it is paused from the 15th decision after: event 24.
    let first = states.iter().position(|&p| p).expect("the rule was paused");
    assert_eq!(first, 24, "{states:?}");
    assert!(states[first..].iter().all(|&p| p), "{states:?}");
    assert_eq!(g["state"]["paused"][0]["paused_from"], 25, "{g}");
    assert_eq!(g["state"]["in_force"], json!(["broken_click"]), "{g}");

    // In batches of 20 (runs start at 16 events): the trip is in the first run, and the pause
    // starts inside the second, which trips nothing.
    let b = tempfile::tempdir().unwrap();
    let sb = start_guarded(b.path());
    let batched = in_batches(&sb, &clicks, 20).await;
    sb.shutdown().await;
    assert_eq!(one, batched);
}

/// A pause the store holds that the guard lost is applied again, not marked resumed (an outside
/// test: restarted under other guard settings, with the decisions that tripped it gone from the
/// log, the rule blocked again and the store said "resumed in the event log", which no person
/// did). Here the new settings cannot trip it at all, which loses it the same way.
#[tokio::test]
async fn a_pause_the_rebuilt_guard_lost_is_applied_again_not_marked_resumed() {
    let d = tempfile::tempdir().unwrap();
    let s = guarded(d.path(), small_guard());
    for e in clicks(0, 30) {
        let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), e).await;
        assert_eq!(st, 200, "{v}");
    }
    // Recorded by the lifecycle task once its group is committed.
    let t = std::time::Instant::now();
    while guard_view(&s).await["pauses"]
        .as_array()
        .map_or(0, Vec::len)
        == 0
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "no pause recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.shutdown().await;

    // Under settings that could not trip it: the snapshot's guard state is not used, and the
    // guard rebuilt from the log does not pause the rule.
    let never = argus_lifecycle::GuardConfig {
        min_hits: 1_000,
        ..small_guard()
    };
    let s = guarded(d.path(), never.clone());
    let t = std::time::Instant::now();
    let g = loop {
        let g = guard_view(&s).await;
        if g["state"]["in_force"] == json!(["broken_click"]) {
            break g;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the pause was not applied again: {g}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(g["pauses"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["pauses"][0]["resumed_at"], Value::Null, "{g}");
    let (_, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        clicks(30, 1).remove(0),
    )
    .await;
    assert_eq!(v["decision"]["paused"], json!(["broken_click"]), "{v}");
    s.shutdown().await;

    // The pause applied again is in the log: a restart from the log alone keeps it.
    std::fs::remove_dir_all(d.path().join("data/snapshots")).ok();
    let s = guarded(d.path(), never);
    let (_, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        clicks(31, 1).remove(0),
    )
    .await;
    assert_eq!(v["decision"]["paused"], json!(["broken_click"]), "{v}");
    let g = guard_view(&s).await;
    assert_eq!(g["pauses"][0]["resumed_at"], Value::Null, "{g}");
    s.shutdown().await;
}
