//! What routing makes, keeps in the cache directory (`storage.cache`) and reads back in later
//! processes while the files it was made from are unchanged: a desk's second opinion
//! ([`super::learned`]) and a desk's compiled rules ([`super::rules::DeskRules::to_kept`]).
//! `loket ingest` starts once per mail, and reading either back costs a fraction of making it.
//!
//! What is kept is named `<name>-<fingerprint>.bin`. The fingerprint is each source file's name,
//! size and modification time — what `make` trusts — with what else the thing depends on (a
//! model's format and trainer's settings; for rules, their files' paths, what compiling reads of
//! the desk's catalogue and this program's build, whose types and decisions they hold). Any change gives another fingerprint: the thing is made again and kept under the
//! new one, and the old one is removed. A file changed less than [`SETTLING`] before it was read
//! is not trusted to that extent (it could change again within one tick of the clock that stamps
//! it, its size the same, as git's "racily clean" index entries): what was made from it is used
//! but not kept.
//!
//! Nothing here is needed for routing to be right: without a cache directory, or where a kept
//! file cannot be read or written, the thing is made in the process (and a kept file that does
//! not read back is ignored).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::rules::{self, DeskRules};
use crate::catalogue::Catalogue;

/// How long ago a file must have changed for what was made from it to be kept.
pub const SETTLING: Duration = Duration::from_secs(2);

/// The fingerprint of `salt` and `paths` (each path by its file name, size and modification time;
/// a missing one counts as such), taken before any of them is read, and whether one of them
/// changed within [`SETTLING`] (or cannot be looked at).
pub fn fingerprint(salt: &[&[u8]], paths: &[&Path]) -> (String, bool) {
    let mut h = Sha256::new();
    for s in salt {
        h.update(s);
    }
    let now = SystemTime::now();
    let mut settling = false;
    for f in paths {
        // By name: the same files reached by another spelling of their directory are the same.
        h.update(f.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        h.update([0]);
        match std::fs::metadata(f) {
            Ok(m) => {
                h.update([1]);
                h.update(m.len().to_le_bytes());
                let modified = m.modified().ok();
                let since = modified.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
                h.update(since.map_or(0, |d| d.as_nanos()).to_le_bytes());
                settling |= modified.is_none_or(|t| now.duration_since(t).map_or(true, |d| d < SETTLING));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => h.update([0]),
            // Read later, it will say why; nothing made from it is kept.
            Err(_) => settling = true,
        }
    }
    (hex::encode(&h.finalize()[..12]), settling)
}

/// This program's build, as the size and modification time of its executable: what is kept of
/// compiled rules holds this build's types and decisions, and another build reads its own.
/// `None` where the executable cannot be looked at (nothing is kept then).
pub fn build() -> Option<Vec<u8>> {
    let m = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
    let since = m.modified().ok()?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let mut id = env!("CARGO_PKG_VERSION").as_bytes().to_vec();
    id.extend(m.len().to_le_bytes());
    id.extend(since.as_nanos().to_le_bytes());
    Some(id)
}

/// The file `name` is kept in: `<name>-<fingerprint>.bin`; none for a name that is not a plain
/// file name part.
pub fn kept_path(cache: &Path, name: &str, fingerprint: &str) -> Option<PathBuf> {
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| cache.join(format!("{name}-{fingerprint}.bin")))
}

/// `catalogue`'s desk's rules, compiled for a few messages from its rules file `path` and the
/// common file `common`: read back from `cache` where they are kept under their fingerprint (the
/// two files, this build, the catalogue's part in them), else `compile()`d and kept there.
/// Without a cache (or where this build or the catalogue's part cannot be told) they are compiled.
pub fn desk_rules(
    cache: Option<&Path>,
    path: &Path,
    common: &Path,
    catalogue: &Catalogue,
    compile: impl FnOnce() -> Result<DeskRules, Vec<String>>,
) -> Result<DeskRules, Vec<String>> {
    let name = format!("rules-{}", catalogue.desk);
    let place = cache.zip(build()).and_then(|(cache, build)| {
        let inputs = rules::catalogue_inputs(catalogue)?;
        // The paths whole: the rules name their file in explanations and errors.
        let salt: [&[u8]; 6] = [
            b"rules\0",
            &build,
            path.as_os_str().as_encoded_bytes(),
            b"\0",
            common.as_os_str().as_encoded_bytes(),
            &inputs,
        ];
        let (fingerprint, settling) = fingerprint(&salt, &[path, common]);
        Some((kept_path(cache, &name, &fingerprint)?, settling))
    });
    let Some((kept, settling)) = place else { return compile() };
    if let Ok(bytes) = std::fs::read(&kept) {
        match DeskRules::from_kept(&bytes) {
            Ok(rules) => return Ok(rules),
            Err(e) => tracing::warn!(path = %kept.display(), error = %e, "kept rules unreadable; compiling them again"),
        }
    }
    let rules = compile()?;
    if !settling {
        let written = rules.to_kept().map_err(std::io::Error::other).and_then(|bytes| keep(&kept, &name, &bytes));
        if let Err(e) = written {
            // Only time is lost (the next process compiles them too).
            tracing::info!(path = %kept.display(), error = %e, "cannot keep the compiled rules; they are compiled again next time");
        }
    }
    Ok(rules)
}

/// Writes `bytes` to `path` (0600; its directory 0700 when made, its parent never) through a
/// temporary file, then removes the files of the same name kept under other fingerprints.
pub fn keep(path: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    // The directory itself, not its parents: a store's missing directory is named, never made.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let file = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{file}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // This name's files only: `opinion-hero-<fingerprint>.bin`, not desk `hero-x`'s.
    let ours = |n: &str| {
        n.strip_prefix(name)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(".bin"))
            .is_some_and(|fp| fp.len() == 24 && fp.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    for e in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let n = e.file_name().to_string_lossy().to_string();
        if ours(&n) && n != file {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}
