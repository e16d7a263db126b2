//! The walking skeleton against real Dovecot and Postfix: intake by IDLE, acknowledgement,
//! threading, duplicates, crash safety, SMTP outage, automatic mail.

use loket::store::{self, Counts};
use serde_json::Value;

use crate::harness::*;

async fn counts(w: &World) -> Counts {
    store::counts(w.store().await.pool()).await.unwrap()
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON line: {stdout:?}: {e}"))
}

fn header(raw: &[u8], name: &str) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    m.header_raw(name)
        .map(|s| s.trim().to_string())
        .or_else(|| (name.eq_ignore_ascii_case("subject")).then(|| m.subject().unwrap_or_default().to_string()))
}

/// Acceptance 1 and 2: SMTP → Postfix → Dovecot → IDLE → ticket + acknowledgement in the
/// requester's mailbox; then a reply with the tag and one with only In-Reply-To are appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_becomes_ticket_and_replies_thread() {
    let _smtp = MAIL_SERVERS.read().await;
    // A 600 s poll interval: only IDLE can pick the mail up before the deadline.
    let w = World::new("idle", WorldOptions::default()).await;
    let daemon = w.serve();
    let budi = w.addr("budi");
    let first = mail(
        &format!("Budi Santoso <{budi}>"),
        &w.desk_addr,
        "SIGI tidak bisa diakses",
        &format!("{}-1@example.test", w.tag),
        "",
        "Mohon bantuan, SIGI error sejak pagi.",
    );
    // Wait until the daemon has connected and is idling (it creates the Processed folder first).
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    smtp_send(&budi, &[&w.desk_addr], &first).await;

    let acks = wait_mailbox(&budi, "INBOX", 1).await;
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    let t = parsed(ack);
    let tags = loket::ticket::find_tags(&t.subject);
    assert_eq!(tags.len(), 1, "ticket tag in the subject: {:?}", t.subject);
    let number = tags[0].to_string();
    assert!(t.text.contains(&number), "number in the body: {}", t.text);
    assert_eq!(t.in_reply_to, vec![format!("{}-1@example.test", w.tag)]);
    assert_eq!(header(ack, "Auto-Submitted").as_deref(), Some("auto-replied"));
    assert_eq!(t.from.as_ref().unwrap().address.as_str(), w.desk_addr);

    let store = w.store().await;
    let tickets = store::tickets_by_number(store.pool(), &number).await.unwrap();
    assert_eq!(tickets.len(), 1);
    let msgs = store::ticket_messages(store.pool(), tickets[0].id).await.unwrap();
    let inbound: Vec<_> = msgs.iter().filter(|m| m.direction == "in").collect();
    assert_eq!(inbound.len(), 1);
    assert!(inbound[0].body_text.contains("SIGI error sejak pagi"));
    // The ticket holds the original message byte for byte (Postfix adds trace headers on top).
    let raw = store::message_raw(&store, inbound[0].id).await.unwrap().unwrap();
    let (orig, kept) = (parsed(&first), parsed(&raw));
    assert_eq!((kept.message_id, kept.subject, kept.text), (orig.message_id, orig.subject, orig.text), "original kept");
    assert!(raw.windows(37).any(|w| w == b"Mohon bantuan, SIGI error sejak pagi."), "original bytes kept");
    // The inbox keeps nothing unprocessed; the original is flagged and in the processed folder.
    wait_for("INBOX empty", || async { mailbox(&w.desk_addr, "INBOX").await.is_empty().then_some(()) }).await;
    assert_eq!(mailbox(&w.desk_addr, "Processed").await.len(), 1);

    // Acceptance 2: a reply with the tag, and one with only In-Reply-To naming the acknowledgement.
    let reply_tag = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: {} SIGI tidak bisa diakses", tags[0].tag()),
        &format!("{}-2@example.test", w.tag),
        "",
        "Sudah saya coba login ulang.",
    );
    let reply_irt = mail(
        &budi,
        &w.desk_addr,
        "Re: permintaan saya",
        &format!("{}-3@example.test", w.tag),
        &format!("In-Reply-To: <{}>\r\n", t.message_id.clone().unwrap()),
        "Tambahan: tangkapan layar menyusul.",
    );
    smtp_send(&budi, &[&w.desk_addr], &reply_tag).await;
    smtp_send(&budi, &[&w.desk_addr], &reply_irt).await;
    wait_for("both replies appended", || async {
        let m = store::ticket_messages(store.pool(), tickets[0].id).await.unwrap();
        (m.iter().filter(|m| m.direction == "in").count() == 3).then_some(())
    })
    .await;
    let c = counts(&w).await;
    assert_eq!(c.tickets, 1, "no second ticket");
    assert_eq!(c.outbound, 1, "no second acknowledgement");
    let events = store::ticket_events(store.pool(), tickets[0].id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["created", "routed", "acknowledgement_queued", "message_received", "message_received"]);
    drop(daemon);
}

