//! The core's side of sharded apply (see `crate::shard`): an event through the two halves of the
//! engine's step with the other partitions' shares between them, the partitions held kept in line
//! with ownership, and the rebuild of a partition this node takes over.

use super::*;
use crate::shard::{Fetched, Shard};
use crate::wal::LogReader;
use events::{Live, LiveResult};

/// A partition whose rebuild failed is tried again after this long.
const REBUILD_RETRY: Duration = Duration::from_secs(1);
/// A partition whose rebuild failed this many times in a row is declined ...
const DECLINE_AFTER: u32 = 5;
/// ... for this long: the other members want another owner for it meanwhile.
const DECLINE_FOR: Duration = Duration::from_secs(60);
/// A rebuild of a partition this node does not own any more is dropped after this long.
const JOB_UNOWNED: Duration = Duration::from_secs(60);
/// A finished rebuild further behind the log than this many records chases it on its thread again
/// rather than on the core.
const CHASE_RECORDS: u64 = 4_096;

impl Core {
    /// This node's shard, when the cluster is sharded.
    pub(super) fn shard(&self) -> Option<Arc<Shard>> {
        self.shared.shard.get().cloned()
    }

    /// A live event on a sharded node, alone (labels; the runs of event requests go through
    /// [`events_sharded`](Self::events_sharded)). `Err`: the event could not be completed (shutdown,
    /// a share that does not fit): the core refuses writes from now on, as after a log failure, and
    /// the event is not acknowledged.
    pub(super) fn process_sharded(
        &mut self,
        ev: &Event,
        shard: &Arc<Shard>,
    ) -> Result<LiveResult, Answer> {
        self.sync_partitions(shard);
        let b = match self.engine.begin_shared(ev) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        shard.publish(b.seq, &b.shares);
        let mut rebuilt = Rebuilt::default();
        let events = std::slice::from_ref(ev);
        let out = self.complete_shared(b, shard, events, 0, &mut rebuilt);
        self.adopt_rebuilt(shard, rebuilt);
        out
    }

