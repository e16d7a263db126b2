//! Bounce (non-delivery report) recognition and parsing. Pure, bounded, never panics.
//!
//! Two kinds of report are understood:
//!
//! - **Standard DSNs** (RFC 3464 / RFC 6533): a `message/delivery-status` or
//!   `message/global-delivery-status` part, whose per-recipient fields (`Final-Recipient`,
//!   `Action`, `Status`, `Diagnostic-Code`) are read. A report in which every recipient was
//!   `delivered`, `relayed` or `expanded` is a success notice, not a bounce.
//! - **Non-standard bounces** (qmail, Exim, older sendmail, Exchange, Lotus Notes, Gmail, Yahoo,
//!   …), recognised from general signals: a machine sender (mailer-daemon, postmaster, "Mail
//!   Delivery System"), a null `Return-Path`, `X-Failed-Recipients`, bounce-like subjects and
//!   explanation texts, and a returned copy of the original message. Failed recipients are then
//!   taken from the explanation text (the part before the returned copy), else from the returned
//!   message's `To`.
//!
//! Feedback reports (ARF, RFC 5965) and read receipts (RFC 8098) are not bounces: [`detect`]
//! returns `None` for them ([`report_type`] names them for the loop guard).

use std::sync::LazyLock;

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

/// At most this many failed recipients are kept.
pub const MAX_FAILED_RECIPIENTS: usize = 50;
/// At most this many Message-IDs of the returned message are kept.
pub const MAX_ORIGINAL_IDS: usize = 20;
/// Longest diagnostic text kept, in characters.
pub const MAX_DIAGNOSTIC_CHARS: usize = 300;
/// At most this many bytes of the report's text are examined (explanations are short; the rest
/// is the returned message).
const MAX_TEXT_BYTES: usize = 128 * 1024;
/// At most this many bytes of a delivery-status part are read.
const MAX_DSN_BYTES: usize = 64 * 1024;
/// At most this many MIME parts are looked at.
const MAX_PARTS: usize = 64;
/// At most this many lines of text are scanned for addresses, codes and ids.
const MAX_LINES: usize = 2000;

/// What a delivery report says about the mail that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bounce {
    /// Lower-cased addresses that could not be reached, at most [`MAX_FAILED_RECIPIENTS`].
    pub failed_recipients: Vec<String>,
    /// RFC 3463 status, e.g. "5.1.1".
    pub status: Option<String>,
    /// Short diagnostic text (at most [`MAX_DIAGNOSTIC_CHARS`] characters).
    pub diagnostic: Option<String>,
    /// Permanent failure: the report is final and the status (or SMTP reply) is of class 5.
    pub hard: bool,
    /// A delay notice (`Action: delayed`, "will retry"): the message may still be delivered.
    pub delayed: bool,
    /// Message-IDs (without `<>`) of the returned message, at most [`MAX_ORIGINAL_IDS`].
    pub original_message_ids: Vec<String>,
}

/// The kind of machine report a message is, if it is one: the `report-type` of a
/// `multipart/report` (`delivery-status`, `feedback-report`, `disposition-notification`, …), else
/// inferred from a report part (`message/feedback-report`, `message/disposition-notification`,
/// `message/delivery-status`). Lower-cased.
pub fn report_type(msg: &Message<'_>) -> Option<String> {
    if let Some(ct) = msg.root_part().content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && let Some(rt) = ct.attribute("report-type")
    {
        let rt = rt.trim().to_ascii_lowercase();
        if !rt.is_empty() {
            return Some(rt);
        }
    }
    msg.parts.iter().take(MAX_PARTS).find_map(|p| {
        let ct = p.content_type()?;
        if !ct.ctype().eq_ignore_ascii_case("message") {
            return None;
        }
        match ct.subtype()?.to_ascii_lowercase().as_str() {
            "feedback-report" => Some("feedback-report".to_string()),
            "disposition-notification" | "global-disposition-notification" => {
                Some("disposition-notification".to_string())
            }
            "delivery-status" | "global-delivery-status" => Some("delivery-status".to_string()),
            _ => None,
        }
    })
}

