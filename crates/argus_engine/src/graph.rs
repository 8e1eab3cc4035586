//! The entity graph, maintained from events as they arrive, and its detectors in the decision path.
//!
//! `[graph]` in `argus.toml` declares:
//! - **links**: account–attribute edges (device, card, address, payout account, phone, …) from the
//!   fields of the account's own events. Accounts sharing a value are one cluster (union-find, kept
//!   up to date on every event); a value shared by more than `max_share` accounts (carrier NAT, a
//!   pickup point) links nobody once the graph is rebuilt.
//! - **confirmed**: label events naming a confirmed fraudulent account (`fraud.confirmed`'s
//!   `subject`), for a cluster's fraud rate.
//! - **blocks**: bipartite account × object graphs (buyer × seller from orders, user × item from
//!   clicks) over a recent window, repeat edges counting. The exact incremental peel
//!   (`argus_graph::IncrementalPeel`) keeps the window's densest set up to date in batches; at each
//!   refresh the window is re-peeled from its live edges (expiry) and several blocks are found by
//!   deflation (`argus_graph::peel_many`). Each edge also gets a MIDAS burst score.
//!
//! Their results are features (`graph_cluster_size`, `graph_<block>_density`, …) that rules and models
//! read like any other, and **findings** (a cluster or a block worth an investigator's look), which the
//! engine hands to whoever drains them (the server's findings store, `argus replay --findings`).
//!
//! Everything is driven by event time and event order: the same events give the same features and
//! findings, live or in replay. Memory is bounded by the windows: links, edges, confirmations and
//! report signatures expire, and the rebuild drops accounts and values nothing live refers to.

use argus_event::time::{format_rfc3339, parse_duration};
use argus_event::{Event, Schema, Value, ACTOR_SLOT};
use argus_features::{FeatureSet, Out};
use argus_graph::{peel_many, Bipartite, Burst, IncrementalPeel, Weighting};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// `[graph]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// How long a link (account, value) lives after it was last seen. Default `30d`.
    pub window: Option<String>,
    /// Event time between two runs of the block detectors and findings. Default `1h`.
    pub refresh_every: Option<String>,
    /// Event time between two rebuilds (expiry, hub caps, compaction). Default `1d`.
    pub rebuild_every: Option<String>,
    /// A value shared by more accounts than this links nobody. Default 30.
    pub max_share: Option<usize>,
    /// Clusters of at least this many accounts are reported as findings. Default 3.
    pub min_cluster: Option<usize>,
    /// How long a confirmed label counts. Default `180d`.
    pub label_window: Option<String>,
    #[serde(default)]
    pub links: Vec<LinkConfig>,
    #[serde(default)]
    pub confirmed: Vec<ConfirmConfig>,
    #[serde(default)]
    pub blocks: Vec<BlockConfig>,
    /// `[graph.propagation]`: semi-supervised signals from arriving labels ([`crate::propagation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<crate::propagation::PropagationToml>,
}

/// `[[graph.links]]`: a field whose values link the accounts that use them; or, with `text`, the
/// near-duplicate groups of a `[[text.duplicates]]` declaration (similarity edges: accounts that
/// posted near-same texts are linked).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The linking field (exactly one of `field` and `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A `[[text.duplicates]]` name: its texts' groups link their accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Event types whose field links (default: every account event type that has it).
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events that pass this filter link — the features' filter syntax, e.g. successful logins
    /// only: `[{ field = "success", op = "==", value = true }]`. Every listed event type must have its
    /// fields.
    #[serde(default)]
    pub filter: Vec<argus_features::filter::FilterConfig>,
}

/// `[[graph.confirmed]]`: an event naming a confirmed fraudulent account in `field`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmConfig {
    pub event: String,
    pub field: String,
}

/// `[[graph.blocks]]`: a bipartite account × `column` graph from `events`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    pub name: String,
    pub events: Vec<String>,
    pub column: String,
    /// Edges older than this expire. Default `1d`.
    pub window: Option<String>,
    /// Event time between two re-peels of this graph (expiry, several blocks, findings). Default:
    /// `[graph] refresh_every`.
    pub refresh_every: Option<String>,
    /// `plain` (default), `log` or `sqrt` for the refresh's blocks.
    pub weighting: Option<String>,
    /// `count` (default: a repeated pair weighs its count, as brushing's repeat orders do) or `once`
    /// (an account–object pair counts once however often it repeats: browsing revisits are not density).
    pub repeats: Option<String>,
    /// A numeric field each edge weighs instead of 1 (e.g. `amount`: a buyer × seller graph weighted
    /// by money). Kept in hundredths, so that sums are exact; densities are reported in the field's unit.
    pub weight: Option<String>,
    /// Blocks found per refresh (deflation). Default 3.
    pub blocks: Option<usize>,
    /// A block is reported (and marks its accounts) from this density on. Default 3.
    pub min_density: Option<f64>,
    /// … and this many accounts. Default 3.
    pub min_rows: Option<usize>,
    /// … and this fill: weight per account × object cell (1 = every account with every object, as
    /// lockstep is; a flash sale's crowd is dense but sparse in its cells). Default 0.
    pub min_fill: Option<f64>,
    /// Edges inserted into the incremental peel together. Default 16.
    pub batch: Option<usize>,
    /// The burst score's time tick. Default `1m`.
    pub burst_tick: Option<String>,
}

/// A compiled block graph.
#[derive(Debug, Clone)]
pub struct BlockSpec {
    pub name: String,
    /// Column slot by event type.
    pub by_type: Vec<Option<usize>>,
    pub window_ms: i64,
    pub refresh_ms: i64,
    /// Repeated pairs count once.
    pub once: bool,
    /// Weight field slot by event type (`None`: each edge weighs 1).
    pub weight_by_type: Vec<Option<usize>>,
    /// Internal weight units per reported unit (100 with a weight field: hundredths).
    pub scale: f64,
    pub weighting: Weighting,
    pub blocks: usize,
    pub min_density: f64,
    pub min_rows: usize,
    pub min_fill: f64,
    pub batch: usize,
    pub tick_ms: i64,
    pub f_density: usize,
    pub f_rows: usize,
    pub f_rate: usize,
    pub f_burst: usize,
}

