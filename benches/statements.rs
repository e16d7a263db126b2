//! SQL statements per message: how many statements the pipeline runs for a new ticket, a
//! requester's reply and an agent's reply with a command, counted from sqlx's own statement log
//! (`sqlx::query` events) on SQLite, on a desk with agents, groups and SLA clocks.
//!
//! `cargo bench --bench statements` prints the counts (mean over `LOKET_BENCH_N` tickets, default
//! 50; and per new ticket in batches of 64, as an intake round under load delivers them) and each
//! statement's kind; `LOKET_BENCH_SHOW=1` also prints the first ticket's statements. Under `cargo test` it runs five tickets and checks that every
//! message was counted.

#[path = "../tests/common/hero.rs"]
mod hero;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hero::Hero;
use loket::config::Config;
use loket::pipeline::{Action, Incoming, Pipeline};
use loket::store::Store;
use loket::templates::Templates;
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Counts `sqlx::query` events and their first words ("INSERT INTO messages", "SELECT", …).
#[derive(Default, Clone)]
struct Counter {
    /// Print every statement (`LOKET_BENCH_SHOW=1`: those of the first ticket).
    show: Arc<std::sync::atomic::AtomicBool>,
    total: Arc<AtomicUsize>,
    kinds: Arc<Mutex<BTreeMap<String, usize>>>,
}

/// The statement's summary (its first words) and, when longer, its full text.
#[derive(Default)]
struct Summary(String, String);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.0 = value.to_string(),
            "db.statement" => self.1 = value.trim().to_string(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" && self.0.is_empty() {
            self.0 = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut s = Summary::default();
        event.record(&mut s);
        if self.show.load(Ordering::Relaxed) {
            eprintln!("  {}", if s.1.is_empty() { &s.0 } else { &s.1 });
        }
        let words: Vec<&str> = s.0.split_whitespace().take(3).collect();
        let key = match words.as_slice() {
            [verb, "into" | "INTO", table, ..] => format!("{} {}", verb.to_uppercase(), table),
            [verb, table, ..] if verb.eq_ignore_ascii_case("update") => format!("UPDATE {table}"),
            [verb, ..] => verb.to_uppercase(),
            [] => "?".into(),
        };
        *self.kinds.lock().unwrap().entry(key).or_default() += 1;
    }
}

impl Counter {
    fn take(&self) -> (usize, BTreeMap<String, usize>) {
        (self.total.swap(0, Ordering::Relaxed), std::mem::take(&mut *self.kinds.lock().unwrap()))
    }
}

async fn pipeline(dir: &Path) -> (Pipeline, Store) {
    let db = format!("url = \"sqlite://{}\"\n", dir.join("bench.db").display());
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.join("out").display());
    let cfg = Hero {
        storage: &db,
        outbound: &out,
        sections: "[limits]\nauto_replies_per_sender_per_hour = 1000000\nnew_tickets_per_sender_per_hour = 1000000\n\
                   [security]\ntoken_secret_env = \"BENCH_SECRET\"\n",
        desk: "time_zone = \"Asia/Jakarta\"\n\
               [desk.sla]\nhours = { weekdays = \"08:00-16:00\" }\nresponse = \"1h\"\nresolution = \"2d\"\n\
               [[desk.group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
               [[desk.agent]]\naddress = \"agus@desk.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n",
        ..Default::default()
    }
    .toml(&repo());
    let path = dir.join("loket.toml");
    std::fs::write(&path, &cfg).unwrap();
    let env = |k: &str| (k == "BENCH_SECRET").then(|| "a bench secret of enough bytes".to_string());
    let cfg = Arc::new(Config::from_toml(&path, &cfg, env).unwrap());
    let templates = Arc::new(Templates::load(&cfg.templates).unwrap());
    let store = Store::open(&cfg.storage).await.unwrap();
    (Pipeline::new(store.clone(), cfg, templates, Arc::new(Notify::new())), store)
}

fn mail(from: &str, subject: &str, id: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: hero@desk.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 5 Jan 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {headers}\r\n{body}\r\n"
    )
    .into_bytes()
}

#[derive(Default)]
struct Tally {
    n: usize,
    total: usize,
    kinds: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, (total, kinds): (usize, BTreeMap<String, usize>)) {
        self.n += 1;
        self.total += total;
        for (k, v) in kinds {
            *self.kinds.entry(k).or_default() += v;
        }
    }

    /// A batch of `messages` counted together: the mean is per message.
    fn add_batch(&mut self, messages: usize, counted: (usize, BTreeMap<String, usize>)) {
        self.add(counted);
        self.n += messages - 1;
    }

    fn line(&self, what: &str) -> String {
        let mean = |v: usize| v as f64 / self.n.max(1) as f64;
        let kinds: Vec<String> = self.kinds.iter().map(|(k, v)| format!("{k} {:.1}", mean(*v))).collect();
        format!("{what:<28} {:>5.1} statements  ({})", mean(self.total), kinds.join(", "))
    }
}

