//! The conversation by email (issue 4), in process with injected time where the story needs days
//! to pass: reopen and follow-up tickets, spoofed commands, the completeness check, commands.

use loket::pipeline::{Action, Pipeline};
use loket::store::{self, Store};

use crate::harness::*;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB

async fn world(name: &str) -> (World, Pipeline, Store) {
    let w =
        World::new(name, WorldOptions { imap: false, outbound_smtp: false, agents: true, ..Default::default() }).await;
    let (p, s) = pipeline(&w).await;
    (w, p, s)
}

/// A reply to `parent` (a Message-ID) from `from`.
fn reply(from: &str, to: &str, subject: &str, id: &str, parent: &str, body: &str) -> Vec<u8> {
    mail(from, to, subject, id, &format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"), body)
}

/// Opens a ticket from `requester`; returns its number.
async fn open(w: &World, p: &Pipeline, requester: &str, subject: &str, body: &str, now: i64) -> String {
    let m = mail(requester, &w.desk_addr, subject, &format!("{}-{}@example.test", w.tag, now), "", body);
    let o = p.process("hero", &m, now).await.unwrap();
    assert_eq!(o.action, Action::Created, "{o:?}");
    o.ticket.unwrap().to_string()
}

/// The Message-ID of the latest notification to `agent` about `number`.
async fn notification_to(store: &Store, number: &str, agent: &str) -> String {
    outbound(store, number)
        .await
        .into_iter()
        .rev()
        .find(|(k, to, _, _)| k == "agent_notification" && to == agent)
        .unwrap_or_else(|| panic!("no notification to {agent}"))
        .2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_notified_and_their_replies_relayed_without_their_address() {
    let (w, p, store) = world("relay").await;
    let budi = w.addr("budi");
    let n = open(&w, &p, &budi, "Website error", "Halaman depan website error 500.", T0).await;
    let out = outbound(&store, &n).await;
    // The route (aplikasi/website_kemendag) names the apps team: its member is notified.
    let l1 = w.agent("agent2");
    assert!(out.iter().any(|(k, to, _, _)| k == "acknowledgement" && *to == budi));
    assert!(!out.iter().any(|(_, to, _, _)| *to == w.agent("agent1")), "layer 1 is not bothered: {out:?}");
    let notif = notification_to(&store, &n, &l1).await;
    assert!(loket::ticket::token::tokens_in(std::slice::from_ref(&notif)).len() == 1, "signed Message-ID: {notif}");
    // The agent answers by replying; the requester gets the words from the desk's address.
    let r = reply(
        &l1,
        &w.desk_addr,
        &format!("Re: [#{n}] Tiket baru"),
        &format!("{}-a1@desk.test", w.tag),
        &notif,
        "Sudah kami cek, silakan dicoba lagi.\n\n> kutipan lama",
    );
    assert_eq!(p.process("hero", &r, T0 + 60_000).await.unwrap().action, Action::Appended);
    let out = outbound(&store, &n).await;
    let relayed = out.iter().find(|(k, _, _, _)| k == "agent_reply").expect("relayed");
    assert_eq!(relayed.1, budi);
    assert!(relayed.3.contains("Sudah kami cek"));
    assert!(!relayed.3.contains("kutipan lama"), "the quote is not relayed");
    assert!(!relayed.3.contains(&l1), "the agent's address is never shown");
    let t = ticket(&store, &n).await;
    assert_eq!(t.status.as_str(), "open");
    assert_eq!(t.first_response_at, Some(T0 + 60_000), "the agent's reply is the first response");
    // The raw mail to the requester comes from the desk.
    let row: i64 =
        sqlx::query_scalar("SELECT id FROM messages WHERE kind = 'agent_reply'").fetch_one(store.pool()).await.unwrap();
    let raw = loket::store::message_raw(&store, row).await.unwrap().unwrap();
    let m = parsed(&raw);
    assert_eq!(m.from.unwrap().address.as_str(), w.desk_addr);
    assert!(!String::from_utf8_lossy(&raw).contains(&l1));
}

/// Acceptance 2: a reply within 7 days of resolution reopens; after 7 days (time injected) a new
/// ticket opens, linked to the old one; a reply to a closed ticket never disappears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_within_the_window_and_a_linked_ticket_after_it() {
    let (w, p, store) = world("reopen").await;
    let budi = w.addr("budi");
    let l1 = w.agent("agent1");
    let resolve = |n: String, notif: String, now: i64, id: &str| {
        let r = reply(
            &l1,
            &w.desk_addr,
            &format!("Re: [#{n}]"),
            &format!("{}-{id}@desk.test", w.tag),
            &notif,
            "#resolve Sudah diperbaiki.",
        );
        let p = p.clone();
        async move {
            let o = p.process("hero", &r, now).await.unwrap();
            assert_eq!((o.action, o.reason), (Action::Appended, None));
        }
    };
    let n = open(&w, &p, &budi, "Jaringan putus", "Internet di ruangan saya putus.", T0).await;
    resolve(n.clone(), notification_to(&store, &n, &l1).await, T0 + DAY, "r1").await;
    assert_eq!(ticket(&store, &n).await.status.as_str(), "resolved");
    // Six days later: "still broken" reopens the same ticket.
    let m = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{n}] Jaringan putus"),
        &format!("{}-b1@example.test", w.tag),
        "",
        "Belum, masih putus.",
    );
    let o = p.process("hero", &m, T0 + 7 * DAY).await.unwrap();
    assert_eq!((o.action, o.ticket.as_deref()), (Action::Appended, Some(n.as_str())));
    let t = ticket(&store, &n).await;
    assert_eq!((t.status.as_str(), t.resolved_at), ("open", None));
    assert!(outbound(&store, &n).await.iter().any(|(k, _, _, _)| k == "reopened"));
    // Resolved again; eight days later a reply opens a new ticket linked to this one.
    resolve(n.clone(), notification_to(&store, &n, &l1).await, T0 + 8 * DAY, "r2").await;
    let m = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{n}] Jaringan putus"),
        &format!("{}-b2@example.test", w.tag),
        "",
        "Putus lagi sejak kemarin.",
    );
    let o = p.process("hero", &m, T0 + 16 * DAY + 1).await.unwrap();
    assert_eq!(o.action, Action::Created);
    let new = o.ticket.unwrap();
    assert_ne!(new.as_str(), n);
    let t_old = ticket(&store, &n).await;
    let t_new = ticket(&store, &new).await;
    assert_eq!(t_new.linked_ticket_id, Some(t_old.id));
    assert_eq!(t_old.status.as_str(), "resolved");
    let events = store::ticket_events(store.pool(), t_old.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "follow_up_ticket" && e.detail["ticket"] == new.as_str()));
    let ack = outbound(&store, &new).await.into_iter().find(|(k, _, _, _)| k == "acknowledgement").unwrap();
    assert!(ack.3.contains(&n), "the new acknowledgement names the old ticket");
    // A reply to a closed ticket (not a rating) also opens a linked ticket.
    let n2 = open(&w, &p, &budi, "Email penuh", "Kotak surat penuh.", T0 + 20 * DAY).await;
    let notif = notification_to(&store, &n2, &l1).await;
    let r = reply(&l1, &w.desk_addr, "Re:", &format!("{}-c1@desk.test", w.tag), &notif, "#close");
    p.process("hero", &r, T0 + 20 * DAY + 1).await.unwrap();
    assert_eq!(ticket(&store, &n2).await.status.as_str(), "closed");
    let m = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{n2}]"),
        &format!("{}-b3@example.test", w.tag),
        "",
        "Masalah baru lagi di email saya.",
    );
    let o = p.process("hero", &m, T0 + 21 * DAY).await.unwrap();
    assert_eq!(o.action, Action::Created);
    assert_eq!(ticket(&store, o.ticket.as_deref().unwrap()).await.linked_ticket_id, Some(ticket(&store, &n2).await.id));
}

