//! Routing benchmark: all four desks' rules loaded (the repository's `loket.toml`, `rules/`,
//! `seeds/`), one thread, the labelled dev messages routed over and over. `cargo bench --bench
//! routing` prints messages per second (`LOKET_BENCH_EXPLAIN=1`: with the reasons, as the daemon
//! routes); under `cargo test` it routes each message once and checks
//! every answer is a route of the message's desk. The router is the shipped one: the rules and
//! the second opinion it learns from `rules/labelled/` (`routing::examples`).
//! `LOKET_BENCH_OPINION=1` also routes the messages with the rules alone, in the same run, first.
//! `LOKET_BENCH_ROUTING_MAILS=N` routes, instead of the dev set's short messages, the new requests
//! among the first N of the benchmark generator's mails (`scripts/gen_emails.py --seed 42`, 1-4 KB
//! of text each; `LOKET_BENCH_MAIL_DIR` as in the pipeline bench), parsed as the pipeline parses
//! them, at HERO's inbox: the mails the pipeline and Maildir benches route.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use loket::config::Config;
use loket::routing::eval::{Labelled, explain, predict};

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(&repo.join("loket.toml")).unwrap_or_else(|e| panic!("{e}"));
    let msgs = match std::env::var("LOKET_BENCH_ROUTING_MAILS").ok().and_then(|n| n.parse().ok()) {
        Some(n) => generated(n),
        None => {
            let text = std::fs::read_to_string(repo.join("rules/labelled/routing-dev.jsonl"))
                .expect("rules/labelled/routing-dev.jsonl");
            text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
        }
    };
    let desks: Vec<_> = msgs
        .iter()
        .map(|m| {
            let d = config.desk(&m.desk).unwrap();
            (d, d.inboxes[0].address.clone())
        })
        .collect();
    let bench = std::env::args().any(|a| a == "--bench");
    // `LOKET_BENCH_EXPLAIN=1`: with the reasons, as the daemon routes a new ticket (they are its
    // `routed` event); otherwise without them, as `rules eval` and `rules suggest` route.
    let with_reasons = std::env::var("LOKET_BENCH_EXPLAIN").is_ok_and(|v| v == "1");
    let decide = if with_reasons { explain } else { predict };
    let rounds =
        if bench { std::env::var("LOKET_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000) } else { 1 };
    let opinion = std::env::var("LOKET_BENCH_OPINION").is_ok_and(|v| v == "1");
    // Only for the comparison: a second router, the same rules without their second opinion.
    let rules_alone = opinion.then(|| {
        let mut c = Config::load(&repo.join("loket.toml")).unwrap_or_else(|e| panic!("{e}"));
        std::sync::Arc::get_mut(&mut c.router).expect("not shared").without_opinions();
        c
    });
    let bytes: usize = msgs.iter().map(|m| m.body.len() + m.subject.as_deref().unwrap_or("").len()).sum();
    for with_opinion in if opinion { &[false, true][..] } else { &[true][..] } {
        let start = Instant::now();
        let mut routed = 0usize;
        let mut n = 0usize;
        for _ in 0..rounds {
            for (m, (desk, inbox)) in msgs.iter().zip(&desks) {
                let router = match (&rules_alone, with_opinion) {
                    (Some(alone), false) => &alone.router,
                    _ => &config.router,
                };
                let (p, _) = decide(router, &desk.catalogue, inbox, m);
                assert!(p.category == "triage" || desk.catalogue.subcategory(&p.category, &p.subcategory).is_some());
                routed += (p.category != "triage") as usize;
                n += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        if bench {
            println!(
                "routing benchmark{}{}: {n} messages ({} distinct, mean {} bytes), 4 desks' rules, 1 thread: {:.0} messages/s ({:.1} µs each)",
                if with_reasons { " with reasons" } else { "" },
                if *with_opinion { "" } else { " (the rules alone)" },
                msgs.len(),
                bytes / msgs.len(),
                n as f64 / secs,
                secs * 1e6 / n as f64
            );
        } else {
            println!(
                "routing smoke check{}: {n} messages, {routed} routed",
                if *with_opinion { "" } else { " (the rules alone)" }
            );
        }
    }
}

/// The new requests (no thread reference) among the first `n` generated mails, as HERO's messages.
fn generated(n: usize) -> Vec<Labelled> {
    common::generate(&common::mail_dir(), n)
        .iter()
        .filter_map(|raw| loket::mail::parse::parse(raw).ok())
        .filter(|m| m.in_reply_to.is_empty() && m.references.is_empty())
        .enumerate()
        .map(|(i, m)| Labelled {
            id: format!("g{i}"),
            desk: "hero".into(),
            channel: None,
            from: None,
            subject: Some(m.subject),
            body: m.text,
            expected: None,
        })
        .collect()
}
