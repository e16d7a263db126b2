//! SQLite run on the awaiting task's own thread, as a driver of sqlx's `Any`.
//!
//! sqlx's SQLite driver runs every statement on a worker thread of its own: each statement is a
//! hand-off there and a wake-up back, which on this project's 2-core machine costs about ten
//! microseconds against half a microsecond for a small statement itself (BENCHMARKS.md, "SQLite on
//! the caller's thread"), and a new ticket runs a dozen statements. This driver registers for the
//! `sqlite:` scheme in sqlx's `Any` instead and runs each statement with rusqlite where it is
//! awaited, so the store's code (`sqlx::query(…).bind(…)` on `AnyConnection`) stays one code path
//! for SQLite and PostgreSQL.
//!
//! What it keeps of sqlx's driver: parameters `$N`, `?N` and `?`, several statements in one
//! unparameterized string (`raw_sql`), prepared statements cached per connection, transactions
//! and savepoints as sqlx's transaction manager names them, error codes (the extended result code
//! as text, constraint kinds), sqlx's statement log (`sqlx::query` events), values typed by what
//! they hold (integer, real, text, blob, null).
//!
//! Waiting never holds the thread: SQLite's own busy handler is off, and a statement that finds
//! the file locked by another writer is tried again after an asynchronous pause, for as long as
//! the connection's `PRAGMA busy_timeout` allows (that pragma sets this wait instead of SQLite's).
//! A commit's wait for the disk does hold the thread, as any statement's own work does: handing the
//! runtime's other tasks to another thread meanwhile (`block_in_place`) was measured, and it
//! doubled the daemon's peak memory in a 10,000-mail burst (a malloc arena per thread that ran
//! SQLite) and was slower (BENCHMARKS.md).
//!
//! Writers in one process queue on an asynchronous gate per database file instead of on SQLite's
//! lock: a connection takes the gate before `BEGIN IMMEDIATE` (or a write outside a transaction)
//! and gives it back when the transaction ends, so a writer waiting behind another of the same
//! process goes on the moment the lock is free, rather than after its next pause. (In `serve`'s
//! Maildir benchmark the intake and the outbox spent seconds in such pauses.) The gate is waited
//! for at most the busy timeout, and other processes (`loket ingest`) still meet SQLite's lock.
//!
//! Migrations do not run through this driver: the store runs them on sqlx's own SQLite
//! connection (`Store::migrate`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, ffi};
use sqlx_core::any::driver::AnyDriver;
use sqlx_core::any::{
    AnyArguments, AnyColumn, AnyConnectOptions, AnyConnectionBackend, AnyQueryResult, AnyRow, AnyStatement,
    AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};
use sqlx_core::connection::{ConnectOptions, Connection, LogSettings};
use sqlx_core::database::Database;
use sqlx_core::error::{DatabaseError, Error, ErrorKind};
use sqlx_core::ext::ustr::UStr;
use sqlx_core::logger::QueryLogger;
use sqlx_core::sql_str::SqlStr;
use sqlx_core::transaction::{
    Transaction, TransactionManager, begin_ansi_transaction_sql, commit_ansi_transaction_sql,
    rollback_ansi_transaction_sql,
};
use sqlx_core::{Either, Url};

/// The driver to install in sqlx's `Any` for `sqlite:` URLs.
pub const DRIVER: AnyDriver = AnyDriver::without_migrate::<Inline>();

/// How many prepared statements a connection keeps (Loket runs a few hundred distinct ones).
const STATEMENT_CACHE: usize = 512;

/// Longest pause between two tries of a statement that found the file locked.
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// sqlx's `busy_timeout` default, until the connection's pragma says otherwise.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database type sqlx's `Any` needs to name this driver. Only the connection is ever made:
/// `Any` converts arguments, rows and statements to its own types, so the other associated types
/// are uninhabited.
#[derive(Debug)]
pub struct Inline;

impl Database for Inline {
    type Connection = InlineConnection;
    type TransactionManager = InlineTransactions;
    type Row = Never;
    type QueryResult = InlineQueryResult;
    type Column = Never;
    type TypeInfo = Never;
    type Value = Never;
    type ValueRef<'r> = NeverRef<'r>;
    type Arguments = InlineArguments;
    type ArgumentBuffer = ();
    type Statement = Never;

    // The name `AnyConnection::backend_name` reports, as sqlx's own SQLite driver.
    const NAME: &'static str = "SQLite";
    const URL_SCHEMES: &'static [&'static str] = &["sqlite"];
}

/// Where to open the file, and how.
#[derive(Debug, Clone)]
pub struct InlineOptions {
    /// The `file:` URI handed to SQLite.
    uri: String,
    log: LogSettings,
}

