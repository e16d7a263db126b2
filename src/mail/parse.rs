//! Raw RFC 5322 bytes → [`ParsedMail`], the fields the rest of the pipeline needs. Pure: no I/O.
//! mail-parser does the MIME work; this module picks fields, normalises ids and addresses, and
//! turns HTML into text when there is no text part.

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders};
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::domain::EmailAddress;
use crate::mail::attachments;
use crate::mail::bounce::{self, Bounce};
use crate::mail::charset;

/// Longest text body kept for display and routing (the raw message keeps everything).
pub const MAX_TEXT_CHARS: usize = 256 * 1024;
/// At most this many Message-IDs of `References` are used for threading.
pub const MAX_REFERENCES: usize = 50;
/// At most this many recipients are kept per header.
pub const MAX_RECIPIENTS: usize = 100;
/// Mail addressed to more recipients than this (To and Cc) is quarantined: no helpdesk request
/// goes to thousands of people.
pub const MAX_LISTED_RECIPIENTS: usize = 1_000;
/// Deepest MIME nesting (multiparts and attached messages) accepted.
pub const MAX_MIME_DEPTH: usize = 32;
/// Most MIME parts accepted in one message.
pub const MAX_MIME_PARTS: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentMeta {
    /// Position among the message's attachments (mail-parser's numbering).
    pub index: u32,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
    pub sha256: String,
    /// The first bytes, for content sniffing (at most [`HEAD_BYTES`]).
    pub head: Vec<u8>,
    /// Unpacked from a winmail.dat (TNEF) attachment.
    pub from_tnef: bool,
}

impl AttachmentMeta {
    /// The metadata of an attachment's bytes: size, SHA-256 and the head for content sniffing.
    pub fn of(index: u32, filename: Option<String>, content_type: String, bytes: &[u8], from_tnef: bool) -> Self {
        Self {
            index,
            filename,
            content_type,
            size: bytes.len(),
            sha256: sha256_hex(bytes),
            head: bytes[..bytes.len().min(HEAD_BYTES)].to_vec(),
            from_tnef,
        }
    }
}

/// Bytes of each attachment kept for content sniffing.
pub const HEAD_BYTES: usize = 512;
/// At most this many attachments are listed per message.
pub const MAX_ATTACHMENTS: usize = 100;

/// Headers that say whether a person or a machine wrote the mail (RFC 3834 and common practice).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoHeaders {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub list_id: bool,
    pub list_unsubscribe: bool,
    pub x_auto_response_suppress: Option<String>,
    pub x_autoreply: bool,
    pub x_loop: Option<String>,
    pub loket_marker: bool,
    /// `Return-Path: <>`: the null sender of bounces and other automatic mail.
    pub null_return_path: bool,
    /// A bounce or delay notice: [`ParsedMail::bounce`] is set (see [`bounce::detect`]).
    pub delivery_status: bool,
    /// The `report-type` of a machine report (`delivery-status`, `feedback-report`,
    /// `disposition-notification`, …), lower-cased; see [`bounce::report_type`].
    pub report_type: Option<String>,
    /// The subject is that of an automatic reply ("Automatic reply:", "Out of Office:", …).
    pub auto_reply_subject: bool,
    /// The subject says the mail was generated automatically ("[Auto generated]", …).
    pub auto_generated_subject: bool,
    /// A mailing-list server sent it: `List-Subscribe`, `List-Post`, `List-Help`, `List-Owner`,
    /// `List-Archive`, `Mailing-List` (ezmlm), `X-MLServer` (fml), `X-Mailman-Version`,
    /// `X-ML-Name`, `X-Mailing-List`, `X-List`.
    pub list_server: bool,
    /// The mail carries a returned message (`message/rfc822`, `text/rfc822-headers`): the shape
    /// of a bounce even when the bounce recogniser found no failed recipient.
    pub returned_message: bool,
    /// The receiving server marked it as spam: `X-Spam-Flag: YES`, `X-Spam-Status: Yes…`,
    /// `X-Spam: Yes`.
    pub spam_flag: bool,
    /// The spam score the receiving server wrote (`X-Spam-Score`, `score=` of `X-Spam-Status`,
    /// `X-Rspamd-Score`), as its text.
    pub spam_score: Option<String>,
    /// An `Authentication-Results` header says `dmarc=fail`.
    pub dmarc_fail: bool,
    /// The `Authentication-Results` headers (RFC 8601) as written, topmost first; at most
    /// [`MAX_AUTH_RESULTS`], each cut at [`MAX_AUTH_RESULT_CHARS`]. Which of them may be believed
    /// is `hygiene::authenticated`'s question.
    pub authentication_results: Vec<String>,
    /// The date of the topmost `Received` header (the receiving server's), ms since the epoch.
    pub received_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The sender. Always set, except for bounces (`bounce.is_some()`), which may come from the
    /// null address (`From: <>`) and never open tickets.
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    /// Date header, milliseconds since the epoch.
    pub date_ms: Option<i64>,
    pub text: String,
    pub attachments: Vec<AttachmentMeta>,
    pub auto: AutoHeaders,
    /// Message-IDs named inside a delivery report's returned message or headers.
    pub reported_message_ids: Vec<String>,
    /// What the mail reports if it is a bounce (non-delivery report) or delay notice.
    pub bounce: Option<Bounce>,
}

