//! Exact incremental peeling: the greedy peeling order of a weighted graph kept up to date under edge
//! insertions, as in Spade (Jiang et al., *Spade: A Real-Time Fraud Detection Framework on Evolving
//! Graphs*, VLDB 2023), so that the densest block is known after every insertion without re-peeling.
//!
//! **The order.** The static peel removes, at each step, the node of least weight — the sum of its
//! edges to the nodes still present — ties broken by the lower id. `order[j]` is the `j`-th node
//! removed and `delta[j]` its weight when it was removed; the suffix starting at `j` is the set
//! `S_j` of the peel, whose density is `(F - Σ_{i<j} delta[i]) / (n - j)` for total weight `F`.
//! Nodes without edges are left out (the peel would remove them first at weight 0).
//!
//! **An insertion** of `(u, v)` with weight `c > 0`, `u` before `v`: every step before `u` still
//! removes the same node (only `u`'s and `v`'s weights rose). From `u` on, the walk re-peels with the
//! old order as a guide. It keeps `T`, the nodes whose weight now differs from their old `delta`
//! because a node removed before them in the old order is still present (or because a new edge
//! touches them). A node of the old order with no edge into `T` and no new edge keeps its old weight,
//! and the old order proves it is the lightest of the old suffix; so at each step the lightest node
//! of the whole remaining set is either it or the lightest of `T` (a binary heap; weights in `T` only
//! fall). When `T` is empty past the last touched position, the rest of the old order is still
//! right and the walk stops. Usually it touches a handful of nodes: that is the speed.
//!
//! **Exactness.** With integer weights (counts; below 2^53) every sum is exact, and the maintained
//! order is identical to a static re-peel's, node for node (tested, and checked on wiki-Vote by
//! `examples/incremental.rs`). With fractional weights the two can differ by rounding on near-ties.
//!
//! **Batches.** `insert_batch` adds many edges and makes one walk from the first touched position:
//! a burst of edges costs one reorder, not one each, and the caller decides how often to pay it (a
//! decision reads the last block found and never waits on a reorder).
//!
//! Insertions only: deleting edges (expiry) is handled by rebuilding from the live edges
//! (`IncrementalPeel::from_edges`), which is a static peel.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// A heap entry ordered so that the `BinaryHeap` (a max-heap) pops the least (weight, id).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry(f64, u32);

impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

/// `(a, x) < (b, y)` in peeling priority.
fn before(a: f64, x: u32, b: f64, y: u32) -> bool {
    a < b || (a == b && x < y)
}

const NONE: i64 = i64::MIN;

/// The peeling order of an undirected weighted graph, maintained under insertions.
#[derive(Clone, Debug, Default)]
pub struct IncrementalPeel {
    adj: Vec<Vec<(u32, f64)>>,
    /// The order; logical position `j` is `order[j]`.
    order: VecDeque<u32>,
    /// Weight of each node when it is removed, by logical position.
    delta: VecDeque<f64>,
    /// `pos[x] - head` is `x`'s logical position; `NONE` for a node without edges.
    pos: Vec<i64>,
    head: i64,
    total: f64,
    edges: usize,
    // Scratch, kept between calls to avoid allocation.
    in_t: Vec<bool>,
    tw: Vec<f64>,
    extra: Vec<f64>,
    heap: BinaryHeap<Entry>,
    seg: Vec<(u32, f64)>,
}

/// The densest suffix of the order: its nodes (sorted) and density (weight per node).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSet {
    pub nodes: Vec<u32>,
    pub density: f64,
}

/// What one insertion (or batch) cost: how many positions of the order were rewritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reorder {
    pub touched: usize,
}

impl IncrementalPeel {
    pub fn new() -> IncrementalPeel {
        IncrementalPeel::default()
    }

    /// A static peel of `edges` `(a, b, weight)`; later insertions keep it up to date.
    pub fn from_edges(edges: &[(u32, u32, f64)]) -> IncrementalPeel {
        let mut p = IncrementalPeel::new();
        for &(a, b, w) in edges {
            p.add_adjacency(a, b, w);
        }
        let (order, delta) = static_order(&p.adj);
        for (j, &x) in order.iter().enumerate() {
            p.pos[x as usize] = j as i64;
        }
        p.order = order.into();
        p.delta = delta.into();
        p
    }

    pub fn nodes(&self) -> usize {
        self.order.len()
    }

    pub fn edges(&self) -> usize {
        self.edges
    }

    /// Total edge weight.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// The peeling order and each node's weight when removed.
    pub fn order(&self) -> (Vec<u32>, Vec<f64>) {
        (
            self.order.iter().copied().collect(),
            self.delta.iter().copied().collect(),
        )
    }

