//! Pipeline benchmark: raw bytes → committed ticket (or appended message) + outbox row, on SQLite,
//! one message at a time as an inbox delivers them. Mail comes from the benchmark generator
//! (`scripts/gen_emails.py --seed 42`, 10,000 messages, ~30 % replies, ~20 % with an
//! attachment), or from `LOKET_BENCH_MAIL_DIR`.
//!
//! `cargo bench --bench pipeline` prints messages per second for `synchronous = FULL` (the
//! default: every commit survives power loss) and `NORMAL`, one message per transaction (a quiet
//! inbox) and 64 per transaction (group commit, an intake round under load), each beside the
//! reference measured in the same run: a bare SQLite loop (sqlx's own SQLite driver, no Loket)
//! on the same disk writing ten rows per message, one of them a 4 KB body, committed at the same
//! batch size; with `LOKET_BENCH_PG_URL`, the pipeline on PostgreSQL beside the same loop through
//! sqlx's PostgreSQL driver on the same server. `LOKET_SQLITE_DRIVER=sqlx` runs the pipeline on
//! sqlx's SQLite driver instead of Loket's (the same binary's reference); `LOKET_BENCH_KEEP=DIR`
//! keeps each run's store in DIR instead of deleting it at the run's end. Under `cargo test` (no `--bench` argument) it runs a small smoke check instead
//! and verifies the outcomes.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/hero.rs"]
mod hero;

use std::path::Path;
use std::time::{Duration, Instant};

use hero::Hero;
use loket::pipeline::{Action, Incoming, Pipeline};

/// The pipeline on an empty rules directory: every ticket goes to triage, as in every earlier
/// run of this bench (routing is measured on its own by `benches/routing.rs`).
async fn pipeline(dir: &Path, url: &str, sync: &str) -> Pipeline {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    // `LOKET_BENCH_FILES_FLUSH=file_system` measures `storage.files_flush = "file_system"`.
    let flush = std::env::var("LOKET_BENCH_FILES_FLUSH").unwrap_or_else(|_| "each_file".into());
    let storage = format!("url = \"{url}\"\nsqlite_synchronous = \"{sync}\"\nfiles_flush = \"{flush}\"\n");
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.join("out").display());
    let rules = dir.join("rules");
    Hero {
        rules: Some(&rules),
        storage: &storage,
        outbound: &out,
        sections: "[limits]\nauto_replies_per_sender_per_hour = 1000000\n",
        ..Default::default()
    }
    .pipeline(&common::repo(), dir)
    .await
    .0
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
            loket::store::install_drivers();
            let name = format!("bench_{}_{}", std::process::id(), loket::now_ms() % 1_000_000);
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await.expect("PostgreSQL");
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
    }
}

