//! `POST /v1/erasure`: erases a personal-data subject (an email, a phone, a card…) on this node.
//!
//! The core renames the subject's token to a new random pseudonym in the event log, the state, the
//! snapshots (a new one is written, the older ones deleted) and the findings (`core::erasure`).
//! Then this handler removes the clear value from the vault, renames the token and blanks the clear
//! value in every text column of the case store (cases, timelines, notes, the outbox), and empties
//! the continuous export's directory, which the next export round fills again from the renamed log.
//! The request is audited (the middleware, with its reason) before anything happens, and the
//! completion is audited with where the subject was found — never the value or its token.
//!
//! In a cluster the renaming is an entry of the shared log, applied by every node at the same point
//! ([`in_cluster`]): this node plans it (the token, and the keys its log shows), appends it with a
//! new random pseudonym, and once every live node has applied it erases from the JetStream stream
//! every entry up to it that holds the token — the erasure's own entry, which links token and
//! pseudonym, included. A sharded cluster renames the nodes' logs at a second entry, once every
//! unit's holder shares a snapshot taken after the first ([`finish_sharded`]).
//!
//! Not covered (docs/privacy.md): a user id (the shop's own pseudonym, kept in clear), one-off
//! exports written elsewhere, list files on disk, and distinct-count sketches of other keys (they
//! keep a 64-bit hash of the token, which only counts).

use crate::api::{ask, respond, AppState};
use crate::core::{error, ok, Answer, Failure, Request};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    /// The entity kind: `email`, `phone`, `card`, `address`, `ip`, …
    kind: String,
    /// The value as the shop knows it (normalized as events are): a string, or an address as
    /// the object events send (`{"line1", "city", …}`). Kept as its JSON text (a string quoted),
    /// which is what every step after this one is handed: [`subject_value`] reads it back.
    #[serde(deserialize_with = "string_or_object")]
    value: String,
    /// Why (the request is audited with it); else the `Argus-Reason` header.
    reason: Option<String>,
}

/// An erasure's `value` as its JSON text: a string or an object, nothing else.
fn string_or_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match <Value as serde::Deserialize>::deserialize(d)? {
        v @ (Value::String(_) | Value::Object(_)) => Ok(v.to_string()),
        _ => Err(serde::de::Error::custom(
            "`value` must be a string, or an address as an object ({\"line1\", \"city\", …})",
        )),
    }
}

/// An erasure's value from the JSON text [`ErasureBody`] keeps: a string, or an object (an
/// address as events send it). Text that is not such JSON (none is made here) is taken as the
/// string it is.
pub(crate) fn subject_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::String(_) | Value::Object(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

pub async fn erase(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let b: ErasureBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return respond(error(
                Failure::Invalid,
                "invalid_body",
                format!("expected {{\"kind\", \"value\", \"reason\"}}: {e}"),
            ))
        }
    };
    if let Err(a) = crate::vault::reason_given(b.reason.as_deref(), &headers, "an erasure") {
        return respond(a);
    }
    let found = match &st.cluster {
        Some(node) => in_cluster(&st, node, &b).await,
        None => on_this_node(&st, &b).await,
    };
    let found = match found {
        Ok(f) => f,
        Err(a) => return respond(a),
    };
    let summary = json!({"kind": b.kind, "found": found});
    if !crate::audit::system(&st, "erasure completed", &summary.to_string()).await {
        tracing::error!("erasure done but its completion could not be audited");
    }
    crate::metrics::inc(crate::metrics::ERASURES, 1);
    respond(ok(summary))
}

/// A single node: the core renames, then the vault, the case store and the export.
async fn on_this_node(st: &AppState, b: &ErasureBody) -> Result<Value, Answer> {
    crate::core::export::ERASURE_EPOCH.fetch_add(1, Ordering::SeqCst);
    let (token, pseudonym, mut found) = renamed(
        ask(
            st,
            Request::Erase {
                kind: b.kind.clone(),
                value: b.value.clone(),
            },
        )
        .await,
    )?;
    erase_from_vault(st, &token, &mut found)?;
    scrub_cases(st, b, &token, &pseudonym, &mut found).await?;
    if let Some(dir) = &st.settings.export_dir {
        found["export_entries_removed"] = json!(empty_export(dir));
    }
    Ok(found)
}

