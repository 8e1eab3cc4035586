//! The outbox: every action a verdict or a bulk job takes, stored in the same transaction as the
//! verdict or the job, delivered afterwards with retries. Two kinds of target:
//!
//! - the engine (`label`, `list`): a label event or a list entry, applied through the server's own
//!   write path (the same as `POST /v1/labels` and `PUT /v1/lists/…`), so it is logged and replayed
//!   like any other input. Idempotent by construction: a label event's id is the action's key, a
//!   list entry is set, not added.
//! - `webhook`: a JSON POST to a shop's system with an `Idempotency-Key` header, retried with
//!   exponential backoff until `max_attempts`, then `failed` (listed, retryable by hand).

use crate::{case_of, Case, CaseError, Millis, Store};
use argus_store::sqlx::{self, Row};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Pending,
    Done,
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Done => "done",
            ActionStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<ActionStatus> {
        match s {
            "pending" => Some(ActionStatus::Pending),
            "done" => Some(ActionStatus::Done),
            "failed" => Some(ActionStatus::Failed),
            _ => None,
        }
    }
}

/// An action to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    /// `label`, `list` or `webhook`.
    pub kind: String,
    /// The label type, the list's name, or the webhook's name.
    pub target: String,
    pub body: serde_json::Value,
    /// Unique across all actions: the same key twice is one action.
    pub key: String,
    /// The account the action is about (labels, ban list entries), for the entity's page.
    pub subject: Option<String>,
}

/// An action as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub id: String,
    pub case_id: Option<String>,
    pub job_id: Option<String>,
    pub kind: String,
    pub target: String,
    pub body: serde_json::Value,
    pub status: ActionStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_at: Millis,
    pub idempotency_key: String,
    pub created_at: Millis,
    pub done_at: Option<Millis>,
}

macro_rules! action_columns {
    () => {
        "id, case_id, job_id, kind, target, body, status, attempts, last_error, next_at, \
         idempotency_key, created_at, done_at"
    };
}

fn action_of(r: &sqlx::any::AnyRow) -> Result<Action, sqlx::Error> {
    let body: String = r.try_get("body")?;
    Ok(Action {
        id: r.try_get("id")?,
        case_id: r.try_get("case_id")?,
        job_id: r.try_get("job_id")?,
        kind: r.try_get("kind")?,
        target: r.try_get("target")?,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        status: ActionStatus::parse(&r.try_get::<String, _>("status")?)
            .unwrap_or(ActionStatus::Failed),
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_at: r.try_get("next_at")?,
        idempotency_key: r.try_get("idempotency_key")?,
        created_at: r.try_get("created_at")?,
        done_at: r.try_get("done_at")?,
    })
}

/// Inserts `a` unless an action with its key exists (then nothing happens).
pub(crate) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    a: &NewAction,
    case_id: Option<&str>,
    job_id: Option<&str>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let have = sqlx::query("SELECT 1 AS x FROM actions WHERE idempotency_key = $1")
        .bind(&a.key)
        .fetch_optional(&mut **tx)
        .await?;
    if have.is_some() {
        return Ok(());
    }
    sqlx::query(concat!(
        "INSERT INTO actions (",
        action_columns!(),
        ", subject) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, NULL, $7, $1, $7, NULL, $8)"
    ))
    .bind(&a.key)
    .bind(case_id)
    .bind(job_id)
    .bind(&a.kind)
    .bind(&a.target)
    .bind(a.body.to_string())
    .bind(now)
    .bind(a.subject.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A bulk job's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: String,
    pub by: String,
    pub reason: String,
    pub action: String,
    pub target: serde_json::Value,
    pub total: i64,
    pub done: i64,
    pub failed: i64,
    pub created_at: Millis,
}