/// The pipeline over `mails`, `batch` messages per transaction (`per` is the time of each
/// batch, divided among its messages).
async fn run(mails: &[Vec<u8>], sync: &str, pg_admin: Option<&str>, batch: usize) -> Run {
    let dir = common::run_dir();
    let url = fresh_url(dir.path(), pg_admin).await;
    let p = pipeline(dir.path(), &url, sync).await;
    let mut per = Vec::with_capacity(mails.len());
    let (mut created, mut appended) = (0, 0);
    let start = Instant::now();
    for chunk in mails.chunks(batch) {
        let t = Instant::now();
        let now = loket::now_ms();
        let items: Vec<Incoming<'_>> = chunk.iter().map(|raw| Incoming { raw, now }).collect();
        let outs = p.process_batch("hero", &items).await;
        let each = t.elapsed() / chunk.len() as u32;
        for out in outs {
            per.push(each);
            match out.unwrap().action {
                Action::Created => created += 1,
                Action::Appended => appended += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    Run { total: start.elapsed(), per, created, appended }
}

/// The bare loop itself, the same for each driver (a macro: sqlx's generic bounds for "any
/// connection of driver X" would be longer than the loop): `n` messages of ten rows, one of them a
/// 4 KB body, `batch` messages per commit; messages per second.
macro_rules! bare_loop {
    ($conn:ident, $insert:expr, $n:expr, $batch:expr) => {{
        let (n, batch) = ($n, $batch);
        let (big, small) = ("x".repeat(4096), "y".repeat(100));
        let start = Instant::now();
        for first in (0..n).step_by(batch) {
            let mut tx = $conn.begin().await.unwrap();
            for m in first..(first + batch).min(n) {
                for r in 0..10 {
                    sqlx::query($insert)
                        .bind(m as i64)
                        .bind(if r == 0 { &big } else { &small })
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
            }
            #[allow(clippy::disallowed_methods)] // the bare reference loop: plain sqlx, no Loket
            tx.commit().await.unwrap();
        }
        n as f64 / start.elapsed().as_secs_f64()
    }};
}

/// The reference: `n` messages of ten rows each (one a 4 KB body, nine of 100 bytes) written by
/// a bare loop through sqlx's SQLite driver on the same disk, `batch` messages per commit, WAL,
/// the same `synchronous`. Messages per second.
async fn bare_sqlite(n: usize, sync: &str, batch: usize) -> f64 {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("bare.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if sync == "full" { SqliteSynchronous::Full } else { SqliteSynchronous::Normal });
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, message INTEGER NOT NULL, body TEXT NOT NULL)")
        .await
        .unwrap();
    bare_loop!(conn, "INSERT INTO rows (message, body) VALUES (?1, ?2)", n, batch)
}

/// The same reference on PostgreSQL: a fresh database next to `pg_admin`, the same ten rows per
/// message through sqlx's own PostgreSQL driver, `batch` messages per commit, the server's
/// durability settings (`scripts/bench-e2e.sh` starts the lab's cluster with its durable
/// defaults; `scripts/testenv/start.sh` alone turns `fsync` off). Messages per second.
async fn bare_postgres(n: usize, pg_admin: &str, batch: usize) -> f64 {
    use sqlx::{Connection, Executor};
    let url = fresh_url(Path::new("."), Some(pg_admin)).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
    conn.execute("CREATE TABLE rows (id BIGSERIAL PRIMARY KEY, message BIGINT NOT NULL, body TEXT NOT NULL)")
        .await
        .unwrap();
    bare_loop!(conn, "INSERT INTO rows (message, body) VALUES ($1, $2)", n, batch)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if !bench {
        // Smoke check under `cargo test`: 200 generated mails, replies thread to their tickets.
        let dir = tempfile::tempdir().unwrap();
        let mails = common::generate(dir.path(), 200);
        let r = rt.block_on(run(&mails, "normal", None, 1));
        let b = rt.block_on(run(&mails, "normal", None, 64));
        assert_eq!((b.created, b.appended), (r.created, r.appended), "a batch routes and threads the same");
        assert_eq!(r.created + r.appended, 200);
        assert!(r.appended > 20, "replies must thread: {} appended", r.appended);
        println!("pipeline smoke check: {} created, {} appended", r.created, r.appended);
        return;
    }
    let n: usize = std::env::var("LOKET_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mails = common::generate(&common::mail_dir(), n);
    let bytes: usize = mails.iter().map(|m| m.len()).sum();
    println!(
        "pipeline benchmark: {} mails, {:.1} MB (PostgreSQL too when LOKET_BENCH_PG_URL is set)",
        mails.len(),
        bytes as f64 / 1e6
    );
    let pg = std::env::var("LOKET_BENCH_PG_URL").ok();
    // `LOKET_BENCH_BATCHES=1` runs only one message per transaction, and `LOKET_BENCH_BARE=0`
    // skips the reference loop: the same work as the bench of earlier builds, for comparing
    // them (e.g. instruction counts under callgrind).
    let batches: Vec<usize> = std::env::var("LOKET_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,64".into())
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    let bare = std::env::var("LOKET_BENCH_BARE").as_deref() != Ok("0");
    let mut runs: Vec<(&str, &str, Option<&str>, usize)> = Vec::new();
    for (name, sync, pg) in [("SQLite full", "full", None), ("SQLite normal", "normal", None)]
        .into_iter()
        .chain(pg.as_deref().map(|url| ("PostgreSQL", "full", Some(url))))
    {
        runs.extend(batches.iter().map(|&b| (name, sync, pg, b)));
    }
    for (name, sync, pg, batch) in runs {
        let mut r = rt.block_on(run(&mails, sync, pg, batch));
        r.per.sort();
        let rate = mails.len() as f64 / r.total.as_secs_f64();
        let reference = match (bare, pg) {
            (false, _) => None,
            (true, None) => Some(rt.block_on(bare_sqlite(mails.len(), sync, batch))),
            (true, Some(admin)) => Some(rt.block_on(bare_postgres(mails.len(), admin, batch))),
        }
        .map_or(String::new(), |bare| format!("; bare loop {bare:.0}/s, ratio {:.2}", rate / bare));
        println!(
            "  {name:<14} batch {batch:>2} {rate:>8.0} mails/s  ({} created, {} appended; total {:.2} s; p50 {:?} p99 {:?}{reference})",
            r.created,
            r.appended,
            r.total.as_secs_f64(),
            common::pct(&r.per, 0.5),
            common::pct(&r.per, 0.99),
        );
    }
}
