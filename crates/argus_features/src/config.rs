//! Feature configuration (`[[features]]` in TOML) and its compilation against a schema into a plan:
//! which series each event type updates, and which features it reads.

use crate::filter::{compile_filter, Filter, FilterConfig};
use argus_event::schema::{did_you_mean, FieldType, Schema, ACTOR_SLOT};
use argus_event::time::{parse_duration, DAY, SEC};
use argus_event::Value;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Longest window or offset accepted.
pub const MAX_SPAN_MS: i64 = 90 * DAY;

/// A feature file: settings and feature definitions.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    #[serde(default)]
    pub settings: SettingsConfig,
    #[serde(default)]
    pub features: Vec<FeatureConfig>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SettingsConfig {
    /// How far behind the newest event time an event may arrive and still be placed in windows.
    #[serde(default = "default_lateness")]
    pub allowed_lateness: String,
    /// Lifetime state of a key untouched for this long is dropped (`never`, the default: kept while
    /// the key lives).
    #[serde(default = "default_idle_ttl")]
    pub idle_ttl: String,
    /// Default cap on the events kept per key by an exact window.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Default number of buckets of a bucketed window.
    #[serde(default = "default_buckets")]
    pub buckets: u32,
}

fn default_lateness() -> String {
    "5m".into()
}
fn default_idle_ttl() -> String {
    "never".into()
}
fn default_max_entries() -> usize {
    10_000
}
fn default_buckets() -> u32 {
    12
}

impl Default for SettingsConfig {
    fn default() -> Self {
        SettingsConfig {
            allowed_lateness: default_lateness(),
            idle_ttl: default_idle_ttl(),
            max_entries: default_max_entries(),
            buckets: default_buckets(),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub key: Vec<String>,
    pub value: Option<String>,
    /// A duration (`1h`, `7d`) or `lifetime`.
    pub window: Option<String>,
    /// Shift the window into the past: `window = "30d", offset = "7d"` covers (t−37d, t−7d].
    pub offset: Option<String>,
    /// `exact` (default) or `bucketed`.
    pub mode: Option<String>,
    pub buckets: Option<u32>,
    pub max_entries: Option<usize>,
    #[serde(default)]
    pub filter: Vec<FilterConfig>,
    pub numerator: Option<String>,
    pub denominator: Option<String>,
    /// `kind = "expression"`: a typed expression in the rule language over `event.*` fields and
    /// earlier `features.*` (e.g. `event.time - features.user_first_seen`).
    pub expression: Option<String>,
    /// Value used when the aggregate is empty (e.g. an average over no events).
    pub default: Option<toml::Value>,
    /// `hour_in_range`: inclusive hours, e.g. `[0, 6]`.
    pub hours: Option<[u32; 2]>,
    /// Calendar features: fixed UTC offset such as `+08:00`.
    pub utc_offset: Option<String>,
    pub description: Option<String>,
}

/// An aggregate over a keyed series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Distinct,
    FirstSeen,
    LastSeen,
    Age,
    LastValue,
    /// Seconds since the key's previous observation (its newest before the event being read).
    SinceLast,
}

/// Every feature kind, with its name in configuration.
pub const KINDS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "distinct",
    "first_seen",
    "last_seen",
    "age",
    "last_value",
    "since_last",
    "ratio",
    "expression",
    "is_weekend",
    "hour_of_day",
    "day_of_week",
    "hour_in_range",
    "field",
];

impl Agg {
    fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "distinct" => Agg::Distinct,
            "first_seen" => Agg::FirstSeen,
            "last_seen" => Agg::LastSeen,
            "age" => Agg::Age,
            "last_value" => Agg::LastValue,
            "since_last" => Agg::SinceLast,
            _ => return None,
        })
    }
    fn needs_value(self) -> bool {
        matches!(
            self,
            Agg::Sum | Agg::Avg | Agg::Min | Agg::Max | Agg::Distinct | Agg::LastValue
        )
    }
    fn numeric(self) -> bool {
        matches!(self, Agg::Sum | Agg::Avg | Agg::Min | Agg::Max)
    }
    /// Aggregates that only make sense over a key's whole history.
    fn lifetime_only(self) -> bool {
        matches!(
            self,
            Agg::FirstSeen | Agg::LastSeen | Agg::Age | Agg::LastValue | Agg::SinceLast
        )
    }
}

/// Calendar features of the event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    IsWeekend,
    HourOfDay,
    DayOfWeek,
    HourInRange(u32, u32),
}

/// How a feature is computed.
#[derive(Debug, Clone)]
pub enum FeatureKind {
    Series {
        series: usize,
        reader: Reader,
    },
    Ratio {
        numerator: usize,
        denominator: usize,
    },
    Calendar {
        part: Calendar,
        offset_ms: i64,
    },
    /// A field of the event itself (e.g. the amount, as a model input).
    Field {
        field: String,
    },
    /// Written by the engine after the other features (graph detectors): see
    /// [`FeatureSet::add_external`].
    External,
    /// A typed expression (the rule language) over the event's fields and earlier features, computed
    /// after every other feature of the vector but the external ones. One compiled program per event
    /// type it is declared for.
    Expression {
        source: String,
        programs: Vec<(u16, std::sync::Arc<argus_rules::Program>, Vec<ExprSource>)>,
    },
}

/// Where an expression's variable comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprSource {
    Time,
    Field(usize),
    Feature(usize),
}

/// Output type of a numeric read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Int,
    Dec,
    Float,
    Bool,
    Time,
    Str,
}

/// One read of a series state.
#[derive(Debug, Clone)]
pub struct Reader {
    pub agg: Agg,
    pub window_ms: i64,
    pub offset_ms: i64,
    /// The type of the series' value field (for sum/min/max/last_value output).
    pub out: Out,
}

