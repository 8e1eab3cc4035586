//! Safe rule change on the core thread: installing a stored policy version, snoozes and paused
//! rules (overrides re-applied over every install), a rollout's candidate set and its live
//! comparison, and the blast-radius guard watching every live decision.
//!
//! The guard's state is a function of the log: at start it is rebuilt from every retained event
//! record's decision, in log order, and a person's resume is itself a log record (`KIND_GUARD`).
//! So a restarted server pauses and resumes rules exactly where an uninterrupted one would.

use super::*;
use argus_lifecycle::{Files, Trip};
use argus_policy::{Overrides, Rollout, Snooze};

/// Per arm of a rollout: decisions by action, fallbacks, and disagreements with the other arm.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ArmStats {
    pub decisions: u64,
    pub actions: BTreeMap<&'static str, u64>,
    /// Decisions where the other arm would have answered differently.
    pub disagreements: u64,
    /// Candidate-share decisions the control made because the candidate's rules erred.
    pub fallbacks: u64,
}

/// What the core keeps for the lifecycle between installs.
#[derive(Default)]
pub struct LifecycleState {
    pub(super) snoozes: Vec<Snooze>,
    pub(super) rollout: Option<(Rollout, String, Files)>,
    /// The files of the installed policies (what a stored version of them holds).
    pub(super) files: Files,
    pub(super) arms: BTreeMap<&'static str, ArmStats>,
    pub(super) guard: argus_lifecycle::Guard,
    /// Where the guard's trips go (the lifecycle task records them and opens the cases), once the
    /// group that tripped them is committed.
    pub(super) trips: Option<tokio::sync::mpsc::Sender<Trip>>,
    /// Trips of the group being built.
    pub(super) pending_trips: Vec<Trip>,
    /// Pauses that took effect so far (a run of events decided ahead re-decides the events after
    /// one).
    pub(super) pauses_started: u64,
    /// A stored version is the source of truth and none is installed yet: events wait (refused
    /// with 503) rather than being decided by anything else.
    pub(super) awaiting: bool,
    /// The label of the stored version installed (`files` then holds its files); `None` while the
    /// policy files run.
    pub(super) installed: Option<String>,
    /// In a cluster: the policies changed (an install, snoozes, a rollout) since the last cursor
    /// record, which then keeps the [`PolicyState`].
    pub(super) changed: bool,
}

/// What a node of a cluster runs, as the shared log's entries set it: the stored version installed
/// (files and label), the snoozes and a rollout (candidate files, label, basis points, salt). Kept in
/// the cursor record of each entry that changed it and in every snapshot, so that a restarted node
/// decides the entries it catches up on with the policies the other nodes decided them with, not
/// with its files until the next install reaches it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    pub installed: Option<(Files, String)>,
    pub snoozes: Vec<Snooze>,
    pub rollout: Option<(Files, String, u32, String)>,
}

/// The layout of an encoded [`PolicyState`].
const POLICY_STATE_VERSION: u32 = 1;

pub(super) fn encode_policy_state(p: &PolicyState) -> Vec<u8> {
    // Plain data: encoding into a Vec cannot fail.
    serde_json::to_vec(&(POLICY_STATE_VERSION, p)).unwrap_or_default()
}

/// A [`PolicyState`] of this release's layout; another layout is not used (said once).
pub(super) fn decode_policy_state(bytes: &[u8]) -> Option<PolicyState> {
    match serde_json::from_slice::<(u32, PolicyState)>(bytes) {
        Ok((POLICY_STATE_VERSION, p)) => Some(p),
        _ => {
            tracing::warn!("a kept policy state is of another layout: not used");
            None
        }
    }
}

impl Core {
    /// This node's [`PolicyState`].
    pub(super) fn policy_state(&self) -> PolicyState {
        let l = &self.lifecycle;
        PolicyState {
            installed: l.installed.clone().map(|label| (l.files.clone(), label)),
            snoozes: l.snoozes.clone(),
            rollout: l.rollout.as_ref().map(|(r, label, files)| {
                (files.clone(), label.clone(), r.basis_points, r.salt.clone())
            }),
        }
    }

