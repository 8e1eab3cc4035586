//! Cases beside the engine: intake (the core's [`IntakeMsg`]s become cases through `[cases]`
//! routing), the outbox dispatcher (verdict and bulk actions applied through the server's own write
//! path, webhooks delivered with retries), escalation past SLA, and the HTTP routes of cases, the
//! outbox, bulk jobs, sessions and the linked-accounts graph. The store is [`argus_cases`], on SQLite
//! or PostgreSQL; nothing here blocks the core thread.

// The handlers' helpers return the error response itself, which the handler returns at once: boxing
// it would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use crate::api::{ask, respond, AppState, Principal};
use crate::core::{error, now_ms, ok, stored_event_json, Answer, Failure, IntakeMsg, Request};
use crate::metrics as m;
use argus_cases::{
    ActionStatus, CaseError, Cursor, Filter, Intake, IntakeItem, NewAction, Perm, Placement,
    Routing, Status, Store, Subject, Trigger,
};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The case service: the store once open, the routing, and a wake-up for the dispatcher.
pub struct CaseService {
    pub store: OnceLock<Store>,
    /// Logins hash passwords (Argon2id: tens of ms and ~19 MiB each): at most two at a time.
    login_gate: tokio::sync::Semaphore,
    /// Failed logins per user name in the current window: (count, window start).
    failures: Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
    /// Why the store could not be opened (then every case route answers 503).
    pub error: Mutex<Option<String>>,
    pub routing: Routing,
    pub wake: tokio::sync::Notify,
}

pub const SESSION_COOKIE: &str = "argus_session";
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// The `Set-Cookie` value of a new console session.
pub fn session_cookie(token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_MS / 1000
    )
}

impl CaseService {
    pub fn new(routing: Routing) -> CaseService {
        CaseService {
            store: OnceLock::new(),
            error: Mutex::new(None),
            routing,
            wake: tokio::sync::Notify::new(),
            login_gate: tokio::sync::Semaphore::new(2),
            failures: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The store, or the answer that says why there is none.
    pub fn store(&self) -> Result<&Store, Answer> {
        self.store.get().ok_or_else(|| {
            let why = self
                .error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "the case store is still opening".into());
            error(Failure::Unavailable, "cases_unavailable", why)
        })
    }
}

/// The database URL: `[cases] database`, else `cases.db` in the data directory.
pub fn database_url(st: &AppState) -> String {
    st.settings.cases.database.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            st.settings.data_dir.join("cases.db").display()
        )
    })
}

