//! The keyed state of every series, split into partitions by key: the update/read path, incremental
//! expiry, memory accounting and deterministic snapshots.
//!
//! Every key (an entity's 128-bit key digest) belongs to one partition, chosen by [`partition_of`].
//! A key's state depends only on the events of that key, the sequence numbers and the watermark they
//! carry, so the partitions can be applied on different threads ([`FeatureState::split`]) and the
//! result does not depend on their number. Snapshots are written in one canonical order (every key of
//! an entity, sorted, whatever partition holds it), so a snapshot taken with one partition count
//! restores with any other.
//!
//! Expiry is incremental. A series' state is *dead* once the watermark has passed its horizon (an exact
//! window's newest entry plus its retention, a bucket ring's newest bucket plus its span, a lifetime
//! accumulator's last event plus `idle_ttl`). A dead slot reads as empty and is reset before it is
//! updated, whenever that happens; a key whose slots are all dead is removed from memory by a
//! per-partition queue ordered by the time the key can first be dead, a bounded number of keys per
//! event. Removal never changes an answer, so its timing (and the partition count) does not either,
//! and replay costs O(events), not sweeps × live keys.

use crate::bucketed::{BucketState, Layout};
use crate::config::{Agg, Calendar, EntityPlan, FeatureKind, FeatureSet, Out, Reader, SeriesMode};
use crate::exact::ExactState;
use crate::lifetime::LifeState;
use argus_event::time::{hour_of_day, weekday};
use argus_event::{Event, Value};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
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

/// The partition (of `n`) that owns a key digest. Mixes bits 32..96 of the digest, so that the bits the
/// hash maps use (the folded halves) stay independent of the partition.
pub fn partition_of(key: u128, n: usize) -> usize {
    let h = ((key >> 32) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h as u128 * n as u128) >> 64) as usize
}

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

/// The bytes of a [`Slot`], one per series per key (the layout test in `exact.rs`).
#[cfg(test)]
pub(crate) fn slot_bytes() -> usize {
    std::mem::size_of::<Slot>()
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
    /// Lifetime states dropped because their key was idle for `idle_ttl` (counted when the state is
    /// reset at the key's next event, or leaves memory with its key): for those keys `first_seen`,
    /// `age`, `last_value` and lifetime counts start afresh. Like `keys_expired`, counted since this
    /// state was created or restored, and not part of the state's meaning.
    pub lifetime_dropped: u64,
    /// Keys removed from memory by expiry since this state was created or restored (not part of the
    /// state's meaning: when a dead key leaves memory never changes an answer).
    pub keys_expired: u64,
}

impl StateStats {
    fn add(&mut self, o: &StateStats) {
        self.exact_cap_evictions += o.exact_cap_evictions;
        self.bucket_too_old += o.bucket_too_old;
        self.lifetime_dropped += o.lifetime_dropped;
        self.keys_expired += o.keys_expired;
    }
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

/// Memory held by one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionMemory {
    pub keys: usize,
    /// Records and maps as in [`EntityMemory`], plus the expiry queue.
    pub bytes: usize,
}

/// When a series' state stops being readable, from its newest observation.
#[derive(Debug, Clone, Copy)]
enum Horizon {
    /// Newest entry + retention.
    Exact(i64),
    /// End of the newest bucket + the ring's span.
    Bucketed(i64),
    /// Last event + `idle_ttl`.
    Lifetime(i64),
}

/// What the partitions share, read-only: per series its bucket layout and horizon.
#[derive(Debug, Clone)]
struct Shape {
    layouts: Vec<Option<Layout>>,
    horizons: Vec<Horizon>,
    /// Per entity, its series (as `fs.entities[e].series`).
    entity_series: Vec<Vec<usize>>,
}

impl Shape {
    fn new(fs: &FeatureSet) -> Shape {
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
        let horizons = fs
            .series
            .iter()
            .map(|s| match s.mode {
                SeriesMode::Exact { retention_ms, .. } => Horizon::Exact(retention_ms),
                SeriesMode::Bucketed { width_ms, len, .. } => {
                    Horizon::Bucketed(width_ms.saturating_mul(len as i64))
                }
                SeriesMode::Lifetime { .. } => Horizon::Lifetime(fs.idle_ttl_ms),
            })
            .collect();
        Shape {
            layouts,
            horizons,
            entity_series: fs.entities.iter().map(|e| e.series.clone()).collect(),
        }
    }

    /// The first watermark at which this slot of series `si` is dead (`i64::MIN` when empty).
    fn slot_dead_at(&self, si: usize, slot: &Slot) -> i64 {
        match (self.horizons[si], slot) {
            (_, Slot::Empty) => i64::MIN,
            (Horizon::Exact(r), Slot::Exact(st)) => {
                st.newest().map_or(i64::MIN, |t| t.saturating_add(r))
            }
            (Horizon::Bucketed(span), Slot::Bucketed(st)) => match &self.layouts[si] {
                Some(l) => st.newest_bucket_end(l).saturating_add(span),
                None => i64::MIN,
            },
            (Horizon::Lifetime(ttl), Slot::Lifetime(st)) => st.last_time().saturating_add(ttl),
            _ => i64::MIN,
        }
    }

    /// The first watermark at which every slot of a key's record is dead.
    fn record_dead_at(&self, entity: usize, rec: &Record) -> i64 {
        rec.iter()
            .zip(&self.entity_series[entity])
            .map(|(slot, &si)| self.slot_dead_at(si, slot))
            .max()
            .unwrap_or(i64::MIN)
    }
}

/// One live key's record, as [`FeatureState::partition_records`] lists it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The entity's number (its place in the feature set's entities).
    pub entity: usize,
    pub key: u128,
    /// xxh3 of the record's encoding: equal exactly when the records are.
    pub digest: u64,
    /// The record's debug form, for a person comparing two nodes.
    pub text: String,
}

