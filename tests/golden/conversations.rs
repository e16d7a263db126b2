//! Conversations as golden files (issue #13). Each `tests/conversations/NAME.toml` is a script a
//! desk operator can read: the desk, then steps — who writes what, through which channel, when
//! (`at = "+2h"` from Monday 2026-01-05 09:00 WIB, or `"2026-01-09 13:55"` in the desk's time),
//! an agent's reply with its commands, or a scheduler tick (`tick = "+8d"`). The runner plays it
//! through the whole pipeline in process on a fresh SQLite store in a temporary directory (the
//! repository's `loket.toml` desks with agents, groups, a supervisor and chat channels added),
//! then reads the store and writes, per step, what became of the message, the tickets it touched
//! (status, route, type, group, assignee, priority, rating), the events recorded and the messages
//! queued (template, recipient's role, key lines). `NAME.expected.txt` holds that transcript;
//! a difference fails with a line diff, every failing script listed; `UPDATE_GOLDEN=1` rewrites.
//!
//! Each step that touches an existing ticket is also played against the pure core: the runner
//! builds the `Intent` the step means from the script (who wrote, with a valid token or not, what
//! a button said) and calls `ticket::decide::decide` on the ticket as the store held it before the
//! step. The ticket after the step must equal the decision's patch applied to it, a follow-up must
//! be a new linked ticket, and every message the decision sends must be among those the pipeline
//! queued. The transcript's `decide:` line says so; a disagreement fails the suite unless the step
//! names it (`decide_differs = "why"`), and then the transcript shows the reason.
//!
//! Step keys: `from` (`requester`, `participant`, `stranger`, an agent `agus` | `sari` |
//! `kepala`, or an address), `via` (`email` | `whatsapp` | `telegram`), `subject`, `text`,
//! `thread` (`reply`: under the last mail the sender got about the ticket — for an agent, the
//! notification with their token; `tag`: only the ticket tag in the subject; `forged`: an agent's
//! token signed with the wrong secret; `none`: a new mail), `cc`, `attach` (file names), `button`
//! (`ok`, `no`, `rate:N`), `message_id` (reuse one to send a duplicate), `auto` (`ooo`: an
//! out-of-office reply; `bounce`: a DSN for the acknowledgement), `repeat` (send N such mails),
//! `ticket` (which ticket of the script the step is about, 1-based; default 1). A script with
//! `clocks = true` also shows each touched ticket's SLA clocks (state, due time) after every step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone};
use loket::chat::{ChatMessage, Input};
use loket::config::{Config, Desk, StorageConfig};
use loket::domain::{Channel, EmailAddress};
use loket::mail::attachments;
use loket::pipeline::{Outcome, Pipeline};
use loket::store::{self, Store, Ticket};
use loket::ticket::command;
use loket::ticket::decide::{Flow, Intent, Said, Send, decide};
use loket::ticket::reading;
use serde::Deserialize;
use sqlx::Row;

use crate::runner::{Golden, cut, files_under, repo};

/// Monday 2026-01-05 09:00 WIB, where relative times start.
const T0: i64 = 1_767_578_400_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
const TOKEN_SECRET: &str = "conversation-suite-token-secret";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    title: String,
    desk: String,
    /// The requester's address (default `budi@` the desk's domain).
    requester: Option<String>,
    /// Show each touched ticket's SLA clocks (state and due time) after every step.
    #[serde(default)]
    clocks: bool,
    #[serde(default)]
    step: Vec<Step>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at: Option<String>,
    tick: Option<String>,
    from: Option<String>,
    via: Option<String>,
    subject: Option<String>,
    text: Option<String>,
    thread: Option<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    attach: Vec<String>,
    button: Option<String>,
    message_id: Option<String>,
    auto: Option<String>,
    repeat: Option<u32>,
    ticket: Option<usize>,
    decide_differs: Option<String>,
    /// `false`: the desk's receiving server did not find the mail authentic for its From domain
    /// (a forgery); by default every mail carries its pass.
    authentic: Option<bool>,
}

/// The authserv-id of the desks' receiving server in these stories.
const AUTHSERV_ID: &str = "mx.conversation.test";

/// The people of every desk.
const AGENTS: &[(&str, &str, &str)] =
    &[("agus", "Agus", "l1"), ("sari", "Sari", "apps"), ("kepala", "Pak Kepala", "supervisor")];

fn domain_of(desk: &str) -> &'static str {
    match desk {
        "hero" => "kemendag.go.id",
        "jateng" => "jatengprov.go.id",
        _ => "kemenkeu.go.id",
    }
}

/// The layer-2 group's routes per desk.
fn layer2_routes(desk: &str) -> &'static str {
    match desk {
        "hero" => "aplikasi/*",
        "djpb" => "tik_1_konsultasi/*",
        "pusintek" => "itsm_1_hosting/*",
        _ => "vps/*",
    }
}

fn secret(k: &str) -> Option<String> {
    match k {
        "CONV_TOKEN_SECRET" => Some(TOKEN_SECRET.into()),
        "CONV_TG_TOKEN" => Some("123456:CONV-TOKEN".into()),
        k if k.starts_with("CONV_WA_") => Some(format!("{k}-value")),
        _ => None,
    }
}

