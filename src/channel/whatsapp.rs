//! WhatsApp Cloud API: the webhook (GET verification handshake; POSTs checked against
//! `X-Hub-Signature-256`, the HMAC-SHA256 of the raw body under the App Secret, before anything is
//! parsed), inbound messages turned into [`ChatMessage`]s (text, button and list replies, images
//! and documents fetched through the media endpoint within the size limit), and delivery through
//! the Graph API `messages` endpoint: text, reply buttons (up to 3), lists (up to 10 rows), or the
//! approved template outside the 24-hour window.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::ChannelError;
use crate::chat::delivery::Delivery;
use crate::chat::{Button, ChatFile, ChatMessage, Input, OutChat, OutChatFile, location_text, media_name};
use crate::config::{Desk, Whatsapp};
use crate::domain::Channel;

/// The most of a Graph API answer (JSON or an error) that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A Graph API answer's JSON, read within [`MAX_ANSWER_BYTES`].
async fn json_of(resp: reqwest::Response) -> Result<Value, String> {
    let body = super::read_bounded(resp, MAX_ANSWER_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// Largest webhook body accepted (Meta's batches are far smaller).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`; compared in
/// constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Constant-time comparison of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest;
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// One inbound message of a webhook batch, before its media are fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub phone_number_id: String,
    pub wamid: String,
    pub from: String,
    pub name: Option<String>,
    pub input: Input,
    /// Media to fetch: (media id, filename, mime type).
    pub media: Vec<(String, Option<String>, String)>,
    /// The message object as received.
    pub raw: Value,
}

/// A webhook body as a WhatsApp Business notification, or why it is not one.
fn notification(body: &[u8]) -> Result<Value, ChannelError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ChannelError::permanent(format!("not JSON: {e}")))?;
    if v["object"].as_str() != Some("whatsapp_business_account") {
        return Err(ChannelError::permanent("not a whatsapp_business_account notification"));
    }
    Ok(v)
}

/// The `value` of each `messages` change of a notification (messages and statuses both come
/// in these).
fn message_values(v: &Value) -> impl Iterator<Item = &Value> {
    v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["changes"].as_array().into_iter().flatten())
        .filter(|change| change["field"].as_str() == Some("messages"))
        .map(|change| &change["value"])
}

/// The messages of a webhook body (status callbacks and other fields are skipped). Err when the
/// body is not a WhatsApp notification.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<Inbound>, ChannelError> {
    Ok(messages_of(&notification(body)?))
}

/// A webhook body's messages and status callbacks, from one parse. Err when the body is not a
/// WhatsApp notification.
pub fn parse_notification(body: &[u8]) -> Result<(Vec<Inbound>, Vec<StatusCallback>), ChannelError> {
    let v = notification(body)?;
    Ok((messages_of(&v), statuses_of(&v)))
}

