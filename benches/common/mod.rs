//! What the benchmarks share (each includes this file with `#[path]`): the repository, the
//! generated mail, the daemon started as a child process, its memory, percentiles.

#![allow(dead_code)] // each benchmark uses what it needs

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A run's working directory (store, files, outbound mail): a temporary directory deleted at the
/// end of the run, or with `LOKET_BENCH_KEEP=DIR` one kept in DIR for the caller to delete after
/// the last run. ext4 without a journal (this project's VM) skips, one by one, every inode deleted
/// in the last minute or more (`recently_deleted`), so a run that starts right after another's
/// files were deleted pays for them; kept directories measure the steady state of a server whose
/// retention has not just run.
pub fn run_dir() -> tempfile::TempDir {
    match std::env::var("LOKET_BENCH_KEEP") {
        Ok(keep) => {
            let mut dir = tempfile::Builder::new().prefix("run.").tempdir_in(keep).unwrap();
            dir.disable_cleanup(true);
            dir
        }
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

/// Where the benchmark generator's mails are kept between runs: `LOKET_BENCH_MAIL_DIR`, else
/// `target/bench-mail` (shared by the pipeline, Maildir and routing benches).
pub fn mail_dir() -> PathBuf {
    std::env::var_os("LOKET_BENCH_MAIL_DIR").map_or_else(|| repo().join("target/bench-mail"), PathBuf::from)
}

/// The first `n` mails of the benchmark generator's set in `dir` (`scripts/gen_emails.py --seed
/// 42`), generated anew when the directory holds fewer.
pub fn generate(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    let manifest = dir.join("manifest.jsonl");
    let have = std::fs::read_to_string(&manifest).map(|m| m.lines().count()).unwrap_or(0);
    if have < n {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("python3")
            .arg(repo().join("scripts/gen_emails.py"))
            .arg(dir)
            .args(["-n", &n.to_string(), "--seed", "42", "--to", "hero@desk.test"])
            .status()
            .expect("python3 for the mail generator");
        assert!(status.success(), "scripts/gen_emails.py failed");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files.truncate(n);
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// `loket --config CFG serve` as a child, logging at `log_filter` into `log`.
pub fn spawn_serve(cfg: &Path, log: &Path, log_filter: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .env("LOKET_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn loket serve")
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `p` percentile of sorted durations (zero for none).
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}
