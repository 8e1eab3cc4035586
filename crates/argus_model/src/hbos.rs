//! An unsupervised anomaly score for a scenario with no labels yet: HBOS, the histogram-based outlier
//! score (Goldstein & Dengel, KI 2012). Each feature gets a histogram of the training rows; a row's
//! score is the sum over features of `−ln(density of its bin)`, densities normalized so that the
//! densest bin of each feature is 1 (it adds 0). Values outside the training range, or in a gap
//! between bins wider than a common bin, get the smallest density there is (one row's worth): rare
//! is suspicious. A missing value adds 0.
//!
//! The model is written as an [`Ensemble`]: one tree per feature whose leaves are the bins' `−ln(density)`
//! (a root split sends missing values to a leaf of 0). So it is scored, explained and deployed like any
//! model: `[[models]]` loads it, rules read `model.<name>`, and each decision's reasons name the
//! features whose values were rarest (a tree's contribution is its leaf less its expected value).
//! The link is logistic with the base at minus the training rows' 99th percentile: the score is 0.5
//! for a row as unusual as the training rows' 99th percentile, above it for rarer ones.
//!
//! Bins are quantile bins (up to `bins` per feature, equal numbers of rows, fewer when values repeat),
//! so heavy-tailed amounts and small counts both get useful resolution; a bin's density is its share
//! of rows over its width (a bin of a single value takes the narrowest width of the other bins).

use crate::ensemble::{Compare, Ensemble, Link, Missing, Node};
use crate::train::Table;

