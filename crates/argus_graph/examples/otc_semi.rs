//! Semi-supervised graph signals on Bitcoin-OTC's real labels (REV2, WSDM 2018: 180 fraudsters,
//! 136 benign), time-ordered, beside the degree baseline and the dense-block score:
//!
//! ```sh
//! cargo run --release -p argus_graph --example otc_semi -- ../shared/data/graphs
//! ```
//!
//! **Protocol (prequential).** The 35,592 ratings are replayed in time order into
//! [`argus_graph::Propagation`] (signed: a rating is −10 … +10). A labelled user's label becomes known
//! just after their last rating given or received (when their story on the platform is over). Each
//! labelled user is scored once, when their own `k`-th rating given or received arrives (k = 3:
//! early, most fraudsters have few; k = ∞: their last), using only the labels known strictly before
//! that rating's time. So no label known later leaks into a score, and every labelled user is both a
//! test case (before their label is known) and, afterwards, a seed for the others.
//!
//! **Baselines, at the same moments:** degree (ratings given and received; scored in whichever
//! direction is better for it, as a generous baseline), the mean rating received so far (a plain
//! feature, no labels), and the dense-block score (log-weighted FRAUDAR's first five blocks of the
//! whole rater × ratee graph: a user's score is the density of the first block holding them; computed
//! on the *whole* graph, which favours it).
//!
//! **GBDT.** Argus's own booster (`argus_model::train`) over the signals and the plain features, trained
//! on the first half of the labelled users by scoring time and tested on the second half (each
//! single signal is also measured on that half).

use argus_graph::{peel_many, Bipartite, Propagation, PropagationConfig, Weighting};
use argus_model::metrics::{average_precision, precision_recall_at_k, roc_auc};
use std::collections::HashMap;
use std::path::Path;

/// One labelled user's row at their scoring moment.
#[derive(Debug, Clone)]
pub struct Row {
    pub user: u64,
    pub fraud: bool,
    pub time: f64,
    /// Named values: signals and baselines.
    pub x: Vec<f64>,
}

pub const COLUMNS: [&str; 9] = [
    "degree",
    "mean_rating_received",
    "dense_block",
    "fraud_share",
    "fraud_share_2hop",
    "legit_distrust",
    "label_score",
    "labelled_neighbors",
    "ratings_received",
];

/// A score's quality on some rows: AUC, average precision, precision at 20 and 50.
#[derive(Debug, Clone, Copy)]
pub struct Quality {
    pub auc: f64,
    pub ap: f64,
    pub p20: f64,
    pub p50: f64,
}

pub fn quality(scores: &[f64], y: &[bool]) -> Quality {
    Quality {
        auc: roc_auc(scores, y).unwrap_or(f64::NAN),
        ap: average_precision(scores, y).unwrap_or(f64::NAN),
        p20: precision_recall_at_k(scores, y, 20).0,
        p50: precision_recall_at_k(scores, y, 50).0,
    }
}

