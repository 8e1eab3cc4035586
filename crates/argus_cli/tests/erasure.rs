//! Erasure proof (P3.6): a subject's events are ingested (with a case, a note and the continuous
//! Parquet export on), the subject is erased, and then every byte of the data directory, every text
//! value of the case store (PostgreSQL when ARGUS_TEST_POSTGRES is set, as in CI) and every value of
//! the exports is searched for the subject's clear value and its token: none is left. The other
//! subjects' features and decisions are unchanged, and the server goes on deciding.

use crate::common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const VICTIM: &str = "Victim.Person@Example.com";
const VICTIM_NORM: &str = "victim.person@example.com";

/// Every string value of every Parquet file under `dir`, through DuckDB.
fn export_text(dir: &Path) -> String {
    let script = r#"
import duckdb, glob, sys
out = []
for f in sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True)):
    for row in duckdb.sql(f"SELECT * FROM read_parquet('{f}', hive_partitioning = false)").fetchall():
        out.append(" ".join(str(v) for v in row))
print(len(out))
print("\n".join(out))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .expect("python3 with duckdb (scripts/requirements-export.txt)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

async fn db_text(url: &str) -> String {
    use argus_store::sqlx::Row;
    let db = argus_store::Db::open(url).await.unwrap();
    let cols: Vec<(String, String)> = argus_store::sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert!(cols.len() > 10, "{cols:?}");
    let mut all = String::new();
    for (t, c) in cols {
        let rows = argus_store::sqlx::query(argus_store::sqlx::AssertSqlSafe(format!(
            "SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL"
        )))
        .fetch_all(&db.pool)
        .await
        .unwrap();
        for r in rows {
            all.push_str(&r.get::<String, _>(0));
            all.push('\n');
        }
    }
    db.pool.close().await;
    all
}

fn ev(id: &str, ty: &str, actor: &str, data: Value) -> String {
    json!({"id": id, "type": ty, "time": format!("2026-12-01T10:{:02}:00Z", id.len() % 60), "actor": actor, "data": data}).to_string()
}

#[test]
fn an_erased_subject_is_nowhere_and_everyone_else_is_unchanged() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pg = rt.block_on(argus_store::test_database("argus_erasure"));
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let exports = d.path().join("exports");
    let conf = d.path().join("argus.toml");
    let mut extra = format!(
        "export_dir = \"{}\"\nexport_every = \"1s\"\n",
        exports.display()
    );
    // `[server]` keys go right after the starter's `[server]` table.
    let mut text = starter_config("");
    text = text.replacen(
        "fsync = \"never\"\n",
        &format!("fsync = \"never\"\n{extra}"),
        1,
    );
    // Features keyed by the email (the subject's own history) and over emails (an aggregate other
    // subjects' rules read).
    text.push_str(
        "[[features]]\nname = \"email_events_30d\"\nkind = \"count\"\nevents = [\"account.register\", \"account.update\"]\nkey = [\"email\"]\nwindow = \"30d\"\n\n[[features]]\nname = \"email_devices_30d\"\nkind = \"distinct\"\nevents = [\"account.register\", \"account.update\"]\nkey = [\"email\", \"device\"]\nvalue = \"actor\"\nwindow = \"30d\"\n\n[[features]]\nname = \"device_emails_30d\"\nkind = \"distinct\"\nevents = [\"account.register\", \"account.update\"]\nkey = [\"device\"]\nvalue = \"email\"\nwindow = \"30d\"\n\n[[features]]\nname = \"user_last_email\"\nkind = \"last_value\"\nevents = [\"account.register\", \"account.update\"]\nkey = [\"actor\"]\nvalue = \"email\"\n",
    );
    if let Some(url) = &pg {
        text.push_str(&format!("[cases]\ndatabase = \"{url}\"\n"));
    }
    extra.clear();
    std::fs::write(&conf, text).unwrap();
    let (server, addr) = serve_env(
        &conf,
        &[repo().join("policies")],
        &data,
        &[("ARGUS_VAULT_KEY", &"3c".repeat(32))],
    );
    let j = "application/json";
    let post = |body: &str| {
        let (s, v) = http(&addr, "POST", "/v1/events", INGEST, body, j);
        assert_eq!(s, 200, "{v}");
        v
    };
    // The victim and two others register on one device; all three order with the same card.
    let reg = |id: &str, user: &str, email: &str| {
        ev(
            id,
            "account.register",
            user,
            json!({"email": email, "phone": "+44 7700 900555", "device": "dev-shared", "ip": "81.2.0.1"}),
        )
    };
    post(&reg("r-v", "u-victim", VICTIM));
    post(&reg("r-a", "u-a", "alice@example.org"));
    post(&reg("r-b", "u-b", "bob@example.org"));
    for (i, u) in ["u-victim", "u-a", "u-b"].iter().enumerate() {
        post(&ev(
            &format!("o-{i}"),
            "order.create",
            u,
            json!({"order": format!("o{i}"), "seller": "s1", "item": "i1", "item_count": 1, "amount": "20.00", "currency": "EUR", "card": card(7), "device": "dev-shared", "ip": "81.2.0.1"}),
        ));
    }
    post(&ev(
        "upd-v",
        "account.update",
        "u-victim",
        json!({"change": "email", "email": VICTIM, "device": "dev-shared"}),
    ));
    // The victim's token, as an investigator sees it.
    let (s, v) = http(
        &addr,
        "POST",
        "/v1/decisions/r-v/reveal",
        ADMIN,
        r#"{"reason": "erasure test: find the token"}"#,
        j,
    );
    assert_eq!(s, 200, "{v}");
    let token = v["revealed"]["email"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["revealed"]["email"]["value"], VICTIM_NORM);
    // A list change whose reason names the token (the overlay keeps it in memory and snapshots).
    let (s, v) = http(
        &addr,
        "PUT",
        "/v1/lists/blocked_devices/items/dev-other",
        ADMIN,
        &json!({"reason": format!("case 42: {token}")}).to_string(),
        j,
    );
    assert_eq!(s, 200, "{v}");
    // A case about the victim, with a note an analyst typed the clear email into.
    let (s, v) = http(&addr, "POST", "/v1/cases", ADMIN, &json!({"subject": {"kind": "email", "id": token}, "note": format!("customer wrote from {VICTIM_NORM}")}).to_string(), j);
    assert_eq!(s, 200, "{v}");
    let case = v["id"]
        .as_str()
        .or(v["case"]["id"].as_str())
        .unwrap()
        .to_string();
    let (s, v) = http(
        &addr,
        "POST",
        &format!("/v1/cases/{case}/notes"),
        ADMIN,
        &json!({"text": format!("called {VICTIM}")}).to_string(),
        j,
    );
    assert_eq!(s, 200, "{v}");
    let before = |what: &str| http(&addr, "GET", what, ADMIN, "", j).1;
    let device_before = before("/v1/entities/device/dev-shared");
    let alice_before = before("/v1/entities/email/alice@example.org");
    let decisions_before: Vec<Value> = ["r-a", "r-b", "o-1", "o-2"]
        .iter()
        .map(|id| before(&format!("/v1/decisions/{id}")))
        .collect();
    assert_eq!(
        device_before["features"]["device_accounts_7d"], 3,
        "{device_before}"
    );
    assert_eq!(
        device_before["features"]["device_emails_30d"], 3,
        "{device_before}"
    );
    let victim_before = before(&format!("/v1/entities/email/{VICTIM_NORM}"));
    assert_eq!(
        victim_before["features"]["email_events_30d"], 2,
        "{victim_before}"
    );
    // The continuous export has the events.
    let t = Instant::now();
    while !files_containing(&exports, b"PAR1")
        .iter()
        .any(|f| f.contains("events"))
    {
        assert!(t.elapsed() < Duration::from_secs(60), "no export");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        export_text(&exports).contains(&token),
        "the export has the token before"
    );

    let (s, v) = http(
        &addr,
        "POST",
        "/v1/erasure",
        ADMIN,
        &json!({"kind": "email", "value": VICTIM, "reason": "GDPR art. 17 request #77"})
            .to_string(),
        j,
    );
    assert_eq!(s, 200, "{v}");
    eprintln!("erasure report: {v}");
    assert!(
        !v.to_string().contains(&token) && !v.to_string().to_lowercase().contains("victim"),
        "{v}"
    );
    let f = &v["found"];
    assert_eq!(f["events"], 2, "{v}");
    assert!(f["log_records"].as_u64().unwrap() >= 2, "{v}");
    // The email's own key, and the (email, device) pair the logged events show.
    assert_eq!(f["state_keys"], 2, "{v}");
    assert_eq!(f["vault"], 1, "{v}");
    assert!(f["case_rows"].as_u64().unwrap() >= 2, "{v}");
    // Everyone else: the same features and decisions.
    assert_eq!(
        before("/v1/entities/device/dev-shared")["features"],
        device_before["features"]
    );
    assert_eq!(
        before("/v1/entities/email/alice@example.org")["features"],
        alice_before["features"]
    );
    for (id, d) in ["r-a", "r-b", "o-1", "o-2"].iter().zip(&decisions_before) {
        assert_eq!(&before(&format!("/v1/decisions/{id}")), d, "{id}");
    }
    // The victim's own history no longer answers for the value: it starts afresh.
    // (Looking the value up computes its token again: nothing kept, a function of the value.)
    let victim = before(&format!("/v1/entities/email/{VICTIM_NORM}"));
    assert_eq!(victim["features"]["email_events_30d"], 0, "{victim}");
    let (s, v) = http(
        &addr,
        "POST",
        "/v1/decisions/r-v/reveal",
        ADMIN,
        r#"{"reason": "erasure test: nothing left"}"#,
        j,
    );
    assert_eq!(s, 200, "{v}");
    // The email is gone from the vault (the phone and IP are other subjects, shared here).
    assert!(v["revealed"].get("email").is_none(), "{v}");
    assert_eq!(v["not_kept"], json!(["email"]), "{v}");
    // The server goes on deciding, and the export fills again from the renamed log.
    post(&ev(
        "r-c",
        "account.register",
        "u-c",
        json!({"email": "carol@example.org", "device": "dev-shared", "ip": "81.2.0.1"}),
    ));
    let t = Instant::now();
    while !files_containing(&exports, b"PAR1")
        .iter()
        .any(|f| f.contains("events"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no export after erasure"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (s, audit) = http(&addr, "GET", "/v1/audit", ADMIN, "", j);
    assert_eq!(s, 200);
    assert!(audit.to_string().contains("GDPR art. 17 request #77"));
    assert!(audit.to_string().contains("erasure completed"));
    drop(server);

    let needles = [
        token.as_str(),
        VICTIM,
        VICTIM_NORM,
        "Victim.Person",
        "victim.person",
    ];
    for n in needles {
        assert_eq!(
            files_containing(&data, n.as_bytes()),
            Vec::<String>::new(),
            "data dir: {n}"
        );
        assert_eq!(
            files_containing(&exports, n.as_bytes()),
            Vec::<String>::new(),
            "exports: {n}"
        );
    }
    let text = export_text(&exports);
    assert!(
        text.lines().next().unwrap().parse::<usize>().unwrap() >= 7,
        "{text}"
    );
    for n in needles {
        assert!(!text.contains(n), "export values: {n}");
    }
    if let Some(url) = &pg {
        let all = rt.block_on(db_text(url));
        assert!(
            all.contains("[erased]"),
            "the note was scrubbed, not dropped"
        );
        for n in needles {
            assert!(!all.contains(n), "PostgreSQL: {n}");
        }
    }
    // The server starts again on what erasure left (log, snapshot, findings, vault).
    let (_server, addr) = serve_env(
        &conf,
        &[repo().join("policies")],
        &data,
        &[("ARGUS_VAULT_KEY", &"3c".repeat(32))],
    );
    let (s, v) = http(&addr, "GET", "/v1/entities/device/dev-shared", ADMIN, "", j);
    assert_eq!(s, 200);
    assert_eq!(v["features"]["device_accounts_7d"], 4, "{v}");
}
