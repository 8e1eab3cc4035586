//! The audit log end to end (P3.6): a change through the API is recorded with who, what and why
//! before it is made, with its outcome after; `argus audit verify` accepts the chain and finds a
//! record changed behind the server's back; `argus audit export` writes it; and a change whose
//! record cannot be written is refused while decisions go on.

use crate::common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

fn argus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .output()
        .unwrap()
}

fn event(id: &str, actor: &str) -> String {
    json!({"id": id, "type": "order.create", "time": "2026-12-01T10:00:00Z", "actor": actor,
           "data": {"order": format!("o-{id}"), "seller": "s1", "item": "i1", "item_count": 1,
                    "amount": "20.00", "currency": "EUR", "card": card(3), "device": "d1", "ip": "81.2.0.1"}})
    .to_string()
}

#[test]
fn changes_are_recorded_before_they_are_made_and_tampering_is_found() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let conf = d.path().join("argus.toml");
    std::fs::write(&conf, starter_config("")).unwrap();
    let policies = vec![repo().join("policies")];
    {
        let (_server, addr) = serve(&conf, &policies, &data);
        let j = "application/json";
        let (s, _) = http(&addr, "POST", "/v1/events", INGEST, &event("e1", "u1"), j);
        assert_eq!(s, 200);
        let (s, v) = http(
            &addr,
            "PUT",
            "/v1/lists/banned_users/items/u-mallory",
            ADMIN,
            r#"{"reason": "ticket 42: chargebacks"}"#,
            j,
        );
        assert_eq!(s, 200, "{v}");
        let (s, v) = http(&addr, "POST", "/v1/admin/reload", ADMIN, "", j);
        assert_eq!(s, 200, "{v}");
        let (s, v) = http(&addr, "GET", "/v1/audit", ADMIN, "", j);
        assert_eq!(s, 200, "{v}");
        let r = v["records"].as_array().unwrap();
        // The event is data, not a change: four records, two changes and their outcomes.
        assert_eq!(r.len(), 4, "{v:#}");
        assert_eq!(r[0]["actor"], "ops");
        assert_eq!(r[0]["role"], "admin");
        assert_eq!(r[0]["action"], "PUT /v1/lists/{name}/items/{value}");
        assert_eq!(r[0]["reason"], "ticket 42: chargebacks");
        // The list value is kept as its digest, not in clear.
        let t = r[0]["target"].as_str().unwrap();
        assert!(t.starts_with("/v1/lists/banned_users/items/sha256:"), "{t}");
        assert!(!v.to_string().contains("u-mallory"));
        assert_eq!(r[0]["detail"]["body_bytes"], 36);
        assert_eq!(
            (r[1]["action"].as_str(), r[1]["target"].as_str()),
            (Some("result"), Some("1"))
        );
        assert_eq!(r[1]["detail"]["status"], 200);
        assert_eq!(r[2]["action"], "POST /v1/admin/reload");
        assert_eq!(r[1]["hash"], r[2]["prev_hash"]);
        // Only an administrator reads it.
        let (s, _) = http(&addr, "GET", "/v1/audit", INGEST, "", j);
        assert_eq!(s, 403);
    }
    let dir = data.to_str().unwrap();
    let out = argus(&["audit", "verify", "--data-dir", dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("verified: 4 records; head: record 4"),
        "{text}"
    );

    let file = d.path().join("audit.ndjson");
    let out = argus(&[
        "audit",
        "export",
        "--data-dir",
        dir,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["reason"], "ticket 42: chargebacks");

    // Someone with write access to the database file rewrites the reason.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rw", data.join("cases.db").display());
        let db = argus_store::Db::open(&url).await.unwrap();
        let refused = sqlx::query("UPDATE audit SET reason = 'routine' WHERE seq = 1")
            .execute(&db.pool)
            .await;
        assert!(refused.is_err(), "the store refuses to change a record");
        sqlx::query("DROP TRIGGER audit_no_update")
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE audit SET reason = 'routine' WHERE seq = 1")
            .execute(&db.pool)
            .await
            .unwrap();
        db.pool.close().await;
    });
    let out = argus(&["audit", "verify", "--data-dir", dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BROKEN at record 1"), "{text}");
}

#[test]
fn a_change_whose_record_cannot_be_written_is_refused_and_decisions_go_on() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let conf = d.path().join("argus.toml");
    // Nothing listens on port 1: the store (and the audit log in it) cannot open.
    std::fs::write(
        &conf,
        starter_config("[cases]\ndatabase = \"postgres://argus:argus@127.0.0.1:1/argus\"\n"),
    )
    .unwrap();
    let (_server, addr) = serve(&conf, &[repo().join("policies")], &data);
    let j = "application/json";
    let (s, v) = http(
        &addr,
        "PUT",
        "/v1/lists/banned_users/items/u-mallory",
        ADMIN,
        r#"{"reason": "ticket 43"}"#,
        j,
    );
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "audit_unavailable", "{v}");
    let (s, v) = http(&addr, "GET", "/v1/lists/banned_users", ADMIN, "", j);
    assert_eq!(s, 200);
    assert!(!v.to_string().contains("u-mallory"), "not added: {v}");
    let (s, v) = http(&addr, "POST", "/v1/admin/reload", ADMIN, "", j);
    assert_eq!((s, &v["error"]["code"]), (503, &json!("audit_unavailable")));
    // Checkout is not taken down by the audit log.
    let (s, v) = http(&addr, "POST", "/v1/events", INGEST, &event("e2", "u2"), j);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "accepted", "{v}");
}

