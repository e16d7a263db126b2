//! Telegram through teloxide: long polling (`getUpdates`, one instance at a time by lease) or a
//! webhook, updates turned into [`ChatMessage`]s (photos and documents fetched within the size
//! limit), and delivery of outbox rows with Telegram's rate limits (about 30 messages a second
//! per bot, one a second per chat) and its `retry_after`.
//!
//! An update is acknowledged (the next `getUpdates` offset) only after the pipeline committed
//! it; a repeated update is recognised by its id. The bot token is part of every request URL, so
//! errors are logged with the token cut out.

use std::sync::Arc;
use std::time::Duration;

use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{
    AllowedUpdate, CallbackQueryId, FileId, InlineKeyboardButton, InlineKeyboardMarkup, Update, UpdateKind,
};
use tokio_util::sync::CancellationToken;

use super::ChannelError;
use super::chat::RateLimiter;
use super::lease::Lease;
use crate::chat::{ChatFile, ChatMessage, Input, OutChat};
use crate::config::{Desk, Telegram};
use crate::domain::Channel;
use crate::pipeline::Pipeline;

/// A desk's bot.
#[derive(Clone)]
pub struct TelegramBot {
    pub desk: String,
    bot: Bot,
    token: String,
    cfg: Telegram,
    /// Largest file fetched (the desk's attachment limit).
    max_file: usize,
    limiter: Arc<RateLimiter>,
}

impl TelegramBot {
    pub fn new(desk: &Desk, cfg: &Telegram, max_file: usize) -> Result<Self, ChannelError> {
        let client = teloxide::net::default_reqwest_settings()
            .timeout(Duration::from_secs(cfg.poll_timeout_secs as u64 + 15))
            .build()
            .map_err(|e| ChannelError::permanent(format!("telegram client: {e}")))?;
        let bot = Bot::with_client(cfg.token.0.clone(), client).set_api_url(cfg.api_url.clone());
        Ok(Self {
            desk: desk.id.clone(),
            bot,
            token: cfg.token.0.clone(),
            cfg: cfg.clone(),
            max_file,
            limiter: Arc::new(RateLimiter::new(Duration::from_millis(34), Duration::from_secs(1))),
        })
    }

    /// `e` as text without the token.
    fn redact(&self, e: impl std::fmt::Display) -> String {
        e.to_string().replace(&self.token, "<token>")
    }

