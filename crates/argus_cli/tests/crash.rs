//! Crash safety of `argus serve`, end to end with a real process.
//!
//! A client sends events one at a time to a child `argus serve` while another thread kills the child
//! with SIGKILL at random moments; the client restarts it and resends everything not acknowledged
//! (same ids). Afterwards:
//! - every acknowledged event is in the event log exactly once (and nothing is in it twice);
//! - an uninterrupted in-process server fed the same events in log order reaches the same state digest
//!   and made the same decisions;
//! - the decisions for events sent after the last recovery are identical to the uninterrupted run's.

use crate::common;

use common::{card, try_http as http, Rng};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A stream of valid events over a small population (so that features accumulate and rules fire).
fn events(n: usize, offset: usize, rng: &mut Rng) -> Vec<String> {
    let t0 = 1_795_000_000_000i64; // 2026-11-18
    (offset..offset + n)
        .map(|i| {
            let u = rng.below(40);
            let dev = format!("d{}", rng.below(25));
            let ip = format!("81.2.{}.{}", rng.below(4), rng.below(30));
            let time = t0 + i as i64 * 1_500;
            let time = argus_event::time::format_rfc3339(time);
            let id = format!("ev-{i:05}");
            let (ty, data) = match rng.below(7) {
                0 => ("account.register", json!({"email": format!("u{u}@example.com"), "device": dev, "ip": ip, "country": "GB"})),
                1 => ("account.login", json!({"success": rng.below(4) != 0, "device": dev, "ip": ip, "country": "GB"})),
                2 => ("coupon.claim", json!({"coupon": "WELCOME10", "campaign": "new-user", "value": "10.00", "currency": "EUR", "device": dev, "ip": ip})),
                3 => ("order.create", json!({"order": format!("o{i}"), "seller": format!("s{}", rng.below(5)), "item": format!("i{}", rng.below(9)), "item_count": 1, "amount": format!("{}.50", 5 + rng.below(400)), "currency": "EUR", "card": card(rng.below(30)), "device": dev, "ip": ip})),
                4 => ("payment.attempt", json!({"order": format!("o{i}"), "amount": format!("{}.00", 5 + rng.below(400)), "currency": "EUR", "card": card(rng.below(30)), "card_country": "GB", "device": dev, "ip": ip})),
                5 => ("item.click", json!({"item": format!("i{}", rng.below(9)), "seller": format!("s{}", rng.below(5)), "device": dev, "ip": ip})),
                _ => ("cart.add", json!({"item": format!("i{}", rng.below(9)), "quantity": 1, "price": "9.99", "device": dev})),
            };
            json!({"id": id, "type": ty, "time": time, "actor": format!("u{u}"), "data": data}).to_string()
        })
        .collect()
}

struct Running {
    child: Child,
    addr: String,
}

fn start(data: &Path) -> Running {
    spawn(data, Stdio::null())
}

/// `argus serve` on the starter files with small segments and frequent snapshots; waits for its
/// `listening` line.
fn spawn(data: &Path, stderr: Stdio) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(repo().join("examples/starter/argus.toml"))
        .arg("--policies")
        .arg(repo().join("policies"))
        .arg("--data-dir")
        .arg(data)
        .env("ARGUS_SNAPSHOT_EVERY_EVENTS", "97")
        .env("ARGUS_SEGMENT_SIZE", "64KiB")
        .env("ARGUS_RETENTION", "1h")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("argus serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("argus: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Running { child, addr }
}

/// SIGKILL by pid, through the shell's built-in `kill` (no procps needed).
fn kill9(pid: u32) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -9 {pid} 2>/dev/null")])
        .status();
}