/// The rows of every labelled user at their `k`-th interaction (`usize::MAX`: their last).
pub fn rows(dir: &Path, k: usize) -> Result<Vec<Row>, String> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    let mut edges: Vec<(u64, u64, f64, f64)> = Vec::new();
    for line in read("bitcoin-otc.csv")?.lines() {
        let t: Vec<&str> = line.trim().split(',').collect();
        if t.len() < 4 {
            continue;
        }
        let (Ok(a), Ok(b), Ok(r), Ok(time)) = (
            t[0].parse::<u64>(),
            t[1].parse::<u64>(),
            t[2].parse::<f64>(),
            t[3].parse::<f64>(),
        ) else {
            continue;
        };
        edges.push((a, b, r, time));
    }
    // Stable: ratings at the same second keep the file's order.
    edges.sort_by(|x, y| x.3.total_cmp(&y.3));
    let mut labels: HashMap<u64, bool> = HashMap::new();
    for line in read("bitcoin-otc-labels.csv")?.lines() {
        let t: Vec<&str> = line.trim().split(',').collect();
        if let (Some(Ok(u)), Some(Ok(l))) = (
            t.first().map(|x| x.parse::<u64>()),
            t.get(1).map(|x| x.parse::<i64>()),
        ) {
            labels.insert(u, l == -1);
        }
    }
    if edges.is_empty() || labels.is_empty() {
        return Err("no ratings or no labels".into());
    }
    // Dense ids; each user's interaction count and last interaction.
    let mut id: HashMap<u64, u32> = HashMap::new();
    let mut raw: Vec<u64> = Vec::new();
    let mut intern = |u: u64| -> u32 {
        *id.entry(u).or_insert_with(|| {
            raw.push(u);
            (raw.len() - 1) as u32
        })
    };
    let dense: Vec<(u32, u32, f64, f64)> = edges
        .iter()
        .map(|&(a, b, r, t)| (intern(a), intern(b), r, t))
        .collect();
    let n = raw.len();
    let mut total = vec![0usize; n];
    let mut last = vec![f64::MIN; n];
    for &(a, b, _, t) in &dense {
        for v in [a, b] {
            total[v as usize] += 1;
            last[v as usize] = last[v as usize].max(t);
        }
    }
    // The dense-block score over the whole graph (favourable to it: it sees the future).
    let g = Bipartite::from_edges(dense.iter().map(|&(a, b, _, _)| (a, b)));
    let mut block = vec![0.0f64; n];
    for bl in peel_many(&g, Weighting::Log, 5) {
        for &v in bl.rows.iter().chain(&bl.cols) {
            if block[v as usize] == 0.0 {
                block[v as usize] = bl.density;
            }
        }
    }
    // Labels in the order they become known.
    let mut reveal: Vec<(f64, u32, bool)> = labels
        .iter()
        .filter_map(|(u, &f)| id.get(u).map(|&v| (last[v as usize], v, f)))
        .collect();
    reveal.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let mut next_reveal = 0;
    let mut p = Propagation::new(PropagationConfig {
        half_life_ms: 180 * 86_400_000,
        max_neighbors: 64,
        signed: true,
        scale: 10.0,
    });
    let mut seen = vec![0usize; n];
    let mut received = vec![(0.0f64, 0u32); n];
    let mut scored = vec![false; n];
    let mut out = Vec::new();
    for &(a, b, r, t) in &dense {
        // Only labels known strictly before this rating.
        while next_reveal < reveal.len() && reveal[next_reveal].0 < t {
            let (lt, v, f) = reveal[next_reveal];
            p.set_label(v, f, (lt * 1000.0) as i64);
            next_reveal += 1;
        }
        let ms = (t * 1000.0) as i64;
        p.add_edge(a, b, r, ms);
        received[b as usize].0 += r;
        received[b as usize].1 += 1;
        for v in [a, b] {
            seen[v as usize] += 1;
            let due = seen[v as usize] == k.min(total[v as usize]);
            let Some(&fraud) = labels.get(&raw[v as usize]) else {
                continue;
            };
            if !due || scored[v as usize] {
                continue;
            }
            scored[v as usize] = true;
            let s = p.signals(v, ms);
            let (sum, cnt) = received[v as usize];
            out.push(Row {
                user: raw[v as usize],
                fraud,
                time: t,
                x: vec![
                    f64::from(s.degree_in + s.degree_out),
                    if cnt > 0 { sum / f64::from(cnt) } else { 0.0 },
                    block[v as usize],
                    s.fraud_share,
                    s.fraud_share_2hop,
                    s.legit_distrust,
                    s.score,
                    f64::from(s.labelled_neighbors),
                    f64::from(cnt),
                ],
            });
        }
    }
    out.sort_by(|x, y| x.time.total_cmp(&y.time).then(x.user.cmp(&y.user)));
    Ok(out)
}

/// Each column's quality as a score (higher = fraud; degree and the mean rating in whichever
/// direction suits them better), and the GBDT's on the later half.
pub struct Report {
    pub all: Vec<(String, Quality)>,
    pub later_half: Vec<(String, Quality)>,
    pub rows: usize,
    pub fraud: usize,
}

fn oriented(name: &str, v: &[f64], y: &[bool]) -> Vec<f64> {
    let q = roc_auc(v, y).unwrap_or(0.5);
    // The plain features may point either way; the semi-supervised signals are used as they are.
    if ["degree", "mean_rating_received", "ratings_received"].contains(&name) && q < 0.5 {
        v.iter().map(|x| -x).collect()
    } else {
        v.to_vec()
    }
}

