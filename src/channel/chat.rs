//! Every desk's chat clients, built once from the configuration: the outbox worker sends
//! through them, the HTTP server hands webhooks to them, `serve` runs the Telegram pollers.

use std::collections::HashMap;

use super::telegram::TelegramBot;
use super::transport::SendError;
use super::whatsapp::WhatsappClient;
use crate::chat::OutChat;
use crate::config::Config;

#[derive(Clone, Default)]
pub struct ChatClients {
    pub telegram: HashMap<String, TelegramBot>,
    pub whatsapp: HashMap<String, WhatsappClient>,
}

impl ChatClients {
    pub fn from_config(cfg: &Config) -> Result<Self, String> {
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
    pub async fn send(&self, desk: &str, channel: &str, payload: Option<&str>) -> Result<(), SendError> {
        let perm = |message: String| SendError { message, permanent: true };
        let p: OutChat = serde_json::from_str(payload.unwrap_or(""))
            .map_err(|e| perm(format!("unreadable {channel} payload: {e}")))?;
        match channel {
            "telegram" => match self.telegram.get(desk) {
                Some(bot) => bot.send(&p).await,
                None => {
                    Err(SendError { message: format!("desk {desk} has no Telegram bot configured"), permanent: false })
                }
            },
            "whatsapp" => match self.whatsapp.get(desk) {
                Some(w) => w.send(&p).await,
                None => Err(SendError {
                    message: format!("desk {desk} has no WhatsApp number configured"),
                    permanent: false,
                }),
            },
            other => Err(perm(format!("unknown channel `{other}`"))),
        }
    }
}
