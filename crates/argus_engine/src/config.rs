//! `argus.toml`: one file (plus optional includes) that configures the whole engine — schema extensions,
//! features, CSV column mapping, privacy and engine settings. Every problem is reported at once.

use argus_event::schema::{did_you_mean, SchemaConfig};
use argus_event::time::{parse_duration, DAY};
use argus_event::{Pseudonymizer, Schema};
use argus_features::{FeatureSet, FeaturesConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Environment variable that overrides `privacy.secret`.
pub const SECRET_ENV: &str = "ARGUS_PII_SECRET";

/// Default of `[engine] dedupe_max_ids`: about 140 MB of idempotency ids (about 70 bytes each: the
/// 16-byte digest in a hash set and 32 bytes in the ordered queue, with the set's spare capacity).
pub const DEFAULT_DEDUPE_MAX_IDS: usize = 2_000_000;

/// Most feature-state partitions `[engine] partitions` accepts.
pub const MAX_PARTITIONS: usize = 256;

/// The default partition count: the cores this process may use (`ARGUS_PARTITIONS` overrides it,
/// as the benches and the partition-invariance tests do).
pub fn default_partitions() -> usize {
    if let Some(n) = std::env::var("ARGUS_PARTITIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=MAX_PARTITIONS).contains(n))
    {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_PARTITIONS))
}

const TOP_KEYS: &[&str] = &[
    "include",
    "engine",
    "privacy",
    "entities",
    "event_types",
    "settings",
    "features",
    "models",
    "graph",
    "csv",
    "server",
    "lookups",
    "cases",
    "lifecycle",
    "cluster",
    "deadlines",
    "text",
];

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// How long event ids are remembered for idempotency (event time).
    pub dedupe_ttl: Option<String>,
    /// At most this many event ids are remembered (the oldest are forgotten first), whatever the TTL:
    /// the idempotency memory is bounded by configuration, not by traffic.
    pub dedupe_max_ids: Option<usize>,
    /// No longer used: expiry is incremental (kept so that older files still load; see
    /// docs/features.md, "Expiry").
    pub sweep_every: Option<String>,
    /// Feature-state partitions (keys are split among them by hash); replay applies them on this many
    /// threads. Default: the number of cores. Answers, snapshots and digests do not depend on it.
    pub partitions: Option<usize>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// HMAC secret for pseudonymization; `ARGUS_PII_SECRET` overrides it.
    pub secret: Option<String>,
}

/// Maps CSV columns onto an event type.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CsvMapping {
    /// Every row is an event of this type…
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// …or this column names the type of each row.
    pub type_column: Option<String>,
    /// The column with each row's event id. Without it, a row's id is `<file name>:<record number>`
    /// (stable for the same file and row; a file replayed twice is deduplicated).
    pub id: Option<String>,
    /// The time column (needed unless every `[[csv.events]]` names its own).
    pub time: Option<String>,
    /// The time column's format when it is not RFC 3339 or epoch milliseconds, as strftime/strptime
    /// directives (`%m/%d/%Y %H:%M`, `%d.%m.%Y %H:%M:%S%.f`, …; `%z` or `%Q` read an offset or a time
    /// zone name from the value).
    pub time_format: Option<String>,
    /// The IANA time zone (`Europe/Berlin`) of times written without an offset; default UTC.
    pub time_zone: Option<String>,
    pub actor: String,
    /// field name → column name. Columns not named here are never read.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default = "comma")]
    pub delimiter: char,
    /// Several events from each row, in this order (instead of `type` / `type_column`): e.g. a
    /// sign-up and a purchase from one row of an orders table. Each has its own type, time column and
    /// fields; `[csv.fields]` apply to every one whose type has them. Their ids are the row's id with
    /// `/<type>` appended.
    #[serde(default)]
    pub events: Vec<CsvEvent>,
}