    /// Memory held by the adjacency lists and the order, in bytes (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.adj
            .iter()
            .map(|a| a.capacity() * 16 + 24)
            .sum::<usize>()
            + self.order.capacity() * 12
            + self.pos.capacity() * 8
            + self.tw.capacity() * 17
    }

    fn ensure(&mut self, x: u32) {
        let n = x as usize + 1;
        if self.adj.len() < n {
            self.adj.resize_with(n, Vec::new);
            self.pos.resize(n, NONE);
            self.in_t.resize(n, false);
            self.tw.resize(n, 0.0);
            self.extra.resize(n, 0.0);
        }
    }

    fn add_adjacency(&mut self, a: u32, b: u32, w: f64) {
        self.ensure(a.max(b));
        self.adj[a as usize].push((b, w));
        self.adj[b as usize].push((a, w));
        self.total += w;
        self.edges += 1;
    }

    fn position(&self, x: u32) -> usize {
        (self.pos[x as usize] - self.head) as usize
    }

    /// A node seen for the first time enters at the front: with no edges its weight is 0, the least.
    fn enter(&mut self, x: u32) {
        if self.pos[x as usize] == NONE {
            self.head -= 1;
            self.pos[x as usize] = self.head;
            self.order.push_front(x);
            self.delta.push_front(0.0);
        }
    }

    /// Insert one edge (or add weight to an existing pair). Self-loops and weights that are not
    /// positive and finite are ignored.
    pub fn insert(&mut self, a: u32, b: u32, w: f64) -> Reorder {
        self.insert_batch(&[(a, b, w)])
    }

    /// Insert many edges with one walk over the order.
    pub fn insert_batch(&mut self, edges: &[(u32, u32, f64)]) -> Reorder {
        let mut first = usize::MAX;
        let mut last = 0usize;
        let mut any = false;
        for &(a, b, w) in edges {
            if a == b || !(w > 0.0 && w.is_finite()) {
                continue;
            }
            self.ensure(a.max(b));
            self.enter(a);
            self.enter(b);
            any = true;
        }
        if !any {
            return Reorder::default();
        }
        // Positions are final only after every new node has entered.
        for &(a, b, w) in edges {
            if a == b || !(w > 0.0 && w.is_finite()) {
                continue;
            }
            self.add_adjacency(a, b, w);
            let (pa, pb) = (self.position(a), self.position(b));
            let u = if pa < pb { a } else { b };
            // The earlier endpoint is removed while the later one is present: its weight rises.
            self.extra[u as usize] += w;
            first = first.min(pa.min(pb));
            last = last.max(pa.min(pb));
        }
        let touched = self.walk(first, last);
        Reorder { touched }
    }

    /// Re-peel from logical position `first`, guided by the old order; returns how many positions
    /// were rewritten.
    fn walk(&mut self, first: usize, last: usize) -> usize {
        let n = self.order.len();
        let mut k = first;
        self.seg.clear();
        self.heap.clear();
        let mut t_len = 0usize;
        // The position whose node was found unchanged: popping nodes out of `T` cannot give it an
        // edge into `T`, so it is not scanned again until the walk moves past it.
        let mut unchanged_at = usize::MAX;
        loop {
            // Take in the old order's nodes whose weight changed.
            while k < n && k != unchanged_at {
                let x = self.order[k];
                let mut e = self.extra[x as usize];
                for &(y, w) in &self.adj[x as usize] {
                    if self.in_t[y as usize] {
                        e += w;
                    }
                }
                if e == 0.0 {
                    unchanged_at = k;
                    break;
                }
                self.extra[x as usize] = 0.0;
                let wx = self.delta[k] + e;
                self.in_t[x as usize] = true;
                self.tw[x as usize] = wx;
                self.heap.push(Entry(wx, x));
                t_len += 1;
                k += 1;
            }
            // Drop stale heap entries.
            while let Some(&Entry(w, x)) = self.heap.peek() {
                if self.in_t[x as usize] && self.tw[x as usize] == w {
                    break;
                }
                self.heap.pop();
            }
            if t_len == 0 && k > last {
                break;
            }
            let take_old = match (k < n, self.heap.peek()) {
                (true, Some(&Entry(w, x))) => before(self.delta[k], self.order[k], w, x),
                (true, None) => true,
                (false, Some(_)) => false,
                (false, None) => break,
            };
            if take_old {
                let x = self.order[k];
                self.seg.push((x, self.delta[k]));
                k += 1;
            } else {
                let Some(Entry(w, x)) = self.heap.pop() else {
                    break;
                };
                self.in_t[x as usize] = false;
                t_len -= 1;
                self.seg.push((x, w));
                for &(y, wy) in &self.adj[x as usize] {
                    if self.in_t[y as usize] {
                        let nw = self.tw[y as usize] - wy;
                        self.tw[y as usize] = nw;
                        self.heap.push(Entry(nw, y));
                    }
                }
            }
        }
        debug_assert_eq!(self.seg.len(), k - first);
        for (j, &(x, d)) in self.seg.iter().enumerate() {
            self.order[first + j] = x;
            self.delta[first + j] = d;
            self.pos[x as usize] = self.head + (first + j) as i64;
        }
        self.seg.len()
    }

    /// The densest suffix of the order (the block the static peel would report), found by one scan.
    /// Of equal densities the first (largest) is kept, as the static peel does.
    pub fn densest(&self) -> DenseSet {
        let n = self.order.len();
        if n == 0 {
            return DenseSet {
                nodes: Vec::new(),
                density: 0.0,
            };
        }
        let mut rest = self.total;
        let mut best = (rest / n as f64, 0usize);
        for j in 0..n - 1 {
            rest -= self.delta[j];
            let d = rest / (n - j - 1) as f64;
            if d > best.0 {
                best = (d, j + 1);
            }
        }
        let mut nodes: Vec<u32> = self.order.iter().skip(best.1).copied().collect();
        nodes.sort_unstable();
        DenseSet {
            nodes,
            density: best.0,
        }
    }
}

