//! A batch's duplicate checks and new requests' sender loads read for many messages at once
//! (on PostgreSQL each query is a round trip the writer waits for). When the writer reaches a
//! message whose key was not read, one query reads the keys of it and of the messages prepared
//! after it (`store::stored_keys`) and one the loads of the requesters of the new requests among
//! them up to the first other mail (`store::sender_loads`); when it reaches a new request whose
//! load is not known (after a reply, say), the loads alone are read again from there. What was
//! read holds in the batch's transaction until the batch's own messages change it, and that is
//! tracked ([`Prefetched::wrote`]):
//! - a key is stored only by the message that has it (inbound rows and quarantined copies keep
//!   their own key; outbound rows have `out:` keys of their own), so a key read as not stored
//!   stays so until a message of the batch with that key is written;
//! - a new request (`ahead::looks_new`: a person who is not an agent, no thread) writes only
//!   its own addresses' load: the ticket of its requester, its inbound row from its sender, an
//!   automatic reply to its requester. Any other mail (a reply, an agent's, an automatic one)
//!   may write another address's (an automatic reply to a ticket's requester, a ticket opened
//!   for someone else), so the loads read before it are not used after it.
//!
//! A key read as stored is checked again alone (`store::find_seen`): the answer names its
//! ticket, which the batch may have moved. A copy that slipped through anyway (another instance
//! writing the same key meanwhile) is refused by the store's unique key and the batch runs
//! again, as before. Pure: the reads are the caller's (`Pipeline::run_batch`); [`window`] says what
//! they ask for.

use std::collections::{HashMap, HashSet};

use super::Incoming;
use super::ahead::{self, Prepared};
use crate::config::Desk;
use crate::store::SenderLoad;

/// The messages of a batch whose duplicate checks one query reads at most.
const WINDOW_MESSAGES: usize = 256;

/// What one read asks for.
pub(crate) struct Window<'r> {
    /// The keys of the messages, as far as they are prepared.
    pub keys: Vec<&'r str>,
    /// The requesters of the new requests among them, up to the first other mail (whose writes
    /// may move anyone's load) or the first of another instant.
    pub requesters: Vec<&'r str>,
}

/// What to read for the batch's messages from `from` on, as far as they are prepared (`ready`)
/// and at most [`WINDOW_MESSAGES`]; poisoned messages and those that could not be parsed are
/// checked on their own way.
pub(crate) fn window<'r>(
    desk: &Desk,
    batch: &[Incoming<'_>],
    poisoned: &[Option<String>],
    from: usize,
    ready: &'r [Prepared],
) -> Window<'r> {
    let mut w = Window { keys: Vec::new(), requesters: Vec::new() };
    let mut new_requests = true;
    let until = ready.len().min(from + WINDOW_MESSAGES).min(batch.len());
    for (j, prepared) in ready.iter().enumerate().take(until).skip(from) {
        let (Ok(mail), Some(key), None) = (&prepared.mail, &prepared.key, &poisoned[j]) else { continue };
        w.keys.push(key);
        new_requests &= batch[j].now == batch[from].now && ahead::looks_new(desk, mail);
        if new_requests && let Some(r) = mail.requester() {
            w.requesters.push(r.address.as_str());
        }
    }
    w
}

/// What the store held for some of a batch's messages when it was read, less what the batch
/// wrote since.
#[derive(Debug, Default)]
pub(crate) struct Prefetched {
    /// The keys read, and of them those stored.
    asked: HashSet<String>,
    stored: HashSet<String>,
    /// Senders' loads, all since `since`.
    loads: HashMap<String, SenderLoad>,
    since: i64,
    /// Keys and addresses the batch's messages wrote after the read.
    wrote_keys: HashSet<String>,
    wrote_addresses: HashSet<String>,
}

