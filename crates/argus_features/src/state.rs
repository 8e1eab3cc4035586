//! The keyed state of every series, its update/read path, expiry, memory accounting and snapshots.

use crate::bucketed::{BucketState, Layout};
use crate::config::{Calendar, FeatureKind, FeatureSet, Out, SeriesMode};
use crate::exact::ExactState;
use crate::lifetime::LifeState;
use argus_event::time::{hour_of_day, weekday};
use argus_event::{Event, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are 128-bit XXH3 digests of the typed key tuple; this hasher just folds them.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.0 = (self.0 ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = (i as u64) ^ ((i >> 64) as u64);
    }
}

pub type KeyMap<V> = HashMap<u128, V, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Clone)]
enum Store {
    Exact(KeyMap<ExactState>),
    Bucketed(KeyMap<BucketState>),
    Lifetime(KeyMap<LifeState>),
}

/// Counters of defined treatments (never silent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateStats {
    /// Exact-window observations dropped because a key exceeded `max_entries`.
    pub exact_cap_evictions: u64,
    /// Bucketed observations older than the bucket ring (only possible for late events).
    pub bucket_too_old: u64,
    /// Keys removed by idle expiry.
    pub keys_expired: u64,
}

/// Memory used by one series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesMemory {
    pub series: usize,
    pub mode: &'static str,
    pub keys: usize,
    /// Bytes including the hash-map slot of each key.
    pub bytes: usize,
    pub features: usize,
}

/// All feature state.
#[derive(Debug, Clone)]
pub struct FeatureState {
    stores: Vec<Store>,
    layouts: Vec<Option<Layout>>,
    buf: Vec<u8>,
    scratch: Vec<i64>,
    pub stats: StateStats,
}

#[derive(Serialize, Deserialize)]
enum StoreSnap {
    Exact(Vec<(u128, ExactState)>),
    Bucketed(Vec<(u128, BucketState)>),
    Lifetime(Vec<(u128, LifeState)>),
}

#[derive(Serialize, Deserialize)]
struct Snap {
    stores: Vec<StoreSnap>,
    stats: StateStats,
}

/// A snapshot that does not fit the current configuration.
#[derive(Debug, thiserror::Error)]
#[error("feature state snapshot does not match the configuration: {0}")]
pub struct SnapshotMismatch(pub String);

fn sorted<V: Clone>(m: &KeyMap<V>) -> Vec<(u128, V)> {
    let mut v: Vec<(u128, V)> = m.iter().map(|(k, s)| (*k, s.clone())).collect();
    v.sort_unstable_by_key(|(k, _)| *k);
    v
}

impl FeatureState {
    pub fn new(fs: &FeatureSet) -> Self {
        let stores = fs
            .series
            .iter()
            .map(|s| match s.mode {
                SeriesMode::Exact { .. } => Store::Exact(KeyMap::default()),
                SeriesMode::Bucketed { .. } => Store::Bucketed(KeyMap::default()),
                SeriesMode::Lifetime { .. } => Store::Lifetime(KeyMap::default()),
            })
            .collect();
        let layouts = fs
            .series
            .iter()
            .map(|s| match s.mode {
                SeriesMode::Bucketed { width_ms, len, sum, minmax, distinct } => Some(Layout { width_ms, len, sum, minmax, distinct }),
                _ => None,
            })
            .collect();
        FeatureState { stores, layouts, buf: Vec::with_capacity(64), scratch: Vec::new(), stats: StateStats::default() }
    }

