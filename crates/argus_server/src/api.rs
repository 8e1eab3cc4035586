//! The HTTP API (axum). Handlers authenticate, read and bound the body, and hand the request to the
//! core; every error, from any layer, has the one shape `{"error": {"code", "message", "details"?}}`.

use crate::core::{error, ok, Answer, CoreError, Failure, Msg, Request, Shared};
use crate::metrics as m;
use crate::settings::{Perm, Role, Settings};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Every route: method, path (OpenAPI syntax) and the permission it needs (`None`: open). The OpenAPI
/// document is tested against this table, and the router is built from the same handlers.
pub const ROUTES: &[(&str, &str, Option<Perm>)] = &[
    ("post", "/v1/events", Some(Perm::Ingest)),
    ("post", "/v1/events/batch", Some(Perm::Ingest)),
    ("post", "/v1/labels", Some(Perm::Ingest)),
    ("get", "/v1/decisions/{id}", Some(Perm::Read)),
    ("post", "/v1/decisions/{id}/reveal", Some(Perm::Reveal)),
    ("get", "/v1/entities/{kind}/{id}", Some(Perm::Read)),
    ("get", "/v1/findings", Some(Perm::Read)),
    ("get", "/v1/lists/{name}", Some(Perm::Read)),
    ("put", "/v1/lists/{name}/items/{value}", Some(Perm::Rules)),
    (
        "delete",
        "/v1/lists/{name}/items/{value}",
        Some(Perm::Rules),
    ),
    ("post", "/v1/session", None),
    ("get", "/v1/session", Some(Perm::Ingest)),
    ("delete", "/v1/session", Some(Perm::Ingest)),
    ("get", "/v1/session/methods", None),
    ("get", "/v1/session/oidc", None),
    ("get", "/v1/session/oidc/callback", None),
    ("get", "/v1/users", Some(Perm::Admin)),
    ("put", "/v1/users/{name}", Some(Perm::Admin)),
    ("get", "/v1/inboxes", Some(Perm::Cases)),
    ("get", "/v1/cases", Some(Perm::Cases)),
    ("post", "/v1/cases", Some(Perm::Cases)),
    ("post", "/v1/cases/next", Some(Perm::Cases)),
    ("get", "/v1/cases/{id}", Some(Perm::Cases)),
    ("post", "/v1/cases/{id}/claim", Some(Perm::Cases)),
    ("post", "/v1/cases/{id}/release", Some(Perm::Cases)),
    ("post", "/v1/cases/{id}/notes", Some(Perm::Cases)),
    ("post", "/v1/cases/{id}/tags", Some(Perm::Cases)),
    ("post", "/v1/cases/{id}/verdict", Some(Perm::Cases)),
    ("post", "/v1/cases/{id}/escalate", Some(Perm::Investigate)),
    ("post", "/v1/cases/{id}/reopen", Some(Perm::Investigate)),
    ("get", "/v1/outbox", Some(Perm::Cases)),
    ("post", "/v1/outbox/{id}/retry", Some(Perm::Investigate)),
    ("post", "/v1/bulk/preview", Some(Perm::Investigate)),
    ("post", "/v1/bulk", Some(Perm::Investigate)),
    ("get", "/v1/bulk/{id}", Some(Perm::Investigate)),
    ("get", "/v1/graph/{kind}/{id}", Some(Perm::Read)),
    ("get", "/v1/entities/{kind}/{id}/cases", Some(Perm::Cases)),
    ("get", "/v1/rules/stats", Some(Perm::Read)),
    ("get", "/v1/versions", Some(Perm::Read)),
    ("post", "/v1/versions", Some(Perm::Rules)),
    ("get", "/v1/versions/{id}", Some(Perm::Read)),
    ("get", "/v1/versions/{id}/diff", Some(Perm::Read)),
    ("get", "/v1/versions/{id}/export", Some(Perm::Read)),
    ("post", "/v1/versions/{id}/approve", Some(Perm::Approve)),
    ("post", "/v1/versions/{id}/reject", Some(Perm::Approve)),
    ("post", "/v1/versions/{id}/activate", Some(Perm::Approve)),
    ("post", "/v1/versions/{id}/rollback", Some(Perm::Approve)),
    ("post", "/v1/policies/check", Some(Perm::Rules)),
    ("get", "/v1/policies/running", Some(Perm::Read)),
    ("post", "/v1/rules/{name}/mode", Some(Perm::Rules)),
    ("get", "/v1/lifecycle/history", Some(Perm::Read)),
    ("get", "/v1/backtests", Some(Perm::Read)),
    ("post", "/v1/backtests", Some(Perm::Rules)),
    ("get", "/v1/backtests/{id}", Some(Perm::Read)),
    ("get", "/v1/backtests/{id}/changes", Some(Perm::Read)),
    ("get", "/v1/rollout", Some(Perm::Read)),
    ("post", "/v1/rollout", Some(Perm::Approve)),
    ("post", "/v1/rollout/stop", Some(Perm::Approve)),
    ("post", "/v1/rollout/promote", Some(Perm::Approve)),
    ("get", "/v1/snoozes", Some(Perm::Read)),
    ("post", "/v1/snoozes", Some(Perm::Rules)),
    ("delete", "/v1/snoozes/{id}", Some(Perm::Rules)),
    ("get", "/v1/guard", Some(Perm::Read)),
    ("post", "/v1/guard/pauses/{id}/resume", Some(Perm::Approve)),
    ("get", "/console", None),
    ("get", "/console/", None),
    ("get", "/console/{file}", None),
    ("post", "/v1/admin/reload", Some(Perm::Admin)),
    ("get", "/v1/admin/status", Some(Perm::Admin)),
    ("get", "/v1/admin/digest", Some(Perm::Admin)),
    ("get", "/v1/audit", Some(Perm::Admin)),
    ("post", "/v1/erasure", Some(Perm::Admin)),
    ("get", "/healthz", None),
    ("get", "/readyz", None),
    ("get", "/metrics", None),
    ("get", "/openapi.json", None),
];

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every handler and middleware reads ([`AppParts`]), behind one reference count: axum
/// clones the state for each middleware layer of each request, and a clone of the parts (a
/// sender and up to nine `Arc`s) was 3–4.5 % of a saturated server's CPU (`perf`: the clone of
/// `FromFn`, the drop of the state and of its sender).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub tx: SyncSender<Msg>,
    pub shared: Arc<Shared>,
    pub settings: Arc<Settings>,
    /// The engine's decoder (its schema and secret never change while the server runs: a reload
    /// that would change them is refused), so that handlers decode events on their own threads and
    /// the core thread only applies them.
    pub decoder: Arc<argus_event::Decoder>,
    /// Cases, when on (`[cases] enabled`, the default).
    pub cases: Option<Arc<crate::cases::CaseService>>,
    /// Policy versions, backtests, rollouts, snoozes and the guard (with cases: they share a store).
    pub lifecycle: Option<Arc<crate::lifecycle::LifecycleService>>,
    /// This node of a cluster (`[cluster]`): requests that change state go through the shared log.
    pub cluster: Option<Arc<crate::cluster::Node>>,
    /// The audit log: every change is recorded before it is made (`crate::audit`).
    pub audit: Arc<crate::audit::AuditService>,
    /// Clear personal data, encrypted, when a vault key is configured (`crate::vault`).
    pub vault: Option<Arc<crate::vault::Vault>>,
    /// Console sign-in through an OpenID Connect provider (`[server.oidc]`).
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

