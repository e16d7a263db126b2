//! End-to-end latency: requests submitted over SMTP to the private Postfix at steady rates
//! (`LOKET_BENCH_E2E_RATES`, default 10, 50 and 100 a second, each for `LOKET_BENCH_E2E_SECS`,
//! default 60; `LOKET_BENCH_E2E_CONCURRENCY` sets the outbox's `outbound.concurrency`, default
//! 16); the time from submission to the acknowledgement landing in the requester's
//! mailbox (the Maildir file Dovecot's LMTP wrote), p50, p95 and p99; requests never acknowledged
//! (lost) and acknowledged more than once (doubled, by the subject's request number and by
//! Message-ID); the agents' notifications counted the same way (each request makes two outbound
//! mails); and the daemon's resident memory: idle, the largest VmRSS sampled during the burst,
//! and VmHWM at the end. A fresh daemon and store for each rate, its inbox watched in IMAP IDLE.
//!
//! The reference, in the same run: the lab's own floor. Beside each request the same mail goes,
//! at the same moment, to a plain mailbox (Postfix → LMTP → Maildir, no Loket), and its latency
//! to arrival is measured the same way.
//!
//! It needs the private servers of `scripts/testenv` (`LOKET_TEST_*`); `scripts/bench-e2e.sh`
//! starts them and runs `cargo bench --bench e2e`. Under `cargo test` (no `--bench`) it sends 30
//! requests at 10 a second and checks every acknowledgement and notification arrives once.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/hero.rs"]
mod hero;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hero::Hero;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run scripts/test.sh or scripts/bench-e2e.sh"))
}

/// What arrived in a set of Maildirs for one run: per request number, each file's time and
/// Message-ID. Each file is read once.
#[derive(Default)]
struct Arrivals {
    read: HashSet<PathBuf>,
    by_request: HashMap<usize, Vec<(SystemTime, String)>>,
}

impl Arrivals {
    /// Reads the files new in `maildir` (new/ and cur/) whose subject names `E2E {tag} N`.
    fn scan(&mut self, maildir: &Path, tag: &str) {
        let needle = format!("E2E {tag} ");
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else { continue };
            for e in entries.flatten() {
                let path = e.path();
                if self.read.contains(&path) {
                    continue;
                }
                let (Ok(meta), Ok(raw)) = (e.metadata(), std::fs::read(&path)) else { continue };
                self.read.insert(path);
                let text = String::from_utf8_lossy(&raw);
                let header = text.split("\r\n\r\n").next().unwrap_or("");
                let field = |name: &str| {
                    header.lines().find(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name))
                };
                let Some(rest) = field("Subject:").and_then(|l| l.split(&needle).nth(1)) else { continue };
                let Ok(i) = rest.trim().parse::<usize>() else { continue };
                let id = field("Message-ID:").map(|l| l[11..].trim().to_string()).unwrap_or_default();
                let at = meta.modified().unwrap_or_else(|_| SystemTime::now());
                self.by_request.entry(i).or_default().push((at, id));
            }
        }
    }

    /// (requests with at least one file, requests with more than one, files sharing a
    /// Message-ID with another).
    fn counts(&self) -> (usize, usize, usize) {
        let doubled = self.by_request.values().filter(|v| v.len() > 1).count();
        let mut ids = HashSet::new();
        let same_id = self.by_request.values().flatten().filter(|(_, id)| !ids.insert(id.clone())).count();
        (self.by_request.len(), doubled, same_id)
    }

    /// Latency of each request's first file, sorted.
    fn latencies(&self, sent: &[SystemTime]) -> Vec<Duration> {
        let mut lat: Vec<Duration> = self
            .by_request
            .iter()
            .filter_map(|(i, v)| {
                let first = v.iter().map(|(at, _)| *at).min()?;
                Some(first.duration_since(*sent.get(*i)?).unwrap_or(Duration::ZERO))
            })
            .collect();
        lat.sort();
        lat
    }
}

struct RunResult {
    n: usize,
    sent: Vec<SystemTime>,
    acks: Arrivals,
    notes: Arrivals,
    floor: Arrivals,
    idle_rss: u64,
    max_rss: u64,
    hwm: u64,
}