/// One of the events `[[csv.events]]` makes from each row.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CsvEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its time column (default: `[csv] time`). A row whose cell is empty makes no event of this kind.
    pub time: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

fn comma() -> char {
    ','
}

/// A fully loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub schema: Arc<Schema>,
    pub features: Arc<FeatureSet>,
    pub csv: Option<CsvMapping>,
    pub pseudonymizer: Pseudonymizer,
    pub secret_is_default: bool,
    /// Identifies the pseudonymization secret without revealing it (snapshots refuse another one).
    pub secret_fingerprint: u64,
    pub dedupe_ttl_ms: i64,
    /// Most event ids remembered for idempotency (see [`EngineSettings::dedupe_max_ids`]).
    pub dedupe_max_ids: usize,
    /// Feature-state partitions (see [`EngineSettings::partitions`]).
    pub partitions: usize,
    /// The `[server]` section, read by `argus serve` (the engine itself does not use it).
    pub server: toml::Table,
    /// The `[cases]` section (inboxes, routing, bans, webhooks), read by `argus serve`.
    pub cases: toml::Table,
    /// The `[lifecycle]` section (where policies come from, approvals, the guard), read by
    /// `argus serve`.
    pub lifecycle: toml::Table,
    /// The `[cluster]` section (the NATS JetStream log several nodes share), read by `argus serve`.
    pub cluster: toml::Table,
    /// `[[models]]`, loaded and matched to the features (their slots are `features.models`). Empty
    /// when loaded by [`load_without_models`](Self::load_without_models).
    pub models: Vec<Arc<crate::models::LoadedModel>>,
    /// `[[models]]` as declared, with their files' paths resolved.
    pub declared_models: Vec<crate::models::DeclaredModel>,
    /// `[[lookups]]`: the tables' contents, read by every decoder of this configuration's engine
    /// (a reload replaces them in place).
    pub lookups: argus_event::lookup::LookupCell,
    /// `[graph]`: the entity graph and its detectors, when declared.
    pub graph: Option<Arc<crate::graph::GraphSpec>>,
    /// `[graph.propagation]`: semi-supervised signals from arriving labels, when declared.
    pub propagation: Option<Arc<crate::propagation::PropagationSpec>>,
    /// `[text]`: near-duplicate texts, when declared.
    pub text: Option<Arc<crate::text::TextSpec>>,
    /// `[deadlines]`: latency budgets per checkpoint and the stages' shares, when declared.
    pub deadlines: Option<Arc<crate::deadlines::Deadlines>>,
    /// Files read, in order.
    pub sources: Vec<PathBuf>,
}

/// Every problem found while loading configuration, each prefixed with its file and path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigLoadError(pub Vec<String>);

#[derive(Default)]
struct Parts {
    engine: EngineSettings,
    privacy: PrivacyConfig,
    schema: Vec<SchemaConfig>,
    features: FeaturesConfig,
    csv: Option<CsvMapping>,
    server: toml::Table,
    cases: toml::Table,
    lifecycle: toml::Table,
    cluster: toml::Table,
    deadlines: Option<crate::deadlines::DeadlinesConfig>,
    /// Each `[[models]]` entry with the folder of the file that declared it.
    models: Vec<(crate::models::ModelConfig, PathBuf)>,
    graph: Option<crate::graph::GraphConfig>,
    text: Option<crate::text::TextConfig>,
    /// Each `[[lookups]]` entry with the folder of the file that declared it.
    lookups: Vec<(crate::lookups::LookupConfig, PathBuf)>,
    sources: Vec<PathBuf>,
    /// Declarations are checked, but model files are not read (training writes them).
    skip_model_files: bool,
}

impl Config {
    /// The embedded default: built-in schema, no features.
    pub fn builtin() -> Config {
        Self::from_parts(Parts::default()).expect("the empty configuration is valid (tested)")
    }

