//! Bucketed sliding windows: fixed memory per key. Time is cut into buckets of `width` aligned on the
//! epoch; a read over (t − offset − window, t − offset] sums the buckets after the one holding the window
//! start up to the one holding its end. The error is at most one bucket width at each edge (documented in
//! docs/features.md and measured on the handbook data in BENCHMARKS.md).

use crate::config::{Agg, Reader};
use crate::out_value;
use crate::sketch::DistinctSketch;
use argus_event::Value;
use serde::{Deserialize, Serialize};

/// Layout of a bucket in the word array.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width_ms: i64,
    pub len: u32,
    pub sum: bool,
    pub minmax: bool,
    pub distinct: bool,
}

impl Layout {
    fn stride(&self) -> usize {
        1 + if self.sum { 2 } else { 0 } + if self.minmax { 4 } else { 0 }
    }
}

/// A ring of buckets for one key: counts (u32) and optional sums / minima / maxima (i64 as two u32 words),
/// packed in one allocation; distinct sketches, when needed, in a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketState {
    /// Absolute index (time / width) of the newest bucket.
    head: i64,
    words: Box<[u32]>,
    sketches: Option<Box<[DistinctSketch]>>,
}

fn get64(w: &[u32], i: usize) -> i64 {
    ((w[i] as u64) | ((w[i + 1] as u64) << 32)) as i64
}

fn set64(w: &mut [u32], i: usize, v: i64) {
    w[i] = v as u64 as u32;
    w[i + 1] = ((v as u64) >> 32) as u32;
}

impl BucketState {
    pub fn new(l: &Layout, t: i64) -> Self {
        let mut s = BucketState {
            head: t.div_euclid(l.width_ms),
            words: vec![0u32; l.stride() * l.len as usize].into_boxed_slice(),
            sketches: l
                .distinct
                .then(|| vec![DistinctSketch::default(); l.len as usize].into_boxed_slice()),
        };
        for slot in 0..l.len as usize {
            s.clear(l, slot);
        }
        s
    }

    fn clear(&mut self, l: &Layout, slot: usize) {
        let base = slot * l.stride();
        self.words[base] = 0;
        let mut i = base + 1;
        if l.sum {
            set64(&mut self.words, i, 0);
            i += 2;
        }
        if l.minmax {
            set64(&mut self.words, i, i64::MAX);
            set64(&mut self.words, i + 2, i64::MIN);
        }
        if let Some(sk) = &mut self.sketches {
            sk[slot] = DistinctSketch::default();
        }
    }

    fn advance(&mut self, l: &Layout, k: i64) {
        if k <= self.head {
            return;
        }
        let steps = (k - self.head).min(l.len as i64);
        for j in 1..=steps {
            let slot = (self.head + j).rem_euclid(l.len as i64) as usize;
            self.clear(l, slot);
        }
        // When jumping further than the ring, every slot was cleared above.
        self.head = k;
    }

    /// Adds an observation. Returns false when it is older than the ring (dropped, counted by the caller).
    pub fn insert(&mut self, l: &Layout, t: i64, v: i64, digest: u64) -> bool {
        let k = t.div_euclid(l.width_ms);
        self.advance(l, k);
        if k <= self.head - l.len as i64 {
            return false;
        }
        let slot = k.rem_euclid(l.len as i64) as usize;
        let base = slot * l.stride();
        self.words[base] = self.words[base].saturating_add(1);
        let mut i = base + 1;
        if l.sum {
            // Saturating, as the read below: a sum past `i64` must not wrap round to the other
            // sign (a huge order would turn a spend negative).
            let s = get64(&self.words, i).saturating_add(v);
            set64(&mut self.words, i, s);
            i += 2;
        }
        if l.minmax {
            let mn = get64(&self.words, i).min(v);
            set64(&mut self.words, i, mn);
            let mx = get64(&self.words, i + 2).max(v);
            set64(&mut self.words, i + 2, mx);
        }
        if let Some(sk) = &mut self.sketches {
            sk[slot].insert(digest);
        }
        true
    }

    /// Newest time this state can still contribute to (for expiry).
    pub fn newest_bucket_end(&self, l: &Layout) -> i64 {
        (self.head + 1) * l.width_ms
    }

    pub fn read(&self, l: &Layout, r: &Reader, t: i64) -> Value {
        let hi = t - r.offset_ms;
        let kh = hi.div_euclid(l.width_ms).min(self.head);
        let kl = (hi - r.window_ms)
            .div_euclid(l.width_ms)
            .max(self.head - l.len as i64);
        let stride = l.stride();
        let (mut n, mut sum, mut mn, mut mx) = (0u64, 0i128, i64::MAX, i64::MIN);
        let mut sketch = DistinctSketch::default();
        let mut k = kl + 1;
        while k <= kh {
            let slot = k.rem_euclid(l.len as i64) as usize;
            let base = slot * stride;
            n += self.words[base] as u64;
            let mut i = base + 1;
            if l.sum {
                sum += get64(&self.words, i) as i128;
                i += 2;
            }
            if l.minmax {
                mn = mn.min(get64(&self.words, i));
                mx = mx.max(get64(&self.words, i + 2));
            }
            if r.agg == Agg::Distinct {
                if let Some(sk) = &self.sketches {
                    sketch.merge(&sk[slot]);
                }
            }
            k += 1;
        }
        let sum = sum.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        match r.agg {
            Agg::Count => Value::Int(n as i64),
            Agg::Sum => out_value(sum, r.out),
            Agg::Avg if n == 0 => Value::Null,
            Agg::Avg => Value::Float(sum as f64 / n as f64 / argus_event::value::DEC_SCALE as f64),
            Agg::Min | Agg::Max if n == 0 => Value::Null,
            Agg::Min => out_value(mn, r.out),
            Agg::Max => out_value(mx, r.out),
            Agg::Distinct => Value::Int(sketch.estimate() as i64),
            _ => Value::Null,
        }
    }

    /// Bucket-wise union with another state of the same layout.
    pub fn merge(&mut self, l: &Layout, other: &BucketState) {
        self.advance(l, other.head);
        let stride = l.stride();
        for k in (other.head - l.len as i64 + 1)..=other.head {
            if k <= self.head - l.len as i64 {
                continue;
            }
            let slot = k.rem_euclid(l.len as i64) as usize;
            let base = slot * stride;
            self.words[base] = self.words[base].saturating_add(other.words[base]);
            let mut i = base + 1;
            if l.sum {
                let s = get64(&self.words, i).saturating_add(get64(&other.words, i));
                set64(&mut self.words, i, s);
                i += 2;
            }
            if l.minmax {
                let mn = get64(&self.words, i).min(get64(&other.words, i));
                set64(&mut self.words, i, mn);
                let mx = get64(&self.words, i + 2).max(get64(&other.words, i + 2));
                set64(&mut self.words, i + 2, mx);
            }
            if let (Some(a), Some(b)) = (&mut self.sketches, &other.sketches) {
                a[slot].merge(&b[slot]);
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.len() * 4
            + self.sketches.as_ref().map_or(0, |s| {
                s.iter()
                    .map(|x| x.heap_bytes() + std::mem::size_of::<DistinctSketch>())
                    .sum()
            })
    }
}
