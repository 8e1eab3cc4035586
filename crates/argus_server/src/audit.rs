//! The audit log beside the server (`argus_cases::audit`): every request that changes something —
//! policies and versions, lists, rollouts, snoozes, models and configuration (reloads), users, cases
//! and verdicts, outbox retries, bulk jobs — and every reveal of personal data is recorded with who,
//! when, what and why before it is made. When the record cannot be written the change is refused
//! (503 `audit_unavailable`) and nothing else happens. The outcome follows as a second record.
//!
//! The record keeps the route, the path, the request body's SHA-256 and size (not the body: notes
//! and list values may hold personal data) and the reason: the `Argus-Reason` header, else the
//! body's `reason`, `comment` or `message`. A list item's value in the path is kept as its SHA-256
//! too, for the same reason.
//!
//! Not recorded as changes: events, batches and labels (the data itself, in the event log), logging
//! in and out, and the routes that only compute (`/v1/policies/check`, `/v1/bulk/preview`).

use crate::api::{respond, AppState, Principal};
use crate::core::{error, now_ms, Failure};
use crate::metrics;
use argus_cases::audit::{Audit, NewRecord};
use axum::extract::{MatchedPath, State};
use axum::http::Method;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Routes whose state-changing methods are not audit records (see the module's comment).
const NOT_AUDITED: &[&str] = &[
    "/v1/events",
    "/v1/events/batch",
    "/v1/labels",
    "/v1/session",
    "/v1/policies/check",
    "/v1/bulk/preview",
];

/// The longest reason kept (characters); the rest is cut with an ellipsis.
const MAX_REASON: usize = 2_000;

/// The server's handle on the audit log: opened by a task at start, retried every 5 s.
#[derive(Default)]
pub struct AuditService {
    audit: OnceLock<Audit>,
    error: Mutex<Option<String>>,
}

impl AuditService {
    /// The open log, or the answer that refuses a change while it is not.
    pub fn get(&self) -> Result<&Audit, crate::core::Answer> {
        self.audit.get().ok_or_else(|| {
            let why = self
                .error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "the audit log is still opening".into());
            error(
                Failure::Unavailable,
                "audit_unavailable",
                format!("{why}; no change is made without its audit record"),
            )
        })
    }

    /// Appends a record; the error answer when it cannot be written.
    pub async fn record(&self, r: NewRecord, kind: &'static str) -> Result<i64, Response> {
        // Just after start the log may still be opening: a change waits for it (up to 10 s) unless
        // opening has already failed.
        for _ in 0..1_000 {
            let failed = self.error.lock().map(|e| e.is_some()).unwrap_or(true);
            if self.audit.get().is_some() || failed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let audit = self.get().map_err(|a| {
            metrics::inc(metrics::AUDIT_REFUSALS, 1);
            respond(a)
        })?;
        match audit.append(&r).await {
            Ok((seq, _)) => {
                metrics::inc_labeled(metrics::AUDIT_RECORDS, "kind", kind);
                Ok(seq)
            }
            Err(e) => {
                metrics::inc(metrics::AUDIT_REFUSALS, 1);
                tracing::error!("audit record not written, change refused: {e}");
                Err(respond(error(
                    Failure::Unavailable,
                    "audit_unavailable",
                    format!(
                        "the audit record could not be written ({e}); no change is made without it"
                    ),
                )))
            }
        }
    }
}

/// The audit log opened (by the case task, on its pool, when cases are on).
pub fn opened(st: &AppState, a: Audit) {
    let _ = st.audit.audit.set(a);
    if let Ok(mut g) = st.audit.error.lock() {
        *g = None;
    }
}

/// The store did not open (yet): changes are refused with this reason meanwhile.
pub fn failed(st: &AppState, why: String) {
    if let Ok(mut g) = st.audit.error.lock() {
        *g = Some(why);
    }
}

/// Opens the audit log in the server's store (`[cases] database`, else `cases.db` in the data
/// directory) when cases are off, trying again every 5 s until it opens. (With cases on, the case
/// task opens it on the store's own pool.)
pub async fn open(st: AppState) {
    let url = crate::cases::database_url(&st);
    loop {
        match Audit::open(&url).await {
            Ok(a) => return opened(&st, a),
            Err(e) => {
                let msg = format!(
                    "the audit log ({}) did not open: {e}",
                    argus_cluster::redact(&url)
                );
                tracing::error!("{msg}; trying again every 5 s");
                failed(&st, msg);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Audit retention (`[server] audit_retention`): every hour, on the node on duty, the records
/// older than the retention are pruned from the start of the chain (`Audit::prune`).
pub async fn retention(st: AppState) {
    let Some(keep) = st.settings.audit_retention else {
        return;
    };
    loop {
        if crate::cluster::on_duty(&st) {
            if let Some(a) = st.audit.audit.get() {
                let now = now_ms();
                match a.prune(now - keep.as_millis() as i64, now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("audit retention: {n} records pruned"),
                    Err(e) => tracing::warn!("audit retention: {e}"),
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_REASON {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_REASON).collect();
    t.push('…');
    t
}

/// The reason a request gives: the `Argus-Reason` header, else the body's `reason`, `comment` or
/// `message` string.
fn reason_of(headers: &axum::http::HeaderMap, body: &[u8]) -> String {
    if let Some(r) = headers
        .get("argus-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.trim().is_empty())
    {
        return cut(r.trim());
    }
    let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    ["reason", "comment", "message"]
        .iter()
        .find_map(|k| o.get(*k).and_then(|v| v.as_str()))
        .map(|r| cut(r.trim()))
        .unwrap_or_default()
}

/// The path as recorded: a list item's value replaced by its SHA-256, and tokens masked.
fn target_of(route: &str, path: &str) -> String {
    if route == "/v1/lists/{name}/items/{value}" {
        if let Some((head, value)) = path.rsplit_once('/') {
            let clear = percent_decode(value);
            return format!("{head}/sha256:{}", sha256_hex(clear.as_bytes()));
        }
    }
    mask_tokens(path)
}

/// Tokens of personal data (`tk_` and 32 hex digits, as in case ids) become `tk_*`: the audit log
/// is append-only, so it must hold nothing an erasure would have to rename. (A token is a function
/// of the clear value: whoever holds the secret and the value could find it.)
pub fn mask_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"tk_")
            && b.len() >= i + 35
            && b[i + 3..i + 35].iter().all(|c| c.is_ascii_hexdigit())
        {
            out.push_str("tk_*");
            i += 35;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('?');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The middleware (inside `authorize`): records each state-changing request before it runs, and
/// its outcome after.
pub async fn audited(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return next.run(req).await;
    }
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return next.run(req).await;
    };
    if NOT_AUDITED.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let (actor, role) = req
        .extensions()
        .get::<Principal>()
        .map(|p| (p.name.clone(), p.role.name.clone()))
        // No API keys configured (development mode): every request is allowed, and recorded.
        .unwrap_or_else(|| ("anonymous".into(), "none".into()));
    let (parts, body) = req.into_parts();
    let limit = st.settings.max_body;
    // The body arrives within `body_timeout`, as in every handler: a slow client holds nothing.
    let read = tokio::time::timeout(st.settings.body_timeout, axum::body::to_bytes(body, limit));
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Err(_) => {
            return respond(error(
                Failure::Timeout,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    st.settings.body_timeout.as_millis()
                ),
            ))
        }
        Ok(Err(_)) => {
            return respond(error(
                Failure::TooLarge,
                "payload_too_large",
                format!("the request body is over the limit of {limit} bytes"),
            ))
        }
    };
    let method = parts.method.as_str().to_string();
    let record = NewRecord {
        at_ms: now_ms(),
        actor: actor.clone(),
        role: role.clone(),
        action: format!("{method} {route}"),
        target: target_of(&route, parts.uri.path()),
        reason: mask_tokens(&reason_of(&parts.headers, &bytes)),
        // An erasure's body holds the clear value: not even its digest is kept (the log cannot
        // forget it).
        detail: if route == "/v1/erasure" {
            serde_json::json!({"body_bytes": bytes.len()})
        } else {
            serde_json::json!({
                "body_sha256": sha256_hex(&bytes),
                "body_bytes": bytes.len(),
            })
        },
    };
    let kind = if route.ends_with("/reveal") {
        "reveal"
    } else {
        "change"
    };
    let seq = match st.audit.record(record, kind).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    let resp = next.run(req).await;
    let outcome = NewRecord {
        at_ms: now_ms(),
        actor,
        role,
        action: "result".into(),
        target: seq.to_string(),
        reason: String::new(),
        detail: serde_json::json!({"status": resp.status().as_u16()}),
    };
    if st.audit.record(outcome, "result").await.is_err() {
        metrics::inc(metrics::AUDIT_RESULT_FAILURES, 1);
        tracing::error!("the outcome of audited change {seq} could not be recorded");
    }
    resp
}

/// A change the server makes by itself (a reload on SIGHUP): recorded as `system`; `false` when
/// the record could not be written, and the change must not be made.
pub async fn system(st: &AppState, action: &str, reason: &str) -> bool {
    let r = NewRecord {
        at_ms: now_ms(),
        actor: "system".into(),
        role: "system".into(),
        action: action.into(),
        target: String::new(),
        reason: reason.into(),
        detail: serde_json::json!({}),
    };
    st.audit.record(r, "system").await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_are_kept_as_digests_and_reasons_come_from_header_or_body() {
        let t = target_of(
            "/v1/lists/{name}/items/{value}",
            "/v1/lists/blocked_emails/items/a%40b.com",
        );
        assert_eq!(
            t,
            format!(
                "/v1/lists/blocked_emails/items/sha256:{}",
                sha256_hex(b"a@b.com")
            )
        );
        assert_eq!(
            target_of("/v1/users/{name}", "/v1/users/ana"),
            "/v1/users/ana"
        );
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(reason_of(&h, br#"{"comment":" dup of 12 "}"#), "dup of 12");
        assert_eq!(reason_of(&h, b"not json"), "");
        h.insert("argus-reason", "ticket 7".parse().unwrap());
        assert_eq!(reason_of(&h, br#"{"comment":"x"}"#), "ticket 7");
        assert_eq!(
            target_of(
                "/v1/cases/{id}/notes",
                "/v1/cases/email:tk_b45a393c330f5e2a85a2ee3659ab755a@17965/notes"
            ),
            "/v1/cases/email:tk_*@17965/notes"
        );
        assert_eq!(mask_tokens("tk_abc é tk_"), "tk_abc é tk_");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%2Fb%2"), "a/b%2");
        // A `%` before a multibyte character (raw UTF-8 in a path) is kept, not a panic.
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%é1"), "%é1");
        assert_eq!(cut(&"x".repeat(3000)).chars().count(), MAX_REASON + 1);
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    /// Records after this sequence (0: from the first).
    after: Option<i64>,
    /// At most this many (default 100, at most 1,000).
    limit: Option<i64>,
}

/// `GET /v1/audit`: records after a sequence, oldest first (`argus audit verify` checks the chain).
pub async fn list(
    State(st): State<AppState>,
    q: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(q) => q.0,
        Err(e) => return crate::cases::query_error(e),
    };
    let audit = match st.audit.get() {
        Ok(a) => a,
        Err(a) => return respond(a),
    };
    let after = q.after.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    match audit.page(after, limit).await {
        Ok(records) => {
            let next = records.last().map(|r| r.seq);
            respond(crate::core::ok(
                serde_json::json!({"records": records, "next_after": next}),
            ))
        }
        Err(e) => respond(error(
            Failure::Unavailable,
            "audit_unavailable",
            format!("reading the audit log: {e}"),
        )),
    }
}
