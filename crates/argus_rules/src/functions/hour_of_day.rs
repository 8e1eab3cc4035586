//! `hour_of_day`: the local hour (0–23) of a timestamp, in UTC or a time zone (fixed offset or IANA name).

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    let doc = "`hour_of_day(t)` / `hour_of_day(t, tz)`: the hour of `t` in UTC, or in time zone `tz` — a fixed offset (`'+08:00'`) or an IANA name (`'Europe/Paris'`, daylight saving included).";
    vec![
        FunctionDef {
            name: "hour_of_day",
            method: false,
            params: vec![Type::Timestamp],
            ret: Type::Int,
            doc,
            examples: &[("hour_of_day(timestamp('2026-11-26T23:30:00Z'))", "23")],
            eval: |a| hour(&a[0], 0),
        },
        FunctionDef {
            name: "hour_of_day",
            method: false,
            params: vec![Type::Timestamp, Type::String],
            ret: Type::Int,
            doc,
            examples: &[
                (
                    "hour_of_day(timestamp('2026-11-26T23:30:00Z'), '+08:00')",
                    "7",
                ),
                (
                    "hour_of_day(timestamp('2026-07-01T12:00:00Z'), 'Europe/Paris')",
                    "14",
                ),
                (
                    "hour_of_day(timestamp('2026-01-01T12:00:00Z'), 'Europe/Paris')",
                    "13",
                ),
            ],
            eval: |a| match &a[0] {
                Val::Time(t) => hour(&a[0], super::timestamps::offset_at(s(&a[1])?, *t)?),
                o => Err(EvalError::NoOverload(format!(
                    "hour_of_day({})",
                    o.type_name()
                ))),
            },
        },
    ]
}

fn hour(t: &Val, off: i64) -> Result<Val, EvalError> {
    match t {
        Val::Time(ms) => Ok(Val::Int((ms + off).rem_euclid(86_400_000) / 3_600_000)),
        o => Err(EvalError::NoOverload(format!(
            "hour_of_day({})",
            o.type_name()
        ))),
    }
}
