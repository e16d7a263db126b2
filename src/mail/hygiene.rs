//! Hygiene for public addresses: which mail is recorded without an acknowledgement, and which is
//! quarantined, before anything answers it. Pure: decides from the parsed mail, the desk's policy
//! and the inbox's cut-off (`now` is not needed: the cut-off is a fixed instant).
//!
//! | the mail | what happens |
//! |---|---|
//! | arrived before the inbox's `since` (the first connection finds years of old mail in the folder) | ticket, no acknowledgement |
//! | marked as spam by the receiving server (`X-Spam-Flag: YES`, `X-Spam-Status: Yes`, `X-Spam: Yes`, or a score in `X-Spam-Score` / `X-Spam-Status` / `X-Rspamd-Score` over the desk's `spam_score_limit`) | the desk's `spam` action: `no-acknowledgement` (default: ticket, no acknowledgement) or `quarantine` |
//! | failed DMARC (`dmarc=fail` in an `Authentication-Results` header) | the desk's `dmarc_fail` action: `no-acknowledgement` (default) or `quarantine` |
//!
//! A sender who adds such headers to their own mail only loses their own acknowledgement; the
//! headers cannot make a forged mail look better, only worse.

use serde::Deserialize;

use crate::mail::parse::ParsedMail;

/// What to do with mail that looks like spam or failed DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Open the ticket (or append to it) as usual but send no acknowledgement.
    #[default]
    NoAcknowledgement,
    /// Keep the bytes in the quarantine (`loket quarantine show|release|drop ID`).
    Quarantine,
}

/// `[desk.hygiene]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A spam score above this counts as spam even without the server's spam flag.
    #[serde(default)]
    pub spam_score_limit: Option<f64>,
    /// What happens to spam: `no-acknowledgement` (default) or `quarantine`.
    #[serde(default)]
    pub spam: Action,
    /// What happens to mail that failed DMARC: `no-acknowledgement` (default) or `quarantine`.
    #[serde(default)]
    pub dmarc_fail: Action,
    /// The authserv-id the desk's receiving server writes in its `Authentication-Results`
    /// (e.g. `mx.google.com`, or the host name OpenDMARC/Rspamd use). Only that server's verdicts
    /// are believed, and only they let an agent's new mail open a ticket for someone else. The
    /// server must remove headers that claim its id from arriving mail (RFC 8601 §5), as Gmail,
    /// OpenDMARC and Rspamd do.
    #[serde(default)]
    pub authserv_id: Option<String>,
}

/// The verdict on one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Pass,
    /// Recorded as usual, without an acknowledgement; the reason is recorded.
    NoAcknowledgement(String),
    /// Quarantined with the reason.
    Quarantine(String),
}

impl Screen {
    /// Whether an acknowledgement may go out (the loop guard decides the rest).
    pub fn may_acknowledge(&self) -> bool {
        *self == Screen::Pass
    }
}

/// When the mail reached the receiving server: the date of the topmost `Received` header (the
/// one the desk's own server added), else the `Date` header.
pub fn arrived_ms(mail: &ParsedMail) -> Option<i64> {
    mail.auto.received_ms.or(mail.date_ms)
}

/// An inbox's cut-off date as an instant: midnight at its start in the desk's time zone (ms).
pub fn since_ms(since: chrono::NaiveDate, tz: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    let midnight = since.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.timestamp_millis(),
        None => midnight.and_utc().timestamp_millis(),
    }
}

/// The spam score the receiving server wrote, if any.
pub fn spam_score(mail: &ParsedMail) -> Option<f64> {
    mail.auto.spam_score.as_deref().and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite())
}

/// The verdict for `mail` under `policy`, with the inbox's cut-off `since_ms` (ms; mail that
/// arrived before it is old mail found in the folder). A quarantine outranks the rest.
pub fn screen(mail: &ParsedMail, policy: &Policy, since_ms: Option<i64>) -> Screen {
    let mut reasons: Vec<(Action, String)> = Vec::new();
    let score = spam_score(mail);
    let over = matches!((score, policy.spam_score_limit), (Some(s), Some(l)) if s > l);
    if mail.auto.spam_flag || over {
        let why = match score {
            Some(s) if !mail.auto.spam_flag => {
                format!("spam: score {s} over the desk's limit {}", policy.spam_score_limit.unwrap_or(0.0))
            }
            _ => "spam: marked by the receiving server".to_string(),
        };
        reasons.push((policy.spam, why));
    }
    if mail.auto.dmarc_fail {
        reasons.push((policy.dmarc_fail, "DMARC failed (Authentication-Results)".to_string()));
    }
    if let (Some(since), Some(at)) = (since_ms, arrived_ms(mail))
        && at < since
    {
        reasons.push((Action::NoAcknowledgement, "arrived before the inbox's cut-off (`since`)".to_string()));
    }
    if let Some((_, why)) = reasons.iter().find(|(a, _)| *a == Action::Quarantine) {
        return Screen::Quarantine(why.clone());
    }
    match reasons.into_iter().next() {
        Some((_, why)) => Screen::NoAcknowledgement(why),
        None => Screen::Pass,
    }
}

