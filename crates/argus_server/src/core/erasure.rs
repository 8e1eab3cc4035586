//! Erasure of a subject's personal data (P3.6) on this node: the event log, the state, the
//! snapshots, the findings and the vault. The case store and the exports are scrubbed by the HTTP
//! handler after this returns (`crate::erasure`).
//!
//! A subject is a personal-data value (an email, a phone, a card…): Argus only ever keeps its token
//! (HMAC-SHA256, `tk_` and 32 hex digits). Erasure gives the subject a new random pseudonym of the
//! same shape and renames the token to it everywhere: what no one can compute from the clear value,
//! since it is random and kept nowhere. The log's records keep their lengths (and the decision
//! index its locations); the feature state of every key that held the token is deleted (and so is
//! the same key with the pseudonym, which a replay of the renamed log builds), so the subject's
//! history no longer answers for the value if it comes back, while every aggregate other subjects'
//! rules read (a device's distinct emails, a card's users) stays the same. A `KIND_ERASURE` record
//! says so in the log, so that a replay deletes the same keys at the same point. Then a snapshot
//! is written at once and the older ones are deleted.
//!
//! In a sharded cluster the log is renamed later, at a second entry (`finish_erasure`): until every
//! unit's holder shares a snapshot taken after the erasure, a partition may still be rebuilt from
//! an older one, replaying this node's log across the erasure's record, which must then still name
//! the token and its keys.

use super::*;
use std::collections::HashMap;

/// The file that says an erasure entry is being applied on this node (see `Core::rename_subject`).
pub(crate) fn erasing_marker(data: &std::path::Path) -> std::path::PathBuf {
    data.join("erasing")
}

