//! What happens to one inbound message: parse → dedupe → loop guard → thread → route → apply, in
//! one store transaction. Every outbound message a change causes (acknowledgement, relayed agent
//! reply, notifications) is written to the outbox in that same transaction (invariant 3); the
//! caller tells its source "done" only after [`Pipeline::process`] returned Ok (invariant 1).

pub use clocks::TickReport;
mod ahead;
pub mod api;
mod behind;
pub mod chat;
mod chat_status;
mod clocks;
mod conversation;
mod corrections;
mod operator;
mod outgoing;
mod prefetch;
mod quarantine;
pub use quarantine::QuarantineError;
mod seed;
mod webhooks;

use std::sync::Arc;

use chrono::DateTime;
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::config::{Config, Desk, InboxConfig};
use crate::domain::{Channel, Direction, EmailAddress, Impact, Language, PendingReason, TicketStatus, TicketType};
use crate::mail::loopguard::MailKind;
use crate::mail::parse::ParsedMail;
use crate::mail::{attachments, compose, hygiene, loopguard, parse};
use crate::routing::RouteDecision;
use crate::store::{self, Store, StoreError, Ticket};
use crate::templates::{RefusedCtx, TemplateError, Templates, When};
use crate::ticket::TicketNumber;
use crate::ticket::reading;
use crate::ticket::thread::ThreadKeys;
use outgoing::{Known, OutMail};

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Appended,
    Duplicate,
    Ignored,
    Quarantined,
    /// A chat command or guided-flow step that opened or changed no ticket.
    Command,
    /// Recorded with its bytes but attached to no ticket (a flood past every limit).
    Held,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Appended => "appended",
            Action::Duplicate => "duplicate",
            Action::Ignored => "ignored",
            Action::Quarantined => "quarantined",
            Action::Command => "command",
            Action::Held => "held",
        }
    }
}

/// The answer for one message (also the JSON line `loket ingest` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub ticket: Option<TicketNumber>,
    pub action: Action,
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("unknown inbox `{0}`")]
    UnknownInbox(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("template: {0}")]
    Template(#[from] TemplateError),
    #[error("cannot build outbound mail: {0}")]
    Compose(#[from] compose::ComposeError),
    #[error("inbox `{0}` has an invalid address")]
    InboxAddress(String),
    /// Composing a mail behind the writer failed ([`behind`]); `temporary` when the composing
    /// task itself ended (the runtime shutting down), not the mail.
    #[error("composing a mail behind the writer: {reason}")]
    Behind { reason: String, temporary: bool },
}

impl PipelineError {
    /// Whether trying again later may succeed (the store was unavailable, busy or full). Anything
    /// else is a property of the message (or a bug) that retrying would only repeat.
    pub fn is_temporary(&self) -> bool {
        match self {
            PipelineError::Store(e) => e.is_temporary(),
            PipelineError::Behind { temporary, .. } => *temporary,
            _ => false,
        }
    }
}

/// The message pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    config: Arc<Config>,
    templates: Arc<Templates>,
    outbox_wakeup: Arc<Notify>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Test builds only: with `LOKET_TEST_HOLD_BATCH=before:PATH` (or `after:PATH`) a batch of more
/// than one message writes its size to PATH just before (after) its commit and waits there, for
/// the suite to kill the process at exactly that point.
#[cfg(feature = "server-tests")]
async fn hold_for_a_kill(when: &str, size: usize) {
    let Ok(spec) = std::env::var("LOKET_TEST_HOLD_BATCH") else { return };
    let Some(path) = spec.strip_prefix(when).and_then(|p| p.strip_prefix(':')) else { return };
    if size < 2 || std::fs::write(path, size.to_string()).is_err() {
        return;
    }
    tracing::warn!(when, size, "test hold: waiting to be killed at the batch commit");
    std::future::pending::<()>().await;
}

/// One message of an intake batch: its bytes and when it arrived (ms).
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub raw: &'a [u8],
    pub now: i64,
}

/// Where and when a message is handled.
pub(crate) struct Here<'a> {
    pub desk: &'a Desk,
    pub inbox: &'a InboxConfig,
    pub inbox_addr: EmailAddress,
    pub now: i64,
    pub local_now: DateTime<Tz>,
    /// The channel the message came through (audit events name it).
    pub channel: Channel,
    /// The requester's chosen language, when they chose one (chat `/bahasa`).
    pub lang: Option<Language>,
    /// Why this message gets no acknowledgement although a person wrote it (`mail::hygiene`:
    /// spam, DMARC failure, before the inbox's cut-off).
    pub no_ack: Option<String>,
    /// The files of the chat update being handled, by attachment index (their bytes are kept
    /// with the attachment rows); empty for mail, whose raw form keeps them.
    pub chat_files: &'a [crate::chat::ChatFile],
    /// The route made ahead for the mail being handled ([`ahead`]); `create` uses it only for
    /// that very mail.
    pub routed_ahead: Option<(&'a ParsedMail, &'a RouteDecision)>,
    /// Where a batch's outbound mails are composed behind the writer ([`behind`]); `None`:
    /// composed in place.
    pub behind: Option<&'a behind::Behind>,
    /// The sender's load, read with the duplicate check (one round trip), for the address it was
    /// read for; `create` uses it only for a requester of that address.
    pub sender_load: Option<(&'a str, store::SenderLoad)>,
}

/// How a new ticket relates to an existing one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link<'a> {
    /// The requester (or a participant) wrote again after the ticket closed or its reopen
    /// window passed: the new ticket continues it, and the acknowledgement says so.
    FollowUp(&'a Ticket),
    /// Someone who is not a party to the ticket pointed at it (by tag or references): the
    /// agents see the link; the sender is told nothing about that ticket.
    Mentioned(&'a Ticket),
}

impl<'a> Link<'a> {
    fn ticket(self) -> &'a Ticket {
        match self {
            Link::FollowUp(t) | Link::Mentioned(t) => t,
        }
    }
}

