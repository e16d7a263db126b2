//! Messy real-world mail as golden files. For every raw message of `tests/corpus/` that a test
//! uses, `tests/golden/mail/<source>/<path>.json` records what Loket's pure functions decide: the
//! parse summary (`mail::parse`), the loop guard's verdict (`mail::loopguard`), the bounce
//! verdict (`mail::bounce`, through the parse) and the trimmed reply text (`mail::trim`);
//! and, where the source project states one, the peer's expectation with `agrees` telling whether
//! Loket's decision matches it. The files pin Loket's current output, agreeing or not; the
//! agreement ratio is printed. No input may make any of these functions panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use loket::mail::bounce::Bounce;
use loket::mail::loopguard::{self, MailKind};
use loket::mail::parse::{self, ParsedMail};
use loket::mail::trim::trim_reply;
use serde::Serialize;
use serde_json::{Value, json};

use crate::runner::{Golden, corpus, cut, files_under, normalise, read};

/// Characters of trimmed text kept in a golden file.
const TRIMMED_CHARS: usize = 600;

#[derive(Serialize)]
pub struct ParseSummary {
    message_id: Option<String>,
    in_reply_to: Vec<String>,
    references: usize,
    from: Option<String>,
    reply_to: Option<String>,
    to: usize,
    cc: usize,
    subject: String,
    date_ms: Option<i64>,
    text_chars: usize,
    text_first_line: String,
    attachments: Vec<AttachmentSummary>,
    /// The automatic-mail headers that are set.
    auto: Vec<String>,
    reported_message_ids: usize,
}

#[derive(Serialize)]
struct AttachmentSummary {
    name: Option<String>,
    content_type: String,
    size: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    from_tnef: bool,
}

#[derive(Serialize)]
pub struct TrimSummary {
    chars: usize,
    elided_chars: usize,
    text: String,
}

/// A peer project's expectation for a message, as its source folder records it.
#[derive(Serialize)]
pub struct Peer {
    pub source: &'static str,
    pub expected: Value,
}

/// One golden file.
#[derive(Serialize)]
pub struct MailCase {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parse_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parse: Option<ParseSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loop_guard: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounce: Option<Option<Bounce>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trimmed: Option<TrimSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Peer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agrees: Option<bool>,
}

/// What Loket decided for one message, kept for the peers' comparisons.
pub struct Decided {
    pub mail: Option<ParsedMail>,
    pub kind: Option<MailKind>,
    pub trimmed: Option<String>,
}

fn summary(m: &ParsedMail) -> ParseSummary {
    let mailbox = |b: &parse::Mailbox| match &b.name {
        Some(n) => format!("{n} <{}>", b.address.as_str()),
        None => b.address.as_str().to_string(),
    };
    let a = &m.auto;
    let mut auto = Vec::new();
    let mut put = |name: &str, v: Option<&str>| {
        if let Some(v) = v {
            auto.push(if v.is_empty() { name.to_string() } else { format!("{name}={}", cut(v, 80)) });
        }
    };
    put("auto-submitted", a.auto_submitted.as_deref());
    put("precedence", a.precedence.as_deref());
    put("list-id", a.list_id.then_some(""));
    put("list-unsubscribe", a.list_unsubscribe.then_some(""));
    put("x-auto-response-suppress", a.x_auto_response_suppress.as_deref());
    put("x-autoreply", a.x_autoreply.then_some(""));
    put("x-loop", a.x_loop.as_deref());
    put("loket-marker", a.loket_marker.then_some(""));
    put("null-return-path", a.null_return_path.then_some(""));
    put("delivery-status", a.delivery_status.then_some(""));
    put("report-type", a.report_type.as_deref());
    put("auto-reply-subject", a.auto_reply_subject.then_some(""));
    put("auto-generated-subject", a.auto_generated_subject.then_some(""));
    ParseSummary {
        message_id: m.message_id.as_deref().map(|s| cut(s, 200)),
        in_reply_to: m.in_reply_to.iter().take(5).map(|s| cut(s, 200)).collect(),
        references: m.references.len(),
        from: m.from.as_ref().map(mailbox),
        reply_to: m.reply_to.as_ref().map(mailbox),
        to: m.to.len(),
        cc: m.cc.len(),
        subject: cut(&m.subject, 200),
        date_ms: m.date_ms,
        text_chars: m.text.chars().count(),
        text_first_line: cut(m.text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(""), 120),
        attachments: m
            .attachments
            .iter()
            .map(|x| AttachmentSummary {
                name: x.filename.as_deref().map(|n| cut(n, 120)),
                content_type: x.content_type.clone(),
                size: x.size,
                from_tnef: x.from_tnef,
            })
            .collect(),
        auto,
        reported_message_ids: m.reported_message_ids.len(),
    }
}

