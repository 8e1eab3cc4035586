//! Exact sliding windows: every observation kept (time, value, running sum), sorted by time.
//! Reads binary-search the window bounds: count and sum in O(log n), min/max/distinct scan the window.

use crate::config::{Agg, Reader};
use crate::out_value;
use argus_event::Value;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    t: i64,
    /// Wrapping running sum of the values (micro-units for numeric series, 64-bit digests otherwise) up to
    /// and including this entry. A window sum is a difference of two, exact whenever the true sum fits in
    /// i64; an entry's own value is the difference with its predecessor.
    cum: i64,
}

/// Observations of one key, oldest first, in a ring buffer whose capacity is a power of two no larger
/// than needed (it grows by doubling and shrinks by half when a quarter full): appends and evictions are
/// O(1), searches index the ring directly.
#[derive(Debug, Clone, Default)]
pub struct ExactState {
    ring: Vec<Entry>,
    /// `u32`s, not `usize`s, so that `abs` fits in the 48 bytes the state took before it (a
    /// series holds at most `max_entries` entries, far below 2^32).
    head: u32,
    len: u32,
    /// Running sum before the first live entry.
    base: i64,
    /// The sum over the live entries of `ceil(|value| / 2^16)` (see [`scaled`]), derived from the
    /// entries and never stored; `u64::MAX` once it passed `u64` (then until the series empties).
    /// Below 2^47 the entries' absolute values sum below 2^63, so no window's true sum can pass
    /// `i64` and the wrapping difference of two running sums is exact; at or above it a sum is
    /// added up entry by entry in `i128` and saturates at `i64`'s bounds, instead of wrapping
    /// round to the other sign (two orders of 5 × 10¹² units once read as a negative 24-hour
    /// spend, and a spend rule did not fire on the orders after them). Scaled, so that it is
    /// exact integer arithmetic that a busy series can keep for ever (a series of text digests,
    /// whose sums nobody reads, passes the bound at once).
    abs: u64,
}

impl PartialEq for ExactState {
    fn eq(&self, other: &Self) -> bool {
        self.n() == other.n()
            && self.base == other.base
            && (0..self.n()).all(|i| self.at(i) == other.at(i))
    }
}
impl Eq for ExactState {}

impl Serialize for ExactState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let live: Vec<Entry> = (0..self.n()).map(|i| *self.at(i)).collect();
        (self.base, live).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ExactState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (base, live) = <(i64, Vec<Entry>)>::deserialize(d)?;
        let mut st = ExactState {
            ring: Vec::new(),
            head: 0,
            len: 0,
            base,
            abs: 0,
        };
        st.reserve(live.len());
        for e in live {
            st.push(e);
        }
        st.abs = st.abs_of(0..st.n());
        Ok(st)
    }
}

/// `ceil(|v| / 2^16)`: at most 2^47, and summed over entries, an upper bound of their absolute
/// values' sum divided by 2^16 (`ExactState::abs`).
fn scaled(v: i64) -> u64 {
    v.unsigned_abs().div_ceil(1 << 16)
}

/// Number of entries among the first `end` with time ≤ `x`, searching backwards from `end` with
/// doubling steps: a recent bound touches only the (hot) tail, an old one costs O(log n).
fn gallop_back(st: &ExactState, end: usize, x: i64) -> usize {
    let mut step = 1;
    let mut hi = end; // every entry at or after `hi` has time > x
    loop {
        let probe = hi.saturating_sub(step);
        if probe == 0 || st.at(probe - 1).t <= x {
            return st.partition(probe, hi, x);
        }
        hi = probe;
        step *= 2;
    }
}

/// Reusable buffers for distinct counting over a window's values.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    small: Vec<i64>,
    set: std::collections::HashSet<i64, std::hash::BuildHasherDefault<crate::state::KeyHasher>>,
}

/// Like [`gallop_back`], searching forwards from the first entry.
fn gallop_front(st: &ExactState, end: usize, x: i64) -> usize {
    let mut step = 1;
    let mut lo = 0; // every entry before `lo` has time ≤ x
    loop {
        let probe = (lo + step).min(end);
        if probe == end || st.at(probe - 1).t > x {
            return st.partition(lo, probe, x);
        }
        lo = probe;
        step *= 2;
    }
}

impl ExactState {
    /// The live entries' count.
    fn n(&self) -> usize {
        self.len as usize
    }

    fn at(&self, i: usize) -> &Entry {
        &self.ring[(self.head as usize + i) & (self.ring.len() - 1)]
    }