impl ParsedMail {
    /// A chat message in the shape the pipeline reads: a sender, a subject, text, attachments.
    pub fn from_chat(from: Mailbox, subject: String, text: String, attachments: Vec<AttachmentMeta>) -> Self {
        Self {
            message_id: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
            from: Some(from),
            reply_to: None,
            to: Vec::new(),
            cc: Vec::new(),
            subject,
            date_ms: None,
            text,
            attachments,
            auto: AutoHeaders::default(),
            reported_message_ids: Vec::new(),
            bounce: None,
        }
    }

    /// Where replies to the requester go: Reply-To, else From.
    pub fn requester(&self) -> Option<&Mailbox> {
        self.reply_to.as_ref().or(self.from.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("not an RFC 5322 message: no header section could be parsed")]
    NotAMessage,
    #[error("no usable sender: {0}")]
    NoSender(String),
    /// Mail no person sends and no part of Loket should chew on (quarantined with the reason).
    #[error("{0}")]
    Poison(String),
}

/// The idempotency key of a raw message: its Message-ID, else the SHA-256 of its bytes.
pub fn idempotency_key(message_id: Option<&str>, raw: &[u8]) -> String {
    match message_id {
        Some(id) if !id.is_empty() => format!("mid:{id}"),
        _ => format!("sha256:{}", sha256_hex(raw)),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Only the Message-ID, for the idempotency key of mail that cannot be parsed fully.
pub fn sniff_message_id(raw: &[u8]) -> Option<String> {
    MessageParser::new().parse_headers(raw).and_then(|m| m.message_id().map(clean_id)).filter(|id| !id.is_empty())
}

pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    if let Some(at) = raw.iter().position(|b| *b == 0) {
        return Err(ParseError::Poison(format!(
            "NUL byte at offset {at}: not allowed in Internet mail (RFC 5322 section 2.3)"
        )));
    }
    let msg = MessageParser::default().parse(raw).ok_or(ParseError::NotAMessage)?;
    if msg.root_part().headers().is_empty() {
        return Err(ParseError::NotAMessage);
    }
    let (depth, parts) = mime_shape(&msg, 0);
    if depth > MAX_MIME_DEPTH || parts > MAX_MIME_PARTS {
        return Err(ParseError::Poison(format!(
            "MIME structure {depth} levels deep with {parts} parts (limits {MAX_MIME_DEPTH} and {MAX_MIME_PARTS})"
        )));
    }
    let listed = msg.to().map(|a| a.iter().count()).unwrap_or(0) + msg.cc().map(|a| a.iter().count()).unwrap_or(0);
    if listed > MAX_LISTED_RECIPIENTS {
        return Err(ParseError::Poison(format!("{listed} recipients in To and Cc (limit {MAX_LISTED_RECIPIENTS})")));
    }
    let bounce = bounce::detect(&msg);
    let raw_from = raw_header(&msg, raw, &HeaderName::From);
    let raw_from_bytes = raw_header_bytes(&msg, raw, &HeaderName::From);
    let cs = header_charset(&msg, raw);
    let from = first_mailbox(msg.from())
        .map(|m| repair_name(m, raw_from_bytes, cs))
        .or_else(|| raw_from.as_deref().and_then(mailbox_in_raw))
        .or_else(|| obsolete_from(raw, cs))
        .or_else(|| first_mailbox(msg.sender()))
        // An empty `From: <>` from a person: the Reply-To names them (with From's display name).
        .or_else(|| {
            let mut m = first_mailbox(msg.reply_to())?;
            // From's display name, unless it holds an address (it would pose as the sender).
            m.name = m.name.or_else(|| first_name(msg.from()).filter(|n| !n.contains('@')));
            Some(m)
        });
    let from = match from {
        Some(m) => Some(m),
        // Delivery systems often send from the null address; a bounce needs no sender.
        None if bounce.is_some() => None,
        None => return Err(ParseError::NoSender(no_sender_reason(msg.from(), raw_from.as_deref()))),
    };
    let text = body_text(&msg, raw);
    let mut attachments = Vec::new();
    for (i, part) in msg.attachments().enumerate().take(MAX_ATTACHMENTS) {
        let filename = attachment_name(part, raw, cs).map(|n| truncate(&n, 255));
        let content_type = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_ascii_lowercase())
            .unwrap_or_else(|| "application/octet-stream".into());
        let data = part.contents();
        if attachments::is_tnef(filename.as_deref(), &content_type) {
            let inner = attachments::unpack_tnef(data);
            if !inner.is_empty() {
                for (name, bytes) in inner.into_iter().take(MAX_ATTACHMENTS) {
                    let filename = Some(truncate(&name, 255));
                    attachments.push(AttachmentMeta::of(
                        i as u32,
                        filename,
                        "application/octet-stream".into(),
                        &bytes,
                        true,
                    ));
                }
                continue;
            }
        }
        attachments.push(AttachmentMeta::of(i as u32, filename, content_type, data, false));
    }
    let auto = auto_headers(&msg, bounce.is_some());
    let reported_message_ids = match &bounce {
        Some(b) => {
            let mut ids = b.original_message_ids.clone();
            for id in reported_ids(&msg) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            ids.truncate(MAX_REFERENCES);
            ids
        }
        None => Vec::new(),
    };
    Ok(ParsedMail {
        message_id: msg.message_id().map(clean_id).filter(|s| !s.is_empty()),
        in_reply_to: ids(msg.in_reply_to()),
        references: {
            let mut r = ids(msg.references());
            if r.len() > MAX_REFERENCES {
                r.drain(..r.len() - MAX_REFERENCES);
            }
            r
        },
        reply_to: first_mailbox(msg.reply_to()),
        from,
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        subject: subject(&msg, raw, cs).map(|s| truncate(s.trim(), 998)).unwrap_or_default(),
        date_ms: msg.date().map(|d| d.to_timestamp() * 1000),
        text,
        attachments,
        auto,
        reported_message_ids,
        bounce,
    })
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Strips angle brackets and white space from a Message-ID.
pub fn clean_id(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string()
}

fn ids(v: &HeaderValue) -> Vec<String> {
    let list: Vec<String> = match v {
        HeaderValue::Text(t) => t.split_whitespace().map(clean_id).collect(),
        HeaderValue::TextList(l) => l.iter().flat_map(|t| t.split_whitespace()).map(clean_id).collect(),
        _ => Vec::new(),
    };
    list.into_iter().filter(|s| !s.is_empty() && s.len() <= 250).collect()
}

/// Depth of the MIME tree (attached messages included) and the number of parts, counted without
/// recursion on the multipart levels; attached messages add their own shape.
fn mime_shape(msg: &Message, level: usize) -> (usize, usize) {
    let mut depth = vec![0usize; msg.parts.len()];
    let (mut max, mut parts) = (0, msg.parts.len());
    for i in 0..msg.parts.len() {
        let d = depth[i];
        max = max.max(d);
        match &msg.parts[i].body {
            mail_parser::PartType::Multipart(children) => {
                for c in children {
                    if let Some(slot) = depth.get_mut(*c as usize)
                        && (*c as usize) > i
                    {
                        *slot = d + 1;
                    }
                }
            }
            mail_parser::PartType::Message(inner) if level < MAX_MIME_DEPTH => {
                let (id, ip) = mime_shape(inner, level + 1);
                max = max.max(d + 1 + id);
                parts += ip;
            }
            mail_parser::PartType::Message(_) => max = max.max(MAX_MIME_DEPTH + 1),
            _ => {}
        }
    }
    (max, parts)
}

fn first_mailbox(a: Option<&Address>) -> Option<Mailbox> {
    a?.iter().find_map(|addr| {
        let address = EmailAddress::parse(addr.address()?).ok()?;
        Some(Mailbox { name: addr.name().and_then(display_name), address })
    })
}

/// A display name as Loket keeps it: one line, undecodable bytes (U+FFFD) dropped, at most 200
/// characters; none when nothing readable is left.
fn display_name(name: &str) -> Option<String> {
    let name = crate::templates::one_line(&name.replace('\u{FFFD}', " "));
    Some(truncate(&name, 200).trim_end().to_string()).filter(|n| n.chars().any(char::is_alphanumeric))
}

/// A header's raw value, decoded lossily (mail-parser's `header_raw` gives nothing when the
/// bytes are not UTF-8).
fn raw_header(msg: &Message, raw: &[u8], name: &HeaderName) -> Option<String> {
    let h = msg.root_part().headers().iter().find(|h| h.name == *name)?;
    let bytes = raw.get(h.offset_start as usize..h.offset_end as usize)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The charset of the raw 8-bit bytes in a message's header sections (all parts' together, so
/// that a short display name is read in the charset of a longer subject), when one is detected
/// with confidence.
type Charset = Option<&'static encoding_rs::Encoding>;

fn header_charset(msg: &Message, raw: &[u8]) -> Charset {
    let mut bytes = Vec::new();
    for part in msg.parts.iter().take(MAX_MIME_PARTS) {
        let head = raw.get(part.raw_header_offset() as usize..part.raw_body_offset() as usize).unwrap_or_default();
        if !head.is_ascii() && std::str::from_utf8(head).is_err() {
            bytes.extend_from_slice(&head[..head.len().min(64 * 1024)]);
            bytes.push(b'\n');
        }
    }
    charset::detect(&bytes)
}

/// A header's raw value bytes (the first one of that name on the root part).
fn raw_header_bytes<'r>(msg: &Message, raw: &'r [u8], name: &HeaderName) -> Option<&'r [u8]> {
    let h = msg.root_part().headers().iter().find(|h| h.name == *name)?;
    raw.get(h.offset_start as usize..h.offset_end as usize)
}

/// Whether a raw header value needs [`charset::decode_header`] rather than mail-parser's
/// decoding: raw 8-bit bytes that are not UTF-8, or an encoded word (whose declared charset may
/// not fit its bytes).
fn needs_repair(raw: &[u8]) -> bool {
    (!raw.is_ascii() && std::str::from_utf8(raw).is_err()) || raw.windows(2).any(|w| w == b"=?")
}

/// The subject: mail-parser's, or, when that lost bytes or the raw header is 8-bit or encoded
/// under a charset that does not fit, the raw bytes decoded by [`charset::decode_header`].
fn subject(msg: &Message, raw: &[u8], cs: Charset) -> Option<String> {
    let parsed = msg.subject();
    let Some(bytes) = raw_header_bytes(msg, raw, &HeaderName::Subject) else { return parsed.map(str::to_string) };
    let lost = parsed.is_none_or(charset::lost_bytes);
    if needs_repair(bytes) && (lost || charset::repaired(bytes)) {
        return Some(charset::decode_header(bytes, cs));
    }
    parsed.map(str::to_string)
}

/// The From display name decoded again from the raw header when mail-parser lost its bytes.
fn repair_name(mut m: Mailbox, raw_from: Option<&[u8]>, cs: Charset) -> Mailbox {
    let Some(bytes) = raw_from else { return m };
    if !needs_repair(bytes) || !charset::repaired(bytes) {
        return m;
    }
    let text = charset::decode_header(bytes, cs);
    if let Some((name, _)) = text.rsplit_once('<') {
        let name = name.trim().trim_matches('"').trim();
        if !name.contains('@') {
            m.name = display_name(name);
        }
    }
    m
}

fn first_name(a: Option<&Address>) -> Option<String> {
    a?.iter().find_map(|addr| addr.name().and_then(display_name))
}

/// An attachment's file name: mail-parser's, or, when that lost bytes, was split into RFC 2231
/// continuations or came from raw 8-bit bytes, the raw parameter decoded whole
/// ([`charset::param`]).
fn attachment_name(part: &mail_parser::MessagePart, raw: &[u8], cs: Charset) -> Option<String> {
    let parsed = part.attachment_name();
    let raw_param = |header: HeaderName, param: &str| {
        let h = part.headers().iter().find(|h| h.name == header)?;
        let bytes = raw.get(h.offset_start as usize..h.offset_end as usize)?;
        let continued = bytes.windows(3).any(|w| w.eq_ignore_ascii_case(b"*1*") || w.eq_ignore_ascii_case(b"*1="));
        let suspicious = parsed.is_none_or(charset::lost_bytes) || continued || charset::repaired(bytes);
        if !suspicious {
            return None;
        }
        charset::param(bytes, param, cs)
    };
    raw_param(HeaderName::ContentDisposition, "filename")
        .or_else(|| raw_param(HeaderName::ContentType, "name"))
        .or_else(|| parsed.map(str::to_string))
}

/// The text of body part `i` when it is `text/plain`, sent without a transfer encoding, declared
/// US-ASCII or Latin-1, and is valid UTF-8 with non-ASCII characters: read as UTF-8.
fn utf8_body(msg: &Message, raw: &[u8], i: usize) -> Option<String> {
    let part = msg.parts.get(*msg.text_body.get(i)? as usize)?;
    if !matches!(part.body, mail_parser::PartType::Text(_)) {
        return None;
    }
    let encoding = part.content_transfer_encoding().map(|e| e.trim().to_ascii_lowercase());
    if matches!(encoding.as_deref(), Some("base64" | "quoted-printable")) {
        return None;
    }
    let declared = part.content_type().and_then(|c| c.attribute("charset"));
    let bytes = raw.get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)?;
    charset::utf8_mislabelled(bytes, declared)
}

