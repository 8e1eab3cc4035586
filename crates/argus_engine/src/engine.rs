//! The engine: the single code path that live traffic and replay share.
//!
//! For each event, in order: idempotency check, lateness check, release of delayed labels that have
//! become known by the event's time, removal of the event's own label columns (scheduled for release),
//! feature update, feature read (read-your-writes), periodic expiry.

use crate::config::Config;
use argus_event::{Decoder, Event, Schema, Value};
use argus_features::state::{Answers, CopyAborted, Reading, Step};
use argus_features::{FeatureSet, FeatureState};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const SNAPSHOT_MAGIC: &[u8; 8] = b"ARGUSSN4";

/// Counters of what the engine did with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub accepted: u64,
    pub duplicates: u64,
    pub too_late: u64,
    pub labels_scheduled: u64,
    pub labels_released: u64,
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("duplicate event id `{0}`: already processed")]
    Duplicate(String),
    #[error("event time is {lag_ms} ms behind the newest event time, beyond the allowed lateness of {allowed_ms} ms")]
    TooLate { lag_ms: i64, allowed_ms: i64 },
}

impl ProcessError {
    pub fn code(&self) -> &'static str {
        match self {
            ProcessError::Duplicate(_) => "duplicate_event",
            ProcessError::TooLate { .. } => "too_late",
        }
    }
}

/// Everything one event produced ([`Engine::process`]): nothing is left behind in the engine for a
/// later call to read.
#[derive(Debug)]
pub struct Processed<'e> {
    /// The engine's sequence number after this event (released labels count too).
    pub seq: u64,
    /// The event as features and rules saw it: the caller's event with its own label columns taken out.
    pub event: &'e Event,
    /// The feature vector as of this event, one value per configured feature (read-your-writes).
    pub features: &'e [Value],
    /// The decision, when a policy covers the event's type (`None` from [`Engine::apply`]).
    pub decision: Option<argus_policy::Decision>,
    /// The graph detectors' findings this event triggered (empty without `[graph]`).
    pub findings: Vec<crate::graph::Finding>,
    /// The event's own delayed labels, scheduled for release at `release_at`.
    pub labels: Vec<OwnLabel>,
}

/// A label column the event carried: which declared label, its value, and when features see it.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnLabel {
    /// Index in the schema's label declarations.
    pub label: usize,
    pub value: Value,
    pub release_at: i64,
}

/// Remembers event ids (as 128-bit digests) for `ttl` of event time.
#[derive(Debug, Clone, Default)]
struct Dedupe {
    set: HashSet<u128, BuildHasherDefault<argus_features::state::KeyHasher>>,
    order: VecDeque<(i64, u128)>,
}

impl Dedupe {
    /// Forgets the ids at the front of the queue older than `cutoff`; returns how many.
    fn expire(&mut self, cutoff: i64) -> u64 {
        let mut n = 0;
        while let Some(&(t, h)) = self.order.front() {
            if t >= cutoff {
                break;
            }
            self.order.pop_front();
            self.set.remove(&h);
            n += 1;
        }
        n
    }
}

/// A scheduled label: its (release time, source sequence) and the fields features will read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingLabel {
    key: (i64, u64),
    fields: Vec<(u32, Value)>,
}

#[derive(Serialize, Deserialize)]
struct EngineSnap {
    schema_fp: u64,
    features_fp: u64,
    secret_fp: u64,
    seq: u64,
    watermark: i64,
    counters: Counters,
    dedupe: Vec<(i64, u128)>,
    labels: Vec<Vec<PendingLabel>>,
    /// The global stages' sections (the entity graph), in the order they run.
    stages: Vec<crate::stages::Section>,
    state: Vec<u8>,
}

impl EngineSnap {
    fn encode(self, state: &FeatureState) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(|w| state.write_snapshot_prefixed(w), &mut out)
            .expect("writing plain data to a Vec cannot fail");
        out
    }

    /// Writes `magic | body | crc32(body)` as it is encoded, where body is the bincode encoding of
    /// this header with `state` replaced by the feature state's bytes: the same bytes as
    /// [`encode`](Self::encode) built in memory before, without the copies.
    fn write<W: Write>(
        self,
        state: impl FnOnce(&mut CrcWriter<&mut W>) -> std::io::Result<()>,
        w: &mut W,
    ) -> std::io::Result<()> {
        debug_assert!(self.state.is_empty(), "the state is written from `state`");
        w.write_all(SNAPSHOT_MAGIC)?;
        let mut body = CrcWriter::new(&mut *w);
        // `state` is the last field: every other field, then the state as a byte string.
        let head = (
            self.schema_fp,
            self.features_fp,
            self.secret_fp,
            self.seq,
            self.watermark,
            &self.counters,
            &self.dedupe,
            &self.labels,
            &self.stages,
        );
        bincode::serialize_into(&mut body, &head).map_err(std::io::Error::other)?;
        state(&mut body)?;
        let crc = body.finish();
        w.write_all(&crc.to_le_bytes())
    }
}

/// A writer that computes the CRC-32 of what passes through it.
pub struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> CrcWriter<W> {
    pub fn new(inner: W) -> Self {
        CrcWriter {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }
    /// The CRC-32 of everything written.
    pub fn finish(self) -> u32 {
        self.crc.finalize()
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An incremental copy in progress (see [`Engine::begin_copy`]).
pub struct EngineCopy {
    state: argus_features::state::StateCopy,
    /// Ids copied so far; `dedupe[0]` is the id at absolute position `first_abs` (positions count
    /// every id ever remembered, so that ids forgotten by the cap during the copy can be skipped).
    dedupe: Vec<(i64, u128)>,
    first_abs: u64,
    /// Absolute position just after the last id present when the copy began.
    end_abs: u64,
}

/// A consistent copy of the engine's state, taken by [`Engine::finish_copy`]; [`encode`](Self::encode)
/// gives the bytes [`Engine::snapshot`] would have given at that moment, on any thread.
pub struct PendingSnapshot {
    header: EngineSnap,
    state: argus_features::state::FrozenState,
}

impl PendingSnapshot {
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing plain data to a Vec cannot fail");
        out
    }

    /// Writes the bytes of [`encode`](Self::encode) to `w` as they are encoded, without building
    /// them in memory (the server writes its snapshots this way, straight to the file).
    pub fn write_to(self, w: &mut impl Write) -> std::io::Result<()> {
        let state = &self.state;
        self.header
            .write(|body| state.write_snapshot_prefixed(body), w)
    }

    /// Memory the copy holds beyond the live state: the encoded feature records and their index
    /// (the idempotency ids and pending labels are copied as they are).
    pub fn state_bytes(&self) -> usize {
        self.state.bytes()
    }

    /// Bytes of encoded feature records the copy moved to its spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.state.spilled()
    }

    /// Why the copy kept its records in memory although it was given a spill directory.
    pub fn spill_error(&self) -> Option<&str> {
        self.state.spill_error()
    }
}

/// Writes a file atomically: a temporary file beside it (`*.snap.tmp`), fsync, rename, then fsync of
/// the directory. A crash leaves the old file or the new one, never a torn one.
/// Creates (or truncates) a file that only its owner can read and write: state files hold tokens and
/// decisions about people.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    owner_only(
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true),
    )
    .open(path)
}

/// Files these options create are readable and writable by their owner only (0600 on Unix).
pub fn owner_only(o: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, 0o600);
    o
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_with(path, |w| w.write_all(bytes))
}

/// As [`write_atomically`], with the content written by `write` through a buffer (temporary file,
/// fsync, rename, fsync of the directory).
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("snap.tmp");
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, private_file(&tmp)?);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("snapshot was taken under another configuration ({0}); replay the event log instead")]
    Incompatible(String),
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The streaming engine.
pub struct Engine {
    pub config: Config,
    policies: Option<Arc<argus_policy::PolicySet>>,
    decoder: Decoder,
    state: FeatureState,
    sq: Sequencer,
    out: Vec<Value>,
    /// The event as the last [`process`](Self::process) saw it (label columns taken out); returned in
    /// its [`Processed`], and reused as the next event's buffer.
    current: Event,
    /// Labels released by the last admitted event, applied before it.
    released: Vec<Event>,
    /// The global stages (the entity graph, when `[graph]` is declared), in the order they run.
    stages: Vec<Box<dyn crate::stages::Stage>>,
    /// Whether this engine holds the global stages' state (all, except on a node of a sharded
    /// cluster that is not the stages' worker: see [`units_held`](Self::units_held)).
    stages_held: bool,
    /// The feature slots the global stages write, in stage order (a stages share's layout): a
    /// function of the configuration, kept instead of asked of the stages per event.
    stage_slots: Vec<usize>,
    /// `[deadlines]` at work: stage faults injected on purpose (tests), and the models' worker.
    ctl: Ctl,
}

