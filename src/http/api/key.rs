//! API keys, pure: the key's text (`loket_<id>_<64 hex digits>`), the SHA-256 of its secret (all
//! the store keeps), the check in constant time, and what a key may do (its desks and its
//! scope). The randomness comes in as an argument; nothing here touches the store.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What every key's text starts with, so that a leaked key is recognisable (secret scanners).
pub const PREFIX: &str = "loket_";
/// Bytes of randomness in a key's secret (shown as twice as many hex digits).
pub const SECRET_BYTES: usize = 32;

/// What a key may do: read only, or read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// A stored key, without its secret: who it is, what it may see and do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: i64,
    pub name: String,
    pub desks: Vec<String>,
    pub scope: Scope,
}

impl Grant {
    /// Whether the key may see `desk`'s tickets.
    pub fn sees(&self, desk: &str) -> bool {
        self.desks.iter().any(|d| d == desk)
    }

    pub fn may_write(&self) -> bool {
        self.scope == Scope::Write
    }
}

/// A presented key split into the row it names and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: i64,
    pub secret: &'a str,
}

/// A fresh secret from `random` bytes: lower-case hex.
pub fn secret_of(random: [u8; SECRET_BYTES]) -> String {
    hex::encode(random)
}

/// The key's text as the client sends it: `loket_<id>_<secret>`.
pub fn key_text(id: i64, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// What the store keeps of a secret: its SHA-256, hex.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Reads a key's text (from `Authorization: Bearer …`); None when it is not one of ours.
pub fn parse(text: &str) -> Option<Presented<'_>> {
    let rest = text.trim().strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id: i64 = id.parse().ok().filter(|n| *n > 0)?;
    let ok =
        secret.len() == SECRET_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(Presented { id, secret })
}

/// Whether `secret` is the one whose hash is `stored`, compared in constant time.
pub fn matches(secret: &str, stored: &str) -> bool {
    let given = hash(secret);
    given.len() == stored.len() && given.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The key in an `Authorization` header value: `Bearer <key>` (the scheme case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_and_only_its_own_secret_matches() {
        let secret = secret_of([7u8; SECRET_BYTES]);
        let text = key_text(42, &secret);
        assert!(text.starts_with("loket_42_"));
        let p = parse(&text).expect("our own key parses");
        assert_eq!(p, Presented { id: 42, secret: &secret });
        let stored = hash(&secret);
        assert_eq!(stored.len(), 64);
        assert_ne!(stored, secret, "the store never keeps the secret itself");
        assert!(matches(p.secret, &stored));
        let other = secret_of([8u8; SECRET_BYTES]);
        assert!(!matches(&other, &stored));
        assert!(!matches(p.secret, ""));
    }

    #[test]
    fn malformed_keys_are_not_read() {
        let good = secret_of([0xab; SECRET_BYTES]);
        for bad in [
            String::new(),
            "loket_".into(),
            format!("loket_x_{good}"),
            format!("loket_0_{good}"),
            format!("loket_-3_{good}"),
            format!("loket_3_{}", &good[..63]),
            format!("loket_3_{good}0"),
            format!("loket_3_{}", good.to_uppercase()),
            format!("other_3_{good}"),
            format!("loket_3{good}"),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?} read as a key");
        }
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn a_grant_sees_only_its_desks_and_writes_only_with_write() {
        let g = Grant { id: 1, name: "glpi".into(), desks: vec!["hero".into()], scope: Scope::Read };
        assert!(g.sees("hero") && !g.sees("hai"));
        assert!(!g.may_write());
        assert!(Grant { scope: Scope::Write, ..g }.may_write());
        assert_eq!(Scope::parse("write"), Some(Scope::Write));
        assert_eq!(Scope::parse("admin"), None);
    }
}
