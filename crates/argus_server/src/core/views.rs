//! Read-only views: decisions by id, entities, findings, status and the full-state digest.

use super::*;

impl Core {
    pub(super) fn decision(&mut self, id: &str) -> Answer {
        let Some(&loc) = self.index.get(&id_hash(id)) else {
            return error(
                Failure::NotFound,
                "unknown_event",
                format!("no event `{id}` in the decision index (it holds the newest `max_indexed_events` events of the retained log)"),
            );
        };
        match self.wal.read(loc) {
            Ok(r) => match split_event(&r.payload) {
                Some((_, _, d)) => {
                    let decision: Json = if d.is_empty() {
                        Json::Null
                    } else {
                        serde_json::from_slice(d).unwrap_or(Json::Null)
                    };
                    ok(json!({"id": id, "seq": r.seq, "decision": decision}))
                }
                None => error(Failure::Internal, "internal_error", "unreadable record"),
            },
            Err(e) => error(Failure::Internal, "internal_error", e.to_string()),
        }
    }

    /// A logged event's fields by name, as stored: personal data as tokens.
    pub(super) fn event_fields(&mut self, id: &str) -> Answer {
        let Some(&loc) = self.index.get(&id_hash(id)) else {
            return error(
                Failure::NotFound,
                "unknown_event",
                format!("no event `{id}` in the decision index"),
            );
        };
        let schema = self.engine.schema().clone();
        let r = match self.wal.read(loc) {
            Ok(r) => r,
            Err(e) => return error(Failure::Internal, "internal_error", e.to_string()),
        };
        let Some((_, stored, _)) = split_event(&r.payload) else {
            return error(Failure::Internal, "internal_error", "unreadable record");
        };
        match super::record::load_event(&schema, stored) {
            Ok(ev) => {
                let et = schema.get(ev.ty);
                let fields: serde_json::Map<String, Json> = et
                    .fields
                    .iter()
                    .zip(&ev.fields)
                    .filter(|(_, v)| !matches!(v, argus_event::Value::Null))
                    .map(|(f, v)| (f.name.clone(), v.to_json()))
                    .collect();
                ok(json!({"id": id, "type": et.name, "fields": fields}))
            }
            Err(e) => error(Failure::Internal, "internal_error", e),
        }
    }