/// Runs parse, loop guard, bounce and trim on `tests/corpus/<rel>`. Err names a panic.
pub fn decide(rel: &str) -> Result<(MailCase, Decided), String> {
    let raw = read(&corpus().join(rel));
    catch_unwind(AssertUnwindSafe(|| decide_bytes(rel, &raw))).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{rel}: panicked: {msg}")
    })
}

/// Parse, loop guard, bounce and trim of one raw message.
pub fn decide_bytes(rel: &str, raw: &[u8]) -> (MailCase, Decided) {
    match parse::parse(raw) {
        Err(e) => (
            MailCase {
                input: rel.to_string(),
                parse_error: Some(e.to_string()),
                parse: None,
                loop_guard: None,
                bounce: None,
                trimmed: None,
                peer: None,
                agrees: None,
            },
            Decided { mail: None, kind: None, trimmed: None },
        ),
        Ok(m) => {
            let kind = loopguard::classify(&m, &[]);
            let t = trim_reply(&m.text);
            let case = MailCase {
                input: rel.to_string(),
                parse_error: None,
                parse: Some(summary(&m)),
                loop_guard: Some(kind.as_str()),
                bounce: Some(m.bounce.clone()),
                trimmed: Some(TrimSummary {
                    chars: t.text.chars().count(),
                    elided_chars: t.elided.chars().count(),
                    text: cut(&t.text, TRIMMED_CHARS),
                }),
                peer: None,
                agrees: None,
            };
            (case, Decided { mail: Some(m), kind: Some(kind), trimmed: Some(t.text) })
        }
    }
}

/// `tests/golden/mail/<rel without its extension>.json`.
fn golden_path(rel: &str) -> PathBuf {
    let p = Path::new("mail").join(rel);
    match p.extension() {
        Some(e) if e == "eml" || e == "box" => p.with_extension("json"),
        _ => PathBuf::from(format!("{}.json", p.display())),
    }
}

/// Decides each message, attaches the peer's expectation (`peer(rel, &decided)` returns it and
/// whether Loket agrees), checks the golden files and returns (agreeing, with a peer, decided).
fn run_suite(
    name: &str,
    owned: &[&str],
    files: &[String],
    peer: impl Fn(&str, &Decided) -> Option<(Peer, bool)>,
) -> (usize, usize, Vec<Decided>) {
    let mut g = Golden::new(name, owned);
    let mut panics = Vec::new();
    let (mut agree, mut with_peer) = (0, 0);
    let mut decided = Vec::new();
    for rel in files {
        match decide(rel) {
            Err(p) => panics.push(p),
            Ok((mut case, d)) => {
                if let Some((p, ok)) = peer(rel, &d) {
                    with_peer += 1;
                    agree += usize::from(ok);
                    case.peer = Some(p);
                    case.agrees = Some(ok);
                }
                g.check(&golden_path(rel), &case);
                decided.push(d);
            }
        }
    }
    assert!(panics.is_empty(), "{name}: parse, loop guard, bounce or trim panicked:\n{}", panics.join("\n"));
    if with_peer > 0 {
        eprintln!(
            "{name}: Loket agrees with the peer's expectation on {agree}/{with_peer} ({:.1} %)",
            agree as f64 * 100.0 / with_peer as f64
        );
    }
    g.finish();
    (agree, with_peer, decided)
}

/// Raw messages under `tests/corpus/<dir>` (paths relative to `tests/corpus/`), without the
/// source's notes and expectation files.
fn messages_under(dir: &str) -> Vec<String> {
    let base = corpus();
    files_under(&base.join(dir))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let ext = p.extension().map(|e| e.to_string_lossy().to_string()).unwrap_or_default();
            let note = name == "SOURCE.md" || name == "COPYING" || name.ends_with("_reply_text");
            !note && !["json", "yml", "yaml", "md", "tsv"].contains(&ext.as_str())
        })
        .map(|p| p.strip_prefix(&base).unwrap_or(&p).to_string_lossy().to_string())
        .collect()
}

