//! The stored refresh token, sealed: XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) with a
//! 32-byte key from the environment and a random 24-byte nonce per write; the credential's key is
//! the associated data, so a sealed token copied onto another credential's row does not open.
//! Stored text: `v1:` + base64(nonce ‖ ciphertext).

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

const PREFIX: &str = "v1:";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the stored refresh token does not open with this key (was LOKET_OAUTH_KEY changed?)")]
    Open,
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// A key written as 64 hex digits.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Seals `plain` for the credential `aad`.
pub fn seal(key: &[u8; 32], aad: &str, plain: &str) -> Result<String, CryptoError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|e| CryptoError::Random(e.to_string()))?;
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plain.as_bytes(), aad: aad.as_bytes() })
        .map_err(|_| CryptoError::Random("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!("{PREFIX}{}", B64.encode(out)))
}

/// Opens what [`seal`] wrote for the same credential.
pub fn open(key: &[u8; 32], aad: &str, sealed: &str) -> Result<String, CryptoError> {
    let raw = sealed.strip_prefix(PREFIX).and_then(|b| B64.decode(b).ok()).ok_or(CryptoError::Open)?;
    if raw.len() < 24 + 16 {
        return Err(CryptoError::Open);
    }
    let (nonce, ct) = raw.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| CryptoError::Open)?;
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let plain = cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: aad.as_bytes() })
        .map_err(|_| CryptoError::Open)?;
    String::from_utf8(plain).map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_credential() {
        let key = parse_key(&"ab".repeat(32)).unwrap();
        let other = parse_key(&"cd".repeat(32)).unwrap();
        let a = seal(&key, "cred-a", "1.AQ-refresh").unwrap();
        let b = seal(&key, "cred-a", "1.AQ-refresh").unwrap();
        assert_ne!(a, b, "a fresh nonce every time");
        assert!(!a.contains("1.AQ-refresh"));
        assert_eq!(open(&key, "cred-a", &a).unwrap(), "1.AQ-refresh");
        assert_eq!(open(&other, "cred-a", &a), Err(CryptoError::Open));
        assert_eq!(open(&key, "cred-b", &a), Err(CryptoError::Open));
        assert_eq!(open(&key, "cred-a", "v1:!!"), Err(CryptoError::Open));
        assert!(parse_key("abc").is_none() && parse_key(&"zz".repeat(32)).is_none());
    }
}