impl InlineOptions {
    /// Parses `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:`, with the query parameters sqlx's
    /// driver takes that Loket uses: `mode` (`ro`, `rw`, `rwc`, `memory`) and `immutable`.
    fn parse(url: &str) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| Error::Configuration(format!("not a sqlite URL: {url}").into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut mode = "rw";
        let mut immutable = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (key, value) {
                ("mode", "ro" | "rw" | "rwc" | "memory") => mode = value,
                ("immutable", "true" | "1") => immutable = true,
                ("immutable", "false" | "0") => immutable = false,
                _ => return Err(Error::Configuration(format!("unsupported SQLite URL parameter {pair:?}").into())),
            }
        }
        let uri = if path.is_empty() || path == ":memory:" || mode == "memory" {
            // `Any` parses the URL again for every connection: each has a private in-memory
            // database, as with sqlx's driver through `Any` (Loket's stores are files).
            "file:memory?mode=memory".to_owned()
        } else {
            let path = sqlx_core::percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|e| Error::Configuration(format!("SQLite path is not UTF-8: {e}").into()))?;
            let mut uri = format!("file:{}?mode={mode}", uri_path(&path));
            if immutable {
                uri.push_str("&immutable=1");
            }
            uri
        };
        Ok(Self { uri, log: LogSettings::default() })
    }
}

/// A path for a `file:` URI: the characters SQLite's URI parser treats specially, escaped.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

impl FromStr for InlineOptions {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl TryFrom<&AnyConnectOptions> for InlineOptions {
    type Error = Error;
    fn try_from(any: &AnyConnectOptions) -> Result<Self, Error> {
        let mut options = Self::parse(any.database_url.as_str())?;
        options.log = any.log_settings.clone();
        Ok(options)
    }
}

impl ConnectOptions for InlineOptions {
    type Connection = InlineConnection;

    fn from_url(url: &Url) -> Result<Self, Error> {
        Self::parse(url.as_str())
    }

    async fn connect(&self) -> Result<InlineConnection, Error> {
        InlineConnection::open(self)
    }

    fn log_statements(mut self, level: log::LevelFilter) -> Self {
        self.log.log_statements(level);
        self
    }

    fn log_slow_statements(mut self, level: log::LevelFilter, duration: Duration) -> Self {
        self.log.log_slow_statements(level, duration);
        self
    }
}

/// A statement's result columns, as `Any` names them; kept per SQL text.
struct Shape {
    names: Arc<sqlx_core::HashMap<UStr, usize>>,
    columns: Vec<AnyColumn>,
    /// Whether the statement cannot write (SQLite's `sqlite3_stmt_readonly`).
    readonly: bool,
    /// Per parameter (SQLite's index − 1), the argument it takes: read once per statement, as
    /// SQLite looks a parameter's name up by walking the statement's list of names (binding a
    /// multi-row insert of hundreds of parameters by name each time was quadratic).
    params: Vec<Param>,
}

/// What one parameter of a statement takes ([`bind`]).
enum Param {
    /// `?NNN` or `$NNN`: that argument (from 1).
    Numbered(usize),
    /// A bare `?`: the argument after the previous bare one's.
    Next,
    /// A name sqlx's SQLite driver does not take (`:name`, `@name`).
    Invalid(String),
}

/// One SQLite connection, used on the thread that awaits it.
pub struct InlineConnection {
    db: rusqlite::Connection,
    /// Open transactions and savepoints, as sqlx's transaction manager counts them.
    depth: usize,
    /// How long a statement may wait for another writer's lock.
    busy_timeout: Duration,
    shapes: HashMap<String, Arc<Shape>>,
    log: LogSettings,
    /// The database file's writer gate, shared by this process's connections to it.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// The gate, while this connection's write transaction is open.
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// The writer gate of each database file this process opened (by its URI).
fn gate_for(uri: &str) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: Mutex<Option<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = Mutex::new(None);
    let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(gates.get_or_insert_with(HashMap::new).entry(uri.to_owned()).or_default())
}

/// Whether a statement that begins a transaction takes the write lock at once.
fn begins_writing(sql: &str) -> bool {
    let words: Vec<&str> = sql.split_whitespace().take(2).collect();
    matches!(words.as_slice(), [b, kind] if b.eq_ignore_ascii_case("BEGIN")
        && (kind.eq_ignore_ascii_case("IMMEDIATE") || kind.eq_ignore_ascii_case("EXCLUSIVE")))
}

impl fmt::Debug for InlineConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineConnection").field("depth", &self.depth).finish_non_exhaustive()
    }
}