    pub(super) fn entity(&mut self, kind: &str, id: &str) -> Answer {
        let schema = self.engine.schema().clone();
        if !schema.entity_kinds.iter().any(|k| k == kind) {
            return error(
                Failure::NotFound,
                "unknown_entity_kind",
                format!(
                    "unknown entity kind `{kind}`{}",
                    argus_event::schema::did_you_mean(
                        kind,
                        schema.entity_kinds.iter().map(String::as_str)
                    )
                ),
            );
        }
        // The id is validated (and normalized) as a field of this kind would be, whether or not a
        // feature is keyed by it: `not-an-email` is not an email.
        let typed = schema.types.iter().filter(|t| !t.internal).find_map(|t| {
            t.fields
                .iter()
                .position(|f| f.entity.as_deref() == Some(kind))
                .map(|s| (t, s))
        });
        if let Some((et, slot)) = typed {
            if let Err(e) = self.engine.decoder().field_value(et, slot, id) {
                return error(
                    Failure::Invalid,
                    e.code,
                    format!("`{kind}` id is invalid: {}", e.message),
                );
            }
        }
        let fs = self.engine.features().clone();
        let at = self.engine.watermark().unwrap_or_else(now_ms);
        let mut features = BTreeMap::new();
        let mut key_value: Option<Value> = None;
        // Sharded: the partitions whose owners hold this entity's features (not this node).
        let mut elsewhere = std::collections::BTreeSet::new();
        for et in schema.types.iter().filter(|t| !t.internal) {
            for ep in &fs.plans[et.id as usize].entities {
                let [slot] = ep.key_slots[..] else { continue };
                if et.fields[slot].entity.as_deref() != Some(kind) {
                    continue;
                }
                let v = match self.engine.decoder().field_value(et, slot, id) {
                    Ok(v) => v,
                    Err(e) => {
                        return error(
                            Failure::Invalid,
                            e.code,
                            format!("`{id}` is not a valid {kind}: {}", e.message),
                        )
                    }
                };
                let mut fields = vec![Value::Null; et.fields.len()];
                fields[slot] = v.clone();
                key_value.get_or_insert(v);
                let probe = Event {
                    id: String::new(),
                    ty: et.id,
                    time: at,
                    fields,
                };
                let held = self.engine.held();
                if let Some(k) =
                    argus_features::state::key_digest(&probe.fields, &ep.key_slots, ep.seed)
                {
                    let p = argus_features::state::partition_of(k, held.len());
                    if !held[p] {
                        elsewhere.insert(p);
                        continue;
                    }
                }
                let out = self.engine.peek(&probe).to_vec();
                for g in &ep.groups {
                    for (fi, _) in &g.readers {
                        features
                            .entry(fs.features[*fi].name.clone())
                            .or_insert_with(|| value_json(&out[*fi]));
                    }
                }
            }
        }
        let mut lists = Vec::new();
        if let Some(ps) = self.engine.policies() {
            for l in ps
                .lists
                .lists
                .iter()
                .filter(|l| l.entity.as_deref() == Some(kind))
            {
                let Ok(key) = item_key(Some(kind), id, &self.engine.config.pseudonymizer) else {
                    continue;
                };
                if let Some(it) = l
                    .items
                    .get(&key)
                    .filter(|it| it.expires.is_none_or(|e| at < e))
                {
                    lists.push(json!({"list": l.name, "kind": l.kind, "reason": it.reason, "expires": it.expires.map(argus_event::time::format_rfc3339)}));
                }
            }
        }
        let stored = match &key_value {
            Some(Value::Str(s)) => s.to_string(),
            _ => item_key(Some(kind), id, &self.engine.config.pseudonymizer)
                .unwrap_or_else(|_| id.to_string()),
        };
        let recent: Vec<Recent> = self
            .recent
            .get(&actor_key(kind, &stored))
            .map(|q| q.iter().rev().copied().collect())
            .unwrap_or_default();
        let recent: Vec<Json> = recent
            .into_iter()
            .filter_map(|r| {
                // The event id is read back from the record (the header has only its digest); a
                // record whose segment retention deleted is skipped.
                let id = self.wal.read(r.loc).ok().and_then(|rec| stored_id_actor(split_event(&rec.payload)?.1)).map(|(id, _)| id)?;
                Some(json!({
                    "event_id": id,
                    "time": argus_event::time::format_rfc3339(r.head.time),
                    "checkpoint": schema.types.get(r.head.ty as usize).map(|t| t.name.as_str()),
                    "action": argus_policy::Action::ALL.get(r.head.action as usize).map(|a| a.name()),
                    "score": r.head.score,
                }))
            })
            .collect();
        ok(json!({
            "kind": kind,
            "id": id,
            "key": stored,
            "as_of": argus_event::time::format_rfc3339(at),
            "features": features,
            "lists": lists,
            "recent_decisions": recent,
            "partitions_elsewhere": elsewhere,
        }))
    }

    pub(super) fn store_findings(&mut self, seq: u64, found: Vec<argus_engine::Finding>) {
        if !found.is_empty() {
            if let Err(e) = self.findings.add(seq, found) {
                tracing::error!("findings store: {e} (the findings are kept in memory)");
            }
        }
    }

    pub(super) fn findings_answer(
        &self,
        limit: usize,
        detector: Option<&str>,
        account: Option<&str>,
    ) -> Answer {
        if self.engine.config.graph.is_none() {
            return error(Failure::NotFound, "no_graph", "the configuration has no [graph] section: there are no detectors and no findings (docs/graph.md)");
        }
        let found = self.findings.query(limit.clamp(1, 1000), detector, account);
        ok(json!({"total": self.findings.total, "findings": found}))
    }