/// Recognises a bounce (or delay notice) and reads what it reports. `None` for anything else,
/// including feedback reports, read receipts and successful-delivery notices.
pub fn detect(msg: &Message<'_>) -> Option<Bounce> {
    let report = report_type(msg);
    if matches!(report.as_deref(), Some("feedback-report" | "disposition-notification")) {
        return None;
    }
    let head = HeadSignals::read(msg);
    if report.is_none()
        && !head.strong_machine
        && !head.weak_machine
        && !head.bounce_subject
        && head.x_failed_recipients.is_none()
        && !head.exchange_ndr
    {
        // Nothing says machine or bounce: spare ordinary mail the text scan.
        return None;
    }
    let parts = Parts::collect(msg);
    if parts.feedback {
        return None;
    }

    // A DSN: from its delivery-status part(s), else from DSN fields written into the text.
    let mut dsn: Vec<DsnRecipient> = parts.dsn.iter().flat_map(|t| parse_dsn(t)).collect();
    if dsn.is_empty() && parts.dsn.is_empty() && has_dsn_fields(&parts.text) {
        dsn = parse_dsn(&parts.text);
    }
    let failing: Vec<&DsnRecipient> = dsn.iter().filter(|r| r.is_failing()).collect();
    let success_only = !dsn.is_empty() && failing.is_empty() && dsn.iter().all(|r| r.is_success());

    let ses = ses_notification(&parts.text);
    if matches!(ses, Some(Ses::Other)) {
        // An Amazon SES delivery or complaint notification.
        return None;
    }

    let (explanation, returned) = split_returned(&parts.text);
    let subject_hit = head.bounce_subject;
    let body_hit = BODY_RE.is_match(explanation);
    let has_returned = !parts.returned.is_empty() || !parts.returned_headers.is_empty() || returned.is_some();

    let structural = !failing.is_empty()
        || head.x_failed_recipients.is_some()
        || head.exchange_ndr
        || matches!(ses, Some(Ses::Bounce(_)))
        || (!success_only && (report.as_deref() == Some("delivery-status") || !parts.dsn.is_empty()));
    if success_only && !structural {
        return None;
    }
    let is_bounce = structural
        || (head.strong_machine && (subject_hit || body_hit))
        || (head.weak_machine && subject_hit && body_hit)
        || (!head.forwarded && subject_hit && body_hit && has_returned);
    if !is_bounce {
        return None;
    }

    let own = &head.own;
    let mut b = Bounce {
        failed_recipients: Vec::new(),
        status: None,
        diagnostic: None,
        hard: false,
        delayed: false,
        original_message_ids: Vec::new(),
    };

    // Failed recipients, status and diagnostic.
    if let Some(Ses::Bounce(s)) = &ses {
        for r in &s.recipients {
            push_address(&mut b.failed_recipients, r);
        }
        b.status = s.status.clone();
        b.diagnostic = s.diagnostic.as_deref().map(short);
        b.hard = s.permanent;
        b.delayed = false;
    } else if !failing.is_empty() {
        for r in &failing {
            if let Some(a) = &r.address {
                push_address(&mut b.failed_recipients, a);
            }
        }
        // The most severe recipient speaks for the report: a failure over a delay, class 5 over 4.
        // (`max_by_key` keeps the last of equals: search from the end to keep the first.)
        let worst = failing
            .iter()
            .rev()
            .max_by_key(|r| (r.action.as_deref() == Some("failed"), r.class() == Some('5')))
            .copied();
        if let Some(worst) = worst {
            b.status = worst.status.clone();
            b.diagnostic = worst.diagnostic.as_deref().map(short);
            if let (Some(st), Some(diag)) = (&b.status, &worst.diagnostic) {
                // "5.0.0" from the MTA, "550 5.1.1 …" from the remote server: keep the precise one.
                if st.ends_with(".0.0")
                    && let Some(better) = find_status(diag)
                    && better.get(..1) == st.get(..1)
                    && !better.ends_with(".0.0")
                {
                    b.status = Some(better);
                }
            }
        }
        b.delayed = failing.iter().all(|r| r.action.as_deref() == Some("delayed"));
        b.hard = !b.delayed
            && failing.iter().any(|r| {
                r.action.as_deref() != Some("delayed")
                    && match r.class() {
                        Some(c) => c == '5',
                        None => r.diagnostic.as_deref().and_then(find_reply_code).is_none_or(|c| c.starts_with('5')),
                    }
            });
    }
    if let Some(x) = &head.x_failed_recipients {
        for a in ADDRESS_RE.find_iter(x) {
            push_address(&mut b.failed_recipients, a.as_str());
        }
    }
    if b.failed_recipients.is_empty() {
        for a in explanation_addresses(explanation, head.sender.as_deref(), own) {
            push_address(&mut b.failed_recipients, &a);
        }
    }
    if b.failed_recipients.is_empty() {
        // Last resort: whom the returned message was addressed to.
        let mut to = Vec::new();
        for m in &parts.returned {
            to.extend(addresses_of(m.to()));
        }
        for h in parts.returned_headers.iter().map(String::as_str).chain(returned) {
            if let Some(m) = parse_header_block(h) {
                to.extend(addresses_of(m.to()));
            }
        }
        for a in to {
            if head.sender.as_deref() != Some(a.as_str()) && !own.contains(&a) {
                push_address(&mut b.failed_recipients, &a);
            }
        }
    }
    if b.status.is_none() {
        b.status = find_status(explanation).or_else(|| find_status(&head.subject));
    }
    if b.diagnostic.is_none() {
        b.diagnostic = text_diagnostic(explanation, &b.failed_recipients).map(|d| short(&d));
    }
    if failing.is_empty() && !matches!(ses, Some(Ses::Bounce(_))) {
        // A text bounce (or a report whose delivery-status part could not be read).
        let delay = DELAY_RE.is_match(&head.subject) || DELAY_RE.is_match(explanation);
        let permanent = PERMANENT_RE.is_match(&head.subject) || PERMANENT_RE.is_match(explanation);
        b.delayed = delay && !permanent;
        let class = b.status.as_deref().and_then(|s| s.chars().next());
        b.hard = !b.delayed
            && match class {
                Some(c) => c == '5',
                None => find_reply_code(explanation).is_none_or(|c| c.starts_with('5')),
            };
    }

    // The returned message's ids, for threading.
    let mut ids = Vec::new();
    for m in &parts.returned {
        match m.message_id() {
            Some(id) => ids.push(clean_id(id)),
            // Blank lines before the returned headers leave the parsed message without any.
            None => ids.extend(
                parse_header_block(&String::from_utf8_lossy(m.raw_message()))
                    .and_then(|h| h.message_id().map(clean_id)),
            ),
        }
    }
    for h in &parts.returned_headers {
        ids.extend(parse_header_block(h).and_then(|m| m.message_id().map(clean_id)));
    }
    ids.extend(parts.part_ids.iter().cloned());
    if let Some(r) = returned {
        ids.extend(message_id_lines(r));
    }
    ids.extend(head.original_ids.iter().cloned());
    if ids.is_empty() {
        // Broken MIME can leave the returned headers inside the text or the delivery-status part.
        for t in parts.dsn.iter().chain(std::iter::once(&parts.text)) {
            ids.extend(message_id_lines(t));
        }
    }
    for id in ids {
        if !id.is_empty()
            && id.len() <= 250
            && !b.original_message_ids.contains(&id)
            && b.original_message_ids.len() < MAX_ORIGINAL_IDS
        {
            b.original_message_ids.push(id);
        }
    }
    Some(b)
}

/// The parts of a report that matter, from the top-level message only (a bounce forwarded as an
/// attachment is not itself a bounce).
#[derive(Default)]
struct Parts<'m, 'x> {
    /// Text of the human-readable parts (HTML turned into text), capped.
    text: String,
    /// Bodies of delivery-status parts.
    dsn: Vec<String>,
    /// Returned messages (`message/rfc822`, `message/global`).
    returned: Vec<&'m Message<'x>>,
    /// Returned headers (`text/rfc822-headers`, undecodable returned messages).
    returned_headers: Vec<String>,
    /// Message-IDs of MIME parts that are a returned message's headers without a content type.
    part_ids: Vec<String>,
    /// A `message/feedback-report` part was seen.
    feedback: bool,
}

impl<'m, 'x> Parts<'m, 'x> {
    fn collect(msg: &'m Message<'x>) -> Self {
        let mut out = Parts::default();
        let root = msg.root_part();
        if let PartType::Multipart(children) = &root.body
            && children.is_empty()
        {
            // A multipart whose boundary never occurs: its body is all text there is.
            let raw = msg.raw_message();
            let (start, end) = (root.raw_body_offset() as usize, root.raw_end_offset() as usize);
            if let Some(body) = raw.get(start..end.min(start.saturating_add(MAX_TEXT_BYTES))) {
                out.push_text(&String::from_utf8_lossy(body));
            }
        }
        for (i, part) in msg.parts.iter().enumerate().take(MAX_PARTS) {
            if i > 0
                && let Some(id) = part
                    .headers
                    .iter()
                    .find(|h| h.name().eq_ignore_ascii_case("Message-ID"))
                    .and_then(|h| h.value().as_text())
            {
                // A returned message pasted into a MIME part: its headers became the part's.
                out.part_ids.push(clean_id(id));
            }
            let (ctype, subtype) = part
                .content_type()
                .map(|c| (c.ctype().to_ascii_lowercase(), c.subtype().unwrap_or("").to_ascii_lowercase()))
                .unwrap_or_else(|| ("text".into(), "plain".into()));
            let dsn_type = matches!(subtype.as_str(), "delivery-status" | "global-delivery-status");
            let headers_type = matches!(subtype.as_str(), "rfc822-headers" | "global-headers");
            match &part.body {
                PartType::Message(m) => out.returned.push(m),
                PartType::Multipart(_) => {}
                _ if ctype == "message" && subtype == "feedback-report" => out.feedback = true,
                _ if dsn_type => out.dsn.push(capped(&String::from_utf8_lossy(part.contents()), MAX_DSN_BYTES)),
                _ if headers_type
                    || (ctype == "message" && matches!(subtype.as_str(), "rfc822" | "global" | "partial")) =>
                {
                    out.returned_headers.push(capped(&String::from_utf8_lossy(part.contents()), MAX_TEXT_BYTES))
                }
                // (A multipart whose boundary never occurs is read as text.)
                PartType::Text(t) if ctype == "text" || ctype == "multipart" => out.push_text(t),
                // A multipart whose boundary could not be read: its raw text is all there is.
                PartType::Binary(b) if ctype == "multipart" => out.push_text(&String::from_utf8_lossy(b)),
                PartType::Html(h) if out.text.len() < MAX_TEXT_BYTES => {
                    let h = capped(h, MAX_TEXT_BYTES * 2);
                    out.push_text(&html_to_text(&h))
                }
                _ => {}
            }
        }
        out
    }

