//! Issue 16, the conversation's people: colleagues in CC (acceptance 2), requests an agent brings
//! for someone else (`#requester`, a forwarded mail) and `#merge` (acceptance 4). Each a story
//! against the daemon, Postfix and Dovecot, every mail checked in the mailbox it must reach.

use loket::store::{self, Store};

use crate::harness::*;

/// A reply to `parent` (a Message-ID) from `from`.
fn reply(from: &str, to: &str, subject: &str, id: &str, parent: &str, body: &str) -> Vec<u8> {
    mail(from, to, subject, id, &format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"), body)
}

/// The desk's receiving server, as these tests play it: its `Authentication-Results` vouch for
/// the agents' mail (`authentic`).
const TRUST_AGENT_MAIL: &str = "[desk.hygiene]\nauthserv_id = \"mx.desk.test\"\n";

/// The header the desk's server writes on a mail it found authentic for `from`'s domain.
fn authentic(from: &str) -> String {
    let domain = from.rsplit('@').next().unwrap_or_default();
    format!("Authentication-Results: mx.desk.test; dkim=pass header.d={domain}; dmarc=pass header.from={domain}\r\n")
}

async fn daemon_world(name: &str, desk_extra: &str) -> (World, Daemon) {
    let w = World::new(name, WorldOptions { agents: true, desk_extra: desk_extra.into(), ..Default::default() }).await;
    let daemon = w.serve();
    wait_for("the daemon to connect", || async { daemon.log_text().contains("IMAP connected").then_some(()) }).await;
    (w, daemon)
}

async fn send(w: &World, from: &str, raw: Vec<u8>) {
    smtp_send(from, &[&w.desk_addr], &raw).await;
}

async fn event_kinds(store: &Store, number: &str) -> Vec<String> {
    let t = ticket(store, number).await;
    store::ticket_events(store.pool(), t.id).await.unwrap().into_iter().map(|e| e.kind).collect()
}

/// Acceptance 2: with `same-domain`, the colleague in CC gets the agent's reply and the
/// resolution notice, the outsider in CC gets nothing; the colleague's "Ya, sudah jelas" does
/// not close the ticket (only the requester's does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_in_cc_gets_the_reply_and_the_resolution_and_an_outsider_does_not() {
    let _servers = MAIL_SERVERS.read().await;
    let (w, daemon) = daemon_world("cc", "participants = \"same-domain\"\n").await;
    let (budi, ani, agus) = (w.addr("budi"), w.addr("ani"), w.agent("agent1"));
    let outsider = format!("{}-luar@other.test", w.tag);
    let id = |i: &str| format!("{}-{i}@example.test", w.tag);
    let request = mail(
        &format!("Budi <{budi}>"),
        &w.desk_addr,
        "Internet di ruang rapat mati",
        &id("1"),
        &format!("Cc: Ani <{ani}>, {outsider}\r\n"),
        "Internet di ruang rapat lantai 3 mati sejak pagi, kabel LAN tidak konek.",
    );
    send(&w, &budi, request).await;
    let ack = parsed(&wait_mailbox(&budi, "INBOX", 1).await[0]);
    let number = loket::ticket::find_tags(&ack.subject)[0].to_string();
    let notif = parsed(&wait_mailbox(&agus, "INBOX", 1).await[0]);
    let answer = |body: &str, i: &str| {
        reply(
            &agus,
            &w.desk_addr,
            &format!("Re: {}", notif.subject),
            &format!("{}-{i}@desk.test", w.tag),
            notif.message_id.as_deref().unwrap(),
            body,
        )
    };

    // The agent's reply: to Budi, and a copy to Ani.
    send(&w, &agus, answer("Teknisi kami sedang menuju ruang rapat.", "a1")).await;
    let relayed = parsed(&wait_mailbox(&budi, "INBOX", 2).await[1]);
    assert!(relayed.text.contains("Teknisi kami sedang menuju"), "{}", relayed.text);
    let copy = parsed(&wait_mailbox(&ani, "INBOX", 1).await[0]);
    assert!(copy.subject.contains(&number), "{}", copy.subject);
    assert!(copy.text.contains("Teknisi kami sedang menuju") && copy.text.contains("salinan"), "{}", copy.text);
    assert_eq!(copy.from.as_ref().unwrap().address.as_str(), w.desk_addr);
    assert!(!String::from_utf8_lossy(&wait_mailbox(&ani, "INBOX", 1).await[0]).contains(&agus), "no agent address");

    // The resolution: to Budi, and a copy to Ani that says only Budi confirms.
    send(&w, &agus, answer("#resolve Switch di ruang rapat sudah diganti.", "a2")).await;
    let resolution = parsed(&wait_mailbox(&budi, "INBOX", 3).await[2]);
    assert!(resolution.text.contains("Switch di ruang rapat sudah diganti"), "{}", resolution.text);
    let copy = parsed(&wait_mailbox(&ani, "INBOX", 2).await[1]);
    assert!(copy.text.contains("Switch di ruang rapat sudah diganti"), "{}", copy.text);
    assert!(copy.text.contains("hanya dilakukan oleh pemohon"), "{}", copy.text);
    wait_mailbox(&agus, "INBOX", 2).await; // the confirmation of #resolve

    // Ani answers the copy "Ya, sudah jelas": the agents hear it, the ticket stays resolved.
    let yes = reply(
        &ani,
        &w.desk_addr,
        &format!("Re: {}", copy.subject),
        &id("ani-1"),
        copy.message_id.as_deref().unwrap(),
        "Ya, sudah jelas",
    );
    send(&w, &ani, yes).await;
    let heard = parsed(&wait_mailbox(&agus, "INBOX", 3).await[2]);
    assert!(heard.text.contains("Ya, sudah jelas") && heard.text.contains(&ani), "{}", heard.text);
    let store = w.store().await;
    assert_eq!(ticket(&store, &number).await.status.as_str(), "resolved", "a participant closed the ticket");

    // Budi's own "Ya, sudah jelas" closes it.
    let yes = reply(
        &budi,
        &w.desk_addr,
        &format!("Re: {}", resolution.subject),
        &id("2"),
        resolution.message_id.as_deref().unwrap(),
        "Ya, sudah jelas",
    );
    send(&w, &budi, yes).await;
    wait_mailbox(&budi, "INBOX", 4).await; // the rating request
    assert_eq!(ticket(&store, &number).await.status.as_str(), "closed");

    // The outsider in CC got nothing, and nothing was ever addressed to them.
    let to_outsider: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND peer_address = $1")
            .bind(&outsider)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(to_outsider, 0);
    assert!(mailbox(&outsider, "INBOX").await.is_empty(), "the outsider in CC got mail");
    // Ani got exactly the two copies; Budi the acknowledgement, reply, resolution, rating request.
    assert_eq!((mailbox(&ani, "INBOX").await.len(), mailbox(&budi, "INBOX").await.len()), (2, 4));
    let kinds = event_kinds(&store, &number).await;
    assert_eq!(kinds.iter().filter(|k| *k == "copied_to_participants").count(), 2, "{kinds:?}");
    drop(daemon);
}

