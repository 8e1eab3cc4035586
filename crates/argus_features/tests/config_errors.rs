//! A feature file with many mistakes reports each of them, with its path and a hint.

use argus_event::Schema;
use argus_features::FeatureSet;

#[test]
fn every_problem_is_reported_at_once() {
    let schema = Schema::builtin();
    let text = r#"
[[features]]
name = "a"
kind = "cuont"
events = ["order.create"]
window = "1h"

[[features]]
name = "b"
kind = "sum"
events = ["order.creat"]
value = "amount"
window = "1h"

[[features]]
name = "c"
kind = "sum"
events = ["order.create"]
value = "currency"
window = "1h"

[[features]]
name = "d"
kind = "count"
events = ["order.create"]
key = ["devise"]
window = "100d"

[[features]]
name = "e"
kind = "avg"
events = ["order.create"]
value = "amount"

[[features]]
name = "f"
kind = "ratio"
numerator = "a"
denominator = "zz"

[[features]]
name = "g"
kind = "count"
events = ["account.login"]
window = "1h"
filter = [{ field = "sucess", op = "==", value = false }]

[[features]]
name = "h"
kind = "count"
events = ["order.create"]
window = "1h"
mode = "bucketed"
buckets = 7
"#;
    let errs = FeatureSet::from_toml(&schema, text).unwrap_err().0;
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let expect = [
        ("features[0] (a).kind", "did you mean `count`"),
        ("features[1] (b).events[0]", "did you mean `order.create`"),
        ("features[2] (c).value", "needs a numeric field"),
        ("features[3] (d).key", "did you mean `device`"),
        ("features[3] (d).window", "1s to 90d"),
        ("features[4] (e).window", "needs `window`"),
        ("features[5] (f).denominator", "unknown feature `zz`"),
        ("features[6] (g).filter", "did you mean `success`"),
        ("features[7] (h).buckets", "divide the window"),
    ];
    for (path, hint) in expect {
        assert!(
            errs.iter()
                .any(|e| e.path == path && e.message.contains(hint)),
            "missing {path} / {hint} in {text:#?}"
        );
    }
}

#[test]
fn a_delayed_label_column_cannot_be_read_directly() {
    let ext = Schema::parse_config(
        r#"
[[event_types]]
name = "payment.attempt"
[event_types.fields]
fraud = { type = "int", label = { name = "fraud", delay = "7d" } }
"#,
    )
    .unwrap();
    let schema = Schema::load(&[ext]).unwrap();
    let errs = FeatureSet::from_toml(
        &schema,
        r#"
[[features]]
name = "leak"
kind = "sum"
events = ["payment.attempt"]
value = "fraud"
window = "7d"
"#,
    )
    .unwrap_err()
    .0;
    assert!(errs[0].message.contains("delayed label"), "{errs:?}");
    // Reading it from the release events is the point-in-time way.
    FeatureSet::from_toml(
        &schema,
        r#"
[[features]]
name = "fraud_rate"
kind = "avg"
events = ["label.fraud"]
value = "value"
window = "7d"
"#,
    )
    .unwrap();
}

#[test]
fn inapplicable_keys_pii_filters_and_mistyped_defaults_are_errors() {
    let schema = Schema::builtin();
    let errs = FeatureSet::from_toml(
        &schema,
        r#"
[[features]]
name = "a"
kind = "hour_of_day"
events = ["order.create"]
window = "1h"

[[features]]
name = "b"
kind = "count"
events = ["order.create"]
window = "1h"
buckets = 6
hours = [0, 6]

[[features]]
name = "c"
kind = "count"
events = ["order.create"]
window = "1h"
filter = [{ field = "email", op = "==", value = "bob@example.com" }]

[[features]]
name = "d"
kind = "avg"
events = ["order.create"]
value = "amount"
window = "1h"
default = "zero"
"#,
    )
    .unwrap_err()
    .0;
    let has = |p: &str, m: &str| errs.iter().any(|e| e.path == p && e.message.contains(m));
    assert!(has("features[0] (a).events", "does not apply"), "{errs:#?}");
    assert!(has("features[0] (a).window", "does not apply"), "{errs:#?}");
    assert!(has("features[1] (b).buckets", "bucketed"), "{errs:#?}");
    assert!(has("features[1] (b).hours", "hour_in_range"), "{errs:#?}");
    assert!(has("features[2] (c).filter", "personal data"), "{errs:#?}");
    assert!(has("features[3] (d).default", "does not fit"), "{errs:#?}");
}
