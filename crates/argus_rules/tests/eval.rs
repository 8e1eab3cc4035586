//! Evaluation: every documented function example, and the language's semantics table.

use argus_rules::{
    compile, compile_condition, Activation, Env, EvalError, ListLookup, NoLists, Type, Val,
};

fn eval(src: &str, env: &Env, vars: &[Val]) -> Result<Val, EvalError> {
    let p = compile(src, env).unwrap_or_else(|d| panic!("{src}: {d:?}"));
    p.eval(&Activation {
        vars,
        lists: &NoLists,
    })
}

#[test]
fn every_function_example_holds() {
    let env = Env::new();
    let mut n = 0;
    for f in &env.functions {
        for (expr, want) in f.examples {
            let got = eval(expr, &env, &[]).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let want = eval(want, &env, &[]).unwrap();
            assert!(
                argus_rules::compile::val_eq(&got, &want),
                "{expr} = {got:?}, documented {want:?}"
            );
            n += 1;
        }
    }
    assert!(n >= 25, "only {n} examples");
}

#[test]
fn semantics_table() {
    let env = Env::new();
    let cases: &[(&str, &str)] = &[
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3"),
        ("-7 % 3", "-1"),
        ("7.0 / 2.0", "3.5"),
        ("1 < 2.5", "true"),
        ("2u == 2", "true"),
        ("'a' + 'b' == 'ab'", "true"),
        ("'abc' < 'abd'", "true"),
        ("[1, 2] + [3] == [1, 2, 3]", "true"),
        ("2 in [1, 2, 3]", "true"),
        ("'x' in ['a', 'b']", "false"),
        ("true ? 1 : 2", "1"),
        ("!false && (true || false)", "true"),
        ("timestamp('2026-01-01T00:00:00Z') + duration('1h') == timestamp('2026-01-01T01:00:00Z')", "true"),
        ("timestamp('2026-01-01T01:00:00Z') - timestamp('2026-01-01T00:00:00Z') == duration('60m')", "true"),
        ("[1, 2, 3][1]", "2"),
        ("-9223372036854775808", "-9223372036854775807 - 1"),
        ("0x10", "16"),
        ("r'\\d' == '\\\\d'", "true"),
        ("'\\u00e9' == 'é'", "true"),
        ("1.0 / 0.0 > 1e308", "true"),
    ];
    for (src, want) in cases {
        let got = eval(src, &env, &[]).unwrap_or_else(|e| panic!("{src}: {e}"));
        let w = eval(want, &env, &[]).unwrap();
        assert!(
            argus_rules::compile::val_eq(&got, &w),
            "{src} = {got:?}, want {w:?}"
        );
    }
    for (src, err) in [
        ("9223372036854775807 + 1", EvalError::Overflow),
        ("1 / 0", EvalError::DivisionByZero),
        ("[1][5]", EvalError::IndexOutOfRange),
    ] {
        assert_eq!(eval(src, &env, &[]), Err(err), "{src}");
    }
}

#[test]
fn absent_fields_are_errors_that_logic_can_absorb() {
    let mut env = Env::new();
    let amount = env.var("event.amount", Type::Double);
    let country = env.var("event.country", Type::String);
    let mut vars = vec![Val::Null; 2];
    vars[amount] = Val::Double(250.0);
    let run = |src: &str, vars: &[Val]| {
        compile_condition(src, &env)
            .unwrap()
            .eval_bool(&Activation {
                vars,
                lists: &NoLists,
            })
    };
    assert_eq!(run("event.amount > 200", &vars), Ok(true));
    assert!(
        matches!(run("event.country == 'FR'", &vars), Err(EvalError::Absent(n)) if n == "event.country")
    );
    assert_eq!(
        run("event.country == 'FR' || event.amount > 200", &vars),
        Ok(true)
    );
    assert_eq!(
        run("event.country == 'FR' && event.amount > 900", &vars),
        Ok(false)
    );
    assert_eq!(run("has(event.country)", &vars), Ok(false));
    assert_eq!(run("event.country == null", &vars), Ok(true));
    assert_eq!(run("event.amount != null", &vars), Ok(true));
    vars[country] = Val::str("FR");
    assert_eq!(run("event.country == 'FR'", &vars), Ok(true));
}

struct Lists;
impl ListLookup for Lists {
    fn contains(&self, list: usize, v: &Val) -> bool {
        list == 0 && *v == Val::str("dev-bad")
    }
}

#[test]
fn value_lists() {
    let mut env = Env::new();
    let device = env.var("event.device", Type::String);
    env.list("blocked_devices", Type::String);
    let p = compile_condition("event.device in @blocked_devices", &env).unwrap();
    let mut vars = vec![Val::Null; 1];
    vars[device] = Val::str("dev-bad");
    assert_eq!(
        p.eval_bool(&Activation {
            vars: &vars,
            lists: &Lists
        }),
        Ok(true)
    );
    vars[device] = Val::str("dev-ok");
    assert_eq!(
        p.eval_bool(&Activation {
            vars: &vars,
            lists: &Lists
        }),
        Ok(false)
    );
    assert_eq!(p.reads, vec![device]);
}