/// The repository's `loket.toml` with, on every desk, a layer-1 group (Agus), a layer-2 group
/// (Sari), a supervisor (Pak Kepala), Telegram and WhatsApp; the token secret set; paths in `dir`.
fn config(dir: &Path) -> Config {
    let path = repo().join("loket.toml");
    let text = std::fs::read_to_string(&path).expect("loket.toml");
    let mut doc: toml::Table = toml::from_str(&text).expect("loket.toml parses");
    let storage = format!("sqlite://{}", dir.join("unused.db").display());
    doc.insert("storage".into(), toml::Value::Table(toml::toml! { url = storage }));
    doc.insert("security".into(), toml::Value::Table(toml::toml! { token_secret_env = "CONV_TOKEN_SECRET" }));
    let out = dir.join("outbound").display().to_string();
    doc.insert("outbound".into(), toml::Value::Table(toml::toml! { transport = "file" directory = out }));
    let desks = doc.get_mut("desk").and_then(|d| d.as_array_mut()).expect("[[desk]]");
    for desk in desks {
        let desk = desk.as_table_mut().expect("desk table");
        let id = desk["id"].as_str().expect("desk id").to_string();
        let domain = domain_of(&id);
        let routes = layer2_routes(&id);
        let people: toml::Table = toml::from_str(&format!(
            "[[group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
             [[group]]\nid = \"apps\"\nname = \"Tim Aplikasi\"\nlayer = 2\nroutes = [\"{routes}\"]\n\
             [[agent]]\naddress = \"agus@{domain}\"\nname = \"Agus\"\ngroups = [\"l1\"]\n\
             [[agent]]\naddress = \"sari@{domain}\"\nname = \"Sari\"\ngroups = [\"apps\"]\n\
             [[agent]]\naddress = \"kepala@{domain}\"\nname = \"Pak Kepala\"\nsupervisor = true\n\
             [telegram]\ntoken_env = \"CONV_TG_TOKEN\"\n\
             [whatsapp]\nphone_number_id = \"1234567\"\naccess_token_env = \"CONV_WA_TOKEN\"\n\
             app_secret_env = \"CONV_WA_SECRET\"\nverify_token_env = \"CONV_WA_VERIFY\"\ntemplate = \"pembaruan_tiket\"\n"
        ))
        .expect("people");
        desk.extend(people);
        // The desk's own receiving server writes `Authentication-Results` (see `mail_bytes`).
        let hygiene = desk.entry("hygiene").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        hygiene.as_table_mut().expect("hygiene table").insert("authserv_id".into(), AUTHSERV_ID.into());
        for inbox in desk.get_mut("inbox").and_then(|i| i.as_array_mut()).into_iter().flatten() {
            let inbox = inbox.as_table_mut().expect("inbox table");
            let name = inbox["name"].as_str().unwrap_or("inbox").to_string();
            inbox.insert("maildir".into(), dir.join("maildir").join(name).display().to_string().into());
        }
    }
    let text = toml::to_string(&doc).expect("config serialises");
    Config::from_toml(&path, &text, secret).unwrap_or_else(|e| panic!("conversation config: {e}"))
}

/// `+2h`, `+1d 3h`, `+30m`, `+0` from [`T0`], or `2026-01-09 13:55` in the desk's time zone.
fn time_of(s: &str, desk: &Desk) -> Result<i64, String> {
    let s = s.trim();
    if let Some(rel) = s.strip_prefix('+') {
        let mut total = 0;
        for part in rel.split_whitespace() {
            let (n, unit) = part.split_at(part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len()));
            let n: i64 = n.parse().map_err(|_| format!("bad time `{s}`"))?;
            total += n * match unit {
                "" | "m" => MINUTE,
                "h" => 60 * MINUTE,
                "d" => DAY,
                "s" => 1000,
                _ => return Err(format!("bad unit in `{s}` (s, m, h, d)")),
            };
        }
        return Ok(T0 + total);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").map_err(|e| format!("bad time `{s}`: {e}"))?;
    desk.tz.from_local_datetime(&naive).single().map(|d| d.timestamp_millis()).ok_or_else(|| format!("bad time `{s}`"))
}

fn local(ms: i64, desk: &Desk) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&desk.tz)
        .format("%a %Y-%m-%d %H:%M")
        .to_string()
}

/// What a step means for the ticket it is about, for `decide`.
enum Meaning {
    /// Not an intent on an existing ticket (a new request, automatic mail, a duplicate, a
    /// stranger): nothing to decide.
    Nothing(&'static str),
    Requester {
        text: String,
        said: Said,
        mail: Option<Box<loket::mail::parse::ParsedMail>>,
    },
    Participant {
        text: String,
    },
    Agent {
        address: String,
        token: bool,
        text: String,
    },
    Tick,
}

/// One outbound message as stored.
struct Out {
    ticket: Option<i64>,
    kind: String,
    to: Vec<String>,
    subject: String,
    body: String,
    raw: Vec<u8>,
    message_id: Option<String>,
    channel: String,
}

struct Run<'a> {
    p: Pipeline,
    store: Store,
    desk: &'a Desk,
    domain: &'static str,
    requester: String,
    /// Ticket ids in creation order.
    tickets: Vec<i64>,
    numbers: BTreeMap<i64, String>,
    last_msg: i64,
    last_event: i64,
    used_ids: Vec<String>,
    /// Every outbound message so far.
    outs: Vec<Out>,
    transcript: String,
    problems: Vec<String>,
}

const WA_USER: &str = "6281234500001";
const TG_USER: &str = "5550001";