impl BlockSpec {
    /// Whether a block of this density and shape is reported.
    pub fn qualifies(&self, density: f64, rows: usize, cols: usize) -> bool {
        let fill = if rows == 0 || cols == 0 {
            0.0
        } else {
            density * (rows + cols) as f64 / (rows * cols) as f64
        };
        density >= self.min_density && rows >= self.min_rows && fill >= self.min_fill
    }
}

/// A linking field on one event type: (value slot, link field index, the filter events must pass).
type LinkSlot = (usize, u16, argus_features::filter::Filter);

/// A text link on one event type: (the `text_<name>_group` feature slot, link field index).
type TextLink = (usize, u16);

/// The compiled `[graph]`.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    pub window_ms: i64,
    pub refresh_ms: i64,
    pub rebuild_ms: i64,
    pub label_ms: i64,
    pub max_share: usize,
    pub min_cluster: usize,
    /// Per event type: the fields that link.
    links: Vec<Vec<LinkSlot>>,
    /// Per event type: the text groups that link (written by the text stage, which runs first).
    text_links: Vec<Vec<TextLink>>,
    link_fields: Vec<String>,
    /// Per link field: is it a text link's groups (not counted as a cluster's linking values).
    text_field: Vec<bool>,
    /// Per event type: the slot naming a confirmed account.
    confirm: Vec<Option<usize>>,
    /// Per event type: is the actor an account.
    account: Vec<bool>,
    pub blocks: Vec<BlockSpec>,
    f_size: usize,
    f_per_value: usize,
    /// Per link field: accounts per distinct value of that field in the cluster.
    f_per_field: Vec<usize>,
    f_confirmed: usize,
    f_rate: usize,
    /// A digest of the declaration, for snapshots.
    pub fingerprint: u64,
}

impl GraphSpec {
    /// The feature slots the graph writes (each event's vector gets all of them).
    pub fn feature_slots(&self) -> Vec<usize> {
        let mut v = vec![self.f_size, self.f_per_value];
        v.extend(&self.f_per_field);
        v.extend([self.f_confirmed, self.f_rate]);
        for b in &self.blocks {
            v.extend([b.f_density, b.f_rows, b.f_rate, b.f_burst]);
        }
        v
    }
}

