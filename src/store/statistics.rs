//! PostgreSQL's statistics of a young store.
//!
//! PostgreSQL plans a connection's prepared statement once, on the statistics of that moment, and
//! keeps the plan until the table is analyzed again. A new store has no statistics until
//! autovacuum's first analyze, a minute or more after its first rows; plans made on its empty
//! tables took an index on the desk alone for the duplicate check and the threading look-ups, so
//! each looked at every message of the desk, slower with every message (a 2,000-mail burst on a
//! fresh store: the duplicate check 471 µs a message, a third of the database's time). So the
//! store analyzes the tables the intake reads itself while they are young: after the first
//! [`FIRST`] messages committed through it, then each time the messages committed since the last
//! analyze reach half the rows the messages table had then (a message is about two rows, itself
//! and its acknowledgement or notification: so each time the table about doubled), until it
//! holds [`GROWN`] rows; from there autovacuum's own thresholds (a tenth of a table) come as
//! soon. Analyzing makes the connections plan again.
//! SQLite plans a statement from its schema alone: nothing to do there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::AnyPool;

/// Messages committed before the first analyze.
pub const FIRST: u64 = 64;
/// A table of this many rows is left to autovacuum.
pub const GROWN: f64 = 65_536.0;
/// The tables the intake's statements read.
const TABLES: &str = "ANALYZE tickets, messages, quarantine, outbox";

/// Counts the messages committed through one store and analyzes when they are due.
#[derive(Debug)]
pub struct Young {
    committed: AtomicU64,
    /// The count at which the next analyze is due; `u64::MAX` once the store is grown (or an
    /// analyze failed: autovacuum's).
    due: AtomicU64,
    running: AtomicBool,
}

impl Default for Young {
    fn default() -> Self {
        Self { committed: AtomicU64::new(0), due: AtomicU64::new(FIRST), running: AtomicBool::new(false) }
    }
}

impl Young {
    /// `n` more messages are committed; starts an analyze on `pool` (a task of its own) when one
    /// is due and none is running.
    pub fn committed(self: &Arc<Self>, pool: &AnyPool, n: usize) {
        let committed = self.committed.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if committed < self.due.load(Ordering::Relaxed) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (young, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            let next = match analyze(&pool).await {
                Ok(rows) if rows >= GROWN => u64::MAX,
                Ok(rows) => young.committed.load(Ordering::Relaxed) + (rows as u64 / 2).max(FIRST),
                Err(e) => {
                    // Autovacuum will do it later; the intake goes on either way.
                    tracing::warn!(error = %e, "analyzing the young store's tables failed; left to autovacuum");
                    u64::MAX
                }
            };
            young.due.store(next, Ordering::Relaxed);
            young.running.store(false, Ordering::Release);
        });
    }
}

/// Analyzes the intake's tables unless the messages table is already grown; its rows (as
/// PostgreSQL estimates them) after.
async fn analyze(pool: &AnyPool) -> Result<f64, sqlx::Error> {
    let rows = || async {
        // `reltuples` is -1 for a table never analyzed.
        sqlx::query_scalar::<_, f64>(
            "SELECT CAST(reltuples AS DOUBLE PRECISION) FROM pg_class WHERE oid = CAST('messages' AS regclass)",
        )
        .fetch_one(pool)
        .await
    };
    let before = rows().await?;
    if before >= GROWN {
        return Ok(before);
    }
    let started = std::time::Instant::now();
    sqlx::query(TABLES).execute(pool).await?;
    let after = rows().await?;
    tracing::debug!(rows = after, ms = started.elapsed().as_millis() as u64, "young store's tables analyzed");
    Ok(after)
}
