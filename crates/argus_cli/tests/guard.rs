//! The blast-radius guard in a server receiving a simulated world (the binary, over HTTP): a broken
//! rule (`event.amount > 0.0` → block on every payment) is deployed part-way through by reloading
//! the policy directory. With the guard it is paused within a bounded number of payments; the test
//! reports how many honest users it blocked before the pause, next to the number without the guard
//! (`cargo test -p argus_cli --test all guard:: -- --nocapture` prints the figures BENCHMARKS.md quotes).

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};

const RULE: &str = "broken_payment_rule";

use crate::common;
use common::*;

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
    /// Every rule the guard paused over the whole world, with its cause.
    pauses: Vec<String>,
}

fn run(dir: &Path, world: &[String], honest: &HashSet<String>, guard: bool) -> Run {
    let policies = dir.join("policies");
    copy_dir(&repo().join("policies"), &policies);
    let conf = dir.join("argus.toml");
    std::fs::write(
        &conf,
        starter_config(&format!("[lifecycle.guard]\nenabled = {guard}\n")),
    )
    .unwrap();
    let (_server, addr) = serve(&conf, std::slice::from_ref(&policies), &dir.join("data"));
    let half = world.len() / 2;
    let mut out = Run {
        payments_until_pause: 0,
        paused: false,
        honest_blocked: 0,
        honest_payments_blocked: 0,
        pauses: Vec::new(),
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
    // What else the guard paused (the starter pack's own rules meet attack waves in this world).
    let (_, g) = http(&addr, "GET", "/v1/guard", ADMIN, "", "application/json");
    out.pauses = g["state"]["paused"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{} ({}, {} hits in {} events)",
                t["rule"].as_str().unwrap_or(""),
                t["cause"].as_str().unwrap_or(""),
                t["window_hits"],
                t["window_events"]
            )
        })
        .collect();
    out
}

thread_local! {
    static ACTORS: std::cell::RefCell<HashMap<String, String>> = std::cell::RefCell::new(HashMap::new());
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
        "guard: every pause in the run with the guard: {:?}",
        with.pauses
    );
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
