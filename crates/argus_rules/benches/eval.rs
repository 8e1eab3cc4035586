//! Argus's compiled evaluation against the `cel` crate (cel-rust 0.15), same expressions, same inputs,
//! one process: `cargo bench -p argus_rules`. Figures are quoted in BENCHMARKS.md.

use argus_rules::{compile, Activation, Env, NoLists, Type, Val};
use divan::Bencher;

/// (name, expression) — the CRATES.md sample first.
const EXPRS: &[(&str, &str)] = &[
    ("sample", "amount > 200.0 && country != ip_country && orders_1h >= 3 && email.endsWith('@tempmail.com')"),
    ("arith_cmp", "amount * 2.0 + 10.0 > 500.0"),
    ("in_list", "ip_country in ['RU', 'NG', 'BR', 'VN', 'ID']"),
    ("ternary", "orders_1h > 3 ? amount > 100.0 : amount > 1000.0"),
];

fn argus_env() -> (Env, Vec<Val>) {
    let mut env = Env::new();
    let mut vars = Vec::new();
    for (name, ty, v) in [
        ("amount", Type::Double, Val::Double(250.0)),
        ("country", Type::String, Val::str("FR")),
        ("ip_country", Type::String, Val::str("NG")),
        ("orders_1h", Type::Int, Val::Int(4)),
        ("email", Type::String, Val::str("bob@tempmail.com")),
    ] {
        env.var(name, ty);
        vars.push(v);
    }
    (env, vars)
}

fn cel_context() -> cel::Context<'static, 'static> {
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("amount", 250.0);
    ctx.add_variable_from_value("country", "FR");
    ctx.add_variable_from_value("ip_country", "NG");
    ctx.add_variable_from_value("orders_1h", 4i64);
    ctx.add_variable_from_value("email", "bob@tempmail.com");
    ctx
}

#[divan::bench(args = [0, 1, 2, 3], sample_size = 5000)]
fn argus(bencher: Bencher, i: usize) {
    let (env, vars) = argus_env();
    let p = compile(EXPRS[i].1, &env).expect("compiles");
    assert_eq!(
        p.eval(&Activation {
            vars: &vars,
            lists: &NoLists
        })
        .expect("evaluates"),
        Val::Bool(true)
    );
    bencher.bench_local(|| {
        p.eval_bool(divan::black_box(&Activation {
            vars: &vars,
            lists: &NoLists,
        }))
    });
}

#[divan::bench(args = [0, 1, 2, 3], sample_size = 5000)]
fn cel_crate(bencher: Bencher, i: usize) {
    let ctx = cel_context();
    let p = cel::Program::compile(EXPRS[i].1).expect("cel compiles");
    assert_eq!(
        p.execute(&ctx).expect("cel evaluates"),
        cel::Value::Bool(true)
    );
    bencher.bench_local(|| p.execute(divan::black_box(&ctx)));
}

fn main() {
    divan::main();
}
