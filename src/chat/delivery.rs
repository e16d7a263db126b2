//! What a platform's delivery status callback does to the outbox row of the message it is about
//! (WhatsApp Cloud API `statuses`: sent, delivered, read, failed). Pure: the caller reads the
//! row's recorded status, asks [`decide`], and applies the effect in one transaction.
//!
//! Callbacks come more than once and out of order (a `read` before its `delivered`, a second
//! `failed`): a status only ever moves forward (sent → delivered → read), a failure is final and
//! recorded once, and anything that would not move the row changes nothing.

use serde::{Deserialize, Serialize};

/// A delivery status as the platform reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Delivery {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }
}

/// What a callback does to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Already known, or behind what is known: nothing changes.
    Nothing,
    /// The row's status moves forward to this one.
    Advance(Delivery),
    /// The message did not reach the person: recorded on the row, a ticket event, a metric, and
    /// the message goes by email where the person linked an address.
    Fail,
}

/// The effect of a callback reporting `incoming` on a row whose recorded status is `current`.
pub fn decide(current: Option<Delivery>, incoming: Delivery) -> Effect {
    match (current, incoming) {
        // A failure is final: nothing after it changes the row, and it is acted on once.
        (Some(Delivery::Failed), _) => Effect::Nothing,
        // The person has the message: a failure reported after that is not acted on.
        (Some(Delivery::Delivered | Delivery::Read), Delivery::Failed) => Effect::Nothing,
        (_, Delivery::Failed) => Effect::Fail,
        (None, s) => Effect::Advance(s),
        (Some(c), s) if s > c => Effect::Advance(s),
        _ => Effect::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::Delivery::*;
    use super::*;

    #[test]
    fn statuses_move_forward_only() {
        assert_eq!(decide(None, Sent), Effect::Advance(Sent));
        assert_eq!(decide(Some(Sent), Delivered), Effect::Advance(Delivered));
        assert_eq!(decide(Some(Delivered), Read), Effect::Advance(Read));
        // Read before delivered: the late delivered changes nothing.
        assert_eq!(decide(Some(Sent), Read), Effect::Advance(Read));
        assert_eq!(decide(Some(Read), Delivered), Effect::Nothing);
        assert_eq!(decide(Some(Read), Sent), Effect::Nothing);
        // The same status twice changes nothing the second time.
        assert_eq!(decide(Some(Delivered), Delivered), Effect::Nothing);
    }

    #[test]
    fn a_failure_is_acted_on_once_and_is_final() {
        assert_eq!(decide(None, Failed), Effect::Fail);
        assert_eq!(decide(Some(Sent), Failed), Effect::Fail);
        assert_eq!(decide(Some(Failed), Failed), Effect::Nothing, "a second failed changes nothing");
        for s in [Sent, Delivered, Read] {
            assert_eq!(decide(Some(Failed), s), Effect::Nothing, "nothing after a failure: {s:?}");
        }
        assert_eq!(decide(Some(Delivered), Failed), Effect::Nothing);
        assert_eq!(decide(Some(Read), Failed), Effect::Nothing);
    }

    #[test]
    fn names_round_trip() {
        for s in [Sent, Delivered, Read, Failed] {
            assert_eq!(Delivery::parse(s.as_str()), Some(s));
        }
        assert_eq!(Delivery::parse("deleted"), None);
    }
}
