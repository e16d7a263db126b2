//! The SQLite file before sqlx opens it: checks that turn SQLite's bare "unable to open database
//! file" and "attempt to write a readonly database" into the cause and the fix (a missing
//! directory, a directory given as the file, a file or directory the running user may not write,
//! with its owner and mode), and the advisory lock by which `loket serve` tells a second instance
//! on the same file which process holds it.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Access, FlockOperation, access, flock};

use super::StoreError;

/// What a command needs of the SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read and write; the file is created when missing (and its directory, when it is `var`).
    Write,
    /// Read only; the file must exist.
    Read,
    /// Look only (`check-config`): what `Write` would need, creating nothing.
    Check,
}

/// The file part of a `sqlite://` URL (`None` for `:memory:` or another backend).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let file = rest.split_once('?').map_or(rest, |(f, _)| f);
    (!file.is_empty() && file != ":memory:").then(|| PathBuf::from(file))
}

/// What `prepare` found, for `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The file exists and may be used as asked.
    Ready,
    /// The file does not exist yet and will be created (with its directory when `dir` is true).
    WillCreate { dir: bool },
}

fn setup(m: String) -> StoreError {
    StoreError::Setup(m)
}

/// The user this process runs as: `name (uid N)`.
pub fn running_user() -> String {
    user_name(rustix::process::getuid().as_raw())
}

fn user_name(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|text| {
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            let (name, _, id) = (f.next()?, f.next()?, f.next()?);
            (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// `owned by NAME (uid N), mode 0644`.
fn owner_and_mode(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("owned by {}, mode {:04o}", user_name(m.uid()), m.permissions().mode() & 0o7777),
        Err(e) => format!("cannot stat: {e}"),
    }
}

/// Checks (and for `Need::Write`, creates) what SQLite needs at `path`, naming cause and fix.
pub fn prepare(path: &Path, need: Need) -> Result<Found, StoreError> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(setup(format!(
                "storage.url names {shown}, which is a directory; name a file inside it, e.g. sqlite://{}",
                path.join("loket.db").display()
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return missing(path, &dir, need),
        Err(e) => {
            return Err(setup(format!(
                "cannot reach the store file {shown}: {e}; the user Loket runs as ({}) needs to search every directory on the way ({} is {})",
                running_user(),
                dir.display(),
                owner_and_mode(&dir)
            )));
        }
    }
    let mode = if need == Need::Read { Access::READ_OK } else { Access::READ_OK | Access::WRITE_OK };
    if let Err(e) = access(path, mode) {
        let what = if need == Need::Read { "readable" } else { "writable" };
        return Err(setup(format!(
            "the store file {shown} is not {what} by the user Loket runs as, {}: it is {} ({}); run Loket as its owner, or give the file to this user (chown), or point storage.url at a file this user may write",
            running_user(),
            owner_and_mode(path),
            io_text(e)
        )));
    }
    if need != Need::Read
        && let Err(e) = access(&dir, Access::WRITE_OK | Access::EXEC_OK)
    {
        return Err(setup(format!(
            "the directory {} of the store is not writable by the user Loket runs as, {}: it is {} ({}); SQLite writes its journal ({shown}-wal, {shown}-shm) there; give the directory to this user or move the store",
            dir.display(),
            running_user(),
            owner_and_mode(&dir),
            io_text(e)
        )));
    }
    Ok(Found::Ready)
}

fn io_text(e: rustix::io::Errno) -> String {
    std::io::Error::from(e).to_string()
}

/// The file does not exist: create it (and the default `var/` directory) or say why not.
fn missing(path: &Path, dir: &Path, need: Need) -> Result<Found, StoreError> {
    let shown = path.display();
    if need == Need::Read {
        return Err(setup(format!(
            "no store at {shown} yet: `loket serve` or `loket migrate` creates it (or storage.url / LOKET_DATABASE_URL names another file)"
        )));
    }
    let mut create_dir = false;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(setup(format!(
                "storage.url: {} is a file, not a directory, so {shown} cannot be created there",
                dir.display()
            )));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Only the default `var/` (next to an existing parent) is made; a mistyped path is
            // not silently turned into a new, empty store.
            let is_var = dir.file_name().is_some_and(|n| n == "var");
            let parent_exists = dir.parent().is_some_and(|p| p.as_os_str().is_empty() || p.is_dir());
            if !(is_var && parent_exists) {
                return Err(setup(format!(
                    "the directory {} of storage.url does not exist: fix the path, or create it (mkdir -p {}) if the store belongs there",
                    dir.display(),
                    dir.display()
                )));
            }
            create_dir = true;
        }
        Err(e) => return Err(setup(format!("cannot reach the store's directory {}: {e}", dir.display()))),
    }
    if need == Need::Check {
        let probe = match dir.parent() {
            Some(p) if create_dir && !p.as_os_str().is_empty() => p,
            Some(_) if create_dir => Path::new("."),
            _ => dir,
        };
        if let Err(e) = access(probe, Access::WRITE_OK | Access::EXEC_OK) {
            return Err(setup(format!(
                "{shown} does not exist and cannot be created: {} is not writable by the user Loket runs as, {}: it is {} ({})",
                probe.display(),
                running_user(),
                owner_and_mode(probe),
                io_text(e)
            )));
        }
        return Ok(Found::WillCreate { dir: create_dir });
    }
    // Another process starting on the same fresh store (a second `serve`, `migrate`, an operator's
    // `tickets list`) may create the directory or the file between the check above and here:
    // what it made is used, not reported as an error.
    if create_dir {
        match std::fs::create_dir(dir) {
            Ok(()) => tracing::info!(dir = %dir.display(), "created the store's directory"),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => {
                return Err(setup(format!(
                    "cannot create the store's directory {}: {e} (user {})",
                    dir.display(),
                    running_user()
                )));
            }
        }
    }
    match OpenOptions::new().read(true).write(true).create_new(true).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return prepare(path, need),
        Err(e) => return Err(create_error(path, dir, e)),
    }
    Ok(Found::WillCreate { dir: create_dir })
}