    /// Loads a configuration file and its includes.
    pub fn load(path: &Path) -> Result<Config, ConfigLoadError> {
        let mut parts = Parts::default();
        let mut errors = Vec::new();
        read_file(path, &mut parts, &mut errors, 0);
        Self::finish(parts, errors)
    }

    /// As [`load`](Self::load), without reading the `[[models]]` files (only their declarations are
    /// checked): for `argus train`, which writes them, and `argus eval`, which names its model.
    pub fn load_without_models(path: &Path) -> Result<Config, ConfigLoadError> {
        let mut parts = Parts {
            skip_model_files: true,
            ..Parts::default()
        };
        let mut errors = Vec::new();
        read_file(path, &mut parts, &mut errors, 0);
        Self::finish(parts, errors)
    }

    /// Validates what could be read even when some sections failed, so that every problem is reported.
    fn finish(parts: Parts, mut errors: Vec<String>) -> Result<Config, ConfigLoadError> {
        match Self::from_parts(parts) {
            Ok(c) if errors.is_empty() => Ok(c),
            Ok(_) => Err(ConfigLoadError(errors)),
            Err(e) => {
                errors.extend(e.0);
                Err(ConfigLoadError(errors))
            }
        }
    }

    /// Loads a configuration from text (includes resolved relative to `base`).
    pub fn from_str(text: &str, base: &Path) -> Result<Config, ConfigLoadError> {
        let mut parts = Parts::default();
        let mut errors = Vec::new();
        absorb(text, base, "<inline>", &mut parts, &mut errors, 0);
        Self::finish(parts, errors)
    }

