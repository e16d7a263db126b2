//! OAuth2 mailboxes (issue #15) against the real Dovecot (oauth2 passdb: XOAUTH2, OAUTHBEARER),
//! Postfix's submission port (SASL through Dovecot) and the fake identity provider
//! (`scripts/testenv/fake_idp.py`, Microsoft's and Google's token endpoints). Each test registers
//! its own app at the IdP, bound to its own mailbox, so parallel tests share no grant.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use loket::store;

use crate::harness::*;

/// POSTs a form (or JSON when `json`) to the fake IdP; returns (status, JSON answer).
async fn idp(path: &str, form: &[(&str, &str)], json: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let req = http.post(format!("{}{path}", ENV.idp_url));
    let req = match json {
        Some(j) => req.json(&j),
        None => req.form(form),
    };
    let r = req.send().await.expect("the fake IdP answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Registers a Microsoft app for `mailbox` at the fake IdP: confidential (client credentials,
/// `IMAP.AccessAsApp` + `SMTP.SendAsApp`) or public (device code); `access_ttl` in seconds.
async fn register_app(client_id: &str, mailbox: &str, public: bool, access_ttl: u32) {
    let body = if public {
        serde_json::json!({"client_id": client_id, "provider": "microsoft", "public": true, "access_ttl": access_ttl})
    } else {
        serde_json::json!({
            "client_id": client_id, "provider": "microsoft", "secret": "oauth-app-secret",
            "tenants": ["desk.test"], "app_mailbox": mailbox, "access_ttl": access_ttl,
            "app_roles": {"https://outlook.office.com": ["IMAP.AccessAsApp", "SMTP.SendAsApp"]}
        })
    };
    let (status, answer) = idp("/_admin/client", &[], Some(body)).await;
    assert_eq!(status, 200, "registering the app: {answer}");
}

/// The `[oauth]` table's keys for an app at the fake IdP.
fn oauth_keys(client_id: &str, flow: &str, mechanism: &str) -> String {
    let secret = if flow == "client-credentials" { "client_secret_env = \"LOKET_TEST_OAUTH_SECRET\"\n" } else { "" };
    format!(
        "provider = \"microsoft365\"\nflow = \"{flow}\"\nmechanism = \"{mechanism}\"\ntenant = \"desk.test\"\n\
         client_id = \"{client_id}\"\n{secret}key_env = \"LOKET_TEST_OAUTH_KEY\"\nendpoint = \"{}\"\n",
        ENV.idp_url
    )
}

/// A world whose inbox and SMTP relay both log in as the desk's mailbox with OAuth.
async fn oauth_world(name: &str, client: &str, flow: &str, mechanism: &str) -> World {
    oauth_world_with(name, client, flow, mechanism, Extra::default()).await
}

/// What else a world has: a relay with a password (port 25) instead of OAuth, agents (the
/// supervisor is the operator), the HTTP server, more `[oauth]` keys.
#[derive(Default)]
struct Extra {
    plain_relay: bool,
    /// PostgreSQL instead of SQLite (the refresh's `FOR UPDATE`, the alert's `ON CONFLICT`).
    pg: bool,
    http_port: Option<u16>,
    oauth_keys: String,
}

async fn oauth_world_with(name: &str, client: &str, flow: &str, mechanism: &str, x: Extra) -> World {
    let tag = unique(name);
    let client_id = format!("{tag}-{client}");
    let keys = format!("{}{}", oauth_keys(&client_id, flow, mechanism), x.oauth_keys);
    let w = World::new(
        name,
        WorldOptions {
            imap_login: Some(format!("[desk.inbox.imap.oauth]\n{keys}")),
            pg: x.pg,
            agents: x.http_port.is_some(),
            extra: x.http_port.map(|p| format!("[http]\nlisten = \"127.0.0.1:{p}\"\n")).unwrap_or_default(),
            outbound: (!x.plain_relay).then(|| format!(
                "[outbound]\ntransport = \"smtp\"\ninitial_backoff_secs = 1\nmax_backoff_secs = 2\npoll_interval_ms = 200\n\
                 [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout_secs = 10\nuser = \"DESK\"\n\
                 [outbound.smtp.oauth]\n{}",
                ENV.submission_port,
                oauth_keys(&client_id, flow, mechanism)
            )),
            ..Default::default()
        },
        )
    .await;
    // The relay logs in as the desk's own mailbox.
    let text = std::fs::read_to_string(&w.config_path)
        .unwrap()
        .replace("user = \"DESK\"", &format!("user = \"{}\"", w.desk_addr));
    std::fs::write(&w.config_path, text).unwrap();
    register_app(&client_id, &w.desk_addr, flow == "refresh-token", if flow == "refresh-token" { 4 } else { 3599 })
        .await;
    w
}

fn client_id(w: &World) -> String {
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    let line = text.lines().find(|l| l.starts_with("client_id = ")).unwrap();
    line.trim_start_matches("client_id = ").trim_matches('"').to_string()
}

fn log(name: &str) -> String {
    let dir = std::env::var("LOKET_TEST_DIR").expect("LOKET_TEST_DIR");
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).unwrap_or_default()
}

/// Sends one request to the desk and waits for its acknowledgement in the requester's INBOX.
async fn request_and_ack(w: &World, who: &str, n: usize) -> Vec<u8> {
    let from = w.addr(who);
    let raw = mail(
        &from,
        &w.desk_addr,
        &format!("Permintaan {n}"),
        &format!("{}-{who}-{n}@example.test", w.tag),
        "",
        "Mohon bantuan, aplikasi SIGI tidak bisa dibuka.",
    );
    smtp_send(&from, &[&w.desk_addr], &raw).await;
    wait_mailbox(&from, "INBOX", 1).await.remove(0)
}

/// Acceptance 1: an inbox authenticated by client credentials takes mail by IDLE (XOAUTH2 at
/// Dovecot) and sends the acknowledgement over SMTP with XOAUTH2 (Postfix's submission port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_inbox_takes_mail_by_idle_and_answers_over_xoauth2() {
    let _servers = MAIL_SERVERS.read().await;
    let w = oauth_world("oauth-cc", "app", "client-credentials", "xoauth2").await;
    let daemon = w.serve();
    // A 600 s poll interval: only IDLE picks the mail up before the deadline.
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    let ack = request_and_ack(&w, "budi", 1).await;
    let t = parsed(&ack);
    assert_eq!(t.from.as_ref().unwrap().address.as_str(), w.desk_addr);
    assert_eq!(loket::ticket::find_tags(&t.subject).len(), 1, "ticket tag in {:?}", t.subject);
    // The servers saw XOAUTH2 for the desk's mailbox: Dovecot for IMAP, Postfix for submission.
    let user = &w.desk_addr;
    let dovecot = log("dovecot.log");
    assert!(
        dovecot.lines().any(|l| l.contains("imap-login: Info: Login: ")
            && l.contains(&format!("user=<{user}>"))
            && l.contains("method=XOAUTH2")),
        "Dovecot logged no XOAUTH2 login for {user}"
    );
    wait_for("Postfix to log the XOAUTH2 submission", || async {
        log("postfix.log")
            .lines()
            .any(|l| l.contains("sasl_method=XOAUTH2") && l.contains(&format!("sasl_username={user}")))
            .then_some(())
    })
    .await;
    assert!(!daemon.log_text().contains("oauth-app-secret"), "the client secret is never logged");
    drop(daemon);
}

