//! `ip_in_cidr`: whether an IP address (or the network of a prefix such as `10.1.2.0/24`) lies in a CIDR block.

use super::{s, FunctionDef};
use crate::types::Type;
use crate::value::{EvalError, Val};
use std::net::IpAddr;

pub fn defs() -> Vec<FunctionDef> {
    vec![FunctionDef {
        name: "ip_in_cidr",
        method: false,
        params: vec![Type::String, Type::String],
        ret: Type::Bool,
        doc: "`ip_in_cidr(ip, cidr)`: whether `ip` is inside `cidr` (IPv4 or IPv6). `ip` may itself be a prefix (`event.ip_prefix`, derived at ingest), whose network address is tested. An address of the other family is outside; a malformed address or block is an error.",
        examples: &[("ip_in_cidr('10.1.2.3', '10.0.0.0/8')", "true"), ("ip_in_cidr('10.1.2.0/24', '10.1.0.0/16')", "true"), ("ip_in_cidr('2001:db8::1', '2001:db8::/32')", "true"), ("ip_in_cidr('192.168.1.1', '10.0.0.0/8')", "false")],
        eval: |a| {
            let ip = parse_ip(s(&a[0])?.split('/').next().unwrap_or(""))?;
            let (net, len) = s(&a[1])?.split_once('/').ok_or_else(|| EvalError::Invalid("CIDR block needs a `/length`".into()))?;
            let net = parse_ip(net)?;
            let len: u32 = len.parse().map_err(|_| EvalError::Invalid("bad prefix length".into()))?;
            Ok(Val::Bool(match (ip, net) {
                (IpAddr::V4(i), IpAddr::V4(n)) if len <= 32 => {
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    (u32::from(i) & mask) == (u32::from(n) & mask)
                }
                (IpAddr::V6(i), IpAddr::V6(n)) if len <= 128 => {
                    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
                    (u128::from(i) & mask) == (u128::from(n) & mask)
                }
                (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => return Err(EvalError::Invalid("prefix length too long".into())),
                _ => false,
            }))
        },
    }]
}

fn parse_ip(t: &str) -> Result<IpAddr, EvalError> {
    t.trim()
        .parse()
        .map_err(|_| EvalError::Invalid(format!("`{t}` is not an IP address")))
}
