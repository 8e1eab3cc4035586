//! Safe rule change (P3.4): policy versions with authors, messages and diffs; drafts; approvals by a
//! second person; scheduled activation; one-step rollback; backtest records; snoozes; the
//! blast-radius guard's pauses; rollouts. Storage is `argus_store` (SQLite or
//! PostgreSQL, one code path). It knows nothing of HTTP or of the engine: the server compiles a
//! version before it asks this crate to activate it, and installs it in the engine after. Times come
//! from the caller.

pub mod guard;
pub mod rules;

use argus_store::sqlx::{self, AnyPool, Row};
use argus_store::{is_conflict, Db, Migration, StoreError};
use serde::Serialize;

pub use guard::{Cause, Guard, GuardConfig, GuardState, GuardStateV1, Learned, Trip};
pub use rules::{diff, rules_of, set_rule_mode, ApprovalPolicy, Diff, Files, RuleText};

pub type Millis = i64;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "lifecycle",
        version: 1,
        name: "versions, reviews, backtests, snoozes, pauses, rollouts",
        sql: include_str!("../migrations/0001_lifecycle.sql"),
    },
    Migration {
        component: "lifecycle",
        version: 2,
        name: "one active version",
        sql: include_str!("../migrations/0002_one_active.sql"),
    },
    Migration {
        component: "lifecycle",
        version: 3,
        name: "no saved guard baselines",
        sql: include_str!("../migrations/0003_no_baselines.sql"),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0} not found")]
    NotFound(String),
    /// The request does not fit the version's state (e.g. activating a rejected version).
    #[error("{0}")]
    Conflict(String),
    /// Who asks may not do this (e.g. approve their own change).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
}

type R<T> = Result<T, LifecycleError>;

/// A version's state.
pub const DRAFT: &str = "draft";
pub const APPROVED: &str = "approved";
pub const REJECTED: &str = "rejected";
pub const SCHEDULED: &str = "scheduled";
pub const ACTIVE: &str = "active";
pub const RETIRED: &str = "retired";

/// One policy version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    pub id: i64,
    pub parent: Option<i64>,
    pub author: String,
    pub message: String,
    pub created_at: Millis,
    pub status: String,
    /// `console` (edited there), `files` (the policy directory as loaded), `rollback`.
    pub origin: String,
    pub digest: String,
    /// Why a second person must approve it (empty: nobody need).
    pub needs_approval: Vec<String>,
    pub activate_at: Option<Millis>,
    pub activated_at: Option<Millis>,
    pub activated_by: Option<String>,
    /// The reason given for activating it without the approval it needed.
    pub emergency: Option<String>,
    /// `v<id>`: what decisions name before the files' fingerprint.
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Files>,
}

/// An approval or a rejection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub version: i64,
    pub reviewer: String,
    pub verdict: String,
    pub comment: String,
    pub at: Millis,
}

