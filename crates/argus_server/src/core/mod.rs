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

pub mod backtest;
pub(crate) mod erasure;
mod events;
pub mod export;
pub mod lifecycle;
mod lists;
mod record;
mod recovery;
mod reload;
mod shard;
mod snapshots;
mod views;

pub(crate) use events::{check_clock, refusal as events_refusal};
pub(crate) use lists::resolve_expiry;
use lists::*;
pub use lists::{ListChange, OverlayItem};
use record::*;
pub(crate) use record::{load_event, stored_event};
pub use record::{read_log, stored_event_json};
use snapshots::*;
pub(crate) use snapshots::{snapshot_held, snapshot_position, snapshots as snapshot_files};

/// Log record kinds.
pub const KIND_EVENT: u8 = 1;
pub const KIND_LIST: u8 = 2;
/// A person resumed a rule the guard paused, or a lost pause was applied again
/// (`lifecycle::GuardRecord`).
pub const KIND_GUARD: u8 = 3;
/// In a cluster: the cluster log's entries applied so far (its sequence number, 8 bytes LE), written
/// after each entry's records, so that a restarted node goes on reading the log after it; after an
/// entry that changed the policies, followed by the `lifecycle::PolicyState`.
pub const KIND_CURSOR: u8 = 4;
/// An erasure: the subject's keys deleted from the feature state at this point of the log, and its
/// token renamed (`erasure::erasure_record`). A replay applies it alike; once the log no longer
/// holds the token, the record holds only the pseudonym and the pseudonym's keys.
pub const KIND_ERASURE: u8 = 5;

/// Most requests handled per log commit.
pub const MAX_GROUP: usize = 512;

/// Fewest events in a run of event requests for it to go through the partition workers together
/// (below it, starting the workers would cost more than it saves).
pub const RUN_MIN_EVENTS: usize = 16;

const SNAP_MAGIC: &[u8; 8] = b"ARGUSSV1";

/// A configuration and its policies (none: features only).
pub type Loaded = (Config, Option<argus_policy::Loaded>);

/// Loads the configuration and policies (at start and on every reload).
pub type Loader = Arc<dyn Fn() -> anyhow::Result<Loaded> + Send + Sync>;

/// What kind of failure the core (or the HTTP layer's own checks) reports. Only the HTTP layer turns
/// a kind into a status code (`api::status_of`); the stable `code` string says which failure it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request is malformed or a value is invalid.
    Invalid,
    /// No valid API key.
    Unauthorized,
    /// The key's role may not do this.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The request did not arrive, or was not answered, in time.
    Timeout,
    /// The request contradicts the server's state (e.g. a reload that changes the schema).
    Conflict,
    TooLarge,
    UriTooLong,
    /// Well-formed, but not something the server can apply (an unknown event type, a far-future time).
    Unprocessable,
    /// Too many attempts (console logins); retry later.
    TooMany,
    /// A fault of the server's own; it refuses writes until restarted where state may be torn.
    Internal,
    /// Not now: overloaded, starting, stopping, or refusing writes after a failure.
    Unavailable,
    /// A service the server relies on answered wrongly or not at all (the identity provider).
    BadGateway,
}

/// A failure: its kind, a stable code, a message for people, and optional structured details.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreError {
    pub kind: Failure,
    pub code: String,
    pub message: String,
    pub details: Option<Json>,
}

/// What the core answers: a result, a failure, or a batch of per-item answers. The HTTP layer writes
/// them as responses (`api::respond`).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A result: its JSON body, or for event results built on the hot path the body already
    /// serialized in `raw` (the decision is serialized once, for the log and the answer) with only
    /// the event's status (`"accepted"`, `"duplicate"`) in `body`.
    Done {
        body: Json,
        raw: Option<Vec<u8>>,
    },
    Failed(CoreError),
    /// One answer per item of a batch, in order.
    Batch(Vec<Answer>),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Done { body, .. } => write!(f, "done: {body}"),
            Answer::Failed(e) => write!(f, "failed: {} ({})", e.code, e.message),
            Answer::Batch(items) => write!(f, "batch of {}", items.len()),
        }
    }
}

/// What a refused write is told: why, and to restart the server — unless a restart would not
/// help, when `Shared::refused_because` is set and `why` says what does.
pub(crate) fn refused(shared: &Shared, why: &str) -> String {
    match shared.refused_because.get() {
        Some(_) => why.to_string(),
        None => format!("{why}; restart the server (it recovers from the log)"),
    }
}

/// `{"status": …, "id": …, "seq"?: …, "decision": <raw or null>}` without building a JSON tree.
pub(crate) fn event_answer(
    status: &'static str,
    id: &str,
    seq: Option<u64>,
    decision: &[u8],
) -> Answer {
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
    Answer::Done {
        body: Json::String(status.into()),
        raw: Some(b),
    }
}

