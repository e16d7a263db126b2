//! Outbound webhooks, pure (issue #19): which ticket changes a desk's subscribers hear of, the
//! JSON body they receive, the signature over it and its verification, and when a failed
//! delivery is tried again or given up. No store, no network, no clock: `now` comes in.
//!
//! A delivery carries `Loket-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! and `Loket-Event-Id`; a receiver recomputes the HMAC over the raw body, compares in constant
//! time, rejects a timestamp outside its replay window and drops an event id it has seen
//! ([`verify`] is that procedure; README "Outbound webhooks" documents it).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::ticket::Ticket;

type HmacSha256 = Hmac<Sha256>;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Loket-Signature";
/// The header that carries the event's id (the same on every retry).
pub const EVENT_ID_HEADER: &str = "Loket-Event-Id";
/// The header that carries the event's type.
pub const EVENT_TYPE_HEADER: &str = "Loket-Event";
/// The replay window the README recommends to receivers: 5 minutes.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);
/// A subscription's default time for one POST.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// The longest time for one POST a subscription may set.
pub const MAX_TIMEOUT_SECS: u64 = 60;
/// A subscription's default time before an undeliverable event is given up: 3 days.
pub const DEFAULT_GIVE_UP_HOURS: u64 = 72;
/// The most of a receiver's answer that is read (for the error recorded on a failure).
pub const MAX_RESPONSE_BYTES: usize = 1024;

/// The closed set of events a subscription may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Created,
    Replied,
    StatusChanged,
    SlaWarning,
    SlaBreach,
    Rated,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::Created,
        EventType::Replied,
        EventType::StatusChanged,
        EventType::SlaWarning,
        EventType::SlaBreach,
        EventType::Rated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "ticket.created",
            EventType::Replied => "ticket.replied",
            EventType::StatusChanged => "ticket.status_changed",
            EventType::SlaWarning => "ticket.sla_warning",
            EventType::SlaBreach => "ticket.sla_breach",
            EventType::Rated => "ticket.rated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked `[[desk.webhooks]]` subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub url: reqwest::Url,
    pub events: Vec<EventType>,
    pub secret: Secret,
    pub timeout: Duration,
    /// How long an event is tried before it is given up.
    pub give_up_after: Duration,
}

impl Subscription {
    /// The subscription's key in the store: the SHA-256 of its URL, shortened (the URL itself,
    /// which may carry a receiver's token, is not stored). Events queue per (desk, key).
    pub fn key(&self) -> String {
        subscription_key(self.url.as_str())
    }

    pub fn wants(&self, e: EventType) -> bool {
        self.events.contains(&e)
    }
}

/// The store key of the subscription to `url`.
pub fn subscription_key(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}

/// The URL as logs may show it: scheme, host and port, no path or query (either may hold a
/// receiver's token).
pub fn redacted(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}/…", url.scheme()),
        (Some(h), None) => format!("{}://{h}/…", url.scheme()),
        _ => format!("{}://…", url.scheme()),
    }
}

/// Who wrote a message that counts as a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyBy {
    Requester,
    Participant,
    Agent,
}

impl ReplyBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyBy::Requester => "requester",
            ReplyBy::Participant => "participant",
            ReplyBy::Agent => "agent",
        }
    }
}

/// A change of a ticket as the pipeline carried it out: the ticket before (None: it was just
/// created) and after, the audit events written (kind and detail), and who wrote the message the
/// change is about when it is a reply on the public conversation.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub before: Option<&'a Ticket>,
    pub after: &'a Ticket,
    pub events: Vec<(&'a str, &'a Value)>,
    pub reply: Option<ReplyBy>,
}

/// One webhook event: its type and what it adds to the ticket's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub kind: EventType,
    pub data: Value,
}