/// Why the store file could not be created, with the fix.
fn create_error(path: &Path, dir: &Path, e: std::io::Error) -> StoreError {
    let shown = path.display();
    let hint = match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            format!("; {} is {} and the user Loket runs as is {}", dir.display(), owner_and_mode(dir), running_user())
        }
        ErrorKind::StorageFull => "; the disk is full: free space and try again".into(),
        _ => format!("; {} does not take new files: choose a directory on a writable local disk", dir.display()),
    };
    setup(format!("cannot create the store file {shown}: {e}{hint}"))
}

/// The advisory lock `loket serve` holds on a SQLite store for its lifetime (`PATH.lock`, with
/// its pid). The kernel releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Takes the instance lock of the SQLite store at `db`, or names the process that holds it.
pub fn lock_instance(db: &Path) -> Result<InstanceLock, StoreError> {
    let lock = PathBuf::from(format!("{}.lock", db.display()));
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock).map_err(|e| {
            setup(format!("cannot open the lock file {}: {e} (user {})", lock.display(), running_user()))
        })?;
    if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
        if e != rustix::io::Errno::WOULDBLOCK {
            return Err(setup(format!("cannot lock {}: {}", lock.display(), io_text(e))));
        }
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        let who = if pid.is_empty() { "another loket".to_string() } else { format!("another loket (pid {pid})") };
        return Err(setup(format!(
            "{who} holds {} (lock {}): stop it first, or give this instance its own storage.url; several instances need PostgreSQL",
            db.display(),
            lock.display()
        )));
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    if let Err(e) = written {
        tracing::warn!(lock = %lock.display(), error = %e, "cannot write the pid into the lock file");
    }
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite:///a/b.db?mode=rwc"), Some(PathBuf::from("/a/b.db")));
        assert_eq!(sqlite_path("sqlite://var/loket.db"), Some(PathBuf::from("var/loket.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }

    /// Two processes starting on one fresh store: the one that finds the file already created
    /// between its check and its own creation uses it (a CI run once failed a daemon this way).
    #[test]
    fn a_store_created_by_another_process_meanwhile_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let var = dir.path().join("var");
        std::fs::create_dir(&var).unwrap();
        let db = var.join("loket.db");
        std::fs::write(&db, b"").unwrap();
        // `missing` is what `prepare` calls after seeing no file; here the other process won.
        assert_eq!(missing(&db, &var, Need::Write).unwrap(), Found::Ready);
        std::fs::remove_file(&db).unwrap();
        assert_eq!(missing(&db, &var, Need::Write).unwrap(), Found::WillCreate { dir: false });
        assert!(db.is_file());
    }

    #[test]
    fn missing_directories_are_created_only_for_var() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("nonexistent/dir/loket.db");
        let e = prepare(&typo, Need::Write).unwrap_err().to_string();
        assert!(e.contains("does not exist") && e.contains("mkdir -p"), "{e}");
        assert!(!dir.path().join("nonexistent").exists());
        let var = dir.path().join("var/loket.db");
        assert_eq!(prepare(&var, Need::Check).unwrap(), Found::WillCreate { dir: true });
        assert!(!var.exists(), "check creates nothing");
        assert_eq!(prepare(&var, Need::Write).unwrap(), Found::WillCreate { dir: true });
        assert!(var.is_file());
        assert_eq!(prepare(&var, Need::Read).unwrap(), Found::Ready);
        let e = prepare(dir.path(), Need::Write).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = prepare(&dir.path().join("absent.db"), Need::Read).unwrap_err().to_string();
        assert!(e.contains("no store at"), "{e}");
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("loket.db");
        let held = lock_instance(&db).unwrap();
        let e = lock_instance(&db).unwrap_err().to_string();
        assert!(e.contains(&format!("another loket (pid {})", std::process::id())), "{e}");
        drop(held);
        lock_instance(&db).unwrap();
    }
}
