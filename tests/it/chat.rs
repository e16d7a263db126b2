//! Chat channels (issue 6) against local fakes of the Telegram Bot API and the WhatsApp Graph
//! API over loopback HTTP, with the real daemon: a guided `/baru`, free text routed by the rules,
//! an agent's email reply (real Postfix and Dovecot) delivered to the chat, resolution confirmed
//! with the button and rated, replays that change nothing, a forged webhook refused, and
//! `/status` of someone else's ticket revealing nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::harness::*;

/// A fake platform: queued Telegram updates, everything the daemon sent, files to download.
#[derive(Clone, Default)]
struct Fake {
    updates: Arc<Mutex<Vec<Value>>>,
    notify: Arc<Notify>,
    sent: Arc<Mutex<Vec<Value>>>,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    port: Arc<Mutex<u16>>,
}

impl Fake {
    async fn start(app: Router) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    fn push(&self, update: Value) {
        self.updates.lock().unwrap().push(update);
        self.notify.notify_one();
    }

    fn sent(&self) -> Vec<Value> {
        self.sent.lock().unwrap().clone()
    }

    /// Waits for the first message to `chat` after the first `after` ones the fake saw.
    async fn next_to(&self, after: usize, chat: &str, key: &str) -> (usize, Value) {
        wait_for(&format!("a message to {chat}"), || async {
            let sent = self.sent();
            sent.iter()
                .enumerate()
                .skip(after)
                .find(|(_, v)| v[key].to_string().trim_matches('"') == chat)
                .map(|(i, v)| (i + 1, v.clone()))
        })
        .await
    }
}

fn bot_user() -> Value {
    json!({"id": 4242, "is_bot": true, "first_name": "DeskBot", "username": "desk_bot"})
}

async fn tg_api(State(f): State<Fake>, Path((_token, method)): Path<(String, String)>, body: Bytes) -> Json<Value> {
    let p: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let result = match method.to_ascii_lowercase().as_str() {
        "getme" => {
            let mut me = bot_user();
            for (k, v) in [
                ("can_join_groups", json!(true)),
                ("can_read_all_group_messages", json!(false)),
                ("supports_inline_queries", json!(false)),
                ("has_main_web_app", json!(false)),
            ] {
                me[k] = v;
            }
            me
        }
        "deletewebhook" | "setwebhook" | "answercallbackquery" => json!(true),
        "getwebhookinfo" => json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0}),
        "getupdates" => {
            let offset = p["offset"].as_i64().unwrap_or(0);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(p["timeout"].as_u64().unwrap_or(0).min(2));
            loop {
                {
                    let mut q = f.updates.lock().unwrap();
                    // An acknowledged update is gone, unless the test replays it (as Telegram does
                    // when the acknowledgement was lost).
                    q.retain(|u| u["_replay"] == json!(true) || u["update_id"].as_i64().unwrap() >= offset);
                    if !q.is_empty() {
                        let out: Vec<Value> = q
                            .iter()
                            .map(|u| {
                                let mut u = u.clone();
                                u.as_object_mut().unwrap().remove("_replay");
                                u
                            })
                            .collect();
                        q.retain(|u| u["_replay"] != json!(true));
                        break json!(out);
                    }
                }
                if tokio::time::timeout_at(deadline, f.notify.notified()).await.is_err() {
                    break json!([]);
                }
            }
        }
        "sendmessage" => {
            f.sent.lock().unwrap().push(p.clone());
            json!({"message_id": 1001, "date": 1_790_000_100, "chat": {"id": p["chat_id"], "type": "private", "first_name": "U"},
                   "from": bot_user(), "text": p["text"]})
        }
        // Files to a chat come as multipart uploads: the fake keeps the method, the chat and the
        // whole body (the file's bytes are in it).
        "sendphoto" | "senddocument" => {
            let text = String::from_utf8_lossy(&body).to_string();
            let chat = regex::Regex::new(r#"name="chat_id"\r\n(?:[^\r]*\r\n)*?\r\n([^\r]+)\r\n"#)
                .unwrap()
                .captures(&text)
                .map(|c| c[1].to_string())
                .unwrap_or_default();
            let kept = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &body);
            f.sent.lock().unwrap().push(json!({"method": method, "chat_id": chat, "body": kept}));
            json!({"message_id": 1002, "date": 1_790_000_100, "chat": {"id": chat.parse::<i64>().unwrap_or(0), "type": "private", "first_name": "U"},
                   "from": bot_user(), "document": {"file_id": "D1", "file_unique_id": "UD1"}})
        }
        "getfile" => {
            let id = p["file_id"].as_str().unwrap_or("").to_string();
            let size = f.files.lock().unwrap().get(&id).map(|b| b.len()).unwrap_or(0);
            json!({"file_id": id, "file_unique_id": format!("u{id}"), "file_size": size, "file_path": format!("docs/{id}")})
        }
        other => return Json(json!({"ok": false, "error_code": 404, "description": format!("Not Found: {other}")})),
    };
    Json(json!({"ok": true, "result": result}))
}

