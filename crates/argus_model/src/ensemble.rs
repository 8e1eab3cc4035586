//! A tree ensemble in flat arrays, scored by walking each tree, with path attribution (Saabas) for
//! reason codes. Trees trained by Argus, by XGBoost and by LightGBM all load into this one form; the
//! three differ only in how a value is compared with a threshold and how a missing value goes.

use serde::{Deserialize, Serialize};

/// How a split compares a feature value `x` with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// `x <= threshold` goes left, in double precision (Argus, LightGBM).
    LessEqual,
    /// `(x as f32) < (threshold as f32)` goes left (XGBoost compares in single precision).
    LessF32,
}

/// What a missing (NaN) value does at a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// NaN follows the node's default direction.
    Default,
    /// LightGBM `missing_type = None`: NaN is read as 0.0 and compared.
    AsZero,
    /// LightGBM `missing_type = Zero`: NaN and |x| ≤ 1e-35 follow the default direction.
    ZeroIsMissing,
}

/// One node. A leaf has `feature == LEAF`; `value` is its output. An internal node's `value` is the
/// cover-weighted mean of its leaves (the expected output below it), used by attribution only.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    pub threshold: f64,
    pub left: u32,
    pub right: u32,
    pub default_left: bool,
    pub missing: Missing,
    pub value: f64,
    /// Sum of hessians (or row count) that reached the node in training.
    pub cover: f64,
}

pub const LEAF: u32 = u32::MAX;

impl Node {
    pub fn leaf(value: f64, cover: f64) -> Node {
        Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            default_left: true,
            missing: Missing::Default,
            value,
            cover,
        }
    }
}

/// How the margin becomes the score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Probability: `1 / (1 + exp(-scale · margin))`.
    Logistic { scale: f64 },
    /// The margin itself.
    Identity,
}

/// A tree ensemble: `score = link(base + Σ tree(x))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Names of the input features, in input order.
    pub features: Vec<String>,
    pub base: f64,
    pub link: Link,
    pub compare: Compare,
    /// Each tree's nodes; node 0 is the root.
    pub trees: Vec<Vec<Node>>,
}

/// One feature's share of a score, in margin units (log-odds for a logistic model).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contribution {
    pub feature: String,
    pub value: Option<f64>,
    pub contribution: f64,
}

impl Ensemble {
    #[inline]
    fn goes_left(&self, n: &Node, x: f64) -> bool {
        let x = if x.is_nan() {
            match n.missing {
                Missing::Default => return n.default_left,
                Missing::AsZero => 0.0,
                Missing::ZeroIsMissing => return n.default_left,
            }
        } else if n.missing == Missing::ZeroIsMissing && x.abs() <= 1e-35 {
            return n.default_left;
        } else {
            x
        };
        match self.compare {
            Compare::LessEqual => x <= n.threshold,
            Compare::LessF32 => (x as f32) < (n.threshold as f32),
        }
    }

    /// The leaf index one tree sends `x` to.
    #[inline]
    fn leaf_of(&self, tree: &[Node], x: &[f64]) -> usize {
        let mut i = 0usize;
        loop {
            let n = &tree[i];
            if n.feature == LEAF {
                return i;
            }
            let v = x.get(n.feature as usize).copied().unwrap_or(f64::NAN);
            i = if self.goes_left(n, v) {
                n.left
            } else {
                n.right
            } as usize;
        }
    }

    /// The margin (raw score) of one row; missing features are NaN.
    pub fn margin(&self, x: &[f64]) -> f64 {
        let mut m = self.base;
        for t in &self.trees {
            m += t[self.leaf_of(t, x)].value;
        }
        m
    }

    pub fn link(&self, margin: f64) -> f64 {
        match self.link {
            Link::Logistic { scale } => 1.0 / (1.0 + (-scale * margin).exp()),
            Link::Identity => margin,
        }
    }

    /// The score of one row.
    pub fn score(&self, x: &[f64]) -> f64 {
        self.link(self.margin(x))
    }

    /// Path attribution (Saabas): along each tree's path, the change of expected output at each split
    /// is credited to the split's feature. The contributions and `bias` add up to the margin exactly.
    /// Returns `(bias, contribution per feature)`.
    pub fn attribute(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut contrib = vec![0.0; self.features.len()];
        let mut bias = self.base;
        for t in &self.trees {
            bias += t[0].value;
            let mut i = 0usize;
            loop {
                let n = &t[i];
                if n.feature == LEAF {
                    break;
                }
                let v = x.get(n.feature as usize).copied().unwrap_or(f64::NAN);
                let next = if self.goes_left(n, v) {
                    n.left
                } else {
                    n.right
                } as usize;
                if let Some(c) = contrib.get_mut(n.feature as usize) {
                    *c += t[next].value - n.value;
                }
                i = next;
            }
        }
        (bias, contrib)
    }