/// Acceptance 4, on behalf: an agent mails the desk `#requester ADDRESS Name` for a walk-in; the
/// ticket belongs to that person, who gets the acknowledgement and answers as its requester.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_opens_a_ticket_for_a_walk_in_with_requester() {
    let _servers = MAIL_SERVERS.read().await;
    let (w, daemon) = daemon_world("behalf", TRUST_AGENT_MAIL).await;
    let (citra, agus) = (w.addr("citra"), w.agent("agent1"));
    let walk_in = mail(
        &agus,
        &w.desk_addr,
        "Internet di ruang arsip mati",
        &format!("{}-w1@desk.test", w.tag),
        &authentic(&agus),
        &format!("#requester {citra} Citra Dewi\n\nBu Citra datang ke meja layanan: internet di ruang arsip mati."),
    );
    send(&w, &agus, walk_in).await;
    let ack = parsed(&wait_mailbox(&citra, "INBOX", 1).await[0]);
    let number = loket::ticket::find_tags(&ack.subject)[0].to_string();
    assert!(ack.text.contains("Citra Dewi") && ack.text.contains(&number), "{}", ack.text);
    assert!(!ack.text.contains("#requester"), "{}", ack.text);
    let store = w.store().await;
    let t = ticket(&store, &number).await;
    assert_eq!((t.requester_address.as_str(), t.requester_name.as_deref()), (citra.as_str(), Some("Citra Dewi")));
    assert_eq!(t.subject, "Internet di ruang arsip mati");
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    let on_behalf = events.iter().find(|e| e.kind == "on_behalf").expect("an on_behalf event");
    assert_eq!((on_behalf.actor.as_str(), on_behalf.detail["via"].as_str()), (agus.as_str(), Some("command")));
    // The agents are notified of the new ticket with the request's words.
    let notif = parsed(&wait_mailbox(&agus, "INBOX", 1).await[0]);
    assert!(notif.text.contains("internet di ruang arsip mati"), "{}", notif.text);
    // Citra answers the acknowledgement: she is the requester.
    let answer = reply(
        &citra,
        &w.desk_addr,
        &format!("Re: {}", ack.subject),
        &format!("{}-c1@example.test", w.tag),
        ack.message_id.as_deref().unwrap(),
        "Terima kasih, saya tunggu di ruang arsip.",
    );
    send(&w, &citra, answer).await;
    let heard = parsed(&wait_mailbox(&agus, "INBOX", 2).await[1]);
    assert!(heard.subject.contains(&number) && heard.text.contains("saya tunggu"), "{}", heard.text);
    let kinds = event_kinds(&store, &number).await;
    assert!(kinds.iter().any(|k| k == "message_received"), "{kinds:?}");
    // Nothing went to the agent as a requester: only the notifications.
    assert_eq!(mailbox(&agus, "INBOX").await.len(), 2);
    drop(daemon);
}

