//! The `loket` command line as an operator meets it: the real binary on a SQLite store in a
//! temporary directory (no mail or database server). Each problem must be named with its cause:
//! a closed pipe, a read-only store, a missing directory, a directory as the store file, a second
//! `serve` on the same file, a missing configuration, empty listings; and the README's demo must
//! do what the README says.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, free_port, repo};

/// A configuration in `dir`: the store `dir/loket.db`, outbound mail as files, desk `hero` with a
/// Maildir inbox, the repository's templates, rules and catalogue.
fn setup(dir: &Path, http: Option<u16>) -> PathBuf {
    let http = http.map(|p| format!("[http]\nlisten = \"127.0.0.1:{p}\"\n")).unwrap_or_default();
    let config = format!(
        "templates = \"{t}\"\nrules = \"{r}\"\n{http}[storage]\nurl = \"sqlite://{d}/loket.db\"\n\
         [outbound]\ntransport = \"file\"\ndirectory = \"{d}/out\"\n\
         [[desk]]\nid = \"hero\"\nname = \"HERO Test\"\ncode = \"HERO\"\ncatalogue = \"{s}/hero.toml\"\n\
         [[desk.inbox]]\nname = \"hero\"\naddress = \"hero@kemendag.go.id\"\nmaildir = \"{d}/maildir\"\n",
        t = repo().join("templates").display(),
        r = repo().join("rules").display(),
        s = repo().join("seeds").display(),
        d = dir.display(),
    );
    let path = dir.join("loket.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Copies the tree `from` to `to`, readable by every user (directories 0755, files 0644).
fn copy_readable(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_readable(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// `loket` with a clean environment (no LOKET_CONFIG or LOKET_DATABASE_URL from outside).
fn loket(config: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loket"));
    c.env_remove("LOKET_CONFIG").env_remove("LOKET_DATABASE_URL").env("LOKET_LOG", "warn");
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    c.stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> (Output, String, String) {
    let out = c.output().expect("run loket");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out, stdout, stderr)
}

fn request(id: &str, subject: &str) -> String {
    format!(
        "From: Budi <budi@example.test>\r\nTo: hero@kemendag.go.id\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@example.test>\r\n\r\nAplikasi SISP error sejak pagi.\r\n"
    )
}

/// `loket ingest --inbox hero` of one request; asserts it was recorded.
fn ingest(config: &Path, id: &str) {
    let file = config.with_file_name(format!("{id}.eml"));
    std::fs::write(&file, request(id, "SISP tidak bisa diakses")).unwrap();
    let (out, stdout, stderr) = run(loket(Some(config)).args(["ingest", "--inbox", "hero"]).arg(&file));
    assert!(out.status.success() && stdout.contains("\"created\""), "ingest: {stdout} {stderr}");
}

/// Ended well or by SIGPIPE, like other Unix tools, and without a panic.
fn quiet_on_closed_pipe(args: &[&str], config: &Path) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // closed before loket writes a byte
    let out = loket(Some(config)).args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(141) || out.status.signal() == Some(13),
        "loket {args:?} into a closed pipe: {:?}; {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "loket {args:?}: {stderr}");
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), None);
    for i in 0..3 {
        ingest(&config, &format!("pipe-{i}"));
    }
    let (_, list, _) = run(loket(Some(&config)).args(["tickets", "list"]));
    let number = list.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("a ticket").to_string();
    for args in [
        vec!["tickets", "list"],
        vec!["tickets", "list", "--json"],
        vec!["tickets", "show", &number],
        vec!["tickets", "show", &number, "--json"],
        vec!["tickets", "stats"],
        vec!["quarantine", "list"],
        vec!["check-config"],
        vec!["migrate"],
        vec!["rules", "test"],
        vec!["report", "--desk", "hero", "--from", "2026-01-01", "--to", "2026-12-31"],
        vec!["--help"],
    ] {
        quiet_on_closed_pipe(&args, &config);
    }
    // A reader that takes one line and goes (`| head -1`) gets that line.
    let mut child = loket(Some(&config)).args(["tickets", "show", &number]).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 7];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"Ticket ");
    let status = child.wait().unwrap();
    assert!(status.success() || status.signal() == Some(13), "{status:?}");
}