impl InlineConnection {
    fn open(options: &InlineOptions) -> Result<Self, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = rusqlite::Connection::open_with_flags(&options.uri, flags).map_err(sql_error)?;
        // Waiting for a lock is this driver's (an asynchronous pause), not SQLite's (a sleep).
        db.busy_timeout(Duration::ZERO).map_err(sql_error)?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            db,
            depth: 0,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            shapes: HashMap::new(),
            log: options.log.clone(),
            gate: gate_for(&options.uri),
            held: None,
        })
    }

    /// Takes the writer gate, waiting at most the busy timeout (then SQLite's "database is
    /// locked", a temporary error).
    fn enter(&self) -> impl Future<Output = Result<tokio::sync::OwnedMutexGuard<()>, Error>> + Send + 'static {
        tokio::time::timeout(self.busy_timeout, Arc::clone(&self.gate).lock_owned()).map(|waited| {
            waited.map_err(|_| {
                Error::Database(Box::new(InlineError {
                    code: ffi::SQLITE_BUSY,
                    message: "database is locked (by another writer of this process)".into(),
                }))
            })
        })
    }

    /// Whether `req`, outside a transaction, may write (and so takes the gate for its run).
    fn may_write(&self, req: &Request<'_>) -> bool {
        let text = req.sql.as_str();
        if let Some(shape) = self.shapes.get(text) {
            return !shape.readonly;
        }
        let readonly = if req.persistent && req.args.is_some() {
            self.db.prepare_cached(text).map(|s| s.readonly())
        } else {
            // A string of several statements fails to prepare as one: taken as a write.
            self.db.prepare(text).map(|s| s.readonly())
        };
        !readonly.unwrap_or(false)
    }

    /// Runs `sql`, trying again while the file is locked by another writer, up to the busy
    /// timeout; logged or not as `req.what` says.
    async fn run(&mut self, req: Request<'_>) -> Result<Vec<Either<AnyQueryResult, AnyRow>>, Error> {
        let _gate = if req.what == What::Query && self.depth == 0 && self.held.is_none() && self.may_write(&req) {
            Some(self.enter().await?)
        } else {
            None
        };
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut out = Vec::new();
        // Statements of a multi-statement string already done, when a later one was busy.
        let mut done = 0;
        loop {
            match self.run_once(&req, &mut out, &mut done) {
                Err(e) if is_busy(&e) && started.elapsed() < self.busy_timeout => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                Err(e) => return Err(sql_error(e)),
                Ok(()) => break,
            }
        }
        const BUSY_PRAGMA: &str = "PRAGMA busy_timeout";
        if req.sql.as_str().trim_start().get(..BUSY_PRAGMA.len()).is_some_and(|p| p.eq_ignore_ascii_case(BUSY_PRAGMA)) {
            self.take_busy_timeout()?;
        }
        Ok(out)
    }

    /// After `PRAGMA busy_timeout = N`: keep N as this driver's wait and switch SQLite's off again.
    fn take_busy_timeout(&mut self) -> Result<(), Error> {
        let ms: i64 = self.db.query_row("PRAGMA busy_timeout", [], |r| r.get(0)).map_err(sql_error)?;
        self.busy_timeout = Duration::from_millis(ms.max(0) as u64);
        self.db.busy_timeout(Duration::ZERO).map_err(sql_error)
    }

    fn run_once(
        &mut self,
        req: &Request<'_>,
        out: &mut Vec<Either<AnyQueryResult, AnyRow>>,
        done: &mut usize,
    ) -> rusqlite::Result<()> {
        let Request { sql, persistent, args, limit, what } = *req;
        let text = sql.as_str();
        let settings = if what == What::Query { self.log.clone() } else { quiet() };
        let Some(args) = args else {
            // No parameters: the string may hold several statements (`raw_sql`), run in turn and
            // logged as one, as sqlx's driver logs them.
            let mut logger = QueryLogger::new(sql.clone(), settings);
            let mut batch = rusqlite::Batch::new(&self.db, text);
            let mut index = 0;
            while let Some(mut stmt) = rusqlite::fallible_iterator::FallibleIterator::next(&mut batch)? {
                if index >= *done {
                    let shape = shape_of(&stmt);
                    step_all(&self.db, &mut stmt, &shape, None, out, &mut logger)?;
                    *done = index + 1;
                }
                index += 1;
            }
            return Ok(());
        };
        let Self { db, shapes, .. } = self;
        let mut logger = QueryLogger::new(sql.clone(), settings);
        let (mut cached, mut plain);
        let stmt: &mut rusqlite::Statement<'_> = if persistent {
            cached = db.prepare_cached(text)?;
            &mut cached
        } else {
            plain = db.prepare(text)?;
            &mut plain
        };
        let shape = match shapes.get(text) {
            Some(shape) => Arc::clone(shape),
            None => {
                let shape = Arc::new(shape_of(stmt));
                if persistent {
                    if shapes.len() >= STATEMENT_CACHE {
                        shapes.clear();
                    }
                    shapes.insert(text.to_owned(), Arc::clone(&shape));
                }
                shape
            }
        };
        bind(stmt, &shape.params, args)?;
        step_all(db, stmt, &shape, limit, out, &mut logger)
    }

    /// Transaction control: not in the statement log, as with sqlx's driver.
    async fn control(&mut self, sql: SqlStr, what: What) -> Result<(), Error> {
        self.run(Request { sql: &sql, persistent: false, args: None, limit: None, what }).await.map(drop)
    }

    async fn begin_with(&mut self, statement: Option<SqlStr>) -> Result<(), Error> {
        let sql = match statement {
            Some(_) if self.depth > 0 => return Err(Error::InvalidSavePointStatement),
            Some(sql) => sql,
            None => begin_ansi_transaction_sql(self.depth),
        };
        if self.depth == 0 && begins_writing(sql.as_str()) {
            self.held = Some(self.enter().await?);
        }
        if let Err(e) = self.control(sql, What::Control).await {
            if self.depth == 0 {
                self.held = None;
            }
            return Err(e);
        }
        self.depth += 1;
        Ok(())
    }

    async fn commit_tx(&mut self) -> Result<(), Error> {
        if self.depth > 0 {
            self.control(commit_ansi_transaction_sql(self.depth), What::Control).await?;
            self.depth -= 1;
            if self.depth == 0 {
                self.held = None;
            }
        }
        Ok(())
    }

    fn rollback_now(&mut self) -> Result<(), Error> {
        if self.depth > 0 {
            // SQLite may have ended the whole transaction itself (a full disk, an I/O error):
            // nothing to undo here, and an outer level's commit will fail and say so.
            if !self.db.is_autocommit() {
                self.db.execute_batch(rollback_ansi_transaction_sql(self.depth).as_str()).map_err(sql_error)?;
            }
            self.depth -= 1;
            if self.depth == 0 {
                self.held = None;
            }
        }
        Ok(())
    }
}