    /// Long-polls until `cancel` fires, while this instance holds the bot's lease.
    pub async fn poll(self, pipeline: Pipeline, lease: Lease, cancel: CancellationToken) {
        let mut offset: i32 = 0;
        let mut failures = 0u32;
        'leased: while lease.acquire(&cancel).await {
            let hold = lease.hold();
            tokio::pin!(hold);
            loop {
                let request = self
                    .bot
                    .get_updates()
                    .offset(offset)
                    .timeout(self.cfg.poll_timeout_secs)
                    .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
                let updates = tokio::select! {
                    _ = cancel.cancelled() => break 'leased,
                    _ = &mut hold => continue 'leased,
                    r = request.send() => r,
                };
                let updates = match updates {
                    Ok(u) => {
                        failures = 0;
                        u
                    }
                    Err(e) => {
                        failures += 1;
                        let wait = match &e {
                            teloxide::RequestError::RetryAfter(s) => s.duration(),
                            _ => Duration::from_secs(1 << failures.min(6)),
                        };
                        tracing::warn!(desk = %self.desk, error = %self.redact(&e), retry_in_s = wait.as_secs(), "telegram getUpdates failed");
                        tokio::select! {
                            _ = cancel.cancelled() => break 'leased,
                            _ = tokio::time::sleep(wait) => continue,
                        }
                    }
                };
                for u in updates {
                    // The update stays unacknowledged until the pipeline has it (retried with
                    // backoff while the store is away).
                    let mut delay = Duration::from_millis(500);
                    loop {
                        match self.handle(&pipeline, &u).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!(desk = %self.desk, update = u.id.0, error = %self.redact(&e), "telegram update not taken yet; retrying");
                                tokio::select! {
                                    _ = cancel.cancelled() => break 'leased,
                                    _ = tokio::time::sleep(delay) => {}
                                }
                                delay = (delay * 2).min(Duration::from_secs(30));
                            }
                        }
                    }
                    offset = (u.id.0 as i32).saturating_add(1);
                }
            }
        }
        lease.release().await;
        tracing::info!(desk = %self.desk, "telegram polling stopped");
    }

    /// Takes one update: into the pipeline, or into quarantine when it cannot be processed.
    /// An error leaves the update unacknowledged: the caller tries again (polling) or asks
    /// Telegram to (webhook, 503); its variant says whether waiting can help.
    pub async fn handle(&self, pipeline: &Pipeline, u: &Update) -> Result<(), ChannelError> {
        let Some((m, callback)) = self.convert(u).await? else { return Ok(()) };
        match pipeline.chat(&self.desk, &m, crate::now_ms()).await {
            Ok(_) => {}
            Err(e) if e.is_temporary() => return Err(e.into()),
            Err(e) => pipeline.quarantine_chat(&self.desk, &m, &e).await?,
        }
        if let Some(id) = callback {
            // Stops the button's spinner; losing this costs nothing.
            let _ = self.bot.answer_callback_query(CallbackQueryId(id)).await;
        }
        Ok(())
    }

    /// The update as a chat message (None for kinds Loket does not take), and the callback
    /// query to answer.
    async fn convert(&self, u: &Update) -> Result<Option<(ChatMessage, Option<String>)>, ChannelError> {
        let raw = serde_json::to_vec(u).unwrap_or_default();
        let key = format!("tg:{}", u.id.0);
        match &u.kind {
            UpdateKind::Message(msg) => {
                let Some(from) = msg.from.as_ref() else { return Ok(None) };
                if from.is_bot {
                    return Ok(None);
                }
                let text = msg.text().or(msg.caption()).unwrap_or("").to_string();
                let mut files = Vec::new();
                if let Some(sizes) = msg.photo()
                    && let Some(p) = sizes.iter().max_by_key(|p| p.width as u64 * p.height as u64)
                {
                    let name = format!("photo-{}.jpg", msg.id.0);
                    files.push(self.fetch(&p.file.id, p.file.size, Some(name), "image/jpeg").await?);
                }
                if let Some(d) = msg.document() {
                    let ct = d.mime_type.as_ref().map(|m| m.to_string()).unwrap_or("application/octet-stream".into());
                    files.push(self.fetch(&d.file.id, d.file.size, d.file_name.clone(), &ct).await?);
                }
                let m = ChatMessage {
                    channel: Channel::Telegram,
                    key,
                    user_id: from.id.0.to_string(),
                    chat_id: msg.chat.id.0.to_string(),
                    name: Some(from.full_name()),
                    language: from.language_code.clone(),
                    input: Input::Text(text),
                    files,
                    raw,
                };
                Ok(Some((m, None)))
            }
            UpdateKind::CallbackQuery(q) => {
                let chat = q.message.as_ref().map(|m| m.chat().id.0).unwrap_or(q.from.id.0 as i64);
                let m = ChatMessage {
                    channel: Channel::Telegram,
                    key,
                    user_id: q.from.id.0.to_string(),
                    chat_id: chat.to_string(),
                    name: Some(q.from.full_name()),
                    language: q.from.language_code.clone(),
                    input: Input::Button(q.data.clone().unwrap_or_default()),
                    files: Vec::new(),
                    raw,
                };
                Ok(Some((m, Some(q.id.0.clone()))))
            }
            _ => Ok(None),
        }
    }

    /// Fetches a file unless it is larger than the limit (then only its size is known).
    async fn fetch(
        &self,
        id: &FileId,
        size: u32,
        filename: Option<String>,
        ct: &str,
    ) -> Result<ChatFile, ChannelError> {
        let mut file = ChatFile { filename, content_type: ct.to_string(), size: size as usize, bytes: None };
        if size as usize > self.max_file {
            return Ok(file);
        }
        let meta = match self.bot.get_file(id.clone()).await {
            Ok(m) => m,
            // Telegram refuses this file for good (too big for bots, gone): keep what is known.
            Err(teloxide::RequestError::Api(e)) => {
                tracing::warn!(desk = %self.desk, error = %self.redact(e), "telegram file not available; kept without its bytes");
                return Ok(file);
            }
            Err(e) => return Err(ChannelError::temporary(format!("telegram file: {}", self.redact(e)))),
        };
        let mut buf: Vec<u8> = Vec::new();
        self.bot
            .download_file(&meta.path, &mut buf)
            .await
            .map_err(|e| ChannelError::temporary(format!("telegram file: {}", self.redact(e))))?;
        file.size = buf.len();
        if buf.len() <= self.max_file {
            file.bytes = Some(buf);
        }
        Ok(file)
    }

    /// Delivers one outbox payload: its text with buttons, or its file (`file`, the bytes) as a
    /// photo or a document.
    pub async fn send(&self, payload: &OutChat, file: Option<&[u8]>) -> Result<(), ChannelError> {
        let chat: i64 = payload
            .chat_id
            .parse()
            .map_err(|_| ChannelError::permanent(format!("bad telegram chat id `{}`", payload.chat_id)))?;
        self.limiter.acquire(&payload.chat_id).await;
        let sent = match (&payload.file, file) {
            (Some(f), Some(bytes)) => {
                let input = teloxide::types::InputFile::memory(bytes.to_vec()).file_name(f.filename.clone());
                if f.is_photo() {
                    self.bot.send_photo(ChatId(chat), input).await.map(|_| ())
                } else {
                    self.bot.send_document(ChatId(chat), input).await.map(|_| ())
                }
            }
            (Some(f), None) => return Err(ChannelError::permanent(format!("file {} without its bytes", f.attachment))),
            (None, _) => {
                let mut req = self.bot.send_message(ChatId(chat), payload.text.clone());
                if !payload.buttons.is_empty() {
                    let rows = payload.buttons.iter().map(|row| {
                        row.iter()
                            .map(|b| InlineKeyboardButton::callback(b.label.clone(), b.data.clone()))
                            .collect::<Vec<_>>()
                    });
                    req = req.reply_markup(InlineKeyboardMarkup::new(rows));
                }
                req.await.map(|_| ())
            }
        };
        match sent {
            Ok(_) => Ok(()),
            Err(teloxide::RequestError::RetryAfter(s)) => {
                self.limiter.pause(&payload.chat_id, s.duration()).await;
                Err(ChannelError::temporary(format!("telegram flood control: retry after {} s", s.seconds())))
            }
            Err(teloxide::RequestError::Api(e)) => {
                // Blocked by the user, chat gone, bad request: trying again will not help.
                Err(ChannelError::permanent(format!("telegram: {}", self.redact(e))))
            }
            Err(e) => Err(ChannelError::temporary(format!("telegram: {}", self.redact(e)))),
        }
    }
}
