//! Lookup tables on the server (P3.2): a reload reads the tables again and every decoder (the HTTP
//! handlers' and the core's) uses the new rows at once; events already logged keep the values they
//! were decoded with, so a restart from the log rebuilds the same state.

use crate::common;
use common::*;

use axum::body::Body;
use serde_json::json;
use std::path::Path;

const CONFIG: &str = r#"
[[lookups]]
name = "bins"
file = "bins.csv"
key = "bin"
input = "card_bin"
fields = { bin_country = "country" }

[[features]]
name = "bin_country_payments_1d"
kind = "count"
events = ["payment.attempt"]
key = ["bin_country"]
window = "1d"
"#;

const POLICY: &str = r#"
[policy]
checkpoint = "payment.attempt"
version = "t1"
thresholds = { challenge = 30, review = 60, block = 90 }

[[rules]]
name = "us_card"
when = "event.bin_country == \"US\""
action = "review"
score = 60
reason = "A US-issued card"
"#;

fn pay(id: &str) -> String {
    json!({"id": id, "type": "payment.attempt", "time": "2026-11-20T09:00:00Z", "actor": "u1",
           "data": {"amount": "10.00", "card": "4111 1111 1111 1111"}})
    .to_string()
}

fn start(dir: &Path) -> argus_server::Server {
    let mut st = settings(&dir.join("data"));
    st.max_batch = 100;
    argus_server::Server::start(st, loader(dir.join("argus.toml"), dir.join("policies")))
        .expect("server starts")
}

#[tokio::test]
async fn a_reload_swaps_the_tables_and_the_log_keeps_what_was_decoded() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("argus.toml"), CONFIG).unwrap();
    std::fs::write(d.path().join("bins.csv"), "bin,country\n411111,US\n").unwrap();
    std::fs::create_dir_all(d.path().join("policies")).unwrap();
    std::fs::write(d.path().join("policies/p.toml"), POLICY).unwrap();
    let s = start(d.path());
    let (_, v) = call(&s, "POST", "/v1/events", Some(INGEST), pay("e1")).await;
    assert_eq!(v["decision"]["action"], "review", "{v}");

    // The issuer's table is corrected: the BIN is French.
    std::fs::write(d.path().join("bins.csv"), "bin,country\n411111,FR\n").unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lookups"], json!([{"name": "bins", "rows": 1}]));
    // Through the HTTP handlers' decoder (single events) and the core's (batches) alike.
    let (_, v) = call(&s, "POST", "/v1/events", Some(INGEST), pay("e2")).await;
    assert_eq!(v["decision"]["action"], "allow", "{v}");
    let (_, v) = call(
        &s,
        "POST",
        "/v1/events/batch",
        Some(INGEST),
        format!("[{}]", pay("e3")),
    )
    .await;
    assert_eq!(v["results"][0]["decision"]["action"], "allow", "{v}");
    s.shutdown().await;

    // A damaged table is refused by a reload, and the running one is kept.
    let s = start(d.path());
    std::fs::write(
        d.path().join("bins.csv"),
        "bin,country\n411111,FR\n411111,DE\n",
    )
    .unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("given twice"), "{v}");
    let (_, v) = call(&s, "POST", "/v1/events", Some(INGEST), pay("e4")).await;
    assert_eq!(v["decision"]["action"], "allow", "{v}");
    let (_, before) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty()).await;
    s.shutdown().await;

    // Restarted from the log alone, with the table changed again: e1 is still a US card and e2..e4
    // French (as decoded and logged), so the state is the one before the restart.
    std::fs::write(d.path().join("bins.csv"), "bin,country\n411111,SG\n").unwrap();
    std::fs::remove_dir_all(d.path().join("data/snapshots")).unwrap();
    let s = start(d.path());
    let (_, after) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty()).await;
    assert_eq!(before["engine_seq"], 4);
    assert_eq!(
        (&after["state_digest"], &after["engine_seq"]),
        (&before["state_digest"], &before["engine_seq"])
    );
    let (_, v) = call(&s, "GET", "/v1/decisions/e1", Some(ANALYST), Body::empty()).await;
    assert_eq!(v["decision"]["action"], "review", "{v}");
    s.shutdown().await;
}
