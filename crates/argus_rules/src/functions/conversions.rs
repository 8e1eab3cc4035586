//! Type conversions: `int`, `uint`, `double`, `string`, `timestamp`, `duration` (CEL standard).

use super::FunctionDef;
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    let mut v = Vec::new();
    let mut add = |name: &'static str,
                   from: Type,
                   to: Type,
                   doc: &'static str,
                   examples: &'static [(&'static str, &'static str)]| {
        v.push(FunctionDef {
            name,
            method: false,
            params: vec![from],
            ret: to,
            doc,
            examples,
            eval: convert_to(name),
        });
    };
    add(
        "int",
        Type::Int,
        Type::Int,
        "`int(x)`: to a 64-bit integer (doubles truncate toward zero; out of range is an error).",
        &[("int(2.9)", "2"), ("int('42')", "42")],
    );
    add("int", Type::UInt, Type::Int, "", &[]);
    add("int", Type::Double, Type::Int, "", &[]);
    add("int", Type::String, Type::Int, "", &[]);
    add("int", Type::Timestamp, Type::Int, "", &[]);
    add(
        "uint",
        Type::UInt,
        Type::UInt,
        "`uint(x)`: to an unsigned integer.",
        &[("uint(7)", "7u")],
    );
    add("uint", Type::Int, Type::UInt, "", &[]);
    add("uint", Type::Double, Type::UInt, "", &[]);
    add("uint", Type::String, Type::UInt, "", &[]);
    add(
        "double",
        Type::Double,
        Type::Double,
        "`double(x)`: to a double.",
        &[("double(3)", "3.0")],
    );
    add("double", Type::Int, Type::Double, "", &[]);
    add("double", Type::UInt, Type::Double, "", &[]);
    add("double", Type::String, Type::Double, "", &[]);
    add(
        "string",
        Type::String,
        Type::String,
        "`string(x)`: to a string.",
        &[("string(12)", "'12'")],
    );
    add("string", Type::Int, Type::String, "", &[]);
    add("string", Type::UInt, Type::String, "", &[]);
    add("string", Type::Double, Type::String, "", &[]);
    add("string", Type::Bool, Type::String, "", &[]);
    add("string", Type::Timestamp, Type::String, "", &[]);
    add("string", Type::Bytes, Type::String, "", &[]);
    add(
        "bytes",
        Type::String,
        Type::Bytes,
        "`bytes(s)`: the UTF-8 bytes of a string.",
        &[("size(bytes('é'))", "2")],
    );
    add("bytes", Type::Bytes, Type::Bytes, "", &[]);
    add("string", Type::Duration, Type::String, "", &[]);
    add(
        "timestamp",
        Type::String,
        Type::Timestamp,
        "`timestamp('2026-11-26T10:00:00Z')`: an RFC 3339 time (millisecond precision).",
        &[(
            "timestamp('1970-01-01T00:00:01Z') == timestamp('1970-01-01T00:00:01.000Z')",
            "true",
        )],
    );
    add("timestamp", Type::Int, Type::Timestamp, "", &[]);
    add("timestamp", Type::Timestamp, Type::Timestamp, "", &[]);
    add("duration", Type::Duration, Type::Duration, "", &[]);
    add("duration", Type::String, Type::Duration, "`duration('1h30m')`: a duration; units `h`, `m`, `s`, `ms`, with an optional sign and decimals (`1.5h`).", &[("duration('90m') == duration('1h30m')", "true")]);
    add(
        "bool",
        Type::Bool,
        Type::Bool,
        "`bool(x)`: `true`/`false` strings to booleans.",
        &[("bool('true')", "true")],
    );
    add("bool", Type::String, Type::Bool, "", &[]);
    v
}

fn convert_to(name: &'static str) -> fn(&[Val]) -> Result<Val, EvalError> {
    match name {
        "int" => to_int,
        "uint" => to_uint,
        "double" => to_double,
        "string" => to_string,
        "timestamp" => to_timestamp,
        "duration" => to_duration,
        "bytes" => to_bytes,
        _ => to_bool,
    }
}

fn range() -> EvalError {
    EvalError::Invalid("conversion out of range".into())
}

