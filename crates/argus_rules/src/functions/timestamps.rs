//! Timestamp and duration accessors (CEL standard): `t.getFullYear()`, `t.getHours('+08:00')`, …
//! Time zones are `UTC`, fixed offsets, or IANA names from the bundled tz database.

use super::{s, FunctionDef};
use crate::time::{civil_from_days, days_from};
use crate::types::Type;
use crate::value::{EvalError, Val};

const DAY: i64 = 86_400_000;

fn year(t: i64) -> i64 {
    civil_from_days(t.div_euclid(DAY)).0
}
fn month0(t: i64) -> i64 {
    civil_from_days(t.div_euclid(DAY)).1 - 1
}
fn date1(t: i64) -> i64 {
    civil_from_days(t.div_euclid(DAY)).2
}
fn date0(t: i64) -> i64 {
    date1(t) - 1
}
fn weekday(t: i64) -> i64 {
    (t.div_euclid(DAY) + 4).rem_euclid(7)
}
fn yearday(t: i64) -> i64 {
    t.div_euclid(DAY) - days_from(year(t), 1, 1)
}
fn hours(t: i64) -> i64 {
    t.rem_euclid(DAY) / 3_600_000
}
fn minutes(t: i64) -> i64 {
    t.rem_euclid(DAY) / 60_000 % 60
}
fn seconds(t: i64) -> i64 {
    t.rem_euclid(DAY) / 1000 % 60
}
fn millis(t: i64) -> i64 {
    t.rem_euclid(1000)
}

/// Generates, per accessor, the two evaluators (UTC, and with a time-zone argument).
macro_rules! accessors {
    ($(($name:literal, $f:ident, $what:literal, $utc:ident, $tz:ident, $dur_unit:expr)),* $(,)?) => {
        $(
            fn $utc(a: &[Val]) -> Result<Val, EvalError> {
                // A `dyn` receiver may hold a duration: the same accessor names exist for durations.
                if let (Val::Duration(_), Some(unit)) = (&a[0], $dur_unit) {
                    return dur(a, unit);
                }
                Ok(Val::Int($f(time_arg(a, false)?)))
            }
            fn $tz(a: &[Val]) -> Result<Val, EvalError> {
                Ok(Val::Int($f(time_arg(a, true)?)))
            }
        )*
        fn timestamp_defs() -> Vec<FunctionDef> {
            let mut v = Vec::new();
            $(
                let doc = concat!("`t.", $name, "()` / `t.", $name, "(tz)`: the ", $what, " of timestamp `t`, in UTC or in a time zone: a fixed offset such as `'+08:00'` or an IANA name such as `'Europe/Paris'`.");
                v.push(FunctionDef { name: $name, method: true, params: vec![Type::Timestamp], ret: Type::Int, doc, examples: &[], eval: $utc });
                v.push(FunctionDef { name: $name, method: true, params: vec![Type::Timestamp, Type::String], ret: Type::Int, doc, examples: &[], eval: $tz });
            )*
            v
        }
    };
}

accessors!(
    (
        "getFullYear",
        year,
        "year",
        full_year_utc,
        full_year_tz,
        None::<i64>
    ),
    (
        "getMonth",
        month0,
        "month (0 = January)",
        month_utc,
        month_tz,
        None::<i64>
    ),
    (
        "getDate",
        date1,
        "day of the month (from 1)",
        date_utc,
        date_tz,
        None::<i64>
    ),
    (
        "getDayOfMonth",
        date0,
        "day of the month (from 0)",
        day_of_month_utc,
        day_of_month_tz,
        None::<i64>
    ),
    (
        "getDayOfWeek",
        weekday,
        "day of the week (0 = Sunday)",
        weekday_utc,
        weekday_tz,
        None::<i64>
    ),
    (
        "getDayOfYear",
        yearday,
        "day of the year (from 0)",
        yearday_utc,
        yearday_tz,
        None::<i64>
    ),
    (
        "getHours",
        hours,
        "hour",
        hours_utc,
        hours_tz,
        Some(3_600_000)
    ),
    (
        "getMinutes",
        minutes,
        "minute",
        minutes_utc,
        minutes_tz,
        Some(60_000)
    ),
    (
        "getSeconds",
        seconds,
        "second",
        seconds_utc,
        seconds_tz,
        Some(1000)
    ),
    (
        "getMilliseconds",
        millis,
        "millisecond",
        millis_utc,
        millis_tz,
        Some(1)
    ),
);