/// Who is asking: an API key (by its name) or a console user's session.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Arc<Role>,
    /// The session's CSRF token (console users).
    pub csrf: Option<String>,
    /// The session token (console users), for logging out.
    pub session: Option<String>,
}

/// Routes any authenticated caller may use, whatever the role (the role in [`ROUTES`] is ignored).
const ANY_ROLE: &[&str] = &["/v1/session"];

/// The status code of each kind of failure: the one place where core results become HTTP.
pub fn status_of(kind: Failure) -> StatusCode {
    match kind {
        Failure::Invalid => StatusCode::BAD_REQUEST,
        Failure::Unauthorized => StatusCode::UNAUTHORIZED,
        Failure::Forbidden => StatusCode::FORBIDDEN,
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Failure::Timeout => StatusCode::REQUEST_TIMEOUT,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Failure::UriTooLong => StatusCode::URI_TOO_LONG,
        Failure::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Failure::BadGateway => StatusCode::BAD_GATEWAY,
        Failure::TooMany => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// The one error shape of every 4xx/5xx: `{"error": {"code", "message", "details"?}}`.
fn error_body(e: &CoreError) -> serde_json::Value {
    let mut o = json!({"code": e.code, "message": e.message});
    if let Some(d) = &e.details {
        o["details"] = d.clone();
    }
    json!({ "error": o })
}

/// A batch's body: counts, then each item's answer with its index and HTTP status. Event results
/// arrive serialized (`{…}`) and are extended in place to `{…,"index":i,"http_status":s}`.
fn batch_body(items: Vec<Answer>) -> Vec<u8> {
    let is = |a: &Answer, st: &str| matches!(a, Answer::Done { body, .. } if body == st);
    let accepted = items.iter().filter(|a| is(a, "accepted")).count();
    let duplicates = items.iter().filter(|a| is(a, "duplicate")).count();
    let mut b = format!(
        "{{\"accepted\":{accepted},\"duplicates\":{duplicates},\"rejected\":{},\"results\":[",
        items.len() - accepted - duplicates
    )
    .into_bytes();
    for (i, a) in items.into_iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        let (mut body, status) = match a {
            Answer::Done {
                raw: Some(mut r), ..
            } => {
                r.pop();
                b.extend_from_slice(&r);
                b.extend_from_slice(format!(",\"index\":{i},\"http_status\":200}}").as_bytes());
                continue;
            }
            Answer::Done { body, raw: None } => (body, StatusCode::OK),
            Answer::Failed(e) => (error_body(&e), status_of(e.kind)),
            Answer::Batch(_) => (json!({}), StatusCode::INTERNAL_SERVER_ERROR),
        };
        if let Some(o) = body.as_object_mut() {
            o.insert("index".into(), json!(i));
            o.insert("http_status".into(), json!(status.as_u16()));
        }
        serde_json::to_writer(&mut b, &body).unwrap_or_default();
    }
    b.extend_from_slice(b"]}");
    b
}

pub(crate) fn respond(a: Answer) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    match a {
        Answer::Done { raw: Some(raw), .. } => (StatusCode::OK, json, raw).into_response(),
        Answer::Done { body, raw: None } => (StatusCode::OK, axum::Json(body)).into_response(),
        Answer::Batch(items) => (StatusCode::OK, json, batch_body(items)).into_response(),
        Answer::Failed(e) => {
            // Only where waiting helps: a full queue, a slow answer, a restart in progress.
            let retry = matches!(e.code.as_str(), "overloaded" | "timeout" | "shutting_down");
            let mut r = (status_of(e.kind), axum::Json(error_body(&e))).into_response();
            if retry {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
    }
}

/// Who the request comes from: a console session (its cookie; a state-changing request must also
/// send the session's CSRF token in `X-CSRF-Token`), else an API key (`Authorization: Bearer <key>`
/// or `X-API-Key`). Without configured keys and without a session, everyone is `dev`, an admin
/// (development mode; the server warns at start). `Err`: the credentials given are wrong.
async fn principal(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<Principal>, Response> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(crate::cases::SESSION_COOKIE)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty());
    if let (Some(token), Some(svc)) = (cookie, st.cases.as_deref()) {
        if let Some(store) = svc.store.get() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            match store.session(&token, now).await {
                Ok(Some(s)) => {
                    if !matches!(*method, Method::GET | Method::HEAD) {
                        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
                        if !sent.is_some_and(|c| constant_time_eq(c.as_bytes(), s.csrf.as_bytes()))
                        {
                            return Err(respond(error(
                                Failure::Forbidden,
                                "csrf",
                                "a console request that changes state must send the session's CSRF token in X-CSRF-Token",
                            )));
                        }
                    }
                    // A user whose role left the configuration has no permissions until an
                    // admin gives them another.
                    let Some(role) = st.settings.roles.get(&s.role) else {
                        return Err(respond(error(
                            Failure::Forbidden,
                            "forbidden",
                            format!(
                                "`{}` has role `{}`, which is not configured",
                                s.user, s.role
                            ),
                        )));
                    };
                    return Ok(Some(Principal {
                        name: s.user,
                        role,
                        csrf: Some(s.csrf),
                        session: Some(token),
                    }));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("session lookup: {e}"),
            }
        }
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, k)| k.trim())
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    if st.settings.api_keys.is_empty() {
        return Ok(Some(Principal {
            name: "dev".into(),
            role: st.settings.roles.get("admin").unwrap_or_else(|| {
                Arc::new(Role {
                    name: "admin".into(),
                    permissions: argus_cases::Perms::of(&Perm::ALL),
                    inboxes: None,
                })
            }),
            csrf: None,
            session: None,
        }));
    }
    let Some(given) = given else { return Ok(None) };
    // Compare against every key in full, so that timing does not reveal which prefix matched.
    let mut found: Option<&crate::settings::ApiKey> = None;
    for k in &st.settings.api_keys {
        if constant_time_eq(k.key.as_bytes(), given.as_bytes()) {
            found = Some(k);
        }
    }
    match found {
        None => Err(respond(error(
            Failure::Unauthorized,
            "unauthenticated",
            "unknown API key",
        ))),
        Some(k) => Ok(Some(Principal {
            name: k.name.clone(),
            role: k.role.clone(),
            csrf: None,
            session: None,
        })),
    }
}

