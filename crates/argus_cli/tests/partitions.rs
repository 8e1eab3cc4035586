//! The partition invariant (P3.1): the same configuration and events give byte-identical feature
//! tables, decisions, findings and state (snapshot bytes) for P = 1, 2, 3, 4 and 7 feature partitions
//! through replay (partitions on worker threads). The one-event-at-a-time path that `argus test`
//! and the server use, one event at a time, is compared with replay in the engine's own tests. A
//! snapshot written with one partition count restores with another and continues exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn argus(args: &[&str], partitions: usize) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .env("ARGUS_PARTITIONS", partitions.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "argus {args:?} (P={partitions}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Replays `input` with `partitions`; returns (features CSV, decisions, findings, snapshot, summary).
fn replay(
    dir: &Path,
    tag: &str,
    input: &Path,
    partitions: usize,
    restore: Option<&Path>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, serde_json::Value) {
    let s = |p: &str| root().join(p).to_string_lossy().into_owned();
    let f = |n: &str| {
        dir.join(format!("{tag}.{n}"))
            .to_string_lossy()
            .into_owned()
    };
    let input = input.to_string_lossy().into_owned();
    let restore = restore.map(|p| p.to_string_lossy().into_owned());
    let (csv, dec, fnd, snap, sum) = (
        f("csv"),
        f("decisions"),
        f("findings"),
        f("snap"),
        f("json"),
    );
    // The simulator's graph, model and policies, with its order labels known two days later.
    let config = dir.join("argus.toml").to_string_lossy().into_owned();
    if !Path::new(&config).exists() {
        let text = format!(
            "include = [{:?}]\n[[event_types]]\nname = \"order.create\"\n[event_types.fields]\n\
             fraud = {{ type = \"int\", label = {{ name = \"fraud\", delay = \"2d\" }} }}\n",
            s("examples/simulator/graph-model.toml")
        );
        std::fs::write(&config, text).unwrap();
    }
    let mut args = vec!["replay", "-q", "--config", &config];
    let policies = [
        s("policies"),
        s("examples/simulator/policies"),
        s("examples/simulator/graph-policies"),
    ];
    for p in &policies {
        args.extend(["--policies", p]);
    }
    args.extend([
        "--input",
        &input,
        "--out-csv",
        &csv,
        "--decisions",
        &dec,
        "--findings",
        &fnd,
        "--snapshot",
        &snap,
        "--summary",
        &sum,
    ]);
    if let Some(r) = &restore {
        args.extend(["--restore", r]);
    }
    argus(&args, partitions);
    let read = |p: &str| std::fs::read(p).unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&read(&sum)).unwrap();
    (read(&csv), read(&dec), read(&fnd), read(&snap), summary)
}

#[test]
fn partition_count_changes_no_byte_of_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("w.ndjson");
    argus(
        &[
            "simulate",
            "--seed",
            "11",
            "--users",
            "3000",
            "--days",
            "10",
            "--labels",
            "--out",
            &events.to_string_lossy(),
        ],
        1,
    );
    let one = replay(dir.path(), "p1", &events, 1, None);
    let (csv, dec, fnd, snap, summary) = &one;
    // The premises: a real run with decisions, findings, expired keys and released labels.
    let accepted = summary["accepted"].as_u64().unwrap();
    assert!(accepted > 20_000, "{accepted} accepted");
    let decided = dec.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    assert!(decided > accepted / 2, "{decided} of {accepted} decided");
    assert!(
        String::from_utf8_lossy(dec).contains("\"block\""),
        "some decisions block"
    );
    assert!(!fnd.is_empty(), "the graph reports findings");
    assert!(
        summary["labels_released"].as_u64().unwrap() > 0,
        "labels are released: {}",
        summary["labels_released"]
    );
    assert!(
        summary["state"]["stats"]["keys_expired"].as_u64().unwrap() > 0,
        "keys expire during the run: {}",
        summary["state"]
    );
    for p in [2, 3, 4, 7] {
        let other = replay(dir.path(), &format!("p{p}"), &events, p, None);
        assert!(other.0 == *csv, "feature table differs with P={p}");
        assert!(other.1 == *dec, "decisions differ with P={p}");
        assert!(other.2 == *fnd, "findings differ with P={p}");
        assert!(
            other.3 == *snap,
            "state (snapshot bytes) differs with P={p}"
        );
        assert_eq!(
            other.4["state"]["partitions"].as_array().unwrap().len(),
            p,
            "the summary accounts memory per partition"
        );
    }

    // A snapshot taken with P=2 after the first half restores with P=5 and continues exactly: the
    // second half's decisions are the tail of the whole run's, and the final state is the same.
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    std::fs::write(&a, lines[..half].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[half..].join("\n") + "\n").unwrap();
    let first = replay(dir.path(), "a", &a, 2, None);
    let snap_a = dir.path().join("a.snap");
    let second = replay(dir.path(), "b", &b, 5, Some(&snap_a));
    assert!(
        second.3 == *snap,
        "state after restore with another P differs"
    );
    let whole = String::from_utf8_lossy(dec);
    let tail = String::from_utf8_lossy(&second.1);
    assert!(!tail.is_empty() && whole.ends_with(&*tail));
    assert!(whole.starts_with(&*String::from_utf8_lossy(&first.1)));
}
