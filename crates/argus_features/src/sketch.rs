//! Distinct counting: an exact sorted set while small, a HyperLogLog beyond.

use serde::{Deserialize, Serialize};

/// Sets up to this size are counted exactly.
pub const EXACT_LIMIT: usize = 64;
/// HyperLogLog precision: 2^11 registers (2 KiB), standard error 1.04/√2048 ≈ 2.3 %.
pub const HLL_P: u32 = 11;
const M: usize = 1 << HLL_P;

/// A distinct-count sketch over 64-bit value digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistinctSketch {
    /// Sorted, deduplicated digests.
    Small(Vec<u64>),
    /// HyperLogLog registers.
    Hll(Box<[u8]>),
}

impl Default for DistinctSketch {
    fn default() -> Self {
        DistinctSketch::Small(Vec::new())
    }
}

impl DistinctSketch {
    pub fn insert(&mut self, h: u64) {
        match self {
            DistinctSketch::Small(v) => {
                if let Err(pos) = v.binary_search(&h) {
                    if v.len() < EXACT_LIMIT {
                        v.insert(pos, h);
                    } else {
                        let mut regs = vec![0u8; M].into_boxed_slice();
                        for &x in v.iter() {
                            hll_add(&mut regs, x);
                        }
                        hll_add(&mut regs, h);
                        *self = DistinctSketch::Hll(regs);
                    }
                }
            }
            DistinctSketch::Hll(r) => hll_add(r, h),
        }
    }

    /// Union of two sketches (commutative, associative, idempotent).
    pub fn merge(&mut self, other: &DistinctSketch) {
        match other {
            DistinctSketch::Small(v) => {
                for &h in v {
                    self.insert(h);
                }
            }
            DistinctSketch::Hll(o) => {
                if let DistinctSketch::Small(v) = self {
                    let mut regs = vec![0u8; M].into_boxed_slice();
                    for &x in v.iter() {
                        hll_add(&mut regs, x);
                    }
                    *self = DistinctSketch::Hll(regs);
                }
                if let DistinctSketch::Hll(r) = self {
                    for (a, b) in r.iter_mut().zip(o.iter()) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
    }

    pub fn estimate(&self) -> u64 {
        match self {
            DistinctSketch::Small(v) => v.len() as u64,
            DistinctSketch::Hll(r) => hll_estimate(r),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            DistinctSketch::Small(v) => v.capacity() * 8,
            DistinctSketch::Hll(r) => r.len(),
        }
    }
}

fn hll_add(regs: &mut [u8], h: u64) {
    // Re-mix: digests of small integers are well spread already, but be safe.
    let h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (h >> 29);
    let idx = (h >> (64 - HLL_P)) as usize;
    let rest = (h << HLL_P) | (1 << (HLL_P - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if regs[idx] < rank {
        regs[idx] = rank;
    }
}

fn hll_estimate(regs: &[u8]) -> u64 {
    let m = regs.len() as f64;
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in regs {
        sum += 1.0 / (1u64 << r) as f64;
        if r == 0 {
            zeros += 1;
        }
    }
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let raw = alpha * m * m / sum;
    let est = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    est.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(i: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())
    }

    #[test]
    fn exact_below_limit_then_within_error() {
        let mut s = DistinctSketch::default();
        for i in 0..EXACT_LIMIT as u64 {
            s.insert(digest(i));
            s.insert(digest(i));
        }
        assert_eq!(s.estimate(), EXACT_LIMIT as u64);
        for n in [1_000u64, 20_000, 200_000] {
            let mut s = DistinctSketch::default();
            for i in 0..n {
                s.insert(digest(i));
            }
            let err = (s.estimate() as f64 - n as f64).abs() / n as f64;
            assert!(err < 0.07, "n={n} estimate={} err={err}", s.estimate());
        }
    }

    #[test]
    fn merge_is_union() {
        let (mut a, mut b, mut all) = (
            DistinctSketch::default(),
            DistinctSketch::default(),
            DistinctSketch::default(),
        );
        for i in 0..500 {
            a.insert(digest(i));
            all.insert(digest(i));
        }
        for i in 300..900 {
            b.insert(digest(i));
            all.insert(digest(i));
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab, all);
    }
}
