//! Personal data (issue 19): `loket export` gives one person everything held about them, and
//! `loket forget` erases them — nothing of theirs left in the SQLite file or its journal, the
//! desk's statistics unchanged, another requester's ticket that named them keeping its text.
//! Against the daemon, Postfix and Dovecot.

use std::process::Command;

use crate::harness::*;

fn loket(w: &World, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&w.config_path)
        .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
        .args(args)
        .output()
        .expect("loket runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The store's files (the database, its WAL and shared memory, and every file of the files
/// directory: raw mail and chat files) as one lower-cased text.
fn store_bytes(w: &World) -> String {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        if let Ok(b) = std::fs::read(w.dir.path().join(format!("loket.db{suffix}"))) {
            all.extend(b);
        }
    }
    all.extend(files_bytes(w).into_bytes());
    String::from_utf8_lossy(&all).to_ascii_lowercase()
}

/// Every file under the files directory, as one lower-cased text.
fn files_bytes(w: &World) -> String {
    fn walk(dir: &std::path::Path, all: &mut Vec<u8>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, all);
            } else if let Ok(b) = std::fs::read(&path) {
                all.extend(b);
            }
        }
    }
    let mut all = Vec::new();
    walk(&w.files_dir(), &mut all);
    String::from_utf8_lossy(&all).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_gives_a_person_everything_and_forget_leaves_nothing_but_the_statistics() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new("privacy", WorldOptions { agents: true, ..Default::default() }).await;
    let daemon = w.serve();
    let (citra, budi) = (w.addr("citra"), w.addr("budi"));
    let secret_phrase = "kunci lemari arsip nomor tujuh belas";
    let request = mail(
        &citra,
        &w.desk_addr,
        "Printer ruang arsip macet",
        &format!("{}-p1@example.test", w.tag),
        "",
        &format!("Selamat pagi, printer di ruang arsip macet. Catatan: {secret_phrase}.\nCitra Dewi"),
    );
    smtp_send(&citra, &[&w.desk_addr], &request).await;
    // Budi's own ticket names Citra: it keeps its text, only her address goes.
    let other = mail(
        &budi,
        &w.desk_addr,
        "Akses folder bersama",
        &format!("{}-b1@example.test", w.tag),
        "",
        &format!("Mohon akses folder bersama seperti milik {citra}."),
    );
    smtp_send(&budi, &[&w.desk_addr], &other).await;
    let ack = parsed(&wait_mailbox(&citra, "INBOX", 1).await[0]);
    wait_mailbox(&budi, "INBOX", 1).await;
    let number = loket::ticket::find_tags(&ack.subject)[0].to_string();
    let store = w.store().await;
    wait_for("both acknowledgements sent", || async {
        let c = loket::store::counts(store.pool()).await.unwrap();
        (c.tickets == 2 && c.outbox_pending == 0).then_some(())
    })
    .await;
    let report = |w: &World| {
        let (ok, out, err) =
            loket(w, &["report", "--desk", "hero", "--from", "2026-01-01", "--to", "2030-12-31", "--format", "json"]);
        assert!(ok, "{err}");
        let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_object_mut().unwrap().remove("generated").expect("the report says when it was made");
        // The figures that grow with the clock between the two reports, in working hours: the
        // wait of a ticket still in triage and the overrun of a clock still running.
        v["summary"]["triage"].as_object_mut().unwrap().remove("longest_wait_min");
        for b in v["breaches"].as_array_mut().unwrap() {
            b.as_object_mut().unwrap().remove("over_min");
        }
        v
    };
    let before = report(&w);

    // Export: her ticket with its messages, the acknowledgement, and Budi's mail that names her.
    let (ok, out, err) = loket(&w, &["export", &citra.to_uppercase()]);
    assert!(ok, "{err}");
    let data: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(data["tickets"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(data["tickets"][0]["number"], number.as_str());
    let texts: Vec<&str> = data["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.contains(secret_phrase)), "her request: {texts:?}");
    // Her raw mail too, read back from the files directory.
    use base64::Engine;
    let raws: Vec<String> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["raw_base64"].as_str())
        .map(|r| String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(r).unwrap()).into_owned())
        .collect();
    assert_eq!(raws.len(), data["messages"].as_array().unwrap().len(), "every message with its raw mail: {out}");
    assert!(raws.iter().any(|r| r.contains(secret_phrase)), "her request's raw mail");
    assert!(texts.iter().any(|t| t.contains(&number) && t.contains("Terima kasih")), "the acknowledgement: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("folder bersama")), "Budi's mail naming her: {texts:?}");
    assert!(!texts.iter().any(|t| t.contains("Akses folder") && !t.contains(&citra)), "nothing else of Budi's");
    // To a file, private.
    let file = w.dir.path().join("export.json");
    let (ok, _, err) = loket(&w, &["export", &citra, "--out", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::remove_file(&file).unwrap();

    // Forget: refused without --yes; then done while the daemon runs.
    let (ok, _, err) = loket(&w, &["forget", &citra]);
    assert!(!ok && err.contains("--yes"), "{err}");
    assert!(store_bytes(&w).contains(secret_phrase) || store_bytes(&w).contains(&citra), "the test can see her data");
    assert!(files_bytes(&w).contains(secret_phrase), "her raw mail is in the files directory");
    let (ok, out, err) = loket(&w, &["forget", &citra, "--yes"]);
    assert!(ok, "{err}");
    let counts: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(counts["tickets"], 1, "{out}");
    assert!(!out.contains(&citra) && !err.contains(&citra), "the output names no one: {out} {err}");
    drop(daemon);

    // Nothing of hers is left in the store's files, nor in what a reader of the store sees.
    let bytes = store_bytes(&w);
    for needle in [citra.as_str(), secret_phrase, "citra dewi", "printer ruang arsip macet"] {
        assert!(!bytes.contains(&needle.to_ascii_lowercase()), "`{needle}` is still in the store's files");
    }
    let (ok, out, _) = loket(&w, &["export", &citra]);
    assert!(ok);
    let left: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(left["tickets"].as_array().unwrap().is_empty() && left["messages"].as_array().unwrap().is_empty(), "{out}");
    // Her ticket is still counted, under its number, and says it was erased.
    let store = w.store().await;
    let t = ticket(&store, &number).await;
    assert!(t.requester_address.as_str().ends_with("@erased.invalid"), "{}", t.requester_address);
    let events = loket::store::ticket_events(store.pool(), t.id).await.unwrap();
    let erased = events.iter().find(|e| e.kind == "personal_data_erased").expect("the audit event");
    assert!(erased.actor.starts_with("operator:") && !erased.detail.to_string().contains("citra"), "{erased:?}");
    assert_eq!(report(&w), before, "the report's figures are unchanged");
    // Budi's ticket keeps its words; her address in them is replaced.
    let budi_messages: Vec<String> = sqlx::query_scalar("SELECT body_text FROM messages WHERE peer_address = $1")
        .bind(&budi)
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(
        budi_messages.iter().any(|b| b.contains("Mohon akses folder bersama seperti milik erased-")),
        "{budi_messages:?}"
    );
}

/// Retention (issue 19, acceptance 3): a closed ticket past `closed_ticket_days` is anonymised by
/// the daemon's retention job — nothing of it left in the store's files, its statistics in the
/// report unchanged — while the same requester's open ticket keeps everything; raw mail past
/// `raw_mail_days` is purged with the text kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_job_anonymises_closed_tickets_past_their_period_and_keeps_the_statistics() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new(
        "retention",
        WorldOptions {
            agents: true,
            desk_extra: "[desk.retention]\nraw_mail_days = 7\nclosed_ticket_days = 30\n".into(),
            ..Default::default()
        },
    )
    .await;
    let daemon = w.serve();
    let dodi = w.addr("dodi");
    let old_phrase = "proyektor ruang rapat utama berkedip";
    for (i, subject, body) in [
        (1, "Proyektor rusak", format!("Selamat pagi, {old_phrase} sejak kemarin.")),
        (2, "Akun email terkunci", "Akun email saya terkunci, mohon dibantu.".to_string()),
    ] {
        let raw = mail(&dodi, &w.desk_addr, subject, &format!("{}-r{i}@example.test", w.tag), "", &body);
        smtp_send(&dodi, &[&w.desk_addr], &raw).await;
    }
    wait_mailbox(&dodi, "INBOX", 2).await;
    let store = w.store().await;
    wait_for("both acknowledgements sent", || async {
        let c = loket::store::counts(store.pool()).await.unwrap();
        (c.tickets == 2 && c.outbox_pending == 0).then_some(())
    })
    .await;
    drop(daemon);
    // Forty days pass for the first ticket, closed long ago; the second stays open and recent.
    let day = 86_400_000i64;
    let now = loket::now_ms();
    let old: i64 = sqlx::query_scalar("SELECT id FROM tickets WHERE subject = 'Proyektor rusak'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE tickets SET status = 'closed', created_at = $1, resolved_at = $2, closed_at = $2 WHERE id = $3",
    )
    .bind(now - 45 * day)
    .bind(now - 40 * day)
    .bind(old)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE messages SET created_at = $1 WHERE ticket_id = $2")
        .bind(now - 45 * day)
        .bind(old)
        .execute(store.pool())
        .await
        .unwrap();
    let report = |w: &World| {
        let (ok, out, err) =
            loket(w, &["report", "--desk", "hero", "--from", "2020-01-01", "--to", "2030-12-31", "--format", "csv"]);
        assert!(ok, "{err}");
        out
    };
    let before = report(&w);
    assert!(store_bytes(&w).contains(old_phrase), "the test can see the old ticket's words");
    assert!(files_bytes(&w).contains(old_phrase), "the old ticket's raw mail is in the files directory");

    // The daemon's retention job runs at start.
    let daemon = w.serve();
    wait_for("the closed ticket anonymised", || async {
        let t: String = sqlx::query_scalar("SELECT requester_address FROM tickets WHERE id = $1")
            .bind(old)
            .fetch_one(store.pool())
            .await
            .unwrap();
        t.ends_with("@erased.invalid").then_some(())
    })
    .await;
    wait_for("the job logged its counts", || async { daemon.log_text().contains("retention applied").then_some(()) })
        .await;
    drop(daemon);
    let bytes = store_bytes(&w);
    for needle in [old_phrase, "proyektor rusak"] {
        assert!(!bytes.contains(needle), "`{needle}` is still in the store's files");
    }
    // The open ticket keeps its requester and words; its raw mail is recent and kept too.
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT t.id, t.status, t.requester_address, COALESCE(m.body_text, '') FROM tickets t \
         LEFT JOIN messages m ON m.ticket_id = t.id AND m.direction = 'in' WHERE t.id <> $1",
    )
    .bind(old)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        rows.iter().any(|(_, status, who, text)| status != "closed" && *who == dodi && text.contains("terkunci")),
        "the open ticket keeps its requester and words: {rows:?}"
    );
    let raws: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE raw_blob IS NOT NULL AND ticket_id <> $1")
        .bind(old)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(raws > 0, "recent raw mail is kept");
    assert_eq!(report(&w), before, "the report's figures are unchanged");
    // A second run finds nothing.
    let (ok, out, err) = loket(&w, &["retention"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"hero {"raw_mails":0,"tickets":0}"#);
}