/// Rows of a peer's TSV by its `file` column (relative to the source folder), as JSON objects of
/// the named columns.
fn tsv(source: &str, name: &str, columns: &[&str]) -> std::collections::BTreeMap<String, Vec<Value>> {
    let text = String::from_utf8_lossy(&read(&corpus().join(source).join(name))).to_string();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let mut out = std::collections::BTreeMap::<String, Vec<Value>>::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |c: &str| header.iter().position(|h| *h == c).and_then(|i| f.get(i)).copied().unwrap_or("");
        let row: serde_json::Map<String, Value> =
            columns.iter().map(|c| (c.to_string(), Value::String(get(c).to_string()))).collect();
        out.entry(format!("{source}/{}", get("file"))).or_default().push(Value::Object(row));
    }
    out
}

/// The corpus panic test's messages (Zammad's parser fixtures and mail-parser's test messages):
/// nothing panics, each message's decisions are pinned, and most are mail a person wrote.
#[test]
fn corpus_messages_never_panic_and_match_their_golden_files() {
    let mut files = messages_under("zammad");
    files.extend(messages_under("mail-parser/eml"));
    assert!(files.len() >= 200, "corpus incomplete: {} messages", files.len());
    let (_, _, decided) = run_suite("corpus", &["mail/zammad", "mail/mail-parser"], &files, |_, _| None);
    let open = decided.iter().filter(|d| d.kind.is_some_and(|k| k.may_open_ticket())).count();
    eprintln!("corpus: {open}/{} messages may open a ticket", files.len());
    assert!(open > files.len() / 2, "most corpus mail should open tickets: {open}/{}", files.len());
}

/// sisimai's set-of-emails: every message pinned, with go-sisimai's expectation per recipient.
/// Loket agrees when it calls a bounce a bounce with at least as many failed recipients, the same
/// RFC 3463 status for the first recipient (where sisimai's is one), and hard where sisimai says
/// hard; and a feedback report, vacation reply or delivery notice machine mail that is no bounce.
#[test]
fn sisimai_messages_match_their_golden_files() {
    let expected = tsv("sisimai", "expected.tsv", &["recipient_index", "delivery_status", "reason", "hard_bounce"]);
    let mut files = messages_under("sisimai/bsd");
    files.extend(messages_under("sisimai/not"));
    assert!(files.len() >= 610, "{} sisimai messages", files.len());
    let (agree, with_peer, _) = run_suite("sisimai", &["mail/sisimai"], &files, |rel, d| {
        let rows = expected.get(rel)?;
        let field = |r: &Value, k: &str| r[k].as_str().unwrap_or("").to_string();
        let reason = field(&rows[0], "reason");
        let kind = d.kind?;
        let ok = if matches!(reason.as_str(), "feedback" | "vacation" | "delivered") {
            kind != MailKind::Bounce && !kind.may_auto_reply()
        } else {
            let b = d.mail.as_ref().and_then(|m| m.bounce.as_ref());
            let want: usize = rows.iter().filter_map(|r| field(r, "recipient_index").parse().ok()).max().unwrap_or(1);
            let status = field(&rows[0], "delivery_status");
            let real_code =
                !status.is_empty() && !status.split('.').nth(2).is_some_and(|x| x.len() == 3 && x.starts_with('9'));
            let hard = rows.iter().any(|r| field(r, "hard_bounce") == "true");
            kind == MailKind::Bounce
                && b.is_some_and(|b| {
                    b.failed_recipients.len() >= want
                        && (!real_code || b.status.as_deref() == Some(status.as_str()))
                        && (!hard || b.hard)
                })
        };
        Some((Peer { source: "go-sisimai (sisimai/expected.tsv)", expected: Value::Array(rows.clone()) }, ok))
    });
    assert!(with_peer >= 580, "{with_peer} messages with an expectation");
    assert!(agree > 0);
}

fn kind_is(d: &Decided, k: MailKind) -> bool {
    d.kind == Some(k)
}

