//! `same_prefix`: whether two strings share their first `n` characters (phone blocks, BINs, postcodes).

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    vec![FunctionDef {
        name: "same_prefix",
        method: false,
        params: vec![Type::String, Type::String, Type::Int],
        ret: Type::Bool,
        doc: "`same_prefix(a, b, n)`: whether `a` and `b` both have at least `n` characters and agree on the first `n` — e.g. phone numbers from one SIM block, card BINs.",
        examples: &[("same_prefix('+4477009001', '+4477009002', 9)", "true"), ("same_prefix('ab', 'abc', 3)", "false")],
        eval: |a| {
            let n = match a[2] {
                Val::Int(n) if n >= 0 => n as usize,
                _ => return Err(EvalError::Invalid("prefix length must be a non-negative int".into())),
            };
            let (x, y) = (s(&a[0])?, s(&a[1])?);
            let (px, py): (String, String) = (x.chars().take(n).collect(), y.chars().take(n).collect());
            Ok(Val::Bool(px.chars().count() == n && px == py))
        },
    }]
}