/// The policy's verdict on a mail's attachments.
pub(crate) struct AttachmentVerdicts {
    pub refusals: Vec<Option<attachments::Refusal>>,
    pub accepted: usize,
    pub refused: Vec<RefusedCtx>,
}

impl Pipeline {
    pub fn new(store: Store, config: Arc<Config>, templates: Arc<Templates>, outbox_wakeup: Arc<Notify>) -> Self {
        Self { store, config, templates, outbox_wakeup, metrics: Arc::default() }
    }

    /// Counters and inbox health for `/metrics` and `/healthz`.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn shared_config(&self) -> Arc<Config> {
        self.config.clone()
    }

    /// Processes one raw message that arrived at `inbox` at `now` (ms): a batch of one.
    pub async fn process(&self, inbox: &str, raw: &[u8], now: i64) -> Result<Outcome, PipelineError> {
        let mut out = self.process_batch(inbox, &[Incoming { raw, now }]).await;
        out.pop().unwrap_or_else(|| Err(PipelineError::UnknownInbox(inbox.into())))
    }

    /// Processes the messages of one intake round (an IMAP fetch, a Maildir scan) in one store
    /// transaction — one durable commit for all of them —; a message that cannot be processed is
    /// quarantined in it while the others commit ([`Pipeline::commit_batch`]). Returns one result
    /// per message, in order; the source may call a message done only when its result is `Ok`
    /// (the batch committed). When the store fails temporarily, the batch
    /// is rolled back and each message is tried again alone, so that one message that keeps
    /// failing holds up only itself.
    pub async fn process_batch(&self, inbox: &str, batch: &[Incoming<'_>]) -> Vec<Result<Outcome, PipelineError>> {
        let Some((desk, ib)) = self.config.inbox(inbox) else {
            return batch.iter().map(|_| Err(PipelineError::UnknownInbox(inbox.into()))).collect();
        };
        match self.commit_batch(desk, ib, batch).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) if batch.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(desk = %desk.id, inbox = %ib.name, size = batch.len(), error = %e, "batch rolled back; its messages are tried one by one");
                let mut out = Vec::with_capacity(batch.len());
                for m in batch {
                    out.push(self.commit_batch(desk, ib, std::slice::from_ref(m)).await.map(|mut o| o.remove(0)));
                }
                out
            }
        }
    }

    /// [`Pipeline::process_batch`]'s one attempt: all of `batch` committed, or an error and
    /// nothing written. The batch runs without a savepoint per message (a round trip each, on
    /// PostgreSQL): a message that fails permanently rolls the whole transaction back, and the
    /// batch runs again with that message quarantined in it instead of processed (a unique
    /// constraint broken by another instance's copy first runs again as it is, and is then found
    /// as the duplicate it is). After [`BATCH_RUNS`] runs the error goes to `process_batch`,
    /// which takes the messages one by one.
    async fn commit_batch(
        &self,
        desk: &Desk,
        ib: &InboxConfig,
        batch: &[Incoming<'_>],
    ) -> Result<Vec<Outcome>, PipelineError> {
        if let [m] = batch {
            return self.commit_one(desk, ib, m).await.map(|o| vec![o]);
        }
        let mut poisoned: Vec<Option<String>> = vec![None; batch.len()];
        let mut raced = vec![false; batch.len()];
        // Parsing and routing run ahead of the writer, on the blocking pool.
        let raws = batch.iter().map(|m| m.raw);
        let mut ahead = ahead::Ahead::start(self.config.clone(), &ib.name, raws, ahead::AHEAD_BYTES);
        let mut runs = 0;
        loop {
            runs += 1;
            match self.run_batch(desk, ib, batch, &poisoned, &mut ahead).await? {
                Run::Committed(outcomes) => return Ok(outcomes),
                Run::Failed(_, e) if runs == BATCH_RUNS => return Err(e),
                Run::Failed(index, e) => {
                    if !run_again(&e, &mut raced[index]) {
                        poisoned[index] = Some(self.poisoned(desk, ib, &e));
                    }
                }
            }
        }
    }

    /// One run of [`Pipeline::commit_batch`]; an `Err` is a temporary error (rolled back).
    /// Messages `poisoned` are quarantined with their reason instead of processed.
    async fn run_batch(
        &self,
        desk: &Desk,
        ib: &InboxConfig,
        batch: &[Incoming<'_>],
        poisoned: &[Option<String>],
        ahead: &mut ahead::Ahead,
    ) -> Result<Run, PipelineError> {
        let mut tx = self.store.begin().await?;
        let mut done = Vec::with_capacity(batch.len());
        let behind = behind::Behind::new(behind::BEHIND_BYTES);
        let mut known = prefetch::Prefetched::default();
        for (i, m) in batch.iter().enumerate() {
            // The duplicate checks (and new requests' loads) of this message and the ones prepared
            // after it, read at once when this one's is not known.
            let since = m.now - HOUR_MS;
            let (key_unknown, load_unknown) = match ahead.get(i, |j| batch[j].raw).await {
                ahead::Prepared { mail: Ok(mail), key: Some(key), .. } if poisoned[i].is_none() => {
                    let requester = mail.requester().filter(|_| ahead::looks_new(desk, mail));
                    (!known.has_key(key), requester.is_some_and(|r| known.load(r.address.as_str(), since).is_none()))
                }
                _ => (false, false),
            };
            if key_unknown || load_unknown {
                let window = prefetch::window(desk, batch, poisoned, i, ahead.ready());
                let loads = store::sender_loads(&mut tx, &desk.id, &window.requesters, since).await?;
                if key_unknown {
                    let stored = store::stored_keys(&mut tx, &desk.id, &window.keys).await?;
                    known = prefetch::Prefetched::read(window.keys.iter().map(|k| k.to_string()), stored, loads, since);
                } else {
                    known.reload(loads, since);
                }
            }
            let prepared = ahead.get(i, |j| batch[j].raw).await;
            behind.at(i);
            let (outcome, kind, delay) = match (&prepared.mail, &poisoned[i]) {
                (Err(e), _) => (
                    self.quarantine_in(&mut tx, desk, ib, m.raw, m.raw.len(), &e.to_string(), m.now).await?,
                    None,
                    None,
                ),
                (Ok(mail), poison) => {
                    let applied = match poison {
                        Some(reason) => self.quarantine_in(&mut tx, desk, ib, m.raw, m.raw.len(), reason, m.now).await,
                        None => {
                            let route = prepared.route.as_ref();
                            let in_batch = Some((&behind, &known));
                            self.apply(&mut tx, desk, ib, m.raw, mail, route, in_batch, m.now, false).await
                        }
                    };
                    if let Some(key) = &prepared.key {
                        // A poisoned message writes only its quarantined copy: no one's load.
                        let new_request = poison.is_some() || ahead::looks_new(desk, mail);
                        let addresses = mail.from.iter().chain(&mail.reply_to).map(|a| a.address.as_str());
                        known.wrote(key, addresses, new_request);
                    }
                    match applied {
                        Ok(outcome) => (
                            outcome,
                            Some(loopguard::classify(mail, &desk.own_addresses)),
                            mail.date_ms.map(|d| m.now - d),
                        ),
                        Err(e) if e.is_temporary() || poison.is_some() => return Err(e),
                        Err(e) => {
                            tx.rollback().await.map_err(StoreError::from)?;
                            return Ok(Run::Failed(i, e));
                        }
                    }
                }
            };
            if outcome.action == Action::Quarantined {
                // Its quarantined copy is keyed from its header alone, which may differ.
                let sniffed = parse::idempotency_key(parse::sniff_message_id(m.raw).as_deref(), m.raw);
                known.wrote(&sniffed, [], true);
            }
            done.push((outcome, kind, delay));
        }
        match behind.finish().await {
            Ok(finished) => {
                store::set_composed_raw(&mut tx, self.store.files(), &finished.composed).await?;
                store::insert_outbox(&mut tx, &finished.outbox).await?;
                store::insert_event_rows(&mut tx, &finished.events).await?;
                store::sla::insert_clocks(&mut tx, &finished.clocks).await?;
                for (desk, year, last) in &finished.counters {
                    store::set_ticket_seq(&mut tx, desk, *year, *last).await?;
                }
            }
            Err((_, e)) if e.is_temporary() => return Err(e),
            Err((i, e)) => {
                tx.rollback().await.map_err(StoreError::from)?;
                return Ok(Run::Failed(i, e));
            }
        }
        #[cfg(feature = "server-tests")]
        hold_for_a_kill("before", batch.len()).await;
        self.store.commit(tx).await?;
        #[cfg(feature = "server-tests")]
        hold_for_a_kill("after", batch.len()).await;
        self.store.committed_messages(batch.len());
        self.outbox_wakeup.notify_one();
        Ok(Run::Committed(
            done.into_iter().map(|(outcome, kind, delay)| self.processed(desk, ib, outcome, kind, delay)).collect(),
        ))
    }

    /// A batch of one, as a quiet inbox delivers it.
    async fn commit_one(&self, desk: &Desk, ib: &InboxConfig, m: &Incoming<'_>) -> Result<Outcome, PipelineError> {
        let prepared = ahead::Prepared::in_place(m.raw);
        let mail = match &prepared.mail {
            Err(e) => return self.quarantine(desk, ib, m.raw, m.raw.len(), &e.to_string(), m.now).await,
            Ok(mail) => mail,
        };
        let (outcome, applied) = self.apply_or_quarantine(desk, ib, m, mail, prepared.route.as_ref()).await?;
        if !applied {
            return Ok(outcome);
        }
        self.store.committed_messages(1);
        self.outbox_wakeup.notify_one();
        let kind = loopguard::classify(mail, &desk.own_addresses);
        Ok(self.processed(desk, ib, outcome, Some(kind), mail.date_ms.map(|d| m.now - d)))
    }

    /// After the commit: the message's metrics and log line.
    fn processed(
        &self,
        desk: &Desk,
        ib: &InboxConfig,
        outcome: Outcome,
        kind: Option<MailKind>,
        delay: Option<i64>,
    ) -> Outcome {
        self.metrics.message(&desk.id, &ib.name, outcome.action.as_str(), delay);
        tracing::info!(
            desk = %desk.id,
            inbox = %ib.name,
            action = outcome.action.as_str(),
            ticket = outcome.ticket.as_ref().map_or("-", TicketNumber::as_str),
            kind = kind.map_or("-", MailKind::as_str),
            "message processed"
        );
        outcome
    }

    /// One parsed message in a transaction of its own that is committed. A unique-constraint race
    /// with another instance is tried once more (and then found as the duplicate it is); a
    /// permanent error rolls the message back and quarantines it with the reason (`false`: not
    /// applied), so that one message that cannot be processed never stalls the inbox behind it. A
    /// temporary error is returned.
    async fn apply_or_quarantine(
        &self,
        desk: &Desk,
        ib: &InboxConfig,
        m: &Incoming<'_>,
        mail: &ParsedMail,
        route: Option<&RouteDecision>,
    ) -> Result<(Outcome, bool), PipelineError> {
        let mut raced = false;
        loop {
            match self.apply_and_commit(desk, ib, m, mail, route).await {
                Ok(outcome) => return Ok((outcome, true)),
                Err(e) if e.is_temporary() => return Err(e),
                Err(e) if run_again(&e, &mut raced) => {}
                Err(e) => {
                    let reason = self.poisoned(desk, ib, &e);
                    let outcome = self.quarantine(desk, ib, m.raw, m.raw.len(), &reason, m.now).await?;
                    return Ok((outcome, false));
                }
            }
        }
    }

    /// A message that cannot be processed: logged; the reason its quarantine records.
    fn poisoned(&self, desk: &Desk, ib: &InboxConfig, e: &PipelineError) -> String {
        tracing::error!(desk = %desk.id, inbox = %ib.name, error = %e, "message cannot be processed; quarantined");
        format!("cannot be processed: {e}")
    }

    async fn apply_and_commit(
        &self,
        desk: &Desk,
        ib: &InboxConfig,
        m: &Incoming<'_>,
        mail: &ParsedMail,
        route: Option<&RouteDecision>,
    ) -> Result<Outcome, PipelineError> {
        let mut tx = self.store.begin().await?;
        let outcome = self.apply(&mut tx, desk, ib, m.raw, mail, route, None, m.now, false).await?;
        self.store.commit(tx).await?;
        Ok(outcome)
    }

    /// Records a message that is not processed (unparseable, too large) with its bytes and reason.
    /// `raw` may be only the header section of a message of `size` bytes.
    pub async fn quarantine(
        &self,
        desk: &Desk,
        inbox: &InboxConfig,
        raw: &[u8],
        size: usize,
        reason: &str,
        now: i64,
    ) -> Result<Outcome, PipelineError> {
        let mut tx = self.store.begin().await?;
        let outcome = self.quarantine_in(&mut tx, desk, inbox, raw, size, reason, now).await?;
        self.store.commit(tx).await?;
        self.metrics.message(&desk.id, &inbox.name, outcome.action.as_str(), None);
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn quarantine_in(
        &self,
        tx: &mut store::Tx,
        desk: &Desk,
        inbox: &InboxConfig,
        raw: &[u8],
        size: usize,
        reason: &str,
        now: i64,
    ) -> Result<Outcome, PipelineError> {
        let key = parse::idempotency_key(parse::sniff_message_id(raw).as_deref(), raw);
        if store::find_seen(tx, &desk.id, &key).await?.is_some() {
            return Ok(Outcome { ticket: None, action: Action::Duplicate, reason: Some(reason.into()) });
        }
        store::insert_quarantine(tx, self.store.files(), &desk.id, &inbox.name, &key, reason, raw, size, now).await?;
        tracing::warn!(desk = %desk.id, inbox = %inbox.name, size, reason, "message quarantined");
        Ok(Outcome { ticket: None, action: Action::Quarantined, reason: Some(reason.into()) })
    }

    /// Parse is done; dedupe, hygiene, loop guard, threading and the rest. `route` is the mail's
    /// route made ahead, if it was ([`ahead`]). A message released
    /// from the quarantine (`released`) skips the hygiene screen: an operator looked at it. The
    /// future lives on the heap: the decision and its effects make a large state machine, which
    /// a caller's stack (a test's, a debug build's) need not hold.
    #[allow(clippy::too_many_arguments)]
    fn apply<'a>(
        &'a self,
        tx: &'a mut store::Tx,
        desk: &'a Desk,
        inbox: &'a InboxConfig,
        raw: &'a [u8],
        mail: &'a ParsedMail,
        route: Option<&'a RouteDecision>,
        in_batch: Option<(&'a behind::Behind, &'a prefetch::Prefetched)>,
        now: i64,
        released: bool,
    ) -> futures::future::BoxFuture<'a, Result<Outcome, PipelineError>> {
        Box::pin(async move {
            let key = parse::idempotency_key(mail.message_id.as_deref(), raw);
            let kind = loopguard::classify(mail, &desk.own_addresses);
            let mut h = self.here(desk, inbox, now)?;
            h.routed_ahead = route.map(|r| (mail, r));
            h.behind = in_batch.map(|(behind, _)| behind);
            // A mail that looks like a new request reads its sender's load with the duplicate check;
            // in a batch both may have been read already, with the other messages' ([`prefetch`]).
            let requester = mail.requester().filter(|_| ahead::looks_new(desk, mail)).map(|r| r.address.as_str());
            let known = in_batch.map(|(_, known)| known).filter(|k| k.unseen(&key));
            let since = now - HOUR_MS;
            let (seen, load) = match (requester, known) {
                (Some(address), Some(known)) if let Some(load) = known.load(address, since) => {
                    (None, Some((address, load)))
                }
                (Some(address), _) => {
                    let (seen, load) = store::find_seen_and_load(tx, &desk.id, &key, address, since).await?;
                    (seen, Some((address, load)))
                }
                (None, Some(_)) => (None, None),
                (None, None) => (store::find_seen(tx, &desk.id, &key).await?, None),
            };
            if let Some(seen) = seen {
                return Ok(Outcome {
                    ticket: seen.ticket_number,
                    action: Action::Duplicate,
                    reason: Some(if seen.quarantined {
                        "already quarantined".into()
                    } else {
                        "already received".into()
                    }),
                });
            }
            if !released {
                let since = inbox.since.map(|d| hygiene::since_ms(d, desk.tz));
                match hygiene::screen(mail, &desk.hygiene, since) {
                    hygiene::Screen::Pass => {}
                    hygiene::Screen::NoAcknowledgement(why) => h.no_ack = Some(why),
                    hygiene::Screen::Quarantine(why) => {
                        return self.quarantine_in(tx, desk, inbox, raw, raw.len(), &why, now).await;
                    }
                }
            }
            let ticket = if kind == MailKind::OwnAddress { None } else { thread(tx, &desk.id, mail).await? };
            let from = mail.from.as_ref().map(|m| m.address.as_str());
            let to: Vec<String> = mail.to.iter().chain(&mail.cc).map(|a| a.to_string()).collect();
            let msg = store::NewMessage {
                desk: &desk.id,
                ticket_id: None,
                direction: Direction::Inbound.as_str(),
                channel: Channel::Email.as_str(),
                inbox: Some(&inbox.name),
                idempotency_key: &key,
                message_id: mail.message_id.as_deref(),
                kind: kind.as_str(),
                action: "",
                reason: None,
                peer_address: from,
                from_address: from,
                to_addresses: &to,
                subject: &mail.subject,
                body_text: &mail.text,
                raw: Some(raw),
                size: raw.len(),
                auto_reply: false,
                now,
            };
            let outcome = match (ticket, kind) {
                (_, MailKind::OwnAddress) => self.ignore(tx, msg, "sent by the desk itself (loop guard)").await?,
                (Some(t), MailKind::Human) => self.on_reply(tx, &h, mail, msg, t).await?,
                (Some(t), kind) => self.append_automatic(tx, &h, mail, msg, kind, t).await?,
                (None, MailKind::Human) if mail.from.as_ref().is_some_and(|f| desk.agent(&f.address).is_some()) => {
                    // An agent's new mail: a request for someone else (`#requester`, a forward), or their own.
                    self.on_behalf(tx, &h, mail, msg).await?
                }
                (None, kind) if !kind.may_open_ticket() => {
                    let reason = format!("{} that concerns no known ticket", kind.as_str());
                    self.ignore(tx, msg, &reason).await?
                }
                (None, kind) => {
                    // Nothing of this mail is written yet: the load read with the duplicate check holds.
                    h.sender_load = load;
                    self.create(tx, &h, mail, msg, kind, None, None).await?
                }
            };
            Ok(outcome)
        })
    }

    /// Where and when: the desk's inbox address and local time at `now`, by email.
    pub(crate) fn here<'a>(&self, desk: &'a Desk, inbox: &'a InboxConfig, now: i64) -> Result<Here<'a>, PipelineError> {
        let inbox_addr =
            EmailAddress::parse(&inbox.address).map_err(|_| PipelineError::InboxAddress(inbox.name.clone()))?;
        let local_now = DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&desk.tz);
        Ok(Here {
            desk,
            inbox,
            inbox_addr,
            now,
            local_now,
            channel: Channel::Email,
            lang: None,
            no_ack: None,
            chat_files: &[],
            routed_ahead: None,
            behind: None,
            sender_load: None,
        })
    }

    /// Appends an audit event (invariant 6) on the channel the message came through.
    pub(crate) async fn event(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        ticket_id: i64,
        actor: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let channel = h.channel.as_str().to_string();
        let (actor, kind, detail) = (actor.to_string(), kind.to_string(), detail.to_string());
        self.event_rows(tx, h, vec![store::EventToInsert { ticket_id, at: h.now, actor, channel, kind, detail }]).await
    }

    /// Records `events` in order: at once, or in a batch with the batch's events before its
    /// commit ([`behind`]).
    pub(crate) async fn events(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        events: &[store::NewEvent<'_>],
    ) -> Result<(), StoreError> {
        let rows = events.iter().map(|e| store::EventToInsert::new(h.now, h.channel.as_str(), e)).collect();
        self.event_rows(tx, h, rows).await
    }

    async fn event_rows(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        rows: Vec<store::EventToInsert>,
    ) -> Result<(), StoreError> {
        match h.behind {
            Some(behind) => {
                behind.queue_events(rows);
                Ok(())
            }
            None => store::insert_event_rows(tx, &rows).await,
        }
    }

    /// The desk's next ticket number for `year`: from the store, or in a batch from the counter
    /// the batch already read ([`behind`]).
    async fn next_seq(&self, tx: &mut store::Tx, h: &Here<'_>, year: i32) -> Result<i64, StoreError> {
        let desk = &h.desk.id;
        if let Some(seq) = h.behind.and_then(|b| b.next_seq(desk, year)) {
            return Ok(seq);
        }
        let seq = store::next_ticket_seq(tx, desk, year).await?;
        if let Some(behind) = h.behind {
            behind.counter_read(desk, year, seq);
        }
        Ok(seq)
    }

    /// Writes the events a batch has queued so far, before a read of events.
    pub(crate) async fn events_written(&self, tx: &mut store::Tx, h: &Here<'_>) -> Result<(), StoreError> {
        match h.behind {
            Some(behind) => store::insert_event_rows(tx, &behind.take_events()).await,
            None => Ok(()),
        }
    }

    async fn ignore(
        &self,
        tx: &mut store::Tx,
        mut msg: store::NewMessage<'_>,
        reason: &str,
    ) -> Result<Outcome, PipelineError> {
        msg.action = Action::Ignored.as_str();
        msg.reason = Some(reason);
        store::insert_message(tx, self.store.files(), &msg).await?;
        Ok(Outcome { ticket: None, action: Action::Ignored, reason: Some(reason.into()) })
    }

    /// Machine-written mail that belongs to a ticket is kept on it, silently; a bounce is recorded
    /// as such.
    async fn append_automatic(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        mut msg: store::NewMessage<'_>,
        kind: MailKind,
        t: Ticket,
    ) -> Result<Outcome, PipelineError> {
        let bounce = (kind == MailKind::Bounce).then(|| {
            let b = mail.bounce.as_ref();
            crate::ticket::decide::BounceFacts {
                subject: mail.subject.clone(),
                failed_recipients: b.map(|b| b.failed_recipients.clone()).unwrap_or_default(),
                status: b.and_then(|b| b.status.clone()),
                diagnostic: b.and_then(|b| b.diagnostic.clone()),
                hard: b.is_some_and(|b| b.hard),
            }
        });
        let touch = crate::ticket::decide::Intent::Automatic {
            kind: kind.as_str(),
            inbox: &h.inbox.name,
            bounce: bounce.as_ref(),
        };
        let d = crate::ticket::decide::decide(&t, &touch, h.desk, h.now);
        msg.ticket_id = Some(t.id);
        msg.action = Action::Appended.as_str();
        let row = store::insert_message(tx, self.store.files(), &msg).await?;
        self.insert_attachments(tx, h, row, mail).await?;
        let from = msg.from_address.unwrap_or("unknown");
        let about = conversation::About { mail, row, actor: from, sender: None, agent: None };
        self.settle(tx, h, &t, d, Some(&about)).await?;
        Ok(Outcome { ticket: Some(t.number), action: Action::Appended, reason: None })
    }

    /// Records the attachments with the desk policy's verdict on each.
    pub(crate) async fn insert_attachments(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        row: i64,
        mail: &ParsedMail,
    ) -> Result<AttachmentVerdicts, StoreError> {
        let v = verdicts(h.desk, mail);
        for (a, refusal) in mail.attachments.iter().zip(&v.refusals) {
            store::insert_attachment(
                tx,
                row,
                a.index,
                a.filename.as_deref(),
                &a.content_type,
                a.size,
                &a.sha256,
                refusal.map(|r| r.as_str()),
            )
            .await?;
            // A chat file's bytes live with its row (a mail's live in its raw form), so that the
            // agents' notification queued in this transaction can carry it.
            if refusal.is_none()
                && let Some(bytes) = h.chat_files.get(a.index as usize).and_then(|f| f.bytes.as_deref())
            {
                store::set_attachment_content(tx, self.store.files(), row, a.index, bytes).await?;
            }
        }
        Ok(v)
    }

    /// Opens a ticket for `mail` (optionally linked to another), acknowledges it and notifies
    /// the group its route names. A sender over the hourly limit of new tickets opens none: the
    /// message goes on their latest open ticket, or is held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        mut msg: store::NewMessage<'_>,
        kind: MailKind,
        link: Option<Link<'_>>,
        chosen: Option<&crate::chat::flow::Form>,
    ) -> Result<Outcome, PipelineError> {
        let desk = h.desk;
        let requester = mail
            .requester()
            .or(mail.from.as_ref())
            .expect("parse guarantees a sender for all but bounces, which never open tickets");
        let limit = self.config.limits.new_tickets_per_sender_per_hour as i64;
        // The sender's last hour, in one query: tickets opened (the flood limit), automatic replies
        // (the acknowledgement's limit) and messages received (the agents' notification limit).
        let load = match h.sender_load {
            Some((address, load)) if address == requester.address.as_str() => load,
            _ => store::sender_load(tx, &desk.id, requester.address.as_str(), h.now - HOUR_MS).await?,
        };
        let opened = load.tickets_opened;
        let from_requester = msg.peer_address == Some(requester.address.as_str());
        if opened >= limit {
            return self.divert_flood(tx, h, mail, msg, requester.address.as_str(), opened).await;
        }
        let linked = link.map(Link::ticket);
        // With its reasons: they are the `routed` event, the ticket's record of why it went where.
        let mut decision = match h.routed_ahead {
            Some((ahead, d)) if std::ptr::eq(ahead, mail) => d.clone(),
            _ => ahead::route(&self.config, desk, &h.inbox_addr, mail),
        };
        if let Some(form) = chosen {
            // The requester chose the service in the guided form; the rules still judge urgency.
            decision.category = form.category.clone();
            decision.subcategory = form.subcategory.clone();
            decision.ticket_type = form.ticket_type;
            decision.impact = form.impact;
            decision.confidence = 1.0;
            decision.internal_only_refused = None;
            decision.reasons = vec!["chosen by the requester in the guided form".into()];
        }
        // The request's whole text, read for its language, its missing requirements and its dates.
        let whole = format!("{}\n{}", mail.subject, mail.text);
        let year = chrono::Datelike::year(&h.local_now);
        let seq = self.next_seq(tx, h, year).await?;
        let number = desk.number_format.render(desk.catalogue.letter(&decision.category), &desk.code, year, seq);
        let language = if let Some(l) = h.lang {
            l
        } else if desk.language == Language::Id {
            reading::detect_language(&whole)
        } else {
            desk.language
        };
        let verdicts = verdicts(desk, mail);
        let mut missing = match desk.catalogue.subcategory(&decision.category, &decision.subcategory) {
            Some(sub) => reading::missing_requirements(
                sub,
                decision.ticket_type,
                &whole,
                verdicts.accepted,
                &requester.address,
                &mail.cc,
                |d| desk.catalogue.is_internal_domain(d),
            ),
            None => Vec::new(),
        };
        if h.channel != Channel::Email {
            // A chat has no CC: the agent checks the supervisor's approval instead.
            missing.retain(|m| m.kind != crate::catalogue::RequirementKind::SupervisorCc);
        }
        let asked = seed::asks(h.desk, &decision, &whole, h.now);
        let group = desk.group_for(&decision.category, &decision.subcategory).map(|g| g.id.clone());
        let (status, pending_reason) = if missing.is_empty() {
            (TicketStatus::New, None)
        } else {
            (TicketStatus::Pending, Some(PendingReason::Requirements))
        };
        // An incident's priority (from its urgency and impact, on the desk's matrix) and the
        // reminder of a request held for its requirements are written with the ticket.
        let (priority, urgency) = match &desk.sla {
            Some(sla) if decision.ticket_type == Some(TicketType::Incident) => {
                (sla.priority(decision.urgency, decision.impact), Some(decision.urgency.unwrap_or(Impact::Medium)))
            }
            _ => (None, None),
        };
        let remind_at = (status == TicketStatus::Pending)
            .then(|| h.now + crate::ticket::decide::REMIND_AFTER_DAYS * crate::ticket::decide::DAY_MS);
        let t = store::insert_ticket(
            tx,
            &store::NewTicket {
                desk: &desk.id,
                number: number.as_str(),
                category: &decision.category,
                subcategory: &decision.subcategory,
                ticket_type: decision.ticket_type,
                impact: decision.impact,
                status,
                channel: h.channel,
                inbox: Some(&h.inbox.name),
                subject: &mail.subject,
                requester_address: requester.address.as_str(),
                requester_name: requester.name.as_deref(),
                language,
                group_id: group.as_deref(),
                pending_reason,
                linked_ticket_id: linked.map(|l| l.id),
                priority,
                urgency,
                remind_at,
                now: h.now,
            },
        )
        .await?;
        let ticket_id = t.id;
        msg.ticket_id = Some(ticket_id);
        msg.action = Action::Created.as_str();
        let row = store::insert_message(tx, self.store.files(), &msg).await?;
        self.insert_attachments(tx, h, row, mail).await?;
        let actor = requester.address.as_str();
        let (follows, mentions) = match link {
            Some(Link::FollowUp(l)) => (Some(l.number.clone()), None),
            Some(Link::Mentioned(l)) => (None, Some(l.number.clone())),
            None => (None, None),
        };
        let mut events = vec![store::NewEvent {
            ticket_id,
            actor,
            kind: "created",
            detail: json!({ "message": row, "inbox": h.inbox.name, "kind": kind.as_str(), "number": number.as_str(),
                            "linked": follows, "mentions": mentions }),
        }];
        if h.channel == Channel::Email {
            let recipients: Vec<EmailAddress> = mail.to.iter().chain(&mail.cc).cloned().collect();
            let admitted = crate::ticket::thread::admitted(
                desk.participants,
                &desk.participant_domains,
                &requester.address,
                &recipients,
                |a| desk.is_own_address(a) || desk.agent(a).is_some(),
            );
            let admitted: Vec<String> = admitted.into_iter().map(String::from).collect();
            store::insert_participants(tx, ticket_id, &admitted, "cc", h.now).await?;
        }
        let loket = |kind, detail| store::NewEvent { ticket_id, actor: "loket", kind, detail };
        events.push(loket("routed", json!(decision)));
        if !missing.is_empty() {
            events.push(loket("requirements_missing", json!({ "missing": missing })));
        }
        if !asked.info.is_empty() {
            events.push(loket("information_asked", json!({ "info": asked.info })));
        }
        if let Some(detail) = &asked.schedule_event {
            events
                .push(loket(if asked.schedule.short { "lead_time_short" } else { "event_scheduled" }, detail.clone()));
        }
        match link {
            Some(Link::FollowUp(l)) => events.push(store::NewEvent {
                ticket_id: l.id,
                actor,
                kind: "follow_up_ticket",
                detail: json!({ "ticket": number.as_str() }),
            }),
            Some(Link::Mentioned(l)) => events.push(store::NewEvent {
                // For the agents of the named ticket: a link, never the sender's words.
                ticket_id: l.id,
                actor,
                kind: "mentioned_by_other",
                detail: json!({ "ticket": number.as_str(), "role": "stranger" }),
            }),
            None => {}
        }
        let created = crate::webhook::Change { before: None, after: &t, events: Vec::new(), reply: None };
        self.queue_webhooks(tx, h, &created).await?;
        let response_due = self.start_clocks(tx, h, &t, asked.resolution_target).await?;

        // The acknowledgement: only to people, never to the desk itself, at most N an hour. Its
        // event (queued or suppressed) is the last of the ticket's first events, written with
        // them in one statement.
        let suppressed = |r: String| loket("acknowledgement_suppressed", json!({ "reason": r }));
        if !kind.may_auto_reply() {
            events.push(suppressed(format!("no acknowledgement: {} mail", kind.as_str())));
        } else if let Some(why) = &h.no_ack {
            events.push(suppressed(format!("no acknowledgement: {why}")));
        } else if desk.is_own_address(&requester.address) {
            events.push(suppressed("no acknowledgement: requester is the desk itself".into()));
        } else if let Err(e) = compose::addressable(&requester.address) {
            events.push(suppressed(format!("no acknowledgement: {e}")));
        } else {
            let mut ctx = self.base_ctx(h, &t);
            ctx.missing = missing.clone();
            ctx.info = asked.info.clone();
            ctx.schedule = asked.schedule.clone();
            ctx.refused = verdicts.refused.clone();
            ctx.ticket.internal_only_refused = decision.internal_only_refused.clone().unwrap_or_default();
            ctx.ticket.official_only = decision.official_only;
            // Only a follow-up names the earlier ticket: a stranger learns nothing of the one named.
            ctx.ticket.linked_number = follows.as_ref().map(ToString::to_string).unwrap_or_default();
            // The template promises the deadline in the requester's words ("paling lambat …").
            ctx.deadline = response_due.map(|due| When::at(due, desk.tz));
            let mut out = OutMail::to_requester(&t, "acknowledgement", ctx).answering(mail);
            out.auto_replies_last_hour = Some(load.auto_replies);
            if load.auto_replies >= self.config.limits.auto_replies_per_sender_per_hour as i64 {
                // `queue` will write its own event (suppressed by the sender's hourly limit):
                // the ticket's first events go before it.
                self.events(tx, h, &std::mem::take(&mut events)).await?;
            }
            if let Some(out_row) = self.queue(tx, h, &t, out).await? {
                events.push(loket(
                    "acknowledgement_queued",
                    json!({ "message": out_row, "to": requester.address.as_str() }),
                ));
            }
        }
        self.events(tx, h, &events).await?;
        {
            // A request held for its requirements is still seen by the agents, as waiting, so
            // one can waive them (`#waive`).
            let mut ctx = self.base_ctx(h, &t);
            ctx.event = if missing.is_empty() { "new" } else { "waiting" }.into();
            ctx.missing = missing.clone();
            ctx.info = asked.info.clone();
            ctx.schedule = asked.schedule.clone();
            ctx.text = mail.text.clone();
            ctx.ticket.mentioned_number = mentions.as_ref().map(ToString::to_string).unwrap_or_default();
            // The request itself was stored after the count (it counts when it came from the
            // requester's own address, not through a Reply-To).
            let own = i64::from(from_requester);
            let known = Known {
                inbound_last_hour: Some(load.inbound + own),
                new_ticket: true,
                files_from: (!mail.attachments.is_empty()).then_some(row),
            };
            self.notify_agents_with(tx, h, &t, ctx, &requester.address, known).await?;
        }
        Ok(Outcome { ticket: Some(number), action: Action::Created, reason: None })
    }

    /// A sender over the hourly limit of new tickets: the message is recorded on their latest
    /// open ticket (agents notified within the notification limit), or, when they have none,
    /// held unattached with its bytes. Nothing is lost; nothing new is acknowledged.
    async fn divert_flood(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        mut msg: store::NewMessage<'_>,
        sender: &str,
        opened: i64,
    ) -> Result<Outcome, PipelineError> {
        let desk = h.desk;
        self.metrics.flood(&desk.id, "ticket_diverted");
        tracing::warn!(desk = %desk.id, sender = %crate::mask_address(sender), opened, "flood: new-ticket limit reached");
        let reason = format!("flood: {opened} tickets from this sender in the last hour");
        match store::latest_open_ticket(tx, &desk.id, sender).await? {
            Some(t) => {
                msg.ticket_id = Some(t.id);
                msg.action = Action::Appended.as_str();
                msg.reason = Some(&reason);
                let row = store::insert_message(tx, self.store.files(), &msg).await?;
                self.insert_attachments(tx, h, row, mail).await?;
                let detail = json!({ "message": row, "reason": reason });
                self.event(tx, h, t.id, sender, "flood_appended", &detail).await?;
                let from = EmailAddress::parse(sender).map_err(|_| PipelineError::InboxAddress(sender.into()))?;
                let text = format!("{}\n\n{}", mail.subject, mail.text);
                let files = (!mail.attachments.is_empty()).then_some(row);
                self.notify_agents(tx, h, &t, "reply", &text, &from, files).await?;
                Ok(Outcome { ticket: Some(t.number), action: Action::Appended, reason: Some(reason) })
            }
            None => {
                msg.action = Action::Held.as_str();
                msg.reason = Some(&reason);
                store::insert_message(tx, self.store.files(), &msg).await?;
                Ok(Outcome { ticket: None, action: Action::Held, reason: Some(reason) })
            }
        }
    }
}

pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Runs of a batch before its messages are taken one by one: each run after the first has one
/// more message quarantined in it (or one unique-constraint race run again).
const BATCH_RUNS: usize = 8;

/// What one run of a batch came to.
enum Run {
    Committed(Vec<Outcome>),
    /// Message `.0` failed permanently; the transaction is rolled back.
    Failed(usize, PipelineError),
}

/// After a message's permanent failure: true when it runs again as it is — a unique constraint
/// broken by another instance's copy, the first time (`raced`): the next run finds that copy as
/// the duplicate it is; false when it is quarantined.
fn run_again(e: &PipelineError, raced: &mut bool) -> bool {
    let again = !*raced && matches!(e, PipelineError::Store(s) if s.is_unique_violation());
    *raced |= again;
    again
}

fn verdicts(desk: &Desk, mail: &ParsedMail) -> AttachmentVerdicts {
    let mut refusals = Vec::new();
    let mut accepted = 0;
    let mut refused = Vec::new();
    for a in &mail.attachments {
        let v = attachments::check_attachment(desk.attachments.as_ref(), a.filename.as_deref(), a.size, &a.head);
        if v.accepted {
            accepted += 1;
        } else if let Some(r) = v.refusal {
            refused.push(RefusedCtx { filename: v.filename.clone(), reason: r.as_str().into() });
        }
        refusals.push(v.refusal);
    }
    AttachmentVerdicts { refusals, accepted, refused }
}

/// The ticket a mail belongs to: the tickets its subject tags and references name, loaded in (at
/// most) two queries, and chosen by `ticket::thread::choose`; a merged ticket leads to the one it
/// was merged into (`conversation::survivor`).
async fn thread(tx: &mut store::Tx, desk: &str, mail: &ParsedMail) -> Result<Option<Ticket>, StoreError> {
    use crate::ticket::thread::choose;
    let keys = ThreadKeys::of(&mail.subject, &mail.references, &mail.in_reply_to, &mail.reported_message_ids);
    let by_number = store::tickets_by_numbers(tx, desk, &keys.numbers).await?;
    if let Some(t) = choose(&keys, &by_number, &[]) {
        return conversation::survivor(tx, t.clone()).await.map(Some);
    }
    let by_message = store::tickets_by_message_ids(tx, desk, &keys.message_ids).await?;
    match choose(&keys, &[], &by_message) {
        Some(t) => conversation::survivor(tx, t.clone()).await.map(Some),
        None => Ok(None),
    }
}