/// The sender of a From header in RFC 2822's obsolete syntax (white space before the colon,
/// comments and folding inside the address: `From  : John Doe <jdoe@machine(comment).  example>`)
/// or without angle brackets (`From: Test test@example.com`). Only one address may be in it: a
/// name holding another address could be a spoof.
fn obsolete_from(raw: &[u8], cs: Charset) -> Option<Mailbox> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| raw.windows(2).position(|w| w == b"\n\n"))?;
    let head = String::from_utf8_lossy(&raw[..end.min(256 * 1024)]);
    let mut value: Option<String> = None;
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((name, rest)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("from")
        {
            value = Some(rest.to_string());
        }
    }
    let value = strip_comments(&value?);
    if value.matches('@').count() != 1 {
        return None;
    }
    let (name, address) = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            (value[..open].to_string(), value[open + 1..close].split_whitespace().collect::<String>())
        }
        _ => {
            let words: Vec<&str> = value.split_whitespace().collect();
            let at = words.iter().position(|w| w.contains('@'))?;
            let name: Vec<&str> = words.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, w)| *w).collect();
            (name.join(" "), words[at].trim_matches(['<', '>', ',', ';']).to_string())
        }
    };
    let address = EmailAddress::parse(&address).ok()?;
    let name = charset::decode_header(name.trim().as_bytes(), cs);
    Some(Mailbox { name: display_name(name.trim().trim_matches('"')), address })
}

