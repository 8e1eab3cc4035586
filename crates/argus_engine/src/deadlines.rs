//! Latency budgets and degraded decisions (P3.6, `[deadlines]`): a checkpoint answers within its
//! budget even when a stage fails or runs late, and the decision says which stage it went without.
//!
//! ```toml
//! [deadlines]
//! budget = "50ms"            # every checkpoint's budget, from the start of the engine's work
//! closed_action = "review"   # the action of a decision made without a fail-closed stage
//! overload = "degrade"       # a full queue answers degraded decisions (default "refuse": 503)
//! overload_action = "allow"  # their action (default "review")
//! [deadlines.checkpoints."payment.attempt"]
//! budget = "30ms"
//! closed_action = "block"
//! [deadlines.stages.models]
//! share = 0.5                # of the budget
//! fail = "closed"            # decide without the stage ("open", the default) or with closed_action
//! ```
//!
//! The stages and what each can do:
//! - `models` are pure (features in, scores out), so they are scored on a worker thread and
//!   abandoned when their share of the budget (or what is left of the budget, if less) has passed:
//!   the decision is made without their scores (`model.*` are null to the rules) and arrives in
//!   time. A model that fails (panics) is treated the same way.
//! - `features` and `graph` keep state. Skipping their update would fork the state from the log
//!   (every replay would compute other features), so they are always applied; they are measured,
//!   and a `graph` over its share has its features withheld from the decision (`graph_*` are null)
//!   and is named in `degraded`. Whatever they used is no longer left for the models.
//!
//! A degraded decision carries `degraded: [[stage, reason], …]` (reason `late` or `failed`), the
//! rules read the stage names as the list `degraded` (`"models" in degraded`), and when a stage
//! that fails closed is among them the action is raised to at least `closed_action` (decided by
//! `degraded`). It is logged like any decision, and a backtest re-decides it with the same stages
//! missing, so that live and replay still agree.
//!
//! `ARGUS_FAULTS` (read by `argus serve`) makes a stage slow or failing on purpose, to test all of
//! this: `models=slow:300ms`, `models=fail`, `graph=slow:20ms`, `graph=fail`, comma-separated.

use argus_policy::Action;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The stages a budget divides among, in the order they run.
pub const STAGES: [&str; 3] = ["features", "graph", "models"];

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesConfig {
    pub budget: Option<String>,
    pub closed_action: Option<String>,
    pub overload: Option<String>,
    pub overload_action: Option<String>,
    #[serde(default)]
    pub checkpoints: BTreeMap<String, CheckpointConfig>,
    #[serde(default)]
    pub stages: BTreeMap<String, StageConfig>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    pub budget: Option<String>,
    pub closed_action: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub share: Option<f64>,
    pub fail: Option<String>,
}

/// One stage's share of a budget and what a decision does without it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageRule {
    pub share: f64,
    /// `true`: a decision without this stage takes the checkpoint's `closed_action`.
    pub closed: bool,
}

/// `[deadlines]`, compiled against the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlines {
    /// Each event type's budget (by type id); `None`: no budget for that type.
    pub budget: Vec<Option<Duration>>,
    pub closed_action: Vec<Action>,
    /// `features`, `graph`, `models`, in [`STAGES`] order.
    pub stages: [StageRule; 3],
    /// A full queue answers degraded decisions instead of 503.
    pub overload_degrade: bool,
    pub overload_action: Action,
}

impl Deadlines {
    pub fn stage(&self, name: &str) -> StageRule {
        let i = STAGES.iter().position(|s| *s == name).unwrap_or(2);
        self.stages[i]
    }
    pub fn budget_of(&self, ty: u16) -> Option<Duration> {
        self.budget.get(ty as usize).copied().flatten()
    }
}

fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let d = match unit.trim() {
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// Compiles `[deadlines]`; every problem at once.
pub fn compile(
    c: &DeadlinesConfig,
    schema: &argus_event::Schema,
) -> Result<Option<Deadlines>, Vec<String>> {
    let mut errors = Vec::new();
    let dur = |what: &str, v: &Option<String>, errors: &mut Vec<String>| -> Option<Duration> {
        let s = v.as_ref()?;
        let d = duration(s);
        if d.is_none() {
            errors.push(format!(
                "deadlines: {what}: `{s}` is not a positive duration like `50ms`, `500us` or `1s`"
            ));
        }
        d
    };
    let action = |what: &str, v: &Option<String>, default: Action, errors: &mut Vec<String>| match v
    {
        None => default,
        Some(s) => Action::parse(s).unwrap_or_else(|| {
            errors.push(format!(
                "deadlines: {what}: `{s}` is not an action (allow, challenge, review, block)"
            ));
            default
        }),
    };
    let default_budget = dur("budget", &c.budget, &mut errors);
    let default_closed = action(
        "closed_action",
        &c.closed_action,
        Action::Review,
        &mut errors,
    );
    let n = schema.types.len();
    let mut budget = vec![default_budget; n];
    let mut closed_action = vec![default_closed; n];
    for (name, cp) in &c.checkpoints {
        let b = dur(
            &format!("checkpoints.{name}.budget"),
            &cp.budget,
            &mut errors,
        );
        let Some(ty) = schema.type_id(name) else {
            errors.push(format!(
                "deadlines: checkpoints: no event type `{name}`{}",
                argus_event::schema::did_you_mean(
                    name,
                    schema.types.iter().map(|t| t.name.as_str())
                )
            ));
            continue;
        };
        if let Some(b) = b {
            budget[ty as usize] = Some(b);
        }
        closed_action[ty as usize] = action(
            &format!("checkpoints.{name}.closed_action"),
            &cp.closed_action,
            default_closed,
            &mut errors,
        );
    }
    let defaults = [0.3, 0.2, 0.5];
    let mut stages = [StageRule {
        share: 0.0,
        closed: false,
    }; 3];
    for (rule, share) in stages.iter_mut().zip(defaults) {
        rule.share = share;
    }
    for (name, sc) in &c.stages {
        let Some(i) = STAGES.iter().position(|s| s == name) else {
            errors.push(format!(
                "deadlines: stages: no stage `{name}` (features, graph, models)"
            ));
            continue;
        };
        if let Some(share) = sc.share {
            if !(share > 0.0 && share <= 1.0) {
                errors.push(format!(
                    "deadlines: stages.{name}.share: {share} is not in (0, 1]"
                ));
            } else {
                stages[i].share = share;
            }
        }
        match sc.fail.as_deref() {
            None | Some("open") => {}
            Some("closed") => stages[i].closed = true,
            Some(f) => errors.push(format!(
                "deadlines: stages.{name}.fail: `{f}` is not `open` or `closed`"
            )),
        }
        if name == "features" && stages[i].closed {
            errors.push("deadlines: stages.features.fail: features are always applied (they keep state); only `graph` and `models` can be decided without".into());
        }
    }
    let overload_degrade = match c.overload.as_deref() {
        None | Some("refuse") => false,
        Some("degrade") => true,
        Some(o) => {
            errors.push(format!(
                "deadlines: overload: `{o}` is not `refuse` or `degrade`"
            ));
            false
        }
    };
    // Default `review`: an overloaded checkpoint does not wave events through unless told to.
    let overload_action = action(
        "overload_action",
        &c.overload_action,
        Action::Review,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    if budget.iter().all(Option::is_none) && !overload_degrade {
        return Ok(None);
    }
    Ok(Some(Deadlines {
        budget,
        closed_action,
        stages,
        overload_degrade,
        overload_action,
    }))
}

/// A stage made slow or failing on purpose (`ARGUS_FAULTS`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Slow(Duration),
    Fail,
}

/// The faults injected, per stage.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    pub graph: Option<Fault>,
    pub models: Option<Fault>,
}

impl Faults {
    /// Parses `models=slow:300ms,graph=fail`.
    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (stage, what) = part
                .split_once('=')
                .ok_or_else(|| format!("ARGUS_FAULTS: `{part}` is not stage=fault"))?;
            let fault = match what.split_once(':') {
                None if what == "fail" => Fault::Fail,
                Some(("slow", d)) => Fault::Slow(
                    duration(d).ok_or_else(|| format!("ARGUS_FAULTS: `{d}` is not a duration"))?,
                ),
                _ => {
                    return Err(format!(
                        "ARGUS_FAULTS: `{what}` is not `fail` or `slow:<duration>`"
                    ))
                }
            };
            match stage {
                "graph" => f.graph = Some(fault),
                "models" => f.models = Some(fault),
                _ => return Err(format!("ARGUS_FAULTS: no stage `{stage}` (graph, models)")),
            }
        }
        Ok(f)
    }
}

/// Scores models on a thread of its own, so that a decision can go on without a late answer.
#[derive(Default)]
pub struct ModelWorker {
    tx: Option<std::sync::mpsc::SyncSender<Job>>,
}

/// Jobs waiting for a worker that is behind (a model slower than its share): further ones are
/// late at once rather than queueing without bound.
const WORKER_QUEUE: usize = 64;

type Scored = Vec<argus_policy::ModelOutput>;

struct Job {
    models: Vec<std::sync::Arc<crate::models::LoadedModel>>,
    features: Vec<argus_event::Value>,
    fault: Option<Fault>,
    reply: std::sync::mpsc::SyncSender<Scored>,
    /// After this the decision has gone on without the answer: the job is skipped.
    until: std::time::Instant,
}

