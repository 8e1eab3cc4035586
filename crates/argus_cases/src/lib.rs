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
use argus_store::{is_conflict, Db, Migration, StoreError};
use serde::Serialize;

/// The cases' migrations, applied by [`argus_store`] in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "cases",
        version: 1,
        name: "cases",
        sql: include_str!("../migrations/0001_cases.sql"),
    },
    Migration {
        component: "cases",
        version: 2,
        name: "work",
        sql: include_str!("../migrations/0002_work.sql"),
    },
    Migration {
        component: "cases",
        version: 3,
        name: "action_subject",
        sql: include_str!("../migrations/0003_action_subject.sql"),
    },
    Migration {
        component: "cases",
        version: 4,
        name: "lookups",
        sql: include_str!("../migrations/0004_lookups.sql"),
    },
    Migration {
        component: "cases",
        version: 5,
        name: "queue_order",
        sql: include_str!("../migrations/0005_queue_order.sql"),
    },
    Migration {
        component: "cases",
        version: 6,
        name: "decision_once",
        sql: include_str!("../migrations/0006_decision_once.sql"),
    },
];

pub mod actions;
pub mod audit;
pub mod config;
pub mod users;

pub use actions::{Action, ActionStatus, Job, NewAction};
pub use config::{CasesConfig, Inbox, Intake, Routing};
pub use users::{Perm, Perms, Role, SessionInfo, PRESETS};

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
    #[error("{0}")]
    Unauthorized(String),
    /// A concurrent change won (the case was resolved meanwhile, say); the caller may try again.
    #[error("a concurrent change to the case won; try again")]
    Raced,
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
    /// Users a new case is assigned to (the one with the fewest unresolved assigned cases, below
    /// `cap`); empty: nobody until someone claims it.
    pub assign_to: Vec<String>,
    pub cap: i64,
}

impl Placement {
    /// Where `routing` puts a case of `inbox` with `priority`.
    pub fn of(inbox: &Inbox, priority: i64, claim_cap: i64) -> Placement {
        Placement {
            inbox: inbox.name.clone(),
            priority,
            sla_ms: inbox.sla_ms,
            assign_to: inbox.auto_assign.clone(),
            cap: claim_cap,
        }
    }
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
    pub tags: Vec<String>,
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
    pub(crate) pool: AnyPool,
    backend: argus_store::Backend,
}

/// The `cases` columns, in the order `case_of` reads them (a macro: sqlx takes literal SQL only).
macro_rules! case_columns {
    () => {
        "id, subject_kind, subject_id, status, priority, inbox, sla_due, assignee, \
         lock_owner, lock_until, disposition, opened_at, updated_at, triggers, tags"
    };
}
pub(crate) use case_columns;

/// Attempts at a write that another writer raced (a unique key taken, a claim won by someone else).
const ATTEMPTS: usize = 8;

