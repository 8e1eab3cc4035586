//! A node of a cluster: every request that changes state goes through the cluster's shared log (NATS
//! JetStream, `argus_cluster`) and every node applies the log in its order.
//!
//! - **Entry.** Any node takes any request. Events are decoded, checked and pseudonymized here (only
//!   tokens enter the shared log; the clock is checked against this node's clock, once), then
//!   appended as one entry per request. JetStream acknowledges the entry once its replicas stored it.
//! - **Apply.** Each node tails the log ([`pump`]) and hands every entry, in log order, to its core
//!   as the same request the embedded server handles, followed by a cursor record. The node that
//!   appended an entry answers its client with its own core's answer: the decision as of that event,
//!   after every entry before it (read-your-writes across nodes).
//! - **Restart.** A node recovers its own snapshot and log as the embedded server does, then tails the
//!   shared log after its cursor. A new node replays the shared log from the start.
//!
//! Every node applies every entry. Without `[cluster] partitions` the state is replicated; with it,
//! each node holds the feature partitions it owns and exchanges their values (`crate::shard`).

use crate::api::AppState;
use crate::core::{self, error, Answer, Failure, Msg, Request};
use crate::metrics as m;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the tail may be quiet before the pump asks whether the log has grown without it.
const QUIET: Duration = Duration::from_millis(300);

/// Entry kinds.
const EVENTS: &str = "events";
/// The question nodes ask one another for a decision they do not hold ([`decision_from_peers`]).
const DECISION_TOPIC: &str = "decision";
/// How long a node waits for another's answer to that question.
const PEER_WAIT: Duration = Duration::from_millis(500);
const LABELS: &str = "labels";
const REQUEST: &str = "request";

/// This node in the cluster.
pub struct Node {
    pub log: argus_cluster::Log,
    /// This process's name in the log's entries (`Argus-Origin`): host, pid and start time.
    pub name: String,
    next: AtomicU64,
    waiters: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    /// Open while this node holds the `duties` lease: the work on the shared PostgreSQL that one node
    /// at a time must do (the outbox's deliveries, escalation, scheduled activation, recording the
    /// guard's trips).
    pub duties: Arc<std::sync::atomic::AtomicBool>,
    /// Events with a `[deadlines]` budget whose append or answer is in flight (capped at
    /// `[server] queue_depth`: see `submit_events`).
    budgeted: std::sync::atomic::AtomicUsize,
    /// Appends in flight: shutdown waits for them, so that an event answered `pending` is in the
    /// log or refused before the node stops.
    appending: std::sync::atomic::AtomicUsize,
}

/// This process's name in the cluster: host, pid and start time (a restarted node is a new member).
pub fn node_name() -> String {
    let host: String = hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        crate::core::now_ms() % 1_000_000_000
    )
}

/// A sharded node's name for its leases and its snapshot object: kept in the data directory
/// (`cluster-node`), so that a restarted node is the same member (it reclaims its leases once they
/// expire, and replaces its snapshot object rather than adding one).
///
/// The file also records the directory it was written in (its canonical path) and the host: a
/// data directory copied to start another node (operations.md, "Adding a node") would otherwise
/// give two live nodes one name, fighting over one set of leases and one snapshot object (an
/// outside test: the two never settled who held what). A directory found elsewhere than it was
/// written, or on another host, is a new member under a new name (a node whose directory merely
/// moved is one too: it joins as a new member, and its old name's leases expire).
pub fn stable_node_name(data: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(data)?;
    let path = data.join("cluster-node");
    let here = node_home(data);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines = text.lines().map(str::trim);
    let name = lines.next().filter(|n| !n.is_empty()).map(str::to_string);
    let written_in = lines.next().filter(|h| !h.is_empty());
    let keep = match (&name, written_in) {
        (Some(_), Some(h)) if h == here => true,
        (Some(n), Some(h)) => {
            tracing::warn!(
                "cluster: this data directory's node name `{n}` was written for {h}, and this is {here}: a copy (or a move) of another node's directory, so this node joins as a new member under a new name"
            );
            false
        }
        // Written by an earlier release: the same member, recorded here from now on.
        (Some(_), None) => true,
        (None, _) => false,
    };
    let name = match name {
        Some(n) if keep => n,
        _ => node_name(),
    };
    if !keep || written_in.is_none() {
        argus_engine::engine::write_atomically(&path, format!("{name}\n{here}\n").as_bytes())?;
    }
    Ok(name)
}

/// Where a data directory is, for [`stable_node_name`]: the host and the directory's canonical
/// path.
fn node_home(data: &Path) -> String {
    let dir = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    format!("{}:{}", hostname(), dir.display())
}

/// This machine's name (`/etc/hostname`), or `node` where there is none.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".into())
}

#[cfg(test)]
mod node_name_tests {
    use super::stable_node_name;

    /// A restarted node keeps its name; a copy of its data directory (to start another node)
    /// gets a new one, and keeps it; a file of an earlier release (the name alone) is kept.
    #[test]
    fn a_copied_data_directory_is_a_new_member() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let name = stable_node_name(&a).unwrap();
        assert_eq!(stable_node_name(&a).unwrap(), name, "restarted");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::copy(a.join("cluster-node"), b.join("cluster-node")).unwrap();
        let copy = stable_node_name(&b).unwrap();
        assert_ne!(copy, name, "a copy is another member");
        assert_eq!(
            stable_node_name(&b).unwrap(),
            copy,
            "and keeps its own name"
        );
        assert_eq!(
            stable_node_name(&a).unwrap(),
            name,
            "the original is unchanged"
        );
        std::fs::write(b.join("cluster-node"), "old-name\n").unwrap();
        assert_eq!(
            stable_node_name(&b).unwrap(),
            "old-name",
            "an earlier release's file"
        );
        assert_eq!(stable_node_name(&b).unwrap(), "old-name");
    }
}

/// Answers the other nodes' questions for decisions this node holds (its decision index), for
/// ever: a node started from the shared snapshot holds none of the events before it, and asks
/// ([`decision_from_peers`]).
pub async fn answer_decisions(st: AppState, node: Arc<Node>) {
    node.log
        .answer_peers(DECISION_TOPIC, |question| {
            let st = st.clone();
            async move {
                let id = std::str::from_utf8(&question).ok()?.to_string();
                match crate::api::ask_core(&st, Request::Decision { id }).await {
                    Answer::Done { body, .. } if !body["decision"].is_null() => {
                        serde_json::to_vec(&body).ok().map(Into::into)
                    }
                    _ => None,
                }
            }
        })
        .await
}

