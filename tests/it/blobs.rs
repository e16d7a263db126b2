//! Raw mail and files on disk, not in the row (issue 19, acceptance 5): the database grows by
//! the text, not by the mail; a crash between writing a file and committing its row leaves no row
//! without its file, and the orphan is swept after the grace period; the sweep keeps what rows
//! name and what is fresh; erasure deletes the person's files; on SQLite and PostgreSQL.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use loket::pipeline::Action;
use loket::store::blobs::{self, BlobId};
use loket::store::{self, Store};

use crate::harness::*;

/// A small deterministic generator: file bytes that do not compress, kill points.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next(256) as u8).collect()
    }
}

/// A mail with a text part and one file (base64, 76-character lines).
fn mail_with_file(from: &str, to: &str, subject: &str, id: &str, text: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Mon, 5 Jan 2026 09:00:00 +0700\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0und\"\r\n\r\n\
         --b0und\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --b0und\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b0und--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

/// Every blob in the files directory: its name and path.
fn files_on_disk(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((e.file_name().to_string_lossy().into_owned(), path));
            }
        }
    }
    out
}

/// The names of the blobs the store's rows reference.
async fn referenced(store: &Store) -> HashSet<String> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT raw_blob FROM messages WHERE raw_blob IS NOT NULL \
         UNION SELECT content_blob FROM attachments WHERE content_blob IS NOT NULL",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    names.into_iter().collect()
}

/// Every referenced blob is on disk, with the bytes its name says.
async fn assert_every_reference_is_on_disk(store: &Store) {
    for name in referenced(store).await {
        let id = BlobId::parse(&name).unwrap_or_else(|| panic!("a row names `{name}`"));
        let bytes = store.files().get(&id).await.unwrap();
        assert!(bytes.is_some(), "a row names the file {name}, which is missing");
    }
}

/// The database's size: its pages, wherever they are (the file or the journal not yet
/// checkpointed).
async fn db_size(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn loket(w: &World, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&w.config_path)
        .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
        .args(args)
        .output()
        .expect("loket runs")
}

/// Acceptance 5 (first half): five mails with a 2 MB file each, taken by `loket ingest` beside
/// the daemon: the SQLite file (and its journal) grows by far less than the mail, the mail is in
/// the files directory, and `loket tickets attachment` and the agents' notifications carry every
/// file byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_live_on_disk_and_the_database_grows_by_far_less_than_the_mail() {
    let w =
        World::new("blobsize", WorldOptions { imap: false, outbound_smtp: false, agents: true, ..Default::default() })
            .await;
    let daemon = w.serve();
    let store = w.store().await;
    let budi = w.addr("budi");
    // A first small mail: the store exists, migrated, with a ticket.
    let first = mail(&budi, &w.desk_addr, "Website error", &format!("{}-0@example.test", w.tag), "", "Website error.");
    let (code, _, err) = w.ingest(&first);
    assert_eq!(code, 0, "{err}");
    wait_for("the first mail's messages sent", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 1 && c.outbox_pending == 0).then_some(())
    })
    .await;
    let before = db_size(&store).await;

    let mut rng = Lcg(19);
    let mut sent = Vec::new();
    let mut mail_bytes = 0;
    for i in 1..=5 {
        let file = rng.bytes(2 * 1024 * 1024);
        let raw = mail_with_file(
            &w.addr(&format!("u{i}")),
            &w.desk_addr,
            &format!("Laporan aplikasi {i}"),
            &format!("{}-{i}@example.test", w.tag),
            "Aplikasi error, log terlampir.",
            &format!("log-{i}.bin"),
            &file,
        );
        mail_bytes += raw.len() as u64;
        let (code, out, err) = w.ingest(&raw);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["action"], "created", "{out}");
        sent.push((v["ticket"].as_str().unwrap().to_string(), file));
    }
    wait_for("every notification and acknowledgement sent", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 6 && c.outbox_pending == 0).then_some(())
    })
    .await;
    let growth = (db_size(&store).await - before) as u64;
    let on_disk: u64 = files_on_disk(&w.files_dir()).iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
    eprintln!("mail {mail_bytes} bytes; database grew by {growth} bytes; files directory holds {on_disk} bytes");
    assert!(growth < mail_bytes / 20, "the database grew by {growth} bytes for {mail_bytes} bytes of mail");
    assert!(on_disk >= mail_bytes, "the raw mail is in the files directory ({on_disk} of {mail_bytes} bytes)");
    // No row holds the mail that arrived, nor a notification that carries its file; only the
    // small mails Loket composed (the acknowledgements) stay in their rows.
    let in_rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT direction, kind, CAST(length(raw) AS BIGINT) FROM messages WHERE raw IS NOT NULL")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(!in_rows.is_empty(), "the acknowledgements stay in their rows");
    for (direction, kind, len) in &in_rows {
        assert_eq!(direction, "out", "a {kind} that arrived is in a row ({len} bytes)");
        assert!(*len as usize <= store::INLINE_COMPOSED_MAX, "a {kind} of {len} bytes is in a row");
    }
    let composed_on_disk: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND raw_blob IS NOT NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(composed_on_disk, 5, "each notification carrying its 2 MB file is in the files directory");
    assert_every_reference_is_on_disk(&store).await;

    // Each file, fetched back from the stored mail, byte for byte.
    for (number, file) in &sent {
        let out = loket(&w, &["tickets", "attachment", number, "1"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == *file, "file 1 of {number}: {} bytes, not the file sent", out.stdout.len());
    }
    // And carried by the agents' notifications (the file transport's .eml files).
    let mut carried: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(w.dir.path().join("out")).unwrap().flatten() {
        let raw = std::fs::read(e.path()).unwrap();
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        carried.extend(m.attachments().map(|a| a.contents().to_vec()));
    }
    for (number, file) in &sent {
        assert!(carried.iter().any(|c| c == file), "the notification of {number} carries its file intact");
    }
    drop(daemon);
}