/// A failure answer (written in the one error shape of every 4xx/5xx by the HTTP layer).
pub fn error(kind: Failure, code: &str, message: impl Into<String>) -> Answer {
    Answer::Failed(CoreError {
        kind,
        code: code.to_string(),
        message: message.into(),
        details: None,
    })
}

pub fn error_with(kind: Failure, code: &str, message: impl Into<String>, details: Json) -> Answer {
    Answer::Failed(CoreError {
        kind,
        code: code.to_string(),
        message: message.into(),
        details: Some(details),
    })
}

pub fn ok(body: Json) -> Answer {
    Answer::Done { body, raw: None }
}

/// An event as decoded (validated, pseudonymized) from a client's document, or why not.
pub type Decoded = Result<argus_event::Event, argus_event::Rejection>;

/// What a request asks of the core.
pub enum Request {
    /// Events (one, a batch, or labels): raw JSON documents.
    Events {
        items: Vec<Box<serde_json::value::RawValue>>,
        /// The items already decoded by the HTTP handler, on its own thread (empty: the core
        /// decodes them; labels are always decoded by the core, after their envelope is checked).
        decoded: Vec<Decoded>,
        labels_only: bool,
        batch: bool,
    },
    Decision {
        id: String,
    },
    /// A logged event's fields as stored (tokens for personal data), for a reveal.
    EventFields {
        id: String,
    },
    /// Erases a personal-data subject on this node (`core::erasure`).
    Erase {
        kind: String,
        value: String,
    },
    /// In a cluster: the subject's token and the keys that renaming it to `pseudonym` moves, from
    /// this node's log (read only), for the erasure's entry.
    ErasurePlan {
        kind: String,
        value: String,
        pseudonym: String,
    },
    /// In a cluster: the erasure's entry `entry` of the shared log, applied by every node alike
    /// (`planned`: the last record of the entry node's log its plan read).
    EraseToken {
        token: String,
        pseudonym: String,
        moves: Vec<argus_engine::engine::KeyMove>,
        entry: u64,
        planned: u64,
    },
    /// In a sharded cluster: the entry `entry` that ends the erasure of `token` (renamed
    /// `pseudonym` at its own entry earlier): every node renames it in its own log now that every
    /// unit's holder shares a snapshot taken after the erasure (`erasure::finish_sharded`).
    EraseFinish {
        token: String,
        pseudonym: String,
        entry: u64,
        /// The erasure's own entry.
        erasure: u64,
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
    /// In a cluster, before labels are appended: each label envelope with the actor of the event
    /// its `data.original_event` names filled in from this node's decision index, so that no node
    /// resolves it from its own (whose index may hold other events).
    ResolveLabels {
        items: Vec<Box<serde_json::value::RawValue>>,
    },
    /// In a cluster, before a list change is appended: the item's key as stored (the token of a
    /// personal-data value), so that only the key travels in the shared log.
    ListKey {
        name: String,
        value: String,
    },
    /// A list change of the shared log whose value is already the stored key. `keyed_as`: the
    /// list's entity kind when the entry node computed the key (`None`: an older entry, unchecked).
    ListSetKey {
        name: String,
        key: String,
        reason: String,
        expires: Option<String>,
        keyed_as: Option<Option<String>>,
    },
    ListRemoveKey {
        name: String,
        key: String,
        keyed_as: Option<Option<String>>,
    },
    Reload,
    Status,
    /// The full-state digest (walks the whole state: for verification, not for monitoring), and with
    /// `partitions` (or on a sharded node) its split by feature partition.
    Digest {
        partitions: Option<usize>,
        records: Option<usize>,
    },
    /// The graph detectors' newest findings.
    Findings {
        limit: usize,
        detector: Option<String>,
        account: Option<String>,
    },
    /// The entity graph around an account (the linked-accounts view).
    Graph {
        account: String,
        hops: usize,
        max_nodes: usize,
    },
    /// Hits per enforced rule per hour of event time, since the server started.
    RuleStats,
    /// Install a stored policy version (compiled by the core under the running configuration).
    InstallVersion {
        files: argus_lifecycle::Files,
        label: String,
    },
    /// Replace the snoozes.
    SetOverrides {
        snoozes: Vec<argus_policy::Snooze>,
    },
    /// A person resumes a rule the guard paused (logged).
    ResumeRule {
        rule: String,
    },
    /// A pause the store holds that the guard lost is applied again (logged; a single node).
    PauseAgain {
        trip: argus_lifecycle::Trip,
    },
    /// Start a rollout of a candidate version (files, label, basis points, salt), or end it.
    SetRollout(Option<(argus_lifecycle::Files, String, u32, String)>),
    /// The rollout's live comparison.
    RolloutStats,
    /// The running policies: their version and files.
    Running,
    /// Decide with the policy files after all (the store's active version did not install).
    StopAwaiting,
    /// What the guard learned, and the paused rules.
    GuardState,

    /// In a cluster: the cluster log's entry `seq` has been handed to the core (its records are in
    /// this node's log before this one).
    Cursor(u64),
    /// In a cluster: one entry of the shared log, the request it holds followed by its cursor. The
    /// core expands it into the two within one group, so that a snapshot (taken between groups)
    /// never covers half an entry.
    Entry {
        seq: u64,
        req: Box<Request>,
    },

    /// Flush and sync the log and write a final snapshot.
    Shutdown,
}

pub struct Msg {
    pub req: Request,
    pub reply: oneshot::Sender<Answer>,
}

/// What case intake needs of one log record: its event as logged (tokens), its decision (JSON, or
/// empty) and its findings. Sent by the core for the records whose decision's action some route
/// takes, or that made findings — live after the record is written, and at start for the replayed
/// tail (the case service skips records at or before its cursor, so nothing is taken twice).
#[derive(Debug)]
pub struct IntakeMsg {
    pub seq: u64,
    pub event: Vec<u8>,
    pub decision: Vec<u8>,
    pub findings: Vec<argus_engine::Finding>,
}

/// Case intake reading committed records again from the log in `dir` (those its full queue left
/// out): the records `from..=to` that `filter` takes, with the findings each event made (from
/// `findings`), handed to `tx` 256 at a time. Blocking (a thread of its own). Returns the first
/// record the log still holds at or after `from` (retention may have deleted older ones).
pub fn intake_from_log(
    dir: &std::path::Path,
    filter: &IntakeFilter,
    (from, to): (u64, u64),
    findings: &HashMap<u64, Vec<argus_engine::Finding>>,
    tx: &tokio::sync::mpsc::Sender<Vec<IntakeMsg>>,
) -> Result<u64, String> {
    let mut reader = crate::wal::LogReader::open(dir).map_err(|e| e.to_string())?;
    reader.skip_to(from);
    let mut first = None;
    let mut chunk = Vec::new();
    while let Some((seq, kind, payload)) = reader.read_next_ref().map_err(|e| e.to_string())? {
        if seq > to {
            break;
        }
        if seq < from {
            continue;
        }
        first.get_or_insert(seq);
        if kind != KIND_EVENT {
            continue;
        }
        let Some((head, stored, decision)) = split_event(payload) else {
            return Err(format!("log record {seq} is unreadable"));
        };
        let found = findings.get(&seq).map_or(&[][..], Vec::as_slice);
        if let Some(m) = filter.msg(seq, head.action, stored, decision, found) {
            chunk.push(m);
        }
        if chunk.len() == 256 && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
            return Err("case intake stopped".into());
        }
    }
    if !chunk.is_empty() && tx.blocking_send(chunk).is_err() {
        return Err("case intake stopped".into());
    }
    Ok(first.unwrap_or(to + 1))
}

