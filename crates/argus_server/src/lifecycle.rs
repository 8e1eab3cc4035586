//! Safe rule change beside the engine: the HTTP routes of policy versions (drafts, diffs, reviews,
//! activation now or later, rollback, export), live checks for the editor, backtests, rollouts,
//! snoozes and the blast-radius guard's pauses; and the task that installs the active version at
//! start, activates scheduled versions, records the guard's trips (with a case for the rule's owner)
//! and saves what the guard learned. The store is [`argus_lifecycle`], on the cases' database.

#![allow(clippy::result_large_err)]

use crate::api::{ask, respond, AppState, Principal};
use crate::cases::{json_in, json_ok};
use crate::core::lifecycle::{compile_version, MODELS_LOCK};
use crate::core::{error, error_with, now_ms, Answer, Failure, Request};
use crate::settings::{LifecycleConfig, PolicySource};
use argus_cases::Perm;
use argus_lifecycle::{diff, Files, LifecycleError, NewVersion, Store, Trip, Version};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The lifecycle service: its store once open, its settings, and the configuration versions are
/// compiled under (the schema, features and secret cannot change while the server runs).
pub struct LifecycleService {
    pub store: OnceLock<Store>,
    pub settings: LifecycleConfig,
    pub config: Arc<argus_engine::Config>,
    /// Held from a version's activation in the store to its install in the core (activation,
    /// rollback, schedule, promotion): two of them never interleave, so the core installs versions
    /// in the store's order.
    pub changes: tokio::sync::Mutex<()>,
    /// One backtest at a time (each replays the whole log on a blocking thread).
    pub backtests: Arc<tokio::sync::Semaphore>,
}