/// Acceptance 5 (second half), with a failpoint: the daemon aborts right after writing the
/// agents' notification's file (it carries the mail's file; the acknowledgement is small and stays
/// in its row), before the transaction commits. Nothing is recorded, the mail stays
/// in the Maildir, and the files written are orphans; restarted, the daemon makes one ticket;
/// every file a row names exists; the orphan is swept once older than the grace period, and the
/// referenced files stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_file_and_the_commit_leaves_an_orphan_that_is_swept_and_no_row_without_its_file() {
    let w = World::new(
        "blobcrash",
        WorldOptions {
            imap: false,
            maildir: true,
            outbound_smtp: false,
            agents: true,
            storage_extra: "files_grace_secs = 1\n".into(),
            ..Default::default()
        },
    )
    .await;
    let maildir = w.dir.path().join("maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let budi = w.addr("budi");
    let raw = mail_with_file(
        &budi,
        &w.desk_addr,
        "Website error",
        &format!("{}-c1@example.test", w.tag),
        "Website kemendag error, tangkapan layar terlampir.",
        "layar.bin",
        &Lcg(5).bytes(100_000),
    );
    std::fs::write(maildir.join("new").join("c1.eml"), &raw).unwrap();

    // Abort after the second file write: the mail's own, then its agents' notification's.
    let mut daemon = w.serve_with(&[("LOKET_TEST_ABORT_AFTER_BLOB_WRITE", "2")]);
    let status = daemon.wait_exit();
    assert!(!status.success(), "the failpoint aborted the daemon: {status:?}");
    let store = w.store().await;
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound), (0, 0, 0), "nothing of the uncommitted transaction");
    let orphans: HashSet<String> = files_on_disk(&w.files_dir()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(orphans.len(), 2, "the mail's file and the notification's, written before the commit: {orphans:?}");
    assert!(referenced(&store).await.is_empty());
    assert_eq!(std::fs::read_dir(maildir.join("new")).unwrap().count(), 1, "the mail waits in new/");

    // Restarted: the mail is processed once.
    let daemon = w.serve();
    wait_for("one ticket, its acknowledgement and notification sent", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 1 && c.outbox_pending == 0 && c.outbox_sent >= 2).then_some(())
    })
    .await;
    drop(daemon);
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound), (1, 1), "processed once");
    assert_every_reference_is_on_disk(&store).await;
    let refs = referenced(&store).await;
    let left: Vec<String> = orphans.iter().filter(|o| !refs.contains(*o)).cloned().collect();
    assert_eq!(left.len(), 1, "the first notification's file is an orphan (the mail's own is used again)");

    // The sweep (`loket retention` runs it) deletes the orphan once it is older than the grace
    // period, and keeps every referenced file.
    wait_for("the orphan swept", || async {
        let out = loket(&w, &["retention"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let now: HashSet<String> = files_on_disk(&w.files_dir()).into_iter().map(|(n, _)| n).collect();
        (!now.contains(&left[0])).then_some(now)
    })
    .await;
    let now: HashSet<String> = files_on_disk(&w.files_dir()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(now, refs, "exactly the referenced files are left");
    assert_every_reference_is_on_disk(&store).await;
}

/// Acceptance 5 (second half), without a failpoint: the daemon SIGKILLed up to ten times at
/// random points while it takes 120 mails with files from a Maildir — each kill once it wrote a
/// random number of new files, so most kills fall inside a transaction. Afterwards every mail is
/// one ticket and every file a row names is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_ingest_leave_no_row_naming_a_missing_file() {
    // Two messages per transaction: a transaction's files are written together right before its
    // commit, so small batches give the kills many such moments to fall into.
    let w = World::new(
        "blobkill",
        WorldOptions {
            imap: false,
            maildir: true,
            outbound_smtp: false,
            extra: "[limits]\nbatch_messages = 2\n".into(),
            ..Default::default()
        },
    )
    .await;
    let maildir = w.dir.path().join("maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let mut rng = Lcg(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("kill-point seed: {}", rng.0);
    let total = 120;
    for i in 0..total {
        let raw = mail_with_file(
            &w.addr(&format!("k{}", i % 20)),
            &w.desk_addr,
            &format!("Permintaan {i}"),
            &format!("{}-{i}@example.test", w.tag),
            &format!("Website error, permintaan nomor {i}."),
            &format!("berkas-{i}.bin"),
            &rng.bytes(100_000),
        );
        std::fs::write(maildir.join("new").join(format!("{i:03}.eml")), raw).unwrap();
    }
    let store = w.store().await;
    let mut kills = 0;
    for _ in 0..10 {
        let before = store::counts(store.pool()).await.unwrap();
        if before.tickets >= total - 3 {
            break;
        }
        let files_before = files_on_disk(&w.files_dir()).len();
        let mut daemon = w.serve();
        // A random point: once 1 to 12 more files were written (a file is written before its
        // transaction commits), or the mail ran out.
        // The files are counted every few milliseconds (a `wait_for` tick lets a fast daemon
        // write dozens between looks, and the mail would run out before the kills do); the
        // store is asked only now and then whether the mail ran out.
        let more = 1 + rng.next(12) as usize;
        let mut look = 0u32;
        wait_for_every("progress before the kill", Duration::from_millis(5), || {
            look += 1;
            let ask_store = look.is_multiple_of(20);
            let (w, store) = (&w, &store);
            async move {
                let written = files_on_disk(&w.files_dir()).len() >= files_before + more;
                let ran_out = ask_store && store::counts(store.pool()).await.unwrap().tickets >= total;
                (written || ran_out).then_some(())
            }
        })
        .await;
        daemon.kill9();
        kills += 1;
        assert_every_reference_is_on_disk(&store).await;
    }
    assert!(kills >= 5, "the kills came too late to test anything ({kills})");
    let daemon = w.serve();
    wait_for("every mail a ticket, every message sent", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == total && c.outbox_pending == 0).then_some(())
    })
    .await;
    drop(daemon);
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound), (total, total), "each mail once");
    assert_every_reference_is_on_disk(&store).await;
    eprintln!("{kills} kills; {} files on disk", files_on_disk(&w.files_dir()).len());
}

