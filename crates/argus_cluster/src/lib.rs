//! Argus in a cluster: the shared, ordered, replicated event log on NATS JetStream.
//!
//! The log interface is deliberately narrow — [`Log::append`] (durable once it returns, with the
//! stream's replication) and [`Log::tail`] (every entry from a sequence number on, in order) — so that
//! another broker (Kafka: one partition, `acks=all`, offsets as sequence numbers) can stand behind
//! it; docs/cluster.md maps the design onto Kafka. Nothing here knows what an entry means: the server
//! (`argus_server::cluster`) encodes and applies them.

mod ownership;
mod shares;
/// The bytes type of shares and entries (the `bytes` crate's, as async-nats uses it).
pub use bytes::Bytes;
pub use ownership::{wanted_owner, wanted_owner_declining, Ownership};
pub use shares::{
    piece_key, piece_of, read_object, share_key, stale_node_snapshots, NodeSnapshot, Shares,
    MAX_PIECES, PIECE_KEYS,
};

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A read of the shared snapshot during which no bytes come for this long is given up (and tried
/// again by its caller): the object was replaced under it, or its server went away.
const SNAPSHOT_IDLE: Duration = Duration::from_secs(10);

/// Where the cluster's log lives and how it is replicated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// NATS servers (`nats://host:port`); the client fails over between them.
    pub servers: Vec<String>,
    /// The JetStream stream holding the log (its subject is `<stream>.log`).
    pub stream: String,
    /// JetStream replicas of the stream (1, 3 or 5): an entry is acknowledged once that many
    /// servers stored it.
    pub replicas: usize,
    /// How long an append waits for JetStream's acknowledgement.
    pub ack_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to NATS ({servers}): {source}")]
    Connect {
        servers: String,
        source: async_nats::ConnectError,
    },
    #[error("the JetStream stream `{stream}`: {message}")]
    Stream { stream: String, message: String },
    #[error("appending to the log: {0}")]
    Append(String),
    #[error("the log did not acknowledge the entry within {0:?}")]
    AckTimeout(Duration),
    /// The entry is larger than the NATS servers' `max_payload`: retrying cannot help.
    #[error("the request is {0} bytes once stored, more than the NATS servers' max_payload allows (set max_payload: 8MB in their configuration, or send smaller batches)")]
    TooLarge(usize),
    #[error("reading the log: {0}")]
    Read(String),
    /// The stream no longer holds entries this node needs (an operator bounded it past this node's
    /// cursor): it cannot go on from its own state.
    #[error("the shared log no longer holds entries {expected} to {}: this node cannot catch up from its own state; move its data directory aside and start it again, so that it restores the newest shared snapshot", .got - 1)]
    Gap { expected: u64, got: u64 },
}

/// Whether a failed get of a bucket says it does not exist (so it may be created), rather than
/// that JetStream could not answer (a leader being elected, a timeout: worth trying again).
fn absent(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(x) = cur {
        let s = x.to_string();
        if s.contains("not found") || s.contains("10059") {
            return true;
        }
        cur = x.source();
    }
    false
}

/// One entry of the log: its sequence number (1, 2, … with no gaps), what kind of request it holds,
/// which node and request it came from, and its bytes.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub kind: String,
    pub origin: Option<String>,
    pub payload: Bytes,
    /// When JetStream stored it (the stream's own clock, milliseconds since the epoch).
    pub stored_ms: i64,
    /// The latest time its appender would have it stored (see [`Entry::expired`]).
    pub deadline_ms: Option<i64>,
}

impl Entry {
    /// Stored after its appender gave up waiting: the appender answered that it was not
    /// acknowledged (a NATS client keeps publishing what it buffered while disconnected, so such an
    /// entry can reach the stream long after). Every node skips it alike: both times are in the
    /// stored entry.
    pub fn expired(&self) -> bool {
        self.deadline_ms.is_some_and(|d| self.stored_ms > d)
    }
}

const KIND: &str = "Argus-Kind";
const ORIGIN: &str = "Argus-Origin";
const DEADLINE: &str = "Argus-Deadline";