/// The decision of event `id` from another node (`{"id", "seq", "decision"}`, as
/// `GET /v1/decisions/{id}` answers), when this node does not hold it: it started from the shared
/// snapshot after the event (an outside test found such a node answering 404, and a retry
/// `duplicate` with no decision, where cluster.md promised the original). `None` when no node
/// answered within [`PEER_WAIT`].
pub(crate) async fn decision_from_peers(node: &Node, id: &str) -> Option<serde_json::Value> {
    let asked = node
        .log
        .ask_peers(DECISION_TOPIC, id.to_string().into(), PEER_WAIT)
        .await;
    m::inc_labeled(
        m::CLUSTER_PEER_DECISIONS,
        "outcome",
        match &asked {
            Ok(Some(_)) => "answered",
            Ok(None) => "none",
            Err(_) => "failed",
        },
    );
    let v: serde_json::Value = serde_json::from_slice(&asked.ok()??).ok()?;
    (v["id"] == id && !v["decision"].is_null()).then_some(v)
}

/// `answers` with every `duplicate` this node could not give a decision for (its engine remembers
/// the id, its decision index does not hold it) completed from another node's. The questions go
/// out at once: a batch of such retries waits one [`PEER_WAIT`] at most, not one per item.
async fn with_peer_decisions(node: &Arc<Node>, mut answers: Vec<Answer>) -> Vec<Answer> {
    // An event's answer carries its status alone in `body` (`core::event_answer`): only a
    // duplicate's whole answer is read, and nothing is set up for a run without one (every event
    // answer of a cluster node passes here).
    let undecided: Vec<(usize, String)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Answer::Done {
                body,
                raw: Some(raw),
            } if body == "duplicate" => serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .filter(|v| v["decision"].is_null())
                .and_then(|v| Some((i, v["id"].as_str()?.to_string()))),
            _ => None,
        })
        .collect();
    if undecided.is_empty() {
        return answers;
    }
    let mut asks = tokio::task::JoinSet::new();
    for (i, id) in undecided {
        let node = node.clone();
        asks.spawn(async move {
            let found = decision_from_peers(&node, &id).await;
            (i, id, found)
        });
    }
    while let Some(done) = asks.join_next().await {
        // In the shape of the core's own duplicate answers (a batch counts them by it).
        if let Ok((i, id, Some(found))) = done {
            answers[i] = core::event_answer(
                "duplicate",
                &id,
                None,
                &serde_json::to_vec(&found["decision"]).unwrap_or_default(),
            );
        }
    }
    answers
}

/// Whether this node does the one-node duties now: always on a single node; in a cluster while it
/// holds the `duties` lease.
pub fn on_duty(st: &AppState) -> bool {
    st.cluster
        .as_ref()
        .is_none_or(|n| n.duties.load(Ordering::SeqCst))
}

/// Events of one request, as the entry node decoded them (stored form: tokens only).
#[derive(Serialize, Deserialize)]
struct EventsEntry {
    batch: bool,
    items: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct LabelsEntry {
    batch: bool,
    items: Vec<Box<serde_json::value::RawValue>>,
}

/// What a list change's key was computed for: the list's entity kind (`None`: plain values).
#[derive(Serialize, Deserialize)]
struct KeyedAs {
    entity: Option<String>,
}

/// The other requests that change state, as they travel in the log.
#[derive(Serialize, Deserialize)]
enum Replicated {
    ListSet {
        name: String,
        value: String,
        reason: String,
        expires: Option<String>,
    },
    ListRemove {
        name: String,
        value: String,
    },
    /// A list change by the item's stored key (the token of a personal-data value): what entry
    /// nodes append (`ListSet` and `ListRemove`, with the value as typed, are still applied).
    ListSetKey {
        name: String,
        key: String,
        reason: String,
        expires: Option<String>,
        /// The list's entity kind when the entry node computed `key` (absent in older entries).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyed_as: Option<KeyedAs>,
    },
    ListRemoveKey {
        name: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyed_as: Option<KeyedAs>,
    },
    ResumeRule {
        rule: String,
    },
    InstallVersion {
        files: argus_lifecycle::Files,
        label: String,
    },
    /// Every node reloads its configuration and policy files at this point of the log.
    Reload,
    /// The snoozes, replaced on every node at this point of the log.
    SetOverrides {
        snoozes: Vec<argus_policy::Snooze>,
    },
    /// A rollout started (candidate files, label, basis points, salt) or ended, on every node.
    SetRollout(Option<(argus_lifecycle::Files, String, u32, String)>),
    /// An erasure: every node renames `token` to `pseudonym` at this point of the log, moving the
    /// keys its own log shows and `moves` (`entity:old:new`, the digests in hex) — those the
    /// entry node's log showed. The entry links the two, so it is itself erased from the stream
    /// once every live node applied it (`crate::erasure`).
    Erase {
        token: String,
        pseudonym: String,
        moves: Vec<String>,
        /// The entry node's last record when it planned (its log up to there gave `moves`).
        planned: u64,
    },
    /// A sharded cluster's second entry of an erasure (`erasure`: its first): every unit's holder
    /// shares a snapshot taken after it, so every node now renames `token` in its own log. Holds
    /// the token too, and is erased from the stream with the first.
    EraseFinish {
        token: String,
        pseudonym: String,
        erasure: u64,
    },
}

/// An erasure's keys as they travel in its entry (`entity:old:new`, hex digests).
fn parse_moves(moves: &[String]) -> Result<Vec<argus_engine::engine::KeyMove>, String> {
    moves
        .iter()
        .map(|m| {
            core::erasure::key_of(m)
                .ok_or_else(|| format!("a key move `{m}` is not `entity:old:new`"))
        })
        .collect()
}

impl Node {
    pub fn new(log: argus_cluster::Log) -> Node {
        Node {
            log,
            name: node_name(),
            next: AtomicU64::new(1),
            waiters: Mutex::new(HashMap::new()),
            duties: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            budgeted: Default::default(),
            appending: Default::default(),
        }
    }

    fn origin(&self, nonce: u64) -> String {
        format!("{}/{nonce}", self.name)
    }

