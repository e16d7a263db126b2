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
