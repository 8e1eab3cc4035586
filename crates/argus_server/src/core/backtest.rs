//! Backtests: a draft policy set over the server's own event log, through the engine's own path
//! (`Engine::run` for the features, point in time; `decide_with_policies`, the function live
//! decisions end in), beside the running set on the same features, with list changes applied in log
//! order. The result is a summary against labels and verdicts and a per-event decision diff.

use super::*;
use crate::wal::LogReader;
use argus_engine::engine::decide_as_logged;
use argus_engine::{PolicyReport, Processed};
use argus_policy::{Action, Decision, PolicySet};
use std::collections::HashSet;

/// What a backtest compares and where it reads.
pub struct BacktestSpec<'a> {
    pub config: &'a Config,
    pub data_dir: &'a Path,
    /// The running policies (the control), and the draft (the candidate).
    pub control: PolicySet,
    pub candidate: PolicySet,
    /// Event types whose actor a label is about, and whether each means fraud.
    pub label_types: Vec<(String, bool)>,
    /// Changed decisions kept (all are counted).
    pub max_changes: usize,
    /// At most this many events (0: all).
    pub max_events: u64,
}

/// A backtest's outcome.
#[derive(Debug, Serialize)]
pub struct BacktestResult {
    pub summary: Json,
    pub changes: Vec<Json>,
}

/// Labels known now: by actor, and by event (a label naming its `original_event`).
#[derive(Default)]
struct Truth {
    actors: HashMap<String, bool>,
    events: HashMap<String, bool>,
}

impl Truth {
    fn of(&self, ev: &Event, actor: &str) -> Option<bool> {
        if self.events.is_empty() && self.actors.is_empty() {
            return None;
        }
        self.events
            .get(&ev.id)
            .or_else(|| self.actors.get(actor))
            .copied()
    }
}

/// The actor of an event as text, borrowed when it is one.
fn actor_of(ev: &Event) -> std::borrow::Cow<'_, str> {
    match ev.fields.first() {
        Some(Value::Str(s)) => std::borrow::Cow::Borrowed(s),
        Some(v) if !v.is_null() => std::borrow::Cow::Owned(v.to_string()),
        _ => std::borrow::Cow::Borrowed(""),
    }
}

/// The list overlay of a snapshot: API list changes by (list, key).
type Overlay = BTreeMap<(String, String), Option<OverlayItem>>;

