//! The keyed state of every series, its update/read path, expiry, memory accounting and snapshots.

use crate::bucketed::{BucketState, Layout};
use crate::config::{Agg, Calendar, FeatureKind, FeatureSet, Out, Reader, SeriesMode};
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
    fn write_i64(&mut self, i: i64) {
        self.0 = (i as u64 ^ 0x5851_F42D_4C95_7F2D)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = (i as u64) ^ ((i >> 64) as u64);
    }
}

pub type KeyMap<V> = HashMap<u128, V, BuildHasherDefault<KeyHasher>>;

/// The state of one series for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
enum Slot {
    /// Nothing observed (or everything expired).
    #[default]
    Empty,
    Exact(ExactState),
    Bucketed(BucketState),
    Lifetime(Box<LifeState>),
}

/// One key's state for every series of an entity (key spec), in one allocation.
type Record = Box<[Slot]>;

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

/// Memory used by the records of one entity (key spec).
#[derive(Debug, Clone, Serialize)]
pub struct EntityMemory {
    pub key: Vec<String>,
    pub keys: usize,
    /// Bytes: hash-map slots, records and the heap of every series state (allocator overhead excluded).
    pub bytes: usize,
    pub series: usize,
    pub features: usize,
}

/// All feature state: one map per entity, from 128-bit key digest to the key's record.
#[derive(Debug, Clone)]
pub struct FeatureState {
    maps: Vec<KeyMap<Record>>,
    layouts: Vec<Option<Layout>>,
    buf: Vec<u8>,
    scratch: crate::exact::Scratch,
    updates: Vec<Option<(i64, u64)>>,
    pub stats: StateStats,
    /// While an incremental copy is in progress: the keys changed since it began.
    tracking: Option<Tracking>,
}

type KeySet = std::collections::HashSet<u128, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Clone, Default)]
struct Tracking {
    /// Per entity, keys whose record was created, changed or removed since the copy began.
    dirty: Vec<KeySet>,
    /// An expiry sweep ran: it may change every record, so the copy starts again.
    swept: bool,
}

/// An incremental copy of a [`FeatureState`] in progress: the keys present when it began, how far it
/// has got, and the records copied so far.
#[derive(Debug)]
pub struct StateCopy {
    keys: Vec<Vec<u128>>,
    entity: usize,
    pos: usize,
    maps: Vec<KeyMap<Record>>,
}

/// An expiry sweep ran during an incremental copy; the copy must start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an expiry sweep ran during the copy")]
pub struct CopyAborted;

#[derive(Serialize, Deserialize)]
struct Snap {
    maps: Vec<Vec<(u128, Record)>>,
    stats: StateStats,
}

/// [`Snap`] over borrowed records: the same bytes, without copying the state to write it.
#[derive(Serialize)]
struct SnapRef<'a> {
    maps: Vec<Vec<(u128, &'a Record)>>,
    stats: &'a StateStats,
}

/// A snapshot that does not fit the current configuration.
#[derive(Debug, thiserror::Error)]
#[error("feature state snapshot does not match the configuration: {0}")]
pub struct SnapshotMismatch(pub String);

impl FeatureState {
    pub fn new(fs: &FeatureSet) -> Self {
        let layouts = fs
            .series
            .iter()
            .map(|s| match s.mode {
                SeriesMode::Bucketed {
                    width_ms,
                    len,
                    sum,
                    minmax,
                    distinct,
                } => Some(Layout {
                    width_ms,
                    len,
                    sum,
                    minmax,
                    distinct,
                }),
                _ => None,
            })
            .collect();
        FeatureState {
            maps: fs.entities.iter().map(|_| KeyMap::default()).collect(),
            layouts,
            buf: Vec::with_capacity(64),
            scratch: Default::default(),
            updates: Vec::new(),
            stats: StateStats::default(),
            tracking: None,
        }
    }

    /// Starts an incremental copy (for a snapshot taken while events keep arriving): lists the keys
    /// (16 bytes each) and from now on records which keys change. [`copy_step`](Self::copy_step)
    /// copies a bounded number of records between events; [`finish_copy`](Self::finish_copy) copies
    /// the keys changed meanwhile again, so the copy equals the state at the time it finishes.
    pub fn begin_copy(&mut self) -> StateCopy {
        self.tracking = Some(Tracking {
            dirty: vec![KeySet::default(); self.maps.len()],
            swept: false,
        });
        StateCopy {
            keys: self
                .maps
                .iter()
                .map(|m| m.keys().copied().collect())
                .collect(),
            entity: 0,
            pos: 0,
            maps: self
                .maps
                .iter()
                .map(|m| KeyMap::with_capacity_and_hasher(m.len(), Default::default()))
                .collect(),
        }
    }