    fn push_text(&mut self, t: &str) {
        if self.text.len() >= MAX_TEXT_BYTES {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        let room = MAX_TEXT_BYTES.saturating_sub(self.text.len());
        self.text.push_str(&capped(t, room));
    }
}

/// What the headers of the report itself say.
struct HeadSignals {
    subject: String,
    /// mailer-daemon/postmaster sender, "Mail Delivery System", null sender or return path.
    strong_machine: bool,
    /// Auto-Submitted or a no-reply sender.
    weak_machine: bool,
    /// The subject is a bounce subject.
    bounce_subject: bool,
    /// The subject says a person forwarded or replied to the mail.
    forwarded: bool,
    x_failed_recipients: Option<String>,
    /// Exchange / Office 365 mark their NDRs.
    exchange_ndr: bool,
    /// The report's sender.
    sender: Option<String>,
    /// The report's own addresses (To, Cc, Reply-To, Return-Path): failed recipients only when
    /// nothing else is named.
    own: Vec<String>,
    /// Ids the report names in its own headers as the original message.
    original_ids: Vec<String>,
}

impl HeadSignals {
    fn read(msg: &Message<'_>) -> Self {
        let subject = msg.subject().map(|s| capped(s.trim(), 998)).unwrap_or_default();
        let from = msg.from().or(msg.sender());
        let from_addr = from.and_then(|a| a.first()).and_then(|a| a.address()).map(|a| a.trim().to_ascii_lowercase());
        let from_name = from.and_then(|a| a.first()).and_then(|a| a.name()).map(|n| n.to_ascii_lowercase());
        let from_local = from_addr.as_deref().map(local_part).unwrap_or("");
        let return_path = msg.header_raw("Return-Path").map(|r| r.trim().to_ascii_lowercase());
        let null_rp = return_path.as_deref().is_some_and(|r| {
            let r = r.trim_start_matches('<').trim_end_matches('>').trim();
            r.is_empty() || is_machine_local(local_part(r))
        });
        // `From: <>` (or an empty From): the null sender of delivery systems. A missing From is
        // no sign of a machine.
        let null_from = msg.header_raw("From").map(str::trim).is_some_and(|f| f.is_empty() || f.contains("<>"));
        let machine_name =
            from_name.as_deref().is_some_and(|n| MACHINE_NAME_WORDS.may_hold(n) && MACHINE_NAME_RE.is_match(n));
        let strong_machine = is_machine_local(from_local) || machine_name || null_rp || null_from;
        let auto_submitted = msg
            .header_raw("Auto-Submitted")
            .is_some_and(|v| !v.trim().to_ascii_lowercase().starts_with("no") && !v.trim().is_empty());
        let no_reply = NO_REPLY_WORDS.may_hold(from_local) && NO_REPLY_RE.is_match(from_local);
        let x_failed_recipients =
            msg.header_raw("X-Failed-Recipients").map(|v| capped(v.trim(), 8 * 1024)).filter(|v| v.contains('@'));
        let exchange_ndr = msg.header_raw("X-MS-Exchange-Message-Is-Ndr").is_some();
        let mut own = Vec::new();
        for a in [msg.to(), msg.cc(), msg.reply_to()] {
            own.extend(addresses_of(a).into_iter().take(20));
        }
        if let Some(rp) = msg.return_address() {
            let rp = rp.trim().to_ascii_lowercase();
            if rp.contains('@') {
                own.push(rp);
            }
        }
        let mut original_ids = Vec::new();
        for name in ["X-Original-Message-ID", "Original-Message-ID"] {
            if let Some(v) = msg.header_raw(name) {
                original_ids.extend(v.split_whitespace().map(clean_id).filter(|s| s.contains('@')).take(5));
            }
        }
        // Each regex is tried (and so, in a process that reads one message, compiled) only on
        // a header that may match it.
        let forwarded = subject.contains(':') && FORWARD_RE.is_match(&subject);
        HeadSignals {
            bounce_subject: SUBJECT_WORDS.may_hold(&subject) && SUBJECT_RE.is_match(&subject),
            subject,
            strong_machine,
            weak_machine: auto_submitted || no_reply,
            forwarded,
            x_failed_recipients,
            exchange_ndr,
            sender: from_addr.filter(|a| a.contains('@')),
            own,
            original_ids,
        }
    }
}

/// One recipient block of a delivery-status part.
#[derive(Debug, Default)]
struct DsnRecipient {
    address: Option<String>,
    action: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
}

impl DsnRecipient {
    fn class(&self) -> Option<char> {
        self.status.as_deref().and_then(|s| s.chars().next())
    }

    fn is_failing(&self) -> bool {
        match self.action.as_deref() {
            Some("failed" | "delayed") => true,
            Some("delivered" | "relayed" | "expanded") => false,
            _ => matches!(self.class(), Some('4' | '5')),
        }
    }

    fn is_success(&self) -> bool {
        matches!(self.action.as_deref(), Some("delivered" | "relayed" | "expanded")) || self.class() == Some('2')
    }
}

/// Whether a text carries DSN fields (a delivery-status written into a text part).
fn has_dsn_fields(text: &str) -> bool {
    static FIELDS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?im)^(final|original)-recipient:\s*\S+;").expect("regex"));
    static ACTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?im)^action:\s*[a-z]+").expect("regex"));
    FIELDS.is_match(text) && ACTION.is_match(text)
}

