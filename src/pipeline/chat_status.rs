//! What the platforms tell Loket about chat beyond messages: WhatsApp's delivery status
//! callbacks recorded against the outbox row of the message (a failure becomes a ticket event, a
//! metric, and the message by email where the requester linked an address), and Telegram groups
//! answered once that the bot works in private chat. What a callback does to a row is decided in
//! [`crate::chat::delivery`]; here it is applied in one transaction.

use serde_json::json;

use super::outgoing::OutMail;
use super::{Pipeline, PipelineError};
use crate::channel::whatsapp::StatusCallback;
use crate::chat::delivery::{Delivery, Effect, decide};
use crate::chat::{OutChat, chat_address};
use crate::domain::{Channel, EmailAddress, Language};
use crate::store::{self, ChatUser, StoreError};
use crate::templates::{MailContext, PersonCtx};

impl Pipeline {
    /// Applies one WhatsApp status callback of `desk`. A callback for a message Loket does not
    /// know is logged and ignored; a repeated or late one changes nothing.
    pub async fn chat_status(&self, desk: &str, st: &StatusCallback, now: i64) -> Result<Effect, PipelineError> {
        let d = self.config.desk(desk).ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let inbox = d.inboxes.first().ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let h = super::Here { channel: Channel::Whatsapp, ..self.here(d, inbox, now)? };
        let mut tx = self.store.begin().await?;
        let Some(row) = store::outbox_by_platform_id(&mut tx, &d.id, &st.id).await? else {
            tx.rollback().await.map_err(StoreError::from)?;
            tracing::info!(desk, id = %st.id, status = st.status.as_str(), "whatsapp status for a message not sent by this desk; ignored");
            return Ok(Effect::Nothing);
        };
        let current = row.delivery.as_deref().and_then(Delivery::parse);
        let effect = decide(current, st.status);
        let error = st.errors.first().map(|(code, title)| format!("{code} {title}").trim().to_string());
        let to = match effect {
            Effect::Nothing => {
                tx.rollback().await.map_err(StoreError::from)?;
                return Ok(effect);
            }
            Effect::Advance(s) => s,
            Effect::Fail => Delivery::Failed,
        };
        let from = current.map(Delivery::as_str);
        if !store::record_delivery(&mut tx, row.id, from, to.as_str(), error.as_deref(), now).await? {
            // Another callback for the same message changed the row first.
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(Effect::Nothing);
        }
        if effect == Effect::Fail {
            let code = st.errors.first().map(|(c, _)| *c).unwrap_or(0);
            let sent: Option<OutChat> = row.payload.as_deref().and_then(|p| serde_json::from_str(p).ok());
            let ticket = match row.ticket_id {
                Some(id) => store::ticket_by_id(&mut tx, id).await?,
                None => None,
            };
            // The requester behind the chat: the ticket's, else the chat the row went to.
            let user = match (&ticket, &sent) {
                (Some(t), _) => store::chat_user_by_address(&mut tx, &t.desk, t.requester_address.as_str()).await?,
                (None, Some(p)) => {
                    store::chat_user_by_address(&mut tx, &d.id, &chat_address(Channel::Whatsapp, &p.chat_id)).await?
                }
                (None, None) => None,
            };
            let email = user.as_ref().and_then(|u| u.email.as_deref()).and_then(|e| EmailAddress::parse(e).ok());
            let fallback = match (email, &sent) {
                // The words already went to the linked address with the chat message.
                (Some(_), Some(p)) if p.emailed => "email_copy",
                (Some(email), _) => {
                    let words = sent.map(|p| p.text).unwrap_or_default();
                    let lang = user.as_ref().and_then(|u| u.language);
                    match &ticket {
                        Some(t) => {
                            let mut ctx = self.base_ctx(&h, t);
                            ctx.text = words;
                            let lang = lang.unwrap_or(t.language);
                            let out =
                                OutMail { to: email, lang, ..OutMail::to_requester(t, "undelivered_by_chat", ctx) };
                            self.queue_email(&mut tx, &h, t, out, "undelivered_by_chat").await?;
                        }
                        None => {
                            let name = user.as_ref().and_then(|u| u.name.clone());
                            let ctx = MailContext {
                                desk: self.desk_ctx(&h),
                                requester: PersonCtx {
                                    name: name.clone().unwrap_or_default(),
                                    address: email.to_string(),
                                },
                                text: words,
                                ..Default::default()
                            };
                            let lang = lang.unwrap_or(d.language);
                            let seed = format!("undelivered|{}|{}", row.id, now);
                            self.queue_ticketless(
                                &mut tx,
                                &h,
                                &email,
                                name.as_deref(),
                                ("undelivered_by_chat", lang, &ctx),
                                "undelivered",
                                &seed,
                            )
                            .await?;
                        }
                    }
                    "email"
                }
                (None, _) => "none",
            };
            if let Some(t) = &ticket {
                let detail = json!({ "outbox": row.id, "channel": row.channel, "code": code,
                                     "error": error, "fallback": fallback });
                self.event(&mut tx, &h, t.id, "loket", "chat_delivery_failed", &detail).await?;
            }
            self.store.commit(tx).await?;
            self.outbox_wakeup.notify_one();
            self.metrics.chat_undelivered(&d.id, &row.channel, code);
            tracing::warn!(desk, outbox = row.id, code, fallback, "whatsapp message not delivered");
        } else {
            self.store.commit(tx).await?;
        }
        Ok(effect)
    }

    /// A message in a Telegram group, supergroup or channel: the first one is answered (in
    /// `lang`, else the desk's language) that the bot works in private chat; nothing of the
    /// messages or their senders is stored, only that this chat was answered. True when the
    /// answer was queued now.
    pub async fn chat_group(
        &self,
        desk: &str,
        channel: Channel,
        chat_id: &str,
        lang: Option<Language>,
        now: i64,
    ) -> Result<bool, PipelineError> {
        let d = self.config.desk(desk).ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let inbox = d.inboxes.first().ok_or_else(|| PipelineError::UnknownInbox(desk.into()))?;
        let h = super::Here { channel, lang, ..self.here(d, inbox, now)? };
        let mut tx = self.store.begin().await?;
        if !store::claim_group_notice(&mut tx, &d.id, channel.as_str(), chat_id, now).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(false);
        }
        let lang = lang.unwrap_or(d.language);
        let group = ChatUser {
            id: 0,
            desk: d.id.clone(),
            platform: channel.as_str().to_string(),
            user_id: String::new(),
            chat_id: chat_id.to_string(),
            address: chat_address(channel, chat_id),
            name: None,
            language: Some(lang),
            email: None,
            flow: None,
            active_ticket_id: None,
            active_at: None,
            last_inbound_at: now,
        };
        let ctx = MailContext { desk: self.desk_ctx(&h), ..Default::default() };
        let text = self.templates.render(lang, "chat_private_only", &ctx)?.body;
        self.queue_chat(&mut tx, &h, &group, None, "chat_private_only", &text, Vec::new(), true, None, false).await?;
        self.store.commit(tx).await?;
        self.outbox_wakeup.notify_one();
        tracing::info!(desk, channel = channel.as_str(), "a group chat was told the bot works in private chat only");
        Ok(true)
    }
}
