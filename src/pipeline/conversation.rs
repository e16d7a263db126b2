//! The ticket's life by email after the acknowledgement, as orchestration: who the sender is
//! (`ticket::thread::sender_role`), what their message means (`ticket::decide`), and carrying the
//! decision out in the transaction: the message stored, events, one UPDATE, clocks, messages
//! queued. Agents' replies count only with a valid signed token.

use serde_json::json;

use super::outgoing::OutMail;
use super::{Action, Here, Link, Outcome, Pipeline, PipelineError};
use crate::config::Agent;
use crate::domain::Channel;
use crate::domain::EmailAddress;
use crate::mail::loopguard::MailKind;
use crate::mail::parse::ParsedMail;
use crate::store::{self, Ticket};
use crate::ticket::behalf;
use crate::ticket::command::{self, Command};
use crate::ticket::decide::{
    Actor, Decision, Flow, Intent as Touch, MergeInto, ParticipantChange, Said, Send, ToRequester, decide,
};
use crate::ticket::reading;
use crate::ticket::thread::{SenderRole, sender_role};
use crate::ticket::token::tokens_in;
use crate::webhook::{Change, ReplyBy};

/// The stored message a decision is about, and who wrote it: `actor` as the events name them,
/// `sender` when it is a person's address (notifications count per sender), `agent` when an
/// agent wrote.
pub(crate) struct About<'a> {
    pub mail: &'a ParsedMail,
    pub row: i64,
    pub actor: &'a str,
    pub sender: Option<&'a EmailAddress>,
    pub agent: Option<&'a Agent>,
}

/// The part of a reply the sender wrote now.
fn fresh_text(mail: &ParsedMail) -> String {
    crate::mail::trim::trim_reply_text(&mail.text).trim().to_string()
}

/// The ticket `t` leads to: itself, or, when it was merged (merged tickets are closed), the
/// ticket it was merged into.
pub(crate) async fn survivor(tx: &mut store::Tx, t: Ticket) -> Result<Ticket, store::StoreError> {
    if !t.is_finished() {
        return Ok(t);
    }
    match store::merged_into(tx, t.id).await? {
        Some(into) => Ok(store::ticket_by_id(tx, into).await?.unwrap_or(t)),
        None => Ok(t),
    }
}

impl Pipeline {
    /// A person's mail that threads to ticket `t`: what it may do depends on who sent it.
    pub(crate) async fn on_reply(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
        t: Ticket,
    ) -> Result<Outcome, PipelineError> {
        let sender = mail.from.as_ref().map(|m| m.address.clone()).expect("parse guarantees a sender");
        let agent = h.desk.agent(&sender);
        let mut requesters = vec![t.requester_address.clone()];
        if t.channel != Channel::Email
            && let Some(email) = store::chat_user_by_address(tx, &t.desk, t.requester_address.as_str())
                .await?
                .and_then(|u| u.email)
                .and_then(|e| EmailAddress::parse(&e).ok())
        {
            // A chat requester who linked an address answers the email copies as themselves.
            requesters.push(email);
        }
        let participants = store::participants(tx, t.id).await?;
        match sender_role(&sender, &requesters, &participants, agent.is_some()) {
            SenderRole::Agent => self.on_agent_reply(tx, h, mail, msg, t, agent.expect("role says agent")).await,
            SenderRole::Requester => self.on_requester(tx, h, mail, msg, t, Said::Text).await,
            SenderRole::Participant => self.on_participant(tx, h, mail, msg, t).await,
            SenderRole::Stranger => {
                // Never appended to another's ticket, never relayed to its requester: a ticket of
                // their own, linked for the agents.
                let mut out = self.create(tx, h, mail, msg, MailKind::Human, Some(Link::Mentioned(&t)), None).await?;
                out.reason = Some(format!("sender is not a party to {}: opened a ticket of their own", t.number));
                Ok(out)
            }
        }
    }