/// A statement to run: its text, whether to keep it prepared, its arguments (`None`: an
/// unparameterized string that may hold several statements), at most how many rows to return.
#[derive(Clone, Copy)]
struct Request<'a> {
    sql: &'a SqlStr,
    persistent: bool,
    args: Option<&'a [AnyValueKind]>,
    limit: Option<usize>,
    what: What,
}

/// What a statement is to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// The caller's query: in the statement log.
    Query,
    /// `BEGIN`, `SAVEPOINT`, `RELEASE`, `COMMIT`: not logged (as sqlx's driver).
    Control,
}

/// Log settings that log nothing.
fn quiet() -> LogSettings {
    let mut settings = LogSettings::default();
    settings.log_statements(log::LevelFilter::Off);
    settings.log_slow_statements(log::LevelFilter::Off, Duration::MAX);
    settings
}

fn shape_of(stmt: &rusqlite::Statement<'_>) -> Shape {
    let mut names = sqlx_core::HashMap::default();
    let columns = stmt
        .columns()
        .iter()
        .enumerate()
        .map(|(ordinal, c)| {
            let name = UStr::new(c.name());
            names.insert(name.clone(), ordinal);
            AnyColumn { ordinal, name, type_info: AnyTypeInfo { kind: declared_kind(c.decl_type()) } }
        })
        .collect();
    Shape { names: Arc::new(names), columns, readonly: stmt.readonly(), params: params_of(stmt) }
}

/// The arguments `stmt`'s parameters take, as sqlx's SQLite driver reads them: `?NNN` and
/// `$NNN` name their argument, a bare `?` takes the next one.
fn params_of(stmt: &rusqlite::Statement<'_>) -> Vec<Param> {
    (1..=stmt.parameter_count())
        .map(|index| match stmt.parameter_name(index) {
            None => Param::Next,
            Some(name) => name
                .strip_prefix('?')
                .or_else(|| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .map_or_else(|| Param::Invalid(name.to_owned()), Param::Numbered),
        })
        .collect()
}

/// A column's type by SQLite's affinity rules (values are typed by what they hold, see
/// [`value_of`]; this is the column's description only).
fn declared_kind(decl: Option<&str>) -> AnyTypeInfoKind {
    let Some(decl) = decl.map(str::to_ascii_uppercase) else { return AnyTypeInfoKind::Null };
    if decl.contains("INT") {
        AnyTypeInfoKind::BigInt
    } else if decl.contains("CHAR") || decl.contains("CLOB") || decl.contains("TEXT") {
        AnyTypeInfoKind::Text
    } else if decl.is_empty() || decl.contains("BLOB") {
        AnyTypeInfoKind::Blob
    } else {
        AnyTypeInfoKind::Double
    }
}

/// Binds `args` to `stmt` by its parameters' arguments ([`params_of`]).
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Param], args: &[AnyValueKind]) -> rusqlite::Result<()> {
    let mut next = 0;
    for (i, param) in params.iter().enumerate() {
        let n = match param {
            Param::Numbered(n) => *n,
            Param::Next => {
                next += 1;
                next
            }
            Param::Invalid(name) => return Err(rusqlite::Error::InvalidParameterName(name.clone())),
        };
        let value = args.get(n.wrapping_sub(1)).ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        stmt.raw_bind_parameter(i + 1, argument(value)?)?;
    }
    Ok(())
}

fn argument(value: &AnyValueKind) -> rusqlite::Result<ToSqlOutput<'_>> {
    Ok(ToSqlOutput::Borrowed(match value {
        AnyValueKind::Null(_) => ValueRef::Null,
        AnyValueKind::Bool(b) => ValueRef::Integer(i64::from(*b)),
        AnyValueKind::SmallInt(i) => ValueRef::Integer(i64::from(*i)),
        AnyValueKind::Integer(i) => ValueRef::Integer(i64::from(*i)),
        AnyValueKind::BigInt(i) => ValueRef::Integer(*i),
        AnyValueKind::Real(r) => ValueRef::Real(f64::from(*r)),
        AnyValueKind::Double(d) => ValueRef::Real(*d),
        AnyValueKind::Text(t) => ValueRef::Text(t.as_bytes()),
        AnyValueKind::TextSlice(t) => ValueRef::Text(t.as_bytes()),
        AnyValueKind::Blob(b) => ValueRef::Blob(b),
        // `AnyValueKind` is non-exhaustive: a kind added later is refused, not guessed at.
        other => return Err(rusqlite::Error::ToSqlConversionFailure(format!("unsupported value {other:?}").into())),
    }))
}

