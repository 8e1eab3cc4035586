//! Semi-supervised signals from the labels that arrive: who an account deals with, and what is known
//! of them.
//!
//! An online, signed, weighted account graph (an edge per interaction: a rating, a transfer, an
//! order between two accounts, with an optional signed attribute such as the rating) and the confirmed
//! labels (fraud or legitimate) as they arrive. For an account it keeps, with bounded work per event:
//!
//! - the **share of confirmed-fraud neighbours** at one hop and at two hops, each neighbour weighted by
//!   its edge's recency (a half-life) and the magnitude of its attribute;
//! - the **distrust of known-legitimate neighbours**: the weight of negative edges from accounts
//!   confirmed legitimate, as a share of all the incoming weight (in a trust network, a known-good
//!   trader rating you down);
//! - a **propagated label score** in [-1, 1] (1: fraud): confirmed accounts are clamped to ±1; any
//!   other account's score is the weighted mean of its neighbours' scores (negated across a negative
//!   edge: the enemy of a fraudster is likely honest), shrunk toward 0 when the evidence is thin. It
//!   is updated by local Gauss–Seidel steps: an edge recomputes both ends (`2 × max_neighbors` edge
//!   reads), a label recomputes the account's neighbours and theirs (up to `m + m²` accounts of `m`
//!   edges each, `m` = `max_neighbors`: 33,792 edge reads at 32); reading an account's signals walks
//!   its neighbours' edges for the two-hop share (`m²`).
//!
//! Each account keeps its `max_neighbors` most recent edges (both directions): memory and work are
//! bounded whatever the degree. Everything is a function of the events and labels in their order:
//! replaying them gives the same values, and a label known only later never changes what was computed
//! before it arrived (point-in-time correct).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PropagationConfig {
    /// An edge's weight halves every `half_life_ms` of event time.
    pub half_life_ms: i64,
    /// Most recent edges kept per account.
    pub max_neighbors: usize,
    /// The attribute's sign means trust (+) or distrust (−); otherwise only its magnitude weighs.
    pub signed: bool,
    /// The attribute's scale: an edge weighs `recency × (1 + |attribute| / scale)`.
    pub scale: f64,
}

impl Default for PropagationConfig {
    fn default() -> Self {
        PropagationConfig {
            half_life_ms: 90 * 86_400_000,
            max_neighbors: 32,
            signed: false,
            scale: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Edge {
    other: u32,
    attr: f32,
    time: i64,
    incoming: bool,
}

/// What an account's neighbourhood says of it at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Signals {
    /// Weighted share of confirmed-fraud neighbours (trust edges; every edge when unsigned).
    pub fraud_share: f64,
    /// The same over the neighbours' neighbours (the account itself left out).
    pub fraud_share_2hop: f64,
    /// Weighted share of the incoming weight that is distrust from confirmed-legitimate accounts.
    pub legit_distrust: f64,
    /// The propagated score in [-1, 1].
    pub score: f64,
    /// Neighbours with a label (the evidence behind the shares).
    pub labelled_neighbors: u32,
    /// Interactions ever, incoming and outgoing (not only the kept ones).
    pub degree_in: u32,
    pub degree_out: u32,
}

/// The graph and its labels (accounts are dense ids from 0).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Propagation {
    cfg: PropagationConfig,
    adj: Vec<VecDeque<Edge>>,
    /// 1: fraud, −1: legitimate, 0: unknown.
    label: Vec<i8>,
    score: Vec<f32>,
    deg_in: Vec<u32>,
    deg_out: Vec<u32>,
}

impl Propagation {
    pub fn new(cfg: PropagationConfig) -> Propagation {
        Propagation {
            cfg: PropagationConfig {
                max_neighbors: cfg.max_neighbors.max(1),
                half_life_ms: cfg.half_life_ms.max(1),
                scale: if cfg.scale > 0.0 { cfg.scale } else { 1.0 },
                ..cfg
            },
            ..Default::default()
        }
    }

    pub fn accounts(&self) -> usize {
        self.adj.len()
    }

    fn grow(&mut self, a: u32) {
        let n = a as usize + 1;
        if self.adj.len() < n {
            self.adj.resize(n, VecDeque::new());
            self.label.resize(n, 0);
            self.score.resize(n, 0.0);
            self.deg_in.resize(n, 0);
            self.deg_out.resize(n, 0);
        }
    }

    fn weight(&self, e: &Edge, now: i64) -> f64 {
        let age = (now - e.time).max(0) as f64 / self.cfg.half_life_ms as f64;
        0.5f64.powf(age) * (1.0 + f64::from(e.attr).abs() / self.cfg.scale)
    }

    fn trust(&self, e: &Edge) -> bool {
        !self.cfg.signed || e.attr >= 0.0
    }

