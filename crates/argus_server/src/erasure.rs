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
//! In a cluster (replicated, not sharded) the renaming is an entry of the shared log, applied by
//! every node at the same point ([`in_cluster`]): this node plans it (the token, and the keys its log
//! shows), appends it with a new random pseudonym, and once every live node has applied it erases
//! from the JetStream stream every entry up to it that holds the token — the erasure's own entry,
//! which links token and pseudonym, included.
//!
//! Not covered (docs/privacy.md): a user id (the shop's own pseudonym, kept in clear), a sharded
//! cluster, one-off exports written elsewhere, list files on disk, and distinct-count sketches of
//! other keys (they keep a 64-bit hash of the token, which only counts).

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
    /// The value as the shop knows it (normalized as events are).
    value: String,
    /// Why (the request is audited with it); else the `Argus-Reason` header.
    reason: Option<String>,
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
    scrub_cases(st, &token, &pseudonym, &b.value, &mut found).await?;
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

/// The clear value as it may have been typed into a note: as given, trimmed, lower case.
fn clear_forms(value: &str) -> Vec<String> {
    let mut clear = vec![
        value.to_string(),
        value.trim().to_string(),
        value.trim().to_lowercase(),
    ];
    clear.sort();
    clear.dedup();
    clear
}

/// Renames the token and blanks the clear value in the case store, when cases are on.
async fn scrub_cases(
    st: &AppState,
    token: &str,
    pseudonym: &str,
    value: &str,
    found: &mut Value,
) -> Result<(), Answer> {
    let Some(svc) = &st.cases else {
        return Ok(());
    };
    let store = svc.store()?;
    match store.scrub(token, pseudonym, &clear_forms(value)).await {
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

/// A node of a replicated cluster:
/// 1. this node's core finds the token and the keys its log shows ([`Request::ErasurePlan`]);
/// 2. the erasure is appended to the shared log with a new random pseudonym and applied by every
///    node at that point (its log, state, snapshots and findings; its vault and export: see
///    `cluster::after_erasure`), this one answering;
/// 3. the case store (shared PostgreSQL) is scrubbed once;
/// 4. this node shares its snapshot of the renamed state, so that no node starts from an older one;
/// 5. once every live node reports having applied the entry (or its report expired: a node that
///    was down then stops at the gap this leaves and must start empty), every entry of the stream
///    up to the erasure's that holds the token or the clear value is erased, the erasure's own
///    entry with them.
///
/// A sharded cluster is refused (`409 cluster_erasure`): a renamed key lands in another partition,
/// held by another node.
async fn in_cluster(
    st: &AppState,
    node: &crate::cluster::Node,
    b: &ErasureBody,
) -> Result<Value, Answer> {
    if st.shared.shard.get().is_some() {
        return Err(error(
            Failure::Conflict,
            "cluster_erasure",
            "erasure is not available in a sharded cluster ([cluster] partitions) yet: the renamed keys would belong to partitions other nodes hold (docs/privacy.md)",
        ));
    }
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
    let entry = match &applied {
        Answer::Done { body, .. } => body["entry"].as_u64(),
        _ => None,
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
        let (st, token, value) = (st.clone(), token.clone(), b.value.clone());
        async move {
            let Some(node) = st.cluster.clone() else {
                return Err(error(
                    Failure::Internal,
                    "internal_error",
                    "not in a cluster",
                ));
            };
            erase_from_stream(&st, &node, &token, &value, entry).await
        }
    });
    let scrubbed = scrub_cases(st, &token, &pseudonym, &b.value, &mut found).await;
    let (read, erased, nodes) = match stream.await {
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
    found["stream_entries_read"] = json!(read);
    found["stream_entries_erased"] = json!(erased);
    found["nodes"] = json!(nodes);
    Ok(found)
}

/// Steps 4 and 5 of [`in_cluster`]: returns the stream's entries read and erased, and the nodes
/// that reported applying the erasure's entry `entry`.
pub(crate) async fn erase_from_stream(
    st: &AppState,
    node: &crate::cluster::Node,
    token: &str,
    value: &str,
    entry: u64,
) -> Result<(u64, u64, usize), Answer> {
    let unavailable = |what: String| {
        error(
            Failure::Unavailable,
            "erasure_incomplete",
            format!("{what}; the subject is renamed on the nodes that applied the erasure, and the shared stream still holds its entries: repeat the request"),
        )
    };
    // 4. The shared snapshot: this node's, which covers the entry (written by the core's erasure).
    share_renamed(st, node, entry).await.map_err(unavailable)?;
    // 5. Every live node past the entry, this one among them.
    let ttl = st
        .settings
        .cluster
        .as_ref()
        .map_or(Duration::from_secs(10), |c| c.lease_ttl());
    let leases = node
        .log
        .leases(&node.name, ttl)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let limit = (ttl * 3).max(Duration::from_secs(30));
    let t = Instant::now();
    let nodes = loop {
        match leases.reports(crate::cluster::APPLIED).await {
            Ok(r) => {
                let behind: Vec<_> = r.iter().filter(|(_, at)| *at < entry).collect();
                if behind.is_empty() && r.iter().any(|(n, _)| *n == node.name) {
                    break r.len();
                }
                if t.elapsed() > limit {
                    return Err(unavailable(format!(
                        "after {} s, nodes have not applied the erasure's entry {entry}: {behind:?}",
                        limit.as_secs()
                    )));
                }
            }
            Err(e) if t.elapsed() > limit => return Err(unavailable(e.to_string())),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The token, and the clear value in case a request carried it (long enough not to match
    // inside unrelated bytes).
    let mut needles: Vec<String> = vec![token.to_string()];
    needles.extend(clear_forms(value).into_iter().filter(|c| c.len() >= 6));
    let needles: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let (read, mut holding) = node
        .log
        .entries_holding(entry, &needles)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !holding.contains(&entry) {
        holding.push(entry);
    }
    let erased = node
        .log
        .erase_entries(&holding)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    crate::metrics::inc(crate::metrics::CLUSTER_ENTRIES_ERASED, erased);
    // Another node may have shared an older snapshot meanwhile (its check came before this one's
    // put): the renamed one goes back.
    share_renamed(st, node, entry).await.map_err(unavailable)?;
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
