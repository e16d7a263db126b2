//! Scale-out (issue 7): three `loket serve` instances on one PostgreSQL, one Dovecot with two
//! inboxes, 1,000 mails, one instance SIGKILLed mid-run: exactly 1,000 tickets and 1,000
//! acknowledgements, no duplicates, and the killed instance's inboxes taken over.

use loket::store;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_work_and_survive_a_kill() {
    let _servers = MAIL_SERVERS.read().await;
    let w = World::new(
        "scale",
        WorldOptions { pg: true, outbound_smtp: false, poll_interval_secs: 2, ..Default::default() },
    )
    .await;
    let second = format!("{}-hero2@desk.test", w.tag);
    let mut text = std::fs::read_to_string(&w.config_path).unwrap();
    text.push_str(&format!(
        "[[desk.inbox]]\nname = \"hero2\"\naddress = \"{second}\"\n[desk.inbox.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         user = \"{second}\"\npassword_env = \"LOKET_TEST_MAIL_PASSWORD\"\nprocessed_folder = \"Processed\"\npoll_interval_secs = 2\n",
        ENV.imap_port
    ));
    std::fs::write(&w.config_path, text).unwrap();
    for i in 0..1000 {
        let to = if i % 2 == 0 { &w.desk_addr } else { &second };
        let m = mail(
            &w.addr(&format!("r{i}")),
            to,
            &format!("Permintaan {i}"),
            &format!("{}-{i}@example.test", w.tag),
            "",
            "Mohon bantuan.",
        );
        dovecot_save(to, &m);
    }
    let store = w.store().await;
    let mut daemons: Vec<Daemon> = (0..3).map(|_| w.serve()).collect();
    wait_for("work under way", || async { (store::counts(store.pool()).await.unwrap().tickets >= 200).then_some(()) })
        .await;
    // Kill an instance that holds a lease.
    let holders: Vec<String> =
        sqlx::query_scalar("SELECT holder FROM inbox_leases").fetch_all(store.pool()).await.unwrap();
    let victim = daemons
        .iter()
        .position(|d| holders.iter().any(|h| h.contains(&format!("-{}-", d.pid().unwrap()))))
        .expect("some instance holds a lease");
    let killed_pid = daemons[victim].pid().unwrap();
    daemons[victim].kill9();
    let at_kill = store::counts(store.pool()).await.unwrap();
    assert!(at_kill.tickets < 1000, "the kill came too late: {at_kill:?}");

    wait_for("1,000 tickets and 1,000 delivered acknowledgements", || async {
        let c = store::counts(store.pool()).await.unwrap();
        (c.tickets == 1000 && c.outbox_sent == 1000).then_some(())
    })
    .await;
    wait_for("both inboxes drained", || async {
        (mailbox(&w.desk_addr, "INBOX").await.is_empty() && mailbox(&second, "INBOX").await.is_empty()).then_some(())
    })
    .await;
    let c = store::counts(store.pool()).await.unwrap();
    assert_eq!((c.tickets, c.inbound, c.outbound, c.outbox_pending, c.outbox_failed), (1000, 1000, 1000, 0, 0));
    let distinct: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT number) FROM tickets").fetch_one(store.pool()).await.unwrap();
    assert_eq!(distinct, 1000);
    let files = std::fs::read_dir(w.dir.path().join("out"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(files, 1000, "every acknowledgement written once");
    assert_eq!(mailbox(&w.desk_addr, "Processed").await.len() + mailbox(&second, "Processed").await.len(), 1000);
    // The leases are held by live instances only.
    let holders: Vec<String> =
        sqlx::query_scalar("SELECT holder FROM inbox_leases").fetch_all(store.pool()).await.unwrap();
    assert_eq!(holders.len(), 2);
    assert!(holders.iter().all(|h| !h.contains(&format!("-{killed_pid}-"))), "{holders:?}");
    drop(daemons);
}