/// Acceptance 3: commands from a non-agent, and an agent's reply without a valid token, change
/// nothing; the sender is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_commands_change_nothing() {
    let (w, p, store) = world("spoof").await;
    let budi = w.addr("budi");
    let l1 = w.agent("agent1");
    let n = open(&w, &p, &budi, "Printer", "Website tidak bisa diakses", T0).await;
    let before = ticket(&store, &n).await;
    let out_before = outbound(&store, &n).await.len();

    // The requester tries to resolve their own ticket.
    let m = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{n}]"),
        &format!("{}-s1@example.test", w.tag),
        "",
        "#resolve\n#assign Agus",
    );
    p.process("hero", &m, T0 + 1000).await.unwrap();
    let t = ticket(&store, &n).await;
    assert_eq!((t.status.as_str(), t.assignee.clone(), t.resolved_at), (before.status.as_str(), None, None));

    // Someone forging the agent's From without the token (only the subject tag).
    let m = mail(
        &l1,
        &w.desk_addr,
        &format!("Re: [#{n}]"),
        &format!("{}-s2@evil.test", w.tag),
        "",
        "#resolve\nSudah beres.",
    );
    let o = p.process("hero", &m, T0 + 2000).await.unwrap();
    assert!(o.reason.unwrap().contains("token"));
    // A token for another ticket, or for another agent, is no better.
    // (A printer is no service of the desk: triage, whose first-line group holds agent1.)
    let other = open(&w, &p, &w.addr("sari"), "Lain", "Printer di ruang rapat macet", T0 + 3000).await;
    let wrong_ticket = notification_to(&store, &other, &l1).await;
    let m =
        reply(&l1, &w.desk_addr, &format!("Re: [#{n}]"), &format!("{}-s3@evil.test", w.tag), &wrong_ticket, "#resolve");
    p.process("hero", &m, T0 + 4000).await.unwrap();
    let forged =
        loket::ticket::token::Signer::new(b"not-the-secret-at-all").message_id("hero", &n, &l1, "x", "desk.test");
    let m = reply(&l1, &w.desk_addr, &format!("Re: [#{n}]"), &format!("{}-s4@evil.test", w.tag), &forged, "#close");
    p.process("hero", &m, T0 + 5000).await.unwrap();

    let t = ticket(&store, &n).await;
    assert_eq!(
        (t.status.as_str(), t.resolved_at, t.closed_at, t.first_response_at),
        (before.status.as_str(), None, None, None)
    );
    let out = outbound(&store, &n).await;
    assert!(!out.iter().any(|(k, _, _, _)| k == "resolution" || k == "closed_rating" || k == "agent_reply"), "{out:?}");
    let refused: Vec<_> = out[out_before..].iter().filter(|(k, _, _, _)| k == "agent_refused").collect();
    assert_eq!(refused.len(), 3, "each forged agent reply gets an explanation: {out:?}");
    assert!(refused.iter().all(|(_, to, _, body)| *to == l1 && body.contains("token")));
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "agent_reply_refused").count(), 3);
    assert!(!events.iter().any(|e| e.kind == "command"));
}