    /// Puts a kept [`PolicyState`] back (at recovery, before any entry is decided): the version,
    /// then the snoozes, then the rollout. What no longer compiles is said and left out.
    pub(super) fn restore_policy_state(&mut self, p: PolicyState) {
        if let Some((files, label)) = &p.installed {
            if let Answer::Failed(_) = self.install_version(files, label) {
                tracing::error!(
                    version = label.as_str(),
                    "the installed version kept in the log does not compile under this configuration: the policy files run until the next install"
                );
            }
        }
        self.set_overrides(p.snoozes);
        if let Some(r) = p.rollout {
            if let Answer::Failed(_) = self.set_rollout(Some(r)) {
                tracing::error!("the rollout kept in the log does not compile under this configuration: not resumed");
            }
        }
        self.lifecycle.changed = false;
    }
}

/// A guard record in the log: a person resumed a paused rule, or a pause the store holds was
/// applied again (the guard, rebuilt under other settings, had lost it).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GuardRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Trip>,
}

/// What the guard reads of a decision, from the live decision or a logged one.
#[derive(Deserialize)]
struct Logged<'a> {
    #[serde(borrow)]
    checkpoint: std::borrow::Cow<'a, str>,
    action: argus_policy::Action,
    #[serde(default, borrow)]
    fired: Vec<LoggedRule<'a>>,
    #[serde(default)]
    arm: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LoggedRule<'a> {
    #[serde(borrow)]
    rule: std::borrow::Cow<'a, str>,
    action: argus_policy::Action,
}

/// One decision seen by the guard: the checkpoint (a rollout's candidate share apart, so that a
/// broken candidate rule is not diluted by the control's events), whether it blocked, and the
/// enforced rules that fired other than allow.
fn guard_sees(
    guard: &mut argus_lifecycle::Guard,
    checkpoint: &str,
    actor: u128,
    arm: Option<&str>,
    action: argus_policy::Action,
    fired: &[(&str, argus_policy::Action)],
) -> Vec<Trip> {
    let key: std::borrow::Cow<'_, str> = if arm == Some("candidate") {
        format!("{checkpoint}#candidate").into()
    } else {
        checkpoint.into()
    };
    let fired: Vec<(&str, bool)> = fired
        .iter()
        .filter(|(_, a)| *a != argus_policy::Action::Allow)
        .map(|(r, a)| (*r, *a == argus_policy::Action::Block))
        .collect();
    guard.observe(&key, actor, action == argus_policy::Action::Block, &fired)
}

/// Feeds a logged decision (its JSON) to the guard, as it was seen live.
pub(super) fn guard_replay(guard: &mut argus_lifecycle::Guard, actor: u128, decision: &[u8]) {
    if !guard.cfg.enabled || decision.is_empty() {
        return;
    }
    if let Ok(d) = serde_json::from_slice::<Logged>(decision) {
        let fired: Vec<(&str, argus_policy::Action)> = d
            .fired
            .iter()
            .map(|f| (f.rule.as_ref(), f.action))
            .collect();
        guard_sees(
            guard,
            &d.checkpoint,
            actor,
            d.arm.as_deref(),
            d.action,
            &fired,
        );
    }
}

/// The name of the file in a version that records the models it ran with (written by the server,
/// never compiled).
pub const MODELS_LOCK: &str = "models.lock";