    /// Applies one event: updates every series it feeds (read-your-writes), then, when `out` is given
    /// (one slot per feature), reads every feature its type can compute at the event's time.
    /// Features the type cannot compute (missing key fields) are set to null.
    pub fn apply(&mut self, fs: &FeatureSet, ev: &Event, seq: u64, mut out: Option<&mut [Value]>) {
        let plan = &fs.plans[ev.ty as usize];
        if let Some(o) = out.as_deref_mut() {
            o.iter_mut().for_each(|v| *v = Value::Null);
        }
        let t = ev.time;
        for g in &plan.groups {
            let Some(key) = key_hash(&ev.fields, &g.key_slots, &mut self.buf) else { continue };
            let series = &fs.series[g.series];
            let update = match &g.update {
                Some((vslot, filter)) if filter.passes(&ev.fields) => match vslot {
                    None => Some((0i64, 0u64, &Value::Null)),
                    Some(s) => {
                        let v = &ev.fields[*s];
                        if v.is_null() {
                            None
                        } else {
                            let d = v.digest64();
                            let m = if series.value_numeric { v.as_micros().unwrap_or(0) } else { d as i64 };
                            Some((m, d, v))
                        }
                    }
                },
                _ => None,
            };
            match &mut self.stores[g.series] {
                Store::Exact(map) => {
                    let empty = ExactState::default();
                    let st: &ExactState = match update {
                        Some((m, _, _)) => {
                            let SeriesMode::Exact { retention_ms, max_entries } = series.mode else { continue };
                            let s = map.entry(key).or_default();
                            self.stats.exact_cap_evictions += s.insert(t, m, retention_ms, max_entries);
                            s
                        }
                        None => map.get(&key).unwrap_or(&empty),
                    };
                    if let Some(o) = out.as_deref_mut() {
                        // Readers of one window share its bounds (count and avg over 7d, say).
                        let mut cached: Option<((i64, i64), (usize, usize))> = None;
                        for (fi, r) in &g.readers {
                            let w = (r.window_ms, r.offset_ms);
                            let b = match cached {
                                Some((cw, b)) if cw == w => b,
                                _ => st.bounds(r, t),
                            };
                            cached = Some((w, b));
                            o[*fi] = st.read_range(r, b.0, b.1, &mut self.scratch);
                        }
                    }
                }
                Store::Bucketed(map) => {
                    let Some(l) = &self.layouts[g.series] else { continue };
                    if let Some((m, d, _)) = update {
                        if !map.entry(key).or_insert_with(|| BucketState::new(l, t)).insert(l, t, m, d) {
                            self.stats.bucket_too_old += 1;
                        }
                    }
                    if let Some(o) = out.as_deref_mut() {
                        let st = map.get(&key);
                        for (fi, r) in &g.readers {
                            o[*fi] = match st {
                                Some(s) => s.read(l, r, t),
                                None => BucketState::new(l, t).read(l, r, t),
                            };
                        }
                    }
                }
                Store::Lifetime(map) => {
                    if let Some((m, d, v)) = update {
                        let SeriesMode::Lifetime { distinct } = series.mode else { continue };
                        map.entry(key).or_insert_with(|| LifeState::new(distinct)).insert(t, m, d, v, seq);
                    }
                    if let Some(o) = out.as_deref_mut() {
                        let st = map.get(&key);
                        for (fi, r) in &g.readers {
                            o[*fi] = match st {
                                Some(s) => s.read(r, t, seq),
                                None => LifeState::new(false).read(r, t, seq),
                            };
                        }
                    }
                }
            }
        }
        let Some(o) = out else { return };
        for &fi in &plan.calendar {
            if let FeatureKind::Calendar { part, offset_ms } = fs.features[fi].kind {
                let h = hour_of_day(t, offset_ms);
                o[fi] = match part {
                    Calendar::IsWeekend => Value::Bool(weekday(t, offset_ms) >= 5),
                    Calendar::HourOfDay => Value::Int(h as i64),
                    Calendar::DayOfWeek => Value::Int(weekday(t, offset_ms) as i64),
                    Calendar::HourInRange(a, b) => Value::Bool(if a <= b { (a..=b).contains(&h) } else { h >= a || h <= b }),
                };
            }
        }
        for &(fi, slot) in &plan.fields {
            o[fi] = ev.fields[slot].clone();
        }
        for &fi in &plan.ratios {
            if let FeatureKind::Ratio { numerator, denominator } = fs.features[fi].kind {
                o[fi] = match (o[numerator].as_f64(), o[denominator].as_f64()) {
                    (Some(n), Some(d)) if d != 0.0 => Value::Float(n / d),
                    _ => Value::Null,
                };
            }
        }
        for (fi, f) in fs.features.iter().enumerate() {
            if o[fi].is_null() && !f.default.is_null() && feature_applies(fs, ev.ty as usize, fi) {
                o[fi] = f.default.clone();
            }
        }
    }

