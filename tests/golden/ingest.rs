//! `loket ingest --inbox NAME FILE|DIR…`: many messages in one process (a Maildir's `new/` and
//! `cur/`, plain files), committed in batches; one JSON line per message naming its file; a file
//! too large is reported on its line and the others go on; running it again doubles nothing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::hero::Hero;
use crate::runner::repo;

fn mail(n: usize) -> String {
    format!(
        "From: user{n}@example.test\r\nTo: hero@desk.test\r\nSubject: Printer {n} rusak\r\n\
         Message-ID: <ingest-{n}@example.test>\r\nDate: Mon, 05 Jan 2026 09:00:00 +0700\r\n\r\nPrinter rusak.\r\n"
    )
}

fn ingest(config: &Path, args: &[&Path]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(config)
        .args(["ingest", "--inbox", "hero"])
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[test]
fn a_maildir_and_files_in_one_process_in_batches_and_again_without_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("url = \"sqlite://{}\"\n", dir.path().join("loket.db").display());
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.path().join("out").display());
    let text = Hero {
        storage: &db,
        outbound: &out,
        sections: "[limits]\nmax_message_bytes = 2048\nbatch_messages = 2\n",
        ..Default::default()
    }
    .toml(&repo());
    let config = dir.path().join("loket.toml");
    std::fs::write(&config, text).unwrap();
    let maildir = dir.path().join("Maildir");
    for (sub, n) in [("new", 0), ("new", 1), ("new", 2), ("cur", 3), ("cur", 4)] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
        std::fs::write(maildir.join(sub).join(format!("{n}.eml")), mail(n)).unwrap();
    }
    let big = dir.path().join("big.eml");
    std::fs::write(&big, format!("{}{}", mail(9), "x".repeat(3000))).unwrap();

    let (code, lines) = ingest(&config, &[&maildir, &big]);
    assert_eq!(code, 65, "one message refused: {lines:?}");
    assert_eq!(lines.len(), 6, "{lines:?}");
    let created: Vec<&str> =
        lines.iter().filter(|l| l["action"] == "created").map(|l| l["file"].as_str().unwrap()).collect();
    assert_eq!(created.len(), 5, "{lines:?}");
    assert!(created[0].ends_with("new/0.eml") && created[4].ends_with("cur/4.eml"), "{created:?}");
    let refused = lines.iter().find(|l| l["error"].is_string()).unwrap();
    assert!(refused["file"].as_str().unwrap().ends_with("big.eml"), "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("limits.max_message_bytes"), "{refused}");
    let numbers: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["ticket"].as_str()).collect();
    assert_eq!(numbers.len(), 5, "five tickets: {lines:?}");

    let (code, again) = ingest(&config, &[&maildir]);
    assert_eq!(code, 0, "{again:?}");
    assert_eq!(again.len(), 5);
    assert!(again.iter().all(|l| l["action"] == "duplicate"), "{again:?}");
}

/// A Maildir taken whole (a mailbox moved to Loket): its `cur/` (mail already read) and `new/` in
/// one name order, the delivery time each name starts with, so that a reply waiting in `new/`
/// joins the request read long ago in `cur/` instead of opening a ticket before it.
#[test]
fn a_maildirs_cur_and_new_are_taken_in_one_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("url = \"sqlite://{}\"\n", dir.path().join("loket.db").display());
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.path().join("out").display());
    let text = Hero { storage: &db, outbound: &out, ..Default::default() }.toml(&repo());
    let config = dir.path().join("loket.toml");
    std::fs::write(&config, text).unwrap();
    let maildir = dir.path().join("Maildir");
    let reply = "From: user1@example.test\r\nTo: hero@desk.test\r\nSubject: Re: Printer 1 rusak\r\n\
                 Message-ID: <ingest-1-reply@example.test>\r\nIn-Reply-To: <ingest-1@example.test>\r\n\
                 Date: Tue, 06 Jan 2026 09:00:00 +0700\r\n\r\nMasih rusak.\r\n"
        .to_string();
    for (sub, name, raw) in [
        ("cur", "1767578400.M1P1.host:2,S", mail(1)),
        ("new", "1767664800.M2P1.host", reply),
        ("cur", "1767600000.M3P1.host:2,S", mail(2)),
    ] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
        std::fs::write(maildir.join(sub).join(name), raw).unwrap();
    }
    let (code, lines) = ingest(&config, &[&maildir]);
    assert_eq!(code, 0, "{lines:?}");
    let taken: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["file"].as_str().unwrap().rsplit('/').next().unwrap(), l["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        taken,
        [
            ("1767578400.M1P1.host:2,S", "created"),
            ("1767600000.M3P1.host:2,S", "created"),
            ("1767664800.M2P1.host", "appended")
        ]
    );
    assert_eq!(lines[0]["ticket"], lines[2]["ticket"], "{lines:?}");
}