/// Steps `stmt` to its end (or to `limit` rows), each row into `out`, then its result.
fn step_all(
    db: &rusqlite::Connection,
    stmt: &mut rusqlite::Statement<'_>,
    shape: &Shape,
    limit: Option<usize>,
    out: &mut Vec<Either<AnyQueryResult, AnyRow>>,
    logger: &mut QueryLogger,
) -> rusqlite::Result<()> {
    let readonly = stmt.readonly();
    let width = shape.columns.len();
    let mut rows = stmt.raw_query();
    let mut taken = 0;
    while limit.is_none_or(|l| taken < l) {
        let Some(row) = rows.next()? else { break };
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(AnyValue { kind: value_of(row.get_ref(i)?, i)? });
        }
        out.push(Either::Right(AnyRow {
            column_names: Arc::clone(&shape.names),
            columns: shape.columns.clone(),
            values,
        }));
        logger.increment_rows_returned();
        taken += 1;
    }
    drop(rows);
    let rows_affected = if readonly { 0 } else { db.changes() };
    logger.increase_rows_affected(rows_affected);
    out.push(Either::Left(AnyQueryResult { rows_affected, last_insert_id: None }));
    Ok(())
}

/// A value typed by what it holds, as sqlx's SQLite driver types it for `Any`.
fn value_of(v: ValueRef<'_>, column: usize) -> rusqlite::Result<AnyValueKind> {
    Ok(match v {
        ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
        ValueRef::Integer(i) => AnyValueKind::BigInt(i),
        ValueRef::Real(f) => AnyValueKind::Double(f),
        ValueRef::Text(t) => {
            AnyValueKind::Text(Arc::new(String::from_utf8(t.to_vec()).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
            })?))
        }
        ValueRef::Blob(b) => AnyValueKind::Blob(Arc::new(b.to_vec())),
    })
}

fn is_busy(e: &rusqlite::Error) -> bool {
    // SQLITE_BUSY_SNAPSHOT: a read transaction's snapshot is stale; trying the statement again
    // cannot help, the caller must start the transaction over.
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::DatabaseBusy && f.extended_code != ffi::SQLITE_BUSY_SNAPSHOT)
}

/// rusqlite's error as sqlx's: SQLite's own failures as database errors with the extended code;
/// anything else (a parameter that does not match, text that is not UTF-8) as a driver error,
/// which the store treats as permanent.
fn sql_error(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => Error::Database(Box::new(InlineError {
            code: f.extended_code,
            message: message.unwrap_or_else(|| f.to_string()),
        })),
        rusqlite::Error::FromSqlConversionFailure(..) => Error::Decode(Box::new(e)),
        other => Error::AnyDriverError(Box::new(other)),
    }
}

/// An error SQLite returned: its extended result code and message.
#[derive(Debug)]
pub struct InlineError {
    code: i32,
    message: String,
}

impl fmt::Display for InlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for InlineError {}

impl DatabaseError for InlineError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

impl AnyConnectionBackend for InlineConnection {
    fn name(&self) -> &str {
        Inline::NAME
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, sqlx_core::Result<()>> {
        Box::pin(async move { self.db.close().map_err(|(_, e)| sql_error(e)) })
    }

    fn close_hard(self: Box<Self>) -> BoxFuture<'static, sqlx_core::Result<()>> {
        self.close()
    }

    fn ping(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Box::pin(async move { self.db.execute_batch("").map_err(sql_error) })
    }

    fn begin(&mut self, statement: Option<SqlStr>) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Box::pin(self.begin_with(statement))
    }

    fn commit(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Box::pin(self.commit_tx())
    }

    fn rollback(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Box::pin(async move { self.rollback_now() })
    }

    fn start_rollback(&mut self) {
        // A transaction dropped unfinished: undone at once, on this thread.
        if let Err(e) = self.rollback_now() {
            tracing::warn!(error = %e, "rolling back a dropped SQLite transaction failed");
        }
    }

    fn get_transaction_depth(&self) -> usize {
        self.depth
    }

    fn cached_statements_size(&self) -> usize {
        self.shapes.len()
    }

    fn clear_cached_statements(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        self.db.flush_prepared_statement_cache();
        self.shapes.clear();
        Box::pin(async { Ok(()) })
    }

    fn shrink_buffers(&mut self) {}

    fn flush(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn should_flush(&self) -> bool {
        false
    }

    fn fetch_many(
        &mut self,
        query: SqlStr,
        persistent: bool,
        arguments: Option<AnyArguments>,
    ) -> BoxStream<'_, sqlx_core::Result<Either<AnyQueryResult, AnyRow>>> {
        Box::pin(
            futures::stream::once(async move {
                let args = arguments.map(|a| a.values.0);
                self.run(Request { sql: &query, persistent, args: args.as_deref(), limit: None, what: What::Query })
                    .await
            })
            .flat_map(|r: Result<Vec<_>, Error>| match r {
                Ok(items) => futures::stream::iter(items.into_iter().map(Ok)).left_stream(),
                Err(e) => futures::stream::iter(std::iter::once(Err(e))).right_stream(),
            }),
        )
    }

    fn fetch_optional(
        &mut self,
        query: SqlStr,
        persistent: bool,
        arguments: Option<AnyArguments>,
    ) -> BoxFuture<'_, sqlx_core::Result<Option<AnyRow>>> {
        Box::pin(async move {
            let args = arguments.map(|a| a.values.0);
            let req = Request { sql: &query, persistent, args: args.as_deref(), limit: Some(1), what: What::Query };
            let out = self.run(req).await?;
            Ok(out.into_iter().find_map(|item| item.right()))
        })
    }

    fn prepare_with<'c, 'q: 'c>(
        &'c mut self,
        sql: SqlStr,
        _parameters: &[AnyTypeInfo],
    ) -> BoxFuture<'c, sqlx_core::Result<AnyStatement>> {
        Box::pin(async move {
            let stmt = self.db.prepare_cached(sql.as_str()).map_err(sql_error)?;
            let shape = shape_of(&stmt);
            let parameters = Some(Either::Right(stmt.parameter_count()));
            drop(stmt);
            Ok(AnyStatement { sql, parameters, column_names: shape.names, columns: shape.columns })
        })
    }

    /// Describing a query is what sqlx's compile-time checked macros (`query!`) ask a live
    /// database for; Loket's queries are checked by its tests instead, so this driver says so.
    fn describe(
        &mut self,
        _sql: SqlStr,
    ) -> BoxFuture<'_, sqlx_core::Result<sqlx_core::describe::Describe<sqlx_core::any::Any>>> {
        Box::pin(async {
            Err(Error::AnyDriverError("describing a query is not supported by Loket's SQLite driver".into()))
        })
    }
}