/// The snapshot to start from: none when the log holds every record from the first, else the
/// oldest snapshot the retained log continues (point-in-time state for the records after it).
pub(super) fn start_state(
    cfg: &Config,
    data: &Path,
    first: u64,
) -> Result<(Engine, u64, Overlay), String> {
    if first <= 1 {
        return Ok((Engine::new(cfg.clone()), 0, BTreeMap::new()));
    }
    let mut snaps = snapshots(data);
    snaps.reverse();
    for (seq, path) in snaps {
        if seq + 1 < first {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (ex, eng) = decode_snapshot(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let engine =
            Engine::restore(cfg.clone(), eng).map_err(|e| format!("{}: {e}", path.display()))?;
        if engine.units_held().iter().any(|h| !h) {
            return Err(format!(
                "{}: the snapshot holds only some feature partitions or not the global stages (a node of a sharded cluster), and the log starts at record {first}: run this on a node whose log starts at record 1, or on an embedded copy of the data",
                path.display()
            ));
        }
        return Ok((engine, ex.seq, ex.overlay));
    }
    Err(format!(
        "the log starts at record {first} and no snapshot covers the records before it"
    ))
}

/// Runs a backtest. Reads the log without changing it, so it runs beside a live server.
pub fn backtest(mut s: BacktestSpec<'_>) -> Result<BacktestResult, String> {
    let started = Instant::now();
    let log = s.data_dir.join("log");
    let schema = s.config.schema.clone();
    // Labels first: what is known now about each actor and event.
    let label_types: HashMap<u16, bool> = s
        .label_types
        .iter()
        .filter_map(|(n, f)| schema.type_id(n).map(|t| (t, *f)))
        .collect();
    let mut truth = Truth::default();
    let mut r = LogReader::open(&log).map_err(|e| e.to_string())?;
    let first = r.first_seq();
    while let Some((_, kind, payload)) = r.read_next_ref().map_err(|e| e.to_string())? {
        if kind != KIND_EVENT {
            continue;
        }
        let Some((head, st, _)) = split_event(payload) else {
            continue;
        };
        let Some(&fraud) = label_types.get(&head.ty) else {
            continue;
        };
        if let Ok(ev) = load_event(&schema, st) {
            let actor = actor_of(&ev).into_owned();
            // Fraud wins over a legitimate verdict given earlier.
            let e = truth.actors.entry(actor).or_insert(fraud);
            *e |= fraud;
            let et = schema.get(ev.ty);
            if let Some(Value::Str(orig)) = et.slot("original_event").and_then(|i| ev.fields.get(i))
            {
                let e = truth.events.entry(orig.to_string()).or_insert(fraud);
                *e |= fraud;
            }
        }
    }
    let (mut engine, from, overlay) = start_state(s.config, s.data_dir, first)?;
    engine.clear_policies();
    for set in [&mut s.control, &mut s.candidate] {
        let lists = Arc::make_mut(&mut set.lists);
        for ((list, key), item) in &overlay {
            apply_overlay(lists, list, key, item.as_ref());
        }
    }
    let amount_slots: Vec<Option<usize>> = (0..schema.types.len())
        .map(|t| schema.get(t as u16).slot("amount"))
        .collect();
    let mut src = LogSource {
        reader: LogReader::open(&log).map_err(|e| e.to_string())?,
        schema: schema.clone(),
        from,
        pending: VecDeque::new(),
        lists: VecDeque::new(),
        read: 0,
        max_events: s.max_events,
        next_seq: Some(from + 1),
        error: None,
        state: Compare {
            config: s.config,
            control: s.control,
            candidate: s.candidate,
            truth,
            reports: (PolicyReport::default(), PolicyReport::default()),
            transitions: BTreeMap::new(),
            changed: 0,
            changes: Vec::new(),
            max_changes: s.max_changes,
            friction: HashSet::new(),
            friction_legit: HashSet::new(),
            relieved: HashSet::new(),
            decided: 0,
            events: 0,
            drift: 0,
            drift_examples: Vec::new(),
            amount_slots,
            first_seq: None,
            last_seq: 0,
        },
    };
    let times = engine.run(&mut src).map_err(|e: String| e)?;
    if let Some(e) = src.error.take() {
        return Err(e);
    }
    let secs = started.elapsed().as_secs_f64();
    let c = src.state;
    let (mut rc, mut rk) = c.reports;
    rc.finish();
    rk.finish();
    let mut examples: Vec<&String> = c.friction.iter().collect();
    examples.sort();
    examples.truncate(20);
    let summary = json!({
        "events": c.events,
        "decided": c.decided,
        "from_record": c.first_seq,
        "to_record": c.last_seq,
        "started_from_snapshot": if from > 0 { Some(from) } else { None },
        "seconds": secs,
        "events_per_second": if secs > 0.0 { c.events as f64 / secs } else { 0.0 },
        "stages": times,
        "control_version": c.control.version,
        "candidate_version": c.candidate.version,
        "live_drift": c.drift,
        "live_drift_examples": c.drift_examples,
        "changed": c.changed,
        "changes_kept": c.changes.len(),
        "transitions": c.transitions,
        "control": rc,
        "candidate": rk,
        "labels": {
            "actors_fraud": c.truth.actors.values().filter(|f| **f).count(),
            "actors_legit": c.truth.actors.values().filter(|f| !**f).count(),
            "events": c.truth.events.len(),
        },
        "friction": {
            "honest_users_added": c.friction.len(),
            "confirmed_legit_users_added": c.friction_legit.len(),
            "users_relieved": c.relieved.len(),
            "examples": examples,
        },
    });
    Ok(BacktestResult {
        summary,
        changes: c.changes,
    })
}

/// What a logged decision says, for the comparison with the running policies' decision.
#[derive(serde::Deserialize)]
struct LoggedDecision {
    action: Action,
    #[serde(default)]
    fired: Vec<LoggedRule>,
    /// The stages the live decision was made without (`[deadlines]`): decided again without them.
    #[serde(default)]
    degraded: Vec<(String, String)>,
}

impl LoggedDecision {
    fn degraded(&self) -> Vec<(&'static str, &'static str)> {
        self.degraded
            .iter()
            .filter_map(|(s, r)| {
                let stage = argus_engine::deadlines::STAGES
                    .iter()
                    .find(|x| **x == s.as_str())?;
                Some((*stage, if r == "late" { "late" } else { "failed" }))
            })
            .collect()
    }
}

#[derive(serde::Deserialize)]
struct LoggedRule {
    rule: String,
}

struct Compare<'a> {
    config: &'a Config,
    control: PolicySet,
    candidate: PolicySet,
    truth: Truth,
    reports: (PolicyReport, PolicyReport),
    transitions: BTreeMap<String, u64>,
    changed: u64,
    changes: Vec<Json>,
    max_changes: usize,
    /// Actors not known as fraud the candidate adds friction for (a stricter action than now).
    friction: HashSet<String>,
    friction_legit: HashSet<String>,
    /// Actors the candidate is less strict with.
    relieved: HashSet<String>,
    decided: u64,
    events: u64,
    /// Events whose decision by the running policies differs from the one logged live.
    drift: u64,
    drift_examples: Vec<String>,
    amount_slots: Vec<Option<usize>>,
    first_seq: Option<u64>,
    last_seq: u64,
}

/// The log as a `Source` of `Engine::run`: events in log order; list changes applied to both sets
/// just before the first event logged after them.
struct LogSource<'a> {
    reader: LogReader,
    schema: Arc<argus_event::Schema>,
    from: u64,
    /// Log numbers of events handed to the engine and not yet delivered.
    pending: VecDeque<(u64, Option<LoggedDecision>)>,
    /// List changes read and not applied yet, with their log numbers.
    lists: VecDeque<(u64, ListChange)>,
    read: u64,
    max_events: u64,
    /// The log number the next record must have.
    next_seq: Option<u64>,
    error: Option<String>,
    state: Compare<'a>,
}