/// Builds the HBOS model of `t`'s rows (labels unused). `bins`: 2 to 255.
pub fn train_hbos(t: &Table, bins: usize) -> Result<Ensemble, String> {
    let (rows, cols) = (t.rows(), t.cols());
    if rows < 2 || cols == 0 || t.x.len() != rows * cols {
        return Err(format!(
            "an anomaly model needs at least 2 rows and 1 feature (got {rows} rows × {cols} features)"
        ));
    }
    let bins = bins.clamp(2, 255);
    let mut trees = Vec::with_capacity(cols);
    for c in 0..cols {
        let mut v: Vec<f64> = (0..rows)
            .map(|r| t.x[r * cols + c])
            .filter(|x| x.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        trees.push(feature_tree(c as u32, &v, rows, bins));
    }
    let mut e = Ensemble {
        features: t.features.clone(),
        base: 0.0,
        link: Link::Logistic { scale: 1.0 },
        compare: Compare::LessEqual,
        trees,
    };
    e.fill_expected_values();
    // The base: minus the 99th percentile of the training rows' raw sums.
    let mut raw: Vec<f64> = (0..rows).map(|r| e.margin(t.row(r))).collect();
    raw.sort_by(f64::total_cmp);
    let p99 = raw[((rows - 1) as f64 * 0.99).round() as usize];
    e.base = -p99;
    e.validate()?;
    Ok(e)
}

/// One feature's tree over its sorted finite values `v` (of `rows` rows in all).
fn feature_tree(feature: u32, v: &[f64], rows: usize, bins: usize) -> Vec<Node> {
    // Leaves in order: below the range, the bins, above the range; then missing.
    let n = v.len();
    let mut edges: Vec<f64> = Vec::new(); // upper bounds of the bins (inclusive)
    let mut counts: Vec<usize> = Vec::new();
    let mut lows: Vec<f64> = Vec::new();
    if n > 0 {
        let mut i = 0;
        while i < n {
            // Aim for n / bins rows per bin, never splitting equal values.
            let target = (i + n.div_ceil(bins)).min(n);
            let mut j = target.max(i + 1);
            while j < n && v[j] == v[j - 1] {
                j += 1;
            }
            lows.push(v[i]);
            edges.push(v[j - 1]);
            counts.push(j - i);
            i = j;
        }
    }
    // Densities: share of rows over width. A bin of one distinct value has no width of its own: it
    // takes the narrowest width of the bins that have one (so a point mass is at least as dense as
    // any spread-out bin), or, when every bin is one value (a small count), a common width.
    let span = if n > 0 { (v[n - 1] - v[0]).abs() } else { 0.0 };
    let floor = if span > 0.0 { span * 1e-6 } else { 1.0 };
    let k = edges.len();
    let common = if span > 0.0 {
        span / k.max(1) as f64
    } else {
        1.0
    };
    let narrowest = (0..k)
        .map(|b| edges[b] - lows[b])
        .filter(|w| *w > 0.0)
        .fold(f64::INFINITY, f64::min);
    let point_width = if narrowest.is_finite() {
        narrowest
    } else {
        common
    };
    let mut dens: Vec<f64> = (0..k)
        .map(|b| {
            let w = edges[b] - lows[b];
            let w = if w > 0.0 { w } else { point_width };
            counts[b] as f64 / rows as f64 / w.max(floor)
        })
        .collect();
    let max = dens.iter().copied().fold(0.0f64, f64::max);
    let min_density = if max > 0.0 {
        // One row's worth in the widest possible bin: less than any observed bin.
        (1.0 / rows as f64 / span.max(floor))
            .min(dens.iter().copied().fold(f64::INFINITY, f64::min))
            / max
    } else {
        1.0
    };
    for d in &mut dens {
        *d = if max > 0.0 { *d / max } else { 1.0 };
    }
    let rare = -(min_density.max(1e-12)).ln();
    // Leaves in order: below the range, each bin, a gap wider than a common bin between two bins
    // (no training value there: rare), above the range. Thresholds between leaves, never on a value
    // seen (a model file's numbers may come back a unit in the last place off).
    let eps = |x: f64| (x.abs().max(span) * 1e-9).max(1e-12);
    let mut leaves: Vec<f64> = Vec::with_capacity(2 * k + 2);
    let mut counts_all: Vec<f64> = Vec::with_capacity(2 * k + 2);
    let mut thresholds: Vec<f64> = Vec::with_capacity(2 * k + 1);
    if k > 0 {
        leaves.push(rare);
        counts_all.push(0.0);
        thresholds.push(lows[0] - eps(lows[0]));
        for b in 0..k {
            leaves.push(-(dens[b].max(1e-12)).ln());
            counts_all.push(counts[b] as f64);
            if b + 1 < k {
                let gap = lows[b + 1] - edges[b];
                if gap > common {
                    thresholds.push(edges[b] + eps(edges[b]));
                    leaves.push(rare);
                    counts_all.push(0.0);
                    thresholds.push(lows[b + 1] - eps(lows[b + 1]));
                } else {
                    thresholds.push(edges[b] + gap / 2.0);
                }
            }
        }
        thresholds.push(edges[k - 1] + eps(edges[k - 1]));
        leaves.push(rare);
        counts_all.push(0.0);
    }
    let mut nodes = Vec::new();
    // Root: non-missing values (x ≤ +∞) go left; missing go right, to a leaf of 0.
    nodes.push(Node {
        feature,
        threshold: f64::MAX,
        left: 1,
        right: 0,
        default_left: false,
        missing: Missing::Default,
        value: 0.0,
        cover: rows as f64,
    });
    if k == 0 {
        nodes.push(Node::leaf(0.0, 0.0));
    } else {
        build(&mut nodes, feature, &thresholds, &leaves, &counts_all);
    }
    let missing = nodes.len() as u32;
    nodes.push(Node::leaf(0.0, (rows - n) as f64));
    nodes[0].right = missing;
    nodes
}

/// Appends a balanced tree over `leaves` split at `thresholds` (one fewer), returning its root index.
fn build(nodes: &mut Vec<Node>, feature: u32, th: &[f64], leaves: &[f64], cover: &[f64]) -> u32 {
    let at = nodes.len() as u32;
    if leaves.len() == 1 {
        nodes.push(Node::leaf(leaves[0], cover[0]));
        return at;
    }
    let mid = leaves.len() / 2;
    nodes.push(Node {
        feature,
        threshold: th[mid - 1],
        left: 0,
        right: 0,
        default_left: true,
        missing: Missing::Default,
        value: 0.0,
        cover: cover.iter().sum(),
    });
    let l = build(
        nodes,
        feature,
        &th[..mid - 1],
        &leaves[..mid],
        &cover[..mid],
    );
    let r = build(nodes, feature, &th[mid..], &leaves[mid..], &cover[mid..]);
    nodes[at as usize].left = l;
    nodes[at as usize].right = r;
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cols: &[&str], rows: &[Vec<f64>]) -> Table {
        Table {
            features: cols.iter().map(|s| s.to_string()).collect(),
            x: rows.iter().flatten().copied().collect(),
            y: vec![false; rows.len()],
        }
    }

    #[test]
    fn rare_values_score_high_and_are_the_reasons() {
        // 1,000 ordinary rows: amount 10..60, logins 0..3.
        let mut rows = Vec::new();
        for i in 0..1000 {
            rows.push(vec![10.0 + (i % 50) as f64, (i % 4) as f64]);
        }
        let t = table(&["amount", "logins"], &rows);
        let m = train_hbos(&t, 20).unwrap();
        m.validate().unwrap();
        let usual = m.score(&[30.0, 1.0]);
        let odd_amount = m.score(&[5_000.0, 1.0]);
        let odd_both = m.score(&[5_000.0, 40.0]);
        assert!(usual <= 0.5, "{usual}");
        assert!(
            odd_amount > usual && odd_both > odd_amount,
            "{usual} {odd_amount} {odd_both}"
        );
        let r = m.top_reasons(&[30.0, 40.0], 1);
        assert_eq!(r[0].feature, "logins");
        // A missing value adds nothing.
        assert!((m.margin(&[30.0, f64::NAN]) - m.margin(&[30.0, 1.0])).abs() < 1.0);
        // About 1 % of the training rows score above 0.5, by construction.
        let above = rows.iter().filter(|r| m.score(r) > 0.5).count();
        assert!(above <= 20, "{above}");
    }

    #[test]
    fn a_constant_or_empty_feature_adds_nothing_and_bad_tables_are_refused() {
        let rows: Vec<Vec<f64>> = (0..100).map(|i| vec![3.0, f64::NAN, i as f64]).collect();
        let t = table(&["c", "none", "x"], &rows);
        let m = train_hbos(&t, 10).unwrap();
        assert_eq!(m.attribute(&[3.0, f64::NAN, 50.0]).1[..2], [0.0, 0.0]);
        assert!(train_hbos(&table(&["a"], &[vec![1.0]]), 10).is_err());
    }

    #[test]
    fn a_point_mass_is_common_and_a_gap_is_rare() {
        // 90 % of rows at 0, the rest spread far away: 0 is the commonest value.
        let mut rows: Vec<Vec<f64>> = (0..900).map(|_| vec![0.0]).collect();
        rows.extend((0..100).map(|i| vec![100_000.0 + i as f64]));
        let m = train_hbos(&table(&["x"], &rows), 20).unwrap();
        assert!(
            m.margin(&[0.0]) <= m.margin(&[100_050.0]),
            "{} {}",
            m.margin(&[0.0]),
            m.margin(&[100_050.0])
        );
        // Two clusters: a value between them, seen by no training row, is rare.
        let mut rows: Vec<Vec<f64>> = (0..500).map(|i| vec![10.0 + (i % 50) as f64]).collect();
        rows.extend((0..500).map(|i| vec![10_000.0 + (i % 50) as f64]));
        let m = train_hbos(&table(&["x"], &rows), 20).unwrap();
        assert!(m.margin(&[5_000.0]) > m.margin(&[30.0]) + 2.0);
        assert!(m.margin(&[5_000.0]) > m.margin(&[10_020.0]) + 2.0);
    }

    #[test]
    fn the_same_rows_give_the_same_model() {
        let rows: Vec<Vec<f64>> = (0..500)
            .map(|i| vec![((i * 7919) % 1000) as f64, (i % 13) as f64])
            .collect();
        let t = table(&["a", "b"], &rows);
        assert_eq!(train_hbos(&t, 16).unwrap(), train_hbos(&t, 16).unwrap());
    }
}
