//! Safe rule change on the core thread: installing a stored policy version, snoozes and paused
//! rules (overrides re-applied over every install), a rollout's candidate set and its live
//! comparison, and the blast-radius guard watching every live decision.

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
    pub(super) paused: std::collections::BTreeSet<String>,
    pub(super) rollout: Option<(Rollout, String, Files)>,
    /// The files of the installed policies (what a stored version of them holds).
    pub(super) files: Files,
    pub(super) arms: BTreeMap<&'static str, ArmStats>,
    pub(super) guard: argus_lifecycle::Guard,
    /// Where the guard's trips go (the lifecycle task records them and opens the cases).
    pub(super) trips: Option<tokio::sync::mpsc::Sender<Trip>>,
    /// A stored version is the source of truth and none is installed yet: events wait (refused
    /// with 503) rather than being decided by anything else.
    pub(super) awaiting: bool,
    /// Rules the guard paused that the store has not confirmed yet: they stay paused whatever the
    /// store's list says until it lists them (a person's resume then removes them).
    pub(super) unrecorded: std::collections::BTreeSet<String>,
    /// The guard watches once what it learned before has been restored (or there was none).
    pub(super) armed: bool,
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
            lc.paused.iter().cloned(),
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
        let after = self.engine.policies().map(|p| p.version.clone());
        m::inc_labeled(m::RELOADS, "outcome", "version");
        ok(json!({"status": "installed", "previous_version": before, "policy_version": after}))
    }

    /// Replaces the snoozes and paused rules (the store's), keeping the pauses the store has not
    /// recorded yet.
    pub(super) fn set_overrides(&mut self, snoozes: Vec<Snooze>, paused: Vec<String>) -> Answer {
        self.lifecycle.unrecorded.retain(|r| !paused.contains(r));
        let mut paused = paused;
        paused.extend(self.lifecycle.unrecorded.iter().cloned());
        let resumed: Vec<String> = self
            .lifecycle
            .paused
            .iter()
            .filter(|r| !paused.contains(r))
            .cloned()
            .collect();
        for r in &resumed {
            self.lifecycle.guard.resume(r);
        }
        self.lifecycle.guard.set_tripped(paused.iter().cloned());
        self.lifecycle.snoozes = snoozes;
        self.lifecycle.paused = paused.into_iter().collect();
        self.redecorate();
        ok(json!({
            "snoozes": self.lifecycle.snoozes.len(),
            "paused": self.lifecycle.paused,
            "policy_version": self.engine.policies().map(|p| p.overrides.version(&p.version)),
        }))
    }

    /// Starts (or, with `None`, ends) a rollout of a candidate version.
    pub(super) fn set_rollout(&mut self, r: Option<(Files, String, u32, String)>) -> Answer {
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
            "paused": self.lifecycle.paused,
            "learned": learned,
        }))
    }

    /// Restores what the guard learned before a restart.
    pub(super) fn guard_restore(
        &mut self,
        learned: Vec<(String, String, argus_lifecycle::Learned)>,
    ) -> Answer {
        self.lifecycle.guard.restore(learned);
        self.lifecycle.armed = true;
        ok(json!({}))
    }

    /// A live decision, seen by the rollout comparison and the guard; a tripped rule is paused at
    /// once (the next event already sees it paused) and reported to the lifecycle task.
    pub(super) fn watch(&mut self, d: &argus_policy::Decision) {
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
        if !self.lifecycle.guard.cfg.enabled || !self.lifecycle.armed {
            return;
        }
        // The candidate's share is watched apart: a broken candidate rule would be diluted by the
        // control's events otherwise.
        let key = if d.arm == Some("candidate") {
            format!("{}#candidate", d.checkpoint)
        } else {
            d.checkpoint.clone()
        };
        let fired: Vec<(&str, bool)> = d
            .fired
            .iter()
            .filter(|f| f.action != argus_policy::Action::Allow)
            .map(|f| (f.rule.as_str(), f.action == argus_policy::Action::Block))
            .collect();
        let trips =
            self.lifecycle
                .guard
                .observe(&key, d.action == argus_policy::Action::Block, &fired);
        if trips.is_empty() {
            return;
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
            self.lifecycle.paused.insert(t.rule.clone());
            self.lifecycle.unrecorded.insert(t.rule.clone());
            if let Some(tx) = &self.lifecycle.trips {
                if tx.try_send(t).is_err() {
                    tracing::error!("the guard's pause could not be handed to the lifecycle task (queue full); it holds in memory until restart");
                }
            }
        }
        self.redecorate();
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
