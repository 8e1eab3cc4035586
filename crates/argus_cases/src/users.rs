//! Console users and their sessions. Passwords are hashed with Argon2id (the `argon2` crate, a
//! random salt per user, PHC string format). A session is a random 256-bit token, given to the
//! browser once in an `HttpOnly` cookie and stored only as its SHA-256; each session has its own
//! CSRF token, which every state-changing request must send back in a header.

use crate::{CaseError, Millis, Store};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use argus_store::sqlx::{self, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a console user or an API key may do. Each role includes the ones before it, except
/// `ingest`, which only sends events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    /// Reads decisions, entities, findings; works cases one at a time (claim, note, verdict).
    Analyst,
    /// An analyst who may also act on many at once: ring bans, bulk jobs, escalation, outbox retries.
    Investigator,
    /// Everything, users and configuration included.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Analyst => "analyst",
            Role::Investigator => "investigator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "analyst" => Some(Role::Analyst),
            "investigator" => Some(Role::Investigator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    /// Whether this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (Role::Ingest, _) | (_, Role::Ingest) => self == needed,
            (s, n) => s >= n,
        }
    }
}

/// A logged-in user, as a session shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    pub expires_at: Millis,
}

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
        role: Role,
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
        .bind(role.name())
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
            .bind(role.name())
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

    /// Users and their roles.
    pub async fn users(&self) -> Result<Vec<(String, Role, bool)>, CaseError> {
        let rows = sqlx::query("SELECT name, role, disabled FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    Role::parse(&r.try_get::<String, _>("role")?).unwrap_or(Role::Analyst),
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
        let role = Role::parse(&role);
        let (Some(role), true, false) = (role, ok, disabled) else {
            return Err(CaseError::Unauthorized(
                "unknown user or wrong password".into(),
            ));
        };
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
        Ok(Role::parse(&r.try_get::<String, _>("role")?)
            .map(|role| -> Result<_, sqlx::Error> {
                Ok(SessionInfo {
                    user: r.try_get("user_name")?,
                    role,
                    csrf: r.try_get("csrf")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .transpose()?)
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
    use super::Role;

    #[test]
    fn roles_include_the_ones_before() {
        use Role::*;
        assert!(Admin.allows(Ingest) && Admin.allows(Investigator));
        assert!(Investigator.allows(Analyst) && Investigator.allows(Investigator));
        assert!(!Investigator.allows(Admin) && !Investigator.allows(Ingest));
        assert!(Analyst.allows(Analyst) && !Analyst.allows(Investigator));
        assert!(Ingest.allows(Ingest) && !Ingest.allows(Analyst));
        assert!(!Analyst.allows(Ingest));
    }
}
