//! Hygiene for public addresses against the private Dovecot and Postfix (issue 16, acceptance
//! 5): an inbox's first-connection cut-off (`since`), spam the receiving server flagged or scored
//! over the desk's limit, and DMARC failures: none acknowledged, each recorded (a ticket with an
//! `acknowledgement_suppressed` event, or a quarantine entry); `loket quarantine release` turns
//! the quarantined message into a ticket, acknowledged, exactly once; `drop` leaves an audit
//! entry.

use std::process::Command;

use crate::harness::*;

async fn scalar_i64(store: &loket::store::Store, sql: &'static str, arg: &str) -> i64 {
    sqlx::query_scalar(sql).bind(arg).fetch_one(store.pool()).await.unwrap()
}

/// The tickets of a requester (their numbers).
async fn tickets_of(store: &loket::store::Store, address: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT number FROM tickets WHERE requester_address = $1 ORDER BY id")
        .bind(address)
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// Why the acknowledgement of a ticket was suppressed (its `acknowledgement_suppressed` event).
async fn suppressed(store: &loket::store::Store, number: &str) -> Option<String> {
    let t = ticket(store, number).await;
    loket::store::ticket_events(store.pool(), t.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "acknowledgement_suppressed")
        .map(|e| e.detail["reason"].as_str().unwrap_or_default().to_string())
}

fn quarantine_cli(w: &World, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&w.config_path)
        .arg("quarantine")
        .args(args)
        .env("LOKET_LOG", "warn")
        .env("USER", "ops-test")
        .output()
        .expect("spawn loket quarantine");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_off_spam_and_dmarc_get_no_acknowledgement_and_a_release_makes_one_ticket() {
    hygiene_story(false).await;
}

/// The same story on PostgreSQL (the quarantine's release and drop statements on both stores).
#[tokio::test(flavor = "multi_thread")]
async fn the_hygiene_story_on_postgresql() {
    hygiene_story(true).await;
}

async fn hygiene_story(pg: bool) {
    // Dovecot and Postfix stay up throughout (tests that stop them take the write lock).
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new(
        if pg { "hygiene-pg" } else { "hygiene" },
        WorldOptions {
            pg,
            poll_interval_secs: 1,
            desk_extra: "[desk.hygiene]\nspam_score_limit = 6.0\nspam = \"no-acknowledgement\"\n\
                         dmarc_fail = \"quarantine\"\n"
                .into(),
            ..WorldOptions::default()
        },
    )
    .await;
    // The inbox's cut-off: mail that reached the server before 2026-01-01 (desk time) is old.
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    let line = format!("address = \"{}\"\n", w.desk_addr);
    std::fs::write(&w.config_path, text.replacen(&line, &format!("{line}since = \"2026-01-01\"\n"), 1)).unwrap();

    let (old, flagged, scored, forged, dropped, fine) =
        (w.addr("old"), w.addr("flagged"), w.addr("scored"), w.addr("forged"), w.addr("dropped"), w.addr("fine"));
    let raced = w.addr("raced");
    // Already in the folder at the first connection: received by the server in June 2025.
    let received_2025 = "Received: from mx.example.test by imap.desk.test; Sun, 1 Jun 2025 08:00:00 +0700\r\n";
    let mut raw = received_2025.as_bytes().to_vec();
    raw.extend(mail(&old, &w.desk_addr, "Printer lantai 3 rusak", &format!("old@{}", w.tag), "", "Mohon dibantu."));
    dovecot_save(&w.desk_addr, &raw);
    let sent = [
        (&flagged, "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=12.4 required=5.0\r\n", "flagged"),
        (&scored, "X-Spam-Score: 7.5\r\n", "scored"),
        (
            &forged,
            "Authentication-Results: mx.desk.test; spf=fail; dmarc=fail (p=reject) header.from=example.test\r\n",
            "forged",
        ),
        (&dropped, "Authentication-Results: mx.desk.test; dmarc=fail header.from=example.test\r\n", "dropped"),
        (&raced, "Authentication-Results: mx.desk.test; dmarc=fail header.from=example.test\r\n", "raced"),
        (
            &fine,
            // An old hop inside the mail: the desk's own server's Received header on top says it is new.
            "Received: from laptop by mx.example.test; Sun, 1 Jun 2025 08:00:00 +0700\r\n\
             Authentication-Results: mx.desk.test; dkim=pass; dmarc=pass header.from=example.test\r\nX-Spam-Score: 1.2\r\n",
            "fine",
        ),
    ];
    for (from, headers, id) in sent {
        let raw = mail(
            from,
            &w.desk_addr,
            "Email tidak bisa kirim lampiran",
            &format!("{id}@{}", w.tag),
            headers,
            "Mohon bantuannya.",
        );
        smtp_send(from, &[&w.desk_addr], &raw).await;
    }
    let mut daemon = w.serve();
    let store = w.store().await;
    // Six messages in: four recorded as messages, two quarantined.
    wait_for("seven messages recorded or quarantined", || async {
        let messages =
            scalar_i64(&store, "SELECT COUNT(*) FROM messages WHERE direction = 'in' AND desk = $1", "hero").await;
        let held = scalar_i64(&store, "SELECT COUNT(*) FROM quarantine WHERE desk = $1", "hero").await;
        (messages == 4 && held == 3).then_some(())
    })
    .await;
    // The control mail is acknowledged: acknowledgements do go out.
    let acks = wait_mailbox(&fine, "INBOX", 1).await;
    assert_eq!(acks.len(), 1);

    // Old mail, flagged spam, spam over the limit: a ticket each, no acknowledgement, the reason recorded.
    for (who, why) in [(&old, "cut-off"), (&flagged, "spam: marked"), (&scored, "spam: score 7.5 over")] {
        let numbers = tickets_of(&store, who).await;
        assert_eq!(numbers.len(), 1, "{who}: one ticket");
        let reason = suppressed(&store, &numbers[0]).await.unwrap_or_else(|| panic!("{who}: no suppression recorded"));
        assert!(reason.contains(why), "{who}: {reason}");
        let out = outbound(&store, &numbers[0]).await;
        assert!(
            out.iter().all(|(kind, to, _, _)| !(kind == "acknowledgement" || to.contains(who.as_str()))),
            "{who}: {out:?}"
        );
    }
    // DMARC failures: quarantined with the reason, no ticket.
    let held = loket::store::list_quarantine(store.pool(), 10).await.unwrap();
    assert_eq!(held.len(), 3);
    assert!(held.iter().all(|q| q.reason.contains("DMARC")), "{held:?}");
    assert!(tickets_of(&store, &forged).await.is_empty());
    // Nothing reached the screened senders (the outbox is empty of anything for them).
    wait_for("the outbox drained", || async {
        (scalar_i64(&store, "SELECT COUNT(*) FROM outbox WHERE status = $1", "pending").await == 0).then_some(())
    })
    .await;
    for who in [&old, &flagged, &scored, &forged, &dropped, &raced] {
        assert!(mailbox(who, "INBOX").await.is_empty(), "{who} got mail");
    }

    // Release the forged-looking but genuine message: one ticket, acknowledged; a second release
    // changes nothing.
    let forged_id: i64 = sqlx::query_scalar("SELECT id FROM quarantine WHERE idempotency_key = $1")
        .bind(format!("mid:forged@{}", w.tag))
        .fetch_one(store.pool())
        .await
        .unwrap();
    let dropped_id: i64 = sqlx::query_scalar("SELECT id FROM quarantine WHERE idempotency_key = $1")
        .bind(format!("mid:dropped@{}", w.tag))
        .fetch_one(store.pool())
        .await
        .unwrap();
    let (ok, show, err) = quarantine_cli(&w, &["show", &forged_id.to_string()]);
    assert!(
        ok && show.contains("DMARC failed") && show.contains("state:    held") && show.contains(&forged),
        "{show}{err}"
    );
    let (ok, out, err) = quarantine_cli(&w, &["release", &forged_id.to_string()]);
    assert!(ok && out.contains("\"created\""), "{out}{err}");
    let (ok, out, err) = quarantine_cli(&w, &["release", &forged_id.to_string()]);
    assert!(!ok && err.contains("already released"), "{out}{err}");
    let numbers = tickets_of(&store, &forged).await;
    assert_eq!(numbers.len(), 1, "one ticket from the released message");
    let acks = wait_mailbox(&forged, "INBOX", 1).await;
    assert!(String::from_utf8_lossy(&acks[0]).contains(&numbers[0]), "the acknowledgement names the ticket");
    // Redelivered after the release: a duplicate, not a second ticket.
    let raw = mail(
        &forged,
        &w.desk_addr,
        "Email tidak bisa kirim lampiran",
        &format!("forged@{}", w.tag),
        "",
        "Mohon bantuannya.",
    );
    smtp_send(&forged, &[&w.desk_addr], &raw).await;
    wait_for("the redelivery processed", || async {
        (mailbox(&w.desk_addr, "Processed").await.len() >= 8).then_some(())
    })
    .await;
    assert_eq!(tickets_of(&store, &forged).await.len(), 1, "still one ticket");
    let (ok, show, _) = quarantine_cli(&w, &["show", &forged_id.to_string()]);
    assert!(ok && show.contains("released") && show.contains("by operator:ops-test"), "{show}");

    // Drop: the bytes go, an audit entry stays, a release is refused.
    let (ok, out, err) = quarantine_cli(&w, &["drop", &dropped_id.to_string()]);
    assert!(ok && out.contains("dropped"), "{out}{err}");
    let (ok, show, _) = quarantine_cli(&w, &["show", &dropped_id.to_string()]);
    assert!(ok && show.contains("stored:   dropped") && show.contains("dropped by operator:ops-test"), "{show}");
    let (ok, _, err) = quarantine_cli(&w, &["release", &dropped_id.to_string()]);
    assert!(!ok && err.contains("dropped"), "{err}");
    assert!(tickets_of(&store, &dropped).await.is_empty());
    // Two operators release the same message at once: one ticket.
    let raced_id: i64 = sqlx::query_scalar("SELECT id FROM quarantine WHERE idempotency_key = $1")
        .bind(format!("mid:raced@{}", w.tag))
        .fetch_one(store.pool())
        .await
        .unwrap();
    let id = raced_id.to_string();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| quarantine_cli(&w, &["release", &id]));
        let b = s.spawn(|| quarantine_cli(&w, &["release", &id]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(u8::from(a.0) + u8::from(b.0), 1, "exactly one release succeeds: {a:?} {b:?}");
    assert_eq!(tickets_of(&store, &raced).await.len(), 1, "one ticket from two releases");
    let (ok, _, err) = quarantine_cli(&w, &["release", &id]);
    assert!(!ok && err.contains("already released"), "{err}");
    let (ok, list, _) = quarantine_cli(&w, &["list"]);
    for (id, state) in [(forged_id, "released"), (dropped_id, "dropped"), (raced_id, "released")] {
        assert!(ok && list.lines().any(|l| l.starts_with(&format!("{id} ")) && l.contains(state)), "{list}");
    }
    let (ok, _, err) = quarantine_cli(&w, &["release", "999999"]);
    assert!(!ok && err.contains("no quarantined message 999999"), "{err}");
    daemon.terminate();
}
