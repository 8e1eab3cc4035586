//! Cases and review queues (P3.3, first part): where a decision that asks for review, a ring the graph
//! found, or an analyst's own suspicion becomes work for a person.
//!
//! A case is keyed by its subject (an entity such as `user:u1`, or a ring) and deduplicated: while a
//! case for the subject is open, new triggers join its timeline instead of opening another. A case
//! sits in an inbox with a priority and an SLA due time; "next case" claims the most urgent one with a
//! lock that times out, and never gives one case to two people (the claim is one conditional
//! `UPDATE … RETURNING`, retried when another claimant won). A verdict resolves it with a disposition.
//!
//! Storage is [`argus_store`]: SQLite for the embedded default, PostgreSQL when configured, with one
//! code path and SQL written for both; the cases' migrations (`migrations/NNNN_*.sql`) are applied by
//! it. `tests/store.rs` runs the same suite on both.
//!
//! Not yet here (the rest of P3.3): routing rules, auto-assignment, escalation, the verdict's actions
//! (labels, lists, bans, the outbox), bulk work, the HTTP routes and the console.

use argus_store::sqlx::{self, AnyPool, Row};
use argus_store::{Db, Migration, StoreError};
use serde::Serialize;

/// The cases' migrations, applied by [`argus_store`] in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "cases",
    version: 1,
    name: "cases",
    sql: include_str!("../migrations/0001_cases.sql"),
}];

/// Times are milliseconds since the Unix epoch, given by the caller (the server passes its clock;
/// tests pass their own).
pub type Millis = i64;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("case storage: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no case `{0}`")]
    NotFound(String),
    /// The case is claimed by someone else (whose lock has not timed out), or is not open.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// What a case is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// An entity kind (`user`, `device`, …) or `ring`.
    pub kind: String,
    pub id: String,
}

/// Why a case was opened or updated: one entry of its timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// `decision`, `finding` or `manual`.
    pub source: String,
    /// The decision's event id, the finding's id, or the analyst's name.
    pub reference: String,
    /// What the trigger says (the decision with its rules and score, the finding's accounts, …).
    pub body: serde_json::Value,
}

/// Where a new case goes: its inbox, priority (higher first) and SLA.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub inbox: String,
    pub priority: i64,
    pub sla_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InReview,
    Resolved,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InReview => "in_review",
            Status::Resolved => "resolved",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "in_review" => Status::InReview,
            "resolved" | "closed" => Status::Resolved,
            _ => Status::Open,
        }
    }
}

/// A case as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub id: String,
    pub subject: Subject,
    pub status: Status,
    pub priority: i64,
    pub inbox: String,
    pub sla_due: Millis,
    pub assignee: Option<String>,
    pub lock_owner: Option<String>,
    pub lock_until: Option<Millis>,
    pub disposition: Option<String>,
    pub opened_at: Millis,
    pub updated_at: Millis,
    /// Triggers joined (the first included).
    pub triggers: i64,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at: Millis,
    /// `decision`, `finding`, `manual`, `note`, `claim`, `release` or `verdict`.
    pub kind: String,
    pub actor: String,
    pub body: serde_json::Value,
}

/// The case store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

/// The `cases` columns, in the order `case_of` reads them (a macro: sqlx takes literal SQL only).
macro_rules! case_columns {
    () => {
        "id, subject_kind, subject_id, status, priority, inbox, sla_due, assignee, \
         lock_owner, lock_until, disposition, opened_at, updated_at, triggers"
    };
}

/// Attempts at a write that another writer raced (a unique key taken, a claim won by someone else).
const ATTEMPTS: usize = 8;

fn case_of(r: &sqlx::any::AnyRow) -> Result<Case, sqlx::Error> {
    Ok(Case {
        id: r.try_get("id")?,
        subject: Subject {
            kind: r.try_get("subject_kind")?,
            id: r.try_get("subject_id")?,
        },
        status: Status::parse(&r.try_get::<String, _>("status")?),
        priority: r.try_get("priority")?,
        inbox: r.try_get("inbox")?,
        sla_due: r.try_get("sla_due")?,
        assignee: r.try_get("assignee")?,
        lock_owner: r.try_get("lock_owner")?,
        lock_until: r.try_get("lock_until")?,
        disposition: r.try_get("disposition")?,
        opened_at: r.try_get("opened_at")?,
        updated_at: r.try_get("updated_at")?,
        triggers: r.try_get("triggers")?,
    })
}

