//! The store: tickets, messages, events, outbox, checkpoints and quarantine, on SQLite (embedded
//! default) or PostgreSQL (several instances), through one set of methods. sqlx's `Any` driver with
//! runtime queries keeps one code path; every statement is parameterized; times are UTC
//! milliseconds. Transactions on SQLite start with `BEGIN IMMEDIATE` so that concurrent writers
//! (the daemon and `loket ingest`) queue on the busy timeout instead of failing.

mod chat;
mod queries;
pub mod sla;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use chat::*;
pub use queries::*;

use crate::config::{StorageConfig, redact_url};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable ({url}): {source}")]
    Unavailable { url: String, source: sqlx::Error },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed: the store is unreachable, busy, locked or full,
    /// or the transaction lost a serialisation race. Constraint violations, decoding failures
    /// and inconsistent data are properties of the message or the data, and permanent.
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } => true,
            StoreError::Migrate(_) | StoreError::Corrupt(_) => false,
            StoreError::Sql(e) => match e {
                sqlx::Error::Database(db) => {
                    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                    match db.kind() {
                        sqlx::error::ErrorKind::Other => !is_permanent_code(&code),
                        _ => false,
                    }
                }
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                _ => false,
            },
        }
    }

    /// A unique-constraint violation: another writer recorded the same thing first.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sql(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Database error codes that retrying cannot cure: SQLite's constraint family (19, and its
/// extended codes such as 1811, a trigger's `RAISE(ABORT)`), mismatches and misuse; PostgreSQL's
/// integrity (23…), data (22…) and syntax/access (42…) classes.
fn is_permanent_code(code: &str) -> bool {
    if code.len() == 5 {
        // A PostgreSQL SQLSTATE: its class is the first two characters.
        return ["23", "22", "42"].iter().any(|class| code.starts_with(class));
    }
    // SQLite (codes below 10000): the primary result code is the low byte.
    code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 19 | 20 | 21 | 25))
}

#[cfg(test)]
mod tests {
    #[test]
    fn permanent_database_codes() {
        use super::is_permanent_code as p;
        assert!(p("19") && p("2067") && p("1811") && p("23505") && p("22P02") && p("42P01"));
        assert!(!p("5") && !p("6") && !p("13") && !p("517") && !p("40001") && !p("57P01") && !p("08006"));
    }
}

/// A handle to the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Connects (creating a SQLite file and its directory when missing) and applies migrations.
    pub async fn open(cfg: &StorageConfig) -> Result<Self, StoreError> {
        install_default_drivers();
        let url = cfg.url.clone();
        let unavailable = |source| StoreError::Unavailable { url: redact_url(&url), source };
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let mut connect_url = url.clone();
        if backend == Backend::Sqlite {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let (file, query) = path.split_once('?').unwrap_or((path, ""));
            if file != ":memory:" {
                if let Some(dir) = std::path::Path::new(file).parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| unavailable(sqlx::Error::Io(e)))?;
                }
                let query = if query.is_empty() { "mode=rwc".to_string() } else { query.to_string() };
                connect_url = format!("sqlite://{file}?{query}");
            }
        }
        let options = AnyConnectOptions::from_str(&connect_url).map_err(unavailable)?;
        let sync = if cfg.sqlite_synchronous == "normal" { "NORMAL" } else { "FULL" };
        let pool = AnyPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        let stmt =
                            if sync == "FULL" { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
                        conn.execute(stmt).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &PG_MIGRATOR,
        };
        // Two processes starting on a fresh SQLite file (`serve` and `ingest`) can race: the loser
        // sees the winner's tables. PostgreSQL serialises with an advisory lock; SQLite retries,
        // and then finds the migration applied.
        let mut attempt = 0;
        loop {
            match migrator.run(&pool).await {
                Ok(()) => break,
                Err(e) if backend == Backend::Sqlite && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