/// A compiled feature.
#[derive(Debug, Clone)]
pub struct FeatureDef {
    pub name: String,
    pub kind: FeatureKind,
    pub out: Out,
    pub default: Value,
    pub description: Option<String>,
}

/// Canonical bytes for fingerprints: a version tag, then length-prefixed fields in a fixed order.
pub struct Canonical(Vec<u8>);

impl Canonical {
    pub fn new(tag: &[u8]) -> Self {
        let mut c = Canonical(Vec::with_capacity(256));
        c.bytes(tag);
        c
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn strs(&mut self, v: &[String]) {
        self.u64(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.bool(true);
                self.str(s);
            }
            None => self.bool(false),
        }
    }
    pub fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    pub fn i64(&mut self, x: i64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    pub fn bool(&mut self, x: bool) {
        self.0.push(u8::from(x));
    }
    /// The xxh3-64 digest of the bytes.
    pub fn finish(self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.0)
    }
}

/// The window mode of a series.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesMode {
    /// Every event kept; reads are exact. `retention_ms` = longest window + offset.
    Exact {
        retention_ms: i64,
        max_entries: usize,
    },
    /// Fixed buckets of `width_ms`; `len` buckets kept.
    Bucketed {
        width_ms: i64,
        len: u32,
        sum: bool,
        minmax: bool,
        distinct: bool,
    },
    /// One accumulator per key, for lifetime windows.
    Lifetime { distinct: bool },
}

/// A stream of (time, value) observations per key, shared by every feature with the same source.
#[derive(Debug, Clone)]
pub struct SeriesDef {
    pub events: Vec<u16>,
    pub key: Vec<String>,
    pub value: Option<String>,
    pub value_numeric: bool,
    /// The value field is required on every feeding type, so the series sees every event.
    pub value_required: bool,
    pub filter: Vec<FilterConfig>,
    /// Canonical rendering of `filter`, to recognise identical series.
    pub filter_text: String,
    pub mode: SeriesMode,
    /// The entity (key spec) this series is stored under, and its position in that entity's record.
    pub entity: usize,
    pub pos: usize,
}

/// A key spec (e.g. `["actor"]` or `["actor", "device"]`): every series keyed by it is stored in one
/// record per key, so an event costs one lookup per entity, not one per series.
#[derive(Debug, Clone)]
pub struct EntityDef {
    pub key: Vec<String>,
    pub series: Vec<usize>,
}

/// Per event type: the series it feeds and the features it reads, grouped by entity.
#[derive(Debug, Clone, Default)]
pub struct TypePlan {
    pub entities: Vec<EntityPlan>,
    /// Features that can be computed for this type (the others are null).
    pub calendar: Vec<usize>,
    pub ratios: Vec<usize>,
    /// (feature index, slot) of `field` features this type has.
    pub fields: Vec<(usize, usize)>,
    /// Features readable on this type that have a `default` for null results.
    pub defaults: Vec<usize>,
    /// External features (written by the engine) readable on this type.
    pub external: Vec<usize>,
    /// Expression features computed on this type, in declaration order.
    pub expressions: Vec<usize>,
}

/// Work on one entity's record for one event type.
#[derive(Debug, Clone)]
pub struct EntityPlan {
    pub entity: usize,
    pub key_slots: Vec<usize>,
    /// Seeds the key digest with the entity kinds of the key fields on this type, so that user `s1`
    /// and seller `s1` are different keys even under the same field name (`actor`).
    pub seed: u64,
    pub groups: Vec<Group>,
}

/// Work on one series for one event type.
#[derive(Debug, Clone)]
pub struct Group {
    pub series: usize,
    pub key_slots: Vec<usize>,
    /// Set when this type updates the series: (value slot, filter).
    pub update: Option<(Option<usize>, Filter)>,
    /// (feature index, reader)
    pub readers: Vec<(usize, Reader)>,
}

/// A model's place among the values rules read: its name and the event type it scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSlot {
    pub name: String,
    pub event_type: usize,
}

/// Compiled features: what the engine needs to maintain and read them.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    /// Models scored after the features (declared in `[[models]]`, loaded by the engine): rules read
    /// them as `model.<name>` on their event type.
    pub models: Vec<ModelSlot>,
    pub features: Vec<FeatureDef>,
    pub series: Vec<SeriesDef>,
    pub entities: Vec<EntityDef>,
    pub plans: Vec<TypePlan>,
    pub allowed_lateness_ms: i64,
    /// `i64::MAX` for `never`.
    pub idle_ttl_ms: i64,
    index: BTreeMap<String, usize>,
    /// Settings that compile but change answers in ways a user may not expect, one sentence each with
    /// what to change (`argus check` and `argus replay` print them; the server logs them at start).
    pub warnings: Vec<String>,
}