/// Removes the subject's clear value from this node's vault, when there is one (`found["vault"]`:
/// the values removed).
pub(crate) fn erase_from_vault(
    st: &AppState,
    token: &str,
    found: &mut Value,
) -> Result<(), Answer> {
    let vault = st
        .vault
        .as_ref()
        .map(|v| v.erase(&[token.to_string()]))
        .transpose();
    match vault {
        Ok(n) => {
            found["vault"] = json!(n.unwrap_or(0));
            Ok(())
        }
        Err(e) => Err(error(
            Failure::Internal,
            "erasure_failed",
            format!("the vault: {e}; repeat the request"),
        )),
    }
}

/// The token, pseudonym and findings of the core's answer to an erasure.
fn renamed(a: Answer) -> Result<(String, String, Value), Answer> {
    let Answer::Done { body, .. } = a else {
        return Err(a);
    };
    match (body["token"].as_str(), body["pseudonym"].as_str()) {
        (Some(t), Some(p)) => Ok((t.to_string(), p.to_string(), body["found"].clone())),
        _ => Err(error(
            Failure::Internal,
            "internal_error",
            "erasure answered without its pseudonym",
        )),
    }
}

/// The clear value as it may have been typed into a note: as given, trimmed, lower case. An
/// address given as an object: its street lines and name joined as the decoder joins them (its
/// city, postcode and country are derived attributes, kept in clear everywhere; and a street line
/// alone, "1 High Street", would also blank other people's addresses holding it). `value` is the
/// JSON text [`ErasureBody`] keeps (`""`: none known, as on a node finishing another's erasure).
fn clear_forms(value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    let text = match subject_value(value) {
        Value::Object(o) => ["line1", "line2", "name"]
            .iter()
            .filter_map(|k| o.get(*k).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s,
        _ => String::new(),
    };
    let mut clear: Vec<String> = [
        text.clone(),
        text.trim().to_string(),
        text.trim().to_lowercase(),
    ]
    .into_iter()
    .filter(|v| !v.is_empty())
    .collect();
    clear.sort();
    clear.dedup();
    clear
}

/// A phone's or a card's digits, which a note may spell other than the request did
/// (`4000 0566 5566 5556`, `+1 (555) 010-4477`): the case store looks for them however spelled
/// (`argus_cases::erase_spelled`). Other kinds: none.
fn spelled_numbers(schema: &argus_event::Schema, kind: &str, value: &str) -> Vec<String> {
    let Value::String(text) = subject_value(value) else {
        return Vec::new();
    };
    // The field the core tokenized the value as (`core::erasure`'s `subject_token`).
    let ty = schema
        .types
        .iter()
        .filter(|t| !t.internal)
        .find_map(|t| {
            t.fields
                .iter()
                .find(|f| f.entity.as_deref() == Some(kind) && f.pii)
        })
        .map(|f| f.ty);
    if !matches!(
        ty,
        Some(argus_event::FieldType::Phone | argus_event::FieldType::CardNumber)
    ) {
        return Vec::new();
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= argus_cases::MIN_SPELLED {
        vec![digits]
    } else {
        Vec::new()
    }
}

/// What the case store looks for in what people type: the clear forms, or for a card or a phone
/// its digits however spelled, which include the forms as given and are not looked for inside a
/// longer number, as a plain replacement of the forms would be (an outside test:
/// `14000056655665556` became `1[erased]`).
fn typed_forms(
    schema: &argus_event::Schema,
    kind: &str,
    value: &str,
) -> (Vec<String>, Vec<String>) {
    let numbers = spelled_numbers(schema, kind, value);
    if numbers.is_empty() {
        (clear_forms(value), numbers)
    } else {
        (Vec::new(), numbers)
    }
}

/// Renames the token and blanks the clear value in the case store, when cases are on.
async fn scrub_cases(
    st: &AppState,
    b: &ErasureBody,
    token: &str,
    pseudonym: &str,
    found: &mut Value,
) -> Result<(), Answer> {
    let Some(svc) = &st.cases else {
        return Ok(());
    };
    let store = svc.store()?;
    let (clear, numbers) = typed_forms(&st.decoder.schema, &b.kind, &b.value);
    match store.scrub(token, pseudonym, &clear, &numbers).await {
        Ok(n) => {
            found["case_rows"] = json!(n);
            Ok(())
        }
        Err(e) => Err(error(
            Failure::Unavailable,
            "erasure_failed",
            format!(
                "the case store: {e}; the log and state are done, repeat the request for the rest"
            ),
        )),
    }
}

/// Deletes the continuous export's tables and cursor (only what the export writes there: the
/// folder may hold other things); the next round writes them again from the renamed log. Returns
/// the entries removed.
pub(crate) fn empty_export(dir: &Path) -> usize {
    crate::core::export::ERASURE_EPOCH.fetch_add(1, Ordering::SeqCst);
    let mut removed = 0;
    for t in crate::core::export::TABLES {
        if std::fs::remove_dir_all(dir.join(t)).is_ok() {
            removed += 1;
        }
    }
    if std::fs::remove_file(crate::core::export::cursor_path(dir)).is_ok() {
        removed += 1;
    }
    removed
}

/// A node of a cluster:
/// 1. this node's core finds the token and the keys its log shows ([`Request::ErasurePlan`]);
/// 2. the erasure is appended to the shared log with a new random pseudonym and applied by every
///    node at that point (its log, state, snapshots and findings; its vault and export: see
///    `cluster::after_erasure`), this one answering;
/// 3. the case store (shared PostgreSQL) is scrubbed once;
/// 4. the rest ([`finish_in_cluster`]) runs on a task of its own, which goes on if the request is
///    dropped.
async fn in_cluster(
    st: &AppState,
    node: &crate::cluster::Node,
    b: &ErasureBody,
) -> Result<Value, Answer> {
    let pseudonym = crate::core::erasure::pseudonym()
        .map_err(|e| error(Failure::Internal, "internal_error", e))?;
    let plan = match ask(
        st,
        Request::ErasurePlan {
            kind: b.kind.clone(),
            value: b.value.clone(),
            pseudonym: pseudonym.clone(),
        },
    )
    .await
    {
        Answer::Done { body, .. } => body,
        other => return Err(other),
    };
    let (Some(token), Some(moves)) = (plan["token"].as_str(), plan["moves"].as_array()) else {
        return Err(error(
            Failure::Internal,
            "internal_error",
            "the erasure's plan has no token",
        ));
    };
    let token = token.to_string();
    let moves = moves
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let planned = plan["record"].as_u64().unwrap_or(0);
    let applied =
        crate::cluster::append_erasure(node, token.clone(), pseudonym, moves, planned).await;
    let (entry, sequence) = match &applied {
        Answer::Done { body, .. } => (body["entry"].as_u64(), body["sequence"].as_u64()),
        _ => (None, None),
    };
    let (token, pseudonym, mut found) = renamed(applied)?;
    let Some(entry) = entry else {
        return Err(error(
            Failure::Internal,
            "internal_error",
            "the erasure was applied without its entry's number",
        ));
    };
    // The stream's part goes on if this request is dropped (its client gone, a shutdown's grace
    // over), and whether or not the case store is reachable.
    let stream = tokio::spawn({
        let (st, token, pseudonym, value) = (
            st.clone(),
            token.clone(),
            pseudonym.clone(),
            b.value.clone(),
        );
        async move {
            let Some(node) = st.cluster.clone() else {
                return Err(error(
                    Failure::Internal,
                    "internal_error",
                    "not in a cluster",
                ));
            };
            let at = (entry, sequence.unwrap_or(0));
            let done = if test_fail_once() {
                Err(incomplete(
                    "ARGUS_TEST_ERASURE_FAIL_ONCE: the asking node's first try fails (testing only)"
                        .into(),
                ))
            } else {
                finish_in_cluster(&st, &node, &token, &pseudonym, &value, at).await
            };
            if done.is_err() {
                // Its client is told to repeat the request; meanwhile the node holding the
                // `duties` lease does the rest after `erasure_grace`, as when an asking node
                // dies — this one too, when it holds the lease (before, nobody did).
                if let Some(c) = st.settings.cluster.as_ref() {
                    let (st, wait) = (st.clone(), c.erasure_grace());
                    tokio::spawn(async move {
                        crate::cluster::finish_on_duty(
                            &st, &node, &token, &pseudonym, &value, at, wait,
                        )
                        .await
                    });
                }
            }
            done
        }
    });
    let scrubbed = scrub_cases(st, b, &token, &pseudonym, &mut found).await;
    let more = match stream.await {
        Ok(r) => r?,
        Err(e) => {
            return Err(error(
                Failure::Internal,
                "erasure_incomplete",
                format!("erasing the stream's entries stopped: {e}; repeat the request"),
            ))
        }
    };
    scrubbed?;
    if let (Some(found), Some(more)) = (found.as_object_mut(), more.as_object()) {
        for (k, v) in more {
            found.insert(k.clone(), v.clone());
        }
    }
    Ok(found)
}

/// What is left of the erasure at entry `entry` (the engine's sequence number then: `sequence`)
/// once the asking node applied it: in a replicated cluster, the stream's entries
/// ([`erase_from_stream`]); in a sharded one, the second entry, then the older node snapshots, the
/// shares and the stream's entries ([`finish_sharded`]). Returns what it found, for the answer's
/// `found`. Also run by the node holding the `duties` lease when the asking node did not finish
/// (`cluster::after_erasure`; it never saw the clear `value`).
pub(crate) async fn finish_in_cluster(
    st: &AppState,
    node: &crate::cluster::Node,
    token: &str,
    pseudonym: &str,
    value: &str,
    (entry, sequence): (u64, u64),
) -> Result<Value, Answer> {
    if st.shared.shard.get().is_some() {
        return finish_sharded(st, node, token, pseudonym, value, (entry, sequence)).await;
    }
    let (read, erased, nodes) = erase_from_stream(st, node, token, value, entry, None).await?;
    Ok(json!({
        "stream_entries_read": read,
        "stream_entries_erased": erased,
        "nodes": nodes,
    }))
}

/// `ARGUS_TEST_ERASURE_FAIL_ONCE=1`, for tests: the first erasure's steps after its entry fail on
/// the asking node, as when the NATS servers do not answer then.
fn test_fail_once() -> bool {
    static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::env::var("ARGUS_TEST_ERASURE_FAIL_ONCE").is_ok_and(|v| v == "1")
        && !FAILED.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// The answer for a part of a cluster's erasure that could not be done now.
fn incomplete(what: String) -> Answer {
    error(
        Failure::Unavailable,
        "erasure_incomplete",
        format!("{what}; the subject is renamed on the nodes that applied the erasure, and the shared stream still holds its entries: repeat the request"),
    )
}

/// How long an erasure waits for the other nodes (their reports, their snapshots).
fn patience(st: &AppState) -> (Duration, Duration) {
    let ttl = st
        .settings
        .cluster
        .as_ref()
        .map_or(Duration::from_secs(10), |c| c.lease_ttl());
    (ttl, (ttl * 3).max(Duration::from_secs(30)))
}

/// Waits until every node that reports its progress, this one among them, has applied the shared
/// log's entry `entry`; returns how many reported.
async fn wait_applied(
    st: &AppState,
    node: &crate::cluster::Node,
    entry: u64,
) -> Result<usize, Answer> {
    let (ttl, limit) = patience(st);
    let leases = node
        .log
        .leases(&node.name, ttl)
        .await
        .map_err(|e| incomplete(e.to_string()))?;
    let t = Instant::now();
    loop {
        match leases.reports(crate::cluster::APPLIED).await {
            Ok(r) => {
                let behind: Vec<_> = r.iter().filter(|(_, at)| *at < entry).collect();
                if behind.is_empty() && r.iter().any(|(n, _)| *n == node.name) {
                    return Ok(r.len());
                }
                if t.elapsed() > limit {
                    return Err(incomplete(format!(
                        "after {} s, nodes have not applied the erasure's entry {entry}: {behind:?}",
                        limit.as_secs()
                    )));
                }
            }
            Err(e) if t.elapsed() > limit => return Err(incomplete(e.to_string())),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A sharded cluster's erasure after its entry `entry` (every node deleted the subject's keys in
/// the partitions it holds there, and renamed it in the rest of its state, but not yet in its log;
/// `sequence`: the engine's sequence number then):
/// 1. every reporting node applied the entry;
/// 2. every unit (partition, the global stages) is held by a node snapshot in the object store
///    taken after it — until then a unit may have to be rebuilt from an older one, replaying a
///    node's log across the erasure's record, which must still name the token;
/// 3. the second entry (unless this node applied one for this erasure already: the asking node's,
///    when this is the `duties` fallback): every node renames the token in its log up to the
///    erasure's record (`Core::finish_erasure`) and writes a snapshot covering the second entry;
/// 4. the erasure floor is raised to the entry, and the node snapshots taken before it (a gone
///    node's; a live node's own is newer by step 2, or it shares its newest again) are deleted;
/// 5. the shares of the events up to the erasure holding the token or the clear value are erased
///    from `<stream>-shares` (a share holds the values its event read: a `last_value` of the
///    subject, the findings of the stages);
/// 6. the stream's entries up to the erasure's holding them are erased, and both erasure entries
///    (every second entry: they hold the pseudonym, which no event holds); the shared snapshot is
///    one covering the second entry. Last, since the erasure's entry still being in the stream is
///    what makes the `duties` fallback finish an erasure whose asking node died.
async fn finish_sharded(
    st: &AppState,
    node: &crate::cluster::Node,
    token: &str,
    pseudonym: &str,
    value: &str,
    (entry, sequence): (u64, u64),
) -> Result<Value, Answer> {
    let shard = st
        .shared
        .shard
        .get()
        .cloned()
        .ok_or_else(|| incomplete("not sharded".into()))?;
    wait_applied(st, node, entry).await?;
    let finished = |st: &AppState| {
        st.shared
            .erasures_finished
            .lock()
            .ok()
            .and_then(|f| f.get(&entry).copied())
    };
    let (second, log_records, log_occurrences) = match finished(st) {
        Some(second) => (second, json!(null), json!(null)),
        None => {
            let (_, limit) = patience(st);
            let t = Instant::now();
            loop {
                let missing: Vec<usize> = match node.log.node_snapshots().await {
                    Ok(listed) => (0..shard.units)
                        .filter(|u| {
                            !listed
                                .iter()
                                .any(|s| s.at.cursor >= entry && s.held.contains(&(*u as u32)))
                        })
                        .collect(),
                    Err(e) if t.elapsed() > limit => return Err(incomplete(e.to_string())),
                    Err(_) => vec![usize::MAX],
                };
                if missing.is_empty() {
                    break;
                }
                if t.elapsed() > limit {
                    return Err(incomplete(format!(
                        "after {} s, units {missing:?} are in no node snapshot taken after the erasure's entry {entry}",
                        limit.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let fin = crate::cluster::append_erasure_finish(
                node,
                token.to_string(),
                pseudonym.to_string(),
                entry,
            )
            .await;
            let Answer::Done { body: fin, .. } = fin else {
                return Err(fin);
            };
            let Some(second) = fin["entry"].as_u64() else {
                return Err(error(
                    Failure::Internal,
                    "internal_error",
                    "the erasure's second entry was applied without its number",
                ));
            };
            (
                second,
                fin["found"]["log_records"].clone(),
                fin["found"]["log_occurrences"].clone(),
            )
        }
    };
    // No node shares a snapshot from before the erasure from now on (one that missed it, or one
    // whose object was deleted below and shares its newest again), and those there go; twice, in
    // case a node's check of the floor came just before it was raised.
    node.log
        .raise_erasure_floor(entry)
        .await
        .map_err(|e| incomplete(format!("the erasure floor: {e}")))?;
    let mut deleted = delete_snapshots_before(node, entry).await?;
    let needles = needles(token, value);
    let needles: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let (shares_read, shares_erased) = shard
        .erase_shares_holding(&needles, sequence)
        .await
        .map_err(|e| incomplete(format!("erasing the shares: {e}")))?;
    deleted += delete_snapshots_before(node, entry).await?;
    let (read, erased, nodes) =
        erase_from_stream(st, node, token, value, entry, Some((second, pseudonym))).await?;
    Ok(json!({
        "log_records": log_records,
        "log_occurrences": log_occurrences,
        "stream_entries_read": read,
        "stream_entries_erased": erased,
        "nodes": nodes,
        "shares_read": shares_read,
        "shares_erased": shares_erased,
        "node_snapshots_deleted": deleted,
    }))
}

/// Deletes the node snapshots in the object store that cover less than entry `entry`; how many.
async fn delete_snapshots_before(node: &crate::cluster::Node, entry: u64) -> Result<u64, Answer> {
    let listed = node
        .log
        .node_snapshots()
        .await
        .map_err(|e| incomplete(e.to_string()))?;
    let mut deleted = 0;
    for s in listed.iter().filter(|s| s.at.cursor < entry) {
        node.log
            .delete_object(&s.object)
            .await
            .map_err(|e| incomplete(format!("deleting {}: {e}", s.object)))?;
        deleted += 1;
    }
    Ok(deleted)
}

/// What an erasure looks for in the stream and the shares: the token, and the clear value in case
/// a request carried it (its forms of 6 characters or more, not to match inside unrelated bytes).
fn needles(token: &str, value: &str) -> Vec<String> {
    let mut needles: Vec<String> = vec![token.to_string()];
    needles.extend(clear_forms(value).into_iter().filter(|c| c.len() >= 6));
    needles
}

/// The stream's part of a cluster's erasure at entry `upto`: once every reporting node applied
/// it (in a sharded cluster, its second entry `second`), erases the stream's entries up to it that
/// hold the token or the clear value, and `upto` itself; with `second`, also every entry up to
/// `second` holding the pseudonym (the erasure's second entries: no event holds it). The shared
/// snapshot is made one that covers the last of them (before and after). Returns the stream's
/// entries read and erased, and the nodes that reported applying it.
pub(crate) async fn erase_from_stream(
    st: &AppState,
    node: &crate::cluster::Node,
    token: &str,
    value: &str,
    upto: u64,
    second: Option<(u64, &str)>,
) -> Result<(u64, u64, usize), Answer> {
    let last = second.map_or(upto, |(s, _)| s);
    // The shared snapshot: this node's, which covers the entry (written by the core's erasure).
    share_renamed(st, node, last).await.map_err(incomplete)?;
    let nodes = wait_applied(st, node, last).await?;
    let needles = needles(token, value);
    let needles: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let (mut read, mut holding) = node
        .log
        .entries_holding(upto, &needles)
        .await
        .map_err(|e| incomplete(e.to_string()))?;
    holding.push(upto);
    if let Some((second, pseudonym)) = second {
        let (r, more) = node
            .log
            .entries_holding(second, &[pseudonym.as_bytes()])
            .await
            .map_err(|e| incomplete(e.to_string()))?;
        read += r;
        holding.extend(more);
        holding.push(second);
    }
    holding.sort_unstable();
    holding.dedup();
    let erased = node
        .log
        .erase_entries(&holding)
        .await
        .map_err(|e| incomplete(e.to_string()))?;
    crate::metrics::inc(crate::metrics::CLUSTER_ENTRIES_ERASED, erased);
    // Another node may have shared an older snapshot meanwhile (its check came before this one's
    // put): the renamed one goes back.
    share_renamed(st, node, last).await.map_err(incomplete)?;
    Ok((read, erased, nodes))
}

/// Makes the shared snapshot one that covers the erasure's entry: this node's newest, shared
/// again while the one there is older (three tries).
async fn share_renamed(
    st: &AppState,
    node: &crate::cluster::Node,
    entry: u64,
) -> Result<(), String> {
    for _ in 0..3 {
        match node.log.shared_snapshot().await {
            Ok(Some(s)) if s.cursor >= entry => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the shared snapshot: {e}")),
        }
        let (_, path) = crate::core::snapshot_files(&st.settings.data_dir)
            .into_iter()
            .next()
            .ok_or("no snapshot of the renamed state on this node")?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let (record, cursor) = crate::core::snapshot_position(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if cursor < entry {
            return Err(format!(
                "this node's newest snapshot covers entry {cursor}, before the erasure's {entry}"
            ));
        }
        node.log
            .publish_snapshot(argus_cluster::SharedSnapshot { cursor, record }, &bytes)
            .await
            .map_err(|e| format!("sharing the renamed snapshot: {e}"))?;
    }
    Err(format!(
        "the shared snapshot kept being replaced by one older than the erasure's entry {entry}"
    ))
}

#[cfg(test)]
mod value_tests {
    use super::*;

    fn body(v: Value) -> ErasureBody {
        serde_json::from_value(json!({"kind": "address", "value": v, "reason": "a test reason"}))
            .unwrap()
    }

    /// The request's value is kept as its JSON text, so a string whose text is JSON stays a
    /// string, and an object stays an object, whatever the step that reads it.
    #[test]
    fn a_value_keeps_its_form_through_its_json_text() {
        let s = body(json!("{\"line1\": \"1 Main St\"}"));
        assert_eq!(subject_value(&s.value), json!("{\"line1\": \"1 Main St\"}"));
        let o = body(json!({"line1": "1 Main St"}));
        assert_eq!(subject_value(&o.value), json!({"line1": "1 Main St"}));
        assert!(serde_json::from_value::<ErasureBody>(
            json!({"kind": "email", "value": 7, "reason": "a test reason"})
        )
        .is_err());
    }

    /// An email's clear forms: as given, trimmed, lower case. An address object's: its street
    /// lines and name joined, never a part alone (which other people's addresses may hold) nor
    /// its derived attributes.
    #[test]
    fn clear_forms_of_a_string_and_of_an_address_object() {
        assert_eq!(
            clear_forms(&body(json!(" Victim@X.com")).value),
            [" Victim@X.com", "Victim@X.com", "victim@x.com"]
        );
        let o = body(json!({"line1": "17 Qwertyuiop Lane", "name": "Ann Lee", "city": "London"}));
        assert_eq!(
            clear_forms(&o.value),
            ["17 Qwertyuiop Lane Ann Lee", "17 qwertyuiop lane ann lee"]
        );
        assert!(clear_forms("").is_empty(), "a node that never saw it");
    }

    /// A card's or a phone's digits are looked for however spelled; other kinds' values not.
    #[test]
    fn a_cards_and_a_phones_digits_are_looked_for_in_notes() {
        let schema = argus_event::Schema::builtin();
        let numbers = |kind: &str, v: Value| spelled_numbers(&schema, kind, &body(v).value);
        assert_eq!(
            numbers("card", json!("4000-0566-5566-5556")),
            ["4000056655665556"]
        );
        assert_eq!(
            numbers("phone", json!("+1 (555) 010-4477")),
            ["15550104477"]
        );
        assert!(numbers("ip", json!("192.168.100.200")).is_empty());
        assert!(numbers("email", json!("a123456@x.com")).is_empty());
        assert!(numbers("address", json!({"line1": "1234567 Road"})).is_empty());
        // A card is looked for by its digits alone; an email by its clear forms.
        let forms = |kind: &str, v: Value| typed_forms(&schema, kind, &body(v).value);
        assert_eq!(
            forms("card", json!("4000056655665556")),
            (vec![], vec!["4000056655665556".to_string()])
        );
        assert_eq!(
            forms("email", json!("A@x.com")),
            (vec!["A@x.com".to_string(), "a@x.com".to_string()], vec![])
        );
    }
}