/// What a change tells subscribers, in this order: created; or replied, status changed, rated,
/// SLA warning, SLA breach.
pub fn occurrences(c: &Change<'_>) -> Vec<Occurrence> {
    let Some(before) = c.before else {
        return vec![Occurrence { kind: EventType::Created, data: json!({}) }];
    };
    let mut out = Vec::new();
    if let Some(by) = c.reply {
        out.push(Occurrence { kind: EventType::Replied, data: json!({ "by": by.as_str() }) });
    }
    if before.status != c.after.status {
        out.push(Occurrence {
            kind: EventType::StatusChanged,
            data: json!({ "from": before.status.as_str(), "to": c.after.status.as_str() }),
        });
    }
    if c.events.iter().any(|(k, _)| *k == "rated" || *k == "rating_changed") {
        out.push(Occurrence { kind: EventType::Rated, data: json!({ "rating": c.after.rating }) });
    }
    for (kind, detail) in &c.events {
        let t = match *kind {
            "sla_warning" => EventType::SlaWarning,
            "sla_breached" => EventType::SlaBreach,
            _ => continue,
        };
        let due = detail.get("due_at").and_then(Value::as_i64).map(iso);
        out.push(Occurrence { kind: t, data: json!({ "clock": detail.get("clock"), "due_at": due }) });
    }
    out
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The body of event `id` about ticket `t` at `now`: the ticket's public facts only — number,
/// status, category, subcategory, type, priority, channel, created — and the event's own data.
/// No requester address or name, subject, message text or rating comment: a receiver that needs
/// them asks the ticket API, where access is scoped and audited.
pub fn body(id: &str, o: &Occurrence, t: &Ticket, now: i64) -> String {
    json!({
        "id": id,
        "type": o.kind.as_str(),
        "occurred_at": iso(now),
        "desk": t.desk,
        "ticket": {
            "number": t.number.as_str(),
            "status": t.status.as_str(),
            "category": t.category,
            "subcategory": t.subcategory,
            "type": t.ticket_type.map(|x| x.as_str()),
            "priority": t.priority.map(|p| p.as_str()),
            "channel": t.channel.as_str(),
            "created_at": iso(t.created_at),
        },
        "data": o.data,
    })
    .to_string()
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Loket-Signature` value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).finalize().into_bytes()))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed (expected t=<unix seconds>,v1=<hex>)")]
    Malformed,
    #[error("the timestamp is {0} s away from now, outside the replay window")]
    OutsideWindow(u64),
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// A receiver's check of `body` under `header` at `now` (unix seconds): the timestamp within
/// `window` of now, and some `v1` equal (constant-time) to the HMAC-SHA256 of `"<t>.<body>"`.
/// Deduplication on the event id is the receiver's part after this.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, window: Duration) -> Result<(), VerifyError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", v)) => sigs.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let Some(t) = t else { return Err(VerifyError::Malformed) };
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let skew = now.abs_diff(t);
    if skew > window.as_secs() {
        return Err(VerifyError::OutsideWindow(skew));
    }
    if sigs.iter().any(|s| mac(secret, t, body).verify_slice(s).is_ok()) { Ok(()) } else { Err(VerifyError::Mismatch) }
}

/// How retries are spaced and when they stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

/// After failed attempt number `attempt` (1-based) at `now` of an event queued at `queued_at`
/// (ms): try again at (`initial * 2^(attempt-1)`, capped at `max`), or give up once the next try
/// would fall past `queued_at + give_up_after`.
pub fn after_failure(p: &RetryPolicy, queued_at: i64, attempt: u32, now: i64) -> Option<i64> {
    let initial = p.initial.as_millis().max(1) as i64;
    let delay = initial.saturating_mul(1i64 << attempt.saturating_sub(1).min(40)).min(p.max.as_millis() as i64);
    let at = now.saturating_add(delay.max(1));
    let deadline = queued_at.saturating_add(p.give_up_after.as_millis() as i64);
    (at <= deadline).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, EmailAddress, Language, Priority, TicketStatus, TicketType};
    use crate::ticket::TicketNumber;

    const KEY: &[u8] = b"whsec-test-0123456789";

    fn ticket(status: TicketStatus) -> Ticket {
        Ticket {
            id: 7,
            desk: "hero".into(),
            number: TicketNumber::parse("A-HERO26000007").unwrap(),
            category: "akun".into(),
            subcategory: "reset".into(),
            ticket_type: Some(TicketType::Incident),
            impact: None,
            status,
            channel: Channel::Email,
            inbox: Some("hero".into()),
            subject: "Sandi Budi lupa".into(),
            requester_address: EmailAddress::parse("budi@example.test").unwrap(),
            requester_name: Some("Budi Santoso".into()),
            language: Language::Id,
            created_at: 1_767_225_600_000,
            updated_at: 1_767_225_600_000,
            assignee: None,
            group_id: None,
            priority: Some(Priority::P3),
            pending_reason: None,
            resolved_at: None,
            closed_at: None,
            first_response_at: None,
            linked_ticket_id: None,
            rating: Some(5),
            rating_comment: Some("Budi senang".into()),
            rating_requested_at: None,
        }
    }

    #[test]
    fn a_signature_verifies_and_any_change_fails() {
        let body = br#"{"id":"e1","type":"ticket.created"}"#;
        let now = 1_767_225_600;
        let h = sign(KEY, now, body);
        assert!(h.starts_with(&format!("t={now},v1=")), "{h}");
        assert_eq!(verify(KEY, &h, body, now + 10, REPLAY_WINDOW), Ok(()));
        // A tampered body, another secret, a changed timestamp.
        let tampered = br#"{"id":"e1","type":"ticket.rated"}"#;
        assert_eq!(verify(KEY, &h, tampered, now, REPLAY_WINDOW), Err(VerifyError::Mismatch));
        assert_eq!(verify(b"another-secret", &h, body, now, REPLAY_WINDOW), Err(VerifyError::Mismatch));
        let moved = h.replace(&format!("t={now}"), &format!("t={}", now + 1));
        assert_eq!(verify(KEY, &moved, body, now, REPLAY_WINDOW), Err(VerifyError::Mismatch));
        // Old (or future) timestamps, even correctly signed, are outside the window.
        let old = sign(KEY, now - 301, body);
        assert_eq!(verify(KEY, &old, body, now, REPLAY_WINDOW), Err(VerifyError::OutsideWindow(301)));
        let future = sign(KEY, now + 400, body);
        assert_eq!(verify(KEY, &future, body, now, REPLAY_WINDOW), Err(VerifyError::OutsideWindow(400)));
        assert_eq!(verify(KEY, &sign(KEY, now - 300, body), body, now, REPLAY_WINDOW), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused_and_a_second_v1_may_match() {
        let body = b"{}";
        for h in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert_eq!(verify(KEY, h, body, 1, REPLAY_WINDOW), Err(VerifyError::Malformed), "{h:?}");
        }
        // During a secret rotation a sender may carry two signatures; one matching is enough.
        let good = sign(KEY, 100, body);
        let v1 = good.split_once(",v1=").unwrap().1;
        let two = format!("t=100,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(KEY, &two, body, 100, REPLAY_WINDOW), Ok(()));
    }

    #[test]
    fn retries_double_are_capped_and_stop_after_the_give_up_time() {
        let p = RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        let delays: Vec<i64> = (1..=8).map(|a| after_failure(&p, 0, a, 0).unwrap() / 1000).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(after_failure(&p, 0, 500, 0), Some(60_000), "a huge attempt count does not overflow");
        // The last try that still fits the hour, then none.
        assert_eq!(after_failure(&p, 0, 9, 3_540_000), Some(3_600_000));
        assert_eq!(after_failure(&p, 0, 9, 3_540_001), None);
    }

    #[test]
    fn changes_become_the_events_subscribers_hear_of() {
        let open = ticket(TicketStatus::Open);
        let resolved = ticket(TicketStatus::Resolved);
        let created = occurrences(&Change { before: None, after: &open, events: vec![], reply: None });
        assert_eq!(created.iter().map(|o| o.kind).collect::<Vec<_>>(), vec![EventType::Created]);

        let resolve =
            occurrences(&Change { before: Some(&open), after: &resolved, events: vec![], reply: Some(ReplyBy::Agent) });
        assert_eq!(
            resolve.iter().map(|o| o.kind).collect::<Vec<_>>(),
            vec![EventType::Replied, EventType::StatusChanged]
        );
        assert_eq!(resolve[0].data, json!({ "by": "agent" }));
        assert_eq!(resolve[1].data, json!({ "from": "open", "to": "resolved" }));

        // An internal note: no reply, no status change, nothing.
        let note = json!({ "text": "cek dulu" });
        let quiet =
            occurrences(&Change { before: Some(&open), after: &open, events: vec![("note", &note)], reply: None });
        assert!(quiet.is_empty(), "{quiet:?}");

        let rated = json!({ "rating": 5 });
        let warn = json!({ "clock": "response", "due_at": 1_767_229_200_000i64 });
        let o = occurrences(&Change {
            before: Some(&resolved),
            after: &resolved,
            events: vec![("rated", &rated), ("sla_warning", &warn), ("sla_breached", &warn)],
            reply: None,
        });
        assert_eq!(
            o.iter().map(|o| o.kind).collect::<Vec<_>>(),
            vec![EventType::Rated, EventType::SlaWarning, EventType::SlaBreach]
        );
        assert_eq!(o[0].data, json!({ "rating": 5 }));
        assert_eq!(o[1].data, json!({ "clock": "response", "due_at": "2026-01-01T01:00:00.000Z" }));
    }

    #[test]
    fn each_subscription_hears_only_the_events_it_names() {
        let sub = |events: &[EventType]| Subscription {
            url: reqwest::Url::parse("https://glpi.example.test/hook?token=abc").unwrap(),
            events: events.to_vec(),
            secret: Secret("s".into()),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            give_up_after: Duration::from_secs(DEFAULT_GIVE_UP_HOURS * 3600),
        };
        let status_only = sub(&[EventType::StatusChanged]);
        let all = sub(EventType::ALL);
        let chosen: Vec<EventType> = EventType::ALL.iter().copied().filter(|e| status_only.wants(*e)).collect();
        assert_eq!(chosen, vec![EventType::StatusChanged]);
        assert!(EventType::ALL.iter().all(|e| all.wants(*e)));
        // Every name parses back; an unknown one does not.
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(*e));
        }
        assert_eq!(EventType::parse("ticket.deleted"), None);
        // The store key and the logs never carry the URL's path or query.
        assert_eq!(status_only.key().len(), 16);
        assert!(!status_only.key().contains("abc"));
        assert_eq!(redacted(&status_only.url), "https://glpi.example.test/…");
    }

    #[test]
    fn the_body_holds_public_facts_and_no_personal_data() {
        let t = ticket(TicketStatus::Open);
        let o = Occurrence { kind: EventType::Created, data: json!({}) };
        let b = body("evt-1", &o, &t, 1_767_225_601_000);
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["id"], "evt-1");
        assert_eq!(v["type"], "ticket.created");
        assert_eq!(v["occurred_at"], "2026-01-01T00:00:01.000Z");
        assert_eq!(v["desk"], "hero");
        assert_eq!(v["ticket"]["number"], t.number.as_str());
        assert_eq!(v["ticket"]["status"], "open");
        assert_eq!(v["ticket"]["type"], "incident");
        assert_eq!(v["ticket"]["priority"], "P3");
        for personal in ["budi", "Budi", "Sandi", "senang"] {
            assert!(!b.contains(personal), "{personal} in {b}");
        }
    }
}
