//! Bounce recognition against real delivery reports: sisimai's set-of-emails (600+ bounces from
//! real MTAs, with go-sisimai's expectations in `expected.tsv`), the bounce fixtures of flanker,
//! ruby-mail, Discourse, Zammad and RT, and negatives (ordinary mail, feedback reports, read
//! receipts, auto-replies), all kept in `tests/corpus/`. Reads files only; needs no servers. These
//! are the behaviour checks and agreement ratios; `mail.rs` pins every message's decisions in a
//! golden file.

use loket::mail::loopguard::{self, MailKind};
use loket::mail::parse::{self, ParsedMail};
use std::collections::BTreeMap;

use crate::runner::corpus;

fn load(rel: &str) -> Result<ParsedMail, String> {
    let path = corpus().join(rel);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse::parse(&raw).map_err(|e| e.to_string())
}

fn kind(m: &ParsedMail) -> MailKind {
    loopguard::classify(m, &[])
}

fn describe(rel: &str, m: &Result<ParsedMail, String>) -> String {
    match m {
        Ok(m) => format!("{rel}: kind={} subject={:?} bounce={:?}", kind(m).as_str(), m.subject, m.bounce),
        Err(e) => format!("{rel}: parse error: {e}"),
    }
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 { 100.0 } else { n as f64 * 100.0 / d as f64 }
}

/// One row of `sisimai/expected.tsv`.
struct Row {
    index: usize,
    status: String,
    reason: String,
    hard: bool,
}

/// Expected rows per file (`bsd/…`), in file order.
fn sisimai_expected() -> BTreeMap<String, Vec<Row>> {
    let path = corpus().join("sisimai/expected.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let (file, index, reason, hard) = (col("file"), col("recipient_index"), col("reason"), col("hard_bounce"));
    let status = col("delivery_status");
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        out.entry(f[file].to_string()).or_default().push(Row {
            index: f[index].parse().expect("recipient_index"),
            status: f[status].to_string(),
            reason: f[reason].to_string(),
            hard: f[hard] == "true",
        });
    }
    out
}

