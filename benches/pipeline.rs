//! Pipeline benchmark: raw bytes → committed ticket (or appended message) + outbox row, on SQLite,
//! one message at a time as an inbox delivers them. Mail comes from the benchmark generator
//! (`scripts/gen_emails.py --seed 42`, 10,000 messages, ~30 % replies, ~20 % with an
//! attachment), or from `LOKET_BENCH_MAIL_DIR`.
//!
//! `cargo bench --bench pipeline` prints messages per second for `synchronous = FULL` (the
//! default: every commit survives power loss) and `NORMAL`. Under `cargo test` (no `--bench`
//! argument) it runs a small smoke check instead and verifies the outcomes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loket::config::Config;
use loket::pipeline::{Action, Pipeline};
use loket::store::Store;
use loket::templates::Templates;
use tokio::sync::Notify;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    if !dir.join("manifest.jsonl").exists() {
        let gen_script = repo().join("scripts/gen_emails.py");
        let status = std::process::Command::new("python3")
            .arg(&gen_script)
            .arg(dir)
            .args(["-n", &n.to_string(), "--seed", "42", "--to", "hero@desk.test"])
            .status()
            .expect("python3 for the mail generator");
        assert!(status.success(), "{} failed", gen_script.display());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files.truncate(n);
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

async fn pipeline(dir: &Path, url: &str, sync: &str) -> Pipeline {
    let cfg = format!(
        "templates = \"{t}\"\n[storage]\nurl = \"{url}\"\nsqlite_synchronous = \"{sync}\"\n\
         [outbound]\ntransport = \"file\"\ndirectory = \"{out}\"\n[limits]\nauto_replies_per_sender_per_hour = 1000000\n\
         [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"{s}\"\n\
         [[desk.inbox]]\nname = \"hero\"\naddress = \"hero@desk.test\"\n",
        t = repo().join("templates").display(),
        out = dir.join("out").display(),
        s = repo().join("seeds/hero.toml").display(),
    );
    let path = dir.join("loket.toml");
    std::fs::write(&path, cfg).unwrap();
    let cfg = Arc::new(Config::load(&path).unwrap());
    let templates = Arc::new(Templates::load(&cfg.templates).unwrap());
    let store = Store::open(&cfg.storage).await.unwrap();
    Pipeline::new(store, cfg, templates, Arc::new(Notify::new()))
}

struct Run {
    total: Duration,
    per: Vec<Duration>,
    created: usize,
    appended: usize,
}

/// A fresh database: SQLite in a temporary directory, or a new PostgreSQL database next to
/// `pg_admin` (a URL of a database the user may `CREATE DATABASE` from).
async fn fresh_url(dir: &Path, pg_admin: Option<&str>) -> String {
    match pg_admin {
        None => format!("sqlite://{}", dir.join("bench.db").display()),
        Some(admin) => {
            sqlx::any::install_default_drivers();
            let name = format!("bench_{}_{}", std::process::id(), loket::now_ms() % 1_000_000);
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await.expect("PostgreSQL");
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
    }
}

async fn run(mails: &[Vec<u8>], sync: &str, pg_admin: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_url(dir.path(), pg_admin).await;
    let p = pipeline(dir.path(), &url, sync).await;
    let mut per = Vec::with_capacity(mails.len());
    let (mut created, mut appended) = (0, 0);
    let start = Instant::now();
    for m in mails {
        let t = Instant::now();
        let out = p.process("hero", m, loket::now_ms()).await.unwrap();
        per.push(t.elapsed());
        match out.action {
            Action::Created => created += 1,
            Action::Appended => appended += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    Run { total: start.elapsed(), per, created, appended }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if !bench {
        // Smoke check under `cargo test`: 200 generated mails, replies thread to their tickets.
        let dir = tempfile::tempdir().unwrap();
        let mails = generate(dir.path(), 200);
        let r = rt.block_on(run(&mails, "normal", None));
        assert_eq!(r.created + r.appended, 200);
        assert!(r.appended > 20, "replies must thread: {} appended", r.appended);
        println!("pipeline smoke check: {} created, {} appended", r.created, r.appended);
        return;
    }
    let n: usize = std::env::var("LOKET_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = match std::env::var("LOKET_BENCH_MAIL_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => repo().join("target/bench-mail"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let mails = generate(&dir, n);
    let bytes: usize = mails.iter().map(|m| m.len()).sum();
    println!(
        "pipeline benchmark: {} mails, {:.1} MB, one message per transaction (PostgreSQL when LOKET_BENCH_PG_URL is set)",
        mails.len(),
        bytes as f64 / 1e6
    );
    let pg = std::env::var("LOKET_BENCH_PG_URL").ok();
    let mut runs: Vec<(&str, &str, Option<&str>)> =
        vec![("SQLite full", "full", None), ("SQLite normal", "normal", None)];
    if let Some(url) = pg.as_deref() {
        runs.push(("PostgreSQL", "full", Some(url)));
    }
    for (name, sync, pg) in runs {
        let mut r = rt.block_on(run(&mails, sync, pg));
        r.per.sort();
        println!(
            "  {name:<14} {:>8.0} mails/s  ({} created, {} appended; total {:.2} s; p50 {:?} p99 {:?})",
            mails.len() as f64 / r.total.as_secs_f64(),
            r.created,
            r.appended,
            r.total.as_secs_f64(),
            pct(&r.per, 0.5),
            pct(&r.per, 0.99),
        );
    }
}
