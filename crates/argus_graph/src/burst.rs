//! Streaming edge-burst score in constant memory (MIDAS-R, Bhatia et al., AAAI 2020): count-min
//! sketches of each edge's, source's and destination's counts in the current time tick (decayed by a
//! factor at each new tick, not reset) and in total; an edge's score is the largest chi-squared
//! statistic of "current count against the mean so far" among the three. A burst of edges between the
//! same endpoints (a click farm's wave, a brushing spree, a scan) scores high the moment it happens.
//!
//! Memory is fixed by the sketch size (rows × buckets × 6 counters), whatever the number of nodes.

/// A count-min sketch of f64 counters.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Sketch {
    rows: usize,
    buckets: usize,
    cells: Vec<f64>,
}

impl Sketch {
    fn new(rows: usize, buckets: usize) -> Sketch {
        Sketch {
            rows,
            buckets,
            cells: vec![0.0; rows * buckets],
        }
    }

    fn add(&mut self, idx: &[usize; 4], by: f64) {
        for (r, &i) in idx.iter().enumerate().take(self.rows) {
            self.cells[r * self.buckets + i] += by;
        }
    }

    fn get(&self, idx: &[usize; 4]) -> f64 {
        idx.iter()
            .enumerate()
            .take(self.rows)
            .map(|(r, &i)| self.cells[r * self.buckets + i])
            .fold(f64::INFINITY, f64::min)
    }

    fn scale(&mut self, f: f64) {
        for c in &mut self.cells {
            *c *= f;
        }
    }
}

/// The detector. `rows` ≤ 4 hash functions of `buckets` counters each.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Burst {
    rows: usize,
    buckets: usize,
    decay: f64,
    tick: i64,
    seeds: [u64; 4],
    cur_edge: Sketch,
    all_edge: Sketch,
    cur_src: Sketch,
    all_src: Sketch,
    cur_dst: Sketch,
    all_dst: Sketch,
}

/// The chi-squared score of `a` in the current tick against a total of `s` over `t` ticks.
#[inline]
fn chi2(a: f64, s: f64, t: f64) -> f64 {
    if s == 0.0 || t <= 1.0 {
        0.0
    } else {
        let d = (a - s / t) * t;
        d * d / (s * (t - 1.0))
    }
}

impl Burst {
    /// MIDAS-R's defaults are 2 rows, 1,024 buckets and a decay of 0.5.
    pub fn new(rows: usize, buckets: usize, decay: f64) -> Burst {
        let rows = rows.clamp(1, 4);
        let buckets = buckets.max(1);
        let sk = || Sketch::new(rows, buckets);
        Burst {
            rows,
            buckets,
            decay,
            tick: 1,
            seeds: [
                0x9e37_79b9_7f4a_7c15,
                0xc2b2_ae3d_27d4_eb4f,
                0x1656_67b1_9e37_79f9,
                0x27d4_eb2f_1656_67c5,
            ],
            cur_edge: sk(),
            all_edge: sk(),
            cur_src: sk(),
            all_src: sk(),
            cur_dst: sk(),
            all_dst: sk(),
        }
    }

    #[inline]
    fn index(&self, key: u64) -> [usize; 4] {
        let mut out = [0usize; 4];
        for (r, o) in out.iter_mut().enumerate().take(self.rows) {
            let mut h = key ^ self.seeds[r];
            h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            h ^= h >> 31;
            *o = ((h as u128 * self.buckets as u128) >> 64) as usize;
        }
        out
    }

    /// Scores the edge `src → dst` at `tick` (ticks start at 1 and never go back; a smaller tick is
    /// taken as the current one).
    pub fn score(&mut self, src: u64, dst: u64, tick: i64) -> f64 {
        if tick > self.tick {
            for s in [&mut self.cur_edge, &mut self.cur_src, &mut self.cur_dst] {
                s.scale(self.decay);
            }
            self.tick = tick;
        }
        let e = self.index(src.wrapping_mul(0x100_0000_01b3) ^ dst.rotate_left(29) ^ 0x5bd1_e995);
        let s = self.index(src);
        let d = self.index(dst.wrapping_add(0x2545_f491_4f6c_dd1d));
        self.cur_edge.add(&e, 1.0);
        self.all_edge.add(&e, 1.0);
        self.cur_src.add(&s, 1.0);
        self.all_src.add(&s, 1.0);
        self.cur_dst.add(&d, 1.0);
        self.all_dst.add(&d, 1.0);
        let t = self.tick as f64;
        chi2(self.cur_edge.get(&e), self.all_edge.get(&e), t)
            .max(chi2(self.cur_src.get(&s), self.all_src.get(&s), t))
            .max(chi2(self.cur_dst.get(&d), self.all_dst.get(&d), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_scores_far_above_steady_traffic() {
        let mut b = Burst::new(2, 1024, 0.5);
        let mut steady = Vec::new();
        // 200 ticks of steady traffic: each of 50 pairs once per tick.
        for t in 1..=200 {
            for p in 0..50u64 {
                steady.push(b.score(p, p + 1000, t));
            }
        }
        // Then one pair 100 times in one tick.
        let burst: Vec<f64> = (0..100).map(|_| b.score(7, 9999, 201)).collect();
        let steady_max = steady[50 * 20..].iter().copied().fold(0.0, f64::max);
        assert!(
            burst[99] > 100.0 * steady_max.max(1.0),
            "burst {} vs steady {}",
            burst[99],
            steady_max
        );
        // Deterministic: the same stream gives the same scores.
        let mut c = Burst::new(2, 1024, 0.5);
        assert_eq!(c.score(1, 2, 1), Burst::new(2, 1024, 0.5).score(1, 2, 1));
    }
}