/// Checks `[graph]` against the schema and adds its features; every problem as a message.
pub fn compile(
    c: &GraphConfig,
    schema: &Schema,
    features: &mut FeatureSet,
    text: Option<&crate::text::TextSpec>,
    declared_texts: &[&str],
) -> Result<GraphSpec, Vec<String>> {
    let mut errors = Vec::new();
    let dur = |errors: &mut Vec<String>, at: &str, v: &Option<String>, default: &str| -> i64 {
        let s = v.as_deref().unwrap_or(default);
        match parse_duration(s) {
            Some(ms) if ms > 0 => ms,
            _ => {
                errors.push(format!("graph.{at}: invalid duration `{s}`"));
                1
            }
        }
    };
    let window_ms = dur(&mut errors, "window", &c.window, "30d");
    let refresh_ms = dur(&mut errors, "refresh_every", &c.refresh_every, "1h");
    let rebuild_ms = dur(&mut errors, "rebuild_every", &c.rebuild_every, "1d");
    let label_ms = dur(&mut errors, "label_window", &c.label_window, "180d");
    let n = schema.types.len();
    let account = self::account_types(schema);
    let account_types: Vec<usize> = (0..n).filter(|&t| account[t]).collect();
    let types_of = |errors: &mut Vec<String>, at: &str, names: &[String]| -> Vec<usize> {
        names
            .iter()
            .filter_map(|e| type_or_error(schema, errors, at, e))
            .collect()
    };
    let mut links = vec![Vec::new(); n];
    let mut text_links = vec![Vec::new(); n];
    let mut link_fields: Vec<String> = Vec::new();
    for (i, l) in c.links.iter().enumerate() {
        let at = format!("graph.links[{i}]");
        let field = match (&l.field, &l.text) {
            (Some(f), None) => f.clone(),
            (None, Some(name)) => {
                let Some((slot, types)) = text.and_then(|t| t.group(name)) else {
                    if text.is_none() && declared_texts.contains(&name.as_str()) {
                        // `[text]` did not compile: its own errors say why.
                        continue;
                    }
                    let names: Vec<&str> = text
                        .map(|t| t.duplicate_names().collect())
                        .unwrap_or_default();
                    errors.push(format!(
                        "{at}: text: no [[text.duplicates]] named `{name}`{}",
                        argus_event::schema::did_you_mean(name, names.into_iter())
                    ));
                    continue;
                };
                if !l.events.is_empty() || !l.filter.is_empty() {
                    errors.push(format!(
                        "{at}: a text link takes its event types from [[text.duplicates]] `{name}`: no `events` or `filter`"
                    ));
                }
                // `text.<name>`: not a field name, so its values never meet a field's. Two links of
                // one name are one.
                let key = format!("text.{name}");
                let fi = match link_fields.iter().position(|f| f == &key) {
                    Some(i) => {
                        errors.push(format!("{at}: text `{name}` is linked twice"));
                        i
                    }
                    None => {
                        link_fields.push(key);
                        link_fields.len() - 1
                    }
                };
                for &t in types {
                    if account[t] {
                        text_links[t].push((slot, fi as u16));
                    } else {
                        errors.push(format!(
                            "{at}: `{}`'s actor is not an account",
                            schema.types[t].name
                        ));
                    }
                }
                continue;
            }
            _ => {
                errors.push(format!("{at}: name exactly one of `field` and `text`"));
                continue;
            }
        };
        let types = if l.events.is_empty() {
            account_types
                .iter()
                .copied()
                .filter(|&t| schema.types[t].slot(&field).is_some())
                .collect()
        } else {
            types_of(&mut errors, &at, &l.events)
        };
        if types.is_empty() {
            errors.push(format!("{at}: no account event type has a field `{field}`"));
        }
        // Links over the same field (say, from different events) share its values and its feature.
        let fi = match link_fields.iter().position(|f| f == &field) {
            Some(i) => i,
            None => {
                link_fields.push(field.clone());
                link_fields.len() - 1
            }
        };
        for t in types {
            let et = &schema.types[t];
            if !account[t] {
                errors.push(format!("{at}: `{}`'s actor is not an account", et.name));
                continue;
            }
            let Some(slot) = et.slot(&field) else {
                errors.push(format!(
                    "{at}: `{}` has no field `{}`{}",
                    et.name,
                    field,
                    argus_event::schema::did_you_mean(&field, et.input_names())
                ));
                continue;
            };
            match argus_features::filter::compile_filter(et, &l.filter) {
                Ok(f) => links[t].push((slot, fi as u16, f)),
                Err(e) => errors.push(format!("{at}.filter: {e}")),
            }
        }
    }
    let mut confirm = vec![None; n];
    for (i, cc) in c.confirmed.iter().enumerate() {
        let at = format!("graph.confirmed[{i}]");
        for t in types_of(&mut errors, &at, std::slice::from_ref(&cc.event)) {
            match schema.types[t].slot(&cc.field) {
                Some(s) => confirm[t] = Some(s),
                None => errors.push(format!("{at}: `{}` has no field `{}`", cc.event, cc.field)),
            }
        }
    }
    let mut add =
        |errors: &mut Vec<String>, name: String, out: Out, types: &[usize], what: &str| -> usize {
            features
                .add_external(&name, out, types, what)
                .unwrap_or_else(|e| {
                    errors.push(format!("graph: {e} (graph features are named `graph_…`)"));
                    0
                })
        };
    let f_size = add(
        &mut errors,
        "graph_cluster_size".into(),
        Out::Int,
        &account_types,
        "accounts in the account's shared-attribute cluster",
    );
    let f_per_value = add(
        &mut errors,
        "graph_cluster_accounts_per_value".into(),
        Out::Float,
        &account_types,
        "accounts per distinct linking value (device, card, address…) in the cluster",
    );
    let f_per_field: Vec<usize> = link_fields
        .iter()
        .map(|f| add(&mut errors, format!("graph_cluster_accounts_per_{}", f.replace('.', "_")), Out::Float, &account_types, "accounts per distinct value of this field in the cluster (e.g. accounts per device)"))
        .collect();
    let f_confirmed = add(
        &mut errors,
        "graph_cluster_confirmed".into(),
        Out::Int,
        &account_types,
        "confirmed fraudulent accounts in the cluster",
    );
    let f_rate = add(
        &mut errors,
        "graph_cluster_fraud_rate".into(),
        Out::Float,
        &account_types,
        "confirmed fraudulent accounts / accounts in the cluster",
    );
    let mut blocks = Vec::new();
    for (i, b) in c.blocks.iter().enumerate() {
        let at = format!("graph.blocks[{i}]");
        check_name(&mut errors, &at, &b.name);
        let mut by_type = vec![None; n];
        let mut weight_by_type = vec![None; n];
        for t in types_of(&mut errors, &at, &b.events) {
            let et = &schema.types[t];
            if !account[t] {
                errors.push(format!("{at}: `{}`'s actor is not an account", et.name));
            }
            if let Some(wf) = &b.weight {
                match numeric_slot(et, wf) {
                    Ok(s) => weight_by_type[t] = Some(s),
                    Err(e) => errors.push(format!("{at}: weight: {e}")),
                }
            }
            match et.slot(&b.column) {
                Some(s) => by_type[t] = Some(s),
                None => errors.push(format!(
                    "{at}: `{}` has no field `{}`{}",
                    et.name,
                    b.column,
                    argus_event::schema::did_you_mean(&b.column, et.input_names())
                )),
            }
        }
        let weighting = match b.weighting.as_deref().unwrap_or("plain") {
            "plain" => Weighting::Plain,
            "log" => Weighting::Log,
            "sqrt" => Weighting::Sqrt,
            w => {
                errors.push(format!(
                    "{at}: weighting: `{w}` is not one of plain, log, sqrt"
                ));
                Weighting::Plain
            }
        };
        let once = match b.repeats.as_deref().unwrap_or("count") {
            "count" => false,
            "once" => true,
            r => {
                errors.push(format!("{at}: repeats: `{r}` is not one of count, once"));
                false
            }
        };
        if once && b.weight.is_some() {
            errors.push(format!("{at}: repeats = \"once\" counts each pair once: it cannot also weigh edges by `{}`", b.weight.as_deref().unwrap_or("")));
        }
        let min_density = b.min_density.unwrap_or(3.0);
        if !(min_density.is_finite() && min_density > 0.0) {
            errors.push(format!("{at}: min_density: a positive number"));
        }
        let edge_types: Vec<usize> = (0..n).filter(|&t| by_type[t].is_some()).collect();
        blocks.push(BlockSpec {
            name: b.name.clone(),
            window_ms: dur(&mut errors, &format!("blocks[{i}].window"), &b.window, "1d"),
            refresh_ms: if b.refresh_every.is_some() {
                dur(
                    &mut errors,
                    &format!("blocks[{i}].refresh_every"),
                    &b.refresh_every,
                    "1h",
                )
            } else {
                refresh_ms
            },
            weighting,
            once,
            scale: if b.weight.is_some() { 100.0 } else { 1.0 },
            weight_by_type,
            blocks: b.blocks.unwrap_or(3).clamp(1, 50),
            min_density,
            min_rows: b.min_rows.unwrap_or(3).max(1),
            min_fill: b.min_fill.unwrap_or(0.0).max(0.0),
            batch: b.batch.unwrap_or(16).clamp(1, 100_000),
            tick_ms: dur(
                &mut errors,
                &format!("blocks[{i}].burst_tick"),
                &b.burst_tick,
                "1m",
            ),
            f_density: add(
                &mut errors,
                format!("graph_{}_density", b.name),
                Out::Float,
                &account_types,
                "density of the dense block the account is in (0: none)",
            ),
            f_rows: add(
                &mut errors,
                format!("graph_{}_block_accounts", b.name),
                Out::Int,
                &account_types,
                "accounts in the dense block the account is in (0: none)",
            ),
            f_rate: add(
                &mut errors,
                format!("graph_{}_fraud_rate", b.name),
                Out::Float,
                &account_types,
                "confirmed fraudulent accounts / accounts in the account's dense block (0: none)",
            ),
            f_burst: add(
                &mut errors,
                format!("graph_{}_burst", b.name),
                Out::Float,
                &edge_types,
                "burst score of this event's edge (MIDAS-R)",
            ),
            by_type,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // From the declaration's canonical JSON (its keys are the configuration's own names, in a fixed
    // order), never from `Debug`.
    let canonical = serde_json::to_vec(c).unwrap_or_default();
    let mut fp = argus_features::config::Canonical::new(b"argus.graph.v1");
    fp.bytes(&canonical);
    // Similarity edges depend on how the texts are grouped: the linked `[text]` declaration is part
    // of the graph's definition (its findings and snapshots), and only then.
    if let Some(t) = text.filter(|_| c.links.iter().any(|l| l.text.is_some())) {
        fp.bytes(&t.fingerprint.to_le_bytes());
    }
    let fingerprint = fp.finish();
    let text_field = link_fields.iter().map(|f| f.starts_with("text.")).collect();
    Ok(GraphSpec {
        window_ms,
        refresh_ms,
        rebuild_ms,
        label_ms,
        max_share: c.max_share.unwrap_or(30).max(1),
        min_cluster: c.min_cluster.unwrap_or(3).max(2),
        links,
        text_links,
        link_fields,
        text_field,
        confirm,
        account,
        blocks,
        f_size,
        f_per_value,
        f_per_field,
        f_confirmed,
        f_rate,
        fingerprint,
    })
}

/// Something a detector found, for an investigator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `f-<n>`, in the order found.
    pub id: String,
    /// `cluster` (shared attributes) or `block:<name>` (a dense block of that graph).
    pub detector: String,
    /// Event time of the refresh that found it (RFC 3339).
    pub time: String,
    pub accounts: Vec<String>,
    /// The shared values (`field:value`) of a cluster, or the block's columns.
    pub objects: Vec<String>,
    /// Block: its density (weight per node); cluster: accounts per linking value.
    pub density: f64,
    /// Accounts of it with a confirmed fraud label.
    pub confirmed: usize,
}

/// What [`GraphState::neighborhood`] returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Neighborhood {
    /// (account, confirmed fraudulent)
    pub accounts: Vec<(String, bool)>,
    /// (`field:value`, accounts sharing it)
    pub values: Vec<(String, u32)>,
    /// (account, value, last time the link was used)
    pub edges: Vec<(String, String, i64)>,
    pub truncated: bool,
}

/// Ids for strings, in order of first use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Interner {
    names: Vec<String>,
    #[serde(skip)]
    ids: HashMap<String, u32>,
}

