//! Maildir intake: each file in `new/` is processed and then renamed into `cur/` with the `S`
//! (seen) flag, only after the pipeline committed it (invariant 1). `tmp/` is left alone: writers
//! deliver there and rename into `new/` when complete (the Maildir protocol).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ChannelError;
use crate::config::{Desk, InboxConfig};
use crate::pipeline::{Incoming, Pipeline};

#[derive(Clone)]
pub struct MaildirSource {
    pub pipeline: Pipeline,
    pub lease: super::lease::Lease,
    pub desk: Desk,
    pub inbox: InboxConfig,
    pub path: PathBuf,
    pub poll: Duration,
    /// Messages waiting after a temporary error.
    pub deferrals: std::sync::Arc<std::sync::Mutex<super::deferral::Deferrals>>,
}

/// Creates `new/`, `cur/` and `tmp/` under `path` when missing.
pub fn ensure_layout(path: &Path) -> std::io::Result<()> {
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(path.join(d))?;
    }
    Ok(())
}

impl MaildirSource {
    pub async fn run(self, cancel: CancellationToken) {
        if let Err(e) = ensure_layout(&self.path) {
            tracing::error!(inbox = %self.inbox.name, path = %self.path.display(), error = %e, "cannot create Maildir");
        }
        // A file renamed into `new/` starts a round at once; the poll stays for what a watch
        // cannot see (a file system without inotify, a watch limit reached).
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let _watch = watch(&self.path.join("new"), wake.clone())
            .inspect_err(
                |e| tracing::warn!(inbox = %self.inbox.name, error = %e, "cannot watch the Maildir; polling it only"),
            )
            .ok();
        super::lease::poll_rounds(&self.lease, &self.pipeline, "Maildir", self.poll, Some(&wake), &cancel, || {
            self.drain(&cancel)
        })
        .await;
    }

    /// Processes every file in `new/` (oldest name first), batch by batch; returns how many.
    /// Errors are temporary (the directory, the store, a message that keeps failing) unless the
    /// store says otherwise; `run` retries with backoff.
    pub async fn drain(&self, cancel: &CancellationToken) -> Result<usize, ChannelError> {
        let new = self.path.join("new");
        let dir = new.clone();
        let names = tokio::task::spawn_blocking(move || listing(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| ChannelError::temporary(format!("{}: {e}", new.display())))?;
        let mut rest = &names[..];
        let mut n = 0;
        self.deferrals().new_round();
        while !rest.is_empty() && !cancel.is_cancelled() {
            let Read { now, files } = self.read_batch(&mut rest).await?;
            let mut ready: Vec<(&String, Vec<u8>)> = Vec::with_capacity(files.len());
            let mut stop = None;
            for (name, file) in files {
                match file {
                    File::Ready(raw) => ready.push((name, raw)),
                    File::Unreadable(why) => self.defer(name, &format!("cannot read {why}"), &mut stop),
                    File::TooLarge(size) => {
                        let src = new.join(name);
                        let header = read_header(&src, 256 * 1024)
                            .map_err(|e| ChannelError::temporary(format!("{}: {e}", src.display())))?;
                        let reason = format!(
                            "message of {size} bytes exceeds limits.max_message_bytes ({}); the original stays in {}",
                            self.pipeline.config().limits.max_message_bytes,
                            self.path.join("cur").display()
                        );
                        self.pipeline.quarantine(&self.desk, &self.inbox, &header, size, &reason, now).await?;
                        self.done(name)?;
                        n += 1;
                    }
                }
            }
            // One store transaction for the batch (group commit). A permanent error is quarantined
            // by the pipeline; a temporary one makes that message wait while the others flow.
            let batch: Vec<Incoming<'_>> = ready.iter().map(|(_, raw)| Incoming { raw, now }).collect();
            let results = self.pipeline.process_batch(&self.inbox.name, &batch).await;
            for ((name, _), result) in ready.iter().zip(results) {
                match result {
                    Ok(_) => {
                        self.done(name)?;
                        n += 1;
                    }
                    Err(e) => self.defer(name, &e.to_string(), &mut stop),
                }
            }
            if let Some(e) = stop {
                return Err(e);
            }
        }
        Ok(n)
    }

    /// The next batch from `names` (advanced past what it took): files whose deferral is over, at
    /// most `limits.batch_messages` of them and, past the first, [`super::BATCH_BYTES`] together, read on
    /// the blocking pool.
    async fn read_batch<'n>(&self, names: &mut &'n [String]) -> Result<Read<'n>, ChannelError> {
        let now = crate::now_ms();
        let limits = &self.pipeline.config().limits;
        let (count, max) = (limits.batch_messages, limits.max_message_bytes);
        // The files wanted, by their place in `names`, and where the search for them ended.
        let (mut wanted, mut scanned) = (Vec::new(), 0);
        {
            let deferrals = self.deferrals();
            while scanned < names.len() && wanted.len() < count {
                if deferrals.ready(&names[scanned], now) {
                    wanted.push(scanned);
                }
                scanned += 1;
            }
        }
        let new = self.path.join("new");
        let paths: Vec<PathBuf> = wanted.iter().map(|&i| new.join(&names[i])).collect();
        let read = tokio::task::spawn_blocking(move || read_files(&paths, max, super::BATCH_BYTES))
            .await
            .map_err(|e| ChannelError::temporary(format!("reading {}: {e}", new.display())))?;
        // What was not read (past the batch's bytes) is the next batch's.
        let all: &'n [String] = names;
        let (this, after) = all.split_at(wanted.get(read.len()).copied().unwrap_or(scanned));
        *names = after;
        let files = wanted.into_iter().zip(read).filter_map(|(i, file)| Some((&this[i], file?))).collect();
        Ok(Read { now, files })
    }

    /// A file that cannot be taken now (`why`): it waits with its own backoff while the others
    /// flow; the first whose failures have run on long enough becomes the round's error (`stop`).
    fn defer(&self, name: &str, why: &str, stop: &mut Option<ChannelError>) {
        let what = format!("message {name} waits: {why}");
        tracing::warn!(inbox = %self.inbox.name, message = %name, error = %why, "message deferred");
        self.pipeline.metrics().inbox_deferred(&self.inbox.name, Some(what.clone()));
        if self.deferrals().failed(name, crate::now_ms()) && stop.is_none() {
            *stop = Some(ChannelError::temporary(what));
        }
    }

    fn deferrals(&self) -> std::sync::MutexGuard<'_, super::deferral::Deferrals> {
        self.deferrals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A file whose message is committed (or quarantined): moved to `cur/`, seen.
    fn done(&self, name: &str) -> Result<(), ChannelError> {
        let mut d = self.deferrals();
        d.done(name);
        if d.is_empty() {
            self.pipeline.metrics().inbox_deferred(&self.inbox.name, None);
        }
        let src = self.path.join("new").join(name);
        let base = name.split(":2,").next().unwrap_or(name);
        let dst = self.path.join("cur").join(format!("{base}:2,S"));
        std::fs::rename(&src, &dst)
            .map_err(|e| ChannelError::temporary(format!("{} -> {}: {e}", src.display(), dst.display())))
    }
}