impl LogSource<'_> {
    fn apply_lists_before(&mut self, seq: u64) {
        while self.lists.front().is_some_and(|(s, _)| *s < seq) {
            if let Some((_, c)) = self.lists.pop_front() {
                for set in [&mut self.state.control, &mut self.state.candidate] {
                    let lists = Arc::make_mut(&mut set.lists);
                    apply_overlay(lists, &c.list, &c.key, c.item.as_ref());
                }
            }
        }
    }
}

impl argus_engine::Source for LogSource<'_> {
    type Error = String;

    fn next(&mut self, _: &argus_event::Decoder) -> Result<Option<Event>, String> {
        loop {
            if self.max_events > 0 && self.read >= self.max_events {
                return Ok(None);
            }
            let Some((seq, kind, payload)) =
                self.reader.read_next_ref().map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            if seq <= self.from {
                continue;
            }
            // The records right after the starting state, or the log changed under the backtest
            // (retention deleted segments between its two reads).
            if self.next_seq.is_some_and(|n| seq != n) {
                return Err(format!(
                    "the log changed during the backtest: record {} where {} was expected",
                    seq,
                    self.next_seq.unwrap_or(0)
                ));
            }
            self.next_seq = Some(seq + 1);
            match kind {
                KIND_EVENT => {
                    let Some((head, st, logged)) = split_event(payload) else {
                        return Err(format!("record {}: unreadable event record", seq));
                    };
                    // Most decisions fire nothing: their action is in the record's header, and
                    // their JSON is parsed only when rules fired.
                    let logged = if logged.is_empty() {
                        None
                    } else if logged.windows(10).any(|w| w == b"\"fired\":[]")
                        && !logged.windows(10).any(|w| w == b"\"degraded\"")
                    {
                        argus_policy::Action::ALL
                            .get(head.action as usize)
                            .map(|&action| LoggedDecision {
                                action,
                                fired: Vec::new(),
                                degraded: Vec::new(),
                            })
                    } else {
                        serde_json::from_slice::<LoggedDecision>(logged).ok()
                    };
                    match load_event(&self.schema, st) {
                        Ok(ev) => {
                            self.read += 1;
                            self.pending.push_back((seq, logged));
                            return Ok(Some(ev));
                        }
                        Err(e) => {
                            tracing::warn!(
                                seq = seq,
                                "backtest: a logged event cannot be read under this schema: {e}"
                            )
                        }
                    }
                }
                KIND_LIST => {
                    if let Ok(c) = serde_json::from_slice::<ListChange>(payload) {
                        self.lists.push_back((seq, c));
                    }
                }
                _ => {}
            }
        }
    }

    fn refused(&mut self, _: &Event, _: ProcessError) -> Result<(), String> {
        self.pending.pop_front();
        Ok(())
    }

    fn processed(&mut self, p: Processed<'_>) -> Result<(), String> {
        let (seq, logged) = self.pending.pop_front().unwrap_or((0, None));
        self.apply_lists_before(seq);
        let c = &mut self.state;
        c.events += 1;
        c.first_seq.get_or_insert(seq);
        c.last_seq = seq;
        // Both sides decide without the stages the live decision went without.
        let missing = logged
            .as_ref()
            .map(LoggedDecision::degraded)
            .unwrap_or_default();
        let (a, b) = match (
            decide_as_logged(c.config, &c.control, p.event, p.features, &missing),
            decide_as_logged(c.config, &c.candidate, p.event, p.features, &missing),
        ) {
            (None, None) => return Ok(()),
            // A checkpoint only one side covers: the other side allows (no policy, no decision).
            (Some(a), None) => {
                let b = implicit_allow(&a, &c.candidate.version);
                (a, b)
            }
            (None, Some(b)) => {
                let a = implicit_allow(&b, &c.control.version);
                (a, b)
            }
            (Some(a), Some(b)) => (a, b),
        };
        c.decided += 1;
        let actor = actor_of(p.event);
        // A label event about the event or its actor, else the event's own label column (released
        // later to features; known now to the backtest, as to the replay report).
        let truth = c.truth.of(p.event, &actor).or_else(|| {
            p.labels
                .first()
                .and_then(|l| l.value.as_f64())
                .map(|v| v != 0.0)
        });
        let amount = c
            .amount_slots
            .get(p.event.ty as usize)
            .copied()
            .flatten()
            .and_then(|i| p.event.fields.get(i))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        // What the running policies decide now against what was decided live: the backtest's own
        // check (0 while the running version, snoozes and pauses are those the log was decided
        // under).
        if let Some(l) = &logged {
            let same = l.action == a.action
                && l.fired.len() == a.fired.len()
                && l.fired.iter().zip(&a.fired).all(|(x, y)| x.rule == y.rule);
            if !same {
                c.drift += 1;
                if c.drift_examples.len() < 20 {
                    c.drift_examples.push(p.event.id.clone());
                }
            }
        }
        c.reports.0.add(&a, truth, amount);
        c.reports.1.add(&b, truth, amount);
        if a.action == b.action && same_rules(&a, &b) {
            return Ok(());
        }
        if a.action != b.action {
            *c.transitions
                .entry(format!("{}→{}", a.action.name(), b.action.name()))
                .or_default() += 1;
            if b.action > a.action && truth != Some(true) {
                c.friction.insert(actor.to_string());
                if truth == Some(false) {
                    c.friction_legit.insert(actor.to_string());
                }
            } else if b.action < a.action {
                c.relieved.insert(actor.to_string());
            }
        }
        c.changed += 1;
        if c.changes.len() < c.max_changes {
            c.changes
                .push(change(seq, p.event, &self.schema, &actor, &a, &b, truth));
        }
        Ok(())
    }
}