/// The static greedy peel of an undirected weighted graph given as adjacency lists: the order in
/// which nodes are removed (least weight first, ties to the lower id) and each one's weight when
/// removed. Nodes without edges are left out.
pub fn static_order(adj: &[Vec<(u32, f64)>]) -> (Vec<u32>, Vec<f64>) {
    let mut w: Vec<f64> = adj
        .iter()
        .map(|a| a.iter().map(|&(_, x)| x).sum())
        .collect();
    let mut gone: Vec<bool> = adj.iter().map(Vec::is_empty).collect();
    let mut heap: BinaryHeap<Entry> = (0..adj.len())
        .filter(|&x| !gone[x])
        .map(|x| Entry(w[x], x as u32))
        .collect();
    let mut order = Vec::new();
    let mut delta = Vec::new();
    while let Some(Entry(wx, x)) = heap.pop() {
        if gone[x as usize] || w[x as usize] != wx {
            continue;
        }
        gone[x as usize] = true;
        order.push(x);
        delta.push(wx);
        for &(y, wy) in &adj[x as usize] {
            if !gone[y as usize] {
                w[y as usize] -= wy;
                heap.push(Entry(w[y as usize], y));
            }
        }
    }
    (order, delta)
}

impl IncrementalPeel {
    /// The static peel of the current graph, for checking the maintained order.
    pub fn static_reorder(&self) -> (Vec<u32>, Vec<f64>) {
        static_order(&self.adj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn random_edges(seed: u64, nodes: u64, m: usize, max_w: u64) -> Vec<(u32, u32, f64)> {
        let mut r = Lcg(seed);
        (0..m)
            .map(|_| {
                (
                    r.next(nodes) as u32,
                    r.next(nodes) as u32,
                    (1 + r.next(max_w)) as f64,
                )
            })
            .filter(|e| e.0 != e.1)
            .collect()
    }

    /// One edge at a time, the maintained order equals a static re-peel after every insertion, on
    /// graphs with many ties (unit weights) and with integer weights.
    #[test]
    fn one_at_a_time_equals_static_repeel() {
        for (seed, nodes, max_w) in [(1u64, 30u64, 1u64), (2, 60, 3), (3, 15, 1), (4, 200, 5)] {
            let edges = random_edges(seed, nodes, 400, max_w);
            let (init, stream) = edges.split_at(edges.len() / 2);
            let mut p = IncrementalPeel::from_edges(init);
            assert_eq!(p.order(), p.static_reorder());
            for &(a, b, w) in stream {
                p.insert(a, b, w);
                assert_eq!(p.order(), p.static_reorder(), "seed {seed} after ({a},{b})");
            }
        }
    }

    /// Batches, new nodes and repeated pairs, starting from nothing.
    #[test]
    fn batches_and_new_nodes_equal_static_repeel() {
        let edges = random_edges(9, 80, 1200, 2);
        let mut p = IncrementalPeel::new();
        for chunk in edges.chunks(37) {
            p.insert_batch(chunk);
            assert_eq!(p.order(), p.static_reorder());
        }
        assert_eq!(p.edges(), edges.len());
    }

    /// A clique growing among sparse edges becomes the densest set, and its density is exact.
    #[test]
    fn densest_set_finds_a_growing_clique() {
        let mut p = IncrementalPeel::from_edges(&random_edges(5, 300, 600, 1));
        let ring: Vec<u32> = (1000..1008).collect();
        for (i, &a) in ring.iter().enumerate() {
            for &b in &ring[i + 1..] {
                p.insert(a, b, 1.0);
            }
        }
        let d = p.densest();
        assert_eq!(d.nodes, ring);
        assert!((d.density - 28.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn ignores_loops_and_bad_weights() {
        let mut p = IncrementalPeel::new();
        assert_eq!(p.insert(1, 1, 1.0).touched, 0);
        assert_eq!(p.insert(1, 2, f64::NAN).touched, 0);
        assert_eq!(p.insert(1, 2, -1.0).touched, 0);
        assert_eq!(p.nodes(), 0);
        p.insert(1, 2, 1.0);
        assert_eq!(
            p.densest(),
            DenseSet {
                nodes: vec![1, 2],
                density: 0.5
            }
        );
    }
}