/// Acceptance 3: the same message delivered twice makes one ticket; the same bytes through
/// `loket ingest` twice answer `duplicate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_twice_makes_one_ticket() {
    let _smtp = MAIL_SERVERS.read().await;
    let w = World::new("dup", WorldOptions::default()).await;
    let daemon = w.serve();
    let sari = w.addr("sari");
    let m =
        mail(&sari, &w.desk_addr, "Email dinas penuh", &format!("{}@example.test", w.tag), "", "Kotak surat penuh.");
    smtp_send(&sari, &[&w.desk_addr], &m).await;
    smtp_send(&sari, &[&w.desk_addr], &m).await;
    wait_for("both copies processed", || async {
        (mailbox(&w.desk_addr, "Processed").await.len() == 2 && mailbox(&w.desk_addr, "INBOX").await.is_empty())
            .then_some(())
    })
    .await;
    wait_mailbox(&sari, "INBOX", 1).await;
    let c = counts(&w).await;
    assert_eq!((c.tickets, c.inbound, c.outbound), (1, 1, 1));
    drop(daemon);

    let other = mail(&sari, &w.desk_addr, "Printer", &format!("{}-pipe@example.test", w.tag), "", "x");
    let (code, out, err) = w.ingest(&other);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["action"], "created");
    let number = json(&out)["ticket"].clone();
    let (code, out, err) = w.ingest(&other);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["action"], "duplicate");
    assert_eq!(json(&out)["ticket"], number);
    // Without a Message-ID the SHA-256 of the bytes is the key.
    let no_id = format!("From: {sari}\r\nSubject: tanpa id\r\n\r\nhalo\r\n");
    assert_eq!(json(&w.ingest(no_id.as_bytes()).1)["action"], "created");
    assert_eq!(json(&w.ingest(no_id.as_bytes()).1)["action"], "duplicate");
    assert_eq!(counts(&w).await.tickets, 3);
}

/// Acceptance 4: SIGKILL while working through 200 mails, restart: exactly 200 tickets and 200
/// acknowledgements, every mail processed in the inbox, every acknowledgement delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_the_middle_loses_and_doubles_nothing() {
    let _smtp = MAIL_SERVERS.read().await;
    let w = World::new("crash", WorldOptions::default()).await;
    // 200 requesters: one sender would hit the auto-reply rate limit after 10.
    let users: Vec<String> = (0..200).map(|i| w.addr(&format!("r{i}"))).collect();
    for (i, user) in users.iter().enumerate() {
        let m = mail(
            user,
            &w.desk_addr,
            &format!("Permintaan nomor {i}"),
            &format!("{}-{i}@example.test", w.tag),
            "",
            &format!("Isi permintaan {i}."),
        );
        dovecot_save(&w.desk_addr, &m);
    }
    let mut daemon = w.serve();
    let store = w.store().await;
    wait_for("some tickets before the kill", || async {
        (store::counts(store.pool()).await.unwrap().tickets >= 40).then_some(())
    })
    .await;
    daemon.kill9();
    let at_kill = store::counts(store.pool()).await.unwrap();
    assert!(at_kill.tickets < 200, "the kill came too late to test anything: {at_kill:?}");

    let daemon = w.serve();
    wait_for("200 tickets and 200 delivered acknowledgements", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 200 && c.outbox_sent == 200).then_some(())
    })
    .await;
    wait_for("INBOX drained", || async { mailbox(&w.desk_addr, "INBOX").await.is_empty().then_some(()) }).await;
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound, c.outbox_pending, c.outbox_failed), (200, 200, 200, 0, 0));
    let processed = mailbox(&w.desk_addr, "Processed").await;
    assert_eq!(processed.len(), 200, "every mail marked processed");
    let mut ids = Vec::new();
    for user in &users {
        let acks = wait_mailbox(user, "INBOX", 1).await;
        ids.extend(acks.iter().map(|a| parsed(a).message_id.unwrap()));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every acknowledgement delivered");
    drop(daemon);
}

