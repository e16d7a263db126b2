//! `outbound.sender_per_minute`: the outbox sends no more than the limit from one mailbox in a
//! minute; the rest wait, with no attempt counted and nothing failed (file transport, SQLite).

use std::path::Path;

use loket::outbox::OutboxWorker;
use loket::pipeline::{Action, Pipeline};
use loket::store::Store;
use sqlx::Row;

use crate::hero::{self, Hero};
use crate::runner::repo;

const T0: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB

async fn pipeline(dir: &Path) -> (Pipeline, Store) {
    let db = hero::sqlite_in(dir);
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\nsender_per_minute = 2\n", dir.join("out").display());
    Hero { storage: &db, outbound: &out, ..Default::default() }.pipeline(&repo(), dir).await
}

#[tokio::test]
async fn a_mailbox_sends_no_more_than_its_rate_and_the_rest_wait_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let (p, store) = pipeline(dir.path()).await;
    for n in 0..3 {
        assert_eq!(
            p.process("hero", &hero::printer_request(n, "rate"), T0 + n as i64).await.unwrap().action,
            Action::Created
        );
    }
    let cfg = p.config();
    let worker = OutboxWorker::new(
        &cfg.outbound,
        store.clone(),
        Default::default(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
        "test".into(),
    )
    .unwrap();
    // Three acknowledgements from hero@desk.test are due; two go now.
    assert_eq!(worker.deliver_due().await.unwrap(), 2);
    assert_eq!(worker.deliver_due().await.unwrap(), 0, "the third waits for the minute to have room");
    let rows = sqlx::query("SELECT status, attempts, next_attempt_at, locked_by FROM outbox ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let status: Vec<(String, i64)> =
        rows.iter().map(|r| (r.get::<String, _>("status"), r.get::<i64, _>("attempts"))).collect();
    assert_eq!(status, [("sent".into(), 1), ("sent".into(), 1), ("pending".into(), 0)]);
    let waiting = &rows[2];
    assert!(waiting.get::<i64, _>("next_attempt_at") > loket::now_ms(), "held until the minute has room");
    assert!(waiting.get::<Option<String>, _>("locked_by").is_none(), "held rows are not left locked");
    let attempts: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM outbox_attempts").fetch_one(store.pool()).await.unwrap().get("n");
    assert_eq!(attempts, 2, "waiting is not a failed attempt");
    assert_eq!(std::fs::read_dir(dir.path().join("out")).unwrap().count(), 2);
}
