//! Lookup tables (P3.2): exact keys (a card BIN, from CSV; a device, from Parquet) and IP ranges
//! (from CSV, on the address before it is pseudonymized) become event fields that features key on,
//! rules read and the graph links on; bad tables and declarations are refused with the reason.

use argus_engine::{Config, Engine};
use argus_event::Value;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

const CONFIG: &str = r#"
[[event_types]]
name = "payment.attempt"
[event_types.fields]
fraud = { type = "int", label = { name = "fraud", delay = "1m" } }

[[lookups]]
name = "bins"
file = "bins.csv"
key = "bin"
input = "card_bin"
fields = { bin_country = "country", bin_bank = "bank" }

[[lookups]]
name = "geo"
file = "geo.csv"
match = "ip_range"
range = ["from", "to"]
input = "ip"
fields = { ip_country = "country" }

[[lookups]]
name = "devices"
file = "devices.parquet"
key = "device"
input = "device"
fields = { device_vendor = "vendor" }

[[features]]
name = "ip_country_payments_1h"
kind = "count"
events = ["payment.attempt"]
key = ["ip_country"]
window = "1h"

[[features]]
name = "user_bin_countries_1d"
kind = "distinct"
events = ["payment.attempt"]
key = ["actor"]
value = "bin_country"
window = "1d"

# Label releases carry the lookup fields of their source event.
[[features]]
name = "bin_country_frauds_1d"
kind = "sum"
events = ["label.fraud"]
key = ["bin_country"]
value = "value"
window = "1d"

[graph]
min_cluster = 2

[[graph.links]]
field = "bin_bank"
events = ["payment.attempt"]
"#;

const POLICY: &str = r#"
[policy]
checkpoint = "payment.attempt"
version = "t1"
thresholds = { challenge = 30, review = 60, block = 90 }

[[rules]]
name = "card_from_abroad"
when = "event.bin_country != event.ip_country"
action = "review"
score = 60
reason = "The card's issuing country is not where the buyer's IP is"
"#;

