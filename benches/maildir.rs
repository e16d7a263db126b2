//! `loket serve`'s Maildir path: generated mails (`scripts/gen_emails.py --seed 42`, the pipeline
//! benchmark's mails) dropped at once into a watched inbox's `new/` (renamed in from `tmp/`, as a
//! delivery agent does); the time until every file is committed (moved to `cur/`) and until every
//! outbound mail it queued (acknowledgements, agents' notifications) is written by the outbox
//! worker (`transport = "file"`: no SMTP in the measure), in mails per second; the daemon's
//! resident memory sampled during the burst (VmRSS) and its peak (VmHWM). The reference, measured
//! in the same run right after: the pipeline in process (`Pipeline::process_batch`, 64 per
//! transaction as `limits.batch_messages`) over the same mails on a fresh store with the same
//! configuration, no outbox delivery.
//!
//! `cargo bench --bench maildir` (no servers needed) runs 2,000 and 10,000 mails
//! (`LOKET_BENCH_MAILDIR_N="2000,10000"`; `LOKET_BENCH_MAIL_DIR` shares the generated mails with
//! the pipeline bench; `LOKET_BENCH_KEEP` and `LOKET_BENCH_FILES_FLUSH` as there). Under `cargo test` (no `--bench`) it drops 150 mails and checks that each
//! is committed once and that every queued outbound mail is written.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/hero.rs"]
mod hero;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hero::Hero;
use loket::pipeline::Incoming;

/// The desk: HERO with one agent in its first-line group (so a new request queues an
/// acknowledgement and an agents' notification), limits out of the way, SQLite durable.
fn config(dir: &Path, inbox: Option<&Path>) -> String {
    // `LOKET_BENCH_FILES_FLUSH=file_system` measures `storage.files_flush = "file_system"`.
    let flush = std::env::var("LOKET_BENCH_FILES_FLUSH").unwrap_or_else(|_| "each_file".into());
    let storage = format!("url = \"sqlite://{}\"\nfiles_flush = \"{flush}\"\n", dir.join("loket.db").display());
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.join("out").display());
    let inbox = inbox.map(|p| format!("maildir = \"{}\"\n", p.display())).unwrap_or_default();
    // Agents' tokens need a secret: made in this file on first load.
    let sections = format!(
        "[limits]\nauto_replies_per_sender_per_hour = 1000000\nnew_tickets_per_sender_per_hour = 1000000\n\
         agent_notifications_per_sender_per_hour = 1000000\n[security]\ntoken_secret_file = \"{}\"\n",
        dir.join("token-secret").display()
    );
    Hero {
        storage: &storage,
        outbound: &out,
        sections: &sections,
        desk: "[[desk.group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
               [[desk.agent]]\naddress = \"agus@desk.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n",
        inbox: &inbox,
        ..Default::default()
    }
    .toml(&common::repo())
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

struct Serve {
    /// Until every file is in `cur/`.
    intake: Duration,
    /// Until every queued outbound row is sent (written).
    done: Duration,
    outbound: usize,
    idle_rss: u64,
    max_rss: u64,
    hwm: u64,
}

/// (outbox rows, of them not yet sent), read from the daemon's store.
async fn outbox(db: &Path) -> (i64, i64) {
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db).read_only(true);
    let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&opts).await else { return (0, -1) };
    let row = sqlx::query("SELECT COUNT(*) AS n, COALESCE(SUM(status <> 'sent'), 0) AS waiting FROM outbox")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    match row {
        Ok(r) => (sqlx::Row::get(&r, "n"), sqlx::Row::get(&r, "waiting")),
        Err(_) => (0, -1),
    }
}