/// How long past an entry's deadline its appender still waits for the acknowledgement. An entry
/// stored after the deadline is skipped by every node, and its appender, if still waiting, is told
/// so by its own node; clocks of Argus nodes and NATS servers must agree within this.
pub const ACK_GRACE: Duration = Duration::from_millis(500);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The cluster's log: one JetStream stream, file storage, replicated.
#[derive(Clone)]
pub struct Log {
    js: jetstream::Context,
    stream: String,
    subject: String,
    ack_timeout: Duration,
    replicas: usize,
    /// Disconnections and slow-consumer drops since connecting: plain NATS messages (announced
    /// shares) sent meanwhile did not reach this node.
    gaps: Arc<AtomicU64>,
}

/// A node snapshot shared through JetStream's object store: the newest one any node published, with
/// the shared log's entries and the node log's records it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSnapshot {
    pub cursor: u64,
    pub record: u64,
}

/// The object holding the newest shared snapshot.
const SNAPSHOT_OBJECT: &str = "snapshot";

impl Log {
    /// The most bytes one message may carry (`max_payload`), as the server this node is connected
    /// to announced it; 0 before the first connection.
    pub fn max_payload(&self) -> usize {
        self.js.client().server_info().max_payload
    }

    /// The chunk size of the snapshot objects this node writes: the object store's default
    /// (128 KiB) unless the servers' `max_payload` is smaller than twice that — a chunk over it
    /// is refused, and no snapshot could be shared.
    pub(crate) fn object_chunk(&self) -> Option<usize> {
        match self.max_payload() {
            0 => None,
            n => Some((n / 2).clamp(1024, 128 * 1024)),
        }
    }

