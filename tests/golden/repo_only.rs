//! A clone with nothing beside it tests itself: no test, bench or script may read the team's
//! shared folder outside the repository except through `runner::optional_shared`, which skips
//! with a printed reason when it is absent.

use std::path::Path;

use crate::mail::decide_bytes;
use crate::runner::{files_under, optional_shared, repo};

/// Folders scanned, and the data folders inside them that are not code.
const SCANNED: &[&str] = &["tests", "benches", "src", "scripts"];
const DATA: &[&str] = &["tests/corpus", "tests/fixtures", "tests/golden/mail", "tests/golden/trim"];

/// Where `optional_shared` lives; lines inside that function may name the shared folder.
const HELPER_FILE: &str = "tests/golden/runner.rs";
const HELPER_FN: &str = "pub fn optional_shared(";

/// Uses of the shared folder in `text` outside the optional helper: (line number, line).
fn outside_uses(rel: &str, text: &str) -> Vec<(usize, String)> {
    // Built at run time so that this file does not name them itself.
    let needles = [["..", "/shared"].concat(), ["/work", "/shared"].concat()];
    let mut in_helper = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if rel == HELPER_FILE && line.starts_with(HELPER_FN) {
            in_helper = true;
        }
        if !in_helper && needles.iter().any(|n| line.contains(n.as_str())) {
            out.push((i + 1, line.trim().to_string()));
        }
        if in_helper && line == "}" {
            in_helper = false;
        }
    }
    out
}

#[test]
fn nothing_reads_outside_the_repository() {
    let root = repo();
    let mut uses = Vec::new();
    let mut scanned = 0;
    for dir in SCANNED {
        for f in files_under(&root.join(dir)) {
            let rel = f.strip_prefix(&root).unwrap_or(&f).to_string_lossy().replace('\\', "/");
            if DATA.iter().any(|d| rel.starts_with(&format!("{d}/"))) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            scanned += 1;
            for (n, line) in outside_uses(&rel, &text) {
                uses.push(format!("{rel}:{n}: {line}"));
            }
        }
    }
    assert!(scanned > 50, "only {scanned} files scanned under {SCANNED:?}");
    assert!(
        uses.is_empty(),
        "these lines read the shared folder outside the repository; copy the data into the repository \
         (tests/corpus, tests/fixtures) or go through runner::optional_shared, which skips when it is absent:\n{}",
        uses.join("\n")
    );
}

/// The scanner itself: a read outside the repository is found and named; the helper's own lines are not.
#[test]
fn the_scanner_names_file_and_line() {
    let shared = ["..", "/shared"].concat();
    let code = format!("fn a() {{}}\nlet p = repo().join(\"{shared}/corpus\");\n");
    assert_eq!(outside_uses("tests/x.rs", &code), vec![(2, format!("let p = repo().join(\"{shared}/corpus\");"))]);
    let helper = format!("{HELPER_FN}rel: &str) {{\n    repo().join(\"{shared}\")\n}}\nlet q = \"{shared}\";\n");
    assert_eq!(outside_uses(HELPER_FILE, &helper), vec![(4, format!("let q = \"{shared}\";"))]);
    assert_eq!(outside_uses("tests/y.rs", &helper).len(), 2, "the helper is exempt only in its own file");
}

/// Where the team's full shared corpus sits beside the repository, every raw message in it (also
/// those not copied into `tests/corpus/`) goes through parse, loop guard, bounce and trim without
/// a panic. A clone without it skips this with a printed reason.
#[test]
fn the_full_shared_corpus_never_panics_when_present() {
    let Some(dir) = optional_shared("corpus") else { return };
    let mut panics = Vec::new();
    let mut n = 0;
    for f in files_under(&dir) {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let ext = f.extension().map(|e| e.to_string_lossy().to_string()).unwrap_or_default();
        if name == "SOURCE.md" || ["json", "yml", "yaml", "md", "tsv", "txt", "html"].contains(&ext.as_str()) {
            continue;
        }
        let Ok(raw) = std::fs::read(&f) else { continue };
        n += 1;
        let rel = f.strip_prefix(&dir).unwrap_or(Path::new("?")).to_string_lossy().to_string();
        if std::panic::catch_unwind(|| decide_bytes(&rel, &raw)).is_err() {
            panics.push(rel);
        }
    }
    eprintln!("shared corpus: {n} files, {} panics", panics.len());
    assert!(n > 0, "no files under {}", dir.display());
    assert!(panics.is_empty(), "panicked on: {panics:?}");
}
