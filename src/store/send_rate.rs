//! The outbox's send rate per mailbox (`outbound.sender_per_minute`, [`crate::send_rate`]): the
//! sends of the last minute, and rows put back to wait for room without counting an attempt.

use std::collections::HashMap;

use sqlx::{AnyPool, Row};

use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// The emails `senders` sent since `since`, by lowercased sender: send times (the partial index
/// `outbox_sent` keeps this to the rows of the window; only the senders asked about are read).
pub async fn sends_since(pool: &AnyPool, since: i64, senders: &[&str]) -> Result<HashMap<String, Vec<i64>>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    let mut senders: Vec<String> = senders.iter().map(|s| s.to_ascii_lowercase()).collect();
    senders.sort();
    senders.dedup();
    if senders.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT sender, sent_at FROM outbox WHERE status = 'sent' AND sent_at >= $1 AND channel = 'email' \
         AND LOWER(sender) IN ({})",
        super::queries::placeholders(2, senders.len())
    );
    // Only numbered placeholders are spliced in; the senders are bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since);
    for s in &senders {
        q = q.bind(s);
    }
    for r in q.fetch_all(pool).await? {
        let sender: String = r.try_get("sender")?;
        out.entry(sender.to_ascii_lowercase()).or_default().push(r.try_get("sent_at")?);
    }
    Ok(out)
}

/// Puts claimed rows back to wait until `(id, due_at)`: unlocked, the attempt count untouched.
pub async fn hold_outbox(pool: &AnyPool, held: &[(i64, i64)]) -> Result<()> {
    for (id, due) in held {
        sqlx::query("UPDATE outbox SET next_attempt_at = $1, locked_by = NULL, locked_until = NULL WHERE id = $2")
            .bind(*due)
            .bind(*id)
            .execute(pool)
            .await?;
    }
    Ok(())
}