    /// The linked-accounts graph around `account`: accounts, the values they share, and links.
    pub(super) fn graph_view(&self, account: &str, hops: usize, max_nodes: usize) -> Answer {
        if self.engine.config.graph.is_some() && !self.engine.holds_stages() {
            return error(
                Failure::Conflict,
                "graph_elsewhere",
                "this node of a sharded cluster does not hold the entity graph: one node, the global stages' worker, does; ask the node whose GET /v1/admin/status shows \"stages_worker\": {\"held\": true} (docs/cluster.md)",
            );
        }
        let Some(n) =
            self.engine
                .graph_neighborhood(account, hops.clamp(1, 3), max_nodes.clamp(2, 2000))
        else {
            return error(Failure::NotFound, "no_graph", "the configuration has no [graph] section: there is no entity graph (docs/graph.md)");
        };
        let mut nodes: Vec<Json> = n
            .accounts
            .iter()
            .map(|(a, c)| json!({"id": a, "type": "account", "confirmed": c}))
            .collect();
        nodes.extend(n.values.iter().map(|(v, shared)| {
            let field = v.split_once(':').map_or("", |(f, _)| f);
            json!({"id": v, "type": "value", "field": field, "shared_by": shared})
        }));
        let edges: Vec<Json> = n
            .edges
            .iter()
            .map(|(a, v, last)| json!({"account": a, "value": v, "last": argus_event::time::format_rfc3339(*last)}))
            .collect();
        ok(
            json!({"account": account, "found": !n.accounts.is_empty(), "nodes": nodes, "edges": edges, "truncated": n.truncated}),
        )
    }

    /// Hits per enforced rule per hour of event time (live decisions since the server started).
    pub(super) fn rule_stats(&self) -> Answer {
        let mut rules: Vec<Json> = self
            .rule_hits
            .iter()
            .map(|(r, (cp, hours))| {
                let hits: u64 = hours.iter().map(|(_, n)| n).sum();
                json!({"rule": r, "checkpoint": cp, "hits": hits,
                       "hourly": hours.iter().map(|(h, n)| json!([h, n])).collect::<Vec<_>>()})
            })
            .collect();
        rules.sort_by(|a, b| {
            b["hits"]
                .as_u64()
                .cmp(&a["hits"].as_u64())
                .then_with(|| a["rule"].as_str().cmp(&b["rule"].as_str()))
        });
        let changes: Vec<Json> = self
            .policy_changes
            .iter()
            .map(|(v, at)| json!({"version": v, "at": at}))
            .collect();
        ok(json!({"rules": rules, "policy_changes": changes}))
    }

    /// Cheap by design (monitoring polls it): counters and sizes the state keeps as it changes, never a
    /// walk over the state. The full digest is [`digest`](Self::digest).
    pub(super) fn status(&self) -> Answer {
        let e = &self.engine;
        ok(json!({
            "log_last_seq": self.wal.last_seq(),
            "log_first_seq": self.wal.first_seq(),
            "log_segments": self.wal.segment_count(),
            "snapshot_seq": self.snap_seq,
            "snapshot_in_progress": self.copying.is_some() || self.snap_job.is_some(),
            // The copy in progress: the record it began after and the keys it must visit.
            "snapshot_copy": self.copying.as_ref().map(|_| json!({"from_seq": self.copy_from.0, "keys": self.copy_from.1})),
            "engine_seq": e.sequence(),
            "watermark": e.watermark().map(argus_event::time::format_rfc3339),
            "keys": e.feature_state().key_count(),
            "idempotency_ids": e.idempotency_ids(),
            "pending_labels": e.pending_labels(),
            "counters": e.counters(),
            // (Only on the node holding it: a sharded node that is not the stages' worker has none.)
            "graph": e.graph_size().filter(|_| e.holds_stages()).map(|(accounts, links, edges)| json!({"accounts": accounts, "links": links, "block_edges": edges, "findings": self.findings.total})),
            "indexed_events": self.index.len(),
            "recent_actors": self.recent.len(),
            "rss_bytes": rss_bytes(),
            "policy_version": e.policies().map(|p| p.version.clone()),
            "failed": self.failed,
            // In a cluster: the shared log's entries applied.
            "cluster_cursor": self.settings.cluster.as_ref().map(|_| self.stream_cursor),
            // Sharded: the feature partitions whose state this node holds.
            "partitions_held": self.shard().map(|_| {
                let held = e.held();
                (0..held.len()).filter(|p| held[*p]).collect::<Vec<_>>()
            }),
            // Sharded: the partitions whose lease this node holds (as of its last ownership round).
            "partitions_owned": self.shard().map(|s| {
                s.view().owned.into_iter().filter(|p| (*p as usize) < s.partitions).collect::<Vec<_>>()
            }),
            // Sharded, when the global stages are a unit of their own: whether this node holds
            // them (it is their worker) and holds their lease.
            "stages_worker": self.shard().filter(|s| s.units > s.partitions).map(|s| {
                json!({"held": e.holds_stages(), "owned": s.view().owned.contains(&(s.partitions as u32))})
            }),
        }))
    }

