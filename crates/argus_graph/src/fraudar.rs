//! Greedy dense-block peeling (FRAUDAR, Hooi et al., KDD 2016): start from the whole bipartite graph,
//! repeatedly remove the row or column whose removal loses the least edge weight, and keep the prefix
//! of removals at which the average weight per node, `f(S) / |S|`, was highest. With column weights
//! `1 / log(degree + 5)` (or `1 / sqrt(degree + 5)`), edges to popular columns count less, so fraudsters
//! cannot hide a dense block by adding camouflage edges to popular items. The algorithm keeps the
//! original code's order of operations and ties (a min-tree taking the lowest index; a row before a
//! column on equal loss), so that on the same input it finds the same block.
//!
//! Cost: O(E log N) for one block.

use crate::bipartite::Bipartite;
use serde::Serialize;

/// How an edge to column `j` is weighted, from the column's degree `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Every edge weighs 1: plain average degree.
    Plain,
    /// `1 / ln(d + 5)`: FRAUDAR's camouflage-resistant weighting.
    Log,
    /// `1 / sqrt(d + 5)`.
    Sqrt,
}

impl Weighting {
    pub fn weight(self, degree: usize) -> f64 {
        match self {
            Weighting::Plain => 1.0,
            Weighting::Log => 1.0 / (degree as f64 + 5.0).ln(),
            Weighting::Sqrt => 1.0 / (degree as f64 + 5.0).sqrt(),
        }
    }
}

/// A detected block: its rows and columns (sorted) and its density (weight per node).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Block {
    pub rows: Vec<u32>,
    pub cols: Vec<u32>,
    pub density: f64,
}

/// A complete binary tree over the leaves holding each node's current loss; the minimum is found by
/// walking down taking the left child on ties (the lowest index), as the original MinTree does.
struct MinTree {
    height: u32,
    branches: usize,
    nodes: Vec<f64>,
}

impl MinTree {
    fn new(values: &[f64]) -> MinTree {
        let height = if values.len() <= 1 {
            0
        } else {
            usize::BITS - (values.len() - 1).leading_zeros()
        };
        let leaves = 1usize << height;
        let branches = leaves - 1;
        let mut nodes = vec![f64::INFINITY; branches + leaves];
        nodes[branches..branches + values.len()].copy_from_slice(values);
        for i in (0..branches).rev() {
            nodes[i] = nodes[2 * i + 1].min(nodes[2 * i + 2]);
        }
        MinTree {
            height,
            branches,
            nodes,
        }
    }

    fn min(&self) -> (usize, f64) {
        let mut cur = 0;
        for _ in 0..self.height {
            cur = if self.nodes[2 * cur + 1] <= self.nodes[2 * cur + 2] {
                2 * cur + 1
            } else {
                2 * cur + 2
            };
        }
        (cur - self.branches, self.nodes[cur])
    }

    fn add(&mut self, idx: usize, delta: f64) {
        let cur = self.branches + idx;
        self.nodes[cur] += delta;
        self.settle(cur);
    }

    fn set(&mut self, idx: usize, v: f64) {
        let cur = self.branches + idx;
        self.nodes[cur] = v;
        self.settle(cur);
    }

    fn settle(&mut self, mut cur: usize) {
        for _ in 0..self.height {
            cur = (cur - 1) / 2;
            let next = self.nodes[2 * cur + 1].min(self.nodes[2 * cur + 2]);
            if self.nodes[cur] == next {
                break;
            }
            self.nodes[cur] = next;
        }
    }
}

