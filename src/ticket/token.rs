//! Signed tokens for agent replies. Every notification an agent gets carries, in its Message-ID,
//! an HMAC-SHA256 of (desk, ticket number, agent address) under the operator's secret. A reply
//! whose In-Reply-To/References carry a valid token for its sender may relay text and run
//! commands; anything else changes nothing (invariant 7).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in the token (80 bits; 20 hex characters).
const TOKEN_BYTES: usize = 10;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self { key: secret.to_vec() }
    }

    fn mac(&self, desk: &str, number: &str, agent: &str) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        for part in [desk, number, agent] {
            m.update(part.to_ascii_lowercase().as_bytes());
            m.update(&[0]);
        }
        m
    }

    pub fn token(&self, desk: &str, number: &str, agent: &str) -> String {
        hex::encode(&self.mac(desk, number, agent).finalize().into_bytes()[..TOKEN_BYTES])
    }

    /// Constant-time check of a token.
    pub fn verify(&self, desk: &str, number: &str, agent: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) if bytes.len() == TOKEN_BYTES => {
                self.mac(desk, number, agent).verify_truncated_left(&bytes).is_ok()
            }
            _ => false,
        }
    }

    /// The Message-ID (without brackets) of a notification to `agent` about ticket `number`.
    pub fn message_id(&self, desk: &str, number: &str, agent: &str, unique: &str, domain: &str) -> String {
        format!("loket.{}.{}.{}@{}", number.to_ascii_lowercase(), self.token(desk, number, agent), unique, domain)
    }
}

/// `(ticket number, token)` pairs found in Loket notification Message-IDs among `ids`.
pub fn tokens_in(ids: &[String]) -> Vec<(String, String)> {
    ids.iter()
        .filter_map(|id| {
            let local = id.split('@').next()?;
            let mut parts = local.split('.');
            (parts.next()? == "loket").then_some(())?;
            let number = parts.next()?.to_ascii_uppercase();
            let token = parts.next()?;
            (token.len() == TOKEN_BYTES * 2 && token.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| (number, token.to_string()))
        })
        .collect()
}

/// Whether `id` is the Message-ID of a signed notification (it carries some agent's token).
pub fn bears_token(id: &str) -> bool {
    !tokens_in(std::slice::from_ref(&id.to_string())).is_empty()
}

/// The ids among `ids` that may go in the thread headers of a mail to `recipient`: ids without a
/// token, and ids whose token is this very agent's own for `desk`. A requester, a participant or
/// another agent never receives an agent's token (invariant 7).
pub fn visible_to(ids: &[String], signer: Option<&Signer>, desk: &str, recipient: &str) -> Vec<String> {
    ids.iter()
        .filter(|id| {
            let found = tokens_in(std::slice::from_ref(*id));
            found.is_empty()
                || signer.is_some_and(|s| found.iter().all(|(number, token)| s.verify(desk, number, recipient, token)))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_ids_keep_only_the_recipients_own_token() {
        let s = Signer::new(b"secret-secret-16");
        let n = "A-HERO26000001";
        let a1 = s.message_id("hero", n, "a1@desk.test", "u1", "desk.test");
        let a2 = s.message_id("hero", n, "a2@desk.test", "u2", "desk.test");
        let plain = "loket.a-hero26000001.1767225600000.abc@desk.test".to_string();
        let theirs = "CAF00@mail.example".to_string();
        let ids = vec![theirs.clone(), a1.clone(), plain.clone(), a2.clone()];
        assert!(bears_token(&a1) && !bears_token(&plain) && !bears_token(&theirs));
        assert_eq!(visible_to(&ids, Some(&s), "hero", "budi@example.test"), vec![theirs.clone(), plain.clone()]);
        assert_eq!(visible_to(&ids, Some(&s), "hero", "a1@desk.test"), vec![theirs.clone(), a1, plain.clone()]);
        assert_eq!(visible_to(&ids, Some(&s), "hero", "a2@desk.test"), vec![theirs.clone(), plain.clone(), a2]);
        assert_eq!(visible_to(&ids, None, "hero", "a1@desk.test"), vec![theirs, plain]);
    }

    #[test]
    fn tokens_bind_desk_ticket_and_agent() {
        let s = Signer::new(b"secret");
        let t = s.token("hero", "A-HERO26000001", "agent1@desk.test");
        assert_eq!(t.len(), 20);
        assert!(s.verify("hero", "A-HERO26000001", "Agent1@Desk.test", &t));
        assert!(!s.verify("hero", "A-HERO26000002", "agent1@desk.test", &t));
        assert!(!s.verify("hero", "A-HERO26000001", "agent2@desk.test", &t));
        assert!(!s.verify("djpb", "A-HERO26000001", "agent1@desk.test", &t));
        assert!(!Signer::new(b"other").verify("hero", "A-HERO26000001", "agent1@desk.test", &t));
        assert!(!s.verify("hero", "A-HERO26000001", "agent1@desk.test", "zz"));
    }

    #[test]
    fn tokens_are_found_in_message_ids() {
        let s = Signer::new(b"k");
        let id = s.message_id("hero", "A-HERO26000001", "a@desk.test", "17", "desk.test");
        let found = tokens_in(&["other@x".to_string(), id.clone(), "loket.x.y@z".to_string()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "A-HERO26000001");
        assert!(s.verify("hero", &found[0].0, "a@desk.test", &found[0].1));
    }
}
