//! The simulator's random numbers: xoshiro256++ seeded through SplitMix64, written out here so that
//! "same seed ⇒ same bytes" never depends on a crate's choice of algorithm between versions (the test
//! checks it against `rand_xoshiro`). Every sampler below is defined in terms of [`Rng::u64`] only, and
//! its logarithms, exponentials and cosines come from `libm` (pure Rust), not the platform's maths
//! library, so that the same seed gives the same bytes on every platform.

/// SplitMix64, used to expand seeds and to derive independent streams.
pub fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stream key: the seed mixed with any number of labels (scenario, user, day …).
pub fn mix(seed: u64, labels: &[u64]) -> u64 {
    let mut x = seed;
    let mut h = splitmix(&mut x);
    for &l in labels {
        x ^= l.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h;
        h = splitmix(&mut x);
    }
    h
}

/// FNV-1a of a name, to turn scenario names into stream labels.
pub fn name_label(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed` and the stream named by `labels`.
    pub fn new(seed: u64, labels: &[u64]) -> Rng {
        Rng::from_u64(mix(seed, labels))
    }

    /// xoshiro256++ seeded from one u64 through SplitMix64 (as `SeedableRng::seed_from_u64` does).
    pub fn from_u64(seed: u64) -> Rng {
        let mut x = seed;
        Rng {
            s: [
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
            ],
        }
    }

    #[inline]
    pub fn u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the tiny bias is irrelevant here). `n = 0` gives 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform index into a slice of length `n`.
    #[inline]
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform float in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * libm::log(1.0 - self.f64())
    }

    /// Standard normal (Box–Muller, one value per call).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * libm::log(u1)).sqrt() * libm::cos(std::f64::consts::TAU * u2)
    }

    /// Log-normal with the given median and shape.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * libm::exp(sigma * self.normal())
    }

    /// Poisson: Knuth's product method below 30, a rounded normal above.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda >= 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let l = libm::exp(-lambda);
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= self.f64();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }

    /// Geometric number of trials ≥ 1 with the given mean.
    pub fn geometric(&mut self, mean: f64) -> u32 {
        if mean <= 1.0 {
            return 1;
        }
        let p = 1.0 / mean;
        1 + (libm::log(1.0 - self.f64()) / libm::log(1.0 - p)).floor() as u32
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }
}

/// Sampling from a fixed discrete distribution by binary search over the cumulative weights.
#[derive(Clone, Debug)]
pub struct Weighted {
    cdf: Vec<f64>,
}

impl Weighted {
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                acc += w.max(0.0);
                acc
            })
            .collect();
        if acc > 0.0 {
            for c in &mut cdf {
                *c /= acc;
            }
        }
        Weighted { cdf }
    }

    /// Zipf weights `1 / (rank + 1)^s` over `n` ranks.
    pub fn zipf(n: usize, s: f64) -> Weighted {
        Weighted::new((0..n).map(|r| 1.0 / libm::pow((r + 1) as f64, s)))
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len().saturating_sub(1))
    }

    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn same_stream_as_rand_xoshiro() {
        for seed in [0u64, 1, 42, u64::MAX] {
            let mut a = Rng::from_u64(seed);
            let mut b = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            for _ in 0..1000 {
                assert_eq!(a.u64(), b.next_u64());
            }
        }
    }

    #[test]
    fn samplers_have_their_means() {
        let mut r = Rng::new(7, &[1]);
        let n = 200_000;
        let mean = |f: &mut dyn FnMut(&mut Rng) -> f64, r: &mut Rng| {
            (0..n).map(|_| f(r)).sum::<f64>() / n as f64
        };
        assert!((mean(&mut |r| r.exp(3.0), &mut r) - 3.0).abs() < 0.05);
        assert!((mean(&mut |r| r.poisson(4.0) as f64, &mut r) - 4.0).abs() < 0.05);
        assert!((mean(&mut |r| r.poisson(50.0) as f64, &mut r) - 50.0).abs() < 0.2);
        assert!((mean(&mut |r| r.geometric(5.0) as f64, &mut r) - 5.0).abs() < 0.1);
        assert!((mean(&mut |r| r.range(1, 6) as f64, &mut r) - 3.5).abs() < 0.02);
        let w = Weighted::new([1.0, 0.0, 3.0]);
        let hits = (0..n).filter(|_| w.sample(&mut r) == 2).count() as f64 / n as f64;
        assert!((hits - 0.75).abs() < 0.01);
        assert!((0..1000).all(|_| w.sample(&mut r) != 1));
    }
}