/// A random pseudonym of a token's shape.
pub(crate) fn pseudonym() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no randomness for a pseudonym".to_string())?;
    Ok(format!(
        "tk_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

impl Core {
    /// The token a personal-data value of entity kind `kind` is kept as.
    fn subject_token(&self, kind: &str, value: &str) -> Result<String, Answer> {
        let schema = self.engine.schema().clone();
        let typed = schema.types.iter().filter(|t| !t.internal).find_map(|t| {
            t.fields
                .iter()
                .position(|f| f.entity.as_deref() == Some(kind) && f.pii)
                .map(|s| (t, s))
        });
        let Some((et, slot)) = typed else {
            return Err(error(
                Failure::Invalid,
                "not_personal_data",
                format!(
                    "`{kind}` is not a kind of personal data Argus tokenizes; erase the subject's emails, phones, cards, addresses or IPs (a user id is the shop's own pseudonym)"
                ),
            ));
        };
        // `value` is the request's JSON text (`erasure::ErasureBody`): a string, or an address
        // as the object events send, whose token is that of the object, not of any one string.
        let normalized = match crate::erasure::subject_value(value) {
            serde_json::Value::String(s) => self.engine.decoder().field_value(et, slot, &s),
            o => self.engine.decoder().field_value_json(et, slot, &o),
        };
        match normalized {
            Ok(Value::Str(s)) if s.starts_with("tk_") => Ok(s.to_string()),
            Ok(_) => Err(error(
                Failure::Invalid,
                "not_personal_data",
                format!("`{kind}` values are not tokenized"),
            )),
            Err(e) => Err(error(
                Failure::Invalid,
                e.code,
                format!("not a valid {kind}: {}", e.message),
            )),
        }
    }

    /// Erases a subject: see the module's comment. The answer's `token` and `pseudonym` are for
    /// the handler (the case store's scrub), which takes them out before answering.
    pub(super) fn erase(&mut self, kind: &str, value: &str) -> Answer {
        let token = match self.subject_token(kind, value) {
            Ok(t) => t,
            Err(a) => return a,
        };
        let new = match pseudonym() {
            Ok(p) => p,
            Err(e) => return error(Failure::Internal, "internal_error", e),
        };
        self.rename_subject(&token, &new, &[], None)
    }

    /// In a cluster, before the erasure's entry is appended: the subject's token and the keys its
    /// renaming to `new` moves, as this node's log shows them (every node moves these, so that a
    /// node whose own log begins later — it started from a shared snapshot — moves the same keys).
    /// Reads the log; changes nothing.
    pub(super) fn erasure_plan(&mut self, kind: &str, value: &str, new: &str) -> Answer {
        let token = match self.subject_token(kind, value) {
            Ok(t) => t,
            Err(a) => return a,
        };
        let map: HashMap<String, String> = [(token.clone(), new.to_string())].into();
        let logged = match self.logged_holding(&token, None, 0) {
            Ok((logged, _, _)) => logged,
            Err(e) => {
                return error(
                    Failure::Internal,
                    "erasure_failed",
                    format!("reading the event log: {e}"),
                )
            }
        };
        let moves: Vec<String> = self
            .engine
            .erasure_moves(&map, &logged)
            .into_iter()
            .map(|k| key_text(&k))
            .collect();
        ok(json!({"token": token, "moves": moves, "record": self.wal.last_seq()}))
    }

    /// The events of this node's log after record `after` that carry `token`, as logged; with
    /// `map`, every record holding it is rewritten with the new value (and counted: records,
    /// occurrences).
    fn logged_holding(
        &mut self,
        token: &str,
        map: Option<&HashMap<String, String>>,
        after: u64,
    ) -> Result<(Vec<argus_event::Event>, u64, u64), crate::wal::WalError> {
        let schema = self.engine.schema().clone();
        let needle = token.as_bytes().to_vec();
        let mut logged = Vec::new();
        let mut in_log = 0u64;
        // Everything appended so far is written and the open segment closed before the rewrite.
        let records = self.wal.rewrite(|seq, kind, payload| {
            if !payload
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
            {
                return false;
            }
            if kind == KIND_EVENT && seq > after {
                if let Some(ev) =
                    split_event(payload).and_then(|(_, st, _)| record::load_event(&schema, st).ok())
                {
                    logged.push(ev);
                }
            }
            match map {
                Some(map) => {
                    in_log += argus_engine::engine::replace_all(payload, map) as u64;
                    if kind == KIND_ERASURE {
                        // The token's keys are digests of it: they go with it.
                        blank_old_keys(payload);
                    }
                    true
                }
                None => false,
            }
        })?;
        Ok((logged, records, in_log))
    }

    /// Renames `token` to `new` on this node (see the module's comment), moving `more` and the
    /// keys the log shows: on a single node (`entry`: None) all of it. In a cluster, `entry` is the
    /// shared log's entry of the erasure and the record its entry node's plan read up to: the keys
    /// come from the plan (`more`) and from this log's records after that one (the same records on
    /// every node), so every node moves the same keys whatever its own log holds; the entry's
    /// cursor is recorded before the snapshot of the renamed state, so that the snapshot covers it.
    pub(super) fn rename_subject(
        &mut self,
        token: &str,
        new: &str,
        more: &[argus_engine::engine::KeyMove],
        entry: Option<(u64, u64)>,
    ) -> Answer {
        let Some((seq, planned)) = entry else {
            return self.rename_subject_here(token, new, more, None);
        };
        // In a cluster a node that cannot apply the entry whole must not go past it: it would
        // keep the token, or move other keys than the others. It stops (refusing writes, its
        // cursor before the entry), and a marker makes it refuse to start on this data directory
        // until it is started empty (it then restores the renamed shared snapshot).
        if self.wal.first_seq() > planned + 1 {
            let why = format!(
                "the erasure of entry {seq} needs this node's log from record {} (the asking node's plan read up to {planned}), and it begins at {}",
                planned + 1,
                self.wal.first_seq()
            );
            self.fail(why.clone());
            return error(Failure::Internal, "erasure_failed", why);
        }
        let marker = erasing_marker(&self.settings.data_dir);
        if let Err(e) = argus_engine::engine::write_atomically(&marker, seq.to_string().as_bytes())
        {
            let why = format!("writing {}: {e}", marker.display());
            self.fail(why.clone());
            return error(Failure::Internal, "erasure_failed", why);
        }
        let a = self.rename_subject_here(token, new, more, Some((seq, planned)));
        if let Answer::Failed(e) = &a {
            self.fail(format!("the erasure of entry {seq}: {}", e.message));
            return a;
        }
        if let Err(e) = std::fs::remove_file(&marker)
            .and_then(|_| std::fs::File::open(&self.settings.data_dir).and_then(|d| d.sync_all()))
        {
            tracing::warn!("removing {}: {e}", marker.display());
        }
        a
    }

    /// [`rename_subject`](Self::rename_subject) on this node's data.
    fn rename_subject_here(
        &mut self,
        token: &str,
        new: &str,
        more: &[argus_engine::engine::KeyMove],
        entry: Option<(u64, u64)>,
    ) -> Answer {
        let token = token.to_string();
        let new = new.to_string();
        let map: HashMap<String, String> = [(token.clone(), new.clone())].into();
        let after = entry.map_or(0, |(_, planned)| planned);
        // A sharded node renames its log only at the erasure's second entry (`finish_erasure`).
        let defer = entry.is_some() && self.shard().is_some();
        let rewritten = self.logged_holding(&token, (!defer).then_some(&map), after);
        let (logged, records, in_log) = match rewritten {
            Ok(r) => r,
            Err(e) => {
                // Some segments may be rewritten and others not: the request can be repeated (it
                // renames what still holds the token).
                return error(
                    Failure::Internal,
                    "erasure_failed",
                    format!("rewriting the event log: {e}; repeat the request"),
                );
            }
        };
        let mut keys: std::collections::BTreeSet<_> = more.iter().copied().collect();
        keys.extend(self.engine.erasure_moves(&map, &logged));
        let keys: Vec<_> = keys.into_iter().collect();
        let deleted = match self.engine.erase_subject(&map, &keys) {
            Ok(n) => n,
            Err(e) => {
                self.fail(format!("erasure left the state torn: {e}"));
                return error(Failure::Internal, "erasure_failed", e);
            }
        };
        // The record a replay applies: with the token while the log still holds it, else as the
        // renaming leaves it (the pseudonym, the pseudonym's keys).
        let mut record = erasure_record(&token, &new, &keys);
        if !defer {
            argus_engine::engine::replace_all(&mut record, &map);
            blank_old_keys(&mut record);
        }
        if let Err(e) = self.wal.append(KIND_ERASURE, &record) {
            self.fail(format!("event log: {e}"));
            return error(
                Failure::Internal,
                "erasure_failed",
                format!("the event log: {e}"),
            );
        }
        // The list changes made through the API.
        let renamed: Vec<_> = self
            .overlay
            .keys()
            .filter(|(_, v)| *v == token)
            .cloned()
            .collect();
        for (list, v) in renamed {
            if let Some(item) = self.overlay.remove(&(list.clone(), v)) {
                self.overlay.insert((list, new.clone()), item);
            }
        }
        // A reason typed with a list change may name the token too.
        for item in self.overlay.values_mut().flatten() {
            if item.reason.contains(&token) {
                item.reason = item.reason.replace(&token, &new);
            }
        }
        let findings = match self.findings.rename(&map) {
            Ok(n) => n,
            Err(e) => {
                return error(
                    Failure::Internal,
                    "erasure_failed",
                    format!("rewriting the findings: {e}; repeat the request"),
                )
            }
        };
        // A snapshot of the renamed state now (a copy in progress began before the renaming: it is
        // dropped); every older snapshot (which holds the token) goes, once the new one is there.
        if let Some((seq, _)) = entry {
            if let Outcome::Answer(a) = self.cursor(seq) {
                if self.stream_cursor < seq {
                    return a;
                }
            }
        }
        self.copying = None;
        self.since_snap = self.since_snap.max(1);
        self.housekeeping(true, true);
        let dir = snapshots::snapshot_dir(&self.settings.data_dir);
        let all = snapshots::snapshots(&self.settings.data_dir);
        let newest = all.iter().map(|(s, _)| *s).max();
        if newest != Some(self.wal.last_seq()) {
            return error(
                Failure::Internal,
                "erasure_failed",
                format!(
                    "the snapshot of the renamed state was not written (newest covers {:?}, the log is at {}); the older snapshots are kept: repeat the request",
                    newest,
                    self.wal.last_seq()
                ),
            );
        }
        let mut replaced = 0;
        for (seq, path) in &all {
            if Some(*seq) != newest && std::fs::remove_file(path).is_ok() {
                replaced += 1;
            }
        }
        // Leftovers of an interrupted copy, if any, hold old bytes too.
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.ends_with(".tmp") || n.ends_with(".spill") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // The deletions are durable before the answer: a power cut must not bring a snapshot back.
        if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            return error(
                Failure::Internal,
                "erasure_failed",
                format!("syncing {}: {e}", dir.display()),
            );
        }
        ok(json!({
            "token": token,
            "pseudonym": new,
            "entry": entry.map(|(seq, _)| seq),
            "sequence": self.engine.sequence(),
            "found": {
                "log_records": records,
                "log_occurrences": in_log,
                "events": logged.len(),
                "state_keys": deleted,
                "findings": findings,
                "snapshots_replaced": replaced,
            }
        }))
    }
}

impl Core {
    /// In a sharded cluster, the erasure's second entry (`entry`; the erasure's own is `erasure`):
    /// renames `token` to `new` in this node's log up to the erasure's record (the record keeps
    /// only the pseudonym and its keys), not after it — events of the value that came since are its
    /// new history and keep the token, as on a node that renamed its log at once. Every unit's
    /// holder shares a snapshot taken after the erasure by now, so no partition is rebuilt across
    /// its record any more (a rebuild that would is refused: [`replay_erasure`]). A log without the
    /// record (renamed already by an earlier second entry, or beginning after it) is left as it is.
    /// Then a snapshot covering this entry, which is erased from the stream with the first: a node
    /// started from the shared snapshot must begin after it.
    pub(super) fn finish_erasure(
        &mut self,
        token: &str,
        new: &str,
        entry: u64,
        erasure: u64,
    ) -> Answer {
        let header = format!("{token} {new}\n").into_bytes();
        let mut upto = None;
        let found = self.wal.rewrite(|seq, kind, payload| {
            if kind == KIND_ERASURE && payload.starts_with(&header) {
                upto = Some(seq);
            }
            false
        });
        let renamed = match (found, upto) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Ok((0, 0)),
            (Ok(_), Some(upto)) => {
                let map: HashMap<String, String> = [(token.to_string(), new.to_string())].into();
                let needle = token.as_bytes();
                let mut in_log = 0u64;
                self.wal
                    .rewrite(|seq, kind, payload| {
                        if seq > upto || !payload.windows(needle.len()).any(|w| w == needle) {
                            return false;
                        }
                        in_log += argus_engine::engine::replace_all(payload, &map) as u64;
                        if kind == KIND_ERASURE {
                            blank_old_keys(payload);
                        }
                        true
                    })
                    .map(|records| (records, in_log))
            }
        };
        let (records, in_log) = match renamed {
            Ok(r) => r,
            Err(e) => {
                // The entry is not applied: this node stops before it, and applies it again when
                // restarted (its cursor is before it).
                let why = format!("renaming the erased subject in the event log: {e}");
                self.fail(why.clone());
                return error(Failure::Internal, "erasure_failed", why);
            }
        };
        if let Outcome::Answer(a) = self.cursor(entry) {
            if self.stream_cursor < entry {
                return a;
            }
        }
        self.copying = None;
        self.since_snap = self.since_snap.max(1);
        self.housekeeping(true, true);
        if let Ok(mut f) = self.shared.erasures_finished.lock() {
            f.insert(erasure, entry);
        }
        ok(json!({
            "entry": entry,
            "found": {"log_records": records, "log_occurrences": in_log}
        }))
    }
}