fn messages_of(v: &Value) -> Vec<Inbound> {
    let mut out = Vec::new();
    for value in message_values(v) {
        let phone = value["metadata"]["phone_number_id"].as_str().unwrap_or("").to_string();
        let contacts = value["contacts"].as_array().cloned().unwrap_or_default();
        for msg in value["messages"].as_array().into_iter().flatten() {
            let (Some(wamid), Some(from)) = (msg["id"].as_str(), msg["from"].as_str()) else { continue };
            let name = contacts
                .iter()
                .find(|c| c["wa_id"].as_str() == Some(from))
                .and_then(|c| c["profile"]["name"].as_str())
                .map(String::from);
            let s = |p: &str| msg.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
            let mut media = Vec::new();
            let input = match msg["type"].as_str().unwrap_or("") {
                "text" => Input::Text(s("/text/body")),
                "interactive" => match msg["interactive"]["type"].as_str() {
                    Some("button_reply") => Input::Button(s("/interactive/button_reply/id")),
                    Some("list_reply") => Input::Button(s("/interactive/list_reply/id")),
                    _ => Input::Text(String::new()),
                },
                "button" => Input::Button(s("/button/payload")),
                "image" => {
                    media.push((s("/image/id"), None, s("/image/mime_type")));
                    Input::Text(s("/image/caption"))
                }
                "document" => {
                    let filename = Some(s("/document/filename")).filter(|f| !f.is_empty());
                    media.push((s("/document/id"), filename, s("/document/mime_type")));
                    Input::Text(s("/document/caption"))
                }
                // Voice notes (`audio.voice`), other audio, video and stickers: files named
                // after their kind, the message and their type.
                kind @ ("audio" | "video" | "sticker") => {
                    let kind_name =
                        if kind == "audio" && msg["audio"]["voice"].as_bool() == Some(true) { "voice" } else { kind };
                    let mime = s(&format!("/{kind}/mime_type"));
                    let filename = Some(media_name(kind_name, wamid, &mime));
                    media.push((s(&format!("/{kind}/id")), filename, mime));
                    Input::Text(s(&format!("/{kind}/caption")))
                }
                "location" => {
                    let loc = &msg["location"];
                    match (loc["latitude"].as_f64(), loc["longitude"].as_f64()) {
                        (Some(lat), Some(lon)) => Input::Text(location_text(
                            lat,
                            lon,
                            loc["name"].as_str().unwrap_or(""),
                            loc["address"].as_str().unwrap_or(""),
                        )),
                        _ => Input::Text(String::new()),
                    }
                }
                _ => Input::Text(String::new()),
            };
            out.push(Inbound {
                phone_number_id: phone.clone(),
                wamid: wamid.to_string(),
                from: from.to_string(),
                name,
                input,
                media,
                raw: msg.clone(),
            });
        }
    }
    out
}

/// A delivery status callback (`value.statuses[]`) of a webhook body.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCallback {
    pub phone_number_id: String,
    /// The `wamid` the send returned.
    pub id: String,
    pub status: Delivery,
    /// The platform's error codes and titles of a failure (131026 undeliverable, 131047 outside
    /// the 24-hour window, …), cut to a bounded length.
    pub errors: Vec<(i64, String)>,
}

/// The status callbacks of a webhook body (messages and other fields are skipped; a status
/// Loket does not know, such as `deleted`, is skipped too). Err when the body is not a WhatsApp
/// notification.
pub fn parse_statuses(body: &[u8]) -> Result<Vec<StatusCallback>, ChannelError> {
    Ok(statuses_of(&notification(body)?))
}

