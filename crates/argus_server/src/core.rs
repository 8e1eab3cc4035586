//! The core: one thread that owns the engine, the event log and the decision index, and serves every
//! request that reads or changes state, in arrival order (so that live traffic is one deterministic
//! sequence, the same one the log records and recovery replays).
//!
//! Requests arrive on a bounded queue. The core takes what is waiting (up to [`MAX_GROUP`]), handles it
//! — decode, features, decision, log append — then commits the log once for the whole group (group
//! commit) and only then answers. An event is acknowledged only after the commit that holds it.

use crate::metrics as m;
use crate::settings::Settings;
use crate::wal::{Loc, Record, Wal, WalError};
use argus_engine::{Config, Engine, ProcessError};
use argus_event::{Event, Value};
use argus_policy::lists::{item_key, ListItem};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Log record kinds.
pub const KIND_EVENT: u8 = 1;
pub const KIND_LIST: u8 = 2;

/// Most requests handled per log commit.
pub const MAX_GROUP: usize = 512;

const SNAP_MAGIC: &[u8; 8] = b"ARGUSSV1";

/// A configuration and its policies (none: features only).
pub type Loaded = (Config, Option<argus_policy::Loaded>);

/// Loads the configuration and policies (at start and on every reload).
pub type Loader = Arc<dyn Fn() -> anyhow::Result<Loaded> + Send + Sync>;

/// An HTTP-shaped answer: status and JSON body (errors use the one error shape, see [`error`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// The body; for event results built on the hot path, only their status (`"accepted"`,
    /// `"duplicate"`) with the whole body in `raw`.
    pub body: Json,
    /// The body already serialized (event results: the decision is serialized once, for the log and
    /// the answer).
    pub raw: Option<Vec<u8>>,
}

/// `{"status": …, "id": …, "seq"?: …, "decision": <raw or null>}` without building a JSON tree.
fn event_answer(status: &'static str, id: &str, seq: Option<u64>, decision: &[u8]) -> Answer {
    let mut b = Vec::with_capacity(64 + id.len() + decision.len());
    b.extend_from_slice(b"{\"status\":\"");
    b.extend_from_slice(status.as_bytes());
    b.extend_from_slice(b"\",\"id\":");
    serde_json::to_writer(&mut b, id).unwrap_or_default();
    if let Some(seq) = seq {
        b.extend_from_slice(b",\"seq\":");
        b.extend_from_slice(seq.to_string().as_bytes());
    }
    b.extend_from_slice(b",\"decision\":");
    b.extend_from_slice(if decision.is_empty() {
        b"null"
    } else {
        decision
    });
    b.push(b'}');
    Answer {
        status: 200,
        body: Json::String(status.into()),
        raw: Some(b),
    }
}

/// The one error shape of every 4xx/5xx: `{"error": {"code", "message", "details"?}}`.
pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({"error": {"code": code, "message": message.into()}}),
        raw: None,
    }
}

fn error_with(status: u16, code: &str, message: impl Into<String>, details: Json) -> Answer {
    Answer {
        status,
        body: json!({"error": {"code": code, "message": message.into(), "details": details}}),
        raw: None,
    }
}

fn ok(body: Json) -> Answer {
    Answer {
        status: 200,
        body,
        raw: None,
    }
}

/// A value-list change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListChange {
    pub list: String,
    /// The stored key (tokenized for personal-data kinds).
    pub key: String,
    /// `None`: remove.
    pub item: Option<OverlayItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverlayItem {
    pub reason: String,
    pub expires: Option<i64>,
}

/// What a request asks of the core.
pub enum Request {
    /// Events (one, a batch, or labels): raw JSON documents.
    Events {
        items: Vec<Box<serde_json::value::RawValue>>,
        labels_only: bool,
        batch: bool,
    },
    Decision {
        id: String,
    },
    Entity {
        kind: String,
        id: String,
    },
    ListGet {
        name: String,
    },
    ListSet {
        name: String,
        value: String,
        reason: String,
        ttl: Option<String>,
        expires: Option<String>,
    },
    ListRemove {
        name: String,
        value: String,
    },
    Reload,
    Status,
    /// The full-state digest (walks the whole state: for verification, not for monitoring).
    Digest,
    /// The graph detectors' newest findings.
    Findings {
        limit: usize,
        detector: Option<String>,
        account: Option<String>,
    },
    /// Flush and sync the log and write a final snapshot.
    Shutdown,
}

pub struct Msg {
    pub req: Request,
    pub reply: oneshot::Sender<Answer>,
}

/// State the HTTP layer reads without asking the core.
#[derive(Default)]
pub struct Shared {
    pub ready: AtomicBool,
    /// Set when the core can no longer accept writes (log I/O failure, a panic while changing state).
    pub failed: AtomicBool,
    pub queued: AtomicUsize,
    pub policy_version: std::sync::Mutex<String>,
}

/// A decision remembered for the entity API: where its record is, and what the record header says.
/// Rebuilt from the log at start (not part of snapshots).
#[derive(Debug, Clone, Copy)]
struct Recent {
    loc: Loc,
    head: EventHead,
}

#[derive(Serialize, Deserialize, Default)]
struct Extras {
    /// Last log sequence number the snapshot covers.
    seq: u64,
    overlay: BTreeMap<(String, String), Option<OverlayItem>>,
}

/// The fixed-size header of an event record: what the decision index and the entity API need,
/// readable without parsing the event.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EventHead {
    /// Digest of the event id.
    idh: u128,
    /// Digest of `actor kind:actor` (see [`actor_key`]).
    actor: u128,
    time: i64,
    ty: u16,
    /// Index in [`argus_policy::Action::ALL`]; `NO_ACTION` when the event was not decided.
    action: u8,
    score: i64,
}

const NO_ACTION: u8 = 0xff;
const HEAD_LEN: usize = 16 + 16 + 8 + 2 + 1 + 8;

/// Outcome of one event.
enum Outcome {
    Answer(Answer),
    /// Appended to the log: the answer stands once the commit succeeds.
    Logged(Answer),
}

pub struct Core {
    settings: Settings,
    loader: Loader,
    engine: Engine,
    wal: Wal,
    /// Event id digest → where its record is.
    index: HashMap<u128, Loc>,
    overlay: BTreeMap<(String, String), Option<OverlayItem>>,
    /// Recent decisions per actor, keyed by the digest of `kind:actor`.
    recent: HashMap<u128, VecDeque<Recent>>,
    recent_order: VecDeque<u128>,
    label_types: Vec<u16>,
    scratch: Vec<u8>,
    shared: Arc<Shared>,
    failed: Option<String>,
    snap_seq: u64,
    since_snap: u64,
    last_snap: Instant,
    snap_job: Option<std::thread::JoinHandle<Result<u64, String>>>,
    syncer: Option<std::sync::mpsc::Sender<SyncJob>>,
    syncer_thread: Option<std::thread::JoinHandle<()>>,
    metrics: m::CoreMetrics,
    /// A snapshot's incremental copy in progress, and when its last step ran.
    copying: Option<argus_engine::EngineCopy>,
    last_step: Instant,
    /// Records applied since the last copy step: the next step copies at least twice as many keys, so
    /// that a snapshot keeps up with any ingest rate.
    applied_since_step: usize,
    /// The record after which the copy in progress began, and the keys it listed.
    copy_from: (u64, usize),
    /// The indexed events in log order, so that the index keeps the newest `max_indexed_events` and
    /// retention can drop a deleted segment's events without scanning the whole index.
    index_order: VecDeque<(Loc, u128)>,
    /// The graph detectors' findings.
    findings: crate::findings::FindingsStore,
    /// The log record being replayed at start (its findings are stored under it).
    replaying_seq: u64,
}

/// Records (keys, and four times as many idempotency ids) copied per step of a snapshot.
const COPY_STEP: usize = 512;
/// Steps are at least this far apart while requests are waiting (back to back when idle), so that a
/// snapshot takes a bounded share of the core.
const STEP_EVERY: Duration = Duration::from_millis(5);
/// Index entries of deleted segments dropped per group.
const UNINDEX_STEP: usize = 8192;