/// Per-recipient fields of an RFC 3464 delivery-status body. Tolerant: folded fields, odd case,
/// fields in any order, and recipient blocks without the blank line between them (a block
/// naming several `Final-Recipient`s is split before each).
fn parse_dsn(text: &str) -> Vec<DsnRecipient> {
    let mut out: Vec<DsnRecipient> = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines().take(MAX_LINES).chain(std::iter::once("")) {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            dsn_block(&mut out, std::mem::take(&mut block));
            if out.len() >= MAX_FAILED_RECIPIENTS * 2 {
                break;
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = block.last_mut()
                && v.len() < 2048
            {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && !name.is_empty()
            && name.len() < 40
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && block.len() < 200
        {
            block.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

/// Turns one blank-line-separated block of DSN fields into recipients.
fn dsn_block(out: &mut Vec<DsnRecipient>, block: Vec<(String, String)>) {
    let key = if block.iter().any(|(n, _)| n == "final-recipient") { "final-recipient" } else { "original-recipient" };
    // Where each recipient starts: at every key field after the first, or at the
    // Original-Recipient right before it.
    let mut starts = vec![0];
    let mut seen_key = false;
    for (i, (name, _)) in block.iter().enumerate() {
        if name == key {
            if seen_key {
                let before_is_original = i > 0 && block[i - 1].0 == "original-recipient";
                let at = if before_is_original && key == "final-recipient" { i - 1 } else { i };
                if at > *starts.last().unwrap_or(&0) {
                    starts.push(at);
                }
            }
            seen_key = true;
        }
    }
    starts.push(block.len());
    for w in starts.windows(2) {
        let fields = &block[w[0]..w[1]];
        let mut r = DsnRecipient::default();
        for (name, value) in fields {
            match name.as_str() {
                "original-recipient" | "x-actual-recipient" if r.address.is_none() => r.address = dsn_address(value),
                "action" => {
                    let a = value.split(|c: char| c.is_whitespace() || c == '(' || c == ';').next().unwrap_or("");
                    r.action = Some(a.to_ascii_lowercase()).filter(|a| !a.is_empty());
                }
                "status" => r.status = find_dsn_status(value),
                "diagnostic-code" => {
                    let v = match value.split_once(';') {
                        Some((t, rest)) if t.len() < 20 => rest,
                        _ => value.as_str(),
                    };
                    let v = v.trim();
                    if !v.is_empty() {
                        r.diagnostic = Some(v.to_string());
                    }
                }
                _ => {}
            }
        }
        // Final-Recipient wins over Original-Recipient and X-Actual-Recipient.
        if let Some(a) = fields.iter().find(|(n, _)| n == "final-recipient").and_then(|(_, v)| dsn_address(v)) {
            r.address = Some(a);
        }
        if r.address.is_some() || (r.action.is_some() && r.status.is_some()) {
            out.push(r);
        }
    }
}

/// `rfc822; user@example.test` → `user@example.test`.
fn dsn_address(value: &str) -> Option<String> {
    let v = value.split_once(';').map(|(_, a)| a).unwrap_or(value);
    let v = v.trim().trim_start_matches('<').trim_end_matches('>').trim();
    let a = ADDRESS_RE.find(v)?.as_str();
    Some(a.to_ascii_lowercase())
}

/// An Amazon SES notification delivered by e-mail (JSON body).
enum Ses {
    Bounce(SesBounce),
    /// A delivery or complaint notification: not a bounce.
    Other,
}

struct SesBounce {
    recipients: Vec<String>,
    status: Option<String>,
    diagnostic: Option<String>,
    permanent: bool,
}

fn ses_notification(text: &str) -> Option<Ses> {
    static KIND: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"\\?"notificationType\\?"\s*:\s*\\?"(\w+)"#).expect("regex"));
    let kind = KIND.captures(text)?.get(1)?.as_str().to_ascii_lowercase();
    if kind != "bounce" {
        return Some(Ses::Other);
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let mut json: Option<serde_json::Value> = text.get(start..=end).and_then(|j| serde_json::from_str(j).ok());
    // Delivered through SNS, the notification is a JSON string inside the envelope's "Message".
    if let Some(inner) = json.as_ref().and_then(|j| j.get("Message")).and_then(|m| m.as_str()) {
        json = serde_json::from_str(inner).ok();
    }
    let mut b = SesBounce { recipients: Vec::new(), status: None, diagnostic: None, permanent: true };
    if let Some(bounce) = json.as_ref().and_then(|j| j.get("bounce")) {
        b.permanent = bounce.get("bounceType").and_then(|t| t.as_str()).is_none_or(|t| t == "Permanent");
        if let Some(list) = bounce.get("bouncedRecipients").and_then(|l| l.as_array()) {
            for r in list.iter().take(MAX_FAILED_RECIPIENTS) {
                if let Some(a) = r.get("emailAddress").and_then(|a| a.as_str()) {
                    b.recipients.push(a.to_string());
                }
                if b.status.is_none() {
                    b.status = r.get("status").and_then(|s| s.as_str()).and_then(find_status);
                }
                if b.diagnostic.is_none() {
                    b.diagnostic = r.get("diagnosticCode").and_then(|s| s.as_str()).map(str::to_string);
                }
            }
        }
    } else {
        // Not valid JSON (wrapped lines): read the fields loosely.
        static RCPT: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r#"\\?"emailAddress\\?"\s*:\s*\\?"([^"\\]+)"#).expect("regex"));
        static STATUS: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r#"\\?"status\\?"\s*:\s*\\?"([^"\\]+)"#).expect("regex"));
        for c in RCPT.captures_iter(text).take(MAX_FAILED_RECIPIENTS) {
            b.recipients.push(c[1].to_string());
        }
        b.status = STATUS.captures(text).and_then(|c| find_status(&c[1]));
        b.permanent = !text.contains("Transient");
    }
    Some(Ses::Bounce(b))
}

/// Splits a bounce's text into the explanation and the returned copy of the message (if the
/// copy is inline).
fn split_returned(text: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if n >= MAX_LINES {
            break;
        }
        let trimmed = line.trim();
        if CUT_RE.is_match(trimmed) {
            return (&text[..offset], Some(&text[offset + line.len()..]));
        }
        if HEADER_START_RE.is_match(line) {
            return (&text[..offset], Some(&text[offset..]));
        }
        offset += line.len();
    }
    (text, None)
}

/// An address named in an explanation text.
struct Candidate {
    address: String,
    /// Listed on a line of its own (`<a@b>:`, `a@b`, `a@b (a@b)`, `a@b on <date>`).
    listed: bool,
    /// One of the report's own addresses (its To, Cc, Reply-To).
    own: bool,
    machine: bool,
    /// On a line quoting a header field of the original ("To: …").
    header_line: bool,
}

/// The failed recipients an explanation text names, best first: addresses listed on lines of
/// their own, then any others; never the report's sender, nor senders ("MAIL FROM:<…>",
/// "from …", "expanded from <…>") nor ids. The report's own addressee and machine addresses
/// (postmaster@…) are only taken when nothing else is named (some reports bounce mail sent to
/// oneself or to a postmaster).
fn explanation_addresses(text: &str, sender: Option<&str>, own: &[String]) -> Vec<String> {
    let mut found: Vec<Candidate> = Vec::new();
    for line in text.lines().take(MAX_LINES) {
        let lower = line.to_ascii_lowercase();
        let t = lower.trim_start();
        if t.starts_with("message-id") || t.starts_with("references") || t.starts_with("in-reply-to") {
            continue;
        }
        let header_line = HEADER_LINE_RE.is_match(t);
        for m in ADDRESS_RE.find_iter(line) {
            let address = m.as_str().to_ascii_lowercase();
            let before = &lower[..m.start()];
            let ctx = before.get(before.len().saturating_sub(16)..).unwrap_or(before);
            if ctx.contains("from") || ctx.contains("sender") || ctx.contains("id ") || ctx.contains("ttp") {
                continue;
            }
            if sender == Some(address.as_str()) || found.iter().any(|c| c.address == address) {
                continue;
            }
            let rest = lower[m.end()..].trim_start_matches('>').trim();
            let listed = before.trim().trim_end_matches('<').trim().is_empty()
                && (rest.is_empty()
                    || rest.starts_with(':')
                    || rest.starts_with('(')
                    || rest.starts_with('[')
                    || rest.starts_with("on ")
                    || rest.starts_with("..."));
            found.push(Candidate {
                own: own.contains(&address),
                machine: is_machine_local(local_part(&address)),
                address,
                listed,
                header_line,
            });
            if found.len() >= MAX_FAILED_RECIPIENTS * 4 {
                break;
            }
        }
    }
    let tiers: [&dyn Fn(&Candidate) -> bool; 5] = [
        &|c| c.listed && !c.own && !c.machine && !c.header_line,
        &|c| !c.own && !c.machine && !c.header_line,
        &|c| !c.own && !c.machine,
        &|c| c.listed && !c.header_line,
        &|c| !c.own,
    ];
    for tier in tiers {
        let list: Vec<String> =
            found.iter().filter(|c| tier(c)).map(|c| c.address.clone()).take(MAX_FAILED_RECIPIENTS).collect();
        if !list.is_empty() {
            return list;
        }
    }
    Vec::new()
}

/// The line of an explanation that best says why delivery failed.
fn text_diagnostic(text: &str, recipients: &[String]) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(MAX_LINES).map(str::trim).collect();
    if let Some(l) = lines.iter().find(|l| SMTP_REPLY_RE.is_match(l)) {
        return Some(l.to_string());
    }
    if let Some(first) = recipients.first()
        && let Some(i) = lines.iter().position(|l| l.to_ascii_lowercase().contains(first.as_str()))
    {
        let after = lines.get(i + 1..).unwrap_or(&[]).iter().find(|l| !l.is_empty());
        let own = lines[i].trim_start_matches('<').trim_start_matches(first.as_str()).trim_start_matches(['>', ':']);
        let own = own.trim();
        if own.len() > 8 {
            return Some(own.to_string());
        }
        if let Some(a) = after {
            return Some(a.to_string());
        }
    }
    lines.iter().find(|l| BODY_RE.is_match(l)).map(|l| l.to_string())
}

/// The status of a DSN `Status:` field (any class: "2.0.0" for a success).
fn find_dsn_status(value: &str) -> Option<String> {
    let v = value.trim();
    let end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let code = &v[..end];
    let mut it = code.split('.');
    let ok = matches!(it.next(), Some("2" | "4" | "5"))
        && it.next().is_some_and(|d| (1..=3).contains(&d.len()))
        && it.next().is_some_and(|d| (1..=3).contains(&d.len()))
        && it.next().is_none();
    if ok { Some(code.to_string()) } else { find_status(v) }
}

/// The first RFC 3463 status code of class 4 or 5 in a text ("5.1.1"), not part of an IP
/// address or version number.
fn find_status(text: &str) -> Option<String> {
    for m in STATUS_RE.find_iter(text) {
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().take(2).collect::<Vec<_>>();
        if before.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        if after.first().is_some_and(|c| c.is_ascii_digit())
            || (after.first() == Some(&'.') && after.get(1).is_some_and(|c| c.is_ascii_digit()))
        {
            continue;
        }
        return Some(m.as_str().to_string());
    }
    None
}

/// The first SMTP reply code of class 4 or 5 in a text ("550").
fn find_reply_code(text: &str) -> Option<String> {
    SMTP_CODE_RE.captures(text).and_then(|c| c.get(1)).map(|m| m.as_str().to_string())
}

/// `Message-ID:` lines of an inline returned message's first header block.
fn message_id_lines(text: &str) -> Vec<String> {
    static MID: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?im)^\s*message-id:\s*<?([^\s<>]+@[^\s<>]+)>?").expect("regex"));
    let head = capped(text, 64 * 1024);
    MID.captures_iter(&head).take(MAX_ORIGINAL_IDS).map(|c| clean_id(&c[1])).collect()
}

/// Parses the header block at the start of a text (skipping blank lines).
fn parse_header_block(text: &str) -> Option<Message<'_>> {
    let text = text.trim_start_matches(['\r', '\n', ' ']);
    if text.is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    MessageParser::new().parse_headers(&bytes[..bytes.len().min(64 * 1024)])
}

fn addresses_of(a: Option<&Address<'_>>) -> Vec<String> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .take(MAX_FAILED_RECIPIENTS)
        .filter_map(|x| x.address())
        .map(|x| x.trim().to_ascii_lowercase())
        .filter(|x| x.contains('@'))
        .collect()
}

fn push_address(list: &mut Vec<String>, addr: &str) {
    let a = addr.trim().trim_start_matches('<').trim_end_matches('>').trim().to_ascii_lowercase();
    if a.contains('@') && a.len() <= 254 && !list.contains(&a) && list.len() < MAX_FAILED_RECIPIENTS {
        list.push(a);
    }
}

fn local_part(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr)
}

/// Local parts of delivery systems.
fn is_machine_local(local: &str) -> bool {
    let l = local.to_ascii_lowercase();
    let l = l.trim_matches('"');
    matches!(
        l,
        "mailer-daemon"
            | "mailer_daemon"
            | "mailerdaemon"
            | "mail-daemon"
            | "maildaemon"
            | "mdaemon"
            | "postmaster"
            | "post_master"
            | "post-master"
            | "mail.delivery.system"
            | "mail-delivery-system"
            | "maildelivery"
            | "mail-delivery"
    ) || l.starts_with("mailer-daemon")
        || l.starts_with("postmaster")
}

fn clean_id(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string()
}

fn short(s: &str) -> String {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(MAX_DIAGNOSTIC_CHARS) {
        Some((i, _)) => collapsed[..i].to_string(),
        None => collapsed,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn capped(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid built-in regex")
}

static ADDRESS_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+",
    )
});