impl LifecycleService {
    pub fn new(settings: LifecycleConfig, config: Arc<argus_engine::Config>) -> LifecycleService {
        LifecycleService {
            store: OnceLock::new(),
            settings,
            config,
            changes: tokio::sync::Mutex::new(()),
            backtests: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

/// File names a version may hold: `name.toml`, `lists/name.toml` (letters, digits, `_`, `-`, `.`),
/// and the server's `models.lock`.
fn check_names(files: &Files) -> Result<(), Response> {
    let plain = |n: &str| {
        n.ends_with(".toml")
            && n.len() > 5
            && n.len() <= 128
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    for n in files.keys() {
        let ok = n == MODELS_LOCK || plain(n) || n.strip_prefix("lists/").is_some_and(plain);
        if !ok {
            return Err(respond(error(
                Failure::Invalid,
                "invalid_file_name",
                format!("`{n}`: a version's files are `name.toml` or `lists/name.toml` (letters, digits, _ - .)"),
            )));
        }
    }
    Ok(())
}

/// Why activating (or rolling out) `v` now needs a second person: its stored reasons, and those of
/// its change against what runs now (what ran when it was saved may have changed since).
async fn reasons_now(
    st: &AppState,
    s: &LifecycleService,
    v: &Version,
) -> Result<Vec<String>, Response> {
    let (_, running_files) = running(st).await?;
    let mut r = v.needs_approval.clone();
    for x in s.settings.approval.reasons(&diff(
        &running_files,
        v.files.as_ref().unwrap_or(&Files::new()),
    )) {
        if !r.contains(&x) {
            r.push(x);
        }
    }
    Ok(r)
}

/// Whether `v` was approved by someone other than its author.
async fn approved_by_other(store: &Store, v: &Version) -> Result<bool, Response> {
    Ok(store
        .reviews(v.id)
        .await
        .map_err(lc_error)?
        .iter()
        .any(|r| r.verdict == "approve" && r.reviewer != v.author))
}

fn lc_error(e: LifecycleError) -> Response {
    respond(match e {
        LifecycleError::NotFound(m) => error(Failure::NotFound, "not_found", format!("no {m}")),
        LifecycleError::Conflict(m) => error(Failure::Conflict, "conflict", m),
        LifecycleError::Forbidden(m) => error(Failure::Forbidden, "not_allowed", m),
        LifecycleError::Invalid(m) => error(Failure::Invalid, "invalid", m),
        e => error(Failure::Unavailable, "lifecycle_unavailable", e.to_string()),
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

macro_rules! try_l {
    ($e:expr) => {
        match $e.await {
            Ok(v) => v,
            Err(e) => return lc_error(e),
        }
    };
}

/// A number in a path (a version, backtest, snooze or pause), or the `invalid_path` answer.
fn number(s: &str) -> Result<i64, Response> {
    s.parse().map_err(|_| {
        respond(error(
            Failure::Invalid,
            "invalid_path",
            format!("`{s}` is not a number"),
        ))
    })
}

/// The service and its store, or the response that says why not.
fn svc(st: &AppState) -> Result<(&LifecycleService, &Store), Response> {
    let Some(s) = st.lifecycle.as_deref() else {
        return Err(respond(error(
            Failure::NotFound,
            "lifecycle_off",
            "policy versions need the case store ([cases] enabled = true)",
        )));
    };
    match s.store.get() {
        Some(store) => Ok((s, store)),
        None => Err(respond(error(
            Failure::Unavailable,
            "lifecycle_unavailable",
            "the lifecycle store is not open yet (see the server's log)",
        ))),
    }
}

fn answer_json(a: Answer) -> Result<Json, Response> {
    match a {
        Answer::Done { body, .. } => Ok(body),
        a => Err(respond(a)),
    }
}

/// The policies running now: their version and files, with `models.lock` (the models they run
/// with) when the configuration has models.
async fn running(st: &AppState) -> Result<(String, Files), Response> {
    let j = answer_json(ask(st, Request::Running).await)?;
    let mut files: Files = serde_json::from_value(j["files"].clone()).unwrap_or_default();
    if let Some(lock) = j["models_lock"].as_str().filter(|l| !l.is_empty()) {
        files.insert(MODELS_LOCK.to_string(), lock.to_string());
    }
    Ok((
        j["policy_version"].as_str().unwrap_or("").to_string(),
        files,
    ))
}

/// A draft's files with the running `models.lock`: models are configuration, which a draft does
/// not change.
async fn with_models(st: &AppState, mut files: Files) -> Result<Files, Response> {
    files.remove(MODELS_LOCK);
    if let Some(lock) = running(st).await?.1.remove(MODELS_LOCK) {
        files.insert(MODELS_LOCK.to_string(), lock);
    }
    Ok(files)
}

fn console_only(s: &LifecycleService, what: &str) -> Result<(), Response> {
    if s.settings.source == PolicySource::Files {
        return Err(respond(error(
            Failure::Conflict,
            "files_are_the_source",
            format!("{what}: this server's policies come from files ([lifecycle] source = \"files\"); export the version, commit the files and reload"),
        )));
    }
    Ok(())
}

fn parse_time(s: &str) -> Result<i64, Response> {
    argus_event::time::parse_datetime(s).ok_or_else(|| {
        respond(error(
            Failure::Invalid,
            "invalid_time",
            format!("`{s}` is not an RFC 3339 time"),
        ))
    })
}

// ---- versions ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn versions(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = try_r!(q.map_err(crate::cases::query_error)).0;
    let (s, store) = try_r!(svc(&st));
    let list = try_l!(store.list(q.before, q.limit.unwrap_or(50)));
    let active = try_l!(store.active());
    let (running, _) = try_r!(running(&st).await);
    json_ok(json!({
        "source": s.settings.source,
        "active": active.map(|v| v.id),
        "running": running,
        "versions": list,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersionBody {
    message: String,
    files: Files,
    /// The version this one edits (default: the active one).
    parent: Option<i64>,
}

/// What `files` would change against the running policies, and why it needs approval.
async fn against_running(
    st: &AppState,
    s: &LifecycleService,
    files: &Files,
) -> Result<(argus_lifecycle::Diff, Vec<String>), Response> {
    let (_, now) = running(st).await?;
    let d = diff(&now, files);
    let reasons = s.settings.approval.reasons(&d);
    Ok((d, reasons))
}

pub async fn create_version(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (s, store) = try_r!(svc(&st));
    let mut n: NewVersionBody =
        try_r!(json_in(&st, &headers, b, "{\"message\", \"files\": {name: text}}").await);
    try_r!(check_names(&n.files));
    n.files = try_r!(with_models(&st, n.files).await);
    if let Err(ps) = compile_version(&s.config, &n.files, "draft") {
        return respond(error_with(
            Failure::Unprocessable,
            "invalid_policies",
            "the version does not compile; nothing was saved",
            json!(ps),
        ));
    }
    let (_, reasons) = try_r!(against_running(&st, s, &n.files).await);
    let parent = match n.parent {
        Some(p) => Some(p),
        None => try_l!(store.active()).map(|v| v.id),
    };
    json_ok(try_l!(store.create(
        &NewVersion {
            author: &p.name,
            message: &n.message,
            files: &n.files,
            parent,
            origin: "console",
            needs_approval: &reasons,
        },
        now_ms()
    )))
}

pub async fn get_version(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let id = try_r!(number(&id));
    let (_, store) = try_r!(svc(&st));
    let v = try_l!(store.get(id));
    let reviews = try_l!(store.reviews(id));
    let backtests = try_l!(store.backtests(Some(id), 10));
    let history = try_l!(store.events(Some(id), 50));
    json_ok(json!({"version": v, "reviews": reviews, "backtests": backtests, "history": history}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// A version id; default: what runs now.
    against: Option<i64>,
}

pub async fn version_diff(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Response {
    let id = try_r!(number(&id));
    let q = try_r!(q.map_err(crate::cases::query_error)).0;
    let (s, store) = try_r!(svc(&st));
    let v = try_l!(store.get(id));
    let files = v.files.clone().unwrap_or_default();
    let (label, before) = match q.against {
        Some(a) => {
            let o = try_l!(store.get(a));
            (o.label.clone(), o.files.unwrap_or_default())
        }
        None => {
            let (ver, f) = try_r!(running(&st).await);
            (format!("running ({ver})"), f)
        }
    };
    let d = diff(&before, &files);
    let reasons = s.settings.approval.reasons(&d);
    json_ok(json!({"version": v.id, "against": label, "diff": d, "needs_approval": reasons}))
}

pub async fn export_version(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let id = try_r!(number(&id));
    let (_, store) = try_r!(svc(&st));
    let v = try_l!(store.get(id));
    json_ok(json!({"version": v.label, "digest": v.digest, "files": v.files}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    #[serde(default)]
    comment: String,
}

async fn review(
    st: AppState,
    p: Principal,
    id: i64,
    headers: HeaderMap,
    b: Body,
    approve: bool,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    let r: ReviewBody = try_r!(json_in(&st, &headers, b, "{\"comment\"}").await);
    json_ok(try_l!(store.review(
        id,
        &p.name,
        approve,
        &r.comment,
        now_ms()
    )))
}

pub async fn approve(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let id = try_r!(number(&id));
    review(st, p, id, headers, b, true).await
}

pub async fn reject(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let id = try_r!(number(&id));
    review(st, p, id, headers, b, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    /// RFC 3339: activate then (default: now).
    at: Option<String>,
    /// Go ahead without the approval the version needs (admins only), with the reason: recorded
    /// and flagged.
    emergency: Option<String>,
}

/// Installs version `v` in the core.
async fn install(st: &AppState, v: &Version) -> Result<Json, Response> {
    answer_json(
        ask(
            st,
            Request::InstallVersion {
                files: v.files.clone().unwrap_or_default(),
                label: v.label.clone(),
            },
        )
        .await,
    )
}

pub async fn activate(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let id = try_r!(number(&id));
    let (s, store) = try_r!(svc(&st));
    try_r!(console_only(s, "activating a version"));
    let a: ActivateBody = try_r!(json_in(&st, &headers, b, "{\"at\"?, \"emergency\"?}").await);
    if a.emergency.is_some() && !p.role.allows(Perm::Admin) {
        return respond(error(
            Failure::Forbidden,
            "forbidden",
            "the emergency path (activating without approval) is for admins",
        ));
    }
    let at = match &a.at {
        Some(t) => Some(try_r!(parse_time(t))),
        None => None,
    };
    let _held = s.changes.lock().await;
    let v = try_l!(store.get(id));
    if let Err(ps) = compile_version(
        &s.config,
        v.files.as_ref().unwrap_or(&Files::new()),
        &v.label,
    ) {
        return respond(error_with(
            Failure::Unprocessable,
            "invalid_policies",
            "the version does not compile under the running configuration",
            json!(ps),
        ));
    }
    let reasons = try_r!(reasons_now(&st, s, &v).await);
    if !reasons.is_empty() && a.emergency.is_none() && !try_r!(approved_by_other(store, &v).await) {
        return respond(error(
            Failure::Forbidden,
            "not_allowed",
            format!(
                "version {id} needs approval by someone other than {}: {}",
                v.author,
                reasons.join("; ")
            ),
        ));
    }
    let v = try_l!(store.activate(id, &p.name, at, a.emergency.as_deref(), now_ms()));
    if v.status == argus_lifecycle::ACTIVE {
        let installed = try_r!(install(&st, &v).await);
        return json_ok(json!({"version": v, "installed": installed}));
    }
    json_ok(json!({"version": v}))
}

/// A body that only gives a reason (a rollback, a resume).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

pub async fn rollback(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let id = try_r!(number(&id));
    let (s, store) = try_r!(svc(&st));
    try_r!(console_only(s, "rolling back"));
    let r: ReasonBody = try_r!(json_in(&st, &headers, b, "{\"reason\"}").await);
    if r.reason.trim().is_empty() {
        return respond(error(
            Failure::Invalid,
            "invalid",
            "a rollback needs a reason",
        ));
    }
    let _held = s.changes.lock().await;
    let old = try_l!(store.get(id));
    if let Err(ps) = compile_version(
        &s.config,
        old.files.as_ref().unwrap_or(&Files::new()),
        &old.label,
    ) {
        return respond(error_with(
            Failure::Unprocessable,
            "invalid_policies",
            "that version does not compile under the running configuration (a feature or list it reads is gone); nothing was changed",
            json!(ps),
        ));
    }
    let v = try_l!(store.rollback(id, &p.name, &r.reason, now_ms()));
    let installed = try_r!(install(&st, &v).await);
    json_ok(json!({"version": v, "installed": installed}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    files: Files,
}

/// The editor's live diagnostics: every problem with its file, rule, span, code and hint.
pub async fn check(State(st): State<AppState>, headers: HeaderMap, b: Body) -> Response {
    let (s, _) = try_r!(svc(&st));
    let mut c: CheckBody = try_r!(json_in(&st, &headers, b, "{\"files\": {name: text}}").await);
    try_r!(check_names(&c.files));
    c.files = try_r!(with_models(&st, c.files).await);
    let (d, reasons) = try_r!(against_running(&st, s, &c.files).await);
    match compile_version(&s.config, &c.files, "draft") {
        Ok(l) => json_ok(json!({
            "ok": true,
            "problems": [],
            "rules": l.policies.by_type.iter().flatten().map(|p| p.rules.len()).sum::<usize>(),
            "changes": d.rules,
            "needs_approval": reasons,
        })),
        Err(ps) => json_ok(
            json!({"ok": false, "problems": ps, "changes": d.rules, "needs_approval": reasons}),
        ),
    }
}

pub async fn running_policies(State(st): State<AppState>) -> Response {
    let (s, _) = try_r!(svc(&st));
    let (version, mut files) = try_r!(running(&st).await);
    // The editor's files: `models.lock` is the server's record, not something a draft edits.
    let models = files.remove(MODELS_LOCK);
    json_ok(
        json!({"policy_version": version, "source": s.settings.source, "files": files, "models_lock": models}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: String,
    message: Option<String>,
}

/// A draft that moves one rule between shadow and enforce (shadow → enforce promotion).
pub async fn rule_mode(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(rule): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (s, store) = try_r!(svc(&st));
    let m: ModeBody =
        try_r!(json_in(&st, &headers, b, "{\"mode\": \"shadow\" | \"enforce\"}").await);
    if m.mode != "shadow" && m.mode != "enforce" {
        return respond(error(
            Failure::Invalid,
            "invalid",
            "mode is shadow or enforce",
        ));
    }
    let (_, mut files) = try_r!(running(&st).await);
    let (rules, _) = argus_lifecycle::rules_of(&files);
    let Some(r) = rules.get(&rule) else {
        return respond(error(
            Failure::NotFound,
            "not_found",
            format!("no rule `{rule}` in the running policies"),
        ));
    };
    let Some(text) = files
        .get(&r.file)
        .and_then(|t| argus_lifecycle::set_rule_mode(t, &rule, &m.mode))
    else {
        return respond(error(
            Failure::NotFound,
            "not_found",
            format!("rule `{rule}` not found in {}", r.file),
        ));
    };
    files.insert(r.file.clone(), text);
    if let Err(ps) = compile_version(&s.config, &files, "draft") {
        return respond(error_with(
            Failure::Unprocessable,
            "invalid_policies",
            "the edited files do not compile",
            json!(ps),
        ));
    }
    let (_, reasons) = try_r!(against_running(&st, s, &files).await);
    let msg = m
        .message
        .unwrap_or_else(|| format!("rule `{rule}` to {}", m.mode));
    let parent = try_l!(store.active()).map(|v| v.id);
    json_ok(try_l!(store.create(
        &NewVersion {
            author: &p.name,
            message: &msg,
            files: &files,
            parent,
            origin: "console",
            needs_approval: &reasons
        },
        now_ms()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    version: Option<i64>,
    limit: Option<i64>,
}

pub async fn history(
    State(st): State<AppState>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let q = try_r!(q.map_err(crate::cases::query_error)).0;
    let (_, store) = try_r!(svc(&st));
    json_ok(json!({"events": try_l!(store.events(q.version, q.limit.unwrap_or(100)))}))
}

// ---- backtests ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestBody {
    version: i64,
    /// At most this many logged events (default: all).
    max_events: Option<u64>,
}

pub async fn start_backtest(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (s, store) = try_r!(svc(&st));
    let r: BacktestBody = try_r!(json_in(&st, &headers, b, "{\"version\", \"max_events\"?}").await);
    let v = try_l!(store.get(r.version));
    let Ok(permit) = s.backtests.clone().try_acquire_owned() else {
        return respond(error(
            Failure::Conflict,
            "backtest_running",
            "a backtest is running (one at a time: each replays the whole log); try again when it is done",
        ));
    };
    let (running_version, control) = try_r!(running(&st).await);
    // What runs now runs with the snoozes and paused rules, and so would the draft once active.
    let overrides = Arc::new(argus_policy::Overrides::new(
        try_l!(store.snoozes(now_ms(), false))
            .into_iter()
            .map(snooze_of)
            .collect(),
        try_l!(store.pauses(true)).into_iter().map(|p| p.rule),
    ));
    // The control is named as the running policies are (`v3+…`, or the files' declared versions).
    let control_label = running_version
        .split('+')
        .next()
        .filter(|l| !l.is_empty())
        .unwrap_or("running")
        .to_string();
    let id = try_l!(store.backtest_start(v.id, &p.name, now_ms()));
    let (store, cfg, data) = (
        store.clone(),
        s.config.clone(),
        st.settings.data_dir.clone(),
    );
    let labels: Vec<(String, bool)> = st
        .settings
        .label_types
        .iter()
        .map(|t| (t.clone(), t != "legit.confirmed"))
        .collect();
    let max_changes = s.settings.backtest_max_changes;
    tokio::spawn(async move {
        let _permit = permit;
        let files = v.files.clone().unwrap_or_default();
        let label = v.label.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut control = compile_version(&cfg, &control, &control_label)
                .map_err(|ps| format!("the running policies do not compile: {}", ps.len()))?;
            let mut candidate = compile_version(&cfg, &files, &label)
                .map_err(|ps| format!("the version does not compile ({} problems)", ps.len()))?;
            control.policies.overrides = overrides.clone();
            candidate.policies.overrides = overrides;
            crate::core::backtest::backtest(crate::core::backtest::BacktestSpec {
                config: &cfg,
                data_dir: &data,
                control: control.policies,
                candidate: candidate.policies,
                label_types: labels,
                max_changes,
                max_events: r.max_events.unwrap_or(0),
            })
        })
        .await
        .map_err(|e| format!("the backtest stopped: {e}"))
        .and_then(|r| r);
        let done = match res {
            Ok(out) => {
                store
                    .backtest_finish(id, &out.summary, &out.changes, now_ms())
                    .await
            }
            Err(e) => store.backtest_fail(id, &e, now_ms()).await,
        };
        if let Err(e) = done {
            tracing::error!("storing backtest {id}: {e}");
        }
    });
    json_ok(json!({"id": id, "status": "running"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestsQuery {
    version: Option<i64>,
}

pub async fn backtests(
    State(st): State<AppState>,
    q: Result<Query<BacktestsQuery>, QueryRejection>,
) -> Response {
    let q = try_r!(q.map_err(crate::cases::query_error)).0;
    let (_, store) = try_r!(svc(&st));
    json_ok(json!({"backtests": try_l!(store.backtests(q.version, 50))}))
}

pub async fn get_backtest(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let id = try_r!(number(&id));
    let (_, store) = try_r!(svc(&st));
    json_ok(try_l!(store.backtest(id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    from: Option<i64>,
    limit: Option<i64>,
}

pub async fn backtest_changes(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> Response {
    let id = try_r!(number(&id));
    let q = try_r!(q.map_err(crate::cases::query_error)).0;
    let (_, store) = try_r!(svc(&st));
    try_l!(store.backtest(id));
    let from = q.from.unwrap_or(0).max(0);
    let changes = try_l!(store.backtest_changes(id, from, q.limit.unwrap_or(100)));
    let next = (!changes.is_empty()).then(|| from + changes.len() as i64);
    json_ok(json!({"changes": changes, "next": next}))
}

// ---- rollouts ----

pub async fn rollout(State(st): State<AppState>) -> Response {
    let (_, store) = try_r!(svc(&st));
    let row = try_l!(store.rollout_active());
    let live = try_r!(answer_json(ask(&st, Request::RolloutStats).await));
    json_ok(json!({"rollout": row, "live": live}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    version: i64,
    /// The candidate's share of actors, 0 to 100.
    percent: f64,
    emergency: Option<String>,
}

pub async fn start_rollout(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (s, store) = try_r!(svc(&st));
    try_r!(console_only(s, "rolling a version out"));
    let r: RolloutBody = try_r!(json_in(&st, &headers, b, "{\"version\", \"percent\"}").await);
    if !(0.0..=100.0).contains(&r.percent) {
        return respond(error(Failure::Invalid, "invalid", "percent is 0 to 100"));
    }
    if r.emergency.is_some() && !p.role.allows(Perm::Admin) {
        return respond(error(
            Failure::Forbidden,
            "forbidden",
            "the emergency path (a rollout without approval) is for admins",
        ));
    }
    let _held = s.changes.lock().await;
    let v = try_l!(store.get(r.version));
    if ![argus_lifecycle::DRAFT, argus_lifecycle::APPROVED].contains(&v.status.as_str()) {
        return respond(error(
            Failure::Conflict,
            "conflict",
            format!(
                "version {} is {}: only drafts and approved versions are rolled out",
                v.id, v.status
            ),
        ));
    }
    // A rollout enforces the candidate for real people: the same approval as activation.
    let reasons = try_r!(reasons_now(&st, s, &v).await);
    if !reasons.is_empty() && r.emergency.is_none() && !try_r!(approved_by_other(store, &v).await) {
        return respond(error(
            Failure::Forbidden,
            "not_allowed",
            format!(
                "version {} needs approval by someone other than {} before it decides for anyone: {}",
                v.id,
                v.author,
                reasons.join("; ")
            ),
        ));
    }
    if let Some(e) = &r.emergency {
        if let Err(e) = store
            .log(
                &p.name,
                "rollout_emergency",
                Some(v.id),
                json!({"reason": e}),
                now_ms(),
            )
            .await
        {
            return lc_error(e);
        }
    }
    let bp = (r.percent * 100.0).round() as i64;
    let row = try_l!(store.rollout_start(v.id, bp, &p.name, now_ms()));
    let started = ask(
        &st,
        Request::SetRollout(Some((
            v.files.clone().unwrap_or_default(),
            v.label.clone(),
            bp as u32,
            row.salt.clone(),
        ))),
    )
    .await;
    if let Answer::Failed(_) = &started {
        let _ = store
            .rollout_end(&p.name, "failed", json!({}), now_ms())
            .await;
        return respond(started);
    }
    json_ok(json!({"rollout": row}))
}

async fn end_rollout(
    st: &AppState,
    store: &Store,
    who: &str,
    outcome: &str,
) -> Result<Json, Response> {
    let live = answer_json(ask(st, Request::SetRollout(None)).await)?;
    store
        .rollout_end(who, outcome, live.clone(), now_ms())
        .await
        .map_err(lc_error)?;
    Ok(live)
}

pub async fn stop_rollout(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Response {
    let (_, store) = try_r!(svc(&st));
    if try_l!(store.rollout_active()).is_none() {
        return respond(error(
            Failure::Conflict,
            "conflict",
            "no rollout is running",
        ));
    }
    let live = try_r!(end_rollout(&st, store, &p.name, "stopped").await);
    json_ok(json!({"status": "stopped", "comparison": live}))
}

/// Promotes the candidate: it becomes the active version for everyone (console mode).
pub async fn promote_rollout(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Response {
    let (s, store) = try_r!(svc(&st));
    try_r!(console_only(s, "promoting a rollout"));
    let Some(row) = try_l!(store.rollout_active()) else {
        return respond(error(
            Failure::Conflict,
            "conflict",
            "no rollout is running",
        ));
    };
    let _held = s.changes.lock().await;
    let v = try_l!(store.get(row.version));
    let emergency = (!v.needs_approval.is_empty() && v.status != argus_lifecycle::APPROVED)
        .then_some("promoted from a rollout started on the emergency path");
    let v = try_l!(store.activate(v.id, &p.name, None, emergency, now_ms()));
    let installed = try_r!(install(&st, &v).await);
    let live = try_r!(end_rollout(&st, store, &p.name, "promoted").await);
    json_ok(json!({"version": v, "installed": installed, "comparison": live}))
}

// ---- snoozes ----

/// Sends the current snoozes to the core (paused rules are the core's own: see `core::lifecycle`).
/// A stored snooze as the policies apply it (from its creation to its end, or its removal).
fn snooze_of(z: argus_lifecycle::SnoozeRow) -> argus_policy::Snooze {
    argus_policy::Snooze {
        rule: z.rule,
        kind: z.kind,
        value: z.value,
        from: z.created_at,
        until: z.removed_at.map_or(z.until, |r| r.min(z.until)),
    }
}

pub async fn push_overrides(st: &AppState, store: &Store) -> Result<Json, String> {
    let snoozes = store
        .snoozes(now_ms(), false)
        .await
        .map_err(|e| e.to_string())?;
    let req = Request::SetOverrides {
        snoozes: snoozes.into_iter().map(snooze_of).collect(),
    };
    match ask(st, req).await {
        Answer::Done { body, .. } => Ok(body),
        _ => Err("the core did not take the overrides".into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnoozesQuery {
    #[serde(default)]
    all: bool,
}

pub async fn snoozes(
    State(st): State<AppState>,
    q: Result<Query<SnoozesQuery>, QueryRejection>,
) -> Response {
    let q = try_r!(q.map_err(crate::cases::query_error)).0;
    let (_, store) = try_r!(svc(&st));
    json_ok(json!({"snoozes": try_l!(store.snoozes(now_ms(), q.all))}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnoozeBody {
    pub rule: String,
    /// The entity kind (`user`, `device`, `email`, …) and its value (clear values of personal-data
    /// kinds are tokenized like events).
    pub kind: String,
    pub value: String,
    /// RFC 3339, or `ttl` (a duration such as `7d`).
    pub until: Option<String>,
    pub ttl: Option<String>,
    pub reason: String,
    pub case_id: Option<String>,
}

/// Stores a snooze (from the API, or a case verdict) and hands the snoozes to the core.
/// Checks a snooze: its end, its rule (in the running policies), its entity kind; the stored value
/// (tokenized for personal-data kinds) and the end.
async fn check_snooze(
    st: &AppState,
    s: &LifecycleService,
    z: &SnoozeBody,
    now: i64,
) -> Result<(String, i64), Response> {
    let until = match (&z.until, &z.ttl) {
        (Some(u), None) => parse_time(u)?,
        (None, Some(t)) => {
            now.saturating_add(argus_event::time::parse_duration(t).ok_or_else(|| {
                respond(error(
                    Failure::Invalid,
                    "invalid",
                    format!("ttl: `{t}` is not a duration (e.g. 30m, 7d)"),
                ))
            })?)
        }
        _ => {
            return Err(respond(error(
                Failure::Invalid,
                "invalid",
                "give `until` (RFC 3339) or `ttl` (e.g. 7d), one of them",
            )))
        }
    };
    let (rules, _) = argus_lifecycle::rules_of(&running(st).await?.1);
    if !rules.contains_key(&z.rule) {
        return Err(respond(error(
            Failure::NotFound,
            "not_found",
            format!("no rule `{}` in the running policies", z.rule),
        )));
    }
    if !s.config.schema.entity_kinds.contains(&z.kind) {
        return Err(respond(error(
            Failure::Invalid,
            "invalid",
            format!("unknown entity kind `{}`", z.kind),
        )));
    }
    let value = argus_policy::lists::item_key(Some(&z.kind), &z.value, &s.config.pseudonymizer)
        .map_err(|m| respond(error(Failure::Invalid, "invalid", m)))?;
    if until <= now || z.reason.trim().is_empty() || z.value.is_empty() {
        return Err(respond(error(
            Failure::Invalid,
            "invalid",
            "a snooze needs a value, a reason and an end in the future",
        )));
    }
    Ok((value, until))
}

/// Stores snoozes (from the API, or a case verdict), all checked before any is stored, and hands
/// the snoozes to the core.
pub async fn add_snoozes(
    st: &AppState,
    who: &str,
    zs: &[SnoozeBody],
) -> Result<Vec<argus_lifecycle::SnoozeRow>, Response> {
    let (s, store) = svc(st)?;
    let now = now_ms();
    let mut checked = Vec::with_capacity(zs.len());
    for z in zs {
        checked.push(check_snooze(st, s, z, now).await?);
    }
    let mut rows = Vec::with_capacity(zs.len());
    for (z, (value, until)) in zs.iter().zip(checked) {
        rows.push(
            store
                .snooze(
                    &z.rule,
                    &z.kind,
                    &value,
                    until,
                    &z.reason,
                    who,
                    z.case_id.as_deref(),
                    now,
                )
                .await
                .map_err(lc_error)?,
        );
    }
    push_overrides(st, store)
        .await
        .map_err(|e| respond(error(Failure::Unavailable, "lifecycle_unavailable", e)))?;
    Ok(rows)
}

pub async fn create_snooze(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let z: SnoozeBody = try_r!(
        json_in(
            &st,
            &headers,
            b,
            "{\"rule\", \"kind\", \"value\", \"until\" | \"ttl\", \"reason\"}"
        )
        .await
    );
    let mut rows = try_r!(add_snoozes(&st, &p.name, std::slice::from_ref(&z)).await);
    json_ok(rows.pop())
}

pub async fn delete_snooze(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let id = try_r!(number(&id));
    let (_, store) = try_r!(svc(&st));
    let z = try_l!(store.unsnooze(id, &p.name, now_ms()));
    if let Err(e) = push_overrides(&st, store).await {
        return respond(error(Failure::Unavailable, "lifecycle_unavailable", e));
    }
    json_ok(z)
}

// ---- the guard ----

pub async fn guard(State(st): State<AppState>) -> Response {
    let (_, store) = try_r!(svc(&st));
    let pauses = try_l!(store.pauses(false));
    let state = try_r!(answer_json(ask(&st, Request::GuardState).await));
    json_ok(json!({"pauses": pauses, "state": state}))
}

pub async fn resume(
    State(st): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let id = try_r!(number(&id));
    let (_, store) = try_r!(svc(&st));
    let r: ReasonBody = try_r!(json_in(&st, &headers, b, "{\"reason\"}").await);
    if r.reason.trim().is_empty() {
        return respond(error(
            Failure::Invalid,
            "invalid",
            "resuming a paused rule needs a reason",
        ));
    }
    let pause = try_l!(store.pause_get(id));
    if pause.resumed_at.is_some() {
        return respond(error(
            Failure::Conflict,
            "conflict",
            format!("the pause of `{}` was already resumed", pause.rule),
        ));
    }
    // The core first: the resume is logged there (what recovery replays), then recorded.
    let core = ask(
        &st,
        Request::ResumeRule {
            rule: pause.rule.clone(),
        },
    )
    .await;
    if let Answer::Failed(_) = &core {
        return respond(core);
    }
    json_ok(try_l!(store.resume(id, &p.name, &r.reason, now_ms())))
}

// ---- the task ----

/// Opens the lifecycle on the cases' database, brings the core up to the store (the active version
/// in console mode, the files recorded as a version in files mode; snoozes; a running rollout) and
/// the store up to the core (the guard's pauses, rebuilt from the log), then activates scheduled
/// versions and records the guard's trips.
pub async fn run(
    st: AppState,
    svc: Arc<LifecycleService>,
    db: argus_store::Db,
    mut trips: Option<tokio::sync::mpsc::Receiver<Trip>>,
) {
    let store = loop {
        match Store::on(db.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::error!("the lifecycle store did not open: {e}; trying again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    // Until the store's state is in the core, the server decides with the policy files (fail
    // open: a store that is down must not stop checkout) and tries again every 5 s.
    let mut tries = 0;
    while let Err(e) = bring_up(&st, &svc, &store).await {
        tries += 1;
        tracing::error!("lifecycle start (try {tries}): {e}; deciding with the policy files meanwhile, trying again in 5 s");
        ask(&st, Request::StopAwaiting).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let _ = svc.store.set(store.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_recorded = String::new();
    // Ticks in a row that the cluster ran another version than the store's active one.
    let mut astray = 0u32;
    loop {
        tokio::select! {
            t = async { match trips.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                match t {
                    // In a cluster every node's core trips alike: one node records it.
                    Some(t) if crate::cluster::on_duty(&st) => record_trip(&st, &store, t).await,
                    Some(_) => {}
                    None => trips = None,
                }
            }
            _ = tick.tick() => {
                let now = now_ms();
                if !crate::cluster::on_duty(&st) {
                    continue;
                }
                if svc.settings.source == PolicySource::Console {
                    let _held = svc.changes.lock().await;
                    match store.activate_due(now).await {
                        Ok(Some(v)) => match install(&st, &v).await {
                            Ok(_) => tracing::info!("scheduled version {} is active", v.label),
                            Err(_) => tracing::error!("scheduled version {} did not install", v.label),
                        },
                        Ok(None) => {}
                        Err(e) => tracing::warn!("scheduled activation: {e}"),
                    }
                    // In a cluster every node runs the version whose install entry came last in
                    // the log; two activations at once (on two nodes) can append their installs in
                    // the opposite order of their writes to the store. The duties holder then
                    // installs the store's active version, once they have differed for 3 s (an
                    // activation's own entry is applied within that).
                    if st.cluster.is_some() {
                        astray = match (store.active().await, running(&st).await) {
                            (Ok(Some(v)), Ok((ver, _)))
                                if ver.split('+').next() != Some(v.label.as_str()) =>
                            {
                                astray + 1
                            }
                            _ => 0,
                        };
                        if astray >= 3 {
                            astray = 0;
                            if let Ok(Some(v)) = store.active().await {
                                tracing::warn!(version = v.label.as_str(), "the cluster runs another version than the store's active one: installing it");
                                if install(&st, &v).await.is_err() {
                                    tracing::error!("the store's active version {} did not install", v.label);
                                }
                            }
                        }
                    }
                } else {
                    // Files mode: each set of files the server loads (start, reload) is a version.
                    if let Ok((ver, files)) = running(&st).await {
                        if ver != last_recorded && !files.is_empty() {
                            if let Err(e) = record_files(&store, &files, "policy files as loaded", now).await {
                                tracing::warn!("recording the policy files as a version: {e}");
                            }
                            last_recorded = ver;
                        }
                    }
                }
            }
        }
    }
}

/// Records `files` as a version of origin `files` (active: they run) unless the newest such
/// version has the same digest.
async fn record_files(
    store: &Store,
    files: &Files,
    message: &str,
    now: i64,
) -> Result<Version, LifecycleError> {
    if let Some(v) = store.latest_of("files").await? {
        if v.digest == argus_lifecycle::digest(files) {
            return Ok(v);
        }
    }
    let parent = store.active().await?.map(|v| v.id);
    let v = store
        .create(
            &NewVersion {
                author: "files",
                message,
                files,
                parent,
                origin: "files",
                needs_approval: &[],
            },
            now,
        )
        .await?;
    store.activate(v.id, "files", None, None, now).await
}

/// The core's paused rules (rebuilt from the log: the truth) against the store's record of them:
/// a pause the store lacks (its record was lost in a crash) is recorded, with a case. A pause the
/// store holds that the core does not is, on a single node, applied again: a person's resume is
/// recorded in the store right after the core's, so the guard lost it (rebuilt from the retained
/// log under other settings, the decisions that tripped it gone), and only a person resumes a
/// rule. In a cluster (every node reconciles at its start, before it may have applied the log)
/// it is marked resumed, as before.
async fn reconcile_pauses(st: &AppState, store: &Store, now: i64) -> Result<(), String> {
    let Answer::Done { body, .. } = ask(st, Request::GuardState).await else {
        return Err("the core did not answer with the guard's state".into());
    };
    let paused: Vec<Trip> = serde_json::from_value(body["paused"].clone()).unwrap_or_default();
    let recorded = store.pauses(true).await.map_err(|e| e.to_string())?;
    for t in &paused {
        if !recorded.iter().any(|p| p.rule == t.rule) {
            record_trip(st, store, t.clone()).await;
        }
    }
    for p in recorded {
        if !paused.iter().any(|t| t.rule == p.rule) {
            if st.cluster.is_none() {
                if let Ok(trip) = serde_json::from_value::<Trip>(p.details.clone()) {
                    tracing::warn!(
                        rule = p.rule.as_str(),
                        "the guard's state, rebuilt from the retained log, no longer paused a rule the store shows paused and no person resumed: paused again"
                    );
                    if let Answer::Done { .. } = ask(st, Request::PauseAgain { trip }).await {
                        continue;
                    }
                    return Err(format!("pausing `{}` again failed", p.rule));
                }
            }
            store
                .resume(
                    p.id,
                    "log",
                    "resumed in the event log (recorded at start)",
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

async fn bring_up(st: &AppState, svc: &LifecycleService, store: &Store) -> Result<(), String> {
    let now = now_ms();
    store
        .backtests_interrupted(now)
        .await
        .map_err(|e| e.to_string())?;
    push_overrides(st, store).await?;
    reconcile_pauses(st, store, now).await?;
    if svc.settings.source == PolicySource::Console {
        let active = match store.active().await.map_err(|e| e.to_string())? {
            Some(v) => v,
            None => {
                // The first start in console mode: the policy files seed the first version.
                let (_, files) = running(st)
                    .await
                    .map_err(|_| "the running policies".to_string())?;
                record_files(store, &files, "seeded from the policy files", now)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        // Models are configuration: a restart with other models is recorded as a version of the
        // same policies with the new `models.lock`.
        let active = {
            let (_, now_files) = running(st)
                .await
                .map_err(|_| "the running policies".to_string())?;
            let lock = now_files.get(MODELS_LOCK);
            let files = active.files.clone().unwrap_or_default();
            if files.get(MODELS_LOCK) != lock {
                let mut next = files;
                match lock {
                    Some(l) => next.insert(MODELS_LOCK.to_string(), l.clone()),
                    None => next.remove(MODELS_LOCK),
                };
                let v = store
                    .create(
                        &NewVersion {
                            author: "config",
                            message:
                                "the models changed at restart ([[models]] in the configuration)",
                            files: &next,
                            parent: Some(active.id),
                            origin: "config",
                            needs_approval: &[],
                        },
                        now,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .activate(v.id, "config", None, None, now)
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                active
            }
        };
        match install(st, &active).await {
            Ok(_) => tracing::info!(
                "policy version {} (from the store) is installed",
                active.label
            ),
            Err(_) => {
                tracing::error!("the store's active version {} does not compile under this configuration; deciding with the policy files instead", active.label);
                ask(st, Request::StopAwaiting).await;
            }
        }
    }
    if let Some(r) = store.rollout_active().await.map_err(|e| e.to_string())? {
        let v = store.get(r.version).await.map_err(|e| e.to_string())?;
        ask(
            st,
            Request::SetRollout(Some((
                v.files.unwrap_or_default(),
                v.label,
                r.basis_points as u32,
                r.salt,
            ))),
        )
        .await;
    }
    Ok(())
}

/// A rule the guard paused: recorded, with a case for the rule's owner (or the rules inbox).
/// Once: a trip made before the store opened is recorded by the start's reconciliation and then
/// handed over again (a test saw two records 5 ms apart).
async fn record_trip(st: &AppState, store: &Store, t: Trip) {
    if store
        .pauses(true)
        .await
        .is_ok_and(|ps| ps.iter().any(|p| p.rule == t.rule))
    {
        return;
    }
    let now = now_ms();
    let owner = running(st).await.ok().and_then(|(_, f)| {
        argus_lifecycle::rules_of(&f)
            .0
            .get(&t.rule)
            .and_then(|r| r.owner.clone())
    });
    let mut case_id = None;
    if let Some(cases) = st.cases.as_deref().and_then(|c| c.store().ok()) {
        let subject = argus_cases::Subject {
            kind: "rule".into(),
            id: t.rule.clone(),
        };
        let summary = format!(
            "The guard moved rule `{}` to shadow: {} hits in {} events of {} ({:.1} %, baseline {:.1} %, cause {}); only a person resumes it",
            t.rule, t.window_hits, t.window_events, t.checkpoint, t.rate * 100.0, t.baseline * 100.0, t.cause.name()
        );
        let trigger = argus_cases::Trigger {
            source: "guard".into(),
            reference: format!("guard:{}:{now}", t.rule),
            body: json!({"summary": summary, "trip": t, "owner": owner}),
        };
        let place = argus_cases::Placement {
            inbox: "rules".into(),
            priority: 100,
            sla_ms: 3_600_000,
            assign_to: owner.clone().into_iter().collect(),
            cap: 1_000,
        };
        match cases.open_or_join(&subject, &trigger, &place, now).await {
            Ok(c) => case_id = Some(c.id),
            Err(e) => tracing::error!("opening the guard's case for `{}`: {e}", t.rule),
        }
    }
    if let Err(e) = store.pause(&t, case_id.as_deref(), now).await {
        tracing::error!(
            "recording the guard's pause of `{}`: {e} (the rule stays paused: the log holds the pause, and the next start records it)",
            t.rule
        );
    }
}
