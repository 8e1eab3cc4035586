//! The Fraud Detection Handbook data set through `examples/handbook/argus.toml` (configuration only),
//! checked row by row against an independent, straightforward computation of the 15 features.
//!
//! The reference scans each customer's and terminal's earlier transactions directly from the CSV text,
//! with its own date arithmetic (Zeller's congruence) and f64 amounts, as pandas does. It follows the
//! streaming ("arrival") reading of ties that the handbook's own code has: a transaction sees the
//! transactions before it in the file with time ≤ its own, not later rows with the same timestamp.

use crate::common;

use argus_engine::{replay, Config, Engine, Format, RowSink};
use argus_event::{TypeId, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};

struct Collect {
    rows: Vec<[f64; 15]>,
}

impl RowSink for Collect {
    fn write(&mut self, _id: &str, _ty: TypeId, _t: i64, f: &[Value]) -> std::io::Result<()> {
        let mut r = [f64::NAN; 15];
        for (i, v) in f.iter().enumerate() {
            r[i] = v.as_f64().unwrap_or(f64::NAN);
        }
        self.rows.push(r);
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Tx {
    secs: i64,
    customer: u32,
    terminal: u32,
    amount: f64,
    fraud: bool,
    weekend: bool,
    night: bool,
}

/// Day of week by Zeller's congruence, 0 = Saturday … 6 = Friday.
fn zeller(y: i64, m: i64, d: i64) -> i64 {
    let (y, m) = if m < 3 { (y - 1, m + 12) } else { (y, m) };
    (d + 13 * (m + 1) / 5 + y % 100 + (y % 100) / 4 + (y / 100) / 4 + 5 * (y / 100)) % 7
}

fn load(path: &std::path::Path) -> Vec<Tx> {
    let f = std::fs::File::open(path).expect("data file opens");
    let r = BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let mut out = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line = line.expect("readable");
        if i == 0 {
            continue;
        }
        let c: Vec<&str> = line.split(',').collect();
        let dt = c[1];
        let (y, mo, d): (i64, i64, i64) = (
            dt[0..4].parse().unwrap(),
            dt[5..7].parse().unwrap(),
            dt[8..10].parse().unwrap(),
        );
        let h: i64 = dt[11..13].parse().unwrap();
        let z = zeller(y, mo, d);
        out.push(Tx {
            secs: c[5].parse().unwrap(),
            customer: c[2].parse().unwrap(),
            terminal: c[3].parse().unwrap(),
            amount: c[4].parse().unwrap(),
            fraud: c[7] == "1",
            weekend: z == 0 || z == 1,
            night: h <= 6,
        });
    }
    out
}

/// The 15 features of transaction `i`, straight from the definitions.
fn reference(
    txs: &[Tx],
    by_customer: &HashMap<u32, Vec<usize>>,
    by_terminal: &HashMap<u32, Vec<usize>>,
    pos: &[usize],
    i: usize,
) -> [f64; 15] {
    const DAY: i64 = 86_400;
    let t = &txs[i];
    let mut r = [0.0; 15];
    r[0] = t.amount;
    r[1] = t.weekend as u8 as f64;
    r[2] = t.night as u8 as f64;
    let cust = &by_customer[&t.customer];
    for (k, w) in [1i64, 7, 30].iter().enumerate() {
        let (mut n, mut sum) = (0.0, 0.0);
        // Earlier rows of this customer, and this one.
        for &j in cust[..=pos[i]].iter().rev() {
            if txs[j].secs > t.secs - w * DAY && txs[j].secs <= t.secs {
                n += 1.0;
                sum += txs[j].amount;
            }
            if txs[j].secs <= t.secs - 30 * DAY {
                break;
            }
        }
        r[3 + 2 * k] = n;
        r[4 + 2 * k] = sum / n;
    }
    let term = &by_terminal[&t.terminal];
    for (k, w) in [1i64, 7, 30].iter().enumerate() {
        let (mut n, mut frauds) = (0.0, 0.0);
        let (lo, hi) = (t.secs - 7 * DAY - w * DAY, t.secs - 7 * DAY);
        for &j in term.iter() {
            if txs[j].secs > lo && txs[j].secs <= hi {
                n += 1.0;
                frauds += txs[j].fraud as u8 as f64;
            }
        }
        r[9 + 2 * k] = n;
        r[10 + 2 * k] = if n > 0.0 { frauds / n } else { 0.0 };
    }
    r
}

fn run(config: &str, path: &std::path::Path) -> Vec<[f64; 15]> {
    let cfg = Config::load(&common::root().join(config)).expect("handbook config loads");
    let mut engine = Engine::new(cfg);
    let input = BufReader::new(flate2::read::MultiGzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ));
    let mut sink = Collect {
        rows: Vec::with_capacity(1_760_000),
    };
    let stats = replay(
        &mut engine,
        input,
        Format::Csv,
        &mut [&mut sink],
        None,
        &mut |_| {},
    )
    .expect("replay runs");
    assert_eq!(stats.records, 1_754_155);
    assert_eq!(
        stats.accepted, 1_754_155,
        "every row is accepted: {stats:?}"
    );
    sink.rows
}

