//! The store: tickets, messages, events, outbox, checkpoints and quarantine, on SQLite (embedded
//! default) or PostgreSQL (several instances), through one set of methods. sqlx's `Any` driver with
//! runtime queries keeps one code path; every statement is parameterized; times are UTC
//! milliseconds. Transactions on SQLite start with `BEGIN IMMEDIATE` so that concurrent writers
//! (the daemon and `loket ingest`) queue on the busy timeout instead of failing.

pub mod api;
pub mod blobs;
mod chat;
pub mod checkpoint;
pub mod corrections;
pub mod file;
mod files;
pub mod inline;
mod merge;
mod oauth;
pub mod privacy;
mod quarantine;
mod queries;
pub mod report;
mod send_rate;
pub mod sla;
mod statistics;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use chat::*;
pub use files::*;
pub use merge::*;
pub use oauth::*;
pub use quarantine::*;
pub use queries::*;
pub use send_rate::*;
pub use webhooks::*;

use crate::config::{StorageConfig, redact_url};
use file::Need;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a storage URL names: `sqlite:…` or else PostgreSQL.
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres }
    }
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
    /// The store cannot be used as configured; the message names the cause and the fix.
    #[error("{0}")]
    Setup(String),
    /// The files directory (raw mail and chat files) could not be read or written.
    #[error("files directory: {0}")]
    Files(String),
}