    /// Drops what can no longer be read: exact entries beyond retention, bucket rings wholly in the past,
    /// lifetime keys idle for `idle_ttl`. `watermark` is the newest event time seen.
    pub fn expire(&mut self, fs: &FeatureSet, watermark: i64) {
        let mut expired = 0u64;
        for (si, store) in self.stores.iter_mut().enumerate() {
            let layout = &self.layouts[si];
            let mut count = |before: usize, after: usize| expired += (before - after) as u64;
            match (store, &fs.series[si].mode) {
                (Store::Exact(m), SeriesMode::Exact { retention_ms, .. }) => {
                    let before = m.len();
                    m.retain(|_, s| {
                        s.evict_before(watermark - retention_ms);
                        !s.is_empty()
                    });
                    count(before, m.len());
                }
                (Store::Bucketed(m), SeriesMode::Bucketed { width_ms, len, .. }) => {
                    let horizon = watermark - width_ms * *len as i64;
                    if let Some(l) = layout {
                        let before = m.len();
                        m.retain(|_, s| s.newest_bucket_end(l) > horizon);
                        count(before, m.len());
                    }
                }
                (Store::Lifetime(m), _) => {
                    let before = m.len();
                    m.retain(|_, s| s.last_time() > watermark - fs.idle_ttl_ms);
                    count(before, m.len());
                }
                _ => {}
            }
        }
        self.stats.keys_expired += expired;
    }

