//! The audit log (P3.6): every change a person or a key makes, and every reveal of personal data —
//! who, when, what, why — as an append-only chain of records in the server's store (SQLite in the
//! data directory, or the shared PostgreSQL of a cluster).
//!
//! Each record's `hash` is SHA-256 over its fields and the `hash` of the record before it (the first
//! one's `prev_hash` is 64 zeros), encoded unambiguously as one JSON array. Changing, removing or
//! reordering any record breaks the chain at that record, which [`verify`] reports. What a chain
//! cannot show by itself is the loss of its newest records: `argus audit verify` prints the head
//! (sequence and hash) so that an operator can keep it elsewhere and compare later
//! (docs/security.md). On top of the chain the store refuses `UPDATE` and `DELETE` on the table
//! (a trigger on each backend), so a mistake cannot rewrite it either.
//!
//! A record is appended before the change it describes is made, and a failed append stops the
//! change (the server answers 503 `audit_unavailable`); the change's outcome follows as a second
//! record naming the first.

use crate::CaseError;
use argus_store::sqlx::{self, Row};
use argus_store::{is_conflict, Backend, Db, Migration};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The audit log's migrations (component `audit`), applied by [`Audit::on`].
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "audit",
        version: 1,
        name: "audit",
        sql: include_str!("../migrations/audit_0001.sql"),
    },
    Migration {
        component: "audit",
        version: 2,
        name: "anchor",
        sql: include_str!("../migrations/audit_0002.sql"),
    },
];

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller appends: the chain fields are the store's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRecord {
    /// Milliseconds since the Unix epoch (the server's clock).
    pub at_ms: i64,
    /// The user or API key, or `system` for the server's own acts (a reload on SIGHUP).
    pub actor: String,
    pub role: String,
    /// What was done: `PUT /v1/lists/{name}/items/{value}`, `reveal`, `result`, …
    pub action: String,
    /// What it was done to: the request's path, an event id, the record a result answers.
    pub target: String,
    /// Why, as the person gave it (empty when not given).
    pub reason: String,
    /// Everything else, as JSON: the request body's SHA-256 and size, a result's status, …
    pub detail: serde_json::Value,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record with these fields after `prev_hash`.