/// Bad commands are refused whole, with the reason; good ones change the ticket and the agent
/// gets a confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_change_the_ticket_and_are_confirmed() {
    // On PostgreSQL: the recorded corrections (issue 18) go through its migration too.
    let w = World::new(
        "commands",
        WorldOptions { imap: false, outbound_smtp: false, agents: true, pg: true, ..Default::default() },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let budi = w.addr("budi");
    let l1 = w.agent("agent1");
    let l2 = w.agent("agent2");
    let boss = w.agent("boss");
    let n = open(&w, &p, &budi, "Internet putus", "Jaringan internet di ruangan saya putus.", T0).await;
    let notif = notification_to(&store, &n, &l1).await;
    let bad = reply(
        &l1,
        &w.desk_addr,
        "Re:",
        &format!("{}-x1@desk.test", w.tag),
        &notif,
        "#priority P2\n#assign nobody\n#category aplikasi/nope",
    );
    let o = p.process("hero", &bad, T0 + 1).await.unwrap();
    let reason = o.reason.unwrap();
    assert!(reason.contains("#assign nobody") && reason.contains("#category aplikasi/nope"), "{reason}");
    assert_eq!(ticket(&store, &n).await.priority, None, "one bad command: nothing changes");

    let good = reply(
        &l1,
        &w.desk_addr,
        "Re:",
        &format!("{}-x2@desk.test", w.tag),
        &notif,
        "#priority p2\n#category aplikasi/website_kemendag\n#type incident\n#note cek log nginx",
    );
    p.process("hero", &good, T0 + 2).await.unwrap();
    let t = ticket(&store, &n).await;
    assert_eq!(
        (
            t.priority.map(|v| v.as_str()),
            t.category.as_str(),
            t.subcategory.as_str(),
            t.ticket_type.map(|v| v.as_str())
        ),
        (Some("P2"), "aplikasi", "website_kemendag", Some("incident"))
    );
    // Learning from agents (issue 18): the refused reply recorded nothing; the accepted one its
    // three corrections, in the order sent, with what the router said and the ticket's labels now.
    let learned: Vec<_> = loket::store::corrections::corrections(store.pool(), "hero", 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.ticket_number == n)
        .collect();
    let fields: Vec<(&str, &str)> = learned.iter().map(|c| (c.field.as_str(), c.corrected.as_str())).collect();
    assert_eq!(fields, vec![("priority", "P2"), ("category", "aplikasi/website_kemendag"), ("type", "incident")]);
    let c = &learned[1];
    assert!(c.routed.is_some() && c.routed == c.previous, "no earlier move: the router's route: {c:?}");
    assert_eq!(
        (c.category.as_str(), c.subcategory.as_str(), c.agent.as_str()),
        ("aplikasi", "website_kemendag", l1.as_str())
    );
    assert!(c.subject == "Internet putus" && c.body.contains("Jaringan internet di ruangan saya putus"), "{c:?}");
    let out = outbound(&store, &n).await;
    assert!(!out.iter().any(|(k, _, _, _)| k == "agent_reply"), "a #note is never relayed");
    let conf = out.iter().rev().find(|(k, _, _, _)| k == "agent_confirmation").unwrap();
    assert_eq!(conf.1, l1);
    assert!(conf.3.contains("priority: P2") && conf.3.contains("internal note added"), "{}", conf.3);

    // Escalate: layer 1 → the apps team (layer 2, routes aplikasi/*); then the supervisor.
    let esc = reply(&l1, &w.desk_addr, "Re:", &format!("{}-x3@desk.test", w.tag), &notif, "#escalate");
    p.process("hero", &esc, T0 + 3).await.unwrap();
    let t = ticket(&store, &n).await;
    assert_eq!(t.group_id.as_deref(), Some("apps"));
    let to_l2 = notification_to(&store, &n, &l2).await;
    let esc2 = reply(&l2, &w.desk_addr, "Re:", &format!("{}-x4@desk.test", w.tag), &to_l2, "#escalate");
    p.process("hero", &esc2, T0 + 4).await.unwrap();
    notification_to(&store, &n, &boss).await;
    // Reject.
    let rej =
        reply(&l2, &w.desk_addr, "Re:", &format!("{}-x5@desk.test", w.tag), &to_l2, "#reject Di luar layanan HERO");
    p.process("hero", &rej, T0 + 5).await.unwrap();
    let t = ticket(&store, &n).await;
    assert_eq!(t.status.as_str(), "rejected");
    let out = outbound(&store, &n).await;
    let rejection = out.iter().find(|(k, _, _, _)| k == "rejection").unwrap();
    assert!(rejection.3.contains("Di luar layanan HERO") && rejection.1 == budi);
}