    /// Connects (retrying the servers in turn until one answers) and creates the stream if it is not
    /// there yet. An existing stream keeps its configuration.
    pub async fn connect(s: &Settings) -> Result<Log, Error> {
        let gaps = Arc::new(AtomicU64::new(0));
        let counted = gaps.clone();
        let client = async_nats::ConnectOptions::new()
            .name("argus")
            // A node never needs back what it publishes on plain NATS (its own announced shares
            // and confirmations): the servers skip that delivery, and the node decoding it.
            .no_echo()
            .event_callback(move |event| {
                if matches!(
                    event,
                    async_nats::Event::Disconnected | async_nats::Event::SlowConsumer(_)
                ) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                // (The client logs every event itself.)
                async {}
            })
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(s.ack_timeout))
            .connect(s.servers.clone())
            .await
            .map_err(|source| Error::Connect {
                servers: redact(&s.servers.join(",")),
                source,
            })?;
        let js = jetstream::new(client);
        let subject = format!("{}.log", s.stream);
        let cfg = stream::Config {
            name: s.stream.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            num_replicas: s.replicas.max(1),
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            // Each request is one entry; a batch of events can be large.
            max_message_size: 8 << 20,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        // The stream's leader may still be elected when the cluster has just started: retry what
        // may pass, give up at once on what cannot.
        let mut tries = 0;
        let servers = redact(&s.servers.join(","));
        let stream_info = loop {
            match js.get_or_create_stream(cfg.clone()).await {
                Ok(mut st) => break st.info().await.cloned(),
                Err(e) => {
                    let msg = e.to_string();
                    // Permanent: a single server cannot hold more than one replica.
                    if msg.contains("replicas > 1 not supported") {
                        return Err(Error::Stream {
                            stream: s.stream.clone(),
                            message: format!("{msg}: a single NATS server holds 1 replica: set [cluster] replicas = 1 (ARGUS_CLUSTER_REPLICAS=1), or run three servers in a cluster"),
                        });
                    }
                    // Transient while a NATS cluster forms (its servers join one by one), permanent
                    // when it has fewer servers than replicas: retried, then said.
                    if tries >= 60 {
                        let hint = if msg.contains("insufficient resources") {
                            "the NATS cluster has fewer JetStream servers than [cluster] replicas, or too little storage"
                        } else {
                            "is a nats-server with JetStream enabled (`-js`, or `jetstream {}` in its configuration) listening there?"
                        };
                        return Err(Error::Stream {
                            stream: s.stream.clone(),
                            message: format!("{msg} (after 30 s of retries at {servers}: {hint})"),
                        });
                    }
                    tries += 1;
                    tracing::warn!("waiting for the JetStream stream `{}` at {servers}: {msg} (a NATS server with JetStream enabled must be listening there)", s.stream);
                    if msg.contains("timed out") {
                        // The server this node is on may have just restarted (see `reconnect`).
                        let _ = js.client().force_reconnect().await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        // An existing stream keeps its configuration: it must replicate as configured, or an
        // acknowledgement would not mean what [cluster] replicas says.
        if let Ok(info) = stream_info {
            if info.config.num_replicas.max(1) != s.replicas.max(1) {
                return Err(Error::Stream {
                    stream: s.stream.clone(),
                    message: format!(
                        "the stream exists with {} replica(s) but [cluster] replicas is {}: change the stream (`nats stream edit {} --replicas {}`) or the setting",
                        info.config.num_replicas.max(1),
                        s.replicas.max(1),
                        s.stream,
                        s.replicas.max(1)
                    ),
                });
            }
        }
        Ok(Log {
            js,
            stream: s.stream.clone(),
            subject,
            ack_timeout: s.ack_timeout,
            replicas: s.replicas.max(1),
            gaps,
        })
    }

    /// Connects again, to a server of the list chosen at random as at start (the same one, one
    /// time in three with three servers), and waits up to 2 s for the new connection. For a
    /// JetStream request that timed out while the node starts: a NATS server that has just
    /// restarted answers none until it has caught up with its cluster, and a node connected to
    /// it would otherwise wait that long (one request timeout, `ack_timeout`, after another),
    /// while requests through another server pass at once. Subscriptions are made again on the
    /// new connection (at start there are none yet).
    pub async fn reconnect(&self) {
        let client = self.js.client();
        let was = client.server_info().port;
        if client.force_reconnect().await.is_err() {
            return;
        }
        let t = std::time::Instant::now();
        // The client handles the request on its own task: until then it still says connected.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while client.connection_state() != async_nats::connection::State::Connected
            && t.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            from_port = was,
            to_port = client.server_info().port,
            "reconnected to a NATS server"
        );
    }

    /// How many times this node's connection lost plain NATS messages (a disconnection, a
    /// subscription too slow to keep up): compare it with an earlier value to tell.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::SeqCst)
    }

    async fn snapshots(&self) -> Result<jetstream::object_store::ObjectStore, Error> {
        let bucket = format!("{}-snapshots", self.stream);
        match self.js.get_object_store(&bucket).await {
            Ok(s) => return Ok(s),
            // JetStream could not answer (a leader election, a timeout): try again later, not
            // a create that fails the same way or clashes with the bucket that is there.
            Err(e) if !absent(&e) => return Err(Error::Read(format!("the bucket {bucket}: {e}"))),
            Err(_) => {}
        }
        self.js
            .create_object_store(jetstream::object_store::Config {
                bucket: bucket.clone(),
                description: Some("Argus node snapshots: the newest, for new nodes".into()),
                num_replicas: self.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Stream {
                stream: bucket,
                message: e.to_string(),
            })
    }

    /// The newest shared snapshot's position, if any.
    pub async fn shared_snapshot(&self) -> Result<Option<SharedSnapshot>, Error> {
        let store = self.snapshots().await?;
        match store.info(SNAPSHOT_OBJECT).await {
            Ok(info) => Ok(parse_position(info.description.as_deref())),
            Err(e) if e.kind() == jetstream::object_store::InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Read(e.to_string())),
        }
    }

    /// Publishes a node snapshot (its bytes, and what it covers) unless a newer one is there.
    pub async fn publish_snapshot(&self, at: SharedSnapshot, bytes: &[u8]) -> Result<bool, Error> {
        if self
            .shared_snapshot()
            .await?
            .is_some_and(|s| s.cursor >= at.cursor)
        {
            return Ok(false);
        }
        let store = self.snapshots().await?;
        let mut reader = bytes;
        store
            .put(
                jetstream::object_store::ObjectMetadata {
                    name: SNAPSHOT_OBJECT.into(),
                    description: Some(format!("{} {}", at.cursor, at.record)),
                    chunk_size: self.object_chunk(),
                    ..Default::default()
                },
                &mut reader,
            )
            .await
            .map_err(|e| Error::Append(e.to_string()))?;
        Ok(true)
    }

    /// The plain NATS subject of the questions nodes ask one another on `topic`.
    fn peers_subject(&self, topic: &str) -> String {
        format!("_ARGUS_PEERS.{}.{topic}", self.stream)
    }

    /// Asks the other nodes answering `topic` ([`answer_peers`](Self::answer_peers)): plain NATS
    /// request and reply, nothing stored. The first answer within `wait`, or `None` when none
    /// came (a node that has nothing to say does not answer).
    pub async fn ask_peers(
        &self,
        topic: &str,
        payload: Bytes,
        wait: Duration,
    ) -> Result<Option<Bytes>, Error> {
        let req = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(wait));
        match self
            .js
            .client()
            .send_request(self.peers_subject(topic), req)
            .await
        {
            Ok(m) => Ok(Some(m.payload)),
            Err(e)
                if matches!(
                    e.kind(),
                    async_nats::RequestErrorKind::TimedOut
                        | async_nats::RequestErrorKind::NoResponders
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::Read(e.to_string())),
        }
    }

    /// Answers the questions other nodes ask on `topic`, for ever: `f` gives the answer to a
    /// question, or `None` to stay silent (another node may know). Resubscribes after an error.
    pub async fn answer_peers<F, Fut>(&self, topic: &str, mut f: F)
    where
        F: FnMut(Bytes) -> Fut,
        Fut: std::future::Future<Output = Option<Bytes>>,
    {
        let client = self.js.client();
        loop {
            match client.subscribe(self.peers_subject(topic)).await {
                Ok(mut sub) => {
                    while let Some(m) = sub.next().await {
                        let Some(reply) = m.reply else { continue };
                        if let Some(answer) = f(m.payload).await {
                            let _ = client.publish(reply, answer).await;
                        }
                    }
                }
                Err(e) => tracing::warn!("answering {topic} questions: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// How long an append waits for JetStream's acknowledgement (`[cluster] ack_timeout`); an
    /// append gives up after this and a grace of 500 ms.
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// The newest shared snapshot: its position and bytes. A read during which nothing comes for
    /// [`SNAPSHOT_IDLE`] (the object was replaced under it) fails, to be tried again.
    pub async fn fetch_snapshot(&self) -> Result<Option<(SharedSnapshot, Vec<u8>)>, Error> {
        let idle = SNAPSHOT_IDLE;
        let Some(mut obj) = shares::open_object(self.snapshots(), SNAPSHOT_OBJECT, idle).await?
        else {
            return Ok(None);
        };
        let Some(at) = parse_position(obj.info().description.as_deref()) else {
            return Err(Error::Read("the shared snapshot has no position".into()));
        };
        let bytes = shares::read_object(&mut obj, SNAPSHOT_OBJECT, idle).await?;
        Ok(Some((at, bytes)))
    }

    /// Appends an entry and waits until JetStream has stored it on its replicas; returns its
    /// sequence number. `id`, when given, is JetStream's deduplication id: a second append with the
    /// same id within the stream's duplicate window is not stored again (the first one's sequence
    /// number is returned).
    pub async fn append(
        &self,
        kind: &str,
        origin: &str,
        id: Option<&str>,
        payload: Bytes,
    ) -> Result<u64, Error> {
        let mut h = HeaderMap::new();
        h.insert(KIND, kind);
        h.insert(ORIGIN, origin);
        // Stored later than this, the entry is skipped by every node: the caller has been told by
        // then that it was not acknowledged.
        let deadline = now_ms().saturating_add(self.ack_timeout.as_millis() as i64);
        h.insert(DEADLINE, deadline.to_string().as_str());
        if let Some(id) = id {
            h.insert("Nats-Msg-Id", id);
        }
        let size = payload.len();
        let fut = async {
            let ack = self
                .js
                .publish_with_headers(self.subject.clone(), h, payload)
                .await
                .map_err(|e| {
                    if e.kind() == jetstream::context::PublishErrorKind::MaxPayloadExceeded {
                        Error::TooLarge(size)
                    } else {
                        Error::Append(e.to_string())
                    }
                })?;
            ack.await.map_err(|e| Error::Append(e.to_string()))
        };
        // A little past the deadline: an entry stored just before it is acknowledged, not refused.
        match tokio::time::timeout(self.ack_timeout + ACK_GRACE, fut).await {
            Ok(Ok(ack)) => Ok(ack.sequence),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::AckTimeout(self.ack_timeout)),
        }
    }

    /// The log's stream.
    async fn stream(&self) -> Result<stream::Stream, Error> {
        self.js
            .get_stream(&self.stream)
            .await
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// The newest entry's sequence number (0 when the log is empty).
    pub async fn last_seq(&self) -> Result<u64, Error> {
        let mut st = self.stream().await?;
        let info = st.info().await.map_err(|e| Error::Read(e.to_string()))?;
        Ok(info.state.last_sequence)
    }

    /// Every entry from `from` on, in order, as they arrive (an ordered consumer: ephemeral,
    /// flow-controlled, recreated by the client after a server fails over).
    pub async fn tail(&self, from: u64) -> Result<Tail, Error> {
        let st = self.stream().await?;
        let messages = ordered(&st, self.subject.clone(), from).await?;
        Ok(Tail {
            messages,
            next: from.max(1),
        })
    }
}

/// An ordered consumer of `st`'s messages on `filter` (all when empty) from sequence number `from`
/// on.
async fn ordered(
    st: &stream::Stream,
    filter: String,
    from: u64,
) -> Result<consumer::pull::Ordered, Error> {
    let c = st
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Read(e.to_string()))?;
    c.messages().await.map_err(|e| Error::Read(e.to_string()))
}

impl Log {
    /// The entries up to `upto` whose bytes hold one of `needles` (erasure): returns how many
    /// entries were read and the sequence numbers of those holding one. Holes (entries deleted
    /// before) are passed over. Reads with an ordered consumer, each message waited for 10 s at most.
    pub async fn entries_holding(
        &self,
        upto: u64,
        needles: &[&[u8]],
    ) -> Result<(u64, Vec<u64>), Error> {
        let mut st = self.stream().await?;
        let (read, holding) =
            messages_holding(&mut st, self.subject.clone(), upto, needles, &|_| true).await?;
        Ok((read, holding.into_iter().map(|(seq, _)| seq).collect()))
    }

    /// Whether the stream still holds entry `seq`.
    pub async fn entry_exists(&self, seq: u64) -> Result<bool, Error> {
        let st = self.stream().await?;
        match st.get_raw_message(seq).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => {
                let s = e.to_string();
                if s.contains("not found") || s.contains("10037") {
                    Ok(false)
                } else {
                    Err(Error::Read(s))
                }
            }
        }
    }

    /// Deletes entries from the stream. JetStream erases each one (its bytes are overwritten on
    /// the servers' disks, not only unlinked). An entry already gone counts as deleted. Returns how
    /// many were deleted now.
    pub async fn erase_entries(&self, seqs: &[u64]) -> Result<u64, Error> {
        let st = self.stream().await?;
        erase_messages(&st, seqs).await
    }
}

/// The messages of `st` (those on `filter`; all when empty) up to sequence number `upto` whose
/// bytes hold one of `needles` and whose subject `keep` keeps: how many were read, and the sequence
/// numbers and subjects of those holding one.
/// Holes (messages deleted before) are passed over. Reads with an ordered consumer, each message
/// waited for 10 s at most.
pub(crate) async fn messages_holding(
    st: &mut stream::Stream,
    filter: String,
    upto: u64,
    needles: &[&[u8]],
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(u64, Vec<(u64, String)>), Error> {
    let mut holding = Vec::new();
    let read = scan_messages(st, filter, upto, |seq, subject, payload| {
        if keep(subject) && holds_any(payload, needles) {
            holding.push((seq, subject.to_string()));
        }
    })
    .await?;
    Ok((read, holding))
}

/// Whether `bytes` hold one of `needles` (an empty needle never).
pub(crate) fn holds_any(bytes: &[u8], needles: &[&[u8]]) -> bool {
    needles
        .iter()
        .any(|n| !n.is_empty() && bytes.windows(n.len()).any(|w| w == *n))
}

/// Reads `st`'s messages (those of `filter`; every one when empty) from its first to `upto` (or
/// its last), handing each one's stream sequence number, subject and payload to `each`. Returns
/// how many were read.
pub(crate) async fn scan_messages(
    st: &mut stream::Stream,
    filter: String,
    upto: u64,
    mut each: impl FnMut(u64, &str, &[u8]),
) -> Result<u64, Error> {
    let info = st.info().await.map_err(|e| Error::Read(e.to_string()))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    if info.state.messages == 0 || first > upto {
        return Ok(0);
    }
    let mut messages = ordered(st, filter, first).await?;
    let mut read = 0u64;
    let end = upto.min(last);
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(Error::Read(e.to_string())),
            Ok(None) => return Err(Error::Read("the consumer ended".into())),
            Err(_) => {
                return Err(Error::Read(format!(
                    "no message came for 10 s while reading {} up to {end}",
                    st.cached_info().config.name
                )))
            }
        };
        let info = m.info().map_err(|e| Error::Read(e.to_string()))?;
        let seq = info.stream_sequence;
        if seq > end {
            break;
        }
        read += 1;
        each(seq, m.subject.as_str(), &m.payload);
        if seq == end || info.pending == 0 {
            break;
        }
    }
    Ok(read)
}

/// Deletes messages from `st`; JetStream erases each one (overwrites its bytes on the servers'
/// disks). A message already gone counts as deleted. Returns how many were deleted now.
pub(crate) async fn erase_messages(st: &stream::Stream, seqs: &[u64]) -> Result<u64, Error> {
    let mut n = 0;
    for &seq in seqs {
        match st.delete_message(seq).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => {
                // Deleted already (a repeated erasure, or another node's at the same time).
                let s = e.to_string();
                if !s.contains("no message found")
                    && !s.contains("not found")
                    && !s.contains("10037")
                    && !s.contains("10043")
                {
                    return Err(Error::Append(format!("erasing message {seq}: {s}")));
                }
            }
        }
    }
    Ok(n)
}

/// The log from a sequence number on.
pub struct Tail {
    messages: consumer::pull::Ordered,
    next: u64,
}

impl Tail {
    /// The next entry (waiting for it), or an error after which the caller opens a new tail at
    /// [`Tail::position`]. A gap in the sequence numbers (an entry the stream no longer holds) is an
    /// error: the node must restore a newer snapshot.
    pub async fn next(&mut self) -> Result<Entry, Error> {
        let m = match self.messages.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(Error::Read(e.to_string())),
            None => return Err(Error::Read("the consumer ended".into())),
        };
        let info = m.info().map_err(|e| Error::Read(e.to_string()))?;
        let seq = info.stream_sequence;
        let stored_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
        if seq < self.next {
            // The client recreated its ordered consumer before the first entry reached this tail
            // (a server lost, missed heartbeats): with nothing delivered yet it starts again from the
            // log's first entry, not from this tail's. Not a gap: the caller reopens at `position`.
            return Err(Error::Read(format!(
                "the log's consumer restarted at entry {seq}, before this tail's entry {}",
                self.next
            )));
        }
        if seq != self.next {
            return Err(Error::Gap {
                expected: self.next,
                got: seq,
            });
        }
        self.next = seq + 1;
        let header = |k: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_string())
        };
        Ok(Entry {
            seq,
            kind: header(KIND).unwrap_or_default(),
            origin: header(ORIGIN),
            payload: m.payload.clone(),
            stored_ms,
            deadline_ms: header(DEADLINE).and_then(|d| d.parse().ok()),
        })
    }

    /// The sequence number of the next entry this tail returns.
    pub fn position(&self) -> u64 {
        self.next
    }
}