/// A configuration problem with the path of the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// Every problem found in a feature configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid feature configuration:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl FeatureSet {
    /// Slots of events of type `ty` that features read (keys, values, filters). Other fields do not
    /// influence any feature of that type.
    pub fn slots_read(&self, ty: usize) -> Vec<usize> {
        let mut v = Vec::new();
        for g in self.plans[ty].entities.iter().flat_map(|e| &e.groups) {
            v.extend(g.key_slots.iter().copied());
            if let Some((vs, f)) = &g.update {
                v.extend(vs.iter().copied());
                v.extend(f.slots());
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Features an event of type `ty` can compute (the others are always null on it), in order.
    pub fn readable(&self, ty: usize) -> Vec<usize> {
        let plan = &self.plans[ty];
        let mut v: Vec<usize> = plan
            .entities
            .iter()
            .flat_map(|e| &e.groups)
            .flat_map(|g| g.readers.iter().map(|(f, _)| *f))
            .chain(plan.calendar.iter().copied())
            .chain(plan.ratios.iter().copied())
            .chain(plan.fields.iter().map(|(f, _)| *f))
            .chain(plan.expressions.iter().copied())
            .chain(plan.external.iter().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Adds a feature whose value the engine writes after the others (a graph detector's), readable
    /// on `types`; rules and models read it by `name` like any feature. Its value does not live in
    /// the feature state (the writer keeps its own). Errors if the name is taken.
    pub fn add_external(
        &mut self,
        name: &str,
        out: Out,
        types: &[usize],
        description: &str,
    ) -> Result<usize, String> {
        if self.index.contains_key(name) {
            return Err(format!("feature `{name}` is already declared"));
        }
        let fi = self.features.len();
        self.features.push(FeatureDef {
            name: name.to_string(),
            kind: FeatureKind::External,
            out,
            default: Value::Null,
            description: Some(description.to_string()),
        });
        self.index.insert(name.to_string(), fi);
        for &t in types {
            if let Some(p) = self.plans.get_mut(t) {
                p.external.push(fi);
            }
        }
        Ok(fi)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    /// A fingerprint of everything that shapes state: restoring a snapshot needs the same one. It is
    /// computed from a canonical encoding of the definitions (every field length-prefixed, in a fixed
    /// order, with a version tag), never from `Debug`: renaming a Rust field or type does not change it.
    pub fn fingerprint(&self) -> u64 {
        let mut c = Canonical::new(b"argus.features.state.v1");
        c.u64(self.series.len() as u64);
        for s in &self.series {
            c.u64(s.events.len() as u64);
            for &e in &s.events {
                c.u64(u64::from(e));
            }
            c.strs(&s.key);
            c.opt_str(s.value.as_deref());
            c.bool(s.value_numeric);
            c.bool(s.value_required);
            c.str(&s.filter_text);
            match s.mode {
                SeriesMode::Exact {
                    retention_ms,
                    max_entries,
                } => {
                    c.u64(0);
                    c.i64(retention_ms);
                    c.u64(max_entries as u64);
                }
                SeriesMode::Bucketed {
                    width_ms,
                    len,
                    sum,
                    minmax,
                    distinct,
                } => {
                    c.u64(1);
                    c.i64(width_ms);
                    c.u64(u64::from(len));
                    c.bool(sum);
                    c.bool(minmax);
                    c.bool(distinct);
                }
                SeriesMode::Lifetime { distinct } => {
                    c.u64(2);
                    c.bool(distinct);
                }
            }
            c.u64(s.entity as u64);
            c.u64(s.pos as u64);
        }
        c.i64(self.allowed_lateness_ms);
        c.i64(self.idle_ttl_ms);
        c.finish()
    }

    /// Parses and compiles a feature file against a schema, reporting every problem at once.
    pub fn from_toml(schema: &Schema, text: &str) -> Result<FeatureSet, ConfigErrors> {
        let cfg: FeaturesConfig = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: e.to_string(),
            }])
        })?;
        Self::compile(schema, &cfg)
    }

    pub fn compile(schema: &Schema, cfg: &FeaturesConfig) -> Result<FeatureSet, ConfigErrors> {
        Compiler::new(schema).run(cfg)
    }
}

struct Compiler<'a> {
    schema: &'a Schema,
    errors: Vec<ConfigError>,
}

impl<'a> Compiler<'a> {
    fn new(schema: &'a Schema) -> Self {
        Compiler {
            schema,
            errors: Vec::new(),
        }
    }

    /// Compiles expression feature `fi` for each of its event types: `event.time`, the type's
    /// `event.<field>` (label columns excluded) and `features.<name>` of the features declared before
    /// it. The result type must be the same on every type; a duration is given in whole seconds.
    fn expression(
        &mut self,
        path: &str,
        f: &FeatureConfig,
        features: &mut [FeatureDef],
        fi: usize,
    ) {
        use argus_rules::{Env, Type};
        let FeatureKind::Expression { source, .. } = &features[fi].kind else {
            return;
        };
        let source = source.clone();
        let rule_type = |o: Out| match o {
            Out::Int => Type::Int,
            Out::Dec | Out::Float => Type::Double,
            Out::Bool => Type::Bool,
            Out::Time => Type::Timestamp,
            Out::Str => Type::String,
        };
        let mut programs = Vec::new();
        let mut out: Option<Out> = None;
        for name in &f.events {
            let Some(ty) = self.schema.type_id(name) else {
                self.err(
                    format!("{path}.events"),
                    format!(
                        "unknown event type `{name}`{}",
                        did_you_mean(name, self.schema.public_type_names().into_iter())
                    ),
                );
                continue;
            };
            let et = self.schema.get(ty);
            let mut env = Env::new();
            let mut sources = Vec::new();
            env.var("event.time", Type::Timestamp);
            sources.push(ExprSource::Time);
            for (slot, fd) in et.fields.iter().enumerate() {
                if fd.label.is_none() {
                    let t = match fd.ty.stored() {
                        FieldType::Int => Type::Int,
                        FieldType::Decimal | FieldType::Float => Type::Double,
                        FieldType::Bool => Type::Bool,
                        FieldType::Timestamp => Type::Timestamp,
                        _ => Type::String,
                    };
                    env.var(&format!("event.{}", fd.name), t);
                    sources.push(ExprSource::Field(slot));
                }
            }
            for (j, prior) in features.iter().enumerate().take(fi) {
                if !matches!(prior.kind, FeatureKind::External) {
                    env.var(&format!("features.{}", prior.name), rule_type(prior.out));
                    sources.push(ExprSource::Feature(j));
                }
            }
            match argus_rules::compile(&source, &env) {
                Ok(p) => {
                    let o = match p.ty {
                        Type::Int | Type::Duration => Out::Int,
                        Type::Double => Out::Float,
                        Type::Bool => Out::Bool,
                        Type::Timestamp => Out::Time,
                        Type::String => Out::Str,
                        ref t => {
                            self.err(
                                format!("{path}.expression"),
                                format!("the expression is a {t}; a feature is a number, bool, time, duration or string"),
                            );
                            continue;
                        }
                    };
                    if out.is_some_and(|x| x != o) {
                        self.err(
                            format!("{path}.expression"),
                            format!("the expression has another type on `{name}`"),
                        );
                    }
                    out = Some(o);
                    programs.push((ty, std::sync::Arc::new(p), sources));
                }
                Err(diags) => {
                    for d in diags {
                        self.err(
                            format!("{path}.expression"),
                            format!("on `{name}`: {}", d.message),
                        );
                    }
                }
            }
        }
        features[fi].out = out.unwrap_or(Out::Float);
        features[fi].kind = FeatureKind::Expression { source, programs };
    }