impl Prefetched {
    /// What a read found: of `asked`, the keys `stored`; the `loads` of some senders since `since`.
    pub fn read(
        asked: impl IntoIterator<Item = String>,
        stored: HashSet<String>,
        loads: HashMap<String, SenderLoad>,
        since: i64,
    ) -> Self {
        Prefetched { asked: asked.into_iter().collect(), stored, loads, since, ..Prefetched::default() }
    }

    /// The loads read again (of the senders of the new requests ahead), since `since`; the keys
    /// as they were.
    pub fn reload(&mut self, loads: HashMap<String, SenderLoad>, since: i64) {
        self.loads = loads;
        self.since = since;
        self.wrote_addresses.clear();
    }

    /// Whether `key` was read: a key never read needs a read of its own.
    pub fn has_key(&self, key: &str) -> bool {
        self.asked.contains(key)
    }

    /// `key` is known not to be stored: read as not stored, and no message of the batch with
    /// that key written since. `false`: ask the store.
    pub fn unseen(&self, key: &str) -> bool {
        self.asked.contains(key) && !self.stored.contains(key) && !self.wrote_keys.contains(key)
    }

    /// The load of `address` since `since`, when it was read for that instant and nothing of the
    /// batch written since can have changed it.
    pub fn load(&self, address: &str, since: i64) -> Option<SenderLoad> {
        if since != self.since || self.wrote_addresses.contains(address) {
            return None;
        }
        self.loads.get(address).copied()
    }

    /// A message of the batch was handled (or tried: a failed run is rolled back with all it
    /// read): its `key`; the `addresses` it carries (sender, reply-to); whether it was a new
    /// request, which writes no other address's load.
    pub fn wrote<'a>(&mut self, key: &str, addresses: impl IntoIterator<Item = &'a str>, new_request: bool) {
        self.wrote_keys.insert(key.to_string());
        if new_request {
            self.wrote_addresses.extend(addresses.into_iter().map(str::to_string));
        } else {
            self.loads.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(n: i64) -> SenderLoad {
        SenderLoad { tickets_opened: n, auto_replies: n, inbound: n }
    }

    fn known() -> Prefetched {
        let asked = ["k1", "k2", "k3"].map(String::from);
        let stored = HashSet::from(["k2".to_string()]);
        let loads = HashMap::from([("a@x.test".to_string(), load(1)), ("b@x.test".to_string(), load(0))]);
        Prefetched::read(asked, stored, loads, 1_000)
    }

    #[test]
    fn a_key_read_as_not_stored_stays_so_until_a_message_with_it_is_written() {
        let mut k = known();
        assert!(k.unseen("k1") && k.unseen("k3"));
        assert!(!k.unseen("k2"), "stored: asked again alone");
        assert!(!k.unseen("k4") && !k.has_key("k4"), "never read");
        k.wrote("k1", ["a@x.test"], true);
        assert!(!k.unseen("k1"), "the same key again in the batch");
        k.wrote("k9", ["c@x.test"], false);
        assert!(k.unseen("k3"), "another mail writes only its own key");
    }

    #[test]
    fn a_load_holds_until_a_new_request_of_that_address_or_any_other_mail_is_written() {
        let mut k = known();
        assert_eq!(k.load("a@x.test", 1_000), Some(load(1)));
        assert_eq!(k.load("a@x.test", 999), None, "read for another instant");
        assert_eq!(k.load("c@x.test", 1_000), None, "not read");
        k.wrote("k1", ["a@x.test", "reply-to@x.test"], true);
        assert_eq!(k.load("a@x.test", 1_000), None, "its own request moved it");
        assert_eq!(k.load("b@x.test", 1_000), Some(load(0)), "another sender's holds");
        k.wrote("k3", ["z@x.test"], false);
        assert_eq!(k.load("b@x.test", 1_000), None, "a reply may write anyone's");
        k.reload(HashMap::from([("a@x.test".to_string(), load(2))]), 2_000);
        assert_eq!(k.load("a@x.test", 2_000), Some(load(2)), "read again after its own request");
        assert!(k.has_key("k2") && !k.unseen("k1") && !k.unseen("k3"), "the keys as they were, written ones too");
    }
}