/// OAUTHBEARER for IMAP and for the SMTP relay, and `loket oauth test` naming every step; a
/// wrong secret fails at the token endpoint with Microsoft's own words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_and_the_test_command_name_each_step() {
    let _servers = MAIL_SERVERS.read().await;
    let w = oauth_world("oauth-bearer", "app", "client-credentials", "oauthbearer").await;
    let run = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_loket"))
            .arg("--config")
            .arg(&w.config_path)
            .args(["oauth", "test", "--inbox", "hero"])
            .envs(OAUTH_SECRETS.iter().copied())
            .env("LOKET_TEST_OAUTH_SECRET", secret)
            .output()
            .unwrap()
    };
    let ok = run("oauth-app-secret");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "oauth test failed: {out}{}", String::from_utf8_lossy(&ok.stderr));
    for step in [
        "token endpoint: ok",
        "scope: ok",
        "SASL exchange (IMAP AUTHENTICATE OAUTHBEARER",
        "mailbox access: ok",
        "SMTP relay (AUTH OAUTHBEARER",
    ] {
        assert!(out.contains(step), "missing {step} in {out}");
    }
    let bad = run("wrong-secret");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("token endpoint: FAILED")
            && out.contains("invalid_client: AADSTS7000215: Invalid client secret provided."),
        "{out}"
    );
    assert!(!out.contains("SASL exchange"), "stops at the first failing step: {out}");
    // check-config asks the token endpoint too, with the provider's words on failure.
    let check = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_loket"))
            .arg("--config")
            .arg(&w.config_path)
            .arg("check-config")
            .envs(OAUTH_SECRETS.iter().copied())
            .env("LOKET_TEST_OAUTH_SECRET", secret)
            .output()
            .unwrap()
    };
    let good = check("oauth-app-secret");
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success() && out.contains("inbox hero: oauth: token endpoint ok"), "{out}");
    assert!(out.contains("outbound.smtp: oauth: token endpoint ok"), "{out}");
    let bad = check("wrong-secret");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(78), "{out}");
    assert!(out.contains("inbox hero: oauth: token endpoint FAILED") && out.contains("AADSTS7000215"), "{out}");
    let dovecot = log("dovecot.log");
    assert!(
        dovecot.lines().any(|l| l.contains(&format!("user=<{}>", w.desk_addr)) && l.contains("method=OAUTHBEARER")),
        "no OAUTHBEARER login"
    );
    // The daemon answers a request through the relay with OAUTHBEARER, twice on one login.
    let daemon = w.serve();
    let ack = request_and_ack(&w, "budi", 1).await;
    assert_eq!(parsed(&ack).from.as_ref().unwrap().address.as_str(), w.desk_addr);
    request_and_ack(&w, "sari", 2).await;
    let user = &w.desk_addr;
    wait_for("Postfix to log the OAUTHBEARER submission", || async {
        log("postfix.log")
            .lines()
            .any(|l| l.contains("sasl_method=OAUTHBEARER") && l.contains(&format!("sasl_username={user}")))
            .then_some(())
    })
    .await;
    drop(daemon);
}