/// Acceptance 6: an INATRADE account request without the official letter goes pending with a
/// request for it; the reply with the letter puts it back in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_requests_wait_for_their_requirements() {
    let (w, p, store) = world("inatrade").await;
    let pegawai = format!("{}-rina@kemendag.go.id", w.tag);
    let n = open(
        &w,
        &p,
        &pegawai,
        "Permohonan akun INATRADE",
        "Mohon dibuatkan akun INATRADE untuk operator baru di direktorat kami.",
        T0,
    )
    .await;
    let t = ticket(&store, &n).await;
    assert_eq!(
        (t.category.as_str(), t.subcategory.as_str(), t.ticket_type.map(|v| v.as_str())),
        ("aplikasi", "inatrade", Some("request"))
    );
    assert_eq!((t.status.as_str(), t.pending_reason.map(|v| v.as_str())), ("pending", Some("requirements")));
    let out = outbound(&store, &n).await;
    let ack = out.iter().find(|(k, _, _, _)| k == "acknowledgement").unwrap();
    let letter = w.config().desk("hero").unwrap().catalogue.subcategory("aplikasi", "inatrade").unwrap().requirements
        [0]
    .item
    .clone();
    assert!(ack.3.contains(&letter), "the acknowledgement names exactly what is missing: {}", ack.3);
    let waiting: Vec<_> = out.iter().filter(|(k, _, _, _)| k == "agent_notification").collect();
    assert!(!waiting.is_empty(), "layer 1 sees the held request");
    assert!(
        waiting
            .iter()
            .all(|(_, _, _, b)| b.contains("menunggu kelengkapan") && b.contains(&letter) && b.contains("#waive")),
        "notified as waiting, with what is missing and how to waive it: {waiting:?}"
    );

    // A reply without the letter: still pending, told again.
    let m = mail(
        &pegawai,
        &w.desk_addr,
        &format!("Re: [#{n}]"),
        &format!("{}-r1@kemendag.go.id", w.tag),
        "",
        "Suratnya menyusul.",
    );
    p.process("hero", &m, T0 + 60_000).await.unwrap();
    assert_eq!(ticket(&store, &n).await.status.as_str(), "pending");
    assert!(outbound(&store, &n).await.iter().any(|(k, _, _, body)| k == "incomplete" && body.contains(&letter)));
    // Two days later with no answer: one reminder, never two.
    assert_eq!(p.sla_tick(T0 + DAY).await.unwrap().reminders, 0);
    assert_eq!(p.sla_tick(T0 + 2 * DAY + 1).await.unwrap().reminders, 1);
    assert_eq!(p.sla_tick(T0 + 5 * DAY).await.unwrap().reminders, 0);
    assert_eq!(outbound(&store, &n).await.iter().filter(|(k, _, _, _)| k == "pending_reminder").count(), 1);

    // The reply with the letter attached.
    let with_pdf = format!(
        "From: {pegawai}\r\nTo: {desk}\r\nSubject: Re: [#{n}]\r\nMessage-ID: <{tag}-r2@kemendag.go.id>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nBerikut suratnya.\r\n\
         --b\r\nContent-Type: application/pdf; name=\"surat.pdf\"\r\nContent-Disposition: attachment; filename=\"surat.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfs\r\n--b--\r\n",
        desk = w.desk_addr,
        tag = w.tag
    );
    p.process("hero", with_pdf.as_bytes(), T0 + 120_000).await.unwrap();
    let t = ticket(&store, &n).await;
    assert_eq!((t.status.as_str(), t.pending_reason), ("open", None));
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "requirements_complete"));
    assert!(
        outbound(&store, &n)
            .await
            .iter()
            .any(|(k, _, _, b)| k == "agent_notification" && b.contains("melengkapi persyaratan")),
        "back in the queue: agents notified"
    );

    // Another held request: an agent waives the requirement from the waiting notification.
    let n2 = open(
        &w,
        &p,
        &pegawai,
        "Akun INATRADE baru",
        "Mohon dibuatkan akun INATRADE untuk operator baru di bagian ekspor.",
        T0 + DAY,
    )
    .await;
    assert_eq!(ticket(&store, &n2).await.status.as_str(), "pending");
    let (_, agent, notice, _) = outbound(&store, &n2)
        .await
        .into_iter()
        .find(|(k, _, _, _)| k == "agent_notification")
        .expect("notified as waiting");
    let waive = mail(
        &agent,
        &w.desk_addr,
        &format!("Re: [#{n2}]"),
        &format!("{}-w1@desk.test", w.tag),
        &format!("In-Reply-To: <{notice}>\r\n"),
        "#waive",
    );
    p.process("hero", &waive, T0 + DAY + 60_000).await.unwrap();
    let t2 = ticket(&store, &n2).await;
    assert_eq!((t2.status.as_str(), t2.pending_reason), ("open", None), "the agent waived the requirement");
}

