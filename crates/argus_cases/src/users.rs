//! Console users and their sessions. Passwords are hashed with Argon2id (the `argon2` crate, a
//! random salt per user, PHC string format). A session is a random 256-bit token, given to the
//! browser once in an `HttpOnly` cookie and stored only as its SHA-256; each session has its own
//! CSRF token, which every state-changing request must send back in a header.

use crate::{CaseError, Millis, Store};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use argus_store::sqlx::{self, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One thing a caller may do. Roles are sets of these; a route needs exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Perm {
    /// Send events, batches and labels (the shop's systems).
    Ingest,
    /// Read decisions, entities, findings, the graph, lists, rule statistics, versions, backtests,
    /// rollouts, snoozes and the guard.
    Read,
    /// Work cases one at a time: see inboxes and cases, open, claim, note, tag, give verdicts.
    Cases,
    /// Act on many at once: bulk jobs, ring bans, escalation, reopening, outbox retries.
    Investigate,
    /// Edit rules: draft versions, check policies, change a rule's mode, run backtests, snooze
    /// rules, add and remove list items.
    Rules,
    /// Approve, reject, activate and roll back versions; start, stop and promote rollouts; resume
    /// a rule the guard paused.
    Approve,
    /// See a decision's clear personal data, with a typed reason (audited).
    Reveal,
    /// Administer: users, reloads, status, the audit log, erasure, emergency changes.
    Admin,
}

impl Perm {
    pub const ALL: [Perm; 8] = [
        Perm::Ingest,
        Perm::Read,
        Perm::Cases,
        Perm::Investigate,
        Perm::Rules,
        Perm::Approve,
        Perm::Reveal,
        Perm::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Perm::Ingest => "ingest",
            Perm::Read => "read",
            Perm::Cases => "cases",
            Perm::Investigate => "investigate",
            Perm::Rules => "rules",
            Perm::Approve => "approve",
            Perm::Reveal => "reveal",
            Perm::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Perm> {
        Perm::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// A set of [`Perm`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perms(u16);

impl Perms {
    pub fn of(perms: &[Perm]) -> Perms {
        Perms(perms.iter().fold(0, |m, p| m | 1 << *p as u16))
    }
    pub fn has(self, p: Perm) -> bool {
        self.0 & (1 << p as u16) != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        Perm::ALL
            .into_iter()
            .filter(|p| self.has(*p))
            .map(Perm::name)
            .collect()
    }
}

impl Serialize for Perms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// What a console user or an API key may do: a named set of permissions, and the case inboxes it
/// may see (`None`: every inbox). Four roles are built in (see [`Role::preset`]); a deployment adds
/// its own in `[server.roles.<name>]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Role {
    pub name: String,
    pub permissions: Perms,
    /// Inbox names, or prefixes ending in `*` (`apac-*`); `None`: all.
    pub inboxes: Option<Vec<String>>,
}

/// The built-in roles, each including the one before it (except `ingest`, for machines).
pub const PRESETS: [&str; 4] = ["ingest", "analyst", "investigator", "admin"];

impl Role {
    /// A built-in role: `ingest` sends events and labels; `analyst` reads, works cases one at a
    /// time and edits rules and lists; `investigator` also acts on many cases at once, approves
    /// changes and reveals personal data; `admin` may do everything.
    pub fn preset(name: &str) -> Option<Role> {
        use Perm::*;
        let perms: &[Perm] = match name {
            "ingest" => &[Ingest],
            "analyst" => &[Read, Cases, Rules],
            "investigator" => &[Read, Cases, Rules, Investigate, Approve, Reveal],
            "admin" => &Perm::ALL,
            _ => return None,
        };
        Some(Role {
            name: name.to_string(),
            permissions: Perms::of(perms),
            inboxes: None,
        })
    }

    /// Whether this role has permission `p`.
    pub fn allows(&self, p: Perm) -> bool {
        self.permissions.has(p)
    }

    /// Whether this role may see the cases of inbox `inbox`.
    pub fn sees_inbox(&self, inbox: &str) -> bool {
        self.inboxes.as_ref().is_none_or(|scopes| {
            scopes.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => inbox.starts_with(prefix),
                None => s == inbox,
            })
        })
    }
}

/// A logged-in user, as a session shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub user: String,
    /// The user's role, by name (resolved against the configured roles by the server).
    pub role: String,
    pub csrf: String,
    pub expires_at: Millis,
}

