//! The ways in and out. Inbound: [`imap`] (IDLE or polling), [`maildir`], the `loket ingest`
//! pipe (in `main.rs`), [`telegram`] (long polling or webhook) and [`whatsapp`] (webhook).
//! Outbound: [`transport`] (SMTP or `.eml` files) and the [`chat`] clients, used only by the
//! outbox worker.

pub mod chat;
pub mod deferral;
pub mod imap;
pub mod lease;
pub mod maildir;
pub mod telegram;
pub mod tls;
pub mod transport;
pub mod whatsapp;