/// Runs `loket oauth login --inbox hero`, approves the code at the fake IdP as `user`, waits for
/// the command to finish.
async fn device_login(w: &World, user: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&w.config_path)
        .args(["oauth", "login", "--inbox", "hero"])
        .envs(OAUTH_SECRETS.iter().copied())
        .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let Ok(first) = rx.recv_timeout(DEADLINE) else {
        let out = child.wait_with_output().unwrap();
        panic!("the login printed no code: {}", String::from_utf8_lossy(&out.stderr));
    };
    let code = first.rsplit(' ').next().unwrap().to_string();
    assert!(first.contains("/devicelogin") && first.contains(&w.desk_addr), "{first}");
    let (status, answer) = idp("/devicelogin", &[("user_code", &code), ("login", user)], None).await;
    assert_eq!(status, 200, "approving the code: {answer}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    // Every line the reader thread still holds: it ends (and drops its sender) at the pipe's end.
    let rest: Vec<String> = rx.iter().collect();
    assert!(out.status.success(), "login failed: {rest:?} {}", String::from_utf8_lossy(&out.stderr));
    assert!(rest.iter().any(|l| l.contains("Signed in")), "{rest:?}");
}

/// The stored refresh token of the desk's credential, opened with the test key.
async fn stored_refresh_token(w: &World, store: &loket::store::Store) -> (String, i64) {
    let cred = format!("{}/desk.test/oauth2/v2.0/token|{}|{}", ENV.idp_url, client_id(w), w.desk_addr);
    let row = loket::store::grant(store.pool(), &cred).await.unwrap().expect("a stored grant");
    let key = loket::oauth::crypto::parse_key(OAUTH_SECRETS[1].1).unwrap();
    assert!(!row.sealed_refresh_token.contains("1.AQ"), "the refresh token is stored sealed");
    (loket::oauth::crypto::open(&key, &cred, &row.sealed_refresh_token).unwrap(), row.rotations)
}

