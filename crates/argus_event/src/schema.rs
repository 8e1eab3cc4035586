//! The event schema: entity kinds, event types and their typed fields.
//!
//! The built-in e-commerce schema (`schema/ecommerce.toml`) is itself configuration; operator files in the
//! same format add entity kinds, event types, fields, aliases and delayed-label columns.

use crate::time::parse_duration;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: field names are short and chosen by the operator, and this lookup runs for every field of
/// every event; SipHash's DoS resistance buys nothing here.
#[derive(Default)]
pub struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Index of an event type in a [`Schema`].
pub type TypeId = u16;

/// The slot of the actor in every event type's field list.
pub const ACTOR_SLOT: usize = 0;

/// Built-in schema source.
pub const BUILTIN_SCHEMA: &str = include_str!("../schema/ecommerce.toml");

/// Operator-facing schema file.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    #[serde(default)]
    pub entities: EntitiesConfig,
    #[serde(default)]
    pub event_types: Vec<EventTypeConfig>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EntitiesConfig {
    #[serde(default)]
    pub kinds: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EventTypeConfig {
    pub name: String,
    pub checkpoint: Option<bool>,
    /// Entity kind of the actor; `user` when absent.
    pub actor: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldConfig>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    #[serde(rename = "type")]
    pub ty: String,
    pub entity: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Pseudonymize at ingest. Defaults to true for email/phone/ip/card_number/address, false otherwise.
    pub pii: Option<bool>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub max_len: Option<usize>,
    /// Declares this column a delayed label: removed from the event and released later (see docs/labels.md).
    pub label: Option<LabelConfig>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    pub name: String,
    /// How long after the event time the label becomes known, e.g. `7d`.
    pub delay: String,
    /// The column's value that means the bad class (fraud, abuse). When declared, the released label's
    /// `value` is 1 for it and 0 for any other value; when not, any non-zero or `true` value is positive.
    pub positive: Option<toml::Value>,
    /// A timestamp field of the same event type giving when this event's label became known (a
    /// conversion time, a chargeback date); `delay` applies when it is empty. Like the label column,
    /// it is taken out of the event: no feature or rule sees it before the release.
    pub known_at: Option<String>,
}

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Id,
    Int,
    Decimal,
    Float,
    Bool,
    Timestamp,
    Email,
    Phone,
    Ip,
    CardNumber,
    Address,
}

impl FieldType {
    pub const ALL: [(&'static str, FieldType); 12] = [
        ("string", FieldType::String),
        ("id", FieldType::Id),
        ("int", FieldType::Int),
        ("decimal", FieldType::Decimal),
        ("float", FieldType::Float),
        ("bool", FieldType::Bool),
        ("timestamp", FieldType::Timestamp),
        ("email", FieldType::Email),
        ("phone", FieldType::Phone),
        ("ip", FieldType::Ip),
        ("card_number", FieldType::CardNumber),
        ("address", FieldType::Address),
    ];

    pub fn parse(s: &str) -> Option<FieldType> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Entity kind implied by the type itself.
    pub fn implied_entity(self) -> Option<&'static str> {
        match self {
            FieldType::Email => Some("email"),
            FieldType::Phone => Some("phone"),
            FieldType::Ip => Some("ip"),
            FieldType::CardNumber => Some("card"),
            FieldType::Address => Some("address"),
            _ => None,
        }
    }

    /// Personal-data types are pseudonymized unless the operator opts out.
    pub fn pii_by_default(self) -> bool {
        self.implied_entity().is_some()
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Decimal | FieldType::Float)
    }

    /// The type of the value stored after ingest (personal data becomes a string token).
    pub fn stored(self) -> FieldType {
        match self {
            FieldType::Email
            | FieldType::Phone
            | FieldType::Ip
            | FieldType::CardNumber
            | FieldType::Address => FieldType::String,
            t => t,
        }
    }
}