async fn measure(n: usize, counter: &Counter) -> [Tally; 3] {
    let dir = tempfile::tempdir().unwrap();
    let (p, store) = pipeline(dir.path()).await;
    let mut tallies: [Tally; 3] = Default::default();
    for i in 0..n {
        let at = T0 + i as i64 * 60_000;
        let from = format!("pegawai{i}@example.test");
        counter.take();
        let new = mail(&from, "SISP tidak bisa diakses", &format!("new-{i}@example.test"), "", "Tidak bisa login.");
        let out = p.process("hero", &new, at).await.unwrap();
        assert_eq!(out.action, Action::Created, "{out:?}");
        tallies[0].add(counter.take());
        let number = out.ticket.unwrap();

        let reply = mail(
            &from,
            &format!("Re: [#{number}] SISP tidak bisa diakses"),
            &format!("re-{i}@example.test"),
            "",
            "Masih belum bisa.",
        );
        assert_eq!(p.process("hero", &reply, at + 1_000).await.unwrap().action, Action::Appended);
        tallies[1].add(counter.take());

        let notification: String = sqlx::query_scalar(
            "SELECT m.message_id FROM messages m JOIN tickets t ON t.id = m.ticket_id \
             WHERE t.number = $1 AND m.kind = 'agent_notification' ORDER BY m.id LIMIT 1",
        )
        .bind(number.as_str())
        .fetch_one(store.pool())
        .await
        .unwrap();
        counter.take();
        let agent = mail(
            "agus@desk.test",
            &format!("Re: [#{number}] SISP tidak bisa diakses"),
            &format!("ag-{i}@desk.test"),
            &format!("In-Reply-To: <{notification}>\r\nReferences: <{notification}>\r\n"),
            "#resolve Akun sudah kami aktifkan kembali.",
        );
        assert_eq!(p.process("hero", &agent, at + 2_000).await.unwrap().action, Action::Appended);
        tallies[2].add(counter.take());
        counter.show.store(false, Ordering::Relaxed);
    }
    tallies
}

/// New requests from `n` people as an intake round delivers them under load: in batches of up to
/// 64 (`limits.batch_messages`), one transaction each.
async fn measure_batches(n: usize, counter: &Counter) -> Tally {
    let dir = tempfile::tempdir().unwrap();
    let (p, _store) = pipeline(dir.path()).await;
    let mails: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let from = format!("pegawai{i}@example.test");
            mail(&from, "SISP tidak bisa diakses", &format!("batch-{i}@example.test"), "", "Tidak bisa login.")
        })
        .collect();
    let mut tally = Tally::default();
    for chunk in mails.chunks(64) {
        let batch: Vec<Incoming<'_>> = chunk.iter().map(|raw| Incoming { raw, now: T0 }).collect();
        counter.take();
        let outcomes = p.process_batch("hero", &batch).await;
        assert!(outcomes.iter().all(|o| o.as_ref().unwrap().action == Action::Created));
        tally.add_batch(chunk.len(), counter.take());
    }
    tally
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let counter = Counter::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::Targets::new().with_target("sqlx::query", tracing::Level::TRACE))
        .with(counter.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    counter.show.store(std::env::var("LOKET_BENCH_SHOW").is_ok(), Ordering::Relaxed);
    let n = if bench { std::env::var("LOKET_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(50) } else { 5 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let [new, reply, agent] = rt.block_on(measure(n, &counter));
    let batched = rt.block_on(measure_batches(n.max(64), &counter));
    if !bench {
        assert!(new.total >= n && reply.total >= n && agent.total >= n, "statements were not counted");
        // In a batch the outbox rows and the composed mails' bytes go once per batch.
        assert!(batched.total * new.n < new.total * batched.n, "{}\n{}", batched.line("batched"), new.line("alone"));
    }
    println!("SQL statements per message on SQLite, mean over {n} tickets (sqlx statement log):");
    println!("{}", new.line("new ticket"));
    println!("{}", reply.line("requester reply"));
    println!("{}", agent.line("agent reply with #resolve"));
    println!("{}", batched.line("new ticket, 64 per batch"));
}