static STATUS_RE: LazyLock<Regex> = LazyLock::new(|| re(r"[45]\.\d{1,3}\.\d{1,3}"));

static SMTP_CODE_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?:^|[\s:(\[#])([45][0-5]\d)(?:[\s-]|$)"));

/// A line carrying an SMTP reply ("550 5.1.1 …", "said: 550 …", "(#5.1.1)").
static SMTP_REPLY_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(?:^|[\s:(\[])[45][0-5]\d[\s-]+(?:[45]\.\d{1,3}\.\d{1,3}|\S)|#[45]\.\d{1,3}\.\d{1,3}"));

/// Display names of delivery systems.
static MACHINE_NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)mail(er)?[ -]?daemon|postmaster|mail delivery (system|subsystem|service)|delivery (status|subsystem|notification)|ndr administrator|mail ?deliver system",
    )
});

/// Every match of [`MACHINE_NAME_RE`] in ASCII text holds one of these (see [`super::Words`]).
static MACHINE_NAME_WORDS: super::Words = super::Words::new(&["daemon", "postmaster", "deliver", "ndr administrator"]);
/// Every match of [`NO_REPLY_RE`] holds this.
static NO_REPLY_WORDS: super::Words = super::Words::new(&["reply"]);

static NO_REPLY_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^(no[-_.]?reply|do[-_.]?not[-_.]?reply)"));

static FORWARD_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^\s*(fwd?|fw|aw|wg|tr|rv|re|sv|vs)\s*:"));

/// Subjects of bounces and delay notices, in the languages MTAs commonly use.
static SUBJECT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)undeliver|undelivered|non[- ]?deliver|not (been )?delivered|delivery (status|failure|failed|has failed|problem|notification|report|error|incomplete|delayed)",
        r"|mail delivery|mail failure|returned (mail|message|to sender)|return(ing)? (message )?to sender|failure notice|failed (mail|delivery)",
        r"|could not (be )?(delivered|send|deliver)|unable to deliver|delivery (to .* )?(failed|delayed)|mail system error",
        r"|message (not delivered|delivery failure|could not be delivered|delayed)|postmaster notify|error sending|there was an error sending",
        r"|warning: could not send|warning: message .{0,80} delayed|delayed mail|mail delayed|delivery delayed|delivery notification|nondeliverable|bounced? ",
        r"|^(delivery status|failure|bounce|undelivered|delivery failure|returned mail)\b",
        r"|unzustellbar|nicht zustellbar|non remis|no se puede entregar|non recapitabile|onbestelbaar|não é possível entregar",
        r"|nie można dostarczyć|kézbesíthetetlen|olevererbart|ei voitu toimittaa|tidak terkirim|メールエラー|配信エラー|未達",
    ))
});