/// Acceptance 1: the HERO story end to end against Dovecot and Postfix: request →
/// acknowledgement → `#assign` → agent reply relayed → requester reply appended → `#resolve` →
/// resolution notice → "Ya, sudah jelas" → closed + rating request → "5 terima kasih" → rating
/// stored; each mail checked in the right mailbox; the ticket's events match the story.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hero_story_by_email() {
    let _smtp = MAIL_SERVERS.read().await;
    let w = World::new("story", WorldOptions { agents: true, ..Default::default() }).await;
    let daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    let budi = w.addr("budi");
    let (agus, sari) = (w.agent("agent1"), w.agent("agent2"));
    let send = |from: String, raw: Vec<u8>| {
        let to = w.desk_addr.clone();
        async move { smtp_send(&from, &[&to], &raw).await }
    };
    let n_id = |i: &str| format!("{}-{i}@example.test", w.tag);

    // 1. The request and its acknowledgement.
    send(
        budi.clone(),
        mail(
            &format!("Budi <{budi}>"),
            &w.desk_addr,
            "Internet di ruang rapat mati",
            &n_id("1"),
            "",
            "Internet di ruang rapat lantai 3 mati sejak pagi, kabel LAN tidak konek.",
        ),
    )
    .await;
    let inbox = wait_mailbox(&budi, "INBOX", 1).await;
    let ack = parsed(&inbox[0]);
    let number = loket::ticket::find_tags(&ack.subject)[0].to_string();
    assert!(ack.text.contains(&number));
    // 2. Layer 1 is notified and assigns the ticket to Sari.
    let notif = parsed(&wait_mailbox(&agus, "INBOX", 1).await[0]);
    assert!(notif.subject.contains(&number), "{}", notif.subject);
    let r = reply(
        &agus,
        &w.desk_addr,
        &format!("Re: {}", notif.subject),
        &format!("{}-a1@desk.test", w.tag),
        notif.message_id.as_deref().unwrap(),
        "#assign Sari",
    );
    send(agus.clone(), r).await;
    let assigned = parsed(&wait_mailbox(&sari, "INBOX", 1).await[0]);
    assert!(assigned.text.contains("ditugaskan kepada Anda"), "{}", assigned.text);
    let confirmation = parsed(&wait_mailbox(&agus, "INBOX", 2).await[1]);
    assert!(confirmation.text.contains("assigned to Sari"), "{}", confirmation.text);
    // 3. Sari answers; Budi gets it from the desk, not from Sari.
    let r = reply(
        &sari,
        &w.desk_addr,
        &format!("Re: {}", assigned.subject),
        &format!("{}-s1@desk.test", w.tag),
        assigned.message_id.as_deref().unwrap(),
        "Selamat pagi Pak Budi, teknisi kami sedang menuju ruang rapat.",
    );
    send(sari.clone(), r).await;
    let relayed_raw = wait_mailbox(&budi, "INBOX", 2).await.remove(1);
    let relayed = parsed(&relayed_raw);
    assert!(relayed.text.contains("teknisi kami sedang menuju"));
    assert_eq!(relayed.from.as_ref().unwrap().address.as_str(), w.desk_addr);
    assert!(!String::from_utf8_lossy(&relayed_raw).contains(&sari), "Sari's address is never shown");
    // 4. Budi replies to it: appended, Sari notified.
    let r = reply(
        &budi,
        &w.desk_addr,
        &format!("Re: {}", relayed.subject),
        &n_id("2"),
        relayed.message_id.as_deref().unwrap(),
        "Terima kasih, kami tunggu.",
    );
    send(budi.clone(), r).await;
    let budi_reply = parsed(&wait_mailbox(&sari, "INBOX", 2).await[1]);
    assert!(budi_reply.text.contains("kami tunggu"), "{}", budi_reply.text);
    // 5. Sari resolves; Budi gets the resolution notice.
    let r = reply(
        &sari,
        &w.desk_addr,
        &format!("Re: {}", budi_reply.subject),
        &format!("{}-s2@desk.test", w.tag),
        budi_reply.message_id.as_deref().unwrap(),
        "#resolve Switch di ruang rapat sudah diganti.",
    );
    send(sari.clone(), r).await;
    let resolution = parsed(&wait_mailbox(&budi, "INBOX", 3).await[2]);
    assert!(
        resolution.text.contains("Switch di ruang rapat sudah diganti") && resolution.text.contains("Ya, sudah jelas"),
        "{}",
        resolution.text
    );
    wait_mailbox(&sari, "INBOX", 3).await; // her confirmation
    // 6. Budi confirms: closed, rating request.
    let r = reply(
        &budi,
        &w.desk_addr,
        &format!("Re: {}", resolution.subject),
        &n_id("3"),
        resolution.message_id.as_deref().unwrap(),
        "Ya, sudah jelas",
    );
    send(budi.clone(), r).await;
    let rating_request = parsed(&wait_mailbox(&budi, "INBOX", 4).await[3]);
    assert!(rating_request.text.contains("1 (sangat kurang)"), "{}", rating_request.text);
    // 7. Budi rates.
    let r = reply(
        &budi,
        &w.desk_addr,
        &format!("Re: {}", rating_request.subject),
        &n_id("4"),
        rating_request.message_id.as_deref().unwrap(),
        "5 terima kasih",
    );
    send(budi.clone(), r).await;
    let thanks = parsed(&wait_mailbox(&budi, "INBOX", 5).await[4]);
    assert!(thanks.text.contains("penilaian"), "{}", thanks.text);

    let store = w.store().await;
    let t = ticket(&store, &number).await;
    assert_eq!((t.status.as_str(), t.rating, t.rating_comment.as_deref()), ("closed", Some(5), Some("terima kasih")));
    assert_eq!(t.assignee.as_deref(), Some(sari.as_str()));
    let events: Vec<String> =
        store::ticket_events(store.pool(), t.id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            "created",
            "routed",
            "acknowledgement_queued",
            "command",
            "sent_to_requester",
            "message_received",
            "command",
            "sent_to_requester",
            "confirmed",
            "closed",
            "rated"
        ],
    );
    // Nothing else went to anyone: 5 mails to Budi, 2 to Agus, 3 to Sari.
    assert_eq!(
        (mailbox(&budi, "INBOX").await.len(), mailbox(&agus, "INBOX").await.len(), mailbox(&sari, "INBOX").await.len()),
        (5, 2, 3)
    );
    drop(daemon);
}