/// Acceptance 5: with the SMTP server stopped, acknowledgements wait in the outbox and are
/// delivered when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_wait_for_a_dead_smtp_server() {
    let _smtp = MAIL_SERVERS.write().await;
    let w = World::new("outage", WorldOptions::default()).await;
    let stop = std::process::Command::new("sh").arg("-c").arg(&ENV.smtp_stop).status().unwrap();
    assert!(stop.success());
    struct Restart;
    impl Drop for Restart {
        fn drop(&mut self) {
            let _ = std::process::Command::new("sh").arg("-c").arg(&ENV.smtp_start).status();
        }
    }
    let restart = Restart;
    let daemon = w.serve();
    let user = w.addr("wait");
    for i in 0..3 {
        dovecot_save(
            &w.desk_addr,
            &mail(
                &user,
                &w.desk_addr,
                &format!("Jaringan putus {i}"),
                &format!("{}-{i}@example.test", w.tag),
                "",
                "Internet mati.",
            ),
        );
    }
    let store = w.store().await;
    wait_for("failed attempts recorded while SMTP is down", || async {
        let c = store::counts(store.pool()).await.unwrap();
        let r: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE attempts >= 1 AND last_error IS NOT NULL")
                .fetch_one(store.pool())
                .await
                .unwrap(),
            "n",
        );
        (c.tickets == 3 && c.outbox_pending == 3 && r == 3).then_some(())
    })
    .await;
    assert!(mailbox(&user, "INBOX").await.is_empty());
    drop(restart);
    let acks = wait_mailbox(&user, "INBOX", 3).await;
    assert_eq!(acks.len(), 3);
    wait_for("outbox drained", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.outbox_sent == 3 && c.outbox_pending == 0).then_some(())
    })
    .await;
    drop(daemon);
}

/// Acceptance 6: automatic mail gets no acknowledgement. Rule (src/mail/loopguard.rs):
/// auto-replies and bounces never open a ticket (ignored unless they thread to one); bulk and
/// auto-generated mail opens a ticket without an acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_mail_gets_no_acknowledgement() {
    let w = World::new("auto", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    let x = w.addr("x");
    let cases = [
        ("Auto-Submitted: auto-replied\r\n", x.clone(), "ignored"),
        ("", format!("MAILER-DAEMON@{}", "example.test"), "ignored"),
        ("Precedence: bulk\r\n", x.clone(), "created"),
        ("Auto-Submitted: auto-generated\r\n", x.clone(), "created"),
        ("", w.desk_addr.clone(), "ignored"),
    ];
    for (i, (hdr, from, want)) in cases.iter().enumerate() {
        let m =
            mail(from, &w.desk_addr, "Out of office", &format!("{}-{i}@example.test", w.tag), hdr, "Saya sedang cuti.");
        let (code, out, err) = w.ingest(&m);
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["action"], *want, "case {i} ({hdr:?} from {from}): {out}");
    }
    let c = counts(&w).await;
    assert_eq!((c.tickets, c.outbound), (2, 0), "tickets for bulk and auto-generated, no acknowledgement at all");

    // A person's mail is acknowledged; an auto-reply threading to that ticket is appended silently.
    let (_, out, _) =
        w.ingest(&mail(&x, &w.desk_addr, "Tolong reset password", &format!("{}-h@example.test", w.tag), "", "Reset."));
    let number = json(&out)["ticket"].as_str().unwrap().to_string();
    let auto = mail(
        &x,
        &w.desk_addr,
        &format!("Automatic reply: [#{number}]"),
        &format!("{}-oof@example.test", w.tag),
        "Auto-Submitted: auto-replied\r\n",
        "Cuti.",
    );
    assert_eq!(json(&w.ingest(&auto).1)["action"], "appended");
    // A bounce of our acknowledgement is attached to its ticket, never a new one.
    let store = w.store().await;
    let t = &store::tickets_by_number(store.pool(), &number).await.unwrap()[0];
    let ack =
        store::ticket_messages(store.pool(), t.id).await.unwrap().into_iter().find(|m| m.direction == "out").unwrap();
    let bounce = format!(
        "From: MAILER-DAEMON@mx.example.test\r\nTo: {desk}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{tag}-b@mx>\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; {x}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{id}>\r\nSubject: x\r\n\r\n--b--\r\n",
        desk = w.desk_addr,
        tag = w.tag,
        id = ack.message_id.unwrap()
    );
    let out = json(&w.ingest(bounce.as_bytes()).1);
    assert_eq!(out["action"], "appended");
    assert_eq!(out["ticket"], number.as_str());
    let c = counts(&w).await;
    assert_eq!((c.tickets, c.outbound), (3, 1));
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    let bounce = events.iter().find(|e| e.kind == "bounce_received").unwrap();
    assert_eq!(bounce.detail["failed_recipients"], serde_json::json!([x]), "the bounce names the failed recipient");
    assert_eq!(bounce.detail["status"], "5.1.1");
}

/// Auto-replies per sender are rate-limited (invariant 4): the 11th new ticket within an hour
/// from one sender is not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_are_rate_limited_per_sender() {
    // The flood limit on new tickets is raised so that this test sees the acknowledgement limit alone.
    let w = World::new(
        "rate",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            extra: "[limits]\nnew_tickets_per_sender_per_hour = 100\n".into(),
            ..Default::default()
        },
    )
    .await;
    let x = w.addr("chatty");
    for i in 0..12 {
        let (code, out, err) =
            w.ingest(&mail(&x, &w.desk_addr, &format!("Masalah {i}"), &format!("{}-{i}@example.test", w.tag), "", "x"));
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["action"], "created");
    }
    let c = counts(&w).await;
    assert_eq!((c.tickets, c.outbound), (12, 11), "10 acknowledgements and one notice that replies are paused");
    let store = w.store().await;
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM messages WHERE direction = 'out' ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(kinds.iter().filter(|k| *k == "acknowledgement").count(), 10);
    assert_eq!(kinds.last().map(|s| s.as_str()), Some("over_limit"));
}