/// A non-identifying attribute derived from a personal-data field before it is pseudonymized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    EmailDomain,
    CardBin,
    CardLast4,
    IpPrefix,
    PhonePrefix,
    AddressCity,
    AddressPostcode,
    AddressCountry,
    /// A column of a lookup table's row for the source field's value (see [`crate::lookup`]).
    Lookup {
        table: u16,
        column: u16,
    },
}

impl Derivation {
    pub fn for_type(t: FieldType) -> &'static [(Derivation, &'static str)] {
        match t {
            FieldType::Email => &[(Derivation::EmailDomain, "domain")],
            FieldType::CardNumber => &[
                (Derivation::CardBin, "bin"),
                (Derivation::CardLast4, "last4"),
            ],
            FieldType::Ip => &[(Derivation::IpPrefix, "prefix")],
            FieldType::Phone => &[(Derivation::PhonePrefix, "prefix")],
            FieldType::Address => &[
                (Derivation::AddressCity, "city"),
                (Derivation::AddressPostcode, "postcode"),
                (Derivation::AddressCountry, "country"),
            ],
            _ => &[],
        }
    }
}

/// One field of an event type.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub entity: Option<String>,
    pub required: bool,
    pub pii: bool,
    pub max_len: usize,
    /// `Some(source slot)` for a field computed at ingest from a personal-data field.
    pub derived_from: Option<(usize, Derivation)>,
    /// `Some(label index in the schema)` when this column is a delayed label.
    pub label: Option<usize>,
    pub description: Option<String>,
}

/// A delayed label declared on a column of an event type.
#[derive(Debug, Clone)]
pub struct LabelSpec {
    pub name: String,
    /// The event type carrying the column, and the column's slot there.
    pub source_type: TypeId,
    pub source_slot: usize,
    pub delay_ms: i64,
    /// The synthetic event type `label.<name>` on which the released label arrives.
    pub release_type: TypeId,
    /// The declared `positive` value, as text (`Value`'s display of the column's value is compared
    /// with it); `None`: non-zero or `true` is positive and the value is released as it is.
    pub positive: Option<String>,
    /// The slot of the source type's `known_at` field: the release time when it has a value.
    pub known_at: Option<usize>,
}

/// One event type.
#[derive(Debug, Clone)]
pub struct EventType {
    pub id: TypeId,
    pub name: String,
    pub checkpoint: bool,
    pub actor_kind: String,
    pub description: Option<String>,
    pub fields: Vec<Field>,
    /// Field name and every alias → slot.
    index: HashMap<String, usize, BuildHasherDefault<NameHasher>>,
    /// Synthetic label-release types are produced by the engine only and cannot be ingested.
    pub internal: bool,
}

impl EventType {
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.slot(name).map(|s| &self.fields[s])
    }

    /// Names a user may write in `data` (declared fields and aliases; not the actor or derived fields).
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.index
            .iter()
            .filter(|(_, &s)| s != ACTOR_SLOT && self.fields[s].derived_from.is_none())
            .map(|(n, _)| n.as_str())
    }
}

/// A problem in a schema file, with the path of the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

/// Every problem found while loading schema files.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid schema: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct SchemaErrors(pub Vec<SchemaError>);

/// The compiled schema.
#[derive(Debug, Clone)]
pub struct Schema {
    pub types: Vec<EventType>,
    by_name: HashMap<String, TypeId>,
    pub entity_kinds: BTreeSet<String>,
    pub labels: Vec<LabelSpec>,
}

/// Fields a lookup table adds to every event type that has its `input` field: (new field name, the
/// table's column index) each.
#[derive(Debug, Clone)]
pub struct LookupFields {
    pub table: u16,
    pub name: String,
    pub input: String,
    pub fields: Vec<(String, u16)>,
    /// The value columns' names, for descriptions.
    pub columns: Vec<String>,
}

impl Schema {
    /// The built-in e-commerce schema alone.
    pub fn builtin() -> Schema {
        Schema::load(&[]).expect("the built-in schema is valid (tested)")
    }

