//! Which ticket a message belongs to, and who is writing to it, decided from values: the store
//! loads the tickets the message's [`ThreadKeys`] name, [`choose`] picks one, and [`sender_role`]
//! names the sender's role; every rule that depends on it (who may relay, command, confirm,
//! reopen, rate, or only add words) matches on [`SenderRole`]. Pure: no store, no clock.

use super::{Ticket, TicketNumber, find_tags};
use crate::config::ParticipantPolicy;
use crate::domain::EmailAddress;

/// At most this many message ids of a mail's references are looked up (the newest).
pub const MAX_REFERENCES: usize = 50;

/// At most this many distinct ticket tags of a subject are looked up (the first): a subject
/// stuffed with tags must not become one lookup, or one bound value, per tag.
pub const MAX_TAGS: usize = 10;

/// What a message offers to thread by: the ticket tags in its subject, in order, and the ids of
/// the messages it replies to or reports on, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadKeys {
    pub numbers: Vec<TicketNumber>,
    pub message_ids: Vec<String>,
}

impl ThreadKeys {
    /// From a mail's subject, `References`, `In-Reply-To`, and the message ids a delivery report
    /// names; the first [`MAX_TAGS`] distinct tags and the newest [`MAX_REFERENCES`] ids are kept.
    pub fn of(subject: &str, references: &[String], in_reply_to: &[String], reported: &[String]) -> Self {
        let mut numbers: Vec<TicketNumber> = Vec::new();
        for n in find_tags(subject) {
            if numbers.len() == MAX_TAGS {
                break;
            }
            if !numbers.contains(&n) {
                numbers.push(n);
            }
        }
        let mut message_ids: Vec<String> = Vec::new();
        for id in references.iter().chain(in_reply_to).chain(reported) {
            if message_ids.last() != Some(id) {
                message_ids.push(id.clone());
            }
        }
        let skip = message_ids.len().saturating_sub(MAX_REFERENCES);
        Self { numbers, message_ids: message_ids.split_off(skip) }
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty() && self.message_ids.is_empty()
    }
}

/// The ticket a message belongs to, among those its keys found: the first subject tag that names
/// a ticket of the desk, else the ticket of the newest message it refers to. `by_message` pairs
/// a message id with the ticket of that message.
pub fn choose<'a>(
    keys: &ThreadKeys,
    by_number: &'a [Ticket],
    by_message: &'a [(String, Ticket)],
) -> Option<&'a Ticket> {
    keys.numbers.iter().find_map(|n| by_number.iter().find(|t| t.number == *n)).or_else(|| {
        keys.message_ids.iter().rev().find_map(|id| by_message.iter().find(|(m, _)| m == id).map(|(_, t)| t))
    })
}

/// The sender of a message that points at a ticket (by subject tag or thread references).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderRole {
    /// The ticket's requester: may write, confirm, reopen and rate.
    Requester,
    /// Admitted by the desk's policy (e.g. a supervisor in CC of the request): may add words,
    /// never change the ticket's status or rating.
    Participant,
    /// A configured agent of the desk: relays and commands still need the signed token.
    Agent,
    /// Anyone else: never changes the ticket and never reaches its requester; their message
    /// opens a ticket of their own that links the one they named.
    Stranger,
}

impl SenderRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderRole::Requester => "requester",
            SenderRole::Participant => "participant",
            SenderRole::Agent => "agent",
            SenderRole::Stranger => "stranger",
        }
    }
}

/// The role of `sender` on a ticket whose requester writes from `requesters` (the ticket's
/// address, and a chat requester's linked email) and whose admitted participants are
/// `participants`. An agent is an agent first (an agent who once opened a ticket for themselves
/// still answers with the token).
pub fn sender_role(
    sender: &EmailAddress,
    requesters: &[EmailAddress],
    participants: &[EmailAddress],
    is_agent: bool,
) -> SenderRole {
    if is_agent {
        SenderRole::Agent
    } else if requesters.contains(sender) {
        SenderRole::Requester
    } else if participants.contains(sender) {
        SenderRole::Participant
    } else {
        SenderRole::Stranger
    }
}