/// Notifies `wake` whenever a file is created in or moved into `dir` (inotify on Linux); the
/// watch lasts as long as the value returned. A file moved out of `dir` (the source's own move
/// of a taken file to `cur/`) wakes nothing.
fn watch(dir: &Path, wake: std::sync::Arc<tokio::sync::Notify>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::event::{ModifyKind, RenameMode};
    use notify::{EventKind, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let arrived = |kind: &EventKind| match kind {
            EventKind::Modify(ModifyKind::Name(mode)) => *mode != RenameMode::From,
            EventKind::Create(_) | EventKind::Modify(_) => true,
            _ => false,
        };
        if event.is_ok_and(|e| arrived(&e.kind)) {
            wake.notify_one();
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// A batch read from `new/`, with when it was read.
struct Read<'n> {
    now: i64,
    files: Vec<(&'n String, File)>,
}

/// The message files of a Maildir's `new` (or `cur`) to take this round, in name order
/// ([`settled`]); also what `loket ingest` takes of a Maildir.
pub fn listing(new: &Path) -> std::io::Result<Vec<String>> {
    let first = list(new)?;
    Ok(settled(&first, list(new)?))
}

/// The names of the message files in `dir` (no dot files, no directories), unsorted.
fn list(dir: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect())
}

/// The files to take this round, in name order (a Maildir name starts with its delivery time):
/// those of a `second` listing up to the last name of the `first`. A listing made while files
/// are being delivered may miss one renamed in during it and yet hold a later one (the directory
/// is read in hash order, not name order), so one listing alone could take a reply before the
/// request it answers. Every file delivered before the second listing began is in it, and every
/// file the first listing holds was delivered before then, so every file named before the
/// first's last is there to be taken too; the later ones wait for the next round.
fn settled(first: &[String], mut second: Vec<String>) -> Vec<String> {
    let Some(last) = first.iter().max() else { return Vec::new() };
    second.retain(|n| n <= last);
    second.sort();
    second
}

/// A file of `new/`, read.
enum File {
    Ready(Vec<u8>),
    /// Larger than `limits.max_message_bytes` (its size): quarantined from its header.
    TooLarge(usize),
    /// Not readable (why): it waits, as a message whose processing failed for now does, while the
    /// others flow.
    Unreadable(String),
}

/// Reads `paths` in order, the first always and the others while the bytes read stay within
/// `budget`; a file larger than `max` is not read, only its size kept. A file gone since the
/// listing (another reader's, or moved by hand) is `None`; one that cannot be read (another
/// user's, say) is [`File::Unreadable`], and the others are read all the same.
fn read_files(paths: &[PathBuf], max: usize, budget: usize) -> Vec<Option<File>> {
    let mut out = Vec::with_capacity(paths.len());
    let mut bytes = 0usize;
    let unreadable = |path: &Path, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => None,
        _ => Some(File::Unreadable(format!("{}: {e}", path.display()))),
    };
    for path in paths {
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len() as usize,
            Err(e) => {
                out.push(unreadable(path, e));
                continue;
            }
        };
        if size > max {
            out.push(Some(File::TooLarge(size)));
            continue;
        }
        if !out.is_empty() && bytes + size > budget {
            break;
        }
        match std::fs::read(path) {
            Ok(raw) => {
                bytes += raw.len();
                out.push(Some(File::Ready(raw)));
            }
            Err(e) => out.push(unreadable(path, e)),
        }
    }
    out
}