/// Acceptance 5 on both backends, in process: the row names the file, which holds the mail; a
/// row written before the files directory (bytes in the column) still reads; the sweep keeps
/// referenced and fresh files and deletes old unreferenced ones (time injected); `forget`
/// deletes the person's files at once.
async fn files_on(pg: bool) {
    let w = World::new(
        if pg { "blobs-pg" } else { "blobs-sqlite" },
        WorldOptions { agents: true, ..WorldOptions::in_process(pg) },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let now = 1_767_578_400_000; // 2026-01-05 09:00 WIB
    let citra = w.addr("citra");
    let file = Lcg(7).bytes(300_000);
    let raw = mail_with_file(
        &citra,
        &w.desk_addr,
        "Aplikasi error",
        &format!("{}-f1@example.test", w.tag),
        "Aplikasi kepegawaian error sejak pagi.",
        "log.bin",
        &file,
    );
    let o = p.process("hero", &raw, now).await.unwrap();
    assert_eq!(o.action, Action::Created);
    let t = ticket(&store, &o.ticket.unwrap().to_string()).await;
    let (row, inline, blob): (i64, Option<Vec<u8>>, Option<String>) =
        sqlx::query_as("SELECT id, raw, raw_blob FROM messages WHERE ticket_id = $1 AND direction = 'in'")
            .bind(t.id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(inline.is_none(), "the row holds no bytes");
    let blob = BlobId::parse(&blob.expect("the row names its file")).unwrap();
    assert_eq!(blob, BlobId::of(&raw), "named by its SHA-256");
    assert_eq!(store::message_raw(&store, row).await.unwrap().unwrap(), raw);
    let mut conn = store.pool().acquire().await.unwrap();
    let files = store::ticket_files(&mut conn, t.id).await.unwrap();
    let (bytes, _) = store::file_bytes(&mut conn, store.files(), &files[0]).await.unwrap().unwrap();
    assert!(bytes == file, "the file cut from the mail on disk");
    drop(conn);

    // A row from before the files directory keeps its bytes in the column and still reads.
    let old_raw = mail(&citra, &w.desk_addr, "Lama", &format!("{}-old@example.test", w.tag), "", "Pesan lama.");
    let old_row: i64 = sqlx::query_scalar(
        "INSERT INTO messages (desk, ticket_id, direction, channel, idempotency_key, kind, action, peer_address, \
         from_address, to_addresses, subject, body_text, raw, size, created_at) \
         VALUES ('hero', $1, 'in', 'email', 'old-1', 'person', 'appended', $2, $2, '[]', 'Lama', 'Pesan lama.', $3, $4, $5) \
         RETURNING id",
    )
    .bind(t.id)
    .bind(&citra)
    .bind(old_raw.clone())
    .bind(old_raw.len() as i64)
    .bind(now)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(store::message_raw(&store, old_row).await.unwrap().unwrap(), old_raw);

    // The sweep: an orphan (a file no row names) is kept while fresh and deleted once old;
    // referenced files are kept whatever their age.
    let orphan = store.files().put(b"an uncommitted transaction's file").await.unwrap();
    store.files().sync().await.unwrap();
    let real_now = loket::now_ms();
    let grace = Duration::from_secs(3600);
    let swept = blobs::sweep(&store, real_now, grace).await.unwrap();
    assert_eq!(swept.deleted, 0, "everything is fresh");
    assert!(store.files().get(&orphan).await.unwrap().is_some());
    let later = real_now + 2 * 3_600_000;
    let swept = blobs::sweep(&store, later, grace).await.unwrap();
    assert_eq!(swept.deleted, 1, "{swept:?}");
    assert!(store.files().get(&orphan).await.unwrap().is_none(), "the old orphan is gone");
    assert!(store.files().get(&blob).await.unwrap().is_some(), "the referenced mail is kept");
    assert_every_reference_is_on_disk(&store).await;

    // Quarantined mail is on disk too; `quarantine drop` deletes its file.
    let poison = format!(
        "From: {citra}\r\nTo: {}\r\nSubject: Racun\r\nMessage-ID: <{}-q1@example.test>\r\n\r\nWebsite\0 error\r\n",
        w.desk_addr, w.tag
    )
    .into_bytes();
    assert_eq!(p.process("hero", &poison, now).await.unwrap().action, Action::Quarantined);
    let (qid, q_inline, q_blob): (i64, Vec<u8>, Option<String>) =
        sqlx::query_as("SELECT id, raw, raw_blob FROM quarantine").fetch_one(store.pool()).await.unwrap();
    assert!(q_inline.is_empty(), "the quarantine row holds no bytes");
    let q_blob = BlobId::parse(&q_blob.expect("the row names its file")).unwrap();
    let (entry, _) = store::show_quarantine(store.pool(), store.files(), qid).await.unwrap().unwrap();
    assert_eq!(entry.raw, poison, "`quarantine show --raw` reads the file");
    p.drop_quarantined(qid, "operator:test", now).await.unwrap();
    assert!(store.files().get(&q_blob).await.unwrap().is_none(), "a dropped message's file is deleted");

    // Forget deletes her files at once (they are fresh: the grace period does not hold them).
    let mine: Vec<String> =
        sqlx::query_scalar("SELECT raw_blob FROM messages WHERE ticket_id = $1 AND raw_blob IS NOT NULL")
            .bind(t.id)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(mine.len() >= 2, "her mail and the desk's mails about it: {mine:?}");
    let addresses = loket::store::privacy::person_addresses(&store, &citra).await.unwrap();
    loket::store::privacy::forget(&store, &addresses, "erased-test@erased.invalid", "operator:test", now + 1000)
        .await
        .unwrap();
    for name in &mine {
        assert!(
            store.files().get(&BlobId::parse(name).unwrap()).await.unwrap().is_none(),
            "her file {name} is deleted"
        );
    }
    assert!(referenced(&store).await.is_empty(), "no row names a file of hers");
    let legacy: Option<Vec<u8>> = sqlx::query_scalar("SELECT raw FROM messages WHERE id = $1")
        .bind(old_row)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(legacy.is_none(), "the old row's bytes are erased too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_disk_on_sqlite() {
    files_on(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_disk_on_postgres() {
    files_on(true).await;
}
