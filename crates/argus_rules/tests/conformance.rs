//! CEL's official conformance suite (cel-spec testdata, via the npm package `@bufbuild/cel-spec`), run by
//! Argus's own runner over the sections Argus's subset claims. Fetch the data with
//! `scripts/fetch-cel-spec.sh` (CI does); without it the test reports SKIPPED.
//!
//! Per section it counts passes; the counts must not fall below `conformance_baseline.txt` (CI keeps
//! them so). `ARGUS_CONFORMANCE_REPORT=path` writes the per-section table and the failing tests.

use argus_rules::{compile, compile_dynamic, Activation, Env, NoLists, Type, Val};
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The sections of cel-spec's conformance suite that Argus's subset claims.
const CLAIMED: &[&str] = &[
    "basic",
    "comparisons",
    "conversions",
    "fp_math",
    "integer_math",
    "lists",
    "logic",
    "macros",
    "string",
    "timestamps",
];

fn data() -> Option<J> {
    let p = std::env::var_os("ARGUS_CEL_SPEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/cel-spec/conformance.json")
        });
    match std::fs::read(&p) {
        // Present but unreadable is a failure, never a skip.
        Ok(b) => Some(
            serde_json::from_slice(&b)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", p.display())),
        ),
        Err(_) => {
            assert!(
                std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
                "ARGUS_REQUIRE_DATA is set (CI): a missing input is a failure, not a skip"
            );
            eprintln!(
                "SKIPPED: {} not found; run scripts/fetch-cel-spec.sh",
                p.display()
            );
            None
        }
    }
}

/// A conformance value, or `None` for kinds Argus does not support (bytes, maps, messages, types…).
fn value(v: &J) -> Option<Val> {
    let o = v.as_object()?;
    let (k, x) = o.iter().next()?;
    Some(match k.as_str() {
        "int64Value" => Val::Int(
            x.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| x.as_i64())?,
        ),
        "uint64Value" => Val::UInt(
            x.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| x.as_u64())?,
        ),
        "doubleValue" => Val::Double(match x {
            J::String(s) => match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                s => s.parse().ok()?,
            },
            n => n.as_f64()?,
        }),
        "stringValue" => Val::str(x.as_str()?),
        "boolValue" => Val::Bool(x.as_bool()?),
        "nullValue" => Val::Null,
        "listValue" => {
            let items = x
                .get("values")
                .and_then(J::as_array)
                .cloned()
                .unwrap_or_default();
            Val::List(items.iter().map(value).collect::<Option<Vec<_>>>()?.into())
        }
        "bytesValue" => Val::Bytes(base64(x.as_str()?)?.into()),
        "typeValue" => Val::Type(x.as_str()?.into()),
        "mapValue" => {
            let entries = x
                .get("entries")
                .and_then(J::as_array)
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::new();
            for e in &entries {
                out.push((value(e.get("key")?)?, value(e.get("value")?)?));
            }
            Val::Map(out.into())
        }
        "objectValue" => {
            let t = x.get("@type")?.as_str()?;
            let s = x.get("value")?.as_str()?;
            if t.ends_with("google.protobuf.Timestamp") {
                Val::Time(argus_rules::time::parse_rfc3339(s)?)
            } else if t.ends_with("google.protobuf.Duration") {
                Val::Duration(argus_rules::time::parse_duration(s)?)
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

/// Standard base64 (the protobuf JSON encoding of bytes).
fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn decl_type(t: &J) -> Type {
    match t.get("primitive").and_then(J::as_str) {
        Some("INT64") => Type::Int,
        Some("UINT64") => Type::UInt,
        Some("DOUBLE") => Type::Double,
        Some("STRING") => Type::String,
        Some("BOOL") => Type::Bool,
        Some("BYTES") => Type::Bytes,
        _ => match t.get("wellKnown").and_then(J::as_str) {
            Some("TIMESTAMP") => Type::Timestamp,
            Some("DURATION") => Type::Duration,
            _ => match (t.get("listType"), t.get("mapType")) {
                (Some(l), _) => {
                    Type::List(Box::new(l.get("elemType").map_or(Type::Dyn, decl_type)))
                }
                (_, Some(m)) => Type::Map(
                    Box::new(m.get("keyType").map_or(Type::Dyn, decl_type)),
                    Box::new(m.get("valueType").map_or(Type::Dyn, decl_type)),
                ),
                _ => Type::Dyn,
            },
        },
    }
}

fn type_of(v: &Val) -> Type {
    match v {
        Val::Null => Type::Null,
        Val::Bool(_) => Type::Bool,
        Val::Int(_) => Type::Int,
        Val::UInt(_) => Type::UInt,
        Val::Double(_) => Type::Double,
        Val::Str(_) => Type::String,
        Val::Bytes(_) => Type::Bytes,
        Val::Type(_) => Type::TypeT,
        Val::Time(_) => Type::Timestamp,
        Val::Duration(_) => Type::Duration,
        Val::List(_) => Type::List(Box::new(Type::Dyn)),
        Val::Map(_) => Type::Map(Box::new(Type::Dyn), Box::new(Type::Dyn)),
    }
}

/// Same type and same value (NaN equals NaN here: the suite expects NaN results).
fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Double(x), Val::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Val::List(x), Val::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        _ => a == b,
    }
}

