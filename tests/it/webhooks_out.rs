//! Issue 19, outbound webhooks (acceptance 2), against the daemon, Postfix and Dovecot: a
//! receiver that is down (port closed, then answering 503) while a ticket is created by mail,
//! answered by an agent and resolved gets every event once, in order, each signed as README
//! documents; a tampered body or timestamp and an old timestamp fail the documented check; a
//! second subscription that names only status changes hears only those, and is not held up by
//! the first receiver's outage. In process, on SQLite and PostgreSQL: the queue's head-of-line
//! claims, retries, give-up and leases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use loket::store::{self, WebhookItem, WebhookOutcome, WebhookRow};
use loket::webhook::{self, REPLAY_WINDOW, VerifyError};

use crate::harness::*;

const SECRET_A: &str = WEBHOOK_SECRETS[0].1;
const SECRET_B: &str = WEBHOOK_SECRETS[1].1;

/// One POST as the receiver saw it, and what it answered.
#[derive(Debug, Clone)]
struct Hit {
    event_id: String,
    signature: String,
    body: String,
    answered: u16,
}

/// A fake subscriber: records every POST and answers 503 to the first `refuse` of them.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    refuse: Arc<AtomicUsize>,
}

impl Receiver {
    /// Listens on `port` (127.0.0.1) from now on.
    async fn start(&self, port: u16) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("receiver port");
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let refuse =
                        me.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                    let status = if refuse { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
                    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    me.hits.lock().unwrap().push(Hit {
                        event_id: header(webhook::EVENT_ID_HEADER),
                        signature: header(webhook::SIGNATURE_HEADER),
                        body: String::from_utf8_lossy(&body).to_string(),
                        answered: status.as_u16(),
                    });
                    status
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The accepted (200) POSTs.
    fn accepted(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.answered == 200).collect()
    }
}