/// Acceptance 4, a forward: an agent forwards a user's mail to the desk; the ticket opens for the
/// original sender (who gets the acknowledgement), the agent's note above the forward stays
/// with the agents as an internal note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_mail_opens_the_ticket_for_its_original_sender() {
    let _servers = MAIL_SERVERS.read().await;
    let (w, daemon) = daemon_world("forward", TRUST_AGENT_MAIL).await;
    let (dodi, agus) = (w.addr("dodi"), w.agent("agent1"));
    let body = format!(
        "Catatan internal: beliau juga menelepon pagi ini.\n\n---------- Forwarded message ---------\n\
         From: Dodi Pratama <{dodi}>\nDate: Mon, 5 Jan 2026 at 08:12\nSubject: Jaringan lantai 2 putus\n\
         To: Agus <{agus}>\n\nSelamat pagi, jaringan di lantai 2 putus sejak jam 8.\nTerima kasih."
    );
    let fwd = mail(
        &agus,
        &w.desk_addr,
        "Fwd: Jaringan lantai 2 putus",
        &format!("{}-f1@desk.test", w.tag),
        &authentic(&agus),
        &body,
    );
    send(&w, &agus, fwd).await;
    let ack = parsed(&wait_mailbox(&dodi, "INBOX", 1).await[0]);
    let number = loket::ticket::find_tags(&ack.subject)[0].to_string();
    assert!(ack.subject.contains("Jaringan lantai 2 putus") && !ack.subject.contains("Fwd"), "{}", ack.subject);
    assert!(!ack.text.contains("Catatan internal"), "the agent's note reached the requester: {}", ack.text);
    let store = w.store().await;
    let t = ticket(&store, &number).await;
    assert_eq!((t.requester_address.as_str(), t.requester_name.as_deref()), (dodi.as_str(), Some("Dodi Pratama")));
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    let note = events.iter().find(|e| e.kind == "note").expect("the forward note as an internal note");
    assert_eq!(note.detail["text"].as_str(), Some("Catatan internal: beliau juga menelepon pagi ini."));
    assert!(events.iter().any(|e| e.kind == "on_behalf" && e.detail["via"] == "forward"));
    let notif = parsed(&wait_mailbox(&agus, "INBOX", 1).await[0]);
    assert!(notif.text.contains("jaringan di lantai 2 putus"), "{}", notif.text);
    assert_eq!(mailbox(&dodi, "INBOX").await.len(), 1);
    drop(daemon);
}