    /// Serializes all state deterministically (keys sorted): equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let stores = self
            .stores
            .iter()
            .map(|s| match s {
                Store::Exact(m) => StoreSnap::Exact(sorted(m)),
                Store::Bucketed(m) => StoreSnap::Bucketed(sorted(m)),
                Store::Lifetime(m) => StoreSnap::Lifetime(sorted(m)),
            })
            .collect();
        bincode::serialize(&Snap { stores, stats: self.stats.clone() }).expect("serializing plain data to a Vec cannot fail")
    }

    /// Restores state written by [`snapshot`](Self::snapshot) under the same feature configuration.
    pub fn restore(fs: &FeatureSet, bytes: &[u8]) -> Result<Self, SnapshotMismatch> {
        let snap: Snap = bincode::deserialize(bytes).map_err(|e| SnapshotMismatch(format!("undecodable: {e}")))?;
        let mut st = FeatureState::new(fs);
        if snap.stores.len() != st.stores.len() {
            return Err(SnapshotMismatch(format!("{} series in the snapshot, {} configured", snap.stores.len(), st.stores.len())));
        }
        for (i, s) in snap.stores.into_iter().enumerate() {
            st.stores[i] = match (s, &st.stores[i]) {
                (StoreSnap::Exact(v), Store::Exact(_)) => Store::Exact(v.into_iter().collect()),
                (StoreSnap::Bucketed(v), Store::Bucketed(_)) => Store::Bucketed(v.into_iter().collect()),
                (StoreSnap::Lifetime(v), Store::Lifetime(_)) => Store::Lifetime(v.into_iter().collect()),
                _ => return Err(SnapshotMismatch(format!("series {i} has another window mode"))),
            };
        }
        st.stats = snap.stats;
        Ok(st)
    }

    /// Merges another state of the same configuration into this one (e.g. two partitions of a stream).
    pub fn merge(&mut self, fs: &FeatureSet, other: &FeatureState) {
        for (si, (a, b)) in self.stores.iter_mut().zip(other.stores.iter()).enumerate() {
            match (a, b, &fs.series[si].mode) {
                (Store::Exact(a), Store::Exact(b), SeriesMode::Exact { retention_ms, max_entries }) => {
                    for (k, s) in b {
                        a.entry(*k).or_default().merge(s, *retention_ms, *max_entries);
                    }
                }
                (Store::Bucketed(a), Store::Bucketed(b), _) => {
                    if let Some(l) = &self.layouts[si] {
                        for (k, s) in b {
                            match a.get_mut(k) {
                                Some(x) => x.merge(l, s),
                                None => {
                                    a.insert(*k, s.clone());
                                }
                            }
                        }
                    }
                }
                (Store::Lifetime(a), Store::Lifetime(b), _) => {
                    for (k, s) in b {
                        match a.get_mut(k) {
                            Some(x) => x.merge(s),
                            None => {
                                a.insert(*k, s.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Keys and bytes per series (hash-map slots included).
    pub fn memory(&self, fs: &FeatureSet) -> Vec<SeriesMemory> {
        let per_feature = |si: usize| {
            fs.features.iter().filter(|f| matches!(f.kind, FeatureKind::Series { series, .. } if series == si)).count()
        };
        self.stores
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let (mode, keys, bytes) = match s {
                    Store::Exact(m) => ("exact", m.len(), slot_bytes::<ExactState>(m.capacity()) + m.values().map(|s| s.heap_bytes()).sum::<usize>()),
                    Store::Bucketed(m) => ("bucketed", m.len(), slot_bytes::<BucketState>(m.capacity()) + m.values().map(|s| s.heap_bytes()).sum::<usize>()),
                    Store::Lifetime(m) => ("lifetime", m.len(), slot_bytes::<LifeState>(m.capacity()) + m.values().map(|s| s.heap_bytes()).sum::<usize>()),
                };
                SeriesMemory { series: si, mode, keys, bytes, features: per_feature(si) }
            })
            .collect()
    }

    /// Number of keys held across all series.
    pub fn key_count(&self) -> usize {
        self.stores
            .iter()
            .map(|s| match s {
                Store::Exact(m) => m.len(),
                Store::Bucketed(m) => m.len(),
                Store::Lifetime(m) => m.len(),
            })
            .sum()
    }
}

fn slot_bytes<V>(capacity: usize) -> usize {
    // hashbrown: one control byte per bucket plus the (key, value) pair.
    capacity * (1 + std::mem::size_of::<(u128, V)>())
}

fn feature_applies(fs: &FeatureSet, ty: usize, fi: usize) -> bool {
    let plan = &fs.plans[ty];
    plan.calendar.contains(&fi) || plan.ratios.contains(&fi) || plan.fields.iter().any(|(f, _)| *f == fi) || plan.groups.iter().any(|g| g.readers.iter().any(|(f, _)| *f == fi))
}

/// Digest of the key tuple; `None` when a key field is absent.
fn key_hash(fields: &[Value], slots: &[usize], buf: &mut Vec<u8>) -> Option<u128> {
    buf.clear();
    for &s in slots {
        let v = &fields[s];
        if v.is_null() {
            return None;
        }
        v.encode_key(buf);
    }
    Some(xxhash_rust::xxh3::xxh3_128(buf))
}

/// Output conversion of micro-units.
pub fn out_value(micros: i64, out: Out) -> Value {
    let scale = argus_event::value::DEC_SCALE;
    match out {
        Out::Int | Out::Bool => Value::Int(micros / scale),
        Out::Dec => Value::Dec(micros),
        Out::Float => Value::Float(micros as f64 / scale as f64),
        Out::Time => Value::Time(micros / scale),
        Out::Str => Value::Null,
    }
}