#[test]
fn sisimai_bounces_are_recognised() {
    let expected = sisimai_expected();
    assert!(expected.len() > 580, "expected.tsv has only {} files", expected.len());

    let (mut bounces, mut recognised, mut detected) = (0, 0, 0);
    let (mut rcpt_total, mut rcpt_ok) = (0, 0);
    let (mut hard_total, mut hard_ok) = (0, 0);
    let (mut status_total, mut status_ok) = (0, 0);
    let mut with_ids = 0;
    let mut misses = Vec::new();
    let mut rcpt_misses = Vec::new();
    let mut hard_misses = Vec::new();
    let mut delay_notes = Vec::new();
    let mut not_bounces = Vec::new();
    for (rel, rows) in &expected {
        let path = format!("sisimai/{rel}");
        let m = load(&path);
        let reason = rows[0].reason.as_str();
        // Rows that are not bounces: feedback reports (ARF), vacation auto-replies and
        // successful-delivery notices. They must be recognised as machine mail, not as bounces.
        if matches!(reason, "feedback" | "vacation" | "delivered") {
            assert!(rows.iter().all(|r| r.reason == reason), "{rel}: mixed reasons");
            let k = m.as_ref().map(kind).unwrap_or(MailKind::Human);
            let ok = m.is_ok() && k != MailKind::Bounce && !k.may_auto_reply();
            not_bounces.push((ok, format!("{reason}: {}", describe(&path, &m))));
            continue;
        }
        bounces += 1;
        let Ok(mail) = m else {
            misses.push(describe(&path, &m));
            continue;
        };
        if kind(&mail) == MailKind::Bounce {
            recognised += 1;
        } else {
            misses.push(describe(&path, &Ok(mail.clone())));
        }
        let Some(b) = &mail.bounce else {
            if kind(&mail) == MailKind::Bounce {
                misses.push(format!("{path}: classified as bounce by its sender only; not parsed as one"));
            }
            continue;
        };
        detected += 1;
        if !b.original_message_ids.is_empty() {
            with_ids += 1;
        }
        // expected.tsv names no addresses, only how many recipients bounced: the report must
        // yield at least that many, and none of them may be the report's own addressee (the
        // original sender) unless the report itself names that address as the failed recipient
        // (a few samples bounce mail sent to oneself).
        rcpt_total += 1;
        let want = rows.iter().map(|r| r.index).max().unwrap_or(1);
        let own: Vec<&str> = mail.to.iter().map(|a| a.as_str()).collect();
        let raw = String::from_utf8_lossy(&std::fs::read(corpus().join(&path)).unwrap()).to_ascii_lowercase();
        let named = |r: &str| {
            [format!("; {r}"), format!(";{r}"), format!("<{r}>:"), format!("\n{r}:"), format!("recipients: {r}")]
                .iter()
                .any(|p| raw.contains(p.as_str()))
        };
        if b.failed_recipients.len() >= want
            && b.failed_recipients.iter().all(|r| !own.contains(&r.as_str()) || named(r))
        {
            rcpt_ok += 1;
        } else {
            rcpt_misses.push(format!("{path}: want {want}, got {:?} (report To {own:?})", b.failed_recipients));
        }
        // Status of the first recipient, where sisimai's is a real RFC 3463 code (not one of its
        // own x.0.9xx codes).
        let first = &rows[0].status;
        if !first.is_empty() && !first.split('.').nth(2).is_some_and(|d| d.len() == 3 && d.starts_with('9')) {
            status_total += 1;
            if b.status.as_deref() == Some(first.as_str()) {
                status_ok += 1;
            }
        }
        if rows.iter().any(|r| r.hard) {
            hard_total += 1;
            if b.hard {
                hard_ok += 1;
            } else {
                hard_misses.push(format!("{path}: status {:?} delayed {} {:?}", b.status, b.delayed, b.diagnostic));
            }
        }
        if b.delayed && rows.iter().any(|r| r.hard) {
            delay_notes
                .push(format!("{path}: sisimai's reason says hard, the report says delayed: {:?}", b.diagnostic));
        }
    }
    let parsed_ok = detected;
    eprintln!(
        "sisimai: {recognised}/{bounces} bounces classified MailKind::Bounce ({:.1} %), {parsed_ok}/{bounces} parsed by bounce::detect",
        pct(recognised, bounces)
    );
    for m in &misses {
        eprintln!("  miss: {m}");
    }
    eprintln!(
        "sisimai: failed recipients found {rcpt_ok}/{rcpt_total} ({:.1} %) (expected.tsv gives the number of recipients, not the addresses)",
        pct(rcpt_ok, rcpt_total)
    );
    for m in &rcpt_misses {
        eprintln!("  recipient miss: {m}");
    }
    eprintln!(
        "sisimai: status equal to sisimai's (first recipient, RFC 3463 codes only): {status_ok}/{status_total} ({:.1} %)",
        pct(status_ok, status_total)
    );
    eprintln!("sisimai: Message-ID of the returned message found in {with_ids}/{detected} bounces");
    eprintln!(
        "sisimai: hard (permanent) where sisimai says hard: {hard_ok}/{hard_total} ({:.1} %)",
        pct(hard_ok, hard_total)
    );
    for m in hard_misses.iter().chain(&delay_notes) {
        eprintln!("  not hard: {m}");
    }
    let nb_ok = not_bounces.iter().filter(|(ok, _)| *ok).count();
    eprintln!(
        "sisimai: feedback/vacation/delivered rows handled as machine mail, not bounces: {nb_ok}/{}",
        not_bounces.len()
    );
    for (ok, d) in &not_bounces {
        if !ok {
            eprintln!("  wrong: {d}");
        }
    }

    assert!(pct(recognised, bounces) >= 98.0, "bounce recognition below 98 %: {recognised}/{bounces}");
    assert!(pct(rcpt_ok, rcpt_total) >= 90.0, "recipient extraction below 90 %: {rcpt_ok}/{rcpt_total}");
    assert_eq!(nb_ok, not_bounces.len(), "feedback reports, vacation replies and delivery notices are not bounces");
    assert!(pct(hard_ok, hard_total) >= 95.0, "hard bounces not reported as permanent: {hard_ok}/{hard_total}");
}

