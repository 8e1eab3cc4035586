//! `is_disposable_email`: whether an email (or a bare domain) belongs to a known throw-away provider.

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::Val;

/// A small built-in list of widely used disposable-mail domains; operators extend coverage with a value
/// list (`event.email_domain in @disposable_domains`).
pub const DOMAINS: &[&str] = &[
    "10minutemail.com",
    "discard.email",
    "dispostable.com",
    "emailondeck.com",
    "fakeinbox.com",
    "getnada.com",
    "guerrillamail.com",
    "guerrillamail.net",
    "mailcatch.com",
    "maildrop.cc",
    "mailinator.com",
    "mailnesia.com",
    "mintemail.com",
    "mohmal.com",
    "sharklasers.com",
    "spamgourmet.com",
    "temp-mail.org",
    "tempmail.com",
    "tempmail.net",
    "tempmailo.com",
    "throwawaymail.com",
    "trashmail.com",
    "yopmail.com",
];

pub fn defs() -> Vec<FunctionDef> {
    vec![FunctionDef {
        name: "is_disposable_email",
        method: false,
        params: vec![Type::String],
        ret: Type::Bool,
        doc: "`is_disposable_email(s)`: whether the address or domain `s` (case-insensitive) is a known disposable-mail provider, or a subdomain of one. Use it on `event.email_domain`.",
        examples: &[("is_disposable_email('x@Mailinator.com')", "true"), ("is_disposable_email('eu.yopmail.com')", "true"), ("is_disposable_email('gmail.com')", "false")],
        eval: |a| {
            let v = s(&a[0])?.to_ascii_lowercase();
            let d = v.rsplit_once('@').map_or(v.as_str(), |(_, d)| d);
            Ok(Val::Bool(DOMAINS.iter().any(|x| d == *x || d.strip_suffix(x).is_some_and(|p| p.ends_with('.')))))
        },
    }]
}