#[test]
fn a_read_only_store_names_its_owner_mode_and_the_user_and_still_lists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = setup(dir.path(), None);
    // The other user must read the templates, rules and catalogue even when the checkout is
    // private (CI clones into a 0700 temporary directory): a world-readable copy beside the store.
    let share = dir.path().join("share");
    for sub in ["templates", "rules", "seeds"] {
        copy_readable(&repo().join(sub), &share.join(sub));
    }
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&repo().display().to_string(), &share.display().to_string())).unwrap();
    ingest(&config, "ro-1");
    let db = dir.path().join("loket.db");
    // Root may write any file whatever its mode: as root, run loket as `nobody` on root's file;
    // as anyone else, make the file read-only for its owner.
    let root = rustix::process::geteuid().is_root();
    let as_user = |args: &[&str]| {
        let mut c = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_loket")]);
            c.env_remove("LOKET_CONFIG").env_remove("LOKET_DATABASE_URL").env("LOKET_LOG", "warn");
            c.arg("--config").arg(&config);
            c
        } else {
            loket(Some(&config))
        };
        c.args(args).stdin(Stdio::null());
        run(&mut c)
    };
    let (owner, mode, user) = if root {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        ("owned by root (uid 0)".to_string(), "mode 0644", "nobody (uid 65534)".to_string())
    } else {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
        let uid = rustix::process::getuid().as_raw();
        (format!("(uid {uid}), mode"), "mode 0444", format!("(uid {uid})"))
    };
    let mail = dir.path().join("ro-2.eml");
    std::fs::write(&mail, request("ro-2", "SISP error")).unwrap();
    std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o644)).unwrap();
    let started = Instant::now();
    let (out, _, stderr) = as_user(&["ingest", "--inbox", "hero", mail.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    for part in ["is not writable", &owner, mode, &user, db.to_str().unwrap()] {
        assert!(stderr.contains(part), "the cause must name `{part}`: {stderr}");
    }
    assert!(!stderr.contains("readonly database") && !stderr.contains("pool timed out"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, not a retry per connection: {stderr}");
    assert!(started.elapsed() < DEADLINE);
    let (out, _, stderr) = as_user(&["check-config"]);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains(&owner) && stderr.contains(&user), "{stderr}");
    // Reading needs no write access.
    let (out, stdout, stderr) = as_user(&["tickets", "list"]);
    assert!(out.status.success(), "tickets list on a read-only store: {stderr}");
    assert!(stdout.contains("aplikasi/sisp"), "{stdout}");
    let (out, stdout, stderr) = as_user(&["quarantine", "list"]);
    assert!(out.status.success() && stdout.contains("quarantine is empty"), "{stdout} {stderr}");
}

#[test]
fn a_missing_directory_is_named_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), None);
    let typo = dir.path().join("nonexistent/dir/loket.db");
    let url = format!("sqlite://{}", typo.display());
    for args in [&["migrate"][..], &["check-config"], &["tickets", "list"], &["serve"]] {
        let (out, _, stderr) = run(loket(Some(&config)).args(args).env("LOKET_DATABASE_URL", &url));
        assert!(!out.status.success(), "loket {args:?}");
        let missing = format!("the directory {} of storage.url does not exist", typo.parent().unwrap().display());
        let absent = format!("no store at {}", typo.display());
        assert!(stderr.contains(&missing) || stderr.contains(&absent), "loket {args:?}: {stderr}");
        assert!(!stderr.contains("unable to open database file"), "{stderr}");
    }
    assert!(!dir.path().join("nonexistent").exists(), "a mistyped path is not created");
    let (out, stdout, stderr) =
        run(loket(Some(&config)).args(["check-config", "--offline"]).env("LOKET_DATABASE_URL", &url));
    assert!(out.status.success() && stdout.contains(": ok"), "--offline skips the store: {stderr}");
    // A place that takes no files.
    let (out, _, stderr) =
        run(loket(Some(&config)).arg("migrate").env("LOKET_DATABASE_URL", "sqlite:///proc/loket.db"));
    assert!(!out.status.success());
    assert!(stderr.contains("cannot create the store file /proc/loket.db") && stderr.contains("/proc"), "{stderr}");
    // The default `var/` is made.
    let var = dir.path().join("var/loket.db");
    let url = format!("sqlite://{}", var.display());
    let (out, stdout, _) = run(loket(Some(&config)).arg("check-config").env("LOKET_DATABASE_URL", &url));
    assert!(out.status.success() && stdout.contains("not created yet"), "{stdout}");
    assert!(!var.exists(), "check-config creates nothing");
    let (out, _, stderr) = run(loket(Some(&config)).arg("migrate").env("LOKET_DATABASE_URL", &url));
    assert!(out.status.success() && var.is_file(), "{stderr}");
    let (out, stdout, _) = run(loket(Some(&config)).arg("check-config").env("LOKET_DATABASE_URL", &url));
    assert!(out.status.success() && stdout.contains("schema up to date"), "{stdout}");
}

