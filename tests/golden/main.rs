//! Loket's no-server test binary: everything here needs nothing but the repository (no Dovecot,
//! Postfix or PostgreSQL, no `LOKET_TEST_*` variables, nothing beside the checkout), so plain
//! `cargo test` runs it on a fresh clone. Messy real-world mail (`tests/corpus/`) is checked as
//! golden files (`tests/golden/{mail,trim}/`, see `runner.rs`); routing and the catalogues are
//! measured on `tests/fixtures/eval/`; `repo_only.rs` fails when a test reads outside the
//! repository.

mod batch;
mod bounces;
mod catalogue;
mod conversations;
mod corpus_run;
#[path = "../common/hero.rs"]
mod hero;
mod ingest;
mod learning;
mod mail;
mod outbox_flow;
#[path = "../common/poison.rs"]
mod poison;
mod repo_only;
mod routing;
mod runner;
mod send_rate;
mod templates;
mod trimming;