fn strip_time(mut d: Value) -> Value {
    if let Some(o) = d.as_object_mut() {
        o.remove("eval_us");
    }
    d
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_event_and_changes_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = std::env::var("ARGUS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0fa7_u64);
    let mut rng = Rng(seed);
    let evs = events(3000, 0, &mut rng);
    let follow = events(150, 3000, &mut rng);

    let mut acked: Vec<Option<Value>> = vec![None; evs.len()];
    let mut next = 0usize;
    let mut kills = 0;
    while next < evs.len() {
        let mut r = start(&data);
        // One killer per life of the child, at a random moment, for the first lives.
        let cancel = Arc::new(AtomicBool::new(false));
        let killer = (kills < 6).then(|| {
            let (pid, cancel, delay) = (r.child.id(), cancel.clone(), 5 + rng.below(150));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                if !cancel.load(Ordering::SeqCst) {
                    kill9(pid);
                    return true;
                }
                false
            })
        });
        while next < evs.len() {
            match http(&r.addr, "POST", "/v1/events", &evs[next]) {
                Ok((200, v)) => {
                    assert!(
                        v["status"] == "accepted" || v["status"] == "duplicate",
                        "{v}"
                    );
                    if v["status"] == "accepted" || acked[next].is_none() {
                        acked[next] = Some(v["decision"].clone());
                    }
                    next += 1;
                }
                Ok((st, v)) => panic!("event {next} refused with {st}: {v}"),
                Err(_) => break, // killed: restart and resend from here
            }
        }
        cancel.store(true, Ordering::SeqCst);
        if killer.is_some_and(|k| k.join().unwrap()) {
            kills += 1;
        }
        kill9(r.child.id());
        let _ = r.child.wait();
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed; the test must crash the server several times"
    );

    // Every acknowledged event is in the log exactly once, and nothing else is.
    let log = argus_server::read_log(&data).unwrap();
    let mut ids: Vec<String> = log.iter().map(|(_, id)| id.clone()).collect();
    let in_log_order = ids.clone();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event is in the log twice");
    assert_eq!(n, evs.len(), "every acknowledged event is in the log");

    // After the last recovery: state digest, then the decisions of new events.
    let mut r = start(&data);
    let (_, status) = http(&r.addr, "GET", "/v1/admin/digest", "").unwrap();
    assert!(
        status["state_digest"]
            .as_str()
            .is_some_and(|d| d.len() == 16),
        "{status}"
    );
    let mut later = Vec::new();
    for e in &follow {
        let (st, v) = http(&r.addr, "POST", "/v1/events", e).unwrap();
        assert_eq!(st, 200, "{v}");
        later.push(strip_time(v["decision"].clone()));
    }
    let (_, status_after) = http(&r.addr, "GET", "/v1/admin/digest", "").unwrap();
    assert_ne!(
        status_after["state_digest"], status["state_digest"],
        "new events change the state"
    );
    kill9(r.child.id());
    let _ = r.child.wait();

    // The uninterrupted run: one process, the same events in log order, no crash.
    let clean = dir.path().join("clean");
    let mut c = start(&clean);
    let by_id: std::collections::HashMap<String, (usize, &String)> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                serde_json::from_str::<Value>(e).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                (i, e),
            )
        })
        .collect();
    for id in &in_log_order {
        let (i, e) = by_id[id];
        let (st, v) = http(&c.addr, "POST", "/v1/events", e).unwrap();
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            strip_time(v["decision"].clone()),
            strip_time(acked[i].clone().unwrap()),
            "decision for {id} differs from the crashed run's"
        );
    }
    let (_, clean_status) = http(&c.addr, "GET", "/v1/admin/digest", "").unwrap();
    assert_eq!(
        clean_status["state_digest"], status["state_digest"],
        "recovered state differs from the uninterrupted run"
    );
    assert_eq!(clean_status["engine_seq"], status["engine_seq"]);
    for (i, e) in follow.iter().enumerate() {
        let (_, v) = http(&c.addr, "POST", "/v1/events", e).unwrap();
        assert_eq!(
            strip_time(v["decision"].clone()),
            later[i],
            "decision for follow-up event {i} differs"
        );
    }
    let (_, clean_after) = http(&c.addr, "GET", "/v1/admin/digest", "").unwrap();
    assert_eq!(clean_after["state_digest"], status_after["state_digest"]);
    kill9(c.child.id());
    let _ = c.child.wait();
    eprintln!(
        "crash test: {kills} SIGKILLs, {} events, {} follow-ups, seed {seed}",
        evs.len(),
        follow.len()
    );
}

/// SIGHUP reloads (counted in the metrics); SIGTERM is a graceful stop: exit status 0, the log synced
/// and a final snapshot written, so the next start replays nothing.
#[test]
fn sighup_reloads_and_sigterm_stops_cleanly_with_a_final_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = Rng(7);
    // Its log, redirected (not a terminal), is read at the end.
    let mut r = spawn(&data, Stdio::piped());
    for e in events(50, 0, &mut rng) {
        assert_eq!(http(&r.addr, "POST", "/v1/events", &e).unwrap().0, 200);
    }
    let signal = |sig: &str, pid: u32| {
        Command::new("sh")
            .args(["-c", &format!("kill -{sig} {pid}")])
            .status()
            .unwrap()
    };
    signal("HUP", r.child.id());
    let reloaded = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        // /metrics is text, not JSON: fetched raw.
        let mut s = TcpStream::connect(&r.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: argus\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.contains("argus_reloads_total{outcome=\"ok\"} 1")
    });
    assert!(reloaded, "SIGHUP did not reload");
    signal("TERM", r.child.id());
    let status = r.child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    let mut log = String::new();
    r.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(
        log.matches("built-in development secret").count(),
        1,
        "the development-secret warning is printed once, not at every reload:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a redirected log:\n{log}"
    );
    let snaps: Vec<_> = std::fs::read_dir(data.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        snaps.iter().any(|n| n == "snap-00000000000000000050.bin"),
        "final snapshot covers all 50 records: {snaps:?}"
    );
    // The next start restores that snapshot and replays nothing.
    let Running { mut child, .. } = spawn(&data, Stdio::piped());
    kill9(child.id());
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("snapshot at record 50, 0 log records replayed"),
        "{err}"
    );
}