#[test]
fn a_directory_given_as_the_store_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), None);
    let url = format!("sqlite://{}", dir.path().display());
    for args in [&["migrate"][..], &["check-config"], &["tickets", "list"]] {
        let (out, _, stderr) = run(loket(Some(&config)).args(args).env("LOKET_DATABASE_URL", &url));
        assert!(!out.status.success(), "loket {args:?}");
        let named = format!("storage.url names {}, which is a directory", dir.path().display());
        assert!(stderr.contains(&named) && stderr.contains("loket.db"), "loket {args:?}: {stderr}");
    }
}

#[test]
fn a_second_serve_on_the_same_store_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = setup(dir.path(), Some(port));
    let log = dir.path().join("first.log");
    let mut first = loket(Some(&config))
        .arg("serve")
        .env("LOKET_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let lock = dir.path().join("loket.db.lock");
    let pid = first.id().to_string();
    let start = Instant::now();
    while std::fs::read_to_string(&lock).map(|s| s.trim() != pid).unwrap_or(true)
        || !std::fs::read_to_string(&log).unwrap_or_default().contains("HTTP listening")
    {
        if start.elapsed() > DEADLINE || first.try_wait().unwrap().is_some() {
            let _ = first.kill();
            panic!("the first serve did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (out, _, stderr) = run(loket(Some(&config)).arg("serve"));
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    let named = format!("another loket (pid {pid}) holds {}", dir.path().join("loket.db").display());
    assert!(stderr.contains(&named), "{stderr}");
    assert!(!stderr.contains("Address already in use"), "the lock comes before the port: {stderr}");
    // `ingest` may run beside a serve.
    ingest(&config, "beside-serve");
}

#[test]
fn a_missing_config_names_where_loket_looked_and_how_to_point_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(loket(None).args(["tickets", "list"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let looked = dir.path().canonicalize().unwrap().join("loket.toml");
    let looked_raw = dir.path().join("loket.toml");
    assert!(
        stderr.contains(&looked.display().to_string()) || stderr.contains(&looked_raw.display().to_string()),
        "names the path: {stderr}"
    );
    for part in ["no configuration file", "current directory", "--config", "LOKET_CONFIG"] {
        assert!(stderr.contains(part), "`{part}`: {stderr}");
    }
    let elsewhere = dir.path().join("etc/loket.toml");
    let (out, _, stderr) = run(loket(None).arg("serve").env("LOKET_CONFIG", &elsewhere).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains(&elsewhere.display().to_string()) && stderr.contains("named by LOKET_CONFIG"), "{stderr}");
    let (out, _, stderr) = run(loket(Some(&elsewhere)).arg("check-config"));
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("named by --config"), "{stderr}");
}

#[test]
fn empty_listings_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), None);
    let (out, _, stderr) = run(loket(Some(&config)).args(["tickets", "list"]));
    assert!(!out.status.success() && stderr.contains("no store at"), "before any store: {stderr}");
    let (out, _, stderr) = run(loket(Some(&config)).arg("migrate"));
    assert!(out.status.success(), "{stderr}");
    let (_, stdout, _) = run(loket(Some(&config)).args(["tickets", "list"]));
    assert_eq!(stdout.trim(), "no tickets");
    let (_, stdout, _) = run(loket(Some(&config)).args(["tickets", "list", "--desk", "hero", "--status", "open"]));
    assert_eq!(stdout.trim(), "no tickets on desk hero with status open");
    let (out, stdout, stderr) = run(loket(Some(&config)).args(["tickets", "list", "--json"]));
    assert!(out.status.success() && stdout.is_empty() && stderr.contains("no tickets"), "{stdout} {stderr}");
    let (_, stdout, _) = run(loket(Some(&config)).args(["quarantine", "list"]));
    assert_eq!(stdout.trim(), "quarantine is empty");
    let (_, _, stderr) =
        run(loket(Some(&config)).args(["report", "--desk", "hero", "--from", "2026-01-01", "--to", "2026-01-31"]));
    assert!(stderr.contains("no tickets on desk hero from 2026-01-01 to 2026-01-31"), "{stderr}");
}

/// The shell blocks of the README's set-up, in order.
fn readme_blocks() -> (String, Vec<Vec<String>>) {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let setup = &readme[readme.find("## Set-up").unwrap()..readme.find("**2. Run the tests.**").unwrap()];
    let mut blocks = Vec::new();
    let mut rest = setup;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").unwrap();
        let mut lines = Vec::new();
        for line in body[..end].replace("\\\n", " ").lines() {
            lines.push(line.trim().to_string());
        }
        blocks.push(lines);
        rest = &body[end + 3..];
    }
    (setup.to_string(), blocks)
}

