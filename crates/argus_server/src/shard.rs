//! A node of a *sharded* cluster (`[cluster] partitions = N`): the feature state is split into `N`
//! partitions by entity key, and each partition is applied by the node that owns it
//! (`argus_cluster::Ownership`: leases in JetStream KV, wanted owner by rendezvous hashing).
//!
//! Every node still applies every entry of the shared log in its order: the sequencer (idempotency,
//! lateness, delayed labels, sequence numbers), the global stages (graph, text), the rules and models
//! and the decision records are the replicated cluster's. What is split is the keyed state, the
//! memory and the work that grow with the keys:
//!
//! 1. For each event, the core applies the keys of the partitions it holds
//!    (`Engine::begin_shared`) and publishes each one's *share* — the values those keys read as of
//!    the event — under `<seq>.<partition>` in the bucket `<stream>-shares` ([`Shard::publish`]).
//! 2. It waits for the shares of the event's other partitions from their owners ([`Shard::wait`]),
//!    completes the vector (`Engine::finish_shared`) and decides, as every node does.
//!
//! A node that comes to own a partition it does not hold (a node died, joined or drained) rebuilds it
//! (`core::shard`): the newest snapshot that holds it (its own, or another node's `node.<name>` in
//! the object store, or the empty state when its log starts at the first record), then its own log
//! since, and the event at hand. A node keeps a partition it no longer owns until its new owner
//! announces holding it, so that no partition's state ever exists nowhere. Two holders of one
//! partition publish the same bytes (the values are a function of the log), so a lease changing hands
//! never makes two answers.

use crate::metrics as m;
use argus_event::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A share handed to the publisher: event, key, bytes, when, and its ticket (see
/// [`Shard::flushed`]).
type Outgoing = (u64, u32, argus_cluster::Bytes, Instant, u64);

/// How long sharing a snapshot waits for the shares handed before it to be stored.
const SNAPSHOT_FLUSH: Duration = Duration::from_secs(10);

/// How long a listing of the node snapshots is used before another is made.
const LISTING_FRESH: Duration = Duration::from_millis(500);
/// A listing of the node snapshots that takes longer than this, or a fetch of one during which no
/// bytes come for this long, is given up (and tried again).
const NET_TIMEOUT: Duration = Duration::from_secs(30);
/// A failed fetch is tried again after this long; a fetched snapshot is kept this long for rebuilds.
const FETCH_RETRY: Duration = Duration::from_secs(1);
const KEEP_FETCHED: Duration = Duration::from_secs(30);
/// Every this many ownership rounds, a node deletes the snapshot objects no rebuild needs any more.
const PRUNE_ROUNDS: u64 = 15;

/// A node snapshot fetched for a rebuild, by object name.
enum Fetch {
    Pending,
    /// The bytes and the node-log record they cover (read from them), and when they came.
    Ready(Arc<Vec<u8>>, u64, Instant),
    Failed(String, Instant),
}

/// What [`Shard::node_snapshot`] has of an object.
pub enum Fetched {
    Ready(Arc<Vec<u8>>),
    /// Being fetched: ask again.
    Pending,
    Failed(String),
}

/// The node snapshots as last listed.
#[derive(Default)]
struct Listing {
    list: Option<Vec<argus_cluster::NodeSnapshot>>,
    at: Option<Instant>,
    running: bool,
}

/// What the ownership task last saw.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Partitions this node owns (its leases).
    pub owned: BTreeSet<u32>,
    /// Partitions another node owns and announces holding.
    pub held_elsewhere: BTreeSet<u32>,
}

/// This node's side of sharded apply.
pub struct Shard {
    /// The partition count, the same on every node.
    pub partitions: usize,
    /// The units placed on the nodes: the partitions, then the global stages (unit number
    /// `partitions`) when they are a unit of their own (`Engine::units`).
    pub units: usize,
    /// How long the bucket keeps the shares (`[cluster] share_retention` of the node that
    /// created it).
    pub retention: Duration,
    /// The most bytes a share takes in one value (`SHARE_CHUNK`, or `ARGUS_SHARD_SHARE_CHUNK`
    /// for tests that make every piece path run): a larger one is stored in pieces.
    share_chunk: usize,
    /// The most bytes of shares announced in one message: half the servers' `max_payload`.
    announce_max: usize,
    /// `ARGUS_SHARD_TEST_HEAD_ONLY`, for tests: a stages share cut in pieces is stored without
    /// its pieces, as by a worker that dies between the two (held open until it is killed).
    head_only: bool,
    /// `ARGUS_SHARD_TEST_STORE_DELAY` (ms), for tests: this node stores its shares that much
    /// after announcing them, as a node that dies between the two would never store them.
    store_delay: Duration,
    /// `ARGUS_SHARD_TEST_DEAF=1`, for tests: this node ignores every announced share, as a node
    /// whose subscription loses them (it reads them all from the bucket).
    deaf: bool,
    /// Shares announced (plain NATS) and not yet confirmed stored by their owner, with when they
    /// came: a node may have decided with one whose owner dies before storing it, and a node
    /// that missed the announcement would wait for it for ever. Each node stores those still
    /// unconfirmed after `CONFIRM_WITHIN` itself (create if absent: the bytes are the same
    /// whoever stores them).
    unconfirmed: Mutex<HashMap<(u64, u32), (argus_cluster::Bytes, Instant)>>,
    /// This node's shares stored since its last confirmation (sent every `CONFIRM_EVERY`).
    to_confirm: Arc<Mutex<Vec<(u64, u32)>>>,
    /// This node's name (its leases, its snapshot object).
    pub node: String,
    pub log: argus_cluster::Log,
    rt: tokio::runtime::Handle,
    shares: argus_cluster::Shares,
    /// What was announced or read from the bucket, by event and key, until taken.
    got: Mutex<HashMap<(u64, u32), Held>>,
    /// Shares found stored but undecodable (another release wrote them): the core stops on one
    /// instead of waiting for it for ever.
    undecodable: Mutex<std::collections::HashSet<(u64, u32)>>,
    /// Partitions this node declines until then (it cannot rebuild them): announced at each
    /// ownership round, so that another member takes them.
    declined: Mutex<std::collections::BTreeMap<u32, Instant>>,
    /// The next ticket of a share handed to the publisher, and the tickets not stored yet: a
    /// snapshot is shared only once every share handed before it is stored, or a node rebuilding
    /// from it could wait for a share of an event the snapshot covers that nobody will store.
    tickets: AtomicU64,
    unstored: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    arrived: Condvar,
    view: Mutex<View>,
    /// What the core holds now, for the ownership task to announce.
    held: Mutex<Vec<u32>>,
    out: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    out_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Outgoing>>>,
    /// Set on shutdown: a core waiting for a share gives up (the event is not acknowledged).
    pub stopping: AtomicBool,
    /// Waits since the last pruning of `got`.
    waits: AtomicU64,
    /// Set on shutdown once the final snapshot is shared: the ownership task drains.
    draining: AtomicBool,
    drain_now: tokio::sync::Notify,
    drained: tokio::sync::Notify,
    /// The newest snapshot record shared as this node's object, and the partitions it holds.
    shared_record: Mutex<(u64, Option<std::time::SystemTime>)>,
    shared_held: Mutex<Vec<u32>>,
    /// The shared log's entries the core has applied (its cursor).
    pub cursor: AtomicU64,
    /// Set when the core failed: it publishes no more shares, so its leases must pass.
    pub core_failed: AtomicBool,
    /// The event whose shares the core waited for last (it finishes events in order: older shares
    /// are not needed any more), and the newest share seen arriving.
    finishing: AtomicU64,
    newest_seen: AtomicU64,
    /// Per partition, the first and the newest share announced since this node (re)subscribed:
    /// an older one than the first was announced before (this node is catching up), and is read
    /// from the bucket at once; a newer one is announced, and is waited for — and read from the
    /// bucket when it is late.
    seen: Mutex<HashMap<u32, (u64, u64)>>,
    /// Set when a share this node waited for was found in the bucket without its announcement
    /// having come: announcements are being missed (a node that just joined or reconnected, a
    /// slow subscriber), so shares are read from the bucket at once, as when catching up, until
    /// one is announced before it is waited for.
    missed: AtomicBool,
    /// The connection's gaps (`Log::gaps`) as of the last wait.
    gaps_seen: AtomicU64,
    arrivals: AtomicU64,
    /// What a rebuild reads from the object store, read in the background: the core never waits on
    /// the network for it (a stalled listing or fetch would stall this node's shares, and every
    /// node waiting for them).
    listing: Mutex<Listing>,
    fetches: Mutex<HashMap<String, Fetch>>,
    /// Set once the node has caught up and takes part in ownership: only then does it share its
    /// snapshot (every second, and its final one at shutdown): one shared while catching up could
    /// be pruned as a gone node's, or stand for a holder's.
    member: AtomicBool,
    /// Before it takes part in ownership: the units whose lease is still in this node's name (it
    /// restarted before its leases expired), read once at start; the others wait for its shares of
    /// those until the leases pass. `None` until read (or when it could not be): every share is
    /// stored.
    leases_at_start: Mutex<Option<BTreeSet<u32>>>,
}

