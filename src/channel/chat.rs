//! Every desk's chat clients, built once from the configuration: the outbox worker sends
//! through them, the HTTP server hands webhooks to them, `serve` runs the Telegram pollers.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::ChannelError;
use super::telegram::TelegramBot;
use super::whatsapp::WhatsappClient;
use crate::chat::OutChat;
use crate::config::Config;
use crate::domain::Channel;

#[derive(Clone, Default)]
pub struct ChatClients {
    pub telegram: HashMap<String, TelegramBot>,
    pub whatsapp: HashMap<String, WhatsappClient>,
}

impl ChatClients {
    pub fn from_config(cfg: &Config) -> Result<Self, ChannelError> {
        let mut c = Self::default();
        for desk in &cfg.desks {
            // Files larger than the desk accepts are not fetched at all.
            let max_file = desk.attachments.as_ref().map(|p| p.max_bytes).unwrap_or(cfg.limits.max_message_bytes);
            if let Some(t) = &desk.telegram {
                c.telegram.insert(desk.id.clone(), TelegramBot::new(desk, t, max_file)?);
            }
            if let Some(w) = &desk.whatsapp {
                c.whatsapp.insert(desk.id.clone(), WhatsappClient::new(desk, w, max_file)?);
            }
        }
        Ok(c)
    }

    /// Delivers an outbox row of `channel` for `desk`.
    /// A desk without the channel's client is temporary: the configuration may be given it
    /// again before the row runs out of attempts.
    /// `file`: the bytes of the payload's file, when it sends one.
    /// Returns the platform's id of the sent message where it gives one (WhatsApp's `wamid`).
    pub async fn send(
        &self,
        desk: &str,
        channel: Channel,
        payload: Option<&str>,
        file: Option<&[u8]>,
    ) -> Result<Option<String>, ChannelError> {
        let p: OutChat = serde_json::from_str(payload.unwrap_or(""))
            .map_err(|e| ChannelError::permanent(format!("unreadable {channel} payload: {e}")))?;
        match channel {
            Channel::Telegram => match self.telegram.get(desk) {
                Some(bot) => bot.send(&p, file).await.map(|()| None),
                None => Err(ChannelError::temporary(format!("desk {desk} has no Telegram bot configured"))),
            },
            Channel::Whatsapp => match self.whatsapp.get(desk) {
                Some(w) => w.send(&p, file).await,
                None => Err(ChannelError::temporary(format!("desk {desk} has no WhatsApp number configured"))),
            },
            Channel::Email => Err(ChannelError::permanent("an email row is not a chat message")),
        }
    }
}

/// Spacing of sends: one per `global` across the bot, one per `per_chat` to a chat.
pub struct RateLimiter {
    global: Duration,
    per_chat: Duration,
    state: Mutex<(Instant, HashMap<String, Instant>)>,
}

impl RateLimiter {
    pub fn new(global: Duration, per_chat: Duration) -> Self {
        Self { global, per_chat, state: Mutex::new((Instant::now(), HashMap::new())) }
    }

    /// Waits for this send's slot.
    pub async fn acquire(&self, chat: &str) {
        let wait = {
            let mut g = self.state.lock().await;
            let now = Instant::now();
            if g.1.len() > 10_000 {
                g.1.retain(|_, t| *t > now);
            }
            let chat_next = g.1.get(chat).copied().unwrap_or(now);
            let slot = now.max(g.0).max(chat_next);
            g.0 = slot + self.global;
            g.1.insert(chat.to_string(), slot + self.per_chat);
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds everything back for `d` (the platform asked us to wait).
    pub async fn pause(&self, chat: &str, d: Duration) {
        let mut g = self.state.lock().await;
        let until = Instant::now() + d;
        g.0 = g.0.max(until);
        g.1.insert(chat.to_string(), until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_to_one_chat_are_a_second_apart_and_the_bot_stays_under_thirty_a_second() {
        let l = RateLimiter::new(Duration::from_millis(34), Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            l.acquire("1").await;
        }
        assert!(start.elapsed() >= Duration::from_secs(2), "three sends to one chat take two seconds");
        let start = tokio::time::Instant::now();
        for i in 0..30 {
            l.acquire(&format!("c{i}")).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(29 * 34), "thirty chats: one slot every 34 ms");
    }
}