/// What the first half of a sharded node's step produced ([`Engine::begin_shared`]), until
/// [`Engine::finish_shared`] completes it. Several events may be begun before the first is finished
/// (their keyed state is applied in order; the stages and decisions follow in order at finish).
#[derive(Debug, Clone, PartialEq)]
pub struct Begun {
    /// The event's sequence number: the same on every node that applies the same log.
    pub seq: u64,
    /// Each partition held here that the event's keys fall in, with its share: the values those keys
    /// read, in plan order, for the nodes that do not hold it.
    pub shares: Vec<(usize, Vec<Value>)>,
    /// The partitions not held here that the event's keys fall in: whose shares
    /// [`Engine::finish_shared`] needs.
    pub remote: Vec<usize>,
    /// The event as features and rules see it, its vector so far, its own labels.
    event: Event,
    out: Vec<Value>,
    labels: Vec<OwnLabel>,
    /// The findings of the global stages, when they ran at the beginning (this engine holds them
    /// as a unit of their own: [`Engine::units_held`]).
    staged: Option<Vec<crate::graph::Finding>>,
}

/// The section of a snapshot that names the partitions a sharded node's engine held.
const HELD_SECTION: &str = "partitions.held";

/// What [`conclude`] needs to keep a checkpoint's budget: faults injected on purpose, and the
/// thread that scores models when a budget may abandon them.
#[derive(Default)]
struct Ctl {
    faults: crate::deadlines::Faults,
    worker: crate::deadlines::ModelWorker,
    /// When the engine began the event being concluded (its budget counts from there).
    start: Option<std::time::Instant>,
    /// `[deadlines]` apply (the server's live decisions); off for replay, tests and backtests,
    /// whose answers must not depend on timing.
    live: bool,
}

/// The sequencer: what decides, in input order, whether and where an event enters the state
/// (idempotency, lateness, delayed labels, sequence numbers). It never touches feature state, so it
/// runs ahead of the partitions.
struct Sequencer {
    dedupe: Dedupe,
    /// Delayed labels waiting for their release time, one queue per declared label, each ordered by
    /// (release time, source sequence number). A label has one fixed delay, so events in time order
    /// append; only late events insert.
    labels: Vec<VecDeque<PendingLabel>>,
    /// Per label: the slots of its release type that features read; only those are kept while pending.
    label_slots: Vec<Vec<usize>>,
    /// Idempotency ids forgotten so far, by the `dedupe_max_ids` cap or by `dedupe_ttl` (positions
    /// for incremental copies; not part of the state's meaning).
    dedupe_evicted: u64,
    watermark: i64,
    seq: u64,
    counters: Counters,
}

impl Sequencer {
    /// Admits `ev` (already the engine's own copy): idempotency and lateness checks, then the labels
    /// due by its time are released into `released` (each with its sequence number in `.1`), its own
    /// label columns are taken out and scheduled, and it gets its sequence number.
    fn admit(
        &mut self,
        config: &Config,
        ev: &mut Event,
        released: &mut Vec<Event>,
    ) -> Result<Vec<OwnLabel>, ProcessError> {
        let idh = xxhash_rust::xxh3::xxh3_128(ev.id.as_bytes());
        if self.dedupe.set.contains(&idh) {
            self.counters.duplicates += 1;
            return Err(ProcessError::Duplicate(ev.id.clone()));
        }
        let allowed = config.features.allowed_lateness_ms;
        if self.watermark != i64::MIN && ev.time < self.watermark - allowed {
            self.counters.too_late += 1;
            return Err(ProcessError::TooLate {
                lag_ms: self.watermark - ev.time,
                allowed_ms: allowed,
            });
        }
        self.release_labels(config, ev.time, released);
        self.watermark = self.watermark.max(ev.time);
        let labels = self.schedule_labels(config, ev);
        self.seq += 1;
        self.dedupe.set.insert(idh);
        self.dedupe.order.push_back((ev.time, idh));
        self.forget_over_cap(config.dedupe_max_ids);
        self.dedupe_evicted += self
            .dedupe
            .expire(self.watermark.saturating_sub(config.dedupe_ttl_ms));
        self.counters.accepted += 1;
        Ok(labels)
    }

    /// Forgets the oldest idempotency ids beyond `dedupe_max_ids` (deterministic: a function of the
    /// event sequence and the configuration). An incremental copy in progress skips the forgotten
    /// ids by their position (see [`EngineCopy`]).
    fn forget_over_cap(&mut self, max: usize) {
        while self.dedupe.order.len() > max {
            let Some((_, old)) = self.dedupe.order.pop_front() else {
                break;
            };
            self.dedupe.set.remove(&old);
            self.dedupe_evicted += 1;
        }
    }

