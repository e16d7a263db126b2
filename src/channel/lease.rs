//! Inbox leases: with several instances on one PostgreSQL, each inbox is watched by exactly one
//! instance at a time. The holder renews its lease every third of the lease time; when it dies,
//! another instance takes the inbox over once the lease expires (within seconds).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{self, Store};

/// How long a lease lasts without renewal.
pub const LEASE_MS: i64 = 10_000;

#[derive(Debug, Clone)]
pub struct Lease {
    pub store: Store,
    pub inbox: String,
    pub holder: String,
}

impl Lease {
    async fn try_take(&self) -> Result<bool, store::StoreError> {
        let now = crate::now_ms();
        store::acquire_lease(self.store.pool(), &self.inbox, &self.holder, now, now + LEASE_MS).await
    }

    /// Waits until this instance holds the lease; false when cancelled first.
    pub async fn acquire(&self, cancel: &CancellationToken) -> bool {
        let mut waiting = false;
        loop {
            match self.try_take().await {
                Ok(true) => {
                    if waiting {
                        tracing::info!(inbox = %self.inbox, holder = %self.holder, "inbox lease taken over");
                    }
                    return true;
                }
                Ok(false) => {
                    if !waiting {
                        tracing::info!(inbox = %self.inbox, "inbox watched by another instance; standing by");
                    }
                    waiting = true;
                }
                Err(e) => tracing::warn!(inbox = %self.inbox, error = %e, "cannot take the inbox lease"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)) => {}
            }
        }
    }

    /// Renews the lease until it is lost (another instance holds it, or the store could not be
    /// reached for longer than the lease); then returns. Run it beside the inbox's work.
    pub async fn hold(&self) {
        let mut last_ok = crate::now_ms();
        loop {
            tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)).await;
            match self.try_take().await {
                Ok(true) => last_ok = crate::now_ms(),
                Ok(false) => {
                    tracing::warn!(inbox = %self.inbox, "inbox lease lost to another instance");
                    return;
                }
                Err(e) => {
                    tracing::warn!(inbox = %self.inbox, error = %e, "cannot renew the inbox lease");
                    if crate::now_ms() - last_ok > LEASE_MS * 2 / 3 {
                        return;
                    }
                }
            }
        }
    }

    pub async fn release(&self) {
        let _ = store::release_lease(self.store.pool(), &self.inbox, &self.holder).await;
    }
}

/// A polled intake's life (a Maildir, a Graph mailbox): while it holds the inbox's lease, one
/// `round` every `poll` — or, after a good round, as soon as `wake` is notified (a Maildir's new
/// file) —, backing off after an error (doubling up to 60 s), each round reported to the
/// metrics; the lease is released when `cancel` fires. `kind` names the intake in logs.
pub async fn poll_rounds<F, Fut>(
    lease: &Lease,
    pipeline: &crate::pipeline::Pipeline,
    kind: &str,
    poll: std::time::Duration,
    wake: Option<&tokio::sync::Notify>,
    cancel: &tokio_util::sync::CancellationToken,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, super::ChannelError>>,
{
    use std::time::Duration;
    let inbox = lease.inbox.as_str();
    let poll = poll.max(Duration::from_millis(10));
    let mut delay = poll;
    while !cancel.is_cancelled() {
        if !lease.acquire(cancel).await {
            break;
        }
        // After an error the backoff is waited out whatever arrives; after a good round, a wake
        // (new mail announced) ends the wait early.
        let woken = match round().await {
            Ok(_) => {
                delay = poll;
                pipeline.metrics().inbox_ok(inbox, crate::now_ms());
                wake
            }
            Err(e) => {
                pipeline.metrics().inbox_error(inbox, &e.to_string(), crate::now_ms());
                tracing::warn!(inbox, error = %e, retry_in_ms = delay.as_millis() as u64, "{kind} intake error");
                delay = (delay * 2).min(Duration::from_secs(60)).max(poll.min(Duration::from_secs(60)));
                None
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
            _ = async {
                match woken {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
    lease.release().await;
    tracing::info!(inbox, "{kind} intake stopped");
}