/// Acceptance 2: the device-code login stores a refresh token; the IdP rotates it on every
/// refresh (and refuses the old one); across three daemon runs (each start refreshes, and the
/// 4-second access tokens make the relay refresh too) mail still flows, one grant is stored, and
/// it is the latest token: the first is refused, the stored one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_then_rotated_refresh_tokens_are_kept_across_restarts() {
    let _servers = MAIL_SERVERS.read().await;
    let w = oauth_world("oauth-rt", "public", "refresh-token", "xoauth2").await;
    device_login(&w, &w.desk_addr).await;
    let store = w.store().await;
    let (first, rotations) = stored_refresh_token(&w, &store).await;
    assert_eq!(rotations, 0);
    let mut last_rotations = 0;
    for run in 1..=3 {
        let mut daemon = w.serve();
        wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) })
            .await;
        let ack = request_and_ack(&w, &format!("run{run}"), run).await;
        assert_eq!(parsed(&ack).from.unwrap().address.as_str(), w.desk_addr);
        assert_eq!(daemon.terminate(), Some(0));
        let (_, rotations) = stored_refresh_token(&w, &store).await;
        assert!(rotations > last_rotations, "run {run}: the start refreshed and stored the rotated token");
        last_rotations = rotations;
    }
    assert_eq!(loket::store::count_grants(store.pool()).await.unwrap(), 1, "only one grant is stored");
    let (latest, _) = stored_refresh_token(&w, &store).await;
    assert_ne!(latest, first);
    let refresh = |rt: String| {
        let cid = client_id(&w);
        async move {
            let path = "/desk.test/oauth2/v2.0/token";
            idp(path, &[("grant_type", "refresh_token"), ("client_id", &cid), ("refresh_token", &rt)], None).await
        }
    };
    let (status, answer) = refresh(first).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")), "the first token was spent");
    let (status, answer) = refresh(latest).await;
    assert_eq!(status, 200, "the stored token is the live one: {answer}");
}

/// The supervisor (the desk's operator) of a world with agents.
fn operator(w: &World) -> String {
    w.agent("boss")
}