/// Text without its RFC 5322 comments (`(…)`, nested), quoted strings kept.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The address in `<…>` of a From header the parser could not read, e.g. because its display
/// name has an unterminated quote or invalid bytes. The name is dropped.
fn mailbox_in_raw(raw: &str) -> Option<Mailbox> {
    let (before, after) = raw.rsplit_once('<')?;
    // Only one address: a name part holding another address could be a spoof.
    let (inner, _) = after.split_once('>')?;
    if !before.contains('@') {
        let address = EmailAddress::parse(inner.trim()).ok()?;
        return Some(Mailbox { name: None, address });
    }
    None
}

/// Why a mail without a usable sender is quarantined: the From header is absent, empty, has no
/// address, or has one that is not valid (shown flattened to one line, at most 200 characters).
fn no_sender_reason(parsed: Option<&Address>, raw_from: Option<&str>) -> String {
    let Some(raw_from) = raw_from else { return "no From header".into() };
    let flat = truncate(&crate::templates::one_line(raw_from), 200).trim_end().to_string();
    if flat.is_empty() {
        return "From header is empty".into();
    }
    let has_address = parsed.is_some_and(|a| a.iter().any(|x| x.address().is_some_and(|s| !s.trim().is_empty())))
        || flat.contains('@');
    if has_address {
        format!("From header is not a valid address: {flat}")
    } else {
        format!("From header has no address: {flat}")
    }
}

