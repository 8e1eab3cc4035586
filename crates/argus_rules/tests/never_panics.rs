//! The parser and checker never panic, whatever the input (the fuzz target `rule_parser` goes further).

use argus_rules::{compile, Env, Type};
use proptest::prelude::*;

fn env() -> Env {
    let mut e = Env::new();
    e.var("event.amount", Type::Double);
    e.var("event.email_domain", Type::String);
    e.var("features.orders_1h", Type::Int);
    e.list("blocked", Type::String);
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_text(src in ".{0,80}") {
        let _ = compile(&src, &env());
    }

    #[test]
    fn token_soup(parts in prop::collection::vec(prop::sample::select(vec![
        "event.amount", "features.orders_1h", "event.email_domain", "@blocked", "1", "2.5", "'x'", "\"y\"", "true", "null", "in",
        "(", ")", "[", "]", ",", "?", ":", "+", "-", "*", "/", "%", "!", "==", "!=", "<", ">=", "&&", "||", ".", "size", "endsWith",
        "has", "matches", "'[a-'", "int", "{", "}", "9223372036854775808", "0x", "r'", "'\\u12'",
    ]), 0..40)) {
        let src = parts.join(" ");
        let _ = compile(&src, &env());
        let _ = compile(&parts.concat(), &env());
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let src = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    let errs = compile(&src, &env()).unwrap_err();
    assert_eq!(errs[0].code, "too_deep");
    let bangs = format!("{}true", "!".repeat(5000));
    assert_eq!(compile(&bangs, &env()).unwrap_err()[0].code, "too_deep");
}

fn atoms() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "x > 2.5",
        "x <= 0.0",
        "x * 2.0 + 1.0 > 3.0",
        "x - 1.0 == 0.5",
        "n >= 3",
        "n < -2",
        "n == 0",
        "s == 'a'",
        "s != t",
        "s == t",
        "s in ['a', 'b', 'zz']",
        "n in [1, 2, 3]",
        "s.startsWith('a')",
        "s.endsWith('b')",
        "s.contains('z')",
        "has(s)",
        "s != null",
        "b",
        "!b",
        "true",
        "false",
        "x / 0.0 > 1.0",
        "n / 0 == 1",
        "size(s) > 1",
    ])
    .prop_map(str::to_string)
}

fn condition() -> impl Strategy<Value = String> {
    atoms().prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

fn val_for(choice: u8, ty: &Type) -> argus_rules::Val {
    use argus_rules::Val;
    if choice == 0 {
        return Val::Null;
    }
    match ty {
        Type::Double => Val::Double([0.0, 0.5, 1.0, 2.5, 3.0, -1.0, f64::NAN][choice as usize % 7]),
        Type::Int => Val::Int([0, 1, 3, -5, 2, 100][choice as usize % 6]),
        Type::Bool => Val::Bool(choice.is_multiple_of(2)),
        _ => Val::str(["a", "b", "ab", "zz", ""][choice as usize % 5]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The fast boolean form and the general evaluator agree on every condition: same result, or both err.
    #[test]
    fn fast_form_agrees_with_the_general_evaluator(src in condition(), picks in prop::collection::vec(0u8..8, 5)) {
        let mut env = Env::new();
        let decls = [("x", Type::Double), ("n", Type::Int), ("s", Type::String), ("t", Type::String), ("b", Type::Bool)];
        for (name, ty) in &decls {
            env.var(name, ty.clone());
        }
        let p = compile(&src, &env).unwrap_or_else(|d| panic!("{src}: {d:?}"));
        let vars: Vec<argus_rules::Val> = decls.iter().zip(&picks).map(|((_, ty), c)| val_for(*c, ty)).collect();
        let act = argus_rules::Activation { vars: &vars, lists: &argus_rules::NoLists };
        let general = p.eval(&act);
        let fast = p.eval_bool(&act);
        match general {
            Ok(argus_rules::Val::Bool(b)) => prop_assert_eq!(fast, Ok(b), "{} with {:?}", src, vars),
            _ => prop_assert!(fast.is_err(), "{} with {:?}: general {:?}, fast {:?}", src, vars, general, fast),
        }
    }
}

#[test]
fn long_chains_are_refused_not_a_stack_overflow() {
    let env = env();
    for src in [
        format!("1{} > 0", " + 1".repeat(100_000)),
        format!("true{}", " || true".repeat(100_000)),
        format!("event.amount{}", ".a".repeat(100_000)),
        format!("[1]{}", "[0]".repeat(100_000)),
    ] {
        let errs = compile(&src, &env).unwrap_err();
        assert_eq!(errs[0].code, "too_deep", "{}", &src[..40]);
    }
    // Just under the limit still compiles and evaluates.
    let ok = format!("features.orders_1h{} > 0", " + 1".repeat(250));
    let p = compile(&ok, &env).unwrap();
    let vars = vec![
        argus_rules::Val::Null,
        argus_rules::Val::Null,
        argus_rules::Val::Int(1),
    ];
    assert!(p
        .eval(&argus_rules::Activation {
            vars: &vars,
            lists: &argus_rules::NoLists
        })
        .is_ok());
}

#[test]
fn hostile_literals_are_errors() {
    let env = env();
    assert_eq!(
        compile("9223372036854775808 > 0", &env).unwrap_err()[0].code,
        "syntax_error"
    );
    assert!(compile("-9223372036854775808 < 0", &env).is_ok());
    assert!(compile("'\\x+f' == 'a'", &env).is_err());
    let p = compile("duration('99999999999999999999999999999h1ns')", &env).unwrap();
    assert!(p
        .eval(&argus_rules::Activation {
            vars: &[],
            lists: &argus_rules::NoLists
        })
        .is_err());
    let p = compile("timestamp('2026-02-30T00:00:00Z')", &env).unwrap();
    assert!(p
        .eval(&argus_rules::Activation {
            vars: &[],
            lists: &argus_rules::NoLists
        })
        .is_err());
}