/// A record of what happened (activations, reviews, rollbacks, snoozes, pauses, rollouts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub at: Millis,
    pub who: String,
    pub what: String,
    pub version: Option<i64>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    pub id: i64,
    pub version: i64,
    pub author: String,
    pub created_at: Millis,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub finished_at: Option<Millis>,
    pub summary: serde_json::Value,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnoozeRow {
    pub id: i64,
    pub rule: String,
    pub kind: String,
    /// As events carry it (a token for personal-data kinds).
    pub value: String,
    pub until: Millis,
    pub reason: String,
    pub author: String,
    pub created_at: Millis,
    pub case_id: Option<String>,
    pub removed_at: Option<Millis>,
    pub removed_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub id: i64,
    pub rule: String,
    pub checkpoint: String,
    pub cause: String,
    pub details: serde_json::Value,
    pub paused_at: Millis,
    pub case_id: Option<String>,
    pub resumed_at: Option<Millis>,
    pub resumed_by: Option<String>,
    pub resume_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRow {
    pub id: i64,
    pub version: i64,
    pub basis_points: i64,
    pub salt: String,
    pub started_at: Millis,
    pub started_by: String,
    pub ended_at: Option<Millis>,
    pub ended_by: Option<String>,
    pub outcome: Option<String>,
}

/// The digest of a version's files (FNV-1a over names and texts, in name order).
pub fn digest(files: &Files) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (n, t) in files {
        for b in n.bytes().chain([0]).chain(t.bytes()).chain([0]) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

macro_rules! version_columns {
    () => {
        "id, parent, author, message, created_at, status, origin, digest, needs_approval, \
         activate_at, activated_at, activated_by, emergency, label"
    };
}

fn version_of(r: &sqlx::any::AnyRow, files: Option<Files>) -> Result<Version, sqlx::Error> {
    let needs: String = r.try_get("needs_approval")?;
    Ok(Version {
        id: r.try_get("id")?,
        parent: r.try_get("parent")?,
        author: r.try_get("author")?,
        message: r.try_get("message")?,
        created_at: r.try_get("created_at")?,
        status: r.try_get("status")?,
        origin: r.try_get("origin")?,
        digest: r.try_get("digest")?,
        needs_approval: serde_json::from_str(&needs).unwrap_or_default(),
        activate_at: r.try_get("activate_at")?,
        activated_at: r.try_get("activated_at")?,
        activated_by: r.try_get("activated_by")?,
        emergency: r.try_get("emergency")?,
        label: r.try_get("label")?,
        files,
    })
}

fn json_of(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
}

/// Versions, reviews, backtests, snoozes, pauses and rollouts on an `argus_store::Db`.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: argus_store::Backend,
}

/// A new version's content and provenance.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub author: &'a str,
    pub message: &'a str,
    pub files: &'a Files,
    pub parent: Option<i64>,
    pub origin: &'a str,
    pub needs_approval: &'a [String],
}

impl Store {
    /// The lifecycle tables on an open database (shared with the cases), migrated.
    pub async fn on(db: Db) -> R<Store> {
        db.migrate(MIGRATIONS).await?;
        Ok(Store {
            pool: db.pool,
            backend: db.backend,
        })
    }

    /// Opens `url` (see [`Db::open`]) and migrates.
    pub async fn open(url: &str) -> R<Store> {
        Store::on(Db::open(url).await?).await
    }

    async fn sync(&self) -> R<()> {
        Ok(Db::sync(&self.pool, self.backend).await?)
    }