/// Half the servers' `max_payload` (at least 16 bytes; `SHARE_CHUNK` when the servers did not
/// say): the most bytes of shares in one message, with room for its subject and headers — a
/// piece of a share, or the shares announced together.
fn half_payload(log: &argus_cluster::Log) -> usize {
    match log.max_payload() {
        0 => SHARE_CHUNK,
        n => (n / 2).max(16),
    }
}

/// A share that has not been announced this long after it was waited for is read from the
/// bucket (then again after twice as long, and so on, until the wait ends).
const LATE_SHARE: Duration = Duration::from_millis(20);

/// An announced share not confirmed stored this long after it came is stored by this node.
const CONFIRM_WITHIN: Duration = Duration::from_secs(3);

/// How often an owner confirms the shares it stored (one message for all of them).
const CONFIRM_EVERY: Duration = Duration::from_millis(50);

impl Shard {
    /// Connects this node's side: the shares bucket (created when absent, keeping values for
    /// `keep`). Call from the runtime.
    pub async fn connect(
        log: argus_cluster::Log,
        node: String,
        partitions: usize,
        units: usize,
        keep: Duration,
    ) -> Result<Arc<Shard>, argus_cluster::Error> {
        let shares = log.shares(keep).await?;
        let retention = shares.retention().await?;
        if retention != keep {
            tracing::warn!(
                bucket_secs = retention.as_secs(),
                configured_secs = keep.as_secs(),
                "sharded: the shares' bucket keeps values for another time than [cluster] share_retention says (the node that created it set it): the bucket's is used"
            );
        }
        let (out, out_rx) = tokio::sync::mpsc::unbounded_channel();
        // A piece and its key and headers must fit one message: at most half the servers'
        // `max_payload` (known once connected, which the bucket's creation was).
        let share_chunk = std::env::var("ARGUS_SHARD_SHARE_CHUNK")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 16)
            .unwrap_or(SHARE_CHUNK)
            .min(half_payload(&log));
        let head_only = std::env::var("ARGUS_SHARD_TEST_HEAD_ONLY").is_ok_and(|v| v == "1");
        let store_delay = Duration::from_millis(
            std::env::var("ARGUS_SHARD_TEST_STORE_DELAY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        );
        if !store_delay.is_zero() {
            tracing::warn!("ARGUS_SHARD_TEST_STORE_DELAY: shares are stored {store_delay:?} after they are announced (testing only)");
        }
        let deaf = std::env::var("ARGUS_SHARD_TEST_DEAF").is_ok_and(|v| v == "1");
        if deaf {
            tracing::warn!("ARGUS_SHARD_TEST_DEAF=1: announced shares are ignored (testing only)");
        }
        if head_only {
            tracing::warn!("ARGUS_SHARD_TEST_HEAD_ONLY=1: the stages' shares cut in pieces are stored without their pieces (testing only)");
        }
        Ok(Arc::new(Shard {
            partitions,
            units,
            retention,
            share_chunk,
            announce_max: half_payload(&log),
            head_only,
            store_delay,
            deaf,
            unconfirmed: Mutex::new(HashMap::new()),
            to_confirm: Arc::new(Mutex::new(Vec::new())),
            node,
            log,
            rt: tokio::runtime::Handle::current(),
            shares,
            got: Mutex::new(HashMap::new()),
            undecodable: Mutex::new(Default::default()),
            declined: Mutex::new(Default::default()),
            tickets: AtomicU64::new(0),
            unstored: Arc::new(Mutex::new(Default::default())),
            arrived: Condvar::new(),
            view: Mutex::new(View::default()),
            held: Mutex::new(Vec::new()),
            out,
            out_rx: Mutex::new(Some(out_rx)),
            stopping: AtomicBool::new(false),
            waits: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain_now: tokio::sync::Notify::new(),
            drained: tokio::sync::Notify::new(),
            shared_record: Mutex::new((0, None)),
            shared_held: Mutex::new(Vec::new()),
            cursor: AtomicU64::new(0),
            core_failed: AtomicBool::new(false),
            finishing: AtomicU64::new(0),
            newest_seen: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            missed: AtomicBool::new(false),
            gaps_seen: AtomicU64::new(0),
            arrivals: AtomicU64::new(0),
            listing: Mutex::new(Listing::default()),
            fetches: Mutex::new(HashMap::new()),
            member: AtomicBool::new(false),
            leases_at_start: Mutex::new(None),
        }))
    }

    /// Starts the tasks: the ownership rounds, the announced shares' subscription, the shares'
    /// publisher and its confirmations, and the sharing
    /// of this node's newest snapshot (checked every second: a partition changing hands waits for
    /// it).
    pub fn spawn(self: &Arc<Self>, own: argus_cluster::Ownership, data: std::path::PathBuf) {
        let me = self.clone();
        self.rt.spawn(async move {
            for round in 1u64.. {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if me.draining.load(Ordering::SeqCst) {
                    return;
                }
                me.evict_fetched();
                if !me.member.load(Ordering::SeqCst) {
                    continue;
                }
                if round.is_multiple_of(5) {
                    me.check_node_snapshot().await;
                }
                me.share_node_snapshot(&data).await;
            }
        });
        let me = self.clone();
        self.rt.spawn(async move { me.own(own).await });
        // The shares announced before they are stored, and their owners' confirmations.
        let me = self.clone();
        self.rt.spawn(async move {
            let shares = me.shares.clone();
            let (got, confirmed) = (me.clone(), me.clone());
            shares
                .follow_announced(
                    move |many| got.announced(many),
                    move |pairs| confirmed.confirmed(pairs),
                    |e| {
                        // What is announced until this node listens again is read from the bucket.
                        me.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        tracing::warn!("sharded: listening for announced shares: {e}; again")
                    },
                )
                .await
        });
        // This node's confirmations of the shares it stored, and its stores of the shares
        // announced and never confirmed (each second, until the process ends: a node shutting
        // down still decides for up to 10 s).
        let me = self.clone();
        self.rt.spawn(async move {
            loop {
                tokio::time::sleep(CONFIRM_EVERY).await;
                me.send_confirmations().await;
            }
        });
        let me = self.clone();
        self.rt.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                me.store_unconfirmed().await;
            }
        });
        let rx = self.out_rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            let shares = self.shares.clone();
            self.rt.spawn(publisher(
                shares,
                rx,
                self.unstored.clone(),
                self.to_confirm.clone(),
                self.store_delay,
                self.announce_max,
            ));
        }
    }

    /// Shares announced by their owner before it stores them (one message's): each kept until
    /// its owner confirms it stored, and the core woken once for all of them — not once a share,
    /// each waking it to look for the one share it waits for.
    fn announced(&self, many: Vec<(u64, u32, argus_cluster::Bytes)>) {
        if self.deaf || many.is_empty() {
            return;
        }
        {
            let now = Instant::now();
            let mut u = self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
            for (seq, p, bytes) in &many {
                u.insert((*seq, *p), (bytes.clone(), now));
            }
        }
        for (seq, p, bytes) in &many {
            self.arrive(*seq, *p, bytes);
        }
        self.arrived.notify_all();
    }

    /// Shares their owner confirms stored: nobody will need this node's copy of them.
    fn confirmed(&self, pairs: &[(u64, u32)]) {
        let mut u = self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
        for k in pairs {
            u.remove(k);
        }
    }

    /// Stores the announced shares not confirmed stored within `CONFIRM_WITHIN`: their owner may
    /// have died before storing them, after this node (or another) decided with them. (Or the
    /// confirmation was lost: the `create` then finds the share there.) At most 64 at a time; one
    /// that could not be stored is tried again at the next round.
    async fn store_unconfirmed(&self) {
        let mut due: Vec<((u64, u32), argus_cluster::Bytes, Instant)> = {
            let mut u = self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
            // One that could not be stored for as long as the bucket keeps shares would expire
            // at once: nobody can need it any more. (A bucket keeping values for ever says 0.)
            if !self.retention.is_zero() {
                u.retain(|_, (_, at)| at.elapsed() < self.retention);
            }
            let keys: Vec<(u64, u32)> = u
                .iter()
                .filter(|(_, (_, at))| at.elapsed() >= CONFIRM_WITHIN)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| u.remove(&k).map(|(b, at)| (k, b, at)))
                .collect()
        };
        let mut failed: Option<(usize, String)> = None;
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < 64 {
                let Some(((seq, p), b, at)) = due.pop() else {
                    break;
                };
                let shares = self.shares.clone();
                running.spawn(async move {
                    let r = shares.create(seq, p, b.clone()).await;
                    ((seq, p), b, at, r)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            // A create does not panic; were the task lost, the others store the share.
            let Ok(((seq, p), b, at, created)) = done else {
                continue;
            };
            match created {
                Ok(stored) => {
                    // Stored now, by this node or before: the others need not store it too.
                    self.to_confirm
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((seq, p));
                    if stored {
                        m::inc(m::SHARD_SHARES_RESTORED, 1);
                        tracing::warn!(
                            seq,
                            key = p,
                            "sharded: a share announced and not stored by its owner, stored by this node"
                        );
                    }
                }
                Err(e) => {
                    let f = failed.get_or_insert((0, e.to_string()));
                    f.0 += 1;
                    self.unconfirmed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry((seq, p))
                        .or_insert((b, at));
                }
            }
        }
        if let Some((n, e)) = failed {
            tracing::warn!(
                shares = n,
                "sharded: storing announced shares their owner did not confirm: {e}; again in a second"
            );
        }
    }

    /// Sends the confirmations of the shares this node stored since the last.
    async fn send_confirmations(&self) {
        let stored =
            std::mem::take(&mut *self.to_confirm.lock().unwrap_or_else(|e| e.into_inner()));
        // 12 bytes a share, at most half the servers' `max_payload` a message. Lost, a
        // confirmation costs the receivers a `create` each after `CONFIRM_WITHIN`.
        let per = (self.announce_max / 12).clamp(1, 2_048);
        for part in stored.chunks(per) {
            if let Err(e) = self.shares.confirm(part).await {
                tracing::debug!("sharded: confirming stored shares: {e}");
            }
        }
    }

    /// A share arriving announced (not decoded at all when the core is past its event). A whole
    /// share replaces a head of the same key (two holders that cut it differently). The caller
    /// wakes the core (`arrived`), once for many.
    fn arrive(&self, seq: u64, p: u32, bytes: &[u8]) {
        if seq < self.finishing.load(Ordering::SeqCst) {
            return;
        }
        let Some(v) = held(p, bytes) else {
            tracing::error!(seq, partition = p, "sharded: an undecodable share");
            self.mark_undecodable(seq, p);
            return;
        };
        self.newest_seen.fetch_max(seq, Ordering::SeqCst);
        if p < PIECE_KEYS {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(p)
                .and_modify(|(_, newest)| *newest = (*newest).max(seq))
                .or_insert((seq, seq));
        }
        let mut g = self.got.lock().unwrap_or_else(|e| e.into_inner());
        match (g.get(&(seq, p)), &v) {
            (Some(Held::Head(..)), Held::Share(_)) | (None, _) => {
                g.insert((seq, p), v);
            }
            _ => {}
        }
        if self
            .arrivals
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
        {
            // Shares of events the core is past are never read.
            let past = self.finishing.load(Ordering::SeqCst);
            g.retain(|(s, _), _| *s >= past);
        }
    }

    /// Declines partition `p` for `for_` (see [`argus_cluster::Ownership::set_declined`]).
    pub fn decline(&self, p: u32, for_: Duration) {
        self.declined
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p, Instant::now() + for_);
    }

    /// Withdraws a decline of partition `p` (this node rebuilt it after all).
    pub fn undecline(&self, p: u32) {
        self.declined
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
    }

    /// The partitions declined now (expired declines dropped).
    fn declined_now(&self) -> std::collections::BTreeSet<u32> {
        let mut d = self.declined.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        d.retain(|_, until| *until > now);
        d.keys().copied().collect()
    }

    fn mark_undecodable(&self, seq: u64, p: u32) {
        self.undecodable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((seq, p));
        self.arrived.notify_all();
    }

    /// Whether the share stored under `<seq>.<p>` was found undecodable.
    pub fn is_undecodable(&self, seq: u64, p: u32) -> bool {
        self.undecodable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(seq, p))
    }

    /// Waits (up to `within`) until every share handed to the publisher so far is stored.
    pub async fn flushed(&self, within: Duration) -> bool {
        let upto = self.tickets.load(Ordering::SeqCst);
        let start = Instant::now();
        loop {
            let first = self
                .unstored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                .copied();
            if first.is_none_or(|t| t >= upto) {
                return true;
            }
            if start.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether this node's shared snapshot holds partition `p`.
    pub fn shares_snapshot_of(&self, p: u32) -> bool {
        self.shared_held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&p)
    }

    /// What the bucket holds under `<seq>.<key>` (`None`: nothing, or not read within 2 s).
    fn get_stored(&self, seq: u64, key: u32, when: &'static str) -> Option<Held> {
        m::inc_labeled(m::SHARD_SHARE_READS, "when", when);
        let shares = self.shares.clone();
        let got = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), shares.get(seq, key)).await
        });
        match got {
            Ok(Ok(Some(b))) => {
                let h = held(key, &b);
                if h.is_none() {
                    tracing::error!(seq, partition = key, "sharded: an undecodable share");
                    self.mark_undecodable(seq, key);
                }
                h
            }
            _ => None,
        }
    }

    /// Reads from the bucket what `got` lacks of unit `p`'s share of event `seq` — the share or
    /// its head, then the pieces the head announces — into `got`. Returns whether it found any.
    /// `when`: `at_once` (read before waiting) or `late` (read after waiting for it), the label
    /// of `argus_shard_share_reads_total`.
    fn fetch_stored(&self, seq: u64, p: u32, when: &'static str) -> bool {
        let mut found = false;
        // Twice at most: the head, then its pieces.
        for _ in 0..2 {
            let missing: Vec<u32> = {
                let g = self.got.lock().unwrap_or_else(|e| e.into_inner());
                match g.get(&(seq, p)) {
                    None => vec![p],
                    Some(Held::Head(k, _)) => (0..*k)
                        .map(|i| piece_key(p, i))
                        .filter(|key| !g.contains_key(&(seq, *key)))
                        .collect(),
                    Some(_) => Vec::new(),
                }
            };
            if missing.is_empty() {
                break;
            }
            for key in missing {
                let Some(h) = self.get_stored(seq, key, when) else {
                    return found;
                };
                found = true;
                self.got
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((seq, key), h);
            }
        }
        found
    }

    /// Unit `p`'s share of event `seq` out of `got` when it is whole there (see [`take_whole`]);
    /// pieces that do not make a share mark it undecodable.
    fn take(&self, g: &mut HashMap<(u64, u32), Held>, seq: u64, p: u32) -> Option<Vec<Value>> {
        match take_whole(g, seq, p) {
            Taken::Whole(v) => {
                let early = self
                    .unconfirmed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&(seq, p));
                if early {
                    m::inc(m::SHARD_SHARES_ANNOUNCED, 1);
                }
                Some(v)
            }
            Taken::Missing => None,
            Taken::Undecodable => {
                tracing::error!(
                    seq,
                    partition = p,
                    "sharded: a share's pieces do not make the share their head announced (every node must run the same release, and every NATS server the same max_payload)"
                );
                self.undecodable
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((seq, p));
                None
            }
        }
    }

    /// Publishes the shares of the partitions this node holds, for event `seq` (stored in the
    /// background; the core does not wait for them) — those that another node may need from this
    /// one: none while this node catches up before it takes part in ownership (every other node is
    /// past those events, and their holders at the time stored their shares: a node catching up
    /// from a shared snapshot that holds every partition flooded the bucket with hundreds of
    /// thousands of stores that nobody read, and the shares the others needed from it waited behind
    /// them in its own queue: a 500-event batch took 2-7 s), and not a partition's that another
    /// node owns and announces holding (this node holds it only until its next sync releases it).
    pub fn publish(&self, seq: u64, shares: &[(usize, Vec<Value>)]) {
        if shares.is_empty() {
            return;
        }
        let needed: Vec<&(usize, Vec<Value>)> = {
            let member = self.member.load(Ordering::SeqCst);
            let leases = self
                .leases_at_start
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
            shares
                .iter()
                .filter(|(p, _)| share_needed(*p as u32, member, leases.as_ref(), &view))
                .collect()
        };
        let skipped = shares.len() - needed.len();
        if skipped > 0 {
            m::inc(m::SHARD_SHARES_SKIPPED, skipped as u64);
        }
        for (p, v) in needed {
            let b = match bincode::serialize(v) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(seq, partition = p, "sharded: encoding a share: {e}");
                    continue;
                }
            };
            let p = *p as u32;
            if b.len() <= self.share_chunk {
                self.hand(seq, p, b);
                continue;
            }
            m::inc(m::SHARD_SHARES_IN_PIECES, 1);
            for (key, b) in stored_form(p, b, self.share_chunk) {
                if self.head_only && key != p && p as usize == self.partitions {
                    tracing::warn!(
                        seq,
                        piece = key,
                        "sharded: a piece of the stages' share not stored (ARGUS_SHARD_TEST_HEAD_ONLY)"
                    );
                    continue;
                }
                self.hand(seq, key, b);
            }
        }
    }

    /// Hands one value to store under `<seq>.<key>` to the publisher, with a ticket (see
    /// [`flushed`](Self::flushed)).
    fn hand(&self, seq: u64, key: u32, b: Vec<u8>) {
        let t = self.tickets.fetch_add(1, Ordering::SeqCst);
        let mut unstored = self.unstored.lock().unwrap_or_else(|e| e.into_inner());
        unstored.insert(t);
        if self
            .out
            .send((seq, key, b.into(), Instant::now(), t))
            .is_err()
        {
            // No publisher any more (shutting down): nothing will store it.
            unstored.remove(&t);
        }
    }

    /// Partition `p`'s share of event `seq`: as it is announced within `within`, else from the
    /// bucket (announced before this node listened: it is catching up; or missed). `None`: not there yet. The core
    /// marks the event it finishes first ([`finishing`](Self::finishing)).
    pub fn wait(&self, seq: u64, p: u32, within: Duration) -> Option<Vec<Value>> {
        let start = Instant::now();
        let deadline = start + within;
        // The connection lost messages since the last wait (a disconnection, a slow
        // subscription): what was announced meanwhile never came. Read from the bucket until
        // announcements come in time again, as after a resubscription.
        let gaps = self.log.gaps();
        if self.gaps_seen.swap(gaps, Ordering::SeqCst) != gaps {
            self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
            self.missed.store(true, Ordering::Relaxed);
        }
        let seen = |me: &Self| {
            me.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p)
                .copied()
        };
        let stored_before = self.missed.load(Ordering::Relaxed)
            || match seen(self) {
                Some((first, _)) => seq < first,
                None => self.newest_seen.load(Ordering::SeqCst) > seq,
            };
        if stored_before {
            // Partition `p`'s owner published this share before this node listened (it is
            // catching up), or nothing of `p` came since and newer shares of others did, or
            // announcements are being missed. Ask the
            // bucket at once. (Any newer share of another partition is not enough: owners publish
            // at their own pace, and a read for each share would hold the core a round trip.)
            let cached = {
                let mut g = self.got.lock().unwrap_or_else(|e| e.into_inner());
                self.take(&mut g, seq, p)
            };
            if let Some(v) = cached {
                self.missed.store(false, Ordering::Relaxed);
                return Some(v);
            }
            if self.fetch_stored(seq, p, "at_once") {
                let mut g = self.got.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(v) = self.take(&mut g, seq, p) {
                    return Some(v);
                }
            }
        }
        let mut g = self.got.lock().unwrap_or_else(|e| e.into_inner());
        // Read from the bucket when the share is 20 ms late, then 40, 80 ms… after the last read
        // (its announcement may have been missed while it was not stored yet).
        let (mut next_read, mut every) = (start + LATE_SHARE, LATE_SHARE);
        // Whether a read found it: then it was not taken as announced.
        let mut read_it = false;
        loop {
            if let Some(v) = self.take(&mut g, seq, p) {
                if !read_it {
                    // Announced in time: announcements are not being missed.
                    self.missed.store(false, Ordering::Relaxed);
                }
                if self
                    .waits
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(4096)
                {
                    // Shares are consumed in sequence order: older ones are not needed any more.
                    g.retain(|(s, _), _| *s >= seq);
                }
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_read {
                every *= 2;
                drop(g);
                if self.fetch_stored(seq, p, "late") {
                    // Stored, and its announcement never came: announcements are being missed.
                    self.missed.store(true, Ordering::Relaxed);
                    read_it = true;
                }
                // Counted from the read's end: a slow read is not followed at once by another.
                next_read = Instant::now() + every;
                g = self.got.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let step = (deadline - now)
                .min(next_read - now)
                .min(Duration::from_millis(20));
            g = self
                .arrived
                .wait_timeout(g, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(g);
        if !self.fetch_stored(seq, p, "late") {
            return None;
        }
        self.missed.store(true, Ordering::Relaxed);
        let mut g = self.got.lock().unwrap_or_else(|e| e.into_inner());
        self.take(&mut g, seq, p)
    }

    /// The node snapshots in the object store as last listed (`None`: none listed yet). Starts
    /// another listing in the background when this one is older than half a second; never waits.
    pub fn node_snapshots(self: &Arc<Self>) -> Option<Vec<argus_cluster::NodeSnapshot>> {
        let mut l = self.listing.lock().unwrap_or_else(|e| e.into_inner());
        if !l.running && l.at.is_none_or(|t| t.elapsed() >= LISTING_FRESH) {
            l.running = true;
            let me = self.clone();
            self.rt.spawn(async move {
                let got = tokio::time::timeout(NET_TIMEOUT, me.log.node_snapshots()).await;
                let mut l = me.listing.lock().unwrap_or_else(|e| e.into_inner());
                l.running = false;
                match got {
                    Ok(Ok(v)) => {
                        l.list = Some(v);
                        l.at = Some(Instant::now());
                    }
                    Ok(Err(e)) => tracing::warn!("sharded: listing the node snapshots: {e}"),
                    Err(_) => tracing::warn!("sharded: listing the node snapshots timed out"),
                }
            });
        }
        l.list.clone()
    }

    /// The node snapshot `object` as of record `record` or later: fetched in the background the
    /// first time it is asked for (or when only an older one was fetched); never waits.
    pub fn node_snapshot(self: &Arc<Self>, object: &str, record: u64) -> Fetched {
        self.evict_fetched();
        let mut f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        match f.get(object) {
            Some(Fetch::Pending) => return Fetched::Pending,
            Some(Fetch::Ready(b, r, _)) if *r >= record => return Fetched::Ready(b.clone()),
            Some(Fetch::Failed(e, at)) if at.elapsed() < FETCH_RETRY => {
                return Fetched::Failed(e.clone())
            }
            _ => {}
        }
        f.insert(object.to_string(), Fetch::Pending);
        let (me, name) = (self.clone(), object.to_string());
        self.rt.spawn(async move {
            // A large snapshot takes as long as it takes; a stalled fetch is given up.
            let done = match me.log.fetch_object(&name, NET_TIMEOUT).await {
                Ok(Some(b)) => match crate::core::snapshot_position(&b) {
                    Ok((record, _)) => Fetch::Ready(Arc::new(b), record, Instant::now()),
                    Err(e) => Fetch::Failed(format!("damaged: {e}"), Instant::now()),
                },
                Ok(None) => Fetch::Failed("not there any more".into(), Instant::now()),
                Err(e) => Fetch::Failed(e.to_string(), Instant::now()),
            };
            me.fetches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, done);
        });
        Fetched::Pending
    }

    /// Forgets the fetched snapshots kept longer than `KEEP_FETCHED` (whole snapshots in memory)
    /// and the failures no fetch will be retried for (called on every ask and every second).
    fn evict_fetched(&self) {
        self.fetches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, x| match x {
                Fetch::Pending => true,
                Fetch::Ready(_, _, at) => at.elapsed() <= KEEP_FETCHED,
                Fetch::Failed(_, at) => at.elapsed() <= KEEP_FETCHED,
            });
    }

    /// What the ownership task last saw.
    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the shares of event `seq` are gone from the bucket for good: the oldest share it
    /// still holds is of a later event (they outlived `[cluster] share_retention`), so nobody
    /// will store them again unless the unit's owner rebuilds it. Asks the bucket (one round
    /// trip, up to 2 s): call it only when a share has been waited for a while.
    pub fn shares_gone(&self, seq: u64) -> bool {
        let shares = self.shares.clone();
        let oldest = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), shares.oldest()).await
        });
        matches!(oldest, Ok(Ok(Some(first))) if first > seq)
    }

    /// Marks event `seq` as the one the core finishes now: the shares of earlier events that
    /// are announced are dropped at the next pruning, also on a node that holds every unit and
    /// so never waits.
    pub fn finishing(&self, seq: u64) {
        self.finishing.fetch_max(seq, Ordering::SeqCst);
    }

    /// Records what the core holds now (announced at the next ownership round).
    pub fn set_held(&self, held: &[bool]) {
        let list: Vec<u32> = (0..held.len() as u32)
            .filter(|p| held[*p as usize])
            .collect();
        let parts = list.iter().filter(|p| (**p as usize) < self.partitions);
        m::set_gauge(m::SHARD_PARTITIONS_HELD, parts.count() as f64);
        if self.units > self.partitions {
            let stages = list.contains(&(self.partitions as u32));
            m::set_gauge(m::SHARD_STAGES_HELD, f64::from(u8::from(stages)));
        }
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = list;
    }

    /// The ownership rounds: announce what the core holds, renew and rebalance the leases, then
    /// publish what was seen to the core. On shutdown, drains (releases every lease at once).
    async fn own(self: Arc<Self>, mut own: argus_cluster::Ownership) {
        // The leases still in this node's name (restarted before they expired): while it catches
        // up, it stores its shares of those units only.
        match tokio::time::timeout(NET_TIMEOUT, own.owners()).await {
            Ok(Ok(owners)) => {
                let mine: BTreeSet<u32> = owners
                    .into_iter()
                    .filter(|(_, o)| *o == self.node)
                    .map(|(p, _)| p)
                    .collect();
                if !mine.is_empty() {
                    tracing::info!(
                        units = ?mine,
                        "sharded: leases still in this node's name: their shares are stored while catching up"
                    );
                }
                *self
                    .leases_at_start
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(mine);
            }
            Ok(Err(e)) => tracing::warn!("sharded: reading the partitions' owners: {e}; storing every share while catching up"),
            Err(_) => tracing::warn!("sharded: reading the partitions' owners timed out; storing every share while catching up"),
        }
        // A node that is behind (restarted, or started from a shared snapshot) takes no lease until
        // it has applied the log as it stood when it started: otherwise the others would wait for
        // its shares while it catches up.
        let target = loop {
            match self.log.last_seq().await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!("sharded: reading the log's length: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        while self.cursor.load(Ordering::SeqCst) < target
            && !self.stopping.load(Ordering::SeqCst)
            && !self.core_failed.load(Ordering::SeqCst)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.core_failed.load(Ordering::SeqCst) {
            // It never caught up: it takes no part (and shares no snapshot as a member's).
            tracing::error!("sharded: the core failed before catching up: taking no leases");
            if let Err(e) = own.drain().await {
                tracing::warn!("sharded: draining: {e}");
            }
            return;
        }
        tracing::info!(
            entry = target,
            "sharded: caught up; taking part in ownership"
        );
        self.member.store(true, Ordering::SeqCst);
        for round in 1u64.. {
            if self.core_failed.load(Ordering::SeqCst) {
                tracing::error!("sharded: the core failed: releasing every lease");
                if let Err(e) = own.drain().await {
                    tracing::warn!("sharded: draining: {e}");
                }
                *self.view.lock().unwrap_or_else(|e| e.into_inner()) = View::default();
                return;
            }
            if self.draining.load(Ordering::SeqCst) {
                if let Err(e) = own.drain().await {
                    tracing::warn!("sharded: draining: {e}");
                }
                self.drained.notify_one();
                return;
            }
            // Announced as held: what the core holds *and* a shared snapshot of this node holds, so
            // that the previous holder keeps a partition until it can be rebuilt from the store
            // even if this node dies.
            let held: Vec<u32> = {
                let shared = self.shared_held.lock().unwrap_or_else(|e| e.into_inner());
                self.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .filter(|p| shared.contains(p))
                    .collect()
            };
            if let Err(e) = own.announce(&held).await {
                tracing::warn!("sharded: announcing the held partitions: {e}");
            }
            own.set_declined(self.declined_now());
            let owned = match own.step().await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!("sharded: ownership round: {e}");
                    own.owned()
                }
            };
            let by_owners = own.held_by_owners().await;
            let held_elsewhere = match &by_owners {
                Ok(h) => h
                    .iter()
                    .filter(|(_, o)| **o != self.node)
                    .map(|(p, _)| *p)
                    .collect(),
                Err(e) => {
                    tracing::warn!("sharded: reading the other nodes' partitions: {e}");
                    self.view().held_elsewhere
                }
            };
            if let (true, Ok(by_owners)) = (round.is_multiple_of(PRUNE_ROUNDS), by_owners) {
                // Read after the holders. A holder counts only if its own snapshot object, listed
                // after both, holds the partition (a holder that died and came back with the same
                // name shares a new object, which tells).
                match tokio::time::timeout(Duration::from_secs(2), own.members()).await {
                    Ok(Ok(members)) => {
                        let me = self.clone();
                        self.rt
                            .spawn(async move { me.prune(members, by_owners).await });
                    }
                    Ok(Err(e)) => tracing::warn!("sharded: reading the members: {e}"),
                    Err(_) => tracing::warn!("sharded: reading the members timed out"),
                }
            }
            {
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                if view.owned != owned {
                    tracing::info!(?owned, "sharded: the partitions this node owns");
                }
                *view = View {
                    owned,
                    held_elsewhere,
                };
            }
            self.arrived.notify_all();
            tokio::select! {
                _ = tokio::time::sleep(own.step_every()) => {}
                _ = self.drain_now.notified() => {}
            }
        }
    }

    /// Deletes the snapshot objects of nodes that are not `members` whose every partition is owned
    /// by a member that announces holding it and whose own snapshot object holds it
    /// (`argus_cluster::stale_node_snapshots`). A node that comes back shares a new one once it has
    /// caught up (and shares it again if it was deleted in the moment between the listing and the
    /// deletion).
    async fn prune(
        &self,
        members: BTreeSet<String>,
        owners: std::collections::BTreeMap<u32, String>,
    ) {
        let listed = match tokio::time::timeout(NET_TIMEOUT, self.log.node_snapshots()).await {
            Ok(Ok(l)) => l,
            _ => return,
        };
        for name in argus_cluster::stale_node_snapshots(&listed, &members, &owners) {
            match tokio::time::timeout(NET_TIMEOUT, self.log.delete_object(&name)).await {
                Ok(Ok(())) => {
                    m::inc(m::SHARD_SNAPSHOTS_PRUNED, 1);
                    tracing::info!(object = %name, "sharded: deleted a gone node's snapshot (live owners' snapshots hold its partitions)");
                }
                Ok(Err(e)) => {
                    tracing::warn!(object = %name, "sharded: deleting a gone node's snapshot: {e}")
                }
                Err(_) => {
                    tracing::warn!(object = %name, "sharded: deleting a gone node's snapshot timed out")
                }
            }
        }
    }

    /// If this node's shared snapshot object is gone (deleted by a node that took this one for gone,
    /// in the moment before it came back), shares it again at once and announces nothing as shared
    /// meanwhile.
    async fn check_node_snapshot(&self) {
        if self
            .shared_record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_none()
        {
            return;
        }
        let name = format!("node.{}", self.node);
        if let Ok(Ok(false)) =
            tokio::time::timeout(NET_TIMEOUT, self.log.object_exists(&name)).await
        {
            tracing::warn!(object = %name, "sharded: this node's shared snapshot is gone; sharing it again");
            *self.shared_record.lock().unwrap_or_else(|e| e.into_inner()) = (0, None);
            self.shared_held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }

    /// Shares this node's newest snapshot as its object `node.<name>`, with the partitions it holds,
    /// when it is newer than the one shared last: what a node taking over one of its partitions
    /// rebuilds from.
    pub async fn share_node_snapshot(&self, data: &std::path::Path) {
        let Some((seq, path)) = crate::core::snapshot_files(data).into_iter().next() else {
            return;
        };
        // A snapshot is rewritten under the same record number when the held partitions changed
        // with nothing logged: its modification time tells.
        let stamp = (
            seq,
            std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
        );
        if *self.shared_record.lock().unwrap_or_else(|e| e.into_inner()) == stamp {
            return;
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("sharded: reading {}: {e}", path.display());
                return;
            }
        };
        let (Ok((record, cursor)), Ok(held)) = (
            crate::core::snapshot_position(&bytes),
            crate::core::snapshot_held(&bytes),
        ) else {
            return;
        };
        let held: Vec<u32> = match held {
            Some(h) => (0..h.len() as u32).filter(|p| h[*p as usize]).collect(),
            None => (0..self.units as u32).collect(),
        };
        // Every share of the events it covers must be stored first: a node rebuilding from it
        // goes on from its record, and would wait for ever for a share this node never stored
        // (it died with the share still queued, or stopped with it).
        if !self.flushed(SNAPSHOT_FLUSH).await {
            tracing::warn!(
                record,
                "sharded: shares handed before this snapshot are not all stored yet: not sharing it this time"
            );
            return;
        }
        let at = argus_cluster::SharedSnapshot { cursor, record };
        match self
            .log
            .publish_node_snapshot(&self.node, at, &held, &bytes)
            .await
        {
            Ok(()) => {
                *self.shared_record.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
                *self.shared_held.lock().unwrap_or_else(|e| e.into_inner()) = held.clone();
                tracing::info!(
                    record,
                    partitions = held.len(),
                    "sharded: shared this node's snapshot"
                );
            }
            Err(e) => tracing::warn!("sharded: sharing this node's snapshot: {e}"),
        }
    }

    /// Erasure: deletes the shares of events up to `upto_event` holding one of `needles` from the
    /// bucket; the shares read and deleted.
    pub async fn erase_shares_holding(
        &self,
        needles: &[&[u8]],
        upto_event: u64,
    ) -> Result<(u64, u64), argus_cluster::Error> {
        self.shares.erase_holding(needles, upto_event).await
    }

    /// On shutdown, after the core wrote its final snapshot: shares it, then releases every lease
    /// and this node's membership at once (the new owners rebuild from that snapshot).
    pub async fn leave(&self, data: &std::path::Path) {
        // A node that never caught up owns nothing, and its object must not stand for a holder's.
        if self.member.load(Ordering::SeqCst) {
            self.share_node_snapshot(data).await;
        }
        // The last confirmations, so that the others do not store those shares again.
        self.send_confirmations().await;
        self.draining.store(true, Ordering::SeqCst);
        self.drain_now.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.drained.notified()).await;
    }
}