    /// A run of event requests and cursors on a sharded node, in order: every event is begun (the
    /// sequencer, the held partitions, their shares published) before the first is finished, so that
    /// the waits for the other owners' shares overlap; then each is finished, logged and answered in
    /// order, and each cursor recorded after its entry's events — the records, decisions and state of
    /// one event at a time.
    pub(super) fn events_sharded(&mut self, reqs: Vec<Request>) -> Vec<Outcome> {
        let t0 = Instant::now();
        let Some(shard) = self.shard() else {
            return reqs.into_iter().map(|r| self.handle(r)).collect();
        };
        self.sync_partitions(&shard);
        enum Item {
            Done(Outcome),
            Begun(Live, usize, Box<Result<argus_engine::Begun, ProcessError>>),
        }
        enum Step {
            Events(bool, Vec<Item>),
            Other(Request),
        }
        let mut steps = Vec::with_capacity(reqs.len());
        let mut events: Vec<Event> = Vec::new();
        for req in reqs {
            let Request::Events {
                items,
                decoded,
                batch,
                labels_only: false,
                ..
            } = req
            else {
                steps.push(Step::Other(req));
                continue;
            };
            let mut decoded = decoded.into_iter();
            let mut row = Vec::with_capacity(items.len());
            for raw in &items {
                let d = decoded
                    .next()
                    .unwrap_or_else(|| self.engine.decoder().decode_bytes(raw.get().as_bytes()));
                if let Some(why) = &self.failed {
                    row.push(Item::Done(Outcome::Answer(error(
                        Failure::Unavailable,
                        "not_accepting_writes",
                        refused(&self.shared, why),
                    ))));
                    continue;
                }
                match self
                    .edge(d, false)
                    .and_then(|ev| self.prepare(&ev, t0).map(|c| (ev, c)))
                {
                    Ok((ev, c)) => {
                        let b = self.engine.begin_shared(&ev);
                        if let Ok(b) = &b {
                            shard.publish(b.seq, &b.shares);
                        }
                        row.push(Item::Begun(c, events.len(), Box::new(b)));
                        events.push(ev);
                    }
                    Err(a) => row.push(Item::Done(Outcome::Answer(a))),
                }
            }
            steps.push(Step::Events(batch, row));
        }
        let mut rebuilt = Rebuilt::default();
        let mut outs = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Other(req) => outs.push(self.handle(req)),
                Step::Events(batch, row) => {
                    let mut logged = false;
                    let mut results = Vec::with_capacity(row.len());
                    for item in row {
                        let out = match item {
                            Item::Done(o) => o,
                            Item::Begun(c, j, b) => {
                                let res = match *b {
                                    Err(e) => Ok(Err(e)),
                                    Ok(b) => {
                                        self.complete_shared(b, &shard, &events, j, &mut rebuilt)
                                    }
                                };
                                match res {
                                    Ok(r) if self.failed.is_none() => self.finish_live(c, r),
                                    Ok(_) => Outcome::Answer(error(
                                        Failure::Unavailable,
                                        "not_accepting_writes",
                                        "the core failed part-way through this run; restart the server (it recovers from the log)",
                                    )),
                                    Err(a) => Outcome::Answer(a),
                                }
                            }
                        };
                        match out {
                            Outcome::Logged(a) => {
                                logged = true;
                                results.push(a);
                            }
                            Outcome::Answer(a) => results.push(a),
                        }
                    }
                    outs.push(events::request_outcome(results, logged, batch));
                }
            }
        }
        self.adopt_rebuilt(&shard, rebuilt);
        outs
    }

    /// The second half of a begun event: the other partitions' shares (awaited; a partition this
    /// node now owns and nobody answered is rebuilt through `events[j..]`, the events begun from this
    /// one on), then the vector, stages and decision.
    fn complete_shared(
        &mut self,
        b: argus_engine::Begun,
        shard: &Arc<Shard>,
        events: &[Event],
        j: usize,
        rebuilt: &mut Rebuilt,
    ) -> Result<LiveResult, Answer> {
        let t = Instant::now();
        shard.finishing(b.seq);
        let mut remote: HashMap<usize, Vec<Value>> = HashMap::new();
        for &p in &b.remote {
            let v = self.await_share(shard, &b, p, events, j, rebuilt, t)?;
            remote.insert(p, v);
        }
        m::observe(m::SHARD_WAIT_SECONDS, t.elapsed().as_secs_f64());
        match self
            .engine
            .finish_shared(b, |p| remote.get(&p).map(Vec::as_slice), true)
        {
            Ok(p) => Ok(Ok((p.decision, p.findings))),
            Err(p) => {
                let why = format!(
                    "partition {p}'s share does not fit this node's configuration: every node must run the same files"
                );
                self.fail(why.clone());
                Err(error(Failure::Internal, "shard_mismatch", why))
            }
        }
    }

    /// Unit `p`'s share of the event: waited for (`Shard::wait`, which puts a share stored in
    /// pieces back together), or — when this node owns `p` now and nobody published it whole
    /// (its holder died part-way, perhaps between a head and its pieces) — made by rebuilding `p`
    /// through `events[j..]`. `t`: when the event began waiting (for the log line of a long wait).
    #[allow(clippy::too_many_arguments)]
    fn await_share(
        &mut self,
        shard: &Arc<Shard>,
        b: &argus_engine::Begun,
        p: usize,
        events: &[Event],
        j: usize,
        rebuilt: &mut Rebuilt,
        t: Instant,
    ) -> Result<Vec<Value>, Answer> {
        let key = p as u32;
        let mut said = Instant::now();
        loop {
            // The core failed part-way through the run: the events after it are not waited for
            // (each would wait a step for nothing).
            if let Some(why) = &self.failed {
                return Err(error(
                    Failure::Unavailable,
                    "not_accepting_writes",
                    refused(&self.shared, why),
                ));
            }
            if shard.is_undecodable(b.seq, key) {
                let why = format!("partition {p}'s share of event {} does not decode: every node must run the same release, and every NATS server the same max_payload", b.seq);
                self.fail(why.clone());
                return Err(error(Failure::Internal, "shard_mismatch", why));
            }
            if said.elapsed() >= Duration::from_secs(5) {
                said = Instant::now();
                let view = shard.view();
                let owned_here = view.owned.contains(&key);
                tracing::warn!(
                    seq = b.seq,
                    partition = p,
                    waited_ms = t.elapsed().as_millis() as u64,
                    owned_here,
                    held_elsewhere = view.held_elsewhere.contains(&key),
                    "sharded: still waiting for a partition's share of an event"
                );
                if !owned_here && shard.shares_gone(b.seq) {
                    // Nobody will store it again: this node is further behind than the shares'
                    // retention. Waiting would be for good; it says what to do instead.
                    let why = format!(
                        "the shares of event {} are gone from the shares' bucket (they outlived [cluster] share_retention, {} s): this node is too far behind to catch up from its own state; move its data directory aside and start it again, so that it restores the newest shared snapshot",
                        b.seq,
                        shard.retention.as_secs()
                    );
                    tracing::error!("sharded: {why}");
                    self.shared.refuse_writes_because(why.clone());
                    self.fail(why.clone());
                    return Err(error(Failure::Unavailable, "not_accepting_writes", why));
                }
            }
            if let Some(v) = rebuilt.share(p, b.seq) {
                return Ok(v);
            }
            // Asked again sooner while this node rebuilds the partition on a thread.
            let step = if self.rebuilding(p) { 20 } else { 200 };
            if let Some(v) = shard.wait(b.seq, key, Duration::from_millis(step)) {
                return Ok(v);
            }
            // Stopping (10 s after SIGTERM): an event still waiting gives up, not one whose
            // shares are there.
            if shard.stopping.load(Ordering::SeqCst) {
                let why = format!("stopping while waiting for partition {p}'s share");
                self.fail(why.clone());
                return Err(error(Failure::Unavailable, "not_accepting_writes", why));
            }
            if shard.view().owned.contains(&key) && !rebuilt.holds(p) && self.rebuild_due(p) {
                // This node owns the partition now, and nobody published its share: its
                // owner died part-way. Rebuild it (with the other partitions this node took
                // over that the same snapshot holds) through the events begun from this one on.
                match self.rebuild(p, &events[j..]) {
                    Ok(set) => {
                        for (q, seq, v) in &set.shares {
                            shard.publish(*seq, &[(*q, v.clone())]);
                        }
                        rebuilt
                            .shares
                            .extend(set.shares.into_iter().map(|(q, s, v)| ((q, s), v)));
                        rebuilt.engines.push((set.parts, set.engine));
                    }
                    Err(e) => self.rebuild_not_yet(p, e),
                }
            }
        }
    }

    /// Takes the partitions rebuilt during a run (each as of the run's last event).
    fn adopt_rebuilt(&mut self, shard: &Arc<Shard>, rebuilt: Rebuilt) {
        if rebuilt.engines.is_empty() {
            return;
        }
        for (parts, mut scratch) in rebuilt.engines {
            for p in parts {
                self.engine.adopt_partition(p, &mut scratch);
            }
        }
        shard.set_held(&self.engine.units_held());
    }

    /// Between events: drops the partitions another node owns and holds now, and rebuilds those
    /// this node owns but does not hold.
    pub(super) fn sync_partitions(&mut self, shard: &Arc<Shard>) {
        let view = shard.view();
        // A rebuild of a partition this node no longer owns is not wanted (one still running is
        // left to finish, unread).
        let held = self.engine.units_held();
        // A rebuild of a partition held already, or not owned for a minute, is not wanted (one
        // still running is left to finish, unread). Its result is a function of the log, so one
        // that outlives a short lapse of the lease is still good.
        self.rebuilds.retain(|j| {
            j.parts.iter().any(|p| {
                !held.get(*p).copied().unwrap_or(true)
                    && (view.owned.contains(&(*p as u32)) || j.started.elapsed() < JOB_UNOWNED)
            })
        });
        let mut changed = false;
        for (p, &h) in held.iter().enumerate() {
            let owned = view.owned.contains(&(p as u32));
            if h && !owned && view.held_elsewhere.contains(&(p as u32)) {
                self.engine.release_partition(p);
                changed = true;
            } else if !h && owned && !self.engine.units_held()[p] && self.rebuild_due(p) {
                // (Held by now when an earlier partition's rebuild in this loop brought it too.)
                match self.rebuild(p, &[]) {
                    Ok(mut set) => {
                        for q in set.parts {
                            self.engine.adopt_partition(q, &mut set.engine);
                        }
                        changed = true;
                    }
                    Err(e) => self.rebuild_not_yet(p, e),
                }
            }
        }
        if changed || self.shard_announced.is_none() {
            shard.set_held(&self.engine.units_held());
        }
        // A partition held and owned here that no shared snapshot of this node holds yet: its
        // previous holder keeps it until one does, so write one soon.
        let unshared = view.owned.iter().any(|p| {
            self.engine
                .units_held()
                .get(*p as usize)
                .copied()
                .unwrap_or(false)
                && !shard.shares_snapshot_of(*p)
        });
        if unshared
            && self.copying.is_none()
            && self.snap_job.is_none()
            && self.last_snap.elapsed() >= Duration::from_secs(2)
        {
            self.snapshot_soon = true;
        }
        self.shard_announced = Some(Instant::now());
    }

    /// Sharded, between groups and when idle (at most every 200 ms, whether or not events arrive):
    /// hands over and takes over partitions as ownership says.
    pub(super) fn sync_partitions_due(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let Some(shard) = self.shard() else { return };
        if self
            .shard_announced
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.sync_partitions(&shard);
    }

    fn rebuild_due(&self, p: usize) -> bool {
        self.rebuild_failures
            .get(&p)
            .is_none_or(|(at, _)| at.elapsed() >= REBUILD_RETRY)
    }

    fn rebuild_not_yet(&mut self, p: usize, e: NotYet) {
        match e {
            // Asked again at the next sync (before each run of events, every 200 ms when idle) or,
            // while an event waits for the partition, every 20 ms.
            NotYet::Waiting(what) => {
                tracing::debug!(partition = p, "sharded: rebuild waits: {what}")
            }
            NotYet::Failed(e) => {
                tracing::warn!(
                    partition = p,
                    "sharded: cannot rebuild the partition yet: {e}"
                );
                let n = self.rebuild_failures.get(&p).map_or(0, |(_, n)| *n) + 1;
                if n >= DECLINE_AFTER {
                    // Another member may have the log this node lacks (it started from a newer
                    // shared snapshot than the partition's last one): let it take the partition.
                    if let Some(shard) = self.shard() {
                        tracing::warn!(
                            partition = p,
                            failures = n,
                            seconds = DECLINE_FOR.as_secs(),
                            "sharded: declining the partition, which this node cannot rebuild: another member takes it"
                        );
                        shard.decline(p as u32, DECLINE_FOR);
                    }
                    self.rebuild_failures.insert(p, (Instant::now(), 0));
                } else {
                    self.rebuild_failures.insert(p, (Instant::now(), n));
                }
            }
        }
    }

    /// Partition `p` as of the last record of this node's log and then the `pending` events (begun
    /// and not yet logged), whose shares of it are returned with their sequence numbers: restored
    /// from the newest snapshot that holds it and that this node's log continues (its own, another
    /// node's in the object store, or the empty state when the log starts at the first record),
    /// then this node's log records since. The other partitions this node owns and does not hold
    /// that the same snapshot holds come with it ([`RebuiltSet::parts`], `p` first): the partitions
    /// of a dead node usually all come from its last shared snapshot, and one restore and one
    /// replay serve them all.
    ///
    /// The slow parts run off the core: the object store is read by tasks
    /// ([`Shard::node_snapshots`], [`Shard::node_snapshot`]), and the restore and the replay of the
    /// log run on a thread of their own ([`RebuildJob`]), which chases the log again while it is
    /// more than `CHASE_RECORDS` behind. `NotYet::Waiting` until then; the core replays the last
    /// records and the pending events, and hands the partitions over. Events that need a
    /// partition's share and that nobody else publishes (its owner died) wait for all of it.
    pub(super) fn rebuild(&mut self, p: usize, pending: &[Event]) -> Result<RebuiltSet, NotYet> {
        let shard = self
            .shard()
            .ok_or_else(|| NotYet::Failed("not sharded".into()))?;
        let log_dir = self.settings.data_dir.join("log");
        let job = self.rebuilds.iter().position(|j| j.parts.contains(&p));
        if job.is_some_and(|i| !self.rebuilds[i].thread.is_finished()) {
            return Err(NotYet::Waiting(
                "restoring and replaying on its thread".into(),
            ));
        }
        if let Some(i) = job {
            let job = self.rebuilds.swap_remove(i);
            let t = Instant::now();
            let (from, upto, mut scratch, replayed, mut parts) = job
                .thread
                .join()
                .map_err(|_| "the rebuild thread panicked".to_string())??;
            // What this node logged since the thread's last record: on the thread again while that
            // is much, then here.
            self.wal.flush().map_err(|e| format!("event log: {e}"))?;
            let last = self.wal.last_seq();
            if last.saturating_sub(upto) > CHASE_RECORDS {
                let thread = std::thread::Builder::new()
                    .name(format!("argus-rebuild-{p}"))
                    .spawn(move || {
                        let n = replay_log(&log_dir, &mut scratch, upto, last)?;
                        Ok((from, last, scratch, replayed + n, parts))
                    })
                    .map_err(|e| format!("starting a rebuild thread: {e}"))?;
                self.rebuilds.push(RebuildJob {
                    thread,
                    parts: job.parts,
                    started: job.started,
                    core: job.core + t.elapsed(),
                });
                return Err(NotYet::Waiting("chasing the log on its thread".into()));
            }
            // Only the partitions still wanted here: `p`, and the others still owned and not held.
            let view = shard.view();
            let held = self.engine.units_held();
            let (keep, drop): (Vec<usize>, Vec<usize>) = parts
                .iter()
                .partition(|q| **q == p || (view.owned.contains(&(**q as u32)) && !held[**q]));
            for q in drop {
                scratch.release_partition(q);
            }
            parts = keep;
            let caught_up = replay_log(&log_dir, &mut scratch, upto, last)?;
            // The pending events: begun, never finished (only the partitions are kept).
            let mut shares = Vec::new();
            for ev in pending {
                if let Ok(b) = scratch.begin_shared(ev) {
                    for (q, v) in b.shares {
                        if parts.contains(&q) {
                            shares.push((q, b.seq, v));
                        }
                    }
                }
            }
            // The rebuilt partitions are as of the same event as this engine (the log's last record,
            // then the run's events begun so far), or they would be adopted out of step with the
            // rest of the state: refused, and rebuilt again, rather than silently diverging.
            let at = |e: &Engine| (e.sequence(), e.feature_state().watermark());
            if at(&scratch) != at(&self.engine) {
                return Err(NotYet::Failed(format!(
                    "the rebuilt partitions {parts:?} are at event {} (watermark {}), this node at event {} (watermark {}): not adopted",
                    at(&scratch).0,
                    at(&scratch).1,
                    at(&self.engine).0,
                    at(&self.engine).1
                )));
            }
            let core = job.core + t.elapsed();
            m::inc(m::SHARD_REBUILDS, parts.len() as u64);
            m::observe(
                m::SHARD_REBUILD_SECONDS,
                job.started.elapsed().as_secs_f64(),
            );
            m::observe(m::SHARD_REBUILD_CORE_SECONDS, core.as_secs_f64());
            for q in &parts {
                self.rebuild_failures.remove(q);
                // Rebuilt after all (a retry before the decline took effect): held here now.
                shard.undecline(*q as u32);
            }
            tracing::info!(
                partitions = ?parts,
                from_record = from,
                replayed = replayed + caught_up,
                millis = job.started.elapsed().as_millis() as u64,
                core_millis = core.as_millis() as u64,
                "sharded: rebuilt partitions this node took over"
            );
            return Ok(RebuiltSet {
                engine: scratch,
                parts,
                shares,
            });
        }
        // One rebuild runs at a time: each restores a whole snapshot, so several at once would
        // hold as many copies of it; one brings every partition it can (below).
        if self.rebuilds.iter().any(|j| !j.thread.is_finished()) {
            return Err(NotYet::Waiting("another rebuild runs".into()));
        }
        // Start one: the candidate snapshots, newest first.
        let t = Instant::now();
        self.wal.flush().map_err(|e| format!("event log: {e}"))?;
        let (first, last) = (self.wal.first_seq(), self.wal.last_seq());
        let usable = |record: u64| record + 1 >= first && record <= last;
        let mut candidates: Vec<(u64, Candidate)> = snapshots(&self.settings.data_dir)
            .into_iter()
            .filter(|(seq, _)| usable(*seq))
            .map(|(seq, path)| (seq, Candidate::Own(path)))
            .collect();
        let listed = match shard.node_snapshots() {
            Some(l) => l,
            None => return Err(NotYet::Waiting("listing the node snapshots".into())),
        };
        let mut shared: Vec<_> = listed
            .into_iter()
            .filter(|s| s.held.contains(&(p as u32)) && usable(s.at.record))
            .collect();
        shared.sort_by_key(|s| std::cmp::Reverse(s.at.record));
        // The newest shared snapshot holding it that can be fetched (waited for: this node's own
        // snapshots rarely hold a partition it takes over, and which do is known only by reading
        // them, on the thread). An older one is fetched only when a newer one cannot be.
        for s in shared {
            match shard.node_snapshot(&s.object, s.at.record) {
                // The record the bytes cover, not the listing's: the object may have been replaced
                // since it was listed.
                Fetched::Ready(b) => match snapshot_position(&b) {
                    Ok((r, _)) if usable(r) => {
                        candidates.push((r, Candidate::Shared(s.object, b)));
                        break;
                    }
                    _ => {}
                },
                Fetched::Pending => return Err(NotYet::Waiting(format!("fetching {}", s.object))),
                Fetched::Failed(e) => {
                    tracing::warn!(object = %s.object, "sharded: fetching a node snapshot: {e}")
                }
            }
        }
        candidates.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
        // `p`, then every other partition this node owns, does not hold and is not rebuilding (a
        // finished job not yet taken holds it): those the chosen snapshot holds come along.
        let view = shard.view();
        let held = self.engine.units_held();
        let mut wanted = vec![p];
        wanted.extend(view.owned.iter().map(|q| *q as usize).filter(|q| {
            *q != p
                && !held.get(*q).copied().unwrap_or(true)
                && self.rebuild_due(*q)
                && !self.rebuilds.iter().any(|j| j.parts.contains(q))
        }));
        let cfg = self.engine.config.clone();
        let parts = wanted.clone();
        let thread = std::thread::Builder::new()
            .name(format!("argus-rebuild-{p}"))
            .spawn(move || rebuild_on_thread(&cfg, wanted, candidates, &log_dir, first, last))
            .map_err(|e| format!("starting a rebuild thread: {e}"))?;
        self.rebuilds.push(RebuildJob {
            thread,
            parts,
            started: t,
            core: t.elapsed(),
        });
        Err(NotYet::Waiting("started on its thread".into()))
    }

    /// Whether partition `p` is being rebuilt on a thread.
    pub(super) fn rebuilding(&self, p: usize) -> bool {
        self.rebuilds.iter().any(|j| j.parts.contains(&p))
    }
}