/// Acceptance 3: the provider revokes the grant. The inbox reports Microsoft's exact error in
/// `/healthz` and the log, the operator gets exactly one mail however often the login is retried,
/// mail that arrives meanwhile stays in the mailbox (no ticket, not marked done), and after
/// `loket oauth login` again it is processed. On PostgreSQL (the rotation test runs on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_is_reported_once_and_mail_waits_for_the_new_login() {
    let _servers = MAIL_SERVERS.read().await;
    let port = free_port();
    let x = Extra { plain_relay: true, pg: true, http_port: Some(port), ..Default::default() };
    let w = oauth_world_with("oauth-revoke", "public", "refresh-token", "xoauth2", x).await;
    device_login(&w, &w.desk_addr).await;
    let daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    request_and_ack(&w, "before", 1).await;

    // The provider revokes the grant (a password reset); Dovecot drops the session.
    let store = w.store().await;
    let (rt, _) = stored_refresh_token(&w, &store).await;
    let (status, answer) = idp("/_admin/revoke", &[("token", &rt)], None).await;
    assert_eq!((status, answer["revoked"].as_bool()), (200, Some(true)));
    let kicked = Command::new("doveadm").args(["-c", &ENV.dovecot_conf, "kick", &w.desk_addr]).output().unwrap();
    assert!(kicked.status.success(), "doveadm kick: {}", String::from_utf8_lossy(&kicked.stderr));
    let waiting = w.addr("during");
    let raw = mail(
        &waiting,
        &w.desk_addr,
        "Printer rusak",
        &format!("{}-during@example.test", w.tag),
        "",
        "Printer lantai 2 rusak.",
    );
    smtp_send(&waiting, &[&w.desk_addr], &raw).await;

    let aadsts = "invalid_grant: AADSTS50173: The provided grant has expired due to it being revoked";
    let health = wait_for("/healthz to name the provider's error", || async {
        let (code, body) = http_get(port, "/healthz").await;
        (code == 503 && body.contains(aadsts)).then_some(body)
    })
    .await;
    assert!(health.contains("\"connected\":false"), "{health}");
    // The health state is set before the log line is written: wait for the line.
    wait_for("the log to name the provider's error", || async { daemon.log_text().contains(aadsts).then_some(()) })
        .await;
    let alerts = wait_mailbox(&operator(&w), "INBOX", 1).await;
    let alert = parsed(&alerts[0]);
    assert!(alert.subject.contains("tidak dapat login"), "{:?}", alert.subject);
    assert!(
        alert.text.contains("AADSTS50173") && alert.text.contains("loket oauth login --inbox hero"),
        "{}",
        alert.text
    );
    // Several more refused attempts: still one alert, and the waiting mail untouched.
    wait_for("three refused logins", || async {
        (daemon.log_text().matches("IMAP session ended; check the inbox's configuration").count() >= 3).then_some(())
    })
    .await;
    assert_eq!(mailbox(&operator(&w), "INBOX").await.len(), 1, "exactly one operator mail");
    let counts = loket::store::counts(store.pool()).await.unwrap();
    assert_eq!(counts.tickets, 1, "the waiting mail made no ticket");
    assert_eq!(mailbox(&w.desk_addr, "INBOX").await.len(), 1, "the waiting mail stays in the inbox, not marked done");
    assert!(mailbox(&waiting, "INBOX").await.is_empty());

    // The operator signs in again: the waiting mail is processed and the inbox is healthy.
    device_login(&w, &w.desk_addr).await;
    let ack = wait_mailbox(&waiting, "INBOX", 1).await;
    assert_eq!(parsed(&ack[0]).from.unwrap().address.as_str(), w.desk_addr);
    wait_for("/healthz ok again", || async { (http_get(port, "/healthz").await.0 == 200).then_some(()) }).await;
    assert_eq!(mailbox(&operator(&w), "INBOX").await.len(), 1, "still exactly one operator mail");
    drop(daemon);
}

/// Acceptance 4: a client secret 10 days from its configured end date shows in `/metrics` and
/// triggers the early warning once (a restart sends no second one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_near_its_end_date_is_counted_down_and_warned_once() {
    let _servers = MAIL_SERVERS.read().await;
    let port = free_port();
    let end = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    let x = Extra {
        plain_relay: true,
        pg: false,
        http_port: Some(port),
        oauth_keys: format!("client_secret_expires = \"{end}\"\n"),
    };
    let w = oauth_world_with("oauth-secret", "app", "client-credentials", "xoauth2", x).await;
    let mut daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    let warning = wait_mailbox(&operator(&w), "INBOX", 1).await;
    let warning = parsed(&warning[0]);
    assert!(warning.subject.contains("client secret"), "{:?}", warning.subject);
    assert!(warning.text.contains(&end.to_string()) && warning.text.contains("10 day(s)"), "{}", warning.text);
    let (_, metrics) = http_get(port, "/metrics").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("loket_oauth_client_secret_expiry_seconds") && l.contains(&w.desk_addr))
        .unwrap_or_else(|| panic!("no secret expiry in {metrics}"));
    let secs: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((10 * 86_400..11 * 86_400).contains(&secs), "{line}");
    assert!(
        metrics.lines().any(|l| l.starts_with("loket_oauth_access_token_expiry_seconds") && l.contains(&w.desk_addr))
    );
    assert_eq!(daemon.terminate(), Some(0));

    let daemon = w.serve();
    wait_for("the daemon to connect again", || async { daemon.log_text().contains("IMAP connected").then_some(()) })
        .await;
    let store = w.store().await;
    let alerts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'oauth_alert'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(alerts, 1, "the early warning is sent once");
    assert_eq!(mailbox(&operator(&w), "INBOX").await.len(), 1);
    drop(daemon);
}

