//! Chat messages through the same ticket logic as mail. One update, one transaction: the
//! idempotency key (Telegram update id, WhatsApp message id) is checked and stored with
//! everything the update changes, and every answer is queued in the outbox in that transaction.
//!
//! A chat requester is known by platform user id; their tickets carry the address
//! [`chat_address`] (`telegram-555@chat.invalid`), so another person's ticket is never theirs, and
//! `/status` of it answers exactly as for a number that does not exist.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use super::{Action, Here, Outcome, Pipeline, PipelineError};
use crate::chat::command::{self, ChatCommand};
use crate::chat::flow::{self, Advance, Flow};
use crate::chat::{
    Button, ChatMessage, Input, MAX_TEXT_BYTES, OutChat, chat_address, confirm_buttons, cut, language_of,
    rating_buttons,
};
use crate::config::Desk;
use crate::domain::{Channel, Direction, EmailAddress, Language, TicketStatus};
use crate::mail::loopguard::MailKind;
use crate::mail::parse::{self, AttachmentMeta, Mailbox, ParsedMail, sha256_hex};
use crate::store::{self, ChatUser, StoreError, Ticket};
use crate::templates::{MailContext, TicketLine};
use crate::ticket::TicketNumber;
use crate::ticket::decide::Said;

/// The WhatsApp customer-service window.
const WHATSAPP_WINDOW_MS: i64 = 24 * 3_600_000;
/// Longest text sent in one chat message (both platforms allow 4,096 characters).
const MAX_OUT_CHARS: usize = 4_000;

/// One update being handled.
struct Turn<'a, 'b> {
    h: &'a Here<'b>,
    user: ChatUser,
    lang: Language,
    m: &'a ChatMessage,
}

impl Pipeline {
    /// Handles one chat update for `desk`. A unique-constraint race with another instance is
    /// retried once and then reported as the duplicate it is.
    pub async fn chat(&self, desk: &str, m: &ChatMessage, now: i64) -> Result<Outcome, PipelineError> {
        let desk = self.config.desk(desk).ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        match self.chat_apply(desk, m, now).await {
            Err(PipelineError::Store(e)) if e.is_unique_violation() => self.chat_apply(desk, m, now).await,
            other => other,
        }
    }

    /// Keeps an update that cannot be processed (with its reason) in quarantine instead of losing it.
    pub async fn quarantine_chat(&self, desk: &str, m: &ChatMessage, e: &PipelineError) -> Result<(), PipelineError> {
        let d = self.config.desk(desk).ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let inbox = d.inboxes.first().ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let reason = format!("{} update {}: {e}", m.channel.as_str(), m.key);
        tracing::error!(desk, key = %m.key, error = %e, "chat update cannot be processed; quarantined");
        self.quarantine(d, inbox, &m.raw, m.raw.len(), &reason, crate::now_ms()).await.map(|_| ())
    }