impl Connection for InlineConnection {
    type Database = Inline;
    type Options = InlineOptions;

    async fn close(self) -> Result<(), Error> {
        AnyConnectionBackend::close(Box::new(self)).await
    }

    async fn close_hard(self) -> Result<(), Error> {
        AnyConnectionBackend::close(Box::new(self)).await
    }

    async fn ping(&mut self) -> Result<(), Error> {
        AnyConnectionBackend::ping(self).await
    }

    fn begin(&mut self) -> impl Future<Output = Result<Transaction<'_, Inline>, Error>> + Send + '_ {
        Transaction::begin(self, None)
    }

    fn shrink_buffers(&mut self) {}

    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    fn should_flush(&self) -> bool {
        false
    }
}

/// sqlx's transaction manager for this driver: the connection counts its own depth.
pub struct InlineTransactions;

impl TransactionManager for InlineTransactions {
    type Database = Inline;

    async fn begin(conn: &mut InlineConnection, statement: Option<SqlStr>) -> Result<(), Error> {
        conn.begin_with(statement).await
    }

    async fn commit(conn: &mut InlineConnection) -> Result<(), Error> {
        conn.commit_tx().await
    }

    async fn rollback(conn: &mut InlineConnection) -> Result<(), Error> {
        conn.rollback_now()
    }

    fn start_rollback(conn: &mut InlineConnection) {
        AnyConnectionBackend::start_rollback(conn)
    }

    fn get_transaction_depth(conn: &InlineConnection) -> usize {
        conn.depth
    }
}

/// A query's result as this driver's own type (unused: `Any` has its own).
#[derive(Debug, Default)]
pub struct InlineQueryResult {
    pub rows_affected: u64,
}

impl Extend<InlineQueryResult> for InlineQueryResult {
    fn extend<T: IntoIterator<Item = InlineQueryResult>>(&mut self, iter: T) {
        self.rows_affected += iter.into_iter().map(|r| r.rows_affected).sum::<u64>();
    }
}

/// Arguments in this driver's own type: `Any` passes its own ([`AnyArguments`]) to the
/// connection, so nothing encodes into these but their count.
#[derive(Debug, Default)]
pub struct InlineArguments(usize);

impl sqlx_core::arguments::Arguments for InlineArguments {
    type Database = Inline;

    fn reserve(&mut self, _additional: usize, _size: usize) {}

    fn add<'t, T>(&mut self, value: T) -> Result<(), sqlx_core::error::BoxDynError>
    where
        T: sqlx_core::encode::Encode<'t, Inline> + sqlx_core::types::Type<Inline>,
    {
        let _null = value.encode_by_ref(&mut ())?;
        self.0 += 1;
        Ok(())
    }

    fn len(&self) -> usize {
        self.0
    }
}

sqlx_core::impl_into_arguments_for_arguments!(InlineArguments);

/// The associated types `Any` never builds (rows, columns, values, statements and type
/// descriptions of this driver's own): uninhabited, so no method of theirs can run.
#[derive(Debug, Clone, PartialEq)]
pub enum Never {}

/// [`Never`] with a lifetime, for `Database::ValueRef`.
#[derive(Debug, Clone)]
pub enum NeverRef<'r> {
    _Never(std::convert::Infallible, std::marker::PhantomData<&'r ()>),
}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl sqlx_core::type_info::TypeInfo for Never {
    fn is_null(&self) -> bool {
        match *self {}
    }
    fn name(&self) -> &str {
        match *self {}
    }
}

impl sqlx_core::column::Column for Never {
    type Database = Inline;
    fn ordinal(&self) -> usize {
        match *self {}
    }
    fn name(&self) -> &str {
        match *self {}
    }
    fn type_info(&self) -> &Never {
        self
    }
}

impl sqlx_core::value::Value for Never {
    type Database = Inline;
    fn as_ref(&self) -> NeverRef<'_> {
        match *self {}
    }
    fn type_info(&self) -> std::borrow::Cow<'_, Never> {
        match *self {}
    }
    fn is_null(&self) -> bool {
        match *self {}
    }
}