/// Writes a one-column-pair Parquet file: device → vendor.
fn write_parquet(path: &Path, rows: &[(&str, &str)]) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message t { REQUIRED BYTE_ARRAY device (UTF8); REQUIRED BYTE_ARRAY vendor (UTF8); }",
        )
        .unwrap(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut rg = w.next_row_group().unwrap();
    for col in 0..2 {
        let vals: Vec<ByteArray> = rows
            .iter()
            .map(|r| ByteArray::from(if col == 0 { r.0 } else { r.1 }))
            .collect();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>()
            .write_batch(&vals, None, None)
            .unwrap();
        c.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();
}

fn setup(dir: &Path) {
    std::fs::write(
        dir.join("bins.csv"),
        "bin,country,bank\n411111,US,Chase\n535522,SG,DBS\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("geo.csv"),
        "from,to,country\n81.2.69.0,81.2.69.255,GB\n203.0.113.0,203.0.113.255,SG\n",
    )
    .unwrap();
    write_parquet(
        &dir.join("devices.parquet"),
        &[("d1", "acme"), ("d2", "globex")],
    );
    std::fs::write(dir.join("argus.toml"), CONFIG).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/p.toml"), POLICY).unwrap();
}

fn pay(
    id: &str,
    actor: &str,
    card: &str,
    ip: &str,
    device: &str,
    minute: u32,
) -> serde_json::Value {
    json!({"id": id, "type": "payment.attempt", "time": format!("2026-11-20T09:{minute:02}:00Z"),
           "actor": actor, "data": {"amount": "10.00", "card": card, "ip": ip, "device": device}})
}

#[test]
fn lookup_fields_feed_features_rules_and_the_graph() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let cfg = Config::load(&d.path().join("argus.toml")).unwrap();
    let loaded = argus_policy::load_dir(
        &d.path().join("policies"),
        &cfg.schema,
        &cfg.features,
        &cfg.pseudonymizer,
    )
    .unwrap();
    let mut e = Engine::new(cfg);
    e.set_policies(Arc::new(loaded.policies));
    let et = e.schema().by_name("payment.attempt").unwrap().clone();
    let slot = |n: &str| et.slot(n).unwrap();
    let f = |e: &Engine, n: &str| e.features().index_of(n).unwrap();
    let s = |v: &str| Value::Str(v.into());

    // A US card from a GB address on device d1; then a SG card from a SG address; then no match.
    let mut first = pay("p1", "u1", "4111 1111 1111 1111", "81.2.69.10", "d1", 0);
    first["data"]["fraud"] = json!(1);
    let evs = [
        first,
        pay("p2", "u1", "5355 2200 0000 0004", "203.0.113.7", "d2", 1),
        pay("p3", "u2", "5355 2200 0000 0004", "203.0.113.8", "d9", 2),
        pay("p4", "u3", "4000 0000 0000 0002", "192.0.2.1", "d1", 3),
    ];
    let mut seen = Vec::new();
    for doc in &evs {
        let ev = e.decoder().decode_json(doc).unwrap();
        seen.push(ev.fields.clone());
        let p = e.process(&ev).unwrap();
        let feats = p.features.to_vec();
        let d = p.decision.unwrap();
        seen.push(vec![
            feats[f(&e, "ip_country_payments_1h")].clone(),
            feats[f(&e, "user_bin_countries_1d")].clone(),
            Value::Str(format!("{:?}", d.action).into()),
        ]);
    }
    // Fields: from the BIN (a derived attribute), the raw IP (pseudonymized afterwards), the device.
    assert_eq!(seen[0][slot("bin_country")], s("US"));
    assert_eq!(seen[0][slot("bin_bank")], s("Chase"));
    assert_eq!(seen[0][slot("ip_country")], s("GB"));
    assert_eq!(seen[0][slot("device_vendor")], s("acme"));
    assert_ne!(
        seen[0][slot("ip")],
        s("81.2.69.10"),
        "the IP itself is still tokenized"
    );
    assert_eq!(seen[2][slot("ip_country")], s("SG"));
    assert_eq!(
        seen[4][slot("device_vendor")],
        Value::Null,
        "d9 is in no row"
    );
    assert_eq!(
        seen[6][slot("bin_country")],
        Value::Null,
        "400000 is in no row"
    );
    assert_eq!(
        seen[6][slot("ip_country")],
        Value::Null,
        "192.0.2.1 is in no range"
    );
    // Features keyed on and counting lookup fields.
    assert_eq!(seen[3][0], Value::Int(1)); // SG payments within the hour: p2
    assert_eq!(seen[5][0], Value::Int(2)); // and p3
    assert_eq!(seen[3][1], Value::Int(2)); // u1's card countries today: US, SG
                                           // Rules read them: US card from GB review; SG card from SG allowed.
    assert!(seen[1][2].to_string().contains("Review"), "{:?}", seen[1]);
    assert!(seen[3][2].to_string().contains("Allow"), "{:?}", seen[3]);
    // The graph links on them: u1 and u2 share the DBS bank value.
    let size_at = e.features().index_of("graph_cluster_size").unwrap();
    let ev = e
        .decoder()
        .decode_json(&pay(
            "p5",
            "u2",
            "5355 2200 0000 0004",
            "203.0.113.9",
            "d2",
            4,
        ))
        .unwrap();
    let size = e.process(&ev).unwrap().features[size_at].clone();
    assert_eq!(size, Value::Int(2), "u1 and u2 are linked by bin_bank");

    // p1's label, known a minute later, counts for its BIN's country (US), not for SG's.
    let frauds_at = e.features().index_of("bin_country_frauds_1d").unwrap();
    let ev = e
        .decoder()
        .decode_json(&pay(
            "p7",
            "u4",
            "4111 1111 1111 1111",
            "81.2.69.11",
            "d3",
            6,
        ))
        .unwrap();
    assert_eq!(e.process(&ev).unwrap().features[frauds_at], Value::Int(1));
    let ev = e
        .decoder()
        .decode_json(&pay(
            "p8",
            "u4",
            "5355 2200 0000 0004",
            "81.2.69.11",
            "d3",
            7,
        ))
        .unwrap();
    assert_eq!(e.process(&ev).unwrap().features[frauds_at], Value::Int(0));

    // A sender may not set a lookup field.
    let mut doc = pay("p6", "u1", "4111 1111 1111 1111", "81.2.69.10", "d1", 5);
    doc["data"]["bin_country"] = json!("FR");
    let rej = e.decoder().decode_json(&doc).unwrap_err();
    assert_eq!(rej.errors[0].code, "unknown_field", "{rej:?}");
}