    /// An agent's new mail to the desk (it threads to no ticket): a request brought for someone
    /// else (`ticket::behalf`: a `#requester` line, a forwarded mail) opens the ticket for that
    /// person, who gets the acknowledgement; the agent's words above a forward are an internal
    /// note. Anything else is the agent's own request.
    pub(crate) async fn on_behalf(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
    ) -> Result<Outcome, PipelineError> {
        let agent = mail.from.as_ref().map(|m| m.address.clone()).expect("parse guarantees a sender");
        let is_desk = |a: &EmailAddress| h.desk.is_own_address(a) || h.desk.agent(a).is_some();
        let read = match behalf::read(&mail.subject, &mail.text, is_desk) {
            Ok(None) => Ok(msg.raw.and_then(|raw| behalf::attached(&mail.subject, raw, &mail.text, is_desk))),
            other => other,
        };
        let b = match read {
            Ok(None) => return self.create(tx, h, mail, msg, MailKind::Human, None, None).await,
            Ok(Some(b)) => match self.behalf_refusal(tx, h, mail, &agent).await? {
                None => b,
                Some(reason) => return self.behalf_refused(tx, h, mail, msg, &agent, reason).await,
            },
            Err(reason) => return self.behalf_refused(tx, h, mail, msg, &agent, reason).await,
        };
        // The request as the requester would have sent it, without the agent's mail's thread
        // (the acknowledgement is the first mail the requester gets about it).
        let mut request = mail.clone();
        request.from = Some(crate::mail::parse::Mailbox { name: b.name.clone(), address: b.requester.clone() });
        request.reply_to = None;
        request.subject = b.subject.clone();
        request.text = b.text.clone();
        request.to.clear();
        request.cc.clear();
        request.message_id = None;
        request.references.clear();
        request.in_reply_to.clear();
        let mut out = self.create(tx, h, &request, msg, MailKind::Human, None, None).await?;
        if let Some(t) = self.created(tx, h, &out).await? {
            let detail = json!({ "agent": agent.as_str(), "via": b.via.as_str(), "requester": b.requester.as_str() });
            self.event(tx, h, t.id, agent.as_str(), "on_behalf", &detail).await?;
            if !b.note.is_empty() {
                self.event(tx, h, t.id, agent.as_str(), "note", &json!({ "text": b.note })).await?;
            }
            out.reason = Some(format!("opened for {} by {} ({})", b.requester, agent, b.via.as_str()));
        }
        Ok(out)
    }

    /// Why `agent`'s mail may not open a ticket for someone else, if it may not: anyone can
    /// write an agent's address in `From`, so the desk's own receiving server must have found the
    /// mail authentic (`hygiene.authserv_id`), and one agent opens at most
    /// `limits.behalf_tickets_per_agent_per_hour` such tickets an hour.
    async fn behalf_refusal(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        agent: &EmailAddress,
    ) -> Result<Option<String>, PipelineError> {
        let Some(authserv_id) = h.desk.hygiene.authserv_id.as_deref() else {
            return Ok(Some(
                "the desk cannot tell an agent's mail from a forgery: it opens tickets for others only from mail its receiving server found authentic (set hygiene.authserv_id)".into(),
            ));
        };
        if !crate::mail::hygiene::authenticated(&mail.auto.authentication_results, authserv_id, agent.domain()) {
            return Ok(Some(format!(
                "{authserv_id} did not find this mail authentic for {} (no DMARC or DKIM pass in its Authentication-Results)",
                agent.domain()
            )));
        }
        let limit = i64::from(self.config.limits.behalf_tickets_per_agent_per_hour);
        self.events_written(tx, h).await?;
        let opened = store::behalf_openings_since(tx, &h.desk.id, agent.as_str(), h.now - super::HOUR_MS).await?;
        Ok((opened >= limit)
            .then(|| format!("{opened} tickets opened for others in the last hour, the limit is {limit}")))
    }

    /// An agent's mail that may not open a ticket for someone else opens one of the agent's own,
    /// so nothing is lost; the event says why, and the agent is told under that ticket.
    async fn behalf_refused(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
        agent: &EmailAddress,
        reason: String,
    ) -> Result<Outcome, PipelineError> {
        let mut out = self.create(tx, h, mail, msg, MailKind::Human, None, None).await?;
        if let Some(t) = self.created(tx, h, &out).await? {
            self.event(tx, h, t.id, agent.as_str(), "on_behalf_refused", &json!({ "reason": reason })).await?;
            if let Some(a) = h.desk.agent(agent) {
                let mut ctx = self.base_ctx(h, &t);
                ctx.reason = reason.clone();
                self.queue(tx, h, &t, OutMail::to_agent(a, h.desk.language, "agent_refused", ctx)).await?;
            }
        }
        out.reason = Some(format!("not opened for someone else: {reason}"));
        Ok(out)
    }

    /// The ticket an outcome created, if it created one.
    async fn created(&self, tx: &mut store::Tx, h: &Here<'_>, out: &Outcome) -> Result<Option<Ticket>, PipelineError> {
        match (&out.ticket, out.action) {
            (Some(n), Action::Created) => Ok(store::ticket_by_number(tx, &h.desk.id, n).await?),
            _ => Ok(None),
        }
    }