fn parse_position(d: Option<&str>) -> Option<SharedSnapshot> {
    let (c, r) = d?.split_once(' ')?;
    Some(SharedSnapshot {
        cursor: c.parse().ok()?,
        record: r.parse().ok()?,
    })
}

/// A server list for messages and logs, without passwords or tokens (`nats://user:***@host`).
pub fn redact(urls: &str) -> String {
    urls.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &u[..s + 3], &u[at..]),
            _ => u.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Leases in JetStream's key-value store (bucket `<stream>-leases`): a duty that one node at a time
/// must do (the continuous export) belongs to whoever created its key, as long as it renews it. The
/// bucket's `max_age` is the lease's time to live: a holder that stops renewing (it died, or lost
/// NATS) loses the key after `ttl`, and another node's create then succeeds. Nothing of Argus's own
/// decides who holds what.
#[derive(Clone)]
pub struct Leases {
    kv: jetstream::kv::Store,
    node: String,
    ttl: Duration,
}

impl Log {
    /// The lease bucket, created when absent, for `node` with leases lasting `ttl` past their last
    /// renewal.
    pub async fn leases(&self, node: &str, ttl: Duration) -> Result<Leases, Error> {
        let kv = self
            .ttl_bucket(
                "leases",
                "Argus leases: which node does a one-node duty",
                ttl,
            )
            .await?;
        Ok(Leases {
            kv,
            node: node.to_string(),
            ttl,
        })
    }
}