async fn tg_file(State(f): State<Fake>, Path((_token, path)): Path<(String, String)>) -> Vec<u8> {
    let id = path.rsplit('/').next().unwrap_or("").to_string();
    f.files.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

async fn graph_send(State(f): State<Fake>, Path(_phone): Path<String>, Json(body): Json<Value>) -> Json<Value> {
    let n = {
        let mut s = f.sent.lock().unwrap();
        s.push(body.clone());
        s.len()
    };
    Json(json!({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": format!("wamid.out{n}")}]}))
}

async fn graph_media(State(f): State<Fake>, Path(id): Path<String>) -> Json<Value> {
    let size = f.files.lock().unwrap().get(&id).map(|b| b.len()).unwrap_or(0);
    let port = *f.port.lock().unwrap();
    Json(
        json!({"url": format!("http://127.0.0.1:{port}/download/{id}"), "mime_type": "image/png", "file_size": size, "id": id}),
    )
}

async fn graph_download(State(f): State<Fake>, Path(id): Path<String>) -> Vec<u8> {
    f.files.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

fn tg_user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "language_code": "id"})
}

fn tg_text(update: i64, user: i64, text: &str) -> Value {
    json!({"update_id": update, "message": {"message_id": update, "date": 1_790_000_000,
        "chat": {"id": user, "type": "private", "first_name": format!("User{user}")}, "from": tg_user(user), "text": text}})
}

fn tg_button(update: i64, user: i64, data: &str) -> Value {
    json!({"update_id": update, "callback_query": {"id": format!("cb{update}"), "from": tg_user(user), "chat_instance": "ci",
        "data": data, "message": {"message_id": 1001, "date": 1_790_000_100,
        "chat": {"id": user, "type": "private", "first_name": format!("User{user}")}, "from": bot_user(), "text": "x"}}})
}

/// The data of the button whose label starts with `label` in a sent Telegram message.
fn button(msg: &Value, label: &str) -> String {
    msg["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .find(|b| b["text"].as_str().unwrap_or("").starts_with(label))
        .unwrap_or_else(|| panic!("no button `{label}` in {msg}"))["callback_data"]
        .as_str()
        .unwrap()
        .to_string()
}

fn number_in(text: &str) -> String {
    let re = regex::Regex::new(r"#([A-Z]-[A-Z0-9]+)").unwrap();
    re.captures(text).unwrap_or_else(|| panic!("no ticket number in {text:?}"))[1].to_string()
}

async fn count(store: &loket::store::Store, sql: &'static str, arg: &str) -> i64 {
    sqlx::query_scalar(sql).bind(arg).fetch_one(store.pool()).await.unwrap()
}

async fn wait_http(port: u16) {
    wait_for("the daemon's HTTP server", || async { (http_get(port, "/healthz").await.0 != 0).then_some(()) }).await;
}

/// The fake Telegram Bot API (methods and file downloads) and its port.
async fn fake_telegram() -> (Fake, u16) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/{token}/{method}", post(tg_api))
        .route("/file/{token}/{*path}", get(tg_file))
        .with_state(fake.clone());
    let tg_port = Fake::start(app).await;
    (fake, tg_port)
}

/// `[desk.telegram]` of the test desk, long-polling the fake on `tg_port`.
fn telegram_desk(tg_port: u16) -> String {
    format!(
        "[desk.telegram]\ntoken_env = \"LOKET_TEST_TG_TOKEN\"\napi_url = \"http://127.0.0.1:{tg_port}\"\npoll_timeout_secs = 1\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_guided_ticket_free_text_agent_reply_confirmation_rating_and_replays() {
    let _servers = MAIL_SERVERS.read().await;
    let (fake, tg_port) = fake_telegram().await;
    let http_port = free_port();
    let w = World::new(
        "tg",
        WorldOptions {
            agents: true,
            extra: format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
            desk_extra: telegram_desk(tg_port),
            ..Default::default()
        },
    )
    .await;
    let mut daemon = w.serve();
    wait_http(http_port).await;
    let store = w.store().await;

    // 1. The guided /baru, as HERO's form: category → subcategory → type → impact → subject → description.
    fake.push(tg_text(1, 555, "/baru"));
    let (seen, m) = fake.next_to(0, "555", "chat_id").await;
    assert!(m["text"].as_str().unwrap().contains("kategori"), "{m}");
    fake.push(tg_button(2, 555, &button(&m, "Aplikasi")));
    let (seen, m) = fake.next_to(seen, "555", "chat_id").await;
    let labels = m["reply_markup"].to_string();
    assert!(!labels.contains("SIASN"), "an internal-only service is not offered to an outsider: {labels}");
    fake.push(tg_button(3, 555, &button(&m, "Portal Satu Data")));
    let (seen, m) = fake.next_to(seen, "555", "chat_id").await;
    fake.push(tg_button(4, 555, &button(&m, "Kendala")));
    let (seen, m) = fake.next_to(seen, "555", "chat_id").await;
    fake.push(tg_button(5, 555, &button(&m, "Tinggi")));
    let (seen, _) = fake.next_to(seen, "555", "chat_id").await;
    fake.push(tg_text(6, 555, "Portal tidak bisa dibuka"));
    let (seen, _) = fake.next_to(seen, "555", "chat_id").await;
    let description = tg_text(7, 555, "Sejak pagi halaman utama portal menampilkan error 502.");
    fake.push(description.clone());
    let (seen, ack) = fake.next_to(seen, "555", "chat_id").await;
    let n1 = number_in(ack["text"].as_str().unwrap());
    let t1 = ticket(&store, &n1).await;
    assert_eq!(
        (
            t1.category.as_str(),
            t1.subcategory.as_str(),
            t1.ticket_type.map(|v| v.as_str()),
            t1.impact.map(|v| v.as_str())
        ),
        ("aplikasi", "portal_satu_data", Some("incident"), Some("high"))
    );
    assert_eq!((t1.channel.as_str(), t1.subject.as_str()), ("telegram", "Portal tidak bisa dibuka"));
    assert_eq!(t1.requester_address, "telegram-555@chat.invalid");

    // 2. The same update delivered again (a lost acknowledgement) changes nothing.
    let mut replay = description.clone();
    replay["_replay"] = json!(true);
    fake.push(replay);
    fake.push(tg_text(8, 555, "/tiket"));
    let (seen, list) = fake.next_to(seen, "555", "chat_id").await;
    assert!(list["text"].as_str().unwrap().contains(&n1), "{list}");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM tickets WHERE requester_address = $1", "telegram-555@chat.invalid").await,
        1
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM messages WHERE idempotency_key = $1", "tg:7").await, 1);
    assert_eq!(
        fake.sent().iter().filter(|v| v["text"].as_str().unwrap_or("").contains(&format!("#{n1}\n"))).count(),
        1,
        "one acknowledgement"
    );

    // 3. Free text from someone else is routed by the rules; a photo comes with it.
    fake.files.lock().unwrap().insert("PHOTO1".into(), b"\xff\xd8\xff\xe0 fake jpeg bytes".to_vec());
    let text = "Halaman utama website kemendag tidak bisa dibuka, muncul error 500";
    fake.push(json!({"update_id": 9, "message": {"message_id": 9, "date": 1_790_000_000,
        "chat": {"id": 777, "type": "private", "first_name": "User777"}, "from": tg_user(777), "caption": text,
        "photo": [{"file_id": "PHOTO1", "file_unique_id": "P1", "width": 90, "height": 90, "file_size": 20}]}}));
    let (_, ack2) = fake.next_to(0, "777", "chat_id").await;
    let n2 = number_in(ack2["text"].as_str().unwrap());
    let t2 = ticket(&store, &n2).await;
    let cfg = w.config();
    let desk = cfg.desk("hero").unwrap();
    let expected = cfg.router.route(
        &desk.catalogue,
        &loket::routing::RouteInput {
            subject: text,
            body: text,
            sender_domain: Some("chat.invalid"),
            inbox_address: &w.desk_addr,
        },
    );
    assert_eq!(
        (t2.category.as_str(), t2.subcategory.as_str()),
        (expected.category.as_str(), expected.subcategory.as_str())
    );
    assert_eq!(t2.subcategory, "website_kemendag", "the rules know the ministry's website");
    let photo: i64 = sqlx::query_scalar(
        "SELECT a.id FROM attachments a JOIN messages m ON m.id = a.message_row WHERE m.idempotency_key = 'tg:9'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let stored = chat_file(&store, photo).await;
    assert_eq!(stored, b"\xff\xd8\xff\xe0 fake jpeg bytes".to_vec(), "the photo is kept on the ticket");
    // … and reaches the agents with the notification, in agent2's mailbox (issue 16).
    let notified = wait_for("the photo with agent2's notification", || async {
        mailbox(&w.agent("agent2"), "INBOX").await.into_iter().find(|r| parsed(r).subject.contains(&n2))
    })
    .await;
    let photos: Vec<Vec<u8>> = mail_parser::MessageParser::default()
        .parse(&notified)
        .unwrap()
        .attachments()
        .map(|a| a.contents().to_vec())
        .collect();
    assert_eq!(photos, vec![b"\xff\xd8\xff\xe0 fake jpeg bytes".to_vec()], "the chat photo reaches the agent");

    // 4. /status of another's ticket says exactly what it says of a number that does not exist.
    fake.push(tg_text(10, 555, &format!("/status {n2}")));
    let (seen, other) = fake.next_to(seen, "555", "chat_id").await;
    fake.push(tg_text(11, 555, "/status Z-HERO26999999"));
    let (seen, none) = fake.next_to(seen, "555", "chat_id").await;
    let (other, none) = (other["text"].as_str().unwrap(), none["text"].as_str().unwrap());
    assert_eq!(other.replace(&n2, "N"), none.replace("Z-HERO26999999", "N"));
    assert!(!other.contains("website") && !other.contains("Website"), "{other}");
    fake.push(tg_text(12, 555, &format!("/status {n1}")));
    let (seen, own) = fake.next_to(seen, "555", "chat_id").await;
    assert!(own["text"].as_str().unwrap().contains("Portal tidak bisa dibuka"), "own ticket: {own}");

    // 5. The agent answers by email (real SMTP and IMAP); the words reach the chat.
    let agent = w.agent("agent2");
    let notif = wait_for("the agent's notification", || async {
        mailbox(&agent, "INBOX").await.into_iter().map(|r| parsed(&r)).find(|m| m.subject.contains(&n1))
    })
    .await;
    let parent = notif.message_id.clone().unwrap();
    let reply = |id: &str, body: &str| {
        mail(
            &agent,
            &w.desk_addr,
            &format!("Re: [#{n1}] Tiket baru"),
            &format!("{}-{id}@desk.test", w.tag),
            &format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"),
            body,
        )
    };
    // The reply carries a PDF: the words, then the file as a document (issue 16).
    let pdf = b"%PDF-1.4 panduan pemulihan portal".to_vec();
    let mut with_pdf = reply("r1", "Portal sudah kami pulihkan, silakan dicoba lagi.");
    let text_part = String::from_utf8(with_pdf.clone()).unwrap();
    let (head, body) = text_part.split_once("\r\n\r\n").unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pdf);
    with_pdf = format!(
        "{}\r\nContent-Type: multipart/mixed; boundary=\"pp\"\r\n\r\n--pp\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
         --pp\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"panduan.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--pp--\r\n",
        head.replace("Content-Type: text/plain; charset=utf-8\r\n", "").trim_end()
    )
    .into_bytes();
    smtp_send(&agent, &[&w.desk_addr], &with_pdf).await;
    let (seen, relayed) = fake.next_to(seen, "555", "chat_id").await;
    assert!(relayed["text"].as_str().unwrap().contains("Portal sudah kami pulihkan"), "{relayed}");
    assert!(!relayed.to_string().contains(&agent), "the agent's address is never shown");
    let (seen, document) = fake.next_to(seen, "555", "chat_id").await;
    assert_eq!(document["method"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("senddocument"), "{document}");
    let sent =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, document["body"].as_str().unwrap()).unwrap();
    assert!(sent.windows(pdf.len()).any(|w| w == pdf.as_slice()), "the PDF's bytes reach the chat");
    assert!(String::from_utf8_lossy(&sent).contains("panduan.pdf"), "under its name");

    // 6. Resolved by email → the requester confirms with the button → rates with a button.
    smtp_send(&agent, &[&w.desk_addr], &reply("r2", "#resolve Server portal sudah normal.")).await;
    let (seen, resolution) = fake.next_to(seen, "555", "chat_id").await;
    assert!(resolution["text"].as_str().unwrap().contains("Server portal sudah normal"), "{resolution}");
    let ok = button(&resolution, "Ya, sudah jelas");
    assert_eq!(ok, format!("ok:{n1}"));
    assert_eq!(button(&resolution, "Belum"), format!("no:{n1}"));
    fake.push(tg_button(13, 555, &ok));
    let (seen, rate) = fake.next_to(seen, "555", "chat_id").await;
    assert_eq!(ticket(&store, &n1).await.status.as_str(), "closed");
    fake.push(tg_button(14, 555, &button(&rate, "⭐⭐⭐⭐⭐")));
    let (_, thanks) = fake.next_to(seen, "555", "chat_id").await;
    assert!(thanks["text"].as_str().unwrap().contains(&n1), "{thanks}");
    let t1 = ticket(&store, &n1).await;
    assert_eq!(t1.rating, Some(5));
    let kinds: Vec<String> =
        loket::store::ticket_events(store.pool(), t1.id).await.unwrap().into_iter().map(|e| e.kind).collect();
    for k in ["created", "confirmed", "closed", "rated"] {
        assert!(kinds.iter().any(|x| x == k), "event {k} in {kinds:?}");
    }
    daemon.terminate();
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn wa_body(wamid: &str, from: &str, message: Value) -> Vec<u8> {
    let mut msg = message;
    msg["id"] = json!(wamid);
    msg["from"] = json!(from);
    msg["timestamp"] = json!("1790000000");
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "6221000", "phone_number_id": "1234567"},
        "contacts": [{"profile": {"name": "Budi"}, "wa_id": from}], "messages": [msg]}}]}]})
    .to_string()
    .into_bytes()
}

