//! The ways in and out. Inbound: [`imap`] (IDLE or polling), [`maildir`], the `loket ingest`
//! pipe (in `main.rs`), [`telegram`] (long polling or webhook) and [`whatsapp`] (webhook).
//! Outbound: [`transport`] (SMTP or `.eml` files) and the [`chat`] clients, used only by the
//! outbox worker.

pub mod chat;
pub mod deferral;
pub mod graph;
pub mod imap;
pub mod lease;
pub mod maildir;
pub mod oauth;
pub mod telegram;
pub mod tls;
pub mod transport;
pub mod webhook;
pub mod whatsapp;

use crate::pipeline::PipelineError;
use crate::store::StoreError;

/// The bytes of mail one intake batch holds at most past its first message (a Maildir batch, an
/// IMAP fetch), so that 64 large mails are not all held at once.
pub(crate) const BATCH_BYTES: usize = 32 << 20;

/// The body of an HTTP answer, refused past `max` bytes, so a misbehaving server cannot fill
/// the memory. The error is reqwest's (the URL left off) or the answer's size.
pub(crate) async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a channel could not take in or deliver a message, and whether trying again can help. The
/// callers (the intake loops, the outbox worker, the webhooks) decide retry or give up from the
/// variant, never from the text. Texts are English and never hold a secret (tokens are cut out,
/// URLs left off).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The other side is away, slow or busy (network, timeout, flood control, SMTP 4xx, the store
    /// unavailable): the same request may succeed later.
    #[error("{0}")]
    Temporary(String),
    /// Trying again changes nothing (a refused recipient, a bot blocked by the user, a malformed
    /// payload or webhook body, a setup error such as an unreadable CA file).
    #[error("{0}")]
    Permanent(String),
}

impl ChannelError {
    pub fn temporary(message: impl Into<String>) -> Self {
        ChannelError::Temporary(message.into())
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        ChannelError::Permanent(message.into())
    }

    /// Whether the same request may succeed later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ChannelError::Temporary(_))
    }
}

impl From<StoreError> for ChannelError {
    fn from(e: StoreError) -> Self {
        if e.is_temporary() {
            ChannelError::temporary(format!("store: {e}"))
        } else {
            ChannelError::permanent(format!("store: {e}"))
        }
    }
}

impl From<PipelineError> for ChannelError {
    fn from(e: PipelineError) -> Self {
        if e.is_temporary() { ChannelError::temporary(e.to_string()) } else { ChannelError::permanent(e.to_string()) }
    }
}
