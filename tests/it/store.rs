//! Acceptance 8: one store scenario, run on SQLite and on PostgreSQL (the private cluster).

use loket::pipeline::Action;
use loket::store;

use crate::harness::*;

async fn scenario(pg: bool) {
    let w = World::new(if pg { "store-pg" } else { "store-sqlite" }, WorldOptions::in_process(pg)).await;
    let (p, store) = pipeline(&w).await;
    let now = 1_767_578_400_000; // 2026-01-05 09:00 WIB
    let budi = w.addr("budi");
    let first = mail(&budi, &w.desk_addr, "Wifi mati", &format!("{}-1@example.test", w.tag), "", "Wifi lantai 3 mati.");
    let out = p.process("hero", &first, now).await.unwrap();
    assert_eq!(out.action, Action::Created);
    let number = out.ticket.clone().unwrap();
    assert_eq!(&number[1..], "-HERO26000001", "category letter, desk code, year, sequence");

    // Threading by tag and by reference to the acknowledgement.
    let t = &store::tickets_by_number(store.pool(), &number).await.unwrap()[0];
    let ack =
        store::ticket_messages(store.pool(), t.id).await.unwrap().into_iter().find(|m| m.direction == "out").unwrap();
    let by_tag = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{number}] Wifi mati"),
        &format!("{}-2@example.test", w.tag),
        "",
        "Masih mati.",
    );
    assert_eq!(p.process("hero", &by_tag, now + 1).await.unwrap().action, Action::Appended);
    let by_ref = mail(
        &budi,
        &w.desk_addr,
        "Re: Wifi",
        &format!("{}-3@example.test", w.tag),
        &format!("References: <{}>\r\n", ack.message_id.clone().unwrap()),
        "Sudah normal.",
    );
    let o = p.process("hero", &by_ref, now + 2).await.unwrap();
    assert_eq!((o.action, o.ticket.as_deref()), (Action::Appended, Some(number.as_str())));
    // Duplicates and quarantine.
    assert_eq!(p.process("hero", &first, now + 3).await.unwrap().action, Action::Duplicate);
    let junk = b"this is not a mail at all, just text without headers";
    let q = p.process("hero", junk, now + 4).await.unwrap();
    assert_eq!(q.action, Action::Quarantined);
    assert!(q.reason.unwrap().contains("sender"));
    assert_eq!(p.process("hero", junk, now + 5).await.unwrap().action, Action::Duplicate);
    assert_eq!(store::list_quarantine(store.pool(), 10).await.unwrap().len(), 1);

    // Ticket numbers are never duplicated under concurrency.
    let mut handles = Vec::new();
    for i in 0..40 {
        let p = p.clone();
        let m = mail(
            &w.addr(&format!("u{i}")),
            &w.desk_addr,
            &format!("Masalah {i}"),
            &format!("{}-c{i}@example.test", w.tag),
            "",
            "x",
        );
        handles.push(tokio::spawn(async move { p.process("hero", &m, now + 10).await.unwrap() }));
    }
    let mut numbers: Vec<String> = Vec::new();
    for h in handles {
        let o = h.await.unwrap();
        assert_eq!(o.action, Action::Created);
        numbers.push(o.ticket.unwrap().to_string());
    }
    let mut numbers: Vec<String> = numbers.iter().map(|n| n[1..].to_string()).collect();
    numbers.sort();
    let expected: Vec<String> = (2..=41).map(|s| format!("-HERO26{s:06}")).collect();
    assert_eq!(numbers, expected);
    // The same message raced from two tasks: one ticket.
    let race = mail(&budi, &w.desk_addr, "Balapan", &format!("{}-race@example.test", w.tag), "", "x");
    let (a, b) = tokio::join!(p.process("hero", &race, now + 20), p.process("hero", &race, now + 20));
    let mut actions = vec![a.unwrap().action, b.unwrap().action];
    actions.sort_by_key(|a| a.as_str());
    assert_eq!(actions, vec![Action::Created, Action::Duplicate]);

    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound, c.outbox_pending, c.quarantined), (42, 44, 42, 42, 1));

    // Outbox: claim with a lease, record outcomes.
    let claimed = store::claim_outbox(&store, "w1", now + 100, now + 60_000, 100).await.unwrap();
    assert_eq!(claimed.len(), 42);
    assert!(claimed.iter().all(|i| !i.raw.is_empty() && i.recipients.len() == 1));
    assert!(
        store::claim_outbox(&store, "w2", now + 101, now + 60_000, 100).await.unwrap().is_empty(),
        "leased rows are not claimed twice"
    );
    store::record_attempt(store.pool(), store.backend(), claimed[0].id, now, Ok(())).await.unwrap();
    store::record_attempt(
        store.pool(),
        store.backend(),
        claimed[1].id,
        now,
        Err(("451 try later".into(), Some(now + 5_000))),
    )
    .await
    .unwrap();
    store::record_attempt(store.pool(), store.backend(), claimed[2].id, now, Err(("550 no such user".into(), None)))
        .await
        .unwrap();
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.outbox_sent, c.outbox_pending, c.outbox_failed), (1, 40, 1));
    // After the lease expires the rest are due again; the retried one only after its delay.
    let again = store::claim_outbox(&store, "w2", now + 61_000, now + 120_000, 100).await.unwrap();
    assert_eq!(again.len(), 40);
    assert!(again.iter().any(|i| i.id == claimed[1].id && i.attempts == 1));
    // A round's attempts recorded together (the worker's one commit per round): each row gets
    // its own outcome and its own attempt row.
    let round: Vec<(i64, store::AttemptOutcome)> = vec![
        (again[0].id, Ok(())),
        (again[1].id, Err(("451 try later".into(), Some(now + 200_000)))),
        (again[2].id, Err(("550 no such user".into(), None))),
        (again[3].id, Ok(())),
    ];
    let ids: Vec<i64> = round.iter().map(|(id, _)| *id).collect();
    store::record_attempts(store.pool(), store.backend(), now + 61_500, round).await.unwrap();
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.outbox_sent, c.outbox_pending, c.outbox_failed), (3, 37, 2));
    let attempts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox_attempts WHERE at = $1 AND outbox_id IN ($2, $3, $4, $5)")
            .bind(now + 61_500)
            .bind(ids[0])
            .bind(ids[1])
            .bind(ids[2])
            .bind(ids[3])
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(attempts, 4, "one attempt row per message of the round");
    let due = store::claim_outbox(&store, "w3", now + 121_000, now + 180_000, 100).await.unwrap();
    assert!(!due.iter().any(|i| i.id == ids[1]), "the retried row waits for its time");
    assert_eq!(due.len(), 36, "the rest of the round's claim is due again");
    // The outbox worker's group commit: attempts recorded and rows claimed in one transaction.
    // The two recorded sent are not claimed again; the rest (past w3's lease) are, leased to w4.
    let finished: Vec<(i64, store::AttemptOutcome)> = vec![(due[0].id, Ok(())), (due[1].id, Ok(()))];
    let lease = now + 300_000;
    let taken = store::record_and_claim(&store, "w4", now + 181_000, lease, 100, finished).await.unwrap();
    assert_eq!(taken.len(), 34);
    assert!(!taken.iter().any(|i| i.id == due[0].id || i.id == due[1].id));
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.outbox_sent, c.outbox_pending), (5, 35));
    let leases: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT locked_until FROM outbox WHERE locked_by = 'w4'")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(leases, [lease], "the claimed rows leased to w4 until its lease's end");
    // Rows a worker gives back are due at once; another worker cannot give them back.
    let ids: Vec<i64> = taken.iter().map(|i| i.id).collect();
    store::release_outbox(store.pool(), "w5", &ids).await.unwrap();
    assert!(store::claim_outbox(&store, "w5", now + 181_001, now + 400_000, 100).await.unwrap().is_empty());
    store::release_outbox(store.pool(), "w4", &ids[..10]).await.unwrap();
    let back = store::claim_outbox(&store, "w5", now + 181_002, now + 400_000, 100).await.unwrap();
    let mut back: Vec<i64> = back.iter().map(|i| i.id).collect();
    back.sort();
    let mut given: Vec<i64> = ids[..10].to_vec();
    given.sort();
    assert_eq!(back, given, "only the rows given back are due again");

    // Checkpoints.
    store::save_checkpoint(store.pool(), "hero", 7, 10, now).await.unwrap();
    store::save_checkpoint(store.pool(), "hero", 7, 12, now).await.unwrap();
    assert_eq!(store::checkpoint(store.pool(), "hero").await.unwrap(), Some((7, 12)));

    // Audit: every change is an event.
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["created", "routed", "acknowledgement_queued", "message_received", "message_received"]);
    assert_eq!(events[0].actor, budi);

    // A patch is written in one statement and the store then holds exactly what `apply` says.
    use loket::domain::{Impact, PendingReason, Priority, TicketStatus, TicketType};
    let before = store::tickets_by_number(store.pool(), &number).await.unwrap().remove(0);
    let patches = [
        loket::ticket::TicketPatch {
            status: Some(TicketStatus::Pending),
            pending_reason: Some(Some(PendingReason::Requirements)),
            assignee: Some(Some("agent@desk.test".into())),
            group_id: Some(Some("l2".into())),
            priority: Some(Priority::P2),
            category: Some(("J".into(), "wifi".into())),
            ticket_type: Some(TicketType::Incident),
            impact: Some(Some(Impact::High)),
            resolved_at: Some(Some(now + 5)),
            closed_at: Some(None),
            first_response_at: Some(now + 6),
            rating: Some((4, "cepat".into())),
            rating_requested_at: Some(now + 7),
        },
        // Clearing, and a second first response that must not move the first.
        loket::ticket::TicketPatch {
            pending_reason: Some(None),
            assignee: Some(None),
            impact: Some(None),
            resolved_at: Some(None),
            first_response_at: Some(now + 99),
            ..Default::default()
        },
    ];
    let mut expected = before;
    for (i, patch) in patches.iter().enumerate() {
        let at = now + 1_000 * (i as i64 + 1);
        let mut tx = store.begin().await.unwrap();
        store::update_ticket(&mut tx, t.id, patch, at).await.unwrap();
        store.commit(tx).await.unwrap();
        expected = patch.apply(&expected, at);
        let stored = store::tickets_by_number(store.pool(), &number).await.unwrap().remove(0);
        assert_eq!(stored, expected, "patch {i}");
    }
    assert_eq!(expected.first_response_at, Some(now + 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_scenario_on_sqlite() {
    scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_scenario_on_postgres() {
    scenario(true).await;
}

/// Issue #19: what the daemon creates is private to the user it runs as, even when started with
/// a permissive umask: the SQLite store with its -wal and -shm, the store's directory, the
/// outbound spool directory and the maildir it makes are neither group- nor other-readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_the_directories_the_daemon_creates_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let http_port = free_port();
    let w = World::new(
        "modes",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            maildir: true,
            extra: format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
            ..Default::default()
        },
    )
    .await;
    // The store in the default directory the daemon makes (`var/`).
    let state = w.dir.path().join("var");
    let db = state.join("loket.db");
    let config = std::fs::read_to_string(&w.config_path).unwrap();
    assert!(config.contains(&w.db_url));
    std::fs::write(&w.config_path, config.replace(&w.db_url, &format!("sqlite://{}", db.display()))).unwrap();
    // A umask that would leave files readable by all (the daemon sets its own).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let mut daemon = w.serve();
    wait_for("the daemon's HTTP server", || async { (http_get(http_port, "/healthz").await.0 != 0).then_some(()) })
        .await;
    let wal = state.join("loket.db-wal");
    let shm = state.join("loket.db-shm");
    wait_for("the store's -wal and -shm", || async { (wal.exists() && shm.exists()).then_some(()) }).await;
    let maildir = w.dir.path().join("maildir");
    let out = w.dir.path().join("out");
    for path in [&state, &db, &wal, &shm, &maildir, &maildir.join("new"), &maildir.join("tmp"), &out] {
        let mode = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {:o}", path.display(), mode & 0o777);
    }
    daemon.terminate();
}

/// A young PostgreSQL store analyzes the intake's tables itself as messages are committed
/// (`store/statistics.rs`): plans made on its empty tables would otherwise stay with each
/// connection until autovacuum's first analyze. `last_analyze` is set by an `ANALYZE` statement
/// only (autovacuum's is `last_autoanalyze`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_postgres_store_analyzes_its_tables_as_messages_are_committed() {
    use loket::pipeline::Incoming;
    let w = World::new("young-pg", WorldOptions::in_process(true)).await;
    let (p, store) = pipeline(&w).await;
    let now = 1_767_578_400_000;
    let mails: Vec<Vec<u8>> = (0..128)
        .map(|i| {
            let from = w.addr(&format!("u{i}"));
            mail(&from, &w.desk_addr, "Printer macet", &format!("{}-y{i}@example.test", w.tag), "", "Printer rusak.")
        })
        .collect();
    let stats = || async {
        sqlx::query_as::<_, (f64, i64)>(
            "SELECT CAST(c.reltuples AS DOUBLE PRECISION), CAST(COUNT(s.last_analyze) AS BIGINT) \
             FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'messages' GROUP BY c.reltuples",
        )
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    let batch = |range: std::ops::Range<usize>| -> Vec<Incoming<'_>> {
        mails[range].iter().map(|raw| Incoming { raw, now }).collect()
    };
    for r in p.process_batch("hero", &batch(0..63)).await {
        assert_eq!(r.unwrap().action, Action::Created);
    }
    // 63 committed (the acknowledgements are rows too): not yet due, nothing analyzed.
    assert_eq!(stats().await, (-1.0, 0), "(rows as estimated, analyzed) before the first 64 messages");
    assert_eq!(p.process_batch("hero", &batch(63..64)).await[0].as_ref().unwrap().action, Action::Created);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let first = loop {
        let s = stats().await;
        if s.1 == 1 {
            break s.0;
        }
        assert!(std::time::Instant::now() < deadline, "no ANALYZE after 64 messages: {s:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // 64 inbound and 64 acknowledgements.
    assert!(first >= 128.0, "{first} rows estimated after the first analyze");
    // The next is due when the messages committed since reach half the table's rows then (128):
    // 64 more messages.
    for r in p.process_batch("hero", &batch(64..128)).await {
        assert_eq!(r.unwrap().action, Action::Created);
    }
    loop {
        let s = stats().await;
        if s.0 >= 256.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no second ANALYZE after 128 messages: {s:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
