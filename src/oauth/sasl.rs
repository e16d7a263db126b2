//! The SASL messages that carry a bearer token, and the IMAP authenticator that sends them.
//! XOAUTH2 (Google's and Microsoft's): `user=U ^A auth=Bearer T ^A ^A`. OAUTHBEARER (RFC 7628):
//! the GS2 header `n,a=U,` (`,` written `=2C`, `=` written `=3D`), then `host=`, `port=`,
//! `auth=Bearer T`, each ended by ^A, and a final ^A. A refused token gets a JSON challenge
//! (`{"status":"401",…}` or `{"status":"invalid_token"}`) that the client must answer (empty for
//! XOAUTH2, ^A for OAUTHBEARER) before the server's tagged NO; the authenticator keeps it so the
//! error names what the server said.

use std::sync::{Arc, Mutex};

use super::config::Mechanism;

/// The XOAUTH2 initial response (not yet base64).
pub fn xoauth2(user: &str, token: &str) -> Vec<u8> {
    format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// The OAUTHBEARER initial response (not yet base64).
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> Vec<u8> {
    let saslname = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={saslname},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// Answers an IMAP `AUTHENTICATE` exchange: the token first, then (if the server refuses it with
/// a challenge) the mechanism's empty answer, keeping the challenge in `refusal`.
#[derive(Debug, Clone)]
pub struct TokenAuthenticator {
    first: Option<Vec<u8>>,
    mechanism: Mechanism,
    /// The server's error challenge, decoded, if it sent one.
    pub refusal: Arc<Mutex<Option<String>>>,
}

impl TokenAuthenticator {
    pub fn new(mechanism: Mechanism, user: &str, host: &str, port: u16, token: &str) -> Self {
        let first = match mechanism {
            Mechanism::Xoauth2 => xoauth2(user, token),
            Mechanism::Oauthbearer => oauthbearer(user, host, port, token),
        };
        Self { first: Some(first), mechanism, refusal: Arc::default() }
    }
}

impl async_imap::Authenticator for TokenAuthenticator {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if let Some(first) = self.first.take() {
            return first;
        }
        let text: String = String::from_utf8_lossy(challenge).chars().take(300).collect();
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
        match self.mechanism {
            Mechanism::Xoauth2 => Vec::new(),
            Mechanism::Oauthbearer => vec![0x01],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::Authenticator;

    #[test]
    fn messages_are_byte_exact() {
        assert_eq!(xoauth2("a@b.test", "T"), b"user=a@b.test\x01auth=Bearer T\x01\x01");
        assert_eq!(
            oauthbearer("a,=b@c.test", "imap.example", 993, "T"),
            b"n,a=a=2C=3Db@c.test,\x01host=imap.example\x01port=993\x01auth=Bearer T\x01\x01"
        );
    }

    #[test]
    fn a_refusal_is_answered_and_kept() {
        let mut a = TokenAuthenticator::new(Mechanism::Oauthbearer, "u@x.test", "h", 1, "T");
        assert!(a.process(b"").starts_with(b"n,a=u@x.test,"));
        assert_eq!(a.process(br#"{"status":"invalid_token"}"#), vec![1]);
        assert_eq!(a.refusal.lock().unwrap().as_deref(), Some(r#"{"status":"invalid_token"}"#));
        let mut x = TokenAuthenticator::new(Mechanism::Xoauth2, "u@x.test", "h", 1, "T");
        x.process(b"");
        assert!(x.process(b"{}").is_empty());
    }
}