/// The densest block by greedy peeling.
pub fn peel(g: &Bipartite, w: Weighting) -> Block {
    let col_w: Vec<f64> = g.col_adj.iter().map(|rs| w.weight(rs.len())).collect();
    // Losses: a row's is the sum of its edges' weights (in column order), a column's the sum of its
    // weight over its rows.
    let row_loss: Vec<f64> = g
        .row_adj
        .iter()
        .enumerate()
        .map(|(r, cs)| {
            cs.iter()
                .enumerate()
                .fold(0.0, |a, (k, &c)| a + g.row_m(r, k) * col_w[c as usize])
        })
        .collect();
    let col_loss: Vec<f64> = g
        .col_adj
        .iter()
        .enumerate()
        .map(|(c, rs)| (0..rs.len()).fold(0.0, |a, k| a + g.col_m(c, k) * col_w[c]))
        .collect();
    let weighted = !g.row_mult.is_empty();
    let (row_moff, row_m) = if weighted {
        csr_f(&g.row_mult)
    } else {
        (Vec::new(), Vec::new())
    };
    let (col_moff, col_m) = if weighted {
        csr_f(&g.col_mult)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut score: f64 = row_loss.iter().sum();
    let (mut n_rows, mut n_cols) = (g.rows, g.cols);
    let mut best = (score / (n_rows + n_cols).max(1) as f64, 0usize);
    let mut rt = MinTree::new(&row_loss);
    let mut ct = MinTree::new(&col_loss);
    // Flat adjacency (CSR) for the hot loop, and which nodes are gone: a removed node's loss is
    // infinite already, so the updates the original makes to it change nothing and are skipped.
    let (row_off, row_idx) = csr(&g.row_adj);
    let (col_off, col_idx) = csr(&g.col_adj);
    let mut row_gone = vec![false; g.rows];
    let mut col_gone = vec![false; g.cols];
    let mut order: Vec<(bool, u32)> = Vec::with_capacity(g.rows + g.cols);
    while n_rows > 0 && n_cols > 0 {
        let (r, rd) = rt.min();
        let (c, cd) = ct.min();
        if rd <= cd {
            score -= rd;
            for (k, &j) in row_idx[row_off[r]..row_off[r + 1]].iter().enumerate() {
                if !col_gone[j as usize] {
                    let m = if weighted {
                        row_m[row_moff[r] + k]
                    } else {
                        1.0
                    };
                    ct.add(j as usize, -(m * col_w[j as usize]));
                }
            }
            rt.set(r, f64::INFINITY);
            row_gone[r] = true;
            n_rows -= 1;
            order.push((false, r as u32));
        } else {
            score -= cd;
            let w = -col_w[c];
            for (k, &i) in col_idx[col_off[c]..col_off[c + 1]].iter().enumerate() {
                if !row_gone[i as usize] {
                    let m = if weighted {
                        col_m[col_moff[c] + k]
                    } else {
                        1.0
                    };
                    rt.add(i as usize, m * w);
                }
            }
            ct.set(c, f64::INFINITY);
            col_gone[c] = true;
            n_cols -= 1;
            order.push((true, c as u32));
        }
        let avg = score / (n_rows + n_cols) as f64;
        if avg > best.0 {
            best = (avg, order.len());
        }
    }
    let mut in_rows = vec![true; g.rows];
    let mut in_cols = vec![true; g.cols];
    for &(is_col, i) in &order[..best.1] {
        if is_col {
            in_cols[i as usize] = false;
        } else {
            in_rows[i as usize] = false;
        }
    }
    let pick = |v: &[bool]| {
        v.iter()
            .enumerate()
            .filter(|(_, &b)| b)
            .map(|(i, _)| i as u32)
            .collect::<Vec<u32>>()
    };
    Block {
        rows: pick(&in_rows),
        cols: pick(&in_cols),
        density: best.0,
    }
}

/// Offsets and flat indices of adjacency lists.
fn csr(adj: &[Vec<u32>]) -> (Vec<usize>, Vec<u32>) {
    let mut off = Vec::with_capacity(adj.len() + 1);
    let mut idx = Vec::with_capacity(adj.iter().map(Vec::len).sum());
    off.push(0);
    for a in adj {
        idx.extend_from_slice(a);
        off.push(idx.len());
    }
    (off, idx)
}

/// Offsets and flat values of per-node lists of multiplicities.
fn csr_f(adj: &[Vec<f64>]) -> (Vec<usize>, Vec<f64>) {
    let mut off = Vec::with_capacity(adj.len() + 1);
    let mut v = Vec::with_capacity(adj.iter().map(Vec::len).sum());
    off.push(0);
    for a in adj {
        v.extend_from_slice(a);
        off.push(v.len());
    }
    (off, v)
}

/// `k` blocks: after each, the block's edges are removed and the peel runs again.
pub fn peel_many(g: &Bipartite, w: Weighting, k: usize) -> Vec<Block> {
    let mut cur = g.clone();
    let mut out = Vec::new();
    for _ in 0..k {
        if cur.edges() == 0 {
            break;
        }
        let b = peel(&cur, w);
        cur = cur.without_block(&b.rows, &b.cols);
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10 × 10 clique hidden among sparse random edges is the block found.
    #[test]
    fn finds_an_injected_clique() {
        let mut edges = Vec::new();
        let mut s = 7u64;
        let mut rnd = |n: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) % n
        };
        for _ in 0..3000 {
            edges.push((rnd(500) as u32 + 10, rnd(400) as u32 + 10));
        }
        for r in 0..10 {
            for c in 0..10 {
                edges.push((r, c));
            }
        }
        let g = Bipartite::from_edges(edges);
        for w in [Weighting::Plain, Weighting::Log, Weighting::Sqrt] {
            let b = peel(&g, w);
            assert_eq!(b.rows, (0..10).collect::<Vec<u32>>(), "{w:?}");
            assert_eq!(b.cols, (0..10).collect::<Vec<u32>>(), "{w:?}");
        }
        let blocks = peel_many(&g, Weighting::Log, 2);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].density < blocks[0].density);
    }

    /// Repeat orders weigh their count: a 4 × 1 pair set ordering 10 times each beats a 6 × 6
    /// community of single orders, which wins when every edge counts once.
    #[test]
    fn repeated_edges_weigh_their_count() {
        let mut edges = Vec::new();
        for r in 0..6 {
            for c in 0..6 {
                edges.push((r, c));
            }
        }
        for r in 10..14 {
            for _ in 0..10 {
                edges.push((r, 20));
            }
        }
        let plain = peel(
            &Bipartite::from_edges(edges.iter().copied()),
            Weighting::Plain,
        );
        assert_eq!(plain.rows, (0..6).collect::<Vec<u32>>());
        let g = Bipartite::from_repeated_edges(edges.iter().copied());
        let weighted = peel(&g, Weighting::Plain);
        assert_eq!(
            (weighted.rows.clone(), weighted.cols.clone()),
            ((10..14).collect::<Vec<u32>>(), vec![20])
        );
        assert!((weighted.density - 40.0 / 5.0).abs() < 1e-12);
        // Deflation keeps the other edges' multiplicities.
        let next = peel_many(&g, Weighting::Plain, 2);
        assert_eq!(next[1].rows, (0..6).collect::<Vec<u32>>());
        assert!((next[1].density - 36.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn min_tree_takes_the_lowest_index_on_ties() {
        let mut t = MinTree::new(&[3.0, 1.0, 1.0, 2.0, 5.0]);
        assert_eq!(t.min(), (1, 1.0));
        t.set(1, f64::INFINITY);
        assert_eq!(t.min(), (2, 1.0));
        t.add(3, -1.5);
        assert_eq!(t.min(), (3, 0.5));
    }
}
