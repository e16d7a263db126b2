//! Builds outbound mail: the RFC 5322 bytes the outbox stores and the transport sends. Pure apart
//! from reading nothing: the caller passes `now` and the rendered text.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};

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
}

fn mailbox(name: Option<&str>, addr: &EmailAddress) -> Result<Mailbox, ComposeError> {
    let address = addr
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| ComposeError::Address(addr.to_string(), e.to_string()))?;
    Ok(Mailbox::new(name.map(|n| n.replace(['\r', '\n'], " ")), address))
}

pub fn reply(spec: &ReplySpec<'_>) -> Result<Outgoing, ComposeError> {
    let unique: String = spec.unique.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect();
    let message_id = spec.message_id.clone().unwrap_or_else(|| {
        format!("loket.{}.{}.{}@{}", spec.ticket_number.to_ascii_lowercase(), spec.now_ms, unique, spec.from.domain())
    });
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
    let msg = b
        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(spec.text.body.clone()))
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(Outgoing {
        raw: msg.formatted(),
        message_id,
        sender: spec.from.to_string(),
        recipients: vec![spec.to.to_string()],
        subject: spec.text.subject.clone(),
        body: spec.text.body.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

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
    }
}
