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
use crate::chat::{ChatFile, ChatMessage, Input, OutChat, location_text, media_name};
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
        // Only private chats open tickets: in a group, supergroup or channel the bot says once
        // that it works in private chat, and keeps nothing of the update.
        if let Some(chat) = shared_chat(u) {
            let lang = update_language(u);
            return match pipeline.chat_group(&self.desk, Channel::Telegram, &chat, lang, crate::now_ms()).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_temporary() => Err(e.into()),
                Err(e) => {
                    tracing::warn!(desk = %self.desk, error = %e, "telegram group notice not queued");
                    Ok(())
                }
            };
        }
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
                let mut text = msg.text().or(msg.caption()).unwrap_or("").to_string();
                if let Some(v) = msg.venue() {
                    text = location_text(v.location.latitude, v.location.longitude, &v.title, &v.address);
                } else if let Some(l) = msg.location() {
                    text = location_text(l.latitude, l.longitude, "", "");
                }
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
                // Voice notes, audio, video and round video notes: files the agents receive.
                let key_part = format!("{}", msg.id.0);
                if let Some(v) = msg.voice() {
                    let ct = v.mime_type.as_ref().map(ToString::to_string).unwrap_or_else(|| "audio/ogg".into());
                    files.push(
                        self.fetch(&v.file.id, v.file.size, Some(media_name("voice", &key_part, &ct)), &ct).await?,
                    );
                }
                if let Some(a) = msg.audio() {
                    let ct = a.mime_type.as_ref().map(ToString::to_string).unwrap_or_else(|| "audio/mpeg".into());
                    let name = a.file_name.clone().unwrap_or_else(|| media_name("audio", &key_part, &ct));
                    files.push(self.fetch(&a.file.id, a.file.size, Some(name), &ct).await?);
                }
                if let Some(v) = msg.video() {
                    let ct = v.mime_type.as_ref().map(ToString::to_string).unwrap_or_else(|| "video/mp4".into());
                    let name = v.file_name.clone().unwrap_or_else(|| media_name("video", &key_part, &ct));
                    files.push(self.fetch(&v.file.id, v.file.size, Some(name), &ct).await?);
                }
                if let Some(v) = msg.video_note() {
                    let name = media_name("video", &key_part, "video/mp4");
                    files.push(self.fetch(&v.file.id, v.file.size, Some(name), "video/mp4").await?);
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

/// The chat of an update that comes from a group, supergroup or channel (not a private chat).
pub fn shared_chat(u: &Update) -> Option<String> {
    let chat = match &u.kind {
        UpdateKind::Message(m) | UpdateKind::ChannelPost(m) => &m.chat,
        UpdateKind::CallbackQuery(q) => q.message.as_ref()?.chat(),
        _ => return None,
    };
    (!chat.is_private()).then(|| chat.id.0.to_string())
}

/// The sender's language hint of an update, if any.
fn update_language(u: &Update) -> Option<crate::domain::Language> {
    let from = match &u.kind {
        UpdateKind::Message(m) => m.from.as_ref(),
        UpdateKind::CallbackQuery(q) => Some(&q.from),
        _ => None,
    };
    from.and_then(|f| f.language_code.as_deref()).and_then(crate::chat::language_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(chat_type: &str, chat_id: i64) -> Update {
        let chat = match chat_type {
            "private" => serde_json::json!({"id": chat_id, "type": "private", "first_name": "U"}),
            t => serde_json::json!({"id": chat_id, "type": t, "title": "Grup Kantor"}),
        };
        let json = serde_json::json!({"update_id": 1, "message": {"message_id": 1, "date": 1_790_000_000,
            "chat": chat, "from": {"id": 5, "is_bot": false, "first_name": "U", "language_code": "en"}, "text": "halo"}});
        // As the webhook reads it: from the bytes.
        serde_json::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn only_private_chats_are_taken() {
        assert!(matches!(update("group", -100).kind, UpdateKind::Message(_)), "{:?}", update("group", -100).kind);
        assert_eq!(shared_chat(&update("private", 5)), None);
        assert_eq!(shared_chat(&update("group", -100)).as_deref(), Some("-100"));
        assert_eq!(shared_chat(&update("supergroup", -1001)).as_deref(), Some("-1001"));
        assert_eq!(update_language(&update("group", -100)), Some(crate::domain::Language::En));
    }
}
