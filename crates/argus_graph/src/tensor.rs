//! Dense blocks in a tensor of several modes — e.g. rater × ratee × week, buyer × seller × day — by
//! greedy peeling (M-Zoom, Shin et al., *M-Zoom: Fast Dense-Block Detection in Tensors with Quality
//! Guarantees*, ECML-PKDD 2016): repeatedly remove the slice (one value of one mode) holding the least
//! mass among the entries still in the block, and keep the block at which the arithmetic-average
//! density `mass / (Σ sizes / modes)` was highest. With time as a mode, a block is a group that was
//! dense *together in the same few periods*: lockstep, where a two-mode peel sees only a pile-up over
//! the whole history. Several blocks by deflation (a found block's entries are removed). The result is
//! within a factor `modes` of the densest block for this density.
//!
//! Ties go to the lower (mode, value); same input, same blocks.

use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A block: per mode, the values in it (sorted), its mass and density.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorBlock {
    pub modes: Vec<Vec<u32>>,
    pub mass: f64,
    pub density: f64,
}

/// Entries of an `n`-mode tensor: `coords[e * n + m]` is entry `e`'s value in mode `m`; `mass[e]` its
/// mass (count, amount). Returns up to `k` blocks.
pub fn peel_tensor(n: usize, coords: &[u32], mass: &[f64], k: usize) -> Vec<TensorBlock> {
    assert!(
        n > 0 && coords.len() == mass.len() * n,
        "coords must hold n values per entry"
    );
    let entries = mass.len();
    let dims: Vec<usize> = (0..n)
        .map(|m| {
            (0..entries)
                .map(|e| coords[e * n + m] as usize + 1)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let offset: Vec<usize> = dims
        .iter()
        .scan(0, |s, &d| {
            let o = *s;
            *s += d;
            Some(o)
        })
        .collect();
    let nodes: usize = dims.iter().sum();
    // Node → entries (CSR).
    let mut deg = vec![0usize; nodes + 1];
    for e in 0..entries {
        for m in 0..n {
            deg[offset[m] + coords[e * n + m] as usize + 1] += 1;
        }
    }
    for i in 0..nodes {
        deg[i + 1] += deg[i];
    }
    let mut fill = deg.clone();
    let mut adj = vec![0u32; entries * n];
    for e in 0..entries {
        for m in 0..n {
            let x = offset[m] + coords[e * n + m] as usize;
            adj[fill[x]] = e as u32;
            fill[x] += 1;
        }
    }
    let mut live: Vec<bool> = mass.iter().map(|&w| w > 0.0 && w.is_finite()).collect();
    let mut out = Vec::new();
    for _ in 0..k {
        let Some(b) = peel_once(n, coords, mass, &offset, &deg, &adj, &mut live) else {
            break;
        };
        out.push(b);
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
struct Key(f64, u32);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// One block from the live entries; its entries are then marked dead (deflation).
fn peel_once(
    n: usize,
    coords: &[u32],
    mass: &[f64],
    offset: &[usize],
    deg: &[usize],
    adj: &[u32],
    live: &mut [bool],
) -> Option<TensorBlock> {
    let nodes = deg.len() - 1;
    let mode_of = |x: usize| offset.iter().rposition(|&o| o <= x).unwrap_or(0);
    let mut w = vec![0.0f64; nodes];
    let mut alive = vec![false; nodes];
    let mut total = 0.0;
    for e in (0..mass.len()).filter(|&e| live[e]) {
        total += mass[e];
        for m in 0..n {
            let x = offset[m] + coords[e * n + m] as usize;
            w[x] += mass[e];
            alive[x] = true;
        }
    }
    if total <= 0.0 {
        return None;
    }
    let mut size = vec![0usize; n];
    for x in (0..nodes).filter(|&x| alive[x]) {
        size[mode_of(x)] += 1;
    }
    let density =
        |total: f64, size: &[usize]| total / (size.iter().sum::<usize>() as f64 / n as f64);
    let mut best = (density(total, &size), 0usize);
    let mut heap: BinaryHeap<Reverse<Key>> = (0..nodes)
        .filter(|&x| alive[x])
        .map(|x| Reverse(Key(w[x], x as u32)))
        .collect();
    let mut order = Vec::new();
    let mut dead_here = vec![false; mass.len()];
    while let Some(Reverse(Key(wx, x))) = heap.pop() {
        let x = x as usize;
        if !alive[x] || w[x] != wx {
            continue;
        }
        if size.iter().any(|&s| s <= 1) {
            break;
        }
        alive[x] = false;
        size[mode_of(x)] -= 1;
        order.push(x);
        for &e in &adj[deg[x]..deg[x + 1]] {
            let e = e as usize;
            if !live[e] || dead_here[e] {
                continue;
            }
            dead_here[e] = true;
            total -= mass[e];
            for m in 0..n {
                let y = offset[m] + coords[e * n + m] as usize;
                if y != x && alive[y] {
                    w[y] -= mass[e];
                    heap.push(Reverse(Key(w[y], y as u32)));
                }
            }
        }
        let d = density(total, &size);
        if d > best.0 {
            best = (d, order.len());
        }
    }
    // The block: every node not removed within the best prefix.
    let mut gone = vec![false; nodes];
    for &x in &order[..best.1] {
        gone[x] = true;
    }
    let mut modes = vec![Vec::new(); n];
    let mut in_block = vec![false; nodes];
    for e in (0..mass.len()).filter(|&e| live[e]) {
        let xs: Vec<usize> = (0..n)
            .map(|m| offset[m] + coords[e * n + m] as usize)
            .collect();
        if xs.iter().all(|&x| !gone[x]) {
            for &x in &xs {
                in_block[x] = true;
            }
        }
    }
    for x in (0..nodes).filter(|&x| in_block[x]) {
        let m = mode_of(x);
        modes[m].push((x - offset[m]) as u32);
    }
    // Deflation: the block's entries are gone for the next block.
    let mut block_mass = 0.0;
    for e in 0..mass.len() {
        if live[e] && (0..n).all(|m| in_block[offset[m] + coords[e * n + m] as usize]) {
            live[e] = false;
            block_mass += mass[e];
        }
    }
    Some(TensorBlock {
        modes,
        mass: block_mass,
        density: best.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6 × 6 group active in the same two weeks is found with its weeks, though a larger group
    /// rating each other as often over the whole year is denser in two modes.
    #[test]
    fn time_as_a_mode_finds_the_lockstep_group() {
        let mut coords = Vec::new();
        // Lockstep: raters 0..6 rate ratees 0..6 in weeks 10 and 11 (72 ratings).
        for r in 0..6 {
            for c in 0..6 {
                for wk in [10, 11] {
                    coords.extend([r, c, wk]);
                }
            }
        }
        // A slow community: raters 20..30 rate ratees 20..30 once each, spread over 50 weeks.
        let mut s = 3u64;
        for r in 20..30 {
            for c in 20..30 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                coords.extend([r, c, ((s >> 33) % 50) as u32]);
            }
        }
        let mass = vec![1.0; coords.len() / 3];
        let blocks = peel_tensor(3, &coords, &mass, 2);
        assert_eq!(blocks[0].modes[0], (0..6).collect::<Vec<u32>>());
        assert_eq!(blocks[0].modes[1], (0..6).collect::<Vec<u32>>());
        assert_eq!(blocks[0].modes[2], vec![10, 11]);
        assert!((blocks[0].mass - 72.0).abs() < 1e-12);
        assert!((blocks[0].density - 72.0 / (14.0 / 3.0)).abs() < 1e-9);
        // Deflation: the second block is elsewhere.
        assert!(blocks[1].modes[0].iter().all(|&r| r >= 20));
    }

    #[test]
    fn empty_and_degenerate_inputs() {
        assert!(peel_tensor(3, &[], &[], 3).is_empty());
        let b = peel_tensor(2, &[1, 2], &[5.0], 3);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].modes, vec![vec![1], vec![2]]);
        assert!(peel_tensor(2, &[1, 2], &[0.0], 1).is_empty());
    }
}
