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
//! Not covered (docs/privacy.md): a user id (the shop's own pseudonym, kept in clear), other nodes
//! of a cluster and the shared JetStream stream, one-off exports written elsewhere, list files on
//! disk, and distinct-count sketches of other keys (they keep a 64-bit hash of the token, which only
//! counts).

use crate::api::{ask, respond, AppState};
use crate::core::{error, ok, Answer, Failure, Request};
use axum::extract::State;
use axum::response::Response;

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
    // One node renaming a subject alone would leave the nodes with different states (and the
    // shared stream keeps the subject's entries): refused, rather than done in part.
    if st.cluster.is_some() {
        return respond(error(
            Failure::Conflict,
            "cluster_erasure",
            "erasure is not available in a cluster yet: it would rename the subject on this node only, and the shared JetStream stream keeps its entries (docs/privacy.md)",
        ));
    }
    crate::core::export::ERASURE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let done = match ask(
        &st,
        Request::Erase {
            kind: b.kind.clone(),
            value: b.value.clone(),
        },
    )
    .await
    {
        Answer::Done { body, .. } => body,
        other => return respond(other),
    };
    let (Some(token), Some(pseudonym)) = (done["token"].as_str(), done["pseudonym"].as_str())
    else {
        return respond(error(
            Failure::Internal,
            "internal_error",
            "erasure answered without its pseudonym",
        ));
    };
    let mut found = done["found"].clone();
    let vault = st
        .vault
        .as_ref()
        .map(|v| v.erase(&[token.to_string()]))
        .transpose();
    match vault {
        Ok(n) => found["vault"] = serde_json::json!(n.unwrap_or(0)),
        Err(e) => {
            return respond(error(
                Failure::Internal,
                "erasure_failed",
                format!("the vault: {e}; repeat the request"),
            ))
        }
    }
    // The clear value as it may have been typed into a note: as given, trimmed, lower case.
    let mut clear = vec![
        b.value.clone(),
        b.value.trim().to_string(),
        b.value.trim().to_lowercase(),
    ];
    clear.sort();
    clear.dedup();
    if let Some(svc) = &st.cases {
        let store = match svc.store() {
            Ok(s) => s,
            Err(a) => return respond(a),
        };
        match store.scrub(token, pseudonym, &clear).await {
            Ok(n) => found["case_rows"] = serde_json::json!(n),
            Err(e) => {
                return respond(error(
                    Failure::Unavailable,
                    "erasure_failed",
                    format!("the case store: {e}; the log and state are done, repeat the request for the rest"),
                ))
            }
        }
    }
    if let Some(dir) = &st.settings.export_dir {
        crate::core::export::ERASURE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Only what the export writes there: the folder may hold other things.
        let mut removed = 0;
        for t in crate::core::export::TABLES {
            if std::fs::remove_dir_all(dir.join(t)).is_ok() {
                removed += 1;
            }
        }
        if std::fs::remove_file(crate::core::export::cursor_path(dir)).is_ok() {
            removed += 1;
        }
        found["export_entries_removed"] = serde_json::json!(removed);
    }
    let summary = serde_json::json!({"kind": b.kind, "found": found});
    if !crate::audit::system(&st, "erasure completed", &summary.to_string()).await {
        tracing::error!("erasure done but its completion could not be audited");
    }
    crate::metrics::inc(crate::metrics::ERASURES, 1);
    respond(ok(summary))
}
