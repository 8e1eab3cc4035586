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
