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

/// The longest a finished send waits to be recorded while others are in flight (see
/// [`OutboxWorker::deliver_all_due`]).
pub const RECORD_WITHIN: Duration = Duration::from_millis(10);

/// A claim takes up to this many rounds of `outbound.concurrency` sends (see
/// [`OutboxWorker::deliver_all_due`]).
pub const CLAIM_ROUNDS: usize = 8;

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
    /// `outbound.concurrency` sends in flight all along. Returns how many rows were attempted; a
    /// store error stops the claims, lets the sends in flight finish and be recorded, then is
    /// returned.
    ///
    /// One commit serves many sends (a group commit). The attempts that finished are recorded in
    /// the transaction that claims the next rows ([`store::record_and_claim`]), and a claim takes
    /// up to [`CLAIM_ROUNDS`] rounds' worth of rows, kept here and started as slots free: the
    /// worker commits when half of that is used up, not once for every send, and the
    /// transaction runs beside the sends. While the pipeline writes a burst, each of its batches
    /// holds the store's write lock and the worker gets a transaction in between; with claims as
    /// large as its slots, each waited for on the worker's path, it sent about 200 mails a second
    /// then, a fifth of what the pipeline queued. Nothing waits long for it: the worker
    /// claims at once when it has nothing to send or the pipeline has committed new rows, and
    /// records a finished send within [`RECORD_WITHIN`], or with the transaction after the one
    /// under way (the next mail of its conversation waits for that record). A claim's rows are
    /// leased for one SMTP conversation (the timeout and 5 s), as one send's are, and a row
    /// whose lease would run out before its send could end is not started (it becomes due
    /// again): the rows held wait at most the 5 s margin. Rows claimed and not started when the
    /// worker stops are given back. A crash repeats at most the sends in flight and the finished
    /// ones not yet recorded (SMTP is at-least-once; the Message-ID stays the same), as many as
    /// `concurrency`; the rows it had claimed are due again for the others when their leases
    /// run out.
    pub async fn deliver_all_due(self: &Arc<Self>, cancel: &CancellationToken) -> Result<usize, store::StoreError> {
        let limit = self.cfg.concurrency.max(1);
        let mut sends = tokio::task::JoinSet::new();
        // Claimed rows not yet started, each with the end of its lease.
        let mut queue: std::collections::VecDeque<(store::OutboxItem, i64)> = Default::default();
        let mut attempted = 0;
        // `dry`: the last claim found fewer due rows than it asked for; claim again when the
        // pipeline commits more (its wake-up) or a send finishes (its conversation's next row,
        // held back by the claim, may go once it is recorded), rather than polling.
        let mut dry = false;
        // `woken`: the pipeline committed rows since the last claim.
        let mut woken = false;
        let mut failed: Option<store::StoreError> = None;
        // Finished sends not yet recorded, and when the first of them finished.
        let mut finished: Vec<(i64, store::AttemptOutcome)> = Vec::new();
        let mut since: Option<tokio::time::Instant> = None;
        let send_ms = self.send_ms();
        // The transaction under way (recording, and claiming too for a [`Claimed`]): it runs
        // beside the sends, so they go on from `queue` while it waits for the store's write lock.
        let mut tx: Option<tokio::task::JoinHandle<Committed>> = None;
        loop {
            while sends.len() < limit && !cancel.is_cancelled() {
                let Some((item, lease_until)) = queue.pop_front() else { break };
                if lease_until - crate::now_ms() < send_ms {
                    tracing::warn!(
                        outbox = item.id,
                        "outbox: a claimed row waited past its lease; it becomes due again"
                    );
                    continue;
                }
                attempted += 1;
                let me = self.clone();
                sends.spawn(async move { me.deliver(item).await });
            }
            let idle = sends.is_empty() && (queue.is_empty() || cancel.is_cancelled());
            if tx.is_none() {
                let slots = Slots {
                    limit,
                    in_flight: sends.len(),
                    queued: queue.len(),
                    finished: finished.len(),
                    may_claim: !dry && failed.is_none() && !cancel.is_cancelled(),
                    due: idle || woken || since.is_some_and(|t| t.elapsed() >= RECORD_WITHIN),
                };
                let (me, done) = (self.clone(), std::mem::take(&mut finished));
                match slots.next() {
                    Next::ClaimAndRecord => {
                        let room = slots.room();
                        tx = Some(tokio::spawn(async move {
                            let (items, lease_until) = me.record_and_claim(room, done).await?;
                            Ok(Some(Claimed { asked: room, items, lease_until }))
                        }));
                        (since, woken) = (None, false);
                    }
                    Next::Record => {
                        tx = Some(tokio::spawn(async move { me.record(done).await.map(|()| None) }));
                        since = None;
                    }
                    Next::Wait => finished = done,
                }
            }
            if idle && tx.is_none() && finished.is_empty() {
                // Nothing in flight or claimed, everything recorded: nothing more can be done
                // now. Rows claimed and not started (when cancelled) are given back, due again
                // at once for the next worker.
                let ids: Vec<i64> = queue.drain(..).map(|(item, _)| item.id).collect();
                if let Err(e) = store::release_outbox(self.store.pool(), &self.worker_id, &ids).await {
                    tracing::warn!(error = %e, rows = ids.len(), "outbox: claimed rows not given back; they are due again after their lease");
                    failed.get_or_insert(e);
                }
                break;
            }
            let record_at = record_deadline(since, tx.is_some());
            tokio::select! {
                joined = sends.join_next(), if !sends.is_empty() => finished.extend(joined.and_then(outcome_of)),
                committed = async { tx.as_mut().expect("a transaction under way").await }, if tx.is_some() => {
                    tx = None;
                    // A transaction that panicked is one that failed: nothing of it was committed.
                    let committed = committed.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "outbox: a transaction did not finish");
                        Err(store::StoreError::Sql(sqlx::Error::WorkerCrashed))
                    });
                    match committed {
                        Ok(Some(Claimed { asked, items, lease_until })) => {
                            dry = items.len() < asked;
                            queue.extend(items.into_iter().map(|i| (i, lease_until)));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox: attempts not recorded; their rows are retried after the lease");
                            failed.get_or_insert(e);
                        }
                    }
                }
                _ = self.wakeup.notified(), if dry => (dry, woken) = (false, true),
                _ = tokio::time::sleep_until(record_at.unwrap_or_else(tokio::time::Instant::now)), if record_at.is_some() => {}
            }
            while let Some(joined) = sends.try_join_next() {
                finished.extend(outcome_of(joined));
            }
            if !finished.is_empty() {
                // A finished send frees its conversation once recorded: the row queued after it
                // may be claimed in the same transaction.
                dry = false;
                since.get_or_insert_with(tokio::time::Instant::now);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(attempted),
        }
    }

    /// Records `finished` and claims up to `limit` due rows in one transaction, then puts back
    /// those over their sender's rate; the rows and the end of their lease: one SMTP
    /// conversation, as for one send, so that the rows of a worker that dies are soon due again
    /// for the others (a row held past its margin is not started: see the caller).
    async fn record_and_claim(
        &self,
        limit: usize,
        finished: Vec<(i64, store::AttemptOutcome)>,
    ) -> Result<(Vec<store::OutboxItem>, i64), store::StoreError> {
        let now = crate::now_ms();
        let lease = now + self.conversation_ms();
        let items = store::record_and_claim(&self.store, &self.worker_id, now, lease, limit as i64, finished).await?;
        Ok((self.rated(items, now).await?, lease))
    }

    /// Records finished attempts in one transaction (none: nothing is written).
    async fn record(&self, outcomes: Vec<(i64, store::AttemptOutcome)>) -> Result<(), store::StoreError> {
        store::record_attempts(self.store.pool(), self.store.backend(), crate::now_ms(), outcomes).await
    }

    /// Claims up to `limit` due rows, nothing to record ([`Self::record_and_claim`]).
    async fn claim(&self, limit: usize) -> Result<Vec<store::OutboxItem>, store::StoreError> {
        Ok(self.record_and_claim(limit, Vec::new()).await?.0)
    }

    /// A lease's length for one send, in milliseconds: [`Self::send_ms`] and a margin for the
    /// time between the claim and the send's start.
    fn conversation_ms(&self) -> i64 {
        self.send_ms() + 5_000
    }

    /// The longest one send may take, in milliseconds: the SMTP timeout.
    fn send_ms(&self) -> i64 {
        self.cfg.smtp.as_ref().map(|s| s.timeout_secs).unwrap_or(30) as i64 * 1000
    }

    /// The claimed `items` within their senders' rate, where one is set.
    async fn rated(
        &self,
        items: Vec<store::OutboxItem>,
        now: i64,
    ) -> Result<Vec<store::OutboxItem>, store::StoreError> {
        match self.cfg.sender_per_minute {
            Some(per_minute) => self.within_rate(per_minute, items, now).await,
            None => Ok(items),
        }
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
    async fn deliver(&self, mut item: store::OutboxItem) -> (i64, store::AttemptOutcome) {
        let name = format!("{}-{}", item.desk, item.id);
        let result = match Channel::parse(&item.channel) {
            Some(Channel::Email) => match store::outbox_bytes(&self.store, &mut item).await {
                Ok(()) => self.transport.send(&name, &item.sender, &item.recipients, &item.raw).await,
                Err(e) => Err(ChannelError::temporary(format!("store: {e}"))),
            },
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

/// What one of the outbox worker's transactions came to: `None` when it only recorded.
type Committed = Result<Option<Claimed>, store::StoreError>;

/// The rows a claim took (of `asked`), with the end of their lease.
struct Claimed {
    asked: usize,
    items: Vec<store::OutboxItem>,
    lease_until: i64,
}

/// The outbox worker's slots at one moment, for [`Slots::next`].
#[derive(Debug, Clone, Copy)]
struct Slots {
    /// `outbound.concurrency`: sends at once.
    limit: usize,
    /// Sends under way.
    in_flight: usize,
    /// Rows claimed and not yet started.
    queued: usize,
    /// Sends finished and not yet recorded.
    finished: usize,
    /// Due rows may be claimed: the last claim found all it asked for, or since then a send
    /// finished or the pipeline committed rows; no store error; not cancelled.
    may_claim: bool,
    /// Nothing to wait for: nothing is in flight or claimed, the pipeline committed rows, or the
    /// first finished send has waited [`RECORD_WITHIN`].
    due: bool,
}

/// What the worker does next: one transaction that records and claims, one that only records,
/// or wait for a send to finish (or the wake-up, or [`RECORD_WITHIN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    ClaimAndRecord,
    Record,
    Wait,
}

impl Slots {
    /// The rows the worker may hold, claimed or in flight: [`CLAIM_ROUNDS`] rounds' worth.
    fn capacity(self) -> usize {
        self.limit * CLAIM_ROUNDS
    }

    /// How many rows a claim now may take.
    fn room(self) -> usize {
        self.capacity().saturating_sub(self.in_flight + self.queued)
    }

    /// The group commit's rule: a transaction when half of what the worker may hold is used up,
    /// or when waiting would only delay; finished sends are recorded with the next claim, or,
    /// when there is nothing to claim, once half the slots' worth of them waits. Otherwise wait,
    /// so that one commit serves many sends.
    fn next(self) -> Next {
        let room = self.room();
        let can_claim = self.may_claim && room > 0;
        if can_claim && (self.due || room * 2 >= self.capacity()) {
            Next::ClaimAndRecord
        } else if !can_claim && self.finished > 0 && (self.due || self.finished * 2 >= self.limit) {
            Next::Record
        } else {
            Next::Wait
        }
    }
}

/// When the worker wakes to record the sends that finished, the first of them at `first`:
/// [`RECORD_WITHIN`] later, and never while a transaction is under way (`under_way`), whose end
/// wakes it anyway: a deadline already past would spin the worker's loop until that end.
fn record_deadline(first: Option<tokio::time::Instant>, under_way: bool) -> Option<tokio::time::Instant> {
    first.filter(|_| !under_way).map(|t| t + RECORD_WITHIN)
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

    /// The worker's loop waits for the transaction under way, not for a deadline: with one long
    /// past (the transaction waiting for the store's write lock behind a pipeline batch) the loop
    /// spun until the commit, a tenth of the daemon's CPU in a burst.
    #[test]
    fn a_transaction_under_way_sets_no_deadline_to_record() {
        let first = tokio::time::Instant::now();
        assert_eq!(record_deadline(Some(first), false), Some(first + RECORD_WITHIN));
        assert_eq!(record_deadline(Some(first), true), None, "the transaction's end wakes the worker");
        assert_eq!(record_deadline(None, false), None, "nothing finished, nothing to record");
    }

    #[test]
    fn one_commit_serves_many_sends_and_nothing_waits_on_it_for_long() {
        use Next::*;
        let slots = |limit| {
            move |in_flight, queued, finished, may_claim, due| {
                Slots { limit, in_flight, queued, finished, may_claim, due }.next()
            }
        };
        // 16 slots: the worker holds up to 128 rows, claimed or in flight.
        let at = slots(16);
        assert_eq!(Slots { limit: 16, in_flight: 16, queued: 40, finished: 0, may_claim: true, due: false }.room(), 72);
        // A burst: the first claim takes all it may; sends that finish wait to be recorded with
        // the next claim, which comes when half of what the worker holds is used up.
        assert_eq!(at(0, 0, 0, true, true), ClaimAndRecord);
        assert_eq!(at(16, 111, 1, true, false), Wait);
        assert_eq!(at(16, 49, 63, true, false), Wait);
        assert_eq!(at(16, 48, 64, true, false), ClaimAndRecord);
        // Or when the first of them has waited long enough, or new rows are committed.
        assert_eq!(at(16, 111, 1, true, true), ClaimAndRecord);
        // Nothing in flight or claimed (`due`): whatever finished is recorded and more claimed.
        assert_eq!(at(0, 0, 3, true, true), ClaimAndRecord);
        // Nothing more to claim (or a store error, or cancelled): records alone, when half the
        // slots' worth has finished or waiting would only delay. While claims may come, finished
        // sends wait for the next.
        assert_eq!(at(16, 100, 15, true, false), Wait);
        assert_eq!(at(15, 0, 1, false, false), Wait);
        assert_eq!(at(8, 0, 8, false, false), Record);
        assert_eq!(at(3, 0, 1, false, true), Record);
        assert_eq!(at(0, 0, 0, false, true), Wait);
        // Holding all it may: nothing to claim; finished sends are recorded by the same rule.
        assert_eq!(at(16, 112, 0, true, true), Wait);
        assert_eq!(at(16, 112, 8, true, false), Record);
        // One slot: eight rows at a time.
        let one = slots(1);
        assert_eq!(one(0, 0, 1, true, true), ClaimAndRecord);
        assert_eq!(one(1, 4, 0, true, false), Wait);
        assert_eq!(one(1, 3, 0, true, false), ClaimAndRecord);
        assert_eq!(one(0, 0, 1, false, true), Record);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cfg = OutboundConfig { initial_backoff_secs: 2, max_backoff_secs: 60, ..OutboundConfig::default() };
        let d: Vec<u64> = (1..=8).map(|a| backoff(&cfg, a).as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(&cfg, 200).as_secs(), 60);
    }
}