impl Log {
    /// The key-value bucket `<stream>-<suffix>` whose keys live `ttl` past their last write (one
    /// value each), created when absent with the stream's replication.
    pub(crate) async fn ttl_bucket(
        &self,
        suffix: &str,
        description: &str,
        ttl: Duration,
    ) -> Result<jetstream::kv::Store, Error> {
        self.ttl_bucket_in(
            suffix,
            description,
            ttl,
            self.replicas,
            stream::StorageType::File,
        )
        .await
    }

    /// [`ttl_bucket`](Self::ttl_bucket) with its replica count and storage, when created here.
    pub(crate) async fn ttl_bucket_in(
        &self,
        suffix: &str,
        description: &str,
        ttl: Duration,
        replicas: usize,
        storage: stream::StorageType,
    ) -> Result<jetstream::kv::Store, Error> {
        let bucket = format!("{}-{suffix}", self.stream);
        match self.js.get_key_value(&bucket).await {
            Ok(kv) => Ok(kv),
            Err(e) if !absent(&e) => Err(Error::Read(format!("the bucket {bucket}: {e}"))),
            Err(_) => self
                .js
                .create_key_value(jetstream::kv::Config {
                    bucket: bucket.clone(),
                    description: description.into(),
                    history: 1,
                    max_age: ttl,
                    num_replicas: replicas,
                    storage,
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::Stream {
                    stream: bucket,
                    message: e.to_string(),
                }),
        }
    }
}

impl Leases {
    /// How often a holder renews (a third of the time to live).
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes the lease `name` (`held`: None) or renews it (`held`: the revision this node holds).
    /// `Some(revision)` while this node holds it; `None` when another node does, or the renewal
    /// failed (the caller must stop the duty at once).
    pub async fn hold(&self, name: &str, held: Option<u64>) -> Option<u64> {
        let me = Bytes::from(self.node.clone());
        match held {
            Some(rev) => self.kv.update(name, me, rev).await.ok(),
            None => self.kv.create(name, me).await.ok(),
        }
    }