    /// Parses a schema file (TOML).
    pub fn parse_config(text: &str) -> Result<SchemaConfig, SchemaErrors> {
        toml::from_str(text).map_err(|e| {
            SchemaErrors(vec![SchemaError {
                path: String::new(),
                message: e.to_string(),
            }])
        })
    }

    /// The built-in schema extended by operator configs, applied in order. Reports every problem at once.
    pub fn load(extensions: &[SchemaConfig]) -> Result<Schema, SchemaErrors> {
        Self::load_with_lookups(extensions, &[])
    }

    /// As [`load`](Self::load), with the fields of lookup tables added to the types that have their
    /// inputs (see [`LookupFields`]).
    pub fn load_with_lookups(
        extensions: &[SchemaConfig],
        lookups: &[LookupFields],
    ) -> Result<Schema, SchemaErrors> {
        let builtin = Self::parse_config(BUILTIN_SCHEMA)?;
        let mut all = vec![builtin];
        all.extend_from_slice(extensions);
        build(&all, lookups)
    }

    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, id: TypeId) -> &EventType {
        &self.types[id as usize]
    }

    pub fn by_name(&self, name: &str) -> Option<&EventType> {
        self.type_id(name).map(|id| self.get(id))
    }

    /// Names of the types a user may send, sorted.
    pub fn public_type_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .types
            .iter()
            .filter(|t| !t.internal)
            .map(|t| t.name.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// A stable fingerprint of the compiled schema (type and field names, types and labels), used to refuse
    /// restoring state under an incompatible schema.
    pub fn fingerprint(&self) -> u64 {
        let mut s = String::new();
        for t in &self.types {
            s.push_str(&t.name);
            for f in &t.fields {
                s.push_str(&format!("|{}:{}:{}", f.name, f.ty.name(), f.pii));
            }
            s.push('\n');
        }
        for l in &self.labels {
            s.push_str(&format!(
                "label {} {} {} {:?} {:?}\n",
                l.name, l.source_type, l.delay_ms, l.positive, l.known_at
            ));
        }
        xxhash_rust::xxh3::xxh3_64(s.as_bytes())
    }
}

impl Schema {
    /// A digest of every definition that affects decoding and the slots rules and features read:
    /// types, fields with all their attributes, aliases, entity kinds and labels. Unlike
    /// [`fingerprint`](Self::fingerprint) (what snapshots depend on), any change to the schema
    /// configuration changes it. Deterministic across loads.
    pub fn definition_digest(&self) -> u64 {
        let mut s = String::new();
        for t in &self.types {
            s.push_str(&format!(
                "{}|{}|{}|{}\n",
                t.name, t.checkpoint, t.actor_kind, t.internal
            ));
            for f in &t.fields {
                s.push_str(&format!("  {f:?}\n"));
            }
            let mut names: Vec<(&String, &usize)> = t.index.iter().collect();
            names.sort();
            s.push_str(&format!("  {names:?}\n"));
        }
        s.push_str(&format!("{:?}\n{:?}", self.entity_kinds, self.labels));
        xxhash_rust::xxh3::xxh3_64(s.as_bytes())
    }
}

struct TypeDraft {
    name: String,
    checkpoint: bool,
    actor: String,
    description: Option<String>,
    fields: BTreeMap<String, (FieldConfig, String)>,
}