/// Whether the receiving server `authserv_id` found mail from `domain` authentic: its
/// `Authentication-Results` header says `dmarc=pass` with `header.from=DOMAIN`, or `dkim=pass`
/// with `header.d=DOMAIN` (or `header.i=…@DOMAIN`). Only the topmost header naming that server
/// is read — the one it added on arrival; a sender's forgery of it lies below — and headers that
/// name another server are not read at all: anyone can write one.
pub fn authenticated(results: &[String], authserv_id: &str, domain: &str) -> bool {
    let ours = results.iter().map(|h| without_comments(h)).find_map(|header| {
        let value = match header.split_once(':') {
            Some((name, rest)) if name.trim().eq_ignore_ascii_case("authentication-results") => rest.to_string(),
            _ => header.clone(),
        };
        let (id, rest) = value.split_once(';').unwrap_or((value.as_str(), ""));
        let id = id.split_whitespace().next().unwrap_or("");
        id.eq_ignore_ascii_case(authserv_id).then(|| rest.to_string())
    });
    ours.is_some_and(|results| results.split(';').any(|result| passes_for(result, domain)))
}

/// One `method=result property=value …` of an `Authentication-Results` header: a DMARC pass for
/// the From domain, or a DKIM pass signed by it.
fn passes_for(result: &str, domain: &str) -> bool {
    let mut words = result.split_whitespace();
    let Some((method, verdict)) = words.next().and_then(|w| w.split_once('=')) else { return false };
    if !verdict.eq_ignore_ascii_case("pass") {
        return false;
    }
    let same = |d: &str| d.trim_matches('"').trim_start_matches('@').eq_ignore_ascii_case(domain);
    words.filter_map(|w| w.split_once('=')).any(|(property, value)| {
        match (method.to_ascii_lowercase().as_str(), property.to_ascii_lowercase().as_str()) {
            ("dmarc", "header.from") | ("dkim", "header.d") => same(value),
            ("dkim", "header.i") => value.rsplit_once('@').is_some_and(|(_, d)| same(d)),
            _ => false,
        }
    })
}