/// A share whose encoding takes more than this many bytes is stored in pieces: the NATS servers
/// refuse a value over their `max_payload` (1 MiB by default), and a share refused is retried for
/// ever while every node waits at its event. The stages' share holds the findings the event made
/// (a refresh can report a giant cluster's accounts); a partition's share holds whole strings
/// (`last_value` of a text field, once per feature reading it).
pub const SHARE_CHUNK: usize = 256 * 1024;

/// The first 8 bytes of a head: a share's encoding (bincode) begins with its length, which is
/// never this.
const PIECED: [u8; 8] = [0xFF; 8];
/// A head: [`PIECED`], the number of pieces (u32) and the share's encoded length (u64), little
/// endian.
const HEAD_LEN: usize = 20;

/// The keys of pieces (in `argus_cluster`, whose erasure finds a token across two pieces).
use argus_cluster::{piece_key, MAX_PIECES, PIECE_KEYS};

/// A share's encoding as stored: whole (one value under the unit's key) when it takes at most
/// `chunk` bytes; otherwise a head under the unit's key and pieces of at most `chunk` bytes under
/// [`piece_key`]s. Returns `(key, bytes)` in the order to store them.
pub fn stored_form(unit: u32, bytes: Vec<u8>, chunk: usize) -> Vec<(u32, Vec<u8>)> {
    let chunk = chunk.max(16);
    if bytes.len() <= chunk {
        return vec![(unit, bytes)];
    }
    // Never more pieces than a reader takes, nor keys beyond this unit's.
    let chunk = chunk.max(bytes.len().div_ceil(MAX_PIECES as usize));
    let k = bytes.len().div_ceil(chunk);
    let mut out = Vec::with_capacity(k + 1);
    let mut head = Vec::with_capacity(HEAD_LEN);
    head.extend_from_slice(&PIECED);
    head.extend_from_slice(&(k as u32).to_le_bytes());
    head.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.push((unit, head));
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        out.push((piece_key(unit, i as u32), piece.to_vec()));
    }
    out
}

