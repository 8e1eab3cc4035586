//! `argus export`: a server's log as Hive-partitioned Parquet, read back by pyarrow, DuckDB and Spark
//! (pyspark, on the machine's Java) as each reads such a dataset out of the box, with the row counts
//! and a few values checked against what the server answered.
//!
//! Without python3 and those three packages the test says so and passes, except under
//! `ARGUS_REQUIRE_DATA` (CI), where it fails.

use crate::common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

fn readers_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pyarrow, duckdb, pyspark"])
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI) but python3 with pyarrow, duckdb and pyspark, or java, is missing"
        );
        eprintln!("skipped: python3 with pyarrow, duckdb and pyspark, and java, are needed");
    }
    ok
}

fn export(data: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["export", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn parquet_export_is_read_back_by_pyarrow_duckdb_and_spark() {
    if !readers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conf = dir.path().join("argus.toml");
    std::fs::write(&conf, common::starter_config("")).unwrap();
    let policies = [common::repo().join("policies")];
    let (server, addr) = common::serve(&conf, &policies, &data);
    let body =
        std::fs::read_to_string(common::repo().join("examples/starter/events.ndjson")).unwrap();
    let (st, v) = common::http(
        &addr,
        "POST",
        "/v1/events/batch",
        common::INGEST,
        &body,
        "application/x-ndjson",
    );
    assert_eq!(st, 200, "{v}");
    // What the server answered: the accepted events and their decisions' actions.
    let mut actions: BTreeMap<String, u64> = BTreeMap::new();
    let mut accepted = 0u64;
    for r in v["results"].as_array().unwrap() {
        if r["status"] == "accepted" {
            accepted += 1;
            if let Some(a) = r["decision"]["action"].as_str() {
                *actions.entry(a.to_string()).or_default() += 1;
            }
        }
    }
    drop(server);
    let logged = argus_server::read_log(&data).unwrap().len() as u64;
    assert_eq!(logged, accepted);

    let out = dir.path().join("lake");
    let rep = export(&data, &out, &[]);
    assert_eq!(rep["events"], accepted);
    assert_eq!(rep["feature_rows"], accepted);
    let decided: u64 = actions.values().sum();
    assert_eq!(rep["decisions"], decided);
    // Hive layout: <table>/date=YYYY-MM-DD/type=<type>/part-<first record>.parquet, no temporaries.
    for f in rep["files"].as_array().unwrap() {
        let f = f.as_str().unwrap();
        assert!(
            f.ends_with(".parquet") && f.contains("/date=2026-11-2") && f.contains("/type="),
            "{f}"
        );
    }

    let o = Command::new("python3")
        .arg(common::repo().join("scripts/read_export.py"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    let want_actions = serde_json::to_value(&actions).unwrap();
    for reader in ["pyarrow", "duckdb", "spark"] {
        let r = &seen[reader];
        assert_eq!(r["events"], accepted, "{reader}: {r}");
        assert_eq!(r["decisions"], decided, "{reader}: {r}");
        assert_eq!(r["features"], accepted, "{reader}: {r}");
        assert_eq!(r["actions"], want_actions, "{reader}: {r}");
    }
    assert_eq!(seen["duckdb"]["per_type"], seen["spark"]["per_type"]);
    // A few values: the first event as logged (tokens for personal data), its partition.
    let e1 = &seen["pyarrow"]["evt-0001"];
    assert_eq!(e1["type"], "account.register");
    assert_eq!(e1["event_type"], "account.register");
    assert_eq!(e1["actor"], "u1");
    assert_eq!(e1["time_ms"], 1_795_165_200_000i64); // 2026-11-20T09:00:00Z
    assert!(
        e1["data"]["email"]
            .as_str()
            .is_some_and(|e| e.starts_with("tk_")),
        "personal data is exported tokenized: {e1}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("alice@example.com"));
    assert_eq!(seen["spark"]["evt-0001"]["date"], "2026-11-20");
    assert_eq!(
        seen["pyarrow"]["dates"],
        serde_json::json!(["2026-11-20", "2026-11-21"])
    );

    // A time range: only the second day; exporting it again replaces the same files.
    let day2 = dir.path().join("day2");
    let a = export(
        &data,
        &day2,
        &["--from", "2026-11-21", "--to", "2026-11-22"],
    );
    let b = export(
        &data,
        &day2,
        &["--from", "2026-11-21", "--to", "2026-11-22"],
    );
    assert_eq!(a["files"], b["files"]);
    assert!(a["events"].as_u64().unwrap() > 0 && a["events"].as_u64() < Some(accepted));
    let o = Command::new("python3")
        .arg(common::repo().join("scripts/read_export.py"))
        .arg(&day2)
        .arg("--no-spark")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seen["pyarrow"]["dates"], serde_json::json!(["2026-11-21"]));
    assert_eq!(seen["duckdb"]["events"], a["events"]);
}

/// `[server] export_dir`: the server exports what it logs, continuously, into new files after a
/// cursor; two batches end up in the tables once each.
#[test]
fn the_server_exports_its_log_continuously() {
    if !readers_available() {
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let conf = dir.path().join("argus.toml");
    std::fs::write(&conf, common::starter_config("")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&conf)
        .arg("--policies")
        .arg(common::repo().join("policies"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("ARGUS_EXPORT_DIR", &lake)
        .env("ARGUS_EXPORT_EVERY", "1s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = common::Killed(child);
    let addr = line
        .trim()
        .strip_prefix("argus: listening on ")
        .unwrap()
        .to_string();
    let body =
        std::fs::read_to_string(common::repo().join("examples/starter/events.ndjson")).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let (first, second) = lines.split_at(20);
    let mut accepted = 0;
    let cursor = lake.join("_argus_export_cursor");
    for part in [first, second] {
        let (st, v) = common::http(
            &addr,
            "POST",
            "/v1/events/batch",
            common::INGEST,
            &part.join("\n"),
            "application/x-ndjson",
        );
        assert_eq!(st, 200, "{v}");
        accepted += v["accepted"].as_u64().unwrap();
        // Wait for the export to pass the last accepted record.
        let last = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["seq"].as_u64())
            .max()
            .unwrap();
        let t = std::time::Instant::now();
        while std::fs::read_to_string(&cursor)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            < Some(last)
        {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "no export"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    drop(server);
    let o = Command::new("python3")
        .arg(common::repo().join("scripts/read_export.py"))
        .arg(&lake)
        .arg("--no-spark")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seen["pyarrow"]["events"], accepted);
    assert_eq!(seen["duckdb"]["events"], accepted);
    assert_eq!(
        seen["pyarrow"]["features"], 0,
        "the feature table is argus export's"
    );
}
