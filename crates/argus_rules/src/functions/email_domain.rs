//! `email_domain`: the domain of an email address, lower-cased.

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::Val;

pub fn defs() -> Vec<FunctionDef> {
    vec![FunctionDef {
        name: "email_domain",
        method: false,
        params: vec![Type::String],
        ret: Type::String,
        doc: "`email_domain(s)`: the part after the last `@`, lower-cased; `''` when there is none. Emails are pseudonymized at ingest, so rules usually read the derived `event.email_domain` instead; this serves emails kept in clear (`pii = false`) and list values.",
        examples: &[("email_domain('Bob@Mail.Example')", "'mail.example'"), ("email_domain('nobody')", "''")],
        eval: |a| Ok(Val::str(&s(&a[0])?.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default())),
    }]
}
