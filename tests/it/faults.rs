//! Faults (issue 8): twenty SIGKILLs during a thousand-mail ingest, the store going away and
//! coming back, the store full, and poison messages quarantined while the mail behind them flows.
//! (SMTP down then up: `mail::acknowledgements_wait_for_a_dead_smtp_server`; Dovecot restarted
//! during IDLE: `http::metrics_parse_and_healthz_follow_the_imap_server_and_nothing_is_lost`.)

use std::collections::HashSet;

use loket::pipeline::{Action, Pipeline};
use loket::store::{self, Store};

use crate::harness::*;

/// A small deterministic generator for the kill points (the seed is printed to reproduce a run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_during_a_thousand_mails_lose_and_double_nothing() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new("kills", WorldOptions::default()).await;
    // 100 requesters with 10 requests each: within the per-sender limit on acknowledgements.
    let users: Vec<String> = (0..100).map(|i| w.addr(&format!("k{i}"))).collect();
    for i in 0..1000 {
        let user = &users[i % 100];
        let m = mail(
            user,
            &w.desk_addr,
            &format!("Permintaan {i}"),
            &format!("{}-{i}@example.test", w.tag),
            "",
            &format!("Website kemendag error, permintaan nomor {i}."),
        );
        dovecot_save(&w.desk_addr, &m);
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill-point seed: {seed}");
    let mut rng = Lcg(seed);
    let store = w.store().await;
    let mut kills = 0;
    for _ in 0..20 {
        let before = store::counts(store.pool()).await.unwrap();
        if before.tickets >= 980 {
            break;
        }
        let mut daemon = w.serve();
        // A random point: after 1 to 45 more tickets, or while the outbox is still sending.
        let more = 1 + rng.next(45) as i64;
        wait_for("progress before the kill", || async {
            let c = store::counts(store.pool()).await.unwrap();
            (c.tickets >= (before.tickets + more).min(1000) || c.outbox_sent > before.outbox_sent + more).then_some(())
        })
        .await;
        daemon.kill9();
        kills += 1;
    }
    assert!(kills >= 15, "the kills came too late to test anything ({kills})");
    let daemon = w.serve();
    wait_for("1,000 tickets and 1,000 delivered acknowledgements", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 1000 && c.outbox_sent == 1000).then_some(())
    })
    .await;
    wait_for("INBOX drained", || async { mailbox(&w.desk_addr, "INBOX").await.is_empty().then_some(()) }).await;
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound, c.outbox_pending, c.outbox_failed), (1000, 1000, 1000, 0, 0));
    assert_eq!(mailbox(&w.desk_addr, "Processed").await.len(), 1000, "every mail marked processed");
    // Every requester has one acknowledgement per request: 1,000 distinct ones. A message whose
    // SMTP delivery was cut by a kill after the server took it is sent again with the same
    // Message-ID (SMTP's at-least-once boundary); it is never a second acknowledgement.
    let mut ids = HashSet::new();
    let mut delivered = 0;
    for user in &users {
        let acks = wait_mailbox(user, "INBOX", 10).await;
        delivered += acks.len();
        for a in &acks {
            let m = parsed(a);
            assert!(m.subject.contains("Permintaan"), "{}", m.subject);
            ids.insert(m.message_id.unwrap());
        }
    }
    assert_eq!(ids.len(), 1000, "one acknowledgement per ticket");
    eprintln!("{kills} kills; {delivered} deliveries of 1000 acknowledgements");
    let in_flight = loket::config::OutboundConfig::default().concurrency;
    assert!(delivered - 1000 <= kills * in_flight, "redeliveries only at kills: {delivered}");
    drop(daemon);
}