impl<'r> sqlx_core::value::ValueRef<'r> for NeverRef<'r> {
    type Database = Inline;
    fn to_owned(&self) -> Never {
        match self {
            NeverRef::_Never(never, _) => match *never {},
        }
    }
    fn type_info(&self) -> std::borrow::Cow<'_, Never> {
        match self {
            NeverRef::_Never(never, _) => match *never {},
        }
    }
    fn is_null(&self) -> bool {
        match self {
            NeverRef::_Never(never, _) => match *never {},
        }
    }
}

impl sqlx_core::row::Row for Never {
    type Database = Inline;
    fn columns(&self) -> &[Never] {
        match *self {}
    }
    fn try_get_raw<I>(&self, _index: I) -> Result<NeverRef<'_>, Error>
    where
        I: sqlx_core::column::ColumnIndex<Self>,
    {
        match *self {}
    }
}

impl sqlx_core::column::ColumnIndex<Never> for usize {
    fn index(&self, row: &Never) -> Result<usize, Error> {
        match *row {}
    }
}

impl sqlx_core::statement::Statement for Never {
    type Database = Inline;
    fn into_sql(self) -> SqlStr {
        match self {}
    }
    fn sql(&self) -> &SqlStr {
        match *self {}
    }
    fn parameters(&self) -> Option<Either<&[Never], usize>> {
        match *self {}
    }
    fn columns(&self) -> &[Never] {
        match *self {}
    }
    sqlx_core::impl_statement_query!(InlineArguments);
}