#[test]
fn sisimai_files_without_expectations() {
    // 21 files have no row in expected.tsv: complaint reports (arf-22/23/24: not bounces; they
    // are Hotmail complaints without ARF structure, so nothing marks them as machine mail) and
    // real bounces.
    let expected = sisimai_expected();
    let mut files: Vec<String> = std::fs::read_dir(corpus().join("sisimai/bsd"))
        .expect("sisimai/bsd")
        .map(|e| format!("bsd/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".eml") && !expected.contains_key(f))
        .collect();
    files.sort();
    let (mut total, mut ok) = (0, 0);
    for rel in &files {
        let path = format!("sisimai/{rel}");
        let m = load(&path);
        let k = m.as_ref().map(kind).ok();
        let good = if rel.starts_with("bsd/arf-") {
            k.is_some_and(|k| k != MailKind::Bounce)
        } else {
            k == Some(MailKind::Bounce)
        };
        total += 1;
        if good {
            ok += 1;
        } else {
            eprintln!("  unexpected: {}", describe(&path, &m));
        }
        if rel.starts_with("bsd/arf-") {
            eprintln!("  {}", describe(&path, &m));
        }
    }
    eprintln!(
        "sisimai files without expectations: {ok}/{total} as their name says (arf-* not bounces, others bounces)"
    );
    assert!(total >= 20);
    assert_eq!(ok, total);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A permanent failure (status 5.x.x).
    Hard,
    /// A final failure for a temporary reason (status 4.x.x, the MTA gave up).
    Soft,
    /// A delay notice: still being retried.
    Delayed,
}

#[test]
fn peer_bounce_fixtures_are_recognised() {
    use Expect::*;
    let sets: &[(&str, &[(&str, Expect)])] = &[
        (
            "flanker/bounce",
            &[
                ("flanker/bounce/broken-mime.eml", Hard),
                ("flanker/bounce/delayed-broken.eml", Soft),
                ("flanker/bounce/delayed.eml", Soft),
                ("flanker/bounce/gmail-invalid-address.eml", Hard),
                ("flanker/bounce/gmail-no-dns.eml", Hard),
                ("flanker/bounce/mailbox-full.eml", Hard),
                ("flanker/bounce/no-mx.eml", Delayed),
                ("flanker/bounce/office365.eml", Hard),
                ("flanker/bounce/zed.eml", Hard),
            ],
        ),
        (
            "ruby-mail multipart_report_emails",
            &[
                ("ruby-mail/multipart_report_emails/multi_address_bounce1.eml", Hard),
                ("ruby-mail/multipart_report_emails/multi_address_bounce2.eml", Hard),
                ("ruby-mail/multipart_report_emails/multipart_report_multiple_status.eml", Hard),
                ("ruby-mail/multipart_report_emails/report_422.eml", Delayed),
                ("ruby-mail/multipart_report_emails/report_530.eml", Hard),
            ],
        ),
        (
            "discourse bounces",
            &[
                ("discourse/bounced_email.eml", Hard),
                ("discourse/bounced_email_multiple_status_codes.eml", Hard),
                ("discourse/hard_bounce_via_verp.eml", Hard),
            ],
        ),
        (
            "zammad bounces",
            &[
                ("zammad/mail/mail018.box", Hard),
                ("zammad/mail/mail033-undelivered-mail-returned-to-sender.box", Hard),
                ("zammad/mail/mail052.box", Hard),
                ("zammad/mail/mail053.box", Soft),
                ("zammad/mail/mail055.box", Hard),
                ("zammad/mail/mail063.box", Hard),
                ("zammad/mail/mail078.box", Delayed),
                ("zammad/mail/mail092.box", Hard),
            ],
        ),
        ("rt multipart-report", &[("rt/emails/multipart-report", Hard)]),
    ];
    let mut failures = Vec::new();
    for (set, files) in sets {
        let mut ok = 0;
        for (rel, want) in *files {
            let m = load(rel);
            let good = match &m {
                Ok(mail) => {
                    kind(mail) == MailKind::Bounce
                        && mail.bounce.as_ref().is_some_and(|b| match want {
                            Hard => b.hard && !b.delayed,
                            Soft => !b.hard && !b.delayed,
                            Delayed => b.delayed && !b.hard,
                        })
                }
                Err(_) => false,
            };
            if good {
                ok += 1;
                if m.as_ref().is_ok_and(|mail| mail.bounce.as_ref().is_some_and(|b| b.failed_recipients.is_empty())) {
                    eprintln!("  {set}: no failed recipient named: {}", describe(rel, &m));
                }
            } else {
                eprintln!("  {set}: expected {want:?}: {}", describe(rel, &m));
                failures.push(rel.to_string());
            }
        }
        eprintln!("{set}: {ok}/{} recognised as expected", files.len());
    }
    assert!(failures.is_empty(), "bounce fixtures not recognised as expected: {failures:#?}");
}

#[test]
fn ordinary_mail_is_not_a_bounce() {
    let mut files = vec![
        "sisimai/not/is-not-bounce-01.eml".to_string(),
        "sisimai/not/is-not-bounce-02.eml".to_string(),
        "flanker/signed.eml".to_string(),
        "flanker/multipart.eml".to_string(),
        "flanker/outlook-express.eml".to_string(),
        "discourse/text_reply.eml".to_string(),
        "discourse/forwarded_email_1.eml".to_string(),
        "rt/emails/nested-rfc-822".to_string(),
    ];
    // Ordinary requests and replies from Zammad's corpus.
    for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 22, 24, 26, 28, 38] {
        files.push(format!("zammad/mail/mail{n:03}.box"));
    }
    let mut wrong = Vec::new();
    for rel in &files {
        let m = load(rel);
        match &m {
            Ok(mail) if kind(mail) != MailKind::Bounce && mail.bounce.is_none() => {}
            _ => wrong.push(describe(rel, &m)),
        }
    }
    eprintln!("ordinary mail: {}/{} not bounces", files.len() - wrong.len(), files.len());
    assert!(wrong.is_empty(), "ordinary mail taken for bounces: {wrong:#?}");
}

#[test]
fn reports_that_are_not_bounces_are_still_machine_mail() {
    for rel in ["flanker/complaints/aol.eml", "flanker/complaints/yahoo.eml", "flanker/disposition-notification.eml"] {
        let m = load(rel);
        let k = m.as_ref().map(kind);
        assert!(
            m.as_ref().is_ok_and(|mail| mail.bounce.is_none())
                && k.is_ok_and(|k| k != MailKind::Bounce && !k.may_auto_reply()),
            "{}",
            describe(rel, &m)
        );
    }
}

#[test]
fn auto_replies_are_never_answered() {
    let mut files: Vec<String> = (1..=5).map(|n| format!("sisimai/bsd/rfc3834-{n:02}.eml")).collect();
    for e in std::fs::read_dir(corpus().join("discourse")).expect("discourse") {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with("auto_") && name.ends_with(".eml") {
            files.push(format!("discourse/{name}"));
        }
    }
    files.push("zammad/mail/mail089.box".into());
    files.push("zammad/mail/mail090.box".into());
    files.sort();
    assert!(files.len() >= 13, "{files:?}");
    let mut wrong = Vec::new();
    for rel in &files {
        let m = load(rel);
        let k = m.as_ref().map(kind);
        eprintln!("  {rel}: {}", k.map(|k| k.as_str()).unwrap_or("parse error"));
        if !k.is_ok_and(|k| !k.may_auto_reply() && k != MailKind::Bounce) {
            wrong.push(describe(rel, &m));
        }
    }
    // Discourse's negative: X-Auto-Response-Suppress alone does not make a person's mail automatic.
    let quirk = "discourse/quirks_exchange_xars.eml";
    eprintln!("  {quirk} (negative in Discourse): {}", describe(quirk, &load(quirk)));
    eprintln!("auto-replies: {}/{} never answered", files.len() - wrong.len(), files.len());
    assert!(wrong.is_empty(), "auto-replies that Loket would answer: {wrong:#?}");
}