    fn from_parts(p: Parts) -> Result<Config, ConfigLoadError> {
        let mut errors = Vec::new();
        let (lookup_fields, lookup_tables, lookup_errors) = crate::lookups::load(&p.lookups);
        errors.extend(lookup_errors);
        let schema = match Schema::load_with_lookups(&p.schema, &lookup_fields) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                errors.extend(e.0.into_iter().map(|e| format!("schema: {e}")));
                None
            }
        };
        let mut models = Vec::new();
        let mut graph = None;
        let mut propagation = None;
        let mut text = None;
        let features = schema
            .as_ref()
            .and_then(|s| match FeatureSet::compile(s, &p.features) {
                Ok(mut f) => {
                    // Text features first: the graph's similarity edges read their groups.
                    if let Some(tc) = &p.text {
                        match crate::text::compile(tc, s, &mut f) {
                            Ok(t) => text = Some(Arc::new(t)),
                            Err(e) => errors.extend(e),
                        }
                    }
                    if let Some(gc) = &p.graph {
                        let declared: Vec<&str> = p
                            .text
                            .iter()
                            .flat_map(|t| t.duplicates.iter().map(|d| d.name.as_str()))
                            .collect();
                        match crate::graph::compile(gc, s, &mut f, text.as_deref(), &declared) {
                            Ok(g) => graph = Some(Arc::new(g)),
                            Err(e) => errors.extend(e),
                        }
                        if let Some(pc) = &gc.propagation {
                            match crate::propagation::compile(pc, &gc.confirmed, s, &mut f) {
                                Ok(p) => propagation = Some(Arc::new(p)),
                                Err(e) => errors.extend(e),
                            }
                        }
                    }
                    for (mc, base) in &p.models {
                        if p.models.iter().filter(|(o, _)| o.name == mc.name).count() > 1
                            && !errors
                                .iter()
                                .any(|e| e.contains(&format!("models.{}: declared twice", mc.name)))
                        {
                            errors.push(format!("models.{}: declared twice", mc.name));
                        }
                        if p.skip_model_files {
                            if let Err(e) = crate::models::check_declaration(mc, s, &f) {
                                errors.extend(e);
                            }
                            continue;
                        }
                        match crate::models::load(mc, base, s, &f) {
                            Ok(m) => {
                                f.models.push(argus_features::config::ModelSlot {
                                    name: m.name.clone(),
                                    event_type: m.event_type as usize,
                                });
                                models.push(Arc::new(m));
                            }
                            Err(e) => errors.extend(e),
                        }
                    }
                    Some(Arc::new(f))
                }
                Err(e) => {
                    errors.extend(e.0.into_iter().map(|e| format!("features: {e}")));
                    None
                }
            });
        let dur = |errors: &mut Vec<String>, name: &str, v: &Option<String>, default: i64| match v {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|| {
                errors.push(format!("engine.{name}: invalid duration `{s}`"));
                default
            }),
        };
        let dedupe_ttl_ms = dur(&mut errors, "dedupe_ttl", &p.engine.dedupe_ttl, 7 * DAY);
        let dedupe_max_ids = p.engine.dedupe_max_ids.unwrap_or(DEFAULT_DEDUPE_MAX_IDS);
        if dedupe_max_ids == 0 {
            errors.push("engine.dedupe_max_ids: must be at least 1".into());
        }
        let _ = dur(&mut errors, "sweep_every", &p.engine.sweep_every, DAY);
        let partitions = match p.engine.partitions {
            Some(0) => {
                errors.push("engine.partitions: must be at least 1".into());
                1
            }
            Some(n) if n > MAX_PARTITIONS => {
                errors.push(format!(
                    "engine.partitions: {n} is more than {MAX_PARTITIONS}"
                ));
                1
            }
            Some(n) => n,
            None => default_partitions(),
        };
        if let (Some(schema), Some(csv)) = (&schema, &p.csv) {
            errors.extend(check_csv(schema, csv));
        }
        let deadlines = match (&schema, &p.deadlines) {
            (Some(s), Some(d)) => match crate::deadlines::compile(d, s) {
                Ok(d) => d.map(Arc::new),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
            _ => None,
        };
        let env_secret = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
        let (secret, secret_is_default) = match (env_secret, &p.privacy.secret) {
            (Some(s), _) => (s, false),
            (None, Some(s)) => (s.clone(), false),
            (None, None) => (argus_event::privacy::DEV_SECRET.to_string(), true),
        };
        if !errors.is_empty() {
            return Err(ConfigLoadError(errors));
        }
        let (Some(schema), Some(features)) = (schema, features) else {
            return Err(ConfigLoadError(vec!["configuration incomplete".into()]));
        };
        let pseudonymizer = Pseudonymizer::new(secret.as_bytes());
        let secret_fingerprint = xxhash_rust::xxh3::xxh3_64(
            pseudonymizer
                .token("argus", "secret-fingerprint")
                .as_bytes(),
        );
        Ok(Config {
            schema,
            features,
            csv: p.csv,
            pseudonymizer,
            secret_fingerprint,
            secret_is_default,
            dedupe_ttl_ms,
            dedupe_max_ids,
            partitions,
            server: p.server,
            cases: p.cases,
            lifecycle: p.lifecycle,
            cluster: p.cluster,
            deadlines,
            models,
            lookups: crate::lookups::cell(lookup_tables),
            declared_models: p
                .models
                .iter()
                .map(|(c, base)| crate::models::DeclaredModel {
                    config: c.clone(),
                    path: base.join(&c.path),
                })
                .collect(),
            graph,
            propagation,
            text,
            sources: p.sources,
        })
    }
}

