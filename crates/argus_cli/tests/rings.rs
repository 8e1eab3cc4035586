//! `argus rings` end to end: a brushing ring hidden in a buyer × seller edge file with string ids.

use std::io::Write;
use std::process::Command;

#[test]
fn finds_the_ring_in_an_edge_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "# buyer,seller,amount").unwrap();
    let mut s = 11u64;
    let mut rnd = |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n
    };
    // Honest orders: 2,000 buyers, 300 sellers, one or two orders each.
    for b in 0..2000 {
        for _ in 0..1 + rnd(2) {
            writeln!(f, "buyer-{b},seller-{},12.50", rnd(300)).unwrap();
        }
    }
    // The ring: 12 controlled buyers ordering from the same 3 sellers.
    for b in 0..12 {
        for s in 0..3 {
            writeln!(f, "ring-buyer-{b},ring-seller-{s},1.99").unwrap();
        }
    }
    drop(f);
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["rings", "--edges", path.to_str().unwrap(), "--blocks", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &v["blocks"][0];
    let rows: Vec<&str> = b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let cols: Vec<&str> = b["cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 12, "{rows:?}");
    assert!(rows.iter().all(|r| r.starts_with("ring-buyer-")));
    assert_eq!(cols, ["ring-seller-0", "ring-seller-1", "ring-seller-2"]);
    assert_eq!(v["blocks"].as_array().unwrap().len(), 2);
    assert!(v["blocks"][1]["density"].as_f64() < b["density"].as_f64());

    // Huge integer ids are numbered, not allocated by.
    std::fs::write(&path, "4000000000,1\n4000000000,2\n7,1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "rings",
            "--edges",
            path.to_str().unwrap(),
            "--weighting",
            "plain",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["blocks"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "4000000000"),
        "{v}"
    );

    // A malformed line is an error with its line number.
    std::fs::write(&path, "a,b\nlonely\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["rings", "--edges", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:"));
}

/// Time as a third mode: a group rating each other in the same two days is the first block, with its
/// periods, although a larger slow community is denser over the whole history.
#[test]
fn time_as_a_mode_finds_the_lockstep_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ratings.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    let day = 86_400i64;
    let t0 = 1_300_000_000i64 / day * day;
    let mut s = 5u64;
    let mut rnd = |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n
    };
    // A slow community: 40 × 40, one rating each over a year.
    for r in 0..40 {
        for c in 0..40 {
            if r != c {
                writeln!(
                    f,
                    "{},{},1,{}",
                    100 + r,
                    100 + c,
                    t0 + rnd(365) as i64 * day + 3600
                )
                .unwrap();
            }
        }
    }
    // Lockstep: 8 accounts rate each other on days 200 and 201.
    for d in [200, 201] {
        for r in 0..8 {
            for c in 0..8 {
                if r != c {
                    writeln!(f, "{r},{c},10,{}", t0 + d * day + 60 * (r * 8 + c)).unwrap();
                }
            }
        }
    }
    drop(f);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let p = path.to_str().unwrap();
    let v = run(&[
        "rings",
        "--edges",
        p,
        "--time-column",
        "4",
        "--bucket",
        "1d",
        "--blocks",
        "2",
    ]);
    let b = &v["blocks"][0];
    let ids = |k: &str| {
        b[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().parse::<i64>().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("rows"), (0..8).collect::<Vec<_>>());
    assert_eq!(ids("cols"), (0..8).collect::<Vec<_>>());
    assert_eq!(
        b["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect::<Vec<_>>(),
        [t0 + 200 * day, t0 + 201 * day]
    );
    assert_eq!(b["mass"].as_f64(), Some(112.0));
    // Without time, the slow community is the densest block.
    let v = run(&["rings", "--edges", p, "--weighting", "plain"]);
    assert_eq!(v["blocks"][0]["rows"].as_array().unwrap().len(), 40);
    // An outlying time is one more period, not a reason to allocate by it.
    std::fs::write(
        &path,
        "1,2,3,1300000000\n1,3,3,1300000000\n2,2,3,99999999999999\n",
    )
    .unwrap();
    let v = run(&[
        "rings",
        "--edges",
        p,
        "--time-column",
        "4",
        "--bucket",
        "1d",
    ]);
    assert_eq!(
        v["blocks"][0]["periods"],
        serde_json::json!([1_299_974_400i64, 99_999_999_964_800i64]),
        "{v}"
    );
    // A time column that is not a time is an error with its line.
    std::fs::write(&path, "1,2,3,yesterday\n1,2,3,inf\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["rings", "--edges", p, "--time-column", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":1: column 4"));
}

/// On events: the engine's graph detectors over a simulated world print findings that name the
/// coupon ring's accounts; without `[graph]` the command refuses.
#[test]
fn findings_on_an_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("w.ndjson");
    let e = events.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "simulate",
            "--seed",
            "3",
            "--users",
            "2000",
            "--days",
            "6",
            "--only",
            "coupon_ring",
            "--out",
            e,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/simulator/graph.toml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["rings", "--events", e, "--config", cfg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ring: std::collections::HashSet<String> =
        std::fs::read_to_string(dir.path().join("w.truth.ndjson"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|t| t["scenario"] == "coupon_ring" && t["role"] != "label")
            .map(|t| t["actor"].as_str().unwrap().to_string())
            .collect();
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let clusters: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["detector"] == "cluster")
        .collect();
    assert!(!clusters.is_empty(), "no cluster findings");
    let named: std::collections::HashSet<&str> = clusters
        .iter()
        .flat_map(|f| {
            f["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
        })
        .collect();
    let caught = ring.iter().filter(|a| named.contains(a.as_str())).count();
    assert!(
        caught * 2 >= ring.len(),
        "{caught} of {} ring accounts named",
        ring.len()
    );
    let stray = named.iter().filter(|a| !ring.contains(**a)).count();
    assert!(
        stray * 5 <= named.len(),
        "{stray} of {} named accounts are not the ring's",
        named.len()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["rings", "--events", e])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [graph] section"));
}