/// Why a stage's answer is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Late,
    Failed,
}

impl Missing {
    pub fn reason(self) -> &'static str {
        match self {
            Missing::Late => "late",
            Missing::Failed => "failed",
        }
    }
}

/// Scores `models` on `features`, with an injected fault (shared by the worker and the inline path).
pub fn score<'m>(
    models: impl IntoIterator<Item = &'m crate::models::LoadedModel>,
    features: &[argus_event::Value],
    fault: Option<Fault>,
) -> Result<Scored, Missing> {
    match fault {
        Some(Fault::Fail) => return Err(Missing::Failed),
        Some(Fault::Slow(d)) => std::thread::sleep(d),
        None => {}
    }
    let mut x = Vec::new();
    Ok(models
        .into_iter()
        .map(|m| m.output(features, &mut x))
        .collect())
}

impl ModelWorker {
    /// Scores on the worker, waiting at most `wait`.
    pub fn score(
        &mut self,
        models: Vec<std::sync::Arc<crate::models::LoadedModel>>,
        features: &[argus_event::Value],
        fault: Option<Fault>,
        wait: Duration,
    ) -> Result<Scored, Missing> {
        if matches!(fault, Some(Fault::Fail)) {
            return Err(Missing::Failed);
        }
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        let job = Job {
            models,
            features: features.to_vec(),
            fault,
            reply,
            until: std::time::Instant::now() + wait,
        };
        let tx = match &self.tx {
            Some(tx) => tx.clone(),
            None => self.spawn(),
        };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => return Err(Missing::Late),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                // The worker died (a model panicked): a new one for the next event.
                self.tx = None;
                return Err(Missing::Failed);
            }
        }
        match rx.recv_timeout(wait) {
            Ok(s) => Ok(s),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Missing::Late),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                self.tx = None;
                Err(Missing::Failed)
            }
        }
    }

    fn spawn(&mut self) -> std::sync::mpsc::SyncSender<Job> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(WORKER_QUEUE);
        let _ = std::thread::Builder::new()
            .name("argus-models".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A job whose decision has gone on is not scored: a backlog after a slow
                    // spell clears at once.
                    if std::time::Instant::now() >= job.until {
                        continue;
                    }
                    // A late answer finds its receiver gone: it is dropped.
                    if let Ok(s) = score(job.models.iter().map(|m| &**m), &job.features, job.fault)
                    {
                        let _ = job.reply.try_send(s);
                    }
                }
            });
        self.tx = Some(tx.clone());
        tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_faults_and_configuration_problems() {
        assert_eq!(duration("50ms"), Some(Duration::from_millis(50)));
        assert_eq!(duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(duration("0ms"), None);
        assert_eq!(duration("ms"), None);
        assert_eq!(duration("5 minutes"), None);
        let f = Faults::parse("models=slow:300ms, graph=fail").unwrap();
        assert_eq!(f.models, Some(Fault::Slow(Duration::from_millis(300))));
        assert_eq!(f.graph, Some(Fault::Fail));
        assert!(Faults::parse("rules=fail").is_err());
        assert!(Faults::parse("models=slow").is_err());
        let schema = argus_event::Schema::builtin();
        let c: DeadlinesConfig = toml::from_str(
            r#"budget = "50ms"
               overload = "sometimes"
               [checkpoints."no.such"]
               budget = "1ms"
               [stages.models]
               share = 1.5
               fail = "maybe"
               [stages.features]
               fail = "closed""#,
        )
        .unwrap();
        let e = compile(&c, &schema).unwrap_err();
        assert_eq!(e.len(), 5, "{e:#?}");
        let c: DeadlinesConfig = toml::from_str(
            r#"budget = "40ms"
               [checkpoints."payment.attempt"]
               budget = "10ms"
               closed_action = "block"
               [stages.models]
               fail = "closed""#,
        )
        .unwrap();
        let d = compile(&c, &schema).unwrap().unwrap();
        let pay = schema.type_id("payment.attempt").unwrap();
        let order = schema.type_id("order.create").unwrap();
        assert_eq!(d.budget_of(pay), Some(Duration::from_millis(10)));
        assert_eq!(d.budget_of(order), Some(Duration::from_millis(40)));
        assert_eq!(d.closed_action[pay as usize], Action::Block);
        assert_eq!(d.closed_action[order as usize], Action::Review);
        assert!(d.stage("models").closed && !d.stage("graph").closed);
        assert!(compile(&DeadlinesConfig::default(), &schema)
            .unwrap()
            .is_none());
    }
}