/// A `KIND_ERASURE` record: `<token> <pseudonym>` on its first line, then one line per key,
/// `<entity>:<the old value's key digest>:<the new value's>` (32 hex digits each).
pub(crate) fn erasure_record(
    token: &str,
    new: &str,
    keys: &[argus_engine::engine::KeyMove],
) -> Vec<u8> {
    let mut out = format!("{token} {new}\n");
    for k in keys {
        out.push_str(&key_text(k));
        out.push('\n');
    }
    out.into_bytes()
}

/// An erasure's key as text: `<entity>:<the old value's key digest>:<the new value's>` (32 hex
/// digits each), as in its log record and its shared-log entry.
pub(crate) fn key_text((e, f, t): &argus_engine::engine::KeyMove) -> String {
    format!("{e}:{f:032x}:{t:032x}")
}

/// The key [`key_text`] wrote (`None`: not one).
pub(crate) fn key_of(text: &str) -> Option<argus_engine::engine::KeyMove> {
    let mut it = text.split(':');
    let e = it.next()?.parse().ok()?;
    let f = u128::from_str_radix(it.next()?, 16).ok()?;
    let t = u128::from_str_radix(it.next()?, 16).ok()?;
    it.next().is_none().then_some((e, f, t))
}

/// Zeroes the old value's key digests of a `KIND_ERASURE` record in place (the same length).
fn blank_old_keys(record: &mut [u8]) {
    let mut lines = record.split_mut(|b| *b == b'\n');
    lines.next();
    for line in lines {
        let mut fields = line.split_mut(|b| *b == b':');
        fields.next();
        if let Some(old) = fields.next() {
            old.fill(b'0');
        }
    }
}

