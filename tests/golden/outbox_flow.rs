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
    /// The data of each mail as it arrived, before any was held.
    arrived: Arc<Mutex<Vec<String>>>,
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
                    self.arrived.lock().unwrap().push(data.clone());
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

async fn pipeline(dir: &Path, port: u16, concurrency: usize) -> (Pipeline, Store) {
    let db = hero::sqlite_in(dir);
    let out = format!(
        "transport = \"smtp\"\nconcurrency = {concurrency}\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\ntimeout_secs = 60\n"
    );
    Hero { storage: &db, outbound: &out, ..Default::default() }.pipeline(&repo(), dir).await
}

/// The outbox worker of `p`'s configuration, delivering everything due on its own task until
/// nothing is due or in flight; the task returns how many rows it attempted.
fn deliver_all_due(p: &Pipeline, store: &Store) -> tokio::task::JoinHandle<Result<usize, loket::store::StoreError>> {
    let worker = Arc::new(
        OutboxWorker::new(&p.config().outbound, store.clone(), Default::default(), Arc::new(Notify::new()), "w".into())
            .unwrap(),
    );
    tokio::spawn(async move { worker.deliver_all_due(&CancellationToken::new()).await })
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
    let (p, store) = pipeline(dir.path(), port, 2).await;
    let n = 6;
    for i in 0..n {
        assert_eq!(
            p.process("hero", &hero::printer_request(i, "flow"), T0 + i as i64).await.unwrap().action,
            Action::Created
        );
    }
    assert_eq!(rows(&store).await.len(), n, "one acknowledgement per request");
    let run = deliver_all_due(&p, &store);

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

/// A ticket's mails to one person go one at a time, in the order they were queued. Four rows are
/// due at once and the worker has four slots, so its first claim could take them all: it takes
/// three, and user0's second row on the same ticket stays unclaimed while the relay holds the
/// first; it follows once the first is accepted. (A chat's words and the file after them are two
/// such rows.) Rows of different tickets to one person are independent.
#[tokio::test]
async fn a_tickets_mails_to_one_person_go_one_at_a_time_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::default();
    let port = relay.start().await;
    let (p, store) = pipeline(dir.path(), port, 4).await;
    for i in 0..3 {
        let raw = hero::printer_request(i, "order");
        assert_eq!(p.process("hero", &raw, T0 + i as i64).await.unwrap().action, Action::Created);
    }
    // A second row for user0's ticket, queued after the others (as a relayed reply would be).
    sqlx::query(
        "INSERT INTO outbox (desk, ticket_id, message_row, sender, recipients, status, attempts, next_attempt_at, \
         created_at, channel) SELECT desk, ticket_id, message_row, sender, recipients, 'pending', 0, next_attempt_at + 10, \
         created_at + 10, channel FROM outbox WHERE recipients LIKE '%user0@%'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let second: i64 = sqlx::query("SELECT MAX(id) AS id FROM outbox").fetch_one(store.pool()).await.unwrap().get("id");
    let run = deliver_all_due(&p, &store);
    let held = |relay: &Relay| relay.arrived.lock().unwrap().iter().filter(|d| d.contains(HELD)).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay.accepted().len() < 2 || held(&relay) < 1 {
        assert!(Instant::now() < deadline, "the other recipients' mails were not sent: {:?}", rows(&store).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The others are through and the first row to user0 is held at the relay; the second was
    // not claimed (nor sent).
    let leased: Option<String> = sqlx::query("SELECT locked_by FROM outbox WHERE id = $1")
        .bind(second)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get("locked_by");
    assert_eq!(leased, None, "the second row was claimed while the first was being sent");
    assert_eq!(held(&relay), 1, "the second row did not wait for the first");
    relay.release.notify_one();
    while held(&relay) < 2 {
        assert!(Instant::now() < deadline, "the second row never followed: {:?}", rows(&store).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.release.notify_one();
    let attempted = tokio::time::timeout(Duration::from_secs(60), run).await.expect("worker finishes").unwrap();
    assert_eq!(attempted.unwrap(), 4, "each row attempted once");
    let order: Vec<i64> = sqlx::query(
        "SELECT a.outbox_id AS id FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id \
         WHERE o.recipients LIKE '%user0@%' ORDER BY a.id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("id"))
    .collect();
    assert_eq!(order.len(), 2);
    assert!(order[0] < order[1], "the row queued first was sent first: {order:?}");

    // Two tickets of one person: their acknowledgements go at once (both reach the relay while
    // the first is held).
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::default();
    let port = relay.start().await;
    let (p, store) = pipeline(dir.path(), port, 2).await;
    for (i, tag) in ["one", "two"].iter().enumerate() {
        let raw =
            String::from_utf8(hero::printer_request(0, tag)).unwrap().replace("Printer 0", &format!("Printer {tag}"));
        assert_eq!(p.process("hero", raw.as_bytes(), T0 + i as i64).await.unwrap().action, Action::Created);
    }
    let run = deliver_all_due(&p, &store);
    while held(&relay) < 2 {
        assert!(Instant::now() < deadline, "two tickets' mails waited for each other: {:?}", rows(&store).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.release.notify_one();
    relay.release.notify_one();
    let attempted = tokio::time::timeout(Duration::from_secs(60), run).await.expect("worker finishes").unwrap();
    assert_eq!(attempted.unwrap(), 2);
}