/// Where the core sends [`IntakeMsg`]s, and which ones.
pub struct IntakeSink {
    pub tx: tokio::sync::mpsc::Sender<IntakeMsg>,
    pub filter: IntakeFilter,
}

/// Which records case intake takes: decisions of the actions routes take, and, when a route takes
/// findings, the events that made some.
#[derive(Clone)]
pub struct IntakeFilter {
    /// Indexes in [`argus_policy::Action::ALL`] of the actions routes take.
    pub actions: Vec<u8>,
    pub findings: bool,
}

impl IntakeFilter {
    /// The filter `[cases]` routing asks for.
    pub fn of(cases: &argus_cases::Routing) -> IntakeFilter {
        IntakeFilter {
            actions: argus_policy::Action::ALL
                .iter()
                .enumerate()
                .filter(|(_, a)| cases.wanted_actions().iter().any(|w| w == a.name()))
                .map(|(i, _)| i as u8)
                .collect(),
            findings: cases.wants_findings(),
        }
    }

    /// The message for a logged event (record `seq`: its stored form, its action and decision,
    /// and the findings it made), if intake takes it.
    pub fn msg(
        &self,
        seq: u64,
        action: u8,
        stored: &[u8],
        decision: &[u8],
        findings: &[argus_engine::Finding],
    ) -> Option<IntakeMsg> {
        let want_findings = self.findings && !findings.is_empty();
        if !(self.actions.contains(&action) || want_findings) {
            return None;
        }
        Some(IntakeMsg {
            seq,
            event: stored.to_vec(),
            decision: if self.actions.contains(&action) {
                decision.to_vec()
            } else {
                Vec::new()
            },
            findings: if want_findings {
                findings.to_vec()
            } else {
                Vec::new()
            },
        })
    }
}

