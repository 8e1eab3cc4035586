//! The blast-radius guard in a server receiving a simulated world (the binary, over HTTP): a broken
//! rule (`event.amount > 0.0` → block on every payment) is deployed part-way through by reloading
//! the policy directory. With the guard it is paused within a bounded number of payments; the test
//! reports how many honest users it blocked before the pause, next to the number without the guard
//! (`cargo test -p argus_cli --test guard -- --nocapture` prints the figures BENCHMARKS.md quotes).

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ADMIN: &str = "admin-key-0123456789";
const INGEST: &str = "ingest-key-0123456789";
const RULE: &str = "broken_payment_rule";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn http(addr: &str, method: &str, path: &str, key: &str, body: &str, ctype: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run observed after the broken rule was deployed.
#[derive(Debug)]
struct Run {
    /// Payments decided after the deployment until the rule was paused (all of them without a pause).
    payments_until_pause: usize,
    paused: bool,
    /// Honest users whose payment the broken rule blocked.
    honest_blocked: usize,
    /// Payments by honest users the broken rule blocked.
    honest_payments_blocked: usize,
}

fn run(dir: &Path, world: &[String], honest: &HashSet<String>, guard: bool) -> Run {
    let argus = env!("CARGO_BIN_EXE_argus");
    let policies = dir.join("policies");
    copy_dir(&repo().join("policies"), &policies);
    let conf = dir.join("argus.toml");
    std::fs::write(
        &conf,
        format!(
            "include = [\"{starter}\"]\n[server]\nfsync = \"never\"\n[[server.api_keys]]\nname = \"loader\"\nrole = \"ingest\"\nkey = \"{INGEST}\"\n[[server.api_keys]]\nname = \"ops\"\nrole = \"admin\"\nkey = \"{ADMIN}\"\n[lifecycle.guard]\nenabled = {guard}\n",
            starter = repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(argus)
        .args(["serve", "--config"])
        .arg(&conf)
        .arg("--policies")
        .arg(&policies)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("argus: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    let half = world.len() / 2;
    let mut out = Run {
        payments_until_pause: 0,
        paused: false,
        honest_blocked: 0,
        honest_payments_blocked: 0,
    };
    let mut blocked_users = HashSet::new();
    for (i, chunk) in world.chunks(500).enumerate() {
        if i * 500 == half - half % 500 {
            // Deploy the broken rule: a new policy file, then a reload.
            std::fs::write(
                policies.join("zz_broken.toml"),
                format!("[policy]\ncheckpoint = \"payment.attempt\"\n\n[[rules]]\nname = \"{RULE}\"\nwhen = \"event.amount > 0.0\"\naction = \"block\"\nreason = \"a typo'd threshold\"\n"),
            )
            .unwrap();
            let (st, v) = http(
                &addr,
                "POST",
                "/v1/admin/reload",
                ADMIN,
                "",
                "application/json",
            );
            assert_eq!(st, 200, "{v}");
        }
        let (st, v) = http(
            &addr,
            "POST",
            "/v1/events/batch",
            INGEST,
            &chunk.join("\n"),
            "application/x-ndjson",
        );
        assert_eq!(st, 200, "{v}");
        if i * 500 < half - half % 500 {
            continue;
        }
        for r in v["results"].as_array().unwrap() {
            let d = &r["decision"];
            if d["checkpoint"] != "payment.attempt" {
                continue;
            }
            if d["paused"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == RULE))
            {
                out.paused = true;
            }
            if !out.paused {
                out.payments_until_pause += 1;
            }
            let by_rule = d["fired"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x["rule"] == RULE));
            if by_rule {
                assert_eq!(d["action"], "block");
                let id = d["event_id"].as_str().unwrap_or("");
                if let Some(a) = ACTORS.with(|m| m.borrow().get(id).cloned()) {
                    if honest.contains(&a) {
                        out.honest_payments_blocked += 1;
                        blocked_users.insert(a);
                    }
                }
            }
        }
    }
    out.honest_blocked = blocked_users.len();
    out
}

thread_local! {
    static ACTORS: std::cell::RefCell<HashMap<String, String>> = std::cell::RefCell::new(HashMap::new());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn the_guard_pauses_a_broken_rule_in_a_simulated_world() {
    let d = tempfile::tempdir().unwrap();
    let argus = env!("CARGO_BIN_EXE_argus");
    let world = d.path().join("world.ndjson");
    let st = Command::new(argus)
        .args([
            "simulate", "--seed", "11", "--days", "3", "--users", "400", "-o",
        ])
        .arg(&world)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let lines: Vec<String> = std::fs::read_to_string(&world)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let truth = std::fs::read_to_string(d.path().join("world.truth.ndjson")).unwrap();
    let mut honest = HashSet::new();
    let mut dishonest = HashSet::new();
    ACTORS.with(|m| {
        let mut m = m.borrow_mut();
        for l in truth.lines() {
            let t: Value = serde_json::from_str(l).unwrap();
            let (id, actor) = (t["id"].as_str().unwrap(), t["actor"].as_str().unwrap());
            m.insert(id.to_string(), actor.to_string());
            if t["scenario"] == "honest" {
                honest.insert(actor.to_string());
            } else {
                dishonest.insert(actor.to_string());
            }
        }
    });
    // An honest user is one with no attack event.
    let honest: HashSet<String> = honest.difference(&dishonest).cloned().collect();
    let with = run(&d.path().join("with"), &lines, &honest, true);
    let without = run(&d.path().join("without"), &lines, &honest, false);
    eprintln!(
        "guard: paused after {} payments; honest users blocked by the broken rule: {} with the guard ({} payments), {} without ({} payments, {} payments after deployment)",
        with.payments_until_pause,
        with.honest_blocked,
        with.honest_payments_blocked,
        without.honest_blocked,
        without.honest_payments_blocked,
        without.payments_until_pause
    );
    assert!(with.paused, "{with:?}");
    assert!(!without.paused, "{without:?}");
    // Default settings: min_hits = 20 hits of the broken rule, each payment one hit.
    assert_eq!(with.payments_until_pause, 20, "{with:?}");
    assert!(with.honest_blocked <= 20, "{with:?}");
    assert!(
        without.honest_blocked > 5 * with.honest_blocked.max(1),
        "the guard spares most honest users: {with:?} vs {without:?}"
    );
}