async fn post_webhook(port: u16, path: &str, body: Vec<u8>, signature: Option<String>) -> u16 {
    let mut req = reqwest::Client::new().post(format!("http://127.0.0.1:{port}{path}")).body(body);
    if let Some(s) = signature {
        req = req.header("X-Hub-Signature-256", s);
    }
    req.send().await.unwrap().status().as_u16()
}

/// `[desk.whatsapp]` of the test desk, its Graph API the fake on `graph_port`.
fn whatsapp_desk(graph_port: u16) -> String {
    format!(
        "[desk.whatsapp]\nphone_number_id = \"1234567\"\naccess_token_env = \"LOKET_TEST_WA_TOKEN\"\n\
         app_secret_env = \"LOKET_TEST_WA_SECRET\"\nverify_token_env = \"LOKET_TEST_WA_VERIFY\"\n\
         graph_url = \"http://127.0.0.1:{graph_port}/v21.0\"\n"
    )
}

/// The fake Graph API for WhatsApp messages and media (send, media URL, download) and its port.
async fn fake_whatsapp_graph() -> (Fake, u16) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v21.0/{phone}/messages", post(graph_send))
        .route("/v21.0/{id}", get(graph_media))
        .route("/download/{id}", get(graph_download))
        .with_state(fake.clone());
    let graph_port = Fake::start(app).await;
    *fake.port.lock().unwrap() = graph_port;
    (fake, graph_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_webhook_handshake_signature_replay_media_and_privacy() {
    let (fake, graph_port) = fake_whatsapp_graph().await;
    let http_port = free_port();
    let w = World::new(
        "wa",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            extra: format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
            desk_extra: whatsapp_desk(graph_port),
            ..Default::default()
        },
    )
    .await;
    let mut daemon = w.serve();
    wait_http(http_port).await;
    let store = w.store().await;
    let secret = test_secret("LOKET_TEST_WA_SECRET").unwrap();

    // The verification handshake.
    let (status, body) = http_get(
        http_port,
        "/whatsapp/hero?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wa-verify-token",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));
    let (status, _) =
        http_get(http_port, "/whatsapp/hero?hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess").await;
    assert_eq!(status, 403);

    // A signed message opens a ticket and is answered through the Graph API.
    let text = "Jaringan internet di kantor mati sejak pagi, semua komputer tidak bisa terhubung";
    let first = wa_body("wamid.ONE", "62811", json!({"type": "text", "text": {"body": text}}));
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", first.clone(), Some(sign(&first, &secret))).await, 200);
    let (seen, ack) = fake.next_to(0, "62811", "to").await;
    let n = number_in(ack["text"]["body"].as_str().unwrap_or(&ack.to_string()));
    let t = ticket(&store, &n).await;
    assert_eq!((t.channel.as_str(), t.requester_name.as_deref()), ("whatsapp", Some("Budi")));

    // Meta delivers it again: nothing changes.
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", first.clone(), Some(sign(&first, &secret))).await, 200);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM messages WHERE idempotency_key = $1", "wa:wamid.ONE").await, 1);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM tickets WHERE requester_address = $1", "whatsapp-62811@chat.invalid").await,
        1
    );

    // A forged webhook is refused and nothing of it is stored.
    let forged = wa_body("wamid.FORGED", "62899", json!({"type": "text", "text": {"body": "/tiket"}}));
    assert_eq!(
        post_webhook(http_port, "/whatsapp/hero", forged.clone(), Some(sign(&forged, "not-the-app-secret"))).await,
        401
    );
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", forged.clone(), None).await, 401);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM messages WHERE idempotency_key = $1", "wa:wamid.FORGED").await, 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM chat_users WHERE user_id = $1", "62899").await, 0);

    // A screenshot continues the active ticket; its bytes are kept.
    let png = b"\x89PNG\r\n\x1a\n fake png".to_vec();
    fake.files.lock().unwrap().insert("MEDIA1".into(), png.clone());
    let img = wa_body(
        "wamid.IMG",
        "62811",
        json!({"type": "image", "image": {"id": "MEDIA1", "mime_type": "image/png", "caption": "Ini tangkapan layarnya"}}),
    );
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", img.clone(), Some(sign(&img, &secret))).await, 200);
    let row: (Option<i64>, Vec<u8>) = {
        let r = sqlx::query(
            "SELECT m.ticket_id, a.id FROM attachments a JOIN messages m ON m.id = a.message_row WHERE m.idempotency_key = 'wa:wamid.IMG'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        use sqlx::Row;
        (r.get(0), chat_file(&store, r.get(1)).await)
    };
    assert_eq!(row, (Some(t.id), png));

    // Another WhatsApp user asking for this ticket learns nothing of it.
    let nosy = wa_body("wamid.NOSY", "62822", json!({"type": "text", "text": {"body": format!("/status {n}")}}));
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", nosy.clone(), Some(sign(&nosy, &secret))).await, 200);
    let (_, answer) = fake.next_to(0, "62822", "to").await;
    let answer = answer["text"]["body"].as_str().unwrap().to_string();
    assert!(answer.contains("tidak ditemukan") && !answer.contains("Jaringan"), "{answer}");

    // A typed command from the owner, answered with the interactive list of their tickets.
    let mine = wa_body("wamid.MINE", "62811", json!({"type": "text", "text": {"body": "/tiket"}}));
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", mine.clone(), Some(sign(&mine, &secret))).await, 200);
    let (_, list) = fake.next_to(seen, "62811", "to").await;
    assert!(list.to_string().contains(&n), "{list}");
    daemon.terminate();
}

