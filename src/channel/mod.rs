//! The ways in and out. Inbound: [`imap`] (IDLE or polling), [`maildir`], and the `loket ingest`
//! pipe (in `main.rs`). Outbound: [`transport`] (SMTP or `.eml` files), used only by the outbox
//! worker.

pub mod imap;
pub mod lease;
pub mod maildir;
pub mod tls;
pub mod transport;
