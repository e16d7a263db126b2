//! Who may act on a ticket (issue "Trust"): a stranger with a ticket number, a requester forging
//! an agent's address with leaked thread ids, a reply that once stalled an inbox, a flood from
//! one sender. In process on SQLite with injected time, except the inbox tests, which run the
//! daemon against its Maildir and against Dovecot.

use loket::pipeline::{Action, Pipeline};
use loket::store::Store;
use loket::ticket::token::bears_token;
use proptest::prelude::*;
use sqlx::Row;

use crate::harness::*;
use crate::poison::poison;

const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
const MIN: i64 = 60_000;

async fn world(name: &str) -> World {
    World::new(name, WorldOptions { imap: false, outbound_smtp: false, agents: true, ..Default::default() }).await
}

/// Every outbound mail of the desk: (kind, recipient, raw bytes).
async fn sent(store: &Store) -> Vec<(String, String, String)> {
    let rows = sqlx::query(
        "SELECT id, kind, peer_address FROM messages WHERE direction = 'out' AND channel = 'email' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut out = Vec::new();
    for r in rows {
        let raw = loket::store::message_raw(store, r.try_get("id").unwrap()).await.unwrap().unwrap();
        out.push((
            r.try_get("kind").unwrap(),
            r.try_get("peer_address").unwrap(),
            String::from_utf8_lossy(&raw).into_owned(),
        ));
    }
    out
}

/// The Message-IDs named anywhere in a raw mail (headers and body).
fn ids_in(raw: &str) -> Vec<String> {
    let re = regex::Regex::new(r"<([^<>@\s]+@[^<>\s]+)>").unwrap();
    re.captures_iter(raw).map(|c| c[1].to_string()).collect()
}

async fn new_ticket(p: &Pipeline, w: &World, who: &str, id: &str, subject: &str, body: &str, at: i64) -> String {
    let raw = mail(&w.addr(who), &w.desk_addr, subject, &format!("{id}@example.test"), "", body);
    p.process("hero", &raw, at).await.unwrap().ticket.expect("a ticket").to_string()
}

/// The agent's notification for ticket `n` (its signed Message-ID).
async fn notification(store: &Store, n: &str, agent: &str) -> String {
    outbound(store, n)
        .await
        .into_iter()
        .rev()
        .find(|(k, to, _, _)| k == "agent_notification" && to == agent)
        .unwrap_or_else(|| panic!("{agent} was notified about {n}"))
        .2
}

#[allow(clippy::too_many_arguments)]
async fn agent_reply(p: &Pipeline, w: &World, n: &str, agent: &str, parent: &str, id: &str, body: &str, at: i64) {
    let raw = mail(
        agent,
        &w.desk_addr,
        &format!("Re: [#{n}] Tiket baru"),
        &format!("{id}@desk.test"),
        &format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"),
        body,
    );
    let o = p.process("hero", &raw, at).await.unwrap();
    assert_eq!(o.action, Action::Appended, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_stay_with_their_agent_and_forged_commands_with_leaked_ids_change_nothing() {
    let w = world("tokens").await;
    let (p, store) = pipeline(&w).await;
    let (budi, a1, a2) = (w.addr("budi"), w.agent("agent1"), w.agent("agent2"));
    let n =
        new_ticket(&p, &w, "budi", "tok-1", "Printer rusak", "Printer di ruang rapat tidak bisa mencetak.", T0).await;
    // Agent 1 answers, then hands the ticket to agent 2, who answers too: the thread now holds
    // both agents' signed ids.
    let n1 = notification(&store, &n, &a1).await;
    agent_reply(&p, &w, &n, &a1, &n1, "tok-a1", "Baik, kami cek.", T0 + MIN).await;
    agent_reply(&p, &w, &n, &a1, &n1, "tok-a1b", "#assign Sari\nMohon dibantu.", T0 + 2 * MIN).await;
    let n2 = notification(&store, &n, &a2).await;
    agent_reply(&p, &w, &n, &a2, &n2, "tok-a2", "Sudah kami ganti tonernya.", T0 + 3 * MIN).await;
    let budi_reply = mail(
        &budi,
        &w.desk_addr,
        &format!("Re: [#{n}] Printer rusak"),
        "tok-b2@example.test",
        "",
        "Terima kasih, saya coba dulu.",
    );
    p.process("hero", &budi_reply, T0 + 4 * MIN).await.unwrap();

    let signer = w.config().signer.expect("a signer");
    let all = sent(&store).await;
    assert!(all.iter().filter(|(_, to, _)| *to == budi).count() >= 3, "the requester got mail: {all:?}");
    for (kind, to, raw) in &all {
        let tokens = loket::ticket::token::tokens_in(&ids_in(raw));
        if *to == budi {
            assert!(tokens.is_empty(), "{kind} to the requester carries a token-bearing id:\n{raw}");
        } else {
            for (number, token) in tokens {
                assert!(
                    signer.verify("hero", &number, to, &token),
                    "{kind} to {to} carries another agent's token:\n{raw}"
                );
            }
        }
    }
    // Everything the requester was ever sent, copied into a mail forged from agent 1's address.
    let leaked: Vec<String> = all.iter().filter(|(_, to, _)| *to == budi).flat_map(|(_, _, r)| ids_in(r)).collect();
    assert!(leaked.iter().all(|id| !bears_token(id)));
    let before = ticket(&store, &n).await;
    let forged = mail(
        &a1,
        &w.desk_addr,
        &format!("Re: [#{n}] Printer rusak"),
        "tok-forged@example.test",
        &format!("References: {}\r\n", leaked.iter().map(|i| format!("<{i}>")).collect::<Vec<_>>().join(" ")),
        "#priority P1\n#assign Agus\n#close",
    );
    p.process("hero", &forged, T0 + 5 * MIN).await.unwrap();
    let after = ticket(&store, &n).await;
    assert_eq!(
        (&after.status, &after.priority, &after.assignee),
        (&before.status, &before.priority, &before.assignee),
        "a forged command changed the ticket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_write_reopen_confirm_or_rate_another_ticket_and_gets_one_of_their_own() {
    let w = world("stranger").await;
    let (p, store) = pipeline(&w).await;
    let (budi, a1, eve) = (w.addr("budi"), w.agent("agent1"), w.addr("eve"));
    let n = new_ticket(&p, &w, "budi", "str-1", "Akun SIMPEG terkunci", "Akun SIMPEG saya terkunci.", T0).await;
    let ack_id: String = outbound(&store, &n).await.into_iter().find(|(k, ..)| k == "acknowledgement").unwrap().2;
    let n1 = notification(&store, &n, &a1).await;
    agent_reply(&p, &w, &n, &a1, &n1, "str-a1", "#resolve Akun sudah kami buka kembali.", T0 + MIN).await;
    let resolved = ticket(&store, &n).await;
    assert_eq!(resolved.status.as_str(), "resolved");
    let to_budi = |v: &Vec<(String, String, String)>| v.iter().filter(|(_, to, _)| *to == budi).count();
    let budi_mail_before = to_budi(&sent(&store).await);

    // By tag, by the requester's thread, with a link-shaped file name: each opens eve's own ticket.
    let attempts = [
        ("Belum", format!("Re: [#{n}] Akun SIMPEG terkunci"), String::new()),
        ("Ya, sudah jelas", "Re: Akun SIMPEG terkunci".into(), format!("In-Reply-To: <{ack_id}>\r\n")),
        ("1 buruk sekali", format!("[#{n}]"), String::new()),
    ];
    let mut own = Vec::new();
    for (i, (body, subject, headers)) in attempts.iter().enumerate() {
        let raw = mail(&eve, &w.desk_addr, subject, &format!("str-e{i}@example.test"), headers, body);
        let o = p.process("hero", &raw, T0 + (2 + i as i64) * MIN).await.unwrap();
        assert_eq!(o.action, Action::Created, "{o:?}");
        let mine = o.ticket.unwrap();
        assert_ne!(mine.as_str(), n);
        own.push(mine);
    }
    let after = ticket(&store, &n).await;
    assert_eq!((after.status.as_str(), after.rating), ("resolved", None), "a stranger changed the ticket");
    assert_eq!(to_budi(&sent(&store).await), budi_mail_before, "a stranger's words reached the requester");
    let msgs = loket::store::ticket_messages(store.pool(), after.id).await.unwrap();
    assert!(msgs.iter().all(|m| m.from_address.as_deref() != Some(eve.as_str())), "appended to another's ticket");
    let events = loket::store::ticket_events(store.pool(), after.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "mentioned_by_other").count(), 3, "agents see the link");

    // What eve received says nothing of budi's ticket: not its subject, status or people.
    for mine in &own {
        let t = ticket(&store, mine).await;
        assert_eq!(t.requester_address.as_str(), eve);
        assert_eq!(t.linked_ticket_id, Some(after.id));
        for (kind, to, _, body) in outbound(&store, mine).await {
            if to == eve {
                for secret in ["SIMPEG", "terkunci", "resolved", "selesai", &budi, "budi"] {
                    assert!(!body.contains(secret), "{kind} to the stranger reveals `{secret}`:\n{body}");
                }
                assert!(!body.contains(&format!("melanjutkan tiket sebelumnya #{n}")), "{body}");
            } else {
                assert!(body.contains(&n), "the agents' notification links {n}: {body}");
            }
        }
    }
    // The real requester still confirms and rates.
    let yes = mail(&budi, &w.desk_addr, &format!("Re: [#{n}]"), "str-b1@example.test", "", "Ya, sudah jelas");
    p.process("hero", &yes, T0 + 10 * MIN).await.unwrap();
    let rate = mail(&budi, &w.desk_addr, &format!("Re: [#{n}]"), "str-b2@example.test", "", "5");
    p.process("hero", &rate, T0 + 11 * MIN).await.unwrap();
    let done = ticket(&store, &n).await;
    assert_eq!((done.status.as_str(), done.rating), ("closed", Some(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_in_cc_may_write_but_never_changes_status() {
    let w = world("cc").await;
    let (p, store) = pipeline(&w).await;
    let (budi, boss, a1) = (w.addr("budi"), w.addr("atasan"), w.agent("agent1"));
    let raw = mail(
        &budi,
        &w.desk_addr,
        "VPN tidak tersambung",
        "cc-1@example.test",
        &format!("Cc: {boss}\r\n"),
        "VPN gagal.",
    );
    let n = p.process("hero", &raw, T0).await.unwrap().ticket.unwrap();
    let n1 = notification(&store, &n, &a1).await;
    agent_reply(&p, &w, &n, &a1, &n1, "cc-a1", "#resolve Sudah normal.", T0 + MIN).await;
    let note =
        mail(&boss, &w.desk_addr, &format!("Re: [#{n}]"), "cc-2@example.test", "", "Belum, masih gagal di kantor.");
    let o = p.process("hero", &note, T0 + 2 * MIN).await.unwrap();
    assert_eq!((o.action, o.ticket.as_deref()), (Action::Appended, Some(n.as_str())), "{o:?}");
    assert_eq!(ticket(&store, &n).await.status.as_str(), "resolved", "a participant reopened the ticket");
    let told = outbound(&store, &n).await;
    assert!(told.iter().any(|(k, to, _, b)| k == "agent_notification" && *to == a1 && b.contains(&boss)), "{told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_assign_on_a_long_thread_is_processed_once_and_the_next_mail_flows() {
    let w = world("dblassign").await;
    let (p, store) = pipeline(&w).await;
    let a1 = w.agent("agent1");
    let n = new_ticket(&p, &w, "budi", "dbl-1", "Email tidak masuk", "Email kantor tidak masuk.", T0).await;
    for i in 0..6 {
        let r = mail(
            &w.addr("budi"),
            &w.desk_addr,
            &format!("Re: [#{n}]"),
            &format!("dbl-b{i}@example.test"),
            "",
            "Tambahan info.",
        );
        p.process("hero", &r, T0 + i * MIN).await.unwrap();
    }
    let n1 = notification(&store, &n, &a1).await;
    agent_reply(&p, &w, &n, &a1, &n1, "dbl-a1", "#assign Sari\n#assign Sari\nMohon dicek.", T0 + 10 * MIN).await;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM messages WHERE direction = 'out' AND message_id IS NOT NULL")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(ids.len() > 10, "{ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "outbound Message-IDs repeat: {ids:?}");
    let next = new_ticket(&p, &w, "citra", "dbl-2", "Monitor mati", "Monitor mati total.", T0 + 11 * MIN).await;
    assert_ne!(next, n);
}

/// A message whose processing fails for good (a trigger refuses it) is quarantined with its
/// reason, and the mail behind it flows: through the daemon's Maildir source and through IMAP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_processed_never_stalls_the_maildir() {
    let w =
        World::new("stallmd", WorldOptions { imap: false, maildir: true, outbound_smtp: false, ..Default::default() })
            .await;
    let store = w.store().await;
    poison(&store).await;
    let new = w.dir.path().join("maildir/new");
    std::fs::create_dir_all(&new).unwrap();
    for (i, subject) in ["Satu", "POISON di sini", "Tiga"].iter().enumerate() {
        let raw = mail(&w.addr("budi"), &w.desk_addr, subject, &format!("{}-md{i}@example.test", w.tag), "", "Isi.");
        std::fs::write(new.join(format!("100{i}.m{i}.host")), raw).unwrap();
    }
    let mut d = w.serve();
    wait_for("two tickets and one quarantined message", || async {
        let t: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.pool()).await.unwrap();
        let q = loket::store::list_quarantine(store.pool(), 10).await.unwrap();
        (t == 2 && q.len() == 1).then_some(q)
    })
    .await
    .iter()
    .for_each(|q| assert!(q.reason.contains("poisoned for the test"), "{}", q.reason));
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0, "every file left new/");
    d.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_processed_never_stalls_the_imap_inbox() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new("stallimap", WorldOptions { outbound_smtp: false, ..Default::default() }).await;
    let store = w.store().await;
    poison(&store).await;
    for (i, subject) in ["Satu", "POISON di sini", "Tiga"].iter().enumerate() {
        let raw = mail(&w.addr("budi"), &w.desk_addr, subject, &format!("{}-im{i}@example.test", w.tag), "", "Isi.");
        dovecot_save(&w.desk_addr, &raw);
    }
    let mut d = w.serve();
    let q = wait_for("two tickets and one quarantined message", || async {
        let t: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.pool()).await.unwrap();
        let q = loket::store::list_quarantine(store.pool(), 10).await.unwrap();
        (t == 2 && q.len() == 1).then_some(q)
    })
    .await;
    assert!(q[0].reason.contains("poisoned for the test"), "{}", q[0].reason);
    wait_for("all three moved to Processed", || async {
        (mailbox(&w.desk_addr, "Processed").await.len() == 3).then_some(())
    })
    .await;
    d.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_sender_is_bounded_and_loses_nothing() {
    let w = world("flood").await;
    let (p, store) = pipeline(&w).await;
    let cfg = w.config();
    let (tickets_limit, notes_limit) =
        (cfg.limits.new_tickets_per_sender_per_hour as i64, cfg.limits.agent_notifications_per_sender_per_hour as i64);
    let spam = w.addr("spam");
    for i in 0..300 {
        let raw = mail(
            &spam,
            &w.desk_addr,
            &format!("Tolong {i}"),
            &format!("fl-{i}@example.test"),
            "",
            "Aplikasi error lagi.",
        );
        let o = p.process("hero", &raw, T0 + i * 100).await.unwrap();
        assert!(matches!(o.action, Action::Created | Action::Appended), "{o:?}");
    }
    let n = |sql: &str| {
        let sql = sql.to_string();
        let store = store.clone();
        let spam = spam.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(spam).fetch_one(store.pool()).await.unwrap()
        }
    };
    assert_eq!(n("SELECT COUNT(*) FROM messages WHERE direction = 'in' AND peer_address = $1").await, 300, "lost mail");
    assert_eq!(n("SELECT COUNT(*) FROM tickets WHERE requester_address = $1").await, tickets_limit);
    let to_agents: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE direction = 'out' AND kind IN ('agent_notification', 'agent_flood')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    // One layer-1 agent: at most one notification per allowed message and one digest.
    assert!(to_agents <= notes_limit + 1, "{to_agents} agent mails for one sender");
    let digests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'agent_flood'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(digests, 1, "the agents hear of the flood once");
    assert_eq!(p.metrics().floods().get(&("hero".into(), "digest_sent".into())), Some(&1));

    // The same sender an hour later is an ordinary requester again.
    let later = mail(&spam, &w.desk_addr, "Pertanyaan baru", "fl-later@example.test", "", "Satu pertanyaan.");
    assert_eq!(p.process("hero", &later, T0 + 2 * 3_600_000).await.unwrap().action, Action::Created);
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Requester,
    Agent,
    Stranger,
}

#[derive(Debug, Clone, Copy)]
enum What {
    Confirm,
    Reopen,
    Rate,
    Resolve,
    Close,
    Words,
}

fn step() -> impl Strategy<Value = (Who, What)> {
    let who = prop_oneof![Just(Who::Requester), Just(Who::Agent), Just(Who::Stranger)];
    let what = prop_oneof![
        Just(What::Confirm),
        Just(What::Reopen),
        Just(What::Rate),
        Just(What::Resolve),
        Just(What::Close),
        Just(What::Words)
    ];
    (who, what)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// For any sequence of mails from the requester, an agent and a stranger, the ticket's status
    /// and rating change only on the requester's or the agent's messages.
    #[test]
    fn only_the_requester_and_the_agents_change_status_and_rating(steps in prop::collection::vec(step(), 1..12)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let w = world("prop").await;
            let (p, store) = pipeline(&w).await;
            let a1 = w.agent("agent1");
            let n = new_ticket(&p, &w, "budi", "prop-0", "Laptop lambat", "Laptop saya lambat sekali.", T0).await;
            let token_id = notification(&store, &n, &a1).await;
            for (i, (who, what)) in steps.iter().enumerate() {
                let body = match (what, who) {
                    (What::Confirm, _) => "Ya, sudah jelas",
                    (What::Reopen, _) => "Belum, masih lambat",
                    (What::Rate, _) => "2",
                    (What::Resolve, _) => "#resolve Sudah kami bersihkan.",
                    (What::Close, _) => "#close",
                    (What::Words, _) => "Ada kabar?",
                };
                let at = T0 + (i as i64 + 1) * MIN;
                let id = format!("prop-{}-{i}@example.test", w.tag);
                let raw = match who {
                    Who::Requester => mail(&w.addr("budi"), &w.desk_addr, &format!("Re: [#{n}]"), &id, "", body),
                    Who::Stranger => mail(&w.addr("eve"), &w.desk_addr, &format!("Re: [#{n}]"), &id, "", body),
                    Who::Agent => mail(&a1, &w.desk_addr, &format!("Re: [#{n}]"), &id,
                        &format!("In-Reply-To: <{token_id}>\r\n"), body),
                };
                let before = ticket(&store, &n).await;
                p.process("hero", &raw, at).await.unwrap();
                let after = ticket(&store, &n).await;
                if matches!(who, Who::Stranger) {
                    assert_eq!((&before.status, before.rating), (&after.status, after.rating), "step {i}: {steps:?}");
                }
            }
        });
    }
}

/// Answers to a resolution notice: thanks close, contrast reopens, an unclear answer is kept and
/// asked again with the two exact words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_a_resolution_notice_are_read_and_never_guessed() {
    let w = world("answers").await;
    let (p, store) = pipeline(&w).await;
    let a1 = w.agent("agent1");
    let cases = [
        ("Baik, terima kasih", "closed"),
        ("Terima kasih, tetapi saya belum bisa login", "open"),
        ("Ok tapi error lagi", "open"),
        ("kapan ya bisa dicek?", "resolved"),
    ];
    for (i, (answer, status)) in cases.iter().enumerate() {
        let at = T0 + i as i64 * 10 * MIN;
        let n = new_ticket(&p, &w, &format!("r{i}"), &format!("ans-{i}"), "Tidak bisa login", "Login gagal.", at).await;
        let n1 = notification(&store, &n, &a1).await;
        agent_reply(&p, &w, &n, &a1, &n1, &format!("ans-a{i}"), "#resolve Sandi sudah direset.", at + MIN).await;
        let raw = mail(
            &w.addr(&format!("r{i}")),
            &w.desk_addr,
            &format!("Re: [#{n}]"),
            &format!("ans-r{i}@example.test"),
            "",
            answer,
        );
        p.process("hero", &raw, at + 2 * MIN).await.unwrap();
        assert_eq!(ticket(&store, &n).await.status.as_str(), *status, "{answer}");
        let asked = outbound(&store, &n)
            .await
            .into_iter()
            .any(|(k, _, _, b)| k == "confirm_question" && b.contains("Ya, sudah jelas"));
        assert_eq!(asked, *status == "resolved", "{answer}");
    }
}