#[test]
fn handbook_features_match_an_independent_computation() {
    let Some(path) = common::data_file("fraud-handbook/transactions.csv.gz") else {
        return;
    };
    let txs = load(&path);
    assert_eq!(txs.len(), 1_754_155);
    let mut by_customer: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut by_terminal: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut pos = vec![0; txs.len()];
    for (i, t) in txs.iter().enumerate() {
        let c = by_customer.entry(t.customer).or_default();
        pos[i] = c.len();
        c.push(i);
        by_terminal.entry(t.terminal).or_default().push(i);
    }
    let exact = run("examples/handbook/argus.toml", &path);
    let bucketed = run("examples/handbook/argus-bucketed.toml", &path);
    let names = [
        "amount",
        "weekend",
        "night",
        "cust_nb_1d",
        "cust_avg_1d",
        "cust_nb_7d",
        "cust_avg_7d",
        "cust_nb_30d",
        "cust_avg_30d",
        "term_nb_1d",
        "term_risk_1d",
        "term_nb_7d",
        "term_risk_7d",
        "term_nb_30d",
        "term_risk_30d",
    ];
    let mut max_err = [0.0f64; 15];
    let mut bucket_abs = [0.0f64; 15];
    let mut bucket_max = [0.0f64; 15];
    let mut mismatches = 0usize;
    let term_slices = by_terminal;
    for i in 0..txs.len() {
        let want = reference(&txs, &by_customer, &term_slices, &pos, i);
        for f in 0..15 {
            let e = (exact[i][f] - want[f]).abs();
            if e.is_nan() || e > 1e-9 {
                mismatches += 1;
                if mismatches <= 10 {
                    eprintln!(
                        "row {i} feature {}: argus {} reference {}",
                        names[f], exact[i][f], want[f]
                    );
                }
            }
            max_err[f] = max_err[f].max(if e.is_nan() { f64::INFINITY } else { e });
            let b = (bucketed[i][f] - want[f]).abs();
            bucket_abs[f] += b;
            bucket_max[f] = bucket_max[f].max(b);
        }
    }
    eprintln!(
        "{:<16} {:>12} {:>16} {:>16}",
        "feature", "exact max", "bucketed mean", "bucketed max"
    );
    for f in 0..15 {
        eprintln!(
            "{:<16} {:>12.3e} {:>16.6} {:>16.6}",
            names[f],
            max_err[f],
            bucket_abs[f] / txs.len() as f64,
            bucket_max[f]
        );
    }
    assert_eq!(
        mismatches, 0,
        "exact windows must agree with the reference to 1e-9"
    );

    // Snapshot in the middle, restore, replay the rest: the same features, bit for bit.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()),
        &mut text,
    )
    .unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let cut = body.match_indices('\n').nth(876_543).unwrap().0 + 1;
    let cfg = || Config::load(&common::root().join("examples/handbook/argus.toml")).unwrap();
    let mut first = Engine::new(cfg());
    let mut a = Collect { rows: Vec::new() };
    replay(
        &mut first,
        format!("{header}\n{}", &body[..cut]).as_bytes(),
        Format::Csv,
        &mut [&mut a],
        None,
        &mut |_| {},
    )
    .unwrap();
    let mut second = Engine::restore(cfg(), &first.snapshot()).expect("restores");
    drop(first);
    let mut b = Collect { rows: Vec::new() };
    replay(
        &mut second,
        format!("{header}\n{}", &body[cut..]).as_bytes(),
        Format::Csv,
        &mut [&mut b],
        None,
        &mut |_| {},
    )
    .unwrap();
    a.rows.extend(b.rows);
    assert_eq!(a.rows.len(), exact.len());
    let same = a
        .rows
        .iter()
        .zip(&exact)
        .all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()));
    assert!(
        same,
        "snapshot at row 876,544 + replay of the rest must equal the straight run bit for bit"
    );
}