    async fn chat_apply(&self, desk: &Desk, m: &ChatMessage, now: i64) -> Result<Outcome, PipelineError> {
        let inbox = desk.inboxes.first().ok_or_else(|| PipelineError::UnknownInbox(desk.id.clone()))?;
        let channel = m.channel.as_str();
        let mut tx = self.store.begin().await?;
        if let Some(seen) = store::find_seen(&mut tx, &desk.id, &m.key).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            self.metrics.message(&desk.id, channel, Action::Duplicate.as_str(), None);
            return Ok(Outcome {
                ticket: seen.ticket_number,
                action: Action::Duplicate,
                reason: Some("already received".into()),
            });
        }
        let address = chat_address(m.channel, &m.user_id);
        let name = m.name.as_deref().map(|n| cut(n.trim(), 200));
        let user = store::upsert_chat_user(
            &mut tx,
            &desk.id,
            channel,
            &m.user_id,
            &m.chat_id,
            &address,
            name.filter(|n| !n.is_empty()),
            None,
            now,
        )
        .await?;
        let chosen = user.language.or(m.language.as_deref().and_then(language_of));
        let h = Here { channel: m.channel, lang: chosen, chat_files: &m.files, ..self.here(desk, inbox, now)? };
        let lang = chosen.unwrap_or(desk.language);
        let turn = Turn { h: &h, user, lang, m };
        let outcome = self.turn(&mut tx, &turn).await?;
        self.store.commit(tx).await?;
        self.outbox_wakeup.notify_one();
        self.metrics.message(&desk.id, channel, outcome.action.as_str(), None);
        tracing::info!(
            desk = %desk.id,
            channel,
            action = outcome.action.as_str(),
            ticket = outcome.ticket.as_ref().map_or("-", TicketNumber::as_str),
            "chat update processed"
        );
        Ok(outcome)
    }

    async fn turn(&self, tx: &mut store::Tx, c: &Turn<'_, '_>) -> Result<Outcome, PipelineError> {
        match &c.m.input {
            Input::Button(data) => self.on_button(tx, c, data).await,
            Input::Text(t) => match command::parse(t) {
                Some(cmd) => self.on_command(tx, c, cmd).await,
                None if c.user.flow.is_some() => self.on_flow_answer(tx, c, t.trim()).await,
                None => self.on_free_text(tx, c).await,
            },
        }
    }

    /// The inbound message as stored.
    fn chat_msg<'a>(&self, c: &'a Turn<'_, '_>, text: &'a str, subject: &'a str) -> store::NewMessage<'a> {
        store::NewMessage {
            desk: &c.h.desk.id,
            ticket_id: None,
            direction: Direction::Inbound.as_str(),
            channel: c.m.channel.as_str(),
            inbox: None,
            idempotency_key: &c.m.key,
            message_id: None,
            kind: MailKind::Human.as_str(),
            action: "",
            reason: None,
            peer_address: Some(&c.user.address),
            from_address: Some(&c.user.address),
            to_addresses: &[],
            subject,
            body_text: text,
            raw: Some(&c.m.raw),
            size: c.m.raw.len(),
            auto_reply: false,
            now: c.h.now,
        }
    }

    fn text_of<'a>(&self, c: &'a Turn<'_, '_>) -> &'a str {
        match &c.m.input {
            Input::Text(t) => cut(t.trim(), MAX_TEXT_BYTES),
            Input::Button(d) => d.as_str(),
        }
    }

    /// Stores an update that opened or changed no ticket (a command, a flow step) with its files.
    async fn record_command(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        what: &str,
        ticket: Option<&Ticket>,
    ) -> Result<Outcome, PipelineError> {
        let text = self.text_of(c);
        let mut msg = self.chat_msg(c, text, "");
        msg.action = Action::Command.as_str();
        msg.reason = Some(what);
        let row = store::insert_message(tx, self.store.files(), &msg).await?;
        let mail = self.chat_mail(c, String::new(), text.to_string());
        self.insert_attachments(tx, c.h, row, &mail).await?;
        Ok(Outcome { ticket: ticket.map(|t| t.number.clone()), action: Action::Command, reason: Some(what.into()) })
    }

    /// The update as a mail from the chat requester, with its files as attachments.
    fn chat_mail(&self, c: &Turn<'_, '_>, subject: String, text: String) -> ParsedMail {
        let address = EmailAddress::parse(&c.user.address)
            .unwrap_or_else(|_| EmailAddress::parse("unknown@chat.invalid").expect("valid"));
        let attachments =
            c.m.files
                .iter()
                .take(parse::MAX_ATTACHMENTS)
                .enumerate()
                .map(|(i, f)| {
                    let bytes = f.bytes.as_deref().unwrap_or_default();
                    // A file not fetched (over the limit) keeps the size the platform declared.
                    let meta = AttachmentMeta::of(i as u32, f.filename.clone(), f.content_type.clone(), bytes, false);
                    AttachmentMeta { size: f.size, ..meta }
                })
                .collect();
        ParsedMail::from_chat(Mailbox { name: c.user.name.clone(), address }, subject, text, attachments)
    }

    /// Free text outside a guided flow: continues the requester's active ticket within the
    /// session window, else opens a ticket routed by the rules.
    async fn on_free_text(&self, tx: &mut store::Tx, c: &Turn<'_, '_>) -> Result<Outcome, PipelineError> {
        let text = self.text_of(c);
        if text.is_empty() && c.m.files.is_empty() {
            self.notice(tx, c, None, "unsupported", "").await?;
            return self.record_command(tx, c, "nothing to read in the message", None).await;
        }
        let window = self.session_ms(c);
        if let (Some(id), Some(at)) = (c.user.active_ticket_id, c.user.active_at)
            && c.h.now - at <= window
            && let Some(t) = store::ticket_by_id(tx, id).await?
            && t.requester_address.as_str() == c.user.address
        {
            return self.append_chat(tx, c, t, text, Said::Text).await;
        }
        let subject = match subject_of(text) {
            Some(s) => s,
            None => self.templates.label(c.lang, "chat_attachment_subject")?,
        };
        let mail = self.chat_mail(c, subject.clone(), text.to_string());
        let msg = self.chat_msg(c, text, &subject);
        let out = self.create(tx, c.h, &mail, msg, MailKind::Human, None, None).await?;
        self.after_ticket(tx, c, &out).await?;
        Ok(out)
    }

    /// Adds the update to ticket `t` as the requester's message with what a button or command `said`.
    async fn append_chat(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        t: Ticket,
        text: &str,
        said: Said,
    ) -> Result<Outcome, PipelineError> {
        let subject = t.subject.clone();
        let mail = self.chat_mail(c, subject.clone(), text.to_string());
        let msg = self.chat_msg(c, text, &subject);
        let out = self.on_requester(tx, c.h, &mail, msg, t, said).await?;
        self.after_ticket(tx, c, &out).await?;
        Ok(out)
    }

    /// After an update reached a ticket (its files' bytes were kept with their rows by
    /// `insert_attachments`): the ticket becomes the active one.
    async fn after_ticket(&self, tx: &mut store::Tx, c: &Turn<'_, '_>, out: &Outcome) -> Result<(), StoreError> {
        if let Some(number) = &out.ticket
            && let Some(t) = store::ticket_by_number(tx, &c.h.desk.id, number).await?
        {
            store::set_chat_active(tx, c.user.id, Some(t.id), c.h.now).await?;
        }
        Ok(())
    }

    fn session_ms(&self, c: &Turn<'_, '_>) -> i64 {
        let minutes = match c.m.channel {
            Channel::Telegram => c.h.desk.telegram.as_ref().map(|t| t.session_minutes),
            Channel::Whatsapp => c.h.desk.whatsapp.as_ref().map(|w| w.session_minutes),
            Channel::Email => None,
        };
        minutes.unwrap_or(120) as i64 * 60_000
    }

    /// The requester's own ticket by number; None for another's or an unknown number alike.
    async fn own_ticket(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        number: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        let Some(number) = TicketNumber::parse(number) else { return Ok(None) };
        Ok(store::ticket_by_number(tx, &c.h.desk.id, &number)
            .await?
            .filter(|t| t.requester_address.as_str() == c.user.address))
    }

    async fn on_command(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        cmd: ChatCommand,
    ) -> Result<Outcome, PipelineError> {
        match cmd {
            ChatCommand::Start | ChatCommand::Help => {
                self.say(tx, c, None, "chat_help", MailContext::default(), Vec::new()).await?;
                self.record_command(tx, c, "help", None).await
            }
            ChatCommand::New => {
                let internal = self.is_internal(c);
                let labels = flow::FlowLabels::of(&self.templates, c.lang)?;
                let adv = flow::start(&c.h.desk.catalogue, internal, &labels);
                self.flow_step(tx, c, adv).await
            }
            ChatCommand::Cancel => {
                let notice = if c.user.flow.is_some() { "cancelled" } else { "nothing_to_cancel" };
                store::set_chat_flow(tx, c.user.id, None).await?;
                self.notice(tx, c, None, notice, "").await?;
                self.record_command(tx, c, "cancel", None).await
            }
            ChatCommand::Status(n) => match self.own_ticket(tx, c, &n).await? {
                Some(t) => {
                    let ctx = self.base_ctx(c.h, &t);
                    self.say(tx, c, Some(&t), "chat_status", ctx, Vec::new()).await?;
                    self.record_command(tx, c, "status", Some(&t)).await
                }
                None => {
                    self.notice(tx, c, None, "not_found", &n).await?;
                    self.record_command(tx, c, "status of a ticket that is not the requester's", None).await
                }
            },
            ChatCommand::Tickets => {
                let list = store::tickets_of_requester(tx, &c.h.desk.id, &c.user.address, true, 20).await?;
                let mut ctx = MailContext::default();
                ctx.chat.tickets = list
                    .iter()
                    .map(|t| TicketLine {
                        number: t.number.to_string(),
                        status: t.status.as_str().to_string(),
                        subject: t.subject.clone(),
                    })
                    .collect();
                self.say(tx, c, None, "chat_tickets", ctx, Vec::new()).await?;
                self.record_command(tx, c, "tickets", None).await
            }
            ChatCommand::Reply(n, text) => match self.own_ticket(tx, c, &n).await? {
                Some(t) => {
                    let number = t.number.clone();
                    let out = self.append_chat(tx, c, t, &text, Said::Text).await?;
                    if out.ticket.as_ref().map(TicketNumber::as_str) == Some(number.as_str()) && out.reason.is_none() {
                        self.notice(tx, c, None, "reply_added", number.as_str()).await?;
                    }
                    Ok(out)
                }
                None => {
                    self.notice(tx, c, None, "not_found", &n).await?;
                    self.record_command(tx, c, "reply to a ticket that is not the requester's", None).await
                }
            },
            ChatCommand::Close(n) => self.on_confirm(tx, c, &n, true).await,
            ChatCommand::Rate(n, score, comment) => self.on_rate(tx, c, &n, score, comment).await,
            ChatCommand::Email(arg) => {
                let lower = arg.to_lowercase();
                if ["hapus", "off", "none", "remove"].contains(&lower.as_str()) {
                    store::set_chat_email(tx, c.user.id, None).await?;
                    store::set_chat_email_code(tx, c.user.id, None).await?;
                    self.notice(tx, c, None, "email_removed", "").await?;
                    return self.record_command(tx, c, "email unlinked", None).await;
                }
                if arg.len() == EMAIL_CODE_DIGITS && arg.bytes().all(|b| b.is_ascii_digit()) {
                    return self.check_email_code(tx, c, &arg).await;
                }
                match EmailAddress::parse(&arg) {
                    // An address the mail library will not write (`taro..yamada@…`) cannot get
                    // the code: refused like any invalid one.
                    Ok(a)
                        if !a.domain().ends_with(".invalid")
                            && !c.h.desk.is_own_address(&a)
                            && crate::mail::compose::addressable(&a).is_ok() =>
                    {
                        // Linked only once the code mailed to it comes back (`/email KODE`): an
                        // address in a desk's domains opens its internal-only services.
                        let waiting = store::chat_email_code(tx, c.user.id).await?;
                        if waiting
                            .is_some_and(|w| w.expires_at - EMAIL_CODE_VALID_MS + EMAIL_CODE_INTERVAL_MS > c.h.now)
                        {
                            self.notice(tx, c, None, "email_code_wait", "").await?;
                            return self.record_command(tx, c, "email code asked again too soon", None).await;
                        }
                        let code = email_code();
                        let pending = store::EmailCode {
                            address: a.as_str().to_string(),
                            code_sha256: email_code_hash(c.user.id, a.as_str(), &code),
                            expires_at: c.h.now + EMAIL_CODE_VALID_MS,
                            attempts: 0,
                        };
                        store::set_chat_email_code(tx, c.user.id, Some(&pending)).await?;
                        self.mail_email_code(tx, c, &a, &code).await?;
                        self.notice(tx, c, None, "email_code_sent", a.as_str()).await?;
                        self.record_command(tx, c, "email code sent", None).await
                    }
                    _ => {
                        self.notice(tx, c, None, "email_invalid", cut(&arg, 100)).await?;
                        self.record_command(tx, c, "invalid email address", None).await
                    }
                }
            }
            ChatCommand::Language(l) => {
                store::set_chat_language(tx, c.user.id, l).await?;
                let c2 = Turn { h: c.h, user: c.user.clone(), lang: l, m: c.m };
                self.notice(tx, &c2, None, "language_set", l.as_str()).await?;
                self.record_command(tx, c, "language", None).await
            }
            ChatCommand::Invalid(usage) => {
                self.notice(tx, c, None, "usage", &usage).await?;
                self.record_command(tx, c, "invalid command", None).await
            }
        }
    }

    /// `ok:`/`no:` answer a resolution notice, `r:` rates, `f:` answers the guided flow.
    async fn on_button(&self, tx: &mut store::Tx, c: &Turn<'_, '_>, data: &str) -> Result<Outcome, PipelineError> {
        if data == flow::CANCEL {
            return self.on_command(tx, c, ChatCommand::Cancel).await;
        }
        if data.starts_with("f:") {
            if c.user.flow.is_some() {
                return self.on_flow_answer(tx, c, data).await;
            }
            self.notice(tx, c, None, "flow_expired", "").await?;
            return self.record_command(tx, c, "a form button of a finished form", None).await;
        }
        if let Some(n) = data.strip_prefix("ok:") {
            return self.on_confirm(tx, c, n, true).await;
        }
        if let Some(n) = data.strip_prefix("no:") {
            return self.on_confirm(tx, c, n, false).await;
        }
        if let Some(rest) = data.strip_prefix("r:")
            && let Some((n, s)) = rest.rsplit_once(':')
            && let Ok(score) = s.parse::<u8>()
            && (1..=5).contains(&score)
        {
            return self.on_rate(tx, c, n, score, String::new()).await;
        }
        self.notice(tx, c, None, "usage", "unknown").await?;
        self.record_command(tx, c, "unknown button", None).await
    }

    /// The requester confirms (`yes`) or disputes a resolution.
    async fn on_confirm(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        number: &str,
        yes: bool,
    ) -> Result<Outcome, PipelineError> {
        let Some(t) = self.own_ticket(tx, c, number).await? else {
            self.notice(tx, c, None, "not_found", number).await?;
            return self.record_command(tx, c, "confirmation of a ticket that is not the requester's", None).await;
        };
        if t.status != TicketStatus::Resolved {
            let notice = if t.status == TicketStatus::Closed { "already_closed" } else { "not_resolved" };
            self.notice(tx, c, Some(&t), notice, t.number.as_str()).await?;
            return self.record_command(tx, c, "confirmation of a ticket that is not resolved", Some(&t)).await;
        }
        let said = if yes { Said::Confirm } else { Said::Reopen };
        let text = self.text_of(c).to_string();
        self.append_chat(tx, c, t, &text, said).await
    }

    async fn on_rate(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        number: &str,
        score: u8,
        comment: String,
    ) -> Result<Outcome, PipelineError> {
        let Some(t) = self.own_ticket(tx, c, number).await? else {
            self.notice(tx, c, None, "not_found", number).await?;
            return self.record_command(tx, c, "rating of a ticket that is not the requester's", None).await;
        };
        let open_for_rating = t.status == TicketStatus::Closed && t.rating_requested_at.is_some() && t.rating.is_none();
        if !open_for_rating {
            let notice = if t.rating.is_some() { "already_rated" } else { "not_closed" };
            self.notice(tx, c, Some(&t), notice, t.number.as_str()).await?;
            return self.record_command(tx, c, "rating refused", Some(&t)).await;
        }
        let text = self.text_of(c).to_string();
        self.append_chat(tx, c, t, &text, Said::Rate(score, comment)).await
    }

    fn is_internal(&self, c: &Turn<'_, '_>) -> bool {
        c.user
            .email
            .as_deref()
            .and_then(|e| EmailAddress::parse(e).ok())
            .is_some_and(|e| c.h.desk.catalogue.is_internal_domain(e.domain()))
    }

    async fn on_flow_answer(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        answer: &str,
    ) -> Result<Outcome, PipelineError> {
        let stored = c.user.flow.as_deref().unwrap_or("");
        let Ok(state) = serde_json::from_str::<Flow>(stored) else {
            // A form saved by another version: start again rather than guess.
            store::set_chat_flow(tx, c.user.id, None).await?;
            self.notice(tx, c, None, "flow_expired", "").await?;
            return self.record_command(tx, c, "unreadable form state", None).await;
        };
        let labels = flow::FlowLabels::of(&self.templates, c.lang)?;
        let adv = flow::advance(state, &c.h.desk.catalogue, self.is_internal(c), &labels, answer);
        self.flow_step(tx, c, adv).await
    }

    /// Saves the flow and asks its next question, or opens the ticket the finished form describes.
    async fn flow_step(&self, tx: &mut store::Tx, c: &Turn<'_, '_>, adv: Advance) -> Result<Outcome, PipelineError> {
        match adv {
            Advance::Ask(state, prompt) => {
                let json = serde_json::to_string(&state).unwrap_or_default();
                store::set_chat_flow(tx, c.user.id, Some(&json)).await?;
                let mut ctx = MailContext::default();
                ctx.chat.step = serde_json::to_value(prompt.step)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                ctx.chat.options = prompt.options.iter().map(|o| o.label.clone()).collect();
                ctx.chat.retry = prompt.retry;
                let cancel = self.templates.label(c.lang, "cancel")?;
                let mut buttons: Vec<Vec<Button>> = prompt.options.into_iter().map(|o| vec![o]).collect();
                buttons.push(vec![Button { label: cancel, data: flow::CANCEL.into() }]);
                self.say(tx, c, None, "chat_flow", ctx, buttons).await?;
                self.record_command(tx, c, "guided form", None).await
            }
            Advance::Done(form) => {
                store::set_chat_flow(tx, c.user.id, None).await?;
                let mail = self.chat_mail(c, form.subject.clone(), form.description.clone());
                let msg = self.chat_msg(c, &form.description, &form.subject);
                let out = self.create(tx, c.h, &mail, msg, MailKind::Human, None, Some(&form)).await?;
                self.after_ticket(tx, c, &out).await?;
                Ok(out)
            }
        }
    }

    /// Queues a short notice (`chat_notice`) to the requester.
    async fn notice(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        t: Option<&Ticket>,
        notice: &str,
        arg: &str,
    ) -> Result<(), PipelineError> {
        let mut ctx = match t {
            Some(t) => self.base_ctx(c.h, t),
            None => MailContext::default(),
        };
        ctx.chat.notice = notice.into();
        ctx.chat.arg = arg.into();
        self.say(tx, c, t, "chat_notice", ctx, Vec::new()).await
    }

    /// `/email KODE`: links the address waiting for this code when it matches in time; five wrong
    /// codes or an expired one drop the waiting address.
    async fn check_email_code(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        code: &str,
    ) -> Result<Outcome, PipelineError> {
        let (notice, arg, what) = match store::chat_email_code(tx, c.user.id).await? {
            None => ("email_code_none", String::new(), "email code without an address waiting"),
            Some(w) if w.expires_at <= c.h.now || w.attempts >= EMAIL_CODE_ATTEMPTS => {
                store::set_chat_email_code(tx, c.user.id, None).await?;
                ("email_code_expired", String::new(), "email code expired")
            }
            Some(w) if email_code_hash(c.user.id, &w.address, code) == w.code_sha256 => {
                store::set_chat_email(tx, c.user.id, Some(&w.address)).await?;
                store::set_chat_email_code(tx, c.user.id, None).await?;
                ("email_linked", w.address, "email linked")
            }
            Some(_) => {
                store::bump_chat_email_attempts(tx, c.user.id).await?;
                ("email_code_wrong", String::new(), "wrong email code")
            }
        };
        self.notice(tx, c, None, notice, &arg).await?;
        self.record_command(tx, c, what, None).await
    }

    /// Mails the verification code to the address a chat requester gave (template `email_code`).
    async fn mail_email_code(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        to: &EmailAddress,
        code: &str,
    ) -> Result<(), PipelineError> {
        let ctx = MailContext {
            desk: self.desk_ctx(c.h),
            requester: crate::templates::PersonCtx {
                name: c.user.name.clone().unwrap_or_default(),
                address: to.to_string(),
            },
            text: code.to_string(),
            ..Default::default()
        };
        let seed = format!("email-code|{}|{}|{}", c.user.id, to, c.h.now);
        self.queue_ticketless(tx, c.h, to, None, ("email_code", c.lang, &ctx), "email-code", &seed).await?;
        Ok(())
    }

    /// Renders a chat template for this turn's requester and queues it.
    async fn say(
        &self,
        tx: &mut store::Tx,
        c: &Turn<'_, '_>,
        t: Option<&Ticket>,
        template: &str,
        mut ctx: MailContext,
        buttons: Vec<Vec<Button>>,
    ) -> Result<(), PipelineError> {
        ctx.desk = self.desk_ctx(c.h);
        ctx.requester.name = c.user.name.clone().unwrap_or_default();
        let text = self.templates.render(c.lang, template, &ctx)?.body;
        self.queue_chat(tx, c.h, &c.user, t, template, &text, buttons, false, None, false).await?;
        Ok(())
    }

    /// Queues `text` (with `buttons`) to `user`'s chat. On WhatsApp outside the 24-hour window
    /// the desk's approved template goes instead, or, without one, nothing goes and the ticket
    /// records why. Returns the message row, if one was queued.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn queue_chat(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        user: &ChatUser,
        t: Option<&Ticket>,
        kind: &str,
        text: &str,
        buttons: Vec<Vec<Button>>,
        auto_reply: bool,
        file: Option<crate::chat::OutChatFile>,
        emailed: bool,
    ) -> Result<Option<i64>, PipelineError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let channel = Channel::parse(&user.platform).unwrap_or(Channel::Telegram);
        let mut template = None;
        if channel == Channel::Whatsapp && h.now - user.last_inbound_at > WHATSAPP_WINDOW_MS {
            let values = crate::chat::TicketValues {
                number: t.map(|t| t.number.to_string()).unwrap_or_default(),
                subject: t.map(|t| t.subject.clone()).unwrap_or_default(),
                name: t.and_then(|t| t.requester_name.clone()).or_else(|| user.name.clone()).unwrap_or_default(),
                desk: h.desk.name.clone(),
            };
            match h.desk.whatsapp.as_ref().and_then(|w| crate::chat::window_template(w, kind, &values)) {
                Some(message) => template = Some(message),
                None => {
                    if let Some(t) = t {
                        let detail = json!({ "template": kind, "reason": "outside the WhatsApp 24-hour window and no template configured" });
                        self.event(tx, h, t.id, "loket", "chat_undeliverable", &detail).await?;
                    }
                    tracing::warn!(desk = %h.desk.id, kind, "WhatsApp window closed and no template configured: not sent");
                    return Ok(None);
                }
            }
        }
        if template.is_some() && file.is_some() {
            // Outside the window only the approved template goes; the file waits for the agent.
            return Ok(None);
        }
        let text: String = text.chars().take(MAX_OUT_CHARS).collect();
        let list_labels = if channel == Channel::Whatsapp && buttons.iter().map(Vec::len).sum::<usize>() > 3 {
            let lang = user.language.unwrap_or(h.desk.language);
            Some((self.templates.label(lang, "chat_list_button")?, self.templates.label(lang, "chat_list_title")?))
        } else {
            None
        };
        let payload = OutChat {
            chat_id: user.chat_id.clone(),
            text: text.clone(),
            buttons,
            template,
            list_labels,
            file,
            emailed,
        };
        let payload = serde_json::to_value(&payload).unwrap_or_default();
        let raw = payload.to_string();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let unique = sha256_hex(format!("{}|{kind}|{}|{}|{seq}", user.id, h.now, std::process::id()).as_bytes());
        let key = format!("out:{}:{}", channel.as_str(), &unique[..24]);
        let to = vec![user.chat_id.clone()];
        let row = store::insert_message(
            tx,
            self.store.files(),
            &store::NewMessage {
                desk: &h.desk.id,
                ticket_id: t.map(|t| t.id),
                direction: Direction::Outbound.as_str(),
                channel: channel.as_str(),
                inbox: None,
                idempotency_key: &key,
                message_id: None,
                kind,
                action: "queued",
                reason: None,
                peer_address: Some(&user.address),
                from_address: None,
                to_addresses: &to,
                subject: "",
                body_text: &text,
                raw: Some(raw.as_bytes()),
                size: raw.len(),
                auto_reply,
                now: h.now,
            },
        )
        .await?;
        if let Some(behind) = h.behind {
            // Emails queued earlier in the batch go first: a ticket's rows are sent in id order.
            store::insert_outbox(tx, &behind.take_outbox()).await?;
        }
        store::insert_chat_outbox(
            tx,
            &h.desk.id,
            t.map(|t| t.id),
            row,
            channel.as_str(),
            &user.chat_id,
            &payload,
            h.now,
        )
        .await?;
        Ok(Some(row))
    }

    /// A requester message about chat ticket `t`: the chat text (with buttons where the
    /// requester has something to press), and a copy by email when they linked an address.
    pub(crate) async fn queue_to_chat(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        out: super::outgoing::OutMail,
        kind: &str,
    ) -> Result<Option<i64>, PipelineError> {
        let Some(user) = store::chat_user_by_address(tx, &t.desk, t.requester_address.as_str()).await? else {
            let detail = json!({ "template": kind, "reason": "no chat requester for this ticket" });
            self.event(tx, h, t.id, "loket", "chat_undeliverable", &detail).await?;
            return Ok(None);
        };
        let chat_name = format!("chat_{}", out.template);
        let name = if self.templates.has(out.lang, &chat_name) { chat_name.as_str() } else { out.template };
        let mut text = self.templates.render(out.lang, name, &out.ctx)?.body;
        // An agent's files follow the words, each on its own (a photo or a document), within
        // the per-message budget; the rest are named in a note.
        let mut files = Vec::new();
        if let Some(from) = out.files_from {
            let budget = self.config.outbound.attachment_budget_bytes;
            let mut left = budget;
            let mut omitted = Vec::new();
            for f in store::ticket_files(tx, t.id).await?.into_iter().filter(|f| f.message_row == from && f.accepted) {
                let filename =
                    f.filename.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("file-{}", f.n));
                let size = usize::try_from(f.size).unwrap_or(usize::MAX);
                if size > left {
                    let size_mb = format!("{:.1}", f.size as f64 / 1_048_576.0);
                    omitted.push(crate::templates::OmittedFile { n: f.n, filename, size_mb });
                    continue;
                }
                left -= size;
                files.push(crate::chat::OutChatFile { attachment: f.id, filename, content_type: f.content_type });
            }
            if !omitted.is_empty() {
                let note = crate::templates::FilesNote {
                    for_agent: false,
                    ticket: t.number.to_string(),
                    files: omitted,
                    budget_mb: format!("{}", (budget as f64 / 1_048_576.0 * 10.0).round() / 10.0),
                };
                text = format!("{}\n\n{}", text.trim_end(), self.templates.files_note(out.lang, &note)?);
            }
        }
        let buttons = match out.template {
            "resolution" | "confirm_question" => confirm_buttons(
                &self.templates.label(out.lang, "confirm_yes")?,
                &self.templates.label(out.lang, "confirm_no")?,
                t.number.as_str(),
            ),
            "closed_rating" | "closed_by_desk" => rating_buttons(t.number.as_str()),
            _ => Vec::new(),
        };
        let email = user.email.as_deref().and_then(|e| EmailAddress::parse(e).ok());
        let emailed = email.is_some();
        let row = self.queue_chat(tx, h, &user, Some(t), kind, &text, buttons, out.auto_reply, None, emailed).await?;
        for file in files {
            let name = file.filename.clone();
            self.queue_chat(tx, h, &user, Some(t), kind, &name, Vec::new(), out.auto_reply, Some(file), emailed)
                .await?;
        }
        if let Some(email) = email {
            let copy = super::outgoing::OutMail { to: email, ..out };
            self.queue_email(tx, h, t, copy, kind).await?;
        }
        Ok(row)
    }
}

