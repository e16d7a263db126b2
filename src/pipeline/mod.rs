//! What happens to one inbound message: parse → dedupe → loop guard → thread → route → apply, in
//! one store transaction. The acknowledgement is written to the outbox in that same transaction
//! (invariant 3); the caller tells its source "done" only after [`Pipeline::process`] returned Ok
//! (invariant 1).

pub mod compose;
pub mod loopguard;
pub mod parse;

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::catalogue::{TRIAGE_CATEGORY, TRIAGE_SUBCATEGORY};
use crate::config::{Config, Desk, InboxConfig};
use crate::domain::{Channel, Direction, EmailAddress, TicketStatus};
use crate::routing::RouteInput;
use crate::store::{self, Store, StoreError, TicketRow};
use crate::templates::{DeskCtx, MailContext, PersonCtx, TemplateError, Templates, TicketCtx};
use crate::ticket::find_tags;
use loopguard::MailKind;
use parse::ParsedMail;

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Appended,
    Duplicate,
    Ignored,
    Quarantined,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Appended => "appended",
            Action::Duplicate => "duplicate",
            Action::Ignored => "ignored",
            Action::Quarantined => "quarantined",
        }
    }
}

/// The answer for one message (also the JSON line `loket ingest` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub ticket: Option<String>,
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
}

impl PipelineError {
    /// Whether trying again later may succeed (the store was unavailable or busy).
    pub fn is_temporary(&self) -> bool {
        matches!(self, PipelineError::Store(_))
    }
}

/// The message pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    config: Arc<Config>,
    templates: Arc<Templates>,
    outbox_wakeup: Arc<Notify>,
}