/// Group commit at its edges: the daemon killed inside an intake batch's transaction just before
/// its commit (nothing of the batch is kept), then just after it, before IMAP was told (all of it
/// is kept, the mail is still in the inbox). Restarted, every mail is one ticket with one
/// acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_at_a_batch_commit_lose_and_double_nothing() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new("batchkill", WorldOptions::default()).await;
    let users: Vec<String> = (0..30).map(|i| w.addr(&format!("b{i}"))).collect();
    for (i, user) in users.iter().enumerate() {
        let id = format!("{}-{i}@example.test", w.tag);
        dovecot_save(&w.desk_addr, &mail(user, &w.desk_addr, &format!("Permintaan {i}"), &id, "", "Website error."));
    }
    let store = w.store().await;
    let hold = w.dir.path().join("hold");
    let held = |what: &'static str| {
        let hold = hold.clone();
        async move {
            let size = wait_for(what, || async { std::fs::read_to_string(&hold).ok() }).await;
            std::fs::remove_file(&hold).unwrap();
            size.parse::<i64>().unwrap()
        }
    };

    let spec = format!("before:{}", hold.display());
    let mut daemon = w.serve_with(&[("LOKET_TEST_HOLD_BATCH", &spec)]);
    let size = held("a batch about to commit").await;
    assert!(size > 1, "a batch of {size}");
    daemon.kill9();
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound), (0, 0, 0), "nothing of an uncommitted batch");
    assert_eq!(mailbox(&w.desk_addr, "INBOX").await.len(), 30);

    let spec = format!("after:{}", hold.display());
    let mut daemon = w.serve_with(&[("LOKET_TEST_HOLD_BATCH", &spec)]);
    let size = held("a batch just committed").await;
    daemon.kill9();
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound), (size, size), "the whole committed batch");
    assert_eq!(mailbox(&w.desk_addr, "INBOX").await.len(), 30, "IMAP was not told: the mail is still there");

    let daemon = w.serve();
    wait_for("30 tickets and 30 acknowledgements sent", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 30 && c.outbox_sent == 30).then_some(())
    })
    .await;
    wait_for("INBOX drained", || async { mailbox(&w.desk_addr, "INBOX").await.is_empty().then_some(()) }).await;
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound, c.outbox_pending, c.outbox_failed), (30, 30, 30, 0, 0));
    assert_eq!(mailbox(&w.desk_addr, "Processed").await.len(), 30);
    let mut ids = HashSet::new();
    for user in &users {
        for a in wait_mailbox(user, "INBOX", 1).await {
            ids.insert(parsed(&a).message_id.unwrap());
        }
    }
    assert_eq!(ids.len(), 30, "one acknowledgement per ticket");
    drop(daemon);
}

/// The store goes away under the daemon (PostgreSQL refuses its connections) and comes back:
/// nothing is taken from IMAP meanwhile, and everything is processed afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailable_then_back_loses_nothing() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new(
        "storeout",
        WorldOptions { pg: true, outbound_smtp: false, poll_interval_secs: 1, ..Default::default() },
    )
    .await;
    let db = w.db_url.rsplit('/').next().unwrap().to_string();
    let admin = || async { <sqlx::AnyConnection as sqlx::Connection>::connect(&ENV.pg_url).await.unwrap() };
    let send = |i: usize| {
        mail(
            &w.addr(&format!("s{i}")),
            &w.desk_addr,
            &format!("Permintaan {i}"),
            &format!("{}-{i}@example.test", w.tag),
            "",
            "Website error.",
        )
    };
    dovecot_save(&w.desk_addr, &send(0));
    let daemon = w.serve();
    let store = w.store().await;
    wait_for("the first ticket", || async { (store::counts(store.pool()).await.unwrap().tickets == 1).then_some(()) })
        .await;
    store.close().await;
    // Cut the store off: no new connections, the existing ones terminated.
    let mut conn = admin().await;
    for sql in [
        format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    ] {
        sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql)).await.unwrap();
    }
    for i in 1..=5 {
        dovecot_save(&w.desk_addr, &send(i));
    }
    // The mail stays in the inbox while the store is away.
    let log = wait_for("the daemon noticing the store is gone", || async {
        let log = daemon.log_text();
        (log.contains("store") && (log.contains("WARN") || log.contains("ERROR"))).then_some(log)
    })
    .await;
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(mailbox(&w.desk_addr, "INBOX").await.len(), 5, "nothing taken while the store is away");
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")))
        .await
        .unwrap();
    let store = w.store().await;
    wait_for("all six tickets after the store is back", || async {
        (store::counts(store.pool()).await.unwrap().tickets == 6).then_some(())
    })
    .await;
    wait_for("INBOX drained", || async { mailbox(&w.desk_addr, "INBOX").await.is_empty().then_some(()) }).await;
    drop(daemon);
}