fn hook(port: u16, events: &[&str], secret_env: &str) -> String {
    let events: Vec<String> = events.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[[desk.webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nevents = [{}]\nsecret_env = \"{secret_env}\"\n\
         timeout_secs = 5\n",
        events.join(", ")
    )
}

fn now_secs() -> i64 {
    loket::now_ms() / 1000
}

/// The ticket's deliveries for the subscription to `port`.
async fn rows(store: &store::Store, ticket_id: i64, port: u16) -> Vec<WebhookRow> {
    let key = webhook::subscription_key(&format!("http://127.0.0.1:{port}/hook"));
    let all = store::ticket_webhooks(store.pool(), ticket_id).await.unwrap();
    all.into_iter().filter(|r| r.subscription == key).collect()
}

fn field(body: &str, path: &[&str]) -> String {
    let mut v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    for p in path {
        v = v[*p].take();
    }
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_event_once_in_order_and_signed() {
    let _servers = MAIL_SERVERS.read().await;
    // Receiver B is up from the start; receiver A's port stays closed for now.
    let (a, b) = (Receiver::default(), Receiver::default());
    let port_b = free_port();
    b.start(port_b).await;
    let other_port = |taken: &[u16]| loop {
        let p = free_port();
        if !taken.contains(&p) {
            break p;
        }
    };
    let port_a = other_port(&[port_b]);
    let http_port = other_port(&[port_a, port_b]);
    let everything = [
        "ticket.created",
        "ticket.replied",
        "ticket.status_changed",
        "ticket.sla_warning",
        "ticket.sla_breach",
        "ticket.rated",
    ];
    let desk_extra = format!(
        "{}{}",
        hook(port_a, &everything, "LOKET_TEST_WEBHOOK_A"),
        hook(port_b, &["ticket.status_changed"], "LOKET_TEST_WEBHOOK_B")
    );
    let extra = format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n");
    let w = World::new("webhooks", WorldOptions { agents: true, desk_extra, extra, ..Default::default() }).await;
    let daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;

    // The story: a request by mail, the agent's reply, then #resolve with words for the requester.
    let (budi, agus) = (w.addr("budi"), w.agent("agent1"));
    let request = mail(
        &format!("Budi Santoso <{budi}>"),
        &w.desk_addr,
        "Printer lantai 2 macet",
        &format!("{}-1@example.test", w.tag),
        "",
        "Printer di lantai 2 macet terus sejak pagi, kertas selalu tersangkut.",
    );
    smtp_send(&budi, &[&w.desk_addr], &request).await;
    let ack = parsed(&wait_mailbox(&budi, "INBOX", 1).await[0]);
    let number = loket::ticket::find_tags(&ack.subject)[0].to_string();
    let notif = parsed(&wait_mailbox(&agus, "INBOX", 1).await[0]);
    let answer = |body: &str, i: &str| {
        let parent = notif.message_id.as_deref().unwrap();
        mail(
            &agus,
            &w.desk_addr,
            &format!("Re: {}", notif.subject),
            &format!("{}-{i}@desk.test", w.tag),
            &format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"),
            body,
        )
    };
    smtp_send(&agus, &[&w.desk_addr], &answer("Teknisi kami sedang menuju lantai 2.", "a1")).await;
    wait_mailbox(&budi, "INBOX", 2).await;
    smtp_send(&agus, &[&w.desk_addr], &answer("#resolve Rol kertas printer sudah diganti.", "a2")).await;
    wait_mailbox(&budi, "INBOX", 3).await;

    let store = w.store().await;
    let t = ticket(&store, &number).await;
    assert_eq!(t.status.as_str(), "resolved");
    // What the store queued for A, in queue order, is what the story did.
    let queued = rows(&store, t.id, port_a).await;
    let kinds: Vec<&str> = queued.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["ticket.created", "ticket.replied", "ticket.status_changed", "ticket.replied", "ticket.status_changed"]
    );

    // A is down: the worker keeps trying its first event and sends nothing after it.
    let tried = wait_for("failed attempts on receiver A's first event", || async {
        let r = rows(&store, t.id, port_a).await;
        (r[0].attempts >= 2).then_some(r)
    })
    .await;
    assert!(tried.iter().all(|r| r.status == "pending"), "{tried:?}");
    assert!(tried[1..].iter().all(|r| r.attempts == 0), "a later event went before the first: {tried:?}");
    // Meanwhile B, which names only status changes, got both, not held up by A.
    let got_b = wait_for("receiver B's status changes", || async {
        let acc = b.accepted();
        (acc.len() >= 2).then_some(acc)
    })
    .await;
    let b_types: Vec<String> = got_b.iter().map(|h| field(&h.body, &["type"])).collect();
    assert_eq!(b_types, ["ticket.status_changed", "ticket.status_changed"]);
    assert_eq!(field(&got_b[1].body, &["data", "to"]), "resolved");
    for h in &got_b {
        assert_eq!(
            webhook::verify(SECRET_B.as_bytes(), &h.signature, h.body.as_bytes(), now_secs(), REPLAY_WINDOW),
            Ok(())
        );
    }

    // A comes up, but answers 503 twice first; then every event arrives.
    a.refuse.store(2, Ordering::SeqCst);
    a.start(port_a).await;
    let done = wait_for("every event of A delivered", || async {
        let r = rows(&store, t.id, port_a).await;
        r.iter().all(|r| r.status == "sent").then_some(r)
    })
    .await;
    let hits = a.hits();
    let accepted = a.accepted();
    assert_eq!(hits.iter().filter(|h| h.answered == 503).count(), 2, "{hits:?}");

    // Exactly once each (no event accepted twice), in queue order.
    let ids: Vec<&str> = accepted.iter().map(|h| h.event_id.as_str()).collect();
    let expected: Vec<&str> = done.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, expected, "accepted out of order or more than once");
    // Every POST, refused ones included, came in queue order: no later event before an earlier one.
    let position = |id: &str| expected.iter().position(|e| *e == id).expect("a queued event");
    let seen: Vec<usize> = hits.iter().map(|h| position(&h.event_id)).collect();
    assert!(seen.windows(2).all(|p| p[0] <= p[1]), "{seen:?}");

    // Each carries a valid signature by the documented procedure, its id in the header and body,
    // and nothing of the person or their words.
    for h in &accepted {
        assert_eq!(
            webhook::verify(SECRET_A.as_bytes(), &h.signature, h.body.as_bytes(), now_secs(), REPLAY_WINDOW),
            Ok(()),
            "{h:?}"
        );
        assert_eq!(field(&h.body, &["id"]), h.event_id);
        assert_eq!(field(&h.body, &["desk"]), "hero");
        assert_eq!(field(&h.body, &["ticket", "number"]), t.number.as_str());
        for personal in [budi.as_str(), "Budi", "Printer lantai", "kertas"] {
            assert!(!h.body.contains(personal), "{personal} in {}", h.body);
        }
    }
    let types: Vec<String> = accepted.iter().map(|h| field(&h.body, &["type"])).collect();
    assert_eq!(types, kinds);
    assert_eq!(field(&accepted[1].body, &["data", "by"]), "agent");
    assert_eq!(field(&accepted[4].body, &["data", "from"]), "open");
    assert_eq!(field(&accepted[4].body, &["data", "to"]), "resolved");

    // Acceptance 2's other half: a tampered body, a moved timestamp, an old delivery all fail.
    let h = &accepted[0];
    let tampered = h.body.replace("ticket.created", "ticket.rated");
    assert_ne!(tampered, h.body);
    assert_eq!(
        webhook::verify(SECRET_A.as_bytes(), &h.signature, tampered.as_bytes(), now_secs(), REPLAY_WINDOW),
        Err(VerifyError::Mismatch)
    );
    let t_sent: i64 = h.signature.split(',').find_map(|p| p.strip_prefix("t=")).unwrap().parse().unwrap();
    let moved = h.signature.replacen(&format!("t={t_sent}"), &format!("t={}", t_sent + 1), 1);
    assert_eq!(
        webhook::verify(SECRET_A.as_bytes(), &moved, h.body.as_bytes(), now_secs(), REPLAY_WINDOW),
        Err(VerifyError::Mismatch)
    );
    let later = t_sent + REPLAY_WINDOW.as_secs() as i64 + 60;
    assert!(matches!(
        webhook::verify(SECRET_A.as_bytes(), &h.signature, h.body.as_bytes(), later, REPLAY_WINDOW),
        Err(VerifyError::OutsideWindow(_))
    ));
    assert_eq!(
        webhook::verify(SECRET_B.as_bytes(), &h.signature, h.body.as_bytes(), now_secs(), REPLAY_WINDOW),
        Err(VerifyError::Mismatch),
        "another subscription's secret"
    );

    // The metric counts the deliveries by desk and state (A's five and B's two sent).
    let (status, metrics) = http_get(http_port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("loket_webhooks{desk=\"hero\",state=\"sent\"} 7"), "{metrics}");
    drop(daemon);
}

