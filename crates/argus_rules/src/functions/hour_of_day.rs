//! `hour_of_day`: the local hour (0–23) of a timestamp at a fixed UTC offset.

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    let doc = "`hour_of_day(t)` / `hour_of_day(t, '+08:00')`: the hour of `t` in UTC or at a fixed offset. Named time zones (with daylight saving) are not supported yet.";
    vec![
        FunctionDef { name: "hour_of_day", method: false, params: vec![Type::Timestamp], ret: Type::Int, doc, examples: &[("hour_of_day(timestamp('2026-11-26T23:30:00Z'))", "23")], eval: |a| hour(&a[0], 0) },
        FunctionDef {
            name: "hour_of_day",
            method: false,
            params: vec![Type::Timestamp, Type::String],
            ret: Type::Int,
            doc,
            examples: &[("hour_of_day(timestamp('2026-11-26T23:30:00Z'), '+08:00')", "7")],
            eval: |a| hour(&a[0], offset(s(&a[1])?)?),
        },
    ]
}

fn hour(t: &Val, off: i64) -> Result<Val, EvalError> {
    match t {
        Val::Time(ms) => Ok(Val::Int((ms + off).rem_euclid(86_400_000) / 3_600_000)),
        o => Err(EvalError::NoOverload(format!("hour_of_day({})", o.type_name()))),
    }
}

fn offset(s: &str) -> Result<i64, EvalError> {
    let bad = || EvalError::Invalid(format!("`{s}` is not an offset like `+08:00`"));
    if s == "Z" || s == "UTC" {
        return Ok(0);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3_600_000 + m * 60_000))
}