impl Interner {
    pub(crate) fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }

    /// The id of `s`, if it has one (nothing added).
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub(crate) fn reindex(&mut self) {
        self.ids = self
            .names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Link {
    a: u32,
    v: u32,
    last: i64,
}

const NO: u32 = u32::MAX;

/// One block graph's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlockState {
    cols: Interner,
    /// Live edges (time, account, column, weight in internal units) in arrival order.
    edges: VecDeque<(i64, u32, u32, f64)>,
    /// Rebuilt from `edges` on restore: equal to the maintained one (exact).
    #[serde(skip)]
    peel: IncrementalPeel,
    pending: Vec<(u32, u32, f64)>,
    /// Live edges and their summed weight per (account, column); rebuilt from `edges`.
    #[serde(skip)]
    mult: HashMap<(u32, u32), (u32, f64)>,
    /// Accounts in a block found at the last refresh: the block's density, accounts and confirmed
    /// accounts. Ordered maps: snapshots are the same bytes for the same events.
    member: BTreeMap<u32, Membership>,
    /// The incremental densest set's accounts, when it qualifies.
    densest: BTreeMap<u32, Membership>,
    burst: Burst,
    /// The burst score's first tick (ticks are counted from 1 at the first edge).
    tick0: Option<i64>,
    next_refresh: i64,
}

/// A block an account is in: density (reported units), accounts, confirmed accounts.
type Membership = (f64, u32, u32);

impl BlockState {
    fn new() -> BlockState {
        BlockState {
            cols: Interner::default(),
            edges: VecDeque::new(),
            peel: IncrementalPeel::new(),
            pending: Vec::new(),
            mult: HashMap::new(),
            member: BTreeMap::new(),
            densest: BTreeMap::new(),
            burst: Burst::new(2, 1024, 0.5),
            tick0: None,
            next_refresh: i64::MIN,
        }
    }

    fn rebuild_peel(&mut self, spec: &BlockSpec) {
        let once = spec.once;
        self.mult.clear();
        for &(_, a, c, x) in &self.edges {
            let m = self.mult.entry((a, c)).or_default();
            m.0 += 1;
            m.1 += x;
        }
        let mut w: BTreeMap<(u32, u32), f64> = self
            .mult
            .iter()
            .map(|(&(a, c), &(_, x))| ((2 * a, 2 * c + 1), if once { 1.0 } else { x }))
            .collect();
        // Pending edges are not in the peel yet (a restore keeps them pending).
        for &(a, c, x) in &self.pending {
            if let Some(v) = w.get_mut(&(a, c)) {
                *v -= x;
            }
        }
        if spec.weighting != Weighting::Plain {
            // The incremental peel keeps fixed weights: only plain-weighted graphs use it.
            self.peel = IncrementalPeel::new();
            return;
        }
        let edges: Vec<(u32, u32, f64)> = w
            .into_iter()
            .filter(|&(_, v)| v > 0.0)
            .map(|((a, c), v)| (a, c, v))
            .collect();
        self.peel = IncrementalPeel::from_edges(&edges);
    }

    /// Inserts the pending edges and reads the densest set (plain weighting only: the incremental peel
    /// keeps fixed edge weights, and the log and sqrt weightings change with a column's degree).
    fn flush(&mut self, spec: &BlockSpec, confirmed: &BTreeMap<u32, i64>) {
        self.densest.clear();
        if spec.weighting != Weighting::Plain {
            self.pending.clear();
            return;
        }
        self.peel.insert_batch(&self.pending);
        self.pending.clear();
        let d = self.peel.densest();
        let rows: Vec<u32> = d
            .nodes
            .iter()
            .filter(|&&x| x % 2 == 0)
            .map(|&x| x / 2)
            .collect();
        let cols = d.nodes.len() - rows.len();
        let density = d.density / spec.scale;
        if spec.qualifies(density, rows.len(), cols) {
            let conf = rows.iter().filter(|a| confirmed.contains_key(a)).count() as u32;
            for &a in &rows {
                self.densest.insert(a, (density, rows.len() as u32, conf));
            }
        }
    }
}

