//! Who is writing to a ticket, decided once from values: the threading decision names the
//! sender's role, and every rule that depends on it (who may relay, command, confirm, reopen,
//! rate, or only add words) matches on [`SenderRole`]. Pure: no store, no clock.

use crate::config::ParticipantPolicy;
use crate::domain::EmailAddress;

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
    requesters: &[String],
    participants: &[String],
    is_agent: bool,
) -> SenderRole {
    if is_agent {
        SenderRole::Agent
    } else if requesters.iter().any(|r| sender.as_str().eq_ignore_ascii_case(r)) {
        SenderRole::Requester
    } else if participants.iter().any(|p| sender.as_str().eq_ignore_ascii_case(p)) {
        SenderRole::Participant
    } else {
        SenderRole::Stranger
    }
}

/// The addresses among `recipients` (To and Cc of a request) that `policy` admits as
/// participants of the ticket `requester` opens: never the requester, the desk's own addresses
/// or its agents (`is_desk`), at most 20.
pub fn admitted(
    policy: ParticipantPolicy,
    requester: &EmailAddress,
    recipients: &[EmailAddress],
    is_desk: impl Fn(&EmailAddress) -> bool,
) -> Vec<EmailAddress> {
    let mut out: Vec<EmailAddress> = Vec::new();
    for r in recipients {
        let admit = match policy {
            ParticipantPolicy::Off => false,
            ParticipantPolicy::SameDomain => r.domain().eq_ignore_ascii_case(requester.domain()),
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

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn roles() {
        let parts = vec!["boss@kemenkeu.go.id".to_string()];
        let me = vec!["Budi@Kemenkeu.go.id".to_string()];
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
        assert!(admitted(ParticipantPolicy::Off, &me, &rcpt, desk).is_empty());
        assert_eq!(admitted(ParticipantPolicy::SameDomain, &me, &rcpt, desk), vec![a("boss@kemenkeu.go.id")]);
        assert_eq!(
            admitted(ParticipantPolicy::All, &me, &rcpt, desk),
            vec![a("boss@kemenkeu.go.id"), a("friend@gmail.com")]
        );
    }
}
