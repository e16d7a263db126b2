//! HTTP: `/metrics` read by a Prometheus text-format parser, `/healthz` following the IMAP
//! server down and up, and the public tracking page (no personal data, rate-limited).

use prometheus_parse::{Scrape, Value};

use crate::harness::*;

fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

async fn world_with_http(name: &str, port: u16, opts: WorldOptions) -> World {
    World::new(name, WorldOptions { extra: format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"), ..opts }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_healthz_follow_the_imap_server_and_nothing_is_lost() {
    let _servers = MAIL_SERVERS.write().await;
    let port = free_port();
    let w = world_with_http(
        "http",
        port,
        WorldOptions { outbound_smtp: false, poll_interval_secs: 1, ..Default::default() },
    )
    .await;
    let daemon = w.serve();
    wait_for("healthz ok", || async { (http_get(port, "/healthz").await.0 == 200).then_some(()) }).await;
    dovecot_save(
        &w.desk_addr,
        &mail(&w.addr("x"), &w.desk_addr, "Printer", &format!("{}-1@example.test", w.tag), "", "Website error."),
    );
    dovecot_save(
        &w.desk_addr,
        &mail(&w.addr("x"), &w.desk_addr, "Printer", &format!("{}-1@example.test", w.tag), "", "Website error."),
    );
    let scrape = wait_for("two messages counted", || async {
        let (code, body) = http_get(port, "/metrics").await;
        assert_eq!(code, 200);
        let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format");
        let created =
            sample(&scrape, "loket_messages_total", &[("action", "created"), ("desk", "hero"), ("inbox", "hero")]);
        let dup = sample(&scrape, "loket_messages_total", &[("action", "duplicate")]);
        (created == Some(1.0) && dup == Some(1.0)).then_some(scrape)
    })
    .await;
    assert_eq!(sample(&scrape, "loket_inbox_up", &[("inbox", "hero"), ("kind", "imap")]), Some(1.0));
    assert_eq!(sample(&scrape, "loket_tickets", &[]), Some(1.0));
    assert!(sample(&scrape, "loket_outbox_messages", &[("state", "pending")]).is_some());
    assert_eq!(sample(&scrape, "loket_store_up", &[]), Some(1.0));
    assert!(scrape.docs.contains_key("loket_messages_total"));

    // Stop Dovecot: the inbox goes down and /healthz says so; start it: healthy again.
    let conf = ENV.dovecot_conf.clone();
    // Daemons must not inherit the test's output: whoever reads it would wait for them.
    let quiet = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    };
    quiet("doveadm", &["-c", &conf, "stop"]).unwrap();
    struct Restart(String);
    impl Drop for Restart {
        fn drop(&mut self) {
            let _ = std::process::Command::new("dovecot")
                .args(["-c", &self.0])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    let restart = Restart(conf.clone());
    let body = wait_for("healthz unhealthy", || async {
        let (code, body) = http_get(port, "/healthz").await;
        (code == 503).then_some(body)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert_eq!(v["inboxes"]["hero"]["connected"], false);
    assert!(v["inboxes"]["hero"]["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    // Mail that lands while the IMAP server is down is picked up after it is back.
    maildir_deliver(
        &w.desk_addr,
        &mail(
            &w.addr("y"),
            &w.desk_addr,
            "Saat server mati",
            &format!("{}-2@example.test", w.tag),
            "",
            "Website error.",
        ),
    );
    drop(restart);
    wait_for("IMAP port back", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", ENV.imap_port)).await.ok().map(|_| ())
    })
    .await;
    wait_for("healthz ok again", || async { (http_get(port, "/healthz").await.0 == 200).then_some(()) }).await;
    let store = w.store().await;
    wait_for("the mail saved during the outage becomes a ticket", || async {
        (loket::store::counts(store.pool()).await.unwrap().tickets == 2).then_some(())
    })
    .await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_page_shows_status_without_personal_data() {
    let port = free_port();
    let w = world_with_http(
        "track",
        port,
        WorldOptions { imap: false, maildir: true, outbound_smtp: false, ..Default::default() },
    )
    .await;
    let requester = format!("{}-rahasia@example.test", w.tag);
    let m = mail(
        &format!("Siti Rahasia <{requester}>"),
        &w.desk_addr,
        "Internet putus",
        &format!("{}@example.test", w.tag),
        "",
        "Isi pesan pribadi: nomor HP 0812-3456-7890.",
    );
    let (_, out, _) = w.ingest(&m);
    let number = serde_json::from_str::<serde_json::Value>(&out).unwrap()["ticket"].as_str().unwrap().to_string();
    let daemon = w.serve();
    wait_for("HTTP up", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()) }).await;
    let (code, page) = http_get(port, &format!("/lacak/{number}")).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(&number) && page.contains("Status") && page.contains("Tiket diterima"), "{page}");
    for secret in [requester.as_str(), "Rahasia", "0812", "Isi pesan", &w.desk_addr] {
        assert!(!page.contains(secret), "the page leaks `{secret}`");
    }
    let (_, en) = http_get(port, &format!("/lacak/{}?lang=en", number.to_lowercase())).await;
    assert!(en.contains("Ticket received"), "{en}");
    let (code, _) = http_get(port, "/lacak/A-HERO99999999").await;
    assert_eq!(code, 404);
    let (code, form) = http_get(port, "/lacak").await;
    assert!(code == 200 && form.contains("<form"));
    let (code, _) = http_get(port, &format!("/lacak?nomor={number}")).await;
    assert_eq!(code, 303, "the form redirects to the ticket page");
    // Guessing numbers is rate-limited.
    let mut limited = false;
    for _ in 0..40 {
        if http_get(port, "/lacak/A-HERO26000002").await.0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "no rate limit after 40 lookups");
    drop(daemon);
}

/// The tracking page in a real browser (Debian's headless Chromium): look a ticket up through the
/// form's address, check what the rendered page shows, and save a screenshot
/// (`target/screenshots/lacak.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_page_in_headless_chromium() {
    let port = free_port();
    let w = world_with_http(
        "chromium",
        port,
        WorldOptions { imap: false, maildir: true, outbound_smtp: false, ..Default::default() },
    )
    .await;
    let requester = format!("{}-pribadi@example.test", w.tag);
    let m = mail(
        &requester,
        &w.desk_addr,
        "Internet putus",
        &format!("{}@example.test", w.tag),
        "",
        "Jaringan internet di ruangan saya putus sejak pagi.",
    );
    let (_, out, _) = w.ingest(&m);
    let number = serde_json::from_str::<serde_json::Value>(&out).unwrap()["ticket"].as_str().unwrap().to_string();
    let daemon = w.serve();
    wait_for("HTTP up", || async { (http_get(port, "/lacak").await.0 == 200).then_some(()) }).await;
    let shots = repo().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("lacak.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://127.0.0.1:{port}/lacak?nomor={number}");
    let chromium = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,800",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("chromium (installed by scripts/testenv/install.sh)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(dom.contains(&format!("Tiket #{number}")), "{dom}");
    assert!(dom.contains("Dalam proses") || dom.contains("Diterima"), "{dom}");
    assert!(dom.contains("Tiket diterima") && dom.contains("Jaringan"), "{dom}");
    assert!(!dom.contains(&requester) && !dom.contains("sejak pagi"), "personal data in the page");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "a real screenshot");
    drop(daemon);
}
