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
        super::lease::poll_rounds(&self.lease, &self.pipeline, "Maildir", self.poll, &cancel, || self.drain(&cancel))
            .await;
    }

    /// Processes every file in `new/` (oldest name first); returns how many.
    /// Errors are temporary (the directory, the store, a message that keeps failing) unless the
    /// store says otherwise; `run` retries with backoff.
    pub async fn drain(&self, cancel: &CancellationToken) -> Result<usize, ChannelError> {
        let io = |what: String| ChannelError::temporary(what);
        let new = self.path.join("new");
        let mut names: Vec<String> = std::fs::read_dir(&new)
            .map_err(|e| io(format!("{}: {e}", new.display())))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let max = self.pipeline.config().limits.max_message_bytes;
        let mut n = 0;
        let deferrals = || self.deferrals.lock().unwrap_or_else(|p| p.into_inner());
        deferrals().new_round();
        for chunk in names.chunks(self.pipeline.config().limits.batch_messages) {
            if cancel.is_cancelled() {
                break;
            }
            let now = crate::now_ms();
            let mut ready: Vec<(&String, Vec<u8>)> = Vec::new();
            for name in chunk.iter().filter(|name| deferrals().ready(name, now)) {
                let src = new.join(name);
                let meta = std::fs::metadata(&src).map_err(|e| io(format!("{}: {e}", src.display())))?;
                if meta.len() as usize > max {
                    let header = read_header(&src, 256 * 1024).map_err(|e| io(format!("{}: {e}", src.display())))?;
                    let reason = format!(
                        "message of {} bytes exceeds limits.max_message_bytes ({max}); the original stays in {}",
                        meta.len(),
                        self.path.join("cur").display()
                    );
                    self.pipeline
                        .quarantine(&self.desk, &self.inbox, &header, meta.len() as usize, &reason, now)
                        .await?;
                    self.done(name)?;
                    n += 1;
                } else {
                    let raw = tokio::fs::read(&src).await.map_err(|e| io(format!("{}: {e}", src.display())))?;
                    ready.push((name, raw));
                }
            }
            // One store transaction for the files of this round (group commit). A permanent error
            // is quarantined by the pipeline; a temporary one makes that message wait while the
            // others flow.
            let batch: Vec<Incoming<'_>> = ready.iter().map(|(_, raw)| Incoming { raw, now }).collect();
            let results = self.pipeline.process_batch(&self.inbox.name, &batch).await;
            let mut stop = None;
            for ((name, _), result) in ready.iter().zip(results) {
                match result {
                    Ok(_) => {
                        self.done(name)?;
                        n += 1;
                    }
                    Err(e) => {
                        let what = format!("message {name} waits: {e}");
                        tracing::warn!(inbox = %self.inbox.name, message = %name, error = %e, "message deferred");
                        self.pipeline.metrics().inbox_deferred(&self.inbox.name, Some(what.clone()));
                        if deferrals().failed(name, crate::now_ms()) && stop.is_none() {
                            stop = Some(ChannelError::temporary(what));
                        }
                    }
                }
            }
            if let Some(e) = stop {
                return Err(e);
            }
        }
        Ok(n)
    }

    /// A file whose message is committed (or quarantined): moved to `cur/`, seen.
    fn done(&self, name: &str) -> Result<(), ChannelError> {
        let mut d = self.deferrals.lock().unwrap_or_else(|p| p.into_inner());
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
