//! The standard library. One file per function (its overloads, documentation, examples and table tests);
//! registering it is one line in [`all`].

use crate::types::Type;
use crate::value::{EvalError, Val};

mod conversions;
mod distance_km;
mod email_domain;
mod hour_of_day;
mod ip_in_cidr;
mod is_disposable_email;
mod matches;
mod same_prefix;
mod size;
mod strings;
pub(crate) mod timestamps;

/// One overload of a function.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub name: &'static str,
    /// Called as `x.name(args)`: the receiver is the first parameter.
    pub method: bool,
    pub params: Vec<Type>,
    pub ret: Type,
    /// User documentation (rendered into docs/rules/functions.md).
    pub doc: &'static str,
    /// `(expression, expected result)` pairs: documentation and tests at once.
    pub examples: &'static [(&'static str, &'static str)],
    pub eval: fn(&[Val]) -> Result<Val, EvalError>,
}

/// Every function overload.
pub fn all() -> Vec<FunctionDef> {
    let mut v = Vec::new();
    v.extend(strings::defs());
    v.extend(matches::defs());
    v.extend(size::defs());
    v.extend(conversions::defs());
    v.extend(email_domain::defs());
    v.extend(is_disposable_email::defs());
    v.extend(ip_in_cidr::defs());
    v.extend(distance_km::defs());
    v.extend(same_prefix::defs());
    v.extend(hour_of_day::defs());
    v.extend(timestamps::defs());
    v
}

pub(crate) use matches::compile as matches_compile;

pub(crate) fn s(v: &Val) -> Result<&str, EvalError> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Null => Err(EvalError::Absent("string argument".into())),
        o => Err(EvalError::NoOverload(format!(
            "a {} where a string is expected",
            o.type_name()
        ))),
    }
}

pub(crate) fn f(v: &Val) -> Result<f64, EvalError> {
    match v {
        Val::Double(d) => Ok(*d),
        Val::Int(i) => Ok(*i as f64),
        Val::UInt(u) => Ok(*u as f64),
        Val::Null => Err(EvalError::Absent("number argument".into())),
        o => Err(EvalError::NoOverload(format!(
            "a {} where a number is expected",
            o.type_name()
        ))),
    }
}
