//! Small validated value types shared by every layer: addresses, ticket types, statuses, channels.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A syntactically plausible, lower-cased email address (`local@domain`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl PartialEq<&str> for EmailAddress {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl EmailAddress {
    /// Parses an address; accepts `Name <a@b>` forms by taking the part in angle brackets.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let s = match (s.rfind('<'), s.rfind('>')) {
            (Some(a), Some(b)) if a < b => &s[a + 1..b],
            _ => s,
        };
        let s = s.trim().to_ascii_lowercase();
        if s.len() > 254 {
            return Err(format!("address longer than 254 characters: `{raw}`"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("`{raw}` is not an email address (no @)"));
        };
        let ok_local = !local.is_empty()
            && local.len() <= 64
            && !local.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c));
        let ok_domain = !domain.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if ok_local && ok_domain { Ok(Self(s)) } else { Err(format!("`{raw}` is not a valid email address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Ticket type as on the HERO form: Pertanyaan, Permohonan, Kendala; and Pusintek's change
    /// tickets (Service/Incident/Change), offered where the catalogue has `change_tickets`.
    TicketType {
        Question = "question",
        Request = "request",
        Incident = "incident",
        Change = "change",
    }
);

string_enum!(
    /// Impact of an incident (HERO "Tingkat Dampak": Rendah, Sedang, Tinggi).
    Impact {
        Low = "low",
        Medium = "medium",
        High = "high",
    }
);

string_enum!(
    /// Lifecycle of a ticket.
    TicketStatus {
        New = "new",
        Open = "open",
        Pending = "pending",
        Resolved = "resolved",
        Closed = "closed",
        Rejected = "rejected",
    }
);

impl TicketStatus {
    /// Closed or rejected: the end of a ticket's life.
    pub fn is_finished(self) -> bool {
        matches!(self, TicketStatus::Closed | TicketStatus::Rejected)
    }
}

string_enum!(
    /// Incident priority (the DJPb matrix: P1 3 working hours … P5 80).
    Priority {
        P1 = "P1",
        P2 = "P2",
        P3 = "P3",
        P4 = "P4",
        P5 = "P5",
    }
);

string_enum!(
    /// Where a message came from or goes to.
    Channel {
        Email = "email",
        Telegram = "telegram",
        Whatsapp = "whatsapp",
    }
);

string_enum!(
    /// The language a requester is written to in (templates exist in both).
    #[derive(Default)]
    Language {
        #[default]
        Id = "id",
        En = "en",
    }
);

string_enum!(
    /// Why a ticket waits: on the requester's answer, or on documents the catalogue requires.
    PendingReason {
        Requester = "requester",
        Requirements = "requirements",
    }
);

string_enum!(
    /// Direction of a stored message.
    Direction {
        Inbound = "in",
        Outbound = "out",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_named_addresses() {
        assert_eq!(EmailAddress::parse("Budi <Budi@Example.TEST>").unwrap().as_str(), "budi@example.test");
        assert_eq!(EmailAddress::parse(" hero@desk.test ").unwrap().domain(), "desk.test");
        assert_eq!(EmailAddress::parse("hero@desk.test").unwrap().local_part(), "hero");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "nobody", "a@b", "a b@c.d", "@c.d", "a@.d", "a@d.", "a@b@"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn enums_round_trip() {
        for t in TicketType::ALL {
            assert_eq!(TicketType::parse(t.as_str()), Some(*t));
        }
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(TicketType::parse("kendala"), None);
    }
}
