//! A focused gradient-boosted tree trainer for binary labels: histogram splits over quantile bins
//! (missing values in a bin of their own, sent whichever way gains more), depth-wise growth with the
//! histogram-subtraction trick, logistic loss with a positive-class weight for imbalance, L2-regularised
//! leaves, and early stopping on a time-ordered validation set's ROC AUC.
//!
//! Why not a crate: `forust-ml` trained 3× slower than LightGBM here (../shared/CRATES.md) and brings
//! its own model format; this is ~300 lines, deterministic, single-threaded, and writes the same flat
//! `Ensemble` the scorer reads (ARCHITECTURE.md).

use crate::ensemble::{Compare, Ensemble, Link, Missing, Node, LEAF};
use crate::metrics::roc_auc;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Most boosting rounds (trees).
    pub trees: usize,
    pub max_depth: usize,
    pub learning_rate: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Least hessian sum in a child.
    pub min_child_weight: f64,
    /// Least loss reduction for a split.
    pub min_split_gain: f64,
    /// Bins per feature (≤ 255, plus one for missing values).
    pub max_bins: usize,
    /// Weight of positive rows (class imbalance); `None` = negatives / positives.
    pub scale_pos_weight: Option<f64>,
    /// Stop when the validation metric has not improved for this many rounds (0 = never).
    pub early_stopping_rounds: usize,
    /// The validation metric: `logloss` (lower is better), `auc` or `average_precision`.
    pub early_stopping_metric: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            trees: 400,
            max_depth: 6,
            learning_rate: 0.05,
            lambda: 1.0,
            min_child_weight: 1.0,
            min_split_gain: 0.0,
            max_bins: 255,
            scale_pos_weight: Some(1.0),
            early_stopping_rounds: 40,
            early_stopping_metric: "logloss".into(),
        }
    }
}

/// A row-major table: `x[r * cols + c]`, NaN for missing.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub features: Vec<String>,
    pub x: Vec<f64>,
    pub y: Vec<bool>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.y.len()
    }
    pub fn cols(&self) -> usize {
        self.features.len()
    }
    pub fn row(&self, r: usize) -> &[f64] {
        &self.x[r * self.cols()..(r + 1) * self.cols()]
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainLog {
    /// The validation metric after each round (empty without a validation set).
    pub valid_metric: Vec<f64>,
    /// Trees kept (the best round with early stopping).
    pub best_iteration: usize,
    pub scale_pos_weight: f64,
}

/// Quantile cut points per feature: value `x` falls in bin `1 + #{cuts < x}`; bin 0 is missing.
struct Bins {
    cuts: Vec<Vec<f64>>,
    offset: Vec<usize>,
    total: usize,
}

impl Bins {
    fn fit(t: &Table, max_bins: usize) -> Bins {
        let (rows, cols) = (t.rows(), t.cols());
        let max_cuts = max_bins.clamp(2, 255) - 1;
        let step = (rows / 200_000).max(1);
        let mut cuts = Vec::with_capacity(cols);
        for c in 0..cols {
            let mut v: Vec<f64> = (0..rows)
                .step_by(step)
                .map(|r| t.x[r * cols + c])
                .filter(|x| !x.is_nan())
                .collect();
            v.sort_by(f64::total_cmp);
            let mut distinct = v.clone();
            distinct.dedup();
            let cut: Vec<f64> = if distinct.len() <= max_cuts + 1 {
                distinct[..distinct.len().saturating_sub(1)].to_vec()
            } else {
                let mut q: Vec<f64> = (1..=max_cuts)
                    .map(|j| v[(j * v.len() / (max_cuts + 1)).min(v.len() - 1)])
                    .collect();
                q.dedup();
                if q.last() == v.last() {
                    q.pop();
                }
                q
            };
            cuts.push(cut);
        }
        let mut offset = Vec::with_capacity(cols);
        let mut total = 0;
        for c in &cuts {
            offset.push(total);
            total += c.len() + 2;
        }
        Bins {
            cuts,
            offset,
            total,
        }
    }

    fn bin(&self, c: usize, x: f64) -> u8 {
        if x.is_nan() {
            0
        } else {
            (1 + self.cuts[c].partition_point(|&k| k < x)) as u8
        }
    }
}

#[derive(Clone, Copy, Default)]
struct GH {
    g: f64,
    h: f64,
}

struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    default_left: bool,
}