fn addresses(a: Option<&Address>) -> Vec<EmailAddress> {
    let Some(a) = a else { return Vec::new() };
    a.iter().filter_map(|x| EmailAddress::parse(x.address()?).ok()).take(MAX_RECIPIENTS).collect()
}

fn body_text(msg: &Message, raw: &[u8]) -> String {
    // body_text() converts HTML to text when the message has only an HTML body.
    let mut text = String::new();
    for i in 0..msg.text_body_count().min(8) {
        if let Some(t) = utf8_body(msg, raw, i).map(Cow::Owned).or_else(|| msg.body_text(i)) {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&t);
        }
        if text.len() > MAX_TEXT_CHARS * 4 {
            break;
        }
    }
    let text = text.replace("\r\n", "\n");
    truncate(text.trim(), MAX_TEXT_CHARS)
}

fn header_text(msg: &Message, name: &str) -> Option<String> {
    msg.header_raw(name).map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty())
}

fn auto_headers(msg: &Message, is_bounce: bool) -> AutoHeaders {
    let subject = msg.subject().unwrap_or("").trim();
    AutoHeaders {
        auto_submitted: header_text(msg, "Auto-Submitted"),
        precedence: header_text(msg, "Precedence"),
        list_id: msg.header_raw("List-Id").is_some(),
        list_unsubscribe: msg.header_raw("List-Unsubscribe").is_some(),
        x_auto_response_suppress: header_text(msg, "X-Auto-Response-Suppress"),
        x_autoreply: msg.header_raw("X-Autoreply").is_some()
            || msg.header_raw("X-Autorespond").is_some()
            || header_text(msg, "X-Autogenerated").is_some_and(|v| v.contains("reply")),
        x_loop: header_text(msg, "X-Loop"),
        loket_marker: msg.header_raw("X-Loket-Ticket").is_some(),
        null_return_path: msg.header_raw("Return-Path").is_some_and(|r| r.trim() == "<>"),
        delivery_status: is_bounce,
        report_type: bounce::report_type(msg),
        auto_reply_subject: AUTO_SUBJECT_WORDS.may_hold(subject) && AUTO_REPLY_SUBJECT.is_match(subject),
        auto_generated_subject: AUTO_SUBJECT_WORDS.may_hold(subject) && AUTO_GENERATED_SUBJECT.is_match(subject),
        list_server: LIST_SERVER_HEADERS.iter().any(|h| msg.header_raw(*h).is_some()),
        returned_message: msg.parts.iter().any(|p| {
            p.message().is_some()
                || p.content_type()
                    .is_some_and(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers")))
        }),
        spam_flag: header_text(msg, "X-Spam-Flag").is_some_and(|v| v.starts_with("yes"))
            || header_text(msg, "X-Spam-Status").is_some_and(|v| v.starts_with("yes"))
            || header_text(msg, "X-Spam").is_some_and(|v| v.starts_with("yes")),
        spam_score: spam_score(msg),
        dmarc_fail: all_raw(msg, "Authentication-Results").any(|v| DMARC_FAIL.is_match(v)),
        authentication_results: all_raw(msg, "Authentication-Results")
            .take(MAX_AUTH_RESULTS)
            .map(|v| v.chars().take(MAX_AUTH_RESULT_CHARS).collect())
            .collect(),
        // The topmost Received header (mail-parser's `received()` gives the last one).
        received_ms: msg
            .root_part()
            .headers()
            .iter()
            .find(|h| h.name == HeaderName::Received)
            .and_then(|h| match &h.value {
                HeaderValue::Received(r) => r.date(),
                _ => None,
            })
            .map(|d| d.to_timestamp() * 1000),
    }
}

/// Headers only list servers add.
const LIST_SERVER_HEADERS: &[&str] = &[
    "List-Subscribe",
    "List-Post",
    "List-Help",
    "List-Owner",
    "List-Archive",
    "Mailing-List",
    "X-MLServer",
    "X-Mailman-Version",
    "X-ML-Name",
    "X-Mailing-List",
    "X-List",
];

/// How many `Authentication-Results` headers are kept, and how much of each.
pub const MAX_AUTH_RESULTS: usize = 8;
pub const MAX_AUTH_RESULT_CHARS: usize = 2048;

static DMARC_FAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\bdmarc\s*=\s*fail\b").expect("valid regex"));
static SPAM_SCORE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|score=)\s*(-?[0-9]{1,4}(?:\.[0-9]{1,3})?)").expect("valid regex"));