impl Store {
    /// Actions due now (pending, `next_at` reached), oldest first.
    pub async fn due_actions(&self, now: Millis, limit: i64) -> Result<Vec<Action>, CaseError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            action_columns!(),
            " FROM actions WHERE status = 'pending' AND next_at <= $1 \
             ORDER BY CASE WHEN kind = 'webhook' THEN 1 ELSE 0 END, next_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| action_of(r).map_err(CaseError::from))
            .collect()
    }

    /// Marks an attempt: done, or an error with the next attempt's time (`None`: give up, `failed`).
    pub async fn action_attempted(
        &self,
        id: &str,
        outcome: Result<(), (String, Option<Millis>)>,
        now: Millis,
    ) -> Result<(), CaseError> {
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE actions SET status = 'done', attempts = attempts + 1, last_error = NULL, \
                     done_at = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            Err((err, next)) => {
                sqlx::query(
                    "UPDATE actions SET status = $1, attempts = attempts + 1, last_error = $2, \
                     next_at = $3 WHERE id = $4",
                )
                .bind(if next.is_some() { "pending" } else { "failed" })
                .bind(err)
                .bind(next.unwrap_or(now))
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Puts a failed action back in the queue, due now.
    pub async fn retry_action(&self, id: &str, now: Millis) -> Result<Action, CaseError> {
        let a = self.action(id).await?;
        if a.status != ActionStatus::Failed {
            return Err(CaseError::Conflict(format!(
                "action `{id}` is {}: only failed actions are retried by hand",
                a.status.as_str()
            )));
        }
        sqlx::query("UPDATE actions SET status = 'pending', next_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.action(id).await
    }

    pub async fn action(&self, id: &str) -> Result<Action, CaseError> {
        let r = sqlx::query(concat!(
            "SELECT ",
            action_columns!(),
            " FROM actions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("action {id}")))?;
        Ok(action_of(&r)?)
    }

    /// Actions with `status` (any when `None`), newest first; or those of a case or a job.
    pub async fn actions(
        &self,
        status: Option<ActionStatus>,
        case_id: Option<&str>,
        job_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Action>, CaseError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            action_columns!(),
            " FROM actions WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR case_id = $2) \
             AND ($3 IS NULL OR job_id = $3) ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(status.map(ActionStatus::as_str))
        .bind(case_id)
        .bind(job_id)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| action_of(r).map_err(CaseError::from))
            .collect()
    }

    /// A bulk job: its record and every action of it, in one transaction. Ring cases it resolves
    /// (`resolve`: the cases and their disposition) are resolved in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_job(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        action: &str,
        target: &serde_json::Value,
        actions: &[NewAction],
        resolve: &[(String, String)],
        now: Millis,
    ) -> Result<Job, CaseError> {
        if reason.trim().is_empty() {
            return Err(CaseError::Invalid("a bulk job needs a reason".into()));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO bulk_jobs (id, by_user, reason, action, target, total, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(by)
        .bind(reason)
        .bind(action)
        .bind(target.to_string())
        .bind(actions.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for a in actions {
            insert(&mut tx, a, None, Some(id), now).await?;
        }
        for (case, disposition) in resolve {
            // A case someone else holds claimed is left to them.
            let r = sqlx::query(
                "UPDATE cases SET status = 'resolved', disposition = $1, lock_owner = NULL, \
                 lock_until = NULL, updated_at = $2 WHERE id = $3 AND status <> 'resolved' \
                 AND (lock_owner IS NULL OR lock_owner = $4 OR lock_until <= $2)",
            )
            .bind(disposition)
            .bind(now)
            .bind(case)
            .bind(by)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                let body =
                    serde_json::json!({"disposition": disposition, "job": id, "reason": reason});
                crate::append(&mut tx, case, now, "verdict", by, &body).await?;
            }
        }
        tx.commit().await?;
        self.durable().await?;
        self.job(id).await
    }

    /// A bulk job with its progress.
    pub async fn job(&self, id: &str) -> Result<Job, CaseError> {
        let r = sqlx::query(
            "SELECT id, by_user, reason, action, target, total, created_at FROM bulk_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("bulk job {id}")))?;
        let counts = sqlx::query(
            "SELECT SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS done, \
             SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed \
             FROM actions WHERE job_id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let target: String = r.try_get("target")?;
        Ok(Job {
            id: r.try_get("id")?,
            by: r.try_get("by_user")?,
            reason: r.try_get("reason")?,
            action: r.try_get("action")?,
            target: serde_json::from_str(&target).unwrap_or(serde_json::Value::Null),
            total: r.try_get("total")?,
            done: counts.try_get::<Option<i64>, _>("done")?.unwrap_or(0),
            failed: counts.try_get::<Option<i64>, _>("failed")?.unwrap_or(0),
            created_at: r.try_get("created_at")?,
        })
    }

    /// Every unresolved case matching `f` (at most `cap + 1`, so that a caller can tell it is over).
    pub async fn matching(&self, f: &crate::Filter, cap: i64) -> Result<Vec<Case>, CaseError> {
        let mut out = Vec::new();
        let mut after = None;
        while (out.len() as i64) <= cap {
            let (page, next) = self.page(f, after.as_ref(), 500).await?;
            out.extend(page);
            match next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        out.truncate(cap as usize + 1);
        Ok(out)
    }

    /// The labels verdicts and bulk jobs gave `account` (label actions naming it), newest first.
    pub async fn labels_of(&self, account: &str, limit: i64) -> Result<Vec<Action>, CaseError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            action_columns!(),
            " FROM actions WHERE subject = $1 AND kind = 'label' ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(account)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| action_of(r).map_err(CaseError::from))
            .collect()
    }

    /// Cases about `subject_id` (as subject or ring member), newest first.
    pub async fn cases_of(&self, subject_id: &str, limit: i64) -> Result<Vec<Case>, CaseError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            crate::case_columns!(),
            " FROM cases WHERE id IN (SELECT id FROM cases WHERE subject_id = $1 \
             UNION SELECT case_id FROM case_members WHERE member = $1) \
             ORDER BY opened_at DESC, id LIMIT $2"
        ))
        .bind(subject_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| case_of(r).map_err(CaseError::from))
            .collect()
    }

    /// Resolved cases' dispositions per rule that fired in a decision on their timeline: (rule,
    /// disposition, cases). What rule precision from verdicts is computed from.
    pub async fn verdicts_by_rule(&self) -> Result<Vec<(String, String, i64)>, CaseError> {
        let rows = sqlx::query(
            "SELECT c.id AS id, c.disposition AS disposition, e.body AS body FROM cases c \
             JOIN case_events e ON e.case_id = c.id \
             WHERE c.status = 'resolved' AND e.kind = 'decision' AND c.disposition IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts: std::collections::BTreeMap<(String, String, String), ()> =
            std::collections::BTreeMap::new();
        let mut out: std::collections::BTreeMap<(String, String), i64> =
            std::collections::BTreeMap::new();
        for r in rows {
            let d: String = r.try_get("disposition")?;
            let body: String = r.try_get("body")?;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let case: String = r.try_get("id")?;
            // A decision trigger's body is `{"decision": {…, "fired": […]}, "event": …}`.
            let fired = v["decision"]["fired"].as_array().or(v["fired"].as_array());
            for f in fired.into_iter().flatten() {
                if let Some(rule) = f["rule"].as_str() {
                    counts.insert((rule.to_string(), d.clone(), case.clone()), ());
                }
            }
        }
        for (rule, d, _) in counts.into_keys() {
            *out.entry((rule, d)).or_default() += 1;
        }
        Ok(out.into_iter().map(|((r, d), n)| (r, d, n)).collect())
    }
}
