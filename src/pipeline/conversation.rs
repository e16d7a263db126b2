//! The ticket's life by email after the acknowledgement: agents reply by thread (their words are
//! relayed from the desk's address, their commands change the ticket, but only with a valid
//! signed token), requesters reply (appended; after resolution a confirmation closes and asks for
//! a rating, anything else reopens; late or after closing a new linked ticket opens), and the
//! completeness check puts a ticket back in the queue once its requirements arrive.

use serde_json::json;

use super::outgoing::OutMail;
use super::parse::ParsedMail;
use super::policy;
use super::{Action, Here, Link, Outcome, Pipeline, PipelineError, loopguard::MailKind};
use crate::config::Agent;
use crate::domain::{Channel, PendingReason, TicketStatus};
use crate::store::{self, Ticket, TicketPatch};
use crate::ticket::command::{self, Command};
use crate::ticket::thread::{SenderRole, sender_role};
use crate::ticket::token::tokens_in;

const DAY_MS: i64 = 86_400_000;

/// What a requester's message means for their ticket: read from its text (mail, chat free text),
/// or said by a chat button or command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Intent {
    FromText,
    Confirm,
    Reopen,
    Rate(u8, String),
}

/// The part of a reply the sender wrote now.
fn fresh_text(mail: &ParsedMail) -> String {
    super::trim::trim_reply(&mail.text).text.trim().to_string()
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
            && let Some(email) =
                store::chat_user_by_address(tx, &t.desk, &t.requester_address).await?.and_then(|u| u.email)
        {
            // A chat requester who linked an address answers the email copies as themselves.
            requesters.push(email);
        }
        let participants = store::participants(tx, t.id).await?;
        match sender_role(&sender, &requesters, &participants, agent.is_some()) {
            SenderRole::Agent => self.on_agent_reply(tx, h, mail, msg, t, agent.expect("role says agent")).await,
            SenderRole::Requester => self.on_requester(tx, h, mail, msg, t, Intent::FromText).await,
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
        let sender = mail.from.as_ref().map(|m| m.address.clone()).expect("parse guarantees a sender");
        if t.is_finished() {
            let mut out = self.create(tx, h, mail, msg, MailKind::Human, Some(Link::FollowUp(&t)), None).await?;
            out.reason = Some(format!("follow-up of {} (ticket closed)", t.number));
            return Ok(out);
        }
        let row = self.append(tx, h, mail, msg, &t).await?;
        let detail = json!({ "message": row, "kind": "human", "role": "participant", "inbox": h.inbox.name });
        self.event(tx, h, t.id, sender.as_str(), "message_received", &detail).await?;
        self.notify_agents(tx, h, &t, "participant", &fresh_text(mail), &sender).await?;
        Ok(Outcome { ticket: Some(t.number), action: Action::Appended, reason: Some("participant".into()) })
    }

    /// The requester's message on ticket `t`, meaning `intent`.
    pub(crate) async fn on_requester(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        mail: &ParsedMail,
        msg: store::NewMessage<'_>,
        t: Ticket,
        intent: Intent,
    ) -> Result<Outcome, PipelineError> {
        let sender = mail.from.as_ref().map(|m| m.address.clone()).expect("parse guarantees a sender");
        let closed = t.is_finished();
        let late = t.status == TicketStatus::Resolved
            && t.resolved_at.is_some_and(|r| h.now - r > h.desk.reopen_days as i64 * DAY_MS);
        let text = fresh_text(mail);
        let rating = match &intent {
            Intent::Rate(r, c) => Some((*r, c.clone())),
            Intent::FromText => policy::parse_rating(&text),
            _ => None,
        };
        if t.status == TicketStatus::Closed
            && t.rating_requested_at.is_some()
            && t.rating.is_none()
            && let Some((rating, comment)) = rating
        {
            let row = self.append(tx, h, mail, msg, &t).await?;
            let patch = TicketPatch { rating: Some((rating, comment.clone())), ..Default::default() };
            self.change(tx, h, &t, &patch).await?;
            self.event(
                tx,
                h,
                t.id,
                sender.as_str(),
                "rated",
                &json!({ "rating": rating, "comment": comment, "message": row }),
            )
            .await?;
            let ctx = self.base_ctx(h, &t);
            self.queue(tx, h, &t, OutMail::to_requester(&t, "rating_thanks", ctx).answering(mail)).await?;
            return Ok(Outcome {
                ticket: Some(t.number),
                action: Action::Appended,
                reason: Some("rating recorded".into()),
            });
        }
        if closed || late {
            // A reply to a closed ticket never disappears: it opens a new ticket linked to the old.
            let mut out = self.create(tx, h, mail, msg, MailKind::Human, Some(Link::FollowUp(&t)), None).await?;
            out.reason = Some(format!(
                "follow-up of {} ({})",
                t.number,
                if late { "reopen window passed" } else { "ticket closed" }
            ));
            return Ok(out);
        }
        let row = self.append(tx, h, mail, msg, &t).await?;
        let actor = sender.as_str();
        let verdicts = super::verdicts(h.desk, mail);
        if !verdicts.refused.is_empty() {
            let mut ctx = self.base_ctx(h, &t);
            ctx.refused = verdicts.refused.clone();
            self.queue(tx, h, &t, OutMail::to_requester(&t, "attachments_refused", ctx).answering(mail)).await?;
        }
        let status = t.status.as_str();
        if status == TicketStatus::Resolved.as_str() {
            use crate::ticket::answer::{Answer, read_answer};
            let answer = match intent {
                Intent::Confirm => Answer::Confirm,
                Intent::Reopen => Answer::Reopen,
                _ => read_answer(&text),
            };
            if answer == Answer::Unclear {
                // Never guessed: the words are kept and the requester is asked the two exact words
                // (buttons in chat).
                self.event(tx, h, t.id, actor, "answer_unclear", &json!({ "message": row })).await?;
                let ctx = self.base_ctx(h, &t);
                self.queue(tx, h, &t, OutMail::to_requester(&t, "confirm_question", ctx).answering(mail)).await?;
                return Ok(Outcome {
                    ticket: Some(t.number),
                    action: Action::Appended,
                    reason: Some("answer to the resolution notice unclear: asked again".into()),
                });
            }
            let confirmed = answer == Answer::Confirm;
            if confirmed {
                let patch = TicketPatch {
                    status: Some(TicketStatus::Closed),
                    closed_at: Some(Some(h.now)),
                    rating_requested_at: Some(h.now),
                    ..Default::default()
                };
                let t2 = self.change(tx, h, &t, &patch).await?;
                self.event(tx, h, t.id, actor, "confirmed", &json!({ "message": row })).await?;
                self.event(tx, h, t.id, "loket", "closed", &json!({ "by": "requester confirmation" })).await?;
                let ctx = self.base_ctx(h, &t2);
                self.queue(tx, h, &t2, OutMail::to_requester(&t2, "closed_rating", ctx).answering(mail)).await?;
            } else {
                let patch =
                    TicketPatch { status: Some(TicketStatus::Open), resolved_at: Some(None), ..Default::default() };
                let t2 = self.change(tx, h, &t, &patch).await?;
                self.event(tx, h, t.id, actor, "reopened", &json!({ "message": row })).await?;
                let ctx = self.base_ctx(h, &t2);
                self.queue(tx, h, &t2, OutMail::to_requester(&t2, "reopened", ctx).answering(mail)).await?;
                self.notify_agents(tx, h, &t2, "reopened", &text, &sender).await?;
            }
        } else if status == TicketStatus::Pending.as_str() {
            // Waiting on the requester: their reply puts the ticket back in the queue, unless it
            // still lacks a requirement.
            let requirements = t.pending_reason == Some(PendingReason::Requirements);
            let missing = if requirements {
                // The conditions are judged on the request as first written, and on this reply.
                let opening = store::opening_text(tx, t.id).await?;
                self.missing_now(h, &t, &opening, mail, verdicts.accepted)
            } else {
                Vec::new()
            };
            if missing.is_empty() {
                let patch =
                    TicketPatch { status: Some(TicketStatus::Open), pending_reason: Some(None), ..Default::default() };
                let t2 = self.change(tx, h, &t, &patch).await?;
                let (kind, notice) = if requirements {
                    ("requirements_complete", "requirements")
                } else {
                    ("requester_replied", "reply")
                };
                self.event(tx, h, t.id, actor, kind, &json!({ "message": row })).await?;
                self.notify_agents(tx, h, &t2, notice, &text, &sender).await?;
            } else {
                let detail = json!({ "message": row, "still_missing": missing });
                self.event(tx, h, t.id, actor, "message_received", &detail).await?;
                let mut ctx = self.base_ctx(h, &t);
                ctx.missing = missing;
                self.queue(tx, h, &t, OutMail::to_requester(&t, "incomplete", ctx).answering(mail)).await?;
            }
        } else {
            self.event(
                tx,
                h,
                t.id,
                actor,
                "message_received",
                &json!({ "message": row, "kind": "human", "inbox": h.inbox.name }),
            )
            .await?;
            self.notify_agents(tx, h, &t, "reply", &text, &sender).await?;
        }
        Ok(Outcome { ticket: Some(t.number), action: Action::Appended, reason: None })
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
        let row = store::insert_message(tx, &msg).await?;
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
    ) -> Vec<policy::Missing> {
        let Some(sub) = h.desk.catalogue.subcategory(&t.category, &t.subcategory) else { return Vec::new() };
        let sender = mail.from.as_ref().map(|m| m.address.clone()).expect("sender");
        policy::missing_requirements(
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
        let row = self.append(tx, h, mail, msg, &t).await?;
        let actor = agent.address.as_str();
        let mut ids = mail.references.clone();
        ids.extend(mail.in_reply_to.iter().cloned());
        let token_ok = self.config.signer.as_ref().is_some_and(|s| {
            tokens_in(&ids)
                .iter()
                .any(|(number, token)| *number == t.number && s.verify(&h.desk.id, number, actor, token))
        });
        let text = fresh_text(mail);
        let refuse = |reason: String| (reason, row);
        let parsed = if token_ok {
            command::parse(&text).map_err(|e| refuse(e.to_string()))
        } else {
            Err(refuse(
                "the reply carries no valid ticket token: reply to the notification Loket sent to your address".into(),
            ))
        };
        let reply = match parsed {
            Ok(r) => r,
            Err((reason, row)) => return self.refuse_agent(tx, h, &t, agent, row, reason, Some(mail)).await,
        };
        self.apply_commands(tx, h, t, agent, reply, row).await
    }

    /// Records a refused agent reply and tells the agent why; the ticket does not change. A reply
    /// without a valid token is answered as an automatic reply (rate-limited per sender).
    #[allow(clippy::too_many_arguments)]
    async fn refuse_agent(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        agent: &Agent,
        row: i64,
        reason: String,
        unverified: Option<&ParsedMail>,
    ) -> Result<Outcome, PipelineError> {
        let actor = agent.address.as_str();
        let detail = json!({ "message": row, "reason": reason });
        self.event(tx, h, t.id, actor, "agent_reply_refused", &detail).await?;
        let mut ctx = self.base_ctx(h, t);
        ctx.reason = reason.clone();
        let mut out = OutMail::to_agent(agent, &h.desk.language, "agent_refused", ctx);
        if let Some(mail) = unverified {
            out = OutMail { auto_reply: true, auto_generated: false, token_for: None, ..out }.answering(mail);
        }
        self.queue(tx, h, t, out).await?;
        Ok(Outcome { ticket: Some(t.number.clone()), action: Action::Appended, reason: Some(reason) })
    }

    async fn apply_commands(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: Ticket,
        agent: &Agent,
        reply: command::AgentReply,
        row: i64,
    ) -> Result<Outcome, PipelineError> {
        let desk = h.desk;
        let actor = agent.address.as_str();
        // Check everything first: a reply with one bad command changes nothing.
        let mut category = (t.category.clone(), t.subcategory.clone());
        let mut ttype = t.ticket_type;
        let mut problems = Vec::new();
        for c in &reply.commands {
            match c {
                Command::Assign(k) if desk.group(k).is_none() && desk.find_agent(k).is_none() => {
                    problems.push(format!("#assign {k}: no such agent or group"));
                }
                Command::Category(c, s) => match desk.catalogue.subcategory(c, s) {
                    Some(sub) => {
                        category = (c.clone(), s.clone());
                        if ttype.is_some_and(|t| !sub.types.contains(&t)) {
                            ttype = sub.types.first().copied();
                        }
                    }
                    None => problems.push(format!("#category {c}/{s}: not in the {} catalogue", desk.id)),
                },
                Command::Type(tt) => match desk.catalogue.subcategory(&category.0, &category.1) {
                    Some(sub) if !sub.types.contains(tt) => problems.push(format!(
                        "#type {tt}: {}/{} allows {}",
                        category.0,
                        category.1,
                        sub.types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                    _ => ttype = Some(*tt),
                },
                Command::Escalate
                    if desk.next_layer(t.group_id.as_deref(), &category.0, &category.1).is_none()
                        && desk.supervisors().is_empty() =>
                {
                    problems.push("#escalate: no higher layer and no supervisor configured".into());
                }
                _ => {}
            }
        }
        if !problems.is_empty() {
            return self.refuse_agent(tx, h, &t, agent, row, problems.join("; "), None).await;
        }

        let mut changes = Vec::new();
        let mut to_requester: Vec<(&'static str, String)> = Vec::new();
        let mut notify: Vec<(&Agent, &'static str)> = Vec::new();
        let text = reply.text.clone();
        let internal = reply.has("note");
        let mut patch = TicketPatch::default();
        let mut status = t.status;
        let mut group = t.group_id.clone();
        let mut assignee = t.assignee.clone();
        for c in &reply.commands {
            let detail = match c {
                Command::Resolve => {
                    status = TicketStatus::Resolved;
                    patch.resolved_at = Some(Some(h.now));
                    patch.pending_reason = Some(None);
                    if !internal {
                        to_requester.push(("resolution", text.clone()));
                    }
                    "status: resolved".to_string()
                }
                Command::Pending => {
                    status = TicketStatus::Pending;
                    patch.pending_reason = Some(Some(PendingReason::Requester));
                    "status: pending (waiting for the requester)".to_string()
                }
                Command::Assign(k) => {
                    if let Some(g) = desk.group(k) {
                        group = Some(g.id.clone());
                        assignee = None;
                        notify.extend(desk.members(&g.id).into_iter().map(|a| (a, "assigned")));
                        format!("assigned to group {}", g.id)
                    } else {
                        let a = desk.find_agent(k).expect("checked");
                        assignee = Some(a.address.to_string());
                        if a.address != agent.address {
                            notify.push((a, "assigned"));
                        }
                        format!("assigned to {}", a.name)
                    }
                }
                Command::Escalate => match desk.next_layer(group.as_deref(), &category.0, &category.1) {
                    Some(g) => {
                        group = Some(g.id.clone());
                        assignee = None;
                        notify.extend(desk.members(&g.id).into_iter().map(|a| (a, "escalated")));
                        format!("escalated to {} (layer {})", g.id, g.layer)
                    }
                    None => {
                        notify.extend(desk.supervisors().into_iter().map(|a| (a, "escalated")));
                        "escalated to the supervisors".to_string()
                    }
                },
                Command::Note => "internal note added".to_string(),
                Command::Priority(p) => {
                    patch.priority = Some(*p);
                    format!("priority: {p}")
                }
                Command::Category(c, s) => format!("category: {c}/{s}"),
                Command::Type(tt) => format!("type: {tt}"),
                Command::Reject(reason) => {
                    status = TicketStatus::Rejected;
                    patch.closed_at = Some(Some(h.now));
                    to_requester.push(("rejection", reason.clone()));
                    format!("status: rejected ({reason})")
                }
                Command::Waive => {
                    if status == TicketStatus::Pending && t.pending_reason == Some(PendingReason::Requirements) {
                        status = TicketStatus::Open;
                        patch.pending_reason = Some(None);
                        "requirements waived: the request goes on without them".to_string()
                    } else {
                        "no requirements were waiting".to_string()
                    }
                }
                Command::Close => {
                    status = TicketStatus::Closed;
                    patch.closed_at = Some(Some(h.now));
                    patch.rating_requested_at = Some(h.now);
                    to_requester.push(("closed_rating", String::new()));
                    "status: closed".to_string()
                }
            };
            self.event(
                tx,
                h,
                t.id,
                actor,
                "command",
                &json!({ "command": c.name(), "change": detail, "message": row }),
            )
            .await?;
            changes.push(detail);
        }
        if internal {
            self.event(tx, h, t.id, actor, "note", &json!({ "message": row, "text": text })).await?;
        } else if !text.is_empty() && !to_requester.iter().any(|(tpl, _)| *tpl == "resolution") {
            to_requester.insert(0, ("agent_reply", text.clone()));
        }
        if status == TicketStatus::New {
            status = TicketStatus::Open;
        }
        patch.status = Some(status);
        patch.group_id = Some(group);
        patch.assignee = Some(assignee);
        if category != (t.category.clone(), t.subcategory.clone()) {
            patch.category = Some(category);
        }
        if ttype != t.ticket_type {
            patch.ticket_type = ttype;
        }
        patch.first_response_at = Some(h.now);
        let t2 = self.change(tx, h, &t, &patch).await?;
        for (template, body) in to_requester {
            let mut ctx = self.base_ctx(h, &t2);
            ctx.text = body.clone();
            ctx.reason = body;
            let out = OutMail::to_requester(&t2, template, ctx);
            let out = if template == "agent_reply" { out.personal() } else { out };
            if let Some(r) = self.queue(tx, h, &t2, out).await? {
                self.event(tx, h, t.id, actor, "sent_to_requester", &json!({ "template": template, "message": r }))
                    .await?;
            }
        }
        for (a, event) in notify {
            self.notify_agent(tx, h, &t2, a, event, &text).await?;
        }
        if !reply.commands.is_empty() {
            let mut ctx = self.base_ctx(h, &t2);
            ctx.changes = changes;
            self.queue(tx, h, &t2, OutMail::to_agent(agent, &desk.language, "agent_confirmation", ctx)).await?;
        }
        Ok(Outcome { ticket: Some(t.number), action: Action::Appended, reason: None })
    }
}