fn dur_hours(a: &[Val]) -> Result<Val, EvalError> {
    dur(a, 3_600_000)
}
fn dur_minutes(a: &[Val]) -> Result<Val, EvalError> {
    dur(a, 60_000)
}
fn dur_seconds(a: &[Val]) -> Result<Val, EvalError> {
    dur(a, 1000)
}
fn dur_millis(a: &[Val]) -> Result<Val, EvalError> {
    dur(a, 1)
}

pub fn defs() -> Vec<FunctionDef> {
    let mut v = timestamp_defs();
    if let Some(first) = v.first_mut() {
        first.examples = &[
            ("timestamp('2009-02-13T23:31:30Z').getFullYear()", "2009"),
            ("timestamp('2009-02-13T23:31:30Z').getHours('+08:00')", "7"),
        ];
    }
    let doc = "`d.getHours()`, `getMinutes()`, `getSeconds()`: the whole duration in that unit, truncated; `d.getMilliseconds()`: the millisecond part (−999 to 999, with the duration's sign).";
    for (name, eval) in [
        ("getHours", dur_hours as fn(&[Val]) -> _),
        ("getMinutes", dur_minutes),
        ("getSeconds", dur_seconds),
        ("getMilliseconds", dur_millis),
    ] {
        let examples: &'static [(&str, &str)] = if name == "getMinutes" {
            &[("duration('90m').getMinutes()", "90")]
        } else {
            &[]
        };
        v.push(FunctionDef {
            name,
            method: true,
            params: vec![Type::Duration],
            ret: Type::Int,
            doc,
            examples,
            eval,
        });
    }
    v
}

/// Whole hours, minutes or seconds of a duration; for milliseconds, CEL's millisecond component
/// (`duration('123.321s').getMilliseconds()` is 321).
fn dur(a: &[Val], unit: i64) -> Result<Val, EvalError> {
    match a[0] {
        Val::Duration(d) if unit == 1 => Ok(Val::Int(d % 1000)),
        Val::Duration(d) => Ok(Val::Int(d / unit)),
        ref o => Err(EvalError::NoOverload(format!(
            "duration accessor on {}",
            o.type_name()
        ))),
    }
}

/// UTC offset in milliseconds of zone `tz` at UTC instant `t`: `UTC`, a fixed offset (`+08:00`, `-05:30`)
/// or an IANA name (`Europe/Paris`, with daylight saving), from the bundled tz database.
pub fn offset_at(tz: &str, t: i64) -> Result<i64, EvalError> {
    let bad = || {
        EvalError::Invalid(format!("unknown time zone `{tz}` (UTC, a fixed offset like `+08:00`, or an IANA name like `Europe/Paris`)"))
    };
    if tz == "UTC" || tz == "Z" {
        return Ok(0);
    }
    if let Some((sign, rest)) = tz
        .strip_prefix('+')
        .map(|r| (1, r))
        .or_else(|| tz.strip_prefix('-').map(|r| (-1, r)))
        .or_else(|| {
            // CEL also accepts a bare `hh:mm` offset.
            (tz.len() == 5 && tz.as_bytes()[2] == b':').then_some((1, tz))
        })
    {
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        return Ok(sign * (h * 3_600_000 + m * 60_000));
    }
    let zone = jiff::tz::TimeZone::get(tz).map_err(|_| bad())?;
    let ts = jiff::Timestamp::from_millisecond(t).map_err(|_| EvalError::Overflow)?;
    Ok(zone.to_offset(ts).seconds() as i64 * 1000)
}

fn time_arg(a: &[Val], with_tz: bool) -> Result<i64, EvalError> {
    let Val::Time(t) = a[0] else {
        return Err(EvalError::NoOverload(format!(
            "timestamp accessor on {}",
            a[0].type_name()
        )));
    };
    Ok(t + if with_tz { offset_at(s(&a[1])?, t)? } else { 0 })
}
