//! Loket: a ticket gateway daemon for IT service desks.
//!
//! Mail (IMAP, Maildir, an MTA pipe) comes in through [`channel`], goes through the [`pipeline`]
//! (parse → dedupe → loop guard → thread → route → apply, one store transaction per message) and
//! leaves as rows of the outbox, which [`outbox`] delivers. See ARCHITECTURE.md for the codemap and
//! the invariants.

pub mod allocator;
pub mod catalogue;
pub mod channel;
pub mod chat;
pub mod config;
pub mod domain;
pub mod http;
pub mod lazy_regex;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod outbox;
pub mod pipeline;
pub mod privacy;
pub mod report;
pub mod routing;
pub mod send_rate;
pub mod serve;
pub mod sla;
pub mod store;
pub mod templates;
pub mod ticket;
pub mod webhook;

/// Current time in milliseconds since the Unix epoch: the one place the wall clock is read for
/// stored timestamps. The pure core takes `now` as an argument instead.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An address as logs may show it at warn/info level: the first character of the local part and
/// the domain (`b***@kemenkeu.go.id`), never the whole address.
pub fn mask_address(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".to_string(),
    }
}