/// The desk's attachment policy (HERO: 2 MB, a list of types) is applied by content as well as by
/// name; refused attachments are listed in the acknowledgement, accepted ones are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_policy_is_applied_and_explained() {
    let w = World::new(
        "attach",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            desk_extra: "[desk.attachments]\nmax_bytes = 2097152\nallowed = [\"jpg\", \"jpeg\", \"png\", \"pdf\", \"doc\", \"docx\", \"xls\", \"xlsx\", \"ppt\", \"zip\", \"rar\"]\n".into(),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let part = |name: &str, ctype: &str, b64: &str| {
        format!(
            "--b\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        )
    };
    let raw = format!(
        "From: {from}\r\nTo: {desk}\r\nSubject: Website error\r\nMessage-ID: <{tag}-att@example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nTangkapan layar terlampir.\r\n{png}{exe}{fake}--b--\r\n",
        from = w.addr("budi"),
        desk = w.desk_addr,
        tag = w.tag,
        png = part(
            "layar.png",
            "image/png",
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        ),
        exe = part("setup.exe", "application/octet-stream", "TVqQAAMAAAAEAAAA"),
        fake = part("laporan.pdf", "application/pdf", "TVqQAAMAAAAEAAAA"),
    );
    let o = p.process("hero", raw.as_bytes(), T0).await.unwrap();
    let n = o.ticket.unwrap();
    let ack = outbound(&store, &n).await.into_iter().find(|(k, _, _, _)| k == "acknowledgement").unwrap().3;
    assert!(ack.contains("setup.exe: jenis berkas tidak diizinkan"), "{ack}");
    assert!(ack.contains("laporan.pdf: isi berkas tidak sesuai"), "{ack}");
    assert!(!ack.contains("layar.png"), "{ack}");
    let t = ticket(&store, &n).await;
    let msgs = store::ticket_messages(store.pool(), t.id).await.unwrap();
    assert_eq!(msgs[0].attachments.len(), 3, "every attachment is recorded with its verdict");
    let refused: Vec<(String, i64)> = sqlx::query_as("SELECT filename, accepted FROM attachments ORDER BY part_index")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(refused, vec![("layar.png".into(), 1), ("setup.exe".into(), 0), ("laporan.pdf".into(), 0)]);
}

/// Requester-facing text is Indonesian by default and English when the requester writes English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requesters_writing_english_get_english() {
    let (w, p, store) = world("lang").await;
    let en = open(
        &w,
        &p,
        &w.addr("john"),
        "Cannot log in",
        "Dear team, I cannot log in to the portal since this morning. Please help us.",
        T0,
    )
    .await;
    let id = open(
        &w,
        &p,
        &w.addr("budi"),
        "Tidak bisa login",
        "Mohon bantuan, saya tidak bisa login ke portal sejak pagi.",
        T0 + 1,
    )
    .await;
    let ack = |n: String| {
        let store = store.clone();
        async move { outbound(&store, &n).await.into_iter().find(|(k, _, _, _)| k == "acknowledgement").unwrap().3 }
    };
    assert!(ack(en.clone()).await.contains("Thank you for contacting"));
    assert!(ack(id).await.contains("Terima kasih telah menghubungi"));
    assert_eq!(ticket(&store, &en).await.language.as_str(), "en");
}