/// Whether `e` is a unique-key violation (another writer got there first).
fn is_conflict(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            matches!(d.kind(), sqlx::error::ErrorKind::UniqueViolation)
                || d.code().is_some_and(|c| c == "40001" || c == "40P01")
        }
        _ => false,
    }
}

impl Store {
    /// Opens the store at `url` (see [`Db::open`]) and applies the cases' migrations it lacks.
    pub async fn open(url: &str) -> Result<Store, CaseError> {
        Store::on(Db::open(url).await?).await
    }

    /// The cases on an open database (shared with other components), migrated.
    pub async fn on(db: Db) -> Result<Store, CaseError> {
        db.migrate(MIGRATIONS).await?;
        Ok(Store { pool: db.pool })
    }

    /// Opens a case for `subject`, or, while one is open, adds `trigger` to its timeline (keeping the
    /// higher priority and the earlier SLA). Returns the case.
    pub async fn open_or_join(
        &self,
        subject: &Subject,
        trigger: &Trigger,
        place: &Placement,
        now: Millis,
    ) -> Result<Case, CaseError> {
        if subject.kind.is_empty() || subject.id.is_empty() {
            return Err(CaseError::Invalid(
                "a case's subject needs a kind and an id".into(),
            ));
        }
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match self.try_open_or_join(subject, trigger, place, now).await {
                Ok(c) => return Ok(c),
                Err(CaseError::Db(e)) if is_conflict(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(CaseError::Db(last.unwrap_or(sqlx::Error::PoolTimedOut)))
    }

    async fn try_open_or_join(
        &self,
        subject: &Subject,
        trigger: &Trigger,
        place: &Placement,
        now: Millis,
    ) -> Result<Case, CaseError> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE subject_kind = $1 AND subject_id = $2 \
             AND status <> 'resolved' AND status <> 'closed'"
        ))
        .bind(&subject.kind)
        .bind(&subject.id)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match open {
            Some(row) => {
                let c = case_of(&row)?;
                sqlx::query(
                    "UPDATE cases SET priority = $1, sla_due = $2, updated_at = $3, \
                     triggers = triggers + 1 WHERE id = $4",
                )
                .bind(c.priority.max(place.priority))
                .bind(c.sla_due.min(now.saturating_add(place.sla_ms)))
                .bind(now)
                .bind(&c.id)
                .execute(&mut *tx)
                .await?;
                c.id
            }
            None => {
                let id = format!("{}:{}@{now}", subject.kind, subject.id);
                sqlx::query(concat!(
                    "INSERT INTO cases (",
                    case_columns!(),
                    ") VALUES ($1, $2, $3, 'open', $4, $5, $6, NULL, NULL, NULL, NULL, $7, $7, 1)"
                ))
                .bind(&id)
                .bind(&subject.kind)
                .bind(&subject.id)
                .bind(place.priority)
                .bind(&place.inbox)
                .bind(now.saturating_add(place.sla_ms))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        append(
            &mut tx,
            &id,
            now,
            &trigger.source,
            &trigger.reference,
            &trigger.body,
        )
        .await?;
        tx.commit().await?;
        self.get(&id).await
    }

    /// The case `id`.
    pub async fn get(&self, id: &str) -> Result<Case, CaseError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CaseError::NotFound(id.to_string()))?;
        Ok(case_of(&row)?)
    }

    /// The case's timeline, oldest first.
    pub async fn timeline(&self, id: &str) -> Result<Vec<Entry>, CaseError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, actor, body FROM case_events WHERE case_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                Ok(Entry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(CaseError::from)
    }

    /// Cases of `inbox` (all inboxes when `None`) with `status` (any when `None`), most urgent first:
    /// priority, then SLA due time, then age. At most `limit`.
    pub async fn list(
        &self,
        inbox: Option<&str>,
        status: Option<Status>,
        limit: i64,
    ) -> Result<Vec<Case>, CaseError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE ($1 IS NULL OR inbox = $1) AND ($2 IS NULL OR status = $2) \
             ORDER BY priority DESC, sla_due, opened_at, id LIMIT $3"
        ))
        .bind(inbox)
        .bind(status.map(Status::as_str))
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| case_of(r).map_err(CaseError::from))
            .collect()
    }

    /// Claims the most urgent unresolved case of `inbox` that nobody holds (or whose holder's lock
    /// has expired) for `user`, until `now + lock_ms`. One conditional update: two claimants never get
    /// the same case; the one that loses the race takes the next.
    pub async fn claim_next(
        &self,
        inbox: &str,
        user: &str,
        now: Millis,
        lock_ms: i64,
    ) -> Result<Option<Case>, CaseError> {
        if user.is_empty() || lock_ms <= 0 {
            return Err(CaseError::Invalid(
                "a claim needs a user and a positive lock time".into(),
            ));
        }
        for _ in 0..ATTEMPTS {
            let Some(row) = sqlx::query(
                "SELECT id FROM cases WHERE inbox = $1 AND status <> 'resolved' AND status <> 'closed' \
                 AND (lock_until IS NULL OR lock_until <= $2) \
                 ORDER BY priority DESC, sla_due, opened_at, id LIMIT 1",
            )
            .bind(inbox)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let id: String = row.try_get("id")?;
            // Taken only if still free: a claimant that raced us leaves 0 rows updated.
            let won = sqlx::query(
                "UPDATE cases SET status = 'in_review', assignee = $1, lock_owner = $1, \
                 lock_until = $2, updated_at = $3 WHERE id = $4 \
                 AND status <> 'resolved' AND status <> 'closed' \
                 AND (lock_until IS NULL OR lock_until <= $3)",
            )
            .bind(user)
            .bind(now.saturating_add(lock_ms))
            .bind(now)
            .bind(&id)
            .execute(&self.pool)
            .await?
            .rows_affected()
                == 1;
            if won {
                let mut tx = self.pool.begin().await?;
                append(
                    &mut tx,
                    &id,
                    now,
                    "claim",
                    user,
                    &serde_json::json!({"lock_ms": lock_ms}),
                )
                .await?;
                tx.commit().await?;
                return Ok(Some(self.get(&id).await?));
            }
        }
        Ok(None)
    }

    /// Gives a claimed case back to its inbox (only its lock holder can).
    pub async fn release(&self, id: &str, user: &str, now: Millis) -> Result<Case, CaseError> {
        self.held(id, user, now).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE cases SET status = 'open', lock_owner = NULL, lock_until = NULL, \
             updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, id, now, "release", user, &serde_json::Value::Null).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// A note on the timeline (anyone may add one, claimed or not).
    pub async fn note(
        &self,
        id: &str,
        user: &str,
        text: &str,
        now: Millis,
    ) -> Result<Case, CaseError> {
        let c = self.get(id).await?;
        if text.trim().is_empty() {
            return Err(CaseError::Invalid("a note needs text".into()));
        }
        let mut tx = self.pool.begin().await?;
        append(
            &mut tx,
            &c.id,
            now,
            "note",
            user,
            &serde_json::json!({"text": text}),
        )
        .await?;
        sqlx::query("UPDATE cases SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Resolves a case the user holds with a disposition (`confirmed_fraud`, `legitimate`,
    /// `not_enough_evidence`, …), recorded on the timeline with `details`.
    pub async fn resolve(
        &self,
        id: &str,
        user: &str,
        disposition: &str,
        details: &serde_json::Value,
        now: Millis,
    ) -> Result<Case, CaseError> {
        if disposition.is_empty() {
            return Err(CaseError::Invalid("a verdict needs a disposition".into()));
        }
        self.held(id, user, now).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE cases SET status = 'resolved', disposition = $1, lock_owner = NULL, \
             lock_until = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(disposition)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let body = serde_json::json!({"disposition": disposition, "details": details});
        append(&mut tx, id, now, "verdict", user, &body).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// The case, if `user` holds its lock now; else why not.
    async fn held(&self, id: &str, user: &str, now: Millis) -> Result<Case, CaseError> {
        let c = self.get(id).await?;
        if c.status == Status::Resolved {
            return Err(CaseError::Conflict(format!("case `{id}` is resolved")));
        }
        match (&c.lock_owner, c.lock_until) {
            (Some(o), Some(until)) if o == user && until > now => Ok(c),
            (Some(o), Some(until)) if until > now => Err(CaseError::Conflict(format!(
                "case `{id}` is claimed by `{o}` until {until}"
            ))),
            _ => Err(CaseError::Conflict(format!(
                "claim case `{id}` first (`{user}` holds no lock on it)"
            ))),
        }
    }
}

/// Appends one timeline entry (the next sequence number of the case).
async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    at: Millis,
    kind: &str,
    actor: &str,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let next: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM case_events WHERE case_id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("next")?;
    sqlx::query(
        "INSERT INTO case_events (case_id, seq, at, kind, actor, body) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(next)
    .bind(at)
    .bind(kind)
    .bind(actor)
    .bind(body.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
