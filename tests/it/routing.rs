//! Routing in the pipeline: new tickets are routed, the decision and its reasons recorded (the
//! dev-set quality bar and the rules examples are in the `golden` test binary).

use loket::store;
use serde_json::Value;

use crate::harness::*;

/// The pipeline routes every new ticket: its category letter is in the number, the decision and its
/// reasons are in the ticket's events, and an external sender asking for an internal-only service
/// waits in triage with an acknowledgement that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_routes_new_tickets() {
    let w = World::new("route", WorldOptions { imap: false, outbound_smtp: false, ..Default::default() }).await;
    let internal = format!("{}-andi@kemendag.go.id", w.tag);
    let m = mail(
        &internal,
        &w.desk_addr,
        "SIGI tidak bisa dibuka",
        &format!("{}-1@example.test", w.tag),
        "",
        "Aplikasi SIGI error sejak pagi, tidak bisa login.",
    );
    let out: Value = serde_json::from_str(w.ingest(&m).1.trim()).unwrap();
    let number = out["ticket"].as_str().unwrap().to_string();
    assert!(number.starts_with("A-HERO"), "{number}");
    let store = w.store().await;
    let t = &store::tickets_by_number(store.pool(), &number).await.unwrap()[0];
    assert_eq!(
        (t.category.as_str(), t.subcategory.as_str(), t.ticket_type.map(|v| v.as_str())),
        ("aplikasi", "sigi", Some("incident"))
    );
    let events = store::ticket_events(store.pool(), t.id).await.unwrap();
    let routed = events.iter().find(|e| e.kind == "routed").unwrap();
    assert!(
        routed.detail["reasons"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().contains("sigi")),
        "{}",
        routed.detail
    );

    let external = w.addr("pt-maju");
    let m = mail(
        &external,
        &w.desk_addr,
        "SIGI tidak bisa dibuka",
        &format!("{}-2@example.test", w.tag),
        "",
        "Aplikasi SIGI error sejak pagi.",
    );
    let out: Value = serde_json::from_str(w.ingest(&m).1.trim()).unwrap();
    let number = out["ticket"].as_str().unwrap().to_string();
    assert!(number.starts_with("T-HERO"), "{number}");
    let t = &store::tickets_by_number(store.pool(), &number).await.unwrap()[0];
    let ack =
        store::ticket_messages(store.pool(), t.id).await.unwrap().into_iter().find(|m| m.direction == "out").unwrap();
    assert!(ack.body_text.contains("hanya diperuntukkan bagi pegawai internal"), "{}", ack.body_text);
}
