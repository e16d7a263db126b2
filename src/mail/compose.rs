//! Builds outbound mail: the RFC 5322 bytes the outbox stores and the transport sends. Pure apart
//! from reading nothing: the caller passes `now`, the rendered text, its HTML rendering and the
//! files. Every mail is `multipart/alternative` (text/plain, then text/html); inline images make
//! the HTML part `multipart/related`; attached files wrap it all in `multipart/mixed`.

use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use crate::domain::EmailAddress;
use crate::templates::Rendered;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("address `{0}` cannot be used in a header: {1}")]
    Address(String, String),
    #[error("cannot build message: {0}")]
    Build(String),
}

/// A built message ready for the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub raw: Vec<u8>,
    /// Message-ID without angle brackets.
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// What an automatic reply needs.
#[derive(Debug, Clone)]
pub struct ReplySpec<'a> {
    pub from_name: &'a str,
    pub from: &'a EmailAddress,
    pub to_name: Option<&'a str>,
    pub to: &'a EmailAddress,
    pub ticket_number: &'a str,
    /// Message-ID of the mail answered (without brackets) and its References.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub text: &'a Rendered,
    /// Unique suffix for the Message-ID (e.g. the idempotency key's hash).
    pub unique: &'a str,
    pub now_ms: i64,
    /// `Auto-Submitted: auto-replied` (RFC 3834) for acknowledgements.
    pub auto_replied: bool,
    /// `Auto-Submitted: auto-generated` for notifications.
    pub auto_generated: bool,
    /// A Message-ID (without brackets) to use instead of a generated one (signed notifications).
    pub message_id: Option<String>,
    /// The HTML rendering of `text.body` (the desk's layout template; see
    /// `Templates::render_html`).
    pub html: &'a str,
    /// Files that travel with the mail; inline images are referenced by the HTML part.
    pub files: &'a [OutFile],
}

/// A file an outbound mail carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// `Some(content id)` (without brackets) for an image shown inside the HTML part.
    pub inline_cid: Option<String>,
}

/// A MIME content type as lettre takes it; anything unreadable is sent as bytes.
fn content_type(ct: &str) -> ContentType {
    ContentType::parse(ct).unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("valid"))
}

/// The body of a mail: the text and HTML alternatives, inline images, attachments.
fn body(text: &str, html: &str, files: &[OutFile], boundary: &str) -> MultiPart {
    let alternative = MultiPart::alternative()
        .boundary(format!("alt-{boundary}"))
        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.to_string()))
        .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.to_string()));
    let inline: Vec<&OutFile> = files.iter().filter(|f| f.inline_cid.is_some()).collect();
    let attached: Vec<&OutFile> = files.iter().filter(|f| f.inline_cid.is_none()).collect();
    let main = if inline.is_empty() {
        alternative
    } else {
        let mut related = MultiPart::related().boundary(format!("rel-{boundary}")).multipart(alternative);
        for f in inline {
            let cid = f.inline_cid.clone().unwrap_or_default();
            let part = Attachment::new_inline_with_name(cid, clean_name(&f.filename))
                .body(file_body(&f.bytes), content_type(&f.content_type));
            related = related.singlepart(part);
        }
        related
    };
    if attached.is_empty() {
        return main;
    }
    let mut mixed = MultiPart::mixed().boundary(format!("mix-{boundary}")).multipart(main);
    for f in attached {
        let part = Attachment::new(clean_name(&f.filename)).body(file_body(&f.bytes), content_type(&f.content_type));
        mixed = mixed.singlepart(part);
    }
    mixed
}

/// A file's bytes, always base64: lettre would send bytes that happen to be ASCII as 7bit, NUL
/// bytes and bare CRs included, which servers rewrite (Dovecot stored a NUL as 0x80).
fn file_body(bytes: &[u8]) -> Body {
    Body::new_with_encoding(bytes.to_vec(), ContentTransferEncoding::Base64).unwrap_or_else(Body::new)
}

/// A file name safe in a header: one line, no quotes or path, never empty.
fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control() && *c != '"').take(200).collect();
    if clean.trim().is_empty() { "file".to_string() } else { clean.trim().to_string() }
}

/// Whether `addr` can be written in a mail's header. Loket reads some addresses the mail library
/// will not write (`taro..yamada@…`, a domain label that starts or ends with `-`): their owners
/// still get tickets, but no mail; the caller records why.
pub fn addressable(addr: &EmailAddress) -> Result<(), ComposeError> {
    mailbox(None, addr).map(|_| ())
}

