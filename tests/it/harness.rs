//! Shared test plumbing: the environment the test script started, per-test directories and
//! addresses, config files, the daemon as a child process, IMAP and SMTP helpers, and polling
//! with a deadline (never a fixed sleep).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use loket::config::{Config, StorageConfig};
use loket::store::Store;

pub const DEADLINE: Duration = Duration::from_secs(90);
/// The secret that signs agent tokens in tests.
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789";
/// The chat channels' secrets in tests (variable, value).
pub const CHAT_SECRETS: &[(&str, &str)] = &[
    ("LOKET_TEST_TG_TOKEN", "123456:TEST-TOKEN"),
    ("LOKET_TEST_TG_SECRET", "tg-webhook-secret"),
    ("LOKET_TEST_WA_TOKEN", "wa-access-token"),
    ("LOKET_TEST_WA_SECRET", "wa-app-secret"),
    ("LOKET_TEST_WA_VERIFY", "wa-verify-token"),
];

/// The OAuth secrets in tests: every client the tests register at the fake IdP has this secret,
/// and the key seals stored refresh tokens.
pub const OAUTH_SECRETS: &[(&str, &str)] = &[
    ("LOKET_TEST_OAUTH_SECRET", "oauth-app-secret"),
    ("LOKET_TEST_OAUTH_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
];

/// The outbound webhooks' signing secrets in tests (variable, value).
pub const WEBHOOK_SECRETS: &[(&str, &str)] =
    &[("LOKET_TEST_WEBHOOK_A", "whsec-receiver-a-0123456789"), ("LOKET_TEST_WEBHOOK_B", "whsec-receiver-b-9876543210")];

/// A test secret by variable name.
pub fn test_secret(k: &str) -> Option<String> {
    if k == "LOKET_TEST_TOKEN_SECRET" {
        return Some(TOKEN_SECRET.to_string());
    }
    CHAT_SECRETS.iter().chain(OAUTH_SECRETS).chain(WEBHOOK_SECRETS).find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

#[derive(Debug, Clone)]
pub struct Env {
    pub imap_port: u16,
    pub smtp_port: u16,
    pub pg_url: String,
    pub password: String,
    pub dovecot_conf: String,
    pub smtp_stop: String,
    pub smtp_start: String,
    pub imaps_port: Option<u16>,
    pub tls_cert: Option<String>,
    /// Postfix's submission port (AUTH required: PLAIN, LOGIN, XOAUTH2, OAUTHBEARER).
    pub submission_port: u16,
    /// The fake identity provider (`scripts/testenv/fake_idp.py`).
    pub idp_url: String,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.1 GET; returns (status, body), or status 0 when nothing listens.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return (0, String::new()) };
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the integration tests need the private mail and database servers; run scripts/test.sh"
        )
    })
}

pub static ENV: LazyLock<Env> = LazyLock::new(|| Env {
    imap_port: var("LOKET_TEST_IMAP_PORT").parse().expect("port"),
    smtp_port: var("LOKET_TEST_SMTP_PORT").parse().expect("port"),
    pg_url: var("LOKET_TEST_PG_URL"),
    password: var("LOKET_TEST_MAIL_PASSWORD"),
    dovecot_conf: var("LOKET_TEST_DOVECOT_CONF"),
    smtp_stop: var("LOKET_TEST_SMTP_STOP"),
    smtp_start: var("LOKET_TEST_SMTP_START"),
    imaps_port: std::env::var("LOKET_TEST_IMAPS_PORT").ok().and_then(|p| p.parse().ok()),
    tls_cert: std::env::var("LOKET_TEST_TLS_CERT").ok(),
    submission_port: var("LOKET_TEST_SUBMISSION_PORT").parse().expect("port"),
    idp_url: var("LOKET_TEST_IDP_URL"),
});

/// Tests that need Postfix or Dovecot up hold this for reading; the tests that stop one of them
/// hold it for writing.
pub static MAIL_SERVERS: LazyLock<tokio::sync::RwLock<()>> = LazyLock::new(|| tokio::sync::RwLock::new(()));

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A unique tag for this test's addresses and databases.
pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 1_000_000_000;
    format!("{name}-{}-{t}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Polls `f` until it returns Some, or panics after [`DEADLINE`] naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for_every(what, Duration::from_millis(100), f).await
}

