//! The ticket API (`/api/v1`) against the real daemon: a ticket opened by the API is
//! acknowledged by mail through Postfix and Dovecot and changed with the agents' rules; keys see
//! only their desks (404) and write only with the write scope (403); one key's flood is cut at
//! its budget (429) while another key goes on; and every response body the tests receive,
//! success or problem, is validated against `docs/api/openapi.json` with a JSON-Schema validator.

use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::harness::*;

/// The OpenAPI file, and a client that checks every response against it.
struct Api {
    base: String,
    http: reqwest::Client,
    doc: Value,
    /// Responses checked so far: (operation, status).
    checked: Mutex<Vec<(String, u16)>>,
}

impl Api {
    fn new(port: u16) -> Api {
        let text = std::fs::read_to_string(repo().join("docs/api/openapi.json")).expect("docs/api/openapi.json");
        Api {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            doc: serde_json::from_str(&text).expect("the OpenAPI file is JSON"),
            checked: Mutex::new(Vec::new()),
        }
    }

    /// Calls `method path` (`template` is its OpenAPI path) with `key` and `body`; validates the
    /// answer's content type and body against the operation's schema for its status.
    async fn call(
        &self,
        key: Option<&str>,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the daemon answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        self.validate(method, template, status, &headers, &v);
        (status, v, headers)
    }

    fn validate(&self, method: &str, template: &str, status: u16, headers: &reqwest::header::HeaderMap, body: &Value) {
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the OpenAPI file");
        let response = &op["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which the OpenAPI file does not list: {body}"
        );
        let content = response["content"].as_object().expect("a response with content");
        let given = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let (media, spec) = content.iter().next().expect("one media type");
        assert_eq!(given, media, "{method} {template} {status}: content type");
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": spec["schema"]["$ref"],
            "components": self.doc["components"],
        });
        let validator = jsonschema::validator_for(&schema).expect("the OpenAPI schemas compile");
        let errors: Vec<String> =
            validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the body breaks the OpenAPI schema: {errors:?}\n{body}"
        );
        self.checked.lock().unwrap().push((format!("{method} {template}"), status));
    }
}

/// A world with the HTTP server, agents, a second desk (`pusintek`) and the API budget given;
/// on PostgreSQL with `pg`.
async fn api_world(name: &str, port: u16, smtp: bool, pg: bool, limits: &str) -> World {
    let w = World::new(
        name,
        WorldOptions {
            imap: false,
            pg,
            outbound_smtp: smtp,
            agents: true,
            extra: format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[limits]\n{limits}"),
            ..Default::default()
        },
    )
    .await;
    let text = std::fs::read_to_string(&w.config_path).unwrap()
        + &format!(
            "[[desk]]\nid = \"pusintek\"\nname = \"Pusintek\"\ncode = \"PSTK\"\ncatalogue = \"{}\"\n\
             [[desk.inbox]]\nname = \"pusintek\"\naddress = \"{}-pusintek@desk.test\"\n",
            repo().join("seeds/pusintek.toml").display(),
            w.tag
        );
    std::fs::write(&w.config_path, text).unwrap();
    w
}

/// `loket api-key …` on the world's config; its standard output (the command must succeed).
fn cli(w: &World, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loket"))
        .arg("--config")
        .arg(&w.config_path)
        .arg("api-key")
        .args(args)
        .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "loket api-key {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn new_key(w: &World, desks: &[&str], scope: &str, name: &str) -> String {
    let mut args = vec!["create", "--scope", scope, "--name", name];
    for d in desks {
        args.extend(["--desk", d]);
    }
    let key = cli(w, &args).trim().to_string();
    assert!(key.starts_with("loket_"), "a key: {key}");
    key
}

async fn wait_healthy(port: u16) {
    wait_for("the HTTP server", || async { (http_get(port, "/healthz").await.0 != 0).then_some(()) }).await;
}