/// A subject for a ticket opened by free text: its first line, shortened; None without text
/// (the caller names the attachment in the requester's language).
fn subject_of(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut s: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        s.push('…');
    }
    Some(s)
}

/// Digits of the code that links a chat requester's email address.
const EMAIL_CODE_DIGITS: usize = 6;
/// How long a code is valid.
const EMAIL_CODE_VALID_MS: i64 = 30 * 60_000;
/// The least time between two codes for one requester (no mail flood through `/email`).
const EMAIL_CODE_INTERVAL_MS: i64 = 5 * 60_000;
/// Wrong codes before the waiting address is dropped.
const EMAIL_CODE_ATTEMPTS: i64 = 5;

/// A random six-digit code.
fn email_code() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No system randomness: the time's nanoseconds still change every call.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (t.as_nanos() as u64).to_le_bytes();
    }
    format!("{:06}", u64::from_le_bytes(b) % 1_000_000)
}

/// What is stored of a code: bound to the requester and the address.
fn email_code_hash(user: i64, address: &str, code: &str) -> String {
    crate::mail::parse::sha256_hex(format!("{user}|{}|{code}", address.to_ascii_lowercase()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_from_free_text() {
        assert_eq!(subject_of("\n  Printer rusak\nsudah dicoba").as_deref(), Some("Printer rusak"));
        assert_eq!(subject_of(" \n "), None);
        let long = "x".repeat(100);
        assert_eq!(subject_of(&long).unwrap().chars().count(), 81);
    }
}