/// Every raw value of header `name` on the root part.
fn all_raw<'m>(msg: &'m Message, name: &'m str) -> impl Iterator<Item = &'m str> + 'm {
    msg.root_part().headers().iter().filter(move |h| h.name.as_str().eq_ignore_ascii_case(name)).filter_map(|h| {
        msg.raw_message.get(h.offset_start as usize..h.offset_end as usize).and_then(|b| std::str::from_utf8(b).ok())
    })
}

/// The spam score the receiving server wrote.
fn spam_score(msg: &Message) -> Option<String> {
    let from = |name: &str| {
        header_text(msg, name)
            .and_then(|v| SPAM_SCORE.captures(&v).and_then(|c| c.get(1)).map(|m| m.as_str().to_string()))
    };
    from("X-Spam-Score").or_else(|| from("X-Rspamd-Score")).or_else(|| {
        let v = header_text(msg, "X-Spam-Status")?;
        let i = v.find("score=")?;
        SPAM_SCORE.captures(&v[i..]).and_then(|c| c.get(1)).map(|m| m.as_str().to_string())
    })
}

/// Subjects of automatic replies (Outlook, Exchange, Apple, Gmail and their translations). Only at the
/// start: a person's "Re: Automatic reply: …" is a person's mail.
static AUTO_REPLY_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^\s*(auto(matic|matische|matisch)?[ -]?(reply|response|antwort|antwoord)|autoresponder|out of (the )?office( auto ?reply)?",
        r"|abwesenheitsnotiz|réponse automatique|respuesta automática|risposta automatica|resposta automática",
        r"|odpowiedź automatyczna|balasan otomatis|automaattinen vastaus|automatisk svar|自動応答|自動返信)\s*:",
    ))
    .expect("valid regex")
});

/// Words one of which every ASCII subject that [`AUTO_REPLY_SUBJECT`] or [`AUTO_GENERATED_SUBJECT`]
/// matches holds: a person's subject spares `loket ingest` compiling the two.
static AUTO_SUBJECT_WORDS: super::Words = super::Words::new(&["auto", "out of", "abwesenheitsnotiz", "balasan"]);

