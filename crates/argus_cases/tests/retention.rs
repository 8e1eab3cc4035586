//! Case retention on both backends: resolved cases older than the cut are deleted with their
//! timelines and members; open cases and newer resolved ones stay.

use argus_cases::{Placement, Store, Subject, Trigger};
use argus_store::sqlx::{self, Row};
use serde_json::json;

fn subject(id: &str) -> Subject {
    Subject {
        kind: "user".into(),
        id: id.into(),
    }
}

fn trigger(e: &str) -> Trigger {
    Trigger {
        source: "decision".into(),
        reference: e.into(),
        body: json!({"action": "review"}),
    }
}

#[tokio::test]
async fn resolved_cases_past_retention_go_and_the_rest_stay() {
    let d = tempfile::tempdir().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}?mode=rwc",
        d.path().join("c.db").display()
    )];
    if let Some(u) = argus_store::test_database("argus_cases_retention").await {
        urls.push(u);
    }
    for url in urls {
        let s = Store::open(&url).await.unwrap();
        let place = Placement {
            inbox: "review".into(),
            priority: 0,
            sla_ms: 3_600_000,
            assign_to: vec![],
            cap: 5,
        };
        let mut ids = Vec::new();
        for (i, at) in [1_000i64, 2_000, 50_000].iter().enumerate() {
            let c = s
                .open_or_join(
                    &subject(&format!("u{i}")),
                    &trigger(&format!("e{i}")),
                    &place,
                    *at,
                )
                .await
                .unwrap();
            s.note(&c.id, "ana", "looked at it", *at).await.unwrap();
            ids.push(c.id);
        }
        // The first two are resolved (at 1,500 and 60,000); the third stays open.
        for (id, at) in [(&ids[0], 1_500i64), (&ids[1], 60_000)] {
            s.claim(id, "ana", at, 60_000, 10).await.unwrap();
            s.resolve(id, "ana", "legitimate", &json!({}), &[], at)
                .await
                .unwrap();
        }
        assert_eq!(s.purge_resolved(10_000).await.unwrap(), 1, "{url}");
        assert!(
            s.get(&ids[0]).await.is_err(),
            "{url}: the old resolved case is gone"
        );
        assert!(
            s.get(&ids[1]).await.is_ok(),
            "{url}: a newer resolved case stays"
        );
        assert!(s.get(&ids[2]).await.is_ok(), "{url}: an open case stays");
        let db = argus_store::Db::open(&url).await.unwrap();
        let left: i64 = sqlx::query("SELECT COUNT(*) FROM case_events WHERE case_id = $1")
            .bind(&ids[0])
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{url}: its timeline went with it");
        assert_eq!(s.purge_resolved(10_000).await.unwrap(), 0);
    }
}