    /// An interaction `from` → `to` at `time` with attribute `attr` (0 when there is none).
    pub fn add_edge(&mut self, from: u32, to: u32, attr: f64, time: i64) {
        if from == to {
            return;
        }
        self.grow(from.max(to));
        let cap = self.cfg.max_neighbors;
        // Finite in f32 too (a huge f64 would become infinity, and the scores NaN).
        let attr = if attr.is_finite() {
            attr.clamp(-1e30, 1e30) as f32
        } else {
            0.0
        };
        for (a, b, incoming) in [(from, to, false), (to, from, true)] {
            let q = &mut self.adj[a as usize];
            if q.len() == cap {
                q.pop_front();
            }
            q.push_back(Edge {
                other: b,
                attr,
                time,
                incoming,
            });
        }
        self.deg_out[from as usize] += 1;
        self.deg_in[to as usize] += 1;
        self.update(from, time);
        self.update(to, time);
    }

    /// A confirmed label arrives: `fraud` or legitimate.
    pub fn set_label(&mut self, a: u32, fraud: bool, time: i64) {
        self.grow(a);
        self.label[a as usize] = if fraud { 1 } else { -1 };
        self.score[a as usize] = if fraud { 1.0 } else { -1.0 };
        // Two rings of local steps: the neighbours, then theirs (each account once).
        let first = self.neighbors(a);
        for &n in &first {
            self.update(n, time);
        }
        let mut second: Vec<u32> = first.iter().flat_map(|&n| self.neighbors(n)).collect();
        second.sort_unstable();
        second.dedup();
        for m in second {
            if m != a && first.binary_search(&m).is_err() {
                self.update(m, time);
            }
        }
    }

