//! The `argus` binary end to end: replay the starter events on the embedded default configuration.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn replay_writes_tables_summary_and_rejects() {
    let dir = std::env::temp_dir().join(format!("argus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .args(["replay", "--input", "examples/starter/events.ndjson"])
        .arg("--out-csv")
        .arg(dir.join("f.csv"))
        .arg("--out-parquet")
        .arg(dir.join("f.parquet"))
        .arg("--summary")
        .arg(dir.join("s.json"))
        .arg("--rejects")
        .arg(dir.join("r.ndjson"))
        .arg("--snapshot")
        .arg(dir.join("state.snap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("45 accepted, 1 duplicates, 0 too late, 1 rejected"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("s.json")).unwrap()).unwrap();
    assert_eq!(summary["accepted"], 45);
    let csv = std::fs::read_to_string(dir.join("f.csv")).unwrap();
    assert_eq!(csv.lines().count(), 46);
    assert!(
        !csv.contains("alice@example.com"),
        "personal data must not reach the table"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("r.ndjson"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // Restoring the snapshot and replaying the same file again: everything is a duplicate now.
    let again = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .args([
            "replay",
            "--input",
            "examples/starter/events.ndjson",
            "--restore",
        ])
        .arg(dir.join("state.snap"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 accepted, 46 duplicates"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_reports_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("argus-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[[features]]\nname = \"x\"\nkind = \"cout\"\nevents = [\"order.create\"]\nwindow = \"1h\"\n\n[csvv]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown section `csvv`, did you mean `csv`?"),
        "{err}"
    );
    assert!(
        err.contains("unknown feature kind `cout`, did you mean `count`?"),
        "{err}"
    );
    // The server's settings too, as `serve` reads them.
    let guard = dir.join("guard.toml");
    std::fs::write(
        &guard,
        format!(
            "include = [{:?}]\n[lifecycle.guard]\npause_after = 0\n",
            root().join("examples/starter/argus.toml")
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["check", "--config"])
        .arg(&guard)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pause_after: 1 to 1,000,000 decisions"),
        "{err}"
    );
    let ok = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .args(["check", "--config", "examples/handbook/argus.toml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_starter_policy_pack_passes_its_own_tests() {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .arg("test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("policy tests: 24 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_expectation_fails_and_a_bad_rule_is_shown_with_its_span() {
    let dir = std::env::temp_dir().join(format!("argus-pol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.toml"),
        "[policy]\ncheckpoint = \"order.create\"\n[[rules]]\nname = \"big\"\nwhen = \"event.amount > 100.0\"\naction = \"review\"\nreason = \"big\"\n\
         [[tests]]\nname = \"expects too much\"\nevent = { type = \"order.create\", actor = \"u\", data = { order = \"o\", amount = \"500\" } }\nexpect_action = \"block\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .args(["test", "--policies"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("FAILED")
            && stdout.contains("action review (decided by rule_action), expected block"),
        "{stdout}"
    );

    std::fs::write(dir.join("p.toml"), "[policy]\ncheckpoint = \"order.create\"\n[[rules]]\nname = \"big\"\nwhen = \"event.amont > 100.0\"\naction = \"review\"\nreason = \"big\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .args(["check", "--policies"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("error[unknown_name]: unknown name `event.amont`")
            && err.contains("^^^^^^^^^^^")
            && err.contains("did you mean `event.amount`?"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Golden decisions: the starter events through the embedded configuration and starter pack; the
/// decisions (one JSON line per checkpoint event) must equal `tests/golden/starter_decisions.ndjson`.
/// Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p argus_cli`, and review the diff.
#[test]
fn golden_starter_decisions() {
    let dir = std::env::temp_dir().join(format!("argus-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .current_dir(root())
        .args([
            "replay",
            "-q",
            "--input",
            "examples/starter/events.ndjson",
            "--decisions",
        ])
        .arg(dir.join("d.ndjson"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(dir.join("d.ndjson")).unwrap();
    let golden = root().join("crates/argus_cli/tests/golden/starter_decisions.ndjson");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        got, want,
        "decisions changed; if intended, regenerate with UPDATE_GOLDEN=1"
    );
    assert!(got.lines().count() >= 30);
    std::fs::remove_dir_all(&dir).ok();
}