/// `loket ingest` exits 75 (EX_TEMPFAIL) when the store is unavailable, so the MTA retries, and 65
/// for a message over the size limit, which the MTA returns to its sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_exit_codes_tell_the_mta_what_to_do() {
    let w = World::new(
        "exit",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            extra: "[limits]\nmax_message_bytes = 4096\n".into(),
            ..Default::default()
        },
    )
    .await;
    let m = mail(&w.addr("a"), &w.desk_addr, "x", &format!("{}@example.test", w.tag), "", "x");
    let big = mail(&w.addr("a"), &w.desk_addr, "x", &format!("{}-big@example.test", w.tag), "", &"x".repeat(10_000));
    assert_eq!(w.ingest(&big).0, 65);
    // Point the store at a PostgreSQL port nobody listens on.
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    let broken = w.dir.path().join("broken.toml");
    let url_line = text.lines().find(|l| l.starts_with("url = ")).unwrap();
    std::fs::write(&broken, text.replace(url_line, "url = \"postgres://postgres@127.0.0.1:1/none\"")).unwrap();
    let (code, out, err) = ingest_with(&broken, "hero", &m);
    assert_eq!(code, 75, "stdout {out} stderr {err}");
    assert!(err.contains("store unavailable"), "{err}");
    // Unknown inbox: usage error.
    assert_eq!(ingest_with(&w.config_path, "nope", &m).0, 64);
    // Nothing was lost: the same message goes in once the store is back.
    assert_eq!(json(&w.ingest(&m).1)["action"], "created");
}

/// SIGTERM drains and exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new("term", WorldOptions { outbound_smtp: false, ..Default::default() }).await;
    let mut daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    assert!(daemon.log_text().contains("loket stopped"));
}

/// Maildir intake (the embedded default): a file in `new/` becomes a ticket, moves to `cur/` with
/// the seen flag, and the acknowledgement is written by the file transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_intake_and_file_transport() {
    let w =
        World::new("maildir", WorldOptions { imap: false, maildir: true, outbound_smtp: false, ..Default::default() })
            .await;
    let daemon = w.serve();
    let md = w.dir.path().join("maildir");
    wait_for("the Maildir layout", || async { md.join("tmp").is_dir().then_some(()) }).await;
    let m = mail(
        &w.addr("dewi"),
        &w.desk_addr,
        "Akun intranet terkunci",
        &format!("{}@example.test", w.tag),
        "",
        "Mohon reset.",
    );
    std::fs::write(md.join("tmp/1.eml"), &m).unwrap();
    std::fs::rename(md.join("tmp/1.eml"), md.join("new/1.eml")).unwrap();
    let out_dir = w.dir.path().join("out");
    let ack = wait_for("the acknowledgement file", || async {
        let files: Vec<_> = std::fs::read_dir(&out_dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .collect();
        files.first().map(|f| std::fs::read(f.path()).unwrap())
    })
    .await;
    let t = parsed(&ack);
    assert_eq!(loket::ticket::find_tags(&t.subject).len(), 1, "{}", t.subject);
    assert!(md.join("cur/1.eml:2,S").is_file());
    assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 0);
    assert_eq!(counts(&w).await.tickets, 1);
    drop(daemon);
}

/// IMAP over implicit TLS (IMAPS) and over STARTTLS, trusting the test CA through `ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_over_tls_and_starttls() {
    let _servers = MAIL_SERVERS.read().await;
    for mode in ["tls", "starttls"] {
        let w = World::new(
            &format!("imap-{mode}"),
            WorldOptions { outbound_smtp: false, imap_tls: Some(mode), ..Default::default() },
        )
        .await;
        let daemon = w.serve();
        wait_for(&format!("the daemon to connect over {mode}"), || async {
            daemon.log_text().contains("IMAP connected").then_some(())
        })
        .await;
        dovecot_save(
            &w.desk_addr,
            &mail(&w.addr("x"), &w.desk_addr, "Lewat TLS", &format!("{}@example.test", w.tag), "", "halo"),
        );
        wait_for("the ticket", || async { (counts(&w).await.tickets == 1).then_some(()) }).await;
        wait_for("INBOX drained", || async { mailbox(&w.desk_addr, "INBOX").await.is_empty().then_some(()) }).await;
        drop(daemon);
    }
}