/// What a rebuild's thread hands back: the snapshot record it started from, the last log record
/// it replayed to, the engine, the events replayed, and the partitions it holds.
type Rebuilding = (u64, u64, Engine, u64, Vec<usize>);

/// A rebuild on a thread of its own.
pub(super) struct RebuildJob {
    thread: std::thread::JoinHandle<Result<Rebuilding, String>>,
    /// The partitions it may bring, the one it was started for first (those the snapshot it
    /// restores holds come: the thread's answer says which).
    parts: Vec<usize>,
    started: Instant,
    /// Time it took on the core so far (choosing the snapshot, starting the thread).
    core: Duration,
}

/// Partitions rebuilt from one restore, as of the same point: the engine holding them (and no
/// others), them (the one asked for first), and their shares of the pending events, as
/// (partition, sequence number, share).
pub(super) struct RebuiltSet {
    pub(super) engine: Engine,
    pub(super) parts: Vec<usize>,
    pub(super) shares: Vec<(usize, u64, Vec<Value>)>,
}

/// A snapshot a rebuild may start from.
enum Candidate {
    /// One of this node's snapshot files.
    Own(std::path::PathBuf),
    /// Another node's, fetched from the object store (its name).
    Shared(String, Arc<Vec<u8>>),
}

/// The rebuild's thread: restores the first of `wanted` from the newest of `candidates` (newest
/// first) that holds it (or the empty state when the log starts at record 1), keeps the others of
/// `wanted` that snapshot holds and releases every other partition, and applies this node's log up
/// to record `upto`.
fn rebuild_on_thread(
    cfg: &argus_engine::Config,
    wanted: Vec<usize>,
    candidates: Vec<(u64, Candidate)>,
    log_dir: &Path,
    first: u64,
    upto: u64,
) -> Result<Rebuilding, String> {
    let p = wanted[0];
    let mut found: Option<(u64, Engine)> = None;
    for (record, c) in candidates {
        let (bytes, what) = match c {
            Candidate::Own(path) => match std::fs::read(&path) {
                Ok(b) => (Arc::new(b), path.display().to_string()),
                Err(_) => continue,
            },
            Candidate::Shared(name, b) => (b, name),
        };
        match snapshot_position(&bytes) {
            Ok((r, _)) if r == record => {}
            _ => continue,
        }
        match restore_holding(cfg, &bytes, p) {
            Ok(e) => {
                found = Some((record, e));
                break;
            }
            Err(e) => tracing::debug!(snapshot = %what, "sharded: a snapshot not used: {e}"),
        }
    }
    if found.is_none() && first <= 1 {
        found = Some((0, Engine::new(cfg.clone())));
    }
    let (from, mut scratch) = found.ok_or_else(|| {
        format!(
            "no snapshot holding partition {p} at or after record {} (where this node's log starts) is there yet",
            first.saturating_sub(1)
        )
    })?;
    let parts: Vec<usize> = wanted
        .into_iter()
        .filter(|q| scratch.units_held().get(*q).copied().unwrap_or(false))
        .collect();
    let held = scratch.units_held();
    for (q, h) in held.into_iter().enumerate() {
        if h && !parts.contains(&q) {
            scratch.release_partition(q);
        }
    }
    let replayed = replay_log(log_dir, &mut scratch, from, upto)?;
    Ok((from, upto, scratch, replayed, parts))
}

