//! The console's queries on a store of a million cases (P3.3's target: case list page and entity
//! page p95 ≤ 100 ms, on SQLite and on PostgreSQL). Run by `bench/cases.sh`:
//!
//!   cargo run --release -p argus_cases --example bench_cases -- URL [CASES] [SAMPLES]
//!
//! Fills the store (generated in the database itself: a recursive CTE on SQLite, generate_series on
//! PostgreSQL) with CASES cases over 3 inboxes, a quarter resolved, each with one timeline entry, one
//! in 50 with a label action and one in 1,000 a ring of 20 members. It then times, SAMPLES times each,
//! the calls behind each console page, and prints one JSON line per page with p50/p95/max in ms.
//! It checks its premises: the case count, that every page is full, that keyset pages do not repeat.

use argus_cases::{Cursor, Filter, Status, Store};
use argus_store::sqlx::{self, Row};
use argus_store::{Backend, Db};
use std::time::Instant;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A small deterministic generator (the same samples on both backends).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn fill(db: &Db, n: i64) -> Result<(), sqlx::Error> {
    let series = match db.backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
        ),
        Backend::Postgres => String::new(),
    };
    let from = match db.backend {
        Backend::Sqlite => "FROM s".to_string(),
        Backend::Postgres => format!("FROM generate_series(1::bigint, {n}) AS s(i)"),
    };
    let stmts = [
        format!(
            "{series}INSERT INTO cases (id, subject_kind, subject_id, status, priority, inbox, sla_due, assignee, \
             lock_owner, lock_until, disposition, opened_at, updated_at, triggers, tags) \
             SELECT 'c' || i, CASE WHEN i % 1000 = 0 THEN 'ring' ELSE 'user' END, 'u' || i, \
             CASE WHEN i % 4 = 0 THEN 'resolved' ELSE 'open' END, i % 5, 'inbox' || (i % 3), \
             1700000000000 + (i * 7919) % 86400000, NULL, NULL, NULL, \
             CASE WHEN i % 4 = 0 THEN 'legitimate' ELSE NULL END, 1700000000000 + i, 1700000000000 + i, 1, '' {from}"
        ),
        format!(
            "{series}INSERT INTO case_events (case_id, seq, at, kind, actor, body) \
             SELECT 'c' || i, 1, 1700000000000 + i, 'decision', 'e' || i, \
             '{{\"decision\":{{\"action\":\"review\",\"score\":60,\"fired\":[{{\"rule\":\"r' || (i % 40) || '\"}}]}}}}' {from}"
        ),
        format!(
            "{series}INSERT INTO actions (id, case_id, job_id, kind, target, body, status, attempts, last_error, \
             next_at, idempotency_key, created_at, done_at, subject) \
             SELECT 'a' || i, 'c' || i, NULL, 'label', 'fraud.confirmed', '{{}}', 'done', 1, NULL, 0, 'a' || i, \
             1700000000000 + i, 1700000000000 + i, 'u' || i {from} WHERE i % 50 = 0"
        ),
        // Rings: case c1000·k names u(1000·k + 1) … u(1000·k + 20).
        format!(
            "{series}INSERT INTO case_members (case_id, member) \
             SELECT 'c' || (i - i % 1000), 'u' || i {from} WHERE i % 1000 BETWEEN 1 AND 20 AND i > 1000"
        ),
    ];
    for s in stmts {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&db.pool)
            .await?;
    }
    let analyze = "ANALYZE";
    sqlx::query(analyze).execute(&db.pool).await?;
    Ok(())
}

async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM cases")
        .fetch_one(&db.pool)
        .await?
        .try_get("n")
}