    /// The waiter of an entry this node appended, if the entry is this node's.
    fn waiter(&self, origin: Option<&str>) -> Option<oneshot::Sender<Answer>> {
        let (name, nonce) = origin?.rsplit_once('/')?;
        if name != self.name {
            return None;
        }
        let nonce: u64 = nonce.parse().ok()?;
        self.waiters.lock().ok()?.remove(&nonce)
    }
}

/// Whether a request goes through the shared log.
pub fn replicated(req: &Request) -> bool {
    matches!(
        req,
        Request::Events { .. }
            | Request::ListSet { .. }
            | Request::ListRemove { .. }
            | Request::ResumeRule { .. }
            | Request::InstallVersion { .. }
            | Request::Reload
            | Request::SetOverrides { .. }
            | Request::SetRollout(_)
    )
}

/// A request that changes state, on a cluster node: checked here, appended to the shared log, and
/// answered by this node's core once it applied the entry.
pub async fn submit(st: &AppState, node: &Arc<Node>, req: Request) -> Answer {
    match req {
        Request::Events {
            items,
            decoded,
            labels_only: false,
            batch,
        } => submit_events(st, node, items, decoded, batch).await,
        Request::Events {
            items,
            labels_only: true,
            batch,
            ..
        } => {
            // The time bound the core skips in a cluster, checked here, once: a label far in the
            // future would move every node's watermark.
            let limit = core::now_ms().saturating_add(st.settings.max_future.as_millis() as i64);
            let late = items.iter().find_map(|raw| {
                let v: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
                let t = argus_event::time::parse_datetime(v.get("time")?.as_str()?)?;
                (t > limit).then(|| v.get("time").cloned())
            });
            if let Some(t) = late {
                return core::error_with(
                    Failure::Unprocessable,
                    "too_far_in_future",
                    format!("a label's time {} is beyond `server.max_future` of this server's clock; check the sender's clock", t.unwrap_or_default()),
                    serde_json::json!([{"path": "/time", "code": "too_far_in_future", "message": format!("at most {} ms ahead of the server's clock", st.settings.max_future.as_millis())}]),
                );
            }
            let items = match resolve_labels(st, node, items).await {
                Ok(i) => i,
                Err(a) => return a,
            };
            labels_entry(st, node, batch, items).await
        }
        _ => submit_other(st, node, req).await,
    }
}

/// The labels with the actor of the event each names filled in by this node's core (see
/// `Request::ResolveLabels`).
async fn resolve_labels(
    st: &AppState,
    node: &Node,
    items: Vec<Box<serde_json::value::RawValue>>,
) -> Result<Vec<Box<serde_json::value::RawValue>>, Answer> {
    let mut a = crate::api::ask_core(
        st,
        Request::ResolveLabels {
            items: items.clone(),
        },
    )
    .await;
    // The event may be in the log and not yet applied here (acknowledged by another node a moment
    // ago): once this node has caught up with the log as it is now, once more.
    if matches!(&a, Answer::Failed(e) if e.code == "unknown_event") {
        if let Ok(last) = node.log.last_seq().await {
            let t = std::time::Instant::now();
            while st.shared.stream_cursor.load(Ordering::SeqCst) < last
                && t.elapsed() < st.settings.request_timeout
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            a = crate::api::ask_core(st, Request::ResolveLabels { items }).await;
        }
    }
    let Answer::Done { body, .. } = &a else {
        return Err(a);
    };
    body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let s = s.as_str().unwrap_or("null").to_string();
            serde_json::value::RawValue::from_string(s)
                .map_err(|e| error(Failure::Internal, "internal_error", e.to_string()))
        })
        .collect()
}

async fn labels_entry(
    st: &AppState,
    node: &Node,
    batch: bool,
    items: Vec<Box<serde_json::value::RawValue>>,
) -> Answer {
    match serde_json::to_vec(&LabelsEntry { batch, items }) {
        Ok(p) => append_and_wait(st, node, LABELS, p).await,
        Err(e) => error(Failure::Internal, "internal_error", e.to_string()),
    }
}

/// List changes, resumes, installs, reloads, snoozes and rollouts: one `request` entry each.
async fn submit_other(st: &AppState, node: &Node, req: Request) -> Answer {
    match req {
        Request::ListSet {
            name,
            value,
            reason,
            ttl,
            expires,
        } => {
            // A TTL becomes an absolute time here, once, so that every node applies the same entry.
            let expires = match core::resolve_expiry(ttl, expires, true) {
                Ok(e) => e.map(argus_event::time::format_rfc3339),
                Err(a) => return a,
            };
            let (key, keyed_as) = match list_key(st, &name, value).await {
                Ok(k) => k,
                Err(a) => return a,
            };
            replicate(
                st,
                node,
                Replicated::ListSetKey {
                    name,
                    key,
                    reason,
                    expires,
                    keyed_as: Some(keyed_as),
                },
            )
            .await
        }
        Request::ListRemove { name, value } => {
            let (key, keyed_as) = match list_key(st, &name, value).await {
                Ok(k) => k,
                Err(a) => return a,
            };
            replicate(
                st,
                node,
                Replicated::ListRemoveKey {
                    name,
                    key,
                    keyed_as: Some(keyed_as),
                },
            )
            .await
        }
        Request::ResumeRule { rule } => replicate(st, node, Replicated::ResumeRule { rule }).await,
        Request::InstallVersion { files, label } => {
            replicate(st, node, Replicated::InstallVersion { files, label }).await
        }
        Request::Reload => replicate(st, node, Replicated::Reload).await,
        Request::SetOverrides { snoozes } => {
            replicate(st, node, Replicated::SetOverrides { snoozes }).await
        }
        Request::SetRollout(r) => replicate(st, node, Replicated::SetRollout(r)).await,
        _ => error(
            Failure::Internal,
            "internal_error",
            "not a replicated request",
        ),
    }
}

/// A list item's key as this node's core stores it (the token of a personal-data value): only
/// the key enters the shared log, with the list's entity kind it was computed for (every node
/// checks that kind as it applies the change).
async fn list_key(st: &AppState, name: &str, value: String) -> Result<(String, KeyedAs), Answer> {
    let a = crate::api::ask_core(
        st,
        Request::ListKey {
            name: name.to_string(),
            value,
        },
    )
    .await;
    match &a {
        Answer::Done { body, .. } => body["key"]
            .as_str()
            .map(|k| {
                (
                    k.to_string(),
                    KeyedAs {
                        entity: body["entity"].as_str().map(str::to_string),
                    },
                )
            })
            .ok_or_else(|| error(Failure::Internal, "internal_error", "no list key")),
        _ => Err(a),
    }
}

