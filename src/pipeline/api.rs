//! The ticket API's way into the pipeline. A ticket opened by an API client goes through
//! [`Pipeline::create`], as mail does: the same routing, acknowledgement by mail, agents'
//! notification and SLA clocks. A message, note or change is an agent's reply written by the
//! client (its commands built by `http::api::change`): `ticket::decide` judges it with the
//! agents' rules and the one transition table, and `carry_out` applies it in one transaction.
//! The client is not a configured agent: it acts as `api-<key id>@api.invalid`, and what an
//! agent would get back by mail (the confirmation, the refusal) is the call's answer instead.

use super::{Action, Outcome, Pipeline, PipelineError};
use crate::config::Agent;
use crate::domain::{Direction, EmailAddress};
use crate::mail::loopguard::MailKind;
use crate::mail::parse::{Mailbox, ParsedMail};
use crate::store::{self, StoreError};
use crate::ticket::TicketNumber;
use crate::ticket::command::AgentReply;
use crate::ticket::decide::{Flow, Intent, Send, decide};

/// The channel name API messages are stored and audited under.
pub const API_CHANNEL: &str = "api";

/// A ticket asked for by an API client (checked by the caller: an address, a bounded text).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub requester: EmailAddress,
    pub name: Option<String>,
    pub subject: String,
    pub text: String,
    /// The client's `Idempotency-Key`, if it sent one: a retry finds the ticket it opened.
    pub idempotency_key: Option<String>,
}

/// The API client behind a call: its key's id and name.
#[derive(Debug, Clone, Copy)]
pub struct ApiClient<'a> {
    pub key_id: i64,
    pub name: &'a str,
}

impl ApiClient<'_> {
    /// The agent the client acts as: no group, no supervisor, an address that receives nothing.
    pub fn agent(&self) -> Agent {
        Agent {
            address: EmailAddress::parse(&format!("api-{}@api.invalid", self.key_id))
                .expect("a number at a fixed domain is an address"),
            name: format!("API {}", self.name),
            groups: Vec::new(),
            supervisor: false,
        }
    }
}

/// What became of a reply written through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    /// Applied; `changes` as the agent's confirmation would list them.
    Done { changes: Vec<String> },
    /// Refused by the agents' rules (nothing changed), with the reason an agent would be told.
    Refused(String),
    /// No ticket of that number at the desk.
    NotFound,
}