/// State the HTTP layer reads without asking the core.
#[derive(Default)]
pub struct Shared {
    pub ready: AtomicBool,
    /// Set when the core can no longer accept writes (log I/O failure, a panic while changing state).
    pub failed: AtomicBool,
    pub queued: AtomicUsize,
    pub policy_version: std::sync::Mutex<String>,
    /// In a cluster: the cluster log's entries this node has applied (recovered at start, then
    /// moved by `Request::Cursor`).
    pub stream_cursor: std::sync::atomic::AtomicU64,
    /// `[deadlines] overload`: 0 refuses a request the full queue cannot take (503); 1 + an
    /// action's index answers events a degraded decision with that action instead.
    pub overload: std::sync::atomic::AtomicU8,
    /// `[deadlines]` as the running configuration has it: on a cluster node, the entry node's
    /// answer keeps each checkpoint's budget (`crate::cluster`).
    pub deadlines: std::sync::RwLock<Option<Arc<argus_engine::deadlines::Deadlines>>>,
    /// By event type id: whether the installed policies decide that checkpoint (a cluster node's
    /// late answer has a decision only where the recorded answer will).
    pub decides: std::sync::RwLock<Vec<bool>>,
    /// Per API key with a rate limit: (tokens left, when last refilled).
    pub buckets: std::sync::Mutex<HashMap<String, (f64, std::time::Instant)>>,
    /// On a node of a sharded cluster: its side of the shares' exchange (set before the core starts).
    pub shard: std::sync::OnceLock<Arc<crate::shard::Shard>>,
    /// Why writes are refused, when restarting the node does not help (what to do instead).
    pub refused_because: std::sync::OnceLock<String>,
    /// The committed log records case intake's full queue left out, as (first, last): intake
    /// reads them again from the log before its cursor passes them (`cases::run`).
    pub intake_dropped: std::sync::Mutex<Option<(u64, u64)>>,
    /// In a sharded cluster: the erasures (their entries) whose second entry this node applied, and
    /// that entry (`erasure::finish_sharded`).
    pub erasures_finished: std::sync::Mutex<HashMap<u64, u64>>,
}

impl Shared {
    /// Case intake's queue left the records `from..=to` out.
    pub fn note_intake_dropped(&self, from: u64, to: u64) {
        let mut g = self
            .intake_dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *g = Some(match *g {
            Some((a, b)) => (a.min(from), b.max(to)),
            None => (from, to),
        });
    }

