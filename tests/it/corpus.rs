//! Acceptance 7: every message of the zammad and mail-parser corpora (`tests/corpus/`) goes through
//! `loket ingest` without a panic: a ticket (or an append, duplicate or ignore) or a quarantine
//! with a reason. (The `golden` binary pins each message's parse, loop-guard, bounce and trim
//! decisions without a database.)

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::*;

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            corpus_files(&p, out);
        } else {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let ext = p.extension().map(|e| e.to_string_lossy().to_string()).unwrap_or_default();
            if name == "SOURCE.md" || ["json", "yml", "yaml", "md", "tsv"].contains(&ext.as_str()) {
                continue;
            }
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_corpus_never_panics() {
    let corpus = repo().join("tests/corpus");
    let mut files = Vec::new();
    for sub in ["zammad/mail", "mail-parser/eml"] {
        corpus_files(&corpus.join(sub), &mut files);
    }
    files.sort();
    assert!(files.len() >= 200, "corpus not found or incomplete: {} files under {}", files.len(), corpus.display());
    let w = World::new("corpus", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let (code, out, err) = w.ingest(&raw);
        assert!(!err.contains("panicked"), "{}: panic: {err}", f.display());
        assert_eq!(code, 0, "{}: exit {code}: {err}", f.display());
        let v: Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{}: bad output {out:?}: {e}", f.display()));
        let action = v["action"].as_str().unwrap().to_string();
        match action.as_str() {
            "created" | "appended" => assert!(v["ticket"].is_string(), "{}: {v}", f.display()),
            "quarantined" | "ignored" => {
                assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{}: {v}", f.display())
            }
            "duplicate" => {}
            other => panic!("{}: unknown action {other}", f.display()),
        }
        *tally.entry(action).or_default() += 1;
    }
    eprintln!("corpus: {} messages: {tally:?}", files.len());
    assert!(
        tally.get("created").copied().unwrap_or(0) > files.len() / 2,
        "most corpus mail should open tickets: {tally:?}"
    );
}