    /// The `k` features that pushed this row's score up the most (positive contributions only,
    /// largest first, ties by name).
    pub fn top_reasons(&self, x: &[f64], k: usize) -> Vec<Contribution> {
        let (_, c) = self.attribute(x);
        let mut v: Vec<Contribution> = c
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0.0)
            .map(|(i, &c)| Contribution {
                feature: self.features[i].clone(),
                value: x.get(i).copied().filter(|v| !v.is_nan()),
                contribution: c,
            })
            .collect();
        v.sort_by(|a, b| {
            b.contribution
                .total_cmp(&a.contribution)
                .then_with(|| a.feature.cmp(&b.feature))
        });
        v.truncate(k);
        v
    }

    /// Fills every internal node's `value` with the cover-weighted mean of its children, bottom-up
    /// (loaders call this; a node with zero cover takes the plain mean).
    pub fn fill_expected_values(&mut self) {
        for t in &mut self.trees {
            fn visit(t: &mut [Node], i: usize, depth: usize) -> (f64, f64) {
                if t[i].feature == LEAF || depth > 256 {
                    return (t[i].value, t[i].cover);
                }
                let (l, r) = (t[i].left as usize, t[i].right as usize);
                let (lv, lc) = visit(t, l, depth + 1);
                let (rv, rc) = visit(t, r, depth + 1);
                let c = lc + rc;
                let v = if c > 0.0 {
                    (lv * lc + rv * rc) / c
                } else {
                    (lv + rv) / 2.0
                };
                t[i].value = v;
                if t[i].cover <= 0.0 {
                    t[i].cover = c;
                }
                (v, t[i].cover)
            }
            if !t.is_empty() {
                visit(t, 0, 0);
            }
        }
    }

    /// Checks the structure: children in range, no cycles (each child index greater than its
    /// parent's, or at least visited once), features in range. Loaders call it before use.
    pub fn validate(&self) -> Result<(), String> {
        for (ti, t) in self.trees.iter().enumerate() {
            if t.is_empty() {
                return Err(format!("tree {ti} has no nodes"));
            }
            let mut seen = vec![false; t.len()];
            let mut stack = vec![0usize];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[i], true) {
                    return Err(format!("tree {ti}: node {i} is reached twice"));
                }
                let n = &t[i];
                if n.feature == LEAF {
                    if !n.value.is_finite() {
                        return Err(format!("tree {ti}: leaf {i} is not finite"));
                    }
                    continue;
                }
                if n.feature as usize >= self.features.len() {
                    return Err(format!(
                        "tree {ti}: node {i} splits on feature {} of {}",
                        n.feature,
                        self.features.len()
                    ));
                }
                for c in [n.left, n.right] {
                    if c as usize >= t.len() {
                        return Err(format!(
                            "tree {ti}: node {i} points to node {c} of {}",
                            t.len()
                        ));
                    }
                    stack.push(c as usize);
                }
            }
        }
        if !self.base.is_finite() {
            return Err("base score is not finite".into());
        }
        Ok(())
    }

    /// Deepest root-to-leaf path.
    pub fn max_depth(&self) -> usize {
        fn d(t: &[Node], i: usize) -> usize {
            if t[i].feature == LEAF {
                0
            } else {
                1 + d(t, t[i].left as usize).max(d(t, t[i].right as usize))
            }
        }
        self.trees.iter().map(|t| d(t, 0)).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x0 <= 1 ? (x1 <= 5 ? 1 : 2) : 3, covers 10 / (4, 2) / 4.
    fn tiny() -> Ensemble {
        let split = |f, t, l, r, c| Node {
            feature: f,
            threshold: t,
            left: l,
            right: r,
            default_left: true,
            missing: Missing::Default,
            value: 0.0,
            cover: c,
        };
        let mut e = Ensemble {
            features: vec!["a".into(), "b".into()],
            base: 0.5,
            link: Link::Identity,
            compare: Compare::LessEqual,
            trees: vec![vec![
                split(0, 1.0, 1, 2, 10.0),
                split(1, 5.0, 3, 4, 6.0),
                Node::leaf(3.0, 4.0),
                Node::leaf(1.0, 4.0),
                Node::leaf(2.0, 2.0),
            ]],
        };
        e.fill_expected_values();
        e.validate().unwrap();
        e
    }

    #[test]
    fn scores_and_attributions_add_up() {
        let e = tiny();
        assert_eq!(e.margin(&[0.0, 0.0]), 1.5);
        assert_eq!(e.margin(&[0.0, 9.0]), 2.5);
        assert_eq!(e.margin(&[2.0, 0.0]), 3.5);
        assert_eq!(
            e.margin(&[f64::NAN, 9.0]),
            2.5,
            "missing goes the default way"
        );
        for x in [[0.0, 0.0], [0.0, 9.0], [2.0, 0.0], [f64::NAN, f64::NAN]] {
            let (bias, c) = e.attribute(&x);
            assert!((bias + c.iter().sum::<f64>() - e.margin(&x)).abs() < 1e-12);
        }
        // Root expected value: (4·1 + 2·2 + 4·3) / 10 = 2.
        assert!((e.trees[0][0].value - 2.0).abs() < 1e-12);
        let r = e.top_reasons(&[2.0, 0.0], 3);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].feature, "a");
        assert!((r[0].contribution - 1.0).abs() < 1e-12);
    }

    #[test]
    fn broken_structures_are_refused() {
        let mut e = tiny();
        e.trees[0][1].left = 0;
        assert!(e.validate().is_err());
        let mut e = tiny();
        e.trees[0][0].feature = 7;
        assert!(e.validate().is_err());
        let mut e = tiny();
        e.trees[0][1].right = 99;
        assert!(e.validate().is_err());
    }
}