    /// The records case intake's queue left out since the last call, as (first, last).
    pub fn take_intake_dropped(&self) -> Option<(u64, u64)> {
        self.intake_dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The core can no longer accept writes (its log failed, the shared log has a gap, a panic
    /// while changing state): refuse them, and on a node of a sharded cluster release every lease,
    /// since this node publishes no more shares and the others would otherwise wait for it for
    /// good while it renews its leases.
    pub fn refuse_writes(&self) {
        if let Some(s) = self.shard.get() {
            s.core_failed.store(true, Ordering::SeqCst);
        }
        self.failed.store(true, Ordering::SeqCst);
        self.ready.store(false, Ordering::SeqCst);
    }

    /// As [`refuse_writes`](Self::refuse_writes), with the reason every refused write is given
    /// (when a restart would not help, it says what does).
    pub fn refuse_writes_because(&self, why: String) {
        let _ = self.refused_because.set(why);
        self.refuse_writes();
    }

    /// Publishes which checkpoints the installed policies decide to the HTTP handlers.
    pub fn publish_checkpoints(&self, p: Option<&argus_policy::PolicySet>) {
        if let Ok(mut d) = self.decides.write() {
            *d = p.map_or_else(Vec::new, |p| {
                p.by_type.iter().map(Option::is_some).collect()
            });
        }
    }

    /// The current policy version, as the HTTP handlers report it.
    pub fn version(&self) -> String {
        self.policy_version
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Publishes the configuration's budgets and overload treatment to the HTTP handlers.
    pub fn publish_deadlines(&self, cfg: &argus_engine::Config) {
        let v = cfg
            .deadlines
            .as_deref()
            .filter(|d| d.overload_degrade)
            .map_or(0, |d| 1 + d.overload_action as u8);
        self.overload.store(v, Ordering::SeqCst);
        if let Ok(mut d) = self.deadlines.write() {
            *d = cfg.deadlines.clone();
        }
    }
}

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
    /// `[server] partition_workers`, resolved once at start.
    workers: bool,
    /// The indexed events in log order, so that the index keeps the newest `max_indexed_events` and
    /// retention can drop a deleted segment's events without scanning the whole index.
    index_order: VecDeque<(Loc, u128)>,
    /// The graph detectors' findings.
    findings: crate::findings::FindingsStore,
    /// The log record being replayed at start (its findings are stored under it).
    replaying_seq: u64,
    /// Case intake, when cases are on.
    intake: Option<IntakeSink>,
    /// Enforced rule → (checkpoint, hits per hour of event time: the newest `RULE_HOURS`).
    rule_hits: HashMap<String, (String, VecDeque<(i64, u64)>)>,
    /// The policy versions this server has run, and when each was installed (wall clock; newest 100).
    policy_changes: VecDeque<(String, i64)>,
    /// The findings of the record being replayed, for intake.
    replay_findings: Vec<argus_engine::Finding>,
    /// Live records for intake, handed over when their group is committed.
    pending_intake: Vec<IntakeMsg>,
    /// The replayed tail's records for intake (durable already), handed over at start.
    replay_intake: Vec<IntakeMsg>,
    /// The first log record replayed at start (the records before it are in the snapshot).
    replayed_from: u64,
    /// Snoozes, paused rules, the rollout and the guard.
    lifecycle: lifecycle::LifecycleState,
    /// In a cluster: the cluster log's entries applied (see [`KIND_CURSOR`]).
    stream_cursor: u64,
    /// Sharded: when the held partitions were last checked against ownership (and announced).
    shard_announced: Option<Instant>,
    /// Sharded: partitions whose rebuild failed, when last (retried a second later), and how many
    /// times in a row (declined after `shard::DECLINE_AFTER`).
    rebuild_failures: HashMap<usize, (Instant, u32)>,
    /// Sharded: rebuilds on threads of their own, each of one or more partitions from one restore.
    rebuilds: Vec<shard::RebuildJob>,
    /// A snapshot is wanted now (sharded: this node holds a partition no shared snapshot of it
    /// holds yet, which its previous holder keeps until one does).
    snapshot_soon: bool,
}

/// Hours with hits kept per rule for the rule dashboard (the newest 72 such hours).
const RULE_HOURS: usize = 72;

impl Core {
    /// Counts the enforced rules that fired on a live decision, per hour of event time.
    pub(super) fn count_rules(&mut self, d: &argus_policy::Decision, time: i64) {
        let hour = time.div_euclid(3_600_000) * 3_600_000;
        for f in &d.fired {
            let e = match self.rule_hits.get_mut(&f.rule) {
                Some(e) => e,
                None => self
                    .rule_hits
                    .entry(f.rule.clone())
                    .or_insert_with(|| (d.checkpoint.clone(), VecDeque::new())),
            };
            // Hours with hits, oldest first: this hour, or a late event's own hour in its place
            // (unless it is older than every hour kept when the list is full).
            match e.1.iter().rposition(|(h, _)| *h <= hour) {
                Some(i) if e.1[i].0 == hour => e.1[i].1 += 1,
                Some(i) => e.1.insert(i + 1, (hour, 1)),
                None if e.1.len() < RULE_HOURS => e.1.push_front((hour, 1)),
                None => continue,
            }
            if e.1.len() > RULE_HOURS {
                e.1.pop_front();
            }
        }
    }

    /// Keeps one record for case intake when a route wants it: a live one until its group is
    /// committed (then [`hand_over`]), a replayed one (durable already) until the server starts.
    pub(super) fn send_intake(
        &mut self,
        seq: u64,
        action: u8,
        stored: &[u8],
        decision: &[u8],
        findings: &[argus_engine::Finding],
        live: bool,
    ) {
        let Some(s) = &self.intake else { return };
        let Some(msg) = s.filter.msg(seq, action, stored, decision, findings) else {
            return;
        };
        if live {
            self.pending_intake.push(msg);
        } else {
            self.replay_intake.push(msg);
        }
    }
}

/// A group's answers, to be sent once `file` (the segment its records went to) is synced.
struct SyncJob {
    file: Option<Arc<std::fs::File>>,
    /// False when the group's records could not even be written.
    ok: bool,
    answers: Vec<(oneshot::Sender<Answer>, Outcome)>,
    /// The group's records for case intake, handed over once they are committed.
    intake: Option<(tokio::sync::mpsc::Sender<IntakeMsg>, Vec<IntakeMsg>)>,
    /// The group's guard trips, handed to the lifecycle task once they are committed.
    trips: Option<(
        tokio::sync::mpsc::Sender<argus_lifecycle::Trip>,
        Vec<argus_lifecycle::Trip>,
    )>,
}

/// Hands committed records to case intake. Never blocks: when the intake queue is full (the case
/// store is far behind), the records are counted and left out of it, and noted in `shared`: intake
/// reads them again from the log once it has caught up.
fn hand_over(
    intake: Option<(tokio::sync::mpsc::Sender<IntakeMsg>, Vec<IntakeMsg>)>,
    shared: &Shared,
) {
    let Some((tx, msgs)) = intake else { return };
    let mut dropped: Option<(u64, u64)> = None;
    for msg in msgs {
        let seq = msg.seq;
        if tx.try_send(msg).is_err() {
            m::inc(m::CASE_INTAKE_DROPPED, 1);
            dropped = Some(dropped.map_or((seq, seq), |(a, _)| (a, seq)));
        }
    }
    if let Some((from, to)) = dropped {
        tracing::warn!(
            from,
            to,
            "case intake's queue is full: records are left out of it, and read again from the event log before intake goes past them"
        );
        shared.note_intake_dropped(from, to);
    }
}

fn answer_all(answers: Vec<(oneshot::Sender<Answer>, Outcome)>, committed: bool) {
    for (tx, out) in answers {
        let a = match out {
            Outcome::Answer(a) => a,
            Outcome::Logged(a) if committed => a,
            Outcome::Logged(_) => error(
                Failure::Unavailable,
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
            shared.refuse_writes();
        }
        for j in jobs {
            let committed = synced && j.ok;
            answer_all(j.answers, committed);
            if committed {
                hand_over(j.intake, &shared);
                lifecycle::hand_over_trips(j.trips);
            }
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
fn value_json(v: &Value) -> Json {
    argus_policy::policy::to_json(&argus_policy::policy::to_val(v))
}

/// Wall-clock milliseconds since the epoch (0 before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Core {
    /// A copy of the engine's decoder, for the HTTP handlers (see `api::AppState::decoder`).
    pub fn decoder(&self) -> argus_event::Decoder {
        self.engine.decoder().clone()
    }

    /// The running configuration (versions are compiled and backtested under it).
    pub fn config(&self) -> &Config {
        &self.engine.config
    }
}

impl Core {
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
                    self.sync_partitions_due();
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
            if group.iter().any(|m| matches!(m.req, Request::Entry { .. })) {
                group = expand_entries(std::mem::take(&mut group));
            }
            let mut shutdown = None;
            let t_group = Instant::now();
            // Consecutive event requests wait in `run` to be handled together (see `flush_run`).
            let mut run: Vec<Msg> = Vec::new();
            let sharded = self.shared.shard.get().is_some();
            for msg in group.drain(..) {
                // Sharded, the entries' cursors go with their events: a run spans many entries.
                if matches!(
                    msg.req,
                    Request::Events {
                        labels_only: false,
                        ..
                    }
                ) || (sharded && matches!(msg.req, Request::Cursor(_)))
                {
                    run.push(msg);
                    continue;
                }
                self.flush_run(&mut run, &mut answers);
                if matches!(msg.req, Request::Shutdown) {
                    shutdown = Some(msg.reply);
                    continue;
                }
                let out = self.guarded(|core| core.handle(msg.req));
                answers.push((msg.reply, out.unwrap_or_else(|o| o)));
            }
            self.flush_run(&mut run, &mut answers);
            m::observe(m::GROUP_SECONDS, t_group.elapsed().as_secs_f64());
            self.dispatch(std::mem::take(&mut answers));
            // What changed answers without failing (the replay's warnings), for alerting.
            let st = self.engine.feature_state().stats();
            for (what, n) in [
                ("exact_cap_evictions", st.exact_cap_evictions),
                ("bucket_too_old", st.bucket_too_old),
                ("lifetime_dropped", st.lifetime_dropped),
                ("keys_expired", st.keys_expired),
            ] {
                m::set_gauge_labeled(m::FEATURE_TREATMENTS, "treatment", what, n as f64);
            }
            if let Some(tx) = shutdown {
                self.shutdown();
                let _ = tx.send(ok(json!({"status": "stopped"})));
                return;
            }
            let t_house = Instant::now();
            self.housekeeping(false, false);
            m::observe(m::HOUSEKEEPING_SECONDS, t_house.elapsed().as_secs_f64());
            self.sync_partitions_due();
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
            let intake = self.take_intake();
            let trips = self.take_trips();
            match tx.send(SyncJob {
                file,
                ok,
                answers,
                intake,
                trips,
            }) {
                Ok(()) => return,
                Err(e) => {
                    // The syncer is gone (a panic): answer here, after a synchronous sync.
                    self.syncer = None;
                    let ok = ok && self.wal.sync().is_ok();
                    answer_all(e.0.answers, ok);
                    if ok {
                        hand_over(e.0.intake, &self.shared);
                        lifecycle::hand_over_trips(e.0.trips);
                    }
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
        let intake = self.take_intake();
        let trips = self.take_trips();
        if committed {
            hand_over(intake, &self.shared);
            lifecycle::hand_over_trips(trips);
        }
    }

    /// The group's records waiting for case intake, with the sender.
    fn take_intake(&mut self) -> Option<(tokio::sync::mpsc::Sender<IntakeMsg>, Vec<IntakeMsg>)> {
        if self.pending_intake.is_empty() {
            return None;
        }
        let msgs = std::mem::take(&mut self.pending_intake);
        self.intake.as_ref().map(|s| (s.tx.clone(), msgs))
    }

    /// The replayed tail's records for case intake (taken once, at start).
    pub fn take_replay_intake(&mut self) -> (Vec<IntakeMsg>, u64) {
        (std::mem::take(&mut self.replay_intake), self.replayed_from)
    }

    /// Runs `f`, turning a panic (a bug, never input) into an internal error and a core that refuses
    /// writes until restarted.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Core) -> T) -> Result<T, Outcome>
    where
        T: Sized,
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))).map_err(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                "panic while handling a request: {what}; refusing writes until restart"
            );
            self.fail(format!("internal error: {what}"));
            Outcome::Answer(error(
                Failure::Internal,
                "internal_error",
                "the request could not be handled; the server refuses writes until it is restarted",
            ))
        })
    }