    /// Copies up to `budget` more records. `Ok(true)` when every key listed at the start has been
    /// visited; `Err` when an expiry sweep ran since the copy began.
    pub fn copy_step(&mut self, c: &mut StateCopy, budget: usize) -> Result<bool, CopyAborted> {
        if self.tracking.as_ref().is_none_or(|t| t.swept) {
            self.tracking = None;
            return Err(CopyAborted);
        }
        let mut n = 0;
        while c.entity < c.keys.len() {
            let (keys, map, out) = (
                &c.keys[c.entity],
                &self.maps[c.entity],
                &mut c.maps[c.entity],
            );
            while c.pos < keys.len() && n < budget {
                let k = keys[c.pos];
                if let Some(r) = map.get(&k) {
                    out.insert(k, r.clone());
                }
                c.pos += 1;
                n += 1;
            }
            if c.pos < keys.len() {
                return Ok(false);
            }
            c.entity += 1;
            c.pos = 0;
        }
        Ok(true)
    }

    /// Completes the copy: the rest of the listed keys, then every key changed since the copy began.
    /// The result is equal to this state now (same snapshot bytes).
    pub fn finish_copy(&mut self, mut c: StateCopy) -> Result<FeatureState, CopyAborted> {
        while !self.copy_step(&mut c, usize::MAX)? {}
        let t = self.tracking.take().ok_or(CopyAborted)?;
        for (e, dirty) in t.dirty.iter().enumerate() {
            for k in dirty {
                match self.maps[e].get(k) {
                    Some(r) => c.maps[e].insert(*k, r.clone()),
                    None => c.maps[e].remove(k),
                };
            }
        }
        Ok(FeatureState {
            maps: c.maps,
            layouts: self.layouts.clone(),
            buf: Vec::with_capacity(64),
            scratch: Default::default(),
            updates: Vec::new(),
            stats: self.stats.clone(),
            tracking: None,
        })
    }

    /// Applies one event: updates every series it feeds (read-your-writes), then, when `out` is given
    /// (one slot per feature), reads every feature its type can compute at the event's time.
    /// Features the type cannot compute (missing key fields) are set to null.
    pub fn apply(&mut self, fs: &FeatureSet, ev: &Event, seq: u64, out: Option<&mut [Value]>) {
        self.apply_inner(fs, ev, seq, out, true);
    }

    /// Reads every feature `ev`'s type can compute at its time, as [`apply`](Self::apply) would, without
    /// updating any series or creating any key (the entity API's view of an entity).
    pub fn peek(&mut self, fs: &FeatureSet, ev: &Event, seq: u64, out: &mut [Value]) {
        self.apply_inner(fs, ev, seq, Some(out), false);
    }