fn to_int(a: &[Val]) -> Result<Val, EvalError> {
    Ok(Val::Int(match &a[0] {
        Val::Int(i) => *i,
        Val::UInt(u) => i64::try_from(*u).map_err(|_| range())?,
        Val::Double(d)
            if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18 =>
        {
            d.trunc() as i64
        }
        Val::Double(_) => return Err(range()),
        Val::Str(s) => s
            .parse()
            .map_err(|_| EvalError::Invalid(format!("`{s}` is not an integer")))?,
        Val::Time(t) => t.div_euclid(1000),
        o => return Err(EvalError::NoOverload(format!("int({})", o.type_name()))),
    }))
}

fn to_uint(a: &[Val]) -> Result<Val, EvalError> {
    Ok(Val::UInt(match &a[0] {
        Val::UInt(u) => *u,
        Val::Int(i) => u64::try_from(*i).map_err(|_| range())?,
        Val::Double(d) if d.is_finite() && *d > -1.0 && *d < 1.844_674_407_370_955_2e19 => {
            d.trunc() as u64
        }
        Val::Double(_) => return Err(range()),
        Val::Str(s) => s
            .parse()
            .map_err(|_| EvalError::Invalid(format!("`{s}` is not an unsigned integer")))?,
        o => return Err(EvalError::NoOverload(format!("uint({})", o.type_name()))),
    }))
}

fn to_double(a: &[Val]) -> Result<Val, EvalError> {
    Ok(Val::Double(match &a[0] {
        Val::Double(d) => *d,
        Val::Int(i) => *i as f64,
        Val::UInt(u) => *u as f64,
        Val::Str(s) => s
            .parse()
            .map_err(|_| EvalError::Invalid(format!("`{s}` is not a number")))?,
        o => return Err(EvalError::NoOverload(format!("double({})", o.type_name()))),
    }))
}

fn to_string(a: &[Val]) -> Result<Val, EvalError> {
    Ok(Val::str(&match &a[0] {
        Val::Str(s) => s.to_string(),
        Val::Int(i) => i.to_string(),
        Val::UInt(u) => u.to_string(),
        Val::Double(d) => format!("{d}"),
        Val::Bool(b) => b.to_string(),
        Val::Time(t) => crate::time::format_rfc3339(*t),
        Val::Bytes(b) => std::str::from_utf8(b)
            .map_err(|_| EvalError::Invalid("bytes are not valid UTF-8".into()))?
            .to_string(),
        Val::Duration(d) => crate::time::format_duration(*d),
        o => return Err(EvalError::NoOverload(format!("string({})", o.type_name()))),
    }))
}

fn to_timestamp(a: &[Val]) -> Result<Val, EvalError> {
    match &a[0] {
        Val::Time(t) => Ok(Val::Time(*t)),
        Val::Int(secs) => secs
            .checked_mul(1000)
            .filter(|t| (crate::time::MIN_TIME..=crate::time::MAX_TIME).contains(t))
            .map(Val::Time)
            .ok_or_else(range),
        Val::Str(s) => crate::time::parse_rfc3339(s)
            .map(Val::Time)
            .ok_or_else(|| EvalError::Invalid(format!("`{s}` is not an RFC 3339 time"))),
        o => Err(EvalError::NoOverload(format!(
            "timestamp({})",
            o.type_name()
        ))),
    }
}

fn to_duration(a: &[Val]) -> Result<Val, EvalError> {
    match &a[0] {
        Val::Duration(d) => Ok(Val::Duration(*d)),
        Val::Str(s) => crate::time::parse_duration(s)
            .map(Val::Duration)
            .ok_or_else(|| EvalError::Invalid(format!("`{s}` is not a duration"))),
        o => Err(EvalError::NoOverload(format!(
            "duration({})",
            o.type_name()
        ))),
    }
}

fn to_bytes(a: &[Val]) -> Result<Val, EvalError> {
    match &a[0] {
        Val::Bytes(b) => Ok(Val::Bytes(b.clone())),
        Val::Str(s) => Ok(Val::Bytes(s.as_bytes().into())),
        o => Err(EvalError::NoOverload(format!("bytes({})", o.type_name()))),
    }
}

fn to_bool(a: &[Val]) -> Result<Val, EvalError> {
    match &a[0] {
        Val::Bool(b) => Ok(Val::Bool(*b)),
        Val::Str(s) => match s.as_ref() {
            "true" | "True" | "TRUE" | "t" | "1" => Ok(Val::Bool(true)),
            "false" | "False" | "FALSE" | "f" | "0" => Ok(Val::Bool(false)),
            _ => Err(EvalError::Invalid(format!("`{s}` is not a boolean"))),
        },
        o => Err(EvalError::NoOverload(format!("bool({})", o.type_name()))),
    }
}