    /// Moves every scheduled label whose release time is ≤ `t` into `released`, oldest first, each
    /// as a `label.<name>` event whose id field is empty and whose sequence number follows the last.
    fn release_labels(&mut self, config: &Config, t: i64, released: &mut Vec<Event>) {
        loop {
            // The earliest (release time, sequence) across the label queues: a deterministic merge.
            let mut best: Option<(usize, (i64, u64))> = None;
            for (i, q) in self.labels.iter().enumerate() {
                if let Some(p) = q.front() {
                    if p.key.0 <= t && best.is_none_or(|(_, bk)| p.key < bk) {
                        best = Some((i, p.key));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let Some(p) = self.labels[i].pop_front() else {
                break;
            };
            let spec = &config.schema.labels[i];
            // Only as many slots as the features read (the release is applied, never read or shown).
            let len = self.label_slots[i].last().map_or(0, |s| s + 1);
            let mut fields = vec![Value::Null; len];
            for (s, v) in p.fields {
                fields[s as usize] = v;
            }
            self.seq += 1;
            self.counters.labels_released += 1;
            released.push(Event {
                id: String::new(),
                ty: spec.release_type,
                time: p.key.0,
                fields,
            });
        }
    }

    /// Takes the label columns out of `ev` and schedules their release.
    fn schedule_labels(&mut self, config: &Config, ev: &mut Event) -> Vec<OwnLabel> {
        let mut own = Vec::new();
        let schema = &config.schema;

        for (li, l) in schema
            .labels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.source_type == ev.ty)
        {
            let value = std::mem::take(&mut ev.fields[l.source_slot]);
            if value.is_null() {
                continue;
            }
            // A declared positive value: 1 for it, 0 for anything else (features, reports and
            // training then read every label the same way).
            let value = match &l.positive {
                Some(p) => Value::Int(i64::from(value.to_string() == *p)),
                None => value,
            };
            // The release carries the source's fields (other label columns stay hidden), the label
            // `value` and the source `event_time`; only the slots features read are kept while pending.
            let n_src = ev.fields.len();
            let mut fields = Vec::with_capacity(self.label_slots[li].len());
            for &s in &self.label_slots[li] {
                let v = if s < n_src {
                    if schema
                        .labels
                        .iter()
                        .any(|o| o.source_type == ev.ty && o.source_slot == s)
                    {
                        Value::Null
                    } else {
                        ev.fields[s].clone()
                    }
                } else if s == n_src {
                    value.clone()
                } else {
                    Value::Time(ev.time)
                };
                if !v.is_null() {
                    fields.push((s as u32, v));
                }
            }
            // Known at its own time when the event says so (never before the event itself). The
            // `known_at` fields are taken out only after this loop, so labels may share one.
            let known = l.known_at.and_then(|s| match ev.fields[s] {
                Value::Time(t) => Some(t),
                _ => None,
            });
            let release = known.map_or(ev.time + l.delay_ms, |k| k.max(ev.time));
            let key = (release, self.seq + 1);
            let pending = PendingLabel { key, fields };
            let q = &mut self.labels[li];
            if q.back().is_none_or(|p| p.key <= key) {
                q.push_back(pending);
            } else {
                let pos = q.partition_point(|p| p.key <= key);
                q.insert(pos, pending);
            }
            self.counters.labels_scheduled += 1;
            own.push(OwnLabel {
                label: li,
                value,
                release_at: key.0,
            });
        }
        // `known_at` fields tell the future: taken out like the label columns.
        for l in schema.labels.iter().filter(|l| l.source_type == ev.ty) {
            if let Some(s) = l.known_at {
                ev.fields[s] = Value::Null;
            }
        }
        own
    }
}

/// One feature-state key an erasure deletes: the entity's index, the old value's key digest and the
/// same key's with the new value (see [`Engine::erase_subject`]).
pub type KeyMove = (usize, u128, u128);

/// Replaces every occurrence of each key of `map` in `bytes` by its value (the same length: the
/// bytes keep their layout). For erasure, over encoded state and log records.
pub fn replace_all(bytes: &mut [u8], map: &std::collections::HashMap<String, String>) -> usize {
    let mut n = 0;
    for (old, new) in map {
        let (o, w) = (old.as_bytes(), new.as_bytes());
        if o.is_empty() || o.len() != w.len() || bytes.len() < o.len() {
            continue;
        }
        let mut i = 0;
        while i + o.len() <= bytes.len() {
            if &bytes[i..i + o.len()] == o {
                bytes[i..i + o.len()].copy_from_slice(w);
                n += 1;
                i += o.len();
            } else {
                i += 1;
            }
        }
    }
    n
}

/// The decision and findings for an event whose feature vector is complete but for the global
/// stages' features: each global stage's work on the event (in sequence order), then the policies.
/// Shared by [`Engine::process`] and [`Engine::run`].
///
/// With a budget for the event's checkpoint (`[deadlines]`, counted from `start`), a graph stage
/// over its share has its features withheld from the decision, and the models get what is left of
/// their share (see [`crate::deadlines`]).
fn conclude(
    config: &Config,
    policies: Option<&Arc<argus_policy::PolicySet>>,
    stages: &mut [Box<dyn crate::stages::Stage>],
    ev: &Event,
    out: &mut [Value],
    decide: bool,
    ctl: &mut Ctl,
) -> (Option<argus_policy::Decision>, Vec<crate::graph::Finding>) {
    use crate::deadlines::Fault;
    let mut findings = Vec::new();
    let dl = config.deadlines.as_deref().filter(|_| ctl.live);
    let budget = dl.and_then(|d| d.budget_of(ev.ty));
    let mut degraded = Vec::new();
    for st in stages.iter_mut() {
        let graph = st.name() == "graph";
        let t = std::time::Instant::now();
        if let (true, Some(Fault::Slow(d))) = (graph, ctl.faults.graph) {
            std::thread::sleep(d);
        }
        st.apply(ev, out, &mut findings);
        if graph {
            if ctl.faults.graph == Some(Fault::Fail) {
                degraded.push(("graph", "failed"));
            } else if let (Some(b), Some(d)) = (budget, dl) {
                if t.elapsed() > b.mul_f64(d.stage("graph").share) {
                    degraded.push(("graph", "late"));
                }
            }
        }
    }
    let decision = match policies {
        Some(p) if decide => {
            let models = models_mode(config, ev, ctl);
            decide_planned(config, p, ev, out, degraded, models, ctl)
        }
        _ => None,
    };
    (decision, findings)
}

/// How the models of `ev`'s checkpoint are scored: inline without a budget; on the worker with
/// what is left of their share of it; not at all when nothing is left.
fn models_mode(config: &Config, ev: &Event, ctl: &Ctl) -> Models {
    let dl = config.deadlines.as_deref().filter(|_| ctl.live);
    match (dl.and_then(|d| d.budget_of(ev.ty)), dl) {
        (Some(b), Some(d)) => {
            let spent = ctl.start.map_or(std::time::Duration::ZERO, |s| s.elapsed());
            let left = b.saturating_sub(spent);
            let wait = left.min(b.mul_f64(d.stage("models").share));
            if wait.is_zero() {
                Models::Skip(crate::deadlines::Missing::Late)
            } else {
                Models::Timed(wait)
            }
        }
        _ => Models::Inline,
    }
}

/// How [`decide_planned`] gets the models' scores.
enum Models {
    /// On this thread (no budget).
    Inline,
    /// On the worker, waiting at most this long.
    Timed(std::time::Duration),
    /// Not at all: the decision is made without them, for this reason.
    Skip(crate::deadlines::Missing),
}

/// The decision without the stages in `degraded` (their features null to the rules), and with the
/// models scored as `models` says; a fail-closed stage missing raises the action to the
/// checkpoint's `closed_action`.
fn decide_planned(
    config: &Config,
    p: &argus_policy::PolicySet,
    ev: &Event,
    features: &[Value],
    mut degraded: Vec<(&'static str, &'static str)>,
    models: Models,
    ctl: &mut Ctl,
) -> Option<argus_policy::Decision> {
    let all = &config.models;
    let mut scores = Vec::new();
    let mut outputs = Vec::new();
    if all.iter().any(|m| m.event_type == ev.ty)
        && p.by_type.get(ev.ty as usize).is_some_and(|x| x.is_some())
    {
        // The checkpoint's models, in slot order (scored in place when inline: no copies on the
        // default path; the worker gets its own handles).
        let mine = || (0..all.len()).filter(|&k| all[k].event_type == ev.ty);
        let fault = ctl.faults.models;
        let scored = match models {
            Models::Inline => crate::deadlines::score(mine().map(|k| &*all[k]), features, fault),
            Models::Timed(wait) => {
                let chosen = mine().map(|k| all[k].clone()).collect();
                ctl.worker.score(chosen, features, fault, wait)
            }
            Models::Skip(why) => Err(why),
        };
        scores = vec![f64::NAN; all.len()];
        match scored {
            Ok(outs) => {
                for (k, o) in mine().zip(outs) {
                    scores[k] = o.score;
                    outputs.push(o);
                }
            }
            Err(why) => degraded.push(("models", why.reason())),
        }
    }
    let withheld;
    let features = if degraded.iter().any(|d| d.0 == "graph") {
        let mut v = features.to_vec();
        for (i, f) in config.features.features.iter().enumerate() {
            if matches!(f.kind, argus_features::config::FeatureKind::External) {
                v[i] = Value::Null;
            }
        }
        withheld = v;
        &withheld[..]
    } else {
        features
    };
    let names: Vec<&str> = degraded.iter().map(|d| d.0).collect();
    let mut d = p.decide_degraded(&config.schema, ev, features, &scores, &names)?;
    d.models = outputs;
    if let Some(dl) = config.deadlines.as_deref() {
        let closed = dl
            .closed_action
            .get(ev.ty as usize)
            .copied()
            .unwrap_or(argus_policy::Action::Review);
        if degraded.iter().any(|s| dl.stage(s.0).closed) && d.action < closed {
            d.action = closed;
            d.decided_by = "degraded";
        }
    }
    d.degraded = degraded;
    Some(d)
}

/// A logged decision decided again (a backtest over the log): without the stages it was made
/// without, so that a degraded live decision is not counted as drift.
pub fn decide_as_logged(
    config: &Config,
    p: &argus_policy::PolicySet,
    ev: &Event,
    features: &[Value],
    logged: &[(&'static str, &'static str)],
) -> Option<argus_policy::Decision> {
    let models = logged
        .iter()
        .find(|d| d.0 == "models")
        .map_or(Models::Inline, |d| {
            Models::Skip(if d.1 == "late" {
                crate::deadlines::Missing::Late
            } else {
                crate::deadlines::Missing::Failed
            })
        });
    let pre = logged.iter().filter(|d| d.0 != "models").copied().collect();
    decide_planned(config, p, ev, features, pre, models, &mut Ctl::default())
}

/// The decision of `p` for `ev` and its feature vector under `config`'s models: the function
/// [`Engine::process`] ends in, for callers deciding with policies other than the engine's own (a
/// backtest of a draft over the log).
pub fn decide_with_policies(
    config: &Config,
    p: &argus_policy::PolicySet,
    ev: &Event,
    features: &[Value],
) -> Option<argus_policy::Decision> {
    decide_with(config, p, ev, features)
}

/// See [`Engine::decide_with`]: no budget, no faults.
fn decide_with(
    config: &Config,
    p: &argus_policy::PolicySet,
    ev: &Event,
    features: &[Value],
) -> Option<argus_policy::Decision> {
    decide_planned(
        config,
        p,
        ev,
        features,
        Vec::new(),
        Models::Inline,
        &mut Ctl::default(),
    )
}

/// Where [`Engine::run`] reads its events and delivers what each produced, in input order.
pub trait Source {
    type Error;
    /// The next event, decoded with `decoder`; `None` at the end of the input. Records that do not
    /// decode are the source's own business (it counts and reports them, then reads on).
    fn next(&mut self, decoder: &Decoder) -> Result<Option<Event>, Self::Error>;
    /// An event the engine refused (a duplicate, or too late). Refusals and [`processed`] results
    /// arrive in input order.
    ///
    /// [`processed`]: Source::processed
    fn refused(&mut self, ev: &Event, e: ProcessError) -> Result<(), Self::Error>;
    /// Everything an accepted event produced.
    fn processed(&mut self, p: Processed<'_>) -> Result<(), Self::Error>;
}

/// Where [`Engine::run`] spent its time, in seconds of each thread's wall clock: what the scaling model
/// in BENCHMARKS.md is computed from. The coordinating thread reads and decodes (`decode`), admits
/// (`admit`: idempotency, lateness, labels), waits for the partitions (`wait`) and concludes
/// (`conclude`: vectors, graph, policies; `deliver`: the source's own work with each result, e.g.
/// writing tables). Each partition thread applies its keys (`partitions[p]`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunTimes {
    pub events: u64,
    pub decode: f64,
    pub admit: f64,
    pub wait: f64,
    pub conclude: f64,
    pub deliver: f64,
    /// The global stages' worker (the graph), when they run on one.
    pub global_stages: f64,
    pub partitions: Vec<f64>,
}

/// What the stages' worker of [`Engine::run`] made of a batch: per read event, the values of the
/// stages' slots (one run of `slots` values each) and the findings.
#[derive(Default)]
struct StageOut {
    values: Vec<Value>,
    findings: Vec<Vec<crate::graph::Finding>>,
}

/// Accepted events per batch in [`Engine::run`].
const BATCH: usize = 4096;

/// A batch admitted by [`Engine::run`], the own labels of each accepted event in it, and whether the
/// input has ended.
type Filled = (Batch, Vec<Vec<OwnLabel>>, bool);

/// A batch of [`Engine::run`]: the events in sequence order (released labels and accepted events),
/// with, per event, its sequence number, the watermark as of it, and whether it is read (accepted
/// events are; released labels are not).
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    meta: Vec<(u64, i64, bool)>,
    /// Events the sequencer refused, each with the number of accepted events before it in the batch
    /// (delivered to the source in input order, with the accepted ones).
    refused: Vec<(usize, Event, ProcessError)>,
}

impl Batch {
    fn steps(&self) -> Vec<Step<'_>> {
        self.events
            .iter()
            .zip(&self.meta)
            .map(|(ev, &(seq, wm, read))| Step { ev, seq, wm, read })
            .collect()
    }
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        let decoder = Decoder::new(config.schema.clone(), config.pseudonymizer.clone())
            .with_lookups(config.lookups.clone());
        let state = FeatureState::with_partitions(&config.features, config.partitions);
        let n = config.features.features.len();
        let n_labels = config.schema.labels.len();
        // Per label, the slots of its release type that the features read, keys included.
        let label_slots = config
            .schema
            .labels
            .iter()
            .map(|l| {
                let ty = l.release_type as usize;
                let mut v = config.features.slots_read(ty);
                v.extend(
                    config.features.plans[ty]
                        .entities
                        .iter()
                        .flat_map(|e| e.key_slots.iter().copied()),
                );
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let stages = crate::stages::build(&config);
        let stage_slots = stages.iter().flat_map(|st| st.writes()).collect();
        Engine {
            policies: None,
            current: Event {
                id: String::new(),
                ty: 0,
                time: 0,
                fields: Vec::new(),
            },
            released: Vec::new(),
            sq: Sequencer {
                dedupe: Dedupe::default(),
                labels: vec![VecDeque::new(); n_labels],
                label_slots,
                dedupe_evicted: 0,
                watermark: i64::MIN,
                seq: 0,
                counters: Counters::default(),
            },
            config,
            decoder,
            state,
            out: vec![Value::Null; n],
            stages,
            stages_held: true,
            stage_slots,
            ctl: Ctl::default(),
        }
    }

    /// Whether a global stage reads the keyed features (in [`run`](Self::run) it then runs on the
    /// coordinating thread; a sharded node cannot rebuild it from its log).
    pub fn stages_read_features(&self) -> bool {
        self.stages.iter().any(|st| st.reads_features())
    }

    /// Per partition, whether this engine holds its feature state (all, except on a node of a
    /// sharded cluster).
    pub fn held(&self) -> &[bool] {
        self.state.held()
    }

    /// Whether the global stages are a unit of their own in a sharded cluster: declared, and
    /// reading only the event (and the slots of the stages before them), so that one node (the
    /// stages' worker) can run them when it begins an event and hand their features and findings
    /// to the others as a share.
    pub fn stages_unit(&self) -> bool {
        !self.stages.is_empty() && !self.stages_read_features()
    }

    /// The units a sharded cluster places on its nodes: the feature partitions, then — when
    /// [`stages_unit`](Self::stages_unit) — the global stages, as unit number `partitions`.
    pub fn units(&self) -> usize {
        self.state.partitions() + usize::from(self.stages_unit())
    }

    /// Per unit (see [`units`](Self::units)), whether this engine holds its state.
    pub fn units_held(&self) -> Vec<bool> {
        let mut v = self.state.held().to_vec();
        if self.stages_unit() {
            v.push(self.stages_held);
        }
        v
    }

    /// Whether this engine holds the global stages' state (always, unless released).
    pub fn holds_stages(&self) -> bool {
        self.stages_held
    }

    /// Drops unit `u`'s state: from now on its share of each event comes from its holder
    /// ([`begin_shared`](Self::begin_shared)). A partition's keys, or the global stages (unit
    /// `partitions`), whose state is replaced by an empty one.
    pub fn release_partition(&mut self, u: usize) {
        if u == self.state.partitions() {
            if self.stages_unit() {
                self.stages = crate::stages::build(&self.config);
                self.stages_held = false;
            }
            return;
        }
        self.state.release(&self.config.features, u);
    }

    /// Takes unit `u`'s state (a feature partition, or the global stages) from `other`, an engine
    /// with the same configuration rebuilt for it to the same point of the same log, and holds it
    /// from now on.
    pub fn adopt_partition(&mut self, u: usize, other: &mut Engine) {
        if u == self.state.partitions() {
            if self.stages_unit() && other.stages_held {
                std::mem::swap(&mut self.stages, &mut other.stages);
                self.stages_held = true;
                other.stages_held = false;
            }
            return;
        }
        self.state.adopt(u, &mut other.state);
    }

    /// The first half of [`process`](Self::process) on an engine that does not hold every partition
    /// (a node of a sharded cluster): the sequencer admits the event (the same checks, sequence
    /// number and released labels as `process`), the held partitions apply it, and their shares are
    /// returned for the nodes that do not hold them, with the partitions whose shares this node
    /// needs. [`finish_shared`](Self::finish_shared) completes the event. Other events may be begun
    /// meanwhile; they are finished in the order they were begun, and nothing else (`process`,
    /// `apply`, a snapshot) runs on the engine until every begun event is finished.
    ///
    /// When the global stages are a unit of their own ([`stages_unit`](Self::stages_unit)), the
    /// engine holding them runs them here (they read only the event), and their share — the
    /// values of the slots they write and the findings the event triggered
    /// ([`stages_share`](Self::stages_share)) — is among the shares, as unit `partitions`; an
    /// engine not holding them lists that unit among the remote ones.
    pub fn begin_shared(&mut self, ev: &Event) -> Result<Begun, ProcessError> {
        let labels = self.admit(ev)?;
        let fs = &self.config.features;
        let (mut shares, mut remote) =
            self.state
                .apply_held(fs, &self.current, self.sq.seq, &mut self.out);
        let mut staged = None;
        if self.stages_unit() {
            let unit = self.state.partitions();
            if self.stages_held {
                let mut findings = Vec::new();
                for st in self.stages.iter_mut() {
                    st.apply(&self.current, &mut self.out, &mut findings);
                }
                shares.push((unit, self.stages_share(&findings)));
                staged = Some(findings);
            } else {
                remote.push(unit);
            }
        }
        let n = self.out.len();
        Ok(Begun {
            seq: self.sq.seq,
            shares,
            remote,
            event: self.current.clone(),
            out: std::mem::replace(&mut self.out, vec![Value::Null; n]),
            labels,
            staged,
        })
    }

    /// The global stages' share of the current event: the values of the slots they write, in
    /// stage order, then the findings as one JSON string (`Null` when none).
    fn stages_share(&self, findings: &[crate::graph::Finding]) -> Vec<Value> {
        let mut v: Vec<Value> = Vec::with_capacity(self.stage_slots.len() + 1);
        v.extend(self.stage_slots.iter().map(|&s| self.out[s].clone()));
        v.push(if findings.is_empty() {
            Value::Null
        } else {
            // Plain data: cannot fail.
            Value::Str(serde_json::to_string(findings).unwrap_or_default().into())
        });
        v
    }

    /// Fills the stages' slots of the current vector from their holder's share; the findings.
    /// `None`: the share does not fit this configuration.
    fn fill_stages(&mut self, share: &[Value]) -> Option<Vec<crate::graph::Finding>> {
        let slots = &self.stage_slots;
        if share.len() != slots.len() + 1 {
            return None;
        }
        for (s, v) in slots.iter().zip(share) {
            self.out[*s] = v.clone();
        }
        match &share[slots.len()] {
            Value::Null => Some(Vec::new()),
            Value::Str(s) => serde_json::from_str(s).ok(),
            _ => None,
        }
    }

    /// The second half: the other partitions' shares (`remote(p)`, from their owners) complete the
    /// feature vector, then the global stages and the decision (when `decide`) run as in
    /// [`process`](Self::process). The result equals `process` on an engine holding every partition.
    /// `Err(p)`: partition `p`'s share is missing or does not fit (the event stays half applied: the
    /// caller stops using this engine).
    pub fn finish_shared<'v>(
        &mut self,
        begun: Begun,
        remote: impl FnMut(usize) -> Option<&'v [Value]>,
        decide: bool,
    ) -> Result<Processed<'_>, usize> {
        let Begun {
            seq,
            event,
            out,
            labels,
            staged,
            remote: units,
            ..
        } = begun;
        self.current = event;
        self.out = out;
        let mut remote = remote;
        self.state.fill_remote(
            &self.config.features,
            &self.current,
            &mut self.out,
            &mut remote,
        )?;
        let unit = self.state.partitions();
        let staged = match staged {
            Some(f) => Some(f),
            None if units.contains(&unit) => {
                let share = remote(unit).ok_or(unit)?;
                Some(self.fill_stages(share).ok_or(unit)?)
            }
            None => None,
        };
        Ok(self.conclude_staged(seq, labels, decide, staged))
    }

    /// The end of every step: the global stages and the decision on the current event and its
    /// completed vector.
    fn conclude_current(&mut self, seq: u64, labels: Vec<OwnLabel>, decide: bool) -> Processed<'_> {
        // An engine that released the global stages (a sharded node's rebuild, or its recovery)
        // applies the rest without them.
        let staged = (!self.stages_held).then(Vec::new);
        self.conclude_staged(seq, labels, decide, staged)
    }

    /// [`conclude_current`](Self::conclude_current), the global stages' findings given when they
    /// ran (or were filled from their holder's share) already.
    fn conclude_staged(
        &mut self,
        seq: u64,
        labels: Vec<OwnLabel>,
        decide: bool,
        staged: Option<Vec<crate::graph::Finding>>,
    ) -> Processed<'_> {
        let stages: &mut [Box<dyn crate::stages::Stage>] = match staged {
            Some(_) => &mut [],
            None => &mut self.stages,
        };
        let (decision, mut findings) = conclude(
            &self.config,
            self.policies.as_ref(),
            stages,
            &self.current,
            &mut self.out,
            decide,
            &mut self.ctl,
        );
        if let Some(mut f) = staged {
            f.append(&mut findings);
            findings = f;
        }
        Processed {
            seq,
            event: &self.current,
            features: &self.out,
            decision,
            findings,
            labels,
        }
    }

    /// Erasure: the feature state of the subject's keys is deleted, and every value in `map` (old
    /// token → new pseudonym of the same length) is renamed wherever else the state holds it. Each
    /// of `keys` (see [`erasure_moves`](Self::erasure_moves)) names a key of the old value and the
    /// same key with the new one: both are deleted — the old one so that the value's history no
    /// longer answers for it (it starts afresh if the value comes back), the new one so that a
    /// replay of the renamed log, which builds it, ends in the same state as the live path — and
    /// every aggregate under other keys stays as it was. Values kept inside other keys' records (a
    /// `last_value` of a personal-data field), the global stages and the pending labels get the new
    /// values. Deleting rather than moving keeps the subject's keys in their partitions: the
    /// pseudonym's keys fall in other partitions, held by other nodes in a sharded cluster.
    /// Returns the live records deleted.
    pub fn erase_subject(
        &mut self,
        map: &std::collections::HashMap<String, String>,
        keys: &[KeyMove],
    ) -> Result<usize, String> {
        let fs = self.config.features.clone();
        let mut gone: Vec<(usize, u128)> = Vec::with_capacity(keys.len() * 2);
        for &(e, from, to) in keys {
            if from != 0 {
                gone.push((e, from));
            }
            gone.push((e, to));
        }
        let deleted = self.state.forget(&gone);
        let renames = map.iter().any(|(old, new)| old != new);
        if !renames {
            return Ok(deleted);
        }
        // The canonical encoding holds the values as they are: renamed there, and the state
        // restored from it (holding the partitions it held).
        let mut bytes = self.state.snapshot();
        if replace_all(&mut bytes, map) > 0 {
            let held = self.state.held().to_vec();
            self.state = FeatureState::restore_partitioned(&fs, &bytes, self.config.partitions)
                .map_err(|e| format!("feature state after renaming: {}", e.0))?;
            self.state.hold_only(&fs, &held);
        }
        if self.stages_held {
            for st in &mut self.stages {
                let mut bytes = st.encode();
                replace_all(&mut bytes, map);
                st.restore(&bytes)
                    .map_err(|e| format!("stage {} after renaming: {e}", st.name()))?;
            }
        }
        for q in &mut self.sq.labels {
            for l in q.iter_mut() {
                for (_, v) in l.fields.iter_mut() {
                    if let Value::Str(s) = v {
                        if let Some(n) = map.get(s.as_ref()) {
                            *v = Value::Str(n.as_str().into());
                        }
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// The feature-state keys an erasure moves (entity, old key, new key): every key of one field
    /// holding an old value of `map`, and the composite keys that `logged` (events carrying an old
    /// value, as logged) show.
    pub fn erasure_moves(
        &self,
        map: &std::collections::HashMap<String, String>,
        logged: &[Event],
    ) -> Vec<KeyMove> {
        use argus_features::state::key_digest;
        let fs = &self.config.features;
        let rename = |fields: &[Value]| -> Vec<Value> {
            fields
                .iter()
                .map(|v| match v {
                    Value::Str(s) => map
                        .get(s.as_ref())
                        .map_or_else(|| v.clone(), |n| Value::Str(n.as_str().into())),
                    _ => v.clone(),
                })
                .collect()
        };
        let mut moves = std::collections::BTreeSet::new();
        for plan in &fs.plans {
            for ep in plan.entities.iter().filter(|ep| ep.key_slots.len() == 1) {
                let slot = ep.key_slots[0];
                let mut fields = vec![Value::Null; slot + 1];
                for (old, new) in map {
                    fields[slot] = Value::Str(old.as_str().into());
                    let from = key_digest(&fields, &ep.key_slots, ep.seed);
                    fields[slot] = Value::Str(new.as_str().into());
                    let to = key_digest(&fields, &ep.key_slots, ep.seed);
                    if let (Some(f), Some(t)) = (from, to) {
                        moves.insert((ep.entity, f, t));
                    }
                }
            }
        }
        for ev in logged {
            let renamed = rename(&ev.fields);
            let Some(plan) = fs.plans.get(ev.ty as usize) else {
                continue;
            };
            for ep in &plan.entities {
                if ep
                    .key_slots
                    .iter()
                    .all(|&s| renamed.get(s) == ev.fields.get(s))
                {
                    continue;
                }
                let from = key_digest(&ev.fields, &ep.key_slots, ep.seed);
                let to = key_digest(&renamed, &ep.key_slots, ep.seed);
                if let (Some(f), Some(t)) = (from, to) {
                    moves.insert((ep.entity, f, t));
                }
            }
        }
        moves.into_iter().collect()
    }

    /// Makes stages slow or failing on purpose (`ARGUS_FAULTS`; see [`crate::deadlines`]).
    pub fn set_faults(&mut self, f: crate::deadlines::Faults) {
        self.ctl.faults = f;
    }

    /// The decision as the live path makes it for `ev` and its `features` (under `[deadlines]` when
    /// on: the models on the worker, within their share of the budget), without changing the state:
    /// for benchmarks of that path.
    pub fn decide_live(
        &mut self,
        ev: &Event,
        features: &[Value],
    ) -> Option<argus_policy::Decision> {
        let p = self.policies.clone()?;
        self.ctl.start = Some(std::time::Instant::now());
        let models = models_mode(&self.config, ev, &self.ctl);
        decide_planned(
            &self.config,
            &p,
            ev,
            features,
            Vec::new(),
            models,
            &mut self.ctl,
        )
    }

    /// Applies `[deadlines]` to the decisions made from now on (the server's live path). Off by
    /// default: replay, `argus test` and backtests decide without timing, so the same input gives
    /// the same answers.
    pub fn set_live_deadlines(&mut self, on: bool) {
        self.ctl.live = on;
    }

    /// Decides checkpoints with these policies from now on (compiled against this engine's schema and
    /// features).
    pub fn set_policies(&mut self, p: Arc<argus_policy::PolicySet>) {
        self.policies = Some(p);
    }

    /// The installed policies to change in place (`None` without policies, or while another owner
    /// shares them).
    pub fn policies_mut(&mut self) -> Option<&mut argus_policy::PolicySet> {
        Arc::get_mut(self.policies.as_mut()?)
    }

    /// Stops deciding (features only).
    pub fn clear_policies(&mut self) {
        self.policies = None;
    }

    pub fn policies(&self) -> Option<&Arc<argus_policy::PolicySet>> {
        self.policies.as_ref()
    }

    /// Counters of what the engine did with its input.
    pub fn counters(&self) -> &Counters {
        &self.sq.counters
    }

    /// The decision for `ev` given its feature vector `features` (a pure function of both and the
    /// installed policies and models; [`process`](Self::process) calls it with the features it just
    /// computed). `None` without policies or when no policy covers the event's type.
    pub fn decide_with(&self, ev: &Event, features: &[Value]) -> Option<argus_policy::Decision> {
        decide_with(&self.config, self.policies.as_ref()?, ev, features)
    }

    /// The value lists the policies read, for changes at run time (`None` without policies). The
    /// policies are copied first if another owner shares them.
    pub fn lists_mut(&mut self) -> Option<&mut argus_policy::ValueLists> {
        let p = self.policies.as_mut()?;
        let p = Arc::get_mut(p)?;
        Some(Arc::make_mut(&mut p.lists))
    }

    /// Reads, without changing anything, the features that `probe` (an event of some type whose key
    /// fields are set) would see at its time. Returns the feature vector (null where not computed).
    pub fn peek(&mut self, probe: &Event) -> &[Value] {
        self.state
            .peek(&self.config.features, probe, self.sq.seq + 1, &mut self.out);
        &self.out
    }

    /// A digest of the state that future answers depend on (features, idempotency ids, pending labels,
    /// watermark, sequence; not the counters of refused input): two engines with equal digests answer
    /// every future event alike. It does not depend on the partition count.
    pub fn state_digest(&self) -> u64 {
        self.digest_with(Some(self.state.snapshot()), true)
    }

    /// [`state_digest`](Self::state_digest) split in two, for the nodes of a sharded cluster (each
    /// holding some feature partitions) to compare with one another and with one engine: the digest of
    /// everything but the keyed features (sequencer, pending labels, stages: the same on every node),
    /// and a digest per feature partition of `n` (`None` where this engine does not hold it; see
    /// `FeatureState::partition_digests`).
    ///
    /// When the global stages are a unit of their own ([`stages_unit`](Self::stages_unit)), their
    /// digest is not in the first but one more after the partitions' (`None` where this engine does
    /// not hold them): only their worker holds them.
    pub fn split_digest(&self, n: usize) -> (u64, Vec<Option<u64>>) {
        let mut parts = self.state.partition_digests(n);
        if !self.stages_unit() {
            return (self.digest_with(None, true), parts);
        }
        let stages = self.stages_held.then(|| {
            let d: Vec<_> = self
                .stages
                .iter()
                .map(|st| (st.name(), st.digest()))
                .collect();
            xxhash_rust::xxh3::xxh3_64(&bincode::serialize(&d).unwrap_or_default())
        });
        parts.push(stages);
        (self.digest_with(None, false), parts)
    }

    /// Feature partition `q` of `n`'s live records (`FeatureState::partition_records`), each with
    /// its entity's key fields joined by `+` (`actor+device`): where two nodes whose digests of `q`
    /// differ differ. `None` when this engine does not hold all of `q`.
    pub fn partition_records(
        &self,
        n: usize,
        q: usize,
    ) -> Option<Vec<(String, argus_features::KeyRecord)>> {
        let entities = &self.config.features.entities;
        let recs = self.state.partition_records(n, q)?;
        Some(
            recs.into_iter()
                .map(|r| {
                    let name = entities
                        .get(r.entity)
                        .map(|e| e.key.join("+"))
                        .unwrap_or_default();
                    (name, r)
                })
                .collect(),
        )
    }

    /// The parts of [`split_digest`](Self::split_digest)'s first digest, each on its own, for a person
    /// finding which one two nodes differ in: the sequence, the watermark, the idempotency ids (their
    /// count and digest), the pending labels' digest, and the stages' digest (`none` when they are a
    /// unit of their own, or none are configured).
    pub fn unkeyed_parts(&self) -> Vec<(&'static str, String)> {
        let h = |b: Result<Vec<u8>, _>| {
            format!(
                "{:016x}",
                xxhash_rust::xxh3::xxh3_64(&b.unwrap_or_default())
            )
        };
        let (ids, labels, stages) = self.unkeyed(!self.stages_unit());
        let stages = if stages.is_empty() {
            "none".to_string()
        } else {
            h(bincode::serialize(&stages))
        };
        vec![
            ("sequence", self.sq.seq.to_string()),
            ("watermark", self.sq.watermark.to_string()),
            ("idempotency_ids", ids.len().to_string()),
            ("idempotency_ids_digest", h(bincode::serialize(&ids))),
            ("pending_labels_digest", h(bincode::serialize(&labels))),
            ("stages_digest", stages),
        ]
    }

    /// What the unkeyed digest reads besides the sequence and the watermark: the idempotency ids,
    /// the pending labels, and (`with_stages`) each stage's name and digest.
    #[allow(clippy::type_complexity)]
    fn unkeyed(
        &self,
        with_stages: bool,
    ) -> (
        Vec<&impl serde::Serialize>,
        Vec<Vec<&impl serde::Serialize>>,
        Vec<(&str, u64)>,
    ) {
        (
            self.sq.dedupe.order.iter().collect(),
            self.sq.labels.iter().map(|q| q.iter().collect()).collect(),
            self.stages
                .iter()
                .filter(|_| with_stages)
                .map(|st| (st.name(), st.digest()))
                .collect(),
        )
    }

    /// The digest of the sequence, watermark, idempotency ids, pending labels and (`with_stages`)
    /// stages, with the keyed state's snapshot bytes among them when given.
    fn digest_with(&self, features: Option<Vec<u8>>, with_stages: bool) -> u64 {
        let (s, w) = (self.sq.seq, self.sq.watermark);
        let (d, l, stages) = self.unkeyed(with_stages);
        // Plain data: encoding into a Vec cannot fail.
        let bytes = match features {
            Some(f) => bincode::serialize(&(s, w, d, l, f, stages)),
            None => bincode::serialize(&(s, w, d, l, stages)),
        };
        xxhash_rust::xxh3::xxh3_64(&bytes.unwrap_or_default())
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.config.schema
    }

    pub fn features(&self) -> &Arc<FeatureSet> {
        &self.config.features
    }

    pub fn feature_state(&self) -> &FeatureState {
        &self.state
    }

    /// Newest event time seen.
    pub fn watermark(&self) -> Option<i64> {
        (self.sq.watermark != i64::MIN).then_some(self.sq.watermark)
    }

    /// Number of events applied so far (including released labels).
    pub fn sequence(&self) -> u64 {
        self.sq.seq
    }

    /// The entity graph's size: accounts, link edges, block edges (`None` without `[graph]`).
    pub fn graph_size(&self) -> Option<(usize, usize, usize)> {
        self.stages
            .iter()
            .find_map(|st| st.as_any().downcast_ref::<crate::stages::GraphStage>())
            .map(|g| g.state.size())
    }

    /// The entity graph around `account` (see [`GraphState::neighborhood`]); `None` without `[graph]`.
    pub fn graph_neighborhood(
        &self,
        account: &str,
        hops: usize,
        max_nodes: usize,
    ) -> Option<crate::graph::Neighborhood> {
        self.stages
            .iter()
            .find_map(|st| st.as_any().downcast_ref::<crate::stages::GraphStage>())
            .map(|g| g.state.neighborhood(account, hops, max_nodes))
    }

    /// Event ids remembered for idempotency.
    pub fn idempotency_ids(&self) -> usize {
        self.sq.dedupe.order.len()
    }

    /// Labels scheduled and not yet released.
    pub fn pending_labels(&self) -> usize {
        self.sq.labels.iter().map(VecDeque::len).sum()
    }

    /// Processes one validated event: everything it produced, in one value ([`Processed`]): the
    /// features as of the event (read-your-writes), the decision (when policies cover its type), the
    /// graph detectors' findings and its own delayed labels. The caller's event is not changed. The
    /// server, `argus test` and the benches call it; replay calls [`run`](Self::run), the same steps
    /// with the partitions on worker threads.
    pub fn process(&mut self, ev: &Event) -> Result<Processed<'_>, ProcessError> {
        self.step(ev, true)
    }

    /// As [`process`](Self::process), without deciding: for state that is rebuilt from a log whose
    /// records already hold their decisions (the server's recovery), and feature-only replays.
    pub fn apply(&mut self, ev: &Event) -> Result<Processed<'_>, ProcessError> {
        self.step(ev, false)
    }

    /// The start of every step: the event copied into the engine's buffer (its own label columns
    /// taken out by the sequencer), admitted, and the labels it releases applied before it.
    fn admit(&mut self, ev: &Event) -> Result<Vec<OwnLabel>, ProcessError> {
        self.ctl.start = Some(std::time::Instant::now());
        // The event as features and rules see it: a copy into a reused buffer, whose own label
        // columns the sequencer takes out.
        let seen = &mut self.current;
        seen.id.clone_from(&ev.id);
        seen.ty = ev.ty;
        seen.time = ev.time;
        seen.fields.clone_from(&ev.fields);
        self.released.clear();
        let labels = self.sq.admit(&self.config, seen, &mut self.released)?;
        let fs = &self.config.features;
        let mut seq = self.sq.seq - self.released.len() as u64 - 1;
        for r in &self.released {
            seq += 1;
            self.state.apply(fs, r, seq, None);
        }
        Ok(labels)
    }

    fn step(&mut self, ev: &Event, decide: bool) -> Result<Processed<'_>, ProcessError> {
        let labels = self.admit(ev)?;
        let fs = &self.config.features;
        self.state
            .apply(fs, &self.current, self.sq.seq, Some(&mut self.out));
        let seq = self.sq.seq;
        Ok(self.conclude_current(seq, labels, decide))
    }

    /// Processes every event of `src` in order, as [`process`](Self::process) would one by one (the
    /// same answers, state and digest), with the feature partitions on worker threads: the events are
    /// admitted in batches; while the partitions apply one batch, this thread admits the next and
    /// concludes the previous one (assembles the vectors, runs the graph and the policies, hands each
    /// [`Processed`] to the source in input order).
    pub fn run<S: Source>(&mut self, src: &mut S) -> Result<RunTimes, S::Error> {
        use std::sync::mpsc;
        use std::time::Instant;
        let mut times = RunTimes::default();
        let Engine {
            config,
            policies,
            decoder,
            state,
            sq,
            out,
            stages,
            ctl,
            ..
        } = self;
        let fs = config.features.clone();
        let mut fwm = state.watermark();
        let mut released = Vec::new();
        // Seconds spent reading and decoding, and admitting.
        let mut ftimes = (0.0f64, 0.0f64);
        // Fills a batch with up to BATCH accepted events (and the labels they release); the own labels
        // of each accepted event, in order, go to `own`. `true` at the end of the input.
        let mut fill = |src: &mut S, fwm: &mut i64| -> Result<Filled, S::Error> {
            let mut b = Batch::default();
            let mut own = Vec::with_capacity(BATCH);
            while own.len() < BATCH {
                let t0 = Instant::now();
                let next = src.next(decoder)?;
                let t1 = Instant::now();
                ftimes.0 += (t1 - t0).as_secs_f64();
                let Some(mut ev) = next else {
                    return Ok((b, own, true));
                };
                released.clear();
                match sq.admit(config, &mut ev, &mut released) {
                    Ok(labels) => {
                        let mut seq = sq.seq - released.len() as u64 - 1;
                        for r in released.drain(..) {
                            seq += 1;
                            *fwm = (*fwm).max(r.time);
                            b.events.push(r);
                            b.meta.push((seq, *fwm, false));
                        }
                        *fwm = (*fwm).max(ev.time);
                        b.events.push(ev);
                        b.meta.push((sq.seq, *fwm, true));
                        own.push(labels);
                    }
                    Err(e) => b.refused.push((own.len(), ev, e)),
                }
                ftimes.1 += t1.elapsed().as_secs_f64();
            }
            Ok((b, own, false))
        };
        // Stages that read only the event (the graph) run on a worker of their own, beside the
        // partitions, on the same batch; the others run here, after the vector is assembled.
        let offload = !stages.is_empty() && stages.iter().all(|st| !st.reads_features());
        let stage_slots: Vec<usize> = if offload {
            stages.iter().flat_map(|st| st.writes()).collect()
        } else {
            Vec::new()
        };
        let n_features = fs.features.len();
        let all_stages: &mut [Box<dyn crate::stages::Stage>] = stages.as_mut_slice();
        let (worker_stages, inline_stages) = if offload {
            all_stages.split_at_mut(all_stages.len())
        } else {
            all_stages.split_at_mut(0)
        };
        let mut result = Ok(());
        std::thread::scope(|s| {
            // A worker's answer, or the payload of its panic (a bug, never input: it is re-raised here
            // rather than leaving this thread waiting for an answer that cannot come).
            type Answer = Result<(usize, Answers, f64), Box<dyn std::any::Any + Send>>;
            let (answer_tx, answer_rx) = mpsc::channel::<Answer>();
            times.partitions = vec![0.0; state.partitions()];
            let mut to_workers = Vec::new();
            for (p, mut w) in state.split().into_iter().enumerate() {
                let (tx, rx) = mpsc::channel::<(Arc<Batch>, Answers)>();
                to_workers.push(tx);
                let (answer_tx, fs) = (answer_tx.clone(), &fs);
                s.spawn(move || {
                    for (b, spare) in rx {
                        let t = Instant::now();
                        let a = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            w.run(fs, &b.steps(), spare)
                        }));
                        drop(b);
                        let failed = a.is_err();
                        let msg = a.map(|a| (p, a, t.elapsed().as_secs_f64()));
                        if answer_tx.send(msg).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(answer_tx);
            // The stages' worker: per read event of a batch, the values of the stages' slots and
            // the findings, in sequence order.
            type StageAnswer = Result<(StageOut, f64), Box<dyn std::any::Any + Send>>;
            let (stage_answer_tx, stage_answer_rx) = mpsc::channel::<StageAnswer>();
            let to_stages = if offload {
                let (tx, rx) = mpsc::channel::<Arc<Batch>>();
                let slots = &stage_slots;
                s.spawn(move || {
                    let mut scratch = vec![Value::Null; n_features];
                    for b in rx {
                        let t = Instant::now();
                        let a = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let mut o = StageOut::default();
                            for (ev, &(_, _, read)) in b.events.iter().zip(&b.meta) {
                                if !read {
                                    continue;
                                }
                                let mut found = Vec::new();
                                for st in worker_stages.iter_mut() {
                                    st.apply(ev, &mut scratch, &mut found);
                                }
                                o.values
                                    .extend(slots.iter().map(|&i| std::mem::take(&mut scratch[i])));
                                o.findings.push(found);
                            }
                            o
                        }));
                        drop(b);
                        let failed = a.is_err();
                        if stage_answer_tx
                            .send(a.map(|o| (o, t.elapsed().as_secs_f64())))
                            .is_err()
                            || failed
                        {
                            break;
                        }
                    }
                });
                Some(tx)
            } else {
                drop(stage_answer_tx);
                None
            };
            let parts = to_workers.len();
            result = (|| {
                // Answers of concluded batches, given back to the workers to refill.
                let mut spare: Vec<Answers> = (0..parts).map(|_| Answers::default()).collect();
                let send = |b: &Arc<Batch>, spare: &mut Vec<Answers>| {
                    for (tx, a) in to_workers.iter().zip(spare.iter_mut()) {
                        let _ = tx.send((b.clone(), std::mem::take(a)));
                    }
                    if let Some(tx) = &to_stages {
                        let _ = tx.send(b.clone());
                    }
                };
                let (first, mut own, mut ended) = fill(src, &mut fwm)?;
                let mut applying = Arc::new(first);
                send(&applying, &mut spare);
                loop {
                    // Admit the next batch while the partitions apply this one.
                    let (next, next_own, end) = if ended {
                        (Batch::default(), Vec::new(), true)
                    } else {
                        fill(src, &mut fwm)?
                    };
                    let mut answers: Vec<Answers> =
                        (0..parts).map(|_| Answers::default()).collect();
                    let t = Instant::now();
                    for _ in 0..parts {
                        match answer_rx.recv() {
                            Ok(Ok((p, a, secs))) => {
                                answers[p] = a;
                                times.partitions[p] += secs;
                            }
                            Ok(Err(panic)) => std::panic::resume_unwind(panic),
                            // Every worker holds a sender while this thread holds their queues.
                            Err(_) => unreachable!("the partition workers stopped"),
                        }
                    }
                    let mut staged = match &to_stages {
                        Some(_) => match stage_answer_rx.recv() {
                            Ok(Ok((o, secs))) => {
                                times.global_stages += secs;
                                Some(o)
                            }
                            Ok(Err(panic)) => std::panic::resume_unwind(panic),
                            Err(_) => unreachable!("the stages' worker stopped"),
                        },
                        None => None,
                    };
                    times.wait += t.elapsed().as_secs_f64();
                    let applied = std::mem::replace(&mut applying, Arc::new(next));
                    let more = !applying.events.is_empty() || !applying.refused.is_empty();
                    if more {
                        send(&applying, &mut spare);
                    }
                    // Conclude the applied batch, in input order, while the partitions apply the next.
                    let mut reading = Reading::new(answers);
                    let mut own_labels = own.into_iter();
                    let mut refused = applied.refused.iter();
                    let mut refusal = refused.next();
                    let mut accepted = 0;
                    let t = Instant::now();
                    let mut delivering = 0.0;
                    for (ev, &(seq, _, read)) in applied.events.iter().zip(&applied.meta) {
                        if !read {
                            continue;
                        }
                        while let Some((_, rev, e)) = refusal.filter(|r| r.0 == accepted) {
                            src.refused(rev, e.clone())?;
                            refusal = refused.next();
                        }
                        reading.next(&fs, ev, out);
                        let mut found = Vec::new();
                        if let Some(o) = staged.as_mut() {
                            let vals = &mut o.values[accepted * stage_slots.len()..];
                            for (&slot, v) in stage_slots.iter().zip(vals) {
                                out[slot] = std::mem::take(v);
                            }
                            found = std::mem::take(&mut o.findings[accepted]);
                        }
                        accepted += 1;
                        // In a run, the budget counts from here: the partitions applied this
                        // event's features with the whole batch.
                        ctl.start = Some(Instant::now());
                        let (decision, mut findings) =
                            conclude(config, policies.as_ref(), inline_stages, ev, out, true, ctl);
                        if !found.is_empty() {
                            found.append(&mut findings);
                            findings = found;
                        }
                        let d = Instant::now();
                        src.processed(Processed {
                            seq,
                            event: ev,
                            features: out,
                            decision,
                            findings,
                            labels: own_labels.next().unwrap_or_default(),
                        })?;
                        delivering += d.elapsed().as_secs_f64();
                    }
                    times.events += accepted as u64;
                    times.conclude += t.elapsed().as_secs_f64() - delivering;
                    times.deliver += delivering;
                    while let Some((_, rev, e)) = refusal {
                        src.refused(rev, e.clone())?;
                        refusal = refused.next();
                    }
                    spare = reading.into_answers();
                    own = next_own;
                    ended = end;
                    if !more {
                        return Ok(());
                    }
                }
            })();
            drop(to_workers);
            drop(to_stages);
        });
        state.note_batch(fwm);
        (times.decode, times.admit) = ftimes;
        result.map(|()| times)
    }

    /// Serializes the whole engine state (features, idempotency ids, pending labels, counters) with a
    /// configuration fingerprint and a CRC-32.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snap_header(self.sq.dedupe.order.iter().copied().collect(), Vec::new())
            .encode(&self.state)
    }

    fn snap_header(&self, dedupe: Vec<(i64, u128)>, state: Vec<u8>) -> EngineSnap {
        EngineSnap {
            schema_fp: self.config.schema.fingerprint(),
            features_fp: self.config.features.fingerprint(),
            secret_fp: self.config.secret_fingerprint,
            seq: self.sq.seq,
            watermark: self.sq.watermark,
            counters: self.sq.counters.clone(),
            dedupe,
            labels: self
                .sq
                .labels
                .iter()
                .map(|q| q.iter().cloned().collect())
                .collect(),
            stages: self
                .stages
                .iter()
                .map(|st| crate::stages::Section {
                    name: st.name().to_string(),
                    fingerprint: st.fingerprint(),
                    bytes: st.encode(),
                })
                .chain((!self.state.holds_all() || !self.stages_held).then(|| {
                    crate::stages::Section {
                        name: HELD_SECTION.to_string(),
                        fingerprint: self.state.partitions() as u64,
                        // One byte per unit: the partitions, then the global stages when
                        // they are a unit of their own (earlier snapshots: the partitions).
                        bytes: self.units_held().iter().map(|h| u8::from(*h)).collect(),
                    }
                }))
                .collect(),
            state,
        }
    }

    /// Starts an incremental copy of the state for a snapshot taken while events keep arriving (the
    /// server's). Between events, [`copy_step`](Self::copy_step) copies a bounded part; then
    /// [`finish_copy`](Self::finish_copy) returns a [`PendingSnapshot`] equal to the state at that
    /// moment, to be encoded on another thread. Keys that expire meanwhile are copied as removed.
    ///
    /// With a `spill` directory, the copied feature records move to an unlinked file there as they are
    /// encoded, so that the copy holds about 60 bytes a key in memory rather than the records.
    pub fn begin_copy(&mut self, spill: Option<&Path>) -> EngineCopy {
        let n = self.sq.dedupe.order.len();
        EngineCopy {
            state: self.state.begin_copy(spill),
            dedupe: Vec::with_capacity(n),
            first_abs: self.sq.dedupe_evicted,
            end_abs: self.sq.dedupe_evicted + n as u64,
        }
    }

    /// Absolute position of the next id to copy, dropping copied ids the cap has forgotten since.
    fn dedupe_catch_up(&self, c: &mut EngineCopy) -> u64 {
        let gone = self
            .sq
            .dedupe_evicted
            .saturating_sub(c.first_abs)
            .min(c.dedupe.len() as u64) as usize;
        if gone > 0 {
            c.dedupe.drain(..gone);
            c.first_abs += gone as u64;
        }
        let next = c.first_abs + c.dedupe.len() as u64;
        if next < self.sq.dedupe_evicted {
            c.first_abs = self.sq.dedupe_evicted;
            return self.sq.dedupe_evicted;
        }
        next
    }

    /// Copies up to `budget` more keys (and four times as many idempotency ids); `Ok(true)` when only
    /// the final step is left.
    pub fn copy_step(&mut self, c: &mut EngineCopy, budget: usize) -> Result<bool, CopyAborted> {
        // Ids are only appended at the back and forgotten at the front (cap and TTL alike, both
        // counted in `dedupe_evicted`).
        let next = self.dedupe_catch_up(c);
        let end = next
            .saturating_add(budget.saturating_mul(4) as u64)
            .min(c.end_abs);
        if end > next {
            let base = self.sq.dedupe_evicted;
            c.dedupe.extend(
                self.sq
                    .dedupe
                    .order
                    .range((next - base) as usize..(end - base) as usize)
                    .copied(),
            );
        }
        let done = self.state.copy_step(&mut c.state, budget)?;
        Ok(done && end.max(next) >= c.end_abs)
    }

    /// Completes the copy: what changed since it began is copied again.
    pub fn finish_copy(&mut self, mut c: EngineCopy) -> Result<PendingSnapshot, CopyAborted> {
        let next = self.dedupe_catch_up(&mut c);
        let state = self.state.finish_copy(c.state)?;
        let mut dedupe = c.dedupe;
        dedupe.extend(
            self.sq
                .dedupe
                .order
                .range((next - self.sq.dedupe_evicted) as usize..)
                .copied(),
        );
        Ok(PendingSnapshot {
            header: self.snap_header(dedupe, Vec::new()),
            state,
        })
    }

    /// Rebuilds an engine from a snapshot taken under the same configuration.
    pub fn restore(config: Config, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        if bytes.len() >= 8 && bytes.starts_with(b"ARGUSSN") && &bytes[..8] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Incompatible(format!(
                "written by another version of Argus (format {})",
                String::from_utf8_lossy(&bytes[7..8])
            )));
        }
        if bytes.len() < 12 || &bytes[..8] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Corrupt("bad magic".into()));
        }
        let body = &bytes[8..bytes.len() - 4];
        let crc = u32::from_le_bytes(
            bytes[bytes.len() - 4..]
                .try_into()
                .map_err(|_| SnapshotError::Corrupt("short".into()))?,
        );
        if crc32fast::hash(body) != crc {
            return Err(SnapshotError::Corrupt("checksum mismatch".into()));
        }
        let snap: EngineSnap =
            bincode::deserialize(body).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
        if snap.schema_fp != config.schema.fingerprint() {
            return Err(SnapshotError::Incompatible("schema changed".into()));
        }
        if snap.secret_fp != config.secret_fingerprint {
            return Err(SnapshotError::Incompatible(
                "the pseudonymization secret changed: tokens would not match".into(),
            ));
        }
        if snap.features_fp != config.features.fingerprint() {
            return Err(SnapshotError::Incompatible(
                "feature definitions changed".into(),
            ));
        }
        let state =
            FeatureState::restore_partitioned(&config.features, &snap.state, config.partitions)
                .map_err(|e| SnapshotError::Incompatible(e.to_string()))?;
        let mut e = Engine::new(config);
        e.state = state;
        let mut sections = snap.stages;
        let mut stages_held = true;
        if let Some(i) = sections.iter().position(|s| s.name == HELD_SECTION) {
            // A sharded node's snapshot: only the units it held hold state.
            let s = sections.remove(i);
            let n = s.fingerprint as usize;
            if n != e.state.partitions()
                || !(s.bytes.len() == n || (s.bytes.len() == n + 1 && e.stages_unit()))
            {
                return Err(SnapshotError::Incompatible(format!(
                    "written by a sharded node with {} partitions and {} units, configured {} partitions and {} units (the global stages are a unit when they read only the event)",
                    s.fingerprint,
                    s.bytes.len(),
                    e.state.partitions(),
                    e.units()
                )));
            }
            for (p, h) in s.bytes.iter().enumerate().take(n) {
                if *h == 0 {
                    e.state.release(&e.config.features, p);
                }
            }
            stages_held = s.bytes.get(n).is_none_or(|h| *h != 0);
        }
        crate::stages::restore_all(&mut e.stages, sections).map_err(|err| match err {
            crate::stages::SectionError::Incompatible(m) => SnapshotError::Incompatible(m),
            crate::stages::SectionError::Corrupt(m) => SnapshotError::Corrupt(m),
        })?;
        if !stages_held {
            e.release_partition(e.state.partitions());
        }
        e.sq.seq = snap.seq;
        e.sq.watermark = snap.watermark;
        e.sq.counters = snap.counters;
        for (t, h) in snap.dedupe {
            e.sq.dedupe.set.insert(h);
            e.sq.dedupe.order.push_back((t, h));
        }
        // A snapshot taken under a larger `dedupe_max_ids` is brought under this one.
        let max = e.config.dedupe_max_ids;
        e.sq.forget_over_cap(max);
        if snap.labels.len() != e.sq.labels.len() {
            return Err(SnapshotError::Incompatible(
                "label declarations changed".into(),
            ));
        }
        e.sq.labels = snap.labels.into_iter().map(VecDeque::from).collect();
        Ok(e)
    }

    /// The units a snapshot's engine held (`None`: every one), read without restoring it: the
    /// partitions, then the global stages when they are a unit of their own (see
    /// [`units_held`](Self::units_held); a snapshot of an earlier release lists the partitions only).
    pub fn held_in_snapshot(bytes: &[u8]) -> Result<Option<Vec<bool>>, SnapshotError> {
        if bytes.len() < 12 || &bytes[..8] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Corrupt("bad magic".into()));
        }
        let snap: EngineSnap = bincode::deserialize(&bytes[8..bytes.len() - 4])
            .map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
        Ok(snap
            .stages
            .iter()
            .find(|s| s.name == HELD_SECTION)
            .map(|s| s.bytes.iter().map(|b| *b != 0).collect()))
    }

    /// Writes a snapshot atomically: temporary file, fsync, rename, fsync of the directory.
    pub fn save_snapshot(&self, path: &Path) -> Result<(), SnapshotError> {
        Ok(write_atomically(path, &self.snapshot())?)
    }

    pub fn load_snapshot(config: Config, path: &Path) -> Result<Engine, SnapshotError> {
        let bytes = std::fs::read(path)?;
        Engine::restore(config, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed snapshot has exactly the bytes of the in-memory encoding it replaced
    /// (`magic | bincode(EngineSnap with state bytes) | crc32(body)`): snapshots written before still
    /// restore, and new ones restore in older code of the same format.
    #[test]
    fn streamed_snapshots_have_the_in_memory_encoding() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cfg = Config::load(&root.join("examples/starter/argus.toml")).expect("starter config");
        let mut e = Engine::new(cfg);
        for i in 0..200i64 {
            let doc = serde_json::json!({"id": format!("e{i}"), "type": "account.login",
                "time": 1_767_225_600_000i64 + i * 1000, "actor": format!("u{}", i % 7),
                "data": {"success": i % 3 != 0, "device": format!("d{}", i % 5), "ip": "81.2.69.10"}});
            let ev = e.decoder().decode_json(&doc).expect("valid");
            e.process(&ev).expect("accepted");
        }
        let mut head = e.snap_header(e.sq.dedupe.order.iter().copied().collect(), Vec::new());
        head.state = e.state.snapshot();
        let body = bincode::serialize(&head).expect("plain data");
        let mut old = SNAPSHOT_MAGIC.to_vec();
        old.extend_from_slice(&body);
        old.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        assert_eq!(e.snapshot(), old);
        let mut streamed = Vec::new();
        let c = e.begin_copy(None);
        e.finish_copy(c)
            .expect("nothing aborts a copy")
            .write_to(&mut streamed)
            .expect("to a Vec");
        assert_eq!(streamed, old);
    }
}