    fn at_mut(&mut self, i: usize) -> &mut Entry {
        let m = self.ring.len() - 1;
        &mut self.ring[(self.head as usize + i) & m]
    }

    /// First index in `lo..hi` whose time is > x (entries are sorted by time).
    fn partition(&self, mut lo: usize, mut hi: usize, x: i64) -> usize {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.at(mid).t <= x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn relayout(&mut self, cap: usize) {
        let mut ring = Vec::with_capacity(cap);
        ring.extend((0..self.n()).map(|i| *self.at(i)));
        ring.resize(cap, Entry { t: 0, cum: 0 });
        self.ring = ring;
        self.head = 0;
    }

    fn reserve(&mut self, n: usize) {
        if self.n() + n > self.ring.len() {
            self.relayout((self.n() + n).next_power_of_two().max(4));
        }
    }

    fn push(&mut self, e: Entry) {
        self.reserve(1);
        self.len += 1;
        *self.at_mut(self.n() - 1) = e;
    }

    /// Adds an observation, keeping time order, then drops entries older than `retention_ms` before the
    /// newest and beyond `max_entries`. Returns how many entries the cap dropped.
    pub fn insert(&mut self, t: i64, v: i64, retention_ms: i64, max_entries: usize) -> u64 {
        let last = (self.n() > 0).then(|| *self.at(self.n() - 1));
        match last {
            Some(l) if l.t > t => {
                // Out of order (within the allowed lateness): insert in place, shift the running sums.
                let pos = self.partition(0, self.n(), t);
                let before = self.cum_at(pos);
                self.push(l);
                for i in (pos + 1..self.n()).rev() {
                    let mut e = *self.at(i - 1);
                    e.cum = e.cum.wrapping_add(v);
                    *self.at_mut(i) = e;
                }
                *self.at_mut(pos) = Entry {
                    t,
                    cum: before.wrapping_add(v),
                };
            }
            Some(l) => self.push(Entry {
                t,
                cum: l.cum.wrapping_add(v),
            }),
            None => {
                let b = self.base;
                self.push(Entry {
                    t,
                    cum: b.wrapping_add(v),
                })
            }
        }
        self.abs = self.abs.saturating_add(scaled(v));
        let newest = self.at(self.n() - 1).t;
        self.evict_before(newest - retention_ms);
        let excess = self.n().saturating_sub(max_entries);
        self.pop_front(excess);
        excess as u64
    }

    /// The sum of [`scaled`] over the entries `range` (`u64::MAX` if it passes `u64`).
    fn abs_of(&self, range: std::ops::Range<usize>) -> u64 {
        range.fold(0u64, |a, i| a.saturating_add(scaled(self.value_at(i))))
    }

    /// The sum of the values of the entries `start..end`: the difference of two running sums
    /// while no window's sum can pass `i64` (see `abs`), else added up in `i128` and saturated.
    fn sum_range(&self, start: usize, end: usize) -> i64 {
        if self.abs < 1 << 47 {
            return self.cum_at(end).wrapping_sub(self.cum_at(start));
        }
        let exact: i128 = (start..end).map(|i| self.value_at(i) as i128).sum();
        exact.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    fn pop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.abs = match self.abs {
            _ if n == self.n() => 0,
            u64::MAX => u64::MAX,
            a => a - self.abs_of(0..n),
        };
        self.base = self.at(n - 1).cum;
        self.head = ((self.head as usize + n) & (self.ring.len() - 1)) as u32;
        self.len -= n as u32;
        if self.ring.len() > 8 && self.n() * 4 < self.ring.len() {
            self.relayout(self.ring.len() / 2);
        }
    }

    /// Drops entries with time ≤ `cutoff`. A linear walk from the front: a stream in time order evicts
    /// zero or one entry per insert, and the front is the cache line a binary search would miss on.
    pub fn evict_before(&mut self, cutoff: i64) {
        let mut n = 0;
        while n < self.n() && self.at(n).t <= cutoff {
            n += 1;
        }
        self.pop_front(n);
    }

    pub fn is_empty(&self) -> bool {
        self.n() == 0
    }

    /// Time of the newest entry.
    pub fn newest(&self) -> Option<i64> {
        (self.n() > 0).then(|| self.at(self.n() - 1).t)
    }

    pub fn len(&self) -> usize {
        self.n()
    }

    fn cum_at(&self, i: usize) -> i64 {
        if i == 0 {
            self.base
        } else {
            self.at(i - 1).cum
        }
    }

    fn value_at(&self, i: usize) -> i64 {
        self.cum_at(i + 1).wrapping_sub(self.cum_at(i))
    }

    /// Index range of the entries in (t − offset − window, t − offset].
    pub fn bounds(&self, r: &Reader, t: i64) -> (usize, usize) {
        if self.n() == 0 {
            return (0, 0);
        }
        let hi = t - r.offset_ms;
        let lo = hi - r.window_ms;
        let end = if self.at(self.n() - 1).t <= hi {
            self.n()
        } else {
            gallop_back(self, self.n(), hi)
        };
        // Search from whichever end is nearer in time: the front's cache line is hot (eviction reads it),
        // and a long window's start is usually near it.
        let (front, back) = (self.at(0).t, self.at(end.max(1) - 1).t);
        let start = if lo - front < back - lo {
            gallop_front(self, end, lo)
        } else {
            gallop_back(self, end, lo)
        };
        (start, end)
    }

    /// Reads an aggregate over (t − offset − window, t − offset].
    pub fn read(&self, r: &Reader, t: i64, scratch: &mut Scratch) -> Value {
        let (start, end) = self.bounds(r, t);
        self.read_range(r, start, end, scratch)
    }

    /// Reads an aggregate over the entries `start..end` (from [`bounds`](Self::bounds)).
    pub fn read_range(&self, r: &Reader, start: usize, end: usize, scratch: &mut Scratch) -> Value {
        let n = end.saturating_sub(start);
        let sum = || self.sum_range(start, end);
        match r.agg {
            Agg::Count => Value::Int(n as i64),
            Agg::Sum => out_value(sum(), r.out),
            Agg::Avg if n == 0 => Value::Null,
            Agg::Avg => {
                Value::Float(sum() as f64 / n as f64 / argus_event::value::DEC_SCALE as f64)
            }
            Agg::Min | Agg::Max if n == 0 => Value::Null,
            Agg::Min => out_value(
                (start..end).map(|i| self.value_at(i)).min().unwrap_or(0),
                r.out,
            ),
            Agg::Max => out_value(
                (start..end).map(|i| self.value_at(i)).max().unwrap_or(0),
                r.out,
            ),
            Agg::Distinct if n <= 64 => {
                scratch.small.clear();
                scratch.small.extend((start..end).map(|i| self.value_at(i)));
                scratch.small.sort_unstable();
                scratch.small.dedup();
                Value::Int(scratch.small.len() as i64)
            }
            Agg::Distinct => {
                scratch.set.clear();
                scratch.set.extend((start..end).map(|i| self.value_at(i)));
                Value::Int(scratch.set.len() as i64)
            }
            Agg::FirstSeen | Agg::LastSeen | Agg::Age | Agg::LastValue | Agg::SinceLast => {
                Value::Null
            }
        }
    }

    /// Union of two keys' observations (e.g. two partitions of one stream).
    pub fn merge(&mut self, other: &ExactState, retention_ms: i64, max_entries: usize) {
        let mut all: Vec<(i64, i64)> = (0..self.n())
            .map(|i| (self.at(i).t, self.value_at(i)))
            .chain((0..other.n()).map(|i| (other.at(i).t, other.value_at(i))))
            .collect();
        all.sort_by_key(|e| e.0);
        let base = self.base;
        *self = ExactState {
            ring: Vec::new(),
            head: 0,
            len: 0,
            base,
            abs: 0,
        };
        self.reserve(all.len());
        let mut acc = base;
        for (t, v) in all {
            acc = acc.wrapping_add(v);
            self.push(Entry { t, cum: acc });
        }
        self.abs = self.abs_of(0..self.n());
        if self.n() > 0 {
            let newest = self.at(self.n() - 1).t;
            self.evict_before(newest - retention_ms);
        }
        let excess = self.n().saturating_sub(max_entries);
        self.pop_front(excess);
    }

    pub fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    /// The window's sum bound (`abs`) costs no memory: the state is the 48 bytes it was before,
    /// and so is the `Slot` holding it, per series per key (ARCHITECTURE.md's table). (A boxed
    /// slice for the ring would have saved the 8 bytes too, but lost the niche the `Slot`'s tag
    /// lives in: 56 bytes a slot.)
    #[test]
    fn the_state_stays_48_bytes() {
        assert_eq!(std::mem::size_of::<super::ExactState>(), 48);
        assert_eq!(crate::state::slot_bytes(), 48);
    }
}
