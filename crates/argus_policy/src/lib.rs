//! `argus_policy` — policies, value lists and decisions.
//!
//! A policy groups the rules of one checkpoint (an event type). Each rule is a condition in the rule
//! language (`argus_rules`) over the event's fields and the features readable on that type, with an action,
//! a score, a reason, tags and a mode (`enforce` or `shadow`). Value lists are typed sets of entity values
//! with per-item expiry and reason. A decision combines the fired rules with a documented precedence.
//!
//! It knows nothing of storage, HTTP or the wall clock: list expiry is judged against the event's time.

pub mod decision;
pub mod lists;
pub mod load;
pub mod policy;
pub mod rollout;

pub use decision::{Action, Decision, FiredRule, ModelOutput, Reason};
pub use lists::ValueLists;
pub use load::{
    load_checked, load_dir, load_sources, read_dir, LoadError, Loaded, PolicyTest, Problem, Sources,
};
pub use policy::{Policy, PolicySet, Rule};
pub use rollout::{bucket, Overrides, Rollout, Snooze};