pub(crate) fn case_of(r: &sqlx::any::AnyRow) -> Result<Case, sqlx::Error> {
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
        tags: r
            .try_get::<String, _>("tags")?
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

impl Store {
    /// Opens the store at `url` (see [`Db::open`]) and applies the cases' migrations it lacks.
    pub async fn open(url: &str) -> Result<Store, CaseError> {
        Store::on(Db::open(url).await?).await
    }

    /// The cases on an open database (shared with other components), migrated.
    pub async fn on(db: Db) -> Result<Store, CaseError> {
        db.migrate(MIGRATIONS).await?;
        Ok(Store {
            pool: db.pool,
            backend: db.backend,
        })
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
        self.open_or_join_with(subject, &[], trigger, place, now)
            .await
    }

    /// As [`open_or_join`](Self::open_or_join), recording `members` (a ring's accounts) on the case:
    /// later decisions about any of them join it ([`intake_decision`](Self::intake_decision)).
    pub async fn open_or_join_with(
        &self,
        subject: &Subject,
        members: &[String],
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
            match self
                .try_open_or_join(subject, members, trigger, place, now)
                .await
            {
                Ok(c) => return Ok(c),
                Err(CaseError::Db(e)) if is_conflict(&e) => last = Some(e),
                Err(CaseError::Raced) => {}
                Err(e) => return Err(e),
            }
        }
        Err(CaseError::Db(last.unwrap_or(sqlx::Error::PoolTimedOut)))
    }

    async fn try_open_or_join(
        &self,
        subject: &Subject,
        members: &[String],
        trigger: &Trigger,
        place: &Placement,
        now: Millis,
    ) -> Result<Case, CaseError> {
        if let Some(id) = self.decision_taken(trigger).await? {
            return self.get(&id).await;
        }
        let mut tx = self.pool.begin().await?;
        let id = open_or_join_tx(&mut tx, subject, members, trigger, place, now).await?;
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
    ///
    /// Cases assigned to `user` come first; cases assigned to someone else are left to them. A user
    /// who holds `cap` claims already gets a conflict (the per-user cap).
    pub async fn claim_next(
        &self,
        inbox: &str,
        user: &str,
        now: Millis,
        lock_ms: i64,
        cap: i64,
    ) -> Result<Option<Case>, CaseError> {
        if user.is_empty() || lock_ms <= 0 {
            return Err(CaseError::Invalid(
                "a claim needs a user and a positive lock time".into(),
            ));
        }
        self.below_cap(user, now, cap).await?;
        for _ in 0..ATTEMPTS {
            let Some(id) = self.next_candidate(inbox, user, now).await? else {
                return Ok(None);
            };
            if self.try_claim(&id, user, now, lock_ms).await? {
                return Ok(Some(self.get(&id).await?));
            }
        }
        Ok(None)
    }

    /// The case `claim_next` tries: the user's own assigned case first; else the most urgent of the
    /// inbox's unassigned open cases and its cases whose claim expired. Each is a range read of the
    /// queue index (one query with a `CASE` in its order would sort the whole inbox).
    async fn next_candidate(
        &self,
        inbox: &str,
        user: &str,
        now: Millis,
    ) -> Result<Option<String>, CaseError> {
        let mine = sqlx::query(
            "SELECT id FROM cases WHERE inbox = $1 AND assignee = $2 \
             AND status <> 'resolved' AND status <> 'closed' AND (lock_until IS NULL OR lock_until <= $3) \
             ORDER BY priority DESC, sla_due, opened_at, id LIMIT 1",
        )
        .bind(inbox)
        .bind(user)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = mine {
            return Ok(Some(r.try_get("id")?));
        }
        let mut best: Option<(i64, i64, i64, String)> = None;
        for q in [
            "SELECT id, priority, sla_due, opened_at FROM cases WHERE inbox = $1 AND status = 'open' \
             AND assignee IS NULL AND (lock_until IS NULL OR lock_until <= $2) \
             ORDER BY priority DESC, sla_due, opened_at, id LIMIT 1",
            "SELECT id, priority, sla_due, opened_at FROM cases WHERE inbox = $1 AND status = 'in_review' \
             AND lock_until <= $2 ORDER BY priority DESC, sla_due, opened_at, id LIMIT 1",
        ] {
            if let Some(r) = sqlx::query(q)
                .bind(inbox)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
            {
                let key = (
                    -r.try_get::<i64, _>("priority")?,
                    r.try_get::<i64, _>("sla_due")?,
                    r.try_get::<i64, _>("opened_at")?,
                    r.try_get::<String, _>("id")?,
                );
                if best.as_ref().is_none_or(|b| key < *b) {
                    best = Some(key);
                }
            }
        }
        Ok(best.map(|b| b.3))
    }

    /// Claims the case `id` for `user` (free, or its lock expired, or already `user`'s: renewed).
    pub async fn claim(
        &self,
        id: &str,
        user: &str,
        now: Millis,
        lock_ms: i64,
        cap: i64,
    ) -> Result<Case, CaseError> {
        if user.is_empty() || lock_ms <= 0 {
            return Err(CaseError::Invalid(
                "a claim needs a user and a positive lock time".into(),
            ));
        }
        let c = self.get(id).await?;
        if c.status == Status::Resolved {
            return Err(CaseError::Conflict(format!("case `{id}` is resolved")));
        }
        let mine = c.lock_owner.as_deref() == Some(user) && c.lock_until.is_some_and(|u| u > now);
        if !mine {
            self.below_cap(user, now, cap).await?;
        }
        if mine || self.try_claim(id, user, now, lock_ms).await? {
            if mine {
                sqlx::query("UPDATE cases SET lock_until = $1 WHERE id = $2")
                    .bind(now.saturating_add(lock_ms))
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            return self.get(id).await;
        }
        let c = self.get(id).await?;
        Err(CaseError::Conflict(format!(
            "case `{id}` is claimed by `{}` until {}",
            c.lock_owner.unwrap_or_default(),
            c.lock_until.unwrap_or_default()
        )))
    }

    async fn below_cap(&self, user: &str, now: Millis, cap: i64) -> Result<(), CaseError> {
        let held: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM cases WHERE lock_owner = $1 AND lock_until > $2 \
             AND status = 'in_review'",
        )
        .bind(user)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        if held >= cap {
            return Err(CaseError::Conflict(format!(
                "`{user}` already holds {held} claimed cases (the cap is {cap}): resolve or release one first"
            )));
        }
        Ok(())
    }

    /// One conditional update: true when `user` got the case.
    async fn try_claim(
        &self,
        id: &str,
        user: &str,
        now: Millis,
        lock_ms: i64,
    ) -> Result<bool, CaseError> {
        // The claim and its timeline entry commit together. Taken only if still free: a claimant
        // that raced us leaves 0 rows updated (on PostgreSQL it waits for our row lock, then
        // re-checks the condition).
        let mut tx = self.pool.begin().await?;
        let won = sqlx::query(
            "UPDATE cases SET status = 'in_review', assignee = $1, lock_owner = $1, \
             lock_until = $2, updated_at = $3 WHERE id = $4 \
             AND status <> 'resolved' AND status <> 'closed' \
             AND (lock_until IS NULL OR lock_until <= $3)",
        )
        .bind(user)
        .bind(now.saturating_add(lock_ms))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if won {
            append(
                &mut tx,
                id,
                now,
                "claim",
                user,
                &serde_json::json!({"lock_ms": lock_ms}),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(won)
    }

    /// Runs `update` (binding `$1` = now, `$2` = id, `$3` = user, `$4` = `extra` when given) only while `user` holds the case's
    /// lock, and records `kind` on the timeline in the same transaction; a lock lost meanwhile is a
    /// conflict, never an overwrite.
    #[allow(clippy::too_many_arguments)]
    async fn held_update(
        &self,
        id: &str,
        user: &str,
        now: Millis,
        update: &'static str,
        extra: Option<&str>,
        kind: &str,
        body: &serde_json::Value,
        actions: &[NewAction],
    ) -> Result<Case, CaseError> {
        self.held(id, user, now).await?;
        let mut tx = self.pool.begin().await?;
        let mut q = sqlx::query(update).bind(now).bind(id).bind(user);
        if let Some(x) = extra {
            q = q.bind(x);
        }
        let n = q.execute(&mut *tx).await?.rows_affected();
        if n != 1 {
            return Err(CaseError::Conflict(format!(
                "case `{id}` changed meanwhile (`{user}` no longer holds its lock)"
            )));
        }
        for a in actions {
            actions::insert(&mut tx, a, Some(id), None, now).await?;
        }
        append(&mut tx, id, now, kind, user, body).await?;
        tx.commit().await?;
        if kind == "verdict" {
            self.durable().await?;
        }
        self.get(id).await
    }

    /// After a person's write that must survive a power cut (a verdict, a bulk job, a user): see
    /// [`Db::sync`].
    pub(crate) async fn durable(&self) -> Result<(), CaseError> {
        Db::sync(&self.pool, self.backend).await?;
        Ok(())
    }

    /// Gives a claimed case back to its inbox (only its lock holder can).
    pub async fn release(&self, id: &str, user: &str, now: Millis) -> Result<Case, CaseError> {
        self.held_update(
            id,
            user,
            now,
            "UPDATE cases SET status = 'open', lock_owner = NULL, lock_until = NULL, \
             assignee = NULL, updated_at = $1 WHERE id = $2 AND lock_owner = $3 AND lock_until > $1 \
             AND status <> 'resolved' AND status <> 'closed'",
            None,
            "release",
            &serde_json::Value::Null,
            &[],
        )
        .await
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
        // The row first (it locks the case for `append`).
        sqlx::query("UPDATE cases SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append(
            &mut tx,
            &c.id,
            now,
            "note",
            user,
            &serde_json::json!({"text": text}),
        )
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
        actions: &[NewAction],
        now: Millis,
    ) -> Result<Case, CaseError> {
        if disposition.is_empty() {
            return Err(CaseError::Invalid("a verdict needs a disposition".into()));
        }
        // The verdict and the actions it takes commit together: a crash leaves both or neither, and
        // the dispatcher delivers the actions after a restart.
        let body = serde_json::json!({"disposition": disposition, "details": details});
        self.held_update(
            id,
            user,
            now,
            "UPDATE cases SET status = 'resolved', disposition = $4, lock_owner = NULL, \
             lock_until = NULL, updated_at = $1 WHERE id = $2 AND lock_owner = $3 AND lock_until > $1 \
             AND status <> 'resolved' AND status <> 'closed'",
            Some(disposition),
            "verdict",
            &body,
            actions,
        )
        .await
    }

    /// How many verdicts the case has had (a reopened case's next verdict is number this + 1).
    pub async fn verdicts(&self, id: &str) -> Result<i64, CaseError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM case_events WHERE case_id = $1 AND kind = 'verdict'",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Reopens a resolved case, unassigned, with a new SLA of `sla_ms` (a new trigger of its
    /// subject meanwhile opened another: conflict).
    pub async fn reopen(
        &self,
        id: &str,
        user: &str,
        reason: &str,
        sla_ms: i64,
        now: Millis,
    ) -> Result<Case, CaseError> {
        let c = self.get(id).await?;
        if c.status != Status::Resolved {
            return Err(CaseError::Conflict(format!("case `{id}` is not resolved")));
        }
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE cases SET status = 'open', disposition = NULL, assignee = NULL, \
             lock_owner = NULL, lock_until = NULL, sla_due = $3, updated_at = $1 \
             WHERE id = $2 AND status = 'resolved'",
        )
        .bind(now)
        .bind(id)
        .bind(now.saturating_add(sla_ms))
        .execute(&mut *tx)
        .await;
        match r {
            Ok(r) if r.rows_affected() == 0 => {
                return Err(CaseError::Conflict(format!("case `{id}` is not resolved")))
            }
            Err(e) if is_conflict(&e) => {
                return Err(CaseError::Conflict(format!(
                    "another case about {}:{} is open",
                    c.subject.kind, c.subject.id
                )))
            }
            r => {
                r?;
            }
        }
        append(
            &mut tx,
            id,
            now,
            "reopen",
            user,
            &serde_json::json!({"reason": reason}),
        )
        .await?;
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
pub(crate) async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    at: Millis,
    kind: &str,
    actor: &str,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    // The next number in the same statement. Every caller has updated the case's row earlier in
    // this transaction, which locks it (PostgreSQL: until the transaction ends; SQLite has one
    // writer), so two appends to one case never take the same number.
    sqlx::query(
        "INSERT INTO case_events (case_id, seq, at, kind, actor, body) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM case_events WHERE case_id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(kind)
    .bind(actor)
    .bind(body.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One record's trigger for [`Store::intake_batch`].
#[derive(Debug, Clone)]
pub enum IntakeItem {
    Decision {
        subject: Subject,
        trigger: Trigger,
        place: Placement,
    },
    Ring {
        detector: String,
        members: Vec<String>,
        trigger: Trigger,
        place: Placement,
    },
}

/// A ring's accounts, sorted and unique; refused when empty.
fn ring_members(members: &[String]) -> Result<Vec<String>, CaseError> {
    let mut m = members.to_vec();
    m.sort();
    m.dedup();
    if m.is_empty() {
        return Err(CaseError::Invalid("a ring needs accounts".into()));
    }
    Ok(m)
}

/// The open case that names `member` as a member: any (`prefix` `None`), or a ring case of the
/// detector whose subject starts with `prefix`.
async fn ring_of_member(
    conn: &mut sqlx::AnyConnection,
    member: &str,
    prefix: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let r = match prefix {
        None => {
            sqlx::query(
                "SELECT c.id AS id FROM case_members m JOIN cases c ON c.id = m.case_id \
                 WHERE m.member = $1 AND c.status <> 'resolved' AND c.status <> 'closed' \
                 ORDER BY c.opened_at, c.id LIMIT 1",
            )
            .bind(member)
            .fetch_optional(&mut *conn)
            .await?
        }
        Some(p) => {
            sqlx::query(
                "SELECT c.id AS id FROM case_members m JOIN cases c ON c.id = m.case_id \
                 WHERE m.member = $1 AND c.subject_kind = 'ring' \
                 AND c.status <> 'resolved' AND c.status <> 'closed' \
                 AND substr(c.subject_id, 1, length($2)) = $2 ORDER BY c.opened_at, c.id LIMIT 1",
            )
            .bind(member)
            .bind(p)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    r.map(|r| r.try_get("id")).transpose()
}

/// The case that already holds this decision trigger (by its event id), if any.
async fn decision_taken_tx(
    conn: &mut sqlx::AnyConnection,
    trigger: &Trigger,
) -> Result<Option<String>, sqlx::Error> {
    if trigger.source != "decision" || trigger.reference.is_empty() {
        return Ok(None);
    }
    let r = sqlx::query(
        "SELECT case_id FROM case_events WHERE actor = $1 AND kind = 'decision' LIMIT 1",
    )
    .bind(&trigger.reference)
    .fetch_optional(&mut *conn)
    .await?;
    r.map(|r| r.try_get("case_id")).transpose()
}

/// Within `tx`: adds `trigger` (and `members`) to the case `id` if it is still open (false when a
/// verdict resolved it meanwhile). A finding already on the case is not added again.
async fn join_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    members: &[String],
    trigger: &Trigger,
    priority: i64,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    if finding_taken(tx, id, trigger).await? {
        return Ok(true);
    }
    let n = sqlx::query(
        "UPDATE cases SET priority = CASE WHEN priority > $1 THEN priority ELSE $1 END, \
         updated_at = $2, triggers = triggers + 1 WHERE id = $3 \
         AND status <> 'resolved' AND status <> 'closed'",
    )
    .bind(priority)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    add_members(tx, id, members).await?;
    append(
        tx,
        id,
        now,
        &trigger.source,
        &trigger.reference,
        &trigger.body,
    )
    .await?;
    Ok(true)
}

/// Within `tx`: opens a case for `subject`, or joins its open one (keeping the higher priority and
/// the earlier SLA); its id. `Raced` when the open case was resolved meanwhile.
async fn open_or_join_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    subject: &Subject,
    members: &[String],
    trigger: &Trigger,
    place: &Placement,
    now: Millis,
) -> Result<String, CaseError> {
    let open = sqlx::query(concat!(
        "SELECT ",
        case_columns!(),
        " FROM cases WHERE subject_kind = $1 AND subject_id = $2 \
         AND status <> 'resolved' AND status <> 'closed'"
    ))
    .bind(&subject.kind)
    .bind(&subject.id)
    .fetch_optional(&mut **tx)
    .await?;
    let id = match open {
        Some(row) => {
            let c = case_of(&row)?;
            if finding_taken(tx, &c.id, trigger).await? {
                return Ok(c.id);
            }
            // Only while still open: a verdict that committed meanwhile makes this a new case.
            let n = sqlx::query(
                "UPDATE cases SET priority = $1, sla_due = $2, updated_at = $3, \
                 triggers = triggers + 1 WHERE id = $4 AND status <> 'resolved' AND status <> 'closed'",
            )
            .bind(c.priority.max(place.priority))
            .bind(c.sla_due.min(now.saturating_add(place.sla_ms)))
            .bind(now)
            .bind(&c.id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(CaseError::Raced);
            }
            c.id
        }
        None => {
            let id = format!("{}:{}@{now}", subject.kind, subject.id);
            sqlx::query(concat!(
                "INSERT INTO cases (",
                case_columns!(),
                ") VALUES ($1, $2, $3, 'open', $4, $5, $6, NULL, NULL, NULL, NULL, $7, $7, 1, '')"
            ))
            .bind(&id)
            .bind(&subject.kind)
            .bind(&subject.id)
            .bind(place.priority)
            .bind(&place.inbox)
            .bind(now.saturating_add(place.sla_ms))
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if let Some(user) = assignee_for(tx, place).await? {
                sqlx::query("UPDATE cases SET assignee = $1 WHERE id = $2")
                    .bind(&user)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
            }
            id
        }
    };
    add_members(tx, &id, members).await?;
    append(
        tx,
        &id,
        now,
        &trigger.source,
        &trigger.reference,
        &trigger.body,
    )
    .await?;
    Ok(id)
}

/// Whether the case `id` already has this finding on its timeline.
async fn finding_taken(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    trigger: &Trigger,
) -> Result<bool, sqlx::Error> {
    if trigger.source != "finding" {
        return Ok(false);
    }
    Ok(sqlx::query(
        "SELECT 1 AS x FROM case_events WHERE case_id = $1 AND actor = $2 AND kind = 'finding'",
    )
    .bind(id)
    .bind(&trigger.reference)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// Records `members` on the case (members already there stay: a ring only grows while its case is
/// open).
async fn add_members(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    members: &[String],
) -> Result<(), sqlx::Error> {
    for m in members {
        let have =
            sqlx::query("SELECT 1 AS x FROM case_members WHERE case_id = $1 AND member = $2")
                .bind(id)
                .bind(m)
                .fetch_optional(&mut **tx)
                .await?;
        if have.is_none() {
            sqlx::query("INSERT INTO case_members (case_id, member) VALUES ($1, $2)")
                .bind(id)
                .bind(m)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The user of `place.assign_to` with the fewest unresolved assigned cases, if below the cap.
async fn assignee_for(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    place: &Placement,
) -> Result<Option<String>, sqlx::Error> {
    let mut best: Option<(i64, &String)> = None;
    for u in &place.assign_to {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM cases WHERE assignee = $1 \
             AND status <> 'resolved' AND status <> 'closed'",
        )
        .bind(u)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
        if n < place.cap && best.is_none_or(|(b, _)| n < b) {
            best = Some((n, u));
        }
    }
    Ok(best.map(|(_, u)| u.clone()))
}

/// A position in the queue order (priority descending, SLA, age, id), for keyset pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub priority: i64,
    pub sla_due: i64,
    pub opened_at: i64,
    pub id: String,
}

impl Cursor {
    pub fn of(c: &Case) -> Cursor {
        Cursor {
            priority: c.priority,
            sla_due: c.sla_due,
            opened_at: c.opened_at,
            id: c.id.clone(),
        }
    }
    /// `priority.sla_due.opened_at.id` (the id may contain dots: it is last).
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.priority, self.sla_due, self.opened_at, self.id
        )
    }
    pub fn decode(s: &str) -> Option<Cursor> {
        let mut it = s.splitn(4, '.');
        Some(Cursor {
            priority: it.next()?.parse().ok()?,
            sla_due: it.next()?.parse().ok()?,
            opened_at: it.next()?.parse().ok()?,
            id: it.next()?.to_string(),
        })
    }
}

/// What [`Store::page`] lists.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub inbox: Option<String>,
    /// Only cases in these inboxes (a caller's scope); `None`: any.
    pub inboxes: Option<Vec<String>>,
    pub status: Option<Status>,
    pub assignee: Option<String>,
    /// Cases about this subject id (any kind), or ring cases naming it as a member.
    pub subject: Option<String>,
}

impl Store {
    /// A decision about `subject`: joins the open ring case that names it as a member, if any, else
    /// opens or joins the subject's own case.
    pub async fn intake_decision(
        &self,
        subject: &Subject,
        trigger: &Trigger,
        place: &Placement,
        now: Millis,
    ) -> Result<Case, CaseError> {
        if let Some(id) = self.decision_taken(trigger).await? {
            return self.get(&id).await;
        }
        let ring = sqlx::query(
            "SELECT c.id AS id FROM case_members m JOIN cases c ON c.id = m.case_id \
             WHERE m.member = $1 AND c.status <> 'resolved' AND c.status <> 'closed' \
             ORDER BY c.opened_at, c.id LIMIT 1",
        )
        .bind(&subject.id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = ring {
            let id: String = r.try_get("id")?;
            if let Some(c) = self
                .try_join(&id, &[], trigger, place.priority, now)
                .await?
            {
                return Ok(c);
            }
        }
        self.open_or_join(subject, trigger, place, now).await
    }

    /// A ring the graph found (`detector`, its `members`): joins the open ring case of the same
    /// detector that names any of its accounts (a ring that grew, even by an account that sorts
    /// first, stays one case), else opens or joins `ring:<detector>:<first account>`.
    pub async fn intake_ring(
        &self,
        detector: &str,
        members: &[String],
        trigger: &Trigger,
        place: &Placement,
        now: Millis,
    ) -> Result<Case, CaseError> {
        let members = ring_members(members)?;
        let first = members[0].clone();
        let prefix = format!("{detector}:");
        for m in &members {
            let found = {
                let mut conn = self.pool.acquire().await?;
                ring_of_member(&mut conn, m, Some(&prefix)).await?
            };
            if let Some(id) = found {
                if let Some(c) = self
                    .try_join(&id, &members, trigger, place.priority, now)
                    .await?
                {
                    return Ok(c);
                }
            }
        }
        let subject = Subject {
            kind: "ring".into(),
            id: format!("{prefix}{first}"),
        };
        self.open_or_join_with(&subject, &members, trigger, place, now)
            .await
    }

    /// Adds `trigger` (and `members`) to the case `id` if it is still open: `None` when a verdict
    /// resolved it meanwhile. A finding already on the case is not added again.
    async fn try_join(
        &self,
        id: &str,
        members: &[String],
        trigger: &Trigger,
        priority: i64,
        now: Millis,
    ) -> Result<Option<Case>, CaseError> {
        let mut tx = self.pool.begin().await?;
        if !join_tx(&mut tx, id, members, trigger, priority, now).await? {
            return Ok(None);
        }
        tx.commit().await?;
        self.get(id).await.map(Some)
    }

    /// Many records' triggers in one transaction (case intake under load): the same steps as
    /// [`intake_decision`](Self::intake_decision) and [`intake_ring`](Self::intake_ring), one commit
    /// for all. If the batch fails (another writer raced it), it is rolled back and each item goes
    /// through the one-at-a-time path; both take each trigger once, so nothing is doubled.
    pub async fn intake_batch(&self, items: &[IntakeItem], now: Millis) -> Result<(), CaseError> {
        match self.try_intake_batch(items, now).await {
            Ok(()) => Ok(()),
            Err(CaseError::Invalid(e)) => Err(CaseError::Invalid(e)),
            Err(_) => {
                for it in items {
                    match it {
                        IntakeItem::Decision {
                            subject,
                            trigger,
                            place,
                        } => {
                            self.intake_decision(subject, trigger, place, now).await?;
                        }
                        IntakeItem::Ring {
                            detector,
                            members,
                            trigger,
                            place,
                        } => {
                            self.intake_ring(detector, members, trigger, place, now)
                                .await?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    async fn try_intake_batch(&self, items: &[IntakeItem], now: Millis) -> Result<(), CaseError> {
        let mut tx = self.pool.begin().await?;
        for it in items {
            match it {
                IntakeItem::Decision {
                    subject,
                    trigger,
                    place,
                } => {
                    if decision_taken_tx(&mut tx, trigger).await?.is_some() {
                        continue;
                    }
                    if let Some(id) = ring_of_member(&mut tx, &subject.id, None).await? {
                        if join_tx(&mut tx, &id, &[], trigger, place.priority, now).await? {
                            continue;
                        }
                    }
                    open_or_join_tx(&mut tx, subject, &[], trigger, place, now).await?;
                }
                IntakeItem::Ring {
                    detector,
                    members,
                    trigger,
                    place,
                } => {
                    let members = ring_members(members)?;
                    let prefix = format!("{detector}:");
                    let mut joined = false;
                    for m in &members {
                        if let Some(id) = ring_of_member(&mut tx, m, Some(&prefix)).await? {
                            if join_tx(&mut tx, &id, &members, trigger, place.priority, now).await?
                            {
                                joined = true;
                                break;
                            }
                        }
                    }
                    if !joined {
                        let subject = Subject {
                            kind: "ring".into(),
                            id: format!("{prefix}{}", members[0]),
                        };
                        open_or_join_tx(&mut tx, &subject, &members, trigger, place, now).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The case that already holds this decision (by its event id), if any: intake takes each
    /// decision once, whatever happened to the intake cursor.
    async fn decision_taken(&self, trigger: &Trigger) -> Result<Option<String>, CaseError> {
        let mut conn = self.pool.acquire().await?;
        Ok(decision_taken_tx(&mut conn, trigger).await?)
    }

    /// The members a ring case names, in order.
    pub async fn members(&self, id: &str) -> Result<Vec<String>, CaseError> {
        let rows =
            sqlx::query("SELECT member FROM case_members WHERE case_id = $1 ORDER BY member")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| r.try_get("member").map_err(CaseError::from))
            .collect()
    }

    /// One page of cases in queue order after `after`, at most `limit` (1–500), and the cursor of
    /// the next page when there may be one. Keyset paging: as fast on page 1,000 as on page 1.
    pub async fn page(
        &self,
        f: &Filter,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<(Vec<Case>, Option<Cursor>), CaseError> {
        let limit = limit.clamp(1, 500);
        let mut cases = Vec::new();
        match after {
            None => cases = self.page_part(f, None, limit).await?,
            Some(c) => {
                // Keyset paging in two seeks: the rest of the cursor's priority, then the lower
                // priorities. Each is a range of the queue index in its order (a single `OR` of
                // the two would make the database scan from the start).
                cases.extend(self.page_part(f, Some((c, true)), limit).await?);
                if (cases.len() as i64) < limit {
                    let rest = limit - cases.len() as i64;
                    cases.extend(self.page_part(f, Some((c, false)), rest).await?);
                }
            }
        }
        let next = (cases.len() as i64 == limit)
            .then(|| cases.last().map(Cursor::of))
            .flatten();
        Ok((cases, next))
    }

    /// One range of the queue order: from the start (`None`), after the cursor within its priority
    /// (`true`), or the priorities below it (`false`). Only the filters given are in the SQL, so that
    /// the database can use the queue indexes (`migrations/0005_queue_order.sql`).
    async fn page_part(
        &self,
        f: &Filter,
        after: Option<(&Cursor, bool)>,
        limit: i64,
    ) -> Result<Vec<Case>, CaseError> {
        let mut sql = String::from(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE 1 = 1"
        ));
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if f.inbox.is_some() {
            sql += &format!(" AND inbox = ${}", next());
        }
        match f.inboxes.as_deref() {
            None => {}
            Some([]) => sql += " AND 1 = 0",
            Some(xs) => {
                let ks: Vec<String> = xs.iter().map(|_| format!("${}", next())).collect();
                sql += &format!(" AND inbox IN ({})", ks.join(", "));
            }
        }
        if f.status.is_some() {
            sql += &format!(" AND status = ${}", next());
        }
        if f.assignee.is_some() {
            sql += &format!(" AND assignee = ${}", next());
        }
        if f.subject.is_some() {
            let k = next();
            sql += &format!(
                " AND id IN (SELECT id FROM cases WHERE subject_id = ${k} \
                 UNION SELECT case_id FROM case_members WHERE member = ${k})"
            );
        }
        match after {
            None => {}
            Some((_, true)) => {
                let (a, b, c, d) = (next(), next(), next(), next());
                sql += &format!(
                    " AND priority = ${a} AND (sla_due, opened_at, id) > (${b}, ${c}, ${d})"
                );
            }
            Some((_, false)) => sql += &format!(" AND priority < ${}", next()),
        }
        sql += &format!(
            " ORDER BY priority DESC, sla_due, opened_at, id LIMIT ${}",
            next()
        );
        // The SQL is built from the fixed fragments above only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(x) = &f.inbox {
            q = q.bind(x.clone());
        }
        for x in f.inboxes.iter().flatten() {
            q = q.bind(x.clone());
        }
        if let Some(x) = f.status {
            q = q.bind(x.as_str());
        }
        if let Some(x) = &f.assignee {
            q = q.bind(x.clone());
        }
        if let Some(x) = &f.subject {
            q = q.bind(x.clone());
        }
        match after {
            None => {}
            Some((c, true)) => {
                q = q
                    .bind(c.priority)
                    .bind(c.sla_due)
                    .bind(c.opened_at)
                    .bind(c.id.clone());
            }
            Some((c, false)) => q = q.bind(c.priority),
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| case_of(r).map_err(CaseError::from))
            .collect()
    }

    /// Counts of open and in-review cases per inbox.
    pub async fn inbox_counts(&self) -> Result<Vec<(String, i64, i64)>, CaseError> {
        let rows = sqlx::query(
            "SELECT inbox, \
             SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open, \
             SUM(CASE WHEN status = 'in_review' THEN 1 ELSE 0 END) AS in_review \
             FROM cases WHERE status <> 'resolved' AND status <> 'closed' GROUP BY inbox",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("inbox")?,
                    r.try_get::<i64, _>("open")?,
                    r.try_get::<i64, _>("in_review")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(CaseError::from)
    }

    /// Moves a case to another inbox, open and unclaimed, with the reason on its timeline.
    pub async fn escalate(
        &self,
        id: &str,
        user: &str,
        inbox: &Inbox,
        reason: &str,
        now: Millis,
    ) -> Result<Case, CaseError> {
        let c = self.get(id).await?;
        if c.status == Status::Resolved {
            return Err(CaseError::Conflict(format!("case `{id}` is resolved")));
        }
        if let (Some(o), Some(until)) = (&c.lock_owner, c.lock_until) {
            if o != user && until > now {
                return Err(CaseError::Conflict(format!(
                    "case `{id}` is claimed by `{o}` until {until}"
                )));
            }
        }
        let mut tx = self.pool.begin().await?;
        // Conditional: a verdict or someone else's claim that landed meanwhile wins.
        let n = sqlx::query(
            "UPDATE cases SET inbox = $1, status = 'open', lock_owner = NULL, lock_until = NULL, \
             assignee = NULL, sla_due = $2, updated_at = $3 WHERE id = $4 \
             AND status <> 'resolved' AND status <> 'closed' \
             AND (lock_owner IS NULL OR lock_owner = $5 OR lock_until <= $3)",
        )
        .bind(&inbox.name)
        .bind(now.saturating_add(inbox.sla_ms))
        .bind(now)
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(CaseError::Conflict(format!(
                "case `{id}` changed meanwhile (resolved, or claimed by someone else)"
            )));
        }
        let body = serde_json::json!({"from": c.inbox, "to": inbox.name, "reason": reason});
        append(&mut tx, id, now, "escalate", user, &body).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Escalates every open, unclaimed case past its SLA in an inbox with `escalate_to`. Returns how
    /// many moved.
    pub async fn escalate_overdue(
        &self,
        routing: &Routing,
        now: Millis,
    ) -> Result<usize, CaseError> {
        let mut moved = 0;
        for i in &routing.inboxes {
            let Some(to) = i.escalate_to.as_deref().and_then(|t| routing.inbox(t)) else {
                continue;
            };
            let rows = sqlx::query(
                "SELECT id FROM cases WHERE inbox = $1 AND status = 'open' AND sla_due < $2 \
                 AND (lock_until IS NULL OR lock_until <= $2) ORDER BY sla_due LIMIT 500",
            )
            .bind(&i.name)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                let id: String = r.try_get("id")?;
                match self.escalate(&id, "argus", to, "past its SLA", now).await {
                    Ok(_) => moved += 1,
                    Err(CaseError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(moved)
    }

    /// Adds tags (kept unique, in order).
    pub async fn tag(
        &self,
        id: &str,
        user: &str,
        tags: &[String],
        now: Millis,
    ) -> Result<Case, CaseError> {
        let c = self.get(id).await?;
        let mut all = c.tags.clone();
        for t in tags {
            let t = t.trim();
            if t.is_empty() || t.contains(',') {
                return Err(CaseError::Invalid(format!(
                    "a tag is a non-empty word without commas: `{t}`"
                )));
            }
            if !all.iter().any(|x| x == t) {
                all.push(t.to_string());
            }
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE cases SET tags = $1, updated_at = $2 WHERE id = $3")
            .bind(all.join(","))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append(
            &mut tx,
            id,
            now,
            "tag",
            user,
            &serde_json::json!({"tags": tags}),
        )
        .await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// How far case intake has read the server's event log.
    pub async fn intake_cursor(&self) -> Result<u64, CaseError> {
        let r = sqlx::query("SELECT seq FROM intake_cursor WHERE component = 'log'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<i64, _>("seq")?.max(0) as u64,
            None => 0,
        })
    }

    pub async fn set_intake_cursor(&self, seq: u64) -> Result<(), CaseError> {
        let n =
            sqlx::query("UPDATE intake_cursor SET seq = $1 WHERE component = 'log' AND seq < $1")
                .bind(seq as i64)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            let have = sqlx::query("SELECT 1 AS x FROM intake_cursor WHERE component = 'log'")
                .fetch_optional(&self.pool)
                .await?;
            if have.is_none() {
                sqlx::query("INSERT INTO intake_cursor (component, seq) VALUES ('log', $1)")
                    .bind(seq as i64)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Erasure: in every text column of every table but the audit log, replaces `token` by
    /// `pseudonym` (a 35-character random string: it matches nothing else); and in what people
    /// type — notes, the note of a case opened by hand, bulk jobs' reasons — each of `clear` (the subject's clear value as someone
    /// may have typed it, at least 6 characters) by `[erased]`. Clear values are not replaced in
    /// structured columns, where a short value could match inside another (a number in a JSON
    /// body, another IP). And in the same places, each of `numbers` (a phone's or a card's digits)
    /// however it was spelled ([`erase_spelled`]). The number of row changes (a row both steps
    /// changed counts twice).
    pub async fn scrub(
        &self,
        token: &str,
        pseudonym: &str,
        clear: &[String],
        numbers: &[String],
    ) -> Result<u64, CaseError> {
        let catalog = match self.backend {
            argus_store::Backend::Postgres => {
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')"
            }
            argus_store::Backend::Sqlite => {
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND upper(p.type) LIKE '%TEXT%'"
            }
        };
        let cols: Vec<(String, String)> = sqlx::query(catalog)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let pairs = vec![(token.to_string(), pseudonym.to_string())];
        let typed: Vec<(String, String)> = clear
            .iter()
            .filter(|c| c.chars().count() >= 6)
            .map(|c| (c.clone(), "[erased]".to_string()))
            .collect();
        let mut changed = 0;
        let mut tx = self.pool.begin().await?;
        for (table, col) in cols {
            // The audit log is append-only and holds neither tokens nor clear values; the
            // migrations' own bookkeeping holds neither either.
            if table == "audit" || table.starts_with("_") || table.starts_with("argus_migrations") {
                continue;
            }
            let ok = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok(&table) || !ok(&col) {
                continue;
            }
            for (from, to) in &pairs {
                let sql = format!(
                    "UPDATE {table} SET {col} = REPLACE({col}, $1, $2) WHERE {col} LIKE $3"
                );
                let like = format!(
                    "%{}%",
                    from.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                let like_sql = match self.backend {
                    argus_store::Backend::Postgres => sql,
                    argus_store::Backend::Sqlite => format!("{sql} ESCAPE '\\'"),
                };
                let r = sqlx::query(sqlx::AssertSqlSafe(like_sql))
                    .bind(from)
                    .bind(to)
                    .bind(&like)
                    .execute(&mut *tx)
                    .await?;
                changed += r.rows_affected();
            }
        }
        for (from, to) in &typed {
            for sql in [
                "UPDATE case_events SET body = REPLACE(body, $1, $2) WHERE kind IN ('note', 'manual') AND body LIKE $3",
                "UPDATE bulk_jobs SET reason = REPLACE(reason, $1, $2) WHERE reason LIKE $3",
            ] {
                let like = format!(
                    "%{}%",
                    from.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                );
                let sql = match self.backend {
                    argus_store::Backend::Postgres => sql.to_string(),
                    argus_store::Backend::Sqlite => format!("{sql} ESCAPE '\\'"),
                };
                changed += sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .bind(&like)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
        }
        for digits in numbers {
            changed += self.scrub_spelled(&mut tx, digits).await?;
        }
        tx.commit().await?;
        argus_store::Db::sync(&self.pool, self.backend).await?;
        Ok(changed)
    }

    /// A number's spellings in what people type (notes, a case opened by hand, bulk jobs'
    /// reasons) become `[erased]`. The rows are read and rewritten here, as [`erase_spelled`]
    /// finds the spellings; on PostgreSQL a regular expression first picks the rows that may hold
    /// one (SQLite has none built in: its notes are read whole, an embedded store's few).
    async fn scrub_spelled(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        digits: &str,
    ) -> Result<u64, CaseError> {
        if digits.len() < MIN_SPELLED || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(0);
        }
        let pattern = digits
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(&format!("[{}]{{0,{MAX_GAP}}}", "/ .()-"));
        let mut changed = 0;
        for (read, write) in [
            (
                "SELECT case_id, seq, body FROM case_events WHERE kind IN ('note', 'manual')",
                "UPDATE case_events SET body = $1 WHERE case_id = $2 AND seq = $3",
            ),
            (
                "SELECT id, CAST(0 AS BIGINT), reason FROM bulk_jobs WHERE 1 = 1",
                "UPDATE bulk_jobs SET reason = $1 WHERE id = $2 AND 0 = $3",
            ),
        ] {
            let col = if read.contains("body") {
                "body"
            } else {
                "reason"
            };
            let rows = match self.backend {
                argus_store::Backend::Postgres => {
                    // Locked as read: a concurrent erasure's rewrite of the row waits, instead of
                    // being overwritten with the text read before it.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "{read} AND {col} ~ $1 FOR UPDATE"
                    )))
                    .bind(&pattern)
                    .fetch_all(&mut **tx)
                    .await?
                }
                argus_store::Backend::Sqlite => sqlx::query(read).fetch_all(&mut **tx).await?,
            };
            for r in rows {
                let (key, seq, text): (String, i64, String) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                if let Some(erased) = erase_spelled(&text, digits) {
                    changed += sqlx::query(write)
                        .bind(erased)
                        .bind(key)
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                }
            }
        }
        Ok(changed)
    }
}

/// The fewest digits a number needs to be looked for however spelled: fewer could be a date or an
/// amount in a note (`12.03.24`), which would be lost (shorter phones are still looked for as
/// given).
pub const MIN_SPELLED: usize = 8;

/// At most this many separators between two digits of a spelled number (`(555) 010`: two).
const MAX_GAP: usize = 2;

/// What may stand between the digits of a spelled number.
fn separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
}

/// `text` with every spelling of the number `digits` (8 or more ASCII digits) made `[erased]`:
/// its digits in order with up to two of ` -./()` between each two (`4000-0566-5566-5556`,
/// `+1 (555) 010-4477`), not inside a longer number (no digit right before or after), a `+`
/// right before it included. `None` when there is none. A national spelling of an
/// international number (without its country code, with a trunk `0`) is another number.
pub fn erase_spelled(text: &str, digits: &str) -> Option<String> {
    let d = digits.as_bytes();
    if d.len() < MIN_SPELLED || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let t = text.as_bytes();
    // The end of the spelling starting at `i` (a digit that no digit precedes), if one does.
    let spelled_at = |i: usize| -> Option<usize> {
        let mut j = i + 1;
        for &want in &d[1..] {
            let gap = t[j..].iter().take_while(|&&b| separator(b)).count();
            if gap > MAX_GAP {
                return None;
            }
            j += gap;
            if t.get(j) != Some(&want) {
                return None;
            }
            j += 1;
        }
        (!t.get(j).is_some_and(u8::is_ascii_digit)).then_some(j)
    };
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < t.len() {
        if t[i] == d[0] && (i == 0 || !t[i - 1].is_ascii_digit()) {
            if let Some(end) = spelled_at(i) {
                let mut start = i;
                while start > copied && t[start - 1] == b'+' {
                    start -= 1;
                }
                // Every cut is next to an ASCII byte: a character boundary.
                out.push_str(&text[copied..start]);
                out.push_str("[erased]");
                (i, copied) = (end, end);
                continue;
            }
        }
        i += 1;
    }
    (copied > 0).then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

impl Store {
    /// Retention: deletes resolved cases last changed before `before` (milliseconds), with their
    /// timelines, members and finished actions. Open cases and pending actions are never deleted.
    /// The number of cases deleted.
    pub async fn purge_resolved(&self, before: Millis) -> Result<u64, CaseError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM cases WHERE status IN ('resolved', 'closed') AND updated_at < $1 ORDER BY updated_at LIMIT 10000",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, sqlx::Error>>()?;
        for id in &ids {
            for sql in [
                "DELETE FROM case_events WHERE case_id = $1",
                "DELETE FROM case_members WHERE case_id = $1",
                "DELETE FROM actions WHERE case_id = $1 AND status IN ('done', 'failed')",
                "DELETE FROM cases WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::erase_spelled;

    #[test]
    fn a_number_is_erased_however_it_was_spelled_and_nowhere_else() {
        let card = "4000056655665556";
        for (text, want) in [
            ("card 4000056655665556 used", Some("card [erased] used")),
            ("card 4000-0566-5566-5556.", Some("card [erased].")),
            ("4000 0566 5566 5556", Some("[erased]")),
            (
                "a 4000 0566 5566 5556 b 4000056655665556",
                Some("a [erased] b [erased]"),
            ),
            // Inside a longer number, or with a digit wrong or missing: another number.
            ("14000056655665556", None),
            ("40000566556655561", None),
            ("4000-0566-5566-555", None),
            ("4000-0566-5566-5557", None),
            // Three separators between two digits: not taken for one number.
            ("4000 - 0566 5566 5556", None),
            (
                "{\"text\":\"paid with 4000 0566 5566 5556 é\"}",
                Some("{\"text\":\"paid with [erased] é\"}"),
            ),
        ] {
            assert_eq!(erase_spelled(text, card).as_deref(), want, "{text}");
        }
        let phone = "15550104477";
        for (text, want) in [
            ("call +1 (555) 010-4477 now", Some("call [erased] now")),
            ("1.555.010.4477", Some("[erased]")),
            ("+15550104477", Some("[erased]")),
            // The national spelling leaves out the country code: not this number's digits.
            ("(555) 010-4477", None),
        ] {
            assert_eq!(erase_spelled(text, phone).as_deref(), want, "{text}");
        }
        assert_eq!(
            erase_spelled("on 12.03.24 at 10:00", "120324"),
            None,
            "fewer than 8 digits"
        );
        assert_eq!(erase_spelled("abc", "4000x0566"), None, "not digits");
    }
}