/// The bounce test's fixtures from flanker, ruby-mail, Discourse and RT, with the expectations
/// their projects state (flanker's bounce test, the mail gem's DSN spec, Discourse's receiver
/// spec).
#[test]
fn peer_fixtures_match_their_golden_files() {
    let flanker = tsv("flanker", "expected-bounce.tsv", &["is_bounce", "status"]);
    let ruby = tsv("ruby-mail", "expected-dsn.tsv", &["bounced?", "action", "final_recipient", "error_status"]);
    let discourse = tsv("discourse", "expected.tsv", &["expected_outcome", "expected_post_raw (\\n = newline)"]);
    let mut files = messages_under("flanker");
    files.extend(messages_under("ruby-mail"));
    files.extend(messages_under("discourse"));
    files.extend(messages_under("rt"));
    assert!(files.len() >= 40, "{} peer fixtures", files.len());
    let field = |r: &Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    let (agree, with_peer, _) = run_suite(
        "peer fixtures",
        &["mail/flanker", "mail/ruby-mail", "mail/discourse", "mail/rt"],
        &files,
        |rel, d| {
            let bounce = d.mail.as_ref().and_then(|m| m.bounce.as_ref());
            if let Some(r) = flanker.get(rel).and_then(|r| r.first()) {
                let want = field(r, "is_bounce") == "true";
                let status = field(r, "status");
                let ok = kind_is(d, MailKind::Bounce) == want
                    && (status.is_empty() || bounce.and_then(|b| b.status.as_deref()) == Some(status.as_str()));
                return Some((Peer { source: "flanker (flanker/expected-bounce.tsv)", expected: r.clone() }, ok));
            }
            if let Some(r) = ruby.get(rel).and_then(|r| r.first()) {
                let status = field(r, "error_status");
                let rcpt = field(r, "final_recipient");
                let rcpt = rcpt.rsplit(';').next().unwrap_or("").trim().to_ascii_lowercase();
                let ok = kind_is(d, MailKind::Bounce)
                    && bounce.is_some_and(|b| {
                        (field(r, "action") == "delayed") == b.delayed
                            && (field(r, "bounced?") != "true" || !b.delayed)
                            && (status.is_empty() || b.status.as_deref() == Some(status.as_str()))
                            && (rcpt.is_empty() || b.failed_recipients.contains(&rcpt))
                    });
                return Some((Peer { source: "mail gem (ruby-mail/expected-dsn.tsv)", expected: r.clone() }, ok));
            }
            let r = discourse.get(rel).and_then(|r| r.first())?;
            let outcome = field(r, "expected_outcome");
            let post = field(r, "expected_post_raw (\\n = newline)").replace("\\n", "\n");
            let post = post.split("  [with").next().unwrap_or("").to_string();
            let ok = if outcome.starts_with("(not transcribed") {
                return None;
            } else if outcome.contains("BouncedEmailError") {
                kind_is(d, MailKind::Bounce)
            } else if outcome.starts_with("NOT auto-generated") {
                kind_is(d, MailKind::Human)
            } else if outcome.contains("AutoGeneratedEmailError") || outcome.starts_with("auto-generated") {
                d.kind.is_some_and(|k| !k.may_auto_reply() && k != MailKind::Bounce)
            } else {
                kind_is(d, MailKind::Human) && d.trimmed.as_deref().map(normalise) == Some(normalise(&post))
            };
            let expected = json!({"outcome": outcome, "post_raw": post});
            Some((Peer { source: "Discourse receiver spec (discourse/expected.tsv)", expected }, ok))
        },
    );
    assert!(with_peer >= 15, "{with_peer} fixtures with an expectation");
    assert!(agree > 0);
}

/// talon's standard replies: the reply text talon extracts (`<client>_reply_text`, else "Hello")
/// next to Loket's trimmed text.
#[test]
fn talon_replies_match_their_golden_files() {
    let mut files = messages_under("talon/standard_replies");
    let replies = files.len();
    assert!(replies >= 12, "{replies} talon replies");
    files.extend(messages_under("talon").into_iter().filter(|f| !f.starts_with("talon/standard_replies/")));
    let (agree, with_peer, _) = run_suite("talon", &["mail/talon"], &files, |rel, d| {
        let stem = rel.strip_prefix("talon/standard_replies/").and(rel.strip_suffix(".eml"))?;
        let reply_text = corpus().join(format!("{stem}_reply_text"));
        let want = match std::fs::read(&reply_text) {
            Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
            Err(_) => "Hello".to_string(),
        };
        let ok = d.trimmed.as_deref().map(normalise) == Some(normalise(&want));
        Some((Peer { source: "talon (standard_replies, extract_from_plain)", expected: Value::String(want) }, ok))
    });
    assert_eq!(with_peer, replies);
    assert!(agree > 0);
}