fn mailbox(name: Option<&str>, addr: &EmailAddress) -> Result<Mailbox, ComposeError> {
    let address = addr
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| ComposeError::Address(addr.to_string(), e.to_string()))?;
    Ok(Mailbox::new(name.map(|n| n.replace(['\r', '\n'], " ")), address))
}

/// What [`reply`] records of a mail besides its bytes (`raw` left empty): its Message-ID, sender,
/// recipients, subject and text. Cheap; [`reply`] gives the same values.
pub fn envelope(spec: &ReplySpec<'_>) -> Outgoing {
    let unique = unique_part(spec.unique);
    let message_id = spec.message_id.clone().unwrap_or_else(|| {
        format!("loket.{}.{}.{}@{}", spec.ticket_number.to_ascii_lowercase(), spec.now_ms, unique, spec.from.domain())
    });
    Outgoing {
        raw: Vec::new(),
        message_id,
        sender: spec.from.to_string(),
        recipients: vec![spec.to.to_string()],
        subject: spec.text.subject.clone(),
        body: spec.text.body.clone(),
    }
}

fn unique_part(unique: &str) -> String {
    unique.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect()
}

pub fn reply(spec: &ReplySpec<'_>) -> Result<Outgoing, ComposeError> {
    let mut out = envelope(spec);
    let unique = unique_part(spec.unique);
    let message_id = &out.message_id;
    let mut b = Message::builder()
        .from(mailbox(Some(spec.from_name), spec.from)?)
        .to(mailbox(spec.to_name, spec.to)?)
        .subject(spec.text.subject.replace(['\r', '\n'], " "))
        .message_id(Some(format!("<{message_id}>")))
        .date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(spec.now_ms.max(0) as u64));
    if let Some(parent) = spec.in_reply_to {
        b = b.in_reply_to(format!("<{parent}>"));
        let mut refs: Vec<String> = spec.references.iter().map(|r| format!("<{r}>")).collect();
        refs.push(format!("<{parent}>"));
        b = b.references(refs.join(" "));
    }
    b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Loket-Ticket"), spec.ticket_number.into()));
    b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Loop"), spec.from.to_string()));
    if spec.auto_generated {
        b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()));
    } else if spec.auto_replied {
        b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-replied".into()));
    }
    if spec.auto_generated || spec.auto_replied {
        b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"), "All".into()));
    }
    let boundary: String = unique.chars().chain(spec.now_ms.to_string().chars()).take(32).collect();
    let msg = b
        .multipart(body(&spec.text.body, spec.html, spec.files, &boundary))
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    out.raw = msg.formatted();
    Ok(out)
}

