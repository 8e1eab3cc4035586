//! Snapshots: the incremental copy between groups, the background write, retention, and the files.

use super::*;
use std::io::Write;

#[derive(Serialize, Deserialize, Default)]
pub(super) struct Extras {
    /// Last log sequence number the snapshot covers.
    pub(super) seq: u64,
    pub(super) overlay: BTreeMap<(String, String), Option<OverlayItem>>,
    /// In a cluster: the cluster log's entries the snapshot covers.
    pub(super) stream_cursor: u64,
    /// The blast-radius guard as of `seq` (with the settings it learned under), when it is on: a
    /// versioned blob of its own ([`encode_guard`]), so that a later change of the guard's state
    /// makes it unused (the guard is then rebuilt from the log), never the snapshot unreadable.
    pub(super) guard: Option<Vec<u8>>,
    /// In a cluster: what runs as of `seq` (`lifecycle::PolicyState`, encoded with its layout).
    pub(super) policies: Option<Vec<u8>>,
}

/// The extras before the policy state was kept in them.
#[derive(Serialize, Deserialize)]
struct ExtrasV4 {
    seq: u64,
    overlay: BTreeMap<(String, String), Option<OverlayItem>>,
    stream_cursor: u64,
    guard: Option<Vec<u8>>,
}

/// The layout of the guard's state in [`Extras::guard`].
/// 2: the decisions observed, and each trip's `paused_from` (`[lifecycle.guard] pause_after`).
const GUARD_STATE_VERSION: u32 = 2;

pub(super) fn encode_guard(g: &argus_lifecycle::Guard) -> Option<Vec<u8>> {
    bincode::serialize(&(GUARD_STATE_VERSION, g.state())).ok()
}

/// The guard's state in a snapshot, if it is of this release's layout or layout 1 (converted: a
/// rule it paused stays paused, even when the decisions that tripped it are no longer in the log).
pub(super) fn decode_guard(bytes: &[u8]) -> Option<argus_lifecycle::GuardState> {
    let whole = |size: bincode::Result<u64>| size.ok() == Some(bytes.len() as u64);
    match bincode::deserialize::<(u32, argus_lifecycle::GuardState)>(bytes) {
        Ok((GUARD_STATE_VERSION, s))
            if whole(bincode::serialized_size(&(GUARD_STATE_VERSION, &s))) =>
        {
            Some(s)
        }
        _ => match bincode::deserialize::<(u32, argus_lifecycle::GuardStateV1)>(bytes) {
            Ok((1, s)) if whole(bincode::serialized_size(&(1u32, &s))) => Some(s.current()),
            _ => {
                tracing::warn!("the snapshot's guard state is of another layout: the guard is rebuilt from the log");
                None
            }
        },
    }
}

/// The extras of snapshots that kept the guard's state bare (for a few commits; see
/// [`Extras::guard`]).
#[derive(Serialize, Deserialize)]
struct ExtrasV3 {
    seq: u64,
    overlay: BTreeMap<(String, String), Option<OverlayItem>>,
    stream_cursor: u64,
    /// Layout 1 (those commits came before `pause_after`).
    guard: Option<argus_lifecycle::GuardStateV1>,
}

/// The extras of snapshots written before the guard's state was kept in them.
#[derive(Deserialize)]
struct ExtrasV2 {
    seq: u64,
    overlay: BTreeMap<(String, String), Option<OverlayItem>>,
    stream_cursor: u64,
}

/// The extras of snapshots written before clusters (no cursor).
#[derive(Deserialize)]
struct ExtrasV1 {
    seq: u64,
    overlay: BTreeMap<(String, String), Option<OverlayItem>>,
}

/// Records (keys, and four times as many idempotency ids) copied per step of a snapshot.
pub(super) const COPY_STEP: usize = 512;
/// Steps are at least this far apart while requests are waiting (back to back when idle), so that a
/// snapshot takes a bounded share of the core.
pub(super) const STEP_EVERY: Duration = Duration::from_millis(5);
/// Index entries of deleted segments dropped per group.
pub(super) const UNINDEX_STEP: usize = 8192;