/// Google Workspace: the device flow refuses the Gmail scope (Google's rule, with its own words),
/// so the refresh token is imported; a wrong one is refused with Google's words, a good one is
/// kept and the inbox reads mail with XOAUTH2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_inbox_with_an_imported_refresh_token_takes_mail() {
    let _servers = MAIL_SERVERS.read().await;
    let client_id = format!("{}.apps.googleusercontent.com", unique("google"));
    let keys = format!(
        "provider = \"google\"\nflow = \"refresh-token\"\nclient_id = \"{client_id}\"\n\
         client_secret_env = \"LOKET_TEST_OAUTH_SECRET\"\nkey_env = \"LOKET_TEST_OAUTH_KEY\"\nendpoint = \"{}\"\n",
        ENV.idp_url
    );
    let w = World::new(
        "oauth-google",
        WorldOptions { imap_login: Some(format!("[desk.inbox.imap.oauth]\n{keys}")), ..Default::default() },
    )
    .await;
    let body = serde_json::json!({"client_id": client_id, "provider": "google", "secret": "oauth-app-secret"});
    assert_eq!(idp("/_admin/client", &[], Some(body)).await.0, 200);
    let cli = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_loket"))
            .arg("--config")
            .arg(&w.config_path)
            .args(["oauth"])
            .args(args)
            .args(["--inbox", "hero"])
            .envs(OAUTH_SECRETS.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = cli(&["login"], "");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("invalid_scope: Some requested scopes were invalid"), "{out}");
    let (code, out) = cli(&["import"], "1//not-a-token\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("invalid_grant: Token has been expired or revoked."), "{out}");
    let scope = "https://mail.google.com/";
    let (status, grant) =
        idp("/_admin/grant", &[("client_id", &client_id), ("user", &w.desk_addr), ("scope", scope)], None).await;
    assert_eq!(status, 200, "{grant}");
    let (code, out) = cli(&["import"], grant["refresh_token"].as_str().unwrap());
    assert_eq!(code, Some(0), "{out}");
    let daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    request_and_ack(&w, "budi", 1).await;
    let user = &w.desk_addr;
    assert!(
        log("dovecot.log").lines().any(|l| l.contains(&format!("user=<{user}>")) && l.contains("method=XOAUTH2")),
        "no XOAUTH2 login for {user}"
    );
    drop(daemon);
}