/// Acceptance 4 (loops): two desks whose automatic replies reach each other do not loop, and a
/// responder that answers everything without marking its mail automatic is cut off by the
/// per-sender limit after one notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_desks_do_not_loop() {
    let w = World::new("loop", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    // A second desk in the same installation, with its own inbox.
    let other_desk = format!("{}-servicedesk@other.test", w.tag);
    let text = std::fs::read_to_string(&w.config_path).unwrap()
        + &format!(
            "[[desk]]\nid = \"pusintek\"\nname = \"Pusintek\"\ncode = \"PSTK\"\ncatalogue = \"{}\"\n[[desk.inbox]]\nname = \"pusintek\"\naddress = \"{other_desk}\"\n",
            repo().join("seeds/pusintek.toml").display()
        );
    std::fs::write(&w.config_path, text).unwrap();
    let (p, store) = pipeline(&w).await;
    // Pusintek's desk writes to HERO (as a person would); HERO acknowledges to Pusintek's address.
    let first = mail(
        &other_desk,
        &w.desk_addr,
        "Koordinasi jaringan",
        &format!("{}-1@other.test", w.tag),
        "",
        "Mohon koordinasi gangguan jaringan.",
    );
    assert_eq!(p.process("hero", &first, T0).await.unwrap().action, Action::Created);
    // Deliver every outbound message to the inbox it is addressed to, until nothing moves.
    let mut delivered = 0;
    for round in 0..50 {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT o.id, o.recipients, o.message_row FROM outbox o WHERE o.status = 'pending' ORDER BY o.id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(round < 10, "mail keeps bouncing between the desks");
        for (id, to, row) in rows {
            let raw = loket::store::message_raw(&store, row).await.unwrap().unwrap();
            sqlx::query("UPDATE outbox SET status = 'sent' WHERE id = $1")
                .bind(id)
                .execute(store.pool())
                .await
                .unwrap();
            let inbox = if to.contains(&other_desk) { "pusintek" } else { "hero" };
            let o = p.process(inbox, &raw, T0 + round * 1000).await.unwrap();
            assert_ne!(o.action, Action::Created, "an acknowledgement opened a ticket at {inbox}: {o:?}");
            delivered += 1;
        }
    }
    assert_eq!(delivered, 1, "one acknowledgement, answered by nobody");

    // A careless auto-responder that answers every mail as if a person wrote it.
    let robot = w.addr("robot");
    let mut acks = 0;
    for i in 0..30 {
        let m = mail(
            &robot,
            &w.desk_addr,
            &format!("Re: balasan {i}"),
            &format!("{}-r{i}@example.test", w.tag),
            "",
            "Terima kasih, email Anda sudah kami terima.",
        );
        p.process("hero", &m, T0 + 100_000 + i).await.unwrap();
        acks =
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND peer_address = $1")
                .bind(&robot)
                .fetch_one(store.pool())
                .await
                .unwrap();
    }
    // Ten tickets (the flood limit) with ten acknowledgements; after that the robot's mail goes
    // on its latest open ticket without a word.
    assert_eq!(acks, 10, "10 acknowledgements, then silence");
}