/// Opens the store, then runs intake, the dispatcher and escalation until the server stops.
pub async fn run(
    st: AppState,
    svc: Arc<CaseService>,
    (replayed, replayed_from): (Vec<IntakeMsg>, u64),
    mut rx: tokio::sync::mpsc::Receiver<IntakeMsg>,
    trips: Option<tokio::sync::mpsc::Receiver<argus_lifecycle::Trip>>,
) {
    let url = database_url(&st);
    // The server decides without its case store; intake waits (records queue up to the channel's
    // bound) and the store is tried again every 5 s.
    // The audit log lives in the same database, on the same pool (SQLite has one writer).
    let open = |url: String| async move {
        let db = argus_store::Db::open(&url).await?;
        let store = Store::on(db.clone()).await?;
        let audit = argus_cases::audit::Audit::on(db.clone()).await?;
        Ok::<_, CaseError>((store, db, audit))
    };
    let (store, db) = loop {
        match open(url.clone()).await {
            Ok((store, db, audit)) => {
                crate::audit::opened(&st, audit);
                break (store, db);
            }
            Err(e) => {
                let msg = format!(
                    "the case store ({}) did not open: {e}; trying again every 5 s",
                    redact(&url)
                );
                tracing::error!("{msg}");
                crate::audit::failed(&st, msg.clone());
                if let Ok(mut g) = svc.error.lock() {
                    *g = Some(msg);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    if let Ok(mut g) = svc.error.lock() {
        *g = None;
    }
    let _ = svc.store.set(store.clone());
    if let Some(l) = st.lifecycle.clone() {
        tokio::spawn(crate::lifecycle::run(st.clone(), l, db, trips));
    }
    let d = tokio::spawn(dispatch(st.clone(), svc.clone()));
    let esc = {
        let svc = svc.clone();
        let store = store.clone();
        let st_esc = st.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if !crate::cluster::on_duty(&st_esc) {
                    continue;
                }
                if let Err(e) = store.escalate_overdue(&svc.routing, now_ms()).await {
                    tracing::warn!("case escalation: {e}");
                }
            }
        })
    };
    if let Some(keep) = svc.routing.retention_ms {
        let store = store.clone();
        let st_ret = st.clone();
        tokio::spawn(async move {
            loop {
                if crate::cluster::on_duty(&st_ret) {
                    match store.purge_resolved(now_ms() - keep).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("case retention: {n} resolved cases deleted"),
                        Err(e) => tracing::warn!("case retention: {e}"),
                    }
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
    }
    let mut cursor = store.intake_cursor().await.unwrap_or(0);
    let filter = crate::core::IntakeFilter::of(&svc.routing);
    // Records before the replayed tail that the last run did not take (its queue held them, or
    // left them out, when it stopped): read again from the log. A store that never took a record
    // (cursor 0) starts with the replayed tail, not with the whole log.
    if cursor > 0 && cursor + 1 < replayed_from {
        if let Ok(c) = reread(&st, &svc, &store, &filter, cursor, replayed_from - 1).await {
            cursor = c;
        }
    }
    // The replayed tail first (durable records the last run may not have taken), then live ones,
    // in batches: every record waiting (at most 256) goes into one transaction.
    let mut replayed = replayed.into_iter().peekable();
    let mut failed_rereads = 0;
    loop {
        let mut batch: Vec<IntakeMsg> = Vec::new();
        while batch.len() < 256 {
            match replayed.next() {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        if batch.is_empty() {
            match rx.recv().await {
                Some(m) => batch.push(m),
                None => break,
            }
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
        }
        // Records the full queue left out (the store was behind or down): read again from the log,
        // from this intake's cursor on, before the cursor passes them (records still queued are
        // read too, and skipped when they come). Checked once the batch is in hand: a record left
        // out is noted before any later record is queued.
        if let Some((_, to)) = st.shared.take_intake_dropped() {
            if to > cursor {
                match reread(&st, &svc, &store, &filter, cursor, to).await {
                    Ok(c) => {
                        cursor = c;
                        failed_rereads = 0;
                    }
                    // Read again at the next two batches (a record taken twice is harmless: each
                    // trigger is taken once), then given up.
                    Err(()) if failed_rereads < 2 => {
                        failed_rereads += 1;
                        st.shared.note_intake_dropped(cursor + 1, to);
                    }
                    Err(()) => tracing::error!(
                        from = cursor + 1,
                        to,
                        "case intake gave up reading these records again: those its queue left out open no case"
                    ),
                }
            }
        }
        batch.retain(|m| m.seq > cursor);
        let Some(last) = batch.last().map(|m| m.seq) else {
            continue;
        };
        take_batch(&svc, &store, &batch).await;
        cursor = last;
        if let Err(e) = store.set_intake_cursor(cursor).await {
            tracing::warn!("case intake cursor: {e}");
        }
    }
    d.abort();
    esc.abort();
}

/// Takes one batch of records into the case store, waiting out the store being down; only what
/// the store refuses as invalid is left out.
async fn take_batch(svc: &CaseService, store: &Store, batch: &[IntakeMsg]) {
    let Some(last) = batch.last().map(|m| m.seq) else {
        return;
    };
    let now = now_ms();
    let items: Vec<IntakeItem> = batch
        .iter()
        .flat_map(|msg| items_of(&svc.routing, msg))
        .collect();
    // Each trigger is taken once (a decision by its event id, a finding per ring case), so a retry
    // after a crash between the cases and the cursor adds nothing twice.
    let mut wait = 200;
    let t0 = std::time::Instant::now();
    loop {
        match store.intake_batch(&items, now).await {
            Ok(()) => {
                let per = t0.elapsed().as_secs_f64() / batch.len() as f64;
                for _ in batch {
                    m::observe(m::CASE_INTAKE_SECONDS, per);
                }
                for it in &items {
                    let source = match it {
                        IntakeItem::Decision { .. } => "decision",
                        IntakeItem::Ring { .. } => "finding",
                    };
                    m::inc_labeled(m::CASE_TRIGGERS, "source", source);
                }
                return;
            }
            Err(CaseError::Invalid(e)) => {
                tracing::error!(last, "case intake left records out: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!(last, "case intake: {e}; retrying in {wait} ms");
                tokio::time::sleep(Duration::from_millis(wait)).await;
                wait = (wait * 2).min(10_000);
            }
        }
    }
}

/// Reads the records after `cursor` up to `to` again from this node's event log (its queue left
/// some out, or held them when the last run stopped) and takes those intake takes, in log order.
/// Returns the new cursor: `to`; or, where the log no longer holds the first of them (retention),
/// the cursor as it was, so that what the queue still holds of them is taken from there (again:
/// each trigger is taken once). `Err` when the log could not be read: the cursor is where it was.
async fn reread(
    st: &AppState,
    svc: &CaseService,
    store: &Store,
    filter: &crate::core::IntakeFilter,
    cursor: u64,
    to: u64,
) -> Result<u64, ()> {
    let data = st.settings.data_dir.clone();
    let from = cursor + 1;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<IntakeMsg>>(2);
    let f = filter.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let findings = if f.findings {
            crate::findings::read_range(&data, from, to)
        } else {
            Default::default()
        };
        crate::core::intake_from_log(&data.join("log"), &f, (from, to), &findings, &tx)
    });
    let mut taken = 0u64;
    while let Some(chunk) = rx.recv().await {
        take_batch(svc, store, &chunk).await;
        taken += chunk.len() as u64;
    }
    m::inc(m::CASE_INTAKE_REREAD, taken);
    match reader.await.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(first) if first > from => {
            tracing::error!(
                from,
                upto = first - 1,
                "case intake: the event log no longer holds these records (retention): those its queue left out open no case"
            );
            Ok(cursor)
        }
        Ok(_) => {
            tracing::info!(
                from,
                to,
                taken,
                "case intake read records again from the event log"
            );
            if let Err(e) = store.set_intake_cursor(to).await {
                tracing::warn!("case intake cursor: {e}");
            }
            Ok(to)
        }
        Err(e) => {
            tracing::warn!(
                from,
                to,
                "case intake could not read the event log again: {e}"
            );
            Err(())
        }
    }
}

fn redact(url: &str) -> String {
    // postgres://user:password@host → postgres://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((u, _)) => format!("{}{u}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// What routing reads of a decision (and the event's amount).
fn intake_of(decision: &Json, event: &Json) -> Intake {
    let fired = decision["fired"].as_array().cloned().unwrap_or_default();
    let mut tags: Vec<String> = fired
        .iter()
        .flat_map(|f| f["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    tags.sort();
    tags.dedup();
    Intake {
        source: "decision".into(),
        action: decision["action"].as_str().unwrap_or_default().to_string(),
        rules: fired
            .iter()
            .filter_map(|f| f["rule"].as_str().map(str::to_string))
            .collect(),
        tags,
        score: decision["score"].as_i64().unwrap_or(0),
        amount: match &event["data"]["amount"] {
            Json::String(s) => argus_cases::config::parse_micros(s),
            Json::Number(n) => n
                .as_f64()
                .map(|v| (v * 1e6).round() as i64)
                .filter(|_| n.as_f64().is_some_and(f64::is_finite)),
            _ => None,
        },
        checkpoint: decision["checkpoint"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        detector: String::new(),
    }
}

/// One record into cases: its decision (when routed) and each of its findings (when routed).
/// What one record brings to cases: its decision (when a route takes it) and each of its findings
/// (when a route takes findings of that detector).
fn items_of(routing: &Routing, msg: &IntakeMsg) -> Vec<IntakeItem> {
    let mut out = Vec::new();
    if !msg.decision.is_empty() {
        let decision: Json = serde_json::from_slice(&msg.decision).unwrap_or(Json::Null);
        let event = stored_event_json(&msg.event).unwrap_or(Json::Null);
        let x = intake_of(&decision, &event);
        if let Some((inbox, prio)) = routing.route(&x) {
            let actor = match &event["actor"] {
                Json::String(s) => s.clone(),
                Json::Null => String::new(),
                v => v.to_string(),
            };
            if !actor.is_empty() {
                out.push(IntakeItem::Decision {
                    subject: Subject {
                        kind: "user".into(),
                        id: actor,
                    },
                    trigger: Trigger {
                        source: "decision".into(),
                        reference: decision["event_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        body: json!({"seq": msg.seq, "decision": decision, "event": event}),
                    },
                    place: Placement::of(inbox, prio, routing.claim_cap),
                });
            }
        }
    }
    for f in &msg.findings {
        let x = Intake {
            source: "finding".into(),
            detector: f.detector.clone(),
            ..Intake::default()
        };
        let Some((inbox, prio)) = routing.route(&x) else {
            continue;
        };
        if f.accounts.is_empty() {
            continue;
        }
        // A ring found again (grown) joins its open case: one that names any of its accounts.
        out.push(IntakeItem::Ring {
            detector: f.detector.clone(),
            members: f.accounts.clone(),
            trigger: Trigger {
                source: "finding".into(),
                reference: f.id.clone(),
                body: json!({"seq": msg.seq, "finding": f}),
            },
            place: Placement::of(inbox, prio, routing.claim_cap),
        });
    }
    out
}

/// Delivers due actions: every 500 ms, or at once when a verdict or job wakes it.
async fn dispatch(st: AppState, svc: Arc<CaseService>) {
    let Some(store) = svc.store.get().cloned() else {
        return;
    };
    loop {
        // In a cluster one node at a time delivers (the `duties` lease): the outbox is shared.
        if !crate::cluster::on_duty(&st) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let due = match store.due_actions(now_ms(), 200).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("outbox: {e}");
                Vec::new()
            }
        };
        for a in &due {
            let outcome = deliver(&st, &svc, a).await;
            let now = now_ms();
            let outcome = outcome.map_err(|(err, retry)| {
                m::inc_labeled(m::ACTIONS_FAILED, "kind", kind_label(&a.kind));
                let max = max_attempts(&svc.routing, a);
                let next = (retry && a.attempts + 1 < max)
                    .then(|| now + (1_000i64 << a.attempts.clamp(0, 10)).min(600_000));
                (err, next)
            });
            if outcome.is_ok() {
                m::inc_labeled(m::ACTIONS_DONE, "kind", kind_label(&a.kind));
            }
            if let Err(e) = store.action_attempted(&a.id, outcome, now).await {
                tracing::warn!("outbox: recording an attempt: {e}");
            }
        }
        if due.len() < 200 {
            tokio::select! {
                _ = svc.wake.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(500)) => {},
            }
        }
    }
}

fn kind_label(k: &str) -> &'static str {
    match k {
        "label" => "label",
        "list" => "list",
        _ => "webhook",
    }
}

fn max_attempts(r: &Routing, a: &argus_cases::Action) -> i64 {
    if a.kind == "webhook" {
        r.webhooks
            .iter()
            .find(|w| w.name == a.target)
            .and_then(|w| w.max_attempts)
            .unwrap_or(8)
    } else {
        // The engine refuses only for a reason that will not change (an unknown list), or is busy.
        20
    }
}

/// One attempt: `Err((why, retry?))`.
async fn deliver(
    st: &AppState,
    svc: &CaseService,
    a: &argus_cases::Action,
) -> Result<(), (String, bool)> {
    let engine_answer = |ans: Answer| match ans {
        Answer::Done { .. } => Ok(()),
        Answer::Failed(e) => {
            let retry = matches!(e.kind, Failure::Unavailable | Failure::Internal);
            Err((format!("{}: {}", e.code, e.message), retry))
        }
        Answer::Batch(_) => Ok(()),
    };
    match a.kind.as_str() {
        "label" => {
            // Event time: the engine's watermark, so that the label counts from "now" in event time.
            let time = watermark(st).await.map_err(|e| (e, true))?;
            let mut ev = a.body.clone();
            ev["id"] = json!(a.idempotency_key);
            ev["type"] = json!(a.target);
            ev["time"] = json!(time);
            let raw = serde_json::value::to_raw_value(&ev).map_err(|e| (e.to_string(), false))?;
            let ans = ask(
                st,
                Request::Events {
                    items: vec![raw],
                    decoded: Vec::new(),
                    labels_only: true,
                    batch: false,
                },
            )
            .await;
            engine_answer(ans)
        }
        "list" => {
            let b = &a.body;
            let ans = ask(
                st,
                Request::ListSet {
                    name: a.target.clone(),
                    value: b["value"].as_str().unwrap_or_default().to_string(),
                    reason: b["reason"].as_str().unwrap_or("case verdict").to_string(),
                    ttl: b["ttl"].as_str().map(str::to_string),
                    expires: None,
                },
            )
            .await;
            engine_answer(ans)
        }
        "webhook" => {
            let Some(w) = svc.routing.webhooks.iter().find(|w| w.name == a.target) else {
                return Err((format!("no webhook `{}` in [cases]", a.target), false));
            };
            post_webhook(&w.url, &a.idempotency_key, &a.body)
                .await
                .map_err(|e| (e, true))
        }
        k => Err((format!("unknown action kind `{k}`"), false)),
    }
}

async fn watermark(st: &AppState) -> Result<String, String> {
    match ask(st, Request::Status).await {
        Answer::Done { body, .. } => Ok(body["watermark"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| argus_event::time::format_rfc3339(now_ms()))),
        a => Err(format!("engine status: {a}")),
    }
}

/// POSTs `body` to `url` (HTTP or HTTPS) with an `Idempotency-Key`; a 2xx answer is delivery.
async fn post_webhook(url: &str, key: &str, body: &Json) -> Result<(), String> {
    let a = crate::outbound::request(
        axum::http::Method::POST,
        url,
        &[(
            header::HeaderName::from_static("idempotency-key"),
            key.to_string(),
        )],
        Some(("application/json", body.to_string().into_bytes())),
        Duration::from_secs(10),
        64 << 10,
    )
    .await?;
    if a.status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", a.status))
    }
}

// ---- HTTP ----

fn case_error(e: CaseError) -> Response {
    respond(match e {
        CaseError::NotFound(m) => error(Failure::NotFound, "not_found", format!("no {m}")),
        CaseError::Conflict(m) => error(Failure::Conflict, "conflict", m),
        CaseError::Invalid(m) => error(Failure::Invalid, "invalid", m),
        CaseError::Unauthorized(m) => error(Failure::Unauthorized, "unauthenticated", m),
        e => error(Failure::Unavailable, "cases_unavailable", e.to_string()),
    })
}

pub(crate) fn json_ok(v: impl serde::Serialize) -> Response {
    respond(ok(serde_json::to_value(v).unwrap_or(Json::Null)))
}

/// The service and its store, or the response that says why not.
fn svc(st: &AppState) -> Result<(&CaseService, &Store), Response> {
    let Some(s) = st.cases.as_deref() else {
        return Err(respond(error(
            Failure::NotFound,
            "cases_off",
            "cases are off ([cases] enabled = false)",
        )));
    };
    s.store().map(|store| (s, store)).map_err(respond)
}

/// The request's JSON body as a `T` (under the server's body limits), or the answer that says why not.
pub(crate) async fn json_in<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    b: Body,
    shape: &str,
) -> Result<T, Response> {
    let bytes = read_body(st, headers, b).await?;
    body(&bytes, shape)
}

/// A JSON body of type `T`, or the `invalid_body` answer.
/// The case `id`, when the caller's role sees its inbox. A case outside the caller's scope is not
/// found, exactly as one that does not exist: a scope hides its cases' ids too.
async fn scoped(store: &Store, p: &Principal, id: &str) -> Result<argus_cases::Case, Response> {
    let c = store.get(id).await.map_err(case_error)?;
    if p.role.sees_inbox(&c.inbox) {
        Ok(c)
    } else {
        Err(case_error(CaseError::NotFound(id.to_string())))
    }
}

/// The configured inboxes the caller's role sees, or `None` when it sees every inbox.
fn scope(routing: &Routing, p: &Principal) -> Option<Vec<String>> {
    p.role.inboxes.as_ref()?;
    Some(
        routing
            .inboxes
            .iter()
            .filter(|i| p.role.sees_inbox(&i.name))
            .map(|i| i.name.clone())
            .collect(),
    )
}

/// Refuses work in an inbox outside the caller's scope.
fn in_scope(p: &Principal, inbox: &str) -> Result<(), Response> {
    if p.role.sees_inbox(inbox) {
        Ok(())
    } else {
        Err(respond(error(
            Failure::Forbidden,
            "out_of_scope",
            format!("role `{}` does not cover inbox `{inbox}`", p.role.name),
        )))
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|e| {
        respond(error(
            Failure::Invalid,
            "invalid_body",
            format!("expected {shape}: {e}"),
        ))
    })
}

macro_rules! try_r {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

macro_rules! try_c {
    ($e:expr) => {
        match $e.await {
            Ok(v) => v,
            Err(e) => return case_error(e),
        }
    };
}

async fn read_body(st: &AppState, headers: &HeaderMap, b: Body) -> Result<Vec<u8>, Response> {
    crate::api::body_bytes(st, headers, b)
        .await
        .map(|b| b.to_vec())
        .map_err(respond)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// Failed logins a user name may have in [`LOGIN_WINDOW`] before further attempts are refused.
const LOGIN_FAILURES: u32 = 10;
const LOGIN_WINDOW: Duration = Duration::from_secs(600);

pub async fn login(State(st): State<AppState>, headers: HeaderMap, b: Body) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let l: LoginBody = try_r!(json_in(&st, &headers, b, "{\"username\", \"password\"}").await);
    let blocked = svc.failures.lock().is_ok_and(|f| {
        f.get(&l.username)
            .is_some_and(|(n, t0)| *n >= LOGIN_FAILURES && t0.elapsed() < LOGIN_WINDOW)
    });
    if blocked {
        let mut r = respond(error(
            Failure::TooMany,
            "too_many_attempts",
            format!("{LOGIN_FAILURES} failed logins for this user in the last {} minutes: try again later", LOGIN_WINDOW.as_secs() / 60),
        ));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("600"));
        return r;
    }
    let Ok(_permit) = svc.login_gate.acquire().await else {
        return respond(error(
            Failure::Unavailable,
            "shutting_down",
            "the server is stopping",
        ));
    };
    let (token, s) = match store
        .login(&l.username, &l.password, SESSION_MS, now_ms())
        .await
    {
        Ok(x) => {
            if let Ok(mut f) = svc.failures.lock() {
                f.remove(&l.username);
            }
            x
        }
        Err(e) => {
            if matches!(e, CaseError::Unauthorized(_)) {
                if let Ok(mut f) = svc.failures.lock() {
                    // Bounded: old windows are dropped when the map grows.
                    if f.len() > 10_000 {
                        f.retain(|_, (_, t0)| t0.elapsed() < LOGIN_WINDOW);
                    }
                    let e = f
                        .entry(l.username.clone())
                        .or_insert((0, std::time::Instant::now()));
                    if e.1.elapsed() >= LOGIN_WINDOW {
                        *e = (0, std::time::Instant::now());
                    }
                    e.0 += 1;
                }
            }
            return case_error(e);
        }
    };
    let Some(role) = st.settings.roles.get(&s.role) else {
        let _ = store.logout(&token).await;
        return respond(error(
            Failure::Forbidden,
            "forbidden",
            format!(
                "`{}` has role `{}`, which is not configured",
                s.user, s.role
            ),
        ));
    };
    let mut r = json_ok(
        json!({"user": s.user, "role": role.name, "permissions": role.permissions, "inboxes": role.inboxes, "csrf": s.csrf, "expires_at": s.expires_at}),
    );
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&token)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn session(Extension(p): Extension<Principal>) -> Response {
    json_ok(
        json!({"user": p.name, "role": p.role.name, "permissions": p.role.permissions, "inboxes": p.role.inboxes, "csrf": p.csrf, "via": if p.session.is_some() { "session" } else { "api_key" }}),
    )
}

pub async fn logout(State(st): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    let (_, store) = try_r!(svc(&st));
    if let Some(t) = &p.session {
        try_c!(store.logout(t));
    }
    let mut r = json_ok(json!({"logged_out": true}));
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("argus_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    role: String,
    password: String,
}

pub async fn put_user(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    let u: UserBody = try_r!(json_in(&st, &headers, b, "{\"role\", \"password\"}").await);
    // `ingest` is for the shop's systems (API keys), not people.
    let Some(role) = st
        .settings
        .roles
        .get(&u.role)
        .filter(|r| r.name != "ingest")
    else {
        let names: Vec<String> = st
            .settings
            .roles
            .names()
            .into_iter()
            .filter(|n| n != "ingest")
            .collect();
        return respond(error(
            Failure::Invalid,
            "invalid_role",
            format!("role `{}`: expected one of {}", u.role, names.join(", ")),
        ));
    };
    try_c!(store.set_user(&name, &role.name, &u.password, now_ms()));
    json_ok(json!({"user": name, "role": role.name}))
}

pub async fn users(State(st): State<AppState>) -> Response {
    let (_, store) = try_r!(svc(&st));
    let list: Vec<Json> = try_c!(store.users())
        .into_iter()
        .map(|(n, r, d)| json!({"user": n, "role": r, "disabled": d}))
        .collect();
    json_ok(json!({"users": list}))
}

pub async fn inboxes(State(st): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let counts = try_c!(store.inbox_counts());
    let list: Vec<Json> = svc
        .routing
        .inboxes
        .iter()
        .filter(|i| p.role.sees_inbox(&i.name))
        .map(|i| {
            let (o, r) = counts
                .iter()
                .find(|c| c.0 == i.name)
                .map_or((0, 0), |c| (c.1, c.2));
            json!({"name": i.name, "sla_ms": i.sla_ms, "escalate_to": i.escalate_to, "auto_assign": i.auto_assign, "open": o, "in_review": r})
        })
        .collect();
    json_ok(json!({"inboxes": list}))
}

#[derive(Deserialize)]
pub struct ListQuery {
    inbox: Option<String>,
    status: Option<String>,
    assignee: Option<String>,
    subject: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

fn status_of(s: Option<&str>) -> Result<Option<Status>, Response> {
    match s {
        None | Some("") | Some("any") => Ok(None),
        Some("open") => Ok(Some(Status::Open)),
        Some("in_review") => Ok(Some(Status::InReview)),
        Some("resolved") => Ok(Some(Status::Resolved)),
        Some(x) => Err(respond(error(
            Failure::Invalid,
            "invalid_query",
            format!("status `{x}`: expected open, in_review, resolved or any"),
        ))),
    }
}

pub(crate) fn query_error(e: axum::extract::rejection::QueryRejection) -> Response {
    respond(error(
        Failure::Invalid,
        "invalid_query",
        format!("the query string is invalid: {}", e.body_text()),
    ))
}

pub async fn list(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let q = try_r!(q.map_err(query_error)).0;
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(try_r!(Cursor::decode(a).ok_or_else(|| respond(error(
            Failure::Invalid,
            "invalid_query",
            "`after` is not a cursor from a previous page"
        ))))),
    };
    let f = Filter {
        inbox: q.inbox.filter(|s| !s.is_empty()),
        inboxes: scope(&svc.routing, &p),
        status: try_r!(status_of(q.status.as_deref())),
        assignee: q.assignee.filter(|s| !s.is_empty()),
        subject: q.subject.filter(|s| !s.is_empty()),
    };
    let (cases, next) = try_c!(store.page(&f, after.as_ref(), q.limit.unwrap_or(50)));
    json_ok(json!({"cases": cases, "next": next.map(|c| c.encode())}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    subject: Subject2,
    inbox: Option<String>,
    priority: Option<i64>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject2 {
    kind: String,
    id: String,
}

pub async fn open(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let o: OpenBody = try_r!(
        json_in(
            &st,
            &headers,
            b,
            "{\"subject\": {\"kind\", \"id\"}, \"inbox\"?, \"priority\"?, \"note\"?}"
        )
        .await
    );
    let inbox_name = o
        .inbox
        .unwrap_or_else(|| svc.routing.inboxes[0].name.clone());
    let Some(inbox) = svc.routing.inbox(&inbox_name) else {
        return respond(error(
            Failure::Invalid,
            "unknown_inbox",
            format!("no inbox `{inbox_name}` in [cases]"),
        ));
    };
    try_r!(in_scope(&p, &inbox_name));
    let trigger = Trigger {
        source: "manual".into(),
        reference: p.name.clone(),
        body: json!({"note": o.note}),
    };
    let place = Placement::of(inbox, o.priority.unwrap_or(0), svc.routing.claim_cap);
    let subject = Subject {
        kind: o.subject.kind,
        id: o.subject.id,
    };
    let c = try_c!(store.open_or_join(&subject, &trigger, &place, now_ms()));
    json_ok(c)
}

pub async fn get_case(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    let c = try_r!(scoped(store, &p, &id).await);
    let timeline = try_c!(store.timeline(&id));
    let members = try_c!(store.members(&id));
    let actions = try_c!(store.actions(None, Some(&id), None, 1000));
    json_ok(json!({"case": c, "timeline": timeline, "members": members, "actions": actions}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextBody {
    inbox: String,
}

pub async fn next(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let n: NextBody = try_r!(json_in(&st, &headers, b, "{\"inbox\"}").await);
    try_r!(in_scope(&p, &n.inbox));
    let r = &svc.routing;
    match store
        .claim_next(&n.inbox, &p.name, now_ms(), r.lock_ms, r.claim_cap)
        .await
    {
        Ok(Some(c)) => json_ok(c),
        Ok(None) => respond(error(
            Failure::NotFound,
            "no_case",
            format!("no unclaimed case in inbox `{}`", n.inbox),
        )),
        Err(e) => case_error(e),
    }
}

pub async fn claim(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    try_r!(scoped(store, &p, &id).await);
    let r = &svc.routing;
    json_ok(try_c!(store.claim(
        &id,
        &p.name,
        now_ms(),
        r.lock_ms,
        r.claim_cap
    )))
}

pub async fn release(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    try_r!(scoped(store, &p, &id).await);
    json_ok(try_c!(store.release(&id, &p.name, now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    text: String,
}

pub async fn note(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    try_r!(scoped(store, &p, &id).await);
    let n: NoteBody = try_r!(json_in(&st, &headers, b, "{\"text\"}").await);
    json_ok(try_c!(store.note(&id, &p.name, &n.text, now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    tags: Vec<String>,
}

pub async fn tag(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    try_r!(scoped(store, &p, &id).await);
    let t: TagBody = try_r!(json_in(&st, &headers, b, "{\"tags\": [...]}").await);
    json_ok(try_c!(store.tag(&id, &p.name, &t.tags, now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateBody {
    inbox: String,
    reason: String,
}

pub async fn escalate(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    try_r!(scoped(store, &p, &id).await);
    let e: EscalateBody = try_r!(json_in(&st, &headers, b, "{\"inbox\", \"reason\"}").await);
    let Some(inbox) = svc.routing.inbox(&e.inbox) else {
        return respond(error(
            Failure::Invalid,
            "unknown_inbox",
            format!("no inbox `{}` in [cases]", e.inbox),
        ));
    };
    json_ok(try_c!(store.escalate(
        &id,
        &p.name,
        inbox,
        &e.reason,
        now_ms()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReopenBody {
    reason: String,
}

pub async fn reopen(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let r: ReopenBody = try_r!(json_in(&st, &headers, b, "{\"reason\"}").await);
    let c = try_r!(scoped(store, &p, &id).await);
    // A new SLA from the case's inbox (the default when the inbox left the configuration).
    let sla = svc.routing.inbox(&c.inbox).map_or(86_400_000, |i| i.sla_ms);
    json_ok(try_c!(store.reopen(&id, &p.name, &r.reason, sla, now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntry {
    list: String,
    value: String,
    ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictBody {
    disposition: String,
    #[serde(default)]
    reason: String,
    /// Label the subject (default: yes for `confirmed_fraud` and `legitimate`).
    label: Option<bool>,
    /// Ban: every account of a ring case (its subject for an entity case) is labelled fraudulent
    /// and put on the ban list, and a ring's shared devices on the device list.
    #[serde(default)]
    ban: bool,
    #[serde(default)]
    lists: Vec<ListEntry>,
    /// Also post the verdict to these webhooks (default: every configured one).
    webhooks: Option<Vec<String>>,
    /// What the shop should do with the held orders or payouts of the case's decisions: `release`
    /// or `cancel`. Carried by the webhooks (the shop's systems act on it), with the event ids.
    order_action: Option<String>,
    /// Skip these rules for the case's accounts until a time (`until`, RFC 3339) or for `ttl`: a
    /// rule that keeps flagging a customer the verdict cleared.
    snooze: Option<VerdictSnooze>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictSnooze {
    rules: Vec<String>,
    until: Option<String>,
    ttl: Option<String>,
}

const DISPOSITIONS: &[&str] = &[
    "confirmed_fraud",
    "legitimate",
    "not_enough_evidence",
    "duplicate",
];

/// The accounts a case is about: a ring's members, or the entity subject itself.
async fn accounts_of(store: &Store, c: &argus_cases::Case) -> Result<Vec<String>, CaseError> {
    if c.subject.kind == "ring" {
        store.members(&c.id).await
    } else {
        Ok(vec![c.subject.id.clone()])
    }
}

/// The ring's shared devices, from its findings on the timeline.
async fn ring_devices(store: &Store, id: &str) -> Result<Vec<String>, CaseError> {
    let mut out: Vec<String> = Vec::new();
    for e in store.timeline(id).await? {
        if e.kind != "finding" {
            continue;
        }
        for o in e.body["finding"]["objects"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(d) = o.as_str().and_then(|s| s.strip_prefix("device:")) {
                if !out.iter().any(|x| x == d) {
                    out.push(d.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The actions of a ban or a label on `accounts`, keyed by `key_base` (a case or a job).
fn member_actions(
    routing: &Routing,
    key_base: &str,
    accounts: &[String],
    label: Option<&str>,
    ban: bool,
    reason: &str,
) -> Vec<NewAction> {
    let mut v = Vec::new();
    for a in accounts {
        if let Some(l) = label {
            v.push(NewAction {
                kind: "label".into(),
                target: l.into(),
                body: json!({"actor": a, "data": {"subject": a, "subject_kind": "user", "reason": reason}}),
                key: format!("{key_base}:{l}:{a}"),
                subject: Some(a.clone()),
            });
        }
        if ban {
            v.push(NewAction {
                kind: "list".into(),
                target: routing.ban_accounts_list.clone(),
                body: json!({"value": a, "reason": format!("{key_base}: {reason}"), "ttl": routing.ban_ttl}),
                key: format!("{key_base}:list:{}:{a}", routing.ban_accounts_list),
                subject: Some(a.clone()),
            });
        }
    }
    v
}

pub async fn verdict(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let v: VerdictBody = try_r!(
        json_in(
            &st,
            &headers,
            b,
            "{\"disposition\", \"reason\", \"label\"?, \"ban\"?, \"lists\"?, \"webhooks\"?}"
        )
        .await
    );
    if !DISPOSITIONS.contains(&v.disposition.as_str()) {
        return respond(error(
            Failure::Invalid,
            "invalid_disposition",
            format!(
                "disposition `{}`: expected one of {}",
                v.disposition,
                DISPOSITIONS.join(", ")
            ),
        ));
    }
    let c = try_r!(scoped(store, &p, &id).await);
    let accounts = try_c!(accounts_of(store, &c));
    // The actions' keys name the verdict: a reopened case's next verdict acts again.
    let base = format!("{id}#v{}", try_c!(store.verdicts(&id)) + 1);
    // What a verdict does beyond the case: list entries and snoozes are rule changes.
    if (v.snooze.is_some() || !v.lists.is_empty()) && !p.role.allows(Perm::Rules) {
        return respond(error(
            Failure::Forbidden,
            "forbidden",
            "a verdict's list entries and snoozes change rules: they need the permission `rules`",
        ));
    }
    if v.ban && !p.role.allows(Perm::Investigate) && accounts.len() > 1 {
        return respond(error(
            Failure::Forbidden,
            "forbidden",
            "banning every account of a ring needs the permission `investigate`",
        ));
    }
    if v.ban && v.disposition != "confirmed_fraud" {
        return respond(error(
            Failure::Invalid,
            "invalid",
            "a ban goes with the disposition confirmed_fraud",
        ));
    }
    let routing = &svc.routing;
    let label = match (v.label.unwrap_or(true), v.disposition.as_str()) {
        (true, "confirmed_fraud") => Some("fraud.confirmed"),
        (true, "legitimate") => Some("legit.confirmed"),
        _ => None,
    };
    let reason = if v.reason.trim().is_empty() {
        v.disposition.clone()
    } else {
        v.reason.clone()
    };
    let mut actions = member_actions(routing, &base, &accounts, label, v.ban, &reason);
    if v.ban && c.subject.kind == "ring" {
        if let Some(list) = &routing.ban_devices_list {
            for d in try_c!(ring_devices(store, &id)) {
                actions.push(NewAction {
                    kind: "list".into(),
                    target: list.clone(),
                    body: json!({"value": d, "reason": format!("{id}: {reason}"), "ttl": routing.ban_ttl}),
                    key: format!("{base}:list:{list}:{d}"),
                    subject: None,
                });
            }
        }
    }
    for l in &v.lists {
        actions.push(NewAction {
            kind: "list".into(),
            target: l.list.clone(),
            body: json!({"value": l.value, "reason": format!("{id}: {reason}"), "ttl": l.ttl}),
            key: format!("{base}:list:{}:{}", l.list, l.value),
            subject: None,
        });
    }
    let hooks: Vec<String> = match &v.webhooks {
        Some(h) => h.clone(),
        None => routing.webhooks.iter().map(|w| w.name.clone()).collect(),
    };
    let order_action =
        match v.order_action.as_deref() {
            None => None,
            Some(a @ ("release" | "cancel")) if !hooks.is_empty() => Some(a),
            Some("release" | "cancel") => return respond(error(
                Failure::Invalid,
                "no_webhook",
                "release and cancel go to the shop through a webhook: configure [[cases.webhooks]]",
            )),
            Some(x) => {
                return respond(error(
                    Failure::Invalid,
                    "invalid_order_action",
                    format!("order_action `{x}`: expected release or cancel"),
                ))
            }
        };
    // The events the case's decisions were about (what a release or cancel applies to).
    let events: Vec<String> = if order_action.is_some() {
        try_c!(store.timeline(&id))
            .into_iter()
            .filter(|e| e.kind == "decision")
            .map(|e| e.actor)
            .collect()
    } else {
        Vec::new()
    };
    for h in hooks {
        if !routing.webhooks.iter().any(|w| w.name == h) {
            return respond(error(
                Failure::Invalid,
                "unknown_webhook",
                format!("no webhook `{h}` in [cases]"),
            ));
        }
        actions.push(NewAction {
            kind: "webhook".into(),
            target: h.clone(),
            body: json!({"type": "case.verdict", "case": id, "subject": c.subject, "disposition": v.disposition,
                         "reason": reason, "by": p.name, "accounts": accounts, "ban": v.ban,
                         "order_action": order_action, "events": events}),
            key: format!("{base}:webhook:{h}"),
            subject: None,
        });
    }
    // Snoozes first: a rule or time that is wrong refuses the verdict before anything is stored.
    let mut snoozes = Vec::new();
    if let Some(z) = &v.snooze {
        let kind = if c.subject.kind == "ring" {
            "user"
        } else {
            c.subject.kind.as_str()
        };
        for rule in &z.rules {
            for a in &accounts {
                let body = crate::lifecycle::SnoozeBody {
                    rule: rule.clone(),
                    kind: kind.to_string(),
                    value: a.clone(),
                    until: z.until.clone(),
                    ttl: z.ttl.clone(),
                    reason: format!("case {id}: {reason}"),
                    case_id: Some(id.clone()),
                };
                snoozes.push(body);
            }
        }
    }
    let snoozed = if snoozes.is_empty() {
        Vec::new()
    } else {
        try_r!(crate::lifecycle::add_snoozes(&st, &p.name, &snoozes).await)
    };
    let details = json!({"reason": reason, "ban": v.ban, "label": label, "order_action": order_action, "actions": actions.len(), "snoozes": snoozed.iter().map(|s| s.id).collect::<Vec<_>>()});
    let c = try_c!(store.resolve(&id, &p.name, &v.disposition, &details, &actions, now_ms()));
    svc.wake.notify_one();
    // The engine actions are applied within moments; the answer shows them as stored now.
    let actions = try_c!(store.actions(None, Some(&id), None, 10_000));
    json_ok(json!({"case": c, "actions": actions, "snoozes": snoozed}))
}

#[derive(Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// The outbox spans every inbox: a role scoped to some inboxes does not see it.
fn unscoped(p: &Principal) -> Result<(), Response> {
    match &p.role.inboxes {
        None => Ok(()),
        Some(_) => Err(respond(error(
            Failure::Forbidden,
            "out_of_scope",
            format!(
                "role `{}` is scoped to some inboxes; the outbox spans them all",
                p.role.name
            ),
        ))),
    }
}

pub async fn outbox(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<OutboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    try_r!(unscoped(&p));
    let (_, store) = try_r!(svc(&st));
    let q = try_r!(q.map_err(query_error)).0;
    let status = match q.status.as_deref() {
        None | Some("") | Some("any") => None,
        Some(s) => match ActionStatus::parse(s) {
            Some(x) => Some(x),
            None => {
                return respond(error(
                    Failure::Invalid,
                    "invalid_query",
                    format!("status `{s}`: expected pending, done, failed or any"),
                ))
            }
        },
    };
    json_ok(json!({"actions": try_c!(store.actions(status, None, None, q.limit.unwrap_or(100)))}))
}

pub async fn retry(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    try_r!(unscoped(&p));
    let (svc, store) = try_r!(svc(&st));
    let a = try_c!(store.retry_action(&id, now_ms()));
    svc.wake.notify_one();
    json_ok(a)
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BulkTarget {
    case: Option<String>,
    filter: Option<BulkFilter>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    inbox: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    target: BulkTarget,
    /// `ban`, `label_fraud` or `resolve_legitimate`.
    action: String,
    reason: Option<String>,
    /// The count the preview showed: the job refuses to run when the target changed since.
    expect_count: Option<i64>,
}

/// The members a bulk target names: a ring case's accounts, or every unresolved case of a filter
/// (their subjects). Returns (accounts, cases to resolve).
async fn bulk_members(
    store: &Store,
    routing: &Routing,
    p: &Principal,
    t: &BulkTarget,
    cap: i64,
) -> Result<(Vec<String>, Vec<String>), Response> {
    match (&t.case, &t.filter) {
        (Some(id), None) => {
            let c = scoped(store, p, id).await?;
            let a = accounts_of(store, &c).await.map_err(case_error)?;
            Ok((a, vec![c.id]))
        }
        (None, Some(f)) => {
            let status = status_of(f.status.as_deref())?;
            if status == Some(Status::Resolved) {
                return Err(respond(error(
                    Failure::Invalid,
                    "invalid",
                    "bulk work acts on unresolved cases",
                )));
            }
            let filter = Filter {
                inbox: f.inbox.clone(),
                inboxes: scope(routing, p),
                status,
                ..Default::default()
            };
            let cases = store.matching(&filter, cap).await.map_err(case_error)?;
            let cases: Vec<_> = cases
                .into_iter()
                .filter(|c| c.status != Status::Resolved)
                .collect();
            let mut accounts = Vec::new();
            for c in &cases {
                for a in accounts_of(store, c).await.map_err(case_error)? {
                    if !accounts.contains(&a) {
                        accounts.push(a);
                    }
                }
            }
            Ok((accounts, cases.into_iter().map(|c| c.id).collect()))
        }
        _ => Err(respond(error(
            Failure::Invalid,
            "invalid_body",
            "target: give exactly one of `case` and `filter`",
        ))),
    }
}

fn bulk_action(a: &str) -> Result<(Option<&'static str>, bool, &'static str), Response> {
    match a {
        "ban" => Ok((Some("fraud.confirmed"), true, "confirmed_fraud")),
        "label_fraud" => Ok((Some("fraud.confirmed"), false, "confirmed_fraud")),
        "resolve_legitimate" => Ok((Some("legit.confirmed"), false, "legitimate")),
        x => Err(respond(error(
            Failure::Invalid,
            "invalid_action",
            format!("action `{x}`: expected ban, label_fraud or resolve_legitimate"),
        ))),
    }
}

pub async fn bulk_preview(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let bb: BulkBody = try_r!(json_in(&st, &headers, b, "{\"target\", \"action\", …}").await);
    try_r!(bulk_action(&bb.action));
    let cap = svc.routing.bulk_cap;
    let (accounts, cases) = try_r!(bulk_members(store, &svc.routing, &p, &bb.target, cap).await);
    json_ok(
        json!({"count": accounts.len(), "cases": cases.len(), "cap": cap,
                   "over_cap": accounts.len() as i64 > cap, "members": accounts.iter().take(20).collect::<Vec<_>>()}),
    )
}

pub async fn bulk_run(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (svc, store) = try_r!(svc(&st));
    let bb: BulkBody = try_r!(
        json_in(
            &st,
            &headers,
            b,
            "{\"target\", \"action\", \"reason\", \"expect_count\"}"
        )
        .await
    );
    let (label, ban, disposition) = try_r!(bulk_action(&bb.action));
    let cap = svc.routing.bulk_cap;
    let (accounts, cases) = try_r!(bulk_members(store, &svc.routing, &p, &bb.target, cap).await);
    if accounts.len() as i64 > cap {
        return respond(error(
            Failure::Invalid,
            "over_cap",
            format!(
                "{} accounts is over the bulk cap of {cap} ([cases] bulk_cap): narrow the target",
                accounts.len()
            ),
        ));
    }
    match bb.expect_count {
        Some(n) if n == accounts.len() as i64 => {}
        Some(n) => {
            return respond(error(
                Failure::Conflict,
                "count_changed",
                format!(
                    "the target now has {} accounts, not the {n} previewed: preview again",
                    accounts.len()
                ),
            ))
        }
        None => {
            return respond(error(
                Failure::Invalid,
                "preview_first",
                "give expect_count, the count from POST /v1/bulk/preview",
            ))
        }
    }
    let reason = bb.reason.unwrap_or_default();
    let now = now_ms();
    let job = format!("job-{now}-{}", p.name);
    let actions = member_actions(&svc.routing, &job, &accounts, label, ban, &reason);
    let resolve: Vec<(String, String)> = cases
        .iter()
        .map(|c| (c.clone(), disposition.to_string()))
        .collect();
    let target = json!({"case": bb.target.case, "filter": bb.target.filter.as_ref().map(|f| json!({"inbox": f.inbox, "status": f.status}))});
    let j = try_c!(
        store.start_job(&job, &p.name, &reason, &bb.action, &target, &actions, &resolve, now)
    );
    svc.wake.notify_one();
    json_ok(j)
}

pub async fn bulk_get(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let (_, store) = try_r!(svc(&st));
    json_ok(try_c!(store.job(&id)))
}

#[derive(Deserialize)]
pub struct GraphQuery {
    hops: Option<usize>,
    max_nodes: Option<usize>,
}

pub async fn graph(
    State(st): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    q: Result<Query<GraphQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = try_r!(q.map_err(query_error)).0;
    if kind != "user" {
        return respond(error(
            Failure::Invalid,
            "invalid",
            "the entity graph's nodes are accounts: use kind `user`",
        ));
    }
    let mut a = ask(
        &st,
        Request::Graph {
            account: id.clone(),
            hops: q.hops.unwrap_or(2),
            max_nodes: q.max_nodes.unwrap_or(300),
        },
    )
    .await;
    if let (Answer::Done { body, .. }, Ok((_, store))) = (&mut a, svc(&st)) {
        // Accounts under an open case are marked for the console.
        if let Some(nodes) = body["nodes"].as_array_mut() {
            for n in nodes.iter_mut().filter(|n| n["type"] == "account") {
                let acc = n["id"].as_str().unwrap_or_default().to_string();
                if let Ok(c) = store.cases_of(&acc, 1).await {
                    n["case"] = json!(c.first().map(|c| &c.id));
                    n["disposition"] = json!(c.first().and_then(|c| c.disposition.clone()));
                }
            }
        }
    }
    respond(a)
}

pub async fn entity_cases(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    let mut cases = try_c!(store.cases_of(&id, 50));
    cases.retain(|c| p.role.sees_inbox(&c.inbox));
    let scoped = p.role.inboxes.is_some();
    let labels: Vec<Json> = try_c!(store.labels_of(&id, 50))
        .into_iter()
        // A scoped role sees the labels of the cases it sees only.
        .filter(|a| {
            !scoped
                || a.case_id
                    .as_ref()
                    .is_some_and(|c| cases.iter().any(|k| &k.id == c))
        })
        .map(|a| json!({"type": a.target, "status": a.status, "case": a.case_id, "job": a.job_id,
                         "reason": a.body["data"]["reason"], "at": a.done_at.unwrap_or(a.created_at)}))
        .collect();
    json_ok(json!({"cases": cases, "labels": labels}))
}

pub async fn rule_stats(State(st): State<AppState>) -> Response {
    let mut a = ask(&st, Request::RuleStats).await;
    if let (Answer::Done { body, .. }, Ok((_, store))) = (&mut a, svc(&st)) {
        let verdicts = store.verdicts_by_rule().await.unwrap_or_default();
        if let Some(rules) = body["rules"].as_array_mut() {
            for r in rules.iter_mut() {
                let name = r["rule"].as_str().unwrap_or_default().to_string();
                let count = |d: &str| {
                    verdicts
                        .iter()
                        .filter(|(rule, disp, _)| *rule == name && disp == d)
                        .map(|(_, _, n)| n)
                        .sum::<i64>()
                };
                let (f, l) = (count("confirmed_fraud"), count("legitimate"));
                r["confirmed"] = json!(f);
                r["legitimate"] = json!(l);
                r["precision"] = if f + l > 0 {
                    json!(f as f64 / (f + l) as f64)
                } else {
                    Json::Null
                };
            }
        }
    }
    respond(a)
}

/// Console assets, built into the binary.
pub async fn console_asset(Path(file): Path<String>) -> Response {
    let (body, ty): (&'static str, &'static str) = match file.as_str() {
        "" | "index.html" => (
            include_str!("../console/index.html"),
            "text/html; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../console/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (
            include_str!("../console/app.css"),
            "text/css; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such console file").into_response(),
    };
    // For work on the console: `ARGUS_CONSOLE_DIR` serves the three files from disk, so an edit
    // shows without rebuilding (the built-in copies otherwise).
    let from_disk = std::env::var_os("ARGUS_CONSOLE_DIR").and_then(|d| {
        let name = if file.is_empty() {
            "index.html"
        } else {
            file.as_str()
        };
        std::fs::read_to_string(std::path::Path::new(&d).join(name)).ok()
    });
    let mut r = match from_disk {
        Some(text) => (StatusCode::OK, text).into_response(),
        None => (StatusCode::OK, body).into_response(),
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub async fn console_index() -> Response {
    console_asset(Path(String::new())).await
}