fn same_rules(a: &Decision, b: &Decision) -> bool {
    a.fired.len() == b.fired.len() && a.fired.iter().zip(&b.fired).all(|(x, y)| x.rule == y.rule)
}

/// One changed decision: from what to what, and the rules (with the values they read) behind it.
fn change(
    seq: u64,
    ev: &Event,
    schema: &argus_event::Schema,
    actor: &str,
    a: &Decision,
    b: &Decision,
    truth: Option<bool>,
) -> Json {
    let names = |d: &Decision| {
        d.fired
            .iter()
            .map(|f| f.rule.clone())
            .collect::<HashSet<_>>()
    };
    let (na, nb) = (names(a), names(b));
    let rule = |f: &argus_policy::FiredRule| {
        json!({"rule": f.rule, "action": f.action, "score": f.score,
            "reads": f.reads.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()})
    };
    json!({
        "record": seq,
        "event_id": ev.id,
        "time": argus_event::time::format_rfc3339(ev.time),
        "checkpoint": schema.get(ev.ty).name,
        "actor": actor,
        "from": a.action,
        "to": b.action,
        "score_from": a.score,
        "score_to": b.score,
        "added": b.fired.iter().filter(|f| !na.contains(&f.rule)).map(rule).collect::<Vec<_>>(),
        "removed": a.fired.iter().filter(|f| !nb.contains(&f.rule)).map(rule).collect::<Vec<_>>(),
        "label": truth.map(|t| if t { "fraud" } else { "legit" }),
        "errors": b.errors.iter().map(|e| json!({"rule": e.rule, "error": e.error})).collect::<Vec<_>>(),
    })
}

/// The decision of a set with no policy for the event's checkpoint: allow, nothing fired.
fn implicit_allow(other: &Decision, version: &str) -> Decision {
    let mut d = other.clone();
    d.action = Action::Allow;
    d.score = 0;
    d.fired.clear();
    d.shadow.clear();
    d.errors.clear();
    d.models.clear();
    d.decided_by = "default";
    d.policy_version = version.to_string();
    d
}