impl StoreError {
    /// Whether trying again later may succeed: the store is unreachable, busy, locked or full,
    /// or the transaction lost a serialisation race. Constraint violations, decoding failures
    /// and inconsistent data are properties of the message or the data, and permanent.
    pub fn is_temporary(&self) -> bool {
        match self {
            // A full disk or a directory that cannot be reached now: try again later.
            StoreError::Unavailable { .. } | StoreError::Files(_) => true,
            StoreError::Migrate(_) | StoreError::Corrupt(_) | StoreError::Setup(_) => false,
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

/// A SQLite open or set-up error with its likely cause: SQLite itself says only "unable to open
/// database file" or "attempt to write a readonly database".
fn sqlite_hint(url: &str, e: sqlx::Error) -> StoreError {
    let hint = match &e {
        sqlx::Error::Database(db) => match db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff) {
            Some(8) => format!(
                "; the file (or its -wal/-shm journal, or its directory) is read-only for the user Loket runs as, {}",
                file::running_user()
            ),
            Some(13) => "; the disk holding the store is full: free space".into(),
            Some(14) => "; the path must name a file in an existing, writable directory on a local disk".into(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    StoreError::Setup(format!("store unavailable ({}): {e}{hint}", redact_url(url)))
}

/// Whether a read-only connection can use the WAL index: a writer has the -shm file (it exists and
/// we may read it), or we may create it in the directory.
fn wal_readable(path: &std::path::Path) -> bool {
    use rustix::fs::{Access, access};
    let shm = std::path::PathBuf::from(format!("{}-shm", path.display()));
    if shm.exists() {
        return access(&shm, Access::READ_OK).is_ok();
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

/// Per-connection SQLite settings; a read-only connection changes nothing in the file.
async fn setup_sqlite(conn: &mut sqlx::AnyConnection, normal_sync: bool, read_only: bool) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA busy_timeout = 30000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    if !read_only {
        conn.execute("PRAGMA journal_mode = WAL").await?;
        // Deleted and overwritten content is zeroed, so erased personal data (`loket forget`,
        // retention) leaves no stale copy in the file's free space.
        conn.execute("PRAGMA secure_delete = ON").await?;
        // Statement and savepoint sub-journals in memory, not in a temporary file written page by
        // page: a tenth of the pipeline's time went there when each message of a batch had a
        // savepoint.
        conn.execute("PRAGMA temp_store = MEMORY").await?;
        // The store's own thread checkpoints the log ([`checkpoint`]); a writer's commit only
        // when the log has grown past what that thread keeps.
        let backstop = format!("PRAGMA wal_autocheckpoint = {}", checkpoint::BACKSTOP_PAGES);
        conn.execute(sqlx::AssertSqlSafe(backstop)).await?;
        conn.execute(if normal_sync { "PRAGMA synchronous = NORMAL" } else { "PRAGMA synchronous = FULL" }).await?;
    }
    Ok(())
}

impl StoreError {
    /// What an operator can do about a temporary error, when it is clear (a full disk).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StoreError::Sql(sqlx::Error::Database(db))
                if db.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|c| c & 0xff == 13) =>
            {
                Some("the disk holding the store is full: free space; the message is kept and retried")
            }
            _ => None,
        }
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

    #[tokio::test]
    async fn open_current_migrates_a_new_store_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let cfg = crate::config::StorageConfig { url, max_connections: 1, ..Default::default() };
        let store = super::Store::open_current(&cfg).await.unwrap();
        assert!(store.is_current().await.unwrap(), "a new store is migrated");
        let (applied, known) = store.schema_versions().await.unwrap();
        assert_eq!(applied, known);
        store.close().await;
        let again = super::Store::open_current(&cfg).await.unwrap();
        assert!(again.is_current().await.unwrap());
        // A store a newer loket migrated: not current, and the migrator refuses it (as `open` does)
        // instead of this binary writing to a schema it does not know.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (29991231000000, 'from the future', TRUE, X'00', 0)",
        )
        .execute(again.pool())
        .await
        .unwrap();
        assert!(!again.is_current().await.unwrap());
        again.close().await;
        let err = super::Store::open_current(&cfg).await.unwrap_err();
        assert!(matches!(err, super::StoreError::Migrate(_)), "{err}");
        assert!(err.to_string().contains("29991231000000"), "{err}");
    }

    #[tokio::test]
    async fn the_store_checkpoints_its_log_on_its_own_thread_not_in_a_writers_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let url = format!("sqlite://{}", db.display());
        let cfg = crate::config::StorageConfig { url, max_connections: 1, ..Default::default() };
        let store = super::Store::open(&cfg).await.unwrap();
        let size = || std::fs::metadata(&db).unwrap().len();
        sqlx::query("CREATE TABLE bulk (b BLOB)").execute(store.pool()).await.unwrap();
        let before = size();
        // 6 MiB in one commit: past SQLite's default automatic checkpoint (1,000 pages), which
        // would have copied it into the file in the commit; within the writers' backstop.
        let mut tx = store.begin().await.unwrap();
        for _ in 0..24 {
            sqlx::query("INSERT INTO bulk (b) VALUES (randomblob(262144))").execute(&mut *tx).await.unwrap();
        }
        store.commit(tx).await.unwrap();
        assert!(size() < before + (1 << 20), "the commit checkpointed: {before} -> {} bytes", size());
        assert_eq!(store.checkpoints_run(), Some(0));
        store.committed_messages(super::checkpoint::EVERY_MESSAGES as usize - 1);
        assert_eq!(store.checkpoints_run(), Some(0), "not yet due");
        store.committed_messages(1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.checkpoints_run() == Some(0) {
            assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(size() >= before + (6 << 20), "the log is in the file: {before} -> {} bytes", size());
        // A read-only store writes nothing, checkpoints included.
        let read_only = super::Store::open_read_only(&cfg).await.unwrap();
        assert_eq!(read_only.checkpoints_run(), None);
    }

    #[tokio::test]
    async fn a_full_store_says_so_and_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("full.db").display());
        let cfg = crate::config::StorageConfig { url, max_connections: 1, ..Default::default() };
        let store = super::Store::open(&cfg).await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(store.pool()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {}", pages + 2)))
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS filler (b BLOB)").execute(store.pool()).await.ok();
        let err = sqlx::query("INSERT INTO filler (b) VALUES (?)")
            .bind(vec![0u8; 1 << 20])
            .execute(store.pool())
            .await
            .map_err(super::StoreError::from)
            .unwrap_err();
        assert!(err.is_temporary(), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("disk holding the store is full")), "{err}");
    }
}

/// Installs the drivers sqlx's `Any` connects through: Loket's own SQLite driver, which runs
/// each statement on the awaiting thread ([`inline`]), and sqlx's PostgreSQL driver. Every
/// store opens through here; tests and benchmarks call it before using `Any` themselves.
///
/// `LOKET_SQLITE_DRIVER=sqlx` installs sqlx's own SQLite driver instead (a statement per hand-off
/// to its worker thread): the way back should a deployment meet a difference, and the
/// benchmarks' same-binary reference.
pub fn install_drivers() {
    static DRIVERS: [sqlx_core::any::driver::AnyDriver; 2] = [inline::DRIVER, sqlx::postgres::any::DRIVER];
    static SQLX_DRIVERS: [sqlx_core::any::driver::AnyDriver; 2] =
        [sqlx::sqlite::any::DRIVER, sqlx::postgres::any::DRIVER];
    let sqlx_sqlite = std::env::var("LOKET_SQLITE_DRIVER").as_deref() == Ok("sqlx");
    // Installed once per process; a second call finds them there.
    let _ = sqlx::any::install_drivers(if sqlx_sqlite { &SQLX_DRIVERS } else { &DRIVERS });
}

/// A handle to the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    files: blobs::Files,
    /// SQLite: the URL the pool connected with, for the migrator's own connection.
    sqlite_url: Option<String>,
    /// PostgreSQL: the messages committed while the store is young ([`statistics`]).
    young: std::sync::Arc<statistics::Young>,
    /// SQLite, written: the WAL's checkpoints off the writer's path ([`checkpoint`]).
    checkpoints: Option<std::sync::Arc<checkpoint::Checkpointer>>,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Connects (creating a SQLite file when missing, and its directory when that is `var`) and
    /// applies migrations.
    pub async fn open(cfg: &StorageConfig) -> Result<Self, StoreError> {
        let store = Self::connect(cfg, Need::Write).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// [`Store::open`] for `loket ingest`, which starts once per mail: one query tells whether the
    /// schema is this binary's (the applied migrations' count and last version), and only a store
    /// that is new or behind pays for the migrator (its table, lock and checksums), with a log line
    /// saying so. A store migrated by a newer loket is refused by the migrator, as by `open`.
    pub async fn open_current(cfg: &StorageConfig) -> Result<Self, StoreError> {
        let store = Self::connect(cfg, Need::Write).await?;
        if !store.is_current().await? {
            tracing::info!(store = %redact_url(&cfg.url), "store schema is not this loket's; applying migrations");
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Whether the applied migrations are exactly this binary's: as many, the last one the same.
    async fn is_current(&self) -> Result<bool, StoreError> {
        let ups = || self.migrator().iter().filter(|m| m.migration_type.is_up_migration());
        let (known, last) = (ups().count() as i64, ups().map(|m| m.version).max().unwrap_or(0));
        let applied: Result<(i64, Option<i64>), sqlx::Error> =
            sqlx::query_as("SELECT COUNT(*), MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await;
        match applied {
            Ok((n, max)) => Ok(n == known && max == Some(last)),
            // No migrations table yet: a new store.
            Err(sqlx::Error::Database(e))
                if e.message().contains("no such table") || e.code().as_deref() == Some("42P01") =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the store answers a trivial query (for `/healthz`).
    pub async fn is_reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(self.pool()).await.is_ok()
    }

    /// Connects for reading only (`tickets`, `quarantine`, `report`): a SQLite file is opened
    /// read-only, so a user who may only read it can list; nothing is created or migrated.
    pub async fn open_read_only(cfg: &StorageConfig) -> Result<Self, StoreError> {
        let store = Self::connect(cfg, Need::Read).await?;
        let (applied, known) = store.schema_versions().await?;
        if applied < known {
            return Err(StoreError::Setup(format!(
                "the store {} lacks {} of this loket's {known} migrations: run `loket migrate` (or `loket serve`) first",
                redact_url(&cfg.url),
                known - applied
            )));
        }
        Ok(store)
    }

    /// What `check-config` says of the store: opened without creating or migrating anything.
    pub async fn check(cfg: &StorageConfig) -> Result<String, StoreError> {
        let url = redact_url(&cfg.url);
        if let Some(path) = file::sqlite_path(&cfg.url)
            && let file::Found::WillCreate { dir } = file::prepare(&path, Need::Check)?
        {
            let what = if dir { "it and its directory" } else { "it" };
            return Ok(format!("{url}: not created yet; `loket serve` or `loket migrate` creates {what}"));
        }
        let store = Self::connect(cfg, Need::Check).await?;
        let (applied, known) = store.schema_versions().await?;
        store.close().await;
        Ok(if applied >= known {
            format!("{url}: ok, schema up to date ({known} migrations)")
        } else {
            format!(
                "{url}: ok, {} of {known} migrations pending; `loket migrate` or `loket serve` applies them",
                known - applied
            )
        })
    }

    async fn connect(cfg: &StorageConfig, need: Need) -> Result<Self, StoreError> {
        install_drivers();
        let url = cfg.url.clone();
        let unavailable = |source| StoreError::Unavailable { url: redact_url(&url), source };
        let backend = Backend::of(&url);
        let read_only = need != Need::Write && backend == Backend::Sqlite;
        let mut connect_url = url.clone();
        let sqlite_path = file::sqlite_path(&url);
        if let Some(path) = &sqlite_path {
            file::prepare(path, if need == Need::Write { Need::Write } else { Need::Read })?;
            let query = url.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
            let query = if !query.is_empty() {
                query
            } else if !read_only {
                "mode=rwc".to_string()
            } else if wal_readable(path) {
                "mode=ro".to_string()
            } else {
                // A WAL database opened read-only needs its -shm file; when no writer has it open
                // and the directory is not ours, SQLite may read the file as immutable instead.
                "mode=ro&immutable=true".to_string()
            };
            connect_url = format!("sqlite://{}?{query}", path.display());
        }
        let options = AnyConnectOptions::from_str(&connect_url).map_err(unavailable)?;
        let sync = cfg.sqlite_synchronous == crate::config::SqliteSynchronous::Normal;
        // SQLite: one connection first, so that a failure names its cause instead of ending, ten
        // seconds later, in the pool's "timed out while waiting for an open connection". It stays
        // open until the pool has its own: closed as the file's last connection, it would
        // checkpoint the WAL and delete it, for the pool to create it again.
        let probe = if backend == Backend::Sqlite {
            let mut first = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
                .await
                .map_err(|e| sqlite_hint(&url, e))?;
            setup_sqlite(&mut first, sync, read_only).await.map_err(|e| sqlite_hint(&url, e))?;
            Some(first)
        } else {
            None
        };
        if backend == Backend::Postgres && need == Need::Check {
            // `check-config` wants the cause (refused, bad password, no such database), not the
            // pool's timeout; `serve` and `ingest` keep retrying through the pool.
            let probe = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await.map_err(unavailable)?;
            let _ = sqlx::Connection::close(probe).await;
        }
        let mut pool =
            AnyPoolOptions::new().max_connections(cfg.max_connections).acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // A connection to a local file costs nothing idle, and a new one reads the schema
            // again: no reaper closes idle or old ones. (sqlx's reaper task was also seen
            // spinning forever at a runtime's shutdown, in `ArrayQueue::push`, once in a test run.)
            pool = pool.idle_timeout(None).max_lifetime(None);
        }
        let pool = pool
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        setup_sqlite(conn, sync, read_only).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        if let Some(probe) = probe {
            let _ = sqlx::Connection::close(probe).await;
        }
        let checkpoints = match &sqlite_path {
            Some(path) if need == Need::Write => checkpoint::Checkpointer::start(path)
                .inspect_err(|e| tracing::warn!(error = %e, "no checkpoint thread: the writers checkpoint the log"))
                .ok()
                .map(std::sync::Arc::new),
            _ => None,
        };
        Ok(Self {
            pool,
            backend,
            sqlite_url: (backend == Backend::Sqlite).then_some(connect_url),
            young: Default::default(),
            checkpoints,
            files: blobs::Files::local(cfg.files_dir(), cfg.files_flush == crate::config::FilesFlush::FileSystem),
        })
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &PG_MIGRATOR,
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let backend = self.backend;
        // Two processes starting on a fresh SQLite file (`serve` and `ingest`) can race: the loser
        // sees the winner's tables. PostgreSQL serialises with an advisory lock; SQLite retries,
        // and then finds the migration applied.
        let mut attempt = 0;
        loop {
            match self.run_migrator().await {
                Ok(()) => return Ok(()),
                Err(e) if backend == Backend::Sqlite && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs the migrator: on PostgreSQL through the pool; on SQLite on a connection of sqlx's own
    /// SQLite driver (Loket's, [`inline`], does not implement sqlx's migration interface).
    async fn run_migrator(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let Some(url) = &self.sqlite_url else { return self.migrator().run(&self.pool).await };
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.busy_timeout(Duration::from_secs(30));
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        let ran = self.migrator().run(&mut conn).await;
        let _ = conn.close().await;
        ran
    }

    /// (migrations applied, migrations this binary knows).
    async fn schema_versions(&self) -> Result<(i64, i64), StoreError> {
        let known = self.migrator().iter().filter(|m| m.migration_type.is_up_migration()).count() as i64;
        let exists = match self.backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
            }
        };
        let tables: i64 = sqlx::query_scalar(exists).fetch_one(&self.pool).await?;
        if tables == 0 {
            return Ok((0, known));
        }
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        Ok((applied, known))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where raw mail and chat files live (the rows keep their names).
    pub fn files(&self) -> &blobs::Files {
        &self.files
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Commits `tx` once the files its rows name are durable: every blob staged in the files
    /// directory is written first ([`blobs::Files::sync`]). The only way Loket commits (clippy's
    /// `disallowed-methods` keeps it so).
    pub async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        self.files.sync().await?;
        #[allow(clippy::disallowed_methods)]
        tx.commit().await?;
        Ok(())
    }

    /// The intake committed `n` messages. On PostgreSQL a young store's tables are analyzed when
    /// due, so that its connections plan their statements for the tables' size
    /// ([`statistics`]); on SQLite the store's thread checkpoints the log every
    /// [`checkpoint::EVERY_MESSAGES`] ([`checkpoint`]).
    pub fn committed_messages(&self, n: usize) {
        if self.backend == Backend::Postgres {
            self.young.committed(&self.pool, n);
        }
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.committed(n);
        }
    }

    /// SQLite, written: how many checkpoints the store's own thread has run ([`checkpoint`]).
    pub fn checkpoints_run(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(|c| c.runs())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