fn statuses_of(v: &Value) -> Vec<StatusCallback> {
    let mut out = Vec::new();
    for value in message_values(v) {
        let phone = value["metadata"]["phone_number_id"].as_str().unwrap_or("").to_string();
        for st in value["statuses"].as_array().into_iter().flatten() {
            let (Some(id), Some(status)) = (st["id"].as_str(), st["status"].as_str().and_then(Delivery::parse)) else {
                continue;
            };
            if id.is_empty() || id.len() > 200 {
                continue;
            }
            let errors = st["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .take(5)
                .map(|e| {
                    let title = e["title"].as_str().or(e["message"].as_str()).unwrap_or("");
                    (e["code"].as_i64().unwrap_or(0), title.chars().take(200).collect())
                })
                .collect();
            out.push(StatusCallback { phone_number_id: phone.clone(), id: id.to_string(), status, errors });
        }
    }
    out
}

/// A desk's WhatsApp number.
#[derive(Clone)]
pub struct WhatsappClient {
    pub desk: String,
    pub cfg: Whatsapp,
    client: reqwest::Client,
    max_file: usize,
    limiter: std::sync::Arc<super::chat::RateLimiter>,
}

impl WhatsappClient {
    pub fn new(desk: &Desk, cfg: &Whatsapp, max_file: usize) -> Result<Self, ChannelError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ChannelError::permanent(format!("whatsapp client: {e}")))?;
        // Cloud API throughput is 80 messages a second per number; one a second per chat keeps
        // well inside the per-user pair limit's bursts.
        let limiter =
            std::sync::Arc::new(super::chat::RateLimiter::new(Duration::from_millis(13), Duration::from_secs(1)));
        Ok(Self { desk: desk.id.clone(), cfg: cfg.clone(), client, max_file, limiter })
    }

    /// The message with its media fetched.
    /// Media that will not come back (4xx) is kept without its bytes; other failures are
    /// temporary.
    pub async fn to_chat(&self, m: &Inbound) -> Result<ChatMessage, ChannelError> {
        let mut files = Vec::new();
        for (id, filename, mime) in &m.media {
            files.push(self.fetch(id, filename.clone(), mime).await?);
        }
        Ok(ChatMessage {
            channel: Channel::Whatsapp,
            key: format!("wa:{}", m.wamid),
            user_id: m.from.clone(),
            chat_id: m.from.clone(),
            name: m.name.clone(),
            language: None,
            input: m.input.clone(),
            files,
            raw: m.raw.to_string().into_bytes(),
        })
    }

    /// `GET /<media id>` gives the URL and size; the bytes come from that URL (both with the
    /// access token). Over the limit, only the size is kept.
    async fn fetch(&self, id: &str, filename: Option<String>, mime: &str) -> Result<ChatFile, ChannelError> {
        let ct = if mime.is_empty() { "application/octet-stream" } else { mime };
        let mut file = ChatFile { filename, content_type: ct.to_string(), size: 0, bytes: None };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            return Ok(file);
        }
        let token = &self.cfg.access_token.0;
        let err = |e: reqwest::Error| ChannelError::temporary(format!("whatsapp media {id}: {}", e.without_url()));
        let resp =
            self.client.get(format!("{}/{id}", self.cfg.graph_url)).bearer_auth(token).send().await.map_err(err)?;
        if resp.status().is_client_error() {
            // Expired or unknown media will not come back: keep the message without the bytes.
            tracing::warn!(desk = %self.desk, status = %resp.status(), "whatsapp media not available; kept without its bytes");
            return Ok(file);
        }
        let resp = resp.error_for_status().map_err(err)?;
        let meta = json_of(resp).await.map_err(|e| ChannelError::temporary(format!("whatsapp media {id}: {e}")))?;
        file.size = meta["file_size"].as_u64().unwrap_or(0) as usize;
        let Some(url) = meta["url"].as_str() else { return Ok(file) };
        if file.size > self.max_file {
            return Ok(file);
        }
        let mut resp =
            self.client.get(url).bearer_auth(token).send().await.and_then(|r| r.error_for_status()).map_err(err)?;
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(err)? {
            if buf.len() + chunk.len() > self.max_file {
                file.size = buf.len() + chunk.len();
                return Ok(file);
            }
            buf.extend_from_slice(&chunk);
        }
        file.size = buf.len();
        file.bytes = Some(buf);
        Ok(file)
    }

    /// Delivers one outbox payload through the Graph API; a file (`file`, its bytes) is uploaded
    /// to the number's `media` first and sent as an image or a document. Returns the message's
    /// id (`wamid`) the platform gave, which its status callbacks name.
    pub async fn send(&self, p: &OutChat, file: Option<&[u8]>) -> Result<Option<String>, ChannelError> {
        let body = match (&p.file, file) {
            (Some(f), Some(bytes)) => {
                self.limiter.acquire(&p.chat_id).await;
                let id = self.upload(f, bytes).await?;
                media_body(p, f, &id)
            }
            (Some(f), None) => return Err(ChannelError::permanent(format!("file {} without its bytes", f.attachment))),
            (None, _) => {
                self.limiter.acquire(&p.chat_id).await;
                graph_body(p)
            }
        };
        let url = format!("{}/{}/messages", self.cfg.graph_url, self.cfg.phone_number_id);
        let resp = self
            .client
            .post(url)
            .bearer_auth(&self.cfg.access_token.0)
            .json(&body)
            .send()
            .await
            .map_err(|e| ChannelError::temporary(format!("whatsapp: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Self::outcome(resp).await.map(|()| None);
        }
        // Accepted: the id is read if the answer has one (an unreadable answer is still a send).
        let v = json_of(resp).await.unwrap_or(Value::Null);
        Ok(v["messages"][0]["id"].as_str().filter(|id| id.len() <= 200).map(str::to_string))
    }

    /// Uploads a file to the number's media store (`POST /{phone_number_id}/media`); its id.
    async fn upload(&self, f: &OutChatFile, bytes: &[u8]) -> Result<String, ChannelError> {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(f.filename.clone())
            .mime_str(&f.content_type)
            .or_else(|_| {
                reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(f.filename.clone())
                    .mime_str("application/octet-stream")
            })
            .map_err(|e| ChannelError::permanent(format!("whatsapp media: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", f.content_type.clone())
            .part("file", part);
        let url = format!("{}/{}/media", self.cfg.graph_url, self.cfg.phone_number_id);
        let resp = self
            .client
            .post(url)
            .bearer_auth(&self.cfg.access_token.0)
            .multipart(form)
            .send()
            .await
            .map_err(|e| ChannelError::temporary(format!("whatsapp media upload: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Self::outcome(resp).await.map(|()| String::new());
        }
        let v = json_of(resp).await.map_err(|e| ChannelError::temporary(format!("whatsapp media upload: {e}")))?;
        v["id"].as_str().map(str::to_string).ok_or_else(|| ChannelError::temporary("whatsapp media upload: no id"))
    }

    /// A Graph API answer as a delivery outcome.
    async fn outcome(resp: reqwest::Response) -> Result<(), ChannelError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = super::read_bounded(resp, MAX_ANSWER_BYTES).await.unwrap_or_default();
        let text: String = String::from_utf8_lossy(&text).chars().take(300).collect();
        let message = format!("whatsapp: HTTP {status}: {text}");
        // A 4xx other than a timeout or a rate limit is the request's fault: sending it again fails again.
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            Err(ChannelError::permanent(message))
        } else {
            Err(ChannelError::temporary(message))
        }
    }
}

/// The Graph API request body that sends uploaded media `id` as a photo or a document.
pub fn media_body(p: &OutChat, f: &OutChatFile, id: &str) -> Value {
    let (kind, media) = if f.is_photo() {
        ("image", json!({ "id": id }))
    } else {
        ("document", json!({ "id": id, "filename": f.filename }))
    };
    json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": p.chat_id, "type": kind, kind: media })
}

/// The Graph API request body for a payload.
pub fn graph_body(p: &OutChat) -> Value {
    let base = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": p.chat_id });
    let mut body = base.as_object().cloned().unwrap_or_default();
    if let Some(t) = &p.template {
        let params: Vec<Value> = t.params.iter().map(|x| json!({ "type": "text", "text": x })).collect();
        body.insert("type".into(), json!("template"));
        body.insert(
            "template".into(),
            json!({ "name": t.name, "language": { "code": t.language },
                    "components": [{ "type": "body", "parameters": params }] }),
        );
        return Value::Object(body);
    }
    let buttons: Vec<&Button> = p.buttons.iter().flatten().collect();
    let text: String = p.text.chars().take(1024).collect();
    if !buttons.is_empty() && buttons.len() <= 3 && p.text.chars().count() <= 1024 {
        let b: Vec<Value> = buttons
            .iter()
            .map(|b| json!({ "type": "reply", "reply": { "id": b.data, "title": short(&b.label, 20) } }))
            .collect();
        body.insert("type".into(), json!("interactive"));
        body.insert(
            "interactive".into(),
            json!({ "type": "button", "body": { "text": text }, "action": { "buttons": b } }),
        );
    } else if !buttons.is_empty() && buttons.len() <= 10 && p.text.chars().count() <= 1024 {
        let rows: Vec<Value> = buttons
            .iter()
            .map(|b| {
                let mut row = json!({ "id": b.data, "title": short(&b.label, 24) });
                if b.label.chars().count() > 24 {
                    row["description"] = json!(short(&b.label, 72));
                }
                row
            })
            .collect();
        // The labels come from the templates; a row queued before they did shows a symbol.
        let (button, title) = p.list_labels.clone().unwrap_or_else(|| ("☰".into(), "☰".into()));
        body.insert("type".into(), json!("interactive"));
        body.insert(
            "interactive".into(),
            json!({ "type": "list", "body": { "text": text },
                    "action": { "button": short(&button, 20), "sections": [{ "title": short(&title, 24), "rows": rows }] } }),
        );
    } else {
        // More choices than WhatsApp shows as buttons: the numbered list in the text is typed.
        body.insert("type".into(), json!("text"));
        body.insert("text".into(), json!({ "preview_url": false, "body": p.text }));
    }
    Value::Object(body)
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_over_the_raw_bytes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let good = sign(b"app-secret", body);
        assert!(signature_ok(b"app-secret", body, Some(&good)));
        assert!(!signature_ok(b"other-secret", body, Some(&good)));
        assert!(!signature_ok(b"app-secret", b"{\"object\":\"x\"}", Some(&good)));
        assert!(!signature_ok(b"app-secret", body, None));
        assert!(!signature_ok(b"app-secret", body, Some("sha256=zz")));
        assert!(!signature_ok(b"app-secret", body, Some(&good.replace("sha256=", "sha1="))));
    }

    #[test]
    fn webhook_messages_statuses_and_garbage() {
        let body = json!({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"123"},
            "contacts":[{"profile":{"name":"Budi"},"wa_id":"62811"}],
            "messages":[
              {"from":"62811","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"printer rusak"}},
              {"from":"62811","id":"wamid.B","timestamp":"2","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"ok:A-HERO26000001","title":"Ya"}}},
              {"from":"62811","id":"wamid.C","timestamp":"3","type":"image","image":{"id":"MEDIA1","mime_type":"image/png","caption":"layar"}}
            ],
            "statuses":[{"id":"wamid.X","status":"delivered"}]}}]}]});
        let got = parse_webhook(body.to_string().as_bytes()).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].input, Input::Text("printer rusak".into()));
        assert_eq!(got[0].name.as_deref(), Some("Budi"));
        assert_eq!(got[1].input, Input::Button("ok:A-HERO26000001".into()));
        assert_eq!(got[2].media, vec![("MEDIA1".into(), None, "image/png".into())]);
        assert!(!parse_webhook(b"not json").unwrap_err().is_temporary(), "a bad body is permanent");
        assert!(matches!(parse_webhook(br#"{"object":"page"}"#), Err(ChannelError::Permanent(_))));
        assert!(parse_webhook(br#"{"object":"whatsapp_business_account","entry":"x"}"#).unwrap().is_empty());
    }

    #[test]
    fn status_callbacks_are_read_and_bounded() {
        let body = json!({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
        "messaging_product":"whatsapp","metadata":{"phone_number_id":"123"},
        "statuses":[
          {"id":"wamid.A","status":"delivered","timestamp":"1","recipient_id":"62811"},
          {"id":"wamid.B","status":"failed","timestamp":"2","recipient_id":"62811",
           "errors":[{"code":131026,"title":"Message undeliverable"}]},
          {"id":"wamid.C","status":"deleted"},
          {"status":"read"},
          {"id": "x".repeat(300),"status":"read"}
        ]}}]}]});
        let got = parse_statuses(body.to_string().as_bytes()).unwrap();
        assert_eq!(got.len(), 2, "unknown statuses, missing and oversized ids are skipped: {got:?}");
        assert_eq!(
            (got[0].id.as_str(), got[0].status, got[0].phone_number_id.as_str()),
            ("wamid.A", Delivery::Delivered, "123")
        );
        assert_eq!(got[1].status, Delivery::Failed);
        assert_eq!(got[1].errors, vec![(131026, "Message undeliverable".to_string())]);
        assert!(parse_statuses(b"[]").is_err());
        // The messages parser skips statuses, and the statuses parser skips messages.
        assert!(parse_webhook(body.to_string().as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn voice_notes_audio_video_and_locations() {
        let body = json!({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
        "metadata":{"phone_number_id":"123"},
        "messages":[
          {"from":"62811","id":"wamid.V","type":"audio","audio":{"id":"M1","mime_type":"audio/ogg; codecs=opus","voice":true}},
          {"from":"62811","id":"wamid.A","type":"audio","audio":{"id":"M2","mime_type":"audio/mpeg"}},
          {"from":"62811","id":"wamid.F","type":"video","video":{"id":"M3","mime_type":"video/mp4","caption":"rekaman"}},
          {"from":"62811","id":"wamid.L","type":"location","location":{"latitude":-6.2,"longitude":106.8,"name":"Kantor"}}
        ]}}]}]});
        let got = parse_webhook(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            got[0].media,
            vec![("M1".into(), Some("voice-wamid.V.ogg".into()), "audio/ogg; codecs=opus".into())]
        );
        assert_eq!(got[1].media[0].1.as_deref(), Some("audio-wamid.A.mp3"));
        assert_eq!(
            (got[2].media[0].1.as_deref(), &got[2].input),
            (Some("video-wamid.F.mp4"), &Input::Text("rekaman".into()))
        );
        let Input::Text(place) = &got[3].input else { panic!("{:?}", got[3].input) };
        assert!(place.starts_with("📍 Kantor\n-6.200000, 106.800000\nhttps://"), "{place}");
        assert!(got[3].media.is_empty());
    }

    #[test]
    fn files_go_as_images_or_documents() {
        let p = OutChat {
            chat_id: "62811".into(),
            text: "panduan.pdf".into(),
            buttons: vec![],
            template: None,
            list_labels: None,
            file: None,
            emailed: false,
        };
        let pdf = OutChatFile { attachment: 7, filename: "panduan.pdf".into(), content_type: "application/pdf".into() };
        let b = media_body(&p, &pdf, "M1");
        assert_eq!((b["type"].as_str(), b["document"]["id"].as_str()), (Some("document"), Some("M1")));
        assert_eq!(b["document"]["filename"], "panduan.pdf");
        let png = OutChatFile { content_type: "image/png".into(), ..pdf };
        let b = media_body(&p, &png, "M2");
        assert_eq!(
            (b["type"].as_str(), b["image"]["id"].as_str(), b["to"].as_str()),
            (Some("image"), Some("M2"), Some("62811"))
        );
    }

    #[test]
    fn outbound_shapes() {
        let mut p = OutChat {
            file: None,
            emailed: false,
            chat_id: "62811".into(),
            text: "Halo".into(),
            buttons: vec![],
            template: None,
            list_labels: Some(("Pilih".into(), "Pilihan".into())),
        };
        assert_eq!(graph_body(&p)["type"], "text");
        p.buttons = crate::chat::confirm_buttons("Ya", "Belum", "A-HERO26000001");
        let b = graph_body(&p);
        assert_eq!(b["interactive"]["type"], "button");
        assert_eq!(b["interactive"]["action"]["buttons"][0]["reply"]["id"], "ok:A-HERO26000001");
        p.buttons = crate::chat::rating_buttons("A-HERO26000001");
        let list = graph_body(&p);
        assert_eq!(list["interactive"]["type"], "list");
        // The list's words are the templates' (passed in the payload), never the code's.
        assert_eq!(list["interactive"]["action"]["button"], "Pilih");
        assert_eq!(list["interactive"]["action"]["sections"][0]["title"], "Pilihan");
        p.template = Some(crate::chat::TemplateMessage {
            name: "tiket".into(),
            language: "id".into(),
            params: vec!["N".into()],
        });
        let t = graph_body(&p);
        assert_eq!((t["type"].as_str(), t["template"]["name"].as_str()), (Some("template"), Some("tiket")));
    }
}