/// The graph's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphState {
    accounts: Interner,
    values: Interner,
    links: Vec<Link>,
    #[serde(skip)]
    link_idx: HashMap<(u32, u32), u32>,
    /// Per value: live accounts sharing it, and the first of them (the value's cluster).
    sharers: Vec<u32>,
    first: Vec<u32>,
    /// Union-find over accounts: parent, and per root the cluster's accounts, values, confirmed.
    parent: Vec<u32>,
    size: Vec<u32>,
    vals: Vec<u32>,
    conf: Vec<u32>,
    /// Per root and link field (`nf` per root): the cluster's distinct values of that field.
    fvals: Vec<u32>,
    nf: usize,
    /// Per value: its link field.
    value_field: Vec<u16>,
    #[serde(skip)]
    scratch: String,
    /// Confirmed accounts and when.
    confirmed: BTreeMap<u32, i64>,
    blocks: Vec<BlockState>,
    next_refresh: i64,
    next_rebuild: i64,
    /// Findings not yet handed out, and what was reported: key → (size reported, time).
    findings: Vec<Finding>,
    reported: BTreeMap<String, (usize, i64)>,
    found: u64,
}

impl GraphState {
    pub fn new(spec: &GraphSpec) -> GraphState {
        GraphState {
            accounts: Interner::default(),
            values: Interner::default(),
            links: Vec::new(),
            link_idx: HashMap::new(),
            sharers: Vec::new(),
            first: Vec::new(),
            parent: Vec::new(),
            size: Vec::new(),
            vals: Vec::new(),
            conf: Vec::new(),
            fvals: Vec::new(),
            nf: spec.link_fields.len(),
            value_field: Vec::new(),
            scratch: String::new(),
            confirmed: BTreeMap::new(),
            blocks: spec.blocks.iter().map(|_| BlockState::new()).collect(),
            next_refresh: i64::MIN,
            next_rebuild: i64::MIN,
            findings: Vec::new(),
            reported: BTreeMap::new(),
            found: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::stages::encode_state(self)
    }

    pub fn decode(spec: &GraphSpec, bytes: &[u8]) -> Result<GraphState, String> {
        let mut g: GraphState = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
        if g.blocks.len() != spec.blocks.len() {
            return Err("graph block declarations changed".into());
        }
        g.accounts.reindex();
        g.values.reindex();
        g.link_idx = g
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| ((l.a, l.v), i as u32))
            .collect();
        for (b, bs) in g.blocks.iter_mut().zip(&spec.blocks) {
            b.cols.reindex();
            // The peel of the live edges without the pending ones, which stay pending: as it was.
            b.rebuild_peel(bs);
        }
        Ok(g)
    }