/// One partition: the keys it owns, per entity, and the queue that removes dead keys.
#[derive(Debug, Clone, Default)]
struct Part {
    maps: Vec<KeyMap<Record>>,
    /// One entry per key held: (the first watermark at which it may be dead, entity, key). An entry
    /// that comes due for a key updated since is pushed back with the key's real time.
    expiry: BinaryHeap<Reverse<(i64, u32, u128)>>,
    buf: Vec<u8>,
    scratch: crate::exact::Scratch,
    updates: Vec<Option<(i64, u64)>>,
    stats: StateStats,
    /// While an incremental copy is in progress: the keys changed since it began.
    tracking: Option<Tracking>,
}

type KeySet = std::collections::HashSet<u128, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Clone, Default)]
struct Tracking {
    /// Per entity, keys whose record was created, changed or removed since the copy began.
    dirty: Vec<KeySet>,
    /// The state was merged with another during the copy: the copy starts again.
    aborted: bool,
}

/// All feature state: `P` partitions, each with one map per entity from 128-bit key digest to record.
#[derive(Debug, Clone)]
pub struct FeatureState {
    parts: Vec<Part>,
    shape: Shape,
    /// The newest event time applied (the state's own watermark: expiry is relative to it).
    watermark: i64,
    /// Per partition: whether this state holds it. A node of a sharded cluster holds only the
    /// partitions it owns; the others are empty here, their keys neither applied nor read (their
    /// values come from their owners: [`apply_held`](Self::apply_held), [`fill_remote`](Self::fill_remote)).
    held: Vec<bool>,
}

/// An incremental copy of a [`FeatureState`] in progress: the keys present when it began, how far it
/// has got, and the records copied so far, already encoded (the snapshot's own bytes: a fraction of
/// the records' memory, see [`FrozenState::bytes`]).
#[derive(Debug)]
pub struct StateCopy {
    /// (partition, entity, keys) in copy order.
    keys: Vec<(usize, usize, Vec<u128>)>,
    list: usize,
    pos: usize,
    /// The encoded records, back to back: the older ones in a file, the newest in memory.
    arena: Spill,
    /// Per entity: key → (offset in the arena, length, the first watermark at which the record is
    /// dead).
    index: Vec<KeyMap<(u64, usize, i64)>>,
}

impl StateCopy {
    /// Copies `rec` (the record of `key` of `entity`), replacing an earlier copy.
    fn put(&mut self, shape: &Shape, entity: usize, key: u128, rec: &Record) {
        let (at, len) = self.arena.push(rec);
        let dead = shape.record_dead_at(entity, rec);
        self.index[entity].insert(key, (at, len, dead));
    }
}

/// Bytes appended in memory, moved to an unlinked temporary file every [`SPILL_AT`] bytes when the
/// copy was given a directory: what a copy holds in memory is then its index (about 60 bytes a key),
/// not the records. If the file cannot be created or written, the bytes stay in memory (the copy is
/// still exact) and [`FrozenState::spill_error`] says why.
#[derive(Debug, Default)]
struct Spill {
    dir: Option<std::path::PathBuf>,
    file: Option<std::fs::File>,
    /// Bytes in the file (the offset of `buf[0]`).
    flushed: u64,
    buf: Vec<u8>,
    error: Option<String>,
    /// The spill file's path while it could not be unlinked.
    linked: Option<std::path::PathBuf>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(p) = self.linked.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Bytes buffered in memory before they move to the spill file.
const SPILL_AT: usize = 64 << 10;

impl Spill {
    fn push(&mut self, rec: &Record) -> (u64, usize) {
        let at = self.buf.len();
        bincode::serialize_into(&mut self.buf, rec)
            .expect("serializing plain data to a Vec cannot fail");
        let len = self.buf.len() - at;
        let off = self.flushed + at as u64;
        if self.buf.len() >= SPILL_AT && self.error.is_none() {
            if let Err(e) = self.flush() {
                self.error = Some(e.to_string());
            }
        }
        (off, len)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if self.file.is_none() {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.join(format!(".copy-{}-{n}.tmp", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            // Unlinked at once: the file lives as long as the copy, and no crash leaves it behind.
            // If it cannot be unlinked now, it is removed when the copy ends.
            if std::fs::remove_file(&path).is_err() {
                self.linked = Some(path);
            }
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.buf)?;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// The bytes at `at..at + len` (read from the file into `scratch` when they were spilled).
    fn get<'a>(
        &'a self,
        at: u64,
        len: usize,
        scratch: &'a mut Vec<u8>,
    ) -> std::io::Result<&'a [u8]> {
        if at >= self.flushed {
            let i = (at - self.flushed) as usize;
            return Ok(&self.buf[i..i + len]);
        }
        use std::os::unix::fs::FileExt;
        let f = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("spilled bytes without a spill file"))?;
        scratch.resize(len, 0);
        f.read_exact_at(scratch, at)?;
        Ok(scratch)
    }
}

/// A consistent copy of a [`FeatureState`]'s snapshot, taken by [`FeatureState::finish_copy`]: its
/// live records encoded, in canonical order, to be written on any thread.
#[derive(Debug)]
pub struct FrozenState {
    watermark: i64,
    counters: (u64, u64),
    arena: Spill,
    /// Per entity: (key, offset, length), sorted by key.
    entries: Vec<Vec<(u128, u64, usize)>>,
}

impl FrozenState {
    /// Memory the copy holds: the encoded records still in memory and the index.
    pub fn bytes(&self) -> usize {
        self.arena.buf.capacity()
            + self
                .entries
                .iter()
                .map(|e| e.capacity() * std::mem::size_of::<(u128, u64, usize)>())
                .sum::<usize>()
    }

    /// Bytes of encoded records moved to the spill file.
    pub fn spilled(&self) -> u64 {
        self.arena.flushed
    }

    /// Why the records stayed in memory although a spill directory was given.
    pub fn spill_error(&self) -> Option<&str> {
        self.arena.error.as_deref()
    }

