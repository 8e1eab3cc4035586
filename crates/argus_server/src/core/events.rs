//! Events, batches and labels: decode, bound, process, log, answer.

use super::*;

impl Core {
    pub(super) fn events(
        &mut self,
        items: Vec<Box<serde_json::value::RawValue>>,
        decoded: Vec<Decoded>,
        labels_only: bool,
        batch: bool,
    ) -> Outcome {
        let mut logged = false;
        let mut results = Vec::with_capacity(items.len());
        let mut decoded = decoded.into_iter();
        for raw in &items {
            let pre = decoded.next();
            if let Some(why) = &self.failed {
                // A log failure part-way through a batch: the rest is refused, not applied.
                results.push(error(
                    Failure::Unavailable,
                    "not_accepting_writes",
                    refused(&self.shared, why),
                ));
                continue;
            }
            let out = if labels_only {
                match self.label_envelope(raw.get()) {
                    Ok(raw) => self.event(&raw, true),
                    Err(a) => Outcome::Answer(a),
                }
            } else if let Some(d) = pre {
                self.decoded_event(d, false, Instant::now())
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
        request_outcome(results, logged, batch)
    }

    /// A run of event requests (not labels) handled together: every item is checked at the edge and
    /// against the log's index here, then all the candidates go through [`Engine::run`] (the feature
    /// partitions on worker threads, the same path as replay), then each result is logged and
    /// answered in input order, as [`accept`](Self::accept) would one by one: the same decisions,
    /// records and state (tested). A run in which an id repeats is handled one event at a time
    /// instead (through [`accept`](Self::accept), after the checks above): the repeat must see the
    /// first one in the decision index, as it would one by one.
    ///
    /// If the log fails part-way, the rest of the run is refused (not acknowledged), although its
    /// features were already applied in memory: the core then refuses every write until it is
    /// restarted, and recovery rebuilds the state from the log alone.
    pub(super) fn events_run(&mut self, reqs: Vec<EventsRequest>) -> Vec<Outcome> {
        let t0 = Instant::now();
        // Per request, per item: its answer, once known.
        let mut slots: Vec<Vec<Option<Outcome>>> = Vec::with_capacity(reqs.len());
        let mut batches = Vec::with_capacity(reqs.len());
        let mut cands = Vec::new();
        let mut events = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let mut repeats = false;
        for (r, req) in reqs.into_iter().enumerate() {
            batches.push(req.batch);
            let mut decoded = req.decoded.into_iter();
            let mut row = Vec::with_capacity(req.items.len());
            for (i, raw) in req.items.iter().enumerate() {
                let d = decoded
                    .next()
                    .unwrap_or_else(|| self.engine.decoder().decode_bytes(raw.get().as_bytes()));
                let checked = self
                    .edge(d, false)
                    .and_then(|ev| self.prepare(&ev, t0).map(|c| (ev, c)));
                match checked {
                    Ok((ev, c)) => {
                        repeats |= !ids.insert(c.idh);
                        row.push(None);
                        cands.push((r, i, c));
                        events.push(ev);
                    }
                    Err(a) => row.push(Some(Outcome::Answer(a))),
                }
            }
            slots.push(row);
        }
        if repeats {
            for ((r, i, c), ev) in cands.into_iter().zip(events) {
                let out = match &self.failed {
                    Some(why) => Outcome::Answer(error(
                        Failure::Unavailable,
                        "not_accepting_writes",
                        refused(&self.shared, why),
                    )),
                    None => self.accept(ev, None, c.t0),
                };
                slots[r][i] = Some(out);
            }
        } else {
            let start = Instant::now();
            let keep = self.lifecycle.guard.cfg.enabled;
            let mut src = Collect {
                events: events.into_iter(),
                results: Vec::with_capacity(cands.len()),
                keep,
                kept: Vec::new(),
            };
            let times = match self.engine.run(&mut src) {
                Ok(t) => t,
                Err(never) => match never {},
            };
            m::observe(m::PARTITION_WAIT_SECONDS, times.wait);
            let mut kept = src.kept.into_iter();
            let mut tripped = false;
            for ((r, i, mut c), (mut res, done)) in cands.into_iter().zip(src.results) {
                let k = if keep { kept.next().flatten() } else { None };
                // A guard's pause took effect at an earlier event of this run: decide this one
                // again under the pause, as one-at-a-time handling would have.
                if tripped {
                    if let (Ok((Some(d), _)), Some((ev, features))) = (&mut res, &k) {
                        if let Some(again) = self.engine.decide_with(ev, features) {
                            *d = again;
                        }
                    }
                }
                let pauses_before = self.lifecycle.pauses_started;
                // Its evaluation: from the run's start to its result (the run's batches are
                // pipelined, so an event's own share cannot be told apart).
                c.t0 = Instant::now()
                    .checked_sub(done.duration_since(start))
                    .unwrap_or(start);
                let out = match &self.failed {
                    Some(why) => Outcome::Answer(error(
                        Failure::Unavailable,
                        "not_accepting_writes",
                        refused(&self.shared, why),
                    )),
                    None => self.finish_live(c, res),
                };
                tripped |= self.lifecycle.pauses_started != pauses_before;
                slots[r][i] = Some(out);
            }
        }
        batches
            .into_iter()
            .zip(slots)
            .map(|(batch, row)| {
                let mut logged = false;
                let results = row
                    .into_iter()
                    .map(|o| match o {
                        Some(Outcome::Logged(a)) => {
                            logged = true;
                            a
                        }
                        Some(Outcome::Answer(a)) => a,
                        None => error(Failure::Internal, "internal_error", "no answer"),
                    })
                    .collect();
                request_outcome(results, logged, batch)
            })
            .collect()
    }

    /// [`label_envelope`](Self::label_envelope) of every item (a cluster's entry node, before it
    /// appends them): `{"items": [envelope, …]}`. An item that names an event this node does not
    /// hold refuses them all (its position is said for a batch); an item refused for another
    /// reason goes on as posted, and every node refuses it alike.
    pub(super) fn resolve_labels(&mut self, items: &[Box<serde_json::value::RawValue>]) -> Answer {
        let mut out = Vec::with_capacity(items.len());
        for (i, raw) in items.iter().enumerate() {
            match self.label_envelope(raw.get()) {
                Ok(s) => out.push(s),
                Err(Answer::Failed(mut e)) if e.code == "unknown_event" => {
                    if items.len() > 1 {
                        e.message = format!(
                            "item {i}: {}; in a cluster a batch of labels is refused whole when one names an event this node does not hold (send the labels with their actor)",
                            e.message
                        );
                    }
                    return Answer::Failed(e);
                }
                Err(_) => out.push(raw.get().to_string()),
            }
        }
        ok(json!({ "items": out }))
    }

    /// A label posted without an actor takes the actor of the event it names in `data.original_event`.
    pub(super) fn label_envelope(&mut self, raw: &str) -> Result<String, Answer> {
        // Parsed refusing repeated keys, before the document is re-serialized (which would keep one
        // of two equal keys).
        let mut v: Json = argus_event::decode::parse_json(raw.as_bytes()).map_err(|e| match e {
            argus_event::decode::JsonInputError::Invalid(e) => {
                error(Failure::Invalid, "invalid_json", format!("not valid JSON: {e}"))
            }
            argus_event::decode::JsonInputError::DuplicateKey(path) => error_with(
                Failure::Invalid,
                "duplicate_key",
                format!("the key at `{path}` appears twice in the same object"),
                json!([{"path": path, "code": "duplicate_key", "message": "a key may appear once per object"}]),
            ),
        })?;
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
                Failure::NotFound,
                "unknown_event",
                format!("`data.original_event` names no event this server holds: `{orig}`"),
            ));
        };
        let rec = self
            .wal
            .read(loc)
            .map_err(|e| error(Failure::Internal, "internal_error", e.to_string()))?;
        let actor = split_event(&rec.payload)
            .and_then(|(_, st, _)| stored_id_actor(st))
            .and_then(|(_, a)| a)
            .ok_or_else(|| {
                error(
                    Failure::Internal,
                    "internal_error",
                    "the original event's record is unreadable",
                )
            })?;
        obj.insert("actor".into(), value_json(&actor));
        Ok(v.to_string())
    }

    /// One event from a client: decoded (validated, pseudonymized), then [`accept`](Self::accept)ed.
    pub(super) fn event(&mut self, raw: &str, labels_only: bool) -> Outcome {
        let t0 = Instant::now();
        let d = self.engine.decoder().decode_bytes(raw.as_bytes());
        self.decoded_event(d, labels_only, t0)
    }

    /// An event as decoded (here or by the HTTP handler): refused with the decoder's errors, or
    /// bounded by the clock and [`accept`](Self::accept)ed.
    pub(super) fn decoded_event(&mut self, d: Decoded, labels_only: bool, t0: Instant) -> Outcome {
        match self.edge(d, labels_only) {
            Ok(ev) => self.accept(ev, None, t0),
            Err(a) => Outcome::Answer(a),
        }
    }

    /// The checks at the edge: the decoder's errors, the server's clock, and for the labels route,
    /// that the event is a label.
    pub(super) fn edge(&mut self, d: Decoded, labels_only: bool) -> Result<Event, Answer> {
        let ev = d.map_err(refusal)?;
        // In a cluster the entry node checked the time before the event entered the shared log:
        // every node must apply the log's events alike, whatever its own clock says.
        if self.settings.cluster.is_none() {
            check_clock(self.engine.schema(), &ev, self.settings.max_future)?;
        }
        if labels_only && !self.label_types.contains(&ev.ty) {
            let name = &self.engine.schema().get(ev.ty).name;
            return Err(error(
                Failure::Unprocessable,
                "not_a_label",
                format!(
                    "`{name}` is not a label type; labels are {}",
                    self.settings.label_types.join(", ")
                ),
            ));
        }
        Ok(ev)
    }

    /// The one path of an event, live (`loc` = `None`: decided, logged, answered) or replayed from the
    /// log at start (`loc`: its record; features only, the decision is in the record). A run of live
    /// events may instead go through [`events_run`](Self::events_run): the same steps, batched.
    pub(super) fn accept(&mut self, ev: Event, loc: Option<Loc>, t0: Instant) -> Outcome {
        if loc.is_none() {
            let c = match self.prepare(&ev, t0) {
                Ok(c) => c,
                Err(a) => return Outcome::Answer(a),
            };
            let r = match self.shard() {
                Some(shard) => match self.process_sharded(&ev, &shard) {
                    Ok(r) => r,
                    Err(a) => return Outcome::Answer(a),
                },
                None => self.engine.process(&ev).map(|p| (p.decision, p.findings)),
            };
            return self.finish_live(c, r);
        }
        match self.engine.apply(&ev) {
            Ok(p) => {
                let found = p.findings;
                self.since_snap += 1;
                self.applied_since_step += 1;
                // Findings are stored after their event's log record, never before. The decision
                // index and the per-actor recent decisions were rebuilt from the record headers when
                // the log was opened (within `max_indexed_events`).
                if self.intake.is_some() {
                    self.replay_findings = found.clone();
                }
                self.store_findings(self.replaying_seq, found);
                Outcome::Answer(ok(Json::Null))
            }
            Err(e) => {
                tracing::warn!(id = %ev.id, "a logged event was refused on replay: {e}");
                Outcome::Answer(error(Failure::Unprocessable, e.code(), e.to_string()))
            }
        }
    }

    /// A live event's checks before the engine: a duplicate of a logged event is answered with that
    /// event's decision; otherwise what its log record needs is prepared (the event as decoded,
    /// personal data already tokenized, with its label columns, by field name).
    pub(super) fn prepare(&mut self, ev: &Event, t0: Instant) -> Result<Live, Answer> {
        let schema = self.engine.schema().clone();
        let idh = id_hash(&ev.id);
        if let Some(a) = self.duplicate_answer(ev.ty, idh, &ev.id) {
            return Err(a);
        }
        let actor = match ev.fields.first() {
            Some(Value::Str(a)) => actor_key(&schema.get(ev.ty).actor_kind, a),
            _ => 0,
        };
        let stored =
            stored_event(&schema, ev).map_err(|e| error(Failure::Internal, "internal_error", e))?;
        Ok(Live {
            idh,
            actor,
            id: ev.id.clone(),
            ty: ev.ty,
            time: ev.time,
            stored,
            t0,
        })
    }

    /// The answer to an event whose id is in the decision index: `duplicate`, with the original
    /// event's decision.
    fn duplicate_answer(&mut self, ty: u16, idh: u128, id: &str) -> Option<Answer> {
        let &l = self.index.get(&idh)?;
        let type_name = self.engine.schema().get(ty).name.clone();
        self.metrics.outcome(ty, "duplicate", &type_name);
        let rec = self.wal.read(l).ok();
        let decision = rec
            .as_ref()
            .and_then(|r| split_event(&r.payload))
            .map_or(&[][..], |(_, _, d)| d);
        Some(event_answer("duplicate", id, None, decision))
    }

    /// What the engine made of a live event, logged and answered: the decision is serialized once,
    /// for the log record and the answer; findings are stored after the record, never before.
    pub(super) fn finish_live(&mut self, c: Live, processed: LiveResult) -> Outcome {
        let (found, mut decision) = match processed {
            Ok((d, f)) => (f, d),
            Err(e) => {
                // An id repeated within a batched run: the first is logged by now.
                if let Some(a) = self.duplicate_answer(c.ty, c.idh, &c.id) {
                    return Outcome::Answer(a);
                }
                let type_name = self.engine.schema().get(c.ty).name.clone();
                let code = if matches!(e, ProcessError::Duplicate(_)) {
                    "duplicate"
                } else {
                    e.code()
                };
                self.metrics.outcome(c.ty, code, &type_name);
                return Outcome::Answer(match e {
                    ProcessError::Duplicate(_) => event_answer("duplicate", &c.id, None, b""),
                    ProcessError::TooLate { .. } => {
                        error(Failure::Unprocessable, e.code(), e.to_string())
                    }
                });
            }
        };
        self.since_snap += 1;
        self.applied_since_step += 1;
        let eval = c.t0.elapsed();
        if let Some(d) = decision.as_mut() {
            d.eval_us = Some((eval.as_secs_f64() * 1e7).round() / 10.0);
            self.metrics.decision(c.ty, d, eval.as_secs_f64());
            if !d.fired.is_empty() {
                self.count_rules(d, c.time);
            }
            self.watch(d, c.actor);
        }
        let type_name = self.engine.schema().get(c.ty).name.clone();
        self.metrics.outcome(c.ty, "accepted", &type_name);
        let djson = decision
            .as_ref()
            .map(|d| serde_json::to_vec(d).unwrap_or_default())
            .unwrap_or_default();
        let head = EventHead {
            idh: c.idh,
            actor: c.actor,
            time: c.time,
            ty: c.ty,
            action: decision
                .as_ref()
                .map_or(NO_ACTION, |d| action_index(d.action)),
            score: decision.as_ref().map_or(0, |d| d.score),
        };
        let mut payload = std::mem::take(&mut self.scratch);
        event_payload(&head, &c.stored, &djson, &mut payload);
        let appended = self.wal.append(KIND_EVENT, &payload);
        self.scratch = payload;
        let (seq, loc) = match appended {
            Ok(x) => x,
            Err(e) => {
                self.fail(format!("event log: {e}"));
                return Outcome::Answer(error(
                    Failure::Unavailable,
                    "log_unavailable",
                    "the event could not be written to the event log; it was not acknowledged",
                ));
            }
        };
        // Routed here already on the typed decision (any amount passing), so that a decision no
        // route takes costs intake nothing: no copy, no parse.
        let routed = self
            .intake
            .as_ref()
            .is_some_and(|s| s.filter.actions.contains(&head.action))
            && decision
                .as_ref()
                .is_some_and(|d| self.settings.cases.takes_decision(d));
        if self.intake.is_some() && (routed || !found.is_empty()) {
            let stored = std::mem::take(&mut self.scratch);
            // The stored event is inside the record just written (`payload` went back to scratch).
            if let Some((_, st, d)) = split_event(&stored) {
                let action = if routed { head.action } else { NO_ACTION };
                self.send_intake(seq, action, st, d, &found, true);
            }
            self.scratch = stored;
        }
        self.store_findings(seq, found);
        self.index.insert(c.idh, loc);
        self.index_order.push_back((loc, c.idh));
        if self.index_order.len() > self.settings.max_indexed_events {
            unindex_one(&mut self.index, &mut self.index_order);
        }
        if head.action != NO_ACTION {
            self.remember(Recent { loc, head });
        }
        Outcome::Logged(event_answer("accepted", &c.id, Some(seq), &djson))
    }

    pub(super) fn remember(&mut self, r: Recent) {
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
}