    /// A participant's mail (admitted by the desk's policy, e.g. a supervisor in CC): appended and
    /// shown to the agents; it never confirms, reopens or rates. After closing it opens a linked
    /// ticket of the participant's own.
    async fn on_participant(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
        t: Ticket,
    ) -> Result<Outcome, PipelineError> {
        let text = fresh_text(mail);
        let d = decide(&t, &Touch::Participant { text: &text, inbox: &h.inbox.name }, h.desk, h.now);
        self.carry_out(tx, h, mail, msg, t, None, d).await
    }

    /// The requester's message on ticket `t`, with what a chat button or command `said`.
    pub(crate) async fn on_requester(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
        t: Ticket,
        said: Said,
    ) -> Result<Outcome, PipelineError> {
        let text = fresh_text(mail);
        let verdicts = super::verdicts(h.desk, mail);
        let missing = if t.awaits_requirements() {
            // The conditions are judged on the request as first written, and on this reply.
            let opening = store::opening_text(tx, t.id).await?;
            self.missing_now(h, &t, &opening, mail, verdicts.accepted)
        } else {
            Vec::new()
        };
        let touch = Touch::Requester {
            text: &text,
            said,
            missing: &missing,
            refused_files: !verdicts.refused.is_empty(),
            inbox: &h.inbox.name,
        };
        let d = decide(&t, &touch, h.desk, h.now);
        self.carry_out(tx, h, mail, msg, t, None, d).await
    }

