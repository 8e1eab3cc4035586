//! Changing policies safely while they run: a percentage rollout of a candidate policy set, snoozes
//! (one rule skipped for one entity until a time) and rules paused by the blast-radius guard.
//!
//! All three are judged from the event alone (its actor, its entity fields, its time): under the
//! same policies, rollout and overrides, the same events get the same decisions whenever they are
//! decided. (The server changes overrides and rollouts between events, on the core thread; each
//! decision records what it was made under: `arm`, `snoozed`, `paused`, the version.)

use crate::policy::PolicySet;
use argus_event::{Event, Schema, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A candidate policy set decides for a stable share of actors; the control (the set it is attached
/// to) decides for the rest, and for the candidate's share whenever the candidate's rules err where
/// the control's do not.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub candidate: Arc<PolicySet>,
    /// The candidate's share of actors, in basis points (0..=10,000).
    pub basis_points: u32,
    /// Mixed into each actor's bucket: a new rollout draws its share afresh.
    pub salt: String,
}

/// An actor's bucket, 0..10,000: the same actor and salt always give the same bucket.
pub fn bucket(salt: &str, actor: &str) -> u32 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(salt.as_bytes());
    h.update(&[0]);
    h.update(actor.as_bytes());
    (h.digest() % 10_000) as u32
}

/// One rule skipped for one entity until a time (event time).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snooze {
    pub rule: String,
    /// The entity kind (`user`, `device`, …): the actor when it is of this kind, and every field
    /// declared with this entity kind.
    pub kind: String,
    /// The entity's value as events carry it (a token for personal-data kinds).
    pub value: String,
    /// Epoch milliseconds: the snooze holds for events from `from` (when it was made) and strictly
    /// before `until`, so a backtest over earlier events is not changed by a snooze made today.
    pub from: i64,
    pub until: i64,
}

/// Run-time changes to a policy set that are not versions: snoozes and paused rules.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    snoozes: HashMap<String, Vec<Snooze>>,
    paused: BTreeSet<String>,
    /// `~paused:a,b` when rules are paused: decisions name the policy version they were made under.
    suffix: String,
}

impl Overrides {
    pub fn new(snoozes: Vec<Snooze>, paused: impl IntoIterator<Item = String>) -> Overrides {
        let mut by_rule: HashMap<String, Vec<Snooze>> = HashMap::new();
        for s in snoozes {
            by_rule.entry(s.rule.clone()).or_default().push(s);
        }
        let paused: BTreeSet<String> = paused.into_iter().collect();
        let suffix = if paused.is_empty() {
            String::new()
        } else {
            format!(
                "~paused:{}",
                paused.iter().cloned().collect::<Vec<_>>().join(",")
            )
        };
        Overrides {
            snoozes: by_rule,
            paused,
            suffix,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.snoozes.is_empty() && self.paused.is_empty()
    }

    pub fn paused(&self) -> &BTreeSet<String> {
        &self.paused
    }

    pub fn snoozes(&self) -> impl Iterator<Item = &Snooze> {
        self.snoozes.values().flatten()
    }

    pub fn is_paused(&self, rule: &str) -> bool {
        !self.paused.is_empty() && self.paused.contains(rule)
    }

    /// The policy version as decisions name it under these overrides.
    pub fn version(&self, base: &str) -> String {
        if self.suffix.is_empty() {
            base.to_string()
        } else {
            format!("{base}{}", self.suffix)
        }
    }

    /// Whether `rule` is snoozed for an entity of `ev` at its time.
    pub fn is_snoozed(&self, schema: &Schema, ev: &Event, rule: &str) -> bool {
        if self.snoozes.is_empty() {
            return false;
        }
        let Some(list) = self.snoozes.get(rule) else {
            return false;
        };
        let et = schema.get(ev.ty);
        list.iter()
            .filter(|s| s.from <= ev.time && ev.time < s.until)
            .any(|s| {
                let actor = et.actor_kind == s.kind
                    && ev
                        .fields
                        .get(argus_event::schema::ACTOR_SLOT)
                        .is_some_and(|v| same(v, &s.value));
                actor
                    || et.fields.iter().zip(&ev.fields).skip(1).any(|(f, v)| {
                        f.entity.as_deref() == Some(s.kind.as_str()) && same(v, &s.value)
                    })
            })
    }
}

fn same(v: &Value, want: &str) -> bool {
    match v {
        Value::Str(s) => **s == *want,
        Value::Int(i) => i.to_string() == want,
        _ => false,
    }
}

/// The actor of an event as text (empty when absent).
pub(crate) fn actor_of(ev: &Event) -> String {
    match ev.fields.get(argus_event::schema::ACTOR_SLOT) {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        _ => String::new(),
    }
}