/// The answer to a request without credentials on a route that needs them.
fn unauthenticated() -> Response {
    let mut r = respond(error(
        Failure::Unauthorized,
        "unauthenticated",
        "an API key is required: `Authorization: Bearer <key>` (or a console session)",
    ));
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A degraded answer: an event answered without its decision, with `action`, because `stage`
/// could not decide it in time (`reason`). Neither recorded nor applied; `pending`: the event
/// may still be, and its recorded decision is then the full one (a cluster's late answer). A
/// checkpoint the installed policies do not decide has no decision, as its recorded answer.
pub(crate) fn degraded(
    st: &AppState,
    id: &str,
    ty: u16,
    action: argus_policy::Action,
    (stage, reason): (&'static str, &str),
    pending: bool,
) -> Answer {
    let checkpoint = &st.decoder.schema.get(ty).name;
    m::inc_labeled(m::DEGRADED_DECISIONS, "stage", stage);
    let decides = st
        .shared
        .decides
        .read()
        .map(|d| d.get(ty as usize).copied().unwrap_or(false))
        .unwrap_or(true);
    let mut decision = json!({
        "event_id": id,
        "checkpoint": checkpoint,
        "action": action.name(),
        "score": 0,
        "fired": [],
        "shadow": [],
        "errors": [],
        "policy_version": st.shared.version(),
        "decided_by": "degraded",
        "degraded": [[stage, reason]],
        "recorded": false,
    });
    if pending {
        decision["pending"] = json!(true);
    }
    let mut answer = json!({"status": "degraded", "id": id, "decision": decision});
    if !decides {
        answer["decision"] = serde_json::Value::Null;
        if pending {
            answer["pending"] = json!(true);
        }
    }
    crate::core::ok(answer)
}

/// `[deadlines] overload = "degrade"`: one event the full queue cannot take is answered a degraded
/// decision with the configured action, neither recorded nor applied (as a cluster's fail-open
/// answer). Batches and labels are refused as before.
fn overload_degraded(st: &AppState, req: &Request) -> Option<Answer> {
    let v = st.shared.overload.load(Ordering::SeqCst);
    let action = argus_policy::Action::ALL.get((v as usize).checked_sub(1)?)?;
    let Request::Events {
        decoded,
        labels_only: false,
        batch: false,
        ..
    } = req
    else {
        return None;
    };
    let ev = decoded.first()?.as_ref().ok()?;
    Some(degraded(
        st,
        &ev.id,
        ev.ty,
        *action,
        ("queue", "overloaded"),
        false,
    ))
}

/// Sends a request to the core and waits for its answer, within the request timeout.
pub async fn ask(st: &AppState, req: Request) -> Answer {
    if st.shared.failed.load(Ordering::SeqCst) && matches!(req, Request::Events { .. }) {
        if let Some(why) = st.shared.refused_because.get() {
            return error(Failure::Unavailable, "not_accepting_writes", why.clone());
        }
        return error(Failure::Unavailable, "not_accepting_writes", "the server refuses writes after an internal failure; restart it (it recovers from the log)");
    }
    if let Some(node) = &st.cluster {
        if crate::cluster::replicated(&req) {
            return crate::cluster::submit(st, node, req).await;
        }
    }
    ask_core(st, req).await
}

/// [`ask`] of this node's own core, in a cluster too (a request that does not go through the
/// shared log).
pub async fn ask_core(st: &AppState, req: Request) -> Answer {
    let (tx, rx) = oneshot::channel();
    let erasing = matches!(req, Request::Erase { .. } | Request::ErasurePlan { .. });
    st.shared.queued.fetch_add(1, Ordering::SeqCst);
    match st.tx.try_send(Msg { req, reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(msg)) => {
            st.shared.queued.fetch_sub(1, Ordering::SeqCst);
            if let Some(a) = overload_degraded(st, &msg.req) {
                return a;
            }
            m::inc(m::REJECTED_OVERLOAD, 1);
            return error(
                Failure::Unavailable,
                "overloaded",
                "the decision queue is full; retry after the time in Retry-After",
            );
        }
        Err(TrySendError::Disconnected(_)) => {
            st.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return error(
                Failure::Unavailable,
                "shutting_down",
                "the server is shutting down",
            );
        }
    }
    m::set_gauge(
        m::QUEUE_DEPTH,
        st.shared.queued.load(Ordering::Relaxed) as f64,
    );
    // An erasure rewrites the log and writes a snapshot: it is waited for (an hour at most), so
    // that its handler goes on with the vault and the case store only once the core is done.
    let wait = if erasing {
        std::time::Duration::from_secs(3600)
    } else {
        st.settings.request_timeout
    };
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => error(
            Failure::Unavailable,
            "shutting_down",
            "the server stopped before answering",
        ),
        // The request stays queued and may still be applied: clients retry with the same event id,
        // which is idempotent.
        Err(_) => error(
            Failure::Unavailable,
            "timeout",
            "no answer within the request timeout; retry with the same event id",
        ),
    }
}

pub(crate) async fn body_bytes(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Answer> {
    let max = st.settings.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(error(
            Failure::TooLarge,
            "payload_too_large",
            format!("the body is larger than the limit of {max} bytes"),
        ));
    }
    // A client that sends its body slowly (or not at all) is cut off: it would hold a connection and a
    // task for as long as it likes.
    let limit = st.settings.body_timeout;
    match tokio::time::timeout(limit, axum::body::to_bytes(body, max)).await {
        Ok(r) => r.map_err(|_| {
            error(
                Failure::TooLarge,
                "payload_too_large",
                format!("the body is larger than the limit of {max} bytes"),
            )
        }),
        Err(_) => Err(error(
            Failure::Timeout,
            "body_timeout",
            format!(
                "the request body did not arrive within {} ms (`server.body_timeout`)",
                limit.as_millis()
            ),
        )),
    }
}

fn one_document(bytes: &[u8]) -> Result<Box<RawValue>, Answer> {
    let raw: Box<RawValue> = serde_json::from_slice(bytes).map_err(|e| {
        error(
            Failure::Invalid,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !raw.get().starts_with('{') {
        return Err(error(
            Failure::Invalid,
            "invalid_event",
            "an event must be a JSON object",
        ));
    }
    Ok(raw)
}

/// A batch: a JSON array, or NDJSON (one object per line).
pub fn parse_batch(
    bytes: &[u8],
    ndjson: bool,
    max_items: usize,
) -> Result<Vec<Box<RawValue>>, Answer> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let items: Vec<Box<RawValue>> = if !ndjson && first == Some(&b'[') {
        serde_json::from_slice(bytes).map_err(|e| {
            error(
                Failure::Invalid,
                "invalid_json",
                format!("the body is not a valid JSON array: {e}"),
            )
        })?
    } else {
        let mut v = Vec::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if v.len() == max_items {
                return Err(error(
                    Failure::TooLarge,
                    "too_many_items",
                    format!("a batch holds at most {max_items} events"),
                ));
            }
            v.push(serde_json::from_slice(line).map_err(|e| {
                error(
                    Failure::Invalid,
                    "invalid_json",
                    format!("line {}: not valid JSON: {e}", i + 1),
                )
            })?);
        }
        v
    };
    if items.is_empty() {
        return Err(error(
            Failure::Invalid,
            "empty_batch",
            "the batch holds no events",
        ));
    }
    if items.len() > max_items {
        return Err(error(
            Failure::TooLarge,
            "too_many_items",
            format!("a batch holds at most {max_items} events"),
        ));
    }
    Ok(items)
}

/// Decodes events here, on the handler's thread, rather than on the core thread (labels are left to
/// the core, which checks their envelope first).
fn decode_all(
    st: &AppState,
    items: &[Box<RawValue>],
    labels_only: bool,
) -> Vec<crate::core::Decoded> {
    if labels_only {
        return Vec::new();
    }
    items
        .iter()
        .map(|raw| st.decoder.decode_bytes(raw.get().as_bytes()))
        .collect()
}

async fn post_event(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    post_events(st, headers, body, false).await
}

async fn post_label(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    post_events(st, headers, body, true).await
}

async fn post_events(st: AppState, headers: HeaderMap, body: Body, labels_only: bool) -> Response {
    let bytes = match body_bytes(&st, &headers, body).await {
        Ok(b) => b,
        Err(a) => return respond(a),
    };
    match one_document(&bytes) {
        Ok(raw) => respond(
            ask(
                &st,
                Request::Events {
                    decoded: decode_all(&st, std::slice::from_ref(&raw), labels_only),
                    items: vec![raw],
                    labels_only,
                    batch: false,
                },
            )
            .await,
        ),
        Err(a) => respond(a),
    }
}

async fn post_batch(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match body_bytes(&st, &headers, body).await {
        Ok(b) => b,
        Err(a) => return respond(a),
    };
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("ndjson"));
    match parse_batch(&bytes, ndjson, st.settings.max_batch) {
        Ok(items) => respond(
            ask(
                &st,
                Request::Events {
                    decoded: decode_all(&st, &items, false),
                    items,
                    labels_only: false,
                    batch: true,
                },
            )
            .await,
        ),
        Err(a) => respond(a),
    }
}

async fn get_decision(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match path {
        Ok(Path(id)) => id,
        Err(e) => return path_error(e),
    };
    let a = ask(&st, Request::Decision { id: id.clone() }).await;
    // In a cluster, a node that does not hold it (started from the shared snapshot after the
    // event) asks the others.
    if let (Answer::Failed(e), Some(node)) = (&a, &st.cluster) {
        if e.code == "unknown_event" {
            if let Some(found) = crate::cluster::decision_from_peers(node, &id).await {
                return respond(crate::core::ok(found));
            }
        }
    }
    respond(a)
}

async fn get_entity(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let (kind, id) = match path {
        Ok(Path(p)) => p,
        Err(e) => return path_error(e),
    };
    respond(ask(&st, Request::Entity { kind, id }).await)
}

#[derive(serde::Deserialize)]
struct FindingsQuery {
    limit: Option<usize>,
    detector: Option<String>,
    account: Option<String>,
}

async fn get_findings(
    State(st): State<AppState>,
    q: Result<axum::extract::Query<FindingsQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(q) => q.0,
        Err(e) => return crate::cases::query_error(e),
    };
    respond(
        ask(
            &st,
            Request::Findings {
                limit: q.limit.unwrap_or(100),
                detector: q.detector,
                account: q.account,
            },
        )
        .await,
    )
}