async fn replicate(st: &AppState, node: &Node, r: Replicated) -> Answer {
    match serde_json::to_vec(&r) {
        Ok(p) => append_and_wait(st, node, REQUEST, p).await,
        Err(e) => error(Failure::Internal, "internal_error", e.to_string()),
    }
}

async fn submit_events(
    st: &AppState,
    node: &Arc<Node>,
    items: Vec<Box<serde_json::value::RawValue>>,
    decoded: Vec<core::Decoded>,
    batch: bool,
) -> Answer {
    let started = std::time::Instant::now();
    let schema = st.decoder.schema.clone();
    let mut decoded = decoded.into_iter();
    // Per item: its refusal here, or None when it goes into the log.
    let mut refused: Vec<Option<Answer>> = Vec::with_capacity(items.len());
    let mut stored = Vec::with_capacity(items.len());
    // The id and type of each stored event, for the answers when the log cannot take them.
    let mut who = Vec::with_capacity(items.len());
    for raw in &items {
        let d = match decoded.next() {
            Some(d) => d,
            None => st.decoder.decode_bytes(raw.get().as_bytes()),
        };
        let checked = d
            .map_err(core::events_refusal)
            .and_then(|ev| core::check_clock(&schema, &ev, st.settings.max_future).map(|()| ev))
            .and_then(|ev| match core::stored_event(&schema, &ev) {
                Ok(bytes) => Ok((bytes, ev.id, ev.ty)),
                Err(e) => Err(error(Failure::Internal, "internal_error", e)),
            });
        match checked {
            Ok((bytes, id, ty)) => {
                stored.push(bytes);
                who.push((id, ty));
                refused.push(None);
            }
            Err(a) => refused.push(Some(a)),
        }
    }
    // Events whose checkpoints all have a budget (`[deadlines]`): answered within the shortest,
    // whatever the log and the other nodes do (see `late`). A batch with an event of a checkpoint
    // without a budget waits for every answer, as without budgets.
    let dl = deadlines(st);
    let budget = dl.as_deref().and_then(|d| {
        let each: Option<Vec<Duration>> = who.iter().map(|(_, ty)| d.budget_of(*ty)).collect();
        each?.into_iter().min()
    });
    let applied = if stored.is_empty() {
        Vec::new()
    } else {
        let payload = match bincode::serialize(&EventsEntry {
            batch: true,
            items: stored,
        }) {
            Ok(p) => p,
            Err(e) => return error(Failure::Internal, "internal_error", e.to_string()),
        };
        let answered = match (budget, dl) {
            (Some(b), Some(dl)) => {
                // Freed at the budget, clients no longer wait for the log and the core: the
                // requests in flight are capped as the embedded server's queue caps them.
                if node.budgeted.load(Ordering::SeqCst) >= st.settings.queue_depth {
                    return overloaded(st, &who, batch);
                }
                // The append and the wait go on in a task of their own when the budget passes:
                // the entry is (or is not) acknowledged and applied as without a budget.
                let now = node.budgeted.fetch_add(1, Ordering::SeqCst) + 1;
                m::set_gauge(m::CLUSTER_BUDGETED_IN_FLIGHT, now as f64);
                let (st2, node2) = (st.clone(), node.clone());
                let task = tokio::spawn(async move {
                    let a = append_and_wait(&st2, &node2, EVENTS, payload).await;
                    let left = node2.budgeted.fetch_sub(1, Ordering::SeqCst) - 1;
                    m::set_gauge(m::CLUSTER_BUDGETED_IN_FLIGHT, left as f64);
                    a
                });
                match tokio::time::timeout(b.saturating_sub(started.elapsed()), task).await {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => error(Failure::Internal, "internal_error", e.to_string()),
                    Err(_) => {
                        Answer::Batch(who.iter().map(|(id, ty)| late(st, &dl, id, *ty)).collect())
                    }
                }
            }
            _ => append_and_wait(st, node, EVENTS, payload).await,
        };
        match answered {
            Answer::Batch(v) => v,
            // The log could not acknowledge: each event fails open or closed by its checkpoint.
            Answer::Failed(e) if e.code == "log_unavailable" => who
                .iter()
                .map(|(id, ty)| degraded_or(st, id, *ty, &e))
                .collect(),
            // Not answered in time (in the log, not applied here yet), or the server stopping.
            other => return other,
        }
    };
    let mut applied = with_peer_decisions(node, applied).await.into_iter();
    let answers: Vec<Answer> = refused
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                applied.next().unwrap_or_else(|| {
                    error(Failure::Internal, "internal_error", "an answer is missing")
                })
            })
        })
        .collect();
    if batch {
        Answer::Batch(answers)
    } else {
        answers
            .into_iter()
            .next()
            .unwrap_or_else(|| error(Failure::Invalid, "empty", "no event in the request"))
    }
}

/// The answer when this node has `[server] queue_depth` events with a budget in flight: the
/// cluster is behind, and the events are not appended. As the embedded server's full queue:
/// one event is answered degraded with `overload_action` under `[deadlines] overload =
/// "degrade"` (neither recorded nor applied), anything else 503 `overloaded`.
fn overloaded(st: &AppState, who: &[(String, u16)], batch: bool) -> Answer {
    let v = st.shared.overload.load(Ordering::SeqCst);
    match (
        who,
        argus_policy::Action::ALL.get((v as usize).wrapping_sub(1)),
    ) {
        ([(id, ty)], Some(action)) if !batch => {
            crate::api::degraded(st, id, *ty, *action, ("queue", "overloaded"), false)
        }
        _ => {
            m::inc(m::REJECTED_OVERLOAD, 1);
            error(
                Failure::Unavailable,
                "overloaded",
                "this node has [server] queue_depth events with a budget in flight (its cluster is behind); retry after the time in Retry-After",
            )
        }
    }
}

/// Whether a checkpoint answers `allow` when the cluster cannot decide it in time
/// (`[cluster] fail_open`).
fn fails_open(st: &AppState, ty: &str) -> bool {
    st.settings
        .cluster
        .as_ref()
        .is_some_and(|c| c.fail_open.iter().any(|t| t == ty))
}

/// `[deadlines]` as the running configuration has it.
fn deadlines(st: &AppState) -> Option<Arc<argus_engine::deadlines::Deadlines>> {
    st.shared.deadlines.read().ok()?.clone()
}