impl Pipeline {
    pub fn new(store: Store, config: Arc<Config>, templates: Arc<Templates>, outbox_wakeup: Arc<Notify>) -> Self {
        Self { store, config, templates, outbox_wakeup }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes one raw message that arrived at `inbox` at `now` (ms). A unique-constraint race
    /// with another instance is retried once and then reported as the duplicate it is.
    pub async fn process(&self, inbox: &str, raw: &[u8], now: i64) -> Result<Outcome, PipelineError> {
        let (desk, ib) = self.config.inbox(inbox).ok_or_else(|| PipelineError::UnknownInbox(inbox.into()))?;
        match parse::parse(raw) {
            Err(e) => self.quarantine(desk, ib, raw, raw.len(), &e.to_string(), now).await,
            Ok(mail) => match self.apply(desk, ib, raw, &mail, now).await {
                Err(PipelineError::Store(e)) if e.is_unique_violation() => self.apply(desk, ib, raw, &mail, now).await,
                other => other,
            },
        }
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
        let key = parse::idempotency_key(parse::sniff_message_id(raw).as_deref(), raw);
        let mut tx = self.store.begin().await?;
        if store::find_seen(&mut tx, &desk.id, &key).await?.is_some() {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(Outcome { ticket: None, action: Action::Duplicate, reason: Some(reason.into()) });
        }
        store::insert_quarantine(&mut tx, &desk.id, &inbox.name, &key, reason, raw, size, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        tracing::warn!(desk = %desk.id, inbox = %inbox.name, size, reason, "message quarantined");
        Ok(Outcome { ticket: None, action: Action::Quarantined, reason: Some(reason.into()) })
    }

    async fn apply(
        &self,
        desk: &Desk,
        inbox: &InboxConfig,
        raw: &[u8],
        mail: &ParsedMail,
        now: i64,
    ) -> Result<Outcome, PipelineError> {
        let key = parse::idempotency_key(mail.message_id.as_deref(), raw);
        let kind = loopguard::classify(mail, &desk.own_addresses);
        let mut tx = self.store.begin().await?;
        if let Some(seen) = store::find_seen(&mut tx, &desk.id, &key).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(Outcome {
                ticket: seen.ticket_number,
                action: Action::Duplicate,
                reason: Some(if seen.quarantined { "already quarantined".into() } else { "already received".into() }),
            });
        }
        let ticket = if kind == MailKind::OwnAddress { None } else { thread(&mut tx, &desk.id, mail).await? };
        let from = mail.from.as_ref().map(|m| m.address.as_str());
        let to: Vec<String> = mail.to.iter().chain(&mail.cc).map(|a| a.to_string()).collect();
        let mut msg = store::NewMessage {
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
            (_, MailKind::OwnAddress) => {
                let reason = "sent by the desk itself (loop guard)";
                msg.action = Action::Ignored.as_str();
                msg.reason = Some(reason);
                store::insert_message(&mut tx, &msg).await?;
                Outcome { ticket: None, action: Action::Ignored, reason: Some(reason.into()) }
            }
            (Some(t), kind) => {
                msg.ticket_id = Some(t.id);
                msg.action = Action::Appended.as_str();
                let row = store::insert_message(&mut tx, &msg).await?;
                insert_attachments(&mut tx, row, mail).await?;
                store::touch_ticket(&mut tx, t.id, now).await?;
                let (event, detail) = if kind == MailKind::Bounce {
                    ("bounce_received", json!({ "message": row, "subject": mail.subject }))
                } else {
                    ("message_received", json!({ "message": row, "kind": kind.as_str(), "inbox": inbox.name }))
                };
                store::insert_event(&mut tx, t.id, now, from.unwrap_or("unknown"), "email", event, &detail).await?;
                Outcome { ticket: Some(t.number), action: Action::Appended, reason: None }
            }
            (None, kind) if !kind.may_open_ticket() => {
                let reason = format!("{} that concerns no known ticket", kind.as_str());
                msg.action = Action::Ignored.as_str();
                msg.reason = Some(&reason);
                store::insert_message(&mut tx, &msg).await?;
                Outcome { ticket: None, action: Action::Ignored, reason: Some(reason) }
            }
            (None, kind) => self.create(&mut tx, desk, inbox, mail, msg, kind, &key, now).await?,
        };
        tx.commit().await.map_err(StoreError::from)?;
        if outcome.action == Action::Created {
            self.outbox_wakeup.notify_one();
        }
        tracing::info!(
            desk = %desk.id,
            inbox = %inbox.name,
            action = outcome.action.as_str(),
            ticket = outcome.ticket.as_deref().unwrap_or("-"),
            kind = kind.as_str(),
            "message processed"
        );
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        tx: &mut store::Tx,
        desk: &Desk,
        inbox: &InboxConfig,
        mail: &ParsedMail,
        mut msg: store::NewMessage<'_>,
        kind: MailKind,
        key: &str,
        now: i64,
    ) -> Result<Outcome, PipelineError> {
        let requester = mail.requester().or(mail.from.as_ref()).expect("parse guarantees a sender");
        let inbox_addr = EmailAddress::parse(&inbox.address)
            .map_err(|e| PipelineError::Store(StoreError::Corrupt(format!("inbox {} address: {e}", inbox.name))))?;
        let decision = self.config.router.route(
            &desk.catalogue,
            &RouteInput {
                subject: &mail.subject,
                body: &mail.text,
                sender_domain: Some(requester.address.domain()),
                inbox_address: inbox_addr.as_str(),
            },
        );
        let local_now = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&desk.tz);
        let year = chrono::Datelike::year(&local_now);
        let seq = store::next_ticket_seq(tx, &desk.id, year).await?;
        let number = desk.number_format.render(desk.catalogue.letter(&decision.category), &desk.code, year, seq);
        let ticket_id = store::insert_ticket(
            tx,
            &store::NewTicket {
                desk: &desk.id,
                number: number.as_str(),
                category: &decision.category,
                subcategory: &decision.subcategory,
                ticket_type: decision.ticket_type.map(|t| t.as_str()),
                impact: decision.impact.map(|i| i.as_str()),
                status: TicketStatus::New.as_str(),
                channel: Channel::Email.as_str(),
                inbox: Some(&inbox.name),
                subject: &mail.subject,
                requester_address: requester.address.as_str(),
                requester_name: requester.name.as_deref(),
                language: &desk.language,
                now,
            },
        )
        .await?;
        msg.ticket_id = Some(ticket_id);
        msg.action = Action::Created.as_str();
        let row = store::insert_message(tx, &msg).await?;
        insert_attachments(tx, row, mail).await?;
        let actor = requester.address.as_str();
        store::insert_event(
            tx,
            ticket_id,
            now,
            actor,
            "email",
            "created",
            &json!({ "message": row, "inbox": inbox.name, "kind": kind.as_str(), "number": number.as_str() }),
        )
        .await?;
        store::insert_event(tx, ticket_id, now, "loket", "email", "routed", &json!(decision)).await?;

        // The acknowledgement: only to people, never to the desk itself, at most N an hour.
        let mut reason = None;
        if !kind.may_auto_reply() {
            reason = Some(format!("no acknowledgement: {} mail", kind.as_str()));
        } else if desk.is_own_address(&requester.address) {
            reason = Some("no acknowledgement: requester is the desk itself".into());
        } else {
            let limit = self.config.limits.auto_replies_per_sender_per_hour as i64;
            let sent = store::count_auto_replies(tx, &desk.id, requester.address.as_str(), now - 3_600_000).await?;
            if sent >= limit {
                reason = Some(format!("no acknowledgement: {sent} automatic replies to this sender in the last hour"));
            }
        }
        match reason {
            Some(r) => {
                store::insert_event(
                    tx,
                    ticket_id,
                    now,
                    "loket",
                    "email",
                    "acknowledgement_suppressed",
                    &json!({ "reason": r }),
                )
                .await?;
            }
            None => {
                let (cat_name, sub_name) = match desk.catalogue.subcategory(&decision.category, &decision.subcategory) {
                    Some(s) => (
                        desk.catalogue.category(&decision.category).map(|c| c.name.clone()).unwrap_or_default(),
                        s.name.clone(),
                    ),
                    None if decision.category == TRIAGE_CATEGORY && decision.subcategory == TRIAGE_SUBCATEGORY => {
                        let t = if desk.language == "en" {
                            "Triage (to be classified)"
                        } else {
                            "Triase (akan diklasifikasikan)"
                        };
                        (t.to_string(), String::new())
                    }
                    None => (decision.category.clone(), decision.subcategory.clone()),
                };
                let ctx = MailContext {
                    desk: DeskCtx { id: desk.id.clone(), name: desk.name.clone(), address: inbox_addr.to_string() },
                    ticket: TicketCtx {
                        number: number.to_string(),
                        tag: number.tag(),
                        category: decision.category.clone(),
                        subcategory: decision.subcategory.clone(),
                        category_name: cat_name,
                        subcategory_name: sub_name,
                        created: local_now.format("%Y-%m-%d %H:%M %Z").to_string(),
                        ticket_type: decision.ticket_type.map(|t| t.as_str().to_string()),
                        internal_only_refused: decision.internal_only_refused.clone(),
                    },
                    requester: PersonCtx {
                        name: requester.name.clone().unwrap_or_default(),
                        address: requester.address.to_string(),
                    },
                    original_subject: mail.subject.clone(),
                };
                let text = self.templates.render(&desk.language, "acknowledgement", &ctx)?;
                let out = compose::reply(&compose::ReplySpec {
                    from_name: &desk.name,
                    from: &inbox_addr,
                    to_name: requester.name.as_deref(),
                    to: &requester.address,
                    ticket_number: number.as_str(),
                    in_reply_to: mail.message_id.as_deref(),
                    references: &mail.references,
                    text: &text,
                    unique: &parse::sha256_hex(key.as_bytes()),
                    now_ms: now,
                    auto_replied: true,
                })
                .map_err(|e| PipelineError::Store(StoreError::Corrupt(e.to_string())))?;
                let out_key = format!("out:{}", out.message_id);
                let out_row = store::insert_message(
                    tx,
                    &store::NewMessage {
                        desk: &desk.id,
                        ticket_id: Some(ticket_id),
                        direction: Direction::Outbound.as_str(),
                        channel: Channel::Email.as_str(),
                        inbox: Some(&inbox.name),
                        idempotency_key: &out_key,
                        message_id: Some(&out.message_id),
                        kind: "acknowledgement",
                        action: "queued",
                        reason: None,
                        peer_address: Some(requester.address.as_str()),
                        from_address: Some(&out.sender),
                        to_addresses: &out.recipients,
                        subject: &out.subject,
                        body_text: &out.body,
                        raw: Some(&out.raw),
                        size: out.raw.len(),
                        auto_reply: true,
                        now,
                    },
                )
                .await?;
                store::insert_outbox(tx, &desk.id, Some(ticket_id), out_row, &out.sender, &out.recipients, now).await?;
                store::insert_event(
                    tx,
                    ticket_id,
                    now,
                    "loket",
                    "email",
                    "acknowledgement_queued",
                    &json!({ "message": out_row, "to": requester.address.as_str() }),
                )
                .await?;
            }
        }
        Ok(Outcome { ticket: Some(number.to_string()), action: Action::Created, reason: None })
    }
}

async fn insert_attachments(tx: &mut store::Tx, row: i64, mail: &ParsedMail) -> Result<(), StoreError> {
    for a in &mail.attachments {
        store::insert_attachment(tx, row, a.index, a.filename.as_deref(), &a.content_type, a.size, &a.sha256).await?;
    }
    Ok(())
}

/// The ticket a mail belongs to: the first ticket tag in its subject that names a ticket of this
/// desk, else the ticket of a message it replies to or reports on.
async fn thread(tx: &mut store::Tx, desk: &str, mail: &ParsedMail) -> Result<Option<TicketRow>, StoreError> {
    for number in find_tags(&mail.subject) {
        if let Some(t) = store::ticket_by_number(tx, desk, number.as_str()).await? {
            return Ok(Some(t));
        }
    }
    let mut ids: Vec<String> = mail.references.clone();
    ids.extend(mail.in_reply_to.iter().cloned());
    ids.extend(mail.reported_message_ids.iter().cloned());
    ids.dedup();
    store::ticket_by_message_ids(tx, desk, &ids).await
}
