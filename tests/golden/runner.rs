//! The golden-file runner: each case's actual result, serialised as pretty JSON, is compared with
//! its expectation file under `tests/golden/`; every mismatching, missing or stale file is listed
//! with a line diff (all of them, not just the first) and the test fails. `UPDATE_GOLDEN=1 cargo
//! test --test golden` rewrites the expectations instead (and deletes stale ones), so a reviewer
//! sees each changed decision in `git diff`.
//!
//! Also the one place that may look outside the repository: [`optional_shared`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Lines of diff shown per mismatching file; the rest is summarised.
const MAX_DIFF_LINES: usize = 80;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The third-party inputs kept in the repository (`tests/corpus/<source>/`, see its README).
pub fn corpus() -> PathBuf {
    repo().join("tests/corpus")
}

/// Where the expectations live.
pub fn golden_root() -> PathBuf {
    repo().join("tests/golden")
}

/// An optional data set beside the repository (the team's shared folder), which a clone from a
/// public forge does not have. Returns its path when present; otherwise prints why the caller
/// skips and returns `None`. Every read outside the repository must go through here
/// (`repo_only::nothing_reads_outside_the_repository` checks it).
pub fn optional_shared(rel: &str) -> Option<PathBuf> {
    let p = repo().join("../shared").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/{rel} absent (optional data beside the repository)");
        None
    }
}

/// Reads a fixture, naming it when it cannot be read.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first `n` characters of `s`, with `…` when cut.
pub fn cut(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().nth(n).is_some() {
        out.push('…');
    }
    out
}

/// White space collapsed to single spaces, for comparing texts as the peers do.
pub fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// All files under `dir` (recursively), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One golden suite: the expectation folders it owns (relative to `tests/golden/`), the files it
/// checked and what did not match.
pub struct Golden {
    name: String,
    /// The folder the expectation paths are relative to.
    root: PathBuf,
    /// The extension of the expectation files (for stale-file detection).
    ext: &'static str,
    owned: Vec<PathBuf>,
    seen: BTreeSet<PathBuf>,
    failures: Vec<String>,
    updated: usize,
    update: bool,
}

impl Golden {
    /// A suite that owns these folders under `tests/golden/`: a `.json` file there that no case
    /// produced is stale and fails the suite.
    pub fn new(name: &str, owned: &[&str]) -> Self {
        Golden::in_folder(name, &golden_root(), owned, "json")
    }

    /// A suite whose expectation files end in `.ext` and live in the folders `owned` under `root`.
    pub fn in_folder(name: &str, root: &Path, owned: &[&str], ext: &'static str) -> Self {
        Golden {
            name: name.to_string(),
            root: root.to_path_buf(),
            ext,
            owned: owned.iter().map(|o| root.join(o)).collect(),
            seen: BTreeSet::new(),
            failures: Vec::new(),
            updated: 0,
            update: std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1"),
        }
    }

    /// Compares `actual` (as pretty JSON) with the file `rel` under `tests/golden/`.
    pub fn check(&mut self, rel: &Path, actual: &impl Serialize) {
        let mut text = serde_json::to_string_pretty(actual).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        text.push('\n');
        self.check_text(rel, &text);
    }

    /// Compares `text` with the file `rel` under the suite's root.
    pub fn check_text(&mut self, rel: &Path, text: &str) {
        let path = self.root.join(rel);
        self.seen.insert(path.clone());
        let expected = std::fs::read_to_string(&path).ok();
        if expected.as_deref() == Some(text) {
            return;
        }
        if self.update {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            }
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            self.updated += 1;
            return;
        }
        let shown = path.strip_prefix(repo()).unwrap_or(&path).display().to_string();
        match expected {
            None => self.failures.push(format!("{shown}: no expectation file (UPDATE_GOLDEN=1 writes it)")),
            Some(exp) => self.failures.push(format!("{shown}: differs (- expected, + actual)\n{}", diff(&exp, text))),
        }
    }

    /// Records a failure that is not a file difference (a case that could not run, a check that
    /// failed), listed with the others.
    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Fails with every mismatch, missing and stale file; or, under `UPDATE_GOLDEN=1`, says what
    /// it rewrote.
    pub fn finish(mut self) {
        for dir in &self.owned {
            for f in files_under(dir) {
                let ours =
                    f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&format!(".{}", self.ext)));
                if ours && !self.seen.contains(&f) {
                    if self.update {
                        std::fs::remove_file(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                        self.updated += 1;
                    } else {
                        let rel = f.strip_prefix(repo()).unwrap_or(&f).display().to_string();
                        self.failures.push(format!("{rel}: stale: no case produces it (UPDATE_GOLDEN=1 deletes it)"));
                    }
                }
            }
        }
        if self.update {
            eprintln!("{}: UPDATE_GOLDEN=1: {} expectation files written or deleted", self.name, self.updated);
        }
        eprintln!("{}: {} golden cases checked", self.name, self.seen.len());
        assert!(!self.seen.is_empty(), "{}: no cases", self.name);
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} golden files do not match (run with UPDATE_GOLDEN=1 to accept the new output):\n\n{}\n\n{} mismatching: {}",
            self.name,
            self.failures.len(),
            self.seen.len(),
            self.failures.join("\n\n"),
            self.failures.len(),
            self.failures.iter().map(|f| f.split(':').next().unwrap_or("")).collect::<Vec<_>>().join(", ")
        );
    }
}

/// A unified line diff of two texts, at most [`MAX_DIFF_LINES`] lines.
fn diff(expected: &str, actual: &str) -> String {
    let d = similar::TextDiff::from_lines(expected, actual);
    let text = d.unified_diff().context_radius(2).header("expected", "actual").to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= MAX_DIFF_LINES {
        text
    } else {
        format!("{}\n… {} more diff lines", lines[..MAX_DIFF_LINES].join("\n"), lines.len() - MAX_DIFF_LINES)
    }
}