    /// The bytes [`FeatureState::snapshot`] gave when the copy finished, as a length-prefixed byte
    /// string (see [`FeatureState::write_snapshot_prefixed`]): bincode's encoding of the snapshot,
    /// written from the encoded records.
    pub fn write_snapshot_prefixed(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        // bincode (fixed-width integers, little-endian): watermark, the number of entities, per
        // entity its number of keys and each (key, record), then the two counters.
        let mut n: u64 = 8 + 8 + 16;
        for e in &self.entries {
            n += 8 + e.iter().map(|&(_, _, len)| 16 + len as u64).sum::<u64>();
        }
        w.write_all(&n.to_le_bytes())?;
        w.write_all(&self.watermark.to_le_bytes())?;
        w.write_all(&(self.entries.len() as u64).to_le_bytes())?;
        let mut scratch = Vec::new();
        for e in &self.entries {
            w.write_all(&(e.len() as u64).to_le_bytes())?;
            for &(k, at, len) in e {
                w.write_all(&k.to_le_bytes())?;
                w.write_all(self.arena.get(at, len, &mut scratch)?)?;
            }
        }
        w.write_all(&self.counters.0.to_le_bytes())?;
        w.write_all(&self.counters.1.to_le_bytes())
    }
}

/// The state was merged with another during an incremental copy; the copy must start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the state was merged during the copy")]
pub struct CopyAborted;

#[derive(Serialize, Deserialize)]
struct Snap {
    watermark: i64,
    maps: Vec<Vec<(u128, Record)>>,
    /// Exact-cap evictions and bucket observations too old (the counters that are part of the meaning).
    counters: (u64, u64),
}

/// [`Snap`] over borrowed records: the same bytes, without copying the state to write it.
#[derive(Serialize)]
struct SnapRef<'a> {
    watermark: i64,
    maps: Vec<Vec<(u128, &'a Record)>>,
    counters: (u64, u64),
}

/// A snapshot that does not fit the current configuration.
#[derive(Debug, thiserror::Error)]
#[error("feature state snapshot does not match the configuration: {0}")]
pub struct SnapshotMismatch(pub String);

/// One event for the partitions: its sequence number and the watermark as of it (the newest event
/// time up to and including it, as the sequencer computed it), and whether its features are read.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub ev: &'a Event,
    pub seq: u64,
    pub wm: i64,
    pub read: bool,
}

/// One partition lent to a worker thread for a batch of [`Step`]s ([`FeatureState::split`]).
pub struct PartWorker<'s> {
    part: &'s mut Part,
    shape: &'s Shape,
    index: usize,
    count: usize,
    /// Whether the state holds this partition (else it applies and answers nothing).
    held: bool,
    tmp: Vec<Value>,
}

/// Keys removed per partition and event at most (the rest wait for later events).
pub const EXPIRY_BUDGET: usize = 32;

/// What one partition answered for a batch of steps ([`PartWorker::run`]), read back in step order by
/// [`Reading`].
#[derive(Debug, Default)]
pub struct Answers {
    /// The feature values of every (reading step, entity) this partition owns, in plan order.
    values: Vec<Value>,
    /// For every (reading step, entity of its plan): whether this partition owns it.
    owned: Vec<bool>,
}

impl<'s> PartWorker<'s> {
    /// Applies the steps in order, for the keys this partition owns, and answers the reading ones.
    /// `ans` is an earlier batch's answers, emptied here and refilled (its memory is reused).
    pub fn run(&mut self, fs: &FeatureSet, steps: &[Step<'_>], mut ans: Answers) -> Answers {
        self.tmp.resize(fs.features.len(), Value::Null);
        ans.values.clear();
        ans.owned.clear();
        for s in steps {
            let plan = &fs.plans[s.ev.ty as usize];
            for ep in &plan.entities {
                let key = key_hash(&s.ev.fields, &ep.key_slots, ep.seed, &mut self.part.buf)
                    .filter(|k| self.held && partition_of(*k, self.count) == self.index);
                if s.read {
                    ans.owned.push(key.is_some());
                }
                let Some(key) = key else { continue };
                let o = s.read.then_some(&mut self.tmp[..]);
                self.part
                    .apply_entity(self.shape, fs, ep, key, s.ev, s.seq, s.wm, o, true);
                if s.read {
                    for g in &ep.groups {
                        for (fi, _) in &g.readers {
                            ans.values.push(std::mem::take(&mut self.tmp[*fi]));
                        }
                    }
                }
            }
            self.part.expire_due(self.shape, s.wm, EXPIRY_BUDGET);
        }
        ans
    }
}

/// Reads the partitions' [`Answers`] for one batch back into feature vectors, step by step.
pub struct Reading {
    answers: Vec<Answers>,
    /// Per partition: (next value, next ownership flag).
    pos: Vec<(usize, usize)>,
}

impl Reading {
    pub fn new(answers: Vec<Answers>) -> Reading {
        let pos = vec![(0, 0); answers.len()];
        Reading { answers, pos }
    }

    /// The answers, to be given back to the workers for the next batch.
    pub fn into_answers(self) -> Vec<Answers> {
        self.answers
    }

    /// The feature vector of the next reading step, `ev`: the values its owners answered, then the
    /// values that need no state (calendar, fields, ratios, defaults). The same vector
    /// [`FeatureState::apply`] gives.
    pub fn next(&mut self, fs: &FeatureSet, ev: &Event, out: &mut [Value]) {
        out.iter_mut().for_each(|v| *v = Value::Null);
        let plan = &fs.plans[ev.ty as usize];
        for ep in &plan.entities {
            let mut owner = None;
            for (p, (a, pos)) in self.answers.iter().zip(self.pos.iter_mut()).enumerate() {
                if a.owned.get(pos.1).copied().unwrap_or(false) {
                    owner = Some(p);
                }
                pos.1 += 1;
            }
            let Some(p) = owner else { continue };
            let (a, pos) = (&mut self.answers[p], &mut self.pos[p]);
            for g in &ep.groups {
                for (fi, _) in &g.readers {
                    if let Some(v) = a.values.get_mut(pos.0) {
                        out[*fi] = std::mem::take(v);
                    }
                    pos.0 += 1;
                }
            }
        }
        finish_vector(fs, ev, out);
    }
}

impl Part {
    fn new(fs: &FeatureSet) -> Part {
        Part {
            maps: fs.entities.iter().map(|_| KeyMap::default()).collect(),
            buf: Vec::with_capacity(64),
            ..Default::default()
        }
    }

