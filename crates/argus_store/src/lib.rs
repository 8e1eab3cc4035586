//! The relational store the components beside the engine share (cases now; rule versions, users and
//! the cluster's shared state later): SQLite for the embedded default, PostgreSQL for clusters, behind
//! one interface (sqlx's `Any` driver, SQL written for both), with versioned migrations that each
//! component brings and this crate applies once, in order, recording them in `argus_migrations`.

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

pub use sqlx;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store: `{0}` is not a database URL Argus uses (sqlite:… or postgres://…)")]
    Url(String),
}

/// Whether `e` says another writer got there first: a unique-key violation, or (PostgreSQL) a
/// serialization failure or deadlock. Such a write is worth trying again.
pub fn is_conflict(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            matches!(d.kind(), sqlx::error::ErrorKind::UniqueViolation)
                || d.code().is_some_and(|c| c == "40001" || c == "40P01")
        }
        _ => false,
    }
}

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One migration of a component: applied once, in version order, inside a transaction.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub component: &'static str,
    pub version: i64,
    pub name: &'static str,
    /// Statements separated by `;` (`--` comments allowed).
    pub sql: &'static str,
}

/// A connection pool and the database it reaches.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// Connects to `url`: `sqlite://path/to/file.db?mode=rwc`, `sqlite::memory:`, or `postgres://…`.
    pub async fn open(url: &str) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let sqlite = backend == Backend::Sqlite;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time; in memory, every connection would be its own database.
            .max_connections(if sqlite { 1 } else { 8 })
            // An unreachable PostgreSQL answers a request (a console page, an intake attempt) with
            // an error after 5 s rather than sqlx's 30: pages say 503 while a person still waits.
            // SQLite keeps the default: its one connection may be held by a long write.
            .acquire_timeout(std::time::Duration::from_secs(if sqlite { 30 } else { 5 }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // sqlx opens SQLite in WAL mode. With `synchronous = NORMAL` a commit
                        // survives a crash of the process at once, and reaches the disk at the next
                        // checkpoint: a power cut can lose the newest commits. Writes that must not
                        // be lost that way (a person's verdict) call `Db::sync` after committing.
                        use sqlx::Executor;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(Db { pool, backend })
    }

    /// Makes every commit so far durable against a power cut: on SQLite a full WAL checkpoint (which
    /// syncs the log and the database file); PostgreSQL syncs each commit already.
    pub async fn sync(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(FULL)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Applies the migrations not applied yet, in version order, each in its own transaction.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS argus_migrations (component TEXT NOT NULL, \
             version BIGINT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (component, version))",
        )
        .execute(&self.pool)
        .await?;
        let mut ordered: Vec<&Migration> = migrations.iter().collect();
        ordered.sort_by_key(|m| (m.component, m.version));
        for m in ordered {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "SELECT version FROM argus_migrations WHERE component = $1 AND version = $2",
            )
            .bind(m.component)
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_some() {
                continue;
            }
            for stmt in statements(m.sql) {
                // Compiled-in migration text, never user input.
                sqlx::query(sqlx::AssertSqlSafe(stmt.to_string()))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO argus_migrations (component, version, name) VALUES ($1, $2, $3)",
            )
            .bind(m.component)
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The migrations applied, as (component, version), in order.
    pub async fn applied(&self) -> Result<Vec<(String, i64)>, StoreError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT component, version FROM argus_migrations ORDER BY component, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("component")?, r.try_get("version")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// The statements of a migration: split at `;`, skipping what holds only comments and blanks.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
    })
}

/// For tests: a fresh PostgreSQL database named `name` on the server that `ARGUS_TEST_POSTGRES`
/// names (a role that may create databases), dropped first if it exists; its URL. Without the
/// variable: `None` with a message, or a panic when `ARGUS_REQUIRE_DATA` is set (CI, where no test
/// may leave its PostgreSQL half out).
pub async fn test_database(name: &str) -> Option<String> {
    let Ok(admin) = std::env::var("ARGUS_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI) but ARGUS_TEST_POSTGRES is not: the PostgreSQL half of this test cannot be left out"
        );
        eprintln!(
            "SKIPPED (PostgreSQL half): set ARGUS_TEST_POSTGRES=postgres://user:password@127.0.0.1/db"
        );
        return None;
    };
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "a test database name is lowercase letters, digits and _"
    );
    let db = Db::open(&admin)
        .await
        .expect("ARGUS_TEST_POSTGRES connects");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await
            .expect("a test database");
    }
    db.pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[Migration] = &[
        Migration {
            component: "t",
            version: 2,
            name: "second",
            sql: "-- a comment\nALTER TABLE a ADD COLUMN y BIGINT;\n",
        },
        Migration {
            component: "t",
            version: 1,
            name: "first",
            sql: "CREATE TABLE a (x BIGINT);\n-- trailing comment\n",
        },
    ];

    #[tokio::test]
    async fn migrations_apply_once_in_order_and_bad_urls_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", d.path().join("s.db").display());
        let db = Db::open(&url).await.unwrap();
        assert_eq!(db.backend, Backend::Sqlite);
        db.migrate(M).await.unwrap();
        db.migrate(M).await.unwrap();
        let db = Db::open(&url).await.unwrap();
        db.migrate(M).await.unwrap();
        assert_eq!(
            db.applied().await.unwrap(),
            [("t".to_string(), 1), ("t".to_string(), 2)]
        );
        sqlx::query("INSERT INTO a (x, y) VALUES (1, 2)")
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(matches!(
            Db::open("mysql://x").await,
            Err(StoreError::Url(_))
        ));
    }
}
