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
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
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
    let out = Command::new(env!("CARGO_BIN_EXE_argus")).args(["rings", "--edges", path.to_str().unwrap(), "--blocks", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &v["blocks"][0];
    let rows: Vec<&str> = b["rows"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    let cols: Vec<&str> = b["cols"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(rows.len(), 12, "{rows:?}");
    assert!(rows.iter().all(|r| r.starts_with("ring-buyer-")));
    assert_eq!(cols, ["ring-seller-0", "ring-seller-1", "ring-seller-2"]);
    assert_eq!(v["blocks"].as_array().unwrap().len(), 2);
    assert!(v["blocks"][1]["density"].as_f64() < b["density"].as_f64());

    // A malformed line is an error with its line number.
    std::fs::write(&path, "a,b\nlonely\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus")).args(["rings", "--edges", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:"));
}