pub fn hash_of(seq: i64, r: &NewRecord, prev_hash: &str) -> String {
    // serde_json writes a `Value`'s object keys sorted (no `preserve_order`), so the detail's
    // encoding is canonical; the whole is one JSON array, so no field can run into the next.
    let canonical = serde_json::json!([
        "argus-audit-v1",
        seq,
        r.at_ms,
        r.actor,
        r.role,
        r.action,
        r.target,
        r.reason,
        r.detail,
        prev_hash
    ])
    .to_string();
    let d = Sha256::digest(canonical.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Record {
    fn fields(&self) -> NewRecord {
        NewRecord {
            at_ms: self.at_ms,
            actor: self.actor.clone(),
            role: self.role.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            reason: self.reason.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verified {
    /// Records read.
    pub records: u64,
    /// The newest record's sequence and hash (keep them elsewhere to detect a cut tail later).
    pub head: Option<(i64, String)>,
    /// The first record that breaks the chain, and how; `None` when the chain holds.
    pub broken: Option<(i64, String)>,
    /// The last record pruned by retention (the chain verifies from the one after it).
    pub anchor: Option<i64>,
}

/// Checks a chain given in sequence order: sequences 1, 2, 3 … without a gap, each `prev_hash` the
/// hash before it, each hash its fields' hash.
pub fn verify(records: impl IntoIterator<Item = Record>) -> Verified {
    verify_from(None, records)
}

/// [`verify`] of a chain whose records up to `anchor` (sequence, hash) were pruned by retention.
pub fn verify_from(
    anchor: Option<(i64, String)>,
    records: impl IntoIterator<Item = Record>,
) -> Verified {
    let mut v = Verified {
        records: 0,
        head: None,
        broken: None,
        anchor: anchor.as_ref().map(|a| a.0),
    };
    let (mut expect, mut prev) = match anchor {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1i64, GENESIS.to_string()),
    };
    for r in records {
        v.records += 1;
        if v.broken.is_none() {
            let problem = if r.seq != expect {
                Some(format!("expected record {expect}, found {}", r.seq))
            } else if r.prev_hash != prev {
                Some("its prev_hash is not the hash of the record before it".to_string())
            } else if hash_of(r.seq, &r.fields(), &r.prev_hash) != r.hash {
                Some("its fields do not match its hash (the record was changed)".to_string())
            } else {
                None
            };
            if let Some(p) = problem {
                v.broken = Some((r.seq, p));
            }
        }
        prev = r.hash.clone();
        expect = r.seq + 1;
        v.head = Some((r.seq, r.hash));
    }
    v
}

/// The audit log in a store.
#[derive(Clone)]
pub struct Audit {
    db: Db,
    /// One append at a time from this process (the chain is read, then extended); other processes
    /// sharing the database are ordered by the primary key: a racing append fails and is retried.
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

const APPEND_TRIES: usize = 50;

impl Audit {
    /// Opens the audit log in a database (`sqlite://…`, `postgres://…`), creating its table.
    pub async fn open(url: &str) -> Result<Audit, CaseError> {
        Audit::on(Db::open(url).await?).await
    }

    /// The audit log on an open database: applies its migration and the append-only triggers.
    pub async fn on(db: Db) -> Result<Audit, CaseError> {
        db.migrate(MIGRATIONS).await?;
        let triggers: &[&str] = match db.backend {
            // A record may be deleted only at or below the retention anchor (`prune`).
            Backend::Sqlite => &[
                "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
                "DROP TRIGGER IF EXISTS audit_no_delete",
                "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit \
                 WHEN OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_anchor) \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
            ],
            Backend::Postgres => &[
                "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN \
                 IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT COALESCE(MAX(seq), 0) FROM audit_anchor) THEN RETURN OLD; END IF; \
                 RAISE EXCEPTION 'the audit log is append-only'; END $$",
                "CREATE OR REPLACE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit \
                 FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
            ],
        };
        for t in triggers {
            let r = sqlx::query(*t).execute(&db.pool).await;
            // Two processes creating the PostgreSQL function at once may collide; the winner's
            // definition is the same.
            if let Err(e) = r {
                if !is_conflict(&e) && !e.to_string().contains("tuple concurrently updated") {
                    return Err(e.into());
                }
            }
        }
        Ok(Audit {
            db,
            lock: Default::default(),
        })
    }

    /// Appends a record at the chain's head and makes it durable; its sequence and hash.
    pub async fn append(&self, r: &NewRecord) -> Result<(i64, String), CaseError> {
        let _one = self.lock.lock().await;
        let detail = r.detail.to_string();
        let mut last_err = None;
        for attempt in 0..APPEND_TRIES {
            match self.try_append(r, &detail).await {
                Ok(done) => {
                    Db::sync(&self.db.pool, self.db.backend)
                        .await
                        .map_err(CaseError::Store)?;
                    return Ok(done);
                }
                Err(e) if retryable(&e) => {
                    last_err = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(2 + (attempt as u64 % 10)))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_err.map_or(CaseError::Raced, CaseError::Db))
    }

    async fn try_append(&self, r: &NewRecord, detail: &str) -> Result<(i64, String), sqlx::Error> {
        let mut tx = self.db.pool.begin().await?;
        let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match head {
            Some(row) => (row.try_get::<i64, _>(0)? + 1, row.try_get::<String, _>(1)?),
            // Empty: the first record, or the one after the newest retention anchor.
            None => {
                match sqlx::query("SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?
                {
                    Some(a) => (a.try_get::<i64, _>(0)? + 1, a.try_get::<String, _>(1)?),
                    None => (1, GENESIS.to_string()),
                }
            }
        };
        let hash = hash_of(seq, r, &prev);
        sqlx::query(
            "INSERT INTO audit (seq, at_ms, actor, role, action, target, reason, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(seq)
        .bind(r.at_ms)
        .bind(&r.actor)
        .bind(&r.role)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.reason)
        .bind(detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((seq, hash))
    }

    /// Records after `after`, oldest first, at most `limit`.
    pub async fn page(&self, after: i64, limit: i64) -> Result<Vec<Record>, CaseError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor, role, action, target, reason, detail, prev_hash, hash \
             FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// The newest retention anchor: the last pruned record's sequence and hash.
    pub async fn anchor(&self) -> Result<Option<(i64, String)>, CaseError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    /// Retention: deletes the records written before `before` (milliseconds) from the start of the
    /// chain, keeping the last one's sequence and hash as the anchor the chain verifies from. The
    /// number deleted.
    pub async fn prune(&self, before: i64, now: i64) -> Result<u64, CaseError> {
        let _one = self.lock.lock().await;
        let mut tx = self.db.pool.begin().await?;
        let last =
            // Never the newest record: the chain keeps a head to go on from.
            sqlx::query("SELECT seq, hash FROM audit WHERE at_ms < $1 AND seq < (SELECT MAX(seq) FROM audit) ORDER BY seq DESC LIMIT 1")
                .bind(before)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(last) = last else {
            return Ok(0);
        };
        let (seq, hash): (i64, String) = (last.try_get(0)?, last.try_get(1)?);
        sqlx::query("INSERT INTO audit_anchor (seq, hash, at_ms) VALUES ($1, $2, $3)")
            .bind(seq)
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM audit WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Db::sync(&self.db.pool, self.db.backend).await?;
        Ok(r.rows_affected())
    }

    /// Reads the whole chain in pages and verifies it.
    pub async fn verify(&self) -> Result<Verified, CaseError> {
        let anchor = self.anchor().await?;
        let mut all = Vec::new();
        let mut after = anchor.as_ref().map_or(0, |a| a.0);
        loop {
            let page = self.page(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        Ok(verify_from(anchor, all))
    }
}

fn retryable(e: &sqlx::Error) -> bool {
    if is_conflict(e) {
        return true;
    }
    // SQLite: another connection (the cases' pool on the same file) holds the write lock.
    let s = e.to_string();
    s.contains("database is locked") || s.contains("busy")
}

fn record(row: &argus_store::sqlx::any::AnyRow) -> Result<Record, CaseError> {
    let detail: String = row.try_get(7)?;
    Ok(Record {
        seq: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        role: row.try_get(3)?,
        action: row.try_get(4)?,
        target: row.try_get(5)?,
        reason: row.try_get(6)?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| CaseError::Invalid(format!("audit record's detail is not JSON: {e}")))?,
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: i64) -> NewRecord {
        NewRecord {
            at_ms: 1_000 + i,
            actor: "ana".into(),
            role: "admin".into(),
            action: "PUT /v1/users/{name}".into(),
            target: format!("/v1/users/u{i}"),
            reason: "onboarding".into(),
            detail: serde_json::json!({"body_sha256": "ab", "bytes": i}),
        }
    }

    #[test]
    fn a_chain_verifies_and_every_kind_of_damage_is_found() {
        let mut chain = Vec::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=5 {
            let r = rec(seq);
            let hash = hash_of(seq, &r, &prev);
            chain.push(Record {
                seq,
                at_ms: r.at_ms,
                actor: r.actor,
                role: r.role,
                action: r.action,
                target: r.target,
                reason: r.reason,
                detail: r.detail,
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        let ok = verify(chain.clone());
        assert_eq!(ok.records, 5);
        assert_eq!(ok.broken, None);
        assert_eq!(ok.head, Some((5, prev.clone())));

        let mut changed = chain.clone();
        changed[2].reason = "nothing to see".into();
        assert_eq!(verify(changed).broken.map(|b| b.0), Some(3));

        let mut rehashed = chain.clone();
        rehashed[2].actor = "mallory".into();
        rehashed[2].hash = hash_of(3, &rehashed[2].fields(), &rehashed[2].prev_hash);
        assert_eq!(verify(rehashed).broken.map(|b| b.0), Some(4));

        let mut removed = chain.clone();
        removed.remove(1);
        assert_eq!(verify(removed).broken.map(|b| b.0), Some(3));

        let mut swapped = chain.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(swapped).broken.map(|b| b.0), Some(3));

        let mut detail = chain;
        detail[0].detail = serde_json::json!({"body_sha256": "ab", "bytes": 2});
        assert_eq!(verify(detail).broken.map(|b| b.0), Some(1));
    }
}