    /// The digest of the whole engine state (see [`Engine::state_digest`]): equal digests answer every
    /// future event alike. It walks and encodes the whole state, so it pauses decisions for as long.
    ///
    /// With `partitions` (on a sharded node: by default, its `[cluster] partitions`), also the state
    /// split in two (`Engine::split_digest`): the digest of all but the keyed features, the same on
    /// every node of a sharded cluster, and one per feature partition this node holds. The nodes'
    /// partition digests together equal one engine's asked with the same count.
    ///
    /// With `records` (a partition number of that count), also that partition's live records, each
    /// with its entity, key, digest and contents (`records`: `null` when this node does not hold it).
    pub(super) fn digest(&self, partitions: Option<usize>, records: Option<usize>) -> Answer {
        let t = Instant::now();
        let digest = self.engine.state_digest();
        let n = partitions.or_else(|| self.shard().map(|s| s.partitions));
        let split = n.map(|n| {
            let (rest, parts) = self.engine.split_digest(n);
            let held: serde_json::Map<String, Json> = parts
                .iter()
                .enumerate()
                .filter_map(|(q, d)| d.map(|d| (q.to_string(), json!(format!("{d:016x}")))))
                .collect();
            // The unkeyed digest's parts: which of them two nodes differ in.
            let parts: serde_json::Map<String, Json> = self
                .engine
                .unkeyed_parts()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({"count": n, "unkeyed_digest": format!("{rest:016x}"), "unkeyed_parts": parts, "digests": held})
        });
        // At most RECORDS_LISTED of them (the first by entity and key), and how many there are:
        // the answer is for a person comparing two nodes, and is built on the core thread.
        let listed = records
            .zip(n)
            .and_then(|(q, n)| self.engine.partition_records(n, q));
        let records_total = listed.as_ref().map(Vec::len);
        let records = listed.map(|recs| {
            recs.into_iter()
                .take(RECORDS_LISTED)
                .map(|(entity, r)| {
                    json!({"entity": entity, "key": format!("{:032x}", r.key), "digest": format!("{:016x}", r.digest), "record": r.text})
                })
                .collect::<Vec<_>>()
        });
        ok(json!({
            "state_digest": format!("{digest:016x}"),
            // By feature partition: what a sharded cluster's nodes compare.
            "partitions": split,
            "records": records,
            "records_total": records_total,
            "engine_seq": self.engine.sequence(),
            "log_last_seq": self.wal.last_seq(),
            // In a cluster: the shared log's position the digest covers (nodes compare at the same one).
            "cluster_cursor": self.settings.cluster.as_ref().map(|_| self.stream_cursor),
            "millis": t.elapsed().as_millis() as u64,
        }))
    }
}

/// The most records `GET /v1/admin/digest?records=Q` lists (`records_total` says how many there are).
const RECORDS_LISTED: usize = 10_000;

/// Resident set size of this process (Linux: `/proc/self/statm`), `None` elsewhere.
pub(super) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