/// What an announcement or the bucket gave under one key.
#[derive(Debug, PartialEq)]
enum Held {
    /// A share, whole.
    Share(Vec<Value>),
    /// The head of a share stored in pieces: how many, and the share's encoded length.
    Head(u32, u64),
    /// One piece's bytes.
    Piece(Vec<u8>),
}

/// What is stored under `key`, as [`Held`]; `None`: it does not decode (another release wrote
/// it, or a head announcing no pieces or more than [`MAX_PIECES`]).
fn held(key: u32, bytes: &[u8]) -> Option<Held> {
    if key >= PIECE_KEYS {
        return Some(Held::Piece(bytes.to_vec()));
    }
    if bytes.len() >= PIECED.len() && bytes[..PIECED.len()] == PIECED {
        let (k, len) = (bytes.get(8..12)?, bytes.get(12..HEAD_LEN)?);
        let k = u32::from_le_bytes(k.try_into().ok()?);
        let len = u64::from_le_bytes(len.try_into().ok()?);
        return (bytes.len() == HEAD_LEN && (1..=MAX_PIECES).contains(&k))
            .then_some(Held::Head(k, len));
    }
    bincode::deserialize(bytes).ok().map(Held::Share)
}

/// What [`take_whole`] found.
enum Taken {
    Whole(Vec<Value>),
    /// Nothing yet, or a head whose pieces are not all there.
    Missing,
    /// The pieces together are not the length the head announced, or do not decode.
    Undecodable,
}