pub(super) fn snapshot_dir(data: &Path) -> PathBuf {
    data.join("snapshots")
}

/// Snapshots in the data directory, newest first.
pub(crate) fn snapshots(data: &Path) -> Vec<(u64, PathBuf)> {
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

/// Writes `SNAP_MAGIC | extras length | extras | engine snapshot | crc32(all before)` to `w` as it is
/// encoded: the engine's state is streamed, never built whole in memory beside the copy it is
/// written from.
pub(super) fn write_snapshot(
    extras: &Extras,
    engine: argus_engine::PendingSnapshot,
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let ex = bincode::serialize(extras).map_err(std::io::Error::other)?;
    let mut c = argus_engine::engine::CrcWriter::new(&mut *w);
    c.write_all(SNAP_MAGIC)?;
    c.write_all(&(ex.len() as u64).to_le_bytes())?;
    c.write_all(&ex)?;
    engine.write_to(&mut c)?;
    let crc = c.finish();
    w.write_all(&crc.to_le_bytes())
}

/// What a snapshot file covers: the node log's last record and the shared log's cursor (checked:
/// magic and checksum).
pub(crate) fn snapshot_position(bytes: &[u8]) -> Result<(u64, u64), String> {
    decode_snapshot(bytes).map(|(x, _)| (x.seq, x.stream_cursor))
}

pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<(Extras, &[u8]), String> {
    if bytes.len() < 20 || &bytes[..8] != SNAP_MAGIC {
        return Err("not an Argus server snapshot".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let n = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "short")?) as usize;
    let ex = body.get(16..16usize.saturating_add(n)).ok_or("truncated")?;
    // Each layout is taken only if it is the whole of the extras (the older ones are prefixes of
    // the newer).
    let whole = |size: bincode::Result<u64>| size.ok() == Some(n as u64);
    let extras = if let Some(x) = bincode::deserialize::<Extras>(ex)
        .ok()
        .filter(|x| whole(bincode::serialized_size(x)))
    {
        x
    } else if let Some(v4) = bincode::deserialize::<ExtrasV4>(ex)
        .ok()
        .filter(|v| whole(bincode::serialized_size(v)))
    {
        Extras {
            seq: v4.seq,
            overlay: v4.overlay,
            stream_cursor: v4.stream_cursor,
            guard: v4.guard,
            policies: None,
        }
    } else if let Some(v3) = bincode::deserialize::<ExtrasV3>(ex)
        .ok()
        .filter(|v| whole(bincode::serialized_size(v)))
    {
        // The guard's state was kept bare for a while (layout 1): carried over in the versioned
        // blob, converted.
        let guard = v3
            .guard
            .and_then(|s| bincode::serialize(&(GUARD_STATE_VERSION, s.current())).ok());
        Extras {
            seq: v3.seq,
            overlay: v3.overlay,
            stream_cursor: v3.stream_cursor,
            guard,
            policies: None,
        }
    } else if let Some(v2) = bincode::deserialize::<ExtrasV2>(ex).ok().filter(|v| {
        whole(bincode::serialized_size(&(
            &v.seq,
            &v.overlay,
            &v.stream_cursor,
        )))
    }) {
        Extras {
            seq: v2.seq,
            overlay: v2.overlay,
            stream_cursor: v2.stream_cursor,
            guard: None,
            policies: None,
        }
    } else {
        match bincode::deserialize::<ExtrasV1>(ex) {
            Ok(v1) if whole(bincode::serialized_size(&(&v1.seq, &v1.overlay))) => Extras {
                seq: v1.seq,
                overlay: v1.overlay,
                stream_cursor: 0,
                guard: None,
                policies: None,
            },
            Ok(_) => return Err("the snapshot's extras are of no known layout".into()),
            Err(e) => return Err(e.to_string()),
        }
    };
    Ok((extras, &body[16 + n..]))
}

impl Core {
    /// Finishes a background snapshot, applies retention, and starts a new snapshot when due.
    /// `idle`: called because no request arrived for a while; `force`: at shutdown, do everything now.
    pub(super) fn housekeeping(&mut self, force: bool, idle: bool) {
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
        let due = self.snapshot_soon
            || self.since_snap > 0
                && (force
                    || self.since_snap >= self.settings.snapshot_every_events
                    || self.last_snap.elapsed() >= self.settings.snapshot_interval);
        if !due || self.snap_job.is_some() {
            return;
        }
        let t = Instant::now();
        // The copied records spill to an unlinked file beside the snapshots, so that a copy holds
        // its index in memory, not a second state.
        let dir = snapshot_dir(&self.settings.data_dir);
        let _ = std::fs::create_dir_all(&dir);
        self.copying = Some(self.engine.begin_copy(Some(&dir)));
        self.copy_from = (self.wal.last_seq(), self.engine.feature_state().key_count());
        // Steps pace themselves on the records applied since the copy began, not since the last copy.
        self.applied_since_step = 0;
        self.last_step = Instant::now();
        m::observe(m::SNAPSHOT_PAUSE, t.elapsed().as_secs_f64());
        self.since_snap = 0;
        self.snapshot_soon = false;
        self.last_snap = Instant::now();
        if force {
            self.housekeeping(true, true);
        }
    }

    /// The copy is complete: take the consistent state (the keys changed during the copy are copied
    /// again), and encode and write it on another thread (on this one when `now`).
    pub(super) fn finish_snapshot(&mut self, c: argus_engine::EngineCopy, now: bool) {
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
        m::set_gauge(m::SNAPSHOT_COPY_BYTES, pending.state_bytes() as f64);
        if let Some(e) = pending.spill_error() {
            tracing::warn!("the snapshot copy kept its records in memory: {e}");
        }
        let guard = &self.lifecycle.guard;
        let extras = Extras {
            seq,
            overlay: self.overlay.clone(),
            stream_cursor: self.stream_cursor,
            guard: guard.cfg.enabled.then(|| encode_guard(guard)).flatten(),
            policies: self
                .settings
                .cluster
                .is_some()
                .then(|| lifecycle::encode_policy_state(&self.policy_state())),
        };
        m::observe(m::SNAPSHOT_PAUSE, t.elapsed().as_secs_f64());
        let dir = snapshot_dir(&self.settings.data_dir);
        let job = move || -> Result<u64, String> {
            let path = dir.join(format!("snap-{seq:020}.bin"));
            argus_engine::engine::write_atomically_with(&path, |w| {
                write_snapshot(&extras, pending, w)
            })
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

/// The feature partitions a server snapshot's engine held (`None`: all of them).
pub(crate) fn snapshot_held(bytes: &[u8]) -> Result<Option<Vec<bool>>, String> {
    let (_, eng) = decode_snapshot(bytes)?;
    Engine::held_in_snapshot(eng).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot's bytes around `extras` (already encoded) and an engine part.
    fn framed(extras: &[u8], engine: &[u8]) -> Vec<u8> {
        let mut b = SNAP_MAGIC.to_vec();
        b.extend_from_slice(&(extras.len() as u64).to_le_bytes());
        b.extend_from_slice(extras);
        b.extend_from_slice(engine);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Snapshots written by earlier releases still restore: without a cursor (before clusters) and
    /// without the guard's state (before it was kept); the newest layout keeps the guard's state.
    #[test]
    fn every_layout_of_the_extras_decodes() {
        let overlay: BTreeMap<(String, String), Option<OverlayItem>> =
            [(("blocked".to_string(), "k".to_string()), None)].into();
        let engine = b"engine bytes";
        let v1 = bincode::serialize(&(7u64, &overlay)).unwrap();
        let v2 = bincode::serialize(&(7u64, &overlay, 9u64)).unwrap();
        let mut g = argus_lifecycle::Guard::new(Default::default());
        for actor in 0..30 {
            g.observe("order.create", actor, true, &[("r", true)]);
        }
        assert_eq!(g.paused().collect::<Vec<_>>(), ["r"], "a rule is paused");
        let v4 = bincode::serialize(&ExtrasV4 {
            seq: 7,
            overlay: overlay.clone(),
            stream_cursor: 9,
            guard: encode_guard(&g),
        })
        .unwrap();
        let policies = lifecycle::PolicyState {
            installed: Some((
                [("a.toml".to_string(), "x".to_string())].into(),
                "v2".into(),
            )),
            ..Default::default()
        };
        let v5 = bincode::serialize(&Extras {
            seq: 7,
            overlay: overlay.clone(),
            stream_cursor: 9,
            guard: encode_guard(&g),
            policies: Some(lifecycle::encode_policy_state(&policies)),
        })
        .unwrap();
        // Layout 1 of the guard's state, as the snapshots of before `pause_after` hold it (the
        // current state without its new fields).
        let v1_state: argus_lifecycle::GuardStateV1 =
            serde_json::from_value(serde_json::to_value(g.state()).unwrap()).unwrap();
        let bare = bincode::serialize(&ExtrasV3 {
            seq: 7,
            overlay: overlay.clone(),
            stream_cursor: 9,
            guard: Some(v1_state.clone()),
        })
        .unwrap();
        let v4_layout1 = bincode::serialize(&ExtrasV4 {
            seq: 7,
            overlay: overlay.clone(),
            stream_cursor: 9,
            guard: bincode::serialize(&(1u32, &v1_state)).ok(),
        })
        .unwrap();
        // Converted: the same settings and windows, its paused rule paused (from decision 0),
        // no decision counted.
        let converted = v1_state.clone().current();
        assert!(converted.clone() != g.state(), "the count differs");
        let restored = argus_lifecycle::Guard::from_state(&Default::default(), converted.clone())
            .expect("learned under the default settings");
        assert_eq!(
            restored.paused().collect::<Vec<_>>(),
            g.paused().collect::<Vec<_>>()
        );
        for (bytes, cursor, guard, kept) in [
            (v1, 0, None, None),
            (v2, 9, None, None),
            (bare, 9, Some(converted.clone()), None),
            (v4_layout1, 9, Some(converted.clone()), None),
            (v4, 9, Some(g.state()), None),
            (v5, 9, Some(g.state()), Some(policies.clone())),
        ] {
            let framed = framed(&bytes, engine);
            let (x, rest) = decode_snapshot(&framed).unwrap();
            assert_eq!((x.seq, x.stream_cursor), (7, cursor));
            assert_eq!(x.overlay, overlay);
            assert_eq!(x.guard.as_deref().and_then(decode_guard), guard);
            assert_eq!(
                x.policies
                    .as_deref()
                    .and_then(lifecycle::decode_policy_state),
                kept
            );
            assert_eq!(rest, engine);
        }
        // A guard state of another layout is not used; the snapshot still is.
        let other = bincode::serialize(&Extras {
            seq: 7,
            overlay: overlay.clone(),
            stream_cursor: 9,
            guard: Some(bincode::serialize(&(GUARD_STATE_VERSION + 1, "a later layout")).unwrap()),
            policies: None,
        })
        .unwrap();
        let (x, _) = decode_snapshot(&framed(&other, engine)).unwrap();
        assert_eq!(x.seq, 7);
        assert_eq!(x.guard.as_deref().and_then(decode_guard), None);
        // A damaged length is refused, not read as an older layout.
        let mut bad = bincode::serialize(&(7u64, &overlay, 9u64)).unwrap();
        bad.push(1);
        assert!(decode_snapshot(&framed(&bad[..bad.len() - 3], engine)).is_err());
    }
}