/// The store is full (SQLite's page limit stands in for a full disk): the mail with a large
/// attachment fails with a clear, temporary error, leaves nothing half-written, and goes through
/// once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_full_is_a_clear_temporary_error_and_the_mail_is_kept() {
    use std::sync::Arc;
    let w = World::new("full", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    let cfg = Arc::new(w.config());
    let mut storage = cfg.storage.clone();
    storage.max_connections = 1; // the page limit is per connection
    let store = Store::open(&storage).await.unwrap();
    let templates = Arc::new(loket::templates::Templates::load(&cfg.templates).unwrap());
    let p = Pipeline::new(store.clone(), cfg, templates, Arc::new(tokio::sync::Notify::new()));
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(store.pool()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {}", pages + 8)))
        .execute(store.pool())
        .await
        .unwrap();
    let pdf = "JVBERi0xLjQK".repeat(150_000); // about 1.8 MB of base64
    // The attachment goes to the files directory; the text (about 300 KB) fills the database.
    let log: String = (0..12_000).map(|i| format!("Log {i}: website error\r\n")).collect();
    let raw = format!(
        "From: budi@example.test\r\nTo: {}\r\nSubject: Laporan\r\nMessage-ID: <full-1@example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nWebsite error, terlampir.\r\n{log}\
         --b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--b--\r\n",
        w.desk_addr
    )
    .into_bytes();
    let err = p.process("hero", &raw, 1_767_578_400_000).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("full"), "a clear error: {err}");
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound), (0, 0, 0), "nothing half-written");
    sqlx::query("PRAGMA max_page_count = 1073741823").execute(store.pool()).await.unwrap();
    let o = p.process("hero", &raw, 1_767_578_400_000).await.unwrap();
    assert_eq!(o.action, Action::Created);
}

/// Poison messages — 30 MB, 1,000 nested MIME parts, NUL bytes, 5,000 recipients — are
/// quarantined with a reason while the mail around them keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_quarantined_while_the_rest_flows() {
    let w =
        World::new("poison", WorldOptions { imap: false, maildir: true, outbound_smtp: false, ..Default::default() })
            .await;
    let dir = w.dir.path().join("maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let head = |i: usize| {
        format!(
            "From: p{i}@example.test\r\nTo: {}\r\nSubject: Racun {i}\r\nMessage-ID: <{}-p{i}@example.test>\r\n",
            w.desk_addr, w.tag
        )
    };
    let mut nested = format!("{}MIME-Version: 1.0\r\n", head(1));
    for i in 0..1000 {
        nested.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\nhalo\r\n");
    let recipients: Vec<String> = (0..5000).map(|i| format!("u{i}@example.test")).collect();
    let big = format!("{}\r\n{}", head(0), "Website error. ".repeat(2_000_000)).into_bytes(); // 30 MB
    assert!(big.len() >= 30_000_000);
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("exceeds limits.max_message_bytes", big),
        ("MIME structure", nested.into_bytes()),
        ("NUL byte", format!("{}\r\nWebsite\0 error\r\n", head(2)).into_bytes()),
        (
            "recipients",
            format!("From: p3@example.test\r\nTo: {}, {}\r\nSubject: Racun 3\r\nMessage-ID: <{}-p3@example.test>\r\n\r\nhalo\r\n", w.desk_addr, recipients.join(", "), w.tag)
                .into_bytes(),
        ),
    ];
    let mut n = 0;
    let mut drop_mail = |raw: &[u8]| {
        n += 1;
        std::fs::write(dir.join("tmp").join(format!("{n}.eml")), raw).unwrap();
        std::fs::rename(dir.join("tmp").join(format!("{n}.eml")), dir.join("new").join(format!("{n:04}.eml"))).unwrap();
    };
    for (i, (_, raw)) in poison.iter().enumerate() {
        drop_mail(raw);
        for j in 0..3 {
            let ok = mail(
                &w.addr(&format!("ok{i}{j}")),
                &w.desk_addr,
                "Website error",
                &format!("{}-ok{i}{j}@example.test", w.tag),
                "",
                "Website kemendag error.",
            );
            drop_mail(&ok);
        }
    }
    let daemon = w.serve();
    let store = w.store().await;
    wait_for("12 tickets and 4 quarantined", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 12 && c.quarantined == 4).then_some(())
    })
    .await;
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM quarantine ORDER BY id").fetch_all(store.pool()).await.unwrap();
    for (what, _) in &poison {
        assert!(reasons.iter().any(|r| r.contains(what)), "no quarantine reason with `{what}`: {reasons:?}");
    }
    assert!(!daemon.log_text().contains("panicked"));
    drop(daemon);
}