/// Subjects that say the mail was generated by a machine.
static AUTO_GENERATED_SUBJECT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*\[?auto[ _-]?generated\b").expect("valid regex"));

/// Message-IDs of the mail a delivery report is about: from its returned message or headers.
fn reported_ids(msg: &Message) -> Vec<String> {
    let mut out = Vec::new();
    for part in msg.parts.iter() {
        if let Some(inner) = part.message() {
            out.extend(inner.message_id().map(clean_id));
            out.extend(ids(inner.in_reply_to()));
            out.extend(ids(inner.references()));
        } else if part
            .content_type()
            .is_some_and(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers")))
            && let Some(h) = MessageParser::new().parse_headers(part.contents())
        {
            out.extend(h.message_id().map(clean_id));
        }
    }
    out.retain(|s| !s.is_empty());
    out.dedup();
    out.truncate(MAX_REFERENCES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The automatic subjects' regexes are tried only on subjects that hold one of their words:
    /// every ASCII subject they match holds one, and an ordinary request's subject holds none.
    #[test]
    fn automatic_subjects_are_tried_only_where_their_words_are() {
        crate::mail::assert_needles_cover(AUTO_REPLY_SUBJECT.as_str(), &AUTO_SUBJECT_WORDS);
        crate::mail::assert_needles_cover(AUTO_GENERATED_SUBJECT.as_str(), &AUTO_SUBJECT_WORDS);
        assert!(!AUTO_SUBJECT_WORDS.holds("Tidak bisa login aplikasi SIMPEG (7)"));
        assert!(!AUTO_SUBJECT_WORDS.holds("Re: Mohon bantuan reset password email"));
        assert!(AUTO_SUBJECT_WORDS.holds("Balasan otomatis: Cuti"));
    }

    const PLAIN: &[u8] = b"From: Budi Santoso <Budi@Example.test>\r\nTo: hero@desk.test, Other <x@desk.test>\r\n\
Subject: SIGI tidak bisa diakses\r\nMessage-ID: <abc@example.test>\r\nIn-Reply-To: <x1@desk.test>\r\n\
References: <x0@desk.test> <x1@desk.test>\r\nDate: Mon, 5 Jan 2026 09:00:00 +0700\r\n\r\nHalo,\r\nSIGI error.\r\n";

    /// Poison messages for the tests: (what, raw).
    pub fn poison() -> Vec<(&'static str, Vec<u8>)> {
        let head = "From: a@example.test\r\nTo: hero@example.test\r\nSubject: x\r\nMessage-ID: <p@example.test>\r\n";
        let mut nested = format!("{head}MIME-Version: 1.0\r\n");
        for i in 0..1000 {
            nested.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
        }
        nested.push_str("Content-Type: text/plain\r\n\r\nhalo\r\n");
        let many: Vec<String> = (0..5000).map(|i| format!("u{i}@example.test")).collect();
        vec![
            ("NUL", format!("{head}\r\nprinter\0 rusak\r\n").into_bytes()),
            ("MIME", nested.into_bytes()),
            (
                "recipients",
                format!("From: a@example.test\r\nTo: {}\r\nSubject: x\r\n\r\nhalo\r\n", many.join(", ")).into_bytes(),
            ),
        ]
    }

    #[test]
    fn poison_is_refused_with_its_reason() {
        for (what, raw) in poison() {
            match parse(&raw) {
                Err(ParseError::Poison(reason)) => assert!(reason.contains(what), "{what}: {reason}"),
                other => panic!("{what}: {:?}", other.map(|m| m.subject)),
            }
        }
        let fine = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nhalo\r\n--i--\r\n--o--\r\n";
        assert_eq!(parse(fine).unwrap().text.trim(), "halo");
    }

    #[test]
    fn picks_fields() {
        let m = parse(PLAIN).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("abc@example.test"));
        assert_eq!(m.from.as_ref().unwrap().address.as_str(), "budi@example.test");
        assert_eq!(m.from.as_ref().unwrap().name.as_deref(), Some("Budi Santoso"));
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.in_reply_to, vec!["x1@desk.test"]);
        assert_eq!(m.references, vec!["x0@desk.test", "x1@desk.test"]);
        assert_eq!(m.subject, "SIGI tidak bisa diakses");
        assert_eq!(m.text, "Halo,\nSIGI error.");
        assert_eq!(m.date_ms, Some(1_767_578_400_000));
        assert_eq!(m.auto, AutoHeaders::default());
    }

    #[test]
    fn html_only_becomes_text() {
        let raw = b"From: a@example.test\r\nSubject: h\r\nContent-Type: text/html\r\n\r\n<p>Halo <b>tim</b></p><p>baris dua</p>";
        let m = parse(raw).unwrap();
        assert!(m.text.contains("Halo tim"), "{:?}", m.text);
        assert!(!m.text.contains('<'));
    }

    #[test]
    fn refuses_what_is_not_mail() {
        assert_eq!(parse(b"  \r\n"), Err(ParseError::Empty));
        assert!(matches!(parse(b"Subject: x\r\n\r\nbody"), Err(ParseError::NoSender(_))));
        assert!(matches!(parse(b"From: nobody\r\n\r\nbody"), Err(ParseError::NoSender(_))));
    }

    #[test]
    fn idempotency_key_prefers_message_id() {
        assert_eq!(idempotency_key(Some("a@b"), b"x"), "mid:a@b");
        assert!(idempotency_key(None, b"x").starts_with("sha256:2d711642"));
        assert_eq!(sniff_message_id(PLAIN).as_deref(), Some("abc@example.test"));
    }

    #[test]
    fn reads_automatic_markers() {
        let raw = b"From: MAILER-DAEMON@mx.example.test\r\nReturn-Path: <>\r\nAuto-Submitted: Auto-Replied\r\n\
Precedence: Bulk\r\nList-Id: <l.example.test>\r\nSubject: x\r\n\r\nbody";
        let a = parse(raw).unwrap().auto;
        assert_eq!(a.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(a.precedence.as_deref(), Some("bulk"));
        assert!(a.list_id && a.null_return_path);
    }

    #[test]
    fn winmail_dat_attachments_are_listed_as_their_files() {
        use base64::Engine;
        let tnef = crate::mail::attachments::tests::tnef_with("surat.pdf", b"%PDF-1.4 isi surat");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&tnef);
        let raw = format!(
            "From: a@example.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nhalo\r\n--b\r\nContent-Type: application/ms-tnef; name=winmail.dat\r\n\
             Content-Disposition: attachment; filename=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
        );
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename.as_deref(), Some("surat.pdf"));
        assert!(m.attachments[0].from_tnef);
        assert!(m.attachments[0].head.starts_with(b"%PDF"));
    }

    #[test]
    fn finds_the_message_a_bounce_is_about() {
        let raw = b"From: MAILER-DAEMON@mx.example.test\r\nTo: hero@desk.test\r\nSubject: Undelivered\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Final-Recipient: rfc822; gone@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b\r\n\
Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <ack-1@desk.test>\r\nSubject: [#A-HERO26000001] x\r\n\r\n--b--\r\n";
        let m = parse(raw).unwrap();
        assert!(m.auto.delivery_status);
        assert_eq!(m.reported_message_ids, vec!["ack-1@desk.test"]);
    }

    fn from_line(from: &[u8]) -> Vec<u8> {
        let mut raw = from.to_vec();
        raw.extend_from_slice(b"To: hero@desk.test\r\nSubject: x\r\nMessage-ID: <f@example.test>\r\n\r\nhalo\r\n");
        raw
    }

    fn no_sender(raw: &[u8]) -> String {
        match parse(raw) {
            Err(ParseError::NoSender(reason)) => reason,
            other => panic!("{:?}", other.map(|m| m.from)),
        }
    }

    #[test]
    fn quarantine_reasons_say_what_is_wrong_with_from() {
        assert_eq!(no_sender(&from_line(b"")), "no From header");
        assert_eq!(no_sender(&from_line(b"From: \r\n")), "From header is empty");
        assert_eq!(no_sender(&from_line(b"From: Budi Santoso\r\n")), "From header has no address: Budi Santoso");
        assert_eq!(
            no_sender(&from_line(b"From: Budi <not an address>\r\n")),
            "From header is not a valid address: Budi <not an address>"
        );
        assert_eq!(
            no_sender(&from_line(b"From: budi@ex\xFF\xFEample.test\r\n")),
            "From header is not a valid address: budi@ex\u{FFFD}\u{FFFD}ample.test"
        );
        let long = format!("From: {}\r\n\t<budi di example.test>\r\n", "Nama Sangat Panjang ".repeat(20));
        let reason = no_sender(&from_line(long.as_bytes()));
        assert!(reason.starts_with("From header is not a valid address: Nama Sangat"), "{reason}");
        assert!(!reason.contains(['\r', '\n', '\t']), "{reason:?}");
        assert!(reason.chars().count() <= "From header is not a valid address: ".len() + 200, "{reason}");
    }

    #[test]
    fn senders_in_obsolete_or_broken_syntax_are_recovered() {
        let cases: [(&[u8], &str, Option<&str>); 5] = [
            (b"From  : John Doe <jdoe@machine(comment).  example>\r\n", "jdoe@machine.example", Some("John Doe")),
            (b"From: Test test@example.com\r\n", "test@example.com", Some("Test")),
            (b"From: \"=?GB2312?B?ztI=?=\" <>\r\nReply-To: <vipyiming@126.com>\r\n", "vipyiming@126.com", Some("我")),
            (b"From: <>\r\nSender: Budi <budi@example.test>\r\n", "budi@example.test", Some("Budi")),
            // A display name that is an address is not shown as the sender's name.
            (b"From: \"boss@bank.test\"\r\nReply-To: <x@example.test>\r\n", "x@example.test", None),
        ];
        for (head, address, name) in cases {
            let m = parse(&from_line(head)).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(head)));
            let from = m.from.unwrap();
            assert_eq!(
                (from.address.as_str(), from.name.as_deref()),
                (address, name),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // Two addresses in an unparseable From: none is picked (one could be a spoof).
        assert!(matches!(parse(&from_line(b"From: a@example.test b@example.test\r\n")), Err(ParseError::NoSender(_))));
    }

    #[test]
    fn spam_dmarc_and_received_facts_are_read() {
        let raw = b"Received: from mx by imap.desk.test; Tue, 10 Feb 2026 10:00:00 +0000\r\n\
Received: from a by b; Mon, 9 Feb 2026 10:00:00 +0000\r\nAuthentication-Results: mx.desk.test; dkim=pass\r\n\
Authentication-Results: mx.desk.test; dmarc=fail (p=reject) header.from=bank.test\r\n\
X-Spam-Status: No, score=4.2 required=5.0\r\nFrom: a@example.test\r\nSubject: x\r\n\r\nbody\r\n";
        let a = parse(raw).unwrap().auto;
        assert!(a.dmarc_fail && !a.spam_flag);
        assert_eq!(a.spam_score.as_deref(), Some("4.2"));
        assert_eq!(a.received_ms, Some(1_770_717_600_000));
    }

    #[test]
    fn a_garbage_display_name_does_not_lose_a_valid_address() {
        for (raw_from, name) in [
            (&b"From: \xFF\xFE <budi@example.test>\r\n"[..], None),
            (b"From: \"\xFF\xFE\" <budi@example.test>\r\n", None),
            (b"From: Budi \xFF Santoso <budi@example.test>\r\n", Some("Budi Santoso")),
            (b"From: =?utf-8?B?//4=?= <budi@example.test>\r\n", None),
            (b"From: \"Budi \xFF <budi@example.test>\r\n", None),
            (b"From: Budi (\xFF <budi@example.test>\r\n", None),
            (b"From: Budi\r\n\tSantoso <Budi@Example.test>\r\n", Some("Budi Santoso")),
        ] {
            let m =
                parse(&from_line(raw_from)).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(raw_from)));
            let from = m.from.unwrap();
            assert_eq!(from.address.as_str(), "budi@example.test", "{:?}", String::from_utf8_lossy(raw_from));
            assert_eq!(from.name.as_deref(), name, "{:?}", String::from_utf8_lossy(raw_from));
        }
    }
}
