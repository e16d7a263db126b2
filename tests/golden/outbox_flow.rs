//! The outbox worker keeps `outbound.concurrency` sends in flight: a slow send holds its own slot,
//! not the others' (the relay is a small SMTP server in this test that holds one recipient's mail
//! until the test releases it; SQLite).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loket::outbox::OutboxWorker;
use loket::pipeline::{Action, Pipeline};
use loket::store::Store;
use sqlx::Row;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hero::{self, Hero};
use crate::runner::repo;

const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
const HELD: &str = "user0@example.test";

/// A relay that accepts every mail, except that a mail whose data names `HELD` is answered only
/// after `release`; `accepted` lists the data of each mail in the order its 250 was sent.
#[derive(Clone, Default)]
struct Relay {
    accepted: Arc<Mutex<Vec<String>>>,
    release: Arc<Notify>,
}

impl Relay {
    async fn start(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = self.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(relay.clone().session(conn));
            }
        });
        port
    }

    /// One SMTP conversation (RFC 5321's commands as lettre sends them).
    async fn session(self, conn: tokio::net::TcpStream) {
        let (read, mut write) = conn.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 relay.test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "DATA" => {
                    let _ = write.write_all(b"354 go ahead\r\n").await;
                    let mut data = String::new();
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l == "." {
                            break;
                        }
                        data.push_str(&l);
                        data.push('\n');
                    }
                    if data.contains(HELD) {
                        self.release.notified().await;
                    }
                    self.accepted.lock().unwrap().push(data);
                    b"250 2.0.0 queued\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"250 ok\r\n",
            };
            if write.write_all(answer).await.is_err() {
                return;
            }
        }
    }

    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }
}

async fn pipeline(dir: &Path, port: u16) -> (Pipeline, Store) {
    let db = hero::sqlite_in(dir);
    let out = format!(
        "transport = \"smtp\"\nconcurrency = 2\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\ntimeout_secs = 60\n"
    );
    Hero { storage: &db, outbound: &out, ..Default::default() }.pipeline(&repo(), dir).await
}

/// Each outbox row's recipient and status, in the order the rows were queued.
async fn rows(store: &Store) -> Vec<(String, String)> {
    sqlx::query("SELECT recipients, status FROM outbox ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>("recipients"), r.get::<String, _>("status")))
        .collect()
}

#[tokio::test]
async fn a_slow_send_holds_its_own_slot_and_the_others_go_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::default();
    let port = relay.start().await;
    let (p, store) = pipeline(dir.path(), port).await;
    let n = 6;
    for i in 0..n {
        assert_eq!(
            p.process("hero", &hero::printer_request(i, "flow"), T0 + i as i64).await.unwrap().action,
            Action::Created
        );
    }
    assert_eq!(rows(&store).await.len(), n, "one acknowledgement per request");
    let worker = Arc::new(
        OutboxWorker::new(&p.config().outbound, store.clone(), Default::default(), Arc::new(Notify::new()), "w".into())
            .unwrap(),
    );
    let run = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.deliver_all_due(&CancellationToken::new()).await })
    };

    // The first acknowledgement (user0's) is held by the relay; with two sends in flight, the
    // other five still go, one after another through the second slot, and are recorded sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = rows(&store).await;
        let sent = rows.iter().filter(|(_, s)| s == "sent").count();
        if sent == n - 1 {
            assert!(rows[0].0.contains(HELD) && rows[0].1 == "pending", "the held mail is still in flight: {rows:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other mails waited for the held one: {sent} of {} sent, relay accepted {}",
            n - 1,
            relay.accepted().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!run.is_finished(), "the worker waits for the send in flight");
    let accepted = relay.accepted();
    assert_eq!(accepted.len(), n - 1);
    assert!(accepted.iter().all(|d| !d.contains(HELD)));

    relay.release.notify_one();
    let attempted = tokio::time::timeout(Duration::from_secs(60), run).await.expect("worker finishes").unwrap();
    assert_eq!(attempted.unwrap(), n, "each row attempted once");
    let rows = rows(&store).await;
    assert!(rows.iter().all(|(_, s)| s == "sent"), "{rows:?}");
    let accepted = relay.accepted();
    assert_eq!(accepted.len(), n, "each mail sent once");
    for i in 0..n {
        let to = format!("user{i}@example.test");
        assert_eq!(accepted.iter().filter(|d| d.contains(&to)).count(), 1, "{to}");
    }
    assert!(accepted[n - 1].contains(HELD), "the held mail went last");
    let attempts: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM outbox_attempts").fetch_one(store.pool()).await.unwrap().get("n");
    assert_eq!(attempts, n as i64);
}