/// Group commit's savepoints on both backends: in one batch, every other message fails after it
/// wrote its ticket (a trigger refuses its message row, a permanent error), the first and the
/// last among them. Each failing message is rolled back alone — its ticket too — and
/// quarantined; the ones between commit with everything of theirs; delivered again, nothing
/// doubles.
async fn failures_inside_a_batch(pg: bool) {
    let w = World::new(if pg { "batchsp-pg" } else { "batchsp-sqlite" }, WorldOptions::in_process(pg)).await;
    let (p, store) = pipeline(&w).await;
    let refuse = if pg {
        vec![
            "CREATE FUNCTION refuse_racun() RETURNS trigger AS $$ BEGIN \
             IF NEW.direction = 'in' AND NEW.subject LIKE '%RACUN%' THEN \
             RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_racun BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_racun()",
        ]
    } else {
        vec![
            "CREATE TRIGGER refuse_racun BEFORE INSERT ON messages \
             WHEN NEW.direction = 'in' AND NEW.subject LIKE '%RACUN%' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ]
    };
    for sql in refuse {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    }
    let now = 1_767_578_400_000; // 2026-01-05 09:00 WIB
    let raws: Vec<Vec<u8>> = (0..7)
        .map(|i| {
            let subject = if i % 2 == 0 { format!("RACUN {i}") } else { format!("Aplikasi error {i}") };
            mail(
                &w.addr(&format!("s{i}")),
                &w.desk_addr,
                &subject,
                &format!("{}-sp{i}@example.test", w.tag),
                "",
                "Aplikasi error.",
            )
        })
        .collect();
    let batch: Vec<loket::pipeline::Incoming<'_>> =
        raws.iter().map(|raw| loket::pipeline::Incoming { raw, now }).collect();
    let actions: Vec<Action> =
        p.process_batch("hero", &batch).await.into_iter().map(|r| r.expect("no temporary error").action).collect();
    use Action::{Created as C, Quarantined as Q};
    assert_eq!(actions, [Q, C, Q, C, Q, C, Q]);
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound), (3, 3), "only the three good messages, each one ticket");
    let quarantined: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quarantine").fetch_one(store.pool()).await.unwrap();
    assert_eq!(quarantined, 4);
    let refused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE subject LIKE '%RACUN%'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(refused, 0, "a failing message's ticket is rolled back with it");
    let acks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'acknowledgement'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(acks, 3, "each good message's acknowledgement committed");
    let again: Vec<Action> = p.process_batch("hero", &batch).await.into_iter().map(|r| r.unwrap().action).collect();
    assert!(again.iter().all(|a| *a == Action::Duplicate), "{again:?}");
    assert_eq!(store::counts(store.pool()).await.unwrap().tickets, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_inside_a_batch_roll_back_alone_on_sqlite() {
    failures_inside_a_batch(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_inside_a_batch_roll_back_alone_on_postgres() {
    failures_inside_a_batch(true).await;
}