/// The header section of a file (up to the first empty line), at most `limit` bytes.
fn read_header(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(limit as u64).read_to_end(&mut buf)?;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(buf.len());
    buf.truncate(end);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(files: &[Option<File>]) -> Vec<String> {
        files
            .iter()
            .map(|f| match f {
                Some(File::Ready(raw)) => format!("read {}", raw.len()),
                Some(File::TooLarge(size)) => format!("too large {size}"),
                Some(File::Unreadable(why)) => {
                    assert!(why.contains("Is a directory"), "{why}");
                    "unreadable".into()
                }
                None => "gone".into(),
            })
            .collect()
    }

    #[test]
    fn a_round_takes_what_a_second_listing_holds_up_to_the_first_listings_last_name() {
        let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        // The first listing, made while 2 and 3 were being renamed in, missed 2 and caught 3: the
        // second has 2, and 4 (delivered after the first) waits for the next round.
        assert_eq!(settled(&names(&["3", "1"]), names(&["4", "2", "3", "1"])), names(&["1", "2", "3"]));
        // A file gone between the listings (another reader's) is not taken.
        assert_eq!(settled(&names(&["1", "2"]), names(&["2"])), names(&["2"]));
        assert!(settled(&[], names(&["1"])).is_empty());
    }

    /// Files renamed into `new/` in name order while rounds are listed: no round takes a file
    /// and leaves out one named before it. (A single listing of this file system, ext4 in hash
    /// order, left such a hole in about half of the listings made during the renames.)
    #[test]
    fn a_round_listed_while_files_are_delivered_never_skips_an_earlier_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, new) = (dir.path().join("tmp"), dir.path().join("new"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&new).unwrap();
        const N: usize = 4000;
        for i in 0..N {
            std::fs::write(tmp.join(format!("{i:06}.m")), "x").unwrap();
        }
        let delivering = std::sync::atomic::AtomicBool::new(true);
        let rounds = std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..N {
                    let name = format!("{i:06}.m");
                    std::fs::rename(tmp.join(&name), new.join(&name)).unwrap();
                }
                delivering.store(false, std::sync::atomic::Ordering::SeqCst);
            });
            let mut rounds = 0;
            while delivering.load(std::sync::atomic::Ordering::SeqCst) {
                let names = listing(&new).unwrap();
                let hole = names.iter().enumerate().find(|(i, n)| **n != format!("{i:06}.m"));
                assert!(
                    hole.is_none(),
                    "round {rounds} of {} files: {hole:?} stands where another was left out",
                    names.len()
                );
                rounds += 1;
            }
            rounds
        });
        assert!(rounds > 0);
        assert_eq!(listing(&new).unwrap().len(), N);
    }

    #[test]
    fn a_batch_is_read_within_its_bytes_the_first_file_always_large_ones_only_measured_and_past_an_unreadable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        for (name, size) in [("a", 600), ("b", 300), ("c", 5000), ("d", 200), ("e", 100)] {
            std::fs::write(path(name), vec![b'x'; size]).unwrap();
        }
        let all: Vec<PathBuf> = ["a", "b", "gone", "c", "d", "e"].iter().map(|n| path(n)).collect();
        // 1,000 bytes: a and b (900), the missing file and the one too large cost nothing; d (200)
        // would pass the budget, so the batch stops before it.
        let files = read_files(&all, 1000, 1000);
        assert_eq!(kinds(&files), ["read 600", "read 300", "gone", "too large 5000"]);
        // The first file is read even when it alone passes the budget.
        let files = read_files(&all[..2], 1000, 10);
        assert_eq!(kinds(&files), ["read 600"]);
        // A path that cannot be read as a file is said so, and the files after it are read.
        let unreadable = [path("e"), dir.path().to_path_buf(), path("d")];
        let files = read_files(&unreadable, 1 << 20, 1 << 20);
        assert_eq!(kinds(&files), ["read 100", "unreadable", "read 200"]);
    }
}