    /// A digest of everything future answers depend on: the whole serialized state (ordered maps and
    /// vectors only, so the same state gives the same bytes), and each plain block's peeling order.
    pub fn digest(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.encode());
        for b in &self.blocks {
            h.update(&bincode::serialize(&b.peel.order()).unwrap_or_default());
        }
        h.digest()
    }

    /// Findings since the last call.
    pub fn take_findings(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.findings)
    }

    /// The linked-accounts view around `account`: the accounts reachable through shared values
    /// (devices, cards, addresses, payout accounts) within `hops` account-to-account steps, at most
    /// `max_nodes` nodes (then `truncated`). One pass over the links per hop: for the console, not the
    /// hot path.
    pub fn neighborhood(&self, account: &str, hops: usize, max_nodes: usize) -> Neighborhood {
        let mut out = Neighborhood::default();
        let Some(&start) = self.accounts.ids.get(account) else {
            return out;
        };
        let mut seen_a: BTreeMap<u32, ()> = BTreeMap::new();
        let mut seen_v: BTreeMap<u32, ()> = BTreeMap::new();
        let mut edges: BTreeMap<(u32, u32), i64> = BTreeMap::new();
        seen_a.insert(start, ());
        let mut frontier = vec![start];
        for _ in 0..hops.max(1) {
            if frontier.is_empty() {
                break;
            }
            let fa: std::collections::HashSet<u32> = frontier.iter().copied().collect();
            // Values of the frontier's accounts…
            let mut vals = std::collections::HashSet::new();
            for l in &self.links {
                if fa.contains(&l.a) {
                    vals.insert(l.v);
                    edges.insert((l.a, l.v), l.last);
                }
            }
            // …and every account sharing one of them.
            let mut next = Vec::new();
            for l in &self.links {
                if vals.contains(&l.v) {
                    if seen_a.len() + seen_v.len() >= max_nodes && !seen_a.contains_key(&l.a) {
                        out.truncated = true;
                        continue;
                    }
                    edges.insert((l.a, l.v), l.last);
                    if seen_a.insert(l.a, ()).is_none() {
                        next.push(l.a);
                    }
                }
            }
            for v in vals {
                seen_v.insert(v, ());
            }
            frontier = next;
        }
        out.accounts = seen_a
            .keys()
            .map(|&a| {
                (
                    self.accounts.names[a as usize].clone(),
                    self.confirmed.contains_key(&a),
                )
            })
            .collect();
        out.values = seen_v
            .keys()
            .map(|&v| {
                let shared = self.sharers.get(v as usize).copied().unwrap_or(0);
                (self.values.names[v as usize].clone(), shared)
            })
            .collect();
        out.edges = edges
            .into_iter()
            .filter(|((a, v), _)| seen_a.contains_key(a) && seen_v.contains_key(v))
            .map(|((a, v), last)| {
                (
                    self.accounts.names[a as usize].clone(),
                    self.values.names[v as usize].clone(),
                    last,
                )
            })
            .collect();
        out
    }

    /// Accounts, link edges, block edges: the graph's size.
    pub fn size(&self) -> (usize, usize, usize) {
        (
            self.accounts.names.len(),
            self.links.len(),
            self.blocks.iter().map(|b| b.edges.len()).sum(),
        )
    }

    fn account(&mut self, name: &str) -> u32 {
        let a = self.accounts.id(name);
        if a as usize == self.parent.len() {
            self.parent.push(a);
            self.size.push(1);
            self.vals.push(0);
            self.conf.push(0);
            self.fvals.extend(std::iter::repeat_n(0, self.nf));
        }
        a
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        // The larger cluster's root stays; equal sizes: the lower id.
        let (keep, gone) = if (self.size[ra as usize], rb) > (self.size[rb as usize], ra) {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[gone as usize] = keep;
        self.size[keep as usize] += self.size[gone as usize];
        self.vals[keep as usize] += self.vals[gone as usize];
        self.conf[keep as usize] += self.conf[gone as usize];
        let nf = self.nf;
        for k in 0..nf {
            self.fvals[keep as usize * nf + k] += self.fvals[gone as usize * nf + k];
        }
    }

    /// Adds (or refreshes) the link between account `a` and value `v`.
    fn link(&mut self, spec: &GraphSpec, a: u32, v: u32, t: i64) {
        if let Some(&i) = self.link_idx.get(&(a, v)) {
            let l = &mut self.links[i as usize];
            l.last = l.last.max(t);
            return;
        }
        self.link_idx.insert((a, v), self.links.len() as u32);
        self.links.push(Link { a, v, last: t });
        self.attach(spec, a, v);
    }

    fn attach(&mut self, spec: &GraphSpec, a: u32, v: u32) {
        let max_share = spec.max_share;
        if v as usize >= self.sharers.len() {
            self.sharers.resize(v as usize + 1, 0);
            self.first.resize(v as usize + 1, NO);
        }
        self.sharers[v as usize] += 1;
        if self.sharers[v as usize] as usize > max_share {
            // A hub links nobody (and is no cluster's value), whether or not a rebuild ran since.
            return;
        }
        let f = self.first[v as usize];
        if f == NO {
            self.first[v as usize] = a;
            let r = self.find(a) as usize;
            let field = self.value_field[v as usize] as usize;
            // A text group is no linking value of the cluster's (accounts per value).
            if !spec.text_field[field] {
                self.vals[r] += 1;
            }
            self.fvals[r * self.nf + field] += 1;
        } else {
            self.union(a, f);
        }
    }

    /// Links account `a` to `value` of link field `field` (its key `field:value`, built in a reused
    /// buffer).
    fn link_value(&mut self, spec: &GraphSpec, a: u32, field: u16, value: &str, t: i64) {
        let mut k = std::mem::take(&mut self.scratch);
        k.clear();
        k.push_str(&spec.link_fields[field as usize]);
        k.push(':');
        k.push_str(value);
        let v = self.values.id(&k);
        self.scratch = k;
        if v as usize == self.value_field.len() {
            self.value_field.push(field);
        }
        self.link(spec, a, v, t);
    }

    fn confirm(&mut self, a: u32, t: i64) {
        if self.confirmed.insert(a, t).is_none() {
            let r = self.find(a);
            self.conf[r as usize] += 1;
        }
    }

    /// Applies one accepted event and writes the graph features into `out`.
    pub fn apply(&mut self, spec: &GraphSpec, ev: &Event, out: &mut [Value]) {
        let t = ev.time;
        if t >= self.next_rebuild {
            self.rebuild(spec, t);
            self.next_rebuild = t.saturating_add(spec.rebuild_ms);
        }
        if t >= self.next_refresh {
            self.refresh_clusters(spec, t);
            self.next_refresh = t.saturating_add(spec.refresh_ms);
        }
        for (bi, b) in spec.blocks.iter().enumerate() {
            if t >= self.blocks[bi].next_refresh {
                self.refresh_block(b, bi, t);
                self.blocks[bi].next_refresh = t.saturating_add(b.refresh_ms);
            }
        }
        let ty = ev.ty as usize;
        if let Some(s) = spec.confirm.get(ty).copied().flatten() {
            if let Some(name) = key(&ev.fields[s]) {
                let a = self.account(&name);
                self.confirm(a, t);
            }
        }
        if !spec.account.get(ty).copied().unwrap_or(false) {
            return;
        }
        let Some(actor) = key(&ev.fields[ACTOR_SLOT]) else {
            return;
        };
        let a = self.account(&actor);
        for (slot, field, filter) in &spec.links[ty] {
            if !filter.passes(&ev.fields) {
                continue;
            }
            if let Some(value) = key(&ev.fields[*slot]) {
                self.link_value(spec, a, *field, &value, t);
            }
        }
        // Similarity edges: the text stage, which runs first, wrote each text's group.
        for (slot, field) in &spec.text_links[ty] {
            if let Some(value) = key(&out[*slot]) {
                self.link_value(spec, a, *field, &value, t);
            }
        }
        for (bi, b) in spec.blocks.iter().enumerate() {
            let st = &mut self.blocks[bi];
            if let Some(col) = b.by_type[ty].and_then(|s| key(&ev.fields[s])) {
                let c = st.cols.id(&col);
                // A weight field's value in hundredths (at least one); 1 without a weight field.
                let w = match b.weight_by_type[ty] {
                    Some(s) => ev.fields[s]
                        .as_f64()
                        .filter(|v| v.is_finite())
                        .map_or(1.0, |v| (v * b.scale).round().clamp(1.0, 1e12)),
                    None => 1.0,
                };
                st.edges.push_back((t, a, c, w));
                let m = st.mult.entry((a, c)).or_default();
                m.0 += 1;
                m.1 += w;
                if (!b.once || m.0 == 1) && b.weighting == Weighting::Plain {
                    st.pending.push((2 * a, 2 * c + 1, w));
                }
                if st.pending.len() >= b.batch {
                    st.flush(b, &self.confirmed);
                }
                // MIDAS counts ticks from 1: the first edge's tick is tick 1 (late edges clamp to it).
                let tick = t.div_euclid(b.tick_ms);
                let t0 = *st.tick0.get_or_insert(tick);
                let score = st.burst.score(
                    xxhash_rust::xxh3::xxh3_64(actor.as_bytes()),
                    xxhash_rust::xxh3::xxh3_64(col.as_bytes()),
                    (tick - t0).max(0) + 1,
                );
                out[b.f_burst] = Value::Float(score);
            }
            let m = st.member.get(&a).copied().unwrap_or((0.0, 0, 0));
            let d = st.densest.get(&a).copied().unwrap_or((0.0, 0, 0));
            let (density, rows, conf) = if d.0 > m.0 { d } else { m };
            out[b.f_density] = Value::Float(density);
            out[b.f_rows] = Value::Int(rows as i64);
            out[b.f_rate] = Value::Float(if rows == 0 {
                0.0
            } else {
                conf as f64 / rows as f64
            });
        }
        let r = self.find(a) as usize;
        let (size, vals, conf) = (self.size[r], self.vals[r], self.conf[r]);
        out[spec.f_size] = Value::Int(size as i64);
        out[spec.f_per_value] = Value::Float(size as f64 / vals.max(1) as f64);
        for (k, &f) in spec.f_per_field.iter().enumerate() {
            // Null when the cluster has no value of this field (no device seen: no ratio).
            let d = self.fvals[r * self.nf + k];
            out[f] = if d == 0 {
                Value::Null
            } else {
                Value::Float(size as f64 / d as f64)
            };
        }
        out[spec.f_confirmed] = Value::Int(conf as i64);
        out[spec.f_rate] = Value::Float(conf as f64 / size as f64);
    }

    /// Expiry, hub caps and compaction: every structure rebuilt from what is still live, in a
    /// deterministic order (links and edges in arrival order).
    fn rebuild(&mut self, spec: &GraphSpec, t: i64) {
        let link_cut = t.saturating_sub(spec.window_ms);
        let label_cut = t.saturating_sub(spec.label_ms);
        self.links.retain(|l| l.last >= link_cut);
        self.confirmed.retain(|_, &mut at| at >= label_cut);
        for (b, st) in spec.blocks.iter().zip(&mut self.blocks) {
            // The peel is rebuilt below from every live edge, pending ones included.
            st.pending.clear();
            let cut = t.saturating_sub(b.window_ms);
            while st.edges.front().is_some_and(|e| e.0 < cut) {
                st.edges.pop_front();
            }
        }
        self.reported.retain(|_, (_, at)| *at >= link_cut);
        // New ids: accounts in order of first appearance in links, then block edges, then labels.
        let old_accounts = std::mem::take(&mut self.accounts);
        let old_values = std::mem::take(&mut self.values);
        let mut amap = vec![NO; old_accounts.names.len()];
        let mut vmap = vec![NO; old_values.names.len()];
        let mut acc = Interner::default();
        let mut val = Interner::default();
        let old_field = std::mem::take(&mut self.value_field);
        for l in &mut self.links {
            l.a = remap(&mut amap, &old_accounts, &mut acc, l.a);
            let old_v = l.v as usize;
            l.v = remap(&mut vmap, &old_values, &mut val, l.v);
            if l.v as usize == self.value_field.len() {
                self.value_field.push(old_field[old_v]);
            }
        }
        for st in &mut self.blocks {
            let old_cols = std::mem::take(&mut st.cols);
            let mut cmap = vec![NO; old_cols.names.len()];
            for e in st.edges.iter_mut() {
                e.1 = remap(&mut amap, &old_accounts, &mut acc, e.1);
                e.2 = remap(&mut cmap, &old_cols, &mut st.cols, e.2);
            }
        }
        for (st, b) in self.blocks.iter_mut().zip(&spec.blocks) {
            st.member = st
                .member
                .iter()
                .filter_map(|(a, v)| {
                    amap.get(*a as usize)
                        .filter(|&&n| n != NO)
                        .map(|&n| (n, *v))
                })
                .collect();
            st.rebuild_peel(b);
        }
        let confirmed = std::mem::take(&mut self.confirmed);
        for (a, at) in confirmed {
            let na = remap(&mut amap, &old_accounts, &mut acc, a);
            self.confirmed.insert(na, at);
        }
        // The densest sets of the rebuilt peels (expired edges gone).
        for (st, b) in self.blocks.iter_mut().zip(&spec.blocks) {
            st.flush(b, &self.confirmed);
        }
        self.accounts = acc;
        self.values = val;
        // Clusters from scratch, hubs capped.
        let n = self.accounts.names.len();
        self.parent = (0..n as u32).collect();
        self.size = vec![1; n];
        self.vals = vec![0; n];
        self.conf = vec![0; n];
        self.fvals = vec![0; n * self.nf];
        self.sharers = vec![0; self.values.names.len()];
        for l in &self.links {
            self.sharers[l.v as usize] += 1;
        }
        self.first = vec![NO; self.values.names.len()];
        self.link_idx.clear();
        let links = std::mem::take(&mut self.links);
        for (i, l) in links.iter().enumerate() {
            self.link_idx.insert((l.a, l.v), i as u32);
            let v = l.v as usize;
            if self.sharers[v] as usize > spec.max_share {
                continue;
            }
            if self.first[v] == NO {
                self.first[v] = l.a;
                let r = self.find(l.a) as usize;
                let field = self.value_field[v] as usize;
                if !spec.text_field[field] {
                    self.vals[r] += 1;
                }
                self.fvals[r * self.nf + field] += 1;
            } else {
                let f = self.first[v];
                self.union(l.a, f);
            }
        }
        self.links = links;
        let confirmed: Vec<u32> = self.confirmed.keys().copied().collect();
        for a in confirmed {
            let r = self.find(a);
            self.conf[r as usize] += 1;
        }
    }

    /// Reports new or grown clusters.
    fn refresh_clusters(&mut self, spec: &GraphSpec, t: i64) {
        let when = format_rfc3339(t);
        // Clusters of at least `min_cluster` accounts, in order of their root's id.
        let n = self.accounts.names.len();
        let root: Vec<u32> = (0..n as u32).map(|a| self.find(a)).collect();
        let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for a in 0..n as u32 {
            let r = root[a as usize];
            if self.size[r as usize] as usize >= spec.min_cluster {
                members.entry(r).or_default().push(a);
            }
        }
        let mut objects: HashMap<u32, Vec<u32>> = HashMap::new();
        if !members.is_empty() {
            let mut seen = vec![false; self.values.names.len()];
            for l in &self.links {
                if (self.sharers[l.v as usize] as usize) <= spec.max_share
                    && self.sharers[l.v as usize] > 1
                    && !seen[l.v as usize]
                {
                    let r = root[l.a as usize];
                    if members.contains_key(&r) {
                        seen[l.v as usize] = true;
                        objects.entry(r).or_default().push(l.v);
                    }
                }
            }
        }
        for (r, accs) in &members {
            let objs = objects
                .get(r)
                .map(|o| {
                    o.iter()
                        .map(|&v| self.values.names[v as usize].clone())
                        .collect()
                })
                .unwrap_or_default();
            let density = self.size[*r as usize] as f64 / self.vals[*r as usize].max(1) as f64;
            let confirmed = self.conf[*r as usize] as usize;
            let accounts: Vec<String> = accs
                .iter()
                .map(|&a| self.accounts.names[a as usize].clone())
                .collect();
            self.report(
                t,
                &when,
                "cluster".into(),
                accounts,
                objs,
                density,
                confirmed,
            );
        }
    }

    /// Re-peels one block graph's live window: expiry, several blocks by deflation, findings.
    fn refresh_block(&mut self, b: &BlockSpec, bi: usize, t: i64) {
        let when = format_rfc3339(t);
        {
            let st = &mut self.blocks[bi];
            let cut = t.saturating_sub(b.window_ms);
            while st.edges.front().is_some_and(|e| e.0 < cut) {
                st.edges.pop_front();
            }
            // The peel is rebuilt from every live edge: pending ones (possibly expired) are in it or gone.
            st.pending.clear();
            st.rebuild_peel(b);
            st.flush(b, &self.confirmed);
            st.member.clear();
            if st.edges.is_empty() {
                return;
            }
            // Rows: accounts; columns: this graph's objects, both renumbered densely for the peel.
            let mut rows: HashMap<u32, u32> = HashMap::new();
            let mut row_ids = Vec::new();
            let triples: Vec<(u32, u32, f64)> = st
                .edges
                .iter()
                .map(|&(_, a, c, w)| {
                    let r = *rows.entry(a).or_insert_with(|| {
                        row_ids.push(a);
                        row_ids.len() as u32 - 1
                    });
                    (r, c, w)
                })
                .collect();
            let g = if b.once {
                Bipartite::from_edges(triples.iter().map(|&(r, c, _)| (r, c)))
            } else {
                Bipartite::from_weighted_edges(triples)
            };
            let mut found = Vec::new();
            for mut blk in peel_many(&g, b.weighting, b.blocks) {
                blk.density /= b.scale;
                if !b.qualifies(blk.density, blk.rows.len(), blk.cols.len()) {
                    continue;
                }
                let conf = blk
                    .rows
                    .iter()
                    .filter(|&&r| self.confirmed.contains_key(&row_ids[r as usize]))
                    .count() as u32;
                for &r in &blk.rows {
                    let a = row_ids[r as usize];
                    let e = st.member.entry(a).or_insert((0.0, 0, 0));
                    if blk.density > e.0 {
                        *e = (blk.density, blk.rows.len() as u32, conf);
                    }
                }
                found.push(blk);
            }
            let names: Vec<(Vec<String>, Vec<String>, f64, usize)> = found
                .iter()
                .map(|blk| {
                    let accs: Vec<u32> = blk.rows.iter().map(|&r| row_ids[r as usize]).collect();
                    let confirmed = accs
                        .iter()
                        .filter(|a| self.confirmed.contains_key(a))
                        .count();
                    let mut accounts: Vec<String> = accs
                        .iter()
                        .map(|&a| self.accounts.names[a as usize].clone())
                        .collect();
                    accounts.sort();
                    (
                        accounts,
                        blk.cols
                            .iter()
                            .map(|&c| st.cols.names[c as usize].clone())
                            .collect(),
                        blk.density,
                        confirmed,
                    )
                })
                .collect();
            for (accounts, cols, density, confirmed) in names {
                self.report(
                    t,
                    &when,
                    format!("block:{}", b.name),
                    accounts,
                    cols,
                    density,
                    confirmed,
                );
            }
        }
    }

    /// Records a finding unless the same group was reported at a size at least two-thirds of this one.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        t: i64,
        when: &str,
        detector: String,
        accounts: Vec<String>,
        objects: Vec<String>,
        density: f64,
        confirmed: usize,
    ) {
        let Some(first) = accounts.iter().min() else {
            return;
        };
        // A block is known by its first account and first object (two blocks of one refresh may share
        // an account); a cluster by its first account.
        let k = match objects
            .iter()
            .min()
            .filter(|_| detector.starts_with("block:"))
        {
            Some(o) => format!("{detector}\u{0}{first}\u{0}{o}"),
            None => format!("{detector}\u{0}{first}"),
        };
        if let Some(&(size, _)) = self.reported.get(&k) {
            if accounts.len() * 2 < size * 3 {
                self.reported.insert(k, (size, t));
                return;
            }
        }
        self.reported.insert(k, (accounts.len(), t));
        self.found += 1;
        self.findings.push(Finding {
            id: format!("f-{}", self.found),
            detector,
            time: when.to_string(),
            accounts,
            objects,
            density,
            confirmed,
        });
    }
}