/// GETs an admin page of the fake Graph (at the IdP's address).
async fn graph_admin(path: &str) -> serde_json::Value {
    let r = reqwest::get(format!("{}{path}", ENV.idp_url)).await.expect("the fake Graph answers");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Acceptance 5: a Microsoft 365 mailbox read through Graph (delta query, pages of five) and
/// answered through `sendMail`; a kill between the batch's commit and the "done" move loses and
/// doubles nothing: after the restart every message is a ticket once, answered once, and moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_inbox_reads_by_delta_answers_by_send_mail_and_a_kill_after_the_commit_doubles_nothing() {
    let _servers = MAIL_SERVERS.read().await;
    let tag = unique("graph");
    let client_id = format!("{tag}-app");
    let keys = oauth_keys(&client_id, "client-credentials", "xoauth2");
    let idp_url = &ENV.idp_url;
    let w = World::new(
        "graph",
        WorldOptions {
            imap: false,
            outbound: Some(format!(
                "[outbound]\ntransport = \"graph\"\ninitial_backoff_secs = 1\nmax_backoff_secs = 2\npoll_interval_ms = 600000\n\
                 [outbound.graph]\nuser = \"DESK\"\nendpoint = \"{idp_url}\"\n[outbound.graph.oauth]\n{keys}"
            )),
            ..Default::default()
        },
    )
    .await;
    let text = std::fs::read_to_string(&w.config_path)
        .unwrap()
        .replace("user = \"DESK\"", &format!("user = \"{}\"", w.desk_addr));
    let inbox = format!(
        "[desk.inbox.graph]\nendpoint = \"{idp_url}\"\npoll_interval_secs = 1\n[desk.inbox.graph.oauth]\n{keys}"
    );
    std::fs::write(&w.config_path, format!("{text}{inbox}")).unwrap();
    let app = serde_json::json!({
        "client_id": client_id, "provider": "microsoft", "secret": "oauth-app-secret", "tenants": ["desk.test"],
        "app_mailbox": w.desk_addr, "app_roles": {"https://graph.microsoft.com": ["Mail.ReadWrite", "Mail.Send"]}
    });
    assert_eq!(idp("/_admin/client", &[], Some(app)).await.0, 200);

    // The outbox sends only when a commit wakes it (and once at start): nothing is in flight when
    // the first daemon is killed, so every send below is the restarted daemon's. (A send in flight
    // at a crash is repeated: invariant 3, `faults::*`.)
    let users: Vec<String> = (0..7).map(|i| w.addr(&format!("g{i}"))).collect();
    for (i, user) in users.iter().enumerate() {
        let raw = mail(
            user,
            &w.desk_addr,
            &format!("Permintaan {i}"),
            &format!("{}-{i}@example.test", w.tag),
            "",
            "Website error.",
        );
        let body = serde_json::json!({"user": w.desk_addr, "mime_b64": base64_encode(&raw)});
        assert_eq!(idp("/_admin/graph/deliver", &[], Some(body)).await.0, 200);
    }
    let folder = |name: &str| {
        let path = format!("/_admin/graph/mailbox?user={}&folder={name}", w.desk_addr);
        async move { graph_admin(&path).await["ids"].as_array().map_or(0, Vec::len) }
    };
    assert_eq!(folder("inbox").await, 7);

    // `loket oauth test` names each step for a Graph inbox.
    let test = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&w.config_path)
        .args(["oauth", "test", "--inbox", "hero"])
        .envs(OAUTH_SECRETS.iter().copied())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "oauth test: {out}{}", String::from_utf8_lossy(&test.stderr));
    for step in [
        "token endpoint: ok",
        "scope: ok",
        "mailbox access (Graph delta of `inbox`",
        "7 message(s) waiting",
        "sendMail transport: ok",
    ] {
        assert!(out.contains(step), "missing {step} in {out}");
    }

    let store = w.store().await;
    let hold = w.dir.path().join("hold");
    let spec = format!("after:{}", hold.display());
    let mut daemon = w.serve_with(&[("LOKET_TEST_HOLD_BATCH", &spec)]);
    let size: i64 =
        wait_for("a batch just committed", || async { std::fs::read_to_string(&hold).ok() }).await.parse().unwrap();
    daemon.kill9();
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound), (size, size), "the whole committed batch");
    assert_eq!(folder("inbox").await, 7, "nothing was moved: Graph was not told");

    let daemon = w.serve();
    wait_for("7 tickets and 7 acknowledgements sent", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 7 && c.outbox_sent == 7).then_some(())
    })
    .await;
    wait_for("the inbox drained", || async { (folder("inbox").await == 0).then_some(()) }).await;
    assert_eq!(folder("Processed").await, 7);
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound, c.outbox_pending, c.outbox_failed), (7, 7, 7, 0, 0));
    let sent = graph_admin(&format!("/_admin/graph/sent?user={}", w.desk_addr)).await;
    let mut to = std::collections::BTreeSet::new();
    for m in sent["mime_b64"].as_array().unwrap() {
        let raw = base64_decode(m.as_str().unwrap());
        let p = parsed(&raw);
        assert_eq!(p.from.as_ref().unwrap().address.as_str(), w.desk_addr);
        assert_eq!(loket::ticket::find_tags(&p.subject).len(), 1, "ticket tag in {:?}", p.subject);
        to.insert(p.to[0].as_str().to_string());
    }
    assert_eq!(sent["mime_b64"].as_array().unwrap().len(), 7, "one acknowledgement each, none doubled");
    assert_eq!(to, users.iter().cloned().collect(), "every requester answered once");
    drop(daemon);
}

fn base64_encode(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}