    fn err(&mut self, path: String, message: String) {
        self.errors.push(ConfigError { path, message });
    }

    /// Keys that mean nothing for a feature's kind are mistakes, not silently ignored.
    fn inapplicable(&mut self, path: &str, f: &FeatureConfig) {
        let calendar = matches!(
            f.kind.as_str(),
            "is_weekend" | "hour_of_day" | "day_of_week" | "hour_in_range"
        );
        let ratio = f.kind == "ratio";
        let field = f.kind == "field";
        let bucketed = f.mode.as_deref() == Some("bucketed");
        let mut bad = |key: &str, set: bool, why: &str| {
            if set {
                self.errors.push(ConfigError {
                    path: format!("{path}.{key}"),
                    message: format!("`{key}` does not apply {why}"),
                });
            }
        };
        let stateless = calendar || ratio || field;
        let kind = format!("to `{}` features", f.kind);
        bad("events", stateless && !f.events.is_empty(), &kind);
        bad("key", stateless && !f.key.is_empty(), &kind);
        bad("window", stateless && f.window.is_some(), &kind);
        bad("offset", stateless && f.offset.is_some(), &kind);
        bad("mode", stateless && f.mode.is_some(), &kind);
        bad("filter", stateless && !f.filter.is_empty(), &kind);
        bad("value", (calendar || ratio) && f.value.is_some(), &kind);
        bad(
            "buckets",
            f.buckets.is_some() && !bucketed,
            "without `mode = \"bucketed\"`",
        );
        bad(
            "max_entries",
            f.max_entries.is_some()
                && (bucketed
                    || stateless
                    || matches!(f.window.as_deref(), None | Some("lifetime"))),
            "except to exact windows",
        );
        bad(
            "hours",
            f.hours.is_some() && f.kind != "hour_in_range",
            "except to `hour_in_range`",
        );
        bad(
            "utc_offset",
            f.utc_offset.is_some() && !calendar,
            "except to calendar features",
        );
        bad(
            "numerator",
            f.numerator.is_some() && !ratio,
            "except to `ratio`",
        );
        bad(
            "denominator",
            f.denominator.is_some() && !ratio,
            "except to `ratio`",
        );
    }

    fn duration(&mut self, path: String, s: &str) -> Option<i64> {
        match parse_duration(s) {
            Some(ms) => Some(ms),
            None => {
                self.err(
                    path,
                    format!("invalid duration `{s}` (e.g. `30s`, `15m`, `1h`, `7d`)"),
                );
                None
            }
        }
    }

