//! Decoding and validating events: JSON envelopes and text records (CSV) become typed [`Event`]s.
//! Every problem is reported with its JSON path; nothing is half-applied because decoding has no effects.

use crate::privacy::{self, Personal, Pseudonymizer};
use crate::schema::{did_you_mean, Derivation, EventType, FieldType, Schema, TypeId, ACTOR_SLOT};
use crate::time::parse_datetime;
use crate::value::{parse_decimal, Value, DEC_SCALE};
use crate::Event;
use serde::Serialize;
use std::sync::Arc;

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer of the offending value, e.g. `/data/amount`.
    pub path: String,
    /// Stable machine-readable code.
    pub code: &'static str,
    pub message: String,
}

/// An event that was refused, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("invalid event: {}", .errors.iter().map(|e| format!("{} ({}): {}", e.path, e.code, e.message)).collect::<Vec<_>>().join("; "))]
pub struct Rejection {
    pub errors: Vec<FieldError>,
}

impl Rejection {
    fn one(path: &str, code: &'static str, message: String) -> Self {
        Rejection {
            errors: vec![FieldError {
                path: path.into(),
                code,
                message,
            }],
        }
    }
    /// Code of the first problem (the error code of the whole rejection).
    pub fn code(&self) -> &'static str {
        self.errors.first().map_or("invalid_event", |e| e.code)
    }
}

/// Where a raw value came from; rendered as a JSON pointer only when there is an error.
#[derive(Debug, Clone, Copy)]
pub enum PathSrc<'a> {
    Actor,
    Data(&'a str),
    Column(&'a str),
}

impl PathSrc<'_> {
    pub fn render(self) -> String {
        match self {
            PathSrc::Actor => "/actor".into(),
            PathSrc::Data(k) => format!("/data/{}", escape(k)),
            PathSrc::Column(c) => format!("/{}", escape(c)),
        }
    }
}

/// Size limits applied while decoding.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_id_len: usize,
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_id_len: 128,
            max_fields: 256,
        }
    }
}