/// Takes unit `p`'s share of event `seq` out of `got` when it is whole there: stored whole, or
/// a head with every one of its pieces (then joined and decoded).
fn take_whole(got: &mut HashMap<(u64, u32), Held>, seq: u64, p: u32) -> Taken {
    let k = match got.get(&(seq, p)) {
        None | Some(Held::Piece(_)) => return Taken::Missing,
        Some(Held::Share(_)) => {
            return match got.remove(&(seq, p)) {
                Some(Held::Share(v)) => Taken::Whole(v),
                _ => Taken::Missing,
            };
        }
        Some(Held::Head(k, _)) => *k,
    };
    if !(0..k).all(|i| got.contains_key(&(seq, piece_key(p, i)))) {
        return Taken::Missing;
    }
    let Some(Held::Head(_, len)) = got.remove(&(seq, p)) else {
        return Taken::Missing;
    };
    // (The head's length is only a hint: a bogus one must not allocate much.)
    let mut bytes = Vec::with_capacity(len.min(16 << 20) as usize);
    for i in 0..k {
        match got.remove(&(seq, piece_key(p, i))) {
            Some(Held::Piece(b)) => bytes.extend_from_slice(&b),
            _ => return Taken::Undecodable,
        }
    }
    if bytes.len() as u64 != len {
        return Taken::Undecodable;
    }
    match bincode::deserialize(&bytes) {
        Ok(v) => Taken::Whole(v),
        Err(_) => Taken::Undecodable,
    }
}

