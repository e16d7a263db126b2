//! SQL for `loket report`: the tickets of a desk that matter to a period (received in it, or
//! still unfinished when it began) with their two SLA clocks, and the events the report reads
//! (routing, reopenings, category changes). The figures are made by `crate::report`, not here.

use sqlx::{AnyPool, Row, any::AnyRow};

use super::StoreError;
use crate::sla::{Clock, ClockKind, SlaState};

type Result<T> = std::result::Result<T, StoreError>;

/// One ticket as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTicket {
    pub id: i64,
    pub number: String,
    pub category: String,
    pub subcategory: String,
    pub channel: String,
    pub status: String,
    pub assignee: Option<String>,
    pub group_id: Option<String>,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub rating: Option<i64>,
    pub rating_requested_at: Option<i64>,
    pub response: Option<ReportClock>,
    pub resolution: Option<ReportClock>,
}

/// A clock with the moment it breached, if the scheduler saw it breach.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportClock {
    pub clock: Clock,
    pub breached_at: Option<i64>,
}

/// An event the report reads: `routed`, `reopened`, `command` (category changes) or `rated`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportEvent {
    pub ticket_id: i64,
    pub at: i64,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// The event kinds [`report_events`] returns.
pub const REPORT_EVENT_KINDS: &[&str] = &["routed", "reopened", "command"];

fn clock(r: &AnyRow, p: &str, kind: ClockKind) -> Result<Option<ReportClock>> {
    let state: Option<String> = r.try_get(format!("{p}_state").as_str())?;
    let Some(state) = state else { return Ok(None) };
    let get = |c: &str| r.try_get::<Option<i64>, _>(format!("{p}_{c}").as_str());
    Ok(Some(ReportClock {
        clock: Clock {
            kind,
            target_ms: get("target")?.unwrap_or(0),
            warn_ms: get("warn")?.unwrap_or(0),
            consumed_ms: get("consumed")?.unwrap_or(0),
            running_since: get("running")?,
            stopped_at: get("stopped")?,
            state: SlaState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("sla state `{state}`")))?,
            next_check_at: None,
            due_at: get("due")?,
        },
        breached_at: get("breached")?,
    }))
}

/// Tickets of `desk` created before `to` that were received in `[from, to)` or not yet closed at
/// `from` (the backlog carried into the period), oldest first, with their clocks.
pub async fn report_tickets(pool: &AnyPool, desk: &str, from: i64, to: i64) -> Result<Vec<ReportTicket>> {
    let clock_cols = |p: &str| {
        format!(
            "{p}.state AS {p}_state, {p}.target_ms AS {p}_target, {p}.warn_ms AS {p}_warn, {p}.consumed_ms AS {p}_consumed, \
             {p}.running_since AS {p}_running, {p}.stopped_at AS {p}_stopped, {p}.due_at AS {p}_due, \
             {p}.breached_at AS {p}_breached"
        )
    };
    let sql = format!(
        "SELECT t.id, t.number, t.category, t.subcategory, t.channel, t.status, t.assignee, t.group_id, t.created_at, \
         t.resolved_at, t.closed_at, t.rating, t.rating_requested_at, {}, {} \
         FROM tickets t \
         LEFT JOIN sla_clocks r ON r.ticket_id = t.id AND r.kind = 'response' \
         LEFT JOIN sla_clocks s ON s.ticket_id = t.id AND s.kind = 'resolution' \
         WHERE t.desk = $1 AND t.created_at < $3 AND (t.created_at >= $2 OR t.closed_at IS NULL OR t.closed_at >= $2) \
         ORDER BY t.created_at, t.id",
        clock_cols("r"),
        clock_cols("s")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(from).bind(to).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(ReportTicket {
                id: r.try_get("id")?,
                number: r.try_get("number")?,
                category: r.try_get("category")?,
                subcategory: r.try_get("subcategory")?,
                channel: r.try_get("channel")?,
                status: r.try_get("status")?,
                assignee: r.try_get("assignee")?,
                group_id: r.try_get("group_id")?,
                created_at: r.try_get("created_at")?,
                resolved_at: r.try_get("resolved_at")?,
                closed_at: r.try_get("closed_at")?,
                rating: r.try_get("rating")?,
                rating_requested_at: r.try_get("rating_requested_at")?,
                response: clock(r, "r", ClockKind::Response)?,
                resolution: clock(r, "s", ClockKind::Resolution)?,
            })
        })
        .collect()
}

/// The [`REPORT_EVENT_KINDS`] events, up to `to`, of the tickets [`report_tickets`] returns.
pub async fn report_events(pool: &AnyPool, desk: &str, from: i64, to: i64) -> Result<Vec<ReportEvent>> {
    let rows = sqlx::query(
        "SELECT e.ticket_id, e.at, e.kind, e.detail FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
         WHERE t.desk = $1 AND t.created_at < $3 AND (t.created_at >= $2 OR t.closed_at IS NULL OR t.closed_at >= $2) \
         AND e.at < $3 AND e.kind IN ($4, $5, $6) ORDER BY e.at, e.id",
    )
    .bind(desk)
    .bind(from)
    .bind(to)
    .bind(REPORT_EVENT_KINDS[0])
    .bind(REPORT_EVENT_KINDS[1])
    .bind(REPORT_EVENT_KINDS[2])
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(ReportEvent {
                ticket_id: r.try_get("ticket_id")?,
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
