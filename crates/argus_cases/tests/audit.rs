//! The audit log on both backends: appends from racing writers form one chain, the store refuses
//! to change a record, and a record changed behind the store's back is found by `verify`.

use argus_cases::audit::{Audit, NewRecord};
use argus_store::sqlx;

async fn urls(dir: &std::path::Path, test: &str) -> Vec<String> {
    let mut v = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.join("cases.db").display()
    )];
    if let Some(url) = argus_store::test_database(&format!("argus_audit_{test}")).await {
        v.push(url);
    }
    v
}

fn rec(actor: &str, i: i64) -> NewRecord {
    NewRecord {
        at_ms: 1_700_000_000_000 + i,
        actor: actor.into(),
        role: "admin".into(),
        action: "PUT /v1/lists/{name}/items/{value}".into(),
        target: format!("/v1/lists/blocked/items/{i}"),
        reason: format!("ticket {i}"),
        detail: serde_json::json!({"body_sha256": format!("{i:064x}"), "bytes": i}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_form_one_chain_that_refuses_changes_and_shows_tampering() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "chain").await {
        // Two independent handles (two nodes sharing the database), 4 writers each.
        let a = Audit::open(&url).await.unwrap();
        let b = Audit::open(&url).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let au = if w % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10 {
                    seqs.push(au.append(&rec(&format!("w{w}"), i)).await.unwrap().0);
                }
                seqs
            }));
        }
        let mut seqs: Vec<i64> = Vec::new();
        for t in tasks {
            seqs.extend(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=80).collect::<Vec<_>>(),
            "{url}: one record per append, no gap"
        );
        let v = a.verify().await.unwrap();
        assert_eq!((v.records, v.broken.clone()), (80, None), "{url}");
        assert_eq!(v.head.as_ref().map(|h| h.0), Some(80));

        let db = argus_store::Db::open(&url).await.unwrap();
        for sql in [
            "UPDATE audit SET reason = 'nothing to see' WHERE seq = 17",
            "DELETE FROM audit WHERE seq = 80",
        ] {
            let e = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
            assert!(e.to_string().contains("append-only"), "{url}: {e}");
        }

        // Someone with the database's owner rights drops the triggers and rewrites a record.
        let drops: &[&str] = if url.starts_with("sqlite") {
            &["DROP TRIGGER audit_no_update"]
        } else {
            &["DROP TRIGGER audit_no_change ON audit"]
        };
        for sql in drops {
            sqlx::query(*sql).execute(&db.pool).await.unwrap();
        }
        sqlx::query("UPDATE audit SET reason = 'nothing to see' WHERE seq = 17")
            .execute(&db.pool)
            .await
            .unwrap();
        let v = a.verify().await.unwrap();
        assert_eq!(v.records, 80);
        let (seq, why) = v.broken.expect("the changed record is found");
        assert_eq!(seq, 17, "{url}: {why}");
        assert!(why.contains("changed"), "{why}");
    }
}

#[tokio::test]
async fn retention_prunes_from_the_start_and_the_rest_still_verifies() {
    let d = tempfile::tempdir().unwrap();
    for url in urls(d.path(), "retention").await {
        let a = Audit::open(&url).await.unwrap();
        for i in 0..10 {
            a.append(&rec("ana", i)).await.unwrap();
        }
        // Records 1–4 were written before the cut.
        assert_eq!(a.prune(1_700_000_000_004, 1).await.unwrap(), 4, "{url}");
        let v = a.verify().await.unwrap();
        assert_eq!(
            (v.records, v.anchor, v.broken.clone()),
            (6, Some(4), None),
            "{url}"
        );
        assert_eq!(a.page(0, 100).await.unwrap()[0].seq, 5);
        // Appends go on from the head; what is above the anchor still cannot be deleted.
        a.append(&rec("ana", 10)).await.unwrap();
        let db = argus_store::Db::open(&url).await.unwrap();
        let e = sqlx::query("DELETE FROM audit WHERE seq = 6")
            .execute(&db.pool)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{url}: {e}");
        assert_eq!(a.verify().await.unwrap().records, 7);
        assert_eq!(a.prune(0, 2).await.unwrap(), 0);
    }
}
