//! The decoder never panics, whatever it is given (the cargo-fuzz targets in fuzz/ go further; this runs
//! in CI on every commit).

use argus_event::{Decoder, Pseudonymizer, Schema};
use proptest::prelude::*;
use std::sync::Arc;

fn decoder() -> Decoder {
    Decoder::new(Arc::new(Schema::builtin()), Pseudonymizer::new(b"prop"))
}

/// JSON values biased towards event shapes.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        "[a-z0-9@.:+ -]{0,40}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "2026-11-26T10:00:00Z",
            "2018-04-01 00:00:31",
            "0",
            "99999999999999999",
            "4111 1111 1111 1111",
            "10.0.0.1",
            "::1",
            "a@b.c",
            "+44 7700 900001",
            "12.345678901",
            "1e400",
            "-0.0",
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "type",
                    "time",
                    "actor",
                    "data",
                    "amount",
                    "email",
                    "card",
                    "ip",
                    "order",
                    "shipping_address",
                    "city",
                    "line1",
                    "success",
                    "x",
                ])
                .prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn type_names() -> Vec<String> {
    Schema::builtin()
        .public_type_names()
        .into_iter()
        .map(str::to_string)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decoder().decode_bytes(&bytes);
    }

    #[test]
    fn arbitrary_json(v in json(), ty in prop::sample::select(type_names())) {
        let d = decoder();
        let _ = d.decode_json(&v);
        // The same value as the `data` of a well-formed envelope.
        let env = serde_json::json!({"id": "e", "type": ty, "time": "2026-11-26T10:00:00Z", "actor": "u", "data": v});
        let _ = d.decode_json(&env);
    }

    #[test]
    fn arbitrary_csv_text(cells in prop::collection::vec(".{0,30}", 0..12)) {
        let d = decoder();
        for ty in 0..d.schema.types.len() as u16 {
            let et = d.schema.get(ty);
            let fields: Vec<(usize, &str, &str)> =
                cells.iter().enumerate().filter(|(i, _)| *i < et.fields.len()).map(|(i, c)| (i, "col", c.as_str())).collect();
            let _ = d.decode_text(ty, cells.first().map_or("", |s| s), cells.get(1).map_or("", |s| s), &fields);
        }
    }
}