#[test]
fn personal_data_is_revealed_only_for_a_reason_and_the_reveal_is_audited() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let conf = d.path().join("argus.toml");
    std::fs::write(
        &conf,
        starter_config("[[server.api_keys]]\nname = \"ana\"\nrole = \"analyst\"\nkey = \"analyst-key-0123456789\"\n[[server.api_keys]]\nname = \"ivan\"\nrole = \"investigator\"\nkey = \"investigator-key-0123456789\"\n"),
    )
    .unwrap();
    let key = "5a".repeat(32);
    let (server, addr) = serve_env(
        &conf,
        &[repo().join("policies")],
        &data,
        &[("ARGUS_VAULT_KEY", &key)],
    );
    let j = "application/json";
    let reg = json!({"id": "r1", "type": "account.register", "time": "2026-12-01T10:00:00Z", "actor": "u-ana",
                     "data": {"email": "Ana.Lima@Example.com", "phone": "+44 7700 900123", "device": "d1", "ip": "81.2.0.1"}});
    let (s, v) = http(&addr, "POST", "/v1/events", INGEST, &reg.to_string(), j);
    assert_eq!(s, 200, "{v}");
    let reveal = |k: &str, body: &str| http(&addr, "POST", "/v1/decisions/r1/reveal", k, body, j);
    // An analyst may not; an investigator must give a reason.
    assert_eq!(
        reveal(
            "analyst-key-0123456789",
            r#"{"reason": "chargeback 123 investigation"}"#
        )
        .0,
        403
    );
    let (s, v) = reveal("investigator-key-0123456789", r#"{"reason": "why"}"#);
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("reason_required"))
    );
    let (s, v) = reveal(
        "investigator-key-0123456789",
        r#"{"reason": "chargeback 123: confirm the buyer's email with the bank"}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["revealed"]["email"]["value"], "ana.lima@example.com",
        "{v}"
    );
    assert_eq!(v["revealed"]["email"]["kind"], "email");
    assert_eq!(v["revealed"]["phone"]["value"], "+447700900123", "{v}");
    let token = v["revealed"]["email"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("tk_"));
    let (s, v) = http(&addr, "GET", "/v1/audit", ADMIN, "", j);
    assert_eq!(s, 200);
    let r: Vec<&Value> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "POST /v1/decisions/{id}/reveal")
        .collect();
    // Each attempt past authorization is recorded, with who and why (the analyst's was refused
    // before: their role may not ask); the outcome follows.
    assert_eq!(r.len(), 2, "{v:#}");
    assert_eq!(r[1]["actor"], "ivan");
    assert_eq!(r[1]["target"], "/v1/decisions/r1/reveal");
    assert_eq!(
        r[1]["reason"],
        "chargeback 123: confirm the buyer's email with the bank"
    );
    drop(server);
    // The clear values are nowhere in the data directory: the vault holds them sealed.
    for clear in [
        "ana.lima@example.com",
        "Ana.Lima",
        "7700900123",
        "7700 900123",
    ] {
        assert_eq!(
            files_containing(&data, clear.as_bytes()),
            Vec::<String>::new(),
            "{clear}"
        );
    }
    assert!(
        !files_containing(&data, token.as_bytes()).is_empty(),
        "the log keeps the token"
    );
    // Without the key the server does not start on a vault sealed with another key.
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["serve", "--config"])
        .arg(&conf)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("ARGUS_VAULT_KEY", "6b".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vault key does not open"));
}