/// Every match of [`SUBJECT_RE`] in ASCII text holds one of these (see [`super::Words`]; the test
/// `header_regexes_are_tried_only_where_their_words_are`). Not "error" or "message" alone: a
/// desk's incidents say "error" in their subjects ("SAKTI error saat login"), and compiling the
/// regex for each was a fifth of such an `ingest`.
static SUBJECT_WORDS: super::Words = super::Words::new(&[
    "deliver",
    "fail",
    "return",
    "could not",
    "error sending",
    "mail system",
    "postmaster",
    "delay",
    "bounce",
    "zustellbar",
    "remis",
    "entregar",
    "recapitabile",
    "onbestelbaar",
    "olevererbart",
    "toimittaa",
    "terkirim",
]);

/// Explanation texts of bounces and delay notices.
static BODY_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)this is the qmail-send program|wasn't able to deliver|was not able to deliver|unable to deliver|could not be delivered",
        r"|couldn't be delivered|could not deliver|cannot be delivered|can't be delivered|was not delivered|wasn't delivered|not (yet )?been delivered",
        r"|delivery (has |to the following recipients? )?(failed|has been delayed)|delivery failed|did not reach|could not be reached",
        r"|following address(es)?( had)? (failed|permanent|transient|delivery errors)|permanent (fatal )?error|fatal error",
        r"|undeliverable|non-delivery|nondelivery|returned mail|mail delivery (failed|failure|system|subsystem)|delivery status notification",
        r"|failed permanently|temporary (problem|failure|error)|will (continue to |keep )?(re)?try|retry (again|until|for)",
        r"|message (was|has been) (rejected|returned|blocked|refused|bounced)|user unknown|unknown user|no such (user|mailbox|recipient|address)",
        r"|mailbox (is )?(full|unavailable|not found|quota)|quota exceeded|over quota|recipient address rejected|host or domain name not found",
        r"|smtp error from remote|remote (host|server|mail server) said|said: [45]\d\d|host unknown|unrouteable|relay(ing)? denied",
        r"|the original message was received at|transcript of session|recipients? (was|were) rejected|returned (permanent|temporary) errors",
        r"|error (occurred )?(while|during) (sending|delivering)|delivery to the following|message could not be sent|not a valid (mail|e-?mail|recipient)",
        r"|delivery problems?|error delivering|problem delivering|invalid (user|recipient|e-?mail) address|incorrectly constructed|malformed (recipient )?address",
        r"|message (is|was) undeliverable|your message to .{1,200} (was|has been|could|couldn't|bounced)|rejected (by|your)|bounced",
        r"|送信できませんでした|配信できません|宛先不明",
    ))
});

/// A delay notice rather than a final failure.
static DELAY_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)\bdelay(ed)?\b|will (continue to |keep )?(re)?try|not (yet )?been delivered|hasn't been delivered yet|still (trying|retrying|being retried)",
        r"|delivery attempts will continue|will be retried|retry (again|until|for)|warning: could not send|warning only|do not need to resend",
        r"|no action is required|temporar(il)?y (deferred|delayed)|queued for (re)?delivery|will keep trying",
    ))
});

/// A final failure (overrides delay wording).
static PERMANENT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)permanent|given up|giving up|gave up|failed permanently|will not be retried|no further (delivery )?attempts|returning message to sender",
        r"|could not be delivered|couldn't be delivered|undeliverable|has been returned|delivery (to the following recipients? )?(has )?failed",
        r"|unable to deliver|failure notice|was not delivered",
    ))
});

/// Lines that end an explanation and start the returned copy: decorated separators naming the
/// copy ("------ This is a copy of the message, including all the headers. ------"), or whole
/// lines saying it follows ("Original message headers:", "Below is a copy of the original message:").
static CUT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)^(-{2,}|={2,}|\*{2,}|_{2,}|#{2,}).*(original message|original mail|copy of (the |your )?(original )?message|message follows",
        r"|message header|headers? follow|returned message|undelivered message|the header and top|forwarded message|message text)",
        r"|^(below this line is a copy of the message|below is a copy of the original message|original message( headers)?( follows)?",
        r"|the original message( headers)?( (is|are) (attached|below|included|as follows))?|message headers? follows?|original mail as follows",
        r"|(a )?copy of the original message( is attached| follows)?|headers of the original message|original message:?\s*(text|headers)?",
        r"|the header of the original message is attached|included is a copy of the message)\s*[:.]?\s*$",
    ))
});

/// A header field of an inline returned message, at the start of a line.
static HEADER_START_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(received|return-path|delivered-to|dkim-signature|x-received|arc-seal|authentication-results|x-original-to):\s*\S",
    )
});

