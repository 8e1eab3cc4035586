//! The replay report of a policy: action counts, per-rule hits and overlap, and — when events carry
//! labels — precision, recall and money caught per rule and overall.

use argus_policy::{Action, Decision};
use serde::Serialize;
use std::collections::BTreeMap;

/// Per-rule figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleReport {
    pub hits: u64,
    /// Hits on events that carry a label (the denominator of precision).
    pub labelled_hits: u64,
    pub shadow: bool,
    /// Hits on events labelled positive (fraud).
    pub true_positives: u64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Amount of the positive events the rule fired on.
    pub money_caught: f64,
    /// Amount of the positive events the rule did not fire on.
    pub money_missed: f64,
}

/// The whole report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyReport {
    pub decisions: u64,
    pub actions: BTreeMap<&'static str, u64>,
    pub rules: BTreeMap<String, RuleReport>,
    /// How often two enforced rules fired on the same event (`a & b`, a < b).
    pub overlap: BTreeMap<String, u64>,
    /// Decisions with at least one rule error (e.g. a field absent from the event).
    pub with_errors: u64,
    pub labelled: Labelled,
}

/// Against labels: "caught" means any action other than `allow`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Labelled {
    pub events: u64,
    pub positives: u64,
    pub caught: u64,
    pub false_positives: u64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub money_positive: f64,
    pub money_caught: f64,
    pub money_lost: f64,
}

impl PolicyReport {
    /// Adds one decision. `truth` is the event's label (`None`: unlabelled); `amount` its money.
    pub fn add(&mut self, d: &Decision, truth: Option<bool>, amount: f64) {
        self.decisions += 1;
        *self.actions.entry(d.action.name()).or_default() += 1;
        if !d.errors.is_empty() {
            self.with_errors += 1;
        }
        let positive = truth == Some(true);
        for f in d.fired.iter().chain(d.shadow.iter()) {
            let r = self.rules.entry(f.rule.clone()).or_default();
            r.hits += 1;
            r.shadow = f.shadow;
            if truth.is_some() {
                r.labelled_hits += 1;
            }
            if positive {
                r.true_positives += 1;
                r.money_caught += amount;
            }
        }
        for (i, a) in d.fired.iter().enumerate() {
            for b in &d.fired[i + 1..] {
                let (x, y) = if a.rule < b.rule {
                    (&a.rule, &b.rule)
                } else {
                    (&b.rule, &a.rule)
                };
                *self.overlap.entry(format!("{x} & {y}")).or_default() += 1;
            }
        }
        if let Some(t) = truth {
            let l = &mut self.labelled;
            l.events += 1;
            let caught = d.action != Action::Allow;
            if t {
                l.positives += 1;
                l.money_positive += amount;
                if caught {
                    l.caught += 1;
                    l.money_caught += amount;
                } else {
                    l.money_lost += amount;
                }
            } else if caught {
                l.false_positives += 1;
            }
        }
    }

    /// Computes the ratios.
    pub fn finish(&mut self) {
        let positives = self.labelled.positives;
        for r in self.rules.values_mut() {
            r.money_missed = (self.labelled.money_positive - r.money_caught).max(0.0);
            if self.labelled.events > 0 {
                r.precision =
                    (r.labelled_hits > 0).then(|| r.true_positives as f64 / r.labelled_hits as f64);
                r.recall = (positives > 0).then(|| r.true_positives as f64 / positives as f64);
            }
        }
        let l = &mut self.labelled;
        let flagged = l.caught + l.false_positives;
        l.precision = (flagged > 0).then(|| l.caught as f64 / flagged as f64);
        l.recall = (l.positives > 0).then(|| l.caught as f64 / l.positives as f64);
    }
}