/// The queue's SQL on one backend: a change's events queued per subscriber, only each
/// subscription's head claimed (and not twice while leased), a retry not before its time, a
/// given-up head recorded on the ticket and followed by the next event, a dead worker's lease
/// running out.
async fn head_of_line_claims(pg: bool) {
    let desk_extra = format!(
        "{}{}",
        hook(1, &["ticket.created", "ticket.replied"], "LOKET_TEST_WEBHOOK_A"),
        hook(2, &["ticket.replied"], "LOKET_TEST_WEBHOOK_B")
    );
    let name = if pg { "webhooks-queue-pg" } else { "webhooks-queue-sqlite" };
    let w = World::new(name, WorldOptions { desk_extra, ..WorldOptions::in_process(pg) }).await;
    let (p, store) = pipeline(&w).await;
    let t0 = 1_767_578_400_000; // 2026-01-05 09:00 WIB
    let budi = w.addr("budi");
    let first = mail(&budi, &w.desk_addr, "Wifi mati", &format!("{}-1@example.test", w.tag), "", "Wifi lantai 3 mati.");
    let number = p.process("hero", &first, t0).await.unwrap().ticket.unwrap();
    let again = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{number}] Wifi mati"),
        &format!("{}-2@example.test", w.tag),
        "",
        "Masih mati sampai sekarang.",
    );
    p.process("hero", &again, t0 + 1000).await.unwrap();
    let t = ticket(&store, &number).await;
    let (x, y) = (rows(&store, t.id, 1).await, rows(&store, t.id, 2).await);
    let kinds = |r: &[WebhookRow]| r.iter().map(|r| r.event_type.clone()).collect::<Vec<_>>();
    assert_eq!(kinds(&x), ["ticket.created", "ticket.replied"]);
    assert_eq!(kinds(&y), ["ticket.replied"]);
    assert_eq!(x[1].event_id, y[0].event_id, "one event, one id for every subscriber");
    assert_eq!(field(&x[1].body, &["data", "by"]), "requester");

    let (pool, backend) = (store.pool(), store.backend());
    let claim = |now: i64| store::claim_webhooks(pool, backend, "w1", now, now + 30_000, 10);
    let ids = |items: &[WebhookItem]| items.iter().map(|i| i.event_id.clone()).collect::<Vec<_>>();
    let now = t0 + 2000;
    let heads = claim(now).await.unwrap();
    assert_eq!(ids(&heads), [x[0].event_id.clone(), y[0].event_id.clone()], "each subscription's head only");
    assert!(claim(now).await.unwrap().is_empty(), "leased heads are not claimed twice");
    let retry = WebhookOutcome::Retry { error: "HTTP 503".into(), at: now + 1000 };
    store::record_webhook(pool, backend, &heads[0], now, &retry).await.unwrap();
    store::record_webhook(pool, backend, &heads[1], now, &WebhookOutcome::Delivered).await.unwrap();
    assert!(claim(now + 500).await.unwrap().is_empty(), "a retry waits for its time; nothing passes it");
    let again = claim(now + 1000).await.unwrap();
    assert_eq!((ids(&again), again[0].attempts), (vec![x[0].event_id.clone()], 1));
    let give_up = WebhookOutcome::GiveUp { error: "HTTP 503".into() };
    store::record_webhook(pool, backend, &again[0], now + 1000, &give_up).await.unwrap();
    let events = store::ticket_events(pool, t.id).await.unwrap();
    let given_up = events.iter().find(|e| e.kind == "webhook_given_up").expect("a webhook_given_up event");
    assert_eq!(given_up.detail["event_id"], x[0].event_id.as_str(), "{}", given_up.detail);
    // The next event follows the given-up one; a worker that dies holding it loses it only until
    // its lease runs out.
    let next = claim(now + 1000).await.unwrap();
    assert_eq!(ids(&next), [x[1].event_id.clone()]);
    assert!(claim(now + 1000 + 29_000).await.unwrap().is_empty());
    assert_eq!(ids(&claim(now + 1000 + 31_000).await.unwrap()), [x[1].event_id.clone()]);
    let states: Vec<String> = rows(&store, t.id, 1).await.into_iter().map(|r| r.status).collect();
    assert_eq!(states, ["failed", "pending"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_queue_is_head_of_line_per_subscription_on_sqlite() {
    head_of_line_claims(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_queue_is_head_of_line_per_subscription_on_postgres() {
    head_of_line_claims(true).await;
}

/// The scheduler's changes are events too: the response clock's warning and breach reach a
/// subscriber of `ticket.sla_warning` and `ticket.sla_breach`, in that order, naming the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedulers_sla_warning_and_breach_are_webhook_events() {
    let desk_extra = format!(
        "[desk.sla]\nhours = {{ weekdays = \"08:00-16:00\" }}\nresponse = \"1h\"\n{}",
        hook(3, &["ticket.sla_warning", "ticket.sla_breach"], "LOKET_TEST_WEBHOOK_A")
    );
    let opts = WorldOptions { imap: false, outbound_smtp: false, desk_extra, ..Default::default() };
    let w = World::new("webhooks-sla", opts).await;
    let (p, store) = pipeline(&w).await;
    let t0 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
    let request =
        mail(&w.addr("ani"), &w.desk_addr, "Wifi mati", &format!("{}-1@example.test", w.tag), "", "Wifi mati.");
    let number = p.process("hero", &request, t0).await.unwrap().ticket.unwrap();
    let t = ticket(&store, &number).await;
    assert!(rows(&store, t.id, 3).await.is_empty(), "created is not subscribed");
    assert_eq!(p.sla_tick(t0 + 50 * 60_000).await.unwrap().fired(), 1);
    assert_eq!(p.sla_tick(t0 + 65 * 60_000).await.unwrap().fired(), 1);
    let got = rows(&store, t.id, 3).await;
    let kinds: Vec<&str> = got.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(kinds, ["ticket.sla_warning", "ticket.sla_breach"]);
    for r in &got {
        assert_eq!(field(&r.body, &["data", "clock"]), "response");
        assert!(field(&r.body, &["data", "due_at"]).starts_with("2026-01-05T03:00:00"), "{}", r.body);
    }
}