/// The rest of the corpus: CPython's email test messages and Redmine's mail handler fixtures,
/// each pinned (their expectations live in the peers' test code; `mail_fixes` checks the cases
/// issue 16 names).
#[test]
fn cpython_and_redmine_messages_match_their_golden_files() {
    let mut files = messages_under("cpython-email");
    files.extend(messages_under("redmine"));
    assert!(files.len() >= 100, "{} messages", files.len());
    run_suite("cpython and redmine", &["mail/cpython-email", "mail/redmine"], &files, |_, _| None);
}

/// The messages issue 16 names ("What the real-world mail showed"), each read as a person would
/// read it; their golden files pin the rest.
#[test]
fn the_messages_issue_16_names_are_read_right() {
    let parsed = |rel: &str| {
        let (_, d) = decide(rel).unwrap_or_else(|p| panic!("{p}"));
        let kind = d.kind.unwrap_or_else(|| panic!("{rel}: does not parse"));
        (d.mail.expect("parsed"), kind)
    };
    // List servers are automatic: never acknowledged.
    for rel in ["sisimai/bsd/lhost-fml-02.eml", "sisimai/bsd/lhost-fml-03.eml", "cpython-email/msg_02.txt"] {
        assert_eq!(parsed(rel).1, MailKind::Bulk, "{rel}");
    }
    // X-Auto-Response-Suppress alone does not make a person's mail automatic; a postmaster
    // writing a mail of their own is a person.
    assert_eq!(parsed("discourse/quirks_exchange_xars.eml").1, MailKind::Human);
    let (m, kind) = parsed("flanker/long-links.eml");
    assert_eq!((kind, m.from.map(|f| f.address.to_string())), (MailKind::Human, Some("postmaster@example.com".into())));
    // Senders recovered: obsolete syntax, no angle brackets, an empty From with a Reply-To.
    for (rel, address, name) in [
        ("ruby-mail/rfc2822/example13.eml", "jdoe@machine.example", Some("John Doe")),
        ("zammad/mail/mail087.box", "test@example.com", Some("Test")),
        ("ruby-mail/plain_emails/mix_caps_content_type.eml", "bb@bug.com", Some("Big Bug")),
        ("zammad/mail/mail019.box", "vipyiming@126.com", Some("我")),
    ] {
        let from = parsed(rel).0.from.unwrap_or_else(|| panic!("{rel}: no sender"));
        assert_eq!((from.address.as_str(), from.name.as_deref()), (address, name), "{rel}");
    }
    // Raw 8-bit headers and file names, and encoded words under the wrong charset (the texts
    // Zammad's own parser expects for these messages).
    let (m, _) = parsed("zammad/mail/mail046.box");
    assert_eq!(m.subject, "转发：整体提升企业服务水平");
    let (m, _) = parsed("zammad/mail/mail093.box");
    assert_eq!((m.subject.as_str(), m.from.and_then(|f| f.name)), ("ツール", Some("ツール EXAMPLE".to_string())));
    let name = |rel: &str| parsed(rel).0.attachments.iter().filter_map(|a| a.filename.clone()).collect::<Vec<_>>();
    assert!(name("zammad/mail/mail015.box").contains(&"绩效管理,究竟谁错了.xls".to_string()));
    assert!(name("zammad/mail/mail057.box").contains(&"Hofjägeralle Wasserschaden.jpg".to_string()));
    // RFC 2231 continued file name, decoded whole.
    assert_eq!(
        name("redmine/thunderbird_with_attachment_iso-8859-1.eml"),
        vec![format!("{}.png", "ÄäÖöÜü".repeat(11))]
    );
    // Bodies declared us-ascii / iso-8859-1 that hold UTF-8.
    let (m, _) = parsed("ruby-mail/error_emails/content_transfer_encoding_plain.eml");
    assert!(m.text.contains("ìIGTSî") && !m.text.contains('Ã'), "{}", cut(&m.text, 300));
    let (m, _) = parsed("ruby-mail/error_emails/content_transfer_encoding_7-bit.eml");
    assert!(m.text.contains("DISCOVERÆ") && !m.text.contains('Ã'), "{}", cut(&m.text, 300));
}
