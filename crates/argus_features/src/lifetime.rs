//! Lifetime accumulators: one per key, over its whole (unexpired) history.

use crate::config::{Agg, Reader};
use crate::out_value;
use crate::sketch::DistinctSketch;
use argus_event::Value;
use serde::{Deserialize, Serialize};

const NONE: i64 = i64::MIN;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifeState {
    count: u64,
    sum: i64,
    min: i64,
    max: i64,
    first_t: i64,
    last_t: i64,
    /// Time and value of the observation before the newest: what "previous" means for the newest event.
    prev_t: i64,
    last_seq: u64,
    last_v: Value,
    prev_v: Value,
    sketch: Option<DistinctSketch>,
}

impl LifeState {
    pub fn new(distinct: bool) -> Self {
        LifeState {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
            first_t: NONE,
            last_t: NONE,
            prev_t: NONE,
            last_seq: u64::MAX,
            last_v: Value::Null,
            prev_v: Value::Null,
            sketch: distinct.then(DistinctSketch::default),
        }
    }

    pub fn insert(&mut self, t: i64, v: i64, digest: u64, value: &Value, seq: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if self.first_t == NONE || t < self.first_t {
            self.first_t = t;
        }
        if self.last_t == NONE || t >= self.last_t {
            self.prev_t = self.last_t;
            self.prev_v = std::mem::replace(&mut self.last_v, value.clone());
            self.last_t = t;
            self.last_seq = seq;
        }
        if let Some(s) = &mut self.sketch {
            s.insert(digest);
        }
    }

    pub fn last_time(&self) -> i64 {
        self.last_t
    }

    /// Reads at time `t` for the event with sequence number `seq` ("previous" excludes that event).
    pub fn read(&self, r: &Reader, t: i64, seq: u64) -> Value {
        let own = self.last_seq == seq;
        let time = |x: i64| {
            if x == NONE {
                Value::Null
            } else {
                Value::Time(x)
            }
        };
        match r.agg {
            Agg::Count => Value::Int(self.count as i64),
            Agg::Sum => out_value(self.sum, r.out),
            Agg::Avg | Agg::Min | Agg::Max if self.count == 0 => Value::Null,
            Agg::Avg => Value::Float(
                self.sum as f64 / self.count as f64 / argus_event::value::DEC_SCALE as f64,
            ),
            Agg::Min => out_value(self.min, r.out),
            Agg::Max => out_value(self.max, r.out),
            Agg::Distinct => Value::Int(self.sketch.as_ref().map_or(0, |s| s.estimate() as i64)),
            Agg::FirstSeen => time(self.first_t),
            Agg::LastSeen => time(if own { self.prev_t } else { self.last_t }),
            Agg::Age if self.first_t == NONE => Value::Null,
            Agg::Age => Value::Int((t - self.first_t).max(0) / 1000),
            Agg::SinceLast => {
                let prev = if own { self.prev_t } else { self.last_t };
                if prev == NONE {
                    Value::Null
                } else {
                    Value::Int((t - prev).max(0) / 1000)
                }
            }
            Agg::LastValue => {
                if own {
                    self.prev_v.clone()
                } else {
                    self.last_v.clone()
                }
            }
        }
    }

    /// Union with the state of another partition of the same key.
    pub fn merge(&mut self, o: &LifeState) {
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if o.first_t != NONE && (self.first_t == NONE || o.first_t < self.first_t) {
            self.first_t = o.first_t;
        }
        if o.last_t != NONE && (self.last_t == NONE || o.last_t > self.last_t) {
            let (pt, pv) = if self.last_t != NONE && self.last_t > o.prev_t {
                (self.last_t, self.last_v.clone())
            } else {
                (o.prev_t, o.prev_v.clone())
            };
            self.prev_t = pt;
            self.prev_v = pv;
            self.last_t = o.last_t;
            self.last_v = o.last_v.clone();
            self.last_seq = o.last_seq;
        } else if o.last_t != NONE && o.last_t > self.prev_t {
            self.prev_t = o.last_t;
            self.prev_v = o.last_v.clone();
        }
        match (&mut self.sketch, &o.sketch) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.sketch = Some(b.clone()),
            _ => {}
        }
    }

    pub fn heap_bytes(&self) -> usize {
        let s = |v: &Value| if let Value::Str(s) = v { s.len() } else { 0 };
        s(&self.last_v) + s(&self.prev_v) + self.sketch.as_ref().map_or(0, |k| k.heap_bytes())
    }
}