    fn apply_inner(
        &mut self,
        fs: &FeatureSet,
        ev: &Event,
        seq: u64,
        mut out: Option<&mut [Value]>,
        update: bool,
    ) {
        let plan = &fs.plans[ev.ty as usize];
        if let Some(o) = out.as_deref_mut() {
            o.iter_mut().for_each(|v| *v = Value::Null);
        }
        let t = ev.time;
        for ep in &plan.entities {
            let Some(key) = key_hash(&ev.fields, &ep.key_slots, ep.seed, &mut self.buf) else {
                continue;
            };
            // What each series of this entity receives from the event (filter passed, value present).
            let mut updates = std::mem::take(&mut self.updates);
            updates.clear();
            updates.resize(ep.groups.len(), None);
            let mut any = false;
            for (gi, g) in ep.groups.iter().enumerate().filter(|_| update) {
                let Some((vslot, filter)) = &g.update else {
                    continue;
                };
                if !filter.passes(&ev.fields) {
                    continue;
                }
                let u = match vslot {
                    None => Some((0, 0)),
                    Some(s) => {
                        let v = &ev.fields[*s];
                        (!v.is_null()).then(|| {
                            let d = v.digest64();
                            (
                                if fs.series[g.series].value_numeric {
                                    v.as_micros().unwrap_or(0)
                                } else {
                                    d as i64
                                },
                                d,
                            )
                        })
                    }
                };
                any |= u.is_some();
                updates[gi] = u;
            }
            if any {
                if let Some(t) = self.tracking.as_mut() {
                    t.dirty[ep.entity].insert(key);
                }
            }
            let map = &mut self.maps[ep.entity];
            let record: Option<&mut Record> = if any {
                let n = fs.entities[ep.entity].series.len();
                Some(
                    map.entry(key)
                        .or_insert_with(|| vec![Slot::Empty; n].into_boxed_slice()),
                )
            } else {
                map.get_mut(&key)
            };
            let Some(record) = record else {
                // Unknown key: every read sees empty state.
                if let Some(o) = out.as_deref_mut() {
                    for g in &ep.groups {
                        for (fi, r) in &g.readers {
                            o[*fi] = read_empty(r);
                        }
                    }
                }
                self.updates = updates;
                continue;
            };
            for (gi, g) in ep.groups.iter().enumerate() {
                let series = &fs.series[g.series];
                let slot = &mut record[series.pos];
                if let Some((m, d)) = updates[gi] {
                    match (&series.mode, &mut *slot) {
                        (SeriesMode::Exact { .. }, Slot::Empty) => {
                            *slot = Slot::Exact(ExactState::default())
                        }
                        (SeriesMode::Bucketed { .. }, Slot::Empty) => {
                            if let Some(l) = &self.layouts[g.series] {
                                *slot = Slot::Bucketed(BucketState::new(l, t));
                            }
                        }
                        (SeriesMode::Lifetime { distinct }, Slot::Empty) => {
                            *slot = Slot::Lifetime(Box::new(LifeState::new(*distinct)))
                        }
                        _ => {}
                    }
                    match (&series.mode, &mut *slot) {
                        (
                            SeriesMode::Exact {
                                retention_ms,
                                max_entries,
                            },
                            Slot::Exact(st),
                        ) => {
                            self.stats.exact_cap_evictions +=
                                st.insert(t, m, *retention_ms, *max_entries);
                        }
                        (SeriesMode::Bucketed { .. }, Slot::Bucketed(st)) => {
                            if let Some(l) = &self.layouts[g.series] {
                                if !st.insert(l, t, m, d) {
                                    self.stats.bucket_too_old += 1;
                                }
                            }
                        }
                        (SeriesMode::Lifetime { .. }, Slot::Lifetime(st)) => {
                            let v = g
                                .update
                                .as_ref()
                                .and_then(|(vs, _)| vs.map(|s| &ev.fields[s]))
                                .unwrap_or(&Value::Null);
                            st.insert(t, m, d, v, seq);
                        }
                        _ => {}
                    }
                }
                let Some(o) = out.as_deref_mut() else {
                    continue;
                };
                match &*slot {
                    Slot::Exact(st) => {
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
                    Slot::Bucketed(st) => {
                        if let Some(l) = &self.layouts[g.series] {
                            for (fi, r) in &g.readers {
                                o[*fi] = st.read(l, r, t);
                            }
                        }
                    }
                    Slot::Lifetime(st) => {
                        for (fi, r) in &g.readers {
                            o[*fi] = st.read(r, t, seq);
                        }
                    }
                    Slot::Empty => {
                        for (fi, r) in &g.readers {
                            o[*fi] = read_empty(r);
                        }
                    }
                }
            }
            self.updates = updates;
        }
        let Some(o) = out else { return };
        for &fi in &plan.calendar {
            if let FeatureKind::Calendar { part, offset_ms } = fs.features[fi].kind {
                let h = hour_of_day(t, offset_ms);
                o[fi] = match part {
                    Calendar::IsWeekend => Value::Bool(weekday(t, offset_ms) >= 5),
                    Calendar::HourOfDay => Value::Int(h as i64),
                    Calendar::DayOfWeek => Value::Int(weekday(t, offset_ms) as i64),
                    Calendar::HourInRange(a, b) => Value::Bool(if a <= b {
                        (a..=b).contains(&h)
                    } else {
                        h >= a || h <= b
                    }),
                };
            }
        }
        for &(fi, slot) in &plan.fields {
            o[fi] = ev.fields[slot].clone();
        }
        // Defaults first for the operands of ratios, then again for the ratios themselves.
        for &fi in &plan.defaults {
            if o[fi].is_null() {
                o[fi] = fs.features[fi].default.clone();
            }
        }
        for &fi in &plan.ratios {
            if let FeatureKind::Ratio {
                numerator,
                denominator,
            } = fs.features[fi].kind
            {
                o[fi] = match (o[numerator].as_f64(), o[denominator].as_f64()) {
                    (Some(n), Some(d)) if d != 0.0 => Value::Float(n / d),
                    _ => Value::Null,
                };
            }
        }
        for &fi in &plan.defaults {
            if o[fi].is_null() {
                o[fi] = fs.features[fi].default.clone();
            }
        }
    }

    /// Drops what can no longer be read: exact entries beyond retention, bucket rings wholly in the past,
    /// lifetime state idle for `idle_ttl`; a key whose series are all empty is removed. `watermark` is
    /// the newest event time seen.
    pub fn expire(&mut self, fs: &FeatureSet, watermark: i64) {
        if let Some(t) = self.tracking.as_mut() {
            t.swept = true;
        }
        let mut expired = 0u64;
        let layouts = &self.layouts;
        for (ei, map) in self.maps.iter_mut().enumerate() {
            let series = &fs.entities[ei].series;
            let before = map.len();
            map.retain(|_, rec| {
                let mut live = false;
                for (pos, slot) in rec.iter_mut().enumerate() {
                    let si = series[pos];
                    let keep = match (&fs.series[si].mode, &mut *slot) {
                        (SeriesMode::Exact { retention_ms, .. }, Slot::Exact(st)) => {
                            st.evict_before(watermark - retention_ms);
                            !st.is_empty()
                        }
                        (SeriesMode::Bucketed { width_ms, len, .. }, Slot::Bucketed(st)) => {
                            match &layouts[si] {
                                Some(l) => {
                                    st.newest_bucket_end(l) > watermark - width_ms * *len as i64
                                }
                                None => false,
                            }
                        }
                        (SeriesMode::Lifetime { .. }, Slot::Lifetime(st)) => {
                            st.last_time() > watermark - fs.idle_ttl_ms
                        }
                        _ => false,
                    };
                    if !keep {
                        *slot = Slot::Empty;
                    }
                    live |= keep;
                }
                live
            });
            expired += (before - map.len()) as u64;
        }
        self.stats.keys_expired += expired;
    }

    /// Serializes all state deterministically (keys sorted): equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        bincode::serialize(&self.snap_ref()).expect("serializing plain data to a Vec cannot fail")
    }

