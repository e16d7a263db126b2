//! Scheduler benchmark: one SLA tick over a store holding many closed tickets and 1,000 open
//! tickets whose response deadline has passed. `cargo bench --bench scheduler` prints the time of
//! the tick(s) that fire all 1,000 warnings, for 100,000 and for 1,000,000 closed tickets, to show
//! that the work does not grow with the closed ones (the scheduler reads a partial index of
//! running clocks). Under `cargo test` it runs a small version and checks what fired.

#[path = "../tests/common/hero.rs"]
mod hero;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hero::Hero;
use loket::config::Config;
use loket::pipeline::Pipeline;
use loket::store::Store;
use loket::templates::Templates;
use tokio::sync::Notify;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const T0: i64 = 1_783_303_200_000; // Monday 2026-07-06 09:00 WIB

async fn setup(dir: &std::path::Path, closed: i64, open: i64) -> (Pipeline, Store) {
    let storage = format!("url = \"sqlite://{}\"\nsqlite_synchronous = \"normal\"\n", dir.join("bench.db").display());
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.join("out").display());
    let text = Hero {
        storage: &storage,
        outbound: &out,
        sections: "[security]\ntoken_secret_env = \"BENCH_SECRET\"\n",
        desk: "[desk.sla]\nhours = { weekdays = \"08:00-16:00\" }\nresponse = \"1h\"\n\
               [[desk.group]]\nid = \"l1\"\nname = \"L1\"\n\
               [[desk.agent]]\naddress = \"agent@desk.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n",
        ..Default::default()
    }
    .toml(&repo());
    let path = dir.join("loket.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::from_toml(&path, &text, |k| (k == "BENCH_SECRET").then(|| "bench-secret-0123456789".to_string()))
        .unwrap();
    let cfg = Arc::new(cfg);
    let store = Store::open(&cfg.storage).await.unwrap();
    let pool = store.pool();
    // Closed tickets with stopped clocks, then open tickets whose response warning is due.
    let total = closed + open;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {total}) \
         INSERT INTO tickets (desk, number, category, subcategory, ticket_type, status, channel, inbox, subject, \
         requester_address, language, created_at, updated_at, group_id) \
         SELECT 'hero', 'B-' || x, 'layanan_data', 'jaringan', 'request', CASE WHEN x <= {closed} THEN 'closed' ELSE 'open' END, \
         'email', 'hero', 'Internet', 'u' || x || '@example.test', 'id', {T0}, {T0}, 'l1' FROM c"
    )))
    .execute(pool)
    .await
    .unwrap();
    for (kind, next) in [("response", "NULL"), ("resolution", "NULL")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sla_clocks (ticket_id, desk, kind, target_ms, warn_ms, consumed_ms, running_since, stopped_at, state, next_check_at, due_at) \
             SELECT id, 'hero', '{kind}', 3600000, 2700000, 0, {T0}, {T0}, 'ok', {next}, NULL FROM tickets WHERE id <= {closed}"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO sla_clocks (ticket_id, desk, kind, target_ms, warn_ms, consumed_ms, running_since, stopped_at, state, next_check_at, due_at) \
         SELECT id, 'hero', 'response', 3600000, 2700000, 0, {T0}, NULL, 'ok', {warn}, {due} FROM tickets WHERE id > {closed}",
        warn = T0 + 2_700_000,
        due = T0 + 3_600_000
    )))
    .execute(pool)
    .await
    .unwrap();
    let templates = Arc::new(Templates::load(&cfg.templates).unwrap());
    (Pipeline::new(store.clone(), cfg, templates, Arc::new(Notify::new())), store)
}

/// Ticks until nothing more is due at `now`; returns (ticks, warnings, milliseconds).
async fn drain(p: &Pipeline, now: i64) -> (usize, usize, f64) {
    let start = Instant::now();
    let (mut ticks, mut warnings) = (0, 0);
    loop {
        let r = p.sla_tick(now).await.unwrap();
        ticks += 1;
        warnings += r.warnings;
        if !r.more {
            break;
        }
    }
    (ticks, warnings, start.elapsed().as_secs_f64() * 1000.0)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        if !bench {
            let dir = tempfile::tempdir().unwrap();
            let (p, _) = setup(dir.path(), 1000, 20).await;
            let (_, warnings, _) = drain(&p, T0 + 50 * 60_000).await;
            assert_eq!(warnings, 20);
            assert_eq!(drain(&p, T0 + 50 * 60_000).await.1, 0, "nothing fires twice");
            println!("scheduler smoke check: 20 warnings over 1000 closed tickets");
            return;
        }
        println!("scheduler benchmark: SQLite, 1,000 open tickets due, warning notices queued to the agent");
        for closed in [100_000i64, 1_000_000] {
            let dir = tempfile::tempdir().unwrap();
            let t = Instant::now();
            let (p, _) = setup(dir.path(), closed, 1000).await;
            let load = t.elapsed().as_secs_f64();
            // An idle tick first: nothing due yet.
            let t = Instant::now();
            let idle = p.sla_tick(T0 + 10 * 60_000).await.unwrap();
            let idle_ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(idle.fired(), 0);
            let (ticks, warnings, ms) = drain(&p, T0 + 50 * 60_000).await;
            assert_eq!(warnings, 1000);
            println!(
                "  {closed:>9} closed tickets (loaded in {load:.1} s): idle tick {idle_ms:.2} ms; 1,000 due fired in {ticks} ticks, {ms:.0} ms ({:.0} ms per tick of 200)",
                ms / ticks as f64
            );
        }
    });
}