/// One rate: a fresh daemon, `n` requests at `rate` a second (and each one's copy to the plain
/// mailbox), then waits until everything arrived or a generous deadline passed.
fn run(n: usize, rate: f64) -> RunResult {
    let test_dir = PathBuf::from(var("LOKET_TEST_DIR"));
    let (imap_port, smtp_port) = (var("LOKET_TEST_IMAP_PORT"), var("LOKET_TEST_SMTP_PORT"));
    var("LOKET_TEST_MAIL_PASSWORD");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() % 1_000_000_000;
    let tag = format!("e2e{}x{stamp}", std::process::id());
    let desk = format!("{tag}-hero@desk.test");
    let (agent, plain) = (format!("{tag}-agus@desk.test"), format!("{tag}-plain@other.test"));
    // Up to 50 requesters (the desk's per-sender limits are lifted), so the watcher reads few folders.
    let senders = n.div_ceil(10).clamp(1, 50);
    let db = format!("url = \"sqlite://{}\"\n", dir.path().join("loket.db").display());
    // `outbound.concurrency`: the default (16) unless `LOKET_BENCH_E2E_CONCURRENCY` sets it.
    let concurrency = std::env::var("LOKET_BENCH_E2E_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|c| format!("concurrency = {c}\n"))
        .unwrap_or_default();
    let out = format!(
        "transport = \"smtp\"\npoll_interval_ms = 200\n{concurrency}[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n"
    );
    let imap = format!(
        "[desk.inbox.imap]\nhost = \"127.0.0.1\"\nport = {imap_port}\ntls = \"none\"\nuser = \"{desk}\"\n\
         password_env = \"LOKET_TEST_MAIL_PASSWORD\"\nprocessed_folder = \"Processed\"\n"
    );
    let agents = format!(
        "[[desk.group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
         [[desk.agent]]\naddress = \"{agent}\"\nname = \"Agus\"\ngroups = [\"l1\"]\n"
    );
    // Agents' tokens need a secret: made in this file on first load.
    let sections = format!(
        "[limits]\nauto_replies_per_sender_per_hour = 1000000\nnew_tickets_per_sender_per_hour = 1000000\n\
         agent_notifications_per_sender_per_hour = 1000000\n[security]\ntoken_secret_file = \"{}\"\n",
        dir.path().join("token-secret").display()
    );
    let config = Hero {
        storage: &db,
        outbound: &out,
        sections: &sections,
        desk: &agents,
        address: &desk,
        inbox: &imap,
        ..Default::default()
    }
    .toml(&repo);
    let cfg_path = dir.path().join("loket.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = common::spawn_serve(&cfg_path, &log_path, "info,sqlx=warn");
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = rt.block_on(async {
        let start = Instant::now();
        while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("IMAP connected") {
            assert!(start.elapsed() < Duration::from_secs(60), "the daemon did not connect to IMAP");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Settled and idle: watching one inbox in IDLE.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (idle_rss, _) = common::memory(pid);
        let smtp: AsyncSmtpTransport<Tokio1Executor> =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1").port(smtp_port.parse().unwrap()).build();
        let mailbox = |address: &str| {
            let (user, domain) = address.split_once('@').unwrap();
            test_dir.join(format!("mail/{domain}/{user}/Maildir"))
        };
        let requesters: Vec<PathBuf> =
            (0..senders).map(|k| mailbox(&format!("{tag}-r{k}@example.test"))).collect();
        let (agent_box, plain_box) = (mailbox(&agent), mailbox(&plain));
        let max_rss = Arc::new(Mutex::new(0u64));
        let watcher = {
            let (tag, max_rss) = (tag.clone(), max_rss.clone());
            tokio::spawn(async move {
                let (mut acks, mut notes, mut floor) = (Arrivals::default(), Arrivals::default(), Arrivals::default());
                let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate) + Duration::from_secs(120);
                let mut rounds = 0u64;
                loop {
                    let complete =
                        acks.by_request.len() >= n && notes.by_request.len() >= n && floor.by_request.len() >= n;
                    if complete || Instant::now() >= deadline {
                        break;
                    }
                    {
                        let mut m = max_rss.lock().unwrap();
                        *m = (*m).max(common::memory(pid).0);
                    }
                    for m in &requesters {
                        acks.scan(m, &tag);
                    }
                    notes.scan(&agent_box, &tag);
                    floor.scan(&plain_box, &tag);
                    rounds += 1;
                    // Latency is the files' modification time, so this only paces the reading.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // A last look for late doubles, a moment after everything arrived.
                if rounds > 0 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    for m in &requesters {
                        acks.scan(m, &tag);
                    }
                    notes.scan(&agent_box, &tag);
                }
                (acks, notes, floor)
            })
        };
        let sent = Arc::new(Mutex::new(vec![SystemTime::UNIX_EPOCH; n]));
        let mut submissions = Vec::with_capacity(n);
        let t0 = tokio::time::Instant::now();
        for i in 0..n {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
            let from = format!("{tag}-r{}@example.test", i % senders);
            let mail = |to: &str, id: &str| {
                format!(
                    "From: Peminta {i} <{from}>\r\nTo: {to}\r\nSubject: E2E {tag} {i}\r\nMessage-ID: <{id}@example.test>\r\n\
                     Date: Mon, 5 Jan 2026 09:00:00 +0700\r\n\r\nHalaman website kemendag error 500 sejak pagi (permintaan {i}).\r\n"
                )
            };
            let to_desk = mail(&desk, &format!("{tag}-{i}"));
            let to_plain = mail(&plain, &format!("{tag}-{i}-plain"));
            let env_desk = Envelope::new(Some(from.parse().unwrap()), vec![desk.parse().unwrap()]).unwrap();
            let env_plain = Envelope::new(Some(from.parse().unwrap()), vec![plain.parse().unwrap()]).unwrap();
            let (smtp, sent) = (smtp.clone(), sent.clone());
            sent.lock().unwrap()[i] = SystemTime::now();
            submissions.push(tokio::spawn(async move {
                let (a, b) = tokio::join!(
                    smtp.send_raw(&env_desk, to_desk.as_bytes()),
                    smtp.send_raw(&env_plain, to_plain.as_bytes())
                );
                a.expect("SMTP submission to the desk");
                b.expect("SMTP submission to the plain mailbox");
            }));
        }
        for s in submissions {
            s.await.unwrap();
        }
        let (acks, notes, floor) = watcher.await.unwrap();
        let (_, hwm) = common::memory(pid);
        let max_rss = *max_rss.lock().unwrap();
        let sent = sent.lock().unwrap().clone();
        RunResult { n, sent, acks, notes, floor, idle_rss, max_rss, hwm }
    });
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();
    result
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        let r = run(30, 10.0);
        let (acks, doubled, same_id) = r.acks.counts();
        let (notes, notes_doubled, _) = r.notes.counts();
        assert_eq!(acks, r.n, "every acknowledgement lands in the requester's mailbox ({acks} of {})", r.n);
        assert_eq!(notes, r.n, "every request notifies the agent ({notes} of {})", r.n);
        assert_eq!(r.floor.counts().0, r.n, "every copy lands in the plain mailbox");
        assert_eq!((doubled, same_id, notes_doubled), (0, 0, 0), "nothing arrives twice");
        println!(
            "e2e smoke check: {} acknowledgements and notifications delivered once, p50 {:?}",
            r.n,
            common::pct(&r.acks.latencies(&r.sent), 0.5)
        );
        return;
    }
    let rates: Vec<f64> = std::env::var("LOKET_BENCH_E2E_RATES")
        .unwrap_or_else(|_| "10,50,100".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: f64 = std::env::var("LOKET_BENCH_E2E_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60.0);
    println!(
        "end to end: requests over SMTP → acknowledgement in the requester's Maildir (IMAP IDLE), each beside a copy \
         to a plain mailbox (the lab's floor, same moment)"
    );
    for rate in rates {
        let n = (rate * secs).round().max(1.0) as usize;
        let r = run(n, rate);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let lat = r.acks.latencies(&r.sent);
        let floor = r.floor.latencies(&r.sent);
        let (acks, doubled, same_id) = r.acks.counts();
        let (notes, notes_doubled, notes_same_id) = r.notes.counts();
        println!(
            "  {rate}/s for {secs} s ({n} requests; load average {}):",
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
        println!(
            "    Loket  p50 {:>6.0} ms  p95 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms",
            ms(common::pct(&lat, 0.5)),
            ms(common::pct(&lat, 0.95)),
            ms(common::pct(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default())
        );
        println!(
            "    floor  p50 {:>6.0} ms  p95 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms  ({} of {n} arrived)",
            ms(common::pct(&floor, 0.5)),
            ms(common::pct(&floor, 0.95)),
            ms(common::pct(&floor, 0.99)),
            ms(floor.last().copied().unwrap_or_default()),
            r.floor.counts().0
        );
        println!(
            "    acknowledgements: {acks} of {n} ({} missing when the wait ended: lost, or late past {secs} s + 120 s), \
             {doubled} doubled, {same_id} repeated Message-IDs; \
             agents' notifications: {notes} of {n}, {notes_doubled} doubled, {notes_same_id} repeated Message-IDs",
            n - acks.min(n)
        );
        println!(
            "    daemon memory: {:.1} MiB idle, {:.1} MiB largest VmRSS sampled, {:.1} MiB VmHWM",
            r.idle_rss as f64 / 1024.0,
            r.max_rss as f64 / 1024.0,
            r.hwm as f64 / 1024.0
        );
    }
}