fn check_csv(schema: &Schema, csv: &CsvMapping) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(z) = &csv.time_zone {
        if jiff::tz::TimeZone::get(z).is_err() {
            errors.push(format!(
                "csv.time_zone: `{z}` is not an IANA time zone name (e.g. `UTC`, `Europe/Berlin`, `America/New_York`)"
            ));
        }
    }
    if csv.time_format.as_deref().is_some_and(|f| !f.contains('%')) {
        errors.push(
            "csv.time_format: a format needs strftime directives, e.g. `%m/%d/%Y %H:%M`".into(),
        );
    }
    if !csv.delimiter.is_ascii() {
        errors.push(format!(
            "csv.delimiter: `{}` is not a single ASCII character",
            csv.delimiter
        ));
    }
    if !csv.events.is_empty() {
        if csv.event_type.is_some() || csv.type_column.is_some() {
            errors.push(
                "csv: `[[csv.events]]` replaces `type` and `type_column`; set one way".into(),
            );
        }
        for (i, e) in csv.events.iter().enumerate() {
            let at = format!("csv.events[{i}]");
            if e.time.is_none() && csv.time.is_none() {
                errors.push(format!("{at}.time: no time column (and no `[csv] time`)"));
            }
            match schema.by_name(&e.event_type) {
                None => errors.push(format!(
                    "{at}.type: unknown event type `{}`{}",
                    e.event_type,
                    did_you_mean(&e.event_type, schema.public_type_names().into_iter())
                )),
                Some(et) => {
                    for f in e.fields.keys() {
                        match et.field(f) {
                            Some(field) if f != "actor" && field.derived_from.is_none() => {}
                            _ => errors.push(format!(
                                "{at}.fields.{f}: `{}` has no field `{f}` that can be mapped{}",
                                et.name,
                                did_you_mean(f, et.input_names())
                            )),
                        }
                    }
                }
            }
        }
        return errors;
    }
    if csv.time.is_none() {
        errors.push("csv.time: the time column is required".into());
    }
    match (&csv.event_type, &csv.type_column) {
        (Some(t), None) => match schema.by_name(t) {
            None => errors.push(format!(
                "csv.type: unknown event type `{t}`{}",
                did_you_mean(t, schema.public_type_names().into_iter())
            )),
            Some(et) => {
                for f in csv.fields.keys() {
                    match et.field(f) {
                        Some(field) if f != "actor" && field.derived_from.is_none() => {}
                        Some(field) if field.derived_from.is_some() => {
                            errors.push(format!("csv.fields.{f}: `{f}` is derived by Argus from personal data and cannot be mapped"))
                        }
                        _ => errors.push(format!("csv.fields.{f}: `{}` has no field `{f}`{}", et.name, did_you_mean(f, et.input_names()))),
                    }
                }
            }
        },
        (None, Some(_)) => {
            for f in csv.fields.keys() {
                let fields = schema
                    .types
                    .iter()
                    .filter(|t| !t.internal)
                    .filter_map(|t| t.field(f));
                let (mut any, mut derived) = (false, false);
                for field in fields {
                    any = true;
                    derived |= field.derived_from.is_some();
                }
                if f == "actor" || !any {
                    errors.push(format!(
                        "csv.fields.{f}: no event type has a field `{f}` that can be mapped"
                    ));
                } else if derived {
                    errors.push(format!("csv.fields.{f}: `{f}` is derived by Argus from personal data and cannot be mapped"));
                }
            }
        }
        _ => errors.push(
            "csv: set exactly one of `type` (one type for every row) or `type_column`".into(),
        ),
    }
    errors
}

fn read_file(path: &Path, parts: &mut Parts, errors: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        errors.push(format!("{}: includes nest deeper than 8", path.display()));
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => {
            parts.sources.push(path.to_path_buf());
            let base = path.parent().unwrap_or(Path::new("."));
            absorb(
                &text,
                base,
                &path.display().to_string(),
                parts,
                errors,
                depth,
            );
        }
        Err(e) => errors.push(format!("{}: cannot read: {e}", path.display())),
    }
}