/// Whether another node may need unit `p`'s share of an event from this node: always from a node
/// that takes part in ownership (`member`) unless another node owns the unit and announces
/// holding it (this node releases it at its next sync); from a node catching up before that, only
/// for the units whose lease was still in its name when it started (`leases`; `None`: not known,
/// every unit), which the others wait for until the lease passes — for the rest, the other nodes
/// are past those events, and the holders at the time stored their shares.
fn share_needed(p: u32, member: bool, leases: Option<&BTreeSet<u32>>, view: &View) -> bool {
    if member {
        view.owned.contains(&p) || !view.held_elsewhere.contains(&p)
    } else {
        leases.is_none_or(|mine| mine.contains(&p))
    }
}

/// A share whose storage took this long is logged (at most once a second): every node waiting
/// for it waited as long.
const SLOW_PUBLISH: Duration = Duration::from_secs(1);

fn slow_publish(seq: u64, p: u32, took: Duration) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            seq,
            partition = p,
            millis = took.as_millis() as u64,
            "sharded: storing a share took over a second (queue and put): the others waited for it"
        );
    }
}

/// At most this many shares are announced in one message (and fewer when they pass half the
/// servers' `max_payload`).
const ANNOUNCE_BATCH: usize = 1_024;

/// Announces the shares the core publishes, as many to a message as are waiting
/// (`Shares::announce_many`), then hands them to [`storer`]. Announcing does not wait for the
/// stores: a backlog of writes to the bucket does not hold back the announcements the others
/// decide with.
async fn publisher(
    shares: argus_cluster::Shares,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    unstored: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    to_confirm: Arc<Mutex<Vec<(u64, u32)>>>,
    store_delay: Duration,
    announce_max: usize,
) {
    let (put, put_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(storer(
        shares.clone(),
        put_rx,
        unstored.clone(),
        to_confirm,
        store_delay,
    ));
    let mut batch: Vec<Outgoing> = Vec::new();
    let mut listed: Vec<(u64, u32, argus_cluster::Bytes)> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < ANNOUNCE_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        listed.extend(batch.iter().map(|o| (o.0, o.1, o.2.clone())));
        // At most once: a lost announcement is read from the bucket.
        let (sent, failed) = shares.announce_many(&listed, announce_max).await;
        m::inc(m::SHARD_OWN_SHARES_ANNOUNCED, listed.len() as u64);
        m::inc(m::SHARD_ANNOUNCE_MESSAGES, sent as u64);
        if let Some(e) = failed {
            tracing::debug!("sharded: announcing shares: {e} (they are read from the bucket)");
        }
        listed.clear();
        let mut left = batch.drain(..);
        while let Some(o) = left.next() {
            if let Err(lost) = put.send(o) {
                // No storer any more (it cannot end but by a panic): what is left will never be
                // stored, and must not hold `flushed` back for good.
                let mut u = unstored.lock().unwrap_or_else(|e| e.into_inner());
                u.remove(&lost.0 .4);
                for o in left {
                    u.remove(&o.4);
                }
                tracing::error!("sharded: the shares' storer is gone; shares are no longer stored");
                return;
            }
        }
    }
}