async fn get_list(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match path {
        Ok(Path(n)) => n,
        Err(e) => return path_error(e),
    };
    respond(ask(&st, Request::ListGet { name }).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    reason: String,
    ttl: Option<String>,
    expires: Option<String>,
}

async fn put_item(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Response {
    let (name, value) = match path {
        Ok(Path(p)) => p,
        Err(e) => return path_error(e),
    };
    let bytes = match body_bytes(&st, &headers, body).await {
        Ok(b) => b,
        Err(a) => return respond(a),
    };
    let b: ItemBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return respond(error(
                Failure::Invalid,
                "invalid_body",
                format!("expected {{\"reason\", \"ttl\"?, \"expires\"?}}: {e}"),
            ))
        }
    };
    respond(
        ask(
            &st,
            Request::ListSet {
                name,
                value,
                reason: b.reason,
                ttl: b.ttl,
                expires: b.expires,
            },
        )
        .await,
    )
}

async fn delete_item(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let (name, value) = match path {
        Ok(Path(p)) => p,
        Err(e) => return path_error(e),
    };
    respond(ask(&st, Request::ListRemove { name, value }).await)
}

async fn reload(State(st): State<AppState>) -> Response {
    respond(ask(&st, Request::Reload).await)
}

async fn status(State(st): State<AppState>) -> Response {
    respond(ask(&st, Request::Status).await)
}