fn wa_message(key: &str, from: &str, text: &str) -> loket::chat::ChatMessage {
    loket::chat::ChatMessage {
        channel: loket::domain::Channel::Whatsapp,
        key: key.into(),
        user_id: from.into(),
        chat_id: from.into(),
        name: Some("Budi".into()),
        language: None,
        input: loket::chat::Input::Text(text.into()),
        files: Vec::new(),
        raw: text.as_bytes().to_vec(),
    }
}

/// In process, with time injected: an agent's email reply a day after the requester's last
/// WhatsApp message goes as the approved template; a linked address gets the reply by email too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_window_template_and_email_copy() {
    const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
    let w = World::new(
        "wawin",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            agents: true,
            extra: format!("[http]\nlisten = \"127.0.0.1:{}\"\n", free_port()),
            desk_extra: "[desk.whatsapp]\nphone_number_id = \"1234567\"\naccess_token_env = \"LOKET_TEST_WA_TOKEN\"\n\
                         app_secret_env = \"LOKET_TEST_WA_SECRET\"\nverify_token_env = \"LOKET_TEST_WA_VERIFY\"\n\
                         template = \"pembaruan_tiket\"\n\
                         [desk.whatsapp.templates.resolution]\nname = \"tiket_selesai\"\nparams = [\"name\", \"number\", \"subject\"]\n"
                .into(),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let o = p
        .chat("hero", &wa_message("wa:1", "62811", "Website kemendag tidak bisa dibuka sejak pagi"), T0)
        .await
        .unwrap();
    let n = o.ticket.unwrap();
    let budi = w.addr("budi");
    // An address the mail library cannot write is refused like any invalid one: no code mailed,
    // nothing quarantined.
    let refused = p.chat("hero", &wa_message("wa:1b", "62811", "/email taro..yamada@example.test"), T0 + 500).await;
    assert_ne!(refused.unwrap().action, loket::pipeline::Action::Quarantined);
    let codes = "SELECT COUNT(*) FROM messages WHERE kind = 'email_code'";
    assert_eq!(sqlx::query_scalar::<_, i64>(codes).fetch_one(store.pool()).await.unwrap(), 0);
    p.chat("hero", &wa_message("wa:2", "62811", &format!("/email {budi}")), T0 + 1000).await.unwrap();
    // Issue #17: the address is linked only when the code mailed to it comes back.
    let linked = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT email FROM chat_users WHERE user_id = '62811'")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    assert_eq!(linked().await, None, "not linked before the code comes back");
    let mailed: String = sqlx::query_scalar("SELECT body_text FROM messages WHERE kind = 'email_code'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let code = mailed
        .lines()
        .find_map(|l| l.trim().strip_prefix("/email "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("a code in {mailed}"));
    assert_eq!(code.len(), 6, "{mailed}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    p.chat("hero", &wa_message("wa:2b", "62811", &format!("/email {wrong}")), T0 + 2000).await.unwrap();
    assert_eq!(linked().await, None, "a wrong code links nothing");
    p.chat("hero", &wa_message("wa:2c", "62811", &format!("/email {code}")), T0 + 3000).await.unwrap();
    assert_eq!(linked().await.as_deref(), Some(budi.as_str()), "the right code links the address");

    // The agent answers 25 hours later by email, through the notification's signed thread.
    let notif = outbound(&store, &n)
        .await
        .into_iter()
        .find(|(k, _, _, _)| k == "agent_notification")
        .expect("agents notified")
        .clone();
    let agent = notif.1.clone();
    let reply = mail(
        &agent,
        &w.desk_addr,
        &format!("Re: [#{n}] Tiket baru"),
        &format!("{}-a1@desk.test", w.tag),
        &format!("In-Reply-To: <{}>\r\nReferences: <{}>\r\n", notif.2, notif.2),
        "Website sudah normal kembali.",
    );
    let o = p.process("hero", &reply, T0 + 25 * 3_600_000).await.unwrap();
    assert_eq!(o.action, loket::pipeline::Action::Appended, "{o:?}");
    let payload: String = sqlx::query_scalar(
        "SELECT o.payload FROM outbox o JOIN messages m ON m.id = o.message_row WHERE m.kind = 'agent_reply' AND o.channel = 'whatsapp'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["template"]["name"], "pembaruan_tiket", "outside the window: {payload}");
    assert_eq!(payload["template"]["params"][0], json!(n));
    let copy = outbound(&store, &n).await.into_iter().find(|(k, to, _, _)| k == "agent_reply" && *to == budi);
    assert!(copy.expect("an email copy to the linked address").3.contains("Website sudah normal"));
    assert_eq!(payload["emailed"], json!(true), "the chat row knows its words went by email too: {payload}");

    // Issue #19: that chat message fails later; the linked address already has its words, so
    // the failure is recorded and no second mail goes.
    sqlx::query(
        "UPDATE outbox SET platform_id = 'wamid.COPY1' WHERE message_row IN \
         (SELECT id FROM messages WHERE kind = 'agent_reply' AND channel = 'whatsapp')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let failed = loket::channel::whatsapp::StatusCallback {
        phone_number_id: String::new(),
        id: "wamid.COPY1".into(),
        status: loket::chat::delivery::Delivery::Failed,
        errors: vec![(131026, "Message undeliverable".into())],
    };
    p.chat_status("hero", &failed, T0 + 25 * 3_600_000 + 60_000).await.unwrap();
    let events = loket::store::ticket_events(store.pool(), ticket(&store, &n).await.id).await.unwrap();
    let failures: Vec<_> = events.iter().filter(|e| e.kind == "chat_delivery_failed").collect();
    assert_eq!(failures.len(), 1, "{events:?}");
    assert_eq!(failures[0].detail["fallback"], "email_copy");
    let fallbacks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'undelivered_by_chat'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fallbacks, 0, "no second mail with the same words");

    // A message about no ticket (the notice that the address is linked) fails too: its words go
    // to the linked address in a mail of their own.
    sqlx::query(
        "UPDATE outbox SET platform_id = 'wamid.LINK1' WHERE message_row IN \
         (SELECT id FROM messages WHERE kind = 'chat_notice' AND channel = 'whatsapp' AND ticket_id IS NULL \
          AND body_text LIKE '%' || $1 || '%')",
    )
    .bind(&budi)
    .execute(store.pool())
    .await
    .unwrap();
    let failed = loket::channel::whatsapp::StatusCallback { id: "wamid.LINK1".into(), ..failed };
    p.chat_status("hero", &failed, T0 + 25 * 3_600_000 + 120_000).await.unwrap();
    let notice: String = sqlx::query_scalar(
        "SELECT m.body_text FROM messages m JOIN outbox o ON o.message_row = m.id WHERE o.platform_id = 'wamid.LINK1'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let (ticket_id, to, subject, body): (Option<i64>, String, String, String) = sqlx::query_as(
        "SELECT ticket_id, peer_address, subject, body_text FROM messages WHERE kind = 'undelivered_by_chat'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((ticket_id, to.as_str()), (None, budi.as_str()));
    assert!(subject.starts_with("Pesan dari "), "{subject}");
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words(&body).contains(&words(&notice)), "the notice's words `{notice}` in: {body}");
    assert!(!body.contains("tiket #"), "no ticket to name: {body}");

    // Issue #19: the resolution notice outside the window goes as its own approved template,
    // with the parameters the desk configured.
    let resolve = mail(
        &agent,
        &w.desk_addr,
        &format!("Re: [#{n}] Tiket baru"),
        &format!("{}-a2@desk.test", w.tag),
        &format!("In-Reply-To: <{}>\r\nReferences: <{}>\r\n", notif.2, notif.2),
        "#resolve Website sudah dapat diakses.",
    );
    p.process("hero", &resolve, T0 + 26 * 3_600_000).await.unwrap();
    let payload: String = sqlx::query_scalar(
        "SELECT o.payload FROM outbox o JOIN messages m ON m.id = o.message_row WHERE m.kind = 'resolution' AND o.channel = 'whatsapp'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["template"]["name"], "tiket_selesai", "{payload}");
    assert_eq!(payload["template"]["language"], "id");
    assert_eq!(
        payload["template"]["params"],
        json!(["Budi", n.to_string(), "Website kemendag tidak bisa dibuka sejak pagi"]),
        "{payload}"
    );
}

async fn post_telegram(port: u16, body: &Value, secret: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/telegram/hero"))
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Webhook mode: only Telegram (which knows the secret token) gets in; a redelivery is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_webhook_mode_checks_the_secret_and_ignores_redelivery() {
    let fake = Fake::default();
    let app = Router::new().route("/{token}/{method}", post(tg_api)).with_state(fake.clone());
    let tg_port = Fake::start(app).await;
    let http_port = free_port();
    let w = World::new(
        "tgwh",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            extra: format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
            desk_extra: format!(
                "[desk.telegram]\ntoken_env = \"LOKET_TEST_TG_TOKEN\"\napi_url = \"http://127.0.0.1:{tg_port}\"\n\
                 mode = \"webhook\"\nwebhook_secret_env = \"LOKET_TEST_TG_SECRET\"\n"
            ),
            ..Default::default()
        },
    )
    .await;
    let mut daemon = w.serve();
    wait_http(http_port).await;
    let store = w.store().await;
    let update = tg_text(500, 901, "Website kemendag tidak bisa dibuka");
    assert_eq!(post_telegram(http_port, &update, "guessed").await, 401);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM messages WHERE idempotency_key = $1", "tg:500").await, 0);
    let secret = test_secret("LOKET_TEST_TG_SECRET").unwrap();
    assert_eq!(post_telegram(http_port, &update, &secret).await, 200);
    let (_, ack) = fake.next_to(0, "901", "chat_id").await;
    let n = number_in(ack["text"].as_str().unwrap());
    assert_eq!(post_telegram(http_port, &update, &secret).await, 200);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM messages WHERE idempotency_key = $1", "tg:500").await, 1);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM tickets WHERE requester_address = $1", "telegram-901@chat.invalid").await,
        1
    );
    assert_eq!(ticket(&store, &n).await.channel.as_str(), "telegram");
    daemon.terminate();
}

/// A flood over chat is bounded like one over mail: three hundred WhatsApp messages in a few
/// seconds from one number, each of which would open a ticket (no session window), are all kept, open at most the hourly ticket limit, and reach the
/// agents at most the hourly notification limit plus one digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flood_is_bounded_and_loses_nothing() {
    const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
    let w = World::new(
        "waflood",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            agents: true,
            extra: format!("[http]\nlisten = \"127.0.0.1:{}\"\n", free_port()),
            desk_extra: "[desk.whatsapp]\nphone_number_id = \"1234567\"\naccess_token_env = \"LOKET_TEST_WA_TOKEN\"\n\
                         app_secret_env = \"LOKET_TEST_WA_SECRET\"\nverify_token_env = \"LOKET_TEST_WA_VERIFY\"\n\
                         session_minutes = 0\n"
                .into(),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let cfg = w.config();
    let (tickets_limit, notes_limit) =
        (cfg.limits.new_tickets_per_sender_per_hour as i64, cfg.limits.agent_notifications_per_sender_per_hour as i64);
    for i in 0..300 {
        // With no session window every message would open a ticket of its own.
        let text = format!("Tolong {i}, aplikasi error lagi");
        let o = p.chat("hero", &wa_message(&format!("wa:fl{i}"), "62899", &text), T0 + i * 100).await.unwrap();
        assert!(!matches!(o.action, loket::pipeline::Action::Quarantined), "{o:?}");
    }
    let address = "whatsapp-62899@chat.invalid";
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM messages WHERE direction = 'in' AND peer_address = $1", address).await,
        300,
        "every message is kept"
    );
    let tickets = count(&store, "SELECT COUNT(*) FROM tickets WHERE requester_address = $1", address).await;
    assert_eq!(tickets, tickets_limit, "tickets for one number");
    let to_agents: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE direction = 'out' AND kind IN ('agent_notification', 'agent_flood')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(to_agents <= notes_limit + 1, "{to_agents} agent mails for one number");
}

/// The fake's `POST /{phone}/media`: keeps the multipart upload, answers with a media id.
async fn graph_upload(State(f): State<Fake>, Path(_phone): Path<String>, body: Bytes) -> Json<Value> {
    let kept = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &body);
    let n = {
        let mut s = f.sent.lock().unwrap();
        s.push(json!({"upload": kept}));
        s.len()
    };
    Json(json!({"id": format!("MEDIA{n}")}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_files_are_uploaded_then_sent_as_documents_or_images() {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v21.0/{phone}/messages", post(graph_send))
        .route("/v21.0/{phone}/media", post(graph_upload))
        .with_state(fake.clone());
    let graph_port = Fake::start(app).await;
    let w = World::new(
        "wafile",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            extra: format!("[http]\nlisten = \"127.0.0.1:{}\"\n", free_port()),
            desk_extra: whatsapp_desk(graph_port),
            ..Default::default()
        },
    )
    .await;
    let clients = loket::channel::chat::ChatClients::from_config(&w.config()).unwrap();
    let pdf = b"%PDF-1.4 panduan".to_vec();
    for (name, ctype, kind) in [("panduan.pdf", "application/pdf", "document"), ("layar.png", "image/png", "image")] {
        let payload = loket::chat::OutChat {
            chat_id: "62811".into(),
            text: name.into(),
            buttons: vec![],
            template: None,
            list_labels: None,
            file: Some(loket::chat::OutChatFile { attachment: 1, filename: name.into(), content_type: ctype.into() }),
            emailed: false,
        };
        let payload = serde_json::to_string(&payload).unwrap();
        let before = fake.sent().len();
        clients.send("hero", loket::domain::Channel::Whatsapp, Some(&payload), Some(&pdf)).await.unwrap();
        let sent = fake.sent();
        let upload = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            sent[before]["upload"].as_str().expect("the file is uploaded first"),
        )
        .unwrap();
        assert!(upload.windows(pdf.len()).any(|w| w == pdf.as_slice()), "the bytes are uploaded");
        assert!(String::from_utf8_lossy(&upload).contains(name), "under its name");
        let message = &sent[before + 1];
        let media = format!("MEDIA{}", before + 1);
        assert_eq!((message["type"].as_str(), message[kind]["id"].as_str()), (Some(kind), Some(media.as_str())));
        assert_eq!(message["to"], "62811");
    }
    // A file row whose bytes are gone fails for good instead of sending nothing.
    let payload = serde_json::json!({"chat_id": "62811", "text": "x", "file": {"attachment": 9, "filename": "x.pdf", "content_type": "application/pdf"}}).to_string();
    let err = clients.send("hero", loket::domain::Channel::Whatsapp, Some(&payload), None).await.unwrap_err();
    assert!(!err.is_temporary(), "{err}");
}

fn wa_status(id: &str, status: &str, errors: Value) -> Vec<u8> {
    let mut st = json!({"id": id, "status": status, "timestamp": "1790000100", "recipient_id": "62811"});
    if !errors.is_null() {
        st["errors"] = errors;
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "6221000", "phone_number_id": "1234567"},
        "statuses": [st]}}]}]})
    .to_string()
    .into_bytes()
}