#[test]
fn the_readme_demo_routes_and_acknowledges() {
    // A copy of the repository root: its loket.toml (on a free port), templates, rules, seeds.
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = std::fs::read_to_string(repo().join("loket.toml")).unwrap();
    assert!(toml.contains("127.0.0.1:8080"));
    std::fs::write(root.path().join("loket.toml"), toml.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")))
        .unwrap();
    for d in ["templates", "rules", "seeds"] {
        std::os::unix::fs::symlink(repo().join(d), root.path().join(d)).unwrap();
    }
    // `cargo install --path .` puts loket on the PATH: here, this build's binary.
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_loket"), bin.join("loket")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let sh = |line: &str| {
        let out = Command::new("sh")
            .args(["-c", line])
            .current_dir(root.path())
            .env("PATH", &path)
            .env_remove("LOKET_CONFIG")
            .env_remove("LOKET_DATABASE_URL")
            .env("LOKET_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "`{line}`: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };

    let (text, blocks) = readme_blocks();
    assert_eq!(blocks.len(), 2, "the set-up has the daemon's block and the demo's block");
    assert_eq!(blocks[0], ["cargo install --path .", "loket serve"]);
    let log = root.path().join("serve.log");
    let mut serve = KillOnDrop(
        Command::new("sh")
            .args(["-c", "exec loket serve"])
            .current_dir(root.path())
            .env("PATH", &path)
            .env_remove("LOKET_CONFIG")
            .env_remove("LOKET_DATABASE_URL")
            .env("LOKET_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let outbound = root.path().join("var/outbound");
    let mut listing = String::new();
    for line in &blocks[1] {
        if line.starts_with("ls var/outbound") {
            let start = Instant::now();
            while std::fs::read_dir(&outbound)
                .map(|d| !d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".eml")))
                .unwrap_or(true)
            {
                assert!(
                    serve.0.try_wait().unwrap().is_none(),
                    "serve died: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
                assert!(start.elapsed() < DEADLINE, "no acknowledgement: {}", std::fs::read_to_string(&log).unwrap());
                std::thread::sleep(Duration::from_millis(100));
            }
            // The acknowledgement comes first; the agents' notifications follow it.
            let listed = sh(line);
            assert!(listed.lines().next() == Some("hero-1.eml"), "{listed}");
        } else if line.starts_with("loket tickets list") {
            listing = sh(line);
        } else {
            sh(line);
        }
    }
    let notified = wait_for_files(&outbound, 2);
    drop(serve);

    // The subject the README promises, with this year in the number.
    let promised = text.split("with the subject\n`").nth(1).and_then(|s| s.split('`').next()).expect("a subject");
    let yy = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Jakarta).format("%y").to_string();
    let number = format!("A-HERO{yy}000001");
    let subject = promised.replace("A-HERO26000001", &number);
    let ack = crate::harness::parsed(&std::fs::read(outbound.join("hero-1.eml")).unwrap());
    assert_eq!(ack.subject, subject);
    assert!(ack.text.contains("Kategori: Aplikasi / SISP"), "{}", ack.text);
    assert!(ack.text.contains("Petugas kami akan menanggapi paling lambat"), "{}", ack.text);
    assert!(!ack.text.contains("hanya diperuntukkan bagi pegawai internal"), "{}", ack.text);
    // The desk's agents heard of it: the shipped configuration has them (example addresses).
    let agents: Vec<String> = notified
        .iter()
        .filter(|f| *f != "hero-1.eml")
        .map(|f| crate::harness::parsed(&std::fs::read(outbound.join(f)).unwrap()))
        .filter(|m| m.subject.contains("Tiket baru"))
        .map(|m| m.to[0].as_str().to_string())
        .collect();
    assert!(agents.iter().any(|a| a.ends_with("@kemendag.go.id")), "agents notified: {agents:?} of {notified:?}");
    let row = listing.lines().find(|l| l.starts_with(&number)).unwrap_or_else(|| panic!("{listing}"));
    assert!(row.contains("aplikasi/sisp") && row.contains("budi@example.test"), "{row}");
}

/// The names of the `.eml` files in `dir` once there are at least `n` (sorted).
fn wait_for_files(dir: &std::path::Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        names.retain(|n| n.ends_with(".eml"));
        names.sort();
        if names.len() >= n {
            return names;
        }
        assert!(start.elapsed() < DEADLINE, "{n} mails in {}: {names:?}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (and reaped) when the test ends, also when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Loket's SQLite driver and sqlx's (`LOKET_SQLITE_DRIVER=sqlx`, the way back) write and read the
/// same store, each continuing what the other wrote: numbering, duplicates, the listing.
#[test]
fn the_store_is_the_same_through_either_sqlite_driver() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), None);
    let ingest_with = |driver: Option<&str>, id: &str| {
        let file = dir.path().join(format!("{id}.eml"));
        std::fs::write(&file, request(id, "SISP tidak bisa diakses")).unwrap();
        let mut c = loket(Some(&config));
        c.env_remove("LOKET_SQLITE_DRIVER");
        if let Some(driver) = driver {
            c.env("LOKET_SQLITE_DRIVER", driver);
        }
        let (out, stdout, stderr) = run(c.args(["ingest", "--inbox", "hero"]).arg(&file));
        assert!(out.status.success(), "ingest {id} with {driver:?}: {stdout} {stderr}");
        stdout
    };
    assert!(ingest_with(None, "one").contains("\"created\""));
    assert!(ingest_with(Some("sqlx"), "two").contains("\"created\""));
    assert!(ingest_with(None, "three").contains("\"created\""));
    // The same mail again, through the other driver: a duplicate, not a fourth ticket.
    assert!(!ingest_with(Some("sqlx"), "three").contains("\"created\""));
    for driver in ["inline", "sqlx"] {
        let (out, stdout, stderr) =
            run(loket(Some(&config)).env("LOKET_SQLITE_DRIVER", driver).args(["tickets", "list", "--json"]));
        assert!(out.status.success(), "{stderr}");
        let numbers: Vec<&str> =
            stdout.lines().filter_map(|l| l.split("\"number\":\"").nth(1)?.split('"').next()).collect();
        assert_eq!(numbers.len(), 3, "{driver}: {stdout}");
        let mut distinct = numbers.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{driver}: {stdout}");
    }
}