/// Acceptance 4 (auto-replies): no auto-reply sample of the corpus gets an automatic reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_auto_replies_get_no_reply() {
    let w = World::new("oof", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    let (p, store) = pipeline(&w).await;
    let base = repo().join("tests/corpus");
    let mut files: Vec<std::path::PathBuf> =
        (1..=5).map(|i| base.join(format!("sisimai/bsd/rfc3834-0{i}.eml"))).collect();
    files.extend(
        std::fs::read_dir(base.join("discourse"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("auto_")),
    );
    files.push(base.join("zammad/mail/mail089.box"));
    files.push(base.join("zammad/mail/mail090.box"));
    let mut n = 0;
    for f in &files {
        let raw = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let o = p.process("hero", &raw, T0).await.unwrap();
        n += 1;
        let out: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE direction = 'out'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(out, 0, "{} got an automatic reply ({o:?})", f.display());
    }
    assert!(n >= 9, "{n} samples");
}

/// Acceptance 4 (bounces): no bounce of the sisimai set opens a ticket or gets an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_never_open_tickets() {
    let w = World::new("bounces", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    let (p, store) = pipeline(&w).await;
    let base = repo().join("tests/corpus/sisimai");
    let tsv = std::fs::read_to_string(base.join("expected.tsv")).unwrap();
    let mut files: Vec<String> = tsv.lines().skip(1).filter_map(|l| l.split('\t').next().map(String::from)).collect();
    files.sort();
    files.dedup();
    let (mut created, mut n) = (Vec::new(), 0);
    for f in &files {
        let raw = std::fs::read(base.join(f)).unwrap();
        let parsed = loket::mail::parse::parse(&raw);
        let is_bounce = parsed.as_ref().is_ok_and(|m| m.bounce.is_some());
        if !is_bounce {
            continue; // feedback reports, vacation notices: covered by bounces.rs
        }
        n += 1;
        let o = p.process("hero", &raw, T0).await.unwrap();
        if o.action == Action::Created {
            created.push(f.clone());
        }
    }
    assert!(n >= 550, "{n} bounces");
    assert!(created.is_empty(), "bounces opened tickets: {created:?}");
    let out: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE direction = 'out'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(out, 0, "no bounce is ever answered");
}
