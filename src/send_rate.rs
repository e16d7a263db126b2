//! A mailbox's send rate (`outbound.sender_per_minute`): providers cap how many messages one
//! mailbox may send in a minute (Exchange Online: 30), and answer more with a rejection or a
//! temporary block of the mailbox. The outbox asks [`admit`] which of the rows it claimed may go
//! now; the others wait, uncounted as attempts, until the minute has room again (back-pressure,
//! never a failure). Pure: the sends of the last minute and `now` are passed in.

use std::collections::HashMap;

/// The window a rate counts over.
pub const WINDOW_MS: i64 = 60_000;

/// What may be sent now, and when each held row is worth claiming again.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Row ids that may be sent now.
    pub now: Vec<i64>,
    /// Row ids held back, each with the time the sender's minute has room for it.
    pub held: Vec<(i64, i64)>,
}

/// Splits `claimed` rows (`(id, sender)`, in claim order) under `limit` sends per sender per
/// [`WINDOW_MS`]. `sent` holds each sender's send times (keyed by the lowercased address, any
/// order; times outside the window are ignored); rows admitted now count as sent at `now` for the rows after them.
pub fn admit(limit: u32, now: i64, sent: &HashMap<String, Vec<i64>>, claimed: &[(i64, String)]) -> Admission {
    let limit = limit.max(1) as usize;
    let mut times: HashMap<String, Vec<i64>> = HashMap::new();
    let mut held_per_sender: HashMap<String, usize> = HashMap::new();
    let mut out = Admission::default();
    for (id, sender) in claimed {
        let key = sender.to_ascii_lowercase();
        let t = times.entry(key.clone()).or_insert_with(|| {
            let mut v: Vec<i64> = sent
                .get(&key)
                .map(|v| v.iter().copied().filter(|&s| s > now - WINDOW_MS && s <= now).collect())
                .unwrap_or_default();
            v.sort_unstable();
            v
        });
        if t.len() < limit {
            t.push(now);
            out.now.push(*id);
        } else {
            // The j-th row held for this sender fits once the (len - limit + j)-th send leaves the
            // window; later rows than the window can tell wait for its last send.
            let j = held_per_sender.entry(key).or_default();
            let at = t[(t.len() - limit + *j).min(t.len() - 1)] + WINDOW_MS;
            *j += 1;
            out.held.push((*id, at.max(now + 1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(senders: &[&str]) -> Vec<(i64, String)> {
        senders.iter().enumerate().map(|(i, s)| (i as i64 + 1, s.to_string())).collect()
    }

    #[test]
    fn admits_up_to_the_limit_per_sender_and_holds_the_rest_until_the_minute_has_room() {
        let now = 1_000_000;
        let sent = HashMap::from([("a@desk.test".to_string(), vec![now - 50_000, now - 10_000, now - 70_000])]);
        let a = admit(3, now, &sent, &rows(&["a@desk.test", "b@desk.test", "a@desk.test", "a@desk.test"]));
        // a has two sends in the window (the one 70 s ago has left it): one more fits.
        assert_eq!(a.now, vec![1, 2]);
        // The first held row fits when the send of 50 s ago leaves the window, the next when
        // the send of 10 s ago does.
        assert_eq!(a.held, vec![(3, now + 10_000), (4, now + 50_000)]);
    }

    #[test]
    fn a_sender_is_one_mailbox_whatever_its_case() {
        let now = 5_000_000;
        let sent = HashMap::from([("hero@desk.test".to_string(), vec![now - 1_000])]);
        let a = admit(1, now, &sent, &rows(&["HERO@desk.test"]));
        assert!(a.now.is_empty());
        assert_eq!(a.held, vec![(1, now - 1_000 + WINDOW_MS)]);
    }

    #[test]
    fn rows_admitted_in_the_same_round_count() {
        let now = 10_000_000;
        let a = admit(2, now, &HashMap::new(), &rows(&["x@d", "x@d", "x@d", "x@d", "x@d"]));
        assert_eq!(a.now, vec![1, 2]);
        assert_eq!(a.held, vec![(3, now + WINDOW_MS), (4, now + WINDOW_MS), (5, now + WINDOW_MS)]);
        assert!(a.held.iter().all(|&(_, at)| at > now));
    }
}
