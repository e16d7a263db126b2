//! Personal data duties (UU 27/2022 on personal data protection): who one person is in the
//! store, and how their data is rewritten when it is erased. Pure: the store applies it
//! (`store::privacy`), `loket forget` and `loket export` drive it.
//!
//! A person is named by an email address or a chat id (`telegram:555`, `whatsapp:62812…`); their
//! addresses are that one plus the chat identities linked to it. Erasure keeps what statistics
//! need (numbers, categories, times, statuses, clocks, ratings) and replaces the rest: the
//! person's addresses by one pseudonym drawn at random for the run (so "one requester, three
//! tickets" survives, but nothing links the pseudonym back to the address), names, subjects,
//! bodies and file names by [`ERASED`].

use serde_json::Value;

use crate::domain::Channel;

/// `[desk.retention]`: how long personal data is kept, in days; left out, forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Raw mail (and the files cut from it, and chat files) older than this is purged; the
    /// ticket's text and audit stay.
    #[serde(default)]
    pub raw_mail_days: Option<u32>,
    /// A closed or rejected ticket closed longer ago than this is anonymised (as by `loket
    /// forget`, for that ticket alone): numbers and statistics stay.
    #[serde(default)]
    pub closed_ticket_days: Option<u32>,
}

impl Retention {
    /// The instants (ms) before which raw mail, and closed tickets, are past their retention.
    pub fn cutoffs(&self, now: i64) -> (Option<i64>, Option<i64>) {
        let before = |days: Option<u32>| days.map(|d| now - i64::from(d) * 86_400_000);
        (before(self.raw_mail_days), before(self.closed_ticket_days))
    }

    pub fn is_set(&self) -> bool {
        self.raw_mail_days.is_some() || self.closed_ticket_days.is_some()
    }
}

/// What replaces an erased text.
pub const ERASED: &str = "[dihapus]";

/// JSON keys whose values are free text written by or about a person (event details).
const FREE_TEXT_KEYS: &[&str] = &["text", "comment", "body", "subject", "name", "note", "answer"];

/// The address `who` names: an email address as given (lower-cased), or a chat id
/// `PLATFORM:ID` as its chat address (`telegram-555@chat.invalid`). None when it is neither.
pub fn address_of(who: &str) -> Option<String> {
    let who = who.trim();
    if let Some((platform, id)) = who.split_once(':')
        && let Some(channel) = Channel::parse(platform).filter(|c| *c != Channel::Email)
        && !id.is_empty()
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Some(crate::chat::chat_address(channel, id));
    }
    crate::domain::EmailAddress::parse(who).ok().map(|a| a.as_str().to_ascii_lowercase())
}

/// A pseudonym for one erasure run: `erased-<16 hex>@erased.invalid` from `random` bytes (the
/// caller's randomness, so this stays pure).
pub fn pseudonym(random: [u8; 8]) -> String {
    format!("erased-{}@erased.invalid", hex::encode(random))
}

/// `text` with every occurrence of each of `addresses` (any case) replaced by `pseudonym`.
pub fn replace_addresses(text: &str, addresses: &[String], pseudonym: &str) -> String {
    let mut out = text.to_string();
    for a in addresses.iter().filter(|a| !a.is_empty()) {
        let lower = out.to_ascii_lowercase();
        let needle = a.to_ascii_lowercase();
        if !lower.contains(&needle) {
            continue;
        }
        // ASCII lower-casing keeps byte offsets, so the matches found in `lower` cut `out`.
        let mut next = String::with_capacity(out.len());
        let mut from = 0;
        for (at, _) in lower.match_indices(&needle) {
            next.push_str(&out[from..at]);
            next.push_str(pseudonym);
            from = at + needle.len();
        }
        next.push_str(&out[from..]);
        out = next;
    }
    out
}

/// Whether `text` names any of `addresses` (any case).
pub fn mentions(text: &str, addresses: &[String]) -> bool {
    let lower = text.to_ascii_lowercase();
    addresses.iter().any(|a| !a.is_empty() && lower.contains(&a.to_ascii_lowercase()))
}

/// An event's detail with the person's addresses replaced and, when `erase_text` (an event of
/// the person's own ticket), its free text erased; keys kept (the kind of change and its
/// non-personal values — statuses, priorities, numbers — stay). Another person's ticket keeps
/// its text, with only the addresses replaced.
pub fn scrub_detail(detail: &Value, addresses: &[String], pseudonym: &str, erase_text: bool) -> Value {
    match detail {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(_) if erase_text && FREE_TEXT_KEYS.contains(&k.as_str()) => {
                            Value::String(ERASED.into())
                        }
                        other => scrub_detail(other, addresses, pseudonym, erase_text),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| scrub_detail(v, addresses, pseudonym, erase_text)).collect())
        }
        Value::String(s) => Value::String(replace_addresses(s, addresses, pseudonym)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_person_is_an_address_or_a_chat_id() {
        assert_eq!(address_of(" Citra@Example.test "), Some("citra@example.test".into()));
        assert_eq!(address_of("telegram:555"), Some("telegram-555@chat.invalid".into()));
        assert_eq!(address_of("whatsapp:6281234"), Some("whatsapp-6281234@chat.invalid".into()));
        assert_eq!(address_of("telegram:"), None);
        assert_eq!(address_of("telegram:5 5"), None);
        assert_eq!(address_of("not an address"), None);
    }

    #[test]
    fn addresses_are_replaced_in_any_case_and_nothing_else_moves() {
        let who = vec!["citra@example.test".to_string(), "telegram-5@chat.invalid".to_string()];
        let p = pseudonym([0xab; 8]);
        assert_eq!(p, "erased-abababababababab@erased.invalid");
        assert_eq!(
            replace_addresses("From Citra@EXAMPLE.test, cc citra@example.test; telegram-5@chat.invalid", &who, &p),
            format!("From {p}, cc {p}; {p}")
        );
        assert_eq!(replace_addresses("nothing here, Ünïcode stays", &who, &p), "nothing here, Ünïcode stays");
        assert!(mentions("x CITRA@example.test y", &who) && !mentions("citra@example.org", &who));
    }

    #[test]
    fn event_details_keep_their_shape_and_lose_the_person() {
        let who = vec!["citra@example.test".to_string()];
        let d = json!({"text": "Bu Citra di ruang arsip", "requester": "citra@example.test", "via": "command",
                       "from": "new", "to": "open", "list": ["citra@example.test", 3], "n": 2});
        let s = scrub_detail(&d, &who, "erased-x@erased.invalid", true);
        assert_eq!(
            s,
            json!({"text": ERASED, "requester": "erased-x@erased.invalid", "via": "command",
                   "from": "new", "to": "open", "list": ["erased-x@erased.invalid", 3], "n": 2})
        );
        // On another person's ticket only the address goes.
        let note = json!({"text": "cc citra@example.test on this"});
        assert_eq!(
            scrub_detail(&note, &who, "erased-x@erased.invalid", false),
            json!({"text": "cc erased-x@erased.invalid on this"})
        );
    }
}