    /// Handles a run of consecutive event requests. With several partitions and at least
    /// [`RUN_MIN_EVENTS`] events, they go through the engine together ([`Core::events_run`]: the
    /// partitions apply them on worker threads); otherwise one by one. Both give the same answers,
    /// records and state.
    fn flush_run(
        &mut self,
        run: &mut Vec<Msg>,
        answers: &mut Vec<(oneshot::Sender<Answer>, Outcome)>,
    ) {
        if run.is_empty() {
            return;
        }
        let events: usize = run
            .iter()
            .map(|m| match &m.req {
                Request::Events { items, .. } => items.len(),
                _ => 0,
            })
            .sum();
        let writes_refused = self.failed.is_some() || self.shared.failed.load(Ordering::SeqCst);
        if self.shared.shard.get().is_some() && !writes_refused {
            let (replies, reqs): (Vec<_>, Vec<_>) = run.drain(..).map(|m| (m.reply, m.req)).unzip();
            let outs = self.guarded(|core| core.events_sharded(reqs));
            answer_run(answers, replies, outs);
            return;
        }
        if events < RUN_MIN_EVENTS
            || self.engine.feature_state().partitions() < 2
            || !self.workers
            || writes_refused
        {
            for msg in run.drain(..) {
                let out = self.guarded(|core| core.handle(msg.req));
                answers.push((msg.reply, out.unwrap_or_else(|o| o)));
            }
            return;
        }
        let mut replies = Vec::with_capacity(run.len());
        let mut reqs = Vec::with_capacity(run.len());
        for msg in run.drain(..) {
            if let Request::Events {
                items,
                decoded,
                batch,
                ..
            } = msg.req
            {
                reqs.push(events::EventsRequest {
                    items,
                    decoded,
                    batch,
                });
                replies.push(msg.reply);
            }
        }
        let outs = self.guarded(|core| core.events_run(reqs));
        answer_run(answers, replies, outs);
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
        // Its shares stop: its leases must pass to nodes that will publish them.
        self.shared.refuse_writes();
        self.failed = Some(why);
    }