pub fn evaluate(rows: &[Row]) -> Result<Report, String> {
    let y: Vec<bool> = rows.iter().map(|r| r.fraud).collect();
    let col = |rs: &[Row], c: usize| rs.iter().map(|r| r.x[c]).collect::<Vec<_>>();
    let mut all = Vec::new();
    for (c, name) in COLUMNS.iter().enumerate() {
        all.push((
            name.to_string(),
            quality(&oriented(name, &col(rows, c), &y), &y),
        ));
    }
    let half = rows.len() / 2;
    let (train, test) = rows.split_at(half);
    let yt: Vec<bool> = test.iter().map(|r| r.fraud).collect();
    let mut later = Vec::new();
    for (c, name) in COLUMNS.iter().enumerate() {
        // Orientation chosen on the training half.
        let ytr: Vec<bool> = train.iter().map(|r| r.fraud).collect();
        let flip = ["degree", "mean_rating_received", "ratings_received"].contains(name)
            && roc_auc(&col(train, c), &ytr).unwrap_or(0.5) < 0.5;
        let v: Vec<f64> = col(test, c)
            .into_iter()
            .map(|x| if flip { -x } else { x })
            .collect();
        later.push((name.to_string(), quality(&v, &yt)));
    }
    let table = |rs: &[Row], cols: &[usize]| argus_model::train::Table {
        features: cols.iter().map(|&c| COLUMNS[c].to_string()).collect(),
        x: rs
            .iter()
            .flat_map(|r| cols.iter().map(|&c| r.x[c]).collect::<Vec<_>>())
            .collect(),
        y: rs.iter().map(|r| r.fraud).collect(),
    };
    let params = argus_model::train::Params {
        trees: 200,
        max_depth: 3,
        learning_rate: 0.05,
        early_stopping_rounds: 0,
        ..Default::default()
    };
    let sets: [(&str, Vec<usize>); 3] = [
        ("GBDT: degree + mean rating (no labels)", vec![0, 1, 8]),
        (
            "GBDT: semi-supervised signals + degree",
            vec![0, 3, 4, 5, 6, 7, 8],
        ),
        ("GBDT: all of them", (0..COLUMNS.len()).collect()),
    ];
    for (name, cols) in sets {
        let (model, _) = argus_model::train::train(&table(train, &cols), None, &params)?;
        let t = table(test, &cols);
        let s: Vec<f64> = (0..t.rows()).map(|r| model.score(t.row(r))).collect();
        later.push((name.to_string(), quality(&s, &yt)));
    }
    Ok(Report {
        all,
        later_half: later,
        rows: rows.len(),
        fraud: y.iter().filter(|&&f| f).count(),
    })
}

#[allow(dead_code)]
fn main() -> Result<(), String> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/graphs".into());
    for (label, k) in [
        ("early: at each user's 3rd rating", 3),
        ("late: at each user's last rating", usize::MAX),
    ] {
        let rows = rows(Path::new(&dir), k)?;
        let r = evaluate(&rows)?;
        // The premises: every labelled user with a rating is scored once, with their own label.
        let mut users: Vec<u64> = rows.iter().map(|r| r.user).collect();
        users.sort_unstable();
        users.dedup();
        assert_eq!(users.len(), rows.len(), "a user scored twice");
        println!(
            "\n## {label}: {} labelled users scored ({} fraudsters)",
            r.rows, r.fraud
        );
        println!("| score | AUC | AP | P@20 | P@50 |\n|---|---|---|---|---|");
        for (n, q) in &r.all {
            println!(
                "| {n} | {:.3} | {:.3} | {:.2} | {:.2} |",
                q.auc, q.ap, q.p20, q.p50
            );
        }
        println!(
            "\nLater half by scoring time ({} users; GBDT trained on the earlier half):",
            r.rows - r.rows / 2
        );
        println!("| score | AUC | AP | P@20 | P@50 |\n|---|---|---|---|---|");
        for (n, q) in &r.later_half {
            println!(
                "| {n} | {:.3} | {:.3} | {:.2} | {:.2} |",
                q.auc, q.ap, q.p20, q.p50
            );
        }
    }
    Ok(())
}
