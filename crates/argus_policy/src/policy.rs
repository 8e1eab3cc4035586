//! Compiled policies: per checkpoint, the rules with their programs and the variables they bind.

use crate::decision::{Action, Decision, FiredRule, RuleError};
use crate::lists::ValueLists;
use argus_event::{Event, FieldType, Schema, Value};
use argus_features::{FeatureSet, Out};
use argus_rules::{Activation, Env, Program, Type, Val};
use std::sync::Arc;

/// Where a rule variable's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Id,
    Type,
    Time,
    Field(usize),
    Feature(usize),
    /// A model score, by its slot in `FeatureSet::models`.
    Model(usize),
    /// The stages this decision is made without (`[deadlines]`), as a list of names.
    Degraded,
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub program: Program,
    pub action: Action,
    pub score: i64,
    pub reason: String,
    pub tags: Vec<String>,
    pub shadow: bool,
    pub source: String,
}

/// Score thresholds: the lowest total score that raises the action to each level.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    pub challenge: Option<i64>,
    pub review: Option<i64>,
    pub block: Option<i64>,
}

/// The rules of one checkpoint.
#[derive(Debug)]
pub struct Policy {
    pub checkpoint: String,
    pub rules: Vec<Rule>,
    pub thresholds: Thresholds,
    pub env: Env,
    /// Source of each environment variable.
    pub sources: Vec<Source>,
    /// Variables any rule reads (the only ones bound per event).
    pub used: Vec<usize>,
}

/// Every policy, by event type, with the value lists and a version.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub by_type: Vec<Option<Policy>>,
    pub lists: Arc<ValueLists>,
    /// Declared versions and a fingerprint of the files' contents, e.g. `2026-11-26.1+3f2a…`, or the
    /// stored version's number and fingerprint, e.g. `v12+3f2a…`.
    pub version: String,
    /// A candidate set deciding for a share of actors.
    pub rollout: Option<crate::rollout::Rollout>,
    /// Snoozes and paused rules (applied to the candidate too).
    pub overrides: Arc<crate::rollout::Overrides>,
}

/// Rule type of a stored field type.
pub fn rule_type(t: FieldType) -> Type {
    match t.stored() {
        FieldType::Int => Type::Int,
        FieldType::Decimal | FieldType::Float => Type::Double,
        FieldType::Bool => Type::Bool,
        FieldType::Timestamp => Type::Timestamp,
        _ => Type::String,
    }
}

fn out_type(o: Out) -> Type {
    match o {
        Out::Int => Type::Int,
        Out::Dec | Out::Float => Type::Double,
        Out::Bool => Type::Bool,
        Out::Time => Type::Timestamp,
        Out::Str => Type::String,
    }
}

/// The environment of a checkpoint: `event.*` fields of its type and the `features.*` readable on it.
pub fn checkpoint_env(
    schema: &Schema,
    features: &FeatureSet,
    ty: u16,
    lists: &ValueLists,
) -> (Env, Vec<Source>) {
    let et = schema.get(ty);
    let mut env = Env::new();
    let mut sources = Vec::new();
    let mut add = |env: &mut Env, name: String, t: Type, s: Source| {
        let i = env.var(&name, t);
        if i == sources.len() {
            sources.push(s);
        }
    };
    add(&mut env, "event.id".into(), Type::String, Source::Id);
    add(&mut env, "event.type".into(), Type::String, Source::Type);
    add(&mut env, "event.time".into(), Type::Timestamp, Source::Time);
    for (slot, f) in et.fields.iter().enumerate() {
        if f.label.is_none() {
            add(
                &mut env,
                format!("event.{}", f.name),
                rule_type(f.ty),
                Source::Field(slot),
            );
        }
    }
    for fi in features.readable(ty as usize) {
        let f = &features.features[fi];
        add(
            &mut env,
            format!("features.{}", f.name),
            out_type(f.out),
            Source::Feature(fi),
        );
    }
    for (k, m) in features
        .models
        .iter()
        .enumerate()
        .filter(|(_, m)| m.event_type == ty as usize)
    {
        add(
            &mut env,
            format!("model.{}", m.name),
            Type::Double,
            Source::Model(k),
        );
    }
    add(
        &mut env,
        "degraded".into(),
        Type::List(Box::new(Type::String)),
        Source::Degraded,
    );
    for l in &lists.lists {
        env.list(&l.name, Type::String);
    }
    (env, sources)
}

pub fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Int(i) => Val::Int(*i),
        Value::Dec(d) => Val::Double(*d as f64 / argus_event::value::DEC_SCALE as f64),
        Value::Float(f) => Val::Double(*f),
        Value::Str(s) => Val::Str(s.clone()),
        Value::Time(t) => Val::Time(*t),
    }
}

/// A rule value as JSON (what decisions report as read).
pub fn to_json(v: &Val) -> serde_json::Value {
    match v {
        Val::Null => serde_json::Value::Null,
        Val::Bool(b) => (*b).into(),
        Val::Int(i) => (*i).into(),
        Val::UInt(u) => (*u).into(),
        Val::Double(d) => serde_json::Number::from_f64(*d)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Val::Str(s) => s.to_string().into(),
        Val::Time(t) => argus_event::time::format_rfc3339(*t).into(),
        Val::Duration(d) => format!("{d}ms").into(),
        Val::List(l) => l.iter().map(to_json).collect::<Vec<_>>().into(),
        Val::Bytes(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        Val::Type(t) => t.to_string().into(),
        Val::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (format!("{k:?}"), to_json(v)))
                .collect(),
        ),
    }
}