    fn run(mut self, cfg: &FeaturesConfig) -> Result<FeatureSet, ConfigErrors> {
        let lateness = self
            .duration(
                "settings.allowed_lateness".into(),
                &cfg.settings.allowed_lateness,
            )
            .unwrap_or(0);
        // `never`: lifetime state is kept for as long as the key lives (memory grows with the keys).
        let idle_ttl = if matches!(cfg.settings.idle_ttl.trim(), "never" | "none") {
            i64::MAX
        } else {
            self.duration("settings.idle_ttl".into(), &cfg.settings.idle_ttl)
                .unwrap_or(90 * DAY)
        };
        let mut index = BTreeMap::new();
        let mut features: Vec<FeatureDef> = Vec::new();
        let mut series: Vec<SeriesDef> = Vec::new();
        // (feature idx, series idx, type ids it updates, key fields)
        let n_types = self.schema.types.len();
        let mut plans: Vec<TypePlan> = vec![TypePlan::default(); n_types];

        // Valued features first, so that counts can share a series whose value is always present.
        let mut order: Vec<usize> = (0..cfg.features.len()).collect();
        order.sort_by_key(|&i| cfg.features[i].value.is_none());
        let mut compiled: Vec<Option<FeatureDef>> = vec![None; cfg.features.len()];
        for (i, f) in cfg.features.iter().enumerate() {
            let path = format!("features[{i}] ({})", f.name);
            if !valid_name(&f.name) {
                self.err(
                    format!("{path}.name"),
                    format!("feature name `{}` must be snake_case", f.name),
                );
            }
            if index.insert(f.name.clone(), i).is_some() {
                self.err(
                    format!("{path}.name"),
                    format!("feature `{}` is defined twice", f.name),
                );
            }
        }
        for &i in &order {
            let f = &cfg.features[i];
            let path = format!("features[{i}] ({})", f.name);
            self.inapplicable(&path, f);
            compiled[i] = self.feature(&path, f, &cfg.settings, lateness, &mut series, &index, i);
            if let Some(def) = compiled[i].as_mut() {
                match coerce_default(&def.default, def.out) {
                    Ok(v) => def.default = v,
                    Err(m) => self.err(format!("{path}.default"), m),
                }
            }
        }
        for (i, c) in compiled.into_iter().enumerate() {
            features.push(c.unwrap_or(FeatureDef {
                name: cfg.features[i].name.clone(),
                kind: FeatureKind::Calendar {
                    part: Calendar::HourOfDay,
                    offset_ms: 0,
                },
                out: Out::Int,
                default: Value::Null,
                description: None,
            }));
        }
        for fi in 0..features.len() {
            if matches!(features[fi].kind, FeatureKind::Expression { .. }) {
                let path = format!("features[{fi}] ({})", features[fi].name);
                self.expression(&path, &cfg.features[fi], &mut features, fi);
            }
        }
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        // Entities: one record per distinct key spec.
        let mut entities: Vec<EntityDef> = Vec::new();
        for (si, s) in series.iter_mut().enumerate() {
            let e = match entities.iter().position(|e| e.key == s.key) {
                Some(e) => e,
                None => {
                    entities.push(EntityDef {
                        key: s.key.clone(),
                        series: vec![],
                    });
                    entities.len() - 1
                }
            };
            s.entity = e;
            s.pos = entities[e].series.len();
            entities[e].series.push(si);
        }
        // Per-type plans.
        for (ti, plan) in plans.iter_mut().enumerate() {
            let et = &self.schema.types[ti];
            let mut groups: BTreeMap<usize, Group> = BTreeMap::new();
            for (si, s) in series.iter().enumerate() {
                let Some(key_slots) = s.key.iter().map(|k| et.slot(k)).collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                if s.events.contains(&(ti as u16)) {
                    let value_slot = s.value.as_ref().and_then(|v| et.slot(v));
                    let filter = match compile_filter(et, &s.filter) {
                        Ok(f) => f,
                        Err(m) => {
                            self.errors.push(ConfigError {
                                path: format!("series over {}", et.name),
                                message: m,
                            });
                            continue;
                        }
                    };
                    groups
                        .entry(si)
                        .or_insert_with(|| Group {
                            series: si,
                            key_slots: key_slots.clone(),
                            update: None,
                            readers: vec![],
                        })
                        .update = Some((value_slot, filter));
                }
                let _ = key_slots;
            }
            for (fi, f) in features.iter().enumerate() {
                match &f.kind {
                    FeatureKind::Series { series: si, reader } => {
                        let s = &series[*si];
                        let Some(key_slots) =
                            s.key.iter().map(|k| et.slot(k)).collect::<Option<Vec<_>>>()
                        else {
                            continue;
                        };
                        groups
                            .entry(*si)
                            .or_insert_with(|| Group {
                                series: *si,
                                key_slots,
                                update: None,
                                readers: vec![],
                            })
                            .readers
                            .push((fi, reader.clone()));
                    }
                    FeatureKind::External => {}
                    FeatureKind::Expression { programs, .. } => {
                        if programs.iter().any(|(t, _, _)| *t as usize == ti) {
                            plan.expressions.push(fi);
                        }
                    }
                    FeatureKind::Calendar { .. } => plan.calendar.push(fi),
                    FeatureKind::Ratio { .. } => plan.ratios.push(fi),
                    FeatureKind::Field { field } => {
                        if let Some(slot) = et.slot(field).filter(|&s| et.fields[s].label.is_none())
                        {
                            plan.fields.push((fi, slot));
                        }
                    }
                }
            }
            let readable: Vec<usize> = groups
                .values()
                .flat_map(|g| g.readers.iter().map(|(f, _)| *f))
                .chain(plan.calendar.iter().copied())
                .chain(plan.ratios.iter().copied())
                .chain(plan.fields.iter().map(|(f, _)| *f))
                .chain(plan.expressions.iter().copied())
                .collect();
            plan.defaults = readable
                .into_iter()
                .filter(|&f| !features[f].default.is_null())
                .collect();
            plan.defaults.sort_unstable();
            for g in groups.into_values() {
                let e = series[g.series].entity;
                match plan.entities.iter_mut().find(|p| p.entity == e) {
                    Some(p) => p.groups.push(g),
                    None => {
                        let kinds: Vec<String> = g
                            .key_slots
                            .iter()
                            .map(|&s| {
                                et.fields[s]
                                    .entity
                                    .clone()
                                    .unwrap_or_else(|| format!("field:{}", et.fields[s].name))
                            })
                            .collect();
                        let seed = xxhash_rust::xxh3::xxh3_64(kinds.join("\u{0}").as_bytes());
                        plan.entities.push(EntityPlan {
                            entity: e,
                            key_slots: g.key_slots.clone(),
                            seed,
                            groups: vec![g],
                        })
                    }
                }
            }
        }
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let mut warnings = Vec::new();
        if idle_ttl != i64::MAX {
            let lifetime: Vec<&str> = features
                .iter()
                .filter(|f| {
                    matches!(f.kind, FeatureKind::Series { series: si, .. }
                        if matches!(series[si].mode, SeriesMode::Lifetime { .. }))
                })
                .map(|f| f.name.as_str())
                .collect();
            if !lifetime.is_empty() {
                warnings.push(format!(
                    "settings.idle_ttl = \"{}\": the lifetime features {} restart for a key that has no event for that long (first_seen, age and lifetime counts start again); remove idle_ttl (default \"never\") if they must span any gap",
                    cfg.settings.idle_ttl.trim(),
                    lifetime.join(", ")
                ));
            }
        }
        Ok(FeatureSet {
            models: Vec::new(),
            features,
            series,
            entities,
            plans,
            allowed_lateness_ms: lateness,
            idle_ttl_ms: idle_ttl,
            index,
            warnings,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn feature(
        &mut self,
        path: &str,
        f: &FeatureConfig,
        settings: &SettingsConfig,
        lateness: i64,
        series: &mut Vec<SeriesDef>,
        index: &BTreeMap<String, usize>,
        me: usize,
    ) -> Option<FeatureDef> {
        let default = match &f.default {
            None => Value::Null,
            Some(toml::Value::Integer(i)) => Value::Int(*i),
            Some(toml::Value::Float(x)) => Value::Float(*x),
            Some(toml::Value::Boolean(b)) => Value::Bool(*b),
            Some(toml::Value::String(s)) => Value::Str(s.as_str().into()),
            Some(_) => {
                self.err(
                    format!("{path}.default"),
                    "default must be a number, boolean or string".into(),
                );
                Value::Null
            }
        };
        let offset_ms = match &f.utc_offset {
            None => 0,
            Some(o) => match parse_utc_offset(o) {
                Some(ms) => ms,
                None => {
                    self.err(
                        format!("{path}.utc_offset"),
                        format!("`{o}` is not an offset like `+08:00`"),
                    );
                    0
                }
            },
        };
        let calendar = match f.kind.as_str() {
            "is_weekend" => Some((Calendar::IsWeekend, Out::Bool)),
            "hour_of_day" => Some((Calendar::HourOfDay, Out::Int)),
            "day_of_week" => Some((Calendar::DayOfWeek, Out::Int)),
            "hour_in_range" => match f.hours {
                Some([a, b]) if a <= 23 && b <= 23 => {
                    Some((Calendar::HourInRange(a, b), Out::Bool))
                }
                _ => {
                    self.err(
                        format!("{path}.hours"),
                        "hour_in_range needs `hours = [from, to]`, inclusive, 0..=23".into(),
                    );
                    None
                }
            },
            _ => None,
        };
        if let Some((part, out)) = calendar {
            return Some(FeatureDef {
                name: f.name.clone(),
                kind: FeatureKind::Calendar { part, offset_ms },
                out,
                default,
                description: f.description.clone(),
            });
        }
        if f.kind == "field" {
            let Some(name) = &f.value else {
                self.err(
                    format!("{path}.value"),
                    "`field` needs `value = \"<field>\"`".into(),
                );
                return None;
            };
            let mut ty = None;
            for et in &self.schema.types {
                if let Some(fd) = et.field(name) {
                    if fd.label.is_some() {
                        self.err(
                            format!("{path}.value"),
                            format!("`{name}` is a delayed label of `{}`", et.name),
                        );
                    }
                    if ty.is_some_and(|t| t != fd.ty.stored())
                        && !self
                            .errors
                            .iter()
                            .any(|e| e.path == format!("{path}.value"))
                    {
                        self.err(
                            format!("{path}.value"),
                            format!(
                                "`{name}` has different types across event types (`{}` has {})",
                                et.name,
                                fd.ty.name()
                            ),
                        );
                    }
                    ty.get_or_insert(fd.ty.stored());
                }
            }
            let Some(ty) = ty else {
                self.err(
                    format!("{path}.value"),
                    format!("no event type has a field `{name}`"),
                );
                return None;
            };
            let out = match ty {
                FieldType::Int => Out::Int,
                FieldType::Decimal => Out::Dec,
                FieldType::Float => Out::Float,
                FieldType::Bool => Out::Bool,
                FieldType::Timestamp => Out::Time,
                _ => Out::Str,
            };
            return Some(FeatureDef {
                name: f.name.clone(),
                kind: FeatureKind::Field {
                    field: name.clone(),
                },
                out,
                default,
                description: f.description.clone(),
            });
        }
        if f.kind == "expression" {
            let Some(src) = f.expression.as_ref().filter(|e| !e.trim().is_empty()) else {
                self.err(
                    format!("{path}.expression"),
                    "an `expression` feature needs `expression`".into(),
                );
                return None;
            };
            if f.events.is_empty() {
                self.err(
                    format!("{path}.events"),
                    "an `expression` feature needs the event types it is computed on".into(),
                );
                return None;
            }
            // Compiled in a second pass, once every earlier feature's type is known.
            return Some(FeatureDef {
                name: f.name.clone(),
                kind: FeatureKind::Expression {
                    source: src.clone(),
                    programs: Vec::new(),
                },
                out: Out::Float,
                default,
                description: f.description.clone(),
            });
        }
        if f.kind == "ratio" {
            let operand = |c: &mut Self, which: &str, v: &Option<String>| -> Option<usize> {
                let Some(n) = v else {
                    c.err(
                        format!("{path}.{which}"),
                        format!("ratio needs `{which}` (a feature name)"),
                    );
                    return None;
                };
                match index.get(n) {
                    Some(&j) if j < me => Some(j),
                    Some(_) => {
                        c.err(
                            format!("{path}.{which}"),
                            format!("`{n}` must be declared before `{}`", f.name),
                        );
                        None
                    }
                    None => {
                        c.err(
                            format!("{path}.{which}"),
                            format!(
                                "unknown feature `{n}`{}",
                                did_you_mean(n, index.keys().map(String::as_str))
                            ),
                        );
                        None
                    }
                }
            };
            let numerator = operand(self, "numerator", &f.numerator);
            let denominator = operand(self, "denominator", &f.denominator);
            return Some(FeatureDef {
                name: f.name.clone(),
                kind: FeatureKind::Ratio {
                    numerator: numerator?,
                    denominator: denominator?,
                },
                out: Out::Float,
                default,
                description: f.description.clone(),
            });
        }
        let Some(agg) = Agg::parse(&f.kind) else {
            self.err(
                format!("{path}.kind"),
                format!(
                    "unknown feature kind `{}`{}",
                    f.kind,
                    did_you_mean(&f.kind, KINDS.iter().copied())
                ),
            );
            return None;
        };
        // Events.
        if f.events.is_empty() {
            self.err(
                format!("{path}.events"),
                "name the event types that feed this feature, e.g. `events = [\"order.create\"]`"
                    .into(),
            );
        }
        let mut events = Vec::new();
        for (j, e) in f.events.iter().enumerate() {
            match self.schema.type_id(e) {
                Some(t) => events.push(t),
                None => {
                    let names: Vec<&str> =
                        self.schema.types.iter().map(|t| t.name.as_str()).collect();
                    self.err(
                        format!("{path}.events[{j}]"),
                        format!(
                            "unknown event type `{e}`{}",
                            did_you_mean(e, names.into_iter())
                        ),
                    );
                }
            }
        }
        events.sort_unstable();
        events.dedup();
        // Key and value fields must exist on every feeding type.
        let key = if f.key.is_empty() {
            vec!["actor".to_string()]
        } else {
            f.key.clone()
        };
        let mut value_ty: Option<FieldType> = None;
        let mut value_required = true;
        for &t in &events {
            let et = self.schema.get(t);
            for k in &key {
                match et.field(k) {
                    None => self.err(format!("{path}.key"), format!("`{}` has no field `{k}`{}", et.name, did_you_mean(k, et.fields.iter().map(|f| f.name.as_str())))),
                    Some(field) if field.label.is_some() => {
                        self.err(format!("{path}.key"), format!("`{k}` is a delayed label of `{}`; it is not known when the event arrives", et.name))
                    }
                    Some(_) => {}
                }
            }
            if let Some(v) = &f.value {
                match et.field(v) {
                    None => self.err(format!("{path}.value"), format!("`{}` has no field `{v}`{}", et.name, did_you_mean(v, et.fields.iter().map(|f| f.name.as_str())))),
                    Some(field) if field.label.is_some() => self.err(
                        format!("{path}.value"),
                        format!("`{v}` is a delayed label of `{}`: read it from `label.*` events, when it becomes known", et.name),
                    ),
                    Some(field) => {
                        let st = field.ty.stored();
                        if value_ty.is_some_and(|p| p != st) {
                            self.err(format!("{path}.value"), format!("`{v}` has different types across the listed events"));
                        }
                        value_ty = Some(st);
                        value_required &= field.required;
                    }
                }
            }
        }
        if agg.needs_value() && f.value.is_none() {
            self.err(
                format!("{path}.value"),
                format!("`{}` needs `value = \"<field>\"`", f.kind),
            );
        }
        if agg.numeric() {
            if let Some(t) = value_ty {
                if !(t.is_numeric() || t == FieldType::Bool) {
                    self.err(
                        format!("{path}.value"),
                        format!(
                            "`{}` needs a numeric field, `{}` is {}",
                            f.kind,
                            f.value.as_deref().unwrap_or(""),
                            t.name()
                        ),
                    );
                }
            }
        }
        let filter_text = f
            .filter
            .iter()
            .map(|c| c.canonical())
            .collect::<Vec<_>>()
            .join(" && ");
        for &t in &events {
            if let Err(m) = compile_filter(self.schema.get(t), &f.filter) {
                self.err(format!("{path}.filter"), m);
            }
        }
        // Window.
        let lifetime = matches!(f.window.as_deref(), None | Some("lifetime"));
        if agg.lifetime_only() && !lifetime {
            self.err(
                format!("{path}.window"),
                format!(
                    "`{}` is computed over a key's whole history; remove `window`",
                    f.kind
                ),
            );
        }
        if lifetime && !agg.lifetime_only() && f.window.is_none() {
            self.err(
                format!("{path}.window"),
                format!(
                    "`{}` needs `window` (a duration up to 90d, or \"lifetime\")",
                    f.kind
                ),
            );
        }
        let window_ms = if lifetime {
            0
        } else {
            f.window
                .as_deref()
                .and_then(|w| self.duration(format!("{path}.window"), w))
                .unwrap_or(0)
        };
        let offset_ms = f
            .offset
            .as_deref()
            .and_then(|o| self.duration(format!("{path}.offset"), o))
            .unwrap_or(0);
        if !lifetime && !(SEC..=MAX_SPAN_MS).contains(&window_ms) {
            self.err(format!("{path}.window"), "windows go from 1s to 90d".into());
        }
        if !(0..=MAX_SPAN_MS).contains(&offset_ms) || (lifetime && offset_ms != 0) {
            self.err(
                format!("{path}.offset"),
                "offsets go from 0 to 90d, on windowed features only".into(),
            );
        }
        let mode = match (lifetime, f.mode.as_deref()) {
            (true, None) => SeriesMode::Lifetime {
                distinct: agg == Agg::Distinct,
            },
            (true, Some(m)) => {
                self.err(
                    format!("{path}.mode"),
                    format!("`mode = \"{m}\"` applies to windowed features only"),
                );
                return None;
            }
            (false, None | Some("exact")) => SeriesMode::Exact {
                retention_ms: window_ms + offset_ms + lateness,
                // At most 2^31: an exact window counts its entries in a `u32`.
                max_entries: f
                    .max_entries
                    .unwrap_or(settings.max_entries)
                    .clamp(1, 1 << 31),
            },
            (false, Some("bucketed")) => {
                let b = f.buckets.unwrap_or(settings.buckets);
                if !(1..=1024).contains(&b) || window_ms % b as i64 != 0 {
                    self.err(format!("{path}.buckets"), format!("buckets must be 1..=1024 and divide the window ({window_ms} ms) evenly"));
                    return None;
                }
                let width = window_ms / b as i64;
                // The window's buckets, plus those an offset or a late event can reach back to.
                let ceil = |x: i64| (x + width - 1) / width;
                let len = (b as i64 + ceil(offset_ms) + ceil(lateness)) as u32;
                SeriesMode::Bucketed {
                    width_ms: width,
                    len,
                    sum: matches!(agg, Agg::Sum | Agg::Avg),
                    minmax: matches!(agg, Agg::Min | Agg::Max),
                    distinct: agg == Agg::Distinct,
                }
            }
            (false, Some(m)) => {
                self.err(
                    format!("{path}.mode"),
                    format!("unknown mode `{m}` (exact or bucketed)"),
                );
                return None;
            }
        };
        if agg.lifetime_only() && agg != Agg::LastValue && f.value.is_some() {
            self.err(
                format!("{path}.value"),
                format!("`{}` takes no `value`", f.kind),
            );
        }
        let value_out = match value_ty {
            Some(FieldType::Int) => Out::Int,
            Some(FieldType::Decimal) => Out::Dec,
            Some(FieldType::Float) => Out::Float,
            Some(FieldType::Bool) => Out::Bool,
            Some(FieldType::Timestamp) => Out::Time,
            Some(_) => Out::Str,
            None => Out::Int,
        };
        let out = match agg {
            Agg::Count | Agg::Distinct | Agg::Age | Agg::SinceLast => Out::Int,
            Agg::Avg => Out::Float,
            Agg::Sum | Agg::Min | Agg::Max => {
                if value_out == Out::Bool {
                    Out::Int
                } else {
                    value_out
                }
            }
            Agg::FirstSeen | Agg::LastSeen => Out::Time,
            Agg::LastValue => value_out,
        };
        if !self.errors.is_empty() {
            return None;
        }
        // Share a series with an identical source; a count may ride on a valued series whose value is
        // always present, since then both see the same events.
        let value_numeric = value_ty.is_some_and(|t| t.is_numeric() || t == FieldType::Bool);
        let value_required = f.value.is_some() && value_required;
        let want = SeriesDef {
            events,
            key,
            value: f.value.clone(),
            value_numeric,
            value_required,
            filter: f.filter.clone(),
            filter_text,
            mode,
            entity: 0,
            pos: 0,
        };
        let si = find_or_add_series(series, want, agg == Agg::Count);
        Some(FeatureDef {
            name: f.name.clone(),
            kind: FeatureKind::Series {
                series: si,
                reader: Reader {
                    agg,
                    window_ms,
                    offset_ms,
                    out: value_out,
                },
            },
            out,
            default,
            description: f.description.clone(),
        })
    }
}

/// A count (no value) can share a valued series only when that value is required on every feeding type:
/// then the series holds every event the count must see.
fn find_or_add_series(series: &mut Vec<SeriesDef>, want: SeriesDef, is_count: bool) -> usize {
    for (i, s) in series.iter_mut().enumerate() {
        let same_source =
            s.events == want.events && s.key == want.key && s.filter_text == want.filter_text;
        let value_ok = s.value == want.value
            || (want.value.is_none() && is_count && s.value.is_some() && s.value_required);
        if !(same_source && value_ok) {
            continue;
        }
        match (&mut s.mode, &want.mode) {
            (
                SeriesMode::Exact {
                    retention_ms,
                    max_entries,
                },
                SeriesMode::Exact {
                    retention_ms: r,
                    max_entries: m,
                },
            ) => {
                *retention_ms = (*retention_ms).max(*r);
                *max_entries = (*max_entries).max(*m);
                return i;
            }
            (
                SeriesMode::Bucketed {
                    width_ms,
                    len,
                    sum,
                    minmax,
                    distinct,
                },
                SeriesMode::Bucketed {
                    width_ms: w,
                    len: l,
                    sum: s2,
                    minmax: m2,
                    distinct: d2,
                },
            ) if width_ms == w => {
                *len = (*len).max(*l);
                *sum |= *s2;
                *minmax |= *m2;
                *distinct |= *d2;
                return i;
            }
            (SeriesMode::Lifetime { distinct }, SeriesMode::Lifetime { distinct: d2 }) => {
                *distinct |= *d2;
                return i;
            }
            _ => {}
        }
    }
    series.push(want);
    series.len() - 1
}

/// Converts a configured `default` to the feature's output type.
fn coerce_default(v: &Value, out: Out) -> Result<Value, String> {
    let want = |t: &str| {
        Err(format!(
            "default `{}` does not fit this feature's type ({t})",
            v.to_json()
        ))
    };
    Ok(match (v, out) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), Out::Int) => Value::Int(*i),
        (Value::Int(i), Out::Float) => Value::Float(*i as f64),
        (Value::Float(x), Out::Float) => Value::Float(*x),
        (Value::Float(x), Out::Int) if x.fract() == 0.0 => Value::Int(*x as i64),
        (Value::Int(i), Out::Dec) => Value::Dec(i.saturating_mul(argus_event::value::DEC_SCALE)),
        (Value::Float(x), Out::Dec) => {
            Value::Dec((x * argus_event::value::DEC_SCALE as f64).round() as i64)
        }
        (Value::Bool(b), Out::Bool) => Value::Bool(*b),
        (Value::Str(s), Out::Str) => Value::Str(s.clone()),
        (Value::Str(s), Out::Time) => match argus_event::time::parse_datetime(s) {
            Some(t) => Value::Time(t),
            None => return want("a time"),
        },
        (_, Out::Int) => return want("integer"),
        (_, Out::Float) | (_, Out::Dec) => return want("number"),
        (_, Out::Bool) => return want("boolean"),
        (_, Out::Str) => return want("string"),
        (_, Out::Time) => return want("time"),
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `+08:00` / `-05:30` / `Z` → milliseconds.
pub fn parse_utc_offset(s: &str) -> Option<i64> {
    if s == "Z" || s == "UTC" {
        return Some(0);
    }
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' || !(b[0] == b'+' || b[0] == b'-') {
        return None;
    }
    let h: i64 = s[1..3].parse().ok()?;
    let m: i64 = s[4..6].parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    let v = (h * 60 + m) * 60_000;
    Some(if b[0] == b'-' { -v } else { v })
}

/// The actor slot is always present; exported for readers of key specs.
pub const ACTOR: usize = ACTOR_SLOT;
