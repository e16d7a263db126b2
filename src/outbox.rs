//! The outbox worker: the only code that sends (style rule 3). It claims due rows, hands them to
//! the transport, and records each attempt; failures are retried with exponential backoff until
//! `outbound.max_attempts`, permanent rejections (SMTP 5xx, a chat that blocked the bot) are not
//! retried. Chat rows go through the desk's Telegram or WhatsApp client. A dead SMTP server delays
//! replies, never loses them (invariant 3). Outbound webhooks are delivered by [`WebhookWorker`]
//! (`outbox/webhooks.rs`), head-of-line per subscription.

mod webhooks;

pub use webhooks::WebhookWorker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::channel::ChannelError;
use crate::channel::chat::ChatClients;
use crate::channel::transport::Transport;
use crate::config::OutboundConfig;
use crate::domain::Channel;
use crate::store::{self, Store};

/// Delay before retry number `attempt` (1-based): `initial * 2^(attempt-1)`, capped.
pub fn backoff(cfg: &OutboundConfig, attempt: u32) -> Duration {
    let secs = cfg.initial_backoff_secs.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    Duration::from_secs(secs.min(cfg.max_backoff_secs).max(1))
}

pub struct OutboxWorker {
    pub store: Store,
    pub transport: Transport,
    pub chat: ChatClients,
    pub cfg: OutboundConfig,
    pub wakeup: Arc<Notify>,
    pub worker_id: String,
}

impl OutboxWorker {
    /// The worker for `cfg`'s outbound settings (its transport built here), sending chat
    /// messages through `chat` and claiming rows as `worker_id`; `wakeup` is notified by commits.
    pub fn new(
        cfg: &OutboundConfig,
        store: Store,
        chat: ChatClients,
        wakeup: Arc<Notify>,
        worker_id: String,
    ) -> Result<Self, ChannelError> {
        let transport = Transport::from_config(cfg, &store)?;
        Ok(Self { store, transport, chat, cfg: cfg.clone(), wakeup, worker_id })
    }

    /// Delivers until `cancel` fires; the sends in flight are finished and recorded first.
    pub async fn run(self, cancel: CancellationToken) {
        Arc::new(self).run_shared(cancel).await
    }