/// Explanation lines that quote the original's header fields.
static HEADER_LINE_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^(to|cc|bcc|from|sender|reply-to|subject|sent|date|envoyé|gesendet|an|von|à|de|para)\s*:")
});

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_raw(raw: &str) -> Option<Bounce> {
        let msg = MessageParser::default().parse(raw.as_bytes()).expect("parses");
        detect(&msg)
    }

    const POSTFIX_DSN: &str = "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.test (Mail Delivery System)\r\n\
To: hero@desk.test\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"B1\"\r\n\r\n\
--B1\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
This is the mail system at host mx.example.test.\r\n\r\nI'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\r\n<gone@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1\r\n\
\x20   <gone@example.org>: Recipient address rejected: User unknown (in reply to RCPT TO command)\r\n\r\n\
--B1\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.example.test\r\nX-Postfix-Queue-ID: 4ABC\r\nArrival-Date: Mon,  5 Jan 2026 09:00:00 +0700\r\n\r\n\
Final-Recipient: rfc822; Gone@example.org\r\nOriginal-Recipient: rfc822;gone@example.org\r\nAction: failed\r\n\
Status: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.org>:\r\n\
\tRecipient address rejected: User unknown\r\n\r\n\
--B1\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n\
From: hero@desk.test\r\nTo: gone@example.org\r\nSubject: [#A-HERO26000001] Printer\r\n\
Message-ID: <ack-1@desk.test>\r\n\r\nHello\r\n\r\n--B1--\r\n";

    #[test]
    fn postfix_rfc3464_report() {
        let b = detect_raw(POSTFIX_DSN).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["gone@example.org"]);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        let diag = b.diagnostic.as_deref().unwrap();
        assert!(diag.starts_with("550 5.1.1 <gone@example.org>: Recipient address rejected"), "{diag}");
        assert!(b.hard && !b.delayed);
        assert_eq!(b.original_message_ids, vec!["ack-1@desk.test"]);
    }

    #[test]
    fn qmail_text_bounce() {
        let raw = "Return-Path: <>\nFrom: MAILER-DAEMON@mx4.example.jp\nTo: hero@desk.test\nSubject: failure notice\n\n\
Hi. This is the qmail-send program at mx4.example.jp.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
<kijitora@example.ne.jp>:\n\
192.0.2.32 does not like recipient.\nRemote host said: 550 Unknown user kijitora@example.ne.jp\n\
Giving up on 192.0.2.32.\n\n\
--- Below this line is a copy of the message.\n\n\
Return-Path: <hero@desk.test>\nReceived: (qmail 10000 invoked by uid 999); 24 Apr 2013 00:00:00 +0900\n\
Message-ID: <ack-7@desk.test>\nFrom: hero@desk.test\nTo: kijitora@example.ne.jp\nSubject: Re: [#A-HERO26000007]\n\nneko\n";
        let b = detect_raw(raw).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["kijitora@example.ne.jp"]);
        assert!(b.hard && !b.delayed);
        assert_eq!(b.status, None);
        assert_eq!(b.diagnostic.as_deref(), Some("Remote host said: 550 Unknown user kijitora@example.ne.jp"));
        assert_eq!(b.original_message_ids, vec!["ack-7@desk.test"]);
    }

    #[test]
    fn exchange_ndr() {
        let raw = "From: Microsoft Outlook <postmaster@contoso.example>\nTo: hero@desk.test\n\
Subject: Undeliverable: Printer on floor 3\nX-MS-Exchange-Message-Is-Ndr:\nContent-Type: text/plain; charset=utf-8\n\n\
Delivery has failed to these recipients or groups:\n\n\
Budi Santoso (budi@contoso.example)\nThe email address you entered couldn't be found. Please check the recipient's email address.\n\n\
Diagnostic information for administrators:\n\nGenerating server: MBX1.contoso.example\n\n\
budi@contoso.example\nRemote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n\n\
Original message headers:\n\nReceived: from desk.test by contoso.example\nMessage-ID: <ack-9@desk.test>\n\
From: hero@desk.test\nTo: Budi Santoso <budi@contoso.example>\n";
        let b = detect_raw(raw).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["budi@contoso.example"]);
        assert_eq!(b.status.as_deref(), Some("5.1.10"));
        assert!(b.hard);
        assert_eq!(b.original_message_ids, vec!["ack-9@desk.test"]);
    }

    #[test]
    fn exim_text_bounce_with_x_failed_recipients() {
        let raw = "From: Mail Delivery System <Mailer-Daemon@e1.example.org>\nTo: hero@desk.test\n\
X-Failed-Recipients: Kijitora@example.ed.jp\nSubject: Mail delivery failed: returning message to sender\n\n\
This message was created automatically by mail delivery software.\n\n\
A message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n\
  kijitora@example.ed.jp\n    SMTP error from remote mail server after RCPT TO:<kijitora@example.ed.jp>:\n\
    host mx.example.jp [192.0.2.20]: 550 5.1.1 <kijitora@example.ed.jp>... User unknown\n\n\
------ This is a copy of the message, including all the headers. ------\n\n\
Return-path: <hero@desk.test>\nMessage-Id: <ack-3@desk.test>\nFrom: hero@desk.test\n\ntest\n";
        let b = detect_raw(raw).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["kijitora@example.ed.jp"]);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert!(b.hard && !b.delayed);
        assert_eq!(b.original_message_ids, vec!["ack-3@desk.test"]);
    }

    #[test]
    fn delayed_dsn_is_not_hard() {
        let raw = "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.test>\nTo: hero@desk.test\n\
Subject: Warning: could not send message for past 4 hours\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\n\
Content-Type: text/plain\n\n    **********************************************\n\
    **      THIS IS A WARNING MESSAGE ONLY      **\n    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n\
    **********************************************\n\n\
--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.test\n\n\
Final-Recipient: RFC822; slow@example.org\nAction: delayed\nStatus: 4.4.7\n\
Will-Retry-Until: Thu, 8 Jan 2026 09:00:00 +0700\n\n--b\nContent-Type: text/rfc822-headers\n\n\
Message-ID: <ack-2@desk.test>\nSubject: x\n\n--b--\n";
        let b = detect_raw(raw).expect("a delay notice is reported");
        assert!(b.delayed && !b.hard);
        assert_eq!(b.status.as_deref(), Some("4.4.7"));
        assert_eq!(b.failed_recipients, vec!["slow@example.org"]);
        assert_eq!(b.original_message_ids, vec!["ack-2@desk.test"]);
    }

    #[test]
    fn delayed_text_notice() {
        let raw = "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nTo: hero@desk.test\n\
Subject: Warning: message 1AbCdE-000123-Xy delayed 24 hours\n\n\
This message was created automatically by mail delivery software.\n\n\
A message that you sent has not yet been delivered to one or more of its\nrecipients after more than 24 hours on the queue on mx.example.org.\n\n\
  slow@example.net\n    host mx.example.net [192.0.2.7]: Connection timed out\n\n\
No action is required on your part. Delivery attempts will continue for\nsome time, and this warning may be repeated at intervals if the message\nremains undelivered.\n";
        let b = detect_raw(raw).expect("a delay notice");
        assert!(b.delayed && !b.hard);
        assert_eq!(b.failed_recipients, vec!["slow@example.net"]);
    }

    #[test]
    fn feedback_report_is_not_a_bounce() {
        let raw = "From: staff@hotmail.example\nTo: abuse@desk.test\nSubject: complaint about message from 192.0.2.1\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n\
This is an email abuse report for an email message received from IP 192.0.2.1\n\n--b\n\
Content-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\nVersion: 1\n\n\
--b\nContent-Type: message/rfc822\n\nFrom: hero@desk.test\nMessage-ID: <ack-4@desk.test>\n\nspam?\n--b--\n";
        assert_eq!(detect_raw(raw), None);
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert_eq!(report_type(&msg).as_deref(), Some("feedback-report"));
    }

    #[test]
    fn success_dsn_and_read_receipt_are_not_bounces() {
        let dsn = "From: MAILER-DAEMON@mx.example.test\nTo: hero@desk.test\nSubject: Successful Mail Delivery Report\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n\
Your message was successfully delivered to the destination(s) listed below.\n\n--b\n\
Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.test\n\n\
Final-Recipient: rfc822; budi@example.org\nAction: delivered\nStatus: 2.0.0\n\n--b--\n";
        assert_eq!(detect_raw(dsn), None);
        let mdn = "From: budi@example.org\nTo: hero@desk.test\nSubject: Read: Printer\n\
Content-Type: multipart/report; report-type=disposition-notification; boundary=\"b\"\n\n--b\n\
Content-Type: text/plain\n\nThe message was displayed.\n\n--b\nContent-Type: message/disposition-notification\n\n\
Final-Recipient: rfc822; budi@example.org\nDisposition: manual-action/MDN-sent-manually; displayed\n\n--b--\n";
        assert_eq!(detect_raw(mdn), None);
    }

    #[test]
    fn normal_mail_is_not_a_bounce() {
        let raw = "From: Budi <budi@example.test>\nTo: hero@desk.test\nSubject: SIGI tidak bisa diakses\n\n\
Halo, sejak pagi SIGI error 500. Mohon bantuannya.\n";
        assert_eq!(detect_raw(raw), None);
        // A person forwarding a bounce to the desk asks for help: not itself a bounce.
        let fwd = "From: Budi <budi@example.test>\nTo: hero@desk.test\nSubject: Fwd: Undeliverable: laporan\n\n\
Kenapa email saya tidak terkirim?\n\n-----Original Message-----\nFrom: postmaster@example.org\n\
Delivery has failed to these recipients or groups:\n\nx@example.org\n";
        assert_eq!(detect_raw(fwd), None);
        // A machine that is not a delivery system, talking about delivery.
        let shop = "From: no-reply@shop.example\nTo: hero@desk.test\nSubject: Your order\n\n\
Your parcel could not be delivered today; we will retry tomorrow.\n";
        assert_eq!(detect_raw(shop), None);
    }

    #[test]
    fn dsn_recipients_without_blank_lines_between_them() {
        // AOL writes all recipient blocks without the blank line RFC 3464 asks for.
        let raw = "From: MAILER-DAEMON@aol.example\nTo: hero@desk.test\nSubject: Undelivered Mail Returned to Sender\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n\
Your message could not be delivered.\n\n--b\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; omr.aol.example\nArrival-Date: Fri, 21 Nov 2014 17:24:04 -0500\n\
Final-Recipient: rfc822; Full@example.jp\nOriginal-Recipient: rfc822;full@example.jp\nAction: failed\nStatus: 5.2.2\n\
Diagnostic-Code: smtp; 550 5.2.2 <full@example.jp>... Mailbox Full\n\
Final-Recipient: rfc822; gone@example.jp\nOriginal-Recipient: rfc822;gone@example.jp\nAction: failed\nStatus: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.jp>... User Unknown\n\n--b--\n";
        let b = detect_raw(raw).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["full@example.jp", "gone@example.jp"]);
        assert_eq!(b.status.as_deref(), Some("5.2.2"));
        assert_eq!(b.diagnostic.as_deref(), Some("550 5.2.2 <full@example.jp>... Mailbox Full"));
        assert!(b.hard);
    }

    #[test]
    fn gmail_text_bounce_from_the_null_sender() {
        let raw = "Return-Path: <>\nFrom: <>\nTo: hero@desk.test\nSubject: Delivery Status Notification (Failure)\n\n\
Delivery to the following recipient failed permanently:\n\n     nobody@example.jp\n\n\
Technical details of permanent failure:\nGoogle tried to deliver your message, but it was rejected by the server.\n\n\
The error that the other server returned was:\n550 5.1.1 <nobody@example.jp>... User Unknown\n\n\
----- Original message -----\n\nMessage-Id: <ack-5@desk.test>\nFrom: hero@desk.test\nTo: nobody@example.jp\n\nhi\n";
        let b = detect_raw(raw).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["nobody@example.jp"]);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(b.diagnostic.as_deref(), Some("550 5.1.1 <nobody@example.jp>... User Unknown"));
        assert!(b.hard && !b.delayed);
        assert_eq!(b.original_message_ids, vec!["ack-5@desk.test"]);
    }

    #[test]
    fn amazon_ses_notifications() {
        let bounce = "From: no-reply@sns.amazonaws.example\nTo: hero@desk.test\nSubject: AWS Notification Message\n\n\
{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bouncedRecipients\":[{\"emailAddress\":\"Gone@Example.org\",\
\"action\":\"failed\",\"status\":\"5.1.1\",\"diagnosticCode\":\"smtp; 550 5.1.1 user unknown\"}]},\"mail\":{\"messageId\":\"x\"}}\n";
        let b = detect_raw(bounce).expect("a bounce");
        assert_eq!(b.failed_recipients, vec!["gone@example.org"]);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert!(b.hard);
        let complaint = "From: no-reply@sns.amazonaws.example\nTo: hero@desk.test\nSubject: AWS Notification Message\n\n\
{\"notificationType\":\"Complaint\",\"complaint\":{\"complainedRecipients\":[{\"emailAddress\":\"x@example.org\"}]}}\n";
        assert_eq!(detect_raw(complaint), None);
    }

    /// The header regexes are tried only on headers that hold one of their words: every ASCII
    /// text they match holds one, and an ordinary request's headers hold none.
    #[test]
    fn header_regexes_are_tried_only_where_their_words_are() {
        crate::mail::assert_needles_cover(SUBJECT_RE.as_str(), &SUBJECT_WORDS);
        crate::mail::assert_needles_cover(MACHINE_NAME_RE.as_str(), &MACHINE_NAME_WORDS);
        crate::mail::assert_needles_cover(NO_REPLY_RE.as_str(), &NO_REPLY_WORDS);
        assert!(!SUBJECT_WORDS.holds("Tidak bisa login aplikasi SIMPEG (7)"));
        assert!(!SUBJECT_WORDS.holds("SAKTI error saat login"));
        assert!(!SUBJECT_WORDS.holds("Error message when I log in"));
        assert!(!MACHINE_NAME_WORDS.holds("pegawai budi"));
        // Unicode case folding: a long s is an `s`, so "poſtmaſter" names a delivery system.
        assert!(MACHINE_NAME_RE.is_match("poſtmaſter") && MACHINE_NAME_WORDS.holds("poſtmaſter"));
        let raw = "From: =?utf-8?q?Mail_Delivery_Sy=C5=BFtem?= <x@mx.example.test>\nSubject: Undelivered Mail\n\n\
This is the mail system. I'm sorry to have to inform you that your message could not be delivered.\n";
        assert!(detect_raw(raw).is_some());
    }

    #[test]
    fn mailer_daemon_without_a_report_is_not_parsed_as_one() {
        assert_eq!(detect_raw("From: MAILER-DAEMON@mx.example.test\nSubject: x\n\nbody\n"), None);
    }

    #[test]
    fn status_is_not_taken_from_addresses_or_versions() {
        assert_eq!(find_status("from 192.0.2.135 (Postfix 2.1.5)"), None);
        assert_eq!(find_status("550 5.1.1 <a@b.example>"), Some("5.1.1".into()));
        assert_eq!(find_status("(#5.5.0)."), Some("5.5.0".into()));
        assert_eq!(find_status("4.4.7"), Some("4.4.7".into()));
    }

    #[test]
    fn bounded_on_huge_and_hostile_input() {
        let mut raw = String::from("From: MAILER-DAEMON@mx.example.test\nSubject: Undelivered Mail\n\n");
        for i in 0..100_000 {
            raw.push_str(&format!("<user{i}@example.org>: 550 5.1.1 unknown\n"));
        }
        let b = detect_raw(&raw).expect("a bounce");
        assert_eq!(b.failed_recipients.len(), MAX_FAILED_RECIPIENTS);
        assert!(b.diagnostic.as_ref().unwrap().chars().count() <= MAX_DIAGNOSTIC_CHARS);
        let junk = "From: MAILER-DAEMON@x\nContent-Type: message/delivery-status\n\nFinal-Recipient: ;\nAction:\nStatus: 9\n\u{0}\u{ff}";
        let _ = detect_raw(junk);
    }
}