/// One event request of a run handled by [`Core::events_run`].
pub(super) struct EventsRequest {
    pub(super) items: Vec<Box<serde_json::value::RawValue>>,
    pub(super) decoded: Vec<Decoded>,
    pub(super) batch: bool,
}

/// The answer to an event the decoder refused.
pub(crate) fn refusal(rej: argus_event::Rejection) -> Answer {
    m::event_outcome("?", rej.code());
    let details = serde_json::to_value(&rej.errors).unwrap_or(Json::Null);
    let kind = if rej.code() == "unknown_event_type" {
        Failure::Unprocessable
    } else {
        Failure::Invalid
    };
    error_with(kind, rej.code(), rej.to_string(), details)
}

/// The watermark only moves forward: one event far in the future would make every later event
/// `too_late` and expire every key. Times are bounded by the server's clock at the edge (the entry
/// node's, in a cluster); replay and recovery measure lateness against the input's own order only.
pub(crate) fn check_clock(
    schema: &argus_event::Schema,
    ev: &Event,
    max_future: Duration,
) -> Result<(), Answer> {
    let now = now_ms();
    let limit = now.saturating_add(max_future.as_millis() as i64);
    if ev.time <= limit {
        return Ok(());
    }
    m::event_outcome(&schema.get(ev.ty).name, "too_far_in_future");
    Err(error_with(
        Failure::Unprocessable,
        "too_far_in_future",
        format!(
            "event time {} is {} ms ahead of the server's clock ({}), beyond `server.max_future` ({} ms); check the sender's clock",
            argus_event::time::format_rfc3339(ev.time),
            ev.time.saturating_sub(now),
            argus_event::time::format_rfc3339(now),
            max_future.as_millis()
        ),
        json!([{"path": "/time", "code": "too_far_in_future", "message": format!("at most {} ms ahead of the server's clock", max_future.as_millis())}]),
    ))
}