/// Runs one test: `Ok(())` passes, `Err(reason)` fails.
fn run(t: &J) -> Result<(), String> {
    let o = &t["original"];
    let expr = o["expr"].as_str().ok_or("no expr")?;
    if o.get("container")
        .and_then(J::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        return Err("containers (proto namespaces) are not supported".into());
    }
    let mut env = Env::new();
    let mut vars: Vec<Val> = Vec::new();
    if let Some(decls) = o.get("typeEnv").and_then(J::as_array) {
        for d in decls {
            if let (Some(name), Some(ty)) = (
                d["name"].as_str(),
                d.get("ident").and_then(|i| i.get("type")),
            ) {
                let i = env.var(name, decl_type(ty));
                if vars.len() <= i {
                    vars.resize(i + 1, Val::Null);
                }
            }
        }
    }
    if let Some(b) = o.get("bindings").and_then(J::as_object) {
        for (name, v) in b {
            let val = v
                .get("value")
                .and_then(value)
                .ok_or("unsupported binding value")?;
            let i = match env.lookup(name) {
                Some((i, _)) => i,
                None => env.var(name, type_of(&val)),
            };
            if vars.len() <= i {
                vars.resize(i + 1, Val::Null);
            }
            vars[i] = val;
        }
    }
    let expect_error = o.get("evalError").is_some();
    vars.resize(env.vars().len(), Val::Null);
    let dynamic = o.get("disableCheck").and_then(J::as_bool) == Some(true);
    let compiled = if dynamic {
        compile_dynamic(expr, &env)
    } else {
        compile(expr, &env)
    };
    let program = match compiled {
        Ok(p) => p,
        Err(d) if expect_error => {
            let _ = d;
            return Ok(());
        }
        Err(d) => return Err(format!("does not compile: {}", d[0].message)),
    };
    if o.get("checkOnly").and_then(J::as_bool) == Some(true) {
        return Ok(());
    }
    let got = program.eval(&Activation {
        vars: &vars,
        lists: &NoLists,
    });
    match (got, o.get("value")) {
        (Err(_), _) if expect_error => Ok(()),
        (Ok(v), _) if expect_error => Err(format!("expected an error, got {v:?}")),
        (Err(e), _) => Err(format!("error: {e}")),
        (Ok(v), Some(want)) => match value(want) {
            Some(w) if same(&v, &w) => Ok(()),
            Some(w) => Err(format!("got {v:?}, want {w:?}")),
            None => Err(format!("expected value of an unsupported kind: {want}")),
        },
        (Ok(v), None) => {
            // No expected value means `true`.
            if v == Val::Bool(true) {
                Ok(())
            } else {
                Err(format!("got {v:?}, want true"))
            }
        }
    }
}

fn walk<'a>(s: &'a J, out: &mut Vec<(String, &'a J)>, path: &str) {
    for t in s.get("tests").and_then(J::as_array).into_iter().flatten() {
        out.push((
            format!("{path}/{}", t["original"]["name"].as_str().unwrap_or("?")),
            t,
        ));
    }
    for sub in s.get("suites").and_then(J::as_array).into_iter().flatten() {
        walk(
            sub,
            out,
            &format!("{path}/{}", sub["name"].as_str().unwrap_or("?")),
        );
    }
}

#[test]
fn cel_conformance_claimed_sections() {
    let Some(d) = data() else { return };
    let baseline: BTreeMap<String, usize> = include_str!("conformance_baseline.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_string(), p.next()?.parse().ok()?))
        })
        .collect();
    let mut table = String::from("| section | tests | passed | failed |\n|---|---:|---:|---:|\n");
    let mut failures = String::new();
    let mut regressions = Vec::new();
    let (mut all, mut ok_all) = (0, 0);
    let mut found: Vec<&str> = Vec::new();
    for section in d["suites"].as_array().into_iter().flatten() {
        let name = section["name"].as_str().unwrap_or("?");
        if !CLAIMED.contains(&name) {
            continue;
        }
        let mut tests = Vec::new();
        walk(section, &mut tests, name);
        assert!(
            !tests.is_empty(),
            "claimed section `{name}` has no test the runner could parse"
        );
        found.push(name);
        let mut passed = 0;
        for (path, t) in &tests {
            // The runner itself must not panic on any test.
            match std::panic::catch_unwind(|| run(t)) {
                Ok(Ok(())) => passed += 1,
                Ok(Err(why)) => {
                    let _ = writeln!(
                        failures,
                        "{path}: `{}` — {why}",
                        t["original"]["expr"].as_str().unwrap_or("")
                    );
                }
                Err(_) => {
                    let _ = writeln!(failures, "{path}: PANIC");
                }
            }
        }
        let _ = writeln!(
            table,
            "| {name} | {} | {passed} | {} |",
            tests.len(),
            tests.len() - passed
        );
        all += tests.len();
        ok_all += passed;
        if let Some(&min) = baseline.get(name) {
            if passed < min {
                regressions.push(format!("{name}: {passed} passed, baseline {min}"));
            }
        }
    }
    let _ = writeln!(
        table,
        "| **all claimed** | {all} | {ok_all} | {} |",
        all - ok_all
    );
    eprintln!("{table}");
    let missing: Vec<&&str> = CLAIMED.iter().filter(|c| !found.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "claimed sections missing from the conformance data: {missing:?}"
    );
    if let Some(p) = std::env::var_os("ARGUS_CONFORMANCE_REPORT") {
        std::fs::write(p, format!("{table}\n## Failing tests\n\n{failures}")).unwrap();
    }
    assert!(
        !failures.contains("PANIC"),
        "the runner panicked:\n{failures}"
    );
    assert!(
        regressions.is_empty(),
        "conformance regressed: {regressions:?}"
    );
}