impl Run<'_> {
    fn address_of(&self, who: &str) -> String {
        match who {
            "requester" => self.requester.clone(),
            "participant" => format!("ani@{}", self.domain),
            "stranger" => "eko@example.net".into(),
            w if AGENTS.iter().any(|(a, _, _)| *a == w) => format!("{w}@{}", self.domain),
            w => w.to_string(),
        }
    }

    fn role_of(&self, address: &str) -> String {
        if address == self.requester || address == WA_USER || address == TG_USER {
            return "requester".into();
        }
        for (a, name, what) in AGENTS {
            if address == format!("{a}@{}", self.domain) {
                return if *what == "supervisor" { format!("supervisor {name}") } else { format!("agent {name}") };
            }
        }
        if address == format!("ani@{}", self.domain) {
            return "participant Ani".into();
        }
        if address == "eko@example.net" {
            return "stranger Eko".into();
        }
        address.to_string()
    }

    fn number(&self, id: i64) -> &str {
        self.numbers.get(&id).map(String::as_str).unwrap_or("?")
    }

    async fn ticket(&self, id: i64) -> Ticket {
        let mut conn = self.store.pool().acquire().await.expect("connection");
        store::ticket_by_id(&mut conn, id).await.expect("ticket").expect("ticket exists")
    }

    async fn all_tickets(&self) -> BTreeMap<i64, Ticket> {
        let mut map = BTreeMap::new();
        for id in &self.tickets {
            map.insert(*id, self.ticket(*id).await);
        }
        map
    }

    async fn refresh_tickets(&mut self) {
        let rows =
            sqlx::query("SELECT id, number FROM tickets ORDER BY id").fetch_all(self.store.pool()).await.unwrap();
        for r in rows {
            let id: i64 = r.try_get("id").unwrap();
            if !self.tickets.contains(&id) {
                self.tickets.push(id);
                self.numbers.insert(id, r.try_get("number").unwrap());
            }
        }
    }

    /// The latest outbound mail to `address` about ticket `id` (`token`: only signed ones).
    fn last_mail_to(&self, id: i64, address: &str, token: bool) -> Option<&Out> {
        self.outs.iter().rev().find(|o| {
            o.ticket == Some(id)
                && o.channel == "email"
                && o.to.iter().any(|t| t == address)
                && (!token
                    || o.message_id
                        .as_ref()
                        .is_some_and(|m| !loket::ticket::token::tokens_in(std::slice::from_ref(m)).is_empty()))
        })
    }

    /// Builds and sends one step; returns the outcomes, a description and what the step means.
    async fn play(&mut self, n: usize, step: &Step, now: i64) -> Result<(Vec<Outcome>, String, Meaning), String> {
        let target = self.tickets.get(step.ticket.unwrap_or(1) - 1).copied();
        if step.tick.is_some() {
            let r = self.p.sla_tick(now).await.map_err(|e| e.to_string())?;
            let what = format!(
                "scheduler tick: {} warning(s), {} breach(es), {} auto-closed, {} reminder(s)",
                r.warnings, r.breaches, r.auto_closed, r.reminders
            );
            return Ok((Vec::new(), what, Meaning::Tick));
        }
        let who = step.from.as_deref().unwrap_or("requester");
        let via = step.via.as_deref().unwrap_or("email");
        let text = step.text.clone().unwrap_or_default();
        if via != "email" {
            return self.play_chat(n, step, via, now, target).await;
        }
        let from = self.address_of(who);
        let agent = self.desk.agent(&EmailAddress::parse(&from).map_err(|e| format!("{from}: {e}"))?).is_some();
        let number = target.map(|t| self.number(t).to_string());
        let thread = step.thread.as_deref().unwrap_or(if target.is_some() { "reply" } else { "none" });
        let mut headers = String::new();
        let mut token = false;
        let mut subject = step.subject.clone();
        let (t, number) = match (target, number) {
            (Some(t), Some(n)) if thread != "none" => (Some(t), n),
            _ => (None, String::new()),
        };
        if let Some(t) = t {
            let tsubject = self.ticket(t).await.subject;
            match thread {
                "reply" => match self.last_mail_to(t, &from, agent) {
                    Some(o) => {
                        let id = o.message_id.clone().unwrap_or_default();
                        headers.push_str(&format!("In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n"));
                        let s = &o.subject;
                        subject
                            .get_or_insert_with(|| if s.starts_with("Re:") { s.clone() } else { format!("Re: {s}") });
                        token = agent;
                    }
                    None => {
                        subject.get_or_insert_with(|| format!("Re: [#{number}] {tsubject}"));
                    }
                },
                "tag" => {
                    subject.get_or_insert_with(|| format!("Re: [#{number}] {tsubject}"));
                }
                "forged" => {
                    let id = loket::ticket::token::Signer::new(b"not the desk's secret at all").message_id(
                        &self.desk.id,
                        &number,
                        &from,
                        "forged",
                        self.domain,
                    );
                    headers.push_str(&format!("In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n"));
                    subject.get_or_insert_with(|| format!("Re: [#{number}] {tsubject}"));
                }
                other => return Err(format!("unknown thread `{other}` (reply, tag, forged, none)")),
            }
        }
        let subject = subject.unwrap_or_else(|| "(tanpa subjek)".into());
        let inbox = &self.desk.inboxes[0];
        let date = DateTime::from_timestamp_millis(now).unwrap_or_default().to_rfc2822();
        let cc: Vec<String> = step.cc.iter().map(|c| self.address_of(c)).collect();
        if !cc.is_empty() {
            headers.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
        }
        let mut outcomes = Vec::new();
        let repeat = step.repeat.unwrap_or(1);
        let mut meaning = Meaning::Nothing("a new request");
        let mut describe = String::new();
        for i in 0..repeat {
            let id = match &step.message_id {
                Some(m) => format!("{m}@{}", from.split('@').nth(1).unwrap_or("x")),
                None if repeat > 1 => format!("s{n}-{i}.{who}@conversation.test"),
                None => format!("s{n}.{who}@conversation.test"),
            };
            let dup = self.used_ids.contains(&id);
            self.used_ids.push(id.clone());
            let raw = match step.auto.as_deref() {
                Some("bounce") => {
                    let t = t.or(target).ok_or("a bounce needs a ticket")?;
                    let ack = self
                        .outs
                        .iter()
                        .find(|o| o.ticket == Some(t) && o.kind == "acknowledgement")
                        .ok_or("no acknowledgement to bounce")?;
                    let to = ack.to.join(", ");
                    let ack_id = ack.message_id.clone().unwrap_or_default();
                    describe = format!("a DSN (5.1.1) for the acknowledgement to {}", self.role_of(&to));
                    meaning = Meaning::Nothing("a bounce");
                    format!(
                        "From: Mail Delivery System <MAILER-DAEMON@mx.conversation.test>\r\nTo: {addr}\r\n\
                         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{id}>\r\nDate: {date}\r\n\
                         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
                         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
                         --b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system: your message could not be delivered.\r\n\
                         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.conversation.test\r\n\r\n\
                         Final-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
                         Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n\
                         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{ack_id}>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n--b--\r\n",
                        addr = inbox.address,
                        subject = ack.subject,
                    )
                    .into_bytes()
                }
                auto => {
                    let mut extra = headers.clone();
                    let domain = from.rsplit('@').next().unwrap_or_default();
                    extra.push_str(&if step.authentic.unwrap_or(true) {
                        format!("Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}\r\n")
                    } else {
                        format!("Authentication-Results: {AUTHSERV_ID}; dkim=none; spf=softfail smtp.mailfrom={domain}; dmarc=fail (p=quarantine) header.from={domain}\r\n")
                    });
                    let mut subject = subject.clone();
                    if auto == Some("ooo") {
                        extra.push_str("Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n");
                        subject = format!("Automatic reply: {subject}");
                        meaning = Meaning::Nothing("an automatic reply");
                    } else if let Some(other) = auto {
                        return Err(format!("unknown auto `{other}` (ooo, bounce)"));
                    }
                    let raw = mail_bytes(&from, &inbox.address, &subject, &id, &date, &extra, &text, &step.attach);
                    if dup {
                        meaning = Meaning::Nothing("the same Message-ID again");
                    } else if repeat > 1 {
                        meaning = Meaning::Nothing("a batch of mails: judged one by one, not as a batch");
                    } else if auto.is_none() && t.is_some() {
                        let parsed = loket::mail::parse::parse(&raw).map_err(|e| e.to_string())?;
                        let fresh = loket::mail::trim::trim_reply(&parsed.text).text.trim().to_string();
                        meaning = match who {
                            "requester" => {
                                Meaning::Requester { text: fresh, said: Said::Text, mail: Some(Box::new(parsed)) }
                            }
                            "participant" => Meaning::Participant { text: fresh },
                            _ if agent => Meaning::Agent { address: from.clone(), token, text: fresh },
                            _ => Meaning::Nothing("someone who is not a party to the ticket"),
                        };
                    }
                    if describe.is_empty() {
                        let how = match (thread, token, auto) {
                            (_, _, Some(_)) => "an out-of-office reply".to_string(),
                            ("none", ..) => "a new mail".into(),
                            ("reply", true, _) => "replying to their notification (token)".into(),
                            ("reply", false, _) if headers.contains("In-Reply-To") => {
                                "replying to the last mail".into()
                            }
                            ("forged", ..) => "with a forged token".into(),
                            _ => "the ticket tag in the subject only".into(),
                        };
                        let mut d = format!("{} by email, {how}", self.role_of(&from));
                        if !cc.is_empty() {
                            let roles: Vec<String> = cc.iter().map(|c| self.role_of(c)).collect();
                            d.push_str(&format!(", cc {}", roles.join(", ")));
                        }
                        if !step.attach.is_empty() {
                            d.push_str(&format!(", attached {}", step.attach.join(", ")));
                        }
                        if repeat > 1 {
                            d.push_str(&format!(", {repeat} mails"));
                        }
                        if dup {
                            d.push_str(", the same Message-ID as before");
                        }
                        describe = format!("{d}\n    Subject: {subject}");
                    }
                    raw
                }
            };
            outcomes.push(self.p.process(&inbox.name, &raw, now).await.map_err(|e| e.to_string())?);
        }
        Ok((outcomes, describe, meaning))
    }

    async fn play_chat(
        &mut self,
        n: usize,
        step: &Step,
        via: &str,
        now: i64,
        target: Option<i64>,
    ) -> Result<(Vec<Outcome>, String, Meaning), String> {
        let (channel, user, key) = match via {
            "whatsapp" => (Channel::Whatsapp, WA_USER, format!("wa:wamid.s{n}")),
            "telegram" => (Channel::Telegram, TG_USER, format!("tg:{}", 1000 + n)),
            other => return Err(format!("unknown via `{other}` (email, whatsapp, telegram)")),
        };
        let number = target.map(|t| self.number(t).to_string()).unwrap_or_default();
        let text = step.text.clone().unwrap_or_default();
        let (input, said, what) = match step.button.as_deref() {
            Some("ok") => (Input::Button(format!("ok:{number}")), Said::Confirm, "pressed [Ya, sudah jelas]".into()),
            Some("no") => (Input::Button(format!("no:{number}")), Said::Reopen, "pressed [Belum]".into()),
            Some(b) if b.starts_with("rate:") => {
                let r: u8 = b[5..].parse().map_err(|_| format!("bad button `{b}`"))?;
                (
                    Input::Button(format!("r:{number}:{r}")),
                    Said::Rate(r, String::new()),
                    format!("pressed {}", "⭐".repeat(r as usize)),
                )
            }
            Some(b) => return Err(format!("unknown button `{b}` (ok, no, rate:N)")),
            None => (Input::Text(text.clone()), Said::Text, format!("wrote \"{}\"", cut(&text, 80))),
        };
        let m = ChatMessage {
            channel,
            key,
            user_id: user.into(),
            chat_id: user.into(),
            name: Some("Budi Santoso".into()),
            language: None,
            input: input.clone(),
            files: Vec::new(),
            raw: serde_json::to_vec(&serde_json::json!({ "from": user, "step": n })).unwrap_or_default(),
        };
        let status = match target {
            Some(t) => Some(self.ticket(t).await),
            None => None,
        };
        let o = self.p.chat(&self.desk.id, &m, now).await.map_err(|e| e.to_string())?;
        let fresh_ticket = step.thread.as_deref() == Some("none");
        // A button the ticket's state does not call for is answered by the chat layer itself.
        let button_out_of_place = match (step.button.as_deref(), &status) {
            (Some("ok" | "no"), Some(t)) => t.status != loket::domain::TicketStatus::Resolved,
            (Some(_), Some(t)) => t.status != loket::domain::TicketStatus::Closed || t.rating.is_some(),
            _ => false,
        };
        let meaning = if button_out_of_place {
            Meaning::Nothing("a button the ticket's state does not call for: the chat layer answers")
        } else if target.is_some() && !fresh_ticket && !text.starts_with('/') {
            let text = match &input {
                Input::Text(t) => t.trim().to_string(),
                Input::Button(d) => d.clone(),
            };
            Meaning::Requester { text, said, mail: None }
        } else {
            Meaning::Nothing("a new request")
        };
        let platform = if channel == Channel::Whatsapp { "WhatsApp" } else { "Telegram" };
        Ok((vec![o], format!("requester by {platform}, {what}"), meaning))
    }

    async fn new_outs(&mut self) -> Vec<usize> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, channel, kind, to_addresses, subject, body_text, raw, raw_blob, message_id FROM messages \
             WHERE direction = 'out' AND id > $1 ORDER BY id",
        )
        .bind(self.last_msg)
        .fetch_all(self.store.pool())
        .await
        .unwrap();
        let mut idx = Vec::new();
        for r in rows {
            self.last_msg = r.try_get("id").unwrap();
            let channel: String = r.try_get("channel").unwrap();
            let raw = self
                .store
                .files()
                .read(r.try_get("raw").unwrap(), r.try_get("raw_blob").unwrap())
                .await
                .unwrap()
                .unwrap_or_default();
            if channel == "email" {
                // Every mail is multipart/alternative: the text part and an HTML part saying it.
                let (text, html) = loket::mail::compose::text_and_html(&raw)
                    .unwrap_or_else(|| panic!("mail without text and HTML parts: {}", String::from_utf8_lossy(&raw)));
                let body: String = r.try_get("body_text").unwrap();
                assert_eq!(text.replace("\r\n", "\n").trim_end(), body.trim_end(), "the text part is the message");
                assert!(html.starts_with("<!DOCTYPE html>") && html.contains("</html>"), "{html}");
            }
            let to: String = r.try_get("to_addresses").unwrap();
            idx.push(self.outs.len());
            self.outs.push(Out {
                ticket: r.try_get("ticket_id").unwrap(),
                kind: r.try_get("kind").unwrap(),
                to: serde_json::from_str(&to).unwrap_or_default(),
                subject: r.try_get("subject").unwrap(),
                body: r.try_get("body_text").unwrap(),
                raw,
                message_id: r.try_get("message_id").unwrap(),
                channel: r.try_get("channel").unwrap(),
            });
        }
        idx
    }

    async fn new_events(&mut self) -> Vec<(i64, String)> {
        let rows = sqlx::query("SELECT id, ticket_id, kind FROM ticket_events WHERE id > $1 ORDER BY id")
            .bind(self.last_event)
            .fetch_all(self.store.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                self.last_event = r.try_get("id").unwrap();
                (r.try_get("ticket_id").unwrap(), r.try_get("kind").unwrap())
            })
            .collect()
    }

    fn ticket_line(&self, t: &Ticket) -> String {
        let mut status = t.status.as_str().to_string();
        if let Some(r) = t.pending_reason {
            status.push_str(&format!(" ({})", r.as_str()));
        }
        let who = |a: &Option<String>| a.as_deref().map(|a| self.role_of(a)).unwrap_or_else(|| "-".into());
        let mut line = format!(
            "{}  {status} · {}/{} · {} · group {} · assignee {} · priority {}",
            t.number,
            t.category,
            t.subcategory,
            t.ticket_type.map(|v| v.as_str()).unwrap_or("-"),
            t.group_id.as_deref().unwrap_or("-"),
            who(&t.assignee),
            t.priority.map(|p| p.as_str()).unwrap_or("-"),
        );
        if let Some(r) = t.rating {
            line.push_str(&format!(" · rating {r}"));
            if let Some(c) = t.rating_comment.as_deref().filter(|c| !c.is_empty()) {
                line.push_str(&format!(" \"{}\"", cut(c, 40)));
            }
        }
        if let Some(l) = t.linked_ticket_id {
            line.push_str(&format!(" · linked to {}", self.number(l)));
        }
        line
    }

    fn out_lines(&self, o: &Out) -> String {
        let to: Vec<String> = o.to.iter().map(|t| self.role_of(t)).collect();
        let via = if o.channel == "email" { String::new() } else { format!(" by {}", o.channel) };
        let mut s = format!("{} → {}{via}", o.kind, to.join(", "));
        if !o.subject.is_empty() {
            s.push_str(&format!(": \"{}\"", o.subject));
        }
        for l in key_lines(&o.body) {
            s.push_str(&format!("\n                  | {l}"));
        }
        if o.channel == "email"
            && let Some(m) = mail_parser::MessageParser::default().parse(&o.raw)
        {
            use mail_parser::MimeHeaders;
            let files: Vec<String> = m
                .attachments()
                .map(|a| {
                    let inline = if a.content_id().is_some() { " inline" } else { "" };
                    format!("{} ({} bytes{inline})", a.attachment_name().unwrap_or("-"), a.contents().len())
                })
                .collect();
            if !files.is_empty() {
                s.push_str(&format!("\n                  | with files: {}", files.join(", ")));
            }
        }
        if o.channel != "email"
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.raw)
        {
            let labels: Vec<String> = v["buttons"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row.as_array().into_iter().flatten())
                .filter_map(|b| b["label"].as_str().map(|l| format!("[{l}]")))
                .collect();
            if !labels.is_empty() {
                s.push_str(&format!("\n                  | buttons {}", labels.join(" ")));
            }
            if let Some(t) = v["template"]["name"].as_str() {
                s.push_str(&format!("\n                  | as the approved template {t}"));
            }
        }
        s
    }
}