/// A live event between its checks and its log record.
pub(super) struct Live {
    idh: u128,
    actor: u128,
    id: String,
    ty: u16,
    time: i64,
    stored: Vec<u8>,
    t0: Instant,
}

/// What the engine made of a live event: its decision and findings, or why it was refused.
pub(super) type LiveResult =
    Result<(Option<argus_policy::Decision>, Vec<argus_engine::Finding>), ProcessError>;

/// A request's outcome from its items' answers: logged when any item was.
pub(super) fn request_outcome(mut results: Vec<Answer>, logged: bool, batch: bool) -> Outcome {
    let answer = if batch {
        Answer::Batch(results)
    } else {
        results
            .pop()
            .unwrap_or_else(|| error(Failure::Invalid, "empty", "no event"))
    };
    if logged {
        Outcome::Logged(answer)
    } else {
        Outcome::Answer(answer)
    }
}

/// The [`argus_engine::Source`] of a batched run: the prepared events in, each one's result out, in
/// input order.
struct Collect {
    events: std::vec::IntoIter<Event>,
    /// Each result, with when it was ready.
    results: Vec<(LiveResult, Instant)>,
    /// With the guard on: each processed event and its features, to decide it again when the
    /// guard pauses a rule at an earlier event of the run (one at a time, the pause would have
    /// applied to it).
    keep: bool,
    kept: Vec<Option<(Event, Vec<Value>)>>,
}

impl argus_engine::Source for Collect {
    type Error = std::convert::Infallible;
    fn next(&mut self, _: &argus_event::Decoder) -> Result<Option<Event>, Self::Error> {
        Ok(self.events.next())
    }
    fn refused(&mut self, _: &Event, e: ProcessError) -> Result<(), Self::Error> {
        self.results.push((Err(e), Instant::now()));
        if self.keep {
            self.kept.push(None);
        }
        Ok(())
    }
    fn processed(&mut self, p: argus_engine::Processed<'_>) -> Result<(), Self::Error> {
        if self.keep {
            self.kept.push(
                p.decision
                    .is_some()
                    .then(|| (p.event.clone(), p.features.to_vec())),
            );
        }
        self.results
            .push((Ok((p.decision, p.findings)), Instant::now()));
        Ok(())
    }
}