/// Applies the events of the log records after `from` up to `to` (both record numbers) to
/// `scratch`; the number applied. Reads no further than `to`: the core may be appending.
fn replay_log(dir: &Path, scratch: &mut Engine, from: u64, to: u64) -> Result<u64, String> {
    if to <= from {
        return Ok(0);
    }
    let mut reader = LogReader::open(dir).map_err(|e| e.to_string())?;
    reader.skip_to(from + 1);
    let (mut next, mut replayed) = (from + 1, 0u64);
    while let Some((seq, kind, payload)) = reader.read_next_ref().map_err(|e| e.to_string())? {
        if seq < next {
            continue;
        }
        if seq > next {
            // Retention deleted the segment holding it since the snapshot was chosen.
            return Err(format!(
                "the log no longer holds record {next} (it now starts at {seq})"
            ));
        }
        if kind == KIND_EVENT {
            let Some((_, stored, _)) = split_event(payload) else {
                return Err(format!("log record {seq} is unreadable"));
            };
            let ev = load_event(scratch.schema(), stored)?;
            let _ = scratch.apply(&ev);
            replayed += 1;
        }
        if kind == KIND_ERASURE {
            super::erasure::replay_erasure(scratch, payload, seq, true)?;
        }
        if seq >= to {
            return Ok(replayed);
        }
        next = seq + 1;
    }
    Err(format!(
        "the log ended before record {to} (a rebuild reads its own records up to there)"
    ))
}