    fn snap_ref(&self) -> SnapRef<'_> {
        SnapRef {
            maps: self
                .maps
                .iter()
                .map(|m| {
                    let mut v: Vec<(u128, &Record)> = m.iter().map(|(k, r)| (*k, r)).collect();
                    v.sort_unstable_by_key(|(k, _)| *k);
                    v
                })
                .collect(),
            stats: &self.stats,
        }
    }

    /// The bytes of [`snapshot`](Self::snapshot) as a length-prefixed byte string (bincode's encoding
    /// of a `Vec<u8>`: a u64 length, then the bytes), written to `w` as they are encoded: the records
    /// are borrowed, never copied or buffered whole.
    pub fn write_snapshot_prefixed(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let r = self.snap_ref();
        let n = bincode::serialized_size(&r).map_err(std::io::Error::other)?;
        w.write_all(&n.to_le_bytes())?;
        bincode::serialize_into(w, &r).map_err(std::io::Error::other)
    }

    /// Restores state written by [`snapshot`](Self::snapshot) under the same feature configuration.
    pub fn restore(fs: &FeatureSet, bytes: &[u8]) -> Result<Self, SnapshotMismatch> {
        let snap: Snap = bincode::deserialize(bytes)
            .map_err(|e| SnapshotMismatch(format!("undecodable: {e}")))?;
        let mut st = FeatureState::new(fs);
        if snap.maps.len() != st.maps.len() {
            return Err(SnapshotMismatch(format!(
                "{} entities in the snapshot, {} configured",
                snap.maps.len(),
                st.maps.len()
            )));
        }
        for (ei, entries) in snap.maps.into_iter().enumerate() {
            let series = &fs.entities[ei].series;
            for (k, rec) in &entries {
                if rec.len() != series.len() {
                    return Err(SnapshotMismatch(format!(
                        "entity {ei}: {} series in the snapshot, {} configured",
                        rec.len(),
                        series.len()
                    )));
                }
                for (pos, slot) in rec.iter().enumerate() {
                    let ok = matches!(
                        (&fs.series[series[pos]].mode, slot),
                        (_, Slot::Empty)
                            | (SeriesMode::Exact { .. }, Slot::Exact(_))
                            | (SeriesMode::Bucketed { .. }, Slot::Bucketed(_))
                            | (SeriesMode::Lifetime { .. }, Slot::Lifetime(_))
                    );
                    if !ok {
                        return Err(SnapshotMismatch(format!(
                            "key {k:x}: series {} has another window mode",
                            series[pos]
                        )));
                    }
                }
            }
            st.maps[ei] = entries.into_iter().collect();
        }
        st.stats = snap.stats;
        Ok(st)
    }

    /// Merges another state of the same configuration into this one (e.g. two partitions of a stream).
    pub fn merge(&mut self, fs: &FeatureSet, other: &FeatureState) {
        if let Some(t) = self.tracking.as_mut() {
            t.swept = true;
        }
        for (ei, (a, b)) in self.maps.iter_mut().zip(other.maps.iter()).enumerate() {
            let series = &fs.entities[ei].series;
            for (k, rb) in b {
                let ra = a
                    .entry(*k)
                    .or_insert_with(|| vec![Slot::Empty; series.len()].into_boxed_slice());
                for (pos, (sa, sb)) in ra.iter_mut().zip(rb.iter()).enumerate() {
                    let si = series[pos];
                    match (&fs.series[si].mode, &mut *sa, sb) {
                        (_, _, Slot::Empty) => {}
                        (_, Slot::Empty, other) => *sa = other.clone(),
                        (
                            SeriesMode::Exact {
                                retention_ms,
                                max_entries,
                            },
                            Slot::Exact(x),
                            Slot::Exact(y),
                        ) => x.merge(y, *retention_ms, *max_entries),
                        (SeriesMode::Bucketed { .. }, Slot::Bucketed(x), Slot::Bucketed(y)) => {
                            if let Some(l) = &self.layouts[si] {
                                x.merge(l, y)
                            }
                        }
                        (_, Slot::Lifetime(x), Slot::Lifetime(y)) => x.merge(y),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Keys and bytes per entity (hash-map slots, records and series heaps).
    pub fn memory(&self, fs: &FeatureSet) -> Vec<EntityMemory> {
        self.maps
            .iter()
            .enumerate()
            .map(|(ei, m)| {
                let ent = &fs.entities[ei];
                let slot = m.capacity() * (1 + std::mem::size_of::<(u128, Record)>());
                let records: usize = m
                    .values()
                    .map(|r| {
                        r.len() * std::mem::size_of::<Slot>()
                            + r.iter()
                                .map(|s| match s {
                                    Slot::Empty => 0,
                                    Slot::Exact(x) => x.heap_bytes(),
                                    Slot::Bucketed(x) => x.heap_bytes(),
                                    Slot::Lifetime(x) => std::mem::size_of::<LifeState>() + x.heap_bytes(),
                                })
                                .sum::<usize>()
                    })
                    .sum();
                let features = fs
                    .features
                    .iter()
                    .filter(|f| matches!(f.kind, FeatureKind::Series { series, .. } if fs.series[series].entity == ei))
                    .count();
                EntityMemory { key: ent.key.clone(), keys: m.len(), bytes: slot + records, series: ent.series.len(), features }
            })
            .collect()
    }

    /// Number of keys held across all entities.
    pub fn key_count(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }
}

/// What a read of a key with no observations returns: zero counts and sums, null otherwise.
fn read_empty(r: &Reader) -> Value {
    match r.agg {
        Agg::Count | Agg::Distinct => Value::Int(0),
        Agg::Sum => out_value(0, r.out),
        _ => Value::Null,
    }
}

/// Digest of the key tuple; `None` when a key field is absent.
fn key_hash(fields: &[Value], slots: &[usize], seed: u64, buf: &mut Vec<u8>) -> Option<u128> {
    buf.clear();
    for &s in slots {
        let v = &fields[s];
        if v.is_null() {
            return None;
        }
        v.encode_key(buf);
    }
    Some(xxhash_rust::xxh3::xxh3_128_with_seed(buf, seed))
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