impl Pipeline {
    /// Opens a ticket for `req` at `desk` on behalf of API `client`, as if the requester had
    /// mailed the desk's first inbox.
    pub async fn api_create(
        &self,
        desk: &str,
        req: &ApiRequest,
        client: ApiClient<'_>,
        now: i64,
    ) -> Result<Outcome, PipelineError> {
        let desk = self.config.desk(desk).ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let inbox = desk.inboxes.first().ok_or_else(|| PipelineError::UnknownInbox(desk.id.clone()))?;
        let key = match &req.idempotency_key {
            Some(k) => format!("api:{}:{k}", client.key_id),
            None => fresh_key(&client)?,
        };
        let mut tx = self.store.begin().await?;
        if let Some(seen) = store::find_seen(&mut tx, &desk.id, &key).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(Outcome { ticket: seen.ticket_number, action: Action::Duplicate, reason: None });
        }
        let h = self.here(desk, inbox, now)?;
        let mail = ParsedMail::from_chat(
            Mailbox { name: req.name.clone(), address: req.requester.clone() },
            req.subject.clone(),
            req.text.clone(),
            Vec::new(),
        );
        let actor = client.agent();
        let msg = store::NewMessage {
            desk: &desk.id,
            ticket_id: None,
            direction: Direction::Inbound.as_str(),
            channel: API_CHANNEL,
            inbox: Some(&inbox.name),
            idempotency_key: &key,
            message_id: None,
            kind: MailKind::Human.as_str(),
            action: "",
            reason: None,
            peer_address: Some(req.requester.as_str()),
            from_address: Some(req.requester.as_str()),
            to_addresses: &[],
            subject: &req.subject,
            body_text: &req.text,
            raw: None,
            size: req.subject.len() + req.text.len(),
            auto_reply: false,
            now,
        };
        let out = self.create(&mut tx, &h, &mail, msg, MailKind::Human, None, None).await?;
        if let (Some(n), Action::Created) = (&out.ticket, out.action)
            && let Some(t) = store::ticket_by_number(&mut tx, &desk.id, n).await?
        {
            let detail = serde_json::json!({ "key": client.key_id, "client": client.name });
            self.event(&mut tx, &h, t.id, actor.address.as_str(), "api_created", &detail).await?;
        }
        self.store.commit(tx).await?;
        self.outbox_wakeup.notify_one();
        self.metrics.message(&desk.id, API_CHANNEL, out.action.as_str(), None);
        tracing::info!(
            desk = %desk.id,
            key = client.key_id,
            action = out.action.as_str(),
            ticket = out.ticket.as_ref().map_or("-", TicketNumber::as_str),
            "api ticket request processed"
        );
        Ok(out)
    }

    /// Applies `reply` (a message, a note, a change) to ticket `number` of `desk` as API
    /// `client`, with the agents' rules.
    pub async fn api_reply(
        &self,
        desk: &str,
        number: &TicketNumber,
        reply: AgentReply,
        client: ApiClient<'_>,
        now: i64,
    ) -> Result<Acted, PipelineError> {
        let desk = self.config.desk(desk).ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let inbox = desk.inboxes.first().ok_or_else(|| PipelineError::UnknownInbox(desk.id.clone()))?;
        let mut tx = self.store.begin().await?;
        let Some(t) = store::ticket_by_number(&mut tx, &desk.id, number).await? else {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(Acted::NotFound);
        };
        let h = self.here(desk, inbox, now)?;
        let agent = client.agent();
        let mail = ParsedMail::from_chat(
            Mailbox { name: Some(agent.name.clone()), address: agent.address.clone() },
            t.subject.clone(),
            reply.text.clone(),
            Vec::new(),
        );
        let commands = reply.commands.clone();
        let mut d = decide(&t, &Intent::Agent { agent: &agent, reply: Ok(reply), target: None }, desk, now);
        debug_assert_eq!(d.flow, Flow::Append, "an agent's reply never opens a follow-up");
        // The confirmation or refusal an agent would get by mail is the call's answer.
        let mut answer = Acted::Done { changes: Vec::new() };
        d.sends.retain(|s| match s {
            Send::Actor { template, reason, changes, .. } => {
                answer = if *template == "agent_refused" {
                    Acted::Refused(reason.clone())
                } else {
                    Acted::Done { changes: changes.clone() }
                };
                false
            }
            _ => true,
        });
        if let Acted::Refused(_) = answer {
            // Nothing of a refused call is kept on the ticket: the audit row says it was asked.
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(answer);
        }
        let key = fresh_key(&client)?;
        let msg = store::NewMessage {
            desk: &desk.id,
            ticket_id: None,
            direction: Direction::Inbound.as_str(),
            channel: API_CHANNEL,
            inbox: Some(&inbox.name),
            idempotency_key: &key,
            message_id: None,
            kind: "agent",
            action: "",
            reason: None,
            peer_address: Some(agent.address.as_str()),
            from_address: Some(agent.address.as_str()),
            to_addresses: &[],
            subject: &mail.subject,
            body_text: &mail.text,
            raw: None,
            size: mail.text.len(),
            auto_reply: false,
            now,
        };
        let (before, patch) = (t.clone(), d.patch.clone());
        self.carry_out(&mut tx, &h, &mail, msg, t, Some(&agent), d).await?;
        self.record_corrections(&mut tx, &h, &before, &patch, &commands, agent.address.as_str()).await?;
        self.store.commit(tx).await?;
        self.outbox_wakeup.notify_one();
        tracing::info!(desk = %desk.id, key = client.key_id, ticket = %number, "api reply applied");
        Ok(answer)
    }
}

/// A message key of `client` that no other call has: the call names no idempotency key.
fn fresh_key(client: &ApiClient<'_>) -> Result<String, StoreError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| StoreError::Setup(format!("no randomness: {e}")))?;
    Ok(format!("api:{}:{}", client.key_id, hex::encode(random)))
}
