//! Bytes of feature state per key and per (key, feature), measured on real state:
//! `cargo run --release -p argus_engine --example memory`.
//!
//! For each configuration, 100,000 keys each receive events over one day; the state's own accounting
//! (hash-map slots plus heap) is divided by keys and by features.

use argus_engine::{Config, Engine};
use std::path::Path;

fn measure(name: &str, features: &str, events_per_key: usize) {
    let cfg = Config::from_str(features, Path::new(".")).expect("valid configuration");
    let n_features = cfg.features.features.len();
    let mut e = Engine::new(cfg);
    let keys = 100_000usize;
    let t0: i64 = 1_767_225_600_000;
    for j in 0..events_per_key {
        for k in 0..keys {
            let t = t0 + (j as i64 * 86_400_000 / events_per_key as i64);
            let line = format!(
                r#"{{"id":"{k}-{j}","type":"item.click","time":{t},"actor":"u{k}","data":{{"item":"i{}"}}}}"#,
                (k * 7 + j) % 5000
            );
            let ev = e
                .decoder()
                .decode_bytes(line.as_bytes())
                .expect("valid event");
            e.process(&ev).expect("accepted");
        }
    }
    let mem = e.feature_state().memory(e.features());
    let bytes: usize = mem.iter().map(|m| m.bytes).sum();
    println!(
        "{name:<44} {n_features:>3} feature(s) {events_per_key:>4} events/key: {:>8.1} B/key  {:>8.1} B/(key, feature)",
        bytes as f64 / keys as f64,
        bytes as f64 / keys as f64 / n_features as f64
    );
}

fn main() {
    let one = |kind: &str, extra: &str| {
        format!("[settings]\nallowed_lateness = \"0s\"\n[[features]]\nname = \"f\"\nkind = \"{kind}\"\nevents = [\"item.click\"]\nkey = [\"actor\"]\n{extra}\n")
    };
    println!("feature state per key (100,000 keys; hash-map slot + heap, as FeatureState::memory reports)");
    measure(
        "bucketed 1d count, 12 buckets",
        &one(
            "count",
            "window = \"1d\"\nmode = \"bucketed\"\nbuckets = 12",
        ),
        24,
    );
    measure(
        "bucketed 1d count, 24 buckets",
        &one(
            "count",
            "window = \"1d\"\nmode = \"bucketed\"\nbuckets = 24",
        ),
        24,
    );
    measure(
        "bucketed 1d count, 12 buckets, 1 event/key",
        &one(
            "count",
            "window = \"1d\"\nmode = \"bucketed\"\nbuckets = 12",
        ),
        1,
    );
    measure(
        "exact 1d count, 24 events/key",
        &one("count", "window = \"1d\""),
        24,
    );
    measure(
        "exact 1d count, 1 event/key",
        &one("count", "window = \"1d\""),
        1,
    );
    measure("lifetime count", &one("count", "window = \"lifetime\""), 24);
    let four = "[settings]\nallowed_lateness = \"0s\"\n".to_string()
        + &["1h", "6h", "12h", "1d"]
            .iter()
            .map(|w| format!("[[features]]\nname = \"c{}\"\nkind = \"count\"\nevents = [\"item.click\"]\nkey = [\"actor\"]\nwindow = \"{w}\"\nmode = \"bucketed\"\nbuckets = 12\n", w.replace(|c: char| !c.is_ascii_alphanumeric(), "")))
            .collect::<String>();
    measure("4 bucketed counts (1h, 6h, 12h, 1d)", &four, 24);
}