#[derive(serde::Deserialize)]
struct DigestQuery {
    /// Also a digest per feature partition of this many (a sharded node: its own count by default).
    partitions: Option<usize>,
    /// Also the live records of this feature partition (of `partitions`): where two nodes whose
    /// digests of it differ differ.
    records: Option<usize>,
}

async fn digest(
    State(st): State<AppState>,
    q: Result<axum::extract::Query<DigestQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(q) => q.0,
        Err(e) => return crate::cases::query_error(e),
    };
    if q.partitions.is_some_and(|n| n == 0 || n > 4096) {
        return respond(crate::core::error(
            crate::core::Failure::Invalid,
            "invalid_query",
            "partitions: from 1 to 4096",
        ));
    }
    if q.records
        .is_some_and(|r| q.partitions.is_some_and(|n| r >= n))
    {
        return respond(crate::core::error(
            crate::core::Failure::Invalid,
            "invalid_query",
            "records: a partition number below partitions",
        ));
    }
    respond(
        ask(
            &st,
            Request::Digest {
                partitions: q.partitions,
                records: q.records,
            },
        )
        .await,
    )
}

/// Authorization for every route, from the route table: the role a route needs is written once, in
/// [`ROUTES`], and checked here before its handler runs (before its body is read).
async fn authorize(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // axum answers HEAD with the GET handler: it needs the GET route's role.
    let method = match req.method() {
        &Method::HEAD => &Method::GET,
        m => m,
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let entry = path.as_deref().map(|p| {
        ROUTES
            .iter()
            .find(|(m, rp, _)| method.as_str().eq_ignore_ascii_case(m) && *rp == p)
    });
    // A matched route missing from the table fails closed, admin only (the table and the router
    // are tested against each other; this is the safety net). A method the route does not have is
    // answered 405 by the router's fallback.
    let role = match entry {
        Some(Some((_, _, role))) => *role,
        Some(None) => {
            let known = path
                .as_deref()
                .is_some_and(|p| ROUTES.iter().any(|(_, rp, _)| *rp == p));
            (!known).then_some(Perm::Admin)
        }
        None => None,
    };
    let who = match principal(&st, req.headers(), method).await {
        Ok(w) => w,
        // Wrong credentials fail even on open routes: a client should learn its key is wrong.
        Err(r) if role.is_some() => return r,
        Err(_) => None,
    };
    if let Some(needed) = role {
        let Some(p) = &who else {
            return unauthenticated();
        };
        let any = path.as_deref().is_some_and(|p| ANY_ROLE.contains(&p));
        if !any && !p.role.allows(needed) {
            return respond(error(
                Failure::Forbidden,
                "forbidden",
                format!(
                    "`{}` has role `{}` ({}); this route needs the permission `{}`",
                    p.name,
                    p.role.name,
                    p.role.permissions.names().join(", "),
                    needed.name()
                ),
            ));
        }
    }
    if let Some(p) = who.as_ref().filter(|p| p.session.is_none()) {
        if let Some(wait) = rate_limited(&st, &p.name) {
            m::inc(m::RATE_LIMITED, 1);
            let mut r = respond(error(
                Failure::TooMany,
                "rate_limited",
                format!(
                    "the key `{}` is over its rate limit; retry in {:.1} s",
                    p.name, wait
                ),
            ));
            if let Ok(v) = HeaderValue::from_str(&format!("{}", wait.ceil().max(1.0) as u64)) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    }
    let mut req = req;
    if let Some(p) = who {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// A token bucket per API key (`rate_limit`): `None` when the request may go, else the seconds
/// until one more token. Per node: a cluster of N nodes lets a key make up to N times its limit.
fn rate_limited(st: &AppState, key: &str) -> Option<f64> {
    let limit = st.settings.rate_limits.get(key)?;
    let now = Instant::now();
    let mut b = st.shared.buckets.lock().ok()?;
    let (tokens, at) = b.entry(key.to_string()).or_insert((limit.burst, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * limit.per_second).min(limit.burst);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        None
    } else {
        Some((1.0 - *tokens) / limit.per_second)
    }
}

/// A path segment the route could not take (invalid UTF-8 after percent-decoding, say), in the one
/// error shape.
fn path_error(e: PathRejection) -> Response {
    respond(error(
        Failure::Invalid,
        "invalid_path",
        format!("the path is invalid: {}", e.body_text()),
    ))
}

/// Longest request target (path and query) taken; longer ones get 414 in the one error shape.
/// (Beyond 64 KiB, hyper itself answers 414, without a body, before a request reaches the router.)
pub const MAX_URI: usize = 8 << 10;

async fn uri_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI {
        return respond(error(
            Failure::UriTooLong,
            "uri_too_long",
            format!("the request target is {len} bytes, more than the limit of {MAX_URI}"),
        ));
    }
    next.run(req).await
}

async fn healthz() -> Response {
    respond(ok(json!({"status": "ok"})))
}

async fn readyz(State(st): State<AppState>) -> Response {
    let ready = st.shared.ready.load(Ordering::SeqCst) && !st.shared.failed.load(Ordering::SeqCst);
    let version = st.shared.version();
    if ready {
        respond(ok(json!({"status": "ready", "policy_version": version})))
    } else {
        respond(error(
            Failure::Unavailable,
            "not_ready",
            "the server is starting, stopping, or refuses writes after a failure",
        ))
    }
}

async fn metrics_text() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m::render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> Response {
    respond(error(
        Failure::NotFound,
        "not_found",
        "no such route; see /openapi.json",
    ))
}

/// Request metrics around every route (the timeout applies to the wait for the core, in `ask`).
async fn observe(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let t = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let resp = next.run(req).await;
    let route: &'static str = route
        .and_then(|r| ROUTES.iter().find(|(_, p, _)| *p == r).map(|(_, p, _)| *p))
        .unwrap_or("unmatched");
    m::request(
        route,
        &method,
        resp.status().as_u16(),
        t.elapsed().as_secs_f64(),
    );
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    respond(error(
        Failure::Internal,
        "internal_error",
        "the request failed inside the server; it has been logged",
    ))
}

async fn method_not_allowed(method: Method) -> Response {
    respond(error(
        Failure::MethodNotAllowed,
        "method_not_allowed",
        format!("{method} is not allowed on this route; see /openapi.json"),
    ))
}

/// The routes of cases, the outbox, bulk work, sessions, the graph and the console (see [`crate::cases`]).
fn cases_routes() -> Router<AppState> {
    use crate::cases as c;
    let r = |m: axum::routing::MethodRouter<AppState>| m.fallback(method_not_allowed);
    Router::new()
        .route(
            "/v1/session",
            r(post(c::login).get(c::session).delete(c::logout)),
        )
        .route("/v1/session/methods", r(get(crate::oidc::methods)))
        .route("/v1/session/oidc", r(get(crate::oidc::start)))
        .route("/v1/session/oidc/callback", r(get(crate::oidc::callback)))
        .route("/v1/users", r(get(c::users)))
        .route("/v1/users/{name}", r(put(c::put_user)))
        .route("/v1/inboxes", r(get(c::inboxes)))
        .route("/v1/cases", r(get(c::list).post(c::open)))
        .route("/v1/cases/next", r(post(c::next)))
        .route("/v1/cases/{id}", r(get(c::get_case)))
        .route("/v1/cases/{id}/claim", r(post(c::claim)))
        .route("/v1/cases/{id}/release", r(post(c::release)))
        .route("/v1/cases/{id}/notes", r(post(c::note)))
        .route("/v1/cases/{id}/tags", r(post(c::tag)))
        .route("/v1/cases/{id}/verdict", r(post(c::verdict)))
        .route("/v1/cases/{id}/escalate", r(post(c::escalate)))
        .route("/v1/cases/{id}/reopen", r(post(c::reopen)))
        .route("/v1/outbox", r(get(c::outbox)))
        .route("/v1/outbox/{id}/retry", r(post(c::retry)))
        .route("/v1/bulk/preview", r(post(c::bulk_preview)))
        .route("/v1/bulk", r(post(c::bulk_run)))
        .route("/v1/bulk/{id}", r(get(c::bulk_get)))
        .route("/v1/graph/{kind}/{id}", r(get(c::graph)))
        .route("/v1/entities/{kind}/{id}/cases", r(get(c::entity_cases)))
        .route("/v1/rules/stats", r(get(c::rule_stats)))
        .route("/console", r(get(c::console_index)))
        .route("/console/", r(get(c::console_index)))
        .route("/console/{file}", r(get(c::console_asset)))
        .merge(lifecycle_routes())
}

/// The routes of policy versions, backtests, rollouts, snoozes and the guard (see
/// [`crate::lifecycle`]).
fn lifecycle_routes() -> Router<AppState> {
    use crate::lifecycle as l;
    let r = |m: axum::routing::MethodRouter<AppState>| m.fallback(method_not_allowed);
    Router::new()
        .route("/v1/versions", r(get(l::versions).post(l::create_version)))
        .route("/v1/versions/{id}", r(get(l::get_version)))
        .route("/v1/versions/{id}/diff", r(get(l::version_diff)))
        .route("/v1/versions/{id}/export", r(get(l::export_version)))
        .route("/v1/versions/{id}/approve", r(post(l::approve)))
        .route("/v1/versions/{id}/reject", r(post(l::reject)))
        .route("/v1/versions/{id}/activate", r(post(l::activate)))
        .route("/v1/versions/{id}/rollback", r(post(l::rollback)))
        .route("/v1/policies/check", r(post(l::check)))
        .route("/v1/policies/running", r(get(l::running_policies)))
        .route("/v1/rules/{name}/mode", r(post(l::rule_mode)))
        .route("/v1/lifecycle/history", r(get(l::history)))
        .route(
            "/v1/backtests",
            r(get(l::backtests).post(l::start_backtest)),
        )
        .route("/v1/backtests/{id}", r(get(l::get_backtest)))
        .route("/v1/backtests/{id}/changes", r(get(l::backtest_changes)))
        .route("/v1/rollout", r(get(l::rollout).post(l::start_rollout)))
        .route("/v1/rollout/stop", r(post(l::stop_rollout)))
        .route("/v1/rollout/promote", r(post(l::promote_rollout)))
        .route("/v1/snoozes", r(get(l::snoozes).post(l::create_snooze)))
        .route("/v1/snoozes/{id}", r(delete(l::delete_snooze)))
        .route("/v1/guard", r(get(l::guard)))
        .route("/v1/guard/pauses/{id}/resume", r(post(l::resume)))
}

/// The router over a running core.
pub fn router(st: AppState) -> Router {
    // An idle connection is closed after `header_timeout`: say so, so that clients stop reusing it
    // before then instead of meeting a closed socket.
    let keep_alive = HeaderValue::from_str(&format!(
        "timeout={}",
        st.settings
            .header_timeout
            .as_secs()
            .saturating_sub(1)
            .max(1)
    ))
    .unwrap_or(HeaderValue::from_static("timeout=10"));
    Router::new()
        .route("/v1/events", post(post_event).fallback(method_not_allowed))
        .route(
            "/v1/events/batch",
            post(post_batch).fallback(method_not_allowed),
        )
        .route("/v1/labels", post(post_label).fallback(method_not_allowed))
        .route(
            "/v1/decisions/{id}",
            get(get_decision).fallback(method_not_allowed),
        )
        .route(
            "/v1/entities/{kind}/{id}",
            get(get_entity).fallback(method_not_allowed),
        )
        .route(
            "/v1/findings",
            get(get_findings).fallback(method_not_allowed),
        )
        .route(
            "/v1/lists/{name}",
            get(get_list).fallback(method_not_allowed),
        )
        .route(
            "/v1/lists/{name}/items/{value}",
            put(put_item)
                .delete(delete_item)
                .fallback(method_not_allowed),
        )
        .route(
            "/v1/admin/reload",
            post(reload).fallback(method_not_allowed),
        )
        .route("/v1/admin/status", get(status).fallback(method_not_allowed))
        .merge(cases_routes())
        .route("/v1/admin/digest", get(digest).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/readyz", get(readyz).fallback(method_not_allowed))
        .route("/metrics", get(metrics_text).fallback(method_not_allowed))
        .route("/openapi.json", get(openapi).fallback(method_not_allowed))
        .route(
            "/v1/audit",
            get(crate::audit::list).fallback(method_not_allowed),
        )
        .route(
            "/v1/decisions/{id}/reveal",
            post(crate::vault::reveal).fallback(method_not_allowed),
        )
        .route(
            "/v1/erasure",
            post(crate::erasure::erase).fallback(method_not_allowed),
        )
        // Layers run outside in: `authorize` finds the principal, then `audited` records a change.
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            crate::audit::audited,
        ))
        .route_layer(axum::middleware::from_fn_with_state(st.clone(), authorize))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(observe))
        .layer(axum::middleware::from_fn(uri_limit))
        .layer(axum::middleware::map_response(move |mut r: Response| {
            let v = keep_alive.clone();
            async move {
                r.headers_mut()
                    .insert(header::HeaderName::from_static("keep-alive"), v);
                r
            }
        }))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(st)
}
