//! SQL for SLA clocks and the scheduler: load and save a ticket's clocks, claim the clocks due
//! for a check (`FOR UPDATE SKIP LOCKED` on PostgreSQL), fire a threshold once (a conditional
//! state change), and the resolved tickets due for auto-closing.

use sqlx::{AnyConnection, AnyPool, Row, any::AnyRow};

use super::{Backend, StoreError};
use crate::sla::{Clock, ClockKind, SlaState};

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct ClockRow {
    pub id: i64,
    pub ticket_id: i64,
    pub desk: String,
    pub clock: Clock,
    pub warned_at: Option<i64>,
    pub breached_at: Option<i64>,
}

const COLS: &str = "id, ticket_id, desk, kind, target_ms, warn_ms, consumed_ms, running_since, stopped_at, state, \
                    next_check_at, due_at, warned_at, breached_at";

fn from_row(r: &AnyRow) -> Result<ClockRow> {
    let kind: String = r.try_get("kind")?;
    let state: String = r.try_get("state")?;
    Ok(ClockRow {
        id: r.try_get("id")?,
        ticket_id: r.try_get("ticket_id")?,
        desk: r.try_get("desk")?,
        clock: Clock {
            kind: if kind == "response" { ClockKind::Response } else { ClockKind::Resolution },
            target_ms: r.try_get("target_ms")?,
            warn_ms: r.try_get("warn_ms")?,
            consumed_ms: r.try_get("consumed_ms")?,
            running_since: r.try_get("running_since")?,
            stopped_at: r.try_get("stopped_at")?,
            state: SlaState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("sla state `{state}`")))?,
            next_check_at: r.try_get("next_check_at")?,
            due_at: r.try_get("due_at")?,
        },
        warned_at: r.try_get("warned_at")?,
        breached_at: r.try_get("breached_at")?,
    })
}

/// A new clock's row: its ticket, desk and starting state.
#[derive(Debug, Clone)]
pub struct ClockToInsert {
    pub ticket_id: i64,
    pub desk: String,
    pub clock: Clock,
}

