//! `[graph.propagation]`: semi-supervised signals from the labels that arrive, as a global stage
//! ([`crate::stages`]) over [`argus_graph::Propagation`].
//!
//! Account-to-account interactions (`events`: the actor → the account named in `column`, with an
//! optional numeric `attribute` such as a rating) form a signed, weighted graph; the labels of
//! `[[graph.confirmed]]` (fraud) and of `legit` (cleared accounts) are its seeds as they arrive. Every
//! account event gets, for its actor:
//!
//! - `graph_fraud_share`, `graph_fraud_share_2hop`: the weighted share of confirmed-fraud neighbours at
//!   one and two hops (recency and the attribute's magnitude weigh);
//! - `graph_legit_distrust`: the share of incoming weight that is distrust (a negative attribute) from
//!   accounts confirmed legitimate;
//! - `graph_label_score`: the propagated label score in [-1, 1];
//! - `graph_labelled_neighbors`: how many neighbours carry a label (the evidence);
//!
//! and an interaction event also gets them for the account it names (`graph_peer_label_score`,
//! `graph_peer_fraud_share`). Values are computed after the event's own edge is added and before any
//! later label: a label known later never reaches an earlier row (point-in-time correct, for training
//! too, since the logged features are what `argus train` reads).

use crate::graph::key;
use argus_event::time::parse_duration;
use argus_event::{Event, Schema, Value, ACTOR_SLOT};
use argus_features::{FeatureSet, Out};
use argus_graph::{Propagation, PropagationConfig};
use serde::{Deserialize, Serialize};

/// `[graph.propagation]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PropagationToml {
    /// Event types that are interactions between two accounts.
    pub events: Vec<String>,
    /// The field naming the other account.
    pub column: String,
    /// A numeric field: the interaction's attribute (a rating, an amount). Optional.
    pub attribute: Option<String>,
    /// The attribute's sign is trust (+) or distrust (−). Default false.
    #[serde(default)]
    pub signed: bool,
    /// The attribute's scale: an edge weighs `recency × (1 + |attribute| / scale)`. Default 1.
    pub scale: Option<f64>,
    /// An edge's weight halves every this much event time. Default `90d`.
    pub half_life: Option<String>,
    /// Most recent interactions kept per account. Default 32.
    pub max_neighbors: Option<usize>,
    /// Events naming an account confirmed legitimate (fraud labels are `[[graph.confirmed]]`).
    #[serde(default)]
    pub legit: Vec<crate::graph::ConfirmConfig>,
    /// Features aggregated over each account's neighbours: `graph_nb_<feature>_mean`, `_max` and
    /// `_above` (neighbours whose value is above `above`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregates: Vec<AggregateToml>,
}

/// `[[graph.propagation.aggregates]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateToml {
    /// A numeric feature computed on the actor's events (say `orders_24h`, keyed by the actor).
    pub feature: String,
    /// The threshold for `graph_nb_<feature>_above`. Default 0.
    pub above: Option<f64>,
}

/// A compiled aggregate: the source slot, the threshold, and the slots it writes.
#[derive(Debug, Clone)]
struct Aggregate {
    src: usize,
    above: f64,
    f_mean: usize,
    f_max: usize,
    f_above: usize,
}

/// The compiled declaration.
#[derive(Debug, Clone)]
pub struct PropagationSpec {
    cfg: PropagationConfig,
    /// Per event type: the slot of the other account, and of the attribute.
    column: Vec<Option<usize>>,
    attribute: Vec<Option<usize>>,
    /// Per event type: the slot naming a fraudulent / a legitimate account.
    fraud: Vec<Option<usize>>,
    legit: Vec<Option<usize>>,
    account: Vec<bool>,
    f_share: usize,
    f_share2: usize,
    f_distrust: usize,
    f_score: usize,
    f_labelled: usize,
    f_peer_score: usize,
    f_peer_share: usize,
    aggs: Vec<Aggregate>,
    pub fingerprint: u64,
}

