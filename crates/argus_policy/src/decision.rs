//! The decision for one event, and how rules combine into it.
//!
//! Precedence (documented in docs/rules/policies.md):
//! 1. an enforced rule with action `allow` that fires decides `allow` (explicit allow lists first);
//! 2. otherwise the most severe action among the enforced rules that fired (`block` > `review` >
//!    `challenge` > `allow`);
//! 3. raised, if higher, by the policy's score thresholds applied to the sum of the enforced rules' scores.
//!
//! Shadow rules are evaluated and recorded, and change nothing.

use serde::Serialize;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, Default, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Allow,
    Challenge,
    Review,
    Block,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "allow" => Action::Allow,
            "challenge" => Action::Challenge,
            "review" => Action::Review,
            "block" => Action::Block,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Challenge => "challenge",
            Action::Review => "review",
            Action::Block => "block",
        }
    }
    pub const ALL: [Action; 4] = [
        Action::Allow,
        Action::Challenge,
        Action::Review,
        Action::Block,
    ];
}

/// A rule that fired, with what it read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredRule {
    pub rule: String,
    pub action: Action,
    pub score: i64,
    pub reason: String,
    pub tags: Vec<String>,
    pub shadow: bool,
    /// `(name, value)` of every variable the condition reads, as JSON.
    pub reads: Vec<(String, serde_json::Value)>,
}

/// A rule whose condition could not be evaluated (e.g. a field absent from this event).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleError {
    pub rule: String,
    pub error: String,
}

/// The answer for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub event_id: String,
    pub checkpoint: String,
    pub action: Action,
    pub score: i64,
    /// Enforced rules that fired, in policy order.
    pub fired: Vec<FiredRule>,
    /// Shadow rules that fired.
    pub shadow: Vec<FiredRule>,
    pub errors: Vec<RuleError>,
    pub policy_version: String,
    /// Which step of the precedence decided: `allow_rule`, `rule_action`, `score_threshold`, `default`.
    pub decided_by: &'static str,
    /// Wall-clock time the server spent on this event (decoding, feature update and rules), in µs. Set
    /// by the server only: replay leaves it out, so that the same input gives the same bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_us: Option<f64>,
    /// Models scored on this event, with the features that pushed each score up the most.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub models: Vec<ModelOutput>,
    /// Under a rollout: which arm decided (`control` or `candidate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<&'static str>,
    /// Under a rollout: the actor is in the candidate's share, but the candidate's rules erred where
    /// the control's did not, so the control decided.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    /// Under a rollout: the other arm's action for the same event (the live comparison).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_action: Option<Action>,
    /// Rules skipped because they are snoozed for an entity of this event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snoozed: Vec<String>,
    /// Enforced rules that fired but are paused by the guard (recorded with the shadow rules).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<String>,
    /// The stages this decision was made without (`[deadlines]`, or a failed stage), each with
    /// why: `[stage, reason]`, reason `late` or `failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<(&'static str, &'static str)>,
}

/// One model's score on an event and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelOutput {
    pub name: String,
    pub version: String,
    pub score: f64,
    pub reasons: Vec<Reason>,
}

/// A feature's contribution to a model score (path attribution, in log-odds for a logistic model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub feature: String,
    /// The feature's value (null when missing).
    pub value: Option<f64>,
    pub contribution: f64,
}