/// `loket serve` watching a Maildir, the mails dropped into `new/` at once.
async fn serve(mails: &[Vec<u8>]) -> Serve {
    let dir = common::run_dir();
    let inbox = dir.path().join("inbox");
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(inbox.join(d)).unwrap();
    }
    let cfg_path = dir.path().join("loket.toml");
    std::fs::write(&cfg_path, config(dir.path(), Some(&inbox))).unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = common::spawn_serve(&cfg_path, &log_path, "warn");
    let pid = child.id();
    let db = dir.path().join("loket.db");
    // Started: its store migrated (the outbox table answers) and a round of the empty inbox done.
    let start = Instant::now();
    while outbox(&db).await.1 < 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the daemon did not start: {}", log_path.display());
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = common::memory(pid);
    // Written to tmp/ first, then renamed into new/ at once: the burst.
    for (i, raw) in mails.iter().enumerate() {
        std::fs::write(inbox.join("tmp").join(format!("{i:06}.bench")), raw).unwrap();
    }
    let t0 = Instant::now();
    for i in 0..mails.len() {
        let name = format!("{i:06}.bench");
        std::fs::rename(inbox.join("tmp").join(&name), inbox.join("new").join(&name)).unwrap();
    }
    let deadline = Duration::from_secs(120 + mails.len() as u64 / 10);
    let (mut max_rss, mut intake) = (0, None);
    let done = loop {
        assert!(t0.elapsed() < deadline, "not done in {deadline:?}: {}", log_path.display());
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        max_rss = max_rss.max(common::memory(pid).0);
        if intake.is_none() && files_in(&inbox.join("cur")) == mails.len() {
            intake = Some(t0.elapsed());
        }
        if intake.is_some() {
            let (rows, waiting) = outbox(&db).await;
            if rows > 0 && waiting == 0 {
                break t0.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, hwm) = common::memory(pid);
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();
    let rows = outbox(&db).await.0 as usize;
    let outbound = files_in(&dir.path().join("out"));
    assert_eq!(files_in(&inbox.join("new")), 0, "every file taken");
    assert_eq!(outbound, rows, "every queued outbound mail written once");
    Serve { intake: intake.unwrap(), done, outbound, idle_rss, max_rss, hwm }
}

/// The reference: the pipeline in process over the same mails, 64 per transaction; seconds.
async fn pipeline(mails: &[Vec<u8>]) -> f64 {
    let dir = common::run_dir();
    let (p, _store) = {
        let path = dir.path().join("loket.toml");
        std::fs::write(&path, config(dir.path(), None)).unwrap();
        let cfg = std::sync::Arc::new(loket::config::Config::load(&path).unwrap());
        let templates = std::sync::Arc::new(loket::templates::Templates::load(&cfg.templates).unwrap());
        let store = loket::store::Store::open(&cfg.storage).await.unwrap();
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        (loket::pipeline::Pipeline::new(store.clone(), cfg, templates, wake), store)
    };
    let start = Instant::now();
    for chunk in mails.chunks(64) {
        let now = loket::now_ms();
        let items: Vec<Incoming<'_>> = chunk.iter().map(|raw| Incoming { raw, now }).collect();
        for out in p.process_batch("hero", &items).await {
            out.expect("pipeline");
        }
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if !bench {
        let dir = tempfile::tempdir().unwrap();
        let mails = common::generate(dir.path(), 150);
        let s = rt.block_on(serve(&mails));
        assert!(s.outbound > 100, "new requests are acknowledged and notified: {} outbound", s.outbound);
        println!("maildir smoke check: 150 mails committed, {} outbound mails written", s.outbound);
        return;
    }
    let sizes: Vec<usize> = std::env::var("LOKET_BENCH_MAILDIR_N")
        .unwrap_or_else(|_| "2000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let all = common::generate(&common::mail_dir(), sizes.iter().copied().max().unwrap_or(0));
    println!("serve's Maildir path: generated mails dropped into new/ at once; outbound transport = \"file\"");
    for n in sizes {
        let mails = &all[..n.min(all.len())];
        let s = rt.block_on(serve(mails));
        let reference = rt.block_on(pipeline(mails));
        let (rate, intake_rate, pipe_rate) =
            (n as f64 / s.done.as_secs_f64(), n as f64 / s.intake.as_secs_f64(), n as f64 / reference);
        println!(
            "  {n:>6} mails: all committed in {:.2} s ({intake_rate:.0}/s), all {} outbound written in {:.2} s: {rate:.0} mails/s",
            s.intake.as_secs_f64(),
            s.outbound,
            s.done.as_secs_f64()
        );
        println!(
            "          same run, the pipeline in process, 64 per transaction: {pipe_rate:.0} mails/s; ratio serve / pipeline {:.2}",
            rate / pipe_rate
        );
        println!(
            "          daemon memory: {:.1} MiB idle, {:.1} MiB largest VmRSS sampled, {:.1} MiB VmHWM",
            s.idle_rss as f64 / 1024.0,
            s.max_rss as f64 / 1024.0,
            s.hwm as f64 / 1024.0
        );
    }
}