    /// Reports this node's progress under `key.<node>` (a number; it disappears `ttl` after the
    /// last report, like a lease).
    pub async fn report(&self, key: &str, value: u64) -> Result<(), Error> {
        self.kv
            .put(
                format!("{key}.{}", self.node),
                Bytes::from(value.to_string()),
            )
            .await
            .map(|_| ())
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// Every live node's report under `key`: (node, value).
    pub async fn reports(&self, key: &str) -> Result<Vec<(String, u64)>, Error> {
        let mut out = Vec::new();
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| Error::Read(e.to_string()))?;
        let prefix = format!("{key}.");
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| Error::Read(e.to_string()))?;
            if let Some(node) = k.strip_prefix(&prefix) {
                names.push((k.clone(), node.to_string()));
            }
        }
        for (k, node) in names {
            // Gone between the listing and the read: that node stopped reporting.
            if let Some(v) = self
                .kv
                .get(&k)
                .await
                .map_err(|e| Error::Read(e.to_string()))?
            {
                if let Ok(n) = String::from_utf8_lossy(&v).trim().parse() {
                    out.push((node, n));
                }
            }
        }
        Ok(out)
    }

    /// The node holding `name`, if any.
    pub async fn holder(&self, name: &str) -> Option<String> {
        let v = self.kv.get(name).await.ok()??;
        Some(String::from_utf8_lossy(&v).into_owned())
    }
}
