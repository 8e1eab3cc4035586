//! Start-up: the newest usable snapshot restored, the log opened and checked, the tail replayed
//! through the same path as live events.

use super::*;

impl Core {
    /// Loads configuration and policies, restores the newest usable snapshot and replays the log after
    /// it through the same code path as live events.
    /// `initial`: the configuration and policies already loaded by the caller (else `loader` runs).
    pub fn open(
        settings: Settings,
        loader: Loader,
        initial: Option<Loaded>,
        shared: Arc<Shared>,
        intake: Option<IntakeSink>,
        trips: Option<tokio::sync::mpsc::Sender<argus_lifecycle::Trip>>,
    ) -> Result<(Core, Recovery), StartError> {
        let started = Instant::now();
        let (mut cfg, loaded) = match initial {
            Some(x) => x,
            None => loader().map_err(|e| StartError::Config(format!("{e:#}")))?,
        };
        let sharded = shared.shard.get().is_some();
        if let Some(n) = settings.cluster.as_ref().and_then(|c| c.partitions) {
            // Every node splits the keys alike: `[cluster] partitions`, whatever `[engine]` says.
            cfg.partitions = n;
        }
        if sharded && Engine::new(cfg.clone()).stages_read_features() {
            return Err(StartError::Config(
                "[cluster] partitions: a stage reads the keyed features ([graph.propagation] aggregates), which a sharded node cannot rebuild from its log; remove the aggregates or the partitions".into(),
            ));
        }
        let data = settings.data_dir.clone();
        let marker = erasure::erasing_marker(&data);
        if marker.exists() {
            let entry = std::fs::read_to_string(&marker).unwrap_or_default();
            return Err(StartError::State(format!(
                "an erasure (the shared log's entry {}) was interrupted on this node ({} exists): its log and state may disagree and still hold the subject; move the data directory aside (and delete it) and start the node empty, so that it restores the newest shared snapshot (docs/privacy.md)",
                entry.trim(),
                marker.display()
            )));
        }
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
        // The last record a snapshot shows the log held, and that snapshot: the one restored;
        // one of Argus's (its magic) that does not restore, by its name; one whose contents name
        // another record than its name, by its contents.
        let mut covered_upto: Option<(u64, PathBuf)> = None;
        let mut covered = |seq: u64, path: &Path| {
            if covered_upto.as_ref().is_none_or(|(s, _)| seq > *s) {
                covered_upto = Some((seq, path.to_path_buf()));
            }
        };
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
                    covered(seq, &path);
                    restored = Some((ex, e));
                    break;
                }
                Ok((ex, _)) => {
                    covered(ex.seq, &path);
                    refused.push(format!(
                        "{}: sequence number does not match its name",
                        path.display()
                    ))
                }
                Err(e) => {
                    if bytes.starts_with(SNAP_MAGIC) {
                        covered(seq, &path);
                    }
                    refused.push(format!("{}: {e}", path.display()))
                }
            }
        }
        for r in &refused {
            tracing::warn!("snapshot not used: {r}");
        }
        let (mut extras, mut engine) =
            restored.unwrap_or_else(|| (Extras::default(), Engine::new(cfg.clone())));
        // Live decisions keep `[deadlines]` (recovery replays with the decisions already logged).
        // Not in a cluster: every node decides every entry, and a budget would let nodes decide
        // the same entry differently (docs/cluster.md).
        engine.set_live_deadlines(settings.cluster.is_none());
        if settings.cluster.is_some()
            && cfg
                .deadlines
                .as_ref()
                .is_some_and(|d| d.budget.iter().any(Option::is_some))
        {
            tracing::warn!("[deadlines] in a cluster: a checkpoint's budget bounds the entry node's answer (a late one is answered degraded, `[cluster] fail_open` or `closed_action`), not the stages: every node decides every entry of the shared log with every stage, and must decide it alike");
            let longest = cfg
                .deadlines
                .as_ref()
                .and_then(|d| d.budget.iter().flatten().max().copied());
            if longest.is_some_and(|b| b >= settings.request_timeout) {
                tracing::warn!("[deadlines]: a budget of {longest:?} is not shorter than [server] request_timeout ({:?}): in a cluster the request times out (503 timeout) before such a budget passes", settings.request_timeout);
            }
        }
        // Stages made slow or failing on purpose, to test budgets and degraded decisions.
        if let Some(f) = std::env::var("ARGUS_FAULTS").ok().filter(|f| !f.is_empty()) {
            let faults = argus_engine::deadlines::Faults::parse(&f).map_err(StartError::Config)?;
            tracing::warn!(
                "ARGUS_FAULTS={f}: stages are slow or failing on purpose (testing only)"
            );
            engine.set_faults(faults);
        }
        let mut index = HashMap::new();
        let mut index_order: VecDeque<(Loc, u128)> = VecDeque::new();
        let max_indexed = settings.max_indexed_events;
        let mut heads: Vec<(Loc, EventHead)> = Vec::new();
        let mut tail: Vec<(Loc, Record)> = Vec::new();
        let snap_seq = extras.seq;
        let mut stream_cursor = extras.stream_cursor;
        // The guard goes on from the snapshot's state, with the decisions and resumes logged after
        // it. A snapshot without one (written before it was kept, or learned under other
        // settings): rebuilt from every retained decision and resume, in log order.
        // Without a store a pause could be neither recorded nor resumed: no guard then.
        let lifecycle_cfg = settings.lifecycle.clone();
        let clustered = settings.cluster.is_some();
        let guard_cfg = argus_lifecycle::GuardConfig {
            enabled: lifecycle_cfg.guard.enabled && trips.is_some(),
            ..lifecycle_cfg.guard.clone()
        };
        let saved_guard = extras
            .guard
            .take()
            .and_then(|b| decode_guard(&b))
            .and_then(|s| argus_lifecycle::Guard::from_state(&guard_cfg, s));
        // Records up to this one are in the saved guard already.
        let guard_from = if saved_guard.is_some() { snap_seq } else { 0 };
        let mut guard = saved_guard.unwrap_or_else(|| argus_lifecycle::Guard::new(guard_cfg));
        // In a cluster: what ran as of the snapshot, then as of the last cursor record that kept
        // it (see `lifecycle::PolicyState`).
        let mut kept_policies = extras.policies.take();
        // The log held every record a snapshot covers: damage among them is refused, not cut as
        // a torn tail.
        let kept = covered_upto.as_ref().map_or(0, |(s, _)| *s);
        let (wal, report) = Wal::open_keeping(
            &data.join("log"),
            settings.segment_bytes,
            settings.fsync,
            kept,
            |loc, rec| {
                if rec.kind == KIND_CURSOR {
                    if let Some(b) = rec
                        .payload
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    {
                        stream_cursor = stream_cursor.max(u64::from_le_bytes(b));
                    }
                    if rec.seq > snap_seq && rec.payload.len() > 8 {
                        kept_policies = Some(rec.payload[8..].to_vec());
                    }
                }
                if rec.kind == KIND_GUARD && rec.seq > guard_from {
                    if let Ok(g) = serde_json::from_slice::<lifecycle::GuardRecord>(&rec.payload) {
                        if let Some(rule) = &g.resume {
                            guard.resume(rule);
                        }
                        if let Some(t) = &g.pause {
                            guard.pause(t);
                        }
                    }
                }
                if rec.kind == KIND_EVENT {
                    if rec.seq > guard_from {
                        if let Some((h, _, d)) = split_event(&rec.payload) {
                            lifecycle::guard_replay(&mut guard, h.actor, d);
                        }
                    }
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
        if let Some((s, path)) = covered_upto.filter(|(s, _)| *s > wal.last_seq()) {
            let unused = if refused.is_empty() {
                String::new()
            } else {
                format!(" (snapshots not used: {})", refused.join("; "))
            };
            return Err(StartError::State(format!(
                "the snapshot {} covers record {s} but the event log ends at record {}: the log was truncated or replaced, and acknowledged events would be lost, so Argus refuses to start; restore the log from a backup{unused}",
                path.display(),
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
        // A sharded node takes its events one at a time (each waits for the others' shares).
        let settings_workers = settings.partition_workers.enabled() && !sharded;
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
            workers: settings_workers,
            copy_from: (0, 0),
            index_order,
            findings,
            replaying_seq: 0,
            intake,
            replay_findings: Vec::new(),
            pending_intake: Vec::new(),
            replay_intake: Vec::new(),
            replayed_from: snap_seq + 1,
            rule_hits: HashMap::new(),
            policy_changes: VecDeque::new(),
            lifecycle: lifecycle::LifecycleState {
                guard,
                trips,
                // In a cluster the active version arrives through the shared log like every change.
                awaiting: lifecycle_cfg.source == crate::settings::PolicySource::Console
                    && !clustered,
                ..Default::default()
            },
            stream_cursor,
            shard_announced: None,
            rebuild_failures: HashMap::new(),
            rebuilds: Vec::new(),
            snapshot_soon: false,
        };
        core.shared
            .stream_cursor
            .store(stream_cursor, Ordering::SeqCst);
        for (loc, h) in heads {
            core.remember(Recent { loc, head: h });
        }
        core.install_policies(loaded);
        if clustered {
            if let Some(p) = kept_policies
                .as_deref()
                .and_then(lifecycle::decode_policy_state)
            {
                core.restore_policy_state(p);
            }
        }
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
                            if core.intake.is_some() {
                                if let Some((head, st, d)) = split_event(&r.payload) {
                                    let found = std::mem::take(&mut core.replay_findings);
                                    core.send_intake(r.seq, head.action, st, d, &found, false);
                                }
                            }
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
                KIND_ERASURE => {
                    if let Err(e) =
                        super::erasure::replay_erasure(&mut core.engine, &r.payload, r.seq, false)
                    {
                        tracing::warn!(seq = r.seq, "a logged erasure cannot be replayed: {e}");
                    }
                }
                // Applied to the guard while the log was read.
                KIND_GUARD | KIND_CURSOR => {}
                k => tracing::warn!(seq = r.seq, kind = k, "unknown log record kind skipped"),
            }
            rec.replayed += 1;
        }
        core.since_snap = rec.replayed;
        rec.millis = started.elapsed().as_millis();
        m::set_gauge(m::LOG_SEGMENTS, core.wal.segment_count() as f64);
        core.shared.publish_deadlines(&core.engine.config);
        core.shared.ready.store(true, Ordering::SeqCst);
        Ok((core, rec))
    }

    /// Compiles the overlay of API list changes onto freshly loaded policies and installs them.
    pub(super) fn install_policies(&mut self, loaded: Option<argus_policy::Loaded>) {
        let Some(l) = loaded else {
            self.lifecycle.files.clear();
            *self
                .shared
                .policy_version
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = String::new();
            self.shared.publish_checkpoints(None);
            self.engine.clear_policies();
            return;
        };
        self.lifecycle.files = l.sources.clone();
        let mut ps = l.policies;
        let lists = Arc::make_mut(&mut ps.lists);
        for ((list, key), item) in &self.overlay {
            apply_overlay(lists, list, key, item.as_ref());
        }
        self.decorate(&mut ps);
        *self
            .shared
            .policy_version
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = ps.overrides.version(&ps.version);
        self.shared.publish_checkpoints(Some(&ps));
        if self
            .policy_changes
            .back()
            .is_none_or(|(v, _)| *v != ps.version)
        {
            self.policy_changes
                .push_back((ps.version.clone(), now_ms()));
            if self.policy_changes.len() > 100 {
                self.policy_changes.pop_front();
            }
        }
        self.engine.set_policies(Arc::new(ps));
    }
}
