//! Outbox throughput to the local Postfix: `N` queued outbound mails (default 5,000: the
//! acknowledgements and agents' notifications of `N / 2` new tickets, queued by the pipeline with
//! no worker running) delivered by Loket's outbox worker (`src/outbox.rs`: up to
//! `outbound.concurrency` sends in flight over lettre's pooled SMTP connections, a finished send's
//! slot claimed again at once, the attempts recorded in the store; `LOKET_BENCH_OUTBOX_ROUNDS=1`
//! runs the earlier round shape instead, where a round waits for its slowest send), in mails per second until every row is `sent`. The reference,
//! measured in the same run before and after: a bare lettre loop sending the same messages (same
//! envelopes, same bytes) to the same Postfix at the same concurrency over a pool of the same
//! size, no store.
//!
//! It needs the private servers of `scripts/testenv` (`LOKET_TEST_SMTP_PORT`);
//! `scripts/bench-outbox.sh` starts them and runs `cargo bench --bench outbox`
//! (`LOKET_BENCH_OUTBOX_N`, `LOKET_BENCH_OUTBOX_CONCURRENCY`, `LOKET_BENCH_OUTBOX_SYNC` =
//! `full`|`normal` adjust it). Under `cargo test` (no `--bench`) it delivers 60 mails both ways and
//! checks every row is sent once, or says why it skipped when the servers' variables are missing.

#[path = "../tests/common/hero.rs"]
mod hero;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hero::Hero;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};
use loket::channel::chat::ChatClients;
use loket::config::Config;
use loket::outbox::OutboxWorker;
use loket::pipeline::{Action, Incoming};
use loket::store::{self, Store};

/// One queued mail as the bare loop sends it.
struct Mail {
    sender: String,
    recipients: Vec<String>,
    raw: Vec<u8>,
}

fn env_num<T: std::str::FromStr>(k: &str, default: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn count(store: &Store, status: &str) -> i64 {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE status = $1")
        .bind(status)
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::Row::try_get(&row, "n").unwrap()
}

/// A HERO desk with one agent in its first-line group on a fresh SQLite store, `tickets` new
/// requests through the pipeline (64 per transaction), so each queues an acknowledgement and an
/// agents' notification. Returns the worker's configuration and the store.
async fn queue(
    dir: &std::path::Path,
    tickets: usize,
    smtp_port: &str,
    concurrency: usize,
    sync: &str,
) -> (Config, Store) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let stamp = loket::now_ms() % 1_000_000_000;
    let tag = format!("ob{}x{stamp}", std::process::id());
    let storage = format!("url = \"sqlite://{}\"\nsqlite_synchronous = \"{sync}\"\n", dir.join("loket.db").display());
    let out = format!(
        "transport = \"smtp\"\nconcurrency = {concurrency}\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n"
    );
    let desk_address = format!("{tag}-hero@desk.test");
    let desk = format!(
        "[[desk.group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
         [[desk.agent]]\naddress = \"{tag}-agus@desk.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n"
    );
    // Agents' tokens need a secret: made in this file on first load.
    let sections = format!(
        "[limits]\nauto_replies_per_sender_per_hour = 1000000\nnew_tickets_per_sender_per_hour = 1000000\n\
         agent_notifications_per_sender_per_hour = 1000000\n[security]\ntoken_secret_file = \"{}\"\n",
        dir.join("token-secret").display()
    );
    let hero = Hero {
        storage: &storage,
        outbound: &out,
        sections: &sections,
        desk: &desk,
        address: &desk_address,
        ..Default::default()
    };
    let (pipeline, store) = hero.pipeline(&repo, dir).await;
    let mails: Vec<Vec<u8>> = (0..tickets)
        .map(|i| {
            format!(
                "From: Peminta {i} <{tag}-r{r}@example.test>\r\nTo: {desk_address}\r\nSubject: Outbox {tag} {i}\r\n\
                 Message-ID: <{tag}-{i}@example.test>\r\nDate: Mon, 5 Jan 2026 09:00:00 +0700\r\n\r\n\
                 Halaman website kemendag error 500 sejak pagi (permintaan {i}).\r\n",
                r = i % 50
            )
            .into_bytes()
        })
        .collect();
    for chunk in mails.chunks(64) {
        let now = loket::now_ms();
        let items: Vec<Incoming<'_>> = chunk.iter().map(|raw| Incoming { raw, now }).collect();
        for out in pipeline.process_batch("hero", &items).await {
            assert_eq!(out.expect("pipeline").action, Action::Created);
        }
    }
    let cfg = Config::load(&dir.join("loket.toml")).unwrap();
    (cfg, store)
}