impl PolicySet {
    /// The decision for `ev` (after feature processing) with its `features`; `None` when no policy
    /// covers the event's type.
    pub fn decide(&self, schema: &Schema, ev: &Event, features: &[Value]) -> Option<Decision> {
        self.decide_with(schema, ev, features, &[])
    }

    /// [`decide`](Self::decide) with model scores (by model slot; NaN or absent = not scored, null to
    /// the rules).
    pub fn decide_with(
        &self,
        schema: &Schema,
        ev: &Event,
        features: &[Value],
        models: &[f64],
    ) -> Option<Decision> {
        self.decide_degraded(schema, ev, features, models, &[])
    }

    /// [`decide_with`](Self::decide_with) for a decision made without some stages (their names,
    /// which the rules read as `degraded`; the caller nulls their outputs).
    pub fn decide_degraded(
        &self,
        schema: &Schema,
        ev: &Event,
        features: &[Value],
        models: &[f64],
        degraded: &[&str],
    ) -> Option<Decision> {
        let control = self.decide_one(schema, ev, features, models, degraded, &self.overrides);
        let Some(r) = &self.rollout else {
            return control;
        };
        let candidate =
            r.candidate
                .decide_one(schema, ev, features, models, degraded, &self.overrides);
        let ours = crate::rollout::bucket(&r.salt, &crate::rollout::actor_of(ev)) < r.basis_points;
        match (control, candidate) {
            (Some(mut c), Some(mut k)) => {
                // The candidate errs where the control does not: the control's answer stands.
                let erred = k
                    .errors
                    .iter()
                    .any(|e| !c.errors.iter().any(|x| x.rule == e.rule));
                if ours && !erred {
                    k.arm = Some("candidate");
                    k.other_action = Some(c.action);
                    Some(k)
                } else {
                    c.arm = Some("control");
                    c.fallback = ours;
                    c.other_action = Some(k.action);
                    Some(c)
                }
            }
            (Some(mut c), None) => {
                c.arm = Some("control");
                Some(c)
            }
            (None, Some(mut k)) if ours => {
                k.arm = Some("candidate");
                Some(k)
            }
            (None, _) => None,
        }
    }

    /// This set's own decision, under `ov` (snoozes and paused rules).
    fn decide_one(
        &self,
        schema: &Schema,
        ev: &Event,
        features: &[Value],
        models: &[f64],
        degraded: &[&str],
        ov: &crate::rollout::Overrides,
    ) -> Option<Decision> {
        let p = self.by_type.get(ev.ty as usize)?.as_ref()?;
        let mut vars = vec![Val::Null; p.sources.len()];
        for &i in &p.used {
            vars[i] = match p.sources[i] {
                Source::Id => Val::str(&ev.id),
                Source::Type => Val::str(&schema.get(ev.ty).name),
                Source::Time => Val::Time(ev.time),
                Source::Field(s) => ev.fields.get(s).map_or(Val::Null, to_val),
                Source::Feature(f) => features.get(f).map_or(Val::Null, to_val),
                Source::Model(k) => models
                    .get(k)
                    .copied()
                    .filter(|s| !s.is_nan())
                    .map_or(Val::Null, Val::Double),
                Source::Degraded => Val::List(degraded.iter().map(|s| Val::str(s)).collect()),
            };
        }
        let lists = self.lists.at(ev.time);
        let act = Activation {
            vars: &vars,
            lists: &lists,
        };
        let mut d = Decision {
            event_id: ev.id.clone(),
            checkpoint: p.checkpoint.clone(),
            action: Action::Allow,
            score: 0,
            fired: Vec::new(),
            shadow: Vec::new(),
            errors: Vec::new(),
            policy_version: ov.version(&self.version),
            decided_by: "default",
            eval_us: None,
            models: Vec::new(),
            arm: None,
            fallback: false,
            other_action: None,
            snoozed: Vec::new(),
            paused: Vec::new(),
            degraded: Vec::new(),
        };
        let mut allowed = false;
        for r in &p.rules {
            if !ov.is_empty() && ov.is_snoozed(schema, ev, &r.name) {
                d.snoozed.push(r.name.clone());
                continue;
            }
            match r.program.eval_bool(&act) {
                Ok(true) => {
                    let fired = FiredRule {
                        rule: r.name.clone(),
                        action: r.action,
                        score: r.score,
                        reason: r.reason.clone(),
                        tags: r.tags.clone(),
                        shadow: r.shadow,
                        reads: r
                            .program
                            .reads
                            .iter()
                            .map(|&i| (p.env.vars()[i].name.clone(), to_json(&vars[i])))
                            .collect(),
                    };
                    let paused = ov.is_paused(&r.name);
                    if paused && !r.shadow {
                        d.paused.push(r.name.clone());
                    }
                    if r.shadow || paused {
                        d.shadow.push(fired);
                    } else {
                        allowed |= r.action == Action::Allow;
                        d.score = d.score.saturating_add(r.score);
                        if r.action > d.action {
                            d.action = r.action;
                            d.decided_by = "rule_action";
                        }
                        d.fired.push(fired);
                    }
                }
                Ok(false) => {}
                Err(e) => d.errors.push(RuleError {
                    rule: r.name.clone(),
                    error: e.to_string(),
                }),
            }
        }
        if allowed {
            d.action = Action::Allow;
            d.decided_by = "allow_rule";
            return Some(d);
        }
        let t = &p.thresholds;
        for (level, action) in [
            (t.block, Action::Block),
            (t.review, Action::Review),
            (t.challenge, Action::Challenge),
        ] {
            if level.is_some_and(|l| d.score >= l) && action > d.action {
                d.action = action;
                d.decided_by = "score_threshold";
                break;
            }
        }
        Some(d)
    }
}