    /// Carries out decision `d` about message `mail` on ticket `t`: a follow-up ticket, or the
    /// message stored, the events recorded, the patch written (clocks moved along) and the
    /// messages queued. `agent` is the sender when an agent wrote.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn carry_out(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
        t: Ticket,
        agent: Option<&Agent>,
        d: Decision,
    ) -> Result<Outcome, PipelineError> {
        let sender = mail.from.as_ref().map(|m| m.address.clone()).expect("parse guarantees a sender");
        if let Flow::FollowUp { reason } = d.flow {
            // A reply to a closed ticket never disappears: it opens a new ticket linked to the old.
            let mut out = self.create(tx, h, mail, msg, MailKind::Human, Some(Link::FollowUp(&t)), None).await?;
            out.reason = Some(reason);
            return Ok(out);
        }
        let row = self.append(tx, h, mail, msg, &t).await?;
        let reason = d.reason.clone();
        let about = About { mail, row, actor: sender.as_str(), sender: Some(&sender), agent };
        let mut d = d;
        let merge = d.merge.take();
        for change in std::mem::take(&mut d.participants) {
            match change {
                ParticipantChange::Add(a) => {
                    store::insert_participants(tx, t.id, &[a.to_string()], "agent", h.now).await?;
                }
                ParticipantChange::Remove(a) => store::remove_participant(tx, t.id, a.as_str()).await?,
            }
        }
        let t2 = self.settle(tx, h, &t, d, Some(&about)).await?;
        if let Some(into) = merge {
            self.merge(tx, h, &t2, &into, sender.as_str()).await?;
        }
        Ok(Outcome { ticket: Some(t.number), action: Action::Appended, reason })
    }

    /// Merges ticket `t` (already closed by the decision, its notice queued) into `into`: its
    /// messages and participants move there, and its number and any ticket merged into it
    /// before now lead there, so that later replies to either number thread to the survivor.
    async fn merge(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        into: &MergeInto,
        actor: &str,
    ) -> Result<(), PipelineError> {
        store::merge_tickets(tx, t.id, into.id, h.now).await?;
        let detail = json!({ "from": t.number.as_str() });
        self.event(tx, h, into.id, actor, "merged_from", &detail).await?;
        Ok(())
    }

    /// Settles decision `d` on ticket `t` once its message (if any) is stored: the events in one
    /// statement (the sender's as `about.actor`, citing the stored message), the patch with the
    /// clocks moved along, then the messages. Without `about` it is the scheduler's decision.
    /// Returns the ticket as it is now.
    pub(crate) async fn settle(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        d: Decision,
        about: Option<&About<'_>>,
    ) -> Result<Ticket, PipelineError> {
        let events: Vec<store::NewEvent<'_>> = d
            .events
            .iter()
            .map(|e| {
                let mut detail = e.detail.clone();
                if e.cites_message
                    && let Some(a) = about
                {
                    detail["message"] = json!(a.row);
                }
                let actor = match (e.actor, about) {
                    (Actor::Sender, Some(a)) => a.actor,
                    _ => "loket",
                };
                store::NewEvent { ticket_id: t.id, actor, kind: e.kind, detail }
            })
            .collect();
        self.events(tx, h, &events).await?;
        let t2 = if d.patch.is_empty() { t.clone() } else { self.change(tx, h, t, &d.patch).await? };
        // A reply on the public conversation: a person's message (automatic mail has no sender),
        // an agent's only when their words go to the requester.
        let words_out = d.sends.iter().any(|s| matches!(s, Send::Requester(r) if !r.text.is_empty()));
        let reply = about.filter(|a| a.sender.is_some()).and_then(|a| match a.agent {
            Some(_) => words_out.then_some(ReplyBy::Agent),
            None if a.sender == Some(&t.requester_address) => Some(ReplyBy::Requester),
            None => Some(ReplyBy::Participant),
        });
        let change =
            Change { before: Some(t), after: &t2, events: events.iter().map(|e| (e.kind, &e.detail)).collect(), reply };
        self.queue_webhooks(tx, h, &change).await?;
        for send in d.sends {
            self.send(tx, h, &t2, about, send).await?;
        }
        Ok(t2)
    }

    /// Queues one message of a decision on ticket `t` (as it is after the patch), `about` a
    /// message or, without it, the scheduler's.
    async fn send(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        about: Option<&About<'_>>,
        send: Send,
    ) -> Result<(), PipelineError> {
        let mail = about.map(|a| a.mail);
        // The message's files travel only when it has some (no query otherwise).
        let about_files = about.filter(|a| !a.mail.attachments.is_empty());
        let sender = about.and_then(|a| a.sender);
        let agent = about.and_then(|a| a.agent);
        let actor = sender.map_or("loket", |s| s.as_str());
        match send {
            Send::Requester(ToRequester {
                template,
                text,
                missing,
                refused_files,
                answering,
                personal,
                record,
                copy_participants,
                linked,
            }) => {
                let mut ctx = self.base_ctx(h, t);
                if let Some(n) = linked {
                    ctx.ticket.linked_number = n.to_string();
                }
                let words = personal || !text.is_empty();
                if !text.is_empty() {
                    ctx.text = text.clone();
                    ctx.reason = text;
                }
                ctx.missing = missing;
                if refused_files && let Some(mail) = mail {
                    ctx.refused = super::verdicts(h.desk, mail).refused;
                }
                // An agent's words carry the agent's files (accepted by the desk's policy).
                let files = about_files.filter(|a| a.agent.is_some() && words).map(|a| a.row);
                let mut out = OutMail::to_requester(t, template, ctx).with_files(files);
                if answering && let Some(mail) = mail {
                    out = out.answering(mail);
                }
                if personal {
                    out = out.personal();
                }
                let copy = copy_participants.then(|| out.ctx.clone());
                if let Some(r) = self.queue(tx, h, t, out).await?
                    && let Some(kind) = record
                {
                    let detail = json!({ "template": template, "message": r });
                    self.event(tx, h, t.id, actor, kind, &detail).await?;
                }
                if let Some(ctx) = copy {
                    self.copy_to_participants(tx, h, t, template, ctx, personal).await?;
                }
            }
            Send::Agents { event, text } => {
                if let Some(sender) = sender {
                    self.notify_agents(tx, h, t, event, &text, sender, about_files.map(|a| a.row)).await?;
                }
            }
            Send::Alert { address, event, due_at } => {
                if let Some(a) = h.desk.agent(&address) {
                    let mut ctx = self.base_ctx(h, t);
                    ctx.deadline = due_at.map(|d| crate::templates::When::at(d, h.desk.tz));
                    ctx.text = event.replace('_', " / ");
                    ctx.event = event;
                    self.queue(tx, h, t, OutMail::to_agent(a, h.desk.language, "sla_alert", ctx)).await?;
                }
            }
            Send::Agent { address, event, text } => {
                if let Some(a) = h.desk.agent(&address) {
                    // A hand-over carries the handing agent's files with the words.
                    let files = about_files.filter(|a| a.agent.is_some()).map(|a| a.row);
                    self.notify_agent(tx, h, t, a, event, &text, files).await?;
                }
            }
            Send::Actor { template, reason, changes, unverified } => {
                let Some(agent) = agent else { return Ok(()) };
                let mut ctx = self.base_ctx(h, t);
                ctx.reason = reason;
                ctx.changes = changes;
                let mut out = OutMail::to_agent(agent, h.desk.language, template, ctx);
                if unverified && let Some(mail) = mail {
                    out = OutMail { auto_reply: true, auto_generated: false, token_for: None, ..out }.answering(mail);
                }
                self.queue(tx, h, t, out).await?;
            }
        }
        Ok(())
    }

    /// A copy of a message to the requester for each participant of email ticket `t` (agents'
    /// replies, the resolution notice): the same words in `participant_copy`, which tells them
    /// why they get it and that only the requester confirms.
    async fn copy_to_participants(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        template: &'static str,
        ctx: crate::templates::MailContext,
        personal: bool,
    ) -> Result<(), PipelineError> {
        if t.channel != Channel::Email {
            return Ok(());
        }
        let participants = store::participants(tx, t.id).await?;
        let mut copied = Vec::new();
        let mut ctx = ctx;
        ctx.event = template.to_string();
        for p in participants {
            let mut out = OutMail::to_requester(t, "participant_copy", ctx.clone());
            out.to = p.clone();
            out.to_name = None;
            if personal {
                out = out.personal();
            }
            if self.queue(tx, h, t, out).await?.is_some() {
                copied.push(p.to_string());
            }
        }
        if !copied.is_empty() {
            let detail = json!({ "template": template, "to": copied });
            self.event(tx, h, t.id, "loket", "copied_to_participants", &detail).await?;
        }
        Ok(())
    }

    /// Stores the message on ticket `t` with its attachments; returns the message row.
    async fn append(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        mut msg: store::NewMessage<'_>,
        t: &Ticket,
    ) -> Result<i64, PipelineError> {
        msg.ticket_id = Some(t.id);
        msg.action = Action::Appended.as_str();
        let row = store::insert_message(tx, self.store.files(), &msg).await?;
        self.insert_attachments(tx, h, row, mail).await?;
        Ok(row)
    }

    fn missing_now(
        &self,
        h: &Here<'_>,
        t: &Ticket,
        opening: &str,
        mail: &ParsedMail,
        accepted: usize,
    ) -> Vec<crate::catalogue::Missing> {
        let Some(sub) = h.desk.catalogue.subcategory(&t.category, &t.subcategory) else { return Vec::new() };
        let sender = mail.from.as_ref().map(|m| m.address.clone()).expect("sender");
        reading::missing_requirements(
            sub,
            t.ticket_type,
            &format!("{}\n{}\n{}", t.subject, opening, mail.text),
            accepted,
            &sender,
            &mail.cc,
            |d| h.desk.catalogue.is_internal_domain(d),
        )
    }

    /// An agent's reply: verified by its signed token, then relayed and/or commands applied.
    async fn on_agent_reply(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        mut msg: store::NewMessage<'_>,
        t: Ticket,
        agent: &Agent,
    ) -> Result<Outcome, PipelineError> {
        msg.kind = "agent";
        let actor = agent.address.as_str();
        let mut ids = mail.references.clone();
        ids.extend(mail.in_reply_to.iter().cloned());
        let tokens = tokens_in(&ids);
        let valid = |number: &str| {
            self.config
                .signer
                .as_ref()
                .is_some_and(|s| tokens.iter().any(|(n, token)| n == number && s.verify(&h.desk.id, n, actor, token)))
        };
        let mut token_ok = valid(t.number.as_str());
        if !token_ok && tokens.iter().any(|(n, _)| n != t.number.as_str()) {
            // A notification of a ticket merged into this one still carries the agent's word.
            token_ok = store::numbers_merged_into(tx, t.id).await?.iter().any(|n| valid(n));
        }
        let reply = if token_ok {
            command::parse(&fresh_text(mail)).map_err(|e| e.to_string())
        } else {
            Err("the reply carries no valid ticket token: reply to the notification Loket sent to your address".into())
        };
        // The ticket a `#merge` names, looked up at this desk only.
        let named: Vec<_> = match &reply {
            Ok(r) => r
                .commands
                .iter()
                .filter_map(|c| if let Command::Merge(n) = c { Some(n.clone()) } else { None })
                .collect(),
            Err(_) => Vec::new(),
        };
        let found =
            if named.is_empty() { Vec::new() } else { store::tickets_by_numbers(tx, &t.desk, &named[..1]).await? };
        let commands = reply.as_ref().map(|r| r.commands.clone()).unwrap_or_default();
        let d = decide(&t, &Touch::Agent { agent, reply, target: found.first() }, h.desk, h.now);
        // Learning from agents: an accepted #category / #type / #priority is kept as a labelled
        // example, in this transaction.
        let accepted = d.flow == Flow::Append && !d.events.iter().any(|e| e.kind == "agent_reply_refused");
        let (before, patch) = (t.clone(), d.patch.clone());
        let out = self.carry_out(tx, h, mail, msg, t, Some(agent), d).await?;
        if accepted {
            self.record_corrections(tx, h, &before, &patch, &commands, actor).await?;
        }
        Ok(out)
    }
}
