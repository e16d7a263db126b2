//! Loket's server-backed integration-test binary (feature `server-tests`). It talks to the private
//! Dovecot, Postfix and PostgreSQL that `scripts/test.sh` starts (their addresses come from
//! `LOKET_TEST_*` variables), and runs the real `loket` binary where a test is about the daemon or
//! the MTA pipe. Tests that need nothing but the repository live in the `golden` binary.

mod api;
mod blobs;
mod cc;
mod chat;
mod cli;
mod conversation;
mod corpus;
mod faults;
mod files;
mod harness;
mod http;
mod hygiene;
mod mail;
mod oauth;
#[path = "../common/poison.rs"]
mod poison;
mod privacy;
mod report;
mod routing;
mod scale;
mod sla;
mod store;
mod trust;
mod webhooks_out;
