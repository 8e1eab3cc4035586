//! Event filters of a feature: `filter = [{ field = "success", op = "==", value = false }]`.
//! All conditions must hold. Compiled per event type to slot reads with typed literals.

use argus_event::schema::{did_you_mean, EventType, FieldType};
use argus_event::value::parse_decimal;
use argus_event::Value;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub field: String,
    /// `==`, `!=`, `>`, `>=`, `<`, `<=`, `in`, `not_in`, `exists`, `missing`.
    pub op: String,
    pub value: Option<toml::Value>,
}

impl FilterConfig {
    pub fn canonical(&self) -> String {
        format!(
            "{} {} {}",
            self.field,
            self.op,
            self.value
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_default()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Exists,
    Missing,
}

#[derive(Debug, Clone)]
struct Cond {
    slot: usize,
    op: Op,
    /// Literals, typed like the field; numbers as micro-units in `Value::Dec`.
    lits: Vec<Value>,
}

/// A compiled filter for one event type.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conds: Vec<Cond>,
}

impl Filter {
    /// Slots the filter reads.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.conds.iter().map(|c| c.slot)
    }

    pub fn passes(&self, fields: &[Value]) -> bool {
        self.conds.iter().all(|c| {
            let v = &fields[c.slot];
            match c.op {
                Op::Exists => !v.is_null(),
                Op::Missing => v.is_null(),
                Op::In => c.lits.iter().any(|l| eq(v, l)),
                Op::NotIn => !v.is_null() && !c.lits.iter().any(|l| eq(v, l)),
                Op::Eq => eq(v, &c.lits[0]),
                Op::Ne => !v.is_null() && !eq(v, &c.lits[0]),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => match (num(v), num(&c.lits[0])) {
                    (Some(a), Some(b)) => match c.op {
                        Op::Gt => a > b,
                        Op::Ge => a >= b,
                        Op::Lt => a < b,
                        _ => a <= b,
                    },
                    _ => false,
                },
            }
        })
    }
}

fn num(v: &Value) -> Option<i64> {
    match v {
        Value::Time(t) => Some(*t),
        v => v.as_micros(),
    }
}

fn eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => num(a).is_some() && num(a) == num(b),
    }
}

/// Compiles conditions for one event type; the error names the first problem.
pub fn compile_filter(et: &EventType, conds: &[FilterConfig]) -> Result<Filter, String> {
    let mut out = Vec::new();
    for c in conds {
        let Some(slot) = et.slot(&c.field) else {
            return Err(format!(
                "`{}` has no field `{}`{}",
                et.name,
                c.field,
                did_you_mean(&c.field, et.fields.iter().map(|f| f.name.as_str()))
            ));
        };
        let field = &et.fields[slot];
        if field.label.is_some() {
            return Err(format!(
                "`{}` is a delayed label of `{}`; it is not known when the event arrives",
                c.field, et.name
            ));
        }
        let op = match c.op.as_str() {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "in" => Op::In,
            "not_in" => Op::NotIn,
            "exists" => Op::Exists,
            "missing" => Op::Missing,
            o => {
                return Err(format!(
                    "unknown filter op `{o}` (==, !=, >, >=, <, <=, in, not_in, exists, missing)"
                ))
            }
        };
        if field.pii && !matches!(op, Op::Exists | Op::Missing) {
            let derived: Vec<String> = et
                .fields
                .iter()
                .filter(|d| d.derived_from.is_some_and(|(src, _)| src == slot))
                .map(|d| format!("`{}`", d.name))
                .collect();
            let hint = if derived.is_empty() {
                String::new()
            } else {
                format!("; filter on {} instead", derived.join(" or "))
            };
            return Err(format!("`{}` is personal data, stored as a keyed-hash token, so a literal never matches it{hint}", c.field));
        }
        let ty = field.ty.stored();
        let lits = match (op, &c.value) {
            (Op::Exists | Op::Missing, None) => vec![],
            (Op::Exists | Op::Missing, Some(_)) => {
                return Err(format!("`{}` takes no value", c.op))
            }
            (_, None) => {
                return Err(format!(
                    "filter on `{}` with `{}` needs a value",
                    c.field, c.op
                ))
            }
            (Op::In | Op::NotIn, Some(toml::Value::Array(a))) => a
                .iter()
                .map(|v| literal(ty, v, &c.field))
                .collect::<Result<_, _>>()?,
            (Op::In | Op::NotIn, Some(_)) => return Err(format!("`{}` needs a list value", c.op)),
            (_, Some(v)) => vec![literal(ty, v, &c.field)?],
        };
        if matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le)
            && !(ty.is_numeric() || ty == FieldType::Timestamp)
        {
            return Err(format!(
                "`{}` compares numbers, but `{}` is {}",
                c.op,
                c.field,
                ty.name()
            ));
        }
        out.push(Cond { slot, op, lits });
    }
    Ok(Filter { conds: out })
}

fn literal(ty: FieldType, v: &toml::Value, field: &str) -> Result<Value, String> {
    let bad = || format!("filter value {v} does not fit `{field}` ({})", ty.name());
    Ok(match (ty, v) {
        (FieldType::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (FieldType::Int | FieldType::Decimal | FieldType::Float, toml::Value::Integer(i)) => {
            Value::Int(*i)
        }
        (FieldType::Int | FieldType::Decimal | FieldType::Float, toml::Value::Float(f)) => {
            Value::Float(*f)
        }
        (FieldType::Decimal, toml::Value::String(s)) => {
            Value::Dec(parse_decimal(s).ok_or_else(bad)?)
        }
        (FieldType::Timestamp, toml::Value::String(s)) => {
            Value::Time(argus_event::time::parse_datetime(s).ok_or_else(bad)?)
        }
        (FieldType::String | FieldType::Id, toml::Value::String(s)) => {
            Value::Str(s.as_str().into())
        }
        (FieldType::String | FieldType::Id, toml::Value::Integer(i)) => {
            Value::Str(i.to_string().into())
        }
        _ => return Err(bad()),
    })
}