/// Acceptance 4, merge: the requester wrote twice about one matter; the agent merges the second
/// ticket into the first: the second closes as merged, its messages move, the requester is told
/// once, and a later reply to the second number lands on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_moves_the_conversation_and_later_replies_follow() {
    let _servers = MAIL_SERVERS.read().await;
    let (w, daemon) = daemon_world("merge", "").await;
    let (budi, agus) = (w.addr("budi"), w.agent("agent1"));
    let id = |i: &str| format!("{}-{i}@example.test", w.tag);
    send(&w, &budi, mail(&budi, &w.desk_addr, "Internet lantai 2 putus", &id("1"), "", "Internet lantai 2 putus."))
        .await;
    let ack1 = parsed(&wait_mailbox(&budi, "INBOX", 1).await[0]);
    let first = loket::ticket::find_tags(&ack1.subject)[0].to_string();
    wait_mailbox(&agus, "INBOX", 1).await;
    let again = "Internet lantai 2 masih putus, mohon segera.";
    send(&w, &budi, mail(&budi, &w.desk_addr, "Internet masih putus", &id("2"), "", again)).await;
    let ack2 = parsed(&wait_mailbox(&budi, "INBOX", 2).await[1]);
    let second = loket::ticket::find_tags(&ack2.subject)[0].to_string();
    assert_ne!(first, second);
    let notif2 = parsed(
        &wait_mailbox(&agus, "INBOX", 2)
            .await
            .into_iter()
            .find(|m| parsed(m).subject.contains(&second))
            .expect("the notification of the second ticket"),
    );
    let merge = reply(
        &agus,
        &w.desk_addr,
        &format!("Re: {}", notif2.subject),
        &format!("{}-m1@desk.test", w.tag),
        notif2.message_id.as_deref().unwrap(),
        &format!("#merge {first}"),
    );
    send(&w, &agus, merge).await;
    let notice = parsed(&wait_mailbox(&budi, "INBOX", 3).await[2]);
    assert!(notice.subject.contains(&second) && notice.text.contains(&first), "{}\n{}", notice.subject, notice.text);
    let confirmation = parsed(&wait_mailbox(&agus, "INBOX", 3).await[2]);
    assert!(confirmation.text.contains(&format!("merged into {first}")), "{}", confirmation.text);

    let store = w.store().await;
    let (t1, t2) = (ticket(&store, &first).await, ticket(&store, &second).await);
    assert_eq!((t1.status.as_str(), t2.status.as_str()), ("new", "closed"));
    assert_eq!(t2.rating_requested_at, None, "a merged ticket asks for no rating");
    let moved = store::ticket_messages(store.pool(), t1.id).await.unwrap();
    assert!(moved.iter().any(|m| m.body_text.contains("masih putus, mohon segera")), "the conversation moved");
    assert!(store::ticket_messages(store.pool(), t2.id).await.unwrap().is_empty());
    let kinds2 = event_kinds(&store, &second).await;
    assert!(kinds2.iter().any(|k| k == "merged"), "{kinds2:?}");
    assert!(event_kinds(&store, &first).await.iter().any(|k| k == "merged_from"));

    // Budi answers the second ticket's acknowledgement: it lands on the first.
    let late = reply(
        &budi,
        &w.desk_addr,
        &format!("Re: {}", ack2.subject),
        &id("3"),
        ack2.message_id.as_deref().unwrap(),
        "Sekarang lantai 3 juga putus.",
    );
    send(&w, &budi, late).await;
    let heard = parsed(&wait_mailbox(&agus, "INBOX", 4).await[3]);
    assert!(heard.subject.contains(&first) && heard.text.contains("lantai 3 juga putus"), "{}", heard.subject);
    let kinds1 = event_kinds(&store, &first).await;
    assert!(kinds1.iter().any(|k| k == "message_received"), "{kinds1:?}");
    // Told once: the merge notice is the only mail about it.
    let notices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND kind = 'merged'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(notices, 1);
    assert_eq!(mailbox(&budi, "INBOX").await.len(), 3);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_chain_to_the_last_survivor_on_sqlite() {
    merges_chain_to_the_last_survivor(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_chain_to_the_last_survivor_on_postgres() {
    merges_chain_to_the_last_survivor(true).await;
}

/// Merges chain without hops: the third ticket merged into the second, then the second into the
/// first: a reply to the third's number lands on the first, and so does the agent's reply to the
/// third's old notification. In process, on SQLite or PostgreSQL.
async fn merges_chain_to_the_last_survivor(pg: bool) {
    use loket::pipeline::Action;
    const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
    const MIN: i64 = 60_000;
    let opts = WorldOptions { imap: false, outbound_smtp: false, agents: true, pg, ..Default::default() };
    let w = World::new("chain", opts).await;
    let (p, store) = pipeline(&w).await;
    let (budi, agus) = (w.addr("budi"), w.agent("agent1"));
    let mut numbers = Vec::new();
    for (i, subject) in ["Internet lantai 2 putus", "Internet masih putus", "Internet belum juga"].iter().enumerate() {
        let raw = mail(&budi, &w.desk_addr, subject, &format!("{}-n{i}@example.test", w.tag), "", "Internet putus.");
        let o = p.process("hero", &raw, T0 + i as i64 * MIN).await.unwrap();
        assert_eq!(o.action, Action::Created, "{o:?}");
        numbers.push(o.ticket.unwrap().to_string());
    }
    let merge = |from: usize, into: usize, at: i64| {
        let (p, store, w, agus, numbers) = (p.clone(), store.clone(), &w, agus.clone(), numbers.clone());
        async move {
            let notif = outbound(&store, &numbers[from])
                .await
                .into_iter()
                .rev()
                .find(|(k, to, id, _)| {
                    // Merged tickets' notifications moved here too: the one for this number.
                    let tokens = loket::ticket::token::tokens_in(std::slice::from_ref(id));
                    k == "agent_notification" && *to == agus && tokens.iter().any(|(n, _)| *n == numbers[from])
                })
                .expect("a notification")
                .2;
            let raw = reply(
                &agus,
                &w.desk_addr,
                &format!("Re: [#{}]", numbers[from]),
                &format!("{}-m{from}@desk.test", w.tag),
                &notif,
                &format!("#merge {}", numbers[into]),
            );
            let o = p.process("hero", &raw, at).await.unwrap();
            assert_eq!((o.action, o.reason), (Action::Appended, None));
        }
    };
    merge(2, 1, T0 + 10 * MIN).await;
    merge(1, 0, T0 + 11 * MIN).await;
    let hops: Vec<(i64, i64)> = sqlx::query_as("SELECT ticket_id, into_id FROM ticket_merges ORDER BY ticket_id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let first = ticket(&store, &numbers[0]).await.id;
    assert!(hops.iter().all(|(_, into)| *into == first), "one hop to the survivor: {hops:?}");
    assert_eq!(hops.len(), 2);
    // A reply to the third number, by its tag alone, lands on the first.
    let raw = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{}]", numbers[2]),
        &format!("{}-r1@example.test", w.tag),
        "",
        "Ada kabar?",
    );
    let o = p.process("hero", &raw, T0 + 20 * MIN).await.unwrap();
    assert_eq!((o.action, o.ticket.as_deref()), (Action::Appended, Some(numbers[0].as_str())), "{o:?}");
    // Every message of the three tickets is on the first now; two merge notices, one per merge.
    for n in &numbers[1..] {
        let t = ticket(&store, n).await;
        assert_eq!(t.status.as_str(), "closed");
        assert!(store::ticket_messages(store.pool(), t.id).await.unwrap().is_empty(), "{n} kept messages");
    }
    // The agent answers the third ticket's old notification: the token still counts, on the first.
    let old = outbound(&store, &numbers[0])
        .await
        .into_iter()
        .find(|(k, to, id, _)| {
            let tokens = loket::ticket::token::tokens_in(std::slice::from_ref(id));
            k == "agent_notification" && *to == agus && tokens.iter().any(|(n, _)| *n == numbers[2])
        })
        .expect("the third ticket's notification")
        .2;
    let raw = reply(
        &agus,
        &w.desk_addr,
        &format!("Re: [#{}]", numbers[2]),
        &format!("{}-late@desk.test", w.tag),
        &old,
        "#priority P2",
    );
    let o = p.process("hero", &raw, T0 + 30 * MIN).await.unwrap();
    assert_eq!((o.action, o.ticket.as_deref(), o.reason), (Action::Appended, Some(numbers[0].as_str()), None));
    assert_eq!(ticket(&store, &numbers[0]).await.priority.map(|p| p.as_str()), Some("P2"));
    // Another agent's token for a merged number does not count: only the agent's own.
    let sari = w.agent("agent2");
    let raw = reply(
        &sari,
        &w.desk_addr,
        &format!("Re: [#{}]", numbers[2]),
        &format!("{}-sari@desk.test", w.tag),
        &old,
        "#priority P1",
    );
    let o = p.process("hero", &raw, T0 + 31 * MIN).await.unwrap();
    assert!(o.reason.as_deref().is_some_and(|r| r.contains("no valid ticket token")), "{o:?}");
    assert_eq!(ticket(&store, &numbers[0]).await.priority.map(|p| p.as_str()), Some("P2"));
    let merged: Vec<_> = outbound(&store, &numbers[0]).await.into_iter().filter(|(k, ..)| k == "merged").collect();
    assert_eq!(merged.len(), 2, "{merged:?}");
    assert!(merged.iter().all(|(_, to, ..)| *to == budi));
}

/// A mail forwarded as an attachment (`message/rfc822`) opens the ticket for the attached mail's
/// sender, like an inline forward. In process on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_forwarded_as_an_attachment_opens_the_ticket_for_its_sender() {
    use loket::pipeline::Action;
    let w = World::new(
        "fwdatt",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            agents: true,
            desk_extra: TRUST_AGENT_MAIL.into(),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let (fitri, agus) = (w.addr("fitri"), w.agent("agent1"));
    let raw = format!(
        "From: Agus <{agus}>\r\nTo: {desk}\r\nSubject: FW: Printer lantai 4 macet\r\nMessage-ID: <{tag}-fa@desk.test>\r\n{ar}\
         Date: Mon, 5 Jan 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMohon dibantu, terlampir emailnya.\r\n\
         --b\r\nContent-Type: message/rfc822\r\n\r\n\
         From: Fitri Handayani <{fitri}>\r\nTo: {agus}\r\nSubject: Printer lantai 4 macet\r\n\
         Message-ID: <{tag}-orig@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Printer di lantai 4 macet sejak pagi.\r\n--b--\r\n",
        desk = w.desk_addr,
        tag = w.tag,
        ar = authentic(&agus),
    );
    let o = p.process("hero", raw.as_bytes(), 1_767_578_400_000).await.unwrap();
    assert_eq!(o.action, Action::Created, "{o:?}");
    let number = o.ticket.unwrap().to_string();
    let t = ticket(&store, &number).await;
    assert_eq!((t.requester_address.as_str(), t.requester_name.as_deref()), (fitri.as_str(), Some("Fitri Handayani")));
    assert_eq!(t.subject, "Printer lantai 4 macet");
    let out = outbound(&store, &number).await;
    assert!(out.iter().any(|(k, to, _, _)| k == "acknowledgement" && *to == fitri), "{out:?}");
    assert!(!out.iter().any(|(k, to, _, _)| k == "acknowledgement" && *to == agus), "{out:?}");
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    let note = events.iter().find(|e| e.kind == "note").expect("the agent's words as a note");
    assert_eq!(note.detail["text"].as_str(), Some("Mohon dibantu, terlampir emailnya."));
}

/// The attacker's view of on-behalf openings: anyone can write an agent's address in `From`.
/// Only mail the desk's own receiving server found authentic for the agent's domain opens a
/// ticket for someone else, and one agent opens at most `behalf_tickets_per_agent_per_hour` of
/// them; anything else opens the agent's own ticket (nothing lost), acknowledges no stranger,
/// and tells the agent why. In process on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_agent_address_makes_the_desk_acknowledge_no_stranger() {
    use loket::pipeline::Action;
    let world = |name: &'static str, desk_extra: &'static str| {
        World::new(
            name,
            WorldOptions {
                imap: false,
                outbound_smtp: false,
                agents: true,
                desk_extra: desk_extra.into(),
                extra: "[limits]\nbehalf_tickets_per_agent_per_hour = 2\n".into(),
                ..Default::default()
            },
        )
    };
    let at = 1_767_578_400_000;
    let walk_in = |w: &World, i: usize, ar: &str| {
        let victim = w.addr(&format!("korban{i}"));
        let raw = mail(
            &w.agent("agent1"),
            &w.desk_addr,
            "Reset sandi",
            &format!("{}-forged{i}@desk.test", w.tag),
            ar,
            &format!("#requester {victim} Korban\n\nMohon reset sandi email saya."),
        );
        (victim, raw)
    };
    // Refused: (the desk's setting, the header on the mail, what the reason names).
    let w = world("forged", TRUST_AGENT_MAIL).await;
    let agus = w.agent("agent1");
    let cases = [
        ("no header", String::new(), "did not find this mail authentic"),
        ("another server", authentic(&agus).replace("mx.desk.test", "mx.attacker.test"), "did not find"),
        (
            "a pass for the attacker's domain",
            "Authentication-Results: mx.desk.test; dmarc=pass header.from=attacker.test\r\n".into(),
            "did not find",
        ),
        (
            "a failed DMARC check",
            "Authentication-Results: mx.desk.test; dkim=none; dmarc=fail header.from=desk.test\r\n".into(),
            "did not find",
        ),
    ];
    let (p, store) = pipeline(&w).await;
    for (i, (case, ar, why)) in cases.iter().enumerate() {
        let (victim, raw) = walk_in(&w, i, ar);
        let o = p.process("hero", &raw, at + i as i64).await.unwrap();
        assert_eq!(o.action, Action::Created, "{case}: {o:?}");
        assert!(o.reason.as_deref().unwrap_or_default().contains(why), "{case}: {o:?}");
        let number = o.ticket.unwrap().to_string();
        let t = ticket(&store, &number).await;
        assert_eq!(t.requester_address.as_str(), agus, "{case}: the ticket is the agent's own");
        let out = outbound(&store, &number).await;
        assert!(!out.iter().any(|(_, to, _, _)| to.contains(&victim)), "{case}: the stranger got mail: {out:?}");
        assert!(out.iter().any(|(k, to, _, _)| k == "agent_refused" && *to == agus), "{case}: {out:?}");
        let events = store::ticket_events(store.pool(), t.id).await.unwrap();
        assert!(events.iter().any(|e| e.kind == "on_behalf_refused"), "{case}");
        assert!(!events.iter().any(|e| e.kind == "on_behalf"), "{case}");
    }
    // Authentic mail opens for others, up to the agent's hourly limit (2 here); the third is the
    // agent's own, and an hour later the limit has room again.
    for (i, at) in [(10, at), (11, at + 1), (12, at + 2), (13, at + 3_600_001)] {
        let (victim, raw) = walk_in(&w, i, &authentic(&agus));
        let o = p.process("hero", &raw, at).await.unwrap();
        let t = ticket(&store, &o.ticket.clone().unwrap().to_string()).await;
        let for_victim = i != 12;
        assert_eq!(t.requester_address.as_str() == victim, for_victim, "walk-in {i}: {o:?}");
        if !for_victim {
            assert!(o.reason.as_deref().unwrap_or_default().contains("the limit is 2"), "{o:?}");
        }
    }
    // The same in one batch (an intake round under load), whose events wait until its commit:
    // the count of openings still sees the ones before it in the batch.
    let later = at + 3 * 3_600_000;
    let walk_ins: Vec<(String, Vec<u8>)> = (20..23).map(|i| walk_in(&w, i, &authentic(&agus))).collect();
    let batch: Vec<loket::pipeline::Incoming<'_>> =
        walk_ins.iter().map(|(_, raw)| loket::pipeline::Incoming { raw, now: later }).collect();
    let outcomes = p.process_batch("hero", &batch).await;
    for ((victim, _), o) in walk_ins.iter().zip(outcomes) {
        let o = o.unwrap();
        let t = ticket(&store, &o.ticket.clone().unwrap().to_string()).await;
        let for_victim = victim != &walk_ins[2].0;
        assert_eq!(t.requester_address.as_str() == victim, for_victim, "batched walk-in for {victim}: {o:?}");
    }

    // A desk that names no receiving server believes no header at all.
    let w = world("noauthserv", "").await;
    let (p, store) = pipeline(&w).await;
    let (victim, raw) = walk_in(&w, 0, &authentic(&w.agent("agent1")));
    let o = p.process("hero", &raw, at).await.unwrap();
    assert!(o.reason.as_deref().unwrap_or_default().contains("hygiene.authserv_id"), "{o:?}");
    let t = ticket(&store, &o.ticket.clone().unwrap().to_string()).await;
    assert_ne!(t.requester_address.as_str(), victim);
}