struct Grower<'a> {
    bins: &'a Bins,
    binned: &'a [u8],
    cols: usize,
    grad: &'a [GH],
    p: &'a Params,
}

impl Grower<'_> {
    fn histogram(&self, rows: &[u32]) -> Vec<GH> {
        let mut h = vec![GH::default(); self.bins.total];
        for &r in rows {
            let r = r as usize;
            let gh = self.grad[r];
            let row = &self.binned[r * self.cols..(r + 1) * self.cols];
            for (c, &b) in row.iter().enumerate() {
                let e = &mut h[self.bins.offset[c] + b as usize];
                e.g += gh.g;
                e.h += gh.h;
            }
        }
        h
    }

    fn score(&self, g: f64, h: f64) -> f64 {
        g * g / (h + self.p.lambda)
    }

    fn best_split(&self, hist: &[GH], total: GH) -> Option<Split> {
        let parent = self.score(total.g, total.h);
        let mut best: Option<Split> = None;
        for c in 0..self.cols {
            let off = self.bins.offset[c];
            let n = self.bins.cuts[c].len() + 2;
            let miss = hist[off];
            let mut acc = GH::default();
            for b in 1..n - 1 {
                acc.g += hist[off + b].g;
                acc.h += hist[off + b].h;
                for default_left in [true, false] {
                    let (lg, lh) = if default_left {
                        (acc.g + miss.g, acc.h + miss.h)
                    } else {
                        (acc.g, acc.h)
                    };
                    let (rg, rh) = (total.g - lg, total.h - lh);
                    if lh < self.p.min_child_weight || rh < self.p.min_child_weight {
                        continue;
                    }
                    let gain = self.score(lg, lh) + self.score(rg, rh) - parent;
                    if gain > self.p.min_split_gain.max(1e-12)
                        && best.as_ref().is_none_or(|s| gain > s.gain)
                    {
                        best = Some(Split {
                            gain,
                            feature: c,
                            bin: b,
                            default_left,
                        });
                    }
                }
            }
        }
        best
    }

    /// Grows one tree over `rows` (reordered in place); returns its nodes and, per leaf, its row range.
    fn grow(&self, rows: &mut [u32]) -> (Vec<Node>, Vec<(usize, usize, f64)>) {
        let mut nodes = vec![Node::leaf(0.0, 0.0)];
        let mut leaves = Vec::new();
        let root_hist = self.histogram(rows);
        let total = rows.iter().fold(GH::default(), |a, &r| GH {
            g: a.g + self.grad[r as usize].g,
            h: a.h + self.grad[r as usize].h,
        });
        let mut stack = vec![(0usize, 0usize, rows.len(), 0usize, root_hist, total)];
        while let Some((id, start, end, depth, hist, tot)) = stack.pop() {
            let split = if depth < self.p.max_depth {
                self.best_split(&hist, tot)
            } else {
                None
            };
            let Some(s) = split else {
                let v = -tot.g / (tot.h + self.p.lambda) * self.p.learning_rate;
                nodes[id] = Node::leaf(v, tot.h);
                leaves.push((start, end, v));
                continue;
            };
            // Partition: left first.
            let (f, b, dl) = (s.feature, s.bin as u8, s.default_left);
            let slice = &mut rows[start..end];
            let mut i = 0;
            for j in 0..slice.len() {
                let bin = self.binned[slice[j] as usize * self.cols + f];
                if if bin == 0 { dl } else { bin <= b } {
                    slice.swap(i, j);
                    i += 1;
                }
            }
            let mid = start + i;
            let (small_is_left, small) = if mid - start <= end - mid {
                (true, &rows[start..mid])
            } else {
                (false, &rows[mid..end])
            };
            let small_hist = self.histogram(small);
            let big_hist: Vec<GH> = hist
                .iter()
                .zip(&small_hist)
                .map(|(p, s)| GH {
                    g: p.g - s.g,
                    h: p.h - s.h,
                })
                .collect();
            let sum = |h: &[GH]| {
                let off = self.bins.offset[0];
                let n = self.bins.cuts[0].len() + 2;
                h[off..off + n].iter().fold(GH::default(), |a, e| GH {
                    g: a.g + e.g,
                    h: a.h + e.h,
                })
            };
            let (lh, rh) = if small_is_left {
                (small_hist, big_hist)
            } else {
                (big_hist, small_hist)
            };
            let (lt, rt) = (sum(&lh), sum(&rh));
            let (l, r) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::leaf(0.0, lt.h));
            nodes.push(Node::leaf(0.0, rt.h));
            nodes[id] = Node {
                feature: f as u32,
                threshold: self.bins.cuts[f][s.bin - 1],
                left: l as u32,
                right: r as u32,
                default_left: dl,
                missing: Missing::Default,
                value: 0.0,
                cover: tot.h,
            };
            stack.push((r, mid, end, depth + 1, rh, rt));
            stack.push((l, start, mid, depth + 1, lh, lt));
        }
        (nodes, leaves)
    }
}