/// Where a decoder hands each personal value it tokenizes, `(kind, normalized value, token)`: the
/// server's vault keeps the value encrypted for a reveal with a reason.
pub type TokenSink = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// Validates raw input against the schema and pseudonymizes personal data.
#[derive(Clone)]
pub struct Decoder {
    pub schema: Arc<Schema>,
    pseudo: Pseudonymizer,
    pub limits: Limits,
    /// The lookup tables' contents (shared by clones; a reload swaps them).
    pub lookups: crate::lookup::LookupCell,
    sink: Option<TokenSink>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("schema", &self.schema)
            .field("limits", &self.limits)
            .field("sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

/// A raw field value: JSON from the API, or text from a CSV column.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Json(&'a serde_json::Value),
    Text(&'a str),
}

impl Decoder {
    pub fn new(schema: Arc<Schema>, pseudo: Pseudonymizer) -> Self {
        Decoder {
            schema,
            pseudo,
            limits: Limits::default(),
            lookups: crate::lookup::LookupCell::default(),
            sink: None,
        }
    }

    /// This decoder handing every personal value it tokenizes to `sink`.
    pub fn with_token_sink(mut self, sink: TokenSink) -> Self {
        self.sink = Some(sink);
        self
    }

    fn token(&self, kind: &str, value: &str) -> String {
        let t = self.pseudo.token(kind, value);
        if let Some(s) = &self.sink {
            s(kind, value, &t);
        }
        t
    }

    /// This decoder reading its lookup fields from `cell`.
    pub fn with_lookups(mut self, cell: crate::lookup::LookupCell) -> Self {
        self.lookups = cell;
        self
    }

    /// `column` of the row of lookup `table` that `input` matches (null when none does).
    fn lookup(tables: &crate::lookup::Lookups, table: u16, column: u16, input: &str) -> Value {
        tables
            .tables
            .get(table as usize)
            .and_then(|t| t.find(input))
            .and_then(|row| row.get(column as usize))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Decodes one JSON document.
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<Event, Rejection> {
        let v = parse_json(bytes).map_err(|e| match e {
            JsonInputError::Invalid(e) => {
                Rejection::one("", "invalid_json", format!("not valid JSON: {e}"))
            }
            JsonInputError::DuplicateKey(path) => Rejection::one(
                &path,
                "duplicate_key",
                format!("the key at `{path}` appears twice in the same object"),
            ),
        })?;
        self.decode_json(&v)
    }

    /// Decodes an event envelope `{"id","type","time","actor","data":{…}}`.
    pub fn decode_json(&self, v: &serde_json::Value) -> Result<Event, Rejection> {
        let Some(obj) = v.as_object() else {
            return Err(Rejection::one(
                "",
                "invalid_event",
                "an event must be a JSON object".into(),
            ));
        };
        let mut errors = Vec::new();
        for k in obj.keys() {
            if !["id", "type", "time", "actor", "data"].contains(&k.as_str()) {
                errors.push(fe(
                    format!("/{}", escape(k)),
                    "unknown_field",
                    format!(
                        "unknown envelope key `{k}`{}; fields go under `data`",
                        did_you_mean(k, ["id", "type", "time", "actor", "data"].into_iter())
                    ),
                ));
            }
        }
        let id = match obj.get("id") {
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                errors.push(fe(
                    "/id".into(),
                    "wrong_type",
                    "`id` must be a string".into(),
                ));
                None
            }
            None => {
                errors.push(fe(
                    "/id".into(),
                    "missing_field",
                    "`id` is required (it is the idempotency key)".into(),
                ));
                None
            }
        };
        let ty = match obj.get("type") {
            Some(serde_json::Value::String(s)) => match self.type_for(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            Some(_) => {
                errors.push(fe(
                    "/type".into(),
                    "wrong_type",
                    "`type` must be a string".into(),
                ));
                None
            }
            None => {
                errors.push(fe(
                    "/type".into(),
                    "missing_field",
                    "`type` is required".into(),
                ));
                None
            }
        };
        let time = match obj.get("time") {
            Some(t) => match parse_time(Raw::Json(t)) {
                Ok(ms) => Some(ms),
                Err(m) => {
                    errors.push(fe("/time".into(), "invalid_time", m));
                    None
                }
            },
            None => {
                errors.push(fe(
                    "/time".into(),
                    "missing_field",
                    "`time` is required (RFC 3339 or epoch milliseconds)".into(),
                ));
                None
            }
        };
        let actor = obj.get("actor");
        let empty = serde_json::Map::new();
        let data = match obj.get("data") {
            Some(serde_json::Value::Object(m)) => m,
            Some(serde_json::Value::Null) | None => &empty,
            Some(_) => {
                errors.push(fe(
                    "/data".into(),
                    "wrong_type",
                    "`data` must be an object".into(),
                ));
                &empty
            }
        };
        let Some(ty) = ty else {
            return Err(Rejection { errors });
        };
        let et = self.schema.get(ty);
        let mut raw: Vec<(usize, Raw<'_>, PathSrc<'_>)> = Vec::with_capacity(data.len() + 1);
        match actor {
            Some(a) => raw.push((ACTOR_SLOT, Raw::Json(a), PathSrc::Actor)),
            None => errors.push(fe(
                "/actor".into(),
                "missing_field",
                format!("`actor` (a {} id) is required", et.actor_kind),
            )),
        }
        if data.len() > self.limits.max_fields {
            errors.push(fe(
                "/data".into(),
                "too_many_fields",
                format!("at most {} fields", self.limits.max_fields),
            ));
        }
        for (k, v) in data {
            let path = || PathSrc::Data(k).render();
            match et.slot(k) {
                Some(s) if s != ACTOR_SLOT && et.fields[s].derived_from.is_none() => {
                    if raw.iter().any(|(rs, _, _)| *rs == s) {
                        errors.push(fe(
                            path(),
                            "duplicate_field",
                            format!("`{k}` is given twice (name and alias)"),
                        ));
                    } else {
                        raw.push((s, Raw::Json(v), PathSrc::Data(k)));
                    }
                }
                Some(_) => errors.push(fe(
                    path(),
                    "unknown_field",
                    format!("`{k}` is computed by Argus and cannot be sent"),
                )),
                None => errors.push(fe(
                    path(),
                    "unknown_field",
                    format!(
                        "`{}` has no field `{k}`{}",
                        et.name,
                        did_you_mean(k, et.input_names())
                    ),
                )),
            }
        }
        self.finish(et, id.unwrap_or(""), time.unwrap_or(0), &raw, errors)
    }

    /// Resolves an event type name for ingestion.
    pub fn type_for(&self, name: &str) -> Result<TypeId, FieldError> {
        match self.schema.type_id(name) {
            Some(t) if !self.schema.get(t).internal => Ok(t),
            Some(_) => Err(fe(
                "/type".into(),
                "unknown_event_type",
                format!("`{name}` is produced by Argus itself and cannot be sent"),
            )),
            None => Err(fe(
                "/type".into(),
                "unknown_event_type",
                format!(
                    "unknown event type `{name}`{}",
                    did_you_mean(name, self.schema.public_type_names().into_iter())
                ),
            )),
        }
    }

    /// Decodes a record given as text columns (CSV). `fields` pairs a slot with its raw text; empty text is
    /// absent. Paths in errors name the column.
    pub fn decode_text(
        &self,
        ty: TypeId,
        id: &str,
        time: &str,
        fields: &[(usize, &str, &str)],
    ) -> Result<Event, Rejection> {
        let et = self.schema.get(ty);
        let mut errors = Vec::new();
        let t = match parse_time(Raw::Text(time)) {
            Ok(ms) => ms,
            Err(m) => {
                errors.push(fe("/time".into(), "invalid_time", m));
                0
            }
        };
        let raw: Vec<(usize, Raw<'_>, PathSrc<'_>)> = fields
            .iter()
            .filter(|(_, _, v)| !v.is_empty())
            .map(|(s, col, v)| (*s, Raw::Text(v), PathSrc::Column(col)))
            .collect();
        self.finish(et, id, t, &raw, errors)
    }

    fn finish(
        &self,
        et: &EventType,
        id: &str,
        time: i64,
        raw: &[(usize, Raw<'_>, PathSrc<'_>)],
        mut errors: Vec<FieldError>,
    ) -> Result<Event, Rejection> {
        if id.is_empty() && !errors.iter().any(|e| e.path == "/id") {
            errors.push(fe(
                "/id".into(),
                "invalid_value",
                "`id` must not be empty".into(),
            ));
        } else if id.len() > self.limits.max_id_len {
            errors.push(fe(
                "/id".into(),
                "too_long",
                format!("`id` is longer than {} bytes", self.limits.max_id_len),
            ));
        } else if id.chars().any(char::is_control) {
            errors.push(fe(
                "/id".into(),
                "invalid_value",
                "`id` contains control characters".into(),
            ));
        }
        let mut fields = vec![Value::Null; et.fields.len()];
        for (slot, rv, path) in raw {
            self.field_into(et, *slot, *rv, *path, &mut fields, &mut errors);
        }
        // Lookups on fields that are not personal data (those were looked up before tokenizing),
        // derived attributes such as `card_bin` included.
        let mut tables = None;
        for (ds, df) in et.fields.iter().enumerate() {
            if let Some((src, Derivation::Lookup { table, column })) = df.derived_from {
                // Personal data was looked up before it was tokenized (in `field_into`).
                if et.fields[src].ty.pii_by_default() || et.fields[src].pii {
                    continue;
                }
                let input = match &fields[src] {
                    Value::Null => continue,
                    Value::Str(s) => s.to_string(),
                    v => v.to_string(),
                };
                let t = tables.get_or_insert_with(|| self.lookups.current());
                fields[ds] = Self::lookup(t, table, column, &input);
            }
        }
        for (s, f) in et.fields.iter().enumerate() {
            if f.required && fields[s].is_null() {
                // A value that was given but failed to parse is already reported at its own path.
                let given = raw
                    .iter()
                    .find(|(rs, _, _)| *rs == s)
                    .map(|(_, _, p)| p.render());
                if given
                    .as_ref()
                    .is_some_and(|p| errors.iter().any(|e| &e.path == p))
                {
                    continue;
                }
                let path = given.unwrap_or_else(|| {
                    if s == ACTOR_SLOT {
                        "/actor".to_string()
                    } else {
                        format!("/data/{}", escape(&f.name))
                    }
                });
                errors.push(fe(
                    path,
                    "missing_field",
                    format!(
                        "`{}` is required for `{}` and must not be null",
                        f.name, et.name
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Rejection { errors });
        }
        Ok(Event {
            id: id.into(),
            ty: et.id,
            time,
            fields,
        })
    }

    /// Parses one raw value into `fields[slot]` of an event of type `et` (with its derived fields):
    /// validation, normalization and pseudonymization exactly as for a whole event.
    fn field_into(
        &self,
        et: &EventType,
        slot: usize,
        rv: Raw<'_>,
        path: PathSrc<'_>,
        fields: &mut [Value],
        errors: &mut Vec<FieldError>,
    ) {
        let f = &et.fields[slot];
        match self.parse_field(f.ty, f.max_len, rv) {
            Ok((v, personal)) => {
                if v.is_null() {
                    return;
                }
                if let Some(p) = personal {
                    // Personal data: normalize, derive, then tokenize (or keep, when pii = false).
                    match privacy::normalize(f.ty, &p) {
                        Ok(norm) => {
                            let mut tables = None;
                            for (ds, df) in et.fields.iter().enumerate() {
                                if let Some((src, d)) = df.derived_from {
                                    if src != slot {
                                        continue;
                                    }
                                    if let Derivation::Lookup { table, column } = d {
                                        // From the value before it is pseudonymized.
                                        let t =
                                            tables.get_or_insert_with(|| self.lookups.current());
                                        fields[ds] = Self::lookup(t, table, column, &norm);
                                    } else if let Some(x) = privacy::derive(d, &norm, &p) {
                                        fields[ds] = Value::Str(x.into());
                                    }
                                }
                            }
                            let kind = f.entity.as_deref().unwrap_or(f.ty.name());
                            fields[slot] = Value::Str(
                                if f.pii { self.token(kind, &norm) } else { norm }.into(),
                            );
                        }
                        Err(m) => errors.push(fe(path.render(), "invalid_value", m)),
                    }
                } else if f.pii {
                    let kind = f.entity.as_deref().unwrap_or("value");
                    let s = v.to_string();
                    // Lookups on it read the value before it is tokenized.
                    let mut tables = None;
                    for (ds, df) in et.fields.iter().enumerate() {
                        if let Some((src, Derivation::Lookup { table, column })) = df.derived_from {
                            if src == slot {
                                let t = tables.get_or_insert_with(|| self.lookups.current());
                                fields[ds] = Self::lookup(t, table, column, s.trim());
                            }
                        }
                    }
                    fields[slot] = Value::Str(self.token(kind, s.trim()).into());
                } else {
                    fields[slot] = v;
                }
            }
            Err((code, m)) => {
                // Never repeat personal data in an error message.
                let m = if f.pii && code == "invalid_value" {
                    format!(
                        "invalid {} value (not repeated: personal data)",
                        f.ty.name()
                    )
                } else {
                    m
                };
                errors.push(fe(path.render(), code, m))
            }
        }
    }

    /// The stored value of one field given as text (an id typed into the entity API, a list item):
    /// validated, normalized and pseudonymized as the same field of an event would be.
    pub fn field_value(
        &self,
        et: &EventType,
        slot: usize,
        text: &str,
    ) -> Result<Value, FieldError> {
        self.field_value_raw(et, slot, Raw::Text(text))
    }

    /// [`field_value`](Self::field_value) of a JSON value as an event would carry it (an address
    /// as an object: its token differs from that of the same address as one string).
    pub fn field_value_json(
        &self,
        et: &EventType,
        slot: usize,
        v: &serde_json::Value,
    ) -> Result<Value, FieldError> {
        self.field_value_raw(et, slot, Raw::Json(v))
    }

    fn field_value_raw(&self, et: &EventType, slot: usize, raw: Raw) -> Result<Value, FieldError> {
        let mut fields = vec![Value::Null; et.fields.len()];
        let mut errors = Vec::new();
        self.field_into(
            et,
            slot,
            raw,
            PathSrc::Column(&et.fields[slot].name),
            &mut fields,
            &mut errors,
        );
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut fields[slot])),
        }
    }

    /// Parses a raw value as `ty`. Personal-data types return the raw parts for normalization.
    fn parse_field(
        &self,
        ty: FieldType,
        max_len: usize,
        raw: Raw<'_>,
    ) -> Result<(Value, Option<Personal>), (&'static str, String)> {
        use serde_json::Value as J;
        let too_long = |s: &str| s.len() > max_len;
        if let Raw::Json(J::Null) = raw {
            return Ok((Value::Null, None));
        }
        let wrong = |want: &str| ("wrong_type", format!("expected {want}"));
        let v = match ty {
            FieldType::String
            | FieldType::Id
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Ip
            | FieldType::CardNumber => {
                // Borrowed where it can be: one allocation per value (the `Value::Str`), not two.
                let s: std::borrow::Cow<'_, str> = match raw {
                    Raw::Json(J::String(s)) => s.as_str().into(),
                    Raw::Json(J::Number(n))
                        if ty == FieldType::Id && (n.is_i64() || n.is_u64()) =>
                    {
                        n.to_string().into()
                    }
                    Raw::Text(t) => t.into(),
                    _ => {
                        return Err(wrong(if ty == FieldType::Id {
                            "a string or integer id"
                        } else {
                            "a string"
                        }))
                    }
                };
                if too_long(&s) {
                    return Err(("too_long", format!("longer than {max_len} bytes")));
                }
                if ty.implied_entity().is_some() {
                    return Ok((
                        Value::Str("".into()),
                        Some(Personal {
                            text: s.into_owned(),
                            ..Default::default()
                        }),
                    ));
                }
                if ty == FieldType::Id && s.trim().is_empty() {
                    return Err(("invalid_value", "an id must not be empty".into()));
                }
                if ty == FieldType::Id && s.chars().any(char::is_control) {
                    return Err((
                        "invalid_value",
                        "an id must not contain control characters".into(),
                    ));
                }
                Value::Str(std::sync::Arc::from(&*s))
            }
            FieldType::Address => match raw {
                r if text_of(r).is_some_and(|s| !too_long(s)) => {
                    let s = text_of(r).unwrap_or_default();
                    return Ok((
                        Value::Str("".into()),
                        Some(Personal {
                            text: s.to_string(),
                            ..Default::default()
                        }),
                    ));
                }
                Raw::Json(J::Object(m)) => {
                    let mut p = Personal::default();
                    let mut total = 0;
                    for (k, v) in m {
                        let Some(s) = v.as_str() else {
                            return Err((
                                "wrong_type",
                                format!("address part `{k}` must be a string"),
                            ));
                        };
                        total += s.len();
                        match k.as_str() {
                            "line1" | "line2" | "name" => {
                                if !p.text.is_empty() {
                                    p.text.push(' ');
                                }
                                p.text.push_str(s)
                            }
                            "city" => p.city = Some(s.into()),
                            "postcode" => p.postcode = Some(s.into()),
                            "country" => p.country = Some(s.into()),
                            _ => return Err(("unknown_field", format!("unknown address part `{k}` (line1, line2, name, city, postcode, country)"))),
                        }
                    }
                    if total > max_len {
                        return Err(("too_long", format!("longer than {max_len} bytes")));
                    }
                    return Ok((Value::Str("".into()), Some(p)));
                }
                r if text_of(r).is_some() => {
                    return Err(("too_long", format!("longer than {max_len} bytes")))
                }
                _ => return Err(wrong("an address object or string")),
            },
            FieldType::Int => match raw {
                Raw::Json(J::Number(n)) => {
                    Value::Int(n.as_i64().ok_or_else(|| wrong("an integer"))?)
                }
                Raw::Text(t) => Value::Int(t.trim().parse().map_err(|_| wrong("an integer"))?),
                _ => return Err(wrong("an integer")),
            },
            FieldType::Decimal => {
                match raw {
                    Raw::Json(J::Number(n)) => {
                        if let Some(i) = n.as_i64() {
                            Value::Dec(i.checked_mul(DEC_SCALE).ok_or_else(|| {
                                ("invalid_value", "decimal out of range".to_string())
                            })?)
                        } else {
                            let text = n.to_string();
                            Value::Dec(
                                parse_decimal(&text)
                                    .or_else(|| decimal_from_f64(n.as_f64()?))
                                    .ok_or_else(|| {
                                        ("invalid_value", "decimal out of range".to_string())
                                    })?,
                            )
                        }
                    }
                    r if text_of(r).is_some() => {
                        let s = text_of(r).unwrap_or_default();
                        // The message is built only for a refused value (`ok_or_else`: this is on
                        // every decimal's path).
                        Value::Dec(parse_decimal(s).ok_or_else(|| {
                            (
                                "invalid_value",
                                format!("`{}` is not a decimal number", clip(s)),
                            )
                        })?)
                    }
                    _ => return Err(wrong("a decimal number or string")),
                }
            }
            FieldType::Float => match raw {
                Raw::Json(J::Number(n)) => {
                    Value::Float(n.as_f64().ok_or_else(|| wrong("a number"))?)
                }
                Raw::Text(t) => {
                    let f: f64 = t.trim().parse().map_err(|_| wrong("a number"))?;
                    if !f.is_finite() {
                        return Err(("invalid_value", "must be finite".into()));
                    }
                    Value::Float(f)
                }
                _ => return Err(wrong("a number")),
            },
            FieldType::Bool => match raw {
                Raw::Json(J::Bool(b)) => Value::Bool(*b),
                Raw::Text("1" | "true" | "TRUE" | "True") => Value::Bool(true),
                Raw::Text("0" | "false" | "FALSE" | "False") => Value::Bool(false),
                _ => return Err(wrong("a boolean")),
            },
            FieldType::Timestamp => Value::Time(parse_time(raw).map_err(|m| ("invalid_value", m))?),
        };
        Ok((v, None))
    }
}

fn decimal_from_f64(f: f64) -> Option<i64> {
    let m = (f * DEC_SCALE as f64).round();
    (m.is_finite() && m.abs() < 9.0e18).then_some(m as i64)
}

/// Parses an event time: RFC 3339 (or naive, as UTC) string, or integer epoch milliseconds.
/// A value for an error message: at most 64 characters, control characters escaped.
pub fn quote_value(s: &str) -> String {
    let mut q: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        q.push('…');
    }
    q
}

pub fn parse_time(raw: Raw<'_>) -> Result<i64, String> {
    // The message quotes the value: built only when the value is refused (it is on every event's
    // path otherwise).
    let bad = || {
        let shown = match raw {
            Raw::Json(serde_json::Value::String(s)) => quote_value(s),
            Raw::Text(t) => quote_value(t),
            Raw::Json(v) => quote_value(&v.to_string()),
        };
        format!("`{shown}` is not a time: expected RFC 3339 (e.g. 2026-11-26T10:00:00Z) or epoch milliseconds, between 1970 and 9999; a CSV file with another format needs [csv] time_format (e.g. \"%m/%d/%Y %H:%M\")")
    };
    match raw {
        r if text_of(r).is_some() => {
            let s = text_of(r).unwrap_or_default();
            if let Some(ms) = parse_datetime(s) {
                return Ok(ms);
            }
            match s.trim().parse::<i64>() {
                Ok(ms) if (crate::time::MIN_TIME..=crate::time::MAX_TIME).contains(&ms) => Ok(ms),
                _ => Err(bad()),
            }
        }
        Raw::Json(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(ms) if (crate::time::MIN_TIME..=crate::time::MAX_TIME).contains(&ms) => Ok(ms),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn text_of(raw: Raw<'_>) -> Option<&str> {
    match raw {
        Raw::Json(serde_json::Value::String(s)) => Some(s.as_str()),
        Raw::Text(t) => Some(t),
        Raw::Json(_) => None,
    }
}

fn fe(path: String, code: &'static str, message: String) -> FieldError {
    FieldError {
        path,
        code,
        message,
    }
}

/// JSON-pointer escaping of one reference token.
fn escape(k: &str) -> String {
    let clipped: String = k.chars().take(128).collect();
    clipped.replace('~', "~0").replace('/', "~1")
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decoder() -> Decoder {
        Decoder::new(Arc::new(Schema::builtin()), Pseudonymizer::new(b"test"))
    }

    #[test]
    fn decodes_a_valid_order_and_pseudonymizes() {
        let d = decoder();
        let e = d
            .decode_json(&json!({
                "id": "e1", "type": "order.create", "time": "2026-11-26T10:00:00Z", "actor": "u1",
                "data": {"order": "o1", "amount": "19.99", "currency": "EUR", "email": "Bob@Mail.com",
                         "card": "4111111111111111", "ip": "10.0.0.7",
                         "shipping_address": {"line1": "1 Main St", "city": "Paris", "postcode": "75001", "country": "fr"}}
            }))
            .unwrap();
        let t = d.schema.get(e.ty);
        let get = |n: &str| e.fields[t.slot(n).unwrap()].clone();
        assert_eq!(get("amount"), Value::Dec(19_990_000));
        assert_eq!(get("email_domain"), Value::Str("mail.com".into()));
        assert_eq!(get("card_bin"), Value::Str("411111".into()));
        assert_eq!(get("ip_prefix"), Value::Str("10.0.0.0/24".into()));
        assert_eq!(get("shipping_address_city"), Value::Str("paris".into()));
        assert_eq!(get("shipping_address_country"), Value::Str("FR".into()));
        for pii in ["email", "card", "ip", "shipping_address"] {
            assert!(
                get(pii).as_str().unwrap().starts_with("tk_"),
                "{pii} must be a token"
            );
        }
        let dbg = format!("{e:?}");
        assert!(
            !dbg.contains("Bob") && !dbg.contains("4111111111111111") && !dbg.contains("Main St")
        );
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let d = decoder();
        let r = d
            .decode_json(&json!({
                "id": "e1", "type": "order.create", "time": "yesterday", "actor": "u1", "extra": 1,
                "data": {"amount": "ten", "currency": 3, "emial": "x@y.z", "ip": "999.1.1.1"}
            }))
            .unwrap_err();
        let paths: Vec<(&str, &str)> = r.errors.iter().map(|e| (e.path.as_str(), e.code)).collect();
        for want in [
            ("/extra", "unknown_field"),
            ("/time", "invalid_time"),
            ("/data/amount", "invalid_value"),
            ("/data/currency", "wrong_type"),
            ("/data/emial", "unknown_field"),
            ("/data/ip", "invalid_value"),
            ("/data/order", "missing_field"),
        ] {
            assert!(paths.contains(&want), "missing {want:?} in {paths:?}");
        }
        assert!(r
            .errors
            .iter()
            .any(|e| e.message.contains("did you mean `email`")));
    }

    #[test]
    fn unknown_and_internal_types_are_refused() {
        let d = decoder();
        let r = d
            .decode_json(&json!({"id":"1","type":"order.creat","time":0,"actor":"u"}))
            .unwrap_err();
        assert_eq!(r.code(), "unknown_event_type");
        assert!(r.errors[0].message.contains("did you mean `order.create`"));
        assert_eq!(
            d.decode_bytes(b"{not json").unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(d.decode_bytes(b"[1]").unwrap_err().code(), "invalid_event");
    }

    #[test]
    fn text_records_decode_like_json() {
        let d = decoder();
        let t = d.schema.type_id("payment.attempt").unwrap();
        let et = d.schema.get(t);
        let e = d
            .decode_text(
                t,
                "7",
                "2018-04-01 00:00:31",
                &[
                    (0, "CUSTOMER_ID", "596"),
                    (et.slot("amount").unwrap(), "TX_AMOUNT", "57.16"),
                ],
            )
            .unwrap();
        assert_eq!(e.time, 1_522_540_831_000);
        assert_eq!(e.fields[et.slot("amount").unwrap()], Value::Dec(57_160_000));
        let r = d
            .decode_text(
                t,
                "8",
                "x",
                &[(et.slot("amount").unwrap(), "TX_AMOUNT", "abc")],
            )
            .unwrap_err();
        let paths: Vec<&str> = r.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["/time", "/TX_AMOUNT", "/actor"]);
    }
}

/// Why a JSON document was not taken.
#[derive(Debug)]
pub enum JsonInputError {
    Invalid(serde_json::Error),
    /// A key appears twice in one object (its JSON pointer). A JSON parser keeps the last of two equal
    /// keys, another the first: which value counts would change the decision, so it is refused.
    DuplicateKey(String),
}

/// Parses one JSON document, refusing a key repeated in one object, in a single pass (the same
/// document and errors as `serde_json::from_slice`, plus [`JsonInputError::DuplicateKey`]).
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, JsonInputError> {
    let mut dup: Option<Vec<String>> = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::de::DeserializeSeed::deserialize(Unique { dup: &mut dup }, &mut de)
        .and_then(|v| de.end().map(|()| v));
    match (parsed, dup) {
        (_, Some(segments)) => Err(JsonInputError::DuplicateKey(
            segments
                .iter()
                .rev()
                .map(|s| format!("/{}", escape(s)))
                .collect(),
        )),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(JsonInputError::Invalid(e)),
    }
}

/// Builds a `serde_json::Value`. On a repeated key it stops with an error and leaves the path in
/// `dup`, innermost segment first: each level adds its own segment as the error passes through it, so
/// nothing is allocated for paths on the way down.
struct Unique<'a> {
    dup: &'a mut Option<Vec<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(b.into())
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        loop {
            match a.next_element_seed(Unique {
                dup: &mut *self.dup,
            }) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(serde_json::Value::Array(out)),
                Err(e) => {
                    if let Some(path) = self.dup.as_mut() {
                        path.push(out.len().to_string());
                    }
                    return Err(e);
                }
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = a.next_key::<String>()? {
            if out.contains_key(&k) {
                *self.dup = Some(vec![k]);
                return Err(serde::de::Error::custom("duplicate key"));
            }
            match a.next_value_seed(Unique {
                dup: &mut *self.dup,
            }) {
                Ok(v) => {
                    out.insert(k, v);
                }
                Err(e) => {
                    if let Some(path) = self.dup.as_mut() {
                        path.push(k);
                    }
                    return Err(e);
                }
            }
        }
        Ok(serde_json::Value::Object(out))
    }
}

#[cfg(test)]
mod duplicate_key_tests {
    use super::{parse_json, JsonInputError};

    /// The repeated key's pointer, `None` when the document has none.
    fn duplicate_key(bytes: &[u8]) -> Option<String> {
        match parse_json(bytes) {
            Err(JsonInputError::DuplicateKey(path)) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert_eq!(
            duplicate_key(br#"{"id":"a","id":"b"}"#).as_deref(),
            Some("/id")
        );
        assert_eq!(
            duplicate_key(br#"{"data":{"amount":"1.00","x":[{"k":1,"k":2}],"amount":"9.00"}}"#)
                .as_deref(),
            Some("/data/x/0/k")
        );
        assert_eq!(
            duplicate_key(br#"{"a":{"k":1},"b":{"k":1}}"#),
            None,
            "the same key in two objects is fine"
        );
        assert_eq!(
            duplicate_key(br#"[1,{"a\u0062":1,"ab":2}]"#).as_deref(),
            Some("/1/ab"),
            "escapes are compared decoded"
        );
        // The document parsed in the same pass equals serde_json's own parse.
        let doc = br#"{"a":[1,-2,3.5,1e300,"x",null,true,{"b":{}}],"c":18446744073709551615}"#;
        let v = parse_json(doc).expect("valid, no repeated key");
        assert_eq!(v, serde_json::from_slice::<serde_json::Value>(doc).unwrap());
        assert!(matches!(
            parse_json(b"{\"a\":1} x"),
            Err(JsonInputError::Invalid(_))
        ));
    }
}