    /// Applies (when `update`) and reads one entity of one event, for a key this partition owns.
    #[allow(clippy::too_many_arguments)]
    fn apply_entity(
        &mut self,
        shape: &Shape,
        fs: &FeatureSet,
        ep: &EntityPlan,
        key: u128,
        ev: &Event,
        seq: u64,
        wm: i64,
        mut out: Option<&mut [Value]>,
        update: bool,
    ) {
        let t = ev.time;
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
        let mut created = false;
        let record: Option<&mut Record> = if any {
            let n = fs.entities[ep.entity].series.len();
            Some(match map.entry(key) {
                MapEntry::Occupied(o) => {
                    let rec = o.into_mut();
                    // A key whose every series died comes back as a new key, whether or not
                    // expiry removed it from memory meanwhile (it removes a bounded number of dead
                    // keys per event, so when depends on the partition count and on how many died
                    // with it; a snapshot holds no dead keys): its series not fed now must not keep
                    // their old contents, or the state would depend on that timing. (A live fed
                    // series makes the record live: the whole record is looked at only when the
                    // first fed one is dead, not on every update of a live key.)
                    let first_fed = ep.groups.iter().zip(&updates).find(|(_, u)| u.is_some());
                    let fed_dead = first_fed.is_some_and(|(g, _)| {
                        shape.slot_dead_at(g.series, &rec[fs.series[g.series].pos]) <= wm
                    });
                    if fed_dead && shape.record_dead_at(ep.entity, rec) <= wm {
                        for slot in rec.iter_mut() {
                            if matches!(slot, Slot::Lifetime(_)) {
                                self.stats.lifetime_dropped += 1;
                            }
                            *slot = Slot::Empty;
                        }
                    }
                    rec
                }
                MapEntry::Vacant(v) => {
                    created = true;
                    v.insert(vec![Slot::Empty; n].into_boxed_slice())
                }
            })
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
            return;
        };
        for (gi, g) in ep.groups.iter().enumerate() {
            let series = &fs.series[g.series];
            let slot = &mut record[series.pos];
            // A dead slot reads as empty, and is reset before it is updated: the same answers and the
            // same state whether or not the key was removed from memory meanwhile.
            let dead = shape.slot_dead_at(g.series, slot) <= wm;
            if let Some((m, d)) = updates[gi] {
                if dead {
                    if matches!(slot, Slot::Lifetime(_)) {
                        self.stats.lifetime_dropped += 1;
                    }
                    *slot = Slot::Empty;
                }
                match (&series.mode, &mut *slot) {
                    (SeriesMode::Exact { .. }, Slot::Empty) => {
                        *slot = Slot::Exact(ExactState::default())
                    }
                    (SeriesMode::Bucketed { .. }, Slot::Empty) => {
                        if let Some(l) = &shape.layouts[g.series] {
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
                        if let Some(l) = &shape.layouts[g.series] {
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
            let readable = if updates[gi].is_none() && dead {
                &Slot::Empty
            } else {
                &*slot
            };
            match readable {
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
                    if let Some(l) = &shape.layouts[g.series] {
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
        if created {
            let at = shape.record_dead_at(ep.entity, record);
            self.expiry.push(Reverse((at, ep.entity as u32, key)));
        }
        self.updates = updates;
    }

    /// Removes up to `budget` keys that are dead at `wm` (every slot past its horizon). Returns how
    /// many queue entries it looked at.
    fn expire_due(&mut self, shape: &Shape, wm: i64, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(&Reverse((at, e, k))) = self.expiry.peek() else {
                break;
            };
            if at > wm {
                break;
            }
            self.expiry.pop();
            n += 1;
            let e = e as usize;
            let Some(rec) = self.maps[e].get(&k) else {
                continue;
            };
            let real = shape.record_dead_at(e, rec);
            if real <= wm {
                if let Some(rec) = self.maps[e].remove(&k) {
                    let lifetime = rec
                        .iter()
                        .filter(|s| matches!(s, Slot::Lifetime(_)))
                        .count();
                    self.stats.lifetime_dropped += lifetime as u64;
                }
                self.stats.keys_expired += 1;
                if let Some(t) = self.tracking.as_mut() {
                    t.dirty[e].insert(k);
                }
            } else {
                self.expiry.push(Reverse((real, e as u32, k)));
            }
        }
        n
    }

    /// Adds a record for a key this partition does not hold yet (restore, merge), with its queue entry.
    fn insert_new(&mut self, shape: &Shape, e: usize, k: u128, rec: Record) {
        let at = shape.record_dead_at(e, &rec);
        self.maps[e].insert(k, rec);
        self.expiry.push(Reverse((at, e as u32, k)));
    }
}

impl FeatureState {
    /// An empty state in one partition.
    pub fn new(fs: &FeatureSet) -> Self {
        Self::with_partitions(fs, 1)
    }

    /// An empty state in `partitions` partitions (at least one).
    pub fn with_partitions(fs: &FeatureSet, partitions: usize) -> Self {
        FeatureState {
            parts: (0..partitions.max(1)).map(|_| Part::new(fs)).collect(),
            shape: Shape::new(fs),
            watermark: i64::MIN,
            held: vec![true; partitions.max(1)],
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// The newest event time applied.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Counters of defined treatments, over every partition.
    pub fn stats(&self) -> StateStats {
        let mut s = StateStats::default();
        for p in &self.parts {
            s.add(&p.stats);
        }
        s
    }

    /// Lends every partition to a worker for a batch of steps (see [`PartWorker::run`]); afterwards
    /// [`note_batch`](Self::note_batch) records the batch's watermark.
    pub fn split(&mut self) -> Vec<PartWorker<'_>> {
        let count = self.parts.len();
        let shape = &self.shape;
        let held = &self.held;
        self.parts
            .iter_mut()
            .enumerate()
            .map(|(index, part)| PartWorker {
                part,
                shape,
                index,
                count,
                held: held[index],
                tmp: Vec::new(),
            })
            .collect()
    }

    /// Records that a batch of steps whose last watermark is `wm` was applied by the workers.
    pub fn note_batch(&mut self, wm: i64) {
        self.watermark = self.watermark.max(wm);
    }

    /// Starts an incremental copy (for a snapshot taken while events keep arriving): lists the keys
    /// (16 bytes each) and from now on records which keys change. [`copy_step`](Self::copy_step)
    /// copies a bounded number of records between events; [`finish_copy`](Self::finish_copy) copies
    /// the keys changed meanwhile again, so the copy equals the state at the time it finishes.
    /// With a `spill` directory, the copied records move to an unlinked file there as they are
    /// encoded; without, they stay in memory (encoded).
    pub fn begin_copy(&mut self, spill: Option<&std::path::Path>) -> StateCopy {
        let mut keys = Vec::new();
        let mut per_entity = vec![0; self.shape.entity_series.len()];
        for (pi, p) in self.parts.iter_mut().enumerate() {
            p.tracking = Some(Tracking {
                dirty: vec![KeySet::default(); p.maps.len()],
                aborted: false,
            });
            for (e, m) in p.maps.iter().enumerate() {
                keys.push((pi, e, m.keys().copied().collect()));
                per_entity[e] += m.len();
            }
        }
        StateCopy {
            keys,
            list: 0,
            pos: 0,
            arena: {
                let mut a = Spill::default();
                a.dir = spill.map(std::path::Path::to_path_buf);
                a
            },
            index: per_entity
                .into_iter()
                .map(|n| KeyMap::with_capacity_and_hasher(n, Default::default()))
                .collect(),
        }
    }

    /// Copies up to `budget` more records. `Ok(true)` when every key listed at the start has been
    /// visited; `Err` when the state was merged with another since the copy began.
    pub fn copy_step(&mut self, c: &mut StateCopy, budget: usize) -> Result<bool, CopyAborted> {
        if self
            .parts
            .iter()
            .any(|p| p.tracking.as_ref().is_none_or(|t| t.aborted))
        {
            self.parts.iter_mut().for_each(|p| p.tracking = None);
            return Err(CopyAborted);
        }
        let mut n = 0;
        while c.list < c.keys.len() {
            let (pi, e) = (c.keys[c.list].0, c.keys[c.list].1);
            let map = &self.parts[pi].maps[e];
            while c.pos < c.keys[c.list].2.len() && n < budget {
                let k = c.keys[c.list].2[c.pos];
                if let Some(r) = map.get(&k) {
                    c.put(&self.shape, e, k, r);
                }
                c.pos += 1;
                n += 1;
            }
            if c.pos < c.keys[c.list].2.len() {
                return Ok(false);
            }
            c.list += 1;
            c.pos = 0;
        }
        Ok(true)
    }

    /// Completes the copy: the rest of the listed keys, then every key changed since the copy began.
    /// The result has this state's snapshot bytes as of now.
    pub fn finish_copy(&mut self, mut c: StateCopy) -> Result<FrozenState, CopyAborted> {
        while !self.copy_step(&mut c, usize::MAX)? {}
        c.keys = Vec::new();
        for p in self.parts.iter_mut() {
            let t = p.tracking.take().ok_or(CopyAborted)?;
            for (e, dirty) in t.dirty.iter().enumerate() {
                for k in dirty {
                    match p.maps[e].get(k) {
                        Some(r) => c.put(&self.shape, e, *k, r),
                        None => {
                            c.index[e].remove(k);
                        }
                    }
                }
            }
        }
        let wm = self.watermark;
        let entries = c
            .index
            .iter()
            .map(|m| {
                let mut v: Vec<(u128, u64, usize)> = m
                    .iter()
                    .filter(|(_, &(_, _, dead))| dead > wm)
                    .map(|(&k, &(at, len, _))| (k, at, len))
                    .collect();
                v.sort_unstable_by_key(|e| e.0);
                v
            })
            .collect();
        // The rest of the records to the file too: the frozen copy holds only its sorted index.
        if c.arena.dir.is_some() && c.arena.error.is_none() {
            match c.arena.flush() {
                Ok(()) => c.arena.buf = Vec::new(),
                Err(e) => c.arena.error = Some(e.to_string()),
            }
        }
        let s = self.stats();
        Ok(FrozenState {
            watermark: wm,
            counters: (s.exact_cap_evictions, s.bucket_too_old),
            arena: c.arena,
            entries,
        })
    }

    /// Applies one event: updates every series it feeds (read-your-writes), then, when `out` is given
    /// (one slot per feature), reads every feature its type can compute at the event's time.
    /// Features the type cannot compute (missing key fields) are set to null. The watermark becomes
    /// the newest event time applied; dead keys are removed a bounded number at a time.
    pub fn apply(&mut self, fs: &FeatureSet, ev: &Event, seq: u64, out: Option<&mut [Value]>) {
        self.watermark = self.watermark.max(ev.time);
        self.apply_inner(fs, ev, seq, self.watermark, out, true);
        let wm = self.watermark;
        for p in &mut self.parts {
            p.expire_due(&self.shape, wm, EXPIRY_BUDGET);
        }
    }

    /// Reads every feature `ev`'s type can compute at its time, as [`apply`](Self::apply) would, without
    /// updating any series or creating any key (the entity API's view of an entity).
    pub fn peek(&mut self, fs: &FeatureSet, ev: &Event, seq: u64, out: &mut [Value]) {
        let wm = self.watermark.max(ev.time);
        self.apply_inner(fs, ev, seq, wm, Some(out), false);
    }

    fn apply_inner(
        &mut self,
        fs: &FeatureSet,
        ev: &Event,
        seq: u64,
        wm: i64,
        mut out: Option<&mut [Value]>,
        update: bool,
    ) {
        let plan = &fs.plans[ev.ty as usize];
        if let Some(o) = out.as_deref_mut() {
            o.iter_mut().for_each(|v| *v = Value::Null);
        }
        let n = self.parts.len();
        for ep in &plan.entities {
            let Some(key) = key_hash(&ev.fields, &ep.key_slots, ep.seed, &mut self.parts[0].buf)
            else {
                continue;
            };
            let p = partition_of(key, n);
            if !self.held[p] {
                continue;
            }
            self.parts[p].apply_entity(
                &self.shape,
                fs,
                ep,
                key,
                ev,
                seq,
                wm,
                out.as_deref_mut(),
                update,
            );
        }
        if let Some(o) = out {
            finish_vector(fs, ev, o);
        }
    }

    /// Removes every key that is dead at `watermark` (or at the state's own, if newer) now, however
    /// many: the bounded per-event removal's backlog, for tests and tools. Never changes an answer.
    pub fn expire(&mut self, _fs: &FeatureSet, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
        let wm = self.watermark;
        for p in &mut self.parts {
            p.expire_due(&self.shape, wm, usize::MAX);
        }
    }

    /// Per partition, whether this state holds it (all, unless [`release`](Self::release)d).
    pub fn held(&self) -> &[bool] {
        &self.held
    }

    /// Whether this state holds every partition (the embedded engine, a replicated cluster node).
    pub fn holds_all(&self) -> bool {
        self.held.iter().all(|h| *h)
    }

    /// Drops partition `p`'s state and stops holding it: its keys are neither applied nor read here
    /// from now on (a node of a sharded cluster that no longer owns it). An incremental copy in
    /// progress starts again.
    pub fn release(&mut self, fs: &FeatureSet, p: usize) {
        if p >= self.parts.len() {
            return;
        }
        let tracking = self.parts[p].tracking.take();
        // The counters stay: they count what this state applied (a restore puts the snapshot's in
        // partition 0, which a sharded node may not hold).
        let stats = std::mem::take(&mut self.parts[p].stats);
        self.parts[p] = Part::new(fs);
        self.parts[p].tracking = tracking;
        self.parts[p].stats = stats;
        self.held[p] = false;
        self.abort_copies();
    }

    /// Takes partition `p` from `other` (a state rebuilt for it, with the same configuration and
    /// partition count, as of the same point of the same log) and holds it from now on. `other` no
    /// longer holds it. An incremental copy in progress starts again.
    pub fn adopt(&mut self, p: usize, other: &mut FeatureState) {
        if p >= self.parts.len() || self.parts.len() != other.parts.len() || !other.held[p] {
            return;
        }
        let tracking = self.parts[p].tracking.take();
        std::mem::swap(&mut self.parts[p], &mut other.parts[p]);
        self.parts[p].tracking = tracking;
        other.parts[p].tracking = None;
        other.held[p] = false;
        self.held[p] = true;
        self.watermark = self.watermark.max(other.watermark);
        self.abort_copies();
    }

    fn abort_copies(&mut self) {
        for p in &mut self.parts {
            if let Some(t) = p.tracking.as_mut() {
                t.aborted = true;
            }
        }
    }

    /// The first half of [`apply`](Self::apply) with `out` on a state that holds only some
    /// partitions: applies and reads `ev`'s keys in the held partitions, and returns each held
    /// partition's *share* — the values its keys read, in plan order — for the nodes that do not hold
    /// it, and the partitions not held here that its keys fall in (sorted, once each: whose shares
    /// [`fill_remote`](Self::fill_remote) needs). Their keys are left null in `out` until then.
    pub fn apply_held(
        &mut self,
        fs: &FeatureSet,
        ev: &Event,
        seq: u64,
        out: &mut [Value],
    ) -> (Vec<(usize, Vec<Value>)>, Vec<usize>) {
        self.watermark = self.watermark.max(ev.time);
        let wm = self.watermark;
        out.iter_mut().for_each(|v| *v = Value::Null);
        let n = self.parts.len();
        let mut shares: Vec<(usize, Vec<Value>)> = Vec::new();
        let mut remote = Vec::new();
        for ep in &fs.plans[ev.ty as usize].entities {
            let Some(key) = key_hash(&ev.fields, &ep.key_slots, ep.seed, &mut self.parts[0].buf)
            else {
                continue;
            };
            let p = partition_of(key, n);
            if !self.held[p] {
                remote.push(p);
                continue;
            }
            self.parts[p].apply_entity(&self.shape, fs, ep, key, ev, seq, wm, Some(out), true);
            let i = match shares.iter().position(|(q, _)| *q == p) {
                Some(i) => i,
                None => {
                    shares.push((p, Vec::new()));
                    shares.len() - 1
                }
            };
            for g in &ep.groups {
                for (fi, _) in &g.readers {
                    shares[i].1.push(out[*fi].clone());
                }
            }
        }
        for p in &mut self.parts {
            p.expire_due(&self.shape, wm, EXPIRY_BUDGET);
        }
        shares.sort_unstable_by_key(|(p, _)| *p);
        remote.sort_unstable();
        remote.dedup();
        (shares, remote)
    }

    /// The second half: puts the shares of the partitions not held here (`remote(p)`: partition `p`'s
    /// share for this event, from its owner) into `out`, then the values that need no state. The
    /// vector then equals what [`apply`](Self::apply) gives on a state holding every partition.
    /// `Err(p)`: partition `p`'s share is missing or does not fit the plan (a different configuration
    /// on its owner); `out` is then incomplete.
    pub fn fill_remote<'v>(
        &self,
        fs: &FeatureSet,
        ev: &Event,
        out: &mut [Value],
        mut remote: impl FnMut(usize) -> Option<&'v [Value]>,
    ) -> Result<(), usize> {
        let n = self.parts.len();
        let mut buf = Vec::new();
        let mut pos: Vec<(usize, usize)> = Vec::new();
        for ep in &fs.plans[ev.ty as usize].entities {
            let Some(key) = key_hash(&ev.fields, &ep.key_slots, ep.seed, &mut buf) else {
                continue;
            };
            let p = partition_of(key, n);
            if self.held[p] {
                continue;
            }
            let share = remote(p).ok_or(p)?;
            let i = match pos.iter().position(|(q, _)| *q == p) {
                Some(i) => i,
                None => {
                    pos.push((p, 0));
                    pos.len() - 1
                }
            };
            for g in &ep.groups {
                for (fi, _) in &g.readers {
                    out[*fi] = share.get(pos[i].1).cloned().ok_or(p)?;
                    pos[i].1 += 1;
                }
            }
        }
        for (p, used) in pos {
            if remote(p).is_some_and(|s| s.len() != used) {
                return Err(p);
            }
        }
        finish_vector(fs, ev, out);
        Ok(())
    }

    /// Serializes all live state deterministically: every entity's live keys sorted, whatever partition
    /// holds them, keys already dead left out. Equal states give equal bytes, for any partition count
    /// and whenever dead keys left memory.
    pub fn snapshot(&self) -> Vec<u8> {
        bincode::serialize(&self.snap_ref()).expect("serializing plain data to a Vec cannot fail")
    }

    fn snap_ref(&self) -> SnapRef<'_> {
        let wm = self.watermark;
        let maps = (0..self.shape.entity_series.len())
            .map(|e| {
                let mut v: Vec<(u128, &Record)> = self
                    .parts
                    .iter()
                    .flat_map(|p| p.maps[e].iter())
                    .filter(|(_, r)| self.shape.record_dead_at(e, r) > wm)
                    .map(|(k, r)| (*k, r))
                    .collect();
                v.sort_unstable_by_key(|(k, _)| *k);
                v
            })
            .collect();
        let s = self.stats();
        SnapRef {
            watermark: wm,
            maps,
            counters: (s.exact_cap_evictions, s.bucket_too_old),
        }
    }

    /// A digest per partition of `n` (whatever partition count this state has): each partition's
    /// live keys, sorted, with their records and the watermark, as [`snapshot`](Self::snapshot)
    /// encodes them. `None` for a partition this state does not hold all of. Two states hold the
    /// same keys of partition `q` with the same values exactly when their digests of `q` are equal,
    /// so the nodes of a sharded cluster, each holding some partitions, compare with one engine
    /// holding them all.
    pub fn partition_digests(&self, n: usize) -> Vec<Option<u64>> {
        let n = n.max(1);
        let wm = self.watermark;
        let entities = self.shape.entity_series.len();
        let mut by: Vec<Vec<Vec<(u128, &Record)>>> = vec![vec![Vec::new(); entities]; n];
        for part in &self.parts {
            for (e, map) in part.maps.iter().enumerate() {
                for (k, r) in map.iter() {
                    if self.shape.record_dead_at(e, r) > wm {
                        by[partition_of(*k, n)][e].push((*k, r));
                    }
                }
            }
        }
        by.into_iter()
            .enumerate()
            .map(|(q, mut maps)| {
                self.holds_of(n, q).then(|| {
                    for m in &mut maps {
                        m.sort_unstable_by_key(|(k, _)| *k);
                    }
                    // Plain data: encoding into a Vec cannot fail.
                    let bytes = bincode::serialize(&(wm, &maps)).unwrap_or_default();
                    xxhash_rust::xxh3::xxh3_64(&bytes)
                })
            })
            .collect()
    }

    /// Partition `q` of `n`'s live records, for finding where two states differ once their
    /// [`partition_digests`](Self::partition_digests) do: per key, sorted by entity and key, the
    /// entity's number, the key, the record's digest and the record as text (its debug form: for a
    /// person to read, not a format). `None` when this state does not hold all of `q`.
    pub fn partition_records(&self, n: usize, q: usize) -> Option<Vec<KeyRecord>> {
        let n = n.max(1);
        if q >= n || !self.holds_of(n, q) {
            return None;
        }
        let wm = self.watermark;
        let mut out = Vec::new();
        for part in &self.parts {
            for (e, map) in part.maps.iter().enumerate() {
                for (k, r) in map.iter() {
                    if partition_of(*k, n) == q && self.shape.record_dead_at(e, r) > wm {
                        let bytes = bincode::serialize(r).unwrap_or_default();
                        out.push(KeyRecord {
                            entity: e,
                            key: *k,
                            digest: xxhash_rust::xxh3::xxh3_64(&bytes),
                            text: format!("{r:?}"),
                        });
                    }
                }
            }
        }
        out.sort_unstable_by_key(|r| (r.entity, r.key));
        Some(out)
    }

    /// Whether this state holds every key of partition `q` (below `n`) of `n`: with as many
    /// partitions as its own, its held mask says; otherwise only a state holding all its
    /// partitions does.
    fn holds_of(&self, n: usize, q: usize) -> bool {
        if self.held.len() == n {
            self.held[q]
        } else {
            self.held.iter().all(|h| *h)
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

    /// Restores state written by [`snapshot`](Self::snapshot) under the same feature configuration, in
    /// one partition.
    pub fn restore(fs: &FeatureSet, bytes: &[u8]) -> Result<Self, SnapshotMismatch> {
        Self::restore_partitioned(fs, bytes, 1)
    }

    /// As [`restore`](Self::restore), into `partitions` partitions (any number: snapshots do not
    /// depend on the partition count that wrote them).
    pub fn restore_partitioned(
        fs: &FeatureSet,
        bytes: &[u8],
        partitions: usize,
    ) -> Result<Self, SnapshotMismatch> {
        let snap: Snap = bincode::deserialize(bytes)
            .map_err(|e| SnapshotMismatch(format!("undecodable: {e}")))?;
        let mut st = FeatureState::with_partitions(fs, partitions);
        if snap.maps.len() != fs.entities.len() {
            return Err(SnapshotMismatch(format!(
                "{} entities in the snapshot, {} configured",
                snap.maps.len(),
                fs.entities.len()
            )));
        }
        let n = st.parts.len();
        for (ei, entries) in snap.maps.into_iter().enumerate() {
            let series = &fs.entities[ei].series;
            for (k, rec) in entries {
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
                st.parts[partition_of(k, n)].insert_new(&st.shape, ei, k, rec);
            }
        }
        st.watermark = snap.watermark;
        st.parts[0].stats.exact_cap_evictions = snap.counters.0;
        st.parts[0].stats.bucket_too_old = snap.counters.1;
        Ok(st)
    }

    /// Deletes each `(entity, key)` record (erasure: the subject's own history, so that the value,
    /// if it comes back, starts afresh; the aggregates under other keys stay as they were). The
    /// number of live records deleted: a dead record (every series dead, not yet removed by
    /// expiry) is deleted too but not counted, so that the count never depends on when expiry
    /// reached it. A key in a partition this state does not hold has no record here.
    pub fn forget(&mut self, keys: &[(usize, u128)]) -> usize {
        let wm = self.watermark;
        for p in &mut self.parts {
            if let Some(t) = p.tracking.as_mut() {
                t.aborted = true;
            }
        }
        let n = self.parts.len();
        let mut live = 0;
        for &(ei, k) in keys {
            let Some(rec) = self.parts[partition_of(k, n)]
                .maps
                .get_mut(ei)
                .and_then(|m| m.remove(&k))
            else {
                continue;
            };
            if self.shape.record_dead_at(ei, &rec) > wm {
                live += 1;
            }
        }
        live
    }

    /// Stops holding the partitions `held` says are not held (after a restore, which holds every
    /// partition: their state is empty).
    pub fn hold_only(&mut self, fs: &FeatureSet, held: &[bool]) {
        for (p, h) in held.iter().enumerate() {
            if !h {
                self.release(fs, p);
            }
        }
    }

    /// Merges another state of the same configuration into this one (e.g. two partitions of a stream).
    pub fn merge(&mut self, fs: &FeatureSet, other: &FeatureState) {
        for p in &mut self.parts {
            if let Some(t) = p.tracking.as_mut() {
                t.aborted = true;
            }
        }
        let n = self.parts.len();
        for op in &other.parts {
            for (ei, b) in op.maps.iter().enumerate() {
                let series = &fs.entities[ei].series;
                for (k, rb) in b {
                    let part = &mut self.parts[partition_of(*k, n)];
                    let Some(ra) = part.maps[ei].get_mut(k) else {
                        part.insert_new(&self.shape, ei, *k, rb.clone());
                        continue;
                    };
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
                                if let Some(l) = &self.shape.layouts[si] {
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
        self.watermark = self.watermark.max(other.watermark);
    }

    /// Keys and bytes per entity (hash-map slots, records and series heaps), over every partition.
    pub fn memory(&self, fs: &FeatureSet) -> Vec<EntityMemory> {
        (0..fs.entities.len())
            .map(|ei| {
                let ent = &fs.entities[ei];
                let (keys, bytes) = self.parts.iter().fold((0, 0), |(k, b), p| {
                    (k + p.maps[ei].len(), b + map_bytes(&p.maps[ei]))
                });
                let features = fs
                    .features
                    .iter()
                    .filter(|f| matches!(f.kind, FeatureKind::Series { series, .. } if fs.series[series].entity == ei))
                    .count();
                EntityMemory { key: ent.key.clone(), keys, bytes, series: ent.series.len(), features }
            })
            .collect()
    }

    /// Keys and bytes per partition (records, maps and the expiry queue).
    pub fn partition_memory(&self) -> Vec<PartitionMemory> {
        self.parts
            .iter()
            .map(|p| PartitionMemory {
                keys: p.maps.iter().map(|m| m.len()).sum(),
                bytes: p.maps.iter().map(map_bytes).sum::<usize>()
                    + p.expiry.capacity() * std::mem::size_of::<(i64, u32, u128)>(),
            })
            .collect()
    }

    /// Number of keys held across all entities and partitions.
    pub fn key_count(&self) -> usize {
        self.parts
            .iter()
            .flat_map(|p| p.maps.iter())
            .map(|m| m.len())
            .sum()
    }
}

fn map_bytes(m: &KeyMap<Record>) -> usize {
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
    slot + records
}

/// The values of a feature vector that need no keyed state: calendar parts, event fields, then
/// defaults and ratios (defaults first for the operands of ratios, then again for the ratios).
fn finish_vector(fs: &FeatureSet, ev: &Event, o: &mut [Value]) {
    let plan = &fs.plans[ev.ty as usize];
    let t = ev.time;
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
    for &fi in &plan.expressions {
        let f = &fs.features[fi];
        o[fi] = expression(f, ev, o);
        if o[fi].is_null() {
            o[fi] = f.default.clone();
        }
    }
}

/// An expression feature's value on `ev`, given the vector so far: null when it fails (a null
/// operand, an overflow…), as a rule that errs does not fire.
fn expression(f: &crate::config::FeatureDef, ev: &Event, o: &[Value]) -> Value {
    use crate::config::ExprSource;
    use argus_rules::Val;
    let FeatureKind::Expression { programs, .. } = &f.kind else {
        return Value::Null;
    };
    let Some((_, program, sources)) = programs.iter().find(|(t, _, _)| *t == ev.ty) else {
        return Value::Null;
    };
    let to_val = |v: &Value| match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Int(i) => Val::Int(*i),
        Value::Dec(d) => Val::Double(*d as f64 / argus_event::value::DEC_SCALE as f64),
        Value::Float(x) => Val::Double(*x),
        Value::Str(s) => Val::Str(s.as_ref().into()),
        Value::Time(t) => Val::Time(*t),
    };
    let vars: Vec<Val> = sources
        .iter()
        .map(|s| match *s {
            ExprSource::Time => Val::Time(ev.time),
            ExprSource::Field(slot) => to_val(&ev.fields[slot]),
            ExprSource::Feature(j) => to_val(&o[j]),
        })
        .collect();
    let a = argus_rules::Activation {
        vars: &vars,
        lists: &argus_rules::NoLists,
    };
    match program.eval(&a) {
        Ok(Val::Bool(b)) => Value::Bool(b),
        Ok(Val::Int(i)) => Value::Int(i),
        Ok(Val::UInt(u)) => i64::try_from(u).map_or(Value::Null, Value::Int),
        Ok(Val::Double(x)) if x.is_finite() => Value::Float(x),
        Ok(Val::Str(s)) => Value::Str(s.to_string().into()),
        Ok(Val::Time(t)) => Value::Time(t),
        Ok(Val::Duration(ms)) => Value::Int(ms.div_euclid(1000)),
        _ => Value::Null,
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

/// Digest of the key tuple as the state keys it (`seed` from the entity's plan); `None` when a key
/// field is absent.
pub fn key_digest(fields: &[Value], slots: &[usize], seed: u64) -> Option<u128> {
    key_hash(fields, slots, seed, &mut Vec::new())
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