/// The files of a stored version as the loader's sources: policies, and lists (`lists/…`). Only
/// `.toml` files are policy text (`models.lock` is a record).
pub fn sources_of(files: &Files) -> (argus_policy::Sources, argus_policy::Sources) {
    let (lists, policies): (Vec<_>, Vec<_>) = files
        .iter()
        .filter(|(n, _)| n.ends_with(".toml"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .partition(|(n, _)| n.starts_with("lists/"));
    (policies, lists)
}

/// `models.lock`: one line per `[[models]]` entry (name, version, file digest, checkpoint), or empty.
pub fn models_lock(cfg: &Config) -> String {
    cfg.models
        .iter()
        .map(|m| {
            format!(
                "{} {} xxh3:{:016x} {}\n",
                m.name,
                m.version,
                m.digest,
                cfg.schema.get(m.event_type).name
            )
        })
        .collect()
}

/// Compiles a version's files under `cfg`; `label` (e.g. `v12`) replaces the declared versions in
/// the policy version, so decisions name the stored version and the files' fingerprint.
pub fn compile_version(
    cfg: &Config,
    files: &Files,
    label: &str,
) -> Result<argus_policy::Loaded, Vec<argus_policy::Problem>> {
    let (p, l) = sources_of(files);
    let mut loaded =
        argus_policy::load_checked(&p, &l, &cfg.schema, &cfg.features, &cfg.pseudonymizer)?;
    let fp = loaded
        .policies
        .version
        .rsplit('+')
        .next()
        .unwrap_or("")
        .to_string();
    loaded.policies.version = format!("{label}+{fp}");
    Ok(loaded)
}

fn problems(ps: Vec<argus_policy::Problem>) -> Answer {
    error_with(
        Failure::Unprocessable,
        "invalid_policies",
        "the version does not compile; nothing was changed",
        json!(ps),
    )
}

impl Core {
    /// The overrides and rollout the core keeps, put on freshly installed policies.
    pub(super) fn decorate(&self, ps: &mut argus_policy::PolicySet) {
        let lc = &self.lifecycle;
        ps.overrides = Arc::new(Overrides::new(
            lc.snoozes.clone(),
            lc.guard.paused().map(str::to_string),
        ));
        ps.rollout = lc.rollout.as_ref().map(|(r, _, _)| r.clone());
    }

    /// Re-applies the overrides and rollout to the installed policies.
    fn redecorate(&mut self) -> bool {
        // The engine holds the only reference between events.
        let mut next = match self.engine.policies_mut() {
            Some(p) => std::mem::take(p),
            None => return false,
        };
        self.decorate(&mut next);
        *self
            .shared
            .policy_version
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = next.overrides.version(&next.version);
        self.engine.set_policies(Arc::new(next));
        true
    }

    /// Installs a stored version's files (compiled here, under the running configuration).
    pub(super) fn install_version(&mut self, files: &Files, label: &str) -> Answer {
        let loaded = match compile_version(&self.engine.config, files, label) {
            Ok(l) => l,
            Err(ps) => return problems(ps),
        };
        let before = self.engine.policies().map(|p| p.version.clone());
        self.install_policies(Some(loaded));
        self.lifecycle.awaiting = false;
        self.lifecycle.installed = Some(label.to_string());
        self.lifecycle.changed = true;
        let after = self.engine.policies().map(|p| p.version.clone());
        m::inc_labeled(m::RELOADS, "outcome", "version");
        ok(json!({"status": "installed", "previous_version": before, "policy_version": after}))
    }

    /// Replaces the snoozes.
    pub(super) fn set_overrides(&mut self, snoozes: Vec<Snooze>) -> Answer {
        self.lifecycle.snoozes = snoozes;
        self.lifecycle.changed = true;
        self.redecorate();
        ok(json!({
            "snoozes": self.lifecycle.snoozes.len(),
            "policy_version": self.engine.policies().map(|p| p.overrides.version(&p.version)),
        }))
    }

    /// A person resumes a rule the guard paused: logged (so that recovery resumes it at the same
    /// place), then applied.
    pub(super) fn resume_rule(&mut self, rule: String) -> Outcome {
        let was = self.lifecycle.guard.tripped().any(|t| t.rule == rule);
        let record = GuardRecord {
            resume: Some(rule.clone()),
            ..Default::default()
        };
        if let Some(refused) = self.log_guard(&record, "resume") {
            return refused;
        }
        self.lifecycle.guard.resume(&rule);
        self.redecorate();
        Outcome::Logged(ok(json!({"rule": rule, "was_paused": was})))
    }

    /// A pause the store holds that the guard lost (rebuilt from the retained log under other
    /// settings, the decisions that tripped it gone): applied again from the next decision, and
    /// logged, so that recovery applies it at the same place.
    pub(super) fn pause_again(&mut self, mut trip: Trip) -> Outcome {
        let rule = trip.rule.clone();
        if self.lifecycle.guard.tripped().any(|t| t.rule == rule) {
            return Outcome::Answer(ok(json!({"rule": rule, "was_paused": true})));
        }
        trip.paused_from = 0;
        let record = GuardRecord {
            pause: Some(trip.clone()),
            ..Default::default()
        };
        if let Some(refused) = self.log_guard(&record, "pause") {
            return refused;
        }
        self.lifecycle.guard.pause(&trip);
        self.redecorate();
        Outcome::Logged(ok(json!({"rule": rule, "was_paused": false})))
    }

    /// Writes a guard record to the log; the refusal when that failed.
    fn log_guard(&mut self, record: &GuardRecord, what: &str) -> Option<Outcome> {
        let payload = serde_json::to_vec(record).unwrap_or_default();
        if let Err(e) = self.wal.append(KIND_GUARD, &payload) {
            self.fail(format!("event log: {e}"));
            return Some(Outcome::Answer(error(
                Failure::Unavailable,
                "log_unavailable",
                format!("the {what} could not be written to the event log"),
            )));
        }
        self.since_snap += 1;
        None
    }

    /// Starts (or, with `None`, ends) a rollout of a candidate version.
    pub(super) fn set_rollout(&mut self, r: Option<(Files, String, u32, String)>) -> Answer {
        self.lifecycle.changed = true;
        match r {
            None => {
                let arms = std::mem::take(&mut self.lifecycle.arms);
                self.lifecycle.rollout = None;
                self.redecorate();
                ok(json!({"status": "ended", "arms": arms}))
            }
            Some((files, label, bp, salt)) => {
                let cand = match self.candidate(&files, &label) {
                    Ok(c) => c,
                    Err(a) => return a,
                };
                self.lifecycle.rollout = Some((
                    Rollout {
                        candidate: Arc::new(cand),
                        basis_points: bp,
                        salt,
                    },
                    label,
                    files,
                ));
                self.lifecycle.arms.clear();
                self.redecorate();
                ok(json!({"status": "started", "basis_points": bp}))
            }
        }
    }

    /// A rollout's candidate: its files compiled, with the list overlay as it now is.
    fn candidate(&self, files: &Files, label: &str) -> Result<argus_policy::PolicySet, Answer> {
        let loaded = compile_version(&self.engine.config, files, label).map_err(problems)?;
        let mut cand = loaded.policies;
        let lists = Arc::make_mut(&mut cand.lists);
        for ((list, key), item) in &self.overlay {
            apply_overlay(lists, list, key, item.as_ref());
        }
        Ok(cand)
    }

    /// After a list change: the rollout's candidate sees it too (recompiled with the overlay; the
    /// arms' counts go on).
    pub(super) fn refresh_candidate(&mut self) {
        let Some((r, label, files)) = self.lifecycle.rollout.take() else {
            return;
        };
        let r = match self.candidate(&files, &label) {
            Ok(c) => Rollout {
                candidate: Arc::new(c),
                ..r
            },
            Err(_) => {
                tracing::error!(
                    "the rollout's candidate {label} no longer compiles; kept as it was"
                );
                r
            }
        };
        self.lifecycle.rollout = Some((r, label, files));
        self.redecorate();
    }

    /// The running policies' version (as decisions name it) and files.
    pub(super) fn running(&self) -> Answer {
        ok(json!({
            "policy_version": self.engine.policies().map(|p| p.overrides.version(&p.version)),
            "files": self.lifecycle.files,
            "models_lock": models_lock(&self.engine.config),
            "awaiting": self.lifecycle.awaiting,
        }))
    }

    /// The rollout's live comparison.
    pub(super) fn rollout_stats(&self) -> Answer {
        let r = self.lifecycle.rollout.as_ref();
        ok(json!({
            "running": r.is_some(),
            "candidate": r.map(|(_, l, _)| l),
            "basis_points": r.map(|(r, _, _)| r.basis_points),
            "control_version": self.engine.policies().map(|p| p.version.clone()),
            "candidate_version": r.map(|(r, _, _)| r.candidate.version.clone()),
            "arms": self.lifecycle.arms,
        }))
    }

    /// What the guard learned and which rules are paused.
    pub(super) fn guard_state(&self) -> Answer {
        let learned: Vec<Json> = self
            .lifecycle
            .guard
            .learned()
            .into_iter()
            .map(|(c, r, l)| {
                json!({"checkpoint": c, "rule": r, "hits": l.hits, "events": l.events,
                "baseline": self.lifecycle.guard.baseline(&c, &r)})
            })
            .collect();
        ok(json!({
            "config": self.lifecycle.guard.cfg,
            "paused": self.lifecycle.guard.tripped().collect::<Vec<_>>(),
            // Of those, the ones in force for the next decision (the others' `paused_from` is
            // ahead: `pause_after`).
            "in_force": self.lifecycle.guard.paused().collect::<Vec<_>>(),
            "learned": learned,
        }))
    }

    /// A live decision, seen by the rollout comparison and the guard; a tripped rule is reported to
    /// the lifecycle task after the group commit, and paused from `pause_after` decisions later
    /// (at the default 1, the next event already sees it paused).
    pub(super) fn watch(&mut self, d: &argus_policy::Decision, actor: u128) {
        if let Some(arm) = d.arm {
            let s = self.lifecycle.arms.entry(arm).or_default();
            s.decisions += 1;
            *s.actions.entry(d.action.name()).or_default() += 1;
            if d.other_action.is_some_and(|o| o != d.action) {
                s.disagreements += 1;
            }
            if d.fallback {
                s.fallbacks += 1;
            }
        }
        if !self.lifecycle.guard.cfg.enabled {
            return;
        }
        let fired: Vec<(&str, argus_policy::Action)> = d
            .fired
            .iter()
            .map(|f| (f.rule.as_str(), f.action))
            .collect();
        let trips = guard_sees(
            &mut self.lifecycle.guard,
            &d.checkpoint,
            actor,
            d.arm,
            d.action,
            &fired,
        );
        // A trip `pause_after` decisions ago (or this one's, at the default 1) takes effect from
        // the next decision.
        if self.lifecycle.guard.pause_starts() {
            self.lifecycle.pauses_started += 1;
            self.redecorate();
        }
        for t in trips {
            tracing::warn!(
                rule = %t.rule,
                checkpoint = %t.checkpoint,
                rate = t.rate,
                baseline = t.baseline,
                "the guard paused a rule ({}): {} hits in {} events",
                t.cause.name(),
                t.window_hits,
                t.window_events
            );
            m::guard_pause(&t.rule);
            // Recorded by the lifecycle task once this group is committed (a lost record pauses
            // nothing that recovery would not pause again).
            self.lifecycle.pending_trips.push(t);
        }
    }
}

impl Core {
    /// The group's trips, with their sender, handed over once the group is committed.
    pub(super) fn take_trips(&mut self) -> Option<(tokio::sync::mpsc::Sender<Trip>, Vec<Trip>)> {
        if self.lifecycle.pending_trips.is_empty() {
            return None;
        }
        let trips = std::mem::take(&mut self.lifecycle.pending_trips);
        self.lifecycle.trips.as_ref().map(|tx| (tx.clone(), trips))
    }
}

/// Hands a committed group's trips to the lifecycle task (never blocks).
pub(super) fn hand_over_trips(trips: Option<(tokio::sync::mpsc::Sender<Trip>, Vec<Trip>)>) {
    let Some((tx, trips)) = trips else { return };
    for t in trips {
        if tx.try_send(t).is_err() {
            tracing::error!("the guard's pause could not be handed to the lifecycle task (queue full): it holds, and is recorded at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versions_models_lock_is_a_record_not_policy_text() {
        let files: Files = [
            ("a.toml".to_string(), "x".to_string()),
            ("lists/l.toml".to_string(), "y".to_string()),
            (
                MODELS_LOCK.to_string(),
                "m 1 xxh3:00 payment.attempt\n".to_string(),
            ),
        ]
        .into();
        let (p, l) = sources_of(&files);
        assert_eq!(p, vec![("a.toml".to_string(), "x".to_string())]);
        assert_eq!(l, vec![("lists/l.toml".to_string(), "y".to_string())]);
        assert_eq!(models_lock(&Config::builtin()), "");
    }
}
