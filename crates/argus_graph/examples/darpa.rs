//! The edge-burst score on the DARPA 1998 intrusion stream, as MIDAS is measured: every edge scored in
//! arrival order, ROC AUC against the attack labels, and the detector's throughput (parsing excluded).
//! `bench/burst.sh` unzips the data and runs this; or:
//! `cargo run --release -p argus_graph --example darpa -- target/bench/darpa.csv`

use argus_graph::Burst;
use std::io::BufRead;
use std::time::Instant;

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// `MM/DD/YYYY-hh:mm` as minutes since 1970.
fn minutes(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('-')?;
    let mut d = date.split('/');
    let (m, day, y): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (h, mi) = time.split_once(':')?;
    // Days from civil (Hinnant).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 1440 + h.parse::<i64>().ok()? * 60 + mi.parse::<i64>().ok()?)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/bench/darpa.csv".into());
    // Sketch rows, buckets and decay (MIDAS-R's defaults: 2, 1024, 0.5).
    let rows: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let buckets: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let decay: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.5);
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t0 = Instant::now();
    let (mut src, mut dst, mut tick, mut label) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut first = None;
    for line in std::io::BufReader::with_capacity(1 << 20, f).lines() {
        let line = line.unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        });
        let mut it = line.split(',');
        let (Some(s), Some(d), Some(t), Some(l)) = (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Some(m) = minutes(t) else { continue };
        let base = *first.get_or_insert(m);
        src.push(fnv(s));
        dst.push(fnv(d));
        tick.push(m - base + 1);
        label.push(l.trim() != "-");
    }
    let parse_s = t0.elapsed().as_secs_f64();
    let mut best = f64::INFINITY;
    let mut scores = Vec::new();
    for _ in 0..3 {
        let mut b = Burst::new(rows, buckets, decay);
        let t1 = Instant::now();
        scores = (0..src.len())
            .map(|i| b.score(src[i], dst[i], tick[i]))
            .collect();
        best = best.min(t1.elapsed().as_secs_f64());
    }
    let auc = argus_model::metrics::roc_auc(&scores, &label).unwrap_or(f64::NAN);
    let n = src.len();
    println!(
        "{{\"rows\": {rows}, \"buckets\": {buckets}, \"decay\": {decay}, \"edges\": {n}, \"anomalous\": {}, \"parse_seconds\": {parse_s:.3}, \"score_seconds\": {best:.3}, \"edges_per_second\": {:.0}, \"auc\": {auc:.4}}}",
        label.iter().filter(|&&l| l).count(),
        n as f64 / best
    );
}