/// The answer to an event whose decision this node did not have within its checkpoint's budget:
/// `allow` when the checkpoint fails open, else its `closed_action`. The event goes on: once the
/// log acknowledges it, every node applies it and records its decision as without a budget (the
/// same on every node), which a retry with the same id answers (`duplicate`) once it is recorded;
/// this answer is not recorded (`recorded: false`), and `pending: true` says the event may still be.
fn late(st: &AppState, dl: &argus_engine::deadlines::Deadlines, id: &str, ty: u16) -> Answer {
    let action = if fails_open(st, &st.decoder.schema.get(ty).name) {
        argus_policy::Action::Allow
    } else {
        dl.closed_action
            .get(ty as usize)
            .copied()
            .unwrap_or(argus_policy::Action::Review)
    };
    crate::api::degraded(st, id, ty, action, ("cluster", "late"), true)
}

/// The answer to an event the log could not acknowledge: a degraded `allow` (not recorded, not
/// applied) when its checkpoint fails open, else the refusal.
fn degraded_or(st: &AppState, id: &str, ty: u16, e: &core::CoreError) -> Answer {
    if !fails_open(st, &st.decoder.schema.get(ty).name) {
        return Answer::Failed(e.clone());
    }
    crate::api::degraded(
        st,
        id,
        ty,
        argus_policy::Action::Allow,
        (
            "log",
            "the cluster's log did not acknowledge the event in time",
        ),
        false,
    )
}

/// Appends an entry and waits for this node's core to apply it.
async fn append_and_wait(st: &AppState, node: &Node, kind: &str, payload: Vec<u8>) -> Answer {
    append_and_wait_for(node, kind, payload, st.settings.request_timeout).await
}

/// [`append_and_wait`], waiting up to `wait` for the core.
async fn append_and_wait_for(node: &Node, kind: &str, payload: Vec<u8>, wait: Duration) -> Answer {
    let nonce = node.next.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = oneshot::channel();
    if let Ok(mut w) = node.waiters.lock() {
        w.insert(nonce, tx);
    }
    let t = std::time::Instant::now();
    node.appending.fetch_add(1, Ordering::SeqCst);
    let appended = node
        .log
        .append(kind, &node.origin(nonce), None, payload.into())
        .await;
    node.appending.fetch_sub(1, Ordering::SeqCst);
    m::observe(m::CLUSTER_APPEND_SECONDS, t.elapsed().as_secs_f64());
    if let Err(e) = appended {
        if let Ok(mut w) = node.waiters.lock() {
            w.remove(&nonce);
        }
        m::inc(m::CLUSTER_APPEND_FAILURES, 1);
        if let argus_cluster::Error::TooLarge(_) = e {
            return error(Failure::TooLarge, "request_too_large", e.to_string());
        }
        return error(
            Failure::Unavailable,
            "log_unavailable",
            format!("the cluster's log did not acknowledge the request ({e}); it was not acknowledged: retry it (event ids make a retry safe)"),
        );
    }
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => error(
            Failure::Unavailable,
            "shutting_down",
            "the server stopped before answering",
        ),
        Err(_) => {
            if let Ok(mut w) = node.waiters.lock() {
                w.remove(&nonce);
            }
            error(
                Failure::Unavailable,
                "timeout",
                "the request is in the cluster's log but this node has not applied it in time; retry with the same event ids to read its answer",
            )
        }
    }
}