/// The lines of a message body that say what it is: the first sentence after the greeting, list
/// items (what is missing, what changed), and the lines naming a deadline, a reason or a link.
fn key_lines(body: &str) -> Vec<String> {
    let lines: Vec<&str> = body.lines().collect();
    let mut out = Vec::new();
    let substantive = |l: &&str| {
        let t = l.trim();
        let greeting =
            t.starts_with("Yth.") || t.starts_with("Dear ") || (t.ends_with(',') && t.split_whitespace().count() <= 3);
        !t.is_empty() && !greeting
    };
    if let Some(first) = lines.iter().find(|l| substantive(l)) {
        out.push(cut(first.trim(), 110));
    }
    const SIGNALS: &[&str] = &[
        "paling lambat",
        "melanjutkan tiket",
        "Alasan:",
        "belum lengkap",
        "menyebut tiket",
        "Status sekarang",
        "Catatan penyelesaian",
        "Catatan:",
        "Mohon diperhatikan",
        "Waktu kegiatan",
    ];
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        let signal = SIGNALS.iter().any(|s| t.contains(s));
        let item = l.starts_with("  - ");
        if (signal || item) && !out.iter().any(|o| *o == cut(t, 110)) {
            out.push(cut(t, 110));
            if t.starts_with("Catatan penyelesaian")
                && let Some(next) = lines.get(i + 1)
            {
                out.push(cut(next.trim(), 110));
            }
        }
        if out.len() >= 5 {
            break;
        }
    }
    out
}