/// Why a partition was not rebuilt now.
pub(super) enum NotYet {
    /// What it needs is being read from the object store: asked again soon.
    Waiting(String),
    /// Tried again after `REBUILD_RETRY`.
    Failed(String),
}

impl From<String> for NotYet {
    fn from(e: String) -> NotYet {
        NotYet::Failed(e)
    }
}

/// Partitions rebuilt during a run: their engines (adopted after the run), each with the
/// partitions it brings, and their shares of the run's events, by (partition, sequence number).
#[derive(Default)]
struct Rebuilt {
    engines: Vec<(Vec<usize>, Engine)>,
    shares: HashMap<(usize, u64), Vec<Value>>,
}

impl Rebuilt {
    fn holds(&self, p: usize) -> bool {
        self.engines.iter().any(|(parts, _)| parts.contains(&p))
    }

    fn share(&mut self, p: usize, seq: u64) -> Option<Vec<Value>> {
        self.shares.remove(&(p, seq))
    }
}

/// An engine restored from a server snapshot's bytes, if it holds partition `p` (read from the
/// header before restoring).
fn restore_holding(cfg: &argus_engine::Config, bytes: &[u8], p: usize) -> Result<Engine, String> {
    if snapshot_held(bytes)?.is_some_and(|h| !h.get(p).copied().unwrap_or(false)) {
        return Err(format!("does not hold partition {p}"));
    }
    let (_, eng) = decode_snapshot(bytes)?;
    let e = Engine::restore(cfg.clone(), eng).map_err(|e| e.to_string())?;
    if e.units_held().get(p).copied().unwrap_or(false) {
        Ok(e)
    } else {
        Err(format!("does not hold partition {p}"))
    }
}