/// Adds the fields of each lookup (see [`LookupFields`]) to every public event type that has its
/// input field, after the type's own fields: derived fields that a sender may not set. Refuses an
/// input that no event type has and a field name a type already uses. Runs before the label release
/// types are built, so that they carry the lookup fields too.
fn add_lookup_fields(types: &mut [EventType], lookups: &[LookupFields]) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    for l in lookups {
        let mut found = false;
        // Per new field: the types that already have a field of that name (one error each).
        let mut taken: Vec<(&str, Vec<String>)> = Vec::new();
        for t in types.iter_mut().filter(|t| !t.internal) {
            let Some(src) = t.slot(&l.input) else {
                continue;
            };
            found = true;
            for (name, col) in &l.fields {
                if t.index.contains_key(name) {
                    match taken.iter_mut().find(|(n, _)| n == name) {
                        Some((_, ts)) => ts.push(t.name.clone()),
                        None => taken.push((name, vec![t.name.clone()])),
                    }
                    continue;
                }
                t.index.insert(name.clone(), t.fields.len());
                t.fields.push(Field {
                    name: name.clone(),
                    ty: FieldType::String,
                    entity: None,
                    required: false,
                    pii: false,
                    max_len: 1024,
                    derived_from: Some((
                        src,
                        Derivation::Lookup {
                            table: l.table,
                            column: *col,
                        },
                    )),
                    label: None,
                    description: Some(format!(
                        "Lookup `{}`: column `{}` for `{}`.",
                        l.name,
                        l.columns.get(*col as usize).map_or("?", String::as_str),
                        l.input
                    )),
                });
            }
        }
        for (name, ts) in taken {
            errors.push(err(
                format!("lookups.{}.fields", l.name),
                format!(
                    "`{name}` is already a field of {}; choose another name",
                    ts.iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !found {
            errors.push(err(
                format!("lookups.{}.input", l.name),
                format!("no event type has a field `{}`", l.input),
            ));
        }
    }
    errors
}

fn build(configs: &[SchemaConfig], lookups: &[LookupFields]) -> Result<Schema, SchemaErrors> {
    let mut errors = Vec::new();
    let mut kinds = BTreeSet::new();
    for (ci, c) in configs.iter().enumerate() {
        for (i, k) in c.entities.kinds.iter().enumerate() {
            if !is_snake_ident(k) {
                errors.push(err(
                    format!("file {ci}: entities.kinds[{i}]"),
                    format!("entity kind `{k}` must be snake_case"),
                ));
            }
            kinds.insert(k.clone());
        }
    }
    let mut drafts: Vec<TypeDraft> = Vec::new();
    for (ci, c) in configs.iter().enumerate() {
        for (ti, t) in c.event_types.iter().enumerate() {
            let path = format!("file {ci}: event_types[{ti}] ({})", t.name);
            if !is_type_name(&t.name) {
                errors.push(err(
                    &path,
                    format!(
                        "event type name `{}` must be dotted snake_case, e.g. `order.create`",
                        t.name
                    ),
                ));
            }
            if t.name.starts_with("label.") {
                errors.push(err(
                    &path,
                    "the `label.` prefix is reserved for released delayed labels".into(),
                ));
            }
            let pos = match drafts.iter().position(|d| d.name == t.name) {
                Some(p) => p,
                None => {
                    drafts.push(TypeDraft {
                        name: t.name.clone(),
                        checkpoint: false,
                        actor: "user".into(),
                        description: None,
                        fields: BTreeMap::new(),
                    });
                    drafts.len() - 1
                }
            };
            let d = &mut drafts[pos];
            if let Some(cp) = t.checkpoint {
                d.checkpoint = cp;
            }
            if let Some(a) = &t.actor {
                if !kinds.contains(a) {
                    errors.push(err(format!("{path}.actor"), unknown_kind_msg(a, &kinds)));
                }
                d.actor = a.clone();
            }
            if t.description.is_some() {
                d.description = t.description.clone();
            }
            for (fname, f) in &t.fields {
                d.fields
                    .insert(fname.clone(), (f.clone(), format!("{path}.fields.{fname}")));
            }
        }
    }

    let mut types = Vec::new();
    let mut labels_out = Vec::new();
    let mut label_names: BTreeMap<String, String> = BTreeMap::new();
    // (type idx, slot, name, delay, ty, positive, known_at field)
    type PendingLabelDecl = (
        usize,
        usize,
        String,
        i64,
        FieldType,
        Option<String>,
        Option<String>,
    );
    let mut pending_labels: Vec<PendingLabelDecl> = Vec::new();
    for d in &drafts {
        let id = types.len() as TypeId;
        let mut fields = vec![Field {
            name: "actor".into(),
            ty: FieldType::Id,
            entity: Some(d.actor.clone()),
            required: true,
            pii: false,
            max_len: 256,
            derived_from: None,
            label: None,
            description: Some(format!("The {} who acts.", d.actor)),
        }];
        let mut index: HashMap<String, usize, BuildHasherDefault<NameHasher>> = HashMap::default();
        index.insert("actor".to_string(), ACTOR_SLOT);
        for (fname, (f, path)) in &d.fields {
            if !is_snake_ident(fname) || ["actor", "id", "type", "time"].contains(&fname.as_str()) {
                errors.push(err(path, format!("field name `{fname}` must be snake_case and not `actor`, `id`, `type` or `time` (envelope names)")));
                continue;
            }
            let Some(ty) = FieldType::parse(&f.ty) else {
                let names: Vec<&str> = FieldType::ALL.iter().map(|(n, _)| *n).collect();
                errors.push(err(
                    format!("{path}.type"),
                    format!(
                        "unknown field type `{}`{}",
                        f.ty,
                        did_you_mean(&f.ty, names.iter().copied())
                    ),
                ));
                continue;
            };
            let entity = match (ty, &f.entity) {
                (FieldType::Id, None) => {
                    errors.push(err(
                        format!("{path}.entity"),
                        "an `id` field needs `entity = \"<kind>\"`".into(),
                    ));
                    None
                }
                (_, Some(k)) => {
                    if !kinds.contains(k) {
                        errors.push(err(format!("{path}.entity"), unknown_kind_msg(k, &kinds)));
                    }
                    Some(k.clone())
                }
                (t, None) => t.implied_entity().map(str::to_string),
            };
            let slot = fields.len();
            let mut label = None;
            if let Some(l) = &f.label {
                match parse_duration(&l.delay) {
                    Some(ms) if ms >= 0 => {
                        if let Some(prev) = label_names.insert(l.name.clone(), path.clone()) {
                            errors.push(err(
                                format!("{path}.label.name"),
                                format!("label `{}` is already declared at {prev}", l.name),
                            ));
                        }
                        if !is_snake_ident(&l.name) {
                            errors.push(err(
                                format!("{path}.label.name"),
                                format!("label name `{}` must be snake_case", l.name),
                            ));
                        }
                        label = Some(pending_labels.len());
                        let positive = match (&l.positive, ty) {
                            (None, _) => None,
                            (Some(toml::Value::Integer(i)), FieldType::Int) => Some(i.to_string()),
                            (Some(toml::Value::Boolean(b)), FieldType::Bool) => {
                                Some(u8::from(*b).to_string())
                            }
                            (Some(toml::Value::String(v)), FieldType::String) => Some(v.clone()),
                            (Some(v), t) => {
                                errors.push(err(
                                    format!("{path}.label.positive"),
                                    format!("`{v}` is not a value of this {} column", t.name()),
                                ));
                                None
                            }
                        };
                        pending_labels.push((
                            types.len(),
                            slot,
                            l.name.clone(),
                            ms,
                            ty,
                            positive,
                            l.known_at.clone(),
                        ));
                    }
                    _ => errors.push(err(
                        format!("{path}.label.delay"),
                        format!("invalid duration `{}` (e.g. `7d`, `12h`)", l.delay),
                    )),
                }
                if f.required {
                    errors.push(err(
                        format!("{path}.required"),
                        "a label column cannot be required".into(),
                    ));
                }
            }
            for a in std::iter::once(fname).chain(f.aliases.iter()) {
                if index.insert(a.clone(), slot).is_some() {
                    errors.push(err(
                        path,
                        format!("name or alias `{a}` is used twice in `{}`", d.name),
                    ));
                }
            }
            let pii = f.pii.unwrap_or(ty.pii_by_default());
            fields.push(Field {
                name: fname.clone(),
                ty,
                entity,
                required: f.required,
                pii,
                max_len: f
                    .max_len
                    .unwrap_or(if ty == FieldType::Address { 2048 } else { 1024 }),
                derived_from: None,
                label,
                description: f.description.clone(),
            });
            for (der, suffix) in Derivation::for_type(ty) {
                let dname = format!("{fname}_{suffix}");
                if d.fields.contains_key(&dname) {
                    errors.push(err(
                        path,
                        format!(
                            "field `{dname}` clashes with the attribute derived from `{fname}`"
                        ),
                    ));
                    continue;
                }
                index.insert(dname.clone(), fields.len());
                fields.push(Field {
                    name: dname,
                    ty: FieldType::String,
                    entity: None,
                    required: false,
                    pii: false,
                    max_len: 256,
                    derived_from: Some((slot, *der)),
                    label: None,
                    description: Some(format!("Derived from `{fname}` before pseudonymization.")),
                });
            }
        }
        types.push(EventType {
            id,
            name: d.name.clone(),
            checkpoint: d.checkpoint,
            actor_kind: d.actor.clone(),
            description: d.description.clone(),
            fields,
            index,
            internal: false,
        });
    }

    errors.extend(add_lookup_fields(&mut types, lookups));

    // Synthetic release types: `label.<name>` carries the source event's fields (labels removed), the
    // label `value`, and the source `event_time`.
    for (li, (tidx, slot, name, delay, ty, positive, known_at)) in
        pending_labels.into_iter().enumerate()
    {
        let src = &types[tidx];
        let known_at = match known_at {
            None => None,
            Some(k) => match src.index.get(&k) {
                Some(&s)
                    if src.fields[s].ty == FieldType::Timestamp
                        && src.fields[s].label.is_none() =>
                {
                    Some(s)
                }
                Some(_) => {
                    errors.push(err(
                        format!("label {name}.known_at"),
                        format!(
                            "`{k}` of `{}` must be a timestamp field (not a label)",
                            src.name
                        ),
                    ));
                    None
                }
                None => {
                    errors.push(err(
                        format!("label {name}.known_at"),
                        format!("`{}` has no field `{k}`", src.name),
                    ));
                    None
                }
            },
        };
        let mut fields: Vec<Field> = src
            .fields
            .iter()
            .map(|f| Field {
                required: false,
                label: None,
                derived_from: None,
                ty: f.ty.stored(),
                ..f.clone()
            })
            .collect();
        fields[ACTOR_SLOT].required = true;
        let mut index: HashMap<String, usize, BuildHasherDefault<NameHasher>> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        // With a declared `positive`, the released value is 1 (positive) or 0.
        let value_ty = if positive.is_some() {
            FieldType::Int
        } else {
            ty.stored()
        };
        for (n, t) in [("value", value_ty), ("event_time", FieldType::Timestamp)] {
            if index.contains_key(n) {
                errors.push(err(
                    format!("label {name}"),
                    format!(
                        "source type `{}` has a field `{n}`, which label events reserve",
                        src.name
                    ),
                ));
            }
            index.insert(n.to_string(), fields.len());
            fields.push(Field {
                name: n.into(),
                ty: t,
                entity: None,
                // A label is released only when its column had a value, and always with its time.
                required: true,
                pii: false,
                max_len: 1024,
                derived_from: None,
                label: None,
                description: None,
            });
        }
        let id = types.len() as TypeId;
        let src_name = src.name.clone();
        let actor_kind = src.actor_kind.clone();
        types.push(EventType {
            id,
            name: format!("label.{name}"),
            checkpoint: false,
            actor_kind,
            description: Some(format!(
                "Release of the delayed label `{name}` of `{src_name}`."
            )),
            fields,
            index,
            internal: true,
        });
        labels_out.push(LabelSpec {
            name,
            source_type: tidx as TypeId,
            source_slot: slot,
            delay_ms: delay,
            release_type: id,
            positive,
            known_at,
        });
        debug_assert_eq!(labels_out.len() - 1, li);
    }
    if types.len() > u16::MAX as usize {
        errors.push(err("event_types", "too many event types".into()));
    }
    if !errors.is_empty() {
        return Err(SchemaErrors(errors));
    }
    let by_name = types.iter().map(|t| (t.name.clone(), t.id)).collect();
    Ok(Schema {
        types,
        by_name,
        entity_kinds: kinds,
        labels: labels_out,
    })
}

fn err(path: impl Into<String>, message: String) -> SchemaError {
    SchemaError {
        path: path.into(),
        message,
    }
}

fn unknown_kind_msg(k: &str, kinds: &BTreeSet<String>) -> String {
    format!(
        "unknown entity kind `{k}`{}; declare it under [entities] kinds",
        did_you_mean(k, kinds.iter().map(String::as_str))
    )
}

fn is_snake_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_type_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.split('.').all(is_snake_ident)
}

/// `, did you mean `x`?` for the closest candidate within a small edit distance, or an empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    argus_suggest::closest(word, candidates)
        .map(|c| format!(", did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_has_every_product_event_type() {
        let s = Schema::builtin();
        for t in [
            "account.register",
            "account.login",
            "account.update",
            "coupon.claim",
            "coupon.redeem",
            "cart.add",
            "order.create",
            "payment.attempt",
            "payment.result",
            "refund.request",
            "review.create",
            "item.click",
            "data.access",
            "payout.request",
            "chargeback",
        ] {
            assert!(s.by_name(t).is_some(), "{t}");
        }
        for k in [
            "user",
            "device",
            "ip",
            "card",
            "address",
            "email",
            "phone",
            "seller",
            "item",
            "coupon",
            "payout_account",
        ] {
            assert!(s.entity_kinds.contains(k), "{k}");
        }
        let order = s.by_name("order.create").unwrap();
        assert_eq!(
            order
                .field("email_domain")
                .unwrap()
                .derived_from
                .map(|d| d.1),
            Some(Derivation::EmailDomain)
        );
        assert!(order.field("email").unwrap().pii);
        assert!(!order.field("amount").unwrap().pii);
    }

    #[test]
    fn extension_adds_kinds_fields_aliases_and_labels() {
        let ext = Schema::parse_config(
            r#"
            [entities]
            kinds = ["terminal"]
            [[event_types]]
            name = "payment.attempt"
            [event_types.fields]
            terminal = { type = "id", entity = "terminal", aliases = ["TERMINAL_ID"] }
            fraud = { type = "int", label = { name = "fraud", delay = "7d" } }
            "#,
        )
        .unwrap();
        let s = Schema::load(&[ext]).unwrap();
        let p = s.by_name("payment.attempt").unwrap();
        assert_eq!(p.slot("TERMINAL_ID"), p.slot("terminal"));
        let l = &s.labels[0];
        assert_eq!(l.delay_ms, 7 * crate::time::DAY);
        let rel = s.get(l.release_type);
        assert_eq!(rel.name, "label.fraud");
        assert!(rel.internal && rel.slot("value").is_some() && rel.slot("terminal").is_some());
    }

    #[test]
    fn every_schema_problem_is_reported_with_its_path() {
        let ext = Schema::parse_config(
            r#"
            [[event_types]]
            name = "Bad Name"
            actor = "usr"
            [event_types.fields]
            a = { type = "strng" }
            b = { type = "id" }
            c = { type = "id", entity = "devise" }
            d = { type = "int", label = { name = "x", delay = "soon" } }
            "#,
        )
        .unwrap();
        let e = Schema::load(&[ext]).unwrap_err().0;
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(e.len(), 6, "{text:#?}");
        assert!(text.iter().any(|t| t.contains("did you mean `string`")));
        assert!(text.iter().any(|t| t.contains("did you mean `device`")));
        assert!(text.iter().any(|t| t.contains("did you mean `user`")));
        assert!(text.iter().any(|t| t.contains(".fields.d.label.delay")));
    }
}