    fn handle(&mut self, req: Request) -> Outcome {
        let writes = matches!(
            req,
            Request::Events { .. }
                | Request::ListSet { .. }
                | Request::ListRemove { .. }
                | Request::ListSetKey { .. }
                | Request::ListRemoveKey { .. }
                | Request::ResumeRule { .. }
                | Request::PauseAgain { .. }
                | Request::Reload
                | Request::Cursor(_)
                | Request::EraseToken { .. }
                | Request::EraseFinish { .. }
        );
        if self.failed.is_none() && self.shared.failed.load(Ordering::SeqCst) {
            // Set by another thread: the syncer (an fsync failed) or, in a cluster, the pump (a gap
            // in the shared log); the server's log says which.
            self.failed = Some(self.shared.refused_because.get().cloned().unwrap_or_else(|| {
                "syncing the event log failed, or the cluster's shared log has a gap (see the server's log)".into()
            }));
        }
        if let (true, Some(why)) = (writes, &self.failed) {
            return Outcome::Answer(error(
                Failure::Unavailable,
                "not_accepting_writes",
                refused(&self.shared, why),
            ));
        }
        if self.lifecycle.awaiting && matches!(req, Request::Events { .. }) {
            return Outcome::Answer(error(
                Failure::Unavailable,
                "policies_loading",
                "the active policy version is being loaded from the store ([lifecycle] source = \"console\"); retry shortly",
            ));
        }
        match req {
            Request::Events {
                items,
                decoded,
                labels_only,
                batch,
            } => self.events(items, decoded, labels_only, batch),
            Request::Decision { id } => Outcome::Answer(self.decision(&id)),
            Request::EventFields { id } => Outcome::Answer(self.event_fields(&id)),
            Request::Erase { kind, value } => Outcome::Answer(self.erase(&kind, &value)),
            Request::ErasurePlan {
                kind,
                value,
                pseudonym,
            } => Outcome::Answer(self.erasure_plan(&kind, &value, &pseudonym)),
            Request::EraseToken {
                token,
                pseudonym,
                moves,
                entry,
                planned,
            } => Outcome::Answer(self.rename_subject(
                &token,
                &pseudonym,
                &moves,
                Some((entry, planned)),
            )),
            Request::EraseFinish {
                token,
                pseudonym,
                entry,
                erasure,
            } => Outcome::Answer(self.finish_erasure(&token, &pseudonym, entry, erasure)),
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
            Request::ResolveLabels { items } => Outcome::Answer(self.resolve_labels(&items)),
            Request::ListKey { name, value } => {
                Outcome::Answer(match self.list_key(&name, &value) {
                    Ok(key) => ok(json!({ "key": key, "entity": self.list_entity(&name) })),
                    Err(a) => a,
                })
            }
            Request::ListSetKey {
                name,
                key,
                reason,
                expires,
                keyed_as,
            } => match self.list_keyed_alike(&name, keyed_as) {
                Ok(()) => self.list_set_key(&name, key, reason, None, expires),
                Err(a) => Outcome::Answer(a),
            },
            Request::ListRemoveKey {
                name,
                key,
                keyed_as,
            } => match self.list_keyed_alike(&name, keyed_as) {
                Ok(()) => self.list_remove_key(&name, key),
                Err(a) => Outcome::Answer(a),
            },
            Request::Reload => Outcome::Answer(self.reload()),
            Request::Status => Outcome::Answer(self.status()),
            Request::Digest {
                partitions,
                records,
            } => Outcome::Answer(self.digest(partitions, records)),
            Request::Findings {
                limit,
                detector,
                account,
            } => Outcome::Answer(self.findings_answer(
                limit,
                detector.as_deref(),
                account.as_deref(),
            )),
            Request::Graph {
                account,
                hops,
                max_nodes,
            } => Outcome::Answer(self.graph_view(&account, hops, max_nodes)),
            Request::RuleStats => Outcome::Answer(self.rule_stats()),
            Request::InstallVersion { files, label } => {
                Outcome::Answer(self.install_version(&files, &label))
            }
            Request::SetOverrides { snoozes } => Outcome::Answer(self.set_overrides(snoozes)),
            Request::ResumeRule { rule } => self.resume_rule(rule),
            Request::PauseAgain { trip } => self.pause_again(trip),
            Request::SetRollout(r) => Outcome::Answer(self.set_rollout(r)),
            Request::RolloutStats => Outcome::Answer(self.rollout_stats()),
            Request::Running => Outcome::Answer(self.running()),
            Request::StopAwaiting => {
                self.lifecycle.awaiting = false;
                Outcome::Answer(ok(json!({})))
            }
            Request::GuardState => Outcome::Answer(self.guard_state()),
            Request::Cursor(seq) => self.cursor(seq),
            // Expanded by `run` before any request is handled; one reaching here is a caller's bug.
            Request::Entry { seq, .. } => Outcome::Answer(error(
                Failure::Internal,
                "internal_error",
                format!("entry {seq} was not expanded"),
            )),

            Request::Shutdown => Outcome::Answer(ok(json!({}))),
        }
    }
}

