//! Outbound webhook deliveries (`webhook_deliveries`): queued in the transaction of the ticket
//! change, claimed head-of-line per subscription by the outbox worker, each attempt's outcome
//! recorded; a given-up event leaves a `webhook_given_up` ticket event in the same transaction.

use sqlx::{AnyConnection, AnyPool, Row};

use super::{Backend, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// One event for one subscription, to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub event_id: &'a str,
    pub desk: &'a str,
    pub subscription: &'a str,
    pub event_type: &'a str,
    pub ticket_id: i64,
    pub body: &'a str,
}

/// Queues `rows` in the caller's transaction, due at `now`.
pub async fn queue_webhooks(conn: &mut AnyConnection, now: i64, rows: &[NewDelivery<'_>]) -> Result<()> {
    for r in rows {
        sqlx::query(
            "INSERT INTO webhook_deliveries (event_id, desk, subscription, event_type, ticket_id, body, status, \
             attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
        )
        .bind(r.event_id)
        .bind(r.desk)
        .bind(r.subscription)
        .bind(r.event_type)
        .bind(r.ticket_id)
        .bind(r.body)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A claimed delivery.
#[derive(Debug, Clone)]
pub struct WebhookItem {
    pub id: i64,
    pub event_id: String,
    pub desk: String,
    pub subscription: String,
    pub event_type: String,
    pub ticket_id: Option<i64>,
    pub body: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Claims up to `limit` due deliveries for `worker` until `lease_until`, at most one per
/// subscription: its earliest pending row (the head), and only when the head is due and no other
/// worker holds it. A later event of a subscription is never claimed while an earlier one is
/// pending, so each receiver gets its events in order.
pub async fn claim_webhooks(
    pool: &AnyPool,
    backend: Backend,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<WebhookItem>> {
    let lock = if backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE webhook_deliveries SET locked_by = $1, locked_until = $2 WHERE id IN (\
           SELECT w.id FROM webhook_deliveries w WHERE w.status = 'pending' AND w.next_attempt_at <= $3 \
           AND (w.locked_until IS NULL OR w.locked_until < $3) \
           AND w.id = (SELECT MIN(h.id) FROM webhook_deliveries h \
                       WHERE h.status = 'pending' AND h.desk = w.desk AND h.subscription = w.subscription) \
           ORDER BY w.id LIMIT $4{lock}) \
         RETURNING id"
    );
    let (mut tx, ids) = super::queries::lease_rows(pool, backend, sql, worker, lease_until, now, limit).await?;
    let mut items = Vec::with_capacity(ids.len());
    if !ids.is_empty() {
        let sql = format!(
            "SELECT id, event_id, desk, subscription, event_type, ticket_id, body, attempts, created_at \
             FROM webhook_deliveries WHERE id IN ({}) ORDER BY id",
            super::queries::placeholders(1, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *tx).await? {
            items.push(WebhookItem {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                desk: r.try_get("desk")?,
                subscription: r.try_get("subscription")?,
                event_type: r.try_get("event_type")?,
                ticket_id: r.try_get("ticket_id")?,
                body: r.try_get("body")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
            });
        }
    }
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    Ok(items)
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    Delivered,
    /// Failed; tried again at the instant (ms).
    Retry {
        error: String,
        at: i64,
    },
    /// Failed for good: the row becomes `failed` and its ticket gets a `webhook_given_up` event.
    GiveUp {
        error: String,
    },
}

/// Records the attempt on `item` at `now`.
pub async fn record_webhook(
    pool: &AnyPool,
    backend: Backend,
    item: &WebhookItem,
    now: i64,
    outcome: &WebhookOutcome,
) -> Result<()> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    match outcome {
        WebhookOutcome::Delivered => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $1, \
                 locked_by = NULL, locked_until = NULL, last_error = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(item.id)
            .execute(&mut *tx)
            .await?;
        }
        WebhookOutcome::Retry { error, at } => {
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
                 locked_by = NULL, locked_until = NULL WHERE id = $3",
            )
            .bind(*at)
            .bind(error.as_str())
            .bind(item.id)
            .execute(&mut *tx)
            .await?;
        }
        WebhookOutcome::GiveUp { error } => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, last_error = $1, \
                 locked_by = NULL, locked_until = NULL WHERE id = $2",
            )
            .bind(error.as_str())
            .bind(item.id)
            .execute(&mut *tx)
            .await?;
            if let Some(ticket) = item.ticket_id {
                let detail = serde_json::json!({
                    "event_id": item.event_id, "type": item.event_type, "subscription": item.subscription,
                    "attempts": item.attempts + 1, "error": error,
                });
                super::insert_event(&mut tx, ticket, now, "loket", "webhook", "webhook_given_up", &detail).await?;
            }
        }
    }
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    Ok(())
}

/// Deliveries by desk and state (`pending`, `sent`, `failed`), for `/metrics`.
pub async fn webhook_counts(pool: &AnyPool) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT desk, status, COUNT(*) AS n FROM webhook_deliveries GROUP BY desk, status ORDER BY desk, status",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("desk")?, r.try_get("status")?, r.try_get("n")?))).collect()
}

/// A stored delivery, as `ticket_webhooks` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub event_id: String,
    pub subscription: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub body: String,
}

/// A ticket's deliveries in queue order.
pub async fn ticket_webhooks(pool: &AnyPool, ticket_id: i64) -> Result<Vec<WebhookRow>> {
    let rows = sqlx::query(
        "SELECT event_id, subscription, event_type, status, attempts, body FROM webhook_deliveries \
         WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(ticket_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WebhookRow {
                event_id: r.try_get("event_id")?,
                subscription: r.try_get("subscription")?,
                event_type: r.try_get("event_type")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                body: r.try_get("body")?,
            })
        })
        .collect()
}