fn report(page: &str, backend: &str, cases: i64, mut ms: Vec<f64>) {
    let n = ms.len();
    let p50 = percentile(&mut ms, 0.5);
    let p95 = percentile(&mut ms, 0.95);
    let max = percentile(&mut ms, 1.0);
    println!(
        "{{\"page\": \"{page}\", \"backend\": \"{backend}\", \"cases\": {cases}, \"samples\": {n}, \"p50_ms\": {p50:.3}, \"p95_ms\": {p95:.3}, \"max_ms\": {max:.3}}}"
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or("usage: bench_cases URL [CASES] [SAMPLES]")?;
    let n: i64 = args.get(2).map_or(Ok(1_000_000), |s| s.parse())?;
    let samples: usize = args.get(3).map_or(Ok(200), |s| s.parse())?;
    let db = Db::open(url).await?;
    let backend = match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let store = Store::on(db.clone()).await?;
    let have = count(&db).await?;
    if have == 0 {
        let t = Instant::now();
        fill(&db, n).await?;
        eprintln!("filled {n} cases in {:.1} s", t.elapsed().as_secs_f64());
    }
    let cases = count(&db).await?;
    assert_eq!(
        cases, n,
        "the store holds {cases} cases, not {n}: use a fresh database"
    );
    let mut rng = Lcg(42);

    // Queue: the first page of an inbox's open cases (the console's default view).
    let mut first = Vec::new();
    for k in 0..samples {
        let f = Filter {
            inbox: Some(format!("inbox{}", k % 3)),
            status: Some(Status::Open),
            ..Default::default()
        };
        let t = Instant::now();
        let (page, next) = store.page(&f, None, 50).await?;
        first.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(page.len(), 50, "a full first page");
        assert!(next.is_some());
    }
    report("queue_first_page", backend, cases, first);

    // Queue, deep: the page after a random case's position (keyset paging, any depth).
    let mut deep = Vec::new();
    for _ in 0..samples {
        let i = 1 + rng.next(n as u64 - 1000) as i64;
        let c = store.get(&format!("c{i}")).await?;
        let f = Filter {
            inbox: Some(c.inbox.clone()),
            ..Default::default()
        };
        let t = Instant::now();
        let (page, _) = store.page(&f, Some(&Cursor::of(&c)), 50).await?;
        deep.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!page.is_empty() && page.iter().all(|x| x.id != c.id));
    }
    report("queue_deep_page", backend, cases, deep);

    // "Next case": claim the most urgent unclaimed case of an inbox (each sample claims one).
    let mut next = Vec::new();
    for k in 0..samples {
        let t = Instant::now();
        let c = store
            .claim_next(
                &format!("inbox{}", k % 3),
                "bench",
                1_800_000_000_000,
                60_000,
                1_000_000,
            )
            .await?;
        next.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(c.is_some_and(|c| c.lock_owner.as_deref() == Some("bench")));
    }
    report("next_case_claim", backend, cases, next);

    // Entity page: the account's cases (as subject or ring member) and its labels.
    let mut entity = Vec::new();
    for _ in 0..samples {
        let i = 1 + rng.next(n as u64) as i64;
        let t = Instant::now();
        let cs = store.cases_of(&format!("u{i}"), 50).await?;
        let ls = store.labels_of(&format!("u{i}"), 50).await?;
        entity.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!cs.is_empty(), "u{i} has its case");
        assert_eq!(ls.len(), usize::from(i % 50 == 0));
    }
    report("entity_cases_and_labels", backend, cases, entity);

    // Case page: the case, its timeline, members and actions.
    let mut case = Vec::new();
    for _ in 0..samples {
        let i = 1000 * (1 + rng.next(n as u64 / 1000 - 1) as i64);
        let id = format!("c{i}");
        let t = Instant::now();
        store.get(&id).await?;
        let tl = store.timeline(&id).await?;
        let m = store.members(&id).await?;
        store.actions(None, Some(&id), None, 1000).await?;
        case.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            (tl.len(), m.len()),
            (1, 20),
            "c{i}: a ring of 20 with its timeline"
        );
    }
    report("case_page", backend, cases, case);
    Ok(())
}
