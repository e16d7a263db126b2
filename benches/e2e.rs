//! End-to-end latency: mails submitted over SMTP to the private Postfix at a steady rate
//! (default 1,000 at 10 a second); the time from submission to the acknowledgement landing in the
//! requester's mailbox (the Maildir file Dovecot's LMTP wrote), p50, p95 and p99; and the
//! daemon's resident memory when idle and at its peak during the burst.
//!
//! It needs the private servers of `scripts/testenv` (`LOKET_TEST_*`); `scripts/bench-e2e.sh`
//! starts them and runs `cargo bench --bench e2e`. Under `cargo test` (no `--bench`) it sends 30
//! mails and checks every acknowledgement arrives.

#[path = "../tests/common/hero.rs"]
mod hero;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use hero::Hero;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run scripts/test.sh or scripts/bench-e2e.sh"))
}

/// (VmRSS, VmHWM) of a process in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Subjects of the acknowledgements in `maildir` (new/ and cur/) with the file's time.
fn arrivals(maildir: &Path, tag: &str, seen: &mut HashMap<usize, SystemTime>) {
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let Ok(raw) = std::fs::read(e.path()) else { continue };
            let text = String::from_utf8_lossy(&raw);
            let Some(line) = text.lines().find(|l| l.starts_with("Subject:")) else { continue };
            let Some(rest) = line.split(&format!("E2E {tag} ")).nth(1) else { continue };
            if let Ok(i) = rest.trim().parse::<usize>() {
                seen.entry(i).or_insert(meta.modified().unwrap_or_else(|_| SystemTime::now()));
            }
        }
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize =
        if bench { std::env::var("LOKET_BENCH_E2E_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1000) } else { 30 };
    let rate: f64 = std::env::var("LOKET_BENCH_E2E_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let test_dir = PathBuf::from(var("LOKET_TEST_DIR"));
    let (imap_port, smtp_port) = (var("LOKET_TEST_IMAP_PORT"), var("LOKET_TEST_SMTP_PORT"));
    var("LOKET_TEST_MAIL_PASSWORD");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() % 1_000_000_000;
    let tag = format!("e2e{}x{stamp}", std::process::id());
    let desk = format!("{tag}-hero@desk.test");
    let senders = n.div_ceil(10).max(1);
    let db = format!("url = \"sqlite://{}\"\n", dir.path().join("loket.db").display());
    let out = format!(
        "transport = \"smtp\"\npoll_interval_ms = 200\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n"
    );
    let imap = format!(
        "[desk.inbox.imap]\nhost = \"127.0.0.1\"\nport = {imap_port}\ntls = \"none\"\nuser = \"{desk}\"\n\
         password_env = \"LOKET_TEST_MAIL_PASSWORD\"\nprocessed_folder = \"Processed\"\n"
    );
    let config = Hero { storage: &db, outbound: &out, address: &desk, inbox: &imap, ..Default::default() }.toml(&repo);
    let cfg_path = dir.path().join("loket.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&cfg_path)
        .arg("serve")
        .env("LOKET_LOG", "info,sqlx=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn loket serve");
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
        let (idle_rss, _) = memory(pid);
        let smtp: AsyncSmtpTransport<Tokio1Executor> =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1").port(smtp_port.parse().unwrap()).build();
        let maildirs: Vec<PathBuf> = (0..senders)
            .map(|k| test_dir.join(format!("mail/example.test/{tag}-r{k}/Maildir")))
            .collect();
        let watcher = {
            let (maildirs, tag) = (maildirs.clone(), tag.clone());
            tokio::spawn(async move {
                let mut seen = HashMap::new();
                let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate) + Duration::from_secs(180);
                while seen.len() < n && Instant::now() < deadline {
                    for m in &maildirs {
                        arrivals(m, &tag, &mut seen);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                seen
            })
        };
        let mut sent = vec![SystemTime::UNIX_EPOCH; n];
        let t0 = tokio::time::Instant::now();
        for (i, slot) in sent.iter_mut().enumerate() {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
            let from = format!("{tag}-r{}@example.test", i % senders);
            let raw = format!(
                "From: Peminta {i} <{from}>\r\nTo: {desk}\r\nSubject: E2E {tag} {i}\r\nMessage-ID: <{tag}-{i}@example.test>\r\n\
                 Date: Mon, 5 Jan 2026 09:00:00 +0700\r\n\r\nHalaman website kemendag error 500 sejak pagi (permintaan {i}).\r\n"
            );
            *slot = SystemTime::now();
            let env = Envelope::new(Some(from.parse().unwrap()), vec![desk.parse().unwrap()]).unwrap();
            smtp.send_raw(&env, raw.as_bytes()).await.expect("SMTP submission");
        }
        let seen = watcher.await.unwrap();
        let (_, peak) = memory(pid);
        (idle_rss, peak, sent, seen)
    });
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();
    let (idle_rss, peak, sent, seen) = result;
    let mut lat: Vec<Duration> =
        seen.iter().map(|(i, at)| at.duration_since(sent[*i]).unwrap_or(Duration::ZERO)).collect();
    lat.sort();
    assert_eq!(seen.len(), n, "every acknowledgement lands in the requester's mailbox ({} of {n})", seen.len());
    if !bench {
        println!("e2e smoke check: {n} acknowledgements delivered, p50 {:?}", pct(&lat, 0.5));
        return;
    }
    println!("end-to-end: {n} mails over SMTP at {rate}/s → acknowledgement in the requester's Maildir");
    println!(
        "  p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.95).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "  daemon resident memory: {:.1} MiB idle, {:.1} MiB peak",
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