/// The text and HTML alternatives of a mail, when it has a `multipart/alternative` part with
/// both a `text/plain` and a `text/html` child (what every mail Loket sends has; the tests check
/// it on every mail their flows produce).
pub fn text_and_html(raw: &[u8]) -> Option<(String, String)> {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    let m = MessageParser::default().parse(raw)?;
    let is = |p: &mail_parser::MessagePart, t: &str, s: &str| {
        p.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case(t) && c.subtype().is_some_and(|x| x.eq_ignore_ascii_case(s))
        })
    };
    m.parts.iter().find_map(|p| {
        let PartType::Multipart(children) = &p.body else { return None };
        if !is(p, "multipart", "alternative") {
            return None;
        }
        let child = |t: &str, s: &str| {
            children.iter().filter_map(|i| m.parts.get(*i as usize)).find(|c| is(c, t, s)).and_then(|c| match &c.body {
                PartType::Text(x) | PartType::Html(x) => Some(x.to_string()),
                _ => None,
            })
        };
        Some((child("text", "plain")?, child("text", "html")?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;
    use mail_parser::MimeHeaders;

    #[test]
    fn addresses_the_mail_library_cannot_write_are_told_apart() {
        for ok in ["budi@example.test", "budi.santoso+it@dinas.go.id", "bü@x.test"] {
            assert!(addressable(&EmailAddress::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in ["taro..yamada@example.test", ".budi@example.test", "budi@ex..test", "budi@-x.test"] {
            let addr = EmailAddress::parse(bad).expect("read as an address");
            let e = addressable(&addr).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn acknowledgement_carries_thread_and_loop_headers() {
        let from = EmailAddress::parse("hero@desk.test").unwrap();
        let to = EmailAddress::parse("budi@example.test").unwrap();
        let text =
            Rendered { subject: "[#A-HERO26000001] SIGI érror".into(), body: "Nomor tiket A-HERO26000001\n".into() };
        let out = reply(&ReplySpec {
            from_name: "HERO",
            from: &from,
            to_name: Some("Budi"),
            to: &to,
            ticket_number: "A-HERO26000001",
            in_reply_to: Some("orig@example.test"),
            references: &["root@example.test".to_string()],
            text: &text,
            unique: "sha256:abcdef0123456789ff",
            now_ms: 1_767_578_400_000,
            auto_replied: true,
            auto_generated: false,
            message_id: None,
            html: "<p>Nomor tiket A-HERO26000001</p>",
            files: &[],
        })
        .unwrap();
        let back = parse(&out.raw).unwrap();
        assert_eq!(back.subject, "[#A-HERO26000001] SIGI érror");
        assert_eq!(back.message_id.as_deref(), Some(out.message_id.as_str()));
        assert_eq!(back.in_reply_to, vec!["orig@example.test"]);
        assert_eq!(back.references, vec!["root@example.test", "orig@example.test"]);
        assert_eq!(back.auto.auto_submitted.as_deref(), Some("auto-replied"));
        assert!(back.auto.loket_marker);
        assert!(back.text.contains("A-HERO26000001"));
        assert_eq!(out.recipients, vec!["budi@example.test"]);
        let m = mail_parser::MessageParser::default().parse(&out.raw).unwrap();
        assert_eq!(m.content_type().map(|c| c.subtype()), Some(Some("alternative")));
        let (text, html) = text_and_html(&out.raw).expect("both alternatives");
        assert!(text.contains("Nomor tiket A-HERO26000001"), "{text}");
        assert!(html.contains("<p>Nomor tiket A-HERO26000001</p>"), "{html}");
        assert!(text_and_html(b"From: a@b.test\r\nSubject: x\r\n\r\nplain\r\n").is_none());
    }

    #[test]
    fn files_go_inline_and_attached_beside_both_alternatives() {
        let from = EmailAddress::parse("hero@desk.test").unwrap();
        let to = EmailAddress::parse("budi@example.test").unwrap();
        let text = Rendered { subject: "Re: x".into(), body: "Terlampir.\n".into() };
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR gambar".to_vec();
        let pdf = b"%PDF-1.4 surat".to_vec();
        let nul = b"abc\0def\rghi".to_vec();
        let files = [
            OutFile {
                filename: "layar.png".into(),
                content_type: "image/png".into(),
                bytes: png.clone(),
                inline_cid: Some("file1.abc@desk.test".into()),
            },
            OutFile {
                filename: "../../etc/\"surat\".pdf".into(),
                content_type: "not a type".into(),
                bytes: pdf.clone(),
                inline_cid: None,
            },
            OutFile {
                filename: "catatan.bin".into(),
                content_type: "application/octet-stream".into(),
                bytes: nul.clone(),
                inline_cid: None,
            },
        ];
        let out = reply(&ReplySpec {
            from_name: "HERO",
            from: &from,
            to_name: None,
            to: &to,
            ticket_number: "A-HERO26000001",
            in_reply_to: None,
            references: &[],
            text: &text,
            unique: "0123456789abcdef",
            now_ms: 1_767_578_400_000,
            auto_replied: false,
            auto_generated: false,
            message_id: None,
            html: "<p>Terlampir.</p><img src=\"cid:file1.abc@desk.test\">",
            files: &files,
        })
        .unwrap();
        let m = mail_parser::MessageParser::default().parse(&out.raw).unwrap();
        assert_eq!(m.content_type().and_then(|c| c.subtype()), Some("mixed"));
        assert!(text_and_html(&out.raw).is_some());
        assert!(m.body_text(0).unwrap().contains("Terlampir."));
        assert!(m.body_html(0).unwrap().contains("cid:file1.abc@desk.test"));
        let atts: Vec<_> = m.attachments().collect();
        assert_eq!(atts.len(), 3);
        // Every file is base64, even bytes that are all ASCII (with a NUL and a bare CR).
        for a in &atts {
            assert_eq!(a.content_transfer_encoding(), Some("base64"), "{:?}", a.attachment_name());
        }
        assert_eq!(atts[2].contents(), &nul[..]);
        assert_eq!(atts[0].contents(), &png[..]);
        assert_eq!(atts[0].content_id(), Some("file1.abc@desk.test"));
        assert_eq!(atts[1].contents(), &pdf[..]);
        assert_eq!(atts[1].attachment_name(), Some("surat.pdf"));
        assert!(parse(&out.raw).is_ok());
    }
}
