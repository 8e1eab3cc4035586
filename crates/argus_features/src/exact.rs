//! Exact sliding windows: every observation kept (time, value, running sum), sorted by time.
//! Reads binary-search the window bounds: count and sum in O(log n), min/max/distinct scan the window.

use crate::config::{Agg, Reader};
use crate::out_value;
use argus_event::Value;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    t: i64,
    /// Micro-units for numeric series, a 64-bit digest otherwise.
    v: i64,
    /// Wrapping running sum of `v` up to and including this entry; window sums are differences, exact
    /// whenever the true window sum fits in i64.
    cum: i64,
}

/// Observations of one key, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactState {
    entries: VecDeque<Entry>,
}

impl ExactState {
    /// Adds an observation, keeping time order, then drops entries older than `retention_ms` before the
    /// newest and beyond `max_entries`. Returns how many entries the cap dropped.
    pub fn insert(&mut self, t: i64, v: i64, retention_ms: i64, max_entries: usize) -> u64 {
        match self.entries.back() {
            Some(last) if last.t > t => {
                let pos = self.entries.partition_point(|e| e.t <= t);
                self.entries.insert(pos, Entry { t, v, cum: 0 });
                self.recompute_from(pos);
            }
            _ => {
                let cum = self.cum_at(self.entries.len()).wrapping_add(v);
                self.entries.push_back(Entry { t, v, cum });
            }
        }
        let newest = self.entries.back().map_or(t, |e| e.t);
        self.evict_before(newest - retention_ms);
        let mut capped = 0;
        while self.entries.len() > max_entries {
            self.entries.pop_front();
            capped += 1;
        }
        capped
    }

    /// Drops entries with time ≤ `cutoff`.
    pub fn evict_before(&mut self, cutoff: i64) {
        while self.entries.front().is_some_and(|e| e.t <= cutoff) {
            self.entries.pop_front();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn cum_at(&self, i: usize) -> i64 {
        if i == 0 {
            self.entries.front().map_or(0, |e| e.cum.wrapping_sub(e.v))
        } else {
            self.entries[i - 1].cum
        }
    }

    fn recompute_from(&mut self, pos: usize) {
        let mut acc = self.cum_at(pos);
        for e in self.entries.range_mut(pos..) {
            acc = acc.wrapping_add(e.v);
            e.cum = acc;
        }
    }

    /// Reads an aggregate over (t − offset − window, t − offset].
    pub fn read(&self, r: &Reader, t: i64, scratch: &mut Vec<i64>) -> Value {
        let hi = t - r.offset_ms;
        let lo = hi - r.window_ms;
        let start = self.entries.partition_point(|e| e.t <= lo);
        let end = self.entries.partition_point(|e| e.t <= hi);
        let n = end.saturating_sub(start);
        let sum = || self.cum_at(end).wrapping_sub(self.cum_at(start));
        match r.agg {
            Agg::Count => Value::Int(n as i64),
            Agg::Sum => out_value(sum(), r.out),
            Agg::Avg if n == 0 => Value::Null,
            Agg::Avg => Value::Float(sum() as f64 / n as f64 / argus_event::value::DEC_SCALE as f64),
            Agg::Min | Agg::Max if n == 0 => Value::Null,
            Agg::Min => out_value(self.entries.range(start..end).map(|e| e.v).min().unwrap_or(0), r.out),
            Agg::Max => out_value(self.entries.range(start..end).map(|e| e.v).max().unwrap_or(0), r.out),
            Agg::Distinct => {
                scratch.clear();
                scratch.extend(self.entries.range(start..end).map(|e| e.v));
                scratch.sort_unstable();
                scratch.dedup();
                Value::Int(scratch.len() as i64)
            }
            Agg::FirstSeen | Agg::LastSeen | Agg::Age | Agg::LastValue => Value::Null,
        }
    }

    /// Union of two keys' observations (e.g. two partitions of one stream).
    pub fn merge(&mut self, other: &ExactState, retention_ms: i64, max_entries: usize) {
        let mut all: Vec<Entry> = self.entries.iter().chain(other.entries.iter()).copied().collect();
        all.sort_by_key(|e| e.t);
        let base = self.cum_at(0);
        self.entries = all.into();
        if let Some(f) = self.entries.front_mut() {
            f.cum = base.wrapping_add(f.v);
        }
        self.recompute_from(0);
        let newest = self.entries.back().map_or(0, |e| e.t);
        self.evict_before(newest - retention_ms);
        while self.entries.len() > max_entries {
            self.entries.pop_front();
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}