    /// Inserts with the next id of `table`, retried when another writer took it.
    async fn next_id(tx: &mut sqlx::Transaction<'_, sqlx::Any>, table: &str) -> R<i64> {
        // `table` is one of this crate's table names, never input.
        let sql = format!("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM {table}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut **tx)
            .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// Records who did what (in the caller's transaction).
    async fn log_tx(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        who: &str,
        what: &str,
        version: Option<i64>,
        details: serde_json::Value,
        now: Millis,
    ) -> R<()> {
        let id = Self::next_id(tx, "lifecycle_events").await?;
        sqlx::query(
            "INSERT INTO lifecycle_events (id, at, who, what, version, details) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(now)
        .bind(who)
        .bind(what)
        .bind(version)
        .bind(details.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records an event of its own (e.g. the server's rollout comparison at its end).
    pub async fn log(
        &self,
        who: &str,
        what: &str,
        version: Option<i64>,
        details: serde_json::Value,
        now: Millis,
    ) -> R<()> {
        self.retry(|| async {
            let mut tx = self.pool.begin().await?;
            Self::log_tx(&mut tx, who, what, version, details.clone(), now).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Runs `f` again when it lost a race for an id.
    async fn retry<T, F, Fut>(&self, mut f: F) -> R<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = R<T>>,
    {
        let mut last = None;
        for _ in 0..8 {
            match f().await {
                Err(LifecycleError::Db(e)) if is_conflict(&e) => last = Some(e),
                x => return x,
            }
        }
        Err(LifecycleError::Db(
            last.unwrap_or(sqlx::Error::PoolTimedOut),
        ))
    }

    /// A new version (a draft; `origin = files` or `rollback` versions are created and activated by
    /// the caller through [`activate`](Self::activate)).
    pub async fn create(&self, v: &NewVersion<'_>, now: Millis) -> R<Version> {
        if v.author.is_empty() || v.message.trim().is_empty() {
            return Err(LifecycleError::Invalid(
                "a version needs an author and a message".into(),
            ));
        }
        let files =
            serde_json::to_string(v.files).map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        let needs = serde_json::to_string(v.needs_approval).unwrap_or_else(|_| "[]".into());
        let dg = digest(v.files);
        let id = self
            .retry(|| async {
                let mut tx = self.pool.begin().await?;
                let id = Self::next_id(&mut tx, "policy_versions").await?;
                sqlx::query(concat!(
                    "INSERT INTO policy_versions (id, parent, author, message, created_at, status, origin, files, digest, needs_approval, label) ",
                    "VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, $10)"
                ))
                .bind(id)
                .bind(v.parent)
                .bind(v.author)
                .bind(v.message)
                .bind(now)
                .bind(v.origin)
                .bind(&files)
                .bind(&dg)
                .bind(&needs)
                .bind(format!("v{id}"))
                .execute(&mut *tx)
                .await?;
                Self::log_tx(&mut tx, v.author, "created", Some(id), serde_json::json!({"message": v.message, "origin": v.origin, "needs_approval": v.needs_approval}), now).await?;
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.sync().await?;
        self.get(id).await
    }

    /// Version `id` with its files.
    pub async fn get(&self, id: i64) -> R<Version> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            ", files FROM policy_versions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| LifecycleError::NotFound(format!("version {id}")))?;
        let files: String = row.try_get("files")?;
        let files: Files = serde_json::from_str(&files).map_err(|e| {
            LifecycleError::Invalid(format!("version {id}: stored files unreadable: {e}"))
        })?;
        Ok(version_of(&row, Some(files))?)
    }

    /// The newest versions first (without their files), at most `limit`, before id `before`.
    pub async fn list(&self, before: Option<i64>, limit: i64) -> R<Vec<Version>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM policy_versions WHERE id < $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| version_of(r, None))
            .collect::<Result<_, _>>()?)
    }

    /// The active version, with its files.
    pub async fn active(&self) -> R<Option<Version>> {
        let row = sqlx::query(
            "SELECT id FROM policy_versions WHERE status = 'active' ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.get(r.try_get("id")?).await?)),
            None => Ok(None),
        }
    }

    /// The newest version of an origin (e.g. the files last loaded), with its files.
    pub async fn latest_of(&self, origin: &str) -> R<Option<Version>> {
        let row = sqlx::query(
            "SELECT id FROM policy_versions WHERE origin = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(origin)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.get(r.try_get("id")?).await?)),
            None => Ok(None),
        }
    }

    /// Approves (`approve = true`) or rejects a version not yet active. Nobody approves their own
    /// change; the author may withdraw it (reject).
    pub async fn review(
        &self,
        id: i64,
        reviewer: &str,
        approve: bool,
        comment: &str,
        now: Millis,
    ) -> R<Version> {
        let v = self.get(id).await?;
        if approve && v.author == reviewer {
            return Err(LifecycleError::Forbidden(format!(
                "`{reviewer}` wrote version {id}: another person must approve it"
            )));
        }
        if ![DRAFT, APPROVED, SCHEDULED].contains(&v.status.as_str()) {
            return Err(LifecycleError::Conflict(format!(
                "version {id} is {}: only drafts, approved and scheduled versions are reviewed",
                v.status
            )));
        }
        let verdict = if approve { "approve" } else { "reject" };
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM version_reviews WHERE version = $1 AND reviewer = $2")
            .bind(id)
            .bind(reviewer)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO version_reviews (version, reviewer, verdict, comment, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(reviewer)
            .bind(verdict)
            .bind(comment)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // A rejection stops the version (a schedule too); an approval lets it be activated.
        let (status, clear) = if approve {
            (
                if v.status == SCHEDULED {
                    SCHEDULED
                } else {
                    APPROVED
                },
                false,
            )
        } else {
            (REJECTED, true)
        };
        let n = sqlx::query("UPDATE policy_versions SET status = $1, activate_at = CASE WHEN $2 = 1 THEN NULL ELSE activate_at END WHERE id = $3 AND status = $4")
            .bind(status)
            .bind(clear as i64)
            .bind(id)
            .bind(&v.status)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Err(LifecycleError::Conflict(format!(
                "version {id} changed meanwhile; try again"
            )));
        }
        Self::log_tx(
            &mut tx,
            reviewer,
            if approve { "approved" } else { "rejected" },
            Some(id),
            serde_json::json!({"comment": comment}),
            now,
        )
        .await?;
        tx.commit().await?;
        self.sync().await?;
        self.get(id).await
    }

    /// The reviews of a version, oldest first.
    pub async fn reviews(&self, id: i64) -> R<Vec<Review>> {
        let rows = sqlx::query("SELECT version, reviewer, verdict, comment, at FROM version_reviews WHERE version = $1 ORDER BY at, reviewer")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Review {
                    version: r.try_get("version")?,
                    reviewer: r.try_get("reviewer")?,
                    verdict: r.try_get("verdict")?,
                    comment: r.try_get("comment")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Activates version `id` now, or schedules it for `at` (later than `now`). A version that needs
    /// approval must be approved by someone other than its author, unless `emergency` gives the
    /// reason to go ahead without (recorded and flagged). Returns the version as it now is: `active`
    /// (the previous active one is `retired`) or `scheduled`.
    pub async fn activate(
        &self,
        id: i64,
        who: &str,
        at: Option<Millis>,
        emergency: Option<&str>,
        now: Millis,
    ) -> R<Version> {
        let v = self.get(id).await?;
        if ![DRAFT, APPROVED, SCHEDULED, RETIRED].contains(&v.status.as_str()) {
            return Err(LifecycleError::Conflict(format!(
                "version {id} is {}: it cannot be activated",
                v.status
            )));
        }
        if v.status == RETIRED {
            return Err(LifecycleError::Conflict(format!(
                "version {id} was active before: roll back to it instead (a new version with its files)"
            )));
        }
        let approved = v.status == APPROVED
            || (v.status == SCHEDULED
                && self
                    .reviews(id)
                    .await?
                    .iter()
                    .any(|r| r.verdict == "approve" && r.reviewer != v.author));
        let emergency = emergency.map(str::trim).filter(|e| !e.is_empty());
        if !v.needs_approval.is_empty() && !approved && emergency.is_none() {
            return Err(LifecycleError::Forbidden(format!(
                "version {id} needs approval by someone other than {}: {}",
                v.author,
                v.needs_approval.join("; ")
            )));
        }
        let mut tx = self.pool.begin().await?;
        // Every update below is conditional on the state read above: a review or another
        // activation that commits meanwhile makes it change nothing, and the caller tries again.
        let raced =
            || LifecycleError::Conflict(format!("version {id} changed meanwhile; try again"));
        match at.filter(|t| *t > now) {
            Some(t) => {
                let n = sqlx::query("UPDATE policy_versions SET status = 'scheduled', activate_at = $1, activated_by = $2, emergency = $3 WHERE id = $4 AND status = $5")
                    .bind(t)
                    .bind(who)
                    .bind(emergency)
                    .bind(id)
                    .bind(&v.status)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n != 1 {
                    return Err(raced());
                }
                Self::log_tx(
                    &mut tx,
                    who,
                    "scheduled",
                    Some(id),
                    serde_json::json!({"at": t, "emergency": emergency}),
                    now,
                )
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE policy_versions SET status = 'retired' WHERE status = 'active'",
                )
                .execute(&mut *tx)
                .await?;
                let n = sqlx::query("UPDATE policy_versions SET status = 'active', activate_at = NULL, activated_at = $1, activated_by = $2, emergency = COALESCE($3, emergency) WHERE id = $4 AND status = $5")
                    .bind(now)
                    .bind(who)
                    .bind(emergency)
                    .bind(id)
                    .bind(&v.status)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n != 1 {
                    return Err(raced());
                }
                Self::log_tx(
                    &mut tx,
                    who,
                    "activated",
                    Some(id),
                    serde_json::json!({"emergency": emergency, "needs_approval": v.needs_approval}),
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.sync().await?;
        self.get(id).await
    }

    /// Scheduled versions due at `now`, oldest schedule first.
    pub async fn due(&self, now: Millis) -> R<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM policy_versions WHERE status = 'scheduled' AND activate_at <= $1 ORDER BY activate_at, id")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// Activates the scheduled version due at `now` (of several due, the latest schedule; the
    /// earlier ones are retired without ever having run, recorded as superseded); returns it.
    pub async fn activate_due(&self, now: Millis) -> R<Option<Version>> {
        let due = self.due(now).await?;
        let Some((&last, earlier)) = due.split_last() else {
            return Ok(None);
        };
        for &id in earlier {
            let n = sqlx::query("UPDATE policy_versions SET status = 'retired', activate_at = NULL WHERE id = $1 AND status = 'scheduled'")
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if n == 1 {
                self.log(
                    "schedule",
                    "superseded",
                    Some(id),
                    serde_json::json!({"by": last}),
                    now,
                )
                .await?;
            }
        }
        let v = self.get(last).await?;
        let who = v.activated_by.clone().unwrap_or_else(|| "schedule".into());
        Ok(Some(
            self.activate(last, &who, None, v.emergency.as_deref(), now)
                .await?,
        ))
    }

    /// Backtests left `running` by a stop: failed, with the reason.
    pub async fn backtests_interrupted(&self, now: Millis) -> R<u64> {
        Ok(sqlx::query("UPDATE backtests SET status = 'failed', finished_at = $1, error = 'the server stopped during the backtest' WHERE status = 'running'")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// One step back: a new version with the files of `to` (a version that was active before),
    /// activated at once. It needs no new approval: those files ran before.
    pub async fn rollback(&self, to: i64, who: &str, reason: &str, now: Millis) -> R<Version> {
        let old = self.get(to).await?;
        if old.activated_at.is_none() {
            return Err(LifecycleError::Conflict(format!(
                "version {to} was never active: activate it (with its approval) instead"
            )));
        }
        let parent = self.active().await?.map(|v| v.id);
        let files = old.files.clone().unwrap_or_default();
        let msg = format!("rollback to v{to}: {reason}");
        let v = self
            .create(
                &NewVersion {
                    author: who,
                    message: &msg,
                    files: &files,
                    parent,
                    origin: "rollback",
                    needs_approval: &[],
                },
                now,
            )
            .await?;
        self.activate(v.id, who, None, None, now).await
    }

    /// The newest records of what happened, newest first.
    pub async fn events(&self, version: Option<i64>, limit: i64) -> R<Vec<Event>> {
        let rows = sqlx::query("SELECT id, at, who, what, version, details FROM lifecycle_events WHERE ($1 = 0 OR version = $2) ORDER BY id DESC LIMIT $3")
            .bind(version.is_some() as i64)
            .bind(version.unwrap_or(0))
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    who: r.try_get("who")?,
                    what: r.try_get("what")?,
                    version: r.try_get("version")?,
                    details: json_of(&r.try_get::<String, _>("details")?),
                })
            })
            .collect()
    }

    // ---- backtests ----

    pub async fn backtest_start(&self, version: i64, author: &str, now: Millis) -> R<i64> {
        self.retry(|| async {
            let mut tx = self.pool.begin().await?;
            let id = Self::next_id(&mut tx, "backtests").await?;
            sqlx::query("INSERT INTO backtests (id, version, author, created_at, status, summary, error) VALUES ($1, $2, $3, $4, 'running', '{}', '')")
                .bind(id)
                .bind(version)
                .bind(author)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    /// Stores a finished backtest: its summary and its changed decisions (in event order).
    pub async fn backtest_finish(
        &self,
        id: i64,
        summary: &serde_json::Value,
        changes: &[serde_json::Value],
        now: Millis,
    ) -> R<()> {
        let mut tx = self.pool.begin().await?;
        for (n, c) in changes.iter().enumerate() {
            sqlx::query("INSERT INTO backtest_changes (backtest, n, body) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(n as i64)
                .bind(c.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE backtests SET status = 'done', finished_at = $1, summary = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(summary.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn backtest_fail(&self, id: i64, error: &str, now: Millis) -> R<()> {
        sqlx::query(
            "UPDATE backtests SET status = 'failed', finished_at = $1, error = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn backtest(&self, id: i64) -> R<Backtest> {
        let r = sqlx::query("SELECT id, version, author, created_at, status, finished_at, summary, error FROM backtests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("backtest {id}")))?;
        Ok(Backtest {
            id: r.try_get("id")?,
            version: r.try_get("version")?,
            author: r.try_get("author")?,
            created_at: r.try_get("created_at")?,
            status: r.try_get("status")?,
            finished_at: r.try_get("finished_at")?,
            summary: json_of(&r.try_get::<String, _>("summary")?),
            error: r.try_get("error")?,
        })
    }

    /// The backtests of a version (or all), newest first.
    pub async fn backtests(&self, version: Option<i64>, limit: i64) -> R<Vec<Backtest>> {
        let rows = sqlx::query(
            "SELECT id FROM backtests WHERE ($1 = 0 OR version = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(version.is_some() as i64)
        .bind(version.unwrap_or(0))
        .bind(limit.clamp(1, 200))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.backtest(r.try_get("id")?).await?);
        }
        Ok(out)
    }

    /// Changed decisions of a backtest from position `from`, at most `limit`.
    pub async fn backtest_changes(
        &self,
        id: i64,
        from: i64,
        limit: i64,
    ) -> R<Vec<serde_json::Value>> {
        let rows = sqlx::query(
            "SELECT body FROM backtest_changes WHERE backtest = $1 AND n >= $2 ORDER BY n LIMIT $3",
        )
        .bind(id)
        .bind(from.max(0))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(json_of(&r.try_get::<String, _>("body")?)))
            .collect()
    }

    // ---- snoozes ----

    #[allow(clippy::too_many_arguments)]
    pub async fn snooze(
        &self,
        rule: &str,
        kind: &str,
        value: &str,
        until: Millis,
        reason: &str,
        author: &str,
        case_id: Option<&str>,
        now: Millis,
    ) -> R<SnoozeRow> {
        if rule.is_empty() || kind.is_empty() || value.is_empty() || reason.trim().is_empty() {
            return Err(LifecycleError::Invalid(
                "a snooze needs a rule, an entity kind and value, and a reason".into(),
            ));
        }
        if until <= now {
            return Err(LifecycleError::Invalid(
                "a snooze's end (`until`) must be in the future".into(),
            ));
        }
        let id = self
            .retry(|| async {
                let mut tx = self.pool.begin().await?;
                let id = Self::next_id(&mut tx, "snoozes").await?;
                sqlx::query("INSERT INTO snoozes (id, rule, kind, value, until_ms, reason, author, created_at, case_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                    .bind(id).bind(rule).bind(kind).bind(value).bind(until).bind(reason).bind(author).bind(now).bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                Self::log_tx(&mut tx, author, "snoozed", None, serde_json::json!({"snooze": id, "rule": rule, "kind": kind, "until": until, "reason": reason, "case": case_id}), now).await?;
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.sync().await?;
        self.snooze_get(id).await
    }

    pub async fn snooze_get(&self, id: i64) -> R<SnoozeRow> {
        let r = sqlx::query("SELECT id, rule, kind, value, until_ms, reason, author, created_at, case_id, removed_at, removed_by FROM snoozes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("snooze {id}")))?;
        Ok(snooze_of(&r)?)
    }

    /// Ends a snooze early.
    pub async fn unsnooze(&self, id: i64, who: &str, now: Millis) -> R<SnoozeRow> {
        let n = sqlx::query("UPDATE snoozes SET removed_at = $1, removed_by = $2 WHERE id = $3 AND removed_at IS NULL")
            .bind(now)
            .bind(who)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            self.snooze_get(id).await?;
            return Err(LifecycleError::Conflict(format!(
                "snooze {id} was already removed"
            )));
        }
        self.log(
            who,
            "unsnoozed",
            None,
            serde_json::json!({"snooze": id}),
            now,
        )
        .await?;
        self.snooze_get(id).await
    }

    /// Snoozes not removed whose end is after `now` (expired ones are history: `all`).
    pub async fn snoozes(&self, now: Millis, all: bool) -> R<Vec<SnoozeRow>> {
        let rows = sqlx::query("SELECT id, rule, kind, value, until_ms, reason, author, created_at, case_id, removed_at, removed_by FROM snoozes WHERE $1 = 1 OR (removed_at IS NULL AND until_ms > $2) ORDER BY id DESC LIMIT 10000")
            .bind(all as i64)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(snooze_of).collect::<Result<_, _>>()?)
    }

    // ---- the guard ----

    /// Records a pause by the guard.
    pub async fn pause(&self, t: &Trip, case_id: Option<&str>, now: Millis) -> R<Pause> {
        let details = serde_json::to_value(t).unwrap_or_default();
        let id = self
            .retry(|| async {
                let mut tx = self.pool.begin().await?;
                let id = Self::next_id(&mut tx, "rule_pauses").await?;
                sqlx::query("INSERT INTO rule_pauses (id, rule, checkpoint, cause, details, paused_at, case_id) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(id).bind(&t.rule).bind(&t.checkpoint).bind(t.cause.name()).bind(details.to_string()).bind(now).bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                Self::log_tx(&mut tx, "guard", "paused", None, details.clone(), now).await?;
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.sync().await?;
        self.pause_get(id).await
    }

    pub async fn pause_get(&self, id: i64) -> R<Pause> {
        let r = sqlx::query("SELECT id, rule, checkpoint, cause, details, paused_at, case_id, resumed_at, resumed_by, resume_reason FROM rule_pauses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("pause {id}")))?;
        Ok(pause_of(&r)?)
    }

    /// A person resumes a paused rule.
    pub async fn resume(&self, id: i64, who: &str, reason: &str, now: Millis) -> R<Pause> {
        if reason.trim().is_empty() {
            return Err(LifecycleError::Invalid(
                "resuming a paused rule needs a reason".into(),
            ));
        }
        let n = sqlx::query("UPDATE rule_pauses SET resumed_at = $1, resumed_by = $2, resume_reason = $3 WHERE id = $4 AND resumed_at IS NULL")
            .bind(now)
            .bind(who)
            .bind(reason)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let p = self.pause_get(id).await?;
        if n == 0 {
            return Err(LifecycleError::Conflict(format!(
                "the pause of `{}` was already resumed",
                p.rule
            )));
        }
        self.log(
            who,
            "resumed",
            None,
            serde_json::json!({"pause": id, "rule": p.rule, "reason": reason}),
            now,
        )
        .await?;
        self.sync().await?;
        Ok(p)
    }

    /// Pauses, newest first; `active`: only those not resumed.
    pub async fn pauses(&self, active: bool) -> R<Vec<Pause>> {
        let rows = sqlx::query("SELECT id, rule, checkpoint, cause, details, paused_at, case_id, resumed_at, resumed_by, resume_reason FROM rule_pauses WHERE $1 = 0 OR resumed_at IS NULL ORDER BY id DESC LIMIT 1000")
            .bind(active as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(pause_of).collect::<Result<_, _>>()?)
    }

    // ---- rollouts ----

    pub async fn rollout_start(
        &self,
        version: i64,
        basis_points: i64,
        who: &str,
        now: Millis,
    ) -> R<RolloutRow> {
        if !(0..=10_000).contains(&basis_points) {
            return Err(LifecycleError::Invalid(
                "a rollout's share is 0 to 100 %".into(),
            ));
        }
        if self.rollout_active().await?.is_some() {
            return Err(LifecycleError::Conflict(
                "a rollout is running: promote or stop it first".into(),
            ));
        }
        let id = self
            .retry(|| async {
                let mut tx = self.pool.begin().await?;
                let id = Self::next_id(&mut tx, "rollouts").await?;
                sqlx::query("INSERT INTO rollouts (id, version, basis_points, salt, started_at, started_by) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(id).bind(version).bind(basis_points).bind(format!("rollout-{id}")).bind(now).bind(who)
                    .execute(&mut *tx)
                    .await?;
                Self::log_tx(&mut tx, who, "rollout_started", Some(version), serde_json::json!({"rollout": id, "basis_points": basis_points}), now).await?;
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.sync().await?;
        self.rollout_get(id).await
    }

    pub async fn rollout_get(&self, id: i64) -> R<RolloutRow> {
        let r = sqlx::query("SELECT id, version, basis_points, salt, started_at, started_by, ended_at, ended_by, outcome FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("rollout {id}")))?;
        Ok(rollout_of(&r)?)
    }

    pub async fn rollout_active(&self) -> R<Option<RolloutRow>> {
        let r = sqlx::query("SELECT id, version, basis_points, salt, started_at, started_by, ended_at, ended_by, outcome FROM rollouts WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(rollout_of).transpose()?)
    }

    /// Ends the running rollout: `promoted` or `stopped`, with the live comparison at its end.
    pub async fn rollout_end(
        &self,
        who: &str,
        outcome: &str,
        comparison: serde_json::Value,
        now: Millis,
    ) -> R<RolloutRow> {
        let r = self
            .rollout_active()
            .await?
            .ok_or_else(|| LifecycleError::Conflict("no rollout is running".into()))?;
        sqlx::query("UPDATE rollouts SET ended_at = $1, ended_by = $2, outcome = $3 WHERE id = $4")
            .bind(now)
            .bind(who)
            .bind(outcome)
            .bind(r.id)
            .execute(&self.pool)
            .await?;
        self.log(
            who,
            &format!("rollout_{outcome}"),
            Some(r.version),
            serde_json::json!({"rollout": r.id, "comparison": comparison}),
            now,
        )
        .await?;
        self.sync().await?;
        self.rollout_get(r.id).await
    }
}

fn snooze_of(r: &sqlx::any::AnyRow) -> Result<SnoozeRow, sqlx::Error> {
    Ok(SnoozeRow {
        id: r.try_get("id")?,
        rule: r.try_get("rule")?,
        kind: r.try_get("kind")?,
        value: r.try_get("value")?,
        until: r.try_get("until_ms")?,
        reason: r.try_get("reason")?,
        author: r.try_get("author")?,
        created_at: r.try_get("created_at")?,
        case_id: r.try_get("case_id")?,
        removed_at: r.try_get("removed_at")?,
        removed_by: r.try_get("removed_by")?,
    })
}

fn pause_of(r: &sqlx::any::AnyRow) -> Result<Pause, sqlx::Error> {
    Ok(Pause {
        id: r.try_get("id")?,
        rule: r.try_get("rule")?,
        checkpoint: r.try_get("checkpoint")?,
        cause: r.try_get("cause")?,
        details: json_of(&r.try_get::<String, _>("details")?),
        paused_at: r.try_get("paused_at")?,
        case_id: r.try_get("case_id")?,
        resumed_at: r.try_get("resumed_at")?,
        resumed_by: r.try_get("resumed_by")?,
        resume_reason: r.try_get("resume_reason")?,
    })
}

fn rollout_of(r: &sqlx::any::AnyRow) -> Result<RolloutRow, sqlx::Error> {
    Ok(RolloutRow {
        id: r.try_get("id")?,
        version: r.try_get("version")?,
        basis_points: r.try_get("basis_points")?,
        salt: r.try_get("salt")?,
        started_at: r.try_get("started_at")?,
        started_by: r.try_get("started_by")?,
        ended_at: r.try_get("ended_at")?,
        ended_by: r.try_get("ended_by")?,
        outcome: r.try_get("outcome")?,
    })
}