/// The outbox row that delivered chat message `kind` (the first such), once its platform id is stored.
async fn sent_row(store: &loket::store::Store, kind: &str, chat: &str) -> (i64, String) {
    wait_for(&format!("the platform id of the {kind} to {chat}"), || async {
        let r: Option<(i64, String)> = sqlx::query_as(
            "SELECT o.id, o.platform_id FROM outbox o JOIN messages m ON m.id = o.message_row \
             WHERE m.kind = $1 AND o.recipients LIKE $2 AND o.platform_id IS NOT NULL ORDER BY o.id LIMIT 1",
        )
        .bind(kind)
        .bind(format!("%\"{chat}\"%"))
        .fetch_optional(store.pool())
        .await
        .unwrap();
        r
    })
    .await
}

async fn delivery_of(store: &loket::store::Store, row: i64) -> (Option<String>, Option<String>) {
    sqlx::query_as("SELECT delivery, delivery_error FROM outbox WHERE id = $1")
        .bind(row)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Issue #19, acceptance 4 (WhatsApp): status callbacks are recorded against the outbox row of
/// the message they name; a failure becomes a ticket event and a metric, and the message reaches
/// the requester's linked address by email (real Postfix and Dovecot); repeated, late and unknown
/// callbacks change nothing. A voice note opens a ticket and reaches the agents as an attachment
/// (in their real mailbox); a shared location is kept as text with a map link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_failed_delivery_falls_back_to_email_and_voice_notes_reach_the_agents() {
    let _servers = MAIL_SERVERS.read().await;
    let (fake, graph_port) = fake_whatsapp_graph().await;
    let http_port = free_port();
    let w = World::new(
        "wadlv",
        WorldOptions {
            agents: true,
            extra: format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
            desk_extra: whatsapp_desk(graph_port),
            ..Default::default()
        },
    )
    .await;
    let mut daemon = w.serve();
    wait_http(http_port).await;
    let store = w.store().await;
    let secret = test_secret("LOKET_TEST_WA_SECRET").unwrap();
    let post = |body: Vec<u8>| {
        let sig = sign(&body, &secret);
        async move { post_webhook(http_port, "/whatsapp/hero", body, Some(sig)).await }
    };

    // A ticket by WhatsApp; then the requester links a real mailbox with the code mailed to it.
    let text = "Aplikasi kepegawaian tidak bisa login sejak tadi pagi";
    assert_eq!(post(wa_body("wamid.D1", "62811", json!({"type": "text", "text": {"body": text}}))).await, 200);
    let (seen, ack) = fake.next_to(0, "62811", "to").await;
    let ack_text = ack["text"]["body"].as_str().unwrap().to_string();
    let n = number_in(&ack_text);
    let t = ticket(&store, &n).await;
    let budi = w.addr("budi");
    assert_eq!(
        post(wa_body("wamid.D2", "62811", json!({"type": "text", "text": {"body": format!("/email {budi}")}}))).await,
        200
    );
    let code_mail = wait_for("the code in budi's mailbox", || async {
        mailbox(&budi, "INBOX").await.into_iter().map(|r| parsed(&r)).find(|m| m.text.contains("/email "))
    })
    .await;
    let code = code_mail.text.lines().find_map(|l| l.trim().strip_prefix("/email ")).unwrap().trim().to_string();
    let (seen, _) = fake.next_to(seen, "62811", "to").await;
    assert_eq!(
        post(wa_body("wamid.D3", "62811", json!({"type": "text", "text": {"body": format!("/email {code}")}}))).await,
        200
    );
    let (_, linked) = fake.next_to(seen, "62811", "to").await;
    assert!(linked.to_string().contains(&budi), "{linked}");

    // Statuses out of order: `read` before `delivered`; the late `delivered` changes nothing.
    let (notice_row, notice_id) = sent_row(&store, "chat_notice", "62811").await;
    assert_eq!(post(wa_status(&notice_id, "sent", Value::Null)).await, 200);
    assert_eq!(delivery_of(&store, notice_row).await.0.as_deref(), Some("sent"));
    assert_eq!(post(wa_status(&notice_id, "read", Value::Null)).await, 200);
    assert_eq!(post(wa_status(&notice_id, "delivered", Value::Null)).await, 200);
    assert_eq!(delivery_of(&store, notice_row).await, (Some("read".into()), None));

    // The acknowledgement failed (131026: the number cannot receive it): recorded, an event, a
    // metric, and the words by email to the linked address, once, however often Meta reports it.
    let (ack_row, ack_id) = sent_row(&store, "acknowledgement", "62811").await;
    let failed = wa_status(&ack_id, "failed", json!([{"code": 131026, "title": "Message undeliverable"}]));
    assert_eq!(post(failed.clone()).await, 200);
    assert_eq!(post(failed.clone()).await, 200, "a second failed is accepted and changes nothing");
    assert_eq!(post(wa_status(&ack_id, "delivered", Value::Null)).await, 200);
    let (state, error) = delivery_of(&store, ack_row).await;
    assert_eq!(state.as_deref(), Some("failed"));
    assert!(error.unwrap_or_default().contains("131026"));
    let events: Vec<_> = loket::store::ticket_events(store.pool(), t.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "chat_delivery_failed")
        .collect();
    assert_eq!(events.len(), 1, "one event for the failure: {events:?}");
    assert_eq!(
        (events[0].detail["code"].as_i64(), events[0].detail["fallback"].as_str()),
        (Some(131026), Some("email"))
    );
    let fallback = wait_for("the fallback in budi's mailbox", || async {
        mailbox(&budi, "INBOX").await.into_iter().map(|r| parsed(&r)).find(|m| m.subject.contains(&n))
    })
    .await;
    let words = fallback.text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("tidak dapat disampaikan melalui WhatsApp"), "{words}");
    let ack_words = ack_text.split_whitespace().take(12).collect::<Vec<_>>().join(" ");
    assert!(words.contains(&ack_words), "the undelivered words `{ack_words}` in: {words}");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM messages WHERE kind = $1", "undelivered_by_chat").await,
        1,
        "one fallback mail"
    );
    let (_, metrics) = http_get(http_port, "/metrics").await;
    assert!(
        metrics.contains("loket_chat_undelivered_total{desk=\"hero\",channel=\"whatsapp\",code=\"131026\"} 1"),
        "{metrics}"
    );
    // A callback for a message this desk never sent is logged and ignored.
    assert_eq!(post(wa_status("wamid.NOT-OURS", "failed", json!([{"code": 131047}]))).await, 200);
    assert!(!http_get(http_port, "/metrics").await.1.contains("code=\"131047\""));
    // A forged status is refused like a forged message.
    let forged = wa_status(&notice_id, "failed", json!([{"code": 131026}]));
    assert_eq!(post_webhook(http_port, "/whatsapp/hero", forged.clone(), Some(sign(&forged, "guess"))).await, 401);
    assert_eq!(delivery_of(&store, notice_row).await.0.as_deref(), Some("read"));

    // A voice note from someone else opens a ticket; the agents receive the recording.
    // An Ogg page header and Opus bytes (binary, as a recording is).
    let voice =
        b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\xd2\x8f\x1eOpusHead\x01\x01\x38\x01\x80\xbb\xf3\xa9".to_vec();
    fake.files.lock().unwrap().insert("VOICE1".into(), voice.clone());
    let note = wa_body(
        "wamid.V1",
        "62833",
        json!({"type": "audio", "audio": {"id": "VOICE1", "mime_type": "audio/ogg; codecs=opus", "voice": true}}),
    );
    assert_eq!(post(note).await, 200);
    let (_, ack_v) = fake.next_to(0, "62833", "to").await;
    let nv = number_in(ack_v["text"]["body"].as_str().unwrap_or(&ack_v.to_string()));
    let agents = [w.agent("agent1"), w.agent("agent2")];
    let notified = wait_for("the voice note in an agent's mailbox", || async {
        for a in &agents {
            if let Some(r) = mailbox(a, "INBOX").await.into_iter().find(|r| parsed(r).subject.contains(&nv)) {
                return Some(r);
            }
        }
        None
    })
    .await;
    let message = mail_parser::MessageParser::default().parse(&notified).unwrap();
    let files: Vec<(String, Vec<u8>)> = message
        .attachments()
        .map(|a| (mail_parser::MimeHeaders::attachment_name(a).unwrap_or("").to_string(), a.contents().to_vec()))
        .collect();
    assert_eq!(files, vec![("voice-wamid.V1.ogg".to_string(), voice)], "the voice note reaches the agent");

    // A shared location continues that ticket as text with a map link.
    let place = wa_body(
        "wamid.L1",
        "62833",
        json!({"type": "location", "location": {"latitude": -6.175392, "longitude": 106.827153,
               "name": "Gedung Utama", "address": "Jl. M.I. Ridwan Rais No. 5"}}),
    );
    assert_eq!(post(place).await, 200);
    let body: String = sqlx::query_scalar("SELECT body_text FROM messages WHERE idempotency_key = 'wa:wamid.L1'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(body.contains("Gedung Utama") && body.contains("-6.175392, 106.827153"), "{body}");
    assert!(body.contains("https://www.openstreetmap.org/?mlat=-6.175392&mlon=106.827153"), "{body}");
    daemon.terminate();
}

