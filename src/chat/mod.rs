//! Chat channels: what the platform adapters (`channel::telegram`, `channel::whatsapp`) hand the
//! pipeline, what the pipeline hands back for delivery, the requesters' command grammar and the
//! guided `/baru` flow. Everything here is pure; the ticket logic is `pipeline::chat`.

pub mod command;
pub mod flow;

use serde::{Deserialize, Serialize};

use crate::domain::{Channel, Language};

/// Bytes of a chat message's text that are kept (longer text is cut, and says so).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// One inbound chat update, normalised.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub channel: Channel,
    /// Idempotency key: `tg:<update_id>` or `wa:<wamid>`.
    pub key: String,
    /// The platform's id of the person.
    pub user_id: String,
    /// Where answers go.
    pub chat_id: String,
    pub name: Option<String>,
    /// The platform's language hint (`id`, `en-US`, …).
    pub language: Option<String>,
    pub input: Input,
    pub files: Vec<ChatFile>,
    /// The update as received (JSON), kept as the message's raw bytes.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Typed text, a caption, or nothing (a bare photo).
    Text(String),
    /// A button pressed: its data.
    Button(String),
}

/// A photo or document; `bytes` is None when it was not fetched (over the size limit, or the
/// platform would not give it).
#[derive(Debug, Clone)]
pub struct ChatFile {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
    pub bytes: Option<Vec<u8>>,
}

/// A button under a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub data: String,
}

/// What the outbox delivers to a chat (the `payload` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutChat {
    pub chat_id: String,
    pub text: String,
    /// Rows of buttons.
    #[serde(default)]
    pub buttons: Vec<Vec<Button>>,
    /// WhatsApp outside the 24-hour window: the approved template to send instead.
    #[serde(default)]
    pub template: Option<TemplateMessage>,
    /// WhatsApp's list of more than three choices: the button that opens it and the list's
    /// title, in the requester's language (labels `chat_list_button`, `chat_list_title`).
    #[serde(default)]
    pub list_labels: Option<(String, String)>,
    /// A file sent on its own after the message's text (an agent's attachment): a photo or a
    /// document. Its bytes are read from the store when the row is delivered.
    #[serde(default)]
    pub file: Option<OutChatFile>,
}

/// A ticket's file sent to a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutChatFile {
    /// The `attachments` row holding (or pointing at) its bytes.
    pub attachment: i64,
    pub filename: String,
    pub content_type: String,
}

impl OutChatFile {
    /// Sent as a photo (shown in the chat) rather than a document: JPEG and PNG.
    pub fn is_photo(&self) -> bool {
        matches!(self.content_type.as_str(), "image/jpeg" | "image/jpg" | "image/png")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub name: String,
    pub language: String,
    pub params: Vec<String>,
}

/// The requester address of a chat user's tickets: `.invalid` (RFC 2606) so that no mail can
/// ever go there.
pub fn chat_address(channel: Channel, user_id: &str) -> String {
    let safe: String =
        user_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(64).collect();
    format!("{}-{}@chat.invalid", channel.as_str(), safe.to_ascii_lowercase())
}

/// `id` or `en` from a platform's language hint, else `fallback`.
pub fn language_of(hint: &str) -> Option<Language> {
    let h = hint.to_ascii_lowercase();
    if h.starts_with("en") {
        Some(Language::En)
    } else if h.starts_with("id") || h.starts_with("in") {
        Some(Language::Id)
    } else {
        None
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The buttons under a resolution notice: `yes` and `no` are their labels in the requester's
/// language (`_labels.j2`'s `confirm_yes` and `confirm_no`).
pub fn confirm_buttons(yes: &str, no: &str, number: &str) -> Vec<Vec<Button>> {
    vec![vec![
        Button { label: yes.into(), data: format!("ok:{number}") },
        Button { label: no.into(), data: format!("no:{number}") },
    ]]
}

pub fn rating_buttons(number: &str) -> Vec<Vec<Button>> {
    vec![(1..=5).map(|n| Button { label: "⭐".repeat(n), data: format!("r:{number}:{n}") }).collect()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_addresses_are_undeliverable_and_safe() {
        assert_eq!(chat_address(Channel::Telegram, "555"), "telegram-555@chat.invalid");
        assert_eq!(chat_address(Channel::Whatsapp, "62811<x>@y"), "whatsapp-62811xy@chat.invalid");
        assert!(crate::domain::EmailAddress::parse(&chat_address(Channel::Telegram, "-100200")).is_ok());
    }

    #[test]
    fn cut_respects_characters() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn language_hints() {
        assert_eq!(language_of("en-GB"), Some(Language::En));
        assert_eq!(language_of("id"), Some(Language::Id));
        assert_eq!(language_of("in"), Some(Language::Id));
        assert_eq!(language_of("de"), None);
    }
}
