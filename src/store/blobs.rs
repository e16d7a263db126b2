//! Raw mail and files on disk, not in the row: a content-addressed blob store. A blob is named by
//! the SHA-256 of its bytes ([`BlobId`]); the database keeps only that name (`messages.raw_blob`,
//! `attachments.content_blob`, `quarantine.raw_blob`). [`BlobStore`] is the interface (put, sync,
//! get, delete, list), ready for an object store shared by several machines; [`LocalDir`] keeps
//! blobs in a directory (`ab/<sha256>`, each written to a temporary file, flushed, renamed, the
//! names flushed; files 0600, directories 0700; blobs written by earlier versions under
//! `ab/cd/<sha256>` are still read, renewed, listed and deleted where they are).
//!
//! The order that keeps a row from ever naming a missing file: a blob is written (and synced)
//! *before* the transaction that references it commits. `put` only stages the bytes (a
//! transaction reads its own staged blobs, until they have their names on disk) and
//! [`Files::put`] starts a sync behind the transaction; [`Files::sync`], which
//! [`super::Store::commit`] runs right before every commit, writes everything still staged at
//! once — the temporary files, their bytes flushed, the renames, the names flushed — and a
//! commit waits for a sync already under way, which may hold its blobs. Flushing is each file and then each directory, in parallel (the
//! file system joins their journal commits), or, with `storage.files_flush = "file_system"`, two
//! `syncfs` calls for all of them: fewer journal commits, but `syncfs` also flushes whatever else
//! is waiting on that file system, so it suits a files directory on a file system of its own. A crash in between leaves an orphan file, which is
//! harmless: [`sweep`] deletes blobs that no row references and that were last
//! written longer ago than a grace period (a blob just written for a transaction not yet
//! committed is young, so it is kept). Writing a blob that already exists renews its time, so a
//! second transaction that needs an old, unreferenced blob makes it young again; the sweep looks
//! at the time once more right before it deletes. Erasure (`loket forget`, retention) deletes the
//! blobs it stopped referencing at once ([`release`]), whatever their age, unless they were
//! written again since the erasure began.
//!
//! What is left open, and why it is negligible: the check of a file's time and its unlink are two
//! steps, so a transaction that writes the very same bytes between them (an old orphan's, or an
//! erased person's) and commits would name a file that is gone; and an erasure deletes a file that
//! a concurrent transaction wrote with the same bytes *before* the erasure began but commits after
//! it. Both need byte-identical raw mail or files in flight at that moment — for mail, the same
//! message, which the idempotency key makes a duplicate — and end in a row whose bytes read as
//! purged (`Files::read` warns), never in a failure to process.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, Row};

use super::StoreError;
use super::queries::placeholders;

type Result<T> = std::result::Result<T, StoreError>;

/// The name of a blob: the lowercase hex SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    /// The name `bytes` are stored under.
    pub fn of(bytes: &[u8]) -> Self {
        Self(crate::mail::parse::sha256_hex(bytes))
    }

    /// A stored name read back (from a row or a file name): 64 lowercase hex digits, else None.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where blobs live. Implementations are blocking (the [`Files`] handle runs them off the async
/// runtime); times are UTC milliseconds of the wall clock.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stages `bytes` and returns their name; they are durable once [`BlobStore::sync`] returned.
    /// Storing bytes that are already there renews their time (see [`BlobStore::list`]).
    fn put(&self, bytes: &[u8]) -> io::Result<BlobId>;
    /// Makes every blob staged so far durable; returns how many were written. A call waits for a
    /// sync under way in another thread (it may hold blobs the caller staged). What could not be
    /// written stays staged, and the error is returned (so the caller's commit does not happen).
    fn sync(&self) -> io::Result<usize>;
    /// The bytes of `id` (staged or stored), checked against their name; None when there is no
    /// such blob.
    fn get(&self, id: &BlobId) -> io::Result<Option<Vec<u8>>>;
    /// Deletes `id` if it was last written before `written_before` (ms); true when it is gone.
    fn delete(&self, id: &BlobId, written_before: i64) -> io::Result<bool>;
    /// Every blob with the time it was last written (ms). Leftovers of interrupted writes older
    /// than `partial_before` are removed on the way.
    fn list(&self, partial_before: i64) -> io::Result<Vec<(BlobId, i64)>>;
}

