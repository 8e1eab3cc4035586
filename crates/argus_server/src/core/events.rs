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
                    format!("{why}; restart the server (it recovers from the log)"),
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
        let ev: Event = match d {
            Ok(ev) => ev,
            Err(rej) => {
                m::event_outcome("?", rej.code());
                let details = serde_json::to_value(&rej.errors).unwrap_or(Json::Null);
                let kind = if rej.code() == "unknown_event_type" {
                    Failure::Unprocessable
                } else {
                    Failure::Invalid
                };
                return Outcome::Answer(error_with(kind, rej.code(), rej.to_string(), details));
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
                Failure::Unprocessable,
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
                Failure::Unprocessable,
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
    pub(super) fn accept(&mut self, ev: Event, loc: Option<Loc>, t0: Instant) -> Outcome {
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
                Err(e) => return Outcome::Answer(error(Failure::Internal, "internal_error", e)),
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
                    ProcessError::TooLate { .. } => {
                        error(Failure::Unprocessable, e.code(), e.to_string())
                    }
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
                    Failure::Unavailable,
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