/// Stores the shares announced, many at a time; a failed store is retried (a share that is never
/// stored would leave the others waiting until the partition's next owner recomputes it).
async fn storer(
    shares: argus_cluster::Shares,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    unstored: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    to_confirm: Arc<Mutex<Vec<(u64, u32)>>>,
    store_delay: Duration,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(256));
    while let Some((seq, p, bytes, handed, ticket)) = rx.recv().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let shares = shares.clone();
        let (unstored, to_confirm) = (unstored.clone(), to_confirm.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if !store_delay.is_zero() {
                tokio::time::sleep(store_delay).await;
            }
            // Retried for as long as it takes: the others wait for this share.
            for attempt in 0u32.. {
                match shares.put(seq, p, bytes.clone()).await {
                    Ok(()) => {
                        unstored
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&ticket);
                        to_confirm
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((seq, p));
                        // From the core's hand-over to the replicas' acknowledgement: the queue
                        // (at most 256 in flight) and the bucket's write.
                        let took = handed.elapsed();
                        m::observe(m::SHARD_PUBLISH_SECONDS, took.as_secs_f64());
                        if took >= SLOW_PUBLISH {
                            slow_publish(seq, p, took);
                        }
                        return;
                    }
                    Err(e) => {
                        if attempt % 20 == 19 {
                            tracing::warn!(
                                seq,
                                partition = p,
                                "sharded: storing a share: {e}; retrying"
                            );
                        }
                        m::inc(m::SHARD_PUBLISH_FAILURES, 1);
                        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(owned: &[u32], elsewhere: &[u32]) -> View {
        View {
            owned: owned.iter().copied().collect(),
            held_elsewhere: elsewhere.iter().copied().collect(),
        }
    }

    /// A node catching up from a shared snapshot that holds every partition stores none of their
    /// shares (the others are past those events; bench/cluster.sh's growth after a join had a
    /// 500-event batch take 3.2-4.7 s behind such a flood), except those of the units whose lease
    /// is still in its name (a quick restart: the others wait for those), and every one while its
    /// leases are not known yet.
    #[test]
    fn a_catching_up_node_stores_only_the_shares_the_others_wait_for() {
        let none = view(&[], &[]);
        let restarted: BTreeSet<u32> = [3, 24].into();
        let fresh = BTreeSet::new();
        for p in 0..25 {
            assert!(!share_needed(p, false, Some(&fresh), &none), "unit {p}");
            assert_eq!(
                share_needed(p, false, Some(&restarted), &none),
                p == 3 || p == 24,
                "unit {p}"
            );
            assert!(share_needed(p, false, None, &none), "unit {p}");
        }
    }

    /// A member stores the shares of what it owns, and of what it holds that no other node owns
    /// and holds (a partition it is handing over, until the new owner holds it); not those of a
    /// partition another node owns and announces holding.
    #[test]
    fn a_member_stores_the_shares_nobody_else_holds() {
        let v = view(&[1, 2], &[5]);
        assert!(share_needed(1, true, None, &v));
        assert!(
            share_needed(4, true, None, &v),
            "handing over: no other holder yet"
        );
        assert!(
            !share_needed(5, true, None, &v),
            "owned and held by another node"
        );
        assert!(
            !share_needed(5, true, Some(&BTreeSet::new()), &v),
            "the leases at start do not matter once a member"
        );
    }
}

#[cfg(test)]
mod pieces {
    use super::*;

    fn stored(unit: u32, share: &[Value], chunk: usize) -> HashMap<(u64, u32), Held> {
        let bytes = bincode::serialize(share).unwrap();
        stored_form(unit, bytes, chunk)
            .into_iter()
            .map(|(key, b)| ((7, key), held(key, &b).expect("decodes")))
            .collect()
    }

    /// A share whose encoding takes more than the chunk is stored as a head under the unit's key
    /// and pieces of at most the chunk under keys no unit uses, and comes back whole only once
    /// every piece is there; a small one is stored as it is. Any unit's: a partition's share of
    /// long strings (`last_value` of a text field) as well as the stages' findings.
    #[test]
    fn a_large_share_is_stored_in_pieces_and_put_back_together() {
        let text: String = (0..5_000).map(|i| format!("ü{i}é,")).collect();
        let share = vec![
            Value::Int(7),
            Value::Null,
            Value::Str(text.as_str().into()),
            Value::Str(text.as_str().into()),
        ];
        let bytes = bincode::serialize(&share).unwrap();
        let form = stored_form(3, bytes.clone(), 4_096);
        assert_eq!(form.len(), 1 + bytes.len().div_ceil(4_096));
        assert_eq!(form[0].0, 3);
        assert_eq!(
            held(3, &form[0].1),
            Some(Held::Head(form.len() as u32 - 1, bytes.len() as u64))
        );
        for (i, (key, piece)) in form[1..].iter().enumerate() {
            assert_eq!(*key, piece_key(3, i as u32));
            assert!(*key >= PIECE_KEYS && !piece.is_empty() && piece.len() <= 4_096);
        }
        // Piece keys of different units never meet, nor a unit's key.
        assert!(piece_key(3, MAX_PIECES - 1) < piece_key(4, 0));
        assert!(piece_key(0, 0) > 256);

        let mut got = stored(3, &share, 4_096);
        // A piece missing: not whole yet, and nothing is taken.
        let last = piece_key(3, form.len() as u32 - 2);
        let piece = got.remove(&(7, last)).unwrap();
        assert!(matches!(take_whole(&mut got, 7, 3), Taken::Missing));
        assert_eq!(got.len(), form.len() - 1);
        got.insert((7, last), piece);
        match take_whole(&mut got, 7, 3) {
            Taken::Whole(v) => assert_eq!(v, share),
            _ => panic!("not whole"),
        }
        assert!(got.is_empty(), "the head and its pieces are taken");

        // Small: as it is.
        let small = vec![Value::Int(1), Value::Str("[]".into())];
        let form = stored_form(24, bincode::serialize(&small).unwrap(), 4_096);
        assert_eq!(form.len(), 1);
        let mut got = stored(24, &small, 4_096);
        match take_whole(&mut got, 7, 24) {
            Taken::Whole(v) => assert_eq!(v, small),
            _ => panic!("not whole"),
        }
    }

    /// Pieces that are not the length their head announced, or do not decode, are refused (the
    /// core stops on them rather than deciding from them); so is a head announcing no pieces or
    /// more than `MAX_PIECES`, and bytes that are no share.
    #[test]
    fn pieces_that_do_not_make_their_share_are_refused() {
        let share = vec![Value::Str("x".repeat(100).into())];
        let mut got = stored(5, &share, 32);
        let k = match got.get(&(7, 5)) {
            Some(Held::Head(k, _)) => *k,
            other => panic!("{other:?}"),
        };
        got.insert((7, piece_key(5, k - 1)), Held::Piece(vec![1, 2]));
        assert!(matches!(take_whole(&mut got, 7, 5), Taken::Undecodable));

        let mut got = stored(5, &share, 32);
        let len = bincode::serialize(&share).unwrap().len() as u64;
        // The same length, other bytes: does not decode as a share.
        for i in 0..k {
            let n = got.remove(&(7, piece_key(5, i))).map_or(0, |h| match h {
                Held::Piece(b) => b.len(),
                _ => 0,
            });
            got.insert((7, piece_key(5, i)), Held::Piece(vec![0xFF; n]));
        }
        assert_eq!(got.get(&(7, 5)), Some(&Held::Head(k, len)));
        assert!(matches!(take_whole(&mut got, 7, 5), Taken::Undecodable));

        let head = |k: u32| {
            let mut h = PIECED.to_vec();
            h.extend_from_slice(&k.to_le_bytes());
            h.extend_from_slice(&10u64.to_le_bytes());
            h
        };
        assert_eq!(held(5, &head(0)), None);
        assert_eq!(held(5, &head(MAX_PIECES + 1)), None);
        assert_eq!(held(5, &head(2)), Some(Held::Head(2, 10)));
        assert_eq!(held(5, &head(2)[..15]), None);
        assert_eq!(held(5, b"\x01\x02"), None);
    }
}