/// The queued mails' envelopes and bytes, read through the worker's own claim with a lease that
/// has run out by the time the worker starts (so the worker claims every row afresh).
async fn read_queue(store: &Store, n: usize) -> Vec<Mail> {
    let now = loket::now_ms();
    let items = store::claim_outbox(store, "bench-reader", now, now + 1, n as i64 + 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    items.into_iter().map(|i| Mail { sender: i.sender, recipients: i.recipients, raw: i.raw }).collect()
}

/// Loket's worker delivering every pending row; (seconds, rows sent).
async fn loket_worker(cfg: &Config, store: &Store, n: usize) -> (f64, i64) {
    let worker = OutboxWorker::new(
        &cfg.outbound,
        store.clone(),
        ChatClients::default(),
        Arc::new(tokio::sync::Notify::new()),
        "bench-worker".into(),
    )
    .unwrap();
    let worker = Arc::new(worker);
    let start = Instant::now();
    let attempted = if std::env::var_os("LOKET_BENCH_OUTBOX_ROUNDS").is_some() {
        // The earlier shape, for comparison: a round waits for its slowest send.
        let mut attempted = 0;
        loop {
            match worker.deliver_due().await.expect("outbox round") {
                0 => break attempted,
                k => attempted += k,
            }
        }
    } else {
        // The daemon's way: sends kept in flight until nothing is due and nothing is in flight.
        worker.deliver_all_due(&tokio_util::sync::CancellationToken::new()).await.expect("outbox")
    };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(attempted, n, "the worker attempted each row once");
    (secs, count(store, "sent").await)
}

/// The reference: the same mails sent by `concurrency` tasks sharing one pooled lettre transport
/// of `concurrency` connections; seconds.
async fn bare_lettre(port: u16, mails: &Arc<Vec<Mail>>, concurrency: usize) -> f64 {
    let smtp: AsyncSmtpTransport<Tokio1Executor> = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .pool_config(PoolConfig::new().max_size(concurrency as u32))
        .build();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (smtp, mails, next) = (smtp.clone(), mails.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(m) = mails.get(i) else { break };
                    let to = m.recipients.iter().map(|r| r.parse().unwrap()).collect();
                    let env = Envelope::new(Some(m.sender.parse().unwrap()), to).unwrap();
                    smtp.send_raw(&env, &m.raw).await.expect("bare lettre send");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let Ok(smtp_port) = std::env::var("LOKET_TEST_SMTP_PORT") else {
        assert!(!bench, "LOKET_TEST_SMTP_PORT is not set: run scripts/bench-outbox.sh");
        println!("outbox smoke check skipped: LOKET_TEST_SMTP_PORT is not set (run scripts/test.sh)");
        return;
    };
    let n: usize = if bench { env_num("LOKET_BENCH_OUTBOX_N", 5000) } else { 60 };
    let concurrency: usize = env_num("LOKET_BENCH_OUTBOX_CONCURRENCY", 16);
    let sync = std::env::var("LOKET_BENCH_OUTBOX_SYNC").unwrap_or_else(|_| "full".into());
    let tickets = n.div_ceil(2);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cfg, store, mails) = rt.block_on(async {
        let (cfg, store) = queue(dir.path(), tickets, &smtp_port, concurrency, &sync).await;
        let mails = read_queue(&store, 2 * tickets).await;
        (cfg, store, Arc::new(mails))
    });
    let n = mails.len();
    assert_eq!(n, 2 * tickets, "each new request queues an acknowledgement and an agents' notification");
    let port: u16 = smtp_port.parse().unwrap();
    let (before, (worker_secs, sent), after) = rt.block_on(async {
        let before = bare_lettre(port, &mails, concurrency).await;
        let worker = loket_worker(&cfg, &store, n).await;
        let after = bare_lettre(port, &mails, concurrency).await;
        (before, worker, after)
    });
    assert_eq!(sent as usize, n, "every queued row is sent");
    let pending = rt.block_on(count(&store, "pending"));
    assert_eq!(pending, 0, "no row left pending");
    if !bench {
        println!("outbox smoke check: {n} rows sent by the worker, {n} mails twice by the bare loop");
        return;
    }
    let rate = |secs: f64| n as f64 / secs;
    let reference = rate(before).max(rate(after));
    println!(
        "outbox: {n} queued mails ({tickets} tickets × acknowledgement + agents' notification) to the local Postfix, \
         concurrency {concurrency}, SQLite synchronous={sync}"
    );
    let shape = if std::env::var_os("LOKET_BENCH_OUTBOX_ROUNDS").is_some() { "rounds" } else { "continuous" };
    println!("  Loket's outbox worker {:>7.0} mails/s  ({worker_secs:.2} s, {shape})", rate(worker_secs));
    println!(
        "  bare lettre loop      {:>7.0} mails/s before, {:.0} after  ({before:.2} s, {after:.2} s)",
        rate(before),
        rate(after)
    );
    println!("  ratio worker / best bare loop: {:.2}", rate(worker_secs) / reference);
}