/// The header with its (non-nested) comments removed and folding undone.
fn without_comments(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut depth = 0usize;
    for c in header.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '\r' | '\n' | '\t' if depth == 0 => out.push(' '),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

    fn mail(headers: &str) -> ParsedMail {
        let raw = format!(
            "From: budi@example.test\r\nSubject: x\r\nDate: Mon, 5 Jan 2026 09:00:00 +0700\r\n{headers}\r\nbody\r\n"
        );
        parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn only_the_desks_own_server_vouches_for_a_domain() {
        let ar = |v: &str| vec![v.to_string()];
        let ours = "mx.desk.test";
        // Gmail's shape, folded, with comments.
        let gmail = "mx.desk.test;\r\n\tdkim=pass header.i=@kemenkeu.go.id header.s=s1 header.b=abc;\r\n\
                     \tspf=pass (domain of agus@kemenkeu.go.id designates 1.2.3.4) smtp.mailfrom=agus@kemenkeu.go.id;\r\n\
                     \tdmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=kemenkeu.go.id";
        assert!(authenticated(&ar(gmail), ours, "kemenkeu.go.id"));
        assert!(authenticated(&ar(gmail), "MX.DESK.TEST", "Kemenkeu.go.id"), "ids and domains ignore case");
        assert!(!authenticated(&ar(gmail), ours, "other.go.id"), "a pass for another domain");
        assert!(!authenticated(&ar(gmail), "mx.elsewhere.test", "kemenkeu.go.id"), "another server's word");
        // DKIM alone, by d=.
        assert!(authenticated(&ar("mx.desk.test 1; dkim=pass header.d=kemenkeu.go.id"), ours, "kemenkeu.go.id"));
        // The header's name may be part of the raw value.
        assert!(authenticated(
            &ar("Authentication-Results: mx.desk.test; dmarc=pass header.from=a.test"),
            ours,
            "a.test"
        ));
        // Failures, and passes hidden in comments, do not vouch.
        assert!(!authenticated(&ar("mx.desk.test; dmarc=fail header.from=a.test; dkim=none"), ours, "a.test"));
        assert!(
            !authenticated(&ar("mx.desk.test; spf=pass smtp.mailfrom=a.test"), ours, "a.test"),
            "SPF alone is not the From"
        );
        assert!(!authenticated(
            &ar("mx.desk.test; dkim=fail (dkim=pass header.d=a.test) header.d=a.test"),
            ours,
            "a.test"
        ));
        // The authserv-id is the first word, not any word.
        assert!(!authenticated(&ar("evil.test mx.desk.test; dmarc=pass header.from=a.test"), ours, "a.test"));
        assert!(!authenticated(&[], ours, "a.test"));
        // A forged pass below the server's own verdict is not read: the topmost header counts.
        let forged = vec![
            "mx.desk.test; dkim=none; dmarc=fail header.from=a.test".to_string(),
            "mx.desk.test; dmarc=pass header.from=a.test".to_string(),
        ];
        assert!(!authenticated(&forged, ours, "a.test"));
        let other_first =
            vec!["mx.relay.test; dmarc=fail".to_string(), "mx.desk.test; dmarc=pass header.from=a.test".to_string()];
        assert!(authenticated(&other_first, ours, "a.test"), "another server's header above ours is passed over");
        // Parsed from a mail: kept topmost first, and read.
        let m = mail("Authentication-Results: mx.desk.test; dmarc=pass header.from=example.test\r\n");
        assert!(authenticated(&m.auto.authentication_results, ours, "example.test"));
    }

    #[test]
    fn people_pass() {
        assert_eq!(screen(&mail(""), &Policy::default(), None), Screen::Pass);
        let p = Policy { spam_score_limit: Some(5.0), ..Policy::default() };
        assert_eq!(screen(&mail("X-Spam-Score: 2.1\r\nX-Spam-Flag: NO\r\n"), &p, None), Screen::Pass);
        let ar = "Authentication-Results: mx.desk.test; dkim=pass; spf=pass; dmarc=pass header.from=example.test\r\n";
        assert_eq!(screen(&mail(ar), &p, None), Screen::Pass);
    }

    #[test]
    fn spam_and_dmarc_are_screened() {
        let p = Policy::default();
        assert!(
            matches!(screen(&mail("X-Spam-Flag: YES\r\n"), &p, None), Screen::NoAcknowledgement(r) if r.contains("spam"))
        );
        assert!(matches!(
            screen(&mail("X-Spam-Status: Yes, score=9.1 required=5.0\r\n"), &p, None),
            Screen::NoAcknowledgement(_)
        ));
        // A score alone counts only over the desk's limit.
        assert_eq!(screen(&mail("X-Spam-Score: 7.5\r\n"), &p, None), Screen::Pass);
        let limit = Policy { spam_score_limit: Some(6.0), spam: Action::Quarantine, ..Policy::default() };
        assert!(
            matches!(screen(&mail("X-Spam-Score: 7.5\r\n"), &limit, None), Screen::Quarantine(r) if r.contains("7.5"))
        );
        assert!(matches!(
            screen(&mail("X-Spam-Status: No, score=6.5 required=8.0\r\n"), &limit, None),
            Screen::Quarantine(_)
        ));
        let ar = "Authentication-Results: mx.desk.test;\r\n\tdkim=none; spf=softfail; dmarc=fail (p=reject) header.from=bank.test\r\n";
        assert!(matches!(screen(&mail(ar), &p, None), Screen::NoAcknowledgement(r) if r.contains("DMARC")));
        let q = Policy { dmarc_fail: Action::Quarantine, ..Policy::default() };
        assert!(matches!(screen(&mail(ar), &q, None), Screen::Quarantine(_)));
    }

    #[test]
    fn the_cut_off_is_midnight_in_the_desk_time_zone() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        // Jakarta is UTC+7: midnight there is 17:00 UTC the day before.
        assert_eq!(since_ms(d, chrono_tz::Asia::Jakarta), 1_767_225_600_000 - 7 * 3_600_000);
        assert_eq!(since_ms(d, chrono_tz::UTC), 1_767_225_600_000);
    }

    #[test]
    fn the_cut_off_reads_the_arrival() {
        let p = Policy::default();
        let since = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert!(
            matches!(screen(&mail(""), &p, Some(since + 86_400_000 * 10)), Screen::NoAcknowledgement(r) if r.contains("since"))
        );
        assert_eq!(screen(&mail(""), &p, Some(since)), Screen::Pass);
        // The topmost Received header (the desk's own server) wins over an old Date.
        let fresh = "Received: from mx by imap.desk.test; Tue, 10 Feb 2026 10:00:00 +0000\r\n";
        assert_eq!(screen(&mail(fresh), &p, Some(since + 86_400_000 * 10)), Screen::Pass);
    }
}