/// The `password_hash` of a user who signs in through the OpenID Connect provider: not a PHC
/// string, so no password matches it.
const SSO_HASH: &str = "sso";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    hex(&b)
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Adds a user, or sets the role and password of an existing one.
    pub async fn set_user(
        &self,
        name: &str,
        role: &str,
        password: &str,
        now: Millis,
    ) -> Result<(), CaseError> {
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(CaseError::Invalid(
                "a user name is 1 to 64 characters, no control characters".into(),
            ));
        }
        if password.chars().count() < 12 {
            return Err(CaseError::Invalid(
                "a password has at least 12 characters".into(),
            ));
        }
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| CaseError::Invalid(format!("hashing the password: {e}")))
        })
        .await
        .map_err(|e| CaseError::Invalid(format!("hashing the password: {e}")))??;
        let updated = sqlx::query(
            "UPDATE users SET role = $1, password_hash = $2, disabled = 0 WHERE name = $3",
        )
        .bind(role)
        .bind(&hash)
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at, disabled) VALUES ($1, $2, $3, $4, 0)",
            )
            .bind(name)
            .bind(role)
            .bind(&hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        } else {
            // A new password ends the user's sessions.
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&self.pool)
                .await?;
        }
        self.durable().await
    }

    /// Users, their roles' names and whether they are disabled.
    pub async fn users(&self) -> Result<Vec<(String, String, bool)>, CaseError> {
        let rows = sqlx::query("SELECT name, role, disabled FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    r.try_get::<String, _>("role")?,
                    r.try_get::<i64, _>("disabled")? != 0,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(CaseError::from)
    }

    /// Checks a password and opens a session of `ttl_ms`: the token (for the cookie) and the
    /// session. A wrong name and a wrong password get the same answer, after the same work.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<(String, SessionInfo), CaseError> {
        let row = sqlx::query("SELECT role, password_hash, disabled FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        // An unknown user is checked against a dummy hash, so that timing does not tell who exists.
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3XpSlYBkAe9AqGnFv2IGG8gvP1Gpb3VB1TnTy8PZcF0";
        let (role, hash, disabled) = match &row {
            Some(r) => (
                r.try_get::<String, _>("role")?,
                r.try_get::<String, _>("password_hash")?,
                r.try_get::<i64, _>("disabled")? != 0,
            ),
            None => (String::new(), DUMMY.to_string(), true),
        };
        let given = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(given.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let (true, false) = (ok, disabled) else {
            return Err(CaseError::Unauthorized(
                "unknown user or wrong password".into(),
            ));
        };
        self.open_session(name, role, ttl_ms, now).await
    }

    /// A user signed in by the OpenID Connect provider: added on first sign-in, their role set from
    /// the provider's claims at every sign-in, and a session opened. Such users have no password
    /// (`password_hash` is `sso`, which no password matches). A local user of the same name is not
    /// taken over (`Conflict`); a disabled user stays out (`Unauthorized`).
    pub async fn sso_login(
        &self,
        name: &str,
        role: &str,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<(String, SessionInfo), CaseError> {
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(CaseError::Invalid(format!(
                "the provider's user name `{}` is not 1 to 64 characters without control characters",
                name.escape_debug()
            )));
        }
        let row = sqlx::query("SELECT password_hash, disabled FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => {
                sqlx::query(
                    "INSERT INTO users (name, role, password_hash, created_at, disabled) VALUES ($1, $2, $3, $4, 0)",
                )
                .bind(name)
                .bind(role)
                .bind(SSO_HASH)
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
            Some(r) => {
                if r.try_get::<String, _>("password_hash")? != SSO_HASH {
                    return Err(CaseError::Conflict(format!(
                        "a local user `{name}` exists: a single sign-on user cannot take it over"
                    )));
                }
                if r.try_get::<i64, _>("disabled")? != 0 {
                    return Err(CaseError::Unauthorized(format!(
                        "user `{name}` is disabled"
                    )));
                }
                sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
                    .bind(role)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
            }
        }
        self.durable().await?;
        self.open_session(name, role.to_string(), ttl_ms, now).await
    }

    async fn open_session(
        &self,
        name: &str,
        role: String,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<(String, SessionInfo), CaseError> {
        let token = random_hex(32);
        let csrf = random_hex(16);
        let expires_at = now.saturating_add(ttl_ms);
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&token))
        .bind(name)
        .bind(&csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok((
            token,
            SessionInfo {
                user: name.to_string(),
                role,
                csrf,
                expires_at,
            },
        ))
    }

    /// The live session of a cookie's token.
    pub async fn session(
        &self,
        token: &str,
        now: Millis,
    ) -> Result<Option<SessionInfo>, CaseError> {
        let r = sqlx::query(
            "SELECT s.user_name AS user_name, s.csrf AS csrf, s.expires_at AS expires_at, u.role AS role, \
             u.disabled AS disabled FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash(token))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        if r.try_get::<i64, _>("disabled")? != 0 {
            return Ok(None);
        }
        Ok(Some(SessionInfo {
            user: r.try_get("user_name")?,
            role: r.try_get("role")?,
            csrf: r.try_get("csrf")?,
            expires_at: r.try_get("expires_at")?,
        }))
    }

    pub async fn logout(&self, token: &str) -> Result<(), CaseError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Perm, Role};

    #[test]
    fn the_presets_include_the_ones_before_except_ingest() {
        let r = |n| Role::preset(n).unwrap();
        for p in Perm::ALL {
            assert!(r("admin").allows(p));
            if r("analyst").allows(p) {
                assert!(r("investigator").allows(p), "{p:?}");
            }
        }
        assert!(r("ingest").allows(Perm::Ingest) && !r("ingest").allows(Perm::Read));
        assert!(!r("analyst").allows(Perm::Ingest) && !r("investigator").allows(Perm::Ingest));
        assert!(r("analyst").allows(Perm::Cases) && !r("analyst").allows(Perm::Investigate));
        assert!(r("investigator").allows(Perm::Reveal) && !r("investigator").allows(Perm::Admin));
        assert!(Role::preset("root").is_none());
    }

    #[test]
    fn inbox_scopes_are_names_or_prefixes() {
        let mut r = Role::preset("analyst").unwrap();
        assert!(r.sees_inbox("anything"));
        r.inboxes = Some(vec!["apac-*".into(), "payments".into()]);
        assert!(r.sees_inbox("apac-sg") && r.sees_inbox("payments"));
        assert!(!r.sees_inbox("payments-eu") && !r.sees_inbox("emea") && !r.sees_inbox("apac"));
        r.inboxes = Some(Vec::new());
        assert!(!r.sees_inbox("payments"));
    }
}