/// [`wait_for`], looking every `every` (a short interval where the moment matters).
pub async fn wait_for_every<T, F, Fut>(what: &str, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// A test's own world: a directory, addresses on the private mail server, a config file.
pub struct World {
    pub dir: tempfile::TempDir,
    pub tag: String,
    /// The desk's inbox address (IMAP user) on desk.test.
    pub desk_addr: String,
    pub config_path: PathBuf,
    pub db_url: String,
}

pub struct WorldOptions {
    pub imap: bool,
    pub pg: bool,
    pub outbound_smtp: bool,
    pub poll_interval_secs: u64,
    pub maildir: bool,
    /// Groups (l1, apps for aplikasi/*), agents (agent1 in l1, agent2 in apps), a supervisor and
    /// the token secret.
    pub agents: bool,
    pub extra: String,
    /// Extra keys and tables inside the desk (before its inbox).
    pub desk_extra: String,
    /// IMAP over `tls` (implicit, IMAPS port) or `starttls` instead of plain TCP.
    pub imap_tls: Option<&'static str>,
    /// How the inbox logs in instead of `password_env` (e.g. an `[desk.inbox.imap.oauth]` table).
    pub imap_login: Option<String>,
    /// The whole `[outbound]` section instead of the plain SMTP relay or the file transport.
    pub outbound: Option<String>,
    /// Extra keys of `[storage]` (e.g. `files_grace_secs = 1`).
    pub storage_extra: String,
}

impl WorldOptions {
    /// A world for the pipeline in process: no IMAP inbox, no SMTP relay (outbound mail to
    /// files), on PostgreSQL when `pg`, else SQLite.
    pub fn in_process(pg: bool) -> Self {
        Self { imap: false, pg, outbound_smtp: false, ..Default::default() }
    }
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            imap: true,
            pg: false,
            outbound_smtp: true,
            poll_interval_secs: 600,
            maildir: false,
            agents: false,
            extra: String::new(),
            desk_extra: String::new(),
            imap_tls: None,
            imap_login: None,
            outbound: None,
            storage_extra: String::new(),
        }
    }
}

impl World {
    pub async fn new(name: &str, opts: WorldOptions) -> World {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique(name);
        let desk_addr = format!("{tag}-hero@desk.test");
        let db_url = if opts.pg {
            fresh_pg_database(&tag).await
        } else {
            format!("sqlite://{}", dir.path().join("loket.db").display())
        };
        let e = &*ENV;
        let outbound = if let Some(o) = &opts.outbound {
            o.clone()
        } else if opts.outbound_smtp {
            format!(
                "[outbound]\ntransport = \"smtp\"\ninitial_backoff_secs = 1\nmax_backoff_secs = 2\npoll_interval_ms = 200\n\
                 [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout_secs = 10\n",
                e.smtp_port
            )
        } else {
            format!("[outbound]\ntransport = \"file\"\ndirectory = \"{}\"\n", dir.path().join("out").display())
        };
        let inbox_src = if opts.imap {
            let (port, tls) = match opts.imap_tls {
                Some("tls") => (e.imaps_port.expect("LOKET_TEST_IMAPS_PORT: run scripts/test.sh (TLS=1)"), "tls"),
                Some(mode) => (e.imap_port, mode),
                None => (e.imap_port, "none"),
            };
            let ca = match opts.imap_tls {
                Some(_) => format!("ca_file = \"{}\"\n", e.tls_cert.clone().expect("LOKET_TEST_TLS_CERT")),
                None => String::new(),
            };
            let login = "password_env = \"LOKET_TEST_MAIL_PASSWORD\"\n";
            format!(
                "[desk.inbox.imap]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\n{ca}user = \"{desk_addr}\"\n\
                 processed_folder = \"Processed\"\npoll_interval_secs = {}\n{}",
                opts.poll_interval_secs,
                opts.imap_login.as_deref().unwrap_or(login),
            )
        } else if opts.maildir {
            format!("maildir = \"{}\"\n", dir.path().join("maildir").display())
        } else {
            String::new()
        };
        let people = if opts.agents {
            format!(
                "[[desk.group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
                 [[desk.group]]\nid = \"apps\"\nname = \"Tim Aplikasi\"\nlayer = 2\nroutes = [\"aplikasi/*\"]\n\
                 [[desk.agent]]\naddress = \"{tag}-agent1@desk.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n\
                 [[desk.agent]]\naddress = \"{tag}-agent2@desk.test\"\nname = \"Sari\"\ngroups = [\"apps\"]\n\
                 [[desk.agent]]\naddress = \"{tag}-boss@desk.test\"\nname = \"Pak Kepala\"\nsupervisor = true\n"
            )
        } else {
            String::new()
        };
        let security = if opts.agents { "[security]\ntoken_secret_env = \"LOKET_TEST_TOKEN_SECRET\"\n" } else { "" };
        let config = format!(
            "templates = \"{templates}\"\nrules = \"{rules}\"\n{security}[storage]\nurl = \"{db_url}\"\n\
             files = \"{files}\"\ncache = \"{cache}\"\n{storage_extra}{outbound}{extra}\n\
             [[desk]]\nid = \"hero\"\nname = \"HERO Test\"\ncode = \"HERO\"\ncatalogue = \"{seeds}/hero.toml\"\n\
             {desk_extra}{people}[[desk.inbox]]\nname = \"hero\"\naddress = \"{desk_addr}\"\n{inbox_src}",
            templates = repo().join("templates").display(),
            rules = repo().join("rules").display(),
            seeds = repo().join("seeds").display(),
            extra = opts.extra,
            desk_extra = opts.desk_extra,
            files = dir.path().join("files").display(),
            // The second opinions learned from the rules' labelled messages, shared by the
            // suite's daemons: learned by the first, read back by the others.
            cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("opinion-cache").display(),
            storage_extra = opts.storage_extra,
        );
        let config_path = dir.path().join("loket.toml");
        std::fs::write(&config_path, config).unwrap();
        World { dir, tag, desk_addr, config_path, db_url }
    }

