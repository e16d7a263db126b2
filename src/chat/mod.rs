//! Chat channels: what the platform adapters (`channel::telegram`, `channel::whatsapp`) hand the
//! pipeline, what the pipeline hands back for delivery, the requesters' command grammar and the
//! guided `/baru` flow. Everything here is pure; the ticket logic is `pipeline::chat`.

pub mod command;
pub mod delivery;
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
    /// The same words went by email to the requester's linked address in the same transaction
    /// (a failed delivery then sends no second mail).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emailed: bool,
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

/// What a WhatsApp template's parameters can say about the ticket a message is about.
#[derive(Debug, Clone, Default)]
pub struct TicketValues {
    pub number: String,
    pub subject: String,
    pub name: String,
    pub desk: String,
}

/// The purpose of a message of `kind` (its template's name) among those with their own approved
/// WhatsApp template: `resolution`, `rating`, `reminder`.
pub fn template_purpose(kind: &str) -> Option<&'static str> {
    match kind {
        "resolution" | "confirm_question" => Some("resolution"),
        "closed_rating" | "closed_by_desk" | "auto_closed" => Some("rating"),
        "pending_reminder" => Some("reminder"),
        _ => None,
    }
}

/// The approved template sent instead of a message of `kind` outside WhatsApp's 24-hour window:
/// the purpose's own (`[desk.whatsapp.templates.<purpose>]`) with its parameters filled in, else
/// the number's general `template` with the ticket number; None when neither is configured.
pub fn window_template(w: &crate::config::Whatsapp, kind: &str, v: &TicketValues) -> Option<TemplateMessage> {
    use crate::config::TemplateParam;
    let own = match template_purpose(kind) {
        Some("resolution") => w.templates.resolution.as_ref(),
        Some("rating") => w.templates.rating.as_ref(),
        Some("reminder") => w.templates.reminder.as_ref(),
        _ => None,
    };
    if let Some(t) = own {
        let params = t
            .params
            .iter()
            .map(|p| {
                let s = match p {
                    TemplateParam::Number => &v.number,
                    TemplateParam::Subject => &v.subject,
                    TemplateParam::Name => &v.name,
                    TemplateParam::Desk => &v.desk,
                };
                // WhatsApp refuses empty parameters and newlines in them; long ones are cut.
                let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
                let one_line = if one_line.is_empty() { "-".to_string() } else { one_line };
                one_line.chars().take(200).collect()
            })
            .collect();
        return Some(TemplateMessage { name: t.name.clone(), language: t.language.clone(), params });
    }
    w.template.clone().map(|name| TemplateMessage {
        name,
        language: w.template_language.clone(),
        params: vec![v.number.clone()],
    })
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

/// A shared location as the text of the message the agents read: the place's name and address
/// where given, the coordinates, and a map link (no words: the agents' language is the desk's).
pub fn location_text(lat: f64, lon: f64, name: &str, address: &str) -> String {
    let clean = |s: &str| -> String { cut(s.trim(), 300).chars().filter(|c| !c.is_control()).collect() };
    let mut lines = Vec::new();
    if !name.trim().is_empty() {
        lines.push(format!("📍 {}", clean(name)));
    }
    if !address.trim().is_empty() {
        lines.push(clean(address));
    }
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        lines.push(format!("{lat}, {lon}"));
        return lines.join("\n");
    }
    lines.push(format!("{lat:.6}, {lon:.6}"));
    lines.push(format!("https://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}#map=17/{lat:.6}/{lon:.6}"));
    lines.join("\n")
}

/// The name a file sent without one gets (a voice note, a video): its kind, the message's
/// key, and the extension of its type, e.g. `voice-wamid.ABC.ogg`.
pub fn media_name(kind: &str, key: &str, mime: &str) -> String {
    let base = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ext = match base.as_str() {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/wav" | "audio/x-wav" => "wav",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "video/quicktime" => "mov",
        "video/webm" => "webm",
        "image/webp" => "webp",
        _ => "bin",
    };
    let key: String =
        key.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).take(40).collect();
    format!("{kind}-{key}.{ext}")
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
    fn locations_read_as_text_with_a_map_link() {
        let t = location_text(-6.175392, 106.827153, "Monas", "Gambir, Jakarta Pusat");
        assert_eq!(
            t,
            "📍 Monas\nGambir, Jakarta Pusat\n-6.175392, 106.827153\n\
             https://www.openstreetmap.org/?mlat=-6.175392&mlon=106.827153#map=17/-6.175392/106.827153"
        );
        assert_eq!(location_text(1.5, 2.5, "", "").lines().count(), 2, "coordinates and the link only");
        assert!(!location_text(100.0, 2.0, "", "").contains("http"), "no link to nowhere");
        assert!(!location_text(1.0, 2.0, "a\u{7}b", "").contains('\u{7}'));
    }

    fn number(templates: crate::config::WhatsappTemplates, general: Option<&str>) -> crate::config::Whatsapp {
        let secret = || crate::config::Secret("s".into());
        crate::config::Whatsapp {
            phone_number_id: "1".into(),
            access_token: secret(),
            app_secret: secret(),
            verify_token: secret(),
            graph_url: "http://x".into(),
            template: general.map(String::from),
            template_language: "id".into(),
            session_minutes: 120,
            templates,
        }
    }

    #[test]
    fn each_purpose_has_its_own_template_with_its_parameters() {
        use crate::config::{ApprovedTemplate, TemplateParam, WhatsappTemplates};
        let resolution = ApprovedTemplate {
            name: "resolution_v2".into(),
            language: "id".into(),
            params: vec![TemplateParam::Name, TemplateParam::Number, TemplateParam::Subject],
        };
        let w = number(WhatsappTemplates { resolution: Some(resolution), ..Default::default() }, Some("pembaruan"));
        let v = TicketValues {
            number: "A-HERO26000001".into(),
            subject: "Printer\nrusak  total".into(),
            name: String::new(),
            desk: "HERO".into(),
        };
        let t = window_template(&w, "resolution", &v).unwrap();
        assert_eq!(t.name, "resolution_v2");
        assert_eq!(t.params, vec!["-", "A-HERO26000001", "Printer rusak total"], "one line, never empty");
        // A purpose without its own template, and other messages, use the general one.
        for kind in ["closed_rating", "pending_reminder", "agent_reply"] {
            let t = window_template(&w, kind, &v).unwrap();
            assert_eq!((t.name.as_str(), t.params.clone()), ("pembaruan", vec!["A-HERO26000001".to_string()]));
        }
        assert!(window_template(&number(WhatsappTemplates::default(), None), "agent_reply", &v).is_none());
        assert_eq!(template_purpose("closed_by_desk"), Some("rating"));
        assert_eq!(template_purpose("pending_reminder"), Some("reminder"));
    }

    #[test]
    fn media_names() {
        assert_eq!(media_name("voice", "wamid.AB/../C", "audio/ogg; codecs=opus"), "voice-wamid.AB..C.ogg");
        assert_eq!(media_name("video", "9", "video/mp4"), "video-9.mp4");
        assert_eq!(media_name("audio", "9", "application/x-unknown"), "audio-9.bin");
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