/// Acceptance 1 (API): a ticket opened through the API is routed, acknowledged by mail in the
/// requester's mailbox, shown with its public timeline, changed with the agents' rules (the
/// resolution reaches the requester by mail too), and every call is audited without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_opened_by_the_api_is_acknowledged_by_mail_and_changed_like_an_agent() {
    let _smtp = MAIL_SERVERS.read().await;
    let port = free_port();
    let w = api_world("api-ack", port, true, false, "").await;
    let key = new_key(&w, &["hero"], "write", "glpi");
    let daemon = w.serve();
    wait_healthy(port).await;
    let api = Api::new(port);
    let budi = w.addr("budi");

    let body = json!({
        "requester": budi,
        "requester_name": "Budi Santoso",
        "subject": "SISP tidak bisa diakses",
        "text": "Aplikasi SISP error sejak pagi, tidak bisa login.",
    });
    let (status, t, headers) = api.call(Some(&key), "POST", "/api/v1/tickets", "/api/v1/tickets", Some(body)).await;
    assert_eq!(status, 201, "{t}");
    let number = t["number"].as_str().unwrap().to_string();
    assert_eq!(headers["location"], format!("/api/v1/tickets/{number}").as_str());
    assert_eq!((t["desk"].as_str(), t["category"].as_str()), (Some("hero"), Some("aplikasi")), "routed by the rules");
    assert_eq!(t["status"], "new");

    // The acknowledgement, by mail, through Postfix into Budi's mailbox.
    let acks = wait_mailbox(&budi, "INBOX", 1).await;
    let ack = parsed(&acks[0]);
    assert!(ack.subject.contains(&number), "the acknowledgement names the ticket: {}", ack.subject);
    assert!(ack.text.contains(&number));
    assert_eq!(ack.from.as_ref().unwrap().address.as_str(), w.desk_addr);

    // An internal note stays internal; a change with the agents' rules resolves it.
    let path = format!("/api/v1/tickets/{number}");
    let msgs = format!("{path}/messages");
    let note = json!({ "text": "Cek log server SISP dulu.", "internal": true });
    let (status, r, _) = api.call(Some(&key), "POST", "/api/v1/tickets/{number}/messages", &msgs, Some(note)).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["ticket"]["status"], "open", "the desk acted: new → open");
    let resolve = json!({ "status": "resolved", "priority": "P3", "text": "Akun Anda sudah kami buka kembali." });
    let (status, r, _) = api.call(Some(&key), "PATCH", "/api/v1/tickets/{number}", &path, Some(resolve)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ticket"]["status"], "resolved");
    assert!(r["changes"].as_array().unwrap().iter().any(|c| c == "status: resolved"), "{r}");
    // Resolved → resolved again is no move; closed → anything is refused by the table.
    let (status, _, _) =
        api.call(Some(&key), "PATCH", "/api/v1/tickets/{number}", &path, Some(json!({ "status": "closed" }))).await;
    assert_eq!(status, 200);
    let (status, p, _) =
        api.call(Some(&key), "PATCH", "/api/v1/tickets/{number}", &path, Some(json!({ "status": "pending" }))).await;
    assert_eq!(status, 409, "a closed ticket takes no status command: {p}");
    assert!(p["detail"].as_str().unwrap().contains("closed"), "{p}");

    // The resolution notice and the closing reach Budi by mail, after the acknowledgement.
    let mails = wait_mailbox(&budi, "INBOX", 3).await;
    let texts: Vec<String> = mails.iter().map(|m| parsed(m).text).collect();
    assert!(texts.iter().any(|t| t.contains("Akun Anda sudah kami buka kembali.")), "resolution words: {texts:?}");
    assert!(!texts.iter().any(|t| t.contains("Cek log server SISP")), "the note never reaches the requester");

    // Read: the public timeline, without the note.
    let (status, v, _) = api.call(Some(&key), "GET", "/api/v1/tickets/{number}", &path, None).await;
    assert_eq!(status, 200);
    let events: Vec<&str> = v["timeline"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(&events[..2], ["created", "acknowledged"], "{events:?}");
    assert!(events.contains(&"resolved"), "{events:?}");
    assert!(!v.to_string().contains("Cek log server SISP"), "no internal note in the public view");

    // List with filters, and the audit of every call, naming the key's id but never the key.
    let (status, page, _) = api
        .call(Some(&key), "GET", "/api/v1/tickets", &format!("/api/v1/tickets?status=closed&requester={budi}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(page["tickets"][0]["number"], number.as_str());
    let (_, page, _) =
        api.call(Some(&key), "GET", "/api/v1/tickets", "/api/v1/tickets?category=aplikasi/sigi", None).await;
    assert_eq!(page["tickets"].as_array().unwrap().len(), 0);
    let store = w.store().await;
    let id: i64 = key.split('_').nth(1).unwrap().parse().unwrap();
    let audit = loket::store::api::api_audit(store.pool(), id).await.unwrap();
    let ops: Vec<(&str, i64)> = audit.iter().map(|a| (a.operation.as_str(), a.status)).collect();
    assert_eq!(
        ops,
        [
            ("create_ticket", 201),
            ("add_message", 201),
            ("change_ticket", 200),
            ("change_ticket", 200),
            ("change_ticket", 409),
            ("get_ticket", 200),
            ("list_tickets", 200),
            ("list_tickets", 200)
        ]
    );
    assert!(audit.iter().take(6).all(|a| a.ticket.as_deref() == Some(number.as_str())));
    let secret = key.rsplit('_').next().unwrap();
    let db = std::fs::read(w.dir.path().join("loket.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|x| x == secret.as_bytes()), "the key's secret is not in the store");
    drop(daemon);
}

/// Acceptance 2 (API), on PostgreSQL: a key sees only its desks — another desk's ticket is 404 like a number
/// that does not exist — and a read key cannot write (403); no key, a wrong or a revoked key
/// is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_see_only_their_desks_and_read_keys_cannot_write() {
    let port = free_port();
    // On PostgreSQL: the key, audit and list statements on the second backend.
    let w = api_world("api-scope", port, false, true, "").await;
    let hero_write = new_key(&w, &["hero"], "write", "hero-writer");
    let hero_read = new_key(&w, &["hero"], "read", "hero-reader");
    let other = new_key(&w, &["pusintek"], "write", "pusintek-writer");
    let both = new_key(&w, &["hero", "pusintek"], "read", "both-reader");
    let daemon = w.serve();
    wait_healthy(port).await;
    let api = Api::new(port);
    let body = json!({ "requester": w.addr("ani"), "subject": "Printer", "text": "Printer di lantai 3 rusak." });
    let (status, t, _) = api.call(Some(&hero_write), "POST", "/api/v1/tickets", "/api/v1/tickets", Some(body)).await;
    assert_eq!(status, 201, "{t}");
    let number = t["number"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tickets/{number}");
    let one = "/api/v1/tickets/{number}";

    // Another desk's key: 404 on read and write, the same answer as a number that does not exist.
    let (status, p, _) = api.call(Some(&other), "GET", one, &path, None).await;
    assert_eq!(status, 404);
    let (status, missing, _) = api.call(Some(&other), "GET", one, "/api/v1/tickets/A-HERO26999999", None).await;
    assert_eq!(status, 404);
    assert_eq!((&p["type"], &p["title"]), (&missing["type"], &missing["title"]));
    let (status, _, _) = api.call(Some(&other), "PATCH", one, &path, Some(json!({ "status": "closed" }))).await;
    assert_eq!(status, 404);
    let (status, page, _) = api.call(Some(&other), "GET", "/api/v1/tickets", "/api/v1/tickets", None).await;
    assert_eq!(status, 200);
    assert!(page["tickets"].as_array().unwrap().is_empty(), "no hero ticket in pusintek's list: {page}");
    let (status, _, _) = api.call(Some(&other), "GET", "/api/v1/tickets", "/api/v1/tickets?desk=hero", None).await;
    assert_eq!(status, 404);
    let body = json!({ "desk": "hero", "requester": w.addr("ani"), "subject": "x", "text": "y" });
    let (status, _, _) = api.call(Some(&other), "POST", "/api/v1/tickets", "/api/v1/tickets", Some(body)).await;
    assert_eq!(status, 404, "a key cannot open tickets at another desk");
    // A key of both desks sees it.
    let (status, v, _) = api.call(Some(&both), "GET", one, &path, None).await;
    assert_eq!((status, v["number"].as_str()), (200, Some(number.as_str())));

    // The read key reads, and cannot write.
    let (status, _, _) = api.call(Some(&hero_read), "GET", one, &path, None).await;
    assert_eq!(status, 200);
    let (status, p, _) = api.call(Some(&hero_read), "PATCH", one, &path, Some(json!({ "status": "closed" }))).await;
    assert_eq!(status, 403, "{p}");
    let msgs = format!("{path}/messages");
    let (status, _, _) = api
        .call(Some(&hero_read), "POST", "/api/v1/tickets/{number}/messages", &msgs, Some(json!({ "text": "hi" })))
        .await;
    assert_eq!(status, 403);
    let body = json!({ "requester": w.addr("ani"), "subject": "x", "text": "y" });
    let (status, _, _) = api.call(Some(&hero_read), "POST", "/api/v1/tickets", "/api/v1/tickets", Some(body)).await;
    assert_eq!(status, 403);
    let store = w.store().await;
    assert_eq!(ticket(&store, &number).await.status.as_str(), "new", "nothing changed");

    // Bad requests are problems too: unknown fields, a status outside the API's set.
    let (status, _, _) = api.call(Some(&hero_write), "PATCH", one, &path, Some(json!({ "colour": "red" }))).await;
    assert_eq!(status, 422);
    let (status, _, _) = api.call(Some(&hero_write), "PATCH", one, &path, Some(json!({ "status": "open" }))).await;
    assert_eq!(status, 422);
    let (status, p, _) =
        api.call(Some(&hero_write), "PATCH", one, &path, Some(json!({ "assignee": "nobody-at-all" }))).await;
    assert_eq!(status, 409, "the agents' rule: no such agent or group: {p}");
    let (status, _, _) =
        api.call(Some(&hero_write), "PATCH", one, &path, Some(json!({ "assignee": w.agent("agent2") }))).await;
    assert_eq!(status, 200);
    let huge = json!({ "text": "x".repeat(100 * 1024) });
    let (status, _, _) =
        api.call(Some(&hero_write), "POST", "/api/v1/tickets/{number}/messages", &msgs, Some(huge)).await;
    assert_eq!(status, 413, "bodies are bounded");

    // A method the path does not take is a problem too.
    let r = reqwest::Client::new().delete(format!("{}{path}", api.base)).bearer_auth(&hero_write).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!((p["type"].as_str(), p["status"].as_u64()), (Some("/api/v1/problems/method-not-allowed"), Some(405)));

    // No key, a wrong secret, a revoked key: 401.
    let (status, _, h) = api.call(None, "GET", one, &path, None).await;
    assert_eq!(status, 401);
    assert!(h.contains_key("www-authenticate"));
    let forged = format!("{}{}", &hero_read[..hero_read.len() - 1], if hero_read.ends_with('0') { '1' } else { '0' });
    let (status, _, _) = api.call(Some(&forged), "GET", one, &path, None).await;
    assert_eq!(status, 401);
    let id = hero_read.split('_').nth(1).unwrap();
    assert!(cli(&w, &["list"]).lines().any(|l| l.starts_with(&format!("{id}\thero-reader\thero\tread"))));
    cli(&w, &["revoke", id]);
    let (status, _, _) = api.call(Some(&hero_read), "GET", one, &path, None).await;
    assert_eq!(status, 401, "a revoked key is refused");
    drop(daemon);
}

/// Acceptance 3 (API): 1,000 requests from one key: the budget (`limits.api_burst` at once,
/// `limits.api_requests_per_minute` after) passes, the rest is 429 with `Retry-After`, every
/// call is audited; another key is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_is_rate_limited_and_another_is_not() {
    const BURST: u64 = 40;
    const PER_MINUTE: u64 = 6;
    let port = free_port();
    let w = api_world(
        "api-rate",
        port,
        false,
        false,
        &format!("api_burst = {BURST}\napi_requests_per_minute = {PER_MINUTE}\n"),
    )
    .await;
    let busy = new_key(&w, &["hero"], "read", "busy");
    let calm = new_key(&w, &["hero"], "read", "calm");
    let daemon = w.serve();
    wait_healthy(port).await;
    let api = Api::new(port);
    let start = std::time::Instant::now();
    let (mut allowed, mut limited) = (0u64, 0u64);
    for _ in 0..1_000 {
        let (status, _, headers) = api.call(Some(&busy), "GET", "/api/v1/tickets", "/api/v1/tickets", None).await;
        match status {
            200 => allowed += 1,
            429 => {
                limited += 1;
                let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
            }
            other => panic!("status {other}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // The budget: the burst, plus what the bucket gained while the requests ran.
    let gained = (elapsed * PER_MINUTE as f64 / 60.0).floor() as u64;
    assert!(allowed >= BURST && allowed <= BURST + gained + 1, "{allowed} allowed in {elapsed:.1} s");
    assert_eq!(allowed + limited, 1_000);
    // Another key has its own budget.
    let (status, _, _) = api.call(Some(&calm), "GET", "/api/v1/tickets", "/api/v1/tickets", None).await;
    assert_eq!(status, 200, "another key is not affected");
    let store = w.store().await;
    let id: i64 = busy.split('_').nth(1).unwrap().parse().unwrap();
    let audit = loket::store::api::api_audit(store.pool(), id).await.unwrap();
    assert_eq!(audit.len(), 1_000, "every call audited");
    assert_eq!(audit.iter().filter(|a| a.operation == "rate_limited" && a.status == 429).count() as u64, limited);
    drop(daemon);
}

/// Acceptance 4 (API): the validator the tests use rejects what breaks the OpenAPI file (so the
/// checks above can fail), and the file names every operation the server routes.
#[test]
fn the_openapi_file_is_strict_and_names_every_operation() {
    let api = Api::new(1);
    for (path, methods) in [
        ("/api/v1/tickets", &["get", "post"][..]),
        ("/api/v1/tickets/{number}", &["get", "patch"]),
        ("/api/v1/tickets/{number}/messages", &["post"]),
    ] {
        for m in methods {
            assert!(api.doc["paths"][path][m]["responses"].is_object(), "{m} {path}");
        }
    }
    let ticket = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/Ticket",
        "components": api.doc["components"],
    });
    let v = jsonschema::validator_for(&ticket).unwrap();
    assert!(!v.is_valid(&json!({ "number": 1 })));
    let problem = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/Problem",
        "components": api.doc["components"],
    });
    let v = jsonschema::validator_for(&problem).unwrap();
    assert!(v.is_valid(
        &json!({ "type": "/api/v1/problems/not-found", "title": "Not found", "status": 404, "detail": "x" })
    ));
    assert!(!v.is_valid(&json!({ "type": "/api/v1/problems/not-found", "title": "Not found", "status": 404 })));
    assert!(!v.is_valid(&json!({ "type": "about:blank", "title": "t", "status": 404, "detail": "x", "extra": 1 })));
}