#[test]
fn bad_tables_and_declarations_are_refused_with_the_reason() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "bin,country\n1,US\n1,FR\n",
            "key = \"bin\"",
            "the key `1` is given twice",
        ),
        (
            "bin,country\n1,US\n",
            "key = \"bin_number\"",
            "has no column `bin_number` (its columns: bin, country)",
        ),
        (
            "from,to,country\n1.0.0.0,1.0.0.9,A\n1.0.0.5,1.0.1.0,B\n",
            "match = \"ip_range\"\nrange = [\"from\", \"to\"]",
            "overlap",
        ),
        (
            "bin,country\n1,US\n",
            "match = \"near\"\nkey = \"bin\"",
            "is not `exact`, `ip_range` or `int_range`",
        ),
        (
            "bin,country\n1,US\n",
            "match = \"ip_range\"\nkey = \"bin\"",
            "names its `range",
        ),
    ];
    for (csv, how, want) in cases {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("t.csv"), csv).unwrap();
        let text = format!(
            "[[lookups]]\nname = \"t\"\nfile = \"t.csv\"\n{how}\ninput = \"card_bin\"\nfields = {{ bin_country = \"country\" }}\n"
        );
        let e = Config::from_str(&text, d.path()).unwrap_err().to_string();
        assert!(e.contains(want), "{how}: {e}");
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("t.csv"), "k,v\n1,x\n").unwrap();
    for (decl, want) in [
        (
            "input = \"no_such_field\"\nfields = { x_v = \"v\" }",
            "no event type has a field `no_such_field`",
        ),
        (
            "input = \"card_bin\"\nfields = { card_country = \"v\" }",
            "`card_country` is already a field of `payment.attempt`",
        ),
        (
            "input = \"card_bin\"\nfields = { x_v = \"v\" }\nfile2 = 1",
            "file2",
        ),
    ] {
        let text = format!("[[lookups]]\nname = \"t\"\nfile = \"t.csv\"\nkey = \"k\"\n{decl}\n");
        let e = Config::from_str(&text, d.path()).unwrap_err().to_string();
        assert!(e.contains(want), "{decl}: {e}");
    }
    let e = Config::from_str(
        "[[lookups]]\nname = \"t\"\nfile = \"missing.csv\"\nkey = \"k\"\ninput = \"card_bin\"\nfields = { x_v = \"v\" }\n",
        d.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("lookups.t: file:") && e.contains("missing.csv"),
        "{e}"
    );
}

#[test]
fn a_personal_data_input_is_looked_up_before_it_is_tokenized() {
    // `name` on account.register is a string declared `pii = true`: tokenized at ingest.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("names.csv"), "name,tier\nAlice Smith,vip\n").unwrap();
    let cfg = Config::from_str(
        "[[lookups]]\nname = \"tiers\"\nfile = \"names.csv\"\nkey = \"name\"\ninput = \"name\"\nfields = { name_tier = \"tier\" }\n",
        d.path(),
    )
    .unwrap();
    let e = Engine::new(cfg);
    let doc = json!({"id": "r1", "type": "account.register", "time": "2026-11-20T09:00:00Z",
        "actor": "u1", "data": {"name": "Alice Smith", "email": "a@example.com"}});
    let ev = e.decoder().decode_json(&doc).unwrap();
    let et = e.schema().by_name("account.register").unwrap();
    assert_eq!(
        ev.fields[et.slot("name_tier").unwrap()],
        Value::Str("vip".into())
    );
    assert_ne!(
        ev.fields[et.slot("name").unwrap()],
        Value::Str("Alice Smith".into()),
        "the name itself is tokenized"
    );
}