/// The token, the pseudonym and the keys of a `KIND_ERASURE` record.
pub(crate) fn parse_erasure_record(
    record: &[u8],
) -> Result<(String, String, Vec<argus_engine::engine::KeyMove>), String> {
    let text = std::str::from_utf8(record).map_err(|_| "an erasure record is not text")?;
    let mut lines = text.lines();
    let bad = || "an erasure record is damaged".to_string();
    let (token, new) = lines
        .next()
        .and_then(|l| l.split_once(' '))
        .ok_or_else(bad)?;
    let keys = lines
        .map(|l| key_of(l).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    Ok((token.to_string(), new.to_string(), keys))
}

/// Applies a logged erasure to `engine` (a replay: recovery, or a sharded node's rebuild). With
/// `before_snapshot_refused` (a rebuild), a record whose token the log no longer names is refused:
/// the snapshot the replay started from is older than the erasure and may hold the token, which
/// only a snapshot taken after it does not.
pub(crate) fn replay_erasure(
    engine: &mut argus_engine::Engine,
    record: &[u8],
    seq: u64,
    before_snapshot_refused: bool,
) -> Result<usize, String> {
    let (token, new, keys) = parse_erasure_record(record)?;
    if before_snapshot_refused && token == new {
        return Err(format!(
            "the snapshot is older than the erasure at record {seq}, which the log no longer names: a snapshot taken after it is needed"
        ));
    }
    let map: HashMap<String, String> = [(token, new)].into();
    engine.erase_subject(&map, &keys)
}