/// A group's answers, to be sent once `file` (the segment its records went to) is synced.
struct SyncJob {
    file: Option<Arc<std::fs::File>>,
    /// False when the group's records could not even be written.
    ok: bool,
    answers: Vec<(oneshot::Sender<Answer>, Outcome)>,
}

fn answer_all(answers: Vec<(oneshot::Sender<Answer>, Outcome)>, committed: bool) {
    for (tx, out) in answers {
        let a = match out {
            Outcome::Answer(a) => a,
            Outcome::Logged(a) if committed => a,
            Outcome::Logged(_) => error(
                503,
                "log_unavailable",
                "the event could not be written to the event log; it was not acknowledged",
            ),
        };
        let _ = tx.send(a);
    }
}

/// The syncer thread: takes every group waiting, syncs each segment they wrote once, answers them in
/// order. While it syncs, the core prepares the next groups: that is the group commit.
fn syncer(rx: Receiver<SyncJob>, shared: Arc<Shared>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        let t = Instant::now();
        let mut files: Vec<&Arc<std::fs::File>> = Vec::new();
        for f in jobs.iter().filter_map(|j| j.file.as_ref()) {
            if !files.iter().any(|g| Arc::ptr_eq(g, f)) {
                files.push(f);
            }
        }
        let mut synced = true;
        for f in &files {
            if let Err(e) = f.sync_data() {
                tracing::error!("syncing the event log: {e}; refusing writes until restart");
                synced = false;
            }
        }
        if !files.is_empty() {
            m::inc(m::FSYNCS, files.len() as u64);
            m::observe(m::COMMIT_SECONDS, t.elapsed().as_secs_f64());
        }
        if !synced {
            shared.failed.store(true, Ordering::SeqCst);
            shared.ready.store(false, Ordering::SeqCst);
        }
        for j in jobs {
            answer_all(j.answers, synced && j.ok);
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Log(#[from] WalError),
    #[error("{0}")]
    State(String),
}

/// What recovery did, for the log and for tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    pub snapshot_seq: u64,
    pub replayed: u64,
    pub indexed: u64,
    pub truncated_bytes: u64,
    pub millis: u128,
}

const MAX_RECENT_ACTORS: usize = 200_000;

fn id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

fn action_index(a: argus_policy::Action) -> u8 {
    argus_policy::Action::ALL
        .iter()
        .position(|x| *x == a)
        .unwrap_or(0) as u8
}

fn actor_key(kind: &str, actor: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(kind.as_bytes());
    h.update(&[0]);
    h.update(actor.as_bytes());
    h.digest128()
}

/// An event as the log keeps it: decoded (personal data tokenized, derived fields computed), fields by
/// name so that a record can be read back under a schema that gained fields.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    id: String,
    #[serde(rename = "type")]
    ty: String,
    time: i64,
    fields: Vec<(String, Value)>,
}

/// [`StoredEvent`] borrowed from a live event (same bytes), so that logging copies no field names.
#[derive(Serialize)]
struct StoredEventRef<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    time: i64,
    fields: Vec<(&'a str, &'a Value)>,
}

fn stored_event(schema: &argus_event::Schema, ev: &Event) -> Result<Vec<u8>, String> {
    let et = schema.get(ev.ty);
    let fields = ev
        .fields
        .iter()
        .zip(&et.fields)
        .filter(|(v, _)| !v.is_null())
        .map(|(v, f)| (f.name.as_str(), v))
        .collect();
    bincode::serialize(&StoredEventRef {
        id: &ev.id,
        ty: &et.name,
        time: ev.time,
        fields,
    })
    .map_err(|e| format!("encoding the event for the log: {e}"))
}

fn load_event(schema: &argus_event::Schema, bytes: &[u8]) -> Result<Event, String> {
    let st: StoredEvent =
        bincode::deserialize(bytes).map_err(|e| format!("undecodable event: {e}"))?;
    let ty = schema
        .type_id(&st.ty)
        .ok_or_else(|| format!("unknown event type `{}`", st.ty))?;
    let et = schema.get(ty);
    let mut fields = vec![Value::Null; et.fields.len()];
    for (name, v) in st.fields {
        let slot = et
            .slot(&name)
            .ok_or_else(|| format!("`{}` has no field `{name}`", st.ty))?;
        fields[slot] = v;
    }
    Ok(Event {
        id: st.id,
        ty,
        time: st.time,
        fields,
    })
}

/// An event record's payload: header | stored length (u32) | stored event | decision JSON.
fn event_payload(h: &EventHead, raw: &[u8], decision: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&h.idh.to_le_bytes());
    out.extend_from_slice(&h.actor.to_le_bytes());
    out.extend_from_slice(&h.time.to_le_bytes());
    out.extend_from_slice(&h.ty.to_le_bytes());
    out.push(h.action);
    out.extend_from_slice(&h.score.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(raw);
    out.extend_from_slice(decision);
}

fn head_of(p: &[u8]) -> Option<EventHead> {
    let h = p.get(..HEAD_LEN)?;
    let u128_at = |i: usize| h[i..i + 16].try_into().ok().map(u128::from_le_bytes);
    let i64_at = |i: usize| h[i..i + 8].try_into().ok().map(i64::from_le_bytes);
    Some(EventHead {
        idh: u128_at(0)?,
        actor: u128_at(16)?,
        time: i64_at(32)?,
        ty: u16::from_le_bytes([h[40], h[41]]),
        action: h[42],
        score: i64_at(43)?,
    })
}

/// `(header, stored event, decision JSON)` of an event record.
fn split_event(p: &[u8]) -> Option<(EventHead, &[u8], &[u8])> {
    let head = head_of(p)?;
    let n = u32::from_le_bytes(p.get(HEAD_LEN..HEAD_LEN + 4)?.try_into().ok()?) as usize;
    let stored = p.get(HEAD_LEN + 4..HEAD_LEN + 4 + n)?;
    Some((head, stored, &p[HEAD_LEN + 4 + n..]))
}

/// The id and actor of a stored event, without the schema.
fn stored_id_actor(stored: &[u8]) -> Option<(String, Option<Value>)> {
    let st: StoredEvent = bincode::deserialize(stored).ok()?;
    let actor = st
        .fields
        .into_iter()
        .find(|(n, _)| n == "actor")
        .map(|(_, v)| v);
    Some((st.id, actor))
}

/// Reads every event record of a data directory's log: `(sequence number, event id)` in log order.
/// For tools and tests; the server itself reads the log in [`Core::open`]. Like the server's open, it
/// cuts a torn tail off the newest segment.
pub fn read_log(data_dir: &Path) -> Result<Vec<(u64, String)>, WalError> {
    let mut out = Vec::new();
    Wal::open(
        &data_dir.join("log"),
        u64::MAX,
        crate::wal::Fsync::Never,
        |_, r| {
            if r.kind == KIND_EVENT {
                if let Some((id, _)) =
                    split_event(&r.payload).and_then(|(_, st, _)| stored_id_actor(st))
                {
                    out.push((r.seq, id));
                }
            }
        },
    )?;
    Ok(out)
}