fn absorb(
    text: &str,
    base: &Path,
    name: &str,
    parts: &mut Parts,
    errors: &mut Vec<String>,
    depth: usize,
) {
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            return;
        }
    };
    for k in table.keys() {
        if !TOP_KEYS.contains(&k.as_str()) {
            errors.push(format!(
                "{name}: unknown section `{k}`{}",
                did_you_mean(k, TOP_KEYS.iter().copied())
            ));
        }
    }
    let section = |key: &str| table.get(key).cloned();
    fn typed<T: serde::de::DeserializeOwned>(
        v: toml::Value,
        what: &str,
        name: &str,
        errors: &mut Vec<String>,
    ) -> Option<T> {
        v.try_into()
            .map_err(|e: toml::de::Error| errors.push(format!("{name}: {what}: {}", e.message())))
            .ok()
    }
    // Includes first: what this file says itself overrides them.
    if let Some(v) = section("include") {
        if let Some(files) = typed::<Vec<String>>(v, "include", name, errors) {
            for f in files {
                read_file(&base.join(f), parts, errors, depth + 1);
            }
        }
    }
    if let Some(v) = section("engine") {
        if let Some(e) = typed(v, "engine", name, errors) {
            parts.engine = e;
        }
    }
    if let Some(v) = section("privacy") {
        if let Some(p) = typed(v, "privacy", name, errors) {
            parts.privacy = p;
        }
    }
    if let Some(v) = section("server") {
        match v {
            // Keys of an included file are overridden one by one by the including file.
            toml::Value::Table(t) => parts.server.extend(t),
            _ => errors.push(format!("{name}: server: expected a table")),
        }
    }
    if let Some(v) = section("cases") {
        match v {
            toml::Value::Table(t) => parts.cases.extend(t),
            _ => errors.push(format!("{name}: cases: expected a table")),
        }
    }
    if let Some(v) = section("lifecycle") {
        match v {
            toml::Value::Table(t) => parts.lifecycle.extend(t),
            _ => errors.push(format!("{name}: lifecycle: expected a table")),
        }
    }
    if let Some(v) = section("cluster") {
        match v {
            toml::Value::Table(t) => parts.cluster.extend(t),
            _ => errors.push(format!("{name}: cluster: expected a table")),
        }
    }
    if let Some(v) = section("deadlines") {
        if let Some(d) = typed(v, "deadlines", name, errors) {
            parts.deadlines = Some(d);
        }
    }
    if let Some(v) = section("csv") {
        if let Some(c) = typed(v, "csv", name, errors) {
            parts.csv = Some(c);
        }
    }
    let mut schema_tbl = toml::Table::new();
    for k in ["entities", "event_types"] {
        if let Some(v) = section(k) {
            schema_tbl.insert(k.into(), v);
        }
    }
    if !schema_tbl.is_empty() {
        if let Some(s) =
            typed::<SchemaConfig>(toml::Value::Table(schema_tbl), "schema", name, errors)
        {
            parts.schema.push(s);
        }
    }
    if let Some(v) = section("settings") {
        if let Some(s) = typed(v, "settings", name, errors) {
            parts.features.settings = s;
        }
    }
    if let Some(v) = section("features") {
        if let Some(fs) =
            typed::<Vec<argus_features::config::FeatureConfig>>(v, "features", name, errors)
        {
            parts.features.features.extend(fs);
        }
    }
    if let Some(v) = section("graph") {
        if let Some(g) = typed(v, "graph", name, errors) {
            parts.graph = Some(g);
        }
    }
    if let Some(v) = section("text") {
        if let Some(t) = typed::<crate::text::TextConfig>(v, "text", name, errors) {
            let into = parts.text.get_or_insert_with(Default::default);
            into.duplicates.extend(t.duplicates);
            into.hashed.extend(t.hashed);
        }
    }
    if let Some(v) = section("lookups") {
        if let Some(ls) = typed::<Vec<crate::lookups::LookupConfig>>(v, "lookups", name, errors) {
            parts
                .lookups
                .extend(ls.into_iter().map(|l| (l, base.to_path_buf())));
        }
    }
    if let Some(v) = section("models") {
        if let Some(ms) = typed::<Vec<crate::models::ModelConfig>>(v, "models", name, errors) {
            parts
                .models
                .extend(ms.into_iter().map(|m| (m, base.to_path_buf())));
        }
    }
}