/// `ln(1 + eˣ)` without overflow: the logistic loss of a margin.
fn libm_free_softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn tree_value(tree: &[Node], x: &[f64]) -> f64 {
    let mut i = 0;
    loop {
        let n = &tree[i];
        if n.feature == LEAF {
            return n.value;
        }
        let v = x[n.feature as usize];
        let left = if v.is_nan() {
            n.default_left
        } else {
            v <= n.threshold
        };
        i = if left { n.left } else { n.right } as usize;
    }
}

/// Trains on `train`, stopping early on `valid` when given. Deterministic: the same tables and
/// parameters give the same model.
pub fn train(
    train: &Table,
    valid: Option<&Table>,
    p: &Params,
) -> Result<(Ensemble, TrainLog), String> {
    let (rows, cols) = (train.rows(), train.cols());
    if rows == 0 || cols == 0 || train.x.len() != rows * cols {
        return Err(format!(
            "training table has {rows} rows × {cols} features ({} values)",
            train.x.len()
        ));
    }
    if let Some(v) = valid {
        if v.cols() != cols || v.x.len() != v.rows() * cols {
            return Err("validation table does not match the training table".into());
        }
    }
    if p.max_depth == 0
        || p.max_depth > 16
        || !(p.learning_rate > 0.0 && p.learning_rate <= 1.0)
        || p.lambda < 0.0
    {
        return Err("parameters: max_depth 1..=16, learning_rate in (0, 1], lambda ≥ 0".into());
    }
    let pos = train.y.iter().filter(|&&y| y).count() as f64;
    let neg = rows as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err(format!(
            "the training rows need both classes ({pos} positive, {neg} negative)"
        ));
    }
    let spw = p.scale_pos_weight.unwrap_or(neg / pos);
    let bins = Bins::fit(train, p.max_bins);
    let mut binned = vec![0u8; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            binned[r * cols + c] = bins.bin(c, train.x[r * cols + c]);
        }
    }
    // Start from the weighted base rate.
    let rate = pos * spw / (pos * spw + neg);
    let base = (rate / (1.0 - rate)).ln();
    let mut margin = vec![base; rows];
    let mut valid_margin: Vec<f64> = valid.map(|v| vec![base; v.rows()]).unwrap_or_default();
    let mut grad = vec![GH::default(); rows];
    let mut order: Vec<u32> = (0..rows as u32).collect();
    let mut trees: Vec<Vec<Node>> = Vec::new();
    let metric: fn(&[f64], &[bool]) -> f64 = match p.early_stopping_metric.as_str() {
        "auc" => |m, y| roc_auc(m, y).unwrap_or(0.5),
        "average_precision" => |m, y| crate::metrics::average_precision(m, y).unwrap_or(0.0),
        "logloss" => |m, y| {
            // Negated, so that higher is better like the others.
            let n = m.len().max(1) as f64;
            -m.iter()
                .zip(y)
                .map(|(&m, &y)| {
                    if y {
                        libm_free_softplus(-m)
                    } else {
                        libm_free_softplus(m)
                    }
                })
                .sum::<f64>()
                / n
        },
        other => {
            return Err(format!(
                "early_stopping_metric `{other}`: logloss, auc or average_precision"
            ))
        }
    };
    let mut log = TrainLog {
        valid_metric: Vec::new(),
        best_iteration: 0,
        scale_pos_weight: spw,
    };
    let mut best = (f64::NEG_INFINITY, 0usize);
    for round in 0..p.trees {
        for r in 0..rows {
            let pr = 1.0 / (1.0 + (-margin[r]).exp());
            let w = if train.y[r] { spw } else { 1.0 };
            grad[r] = GH {
                g: w * (pr - f64::from(u8::from(train.y[r]))),
                h: (w * pr * (1.0 - pr)).max(1e-16),
            };
        }
        let grower = Grower {
            bins: &bins,
            binned: &binned,
            cols,
            grad: &grad,
            p,
        };
        // Rows in a fixed order each round keep training deterministic.
        for (i, o) in order.iter_mut().enumerate() {
            *o = i as u32;
        }
        let (tree, leaves) = grower.grow(&mut order);
        for (start, end, v) in leaves {
            for &r in &order[start..end] {
                margin[r as usize] += v;
            }
        }
        if let Some(v) = valid {
            for (r, m) in valid_margin.iter_mut().enumerate() {
                *m += tree_value(&tree, v.row(r));
            }
            let score = metric(&valid_margin, &v.y);
            log.valid_metric.push(score);
            if score > best.0 {
                best = (score, round + 1);
            }
        }
        trees.push(tree);
        if valid.is_some()
            && p.early_stopping_rounds > 0
            && round + 1 - best.1 >= p.early_stopping_rounds
        {
            break;
        }
    }
    if valid.is_some() {
        trees.truncate(best.1.max(1));
    }
    log.best_iteration = trees.len();
    let mut e = Ensemble {
        features: train.features.clone(),
        base,
        link: Link::Logistic { scale: 1.0 },
        compare: Compare::LessEqual,
        trees,
    };
    e.fill_expected_values();
    e.validate()?;
    Ok((e, log))
}