fn value_json(v: &Value) -> Json {
    argus_policy::policy::to_json(&argus_policy::policy::to_val(v))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Resident set size of this process (Linux: `/proc/self/statm`), `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn snapshot_dir(data: &Path) -> PathBuf {
    data.join("snapshots")
}

/// Snapshots in the data directory, newest first.
fn snapshots(data: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(snapshot_dir(data))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let seq = e
                        .file_name()
                        .to_str()?
                        .strip_prefix("snap-")?
                        .strip_suffix(".bin")?
                        .parse()
                        .ok()?;
                    Some((seq, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|b| std::cmp::Reverse(b.0));
    v
}

fn encode_snapshot(
    extras: &Extras,
    engine: argus_engine::PendingSnapshot,
) -> Result<Vec<u8>, String> {
    let ex = bincode::serialize(extras).map_err(|e| format!("encoding the snapshot: {e}"))?;
    let eng = engine.encode();
    let mut out = Vec::with_capacity(ex.len() + eng.len() + 24);
    out.extend_from_slice(SNAP_MAGIC);
    out.extend_from_slice(&(ex.len() as u64).to_le_bytes());
    out.extend_from_slice(&ex);
    out.extend_from_slice(&eng);
    out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
    Ok(out)
}

fn decode_snapshot(bytes: &[u8]) -> Result<(Extras, &[u8]), String> {
    if bytes.len() < 20 || &bytes[..8] != SNAP_MAGIC {
        return Err("not an Argus server snapshot".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let n = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "short")?) as usize;
    let ex = body.get(16..16usize.saturating_add(n)).ok_or("truncated")?;
    let extras: Extras = bincode::deserialize(ex).map_err(|e| e.to_string())?;
    Ok((extras, &body[16 + n..]))
}

impl Core {
    /// Loads configuration and policies, restores the newest usable snapshot and replays the log after
    /// it through the same code path as live events.
    /// `initial`: the configuration and policies already loaded by the caller (else `loader` runs).
    pub fn open(
        settings: Settings,
        loader: Loader,
        initial: Option<Loaded>,
        shared: Arc<Shared>,
    ) -> Result<(Core, Recovery), StartError> {
        let started = Instant::now();
        let (cfg, loaded) = match initial {
            Some(x) => x,
            None => loader().map_err(|e| StartError::Config(format!("{e:#}")))?,
        };
        let data = settings.data_dir.clone();
        std::fs::create_dir_all(snapshot_dir(&data))
            .map_err(|e| StartError::State(format!("creating {}: {e}", data.display())))?;
        // The data directory holds tokens, decisions and lists about people: its owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StartError::State(format!("restricting {}: {e}", data.display())))?;
        }
        // The newest snapshot that restores under this configuration.
        let mut restored: Option<(Extras, Engine)> = None;
        let mut refused = Vec::new();
        for (seq, path) in snapshots(&data) {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    refused.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match decode_snapshot(&bytes).and_then(|(ex, eng)| {
                Engine::restore(cfg.clone(), eng)
                    .map(|e| (ex, e))
                    .map_err(|e| e.to_string())
            }) {
                Ok((ex, e)) if ex.seq == seq => {
                    restored = Some((ex, e));
                    break;
                }
                Ok(_) => refused.push(format!(
                    "{}: sequence number does not match its name",
                    path.display()
                )),
                Err(e) => refused.push(format!("{}: {e}", path.display())),
            }
        }
        for r in &refused {
            tracing::warn!("snapshot not used: {r}");
        }
        let (extras, engine) =
            restored.unwrap_or_else(|| (Extras::default(), Engine::new(cfg.clone())));
        let mut index = HashMap::new();
        let mut index_order: VecDeque<(Loc, u128)> = VecDeque::new();
        let max_indexed = settings.max_indexed_events;
        let mut heads: Vec<(Loc, EventHead)> = Vec::new();
        let mut tail: Vec<(Loc, Record)> = Vec::new();
        let snap_seq = extras.seq;
        let (wal, report) = Wal::open(
            &data.join("log"),
            settings.segment_bytes,
            settings.fsync,
            |loc, rec| {
                if rec.kind == KIND_EVENT {
                    if let Some(h) = head_of(&rec.payload) {
                        index.insert(h.idh, loc);
                        index_order.push_back((loc, h.idh));
                        if index_order.len() > max_indexed {
                            unindex_one(&mut index, &mut index_order);
                        }
                        if h.action != NO_ACTION {
                            heads.push((loc, h));
                        }
                    }
                }
                if rec.seq > snap_seq {
                    tail.push((loc, rec));
                }
            },
        )?;
        if wal.first_seq() > snap_seq + 1 && wal.last_seq() > 0 {
            let why = if refused.is_empty() {
                "no snapshot".to_string()
            } else {
                refused.join("; ")
            };
            return Err(StartError::State(format!(
                "the event log starts at record {} but the state can only be rebuilt from record {} ({why}); \
                 acknowledged events would be lost, so Argus refuses to start: restore the missing snapshot or log segments from a backup",
                wal.first_seq(),
                snap_seq + 1
            )));
        }
        if snap_seq > wal.last_seq() {
            return Err(StartError::State(format!(
                "the snapshot covers record {snap_seq} but the event log ends at record {}: the log was truncated or replaced",
                wal.last_seq()
            )));
        }
        let label_types = settings
            .label_types
            .iter()
            .filter_map(|n| cfg.schema.type_id(n))
            .collect();
        let epoch = cfg
            .graph
            .as_ref()
            .map_or_else(|| "none".to_string(), |g| format!("{:016x}", g.fingerprint));
        let findings = crate::findings::FindingsStore::open(&data, 10_000, &epoch, wal.last_seq())
            .map_err(|e| StartError::State(format!("findings store in {}: {e}", data.display())))?;
        let mut core = Core {
            settings,
            loader,
            engine,
            wal,
            index,
            overlay: extras.overlay,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            label_types,
            scratch: Vec::new(),
            shared,
            failed: None,
            snap_seq,
            since_snap: 0,
            last_snap: Instant::now(),
            snap_job: None,
            syncer: None,
            syncer_thread: None,
            metrics: m::CoreMetrics::default(),
            copying: None,
            last_step: Instant::now(),
            applied_since_step: 0,
            copy_from: (0, 0),
            index_order,
            findings,
            replaying_seq: 0,
        };
        for (loc, h) in heads {
            core.remember(Recent { loc, head: h });
        }
        core.install_policies(loaded);
        let mut rec = Recovery {
            snapshot_seq: snap_seq,
            indexed: core.index.len() as u64,
            truncated_bytes: report.truncated_bytes,
            ..Default::default()
        };
        for (loc, r) in tail {
            match r.kind {
                KIND_EVENT => {
                    match split_event(&r.payload)
                        .ok_or_else(|| "unreadable record".to_string())
                        .and_then(|(_, st, _)| load_event(core.engine.schema(), st))
                    {
                        Ok(ev) => {
                            core.replaying_seq = r.seq;
                            core.accept(ev, Some(loc), Instant::now());
                        }
                        Err(e) => tracing::warn!(
                            seq = r.seq,
                            "a logged event cannot be replayed under this schema: {e}"
                        ),
                    }
                }
                KIND_LIST => {
                    if let Ok(c) = serde_json::from_slice::<ListChange>(&r.payload) {
                        core.apply_list(&c);
                    }
                }
                k => tracing::warn!(seq = r.seq, kind = k, "unknown log record kind skipped"),
            }
            rec.replayed += 1;
        }
        core.since_snap = rec.replayed;
        rec.millis = started.elapsed().as_millis();
        m::set_gauge(m::LOG_SEGMENTS, core.wal.segment_count() as f64);
        core.shared.ready.store(true, Ordering::SeqCst);
        Ok((core, rec))
    }

    /// Compiles the overlay of API list changes onto freshly loaded policies and installs them.
    fn install_policies(&mut self, loaded: Option<argus_policy::Loaded>) {
        let Some(l) = loaded else {
            *self
                .shared
                .policy_version
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = String::new();
            self.engine.clear_policies();
            return;
        };
        let mut ps = l.policies;
        let lists = Arc::make_mut(&mut ps.lists);
        for ((list, key), item) in &self.overlay {
            apply_overlay(lists, list, key, item.as_ref());
        }
        *self
            .shared
            .policy_version
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = ps.version.clone();
        self.engine.set_policies(Arc::new(ps));
    }

    /// Serves requests until the queue closes or a shutdown request arrives.
    pub fn run(mut self, rx: Receiver<Msg>) {
        if self.wal.policy() == crate::wal::Fsync::Always {
            let (tx, srx) = std::sync::mpsc::channel();
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("argus-sync".into())
                .spawn(move || syncer(srx, shared))
            {
                Ok(h) => {
                    self.syncer = Some(tx);
                    self.syncer_thread = Some(h);
                }
                Err(e) => tracing::warn!("no syncer thread ({e}): syncing on the core thread"),
            }
        }
        let mut group: Vec<Msg> = Vec::with_capacity(MAX_GROUP);
        let mut answers: Vec<(oneshot::Sender<Answer>, Outcome)> = Vec::with_capacity(MAX_GROUP);
        loop {
            // While a snapshot copy is in progress, idle time goes to it.
            let wait = if self.copying.is_some() {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(200)
            };
            let first = match rx.recv_timeout(wait) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.wal.sync_if_due() {
                        self.fail(format!("event log: {e}"));
                    }
                    self.housekeeping(false, true);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(msg) => group.push(msg),
                    Err(_) => break,
                }
            }
            let left = self
                .shared
                .queued
                .fetch_sub(group.len(), Ordering::SeqCst)
                .saturating_sub(group.len());
            m::set_gauge(m::QUEUE_DEPTH, left as f64);
            let mut shutdown = None;
            let t_group = Instant::now();
            for msg in group.drain(..) {
                if matches!(msg.req, Request::Shutdown) {
                    shutdown = Some(msg.reply);
                    continue;
                }
                let out =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(msg.req)));
                let out = out.unwrap_or_else(|p| {
                    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
                    tracing::error!("panic while handling a request: {what}; refusing writes until restart");
                    self.fail(format!("internal error: {what}"));
                    Outcome::Answer(error(500, "internal_error", "the request could not be handled; the server refuses writes until it is restarted"))
                });
                answers.push((msg.reply, out));
            }
            m::observe(m::GROUP_SECONDS, t_group.elapsed().as_secs_f64());
            self.dispatch(std::mem::take(&mut answers));
            if let Some(tx) = shutdown {
                self.shutdown();
                let _ = tx.send(ok(json!({"status": "stopped"})));
                return;
            }
            let t_house = Instant::now();
            self.housekeeping(false, false);
            m::observe(m::HOUSEKEEPING_SECONDS, t_house.elapsed().as_secs_f64());
        }
        self.shutdown();
    }

    /// Answers a group once its log records are safe: directly after the write when the policy is not
    /// `always`, else through the syncer thread, which `fdatasync`s while the core goes on with the next
    /// group (every answer, even one that wrote nothing, waits for the syncs of the groups before it).
    fn dispatch(&mut self, answers: Vec<(oneshot::Sender<Answer>, Outcome)>) {
        let logged = answers.iter().any(|(_, o)| matches!(o, Outcome::Logged(_)));
        if let Some(tx) = self.syncer.clone() {
            let file = if logged {
                match self.wal.flush() {
                    Ok(f) => Some(f),
                    Err(e) => {
                        self.fail(format!("event log: {e}"));
                        None
                    }
                }
            } else {
                None
            };
            let ok = !logged || file.is_some();
            match tx.send(SyncJob { file, ok, answers }) {
                Ok(()) => return,
                Err(e) => {
                    // The syncer is gone (a panic): answer here, after a synchronous sync.
                    self.syncer = None;
                    let ok = ok && self.wal.sync().is_ok();
                    answer_all(e.0.answers, ok);
                    return;
                }
            }
        }
        let committed = if logged {
            let t = Instant::now();
            match self.wal.commit() {
                Ok(synced) => {
                    m::observe(m::COMMIT_SECONDS, t.elapsed().as_secs_f64());
                    if synced {
                        m::inc(m::FSYNCS, 1);
                    }
                    true
                }
                Err(e) => {
                    self.fail(format!("event log: {e}"));
                    false
                }
            }
        } else {
            true
        };
        answer_all(answers, committed);
    }

    fn shutdown(&mut self) {
        if let Err(e) = self.wal.sync() {
            tracing::error!("syncing the event log at shutdown: {e}");
        }
        // Closing the syncer's queue lets it answer what it holds and stop.
        self.syncer = None;
        if let Some(h) = self.syncer_thread.take() {
            let _ = h.join();
        }
        if self.failed.is_none() {
            self.housekeeping(true, true);
            if let Some(j) = self.snap_job.take() {
                let _ = j.join();
            }
        }
        self.shared.ready.store(false, Ordering::SeqCst);
    }

    fn fail(&mut self, why: String) {
        self.shared.failed.store(true, Ordering::SeqCst);
        self.shared.ready.store(false, Ordering::SeqCst);
        self.failed = Some(why);
    }

    fn handle(&mut self, req: Request) -> Outcome {
        let writes = matches!(
            req,
            Request::Events { .. }
                | Request::ListSet { .. }
                | Request::ListRemove { .. }
                | Request::Reload
        );
        if self.failed.is_none() && self.shared.failed.load(Ordering::SeqCst) {
            self.failed = Some("syncing the event log failed".into());
        }
        if let (true, Some(why)) = (writes, &self.failed) {
            return Outcome::Answer(error(
                503,
                "not_accepting_writes",
                format!("{why}; restart the server (it recovers from the log)"),
            ));
        }
        match req {
            Request::Events {
                items,
                labels_only,
                batch,
            } => self.events(items, labels_only, batch),
            Request::Decision { id } => Outcome::Answer(self.decision(&id)),
            Request::Entity { kind, id } => Outcome::Answer(self.entity(&kind, &id)),
            Request::ListGet { name } => Outcome::Answer(self.list_get(&name)),
            Request::ListSet {
                name,
                value,
                reason,
                ttl,
                expires,
            } => self.list_set(&name, &value, reason, ttl, expires),
            Request::ListRemove { name, value } => self.list_remove(&name, &value),
            Request::Reload => Outcome::Answer(self.reload()),
            Request::Status => Outcome::Answer(self.status()),
            Request::Digest => Outcome::Answer(self.digest()),
            Request::Findings {
                limit,
                detector,
                account,
            } => Outcome::Answer(self.findings_answer(
                limit,
                detector.as_deref(),
                account.as_deref(),
            )),
            Request::Shutdown => Outcome::Answer(ok(json!({}))),
        }
    }

    fn events(
        &mut self,
        items: Vec<Box<serde_json::value::RawValue>>,
        labels_only: bool,
        batch: bool,
    ) -> Outcome {
        let mut logged = false;
        let mut results = Vec::with_capacity(items.len());
        for raw in &items {
            if let Some(why) = &self.failed {
                // A log failure part-way through a batch: the rest is refused, not applied.
                results.push(error(
                    503,
                    "not_accepting_writes",
                    format!("{why}; restart the server (it recovers from the log)"),
                ));
                continue;
            }
            let out = if labels_only {
                match self.label_envelope(raw.get()) {
                    Ok(raw) => self.event(&raw, true),
                    Err(a) => Outcome::Answer(a),
                }
            } else {
                self.event(raw.get(), false)
            };
            match out {
                Outcome::Logged(a) => {
                    logged = true;
                    results.push(a);
                }
                Outcome::Answer(a) => results.push(a),
            }
        }
        let answer = if batch {
            let count = |st: &str| {
                results
                    .iter()
                    .filter(|a| a.status == 200 && a.body == st)
                    .count()
            };
            let (accepted, duplicates) = (count("accepted"), count("duplicate"));
            let mut b = format!("{{\"accepted\":{accepted},\"duplicates\":{duplicates},\"rejected\":{},\"results\":[", results.len() - accepted - duplicates).into_bytes();
            for (i, a) in results.into_iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                match a.raw {
                    // `{…}` → `{…,"index":i,"http_status":s}`
                    Some(mut r) => {
                        r.pop();
                        b.extend_from_slice(&r);
                        b.extend_from_slice(
                            format!(",\"index\":{i},\"http_status\":{}}}", a.status).as_bytes(),
                        );
                    }
                    None => serde_json::to_writer(&mut b, &with_index(i, a)).unwrap_or_default(),
                }
            }
            b.extend_from_slice(b"]}");
            Answer {
                status: 200,
                body: Json::Null,
                raw: Some(b),
            }
        } else {
            results
                .pop()
                .unwrap_or_else(|| error(400, "empty", "no event"))
        };
        if logged {
            Outcome::Logged(answer)
        } else {
            Outcome::Answer(answer)
        }
    }

    /// A label posted without an actor takes the actor of the event it names in `data.original_event`.
    fn label_envelope(&mut self, raw: &str) -> Result<String, Answer> {
        // Checked here, before the document is re-serialized (which would keep one of two equal keys).
        if let Some(path) = argus_event::decode::duplicate_key(raw.as_bytes()) {
            return Err(error_with(
                400,
                "duplicate_key",
                format!("the key at `{path}` appears twice in the same object"),
                json!([{"path": path, "code": "duplicate_key", "message": "a key may appear once per object"}]),
            ));
        }
        let mut v: Json = serde_json::from_str(raw)
            .map_err(|e| error(400, "invalid_json", format!("not valid JSON: {e}")))?;
        let Some(obj) = v.as_object_mut() else {
            return Ok(raw.to_string());
        };
        if obj.get("actor").is_some_and(|a| !a.is_null()) {
            return Ok(raw.to_string());
        }
        let Some(orig) = obj
            .get("data")
            .and_then(|d| d.get("original_event"))
            .and_then(Json::as_str)
        else {
            return Ok(raw.to_string());
        };
        let Some(&loc) = self.index.get(&id_hash(orig)) else {
            return Err(error(
                404,
                "unknown_event",
                format!("`data.original_event` names no event this server holds: `{orig}`"),
            ));
        };
        let rec = self
            .wal
            .read(loc)
            .map_err(|e| error(500, "internal_error", e.to_string()))?;
        let actor = split_event(&rec.payload)
            .and_then(|(_, st, _)| stored_id_actor(st))
            .and_then(|(_, a)| a)
            .ok_or_else(|| {
                error(
                    500,
                    "internal_error",
                    "the original event's record is unreadable",
                )
            })?;
        obj.insert("actor".into(), value_json(&actor));
        Ok(v.to_string())
    }

    /// One event from a client: decoded (validated, pseudonymized), then [`accept`](Self::accept)ed.
    fn event(&mut self, raw: &str, labels_only: bool) -> Outcome {
        let t0 = Instant::now();
        let ev: Event = match self.engine.decoder().decode_bytes(raw.as_bytes()) {
            Ok(ev) => ev,
            Err(rej) => {
                m::event_outcome("?", rej.code());
                let details = serde_json::to_value(&rej.errors).unwrap_or(Json::Null);
                let status = if rej.code() == "unknown_event_type" {
                    422
                } else {
                    400
                };
                return Outcome::Answer(error_with(status, rej.code(), rej.to_string(), details));
            }
        };
        // The watermark only moves forward: one event far in the future would make every later event
        // `too_late` and expire every key. Times are bounded by the server's clock here, at the edge;
        // replay and recovery measure lateness against the input's own order only.
        let now = now_ms();
        let limit = now.saturating_add(self.settings.max_future.as_millis() as i64);
        if ev.time > limit {
            m::event_outcome(&self.engine.schema().get(ev.ty).name, "too_far_in_future");
            return Outcome::Answer(error_with(
                422,
                "too_far_in_future",
                format!(
                    "event time {} is {} ms ahead of the server's clock ({}), beyond `server.max_future` ({} ms); check the sender's clock",
                    argus_event::time::format_rfc3339(ev.time),
                    ev.time.saturating_sub(now),
                    argus_event::time::format_rfc3339(now),
                    self.settings.max_future.as_millis()
                ),
                json!([{"path": "/time", "code": "too_far_in_future", "message": format!("at most {} ms ahead of the server's clock", self.settings.max_future.as_millis())}]),
            ));
        }
        if labels_only && !self.label_types.contains(&ev.ty) {
            let name = &self.engine.schema().get(ev.ty).name;
            return Outcome::Answer(error(
                422,
                "not_a_label",
                format!(
                    "`{name}` is not a label type; labels are {}",
                    self.settings.label_types.join(", ")
                ),
            ));
        }
        self.accept(ev, None, t0)
    }

    /// The one path of an event, live (`loc` = `None`: decided, logged, answered) or replayed from the
    /// log at start (`loc`: its record; features only, the decision is in the record).
    fn accept(&mut self, ev: Event, loc: Option<Loc>, t0: Instant) -> Outcome {
        let schema = self.engine.schema().clone();
        let type_name = schema.get(ev.ty).name.as_str();
        let idh = id_hash(&ev.id);
        let actor = match ev.fields.first() {
            Some(Value::Str(a)) => actor_key(&schema.get(ev.ty).actor_kind, a),
            _ => 0,
        };
        let live = loc.is_none();
        if live {
            if let Some(&l) = self.index.get(&idh) {
                self.metrics.outcome(ev.ty, "duplicate", type_name);
                let rec = self.wal.read(l).ok();
                let decision = rec
                    .as_ref()
                    .and_then(|r| split_event(&r.payload))
                    .map_or(&[][..], |(_, _, d)| d);
                return Outcome::Answer(event_answer("duplicate", &ev.id, None, decision));
            }
        }
        // What the log keeps: the event as decoded (personal data already tokenized), with its label
        // columns, by field name.
        let stored = if live {
            match stored_event(&schema, &ev) {
                Ok(b) => b,
                Err(e) => return Outcome::Answer(error(500, "internal_error", e)),
            }
        } else {
            Vec::new()
        };
        // Live: features, decision and findings in one result. Replayed: the state only (the decision
        // is in the record).
        let processed = if live {
            self.engine.process(&ev)
        } else {
            self.engine.apply(&ev)
        };
        let (found, mut decision) = match processed {
            Ok(p) => (p.findings, p.decision),
            Err(e) => {
                if live {
                    self.metrics.outcome(
                        ev.ty,
                        if matches!(e, ProcessError::Duplicate(_)) {
                            "duplicate"
                        } else {
                            e.code()
                        },
                        type_name,
                    );
                } else {
                    tracing::warn!(id = %ev.id, "a logged event was refused on replay: {e}");
                }
                return Outcome::Answer(match e {
                    ProcessError::Duplicate(_) => event_answer("duplicate", &ev.id, None, b""),
                    ProcessError::TooLate { .. } => error(422, e.code(), e.to_string()),
                });
            }
        };
        self.since_snap += 1;
        self.applied_since_step += 1;
        // Findings are stored after their event's log record (below for live events), never before.
        if loc.is_some() {
            self.store_findings(self.replaying_seq, found);
            // Replayed: the decision index and the per-actor recent decisions were rebuilt from the
            // record headers when the log was opened (within `max_indexed_events`).
            return Outcome::Answer(ok(Json::Null));
        }
        let eval = t0.elapsed();
        if let Some(d) = decision.as_mut() {
            d.eval_us = Some((eval.as_secs_f64() * 1e7).round() / 10.0);
            self.metrics.decision(ev.ty, d, eval.as_secs_f64());
        }
        self.metrics.outcome(ev.ty, "accepted", type_name);
        let djson = decision
            .as_ref()
            .map(|d| serde_json::to_vec(d).unwrap_or_default())
            .unwrap_or_default();
        let head = EventHead {
            idh,
            actor,
            time: ev.time,
            ty: ev.ty,
            action: decision
                .as_ref()
                .map_or(NO_ACTION, |d| action_index(d.action)),
            score: decision.as_ref().map_or(0, |d| d.score),
        };
        let mut payload = std::mem::take(&mut self.scratch);
        event_payload(&head, &stored, &djson, &mut payload);
        let appended = self.wal.append(KIND_EVENT, &payload);
        self.scratch = payload;
        let (seq, loc) = match appended {
            Ok(x) => x,
            Err(e) => {
                self.fail(format!("event log: {e}"));
                return Outcome::Answer(error(
                    503,
                    "log_unavailable",
                    "the event could not be written to the event log; it was not acknowledged",
                ));
            }
        };
        self.store_findings(seq, found);
        self.index.insert(idh, loc);
        self.index_order.push_back((loc, idh));
        if self.index_order.len() > self.settings.max_indexed_events {
            unindex_one(&mut self.index, &mut self.index_order);
        }
        if head.action != NO_ACTION {
            self.remember(Recent { loc, head });
        }
        Outcome::Logged(event_answer("accepted", &ev.id, Some(seq), &djson))
    }

    fn remember(&mut self, r: Recent) {
        let cap = self.settings.recent_decisions;
        if cap == 0 {
            return;
        }
        let key = r.head.actor;
        let q = match self.recent.get_mut(&key) {
            Some(q) => q,
            None => {
                if self.recent.len() >= MAX_RECENT_ACTORS {
                    if let Some(old) = self.recent_order.pop_front() {
                        self.recent.remove(&old);
                    }
                }
                self.recent_order.push_back(key);
                self.recent.entry(key).or_default()
            }
        };
        if q.len() >= cap {
            q.pop_front();
        }
        q.push_back(r);
    }

    fn decision(&mut self, id: &str) -> Answer {
        let Some(&loc) = self.index.get(&id_hash(id)) else {
            return error(
                404,
                "unknown_event",
                format!("no event `{id}` in the decision index (it holds the newest `max_indexed_events` events of the retained log)"),
            );
        };
        match self.wal.read(loc) {
            Ok(r) => match split_event(&r.payload) {
                Some((_, _, d)) => {
                    let decision: Json = if d.is_empty() {
                        Json::Null
                    } else {
                        serde_json::from_slice(d).unwrap_or(Json::Null)
                    };
                    ok(json!({"id": id, "seq": r.seq, "decision": decision}))
                }
                None => error(500, "internal_error", "unreadable record"),
            },
            Err(e) => error(500, "internal_error", e.to_string()),
        }
    }

    fn entity(&mut self, kind: &str, id: &str) -> Answer {
        let schema = self.engine.schema().clone();
        if !schema.entity_kinds.iter().any(|k| k == kind) {
            return error(
                404,
                "unknown_entity_kind",
                format!(
                    "unknown entity kind `{kind}`{}",
                    argus_event::schema::did_you_mean(
                        kind,
                        schema.entity_kinds.iter().map(String::as_str)
                    )
                ),
            );
        }
        // The id is validated (and normalized) as a field of this kind would be, whether or not a
        // feature is keyed by it: `not-an-email` is not an email.
        let typed = schema.types.iter().filter(|t| !t.internal).find_map(|t| {
            t.fields
                .iter()
                .position(|f| f.entity.as_deref() == Some(kind))
                .map(|s| (t, s))
        });
        if let Some((et, slot)) = typed {
            if let Err(e) = self.engine.decoder().field_value(et, slot, id) {
                return error(
                    400,
                    e.code,
                    format!("`{kind}` id is invalid: {}", e.message),
                );
            }
        }
        let fs = self.engine.features().clone();
        let at = self.engine.watermark().unwrap_or_else(now_ms);
        let mut features = BTreeMap::new();
        let mut key_value: Option<Value> = None;
        for et in schema.types.iter().filter(|t| !t.internal) {
            for ep in &fs.plans[et.id as usize].entities {
                let [slot] = ep.key_slots[..] else { continue };
                if et.fields[slot].entity.as_deref() != Some(kind) {
                    continue;
                }
                let v = match self.engine.decoder().field_value(et, slot, id) {
                    Ok(v) => v,
                    Err(e) => {
                        return error(
                            400,
                            e.code,
                            format!("`{id}` is not a valid {kind}: {}", e.message),
                        )
                    }
                };
                let mut fields = vec![Value::Null; et.fields.len()];
                fields[slot] = v.clone();
                key_value.get_or_insert(v);
                let probe = Event {
                    id: String::new(),
                    ty: et.id,
                    time: at,
                    fields,
                };
                let out = self.engine.peek(&probe).to_vec();
                for g in &ep.groups {
                    for (fi, _) in &g.readers {
                        features
                            .entry(fs.features[*fi].name.clone())
                            .or_insert_with(|| value_json(&out[*fi]));
                    }
                }
            }
        }
        let mut lists = Vec::new();
        if let Some(ps) = self.engine.policies() {
            for l in ps
                .lists
                .lists
                .iter()
                .filter(|l| l.entity.as_deref() == Some(kind))
            {
                let Ok(key) = item_key(Some(kind), id, &self.engine.config.pseudonymizer) else {
                    continue;
                };
                if let Some(it) = l
                    .items
                    .get(&key)
                    .filter(|it| it.expires.is_none_or(|e| at < e))
                {
                    lists.push(json!({"list": l.name, "kind": l.kind, "reason": it.reason, "expires": it.expires.map(argus_event::time::format_rfc3339)}));
                }
            }
        }
        let stored = match &key_value {
            Some(Value::Str(s)) => s.to_string(),
            _ => item_key(Some(kind), id, &self.engine.config.pseudonymizer)
                .unwrap_or_else(|_| id.to_string()),
        };
        let recent: Vec<Recent> = self
            .recent
            .get(&actor_key(kind, &stored))
            .map(|q| q.iter().rev().copied().collect())
            .unwrap_or_default();
        let recent: Vec<Json> = recent
            .into_iter()
            .filter_map(|r| {
                // The event id is read back from the record (the header has only its digest); a
                // record whose segment retention deleted is skipped.
                let id = self.wal.read(r.loc).ok().and_then(|rec| stored_id_actor(split_event(&rec.payload)?.1)).map(|(id, _)| id)?;
                Some(json!({
                    "event_id": id,
                    "time": argus_event::time::format_rfc3339(r.head.time),
                    "checkpoint": schema.types.get(r.head.ty as usize).map(|t| t.name.as_str()),
                    "action": argus_policy::Action::ALL.get(r.head.action as usize).map(|a| a.name()),
                    "score": r.head.score,
                }))
            })
            .collect();
        ok(json!({
            "kind": kind,
            "id": id,
            "key": stored,
            "as_of": argus_event::time::format_rfc3339(at),
            "features": features,
            "lists": lists,
            "recent_decisions": recent,
        }))
    }

    fn list_index(&self, name: &str) -> Result<usize, Answer> {
        let Some(ps) = self.engine.policies() else {
            return Err(error(
                404,
                "unknown_list",
                "no policies are loaded, so there are no lists",
            ));
        };
        ps.lists.index_of(name).ok_or_else(|| {
            error(
                404,
                "unknown_list",
                format!(
                    "unknown list `{name}`{}",
                    argus_event::schema::did_you_mean(
                        name,
                        ps.lists.lists.iter().map(|l| l.name.as_str())
                    )
                ),
            )
        })
    }

    fn list_get(&self, name: &str) -> Answer {
        let i = match self.list_index(name) {
            Ok(i) => i,
            Err(a) => return a,
        };
        let Some(ps) = self.engine.policies() else {
            return error(404, "unknown_list", "no policies");
        };
        let l = &ps.lists.lists[i];
        let mut items: Vec<(&String, &ListItem)> = l.items.iter().collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        let items: Vec<Json> = items
            .into_iter()
            .map(|(k, it)| {
                let expired = it.expires.is_some_and(|e| e <= now_ms());
                json!({"value": k, "reason": it.reason, "expires": it.expires.map(argus_event::time::format_rfc3339), "expired": expired})
            })
            .collect();
        ok(json!({"name": l.name, "kind": l.kind, "entity": l.entity, "items": items}))
    }

    fn list_key(&self, name: &str, value: &str) -> Result<String, Answer> {
        let i = self.list_index(name)?;
        let entity = self
            .engine
            .policies()
            .and_then(|p| p.lists.lists[i].entity.clone());
        if value.is_empty() || value.len() > 1024 {
            return Err(error(
                400,
                "invalid_value",
                "a list value must be 1 to 1024 bytes",
            ));
        }
        item_key(entity.as_deref(), value, &self.engine.config.pseudonymizer)
            .map_err(|m| error(400, "invalid_value", m))
    }

    fn list_set(
        &mut self,
        name: &str,
        value: &str,
        reason: String,
        ttl: Option<String>,
        expires: Option<String>,
    ) -> Outcome {
        let key = match self.list_key(name, value) {
            Ok(k) => k,
            Err(a) => return Outcome::Answer(a),
        };
        if reason.trim().is_empty() || reason.len() > 1024 {
            return Outcome::Answer(error(
                400,
                "invalid_reason",
                "every list item needs a reason (1 to 1024 bytes)",
            ));
        }
        // A TTL is resolved against the server's clock once, here; the log records the absolute time.
        let expires = match (ttl, expires) {
            (Some(_), Some(_)) => {
                return Outcome::Answer(error(
                    400,
                    "invalid_expiry",
                    "give `ttl` or `expires`, not both",
                ))
            }
            (Some(t), None) => match argus_event::time::parse_duration(&t) {
                Some(ms) if ms > 0 => Some(now_ms().saturating_add(ms)),
                _ => {
                    return Outcome::Answer(error(
                        400,
                        "invalid_expiry",
                        format!("`ttl`: `{t}` is not a positive duration (e.g. `30d`)"),
                    ))
                }
            },
            (None, Some(e)) => match argus_event::time::parse_datetime(&e) {
                Some(t) if t <= now_ms() => {
                    return Outcome::Answer(error(
                        400,
                        "invalid_expiry",
                        format!("`expires`: `{e}` is in the past"),
                    ))
                }
                Some(t) => Some(t),
                None => {
                    return Outcome::Answer(error(
                        400,
                        "invalid_expiry",
                        format!("`expires`: `{e}` is not an RFC 3339 time"),
                    ))
                }
            },
            (None, None) => None,
        };
        let change = ListChange {
            list: name.into(),
            key: key.clone(),
            item: Some(OverlayItem {
                reason: reason.trim().to_string(),
                expires,
            }),
        };
        self.log_list(change, json!({"list": name, "value": key, "expires": expires.map(argus_event::time::format_rfc3339)}))
    }

    fn list_remove(&mut self, name: &str, value: &str) -> Outcome {
        let key = match self.list_key(name, value) {
            Ok(k) => k,
            Err(a) => return Outcome::Answer(a),
        };
        let present = self.engine.policies().is_some_and(|p| {
            p.lists
                .lists
                .iter()
                .any(|l| l.name == name && l.items.contains_key(&key))
        });
        if !present {
            return Outcome::Answer(error(
                404,
                "unknown_item",
                format!("`{value}` is not on list `{name}`"),
            ));
        }
        self.log_list(
            ListChange {
                list: name.into(),
                key: key.clone(),
                item: None,
            },
            json!({"list": name, "value": key, "removed": true}),
        )
    }

    fn log_list(&mut self, change: ListChange, body: Json) -> Outcome {
        let payload = serde_json::to_vec(&change).unwrap_or_default();
        if let Err(e) = self.wal.append(KIND_LIST, &payload) {
            self.fail(format!("event log: {e}"));
            return Outcome::Answer(error(
                503,
                "log_unavailable",
                "the change could not be written to the event log",
            ));
        }
        self.apply_list(&change);
        self.since_snap += 1;
        self.applied_since_step += 1;
        Outcome::Logged(ok(body))
    }

    fn apply_list(&mut self, c: &ListChange) {
        self.overlay
            .insert((c.list.clone(), c.key.clone()), c.item.clone());
        let has_policies = self.engine.policies().is_some();
        match self.engine.lists_mut() {
            Some(lists) => apply_overlay(lists, &c.list, &c.key, c.item.as_ref()),
            None if has_policies => {
                tracing::error!("list change not applied: the policies are shared")
            }
            None => {}
        }
    }

    /// Loads configuration, policies and lists anew, validates them fully, and swaps them in; a bad
    /// reload changes nothing and reports every problem.
    fn reload(&mut self) -> Answer {
        let (cfg, loaded) = match (self.loader)() {
            Ok(x) => x,
            Err(e) => {
                m::inc_labeled(m::RELOADS, "outcome", "invalid");
                let diags: Vec<String> = format!("{e:#}").lines().map(str::to_string).collect();
                return error_with(
                    422,
                    "invalid_reload",
                    "the new configuration is invalid; the running version is kept",
                    json!(diags),
                );
            }
        };
        // `[server]` is read at start only, but a reload that accepted an invalid one would leave a
        // configuration the next restart refuses.
        if let Err(errors) = Settings::resolve(&cfg.server, |k| std::env::var(k).ok()) {
            m::inc_labeled(m::RELOADS, "outcome", "invalid");
            let diags: Vec<String> = errors
                .iter()
                .map(|e| format!("invalid server settings: {e}"))
                .collect();
            return error_with(
                422,
                "invalid_reload",
                "the new configuration is invalid; the running version is kept",
                json!(diags),
            );
        }
        let cur = &self.engine.config;
        let mut changed = Vec::new();
        if cfg.schema.definition_digest() != cur.schema.definition_digest() {
            changed.push("the event schema");
        }
        // Whole definitions, not only the stored series: policies read features by position.
        let features = |c: &Config| {
            format!(
                "{:?}{:?}",
                c.features,
                (c.dedupe_ttl_ms, c.dedupe_max_ids, c.sweep_every_ms)
            )
        };
        if cfg.features.fingerprint() != cur.features.fingerprint()
            || features(&cfg) != features(cur)
        {
            changed.push("feature definitions or engine settings");
        }
        if cfg.secret_fingerprint != cur.secret_fingerprint {
            changed.push("the pseudonymization secret");
        }
        let models = |c: &Config| {
            c.models
                .iter()
                .map(|m| (m.name.clone(), m.event_type, m.digest, m.reasons))
                .collect::<Vec<_>>()
        };
        if models(&cfg) != models(cur) {
            changed.push("the models");
        }
        if cfg.graph.as_ref().map(|g| g.fingerprint) != cur.graph.as_ref().map(|g| g.fingerprint) {
            changed.push("the [graph] section");
        }
        if !changed.is_empty() {
            m::inc_labeled(m::RELOADS, "outcome", "refused");
            return error_with(
                409,
                "restart_required",
                format!(
                    "{} changed: the running state was computed under the old ones; restart the server to rebuild it from the event log (policies and lists were not reloaded either)",
                    changed.join(" and ")
                ),
                json!(changed),
            );
        }
        let before = self.engine.policies().map(|p| p.version.clone());
        self.install_policies(loaded);
        let after = self.engine.policies().map(|p| p.version.clone());
        m::inc_labeled(m::RELOADS, "outcome", "ok");
        ok(json!({"status": "reloaded", "previous_version": before, "policy_version": after}))
    }

    fn store_findings(&mut self, seq: u64, found: Vec<argus_engine::Finding>) {
        if !found.is_empty() {
            if let Err(e) = self.findings.add(seq, found) {
                tracing::error!("findings store: {e} (the findings are kept in memory)");
            }
        }
    }

    fn findings_answer(
        &self,
        limit: usize,
        detector: Option<&str>,
        account: Option<&str>,
    ) -> Answer {
        if self.engine.config.graph.is_none() {
            return error(404, "no_graph", "the configuration has no [graph] section: there are no detectors and no findings (docs/graph.md)");
        }
        let found = self.findings.query(limit.clamp(1, 1000), detector, account);
        ok(json!({"total": self.findings.total, "findings": found}))
    }

    /// Cheap by design (monitoring polls it): counters and sizes the state keeps as it changes, never a
    /// walk over the state. The full digest is [`digest`](Self::digest).
    fn status(&self) -> Answer {
        let e = &self.engine;
        ok(json!({
            "log_last_seq": self.wal.last_seq(),
            "log_first_seq": self.wal.first_seq(),
            "log_segments": self.wal.segment_count(),
            "snapshot_seq": self.snap_seq,
            "snapshot_in_progress": self.copying.is_some() || self.snap_job.is_some(),
            // The copy in progress: the record it began after and the keys it must visit.
            "snapshot_copy": self.copying.as_ref().map(|_| json!({"from_seq": self.copy_from.0, "keys": self.copy_from.1})),
            "engine_seq": e.sequence(),
            "watermark": e.watermark().map(argus_event::time::format_rfc3339),
            "keys": e.feature_state().key_count(),
            "idempotency_ids": e.idempotency_ids(),
            "pending_labels": e.pending_labels(),
            "counters": e.counters,
            "graph": e.graph_size().map(|(accounts, links, edges)| json!({"accounts": accounts, "links": links, "block_edges": edges, "findings": self.findings.total})),
            "indexed_events": self.index.len(),
            "recent_actors": self.recent.len(),
            "rss_bytes": rss_bytes(),
            "policy_version": e.policies().map(|p| p.version.clone()),
            "failed": self.failed,
        }))
    }

    /// The digest of the whole engine state (see [`Engine::state_digest`]): equal digests answer every
    /// future event alike. It walks and encodes the whole state, so it pauses decisions for as long.
    fn digest(&self) -> Answer {
        let t = Instant::now();
        let digest = self.engine.state_digest();
        ok(json!({
            "state_digest": format!("{digest:016x}"),
            "engine_seq": self.engine.sequence(),
            "log_last_seq": self.wal.last_seq(),
            "millis": t.elapsed().as_millis() as u64,
        }))
    }

    /// Finishes a background snapshot, applies retention, and starts a new snapshot when due.
    /// `idle`: called because no request arrived for a while; `force`: at shutdown, do everything now.
    fn housekeeping(&mut self, force: bool, idle: bool) {
        if let Some(j) = self.snap_job.take_if(|j| j.is_finished() || force) {
            match j.join() {
                Ok(Ok(seq)) => {
                    // Two snapshots are kept; the log must still reach back to the older one, so that
                    // start-up can fall back to it if the newer one is unreadable.
                    let older = self.snap_seq;
                    self.snap_seq = seq;
                    m::inc_labeled(m::SNAPSHOTS, "outcome", "ok");
                    // The deleted segments' events leave the index a bounded number per group; recent
                    // decisions in them are skipped when read.
                    self.wal.retain(older, self.settings.retention);
                    m::set_gauge(m::LOG_SEGMENTS, self.wal.segment_count() as f64);
                }
                Ok(Err(e)) => {
                    m::inc_labeled(m::SNAPSHOTS, "outcome", "failed");
                    tracing::error!("snapshot failed: {e}");
                }
                Err(_) => tracing::error!("snapshot thread panicked"),
            }
        }
        let first_kept = self.wal.first_seq();
        let mut n = 0;
        while self
            .index_order
            .front()
            .is_some_and(|(l, _)| l.segment < first_kept)
            && (force || n < UNINDEX_STEP)
        {
            unindex_one(&mut self.index, &mut self.index_order);
            n += 1;
        }
        if self.failed.is_some() {
            self.copying = None;
            return;
        }
        // An incremental copy in progress: one bounded step between groups (at most every STEP_EVERY
        // while busy), or all of it when forced.
        if let Some(mut c) = self.copying.take() {
            let behind = self.applied_since_step;
            if !force && !idle && self.last_step.elapsed() < STEP_EVERY && behind < COPY_STEP {
                self.copying = Some(c);
                return;
            }
            self.last_step = Instant::now();
            self.applied_since_step = 0;
            // At least twice the records applied since the last step: the copy gains on any ingest
            // rate, and its pause stays proportional to the work the group itself did.
            let budget = if force {
                usize::MAX
            } else {
                COPY_STEP.max(behind.saturating_mul(2))
            };
            let t = Instant::now();
            let step = self.engine.copy_step(&mut c, budget);
            m::observe(m::SNAPSHOT_PAUSE, t.elapsed().as_secs_f64());
            match step {
                Ok(false) => self.copying = Some(c),
                Ok(true) => self.finish_snapshot(c, force),
                Err(_) => m::inc_labeled(m::SNAPSHOTS, "outcome", "restarted"),
            }
            return;
        }
        let due = self.since_snap > 0
            && (force
                || self.since_snap >= self.settings.snapshot_every_events
                || self.last_snap.elapsed() >= self.settings.snapshot_interval);
        if !due || self.snap_job.is_some() {
            return;
        }
        let t = Instant::now();
        self.copying = Some(self.engine.begin_copy());
        self.copy_from = (self.wal.last_seq(), self.engine.feature_state().key_count());
        // Steps pace themselves on the records applied since the copy began, not since the last copy.
        self.applied_since_step = 0;
        self.last_step = Instant::now();
        m::observe(m::SNAPSHOT_PAUSE, t.elapsed().as_secs_f64());
        self.since_snap = 0;
        self.last_snap = Instant::now();
        if force {
            self.housekeeping(true, true);
        }
    }

    /// The copy is complete: take the consistent state (the keys changed during the copy are copied
    /// again), and encode and write it on another thread (on this one when `now`).
    fn finish_snapshot(&mut self, c: argus_engine::EngineCopy, now: bool) {
        // A snapshot must never cover records the log could still lose.
        if let Err(e) = self.wal.sync() {
            self.fail(format!("event log: {e}"));
            return;
        }
        let t = Instant::now();
        let seq = self.wal.last_seq();
        let pending = match self.engine.finish_copy(c) {
            Ok(p) => p,
            Err(_) => {
                m::inc_labeled(m::SNAPSHOTS, "outcome", "restarted");
                return;
            }
        };
        let extras = Extras {
            seq,
            overlay: self.overlay.clone(),
        };
        m::observe(m::SNAPSHOT_PAUSE, t.elapsed().as_secs_f64());
        let dir = snapshot_dir(&self.settings.data_dir);
        let job = move || -> Result<u64, String> {
            let bytes = encode_snapshot(&extras, pending)?;
            let path = dir.join(format!("snap-{seq:020}.bin"));
            argus_engine::engine::write_atomically(&path, &bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // Keep the two newest.
            for (_, old) in snapshots(dir.parent().unwrap_or(&dir)).into_iter().skip(2) {
                let _ = std::fs::remove_file(old);
            }
            Ok(seq)
        };
        if now {
            match job() {
                Ok(seq) => self.snap_seq = seq,
                Err(e) => tracing::error!("final snapshot failed: {e}"),
            }
        } else {
            self.snap_job = Some(std::thread::spawn(job));
        }
    }
}

/// Drops the oldest indexed event (unless its id was indexed again since, at another place).
fn unindex_one(index: &mut HashMap<u128, Loc>, order: &mut VecDeque<(Loc, u128)>) {
    if let Some((loc, h)) = order.pop_front() {
        if index.get(&h) == Some(&loc) {
            index.remove(&h);
        }
    }
}

fn with_index(i: usize, a: Answer) -> Json {
    let mut body = a.body;
    if let Some(o) = body.as_object_mut() {
        o.insert("index".into(), json!(i));
        o.insert("http_status".into(), json!(a.status));
    }
    body
}

fn apply_overlay(
    lists: &mut argus_policy::ValueLists,
    list: &str,
    key: &str,
    item: Option<&OverlayItem>,
) {
    if let Some(i) = lists.index_of(list) {
        let items = &mut lists.lists[i].items;
        match item {
            Some(it) => {
                items.insert(
                    key.to_string(),
                    ListItem {
                        reason: it.reason.clone(),
                        expires: it.expires,
                    },
                );
            }
            None => {
                items.remove(key);
            }
        }
    }
}