    /// [`run`](Self::run) for a worker shared with its supervisor (restarted on a panic).
    pub(crate) async fn run_shared(self: Arc<Self>, cancel: CancellationToken) {
        let poll = Duration::from_millis(self.cfg.poll_interval_ms.max(10));
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            match self.deliver_all_due(&cancel).await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox: store error; retrying");
                }
            }
            let wait = if failures > 0 { poll * failures.min(30) } else { poll };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }

    /// Delivers until nothing is due and nothing is in flight (or `cancel` fires), keeping up to
    /// `outbound.concurrency` sends in flight all along: a finished send frees its slot for the
    /// next claim at once, so no send waits for a slower one of its round. Finished attempts are
    /// recorded together, one transaction for all that finished while the previous one committed
    /// (a group commit that grows with the load). Rows committed meanwhile are claimed when the
    /// pipeline's wake-up arrives. A crash repeats at most the sends in flight and the finished
    /// ones not yet recorded (SMTP is at-least-once; the Message-ID stays the same). Returns how
    /// many rows were attempted; a store error stops the claims, lets the sends in flight finish
    /// and be recorded, then is returned.
    pub async fn deliver_all_due(self: &Arc<Self>, cancel: &CancellationToken) -> Result<usize, store::StoreError> {
        let limit = self.cfg.concurrency.max(1);
        let mut sends = tokio::task::JoinSet::new();
        let mut attempted = 0;
        // `dry`: the last claim found fewer due rows than it asked for; claim again when the
        // pipeline commits more (its wake-up) or a send finishes (its conversation's next row,
        // held back by the claim, may go now), rather than polling.
        let mut dry = false;
        let mut failed: Option<store::StoreError> = None;
        loop {
            if !dry && failed.is_none() && !cancel.is_cancelled() && sends.len() < limit {
                let room = limit - sends.len();
                match self.claim(room).await {
                    Ok(items) => {
                        dry = items.len() < room;
                        attempted += items.len();
                        for item in items {
                            let me = self.clone();
                            sends.spawn(async move { me.deliver(item).await });
                        }
                    }
                    Err(e) => failed = Some(e),
                }
            }
            if sends.is_empty() {
                // Nothing in flight after a claim (or none was allowed): nothing more can be
                // claimed now.
                break;
            }
            let mut finished = Vec::new();
            tokio::select! {
                joined = sends.join_next() => finished.extend(joined.and_then(outcome_of)),
                _ = self.wakeup.notified(), if dry => dry = false,
            }
            while let Some(joined) = sends.try_join_next() {
                finished.extend(outcome_of(joined));
            }
            if !finished.is_empty() {
                // A finished send frees its conversation: the row queued after it may be claimed.
                dry = false;
            }
            // (Nothing is written when only the wake-up came.)
            if let Err(e) = self.record(finished).await {
                // These rows stay leased and become due again when the lease runs out.
                tracing::warn!(error = %e, "outbox: attempts not recorded; their rows are retried after the lease");
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(attempted),
        }
    }

    /// Records finished attempts in one transaction (none: nothing is written).
    async fn record(&self, outcomes: Vec<(i64, store::AttemptOutcome)>) -> Result<(), store::StoreError> {
        store::record_attempts(self.store.pool(), self.store.backend(), crate::now_ms(), outcomes).await
    }

    /// Claims up to `limit` due rows with a lease that covers one SMTP conversation (a row whose
    /// worker died becomes due again soon after), then puts back those over their sender's rate.
    async fn claim(&self, limit: usize) -> Result<Vec<store::OutboxItem>, store::StoreError> {
        let now = crate::now_ms();
        let timeout = self.cfg.smtp.as_ref().map(|s| s.timeout_secs).unwrap_or(30) as i64;
        let lease = now + (timeout + 5) * 1000;
        let mut items = store::claim_outbox(&self.store, &self.worker_id, now, lease, limit as i64).await?;
        if let Some(per_minute) = self.cfg.sender_per_minute {
            items = self.within_rate(per_minute, items, now).await?;
        }
        Ok(items)
    }

    /// One round: claims up to `outbound.concurrency` due messages, delivers them at once, and
    /// records the round's attempts in one transaction; returns how many were attempted. The
    /// daemon keeps sends in flight continuously instead ([`deliver_all_due`](Self::deliver_all_due));
    /// a round is what a test steps through.
    pub async fn deliver_due(&self) -> Result<usize, store::StoreError> {
        let items = self.claim(self.cfg.concurrency.max(1)).await?;
        let n = items.len();
        let outcomes = futures::future::join_all(items.into_iter().map(|item| self.deliver(item))).await;
        self.record(outcomes).await?;
        Ok(n)
    }

    /// The claimed rows whose sender's minute has room (`outbound.sender_per_minute`); the others
    /// are put back to wait, without an attempt counted. Chat rows are not limited here.
    async fn within_rate(
        &self,
        per_minute: u32,
        items: Vec<store::OutboxItem>,
        now: i64,
    ) -> Result<Vec<store::OutboxItem>, store::StoreError> {
        let email = |i: &store::OutboxItem| Channel::parse(&i.channel) == Some(Channel::Email);
        let claimed: Vec<(i64, String)> = items.iter().filter(|i| email(i)).map(|i| (i.id, i.sender.clone())).collect();
        if claimed.is_empty() {
            return Ok(items);
        }
        let senders: Vec<&str> = claimed.iter().map(|(_, s)| s.as_str()).collect();
        let sent = store::sends_since(self.store.pool(), now - crate::send_rate::WINDOW_MS, &senders).await?;
        let admission = crate::send_rate::admit(per_minute, now, &sent, &claimed);
        if admission.held.is_empty() {
            return Ok(items);
        }
        tracing::info!(held = admission.held.len(), per_minute, "outbox: sender's rate reached; messages wait");
        store::hold_outbox(self.store.pool(), &admission.held).await?;
        let held: std::collections::HashSet<i64> = admission.held.iter().map(|&(id, _)| id).collect();
        Ok(items.into_iter().filter(|i| !held.contains(&i.id)).collect())
    }

    /// The bytes of the file a chat row sends, read from the store (None: a text row).
    async fn chat_file(&self, payload: Option<&str>) -> Result<Option<Vec<u8>>, ChannelError> {
        let p: Option<crate::chat::OutChat> = payload.and_then(|p| serde_json::from_str(p).ok());
        let Some(file) = p.and_then(|p| p.file) else { return Ok(None) };
        let mut conn = self.store.pool().acquire().await.map_err(|e| ChannelError::temporary(format!("store: {e}")))?;
        match store::attachment_bytes(&mut conn, self.store.files(), file.attachment).await {
            Ok(Some(bytes)) => Ok(Some(bytes)),
            Ok(None) => Err(ChannelError::permanent(format!("file {} is no longer stored", file.attachment))),
            Err(e) => Err(ChannelError::temporary(format!("store: {e}"))),
        }
    }

    /// Sends one claimed row; its outcome is recorded with the round's.
    async fn deliver(&self, item: store::OutboxItem) -> (i64, store::AttemptOutcome) {
        let name = format!("{}-{}", item.desk, item.id);
        let result = match Channel::parse(&item.channel) {
            Some(Channel::Email) => self.transport.send(&name, &item.sender, &item.recipients, &item.raw).await,
            Some(chat) => match self.chat_file(item.payload.as_deref()).await {
                Ok(file) => match self.chat.send(&item.desk, chat, item.payload.as_deref(), file.as_deref()).await {
                    // The platform's id of the message, which its status callbacks name.
                    Ok(Some(platform_id)) => {
                        // It was sent: failing to keep the id must not make it go again.
                        if let Err(e) = store::set_outbox_platform_id(self.store.pool(), item.id, &platform_id).await {
                            tracing::warn!(outbox = item.id, error = %e, "platform message id not stored");
                        }
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            None => Err(ChannelError::permanent(format!("unknown channel `{}`", item.channel))),
        };
        let now = crate::now_ms();
        let attempt = item.attempts as u32 + 1;
        let outcome = match result {
            Ok(()) => {
                tracing::info!(outbox = item.id, desk = %item.desk, attempt, "delivered");
                Ok(())
            }
            Err(e) if !e.is_temporary() || attempt >= self.cfg.max_attempts => {
                tracing::error!(outbox = item.id, desk = %item.desk, attempt, error = %e, "delivery failed for good");
                Err((e.to_string(), None))
            }
            Err(e) => {
                let delay = backoff(&self.cfg, attempt);
                tracing::warn!(outbox = item.id, desk = %item.desk, attempt, retry_in_s = delay.as_secs(), error = %e, "delivery failed; will retry");
                Err((e.to_string(), Some(now + delay.as_millis() as i64)))
            }
        };
        (item.id, outcome)
    }
}

/// A finished send's outcome; a send that panicked leaves its row leased (retried after the
/// lease, like a crash).
fn outcome_of(
    joined: Result<(i64, store::AttemptOutcome), tokio::task::JoinError>,
) -> Option<(i64, store::AttemptOutcome)> {
    joined.map_err(|e| tracing::error!(error = %e, "outbox: a send did not finish")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cfg = OutboundConfig { initial_backoff_secs: 2, max_backoff_secs: 60, ..OutboundConfig::default() };
        let d: Vec<u64> = (1..=8).map(|a| backoff(&cfg, a).as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(&cfg, 200).as_secs(), 60);
    }
}
