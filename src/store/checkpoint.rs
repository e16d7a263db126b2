//! SQLite's checkpoints off the writer's path. In WAL mode a commit that finds the log past
//! `wal_autocheckpoint` pages copies the log into the database file, and flushes both, before it
//! returns: the intake's writer did that every two or three batches, waiting for the disk while
//! the mails behind it waited for the writer. Here a thread of the store's own, on a connection of
//! its own, runs a `PASSIVE` checkpoint (which waits for no reader and no writer) after every
//! [`EVERY_MESSAGES`] committed messages, while the writer goes on; the writers' own automatic
//! checkpoint stays, at [`BACKSTOP_PAGES`], for a log this thread could not keep short.
//!
//! Durability is SQLite's either way: a commit is durable when its frames are in the log (with
//! `synchronous = full`, flushed at the commit), whether or not a checkpoint has copied them yet.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

/// Committed messages between two checkpoints: about two of the intake's batches, some 800
/// pages of log (a little less than SQLite's default automatic checkpoint, 1,000 pages).
pub const EVERY_MESSAGES: u64 = 128;

/// The writers' own automatic checkpoint (`PRAGMA wal_autocheckpoint`) on a store with this
/// thread: pages of log, 16 MiB at SQLite's page size.
pub const BACKSTOP_PAGES: u32 = 4_000;

/// The store's checkpointing thread; it ends, closing its connection, when the last clone of the
/// store is dropped.
#[derive(Debug)]
pub struct Checkpointer {
    /// Holds at most one request: a request made while one waits is the same checkpoint.
    wake: mpsc::SyncSender<()>,
    /// Messages committed since the last request.
    committed: AtomicU64,
    /// Checkpoints run, successful or not (for tests and the log).
    runs: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread for the database file at `path`.
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let (wake, rx) = mpsc::sync_channel(1);
        let runs = Arc::new(AtomicU64::new(0));
        let (path, counted) = (path.to_path_buf(), Arc::clone(&runs));
        std::thread::Builder::new().name("loket-checkpoint".into()).spawn(move || run(&path, &rx, &counted))?;
        Ok(Self { wake, committed: AtomicU64::new(0), runs })
    }

    /// `n` more messages committed: a checkpoint is requested every [`EVERY_MESSAGES`].
    pub fn committed(&self, n: usize) {
        let before = self.committed.fetch_add(n as u64, Ordering::Relaxed);
        if before + n as u64 >= EVERY_MESSAGES {
            self.committed.store(0, Ordering::Relaxed);
            // Full: a checkpoint is already requested, and it will find these pages too.
            let _ = self.wake.try_send(());
        }
    }

    /// How many checkpoints the thread has run.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

fn run(path: &Path, requests: &mpsc::Receiver<()>, runs: &AtomicU64) {
    let mut db: Option<rusqlite::Connection> = None;
    while requests.recv().is_ok() {
        let result = match &db {
            Some(conn) => checkpoint(conn),
            None => rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                .and_then(|conn| checkpoint(&conn).map(|()| db = Some(conn))),
        };
        runs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            // The writers' own checkpoint ([`BACKSTOP_PAGES`]) keeps the log bounded meanwhile.
            tracing::warn!(path = %path.display(), error = %e, "checkpoint failed; the next request tries again");
            db = None;
        }
    }
}

/// A `PASSIVE` checkpoint: as much of the log as no reader still needs, without waiting.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