impl PropagationSpec {
    pub fn feature_slots(&self) -> Vec<usize> {
        vec![
            self.f_share,
            self.f_share2,
            self.f_distrust,
            self.f_score,
            self.f_labelled,
            self.f_peer_score,
            self.f_peer_share,
        ]
        .into_iter()
        .chain(
            self.aggs
                .iter()
                .flat_map(|a| [a.f_mean, a.f_max, a.f_above]),
        )
        .collect()
    }

    /// Whether the stage reads the feature vector (to aggregate features over neighbours).
    pub fn reads_features(&self) -> bool {
        !self.aggs.is_empty()
    }
}

/// Checks `[graph.propagation]` against the schema and registers its features. `confirmed` is
/// `[[graph.confirmed]]` (the fraud labels).
pub fn compile(
    c: &PropagationToml,
    confirmed: &[crate::graph::ConfirmConfig],
    schema: &Schema,
    features: &mut FeatureSet,
) -> Result<PropagationSpec, Vec<String>> {
    let mut errors = Vec::new();
    let n = schema.types.len();
    let account = crate::graph::account_types(schema);
    let account_types: Vec<usize> = (0..n).filter(|&t| account[t]).collect();
    let type_of = |errors: &mut Vec<String>, at: &str, e: &str| {
        crate::graph::type_or_error(schema, errors, at, e)
    };
    let mut column = vec![None; n];
    let mut attribute = vec![None; n];
    for e in &c.events {
        let at = "graph.propagation.events";
        let Some(t) = type_of(&mut errors, at, e) else {
            continue;
        };
        let et = &schema.types[t];
        if !account[t] {
            errors.push(format!("{at}: `{e}`'s actor is not an account"));
        }
        match et.slot(&c.column) {
            Some(s) => column[t] = Some(s),
            None => errors.push(format!(
                "graph.propagation.column: `{e}` has no field `{}`{}",
                c.column,
                argus_event::schema::did_you_mean(&c.column, et.input_names())
            )),
        }
        if let Some(a) = &c.attribute {
            match crate::graph::numeric_slot(et, a) {
                Ok(s) => attribute[t] = Some(s),
                Err(e) => errors.push(format!("graph.propagation.attribute: {e}")),
            }
        }
    }
    if c.events.is_empty() {
        errors.push("graph.propagation.events: no interaction event types".into());
    }
    let labels = |errors: &mut Vec<String>, at: &str, list: &[crate::graph::ConfirmConfig]| {
        let mut slots = vec![None; n];
        for l in list {
            if let Some(t) = type_of(errors, at, &l.event) {
                match schema.types[t].slot(&l.field) {
                    Some(s) => slots[t] = Some(s),
                    None => errors.push(format!("{at}: `{}` has no field `{}`", l.event, l.field)),
                }
            }
        }
        slots
    };
    let fraud = labels(&mut errors, "graph.confirmed", confirmed);
    let legit = labels(&mut errors, "graph.propagation.legit", &c.legit);
    if confirmed.is_empty() && c.legit.is_empty() {
        errors.push("graph.propagation: no labels to propagate: declare [[graph.confirmed]] (fraud) or graph.propagation.legit".into());
    }
    let half_life_ms = match parse_duration(c.half_life.as_deref().unwrap_or("90d")) {
        Some(ms) if ms > 0 => ms,
        _ => {
            errors.push(format!(
                "graph.propagation.half_life: invalid duration `{}`",
                c.half_life.as_deref().unwrap_or("")
            ));
            1
        }
    };
    let scale = c.scale.unwrap_or(1.0);
    if !(scale.is_finite() && scale > 0.0) {
        errors.push("graph.propagation.scale: a positive number".into());
    }
    let max_neighbors = c.max_neighbors.unwrap_or(32);
    // A label recomputes up to m + m² accounts of m edges each: bounded at 128 (2.1 M edge reads).
    if !(1..=128).contains(&max_neighbors) {
        errors.push("graph.propagation.max_neighbors: 1 to 128".into());
    }
    let edge_types: Vec<usize> = (0..n).filter(|&t| column[t].is_some()).collect();
    let mut add = |name: &str, out: Out, types: &[usize], what: &str| -> usize {
        features
            .add_external(name, out, types, what)
            .unwrap_or_else(|e| {
                errors.push(format!("graph.propagation: {e}"));
                0
            })
    };
    let f_share = add(
        "graph_fraud_share",
        Out::Float,
        &account_types,
        "weighted share of confirmed-fraud neighbours (interactions)",
    );
    let f_share2 = add(
        "graph_fraud_share_2hop",
        Out::Float,
        &account_types,
        "weighted share of confirmed-fraud neighbours of neighbours",
    );
    let f_distrust = add(
        "graph_legit_distrust",
        Out::Float,
        &account_types,
        "share of incoming weight that is distrust from confirmed-legitimate accounts",
    );
    let f_score = add(
        "graph_label_score",
        Out::Float,
        &account_types,
        "propagated label score in [-1, 1] (1: fraud)",
    );
    let f_labelled = add(
        "graph_labelled_neighbors",
        Out::Int,
        &account_types,
        "neighbours with a confirmed label",
    );
    let f_peer_score = add(
        "graph_peer_label_score",
        Out::Float,
        &edge_types,
        "the propagated label score of the account this interaction names",
    );
    let f_peer_share = add(
        "graph_peer_fraud_share",
        Out::Float,
        &edge_types,
        "the fraud-neighbour share of the account this interaction names",
    );
    let mut aggs = Vec::new();
    for a in &c.aggregates {
        let at = format!("graph.propagation.aggregates `{}`", a.feature);
        let Some(src) = features.index_of(&a.feature) else {
            errors.push(format!("{at}: no feature `{}`", a.feature));
            continue;
        };
        if !matches!(features.features[src].out, Out::Int | Out::Dec | Out::Float) {
            errors.push(format!("{at}: not a number"));
            continue;
        }
        if a.feature.starts_with("graph_") {
            errors.push(format!(
                "{at}: aggregate a keyed feature or a model's score, not a graph feature"
            ));
            continue;
        }
        let above = a.above.unwrap_or(0.0);
        if !above.is_finite() {
            errors.push(format!("{at}: above: a finite number"));
        }
        let f = &a.feature;
        let mut add = |name: String, out: Out, what: String| -> usize {
            features
                .add_external(&name, out, &account_types, &what)
                .unwrap_or_else(|e| {
                    errors.push(format!("graph.propagation: {e}"));
                    0
                })
        };
        aggs.push(Aggregate {
            src,
            above,
            f_mean: add(
                format!("graph_nb_{f}_mean"),
                Out::Float,
                format!("mean of `{f}` over the account's neighbours"),
            ),
            f_max: add(
                format!("graph_nb_{f}_max"),
                Out::Float,
                format!("largest `{f}` among the account's neighbours"),
            ),
            f_above: add(
                format!("graph_nb_{f}_above"),
                Out::Int,
                format!("neighbours whose `{f}` is above {above}"),
            ),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut fp = argus_features::config::Canonical::new(b"argus.propagation.v1");
    fp.bytes(&serde_json::to_vec(c).unwrap_or_default());
    fp.bytes(&serde_json::to_vec(confirmed).unwrap_or_default());
    Ok(PropagationSpec {
        cfg: PropagationConfig {
            half_life_ms,
            max_neighbors,
            signed: c.signed,
            scale,
        },
        column,
        attribute,
        fraud,
        legit,
        account,
        f_share,
        f_share2,
        f_distrust,
        f_score,
        f_labelled,
        f_peer_score,
        f_peer_share,
        aggs,
        fingerprint: fp.finish(),
    })
}

/// The stage's state: account names (dense ids in order of first use) and the graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PropagationState {
    accounts: crate::graph::Interner,
    graph: Propagation,
    /// Per account and aggregate (`account × aggregates`): the feature's latest value (NaN: none).
    values: Vec<f64>,
    naggs: usize,
}

impl PropagationState {
    pub fn new(spec: &PropagationSpec) -> PropagationState {
        PropagationState {
            accounts: Default::default(),
            graph: Propagation::new(spec.cfg),
            values: Vec::new(),
            naggs: spec.aggs.len(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::stages::encode_state(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<PropagationState, String> {
        let mut s: PropagationState = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
        s.accounts.reindex();
        Ok(s)
    }

    /// Applies one accepted event and writes the features into `out`.
    pub fn apply(&mut self, spec: &PropagationSpec, ev: &Event, out: &mut [Value]) {
        let t = ev.time;
        let ty = ev.ty as usize;
        for (slots, fraud) in [(&spec.fraud, true), (&spec.legit, false)] {
            if let Some(name) = slots
                .get(ty)
                .copied()
                .flatten()
                .and_then(|s| key(&ev.fields[s]))
            {
                let a = self.accounts.id(&name);
                self.graph.set_label(a, fraud, t);
            }
        }
        if !spec.account.get(ty).copied().unwrap_or(false) {
            return;
        }
        let Some(actor) = key(&ev.fields[ACTOR_SLOT]) else {
            return;
        };
        let a = self.accounts.id(&actor);
        let mut peer = None;
        if let Some(other) = spec.column[ty].and_then(|s| key(&ev.fields[s])) {
            let b = self.accounts.id(&other);
            let attr = spec.attribute[ty]
                .and_then(|s| ev.fields[s].as_f64())
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            self.graph.add_edge(a, b, attr, t);
            peer = Some(b);
        }
        if self.naggs > 0 {
            self.aggregate(spec, a, out);
        }
        let s = self.graph.signals(a, t);
        out[spec.f_share] = Value::Float(s.fraud_share);
        out[spec.f_share2] = Value::Float(s.fraud_share_2hop);
        out[spec.f_distrust] = Value::Float(s.legit_distrust);
        out[spec.f_score] = Value::Float(s.score);
        out[spec.f_labelled] = Value::Int(i64::from(s.labelled_neighbors));
        if let Some(b) = peer {
            let p = self.graph.signals(b, t);
            out[spec.f_peer_score] = Value::Float(p.score);
            out[spec.f_peer_share] = Value::Float(p.fraud_share);
        }
    }

    /// Keeps the actor's own values of the aggregated features, then writes their aggregates over
    /// the actor's neighbours (null when no neighbour has a value yet).
    fn aggregate(&mut self, spec: &PropagationSpec, a: u32, out: &mut [Value]) {
        let n = self.naggs;
        let need = (a as usize + 1) * n;
        if self.values.len() < need {
            self.values.resize(need, f64::NAN);
        }
        for (k, g) in spec.aggs.iter().enumerate() {
            if let Some(v) = out[g.src].as_f64().filter(|v| v.is_finite()) {
                self.values[a as usize * n + k] = v;
            }
        }
        let nbs = self.graph.neighbors(a);
        for (k, g) in spec.aggs.iter().enumerate() {
            let (mut sum, mut cnt, mut max, mut above) = (0.0, 0u32, f64::NEG_INFINITY, 0i64);
            for &b in &nbs {
                let v = self
                    .values
                    .get(b as usize * n + k)
                    .copied()
                    .unwrap_or(f64::NAN);
                if v.is_nan() {
                    continue;
                }
                sum += v;
                cnt += 1;
                max = max.max(v);
                if v > g.above {
                    above += 1;
                }
            }
            if cnt == 0 {
                out[g.f_mean] = Value::Null;
                out[g.f_max] = Value::Null;
                out[g.f_above] = Value::Int(0);
            } else {
                out[g.f_mean] = Value::Float(sum / f64::from(cnt));
                out[g.f_max] = Value::Float(max);
                out[g.f_above] = Value::Int(above);
            }
        }
    }

    pub fn digest(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.encode())
    }
}