/// Blobs in a local directory: `DIR/ab/<sha256>` — 256 directories, made once, so a new blob is
/// one new file and not also a new directory (a second level, `ab/cd/`, as earlier versions
/// wrote it, cost an inode and a directory flush per blob; such blobs stay where they are).
#[derive(Debug)]
pub struct LocalDir {
    root: PathBuf,
    /// Blobs put and not yet written, by name. A sync leaves them here until they have their
    /// names on disk, so that a transaction reads its blobs while another thread writes them.
    staged: Mutex<HashMap<BlobId, Arc<[u8]>>>,
    /// Held for a whole sync, so that a commit waits for a sync that took its blobs.
    syncing: Mutex<()>,
    /// Flush with `syncfs` (Linux), else each file and directory.
    whole_fs: bool,
}

/// At most this many files are written and flushed at once by a sync.
const SYNC_THREADS: usize = 16;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f` on every item, on up to [`SYNC_THREADS`] threads, the caller's among them (inline
/// for one item: no thread is started); the first error, if any, after all have run.
fn in_parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> io::Result<()> + Sync) -> io::Result<()> {
    if let [one] = items {
        return f(one);
    }
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let work = || {
        while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Err(e) = f(item) {
                lock(&first_error).get_or_insert(e);
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..items.len().min(SYNC_THREADS) {
            s.spawn(work);
        }
        work();
    });
    match first_error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

const TMP_PREFIX: &str = ".tmp-";

fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl LocalDir {
    /// A directory whose syncs flush each file and then each directory (in parallel).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), staged: Mutex::default(), syncing: Mutex::default(), whole_fs: false }
    }

    /// A directory whose syncs flush the whole file system with `syncfs` (Linux; elsewhere, or
    /// where the file system refuses it, file by file).
    pub fn flushing_the_file_system(root: impl Into<PathBuf>) -> Self {
        Self { whole_fs: true, ..Self::new(root) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        let s = id.as_str();
        self.root.join(&s[..2]).join(s)
    }

    /// Every place `id` may be, newest layout first: `DIR/ab/<sha256>`, then where earlier
    /// versions wrote it, `DIR/ab/cd/<sha256>`.
    fn places(&self, id: &BlobId) -> [PathBuf; 2] {
        let s = id.as_str();
        [self.path(id), self.root.join(&s[..2]).join(&s[2..4]).join(s)]
    }

    /// Renews the time of an existing blob; false when there is none.
    fn touch(path: &Path) -> io::Result<bool> {
        match std::fs::File::options().write(true).open(path) {
            Ok(f) => {
                f.set_modified(SystemTime::now())?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes `dir` and its missing parents up to the root (0700), adding the parent of each new
    /// one to `to_sync`: syncing it makes the new entry survive a power loss.
    fn make_dirs(&self, dir: &Path, to_sync: &mut Vec<PathBuf>) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut d = dir;
        while !d.is_dir() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) if !p.as_os_str().is_empty() => d = p,
                _ => break,
            }
        }
        for m in missing.iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(m) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            if let Some(parent) = m.parent().filter(|p| !p.as_os_str().is_empty()) {
                to_sync.push(parent.to_path_buf());
            }
        }
        Ok(())
    }
}

impl LocalDir {
    /// Writes one blob to a new temporary file beside its name (its bytes flushed through the
    /// same handle when `flush`) and returns the file's path.
    fn write_tmp(&self, id: &BlobId, bytes: &[u8], flush: bool) -> io::Result<PathBuf> {
        let dir = self.dir_of(id);
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
        let tmp = dir.join(format!("{TMP_PREFIX}{}", hex::encode(random)));
        let written = std::fs::File::options().write(true).create_new(true).mode(0o600).open(&tmp).and_then(|mut f| {
            f.write_all(bytes)?;
            if flush { f.sync_all() } else { Ok(()) }
        });
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Writes the staged blobs durably: every file's bytes on disk before any gets its name, and
    /// the names (and new directories) on disk before this returns. With `whole_fs` (Linux) two
    /// `syncfs` calls do it for all of them at once, one after the temporary files are written
    /// and one after they are renamed; otherwise, or when the file system refuses `syncfs`, each
    /// file and then each directory is flushed, in parallel.
    fn write_all(&self, staged: &[(BlobId, Arc<[u8]>)], dirs: &[PathBuf]) -> io::Result<()> {
        let mut to_sync = dirs.to_vec();
        for d in dirs {
            self.make_dirs(d, &mut to_sync)?;
        }
        // Each file flushed by the thread that wrote it, unless one `syncfs` flushes them all.
        let each_file = !self.whole_fs;
        let tmps = Mutex::new(Vec::with_capacity(staged.len()));
        let written = in_parallel(staged, |(id, bytes)| {
            let tmp = self.write_tmp(id, bytes, each_file)?;
            lock(&tmps).push((tmp, self.path(id)));
            Ok(())
        });
        let tmps = tmps.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let renamed = written
            .and_then(|()| match each_file || self.syncfs()? {
                true => Ok(()),
                false => in_parallel(&tmps, |(tmp, _)| std::fs::File::open(tmp)?.sync_all()),
            })
            .and_then(|()| tmps.iter().try_for_each(|(tmp, path)| std::fs::rename(tmp, path)));
        if renamed.is_err() {
            for (tmp, _) in &tmps {
                let _ = std::fs::remove_file(tmp);
            }
        }
        renamed?;
        if self.syncfs()? {
            return Ok(());
        }
        to_sync.sort();
        to_sync.dedup();
        in_parallel(&to_sync, |d| sync_dir(d))
    }

    /// Flushes the whole file system that holds the root (`syncfs`); false where that is not
    /// available, and the caller flushes file by file.
    fn syncfs(&self) -> io::Result<bool> {
        if !self.whole_fs {
            return Ok(false);
        }
        #[cfg(target_os = "linux")]
        {
            let root = std::fs::File::open(&self.root)?;
            match rustix::fs::syncfs(&root) {
                Ok(()) => Ok(true),
                Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        #[cfg(not(target_os = "linux"))]
        Ok(false)
    }

    fn dir_of(&self, id: &BlobId) -> PathBuf {
        self.path(id).parent().unwrap_or(&self.root).to_path_buf()
    }
}

impl BlobStore for LocalDir {
    fn put(&self, bytes: &[u8]) -> io::Result<BlobId> {
        let id = BlobId::of(bytes);
        if lock(&self.staged).contains_key(&id) {
            return Ok(id);
        }
        for place in self.places(&id) {
            if Self::touch(&place)? {
                return Ok(id);
            }
        }
        lock(&self.staged).entry(id.clone()).or_insert_with(|| bytes.into());
        Ok(id)
    }

    fn sync(&self) -> io::Result<usize> {
        let _one_at_a_time = lock(&self.syncing);
        // What is staged now; it stays staged (readable, and not staged twice) until written.
        let staged: Vec<(BlobId, Arc<[u8]>)> =
            lock(&self.staged).iter().map(|(id, b)| (id.clone(), b.clone())).collect();
        if staged.is_empty() {
            return Ok(0);
        }
        let mut dirs: Vec<PathBuf> = staged.iter().map(|(id, _)| self.dir_of(id)).collect();
        dirs.sort();
        dirs.dedup();
        // On an error all of them stay staged for the next sync: rewriting one that did get
        // written is harmless.
        self.write_all(&staged, &dirs)?;
        let mut left = lock(&self.staged);
        for (id, _) in &staged {
            left.remove(id);
        }
        Ok(staged.len())
    }

    fn get(&self, id: &BlobId) -> io::Result<Option<Vec<u8>>> {
        if let Some(bytes) = lock(&self.staged).get(id) {
            return Ok(Some(bytes.to_vec()));
        }
        for path in self.places(id) {
            match std::fs::read(path) {
                Ok(bytes) if BlobId::of(&bytes) == *id => return Ok(Some(bytes)),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("blob {id}: its bytes do not match its name"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn delete(&self, id: &BlobId, written_before: i64) -> io::Result<bool> {
        // Both places are checked first: a blob renewed in either is kept in both.
        let mut found = Vec::with_capacity(1);
        for path in self.places(id) {
            match std::fs::metadata(&path) {
                Ok(meta) if mtime_ms(&meta) >= written_before => return Ok(false),
                Ok(_) => found.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for path in found {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
        }
        Ok(true)
    }

    fn list(&self, partial_before: i64) -> io::Result<Vec<(BlobId, i64)>> {
        let mut out = Vec::new();
        let entries = |d: &Path| -> io::Result<Vec<std::fs::DirEntry>> {
            match std::fs::read_dir(d) {
                Ok(it) => it.collect(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let mut file = |f: std::fs::DirEntry| -> io::Result<()> {
            let name = f.file_name();
            let name = name.to_string_lossy();
            let meta = match f.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            if let Some(id) = BlobId::parse(&name) {
                out.push((id, mtime_ms(&meta)));
            } else if name.starts_with(TMP_PREFIX) && mtime_ms(&meta) < partial_before {
                let _ = std::fs::remove_file(f.path());
            }
            Ok(())
        };
        for a in entries(&self.root)? {
            if !a.file_type()?.is_dir() {
                continue;
            }
            for b in entries(&a.path())? {
                if !b.file_type()?.is_dir() {
                    file(b)?;
                    continue;
                }
                // An earlier version's second level, `ab/cd/`.
                for f in entries(&b.path())? {
                    if !f.file_type()?.is_dir() {
                        file(f)?;
                    }
                }
            }
        }
        // A blob in both places is one blob, at its newest time. (This version never writes a
        // second copy; an earlier build run again after it may.)
        out.sort();
        out.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = earlier.1.max(later.1);
            }
            same
        });
        Ok(out)
    }
}

/// Blobs up to this size are staged on the caller's thread, larger ones on tokio's blocking pool.
const INLINE_PUT_BYTES: usize = 64 * 1024;

/// The store's blobs, cheap to clone; each call runs the blocking implementation on tokio's
/// blocking pool, except `put` of a small blob ([`INLINE_PUT_BYTES`]).
///
/// Blobs are written behind the transaction that puts them: a `put` starts a sync on the
/// blocking pool unless one is under way (it goes on while blobs are staged), so the files'
/// flushes run while the transaction does its other work, and the sync before the commit mostly
/// waits for one already done. The order stays the same: every blob durable before its row
/// commits. Not with `storage.files_flush = "file_system"`, whose point is few `syncfs` calls: one
/// pair per commit.
#[derive(Debug, Clone)]
pub struct Files {
    store: Arc<dyn BlobStore>,
    /// Set while a sync behind the transactions is under way; None: `put` starts none.
    behind: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Held across a sync and its count of written blobs, so that a sync before a commit that
    /// finds its blobs already written also waits until they are counted (the failpoint below
    /// fires there, before the commit, not beside it).
    step: Arc<std::sync::Mutex<()>>,
}

fn io_err(what: &str, e: io::Error) -> StoreError {
    StoreError::Files(format!("{what}: {e}"))
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Files(format!("file task failed: {e}"))
}

/// A failpoint for tests, unset in production: `LOKET_TEST_ABORT_AFTER_BLOB_WRITE=N` makes the
/// process abort after the sync that wrote its Nth blob, before the transaction that references
/// the blobs commits (the crash the invariant "file before row" is about). Read once.
const FAILPOINT_ENV: &str = "LOKET_TEST_ABORT_AFTER_BLOB_WRITE";

fn abort_after_blob_writes(written: usize) -> bool {
    use std::sync::atomic::AtomicU64;
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let Some(at) = *AT.get_or_init(|| std::env::var(FAILPOINT_ENV).ok().and_then(|v| v.parse().ok())) else {
        return false;
    };
    let before = WRITES.fetch_add(written as u64, Ordering::SeqCst);
    before < at && before + written as u64 >= at
}

impl Files {
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        Self { store, behind: Some(Arc::default()), step: Arc::default() }
    }

    /// A local directory; `whole_fs`: flushed with `syncfs` (`storage.files_flush`), once before
    /// each commit and not behind the transaction.
    pub fn local(root: impl Into<PathBuf>, whole_fs: bool) -> Self {
        if whole_fs {
            Self { store: Arc::new(LocalDir::flushing_the_file_system(root)), behind: None, step: Arc::default() }
        } else {
            Self::new(Arc::new(LocalDir::new(root)))
        }
    }

    /// Stages `bytes` and returns their name; [`Files::sync`] (run by [`super::Store::commit`])
    /// makes them durable before the caller's transaction commits.
    pub async fn put(&self, bytes: &[u8]) -> Result<BlobId> {
        let id = if bytes.len() <= INLINE_PUT_BYTES {
            // Hashing a mail of a few kilobytes and one `open` take microseconds: cheaper than
            // the two thread switches of the blocking pool, three times per new ticket.
            self.store.put(bytes).map_err(|e| io_err("cannot write a file to the files directory", e))?
        } else {
            let (store, bytes) = (self.store.clone(), bytes.to_vec());
            tokio::task::spawn_blocking(move || store.put(&bytes))
                .await
                .map_err(join_err)?
                .map_err(|e| io_err("cannot write a file to the files directory", e))?
        };
        self.write_behind();
        Ok(id)
    }

    /// Starts a sync on the blocking pool unless one is under way; it syncs again while a round
    /// wrote something. Its errors leave the blobs staged: the sync before the commit meets
    /// them again and fails the commit.
    fn write_behind(&self) {
        let Some(behind) = self.behind.clone() else { return };
        if behind.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            while let Ok(written) = this.sync_step()
                && written > 0
            {}
            behind.store(false, Ordering::Release);
        });
    }

    /// One sync of the staged blobs and its count (the failpoint), as one step.
    fn sync_step(&self) -> io::Result<usize> {
        let _step = self.step.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let written = self.store.sync()?;
        // The failpoint after `written` blobs were made durable (see [`FAILPOINT_ENV`]).
        if written > 0 && abort_after_blob_writes(written) {
            tracing::error!(written, "{} is set: aborting after the blob writes, before the commit", FAILPOINT_ENV);
            std::process::abort();
        }
        Ok(written)
    }

    /// Writes every staged blob durably (see [`BlobStore::sync`]), waiting for a sync under way;
    /// runs before every commit.
    pub async fn sync(&self) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sync_step())
            .await
            .map_err(join_err)?
            .map_err(|e| io_err("cannot write a file to the files directory", e))?;
        Ok(())
    }

    /// The bytes of `id`; None when the file is gone.
    pub async fn get(&self, id: &BlobId) -> Result<Option<Vec<u8>>> {
        let (store, id) = (self.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.get(&id))
            .await
            .map_err(join_err)?
            .map_err(|e| io_err("cannot read a file of the files directory", e))
    }

    /// The bytes a row holds: in its column (rows written before the files directory), else in
    /// the blob it names (a blob that is gone reads as purged, with a warning).
    pub async fn read(&self, inline: Option<Vec<u8>>, blob: Option<String>) -> Result<Option<Vec<u8>>> {
        if inline.is_some() {
            return Ok(inline);
        }
        let Some(name) = blob else { return Ok(None) };
        let Some(id) = BlobId::parse(&name) else {
            return Err(StoreError::Corrupt(format!("a row names the file `{name}`, which is not a SHA-256")));
        };
        let bytes = self.get(&id).await?;
        if bytes.is_none() {
            tracing::warn!(blob = %id, "a row names a file that is missing from the files directory");
        }
        Ok(bytes)
    }

    async fn delete(&self, id: &BlobId, written_before: i64) -> Result<bool> {
        let (store, id) = (self.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.delete(&id, written_before))
            .await
            .map_err(join_err)?
            .map_err(|e| io_err("cannot delete a file of the files directory", e))
    }

    async fn list(&self, partial_before: i64) -> Result<Vec<(BlobId, i64)>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.list(partial_before))
            .await
            .map_err(join_err)?
            .map_err(|e| io_err("cannot list the files directory", e))
    }
}

/// What the sweep deletes, decided without I/O: the listed blobs last written before
/// `now - grace` that no row references.
pub fn doomed(listed: &[(BlobId, i64)], referenced: &HashSet<BlobId>, now: i64, grace: Duration) -> Vec<BlobId> {
    let before = now.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    listed.iter().filter(|(id, at)| *at < before && !referenced.contains(id)).map(|(id, _)| id.clone()).collect()
}

/// Of `ids`, those a row references (messages' raw mail, chat files, quarantined mail).
pub async fn referenced(pool: &AnyPool, ids: &[BlobId]) -> Result<HashSet<BlobId>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(400) {
        let list = placeholders(1, chunk.len());
        let sql = format!(
            "SELECT raw_blob AS b FROM messages WHERE raw_blob IN ({list}) \
             UNION SELECT content_blob AS b FROM attachments WHERE content_blob IN ({list}) \
             UNION SELECT raw_blob AS b FROM quarantine WHERE raw_blob IN ({list})"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.as_str());
        }
        for r in q.fetch_all(pool).await? {
            if let Some(id) = BlobId::parse(&r.try_get::<String, _>("b")?) {
                found.insert(id);
            }
        }
    }
    Ok(found)
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Blobs in the directory before the sweep.
    pub files: usize,
    /// Unreferenced blobs older than the grace period, deleted.
    pub deleted: usize,
}

/// Deletes the blobs no row references that were last written before `now - grace` (`now`: the
/// wall clock's UTC milliseconds, which the files' times are compared with).
pub async fn sweep(store: &super::Store, now: i64, grace: Duration) -> Result<Swept> {
    let before = now.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let listed = store.files().list(before).await?;
    let old: Vec<BlobId> = listed.iter().filter(|(_, at)| *at < before).map(|(id, _)| id.clone()).collect();
    let refs = referenced(store.pool(), &old).await?;
    let mut swept = Swept { files: listed.len(), deleted: 0 };
    for id in doomed(&listed, &refs, now, grace) {
        // The time is looked at again: a transaction that wrote the same bytes since the listing
        // made the blob young, and it stays.
        if store.files().delete(&id, before).await? {
            swept.deleted += 1;
        }
    }
    Ok(swept)
}

/// After an erasure committed: deletes each of `ids` that no row references any more, unless it
/// was written again since `since` (the erasure's start, wall clock ms). Returns how many went.
pub async fn release(store: &super::Store, ids: &[BlobId], since: i64) -> Result<usize> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let refs = referenced(store.pool(), &ids).await?;
    let mut gone = 0;
    for id in ids.iter().filter(|id| !refs.contains(id)) {
        if store.files().delete(id, since).await? {
            gone += 1;
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId::of(&[n])
    }

    #[test]
    fn the_sweep_takes_only_old_unreferenced_blobs() {
        let now = 10_000_000;
        let grace = Duration::from_secs(3600);
        let old = now - 3_600_001;
        let listed = vec![(id(1), old), (id(2), old), (id(3), now - 1000), (id(4), now - 3_600_000)];
        let referenced: HashSet<BlobId> = [id(2)].into_iter().collect();
        // 1: old and unreferenced → deleted; 2: referenced; 3: fresh (an uncommitted
        // transaction's); 4: exactly at the edge of the grace period, kept.
        assert_eq!(doomed(&listed, &referenced, now, grace), vec![id(1)]);
        assert!(doomed(&listed, &referenced, now, Duration::from_secs(u64::MAX)).is_empty());
    }

    #[test]
    fn names_are_sha256_hex_only() {
        assert!(BlobId::parse(id(1).as_str()).is_some());
        assert!(BlobId::parse(&id(1).as_str().to_uppercase()).is_none());
        assert!(BlobId::parse("../../etc/passwd").is_none());
        assert!(BlobId::parse(&format!("{}x", &id(1).as_str()[1..])).is_none());
    }

    #[test]
    fn a_local_dir_keeps_bytes_privately_and_deletes_only_what_is_old() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let store = LocalDir::new(&root);
        let a = store.put(b"raw mail").unwrap();
        assert_eq!(a, BlobId::of(b"raw mail"));
        assert_eq!(store.get(&a).unwrap().as_deref(), Some(&b"raw mail"[..]));
        assert_eq!(store.put(b"raw mail").unwrap(), a, "the same bytes, the same name");
        let path = root.join(&a.as_str()[..2]).join(a.as_str());
        assert!(!path.exists(), "staged, not written before the sync");
        assert_eq!(store.sync().unwrap(), 1, "staged once");
        assert_eq!(std::fs::read(&path).unwrap(), b"raw mail");
        assert_eq!(store.sync().unwrap(), 0, "nothing left staged");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        for d in [&root, path.parent().unwrap()] {
            assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
        let listed = store.list(0).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, a);
        // Written after the cut-off: kept; before it: deleted.
        assert!(!store.delete(&a, listed[0].1).unwrap());
        assert!(store.get(&a).unwrap().is_some());
        assert!(store.delete(&a, listed[0].1 + 1).unwrap());
        assert!(store.get(&a).unwrap().is_none());
        // A file whose bytes do not match its name is refused, not returned.
        let b = store.put(b"other").unwrap();
        store.sync().unwrap();
        let bpath = root.join(&b.as_str()[..2]).join(b.as_str());
        std::fs::write(&bpath, b"tampered").unwrap();
        assert!(store.get(&b).is_err());
        // A partial write left by a crash goes once it is old.
        let partial = bpath.parent().unwrap().join(".tmp-0011223344556677");
        std::fs::write(&partial, b"half").unwrap();
        assert_eq!(store.list(0).unwrap().len(), 1);
        assert!(partial.exists());
        store.list(i64::MAX).unwrap();
        assert!(!partial.exists());
    }

    /// Blobs an earlier version wrote under `ab/cd/<sha256>` are read, renewed (not written
    /// again), listed and deleted where they are; new blobs go to `ab/<sha256>`.
    #[test]
    fn blobs_in_the_earlier_two_level_layout_stay_readable_and_deletable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let store = LocalDir::new(&root);
        let old = BlobId::of(b"written by 0.1");
        let s = old.as_str();
        let old_path = root.join(&s[..2]).join(&s[2..4]).join(s);
        std::fs::create_dir_all(old_path.parent().unwrap()).unwrap();
        std::fs::write(&old_path, b"written by 0.1").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&old_path).unwrap().set_modified(long_ago).unwrap();
        assert_eq!(store.get(&old).unwrap().as_deref(), Some(&b"written by 0.1"[..]));
        let listed = store.list(0).unwrap();
        assert_eq!(listed.len(), 1);
        let listed_at = listed[0].1;
        // Put again: renewed where it is, nothing staged, no second copy.
        assert_eq!(store.put(b"written by 0.1").unwrap(), old);
        assert_eq!(store.sync().unwrap(), 0, "an existing blob is not written again");
        assert!(!store.path(&old).exists());
        let listed = store.list(0).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].1 > listed_at, "renewed: {} > {listed_at}", listed[0].1);
        // A new blob beside it in the one-level layout; both listed, each deleted where it is.
        let new = store.put(b"written now").unwrap();
        store.sync().unwrap();
        assert!(store.path(&new).is_file());
        let mut ids: Vec<BlobId> = store.list(0).unwrap().into_iter().map(|(id, _)| id).collect();
        ids.sort();
        let mut want = vec![old.clone(), new.clone()];
        want.sort();
        assert_eq!(ids, want);
        assert!(!store.delete(&old, listed_at).unwrap(), "renewed after the cut-off: kept");
        assert!(store.delete(&old, i64::MAX).unwrap());
        assert!(!old_path.exists());
        assert!(store.get(&old).unwrap().is_none());
        assert!(store.delete(&new, i64::MAX).unwrap());
        assert!(store.list(0).unwrap().is_empty());
    }

    #[test]
    fn what_a_sync_cannot_write_stays_staged_for_the_next() {
        for each_file in [false, true] {
            a_sync_that_cannot_write(each_file);
        }
    }

    fn a_sync_that_cannot_write(each_file: bool) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let store = if each_file { LocalDir::new(&root) } else { LocalDir::flushing_the_file_system(&root) };
        let a = store.put(b"mail one").unwrap();
        let b = store.put(b"mail two").unwrap();
        // The files directory's place is taken by a plain file: nothing can be written.
        std::fs::write(&root, b"in the way").unwrap();
        assert!(store.sync().is_err());
        assert_eq!(store.get(&a).unwrap().as_deref(), Some(&b"mail one"[..]), "still staged, still readable");
        std::fs::remove_file(&root).unwrap();
        assert_eq!(store.sync().unwrap(), 2, "both written by the next sync");
        for (id, bytes) in [(&a, &b"mail one"[..]), (&b, &b"mail two"[..])] {
            assert_eq!(std::fs::read(store.path(id)).unwrap(), bytes);
        }
        // A blob whose name is taken by a directory cannot be renamed into place: the sync fails,
        // leaves no temporary file behind, and the blob stays staged.
        let c = store.put(b"mail three").unwrap();
        std::fs::create_dir_all(store.path(&c).join("in-the-way")).unwrap();
        assert!(store.sync().is_err());
        let dir_of_c = store.dir_of(&c);
        let leftovers: Vec<_> = std::fs::read_dir(&dir_of_c)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        std::fs::remove_dir_all(store.path(&c)).unwrap();
        assert_eq!(store.sync().unwrap(), 1);
        assert_eq!(store.get(&c).unwrap().as_deref(), Some(&b"mail three"[..]));
    }

    #[test]
    fn blobs_staged_by_many_threads_are_all_on_disk_after_each_ones_sync() {
        for each_file in [false, true] {
            many_threads_syncing(each_file);
        }
    }

    fn many_threads_syncing(each_file: bool) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let store = Arc::new(if each_file { LocalDir::new(&root) } else { LocalDir::flushing_the_file_system(&root) });
        let ids: Vec<BlobId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|t| {
                    let store = store.clone();
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for n in 0..40u8 {
                            mine.push(store.put(&[t, n, 7]).unwrap());
                            if n % 5 == 4 {
                                store.sync().unwrap();
                                // What this thread staged is on disk once its sync returned,
                                // whichever thread's sync wrote it.
                                for id in &mine {
                                    assert!(store.path(id).exists(), "{id} on disk");
                                }
                            }
                        }
                        store.sync().unwrap();
                        mine
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(ids.len(), 320);
        let listed: HashSet<BlobId> = store.list(0).unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(listed, ids.into_iter().collect::<HashSet<_>>());
    }

    /// A transaction reads the blobs it staged while another thread's sync is writing them
    /// (before, a sync took them out of the staged set before they had their names on disk, and
    /// such a read found neither).
    #[test]
    fn a_blob_reads_back_while_another_thread_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDir::new(dir.path().join("files")));
        let done = std::sync::atomic::AtomicBool::new(false);
        /// Stops the syncing thread however the reads end (a failed assertion too).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    store.sync().unwrap();
                }
            });
            let _stop = Stop(&done);
            for round in 0..100u32 {
                let mails: Vec<String> = (0..20).map(|n| format!("mail {round}.{n}")).collect();
                let ids: Vec<BlobId> = mails.iter().map(|m| store.put(m.as_bytes()).unwrap()).collect();
                for (id, mail) in ids.iter().zip(&mails) {
                    assert_eq!(store.get(id).unwrap().as_deref(), Some(mail.as_bytes()), "{mail} read back");
                }
            }
        });
        store.sync().unwrap();
        assert_eq!(store.list(0).unwrap().len(), 2_000);
    }

    /// `Files::put` starts writing at once, so the sync before the commit finds the blob already
    /// written; nothing is left for it.
    #[tokio::test]
    async fn files_are_written_behind_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(LocalDir::new(dir.path().join("files")));
        let files = Files::new(local.clone());
        let id = files.put(b"raw mail").await.unwrap();
        let path = local.path(&id);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "the blob was never written behind");
            tokio::task::yield_now().await;
        }
        files.sync().await.unwrap();
        assert_eq!(local.sync().unwrap(), 0, "nothing staged is left after the commit's sync");
        assert_eq!(files.get(&id).await.unwrap().as_deref(), Some(&b"raw mail"[..]));
    }
}
