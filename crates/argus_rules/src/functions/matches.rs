//! `matches`: RE2-style regular expression search (the `regex` crate; linear time, no backtracking).
//! A constant pattern is compiled once, when the rule is compiled.

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    let doc = "`s.matches(re)` / `matches(s, re)`: whether the regular expression `re` (RE2 syntax) finds a match anywhere in `s`. Anchor with `^…$` for a full match.";
    let ex: &'static [(&str, &str)] = &[
        ("'user123'.matches('^[a-z]+[0-9]{3}$')", "true"),
        ("matches('abc', 'x')", "false"),
    ];
    vec![
        FunctionDef {
            name: "matches",
            method: true,
            params: vec![Type::String, Type::String],
            ret: Type::Bool,
            doc,
            examples: ex,
            eval,
        },
        FunctionDef {
            name: "matches",
            method: false,
            params: vec![Type::String, Type::String],
            ret: Type::Bool,
            doc,
            examples: &[],
            eval,
        },
    ]
}

fn eval(a: &[Val]) -> Result<Val, EvalError> {
    let re = compile(s(&a[1])?)?;
    Ok(Val::Bool(re.is_match(s(&a[0])?)))
}

/// Compiles a pattern with a size limit, so that hostile patterns cannot exhaust memory.
pub fn compile(p: &str) -> Result<regex::Regex, EvalError> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| EvalError::Invalid(format!("invalid regular expression: {e}")))
}