    pub fn addr(&self, who: &str) -> String {
        format!("{}-{who}@example.test", self.tag)
    }

    pub fn config(&self) -> Config {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        Config::from_toml(&self.config_path, &text, |k| test_secret(k).or_else(|| std::env::var(k).ok()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn agent(&self, n: &str) -> String {
        format!("{}-{n}@desk.test", self.tag)
    }

    /// The world's files directory (raw mail and chat files; `[storage] files`).
    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    pub async fn store(&self) -> Store {
        Store::open(&StorageConfig {
            url: self.db_url.clone(),
            max_connections: 2,
            sqlite_synchronous: loket::config::SqliteSynchronous::Full,
            files: Some(self.files_dir()),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// Starts `loket serve` on this world's config.
    pub fn serve(&self) -> Daemon {
        self.serve_with(&[])
    }

    /// [`World::serve`] with more environment variables.
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Daemon {
        let log = self.dir.path().join(format!("serve-{}.log", unique("log")));
        let child = Command::new(env!("CARGO_BIN_EXE_loket"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .env("LOKET_LOG", "info,sqlx=warn")
            .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
            .envs(CHAT_SECRETS.iter().chain(OAUTH_SECRETS).chain(WEBHOOK_SECRETS).copied())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn loket serve");
        Daemon { child: Some(child), log }
    }

    /// Runs `loket ingest --inbox hero` with `raw` on stdin; returns (exit code, stdout, stderr).
    pub fn ingest(&self, raw: &[u8]) -> (i32, String, String) {
        ingest_with(&self.config_path, "hero", raw)
    }
}

pub fn ingest_with(config: &Path, inbox: &str, raw: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(config)
        .args(["ingest", "--inbox", inbox])
        .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loket ingest");
    let mut stdin = child.stdin.take().unwrap();
    let raw = raw.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&raw);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            if start.elapsed() > DEADLINE {
                let _ = c.kill();
                panic!("loket serve did not exit after SIGTERM; log: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the daemon to end on its own (a failpoint's abort); returns its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let c = self.child.as_mut().expect("the daemon runs");
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            if start.elapsed() > DEADLINE {
                panic!("loket serve did not end on its own; log: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- loket serve log ({}) -----\n{}", self.log.display(), self.log_text());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn fresh_pg_database(tag: &str) -> String {
    loket::store::install_drivers();
    let name: String =
        tag.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let name = format!("t_{name}");
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&ENV.pg_url).await.expect("connect to the test PostgreSQL");
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let base = ENV.pg_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

// ------------------------------------------------------------------------------------------------
// Mail helpers

/// Submits `raw` over SMTP to the private Postfix.
pub async fn smtp_send(from: &str, to: &[&str], raw: &[u8]) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(ENV.smtp_port)
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let env = Envelope::new(Some(from.parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect()).unwrap();
    t.send_raw(&env, raw).await.expect("SMTP submission to the private Postfix");
}

/// Puts `raw` straight into `user`'s INBOX with doveadm (no SMTP needed).
pub fn dovecot_save(user: &str, raw: &[u8]) {
    use std::io::Write;
    let mut child = Command::new("doveadm")
        .args(["-c", &ENV.dovecot_conf, "save", "-u", user])
        .stdin(Stdio::piped())
        .spawn()
        .expect("doveadm");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    assert!(child.wait().unwrap().success(), "doveadm save failed");
}

/// Writes `raw` straight into `user`'s Maildir on disk, as a delivery would, even while Dovecot is
/// stopped (the user must have received mail before, so that the Maildir exists).
pub fn maildir_deliver(user: &str, raw: &[u8]) {
    let (local, domain) = user.split_once('@').unwrap();
    let base = std::env::var("LOKET_TEST_DIR").expect("LOKET_TEST_DIR");
    let maildir = PathBuf::from(base).join("mail").join(domain).join(local).join("Maildir");
    let name = format!("{}.loket-test.{}", std::process::id(), unique("m"));
    let tmp = maildir.join("tmp").join(&name);
    std::fs::write(&tmp, raw).unwrap();
    // Owned like the Maildir, so that Dovecot may move it to cur/.
    let ok = Command::new("chown").arg("--reference").arg(&maildir).arg(&tmp).status().unwrap().success();
    assert!(ok, "chown {}", tmp.display());
    std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
}

type TestSession = async_imap::Session<tokio::net::TcpStream>;

pub async fn imap_login(user: &str) -> TestSession {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ENV.imap_port)).await.unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    client.login(user, &ENV.password).await.map_err(|(e, _)| e).unwrap()
}

/// All messages in `user`'s `folder` (empty when the folder does not exist).
pub async fn mailbox(user: &str, folder: &str) -> Vec<Vec<u8>> {
    let mut s = imap_login(user).await;
    if s.select(folder).await.is_err() {
        let _ = s.logout().await;
        return Vec::new();
    }
    let uids = s.uid_search("ALL").await.unwrap();
    let mut out = Vec::new();
    if !uids.is_empty() {
        let mut uids: Vec<u32> = uids.into_iter().collect();
        uids.sort_unstable();
        let set = uids.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",");
        let fetches: Vec<_> = s.uid_fetch(set, "BODY.PEEK[]").await.unwrap().try_collect().await.unwrap();
        out = fetches.iter().filter_map(|f| f.body().map(|b| b.to_vec())).collect();
    }
    let _ = s.logout().await;
    out
}

/// Waits until `user`'s `folder` holds at least `n` messages; returns them.
pub async fn wait_mailbox(user: &str, folder: &str, n: usize) -> Vec<Vec<u8>> {
    wait_for(&format!("{n} message(s) in {user}/{folder}"), || async {
        let m = mailbox(user, folder).await;
        (m.len() >= n).then_some(m)
    })
    .await
}

/// A plain RFC 5322 message.
pub fn mail(from: &str, to: &str, subject: &str, message_id: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Mon, 5 Jan 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {extra_headers}\r\n{body}\r\n"
    )
    .into_bytes()
}

pub fn parsed(raw: &[u8]) -> loket::mail::parse::ParsedMail {
    loket::mail::parse::parse(raw).expect("parseable mail")
}

/// The pipeline in process, on a world's config (for tests that inject time).
pub async fn pipeline(w: &World) -> (loket::pipeline::Pipeline, Store) {
    use std::sync::Arc;
    let cfg = Arc::new(w.config());
    let templates = Arc::new(loket::templates::Templates::load(&cfg.templates).unwrap());
    let store = Store::open(&cfg.storage).await.unwrap();
    (loket::pipeline::Pipeline::new(store.clone(), cfg, templates, Arc::new(tokio::sync::Notify::new())), store)
}

/// The outbound messages of a ticket, oldest first: (kind, recipient, Message-ID, body).
pub async fn outbound(store: &Store, number: &str) -> Vec<(String, String, String, String)> {
    let t = &loket::store::tickets_by_number(store.pool(), number).await.unwrap()[0];
    loket::store::ticket_messages(store.pool(), t.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.direction == "out")
        .map(|m| (m.kind, m.to_addresses.join(","), m.message_id.unwrap_or_default(), m.body_text))
        .collect()
}

pub async fn ticket(store: &Store, number: &str) -> loket::store::Ticket {
    loket::store::tickets_by_number(store.pool(), number).await.unwrap().remove(0)
}