impl Core {
    /// Records that the cluster log's entry `seq` was applied: a log record, so that a restart goes
    /// on after it (entries already applied are never applied twice; a repeated one would be a
    /// duplicate by its event ids anyway).
    fn cursor(&mut self, seq: u64) -> Outcome {
        // After an entry that changed the policies, the record keeps what now runs (see
        // `lifecycle::PolicyState`): recovery puts it back before deciding anything.
        let changed = std::mem::take(&mut self.lifecycle.changed);
        if seq <= self.stream_cursor {
            return Outcome::Answer(ok(json!({ "cursor": self.stream_cursor })));
        }
        let mut payload = seq.to_le_bytes().to_vec();
        if changed {
            payload.extend(lifecycle::encode_policy_state(&self.policy_state()));
        }
        if let Err(e) = self.wal.append(KIND_CURSOR, &payload) {
            self.fail(format!("event log: {e}"));
            return Outcome::Answer(error(
                Failure::Unavailable,
                "log_unavailable",
                "the cluster cursor could not be written to the event log",
            ));
        }
        self.stream_cursor = seq;
        self.shared.stream_cursor.store(seq, Ordering::SeqCst);
        if let Some(s) = self.shard() {
            s.cursor.store(seq, Ordering::SeqCst);
        }
        self.since_snap += 1;
        Outcome::Logged(ok(json!({ "cursor": seq })))
    }
}

/// The answers of a run handled together: each request's outcome, or, when handling it panicked,
/// the failure for every request of the run.
fn answer_run(
    answers: &mut Vec<(oneshot::Sender<Answer>, Outcome)>,
    replies: Vec<oneshot::Sender<Answer>>,
    outs: Result<Vec<Outcome>, Outcome>,
) {
    match outs {
        Ok(outs) => answers.extend(replies.into_iter().zip(outs)),
        Err(failed) => {
            for tx in replies {
                let a = match &failed {
                    Outcome::Answer(a) | Outcome::Logged(a) => a.clone(),
                };
                answers.push((tx, Outcome::Answer(a)));
            }
        }
    }
}

/// Each shared-log entry as its request, then its cursor (see [`Request::Entry`]).
fn expand_entries(group: Vec<Msg>) -> Vec<Msg> {
    let mut out = Vec::with_capacity(group.len() * 2);
    for m in group {
        match m.req {
            Request::Entry { seq, req } => {
                out.push(Msg {
                    req: *req,
                    reply: m.reply,
                });
                let (reply, _) = oneshot::channel();
                out.push(Msg {
                    req: Request::Cursor(seq),
                    reply,
                });
            }
            req => out.push(Msg {
                req,
                reply: m.reply,
            }),
        }
    }
    out
}

/// Drops the oldest indexed event (unless its id was indexed again since, at another place).
fn unindex_one(index: &mut HashMap<u128, Loc>, order: &mut VecDeque<(Loc, u128)>) {
    if let Some((loc, h)) = order.pop_front() {
        if index.get(&h) == Some(&loc) {
            index.remove(&h);
        }
    }
}