/// Balanced bagging: `bags` models, each on every positive row and a random sample of negatives
/// (`negatives_per_positive` of them per positive), averaged in log-odds (their trees concatenated,
/// outputs scaled by 1 / bags). The scores rank like a balanced ensemble but are not calibrated
/// probabilities. Deterministic for a given `seed`.
pub fn train_bagged(
    train: &Table,
    valid: Option<&Table>,
    p: &Params,
    bags: usize,
    negatives_per_positive: f64,
    seed: u64,
) -> Result<(Ensemble, TrainLog), String> {
    if bags <= 1 && negatives_per_positive <= 0.0 {
        return self::train(train, valid, p);
    }
    let bags = bags.max(1);
    let pos = train.y.iter().filter(|&&y| y).count() as f64;
    let neg = train.rows() as f64 - pos;
    let keep = if negatives_per_positive > 0.0 {
        (negatives_per_positive * pos / neg.max(1.0)).min(1.0)
    } else {
        1.0
    };
    let cols = train.cols();
    let mut merged: Option<Ensemble> = None;
    let mut last_log = None;
    for b in 0..bags {
        let mut t = Table {
            features: train.features.clone(),
            x: Vec::new(),
            y: Vec::new(),
        };
        for r in 0..train.rows() {
            // SplitMix64 of (seed, bag, row): the same rows for the same seed.
            let mut z = seed
                ^ (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ (r as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            if train.y[r] || u < keep {
                t.x.extend_from_slice(&train.x[r * cols..(r + 1) * cols]);
                t.y.push(train.y[r]);
            }
        }
        let (mut m, log) = self::train(&t, valid, p)?;
        let scale = 1.0 / bags as f64;
        for tree in &mut m.trees {
            for n in tree.iter_mut() {
                n.value *= scale;
            }
        }
        m.base *= scale;
        merged = Some(match merged {
            None => m,
            Some(mut acc) => {
                acc.base += m.base;
                acc.trees.extend(m.trees);
                acc
            }
        });
        last_log = Some(log);
    }
    let e = merged.ok_or("no bag trained")?;
    e.validate()?;
    let mut log = last_log.ok_or("no bag trained")?;
    log.best_iteration = e.trees.len();
    Ok((e, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(n: usize, seed: u64) -> Table {
        // y = 1 when x0 > 0.7 and x1 is missing or below 0.3, with noise; x2 is noise.
        let mut s = seed;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut t = Table {
            features: vec!["x0".into(), "x1".into(), "x2".into()],
            ..Default::default()
        };
        for _ in 0..n {
            let x0 = rnd();
            let x1 = if rnd() < 0.2 { f64::NAN } else { rnd() };
            let x2 = rnd();
            let y = (x0 > 0.7 && (x1.is_nan() || x1 < 0.3)) != (rnd() < 0.02);
            t.x.extend([x0, x1, x2]);
            t.y.push(y);
        }
        t
    }

    #[test]
    fn learns_a_rule_with_missing_values_and_is_deterministic() {
        let tr = synthetic(20_000, 1);
        let va = synthetic(5_000, 2);
        let p = Params {
            trees: 60,
            max_depth: 3,
            learning_rate: 0.3,
            ..Params::default()
        };
        let (m, log) = train(&tr, Some(&va), &p).unwrap();
        let scores: Vec<f64> = (0..va.rows()).map(|r| m.score(va.row(r))).collect();
        let auc = roc_auc(&scores, &va.y).unwrap();
        assert!(auc > 0.93, "auc {auc}");
        assert!(log.best_iteration >= 1 && log.best_iteration <= 60);
        // The scorer agrees with the trainer's own margins (same comparison, same missing rule).
        let (m2, _) = train(&tr, Some(&va), &p).unwrap();
        assert_eq!(m, m2, "same data and parameters, same model");
        // Attribution names x0 and the missing x1, not the noise, as the reasons of a positive row.
        let r = m.top_reasons(&[0.9, f64::NAN, 0.5], 2);
        let mut names: Vec<&str> = r.iter().map(|c| c.feature.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x0", "x1"]);
        assert_eq!(
            r.iter().find(|c| c.feature == "x1").unwrap().value,
            None,
            "a missing value is reported as such"
        );
    }

    #[test]
    fn bagging_averages_balanced_models_deterministically() {
        let tr = synthetic(10_000, 4);
        let va = synthetic(3_000, 5);
        let p = Params {
            trees: 30,
            max_depth: 3,
            learning_rate: 0.3,
            ..Params::default()
        };
        let (m, _) = train_bagged(&tr, Some(&va), &p, 3, 2.0, 9).unwrap();
        let (m2, _) = train_bagged(&tr, Some(&va), &p, 3, 2.0, 9).unwrap();
        assert_eq!(m, m2);
        let scores: Vec<f64> = (0..va.rows()).map(|r| m.score(va.row(r))).collect();
        assert!(roc_auc(&scores, &va.y).unwrap() > 0.9);
        // Its margin is the mean of the bags' margins: base and leaves scaled by 1/3.
        let (bias, c) = m.attribute(va.row(0));
        assert!((bias + c.iter().sum::<f64>() - m.margin(va.row(0))).abs() < 1e-9);
    }

    #[test]
    fn refuses_one_class_and_bad_shapes() {
        let mut t = synthetic(100, 3);
        t.y.iter_mut().for_each(|y| *y = false);
        assert!(train(&t, None, &Params::default()).is_err());
        let mut t = synthetic(100, 3);
        t.x.pop();
        assert!(train(&t, None, &Params::default()).is_err());
    }
}
