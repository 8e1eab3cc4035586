//! Any text as a rule: lexing, parsing, type checking and compiling never panic; evaluation of what
//! compiles never panics either.
#![no_main]

use argus_rules::{compile, Activation, Env, NoLists, Type, Val};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let mut env = Env::new();
    env.var("event.amount", Type::Double);
    env.var("event.email_domain", Type::String);
    env.var("features.orders_1h", Type::Int);
    env.list("blocked", Type::String);
    if let Ok(p) = compile(src, &env) {
        let vars = [Val::Double(250.0), Val::str("tempmail.com"), Val::Int(3)];
        let _ = p.eval(&Activation { vars: &vars, lists: &NoLists });
        let _ = p.eval_bool(&Activation { vars: &vars, lists: &NoLists });
    }
});