    /// The distinct accounts among `a`'s kept edges, in increasing order.
    pub fn neighbors(&self, a: u32) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .adj
            .get(a as usize)
            .map(|q| q.iter().map(|e| e.other).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The label of `a`, if confirmed: `Some(true)` for fraud.
    pub fn label(&self, a: u32) -> Option<bool> {
        match self.label.get(a as usize) {
            Some(1) => Some(true),
            Some(-1) => Some(false),
            _ => None,
        }
    }

    /// One local step: `a`'s score from its neighbours' (confirmed accounts stay clamped).
    fn update(&mut self, a: u32, now: i64) {
        if self.label[a as usize] != 0 {
            return;
        }
        let (mut num, mut den) = (0.0, 0.0);
        for e in &self.adj[a as usize] {
            let w = self.weight(e, now);
            let s = f64::from(self.score[e.other as usize]);
            num += w * if self.trust(e) { s } else { -s };
            den += w;
        }
        // Shrunk toward 0 (no opinion) by one unit of weight: thin evidence gives a weak score.
        let s = num / (den + 1.0);
        if s.is_finite() {
            self.score[a as usize] = s as f32;
        }
    }

    /// (fraud weight, all weight, labelled neighbours) over `a`'s trust edges.
    fn share(&self, a: u32, now: i64, skip: Option<u32>) -> (f64, f64, u32) {
        let (mut fraud, mut all, mut labelled) = (0.0, 0.0, 0);
        for e in &self.adj[a as usize] {
            if Some(e.other) == skip || !self.trust(e) {
                continue;
            }
            let w = self.weight(e, now);
            all += w;
            match self.label[e.other as usize] {
                1 => {
                    fraud += w;
                    labelled += 1;
                }
                -1 => labelled += 1,
                _ => {}
            }
        }
        (fraud, all, labelled)
    }

    /// What is known of `a` at `now` (an unknown account: all zero).
    pub fn signals(&self, a: u32, now: i64) -> Signals {
        if a as usize >= self.adj.len() {
            return Signals::default();
        }
        let (fraud, all, labelled) = self.share(a, now, None);
        let (mut f2, mut a2) = (0.0, 0.0);
        for e in &self.adj[a as usize] {
            if !self.trust(e) {
                continue;
            }
            let w = self.weight(e, now);
            let (f, t, _) = self.share(e.other, now, Some(a));
            if t > 0.0 {
                f2 += w * f / t;
                a2 += w;
            }
        }
        let (mut distrust, mut incoming) = (0.0, 0.0);
        let mut labelled_all = labelled;
        for e in self.adj[a as usize].iter() {
            if !self.trust(e) && self.label[e.other as usize] != 0 {
                labelled_all += 1;
            }
            if !e.incoming {
                continue;
            }
            let w = self.weight(e, now);
            incoming += w;
            if self.cfg.signed && e.attr < 0.0 && self.label[e.other as usize] == -1 {
                distrust += w;
            }
        }
        let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
        Signals {
            fraud_share: ratio(fraud, all),
            fraud_share_2hop: ratio(f2, a2),
            legit_distrust: ratio(distrust, incoming),
            score: f64::from(self.score[a as usize]),
            labelled_neighbors: labelled_all,
            degree_in: self.deg_in[a as usize],
            degree_out: self.deg_out[a as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn cfg(signed: bool) -> PropagationConfig {
        PropagationConfig {
            half_life_ms: 30 * DAY,
            max_neighbors: 4,
            signed,
            scale: 10.0,
        }
    }

    #[test]
    fn shares_at_one_and_two_hops_follow_the_labels_as_they_arrive() {
        let mut p = Propagation::new(cfg(false));
        // 0 deals with 1 and 2; 1 deals with 3.
        p.add_edge(0, 1, 0.0, 0);
        p.add_edge(0, 2, 0.0, 0);
        p.add_edge(1, 3, 0.0, 0);
        assert_eq!(p.signals(0, 0).fraud_share, 0.0);
        p.set_label(1, true, DAY);
        let s = p.signals(0, DAY);
        assert!((s.fraud_share - 0.5).abs() < 1e-9, "{s:?}");
        assert_eq!(s.labelled_neighbors, 1);
        assert!(s.score > 0.0, "{s:?}");
        // 3's only neighbour is fraud: one hop 1.0; 0 sees it at two hops through 1 (1's other
        // neighbour, 3, is not fraud: 0 at two hops through 1; through 2: nothing).
        assert_eq!(p.signals(3, DAY).fraud_share, 1.0);
        p.set_label(3, true, DAY);
        let s = p.signals(0, DAY);
        assert!(s.fraud_share_2hop > 0.0, "{s:?}");
        // Unknown accounts are all zero.
        assert_eq!(p.signals(99, DAY), Signals::default());
    }

    #[test]
    fn recency_and_the_attribute_weigh_and_old_edges_fall_out() {
        let mut p = Propagation::new(cfg(false));
        p.add_edge(0, 1, 0.0, 0);
        p.add_edge(0, 2, 10.0, 0);
        p.set_label(2, true, 0);
        // Edge to 2 weighs 1 + 10/10 = 2, to 1 weighs 1.
        assert!((p.signals(0, 0).fraud_share - 2.0 / 3.0).abs() < 1e-9);
        // A fresh edge to 1 outweighs both old ones after two half-lives.
        p.add_edge(0, 1, 0.0, 60 * DAY);
        let s = p.signals(0, 60 * DAY);
        assert!(
            (s.fraud_share - 0.5 / (0.5 + 0.25 + 1.0)).abs() < 1e-6,
            "{s:?}"
        );
        // Only the 4 most recent edges of 0 are kept.
        for k in 3..10 {
            p.add_edge(0, k, 0.0, 61 * DAY);
        }
        assert_eq!(p.signals(0, 61 * DAY).fraud_share, 0.0);
        assert_eq!(p.signals(0, 61 * DAY).degree_out, 10);
    }

    #[test]
    fn distrust_from_known_good_accounts_and_signed_propagation() {
        let mut p = Propagation::new(cfg(true));
        // 1 (legitimate) rates 0 down; 2 (unknown) rates 0 up.
        p.add_edge(1, 0, -10.0, 0);
        p.add_edge(2, 0, 1.0, 0);
        p.set_label(1, false, 0);
        let s = p.signals(0, 0);
        assert!((s.legit_distrust - 2.0 / 3.1).abs() < 1e-6, "{s:?}");
        // Across a negative edge a legitimate account's score (−1) counts as +1: suspicion.
        assert!(s.score > 0.0, "{s:?}");
        assert_eq!(s.fraud_share, 0.0, "distrust is not a fraud neighbour");
        // A fraudster rating 3 down makes 3 look honest.
        p.add_edge(4, 3, -10.0, 0);
        p.set_label(4, true, 0);
        assert!(p.signals(3, 0).score < 0.0);
    }

    #[test]
    fn a_huge_attribute_poisons_nothing() {
        let mut p = Propagation::new(cfg(true));
        p.add_edge(0, 1, 1e39, 0);
        p.add_edge(2, 1, -1e300, 0);
        p.set_label(0, true, 0);
        p.add_edge(1, 3, 1.0, 1);
        for a in 0..4 {
            let s = p.signals(a, 1);
            for x in [s.fraud_share, s.fraud_share_2hop, s.legit_distrust, s.score] {
                assert!(x.is_finite(), "{a}: {s:?}");
            }
        }
    }

    #[test]
    fn the_same_events_give_the_same_values() {
        let run = || {
            let mut p = Propagation::new(cfg(true));
            let mut x = 7u64;
            for i in 0..500 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (a, b) = ((x >> 33) as u32 % 50, (x >> 13) as u32 % 50);
                p.add_edge(a, b, ((x >> 7) % 21) as f64 - 10.0, i * 3_600_000);
                if i % 37 == 0 {
                    p.set_label(a, i % 2 == 0, i * 3_600_000);
                }
            }
            (0..50)
                .map(|a| p.signals(a, 500 * 3_600_000))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
