//! `startsWith`, `endsWith`, `contains` on strings (CEL standard).

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::Val;

pub fn defs() -> Vec<FunctionDef> {
    let m = |name, doc, examples, eval| FunctionDef {
        name,
        method: true,
        params: vec![Type::String, Type::String],
        ret: Type::Bool,
        doc,
        examples,
        eval,
    };
    vec![
        m(
            "startsWith",
            "`s.startsWith(prefix)`: whether `s` begins with `prefix`.",
            &[("'order-123'.startsWith('order-')", "true"), ("'abc'.startsWith('b')", "false")],
            |a| Ok(Val::Bool(s(&a[0])?.starts_with(s(&a[1])?))),
        ),
        m(
            "endsWith",
            "`s.endsWith(suffix)`: whether `s` ends with `suffix`, e.g. `event.email_domain.endsWith('.ru')`.",
            &[("'bob@tempmail.com'.endsWith('@tempmail.com')", "true"), ("'abc'.endsWith('b')", "false")],
            |a| Ok(Val::Bool(s(&a[0])?.ends_with(s(&a[1])?))),
        ),
        m(
            "contains",
            "`s.contains(sub)`: whether `sub` occurs in `s`.",
            &[("'headless-chrome'.contains('headless')", "true"), ("'abc'.contains('d')", "false")],
            |a| Ok(Val::Bool(s(&a[0])?.contains(s(&a[1])?))),
        ),
    ]
}