fn tg_in(update: i64, user: i64, chat: Value, text: &str) -> Value {
    json!({"update_id": update, "message": {"message_id": update, "date": 1_790_000_000,
        "chat": chat, "from": tg_user(user), "text": text}})
}

/// Issue #19, acceptance 4 (Telegram): in a group or supergroup the bot opens no ticket, keeps
/// nothing of the messages or their senders, and answers each group once that it works in
/// private chat; a private chat works as before, and a voice note there becomes an attachment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_groups_open_no_ticket_and_are_answered_once() {
    let (fake, tg_port) = fake_telegram().await;
    let http_port = free_port();
    let w = World::new(
        "tggrp",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            extra: format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
            desk_extra: telegram_desk(tg_port),
            ..Default::default()
        },
    )
    .await;
    let mut daemon = w.serve();
    wait_http(http_port).await;
    let store = w.store().await;
    let group = json!({"id": -100555, "type": "group", "title": "Grup Kantor"});
    let supergroup = json!({"id": -1001777, "type": "supergroup", "title": "Forum TIK"});
    fake.push(tg_in(1, 901, group.clone(), "Website kemendag tidak bisa dibuka"));
    fake.push(tg_in(2, 902, group.clone(), "/baru"));
    fake.push(tg_in(3, 903, supergroup.clone(), "Printer di lantai 3 rusak"));
    fake.push(json!({"update_id": 4, "callback_query": {"id": "cb4", "from": tg_user(901), "chat_instance": "ci",
        "data": "r:A-HERO26000001:5", "message": {"message_id": 1001, "date": 1_790_000_100, "chat": group.clone(),
        "from": bot_user(), "text": "x"}}}));
    // A private voice note after them: when it is answered, the group updates were all taken.
    fake.files.lock().unwrap().insert("VOICE9".into(), b"OggS telegram voice".to_vec());
    fake.push(json!({"update_id": 5, "message": {"message_id": 5, "date": 1_790_000_000,
        "chat": {"id": 904, "type": "private", "first_name": "User904"}, "from": tg_user(904),
        "voice": {"file_id": "VOICE9", "file_unique_id": "V9", "duration": 3, "mime_type": "audio/ogg", "file_size": 19}}}));
    let (_, ack) = fake.next_to(0, "904", "chat_id").await;
    let n = number_in(ack["text"].as_str().unwrap());
    let (_, answer) = fake.next_to(0, "-100555", "chat_id").await;
    assert!(answer["text"].as_str().unwrap().contains("obrolan pribadi"), "{answer}");
    let (_, answer2) = fake.next_to(0, "-1001777", "chat_id").await;
    assert_eq!(answer2["text"], answer["text"]);

    // Once per group, however many messages came; no ticket, no message, no person of a group.
    let sent = fake.sent();
    for chat in ["-100555", "-1001777"] {
        assert_eq!(sent.iter().filter(|v| v["chat_id"].to_string().trim_matches('"') == chat).count(), 1, "{chat}");
    }
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.pool()).await.unwrap();
    assert_eq!(tickets, 1, "only the private voice note opened a ticket");
    for key in ["tg:1", "tg:2", "tg:3", "tg:4"] {
        assert_eq!(count(&store, "SELECT COUNT(*) FROM messages WHERE idempotency_key = $1", key).await, 0, "{key}");
    }
    for user in ["901", "902", "903"] {
        assert_eq!(count(&store, "SELECT COUNT(*) FROM chat_users WHERE user_id = $1", user).await, 0, "{user}");
    }
    let inbound = count(&store, "SELECT COUNT(*) FROM messages WHERE direction = $1", "in").await;
    assert_eq!(inbound, 1, "nothing of the groups' messages is stored");
    let stored = serde_json::to_string(
        &sqlx::query_scalar::<_, String>("SELECT body_text FROM messages").fetch_all(store.pool()).await.unwrap(),
    )
    .unwrap();
    assert!(!stored.contains("Printer di lantai 3") && !stored.contains("User901"), "{stored}");

    // The private voice note is kept as the ticket's attachment.
    let (name, id): (Option<String>, i64) = sqlx::query_as(
        "SELECT a.filename, a.id FROM attachments a JOIN messages m ON m.id = a.message_row WHERE m.idempotency_key = 'tg:5'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let bytes = chat_file(&store, id).await;
    assert_eq!((name.as_deref(), bytes.as_slice()), (Some("voice-5.ogg"), &b"OggS telegram voice"[..]));
    assert_eq!(ticket(&store, &n).await.channel.as_str(), "telegram");
    daemon.terminate();
}

/// The bytes of chat file (attachment row) `id`, as the store reads them: from the files
/// directory, by the name its row keeps.
async fn chat_file(store: &loket::store::Store, id: i64) -> Vec<u8> {
    let named: Option<String> = sqlx::query_scalar("SELECT content_blob FROM attachments WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(named.is_some(), "chat file {id} is in the files directory");
    let mut conn = store.pool().acquire().await.unwrap();
    loket::store::attachment_bytes(&mut conn, store.files(), id).await.unwrap().expect("the chat file's bytes")
}