/// The new id of old id `x` (interned in `new` on first use).
fn remap(map: &mut [u32], old: &Interner, new: &mut Interner, x: u32) -> u32 {
    if map[x as usize] == NO {
        map[x as usize] = new.id(&old.names[x as usize]);
    }
    map[x as usize]
}

/// A graph key from a field value: strings and integers; anything else (null) is no key.
/// Borrowed for strings, the common case: no allocation per event.
/// Per event type: whether its actor is an account (a user, not an internal type).
/// A declaration's name (a graph block's, a text entry's): the features are `<prefix>_<name>_…`, so
/// lower-case letters, digits and `_`.
pub(crate) fn check_name(errors: &mut Vec<String>, at: &str, name: &str) {
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
    {
        errors.push(format!("{at}: name: lower-case letters, digits and `_`"));
    }
}

pub(crate) fn account_types(schema: &Schema) -> Vec<bool> {
    schema
        .types
        .iter()
        .map(|t| !t.internal && t.actor_kind == "user")
        .collect()
}

/// The id of event type `name`, or an error (with a suggestion) pushed to `errors`.
pub(crate) fn type_or_error(
    schema: &Schema,
    errors: &mut Vec<String>,
    at: &str,
    name: &str,
) -> Option<usize> {
    let t = schema.type_id(name).map(|t| t as usize);
    if t.is_none() {
        errors.push(format!(
            "{at}: unknown event type `{name}`{}",
            argus_event::schema::did_you_mean(name, schema.public_type_names().into_iter())
        ));
    }
    t
}

/// The slot of `field` on `et` when it is a number (integer, decimal or float), else why not.
pub(crate) fn numeric_slot(
    et: &argus_event::schema::EventType,
    field: &str,
) -> Result<usize, String> {
    match et.slot(field) {
        Some(s)
            if matches!(
                et.fields[s].ty.stored(),
                argus_event::FieldType::Int
                    | argus_event::FieldType::Decimal
                    | argus_event::FieldType::Float
            ) =>
        {
            Ok(s)
        }
        Some(_) => Err(format!("`{}`'s field `{field}` is not a number", et.name)),
        None => Err(format!(
            "`{}` has no field `{field}`{}",
            et.name,
            argus_event::schema::did_you_mean(field, et.input_names())
        )),
    }
}

pub(crate) fn key(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::Str(s) if !s.is_empty() => Some(std::borrow::Cow::Borrowed(s)),
        Value::Int(i) => Some(std::borrow::Cow::Owned(i.to_string())),
        _ => None,
    }
}
