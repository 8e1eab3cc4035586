//! Exact sliding windows: every observation kept (time, value, running sum), sorted by time.
//! Reads binary-search the window bounds: count and sum in O(log n), min/max/distinct scan the window.

use crate::config::{Agg, Reader};
use crate::out_value;
use argus_event::Value;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    t: i64,
    /// Micro-units for numeric series, a 64-bit digest otherwise.
    v: i64,
    /// Wrapping running sum of `v` up to and including this entry; window sums are differences, exact
    /// whenever the true window sum fits in i64.
    cum: i64,
}

/// Observations of one key, oldest first: a vector whose live part starts at `head` (popping the front
/// is O(1); the dead prefix is compacted when it outgrows the live part), so searches run on one
/// contiguous slice.
#[derive(Debug, Clone, Default)]
pub struct ExactState {
    buf: Vec<Entry>,
    head: usize,
}

impl PartialEq for ExactState {
    fn eq(&self, other: &Self) -> bool {
        self.live() == other.live()
    }
}
impl Eq for ExactState {}

impl Serialize for ExactState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.live().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ExactState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ExactState { buf: Vec::deserialize(d)?, head: 0 })
    }
}

impl ExactState {
    /// Adds an observation, keeping time order, then drops entries older than `retention_ms` before the
    /// newest and beyond `max_entries`. Returns how many entries the cap dropped.
    pub fn insert(&mut self, t: i64, v: i64, retention_ms: i64, max_entries: usize) -> u64 {
        match self.live().last() {
            Some(last) if last.t > t => {
                let pos = self.live().partition_point(|e| e.t <= t);
                let base = self.cum_at(pos);
                self.buf.insert(self.head + pos, Entry { t, v, cum: base });
                self.recompute_from(pos, base);
            }
            _ => {
                let cum = self.cum_at(self.len()).wrapping_add(v);
                self.buf.push(Entry { t, v, cum });
            }
        }
        let newest = self.live().last().map_or(t, |e| e.t);
        self.evict_before(newest - retention_ms);
        let excess = self.len().saturating_sub(max_entries);
        self.pop_front(excess);
        excess as u64
    }

    fn live(&self) -> &[Entry] {
        &self.buf[self.head..]
    }

    fn pop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.head += n;
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > 32 && self.head * 2 > self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Drops entries with time ≤ `cutoff`.
    pub fn evict_before(&mut self, cutoff: i64) {
        let n = self.live().partition_point(|e| e.t <= cutoff);
        self.pop_front(n);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    fn cum_at(&self, i: usize) -> i64 {
        let live = self.live();
        if i == 0 {
            live.first().map_or(0, |e| e.cum.wrapping_sub(e.v))
        } else {
            live[i - 1].cum
        }
    }

    fn recompute_from(&mut self, pos: usize, base: i64) {
        let mut acc = base;
        for e in &mut self.buf[self.head + pos..] {
            acc = acc.wrapping_add(e.v);
            e.cum = acc;
        }
    }

    /// Index range of the entries in (t − offset − window, t − offset].
    pub fn bounds(&self, r: &Reader, t: i64) -> (usize, usize) {
        let live = self.live();
        let hi = t - r.offset_ms;
        let lo = hi - r.window_ms;
        let end = if live.last().is_none_or(|e| e.t <= hi) { live.len() } else { live.partition_point(|e| e.t <= hi) };
        // Windows are usually recent: search only the part before `end`.
        let start = live[..end].partition_point(|e| e.t <= lo);
        (start, end)
    }

    /// Reads an aggregate over (t − offset − window, t − offset].
    pub fn read(&self, r: &Reader, t: i64, scratch: &mut Vec<i64>) -> Value {
        let (start, end) = self.bounds(r, t);
        self.read_range(r, start, end, scratch)
    }

    /// Reads an aggregate over the entries `start..end` (from [`bounds`](Self::bounds)).
    pub fn read_range(&self, r: &Reader, start: usize, end: usize, scratch: &mut Vec<i64>) -> Value {
        let n = end.saturating_sub(start);
        let sum = || self.cum_at(end).wrapping_sub(self.cum_at(start));
        match r.agg {
            Agg::Count => Value::Int(n as i64),
            Agg::Sum => out_value(sum(), r.out),
            Agg::Avg if n == 0 => Value::Null,
            Agg::Avg => Value::Float(sum() as f64 / n as f64 / argus_event::value::DEC_SCALE as f64),
            Agg::Min | Agg::Max if n == 0 => Value::Null,
            Agg::Min => out_value(self.live()[start..end].iter().map(|e| e.v).min().unwrap_or(0), r.out),
            Agg::Max => out_value(self.live()[start..end].iter().map(|e| e.v).max().unwrap_or(0), r.out),
            Agg::Distinct => {
                scratch.clear();
                scratch.extend(self.live()[start..end].iter().map(|e| e.v));
                scratch.sort_unstable();
                scratch.dedup();
                Value::Int(scratch.len() as i64)
            }
            Agg::FirstSeen | Agg::LastSeen | Agg::Age | Agg::LastValue => Value::Null,
        }
    }

    /// Union of two keys' observations (e.g. two partitions of one stream).
    pub fn merge(&mut self, other: &ExactState, retention_ms: i64, max_entries: usize) {
        let mut all: Vec<Entry> = self.live().iter().chain(other.live().iter()).copied().collect();
        all.sort_by_key(|e| e.t);
        let base = self.cum_at(0);
        self.buf = all;
        self.head = 0;
        self.recompute_from(0, base);
        let newest = self.live().last().map_or(0, |e| e.t);
        self.evict_before(newest - retention_ms);
        let excess = self.len().saturating_sub(max_entries);
        self.pop_front(excess);
    }

    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<Entry>()
    }
}