/// New tickets' clocks, one statement for up to 64 rows (`queries::row_chunks`).
pub async fn insert_clocks(conn: &mut AnyConnection, clocks: &[ClockToInsert]) -> Result<()> {
    const N: usize = 11;
    for chunk in super::queries::row_chunks(clocks) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| format!("({})", (1..=N).map(|c| format!("${}", r * N + c)).collect::<Vec<_>>().join(", ")))
            .collect();
        let sql = format!(
            "INSERT INTO sla_clocks (ticket_id, desk, kind, target_ms, warn_ms, consumed_ms, running_since, stopped_at, \
             state, next_check_at, due_at) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ClockToInsert { ticket_id, desk, clock: c } in chunk {
            q = q
                .bind(*ticket_id)
                .bind(desk.as_str())
                .bind(c.kind.as_str())
                .bind(c.target_ms)
                .bind(c.warn_ms)
                .bind(c.consumed_ms)
                .bind(c.running_since)
                .bind(c.stopped_at)
                .bind(c.state.as_str())
                .bind(c.next_check_at)
                .bind(c.due_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A ticket's clocks, response first; inside a transaction or on the pool.
pub async fn clocks_of<'e>(
    conn: impl sqlx::Executor<'e, Database = sqlx::Any>,
    ticket_id: i64,
) -> Result<Vec<ClockRow>> {
    let sql = format!("SELECT {COLS} FROM sla_clocks WHERE ticket_id = $1 ORDER BY kind DESC");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ticket_id).fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

/// Saves a clock's running state (not its fired thresholds: see [`fire`]).
pub async fn save_clock(conn: &mut AnyConnection, id: i64, c: &Clock) -> Result<()> {
    sqlx::query(
        "UPDATE sla_clocks SET target_ms = $1, warn_ms = $2, consumed_ms = $3, running_since = $4, stopped_at = $5, \
         next_check_at = $6, due_at = $7 WHERE id = $8",
    )
    .bind(c.target_ms)
    .bind(c.warn_ms)
    .bind(c.consumed_ms)
    .bind(c.running_since)
    .bind(c.stopped_at)
    .bind(c.next_check_at)
    .bind(c.due_at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a clock from `from` to `to` and stamps the time; returns false when another scheduler
/// (instance, or an earlier run) already did. This is what makes every warning and breach fire once.
pub async fn fire(conn: &mut AnyConnection, id: i64, from: SlaState, to: SlaState, now: i64) -> Result<bool> {
    let sql = match to {
        SlaState::Warning => "UPDATE sla_clocks SET state = $1, warned_at = $2 WHERE id = $3 AND state = $4",
        SlaState::Breached => "UPDATE sla_clocks SET state = $1, breached_at = $2 WHERE id = $3 AND state = $4",
        SlaState::Ok => return Ok(false),
    };
    let r = sqlx::query(sql).bind(to.as_str()).bind(now).bind(id).bind(from.as_str()).execute(&mut *conn).await?;
    Ok(r.rows_affected() == 1)
}

/// Clocks whose next threshold is due, oldest first.
pub async fn due_clocks(conn: &mut AnyConnection, backend: Backend, now: i64, limit: i64) -> Result<Vec<ClockRow>> {
    let lock = if backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT {COLS} FROM sla_clocks WHERE next_check_at IS NOT NULL AND next_check_at <= $1 \
         ORDER BY next_check_at LIMIT $2{lock}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Resolved tickets whose reopen window has passed.
pub async fn due_auto_close(conn: &mut AnyConnection, backend: Backend, now: i64, limit: i64) -> Result<Vec<i64>> {
    let lock = if backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT id FROM tickets WHERE auto_close_at IS NOT NULL AND auto_close_at <= $1 ORDER BY auto_close_at LIMIT $2{lock}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

pub async fn set_auto_close(conn: &mut AnyConnection, ticket_id: i64, at: Option<i64>) -> Result<()> {
    sqlx::query("UPDATE tickets SET auto_close_at = $1 WHERE id = $2")
        .bind(at)
        .bind(ticket_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_remind(conn: &mut AnyConnection, ticket_id: i64, at: Option<i64>) -> Result<()> {
    sqlx::query("UPDATE tickets SET remind_at = $1 WHERE id = $2").bind(at).bind(ticket_id).execute(&mut *conn).await?;
    Ok(())
}

/// Pending tickets whose reminder is due.
pub async fn due_reminders(conn: &mut AnyConnection, backend: Backend, now: i64, limit: i64) -> Result<Vec<i64>> {
    let lock = if backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT id FROM tickets WHERE remind_at IS NOT NULL AND remind_at <= $1 ORDER BY remind_at LIMIT $2{lock}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// The earliest moment the scheduler has something to do.
pub async fn next_wakeup(pool: &AnyPool) -> Result<Option<i64>> {
    let a: Option<i64> = sqlx::query("SELECT MIN(next_check_at) AS m FROM sla_clocks WHERE next_check_at IS NOT NULL")
        .fetch_one(pool)
        .await?
        .try_get("m")?;
    let b: Option<i64> = sqlx::query("SELECT MIN(auto_close_at) AS m FROM tickets WHERE auto_close_at IS NOT NULL")
        .fetch_one(pool)
        .await?
        .try_get("m")?;
    let c: Option<i64> = sqlx::query("SELECT MIN(remind_at) AS m FROM tickets WHERE remind_at IS NOT NULL")
        .fetch_one(pool)
        .await?
        .try_get("m")?;
    Ok([a, b, c].into_iter().flatten().min())
}

/// Running (not stopped) clocks by kind and state: `(kind, state, count)`.
pub async fn running_states(pool: &AnyPool) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT kind, state, COUNT(*) AS n FROM sla_clocks WHERE stopped_at IS NULL GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("kind")?, r.try_get("state")?, r.try_get("n")?))).collect()
}