#[cfg(test)]
// The driver's own transactions, below the store (which commits through `Store::commit`).
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::time::Duration;

    use sqlx::{AnyConnection, Connection, Row};

    async fn connect(dir: &tempfile::TempDir) -> AnyConnection {
        super::super::install_drivers();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut conn = AnyConnection::connect(&url).await.unwrap();
        assert_eq!(conn.backend_name(), "SQLite");
        sqlx::raw_sql("PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, n INTEGER, b BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    }

    #[tokio::test]
    async fn parameters_bind_by_their_number_and_values_come_back_typed() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir).await;
        // `$2` before `$1`: each names its argument, whatever order SQLite numbers them in.
        sqlx::query("INSERT INTO t (n, k, b) VALUES ($2, $1, $3)")
            .bind("key")
            .bind(7_i64)
            .bind(vec![0_u8, 255])
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (k, n) VALUES (?, ?)")
            .bind("other")
            .bind(None::<i64>)
            .execute(&mut conn)
            .await
            .unwrap();
        let rows = sqlx::query("SELECT k, n, b, 1.5 AS r FROM t ORDER BY id").fetch_all(&mut conn).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<String, _>("k"), "key");
        assert_eq!(rows[0].get::<i64, _>("n"), 7);
        assert_eq!(rows[0].get::<Vec<u8>, _>("b"), vec![0, 255]);
        assert_eq!(rows[0].get::<f64, _>("r"), 1.5);
        assert_eq!(rows[1].get::<Option<i64>, _>("n"), None);
        // The error a one-argument query of `sql` fails with.
        let refused = async |conn: &mut _, sql: &'static str| {
            sqlx::query(sql).bind("key").fetch_all(conn).await.map(|r| r.len()).unwrap_err()
        };
        let err = refused(&mut conn, "SELECT k FROM t WHERE k = $1 AND n = $2").await;
        assert!(err.to_string().contains("parameter"), "{err}");
        // The same statement again (its parameters read from the cache) with other arguments.
        for (n, k) in [(7_i64, "key"), (8, "none")] {
            let rows = sqlx::query("SELECT k FROM t WHERE n = $2 OR k = $1").bind("other").bind(n).fetch_all(&mut conn);
            let ks: Vec<String> = rows.await.unwrap().iter().map(|r| r.get("k")).collect();
            assert_eq!(ks, if k == "key" { vec!["key", "other"] } else { vec!["other"] }, "n = {n}");
        }
        // A name sqlx's driver does not take is refused, every time.
        for _ in 0..2 {
            let err = refused(&mut conn, "SELECT k FROM t WHERE k = :k").await;
            assert!(err.to_string().contains(":k"), "{err}");
        }
    }

    #[tokio::test]
    async fn several_statements_run_in_turn_and_errors_keep_sqlite_codes() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir).await;
        sqlx::raw_sql("BEGIN; INSERT INTO t (k) VALUES ('a'); SAVEPOINT s; INSERT INTO t (k) VALUES ('b'); ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s; COMMIT")
            .execute(&mut conn)
            .await
            .unwrap();
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t").fetch_all(&mut conn).await.unwrap();
        assert_eq!(keys, ["a"]);
        let err = sqlx::query("INSERT INTO t (k) VALUES ($1)").bind("a").execute(&mut conn).await.unwrap_err();
        let crate::store::StoreError::Sql(sqlx::Error::Database(db)) = crate::store::StoreError::from(err) else {
            panic!("not a database error")
        };
        assert!(db.is_unique_violation());
        assert_eq!(db.code().as_deref(), Some("2067"));
    }

    #[tokio::test]
    async fn a_dropped_transaction_is_undone_and_savepoints_nest() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir).await;
        {
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("INSERT INTO t (k) VALUES ('kept')").execute(&mut *tx).await.unwrap();
            {
                let mut inner = tx.begin().await.unwrap();
                sqlx::query("INSERT INTO t (k) VALUES ('undone')").execute(&mut *inner).await.unwrap();
                inner.rollback().await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("INSERT INTO t (k) VALUES ('dropped')").execute(&mut *tx).await.unwrap();
        }
        assert!(!conn.is_in_transaction());
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t").fetch_all(&mut conn).await.unwrap();
        assert_eq!(keys, ["kept"]);
    }

    /// On a single-threaded runtime a writer that waits for the lock must not hold the thread:
    /// the lock's holder is another task on the same thread and has to run to let go of it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_waiting_for_the_lock_lets_its_holder_finish_on_the_same_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = connect(&dir).await;
        let mut waiter = connect(&dir).await;
        sqlx::query("PRAGMA busy_timeout = 20000").execute(&mut waiter).await.unwrap();
        let mut tx = holder.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t (k) VALUES ('first')").execute(&mut *tx).await.unwrap();
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
        let holding = async move {
            locked_rx.await.unwrap();
            tokio::task::yield_now().await;
            tx.commit().await.unwrap();
        };
        let waiting = async move {
            locked_tx.send(()).unwrap();
            let mut tx = waiter.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("INSERT INTO t (k) VALUES ('second')").execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            waiter
        };
        let (_, mut waiter) =
            tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(holding, waiting) }).await.unwrap();
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t ORDER BY id").fetch_all(&mut waiter).await.unwrap();
        assert_eq!(keys, ["first", "second"]);
    }

    /// The holder is this process's other connection (the writer gate) or another driver's, as
    /// another process would be (SQLite's lock, waited for in pauses): either way the waiter gives
    /// up after its busy timeout with a temporary error, and goes on once the lock is free.
    #[tokio::test]
    async fn a_writer_gives_up_after_its_busy_timeout_with_a_temporary_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = connect(&dir).await;
        sqlx::query("PRAGMA busy_timeout = 150").execute(&mut waiter).await.unwrap();
        let mut same_process = connect(&dir).await;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let mut other_driver = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for holder in [&mut same_process as &mut dyn Holder, &mut other_driver] {
            holder.lock().await;
            let started = std::time::Instant::now();
            let err = waiter.begin_with("BEGIN IMMEDIATE").await.map(drop).unwrap_err();
            assert!(started.elapsed() >= Duration::from_millis(150), "gave up after {:?}", started.elapsed());
            let err = crate::store::StoreError::from(err);
            assert!(err.is_temporary(), "{err}");
            assert!(!waiter.is_in_transaction());
            holder.unlock().await;
            let tx = waiter.begin_with("BEGIN IMMEDIATE").await.unwrap();
            tx.rollback().await.unwrap();
        }
    }

    /// A connection that takes the write lock and lets it go, whatever its driver.
    trait Holder {
        fn lock(&mut self) -> futures::future::BoxFuture<'_, ()>;
        fn unlock(&mut self) -> futures::future::BoxFuture<'_, ()>;
    }

    /// Through the transaction manager, as `Store::begin` does: this process's writer gate.
    impl Holder for AnyConnection {
        fn lock(&mut self) -> futures::future::BoxFuture<'_, ()> {
            use sqlx_core::transaction::TransactionManager;
            Box::pin(async move {
                let begin = sqlx_core::sql_str::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE");
                sqlx::any::AnyTransactionManager::begin(self, Some(begin)).await.unwrap()
            })
        }
        fn unlock(&mut self) -> futures::future::BoxFuture<'_, ()> {
            use sqlx_core::transaction::TransactionManager;
            Box::pin(async move { sqlx::any::AnyTransactionManager::rollback(self).await.unwrap() })
        }
    }

    impl Holder for sqlx::SqliteConnection {
        fn lock(&mut self) -> futures::future::BoxFuture<'_, ()> {
            Box::pin(async move { sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *self).await.map(drop).unwrap() })
        }
        fn unlock(&mut self) -> futures::future::BoxFuture<'_, ()> {
            Box::pin(async move { sqlx::raw_sql("ROLLBACK").execute(&mut *self).await.map(drop).unwrap() })
        }
    }

    #[test]
    fn urls_name_the_file_its_mode_and_escape_what_sqlite_would_read_as_parameters() {
        // An unescaped `?` ends the path, as in sqlx's driver; the rest is not a parameter.
        assert!(super::InlineOptions::parse("sqlite:///var/lib/loket/a?b.db?mode=ro").is_err());
        let o = super::InlineOptions::parse("sqlite:///var/lib/loket/a%3Fb%23.db?mode=ro&immutable=true").unwrap();
        assert_eq!(o.uri, "file:/var/lib/loket/a%3Fb%23.db?mode=ro&immutable=1");
        let o = super::InlineOptions::parse("sqlite://var/loket.db").unwrap();
        assert_eq!(o.uri, "file:var/loket.db?mode=rw");
        assert!(super::InlineOptions::parse("sqlite::memory:").unwrap().uri.contains("mode=memory"));
        assert!(super::InlineOptions::parse("sqlite://x.db?cache=private").is_err());
    }
}