/// The addresses among `recipients` (To and Cc of a request) that `policy` admits as
/// participants of the ticket `requester` opens, or that are in one of the `allowed` domains
/// (unless the policy is `off`): never the requester, the desk's own addresses or its agents
/// (`is_desk`), at most 20.
pub fn admitted(
    policy: ParticipantPolicy,
    allowed: &[String],
    requester: &EmailAddress,
    recipients: &[EmailAddress],
    is_desk: impl Fn(&EmailAddress) -> bool,
) -> Vec<EmailAddress> {
    let mut out: Vec<EmailAddress> = Vec::new();
    for r in recipients {
        let listed = allowed.iter().any(|d| r.domain().eq_ignore_ascii_case(d));
        let admit = match policy {
            ParticipantPolicy::Off => false,
            ParticipantPolicy::SameDomain => listed || r.domain().eq_ignore_ascii_case(requester.domain()),
            ParticipantPolicy::All => true,
        };
        if admit && r != requester && !is_desk(r) && !out.contains(r) && out.len() < 20 {
            out.push(r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: i64, number: &str) -> Ticket {
        Ticket {
            id,
            desk: "hero".into(),
            number: TicketNumber::parse(number).unwrap(),
            category: "aplikasi".into(),
            subcategory: "sigi".into(),
            ticket_type: None,
            impact: None,
            status: crate::domain::TicketStatus::Open,
            channel: crate::domain::Channel::Email,
            inbox: None,
            subject: String::new(),
            requester_address: a("budi@example.test"),
            requester_name: None,
            language: crate::domain::Language::Id,
            created_at: 0,
            updated_at: 0,
            assignee: None,
            group_id: None,
            priority: None,
            pending_reason: None,
            resolved_at: None,
            closed_at: None,
            first_response_at: None,
            linked_ticket_id: None,
            rating: None,
            rating_comment: None,
            rating_requested_at: None,
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_come_from_the_subject_and_the_references() {
        let k = ThreadKeys::of(
            "Re: [#A-HERO26000001] dan [#B-HERO26000002]",
            &ids(&["a", "b"]),
            &ids(&["b"]),
            &ids(&["c"]),
        );
        assert_eq!(
            k.numbers.iter().map(TicketNumber::as_str).collect::<Vec<_>>(),
            ["A-HERO26000001", "B-HERO26000002"]
        );
        assert_eq!(k.message_ids, ["a", "b", "c"]);
        let many: Vec<String> = (0..80).map(|i| format!("m{i}")).collect();
        let k = ThreadKeys::of("Re: x", &many, &[], &[]);
        assert_eq!((k.message_ids.len(), k.message_ids.first().map(String::as_str)), (MAX_REFERENCES, Some("m30")));
        assert!(ThreadKeys::of("Halo", &[], &[], &[]).is_empty());
        let stuffed: String = (0..5_000).map(|i| format!("[#A-HERO26{i:06}] ")).collect();
        let k = ThreadKeys::of(&stuffed, &[], &[], &[]);
        assert_eq!((k.numbers.len(), k.numbers[0].as_str()), (MAX_TAGS, "A-HERO26000000"));
        let k = ThreadKeys::of("[#A-HERO26000001] [#A-HERO26000001] [#B-HERO26000002]", &[], &[], &[]);
        assert_eq!(
            k.numbers.iter().map(TicketNumber::as_str).collect::<Vec<_>>(),
            ["A-HERO26000001", "B-HERO26000002"]
        );
    }

    #[test]
    fn a_tag_of_the_desk_wins_then_the_newest_reference() {
        let k = ThreadKeys::of("Re: [#X-OTHER26000009] [#A-HERO26000001]", &ids(&["old", "new"]), &[], &[]);
        let by_number = [t(1, "A-HERO26000001")];
        let by_message = [("old".to_string(), t(2, "A-HERO26000002")), ("new".to_string(), t(3, "A-HERO26000003"))];
        assert_eq!(choose(&k, &by_number, &by_message).map(|t| t.id), Some(1), "an unknown tag is skipped");
        assert_eq!(choose(&k, &[], &by_message).map(|t| t.id), Some(3), "the direct parent is the best evidence");
        assert_eq!(choose(&k, &[], &by_message[..1]).map(|t| t.id), Some(2));
        assert_eq!(choose(&k, &[], &[]), None);
    }

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn roles() {
        let parts = vec![a("boss@kemenkeu.go.id")];
        let me = vec![a("Budi@Kemenkeu.go.id")];
        let role = |s: &str, agent| sender_role(&a(s), &me, &parts, agent);
        assert_eq!(role("budi@kemenkeu.go.id", false), SenderRole::Requester);
        assert_eq!(role("boss@kemenkeu.go.id", false), SenderRole::Participant);
        assert_eq!(role("agent@desk.test", true), SenderRole::Agent);
        assert_eq!(role("budi@kemenkeu.go.id", true), SenderRole::Agent);
        assert_eq!(role("mallory@evil.test", false), SenderRole::Stranger);
    }

    #[test]
    fn participants_follow_the_policy() {
        let me = a("budi@kemenkeu.go.id");
        let rcpt = vec![
            a("servicedesk@kemenkeu.go.id"),
            a("boss@kemenkeu.go.id"),
            a("friend@gmail.com"),
            a("budi@kemenkeu.go.id"),
            a("boss@kemenkeu.go.id"),
        ];
        let desk = |x: &EmailAddress| x.as_str() == "servicedesk@kemenkeu.go.id";
        assert!(admitted(ParticipantPolicy::Off, &[], &me, &rcpt, desk).is_empty());
        assert_eq!(admitted(ParticipantPolicy::SameDomain, &[], &me, &rcpt, desk), vec![a("boss@kemenkeu.go.id")]);
        assert_eq!(
            admitted(ParticipantPolicy::All, &[], &me, &rcpt, desk),
            vec![a("boss@kemenkeu.go.id"), a("friend@gmail.com")]
        );
        let partners = ["gmail.com".to_string()];
        assert_eq!(
            admitted(ParticipantPolicy::SameDomain, &partners, &me, &rcpt, desk),
            vec![a("boss@kemenkeu.go.id"), a("friend@gmail.com")],
            "an allowed domain is admitted besides the requester's own"
        );
        assert!(admitted(ParticipantPolicy::Off, &partners, &me, &rcpt, desk).is_empty(), "off is off");
        let many: Vec<EmailAddress> = (0..50).map(|i| a(&format!("p{i}@kemenkeu.go.id"))).collect();
        assert_eq!(admitted(ParticipantPolicy::SameDomain, &[], &me, &many, desk).len(), 20, "bounded");
    }
}