/// A plain (or multipart, with attachments) mail.
#[allow(clippy::too_many_arguments)]
fn mail_bytes(
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    date: &str,
    extra: &str,
    text: &str,
    attach: &[String],
) -> Vec<u8> {
    let name = |a: &str| match a.split('@').next().unwrap_or("") {
        "budi" => "Budi Santoso".to_string(),
        "ani" => "Ani".into(),
        "eko" => "Eko".into(),
        "agus" => "Agus".into(),
        "sari" => "Sari".into(),
        "kepala" => "Pak Kepala".into(),
        other => other.to_string(),
    };
    let head = format!(
        "From: {} <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n{extra}",
        name(from)
    );
    let text = text.replace('\n', "\r\n");
    if attach.is_empty() {
        return format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n").into_bytes();
    }
    let mut s = format!(
        "{head}Content-Type: multipart/mixed; boundary=\"part\"\r\n\r\n--part\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    );
    for a in attach {
        let (ct, b64) = if a.ends_with(".pdf") {
            ("application/pdf", "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK")
        } else {
            ("application/octet-stream", "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA")
        };
        s.push_str(&format!(
            "--part\r\nContent-Type: {ct}; name=\"{a}\"\r\nContent-Disposition: attachment; filename=\"{a}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        ));
    }
    s.push_str("--part--\r\n");
    s.into_bytes()
}

/// The fields a decision's patch governs, for comparing the store with `patch.apply`.
fn governed(t: &Ticket) -> String {
    format!(
        "status {} · pending {:?} · {}/{} · type {:?} · group {:?} · assignee {:?} · priority {:?} · resolved_at {:?} · \
         closed_at {:?} · first_response_at {:?} · rating {:?} {:?} · rating_requested_at {:?}",
        t.status.as_str(),
        t.pending_reason.map(|r| r.as_str()),
        t.category,
        t.subcategory,
        t.ticket_type.map(|v| v.as_str()),
        t.group_id,
        t.assignee,
        t.priority.map(|p| p.as_str()),
        t.resolved_at,
        t.closed_at,
        t.first_response_at,
        t.rating,
        t.rating_comment,
        t.rating_requested_at,
    )
}

/// What `decide` says about the step, checked against what the pipeline did.
fn judge(
    run: &Run<'_>,
    before: &Ticket,
    intent: &Intent<'_>,
    now: i64,
    after: &BTreeMap<i64, Ticket>,
    outs: &[&Out],
) -> Result<String, String> {
    let d = decide(before, intent, run.desk, now);
    if let Flow::FollowUp { reason } = &d.flow {
        let linked = after.values().find(|t| t.linked_ticket_id == Some(before.id));
        let unchanged = after.get(&before.id).is_some_and(|a| governed(a) == governed(before));
        return match (linked, unchanged) {
            (Some(t), true) => Ok(format!("follow-up ({reason}): {} opened, {} unchanged", t.number, before.number)),
            (None, _) => Err(format!("decide says follow-up ({reason}); the pipeline opened no linked ticket")),
            (_, false) => Err(format!("decide says follow-up ({reason}); the pipeline changed {}", before.number)),
        };
    }
    let expected = d.patch.apply(before, now);
    let actual = after.get(&before.id).ok_or("the ticket vanished")?;
    if governed(&expected) != governed(actual) {
        return Err(format!(
            "the ticket differs from decide's patch:\n      decide:   {}\n      pipeline: {}",
            governed(&expected),
            governed(actual)
        ));
    }
    let mut pool: Vec<&&Out> = outs.iter().filter(|o| o.ticket == Some(before.id)).collect();
    let mut names = Vec::new();
    for send in &d.sends {
        let (kind, to): (&str, Option<String>) = match send {
            Send::Requester(loket::ticket::decide::ToRequester { template, .. }) => (template, None),
            Send::Agents { .. } => ("agent_notification", None),
            Send::Agent { address, .. } => ("agent_notification", Some(address.to_string())),
            Send::Actor { template, .. } => (template, None),
            Send::Alert { address, .. } => ("sla_alert", Some(address.to_string())),
        };
        names.push(kind.to_string());
        let found = pool.iter().position(|o| o.kind == kind && to.as_ref().is_none_or(|a| o.to.contains(a)));
        match found {
            Some(i) => {
                pool.remove(i);
            }
            None => {
                return Err(format!(
                    "decide sends {kind}{} but the pipeline queued none",
                    to.map(|a| format!(" to {a}")).unwrap_or_default()
                ));
            }
        }
    }
    let change = if before.status == expected.status {
        before.status.as_str().to_string()
    } else {
        format!("{} → {}", before.status.as_str(), expected.status.as_str())
    };
    let sends = if names.is_empty() { "nothing".to_string() } else { names.join(", ") };
    Ok(format!("agrees: {change}; sends {sends}"))
}

async fn run_script(
    cfg: &Arc<Config>,
    templates: &Arc<loket::templates::Templates>,
    script: &Script,
) -> Result<(String, Vec<String>), String> {
    let desk = cfg.desk(&script.desk).ok_or_else(|| format!("unknown desk `{}`", script.desk))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("loket.db").display());
    let store = Store::open(&StorageConfig {
        url,
        max_connections: 2,
        sqlite_synchronous: loket::config::SqliteSynchronous::Full,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let p = Pipeline::new(store.clone(), cfg.clone(), templates.clone(), Arc::new(tokio::sync::Notify::new()));
    let domain = domain_of(&desk.id);
    let mut run = Run {
        p,
        store,
        desk,
        domain,
        requester: script.requester.clone().unwrap_or_else(|| format!("budi@{domain}")),
        tickets: Vec::new(),
        numbers: BTreeMap::new(),
        last_msg: 0,
        last_event: 0,
        used_ids: Vec::new(),
        outs: Vec::new(),
        transcript: String::new(),
        problems: Vec::new(),
    };
    run.transcript.push_str(&format!(
        "# {}\n# desk {} ({}); times from {} ({})\n",
        script.title,
        desk.id,
        desk.name,
        local(T0, desk),
        desk.tz
    ));
    let mut now = T0;
    for (i, step) in script.step.iter().enumerate() {
        let n = i + 1;
        let at = step.tick.as_deref().or(step.at.as_deref());
        now = match at {
            Some(a) => time_of(a, desk).map_err(|e| format!("step {n}: {e}"))?,
            None => now + MINUTE,
        };
        let before = run.all_tickets().await;
        let (outcomes, what, meaning) = run.play(n, step, now).await.map_err(|e| format!("step {n}: {e}"))?;
        run.refresh_tickets().await;
        let after = run.all_tickets().await;
        let outs_idx = run.new_outs().await;
        let events = run.new_events().await;
        let text =
            step.text.as_deref().filter(|_| step.via.as_deref().unwrap_or("email") == "email" && step.auto.is_none());
        run.transcript.push_str(&format!("\n[{n}] {} · {what}\n", local(now, desk)));
        if let Some(t) = text {
            for l in t.lines().take(6) {
                run.transcript.push_str(&format!("    > {l}\n"));
            }
        }
        // What became of the message(s), consecutive equal outcomes counted.
        let mut shown: Vec<(String, usize)> = Vec::new();
        for o in &outcomes {
            let mut s = o.action.as_str().to_string();
            if let Some(t) = &o.ticket {
                s.push_str(&format!(" {t}"));
            }
            if let Some(r) = &o.reason {
                s.push_str(&format!(" ({})", cut(r, 120)));
            }
            match shown.last_mut() {
                Some((last, c)) if *last == s => *c += 1,
                _ => shown.push((s, 1)),
            }
        }
        for (s, c) in shown {
            let times = if c > 1 { format!(" ×{c}") } else { String::new() };
            run.transcript.push_str(&format!("    → {s}{times}\n"));
        }
        // The tickets this step touched.
        let touched: Vec<i64> = after
            .iter()
            .filter(|(id, t)| {
                before.get(id).is_none_or(|b| governed(b) != governed(t)) || events.iter().any(|(e, _)| e == *id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &touched {
            run.transcript.push_str(&format!("    ticket  {}\n", run.ticket_line(&after[id])));
        }
        if script.clocks {
            for id in &touched {
                let rows = loket::store::sla::clocks_of(run.store.pool(), *id).await.map_err(|e| e.to_string())?;
                let parts: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let due = r.clock.due_at.map(|d| local(d, desk)).unwrap_or_else(|| "-".into());
                        format!("{} {} due {due}", r.clock.kind.as_str(), r.clock.state.as_str())
                    })
                    .collect();
                run.transcript.push_str(&format!("    clocks  {}: {}\n", run.number(*id), parts.join(" · ")));
            }
        }
        for id in &touched {
            let kinds = counted(events.iter().filter(|(e, _)| e == id).map(|(_, k)| k.clone()));
            if !kinds.is_empty() {
                run.transcript.push_str(&format!("    events  {}: {}\n", run.number(*id), kinds.join(", ")));
            }
        }
        let sent = counted(outs_idx.iter().map(|i| run.out_lines(&run.outs[*i])));
        for (j, line) in sent.iter().enumerate() {
            let label = if j == 0 { "    sent    " } else { "            " };
            run.transcript.push_str(&format!("{label}{line}\n"));
        }
        if outs_idx.is_empty() {
            run.transcript.push_str("    sent    nothing\n");
        }
        // The same step through `decide` alone.
        let outs: Vec<&Out> = outs_idx.iter().map(|i| &run.outs[*i]).collect();
        let target = run.tickets.get(step.ticket.unwrap_or(1) - 1).copied();
        let verdicts: Vec<Result<String, String>> = match (&meaning, target.and_then(|t| before.get(&t))) {
            (Meaning::Nothing(why), _) => vec![Ok(format!("not asked ({why})"))],
            (Meaning::Tick, _) => {
                let mut v = Vec::new();
                for t in before.values() {
                    let due = t.status == loket::domain::TicketStatus::Resolved
                        && t.resolved_at.is_some_and(|r| now - r >= desk.reopen_days as i64 * DAY);
                    if due {
                        v.push(
                            judge(&run, t, &Intent::AutoClose, now, &after, &outs)
                                .map(|s| format!("auto-close {}: {s}", t.number)),
                        );
                    } else if governed(t) != governed(&after[&t.id]) {
                        v.push(Err(format!("{} changed on a tick that decides nothing for it", t.number)));
                    }
                }
                if v.is_empty() {
                    v.push(Ok("nothing to auto-close".into()));
                }
                v
            }
            (_, None) => vec![Ok("not asked (no ticket yet)".into())],
            (Meaning::Requester { text, said, mail }, Some(b)) => {
                let missing = match mail {
                    Some(m) if b.awaits_requirements() => missing_now(&run, b, m).await,
                    _ => Vec::new(),
                };
                let refused = mail.as_ref().is_some_and(|m| accepted(desk, m).1 > 0);
                let intent = Intent::Requester {
                    text,
                    said: said.clone(),
                    missing: &missing,
                    refused_files: refused,
                    inbox: &desk.inboxes[0].name,
                };
                vec![judge(&run, b, &intent, now, &after, &outs)]
            }
            (Meaning::Participant { text }, Some(b)) => {
                vec![judge(&run, b, &Intent::Participant { text, inbox: &desk.inboxes[0].name }, now, &after, &outs)]
            }
            (Meaning::Agent { address, token, text }, Some(b)) => {
                let agent = desk.agents.iter().find(|a| a.address.as_str() == address).ok_or("agent")?;
                let reply = if *token {
                    command::parse(text).map_err(|e| e.to_string())
                } else {
                    Err("the reply carries no valid ticket token".to_string())
                };
                // The ticket a `#merge` names, as the store held it before the step.
                let named = reply.as_ref().ok().and_then(|r| {
                    r.commands
                        .iter()
                        .find_map(|c| if let command::Command::Merge(n) = c { Some(n.clone()) } else { None })
                });
                let target = named.and_then(|n| before.values().find(|t| t.number == n));
                vec![judge(&run, b, &Intent::Agent { agent, reply, target }, now, &after, &outs)]
            }
        };
        for v in verdicts {
            match (v, &step.decide_differs) {
                (Ok(s), None) => run.transcript.push_str(&format!("    decide  {s}\n")),
                (Ok(s), Some(why)) => {
                    run.problems.push(format!("step {n}: `decide_differs` is set ({why}) but decide agrees: {s}"));
                    run.transcript.push_str(&format!("    decide  {s}\n"));
                }
                (Err(e), Some(why)) => {
                    run.transcript.push_str(&format!("    decide  DIFFERS, as the script says ({why}): {e}\n"));
                }
                (Err(e), None) => {
                    run.problems.push(format!("step {n}: decide disagrees with the pipeline: {e}"));
                    run.transcript.push_str(&format!("    decide  DISAGREES: {e}\n"));
                }
            }
        }
    }
    Ok((run.transcript, run.problems))
}

/// Consecutive equal items once, with `×N` when repeated.
fn counted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for item in items {
        match runs.last_mut() {
            Some((last, n)) if *last == item => *n += 1,
            _ => runs.push((item, 1)),
        }
    }
    runs.into_iter()
        .map(|(item, n)| {
            if n == 1 {
                return item;
            }
            match item.split_once('\n') {
                Some((first, rest)) => format!("{first} ×{n}\n{rest}"),
                None => format!("{item} ×{n}"),
            }
        })
        .collect()
}

/// Accepted and refused attachments of a mail under the desk's policy.
fn accepted(desk: &Desk, m: &loket::mail::parse::ParsedMail) -> (usize, usize) {
    let mut ok = (0, 0);
    for a in &m.attachments {
        if attachments::check_attachment(desk.attachments.as_ref(), a.filename.as_deref(), a.size, &a.head).accepted {
            ok.0 += 1;
        } else {
            ok.1 += 1;
        }
    }
    ok
}

/// What a request held for its requirements still lacks after this reply: the conditions read on
/// the request as first written and on the reply (as the catalogue's requirements say).
async fn missing_now(run: &Run<'_>, t: &Ticket, m: &loket::mail::parse::ParsedMail) -> Vec<loket::catalogue::Missing> {
    let Some(sub) = run.desk.catalogue.subcategory(&t.category, &t.subcategory) else { return Vec::new() };
    let opening: String = sqlx::query_scalar(
        "SELECT body_text FROM messages WHERE ticket_id = $1 AND direction = 'in' ORDER BY id LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(run.store.pool())
    .await
    .unwrap_or_default();
    let sender = m.from.as_ref().map(|f| f.address.clone()).expect("sender");
    reading::missing_requirements(
        sub,
        t.ticket_type,
        &format!("{}\n{}\n{}", t.subject, opening, m.text),
        accepted(run.desk, m).0,
        &sender,
        &m.cc,
        |d| run.desk.catalogue.is_internal_domain(d),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations() {
    let folder = repo().join("tests/conversations");
    let dir = tempfile::tempdir().unwrap();
    let cfg = Arc::new(config(dir.path()));
    let templates = Arc::new(loket::templates::Templates::load(&cfg.templates).expect("templates"));
    let mut golden = Golden::in_folder("conversations", &folder, &["."], "expected.txt");
    let scripts: Vec<_> =
        files_under(&folder).into_iter().filter(|f| f.extension().is_some_and(|e| e == "toml")).collect();
    let count = scripts.len();
    for path in scripts {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let rel = format!("tests/conversations/{stem}.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let script: Script = match toml::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                golden.fail(format!("{rel}: not a conversation script: {e}"));
                continue;
            }
        };
        match run_script(&cfg, &templates, &script).await {
            Ok((transcript, problems)) => {
                golden.check_text(Path::new(&format!("{stem}.expected.txt")), &transcript);
                for p in problems {
                    golden.fail(format!("{rel}: {p}"));
                }
            }
            Err(e) => golden.fail(format!("{rel}: cannot run: {e}")),
        }
    }
    golden.finish();
    assert!(count >= 60, "{count} conversation scripts; the suite wants at least 60");
}