impl Node {
    /// Waits up to `within` for the appends in flight (a client answered `pending` by its budget
    /// does not wait for its append: the node must not stop before it is in the log or refused).
    pub async fn appends_done(&self, within: Duration) -> bool {
        let t = std::time::Instant::now();
        while self.appending.load(Ordering::SeqCst) > 0 {
            if t.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Hands a request to the core in order, waiting while its queue is full (never refusing: the log
/// has acknowledged the entry already).
async fn to_core(st: &AppState, req: Request, reply: oneshot::Sender<Answer>) -> bool {
    st.shared.queued.fetch_add(1, Ordering::SeqCst);
    let mut msg = Msg { req, reply };
    loop {
        match st.tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                msg = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(TrySendError::Disconnected(_)) => {
                st.shared.queued.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
        }
    }
}

/// The entry as the request the core handles.
fn request_of(st: &AppState, e: &argus_cluster::Entry) -> Result<Request, String> {
    match e.kind.as_str() {
        EVENTS => {
            let entry: EventsEntry = bincode::deserialize(&e.payload)
                .map_err(|err| format!("undecodable events entry: {err}"))?;
            let schema = &st.decoder.schema;
            let mut items = Vec::with_capacity(entry.items.len());
            let mut decoded = Vec::with_capacity(entry.items.len());
            for bytes in &entry.items {
                items.push(
                    serde_json::value::RawValue::from_string("null".into())
                        .map_err(|err| err.to_string())?,
                );
                decoded.push(Ok(core::load_event(schema, bytes)?));
            }
            Ok(Request::Events {
                items,
                decoded,
                labels_only: false,
                batch: entry.batch,
            })
        }
        LABELS => {
            let entry: LabelsEntry = serde_json::from_slice(&e.payload)
                .map_err(|err| format!("undecodable labels entry: {err}"))?;
            Ok(Request::Events {
                items: entry.items,
                decoded: Vec::new(),
                labels_only: true,
                batch: entry.batch,
            })
        }
        REQUEST => {
            let r: Replicated = serde_json::from_slice(&e.payload)
                .map_err(|err| format!("undecodable request entry: {err}"))?;
            Ok(match r {
                Replicated::ListSet {
                    name,
                    value,
                    reason,
                    expires,
                } => Request::ListSet {
                    name,
                    value,
                    reason,
                    ttl: None,
                    expires,
                },
                Replicated::ListRemove { name, value } => Request::ListRemove { name, value },
                Replicated::ListSetKey {
                    name,
                    key,
                    reason,
                    expires,
                    keyed_as,
                } => Request::ListSetKey {
                    name,
                    key,
                    reason,
                    expires,
                    keyed_as: keyed_as.map(|k| k.entity),
                },
                Replicated::ListRemoveKey {
                    name,
                    key,
                    keyed_as,
                } => Request::ListRemoveKey {
                    name,
                    key,
                    keyed_as: keyed_as.map(|k| k.entity),
                },
                Replicated::ResumeRule { rule } => Request::ResumeRule { rule },
                Replicated::InstallVersion { files, label } => {
                    Request::InstallVersion { files, label }
                }
                Replicated::Reload => Request::Reload,
                Replicated::SetOverrides { snoozes } => Request::SetOverrides { snoozes },
                Replicated::SetRollout(r) => Request::SetRollout(r),
                Replicated::Erase {
                    token,
                    pseudonym,
                    moves,
                    planned,
                } => Request::EraseToken {
                    token,
                    pseudonym,
                    moves: parse_moves(&moves)?,
                    entry: e.seq,
                    planned,
                },
                Replicated::EraseFinish {
                    token,
                    pseudonym,
                    erasure,
                } => Request::EraseFinish {
                    token,
                    pseudonym,
                    entry: e.seq,
                    erasure,
                },
            })
        }
        k => Err(format!("unknown entry kind `{k}`")),
    }
}

/// Tails the shared log after this node's cursor and hands every entry to the core, in order, each
/// followed by its cursor record. Reopens the tail after a failure (a NATS server lost, the stream's
/// leader moved) at the next entry it has not handed over.
pub async fn pump(st: AppState, node: Arc<Node>) {
    let mut next = st.shared.stream_cursor.load(Ordering::SeqCst) + 1;
    loop {
        let mut tail = match node.log.tail(next).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cluster: opening the log at entry {next}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        loop {
            // A tail whose server is gone goes quiet: the client notices only after missed
            // heartbeats (30 s). Quiet while the log has grown means such a tail: reopen it.
            let e = match tokio::time::timeout(QUIET, tail.next()).await {
                Err(_) => match node.log.last_seq().await {
                    Ok(last) if last >= next => {
                        tracing::info!(
                            "cluster: the log's tail at entry {next} went quiet; reopening"
                        );
                        break;
                    }
                    _ => continue,
                },
                Ok(Ok(e)) => e,
                Ok(Err(e @ argus_cluster::Error::Gap { .. })) => {
                    // Nothing this node can do from its own state: it stops applying and refuses
                    // writes, instead of answering from a state that silently missed entries.
                    // Every refused write, and the status, say what to do: a restart would stop
                    // at the same gap (an outside test found writes told to restart it).
                    tracing::error!("cluster: {e}");
                    st.shared.refuse_writes_because(e.to_string());
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!("cluster: reading the log at entry {next}: {e}; reopening");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            };
            let reply = node.waiter(e.origin.as_deref());
            let (tx, _rx) = oneshot::channel();
            if e.expired() {
                // Stored after its appender stopped waiting (a client's buffered publish delivered
                // after a reconnect): its client was told it was not acknowledged, so no node
                // applies it. Only its cursor is recorded.
                tracing::warn!(
                    seq = e.seq,
                    late_ms = e.stored_ms - e.deadline_ms.unwrap_or(e.stored_ms),
                    "cluster: entry stored after its deadline, skipped"
                );
                m::inc(m::CLUSTER_ENTRIES_EXPIRED, 1);
                if let Some(w) = reply {
                    let _ = w.send(error(
                        Failure::Unavailable,
                        "log_unavailable",
                        "the cluster's log stored the request after its deadline, so no node applied it: retry it (event ids make a retry safe)",
                    ));
                }
                let (ctx, _crx) = oneshot::channel();
                if !to_core(&st, Request::Cursor(e.seq), ctx).await {
                    return;
                }
                m::set_gauge(m::CLUSTER_CURSOR, e.seq as f64);
                next = e.seq + 1;
                continue;
            }
            match request_of(&st, &e) {
                Ok(req) => {
                    // An erasure's answer goes through this node's own part of it (the vault, the
                    // export) before it reaches its waiter, if any.
                    let reply = match &req {
                        Request::EraseToken {
                            token,
                            pseudonym,
                            entry,
                            ..
                        } => {
                            // An export round overlapping the renaming throws its files away.
                            core::export::ERASURE_EPOCH.fetch_add(1, Ordering::SeqCst);
                            let (etx, erx) = oneshot::channel();
                            tokio::spawn(after_erasure(
                                st.clone(),
                                (token.clone(), pseudonym.clone(), *entry),
                                erx,
                                reply,
                            ));
                            Some(etx)
                        }
                        Request::EraseFinish { .. } => {
                            // The log is renamed now: the export's tables, written again from
                            // it since the erasure's first entry, go again.
                            core::export::ERASURE_EPOCH.fetch_add(1, Ordering::SeqCst);
                            let (etx, erx) = oneshot::channel();
                            tokio::spawn(after_erasure_finish(st.clone(), erx, reply));
                            Some(etx)
                        }
                        _ => reply,
                    };
                    let entry = Request::Entry {
                        seq: e.seq,
                        req: Box::new(req),
                    };
                    if !to_core(&st, entry, reply.unwrap_or(tx)).await {
                        return;
                    }
                }
                Err(why) => {
                    // A damaged or foreign entry is skipped alike by every node (it is in the log
                    // for all of them), and said.
                    tracing::error!(seq = e.seq, "cluster: entry skipped: {why}");
                    m::inc(m::CLUSTER_ENTRIES_SKIPPED, 1);
                    if let Some(w) = reply {
                        let _ = w.send(error(Failure::Internal, "internal_error", why));
                    }
                    let (ctx, _crx) = oneshot::channel();
                    if !to_core(&st, Request::Cursor(e.seq), ctx).await {
                        return;
                    }
                }
            }
            m::set_gauge(m::CLUSTER_CURSOR, e.seq as f64);
            next = e.seq + 1;
        }
    }
}

/// Every node's own part of an erasure entry, once its core renamed the subject: the clear value
/// leaves this node's vault, the token is renamed in its case store (each node's own SQLite file,
/// or the shared PostgreSQL again: nothing left to rename there) and the continuous export's tables
/// go (the next round writes them again from the renamed log). The answer, with what was found,
/// goes on to `waiter` (the entry node's handler, which also blanks the clear value in notes).
async fn after_erasure(
    st: AppState,
    (token, pseudonym, entry): (String, String, u64),
    answer: oneshot::Receiver<Answer>,
    waiter: Option<oneshot::Sender<Answer>>,
) {
    let Ok(mut a) = answer.await else {
        return;
    };
    let sequence = match &a {
        Answer::Done { body, .. } => body["sequence"].as_u64().unwrap_or(0),
        _ => 0,
    };
    if let Answer::Done { body, .. } = &mut a {
        if let Err(e) = crate::erasure::erase_from_vault(&st, &token, &mut body["found"]) {
            tracing::error!("erasure: the vault: {e:?}");
            a = e;
        }
        if let (Answer::Done { body, .. }, Some(svc)) = (&mut a, &st.cases) {
            let scrubbed = match svc.store() {
                Ok(store) => store
                    .scrub(&token, &pseudonym, &[], &[])
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("{e:?}")),
            };
            match scrubbed {
                Ok(n) => body["found"]["case_rows"] = serde_json::json!(n),
                Err(e) => {
                    tracing::error!("erasure: the case store: {e}");
                    a = error(
                        Failure::Unavailable,
                        "erasure_failed",
                        format!("the case store: {e}; the log and state are done, repeat the request for the rest"),
                    );
                }
            }
        }
        if let (Answer::Done { body, .. }, Some(dir)) = (&mut a, &st.settings.export_dir) {
            body["found"]["export_entries_removed"] =
                serde_json::json!(crate::erasure::empty_export(dir));
        }
    } else {
        tracing::error!("erasure: this node's core could not apply it: {a:?}");
    }
    // The asking node's handler goes on to the stream's step only with a successful answer it
    // received (its client may have left, dropping it).
    let done = matches!(a, Answer::Done { .. });
    let handed_on = match waiter {
        Some(w) => w.send(a).is_ok() && done,
        None => false,
    };
    // When the stream's entries have not been erased `[cluster] erasure_grace` on (a minute by
    // default: the asking node died, its request was dropped, or its own part failed), the node
    // holding the duties lease then does it: so the erasure's own entry, which links the token to
    // its pseudonym, does not stay in the stream. Every node but an asking one that went on waits
    // (the asking one, when its steps fail, goes on the same way: `erasure::erase`).
    let (Some(node), Some(c)) = (
        st.cluster.clone().filter(|_| !handed_on),
        st.settings.cluster.as_ref(),
    ) else {
        return;
    };
    let at = (entry, sequence);
    finish_on_duty(&st, &node, &token, &pseudonym, "", at, c.erasure_grace()).await;
}

/// The steps of the erasure at `at` (its entry, the engine's sequence number then) that nobody
/// finished: once `wait` has passed, and then every 30 s for 10 minutes, while the stream still
/// holds the erasure's entry, this node does them if it holds the `duties` lease (which may move
/// meanwhile). `value`: the clear value, which only the asking node knows ("" elsewhere: the
/// entries holding the token are found all the same).
pub(crate) async fn finish_on_duty(
    st: &AppState,
    node: &Arc<Node>,
    token: &str,
    pseudonym: &str,
    value: &str,
    at: (u64, u64),
    wait: Duration,
) {
    let entry = at.0;
    tokio::time::sleep(wait).await;
    for _ in 0..20 {
        match node.log.entry_exists(entry).await {
            Ok(false) => return,
            Ok(true) if on_duty(st) => {
                tracing::warn!(
                    entry,
                    "erasure: the stream still holds the erasure's entry; this node (duties) erases the entries"
                );
                match crate::erasure::finish_in_cluster(st, node, token, pseudonym, value, at).await
                {
                    Ok(found) => {
                        tracing::info!(entry, %found, "erasure: the stream's entries erased");
                        return;
                    }
                    Err(e) => tracing::warn!(entry, "erasure: the stream's entries: {e:?}"),
                }
            }
            Ok(true) => {}
            Err(e) => tracing::warn!(entry, "erasure: checking the stream: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

/// Every node's own part of an erasure's second entry (a sharded cluster), once its core renamed
/// the subject in its log: the continuous export's tables go (the next round writes them from the
/// renamed log). The answer goes on to `waiter`.
async fn after_erasure_finish(
    st: AppState,
    answer: oneshot::Receiver<Answer>,
    waiter: Option<oneshot::Sender<Answer>>,
) {
    let Ok(mut a) = answer.await else {
        return;
    };
    if let Some(dir) = &st.settings.export_dir {
        let removed = crate::erasure::empty_export(dir);
        if let Answer::Done { body, .. } = &mut a {
            body["found"]["export_entries_removed"] = serde_json::json!(removed);
        }
    }
    if let Some(w) = waiter {
        let _ = w.send(a);
    }
}

/// This node's leases' time to live and the lease bucket (waited for while NATS cannot give it);
/// `None` outside a cluster.
async fn lease_bucket(st: &AppState) -> Option<(Duration, argus_cluster::Leases)> {
    let (node, c) = (st.cluster.clone()?, st.settings.cluster.clone()?);
    let ttl = c.lease_ttl();
    loop {
        match node.log.leases(&node.name, ttl).await {
            Ok(l) => return Some((ttl, l)),
            Err(e) => {
                tracing::warn!("cluster: the lease bucket: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Reports this node's cursor in the shared log every `every` (`applied.<node>` in the lease
/// bucket, gone `lease_ttl` after the last report): an erasure waits until every live node applied
/// its entry before it erases that entry from the stream.
pub async fn report_applied(st: AppState) {
    let Some((ttl, leases)) = lease_bucket(&st).await else {
        return;
    };
    let every = (ttl / 3).min(Duration::from_secs(1));
    loop {
        // A failed node (a gap, an erasure it could not apply) stops reporting: its report expires,
        // and an erasure does not wait for it (it must start empty anyway).
        if st.shared.failed.load(Ordering::SeqCst) {
            tokio::time::sleep(every).await;
            continue;
        }
        let at = st.shared.stream_cursor.load(Ordering::SeqCst);
        if let Err(e) = leases.report(APPLIED, at).await {
            tracing::debug!("cluster: reporting the cursor: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The key under which nodes report their cursor (see [`report_applied`]).
pub const APPLIED: &str = "applied";

/// Appends an erasure's entry and waits (up to an hour: the core rewrites its log) for this node to
/// apply it.
pub async fn append_erasure(
    node: &Node,
    token: String,
    pseudonym: String,
    moves: Vec<String>,
    planned: u64,
) -> Answer {
    append_entry(
        node,
        &Replicated::Erase {
            token,
            pseudonym,
            moves,
            planned,
        },
    )
    .await
}

/// Appends a sharded cluster's second entry of the erasure at entry `erasure` and waits (up to an
/// hour: the core rewrites its log) for this node to apply it.
pub async fn append_erasure_finish(
    node: &Node,
    token: String,
    pseudonym: String,
    erasure: u64,
) -> Answer {
    append_entry(
        node,
        &Replicated::EraseFinish {
            token,
            pseudonym,
            erasure,
        },
    )
    .await
}

async fn append_entry(node: &Node, r: &Replicated) -> Answer {
    match serde_json::to_vec(r) {
        Ok(p) => append_and_wait_for(node, REQUEST, p, Duration::from_secs(3600)).await,
        Err(e) => error(Failure::Internal, "internal_error", e.to_string()),
    }
}

/// Whether a data directory holds no state yet (no snapshot, no log segment).
fn is_empty(data: &Path) -> bool {
    let segments = std::fs::read_dir(data.join("log")).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("wal-"))
    });
    core::snapshot_files(data).is_empty() && !segments
}

/// Before recovery: a node whose data directory is empty starts from the newest snapshot another node
/// shared (JetStream's object store), instead of replaying the whole shared log. It writes the
/// snapshot and an empty log that begins after the snapshot's last record (record numbers are the
/// same on every node), so that recovery restores the snapshot and the pump tails the shared log
/// after its cursor. Returns what it restored, or `None` when there was nothing to do.
pub async fn bootstrap(
    log: &argus_cluster::Log,
    data: &Path,
) -> Result<Option<argus_cluster::SharedSnapshot>, String> {
    if !is_empty(data) {
        return Ok(None);
    }
    // JetStream may be electing a leader (a server just died): "no responders" and timeouts pass
    // within seconds, so the fetch is tried again (120 times), as the connection's first requests are.
    let fetched = patiently(log, "fetching the shared snapshot", || log.fetch_snapshot())
        .await
        .map_err(|e| e.to_string())?;
    let Some((at, bytes)) = fetched else {
        return Ok(None);
    };
    let (record, cursor) = start_from_snapshot(data, &bytes)?;
    if (record, cursor) != (at.record, at.cursor) {
        return Err(format!(
            "the shared snapshot says it covers record {} and entry {}, its contents record {record} and entry {cursor}",
            at.record, at.cursor
        ));
    }
    Ok(Some(at))
}

/// Makes the empty data directory `data` start from another node's server snapshot `bytes`: writes
/// the snapshot and an empty log that begins after its last record (record numbers are the same on
/// every node). Returns the record and the shared log's entry it covers.
pub fn start_from_snapshot(data: &Path, bytes: &[u8]) -> Result<(u64, u64), String> {
    let (record, cursor) = core::snapshot_position(bytes)
        .map_err(|e| format!("the shared snapshot is damaged: {e}"))?;
    if record == 0 {
        return Err("the shared snapshot covers no record".into());
    }
    if !is_empty(data) {
        return Err(format!("{} is not empty", data.display()));
    }
    let snaps = data.join("snapshots");
    let logd = data.join("log");
    for d in [&snaps, &logd] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let snap = snaps.join(format!("snap-{record:020}.bin"));
    argus_engine::engine::write_atomically(&snap, bytes).map_err(|e| io(&snap, e))?;
    let seg = logd.join(format!("wal-{:020}.log", record + 1));
    std::fs::File::create(&seg)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&seg, e))?;
    let head = logd.join("HEAD");
    argus_engine::engine::write_atomically(&head, format!("{}\n", record + 1).as_bytes())
        .map_err(|e| io(&head, e))?;
    Ok((record, cursor))
}

/// Shares this node's newest snapshot through JetStream's object store every `every`, when it is
/// newer than the one there: new nodes start from it.
pub async fn share_snapshots(log: argus_cluster::Log, data: PathBuf, every: Duration) {
    let mut shared = 0u64;
    loop {
        tokio::time::sleep(every).await;
        let Some((seq, path)) = core::snapshot_files(&data).into_iter().next() else {
            continue;
        };
        if seq <= shared {
            continue;
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cluster: reading {}: {e}", path.display());
                continue;
            }
        };
        let Ok((record, cursor)) = core::snapshot_position(&bytes) else {
            continue;
        };
        match log
            .publish_snapshot(argus_cluster::SharedSnapshot { cursor, record }, &bytes)
            .await
        {
            Ok(published) => {
                shared = seq;
                if published {
                    tracing::info!(
                        record,
                        cursor,
                        bytes = bytes.len(),
                        "cluster: shared a snapshot"
                    );
                    m::inc(m::CLUSTER_SNAPSHOTS_SHARED, 1);
                }
            }
            Err(e) => tracing::warn!("cluster: sharing a snapshot: {e}"),
        }
    }
}

/// Holds the lease `name` while this node lives: takes it when free, renews it, and keeps `gate` open
/// exactly while it is held (closed at once when a renewal fails, before the lease can pass to
/// another node).
pub async fn hold_lease(
    st: AppState,
    name: &'static str,
    gate: Arc<std::sync::atomic::AtomicBool>,
) {
    let Some((_, leases)) = lease_bucket(&st).await else {
        return;
    };
    let mut held = None;
    loop {
        let now = leases.hold(name, held).await;
        if now.is_some() != held.is_some() {
            if now.is_some() {
                tracing::info!(lease = name, "cluster: this node holds the lease");
            } else {
                tracing::info!(lease = name, "cluster: this node does not hold the lease");
            }
        }
        held = now;
        gate.store(held.is_some(), Ordering::SeqCst);
        m::set_gauge_labeled(
            m::CLUSTER_LEASES_HELD,
            "lease",
            name,
            if held.is_some() { 1.0 } else { 0.0 },
        );
        tokio::time::sleep(leases.renew_every()).await;
    }
}

/// `f`, tried again (120 times: every half second, or at once through a new connection after a
/// timeout) while it fails in a way that passes:
/// JetStream answers "no responders" or times out while a cluster that just started (or lost a
/// server) elects the leaders of its buckets. A node started then waits instead of exiting.
/// What cannot pass (another cluster's shape, a refused connection) is returned at once. After a
/// request that timed out, the node connects again, to a server chosen at random
/// ([`Log::reconnect`]): the one it is on may have just restarted, and answer nothing until it
/// has caught up.
///
/// [`Log::reconnect`]: argus_cluster::Log::reconnect
pub(crate) async fn patiently<T, Fut>(
    log: &argus_cluster::Log,
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> Result<T, argus_cluster::Error>
where
    Fut: std::future::Future<Output = Result<T, argus_cluster::Error>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(
                e @ (argus_cluster::Error::Read(_)
                | argus_cluster::Error::Append(_)
                | argus_cluster::Error::AckTimeout(_)),
            ) if tries < 120 => {
                tries += 1;
                if e.to_string().contains("timed out") {
                    tracing::warn!("{what}: {e}; connecting again (to a NATS server chosen at random) and trying again");
                    log.reconnect().await;
                } else {
                    tracing::warn!("{what}: {e}; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            r => return r,
        }
    }
}
